//! The Mann–Whitney U rank test, a check on the t-test that does not assume
//! normal scores.
//!
//! TCAV scores are bounded in [0, 1] and often pile up at 0 or 1, so the
//! t-test's normality assumption can be poor; a rank test that agrees with
//! it makes a verdict more trustworthy.
//!
//! statrs 0.19 has `mannwhitneyu`, but its exact two-sided p-value is wrong
//! when the first sample is the smaller one (it returns P(U < u) instead of
//! P(U >= u): 1.0 where scipy gives 0.9626 in the tests below), and its
//! exact method enumerates every arrangement of the ranks. So the test is
//! written here, following scipy's definitions.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, Normal};

use crate::error::Result;
use crate::sample::{binomial_at_most, check};

/// The exact null distribution is used only below this many `(a, b)` pairs:
/// it is a polynomial of degree `n_a · n_b`, and beyond this size (for
/// example 8 against 12 500 values) the normal approximation is excellent.
const EXACT_MAX_PAIRS: usize = 100_000;

/// Largest count of rank arrangements `C(n_a + n_b, min(n_a, n_b))` for the
/// exact method, keeping every intermediate count well inside `i128`.
const EXACT_MAX_ARRANGEMENTS: u128 = 1_000_000_000_000_000_000_000_000_000_000;

/// How the p-value of a rank test was computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RankMethod {
    /// Exact null distribution of U (small samples without ties).
    Exact,
    /// Normal approximation with tie correction and continuity correction.
    Asymptotic,
}

/// The result of a two-sided Mann–Whitney U test of `a` against `b`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RankTest {
    /// The U statistic of sample `a`: the number of pairs in which the `a`
    /// value beats the `b` value, ties counting one half (scipy's
    /// `statistic`). It exceeds `n_a · n_b / 2` when `a` tends to be larger.
    pub u: f64,
    /// Two-sided p-value, in [0, 1].
    pub p_value: f64,
    /// How the p-value was computed.
    pub method: RankMethod,
}

/// Two-sided Mann–Whitney U test of `a` (concept scores) against `b`
/// (baseline scores).
///
/// Matches `scipy.stats.mannwhitneyu(a, b, alternative="two-sided")` with
/// its default `method="auto"`: the exact distribution when one sample has
/// at most 8 values and there are no ties, the normal approximation (with
/// tie and continuity corrections) otherwise. One deviation keeps memory
/// bounded: above 100 000 pairs (`n_a · n_b`) the normal approximation is
/// used even for a small sample.
///
/// Each sample needs at least 1 finite value; otherwise this returns
/// [`StatsError::TooFewValues`](crate::StatsError::TooFewValues) or
/// [`StatsError::NotFinite`](crate::StatsError::NotFinite). When all values
/// are equal, `p_value` is 1.
pub fn mann_whitney_u(a: &[f64], b: &[f64]) -> Result<RankTest> {
    const WHAT: &str = "a Mann-Whitney U test";
    check(a, "sample a (concept scores)", 1, WHAT)?;
    check(b, "sample b (baseline scores)", 1, WHAT)?;
    let (n_a, n_b) = (a.len(), b.len());
    let ranks = midranks(a, b);
    let rank_sum_a: f64 = ranks.ranks[..n_a].iter().sum();
    let u_a = rank_sum_a - (n_a * (n_a + 1)) as f64 / 2.0;
    let u_b = (n_a * n_b) as f64 - u_a;
    // Two-sided: the tail beyond the larger U, doubled.
    let u_max = u_a.max(u_b);
    let small = n_a.min(n_b);
    let exact = !ranks.has_ties
        && small <= 8
        && n_a * n_b <= EXACT_MAX_PAIRS
        && arrangements_at_most(n_a + n_b, small, EXACT_MAX_ARRANGEMENTS);
    let (p_one_sided, method) = if exact {
        (exact_upper_tail(n_a, n_b, u_max), RankMethod::Exact)
    } else {
        (asymptotic_upper_tail(n_a, n_b, u_max, ranks.tie_term), RankMethod::Asymptotic)
    };
    Ok(RankTest { u: u_a, p_value: (2.0 * p_one_sided).clamp(0.0, 1.0), method })
}

/// Ranks of the pooled sample (`a` first, then `b`), ties sharing the mean
/// of their ranks.
struct Ranks {
    ranks: Vec<f64>,
    has_ties: bool,
    /// `sum(t^3 - t)` over groups of `t` tied values.
    tie_term: f64,
}

fn midranks(a: &[f64], b: &[f64]) -> Ranks {
    let pooled: Vec<f64> = a.iter().chain(b).copied().collect();
    let mut order: Vec<usize> = (0..pooled.len()).collect();
    order.sort_by(|&i, &j| pooled[i].total_cmp(&pooled[j]));
    let mut ranks = vec![0.0; pooled.len()];
    let mut has_ties = false;
    let mut tie_term = 0.0;
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        // `==`, not total order: -0.0 and 0.0 are the same score.
        while end < order.len() && pooled[order[end]] == pooled[order[start]] {
            end += 1;
        }
        // 1-based ranks start+1 ..= end share their mean.
        let shared = (start + 1 + end) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = shared;
        }
        let t = (end - start) as f64;
        if end - start > 1 {
            has_ties = true;
            tie_term += t * t * t - t;
        }
        start = end;
    }
    Ranks { ranks, has_ties, tie_term }
}

