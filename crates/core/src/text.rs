//! Tokenization with character offsets, token normalization and sentence splitting.
//!
//! Offsets are Unicode scalar values (char indices), end exclusive: the unit of
//! the output schema. Every token also keeps its byte range so slicing is cheap.

use std::ops::Range;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// Letters and digits (with inner apostrophes and decimal points).
    Word,
    /// A single punctuation or symbol character.
    Punct,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// Char range in the document.
    pub chars: Range<usize>,
    /// Byte range in the document.
    pub bytes: Range<usize>,
    pub kind: TokenKind,
    /// Lower-cased, singular form used for every lookup.
    pub norm: String,
}

/// Characters that are invisible inside a word: a soft hyphen (where a word
/// processor may break a line), zero-width space, (non-)joiner, word joiner
/// and byte-order mark. Inside a word they stay in its offsets and leave its
/// normalized form, so that `pneu\u{AD}mothorax` is found as `pneumothorax`.
pub fn is_invisible_in_word(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}' | '\u{200B}' | '\u{200C}' | '\u{200D}' | '\u{2060}' | '\u{FEFF}'
    )
}

/// Splits text into word and punctuation tokens. Whitespace separates tokens
/// and is dropped; a word keeps an inner `'` (`patient's`), an inner `.`
/// between digits (`4.9`) and invisible characters between letters
/// ([`is_invisible_in_word`]).
pub fn tokenize(text: &str) -> Vec<Token> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let byte_at = |i: usize| chars.get(i).map_or(text.len(), |&(b, _)| b);
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i].1;
        if c.is_whitespace() || c.is_control() {
            i += 1;
            continue;
        }
        let start = i;
        let kind = if c.is_alphanumeric() {
            i += 1;
            while i < chars.len() {
                let c = chars[i].1;
                let next_alnum = chars.get(i + 1).is_some_and(|&(_, n)| n.is_alphanumeric());
                let inner = match c {
                    c if is_invisible_in_word(c) => chars[i + 1..]
                        .iter()
                        .find(|&&(_, n)| !is_invisible_in_word(n))
                        .is_some_and(|&(_, n)| n.is_alphanumeric()),
                    '\'' | '\u{2019}' => next_alnum && chars[i - 1].1.is_alphabetic(),
                    '.' | ',' => {
                        chars[i - 1].1.is_ascii_digit()
                            && chars.get(i + 1).is_some_and(|&(_, n)| n.is_ascii_digit())
                    }
                    _ => false,
                };
                if c.is_alphanumeric() || inner {
                    i += 1;
                } else {
                    break;
                }
            }
            TokenKind::Word
        } else {
            i += 1;
            TokenKind::Punct
        };
        let bytes = byte_at(start)..byte_at(i);
        let norm = match kind {
            TokenKind::Word => normalize_word(&text[bytes.clone()]),
            TokenKind::Punct => text[bytes.clone()].to_string(),
        };
        tokens.push(Token {
            chars: start..i,
            bytes,
            kind,
            norm,
        });
    }
    tokens
}

/// Irregular plurals of radiology vocabulary.
const IRREGULAR: &[(&str, &str)] = &[
    ("vertebrae", "vertebra"),
    ("apices", "apex"),
    ("bronchi", "bronchus"),
    ("hila", "hilum"),
    ("pleurae", "pleura"),
    ("atria", "atrium"),
    ("diverticula", "diverticulum"),
    ("emboli", "embolus"),
    ("foci", "focus"),
    ("media", "medium"),
    ("sulci", "sulcus"),
    ("lumina", "lumen"),
];

/// Words ending in `s` that are not plurals.
const NOT_PLURAL: &[&str] = &[
    "atelectasis",
    "lordosis",
    "kyphosis",
    "scoliosis",
    "fibrosis",
    "sarcoidosis",
    "tuberculosis",
    "calcinosis",
    "sclerosis",
    "stenosis",
    "thrombosis",
    "spondylosis",
    "bronchiectasis",
    "cholelithiasis",
    "diagnosis",
    "osteoporosis",
    "osteopenia",
    "metastasis",
    "ectasis",
    "thorax",
    "pectus",
    "status",
    "hiatus",
    "bronchus",
    "sulcus",
    "thymus",
    "humerus",
    "corpus",
    "fundus",
    "process",
    "mass",
    "gas",
    "bias",
    "previous",
    "various",
    "nervous",
    "venous",
    "fibrous",
    "bullous",
    "callus",
    "nucleus",
    "ductus",
    "apparatus",
    "us",
    "is",
    "was",
    "has",
    "this",
    "its",
    "as",
    "less",
    "unless",
    "across",
    "always",
    "perhaps",
    "chondritis",
    "bronchitis",
    "bronchiolitis",
    "arthritis",
    "lupus",
];

/// Lower-cases and reduces a regular English plural to its singular, so that
/// `Opacities`, `effusions` and `ribs` match `opacity`, `effusion`, `rib`.
pub fn normalize_word(word: &str) -> String {
    let lower: String = word
        .chars()
        .filter(|&c| !is_invisible_in_word(c))
        .map(|c| if c == '\u{2019}' { '\'' } else { c })
        .flat_map(char::to_lowercase)
        .collect();
    singular(&lower)
}

fn singular(w: &str) -> String {
    if let Some(&(_, s)) = IRREGULAR.iter().find(|(p, _)| *p == w) {
        return s.to_string();
    }
    if w.chars().count() <= 3
        || !w.ends_with('s')
        || NOT_PLURAL.contains(&w)
        || w.ends_with("ss")
        || w.ends_with("itis")
        || w.ends_with("osis")
        || w.ends_with("asis")
        || w.ends_with("ous")
        || w.ends_with("us")
        || w.contains('\'')
    {
        return w.to_string();
    }
    if let Some(stem) = w.strip_suffix("ies") {
        return format!("{stem}y");
    }
    for suffix in ["ches", "shes", "sses", "xes"] {
        if w.ends_with(suffix) {
            return w[..w.len() - 2].to_string();
        }
    }
    w[..w.len() - 1].to_string()
}

