//! A two-sided permutation test on the difference of means.
//!
//! The t-test assumes roughly normal scores. At deep bottlenecks the
//! random-vs-random TCAV scores pile up at 0 and 1, far from normal, and
//! their large variance caps the t-test's p-values. A permutation test makes
//! no distributional assumption: under the null hypothesis that concept and
//! baseline scores come from one distribution, every way of splitting the
//! pooled scores into groups of the original sizes is equally likely, and
//! the p-value is the share of splits whose difference of means is at least
//! as large as the observed one.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tracing::debug;

use crate::error::{Result, StatsError};
use crate::sample::{binomial_at_most, check};

const SAMPLE_A: &str = "sample a (concept scores)";
const SAMPLE_B: &str = "sample b (baseline scores)";

/// Differences this close to the observed one count as "at least as
/// large", so that the observed split itself always counts even when its
/// sum is rounded differently in another order. For scores in [0, 1] the
/// slack is exactly 1e-12; it grows with the largest magnitude in the data.
const TIE_TOLERANCE: f64 = 1e-12;

/// The result of a two-sided permutation test of sample `a` against sample
/// `b` (in TCAV: concept scores against baseline scores).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PermutationTest {
    /// `mean(a) - mean(b)`: positive when the concept scores lie above the
    /// baseline.
    pub observed_difference: f64,
    /// Two-sided p-value, in (0, 1]: never 0, because the observed split is
    /// one of the splits counted.
    pub p_value: f64,
    /// How many splits the p-value rests on: all `C(n_a + n_b, n_a)` of
    /// them when `exact`, else the number of random permutations drawn.
    pub permutations_used: usize,
    /// Whether every split was enumerated (`true`) or a seeded Monte Carlo
    /// sample of them was drawn (`false`).
    pub exact: bool,
}

/// Two-sided permutation test of `a` against `b` on the difference of
/// means, with statistic `|mean(a*) - mean(b*)|` over splits `(a*, b*)` of
/// the pooled values into groups of the original sizes.
///
/// - **Exact** when the number of splits `C(n_a + n_b, n_a)` is at most
///   `permutations`: every split is enumerated, and the p-value is the
///   share of splits with `|diff*| ≥ |diff_obs| − 1e-12` (the observed split
///   included). This is `scipy.stats.permutation_test` with
///   `permutation_type="independent"`, `n_resamples=np.inf`, the statistic
///   `abs(mean(x) - mean(y))` and `alternative="greater"`. The result does
///   not depend on `seed`.
/// - **Monte Carlo** otherwise: `permutations` random splits are drawn from
///   a ChaCha8 generator seeded with `seed`, and
///   `p = (1 + #{|diff*| ≥ |diff_obs| − 1e-12}) / (1 + permutations)`, the
///   estimate that counts the observed split and so is never 0 (Phipson and
///   Smyth 2010). Its standard error is about `sqrt(p (1 − p) / permutations)`.
///   The same inputs and seed give bit-identical results.
///
/// Each sample needs at least 1 finite value and `permutations` must be at
/// least 1; otherwise this returns
/// [`StatsError::TooFewValues`], [`StatsError::NotFinite`] or
/// [`StatsError::NoPermutations`]. Sums that overflow `f64` give
/// [`StatsError::Overflow`].
pub fn permutation_test(a: &[f64], b: &[f64], permutations: usize, seed: u64) -> Result<PermutationTest> {
    const WHAT: &str = "a permutation test";
    check(a, SAMPLE_A, 1, WHAT)?;
    check(b, SAMPLE_B, 1, WHAT)?;
    if permutations == 0 {
        return Err(StatsError::NoPermutations);
    }
    let (n_a, n_b) = (a.len(), b.len());
    let pooled: Vec<f64> = a.iter().chain(b).copied().collect();
    let n = pooled.len();
    // Splits are drawn by choosing the smaller group; |diff| does not care
    // which group is called a.
    let k = n_a.min(n_b);
    let total: f64 = pooled.iter().sum();
    let sum_a: f64 = a.iter().sum();
    let sum_b: f64 = b.iter().sum();
    if !total.is_finite() || !sum_a.is_finite() {
        return Err(StatsError::Overflow { sample: SAMPLE_A });
    }
    if !sum_b.is_finite() {
        return Err(StatsError::Overflow { sample: SAMPLE_B });
    }
    let observed_difference = sum_a / n_a as f64 - sum_b / n_b as f64;
    let split = |chosen_sum: f64| (chosen_sum / k as f64 - (total - chosen_sum) / (n - k) as f64).abs();
    // The observed split, summed as the enumeration and the draws sum.
    let observed_sum = if k == n_a { sum_a } else { sum_b };
    let scale = pooled.iter().fold(1.0_f64, |m, v| m.max(v.abs()));
    let threshold = split(observed_sum) - TIE_TOLERANCE * scale;

    let result = match binomial_at_most(n, k, permutations as u128) {
        Some(splits) => {
            let at_least = count_all_splits(&pooled, k, |s| split(s) >= threshold);
            let splits = splits as usize;
            PermutationTest {
                observed_difference,
                p_value: at_least as f64 / splits as f64,
                permutations_used: splits,
                exact: true,
            }
        }
        None => {
            let at_least = count_random_splits(&pooled, k, permutations, seed, |s| split(s) >= threshold);
            PermutationTest {
                observed_difference,
                p_value: (1 + at_least) as f64 / (1 + permutations) as f64,
                permutations_used: permutations,
                exact: false,
            }
        }
    };
    debug!(
        n_a,
        n_b,
        exact = result.exact,
        permutations = result.permutations_used,
        p_value = result.p_value,
        "permutation test"
    );
    Ok(result)
}

