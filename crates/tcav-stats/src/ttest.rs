//! Two-sample, two-sided t-tests (Student and Welch) and Cohen's d.
//!
//! statrs has only the one-sample t-test, so the two-sample statistics are
//! written here, following `scipy.stats.ttest_ind` formula for formula.

use serde::{Deserialize, Serialize};
use statrs::distribution::ContinuousCDF;
use tracing::debug;

use crate::error::Result;
use crate::sample::{Moments, check, moments, students_t};

const SAMPLE_A: &str = "sample a (concept scores)";
const SAMPLE_B: &str = "sample b (baseline scores)";

/// Which two-sample t-test to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TTestKind {
    /// Welch's test: no equal-variance assumption, Welch–Satterthwaite
    /// degrees of freedom (`scipy.stats.ttest_ind(a, b, equal_var=False)`).
    Welch,
    /// Student's test: pooled variance, `n_a + n_b - 2` degrees of freedom
    /// (`scipy.stats.ttest_ind(a, b, equal_var=True)`, the test
    /// tensorflow/tcav runs).
    Student,
}

/// The result of a two-sided two-sample t-test of sample `a` against sample
/// `b` (in TCAV: concept scores against baseline scores).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TTest {
    /// Which test was run.
    pub kind: TTestKind,
    /// The t statistic, positive when `mean_a > mean_b`. It is ±inf when
    /// both samples are constant with different means (serialised as the
    /// strings `"inf"` / `"-inf"`, since JSON has no infinity).
    #[serde(with = "crate::float_serde")]
    pub t: f64,
    /// Degrees of freedom of the reference t distribution.
    pub df: f64,
    /// Two-sided p-value, `2 · sf(|t|)`, in [0, 1].
    pub p_value: f64,
    /// Mean of sample `a`.
    pub mean_a: f64,
    /// Mean of sample `b`.
    pub mean_b: f64,
}

/// Two-sided two-sample t-test of `a` against `b`.
///
/// Matches `scipy.stats.ttest_ind(a, b, equal_var=(kind == Student))`
/// wherever scipy gives a number. The p-value is computed as
/// `2 · StudentsT(0, 1, df).sf(|t|)`, so p-values far below 1e-16 keep their
/// precision.
///
/// Each sample needs at least 2 finite values (a variance needs two);
/// otherwise this returns [`StatsError::TooFewValues`](crate::StatsError::TooFewValues)
/// or [`StatsError::NotFinite`](crate::StatsError::NotFinite).
///
/// Degenerate cases, where the standard error of the difference is zero
/// (both samples constant):
/// - **equal means**: `t = 0`, `p_value = 1`. scipy returns NaN here; we
///   return the answer "no evidence of a difference", because the data show
///   none, and a NaN would poison every multiple-testing correction over the
///   experiment. This happens in TCAV when, say, a concept and all random
///   sets score exactly 1.0.
/// - **different means**: `t = ±inf` (sign of `mean_a - mean_b`) and
///   `p_value = 0`, as scipy gives.
///
/// For Welch's test with both samples constant the Welch–Satterthwaite
/// formula is 0/0; `df` is then reported as 1, the placeholder scipy uses
/// (the p-value above does not depend on it). With only one constant sample
/// the formula is well defined and used as is.
///
/// Unlike scipy, a constant sample has exactly zero variance and its value
/// as mean: scipy's `ttest_ind([0.1]*3, [0.1]*5)` reports t = 1.94 from
/// summation rounding alone, this function reports t = 0, p = 1.
pub fn two_sample_ttest(a: &[f64], b: &[f64], kind: TTestKind) -> Result<TTest> {
    const WHAT: &str = "a two-sample t-test";
    check(a, SAMPLE_A, 2, WHAT)?;
    check(b, SAMPLE_B, 2, WHAT)?;
    let ma = moments(a, SAMPLE_A)?;
    let mb = moments(b, SAMPLE_B)?;
    let (std_err, df) = match kind {
        TTestKind::Student => {
            let df = (ma.n + mb.n - 2) as f64;
            let pooled = pooled_variance(&ma, &mb);
            let std_err = (pooled * (1.0 / ma.n as f64 + 1.0 / mb.n as f64)).sqrt();
            (std_err, df)
        }
        TTestKind::Welch => {
            let va = ma.var / ma.n as f64;
            let vb = mb.var / mb.n as f64;
            let total = va + vb;
            // (va + vb)² / (va²/(n_a-1) + vb²/(n_b-1)), written with the
            // shares va/total and vb/total so that tiny variances cannot
            // underflow when squared. 1 is scipy's placeholder for the 0/0
            // of two constant samples.
            let df = if total > 0.0 {
                let (share_a, share_b) = (va / total, vb / total);
                1.0 / (share_a * share_a / (ma.n - 1) as f64 + share_b * share_b / (mb.n - 1) as f64)
            } else {
                1.0
            };
            (total.sqrt(), df)
        }
    };
    let diff = ma.mean - mb.mean;
    let (t, p_value) = if std_err > 0.0 {
        let t = diff / std_err;
        let p = 2.0 * students_t(df)?.sf(t.abs());
        (t, p.clamp(0.0, 1.0))
    } else if diff == 0.0 {
        debug!(n_a = ma.n, n_b = mb.n, "both samples constant and equal: t = 0, p = 1");
        (0.0, 1.0)
    } else {
        debug!(n_a = ma.n, n_b = mb.n, "both samples constant and different: t = ±inf, p = 0");
        (f64::INFINITY.copysign(diff), 0.0)
    };
    Ok(TTest { kind, t, df, p_value, mean_a: ma.mean, mean_b: mb.mean })
}

