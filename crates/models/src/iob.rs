//! IOB-tagged corpora (`token<TAB>tag` lines, a blank line between
//! sentences) and strict span-level scoring, as in conlleval: a span is
//! correct only with the same start, end and type.
//!
//! Tags are read into `Tag` once, at the edge (a corpus line, a model's
//! config); decoding and scoring work on `Tag`s, never on `"B-X"` strings.

use integrabner_core::ConceptType;

/// A BIO tag over entity types `T`: `&str` for corpora and the NER models'
/// own types, `ConceptType` for the report model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tag<T> {
    Outside,
    Begin(T),
    Inside(T),
}

impl<T: Copy> Tag<T> {
    pub fn entity_type(self) -> Option<T> {
        match self {
            Self::Outside => None,
            Self::Begin(t) | Self::Inside(t) => Some(t),
        }
    }
}

impl<'a> Tag<&'a str> {
    /// `O`, `B-X` or `I-X`; anything else is not a tag.
    pub fn parse(name: &'a str) -> Option<Self> {
        match name.split_once('-') {
            None if name == "O" => Some(Self::Outside),
            Some(("B", ty)) if !ty.is_empty() => Some(Self::Begin(ty)),
            Some(("I", ty)) if !ty.is_empty() => Some(Self::Inside(ty)),
            _ => None,
        }
    }

    /// A model's tag name as decoding reads it: what is not a tag is outside.
    fn lenient(name: &'a str) -> Self {
        Self::parse(name).unwrap_or(Self::Outside)
    }
}

impl Tag<ConceptType> {
    /// The tags of the report model's entity head in head order: `O`, then
    /// `B-`/`I-` per concept type.
    pub fn report_head() -> Vec<Self> {
        let mut tags = vec![Self::Outside];
        for t in ConceptType::ALL {
            tags.extend([Self::Begin(t), Self::Inside(t)]);
        }
        tags
    }

    /// A report-model tag name (`B-ANATOMY`).
    pub fn parse_report(name: &str) -> Option<Self> {
        Some(match Tag::parse(name)? {
            Tag::Outside => Self::Outside,
            Tag::Begin(t) => Self::Begin(ConceptType::from_entity_label(t)?),
            Tag::Inside(t) => Self::Inside(ConceptType::from_entity_label(t)?),
        })
    }

    /// The name in a model config (`B-ANATOMY`).
    pub fn name(self) -> String {
        match self {
            Self::Outside => "O".into(),
            Self::Begin(t) => format!("B-{}", t.entity_label()),
            Self::Inside(t) => format!("I-{}", t.entity_label()),
        }
    }
}

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
        if Tag::parse(tag).is_none() {
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
pub fn spans<T: Copy + PartialEq>(tags: &[Tag<T>]) -> Vec<(usize, usize, T)> {
    let mut out = Vec::new();
    let mut open: Option<(usize, T)> = None;
    for (i, &tag) in tags.iter().enumerate() {
        let continues = matches!((tag, open), (Tag::Inside(t), Some((_, o))) if t == o);
        if !continues {
            if let Some((start, t)) = open.take() {
                out.push((start, i, t));
            }
            open = tag.entity_type().map(|t| (i, t));
        }
    }
    if let Some((start, t)) = open {
        out.push((start, tags.len(), t));
    }
    out
}

/// The spans of tag names (a corpus's, a NER model's), typed by name.
pub fn spans_of_names<'a>(names: &[&'a str]) -> Vec<(usize, usize, &'a str)> {
    let tags: Vec<Tag<&str>> = names.iter().map(|n| Tag::lenient(n)).collect();
    spans(&tags)
}

/// The most probable valid IOB sequence given each word's label
/// probabilities (`probs[word][label]`, labels named by `labels`): Viterbi
/// over log-probabilities where `I-X` may only follow `B-X` or `I-X`. Taking
/// each word's argmax instead can end a span one word early or split it where
/// one word's `I-X` narrowly loses to `O`; the joint choice repairs that from
/// the neighbours' evidence.
pub fn decode_valid_iob(probs: &[Vec<f32>], labels: &[impl AsRef<str>]) -> Vec<usize> {
    let tags: Vec<Tag<&str>> = labels.iter().map(|l| Tag::lenient(l.as_ref())).collect();
    let inside_of: Vec<Option<&str>> = tags
        .iter()
        .map(|t| match t {
            Tag::Inside(ty) => Some(*ty),
            _ => None,
        })
        .collect();
    // can_follow[prev][next]: whether tag `next` may come right after `prev`.
    let can_follow: Vec<Vec<bool>> = tags
        .iter()
        .map(|prev| {
            inside_of
                .iter()
                .map(|inside| inside.is_none() || *inside == prev.entity_type())
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
        let gold: Vec<&str> = gold.iter().map(AsRef::as_ref).collect();
        let predicted: Vec<&str> = predicted.iter().map(AsRef::as_ref).collect();
        let gold = spans_of_names(&gold);
        let predicted = spans_of_names(&predicted);
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
    fn report_tags_read_back_from_their_names() {
        for tag in Tag::report_head() {
            assert_eq!(Tag::parse_report(&tag.name()), Some(tag));
        }
        assert_eq!(Tag::report_head().len(), 9);
        assert_eq!(Tag::parse_report("B-Disease"), None);
        assert_eq!(Tag::parse("B-"), None);
        assert_eq!(Tag::parse("X-Y"), None);
    }

    #[test]
    fn strict_spans_follow_conlleval() {
        assert_eq!(
            spans_of_names(&["B-D", "I-D", "O", "I-D", "B-A", "I-D"]),
            vec![(0, 2, "D"), (3, 4, "D"), (4, 5, "A"), (5, 6, "D")]
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
