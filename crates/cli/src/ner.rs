//! `integrabner ner`: train and evaluate the BERT NER models on IOB corpora.

use crate::training::TrainArgs;
use crate::EXIT_OK;
use anyhow::{Context, Result};
use clap::Subcommand;
use integrabner_models::iob::{parse_iob, Sentence, SpanCounts};
use integrabner_train::ner::{self, NerModel, TrainConfig, TrainData};
use integrabner_train::{checkpoint, export, trainer};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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
        /// More training sentences from another corpus with the same entity
        /// type, e.g. BC5CDR-disease-IOB/train.tsv beside NCBI-disease
        /// (repeatable). Early stopping still reads only DATA/devel.tsv.
        #[arg(long, value_name = "TSV")]
        extra_train: Vec<PathBuf>,
        /// Fine-tune the word-embedding table too (frozen by default: it holds
        /// half of MiniLM's parameters, and freezing makes steps about 1.4x
        /// faster). Lets domain words the general-domain start knows poorly
        /// move.
        #[arg(long)]
        train_word_embeddings: bool,
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        training: TrainArgs,
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
    /// Average the weights of fine-tuned models (a "model soup").
    ///
    /// Models fine-tuned from the same base with the same seed (so the same
    /// head initialization), e.g. runs with different learning rates or
    /// schedules, often average into a model better than each; compare the
    /// result on the development set before using it. Writes a model
    /// directory like a training run's best/ (export it as usual).
    Average {
        /// A trained or exported model directory (at least two; repeatable).
        #[arg(long, required = true, num_args = 1, value_name = "DIR")]
        model: Vec<PathBuf>,
        #[arg(long)]
        out: PathBuf,
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
    let bar = crate::progress_bar(sentences.len(), "tagging", "sentences");
    let counts = model.evaluate(&sentences, &bar)?;
    bar.finish_and_clear();
    Ok(counts)
}

fn read_corpus(path: &Path) -> Result<Vec<Sentence>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse_iob(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

pub fn run(command: NerCommand) -> Result<u8> {
    match command {
        NerCommand::Train {
            base,
            data,
            extra_train,
            train_word_embeddings,
            out,
            training,
        } => {
            let mut train = read_corpus(&data.join("train.tsv"))?;
            for file in &extra_train {
                train.extend(read_corpus(file)?);
            }
            if let Some(n) = training.limit {
                train.truncate(n);
            }
            let dev = read_corpus(&data.join("devel.tsv"))?;
            let config = TrainConfig {
                freeze_word_embeddings: !train_word_embeddings,
                ..training.config(TrainConfig::default())
            };
            let data = TrainData {
                train: &train,
                dev: &dev,
            };
            crate::training::run_interruptibly(&out, |keep_going| {
                ner::train(&base, data, &out, config, keep_going)
            })
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
            crate::export::write_model_manifest(
                &out,
                &integrabner_core::bundle::TEXT_MODEL_FILES,
                &provenance,
                metrics,
            )?;
            Ok(EXIT_OK)
        }
        NerCommand::Average { model, out } => {
            let tensors = checkpoint::average_models(&model, &candle_core::Device::Cpu)?;
            let config = ner::load_config(&model[0])?;
            trainer::write_model_dir(&out, &model[0], &config, &tensors)?;
            eprintln!(
                "wrote the mean of {} models to {}",
                model.len(),
                out.display()
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
