//! Assertion: negation and uncertainty cues, scopes and their ends.

mod common;
use common::{entities, findings};
use integrabner_core::Assertion::{self, Absent, Present, Uncertain};

fn assertions(text: &str) -> Vec<(String, Assertion)> {
    entities(text)
        .into_iter()
        .filter_map(|(_, c, a)| c.map(|c| (c, a)))
        .collect()
}

fn pairs(xs: &[(&str, Assertion)]) -> Vec<(String, Assertion)> {
    xs.iter().map(|(c, a)| (c.to_string(), *a)).collect()
}

#[test]
fn a_list_after_no_is_all_absent() {
    assert_eq!(
        assertions("No pneumothorax or pleural effusion."),
        pairs(&[("Pneumothorax", Absent), ("Pleural Effusion", Absent)])
    );
    assert_eq!(
        assertions("There is no focal consolidation, pneumothorax, or large pleural effusion."),
        pairs(&[
            ("Consolidation", Absent),
            ("Pneumothorax", Absent),
            ("Pleural Effusion", Absent)
        ])
    );
}

#[test]
fn cannot_exclude_is_uncertain() {
    assert_eq!(
        assertions("Cannot exclude pneumonia."),
        pairs(&[("Pneumonia", Uncertain)])
    );
    assert_eq!(
        assertions("Pneumonia cannot be excluded."),
        pairs(&[("Pneumonia", Uncertain)])
    );
    assert_eq!(
        assertions("Findings may represent atelectasis."),
        pairs(&[("Pulmonary Atelectasis", Uncertain)])
    );
}

#[test]
fn scope_ends_at_sentence_and_at_but() {
    assert_eq!(
        assertions("No pneumothorax. Small left pleural effusion."),
        pairs(&[("Pneumothorax", Absent), ("Pleural Effusion", Present)])
    );
    assert_eq!(
        assertions("No pneumothorax, but there is a small pleural effusion."),
        pairs(&[("Pneumothorax", Absent), ("Pleural Effusion", Present)])
    );
    assert_eq!(
        assertions("No edema; however, cardiomegaly is present."),
        pairs(&[("Pulmonary Edema", Absent), ("Cardiomegaly", Present)])
    );
}

#[test]
fn pseudo_negations_do_not_negate() {
    assert_eq!(
        assertions("No change in cardiomegaly."),
        pairs(&[("Cardiomegaly", Present)])
    );
    assert_eq!(
        findings("No interval change in the left pleural effusion."),
        ["Pleural Effusion"]
    );
}

#[test]
fn backward_cues() {
    assert_eq!(
        assertions("Pneumothorax is not seen."),
        pairs(&[("Pneumothorax", Absent)])
    );
    assert_eq!(
        assertions("Previously seen effusion has resolved."),
        pairs(&[("Pleural Effusion", Absent)])
    );
}

/// Hand-written negated and uncertain statements: none may produce a present finding.
const NEGATED_OR_UNCERTAIN: &[&str] = &[
    "No pneumothorax or pleural effusion.",
    "No focal airspace consolidation.",
    "There is no pneumothorax.",
    "There are no pleural effusions.",
    "No evidence of pneumonia.",
    "Negative for pulmonary edema.",
    "Without evidence of cardiomegaly.",
    "No acute fracture.",
    "Lungs are free of consolidation.",
    "Lungs are clear of infiltrate.",
    "Pneumothorax is not seen.",
    "No nodules or masses are identified.",
    "No radiographic evidence of tuberculosis.",
    "Cannot exclude pneumonia.",
    "Pneumonia cannot be excluded.",
    "Possible small left pleural effusion.",
    "Questionable nodule in the right upper lobe.",
    "Findings may represent atelectasis.",
    "Suspicious for right lower lobe pneumonia.",
    "Concerning for pulmonary edema.",
    "This could reflect scarring.",
    "Atelectasis versus pneumonia.",
    "Rule out pneumothorax.",
    "Previously seen effusion has resolved.",
    "Interval resolution of the right lower lobe consolidation.",
    "The endotracheal tube has been removed.",
    "No evidence of active tuberculosis or granulomatous disease.",
    "No large pleural effusion or pneumothorax is identified.",
    "Pleural effusion is not excluded.",
    "Suggestive of early interstitial edema.",
    "No definite focal infiltrate.",
    "Heart is not enlarged.",
    "There is no evidence of pneumoperitoneum.",
    "No displaced rib fractures.",
    "No hiatal hernia.",
];

#[test]
fn negated_and_uncertain_sentences_produce_no_present_findings() {
    assert!(NEGATED_OR_UNCERTAIN.len() >= 30);
    let mut failures = Vec::new();
    for s in NEGATED_OR_UNCERTAIN {
        let f = findings(s);
        if !f.is_empty() {
            failures.push(format!("{s:?} -> {f:?}"));
        }
        assert!(
            entities(s).iter().any(|(_, c, _)| c.is_some()),
            "{s:?} must mention a concept, or the test proves nothing"
        );
    }
    assert!(
        failures.is_empty(),
        "present findings from negated text:\n{}",
        failures.join("\n")
    );
}

#[test]
fn history_sections_are_not_coded() {
    let text =
        "INDICATION: history of pneumonia\nFINDINGS: Clear lungs.\nIMPRESSION: Normal chest.";
    assert!(findings(text).is_empty());
    assert!(assertions(text).contains(&("Pneumonia".to_string(), Present)));
}

#[test]
fn a_colon_before_no_is_a_title_unless_no_ends_the_clause() {
    // A section title, at a line start or inline, does not eat the negation.
    for text in [
        "FINDINGS: No pneumothorax.",
        "Heart normal.\nIMPRESSION: No pneumothorax.",
        "Heart normal. IMPRESSION: No pneumothorax.",
    ] {
        assert_eq!(
            assertions(text).last(),
            Some(&("Pneumothorax".to_string(), Absent)),
            "{text}"
        );
    }
    // medspaCy's backward ": no" still reads "X: no".
    assert_eq!(
        assertions("Pneumothorax: no. Pleural effusion: none."),
        pairs(&[("Pneumothorax", Absent), ("Pleural Effusion", Absent)])
    );
}
