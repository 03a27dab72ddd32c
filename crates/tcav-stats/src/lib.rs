//! The statistical-testing stage of tcav-rs.
//!
//! Takes: plain samples of scores (`&[f64]`), typically the TCAV scores of a
//! concept over many random-set runs and the TCAV scores of the random sets
//! themselves (the baseline). Produces: [`Summary`]s (mean, sample standard
//! deviation, 95 % confidence interval), two-sample t-tests ([`TTest`],
//! Student or Welch), an effect size ([`cohens_d`]), a rank test
//! ([`mann_whitney_u`]), a seeded permutation test on the difference of
//! means ([`permutation_test`]), the spread of the random baseline
//! ([`baseline_spread`]: quartiles and the share of scores at 0 or 1, which
//! caps the t-test's p-values at deep bottlenecks), p-values adjusted for
//! testing many concepts and bottlenecks at once ([`adjust`]), and [`Verdict`]s that say in which
//! [`Direction`] a significant concept pushes the class.
//!
//! Invariant: this crate never depends on tch (nor on images, files or the
//! network), and it never calls a result "important" when the concept scores
//! lie *below* the baseline: a two-sided test also flags scores near 0, and
//! those mean the concept pushes *away* from the class
//! ([`Direction::Below`]).
//!
//! Numbers are checked against scipy and statsmodels (reference values are
//! written into the tests). Where scipy returns NaN (both samples constant and
//! equal), this crate returns a defined answer instead; see
//! [`two_sample_ttest`].

#![deny(missing_docs)]

pub mod correction;
pub mod error;
mod float_serde;
pub mod permutation;
pub mod rank;
mod sample;
pub mod spread;
pub mod summary;
pub mod ttest;
pub mod unit;
pub mod verdict;

pub use correction::{Correction, adjust};
pub use error::{Result, StatsError};
pub use permutation::{PermutationTest, permutation_test};
pub use rank::{RankMethod, RankTest, mann_whitney_u};
pub use spread::{BaselineSpread, EXTREME_HIGH, EXTREME_LOW, baseline_spread};
pub use summary::{Summary, summarize};
pub use ttest::{TTest, TTestKind, cohens_d, two_sample_ttest};
pub use unit::{unit_rank_p_value, unit_ttest, unit_ttest_dependent};
pub use verdict::{Direction, Verdict};
