//! Training the fusion model on what exists here: reports without images
//! (OpenI), images without reports (NIH), and report–image pairs constructed
//! by matching labels (no real pairs are available; see `construct_pairs`).
//!
//! Every example carries a mask over the concepts: an NIH image says nothing
//! about the concepts NIH does not label, so those are left out of its loss.

pub mod data;
pub mod eval;
pub mod run;

use crate::adamw::AdamW;
use anyhow::Result;
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarBuilder;
use integrabner_core::bundle::sha256_hex;
use integrabner_core::calibration::best_threshold;
use integrabner_core::metrics::Counts;
use integrabner_core::rng::SplitMix64;
use integrabner_models::fusion::{FusionConfig, FusionInput, FusionModel};
use std::collections::{BTreeSet, HashMap};

/// One training or evaluation example; at least one modality is present.
#[derive(Clone)]
pub struct Example {
    /// The report model's finding logits, one per concept.
    pub text: Option<Vec<f32>>,
    /// Pooled image features and the image model's logits.
    pub image: Option<(Vec<f32>, Vec<f32>)>,
    /// 0/1 per concept.
    pub labels: Vec<f32>,
    /// 1 where the label is known.
    pub mask: Vec<f32>,
}

/// Which modalities an example has: batches hold one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Modalities {
    Text,
    Image,
    Both,
}

impl Example {
    pub fn modalities(&self) -> Modalities {
        match (&self.text, &self.image) {
            (Some(_), Some(_)) => Modalities::Both,
            (Some(_), None) => Modalities::Text,
            _ => Modalities::Image,
        }
    }

    /// The example with one modality left out; the mask keeps only what the
    /// remaining modality can know (`image_known` for an image alone).
    fn without(&self, drop_text: bool, image_known: &[f32]) -> Self {
        let mut e = self.clone();
        if drop_text {
            e.text = None;
            e.mask = e.mask.iter().zip(image_known).map(|(m, k)| m * k).collect();
        } else {
            e.image = None;
        }
        e
    }
}

/// Pairs each image with `per_image` reports whose labels agree with the
/// image's on the concepts both sources label (`shared`): same set of
/// shared-concept findings, including none. The choice among candidates is a
/// hash of the image id, so the pairs are reproducible. Returns (image,
/// report) index pairs; images without a match stay unpaired.
pub fn construct_pairs(
    images: &[(String, BTreeSet<String>)],
    reports: &[BTreeSet<String>],
    shared: &BTreeSet<String>,
    per_image: usize,
) -> Vec<(usize, usize)> {
    let key = |labels: &BTreeSet<String>| -> BTreeSet<String> {
        labels.intersection(shared).cloned().collect()
    };
    let mut by_key: HashMap<BTreeSet<String>, Vec<usize>> = HashMap::new();
    for (i, r) in reports.iter().enumerate() {
        by_key.entry(key(r)).or_default().push(i);
    }
    let mut pairs = Vec::new();
    for (i, (id, labels)) in images.iter().enumerate() {
        let Some(candidates) = by_key.get(&key(labels)) else {
            continue;
        };
        let h = sha256_hex(format!("fusion-pairs-v1:{id}").as_bytes());
        let start = usize::from_str_radix(&h[..12], 16).expect("hex digits");
        for j in 0..per_image.min(candidates.len()) {
            pairs.push((i, candidates[(start + j) % candidates.len()]));
        }
    }
    pairs
}