/// How many of the `C(n, k)` subsets of `k` pooled values have a sum that
/// `counts`. Subsets are visited in lexicographic order of their indices.
fn count_all_splits(pooled: &[f64], k: usize, counts: impl Fn(f64) -> bool) -> usize {
    let n = pooled.len();
    let mut indices: Vec<usize> = (0..k).collect();
    let mut hits = 0;
    loop {
        let sum: f64 = indices.iter().map(|&i| pooled[i]).sum();
        if counts(sum) {
            hits += 1;
        }
        // Advance to the next subset: bump the rightmost index that can
        // still move, and reset everything right of it.
        let Some(pos) = (0..k).rev().find(|&p| indices[p] < n - k + p) else {
            return hits;
        };
        indices[pos] += 1;
        for p in pos + 1..k {
            indices[p] = indices[p - 1] + 1;
        }
    }
}

/// How many of `draws` uniformly random subsets of `k` pooled values have a
/// sum that `counts`, drawn from a ChaCha8 generator seeded with `seed`.
fn count_random_splits(pooled: &[f64], k: usize, draws: usize, seed: u64, counts: impl Fn(f64) -> bool) -> usize {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut values = pooled.to_vec();
    let n = values.len();
    let mut hits = 0;
    for _ in 0..draws {
        // A partial Fisher–Yates shuffle puts a uniform random k-subset in
        // front, whatever order the values were left in by the last draw.
        for i in 0..k {
            let j = rng.random_range(i..n);
            values.swap(i, j);
        }
        let sum: f64 = values[..k].iter().sum();
        if counts(sum) {
            hits += 1;
        }
    }
    hits
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(actual: f64, expected: f64, rel: f64) {
        let tol = rel * expected.abs().max(f64::MIN_POSITIVE);
        assert!((actual - expected).abs() <= tol, "actual {actual:e} vs expected {expected:e} (rel tol {rel:e})");
    }

    #[test]
    fn tiny_cases_by_hand() {
        // [1, 2] vs [3, 4]: the 6 splits of {1, 2, 3, 4} into pairs give
        // differences -2, -1, 0, 0, 1, 2; two reach |2|, so p = 2/6.
        let r = permutation_test(&[1.0, 2.0], &[3.0, 4.0], 100, 0).expect("valid");
        assert_eq!((r.exact, r.permutations_used), (true, 6));
        assert_eq!(r.observed_difference, -2.0);
        close(r.p_value, 1.0 / 3.0, 1e-15);

        // [0] vs [1, 2]: splits give -1.5, 0, 1.5, so p = 2/3.
        let r = permutation_test(&[0.0], &[1.0, 2.0], 3, 0).expect("valid");
        assert_eq!((r.exact, r.permutations_used), (true, 3));
        close(r.p_value, 2.0 / 3.0, 1e-15);

        // 3 vs 4 fully separated: of the C(7, 3) = 35 splits only the
        // observed one reaches |diff| = 0.48 (the reverse split, the three
        // largest against the rest, gives only 0.45), so p = 1/35.
        let r = permutation_test(&[0.1, 0.4, 0.3], &[0.8, 0.6, 0.9, 0.7], 1000, 0).expect("valid");
        assert_eq!((r.exact, r.permutations_used), (true, 35));
        close(r.p_value, 1.0 / 35.0, 1e-12);
        // Expected value from scipy 1.17.1:
        //   permutation_test(([0.1, 0.4, 0.3], [0.8, 0.6, 0.9, 0.7]),
        //     lambda x, y, axis: abs(x.mean(axis) - y.mean(axis)), vectorized=True,
        //     permutation_type="independent", alternative="greater", n_resamples=inf).pvalue
        close(r.p_value, 0.02857142857142857, 1e-12);

        // No difference at all: every split ties with the observed one.
        let r = permutation_test(&[0.5, 0.5], &[0.5], 10, 0).expect("valid");
        assert_eq!((r.p_value, r.observed_difference), (1.0, 0.0));
    }

    // Scores with a modest difference of means, 8 vs 8: C(16, 8) = 12 870.
    const A: [f64; 8] = [0.62, 0.55, 0.71, 0.48, 0.66, 0.59, 0.70, 0.52];
    const B: [f64; 8] = [0.50, 0.61, 0.45, 0.53, 0.42, 0.57, 0.49, 0.47];
    // Expected value from scipy 1.17.1 (same call as above, on A and B),
    // and from enumerating itertools.combinations(range(16), 8): 292 / 12870.
    const P_EXACT: f64 = 0.02268842268842269;

    #[test]
    fn mid_size_exact_matches_scipy_and_ignores_the_seed() {
        let r = permutation_test(&A, &B, 12_870, 1).expect("valid");
        assert_eq!((r.exact, r.permutations_used), (true, 12_870));
        close(r.p_value, P_EXACT, 1e-12);
        close(r.observed_difference, 0.09875, 1e-12);
        assert_eq!(permutation_test(&A, &B, 50_000, 99).expect("valid"), r);
        // Swapping the samples flips the difference, not the p-value.
        let swapped = permutation_test(&B, &A, 12_870, 1).expect("valid");
        assert_eq!(swapped.p_value, r.p_value);
        assert_eq!(swapped.observed_difference, -r.observed_difference);
    }

    #[test]
    fn monte_carlo_is_within_binomial_error_of_exact() {
        let draws = 12_869; // one short of exact enumeration
        let sd = (P_EXACT * (1.0 - P_EXACT) / draws as f64).sqrt();
        // 4.5 standard errors plus the +1 of the estimator: a false alarm
        // about once in 150 000 seeds.
        let tolerance = 4.5 * sd + 1.0 / draws as f64;
        for seed in [0, 1, 2, 3, 0xdead_beef] {
            let r = permutation_test(&A, &B, draws, seed).expect("valid");
            assert_eq!((r.exact, r.permutations_used), (false, draws));
            assert!(
                (r.p_value - P_EXACT).abs() <= tolerance,
                "seed {seed}: Monte Carlo p {} vs exact {P_EXACT} (tolerance {tolerance})",
                r.p_value
            );
        }
    }

    #[test]
    fn monte_carlo_is_deterministic_per_seed() {
        let a: Vec<f64> = (0..30).map(|i| f64::from(i % 7) / 7.0).collect();
        let b: Vec<f64> = (0..40).map(|i| f64::from(i % 5) / 5.0).collect();
        let first = permutation_test(&a, &b, 2_000, 42).expect("valid");
        let again = permutation_test(&a, &b, 2_000, 42).expect("valid");
        assert!(!first.exact);
        assert_eq!(first.p_value.to_bits(), again.p_value.to_bits());
        // Different seeds draw different splits: over several seeds the
        // estimates cannot all coincide.
        let estimates: Vec<u64> =
            (0..6).map(|s| permutation_test(&a, &b, 2_000, s).expect("valid").p_value.to_bits()).collect();
        assert!(estimates.windows(2).any(|w| w[0] != w[1]), "{estimates:?}");
    }

    #[test]
    fn strong_difference_gives_smallest_monte_carlo_p() {
        let a = [0.9; 20];
        let b: Vec<f64> = (0..20).map(|i| 0.1 + f64::from(i) * 0.01).collect();
        let r = permutation_test(&a, &b, 999, 7).expect("valid");
        // C(40, 20) splits, none of the random ones as extreme as observed.
        assert_eq!(r.p_value, 1.0 / 1000.0);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(matches!(
            permutation_test(&[], &[0.1], 10, 0),
            Err(StatsError::TooFewValues { given: 0, needed: 1, .. })
        ));
        assert!(matches!(
            permutation_test(&[0.1], &[0.2, f64::NAN], 10, 0),
            Err(StatsError::NotFinite { index: 1, .. })
        ));
        let err = permutation_test(&[0.1], &[0.2], 0, 0).expect_err("0 permutations");
        assert_eq!(err, StatsError::NoPermutations);
        assert!(err.to_string().contains("at least 1"), "{err}");
        assert!(matches!(permutation_test(&[f64::MAX, f64::MAX], &[0.2], 10, 0), Err(StatsError::Overflow { .. })));
    }

    #[test]
    fn serde_round_trip() {
        let r = permutation_test(&A, &B, 500, 3).expect("valid");
        let json = serde_json::to_string(&r).expect("ser");
        assert!(json.contains("\"exact\":false") && json.contains("\"permutations_used\":500"), "{json}");
        let back: PermutationTest = serde_json::from_str(&json).expect("de");
        assert_eq!(back, r);
    }
}
