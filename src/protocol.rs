//! Messages between the page and the inference worker, sent as JSON strings.
//!
//! Image bytes travel beside the JSON as a transferred `ArrayBuffer` (see
//! `ToWorker::CheckImage`), never inside it.

use integrabner_core::Prediction;
use integrabner_models::engine::Evidence;
use serde::{Deserialize, Serialize};

/// Path of the worker's loader script, relative to the page.
pub const WORKER_SCRIPT: &str = "./worker-loader.js";

/// Path of the bundle directory, relative to the page.
pub const BUNDLE_DIR: &str = "models";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ToWorker {
    /// Analyse one case: the report `text` (may be empty when there is an
    /// image) and the image checked by request `image`, if any.
    Analyze {
        request: u32,
        id: String,
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        image: Option<u32>,
    },
    /// Decode and check an image; its bytes are the message's second element.
    CheckImage { request: u32, name: String },
    /// Label `text` `runs` times and report the time: the browser benchmark
    /// (tests/browser/bench.mjs) uses it because a worker's clock is too
    /// coarse to time one fast run.
    Benchmark {
        request: u32,
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        image: Option<u32>,
        runs: u32,
        /// Time this encoder (random weights) in place of the bundle's image model.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        encoder: Option<BenchmarkEncoder>,
    },
}

/// An image encoder the benchmark can time without trained weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BenchmarkEncoder {
    Resnet50,
}

/// Where the worker's model files came from on this start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BundleOrigin {
    Network,
    Cache,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum FromWorker {
    /// Bytes of the bundle obtained so far (downloaded or read from cache).
    Progress {
        file: String,
        loaded: u64,
        total: u64,
    },
    Ready {
        bundle_version: String,
        vocabulary_version: String,
        origin: BundleOrigin,
        load_ms: f64,
        /// Whether the bundle has the report model; without one, the rule
        /// labeler alone analyses reports.
        text_model: bool,
        /// Whether the bundle has an image model; without one, images are
        /// checked and shown but produce no findings.
        image_model: bool,
    },
    Result {
        request: u32,
        prediction: Prediction,
        evidence: Evidence,
        /// Said to the user beside the result (the rules stood in for the model).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
        elapsed_ms: f64,
    },
    ImageChecked {
        request: u32,
        width: u32,
        height: u32,
        /// SHA-256 of the file's bytes: a result names the image it was
        /// computed on by it, so the page never shows one image's findings
        /// under another.
        sha256: String,
    },
    Benchmark {
        request: u32,
        runs: u32,
        total_ms: f64,
        /// Size of the worker's wasm linear memory afterwards; it only
        /// grows, so this is the peak so far.
        wasm_memory_bytes: u64,
    },
    Error {
        /// The request that failed, if the failure belongs to one.
        request: Option<u32>,
        cause: ErrorCause,
        /// Said to the user.
        message: String,
    },
}

/// What went wrong in the worker. The page acts on it (through its
/// `scope`), never on the message's wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorCause {
    /// The page sent a message the worker does not understand.
    NotUnderstood,
    /// A request came before the models finished loading.
    StillLoading,
    /// A request came after the models failed to load.
    ModelsFailed,
    /// The bundle could not be loaded: offline without a cached copy, a
    /// file that fails its integrity check, models that do not fit.
    BundleUnavailable,
    /// The case names an image the worker no longer holds.
    ImageGone,
    /// The image cannot be decoded or is outside the limits.
    ImageRefused,
    /// The engine refused the case.
    AnalysisFailed,
    /// A benchmark the bundle cannot run.
    BenchmarkUnavailable,
    /// A panic: the worker cannot go on.
    Crashed,
}

impl ErrorCause {
    /// How far an error of this cause reaches.
    pub fn scope(self) -> ErrorScope {
        match self {
            Self::BundleUnavailable => ErrorScope::Bundle,
            Self::Crashed => ErrorScope::Crash,
            Self::NotUnderstood
            | Self::StillLoading
            | Self::ModelsFailed
            | Self::ImageGone
            | Self::ImageRefused
            | Self::AnalysisFailed
            | Self::BenchmarkUnavailable => ErrorScope::Request,
        }
    }
}

/// How far an error reaches, which decides what the page does about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorScope {
    /// One request failed (bad input); the worker serves the next one.
    Request,
    /// The bundle could not be loaded; a new worker would fail the same way
    /// until the files or the network change.
    Bundle,
    /// The worker crashed; the page starts a new one.
    Crash,
}

impl ToWorker {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("worker messages always serialize")
    }
}

impl FromWorker {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("worker messages always serialize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_with_a_kind_tag() {
        let m = ToWorker::Analyze {
            request: 3,
            id: "r".into(),
            text: "No effusion.".into(),
            image: Some(2),
        };
        let json = m.to_json();
        assert!(json.contains(r#""kind":"analyze""#), "{json}");
        assert_eq!(serde_json::from_str::<ToWorker>(&json).unwrap(), m);
        let e = FromWorker::Error {
            request: None,
            cause: ErrorCause::ImageGone,
            message: "x".into(),
        };
        let json = e.to_json();
        // The benchmark harnesses read `message`.
        assert!(
            json.contains(r#""cause":"image-gone","message":"x""#),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<FromWorker>(&json).unwrap(), e);
    }
}
