//! Batch norm at inference: the running statistics folded into one scale and
//! one shift per channel (shared by the image encoders).

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

/// Batch norm with running statistics, folded into a scale and a shift.
pub(crate) struct FrozenBatchNorm {
    scale: Tensor,
    shift: Tensor,
}

impl FrozenBatchNorm {
    pub(crate) fn load(vb: VarBuilder, channels: usize, eps: f64) -> Result<Self> {
        let weight = vb.get(channels, "weight")?;
        let bias = vb.get(channels, "bias")?;
        let mean = vb.get(channels, "running_mean")?;
        let var = vb.get(channels, "running_var")?;
        let scale = weight.broadcast_div(&(var + eps)?.sqrt()?)?;
        let shift = (bias - (mean * &scale)?)?;
        Ok(Self {
            scale: scale.reshape((1, channels, 1, 1))?,
            shift: shift.reshape((1, channels, 1, 1))?,
        })
    }
}

impl Module for FrozenBatchNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.broadcast_mul(&self.scale)?.broadcast_add(&self.shift)
    }
}
