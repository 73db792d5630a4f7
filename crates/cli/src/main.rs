//! `integrabner`: build data, autolabel, evaluate and predict on chest
//! radiology reports.

mod args;
mod corpus;
mod export;
mod fusion;
mod image;
mod model_dir;
mod ner;
mod predict;
mod qualifiers;
mod report;
mod training;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::Path;
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

#[derive(Subcommand)]
enum Command {
    /// Read OpenI reports and write them as JSONL (sections, MeSH coding, images).
    Ingest(corpus::IngestArgs),
    /// Write the deterministic train/validation/test split of a corpus (id<TAB>split).
    ///
    /// Ids are OpenI's uIds (CXR8). The split depends on the id alone:
    /// SHA-256("openi-split-v1:" + its number), first 8 bytes mod 10; 0-7
    /// train, 8 validation, 9 test.
    Split(corpus::SplitArgs),
    /// Autolabel reports: one prediction (entities with assertion and
    /// source, findings) per report, as JSONL: the silver annotations of the
    /// report model. With --ner-disease/--ner-anatomy, the hybrid autolabeler.
    Label(corpus::LabelArgs),
    /// Evaluate document-level findings against the manual MeSH coding, beside
    /// the original system's substring baseline.
    Eval(corpus::EvalArgs),
    /// Analyse cases (a report, images, or both) and write one JSON object per case.
    ///
    /// INPUT may be an OpenI .tgz, XML directory or indiana_reports.csv, a .jsonl file of
    /// {"id", "text"?, "image"?, "images"?} lines (image paths relative to the
    /// file), a plain-text report, or "-" / nothing for a report on stdin;
    /// with only --image, the images are analysed alone.
    ///
    /// In a .jsonl line, "report" is accepted for "text", the id may be a
    /// string or a number (7 is written "7"), and any other field is refused
    /// by name, so that a misspelt "txt" is not read as a case without a
    /// report. An OpenI report's id is OpenI's uId ("CXR8" for
    /// ecgen-radiology/8.xml), as in `label`, `eval` and review sessions.
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
    Predict(predict::PredictArgs),
    /// Train or evaluate the BERT NER models (diseases, anatomy).
    #[command(subcommand)]
    Ner(ner::NerCommand),
    /// Train and evaluate image findings (NIH ChestX-ray14, frozen encoder).
    #[command(subcommand)]
    Image(image::ImageCommand),
    /// Train and score the fusion of report and image (two-token attention).
    #[command(subcommand)]
    Fusion(fusion::FusionCommand),
    /// Fit the qualifier lexicon (laterality, location, severity, …) on the
    /// manual coding.
    #[command(subcommand)]
    Qualifiers(qualifiers::QualifiersCommand),
    /// Train, evaluate and export the report model (BERT with entity,
    /// assertion and coded-findings heads).
    #[command(subcommand)]
    Report(report::ReportCommand),
    /// Write the manifest of the model bundle that the web app downloads.
    ///
    /// Lists every bundle file with its size and SHA-256 and derives the bundle
    /// version from them; the browser verifies each download against it and
    /// replaces its cached copy when the version changes.
    Export(export::ExportArgs),
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
        Command::Ingest(args) => corpus::ingest(&args),
        Command::Split(args) => corpus::split(&args),
        Command::Label(args) => corpus::label(&args),
        Command::Eval(args) => corpus::eval(&args),
        Command::Predict(args) => predict::run(&args),
        Command::Ner(command) => ner::run(command),
        Command::Report(command) => report::run(command),
        Command::Image(command) => image::run(command),
        Command::Fusion(command) => fusion::run(command),
        Command::Qualifiers(command) => qualifiers::run(command),
        Command::Export(args) => export::run(&args),
    }
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
