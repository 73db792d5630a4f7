//! Document-level multi-label metrics: per-concept counts, micro and macro
//! precision / recall / F1.

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub tp: usize,
    pub fp: usize,
    pub fn_: usize,
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
            .fold(Counts::default(), |a, c| Counts {
                tp: a.tp + c.tp,
                fp: a.fp + c.fp,
                fn_: a.fn_ + c.fn_,
            })
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
