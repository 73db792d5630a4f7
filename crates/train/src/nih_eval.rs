//! How image findings are scored on an NIH split: ROC-AUC with a 95 %
//! bootstrap interval that resamples patients, over all images and over each
//! source resolution apart (the 64-px thumbnails are far harder than the
//! radiographs stored at 512 px, and a single number hides that).

use integrabner_core::metrics::{roc_auc, roc_auc_interval};
use integrabner_core::nih::{NihImage, ABNORMAL};
use std::collections::BTreeMap;
use std::fmt;

/// Draws of the bootstrap, and their seed, so that the intervals in a
/// report can be reproduced.
const BOOTSTRAP_RESAMPLES: usize = 2000;
const BOOTSTRAP_SEED: u64 = 2026;

/// One output's ROC-AUC over some images.
pub struct AucEstimate {
    pub images: usize,
    pub positives: usize,
    pub auc: Option<f64>,
    /// 95 % percentile-bootstrap interval, patients resampled.
    pub interval: Option<(f64, f64)>,
}

impl AucEstimate {
    /// `pairs[i]` (score, target) belongs to `images[i]`.
    pub fn new(images: &[&NihImage], pairs: &[(f32, bool)]) -> Self {
        let mut by_patient: BTreeMap<&str, Vec<(f32, bool)>> = BTreeMap::new();
        for (image, &pair) in images.iter().zip(pairs) {
            by_patient
                .entry(image.patient_id.as_str())
                .or_default()
                .push(pair);
        }
        let clusters: Vec<Vec<(f32, bool)>> = by_patient.into_values().collect();
        Self {
            images: pairs.len(),
            positives: pairs.iter().filter(|p| p.1).count(),
            auc: roc_auc(pairs),
            interval: roc_auc_interval(&clusters, BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED),
        }
    }
}

/// "0.781 (0.723–0.831)", or "–" without both classes.
impl fmt::Display for AucEstimate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.auc, self.interval) {
            (Some(auc), Some((low, high))) => write!(f, "{auc:.3} ({low:.3}–{high:.3})"),
            (Some(auc), None) => write!(f, "{auc:.3}"),
            _ => f.write_str("–"),
        }
    }
}

/// Which images an estimate covers: all, or those of one source resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    All,
    SourceResolution(u32),
}

/// The order of a report's columns: all images first, then the larger
/// sources before the smaller.
impl Ord for Part {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let key = |p: &Part| match p {
            Part::All => (0, std::cmp::Reverse(0)),
            Part::SourceResolution(side) => (1, std::cmp::Reverse(*side)),
        };
        key(self).cmp(&key(other))
    }
}

impl PartialOrd for Part {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// "all", "1024-px source", "64-px source".
impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Part::All => f.write_str("all"),
            Part::SourceResolution(side) => write!(f, "{side}-px source"),
        }
    }
}

/// The estimate over all `images`, then over each source resolution apart,
/// in `Part` order.
pub fn by_source_resolution(
    images: &[&NihImage],
    pairs: &[(f32, bool)],
) -> Vec<(Part, AucEstimate)> {
    let mut parts: Vec<Part> = images
        .iter()
        .map(|i| Part::SourceResolution(i.source_resolution))
        .collect();
    parts.sort_unstable();
    parts.dedup();
    let mut out = vec![(Part::All, AucEstimate::new(images, pairs))];
    for part in parts {
        let (part_images, part_pairs): (Vec<&NihImage>, Vec<(f32, bool)>) = images
            .iter()
            .zip(pairs)
            .filter(|(i, _)| part == Part::SourceResolution(i.source_resolution))
            .map(|(&i, &p)| (i, p))
            .unzip();
        out.push((part, AucEstimate::new(&part_images, &part_pairs)));
    }
    out
}

