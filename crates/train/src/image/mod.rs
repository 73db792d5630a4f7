//! Image findings on NIH ChestX-ray14 with a frozen encoder: features (and
//! the grey-level layout) are computed once per image (and, for the train
//! split, once more mirrored and once shrunk to a thumbnail, as
//! augmentation), then two linear heads, one over each, are trained on them
//! with class-weighted binary cross-entropy and early stopping on the
//! validation split's mean ROC-AUC, and the layout head's weight beside the
//! encoder head is chosen on the same split. On two cores this is minutes,
//! where fine-tuning the encoder would be hours per epoch.

pub mod export;
pub mod run;

use crate::adamw::AdamW;
use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarBuilder;
use image::imageops::FilterType::Lanczos3;
use indicatif::ProgressBar;
use integrabner_core::image_input::{decode, dimensions, encoder_input, Fit};
use integrabner_core::metrics::roc_auc;
use integrabner_core::nih::{NihImage, ABNORMAL};
use integrabner_core::split::Split;
use integrabner_models::encoder::{Encoder, EncoderConfig};
use integrabner_models::image_model::{
    combine_logits, grey_layout, GreyLayoutConfig, GREY_LAYOUT_HEAD, IMAGE_HEAD,
};
use integrabner_models::pooling::pool;
use std::collections::HashMap;
use std::path::Path;

/// Input side of an encoder with ImageNet weights.
pub const INPUT_SIZE: usize = 224;

/// Outputs of the head: `abnormal`, then each NIH finding's vocabulary heading.
pub fn outputs() -> Vec<String> {
    std::iter::once(ABNORMAL.to_string())
        .chain(
            integrabner_core::nih::NIH_TO_VOCABULARY
                .iter()
                .map(|(_, h)| h.to_string()),
        )
        .collect()
}

/// 0/1 targets of an image for `outputs`.
pub fn targets(image: &NihImage, outputs: &[String]) -> Vec<f32> {
    outputs
        .iter()
        .map(|o| {
            let hit = if o == ABNORMAL {
                !image.concepts.is_empty()
            } else {
                image.concepts.contains(o)
            };
            f32::from(u8::from(hit))
        })
        .collect()
}

/// Side, in pixels, of the thumbnails half of the NIH sample is stored as.
pub const THUMBNAIL_SIDE: u32 = 64;

/// How an image is shown to the encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Original,
    /// Flipped left-right.
    Mirrored,
    /// Shrunk to fit `THUMBNAIL_SIDE`: the same findings as the head will
    /// meet them in the thumbnail half of the data, where they are hardest.
    Thumbnail,
}

/// The images larger than a thumbnail (read from their headers): the ones a
/// `View::Thumbnail` changes.
pub fn larger_than_thumbnail<'a>(
    data_dir: &Path,
    images: &[&'a NihImage],
) -> Result<Vec<&'a NihImage>> {
    let mut larger = Vec::new();
    for &image in images {
        let path = data_dir.join(&image.file);
        let bytes =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let (w, h) = dimensions(&bytes).with_context(|| format!("{}", path.display()))?;
        if w.max(h) > THUMBNAIL_SIDE {
            larger.push(image);
        }
    }
    Ok(larger)
}

/// Side of the grey-level layout grid for a `size`-px input: the divisor of
/// `size` nearest 14 (the larger on a tie). At 224 px that is 14, and each
/// 2x2 block of it is one cell of the encoder's 7x7 heat-map grid; 14 was
/// chosen on the validation split (EVALUATION.md).
pub fn grey_layout_side(size: usize) -> usize {
    (1..=size)
        .filter(|d| size % d == 0)
        .min_by_key(|&d| (d.abs_diff(14), std::cmp::Reverse(d)))
        .unwrap_or(1)
}

/// Pooled encoder features `[images, features]` and grey-level layouts
/// `[images, side²]` (`grey_layout_side(size)`) of `images` (paths relative
/// to `data_dir`) seen as `view` at `size`² pixels.
pub fn features(
    encoder: &Encoder,
    data_dir: &Path,
    images: &[&NihImage],
    view: View,
    size: usize,
    progress: &ProgressBar,
) -> Result<(Tensor, Tensor)> {
    let device = Device::Cpu;
    let mut rows = Vec::new();
    let mut layouts = Vec::new();
    for chunk in images.chunks(8) {
        let mut batch = Vec::new();
        for image in chunk {
            let path = data_dir.join(&image.file);
            let bytes =
                std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            let img = decode(&bytes).with_context(|| format!("{}", path.display()))?;
            let img = match view {
                View::Original => img,
                View::Mirrored => img.fliph(),
                View::Thumbnail => img.resize(THUMBNAIL_SIDE, THUMBNAIL_SIDE, Lanczos3),
            };
            batch.extend(encoder_input(&img, size as u32, Fit::Pad));
        }
        let x = Tensor::from_vec(batch, (chunk.len(), 3, size, size), &device)?;
        rows.push(pool(&encoder.feature_maps(&x)?)?);
        layouts.push(grey_layout(&x, grey_layout_side(size))?);
        progress.inc(chunk.len() as u64);
    }
    Ok((Tensor::cat(&rows, 0)?, Tensor::cat(&layouts, 0)?))
}

