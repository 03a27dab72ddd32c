//! Verdicts: does a concept significantly push a class, and which way?
//!
//! The t-test is two-sided, so it flags concept scores far from the baseline
//! on either side. TCAV scores near 0 are just as "significant" as scores
//! near 1, but they mean that moving toward the concept lowers the class
//! logit: the concept pushes *away* from the class. Calling such a concept
//! "important for the class" would be wrong, so a verdict always carries its
//! [`Direction`], and only [`Direction::Above`] supports the claim that the
//! concept pushes toward the class.

use serde::{Deserialize, Serialize};

use crate::error::{Result, StatsError};
use crate::ttest::TTest;

/// Where the concept's TCAV scores lie relative to the baseline, if the
/// difference is significant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// Significant, with concept scores above the baseline: the concept
    /// pushes toward the class.
    Above,
    /// Significant, with concept scores below the baseline: the concept
    /// pushes away from the class. This is *not* "important for the class".
    Below,
    /// No significant difference from the baseline at the chosen alpha.
    NotSignificant,
}

impl Direction {
    /// Classifies a test of concept scores (sample `a`) against baseline
    /// scores (sample `b`), given its p-value after multiple-testing
    /// adjustment (see [`adjust`](crate::adjust)).
    ///
    /// Significant means `p_adjusted <= alpha`, the rule statsmodels'
    /// `multipletests` uses to reject. `alpha` must lie strictly between 0
    /// and 1 and `p_adjusted` in [0, 1]; otherwise this returns
    /// [`StatsError::InvalidAlpha`] or [`StatsError::InvalidPValue`].
    pub fn classify(test: &TTest, p_adjusted: f64, alpha: f64) -> Result<Direction> {
        if !(alpha > 0.0 && alpha < 1.0) {
            return Err(StatsError::InvalidAlpha { alpha });
        }
        if !(0.0..=1.0).contains(&p_adjusted) {
            return Err(StatsError::InvalidPValue { p_value: p_adjusted });
        }
        Ok(if p_adjusted > alpha {
            Direction::NotSignificant
        } else if test.mean_a > test.mean_b {
            Direction::Above
        } else if test.mean_a < test.mean_b {
            Direction::Below
        } else {
            // Equal means cannot be significant with our tests (t = 0 gives
            // p = 1), but an adjusted p passed in from elsewhere might claim so.
            Direction::NotSignificant
        })
    }

    /// Whether the difference from the baseline is significant, either way.
    pub fn is_significant(self) -> bool {
        !matches!(self, Direction::NotSignificant)
    }
}

/// The verdict on one concept (at one bottleneck, for one class): the
/// numbers it rests on and the resulting [`Direction`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Which way the concept pushes the class, if significantly.
    pub direction: Direction,
    /// The raw p-value of the test.
    pub p_value: f64,
    /// The p-value after multiple-testing adjustment, compared with `alpha`.
    pub p_adjusted: f64,
    /// The significance level.
    pub alpha: f64,
    /// Mean TCAV score of the concept.
    pub mean_concept: f64,
    /// Mean TCAV score of the baseline (random sets).
    pub mean_baseline: f64,
}

