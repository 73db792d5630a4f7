//! Two fused CPU kernels for the encoder's hot spots outside the matrix
//! products: GELU and the attention softmax.
//!
//! candle's `gelu_erf` calls libm's `erff` per element (branches, an `expf`,
//! no SIMD) and its composed softmax makes five passes with a temporary
//! each; together they were a fifth of a report's time in a native profile,
//! and the browser pays the same per element. Each op here is one branch-free
//! pass that the compiler vectorizes (wasm `simd128` included) and carries its
//! own backward pass, so training runs through the same code as inference.
//! Both take f32 on the CPU, the only dtype and device the encoder runs on;
//! anything else is sent to candle's own op.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Result, Shape, Tensor, D};

/// GELU, `x Φ(x)` with the exact (erf) normal CDF, as BERT defines it.
pub fn gelu(xs: &Tensor) -> Result<Tensor> {
    if on_cpu_f32(xs) {
        xs.contiguous()?.apply_op1(Gelu)
    } else {
        xs.gelu_erf()
    }
}

/// Softmax over the last dimension.
pub fn softmax_last_dim(xs: &Tensor) -> Result<Tensor> {
    if on_cpu_f32(xs) {
        xs.contiguous()?.apply_op1(SoftmaxLastDim)
    } else {
        candle_nn::ops::softmax(xs, D::Minus1)
    }
}

fn on_cpu_f32(xs: &Tensor) -> bool {
    xs.dtype() == DType::F32 && matches!(xs.device(), Device::Cpu)
}

/// erf(x) for f32 as a rational function: an odd degree-13 polynomial over
/// an even degree-8 one on [-4, 4] (beyond it erf is ±1 in f32), the form
/// and coefficients of Eigen's `generic_fast_erf_float`. No branches, so a
/// loop over it becomes SIMD; within 1e-6 of libm (tested).
fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = -2.726_142_3e-10_f32;
    for a in [
        2.770_681_4e-8,
        -2.101_024e-6,
        -5.692_506_4e-5,
        -7.349_906_3e-4,
        -2.954_6e-3,
        -1.609_603_3e-2,
    ] {
        p = p * x2 + a;
    }
    let mut q = -1.456_607_2e-5_f32;
    for b in [-2.133_740_6e-4, -1.682_827e-3, -7.373_329e-3, -1.426_474e-2] {
        q = q * x2 + b;
    }
    x * p / q
}

fn gelu_f32(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// The elements of a contiguous f32 input (the public ops make it so).
fn contiguous_f32<'a>(op: &str, storage: &'a CpuStorage, layout: &Layout) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!("{op} takes f32, not {:?}", storage.dtype());
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("{op} needs a contiguous input");
    };
    Ok(&data[start..end])
}

struct Gelu;

impl CustomOp1 for Gelu {
    fn name(&self) -> &'static str {
        "gelu-rational-erf"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let data = contiguous_f32(self.name(), storage, layout)?;
        let out: Vec<f32> = data.iter().map(|&x| gelu_f32(x)).collect();
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    /// d/dx x Φ(x) = Φ(x) + x φ(x).
    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let cdf = (((arg * std::f64::consts::FRAC_1_SQRT_2)?.erf()? + 1.0)? * 0.5)?;
        let density = ((arg.sqr()? * -0.5)?.exp()? / (2.0 * std::f64::consts::PI).sqrt())?;
        let slope = (cdf + (arg * density)?)?;
        Ok(Some(grad_res.mul(&slope)?))
    }
}

struct SoftmaxLastDim;

impl CustomOp1 for SoftmaxLastDim {
    fn name(&self) -> &'static str {
        "softmax-last-dim"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let data = contiguous_f32(self.name(), storage, layout)?;
        let width = layout.dims().last().copied().unwrap_or(1).max(1);
        let mut out = data.to_vec();
        for row in out.chunks_exact_mut(width) {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0;
            for v in row.iter_mut() {
                *v = (*v - max).exp();
                sum += *v;
            }
            let scale = 1.0 / sum;
            for v in row.iter_mut() {
                *v *= scale;
            }
        }
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    /// With y = softmax(x): dx = y (g - Σ g y) along the last dimension.
    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let dot = (grad_res * res)?.sum_keepdim(D::Minus1)?;
        Ok(Some(res.mul(&grad_res.broadcast_sub(&dot)?)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;

    fn grid() -> Tensor {
        let values: Vec<f32> = (-1200..=1200).map(|i| i as f32 / 100.0).collect();
        Tensor::new(values, &Device::Cpu).unwrap()
    }

    /// The gradient of Σ weights·y with respect to `x`: weights that are not
    /// all ones make the incoming gradient of `y` vary.
    fn weighted_gradient(y: &Tensor, weights: &Tensor, x: &Var) -> Tensor {
        let grads = y
            .mul(weights)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        grads.get(x).unwrap().clone()
    }

    #[test]
    fn rational_erf_is_within_a_millionth_of_libm() {
        let worst = (-6000..=6000)
            .map(|i| i as f32 / 1000.0)
            .map(|x| (erf(x) - candle_core::cpu::erf::erf_f32(x)).abs())
            .fold(0.0, f32::max);
        assert!(worst < 1e-6, "largest error {worst}");
    }

    #[test]
    fn gelu_and_its_gradient_match_candles() {
        let x = Var::from_tensor(&grid()).unwrap();
        let ours = gelu(x.as_tensor()).unwrap();
        let theirs = x.as_tensor().gelu_erf().unwrap();
        assert!(crate::max_abs_difference(&ours, &theirs).unwrap() < 1e-5);
        let weights = (grid().sin().unwrap() + 2.0).unwrap();
        let ours = weighted_gradient(&ours, &weights, &x);
        let theirs = weighted_gradient(&theirs, &weights, &x);
        assert!(crate::max_abs_difference(&ours, &theirs).unwrap() < 1e-5);
    }

    #[test]
    fn softmax_and_its_gradient_match_candles() {
        let x = Var::from_tensor(&grid().reshape((7, 7, 49)).unwrap().sin().unwrap()).unwrap();
        let ours = softmax_last_dim(x.as_tensor()).unwrap();
        let theirs = candle_nn::ops::softmax(x.as_tensor(), D::Minus1).unwrap();
        assert!(crate::max_abs_difference(&ours, &theirs).unwrap() < 1e-6);
        let weights = grid().reshape((7, 7, 49)).unwrap().cos().unwrap();
        let ours = weighted_gradient(&ours, &weights, &x);
        let theirs = weighted_gradient(&theirs, &weights, &x);
        assert!(crate::max_abs_difference(&ours, &theirs).unwrap() < 1e-6);
        // Rows of a transposed (non-contiguous) input are still rows.
        let t = x.as_tensor().transpose(1, 2).unwrap();
        let ours = softmax_last_dim(&t).unwrap();
        let theirs = candle_nn::ops::softmax(&t, D::Minus1).unwrap();
        assert!(crate::max_abs_difference(&ours, &theirs).unwrap() < 1e-6);
    }
}
