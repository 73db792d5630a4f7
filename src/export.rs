//! Download formats of one result: JSON in the `integrabner predict` schema,
//! and a flat CSV of findings and entities for spreadsheets.

use integrabner_core::Prediction;

/// The JSON line that `integrabner predict` would write for this report.
pub fn prediction_json(p: &Prediction) -> String {
    serde_json::to_string_pretty(p).expect("predictions always serialize")
}

/// One row per finding, then one per entity:
/// `kind,concept,type,label,assertion,probability,source,qualifiers,start,end,text`
/// (qualifiers joined by `/`, as OpenI writes them after the heading; an
/// entity's are those its modifier words gave).
pub fn prediction_csv(p: &Prediction) -> String {
    let mut out = String::from(
        "kind,concept,type,label,assertion,probability,source,qualifiers,start,end,text\n",
    );
    for f in &p.findings {
        push_row(
            &mut out,
            &[
                "finding",
                &f.concept,
                f.concept_type.as_str(),
                "",
                "present",
                &format!("{:.4}", f.probability),
                f.source.as_str(),
                &f.qualifiers.join("/"),
                "",
                "",
                "",
            ],
        );
    }
    for e in &p.entities {
        push_row(
            &mut out,
            &[
                "entity",
                e.concept.as_deref().unwrap_or(""),
                "",
                e.label.entity_label(),
                e.assertion.as_str(),
                &format!("{:.4}", e.score),
                &e.source,
                &e.modifiers
                    .iter()
                    .flat_map(|m| m.qualifiers.iter().map(String::as_str))
                    .collect::<Vec<_>>()
                    .join("/"),
                &e.start.to_string(),
                &e.end.to_string(),
                &e.text,
            ],
        );
    }
    out
}

/// Quotes every field that needs it (RFC 4180), and defuses cells that a
/// spreadsheet would run as a formula.
pub(crate) fn push_row(out: &mut String, fields: &[&str]) {
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let guarded = if field.starts_with(['=', '+', '-', '@']) {
            format!("'{field}")
        } else {
            field.to_string()
        };
        if guarded.contains([',', '"', '\n', '\r']) {
            out.push('"');
            out.push_str(&guarded.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(&guarded);
        }
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use integrabner_core::RulePipeline;

    #[test]
    fn csv_has_a_row_per_finding_and_entity_and_quotes_text() {
        let p = RulePipeline::embedded()
            .predict(
                "r",
                "Small right pleural effusion, \"loculated\". No pneumothorax.",
            )
            .unwrap();
        let csv = prediction_csv(&p);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 1 + p.findings.len() + p.entities.len());
        assert!(
            lines[1].starts_with(
                "finding,Pleural Effusion,disease,,present,0.9500,dictionary,right/small,"
            ),
            "{}",
            lines[1]
        );
        assert!(
            csv.contains("entity,Pneumothorax,,DISEASE,absent,"),
            "{csv}"
        );
    }

    #[test]
    fn formula_like_cells_are_defused_and_quoted_cells_escaped() {
        let mut out = String::new();
        push_row(&mut out, &["=1+1", "a,\"b\""]);
        assert_eq!(out, "'=1+1,\"a,\"\"b\"\"\"\n");
    }

    #[test]
    fn json_export_is_the_predict_schema() {
        let p = RulePipeline::embedded()
            .predict("r", "No effusion.")
            .unwrap();
        let back: Prediction = serde_json::from_str(&prediction_json(&p)).unwrap();
        assert_eq!(back, p);
    }
}
