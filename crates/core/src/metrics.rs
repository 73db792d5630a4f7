//! Document-level multi-label metrics: per-concept counts, micro and macro
//! precision / recall / F1; ROC-AUC with a bootstrap interval.

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub tp: usize,
    pub fp: usize,
    pub fn_: usize,
}

impl std::ops::Add for Counts {
    type Output = Self;

    fn add(self, other: Self) -> Self {
        Self {
            tp: self.tp + other.tp,
            fp: self.fp + other.fp,
            fn_: self.fn_ + other.fn_,
        }
    }
}

impl Counts {
    pub fn support(&self) -> usize {
        self.tp + self.fn_
    }

    pub fn prf(&self) -> Prf {
        let p = ratio(self.tp, self.tp + self.fp);
        let r = ratio(self.tp, self.tp + self.fn_);
        Prf {
            precision: p,
            recall: r,
            f1: if p + r > 0.0 {
                2.0 * p * r / (p + r)
            } else {
                0.0
            },
        }
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Prf {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

/// Area under the ROC curve of scores against binary outcomes: the chance
/// that a random positive scores above a random negative (ties count half).
/// `None` when either class is missing.
pub fn roc_auc(pairs: &[(f32, bool)]) -> Option<f64> {
    let mut sorted: Vec<(f32, bool)> = pairs.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let positives = sorted.iter().filter(|p| p.1).count();
    let negatives = sorted.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    // Sum of the positives' ranks, tied scores sharing their mean rank.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j < sorted.len() && sorted[j].0 == sorted[i].0 {
            j += 1;
        }
        let mean_rank = (i + 1 + j) as f64 / 2.0;
        rank_sum += mean_rank * sorted[i..j].iter().filter(|p| p.1).count() as f64;
        i = j;
    }
    let p = positives as f64;
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * negatives as f64))
}

/// The 95 % percentile-bootstrap interval of `roc_auc` over pairs that come
/// in clusters (one patient's images): whole clusters are drawn with
/// replacement, because a patient's images are not independent and counting
/// them as such would make the interval too narrow. Draws that lack a class
/// are left out; `None` when most draws do (or `resamples` is 0). `seed`
/// makes the interval reproducible.
pub fn roc_auc_interval(
    clusters: &[Vec<(f32, bool)>],
    resamples: usize,
    seed: u64,
) -> Option<(f64, f64)> {
    if clusters.is_empty() {
        return None;
    }
    let mut rng = crate::rng::SplitMix64::new(seed);
    let mut aucs: Vec<f64> = (0..resamples)
        .filter_map(|_| {
            let drawn: Vec<(f32, bool)> = (0..clusters.len())
                .flat_map(|_| &clusters[(rng.next_u64() % clusters.len() as u64) as usize])
                .copied()
                .collect();
            roc_auc(&drawn)
        })
        .collect();
    if aucs.is_empty() || aucs.len() * 2 < resamples {
        return None;
    }
    aucs.sort_by(f64::total_cmp);
    let at = |q: f64| aucs[((aucs.len() - 1) as f64 * q).round() as usize];
    Some((at(0.025), at(0.975)))
}

/// Accumulates gold and predicted label sets over documents.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MultiLabelEval {
    pub per_label: BTreeMap<String, Counts>,
    pub documents: usize,
}

impl MultiLabelEval {
    pub fn add(&mut self, gold: &BTreeSet<String>, predicted: &BTreeSet<String>) {
        self.documents += 1;
        for l in gold.union(predicted) {
            let c = self.per_label.entry(l.clone()).or_default();
            match (gold.contains(l), predicted.contains(l)) {
                (true, true) => c.tp += 1,
                (true, false) => c.fn_ += 1,
                (false, true) => c.fp += 1,
                (false, false) => unreachable!("label comes from one of the sets"),
            }
        }
    }

    pub fn total(&self) -> Counts {
        self.per_label
            .values()
            .fold(Counts::default(), |a, &c| a + c)
    }

    pub fn micro(&self) -> Prf {
        self.total().prf()
    }

