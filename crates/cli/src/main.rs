//! `integrabner`: build data, autolabel, evaluate and predict on chest
//! radiology reports.

mod eval;
mod export;
mod files;
mod fusion;
mod image;
mod model_dir;
mod ner;
mod nih_eval;
mod predict;
mod report;
mod source;
mod training;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use integrabner_core::openi::Report;
use integrabner_core::split::{parse_split_file, render_split_file, split_of, Split};
use integrabner_core::RulePipeline;
use integrabner_train::hybrid::HybridLabeler;
use integrabner_train::ner::NerModel;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Exit status: everything was processed.
const EXIT_OK: u8 = 0;
/// Exit status: the command failed (unreadable input, bad arguments to a file, I/O).
const EXIT_ERROR: u8 = 1;
/// Exit status: finished, but some inputs were skipped (each one named in a warning).
const EXIT_PARTIAL: u8 = 3;

#[derive(Parser)]
#[command(
    name = "integrabner",
    version,
    about = "Biomedical named-entity recognition for chest radiology reports",
    long_about = "Biomedical named-entity recognition for chest radiology reports.\n\n\
Finds anatomy, diseases, findings and devices in a report, decides whether each is \
present, absent or uncertain, and codes the report with OpenI MeSH headings.\n\n\
Typical use:\n  \
integrabner predict report.txt                 one report, JSONL on stdout\n  \
echo 'No pneumothorax.' | integrabner predict  a report on stdin\n  \
integrabner eval ../shared/data/openi/NLMCXR_reports.tgz --split validation\n\n\
OpenI inputs (SOURCE) may be the XML collection as a .tgz (NLMCXR_reports.tgz), a directory \
of its XML files, or indiana_reports.csv (with indiana_projections.csv beside it).",
    after_help = "Exit status: 0 success; 1 error; 2 usage error; 3 `ingest` or `predict` finished but skipped some inputs (each named in a warning on stderr); 130 `ner train` stopped by Ctrl+C with its state saved (run it again to resume)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum SplitArg {
    Train,
    Validation,
    Test,
    All,
}

impl SplitArg {
    fn includes(self, s: Split) -> bool {
        match self {
            Self::Train => s == Split::Train,
            Self::Validation => s == Split::Validation,
            Self::Test => s == Split::Test,
            Self::All => true,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Train => "train",
            Self::Validation => "validation",
            Self::Test => "test",
            Self::All => "all",
        }
    }
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum UncertainArg {
    /// An uncertain mention codes its concept (with probability 0.5).
    Coded,
    /// Only mentions asserted present code a concept.
    Ignored,
}

/// The NER models of the hybrid autolabeler; without them, rules only.
#[derive(clap::Args, Clone)]
struct NerModels {
    /// Disease NER model directory (e.g. models/ner/disease); its spans have
    /// source `ner-disease`.
    #[arg(long)]
    ner_disease: Option<PathBuf>,
    /// Anatomy NER model directory (e.g. models/ner/anatomy); source `ner-anatomy`.
    #[arg(long)]
    ner_anatomy: Option<PathBuf>,
    /// Load the NER model directories without checking their files against
    /// their manifest.json (for a training output, which has none).
    #[arg(long)]
    unverified: bool,
}

impl NerModels {
    fn labeler(&self) -> Result<HybridLabeler> {
        let mut models = Vec::new();
        for (dir, source) in [
            (&self.ner_disease, "ner-disease"),
            (&self.ner_anatomy, "ner-anatomy"),
        ] {
            if let Some(dir) = dir {
                let trust = model_dir::Trust::from_flag(self.unverified);
                trust.warn_if_unverified(dir);
                let context = || format!("cannot load the NER model in {}", dir.display());
                let model = match trust {
                    model_dir::Trust::Unverified => NerModel::load(dir).with_context(context)?,
                    model_dir::Trust::Manifest => {
                        let [config, weights, tokenizer] = model_dir::read(
                            dir,
                            ["config.json", "model.gguf", "tokenizer.json"],
                            trust,
                        )?;
                        NerModel::from_bytes(&config, &weights, &tokenizer).with_context(context)?
                    }
                };
                models.push((model, source.to_string()));
            }
        }
        Ok(HybridLabeler {
            pipeline: RulePipeline::embedded(),
            models,
        })
    }

