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

/// A gzip-compressed tar archive of `entries` (name, contents).
pub fn tgz(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    for (name, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, data.as_slice()).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap()
}

pub fn findings(text: &str) -> Vec<String> {
    predict(text)
        .findings
        .into_iter()
        .map(|f| f.concept)
        .collect()
}
