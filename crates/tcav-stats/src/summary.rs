//! Mean, spread and 95 % confidence interval of one sample of scores.

use serde::{Deserialize, Serialize};
use statrs::distribution::ContinuousCDF;

use crate::error::Result;
use crate::sample::{check, moments, students_t};

/// Descriptive statistics of one sample (for example the TCAV scores of one
/// concept at one bottleneck over all random-set runs).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Number of values.
    pub n: usize,
    /// Arithmetic mean.
    pub mean: f64,
    /// Sample standard deviation (ddof = 1, as `numpy.std(x, ddof=1)`).
    pub std: f64,
    /// Standard error of the mean, `std / sqrt(n)` (as `scipy.stats.sem`).
    pub sem: f64,
    /// Lower end of the two-sided 95 % confidence interval of the mean.
    pub ci95_low: f64,
    /// Upper end of the two-sided 95 % confidence interval of the mean.
    pub ci95_high: f64,
}

/// Summarises a sample: mean, sample standard deviation, standard error and
/// the 95 % confidence interval `mean ± t(0.975, n-1) · sem`, the interval
/// that `scipy.stats.t.interval(0.95, n-1, loc=mean, scale=sem)` gives.
///
/// Needs at least 2 values (a spread needs two), all finite; otherwise
/// returns [`StatsError::TooFewValues`](crate::StatsError::TooFewValues) or
/// [`StatsError::NotFinite`](crate::StatsError::NotFinite). A constant
/// sample gives `std = 0` and an interval of zero width.
pub fn summarize(values: &[f64]) -> Result<Summary> {
    const SAMPLE: &str = "the sample";
    check(values, SAMPLE, 2, "a summary with a confidence interval")?;
    let m = moments(values, SAMPLE)?;
    let std = m.var.sqrt();
    let sem = std / (m.n as f64).sqrt();
    let quantile = t_quantile_975((m.n - 1) as f64)?;
    let half_width = quantile * sem;
    Ok(Summary { n: m.n, mean: m.mean, std, sem, ci95_low: m.mean - half_width, ci95_high: m.mean + half_width })
}

/// The 0.975 quantile of Student's t with `df` degrees of freedom (statrs'
/// inverse agrees with scipy's `t.ppf` to ~1e-15, checked by the tests).
fn t_quantile_975(df: f64) -> Result<f64> {
    Ok(students_t(df)?.inverse_cdf(0.975))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StatsError;

    fn close(actual: f64, expected: f64, rel: f64) {
        let tol = rel * expected.abs().max(f64::MIN_POSITIVE);
        assert!((actual - expected).abs() <= tol, "actual {actual:e} vs expected {expected:e} (rel tol {rel:e})");
    }

    fn check_summary(values: &[f64], expected: [f64; 5]) {
        let s = summarize(values).expect("valid sample");
        assert_eq!(s.n, values.len());
        let [mean, std, sem, lo, hi] = expected;
        close(s.mean, mean, 1e-12);
        close(s.std, std, 1e-9);
        close(s.sem, sem, 1e-9);
        close(s.ci95_low, lo, 1e-9);
        close(s.ci95_high, hi, 1e-9);
    }

    // Expected values from scipy 1.17.1 / numpy 2.4.6:
    //   mean = x.mean(); std = x.std(ddof=1); sem = scipy.stats.sem(x)
    //   lo, hi = scipy.stats.t.interval(0.95, len(x) - 1, loc=mean, scale=sem)
    #[test]
    fn matches_scipy_t_interval() {
        check_summary(
            &[0.62, 0.71, 0.55, 0.68, 0.74, 0.59, 0.66, 0.70, 0.63, 0.69],
            [0.657, 0.05888784066153026, 0.018621970297951224, 0.6148741765050743, 0.6991258234949258],
        );
        // n = 2: one degree of freedom, the widest interval (t quantile 12.7).
        check_summary(&[0.25, 0.75], [0.5, 0.3535533905932738, 0.25, -2.6765511840436735, 3.6765511840436735]);
        check_summary(
            &[0.31, 0.28, 0.35, 0.30, 0.33, 0.27, 0.36, 0.29, 0.32, 0.34, 0.30, 0.31, 0.26, 0.37, 0.33],
            [0.31466666666666665, 0.032484428504101694, 0.008387443373830092, 0.2966773897728115, 0.3326559435605218],
        );
        check_summary(
            &[0.0, 1.0, 0.5, 0.25, 0.125],
            [0.375, 0.39528470752104744, 0.1767766952966369, -0.1158107903693893, 0.8658107903693892],
        );
    }

    #[test]
    fn constant_sample_has_zero_width_interval() {
        let s = summarize(&[0.1, 0.1, 0.1]).expect("valid sample");
        assert_eq!(s.mean, 0.1);
        assert_eq!(s.std, 0.0);
        assert_eq!(s.sem, 0.0);
        assert_eq!((s.ci95_low, s.ci95_high), (0.1, 0.1));
    }

    #[test]
    fn too_few_values_is_an_error_naming_the_count() {
        for values in [&[][..], &[0.5][..]] {
            let err = summarize(values).expect_err("n < 2 must be rejected");
            assert!(
                matches!(err, StatsError::TooFewValues { given, needed: 2, .. } if given == values.len()),
                "{err:?}"
            );
            assert!(err.to_string().contains(&format!("has {} value(s)", values.len())), "{err}");
        }
    }

    #[test]
    fn non_finite_values_are_errors() {
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let err = summarize(&[0.5, bad, 0.2]).expect_err("non-finite must be rejected");
            assert!(matches!(err, StatsError::NotFinite { index: 1, .. }), "{err:?}");
        }
    }

    #[test]
    fn overflowing_values_are_errors() {
        let err = summarize(&[f64::MAX, f64::MAX, 0.0]).expect_err("overflow must be rejected");
        assert!(matches!(err, StatsError::Overflow { .. }), "{err:?}");
    }

    #[test]
    fn serde_round_trip() {
        let s = summarize(&[0.2, 0.4, 0.9]).expect("valid sample");
        let json = serde_json::to_string(&s).expect("serialize");
        let back: Summary = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, s);
    }
}
