//! `integrabner image`: image findings on NIH ChestX-ray14 with a frozen encoder.

use crate::EXIT_OK;
use anyhow::{Context, Result};
use clap::Subcommand;
use integrabner_core::bundle::IMAGE_MODEL_FILES;
use integrabner_core::calibration::{best_threshold, f1_at};
use integrabner_core::image_input::decode;
use integrabner_core::metrics::roc_auc;
use integrabner_core::nih::{read_labels, NihImage};
use integrabner_core::split::Split;
use integrabner_models::efficientnet::EfficientNetConfig;
use integrabner_models::encoder::EncoderConfig;
use integrabner_models::image_model::{ImageModelConfig, ImageTagger};
use integrabner_models::resnet::ResNetConfig;
use integrabner_train::image::{self, View, INPUT_SIZE};
use integrabner_train::nih_eval::{
    abnormal_index, by_source_resolution, source_resolution_table, AucEstimate, Part,
};
use integrabner_train::resnet_training::{self, ResNetSpec};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::path::{Path, PathBuf};

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
    Train {
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
    },
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
    TrainResnet {
        #[arg(long, default_value = "../shared/data/nih-cxr")]
        nih: PathBuf,
        #[arg(long, default_value = "runs/resnet50-nih")]
        out: PathBuf,
        /// Side of the square input (the original system used 128).
        #[arg(long, default_value_t = 128)]
        input_size: usize,
        #[command(flatten)]
        training: crate::training::TrainArgs,
    },
    /// Write a trained image model into the bundle: encoder and head in one
    /// GGUF (8-bit blocks, depthwise kernels f16), its config, and a
    /// manifest with the test-split ROC-AUC of the written model beside the
    /// f32 model's, so that the quantization loss is on record, and the
    /// written model's abnormal-vs-normal AUC per source resolution with 95 %
    /// bootstrap intervals (patients resampled).
    Export {
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
    },
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
            Self::EfficientnetLite0 => EncoderConfig::EfficientNet(EfficientNetConfig {
                pooled_stages: LITE0_POOLED_STAGES.to_vec(),
                ..EfficientNetConfig::lite0()
            }),
            Self::Resnet50 => EncoderConfig::ResNet(ResNetConfig::resnet50()),
        }
    }
}

/// The Lite0 stages pooled beside its head's map: every stage after the
/// first (24 to 320 channels), chosen on the validation split (EVALUATION.md).
const LITE0_POOLED_STAGES: [usize; 6] = [1, 2, 3, 4, 5, 6];

/// Where the EfficientNet-Lite0 ImageNet weights are in this workspace.
const LITE0_WEIGHTS: &str = "../shared/weights/efficientnet-lite0/efficientnet-lite0.safetensors";

/// The encoder weights to read: the ones given, else Lite0's default path.
fn weights_of(config: &EncoderConfig, given: Option<&Path>) -> Result<PathBuf> {
    match (given, config) {
        (Some(p), _) => Ok(p.to_path_buf()),
        (None, EncoderConfig::EfficientNet(_)) => Ok(LITE0_WEIGHTS.into()),
        (None, EncoderConfig::ResNet(_)) => anyhow::bail!(
            "ResNet-50 needs --weights: a torchvision resnet50-*.pth or a timm model.safetensors \
             (no pretrained ResNet-50 ships with IntegraBNER)"
        ),
    }
}

/// Where the encoder's weights came from, for the manifest.
fn encoder_provenance(config: &EncoderConfig) -> &'static str {
    match config {
        EncoderConfig::EfficientNet(_) => {
            "EfficientNet-Lite0 with ImageNet weights (Apache-2.0, converted from the TensorFlow release)"
        }
        EncoderConfig::ResNet(_) => {
            "ResNet-50 with the user's torchvision or timm ImageNet weights (see their licence)"
        }
    }
}

