//! ResNet with bottleneck blocks (ResNet-50: 3, 4, 6, 3), with the parameter
//! names of torchvision and timm checkpoints (`conv1`, `bn1`,
//! `layerN.M.conv1..3`, `bn1..3`, `downsample.0/1`, `fc`), so that a user's
//! `resnet50-*.pth` or timm `model.safetensors` loads as it is. The stride
//! sits on the 3×3 convolution (torchvision's "v1.5").
//!
//! [`ResNet::load`] is for inference: batch norm uses its running statistics,
//! folded into a scale and a shift. [`ResNet::load_for_training`] normalizes
//! with each batch's statistics and records them, so that running statistics
//! can be estimated afterwards ([`running_statistics`]); every operation in
//! it has a gradient (candle's max pool has none when kernel and stride
//! differ, so the stem's pool is built from strided slices).

use crate::frozen_batch_norm::FrozenBatchNorm;
use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{linear, Linear, VarBuilder};
use integrabner_core::rng::SplitMix64;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;

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

/// Which statistics batch norm normalizes with.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Statistics {
    Running,
    Batch,
}

const BATCH_NORM_EPS: f64 = 1e-5;

/// A batch norm in one of the two modes.
enum BatchNorm {
    Running(FrozenBatchNorm),
    /// Normalizes with the batch's mean and (biased) variance per channel and
    /// records them, detached, once per forward.
    Batch {
        weight: Tensor,
        bias: Tensor,
        recorded: Mutex<Vec<(Tensor, Tensor)>>,
    },
}

impl BatchNorm {
    fn load(vb: VarBuilder, channels: usize, statistics: Statistics) -> Result<Self> {
        Ok(match statistics {
            Statistics::Running => {
                Self::Running(FrozenBatchNorm::load(vb, channels, BATCH_NORM_EPS)?)
            }
            Statistics::Batch => Self::Batch {
                weight: vb.get(channels, "weight")?.reshape((1, channels, 1, 1))?,
                bias: vb.get(channels, "bias")?.reshape((1, channels, 1, 1))?,
                recorded: Mutex::new(Vec::new()),
            },
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Self::Running(bn) => bn.forward(x),
            Self::Batch {
                weight,
                bias,
                recorded,
            } => {
                let mean = x.mean_keepdim((0, 2, 3))?;
                let centered = x.broadcast_sub(&mean)?;
                let var = centered.sqr()?.mean_keepdim((0, 2, 3))?;
                recorded
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push((mean.flatten_all()?.detach(), var.flatten_all()?.detach()));
                centered
                    .broadcast_div(&(var + BATCH_NORM_EPS)?.sqrt()?)?
                    .broadcast_mul(weight)?
                    .broadcast_add(bias)
            }
        }
    }

    /// The batch statistics recorded since the last call (none in running mode).
    fn take_recorded(&self) -> Vec<(Tensor, Tensor)> {
        match self {
            Self::Running(_) => Vec::new(),
            Self::Batch { recorded, .. } => std::mem::take(
                &mut *recorded
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            ),
        }
    }
}

/// A bias-free convolution followed by its batch norm.
struct ConvBn {
    weight: Tensor,
    stride: usize,
    padding: usize,
    /// The batch norm's parameter prefix (`layer1.0.bn1`).
    bn_name: String,
    bn: BatchNorm,
}

/// Where a convolution sits and its shape.
struct ConvSpec<'a> {
    conv: &'a str,
    bn: &'a str,
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
}