    /// Mean over labels with gold support (labels only ever predicted are left out,
    /// as is usual for macro-F1 over concepts with test support).
    pub fn macro_supported(&self) -> Prf {
        let supported: Vec<Prf> = self
            .per_label
            .values()
            .filter(|c| c.support() > 0)
            .map(Counts::prf)
            .collect();
        let n = supported.len().max(1) as f64;
        Prf {
            precision: supported.iter().map(|p| p.precision).sum::<f64>() / n,
            recall: supported.iter().map(|p| p.recall).sum::<f64>() / n,
            f1: supported.iter().map(|p| p.f1).sum::<f64>() / n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` pairs whose scores overlap between the classes: positives at
    /// i/n + 0.3, negatives at i/n.
    fn overlapping(n: usize) -> Vec<(f32, bool)> {
        (0..n)
            .map(|i| {
                let positive = i % 2 == 0;
                (
                    i as f32 / n as f32 + if positive { 0.3 } else { 0.0 },
                    positive,
                )
            })
            .collect()
    }

    #[test]
    fn the_bootstrap_interval_holds_the_estimate_and_narrows_with_data() {
        let singles = |pairs: Vec<(f32, bool)>| -> Vec<Vec<(f32, bool)>> {
            pairs.into_iter().map(|p| vec![p]).collect()
        };
        let small = singles(overlapping(40));
        let auc = roc_auc(&overlapping(40)).unwrap();
        let (low, high) = roc_auc_interval(&small, 500, 1).unwrap();
        assert!(low < auc && auc < high, "{low} {auc} {high}");
        assert_eq!(roc_auc_interval(&small, 500, 1), Some((low, high)));
        let (big_low, big_high) = roc_auc_interval(&singles(overlapping(400)), 500, 1).unwrap();
        assert!(big_high - big_low < (high - low) / 2.0);
        // Perfectly separated classes stay separated in every draw.
        let separated = singles(vec![(0.9, true), (0.8, true), (0.2, false), (0.1, false)]);
        assert_eq!(roc_auc_interval(&separated, 200, 1), Some((1.0, 1.0)));
        assert_eq!(roc_auc_interval(&singles(vec![(0.5, true)]), 200, 1), None);
        assert_eq!(roc_auc_interval(&[], 200, 1), None);
    }

    #[test]
    fn a_cluster_is_drawn_whole() {
        // Five copies of each pair: as five independent pairs they look like
        // five times the evidence; as one patient's five images they are not.
        let pairs = overlapping(40);
        let as_clusters: Vec<Vec<(f32, bool)>> = pairs.iter().map(|&p| vec![p; 5]).collect();
        let as_singles: Vec<Vec<(f32, bool)>> =
            pairs.iter().flat_map(|&p| vec![vec![p]; 5]).collect();
        let width = |c: &[Vec<(f32, bool)>]| {
            let (low, high) = roc_auc_interval(c, 500, 1).unwrap();
            high - low
        };
        assert!(width(&as_clusters) > 1.5 * width(&as_singles));
    }

    fn set(xs: &[&str]) -> BTreeSet<String> {
        xs.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn micro_and_macro() {
        let mut e = MultiLabelEval::default();
        e.add(&set(&["a", "b"]), &set(&["a", "c"]));
        e.add(&set(&["a"]), &set(&[]));
        let t = e.total();
        assert_eq!((t.tp, t.fp, t.fn_), (1, 1, 2));
        let m = e.micro();
        assert!((m.precision - 0.5).abs() < 1e-9);
        assert!((m.recall - 1.0 / 3.0).abs() < 1e-9);
        // supported labels a (P 1, R .5, F1 2/3) and b (0): macro-F1 = 1/3
        assert!((e.macro_supported().f1 - 1.0 / 3.0).abs() < 1e-9);
    }

    #[test]
    fn auc_is_one_for_perfect_ranking_half_for_ties_and_none_without_a_class() {
        assert_eq!(
            roc_auc(&[(0.9, true), (0.1, false), (0.8, true)]),
            Some(1.0)
        );
        assert_eq!(roc_auc(&[(0.5, true), (0.5, false)]), Some(0.5));
        // One positive above one of two negatives.
        assert_eq!(
            roc_auc(&[(0.5, true), (0.3, false), (0.7, false)]),
            Some(0.5)
        );
        assert_eq!(roc_auc(&[(0.5, true)]), None);
    }
}