    fn system_name(&self) -> &'static str {
        match (&self.ner_disease, &self.ner_anatomy) {
            (None, None) => "rule labeler",
            (Some(_), None) => "rules + disease NER",
            (None, Some(_)) => "rules + anatomy NER",
            (Some(_), Some(_)) => "rules + disease and anatomy NER",
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Read OpenI reports and write them as JSONL (sections, MeSH coding, images).
    Ingest {
        /// OpenI .tgz, directory of XML files, or indiana_reports.csv.
        source: PathBuf,
        /// indiana_projections.csv, when not beside indiana_reports.csv.
        #[arg(long)]
        projections: Option<PathBuf>,
        /// Output file (default: stdout).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Write the deterministic train/validation/test split of a corpus (id<TAB>split).
    ///
    /// The split depends on the report id alone: SHA-256("openi-split-v1:" + id),
    /// first 8 bytes mod 10; 0-7 train, 8 validation, 9 test.
    Split {
        source: PathBuf,
        #[arg(short, long, default_value = "data/splits/openi-split-v1.tsv")]
        output: PathBuf,
    },
    /// Autolabel reports: one prediction (entities with assertion and
    /// source, findings) per report, as JSONL: the silver annotations of the
    /// report model. With --ner-disease/--ner-anatomy, the hybrid autolabeler.
    Label {
        source: PathBuf,
        /// Which reports to label.
        #[arg(long, value_enum, default_value = "all")]
        split: SplitArg,
        #[arg(short, long)]
        output: Option<PathBuf>,
        #[command(flatten)]
        ner: NerModels,
    },
    /// Evaluate document-level findings against the manual MeSH coding, beside
    /// the original system's substring baseline.
    Eval {
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
    },
    /// Analyse cases (a report, images, or both) and write one JSON object per case.
    ///
    /// INPUT may be an OpenI .tgz, XML directory or indiana_reports.csv, a .jsonl file of
    /// {"id", "text"?, "image"?, "images"?} lines (image paths relative to the
    /// file), a plain-text report, or "-" / nothing for a report on stdin;
    /// with only --image, the images are analysed alone.
    ///
    /// Reports go through the report model (entities and findings with
    /// source `text`; its findings head also reads the rule labeler's
    /// evidence) from --text-model, or from models/text when run in the
    /// repository; without one, the rule labeler alone (source `dictionary`).
    /// Images go through the image model (findings with source `image`, each
    /// with a heat map) from --image-model or models/image; several views of
    /// one case count a finding at its largest probability.
    ///
    /// Every model directory is checked before use as the browser checks the
    /// bundle: each file against the directory's manifest.json (size and
    /// SHA-256) and against the bundle's manifest.json one level up where
    /// that lists it; a damaged, incomplete or unlisted model is refused
    /// with the file named and nothing written, and so are weights holding
    /// NaN or infinity. Inputs are read within limits (regular files only
    /// for images and XML; SECURITY.md lists every limit).
    ///
    /// A JSONL input is read line by line as it is analysed (memory stays
    /// flat for any number of lines); a line that is not UTF-8, not the
    /// expected object or longer than the limit is skipped with its number.
    ///
    /// Exit status: 0 all cases written, 3 some skipped (warnings on stderr),
    /// 1 nothing written (no case could be analysed, or a model or the input
    /// was refused).
    Predict {
        input: Option<PathBuf>,
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Report model directory (a bundle such as models/text, or a training output).
        #[arg(long, conflicts_with = "rules_only")]
        text_model: Option<PathBuf>,
        /// Use the rule labeler alone for reports.
        #[arg(long)]
        rules_only: bool,
        /// Image model directory (a bundle such as models/image).
        #[arg(long)]
        image_model: Option<PathBuf>,
        /// Fusion model directory (models/fusion): a case with a report and
        /// images gets fused findings (source `fusion`).
        #[arg(long)]
        fusion_model: Option<PathBuf>,
        /// An image of the single case (repeat for frontal and lateral views).
        #[arg(long = "image", value_name = "FILE")]
        images: Vec<PathBuf>,
        /// Directory of the OpenI images (NLMCXR_png names such as
        /// CXR1_1_IM-0001-4001.png, or the CSV layout's 1_IM-0001-4001.dcm.png):
        /// each report of an OpenI input is analysed with its images.
        #[arg(long, value_name = "DIR")]
        openi_images: Option<PathBuf>,
        /// Add "scores": the probability of every concept the active models
        /// score, and "abnormal" for a case with an image (for ROC curves).
        #[arg(long)]
        scores: bool,
        /// Run model directories as they are, without checking every file
        /// against their manifest.json (size and SHA-256): for a training
        /// output, which has no manifest. A warning says so.
        #[arg(long)]
        unverified: bool,
    },
    /// Train or evaluate the BERT NER models (diseases, anatomy).
    #[command(subcommand)]
    Ner(ner::NerCommand),
    /// Train and evaluate image findings (NIH ChestX-ray14, frozen encoder).
    #[command(subcommand)]
    Image(image::ImageCommand),
    /// Train and score the fusion of report and image (two-token attention).
    #[command(subcommand)]
    Fusion(fusion::FusionCommand),
    /// Train, evaluate and export the report model (BERT with entity,
    /// assertion and coded-findings heads).
    #[command(subcommand)]
    Report(report::ReportCommand),
    /// Write the manifest of the model bundle that the web app downloads.
    ///
    /// Lists every bundle file with its size and SHA-256 and derives the bundle
    /// version from them; the browser verifies each download against it and
    /// replaces its cached copy when the version changes.
    Export {
        /// The bundle directory.
        #[arg(default_value = "models")]
        bundle: PathBuf,
        /// Write nothing; exit 1 when the committed manifest is out of date.
        #[arg(long)]
        check: bool,
    },
}

fn main() -> ExitCode {
    // Libraries (candle) attach a backtrace to their errors whenever
    // backtraces are enabled; an error message is one line naming the file
    // and the fault unless the user asked for backtraces with RUST_BACKTRACE.
    if !std::env::var("RUST_BACKTRACE").is_ok_and(|v| v != "0") {
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
    }
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn run(cli: Cli) -> Result<u8> {
    match cli.command {
        Command::Ingest {
            source,
            projections,
            output,
        } => {
            let corpus = source::load_corpus(&source, projections.as_deref())?;
            let mut out = open_output(output.as_deref())?;
            for r in &corpus.reports {
                serde_json::to_writer(&mut out, r)?;
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
        Command::Split { source, output } => {
            let corpus = source::load_corpus(&source, None)?;
            let text = render_split_file(corpus.reports.iter().map(|r| r.id.as_str()));
            if let Some(dir) = output.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(&output, &text)
                .with_context(|| format!("cannot write {}", output.display()))?;
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
        Command::Label {
            source,
            split,
            output,
            ner,
        } => {
            let corpus = source::load_corpus(&source, None)?;
            let labeler = ner.labeler()?;
            let reports: Vec<&Report> = corpus
                .reports
                .iter()
                .filter(|r| split.includes(split_of(&r.id)))
                .collect();
            let progress = progress_bar(reports.len(), "labelling", "reports");
            let mut out = open_output(output.as_deref())?;
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
        Command::Eval {
            source,
            split,
            split_file,
            uncertain,
            markdown,
            ner,
        } => {
            let corpus = source::load_corpus(&source, None)?;
            let assigned = read_split_file(&split_file)?;
            let mut reports = Vec::new();
            for r in &corpus.reports {
                let s = *assigned.get(&r.id).with_context(|| {
                    format!(
                        "report {} is not in {}; regenerate it with `integrabner split`",
                        r.id,
                        split_file.display()
                    )
                })?;
                if split.includes(s) {
                    reports.push(r);
                }
            }
            let mut labeler = ner.labeler()?;
            labeler.pipeline.findings.uncertain_is_coded = uncertain == UncertainArg::Coded;
            let progress = progress_bar(reports.len(), "evaluating", "reports");
            let result = eval::evaluate(
                ner.system_name(),
                &labeler.pipeline.vocab,
                |r| labeler.predict(&r.id, &r.text()).ok(),
                reports,
                &progress,
            );
            progress.finish_and_clear();
            let md = eval::markdown(&result, split.name(), &labeler.pipeline.vocab);
            crate::print_markdown(&md, markdown.as_deref())
        }
        Command::Predict {
            input,
            output,
            text_model,
            rules_only,
            image_model,
            fusion_model,
            images,
            openi_images,
            scores,
            unverified,
        } => predict::run(&predict::PredictOptions {
            input: input.as_deref(),
            output: output.as_deref(),
            text_model: text_model.as_deref(),
            image_model: image_model.as_deref(),
            fusion_model: fusion_model.as_deref(),
            rules_only,
            images: &images,
            openi_images: openi_images.as_deref(),
            scores,
            trust: model_dir::Trust::from_flag(unverified),
        }),
        Command::Ner(command) => ner::run(command),
        Command::Report(command) => report::run(command),
        Command::Image(command) => image::run(command),
        Command::Fusion(command) => fusion::run(command),
        Command::Export { bundle, check } => {
            export::run(&bundle, check)?;
            Ok(EXIT_OK)
        }
    }
}

fn read_split_file(path: &Path) -> Result<std::collections::HashMap<String, Split>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read split file {}", path.display()))?;
    Ok(parse_split_file(&text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        .into_iter()
        .collect())
}

/// Prints an evaluation's Markdown and, when asked, writes it to a file too.
fn print_markdown(md: &str, file: Option<&Path>) -> Result<u8> {
    if let Some(path) = file {
        std::fs::write(path, md).with_context(|| format!("cannot write {}", path.display()))?;
    }
    println!("{md}");
    Ok(EXIT_OK)
}

fn open_output(path: Option<&Path>) -> Result<Box<dyn Write>> {
    Ok(match path {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    })
}

/// The progress bar of every long command: `what` is happening to `len`
/// items counted in `unit` (reports, images, windows).
pub(crate) fn progress_bar(len: usize, what: &str, unit: &str) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{{msg:>22}} [{{bar:40}}] {{pos}}/{{len}} {unit} ({{per_sec}}, {{eta}} left)"
        ))
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}
