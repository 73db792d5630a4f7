//! A review session: the cases, what the model said about each, and every
//! judgment the expert made. This is exactly what is saved in IndexedDB after
//! each change and what "Export JSON" writes, so one type serves resume,
//! export and import.

use integrabner_core::{Assertion, ConceptType, Prediction};
use serde::{Deserialize, Serialize};

/// The `format` of a saved or exported session.
pub const FORMAT: &str = "integrabner-review-v1";

/// Longest gap between two actions that counts as reviewing time: an expert
/// who leaves the tab open over lunch has not spent an hour on the case.
pub const MAX_IDLE_MS: f64 = 5.0 * 60.0 * 1000.0;

/// The bundle that produced the predictions under review.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelVersion {
    pub bundle: String,
    pub vocabulary: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub format: String,
    /// Names of the files the cases came from.
    pub source: Vec<String>,
    pub model: ModelVersion,
    /// Milliseconds since the Unix epoch.
    pub created_ms: f64,
    /// The case on screen.
    pub current: usize,
    pub cases: Vec<Case>,
    /// The end-of-session form, once the expert finishes.
    #[serde(default)]
    pub form: Option<Form>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Case {
    pub id: String,
    pub text: String,
    /// File name of the case's image, as chosen by the expert.
    #[serde(default)]
    pub image: Option<String>,
    /// What the model said; `None` until analysed (or when it failed).
    #[serde(default)]
    pub prediction: Option<Prediction>,
    /// Why the case could not be analysed (or analysed without its image).
    #[serde(default)]
    pub problem: Option<String>,
    /// The model's entities and findings, then the ones the expert added.
    #[serde(default)]
    pub items: Vec<Item>,
    #[serde(default)]
    pub form: Form,
    /// Time the case was on screen, in milliseconds.
    #[serde(default)]
    pub time_ms: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ItemKind {
    Entity,
    Finding,
}

impl ItemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Entity => "entity",
            Self::Finding => "finding",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Not judged yet.
    Pending,
    Accepted,
    Rejected,
    /// Right place, but the expert changed type, concept, assertion or
    /// qualifiers.
    Corrected,
    /// Missed by the model; added by the expert.
    Added,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Accepted => "accepted",
            Self::Rejected => "rejected",
            Self::Corrected => "corrected",
            Self::Added => "added",
        }
    }
}

/// What an item says: its type, concept, assertion and qualifiers. The model's reading
/// and the expert's correction have the same shape.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Reading {
    #[serde(rename = "type")]
    pub concept_type: ConceptType,
    pub concept: Option<String>,
    pub assertion: Assertion,
    /// A finding's qualifiers: OpenI terms (`left`, `small`) in the
    /// lexicon's order; an entity has none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub qualifiers: Vec<String>,
}

/// One thing to judge: an entity (a span of the report) or a coded finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub kind: ItemKind,
    /// Char offsets of an entity in the case text, end exclusive.
    #[serde(default)]
    pub span: Option<(usize, usize)>,
    /// The entity's text, or the finding's concept.
    pub text: String,
    /// The model's reading (the expert's, for an added item).
    pub reading: Reading,
    /// The model's confidence; `None` for an added item.
    #[serde(default)]
    pub score: Option<f32>,
    /// The component that produced it (`text`, `image`, `fusion`, …) or `expert`.
    pub source: String,
    pub verdict: Verdict,
    /// The expert's reading, when it differs from the model's.
    #[serde(default)]
    pub correction: Option<Reading>,
}

impl Item {
    /// The reading that stands after review.
    pub fn judged(&self) -> &Reading {
        self.correction.as_ref().unwrap_or(&self.reading)
    }
}

/// The short guided form: three 1–5 scales and a comment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Form {
    pub correctness: Option<u8>,
    pub usefulness: Option<u8>,
    pub interpretability: Option<u8>,
    #[serde(default)]
    pub comment: String,
}

/// The questions of [`Form`], in the order the page asks them.
pub const FORM_SCALES: [(&str, &str); 3] = [
    (
        "correctness",
        "Correctness: are the entities and findings right?",
    ),
    (
        "usefulness",
        "Usefulness: would this output help in practice?",
    ),
    (
        "interpretability",
        "Interpretability: is it clear why the model said this?",
    ),
];

