//! The CAV-fitting stage, and TCAV scoring.
//!
//! Takes: plain matrices of flattened bottleneck activations (one row per
//! image) for a concept set and a negative set (a random set), and matrices
//! of class-logit gradients. Produces:
//!
//! * a [`Cav`]: the unit normal of a linear boundary between the concept's
//!   activations and the negative set's, **pointing toward the concept**,
//!   with its accuracy on held-out activations;
//! * directional derivatives `S(x) = ∇ₐ h_k(a) · v` and the TCAV score, the
//!   fraction of a class's images with `S(x) > 0`.
//!
//! Invariants: never depends on tch (activations and gradients arrive as
//! plain matrices), and a CAV always points toward its concept, whatever
//! the estimator's own label convention (linfa-logistic 0.8.1 picks its
//! "positive" class by frequency or order; see [`fit_cav`]).

#![deny(missing_docs)]

use std::collections::HashMap;
use std::path::Path;

use linfa::prelude::*;
use linfa_logistic::LogisticRegression;
use ndarray::{Array1, Array2};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tcav_core::{CoreError, Matrix};

/// How CAVs are fitted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CavConfig {
    /// L2 weight of linfa-logistic's objective, `Σ log-loss + alpha/2·‖w‖²`
    /// (about scikit-learn's `1/C`; 1.0 matches `LogisticRegression()`).
    pub alpha: f64,
    /// L-BFGS iterations at most.
    pub max_iterations: u64,
    /// Fraction of each (balanced) side held out to measure accuracy.
    pub holdout_fraction: f64,
}

impl Default for CavConfig {
    fn default() -> Self {
        CavConfig { alpha: 1.0, max_iterations: 200, holdout_fraction: 0.2 }
    }
}

/// A concept activation vector and what it was fitted from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cav {
    /// The bottleneck layer.
    pub layer: String,
    /// The positive set (the concept).
    pub concept: String,
    /// The negative set (a random set, or another concept).
    pub negative: String,
    /// Unit vector in activation space, pointing toward the concept.
    #[serde(skip)]
    pub direction: Vec<f32>,
    /// The boundary's offset along `direction`: a row `a` is classified as
    /// the concept when `a·direction + intercept > 0`.
    pub intercept: f64,
    /// Accuracy on the held-out rows of both sets.
    pub holdout_accuracy: f64,
    /// Rows used for fitting, per side, after balancing.
    pub train_rows: usize,
    /// Held-out rows, per side.
    pub holdout_rows: usize,
    /// The estimator, `"logistic"` (linfa-logistic, L2).
    pub estimator: String,
    /// The hyper-parameters used.
    pub config: CavConfig,
    /// The seed of the balancing and hold-out draws.
    pub seed: u64,
}

/// What can go wrong when fitting or scoring.
#[derive(Debug, thiserror::Error)]
pub enum CavError {
    /// Too few rows on one side.
    #[error("CAV {concept} vs {negative}: {side} has {rows} images, at least 2 are needed (one to fit, one to hold out); add images to that set")]
    TooFewRows {
        /// Concept set.
        concept: String,
        /// Negative set.
        negative: String,
        /// Which side.
        side: String,
        /// How many rows it has.
        rows: usize,
    },
    /// Activations or gradients of different widths.
    #[error("{what}: widths differ ({left} vs {right}); they must come from the same bottleneck layer")]
    Width {
        /// What was being combined.
        what: String,
        /// One width.
        left: usize,
        /// The other width.
        right: usize,
    },
    /// A bad config value.
    #[error("invalid CAV config: {0}")]
    Config(String),
    /// The estimator failed.
    #[error("fitting CAV {concept} vs {negative}: {reason}")]
    Fit {
        /// Concept set.
        concept: String,
        /// Negative set.
        negative: String,
        /// The estimator's error.
        reason: String,
    },
    /// A file error.
    #[error(transparent)]
    Core(#[from] CoreError),
}

/// Result alias for this crate.
pub type Result<T, E = CavError> = std::result::Result<T, E>;

/// Names the sets and layer a CAV is fitted for, for errors and metadata.
#[derive(Clone, Copy, Debug)]
pub struct CavLabel<'a> {
    /// Bottleneck layer.
    pub layer: &'a str,
    /// Concept (positive) set.
    pub concept: &'a str,
    /// Negative set.
    pub negative: &'a str,
}

