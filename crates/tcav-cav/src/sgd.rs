//! A linear SVM fitted by plain SGD on the hinge loss, following
//! scikit-learn's `SGDClassifier(loss="hinge", penalty="l2",
//! learning_rate="optimal")`, tensorflow/tcav's default CAV.
//!
//! Per row, in an order reshuffled (seeded) every epoch:
//!
//! * `eta = 1 / (alpha·(t0 + t − 1))`, with `t` counting updates from 1 and
//!   `t0` chosen so that the first `eta` is `alpha^(−1/4)` (Bottou's
//!   "optimal" schedule, as scikit-learn sets it);
//! * the weights shrink by `max(0, 1 − eta·alpha)` (the L2 penalty);
//! * when the margin `y·(w·x + b)` is at most 1, `w += eta·y·x` and
//!   `b += eta·y` (the intercept is not penalised).
//!
//! Training stops when an epoch's summed hinge loss has not dropped below
//! the best so far minus `tol·rows` for `n_iter_no_change` epochs in a row,
//! or after `max_iter` epochs. The shuffles come from our own seeded
//! generator, so weights differ from scikit-learn's numerically, not in
//! what they estimate.

use ndarray::Array2;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::Boundary;
use crate::config::SgdHingeConfig;

/// scikit-learn folds the penalty's shrinking into a scale factor and
/// multiplies it into the weights when it gets this small.
const MIN_SCALE: f64 = 1e-9;

pub(crate) fn fit(
    x: &Array2<f64>,
    is_concept: &[bool],
    config: &SgdHingeConfig,
    seed: u64,
) -> Result<Boundary, String> {
    let (n, width) = x.dim();
    let alpha = config.alpha;
    let label: Vec<f64> = is_concept.iter().map(|&c| if c { 1.0 } else { -1.0 }).collect();

    // scikit-learn: typw = sqrt(1/sqrt(alpha)), eta0 = typw / max(1, dloss(−typw, 1)),
    // and the hinge's dloss there is −1, so eta0 = typw.
    let typical_weight = (1.0 / alpha.sqrt()).sqrt();
    let first_eta = typical_weight / 1.0f64.max(hinge_dloss(-typical_weight, 1.0));
    let t0 = 1.0 / (first_eta * alpha);

    // The weights are `scale · raw`, so the penalty's shrink is O(1).
    let mut raw = vec![0.0; width];
    let mut scale = 1.0;
    let mut intercept = 0.0;
    let mut t = 1.0;
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut best_loss = f64::INFINITY;
    let mut no_improvement = 0;
    let mut epochs = 0;
    let mut converged = false;
    while epochs < config.max_iter {
        order.shuffle(&mut rng);
        let mut epoch_loss = 0.0;
        for &i in &order {
            let row = x.row(i);
            let row = row.as_slice().ok_or("activation rows are not contiguous")?;
            let y = label[i];
            let p = scale * dot(&raw, row) + intercept;
            let eta = 1.0 / (alpha * (t0 + t - 1.0));
            epoch_loss += (1.0 - p * y).max(0.0);
            let update = -eta * hinge_dloss(p, y);
            scale *= (1.0 - eta * alpha).max(0.0);
            if scale < MIN_SCALE {
                raw.iter_mut().for_each(|w| *w *= scale);
                scale = 1.0;
            }
            if update != 0.0 {
                let step = update / scale;
                raw.iter_mut().zip(row).for_each(|(w, x)| *w += step * x);
                intercept += update;
            }
            t += 1.0;
        }
        epochs += 1;
        if !intercept.is_finite() || raw.iter().any(|w| !w.is_finite()) {
            return Err(format!(
                "SGD diverged (non-finite weights) in epoch {epochs}; the activations may be too large: try a larger alpha"
            ));
        }
        if epoch_loss > best_loss - config.tol * n as f64 {
            no_improvement += 1;
        } else {
            no_improvement = 0;
        }
        best_loss = best_loss.min(epoch_loss);
        if no_improvement >= config.n_iter_no_change {
            converged = true;
            break;
        }
    }
    if !converged {
        tracing::warn!(epochs, tol = config.tol, "SGD hinge CAV hit max_iter before its loss stopped improving");
    }
    Ok(Boundary { weights: raw.iter().map(|w| w * scale).collect(), intercept, iterations: Some(epochs) })
}

