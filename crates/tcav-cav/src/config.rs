//! How CAVs are fitted: the estimator, its hyper-parameters, and the
//! hold-out share common to all of them.
//!
//! In an experiment's TOML this is the `[tcav.cav]` table, for example
//!
//! ```toml
//! [tcav.cav]
//! holdout_fraction = 0.2
//! estimator = "sgd-hinge"   # or "logistic", "mean-difference", "pattern"
//! alpha = 0.01
//! ```
//!
//! Every hyper-parameter has a default, and a key that the chosen estimator
//! does not use is an error rather than silently ignored, so a typo cannot
//! leave a run on defaults the user did not mean.

use serde::{Deserialize, Serialize};

use crate::{CavError, Result};

/// How CAVs are fitted.
///
/// Without an `estimator` key the estimator is `logistic`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "serde_json::Map<String, serde_json::Value>")]
pub struct CavConfig {
    /// Fraction of each (balanced) side held out to measure accuracy.
    pub holdout_fraction: f64,
    /// The estimator and its hyper-parameters (the `estimator` key names it).
    #[serde(flatten)]
    pub estimator: Estimator,
}

/// What [`CavConfig`] reads once the `estimator` key is filled in.
#[derive(Deserialize)]
struct Tagged {
    #[serde(default = "default_holdout_fraction")]
    holdout_fraction: f64,
    #[serde(flatten)]
    estimator: Estimator,
}

fn default_holdout_fraction() -> f64 {
    0.2
}

impl TryFrom<serde_json::Map<String, serde_json::Value>> for CavConfig {
    type Error = String;

    /// Serde's tagged enums cannot default their tag, so the table is read
    /// as a map first and `estimator = "logistic"` added when absent. Going
    /// through the map also lets every error name the table and estimator.
    fn try_from(mut table: serde_json::Map<String, serde_json::Value>) -> Result<Self, String> {
        let name = table
            .entry("estimator")
            .or_insert_with(|| Estimator::default().name().into())
            .as_str()
            .unwrap_or("?")
            .to_string();
        let tagged: Tagged = serde_json::from_value(serde_json::Value::Object(table))
            .map_err(|e| format!("[tcav.cav] with estimator `{name}`: {e}"))?;
        Ok(CavConfig { holdout_fraction: tagged.holdout_fraction, estimator: tagged.estimator })
    }
}

impl Default for CavConfig {
    fn default() -> Self {
        CavConfig { holdout_fraction: default_holdout_fraction(), estimator: Estimator::default() }
    }
}

/// The linear estimator that turns two sets of activations into a CAV.
///
/// Whatever the estimator, the CAV is the unit normal of its boundary,
/// oriented toward the concept.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "estimator", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Estimator {
    /// L2-regularised logistic regression (linfa-logistic's objective).
    Logistic(LogisticConfig),
    /// A linear SVM fitted by SGD on the hinge loss: tensorflow/tcav's
    /// default CAV (scikit-learn's `SGDClassifier`).
    SgdHinge(SgdHingeConfig),
    /// FastCAV: the difference of the two sets' mean activations.
    MeanDifference {},
    /// Pattern CAV (Pahde et al. 2022): the covariance between activations
    /// and the concept label. For a two-set label this is the mean
    /// difference scaled by `n_concept·n_negative/n`, so it gives the same
    /// direction as [`Estimator::MeanDifference`]; it is kept under its own
    /// name so that results cite the method their authors chose.
    Pattern {},
}

impl Default for Estimator {
    fn default() -> Self {
        Estimator::Logistic(LogisticConfig::default())
    }
}

impl Estimator {
    /// The name used in configs and recorded in every [`crate::Cav`].
    pub fn name(&self) -> &'static str {
        match self {
            Estimator::Logistic(_) => "logistic",
            Estimator::SgdHinge(_) => "sgd-hinge",
            Estimator::MeanDifference {} => "mean-difference",
            Estimator::Pattern {} => "pattern",
        }
    }
}

/// Hyper-parameters of the logistic-regression CAV.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogisticConfig {
    /// L2 weight of the objective `Σ log-loss + alpha/2·‖w‖²` (the intercept
    /// is not penalised). About scikit-learn's `1/C`: 1.0 matches
    /// `LogisticRegression()`, tensorflow/tcav's `logistic` option.
    pub alpha: f64,
    /// Which form of the problem is solved. Both reach the same optimum.
    pub solver: Solver,
    /// Iterations at most: L-BFGS iterations for `primal`, Newton steps for
    /// `dual` (which needs far fewer).
    pub max_iterations: u64,
    /// Stop once the objective's gradient with respect to the weights and
    /// intercept has at most this Euclidean norm.
    pub gradient_tolerance: f64,
}

