//! L2-regularised logistic regression, in its primal form (linfa-logistic)
//! and in its dual form (our Newton solver over one coefficient per row).
//!
//! Both minimise `Σᵢ log(1 + exp(−yᵢ(xᵢ·w + b))) + alpha/2·‖w‖²` with the
//! intercept `b` unpenalised, linfa-logistic's objective.

use linfa::prelude::*;
use linfa_logistic::LogisticRegression;
use ndarray::{Array1, Array2};

use crate::Boundary;
use crate::config::LogisticConfig;

/// linfa-logistic's L-BFGS on the `width + 1` primal weights.
///
/// linfa-logistic 0.8.1 labels as "positive" whichever class it counts
/// most, or the first seen on a tie, so the sign of its weights is checked
/// against the concept's label and flipped when needed.
pub(crate) fn fit_primal(x: &Array2<f64>, is_concept: &[bool], config: &LogisticConfig) -> Result<Boundary, String> {
    let dataset = Dataset::new(x.clone(), Array1::from(is_concept.to_vec()));
    let model = LogisticRegression::default()
        .alpha(config.alpha)
        .max_iterations(config.max_iterations)
        .gradient_tolerance(config.gradient_tolerance)
        .fit(&dataset)
        .map_err(|e| e.to_string())?;
    // The fitted model predicts `labels().pos.class` where w·a + b > 0.
    let sign = if model.labels().pos.class { 1.0 } else { -1.0 };
    Ok(Boundary {
        weights: model.params().iter().map(|w| sign * w).collect(),
        intercept: sign * model.intercept(),
        iterations: None,
    })
}

/// Newton's method on the dual form.
///
/// The gradient in `w` is `Xᵀr + alpha·w` for some residual vector `r`, so
/// at the optimum `w = Xᵀβ` for a `β` with one entry per row. Substituting
/// gives an objective over `(β, b)` that needs only the Gram matrix
/// `K = XXᵀ`: the margins are `z = Kβ + b` and the penalty `alpha/2·βᵀKβ`.
///
/// With `g = σ(z) − t` (t the 0/1 label) and `D = diag(σ(z)(1 − σ(z)))`, the
/// Newton system `H·Δ = −∇` has `K` as a left factor in its `β` rows; taking
/// it out leaves the `(n+1)`-square system
///
/// ```text
/// (DK + alpha·I)·Δβ + D1·Δb = −(g + alpha·β)
/// 1ᵀDK·Δβ + 1ᵀD1·Δb         = −1ᵀg
/// ```
///
/// which is well conditioned even when `K` is singular (more rows than
/// activation values, or duplicate rows). A backtracking line search on the
/// true objective makes every step a descent step.
#[cfg(test)]
pub(crate) fn fit_dual(x: &Array2<f64>, is_concept: &[bool], config: &LogisticConfig) -> Result<Boundary, String> {
    let gram = x.dot(&x.t());
    let (beta, intercept, steps) = fit_dual_gram(&gram, is_concept, config)?;
    let weights = x.t().dot(&Array1::from(beta)).to_vec();
    Ok(Boundary { weights, intercept, iterations: Some(steps) })
}