impl Verdict {
    /// Builds the verdict for a test of concept scores (sample `a`) against
    /// baseline scores (sample `b`); see [`Direction::classify`] for the
    /// rule and the errors.
    pub fn new(test: &TTest, p_adjusted: f64, alpha: f64) -> Result<Verdict> {
        let direction = Direction::classify(test, p_adjusted, alpha)?;
        Ok(Verdict {
            direction,
            p_value: test.p_value,
            p_adjusted,
            alpha,
            mean_concept: test.mean_a,
            mean_baseline: test.mean_b,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Correction, TTestKind, adjust, two_sample_ttest};

    const BASELINE: [f64; 8] = [0.48, 0.55, 0.51, 0.45, 0.52, 0.50, 0.47, 0.53];

    fn test_against_baseline(concept: &[f64]) -> TTest {
        two_sample_ttest(concept, &BASELINE, TTestKind::Welch).expect("valid samples")
    }

    #[test]
    fn high_scores_push_toward_low_scores_push_away() {
        let high = test_against_baseline(&[0.91, 0.88, 0.95, 0.90, 0.93, 0.89]);
        let low = test_against_baseline(&[0.04, 0.08, 0.02, 0.06, 0.05, 0.03]);
        let same = test_against_baseline(&[0.49, 0.52, 0.50, 0.47, 0.54, 0.51]);
        // The two-sided test flags the low scores too: that is exactly why
        // the direction must be reported.
        assert!(low.p_value < 1e-6, "{low:?}");
        assert_eq!(Direction::classify(&high, high.p_value, 0.05), Ok(Direction::Above));
        assert_eq!(Direction::classify(&low, low.p_value, 0.05), Ok(Direction::Below));
        assert_eq!(Direction::classify(&same, same.p_value, 0.05), Ok(Direction::NotSignificant));
        assert!(Direction::Below.is_significant() && Direction::Above.is_significant());
        assert!(!Direction::NotSignificant.is_significant());
    }

    #[test]
    fn adjustment_can_remove_significance() {
        let marginal = test_against_baseline(&[0.52, 0.58, 0.55, 0.51, 0.57, 0.56]);
        // scipy 1.17.1: ttest_ind(concept, BASELINE, equal_var=False).pvalue
        let expected = 0.013994458095746388;
        assert!((marginal.p_value - expected).abs() <= 1e-9 * expected, "{marginal:?}");
        let adjusted = adjust(&[marginal.p_value, 0.3, 0.6, 0.9, 0.04], Correction::Holm);
        let raw = Verdict::new(&marginal, marginal.p_value, 0.05).expect("valid");
        let corrected = Verdict::new(&marginal, adjusted[0], 0.05).expect("valid");
        assert_eq!(raw.direction, Direction::Above);
        assert_eq!(corrected.direction, Direction::NotSignificant);
        assert_eq!(corrected.p_value, marginal.p_value);
        assert_eq!(corrected.p_adjusted, adjusted[0]);
        assert_eq!((corrected.mean_concept, corrected.mean_baseline), (marginal.mean_a, marginal.mean_b));
    }

    #[test]
    fn p_equal_to_alpha_is_significant() {
        let high = test_against_baseline(&[0.91, 0.88, 0.95, 0.90, 0.93, 0.89]);
        assert_eq!(Direction::classify(&high, 0.05, 0.05), Ok(Direction::Above));
    }

    #[test]
    fn equal_means_are_never_significant() {
        let t = two_sample_ttest(&[0.5; 3], &[0.5; 4], TTestKind::Student).expect("valid");
        assert_eq!(Direction::classify(&t, 0.0, 0.05), Ok(Direction::NotSignificant));
    }

    #[test]
    fn bad_alpha_and_p_are_errors() {
        let t = test_against_baseline(&[0.91, 0.88, 0.95]);
        for alpha in [0.0, 1.0, -0.1, 1.5, f64::NAN] {
            assert!(
                matches!(Direction::classify(&t, 0.01, alpha), Err(StatsError::InvalidAlpha { .. })),
                "alpha {alpha}"
            );
        }
        for p in [-0.1, 1.1, f64::NAN] {
            assert!(matches!(Verdict::new(&t, p, 0.05), Err(StatsError::InvalidPValue { .. })), "p {p}");
        }
    }

    #[test]
    fn serde_names() {
        let names = [
            (Direction::Above, "\"above\""),
            (Direction::Below, "\"below\""),
            (Direction::NotSignificant, "\"not-significant\""),
        ];
        for (direction, name) in names {
            assert_eq!(serde_json::to_string(&direction).expect("ser"), name);
            assert_eq!(serde_json::from_str::<Direction>(name).expect("de"), direction);
        }
        let v = Verdict::new(&test_against_baseline(&[0.1, 0.2, 0.15]), 0.001, 0.05).expect("valid");
        let back: Verdict = serde_json::from_str(&serde_json::to_string(&v).expect("ser")).expect("de");
        assert_eq!(back, v);
    }
}