impl Form {
    pub fn scale(&self, name: &str) -> Option<u8> {
        match name {
            "correctness" => self.correctness,
            "usefulness" => self.usefulness,
            "interpretability" => self.interpretability,
            _ => None,
        }
    }

    /// Sets a 1–5 scale; other values and names are ignored.
    pub fn set_scale(&mut self, name: &str, value: u8) {
        if !(1..=5).contains(&value) {
            return;
        }
        let slot = match name {
            "correctness" => &mut self.correctness,
            "usefulness" => &mut self.usefulness,
            "interpretability" => &mut self.interpretability,
            _ => return,
        };
        *slot = Some(value);
    }
}

/// A judgment on one item of the current case.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Accept(usize),
    Reject(usize),
    Correct(usize, Reading),
    /// Accept every item still pending.
    AcceptPending,
    Add(Item),
}

/// How to take back one action: the case's items as they were.
#[derive(Debug, Clone, PartialEq)]
pub struct Undo {
    pub case: usize,
    pub items: Vec<Item>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SessionError {
    #[error("this is not an IntegraBNER review session: {0}")]
    NotASession(String),
    #[error("this session was saved as {found:?}; this page reads {FORMAT:?}")]
    Format { found: String },
    #[error("the session has no cases")]
    Empty,
    #[error("the session has {0} cases; a session takes at most {max}", max = super::cases::MAX_CASES)]
    TooManyCases(usize),
}

impl Session {
    pub fn new(
        source: Vec<String>,
        model: ModelVersion,
        created_ms: f64,
        cases: Vec<Case>,
    ) -> Self {
        Self {
            format: FORMAT.into(),
            source,
            model,
            created_ms,
            current: 0,
            cases,
            form: None,
        }
    }

    /// Reads a saved or exported session, refusing anything else with a
    /// reason (an export of another tool, an older format, a damaged file).
    pub fn from_json(json: &str) -> Result<Self, SessionError> {
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| SessionError::NotASession(e.to_string()))?;
        let found = value.get("format").and_then(|f| f.as_str()).unwrap_or("");
        if found != FORMAT {
            return Err(if found.starts_with("integrabner-review") {
                SessionError::Format {
                    found: found.into(),
                }
            } else {
                SessionError::NotASession("it has no \"format\": \"integrabner-review-v1\"".into())
            });
        }
        let mut session: Self =
            serde_json::from_value(value).map_err(|e| SessionError::NotASession(e.to_string()))?;
        if session.cases.is_empty() {
            return Err(SessionError::Empty);
        }
        if session.cases.len() > super::cases::MAX_CASES {
            return Err(SessionError::TooManyCases(session.cases.len()));
        }
        // A number beyond f32 (a score of 1e308) reads as infinity, which
        // JSON cannot hold: saved, it would come back as null and the session
        // would never load again. Take only what saves and loads unchanged.
        if serde_json::from_str::<Self>(&session.to_json()).is_err() {
            return Err(SessionError::NotASession(
                "it holds a number out of range (a score, probability or time)".into(),
            ));
        }
        session.current = session.current.min(session.cases.len() - 1);
        Ok(session)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("sessions always serialize")
    }

    /// The case on screen.
    pub fn case(&self) -> Option<&Case> {
        self.cases.get(self.current)
    }

    pub fn case_mut(&mut self) -> Option<&mut Case> {
        self.cases.get_mut(self.current)
    }

