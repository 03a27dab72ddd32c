//! Input checks and sample moments shared by the tests and summaries.

use statrs::distribution::StudentsT;

use crate::error::{Result, StatsError};

/// Mean and sample variance (ddof = 1) of a checked sample.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Moments {
    pub(crate) n: usize,
    pub(crate) mean: f64,
    pub(crate) var: f64,
}

/// Rejects samples that are too short or hold a non-finite value.
pub(crate) fn check(values: &[f64], sample: &'static str, needed: usize, what: &'static str) -> Result<()> {
    if values.len() < needed {
        return Err(StatsError::TooFewValues { sample, given: values.len(), needed, what });
    }
    if let Some((index, &value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(StatsError::NotFinite { sample, index, value });
    }
    Ok(())
}

/// Mean and sample variance of a sample already accepted by [`check`] with
/// `needed >= 2`.
pub(crate) fn moments(values: &[f64], sample: &'static str) -> Result<Moments> {
    let n = values.len();
    // A constant sample must have exactly zero variance and its own value as
    // mean: summation rounding (0.1 + 0.1 + 0.1 != 0.3) would otherwise give
    // a variance of ~1e-34 and turn "no difference at all" into a huge t.
    // TCAV scores are fractions k/N, so constant samples are common.
    if let Some(&first) = values.first()
        && values.iter().all(|&v| v == first)
    {
        return Ok(Moments { n, mean: first, var: 0.0 });
    }
    let nf = n as f64;
    let mean = values.iter().sum::<f64>() / nf;
    // Two passes, as numpy does, to avoid the cancellation of sum(x^2) - n*mean^2.
    let var = values.iter().map(|&v| (v - mean) * (v - mean)).sum::<f64>() / (nf - 1.0);
    if !mean.is_finite() || !var.is_finite() {
        return Err(StatsError::Overflow { sample });
    }
    Ok(Moments { n, mean, var })
}

/// `C(n, k)` if it is at most `limit`, else `None`, without overflowing:
/// the number of ways to split a pooled sample of `n` values into groups
/// of `k` and `n - k`.
pub(crate) fn binomial_at_most(n: usize, k: usize, limit: u128) -> Option<u128> {
    let k = k.min(n.saturating_sub(k));
    let mut count: u128 = 1;
    for i in 0..k {
        // C(n, i+1) = C(n, i) · (n - i) / (i + 1) is exact at every step.
        count = count.checked_mul((n - i) as u128)? / (i + 1) as u128;
        if count > limit {
            return None;
        }
    }
    (count <= limit).then_some(count)
}

/// The standard Student t distribution with `df` degrees of freedom.
pub(crate) fn students_t(df: f64) -> Result<StudentsT> {
    StudentsT::new(0.0, 1.0, df).map_err(|_| StatsError::DegreesOfFreedom { df })
}
