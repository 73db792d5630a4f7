//! Writing a trained model as a shipped bundle: quantized weights
//! (`model.gguf`), `config.json`, `tokenizer.json`, and a manifest with sizes,
//! SHA-256, metrics and provenance.

use crate::checkpoint;
use anyhow::{Context, Result};
use candle_core::Device;
use integrabner_core::bundle::{within_model_dir, BundleManifest, FileRole, MANIFEST_FILE};
use std::collections::BTreeMap;
use std::path::Path;

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

/// The manifest of `files` (path, role) as they are now in `dir`.
pub fn manifest_for(
    dir: &Path,
    files: &[(&str, FileRole)],
    provenance: &str,
    metrics: BTreeMap<String, f64>,
) -> Result<BundleManifest> {
    let contents = files
        .iter()
        .map(|(name, _)| {
            let path = dir.join(name);
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))
        })
        .collect::<Result<Vec<_>>>()?;
    let described: Vec<(&str, FileRole, &[u8])> = files
        .iter()
        .zip(&contents)
        .map(|((name, role), bytes)| (*name, *role, bytes.as_slice()))
        .collect();
    Ok(BundleManifest::build(&described, provenance, metrics)?)
}

/// Describes the model `files` in `out` (named as in the bundle, e.g.
/// `text/config.json`) in `out/manifest.json`, and says how large the model is.
pub fn write_manifest(
    out: &Path,
    files: &[(&'static str, FileRole)],
    provenance: &str,
    metrics: BTreeMap<String, f64>,
) -> Result<()> {
    let manifest = manifest_for(out, &within_model_dir(files), provenance, metrics)?;
    std::fs::write(out.join(MANIFEST_FILE), manifest.to_json_pretty())?;
    let bytes: u64 = manifest.files.iter().map(|f| f.bytes).sum();
    eprintln!(
        "wrote {} ({:.1} MB, version {})",
        out.display(),
        bytes as f64 / 1e6,
        manifest.version
    );
    Ok(())
}
