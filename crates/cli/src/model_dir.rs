//! Model directories read as the browser reads the bundle: before any byte is
//! used, every file a model loads is checked against the directory's
//! `manifest.json` (size and SHA-256), and against the bundle's
//! `manifest.json` one level up where that one lists it too (`models/text`
//! inside `models/`). A directory without a manifest, such as a training
//! output, is refused unless the user passes `--unverified`.

use anyhow::{bail, Context, Result};
use integrabner_core::bundle::{BundleFile, BundleManifest, MANIFEST_FILE};
use integrabner_train::bundle_dir::read_manifest_file;
use integrabner_train::files::read_regular;
use std::path::Path;

/// Largest model file read from a directory without a manifest.
const MAX_UNVERIFIED_FILE_BYTES: u64 = 4 * 1024 * 1024 * 1024;

/// Whether a model directory's files must match its manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// Every file is verified; no manifest, no model.
    Manifest,
    /// The user asked to run the files as they are (`--unverified`).
    Unverified,
}

impl Trust {
    pub fn from_flag(unverified: bool) -> Self {
        if unverified {
            Self::Unverified
        } else {
            Self::Manifest
        }
    }

    /// Says on stderr that `dir` is used unverified, when it is.
    pub fn warn_if_unverified(self, dir: &Path) {
        if self == Self::Unverified {
            eprintln!(
                "warning: {} is used unverified (--unverified): nothing checks that its files are the ones it was exported with",
                dir.display()
            );
        }
    }
}

/// A manifest of the bundle, if `path` is one; anything else (no file, or a
/// `manifest.json` of another kind) is `None`.
fn parent_manifest(path: &Path) -> Option<BundleManifest> {
    read_manifest_file(path).ok()
}

fn own_manifest(dir: &Path) -> Result<BundleManifest> {
    if !dir.is_dir() {
        bail!(
            "{} is not a model directory (no such directory)",
            dir.display()
        );
    }
    let path = dir.join(MANIFEST_FILE);
    if !path.exists() {
        bail!(
            "{} has no {MANIFEST_FILE}, so its files cannot be verified. A shipped model directory has one \
             (written by `integrabner report export`, `image export`, `fusion export` or `ner export`); \
             to run a training output as it is, pass --unverified",
            dir.display()
        );
    }
    read_manifest_file(&path)
}

fn listed<'a>(manifest: &'a BundleManifest, path: &str) -> Option<&'a BundleFile> {
    manifest.files.iter().find(|f| f.path == path)
}

/// The bytes of `names` in `dir`, each verified against the manifests (see
/// the module's doc), or read as they are when `trust` is `Unverified`.
pub fn read<const N: usize>(dir: &Path, names: [&str; N], trust: Trust) -> Result<[Vec<u8>; N]> {
    let mut files = Vec::with_capacity(N);
    if trust == Trust::Unverified {
        for name in names {
            files.push(read_regular(&dir.join(name), MAX_UNVERIFIED_FILE_BYTES)?);
        }
    } else {
        let manifests = Manifests::of(dir)?;
        for name in names {
            files.push(manifests.read_verified(name)?);
        }
    }
    Ok(files
        .try_into()
        .unwrap_or_else(|_| unreachable!("one file per name")))
}

/// A BERT model directory's `config.json`, `model.gguf` and
/// `tokenizer.json` (verified unless `trust` says otherwise, with a warning
/// then), or `None` for an unverified training output, which holds a
/// checkpoint instead of `model.gguf`: its own loader reads that.
pub fn read_bert(dir: &Path, trust: Trust) -> Result<Option<[Vec<u8>; 3]>> {
    trust.warn_if_unverified(dir);
    if trust == Trust::Unverified && !dir.join("model.gguf").exists() {
        return Ok(None);
    }
    read(dir, ["config.json", "model.gguf", "tokenizer.json"], trust).map(Some)
}

/// The manifests that speak for a model directory's files.
struct Manifests<'a> {
    dir: &'a Path,
    own: BundleManifest,
    /// The bundle's manifest one level up, its path, and the directory's
    /// name in it, when it is a bundle manifest.
    bundle: Option<(std::path::PathBuf, BundleManifest, String)>,
}

impl<'a> Manifests<'a> {
    fn of(dir: &'a Path) -> Result<Self> {
        let bundle = dir.parent().zip(dir.file_name()).and_then(|(parent, own)| {
            let path = parent.join(MANIFEST_FILE);
            let manifest = parent_manifest(&path)?;
            Some((path, manifest, own.to_string_lossy().into_owned()))
        });
        Ok(Self {
            dir,
            own: own_manifest(dir)?,
            bundle,
        })
    }

    fn read_verified(&self, name: &str) -> Result<Vec<u8>> {
        let manifest_path = self.dir.join(MANIFEST_FILE);
        let Some(entry) = listed(&self.own, name) else {
            bail!(
                "{} does not list {name}: the model directory is incomplete or from an older export",
                manifest_path.display()
            );
        };
        let path = self.dir.join(name);
        let size = std::fs::metadata(&path)
            .with_context(|| format!("cannot read {}", path.display()))?
            .len();
        if size != entry.bytes {
            bail!(
                "{}: {size} bytes, but {} says {}; the file is damaged or from another export",
                path.display(),
                manifest_path.display(),
                entry.bytes
            );
        }
        let bytes = read_regular(&path, entry.bytes)?;
        entry.verify(&bytes).with_context(|| {
            format!(
                "{} does not match {}",
                path.display(),
                manifest_path.display()
            )
        })?;
        if let Some((bundle_path, bundle, own)) = &self.bundle {
            if let Some(entry) = listed(bundle, &format!("{own}/{name}")) {
                entry.verify(&bytes).with_context(|| {
                    format!(
                        "{} does not match {} (after replacing a model, run `integrabner export`)",
                        path.display(),
                        bundle_path.display()
                    )
                })?;
            }
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::path::PathBuf;

    const FILES: [&str; 2] = ["config.json", "model.gguf"];

    /// A copy of the shipped fusion model (the bundle's smallest) with its manifest.
    fn fusion_copy() -> tempfile::TempDir {
        let shipped = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/fusion");
        let dir = tempfile::tempdir().unwrap();
        for name in FILES.iter().chain([&MANIFEST_FILE]) {
            std::fs::copy(shipped.join(name), dir.path().join(name)).unwrap();
        }
        dir
    }

    #[test]
    fn an_intact_model_reads_and_an_unlisted_file_is_refused() {
        let dir = fusion_copy();
        let [config, _] = read(dir.path(), FILES, Trust::Manifest).unwrap();
        assert!(config.starts_with(b"{"));
        std::fs::write(dir.path().join("extra.json"), b"{}").unwrap();
        let err = read(dir.path(), ["extra.json"], Trust::Manifest).unwrap_err();
        assert!(
            format!("{err:#}").contains("does not list extra.json"),
            "{err:#}"
        );
    }

    proptest! {
        /// One flipped byte in any file the model loads is refused.
        #[test]
        fn fuzz_model_dir_byte_flips_are_refused(which in 0..2usize, at in any::<usize>(), flip in 1..=255u8) {
            let dir = fusion_copy();
            let path = dir.path().join(FILES[which]);
            let mut bytes = std::fs::read(&path).unwrap();
            let at = at % bytes.len();
            bytes[at] ^= flip;
            std::fs::write(&path, bytes).unwrap();
            let err = read(dir.path(), FILES, Trust::Manifest).unwrap_err();
            prop_assert!(format!("{err:#}").contains("SHA-256 mismatch"), "{err:#}");
        }
    }
}
