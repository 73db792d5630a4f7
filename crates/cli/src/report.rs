//! `integrabner report`: train, evaluate and export the report model.

use crate::corpus::read_split_file;
use crate::training::TrainArgs;
use crate::{source, EXIT_OK};
use anyhow::{Context, Result};
use clap::Subcommand;
use integrabner_core::calibration::expected_calibration_error;
use integrabner_core::split::Split;
use integrabner_core::RulePipeline;
use integrabner_train::export;
use integrabner_train::report::data::{labelled_reports, Silver};
use integrabner_train::report::eval::{calibrate, evaluation_markdown, probability_pairs};
use integrabner_train::report::{self, LabelledReport};
use integrabner_train::trainer::TrainConfig;
use std::collections::{BTreeMap, HashMap};
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
    /// The reports of each split with their gold coding, and their silver
    /// spans; a report of a split in `spans_of` must have them (the others
    /// get none; with no such split the silver file is not read).
    pub fn load(
        &self,
        rules: &RulePipeline,
        spans_of: &[Split],
    ) -> Result<HashMap<Split, Vec<LabelledReport>>> {
        let corpus = source::load_corpus(&self.source, None)?;
        let assigned = read_split_file(&self.split_file)?;
        let silver = if spans_of.is_empty() {
            Silver::default()
        } else {
            let text = std::fs::read_to_string(&self.silver)
                .with_context(|| format!("cannot read {}", self.silver.display()))?;
            Silver::parse(&text, &self.silver.display().to_string())?
        };
        labelled_reports(&corpus, &assigned, &silver, rules, spans_of)
    }
}

#[derive(Subcommand)]
pub enum ReportCommand {
    /// Fine-tune a BERT checkpoint into the report model (tags, assertions,
    /// coded findings) on the train split; early stopping on validation.
    ///
    /// Writes the best model to OUT/best and a resumable state to OUT/state:
    /// run the same command again to continue an interrupted run.
    Train {
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
    },
    /// Score a report model on a split: entities against the silver spans,
    /// assertions, and coded findings against the manual MeSH coding for the
    /// rule labeler, the model on text alone and the model with the rules'
    /// evidence; calibration, per-concept scores and the most frequent errors.
    Eval {
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
    },
    /// Quantize a trained model (Q8_0) into a bundle directory, fit its
    /// temperature and decision threshold on the validation split, and record
    /// its test scores (quantized and f32) in the directory's manifest.
    Export {
        #[command(flatten)]
        data: ReportData,
        #[arg(long, default_value = "runs/report/best")]
        model: PathBuf,
        #[arg(long, default_value = "models/text")]
        out: PathBuf,
        /// Where the model came from, for the manifest.
        #[arg(long)]
        provenance: String,
    },
}

pub fn run(command: ReportCommand) -> Result<u8> {
    match command {
        ReportCommand::Train {
            data,
            base,
            out,
            layers,
            feed_forward_width,
            findings_weight,
            teacher,
            teacher_share,
            training,
        } => {
            let rules = RulePipeline::embedded();
            let mut splits = data.load(&rules, &[Split::Train, Split::Validation])?;
            let mut train = splits.remove(&Split::Train).unwrap_or_default();
            if let Some(n) = training.limit {
                train.truncate(n);
            }
            let dev = splits.remove(&Split::Validation).unwrap_or_default();
            let config = training.config(TrainConfig {
                max_len: report::MAX_LEN,
                stride: report::STRIDE,
                ..TrainConfig::default()
            });
            eprintln!(
                "{} train reports, {} validation reports",
                train.len(),
                dev.len()
            );
            let teacher = teacher.as_deref().map(report::load_tagger).transpose()?;
            crate::training::run_interruptibly(&out, |keep_going| {
                let recipe = report::Recipe {
                    base: &base,
                    layers,
                    feed_forward_width,
                    findings_weight,
                    teacher: teacher.as_ref().map(|model| report::Teacher {
                        model,
                        share: teacher_share,
                    }),
                };
                report::train(recipe, &rules, &train, &dev, &out, config, keep_going)
            })
        }
        ReportCommand::Eval {
            data,
            model,
            split,
            markdown,
        } => {
            let rules = RulePipeline::embedded();
            let wanted: Vec<Split> = [Split::Train, Split::Validation, Split::Test]
                .into_iter()
                .filter(|s| split.includes(*s))
                .collect();
            let splits = data.load(&rules, &wanted)?;
            let tagger = report::load_tagger(&model)?;
            tagger.check_rules(&rules)?;
            let reports: Vec<LabelledReport> = splits
                .iter()
                .filter(|(s, _)| split.includes(**s))
                .flat_map(|(_, r)| r.iter().cloned())
                .collect();
            let train = splits.get(&Split::Train).map_or(&[][..], Vec::as_slice);
            let md = evaluation_markdown(&tagger, &rules, &reports, train, split.name())?;
            crate::print_markdown(&md, markdown.as_deref())
        }
        ReportCommand::Export {
            data,
            model,
            out,
            provenance,
        } => {
            let rules = RulePipeline::embedded();
            let splits = data.load(&rules, &[Split::Validation, Split::Test])?;
            let part = |s| splits.get(&s).map_or(&[][..], Vec::as_slice);
            export::write_model_files(&model, &out)?;
            let mut quantized = report::load_tagger(&out)?;
            let (temperature, threshold) =
                calibrate(&mut quantized, &rules, part(Split::Validation))?;
            let config_path = out.join("config.json");
            let mut config = quantized.config.clone();
            config.temperature = temperature as f32;
            config.threshold = threshold;
            std::fs::write(&config_path, serde_json::to_string_pretty(&config)?)?;
            eprintln!("validation: temperature {temperature:.2}, threshold {threshold:.2}");

            let mut metrics = BTreeMap::new();
            let test = part(Split::Test);
            for (name, dir) in [("q8", &out), ("f32", &model)] {
                let mut tagger = report::load_tagger(dir)?;
                tagger.config.temperature = config.temperature;
                tagger.config.threshold = config.threshold;
                let (scores, outputs) = report::evaluate(&tagger, &rules, test, true)?;
                let prefix = if name == "q8" {
                    String::new()
                } else {
                    format!("{name} ")
                };
                metrics.insert(format!("{prefix}test span-f1"), scores.spans.f1());
                metrics.insert(
                    format!("{prefix}test findings micro-f1"),
                    scores.findings.micro().f1,
                );
                metrics.insert(
                    format!("{prefix}test findings macro-f1"),
                    scores.findings.macro_supported().f1,
                );
                if name == "q8" {
                    metrics.insert(
                        "test findings ece".into(),
                        expected_calibration_error(&probability_pairs(&tagger, test, &outputs), 10),
                    );
                }
                eprintln!(
                    "test ({name}): span F1 {:.4}, findings micro-F1 {:.4}, macro-F1 {:.4}",
                    scores.spans.f1(),
                    scores.findings.micro().f1,
                    scores.findings.macro_supported().f1
                );
            }
            crate::export::write_model_manifest(
                &out,
                &integrabner_core::bundle::TEXT_MODEL_FILES,
                &provenance,
                metrics,
            )?;
            Ok(EXIT_OK)
        }
    }
}
