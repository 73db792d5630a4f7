//! `report export`: the trained model quantized (Q8_0) into a bundle
//! directory, its temperature and threshold fitted on validation, and its
//! test scores (quantized and f32) in the manifest.

use super::data::ReportSources;
use super::eval::{calibrate, probability_pairs};
use super::{evaluate, load_tagger};
use crate::export;
use anyhow::Result;
use integrabner_core::bundle::TEXT_MODEL_FILES;
use integrabner_core::calibration::expected_calibration_error;
use integrabner_core::split::Split;
use integrabner_core::RulePipeline;
use std::collections::BTreeMap;
use std::path::Path;

/// Writes the report model of the training output `model` into `out`.
pub fn export_calibrated(
    sources: &ReportSources,
    model: &Path,
    out: &Path,
    provenance: &str,
) -> Result<()> {
    let rules = RulePipeline::embedded();
    let splits = sources.load(&rules, &[Split::Validation, Split::Test])?;
    let part = |s| splits.get(&s).map_or(&[][..], Vec::as_slice);
    export::write_model_files(model, out)?;
    let mut quantized = load_tagger(out)?;
    let (temperature, threshold) = calibrate(&mut quantized, &rules, part(Split::Validation))?;
    let config_path = out.join("config.json");
    let mut config = quantized.config.clone();
    config.temperature = temperature as f32;
    config.threshold = threshold;
    std::fs::write(&config_path, serde_json::to_string_pretty(&config)?)?;
    eprintln!("validation: temperature {temperature:.2}, threshold {threshold:.2}");

    let mut metrics = BTreeMap::new();
    let test = part(Split::Test);
    for (name, dir) in [("q8", out), ("f32", model)] {
        let mut tagger = load_tagger(dir)?;
        tagger.config.temperature = config.temperature;
        tagger.config.threshold = config.threshold;
        let (scores, outputs) = evaluate(&tagger, &rules, test, true)?;
        let prefix = if name == "q8" {
            String::new()
        } else {
            format!("{name} ")
        };
        metrics.insert(format!("{prefix}test span-f1"), scores.spans.f1());
        metrics.insert(
            format!("{prefix}test findings micro-f1"),
            scores.findings.micro().f1,
        );
        metrics.insert(
            format!("{prefix}test findings macro-f1"),
            scores.findings.macro_supported().f1,
        );
        if name == "q8" {
            metrics.insert(
                "test findings ece".into(),
                expected_calibration_error(&probability_pairs(&tagger, test, &outputs), 10),
            );
        }
        eprintln!(
            "test ({name}): span F1 {:.4}, findings micro-F1 {:.4}, macro-F1 {:.4}",
            scores.spans.f1(),
            scores.findings.micro().f1,
            scores.findings.macro_supported().f1
        );
    }
    export::write_manifest(out, &TEXT_MODEL_FILES, provenance, metrics)
}
