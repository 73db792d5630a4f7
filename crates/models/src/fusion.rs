//! Fusion of a report and its images into one set of coded findings.
//!
//! The original design: project the text and image representations to a
//! shared width, treat them as two tokens, multi-head self-attention, mean,
//! MLP, sigmoid over the concept vocabulary. Changes here:
//! - a missing modality is a learned token, not zeros, and training drops
//!   modalities at random, so one model serves text only, image only and both;
//! - the text token is made from the report model's finding logits and the
//!   image token from the image encoder's pooled features, and each model's
//!   own logits also reach the output through a per-concept gate, so the
//!   attention MLP learns a correction to the single models rather than
//!   everything from scratch;
//! - concepts the image model does not score keep the report model's logit
//!   (no image here is labelled for them);
//! - each concept has its own decision threshold, fitted on validation.

use crate::bert::LayerNorm;
use crate::image_model::ImageTagger;
use crate::quantized;
use crate::report::ReportTagger;
use candle_core::{DType, Device, Module, Result, Tensor, D};
use candle_nn::{linear, Linear, VarBuilder};
use integrabner_core::bundle::{model_file, BundleFile, FileRole};
use integrabner_core::RulePipeline;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FusionConfig {
    /// Output concepts: the report model's, in its order (vocabulary headings).
    pub concepts: Vec<String>,
    /// The image model's outputs, in its order (`abnormal`, then headings).
    pub image_outputs: Vec<String>,
    /// Width of the image encoder's pooled features.
    pub image_features: usize,
    /// Width of the two tokens.
    pub width: usize,
    pub heads: usize,
    /// Decision threshold per concept, fitted on validation.
    pub thresholds: Vec<f32>,
    pub vocabulary_version: String,
}

impl FusionConfig {
    /// Index into `concepts` of each image output (None for `abnormal` and
    /// anything the report model does not code).
    pub fn image_to_concept(&self) -> Vec<Option<usize>> {
        self.image_outputs
            .iter()
            .map(|o| self.concepts.iter().position(|c| c == o))
            .collect()
    }
}

/// The inputs of one batch; `None` is a missing modality for every row.
pub struct FusionInput<'a> {
    /// The report model's finding logits `[batch, concepts]`.
    pub text_logits: Option<&'a Tensor>,
    /// Pooled image features `[batch, image_features]` and the image model's
    /// logits `[batch, image_outputs]`.
    pub image: Option<(&'a Tensor, &'a Tensor)>,
}

pub struct FusionModel {
    text_projection: Linear,
    image_projection: Linear,
    /// `[2, width]`: the token of a missing text, of a missing image.
    missing: Tensor,
    /// `[2, width]`: which modality a token is.
    modality: Tensor,
    qkv: Linear,
    attention_out: Linear,
    norm: LayerNorm,
    hidden: Linear,
    output: Linear,
    /// `[concepts]` each: how much of each single model's logit passes through.
    text_gate: Tensor,
    image_gate: Tensor,
    /// `[image_outputs, concepts]`: image logits placed on the concept axis.
    image_placement: Tensor,
    /// `[concepts]`: 1 where the image model scores the concept. Elsewhere
    /// the report model's logit passes through unchanged: no image here
    /// carries labels for those concepts, so fusion has nothing to learn there.
    image_scored: Tensor,
    heads: usize,
}

impl FusionModel {
    pub fn load(vb: VarBuilder, config: &FusionConfig) -> Result<Self> {
        let (k, w) = (config.concepts.len(), config.width);
        let mut placement = vec![0f32; config.image_outputs.len() * k];
        let mut scored = vec![0f32; k];
        for (i, c) in config.image_to_concept().into_iter().enumerate() {
            if let Some(c) = c {
                placement[i * k + c] = 1.0;
                scored[c] = 1.0;
            }
        }
        Ok(Self {
            text_projection: linear(k, w, vb.pp("text_projection"))?,
            image_projection: linear(config.image_features, w, vb.pp("image_projection"))?,
            missing: vb.get((2, w), "missing")?,
            modality: vb.get((2, w), "modality")?,
            qkv: linear(w, 3 * w, vb.pp("qkv"))?,
            attention_out: linear(w, w, vb.pp("attention_out"))?,
            norm: LayerNorm::load(w, 1e-5, vb.pp("norm"))?,
            hidden: linear(w, w, vb.pp("hidden"))?,
            output: linear(w, k, vb.pp("output"))?,
            text_gate: vb.get(k, "text_gate")?,
            image_gate: vb.get(k, "image_gate")?,
            image_placement: Tensor::from_vec(
                placement,
                (config.image_outputs.len(), k),
                vb.device(),
            )?,
            image_scored: Tensor::from_vec(scored, k, vb.device())?,
            heads: config.heads,
        })
    }