/// Starting weights: small random projections and attention, a zero output
/// layer and gates of one, so that training starts from the single models'
/// logits added together.
pub fn initial_tensors(config: &FusionConfig, seed: u64) -> Result<HashMap<String, Tensor>> {
    let mut rng = SplitMix64::new(seed);
    let (k, w) = (config.concepts.len(), config.width);
    let device = Device::Cpu;
    let mut t = HashMap::new();
    let mut normal = |name: &str, shape: (usize, usize), rng: &mut SplitMix64| -> Result<()> {
        let v: Vec<f32> = (0..shape.0 * shape.1)
            .map(|_| rng.next_normal() * 0.02)
            .collect();
        t.insert(name.to_string(), Tensor::from_vec(v, shape, &device)?);
        Ok(())
    };
    for (name, rows, cols) in [
        ("text_projection", w, k),
        ("image_projection", w, config.image_features),
        ("qkv", 3 * w, w),
        ("attention_out", w, w),
        ("hidden", w, w),
    ] {
        normal(&format!("{name}.weight"), (rows, cols), &mut rng)?;
    }
    normal("missing", (2, w), &mut rng)?;
    normal("modality", (2, w), &mut rng)?;
    for (name, size) in [
        ("text_projection.bias", w),
        ("image_projection.bias", w),
        ("qkv.bias", 3 * w),
        ("attention_out.bias", w),
        ("hidden.bias", w),
        ("norm.bias", w),
        ("output.bias", k),
    ] {
        t.insert(name.to_string(), Tensor::zeros(size, DType::F32, &device)?);
    }
    t.insert(
        "output.weight".into(),
        Tensor::zeros((k, w), DType::F32, &device)?,
    );
    t.insert("norm.weight".into(), Tensor::ones(w, DType::F32, &device)?);
    for name in ["text_gate", "image_gate"] {
        t.insert(name.into(), Tensor::ones(k, DType::F32, &device)?);
    }
    Ok(t)
}

/// Logits of a batch of examples of one kind.
pub fn batch_logits(model: &FusionModel, batch: &[&Example]) -> Result<Tensor> {
    let device = Device::Cpu;
    let n = batch.len();
    let stack = |rows: Vec<&Vec<f32>>| -> Result<Tensor> {
        let width = rows[0].len();
        Ok(Tensor::from_vec(
            rows.into_iter().flatten().copied().collect::<Vec<f32>>(),
            (n, width),
            &device,
        )?)
    };
    let text = match batch[0].text {
        Some(_) => Some(stack(
            batch
                .iter()
                .map(|e| e.text.as_ref().expect("one kind"))
                .collect(),
        )?),
        None => None,
    };
    let image = match batch[0].image {
        Some(_) => Some((
            stack(
                batch
                    .iter()
                    .map(|e| &e.image.as_ref().expect("one kind").0)
                    .collect(),
            )?,
            stack(
                batch
                    .iter()
                    .map(|e| &e.image.as_ref().expect("one kind").1)
                    .collect(),
            )?,
        )),
        None => None,
    };
    Ok(model.forward(&FusionInput {
        text_logits: text.as_ref(),
        image: image.as_ref().map(|(f, l)| (f, l)),
    })?)
}

/// Probabilities of every example, in order.
pub fn probabilities(model: &FusionModel, examples: &[Example]) -> Result<Vec<Vec<f32>>> {
    let mut out = vec![Vec::new(); examples.len()];
    let mut by_kind: HashMap<Modalities, Vec<usize>> = HashMap::new();
    for (i, e) in examples.iter().enumerate() {
        by_kind.entry(e.modalities()).or_default().push(i);
    }
    for indices in by_kind.values() {
        for chunk in indices.chunks(256) {
            let batch: Vec<&Example> = chunk.iter().map(|&i| &examples[i]).collect();
            let probs = candle_nn::ops::sigmoid(&batch_logits(model, &batch)?)?.to_vec2::<f32>()?;
            for (&i, p) in chunk.iter().zip(probs) {
                out[i] = p;
            }
        }
    }
    Ok(out)
}

