//! ResNet-50 trained from random weights on the NIH train split: no
//! pretrained ResNet-50 can be obtained here, so this is the only way to have
//! one. The whole network trains end to end (batch statistics in batch norm,
//! the classifier `fc` over the image-finding outputs), with left-right
//! mirroring and small shifts as augmentation and the validation split's mean
//! ROC-AUC for early stopping. Running statistics are not tracked during
//! training: each time the model is scored or written they are estimated from
//! the current weights over a fixed set of training images ("precise batch
//! norm"), which leaves nothing but the weights to checkpoint.
//!
//! The written `model.safetensors` has torchvision's names and running
//! statistics, so `image train --encoder resnet50 --weights` takes it like
//! any torchvision checkpoint.

use crate::adamw::AdamW;
use crate::image::{
    mean_auc, of_split, outputs, positive_weights, targets, weighted_binary_cross_entropy,
    MIN_POSITIVES_FOR_SELECTION,
};
use crate::progress;
use crate::source::read_nih_images;
use crate::trainer::{self, detached, Outcome, Task, TrainConfig};
use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use indicatif::ProgressBar;
use integrabner_core::image_input::{decode, encoder_input, Fit};
use integrabner_core::nih::NihImage;
use integrabner_core::rng::SplitMix64;
use integrabner_core::split::Split;
use integrabner_models::resnet::{self, random_weights, running_statistics, ResNet, ResNetConfig};
use serde::Serialize;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

