//! The results of one TCAV experiment, as plain data, and their checks.
//!
//! The orchestrator fills an [`ExperimentReport`] from the outputs of the
//! statistics stage. Everything in it is already computed; this crate only
//! checks that it is complete and self-consistent before presenting it.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use tcav_core::SetName;

use crate::error::{ReportError, Result};

/// Everything a report presents about one TCAV experiment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExperimentReport {
    /// The experiment's name, from its config.
    pub experiment: String,
    /// Identifies this run of the experiment (for example a timestamp or the
    /// key of its final artifact).
    pub run_id: String,
    /// The experiment's master seed; every random choice derives from it.
    pub seed: u64,
    /// The significance level the verdicts were decided at, after correction.
    pub alpha: f64,
    /// The multiple-comparison correction applied to the p-values
    /// (for example `"bonferroni"`).
    pub correction: String,
    /// The statistical test comparing concept scores with the random baseline
    /// (for example `"welch"`).
    pub test: String,
    /// The classifier being explained.
    pub classifier: ClassifierSummary,
    /// The layers (bottlenecks) CAVs were fitted at, in presentation order.
    pub layers: Vec<String>,
    /// The classes TCAV scores were computed for, in presentation order.
    pub classes: Vec<String>,
    /// The concepts tested, in presentation order.
    pub concepts: Vec<String>,
    /// The random sets that CAVs were fitted against (one per random run).
    pub random_sets: Vec<String>,
    /// One row per (class, layer, concept).
    pub results: Vec<ConceptResult>,
    /// The CAV estimator (for example `"logistic"`, `"sgd-hinge"`,
    /// `"mean-difference"`, `"pattern"`). Empty in reports written before
    /// it was recorded.
    #[serde(default)]
    pub estimator: String,
    /// How concepts and the random baseline were paired (for example
    /// `"all-pairs baseline"` or `"single random counterpart"`). Empty in
    /// reports written before it was recorded.
    #[serde(default)]
    pub design: String,
    /// The mean held-out CAV accuracy, in `[0, 1]`, at or above which a row's
    /// CAVs count as [`reliable`](ConceptResult::reliable); below it the CAVs
    /// are near chance and no significance is claimed. 0 in reports written
    /// before the accuracy gate existed (every row then counts as reliable).
    #[serde(default)]
    pub accuracy_threshold: f64,
    /// The test behind [`rank_p_value`](ConceptResult::rank_p_value), run
    /// beside the t-test (for example `"mann-whitney"` or
    /// `"permutation (10000)"`). Empty when no such test was run.
    #[serde(default)]
    pub rank_test: String,
    /// How each verdict and p-value moves as the number of random runs
    /// grows: at most one row per (class, layer, concept) of `results`.
    /// Empty when not computed.
    #[serde(default)]
    pub stability: Vec<StabilityRow>,
}

/// How the verdict of one (class, layer, concept) changes with the number of
/// random runs it rests on: a user sees from it whether they ran enough.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StabilityRow {
    /// The class, as in [`ConceptResult::class`].
    pub class: String,
    /// The layer (bottleneck), as in [`ConceptResult::layer`].
    pub layer: String,
    /// The concept, as in [`ConceptResult::concept`].
    pub concept: String,
    /// One point per number of random runs, by strictly increasing `runs`
    /// (for example 5, 10, 20, …, N).
    pub points: Vec<StabilityPoint>,
}

/// The test of one (class, layer, concept) using only its first `runs`
/// random runs.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct StabilityPoint {
    /// How many random runs the test used.
    pub runs: usize,
    /// The p-value before correction.
    pub p_value: f64,
    /// The p-value after the multiple-comparison correction over all
    /// hypotheses tested with this many runs.
    pub p_adjusted: f64,
    /// The conclusion drawn at the report's `alpha` from `p_adjusted`.
    pub verdict: Verdict,
}

/// What the report says about the classifier itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassifierSummary {
    /// The architecture's name (for example `"simple-cnn"`).
    pub architecture: String,
    /// Accuracy on the held-out test split, in `[0, 1]`.
    pub test_accuracy: f64,
    /// Test accuracy per class, in `[0, 1]`, as `(class, accuracy)` pairs.
    pub per_class_accuracy: Vec<(String, f64)>,
}

