//! Property tests on what an expert hands the review mode: case files
//! (JSONL, CSV, OpenI `.tgz`) and imported sessions. Any bytes give cases or
//! a reason, never a panic (a panic in wasm kills the worker or the page),
//! and an imported session can be shown, summarized and exported whatever
//! it holds. proptest's default budget (256 cases, or `PROPTEST_CASES`).

use integrabner_core::RulePipeline;
use integrabner_web::highlight::segments;
use integrabner_web::review::cases::{read_cases, MAX_CASES};
use integrabner_web::review::session::{ModelVersion, Session};
use integrabner_web::review::summary::{export_csv, export_json, summarize};
use proptest::prelude::*;
use std::sync::OnceLock;

fn case_file_name() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just("cases.jsonl"),
        Just("cases.csv"),
        Just("NLMCXR_reports.tgz"),
        Just("cases.ndjson"),
        Just("notes.txt"),
    ]
}

/// Lines that look like case files, with damage mixed in.
fn case_file_text() -> impl Strategy<Value = Vec<u8>> {
    let line = prop_oneof![
        Just(r#"{"id": "c1", "text": "No pneumothorax.", "image": "c1.png"}"#.to_string()),
        Just(r#"{"id": "c2", "text": "Right pleural effusion."}"#.to_string()),
        Just("id,text,image".to_string()),
        Just("c3,\"Mild cardiomegaly, no effusion.\",c3.png".to_string()),
        Just(r#"{"id": 7, "text": null}"#.to_string()),
        any::<String>(),
    ];
    proptest::collection::vec(line, 0..12).prop_map(|lines| lines.join("\n").into_bytes())
}

fn case_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => case_file_text(),
        1 => proptest::collection::vec(any::<u8>(), 0..2048),
        1 => proptest::collection::vec(any::<u8>(), 0..2048)
            .prop_map(|rest| [&[0x1f, 0x8b, 0x08][..], &rest].concat()),
    ]
}

proptest! {
    #[test]
    fn fuzz_case_files_give_cases_or_a_reason(
        name in case_file_name(),
        bytes in case_bytes(),
        images in proptest::collection::vec(
            prop_oneof![Just("c1.png".to_string()), Just("../x/c3.png".to_string()), any::<String>()],
            0..4,
        ),
    ) {
        match read_cases(name, &bytes, &images) {
            Ok(parsed) => {
                prop_assert!(!parsed.cases.is_empty() && parsed.cases.len() <= MAX_CASES);
                for case in &parsed.cases {
                    if let Some(image) = &case.image {
                        prop_assert!(images.iter().any(|i| i.ends_with(image.as_str())), "{image}");
                    }
                }
            }
            Err(reason) => prop_assert!(!reason.is_empty()),
        }
    }
}

/// A real exported session: three cases read from a JSONL file as the page
/// reads them, each analysed by the rule pipeline.
fn exported_session() -> &'static String {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        let jsonl = [
            "FINDINGS: Small right pleural effusion. No pneumothorax.",
            "IMPRESSION: Mild cardiomegaly. Enteric tube in the stomach.",
            "🫁 Ünïcödé: no focal consolidation\u{200B}.",
        ]
        .iter()
        .enumerate()
        .map(|(i, text)| serde_json::json!({"id": format!("c{i}"), "text": text}).to_string())
        .collect::<Vec<_>>()
        .join("\n");
        let mut cases = read_cases("cases.jsonl", jsonl.as_bytes(), &[])
            .unwrap()
            .cases;
        let pipeline = RulePipeline::embedded();
        for case in &mut cases {
            case.analysed(pipeline.predict(&case.id, &case.text).unwrap());
        }
        let model = ModelVersion {
            bundle: "fuzz".into(),
            vocabulary: "1.0.0".into(),
        };
        export_json(
            &Session::new(vec!["cases.jsonl".into()], model, 0.0, cases),
            1.0,
        )
    })
}

/// The exported session with some bytes changed or numbers replaced.
fn damaged_session() -> impl Strategy<Value = String> {
    let number = prop_oneof![
        Just("-1".to_string()),
        Just("1e308".to_string()),
        Just("18446744073709551615".to_string()),
        Just("999999".to_string()),
        any::<u32>().prop_map(|n| n.to_string()),
    ];
    (
        proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        proptest::collection::vec((any::<usize>(), number), 0..4),
    )
        .prop_map(|(byte_edits, number_edits)| {
            let mut json = exported_session().clone();
            // Swap numbers for hostile ones (offsets, indexes, times).
            for (which, value) in number_edits {
                let digits: Vec<usize> = json
                    .char_indices()
                    .filter(|(i, c)| {
                        c.is_ascii_digit() && !json[..*i].ends_with(|p: char| p.is_ascii_digit())
                    })
                    .map(|(i, _)| i)
                    .collect();
                if let Some(&start) = digits.get(which % digits.len().max(1)) {
                    let end = json[start..]
                        .find(|c: char| !c.is_ascii_digit())
                        .map_or(json.len(), |n| start + n);
                    json.replace_range(start..end, &value);
                }
            }
            let mut bytes = json.into_bytes();
            for (at, value) in byte_edits {
                let at = at % bytes.len();
                bytes[at] = value;
            }
            String::from_utf8_lossy(&bytes).into_owned()
        })
}

proptest! {
    #[test]
    fn fuzz_imported_sessions_are_refused_or_usable(json in prop_oneof![
        4 => damaged_session(),
        1 => any::<String>(),
    ]) {
        if let Ok(session) = Session::from_json(&json) {
            prop_assert!(session.case().is_some());
            for case in &session.cases {
                if let Some(p) = &case.prediction {
                    let _ = segments(&case.text, &p.entities);
                }
                let _ = case.pending();
            }
            let _ = summarize(&session);
            let _ = export_csv(&session);
            prop_assert!(Session::from_json(&session.to_json()).is_ok());
        }
    }
}