const EXPORT_PROVENANCE: &str = "trained by `integrabner image train` on the NIH ChestX-ray14 \
sample (train split of nih-split-v1), thresholds chosen on its validation split; written by \
`integrabner image export`.";

/// What the model's heads read, for the manifest.
fn heads_provenance(config: &ImageModelConfig) -> String {
    match &config.grey_layout {
        Some(c) => format!(
            "frozen, and a linear head, plus a linear head over the image's grey-level layout \
             ({0}x{0} grid) with its logits at weight {1},",
            c.side, c.weight
        ),
        None => "frozen, and a linear head".to_string(),
    }
}

/// Writes the bundle directory, then scores the written model and the f32
/// model on the test split for its manifest.
fn export(model: &Path, weights: Option<&Path>, nih: &Path, out: &Path) -> Result<u8> {
    let config_json = std::fs::read(model.join("config.json"))
        .with_context(|| format!("cannot read {}/config.json", model.display()))?;
    let config: ImageModelConfig = serde_json::from_slice(&config_json)?;
    let weights = weights_of(&config.encoder, weights)?;
    let tensors = image::model_tensors(&config.encoder, &weights, &model.join("head.safetensors"))?;
    std::fs::create_dir_all(out)?;
    let gguf = integrabner_models::quantized::to_gguf(&tensors, &[])?;
    std::fs::write(out.join("model.gguf"), &gguf)?;
    std::fs::write(out.join("config.json"), &config_json)?;

    let images = read_images(nih)?;
    let test = image::of_split(&images, Split::Test);
    let written = ImageTagger::from_bytes(&config_json, &gguf)?;
    let full = ImageTagger::from_tensors(config.clone(), tensors)?;
    let progress = crate::progress_bar(test.len(), "test, written vs f32", "images");
    // Per image: written model's probabilities, f32 model's, targets.
    let mut scored: Vec<[Vec<f32>; 3]> = Vec::new();
    for img in &test {
        let path = nih.join(&img.file);
        let view = decode(&std::fs::read(&path).with_context(|| format!("{}", path.display()))?)
            .with_context(|| format!("{}", path.display()))?;
        let views = [view];
        scored.push([
            written.analyse(&views)?.probabilities,
            full.analyse(&views)?.probabilities,
            image::targets(img, &config.outputs),
        ]);
        progress.inc(1);
    }
    progress.finish_and_clear();
    let mut metrics = BTreeMap::new();
    for (k, name) in config.outputs.iter().enumerate() {
        let auc = |model: usize| {
            roc_auc(
                &scored
                    .iter()
                    .map(|s| (s[model][k], s[2][k] > 0.5))
                    .collect::<Vec<_>>(),
            )
        };
        if let (Some(q), Some(f)) = (auc(0), auc(1)) {
            eprintln!("{name}: test ROC-AUC {q:.4} (f32 {f:.4})");
            metrics.insert(format!("test roc-auc {name}"), q);
            metrics.insert(format!("test roc-auc {name} f32"), f);
        }
    }
    metrics.insert("test images".into(), test.len() as f64);
    let abnormal = abnormal_index(&config.outputs)?;
    let abnormal_pairs: Vec<(f32, bool)> = scored
        .iter()
        .map(|s| (s[0][abnormal], s[2][abnormal] > 0.5))
        .collect();
    for (part, estimate) in by_source_resolution(&test, &abnormal_pairs) {
        eprintln!(
            "abnormal, {part} ({} images, {} abnormal): test ROC-AUC {estimate}",
            estimate.images, estimate.positives
        );
        // The whole split's AUC is already in as "test roc-auc abnormal".
        if let (Part::SourceResolution(_), Some(auc)) = (part, estimate.auc) {
            metrics.insert(format!("test roc-auc abnormal, {part}"), auc);
        }
        if let Some((low, high)) = estimate.interval {
            metrics.insert(format!("test roc-auc abnormal, {part}, 95% low"), low);
            metrics.insert(format!("test roc-auc abnormal, {part}, 95% high"), high);
        }
    }
    let provenance = format!(
        "Image model of IntegraBNER: {}, {} {EXPORT_PROVENANCE}",
        encoder_provenance(&config.encoder),
        heads_provenance(&config)
    );
    crate::export::write_model_manifest(out, &IMAGE_MODEL_FILES, &provenance, metrics)?;
    Ok(EXIT_OK)
}

