//! IntegraBNER core: everything that runs the same natively and in the browser.
//!
//! Data flows `text -> Doc (tokens, sentences, sections) -> RuleLabeler (spans
//! with assertion) -> FindingRules (document findings) -> Prediction`.
//! This crate touches no file system and starts no threads.

pub mod bundle;
pub mod calibration;
pub mod cases;
pub mod context;
pub mod dicom;
pub mod doc;
pub mod findings;
pub mod image_input;
pub mod labeler;
pub mod metrics;
pub mod nih;
pub mod openi;
pub mod phrase_matcher;
pub mod pipeline;
pub mod qualifiers;
pub mod rng;
pub mod schema;
pub mod sections;
pub mod split;
pub mod text;
pub mod vocab;

pub use pipeline::RulePipeline;
pub use schema::{
    Assertion, ConceptType, Entity, Finding, FindingSource, HeatMap, ImageFormat, ImageInfo,
    Prediction, View,
};
