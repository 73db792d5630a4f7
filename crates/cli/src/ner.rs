//! `integrabner ner`: train and evaluate the BERT NER models on IOB corpora.

use crate::training::{run_interruptibly, TrainArgs};
use crate::EXIT_OK;
use anyhow::Result;
use clap::Subcommand;
use integrabner_train::ner::{self, read_iob_file, score_file, NerModel, TrainConfig, TrainData};
use integrabner_train::{checkpoint, trainer};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum NerCommand {
    /// Fine-tune a BERT checkpoint for token classification.
    ///
    /// Reads DATA/train.tsv and DATA/devel.tsv (token<TAB>IOB tag). Writes the
    /// best model by development span F1 to OUT/best and a resumable state to
    /// OUT/state: run the same command again to continue an interrupted run.
    Train(NerTrainArgs),
    /// Quantize a trained model into a shipped bundle directory and measure it.
    ///
    /// Writes OUT/{model.gguf, config.json, tokenizer.json, manifest.json}; the
    /// manifest records the strict span F1 of the quantized model on each
    /// --eval file.
    Export(NerExportArgs),
    /// Average the weights of fine-tuned models (a "model soup").
    ///
    /// Models fine-tuned from the same base with the same seed (so the same
    /// head initialization), e.g. runs with different learning rates or
    /// schedules, often average into a model better than each; compare the
    /// result on the development set before using it. Writes a model
    /// directory like a training run's best/ (export it as usual).
    Average(NerAverageArgs),
    /// Strict span-level micro P/R/F1 of a model on an IOB file. The last
    /// line is exactly `span-f1 <value>`.
    Eval(NerEvalArgs),
}

#[derive(clap::Args)]
pub struct NerTrainArgs {
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
}

#[derive(clap::Args)]
pub struct NerExportArgs {
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
}

#[derive(clap::Args)]
pub struct NerAverageArgs {
    /// A trained or exported model directory (at least two; repeatable).
    #[arg(long, required = true, num_args = 1, value_name = "DIR")]
    model: Vec<PathBuf>,
    #[arg(long)]
    out: PathBuf,
}

#[derive(clap::Args)]
pub struct NerEvalArgs {
    #[arg(long)]
    model: PathBuf,
    #[arg(long)]
    data: PathBuf,
}

pub fn run(command: NerCommand) -> Result<u8> {
    match command {
        NerCommand::Train(args) => train(&args),
        NerCommand::Export(args) => {
            ner::export_scored(&args.model, &args.out, &args.eval, &args.provenance)?;
            Ok(EXIT_OK)
        }
        NerCommand::Average(args) => average(&args),
        NerCommand::Eval(args) => eval(&args),
    }
}

fn train(args: &NerTrainArgs) -> Result<u8> {
    let mut train = read_iob_file(&args.data.join("train.tsv"))?;
    for file in &args.extra_train {
        train.extend(read_iob_file(file)?);
    }
    if let Some(n) = args.training.limit {
        train.truncate(n);
    }
    let dev = read_iob_file(&args.data.join("devel.tsv"))?;
    let config = TrainConfig {
        freeze_word_embeddings: !args.train_word_embeddings,
        ..args.training.config(TrainConfig::default())
    };
    let data = TrainData {
        train: &train,
        dev: &dev,
    };
    run_interruptibly(&args.out, |keep_going| {
        ner::train(&args.base, data, &args.out, config, keep_going)
    })
}

fn average(args: &NerAverageArgs) -> Result<u8> {
    let tensors = checkpoint::average_models(&args.model, &candle_core::Device::Cpu)?;
    let config = ner::load_config(&args.model[0])?;
    trainer::write_model_dir(&args.out, &args.model[0], &config, &tensors)?;
    eprintln!(
        "wrote the mean of {} models to {}",
        args.model.len(),
        args.out.display()
    );
    Ok(EXIT_OK)
}

fn eval(args: &NerEvalArgs) -> Result<u8> {
    let counts = score_file(&NerModel::load(&args.model)?, &args.data)?;
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
