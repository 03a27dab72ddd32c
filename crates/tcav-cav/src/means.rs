//! Closed-form CAVs: the mean difference (FastCAV) and the pattern CAV
//! (Pahde et al. 2022).
//!
//! Neither is a classifier, so each gets the boundary through the midpoint
//! of the two sets' means: a row is on the concept's side when it projects
//! closer to the concept's mean. The held-out accuracy measures that rule.

use ndarray::{Array1, Array2, Axis};

use crate::Boundary;

/// `v = mean(concept) − mean(negative)`.
pub(crate) fn mean_difference(x: &Array2<f64>, is_concept: &[bool]) -> Result<Boundary, String> {
    let (concept_mean, negative_mean) = side_means(x, is_concept)?;
    let weights = &concept_mean - &negative_mean;
    Ok(midpoint_boundary(weights, &concept_mean, &negative_mean))
}

/// `v = Σᵢ (aᵢ − ā)(yᵢ − ȳ)`, the covariance (times n) between activations
/// and the 0/1 concept label, computed as written rather than through its
/// equality with `n_c·n_n/n · (mean(concept) − mean(negative))`.
pub(crate) fn pattern(x: &Array2<f64>, is_concept: &[bool]) -> Result<Boundary, String> {
    let (concept_mean, negative_mean) = side_means(x, is_concept)?;
    let mean = x.mean_axis(Axis(0)).ok_or("no rows to fit")?;
    let label_mean = is_concept.iter().filter(|&&c| c).count() as f64 / is_concept.len() as f64;
    let mut weights = Array1::<f64>::zeros(x.ncols());
    for (row, &c) in x.rows().into_iter().zip(is_concept) {
        let centred_label = if c { 1.0 } else { 0.0 } - label_mean;
        weights.zip_mut_with(&(&row - &mean), |w, a| *w += a * centred_label);
    }
    Ok(midpoint_boundary(weights, &concept_mean, &negative_mean))
}

fn side_means(x: &Array2<f64>, is_concept: &[bool]) -> Result<(Array1<f64>, Array1<f64>), String> {
    let mut sums = [Array1::<f64>::zeros(x.ncols()), Array1::<f64>::zeros(x.ncols())];
    let mut counts = [0usize; 2];
    for (row, &c) in x.rows().into_iter().zip(is_concept) {
        let side = usize::from(!c);
        sums[side] += &row;
        counts[side] += 1;
    }
    if counts.contains(&0) {
        return Err("one side has no rows to average".into());
    }
    let [concept, negative] = sums;
    Ok((concept / counts[0] as f64, negative / counts[1] as f64))
}

/// The boundary `v·a + b = 0` through `(μ_c + μ_n)/2`.
fn midpoint_boundary(weights: Array1<f64>, concept_mean: &Array1<f64>, negative_mean: &Array1<f64>) -> Boundary {
    let midpoint = (concept_mean + negative_mean) / 2.0;
    let intercept = -weights.dot(&midpoint);
    Boundary { weights: weights.to_vec(), intercept, iterations: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Concept rows (3,0), (1,2); negative rows (0,0), (0,2); interleaved.
    fn tiny() -> (Array2<f64>, Vec<bool>) {
        let x = Array2::from_shape_vec((4, 2), vec![0.0, 0.0, 3.0, 0.0, 0.0, 2.0, 1.0, 2.0]).unwrap();
        (x, vec![false, true, false, true])
    }

    #[test]
    fn mean_difference_matches_the_hand_computation() {
        // μc = (2, 1), μn = (0, 1): v = (2, 0); midpoint (1, 1): b = −v·(1,1) = −2.
        let (x, labels) = tiny();
        let fit = mean_difference(&x, &labels).unwrap();
        assert_eq!(fit.weights, vec![2.0, 0.0]);
        assert_eq!(fit.intercept, -2.0);
    }

    #[test]
    fn pattern_matches_the_hand_computation() {
        // ā = (1, 1), ȳ = 1/2: Σ (aᵢ − ā)(yᵢ − ȳ)
        //   = ½[(2,−1) + (0,1)] − ½[(−1,−1) + (−1,1)] = (1,0) + (1,0) = (2, 0),
        // which is n_c·n_n/n · (μc − μn) = 2·2/4 · (2, 0).
        let (x, labels) = tiny();
        let fit = pattern(&x, &labels).unwrap();
        assert_eq!(fit.weights, vec![2.0, 0.0]);
        assert_eq!(fit.intercept, -2.0);
    }

    #[test]
    fn pattern_is_the_scaled_mean_difference_on_unbalanced_sets() {
        // Three concept rows, one negative: the scale is 3·1/4.
        let x = Array2::from_shape_vec((4, 2), vec![1.0, 2.0, 5.0, -1.0, 0.0, 4.0, 2.0, 2.0]).unwrap();
        let labels = [true, false, true, true];
        let pattern = pattern(&x, &labels).unwrap();
        let difference = mean_difference(&x, &labels).unwrap();
        for (p, d) in pattern.weights.iter().zip(&difference.weights) {
            assert!((p - 0.75 * d).abs() < 1e-12, "{:?} vs {:?}", pattern.weights, difference.weights);
        }
        // Row order changes nothing but rounding.
        let reordered = Array2::from_shape_vec((4, 2), vec![0.0, 4.0, 2.0, 2.0, 5.0, -1.0, 1.0, 2.0]).unwrap();
        let again = super::pattern(&reordered, &[true, true, false, true]).unwrap();
        for (a, b) in again.weights.iter().zip(&pattern.weights) {
            assert!((a - b).abs() < 1e-12);
        }
        assert!(side_means(&x, &[true; 4]).is_err());
    }
}
