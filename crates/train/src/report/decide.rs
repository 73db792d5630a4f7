//! Per-concept decisions (`integrabner report decide`): for each concept,
//! whether the model at its threshold, the rule labeler, either or both
//! code it, chosen on the validation split. The model loses concepts it saw
//! a handful of times in training, where the dictionary still reads them.

use super::{evaluate, LabelledReport, ReportOutput};
use anyhow::Result;
use integrabner_core::metrics::{Counts, MultiLabelEval};
use integrabner_core::RulePipeline;
use integrabner_models::report::ReportTagger;
use integrabner_models::report_model::Decision;
use std::collections::BTreeSet;
use std::fmt::Write;

/// Validation reports a concept needs for a decision of its own; the rarer
/// ones share one decision, fitted on their pooled counts.
pub const MIN_SUPPORT: usize = 5;

/// The codings of `reports` when concept `i` of the model is decided by
/// `decision(i)`, against the manual coding.
pub fn evaluate_decisions(
    tagger: &ReportTagger,
    reports: &[LabelledReport],
    outputs: &[ReportOutput],
    decision: impl Fn(usize) -> Decision,
) -> MultiLabelEval {
    let mut eval = MultiLabelEval::default();
    for (r, o) in reports.iter().zip(outputs) {
        eval.add(&r.gold, &coded_by(tagger, o, &decision));
    }
    eval
}

/// The concepts of one report's output coded when concept `i` is decided
/// by `decision(i)`.
pub fn coded_by(
    tagger: &ReportTagger,
    output: &ReportOutput,
    decision: impl Fn(usize) -> Decision,
) -> BTreeSet<String> {
    tagger
        .config
        .concepts
        .iter()
        .enumerate()
        .filter(|&(i, _)| {
            decision(i)
                .decide(
                    output.probabilities[i],
                    tagger.config.threshold,
                    output.rule_probabilities[i],
                )
                .is_some()
        })
        .map(|(_, c)| c.clone())
        .collect()
}

/// What one decision for every concept scores, in `Decision::ALL` order.
fn uniform(
    tagger: &ReportTagger,
    reports: &[LabelledReport],
    outputs: &[ReportOutput],
) -> Vec<MultiLabelEval> {
    Decision::ALL
        .iter()
        .map(|&d| evaluate_decisions(tagger, reports, outputs, |_| d))
        .collect()
}

fn counts_of(eval: &MultiLabelEval, concept: &str) -> Counts {
    eval.per_label.get(concept).copied().unwrap_or_default()
}

/// The best-scoring of `Decision::ALL` by F1 of `counts` (one per
/// decision); on a tie the earlier, so the model keeps what it does as well.
fn best(counts: &[Counts]) -> Decision {
    let mut best = 0;
    for (i, c) in counts.iter().enumerate() {
        if c.prf().f1 > counts[best].prf().f1 {
            best = i;
        }
    }
    Decision::ALL[best]
}

/// Each concept's decision from the model's and the rules' outputs on
/// `reports` (validation): its own best with `MIN_SUPPORT` coded reports,
/// else the best on the pooled counts of all such rare concepts.
pub fn fit(
    tagger: &ReportTagger,
    reports: &[LabelledReport],
    outputs: &[ReportOutput],
) -> Vec<Decision> {
    let evals = uniform(tagger, reports, outputs);
    let concepts = &tagger.config.concepts;
    let per_concept: Vec<Vec<Counts>> = concepts
        .iter()
        .map(|c| evals.iter().map(|e| counts_of(e, c)).collect())
        .collect();
    let rare = |counts: &[Counts]| counts[0].support() < MIN_SUPPORT;
    let mut pooled = vec![Counts::default(); Decision::ALL.len()];
    for counts in per_concept.iter().filter(|c| rare(c)) {
        for (sum, &c) in pooled.iter_mut().zip(counts) {
            *sum = *sum + c;
        }
    }
    let for_rare = best(&pooled);
    per_concept
        .iter()
        .map(|counts| if rare(counts) { for_rare } else { best(counts) })
        .collect()
}

/// Rules, model and shipped decisions on `reports`, each concept with at
/// least `min_support` coded reports, as a Markdown table, most frequent first.
pub fn comparison_markdown(
    tagger: &ReportTagger,
    reports: &[LabelledReport],
    outputs: &[ReportOutput],
    min_support: usize,
) -> String {
    let rules = evaluate_decisions(tagger, reports, outputs, |_| Decision::Rules);
    let model = evaluate_decisions(tagger, reports, outputs, |_| Decision::Model);
    let shipped = evaluate_decisions(tagger, reports, outputs, |i| tagger.config.decision(i));
    let mut s = format!(
        "Per concept with at least {min_support} coded reports: F1 of the rule labeler, the report model (with rule evidence) at its threshold, and the shipped decision (the concept's entry in `decisions`):\n\n| concept | support | decision | rules F1 | model F1 | shipped F1 | shipped − best |\n|---|---|---|---|---|---|---|\n"
    );
    let mut rows: Vec<(usize, &String, usize)> = tagger
        .config
        .concepts
        .iter()
        .enumerate()
        .map(|(i, c)| (counts_of(&model, c).support(), c, i))
        .filter(|&(n, _, _)| n >= min_support)
        .collect();
    rows.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    let mut worst: f64 = 0.0;
    for (n, concept, i) in rows {
        let [r, m, sh] = [&rules, &model, &shipped].map(|e| counts_of(e, concept).prf().f1);
        let margin = sh - r.max(m);
        worst = worst.min(margin);
        let _ = writeln!(
            s,
            "| {concept} | {n} | {} | {r:.3} | {m:.3} | {sh:.3} | {margin:+.3} |",
            tagger.config.decision(i).as_str()
        );
    }
    let _ = writeln!(
        s,
        "\nWorst shipped − best of (rules, model) over these concepts: {worst:+.3}.\n"
    );
    s
}

