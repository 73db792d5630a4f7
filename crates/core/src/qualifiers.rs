//! Qualifiers: what OpenI's coders write after a heading (`Pleural
//! Effusion/left/small`): where a finding is, on which side, how much, of
//! what kind. A pipeline component after the labeler: it finds the report's
//! qualifier words (`QualifierCue`s) and gives each to the mention it
//! describes; a coded finding's qualifiers are then those of its mentions,
//! kept to the ones the coders used with its heading on the train split,
//! plus the ones they wrote for the heading without a word saying so
//! (`Opacity` is `lung` unless the report says otherwise).
//!
//! Terms keep OpenI's spelling; inside, a qualifier is a `QualifierId` (its
//! place in the lexicon, which lists terms in the order OpenI writes them).

use crate::doc::{Doc, Span};
use crate::phrase_matcher::PhraseMatcher;
use crate::schema::{Assertion, ConceptType};
use crate::text::{phrase_keys, ranges_overlap as overlaps};
use crate::vocab::{ConceptId, Vocabulary};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

/// A qualifier term, by its place in the lexicon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QualifierId(u16);

impl QualifierId {
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// What a qualifier says about a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QualifierKind {
    /// The structure a finding is in or of (`lung`, `aorta`, `thoracic vertebrae`).
    Site,
    /// Where in the chest or lung (`base`, `upper lobe`, `hilum`).
    Location,
    /// `left`, `right`, `bilateral`.
    Laterality,
    /// What has become of a structure (`tortuous`, `elevated`, `degenerative`).
    State,
    /// How it is spread or shaped (`multiple`, `patchy`, `interstitial`).
    Pattern,
    /// `chronic`, `healed`, `acute`.
    Chronicity,
    /// Degree and size (`mild`, `severe`, `small`, `large`, `borderline`).
    Severity,
}

impl QualifierKind {
    pub const ALL: [Self; 7] = [
        Self::Site,
        Self::Location,
        Self::Laterality,
        Self::State,
        Self::Pattern,
        Self::Chronicity,
        Self::Severity,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Site => "site",
            Self::Location => "location",
            Self::Laterality => "laterality",
            Self::State => "state",
            Self::Pattern => "pattern",
            Self::Chronicity => "chronicity",
            Self::Severity => "severity",
        }
    }
}

/// Words of a report that express qualifiers, given to one mention.
#[derive(Debug, Clone, PartialEq)]
pub struct QualifierCue {
    /// Indexes `Doc::tokens`.
    pub tokens: Range<usize>,
    pub qualifiers: Vec<QualifierId>,
}

/// What the coders wrote with one heading on the train split.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HeadingQualifiers {
    /// Qualifiers used with the heading often enough to be believed.
    pub allowed: Vec<String>,
    /// Qualifiers written for the heading in most codings whatever the
    /// report says; added when the report gives none of their kind.
    #[serde(default)]
    pub default: Vec<String>,
}

/// One term of the lexicon file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TermEntry {
    pub term: String,
    pub kind: QualifierKind,
    pub phrases: Vec<String>,
}

/// A phrase that expresses several terms (`bibasilar`: base, bilateral).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Compound {
    pub phrase: String,
    pub terms: Vec<String>,
}

/// `qualifiers.json`: the hand-written lexicon and the fitted heading table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualifierFile {
    pub version: String,
    pub description: String,
    pub terms: Vec<TermEntry>,
    #[serde(default)]
    pub compounds: Vec<Compound>,
    /// By heading, as `integrabner qualifiers fit` wrote it.
    #[serde(default)]
    pub headings: BTreeMap<String, HeadingQualifiers>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum QualifierError {
    #[error("qualifier lexicon JSON is invalid: {0}")]
    Json(String),
    #[error("qualifier term {0:?} appears twice")]
    DuplicateTerm(String),
    #[error("{context} names unknown qualifier term {term:?}")]
    UnknownTerm { context: String, term: String },
    #[error("qualifier phrase {phrase:?} means both {first:?} and {second:?}")]
    AmbiguousPhrase {
        phrase: String,
        first: String,
        second: String,
    },
}

/// The heading table in ids.
#[derive(Debug, Clone, Default)]
struct Prior {
    allowed: Vec<QualifierId>,
    default: Vec<QualifierId>,
}

/// The qualifier component.
#[derive(Debug, Clone)]
pub struct Qualifiers {
    pub version: String,
    terms: Vec<(String, QualifierKind)>,
    /// Lower-cased term → id, for `find`.
    ids: HashMap<String, QualifierId>,
    matcher: PhraseMatcher<Vec<QualifierId>>,
    priors: HashMap<String, Prior>,
    /// How many tokens may separate a cue from the mention it describes.
    pub window: usize,
}

