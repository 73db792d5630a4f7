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

/// The most probable valid IOB sequence given each word's label
/// probabilities (`probs[word][label]`, labels named by `labels`): Viterbi
/// over log-probabilities where `I-X` may only follow `B-X` or `I-X`. Taking
/// each word's argmax instead can end a span one word early or split it where
/// one word's `I-X` narrowly loses to `O`; the joint choice repairs that from
/// the neighbours' evidence.
pub fn decode_valid_iob(probs: &[Vec<f32>], labels: &[impl AsRef<str>]) -> Vec<usize> {
    fn type_of(label: &str) -> Option<&str> {
        label.split_once('-').map(|(_, ty)| ty)
    }
    let inside_of: Vec<Option<&str>> = labels
        .iter()
        .map(|l| l.as_ref().strip_prefix("I-"))
        .collect();
    // can_follow[prev][next]: whether tag `next` may come right after `prev`.
    let can_follow: Vec<Vec<bool>> = labels
        .iter()
        .map(|prev| {
            inside_of
                .iter()
                .map(|inside| inside.is_none() || *inside == type_of(prev.as_ref()))
                .collect()
        })
        .collect();
    let log = |p: f32| f64::from(p.max(1e-12)).ln();
    let Some((first, rest)) = probs.split_first() else {
        return Vec::new();
    };
    // A sentence may not start inside a span.
    let mut score: Vec<f64> = first
        .iter()
        .zip(&inside_of)
        .map(|(&p, inside)| {
            if inside.is_some() {
                f64::NEG_INFINITY
            } else {
                log(p)
            }
        })
        .collect();
    // back[w][l]: the best tag before word w + 1 when it has tag l.
    let mut back: Vec<Vec<usize>> = Vec::with_capacity(rest.len());
    for row in rest {
        let (next, from): (Vec<f64>, Vec<usize>) = (0..labels.len())
            .map(|l| {
                let (prev, best) = (0..labels.len())
                    .filter(|&p| can_follow[p][l])
                    .map(|p| (p, score[p]))
                    .fold((0, f64::NEG_INFINITY), |a, b| if b.1 > a.1 { b } else { a });
                (best + log(row[l]), prev)
            })
            .unzip();
        score = next;
        back.push(from);
    }
    let mut label = (0..score.len()).fold(0, |a, b| if score[b] > score[a] { b } else { a });
    let mut path = vec![label];
    for from in back.iter().rev() {
        label = from[label];
        path.push(label);
    }
    path.reverse();
    path
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
    fn decoding_keeps_spans_valid_and_uses_the_neighbours() {
        let labels = ["O", "B-A", "I-A", "B-D", "I-D"];
        let row = |o, b, i| vec![o, b, i, 0.0, 0.0];
        // Word-wise argmax gives B-A O I-A; "I-A" after "O" is not valid, and
        // B-A I-A I-A (0.9*0.45*0.8) beats B-A O B-A (0.9*0.55*0.2).
        let probs = [
            row(0.05, 0.9, 0.05),
            row(0.55, 0.0, 0.45),
            row(0.0, 0.2, 0.8),
        ];
        assert_eq!(decode_valid_iob(&probs, &labels), [1, 2, 2]);
        // A sentence may not start inside a span, nor switch type mid-span.
        let probs = [vec![0.1, 0.2, 0.7, 0.0, 0.0], vec![0.1, 0.0, 0.0, 0.2, 0.7]];
        let path = decode_valid_iob(&probs, &labels);
        let tags: Vec<&str> = path.iter().map(|&l| labels[l]).collect();
        assert_eq!(tags, ["B-A", "B-D"]);
        assert!(decode_valid_iob(&[] as &[Vec<f32>], &labels).is_empty());
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
