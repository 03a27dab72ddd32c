use super::*;
use rand::Rng;

/// `n` rows of width `d`: Gaussian noise around `mean` (a vector).
fn cloud(n: usize, mean: &[f32], seed: u64) -> Matrix {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let d = mean.len();
    let data = (0..n * d).map(|k| mean[k % d] + rng.random_range(-1.0f32..1.0)).collect();
    Matrix::new(n, d, data).unwrap()
}

fn label() -> CavLabel<'static> {
    CavLabel { layer: "conv3", concept: "striped", negative: "random_0" }
}

fn offset(d: usize, axis: usize, by: f32) -> Vec<f32> {
    let mut v = vec![0.0; d];
    v[axis] = by;
    v
}

#[test]
fn every_cav_points_toward_its_concept_whatever_the_sizes_and_seed() {
    let d = 20;
    // Concept clouds are shifted along axis 3; random sets are centred.
    for (n_concept, n_negative) in [(30, 30), (40, 25), (25, 40), (2, 9)] {
        for seed in 0..6 {
            let concept = cloud(n_concept, &offset(d, 3, 2.0), seed);
            let negative = cloud(n_negative, &vec![0.0; d], seed + 100);
            let cav = fit_cav(label(), &concept, &negative, &CavConfig::default(), seed).unwrap();
            // One fitting row per side (the 2/9 case) leaves a noisy direction,
            // but never one pointing away from the concept.
            let floor = if n_concept.min(n_negative) > 2 { 0.5 } else { 0.0 };
            assert!(cav.direction[3] > floor, "sizes {n_concept}/{n_negative} seed {seed}: {:?}", &cav.direction[..5]);
            let norm: f32 = cav.direction.iter().map(|v| v * v).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-5);
            assert_eq!(cav.train_rows + cav.holdout_rows, n_concept.min(n_negative));
        }
    }
}

#[test]
fn holdout_accuracy_separates_real_concepts_from_noise() {
    let d = 50;
    let concept = cloud(40, &offset(d, 0, 3.0), 1);
    let negative = cloud(40, &vec![0.0; d], 2);
    let cav = fit_cav(label(), &concept, &negative, &CavConfig::default(), 7).unwrap();
    assert_eq!(cav.holdout_rows, 8);
    assert!(cav.holdout_accuracy >= 0.9, "{}", cav.holdout_accuracy);

    // Two draws of the same distribution: accuracy near chance on average.
    let mean: f64 = (0..10)
        .map(|s| {
            let a = cloud(40, &vec![0.0; d], 10 + s);
            let b = cloud(40, &vec![0.0; d], 50 + s);
            fit_cav(label(), &a, &b, &CavConfig::default(), s).unwrap().holdout_accuracy
        })
        .sum::<f64>()
        / 10.0;
    assert!((0.3..=0.7).contains(&mean), "mean accuracy on noise {mean}");
}

#[test]
fn fitting_is_deterministic_for_a_seed() {
    let concept = cloud(30, &offset(10, 1, 1.0), 1);
    let negative = cloud(30, &vec![0.0; 10], 2);
    let a = fit_cav(label(), &concept, &negative, &CavConfig::default(), 3).unwrap();
    let b = fit_cav(label(), &concept, &negative, &CavConfig::default(), 3).unwrap();
    assert_eq!(a, b);
}

#[test]
fn linear_head_scores_are_known_exactly() {
    // For a linear head h = W a, ∇ₐ h_k = W_k for every image, so every
    // directional derivative is W_k · v and the score is [W_k · v > 0].
    let d = 6;
    let w_k: Vec<f32> = vec![0.5, -1.0, 0.25, 0.0, 2.0, -0.75];
    let gradients = Matrix::new(4, d, w_k.repeat(4)).unwrap();
    let concept = cloud(20, &[0.0, 0.0, 0.0, 0.0, 3.0, 0.0], 4);
    let negative = cloud(20, &vec![0.0; d], 5);
    let cav = fit_cav(label(), &concept, &negative, &CavConfig::default(), 1).unwrap();
    let expected: f64 = w_k.iter().zip(&cav.direction).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum();
    let derivatives = directional_derivatives(&gradients, &cav).unwrap();
    assert!(derivatives.iter().all(|s| (s - expected).abs() < 1e-12));
    assert_eq!(tcav_score(&derivatives), if expected > 0.0 { 1.0 } else { 0.0 });
    assert!(expected > 0.0, "the concept lies along W_k's positive axis 4");
}

#[test]
fn scores_are_invariant_to_cav_scale_and_complementary_under_negation() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let d = 8;
    let gradients = Matrix::new(50, d, (0..50 * d).map(|_| rng.random_range(-1.0f32..1.0)).collect()).unwrap();
    let concept = cloud(20, &offset(d, 2, 1.5), 1);
    let negative = cloud(20, &vec![0.0; d], 2);
    let cav = fit_cav(label(), &concept, &negative, &CavConfig::default(), 0).unwrap();
    let score = tcav_score(&directional_derivatives(&gradients, &cav).unwrap());

    let mut scaled = cav.clone();
    scaled.direction.iter_mut().for_each(|v| *v *= 37.5);
    assert_eq!(tcav_score(&directional_derivatives(&gradients, &scaled).unwrap()), score);

    let flipped = tcav_score(&directional_derivatives(&gradients, &cav.negated()).unwrap());
    let zeros = directional_derivatives(&gradients, &cav).unwrap().iter().filter(|s| **s == 0.0).count();
    assert_eq!(zeros, 0);
    assert!((flipped - (1.0 - score)).abs() < 1e-12);
    assert_eq!(cav.negated().concept, "random_0");
}

#[test]
fn bad_inputs_are_errors_that_name_the_sets() {
    let a = cloud(1, &[0.0; 4], 1);
    let b = cloud(10, &[0.0; 4], 2);
    let err = fit_cav(label(), &a, &b, &CavConfig::default(), 0).unwrap_err().to_string();
    assert!(err.contains("striped") && err.contains("1 images"), "{err}");
    let c = cloud(10, &[0.0; 5], 3);
    let err = fit_cav(label(), &b, &c, &CavConfig::default(), 0).unwrap_err().to_string();
    assert!(err.contains("widths differ"), "{err}");
    let bad = CavConfig { holdout_fraction: 1.5, ..CavConfig::default() };
    assert!(fit_cav(label(), &b, &b, &bad, 0).is_err());
    assert!(tcav_score(&[]).is_nan());
}

#[test]
fn cavs_round_trip_through_files() {
    let dir = tempfile::tempdir().unwrap();
    let concept = cloud(10, &offset(4, 0, 2.0), 1);
    let negative = cloud(10, &[0.0; 4], 2);
    let cav = fit_cav(label(), &concept, &negative, &CavConfig::default(), 0).unwrap();
    let path = dir.path().join("cav.safetensors");
    cav.save(&path).unwrap();
    assert_eq!(Cav::load(&path).unwrap(), cav);
}