/// Position of the `abnormal` score among a model's outputs.
pub fn abnormal_index(outputs: &[String]) -> anyhow::Result<usize> {
    outputs
        .iter()
        .position(|o| o == ABNORMAL)
        .ok_or_else(|| anyhow::anyhow!("the image outputs have no {ABNORMAL}"))
}

/// A Markdown table of `by_source_resolution` results: a row per split, a
/// column per part any split has ("–" where a split lacks it), each cell
/// "AUC (interval) (images / positives)".
pub fn source_resolution_table(splits: &[(&str, Vec<(Part, AucEstimate)>)]) -> String {
    let mut columns: Vec<Part> = splits
        .iter()
        .flat_map(|(_, parts)| parts.iter().map(|(p, _)| *p))
        .collect();
    columns.sort_unstable();
    columns.dedup();
    let names: Vec<String> = columns.iter().map(Part::to_string).collect();
    let mut table = format!(
        "| split | {} |\n|---|{}\n",
        names.join(" | "),
        "---|".repeat(columns.len())
    );
    for (split, parts) in splits {
        let cells: Vec<String> = columns
            .iter()
            .map(|c| match parts.iter().find(|(p, _)| p == c) {
                Some((_, e)) => format!("{e} ({} / {})", e.images, e.positives),
                None => "–".to_string(),
            })
            .collect();
        table.push_str(&format!("| {split} | {} |\n", cells.join(" | ")));
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use integrabner_core::split::Split;

    fn image(patient: &str, source_resolution: u32) -> NihImage {
        NihImage {
            file: format!("{patient}.png"),
            patient_id: patient.to_string(),
            source_resolution,
            concepts: Vec::new(),
            split: Split::Test,
        }
    }

    #[test]
    fn each_source_resolution_is_scored_apart() {
        // Large images perfectly ranked, thumbnails ranked backwards.
        let images: Vec<NihImage> = (0..40)
            .map(|i| image(&i.to_string(), if i < 20 { 1024 } else { 64 }))
            .collect();
        let refs: Vec<&NihImage> = images.iter().collect();
        let pairs: Vec<(f32, bool)> = (0..40)
            .map(|i| {
                let positive = i % 2 == 0;
                let score = if (i < 20) == positive { 0.9 } else { 0.1 };
                (score + i as f32 / 1000.0, positive)
            })
            .collect();
        let parts = by_source_resolution(&refs, &pairs);
        let names: Vec<String> = parts.iter().map(|p| p.0.to_string()).collect();
        assert_eq!(names, ["all", "1024-px source", "64-px source"]);
        assert_eq!(parts[1].1.auc, Some(1.0));
        assert_eq!(parts[2].1.auc, Some(0.0));
        assert_eq!((parts[0].1.images, parts[0].1.positives), (40, 20));
        let (low, high) = parts[0].1.interval.unwrap();
        assert!(low < parts[0].1.auc.unwrap() && parts[0].1.auc.unwrap() < high);
        assert_eq!(parts[1].1.to_string(), "1.000 (1.000–1.000)");
    }

    #[test]
    fn the_table_has_a_column_for_every_part_of_any_split() {
        let large = [image("1", 1024), image("2", 1024)];
        let small = [image("3", 64), image("4", 64)];
        let pairs = [(0.9, true), (0.1, false)];
        let score =
            |images: &[NihImage]| by_source_resolution(&images.iter().collect::<Vec<_>>(), &pairs);
        let table =
            source_resolution_table(&[("validation", score(&large)), ("test", score(&small))]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "| split | all | 1024-px source | 64-px source |");
        assert_eq!(lines[1], "|---|---|---|---|");
        assert!(lines[2].starts_with("| validation | 1.000"), "{table}");
        assert!(lines[2].ends_with("(2 / 1) | – |"), "{table}");
        assert!(lines[3].contains("| – | 1.000"), "{table}");
        assert_eq!(abnormal_index(&["x".into(), ABNORMAL.into()]).unwrap(), 1);
        assert!(abnormal_index(&["x".into()]).is_err());
    }
}