/// Masked binary cross-entropy with logits, summed (and the mask's sum).
fn masked_loss(logits: &Tensor, batch: &[&Example]) -> Result<(Tensor, f64)> {
    let (n, k) = logits.dims2()?;
    let device = Device::Cpu;
    let y = Tensor::from_vec(
        batch.iter().flat_map(|e| e.labels.clone()).collect(),
        (n, k),
        &device,
    )?;
    let mask_values: Vec<f32> = batch.iter().flat_map(|e| e.mask.clone()).collect();
    let known: f64 = mask_values.iter().map(|&m| f64::from(m)).sum();
    let mask = Tensor::from_vec(mask_values, (n, k), &device)?;
    // softplus(z) - y z, computed stably.
    let softplus = (logits.relu()? + (logits.abs()?.neg()?.exp()? + 1.0)?.log()?)?;
    let bce = (softplus - (&y * logits)?)?;
    Ok(((bce * mask)?.sum_all()?, known))
}

/// Batches of one kind each, in a shuffled order.
fn batches<'a>(
    examples: &'a [Example],
    size: usize,
    rng: &mut SplitMix64,
) -> Vec<Vec<&'a Example>> {
    let mut by_kind: HashMap<Modalities, Vec<&Example>> = HashMap::new();
    for e in examples {
        by_kind.entry(e.modalities()).or_default().push(e);
    }
    let mut kinds: Vec<_> = by_kind.into_iter().collect();
    kinds.sort_by_key(|(k, _)| *k);
    let mut out = Vec::new();
    for (_, mut group) in kinds {
        rng.shuffle(&mut group);
        out.extend(group.chunks(size).map(<[&Example]>::to_vec));
    }
    rng.shuffle(&mut out);
    out
}

/// Mean masked loss over `examples`.
pub fn mean_loss(model: &FusionModel, examples: &[Example]) -> Result<f64> {
    let mut rng = SplitMix64::new(0);
    let (mut total, mut known) = (0.0, 0.0);
    for batch in batches(examples, 256, &mut rng) {
        let (loss, k) = masked_loss(&batch_logits(model, &batch)?, &batch)?;
        total += f64::from(loss.to_scalar::<f32>()?);
        known += k;
    }
    Ok(total / known.max(1.0))
}

pub struct TrainedFusion {
    pub tensors: HashMap<String, Tensor>,
    pub epochs: usize,
    pub best_epoch: usize,
    pub validation_loss: f64,
}

/// How the fusion model is trained.
#[derive(Debug, Clone, Copy)]
pub struct FusionTraining {
    pub learning_rate: f64,
    /// Chance of dropping each modality of a pair in an epoch.
    pub modality_dropout: f32,
    pub seed: u64,
}

const WEIGHT_DECAY: f64 = 0.01;
const BATCH: usize = 64;
const MAX_EPOCHS: usize = 60;
const PATIENCE: usize = 6;

/// Trains with AdamW; each epoch redraws which pairs lose a modality. The
/// epoch with the lowest validation loss is kept.
pub fn train(
    config: &FusionConfig,
    train: &[Example],
    validation: &[Example],
    image_known: &[f32],
    settings: FusionTraining,
) -> Result<TrainedFusion> {
    let seed = settings.seed;
    let mut vars = Vec::new();
    let mut graph = HashMap::new();
    let mut names: Vec<(String, Tensor)> = initial_tensors(config, seed)?.into_iter().collect();
    names.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, t) in names {
        let v = Var::from_tensor(&t)?;
        graph.insert(name.clone(), v.as_tensor().clone());
        vars.push((name, v));
    }
    let model = FusionModel::load(
        VarBuilder::from_tensors(graph, DType::F32, &Device::Cpu),
        config,
    )?;
    let mut optimizer = AdamW::new(vars.clone(), WEIGHT_DECAY)?;
    let mut rng = SplitMix64::new(seed ^ 0x5eed);
    let snapshot = |vars: &[(String, Var)]| -> Result<HashMap<String, Tensor>> {
        vars.iter()
            .map(|(n, v)| Ok((n.clone(), v.as_tensor().copy()?)))
            .collect()
    };
    let mut best = (f64::INFINITY, 0, snapshot(&vars)?);
    let mut epochs = 0;
    for epoch in 1..=MAX_EPOCHS {
        epochs = epoch;
        let drawn: Vec<Example> = train
            .iter()
            .map(|e| {
                if e.modalities() != Modalities::Both {
                    return e.clone();
                }
                let r = rng.next_f32();
                if r < settings.modality_dropout {
                    e.without(true, image_known)
                } else if r < 2.0 * settings.modality_dropout {
                    e.without(false, image_known)
                } else {
                    e.clone()
                }
            })
            .collect();
        for batch in batches(&drawn, BATCH, &mut rng) {
            let (loss, known) = masked_loss(&batch_logits(&model, &batch)?, &batch)?;
            let loss = (loss / known.max(1.0))?;
            let grads = loss.backward()?;
            optimizer.apply(&grads, settings.learning_rate)?;
        }
        let val = mean_loss(&model, validation)?;
        if val < best.0 - 1e-6 {
            best = (val, epoch, snapshot(&vars)?);
        } else if epoch - best.1 >= PATIENCE {
            break;
        }
    }
    Ok(TrainedFusion {
        tensors: best.2,
        epochs,
        best_epoch: best.1,
        validation_loss: best.0,
    })
}