impl Default for LogisticConfig {
    fn default() -> Self {
        LogisticConfig { alpha: 1.0, solver: Solver::Dual, max_iterations: 200, gradient_tolerance: 1e-4 }
    }
}

/// How the logistic-regression CAV is solved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Solver {
    /// linfa-logistic's L-BFGS over the `width + 1` weights. Each iteration
    /// costs O(rows·width).
    Primal,
    /// Newton's method on the equivalent problem over one coefficient per
    /// training row: the L2 optimum `w` lies in the span of the rows,
    /// `w = Xᵀβ`. Costs one Gram matrix, O(rows²·width), then O(rows³) per
    /// step: far cheaper when there are fewer images than activation values.
    Dual,
}

/// Hyper-parameters of the hinge-loss SGD CAV, named and defaulted as in
/// scikit-learn's `SGDClassifier` with tensorflow/tcav's settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SgdHingeConfig {
    /// L2 weight: the objective is `mean hinge loss + alpha/2·‖w‖²`. It also
    /// sets the "optimal" learning rate `1 / (alpha·(t0 + t))`.
    pub alpha: f64,
    /// Epochs (passes over the training rows) at most.
    pub max_iter: u64,
    /// Stop when an epoch's summed hinge loss has not fallen below the best
    /// so far minus `tol·rows` for `n_iter_no_change` epochs in a row.
    pub tol: f64,
    /// See `tol`.
    pub n_iter_no_change: u64,
}

impl Default for SgdHingeConfig {
    fn default() -> Self {
        SgdHingeConfig { alpha: 0.01, max_iter: 1000, tol: 1e-3, n_iter_no_change: 5 }
    }
}

