//! The report model's evaluation: calibration fitted on validation, and the
//! Markdown tables of `integrabner report eval` (entities against silver
//! spans, findings against the manual coding beside the rule labeler,
//! calibration, per-concept scores, the most frequent errors).

use super::decide::{coded_by, comparison_markdown, evaluate_decisions, MIN_SUPPORT};
use super::{evaluate, LabelledReport, ReportOutput};
use crate::coding_eval::counts_cells;
use crate::negbio;
use anyhow::Result;
use integrabner_core::calibration::{
    best_threshold, expected_calibration_error, fit_temperature, rescale,
};
use integrabner_core::doc::Doc;
use integrabner_core::metrics::{MultiLabelEval, Prf};
use integrabner_core::RulePipeline;
use integrabner_models::report::ReportTagger;
use integrabner_models::report_model::Decision;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

/// (probability, coded by hand) for every report and concept of the model.
pub fn probability_pairs(
    tagger: &ReportTagger,
    reports: &[LabelledReport],
    outputs: &[ReportOutput],
) -> Vec<(f32, bool)> {
    reports
        .iter()
        .zip(outputs)
        .flat_map(|(r, o)| {
            tagger
                .config
                .concepts
                .iter()
                .zip(&o.probabilities)
                .map(|(c, &p)| (p, r.gold.contains(c)))
        })
        .collect()
}

/// Temperature and threshold fitted on `validation` (model with rule evidence).
pub fn calibrate(
    tagger: &mut ReportTagger,
    rules: &RulePipeline,
    validation: &[LabelledReport],
) -> Result<(f64, f32)> {
    tagger.config.temperature = 1.0;
    let (_, outputs) = evaluate(tagger, rules, validation, true)?;
    let pairs = probability_pairs(tagger, validation, &outputs);
    let temperature = fit_temperature(&pairs);
    let rescaled: Vec<(f32, bool)> = pairs
        .iter()
        .map(|&(p, y)| (rescale(p, temperature), y))
        .collect();
    Ok((temperature, best_threshold(&rescaled)))
}

fn prf_cells(p: Prf) -> String {
    format!("{:.3} | {:.3} | {:.3}", p.precision, p.recall, p.f1)
}