/// Fewest validation positives for a concept to get a threshold of its own.
const MIN_POSITIVES_FOR_OWN_THRESHOLD: usize = 5;

/// Per-concept thresholds: for each concept in `fit` with enough positives
/// among `examples`, the best-F1 threshold; `default` for the rest.
pub fn fit_thresholds(
    probabilities: &[Vec<f32>],
    examples: &[Example],
    default: f32,
    fit: &[bool],
) -> Vec<f32> {
    (0..fit.len())
        .map(|c| {
            let pairs: Vec<(f32, bool)> = probabilities
                .iter()
                .zip(examples)
                .filter(|(_, e)| e.mask[c] > 0.0)
                .map(|(p, e)| (p[c], e.labels[c] > 0.5))
                .collect();
            let positives = pairs.iter().filter(|p| p.1).count();
            if fit[c] && positives >= MIN_POSITIVES_FOR_OWN_THRESHOLD {
                best_threshold(&pairs)
            } else {
                default
            }
        })
        .collect()
}

/// Micro-F1 over every known (example, concept) label.
pub fn micro_f1(probabilities: &[Vec<f32>], examples: &[Example], thresholds: &[f32]) -> f64 {
    let mut counts = Counts::default();
    for (p, e) in probabilities.iter().zip(examples) {
        for c in (0..thresholds.len()).filter(|&c| e.mask[c] > 0.0) {
            match (p[c] >= thresholds[c], e.labels[c] > 0.5) {
                (true, true) => counts.tp += 1,
                (true, false) => counts.fp += 1,
                (false, true) => counts.fn_ += 1,
                (false, false) => {}
            }
        }
    }
    counts.prf().f1
}