/// `P(U >= u)` under the null hypothesis, from the exact distribution of U.
///
/// The number of rank arrangements with U = k is the coefficient of q^k in
/// the Gaussian binomial `[n_a + n_b choose m]_q` with m = min(n_a, n_b),
/// built as the product over i = 1..=m of `(1 - q^(n + i)) / (1 - q^i)`
/// (n = the larger size); every partial product is itself a Gaussian
/// binomial, so all divisions are exact.
fn exact_upper_tail(n_a: usize, n_b: usize, u: f64) -> f64 {
    let (m, n) = (n_a.min(n_b), n_a.max(n_b));
    let mut counts: Vec<i128> = vec![1];
    for i in 1..=m {
        let shift = n + i;
        let mut next = vec![0_i128; counts.len() + shift];
        for (k, &c) in counts.iter().enumerate() {
            next[k] += c;
            next[k + shift] -= c;
        }
        for k in i..next.len() {
            next[k] += next[k - i];
        }
        next.truncate(i * n + 1);
        counts = next;
    }
    let total: i128 = counts.iter().sum();
    // Without ties U is an integer; ceil guards against a stray rounding.
    let from = (u.ceil().max(0.0) as usize).min(counts.len());
    let tail: i128 = counts[from..].iter().sum();
    tail as f64 / total as f64
}

/// `P(U >= u)` by the normal approximation with scipy's tie correction of
/// the variance and a continuity correction of 0.5.
fn asymptotic_upper_tail(n_a: usize, n_b: usize, u: f64, tie_term: f64) -> f64 {
    let (n_a, n_b) = (n_a as f64, n_b as f64);
    let n = n_a + n_b;
    let mean = n_a * n_b / 2.0;
    let variance = n_a * n_b / 12.0 * ((n + 1.0) - tie_term / (n * (n - 1.0)));
    if variance <= 0.0 {
        // All values tied: no evidence of any difference.
        return 1.0;
    }
    let z = (u - mean - 0.5) / variance.sqrt();
    Normal::standard().sf(z)
}