/// The TCAV result for one concept, at one layer, for one class.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConceptResult {
    /// The class whose logit the directional derivatives were taken of.
    pub class: String,
    /// The layer (bottleneck) the CAVs live in.
    pub layer: String,
    /// The concept.
    pub concept: String,
    /// One TCAV score per random run: the fraction of the class's images
    /// whose class logit increases along the concept's CAV.
    pub scores: Vec<f64>,
    /// Mean of `scores`.
    pub mean: f64,
    /// Standard deviation of `scores`.
    pub std: f64,
    /// Random-vs-random TCAV scores for this class and layer: what a concept
    /// with no meaning scores.
    pub baseline_scores: Vec<f64>,
    /// Mean of `baseline_scores`.
    pub baseline_mean: f64,
    /// Standard deviation of `baseline_scores`.
    pub baseline_std: f64,
    /// Mean held-out accuracy of the CAVs (concept vs random set); near 0.5
    /// means the layer does not separate the concept from random images.
    pub cav_accuracy_mean: f64,
    /// The test statistic. It is ±inf when both samples are constant with
    /// different means (written as the strings `"inf"` / `"-inf"` in JSON,
    /// which has no infinity).
    #[serde(with = "crate::float_serde::plain")]
    pub t: f64,
    /// The p-value before correction.
    pub p_value: f64,
    /// The p-value after the multiple-comparison correction.
    pub p_adjusted: f64,
    /// The conclusion drawn at `alpha` from `p_adjusted`.
    pub verdict: Verdict,
    /// Lower end of the 95 % confidence interval of `mean` (Student t
    /// interval over the runs). `None` where not computed, as in reports
    /// written before it existed; the same holds for every optional field
    /// below.
    #[serde(default)]
    pub ci95_low: Option<f64>,
    /// Upper end of the 95 % confidence interval of `mean`.
    #[serde(default)]
    pub ci95_high: Option<f64>,
    /// Cohen's d of the concept's scores against the baseline's: positive
    /// when the concept scores above it. ±inf when both samples are
    /// constant with different means (written as `"inf"` / `"-inf"`).
    #[serde(default, with = "crate::float_serde::optional")]
    pub cohens_d: Option<f64>,
    /// Mean over the random runs of Captum's TCAV magnitude score: the sum
    /// of the positive directional derivatives over the sum of their
    /// absolute values, in `[0, 1]`. Unlike the sign-count `scores`, it
    /// weighs each image by how strongly the concept moves its logit.
    #[serde(default)]
    pub magnitude_mean: Option<f64>,
    /// Standard deviation of the magnitude score over the random runs.
    #[serde(default)]
    pub magnitude_std: Option<f64>,
    /// The p-value of the rank or permutation test run beside the t-test
    /// (named by [`ExperimentReport::rank_test`]), before correction. It
    /// makes no normality assumption, so it stays informative when the
    /// baseline piles up at 0 and 1.
    #[serde(default)]
    pub rank_p_value: Option<f64>,
    /// Fraction of `baseline_scores` at ≤ 0.05 or ≥ 0.95. A large fraction
    /// (often seen at deep layers) inflates the baseline's variance and caps
    /// the t-test's p-values.
    #[serde(default)]
    pub baseline_extreme_fraction: Option<f64>,
    /// Whether the CAVs separate the concept from random images:
    /// `cav_accuracy_mean >= accuracy_threshold` of the report. A row that is
    /// not reliable never carries a significant verdict. True when absent,
    /// as in reports written before the accuracy gate existed.
    #[serde(default = "reliable_when_absent")]
    pub reliable: bool,
    /// Where the per-image directional derivatives of this row are stored,
    /// relative to the report's folder (written by the orchestrator).
    #[serde(default)]
    pub derivatives_file: Option<String>,
}

/// Reports written before the accuracy gate made no reliability claim; their
/// verdicts were drawn as if every row were reliable.
fn reliable_when_absent() -> bool {
    true
}

/// The conclusion about one concept, class and layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Scores are significantly above the random baseline: the concept pushes
    /// the classifier toward the class.
    Above,
    /// Scores are significantly below the random baseline: the concept pushes
    /// the classifier away from the class.
    Below,
    /// Scores are not significantly different from the random baseline: the
    /// TCAV score is no evidence in either direction.
    NotSignificant,
    /// The CAVs are near chance (their mean held-out accuracy is below the
    /// report's threshold): they may not point toward the concept at all, so
    /// no significance is claimed whatever the p-value.
    Unreliable,
}

impl Verdict {
    /// The verdict in words that state its direction.
    pub fn describe(self) -> &'static str {
        match self {
            Verdict::Above => "above baseline (pushes toward class)",
            Verdict::Below => "below baseline (pushes away)",
            Verdict::NotSignificant => "not significant",
            Verdict::Unreliable => "CAVs near chance: no claim",
        }
    }

    /// The verdict as spelled in JSON and CSV.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Above => "above",
            Verdict::Below => "below",
            Verdict::NotSignificant => "not-significant",
            Verdict::Unreliable => "unreliable",
        }
    }

    /// Whether the difference from the baseline is significant (never for
    /// [`Verdict::Unreliable`]).
    pub fn is_significant(self) -> bool {
        matches!(self, Verdict::Above | Verdict::Below)
    }
}