/// Cohen's d of `a` against `b`: `(mean_a - mean_b) / s_pooled`, where
/// `s_pooled² = ((n_a - 1)·s_a² + (n_b - 1)·s_b²) / (n_a + n_b - 2)`.
///
/// Sign convention: positive when `mean(a) > mean(b)` (in TCAV, when the
/// concept scores lie above the baseline), negative when below.
///
/// Each sample needs at least 2 finite values. When both samples are
/// constant the pooled deviation is 0 and d is `0.0` for equal means and
/// ±inf for different means, consistent with [`two_sample_ttest`].
pub fn cohens_d(a: &[f64], b: &[f64]) -> Result<f64> {
    const WHAT: &str = "Cohen's d";
    check(a, SAMPLE_A, 2, WHAT)?;
    check(b, SAMPLE_B, 2, WHAT)?;
    let ma = moments(a, SAMPLE_A)?;
    let mb = moments(b, SAMPLE_B)?;
    let diff = ma.mean - mb.mean;
    let pooled_std = pooled_variance(&ma, &mb).sqrt();
    Ok(if pooled_std > 0.0 {
        diff / pooled_std
    } else if diff == 0.0 {
        0.0
    } else {
        f64::INFINITY.copysign(diff)
    })
}

fn pooled_variance(a: &Moments, b: &Moments) -> f64 {
    let df = (a.n + b.n - 2) as f64;
    ((a.n - 1) as f64 * a.var + (b.n - 1) as f64 * b.var) / df
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StatsError;

    fn close(actual: f64, expected: f64, rel: f64) {
        let tol = rel * expected.abs().max(f64::MIN_POSITIVE);
        assert!((actual - expected).abs() <= tol, "actual {actual:e} vs expected {expected:e} (rel tol {rel:e})");
    }

    /// One reference case: inputs, and for Student then Welch the
    /// (t, df, p) that scipy returned, then mean_a, mean_b, Cohen's d.
    struct Case {
        name: &'static str,
        a: &'static [f64],
        b: &'static [f64],
        student: [f64; 3],
        welch: [f64; 3],
        means: [f64; 2],
        cohens_d: f64,
    }

    // Expected values from scipy 1.17.1 / numpy 2.4.6:
    //   r = scipy.stats.ttest_ind(a, b, equal_var=True)   -> student = [r.statistic, r.df, r.pvalue]
    //   r = scipy.stats.ttest_ind(a, b, equal_var=False)  -> welch   = [r.statistic, r.df, r.pvalue]
    //   means = [a.mean(), b.mean()]
    //   cohens_d = (a.mean() - b.mean()) / sqrt(((n1-1)*a.var(ddof=1) + (n2-1)*b.var(ddof=1)) / (n1+n2-2))
    const CASES: &[Case] = &[
        Case {
            name: "tcav-like, 10 vs 10",
            a: &[0.62, 0.71, 0.55, 0.68, 0.74, 0.59, 0.66, 0.70, 0.63, 0.69],
            b: &[0.48, 0.55, 0.61, 0.42, 0.50, 0.58, 0.47, 0.53, 0.44, 0.57],
            student: [5.202089556997432, 18.0, 6.0074046161255687e-05],
            welch: [5.202089556997432, 17.914235582152347, 6.098302696855183e-05],
            means: [0.657, 0.5150000000000001],
            cohens_d: 2.326445174897605,
        },
        Case {
            name: "unequal sizes and variances, 7 vs 12",
            a: &[0.91, 0.35, 0.77, 0.12, 0.64, 0.88, 0.41],
            b: &[0.52, 0.49, 0.55, 0.50, 0.47, 0.53, 0.51, 0.48, 0.56, 0.46, 0.54, 0.50],
            student: [0.8669318240341304, 17.0, 0.39805110033153296],
            welch: [0.6526308743272681, 6.079731944995751, 0.5378745389644921],
            means: [0.5828571428571429, 0.5091666666666667],
            cohens_d: 0.4123083243407914,
        },
        Case {
            name: "p about 1e-10, 12 vs 12",
            a: &[0.72, 0.68, 0.75, 0.70, 0.66, 0.74, 0.71, 0.69, 0.73, 0.67, 0.70, 0.72],
            b: &[0.55, 0.49, 0.58, 0.47, 0.61, 0.50, 0.56, 0.46, 0.51, 0.59, 0.48, 0.57],
            student: [10.343675308108645, 22.0, 6.504638746207821e-10],
            welch: [10.343675308108645, 16.883358646444645, 1.008216748888938e-08],
            means: [0.7058333333333332, 0.5308333333333333],
            cohens_d: 4.222787761648626,
        },
        Case {
            name: "p about 1e-30, 15 vs 15 (needs sf, not 1 - cdf)",
            a: &[0.91, 0.93, 0.89, 0.95, 0.92, 0.90, 0.94, 0.88, 0.93, 0.91, 0.92, 0.90, 0.96, 0.89, 0.94],
            b: &[0.31, 0.28, 0.35, 0.30, 0.33, 0.27, 0.36, 0.29, 0.32, 0.34, 0.30, 0.31, 0.26, 0.37, 0.33],
            student: [58.14129158984906, 28.0, 9.564071619933113e-31],
            welch: [58.14129158984906, 25.594012487542955, 1.03024674640411e-28],
            means: [0.918, 0.31466666666666665],
            cohens_d: 21.23019795083049,
        },
        Case {
            name: "p near 1, 8 vs 9",
            a: &[0.40, 0.52, 0.47, 0.61, 0.38, 0.55, 0.49, 0.50],
            b: &[0.45, 0.58, 0.39, 0.53, 0.48, 0.44, 0.60, 0.51, 0.46],
            student: [-0.09587062360592354, 15.0, 0.9248924374387202],
            welch: [-0.09528440600924577, 14.290589638702013, 0.9254121771258151],
            means: [0.49, 0.4933333333333334],
            cohens_d: -0.0465847495312467,
        },
        Case {
            name: "smallest samples, 2 vs 3",
            a: &[0.1, 0.3],
            b: &[0.6, 0.9, 0.75],
            student: [-4.09314624144388, 3.0, 0.026366290612697713],
            welch: [-4.157609203101499, 2.390243902439025, 0.0388481760163311],
            means: [0.2, 0.75],
            cohens_d: -3.736514212677166,
        },
    ];

    #[test]
    fn matches_scipy_ttest_ind() {
        for case in CASES {
            for (kind, [t, df, p]) in [(TTestKind::Student, case.student), (TTestKind::Welch, case.welch)] {
                let r = two_sample_ttest(case.a, case.b, kind).expect(case.name);
                assert_eq!(r.kind, kind);
                close(r.t, t, 1e-9);
                close(r.df, df, 1e-9);
                close(r.p_value, p, 1e-9);
                close(r.mean_a, case.means[0], 1e-12);
                close(r.mean_b, case.means[1], 1e-12);
            }
        }
    }

    #[test]
    fn cohens_d_matches_numpy_formula_and_sign_convention() {
        for case in CASES {
            let d = cohens_d(case.a, case.b).expect(case.name);
            close(d, case.cohens_d, 1e-9);
            // Positive exactly when mean(a) > mean(b); swapping flips the sign.
            assert_eq!(d > 0.0, case.means[0] > case.means[1], "{}", case.name);
            close(cohens_d(case.b, case.a).expect(case.name), -case.cohens_d, 1e-9);
        }
    }

    #[test]
    fn swapping_samples_flips_t_and_keeps_p() {
        for case in CASES {
            for kind in [TTestKind::Student, TTestKind::Welch] {
                let ab = two_sample_ttest(case.a, case.b, kind).expect(case.name);
                let ba = two_sample_ttest(case.b, case.a, kind).expect(case.name);
                close(ba.t, -ab.t, 1e-12);
                close(ba.p_value, ab.p_value, 1e-12);
            }
        }
    }

    #[test]
    fn constant_equal_samples_give_t_zero_p_one() {
        // Summation rounding must not turn identical constants into a huge t:
        // 0.1 summed 3 and 5 times gives means that differ in the last bit.
        for (kind, df) in [(TTestKind::Student, 6.0), (TTestKind::Welch, 1.0)] {
            let r = two_sample_ttest(&[0.1; 3], &[0.1; 5], kind).expect("constant samples");
            assert_eq!((r.t, r.p_value, r.df), (0.0, 1.0, df), "{kind:?}");
        }
        assert_eq!(cohens_d(&[0.1; 3], &[0.1; 5]), Ok(0.0));
    }

    // Expected values from scipy 1.17.1, where scipy defines them:
    //   scipy.stats.ttest_ind([1.0]*4, [0.0]*3, equal_var=True)  -> t = inf, p = 0, df = 5
    //   scipy.stats.ttest_ind([1.0]*4, [0.0]*3, equal_var=False) -> t = inf, p = 0, df = 1
    #[test]
    fn constant_different_samples_give_infinite_t_p_zero() {
        for (kind, df) in [(TTestKind::Student, 5.0), (TTestKind::Welch, 1.0)] {
            let r = two_sample_ttest(&[1.0; 4], &[0.0; 3], kind).expect("constant samples");
            assert_eq!((r.t, r.p_value, r.df), (f64::INFINITY, 0.0, df), "{kind:?}");
            let r = two_sample_ttest(&[0.0; 4], &[1.0; 3], kind).expect("constant samples");
            assert_eq!((r.t, r.p_value), (f64::NEG_INFINITY, 0.0), "{kind:?}");
        }
        assert_eq!(cohens_d(&[1.0; 4], &[0.0; 3]), Ok(f64::INFINITY));
        assert_eq!(cohens_d(&[0.0; 4], &[1.0; 3]), Ok(f64::NEG_INFINITY));
    }

    // Expected values from scipy 1.17.1:
    //   scipy.stats.ttest_ind([0.5, 0.5, 0.5], [0.1, 0.3, 0.2, 0.4], equal_var=...)
    #[test]
    fn one_constant_sample_matches_scipy() {
        let a = [0.5, 0.5, 0.5];
        let b = [0.1, 0.3, 0.2, 0.4];
        let s = two_sample_ttest(&a, &b, TTestKind::Student).expect("valid");
        close(s.t, 3.2732683535398857, 1e-9);
        close(s.df, 5.0, 1e-9);
        close(s.p_value, 0.02211846672232946, 1e-9);
        let w = two_sample_ttest(&a, &b, TTestKind::Welch).expect("valid");
        close(w.t, 3.8729833462074175, 1e-9);
        close(w.df, 3.0, 1e-9);
        close(w.p_value, 0.03046629166217096, 1e-9);
    }

    #[test]
    fn welch_df_survives_tiny_variances() {
        // Scaled by 1e-100, va and vb are ~1e-205 and their squares underflow
        // to 0 in f64; t, df and p must stay those of the unscaled samples.
        let scale = 1e-100;
        let a: Vec<f64> = CASES[0].a.iter().map(|v| v * scale).collect();
        let b: Vec<f64> = CASES[0].b.iter().map(|v| v * scale).collect();
        let tiny = two_sample_ttest(&a, &b, TTestKind::Welch).expect("valid");
        let [t, df, p] = CASES[0].welch;
        close(tiny.t, t, 1e-9);
        close(tiny.df, df, 1e-9);
        close(tiny.p_value, p, 1e-9);
    }

    #[test]
    fn too_few_values_name_the_sample_and_count() {
        let err = two_sample_ttest(&[0.5], &[0.1, 0.2], TTestKind::Welch).expect_err("n_a = 1");
        assert!(
            matches!(err, StatsError::TooFewValues { given: 1, needed: 2, sample, .. } if sample.contains("sample a")),
            "{err:?}"
        );
        let err = two_sample_ttest(&[0.5, 0.6], &[], TTestKind::Student).expect_err("n_b = 0");
        assert!(
            matches!(err, StatsError::TooFewValues { given: 0, sample, .. } if sample.contains("sample b")),
            "{err:?}"
        );
        assert!(err.to_string().contains("has 0 value(s)"), "{err}");
        assert!(matches!(cohens_d(&[0.5], &[0.1, 0.2]), Err(StatsError::TooFewValues { .. })));
    }

    #[test]
    fn nan_is_an_error_not_a_panic() {
        let err = two_sample_ttest(&[0.5, 0.6], &[0.1, f64::NAN, 0.3], TTestKind::Student).expect_err("NaN in b");
        assert!(
            matches!(err, StatsError::NotFinite { index: 1, sample, .. } if sample.contains("sample b")),
            "{err:?}"
        );
        assert!(matches!(cohens_d(&[f64::NAN, 0.6], &[0.1, 0.3]), Err(StatsError::NotFinite { index: 0, .. })));
    }

    #[test]
    fn serde_names_and_infinite_t_round_trip() {
        assert_eq!(serde_json::to_string(&TTestKind::Welch).expect("ser"), "\"welch\"");
        assert_eq!(serde_json::to_string(&TTestKind::Student).expect("ser"), "\"student\"");
        let r = two_sample_ttest(&[0.0; 3], &[1.0; 3], TTestKind::Welch).expect("valid");
        let json = serde_json::to_string(&r).expect("ser");
        assert!(json.contains("\"t\":\"-inf\""), "{json}");
        let back: TTest = serde_json::from_str(&json).expect("de");
        assert_eq!(back, r);
        let finite = two_sample_ttest(CASES[0].a, CASES[0].b, TTestKind::Student).expect("valid");
        let back: TTest = serde_json::from_str(&serde_json::to_string(&finite).expect("ser")).expect("de");
        assert_eq!(back, finite);
    }
}
