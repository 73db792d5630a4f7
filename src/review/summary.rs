//! What a finished (or half-finished) review says about the model: precision
//! and recall against the expert's judgments, agreement counts, time and the
//! forms' scores.
//!
//! Scoring, per item the expert judged:
//! - accepted: the model was right (true positive);
//! - rejected: the model was wrong (false positive);
//! - corrected: the model's reading was wrong (false positive) and the
//!   expert's reading was missed (false negative): strict, so a wrong
//!   assertion is an error, as it would be in a report;
//! - added: missed by the model (false negative);
//! - pending: not counted.
//!
//! A finding whose correction changed only its qualifiers counts as right
//! (its heading was); its qualifiers are scored apart, as (heading,
//! qualifier) pairs of the model's reading against the expert's, in the
//! `qualifier` rows: a rejected finding's pairs are all false positives,
//! an added one's all false negatives.

use super::session::{Form, Item, ItemKind, Reading, Session, Verdict, FORM_SCALES};
use integrabner_core::metrics::Counts;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Agreement {
    pub accepted: usize,
    pub rejected: usize,
    pub corrected: usize,
    pub added: usize,
    pub pending: usize,
    /// Which part of a corrected reading changed (one correction may change several).
    pub corrected_type: usize,
    pub corrected_concept: usize,
    pub corrected_assertion: usize,
    pub corrected_qualifiers: usize,
}

/// What a summary row counts: entities, findings (their headings), or the
/// (heading, qualifier) pairs of the findings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RowKind {
    Entity,
    Finding,
    Qualifier,
}

impl RowKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Entity => "entity",
            Self::Finding => "finding",
            Self::Qualifier => "qualifier",
        }
    }
}

impl From<ItemKind> for RowKind {
    fn from(kind: ItemKind) -> Self {
        match kind {
            ItemKind::Entity => Self::Entity,
            ItemKind::Finding => Self::Finding,
        }
    }
}

/// Counts for everything (`level` "overall"), one type or one concept.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub level: &'static str,
    pub kind: RowKind,
    pub name: String,
    pub counts: Counts,
    /// `None` when nothing was predicted (precision) or nothing was there (recall).
    pub precision: Option<f64>,
    pub recall: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub cases: usize,
    /// Cases with no pending item.
    pub reviewed_cases: usize,
    pub agreement: Agreement,
    pub rows: Vec<Row>,
    pub total_seconds: f64,
    pub mean_seconds_per_case: f64,
    /// Mean of each form scale over the cases that answered it.
    pub form_means: BTreeMap<&'static str, f64>,
}

type CountsByRow = BTreeMap<(&'static str, RowKind, String), Counts>;

fn score(counts: &mut CountsByRow, item: &Item) {
    let model = &item.reading;
    let expert = item.judged();
    let kind = RowKind::from(item.kind);
    let mut add = |reading: &Reading, f: &dyn Fn(&mut Counts)| {
        for (level, name) in [
            ("overall", "all".to_string()),
            ("type", reading.concept_type.as_str().to_string()),
            ("concept", concept_name(reading)),
        ] {
            f(counts.entry((level, kind, name)).or_default());
        }
    };
    let same_heading = model.concept_type == expert.concept_type
        && model.concept == expert.concept
        && model.assertion == expert.assertion;
    match item.verdict {
        Verdict::Accepted => add(model, &|c| c.tp += 1),
        Verdict::Rejected => add(model, &|c| c.fp += 1),
        Verdict::Corrected if same_heading => add(model, &|c| c.tp += 1),
        Verdict::Corrected => {
            add(model, &|c| c.fp += 1);
            add(expert, &|c| c.fn_ += 1);
        }
        Verdict::Added => add(expert, &|c| c.fn_ += 1),
        Verdict::Pending => {}
    }
    if item.kind == ItemKind::Finding && item.verdict != Verdict::Pending {
        score_qualifiers(counts, item);
    }
}

fn concept_name(reading: &Reading) -> String {
    reading
        .concept
        .clone()
        .unwrap_or_else(|| "(no concept)".into())
}

/// A judged finding's (heading, qualifier) pairs, the model's against the
/// expert's, into the overall and per-heading qualifier rows.
fn score_qualifiers(counts: &mut CountsByRow, item: &Item) {
    let pairs = |r: &Reading| -> Vec<(String, String)> {
        r.qualifiers
            .iter()
            .map(|q| (concept_name(r), q.clone()))
            .collect()
    };
    let model = if item.verdict == Verdict::Added {
        Vec::new()
    } else {
        pairs(&item.reading)
    };
    let expert = if item.verdict == Verdict::Rejected {
        Vec::new()
    } else {
        pairs(item.judged())
    };
    let mut add = |heading: &str, f: fn(&mut Counts)| {
        for (level, name) in [("overall", "all"), ("concept", heading)] {
            f(counts
                .entry((level, RowKind::Qualifier, name.to_string()))
                .or_default());
        }
    };
    for pair in &model {
        if expert.contains(pair) {
            add(&pair.0, |c| c.tp += 1);
        } else {
            add(&pair.0, |c| c.fp += 1);
        }
    }
    for pair in expert.iter().filter(|p| !model.contains(p)) {
        add(&pair.0, |c| c.fn_ += 1);
    }
}

fn ratio(a: usize, b: usize) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

fn counts_of<'a>(items: impl IntoIterator<Item = &'a Item>) -> CountsByRow {
    let mut counts = BTreeMap::new();
    for item in items {
        score(&mut counts, item);
    }
    counts
}