/// Relative slack allowed when comparing a corrected p-value with the raw
/// one: a correction like Benjamini–Hochberg multiplies by `m/k` and may
/// round a hair below `p` when `m == k`.
const P_ROUNDING: f64 = 1e-12;

/// Absolute slack for comparisons between numbers that were computed apart
/// (a mean and its interval, a CAV accuracy and its threshold): either
/// answer is accepted this close to the boundary.
const NUMBER_ROUNDING: f64 = 1e-12;

impl ExperimentReport {
    /// Checks that the report is complete and consistent: every result names
    /// a listed class, layer and concept, appears once, holds finite numbers
    /// in their ranges, and has a verdict that agrees with its corrected
    /// p-value, `alpha` and the sign of `mean - baseline_mean`.
    ///
    /// The accuracy gate is checked too: `reliable` must agree with
    /// `cav_accuracy_mean` and `accuracy_threshold`, a
    /// [`Verdict::Unreliable`] row must not be reliable, and a significant
    /// verdict must be. Optional numbers, where present, must lie in their
    /// ranges (the interval around `mean`, Cohen's d on the side of `mean -
    /// baseline_mean`), and every stability row must name a result and
    /// hold points by strictly increasing run count with verdicts that agree
    /// with their p-values.
    ///
    /// Every writer in this crate calls it first, so nothing invalid is ever
    /// written.
    pub fn validate(&self) -> Result<()> {
        self.validate_header()?;
        let mut seen = HashSet::new();
        for (index, row) in self.results.iter().enumerate() {
            let fail = |problem: String| ReportError::InvalidResult {
                index,
                class: row.class.clone(),
                layer: row.layer.clone(),
                concept: row.concept.clone(),
                problem,
            };
            self.validate_row(row).map_err(fail)?;
            if !seen.insert((&row.class, &row.layer, &row.concept)) {
                return Err(fail(
                    "a second result for the same class, layer and concept: keep one row per triple".into(),
                ));
            }
        }
        let mut seen = HashSet::new();
        for (index, row) in self.stability.iter().enumerate() {
            let fail = |problem: String| ReportError::InvalidStability {
                index,
                class: row.class.clone(),
                layer: row.layer.clone(),
                concept: row.concept.clone(),
                problem,
            };
            self.validate_stability(row).map_err(fail)?;
            if !seen.insert((&row.class, &row.layer, &row.concept)) {
                return Err(fail(
                    "a second stability row for the same class, layer and concept: keep one row per triple".into(),
                ));
            }
        }
        Ok(())
    }

    fn validate_header(&self) -> Result<()> {
        let field = |field: &str, problem: String| ReportError::InvalidField { field: field.into(), problem };
        if !(self.alpha.is_finite() && self.alpha > 0.0 && self.alpha < 1.0) {
            return Err(field(
                "alpha",
                format!(
                    "{} is not a significance level: use a number strictly between 0 and 1, such as 0.05",
                    self.alpha
                ),
            ));
        }
        check_fraction(self.accuracy_threshold).map_err(|p| {
            field("accuracy_threshold", format!("{p}; give the CAV accuracy gate as a fraction, such as 0.6"))
        })?;
        if self.rank_test.trim().is_empty() && self.results.iter().any(|r| r.rank_p_value.is_some()) {
            return Err(field(
                "rank_test",
                "results carry `rank_p_value` but the test behind it is not named: set `rank_test` (for example \"mann-whitney\")".into(),
            ));
        }
        check_fraction(self.classifier.test_accuracy).map_err(|p| {
            field("classifier.test_accuracy", format!("{p}; store accuracy as a fraction, such as 0.93"))
        })?;
        for (class, accuracy) in &self.classifier.per_class_accuracy {
            check_fraction(*accuracy).map_err(|p| {
                field(
                    "classifier.per_class_accuracy",
                    format!("class `{class}`: {p}; store accuracy as a fraction, such as 0.93"),
                )
            })?;
        }
        for class in &self.classes {
            // The class names a chart file, so it must be a safe file name.
            SetName::new(class.as_str()).map_err(|e| field("classes", e.to_string()))?;
        }
        for (name, list) in [
            ("layers", &self.layers),
            ("classes", &self.classes),
            ("concepts", &self.concepts),
            ("random_sets", &self.random_sets),
        ] {
            let mut seen = HashSet::new();
            for item in list {
                if item.trim().is_empty() {
                    return Err(field(name, "an empty name: give every entry a name".into()));
                }
                if !seen.insert(item) {
                    return Err(field(name, format!("`{item}` is listed twice: list each name once")));
                }
            }
        }
        Ok(())
    }