/// The hinge loss's derivative in the prediction `p` for label `y = ±1`.
fn hinge_dloss(p: f64, y: f64) -> f64 {
    if p * y <= 1.0 { -y } else { 0.0 }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(a, b)| a * b).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two clusters at ±(2, 1), margin > 1 on axis 0, with small jitter.
    fn separable(n: usize) -> (Array2<f64>, Vec<bool>) {
        let labels: Vec<bool> = (0..n).map(|i| i % 3 != 0).collect();
        let x = Array2::from_shape_fn((n, 3), |(i, j)| {
            let sign = if labels[i] { 1.0 } else { -1.0 };
            let jitter = ((i * 31 + j * 17) % 11) as f64 / 11.0 - 0.5;
            match j {
                0 => sign * 2.0 + 0.5 * jitter,
                1 => sign + jitter,
                _ => 3.0 * jitter,
            }
        });
        (x, labels)
    }

    #[test]
    fn separates_separable_data_toward_the_positive_label() {
        let (x, labels) = separable(60);
        let fit = fit(&x, &labels, &SgdHingeConfig::default(), 5).unwrap();
        for (i, &label) in labels.iter().enumerate() {
            let p: f64 = dot(&fit.weights, x.row(i).as_slice().unwrap()) + fit.intercept;
            assert_eq!(p > 0.0, label, "row {i}: decision {p}");
        }
        assert!(fit.weights[0] > 0.0);
        let epochs = fit.iterations.unwrap();
        assert!(epochs > 5 && epochs < 1000, "{epochs} epochs");
    }

    #[test]
    fn is_deterministic_for_a_seed_and_depends_on_it() {
        let (x, labels) = separable(30);
        let config = SgdHingeConfig::default();
        let a = fit(&x, &labels, &config, 1).unwrap();
        let b = fit(&x, &labels, &config, 1).unwrap();
        assert_eq!(a.weights, b.weights);
        assert_eq!(a.intercept.to_bits(), b.intercept.to_bits());
        let c = fit(&x, &labels, &config, 2).unwrap();
        assert_ne!(a.weights, c.weights);
    }

    #[test]
    fn first_step_follows_the_optimal_schedule() {
        // One row, one epoch: eta = alpha^(-1/4), shrink (1 − eta·alpha) of
        // zero weights, then w = eta·y·x and b = eta·y.
        let x = Array2::from_shape_vec((1, 2), vec![0.5, -2.0]).unwrap();
        let config = SgdHingeConfig { max_iter: 1, ..SgdHingeConfig::default() };
        let fit = fit(&x, &[false], &config, 0).unwrap();
        let eta = 0.01f64.powf(-0.25);
        assert!((fit.intercept + eta).abs() < 1e-12, "{}", fit.intercept);
        assert!(
            (fit.weights[0] + 0.5 * eta).abs() < 1e-12 && (fit.weights[1] - 2.0 * eta).abs() < 1e-12,
            "{:?}",
            fit.weights
        );
        assert_eq!(fit.iterations, Some(1));
    }

    #[test]
    fn stops_after_n_iter_no_change_epochs_without_progress() {
        // Huge tol: only the first epoch (against an infinite best) counts as
        // an improvement, so it stops after 1 + n_iter_no_change epochs.
        let (x, labels) = separable(12);
        let config = SgdHingeConfig { tol: 1e6, n_iter_no_change: 3, ..SgdHingeConfig::default() };
        assert_eq!(fit(&x, &labels, &config, 0).unwrap().iterations, Some(4));
    }
}
