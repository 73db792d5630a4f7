//! The image model: a frozen image encoder (EfficientNet-Lite0 with ImageNet
//! weights, or ResNet-50 from a torchvision or timm checkpoint) with a linear
//! head over its pooled features, one sigmoid per
//! output (`abnormal`, then vocabulary concepts). Optionally a second linear
//! head reads the input's grey-level layout (where the radiograph is light or
//! dark on a coarse grid): in 64-px thumbnails the ImageNet encoder sees only
//! blur, while the layout still shows a wide heart shadow or an opaque base.
//! Because both heads are linear, the class activation map is exact: each
//! head's weights applied at every position of what it reads, averaged down
//! to the grid of the encoder's last (coarsest) feature map.

use crate::encoder::{Encoder, EncoderConfig};
use crate::pooling::pool;
use crate::quantized;
use crate::resnet::{random_weights, ResNetConfig};
use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{linear, Linear, VarBuilder};
use integrabner_core::bundle::{model_file, BundleFile, FileRole};
use integrabner_core::image_input::{encoder_input, input_region, DynamicImage, Fit};
use integrabner_core::nih::ABNORMAL;
use integrabner_core::{Finding, FindingSource, HeatMap, RulePipeline};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageModelConfig {
    pub encoder: EncoderConfig,
    /// Square input side in pixels.
    pub input_size: usize,
    /// Output names: `abnormal`, then vocabulary headings.
    pub outputs: Vec<String>,
    /// Decision threshold of each output, chosen on the validation split.
    pub thresholds: Vec<f32>,
    /// The vocabulary the output headings come from.
    pub vocabulary_version: String,
    /// The grey-level layout head, if the model has one (older configs do not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grey_layout: Option<GreyLayoutConfig>,
}

/// The second head's input and its say in the logits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GreyLayoutConfig {
    /// Side of the grid the input is averaged onto; it divides `input_size`.
    pub side: usize,
    /// Factor on the layout head's logits, added to the encoder head's
    /// (chosen on the validation split).
    pub weight: f32,
}

/// The model's logits: the encoder head's plus the layout head's times the
/// config's weight (one rule for inference and for training on cached inputs).
pub fn combine_logits(
    image: &Tensor,
    layout: &Tensor,
    config: &GreyLayoutConfig,
) -> Result<Tensor> {
    image + layout.affine(f64::from(config.weight), 0.0)?
}

/// Grey levels of RGB input `[batch, 3, size, size]` averaged onto a
/// `side`² grid and standardized per image (so brightness and contrast do
/// not count, only the layout): `[batch, side²]`.
pub fn grey_layout(rgb: &Tensor, side: usize) -> Result<Tensor> {
    let (batch, _, h, w) = rgb.dims4()?;
    if side == 0 || h % side != 0 || w % side != 0 {
        candle_core::bail!("a {h}x{w} input does not divide into a {side}x{side} grid");
    }
    let grey = rgb
        .mean_keepdim(1)?
        .avg_pool2d((h / side, w / side))?
        .reshape((batch, side * side))?;
    let centred = grey.broadcast_sub(&grey.mean_keepdim(1)?)?;
    // The epsilon keeps a uniform image at zeros instead of NaN.
    let std = (centred.sqr()?.mean_keepdim(1)? + 1e-6)?.sqrt()?;
    centred.broadcast_div(&std)
}

/// How every image is fitted into the encoder's square: padding keeps the
/// whole radiograph (costophrenic angles sit at the edges).
pub const FIT: Fit = Fit::Pad;

/// Where the heads' tensors are in a checkpoint (`NAME.weight`, `NAME.bias`).
pub const IMAGE_HEAD: &str = "image_head";
pub const GREY_LAYOUT_HEAD: &str = "grey_layout_head";

pub struct ImageModel {
    pub encoder: Encoder,
    head: Linear,
    grey_layout: Option<(Linear, GreyLayoutConfig)>,
}

/// What the heads read in one image, kept for its heat maps.
pub struct Activations {
    /// The pooled feature maps `[1, channels, h, w]`.
    pub feature_maps: Vec<Tensor>,
    /// The grey-level layout `[1, side²]`, if the model has that head.
    pub grey_layout: Option<Tensor>,
}

/// What the model saw in one image.
pub struct ImageOutput {
    /// Logit of each output of the config.
    pub logits: Vec<f32>,
    /// Probability of each output of the config.
    pub probabilities: Vec<f32>,
    pub activations: Activations,
}

