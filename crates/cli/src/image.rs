//! `integrabner image`: image findings on NIH ChestX-ray14 with a frozen encoder.

use crate::training::run_interruptibly;
use crate::EXIT_OK;
use anyhow::Result;
use clap::Subcommand;
use integrabner_models::encoder::EncoderConfig;
use integrabner_models::resnet::ResNetConfig;
use integrabner_train::image::run::{train_heads_and_evaluate, HeadsRun};
use integrabner_train::image::{export, INPUT_SIZE};
use integrabner_train::resnet_training;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum ImageCommand {
    /// Train the image-findings heads on NIH ChestX-ray14 (one over a frozen
    /// encoder's features, one over the image's grey-level layout), then
    /// score them on the test split: ROC-AUC with a 95 % bootstrap interval
    /// (patients resampled), and abnormal vs normal also per source
    /// resolution, on validation and test.
    ///
    /// Splits by patient (nih-split-v1: 0-6 train, 7 validation, 8-9 test).
    /// The layout head's weight is chosen on validation (0 drops it).
    /// Features and layouts are cached in OUT/features.safetensors; the model
    /// goes to OUT/{config.json, head.safetensors}, the test report to
    /// OUT/evaluation.md.
    Train(TrainHeadsArgs),
    /// Train a ResNet-50 from random weights on the NIH train split, end to
    /// end: there is no pretrained ResNet-50 to start from here.
    ///
    /// Every weight trains (batch norm with batch statistics; running
    /// statistics are estimated from the final weights over 256 training
    /// images), with mirroring and shifts as augmentation and early stopping
    /// on the validation split's mean ROC-AUC. About 12 minutes an epoch at
    /// 128 px on two cores; Ctrl+C saves the state and the same command
    /// resumes. OUT/best/model.safetensors has torchvision's names, so the
    /// next step is
    /// `image train --encoder resnet50 --weights OUT/best/model.safetensors --input-size 128`.
    TrainResnet(TrainResnetArgs),
    /// Write a trained image model into the bundle: encoder and head in one
    /// GGUF (8-bit blocks, depthwise kernels f16), its config, and a
    /// manifest with the test-split ROC-AUC of the written model beside the
    /// f32 model's, so that the quantization loss is on record, and the
    /// written model's abnormal-vs-normal AUC per source resolution with 95 %
    /// bootstrap intervals (patients resampled).
    Export(ExportArgs),
}

#[derive(clap::Args)]
pub struct TrainHeadsArgs {
    /// Directory with labels.csv and the images it names.
    #[arg(long, default_value = "../shared/data/nih-cxr")]
    nih: PathBuf,
    #[arg(long, value_enum, default_value = "efficientnet-lite0")]
    encoder: EncoderArg,
    /// The encoder's ImageNet weights: for EfficientNet-Lite0 our
    /// safetensors conversion (the default path); for ResNet-50 a
    /// torchvision `resnet50-*.pth` or timm `model.safetensors` (none
    /// ships with IntegraBNER).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Default: runs/image-ENCODER.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Side of the square input, in pixels: 224 for ImageNet weights,
    /// the training size for a ResNet-50 from `image train-resnet`.
    #[arg(long, default_value_t = INPUT_SIZE)]
    input_size: usize,
}

#[derive(clap::Args)]
pub struct TrainResnetArgs {
    #[arg(long, default_value = "../shared/data/nih-cxr")]
    nih: PathBuf,
    #[arg(long, default_value = "runs/resnet50-nih")]
    out: PathBuf,
    /// Side of the square input (the original system used 128).
    #[arg(long, default_value_t = 128)]
    input_size: usize,
    #[command(flatten)]
    training: crate::training::TrainArgs,
}

#[derive(clap::Args)]
pub struct ExportArgs {
    /// The `image train` output.
    #[arg(long, default_value = "runs/image-efficientnet-lite0")]
    model: PathBuf,
    /// The encoder weights the model was trained on (default: the
    /// EfficientNet-Lite0 conversion; required for ResNet-50).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// NIH ChestX-ray14, for the test-split scores.
    #[arg(long, default_value = "../shared/data/nih-cxr")]
    nih: PathBuf,
    #[arg(long, default_value = "models/image")]
    out: PathBuf,
}

/// The image encoders `image train` can use.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum EncoderArg {
    /// EfficientNet-Lite0 with the ImageNet weights that ship in `../shared`.
    EfficientnetLite0,
    /// ResNet-50 from a torchvision or timm checkpoint you provide.
    Resnet50,
}

impl EncoderArg {
    fn name(self) -> &'static str {
        match self {
            Self::EfficientnetLite0 => "efficientnet-lite0",
            Self::Resnet50 => "resnet50",
        }
    }

    fn config(self) -> EncoderConfig {
        match self {
            Self::EfficientnetLite0 => export::lite0(),
            Self::Resnet50 => EncoderConfig::ResNet(ResNetConfig::resnet50()),
        }
    }
}

pub fn run(command: ImageCommand) -> Result<u8> {
    match command {
        ImageCommand::Train(args) => train_heads(&args),
        ImageCommand::TrainResnet(args) => train_resnet(&args),
        ImageCommand::Export(args) => {
            export::export(&args.model, args.weights.as_deref(), &args.nih, &args.out)?;
            Ok(EXIT_OK)
        }
    }
}

fn train_heads(args: &TrainHeadsArgs) -> Result<u8> {
    let encoder = args.encoder.config();
    let weights = export::weights_of(&encoder, args.weights.as_deref())?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| format!("runs/image-{}", args.encoder.name()).into());
    let md = train_heads_and_evaluate(&HeadsRun {
        nih: &args.nih,
        encoder: &encoder,
        encoder_name: args.encoder.name(),
        weights: &weights,
        input_size: args.input_size,
        out: &out,
    })?;
    println!("{md}");
    Ok(EXIT_OK)
}

fn train_resnet(args: &TrainResnetArgs) -> Result<u8> {
    let (spec, train, validation) =
        resnet_training::read_nih(&args.nih, args.input_size, args.training.limit)?;
    let recipe = args.training.config(resnet_training::recipe());
    run_interruptibly(&args.out, |keep_going| {
        resnet_training::train(spec, train, validation, &args.out, &recipe, keep_going)
    })
}