/// Whether `C(n, k) <= limit`, without overflowing.
fn arrangements_at_most(n: usize, k: usize, limit: u128) -> bool {
    binomial_at_most(n, k, limit).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StatsError;

    fn close(actual: f64, expected: f64, rel: f64) {
        let tol = rel * expected.abs().max(f64::MIN_POSITIVE);
        assert!((actual - expected).abs() <= tol, "actual {actual:e} vs expected {expected:e} (rel tol {rel:e})");
    }

    fn check_case(a: &[f64], b: &[f64], method: RankMethod, u: f64, p: f64) {
        let r = mann_whitney_u(a, b).expect("valid samples");
        assert_eq!(r.method, method, "a = {a:?}");
        close(r.u, u, 1e-12);
        close(r.p_value, p, 1e-9);
    }

    // Expected values from scipy 1.17.1:
    //   r = scipy.stats.mannwhitneyu(a, b, alternative="two-sided")  (method="auto")
    //   -> (r.statistic, r.pvalue); scipy's choice of method is noted per case.
    #[test]
    fn matches_scipy_mannwhitneyu() {
        // 8 vs 9, no ties: exact. statrs 0.19 returns p = 1.0 here.
        check_case(
            &[0.40, 0.52, 0.47, 0.61, 0.38, 0.55, 0.49, 0.50],
            &[0.45, 0.58, 0.39, 0.53, 0.48, 0.44, 0.60, 0.51, 0.46],
            RankMethod::Exact,
            37.0,
            0.9625668449197862,
        );
        // 10 vs 9, no ties, both above 8: asymptotic.
        check_case(
            &[0.81, 0.62, 0.77, 0.59, 0.93, 0.70, 0.66, 0.88, 0.74, 0.69],
            &[0.51, 0.64, 0.43, 0.58, 0.72, 0.47, 0.55, 0.61, 0.49],
            RankMethod::Asymptotic,
            82.0,
            0.0028804846690270907,
        );
        check_case(&[0.1, 0.3], &[0.6, 0.9, 0.75], RankMethod::Exact, 0.0, 0.2);
        check_case(&[0.3], &[0.1, 0.2], RankMethod::Exact, 2.0, 0.6666666666666666);
        // 15 vs 15, no ties: asymptotic.
        check_case(
            &[0.3, 0.337, 0.374, 0.411, 0.448, 0.485, 0.522, 0.559, 0.596, 0.633, 0.67, 0.707, 0.744, 0.781, 0.818],
            &[0.21, 0.239, 0.268, 0.297, 0.326, 0.355, 0.384, 0.413, 0.442, 0.471, 0.5, 0.529, 0.558, 0.587, 0.616],
            RankMethod::Asymptotic,
            169.0,
            0.020191414969204246,
        );
        // Ties (0.55 in both samples): asymptotic with tie correction.
        check_case(
            &[0.62, 0.71, 0.55, 0.68, 0.74, 0.59, 0.66, 0.70, 0.63, 0.69],
            &[0.48, 0.55, 0.61, 0.42, 0.50, 0.58, 0.47, 0.53, 0.44, 0.57],
            RankMethod::Asymptotic,
            95.5,
            0.0006666008624321637,
        );
        // 7 vs 12 with ties inside sample b: asymptotic.
        check_case(
            &[0.91, 0.35, 0.77, 0.12, 0.64, 0.88, 0.41],
            &[0.52, 0.49, 0.55, 0.50, 0.47, 0.53, 0.51, 0.48, 0.56, 0.46, 0.54, 0.50],
            RankMethod::Asymptotic,
            48.0,
            0.6419036360134158,
        );
    }

    // Expected values from scipy 1.17.1, b = [i / 1000 for i in range(500)]:
    //   mannwhitneyu([0.9 + 0.01 * i for i in range(5)], b)   -> exact
    //   mannwhitneyu([0.1, 0.3, 0.45, 0.2405, 0.7001], b)      -> asymptotic (0.1 and 0.3 tie)
    //   mannwhitneyu(b[:7], [0.1, 0.3, 0.45, 0.2405, 0.7001]) -> exact
    #[test]
    fn matches_scipy_for_a_small_sample_against_a_large_one() {
        let b: Vec<f64> = (0..500).map(|i| f64::from(i) / 1000.0).collect();
        let a: Vec<f64> = (0..5).map(|i| 0.9 + 0.01 * f64::from(i)).collect();
        // The smallest possible exact p for 5 vs 500, 2 / C(505, 5).
        check_case(&a, &b, RankMethod::Exact, 2500.0, 7.453837131807868e-12);
        let mixed = [0.1, 0.3, 0.45, 0.2405, 0.7001];
        check_case(&mixed, &b, RankMethod::Asymptotic, 1592.5, 0.2921819476416586);
        check_case(&b[..7], &mixed, RankMethod::Exact, 0.0, 0.0025252525252525255);
    }

    // Expected value from scipy 1.17.1, b = [i / 12501 for i in range(12501)]:
    //   mannwhitneyu(a, b, method="asymptotic")
    // (scipy's "auto" would pick exact here, p = 0.8431715452937155).
    #[test]
    fn many_pairs_use_the_normal_approximation() {
        let a = [0.0205, 0.5105, 0.3315, 0.9995, 0.7505, 0.1115, 0.4445, 0.6665];
        let b: Vec<f64> = (0..12501).map(|i| f64::from(i) / 12501.0).collect();
        check_case(&a, &b, RankMethod::Asymptotic, 47945.0, 0.8402276521147924);
    }

    #[test]
    fn identical_constant_samples_give_p_one() {
        // scipy: mannwhitneyu([0.5]*3, [0.5]*4) -> U = 6, p = 1
        let r = mann_whitney_u(&[0.5; 3], &[0.5; 4]).expect("valid samples");
        assert_eq!((r.u, r.p_value, r.method), (6.0, 1.0, RankMethod::Asymptotic));
        let r = mann_whitney_u(&[0.5], &[0.5]).expect("valid samples");
        assert_eq!((r.u, r.p_value), (0.5, 1.0));
    }

    #[test]
    fn exact_distribution_counts_arrangements() {
        // For 2 vs 2 the six arrangements give U = 0, 1, 2, 2, 3, 4.
        close(exact_upper_tail(2, 2, 0.0), 1.0, 1e-15);
        close(exact_upper_tail(2, 2, 2.0), 4.0 / 6.0, 1e-15);
        close(exact_upper_tail(2, 2, 3.0), 2.0 / 6.0, 1e-15);
        close(exact_upper_tail(2, 2, 4.0), 1.0 / 6.0, 1e-15);
        assert_eq!(exact_upper_tail(2, 2, 5.0), 0.0);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(matches!(mann_whitney_u(&[], &[0.1]), Err(StatsError::TooFewValues { given: 0, needed: 1, .. })));
        assert!(matches!(mann_whitney_u(&[0.1, f64::NAN], &[0.1]), Err(StatsError::NotFinite { index: 1, .. })));
    }

    #[test]
    fn arrangement_count() {
        assert!(arrangements_at_most(20, 10, 184_756));
        assert!(!arrangements_at_most(20, 10, 184_755));
        assert!(!arrangements_at_most(usize::MAX, 3, EXACT_MAX_ARRANGEMENTS));
    }

    #[test]
    fn serde_names() {
        assert_eq!(serde_json::to_string(&RankMethod::Exact).expect("ser"), "\"exact\"");
        assert_eq!(serde_json::to_string(&RankMethod::Asymptotic).expect("ser"), "\"asymptotic\"");
    }
}
