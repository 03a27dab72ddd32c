//! The error type of the statistical-testing stage.

/// What can go wrong when summarising or testing score samples.
///
/// `sample` fields name the offending input in the caller's words: for the
/// two-sample functions, sample `a` holds the concept's TCAV scores and
/// sample `b` the baseline (random-set) scores.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StatsError {
    /// A sample is too small for the requested statistic.
    #[error(
        "{sample} has {given} value(s), but {what} needs at least {needed}: \
         collect more scores (for TCAV, run the experiment with more random sets)"
    )]
    TooFewValues {
        /// Which sample ("sample a (concept scores)", "the sample", ...).
        sample: &'static str,
        /// How many values were given.
        given: usize,
        /// How many are needed.
        needed: usize,
        /// The statistic that was asked for.
        what: &'static str,
    },
    /// A sample holds NaN or an infinity.
    #[error(
        "{sample} value #{index} is {value}: scores must be finite numbers; \
         find where it came from upstream (an empty set of images gives 0/0) \
         and fix it there rather than dropping it"
    )]
    NotFinite {
        /// Which sample.
        sample: &'static str,
        /// The 0-based position of the bad value.
        index: usize,
        /// The bad value.
        value: f64,
    },
    /// The values are so large that their mean or variance overflows `f64`.
    #[error(
        "the mean or variance of {sample} overflows f64: scores should be of \
         order 1 (TCAV scores lie in [0, 1]); check that the right numbers are passed"
    )]
    Overflow {
        /// Which sample.
        sample: &'static str,
    },
    /// A significance level outside (0, 1).
    #[error("alpha = {alpha} is not a significance level: use a value strictly between 0 and 1, such as 0.05")]
    InvalidAlpha {
        /// The rejected value.
        alpha: f64,
    },
    /// A p-value that is NaN or outside [0, 1].
    #[error(
        "p-value {p_value} is not a probability: pass the adjusted p-value \
         returned by `adjust` (a number in [0, 1])"
    )]
    InvalidPValue {
        /// The rejected value.
        p_value: f64,
    },
    /// A permutation test was asked to draw no permutations.
    #[error(
        "a permutation test with 0 permutations cannot give a p-value: \
         ask for at least 1 (10 000 resolves p-values down to about 1e-4)"
    )]
    NoPermutations,
    /// statrs refused a rank test that our checks had accepted; should be
    /// unreachable.
    #[error(
        "the Mann-Whitney U test failed ({reason}): this is a bug in \
         tcav-stats, please report it with the input scores"
    )]
    RankTest {
        /// statrs' explanation.
        reason: String,
    },
    /// The Student t distribution could not be built; our own checks should
    /// make this unreachable.
    #[error(
        "cannot build a Student t distribution with {df} degrees of freedom: \
         this is a bug in tcav-stats, please report it with the input scores"
    )]
    DegreesOfFreedom {
        /// The rejected degrees of freedom.
        df: f64,
    },
}

/// Result alias for this crate.
pub type Result<T, E = StatsError> = std::result::Result<T, E>;