/// A trained head, with standardization folded in: logits = x W^T + b on raw
/// inputs.
pub struct Head {
    pub weight: Tensor,
    pub bias: Tensor,
}

/// How a head's training went.
#[derive(Debug, Clone, Copy)]
pub struct HeadTraining {
    /// Validation mean ROC-AUC at the kept step.
    pub validation_auc: f64,
    pub steps: usize,
}

impl Head {
    pub fn logits(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.matmul(&self.weight.t()?)?.broadcast_add(&self.bias)?)
    }
}

/// The image model's heads as `ImageModel` combines them: the encoder
/// head's logits plus the config's weight times the layout head's.
pub struct Heads {
    pub image: Head,
    pub grey_layout: Option<(Head, GreyLayoutConfig)>,
}

impl Heads {
    /// Logits `[images, outputs]` of pooled features and grey-level layouts.
    pub fn logits(&self, features: &Tensor, layouts: &Tensor) -> Result<Tensor> {
        let logits = self.image.logits(features)?;
        Ok(match &self.grey_layout {
            Some((head, c)) => combine_logits(&logits, &head.logits(layouts)?, c)?,
            None => logits,
        })
    }

    pub fn probabilities(&self, features: &Tensor, layouts: &Tensor) -> Result<Vec<Vec<f32>>> {
        Ok(candle_nn::ops::sigmoid(&self.logits(features, layouts)?)?.to_vec2()?)
    }

    pub fn tensors(&self) -> HashMap<String, Tensor> {
        let mut heads = vec![(IMAGE_HEAD, &self.image)];
        heads.extend(
            self.grey_layout
                .as_ref()
                .map(|(h, _)| (GREY_LAYOUT_HEAD, h)),
        );
        heads
            .into_iter()
            .flat_map(|(name, h)| {
                [
                    (format!("{name}.weight"), h.weight.clone()),
                    (format!("{name}.bias"), h.bias.clone()),
                ]
            })
            .collect()
    }

    /// The heads saved by `tensors`, combined as `grey_layout` says.
    pub fn from_tensors(
        tensors: &HashMap<String, Tensor>,
        grey_layout: Option<&GreyLayoutConfig>,
    ) -> Result<Self> {
        let head = |name: &str| -> Result<Head> {
            let get = |part: &str| {
                tensors
                    .get(&format!("{name}.{part}"))
                    .cloned()
                    .with_context(|| format!("the heads have no {name}.{part}"))
            };
            Ok(Head {
                weight: get("weight")?,
                bias: get("bias")?,
            })
        };
        Ok(Self {
            image: head(IMAGE_HEAD)?,
            grey_layout: match grey_layout {
                Some(c) => Some((head(GREY_LAYOUT_HEAD)?, c.clone())),
                None => None,
            },
        })
    }
}

/// The layout head's weights tried beside the encoder head (0: no layout head).
const GREY_LAYOUT_WEIGHTS: [f32; 7] = [0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0];

/// Trains the encoder head and the layout head (`train_head` each), then
/// keeps the layout weight with the best validation mean AUC over the
/// outputs with at least `MIN_POSITIVES_FOR_SELECTION` positives. Returns
/// the heads, each head's training, and the combined validation mean AUC.
/// The layouts have `side`² cells.
pub fn train_heads(
    side: usize,
    train: (&Tensor, &Tensor),
    train_y: &[Vec<f32>],
    validation: (&Tensor, &Tensor),
    val_y: &[Vec<f32>],
) -> Result<(Heads, [HeadTraining; 2], f64)> {
    let (image, image_training) = train_head(train.0, train_y, validation.0, val_y)?;
    let (layout, layout_training) = train_head(train.1, train_y, validation.1, val_y)?;
    // Each head's validation logits once; only their combination varies.
    let image_logits = image.logits(validation.0)?;
    let layout_logits = layout.logits(validation.1)?;
    let mut best: Option<(f64, GreyLayoutConfig)> = None;
    for weight in GREY_LAYOUT_WEIGHTS {
        let config = GreyLayoutConfig { side, weight };
        let logits = combine_logits(&image_logits, &layout_logits, &config)?;
        let p: Vec<Vec<f32>> = candle_nn::ops::sigmoid(&logits)?.to_vec2()?;
        let auc = mean_auc(&p, val_y, MIN_POSITIVES_FOR_SELECTION);
        if best.as_ref().is_none_or(|b| auc > b.0 + 1e-6) {
            best = Some((auc, config));
        }
    }
    let (validation_auc, config) = best.context("no layout weight was tried")?;
    let heads = Heads {
        image,
        grey_layout: (config.weight > 0.0).then_some((layout, config)),
    };
    Ok((heads, [image_training, layout_training], validation_auc))
}

