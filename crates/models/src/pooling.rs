//! Pooling shared by the encoders and the heads that read them: a leaf
//! module, so that the encoders do not import the enum that wraps them.

use candle_core::{Result, Tensor, D};

/// Global average of each feature map, side by side: `[batch, Σ channels]`.
pub fn pool(feature_maps: &[Tensor]) -> Result<Tensor> {
    let pooled = feature_maps
        .iter()
        .map(|m| m.flatten_from(2)?.mean(D::Minus1))
        .collect::<Result<Vec<_>>>()?;
    Tensor::cat(&pooled, 1)
}