fn read_images(nih: &Path) -> Result<Vec<NihImage>> {
    let labels = nih.join("labels.csv");
    let text = std::fs::read_to_string(&labels)
        .with_context(|| format!("cannot read {}", labels.display()))?;
    read_labels(&text).map_err(anyhow::Error::msg)
}

/// The cache's record of the input size its features were computed at.
const INPUT_SIZE_KEY: &str = "input_size";

/// Trains ResNet-50 from scratch (`image train-resnet`).
fn train_resnet(
    nih: &Path,
    out: &Path,
    input_size: usize,
    training: &crate::training::TrainArgs,
) -> Result<u8> {
    let images = read_images(nih)?;
    let outputs = image::outputs();
    let mut train = image::of_split(&images, Split::Train);
    if let Some(n) = training.limit {
        train.truncate(n);
    }
    let validation = image::of_split(&images, Split::Validation);
    let read = |part: &[&NihImage], name: &str| {
        let progress = crate::progress_bar(part.len(), &format!("reading {name}"), "images");
        let examples = resnet_training::read_examples(nih, part, &outputs, input_size, &progress);
        progress.finish_and_clear();
        examples
    };
    let (train, validation) = (read(&train, "train")?, read(&validation, "validation")?);
    let spec = ResNetSpec {
        resnet: ResNetConfig {
            classes: outputs.len(),
            ..ResNetConfig::resnet50()
        },
        input_size,
        outputs,
    };
    let recipe = training.config(resnet_training::recipe());
    crate::training::run_interruptibly(out, |keep_going| {
        resnet_training::train(spec, train, validation, out, &recipe, keep_going)
    })
}

/// The feature sets `image train` computes: a name in the cache, its
/// images, and how each is shown to the encoder.
fn feature_sets<'a>(
    nih: &Path,
    images: &'a [NihImage],
) -> Result<Vec<(&'static str, Vec<&'a NihImage>, View)>> {
    let train = image::of_split(images, Split::Train);
    Ok(vec![
        (
            "train_thumbnails",
            image::larger_than_thumbnail(nih, &train)?,
            View::Thumbnail,
        ),
        ("train_mirrored", train.clone(), View::Mirrored),
        ("train", train, View::Original),
        (
            "validation",
            image::of_split(images, Split::Validation),
            View::Original,
        ),
        ("test", image::of_split(images, Split::Test), View::Original),
    ])
}

/// The cache's name of a set's grey-level layouts (beside its features).
pub fn grey_layout_key(set: &str) -> String {
    format!("{set}_grey_layout")
}

