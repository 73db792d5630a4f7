//! A whole model bundle on disk (`models/`, as `integrabner export` writes
//! it) loaded the way the browser worker loads it: every file the bundle's
//! `manifest.json` lists is read, checked against its size and SHA-256, and
//! only then handed to `Engine::from_bundle`. The CLI's `predict --models`
//! and the Python package both load through here, so a damaged bundle is
//! refused the same way everywhere.

use crate::files::read_regular;
use anyhow::{bail, Context, Result};
use integrabner_core::bundle::{BundleFile, BundleManifest, MANIFEST_FILE};
use integrabner_models::engine::Engine;
use std::path::{Component, Path};

/// Largest bundle manifest read, in bytes.
const MAX_MANIFEST_BYTES: u64 = 1024 * 1024;

/// The bundle's manifest in `dir`, with a message saying what is wrong
/// when there is none or it is not a bundle's.
pub fn read_manifest(dir: &Path) -> Result<BundleManifest> {
    if !dir.is_dir() {
        bail!(
            "{} is not a model bundle (no such directory)",
            dir.display()
        );
    }
    let path = dir.join(MANIFEST_FILE);
    if !path.is_file() {
        bail!(
            "{} has no {MANIFEST_FILE}: a model bundle is the directory `integrabner export` writes (the repository's models/)",
            dir.display()
        );
    }
    read_manifest_file(&path)
}

/// The manifest (of a bundle or of one model directory) in the file `path`.
pub fn read_manifest_file(path: &Path) -> Result<BundleManifest> {
    let bytes = read_regular(path, MAX_MANIFEST_BYTES)?;
    let text = std::str::from_utf8(&bytes)
        .with_context(|| format!("{} is not UTF-8 text", path.display()))?;
    BundleManifest::from_json(text).with_context(|| format!("{}", path.display()))
}

/// The engine of the bundle in `dir`, every file verified first.
pub fn load_engine(dir: &Path) -> Result<Engine> {
    let manifest = read_manifest(dir)?;
    let files: Vec<(&BundleFile, Vec<u8>)> = manifest
        .loaded_files()
        .map(|file| Ok((file, read_verified(dir, file)?)))
        .collect::<Result<_>>()?;
    let pairs: Vec<(&BundleFile, &[u8])> = files.iter().map(|(f, b)| (*f, b.as_slice())).collect();
    Engine::from_bundle(&pairs).with_context(|| format!("the bundle in {}", dir.display()))
}

/// A listed file's bytes, refused unless they are the ones the manifest
/// describes. Paths are the manifest's own: relative, inside the bundle.
fn read_verified(dir: &Path, file: &BundleFile) -> Result<Vec<u8>> {
    let relative = Path::new(&file.path);
    if !relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
    {
        bail!(
            "{}: the manifest lists {:?}, which is not a path inside the bundle",
            dir.join(MANIFEST_FILE).display(),
            file.path
        );
    }
    let path = dir.join(relative);
    let damaged = || {
        format!(
            "{} does not match {} (the bundle is damaged or incomplete; re-export it with `integrabner export`)",
            path.display(),
            dir.join(MANIFEST_FILE).display()
        )
    };
    let bytes = read_regular(&path, file.bytes).with_context(damaged)?;
    file.verify(&bytes).with_context(damaged)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models")
    }

    /// A copy of the shipped bundle's rules and fusion model under a manifest
    /// that lists only them (the smallest bundle that loads).
    fn small_bundle() -> tempfile::TempDir {
        let full = read_manifest(&shipped()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut manifest = full.clone();
        manifest.files.retain(|f| f.path.starts_with("rules/"));
        for f in &manifest.files {
            let to = dir.path().join(&f.path);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(shipped().join(&f.path), to).unwrap();
        }
        std::fs::write(dir.path().join(MANIFEST_FILE), manifest.to_json_pretty()).unwrap();
        dir
    }

    #[test]
    fn an_intact_bundle_loads_and_a_damaged_one_is_refused_naming_the_file() {
        let dir = small_bundle();
        let engine = load_engine(dir.path()).unwrap();
        assert!(engine.report.is_none() && engine.image.is_none());
        let concepts = dir.path().join("rules/concepts.json");
        let mut bytes = std::fs::read(&concepts).unwrap();
        bytes[10] ^= 1;
        std::fs::write(&concepts, bytes).unwrap();
        let message = format!("{:#}", load_engine(dir.path()).err().unwrap());
        assert!(message.contains("concepts.json"), "{message}");
        assert!(message.contains("damaged"), "{message}");
    }

    #[test]
    fn a_directory_without_a_manifest_and_a_path_outside_the_bundle_are_refused() {
        let empty = tempfile::tempdir().unwrap();
        let message = format!("{:#}", load_engine(empty.path()).err().unwrap());
        assert!(message.contains("has no manifest.json"), "{message}");

        let dir = small_bundle();
        let mut manifest = read_manifest(dir.path()).unwrap();
        manifest.files[0].path = "../concepts.json".into();
        std::fs::write(dir.path().join(MANIFEST_FILE), manifest.to_json_pretty()).unwrap();
        let message = format!("{:#}", load_engine(dir.path()).err().unwrap());
        assert!(
            message.contains("not a path inside the bundle"),
            "{message}"
        );
    }
}
