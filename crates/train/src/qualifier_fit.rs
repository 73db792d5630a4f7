//! Fitting the qualifier lexicon's heading table on the train split: for
//! each heading, the qualifiers its codings used at least `min_count` times
//! (allowed) and those in at least `default_share` of its codings (default).
//! The two settings are chosen on the validation split's (heading,
//! qualifier) pair F1 with the rule labeler's findings; the lexicon's
//! hand-written part is kept as it is.

use crate::qualifier_eval::{gold_codings, QualifierScores};
use anyhow::Result;
use integrabner_core::doc::Doc;
use integrabner_core::openi::Report;
use integrabner_core::qualifiers::{HeadingQualifiers, QualifierFile, Qualifiers};
use integrabner_core::{Finding, RulePipeline};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

/// The settings tried, the smallest first.
const MIN_COUNTS: [usize; 4] = [1, 2, 3, 5];
/// Above 1: no defaults.
const DEFAULT_SHARES: [f64; 6] = [0.5, 0.6, 0.7, 0.8, 0.9, 1.01];

pub struct Fitted {
    pub file: QualifierFile,
    pub min_count: usize,
    pub default_share: f64,
    /// The chosen table's scores on validation.
    pub validation: QualifierScores,
    /// Every setting's validation pair F1, as Markdown.
    pub grid: String,
}

/// Counts of the train codings: per heading, its codings and each
/// qualifier's uses.
fn coding_counts(
    train: &[&Report],
    pipeline: &RulePipeline,
    lexicon: &Qualifiers,
) -> BTreeMap<String, (usize, BTreeMap<String, usize>)> {
    let mut counts: BTreeMap<String, (usize, BTreeMap<String, usize>)> = BTreeMap::new();
    for report in train {
        for (heading, qualifiers) in gold_codings(report, &pipeline.vocab) {
            let entry = counts.entry(heading).or_default();
            entry.0 += 1;
            for q in qualifiers.into_iter().filter(|q| lexicon.find(q).is_some()) {
                *entry.1.entry(q).or_default() += 1;
            }
        }
    }
    counts
}

fn table(
    counts: &BTreeMap<String, (usize, BTreeMap<String, usize>)>,
    min_count: usize,
    default_share: f64,
) -> BTreeMap<String, HeadingQualifiers> {
    counts
        .iter()
        .map(|(heading, (codings, uses))| {
            let pick = |keep: &dyn Fn(usize) -> bool| {
                uses.iter()
                    .filter(|(_, &n)| keep(n))
                    .map(|(q, _)| q.clone())
                    .collect()
            };
            let h = HeadingQualifiers {
                allowed: pick(&|n| n >= min_count),
                default: pick(&|n| n >= min_count && n as f64 >= default_share * *codings as f64),
            };
            (heading.clone(), h)
        })
        .collect()
}

/// The validation reports as the rule labeler reads them, with its findings.
fn labelled<'a>(
    pipeline: &RulePipeline,
    reports: &[&'a Report],
) -> Vec<(&'a Report, Doc, Vec<Finding>)> {
    reports
        .iter()
        .filter_map(|r| {
            let doc = pipeline.doc(&r.text()).ok()?;
            let findings = pipeline.findings.findings(&doc, &pipeline.vocab);
            Some((*r, doc, findings))
        })
        .collect()
}

fn score(
    pipeline: &RulePipeline,
    qualifiers: &Qualifiers,
    labelled: &[(&Report, Doc, Vec<Finding>)],
) -> QualifierScores {
    let mut scores = QualifierScores::default();
    for (report, doc, findings) in labelled {
        let mut findings = findings.clone();
        for f in &mut findings {
            if let Some(concept) = pipeline.vocab.find(&f.concept) {
                f.qualifiers = qualifiers
                    .of_concept(doc, &pipeline.vocab, concept)
                    .into_iter()
                    .map(|q| qualifiers.name(q).to_string())
                    .collect();
            }
        }
        scores.add(&gold_codings(report, &pipeline.vocab), &findings);
    }
    scores
}

/// Fits the heading table of `lexicon` (its terms and compounds as they
/// are) on `train`, choosing its settings on `validation`.
pub fn fit(
    lexicon: &QualifierFile,
    pipeline: &RulePipeline,
    train: &[&Report],
    validation: &[&Report],
) -> Result<Fitted> {
    let bare = QualifierFile {
        headings: BTreeMap::new(),
        ..lexicon.clone()
    };
    let counts = coding_counts(train, pipeline, &Qualifiers::from_file(&bare)?);
    // The cues do not depend on the table: read each report once.
    let labelled = labelled(pipeline, validation);
    let mut grid = String::from(
        "| allowed: used at least | default: in at least | validation pair F1 | exact |\n|---|---|---|---|\n",
    );
    let mut tried: HashMap<(usize, u64), QualifierScores> = HashMap::new();
    let mut best: Option<(f64, usize, f64)> = None;
    for min_count in MIN_COUNTS {
        for default_share in DEFAULT_SHARES {
            let file = QualifierFile {
                headings: table(&counts, min_count, default_share),
                ..bare.clone()
            };
            let scores = score(pipeline, &Qualifiers::from_file(&file)?, &labelled);
            let f1 = scores.pair_f1();
            let share = if default_share > 1.0 {
                "none".to_string()
            } else {
                format!("{default_share:.1} of codings")
            };
            let _ = writeln!(
                grid,
                "| {min_count} | {share} | {f1:.4} | {:.3} |",
                scores.exact as f64 / scores.codings.max(1) as f64
            );
            // Strictly better only: ties keep the smaller setting.
            if best.is_none_or(|(b, _, _)| f1 > b) {
                best = Some((f1, min_count, default_share));
            }
            tried.insert((min_count, default_share.to_bits()), scores);
        }
    }
    let (_, min_count, default_share) = best.expect("the grid is not empty");
    Ok(Fitted {
        file: QualifierFile {
            headings: table(&counts, min_count, default_share),
            ..bare
        },
        min_count,
        default_share,
        validation: tried
            .remove(&(min_count, default_share.to_bits()))
            .unwrap_or_default(),
        grid,
    })
}