    fn validate_row(&self, row: &ConceptResult) -> std::result::Result<(), String> {
        for (what, value, list) in [
            ("class", &row.class, &self.classes),
            ("layer", &row.layer, &self.layers),
            ("concept", &row.concept, &self.concepts),
        ] {
            if !list.contains(value) {
                return Err(format!(
                    "{what} `{value}` is not in the report's `{what}` list [{}]: add it there or drop the row",
                    list.join(", ")
                ));
            }
        }
        for (name, values) in [("scores", &row.scores), ("baseline_scores", &row.baseline_scores)] {
            if values.is_empty() {
                return Err(format!("`{name}` is empty: give one TCAV score per random run"));
            }
            for (i, &v) in values.iter().enumerate() {
                check_fraction(v).map_err(|p| format!("`{name}[{i}]`: {p}; a TCAV score is a fraction of images"))?;
            }
        }
        for (name, value) in [
            ("mean", row.mean),
            ("baseline_mean", row.baseline_mean),
            ("cav_accuracy_mean", row.cav_accuracy_mean),
            ("p_value", row.p_value),
            ("p_adjusted", row.p_adjusted),
        ] {
            check_fraction(value).map_err(|p| format!("`{name}`: {p}"))?;
        }
        for (name, value) in [("std", row.std), ("baseline_std", row.baseline_std)] {
            check_finite(value).map_err(|p| format!("`{name}`: {p}"))?;
            if value < 0.0 {
                return Err(format!("`{name}` is {value}: a standard deviation cannot be negative"));
            }
        }
        check_not_nan(row.t).map_err(|p| format!("`t`: {p}"))?;
        self.check_optional_numbers(row)?;
        if row.p_adjusted < row.p_value * (1.0 - P_ROUNDING) {
            return Err(format!(
                "`p_adjusted` ({}) is below `p_value` ({}): a multiple-comparison correction never lowers a p-value; check that the two were not swapped",
                row.p_adjusted, row.p_value
            ));
        }
        self.check_verdict(row)
    }

    fn check_optional_numbers(&self, row: &ConceptResult) -> std::result::Result<(), String> {
        for (name, value) in [
            ("magnitude_mean", row.magnitude_mean),
            ("rank_p_value", row.rank_p_value),
            ("baseline_extreme_fraction", row.baseline_extreme_fraction),
        ] {
            if let Some(value) = value {
                check_fraction(value).map_err(|p| format!("`{name}`: {p}"))?;
            }
        }
        if let Some(std) = row.magnitude_std {
            check_finite(std).map_err(|p| format!("`magnitude_std`: {p}"))?;
            if std < 0.0 {
                return Err(format!("`magnitude_std` is {std}: a standard deviation cannot be negative"));
            }
        }
        match (row.ci95_low, row.ci95_high) {
            (None, None) => {}
            (Some(low), Some(high)) => {
                check_finite(low).map_err(|p| format!("`ci95_low`: {p}"))?;
                check_finite(high).map_err(|p| format!("`ci95_high`: {p}"))?;
                if !(low <= row.mean + NUMBER_ROUNDING && row.mean <= high + NUMBER_ROUNDING) {
                    return Err(format!(
                        "the 95% interval [{low}, {high}] does not contain `mean` {}: it must be the interval of this row's mean",
                        row.mean
                    ));
                }
            }
            _ => {
                return Err(
                    "only one end of the 95% interval is given: set both `ci95_low` and `ci95_high`, or neither".into(),
                );
            }
        }
        if let Some(d) = row.cohens_d {
            check_not_nan(d).map_err(|p| format!("`cohens_d`: {p}"))?;
            let difference = row.mean - row.baseline_mean;
            if d * difference < 0.0 && difference.abs() > NUMBER_ROUNDING {
                return Err(format!(
                    "`cohens_d` is {d} but `mean - baseline_mean` is {difference}: d must have the sign of the difference (concept minus baseline); check the order of the samples"
                ));
            }
        }
        if let Some(file) = &row.derivatives_file {
            check_relative_path(file).map_err(|p| format!("`derivatives_file` `{file}`: {p}"))?;
        }
        let gate = row.cav_accuracy_mean >= self.accuracy_threshold;
        if row.reliable != gate && (row.cav_accuracy_mean - self.accuracy_threshold).abs() > NUMBER_ROUNDING {
            return Err(format!(
                "`reliable` is {} but `cav_accuracy_mean` {} is {} the report's `accuracy_threshold` {}: set `reliable` to `cav_accuracy_mean >= accuracy_threshold`",
                row.reliable,
                row.cav_accuracy_mean,
                if gate { "at or above" } else { "below" },
                self.accuracy_threshold
            ));
        }
        Ok(())
    }