/// What a cue costs to cross on its way to a mention: a comma, semicolon or
/// conjunction starts another phrase, so a mention beyond one is taken
/// only when there is none on this side.
const BARRIER_COST: usize = 100;

impl Qualifiers {
    /// The shipped lexicon (`models/rules/qualifiers.json`).
    pub fn embedded() -> Self {
        Self::from_json(include_str!("../../../models/rules/qualifiers.json"))
            .expect("the shipped qualifier lexicon is valid")
    }

    pub fn from_json(json: &str) -> Result<Self, QualifierError> {
        let file: QualifierFile =
            serde_json::from_str(json).map_err(|e| QualifierError::Json(e.to_string()))?;
        Self::from_file(&file)
    }

    pub fn from_file(file: &QualifierFile) -> Result<Self, QualifierError> {
        let mut ids: HashMap<&str, QualifierId> = HashMap::new();
        let mut terms = Vec::new();
        for (i, t) in file.terms.iter().enumerate() {
            let id = QualifierId(u16::try_from(i).expect("fewer than 65536 terms"));
            if ids.insert(t.term.as_str(), id).is_some() {
                return Err(QualifierError::DuplicateTerm(t.term.clone()));
            }
            terms.push((t.term.clone(), t.kind));
        }
        let resolve = |context: &str, names: &[String]| -> Result<Vec<QualifierId>, _> {
            let mut out = names
                .iter()
                .map(|n| {
                    ids.get(n.as_str())
                        .copied()
                        .ok_or_else(|| QualifierError::UnknownTerm {
                            context: context.to_string(),
                            term: n.clone(),
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            out.sort();
            out.dedup();
            Ok(out)
        };
        let mut phrases: Vec<(String, Vec<QualifierId>, String)> = Vec::new();
        for t in &file.terms {
            for p in &t.phrases {
                phrases.push((p.clone(), vec![ids[t.term.as_str()]], t.term.clone()));
            }
        }
        for c in &file.compounds {
            let context = format!("compound {:?}", c.phrase);
            phrases.push((
                c.phrase.clone(),
                resolve(&context, &c.terms)?,
                c.terms.join("+"),
            ));
        }
        let mut matcher = PhraseMatcher::default();
        let mut meaning: HashMap<Vec<String>, (Vec<QualifierId>, String)> = HashMap::new();
        for (phrase, value, name) in phrases {
            let keys = phrase_keys(&phrase);
            if let Some((first, first_name)) = meaning.get(&keys) {
                if *first != value {
                    return Err(QualifierError::AmbiguousPhrase {
                        phrase,
                        first: first_name.clone(),
                        second: name,
                    });
                }
                continue;
            }
            meaning.insert(keys.clone(), (value.clone(), name));
            matcher.insert_keys(keys, value);
        }
        let mut priors = HashMap::new();
        for (heading, h) in &file.headings {
            let context = format!("heading {heading:?}");
            priors.insert(
                heading.clone(),
                Prior {
                    allowed: resolve(&context, &h.allowed)?,
                    default: resolve(&context, &h.default)?,
                },
            );
        }
        let ids = ids
            .into_iter()
            .map(|(term, id)| (term.to_lowercase(), id))
            .collect();
        Ok(Self {
            version: file.version.clone(),
            terms,
            ids,
            matcher,
            priors,
            window: 6,
        })
    }

    /// A term's OpenI spelling.
    pub fn name(&self, id: QualifierId) -> &str {
        &self.terms[id.index()].0
    }

    pub fn kind(&self, id: QualifierId) -> QualifierKind {
        self.terms[id.index()].1
    }

    /// The id of an OpenI term, if the lexicon has it.
    pub fn find(&self, term: &str) -> Option<QualifierId> {
        self.ids.get(&term.trim().to_lowercase()).copied()
    }

    /// Gives every qualifier phrase of `doc` to the mention it describes, in
    /// its sentence: a phrase inside a mention describes that mention (`low
    /// lung volumes`), except that a structure's own name is not its site; a
    /// phrase outside goes to the nearest mention within `window` tokens,
    /// preferring one not across a comma or conjunction. Earlier cues are
    /// replaced, so the component can run again after a model adds spans.
    pub fn annotate(&self, doc: &mut Doc) {
        let cues = self.cues(doc);
        for span in &mut doc.spans {
            span.cues.clear();
        }
        for (i, cue) in cues {
            doc.spans[i].cues.push(cue);
        }
    }

    /// Each qualifier phrase of `doc` with the span it goes to (`annotate`).
    fn cues(&self, doc: &Doc) -> Vec<(usize, QualifierCue)> {
        let sentence_of = doc.sentence_of_tokens();
        let nearest = |tokens: &Range<usize>, eligible: &dyn Fn(usize) -> bool| {
            self.nearest(doc, &sentence_of, tokens, eligible)
        };
        let mut out = Vec::new();
        for hit in self.matcher.find_all(&doc.tokens) {
            let cue = |qualifiers: Vec<QualifierId>| QualifierCue {
                tokens: hit.tokens.clone(),
                qualifiers,
            };
            let (site, other): (Vec<QualifierId>, Vec<QualifierId>) = hit
                .value
                .iter()
                .partition(|&&q| self.kind(q) == QualifierKind::Site);
            let inside: Vec<usize> = doc
                .spans
                .iter()
                .enumerate()
                .filter(|(_, s)| overlaps(&s.tokens, &hit.tokens))
                .map(|(i, _)| i)
                .collect();
            // A structure is not its own site ("aortic"), but a finding's
            // name may hold its site ("rib fracture").
            let (structures, findings): (Vec<usize>, Vec<usize>) = inside
                .iter()
                .partition(|&&i| doc.spans[i].label == ConceptType::Anatomy);
            if !findings.is_empty() {
                out.extend(findings.iter().map(|&i| (i, cue(hit.value.clone()))));
            }
            let outward = if inside.is_empty() {
                hit.value.clone()
            } else if structures.is_empty() {
                Vec::new()
            } else {
                if !other.is_empty() {
                    out.extend(structures.iter().map(|&i| (i, cue(other.clone()))));
                }
                site
            };
            if outward.is_empty() {
                continue;
            }
            if let Some(i) = nearest(&hit.tokens, &|_| true) {
                out.push((i, cue(outward)));
            }
        }
        // "granuloma in the right upper lobe": a structure named in passing
        // (not described as abnormal) locates the finding beside it, so
        // what is said of it is said of that finding too.
        let passing =
            |s: &Span| s.label == ConceptType::Anatomy && s.abnormal_qualifiers.is_empty();
        let mut passed = Vec::new();
        for (i, span) in doc.spans.iter().enumerate().filter(|(_, s)| passing(s)) {
            let Some(finding) = nearest(&span.tokens, &|j| !passing(&doc.spans[j])) else {
                continue;
            };
            passed.extend(
                out.iter()
                    .filter(|(to, _)| *to == i)
                    .map(|(_, c)| (finding, c.clone())),
            );
        }
        out.extend(passed);
        out
    }

    /// The span nearest to `tokens` in its sentence among those `eligible`
    /// and not overlapping it, within `window` tokens; one across a comma
    /// or conjunction only when there is none on this side, and on a tie
    /// the one after ("small left effusion").
    fn nearest(
        &self,
        doc: &Doc,
        sentence_of: &[Option<usize>],
        tokens: &Range<usize>,
        eligible: &dyn Fn(usize) -> bool,
    ) -> Option<usize> {
        let sentence = &doc.sentences[sentence_of[tokens.start]?];
        doc.spans
            .iter()
            .enumerate()
            .filter(|(i, s)| {
                eligible(*i) && sentence.contains(&s.tokens.start) && !overlaps(&s.tokens, tokens)
            })
            .filter_map(|(i, s)| {
                let between = if s.tokens.end <= tokens.start {
                    s.tokens.end..tokens.start
                } else {
                    tokens.end..s.tokens.start
                };
                let gap = between.len();
                if gap > self.window {
                    return None;
                }
                let barriers = doc.tokens[between]
                    .iter()
                    .filter(|t| {
                        matches!(
                            t.norm.as_str(),
                            "," | ";" | ":" | "and" | "or" | "with" | "but" | "while"
                        )
                    })
                    .count();
                let after = usize::from(s.tokens.start < tokens.start);
                Some(((gap + BARRIER_COST * barriers, after), i))
            })
            .min_by_key(|(cost, _)| *cost)
            .map(|(_, i)| i)
    }

    /// The qualifiers of coded concept `concept` in `doc`: those of its
    /// mentions in the findings and impression (the present ones when there
    /// are any), with the abnormality a structure was coded for, kept to
    /// what the coders used with its heading, plus the heading's defaults of
    /// the kinds the report left unsaid. In lexicon (OpenI's) order.
    pub fn of_concept(
        &self,
        doc: &Doc,
        vocab: &Vocabulary,
        concept: ConceptId,
    ) -> Vec<QualifierId> {
        let mentions: Vec<&Span> = doc
            .spans
            .iter()
            .filter(|s| {
                s.section.describes_study() && s.concept.map(|c| vocab.coded_as(c)) == Some(concept)
            })
            .collect();
        let present: Vec<&Span> = mentions
            .iter()
            .copied()
            .filter(|s| s.assertion == Assertion::Present)
            .collect();
        let used = if present.is_empty() {
            mentions
        } else {
            present
        };
        let mut out: Vec<QualifierId> = used
            .iter()
            .flat_map(|s| {
                s.cues
                    .iter()
                    .flat_map(|c| c.qualifiers.iter().copied())
                    .chain(s.abnormal_qualifiers.iter().filter_map(|q| self.find(q)))
            })
            .collect();
        if let Some(prior) = self.priors.get(&vocab.concept(concept).heading) {
            out.retain(|q| prior.allowed.binary_search(q).is_ok());
            for &d in &prior.default {
                if !out.iter().any(|&q| self.kind(q) == self.kind(d)) {
                    out.push(d);
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// Terms by kind, for people: `{"laterality": ["left"], "severity": ["small"]}`.
    pub fn by_kind(&self, ids: &[QualifierId]) -> BTreeMap<QualifierKind, Vec<String>> {
        let mut out: BTreeMap<QualifierKind, Vec<String>> = BTreeMap::new();
        for &q in ids {
            out.entry(self.kind(q))
                .or_default()
                .push(self.name(q).to_string());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RulePipeline;

    fn coded(text: &str) -> Vec<(String, Vec<String>)> {
        let pipeline = RulePipeline::embedded();
        let p = pipeline.predict("t", text).unwrap();
        p.findings
            .into_iter()
            .map(|f| (f.concept, f.qualifiers))
            .collect()
    }

    fn qualifiers_of(text: &str, heading: &str) -> Vec<String> {
        coded(text)
            .into_iter()
            .find(|(c, _)| c == heading)
            .unwrap_or_else(|| panic!("{heading} not coded in {text:?}"))
            .1
    }

    #[test]
    fn kind_names_match_serde() {
        for k in QualifierKind::ALL {
            assert_eq!(
                serde_json::to_string(&k).unwrap(),
                format!("\"{}\"", k.as_str())
            );
        }
    }

    #[test]
    fn a_cue_goes_to_the_mention_it_describes() {
        assert_eq!(
            qualifiers_of("Small left pleural effusion.", "Pleural Effusion"),
            ["left", "small"]
        );
        // Each cue to its own mention, not across the conjunction.
        let both = coded("Mild cardiomegaly and bibasilar atelectasis.");
        let of = |h: &str| both.iter().find(|(c, _)| c == h).unwrap().1.clone();
        assert_eq!(of("Cardiomegaly"), ["mild"]);
        assert_eq!(of("Pulmonary Atelectasis"), ["base", "bilateral"]);
    }

    #[test]
    fn a_structure_is_not_its_own_site_but_gives_it_to_its_neighbour() {
        assert_eq!(
            qualifiers_of("Aortic calcification.", "Calcinosis"),
            ["aorta"]
        );
    }

    #[test]
    fn what_is_said_of_a_structure_is_said_of_the_finding_it_locates() {
        let q = qualifiers_of(
            "Stable calcified granuloma in the right lung.",
            "Calcified Granuloma",
        );
        assert!(q.contains(&"right".to_string()), "{q:?}");
        assert!(q.contains(&"lung".to_string()), "{q:?}");
    }

    #[test]
    fn the_left_midlung_is_the_lingula() {
        let q = qualifiers_of(
            "Stable calcified granuloma left midlung.",
            "Calcified Granuloma",
        );
        assert!(q.contains(&"lingula".to_string()), "{q:?}");
        assert!(q.contains(&"left".to_string()), "{q:?}");
    }

    #[test]
    fn the_lexicon_refuses_a_phrase_with_two_meanings_and_unknown_terms() {
        let file = |compounds: &str| {
            format!(
                r#"{{"version": "t", "description": "", "terms": [
                {{"term": "left", "kind": "laterality", "phrases": ["left"]}},
                {{"term": "base", "kind": "location", "phrases": ["base"]}}],
                "compounds": [{compounds}]}}"#
            )
        };
        assert!(
            Qualifiers::from_json(&file(r#"{"phrase": "lb", "terms": ["left", "base"]}"#)).is_ok()
        );
        assert!(matches!(
            Qualifiers::from_json(&file(r#"{"phrase": "left", "terms": ["base"]}"#)),
            Err(QualifierError::AmbiguousPhrase { .. })
        ));
        assert!(matches!(
            Qualifiers::from_json(&file(r#"{"phrase": "x", "terms": ["apex"]}"#)),
            Err(QualifierError::UnknownTerm { .. })
        ));
    }
}
