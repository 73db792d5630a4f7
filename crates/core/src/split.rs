//! The deterministic train / validation / test split of OpenI by report id.
//!
//! Recipe (version 1): bucket = first 8 bytes of SHA-256(`openi-split-v1:` + n)
//! read big-endian, modulo 10, where n is the report's number (`8` for
//! `CXR8`); buckets 0–7 train, 8 validation, 9 test.
//! The split depends on the id alone, so adding reports never moves others.

use crate::openi::{report_number, report_number_text, report_uid};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const SPLIT_VERSION: &str = "openi-split-v1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Validation,
    Test,
}

impl Split {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Train => "train",
            Self::Validation => "validation",
            Self::Test => "test",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "train" => Some(Self::Train),
            "validation" => Some(Self::Validation),
            "test" => Some(Self::Test),
            _ => None,
        }
    }
}

/// Recipe of the NIH ChestX-ray split, by patient so that no patient's images
/// are on both sides: bucket of SHA-256(`nih-split-v1:` + patient id) as
/// above; buckets 0–6 train, 7 validation, 8–9 test (a larger test share,
/// because the image set is small and ROC-AUC needs positives).
pub const NIH_SPLIT_VERSION: &str = "nih-split-v1";

/// Bucket 0..10 of `id` under a split recipe `version`.
fn bucket(version: &str, id: &str) -> u64 {
    let digest = Sha256::digest(format!("{version}:{id}").as_bytes());
    u64::from_be_bytes(digest[..8].try_into().expect("8 bytes")) % 10
}

/// The split a report belongs to, by its id (`CXR8`; the bare number `8`
/// names the same report).
pub fn split_of(report_id: &str) -> Split {
    match bucket(SPLIT_VERSION, report_number_text(report_id)) {
        0..=7 => Split::Train,
        8 => Split::Validation,
        _ => Split::Test,
    }
}

/// The split of an NIH patient's images.
pub fn nih_split_of(patient_id: &str) -> Split {
    match bucket(NIH_SPLIT_VERSION, patient_id) {
        0..=6 => Split::Train,
        7 => Split::Validation,
        _ => Split::Test,
    }
}

/// Renders the split file: a header, then `id<TAB>split` sorted by report number.
pub fn render_split_file<'a>(ids: impl IntoIterator<Item = &'a str>) -> String {
    let mut ids: Vec<String> = ids.into_iter().map(report_uid).collect();
    ids.sort_by_key(|id| (report_number(id), id.clone()));
    ids.dedup();
    let mut out = format!("# {SPLIT_VERSION}: bucket = SHA-256(\"{SPLIT_VERSION}:\" + n)[0..8] big-endian mod 10, n the number of id CXRn; 0-7 train, 8 validation, 9 test\nid\tsplit\n");
    for id in ids {
        out.push_str(&format!("{id}\t{}\n", split_of(&id).as_str()));
    }
    out
}

/// Parses a split file back into (id, split) pairs.
pub fn parse_split_file(text: &str) -> Result<Vec<(String, Split)>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.starts_with('#') && !l.trim().is_empty() && *l != "id\tsplit")
        .map(|(n, l)| {
            let (id, split) = l
                .split_once('\t')
                .ok_or_else(|| format!("split file line {}: expected id<TAB>split", n + 1))?;
            let split = Split::parse(split.trim())
                .ok_or_else(|| format!("split file line {}: unknown split {split:?}", n + 1))?;
            // Files written before ids were OpenI's uIds list bare numbers.
            Ok((report_uid(id), split))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_stable_and_round_trips() {
        let ids = ["1", "2", "3", "10", "2000"];
        let file = render_split_file(ids);
        let parsed = parse_split_file(&file).unwrap();
        assert_eq!(parsed.len(), 5);
        for (id, s) in parsed {
            assert_eq!(s, split_of(&id));
        }
    }

    #[test]
    fn a_uid_and_its_number_are_one_report() {
        for n in 1..=300 {
            assert_eq!(split_of(&format!("CXR{n}")), split_of(&n.to_string()));
        }
        let file = render_split_file(["10", "CXR2"]);
        let ids: Vec<String> = parse_split_file(&file)
            .unwrap()
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(ids, ["CXR2", "CXR10"]);
        // A file of bare numbers (before uIds) reads as uIds.
        let old = parse_split_file("id\tsplit\n8\ttest\n").unwrap();
        assert_eq!(old, [("CXR8".to_string(), Split::Test)]);
    }

    #[test]
    fn proportions_are_about_80_10_10() {
        let ids: Vec<String> = (1..=5000).map(|i| i.to_string()).collect();
        let test = ids.iter().filter(|i| split_of(i) == Split::Test).count();
        let val = ids
            .iter()
            .filter(|i| split_of(i) == Split::Validation)
            .count();
        assert!((400..600).contains(&test), "{test}");
        assert!((400..600).contains(&val), "{val}");
    }
}
