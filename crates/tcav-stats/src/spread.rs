//! The spread of the random-vs-random baseline, and how much of it sits at
//! the extremes.
//!
//! At deep bottlenecks, random-vs-random TCAV scores often pile up near 0
//! and 1: a CAV between two random sets picks some direction the class
//! gradients happen to agree on, and then almost every image scores on the
//! same side (on real data, 80 % of the baseline runs scored ≤ 0.05 or
//! ≥ 0.95). Such a baseline has a standard deviation near 0.5, the largest a
//! score in [0, 1] can have, so the t-test's standard error stays large
//! whatever the concept scores: its p-values are capped, and even a concept
//! at 1.0 in every run may not beat a baseline averaging 0.5. Reporting the
//! quartiles and the [`extreme_fraction`](BaselineSpread::extreme_fraction)
//! lets a reader see when that is happening, and choose the rank or
//! permutation test instead.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::sample::{check, moments};

/// Scores at or below this count as extreme (see
/// [`BaselineSpread::extreme_fraction`]).
pub const EXTREME_LOW: f64 = 0.05;
/// Scores at or above this count as extreme (see
/// [`BaselineSpread::extreme_fraction`]).
pub const EXTREME_HIGH: f64 = 0.95;

/// Descriptive statistics of the baseline's TCAV scores (random set against
/// random set) at one bottleneck for one class.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BaselineSpread {
    /// Number of scores.
    pub n: usize,
    /// Arithmetic mean.
    pub mean: f64,
    /// Sample standard deviation (ddof = 1, as in [`Summary`](crate::Summary)).
    pub std: f64,
    /// Smallest score.
    pub min: f64,
    /// First quartile.
    pub q25: f64,
    /// Median.
    pub median: f64,
    /// Third quartile.
    pub q75: f64,
    /// Largest score.
    pub max: f64,
    /// Fraction of scores ≤ [`EXTREME_LOW`] or ≥ [`EXTREME_HIGH`]. A large
    /// fraction means the baseline is bimodal at 0 and 1, which inflates its
    /// variance and caps the t-test's p-values; prefer the rank or
    /// permutation test then.
    pub extreme_fraction: f64,
}

/// Summarises baseline scores: mean, sample standard deviation, min, the
/// quartiles and max, and the fraction of extreme scores.
///
/// Quantiles interpolate linearly between order statistics, as
/// `numpy.quantile(x, q)` does by default (`method="linear"`): the value at
/// position `(n − 1) · q` of the sorted scores.
///
/// Needs at least 2 finite values (a standard deviation needs two);
/// otherwise returns [`StatsError::TooFewValues`](crate::StatsError::TooFewValues)
/// or [`StatsError::NotFinite`](crate::StatsError::NotFinite).
pub fn baseline_spread(scores: &[f64]) -> Result<BaselineSpread> {
    const SAMPLE: &str = "the baseline scores";
    check(scores, SAMPLE, 2, "a baseline spread")?;
    let m = moments(scores, SAMPLE)?;
    let mut sorted = scores.to_vec();
    sorted.sort_by(f64::total_cmp);
    let extreme = scores.iter().filter(|&&s| s <= EXTREME_LOW || s >= EXTREME_HIGH).count();
    Ok(BaselineSpread {
        n: m.n,
        mean: m.mean,
        std: m.var.sqrt(),
        min: sorted[0],
        q25: quantile(&sorted, 0.25),
        median: quantile(&sorted, 0.5),
        q75: quantile(&sorted, 0.75),
        max: sorted[sorted.len() - 1],
        extreme_fraction: extreme as f64 / m.n as f64,
    })
}

/// numpy's default ("linear") quantile of non-empty sorted values.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let position = (sorted.len() - 1) as f64 * q;
    let below = position.floor() as usize;
    let above = (below + 1).min(sorted.len() - 1);
    let t = position - below as f64;
    let (lo, hi) = (sorted[below], sorted[above]);
    // numpy's lerp: from the nearer end, so that t = 1 gives hi exactly.
    if t >= 0.5 { hi - (hi - lo) * (1.0 - t) } else { lo + (hi - lo) * t }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StatsError;

    fn close(actual: f64, expected: f64) {
        assert!(
            (actual - expected).abs() <= 1e-12 * expected.abs().max(1e-300),
            "actual {actual:e} vs expected {expected:e}"
        );
    }

    /// Expected: [mean, std, min, q25, median, q75, max, extreme_fraction].
    fn check_spread(scores: &[f64], expected: [f64; 8]) {
        let s = baseline_spread(scores).expect("valid scores");
        assert_eq!(s.n, scores.len());
        let actual = [s.mean, s.std, s.min, s.q25, s.median, s.q75, s.max, s.extreme_fraction];
        for (a, e) in actual.into_iter().zip(expected) {
            close(a, e);
        }
    }

    // Expected values from numpy 2.4.6:
    //   [x.mean(), x.std(ddof=1), x.min(), *np.quantile(x, [0.25, 0.5, 0.75]),
    //    x.max(), np.mean((x <= 0.05) | (x >= 0.95))]
    #[test]
    fn matches_numpy() {
        // A deep-layer baseline: 8 of 10 runs at the extremes.
        check_spread(
            &[0.0, 1.0, 0.98, 0.02, 1.0, 0.0, 0.5, 0.97, 0.03, 0.61],
            [0.511, 0.46109651918009525, 0.0, 0.0225, 0.5549999999999999, 0.9775, 1.0, 0.8],
        );
        check_spread(
            &[0.31, 0.28, 0.35, 0.30, 0.33, 0.27, 0.36],
            [
                0.31428571428571433,
                0.034086724129853856,
                0.27,
                0.29000000000000004,
                0.31,
                0.33999999999999997,
                0.36,
                0.0,
            ],
        );
        check_spread(&[0.25, 0.75], [0.5, 0.3535533905932738, 0.25, 0.375, 0.5, 0.625, 0.75, 0.0]);
    }

    #[test]
    fn extreme_thresholds_are_inclusive() {
        let s = baseline_spread(&[0.05, 0.95, 0.5, 0.050_000_1]).expect("valid");
        assert_eq!(s.extreme_fraction, 0.5);
    }

    #[test]
    fn constant_scores_have_zero_spread() {
        let s = baseline_spread(&[1.0; 4]).expect("valid");
        assert_eq!((s.std, s.min, s.q25, s.median, s.q75, s.max), (0.0, 1.0, 1.0, 1.0, 1.0, 1.0));
        assert_eq!(s.extreme_fraction, 1.0);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(matches!(baseline_spread(&[0.5]), Err(StatsError::TooFewValues { given: 1, needed: 2, .. })));
        assert!(matches!(baseline_spread(&[0.5, f64::NAN]), Err(StatsError::NotFinite { index: 1, .. })));
    }

    #[test]
    fn serde_round_trip() {
        let s = baseline_spread(&[0.0, 0.2, 0.9, 1.0]).expect("valid");
        let back: BaselineSpread = serde_json::from_str(&serde_json::to_string(&s).expect("ser")).expect("de");
        assert_eq!(back, s);
    }
}
