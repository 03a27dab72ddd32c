//! The CAV-fitting stage, and TCAV scoring.
//!
//! Takes: plain matrices of flattened bottleneck activations (one row per
//! image) for a concept set and a negative set, and matrices of class-logit
//! gradients. Produces:
//!
//! * a [`Cav`]: the unit normal of a linear boundary between the concept's
//!   activations and the negative set's, **pointing toward the concept**,
//!   with its accuracy on held-out activations and everything needed to
//!   refit it (estimator, hyper-parameters, seed);
//! * directional derivatives `S(x) = ∇ₐ h_k(a) · v`, and from them the two
//!   TCAV scores: [`tcav_score`] (sign count) and [`tcav_magnitude`]
//!   (Captum's magnitude score);
//! * [`is_reliable`], the accuracy gate that flags concepts whose CAVs are
//!   near chance.
//!
//! Estimators ([`Estimator`], chosen in [`CavConfig`]): L2 logistic
//! regression (solved in its dual form by default, which is exact and much
//! faster when images are fewer than activation values), a hinge-loss SGD
//! classifier with tensorflow/tcav's defaults, the mean difference
//! (FastCAV) and the pattern CAV.
//!
//! Relative TCAV needs nothing special: fit concept A with concept B's
//! activations as the negative set, or with the union of the other
//! concepts built by [`stack_rows`].
//!
//! Invariants: never depends on tch (activations and gradients arrive as
//! plain matrices); a CAV always points toward its concept, whatever the
//! estimator's own label convention (linfa-logistic 0.8.1 picks its
//! "positive" class by frequency or order); every random choice comes from
//! the seed passed to [`fit_cav`].

#![deny(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used, reason = "in a test, a failed unwrap is a failed test"))]

use std::collections::HashMap;
use std::path::Path;

use ndarray::Array2;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tcav_core::{CoreError, Matrix};

pub mod config;
mod logistic;
mod means;
mod sgd;

pub use config::{CavConfig, Estimator, LogisticConfig, SgdHingeConfig, Solver};

/// The version of what this stage stores. Cache keys include it: bump it
/// whenever a change here changes fitted CAVs or their saved records.
pub const OUTPUT_VERSION: u32 = 2;

/// The mean held-out accuracy below which [`is_reliable`] should call a
/// concept's CAVs unreliable, unless the experiment sets its own threshold.
/// Chance is 0.5 on the balanced hold-out; 0.6 leaves room for the noise of
/// small hold-out sets while flagging CAVs that barely separate anything.
pub const DEFAULT_ACCURACY_THRESHOLD: f64 = 0.6;

/// A concept activation vector and what it was fitted from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cav {
    /// The bottleneck layer.
    pub layer: String,
    /// The positive set (the concept).
    pub concept: String,
    /// The negative set (a random set, another concept, or a union).
    pub negative: String,
    /// Unit vector in activation space, pointing toward the concept.
    #[serde(skip)]
    pub direction: Vec<f32>,
    /// The boundary's offset along `direction`: a row `a` is classified as
    /// the concept when `a·direction + intercept > 0`.
    pub intercept: f64,
    /// Accuracy on the held-out rows of both sets (chance is 0.5).
    pub holdout_accuracy: f64,
    /// Rows used for fitting, per side, after balancing.
    pub train_rows: usize,
    /// Held-out rows, per side.
    pub holdout_rows: usize,
    /// The estimator's name, as in [`Estimator::name`].
    pub estimator: String,
    /// The estimator, its hyper-parameters and the hold-out fraction used.
    pub config: CavConfig,
    /// The seed of the balancing, hold-out and (for SGD) shuffling draws.
    pub seed: u64,
    /// Newton steps (dual logistic) or epochs (SGD) the estimator ran;
    /// `None` for closed forms and linfa-logistic, which does not say.
    #[serde(default)]
    pub iterations: Option<u64>,
}

