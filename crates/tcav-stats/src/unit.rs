//! Tests that treat the concept set, not the run, as the unit.
//!
//! A concept's scores over random runs all share one concept set, so they
//! are not independent draws: under the null hypothesis that the concept
//! set is just another random set, its mean score is *one* draw from the
//! distribution of random sets' mean scores. Tests that count each run as
//! an independent observation (the two-sample tests of [`crate::ttest`] as
//! tensorflow/tcav runs them) are then far too confident. Here the concept's
//! mean is compared with the means of N random sets, each scored in the same
//! way ("random sets as concepts"), which is exchangeable with the concept
//! under the null.

use statrs::distribution::ContinuousCDF;

use crate::error::Result;
use crate::sample::{check, moments, students_t};
use crate::ttest::{TTest, TTestKind};

const UNIT: &str = "the concept's value";
const REFERENCE: &str = "the random sets' values";

/// Student's two-sample t-test of one unit (`concept`, e.g. the concept's
/// mean over runs) against `reference` units (the same quantity for each
/// random set acting as a concept), two-sided.
///
/// With one observation in the first sample, the pooled variance is the
/// reference sample's, and `t = (x − mean) / (s · √(1 + 1/n))` with
/// `n − 1` degrees of freedom: the prediction-interval test of whether `x`
/// could be one more draw of the reference population.
///
/// A constant reference gives t = 0, p = 1 when `concept` equals it, and
/// t = ±inf, p = 0 otherwise.
pub fn unit_ttest(concept: f64, reference: &[f64]) -> Result<TTest> {
    const WHAT: &str = "a concept-as-unit t-test";
    check(&[concept], UNIT, 1, WHAT)?;
    check(reference, REFERENCE, 3, WHAT)?;
    let m = moments(reference, REFERENCE)?;
    prediction_interval_test(concept, m.mean, m.var, m.n)
}

/// `t = (x − mean) / (s · √(1 + 1/units))` on `units − 1` degrees of
/// freedom, two-sided; a zero spread gives t = 0 (p = 1) at the mean and
/// ±inf (p = 0) elsewhere.
fn prediction_interval_test(concept: f64, mean: f64, var: f64, units: usize) -> Result<TTest> {
    let df = (units - 1) as f64;
    let std_err = (var * (1.0 + 1.0 / units as f64)).sqrt();
    let diff = concept - mean;
    let (t, p_value) = if std_err > 0.0 {
        let t = diff / std_err;
        (t, (2.0 * students_t(df)?.sf(t.abs())).clamp(0.0, 1.0))
    } else if diff == 0.0 {
        (0.0, 1.0)
    } else {
        (f64::INFINITY.copysign(diff), 0.0)
    };
    Ok(TTest { kind: TTestKind::Student, t, df, p_value, mean_a: concept, mean_b: mean })
}

/// The same prediction-interval t-test, for a `reference` whose values are
/// not independent: they are built from only `units` independent draws
/// (e.g. CAVs of every pair of `units` random sets, each set in many
/// pairs). Their sample variance estimates the spread of one value, but it
/// carries about as much information as `units` draws, not
/// `reference.len()`, so the test uses `units − 1` degrees of freedom and
/// `t = (x − mean) / (s · √(1 + 1/units))`: with `units` at most the number
/// of values this is never less conservative than [`unit_ttest`].
///
/// Used for relative TCAV (concept A vs concept B), whose reference is the
/// random-vs-random pairs of the baseline.
pub fn unit_ttest_dependent(concept: f64, reference: &[f64], units: usize) -> Result<TTest> {
    const WHAT: &str = "a t-test against a dependent reference";
    check(&[concept], UNIT, 1, WHAT)?;
    check(reference, REFERENCE, 3, WHAT)?;
    if units < 3 || units > reference.len() {
        return Err(crate::StatsError::TooFewValues {
            sample: "independent units behind the reference (at most one per reference value)",
            given: units,
            needed: 3,
            what: WHAT,
        });
    }
    let m = moments(reference, REFERENCE)?;
    prediction_interval_test(concept, m.mean, m.var, units)
}

/// The two-sided exact rank test of the same design: the p-value of
/// `concept` being as extreme as it is among `reference` values when all
/// `n + 1` are exchangeable, `min(1, 2·(1 + #{as extreme on the same side}) / (n + 1))`.
///
/// It needs no normality, but it can never go below `2 / (n + 1)`: with 30
/// random sets no result is rarer than p = 0.065, which says how many random
/// sets a rank-based claim needs.
pub fn unit_rank_p_value(concept: f64, reference: &[f64]) -> Result<f64> {
    const WHAT: &str = "a concept-as-unit rank test";
    check(&[concept], UNIT, 1, WHAT)?;
    check(reference, REFERENCE, 1, WHAT)?;
    let at_least = reference.iter().filter(|&&r| r >= concept).count();
    let at_most = reference.iter().filter(|&&r| r <= concept).count();
    let tail = (1 + at_least.min(at_most)) as f64 / (reference.len() + 1) as f64;
    Ok((2.0 * tail).min(1.0))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "in a test, a failed unwrap is a failed test")]
mod tests {
    use super::*;