/// The four uniform decisions and each concept's score under them on
/// `reports`, and the fitted decisions: what `report decide` prints.
pub fn fit_markdown(
    tagger: &ReportTagger,
    reports: &[LabelledReport],
    outputs: &[ReportOutput],
    decisions: &[Decision],
) -> String {
    let evals = uniform(tagger, reports, outputs);
    let fitted = evaluate_decisions(tagger, reports, outputs, |i| decisions[i]);
    let mut s = String::from("Every concept decided alike, and the fitted decisions (validation, so the fitted row is optimistic):\n\n| decision | micro P | micro R | micro F1 | macro F1 |\n|---|---|---|---|---|\n");
    for (name, e) in Decision::ALL
        .iter()
        .map(|d| d.as_str())
        .zip(&evals)
        .chain([("fitted", &fitted)])
    {
        let m = e.micro();
        let _ = writeln!(
            s,
            "| {name} | {:.3} | {:.3} | {:.3} | {:.3} |",
            m.precision,
            m.recall,
            m.f1,
            e.macro_supported().f1
        );
    }
    s.push_str("\nPer concept coded or predicted in these reports: F1 under each decision.\n\n| concept | support | chosen | ");
    s.push_str(&Decision::ALL.map(Decision::as_str).join(" | "));
    s.push_str(" |\n|---|---|---|");
    s.push_str(&"---|".repeat(Decision::ALL.len()));
    s.push('\n');
    for (i, concept) in tagger.config.concepts.iter().enumerate() {
        let counts: Vec<Counts> = evals.iter().map(|e| counts_of(e, concept)).collect();
        if counts.iter().all(|c| c.tp + c.fp + c.fn_ == 0) {
            continue;
        }
        let cells: Vec<String> = counts
            .iter()
            .map(|c| format!("{:.3}", c.prf().f1))
            .collect();
        let _ = writeln!(
            s,
            "| {concept} | {} | {} | {} |",
            counts[0].support(),
            decisions[i].as_str(),
            cells.join(" | ")
        );
    }
    s
}

/// The decisions fitted on `validation`, written into `tagger`'s config,
/// with the table of `fit_markdown`.
pub fn decide(
    tagger: &mut ReportTagger,
    rules: &RulePipeline,
    validation: &[LabelledReport],
) -> Result<String> {
    let (_, outputs) = evaluate(tagger, rules, validation, true)?;
    let decisions = fit(tagger, validation, &outputs);
    let md = fit_markdown(tagger, validation, &outputs, &decisions);
    tagger.config.decisions = decisions;
    Ok(md)
}

/// `report decide` on the bundle directory `dir` (config.json, model.gguf,
/// manifest.json): decisions fitted on `validation` into its config, then
/// scored once on `test` into its manifest beside the model-only scores.
/// Returns the validation tables and the test comparison.
pub fn decide_bundle(
    dir: &std::path::Path,
    rules: &RulePipeline,
    validation: &[LabelledReport],
    test: &[LabelledReport],
) -> Result<String> {
    use anyhow::Context;
    use integrabner_core::bundle::{BundleManifest, TEXT_MODEL_FILES};
    let mut tagger = super::load_tagger(dir)?;
    tagger.check_rules(rules)?;
    let mut md = decide(&mut tagger, rules, validation)?;
    let config_path = dir.join("config.json");
    std::fs::write(&config_path, serde_json::to_string_pretty(&tagger.config)?)
        .with_context(|| format!("cannot write {}", config_path.display()))?;

    let (scores, outputs) = evaluate(&tagger, rules, test, true)?;
    let shipped = scores.findings;
    let model = evaluate_decisions(&tagger, test, &outputs, |_| Decision::Model);
    let manifest_path = dir.join(integrabner_core::bundle::MANIFEST_FILE);
    let manifest = BundleManifest::from_json(
        &std::fs::read_to_string(&manifest_path)
            .with_context(|| format!("cannot read {}", manifest_path.display()))?,
    )?;
    let mut metrics = manifest.metrics;
    for (prefix, e) in [("", &shipped), ("model-only ", &model)] {
        metrics.insert(format!("{prefix}test findings micro-f1"), e.micro().f1);
        metrics.insert(
            format!("{prefix}test findings macro-f1"),
            e.macro_supported().f1,
        );
    }
    const NOTE: &str = " Per-concept decisions (model, rules, either, both) fitted on validation by integrabner report decide.";
    let mut provenance = manifest.provenance;
    if !provenance.ends_with(NOTE) {
        provenance.push_str(NOTE);
    }
    crate::export::write_manifest(dir, &TEXT_MODEL_FILES, &provenance, metrics)?;
    let _ = writeln!(
        md,
        "\nTest ({} reports): shipped micro-F1 {:.3}, macro-F1 {:.3}; model alone {:.3}, {:.3}.\n",
        test.len(),
        shipped.micro().f1,
        shipped.macro_supported().f1,
        model.micro().f1,
        model.macro_supported().f1
    );
    md.push_str(&comparison_markdown(&tagger, test, &outputs, MIN_SUPPORT));
    Ok(md)
}
