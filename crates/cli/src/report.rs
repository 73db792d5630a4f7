//! `integrabner report`: train, evaluate and export the report model.

use crate::training::{run_interruptibly, TrainArgs};
use crate::EXIT_OK;
use anyhow::Result;
use clap::Subcommand;
use integrabner_core::split::Split;
use integrabner_core::RulePipeline;
use integrabner_train::report::data::ReportSources;
use integrabner_train::report::decide;
use integrabner_train::report::eval::evaluation_markdown;
use integrabner_train::report::export::export_calibrated;
use integrabner_train::report::{self, LabelledReport};
use integrabner_train::trainer::TrainConfig;
use std::path::PathBuf;

/// Where the report model learns from.
#[derive(clap::Args, Clone)]
pub struct ReportData {
    /// OpenI reports (.tgz, XML directory or indiana_reports.csv).
    #[arg(long, default_value = "../shared/data/openi/NLMCXR_reports.tgz")]
    pub source: PathBuf,
    /// Silver annotations from `integrabner label --ner-disease … --ner-anatomy …`
    /// (at least for the splits the command reads spans from).
    #[arg(long, default_value = "runs/silver.jsonl")]
    pub silver: PathBuf,
    #[arg(long, default_value = "data/splits/openi-split-v1.tsv")]
    pub split_file: PathBuf,
}

impl ReportData {
    pub fn sources(&self) -> ReportSources<'_> {
        ReportSources {
            reports: &self.source,
            split_file: &self.split_file,
            silver: &self.silver,
        }
    }
}

#[derive(Subcommand)]
pub enum ReportCommand {
    /// Fine-tune a BERT checkpoint into the report model (tags, assertions,
    /// coded findings) on the train split; early stopping on validation.
    ///
    /// Writes the best model to OUT/best and a resumable state to OUT/state:
    /// run the same command again to continue an interrupted run.
    Train(ReportTrainArgs),
    /// Score a report model on a split: entities against the silver spans,
    /// assertions, and coded findings against the manual MeSH coding for the
    /// rule labeler, the model on text alone and the model with the rules'
    /// evidence; calibration, per-concept scores and the most frequent errors.
    Eval(ReportEvalArgs),
    /// Quantize a trained model (Q8_0) into a bundle directory, fit its
    /// temperature and decision threshold on the validation split, and record
    /// its test scores (quantized and f32) in the directory's manifest.
    Export(ReportExportArgs),
    /// Choose, per concept, who codes it: the model at its threshold, the
    /// rule labeler, either or both, by F1 on the validation split
    /// (concepts coded in fewer than 5 validation reports share one
    /// decision, fitted on their pooled counts).
    ///
    /// Writes the decisions into MODEL/config.json, then scores the test
    /// split once and records it in MODEL/manifest.json beside the model's
    /// own scores. Run `integrabner export` afterwards to refresh the
    /// bundle's manifest.
    Decide(ReportDecideArgs),
}

