//! Calibration of probabilities against binary outcomes: expected
//! calibration error, temperature scaling and the decision threshold, each
//! fitted on one split and applied to another.

/// Expected calibration error over `bins` equal-width bins: the mean, weighted
/// by bin size, of |mean probability − observed frequency|.
pub fn expected_calibration_error(pairs: &[(f32, bool)], bins: usize) -> f64 {
    let mut count = vec![0usize; bins];
    let mut confidence = vec![0f64; bins];
    let mut positive = vec![0usize; bins];
    for &(p, y) in pairs {
        let b = ((p.clamp(0.0, 1.0) * bins as f32) as usize).min(bins - 1);
        count[b] += 1;
        confidence[b] += f64::from(p);
        positive[b] += usize::from(y);
    }
    let n = pairs.len().max(1) as f64;
    (0..bins)
        .filter(|&b| count[b] > 0)
        .map(|b| {
            let c = count[b] as f64;
            c / n * (confidence[b] / c - positive[b] as f64 / c).abs()
        })
        .sum()
}

/// The logistic function, inverse of `logit`.
pub fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// The logit of a probability, kept finite.
pub fn logit(p: f32) -> f64 {
    let p = f64::from(p).clamp(1e-7, 1.0 - 1e-7);
    (p / (1.0 - p)).ln()
}

/// Probability after dividing the logit by `temperature`.
pub fn rescale(p: f32, temperature: f64) -> f32 {
    sigmoid(logit(p) / temperature) as f32
}

/// The temperature in 0.25..=4 (steps of 0.05) that minimises the negative
/// log-likelihood of `pairs` (probabilities at temperature 1).
pub fn fit_temperature(pairs: &[(f32, bool)]) -> f64 {
    let nll = |t: f64| -> f64 {
        pairs
            .iter()
            .map(|&(p, y)| {
                let q = f64::from(rescale(p, t)).clamp(1e-12, 1.0 - 1e-12);
                -(if y { q.ln() } else { (1.0 - q).ln() })
            })
            .sum()
    };
    (5..=80)
        .map(|i| f64::from(i) * 0.05)
        .min_by(|a, b| nll(*a).total_cmp(&nll(*b)))
        .expect("non-empty grid")
}

/// F1 of deciding "positive" when the probability is at least `threshold`.
pub fn f1_at(pairs: &[(f32, bool)], threshold: f32) -> f64 {
    let (mut tp, mut fp, mut fn_) = (0usize, 0usize, 0usize);
    for &(p, y) in pairs {
        match (p >= threshold, y) {
            (true, true) => tp += 1,
            (true, false) => fp += 1,
            (false, true) => fn_ += 1,
            _ => {}
        }
    }
    2.0 * tp as f64 / (2 * tp + fp + fn_).max(1) as f64
}

/// The threshold in 0.05..=0.95 (steps of 0.05) with the best micro-F1 over
/// `pairs`; ties go to the lower threshold.
pub fn best_threshold(pairs: &[(f32, bool)]) -> f32 {
    let mut best = (0.5, f64::MIN);
    for i in 1..=19 {
        let t = i as f32 / 20.0;
        let score = f1_at(pairs, t);
        if score > best.1 + 1e-12 {
            best = (t, score);
        }
    }
    best.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfectly_calibrated_bins_have_zero_error_and_overconfidence_does_not() {
        let calibrated: Vec<(f32, bool)> = (0..10)
            .map(|i| (0.25, i < 1))
            .chain((0..4).map(|i| (0.75, i < 3)))
            .collect();
        // 0.25 with 1 of 10 positive is off by 0.15; 0.75 with 3 of 4 is exact.
        let e = expected_calibration_error(&calibrated, 10);
        assert!((e - 10.0 / 14.0 * 0.15).abs() < 1e-6, "{e}");
        let exact: Vec<(f32, bool)> = (0..4).map(|i| (0.75, i < 3)).collect();
        assert!(expected_calibration_error(&exact, 10) < 1e-6);
    }

    #[test]
    fn overconfident_probabilities_get_a_temperature_above_one() {
        // Logit 4 (p = 0.982) but right only 3 times in 4.
        let p = sigmoid(4.0) as f32;
        let pairs: Vec<(f32, bool)> = (0..400).map(|i| (p, i % 4 != 0)).collect();
        let t = fit_temperature(&pairs);
        // sigmoid(4 / t) = 0.75 at t = 4 / ln 3 = 3.64.
        assert!((t - 3.64).abs() < 0.06, "{t}");
        assert!((rescale(p, t) - 0.75).abs() < 0.01);
    }

    #[test]
    fn threshold_separates_the_classes() {
        let pairs = [
            (0.9, true),
            (0.7, true),
            (0.4, false),
            (0.35, true),
            (0.1, false),
        ];
        // Every threshold in 0.15..=0.35 keeps the three positives and one
        // false positive (F1 6/7); the lowest of them wins.
        assert!((best_threshold(&pairs) - 0.15).abs() < 1e-6);
    }
}
