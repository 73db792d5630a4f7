//! `integrabner predict --scores` on the fixed test data, held against a
//! golden file written before a refactor: every report of the OpenI test
//! split (report model), every NIH test image (image model), and the first
//! test reports each paired with a test image (fusion). The pairs are not
//! clinical cases; they only make the fusion path run on real inputs.
//!
//! Strings and counts must match exactly, probabilities within `TOLERANCE`.
//! After a change that is meant to change outputs, rewrite the file with
//! `INTEGRABNER_BLESS=1 cargo test -p integrabner-cli --test golden` and say
//! why in the commit.

mod common;

use common::{bin, shared, workspace};
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use integrabner_core::nih::read_labels;
use integrabner_core::openi::{read_tgz, Corpus};
use integrabner_core::split::{split_of, Split};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Largest difference allowed between a probability and its golden value:
/// room for a changed order of float operations, far below any threshold
/// margin that matters.
const TOLERANCE: f64 = 1e-4;
/// Test reports paired with a test image.
const PAIRS: usize = 40;

fn golden_path() -> PathBuf {
    workspace().join("crates/cli/tests/golden/predict-scores.jsonl.gz")
}

/// The golden input: one JSONL line per case, ids chosen here so that the
/// comparison does not depend on how `predict` names OpenI reports.
fn golden_input(dir: &Path) -> PathBuf {
    let archive = std::fs::File::open(shared("openi/NLMCXR_reports.tgz")).unwrap();
    let mut corpus = Corpus::default();
    read_tgz(archive, &mut corpus).unwrap();
    corpus.sort();
    let reports: Vec<_> = corpus
        .reports
        .iter()
        .filter(|r| split_of(&r.id) == Split::Test)
        .collect();
    let nih = shared("nih-cxr");
    let labels = std::fs::read_to_string(nih.join("labels.csv")).unwrap();
    let images: Vec<PathBuf> = read_labels(&labels)
        .unwrap()
        .into_iter()
        .filter(|i| i.split == Split::Test)
        .map(|i| nih.join(i.file))
        .collect();
    assert!(reports.len() > 300 && images.len() > 100 && images.len() > PAIRS);
    let mut lines = Vec::new();
    for (i, r) in reports.iter().enumerate() {
        lines.push(json!({"id": format!("report-{i}"), "text": r.text()}));
    }
    for (i, image) in images.iter().enumerate() {
        lines.push(json!({"id": format!("image-{i}"), "image": image}));
    }
    for (i, (r, image)) in reports.iter().zip(&images).take(PAIRS).enumerate() {
        lines.push(json!({"id": format!("pair-{i}"), "text": r.text(), "image": image}));
    }
    let path = dir.join("golden-input.jsonl");
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&path, text).unwrap();
    path
}

/// Where `a` and `b` differ beyond `TOLERANCE`, as a JSON path; `largest`
/// keeps the largest difference of two probabilities seen.
fn difference(a: &Value, b: &Value, at: &str, largest: &mut f64) -> Option<String> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            *largest = largest.max((x - y).abs());
            ((x - y).abs() > TOLERANCE).then(|| format!("{at}: {x} != {y}"))
        }
        (Value::Array(x), Value::Array(y)) => {
            if x.len() != y.len() {
                return Some(format!("{at}: {} items != {}", x.len(), y.len()));
            }
            x.iter()
                .zip(y)
                .enumerate()
                .find_map(|(i, (x, y))| difference(x, y, &format!("{at}[{i}]"), largest))
        }
        (Value::Object(x), Value::Object(y)) => {
            let keys = |o: &serde_json::Map<String, Value>| o.keys().cloned().collect::<Vec<_>>();
            if keys(x) != keys(y) {
                return Some(format!("{at}: keys {:?} != {:?}", keys(x), keys(y)));
            }
            x.iter()
                .find_map(|(k, v)| difference(v, &y[k], &format!("{at}.{k}"), largest))
        }
        _ => (a != b).then(|| format!("{at}: {a} != {b}")),
    }
}

#[test]
fn predict_scores_on_the_test_data_match_the_golden_file() {
    let dir = tempfile::tempdir().unwrap();
    let input = golden_input(dir.path());
    let out = bin()
        .current_dir(workspace())
        .args(["predict", "--scores"])
        .arg(&input)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = golden_path();
    if std::env::var_os("INTEGRABNER_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut gz = GzEncoder::new(
            std::fs::File::create(&path).unwrap(),
            flate2::Compression::best(),
        );
        gz.write_all(&out.stdout).unwrap();
        gz.finish().unwrap();
        return;
    }
    let mut golden = String::new();
    GzDecoder::new(std::fs::File::open(&path).unwrap())
        .read_to_string(&mut golden)
        .unwrap();
    let now = String::from_utf8(out.stdout).unwrap();
    let (golden, now): (Vec<&str>, Vec<&str>) = (golden.lines().collect(), now.lines().collect());
    assert_eq!(golden.len(), now.len(), "number of cases");
    let (mut fused, mut largest) = (0, 0.0);
    for (g, n) in golden.iter().zip(&now) {
        let (g, n): (Value, Value) = (
            serde_json::from_str(g).unwrap(),
            serde_json::from_str(n).unwrap(),
        );
        let id = g["id"].as_str().unwrap();
        if let Some(d) = difference(&g, &n, id, &mut largest) {
            panic!("{d}");
        }
        fused += usize::from(
            g["findings"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["source"] == "fusion"),
        );
    }
    eprintln!("largest difference of a probability from the golden file: {largest:e}");
    // The golden file exercises every path it claims to.
    assert!(fused > 0, "no pair had a fused finding");
}
