//! Qualifiers against OpenI's manual coding: (heading, qualifier) pairs of
//! a report (the union over its codings) micro P/R/F1, the same over the
//! headings both sides coded (how good the qualifiers are where the heading
//! is right), and the share of the coders' codings reproduced exactly
//! (heading and whole qualifier set).

use integrabner_core::metrics::{Counts, Prf};
use integrabner_core::openi::Report;
use integrabner_core::vocab::Vocabulary;
use integrabner_core::Finding;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct QualifierScores {
    /// Over all pairs: a missed heading misses its qualifiers.
    pub pairs: Counts,
    /// Over the headings both the coders and the labeler coded.
    pub pairs_of_shared_headings: Counts,
    /// Gold codings that are findings, and those reproduced exactly.
    pub codings: usize,
    pub exact: usize,
    /// Gold codings with at least one qualifier, and those reproduced exactly.
    pub qualified_codings: usize,
    pub qualified_exact: usize,
}

/// One coding of the coders: canonical heading and qualifiers (lower case,
/// as the lexicon spells them).
pub type Coding = (String, BTreeSet<String>);

/// A report's codings that are findings.
pub fn gold_codings(report: &Report, vocab: &Vocabulary) -> Vec<Coding> {
    report
        .mesh
        .iter()
        .filter(|t| t.is_finding())
        .map(|t| {
            let heading = vocab.find(&t.heading).map_or_else(
                || t.heading.trim().to_string(),
                |i| vocab.concept(i).heading.clone(),
            );
            let qualifiers = t.qualifiers.iter().map(|q| q.to_lowercase()).collect();
            (heading, qualifiers)
        })
        .collect()
}

fn count(
    counts: &mut Counts,
    gold: &BTreeSet<(String, String)>,
    predicted: &BTreeSet<(String, String)>,
) {
    counts.tp += gold.intersection(predicted).count();
    counts.fn_ += gold.difference(predicted).count();
    counts.fp += predicted.difference(gold).count();
}

impl QualifierScores {
    /// Scores one report's findings against its codings (`gold_codings`).
    pub fn add(&mut self, codings: &[Coding], findings: &[Finding]) {
        let pairs =
            |items: &mut dyn Iterator<Item = (&String, &String)>| -> BTreeSet<(String, String)> {
                items.map(|(h, q)| (h.clone(), q.clone())).collect()
            };
        let gold = pairs(
            &mut codings
                .iter()
                .flat_map(|(h, qs)| qs.iter().map(move |q| (h, q))),
        );
        let predicted_sets: BTreeMap<&str, BTreeSet<String>> = findings
            .iter()
            .map(|f| (f.concept.as_str(), f.qualifiers.iter().cloned().collect()))
            .collect();
        let predicted = pairs(
            &mut findings
                .iter()
                .flat_map(|f| f.qualifiers.iter().map(move |q| (&f.concept, q))),
        );
        count(&mut self.pairs, &gold, &predicted);
        let shared = |set: &BTreeSet<(String, String)>| -> BTreeSet<(String, String)> {
            set.iter()
                .filter(|(h, _)| {
                    predicted_sets.contains_key(h.as_str()) && codings.iter().any(|(g, _)| g == h)
                })
                .cloned()
                .collect()
        };
        count(
            &mut self.pairs_of_shared_headings,
            &shared(&gold),
            &shared(&predicted),
        );
        for (heading, qualifiers) in codings {
            let exact = predicted_sets.get(heading.as_str()) == Some(qualifiers);
            self.codings += 1;
            self.exact += usize::from(exact);
            if !qualifiers.is_empty() {
                self.qualified_codings += 1;
                self.qualified_exact += usize::from(exact);
            }
        }
    }

    pub fn pair_f1(&self) -> f64 {
        self.pairs.prf().f1
    }

    /// The scores as a Markdown table, one row per measure.
    pub fn markdown(&self, system: &str) -> String {
        let share = |n: usize, of: usize| {
            if of == 0 {
                0.0
            } else {
                n as f64 / of as f64
            }
        };
        let row = |name: &str, p: Prf| {
            format!(
                "| {name} | {:.3} | {:.3} | {:.3} |\n",
                p.precision, p.recall, p.f1
            )
        };
        let mut s = format!(
            "Qualifiers ({system}): (heading, qualifier) pairs against the manual coding.\n\n| pairs | precision | recall | F1 |\n|---|---|---|---|\n"
        );
        s.push_str(&row(
            "all (a missed heading misses its qualifiers)",
            self.pairs.prf(),
        ));
        s.push_str(&row(
            "headings both coded",
            self.pairs_of_shared_headings.prf(),
        ));
        let _ = writeln!(
            s,
            "\nCodings reproduced exactly (heading and whole qualifier set): {} of {} ({:.3}); of those with qualifiers: {} of {} ({:.3}).",
            self.exact,
            self.codings,
            share(self.exact, self.codings),
            self.qualified_exact,
            self.qualified_codings,
            share(self.qualified_exact, self.qualified_codings)
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use integrabner_core::openi::MeshTerm;
    use integrabner_core::{ConceptType, FindingSource};

    fn report(codings: &[&str]) -> Report {
        Report {
            id: "CXR1".into(),
            sections: Default::default(),
            mesh: codings.iter().filter_map(|c| MeshTerm::parse(c)).collect(),
            automatic: Vec::new(),
            images: Vec::new(),
        }
    }

    fn finding(concept: &str, qualifiers: &[&str]) -> Finding {
        Finding {
            concept: concept.into(),
            concept_type: ConceptType::Disease,
            probability: 0.9,
            source: FindingSource::Dictionary,
            qualifiers: qualifiers.iter().map(|q| q.to_string()).collect(),
            qualifiers_by_kind: BTreeMap::new(),
        }
    }

    #[test]
    fn pairs_and_exact_codings_are_counted_against_the_coding() {
        let vocab = Vocabulary::embedded();
        let mut s = QualifierScores::default();
        s.add(
            &gold_codings(
                &report(&[
                    "Pleural Effusion/left/small",
                    "Cardiomegaly/mild",
                    "Granuloma",
                ]),
                &vocab,
            ),
            &[
                finding("Pleural Effusion", &["left", "small"]),
                finding("Cardiomegaly", &["moderate"]),
                finding("Pulmonary Atelectasis", &["base"]),
            ],
        );
        // Gold pairs: effusion/left, effusion/small, cardiomegaly/mild.
        assert_eq!((s.pairs.tp, s.pairs.fp, s.pairs.fn_), (2, 2, 1));
        // Atelectasis is not a gold heading: its pair is left out there.
        let shared = &s.pairs_of_shared_headings;
        assert_eq!((shared.tp, shared.fp, shared.fn_), (2, 1, 1));
        // The effusion exactly; cardiomegaly wrong; granuloma missed.
        assert_eq!((s.exact, s.codings), (1, 3));
        assert_eq!((s.qualified_exact, s.qualified_codings), (1, 2));
    }
}