/// The NIH train and validation sets read for ResNet-50 at `input_size`
/// (the train set cut to its first `limit` images when given), with the
/// network they train.
pub fn read_nih(
    nih: &Path,
    input_size: usize,
    limit: Option<usize>,
) -> Result<(ResNetSpec, Vec<Example>, Vec<Example>)> {
    let images = read_nih_images(nih)?;
    let outputs = outputs();
    let mut train = of_split(&images, Split::Train);
    if let Some(n) = limit {
        train.truncate(n);
    }
    let validation = of_split(&images, Split::Validation);
    let read = |part: &[&NihImage], name: &str| {
        let progress = progress::bar(part.len(), &format!("reading {name}"), "images");
        let examples = read_examples(nih, part, &outputs, input_size, &progress);
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
    Ok((spec, train, validation))
}

/// One image, scaled and padded to the input size, as one grey plane.
pub struct Example {
    grey: Vec<u8>,
    targets: Vec<f32>,
}

/// Reads and scales `images` (paths relative to `data_dir`) for training.
pub fn read_examples(
    data_dir: &Path,
    images: &[&NihImage],
    outputs: &[String],
    size: usize,
    progress: &ProgressBar,
) -> Result<Vec<Example>> {
    images
        .iter()
        .map(|image| {
            let path = data_dir.join(&image.file);
            let bytes =
                std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            let img = decode(&bytes).with_context(|| format!("{}", path.display()))?;
            // A grey radiograph has three equal channels: keep one.
            let grey = encoder_input(&img, size as u32, Fit::Pad)[..size * size]
                .iter()
                .map(|&v| v.round().clamp(0.0, 255.0) as u8)
                .collect();
            progress.inc(1);
            Ok(Example {
                grey,
                targets: targets(image, outputs),
            })
        })
        .collect()
}

/// The largest shift of the augmentation, as a fraction of the side.
const MAX_SHIFT: f32 = 1.0 / 16.0;

/// Images whose batch statistics estimate the running statistics.
const STATISTICS_IMAGES: usize = 256;

/// Images per forward pass when scoring.
const SCORING_BATCH: usize = 16;

/// What the network is and what it is trained for; written beside the model
/// as `config.json`.
#[derive(Debug, Clone, Serialize)]
pub struct ResNetSpec {
    /// `classes` equals the number of outputs: `fc` is the classifier.
    pub resnet: ResNetConfig,
    /// Side of the square input.
    pub input_size: usize,
    pub outputs: Vec<String>,
}

pub struct ResNetTraining {
    spec: ResNetSpec,
    /// Every tensor of the model (all trainable), by torchvision name.
    graph: HashMap<String, Tensor>,
    train: Vec<Example>,
    validation: Vec<Example>,
    pos_weight: Tensor,
    /// Running statistics estimated for the last score, reused when the same
    /// weights are written.
    running: Mutex<Option<HashMap<String, Tensor>>>,
}

/// Starting weights of a network trained from scratch: He-scaled
/// convolutions, batch norm as identity except the last of each residual
/// branch, which starts at zero so that every block starts as the identity
/// (Goyal et al., 2017); no running statistics (they are estimated).
pub fn initial_tensors(config: &ResNetConfig, seed: u64) -> Result<HashMap<String, Tensor>> {
    let mut tensors = random_weights(config, seed)?;
    tensors.retain(|name, _| !name.contains(".running_"));
    for (name, t) in tensors.iter_mut() {
        let channels = t.dim(0)?;
        if name.ends_with("bn3.weight") {
            *t = Tensor::zeros(channels, DType::F32, &Device::Cpu)?;
        } else if name.contains("bn") || name.contains("downsample.1") {
            *t = if name.ends_with(".weight") {
                Tensor::ones(channels, DType::F32, &Device::Cpu)?
            } else {
                Tensor::zeros(channels, DType::F32, &Device::Cpu)?
            };
        }
    }
    Ok(tensors)
}

impl ResNetTraining {
    /// `graph`: the variables' tensors (from [`initial_tensors`], or a
    /// resumed run's).
    pub fn new(
        spec: ResNetSpec,
        graph: HashMap<String, Tensor>,
        train: Vec<Example>,
        validation: Vec<Example>,
    ) -> Result<Self> {
        anyhow::ensure!(
            spec.resnet.classes == spec.outputs.len(),
            "the classifier has {} classes for {} outputs",
            spec.resnet.classes,
            spec.outputs.len()
        );
        let train_targets: Vec<Vec<f32>> = train.iter().map(|e| e.targets.clone()).collect();
        Ok(Self {
            pos_weight: positive_weights(&train_targets)?,
            spec,
            graph,
            train,
            validation,
            running: Mutex::new(None),
        })
    }

    /// `[batch, 3, size, size]` RGB in 0..=255; with `rng`, each image is
    /// mirrored with probability ½ and shifted by up to `MAX_SHIFT` of the
    /// side in each direction (uncovered pixels black, like the padding).
    fn input(&self, batch: &[&Example], mut rng: Option<&mut SplitMix64>) -> Result<Tensor> {
        let s = self.spec.input_size;
        let max_shift = (s as f32 * MAX_SHIFT) as i64;
        let mut values = Vec::with_capacity(batch.len() * 3 * s * s);
        for example in batch {
            let (mirror, dx, dy) = match rng.as_deref_mut() {
                Some(r) => {
                    let mut shift =
                        || (r.next_u64() % (2 * max_shift as u64 + 1)) as i64 - max_shift;
                    let (dx, dy) = (shift(), shift());
                    (r.next_f32() < 0.5, dx, dy)
                }
                None => (false, 0, 0),
            };
            let mut plane = vec![0f32; s * s];
            for y in 0..s {
                let sy = y as i64 - dy;
                if !(0..s as i64).contains(&sy) {
                    continue;
                }
                for x in 0..s {
                    let sx = x as i64 - dx;
                    if !(0..s as i64).contains(&sx) {
                        continue;
                    }
                    let sx = if mirror {
                        s - 1 - sx as usize
                    } else {
                        sx as usize
                    };
                    plane[y * s + x] = f32::from(example.grey[sy as usize * s + sx]);
                }
            }
            for _ in 0..3 {
                values.extend_from_slice(&plane);
            }
        }
        Ok(Tensor::from_vec(
            values,
            (batch.len(), 3, s, s),
            &Device::Cpu,
        )?)
    }

    fn targets(batch: &[&Example]) -> Result<Tensor> {
        let k = batch.first().map_or(0, |e| e.targets.len());
        let flat: Vec<f32> = batch.iter().flat_map(|e| e.targets.clone()).collect();
        Ok(Tensor::from_vec(flat, (batch.len(), k), &Device::Cpu)?)
    }

    /// Running statistics of the current weights, from the batch statistics
    /// over the first `STATISTICS_IMAGES` training images, unaugmented.
    fn estimate_running_statistics(&self) -> Result<HashMap<String, Tensor>> {
        let vb = VarBuilder::from_tensors(detached(&self.graph), DType::F32, &Device::Cpu);
        let model = ResNet::load_for_training(vb, &self.spec.resnet)?;
        let used: Vec<&Example> = self.train.iter().take(STATISTICS_IMAGES).collect();
        // Equal batches only: the pooling weighs every batch the same.
        for chunk in used.chunks_exact(SCORING_BATCH.min(used.len()).max(1)) {
            model.forward(&resnet::normalize(&self.input(chunk, None)?)?)?;
        }
        Ok(running_statistics(&model.take_batch_statistics())?)
    }

    fn running_statistics(&self) -> Result<HashMap<String, Tensor>> {
        let mut cached = self
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cached.is_none() {
            *cached = Some(self.estimate_running_statistics()?);
        }
        Ok(cached.clone().expect("filled above"))
    }

    /// Every tensor of the inference model: weights and running statistics.
    fn inference_tensors(&self) -> Result<HashMap<String, Tensor>> {
        let mut tensors = detached(&self.graph);
        tensors.extend(self.running_statistics()?);
        Ok(tensors)
    }

    /// Probabilities of each output for `examples`, with running statistics.
    pub fn probabilities(&self, examples: &[Example]) -> Result<Vec<Vec<f32>>> {
        let vb = VarBuilder::from_tensors(self.inference_tensors()?, DType::F32, &Device::Cpu);
        let model = ResNet::load(vb, &self.spec.resnet)?;
        let mut out = Vec::new();
        for chunk in examples.chunks(SCORING_BATCH) {
            let batch: Vec<&Example> = chunk.iter().collect();
            let logits = model.forward(&resnet::normalize(&self.input(&batch, None)?)?)?;
            out.extend(candle_nn::ops::sigmoid(&logits)?.to_vec2::<f32>()?);
        }
        Ok(out)
    }
}

impl Task for ResNetTraining {
    type Item = Example;

    fn items(&self) -> &[Example] {
        &self.train
    }

    fn length(&self, _item: &Example) -> usize {
        1
    }

    fn unit(&self) -> &str {
        "images"
    }

    fn loss(&self, batch: &[&Example], rng: &mut SplitMix64) -> Result<Tensor> {
        // The weights are about to change: estimated statistics go stale.
        *self
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        let vb = VarBuilder::from_tensors(self.graph.clone(), DType::F32, &Device::Cpu);
        let model = ResNet::load_for_training(vb, &self.spec.resnet)?;
        let logits = model.forward(&resnet::normalize(&self.input(batch, Some(rng))?)?)?;
        weighted_binary_cross_entropy(&logits, &Self::targets(batch)?, &self.pos_weight)
    }

    fn score_name(&self) -> &str {
        "validation mean ROC-AUC"
    }

    fn dev_score(&self) -> Result<f64> {
        let probabilities = self.probabilities(&self.validation)?;
        let targets: Vec<Vec<f32>> = self.validation.iter().map(|e| e.targets.clone()).collect();
        Ok(mean_auc(
            &probabilities,
            &targets,
            MIN_POSITIVES_FOR_SELECTION,
        ))
    }

    fn write_model(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir)?;
        candle_core::safetensors::save(&self.inference_tensors()?, dir.join("model.safetensors"))?;
        std::fs::write(
            dir.join("config.json"),
            serde_json::to_string_pretty(&self.spec)?,
        )?;
        Ok(())
    }
}

