//! `integrabner ner`: train and evaluate the BERT NER models on IOB corpora.

use crate::EXIT_OK;
use anyhow::{Context, Result};
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use integrabner_models::iob::{parse_iob, Sentence, SpanCounts};
use integrabner_train::export;
use integrabner_train::ner::{self, NerModel, Outcome, TrainConfig, TrainData};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[derive(Subcommand)]
pub enum NerCommand {
    /// Fine-tune a BERT checkpoint for token classification.
    ///
    /// Reads DATA/train.tsv and DATA/devel.tsv (token<TAB>IOB tag). Writes the
    /// best model by development span F1 to OUT/best and a resumable state to
    /// OUT/state: run the same command again to continue an interrupted run.
    Train {
        /// Starting checkpoint directory (config.json, model.safetensors or
        /// pytorch_model.bin, tokenizer.json or vocab.txt); see scripts/fetch-minilm.
        #[arg(long, default_value = "weights/all-MiniLM-L6-v2")]
        base: PathBuf,
        /// Corpus directory with train.tsv and devel.tsv.
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = TrainConfig::default().epochs)]
        epochs: usize,
        #[arg(long, default_value_t = TrainConfig::default().learning_rate)]
        learning_rate: f64,
        #[arg(long, default_value_t = TrainConfig::default().batch_size)]
        batch_size: usize,
        #[arg(long, default_value_t = TrainConfig::default().seed)]
        seed: u64,
        /// Stop after this many sentences of train.tsv (quick trials).
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Quantize a trained model into a shipped bundle directory and measure it.
    ///
    /// Writes OUT/{model.gguf, config.json, tokenizer.json, manifest.json}; the
    /// manifest records the strict span F1 of the quantized model on each
    /// --eval file.
    Export {
        /// A training output, e.g. runs/ncbi-disease/best.
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// IOB files to score the quantized model on (repeatable).
        #[arg(long)]
        eval: Vec<PathBuf>,
        /// Where the model came from, for the manifest.
        #[arg(long)]
        provenance: String,
    },
    /// Strict span-level micro P/R/F1 of a model on an IOB file. The last
    /// line is exactly `span-f1 <value>`.
    Eval {
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        data: PathBuf,
    },
}

fn score(model: &NerModel, data: &Path) -> Result<SpanCounts> {
    let sentences = read_corpus(data)?;
    let bar = ProgressBar::new(sentences.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} windows ({eta} left)")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message("tagging");
    let counts = model.evaluate(&sentences, &bar)?;
    bar.finish_and_clear();
    Ok(counts)
}

fn read_corpus(path: &Path) -> Result<Vec<Sentence>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse_iob(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Exit status of `ner train` when Ctrl+C stopped it (state saved).
const EXIT_INTERRUPTED: u8 = 130;

pub fn run(command: NerCommand) -> Result<u8> {
    match command {
        NerCommand::Train {
            base,
            data,
            out,
            epochs,
            learning_rate,
            batch_size,
            seed,
            limit,
        } => {
            let mut train = read_corpus(&data.join("train.tsv"))?;
            if let Some(n) = limit {
                train.truncate(n);
            }
            let dev = read_corpus(&data.join("devel.tsv"))?;
            let config = TrainConfig {
                epochs,
                learning_rate,
                batch_size,
                seed,
                ..TrainConfig::default()
            };
            // Ctrl+C finishes the current step, saves the state and exits;
            // the same command then resumes.
            let interrupted = Arc::new(AtomicBool::new(false));
            let flag = interrupted.clone();
            ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
                .context("cannot install the Ctrl+C handler")?;
            let data = TrainData {
                train: &train,
                dev: &dev,
            };
            let keep_going = |_| !interrupted.load(Ordering::SeqCst);
            match ner::train(&base, data, &out, config, keep_going)? {
                Outcome::Finished(history) => {
                    let best = history.iter().map(|r| r.dev_f1).fold(f64::NAN, f64::max);
                    eprintln!(
                        "best development span F1 {best:.4}; model in {}",
                        out.join("best").display()
                    );
                    Ok(EXIT_OK)
                }
                Outcome::Interrupted { optimizer_step } => {
                    eprintln!(
                        "interrupted after step {optimizer_step}; state saved in {}; run the same command to resume",
                        out.join("state").display()
                    );
                    Ok(EXIT_INTERRUPTED)
                }
            }
        }
        NerCommand::Export {
            model,
            out,
            eval,
            provenance,
        } => {
            export::write_model_files(&model, &out)?;
            let quantized = NerModel::load(&out)?;
            let mut metrics = BTreeMap::new();
            for file in &eval {
                let counts = score(&quantized, file)?;
                let name = file
                    .iter()
                    .rev()
                    .take(2)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<PathBuf>();
                eprintln!("{}: span F1 {:.4}", name.display(), counts.f1());
                metrics.insert(format!("span-f1 {}", name.display()), counts.f1());
            }
            let manifest = export::write_manifest(&out, &provenance, metrics)?;
            let bytes: u64 = manifest.files.iter().map(|f| f.bytes).sum();
            eprintln!(
                "wrote {} ({:.1} MB, version {})",
                out.display(),
                bytes as f64 / 1e6,
                manifest.version
            );
            Ok(EXIT_OK)
        }
        NerCommand::Eval { model, data } => {
            let counts = score(&NerModel::load(&model)?, &data)?;
            println!(
                "spans: {} gold, {} predicted, {} correct",
                counts.true_positives + counts.false_negatives,
                counts.true_positives + counts.false_positives,
                counts.true_positives
            );
            println!("precision {:.3}", counts.precision());
            println!("recall {:.3}", counts.recall());
            println!("span-f1 {:.3}", counts.f1());
            Ok(EXIT_OK)
        }
    }
}
