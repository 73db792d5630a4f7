//! Writing a trained model as a shipped bundle: quantized weights
//! (`model.gguf`), `config.json`, `tokenizer.json`, and a manifest with sizes,
//! SHA-256, metrics and provenance.

use crate::checkpoint;
use anyhow::{Context, Result};
use candle_core::Device;
use integrabner_core::bundle::{BundleManifest, FileRole, MANIFEST_FILE};
use std::collections::BTreeMap;
use std::path::Path;

const MODEL_FILES: [(&str, FileRole); 3] = [
    ("config.json", FileRole::ModelConfig),
    ("model.gguf", FileRole::Weights),
    ("tokenizer.json", FileRole::Tokenizer),
];

/// Writes the model files of `model_dir` (a training output) into `out`,
/// with the weights quantized.
pub fn write_model_files(model_dir: &Path, out: &Path) -> Result<()> {
    let tensors = checkpoint::load_tensors(model_dir, &Device::Cpu)?;
    std::fs::create_dir_all(out)?;
    std::fs::write(
        out.join("model.gguf"),
        integrabner_models::quantized::to_gguf(&tensors, &[])?,
    )?;
    for file in ["config.json", "tokenizer.json"] {
        std::fs::copy(model_dir.join(file), out.join(file))
            .with_context(|| format!("cannot copy {}/{file}", model_dir.display()))?;
    }
    Ok(())
}

/// Describes the model files in `out` in `out/manifest.json`.
pub fn write_manifest(
    out: &Path,
    provenance: &str,
    metrics: BTreeMap<String, f64>,
) -> Result<BundleManifest> {
    let contents = MODEL_FILES
        .iter()
        .map(|(name, _)| {
            std::fs::read(out.join(name))
                .with_context(|| format!("cannot read {}/{name}", out.display()))
        })
        .collect::<Result<Vec<_>>>()?;
    let files: Vec<(&str, FileRole, &[u8])> = MODEL_FILES
        .iter()
        .zip(&contents)
        .map(|((name, role), bytes)| (*name, *role, bytes.as_slice()))
        .collect();
    let manifest = BundleManifest::build(&files, provenance, metrics)?;
    std::fs::write(out.join(MANIFEST_FILE), manifest.to_json_pretty())?;
    Ok(manifest)
}