    /// A verdict that contradicts the numbers printed beside it would mislead
    /// whoever reads the report, so it is an error, not a warning. At
    /// `p_adjusted == alpha` either verdict is accepted, because conventions
    /// (`p < α` or `p ≤ α`) differ.
    fn check_verdict(&self, row: &ConceptResult) -> std::result::Result<(), String> {
        match (row.verdict, row.reliable) {
            (Verdict::Unreliable, true) => {
                return Err(format!(
                    "verdict is unreliable but `reliable` is true (CAV accuracy {} ≥ threshold {}): recompute the verdict from the p-value",
                    row.cav_accuracy_mean, self.accuracy_threshold
                ));
            }
            (Verdict::Unreliable, false) => return Ok(()),
            (verdict, false) if verdict.is_significant() => {
                return Err(format!(
                    "verdict is {} but the CAVs are near chance (`reliable` is false, CAV accuracy {} < threshold {}): no significance may be claimed; use the verdict `unreliable`",
                    verdict.as_str(),
                    row.cav_accuracy_mean,
                    self.accuracy_threshold
                ));
            }
            _ => {}
        }
        check_p_verdict(row.verdict, row.p_adjusted, self.alpha)?;
        match row.verdict {
            Verdict::Above if row.mean <= row.baseline_mean => Err(format!(
                "verdict is above but mean {} is not above baseline_mean {}: recompute the verdict",
                row.mean, row.baseline_mean
            )),
            Verdict::Below if row.mean >= row.baseline_mean => Err(format!(
                "verdict is below but mean {} is not below baseline_mean {}: recompute the verdict",
                row.mean, row.baseline_mean
            )),
            _ => Ok(()),
        }
    }

    fn validate_stability(&self, row: &StabilityRow) -> std::result::Result<(), String> {
        if !self.results.iter().any(|r| r.class == row.class && r.layer == row.layer && r.concept == row.concept) {
            return Err(
                "no result row has this class, layer and concept: add the result or drop the stability row".into()
            );
        }
        if row.points.is_empty() {
            return Err("`points` is empty: give at least one number of runs, or drop the row".into());
        }
        let mut previous = 0;
        for (i, point) in row.points.iter().enumerate() {
            let at = |problem: String| format!("`points[{i}]` ({} runs): {problem}", point.runs);
            if point.runs <= previous {
                return Err(at(format!(
                    "runs must be at least 1 and strictly increasing (the previous point had {previous})"
                )));
            }
            previous = point.runs;
            for (name, value) in [("p_value", point.p_value), ("p_adjusted", point.p_adjusted)] {
                check_fraction(value).map_err(|p| at(format!("`{name}`: {p}")))?;
            }
            if point.p_adjusted < point.p_value * (1.0 - P_ROUNDING) {
                return Err(at(format!(
                    "`p_adjusted` ({}) is below `p_value` ({}): a correction never lowers a p-value",
                    point.p_adjusted, point.p_value
                )));
            }
            if point.verdict != Verdict::Unreliable {
                check_p_verdict(point.verdict, point.p_adjusted, self.alpha).map_err(at)?;
            }
        }
        Ok(())
    }

    /// The stability rows for `class`, in the same order as
    /// [`class_results`](Self::class_results).
    pub fn class_stability(&self, class: &str) -> Vec<&StabilityRow> {
        let position = |list: &[String], name: &str| list.iter().position(|x| x == name).unwrap_or(usize::MAX);
        let mut rows: Vec<_> = self.stability.iter().filter(|r| r.class == class).collect();
        rows.sort_by_key(|r| (position(&self.layers, &r.layer), position(&self.concepts, &r.concept)));
        rows
    }

    /// The results for `class`, ordered by the report's layer order, then its
    /// concept order (not by their order in `results`), so that tables and
    /// charts read the same for every run.
    pub fn class_results(&self, class: &str) -> Vec<&ConceptResult> {
        let position = |list: &[String], name: &str| list.iter().position(|x| x == name).unwrap_or(usize::MAX);
        let mut rows: Vec<_> = self.results.iter().filter(|r| r.class == class).collect();
        rows.sort_by_key(|r| (position(&self.layers, &r.layer), position(&self.concepts, &r.concept)));
        rows
    }

    /// The classifier's test accuracy on `class`, if the report has it.
    pub fn class_accuracy(&self, class: &str) -> Option<f64> {
        self.classifier.per_class_accuracy.iter().find(|(c, _)| c == class).map(|&(_, a)| a)
    }
}