/// What can go wrong when fitting or scoring.
#[derive(Debug, thiserror::Error)]
pub enum CavError {
    /// Too few rows on one side.
    #[error(
        "CAV {concept} vs {negative} at layer `{layer}`: {side} has {rows} images, at least 2 are needed (one to fit, one to hold out); add images to that set"
    )]
    TooFewRows {
        /// Bottleneck layer.
        layer: String,
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
    #[error("fitting CAV {concept} vs {negative} at layer `{layer}` with estimator `{estimator}`: {reason}")]
    Fit {
        /// Bottleneck layer.
        layer: String,
        /// Concept set.
        concept: String,
        /// Negative set.
        negative: String,
        /// The estimator's name.
        estimator: String,
        /// What went wrong.
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

/// An estimator's answer before normalisation: the concept is on the side
/// where `weights·a + intercept > 0`.
pub(crate) struct Boundary {
    pub(crate) weights: Vec<f64>,
    pub(crate) intercept: f64,
    pub(crate) iterations: Option<u64>,
}

/// Fits a CAV separating `concept` rows from `negative` rows.
///
/// **Balancing:** the larger side is subsampled, seeded, to the size of the
/// smaller, so the boundary is not pulled toward the bigger set, no
/// estimator sees a majority class, and chance accuracy is exactly 0.5.
/// **Hold-out:** each side is shuffled (seeded) and `holdout_fraction` of
/// the balanced size, rounded, at least one row and leaving at least one, is
/// held out from each side: the split is stratified, with equal counts.
/// Accuracy is measured on the held-out rows with the boundary `a·v + b > 0`.
/// The fitting rows reach the estimator interleaved in a seeded order.
///
/// Whatever the estimator, the direction is oriented so that the concept's
/// side is positive (linfa-logistic 0.8.1 may return the opposite sign; it
/// is checked and flipped) and scaled to unit length.
pub fn fit_cav(label: CavLabel<'_>, concept: &Matrix, negative: &Matrix, config: &CavConfig, seed: u64) -> Result<Cav> {
    fit_cav_shared(label, Rows { rows: concept, gram: None }, Rows { rows: negative, gram: None }, config, seed)
}

/// The Gram matrix `XXᵀ` of a set's activation rows, in `f64`: every inner
/// product the dual logistic solver needs between two rows of the set.
/// Computed once per set and layer, it is shared by every CAV fitted on
/// that set (see [`fit_cav_shared`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Gram {
    values: Array2<f64>,
}

impl Gram {
    /// The Gram matrix of all of `rows`.
    pub fn of(rows: &Matrix) -> Gram {
        let all: Vec<usize> = (0..rows.rows()).collect();
        let x = to_f64(rows, &all);
        Gram { values: x.dot(&x.t()) }
    }

    /// How many rows it covers.
    pub fn len(&self) -> usize {
        self.values.nrows()
    }

    /// Whether it covers no rows.
    pub fn is_empty(&self) -> bool {
        self.values.nrows() == 0
    }
}

/// One side of a CAV: its activation rows and, if already computed, their
/// [`Gram`] matrix.
#[derive(Clone, Copy, Debug)]
pub struct Rows<'a> {
    /// Activations, one row per image.
    pub rows: &'a Matrix,
    /// `Gram::of(rows)`, when the caller has it; computed here otherwise.
    pub gram: Option<&'a Gram>,
}

