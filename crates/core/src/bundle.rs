//! The shipped bundle (`models/`): a manifest naming every file with its size
//! and SHA-256, so that a browser can verify what it downloaded and cached,
//! and a new bundle version can replace an old one.
//!
//! The manifest is written by `integrabner export` and checked against the
//! files by a test; nothing here touches the file system; callers hand in bytes.

use crate::context::{ContextRules, RuleError};
use crate::pipeline::RulePipeline;
use crate::qualifiers::{QualifierError, Qualifiers};
use crate::vocab::{VocabError, Vocabulary};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The manifest's file name inside the bundle directory.
pub const MANIFEST_FILE: &str = "manifest.json";

/// Bumped when the manifest's shape changes.
pub const MANIFEST_FORMAT: u32 = 1;

/// What a bundle file is for; the loader picks files by role, not by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileRole {
    /// The concept vocabulary (`concepts.json`).
    Vocabulary,
    /// A ConText rule file; earlier files win on a shared phrase.
    ContextRules,
    /// The qualifier lexicon and heading table (`qualifiers.json`).
    Qualifiers,
    /// A licence that travels with the data; never loaded.
    Licence,
    /// A model's configuration (`config.json`).
    ModelConfig,
    /// A model's weights (GGUF).
    Weights,
    /// A model's tokenizer (`tokenizer.json`).
    Tokenizer,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleFile {
    /// Path relative to the bundle directory, `/`-separated.
    pub path: String,
    pub role: FileRole,
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BundleManifest {
    pub format: u32,
    /// Derived from the files' hashes: any change to any file changes it.
    pub version: String,
    /// The vocabulary the bundle's concepts come from, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vocabulary_version: Option<String>,
    pub files: Vec<BundleFile>,
    pub provenance: String,
    /// Quality measured when the bundle was made (name → value), so that a
    /// deployment can show what it runs.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, f64>,
}

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("the manifest is not valid: {0}")]
    Manifest(String),
    #[error("{path}: expected {expected} bytes, got {actual}")]
    Size {
        path: String,
        expected: u64,
        actual: u64,
    },
    #[error("{path}: SHA-256 mismatch (expected {expected}, got {actual}); the file is damaged or from another bundle")]
    Checksum {
        path: String,
        expected: String,
        actual: String,
    },
    #[error("the bundle has no {0:?} file")]
    Missing(FileRole),
    #[error("{path} is not UTF-8 text")]
    NotText { path: String },
    #[error(transparent)]
    Vocabulary(#[from] VocabError),
    #[error(transparent)]
    Rules(#[from] RuleError),
    #[error(transparent)]
    Qualifiers(#[from] QualifierError),
}

/// The layout of the rule part of the bundle, in loading order.
pub const RULE_FILES: [(&str, FileRole); 5] = [
    ("rules/concepts.json", FileRole::Vocabulary),
    ("rules/qualifiers.json", FileRole::Qualifiers),
    ("rules/radiology_cues.json", FileRole::ContextRules),
    ("rules/medspacy_context_rules.json", FileRole::ContextRules),
    ("rules/medspacy_LICENSE", FileRole::Licence),
];

/// The report model's files, under `text/` when the bundle has one.
pub const TEXT_MODEL_FILES: [(&str, FileRole); 3] = [
    ("text/config.json", FileRole::ModelConfig),
    ("text/model.gguf", FileRole::Weights),
    ("text/tokenizer.json", FileRole::Tokenizer),
];

/// The image model's files, under `image/` when the bundle has one.
pub const IMAGE_MODEL_FILES: [(&str, FileRole); 2] = [
    ("image/config.json", FileRole::ModelConfig),
    ("image/model.gguf", FileRole::Weights),
];

/// The fusion model's files, under `fusion/` when the bundle has one.
pub const FUSION_MODEL_FILES: [(&str, FileRole); 2] = [
    ("fusion/config.json", FileRole::ModelConfig),
    ("fusion/model.gguf", FileRole::Weights),
];

/// A model's files as named inside its own directory (`text/config.json` →
/// `config.json`): the layout of `integrabner … export` outputs.
pub fn within_model_dir(files: &[(&'static str, FileRole)]) -> Vec<(&'static str, FileRole)> {
    files
        .iter()
        .map(|&(path, role)| (path.split_once('/').map_or(path, |(_, name)| name), role))
        .collect()
}

/// The bytes of the file with `role` under directory `dir/` among verified
/// bundle files: how each model finds its config and weights.
pub fn model_file<'a>(
    files: &[(&BundleFile, &'a [u8])],
    dir: &str,
    role: FileRole,
) -> Option<&'a [u8]> {
    files
        .iter()
        .find(|(f, _)| {
            f.role == role
                && f.path
                    .strip_prefix(dir)
                    .is_some_and(|rest| rest.starts_with('/'))
        })
        .map(|(_, bytes)| *bytes)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl BundleFile {
    pub fn describe(path: &str, role: FileRole, bytes: &[u8]) -> Self {
        Self {
            path: path.to_string(),
            role,
            bytes: bytes.len() as u64,
            sha256: sha256_hex(bytes),
        }
    }

    /// Checks size and hash of downloaded or cached bytes.
    pub fn verify(&self, bytes: &[u8]) -> Result<(), BundleError> {
        if bytes.len() as u64 != self.bytes {
            return Err(BundleError::Size {
                path: self.path.clone(),
                expected: self.bytes,
                actual: bytes.len() as u64,
            });
        }
        let actual = sha256_hex(bytes);
        if actual != self.sha256 {
            return Err(BundleError::Checksum {
                path: self.path.clone(),
                expected: self.sha256.clone(),
                actual,
            });
        }
        Ok(())
    }
}

impl BundleManifest {
    /// Describes `files` (path, role, contents); a vocabulary among them is
    /// validated and gives the vocabulary version.
    pub fn build(
        files: &[(&str, FileRole, &[u8])],
        provenance: &str,
        metrics: BTreeMap<String, f64>,
    ) -> Result<Self, BundleError> {
        let vocabulary_version = match files
            .iter()
            .find(|(_, role, _)| *role == FileRole::Vocabulary)
        {
            Some((path, _, bytes)) => Some(Vocabulary::from_json(as_text(path, bytes)?)?.version),
            None => None,
        };
        let files: Vec<BundleFile> = files
            .iter()
            .map(|(path, role, bytes)| BundleFile::describe(path, *role, bytes))
            .collect();
        let all_hashes: String = files.iter().map(|f| f.sha256.as_str()).collect();
        Ok(Self {
            format: MANIFEST_FORMAT,
            version: sha256_hex(all_hashes.as_bytes())[..12].to_string(),
            vocabulary_version,
            files,
            provenance: provenance.to_string(),
            metrics,
        })
    }

    pub fn from_json(json: &str) -> Result<Self, BundleError> {
        let manifest: Self =
            serde_json::from_str(json).map_err(|e| BundleError::Manifest(e.to_string()))?;
        if manifest.format != MANIFEST_FORMAT {
            return Err(BundleError::Manifest(format!(
                "format {} is not supported (this build reads format {MANIFEST_FORMAT})",
                manifest.format
            )));
        }
        Ok(manifest)
    }

    pub fn to_json_pretty(&self) -> String {
        let mut json = serde_json::to_string_pretty(self).expect("a manifest always serializes");
        json.push('\n');
        json
    }

    /// Files that the pipeline loads, i.e. everything but licences.
    pub fn loaded_files(&self) -> impl Iterator<Item = &BundleFile> {
        self.files.iter().filter(|f| f.role != FileRole::Licence)
    }
}

fn as_text<'a>(path: &str, bytes: &'a [u8]) -> Result<&'a str, BundleError> {
    std::str::from_utf8(bytes).map_err(|_| BundleError::NotText {
        path: path.to_string(),
    })
}

impl RulePipeline {
    /// Builds the pipeline from verified bundle files, given as `(file, bytes)`
    /// in manifest order. Bytes are checked against the manifest here too, so
    /// a caller cannot skip verification by accident.
    pub fn from_bundle(files: &[(&BundleFile, &[u8])]) -> Result<Self, BundleError> {
        let mut vocab = None;
        let mut qualifiers = None;
        let mut rule_texts = Vec::new();
        for (file, bytes) in files {
            file.verify(bytes)?;
            match file.role {
                FileRole::Vocabulary => {
                    vocab = Some(Vocabulary::from_json(as_text(&file.path, bytes)?)?)
                }
                FileRole::ContextRules => rule_texts.push(as_text(&file.path, bytes)?),
                FileRole::Qualifiers => {
                    qualifiers = Some(Qualifiers::from_json(as_text(&file.path, bytes)?)?)
                }
                FileRole::Licence
                | FileRole::ModelConfig
                | FileRole::Weights
                | FileRole::Tokenizer => {}
            }
        }
        let vocab = vocab.ok_or(BundleError::Missing(FileRole::Vocabulary))?;
        if rule_texts.is_empty() {
            return Err(BundleError::Missing(FileRole::ContextRules));
        }
        Ok(Self::new(
            vocab,
            ContextRules::from_json_files(&rule_texts)?,
            qualifiers.ok_or(BundleError::Missing(FileRole::Qualifiers))?,
        ))
    }
}
