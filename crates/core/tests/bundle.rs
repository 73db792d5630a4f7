//! The shipped bundle (`models/`): the manifest describes the files, the
//! pipeline built from them equals the compiled-in one, and damage is caught.

use integrabner_core::bundle::{BundleError, BundleFile, BundleManifest, FileRole, MANIFEST_FILE};
use integrabner_core::RulePipeline;
use std::path::PathBuf;

fn bundle_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models")
}

fn shipped() -> (BundleManifest, Vec<Vec<u8>>) {
    let dir = bundle_dir();
    let manifest =
        BundleManifest::from_json(&std::fs::read_to_string(dir.join(MANIFEST_FILE)).unwrap())
            .unwrap();
    let contents = manifest
        .files
        .iter()
        .map(|f| std::fs::read(dir.join(&f.path)).unwrap())
        .collect();
    (manifest, contents)
}

/// Each manifest entry with its file's bytes, as `from_bundle` takes them.
fn paired<'a>(
    manifest: &'a BundleManifest,
    contents: &'a [Vec<u8>],
) -> Vec<(&'a BundleFile, &'a [u8])> {
    manifest
        .files
        .iter()
        .zip(contents.iter().map(Vec::as_slice))
        .collect()
}

#[test]
fn the_pipeline_from_the_bundle_equals_the_compiled_in_one() {
    let (manifest, contents) = shipped();
    let pairs = paired(&manifest, &contents);
    let from_bundle = RulePipeline::from_bundle(&pairs).unwrap();
    let embedded = RulePipeline::embedded();
    let text = "Mild cardiomegaly. No pneumothorax or pleural effusion. Cannot exclude pneumonia.";
    assert_eq!(
        from_bundle.predict("r", text).unwrap(),
        embedded.predict("r", text).unwrap()
    );
    assert_eq!(manifest.vocabulary_version, Some(embedded.vocab.version));
}

#[test]
fn a_damaged_file_fails_its_check_and_a_missing_role_is_named() {
    let (manifest, mut contents) = shipped();
    let vocab = manifest
        .files
        .iter()
        .position(|f| f.role == FileRole::Vocabulary)
        .unwrap();
    contents[vocab][10] ^= 1;
    let pairs = paired(&manifest, &contents);
    let err = RulePipeline::from_bundle(&pairs).unwrap_err();
    assert!(matches!(err, BundleError::Checksum { .. }), "{err}");
    assert!(err.to_string().contains("rules/concepts.json"));

    let (manifest, contents) = shipped();
    let intact = paired(&manifest, &contents);
    let no_rules: Vec<_> = intact
        .iter()
        .filter(|(f, _)| f.role != FileRole::ContextRules)
        .copied()
        .collect();
    assert!(matches!(
        RulePipeline::from_bundle(&no_rules).unwrap_err(),
        BundleError::Missing(FileRole::ContextRules)
    ));
}

#[test]
fn a_manifest_of_another_format_is_refused() {
    let (manifest, _) = shipped();
    let json = manifest
        .to_json_pretty()
        .replace("\"format\": 1", "\"format\": 99");
    let err = BundleManifest::from_json(&json).unwrap_err();
    assert!(
        err.to_string().contains("format 99 is not supported"),
        "{err}"
    );
}
