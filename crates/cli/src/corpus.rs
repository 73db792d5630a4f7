//! The commands over an OpenI corpus: `ingest` (as JSONL), `split` (the
//! split file), `label` (autolabel, the report model's silver spans) and
//! `eval` (coded findings against the manual coding).

use crate::args::{NerModels, SplitArg, UncertainArg};
use crate::{open_output, print_markdown, EXIT_OK, EXIT_PARTIAL};
use anyhow::{Context, Result};
use integrabner_core::openi::Report;
use integrabner_core::split::{render_split_file, split_of, Split};
use integrabner_train::coding_eval;
use integrabner_train::progress;
use integrabner_train::source::{self, read_split_file};
use std::io::Write;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct IngestArgs {
    /// OpenI .tgz, directory of XML files, or indiana_reports.csv.
    source: PathBuf,
    /// indiana_projections.csv, when not beside indiana_reports.csv.
    #[arg(long)]
    projections: Option<PathBuf>,
    /// Output file (default: stdout).
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Write each report as a case, `{"id", "text"}` with the text
    /// `predict` reads from OpenI: the JSONL input of `predict`, the Python
    /// package and examples/ray_batch.py.
    #[arg(long)]
    cases: bool,
}

pub fn ingest(args: &IngestArgs) -> Result<u8> {
    let corpus = source::load_corpus(&args.source, args.projections.as_deref())?;
    let mut out = open_output(args.output.as_deref())?;
    for r in &corpus.reports {
        if args.cases {
            serde_json::to_writer(&mut out, &serde_json::json!({"id": r.id, "text": r.text()}))?;
        } else {
            serde_json::to_writer(&mut out, r)?;
        }
        out.write_all(b"\n")?;
    }
    out.flush()?;
    eprintln!(
        "{} reports read, {} skipped",
        corpus.reports.len(),
        corpus.skipped()
    );
    Ok(if corpus.skipped() > 0 {
        EXIT_PARTIAL
    } else {
        EXIT_OK
    })
}

#[derive(clap::Args)]
pub struct SplitArgs {
    source: PathBuf,
    #[arg(short, long, default_value = "data/splits/openi-split-v1.tsv")]
    output: PathBuf,
}

pub fn split(args: &SplitArgs) -> Result<u8> {
    let corpus = source::load_corpus(&args.source, None)?;
    let text = render_split_file(corpus.reports.iter().map(|r| r.id.as_str()));
    let output = &args.output;
    if let Some(dir) = output.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(output, &text).with_context(|| format!("cannot write {}", output.display()))?;
    for s in [Split::Train, Split::Validation, Split::Test] {
        let n = corpus
            .reports
            .iter()
            .filter(|r| split_of(&r.id) == s)
            .count();
        eprintln!("{:>10}: {n}", s.as_str());
    }
    eprintln!("wrote {}", output.display());
    Ok(EXIT_OK)
}

#[derive(clap::Args)]
pub struct LabelArgs {
    source: PathBuf,
    /// Which reports to label.
    #[arg(long, value_enum, default_value = "all")]
    split: SplitArg,
    #[arg(short, long)]
    output: Option<PathBuf>,
    #[command(flatten)]
    ner: NerModels,
}

pub fn label(args: &LabelArgs) -> Result<u8> {
    let corpus = source::load_corpus(&args.source, None)?;
    let labeler = args.ner.labeler()?;
    let reports: Vec<&Report> = corpus
        .reports
        .iter()
        .filter(|r| args.split.includes(split_of(&r.id)))
        .collect();
    let progress = progress::bar(reports.len(), "labelling", "reports");
    let mut out = open_output(args.output.as_deref())?;
    for r in reports {
        let p = labeler.predict(&r.id, &r.text())?;
        serde_json::to_writer(&mut out, &p)?;
        out.write_all(b"\n")?;
        progress.inc(1);
    }
    progress.finish_and_clear();
    out.flush()?;
    Ok(EXIT_OK)
}

#[derive(clap::Args)]
pub struct EvalArgs {
    source: PathBuf,
    /// The split to score. Develop on validation; look at test once.
    #[arg(long, value_enum, default_value = "validation")]
    split: SplitArg,
    /// The committed split file; reports missing from it are an error.
    #[arg(long, default_value = "data/splits/openi-split-v1.tsv")]
    split_file: PathBuf,
    /// Whether uncertain mentions code their concept.
    #[arg(long, value_enum, default_value = "ignored")]
    uncertain: UncertainArg,
    /// Also write the tables as Markdown to this file.
    #[arg(long)]
    markdown: Option<PathBuf>,
    #[command(flatten)]
    ner: NerModels,
}

pub fn eval(args: &EvalArgs) -> Result<u8> {
    let corpus = source::load_corpus(&args.source, None)?;
    let assigned = read_split_file(&args.split_file)?;
    let mut reports = Vec::new();
    for r in &corpus.reports {
        let s = *assigned.get(&r.id).with_context(|| {
            format!(
                "report {} is not in {}; regenerate it with `integrabner split`",
                r.id,
                args.split_file.display()
            )
        })?;
        if args.split.includes(s) {
            reports.push(r);
        }
    }
    let mut labeler = args.ner.labeler()?;
    labeler.pipeline.findings.uncertain_is_coded = args.uncertain == UncertainArg::Coded;
    let progress = progress::bar(reports.len(), "evaluating", "reports");
    let result = coding_eval::evaluate(
        args.ner.system_name(),
        &labeler.pipeline.vocab,
        |r| labeler.predict(&r.id, &r.text()).ok(),
        reports,
        &progress,
    );
    progress.finish_and_clear();
    let md = coding_eval::markdown(&result, args.split.name(), &labeler.pipeline.vocab);
    print_markdown(&md, args.markdown.as_deref())
}
