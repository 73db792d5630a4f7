//! Longest-match lookup of multi-token phrases over normalized tokens.
//!
//! One trie serves the synonym dictionary, the abnormality modifiers and the
//! assertion cues: each is a set of token sequences mapped to a value.

use crate::text::{is_joiner, phrase_keys, Token};
use std::collections::HashMap;
use std::ops::Range;

#[derive(Debug, Clone)]
struct Node<T> {
    children: HashMap<String, Node<T>>,
    value: Option<T>,
}

impl<T> Default for Node<T> {
    fn default() -> Self {
        Self {
            children: HashMap::new(),
            value: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct PhraseMatcher<T> {
    root: Node<T>,
}

impl<T> Default for PhraseMatcher<T> {
    fn default() -> Self {
        Self {
            root: Node::default(),
        }
    }
}

/// A match: the token range it covers (joiners inside included) and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct PhraseMatch<'a, T> {
    pub tokens: Range<usize>,
    pub value: &'a T,
}

impl<T> PhraseMatcher<T> {
    /// Adds a phrase given as text; it is tokenized and normalized like documents.
    /// A phrase added twice keeps its first value. Returns false for an empty phrase.
    pub fn insert_phrase(&mut self, phrase: &str, value: T) -> bool {
        self.insert_keys(phrase_keys(phrase), value)
    }

    /// Adds a phrase given as normalized token keys.
    pub fn insert_keys(&mut self, keys: Vec<String>, value: T) -> bool {
        if keys.is_empty() {
            return false;
        }
        let mut node = &mut self.root;
        for k in keys {
            node = node.children.entry(k).or_default();
        }
        if node.value.is_none() {
            node.value = Some(value);
        }
        true
    }

    /// The longest phrase starting exactly at token `start`, if any.
    pub fn longest_at<'a>(&'a self, tokens: &[Token], start: usize) -> Option<PhraseMatch<'a, T>> {
        if tokens.get(start).is_none_or(is_joiner) {
            return None;
        }
        let mut node = &self.root;
        let mut best = None;
        let mut i = start;
        while let Some(tok) = tokens.get(i) {
            if is_joiner(tok) && i > start {
                i += 1;
                continue;
            }
            match node.children.get(&tok.norm) {
                Some(next) => node = next,
                None => break,
            }
            i += 1;
            if let Some(v) = &node.value {
                best = Some(PhraseMatch {
                    tokens: start..i,
                    value: v,
                });
            }
        }
        best
    }

    /// All non-overlapping matches, scanning left to right and taking the
    /// longest match at each position.
    pub fn find_all<'a>(&'a self, tokens: &[Token]) -> Vec<PhraseMatch<'a, T>> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < tokens.len() {
            match self.longest_at(tokens, i) {
                Some(m) => {
                    i = m.tokens.end;
                    out.push(m);
                }
                None => i += 1,
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::tokenize;

    #[test]
    fn longest_match_wins_and_hyphens_are_skipped() {
        let mut m = PhraseMatcher::default();
        m.insert_phrase("effusion", 1);
        m.insert_phrase("pleural effusion", 2);
        m.insert_phrase("well expanded", 3);
        let toks = tokenize("Well-expanded lungs, pleural effusions and an effusion.");
        let found: Vec<_> = m
            .find_all(&toks)
            .into_iter()
            .map(|x| (*x.value, x.tokens))
            .collect();
        assert_eq!(found, vec![(3, 0..3), (2, 5..7), (1, 9..10)]);
    }
}