/// Fits a CAV separating `concept` rows from `negative` rows.
///
/// **Balancing:** the larger side is subsampled (seeded) to the size of the
/// smaller, so the boundary is not pulled toward the bigger set and the
/// estimator never sees a majority class. **Hold-out:** each side is
/// shuffled (seeded) and `holdout_fraction` of it, at least one row, is
/// held out; the rest is fitted. Accuracy is measured on the held-out rows.
///
/// linfa-logistic labels as "positive" whichever class it counts most, or
/// the first seen on a tie, so the sign of its weights is checked against
/// the concept's label and flipped when needed.
pub fn fit_cav(label: CavLabel<'_>, concept: &Matrix, negative: &Matrix, config: &CavConfig, seed: u64) -> Result<Cav> {
    if !(config.alpha > 0.0 && config.alpha.is_finite()) {
        return Err(CavError::Config(format!("alpha must be a positive number, got {}", config.alpha)));
    }
    if !(0.0 < config.holdout_fraction && config.holdout_fraction < 1.0) {
        return Err(CavError::Config(format!(
            "holdout_fraction must be strictly between 0 and 1, got {}",
            config.holdout_fraction
        )));
    }
    if concept.cols() != negative.cols() {
        return Err(CavError::Width {
            what: format!("CAV {} vs {}", label.concept, label.negative),
            left: concept.cols(),
            right: negative.cols(),
        });
    }
    for (side, m) in [(label.concept, concept), (label.negative, negative)] {
        if m.rows() < 2 {
            return Err(CavError::TooFewRows {
                concept: label.concept.into(),
                negative: label.negative.into(),
                side: format!("set `{side}`"),
                rows: m.rows(),
            });
        }
    }

    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let per_side = concept.rows().min(negative.rows());
    let holdout = ((per_side as f64 * config.holdout_fraction).round() as usize).clamp(1, per_side - 1);
    let mut pick = |m: &Matrix| {
        let mut rows: Vec<usize> = (0..m.rows()).collect();
        rows.shuffle(&mut rng);
        rows.truncate(per_side);
        let test = rows.split_off(per_side - holdout);
        (rows, test)
    };
    let (concept_fit, concept_test) = pick(concept);
    let (negative_fit, negative_test) = pick(negative);

    // Interleave the sides in a seeded order: the estimator's result must
    // not depend on which rows it sees first, and linfa's label convention
    // depends on exactly that (the orientation check below handles it).
    let mut fit_rows: Vec<(bool, usize)> =
        concept_fit.iter().map(|&i| (true, i)).chain(negative_fit.iter().map(|&i| (false, i))).collect();
    fit_rows.shuffle(&mut rng);
    let (x, y) = stack(concept, negative, &fit_rows);
    let dataset = Dataset::new(x, y);
    let model = LogisticRegression::default()
        .alpha(config.alpha)
        .max_iterations(config.max_iterations)
        .fit(&dataset)
        .map_err(|e| CavError::Fit {
            concept: label.concept.into(),
            negative: label.negative.into(),
            reason: e.to_string(),
        })?;
    // The fitted model predicts `labels().pos.class` where w·a + b > 0.
    let sign = if model.labels().pos.class { 1.0 } else { -1.0 };
    let weights: Vec<f64> = model.params().iter().map(|w| sign * w).collect();
    let intercept = sign * model.intercept();
    let norm = weights.iter().map(|w| w * w).sum::<f64>().sqrt();
    if !(norm > 0.0 && norm.is_finite()) {
        return Err(CavError::Fit {
            concept: label.concept.into(),
            negative: label.negative.into(),
            reason: format!("the boundary's normal has length {norm}; the two sets' activations may be identical"),
        });
    }
    let direction: Vec<f32> = weights.iter().map(|w| (w / norm) as f32).collect();
    let intercept = intercept / norm;

    let side = |a: &[f32]| dot(a, &direction) + intercept > 0.0;
    let correct = concept_test.iter().filter(|&&i| side(concept.row(i))).count()
        + negative_test.iter().filter(|&&i| !side(negative.row(i))).count();
    Ok(Cav {
        layer: label.layer.into(),
        concept: label.concept.into(),
        negative: label.negative.into(),
        direction,
        intercept,
        holdout_accuracy: correct as f64 / (2 * holdout) as f64,
        train_rows: per_side - holdout,
        holdout_rows: holdout,
        estimator: "logistic".into(),
        config: config.clone(),
        seed,
    })
}