impl ImageModel {
    /// `vb` holds the encoder's names at its root, the head under
    /// `image_head` and the grey-level layout head under `grey_layout_head`.
    pub fn load(vb: VarBuilder, config: &ImageModelConfig) -> Result<Self> {
        let outputs = config.outputs.len();
        let grey_layout = match &config.grey_layout {
            Some(c) if c.side == 0 || config.input_size % c.side != 0 => candle_core::bail!(
                "a grey-level layout of side {} does not divide the {}-px input",
                c.side,
                config.input_size
            ),
            Some(c) => Some((
                linear(c.side * c.side, outputs, vb.pp(GREY_LAYOUT_HEAD))?,
                c.clone(),
            )),
            None => None,
        };
        Ok(Self {
            encoder: Encoder::load(vb.clone(), &config.encoder)?,
            head: linear(config.encoder.features(), outputs, vb.pp(IMAGE_HEAD))?,
            grey_layout,
        })
    }

    /// Probabilities and activations of one image given as `[3, size, size]`
    /// RGB values in 0..=255 (`core::image_input::encoder_input`).
    pub fn forward(&self, rgb: &Tensor) -> Result<ImageOutput> {
        let rgb = rgb.unsqueeze(0)?;
        let feature_maps = self.encoder.feature_maps(&rgb)?;
        let mut logits = self.head.forward(&pool(&feature_maps)?)?;
        let grey_layout = match &self.grey_layout {
            Some((head, c)) => {
                let layout = grey_layout(&rgb, c.side)?;
                logits = combine_logits(&logits, &head.forward(&layout)?, c)?;
                Some(layout)
            }
            None => None,
        };
        Ok(ImageOutput {
            probabilities: candle_nn::ops::sigmoid(&logits)?.flatten_all()?.to_vec1()?,
            logits: logits.flatten_all()?.to_vec1()?,
            activations: Activations {
                feature_maps,
                grey_layout,
            },
        })
    }

    /// Class activation map of output `k` on the grid of the last feature
    /// map, `[rows, cols]`: each map's share of the logit (and the layout
    /// head's, scaled to a mean) averaged over the positions that fall in a
    /// cell. Where the grid divides every map (224-px input) that keeps each
    /// map's mean, so the cells average to the logit less the biases.
    pub fn class_activation(&self, activations: &Activations, k: usize) -> Result<Vec<Vec<f32>>> {
        let maps = &activations.feature_maps;
        let w = self.head.weight().get(k)?; // [features]
        let (_, _, rows, cols) = maps
            .last()
            .ok_or_else(|| candle_core::Error::Msg("no feature map".into()))?
            .dims4()?;
        // Per input the heads read, each position's share of the logit,
        // scaled so that the shares' mean is the input's contribution (a
        // pooled map's already is; the layout's is multiplied by its cell
        // count), with the input's grid.
        let mut shares: Vec<(Vec<f32>, usize, usize)> = Vec::new();
        let mut offset = 0;
        for map in maps {
            let (_, c, h, wd) = map.dims4()?;
            let share = w
                .narrow(0, offset, c)?
                .reshape((1, c))?
                .matmul(&map.reshape((c, h * wd))?)?;
            shares.push((share.flatten_all()?.to_vec1()?, h, wd));
            offset += c;
        }
        if let (Some((head, c)), Some(layout)) = (&self.grey_layout, &activations.grey_layout) {
            let scale = f64::from(c.weight) * (c.side * c.side) as f64;
            let share = head.weight().get(k)?.mul(&layout.flatten_all()?)?;
            shares.push((share.affine(scale, 0.0)?.to_vec1()?, c.side, c.side));
        }
        let mut grid = vec![0f32; rows * cols];
        for (share, h, wd) in shares {
            let mut sums = vec![0f32; rows * cols];
            let mut counts = vec![0u32; rows * cols];
            for (i, v) in share.iter().enumerate() {
                let cell = (i / wd) * rows / h * cols + (i % wd) * cols / wd;
                sums[cell] += v;
                counts[cell] += 1;
            }
            for ((g, s), n) in grid.iter_mut().zip(sums).zip(counts) {
                *g += s / n.max(1) as f32;
            }
        }
        Ok(grid.chunks(cols).map(<[f32]>::to_vec).collect())
    }