/// The part of a verdict that `p_adjusted` and `alpha` decide; at
/// `p_adjusted == alpha` either verdict is accepted.
fn check_p_verdict(verdict: Verdict, p: f64, alpha: f64) -> std::result::Result<(), String> {
    match verdict {
        Verdict::NotSignificant if p < alpha => Err(format!(
            "verdict is not-significant but p_adjusted = {p} is below alpha = {alpha}: recompute the verdict"
        )),
        Verdict::Above | Verdict::Below if p > alpha => Err(format!(
            "verdict is {} but p_adjusted = {p} is above alpha = {alpha}: recompute the verdict",
            verdict.as_str()
        )),
        _ => Ok(()),
    }
}

/// A path inside the report's folder: relative, with plain components only,
/// so that a report cannot point a reader outside its own folder.
fn check_relative_path(path: &str) -> std::result::Result<(), String> {
    if path.trim().is_empty() {
        return Err("is empty: give the file's path relative to the report's folder, or leave the field out".into());
    }
    if path.contains('\\') {
        return Err("contains `\\`: separate folders with `/`".into());
    }
    if path.starts_with('/') || path.split('/').any(|part| part.is_empty() || part == "." || part == "..") {
        return Err("must be relative to the report's folder, without `..`, `.`, empty parts or a leading `/`".into());
    }
    Ok(())
}

/// Like [`check_finite`], but ±inf are accepted: a t statistic or Cohen's d
/// is infinite when both samples are constant with different means.
fn check_not_nan(value: f64) -> std::result::Result<(), String> {
    if value.is_nan() {
        Err("is NaN: the statistics stage must give a number (±inf is allowed); check the scores this row was computed from".into())
    } else {
        Ok(())
    }
}

fn check_finite(value: f64) -> std::result::Result<(), String> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(format!(
            "{value} is not a finite number: the statistics stage must give finite values (JSON cannot store NaN or infinity); check the scores this row was computed from"
        ))
    }
}