/// Whether per-concept thresholds beat `default` on data they were not
/// fitted on: two folds of `examples` (alternate rows), each fitted on one
/// and scored on the other. Returns the thresholds to use (fitted on all
/// rows, or `default` everywhere) and the two folds' mean micro-F1 of each.
pub fn choose_thresholds(
    probabilities: &[Vec<f32>],
    examples: &[Example],
    default: f32,
    fit: &[bool],
) -> (Vec<f32>, f64, f64) {
    let fold = |parity: usize| -> (Vec<Vec<f32>>, Vec<Example>) {
        probabilities
            .iter()
            .zip(examples)
            .enumerate()
            .filter(|(i, _)| i % 2 == parity)
            .map(|(_, (p, e))| (p.clone(), e.clone()))
            .unzip()
    };
    let defaults = vec![default; fit.len()];
    let (mut fitted, mut fixed) = (0.0, 0.0);
    for parity in 0..2 {
        let (fit_p, fit_e) = fold(parity);
        let (held_p, held_e) = fold(1 - parity);
        let t = fit_thresholds(&fit_p, &fit_e, default, fit);
        fitted += micro_f1(&held_p, &held_e, &t) / 2.0;
        fixed += micro_f1(&held_p, &held_e, &defaults) / 2.0;
    }
    let chosen = if fitted > fixed {
        fit_thresholds(probabilities, examples, default, fit)
    } else {
        defaults
    };
    (chosen, fitted, fixed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn pairs_agree_on_the_shared_concepts_and_are_reproducible() {
        let shared = set(&["Effusion", "Edema"]);
        let reports = vec![
            set(&["Effusion", "Granuloma"]),
            set(&[]),
            set(&["Effusion"]),
            set(&["Edema", "Effusion"]),
            set(&["Granuloma"]),
        ];
        let images = vec![
            ("a".to_string(), set(&["Effusion"])),
            ("b".to_string(), set(&[])),
            ("c".to_string(), set(&["Pneumothorax", "Edema"])),
        ];
        let pairs = construct_pairs(&images, &reports, &shared, 2);
        assert_eq!(pairs, construct_pairs(&images, &reports, &shared, 2));
        let key = |s: &BTreeSet<String>| -> BTreeSet<String> {
            s.intersection(&shared).cloned().collect()
        };
        for &(i, r) in &pairs {
            assert_eq!(key(&images[i].1), key(&reports[r]), "{i} {r}");
        }
        // a: reports 0 and 2; b: reports 1 and 4; c (Edema alone): none.
        let of = |i: usize| -> BTreeSet<usize> {
            pairs.iter().filter(|p| p.0 == i).map(|p| p.1).collect()
        };
        assert_eq!(of(0), [0, 2].into());
        assert_eq!(of(1), [1, 4].into());
        assert!(of(2).is_empty());
    }

    #[test]
    fn training_learns_what_only_the_image_knows() {
        // Concept B is visible only in image feature 0; A only in the text.
        let config = FusionConfig {
            concepts: vec!["A".into(), "B".into()],
            image_outputs: vec!["abnormal".into(), "B".into()],
            image_features: 4,
            width: 8,
            heads: 2,
            thresholds: vec![0.5; 2],
            vocabulary_version: "test".into(),
        };
        let mut rng = SplitMix64::new(11);
        let mut examples = |n: usize| -> Vec<Example> {
            (0..n)
                .map(|_| {
                    let (a, b) = (rng.next_f32() < 0.5, rng.next_f32() < 0.5);
                    let sign = |x: bool| if x { 2.0 } else { -2.0 };
                    Example {
                        text: Some(vec![sign(a), 0.0]),
                        image: Some((
                            vec![sign(b), rng.next_normal(), rng.next_normal(), 1.0],
                            vec![0.0, 0.0],
                        )),
                        labels: vec![f32::from(u8::from(a)), f32::from(u8::from(b))],
                        mask: vec![1.0, 1.0],
                    }
                })
                .collect()
        };
        let (train_set, validation) = (examples(400), examples(100));
        let settings = FusionTraining {
            learning_rate: 1e-2,
            modality_dropout: 0.0,
            seed: 1,
        };
        let start = FusionModel::load(
            VarBuilder::from_tensors(
                initial_tensors(&config, 1).unwrap(),
                DType::F32,
                &Device::Cpu,
            ),
            &config,
        )
        .unwrap();
        let before = mean_loss(&start, &validation).unwrap();
        let trained = train(&config, &train_set, &validation, &[0.0, 1.0], settings).unwrap();
        let model = FusionModel::load(
            VarBuilder::from_tensors(trained.tensors, DType::F32, &Device::Cpu),
            &config,
        )
        .unwrap();
        let after = mean_loss(&model, &validation).unwrap();
        assert!(after < before * 0.7, "{before} -> {after}");
        let p = probabilities(&model, &validation).unwrap();
        assert!(micro_f1(&p, &validation, &[0.5, 0.5]) > 0.9);
    }
}
