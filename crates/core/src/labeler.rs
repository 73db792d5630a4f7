//! The rule labeler: dictionary lookup of vocabulary synonyms, ConText
//! assertion, and abnormality modifiers for structures.

use crate::context::{assertion_of, ContextRules};
use crate::doc::{Doc, Span};
use crate::phrase_matcher::PhraseMatcher;
use crate::schema::Assertion;
use crate::vocab::{Coding, Vocabulary};

/// What a dictionary phrase stands for.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Entry {
    /// A synonym of a concept; `abnormal` when the phrase itself says the
    /// structure is abnormal (`low lung volumes`).
    Concept { index: usize, abnormal: bool },
    /// A longer phrase that names nothing and silences the synonyms inside it.
    Blocker,
}

/// The component that adds dictionary spans with assertions to a `Doc`.
#[derive(Debug, Clone)]
pub struct RuleLabeler {
    dictionary: PhraseMatcher<Entry>,
    modifiers: PhraseMatcher<usize>,
    context: ContextRules,
    qualifiers: Vec<String>,
    /// How many tokens may separate a structure from its abnormality modifier.
    pub modifier_window: usize,
}

/// The source name of spans from this component.
pub const SOURCE: &str = "dictionary";

/// The OpenI qualifier recorded for an abnormal phrase that carries its own.
const ABNORMAL: &str = "abnormal";

impl RuleLabeler {
    pub fn new(vocab: &Vocabulary, context: ContextRules) -> Self {
        let mut dictionary = PhraseMatcher::default();
        for (index, c) in vocab.concepts.iter().enumerate() {
            for s in &c.synonyms {
                dictionary.insert_phrase(
                    s,
                    Entry::Concept {
                        index,
                        abnormal: false,
                    },
                );
            }
            for s in &c.abnormal_phrases {
                dictionary.insert_phrase(
                    s,
                    Entry::Concept {
                        index,
                        abnormal: true,
                    },
                );
            }
        }
        for b in &vocab.blockers {
            dictionary.insert_phrase(b, Entry::Blocker);
        }
        let mut modifiers = PhraseMatcher::default();
        for (i, m) in vocab.modifiers.iter().enumerate() {
            for p in &m.phrases {
                modifiers.insert_phrase(p, i);
            }
        }
        Self {
            dictionary,
            modifiers,
            context,
            qualifiers: vocab
                .modifiers
                .iter()
                .map(|m| m.qualifier.clone())
                .collect(),
            modifier_window: 6,
        }
    }

    /// Adds a span for every dictionary match, with its assertion and, for
    /// structures, the abnormality modifiers that describe it.
    pub fn annotate(&self, doc: &mut Doc, vocab: &Vocabulary) {
        let matches = self.dictionary.find_all(&doc.tokens);
        let modifier_hits: Vec<(std::ops::Range<usize>, usize)> = self
            .modifiers
            .find_all(&doc.tokens)
            .into_iter()
            .filter(|m| {
                !matches
                    .iter()
                    .any(|d| d.tokens.start < m.tokens.end && m.tokens.start < d.tokens.end)
            })
            .map(|m| (m.tokens, *m.value))
            .collect();
        let sentence_scopes: Vec<_> = doc
            .sentences
            .iter()
            .map(|s| self.context.scopes(&doc.tokens, s.clone()))
            .collect();
        // Sentences partition the tokens; look each token's sentence up once
        // instead of scanning all sentences per match (long reports have thousands).
        let mut sentence_of_token = vec![0; doc.tokens.len()];
        for (i, s) in doc.sentences.iter().enumerate() {
            sentence_of_token[s.clone()].fill(i);
        }

        let mut spans = Vec::new();
        for m in &matches {
            let Entry::Concept { index, abnormal } = *m.value else {
                continue;
            };
            let concept = vocab.concept(index);
            let scopes = &sentence_scopes[sentence_of_token[m.tokens.start]];
            let assertion = assertion_of(scopes, &m.tokens);
            let mut abnormal_qualifiers = Vec::new();
            if abnormal {
                abnormal_qualifiers.push(ABNORMAL.to_string());
            }
            let chars = doc.char_range(&m.tokens);
            spans.push(Span {
                start: chars.start,
                end: chars.end,
                tokens: m.tokens.clone(),
                label: concept.concept_type.label(),
                concept: Some(index),
                assertion,
                score: 1.0,
                source: SOURCE.to_string(),
                section: doc.section_of(m.tokens.start),
                abnormal_qualifiers,
            });
        }
        // Each present modifier describes the nearest structure in its sentence.
        for (range, modifier) in modifier_hits {
            let sent = sentence_of_token[range.start];
            if assertion_of(&sentence_scopes[sent], &range) != Assertion::Present {
                continue;
            }
            let sentence = &doc.sentences[sent];
            let nearest = spans
                .iter_mut()
                .filter(|s| {
                    s.concept
                        .is_some_and(|c| vocab.concept(c).coding == Coding::Abnormal)
                        && sentence.contains(&s.tokens.start)
                })
                .map(|s| {
                    let gap = if s.tokens.end <= range.start {
                        range.start - s.tokens.end
                    } else {
                        s.tokens.start.saturating_sub(range.end)
                    };
                    (gap, s)
                })
                .filter(|(gap, _)| *gap <= self.modifier_window)
                .min_by_key(|(gap, _)| *gap);
            if let Some((_, span)) = nearest {
                span.abnormal_qualifiers
                    .push(self.qualifiers[modifier].clone());
            }
        }
        doc.spans.extend(spans);
    }
}