/// Normalizes a phrase into the token keys used for dictionary lookup.
/// Hyphens are dropped so `hyper-expanded`, `hyper expanded` agree; the
/// closed form `hyperexpanded` is a separate synonym where it is used.
pub fn phrase_keys(phrase: &str) -> Vec<String> {
    tokenize(phrase)
        .into_iter()
        .filter(|t| !is_joiner(t))
        .map(|t| t.norm)
        .collect()
}

/// Whether two token (or char) ranges share a position.
pub fn ranges_overlap(a: &Range<usize>, b: &Range<usize>) -> bool {
    a.start < b.end && b.start < a.end
}

/// Tokens skipped during dictionary lookup.
pub fn is_joiner(t: &Token) -> bool {
    t.kind == TokenKind::Punct && matches!(t.norm.as_str(), "-" | "\u{2010}" | "\u{2011}")
}

/// Common abbreviations that end in a period without ending a sentence.
const ABBREVIATIONS: &[&str] = &[
    "dr", "mr", "mrs", "ms", "vs", "e.g", "i.e", "approx", "no", "fig", "st", "cm", "mm",
];

/// Splits a token stream into sentences; returns token index ranges.
/// A sentence ends at `.`, `!`, `?` or `;` (unless the `.` follows a known
/// abbreviation or a list number such as `1.`), and at a line break that starts
/// a new line of text in a newline-separated layout (two or more newlines).
pub fn sentences(text: &str, tokens: &[Token]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, tok) in tokens.iter().enumerate() {
        let ends_here = if tok.kind == TokenKind::Punct {
            match tok.norm.as_str() {
                "!" | "?" | ";" => true,
                "." => !is_abbreviation_dot(tokens, i, start),
                _ => false,
            }
        } else {
            false
        };
        let blank_line_after = tokens
            .get(i + 1)
            .is_some_and(|next| text[tok.bytes.end..next.bytes.start].matches('\n').count() >= 2);
        if ends_here || blank_line_after {
            out.push(start..i + 1);
            start = i + 1;
        }
    }
    if start < tokens.len() {
        out.push(start..tokens.len());
    }
    out
}

fn is_abbreviation_dot(tokens: &[Token], dot: usize, sentence_start: usize) -> bool {
    let Some(prev) = dot.checked_sub(1).map(|p| &tokens[p]) else {
        return false;
    };
    if prev.kind != TokenKind::Word || prev.chars.end != tokens[dot].chars.start {
        return false;
    }
    // "1." opening a numbered list item
    if dot - 1 == sentence_start && prev.norm.chars().all(|c| c.is_ascii_digit()) {
        return true;
    }
    // "No." as in "No. 2" is rare in reports; "no." ends many sentences.
    prev.norm != "no" && ABBREVIATIONS.contains(&prev.norm.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invisible_characters_inside_a_word_keep_it_whole() {
        let text = "pneu\u{AD}mothorax, effu\u{200B}\u{2060}sion\u{200B} x\u{AD}";
        let toks = tokenize(text);
        let norms: Vec<_> = toks.iter().map(|t| t.norm.as_str()).collect();
        assert_eq!(
            norms,
            ["pneumothorax", ",", "effusion", "\u{200B}", "x", "\u{AD}"]
        );
        assert_eq!(&text[toks[0].bytes.clone()], "pneu\u{AD}mothorax");
        assert_eq!(toks[0].chars, 0..13);
    }

    #[test]
    fn offsets_are_char_indices() {
        let text = "Ödem – no pleural effusions.";
        let toks = tokenize(text);
        let words: Vec<_> = toks.iter().map(|t| t.norm.as_str()).collect();
        assert_eq!(words, ["ödem", "–", "no", "pleural", "effusion", "."]);
        let chars: Vec<char> = text.chars().collect();
        let t = &toks[4];
        assert_eq!(
            chars[t.chars.clone()].iter().collect::<String>(),
            "effusions"
        );
        assert_eq!(&text[t.bytes.clone()], "effusions");
    }

    #[test]
    fn plurals_and_irregulars() {
        for (w, s) in [
            ("Opacities", "opacity"),
            ("ribs", "rib"),
            ("vertebrae", "vertebra"),
            ("atelectasis", "atelectasis"),
            ("apices", "apex"),
            ("lungs", "lung"),
            ("process", "process"),
            ("calcifications", "calcification"),
        ] {
            assert_eq!(normalize_word(w), s, "{w}");
        }
    }

    #[test]
    fn numbers_and_apostrophes_stay_whole() {
        let toks = tokenize("A 4.9 cm mass; patient's habitus.");
        let words: Vec<_> = toks.iter().map(|t| t.norm.as_str()).collect();
        assert_eq!(
            words,
            ["a", "4.9", "cm", "mass", ";", "patient's", "habitus", "."]
        );
    }

    #[test]
    fn sentence_split_respects_list_numbers() {
        let text = "1. Cardiomegaly. 2. No effusion; mild edema.\n\nStable";
        let toks = tokenize(text);
        let sents: Vec<String> = sentences(text, &toks)
            .into_iter()
            .map(|r| {
                toks[r]
                    .iter()
                    .map(|t| t.norm.clone())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        assert_eq!(
            sents,
            [
                "1 . cardiomegaly .",
                "2 . no effusion ;",
                "mild edema .",
                "stable"
            ]
        );
    }
}