/// [`fit_cav`] with each side's [`Gram`] matrix given when the caller
/// computed it once for many CAVs; only the dual logistic solver uses it.
/// The result is bit-identical to [`fit_cav`]'s (which computes the same
/// Gram matrices itself): the dual solver assembles its kernel from the two
/// sides' Gram matrices and the cross products of the fitting rows, a
/// quarter of the inner products of computing it from scratch.
pub fn fit_cav_shared(
    label: CavLabel<'_>,
    concept: Rows<'_>,
    negative: Rows<'_>,
    config: &CavConfig,
    seed: u64,
) -> Result<Cav> {
    let (concept_gram, negative_gram) = (concept.gram, negative.gram);
    let (concept, negative) = (concept.rows, negative.rows);
    config.validate()?;
    for (side, m, gram) in [(label.concept, concept, concept_gram), (label.negative, negative, negative_gram)] {
        if let Some(gram) = gram
            && gram.len() != m.rows()
        {
            return Err(CavError::Config(format!(
                "the Gram matrix given for set `{side}` covers {} rows, the set has {}",
                gram.len(),
                m.rows()
            )));
        }
    }
    if concept.cols() != negative.cols() {
        return Err(CavError::Width {
            what: format!("CAV {} vs {} at layer `{}`", label.concept, label.negative, label.layer),
            left: concept.cols(),
            right: negative.cols(),
        });
    }
    for (side, m) in [(label.concept, concept), (label.negative, negative)] {
        if m.rows() < 2 {
            return Err(CavError::TooFewRows {
                layer: label.layer.into(),
                concept: label.concept.into(),
                negative: label.negative.into(),
                side: format!("set `{side}`"),
                rows: m.rows(),
            });
        }
    }
    let estimator = config.estimator.name();
    let fit_error = |reason: String| CavError::Fit {
        layer: label.layer.into(),
        concept: label.concept.into(),
        negative: label.negative.into(),
        estimator: estimator.into(),
        reason,
    };

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

    // Interleave the sides in a seeded order: SGD's path and linfa's label
    // convention both depend on which rows come first.
    let mut fit_rows: Vec<(bool, usize)> =
        concept_fit.iter().map(|&i| (true, i)).chain(negative_fit.iter().map(|&i| (false, i))).collect();
    fit_rows.shuffle(&mut rng);
    let boundary = match &config.estimator {
        Estimator::Logistic(c) if c.solver == Solver::Dual => {
            dual_from_blocks(concept, concept_gram, negative, negative_gram, &fit_rows, c)
        }
        estimator => {
            let (x, is_concept) = stack(concept, negative, &fit_rows);
            match estimator {
                Estimator::Logistic(c) => logistic::fit_primal(&x, &is_concept, c),
                // A seed of its own, so the shuffles do not depend on how
                // many draws the split above took.
                Estimator::SgdHinge(c) => {
                    sgd::fit(&x, &is_concept, c, tcav_core::seed::derive(seed, "sgd-hinge/shuffle"))
                }
                Estimator::MeanDifference {} => means::mean_difference(&x, &is_concept),
                Estimator::Pattern {} => means::pattern(&x, &is_concept),
            }
        }
    }
    .map_err(fit_error)?;

    let norm = boundary.weights.iter().map(|w| w * w).sum::<f64>().sqrt();
    if !(norm > 0.0 && norm.is_finite()) {
        return Err(fit_error(format!(
            "the boundary's normal has length {norm}; the two sets' activations may be identical"
        )));
    }
    let direction: Vec<f32> = boundary.weights.iter().map(|w| (w / norm) as f32).collect();
    let intercept = boundary.intercept / norm;

    let side = |a: &[f32]| dot(a, &direction) + intercept > 0.0;
    let correct = concept_test.iter().filter(|&&i| side(concept.row(i))).count()
        + negative_test.iter().filter(|&&i| !side(negative.row(i))).count();
    let holdout_accuracy = correct as f64 / (2 * holdout) as f64;
    tracing::debug!(
        layer = label.layer,
        concept = label.concept,
        negative = label.negative,
        estimator,
        holdout_accuracy,
        iterations = boundary.iterations,
        "CAV fitted"
    );
    Ok(Cav {
        layer: label.layer.into(),
        concept: label.concept.into(),
        negative: label.negative.into(),
        direction,
        intercept,
        holdout_accuracy,
        train_rows: per_side - holdout,
        holdout_rows: holdout,
        estimator: estimator.into(),
        config: config.clone(),
        seed,
        iterations: boundary.iterations,
    })
}

