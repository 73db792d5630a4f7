//! `integrabner qualifiers`: fit the qualifier lexicon's heading table.

use crate::EXIT_OK;
use anyhow::{Context, Result};
use clap::Subcommand;
use integrabner_core::qualifiers::QualifierFile;
use integrabner_core::split::Split;
use integrabner_core::RulePipeline;
use integrabner_train::qualifier_fit::fit;
use integrabner_train::source::{load_corpus, read_split_file};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum QualifiersCommand {
    /// Fit which qualifiers each heading takes, from the manual coding of
    /// the train split, and write them into the lexicon.
    ///
    /// For each heading: the qualifiers its codings use at least N times
    /// (others found in a report are dropped), and those in at least a
    /// share S of its codings (added when the report says nothing of their
    /// kind: an opacity is in the lung unless said otherwise). N and S are
    /// chosen on the validation split's (heading, qualifier) pair F1 with
    /// the rule labeler's findings; the test split is not read. The
    /// lexicon's terms, phrases and compounds are kept as they are. Then
    /// run `integrabner export` (the bundle manifest lists the file).
    Fit(FitArgs),
}

#[derive(clap::Args)]
pub struct FitArgs {
    /// OpenI reports (.tgz, XML directory or indiana_reports.csv).
    #[arg(long, default_value = "../shared/data/openi/NLMCXR_reports.tgz")]
    source: PathBuf,
    #[arg(long, default_value = "data/splits/openi-split-v1.tsv")]
    split_file: PathBuf,
    /// The lexicon to read and rewrite.
    #[arg(long, default_value = "models/rules/qualifiers.json")]
    lexicon: PathBuf,
}

pub fn run(command: QualifiersCommand) -> Result<u8> {
    match command {
        QualifiersCommand::Fit(args) => fit_heading_table(&args),
    }
}

fn fit_heading_table(args: &FitArgs) -> Result<u8> {
    let text = std::fs::read_to_string(&args.lexicon)
        .with_context(|| format!("cannot read {}", args.lexicon.display()))?;
    let lexicon: QualifierFile = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a qualifier lexicon", args.lexicon.display()))?;
    let corpus = load_corpus(&args.source, None)?;
    let assigned = read_split_file(&args.split_file)?;
    let of = |split: Split| {
        corpus
            .reports
            .iter()
            .filter(|r| assigned.get(&r.id) == Some(&split))
            .collect::<Vec<_>>()
    };
    let pipeline = RulePipeline::embedded();
    let fitted = fit(
        &lexicon,
        &pipeline,
        &of(Split::Train),
        &of(Split::Validation),
    )?;
    let mut json = serde_json::to_string_pretty(&fitted.file)?;
    json.push('\n');
    std::fs::write(&args.lexicon, json)
        .with_context(|| format!("cannot write {}", args.lexicon.display()))?;
    println!("{}", fitted.grid);
    println!(
        "chosen on validation: allowed when used at least {} times, default when in at least {} of a heading's codings\n",
        fitted.min_count,
        if fitted.default_share > 1.0 {
            "none".to_string()
        } else {
            format!("{:.1}", fitted.default_share)
        }
    );
    println!("{}", fitted.validation.markdown("rule labeler, validation"));
    eprintln!(
        "wrote {} ({} headings)",
        args.lexicon.display(),
        fitted.file.headings.len()
    );
    Ok(EXIT_OK)
}