impl ConvBn {
    fn load(vb: &VarBuilder, spec: ConvSpec, statistics: Statistics) -> Result<Self> {
        let ConvSpec {
            conv,
            bn,
            cin,
            cout,
            k,
            stride,
        } = spec;
        let bn_vb = vb.pp(bn);
        Ok(Self {
            weight: vb.pp(conv).get((cout, cin, k, k), "weight")?,
            stride,
            padding: k / 2,
            bn_name: bn_vb.prefix(),
            bn: BatchNorm::load(bn_vb, cout, statistics)?,
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
    fn load(
        vb: VarBuilder,
        cin: usize,
        width: usize,
        stride: usize,
        statistics: Statistics,
    ) -> Result<Self> {
        let out = 4 * width;
        let conv = |conv, bn, cin, cout, k, stride| {
            let spec = ConvSpec {
                conv,
                bn,
                cin,
                cout,
                k,
                stride,
            };
            ConvBn::load(&vb, spec, statistics)
        };
        Ok(Self {
            reduce: conv("conv1", "bn1", cin, width, 1, 1)?,
            spatial: conv("conv2", "bn2", width, width, 3, stride)?,
            expand: conv("conv3", "bn3", width, out, 1, 1)?,
            downsample: if stride != 1 || cin != out {
                Some(conv("downsample.0", "downsample.1", cin, out, 1, stride)?)
            } else {
                None
            },
        })
    }

    fn conv_bns(&self) -> impl Iterator<Item = &ConvBn> {
        [&self.reduce, &self.spatial, &self.expand]
            .into_iter()
            .chain(&self.downsample)
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
    /// For inference: batch norm with the checkpoint's running statistics.
    pub fn load(vb: VarBuilder, config: &ResNetConfig) -> Result<Self> {
        Self::load_with(vb, config, Statistics::Running)
    }

    /// For training: batch norm with each batch's statistics, recorded for
    /// [`ResNet::take_batch_statistics`]; no running statistics are read.
    pub fn load_for_training(vb: VarBuilder, config: &ResNetConfig) -> Result<Self> {
        Self::load_with(vb, config, Statistics::Batch)
    }

    fn load_with(vb: VarBuilder, config: &ResNetConfig, statistics: Statistics) -> Result<Self> {
        let mut blocks = Vec::new();
        let mut cin = config.width;
        for (stage, &count) in config.layers.iter().enumerate() {
            let width = config.width << stage;
            for b in 0..count {
                let stride = if stage > 0 && b == 0 { 2 } else { 1 };
                let vb = vb.pp(format!("layer{}.{b}", stage + 1));
                blocks.push(Bottleneck::load(vb, cin, width, stride, statistics)?);
                cin = 4 * width;
            }
        }
        Ok(Self {
            stem: ConvBn::load(
                &vb,
                ConvSpec {
                    conv: "conv1",
                    bn: "bn1",
                    cin: 3,
                    cout: config.width,
                    k: 7,
                    stride: 2,
                },
                statistics,
            )?,
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
        let mut h = max_pool_3x3_stride_2(&self.stem.forward(x)?.relu()?)?;
        for block in &self.blocks {
            h = block.forward(&h)?;
        }
        Ok(h)
    }

    /// ImageNet logits `[batch, classes]`, or the pooled features without `fc`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let pooled = crate::pooling::pool(&[self.feature_map(x)?])?;
        match &self.fc {
            Some(fc) => fc.forward(&pooled),
            None => Ok(pooled),
        }
    }

    /// The batch statistics (mean, biased variance) each batch norm recorded
    /// since the last call, by parameter prefix; empty for a model loaded
    /// for inference.
    pub fn take_batch_statistics(&self) -> Vec<(String, Vec<(Tensor, Tensor)>)> {
        std::iter::once(&self.stem)
            .chain(self.blocks.iter().flat_map(Bottleneck::conv_bns))
            .map(|c| (c.bn_name.clone(), c.bn.take_recorded()))
            .collect()
    }
}

/// Running statistics (`{prefix}.running_mean`, `{prefix}.running_var`)
/// from the batch statistics of equally sized batches: the mean of the batch
/// means, and the variance of all values pooled (mean of the batch variances
/// plus the variance of the batch means). Estimating them after training from
/// the final weights ("precise batch norm") needs no state during training.
pub fn running_statistics(
    recorded: &[(String, Vec<(Tensor, Tensor)>)],
) -> Result<HashMap<String, Tensor>> {
    let mut out = HashMap::new();
    for (prefix, batches) in recorded {
        if batches.is_empty() {
            continue;
        }
        let means = Tensor::stack(&batches.iter().map(|b| &b.0).collect::<Vec<_>>(), 0)?;
        let vars = Tensor::stack(&batches.iter().map(|b| &b.1).collect::<Vec<_>>(), 0)?;
        let mean = means.mean(0)?;
        let var = (vars.mean(0)? + means.sqr()?.mean(0)?.sub(&mean.sqr()?)?)?;
        out.insert(format!("{prefix}.running_mean"), mean);
        out.insert(format!("{prefix}.running_var"), var);
    }
    Ok(out)
}

/// 3×3 max pool, stride 2, padding 1, of a map that is ≥ 0 (after a ReLU,
/// zero padding is the same as -inf padding), as the maximum of strided
/// slices along each axis in turn: unlike candle's `max_pool2d` when kernel
/// and stride differ, it has a gradient.
fn max_pool_3x3_stride_2(x: &Tensor) -> Result<Tensor> {
    max_of_three_stride_two(&max_of_three_stride_two(x, 2)?, 3)
}

/// Output `o` along `axis` is the maximum of inputs 2o-1, 2o and 2o+1.
fn max_of_three_stride_two(x: &Tensor, axis: usize) -> Result<Tensor> {
    let n = x.dim(axis)?;
    let out = n.div_ceil(2);
    // One zero before; after, enough that the slice at offset 2 of length
    // 2·out fits.
    let padded = x.pad_with_zeros(axis, 1, 2 * out + 1 - n)?;
    let every_other = |offset: usize| -> Result<Tensor> {
        let mut shape = padded.dims().to_vec();
        shape[axis] = out;
        shape.insert(axis + 1, 2);
        padded
            .narrow(axis, offset, 2 * out)?
            .reshape(shape)?
            .narrow(axis + 1, 0, 1)?
            .squeeze(axis + 1)
    };
    every_other(0)?
        .maximum(&every_other(1)?)?
        .maximum(&every_other(2)?)
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
    use candle_core::{Device, D};

    #[test]
    fn strided_slice_max_pool_equals_candles_and_has_a_gradient() {
        for (h, w) in [(8, 8), (7, 9), (5, 4)] {
            let x = candle_core::Var::from_tensor(
                &Tensor::randn(0f32, 1.0, (2, 3, h, w), &Device::Cpu)
                    .unwrap()
                    .relu()
                    .unwrap(),
            )
            .unwrap();
            let ours = max_pool_3x3_stride_2(x.as_tensor()).unwrap();
            let reference = x
                .as_tensor()
                .pad_with_zeros(D::Minus1, 1, 1)
                .unwrap()
                .pad_with_zeros(D::Minus2, 1, 1)
                .unwrap()
                .max_pool2d_with_stride(3, 2)
                .unwrap();
            assert_eq!(ours.dims(), reference.dims(), "{h}x{w}");
            assert_eq!(
                crate::max_abs_difference(&ours, &reference).unwrap(),
                0.0,
                "{h}x{w}"
            );
            let grads = ours.sum_all().unwrap().backward().unwrap();
            let g = grads.get(&x).expect("the input has a gradient");
            assert!(g.sum_all().unwrap().to_scalar::<f32>().unwrap() > 0.0);
        }
    }

    fn tiny() -> (ResNetConfig, HashMap<String, Tensor>) {
        let config = ResNetConfig {
            layers: vec![1, 1],
            width: 4,
            classes: 3,
        };
        let tensors = random_weights(&config, 3).unwrap();
        (config, tensors)
    }

    #[test]
    fn training_mode_gives_every_parameter_a_gradient() {
        let (config, tensors) = tiny();
        let mut vars = Vec::new();
        let mut graph = HashMap::new();
        for (name, t) in tensors {
            if name.contains("running_") {
                continue;
            }
            let v = candle_core::Var::from_tensor(&t).unwrap();
            graph.insert(name.clone(), v.as_tensor().clone());
            vars.push((name, v));
        }
        let vb = VarBuilder::from_tensors(graph, DType::F32, &Device::Cpu);
        let model = ResNet::load_for_training(vb, &config).unwrap();
        let x = Tensor::randn(0f32, 1.0, (4, 3, 32, 32), &Device::Cpu).unwrap();
        let grads = model
            .forward(&x)
            .unwrap()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for (name, v) in &vars {
            let g = grads
                .get(v)
                .unwrap_or_else(|| panic!("{name} has no gradient"));
            let norm = g
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(norm > 0.0, "{name} has a zero gradient");
        }
    }

    #[test]
    fn running_statistics_of_one_batch_reproduce_the_training_forward() {
        let (config, tensors) = tiny();
        let x = Tensor::randn(0f32, 1.0, (4, 3, 32, 32), &Device::Cpu).unwrap();
        let training = ResNet::load_for_training(
            VarBuilder::from_tensors(tensors.clone(), DType::F32, &Device::Cpu),
            &config,
        )
        .unwrap();
        let trained_output = training.forward(&x).unwrap();
        let recorded = training.take_batch_statistics();
        // stem + (3 + downsample) per block
        assert_eq!(recorded.len(), 1 + 4 + 4);
        assert!(recorded.iter().all(|(_, b)| b.len() == 1));
        assert!(training
            .take_batch_statistics()
            .iter()
            .all(|(_, b)| b.is_empty()));

        let mut frozen = tensors;
        let stats = running_statistics(&recorded).unwrap();
        assert!(stats.contains_key("layer2.0.downsample.1.running_var"));
        frozen.extend(stats);
        let inference = ResNet::load(
            VarBuilder::from_tensors(frozen, DType::F32, &Device::Cpu),
            &config,
        )
        .unwrap();
        let diff =
            crate::max_abs_difference(&inference.forward(&x).unwrap(), &trained_output).unwrap();
        assert!(diff < 1e-4, "{diff}");
    }

    #[test]
    fn running_statistics_pool_the_batches() {
        // Batches {0, 2} and {2, 4}: pooled mean 2, pooled variance 2.
        let t = |v: f32| Tensor::new(&[v], &Device::Cpu).unwrap();
        let recorded = vec![("bn".to_string(), vec![(t(1.0), t(1.0)), (t(3.0), t(1.0))])];
        let stats = running_statistics(&recorded).unwrap();
        assert_eq!(stats["bn.running_mean"].to_vec1::<f32>().unwrap(), [2.0]);
        assert_eq!(stats["bn.running_var"].to_vec1::<f32>().unwrap(), [2.0]);
    }

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
        let diff = crate::max_abs_difference(&a, &b).unwrap();
        assert!(diff <= 1e-4 * scale.max(1.0), "{diff} (scale {scale})");
        assert_eq!(
            ours.feature_map(&x).unwrap().dims(),
            &[2, config.channels(), 2, 3]
        );
    }
}
