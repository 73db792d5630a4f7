//! The concept vocabulary: OpenI MeSH headings with their type, synonyms and
//! codes, plus the modifiers that make an anatomy mention abnormal.
//!
//! The shipped vocabulary is `models/rules/concepts.json`, a file of the model
//! bundle: the CLI compiles it in, the browser downloads it with the bundle and
//! checks its SHA-256, so both run byte-identical data.

use crate::schema::{ConceptType, Finding, FindingSource};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// When the document-level coder reports a concept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Coding {
    /// Coded whenever a mention is asserted present (diseases, most findings, devices).
    #[default]
    Mentioned,
    /// Coded only when the structure is described as abnormal (most anatomy:
    /// `Aorta` for a tortuous aorta, not for "the aorta is normal").
    Abnormal,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Concept {
    /// The heading exactly as OpenI's manual coding writes it.
    pub heading: String,
    #[serde(rename = "type")]
    pub concept_type: ConceptType,
    #[serde(default)]
    pub coding: Coding,
    /// Report phrasings that name the concept.
    pub synonyms: Vec<String>,
    /// Phrasings that by themselves describe the concept as abnormal
    /// (`low lung volumes` for `Lung`); only meaningful with `Coding::Abnormal`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub abnormal_phrases: Vec<String>,
    /// The heading coded when this structure is abnormal, if not its own
    /// (an enlarged `Heart` is coded `Cardiomegaly`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codes_as: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub radlex: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub umls: Option<String>,
}

impl Concept {
    /// This concept as a coded finding of `source`.
    pub fn finding(&self, probability: f32, source: FindingSource) -> Finding {
        Finding {
            concept: self.heading.clone(),
            concept_type: self.concept_type,
            probability,
            source,
            qualifiers: Vec::new(),
            qualifiers_by_kind: Default::default(),
        }
    }
}

/// A qualifier (as OpenI writes it, e.g. `tortuous`) with the report phrasings
/// that express it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Modifier {
    pub qualifier: String,
    pub phrases: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vocabulary {
    pub version: String,
    pub concepts: Vec<Concept>,
    pub modifiers: Vec<Modifier>,
    /// Phrases that contain a synonym but name no concept (`pulmonary vascularity`):
    /// the longest match wins, so listing them here keeps the shorter synonym silent.
    #[serde(default)]
    pub blockers: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum VocabError {
    #[error("vocabulary JSON is invalid: {0}")]
    Json(String),
    #[error("heading {0:?} appears twice")]
    DuplicateHeading(String),
    #[error("concept {0:?} has no synonyms")]
    NoSynonyms(String),
    #[error("concept {concept:?} is coded as unknown heading {target:?}")]
    UnknownCodesAs { concept: String, target: String },
    #[error("phrase {phrase:?} belongs to both {first:?} and {second:?}")]
    AmbiguousPhrase {
        phrase: String,
        first: String,
        second: String,
    },
}

const EMBEDDED: &str = include_str!("../../../models/rules/concepts.json");

impl Vocabulary {
    /// The vocabulary that ships with this build.
    pub fn embedded() -> Self {
        Self::from_json(EMBEDDED).expect("the embedded vocabulary is validated by tests")
    }

    pub fn from_json(json: &str) -> Result<Self, VocabError> {
        let vocab: Self =
            serde_json::from_str(json).map_err(|e| VocabError::Json(e.to_string()))?;
        vocab.validate()?;
        Ok(vocab)
    }

    fn validate(&self) -> Result<(), VocabError> {
        let mut headings = HashMap::new();
        let mut phrases: HashMap<Vec<String>, &str> = HashMap::new();
        for c in &self.concepts {
            if headings.insert(c.heading.to_lowercase(), ()).is_some() {
                return Err(VocabError::DuplicateHeading(c.heading.clone()));
            }
            if c.synonyms.is_empty() {
                return Err(VocabError::NoSynonyms(c.heading.clone()));
            }
            for p in c.synonyms.iter().chain(&c.abnormal_phrases) {
                let key = crate::text::phrase_keys(p);
                if let Some(first) = phrases.insert(key, &c.heading) {
                    if first != c.heading {
                        return Err(VocabError::AmbiguousPhrase {
                            phrase: p.clone(),
                            first: first.to_string(),
                            second: c.heading.clone(),
                        });
                    }
                }
            }
        }
        for c in &self.concepts {
            if let Some(target) = &c.codes_as {
                if self.find(target).is_none() {
                    return Err(VocabError::UnknownCodesAs {
                        concept: c.heading.clone(),
                        target: target.clone(),
                    });
                }
            }
        }
        Ok(())
    }

    /// The concept a finding about concept `id` is reported under.
    pub fn coded_as(&self, id: ConceptId) -> ConceptId {
        self.concept(id)
            .codes_as
            .as_deref()
            .and_then(|h| self.find(h))
            .unwrap_or(id)
    }

    /// The concept whose heading matches `heading`, ignoring case and
    /// surrounding whitespace (OpenI writes both `Lymph Nodes` and `Lymph nodes`).
    pub fn find(&self, heading: &str) -> Option<ConceptId> {
        let h = heading.trim();
        self.concepts
            .iter()
            .position(|c| c.heading.eq_ignore_ascii_case(h))
            .map(ConceptId)
    }

    pub fn concept(&self, id: ConceptId) -> &Concept {
        &self.concepts[id.0]
    }

    /// Every concept's id, in vocabulary order.
    pub fn ids(&self) -> impl Iterator<Item = ConceptId> {
        (0..self.concepts.len()).map(ConceptId)
    }
}

/// A concept of the vocabulary: interned, so spans and findings carry a
/// number and name it only at the output edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConceptId(usize);

impl ConceptId {
    /// Its position in `Vocabulary::concepts` (and in vectors indexed like it).
    pub fn index(self) -> usize {
        self.0
    }
}
