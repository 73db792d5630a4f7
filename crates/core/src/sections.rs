//! Report sections. Mentions in the indication, history, comparison or
//! technique do not describe this study's image and are not coded.

use crate::text::{Token, TokenKind};
use serde::{Deserialize, Serialize};
use std::ops::Range;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SectionKind {
    Indication,
    Comparison,
    Technique,
    Findings,
    Impression,
}

impl SectionKind {
    /// Whether mentions in this section describe the current image.
    pub fn describes_study(self) -> bool {
        matches!(self, Self::Findings | Self::Impression)
    }
}

/// Section titles (normalized token text) and their kind. Titles from
/// medspaCy's section patterns that occur in radiology reports.
const TITLES: &[(&str, SectionKind)] = &[
    ("indication", SectionKind::Indication),
    ("indications", SectionKind::Indication),
    ("history", SectionKind::Indication),
    ("clinical history", SectionKind::Indication),
    ("clinical indication", SectionKind::Indication),
    ("reason for exam", SectionKind::Indication),
    ("reason for examination", SectionKind::Indication),
    ("reason for study", SectionKind::Indication),
    ("comparison", SectionKind::Comparison),
    ("comparisons", SectionKind::Comparison),
    ("technique", SectionKind::Technique),
    ("exam", SectionKind::Technique),
    ("examination", SectionKind::Technique),
    ("procedure", SectionKind::Technique),
    ("findings", SectionKind::Findings),
    ("finding", SectionKind::Findings),
    ("impression", SectionKind::Impression),
    ("impressions", SectionKind::Impression),
    ("conclusion", SectionKind::Impression),
    ("conclusions", SectionKind::Impression),
    ("summary", SectionKind::Impression),
];

/// A section: its kind and the token range of its body (title excluded).
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    pub kind: SectionKind,
    pub tokens: Range<usize>,
}

/// Finds `TITLE:` headers at the start of the text or of a line. Text before
/// the first header, or text without headers, counts as findings.
pub fn split_sections(text: &str, tokens: &[Token]) -> Vec<Section> {
    let mut headers: Vec<(usize, usize, SectionKind)> = Vec::new();
    for start in 0..tokens.len() {
        let at_line_start = start == 0
            || text[..tokens[start].bytes.start].ends_with('\n')
            || text[tokens[start - 1].bytes.end..tokens[start].bytes.start].contains('\n');
        if !at_line_start {
            continue;
        }
        for len in 1..=3 {
            let Some(colon) = tokens.get(start + len) else {
                break;
            };
            let words = &tokens[start..start + len];
            if colon.norm != ":" || words.iter().any(|t| t.kind != TokenKind::Word) {
                continue;
            }
            let title = words
                .iter()
                .map(|t| text[t.bytes.clone()].to_lowercase())
                .collect::<Vec<_>>()
                .join(" ");
            if let Some(&(_, kind)) = TITLES.iter().find(|(t, _)| *t == title) {
                headers.push((start, start + len + 1, kind));
                break;
            }
        }
    }
    let mut sections = Vec::new();
    let first = headers.first().map_or(tokens.len(), |h| h.0);
    if first > 0 {
        sections.push(Section {
            kind: SectionKind::Findings,
            tokens: 0..first,
        });
    }
    for (i, &(_, body_start, kind)) in headers.iter().enumerate() {
        let end = headers.get(i + 1).map_or(tokens.len(), |h| h.0);
        sections.push(Section {
            kind,
            tokens: body_start..end,
        });
    }
    sections
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::tokenize;

    #[test]
    fn headers_at_line_starts() {
        let text = "INDICATION: cough, r/o pneumonia\nFINDINGS: Clear lungs.\nImpression: Normal.";
        let toks = tokenize(text);
        let s = split_sections(text, &toks);
        let kinds: Vec<_> = s.iter().map(|s| s.kind).collect();
        assert_eq!(
            kinds,
            [
                SectionKind::Indication,
                SectionKind::Findings,
                SectionKind::Impression
            ]
        );
        assert_eq!(toks[s[1].tokens.start].norm, "clear");
    }

    #[test]
    fn no_headers_means_findings() {
        let text = "Heart size: normal.";
        let toks = tokenize(text);
        let s = split_sections(text, &toks);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].kind, SectionKind::Findings);
        assert_eq!(s[0].tokens, 0..toks.len());
    }
}