/// The recipe of `image train-resnet`: AdamW at 1e-3 with warm-up and linear
/// decay, decoupled weight decay 0.05, batches of 8, clipping at 5, stopping
/// after 3 epochs without a better validation AUC (the AUC of 215 images is
/// noisy from one epoch to the next).
pub fn recipe() -> TrainConfig {
    TrainConfig {
        epochs: 12,
        batch_size: 8,
        learning_rate: 1e-3,
        warmup: 0.06,
        weight_decay: 0.05,
        max_grad_norm: 5.0,
        seed: 17,
        max_len: 0,
        stride: 0,
        patience: 3,
        freeze_word_embeddings: false,
        checkpoint_every: 25,
    }
}

/// Trains the network of `spec` from random weights on `train`, scored on
/// `validation`, into `out` (`out/best/{model.safetensors, config.json}`);
/// see [`trainer::run`] for the files and for resuming.
pub fn train(
    spec: ResNetSpec,
    train: Vec<Example>,
    validation: Vec<Example>,
    out: &Path,
    recipe: &TrainConfig,
    keep_going: impl FnMut(usize) -> bool,
) -> Result<Outcome> {
    let signature = serde_json::json!({
        "spec": spec,
        "train_images": train.len(),
    });
    let (graph, vars) = trainer::make_vars(
        initial_tensors(&spec.resnet, recipe.seed)?,
        trainer::saved_weights(out, &Device::Cpu)?,
        |_| false,
    )?;
    let mut optimizer = AdamW::new(vars, recipe.weight_decay)?;
    let task = ResNetTraining::new(spec, graph, train, validation)?;
    trainer::run(&task, &mut optimizer, out, recipe, signature, keep_going)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bright images are positive, dark ones negative, each with a texture
    /// of its own, at 16 px.
    fn examples(n: usize, seed: u64) -> Vec<Example> {
        let mut rng = SplitMix64::new(seed);
        (0..n)
            .map(|i| {
                let positive = i % 2 == 0;
                let base = if positive { 150.0 } else { 70.0 };
                let grey = (0..16 * 16)
                    .map(|_| (base + 60.0 * rng.next_f32()) as u8)
                    .collect();
                Example {
                    grey,
                    targets: vec![f32::from(u8::from(positive))],
                }
            })
            .collect()
    }

    #[test]
    fn a_small_resnet_learns_from_scratch_and_writes_a_torchvision_checkpoint() {
        let spec = ResNetSpec {
            resnet: ResNetConfig {
                layers: vec![1, 1],
                width: 4,
                classes: 1,
            },
            input_size: 16,
            outputs: vec!["bright".into()],
        };
        let out = tempfile::tempdir().unwrap();
        let recipe = TrainConfig {
            epochs: 6,
            learning_rate: 1e-2,
            ..recipe()
        };
        let validation = examples(20, 2);
        let outcome = train(
            spec.clone(),
            examples(32, 1),
            validation,
            out.path(),
            &recipe,
            |_| true,
        )
        .unwrap();
        let Outcome::Finished(history) = outcome else {
            panic!("not finished")
        };
        let best = history.iter().map(|r| r.dev_score).fold(0.0, f64::max);
        assert!(best >= 0.95, "validation AUC {best}");

        // The written model is a torchvision checkpoint with running
        // statistics: the inference ResNet loads it and separates the classes.
        let tensors =
            candle_core::safetensors::load(out.path().join("best/model.safetensors"), &Device::Cpu)
                .unwrap();
        assert!(tensors.contains_key("layer2.0.downsample.1.running_var"));
        let model = ResNet::load(
            VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu),
            &spec.resnet,
        )
        .unwrap();
        let graph = HashMap::new();
        let scorer = ResNetTraining::new(spec, graph, Vec::new(), Vec::new()).unwrap();
        let test = examples(8, 3);
        let batch: Vec<&Example> = test.iter().collect();
        let x = resnet::normalize(&scorer.input(&batch, None).unwrap()).unwrap();
        let logits: Vec<f32> = model
            .forward(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let bright = logits.iter().step_by(2).fold(f32::MAX, |a, &b| a.min(b));
        let dark = logits
            .iter()
            .skip(1)
            .step_by(2)
            .fold(f32::MIN, |a, &b| a.max(b));
        assert!(bright > dark, "{logits:?}");
    }
}