fn check_fraction(value: f64) -> std::result::Result<(), String> {
    check_finite(value)?;
    if (0.0..=1.0).contains(&value) { Ok(()) } else { Err(format!("{value} is outside [0, 1]")) }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The sample report lives in `src/fixture.rs`, which the browser test
    /// shares.
    pub(crate) use crate::fixture::sample;

    fn problem(report: &ExperimentReport) -> String {
        report.validate().expect_err("the report should be rejected").to_string()
    }

    #[test]
    fn the_sample_is_valid() {
        sample().validate().unwrap();
    }

    #[test]
    fn unlisted_class_or_layer_is_rejected_naming_the_row() {
        let mut report = sample();
        report.results[3].layer = "conv9".into();
        let msg = problem(&report);
        assert!(msg.contains("#3") && msg.contains("conv9") && msg.contains("dotted"), "{msg}");
        assert!(msg.contains("[conv2, conv4]"), "{msg}");

        let mut report = sample();
        report.results[0].class = "horse".into();
        let msg = problem(&report);
        assert!(msg.contains("#0") && msg.contains("class `horse` is not in"), "{msg}");
    }

    #[test]
    fn non_finite_numbers_are_rejected_naming_the_field() {
        let mut report = sample();
        report.results[2].mean = f64::NAN;
        let msg = problem(&report);
        assert!(msg.contains("#2") && msg.contains("`mean`") && msg.contains("NaN"), "{msg}");

        let mut report = sample();
        report.results[1].baseline_scores[3] = f64::INFINITY;
        let msg = problem(&report);
        assert!(msg.contains("#1") && msg.contains("baseline_scores[3]"), "{msg}");

        let mut report = sample();
        report.results[4].t = f64::NAN;
        assert!(problem(&report).contains("`t`"));
    }

    #[test]
    fn contradicting_verdicts_are_rejected() {
        let mut report = sample();
        report.results[2].verdict = Verdict::Above; // p_adj 0.84
        assert!(problem(&report).contains("above alpha"));

        let mut report = sample();
        report.results[0].verdict = Verdict::Below; // mean 0.81 > 0.5
        assert!(problem(&report).contains("not below baseline_mean"));

        let mut report = sample();
        report.results[0].verdict = Verdict::NotSignificant; // p_adj 1.2e-6
        assert!(problem(&report).contains("below alpha"));

        // At exactly alpha both conventions are accepted.
        let mut report = sample();
        report.results[5].p_adjusted = 0.05;
        report.validate().unwrap();
        report.results[5].verdict = Verdict::NotSignificant;
        report.validate().unwrap();
    }

    #[test]
    fn other_inconsistencies_are_rejected() {
        let mut report = sample();
        report.results.push(report.results[0].clone());
        assert!(problem(&report).contains("second result"));

        let mut report = sample();
        report.results[0].p_adjusted = report.results[0].p_value / 2.0;
        assert!(problem(&report).contains("never lowers"));

        let mut report = sample();
        report.results[0].scores.clear();
        assert!(problem(&report).contains("`scores` is empty"));

        let mut report = sample();
        report.results[0].std = -0.1;
        assert!(problem(&report).contains("negative"));

        let mut report = sample();
        report.alpha = 5.0;
        assert!(problem(&report).contains("`alpha`"));

        let mut report = sample();
        report.classes[0] = "../zebra".into();
        assert!(problem(&report).contains("`classes`"));

        let mut report = sample();
        report.concepts.push("striped".into());
        assert!(problem(&report).contains("listed twice"));

        let mut report = sample();
        report.classifier.test_accuracy = 93.25;
        assert!(problem(&report).contains("fraction"));
    }

    #[test]
    fn accuracy_gate_rules() {
        let unreliable = 10; // tiger/conv2/zigzagged
        // An unreliable verdict on reliable CAVs.
        let mut report = sample();
        report.results[unreliable].reliable = true;
        report.results[unreliable].cav_accuracy_mean = 0.9;
        assert!(problem(&report).contains("verdict is unreliable but `reliable` is true"));

        // A significant verdict on CAVs near chance.
        let mut report = sample();
        report.results[unreliable].verdict = Verdict::Above;
        let msg = problem(&report);
        assert!(msg.contains("#10") && msg.contains("no significance may be claimed"), "{msg}");

        // `reliable` must agree with the accuracy and the threshold.
        let mut report = sample();
        report.results[unreliable].reliable = true;
        assert!(problem(&report).contains("set `reliable` to `cav_accuracy_mean >= accuracy_threshold`"));
        let mut report = sample();
        report.results[0].cav_accuracy_mean = 0.55;
        assert!(problem(&report).contains("below the report's `accuracy_threshold` 0.6"));

        // Near-chance CAVs may still be reported as not significant.
        let mut report = sample();
        report.results[unreliable].verdict = Verdict::NotSignificant;
        report.results[unreliable].p_adjusted = 0.7;
        report.results[unreliable].p_value = 0.2;
        report.validate().unwrap();

        // An unreliable row makes no claim, so any p-value goes with it.
        let mut report = sample();
        report.results[unreliable].p_adjusted = 0.9;
        report.validate().unwrap();

        // At exactly the threshold the CAVs count as reliable.
        let mut report = sample();
        report.results[0].cav_accuracy_mean = 0.6;
        report.validate().unwrap();

        let mut report = sample();
        report.accuracy_threshold = 60.0;
        assert!(problem(&report).contains("`accuracy_threshold`"));
    }

    #[test]
    fn optional_numbers_are_checked_where_present() {
        let mut report = sample();
        report.results[0].ci95_low = Some(0.9); // mean 0.81
        assert!(problem(&report).contains("does not contain `mean` 0.81"));

        let mut report = sample();
        report.results[0].ci95_high = None;
        assert!(problem(&report).contains("only one end"));

        let mut report = sample();
        report.results[3].cohens_d = Some(2.0); // mean 0.12 < baseline 0.52
        assert!(problem(&report).contains("sign of the difference"));

        let mut report = sample();
        report.results[3].cohens_d = Some(f64::NEG_INFINITY);
        report.results[3].t = f64::NEG_INFINITY;
        report.validate().unwrap();
        report.results[3].cohens_d = Some(f64::NAN);
        assert!(problem(&report).contains("`cohens_d`"));

        for (field, value) in [("magnitude_mean", 1.5), ("rank_p_value", -0.1), ("baseline_extreme_fraction", 2.0)] {
            let mut report = sample();
            let row = &mut report.results[1];
            *match field {
                "magnitude_mean" => &mut row.magnitude_mean,
                "rank_p_value" => &mut row.rank_p_value,
                _ => &mut row.baseline_extreme_fraction,
            } = Some(value);
            assert!(problem(&report).contains(&format!("`{field}`")), "{field}");
        }

        let mut report = sample();
        report.results[1].magnitude_std = Some(-0.5);
        assert!(problem(&report).contains("`magnitude_std`"));

        let mut report = sample();
        report.rank_test.clear();
        assert!(problem(&report).contains("`rank_test`"));
        for r in &mut report.results {
            r.rank_p_value = None;
        }
        report.validate().unwrap();

        for bad in ["../outside.npy", "/tmp/d.npy", "", "a/./b.npy", "a\\b.npy"] {
            let mut report = sample();
            report.results[2].derivatives_file = Some(bad.into());
            assert!(problem(&report).contains("`derivatives_file`"), "{bad:?}");
        }
    }

    #[test]
    fn stability_rows_are_checked() {
        let mut report = sample();
        report.stability[0].concept = "dotted".into();
        report.stability[0].class = "tiger".into();
        report.stability[0].layer = "conv4".into();
        report.validate().unwrap();
        report.stability[0].layer = "conv9".into();
        let msg = problem(&report);
        assert!(msg.contains("stability row #0") && msg.contains("no result row"), "{msg}");

        let mut report = sample();
        report.stability[1].points[2].runs = 4;
        assert!(problem(&report).contains("strictly increasing"));

        let mut report = sample();
        report.stability[1].points[0].runs = 0;
        assert!(problem(&report).contains("at least 1"));

        let mut report = sample();
        report.stability[1].points[1].verdict = Verdict::Above; // p_adj 0.12
        let msg = problem(&report);
        assert!(msg.contains("`points[1]` (4 runs)") && msg.contains("above alpha"), "{msg}");

        let mut report = sample();
        report.stability[0].points[0].p_adjusted = 0.001; // p 0.0075
        assert!(problem(&report).contains("never lowers"));

        let mut report = sample();
        report.stability[0].points[0].p_value = f64::NAN;
        assert!(problem(&report).contains("`p_value`"));

        let mut report = sample();
        report.stability[0].points.clear();
        assert!(problem(&report).contains("`points` is empty"));

        let mut report = sample();
        report.stability.push(report.stability[0].clone());
        assert!(problem(&report).contains("second stability row"));
    }

    /// A report as written before the accuracy gate, the rank test and the
    /// stability rows existed: none of the new fields.
    pub(crate) fn old_report_json() -> String {
        let mut report = sample();
        report.results.retain(|r| r.verdict != Verdict::Unreliable);
        let mut value = serde_json::to_value(&report).unwrap();
        let object = value.as_object_mut().unwrap();
        for key in ["estimator", "design", "accuracy_threshold", "rank_test", "stability"] {
            object.remove(key).unwrap();
        }
        for row in object["results"].as_array_mut().unwrap() {
            let row = row.as_object_mut().unwrap();
            for key in [
                "ci95_low",
                "ci95_high",
                "cohens_d",
                "magnitude_mean",
                "magnitude_std",
                "rank_p_value",
                "baseline_extreme_fraction",
                "reliable",
                "derivatives_file",
            ] {
                row.remove(key).unwrap();
            }
        }
        serde_json::to_string(&value).unwrap()
    }

    #[test]
    fn reports_without_the_new_fields_still_read_and_validate() {
        let old: ExperimentReport = serde_json::from_str(&old_report_json()).unwrap();
        old.validate().unwrap();
        assert_eq!((old.estimator.as_str(), old.design.as_str(), old.rank_test.as_str()), ("", "", ""));
        assert_eq!(old.accuracy_threshold, 0.0);
        assert!(old.stability.is_empty());
        for row in &old.results {
            assert!(row.reliable, "rows without `reliable` count as reliable");
            assert_eq!((row.ci95_low, row.ci95_high, row.cohens_d, row.rank_p_value), (None, None, None, None));
            assert_eq!((row.magnitude_mean, row.magnitude_std, row.baseline_extreme_fraction), (None, None, None));
            assert_eq!(row.derivatives_file, None);
        }
        assert_eq!(old.results[0].mean, sample().results[0].mean);
    }

    #[test]
    fn verdict_words() {
        assert_eq!(Verdict::Unreliable.describe(), "CAVs near chance: no claim");
        assert_eq!(Verdict::Unreliable.as_str(), "unreliable");
        assert_eq!(serde_json::to_string(&Verdict::Unreliable).unwrap(), "\"unreliable\"");
        assert_eq!(serde_json::from_str::<Verdict>("\"unreliable\"").unwrap(), Verdict::Unreliable);
        assert!(!Verdict::Unreliable.is_significant() && !Verdict::NotSignificant.is_significant());
        assert!(Verdict::Above.is_significant() && Verdict::Below.is_significant());
    }

    #[test]
    fn class_results_follow_the_listed_order() {
        let report = sample();
        let order: Vec<_> =
            report.class_results("zebra").iter().map(|r| format!("{}/{}", r.layer, r.concept)).collect();
        assert_eq!(
            order,
            ["conv2/striped", "conv2/dotted", "conv2/zigzagged", "conv4/striped", "conv4/dotted", "conv4/zigzagged"]
        );
        assert_eq!(report.class_results("tiger").len(), 5);
        let stability: Vec<_> = report.class_stability("zebra").iter().map(|r| r.concept.as_str()).collect();
        assert_eq!(stability, ["striped", "zigzagged"]);
        assert_eq!(report.class_accuracy("tiger"), Some(0.915));
    }
}
