//! ResNet with bottleneck blocks (ResNet-50: 3, 4, 6, 3), inference only,
//! with the parameter names of torchvision and timm checkpoints (`conv1`,
//! `bn1`, `layerN.M.conv1..3`, `bn1..3`, `downsample.0/1`, `fc`), so that a
//! user's `resnet50-*.pth` or timm `model.safetensors` loads as it is. The
//! stride sits on the 3×3 convolution (torchvision's "v1.5"). Batch norm uses
//! its running statistics, folded into a scale and a shift.

use crate::frozen_batch_norm::FrozenBatchNorm;
use crate::rng::SplitMix64;
use candle_core::{DType, Module, Result, Tensor, D};
use candle_nn::{linear, Linear, VarBuilder};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResNetConfig {
    /// Bottleneck blocks per stage.
    pub layers: Vec<usize>,
    /// Channels of the stem and of the first stage's 3×3 convolutions (64);
    /// each stage doubles it, and a block's output is four times it.
    pub width: usize,
    /// Classes of `fc`; 0 when the checkpoint's classifier is not used.
    pub classes: usize,
}

impl ResNetConfig {
    pub fn resnet50() -> Self {
        Self {
            layers: vec![3, 4, 6, 3],
            width: 64,
            classes: 1000,
        }
    }

    /// Channels of the last feature map (2,048 for ResNet-50).
    pub fn channels(&self) -> usize {
        (4 * self.width) << self.layers.len().saturating_sub(1)
    }
}

/// Input normalization of torchvision and timm checkpoints: RGB in 0..=255
/// to ImageNet's per-channel mean and standard deviation.
pub fn normalize(rgb: &Tensor) -> Result<Tensor> {
    let mean = Tensor::new(&[0.485f32, 0.456, 0.406], rgb.device())?.reshape((1, 3, 1, 1))?;
    let std = Tensor::new(&[0.229f32, 0.224, 0.225], rgb.device())?.reshape((1, 3, 1, 1))?;
    (rgb.to_dtype(DType::F32)? / 255.0)?
        .broadcast_sub(&mean)?
        .broadcast_div(&std)
}

/// A bias-free convolution followed by its batch norm.
struct ConvBn {
    weight: Tensor,
    stride: usize,
    padding: usize,
    bn: FrozenBatchNorm,
}

impl ConvBn {
    #[allow(clippy::too_many_arguments)]
    fn load(
        vb: &VarBuilder,
        conv: &str,
        bn: &str,
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
    ) -> Result<Self> {
        Ok(Self {
            weight: vb.pp(conv).get((cout, cin, k, k), "weight")?,
            stride,
            padding: k / 2,
            bn: FrozenBatchNorm::load(vb.pp(bn), cout, 1e-5)?,
        })
    }
}

impl Module for ConvBn {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.bn
            .forward(&x.conv2d(&self.weight, self.padding, self.stride, 1, 1)?)
    }
}

struct Bottleneck {
    reduce: ConvBn,
    spatial: ConvBn,
    expand: ConvBn,
    downsample: Option<ConvBn>,
}

impl Bottleneck {
    fn load(vb: VarBuilder, cin: usize, width: usize, stride: usize) -> Result<Self> {
        let out = 4 * width;
        Ok(Self {
            reduce: ConvBn::load(&vb, "conv1", "bn1", cin, width, 1, 1)?,
            spatial: ConvBn::load(&vb, "conv2", "bn2", width, width, 3, stride)?,
            expand: ConvBn::load(&vb, "conv3", "bn3", width, out, 1, 1)?,
            downsample: if stride != 1 || cin != out {
                Some(ConvBn::load(
                    &vb,
                    "downsample.0",
                    "downsample.1",
                    cin,
                    out,
                    1,
                    stride,
                )?)
            } else {
                None
            },
        })
    }
}

impl Module for Bottleneck {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.reduce.forward(x)?.relu()?;
        let y = self.spatial.forward(&y)?.relu()?;
        let y = self.expand.forward(&y)?;
        let shortcut = match &self.downsample {
            Some(d) => d.forward(x)?,
            None => x.clone(),
        };
        (y + shortcut)?.relu()
    }
}

pub struct ResNet {
    stem: ConvBn,
    blocks: Vec<Bottleneck>,
    fc: Option<Linear>,
}

impl ResNet {
    pub fn load(vb: VarBuilder, config: &ResNetConfig) -> Result<Self> {
        let mut blocks = Vec::new();
        let mut cin = config.width;
        for (stage, &count) in config.layers.iter().enumerate() {
            let width = config.width << stage;
            for b in 0..count {
                let stride = if stage > 0 && b == 0 { 2 } else { 1 };
                let vb = vb.pp(format!("layer{}.{b}", stage + 1));
                blocks.push(Bottleneck::load(vb, cin, width, stride)?);
                cin = 4 * width;
            }
        }
        Ok(Self {
            stem: ConvBn::load(&vb, "conv1", "bn1", 3, config.width, 7, 2)?,
            blocks,
            fc: if config.classes > 0 {
                Some(linear(config.channels(), config.classes, vb.pp("fc"))?)
            } else {
                None
            },
        })
    }