fn stack(concept: &Matrix, negative: &Matrix, rows: &[(bool, usize)]) -> (Array2<f64>, Array1<bool>) {
    let mut x = Array2::<f64>::zeros((rows.len(), concept.cols()));
    let mut y = Array1::from_elem(rows.len(), false);
    for (r, &(is_concept, i)) in rows.iter().enumerate() {
        let values = if is_concept { concept.row(i) } else { negative.row(i) };
        x.row_mut(r).iter_mut().zip(values).for_each(|(dst, &v)| *dst = f64::from(v));
        y[r] = is_concept;
    }
    (x, y)
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| f64::from(x) * f64::from(y)).sum()
}

impl Cav {
    /// The same boundary seen from the other side: the CAV of `negative`
    /// against `concept`. Sign-count scores of the two are complementary
    /// (up to derivatives that are exactly 0).
    pub fn negated(&self) -> Cav {
        Cav {
            concept: self.negative.clone(),
            negative: self.concept.clone(),
            direction: self.direction.iter().map(|v| -v).collect(),
            intercept: -self.intercept,
            ..self.clone()
        }
    }

    /// Saves the direction as safetensors (tensor `cav`, 1 × width) with
    /// the metadata as JSON in the header, atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let matrix = Matrix::new(1, self.direction.len(), self.direction.clone())
            .ok_or_else(|| CavError::Config("empty CAV".into()))?;
        let meta = serde_json::to_string(self).map_err(|e| CavError::Config(e.to_string()))?;
        tcav_core::matrix::write_safetensors(path, &[("cav", &matrix)], HashMap::from([("cav".to_string(), meta)]))?;
        tcav_core::store::write_json(&path.with_extension("json"), self)?;
        Ok(())
    }

    /// Loads a CAV saved by [`Cav::save`].
    pub fn load(path: &Path) -> Result<Cav> {
        let mut cav: Cav = tcav_core::store::read_json(&path.with_extension("json"))?;
        cav.direction = tcav_core::matrix::read_safetensors(path, "cav")?.into_vec();
        Ok(cav)
    }
}

/// Directional derivatives `S(x) = ∇ₐ h_k(a) · v`, one per gradient row.
pub fn directional_derivatives(gradients: &Matrix, cav: &Cav) -> Result<Vec<f64>> {
    if gradients.cols() != cav.direction.len() {
        return Err(CavError::Width {
            what: format!("gradients vs CAV {} vs {} at `{}`", cav.concept, cav.negative, cav.layer),
            left: gradients.cols(),
            right: cav.direction.len(),
        });
    }
    Ok(gradients.iter_rows().map(|g| dot(g, &cav.direction)).collect())
}

/// The TCAV score: the fraction of directional derivatives that are
/// strictly positive (the class logit grows when moving toward the concept).
///
/// The logit is differentiated, not the loss, so "toward the class" is
/// `S > 0` (tensorflow/tcav counts `S < 0` of the loss's derivative).
pub fn tcav_score(derivatives: &[f64]) -> f64 {
    if derivatives.is_empty() {
        return f64::NAN;
    }
    derivatives.iter().filter(|&&s| s > 0.0).count() as f64 / derivatives.len() as f64
}

#[cfg(test)]
mod tests;
