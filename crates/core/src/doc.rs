//! A `Doc`: the text, its tokens, sentences and sections, and typed spans that
//! pipeline components add — the spaCy model of a processed document.

use crate::qualifiers::{QualifierCue, Qualifiers};
use crate::schema::{Assertion, ConceptType, Entity, EntityModifier};
use crate::sections::{split_sections, Section, SectionKind};
use crate::text::{sentences, tokenize, Token};
use crate::vocab::ConceptId;
use std::ops::Range;

/// A mention. Offsets are chars, end exclusive; `tokens` indexes `Doc::tokens`.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub start: usize,
    pub end: usize,
    pub tokens: Range<usize>,
    pub label: ConceptType,
    /// The vocabulary concept, when the span is linked to one.
    pub concept: Option<ConceptId>,
    pub assertion: Assertion,
    pub score: f32,
    pub source: String,
    pub section: SectionKind,
    /// OpenI qualifiers that describe the structure as abnormal (`tortuous`).
    pub abnormal_qualifiers: Vec<String>,
    /// The qualifier words that describe the mention (`core::qualifiers`).
    pub cues: Vec<QualifierCue>,
}

#[derive(Debug, Clone)]
pub struct Doc {
    pub text: String,
    pub tokens: Vec<Token>,
    /// Token ranges.
    pub sentences: Vec<Range<usize>>,
    pub sections: Vec<Section>,
    pub spans: Vec<Span>,
}

/// Sentences with the section titles cut out. A title is not part of the
/// sentence after it: in "FINDINGS: No effusion." the cue ": no" (as in
/// "Effusion: no") would otherwise swallow the negation "No".
fn without_titles(sentences: Vec<Range<usize>>, sections: &[Section]) -> Vec<Range<usize>> {
    let in_body = |t: usize| sections.iter().any(|s| s.tokens.contains(&t));
    let mut out = Vec::with_capacity(sentences.len());
    for sentence in sentences {
        let mut start = None;
        for t in sentence.clone() {
            match (in_body(t), start) {
                (true, None) => start = Some(t),
                (false, Some(s)) => {
                    out.push(s..t);
                    start = None;
                }
                _ => {}
            }
        }
        if let Some(s) = start {
            out.push(s..sentence.end);
        }
    }
    out
}

impl Doc {
    pub fn new(text: &str) -> Self {
        let tokens = tokenize(text);
        let sections = split_sections(text, &tokens);
        let sentences = without_titles(sentences(text, &tokens), &sections);
        Self {
            text: text.to_string(),
            tokens,
            sentences,
            sections,
            spans: Vec::new(),
        }
    }

    /// The char range covered by a token range.
    pub fn char_range(&self, tokens: &Range<usize>) -> Range<usize> {
        self.tokens[tokens.start].chars.start..self.tokens[tokens.end - 1].chars.end
    }

    /// The text of a token range, as written.
    pub fn token_text(&self, tokens: &Range<usize>) -> &str {
        &self.text[self.tokens[tokens.start].bytes.start..self.tokens[tokens.end - 1].bytes.end]
    }

    /// Each token's sentence, looked up once per pass instead of scanning
    /// all sentences per match (long reports have thousands); `None` for a
    /// section title's tokens, which belong to no sentence.
    pub fn sentence_of_tokens(&self) -> Vec<Option<usize>> {
        let mut out = vec![None; self.tokens.len()];
        for (i, s) in self.sentences.iter().enumerate() {
            out[s.clone()].fill(Some(i));
        }
        out
    }

    pub fn section_of(&self, token: usize) -> SectionKind {
        self.sections
            .iter()
            .find(|s| s.tokens.contains(&token))
            .map_or(SectionKind::Findings, |s| s.kind)
    }

    /// The spans as output entities, in text order.
    pub fn entities(
        &self,
        vocab: &crate::vocab::Vocabulary,
        qualifiers: &Qualifiers,
    ) -> Vec<Entity> {
        let mut spans: Vec<&Span> = self.spans.iter().collect();
        spans.sort_by_key(|s| (s.start, s.end));
        spans
            .into_iter()
            .map(|s| Entity {
                start: s.start,
                end: s.end,
                text: self.token_text(&s.tokens).to_string(),
                label: s.label,
                concept: s.concept.map(|c| vocab.concept(c).heading.clone()),
                assertion: s.assertion,
                score: s.score,
                source: s.source.clone(),
                modifiers: s
                    .cues
                    .iter()
                    .map(|c| {
                        let chars = self.char_range(&c.tokens);
                        EntityModifier {
                            start: chars.start,
                            end: chars.end,
                            text: self.token_text(&c.tokens).to_string(),
                            qualifiers: c
                                .qualifiers
                                .iter()
                                .map(|&q| qualifiers.name(q).to_string())
                                .collect(),
                        }
                    })
                    .collect(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn section_titles_are_not_part_of_sentences() {
        let doc = Doc::new("FINDINGS: No effusion. Heart normal.\nIMPRESSION: Clear.");
        let sentences: Vec<&str> = doc.sentences.iter().map(|s| doc.token_text(s)).collect();
        assert_eq!(sentences, ["No effusion.", "Heart normal.", "Clear."]);
    }
}