    /// Cases still waiting for the model.
    pub fn unanalysed(&self) -> impl Iterator<Item = usize> + '_ {
        self.cases
            .iter()
            .enumerate()
            .filter(|(_, c)| c.prediction.is_none() && c.problem.is_none())
            .map(|(i, _)| i)
    }

    /// Applies a judgment to the current case; returns how to undo it, or
    /// `None` if it changed nothing (an index past the end, a no-op).
    pub fn apply(&mut self, action: Action) -> Option<Undo> {
        let case = self.current;
        let items = &mut self.cases.get_mut(case)?.items;
        let before = items.clone();
        match action {
            Action::Accept(i) => {
                let item = items.get_mut(i)?;
                if item.verdict == Verdict::Added {
                    return None;
                }
                item.verdict = Verdict::Accepted;
                item.correction = None;
            }
            Action::Reject(i) => {
                let item = items.get_mut(i)?;
                if item.verdict == Verdict::Added {
                    // Rejecting one's own addition removes it.
                    items.remove(i);
                } else {
                    item.verdict = Verdict::Rejected;
                    item.correction = None;
                }
            }
            Action::Correct(i, reading) => {
                let item = items.get_mut(i)?;
                if item.verdict == Verdict::Added {
                    item.reading = reading;
                } else if reading == item.reading {
                    item.verdict = Verdict::Accepted;
                    item.correction = None;
                } else {
                    item.verdict = Verdict::Corrected;
                    item.correction = Some(reading);
                }
            }
            Action::AcceptPending => {
                for item in items.iter_mut().filter(|i| i.verdict == Verdict::Pending) {
                    item.verdict = Verdict::Accepted;
                }
            }
            Action::Add(mut item) => {
                item.verdict = Verdict::Added;
                item.score = None;
                item.source = "expert".into();
                item.correction = None;
                items.push(item);
            }
        }
        (*items != before).then_some(Undo {
            case,
            items: before,
        })
    }

    /// Takes back an action (and shows its case again).
    pub fn undo(&mut self, undo: Undo) {
        if let Some(case) = self.cases.get_mut(undo.case) {
            case.items = undo.items;
            self.current = undo.case;
        }
    }

    /// Counts `elapsed_ms` of reviewing time to the current case, ignoring
    /// idle gaps longer than [`MAX_IDLE_MS`].
    pub fn spend(&mut self, elapsed_ms: f64) {
        if let Some(case) = self.case_mut() {
            if elapsed_ms.is_finite() && elapsed_ms > 0.0 {
                case.time_ms += elapsed_ms.min(MAX_IDLE_MS);
            }
        }
    }

    /// Moves to case `index`, clamped to the session.
    pub fn go_to(&mut self, index: usize) {
        self.current = index.min(self.cases.len().saturating_sub(1));
    }
}

impl Case {
    /// A case awaiting analysis.
    pub fn new(id: String, text: String, image: Option<String>) -> Self {
        Self {
            id,
            text,
            image,
            prediction: None,
            problem: None,
            items: Vec::new(),
            form: Form::default(),
            time_ms: 0.0,
        }
    }

    /// Stores the model's output and lists each entity (in text order) and
    /// each finding as an item to judge.
    pub fn analysed(&mut self, prediction: Prediction) {
        let mut entities: Vec<&integrabner_core::Entity> = prediction.entities.iter().collect();
        entities.sort_by_key(|e| (e.start, e.end));
        let entity_items = entities.into_iter().map(|e| Item {
            kind: ItemKind::Entity,
            span: Some((e.start, e.end)),
            text: e.text.clone(),
            reading: Reading {
                concept_type: e.label,
                concept: e.concept.clone(),
                assertion: e.assertion,
                qualifiers: Vec::new(),
            },
            score: Some(e.score),
            source: e.source.clone(),
            verdict: Verdict::Pending,
            correction: None,
        });
        let finding_items = prediction.findings.iter().map(|f| Item {
            kind: ItemKind::Finding,
            span: None,
            text: f.concept.clone(),
            reading: Reading {
                concept_type: f.concept_type,
                concept: Some(f.concept.clone()),
                assertion: Assertion::Present,
                qualifiers: f.qualifiers.clone(),
            },
            score: Some(f.probability),
            source: f.source.as_str().to_string(),
            verdict: Verdict::Pending,
            correction: None,
        });
        self.items = entity_items.chain(finding_items).collect();
        self.prediction = Some(prediction);
    }

    /// The expert's entity over chars `start..end` of the text, without
    /// the whitespace a selection picks up at its ends.
    pub fn entity_at(&self, start: usize, end: usize, reading: Reading) -> Result<Item, String> {
        let chars: Vec<char> = self.text.chars().collect();
        if start >= end || end > chars.len() {
            return Err("select some words of this case's report first".into());
        }
        let (mut start, mut end) = (start, end);
        while start < end && chars[start].is_whitespace() {
            start += 1;
        }
        while end > start && chars[end - 1].is_whitespace() {
            end -= 1;
        }
        if start == end {
            return Err("the selection is only white space".into());
        }
        if self
            .items
            .iter()
            .any(|i| i.span == Some((start, end)) && i.verdict != Verdict::Rejected)
        {
            return Err("this text is already an entity: correct or accept that one".into());
        }
        Ok(Item {
            kind: ItemKind::Entity,
            span: Some((start, end)),
            text: chars[start..end].iter().collect(),
            reading,
            score: None,
            source: "expert".into(),
            verdict: Verdict::Added,
            correction: None,
        })
    }

