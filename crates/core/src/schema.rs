//! The one serializable output type, shared by the CLI's JSONL and the web app.
//!
//! Offsets are counted in Unicode scalar values (Rust `char`s), end exclusive,
//! so that JavaScript consumers can index with `Array.from(text)`.

use crate::qualifiers::QualifierKind;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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
    pub const ALL: [Self; 4] = [Self::Anatomy, Self::Disease, Self::Finding, Self::Device];

    /// The name in a finding's `type` (`anatomy`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Anatomy => "anatomy",
            Self::Disease => "disease",
            Self::Finding => "finding",
            Self::Device => "device",
        }
    }

    /// The name as an entity's `label` and a BIO tag's type (`ANATOMY`):
    /// the spelling of NER corpora, kept so that both read as before.
    pub fn entity_label(self) -> &'static str {
        match self {
            Self::Anatomy => "ANATOMY",
            Self::Disease => "DISEASE",
            Self::Finding => "FINDING",
            Self::Device => "DEVICE",
        }
    }

    /// The type of an entity label or tag type (`ANATOMY`).
    pub fn from_entity_label(label: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.entity_label() == label)
    }
}

/// An entity's label: its concept type, spelled `ANATOMY`.
mod entity_label {
    use super::ConceptType;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &ConceptType, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(t.entity_label())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ConceptType, D::Error> {
        let label = <std::borrow::Cow<str>>::deserialize(d)?;
        ConceptType::from_entity_label(&label).ok_or_else(|| {
            serde::de::Error::unknown_variant(&label, &["ANATOMY", "DISEASE", "FINDING", "DEVICE"])
        })
    }
}

/// Whether the report asserts that an entity exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Assertion {
    Present,
    Absent,
    Uncertain,
}

impl Assertion {
    pub const ALL: [Self; 3] = [Self::Present, Self::Absent, Self::Uncertain];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Present => "present",
            Self::Absent => "absent",
            Self::Uncertain => "uncertain",
        }
    }
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

impl FindingSource {
    pub const ALL: [Self; 4] = [Self::Dictionary, Self::Text, Self::Image, Self::Fusion];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dictionary => "dictionary",
            Self::Text => "text",
            Self::Image => "image",
            Self::Fusion => "fusion",
        }
    }
}

/// A document-level coded finding: an OpenI MeSH heading judged present.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub concept: String,
    #[serde(rename = "type")]
    pub concept_type: ConceptType,
    pub probability: f32,
    pub source: FindingSource,
    /// OpenI qualifier terms in OpenI's spelling and order (`["left",
    /// "small"]` for `Pleural Effusion/left/small`); from the report, so
    /// empty for a finding of the image alone.
    #[serde(default)]
    pub qualifiers: Vec<String>,
    /// The same terms by what they say (`{"laterality": ["left"],
    /// "severity": ["small"]}`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub qualifiers_by_kind: BTreeMap<QualifierKind, Vec<String>>,
}

/// Words of a mention's sentence that gave it qualifiers, so that a page
/// can underline them. Offsets are chars, end exclusive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntityModifier {
    pub start: usize,
    pub end: usize,
    pub text: String,
    pub qualifiers: Vec<String>,
}

/// A mention in the text. `source` names the component that found it
/// (`dictionary`, `ner-disease`, `ner-anatomy`, `text`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entity {
    pub start: usize,
    pub end: usize,
    pub text: String,
    /// The linked concept's type (`ANATOMY`).
    #[serde(with = "entity_label")]
    pub label: ConceptType,
    pub concept: Option<String>,
    pub assertion: Assertion,
    pub score: f32,
    pub source: String,
    /// The qualifier words that describe this mention.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub modifiers: Vec<EntityModifier>,
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

/// The file format an image came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    Png,
    Jpeg,
    Dicom,
}

/// The projection of a radiograph, as far as its file says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum View {
    /// PA or AP: what the image model was trained on.
    Frontal,
    /// Read beside the report but not by the image model (see `ImageInfo`).
    Lateral,
    /// A PNG or JPEG, or a DICOM file that names no projection: analysed as
    /// a frontal view.
    #[default]
    Unknown,
}

/// What a DICOM file said of its image, without anything that identifies
/// the patient or the study: that stays in `dicom::DicomHeader`, on the
/// user's screen only.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct DicomInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modality: Option<String>,
    /// View Position (0018,5101), as written: `PA`, `AP`, `LL`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view_position: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_laterality: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_orientation: Option<String>,
    pub photometric_interpretation: String,
    pub bits_stored: u16,
    pub transfer_syntax: String,
    /// Frames in the file; only the first is read.
    pub frames: u32,
    /// The window the image was rendered with, as `[centre, width]` in
    /// modality units; `None` when a VOI LUT table or the value range was
    /// used instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<[f32; 2]>,
}

/// One image of a case as it was read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageInfo {
    pub format: ImageFormat,
    pub width: u32,
    pub height: u32,
    pub view: View,
    /// Whether the image model read it: a lateral view is only listed.
    pub analysed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dicom: Option<DicomInfo>,
    /// Said of this image to the user (a lateral view, frames left unread).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
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
    /// The case's images in input order; heat maps index into this list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<ImageInfo>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concept_type_names_are_the_serialized_ones() {
        for t in ConceptType::ALL {
            assert_eq!(serde_json::to_value(t).unwrap(), t.as_str());
            let entity = Entity {
                start: 0,
                end: 1,
                text: "x".into(),
                label: t,
                concept: None,
                assertion: Assertion::Present,
                score: 1.0,
                source: "test".into(),
                modifiers: Vec::new(),
            };
            let json = serde_json::to_value(&entity).unwrap();
            assert_eq!(json["label"], t.entity_label());
            assert_eq!(serde_json::from_value::<Entity>(json).unwrap(), entity);
        }
        for a in Assertion::ALL {
            assert_eq!(serde_json::to_value(a).unwrap(), a.as_str());
        }
        for s in FindingSource::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        let wrong = r#"{"start":0,"end":1,"text":"x","label":"anatomy","concept":null,"assertion":"present","score":1.0,"source":"t"}"#;
        assert!(serde_json::from_str::<Entity>(wrong).is_err());
    }
}