/// The sentence of `text` around char offset `at`, on one line.
fn sentence_at(doc: &Doc, at: usize) -> String {
    doc.sentences
        .iter()
        .find(|s| {
            let chars = doc.char_range(s);
            chars.start <= at && at < chars.end
        })
        .map(|s| {
            doc.token_text(s)
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// The most frequent span errors: silver spans the model missed and model
/// spans the silver lacks, by (lower-cased text, label), with how many of
/// each a boundary overlap would explain.
fn span_errors_markdown(reports: &[LabelledReport], outputs: &[ReportOutput]) -> String {
    let mut counts: BTreeMap<(&str, String, String), (usize, usize)> = BTreeMap::new();
    for (r, o) in reports.iter().zip(outputs) {
        let key = |e: &integrabner_core::Entity| (e.start, e.end, e.label);
        let gold: BTreeSet<_> = r.silver.iter().map(key).collect();
        let found: BTreeSet<_> = o.prediction.entities.iter().map(key).collect();
        for (kind, mine, theirs, all) in [
            ("missed", &r.silver, &found, &o.prediction.entities),
            ("spurious", &o.prediction.entities, &gold, &r.silver),
        ] {
            for e in mine.iter().filter(|e| !theirs.contains(&key(e))) {
                let overlaps = all.iter().any(|x| x.start < e.end && e.start < x.end);
                let c = counts
                    .entry((kind, e.text.to_lowercase(), format!("{:?}", e.label)))
                    .or_default();
                c.0 += 1;
                c.1 += usize::from(overlaps);
            }
        }
    }
    let mut rows: Vec<_> = counts.into_iter().collect();
    rows.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then_with(|| a.0.cmp(&b.0)));
    let mut s = String::from("The 15 most frequent span errors (text, label; \"overlapping\": the other side has a span that overlaps it, i.e. a boundary or label disagreement):\n\n| error | text | label | count | overlapping |\n|---|---|---|---|---|\n");
    for ((kind, text, label), (n, overlapping)) in rows.into_iter().take(15) {
        let _ = writeln!(s, "| {kind} | {text} | {label} | {n} | {overlapping} |");
    }
    s.push('\n');
    s
}

/// The evaluation of the report model on `reports` as Markdown.
pub fn evaluation_markdown(
    tagger: &ReportTagger,
    rules: &RulePipeline,
    reports: &[LabelledReport],
    train: &[LabelledReport],
    split: &str,
) -> Result<String> {
    let (with_rules, outputs) = evaluate(tagger, rules, reports, true)?;
    let (_, text_outputs) = evaluate(tagger, rules, reports, false)?;
    let model_alone = |outputs: &[ReportOutput]| {
        evaluate_decisions(tagger, reports, outputs, |_| Decision::Model)
    };
    let text_only = model_alone(&text_outputs);
    let model = model_alone(&outputs);
    let rule_eval = evaluate_decisions(tagger, reports, &outputs, |_| Decision::Rules);
    let mut negbio_evals = [(); 3].map(|_| MultiLabelEval::default());
    for (r, o) in reports.iter().zip(&outputs) {
        let by_rules = coded_by(tagger, o, |_| Decision::Rules);
        let by_model = coded_by(tagger, o, |_| Decision::Model);
        let shipped: BTreeSet<String> = o
            .prediction
            .findings
            .iter()
            .map(|f| f.concept.clone())
            .collect();
        for (eval, predicted) in negbio_evals.iter_mut().zip([by_rules, by_model, shipped]) {
            negbio::add(eval, &r.gold, &predicted);
        }
    }

    let mut s = String::new();
    let sp = &with_rules.spans;
    let _ = writeln!(
        s,
        "Split `{split}`, {} reports. Model: temperature {:.2}, threshold {:.2}.\n",
        reports.len(),
        tagger.config.temperature,
        tagger.config.threshold
    );
    s.push_str("Entities, strict (same boundaries and label) against the silver spans:\n\n| silver | predicted | correct | precision | recall | F1 |\n|---|---|---|---|---|---|\n");
    let _ = writeln!(
        s,
        "| {} | {} | {} | {:.3} | {:.3} | {:.3} |",
        sp.true_positives + sp.false_negatives,
        sp.true_positives + sp.false_positives,
        sp.true_positives,
        sp.precision(),
        sp.recall(),
        sp.f1()
    );
    let _ = writeln!(
        s,
        "\nAssertion agrees with the silver assertion on {} of {} exact spans ({:.3}).\n",
        with_rules.assertion_correct,
        sp.true_positives,
        with_rules.assertion_correct as f64 / sp.true_positives.max(1) as f64
    );
    s.push_str(&span_errors_markdown(reports, &outputs));
    s.push_str("Coded findings against the manual MeSH coding:\n\n| system | micro P | micro R | micro F1 | macro P | macro R | macro F1 |\n|---|---|---|---|---|---|---|\n");
    for (name, e) in [
        ("rule labeler", &rule_eval),
        ("report model, text only", &text_only),
        ("report model + rule evidence", &model),
        ("shipped: per-concept decisions", &with_rules.findings),
    ] {
        let _ = writeln!(
            s,
            "| {name} | {} | {} |",
            prf_cells(e.micro()),
            prf_cells(e.macro_supported())
        );
    }
    s.push_str("\nNegBio's 14 observations, mapped from the headings (`train::negbio`):\n\n| system | micro P | micro R | micro F1 | macro P | macro R | macro F1 |\n|---|---|---|---|---|---|---|\n");
    for (name, e) in ["rule labeler", "report model + rule evidence", "shipped"]
        .iter()
        .zip(&negbio_evals)
    {
        let _ = writeln!(
            s,
            "| {name} | {} | {} |",
            prf_cells(e.micro()),
            prf_cells(e.macro_supported())
        );
    }
    s.push('\n');
    s.push_str(&comparison_markdown(tagger, reports, &outputs, MIN_SUPPORT));
    s.push_str(&with_rules.qualifiers.markdown("shipped"));
    let pairs = probability_pairs(tagger, reports, &outputs);
    let raw: Vec<(f32, bool)> = pairs
        .iter()
        .map(|&(p, y)| (rescale(p, 1.0 / f64::from(tagger.config.temperature)), y))
        .collect();
    let _ = writeln!(
        s,
        "\nCalibration (model + rule evidence, every report x concept, 10 bins): ECE {:.4} at temperature 1, {:.4} at the fitted temperature {:.2}.",
        expected_calibration_error(&raw, 10),
        expected_calibration_error(&pairs, 10),
        tagger.config.temperature
    );

    s.push_str("\nPer concept (shipped; support = gold reports):\n\n| concept | support | TP | FP | FN | P | R | F1 |\n|---|---|---|---|---|---|---|---|\n");
    let mut concepts: Vec<_> = with_rules.findings.per_label.iter().collect();
    concepts.sort_by(|a, b| b.1.support().cmp(&a.1.support()).then(a.0.cmp(b.0)));
    for (name, c) in &concepts {
        let _ = writeln!(s, "| {name} | {} |", counts_cells(c));
    }

    // The most frequent (concept, error) pairs, each with one sentence.
    let mut errors: BTreeMap<(String, &str), (usize, String)> = BTreeMap::new();
    for (r, o) in reports.iter().zip(&outputs) {
        let predicted: BTreeSet<&String> =
            o.prediction.findings.iter().map(|f| &f.concept).collect();
        let doc = rules.doc(&r.text)?;
        let example = |concept: &str| {
            let mention = o
                .prediction
                .entities
                .iter()
                .find(|e| e.concept.as_deref() == Some(concept))
                .map(|e| e.start)
                .or_else(|| {
                    doc.spans
                        .iter()
                        .find(|sp| {
                            sp.concept
                                .is_some_and(|c| rules.vocab.concept(c).heading == concept)
                        })
                        .map(|sp| sp.start)
                });
            let sentence = mention.map_or_else(
                || "(no mention the vocabulary links to this concept)".to_string(),
                |at| sentence_at(&doc, at),
            );
            format!("{}: {}", r.id, sentence.replace('|', "/"))
        };
        for c in predicted.iter().filter(|c| !r.gold.contains(c.as_str())) {
            let e = errors
                .entry(((*c).clone(), "false positive"))
                .or_insert((0, example(c)));
            e.0 += 1;
        }
        for c in r.gold.iter().filter(|c| !predicted.contains(c)) {
            let e = errors
                .entry((c.clone(), "false negative"))
                .or_insert((0, example(c)));
            e.0 += 1;
        }
    }
    let mut ranked: Vec<_> = errors.into_iter().collect();
    ranked.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then(a.0.cmp(&b.0)));
    s.push_str("\nThe 20 most frequent errors (shipped), each with its first report and sentence:\n\n| concept | error | reports | first example (report: sentence) |\n|---|---|---|---|\n");
    for ((concept, kind), (n, example)) in ranked.into_iter().take(20) {
        let _ = writeln!(s, "| {concept} | {kind} | {n} | {example} |");
    }

    let mut train_support: BTreeMap<&str, usize> = BTreeMap::new();
    for r in train {
        for c in &r.gold {
            *train_support.entry(c.as_str()).or_default() += 1;
        }
    }
    let rare: Vec<String> = tagger
        .config
        .concepts
        .iter()
        .map(|c| (c, train_support.get(c.as_str()).copied().unwrap_or(0)))
        .filter(|&(_, n)| n < 5)
        .map(|(c, n)| format!("{c} ({n})"))
        .collect();
    let _ = writeln!(
        s,
        "\nRare concepts: {} of {} vocabulary concepts are coded in fewer than 5 train reports: {}.",
        rare.len(),
        tagger.config.concepts.len(),
        rare.join(", ")
    );
    Ok(s)
}