    /// The expert's finding `reading` (a vocabulary concept), unless the
    /// case already lists it.
    pub fn finding(&self, reading: Reading) -> Result<Item, String> {
        let concept = reading
            .concept
            .clone()
            .ok_or("a finding needs a concept from the vocabulary")?;
        let listed = self.items.iter().any(|i| {
            i.kind == ItemKind::Finding
                && i.verdict != Verdict::Rejected
                && i.judged().concept.as_deref() == Some(concept.as_str())
        });
        if listed {
            return Err(format!(
                "{concept} is already a finding of this case: accept or correct it"
            ));
        }
        Ok(Item {
            kind: ItemKind::Finding,
            span: None,
            text: concept,
            reading,
            score: None,
            source: "expert".into(),
            verdict: Verdict::Added,
            correction: None,
        })
    }

    pub fn pending(&self) -> usize {
        self.items
            .iter()
            .filter(|i| i.verdict == Verdict::Pending)
            .count()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use integrabner_core::RulePipeline;

    pub(crate) fn session_of(texts: &[&str]) -> Session {
        let pipeline = RulePipeline::embedded();
        let cases = texts
            .iter()
            .enumerate()
            .map(|(i, text)| {
                let mut case = Case::new(format!("c{i}"), text.to_string(), None);
                case.analysed(pipeline.predict(&case.id, text).unwrap());
                case
            })
            .collect();
        let model = ModelVersion {
            bundle: "test".into(),
            vocabulary: "v".into(),
        };
        Session::new(vec!["cases.jsonl".into()], model, 0.0, cases)
    }

    #[test]
    fn items_list_entities_in_text_order_then_findings() {
        let s = session_of(&["No pneumothorax. Right pleural effusion."]);
        let kinds: Vec<(ItemKind, &str)> = s.cases[0]
            .items
            .iter()
            .map(|i| (i.kind, i.text.as_str()))
            .collect();
        assert_eq!(kinds[0], (ItemKind::Entity, "pneumothorax"));
        assert_eq!(kinds[1].0, ItemKind::Entity);
        assert!(
            kinds.contains(&(ItemKind::Finding, "Pleural Effusion")),
            "{kinds:?}"
        );
        assert_eq!(s.cases[0].items[0].reading.assertion, Assertion::Absent);
        assert_eq!(s.cases[0].pending(), s.cases[0].items.len());
    }

    #[test]
    fn judgments_apply_and_undo_in_order() {
        let mut s = session_of(&["No pneumothorax. Right pleural effusion."]);
        let original = s.cases[0].items.clone();
        let u1 = s.apply(Action::Accept(0)).unwrap();
        let u2 = s.apply(Action::Reject(1)).unwrap();
        let mut reading = s.cases[0].items[0].reading.clone();
        reading.assertion = Assertion::Uncertain;
        let u3 = s.apply(Action::Correct(0, reading.clone())).unwrap();
        assert_eq!(s.cases[0].items[0].verdict, Verdict::Corrected);
        assert_eq!(s.cases[0].items[0].judged(), &reading);
        assert_eq!(s.cases[0].items[1].verdict, Verdict::Rejected);
        // Correcting back to the model's reading is accepting it.
        let model = s.cases[0].items[0].reading.clone();
        s.apply(Action::Correct(0, model)).unwrap();
        assert_eq!(s.cases[0].items[0].verdict, Verdict::Accepted);
        assert!(s.cases[0].items[0].correction.is_none());
        assert!(
            s.apply(Action::Accept(0)).is_none(),
            "a no-op has nothing to undo"
        );
        assert!(s.apply(Action::Accept(99)).is_none());
        s.undo(u3);
        s.undo(u2);
        assert_eq!(s.cases[0].items[1].verdict, Verdict::Pending);
        s.undo(u1);
        assert_eq!(s.cases[0].items, original);
    }

    #[test]
    fn added_items_are_the_experts_and_rejecting_one_removes_it() {
        let mut s = session_of(&["Stable cardiomegaly."]);
        let n = s.cases[0].items.len();
        let added = Item {
            kind: ItemKind::Finding,
            span: None,
            text: "Granuloma".into(),
            reading: Reading {
                concept_type: ConceptType::Disease,
                concept: Some("Granuloma".into()),
                assertion: Assertion::Present,
                qualifiers: Vec::new(),
            },
            score: Some(0.9),
            source: "text".into(),
            verdict: Verdict::Pending,
            correction: None,
        };
        s.apply(Action::Add(added)).unwrap();
        let item = &s.cases[0].items[n];
        assert_eq!(
            (item.verdict, item.score, item.source.as_str()),
            (Verdict::Added, None, "expert")
        );
        assert!(s.apply(Action::Accept(n)).is_none());
        s.apply(Action::AcceptPending).unwrap();
        assert_eq!(s.cases[0].pending(), 0);
        assert_eq!(s.cases[0].items[n].verdict, Verdict::Added);
        s.apply(Action::Reject(n)).unwrap();
        assert_eq!(s.cases[0].items.len(), n);
    }

    #[test]
    fn an_added_finding_needs_a_concept_the_case_does_not_list() {
        let s = session_of(&["Stable cardiomegaly."]);
        let case = s.case().unwrap();
        let reading = |concept: Option<&str>| Reading {
            concept_type: ConceptType::Disease,
            concept: concept.map(str::to_string),
            assertion: Assertion::Present,
            qualifiers: Vec::new(),
        };
        let listed = case.finding(reading(Some("Cardiomegaly"))).unwrap_err();
        assert!(listed.contains("already a finding"), "{listed}");
        assert!(case.finding(reading(None)).is_err());
        let item = case.finding(reading(Some("Granuloma"))).unwrap();
        assert_eq!(
            (item.kind, item.text.as_str(), item.verdict),
            (ItemKind::Finding, "Granuloma", Verdict::Added)
        );
    }

    #[test]
    fn an_added_entity_is_trimmed_and_not_a_twin() {
        let s = session_of(&["Right pleural effusion."]);
        let case = &s.cases[0];
        let reading = Reading {
            concept_type: ConceptType::Anatomy,
            concept: None,
            assertion: Assertion::Present,
            qualifiers: Vec::new(),
        };
        let item = case.entity_at(0, 6, reading.clone()).unwrap();
        assert_eq!((item.span, item.text.as_str()), (Some((0, 5)), "Right"));
        let twin = case.items[0].span.unwrap();
        assert!(case
            .entity_at(twin.0, twin.1, reading.clone())
            .unwrap_err()
            .contains("already"));
        assert!(case
            .entity_at(5, 6, reading.clone())
            .unwrap_err()
            .contains("white space"));
        assert!(case.entity_at(3, 999, reading).is_err());
    }

    #[test]
    fn sessions_round_trip_and_other_json_is_refused_with_a_reason() {
        let mut s = session_of(&["Cardiomegaly.", "No effusion."]);
        s.apply(Action::Reject(0)).unwrap();
        s.cases[0].form.set_scale("usefulness", 4);
        s.cases[0].form.set_scale("usefulness", 9);
        s.spend(1500.0);
        s.spend(f64::NAN);
        s.spend(MAX_IDLE_MS * 10.0);
        assert_eq!(s.cases[0].time_ms, 1500.0 + MAX_IDLE_MS);
        assert_eq!(s.cases[0].form.usefulness, Some(4));
        let back = Session::from_json(&s.to_json()).unwrap();
        assert_eq!(back, s);
        assert!(matches!(
            Session::from_json(r#"{"id":"x","findings":[]}"#),
            Err(SessionError::NotASession(_))
        ));
        let older = s.to_json().replace(FORMAT, "integrabner-review-v0");
        assert!(matches!(
            Session::from_json(&older),
            Err(SessionError::Format { .. })
        ));
        assert!(matches!(
            Session::from_json("{not json"),
            Err(SessionError::NotASession(_))
        ));
    }

    #[test]
    fn an_import_is_held_to_the_limits_of_a_new_session() {
        let many: Vec<&str> = vec!["Cardiomegaly."; super::super::cases::MAX_CASES + 1];
        let s = session_of(&many);
        assert_eq!(
            Session::from_json(&s.to_json()),
            Err(SessionError::TooManyCases(501))
        );
        // A score beyond f32 reads as infinity, which would save as null.
        let s = session_of(&["Cardiomegaly."]);
        let huge = s.to_json().replacen("\"score\":1.0", "\"score\":1e308", 1);
        assert_ne!(huge, s.to_json());
        assert!(matches!(
            Session::from_json(&huge),
            Err(SessionError::NotASession(m)) if m.contains("out of range")
        ));
    }
}