    /// The last feature map `[batch, channels, h/32, w/32]` of normalized
    /// input `[batch, 3, h, w]`.
    pub fn feature_map(&self, x: &Tensor) -> Result<Tensor> {
        // After the ReLU every value is ≥ 0, so zero padding gives the max
        // pool of -inf padding.
        let mut h = self
            .stem
            .forward(x)?
            .relu()?
            .pad_with_zeros(D::Minus1, 1, 1)?
            .pad_with_zeros(D::Minus2, 1, 1)?
            .max_pool2d_with_stride(3, 2)?;
        for block in &self.blocks {
            h = block.forward(&h)?;
        }
        Ok(h)
    }

    /// ImageNet logits `[batch, classes]`, or the pooled features without `fc`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let pooled = self.feature_map(x)?.flatten_from(2)?.mean(D::Minus1)?;
        match &self.fc {
            Some(fc) => fc.forward(&pooled),
            None => Ok(pooled),
        }
    }
}

/// Random weights under torchvision's names for `config` (He-scaled
/// convolutions, batch norms near identity, `fc` when `config.classes` > 0),
/// reproducible from `seed` on every platform: for tests, and for timing a
/// ResNet-50 natively and in the browser, where no pretrained one exists.
pub fn random_weights(config: &ResNetConfig, seed: u64) -> Result<HashMap<String, Tensor>> {
    let d = candle_core::Device::Cpu;
    let mut rng = SplitMix64::new(seed);
    let mut t = HashMap::new();
    let mut tensor = |shape: &[usize], mean: f32, spread: f32, normal: bool| {
        let n: usize = shape.iter().product();
        let values: Vec<f32> = (0..n)
            .map(|_| {
                let r = if normal {
                    rng.next_normal()
                } else {
                    2.0 * rng.next_f32() - 1.0
                };
                mean + spread * r
            })
            .collect();
        Tensor::from_vec(values, shape, &d)
    };
    let mut conv_bn = |prefix: &str, conv: &str, bn: &str, cin: usize, cout: usize, k: usize| {
        let name = |part: &str, field: &str| {
            [prefix, part, field]
                .iter()
                .filter(|x| !x.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join(".")
        };
        let he = (2.0 / (cin * k * k) as f32).sqrt();
        t.insert(
            name(conv, "weight"),
            tensor(&[cout, cin, k, k], 0.0, he, true)?,
        );
        t.insert(name(bn, "weight"), tensor(&[cout], 1.0, 0.5, false)?);
        t.insert(name(bn, "bias"), tensor(&[cout], 0.0, 0.1, true)?);
        t.insert(name(bn, "running_mean"), tensor(&[cout], 0.0, 0.1, true)?);
        t.insert(name(bn, "running_var"), tensor(&[cout], 1.0, 0.5, false)?);
        Ok::<(), candle_core::Error>(())
    };
    conv_bn("", "conv1", "bn1", 3, config.width, 7)?;
    let mut cin = config.width;
    for (stage, &count) in config.layers.iter().enumerate() {
        let w = config.width << stage;
        for b in 0..count {
            let p = format!("layer{}.{b}", stage + 1);
            conv_bn(&p, "conv1", "bn1", cin, w, 1)?;
            conv_bn(&p, "conv2", "bn2", w, w, 3)?;
            conv_bn(&p, "conv3", "bn3", w, 4 * w, 1)?;
            if b == 0 {
                conv_bn(&p, "downsample.0", "downsample.1", cin, 4 * w, 1)?;
            }
            cin = 4 * w;
        }
    }
    if config.classes > 0 {
        t.insert(
            "fc.weight".into(),
            tensor(&[config.classes, cin], 0.0, 0.02, true)?,
        );
        t.insert(
            "fc.bias".into(),
            Tensor::zeros(config.classes, DType::F32, &d)?,
        );
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn resnet50_matches_candle_transformers_on_a_torchvision_checkpoint() {
        let config = ResNetConfig {
            classes: 10,
            ..ResNetConfig::resnet50()
        };
        let tensors = random_weights(&config, 1).unwrap();
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
        let ours = ResNet::load(vb.clone(), &config).unwrap();
        let reference = candle_transformers::models::resnet::resnet50(10, vb).unwrap();
        let x = Tensor::randn(0f32, 1.0, (2, 3, 64, 80), &Device::Cpu).unwrap();
        let a = ours.forward(&x).unwrap();
        let b = x.apply(&reference).unwrap();
        assert_eq!(a.dims(), &[2, 10]);
        let scale = b
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let diff = (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(diff <= 1e-4 * scale.max(1.0), "{diff} (scale {scale})");
        assert_eq!(
            ours.feature_map(&x).unwrap().dims(),
            &[2, config.channels(), 2, 3]
        );
    }
}
