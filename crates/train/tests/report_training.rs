//! The report model trains end to end on a tiny random BERT: entity tags and
//! assertions from silver spans, findings from a coding that the rules alone
//! do not give.

mod common;
use common::tiny_checkpoint;
use integrabner_core::RulePipeline;
use integrabner_models::report::ReportTagger;
use integrabner_train::report::{
    evaluate, load_tagger, train, LabelledReport, Outcome, Recipe, Teacher, FINDINGS_WEIGHT,
};
use integrabner_train::trainer::TrainConfig;
use std::collections::BTreeSet;
use std::path::Path;

fn reports(rules: &RulePipeline) -> Vec<LabelledReport> {
    let texts = [
        "FINDINGS: No pleural effusion. The heart is normal. IMPRESSION: Cardiomegaly.",
        "FINDINGS: The heart is normal. IMPRESSION: Possible pneumonia.",
        "FINDINGS: Pleural effusion. IMPRESSION: No cardiomegaly.",
        "FINDINGS: The heart is normal. IMPRESSION: No pneumonia.",
    ];
    let mut out = Vec::new();
    for i in 0..24 {
        let text = texts[i % texts.len()];
        let silver = rules.predict("x", text).unwrap().entities;
        // The hand coding names pneumonia even when the report only suspects
        // it: the rules leave uncertain mentions uncoded, so the model must
        // learn this from the text.
        let mut gold: BTreeSet<String> = rules
            .predict("x", text)
            .unwrap()
            .findings
            .into_iter()
            .map(|f| f.concept)
            .collect();
        if text.contains("Possible pneumonia") {
            gold.insert("Pneumonia".into());
        }
        out.push(LabelledReport {
            id: i.to_string(),
            text: text.to_string(),
            silver,
            gold,
            codings: Vec::new(),
        });
    }
    out
}

/// Enough epochs at a high enough rate for the tiny model to learn the toy set.
fn toy_training() -> TrainConfig {
    TrainConfig {
        epochs: 60,
        batch_size: 8,
        learning_rate: 3e-3,
        patience: 100,
        max_len: 64,
        ..TrainConfig::default()
    }
}

/// Trains `recipe` on `data` (its first 4 reports for early stopping) into
/// `out`, and loads the best epoch.
fn trained(
    recipe: Recipe,
    rules: &RulePipeline,
    data: &[LabelledReport],
    config: TrainConfig,
    out: &Path,
) -> ReportTagger {
    let outcome = train(recipe, rules, data, &data[..4], out, config, |_| true).unwrap();
    assert!(matches!(outcome, Outcome::Finished(_)), "{outcome:?}");
    load_tagger(&out.join("best")).unwrap()
}

fn pneumonia(tagger: &ReportTagger) -> usize {
    tagger
        .config
        .concepts
        .iter()
        .position(|c| c == "Pneumonia")
        .unwrap()
}

#[test]
fn report_model_learns_spans_assertions_and_findings() {
    let rules = RulePipeline::embedded();
    let base = tempfile::tempdir().unwrap();
    tiny_checkpoint(base.path());
    let data = reports(&rules);
    assert!(data[0].silver.len() >= 3, "{:?}", data[0].silver);
    let out = tempfile::tempdir().unwrap();
    let recipe = Recipe {
        base: base.path(),
        layers: None,
        feed_forward_width: None,
        findings_weight: FINDINGS_WEIGHT,
        teacher: None,
    };
    let tagger = trained(recipe, &rules, &data, toy_training(), out.path());
    let (scores, outputs) = evaluate(&tagger, &rules, &data[..4], true).unwrap();
    assert!(scores.spans.f1() > 0.95, "span F1 {}", scores.spans.f1());
    assert_eq!(scores.assertion_correct, scores.spans.true_positives);
    assert!(
        scores.findings.micro().f1 > 0.95,
        "findings F1 {}",
        scores.findings.micro().f1
    );
    // "Possible pneumonia" is coded although the rules' evidence says uncertain.
    let pneumonia = pneumonia(&tagger);
    assert!(outputs[1].probabilities[pneumonia] > 0.5);
    assert!(outputs[3].probabilities[pneumonia] < 0.5);
    // One encoder pass gives what two analyses give (the teacher's targets).
    let (with_rules, text_only) = tagger
        .findings_with_and_without_rules(&rules, &data[1].text)
        .unwrap();
    assert_eq!(with_rules, outputs[1].probabilities);
    let alone = tagger.analyse(&rules, &data[1].text, false).unwrap();
    assert_eq!(text_only, alone.probabilities);
    for (o, r) in outputs.iter().zip(&data) {
        for e in &o.prediction.entities {
            let text: String = r.text.chars().skip(e.start).take(e.end - e.start).collect();
            assert_eq!(text, e.text);
            assert_eq!(e.source, "text");
        }
    }

    // A trained model is a base too, heads and all, also cut to fewer
    // layers and feed-forward neurons: one epoch at a negligible learning
    // rate leaves it nearly as good as it was (new heads would score nothing).
    let warm = tempfile::tempdir().unwrap();
    let recipe = Recipe {
        base: &out.path().join("best"),
        layers: Some(1),
        feed_forward_width: Some(24),
        findings_weight: FINDINGS_WEIGHT,
        teacher: None,
    };
    let config = TrainConfig {
        epochs: 1,
        batch_size: 8,
        learning_rate: 1e-9,
        max_len: 64,
        ..TrainConfig::default()
    };
    let student = trained(recipe, &rules, &data, config, warm.path());
    let (again, _) = evaluate(&student, &rules, &data[..4], true).unwrap();
    assert!(again.spans.f1() > 0.95, "span F1 {}", again.spans.f1());

    // Distillation: a student whose manual coding has lost "Possible
    // pneumonia" still codes it when the findings targets are all teacher.
    let uncoded: Vec<LabelledReport> = data
        .iter()
        .cloned()
        .map(|mut r| {
            r.gold.remove("Pneumonia");
            r
        })
        .collect();
    let distilled = |share: f32| {
        let dir = tempfile::tempdir().unwrap();
        let recipe = Recipe {
            base: base.path(),
            layers: None,
            feed_forward_width: None,
            findings_weight: FINDINGS_WEIGHT,
            teacher: Some(Teacher {
                model: &tagger,
                share,
            }),
        };
        let student = trained(recipe, &rules, &uncoded, toy_training(), dir.path());
        let (_, outputs) = evaluate(&student, &rules, &uncoded[..4], true).unwrap();
        outputs[1].probabilities[pneumonia]
    };
    let taught = distilled(1.0);
    let untaught = distilled(0.0);
    assert!(taught > 0.5, "with the teacher: {taught}");
    assert!(untaught < 0.5, "without the teacher: {untaught}");
}
