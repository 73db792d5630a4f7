//! The rule labeler: dictionary lookup of vocabulary synonyms, ConText
//! assertion, and abnormality modifiers for structures.

use crate::context::{assertion_of, ContextRules};
use crate::doc::{Doc, Span};
use crate::phrase_matcher::PhraseMatcher;
use crate::schema::Assertion;
use crate::text::ranges_overlap as overlaps;
use crate::vocab::{Coding, ConceptId, Vocabulary};

/// What a dictionary phrase stands for.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Entry {
    /// A synonym of a concept; `abnormal` when the phrase itself says the
    /// structure is abnormal (`low lung volumes`).
    Concept { id: ConceptId, abnormal: bool },
    /// A longer phrase that names nothing and silences the synonyms inside it.
    Blocker,
}

/// A mention found by another component (an NER model), not yet linked to
/// the vocabulary. `annotate_with` links it, or drops it.
#[derive(Debug, Clone, PartialEq)]
pub struct Mention {
    pub tokens: std::ops::Range<usize>,
    pub score: f32,
    pub source: String,
}

/// A mention linked to a concept, before assertion.
struct Candidate {
    tokens: std::ops::Range<usize>,
    concept: ConceptId,
    abnormal: bool,
    score: f32,
    source: String,
}

/// The component that adds dictionary spans with assertions to a `Doc`.
#[derive(Debug, Clone)]
pub struct RuleLabeler {
    dictionary: PhraseMatcher<Entry>,
    /// One-word synonyms of six or more letters, for typo-tolerant linking.
    long_words: Vec<(String, ConceptId)>,
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
        for (id, c) in vocab.ids().zip(&vocab.concepts) {
            for s in &c.synonyms {
                dictionary.insert_phrase(
                    s,
                    Entry::Concept {
                        id,
                        abnormal: false,
                    },
                );
            }
            for s in &c.abnormal_phrases {
                dictionary.insert_phrase(s, Entry::Concept { id, abnormal: true });
            }
        }
        let mut long_words = Vec::new();
        for (id, c) in vocab.ids().zip(&vocab.concepts) {
            for s in &c.synonyms {
                if let [word] = crate::text::phrase_keys(s).as_slice() {
                    if word.chars().count() >= 6 {
                        long_words.push((word.clone(), id));
                    }
                }
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
            long_words,
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
        self.annotate_with(doc, vocab, &[]);
    }

    /// Whether `tokens` are, as a whole, a vocabulary phrase (synonym or blocker).
    pub fn is_phrase(&self, tokens: &[crate::text::Token]) -> bool {
        self.dictionary
            .longest_at(tokens, 0)
            .is_some_and(|m| m.tokens.end == tokens.len())
    }

    /// The concept a model's mention stands for, by three rules in order:
    /// the whole mention is a synonym (normalized: case, plural, hyphens);
    /// its head — the longest synonym that ends where the mention ends
    /// (`mild cardiomegaly` → `cardiomegaly`); or its last word is one edit
    /// (insertion, deletion, substitution, transposition) from a one-word
    /// synonym of six or more letters, and from only one concept's
    /// (`cardiomegally`, `pneumothroax`).
    pub fn link(&self, tokens: &[crate::text::Token]) -> Option<ConceptId> {
        let concept = |e: &Entry| match e {
            Entry::Concept { id, .. } => Some(*id),
            Entry::Blocker => None,
        };
        for start in 0..tokens.len() {
            if let Some(m) = self.dictionary.longest_at(tokens, start) {
                if m.tokens.end == tokens.len() {
                    return concept(m.value);
                }
            }
        }
        let last = &tokens.last()?.norm;
        if last.chars().count() < 6 {
            return None;
        }
        let mut near = self
            .long_words
            .iter()
            .filter(|(word, _)| within_one_edit(word, last))
            .map(|(_, id)| *id);
        let first = near.next()?;
        near.all(|i| i == first).then_some(first)
    }

    /// Like `annotate`, plus the mentions of other components: each one that
    /// links to a concept (`link`) and overlaps no dictionary match (the
    /// curated dictionary wins) nor an earlier mention becomes a span with
    /// the same assertion and modifier rules, keeping its source and score.
    pub fn annotate_with(&self, doc: &mut Doc, vocab: &Vocabulary, mentions: &[Mention]) {
        let matches = self.dictionary.find_all(&doc.tokens);
        let mut candidates: Vec<Candidate> = matches
            .iter()
            .filter_map(|m| match *m.value {
                Entry::Concept { id, abnormal } => Some(Candidate {
                    tokens: m.tokens.clone(),
                    concept: id,
                    abnormal,
                    score: 1.0,
                    source: SOURCE.to_string(),
                }),
                Entry::Blocker => None,
            })
            .collect();
        for mention in mentions {
            let range = &mention.tokens;
            if range.is_empty()
                || range.end > doc.tokens.len()
                || matches.iter().any(|m| overlaps(&m.tokens, range))
                || candidates.iter().any(|c| overlaps(&c.tokens, range))
            {
                continue;
            }
            if let Some(concept) = self.link(&doc.tokens[range.clone()]) {
                candidates.push(Candidate {
                    tokens: range.clone(),
                    concept,
                    abnormal: false,
                    score: mention.score,
                    source: mention.source.clone(),
                });
            }
        }
        let modifier_hits: Vec<(std::ops::Range<usize>, usize)> = self
            .modifiers
            .find_all(&doc.tokens)
            .into_iter()
            .filter(|m| {
                !matches.iter().any(|d| overlaps(&d.tokens, &m.tokens))
                    && !candidates.iter().any(|c| overlaps(&c.tokens, &m.tokens))
            })
            .map(|m| (m.tokens, *m.value))
            .collect();
        let sentence_scopes: Vec<_> = doc
            .sentences
            .iter()
            .map(|s| self.context.scopes(&doc.tokens, s.clone()))
            .collect();
        let sentence_of_token = doc.sentence_of_tokens();

        let mut spans = Vec::new();
        for c in candidates {
            let concept = vocab.concept(c.concept);
            let scopes = sentence_of_token[c.tokens.start].map_or(&[][..], |i| &sentence_scopes[i]);
            let assertion = assertion_of(scopes, &c.tokens);
            let mut abnormal_qualifiers = Vec::new();
            if c.abnormal {
                abnormal_qualifiers.push(ABNORMAL.to_string());
            }
            let chars = doc.char_range(&c.tokens);
            spans.push(Span {
                start: chars.start,
                end: chars.end,
                section: doc.section_of(c.tokens.start),
                tokens: c.tokens,
                label: concept.concept_type,
                concept: Some(c.concept),
                assertion,
                score: c.score,
                source: c.source,
                abnormal_qualifiers,
                cues: Vec::new(),
            });
        }
        // Each present modifier describes the nearest structure in its sentence.
        for (range, modifier) in modifier_hits {
            let Some(sent) = sentence_of_token[range.start] else {
                continue;
            };
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

/// Whether `a` and `b` differ by at most one insertion, deletion,
/// substitution or transposition of adjacent characters.
fn within_one_edit(a: &str, b: &str) -> bool {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let (short, long) = if a.len() <= b.len() {
        (&a, &b)
    } else {
        (&b, &a)
    };
    if long.len() - short.len() > 1 {
        return false;
    }
    let prefix = short
        .iter()
        .zip(long.iter())
        .take_while(|(x, y)| x == y)
        .count();
    if short.len() == long.len() {
        if prefix == short.len() {
            return true;
        }
        // One substitution, or one transposition of neighbours.
        let rest_equal = |from: usize| short[from..] == long[from..];
        rest_equal(prefix + 1)
            || (prefix + 1 < short.len()
                && short[prefix] == long[prefix + 1]
                && short[prefix + 1] == long[prefix]
                && rest_equal(prefix + 2))
    } else {
        short[prefix..] == long[prefix + 1..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::tokenize;

    #[test]
    fn one_edit_covers_the_four_typo_kinds_and_nothing_more() {
        assert!(within_one_edit("pneumothorax", "pneumothroax"));
        assert!(within_one_edit("cardiomegaly", "cardiomegally"));
        assert!(within_one_edit("effusion", "efusion"));
        assert!(within_one_edit("effusion", "effusiom"));
        assert!(!within_one_edit("effusion", "efusiom"));
        assert!(!within_one_edit("opacity", "capacity"));
    }

    #[test]
    fn model_mentions_link_by_whole_head_or_typo_and_never_override_the_dictionary() {
        let pipeline = crate::RulePipeline::embedded();
        let (vocab, labeler) = (&pipeline.vocab, &pipeline.labeler);
        let link = |text: &str| {
            labeler
                .link(&tokenize(text))
                .map(|i| vocab.concept(i).heading.clone())
        };
        assert_eq!(
            link("pleural effusions").as_deref(),
            Some("Pleural Effusion")
        );
        assert_eq!(link("mild cardiomegaly").as_deref(), Some("Cardiomegaly"));
        assert_eq!(link("pneumothroax").as_deref(), Some("Pneumothorax"));
        assert_eq!(link("atelctasis").as_deref(), Some("Pulmonary Atelectasis"));
        assert_eq!(link("hypertension"), None);

        let text = "Small pneumothroax. No atelctasis. Pleural effusion.";
        let mut doc = Doc::new(text);
        let mention = |t: std::ops::Range<usize>| Mention {
            tokens: t,
            score: 0.9,
            source: "ner-disease".into(),
        };
        // "pneumothroax" (1), "atelctasis" (4), and one overlapping the
        // dictionary's "Pleural effusion" (6..8).
        labeler.annotate_with(
            &mut doc,
            vocab,
            &[mention(1..2), mention(4..5), mention(7..8)],
        );
        let entities = doc.entities(vocab, &pipeline.qualifiers);
        let by_source = |s: &str| entities.iter().filter(|e| e.source == s).count();
        assert_eq!(by_source("ner-disease"), 2);
        assert_eq!(by_source("dictionary"), 1);
        let typo = entities.iter().find(|e| e.text == "atelctasis").unwrap();
        assert_eq!(typo.concept.as_deref(), Some("Pulmonary Atelectasis"));
        assert_eq!(typo.assertion, Assertion::Absent);
        assert_eq!(typo.score, 0.9);
    }
}