impl CavConfig {
    /// Checks every value, naming the offending key and its allowed range.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &str, rule: &str, value: String| {
            Err(CavError::Config(format!(
                "`{key}` (estimator `{}`) must be {rule}, got {value}; fix it in [tcav.cav]",
                self.estimator.name()
            )))
        };
        if !(0.0 < self.holdout_fraction && self.holdout_fraction < 1.0) {
            return bad("holdout_fraction", "strictly between 0 and 1", self.holdout_fraction.to_string());
        }
        match &self.estimator {
            Estimator::Logistic(c) => {
                if !(c.alpha > 0.0 && c.alpha.is_finite()) {
                    return bad("alpha", "a positive number", c.alpha.to_string());
                }
                if c.max_iterations == 0 {
                    return bad("max_iterations", "at least 1", "0".into());
                }
                if !(c.gradient_tolerance > 0.0 && c.gradient_tolerance.is_finite()) {
                    return bad("gradient_tolerance", "a positive number", c.gradient_tolerance.to_string());
                }
            }
            Estimator::SgdHinge(c) => {
                if !(c.alpha > 0.0 && c.alpha.is_finite()) {
                    return bad("alpha", "a positive number", c.alpha.to_string());
                }
                if c.max_iter == 0 {
                    return bad("max_iter", "at least 1", "0".into());
                }
                if !(c.tol >= 0.0 && c.tol.is_finite()) {
                    return bad("tol", "a number >= 0", c.tol.to_string());
                }
                if c.n_iter_no_change == 0 {
                    return bad("n_iter_no_change", "at least 1", "0".into());
                }
            }
            Estimator::MeanDifference {} | Estimator::Pattern {} => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<CavConfig, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn every_estimator_parses_with_defaults_and_round_trips() {
        for (name, expected) in [
            ("logistic", Estimator::Logistic(LogisticConfig::default())),
            ("sgd-hinge", Estimator::SgdHinge(SgdHingeConfig::default())),
            ("mean-difference", Estimator::MeanDifference {}),
            ("pattern", Estimator::Pattern {}),
        ] {
            let config = parse(&format!("estimator = \"{name}\"")).unwrap();
            assert_eq!(config, CavConfig { holdout_fraction: 0.2, estimator: expected });
            assert_eq!(config.estimator.name(), name);
            let json = serde_json::to_string(&config).unwrap();
            assert!(json.contains(&format!("\"estimator\":\"{name}\"")), "{json}");
            assert_eq!(serde_json::from_str::<CavConfig>(&json).unwrap(), config);
            let toml_text = toml::to_string(&config).unwrap();
            assert_eq!(parse(&toml_text).unwrap(), config, "{toml_text}");
        }
    }

    #[test]
    fn hyper_parameters_are_read_and_tensorflow_tcav_defaults_hold() {
        let config = parse("holdout_fraction = 0.3\nestimator = \"sgd-hinge\"\ntol = 0.0001\n").unwrap();
        assert_eq!(config.holdout_fraction, 0.3);
        assert_eq!(
            config.estimator,
            Estimator::SgdHinge(SgdHingeConfig { alpha: 0.01, max_iter: 1000, tol: 1e-4, n_iter_no_change: 5 })
        );
        let config = parse("estimator = \"logistic\"\nsolver = \"primal\"\nalpha = 2\n").unwrap();
        let Estimator::Logistic(logistic) = config.estimator else { panic!("{config:?}") };
        assert_eq!((logistic.solver, logistic.alpha, logistic.max_iterations), (Solver::Primal, 2.0, 200));
        assert_eq!(CavConfig::default().estimator, Estimator::Logistic(LogisticConfig::default()));
        assert_eq!(LogisticConfig::default().solver, Solver::Dual);
    }

    #[test]
    fn the_estimator_defaults_to_logistic() {
        assert_eq!(parse("").unwrap(), CavConfig::default());
        let config = parse("holdout_fraction = 0.25\nalpha = 0.5").unwrap();
        assert_eq!(config.holdout_fraction, 0.25);
        assert_eq!(config.estimator, Estimator::Logistic(LogisticConfig { alpha: 0.5, ..LogisticConfig::default() }));
    }

    #[test]
    fn unknown_or_misplaced_keys_are_rejected() {
        let err = parse("estimator = \"pattern\"\nholdout_fractio = 0.1\n").unwrap_err();
        assert!(err.contains("holdout_fractio") && err.contains("[tcav.cav] with estimator `pattern`"), "{err}");
        let err = parse("estimator = \"pattern\"\nalpha = 0.1\n").unwrap_err();
        assert!(err.contains("alpha"), "{err}");
        let err = parse("estimator = \"logistic\"\nalpa = 0.1\n").unwrap_err();
        assert!(err.contains("alpa"), "{err}");
        let err = parse("estimator = \"sgd-hinge\"\nmax_iterations = 5\n").unwrap_err();
        assert!(err.contains("max_iterations"), "{err}");
        let err = parse("estimator = \"svm\"\n").unwrap_err();
        assert!(err.contains("svm"), "{err}");
        let err = parse("estimator = \"logistic\"\nsolver = \"newton\"\n").unwrap_err();
        assert!(err.contains("newton"), "{err}");
    }

    #[test]
    fn out_of_range_values_name_the_key() {
        let cases = [
            (CavConfig { holdout_fraction: 1.0, ..CavConfig::default() }, "holdout_fraction"),
            (
                CavConfig {
                    estimator: Estimator::Logistic(LogisticConfig { alpha: 0.0, ..LogisticConfig::default() }),
                    ..CavConfig::default()
                },
                "alpha",
            ),
            (
                CavConfig {
                    estimator: Estimator::Logistic(LogisticConfig {
                        gradient_tolerance: f64::NAN,
                        ..LogisticConfig::default()
                    }),
                    ..CavConfig::default()
                },
                "gradient_tolerance",
            ),
            (
                CavConfig {
                    estimator: Estimator::SgdHinge(SgdHingeConfig { tol: -1.0, ..SgdHingeConfig::default() }),
                    ..CavConfig::default()
                },
                "tol",
            ),
            (
                CavConfig {
                    estimator: Estimator::SgdHinge(SgdHingeConfig { max_iter: 0, ..SgdHingeConfig::default() }),
                    ..CavConfig::default()
                },
                "max_iter",
            ),
        ];
        for (config, key) in cases {
            let err = config.validate().unwrap_err().to_string();
            assert!(err.contains(&format!("`{key}`")), "{err}");
        }
        for name in ["logistic", "sgd-hinge", "mean-difference", "pattern"] {
            parse(&format!("estimator = \"{name}\"")).unwrap().validate().unwrap();
        }
    }
}