/// [`fit_dual`] from the Gram matrix `K = XXᵀ` of the fitting rows alone:
/// returns the dual coefficients `β` (the weights are `w = Xᵀβ`), the
/// intercept and the Newton steps taken. The caller can then assemble `K`
/// from blocks computed once for many fits.
pub(crate) fn fit_dual_gram(
    gram: &Array2<f64>,
    is_concept: &[bool],
    config: &LogisticConfig,
) -> Result<(Vec<f64>, f64, u64), String> {
    let n = gram.nrows();
    let alpha = config.alpha;
    let target: Vec<f64> = is_concept.iter().map(|&c| if c { 1.0 } else { 0.0 }).collect();

    let margins = |beta: &[f64], b: f64| -> Vec<f64> { mat_vec(gram, beta).into_iter().map(|z| z + b).collect() };
    // The objective from margins z = Kβ + b: βᵀKβ = βᵀ(z − b).
    let objective = |beta: &[f64], b: f64, z: &[f64]| -> f64 {
        let loss: f64 = z.iter().zip(&target).map(|(&z, &t)| softplus(if t > 0.5 { -z } else { z })).sum();
        let penalty: f64 = beta.iter().zip(z).map(|(&beta, &z)| beta * (z - b)).sum();
        loss + 0.5 * alpha * penalty
    };

    let mut beta = vec![0.0; n];
    let mut b = 0.0;
    let mut z = margins(&beta, b);
    let mut f = objective(&beta, b, &z);
    let mut converged = false;
    let mut steps: u64 = 0;
    while steps < config.max_iterations {
        let p: Vec<f64> = z.iter().map(|&z| sigmoid(z)).collect();
        let g: Vec<f64> = p.iter().zip(&target).map(|(p, t)| p - t).collect();
        let d: Vec<f64> = p.iter().map(|p| p * (1.0 - p)).collect();
        // ∇_w = Xᵀu with u = g + alpha·β, so ‖∇_w‖² = uᵀKu; ∇_b = Σg.
        let u: Vec<f64> = g.iter().zip(&beta).map(|(g, beta)| g + alpha * beta).collect();
        let ku = mat_vec(gram, &u);
        let grad_b: f64 = g.iter().sum();
        let grad_w2 = dot(&u, &ku).max(0.0);
        if (grad_w2 + grad_b * grad_b).sqrt() <= config.gradient_tolerance {
            converged = true;
            break;
        }

        let mut system = vec![vec![0.0; n + 2]; n + 1];
        for i in 0..n {
            for j in 0..n {
                system[i][j] = d[i] * gram[[i, j]] + if i == j { alpha } else { 0.0 };
                system[n][j] += d[i] * gram[[i, j]];
            }
            system[i][n] = d[i];
            system[n][n] += d[i];
            system[i][n + 1] = -u[i];
        }
        system[n][n + 1] = -grad_b;
        let delta = solve_in_place(system).ok_or("the Newton system of the dual logistic problem is singular")?;
        let (delta_beta, delta_b) = delta.split_at(n);
        let delta_b = delta_b[0];

        // The objective's slope along the step: ∇_β·Δβ + ∇_b·Δb, with ∇_β = Ku.
        let slope = dot(&ku, delta_beta) + grad_b * delta_b;
        if slope >= 0.0 {
            // Rounding has swamped the step: as close as f64 gets.
            converged = true;
            break;
        }
        let mut step = 1.0;
        loop {
            let trial_beta: Vec<f64> = beta.iter().zip(delta_beta).map(|(b, d)| b + step * d).collect();
            let trial_b = b + step * delta_b;
            let trial_z = margins(&trial_beta, trial_b);
            let trial_f = objective(&trial_beta, trial_b, &trial_z);
            if trial_f <= f + 1e-4 * step * slope {
                beta = trial_beta;
                b = trial_b;
                z = trial_z;
                f = trial_f;
                break;
            }
            step *= 0.5;
            if step < 1e-10 {
                return Err(format!(
                    "the dual logistic solver's line search stalled after {steps} Newton steps (objective {f})"
                ));
            }
        }
        steps += 1;
    }
    if !converged {
        tracing::warn!(
            steps,
            tolerance = config.gradient_tolerance,
            "dual logistic solver stopped at max_iterations before the gradient tolerance was met"
        );
    }
    Ok((beta, b, steps))
}

fn mat_vec(m: &Array2<f64>, v: &[f64]) -> Vec<f64> {
    m.rows().into_iter().map(|row| row.iter().zip(v).map(|(a, b)| a * b).sum()).collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(a, b)| a * b).sum()
}