    /// The class activation map of output `k` scaled to 0..=1 (the cell
    /// that raises the output most is 1).
    pub fn heat_map(&self, activations: &Activations, k: usize) -> Result<Vec<Vec<f32>>> {
        let grid = self.class_activation(activations, k)?;
        let values = grid.iter().flatten().copied();
        let min = values.clone().fold(f32::INFINITY, f32::min);
        let max = values.fold(f32::NEG_INFINITY, f32::max);
        let range = (max - min).max(1e-6);
        Ok(grid
            .iter()
            .map(|row| row.iter().map(|v| (v - min) / range).collect())
            .collect())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("image model: {0}")]
    Model(#[from] candle_core::Error),
    #[error("image model config: {0}")]
    Config(#[from] serde_json::Error),
    #[error("the image model was trained for vocabulary {model}, the rules are version {rules}")]
    VocabularyMismatch { model: String, rules: String },
    #[error("the image model's output {0:?} is not a vocabulary concept")]
    UnknownOutput(String),
}

/// The image model ready to analyse cases: the one entry point of the CLI
/// and the browser worker for images.
pub struct ImageTagger {
    pub config: ImageModelConfig,
    model: ImageModel,
}

/// What the model saw in a case's images (one or more views).
pub struct ImageAnalysis {
    /// Per output, the largest probability over the views.
    pub probabilities: Vec<f32>,
    /// Per output, the logit of that probability (fusion's input).
    pub logits: Vec<f32>,
    /// Pooled encoder features, averaged over the views (fusion's input).
    pub features: Vec<f32>,
    /// Per output, the view that gave it.
    view_of: Vec<usize>,
    /// Per view, what the heads read.
    activations: Vec<Activations>,
    regions: Vec<[f32; 4]>,
}

/// What a case's images contribute to its prediction.
pub struct ImageFindings {
    pub findings: Vec<Finding>,
    pub heat_maps: Vec<HeatMap>,
}

impl ImageTagger {
    /// Loads `config.json` and `model.gguf` (encoder and head).
    pub fn from_bytes(
        config_json: &[u8],
        weights_gguf: &[u8],
    ) -> std::result::Result<Self, ImageError> {
        let (tensors, _) = quantized::from_gguf(weights_gguf, &Device::Cpu)?;
        Self::from_tensors(serde_json::from_slice(config_json)?, tensors)
    }

    pub fn from_tensors(
        config: ImageModelConfig,
        tensors: HashMap<String, Tensor>,
    ) -> std::result::Result<Self, ImageError> {
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
        let model = ImageModel::load(vb, &config)?;
        Ok(Self { config, model })
    }

    /// An image model like `like` (outputs, input size) with a ResNet-50
    /// encoder and random weights: for timing a ResNet-50, natively and in
    /// the browser, where no trained one exists.
    pub fn random_resnet50(
        like: &ImageModelConfig,
        seed: u64,
    ) -> std::result::Result<Self, ImageError> {
        let encoder = ResNetConfig {
            classes: 0,
            ..ResNetConfig::resnet50()
        };
        let mut tensors = random_weights(&encoder, seed)?;
        let (outputs, channels) = (like.outputs.len(), encoder.channels());
        let head = vec![0.01f32; outputs * channels];
        tensors.insert(
            format!("{IMAGE_HEAD}.weight"),
            Tensor::from_vec(head, (outputs, channels), &Device::Cpu)?,
        );
        tensors.insert(
            format!("{IMAGE_HEAD}.bias"),
            Tensor::zeros(outputs, DType::F32, &Device::Cpu)?,
        );
        let config = ImageModelConfig {
            encoder: EncoderConfig::ResNet(encoder),
            grey_layout: None,
            ..like.clone()
        };
        Self::from_tensors(config, tensors)
    }

    /// The image model of a verified bundle (files under `image/`), if it has one.
    pub fn from_bundle(
        files: &[(&BundleFile, &[u8])],
    ) -> std::result::Result<Option<Self>, ImageError> {
        let find = |role: FileRole| model_file(files, "image", role);
        match (find(FileRole::ModelConfig), find(FileRole::Weights)) {
            (Some(config), Some(weights)) => Ok(Some(Self::from_bytes(config, weights)?)),
            _ => Ok(None),
        }
    }

    /// Refuses rules of another vocabulary, or outputs the vocabulary lacks.
    pub fn check_rules(&self, rules: &RulePipeline) -> std::result::Result<(), ImageError> {
        if rules.vocab.version != self.config.vocabulary_version {
            return Err(ImageError::VocabularyMismatch {
                model: self.config.vocabulary_version.clone(),
                rules: rules.vocab.version.clone(),
            });
        }
        match self
            .config
            .outputs
            .iter()
            .find(|o| *o != ABNORMAL && rules.vocab.find(o).is_none())
        {
            Some(o) => Err(ImageError::UnknownOutput(o.clone())),
            None => Ok(()),
        }
    }

    /// Runs the model over every view of a case.
    pub fn analyse<'a>(
        &self,
        views: impl IntoIterator<Item = &'a DynamicImage, IntoIter: ExactSizeIterator>,
    ) -> std::result::Result<ImageAnalysis, ImageError> {
        let size = self.config.input_size;
        let n = self.config.outputs.len();
        let mut analysis = ImageAnalysis {
            probabilities: vec![0.0; n],
            logits: vec![0.0; n],
            features: Vec::new(),
            view_of: vec![0; n],
            activations: Vec::new(),
            regions: Vec::new(),
        };
        let views = views.into_iter();
        let count = views.len();
        for (v, img) in views.enumerate() {
            let pixels = encoder_input(img, size as u32, FIT);
            let out =
                self.model
                    .forward(&Tensor::from_vec(pixels, (3, size, size), &Device::Cpu)?)?;
            for (k, &p) in out.probabilities.iter().enumerate() {
                if v == 0 || p > analysis.probabilities[k] {
                    analysis.probabilities[k] = p;
                    analysis.logits[k] = out.logits[k];
                    analysis.view_of[k] = v;
                }
            }
            let pooled: Vec<f32> = pool(&out.activations.feature_maps)?
                .flatten_all()?
                .to_vec1()?;
            if analysis.features.is_empty() {
                analysis.features = vec![0.0; pooled.len()];
            }
            for (sum, x) in analysis.features.iter_mut().zip(pooled) {
                *sum += x / count as f32;
            }
            analysis.activations.push(out.activations);
            analysis
                .regions
                .push(input_region(img.width(), img.height(), size as u32, FIT));
        }
        Ok(analysis)
    }

    /// The heat map of output `name` on the view that gave its probability
    /// (None if the model has no such output).
    pub fn heat_map(
        &self,
        analysis: &ImageAnalysis,
        name: &str,
    ) -> std::result::Result<Option<HeatMap>, ImageError> {
        let Some(k) = self.config.outputs.iter().position(|o| o == name) else {
            return Ok(None);
        };
        let view = analysis.view_of[k];
        let grid = self.model.heat_map(&analysis.activations[view], k)?;
        Ok(Some(HeatMap {
            concept: name.to_string(),
            image: view,
            rows: grid.len(),
            cols: grid.first().map_or(0, Vec::len),
            values: grid.concat(),
            region: analysis.regions[view],
        }))
    }

    /// The findings whose probability reaches their threshold, each with its
    /// heat map.
    pub fn findings(
        &self,
        rules: &RulePipeline,
        analysis: &ImageAnalysis,
    ) -> std::result::Result<ImageFindings, ImageError> {
        let mut findings = Vec::new();
        let mut heat_maps = Vec::new();
        for (k, name) in self.config.outputs.iter().enumerate() {
            let p = analysis.probabilities[k];
            if name == ABNORMAL || p < self.config.thresholds[k] {
                continue;
            }
            let id = rules
                .vocab
                .find(name)
                .ok_or_else(|| ImageError::UnknownOutput(name.clone()))?;
            findings.push(rules.vocab.concept(id).finding(p, FindingSource::Image));
            heat_maps.extend(self.heat_map(analysis, name)?);
        }
        Ok(ImageFindings {
            findings,
            heat_maps,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grey_layout_is_standardized_and_refuses_a_grid_that_does_not_divide() {
        // A 4x4 image, dark left half, light right half, in all channels.
        let pixels: Vec<f32> = (0..3 * 16)
            .map(|i| if i % 4 < 2 { 10.0 } else { 200.0 })
            .collect();
        let rgb = Tensor::from_vec(pixels, (1, 3, 4, 4), &Device::Cpu).unwrap();
        let layout: Vec<f32> = grey_layout(&rgb, 2)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        for (v, want) in layout.iter().zip([-1.0, 1.0, -1.0, 1.0]) {
            assert!((v - want).abs() < 1e-4, "{layout:?}");
        }
        // A uniform image has no layout: zeros, not NaN.
        let flat = Tensor::full(7f32, (1, 3, 4, 4), &Device::Cpu).unwrap();
        let layout: Vec<f32> = grey_layout(&flat, 2)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(layout, [0.0; 4]);
        assert!(grey_layout(&rgb, 3).is_err());
        assert!(grey_layout(&rgb, 0).is_err());
    }

    #[test]
    fn a_model_whose_layout_grid_does_not_divide_its_input_is_refused_at_load() {
        let config = ImageModelConfig {
            encoder: EncoderConfig::ResNet(ResNetConfig::resnet50()),
            input_size: 224,
            outputs: vec![ABNORMAL.into()],
            thresholds: vec![0.5],
            vocabulary_version: "test".into(),
            grey_layout: Some(GreyLayoutConfig {
                side: 15,
                weight: 0.5,
            }),
        };
        let vb = VarBuilder::zeros(DType::F32, &Device::Cpu);
        let err = ImageModel::load(vb, &config).err().expect("refused");
        assert!(
            err.to_string().contains("does not divide the 224-px input"),
            "{err}"
        );
    }
}
