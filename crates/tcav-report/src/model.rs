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
    /// The test statistic.
    pub t: f64,
    /// The p-value before correction.
    pub p_value: f64,
    /// The p-value after the multiple-comparison correction.
    pub p_adjusted: f64,
    /// The conclusion drawn at `alpha` from `p_adjusted`.
    pub verdict: Verdict,
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
}

impl Verdict {
    /// The verdict in words that state its direction.
    pub fn describe(self) -> &'static str {
        match self {
            Verdict::Above => "above baseline (pushes toward class)",
            Verdict::Below => "below baseline (pushes away)",
            Verdict::NotSignificant => "not significant",
        }
    }

    /// The verdict as spelled in JSON and CSV.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Above => "above",
            Verdict::Below => "below",
            Verdict::NotSignificant => "not-significant",
        }
    }

    /// Whether the difference from the baseline is significant.
    pub fn is_significant(self) -> bool {
        self != Verdict::NotSignificant
    }
}

/// Relative slack allowed when comparing a corrected p-value with the raw
/// one: a correction like Benjamini–Hochberg multiplies by `m/k` and may
/// round a hair below `p` when `m == k`.
const P_ROUNDING: f64 = 1e-12;

impl ExperimentReport {
    /// Checks that the report is complete and consistent: every result names
    /// a listed class, layer and concept, appears once, holds finite numbers
    /// in their ranges, and has a verdict that agrees with its corrected
    /// p-value, `alpha` and the sign of `mean - baseline_mean`.
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
        check_finite(row.t).map_err(|p| format!("`t`: {p}"))?;
        if row.p_adjusted < row.p_value * (1.0 - P_ROUNDING) {
            return Err(format!(
                "`p_adjusted` ({}) is below `p_value` ({}): a multiple-comparison correction never lowers a p-value; check that the two were not swapped",
                row.p_adjusted, row.p_value
            ));
        }
        self.check_verdict(row)
    }

    /// A verdict that contradicts the numbers printed beside it would mislead
    /// whoever reads the report, so it is an error, not a warning. At
    /// `p_adjusted == alpha` either verdict is accepted, because conventions
    /// (`p < α` or `p ≤ α`) differ.
    fn check_verdict(&self, row: &ConceptResult) -> std::result::Result<(), String> {
        let (alpha, p) = (self.alpha, row.p_adjusted);
        match row.verdict {
            Verdict::NotSignificant if p < alpha => Err(format!(
                "verdict is not-significant but p_adjusted = {p} is below alpha = {alpha}: recompute the verdict"
            )),
            Verdict::Above | Verdict::Below if p > alpha => Err(format!(
                "verdict is {} but p_adjusted = {p} is above alpha = {alpha}: recompute the verdict",
                row.verdict.as_str()
            )),
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

    fn row(
        class: &str,
        layer: &str,
        concept: &str,
        mean: f64,
        baseline: f64,
        p_adj: f64,
        verdict: Verdict,
    ) -> ConceptResult {
        let scores: Vec<f64> = [-0.04, -0.01, 0.0, 0.02, 0.03].iter().map(|d| (mean + d).clamp(0.0, 1.0)).collect();
        let baseline_scores: Vec<f64> =
            [-0.2, -0.1, 0.0, 0.1, 0.2].iter().map(|d| (baseline + d).clamp(0.0, 1.0)).collect();
        ConceptResult {
            class: class.into(),
            layer: layer.into(),
            concept: concept.into(),
            scores,
            mean,
            std: 0.03,
            baseline_scores,
            baseline_mean: baseline,
            baseline_std: 0.16,
            cav_accuracy_mean: 0.875,
            t: if mean >= baseline { 4.2 } else { -4.2 },
            p_value: p_adj / 4.0,
            p_adjusted: p_adj,
            verdict,
        }
    }

    /// A small report: two classes, two layers, three concepts, with every
    /// kind of verdict. Used by the tests of every module.
    pub(crate) fn sample() -> ExperimentReport {
        use Verdict::*;
        ExperimentReport {
            experiment: "stripes-demo".into(),
            run_id: "run-0001".into(),
            seed: 42,
            alpha: 0.05,
            correction: "bonferroni".into(),
            test: "welch".into(),
            classifier: ClassifierSummary {
                architecture: "simple-cnn".into(),
                test_accuracy: 0.9325,
                per_class_accuracy: vec![("zebra".into(), 0.95), ("tiger".into(), 0.915)],
            },
            layers: vec!["conv2".into(), "conv4".into()],
            classes: vec!["zebra".into(), "tiger".into()],
            concepts: vec!["striped".into(), "dotted".into(), "zigzagged".into()],
            random_sets: (0..5).map(|i| format!("random500_{i}")).collect(),
            results: vec![
                row("zebra", "conv2", "striped", 0.81, 0.5, 1.2e-6, Above),
                row("zebra", "conv4", "striped", 0.93, 0.52, 3.0e-9, Above),
                row("zebra", "conv2", "dotted", 0.47, 0.5, 0.84, NotSignificant),
                row("zebra", "conv4", "dotted", 0.12, 0.52, 2.0e-4, Below),
                row("zebra", "conv2", "zigzagged", 0.58, 0.5, 0.31, NotSignificant),
                row("zebra", "conv4", "zigzagged", 0.66, 0.52, 0.02, Above),
                row("tiger", "conv2", "striped", 0.71, 0.49, 0.004, Above),
                row("tiger", "conv4", "striped", 0.55, 0.51, 0.6, NotSignificant),
                row("tiger", "conv2", "dotted", 0.3, 0.49, 0.01, Below),
                row("tiger", "conv4", "dotted", 0.44, 0.51, 1.0, NotSignificant),
            ],
        }
    }

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
    fn class_results_follow_the_listed_order() {
        let report = sample();
        let order: Vec<_> =
            report.class_results("zebra").iter().map(|r| format!("{}/{}", r.layer, r.concept)).collect();
        assert_eq!(
            order,
            ["conv2/striped", "conv2/dotted", "conv2/zigzagged", "conv4/striped", "conv4/dotted", "conv4/zigzagged"]
        );
        assert_eq!(report.class_results("tiger").len(), 4);
        assert_eq!(report.class_accuracy("tiger"), Some(0.915));
    }
}
