//! Multiple-testing corrections over a whole experiment.
//!
//! A TCAV experiment tests every (concept, bottleneck, class) triple; at
//! alpha = 0.05, one in twenty of them is "significant" by chance alone.
//! [`adjust`] turns the raw p-values of all tests into adjusted p-values that
//! can be compared with alpha directly, as statsmodels'
//! `multipletests(p, method=...)[1]` does.

use serde::{Deserialize, Serialize};
use tracing::warn;

/// How to adjust p-values for the number of tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Correction {
    /// No adjustment: each p-value is used as is.
    None,
    /// Bonferroni: `min(1, m · p)`. Controls the family-wise error rate;
    /// the most conservative.
    Bonferroni,
    /// Holm's step-down method. Controls the family-wise error rate like
    /// Bonferroni, and is never less powerful.
    Holm,
    /// Benjamini–Hochberg step-up method. Controls the false discovery rate
    /// (the expected share of false positives among the significant
    /// results), for independent or positively dependent tests.
    BenjaminiHochberg,
}

/// Adjusts the p-values of all tests of an experiment, returning the
/// adjusted p-values in the input order.
///
/// Results match statsmodels' `multipletests(p, method=m)[1]` for
/// `m = "bonferroni" | "holm" | "fdr_bh"`: capped at 1, and monotone in the
/// raw p-values (Holm takes the cumulative maximum of `(m - i) · p_(i)` from
/// the smallest p upwards; Benjamini–Hochberg the cumulative minimum of
/// `p_(i) · m / i` from the largest p downwards). Tied p-values get equal
/// adjusted values.
///
/// This function cannot fail. Inputs outside the p-value domain are handled
/// as R's `p.adjust` does: NaN entries stay NaN in the output and do not
/// count towards the number of tests `m`. Values below 0 or above 1 are
/// clamped into [0, 1] (with a warning), since they can only come from a bug
/// upstream.
pub fn adjust(p_values: &[f64], correction: Correction) -> Vec<f64> {
    let mut adjusted: Vec<f64> = p_values
        .iter()
        .map(|&p| {
            if (0.0..=1.0).contains(&p) || p.is_nan() {
                p
            } else {
                warn!(p_value = p, "p-value outside [0, 1] clamped before adjustment");
                p.clamp(0.0, 1.0)
            }
        })
        .collect();
    // Indices of the real p-values, from the smallest p to the largest.
    let mut order: Vec<usize> = (0..adjusted.len()).filter(|&i| !adjusted[i].is_nan()).collect();
    order.sort_by(|&i, &j| adjusted[i].total_cmp(&adjusted[j]));
    let m = order.len();
    let mf = m as f64;
    match correction {
        Correction::None => {}
        Correction::Bonferroni => {
            for &i in &order {
                adjusted[i] = (adjusted[i] * mf).min(1.0);
            }
        }
        Correction::Holm => {
            let mut running_max = 0.0_f64;
            for (rank, &i) in order.iter().enumerate() {
                running_max = running_max.max(adjusted[i] * (m - rank) as f64);
                adjusted[i] = running_max.min(1.0);
            }
        }
        Correction::BenjaminiHochberg => {
            let mut running_min = f64::INFINITY;
            for (rank, &i) in order.iter().enumerate().rev() {
                // p / (rank / m) rather than p * m / rank: the same rounding
                // as statsmodels, so results agree to the last bit.
                let ecdf = (rank + 1) as f64 / mf;
                running_min = running_min.min(adjusted[i] / ecdf);
                adjusted[i] = running_min.min(1.0);
            }
        }
    }
    adjusted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_close_all(actual: &[f64], expected: &[f64], label: &str) {
        assert_eq!(actual.len(), expected.len(), "{label}");
        for (k, (&a, &e)) in actual.iter().zip(expected).enumerate() {
            assert!((a - e).abs() <= 1e-9 * e.abs(), "{label}[{k}]: {a} vs {e}");
        }
    }

    // Eight p-values with a three-way tie at 0.04, in no particular order.
    const P: [f64; 8] = [0.01, 0.04, 0.04, 0.03, 0.2, 0.001, 0.04, 0.8];
    // A second vector with a tie at the smallest value.
    const P2: [f64; 5] = [0.5, 0.9, 0.02, 0.02, 0.3];

    // Expected values from statsmodels 0.15.0:
    //   statsmodels.stats.multitest.multipletests(P, alpha=0.05, method=M)[1]
    // for M = "bonferroni", "holm", "fdr_bh".
    #[test]
    fn matches_statsmodels_multipletests() {
        let cases: [(&[f64], Correction, &[f64]); 6] = [
            (&P, Correction::Bonferroni, &[0.08, 0.32, 0.32, 0.24, 1.0, 0.008, 0.32, 1.0]),
            (&P, Correction::Holm, &[0.07, 0.2, 0.2, 0.18, 0.4, 0.008, 0.2, 0.8]),
            (
                &P,
                Correction::BenjaminiHochberg,
                &[
                    0.04,
                    0.05333333333333334,
                    0.05333333333333334,
                    0.05333333333333334,
                    0.2285714285714286,
                    0.008,
                    0.05333333333333334,
                    0.8,
                ],
            ),
            (&P2, Correction::Bonferroni, &[1.0, 1.0, 0.1, 0.1, 1.0]),
            (&P2, Correction::Holm, &[1.0, 1.0, 0.1, 0.1, 0.8999999999999999]),
            (&P2, Correction::BenjaminiHochberg, &[0.625, 0.9, 0.049999999999999996, 0.049999999999999996, 0.5]),
        ];
        for (p, correction, expected) in cases {
            assert_close_all(&adjust(p, correction), expected, &format!("{correction:?}"));
        }
    }

    #[test]
    fn none_returns_the_input() {
        assert_eq!(adjust(&P, Correction::None), P.to_vec());
    }

    #[test]
    fn adjusted_values_are_monotone_capped_and_not_below_raw() {
        for correction in [Correction::Bonferroni, Correction::Holm, Correction::BenjaminiHochberg] {
            let adj = adjust(&P, correction);
            for i in 0..P.len() {
                assert!(adj[i] >= P[i] && adj[i] <= 1.0, "{correction:?}[{i}]");
                for j in 0..P.len() {
                    if P[i] <= P[j] {
                        assert!(adj[i] <= adj[j], "{correction:?}: order of {i} and {j}");
                    }
                }
            }
        }
    }

    #[test]
    fn empty_and_single_inputs() {
        for correction in [Correction::Bonferroni, Correction::Holm, Correction::BenjaminiHochberg] {
            assert!(adjust(&[], correction).is_empty());
            assert_eq!(adjust(&[0.03], correction), vec![0.03]);
        }
    }

    #[test]
    fn nan_stays_nan_and_is_not_counted() {
        let adj = adjust(&[0.01, f64::NAN, 0.02], Correction::Bonferroni);
        assert!(adj[1].is_nan());
        assert_eq!((adj[0], adj[2]), (0.02, 0.04));
        let adj = adjust(&[f64::NAN, 0.01, 0.04], Correction::Holm);
        assert!(adj[0].is_nan());
        assert_eq!((adj[1], adj[2]), (0.02, 0.04));
    }

    #[test]
    fn out_of_range_values_are_clamped() {
        assert_eq!(adjust(&[-0.5, 1.5], Correction::None), vec![0.0, 1.0]);
        assert_eq!(adjust(&[-0.5, 0.2], Correction::Bonferroni), vec![0.0, 0.4]);
    }

    #[test]
    fn serde_names() {
        let names = [
            (Correction::None, "\"none\""),
            (Correction::Bonferroni, "\"bonferroni\""),
            (Correction::Holm, "\"holm\""),
            (Correction::BenjaminiHochberg, "\"benjamini-hochberg\""),
        ];
        for (correction, name) in names {
            assert_eq!(serde_json::to_string(&correction).expect("ser"), name);
            assert_eq!(serde_json::from_str::<Correction>(name).expect("de"), correction);
        }
    }
}