    /// A token per row: the projection of what is there, else the learned
    /// missing-modality token.
    fn token(
        &self,
        present: Option<&Tensor>,
        projection: &Linear,
        slot: usize,
        batch: usize,
    ) -> Result<Tensor> {
        let token = match present {
            Some(x) => projection.forward(x)?,
            None => self.missing.get(slot)?.unsqueeze(0)?.repeat((batch, 1))?,
        };
        token.broadcast_add(&self.modality.get(slot)?)
    }

    /// Finding logits `[batch, concepts]`.
    pub fn forward(&self, input: &FusionInput) -> Result<Tensor> {
        let batch = match (input.text_logits, input.image) {
            (Some(t), _) => t.dim(0)?,
            (None, Some((f, _))) => f.dim(0)?,
            (None, None) => candle_core::bail!("fusion needs at least one modality"),
        };
        let text = self.token(input.text_logits, &self.text_projection, 0, batch)?;
        let image = self.token(
            input.image.map(|(f, _)| f),
            &self.image_projection,
            1,
            batch,
        )?;
        let tokens = Tensor::stack(&[&text, &image], 1)?; // [b, 2, w]
        let attended = self.attention(&tokens)?;
        let x = self.norm.forward(&(tokens + attended)?)?.mean(1)?;
        let mut logits = self.output.forward(&self.hidden.forward(&x)?.gelu_erf()?)?;
        if let Some(t) = input.text_logits {
            logits = (logits + t.broadcast_mul(&self.text_gate)?)?;
        }
        if let Some((_, image_logits)) = input.image {
            let placed = image_logits.matmul(&self.image_placement)?;
            logits = (logits + placed.broadcast_mul(&self.image_gate)?)?;
        }
        if let Some(t) = input.text_logits {
            // fused where the image scores the concept, the report model's logit elsewhere
            let kept = t.broadcast_mul(&self.image_scored.affine(-1.0, 1.0)?)?;
            logits = (logits.broadcast_mul(&self.image_scored)? + kept)?;
        }
        Ok(logits)
    }

    fn attention(&self, tokens: &Tensor) -> Result<Tensor> {
        let (b, n, w) = tokens.dims3()?;
        let d = w / self.heads;
        let split = |x: Tensor| -> Result<Tensor> {
            x.reshape((b, n, self.heads, d))?
                .transpose(1, 2)?
                .contiguous()
        };
        let qkv = self.qkv.forward(tokens)?;
        let q = split(qkv.narrow(D::Minus1, 0, w)?)?;
        let k = split(qkv.narrow(D::Minus1, w, w)?)?;
        let v = split(qkv.narrow(D::Minus1, 2 * w, w)?)?;
        let scores = (q.matmul(&k.t()?)? / (d as f64).sqrt())?;
        let weights = candle_nn::ops::softmax_last_dim(&scores)?;
        let mixed = weights
            .matmul(&v)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b, n, w))?;
        self.attention_out.forward(&mixed)
    }
}

/// The fusion model ready to combine one case's modalities.
pub struct FusionTagger {
    pub config: FusionConfig,
    pub model: FusionModel,
}

/// What the image model contributes to fusion.
pub struct ImageEvidence<'a> {
    /// Pooled encoder features (mean over the case's views).
    pub features: &'a [f32],
    /// The image model's logits, one per image output.
    pub logits: &'a [f32],
}

/// A model's logit as fusion reads it: within the logits of probabilities
/// 1e-6 off 0 and 1 (computed as the fusion model's training inputs were,
/// in f32), the range it was trained on, so that one saturated model cannot
/// swamp the other.
pub fn fusion_input(logit_of_model: f32) -> f32 {
    let p = 1.0f32 - 1e-6;
    let limit = (p / (1.0 - p)).ln();
    logit_of_model.clamp(-limit, limit)
}

#[derive(Debug, thiserror::Error)]
#[error("the fusion model does not fit the loaded models: {0}")]
pub struct FusionMismatch(String);

impl FusionTagger {
    /// Refuses a fusion model trained for other concepts, image outputs or
    /// vocabulary than the loaded models have.
    pub fn check_models(
        &self,
        rules: &RulePipeline,
        report: &ReportTagger,
        image: &ImageTagger,
    ) -> std::result::Result<(), FusionMismatch> {
        if self.config.vocabulary_version != rules.vocab.version {
            return Err(FusionMismatch(format!(
                "vocabulary {} vs {}",
                self.config.vocabulary_version, rules.vocab.version
            )));
        }
        if self.config.concepts != report.config.concepts {
            return Err(FusionMismatch(
                "the report model codes other concepts".into(),
            ));
        }
        if self.config.image_outputs != image.config.outputs {
            return Err(FusionMismatch("the image model has other outputs".into()));
        }
        Ok(())
    }

    pub fn from_bytes(config_json: &[u8], weights_gguf: &[u8]) -> Result<Self> {
        let config: FusionConfig = serde_json::from_slice(config_json)
            .map_err(|e| candle_core::Error::Msg(format!("fusion config: {e}")))?;
        let (tensors, _) = quantized::from_gguf(weights_gguf, &Device::Cpu)?;
        Self::from_tensors(config, tensors)
    }

