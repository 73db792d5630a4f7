//! A `Doc`: the text, its tokens, sentences and sections, and typed spans that
//! pipeline components add — the spaCy model of a processed document.

use crate::schema::{Assertion, Entity, EntityLabel};
use crate::sections::{split_sections, Section, SectionKind};
use crate::text::{sentences, tokenize, Token};
use std::ops::Range;

/// A mention. Offsets are chars, end exclusive; `tokens` indexes `Doc::tokens`.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub start: usize,
    pub end: usize,
    pub tokens: Range<usize>,
    pub label: EntityLabel,
    /// Index into the vocabulary, when the span is linked to a concept.
    pub concept: Option<usize>,
    pub assertion: Assertion,
    pub score: f32,
    pub source: String,
    pub section: SectionKind,
    /// OpenI qualifiers that describe the structure as abnormal (`tortuous`).
    pub abnormal_qualifiers: Vec<String>,
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

impl Doc {
    pub fn new(text: &str) -> Self {
        let tokens = tokenize(text);
        let sentences = sentences(text, &tokens);
        let sections = split_sections(text, &tokens);
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

    pub fn section_of(&self, token: usize) -> SectionKind {
        self.sections
            .iter()
            .find(|s| s.tokens.contains(&token))
            .map_or(SectionKind::Findings, |s| s.kind)
    }

    /// The spans as output entities, in text order.
    pub fn entities(&self, vocab: &crate::vocab::Vocabulary) -> Vec<Entity> {
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
            })
            .collect()
    }
}