pub fn summarize(session: &Session) -> Summary {
    let mut agreement = Agreement::default();
    let all: Vec<&Item> = session.cases.iter().flat_map(|c| &c.items).collect();
    for item in all.iter().copied() {
        match item.verdict {
            Verdict::Accepted => agreement.accepted += 1,
            Verdict::Rejected => agreement.rejected += 1,
            Verdict::Added => agreement.added += 1,
            Verdict::Pending => agreement.pending += 1,
            Verdict::Corrected => {
                agreement.corrected += 1;
                let (m, e) = (&item.reading, item.judged());
                agreement.corrected_type += usize::from(m.concept_type != e.concept_type);
                agreement.corrected_concept += usize::from(m.concept != e.concept);
                agreement.corrected_assertion += usize::from(m.assertion != e.assertion);
                agreement.corrected_qualifiers += usize::from(m.qualifiers != e.qualifiers);
            }
        }
    }
    let level_order = |level: &str| {
        ["overall", "type", "concept"]
            .iter()
            .position(|l| *l == level)
    };
    let mut rows: Vec<Row> = counts_of(all)
        .into_iter()
        .map(|((level, kind, name), counts)| Row {
            level,
            kind,
            name,
            counts,
            precision: ratio(counts.tp, counts.tp + counts.fp),
            recall: ratio(counts.tp, counts.tp + counts.fn_),
        })
        .collect();
    rows.sort_by(|a, b| {
        (level_order(a.level), a.kind, &a.name).cmp(&(level_order(b.level), b.kind, &b.name))
    });
    let total_ms: f64 = session.cases.iter().map(|c| c.time_ms).sum();
    let cases = session.cases.len();
    let form_means = FORM_SCALES
        .iter()
        .filter_map(|(name, _)| {
            let values: Vec<f64> = session
                .cases
                .iter()
                .filter_map(|c| c.form.scale(name))
                .map(f64::from)
                .collect();
            (!values.is_empty()).then(|| (*name, values.iter().sum::<f64>() / values.len() as f64))
        })
        .collect();
    Summary {
        cases,
        reviewed_cases: session
            .cases
            .iter()
            .filter(|c| c.pending() == 0 && c.prediction.is_some())
            .count(),
        agreement,
        rows,
        total_seconds: total_ms / 1000.0,
        mean_seconds_per_case: if cases == 0 {
            0.0
        } else {
            total_ms / 1000.0 / cases as f64
        },
        form_means,
    }
}

/// The JSON export: the session itself (so it imports again) with its
/// summary and the export time beside it.
pub fn export_json(session: &Session, exported_ms: f64) -> String {
    let mut value = serde_json::to_value(session).expect("sessions always serialize");
    let extra = serde_json::json!({
        "summary": summarize(session),
        "exported_ms": exported_ms,
    });
    if let (Some(out), serde_json::Value::Object(extra)) = (value.as_object_mut(), extra) {
        out.extend(extra);
    }
    serde_json::to_string_pretty(&value).expect("sessions always serialize")
}

