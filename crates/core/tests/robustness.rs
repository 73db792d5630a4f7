//! Bad and unusual input: clear errors, no panics, offsets that stay in bounds.

mod common;
use common::pipeline;
use integrabner_core::pipeline::{InputError, MAX_REPORT_CHARS};

#[test]
fn empty_and_blank_reports_are_errors() {
    assert_eq!(pipeline().predict("x", "").unwrap_err(), InputError::Empty);
    assert_eq!(
        pipeline().predict("x", " \n\t ").unwrap_err(),
        InputError::Empty
    );
}

#[test]
fn too_long_reports_are_errors_not_truncations() {
    let text = "a".repeat(MAX_REPORT_CHARS + 1);
    assert_eq!(
        pipeline().predict("x", &text).unwrap_err(),
        InputError::TooLong(MAX_REPORT_CHARS + 1)
    );
}

#[test]
fn a_100k_char_report_is_labelled() {
    let sentence = "Small right pleural effusion. No pneumothorax. ";
    let text = sentence.repeat(100_000 / sentence.len() + 1);
    let p = pipeline().predict("big", &text).unwrap();
    assert!(p.entities.len() > 4000);
    assert_eq!(p.findings.len(), 1);
}

#[test]
fn unusual_unicode_keeps_char_offsets_exact() {
    let text = "Ünïcödé 🫁 test: right pleural effusion\u{200B}; no pneumothorax. \u{0000}\u{FEFF} مرحبا cardiomegaly\u{0301}. e\u{0301}dema";
    let p = pipeline().predict("u", text).unwrap();
    let chars: Vec<char> = text.chars().collect();
    assert!(p.entities.len() >= 2);
    for e in &p.entities {
        assert!(e.start < e.end && e.end <= chars.len());
        assert_eq!(chars[e.start..e.end].iter().collect::<String>(), e.text);
    }
}

#[test]
fn binary_garbage_does_not_panic() {
    let garbage: String = (0u32..5000)
        .filter_map(|i| char::from_u32((i * 7919) % 0x2FFFF))
        .collect();
    let p = pipeline().predict("g", &garbage).unwrap();
    let n = garbage.chars().count();
    assert!(p.entities.iter().all(|e| e.end <= n));
}

#[test]
fn a_binary_file_pasted_as_text_is_rejected_with_a_reason() {
    // What a browser's clipboard or `from_utf8_lossy` makes of a PNG's bytes.
    let bytes: Vec<u8> = b"\x89PNG\r\n\x1a\n"
        .iter()
        .copied()
        .chain((0u32..4000).map(|i| (i.wrapping_mul(2654435761) >> 24) as u8))
        .collect();
    let text = String::from_utf8_lossy(&bytes);
    match pipeline().predict("bin", &text) {
        Err(InputError::Binary { non_text, chars }) => {
            assert!(non_text * 20 > chars, "{non_text} of {chars}")
        }
        other => panic!("expected a binary-input error, got {other:?}"),
    }
    // One stray control character in a real report is tolerated.
    let report = "Right pleural effusion.\u{0007} No pneumothorax.";
    assert_eq!(pipeline().predict("ok", report).unwrap().findings.len(), 1);
}

#[test]
fn output_serializes_in_the_documented_shape() {
    let p = pipeline()
        .predict("r1", "Right pleural effusion. No pneumothorax.")
        .unwrap();
    let v: serde_json::Value = serde_json::to_value(&p).unwrap();
    assert_eq!(v["id"], "r1");
    let f = &v["findings"][0];
    assert_eq!(f["concept"], "Pleural Effusion");
    assert_eq!(f["type"], "disease");
    assert_eq!(f["source"], "dictionary");
    let e = &v["entities"][1];
    assert_eq!(e["label"], "DISEASE");
    assert_eq!(e["assertion"], "absent");
    assert_eq!(e["text"], "pneumothorax");
    let keys: Vec<&str> = e.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    assert_eq!(keys.len(), 8, "{keys:?}");
}

#[test]
fn every_nih_radiograph_passes_the_plausibility_checks() {
    let root =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/nih-cxr");
    let mut checked = 0;
    for dir in ["images", "images-64"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            if let Err(e) = integrabner_core::image_input::decode(&bytes) {
                panic!("{}: {e}", path.display());
            }
            checked += 1;
        }
    }
    assert!(checked > 800, "{checked} images");
}
