//! `integrabner fusion`: train, score and write the fusion model.

use crate::EXIT_OK;
use anyhow::Result;
use clap::Subcommand;
use integrabner_train::fusion::run::{train_and_write, FusionSources};
use integrabner_train::fusion::FusionTraining;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum FusionCommand {
    /// Train the fusion model, fit its per-concept thresholds on validation,
    /// write it (OUT/{config.json, model.gguf, manifest.json}) and score the
    /// written model on the test splits.
    ///
    /// No report has its image here, so training uses OpenI reports alone,
    /// NIH images alone, and pairs constructed by matching labels: an NIH
    /// image with an OpenI report of the same split whose coding agrees on
    /// the 14 concepts both label (see EVALUATION.md for what that can and
    /// cannot show).
    Train(FusionTrainArgs),
}

#[derive(clap::Args)]
pub struct FusionTrainArgs {
    /// OpenI reports (.tgz, XML directory or indiana_reports.csv).
    #[arg(long, default_value = "../shared/data/openi/NLMCXR_reports.tgz")]
    source: PathBuf,
    #[arg(long, default_value = "data/splits/openi-split-v1.tsv")]
    split_file: PathBuf,
    /// The report model whose finding logits are the text input.
    #[arg(long, default_value = "models/text")]
    text_model: PathBuf,
    /// An `image train` output: cached pooled features of every NIH
    /// split, the head and its config.
    #[arg(long, default_value = "runs/image-efficientnet-lite0")]
    image_run: PathBuf,
    /// NIH ChestX-ray14 labels (the image side's targets).
    #[arg(long, default_value = "../shared/data/nih-cxr")]
    nih: PathBuf,
    #[arg(long, default_value = "models/fusion")]
    out: PathBuf,
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Chosen on validation loss among 1e-3 and 3e-4 (EVALUATION.md).
    #[arg(long, default_value_t = 3e-4)]
    learning_rate: f64,
    /// Chance of dropping each modality of a training pair in an epoch;
    /// chosen on validation loss among 0.25 and 0.5.
    #[arg(long, default_value_t = 0.5)]
    modality_dropout: f32,
    /// The OpenI images, when you have them (NLMCXR_png names such as
    /// CXR1_1_IM-0001-4001.png, or the CSV layout's
    /// 1_IM-0001-4001.dcm.png): each report with its own images becomes
    /// a real pair, in training, validation and test.
    #[arg(long, value_name = "DIR")]
    openi_images: Option<PathBuf>,
    /// The image model that reads the OpenI images (the one the NIH
    /// features came from, as shipped).
    #[arg(long, default_value = "models/image")]
    image_model: PathBuf,
}

pub fn run(command: FusionCommand) -> Result<u8> {
    match command {
        FusionCommand::Train(args) => train(&args),
    }
}

fn train(args: &FusionTrainArgs) -> Result<u8> {
    let sources = FusionSources {
        reports: &args.source,
        split_file: &args.split_file,
        text_model: &args.text_model,
        image_run: &args.image_run,
        nih: &args.nih,
        openi_images: args.openi_images.as_deref(),
        image_model: &args.image_model,
    };
    let settings = FusionTraining {
        learning_rate: args.learning_rate,
        modality_dropout: args.modality_dropout,
        seed: args.seed,
    };
    println!("{}", train_and_write(&sources, &args.out, settings)?);
    Ok(EXIT_OK)
}