    const REF: [f64; 8] = [0.12, 0.55, 0.31, 0.78, 0.44, 0.29, 0.61, 0.50];

    #[test]
    fn unit_ttest_matches_the_prediction_interval_formula_in_scipy() {
        // n = len(REF); s = np.std(REF, ddof=1)
        // t = (x - np.mean(REF)) / (s * np.sqrt(1 + 1/n)); p = 2 * scipy.stats.t.sf(abs(t), n - 1)
        // (numpy 2.4.6, scipy 1.17.1)
        for (x, t, p) in [
            (0.97, 2.3634619705742876, 0.05008555805973924),
            (0.2, -1.1362797935453306, 0.2932390646405273),
            (0.45, 0.0, 1.0),
        ] {
            let test = unit_ttest(x, &REF).unwrap();
            assert!((test.t - t).abs() <= 1e-12 * t.abs().max(1.0), "{x}: t {} vs {t}", test.t);
            assert!((test.p_value - p).abs() <= 1e-9 * p, "{x}: p {} vs {p}", test.p_value);
            assert_eq!(test.df, 7.0);
        }
    }

    #[test]
    fn unit_ttest_is_the_student_test_with_a_sample_of_one() {
        // Student's pooled test with n_a = 1 pools only the reference's
        // variance: check the identity against the general formula.
        let x = 0.9;
        let test = unit_ttest(x, &REF).unwrap();
        let n = REF.len() as f64;
        let mean = REF.iter().sum::<f64>() / n;
        let var = REF.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1.0);
        let pooled = ((n - 1.0) * var) / (1.0 + n - 2.0);
        let t = (x - mean) / (pooled * (1.0 + 1.0 / n)).sqrt();
        assert!((test.t - t).abs() < 1e-12);
    }

    #[test]
    fn degenerate_and_bad_inputs() {
        assert_eq!(unit_ttest(0.5, &[0.5; 5]).unwrap().p_value, 1.0);
        let far = unit_ttest(1.0, &[0.5; 5]).unwrap();
        assert_eq!((far.t, far.p_value), (f64::INFINITY, 0.0));
        assert!(unit_ttest(0.5, &[0.1, 0.2]).is_err());
        assert!(unit_ttest(f64::NAN, &REF).is_err());
        assert!(unit_ttest(0.5, &[0.1, f64::INFINITY, 0.3]).is_err());
    }

    #[test]
    fn the_dependent_reference_test_uses_the_units_for_df() {
        // With units = n it is exactly the unit test.
        let same = unit_ttest_dependent(0.97, &REF, REF.len()).unwrap();
        let unit = unit_ttest(0.97, &REF).unwrap();
        assert_eq!((same.t, same.df, same.p_value), (unit.t, unit.df, unit.p_value));
        // Fewer units: fewer df and a wider interval, so a larger p-value.
        // t = (0.97 - mean) / (s * sqrt(1 + 1/4)); p = 2 * scipy.stats.t.sf(|t|, 3)
        let fewer = unit_ttest_dependent(0.97, &REF, 4).unwrap();
        assert_eq!(fewer.df, 3.0);
        let n = REF.len() as f64;
        let mean = REF.iter().sum::<f64>() / n;
        let s = (REF.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
        assert!((fewer.t - (0.97 - mean) / (s * 1.25f64.sqrt())).abs() < 1e-12);
        assert!(fewer.p_value > unit.p_value);
        assert!(unit_ttest_dependent(0.5, &REF, 2).is_err());
        assert!(unit_ttest_dependent(0.5, &REF, 9).is_err());
    }

    #[test]
    fn unit_rank_p_values_count_the_tail() {
        // 0.97 is above all 8: tail (1 + 0) / 9, two-sided 2/9.
        assert!((unit_rank_p_value(0.97, &REF).unwrap() - 2.0 / 9.0).abs() < 1e-15);
        // 0.3 has 2 values at or below it (0.12, 0.29): (1 + 2) / 9 → 6/9.
        assert!((unit_rank_p_value(0.3, &REF).unwrap() - 6.0 / 9.0).abs() < 1e-15);
        assert_eq!(unit_rank_p_value(0.45, &REF).unwrap(), 1.0);
    }

    #[test]
    fn the_unit_test_is_calibrated_when_the_concept_is_one_more_reference_draw() {
        // Exchangeable draws: the concept is the (n+1)-th of n+1 normal
        // draws. Over 4000 repetitions the rejection rate at 0.05 must be
        // within 4 binomial standard errors of 0.05.
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let normal = |rng: &mut rand_chacha::ChaCha8Rng| {
            // Box–Muller from two uniforms.
            let (u, v): (f64, f64) = (rng.random_range(1e-12..1.0), rng.random());
            (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
        };
        let trials = 4000;
        let mut rejected = 0;
        for _ in 0..trials {
            let reference: Vec<f64> = (0..10).map(|_| normal(&mut rng)).collect();
            if unit_ttest(normal(&mut rng), &reference).unwrap().p_value <= 0.05 {
                rejected += 1;
            }
        }
        let rate = rejected as f64 / trials as f64;
        let se = (0.05f64 * 0.95 / trials as f64).sqrt();
        assert!((rate - 0.05).abs() <= 4.0 * se, "rejection rate {rate}");
    }
}
