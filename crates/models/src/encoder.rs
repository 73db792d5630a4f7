//! The image encoders behind one interface: which one a model uses is in
//! its config, and each normalizes its input the way its weights expect.

use crate::efficientnet::{self, EfficientNet, EfficientNetConfig};
use crate::resnet::{self, ResNet, ResNetConfig};
use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

/// An encoder's config; the JSON of each is told apart by its fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EncoderConfig {
    EfficientNet(EfficientNetConfig),
    ResNet(ResNetConfig),
}

impl EncoderConfig {
    /// Width of the pooled image features.
    pub fn features(&self) -> usize {
        match self {
            Self::EfficientNet(c) => c.features(),
            Self::ResNet(c) => c.channels(),
        }
    }

    /// The prefix of the ImageNet classifier's parameters in a checkpoint.
    pub fn classifier_prefix(&self) -> &'static str {
        match self {
            Self::EfficientNet(_) => "_fc.",
            Self::ResNet(_) => "fc.",
        }
    }

    /// The same encoder without its ImageNet classifier.
    pub fn without_classifier(&self) -> Self {
        match self {
            Self::EfficientNet(c) => Self::EfficientNet(EfficientNetConfig {
                classes: 0,
                ..c.clone()
            }),
            Self::ResNet(c) => Self::ResNet(ResNetConfig {
                classes: 0,
                ..c.clone()
            }),
        }
    }
}

pub enum Encoder {
    EfficientNet(EfficientNet),
    ResNet(ResNet),
}

impl Encoder {
    pub fn load(vb: VarBuilder, config: &EncoderConfig) -> Result<Self> {
        Ok(match config {
            EncoderConfig::EfficientNet(c) => Self::EfficientNet(EfficientNet::load(vb, c)?),
            EncoderConfig::ResNet(c) => Self::ResNet(ResNet::load(vb, c)?),
        })
    }

    /// The feature maps of RGB input `[batch, 3, h, w]` in 0..=255 that the
    /// image features are pooled from; the last one is the coarsest.
    pub fn feature_maps(&self, rgb: &Tensor) -> Result<Vec<Tensor>> {
        match self {
            Self::EfficientNet(m) => m.feature_maps(&efficientnet::normalize(rgb)?),
            Self::ResNet(m) => Ok(vec![m.feature_map(&resnet::normalize(rgb)?)?]),
        }
    }
}