#[derive(clap::Args)]
pub struct ReportDecideArgs {
    #[command(flatten)]
    data: ReportData,
    /// A bundle directory (config.json, model.gguf, manifest.json).
    #[arg(long, default_value = "models/text")]
    model: PathBuf,
    /// Print the validation tables only: write nothing, leave test unread.
    #[arg(long)]
    dry_run: bool,
    /// Also write the tables as Markdown to this file.
    #[arg(long)]
    markdown: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct ReportTrainArgs {
    #[command(flatten)]
    data: ReportData,
    /// Starting checkpoint directory; see scripts/fetch-minilm.
    #[arg(long, default_value = "weights/all-MiniLM-L6-v2")]
    base: PathBuf,
    #[arg(long, default_value = "runs/report")]
    out: PathBuf,
    /// Keep only the base's bottom N encoder layers: a smaller, faster
    /// model (3 of all-MiniLM-L6-v2's 6 halves the encoder's work).
    #[arg(long)]
    layers: Option<usize>,
    /// Keep only N feed-forward neurons per layer, the strongest by weight
    /// norms (all-MiniLM-L6-v2 has 1536; 768 leaves two thirds of the
    /// encoder's work at the same depth).
    #[arg(long, value_name = "N")]
    feed_forward_width: Option<usize>,
    /// Weight of the coded-findings loss beside the tag and assertion losses.
    #[arg(long, default_value_t = report::FINDINGS_WEIGHT)]
    findings_weight: f64,
    /// Distil a trained report model (a training output or a bundle such
    /// as models/text): the findings targets become a mix of its
    /// probabilities and the manual coding.
    #[arg(long)]
    teacher: Option<PathBuf>,
    /// The teacher's weight in each findings target (0 to 1).
    #[arg(long, default_value_t = 0.5, requires = "teacher")]
    teacher_share: f32,
    #[command(flatten)]
    training: TrainArgs,
}

#[derive(clap::Args)]
pub struct ReportEvalArgs {
    #[command(flatten)]
    data: ReportData,
    /// A training output (runs/report/best) or a bundle (models/text).
    #[arg(long, default_value = "models/text")]
    model: PathBuf,
    /// Develop on validation; look at test once.
    #[arg(long, value_enum, default_value = "validation")]
    split: crate::args::SplitArg,
    /// Also write the tables as Markdown to this file.
    #[arg(long)]
    markdown: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct ReportExportArgs {
    #[command(flatten)]
    data: ReportData,
    #[arg(long, default_value = "runs/report/best")]
    model: PathBuf,
    #[arg(long, default_value = "models/text")]
    out: PathBuf,
    /// Where the model came from, for the manifest.
    #[arg(long)]
    provenance: String,
}

pub fn run(command: ReportCommand) -> Result<u8> {
    match command {
        ReportCommand::Train(args) => train(&args),
        ReportCommand::Eval(args) => eval(&args),
        ReportCommand::Export(args) => {
            let sources = args.data.sources();
            export_calibrated(&sources, &args.model, &args.out, &args.provenance)?;
            Ok(EXIT_OK)
        }
        ReportCommand::Decide(args) => decide(&args),
    }
}

fn decide(args: &ReportDecideArgs) -> Result<u8> {
    let rules = RulePipeline::embedded();
    let mut splits = args.data.sources().load(&rules, &[])?;
    let mut part = |s| splits.remove(&s).unwrap_or_default();
    let validation = part(Split::Validation);
    let md = if args.dry_run {
        let mut tagger = report::load_tagger(&args.model)?;
        tagger.check_rules(&rules)?;
        decide::decide(&mut tagger, &rules, &validation)?
    } else {
        decide::decide_bundle(&args.model, &rules, &validation, &part(Split::Test))?
    };
    crate::print_markdown(&md, args.markdown.as_deref())
}

fn train(args: &ReportTrainArgs) -> Result<u8> {
    let rules = RulePipeline::embedded();
    let mut splits = args
        .data
        .sources()
        .load(&rules, &[Split::Train, Split::Validation])?;
    let mut train = splits.remove(&Split::Train).unwrap_or_default();
    if let Some(n) = args.training.limit {
        train.truncate(n);
    }
    let dev = splits.remove(&Split::Validation).unwrap_or_default();
    let config = args.training.config(TrainConfig {
        max_len: report::MAX_LEN,
        stride: report::STRIDE,
        ..TrainConfig::default()
    });
    eprintln!(
        "{} train reports, {} validation reports",
        train.len(),
        dev.len()
    );
    let teacher = args
        .teacher
        .as_deref()
        .map(report::load_tagger)
        .transpose()?;
    run_interruptibly(&args.out, |keep_going| {
        let recipe = report::Recipe {
            base: &args.base,
            layers: args.layers,
            feed_forward_width: args.feed_forward_width,
            findings_weight: args.findings_weight,
            teacher: teacher.as_ref().map(|model| report::Teacher {
                model,
                share: args.teacher_share,
            }),
        };
        report::train(recipe, &rules, &train, &dev, &args.out, config, keep_going)
    })
}

fn eval(args: &ReportEvalArgs) -> Result<u8> {
    let rules = RulePipeline::embedded();
    let split = args.split;
    let wanted: Vec<Split> = [Split::Train, Split::Validation, Split::Test]
        .into_iter()
        .filter(|s| split.includes(*s))
        .collect();
    let splits = args.data.sources().load(&rules, &wanted)?;
    let tagger = report::load_tagger(&args.model)?;
    tagger.check_rules(&rules)?;
    let reports: Vec<LabelledReport> = splits
        .iter()
        .filter(|(s, _)| split.includes(**s))
        .flat_map(|(_, r)| r.iter().cloned())
        .collect();
    let train = splits.get(&Split::Train).map_or(&[][..], Vec::as_slice);
    let md = evaluation_markdown(&tagger, &rules, &reports, train, split.name())?;
    crate::print_markdown(&md, args.markdown.as_deref())
}
