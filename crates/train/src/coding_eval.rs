//! Document-level evaluation against OpenI's manual MeSH coding, with the
//! original system's substring baseline computed in the same run.

use crate::qualifier_eval::{gold_codings, QualifierScores};
use integrabner_core::metrics::{Counts, MultiLabelEval, Prf};
use integrabner_core::openi::Report;
use integrabner_core::vocab::Vocabulary;
use integrabner_core::Prediction;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

/// The original system's labeling: a concept is found when any of its terms
/// occurs anywhere as a case-insensitive substring (no negation, no word
/// boundaries).
pub struct SubstringBaseline {
    terms: Vec<(String, Vec<String>)>,
}

impl SubstringBaseline {
    pub fn new(vocab: &Vocabulary) -> Self {
        let terms = vocab
            .concepts
            .iter()
            .map(|c| {
                let mut t: Vec<String> = std::iter::once(&c.heading)
                    .chain(&c.synonyms)
                    .map(|s| s.to_lowercase())
                    .collect();
                t.dedup();
                (c.heading.clone(), t)
            })
            .collect();
        Self { terms }
    }

    pub fn labels(&self, text: &str) -> BTreeSet<String> {
        let lower = text.to_lowercase();
        self.terms
            .iter()
            .filter(|(_, t)| t.iter().any(|t| lower.contains(t.as_str())))
            .map(|(h, _)| h.clone())
            .collect()
    }
}

/// Gold headings mapped onto vocabulary headings (case and spacing as the vocabulary writes them).
pub fn gold_labels(report: &Report, vocab: &Vocabulary) -> BTreeSet<String> {
    report
        .gold_headings()
        .iter()
        .map(|h| {
            vocab.find(h).map_or_else(
                || h.trim().to_string(),
                |i| vocab.concept(i).heading.clone(),
            )
        })
        .collect()
}

/// The text a document-level labeler sees: the findings and impression.
pub fn study_text(report: &Report) -> String {
    [&report.sections.findings, &report.sections.impression]
        .into_iter()
        .flatten()
        .cloned()
        .collect::<Vec<_>>()
        .join("\n")
}

pub struct EvalResult {
    /// The name of the evaluated labeler, for the tables.
    pub system: String,
    pub rules: MultiLabelEval,
    pub baseline: MultiLabelEval,
    /// Entities per source over all reports (what each component adds).
    pub spans_by_source: BTreeMap<String, usize>,
    pub qualifiers: QualifierScores,
}

pub fn evaluate<'a>(
    system: &str,
    vocab: &Vocabulary,
    label: impl Fn(&Report) -> Option<Prediction>,
    reports: impl IntoIterator<Item = &'a Report>,
    progress: &indicatif::ProgressBar,
) -> EvalResult {
    let baseline = SubstringBaseline::new(vocab);
    let mut result = EvalResult {
        system: system.to_string(),
        rules: MultiLabelEval::default(),
        baseline: MultiLabelEval::default(),
        spans_by_source: BTreeMap::new(),
        qualifiers: QualifierScores::default(),
    };
    for report in reports {
        let gold = gold_labels(report, vocab);
        let predicted: BTreeSet<String> = match label(report) {
            Some(p) => {
                for e in &p.entities {
                    *result.spans_by_source.entry(e.source.clone()).or_default() += 1;
                }
                result
                    .qualifiers
                    .add(&gold_codings(report, vocab), &p.findings);
                p.findings.into_iter().map(|f| f.concept).collect()
            }
            None => BTreeSet::new(),
        };
        result.rules.add(&gold, &predicted);
        result
            .baseline
            .add(&gold, &baseline.labels(&study_text(report)));
        progress.inc(1);
    }
    result
}

/// Support, TP, FP, FN, P, R and F1 of one concept as Markdown cells.
pub fn counts_cells(c: &Counts) -> String {
    let p = c.prf();
    format!(
        "{} | {} | {} | {} | {:.3} | {:.3} | {:.3}",
        c.support(),
        c.tp,
        c.fp,
        c.fn_,
        p.precision,
        p.recall,
        p.f1
    )
}

fn row(name: &str, p: Prf) -> String {
    format!(
        "| {name} | {:.3} | {:.3} | {:.3} |\n",
        p.precision, p.recall, p.f1
    )
}

/// The evaluation as Markdown: summary, then the per-concept table.
pub fn markdown(result: &EvalResult, split: &str, vocab: &Vocabulary) -> String {
    let mut s = String::new();
    let r = &result.rules;
    let b = &result.baseline;
    let _ = writeln!(
        s,
        "Split: `{split}`, {} reports, {} gold (report, concept) pairs.\n",
        r.documents,
        r.total().support()
    );
    s.push_str("| system | precision | recall | F1 |\n|---|---|---|---|\n");
    s.push_str(&row(
        "substring baseline (original system), micro",
        b.micro(),
    ));
    s.push_str(&row(
        "substring baseline (original system), macro",
        b.macro_supported(),
    ));
    let system = &result.system;
    s.push_str(&row(&format!("{system}, micro"), r.micro()));
    s.push_str(&row(
        &format!("{system}, macro (concepts with support)"),
        r.macro_supported(),
    ));
    let sources: Vec<String> = result
        .spans_by_source
        .iter()
        .map(|(source, n)| format!("{source} {n}"))
        .collect();
    let _ = writeln!(s, "\nEntities by source: {}.\n", sources.join(", "));
    s.push_str(&result.qualifiers.markdown(system));
    let _ = write!(s, "\nPer concept ({system}; support = gold reports):\n\n| concept | type | support | TP | FP | FN | P | R | F1 |\n|---|---|---|---|---|---|---|---|---|\n");
    let mut concepts: Vec<_> = r.per_label.iter().collect();
    concepts.sort_by(|a, b| b.1.support().cmp(&a.1.support()).then(a.0.cmp(b.0)));
    for (name, c) in concepts {
        let t = vocab.find(name).map_or("not in vocabulary", |i| {
            vocab.concept(i).concept_type.as_str()
        });
        let _ = writeln!(s, "| {name} | {t} | {} |", counts_cells(c));
    }
    s
}