/// Features and grey-level layouts of every set at `input_size`, from the
/// cache when it describes these images at that size and width.
fn cached_features(
    nih: &Path,
    config: &EncoderConfig,
    weights: &Path,
    sets: &[(&str, Vec<&NihImage>, View)],
    input_size: usize,
    cache: &Path,
) -> Result<HashMap<String, candle_core::Tensor>> {
    if let Ok(t) = candle_core::safetensors::load(cache, &candle_core::Device::Cpu) {
        let same_size = t
            .get(INPUT_SIZE_KEY)
            .and_then(|x| x.to_vec1::<u32>().ok())
            .is_some_and(|v| v == [input_size as u32]);
        let cells = image::grey_layout_side(input_size).pow(2);
        let has = |name: &str, dims: (usize, usize)| {
            t.get(name)
                .and_then(|x| x.dims2().ok())
                .is_some_and(|d| d == dims)
        };
        let fits = same_size
            && sets.iter().all(|(name, part, _)| {
                has(name, (part.len(), config.features()))
                    && has(&grey_layout_key(name), (part.len(), cells))
            });
        if fits {
            eprintln!("features from {}", cache.display());
            return Ok(t);
        }
    }
    let encoder = image::load_encoder(config, weights)?;
    let mut out = HashMap::new();
    for (name, part, view) in sets {
        let progress = crate::progress_bar(part.len(), &format!("features, {name}"), "images");
        let started = std::time::Instant::now();
        let (features, layouts) =
            image::features(&encoder, nih, part, *view, input_size, &progress)?;
        out.insert(name.to_string(), features);
        out.insert(grey_layout_key(name), layouts);
        progress.finish_and_clear();
        eprintln!(
            "features, {name}: {} images in {:.0} s",
            part.len(),
            started.elapsed().as_secs_f64()
        );
    }
    out.insert(
        INPUT_SIZE_KEY.to_string(),
        candle_core::Tensor::new(&[input_size as u32], &candle_core::Device::Cpu)?,
    );
    candle_core::safetensors::save(&out, cache)?;
    Ok(out)
}