/// The CSV summary: one row for everything, each type and each concept
/// (entities and findings apart), one per case with its time and form, and
/// one for the session's closing form.
pub fn export_csv(session: &Session) -> String {
    let summary = summarize(session);
    let mut out = String::from(
        "level,kind,name,true_positives,false_positives,false_negatives,precision,recall,seconds,correctness,usefulness,interpretability,comment\n",
    );
    let fmt = |v: Option<f64>| v.map(|v| format!("{v:.4}")).unwrap_or_default();
    let form_cells = |form: &Form| -> Vec<String> {
        FORM_SCALES
            .iter()
            .map(|(name, _)| form.scale(name).map(|v| v.to_string()).unwrap_or_default())
            .chain([form.comment.clone()])
            .collect()
    };
    for row in &summary.rows {
        crate::export::push_row(
            &mut out,
            &[
                row.level,
                row.kind.as_str(),
                &row.name,
                &row.counts.tp.to_string(),
                &row.counts.fp.to_string(),
                &row.counts.fn_.to_string(),
                &fmt(row.precision),
                &fmt(row.recall),
                "",
                "",
                "",
                "",
                "",
            ],
        );
    }
    for case in &session.cases {
        let counts = counts_of(&case.items);
        let all = |kind: RowKind| {
            counts
                .get(&("overall", kind, "all".to_string()))
                .copied()
                .unwrap_or_default()
        };
        let (e, f) = (all(RowKind::Entity), all(RowKind::Finding));
        let c = e + f;
        let seconds = format!("{:.1}", case.time_ms / 1000.0);
        let form = form_cells(&case.form);
        let mut fields: Vec<&str> = vec!["case", "", &case.id];
        let numbers = [
            c.tp.to_string(),
            c.fp.to_string(),
            c.fn_.to_string(),
            fmt(ratio(c.tp, c.tp + c.fp)),
            fmt(ratio(c.tp, c.tp + c.fn_)),
        ];
        fields.extend(numbers.iter().map(String::as_str));
        fields.push(&seconds);
        fields.extend(form.iter().map(String::as_str));
        crate::export::push_row(&mut out, &fields);
    }
    if let Some(form) = &session.form {
        let cells = form_cells(form);
        let mut fields = vec!["session", "", "", "", "", "", "", ""];
        let seconds = format!("{:.1}", summary.total_seconds);
        fields.push(&seconds);
        fields.extend(cells.iter().map(String::as_str));
        crate::export::push_row(&mut out, &fields);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::review::session::tests::session_of;
    use crate::review::session::{Action, Item, Reading};
    use integrabner_core::{Assertion, ConceptType};

    fn row<'a>(s: &'a Summary, level: &str, kind: RowKind, name: &str) -> &'a Row {
        s.rows
            .iter()
            .find(|r| r.level == level && r.kind == kind && r.name == name)
            .unwrap_or_else(|| panic!("no row {level} {kind:?} {name}: {:?}", s.rows))
    }

    #[test]
    fn verdicts_score_as_documented() {
        let mut s = session_of(&["Right pleural effusion. No pneumothorax.", "Cardiomegaly."]);
        let items = s.cases[0].items.clone();
        let effusion = items
            .iter()
            .position(|i| i.kind == ItemKind::Entity && i.text == "pleural effusion")
            .unwrap();
        let pneumo = items.iter().position(|i| i.text == "pneumothorax").unwrap();
        let finding = items
            .iter()
            .position(|i| i.kind == ItemKind::Finding)
            .unwrap();
        s.apply(Action::Accept(effusion));
        let mut uncertain = items[pneumo].reading.clone();
        uncertain.assertion = Assertion::Uncertain;
        s.apply(Action::Correct(pneumo, uncertain));
        s.apply(Action::Reject(finding));
        s.apply(Action::Add(Item {
            kind: ItemKind::Finding,
            span: None,
            text: "Pneumothorax".into(),
            reading: Reading {
                concept_type: ConceptType::Disease,
                concept: Some("Pneumothorax".into()),
                assertion: Assertion::Present,
                qualifiers: Vec::new(),
            },
            score: None,
            source: String::new(),
            verdict: Verdict::Pending,
            correction: None,
        }));
        s.spend(2000.0);
        s.cases[0].form.set_scale("correctness", 3);
        s.cases[1].form.set_scale("correctness", 5);

        let sum = summarize(&s);
        assert_eq!(sum.cases, 2);
        assert_eq!(
            (
                sum.agreement.accepted,
                sum.agreement.rejected,
                sum.agreement.corrected,
                sum.agreement.added
            ),
            (1, 1, 1, 1)
        );
        assert_eq!(
            (
                sum.agreement.corrected_assertion,
                sum.agreement.corrected_type,
                sum.agreement.corrected_concept
            ),
            (1, 0, 0)
        );
        assert_eq!(
            sum.agreement.pending,
            s.cases[0].pending() + s.cases[1].pending()
        );
        let entities = row(&sum, "overall", RowKind::Entity, "all");
        assert_eq!(
            entities.counts,
            Counts {
                tp: 1,
                fp: 1,
                fn_: 1
            }
        );
        assert_eq!(entities.precision, Some(0.5));
        let findings = row(&sum, "overall", RowKind::Finding, "all");
        assert_eq!(
            findings.counts,
            Counts {
                tp: 0,
                fp: 1,
                fn_: 1
            }
        );
        assert_eq!(findings.precision, Some(0.0));
        assert_eq!(
            row(&sum, "concept", RowKind::Finding, "Pneumothorax").precision,
            None
        );
        assert_eq!(row(&sum, "type", RowKind::Entity, "disease").counts.tp, 1);
        assert_eq!(sum.mean_seconds_per_case, 1.0);
        assert_eq!(sum.form_means["correctness"], 4.0);
        assert_eq!(sum.reviewed_cases, usize::from(s.cases[0].pending() == 0));

        let csv = export_csv(&s);
        assert!(csv.starts_with("level,kind,name,true_positives,"), "{csv}");
        assert!(
            csv.contains("\noverall,entity,all,1,1,1,0.5000,0.5000,"),
            "{csv}"
        );
        assert!(
            csv.contains("\ncase,,c0,1,2,2,0.3333,0.3333,2.0,3,,,\n"),
            "{csv}"
        );
        let json: serde_json::Value = serde_json::from_str(&export_json(&s, 5.0)).unwrap();
        assert_eq!(json["summary"]["agreement"]["added"], 1);
        assert_eq!(json["model"]["bundle"], "test");
        let back = Session::from_json(&json.to_string()).unwrap();
        assert_eq!(back, s, "an export imports again");
    }

    #[test]
    fn qualifiers_are_scored_as_pairs_apart_from_the_heading() {
        let mut s = session_of(&["Small left pleural effusion. Right rib fracture."]);
        let items = s.cases[0].items.clone();
        let finding = |concept: &str| {
            items
                .iter()
                .position(|i| i.kind == ItemKind::Finding && i.text == concept)
                .unwrap_or_else(|| panic!("no {concept} finding: {items:?}"))
        };
        let (effusion, fracture) = (finding("Pleural Effusion"), finding("Fractures, Bone"));
        assert_eq!(items[effusion].reading.qualifiers, ["left", "small"]);
        // The expert says it is moderate, not small: the heading stands.
        let mut moderate = items[effusion].reading.clone();
        moderate.qualifiers = vec!["left".into(), "moderate".into()];
        s.apply(Action::Correct(effusion, moderate));
        s.apply(Action::Reject(fracture));

        let sum = summarize(&s);
        assert_eq!(sum.agreement.corrected_qualifiers, 1);
        let headings = row(&sum, "concept", RowKind::Finding, "Pleural Effusion");
        assert_eq!((headings.counts.tp, headings.counts.fp), (1, 0));
        let fracture_pairs = items[fracture].reading.qualifiers.len();
        assert!(fracture_pairs > 0, "{:?}", items[fracture].reading);
        assert_eq!(
            row(&sum, "overall", RowKind::Qualifier, "all").counts,
            Counts {
                tp: 1,
                fp: 1 + fracture_pairs,
                fn_: 1
            }
        );
        let effusion_pairs = row(&sum, "concept", RowKind::Qualifier, "Pleural Effusion");
        assert_eq!(effusion_pairs.precision, Some(0.5));
        assert!(export_csv(&s).contains("\noverall,qualifier,all,1,"));
    }
}