/// `ln(1 + eˣ)` without overflow.
fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// Solves the square system whose rows are `[A | rhs]` by Gaussian
/// elimination with partial pivoting; `None` if it is singular.
fn solve_in_place(mut rows: Vec<Vec<f64>>) -> Option<Vec<f64>> {
    let n = rows.len();
    for col in 0..n {
        let pivot = (col..n).max_by(|&a, &b| rows[a][col].abs().total_cmp(&rows[b][col].abs()))?;
        if rows[pivot][col] == 0.0 || !rows[pivot][col].is_finite() {
            return None;
        }
        rows.swap(col, pivot);
        let (upper, lower) = rows.split_at_mut(col + 1);
        let pivot_row = &upper[col];
        for row in lower {
            let factor = row[col] / pivot_row[col];
            if factor != 0.0 {
                row[col..].iter_mut().zip(&pivot_row[col..]).for_each(|(r, p)| *r -= factor * p);
            }
        }
    }
    let mut solution = vec![0.0; n];
    for i in (0..n).rev() {
        let tail: f64 = (i + 1..n).map(|j| rows[i][j] * solution[j]).sum();
        solution[i] = (rows[i][n] - tail) / rows[i][i];
    }
    solution.iter().all(|v| v.is_finite()).then_some(solution)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// `n` rows of width `d`, the first half concept rows shifted along a
    /// random direction, in a shuffled order.
    fn problem(n: usize, d: usize, seed: u64) -> (Array2<f64>, Vec<bool>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let shift: Vec<f64> = (0..d).map(|_| rng.random_range(-0.3..0.3)).collect();
        let labels: Vec<bool> = (0..n).map(|_| rng.random_bool(0.5)).collect();
        let x = Array2::from_shape_fn((n, d), |(i, j)| {
            rng.random_range(-1.0..1.0) + if labels[i] { shift[j] } else { 0.0 }
        });
        (x, labels)
    }

    fn cosine_distance(a: &[f64], b: &[f64]) -> f64 {
        1.0 - dot(a, b) / (dot(a, a).sqrt() * dot(b, b).sqrt())
    }

    fn tight() -> LogisticConfig {
        LogisticConfig { gradient_tolerance: 1e-9, max_iterations: 5000, ..LogisticConfig::default() }
    }

    #[test]
    fn dual_matches_linfa_primal_optimum() {
        // Wide (the TCAV case: K invertible) and tall (K singular).
        for (n, d, alpha) in [(40, 300, 1.0), (30, 120, 0.1), (60, 5, 1.0)] {
            let (x, labels) = problem(n, d, n as u64 + d as u64);
            let config = LogisticConfig { alpha, ..tight() };
            let primal = fit_primal(&x, &labels, &config).unwrap();
            let dual = fit_dual(&x, &labels, &config).unwrap();
            let distance = cosine_distance(&primal.weights, &dual.weights);
            assert!(distance < 1e-6, "n {n} d {d}: cosine distance {distance}");
            let norm = dot(&dual.weights, &dual.weights).sqrt();
            let scale = norm.max(1.0);
            assert!(
                (primal.intercept - dual.intercept).abs() < 1e-5 * scale,
                "{} vs {}",
                primal.intercept,
                dual.intercept
            );
            assert!(dual.iterations.unwrap() < 30, "Newton took {:?} steps", dual.iterations);
        }
    }

    #[test]
    fn dual_optimum_is_stationary() {
        let (x, labels) = problem(20, 50, 3);
        let config = tight();
        let fit = fit_dual(&x, &labels, &config).unwrap();
        // ∇_w = Σ (σ(z) − t) x + alpha·w and ∇_b = Σ (σ(z) − t), from scratch.
        let w = Array1::from(fit.weights.clone());
        let residual: Array1<f64> = x
            .dot(&w)
            .iter()
            .zip(&labels)
            .map(|(z, &t)| sigmoid(z + fit.intercept) - if t { 1.0 } else { 0.0 })
            .collect();
        let grad_w = x.t().dot(&residual) + &w * config.alpha;
        assert!(grad_w.iter().all(|g| g.abs() < 1e-8), "{grad_w:?}");
        assert!(residual.sum().abs() < 1e-8);
    }

    #[test]
    fn dual_orients_weights_toward_the_concept_label() {
        // One informative axis; the concept sits at +2 on it.
        let x = Array2::from_shape_fn((8, 3), |(i, j)| match (i % 2, j) {
            (0, 0) => 2.0,
            (_, 0) => -2.0,
            (_, _) => (i * 7 + j * 3) as f64 % 5.0 / 5.0,
        });
        let labels: Vec<bool> = (0..8).map(|i| i % 2 == 0).collect();
        let fit = fit_dual(&x, &labels, &tight()).unwrap();
        assert!(fit.weights[0] > 0.0, "{:?}", fit.weights);
        let flipped: Vec<bool> = labels.iter().map(|l| !l).collect();
        let fit = fit_dual(&x, &flipped, &tight()).unwrap();
        assert!(fit.weights[0] < 0.0, "{:?}", fit.weights);
    }

    #[test]
    fn gaussian_elimination_solves_a_known_system() {
        // 2x + y = 5, x + 3y = 10 → x = 1, y = 3; the zero top-left forces a pivot swap.
        let solution = solve_in_place(vec![vec![0.0, 1.0, 3.0], vec![1.0, 3.0, 10.0]]).unwrap();
        assert!((solution[0] - 1.0).abs() < 1e-12 && (solution[1] - 3.0).abs() < 1e-12, "{solution:?}");
        let solution = solve_in_place(vec![vec![2.0, 1.0, 5.0], vec![1.0, 3.0, 10.0]]).unwrap();
        assert!((solution[0] - 1.0).abs() < 1e-12 && (solution[1] - 3.0).abs() < 1e-12, "{solution:?}");
        assert!(solve_in_place(vec![vec![1.0, 2.0, 1.0], vec![2.0, 4.0, 2.0]]).is_none());
        assert!((softplus(800.0) - 800.0).abs() < 1e-12 && softplus(-800.0) >= 0.0);
        assert_eq!(sigmoid(-800.0), 0.0);
    }
}
