//! Helpers shared by the core integration tests.
// Each test binary uses a subset of these helpers.
#![allow(dead_code)]

use integrabner_core::{Assertion, Prediction, RulePipeline};
use std::sync::OnceLock;

pub fn pipeline() -> &'static RulePipeline {
    static P: OnceLock<RulePipeline> = OnceLock::new();
    P.get_or_init(RulePipeline::embedded)
}

pub fn predict(text: &str) -> Prediction {
    pipeline().predict("t", text).expect("valid input")
}

/// (entity text, concept, assertion) triples of a report.
pub fn entities(text: &str) -> Vec<(String, Option<String>, Assertion)> {
    predict(text)
        .entities
        .into_iter()
        .map(|e| (e.text, e.concept, e.assertion))
        .collect()
}

pub fn findings(text: &str) -> Vec<String> {
    predict(text)
        .findings
        .into_iter()
        .map(|f| f.concept)
        .collect()
}