/// Weight of each output's positives, `[1, outputs]`: negatives / positives
/// in `targets`, between 1 and 50, so that rare findings are not ignored.
pub fn positive_weights(targets: &[Vec<f32>]) -> Result<Tensor> {
    let n = targets.len() as f32;
    let k = targets.first().map_or(0, Vec::len);
    let weights: Vec<f32> = (0..k)
        .map(|j| {
            let p = targets.iter().map(|t| t[j]).sum::<f32>();
            ((n - p) / p.max(1.0)).clamp(1.0, 50.0)
        })
        .collect();
    Ok(Tensor::from_vec(weights, (1, k), &Device::Cpu)?)
}

/// Mean binary cross-entropy of `logits` against 0/1 `targets` (both
/// `[batch, outputs]`), positives weighted by `pos_weight` (`[1, outputs]`):
/// w·y·softplus(-z) + (1 - y)·softplus(z), in a form that does not overflow.
pub fn weighted_binary_cross_entropy(
    logits: &Tensor,
    targets: &Tensor,
    pos_weight: &Tensor,
) -> Result<Tensor> {
    let softplus = |z: &Tensor| -> Result<Tensor> {
        Ok((z.relu()? + ((z.abs()?.neg()?.exp()? + 1.0)?.log()?))?)
    };
    Ok((targets
        .broadcast_mul(pos_weight)?
        .mul(&softplus(&logits.neg()?)?)?
        + (targets.affine(-1.0, 1.0)?.mul(&softplus(logits)?))?)?
    .mean_all()?)
}

/// Fewest validation positives for an output to count in model selection:
/// the AUC of two or three positives is noise.
pub const MIN_POSITIVES_FOR_SELECTION: usize = 10;

/// Mean ROC-AUC over the outputs with at least `min_positives` positives.
pub fn mean_auc(probabilities: &[Vec<f32>], targets: &[Vec<f32>], min_positives: usize) -> f64 {
    let n = targets.first().map_or(0, Vec::len);
    let aucs: Vec<f64> = (0..n)
        .filter(|&k| targets.iter().filter(|t| t[k] > 0.5).count() >= min_positives.max(1))
        .filter_map(|k| {
            let pairs: Vec<(f32, bool)> = probabilities
                .iter()
                .zip(targets)
                .map(|(p, t)| (p[k], t[k] > 0.5))
                .collect();
            roc_auc(&pairs)
        })
        .collect();
    aucs.iter().sum::<f64>() / aucs.len().max(1) as f64
}