    /// The fusion model of a verified bundle (files under `fusion/`), if it has one.
    pub fn from_bundle(files: &[(&BundleFile, &[u8])]) -> Result<Option<Self>> {
        let find = |role: FileRole| model_file(files, "fusion", role);
        match (find(FileRole::ModelConfig), find(FileRole::Weights)) {
            (Some(config), Some(weights)) => Ok(Some(Self::from_bytes(config, weights)?)),
            _ => Ok(None),
        }
    }

    pub fn from_tensors(config: FusionConfig, tensors: HashMap<String, Tensor>) -> Result<Self> {
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
        let model = FusionModel::load(vb, &config)?;
        Ok(Self { config, model })
    }

    /// Fused probability of each concept of `config.concepts`, from the report
    /// model's calibrated logits (in the same order) and/or the image's.
    pub fn fuse(
        &self,
        text_logits: Option<&[f32]>,
        image: Option<&ImageEvidence>,
    ) -> Result<Vec<f32>> {
        let row = |xs: &[f32], f: fn(f32) -> f32| -> Result<Tensor> {
            Tensor::from_vec(
                xs.iter().map(|&x| f(x)).collect::<Vec<_>>(),
                (1, xs.len()),
                &Device::Cpu,
            )
        };
        let text = text_logits.map(|l| row(l, fusion_input)).transpose()?;
        let image = image
            .map(|i| {
                Ok::<_, candle_core::Error>((row(i.features, |x| x)?, row(i.logits, fusion_input)?))
            })
            .transpose()?;
        let logits = self.model.forward(&FusionInput {
            text_logits: text.as_ref(),
            image: image.as_ref().map(|(f, l)| (f, l)),
        })?;
        candle_nn::ops::sigmoid(&logits)?.flatten_all()?.to_vec1()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A randomly initialized model over concepts A, B, C where the image
    /// model scores B only.
    fn model() -> (FusionConfig, FusionModel) {
        let config = FusionConfig {
            concepts: vec!["A".into(), "B".into(), "C".into()],
            image_outputs: vec!["abnormal".into(), "B".into()],
            image_features: 8,
            width: 8,
            heads: 2,
            thresholds: vec![0.5; 3],
            vocabulary_version: "test".into(),
        };
        let device = Device::Cpu;
        let mut tensors = HashMap::new();
        let mut rng = integrabner_core::rng::SplitMix64::new(3);
        let mut put = |name: &str, shape: &[usize]| {
            let n: usize = shape.iter().product();
            let v: Vec<f32> = (0..n).map(|_| rng.next_normal()).collect();
            tensors.insert(
                name.to_string(),
                Tensor::from_vec(v, shape, &device).unwrap(),
            );
        };
        for (name, rows, cols) in [
            ("text_projection", 8, 3),
            ("image_projection", 8, 8),
            ("qkv", 24, 8),
            ("attention_out", 8, 8),
            ("hidden", 8, 8),
            ("output", 3, 8),
        ] {
            put(&format!("{name}.weight"), &[rows, cols]);
            put(&format!("{name}.bias"), &[rows]);
        }
        put("missing", &[2, 8]);
        put("modality", &[2, 8]);
        put("norm.weight", &[8]);
        put("norm.bias", &[8]);
        put("text_gate", &[3]);
        put("image_gate", &[3]);
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &device);
        let model = FusionModel::load(vb, &config).unwrap();
        (config, model)
    }

    #[test]
    fn concepts_the_image_cannot_see_keep_the_report_models_logit() {
        let (_, model) = model();
        let device = Device::Cpu;
        let text = Tensor::new(&[[1.5f32, -2.0, 0.25], [-0.5, 3.0, -4.0]], &device).unwrap();
        let features = Tensor::ones((2, 8), DType::F32, &device).unwrap();
        let image_logits = Tensor::new(&[[0.3f32, 2.0], [-1.0, -2.0]], &device).unwrap();
        let both = model
            .forward(&FusionInput {
                text_logits: Some(&text),
                image: Some((&features, &image_logits)),
            })
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        let text_rows = text.to_vec2::<f32>().unwrap();
        for (b, t) in both.iter().zip(&text_rows) {
            assert_eq!((b[0], b[2]), (t[0], t[2]), "A and C pass through");
            assert_ne!(b[1], t[1], "B is fused");
        }
        // Either modality alone still gives a full row.
        for input in [
            FusionInput {
                text_logits: Some(&text),
                image: None,
            },
            FusionInput {
                text_logits: None,
                image: Some((&features, &image_logits)),
            },
        ] {
            let out = model.forward(&input).unwrap();
            assert_eq!(out.dims(), &[2, 3]);
            assert!(out
                .to_vec2::<f32>()
                .unwrap()
                .concat()
                .iter()
                .all(|x| x.is_finite()));
        }
        assert!(model
            .forward(&FusionInput {
                text_logits: None,
                image: None
            })
            .is_err());
    }
}
