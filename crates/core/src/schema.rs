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

/// One output object per report: the line format of `integrabner predict`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    pub id: String,
    pub findings: Vec<Finding>,
    pub entities: Vec<Entity>,
}
