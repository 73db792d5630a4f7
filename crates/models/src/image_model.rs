//! The image model: an image encoder (EfficientNet-Lite0, ImageNet weights,
//! frozen) with a linear head over its pooled features, one sigmoid per
//! output (`abnormal`, then vocabulary concepts). Because the head is linear
//! over a global average, its class activation map is exact: the head's
//! weights applied at every position of the last feature map.

use crate::efficientnet::{normalize, EfficientNet, EfficientNetConfig};
use candle_core::{Module, Result, Tensor};
use candle_nn::{linear, Linear, VarBuilder};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageModelConfig {
    pub encoder: EfficientNetConfig,
    /// Square input side in pixels.
    pub input_size: usize,
    /// Output names: `abnormal`, then vocabulary headings.
    pub outputs: Vec<String>,
    /// Decision threshold of each output, chosen on the validation split.
    pub thresholds: Vec<f32>,
}

pub struct ImageModel {
    pub encoder: EfficientNet,
    head: Linear,
}

/// What the model saw in one image.
pub struct ImageOutput {
    /// Probability of each output of the config.
    pub probabilities: Vec<f32>,
    /// The last feature map `[1, channels, h, w]`, for heat maps.
    pub feature_map: Tensor,
}

impl ImageModel {
    /// `vb` holds the encoder's names at its root and the head under `image_head`.
    pub fn load(vb: VarBuilder, config: &ImageModelConfig) -> Result<Self> {
        Ok(Self {
            encoder: EfficientNet::load(vb.clone(), &config.encoder)?,
            head: linear(
                config.encoder.head,
                config.outputs.len(),
                vb.pp("image_head"),
            )?,
        })
    }

    /// Probabilities and feature map of one image given as `[3, size, size]`
    /// RGB values in 0..=255 (`core::image_input::encoder_input`).
    pub fn forward(&self, rgb: &Tensor) -> Result<ImageOutput> {
        let x = normalize(&rgb.unsqueeze(0)?)?;
        let feature_map = self.encoder.feature_map(&x)?;
        let logits = self.head.forward(&EfficientNet::pool(&feature_map)?)?;
        Ok(ImageOutput {
            probabilities: candle_nn::ops::sigmoid(&logits)?.flatten_all()?.to_vec1()?,
            feature_map,
        })
    }

    /// Class activation map of output `k`: `[h, w]` scaled to 0..=1 (the
    /// position that raises the output most is 1).
    pub fn heat_map(&self, feature_map: &Tensor, k: usize) -> Result<Vec<Vec<f32>>> {
        let w = self.head.weight().get(k)?; // [channels]
        let (_, c, h, wd) = feature_map.dims4()?;
        let map = w
            .reshape((1, c))?
            .matmul(&feature_map.reshape((c, h * wd))?)?
            .reshape((h, wd))?;
        let min = map.min_all()?.to_scalar::<f32>()?;
        let max = map.max_all()?.to_scalar::<f32>()?;
        let scaled = ((map - f64::from(min))? / f64::from((max - min).max(1e-6)))?;
        scaled.to_vec2()
    }
}