/// Trains the head: full-batch AdamW on standardized features, positives
/// weighted by negatives / positives per output, decoupled weight decay; the
/// step with the best validation mean AUC over the outputs with at least
/// `MIN_POSITIVES_FOR_SELECTION` positives (checked every 10 steps, stopping
/// after 30 checks without improvement) is kept.
pub fn train_head(
    train_x: &Tensor,
    train_y: &[Vec<f32>],
    val_x: &Tensor,
    val_y: &[Vec<f32>],
) -> Result<(Head, HeadTraining)> {
    let device = Device::Cpu;
    let mean = train_x.mean_keepdim(0)?;
    let std = (train_x.broadcast_sub(&mean)?.sqr()?.mean_keepdim(0)? + 1e-6)?.sqrt()?;
    let standardize =
        |x: &Tensor| -> Result<Tensor> { Ok(x.broadcast_sub(&mean)?.broadcast_div(&std)?) };
    let (xt, xv) = (standardize(train_x)?, standardize(val_x)?);
    let (n, c) = xt.dims2()?;
    let k = train_y[0].len();
    let y = Tensor::from_vec(train_y.concat(), (n, k), &device)?;
    let pos_weight = positive_weights(train_y)?;
    let w = Var::from_tensor(&Tensor::zeros((k, c), DType::F32, &device)?)?;
    let b = Var::from_tensor(&Tensor::zeros(k, DType::F32, &device)?)?;
    let mut optimizer = AdamW::new(
        vec![("w".into(), w.clone()), ("b".into(), b.clone())],
        HEAD_WEIGHT_DECAY,
    )?;
    let mut best: Option<(f64, usize, Tensor, Tensor)> = None;
    let mut checks_without_gain = 0;
    for step in 1..=3000 {
        let logits = xt
            .matmul(&w.as_tensor().t()?)?
            .broadcast_add(b.as_tensor())?;
        let loss = weighted_binary_cross_entropy(&logits, &y, &pos_weight)?;
        let grads = loss.backward()?;
        optimizer.apply(&grads, HEAD_LEARNING_RATE)?;
        if step % 10 == 0 {
            let logits = xv
                .matmul(&w.as_tensor().t()?)?
                .broadcast_add(b.as_tensor())?;
            let probs: Vec<Vec<f32>> = candle_nn::ops::sigmoid(&logits)?.to_vec2()?;
            let auc = mean_auc(&probs, val_y, MIN_POSITIVES_FOR_SELECTION);
            if best.as_ref().is_none_or(|b| auc > b.0 + 1e-6) {
                best = Some((auc, step, w.as_tensor().copy()?, b.as_tensor().copy()?));
                checks_without_gain = 0;
            } else {
                checks_without_gain += 1;
                if checks_without_gain >= 30 {
                    break;
                }
            }
        }
    }
    let (validation_auc, steps, w, b) = best.context("no training step was checked")?;
    // Fold the standardization into the head: z = (x - m) / s.
    let std_row = std.flatten_all()?;
    let weight = w.broadcast_div(&std_row.unsqueeze(0)?)?;
    let bias = (b - weight.matmul(&mean.t()?)?.flatten_all()?)?;
    Ok((
        Head { weight, bias },
        HeadTraining {
            validation_auc,
            steps,
        },
    ))
}

/// Step size and decoupled weight decay of the head, chosen on validation
/// (see EVALUATION.md).
const HEAD_LEARNING_RATE: f64 = 1e-4;
const HEAD_WEIGHT_DECAY: f64 = 1.0;

/// The tensors of an encoder checkpoint without its ImageNet classifier:
/// safetensors (our EfficientNet-Lite0 conversion, timm's `model.safetensors`)
/// or a PyTorch file (torchvision's `resnet50-*.pth`); a `module.` prefix
/// (saved from `DataParallel`) is dropped.
pub fn encoder_tensors(config: &EncoderConfig, weights: &Path) -> Result<HashMap<String, Tensor>> {
    let is_safetensors = weights.extension().is_some_and(|e| e == "safetensors");
    let raw: Vec<(String, Tensor)> = if is_safetensors {
        candle_core::safetensors::load(weights, &Device::Cpu)
            .with_context(|| format!("cannot read {}", weights.display()))?
            .into_iter()
            .collect()
    } else {
        candle_core::pickle::read_all(weights)
            .with_context(|| format!("cannot read {} as a PyTorch checkpoint", weights.display()))?
    };
    let classifier = config.classifier_prefix();
    let mut tensors = HashMap::new();
    for (name, t) in raw {
        let name = name.strip_prefix("module.").unwrap_or(&name).to_string();
        if !name.starts_with(classifier) {
            tensors.insert(name, t.to_dtype(DType::F32)?);
        }
    }
    Ok(tensors)
}

/// Loads the encoder (no classifier) of `config` from a checkpoint.
pub fn load_encoder(config: &EncoderConfig, weights: &Path) -> Result<Encoder> {
    let vb = VarBuilder::from_tensors(encoder_tensors(config, weights)?, DType::F32, &Device::Cpu);
    Encoder::load(vb, &config.without_classifier())
        .with_context(|| format!("{} does not fit the encoder", weights.display()))
}

/// Encoder (without its ImageNet classifier) and trained head as one set of
/// tensors: the names `ImageModel::load` reads.
pub fn model_tensors(
    config: &EncoderConfig,
    weights: &Path,
    head: &Path,
) -> Result<HashMap<String, Tensor>> {
    let mut tensors = encoder_tensors(config, weights)?;
    tensors.extend(
        candle_core::safetensors::load(head, &Device::Cpu)
            .with_context(|| format!("cannot read {}", head.display()))?,
    );
    Ok(tensors)
}

/// Images of one split.
pub fn of_split(images: &[NihImage], split: Split) -> Vec<&NihImage> {
    images.iter().filter(|i| i.split == split).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_grid_divides_the_input_and_stays_near_14() {
        assert_eq!(grey_layout_side(224), 14);
        assert_eq!(grey_layout_side(128), 16);
        assert_eq!(grey_layout_side(7), 7);
        for size in [64, 96, 160, 256, 299, 384] {
            assert_eq!(size % grey_layout_side(size), 0, "{size}");
        }
    }
}
