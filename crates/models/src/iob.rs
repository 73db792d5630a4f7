//! IOB-tagged corpora (`token<TAB>tag` lines, a blank line between
//! sentences) and strict span-level scoring, as in conlleval: a span is
//! correct only with the same start, end and type.

#[derive(Debug, Clone, PartialEq)]
pub struct Sentence {
    pub words: Vec<String>,
    pub tags: Vec<String>,
}

pub fn parse_iob(text: &str) -> Result<Vec<Sentence>, String> {
    let mut sentences = Vec::new();
    let mut current = Sentence {
        words: Vec::new(),
        tags: Vec::new(),
    };
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            if !current.words.is_empty() {
                sentences.push(std::mem::replace(
                    &mut current,
                    Sentence {
                        words: Vec::new(),
                        tags: Vec::new(),
                    },
                ));
            }
            continue;
        }
        let (word, tag) = line
            .rsplit_once('\t')
            .ok_or_else(|| format!("line {}: expected token<TAB>tag", n + 1))?;
        if !(tag == "O" || tag.starts_with("B-") || tag.starts_with("I-")) {
            return Err(format!("line {}: {tag:?} is not an IOB tag", n + 1));
        }
        current.words.push(word.to_string());
        current.tags.push(tag.to_string());
    }
    if !current.words.is_empty() {
        sentences.push(current);
    }
    Ok(sentences)
}

/// Spans `(start, end, type)` over word indices, end exclusive. An `I-X`
/// that does not continue an `X` span starts one (conlleval's rule).
pub fn spans(tags: &[impl AsRef<str>]) -> Vec<(usize, usize, String)> {
    let mut out: Vec<(usize, usize, String)> = Vec::new();
    let mut open: Option<(usize, String)> = None;
    for (i, tag) in tags.iter().enumerate() {
        let tag = tag.as_ref();
        let (kind, ty) = match tag.split_once('-') {
            Some((k, t)) => (k, t),
            None => ("O", ""),
        };
        let continues = kind == "I" && open.as_ref().is_some_and(|(_, t)| t == ty);
        if !continues {
            if let Some((start, t)) = open.take() {
                out.push((start, i, t));
            }
            if kind == "B" || kind == "I" {
                open = Some((i, ty.to_string()));
            }
        }
    }
    if let Some((start, t)) = open {
        out.push((start, tags.len(), t));
    }
    out
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpanCounts {
    pub true_positives: usize,
    pub false_positives: usize,
    pub false_negatives: usize,
}

impl SpanCounts {
    pub fn add(&mut self, gold: &[impl AsRef<str>], predicted: &[impl AsRef<str>]) {
        let gold = spans(gold);
        let predicted = spans(predicted);
        let hits = predicted.iter().filter(|p| gold.contains(p)).count();
        self.true_positives += hits;
        self.false_positives += predicted.len() - hits;
        self.false_negatives += gold.len() - hits;
    }

    pub fn precision(&self) -> f64 {
        ratio(
            self.true_positives,
            self.true_positives + self.false_positives,
        )
    }

    pub fn recall(&self) -> f64 {
        ratio(
            self.true_positives,
            self.true_positives + self.false_negatives,
        )
    }

    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sentences_and_rejects_bad_tags() {
        let s = parse_iob("Familial\tB-Disease\ncancer\tI-Disease\n.\tO\n\nNo\tO\n").unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].words, ["Familial", "cancer", "."]);
        assert!(parse_iob("x\tDisease\n")
            .unwrap_err()
            .contains("not an IOB tag"));
        assert!(parse_iob("no tab here\n").is_err());
    }

    #[test]
    fn strict_spans_follow_conlleval() {
        assert_eq!(
            spans(&["B-D", "I-D", "O", "I-D", "B-A", "I-D"]),
            vec![
                (0, 2, "D".to_string()),
                (3, 4, "D".to_string()),
                (4, 5, "A".to_string()),
                (5, 6, "D".to_string())
            ]
        );
        let mut c = SpanCounts::default();
        c.add(&["B-D", "I-D", "O", "B-D"], &["B-D", "O", "O", "B-D"]);
        assert_eq!(
            (c.true_positives, c.false_positives, c.false_negatives),
            (1, 1, 1)
        );
        assert!((c.f1() - 0.5).abs() < 1e-12);
    }
}