pub fn run(command: ImageCommand) -> Result<u8> {
    match command {
        ImageCommand::Export {
            model,
            weights,
            nih,
            out,
        } => export(&model, weights.as_deref(), &nih, &out),
        ImageCommand::TrainResnet {
            nih,
            out,
            input_size,
            training,
        } => train_resnet(&nih, &out, input_size, &training),
        ImageCommand::Train {
            nih,
            encoder,
            weights,
            out,
            input_size,
        } => {
            let encoder_config = encoder.config();
            let weights = weights_of(&encoder_config, weights.as_deref())?;
            let out = out.unwrap_or_else(|| format!("runs/image-{}", encoder.name()).into());
            let images = read_images(&nih)?;
            std::fs::create_dir_all(&out)?;
            let started = std::time::Instant::now();
            let sets = feature_sets(&nih, &images)?;
            let features = cached_features(
                &nih,
                &encoder_config,
                &weights,
                &sets,
                input_size,
                &out.join("features.safetensors"),
            )?;
            let feature_seconds = started.elapsed().as_secs_f64();
            let outputs = image::outputs();
            let y: HashMap<&str, Vec<Vec<f32>>> = sets
                .iter()
                .map(|(name, part, _)| {
                    let targets = part.iter().map(|i| image::targets(i, &outputs)).collect();
                    (*name, targets)
                })
                .collect();
            // Every train set (originals and augmented views) trains the head.
            let train_sets: Vec<&str> = sets
                .iter()
                .map(|s| s.0)
                .filter(|name| name.starts_with("train"))
                .collect();
            let train_y: Vec<Vec<f32>> = train_sets.iter().flat_map(|n| y[n].clone()).collect();
            let stack = |key: &dyn Fn(&str) -> String| {
                let parts: Vec<&candle_core::Tensor> =
                    train_sets.iter().map(|n| &features[&key(n)]).collect();
                candle_core::Tensor::cat(&parts, 0)
            };
            let train_x = stack(&|n| n.to_string())?;
            let train_layouts = stack(&grey_layout_key)?;
            let of_set = |name: &str| (&features[name], &features[&grey_layout_key(name)]);
            let (val_y, test_y) = (&y["validation"], &y["test"]);
            let started = std::time::Instant::now();
            let (heads, [image_training, layout_training], validation_auc) = image::train_heads(
                image::grey_layout_side(input_size),
                (&train_x, &train_layouts),
                &train_y,
                of_set("validation"),
                val_y,
            )?;
            let head_seconds = started.elapsed().as_secs_f64();

            let probabilities = |name: &str| {
                let (x, layouts) = of_set(name);
                heads.probabilities(x, layouts)
            };
            let val_p = probabilities("validation")?;
            let test_p = probabilities("test")?;
            let pairs = |p: &[Vec<f32>], t: &[Vec<f32>], k: usize| -> Vec<(f32, bool)> {
                p.iter().zip(t).map(|(p, t)| (p[k], t[k] > 0.5)).collect()
            };
            // An output without validation positives has no evidence for a
            // threshold: it is scored but never asserted.
            let thresholds: Vec<f32> = (0..outputs.len())
                .map(|k| {
                    let p = pairs(&val_p, val_y, k);
                    if p.iter().any(|x| x.1) {
                        best_threshold(&p)
                    } else {
                        1.0
                    }
                })
                .collect();
            let config = ImageModelConfig {
                encoder: encoder_config.without_classifier(),
                input_size,
                outputs: outputs.clone(),
                thresholds: thresholds.clone(),
                vocabulary_version: integrabner_core::RulePipeline::embedded().vocab.version,
                grey_layout: heads.grey_layout.as_ref().map(|(_, c)| c.clone()),
            };
            std::fs::write(
                out.join("config.json"),
                serde_json::to_string_pretty(&config)?,
            )?;
            candle_core::safetensors::save(&heads.tensors(), out.join("head.safetensors"))?;

            let count = |s| image::of_split(&images, s).len();
            let mut md = String::new();
            let _ = writeln!(
                md,
                "{} (weights {}, frozen, {input_size} px) + linear head, + a linear head over the grey-level layout ({}). Images: {} train (+ mirrored copies, + {} shrunk to {} px), {} validation, {} test (split by patient, nih-split-v1). Features {:.0} s (cached afterwards), heads {:.1} s (encoder head {} steps, validation mean AUC {:.3}; layout head {} steps, {:.3}; together {:.3}).\n",
                encoder.name(),
                weights.display(),
                heads.grey_layout.as_ref().map_or("weight 0: not kept".to_string(), |(_, c)| format!("{0}x{0} grid, weight {1}", c.side, c.weight)),
                count(Split::Train),
                features["train_thumbnails"].dim(0)?,
                image::THUMBNAIL_SIDE,
                count(Split::Validation),
                count(Split::Test),
                feature_seconds,
                head_seconds,
                image_training.steps,
                image_training.validation_auc,
                layout_training.steps,
                layout_training.validation_auc,
                validation_auc
            );
            let images_of = |name: &str| {
                sets.iter()
                    .find(|s| s.0 == name)
                    .map(|s| s.1.clone())
                    .with_context(|| format!("no {name} set"))
            };
            let test_images = images_of("test")?;
            md.push_str("| output | test positives | test ROC-AUC (95 % interval, patients resampled) | threshold (validation) | test F1 |\n|---|---|---|---|---|\n");
            for (k, name) in outputs.iter().enumerate() {
                let p = pairs(&test_p, test_y, k);
                let estimate = AucEstimate::new(&test_images, &p);
                let f1 = f1_at(&p, thresholds[k]);
                let _ = writeln!(
                    md,
                    "| {name} | {} | {estimate} | {:.2} | {f1:.3} |",
                    estimate.positives, thresholds[k]
                );
            }
            let abnormal = abnormal_index(&outputs)?;
            let by_split = [("validation", &val_p, val_y), ("test", &test_p, test_y)]
                .into_iter()
                .map(|(split, p, y)| {
                    let images = images_of(split)?;
                    Ok((split, by_source_resolution(&images, &pairs(p, y, abnormal))))
                })
                .collect::<Result<Vec<_>>>()?;
            md.push_str("\nAbnormal vs normal ROC-AUC by source resolution (95 % interval; images / abnormal):\n\n");
            md.push_str(&source_resolution_table(&by_split));
            std::fs::write(out.join("evaluation.md"), &md)?;
            println!("{md}");
            Ok(EXIT_OK)
        }
    }
}