/// The dual logistic fit with its kernel assembled from blocks: the two
/// sides' Gram matrices (given, or computed over each whole side) and the
/// cross products between the fitting rows of the two sides. The weights
/// are `Σ βᵣ xᵣ`, accumulated row by row.
fn dual_from_blocks(
    concept: &Matrix,
    concept_gram: Option<&Gram>,
    negative: &Matrix,
    negative_gram: Option<&Gram>,
    fit_rows: &[(bool, usize)],
    config: &LogisticConfig,
) -> Result<Boundary, String> {
    let own = |m: &Matrix, given: Option<&Gram>| if given.is_some() { None } else { Some(Gram::of(m)) };
    let (own_concept, own_negative) = (own(concept, concept_gram), own(negative, negative_gram));
    let (gc, gn) = match (concept_gram.or(own_concept.as_ref()), negative_gram.or(own_negative.as_ref())) {
        (Some(c), Some(n)) => (&c.values, &n.values),
        _ => return Err("internal: a Gram matrix is missing".into()),
    };
    // Position of each fitting row within its side's fitting rows.
    let mut slot = Vec::with_capacity(fit_rows.len());
    let (mut concept_rows, mut negative_rows) = (Vec::new(), Vec::new());
    for &(from_concept, i) in fit_rows {
        let side = if from_concept { &mut concept_rows } else { &mut negative_rows };
        slot.push(side.len());
        side.push(i);
    }
    let cross = to_f64(concept, &concept_rows).dot(&to_f64(negative, &negative_rows).t());
    let n = fit_rows.len();
    let kernel = Array2::from_shape_fn((n, n), |(r, s)| match (fit_rows[r], fit_rows[s]) {
        ((true, i), (true, j)) => gc[[i, j]],
        ((false, i), (false, j)) => gn[[i, j]],
        ((true, _), (false, _)) => cross[[slot[r], slot[s]]],
        ((false, _), (true, _)) => cross[[slot[s], slot[r]]],
    });
    let is_concept: Vec<bool> = fit_rows.iter().map(|&(c, _)| c).collect();
    let (beta, intercept, steps) = logistic::fit_dual_gram(&kernel, &is_concept, config)?;
    let mut weights = vec![0.0f64; concept.cols()];
    for (&(from_concept, i), &b) in fit_rows.iter().zip(&beta) {
        let row = if from_concept { concept.row(i) } else { negative.row(i) };
        weights.iter_mut().zip(row).for_each(|(w, &x)| *w += b * f64::from(x));
    }
    Ok(Boundary { weights, intercept, iterations: Some(steps) })
}

/// The given rows of `m`, in that order, as `f64`.
fn to_f64(m: &Matrix, rows: &[usize]) -> Array2<f64> {
    let mut x = Array2::<f64>::zeros((rows.len(), m.cols()));
    for (r, &i) in rows.iter().enumerate() {
        x.row_mut(r).iter_mut().zip(m.row(i)).for_each(|(dst, &v)| *dst = f64::from(v));
    }
    x
}

fn stack(concept: &Matrix, negative: &Matrix, rows: &[(bool, usize)]) -> (Array2<f64>, Vec<bool>) {
    let mut x = Array2::<f64>::zeros((rows.len(), concept.cols()));
    let mut is_concept = vec![false; rows.len()];
    for (r, &(from_concept, i)) in rows.iter().enumerate() {
        let values = if from_concept { concept.row(i) } else { negative.row(i) };
        x.row_mut(r).iter_mut().zip(values).for_each(|(dst, &v)| *dst = f64::from(v));
        is_concept[r] = from_concept;
    }
    (x, is_concept)
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| f64::from(x) * f64::from(y)).sum()
}

