//! The one serializable output type, shared by the CLI's JSONL and the web app.
//!
//! Offsets are counted in Unicode scalar values (Rust `char`s), end exclusive,
//! so that JavaScript consumers can index with `Array.from(text)`.

use serde::{Deserialize, Serialize};

/// The four kinds of concept in the vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConceptType {
    Anatomy,
    Disease,
    Finding,
    Device,
}

impl ConceptType {
    /// The entity label that spans of this concept type carry.
    pub fn label(self) -> EntityLabel {
        match self {
            Self::Anatomy => EntityLabel::Anatomy,
            Self::Disease => EntityLabel::Disease,
            Self::Finding => EntityLabel::Finding,
            Self::Device => EntityLabel::Device,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Anatomy => "anatomy",
            Self::Disease => "disease",
            Self::Finding => "finding",
            Self::Device => "device",
        }
    }
}

/// Entity labels (the BIO classes of the token classifier).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum EntityLabel {
    Anatomy,
    Disease,
    Finding,
    Device,
}

/// Whether the report asserts that an entity exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Assertion {
    Present,
    Absent,
    Uncertain,
}

/// Which component judged a document-level finding present.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FindingSource {
    Dictionary,
    Text,
    Image,
    Fusion,
}

/// A document-level coded finding: an OpenI MeSH heading judged present.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub concept: String,
    #[serde(rename = "type")]
    pub concept_type: ConceptType,
    pub probability: f32,
    pub source: FindingSource,
}

/// A mention in the text. `source` names the component that found it
/// (`dictionary`, `ner-disease`, `ner-anatomy`, `text`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entity {
    pub start: usize,
    pub end: usize,
    pub text: String,
    pub label: EntityLabel,
    pub concept: Option<String>,
    pub assertion: Assertion,
    pub score: f32,
    pub source: String,
}

/// Where in an image a finding was seen: a class activation map on a coarse
/// grid over the encoder's square input, values scaled to 0..=1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeatMap {
    pub concept: String,
    /// Index of the image in the case's `images` (0 for a single image).
    pub image: usize,
    pub rows: usize,
    pub cols: usize,
    /// `rows × cols` values, row-major.
    pub values: Vec<f32>,
    /// The image inside the grid as `[left, top, right, bottom]` fractions of
    /// the grid's side: the rest is padding that kept the aspect ratio.
    pub region: [f32; 4],
}

/// One output object per case: the line format of `integrabner predict`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Prediction {
    pub id: String,
    pub findings: Vec<Finding>,
    pub entities: Vec<Entity>,
    /// Probability of every concept the active models score (and `abnormal`
    /// for a case with an image), when asked for (`predict --scores`): what
    /// ROC curves need. A case with a report and images has the fused
    /// probabilities as `NAME` and the single models' as `text:NAME` and
    /// `image:NAME` (without a fusion model: the report model's as `NAME`);
    /// otherwise the one model's as `NAME`.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub scores: std::collections::BTreeMap<String, f32>,
    /// A heat map for each image finding.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub heat_maps: Vec<HeatMap>,
}
