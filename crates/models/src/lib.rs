//! IntegraBNER's neural models, written for candle in the style of
//! candle-transformers (a plain struct per model with `load(vb, &config)` and
//! `forward`), but trainable: candle-transformers' BERT drops gradients at
//! every LayerNorm, so this crate has its own, with the same parameter names.
//!
//! Platform-neutral: no file system, builds for wasm32. Reading checkpoints
//! from disk and training live in `integrabner-train`.

pub mod bert;
pub mod config;
pub mod efficientnet;
pub mod encoder;
pub mod engine;
mod frozen_batch_norm;
pub mod fusion;
pub mod image_model;
pub mod iob;
mod kernels;
pub mod pooling;
pub mod quantized;
pub mod report;
pub mod report_model;
pub mod resnet;
pub mod token_classifier;
pub mod tokenizer;

pub use bert::Bert;
pub use config::BertConfig;
pub use token_classifier::TokenClassifier;

/// Largest absolute element-wise difference between two tensors of one shape:
/// the measure by which ports, quantization and checkpoint round trips are
/// checked against their reference.
pub fn max_abs_difference(
    a: &candle_core::Tensor,
    b: &candle_core::Tensor,
) -> candle_core::Result<f32> {
    (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar()
}