/// Stacks the rows of several activation matrices into one, in order: the
/// negative set "union of the other concepts" for relative TCAV.
///
/// An empty list gives a 0 × 0 matrix (which [`fit_cav`] then rejects as a
/// set with too few images). Errors if the widths differ.
pub fn stack_rows(parts: &[&Matrix]) -> Result<Matrix> {
    let cols = parts.first().map_or(0, |m| m.cols());
    let mut data = Vec::with_capacity(parts.iter().map(|m| m.as_slice().len()).sum());
    for (k, m) in parts.iter().enumerate() {
        if m.cols() != cols {
            return Err(CavError::Width {
                what: format!("stacking a union of sets: part {k} vs part 0"),
                left: m.cols(),
                right: cols,
            });
        }
        data.extend_from_slice(m.as_slice());
    }
    let rows = parts.iter().map(|m| m.rows()).sum();
    Matrix::new(rows, cols, data).ok_or_else(|| CavError::Config("stacked rows do not fill a matrix".into()))
}

impl Cav {
    /// The same boundary seen from the other side: the CAV of `negative`
    /// against `concept`. Its sign-count score is `1 − score − zeros/n`
    /// (exactly complementary when no derivative is exactly 0), and its
    /// magnitude score is `1 − magnitude`.
    pub fn negated(&self) -> Cav {
        Cav {
            concept: self.negative.clone(),
            negative: self.concept.clone(),
            direction: self.direction.iter().map(|v| -v).collect(),
            intercept: -self.intercept,
            ..self.clone()
        }
    }

    /// Saves the direction as safetensors (tensor `cav`, 1 × width),
    /// atomically. The header's metadata holds the whole record as JSON
    /// under `cav` (layer, sets, estimator with every hyper-parameter,
    /// hold-out fraction, seed, accuracy), plus the most used fields as
    /// their own string entries so Python users can read them directly
    /// (`safe_open(path, "np").metadata()`). A `.json` twin holds the same
    /// record for [`Cav::load`].
    pub fn save(&self, path: &Path) -> Result<()> {
        let matrix = Matrix::new(1, self.direction.len(), self.direction.clone())
            .ok_or_else(|| CavError::Config("empty CAV".into()))?;
        let json = |v: &serde_json::Value| v.to_string();
        let record = serde_json::to_value(self)
            .map_err(|e| CavError::Config(format!("CAV {} vs {}: {e}", self.concept, self.negative)))?;
        let mut meta = HashMap::from([("cav".to_string(), json(&record))]);
        for key in ["layer", "concept", "negative", "estimator"] {
            if let Some(serde_json::Value::String(v)) = record.get(key) {
                meta.insert(key.to_string(), v.clone());
            }
        }
        for key in ["holdout_accuracy", "seed", "config"] {
            if let Some(v) = record.get(key) {
                meta.insert(key.to_string(), json(v));
            }
        }
        tcav_core::matrix::write_safetensors(path, &[("cav", &matrix)], meta)?;
        tcav_core::store::write_json(&path.with_extension("json"), self)?;
        Ok(())
    }

    /// Loads a CAV saved by [`Cav::save`].
    pub fn load(path: &Path) -> Result<Cav> {
        let mut cav: Cav = tcav_core::store::read_json(&path.with_extension("json"))?;
        cav.direction = tcav_core::matrix::read_safetensors(path, "cav")?.into_vec();
        Ok(cav)
    }

    /// Saves several CAVs of one layer in one file: tensor `cavs`, one row
    /// per CAV, and a `.json` twin listing their records in the same order.
    /// One file instead of one per CAV: creating files dominated the cost
    /// of fitting thousands of small CAVs.
    pub fn save_all(cavs: &[Cav], path: &Path) -> Result<()> {
        let width = cavs.first().map_or(0, |c| c.direction.len());
        let mut data = Vec::with_capacity(cavs.len() * width);
        for cav in cavs {
            if cav.direction.len() != width {
                return Err(CavError::Width {
                    what: format!("saving CAV {} vs {} with others", cav.concept, cav.negative),
                    left: cav.direction.len(),
                    right: width,
                });
            }
            data.extend_from_slice(&cav.direction);
        }
        let matrix = Matrix::new(cavs.len(), width, data)
            .ok_or_else(|| CavError::Config("CAV directions do not fill a matrix".into()))?;
        let meta = HashMap::from([("count".to_string(), cavs.len().to_string())]);
        tcav_core::matrix::write_safetensors(path, &[("cavs", &matrix)], meta)?;
        tcav_core::store::write_json(&path.with_extension("json"), cavs)?;
        Ok(())
    }

    /// Loads CAVs saved by [`Cav::save_all`], in their saved order.
    pub fn load_all(path: &Path) -> Result<Vec<Cav>> {
        let mut cavs: Vec<Cav> = tcav_core::store::read_json(&path.with_extension("json"))?;
        let directions = tcav_core::matrix::read_safetensors(path, "cavs")?;
        if directions.rows() != cavs.len() {
            return Err(CavError::Config(format!(
                "{} holds {} CAV directions for {} records: delete it so it is rebuilt",
                path.display(),
                directions.rows(),
                cavs.len()
            )));
        }
        for (cav, row) in cavs.iter_mut().zip(directions.iter_rows()) {
            cav.direction = row.to_vec();
        }
        Ok(cavs)
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

/// The TCAV score (sign count): the fraction of directional derivatives
/// that are strictly positive, i.e. of a class's images whose logit grows
/// when the activation moves toward the concept.
///
/// The logit is differentiated, not the loss, so "toward the class" is
/// `S > 0` (tensorflow/tcav counts `S < 0` of the loss's derivative; Captum
/// counts `S > 0` of the output's, as here). Derivatives exactly 0 count as
/// not positive, so a CAV and its negation score `s` and `1 − s − zeros/n`.
/// Unchanged by rescaling the CAV by any positive factor. NaN for no
/// derivatives.
pub fn tcav_score(derivatives: &[f64]) -> f64 {
    if derivatives.is_empty() {
        return f64::NAN;
    }
    derivatives.iter().filter(|&&s| s > 0.0).count() as f64 / derivatives.len() as f64
}

/// The magnitude TCAV score, Captum's definition:
/// `Σ max(S, 0) / Σ |S|`, the share of the derivatives' total size that
/// pushes toward the class. Unlike the sign count, it weighs images by how
/// strongly they respond. Unchanged by rescaling the CAV by a positive
/// factor; a CAV and its negation score `m` and `1 − m`.
///
/// NaN when there are no derivatives or all are exactly 0 (Captum's 0/0):
/// such a class gives no evidence either way, which 0 would misreport as
/// "pushes away".
pub fn tcav_magnitude(derivatives: &[f64]) -> f64 {
    let positive: f64 = derivatives.iter().filter(|&&s| s > 0.0).sum();
    let total: f64 = derivatives.iter().map(|s| s.abs()).sum();
    if total == 0.0 { f64::NAN } else { positive / total }
}

/// The accuracy gate: whether a concept's CAVs separate it from its
/// negative sets well enough for its TCAV scores to mean anything, i.e.
/// whether the mean held-out accuracy of its CAVs is at least `threshold`
/// ([`DEFAULT_ACCURACY_THRESHOLD`] unless the experiment says otherwise).
///
/// `false` for no accuracies or any NaN: an unmeasured concept is not
/// reliable.
pub fn is_reliable(accuracies: &[f64], threshold: f64) -> bool {
    if accuracies.is_empty() {
        return false;
    }
    let mean = accuracies.iter().sum::<f64>() / accuracies.len() as f64;
    mean >= threshold
}

#[cfg(test)]
mod tests;
