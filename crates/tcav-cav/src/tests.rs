use super::*;
use rand::Rng;

/// `n` rows of width `d`: uniform noise in [-1, 1) around `mean`.
fn cloud(n: usize, mean: &[f32], seed: u64) -> Matrix {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let d = mean.len();
    let data = (0..n * d).map(|k| mean[k % d] + rng.random_range(-1.0f32..1.0)).collect();
    Matrix::new(n, d, data).unwrap()
}

/// The same rows in reverse order.
fn reversed(m: &Matrix) -> Matrix {
    let data = (0..m.rows()).rev().flat_map(|i| m.row(i)).copied().collect();
    Matrix::new(m.rows(), m.cols(), data).unwrap()
}

fn label() -> CavLabel<'static> {
    CavLabel { layer: "conv3", concept: "striped", negative: "random_0" }
}

fn offset(d: usize, axis: usize, by: f32) -> Vec<f32> {
    let mut v = vec![0.0; d];
    v[axis] = by;
    v
}

/// One config per estimator (and per logistic solver).
fn every_estimator() -> Vec<CavConfig> {
    let logistic = |solver| Estimator::Logistic(LogisticConfig { solver, ..LogisticConfig::default() });
    [
        logistic(Solver::Dual),
        logistic(Solver::Primal),
        Estimator::SgdHinge(SgdHingeConfig::default()),
        Estimator::MeanDifference {},
        Estimator::Pattern {},
    ]
    .into_iter()
    .map(|estimator| CavConfig { estimator, ..CavConfig::default() })
    .collect()
}

fn describe(config: &CavConfig) -> String {
    match &config.estimator {
        Estimator::Logistic(c) => format!("logistic/{:?}", c.solver),
        other => other.name().into(),
    }
}

fn dot64(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| f64::from(x) * f64::from(y)).sum()
}

#[test]
fn every_estimator_points_toward_its_concept_whatever_the_sizes_order_and_seed() {
    let d = 20;
    for config in every_estimator() {
        // Concept clouds are shifted along axis 3; random sets are centred.
        for (n_concept, n_negative) in [(30, 30), (40, 25), (25, 40), (2, 9), (9, 2)] {
            for seed in 0..4 {
                let concept = cloud(n_concept, &offset(d, 3, 2.0), seed);
                let negative = cloud(n_negative, &vec![0.0; d], seed + 100);
                for (concept, negative) in
                    [(concept.clone(), negative.clone()), (reversed(&concept), reversed(&negative))]
                {
                    let cav = fit_cav(label(), &concept, &negative, &config, seed).unwrap();
                    // One fitting row per side (the 2/9 cases) leaves a noisy
                    // direction, but never one pointing away from the concept.
                    let floor = if n_concept.min(n_negative) > 2 { 0.5 } else { 0.0 };
                    assert!(
                        cav.direction[3] > floor,
                        "{} sizes {n_concept}/{n_negative} seed {seed}: {:?}",
                        describe(&config),
                        &cav.direction[..5]
                    );
                    let norm = dot64(&cav.direction, &cav.direction).sqrt();
                    assert!((norm - 1.0).abs() < 1e-6);
                    assert_eq!(cav.train_rows + cav.holdout_rows, n_concept.min(n_negative));
                    assert_eq!(cav.estimator, config.estimator.name());
                }
            }
        }
    }
}

#[test]
fn holdout_accuracy_separates_real_concepts_from_noise() {
    let d = 50;
    for config in every_estimator() {
        let concept = cloud(40, &offset(d, 0, 3.0), 1);
        let negative = cloud(40, &vec![0.0; d], 2);
        let cav = fit_cav(label(), &concept, &negative, &config, 7).unwrap();
        assert_eq!(cav.holdout_rows, 8);
        assert!(cav.holdout_accuracy >= 0.9, "{}: {}", describe(&config), cav.holdout_accuracy);

        // Two draws of the same distribution: accuracy near chance on average.
        let accuracies: Vec<f64> = (0..10)
            .map(|s| {
                let a = cloud(40, &vec![0.0; d], 10 + s);
                let b = cloud(40, &vec![0.0; d], 50 + s);
                fit_cav(label(), &a, &b, &config, s).unwrap().holdout_accuracy
            })
            .collect();
        let mean = accuracies.iter().sum::<f64>() / 10.0;
        assert!((0.3..=0.7).contains(&mean), "{}: mean accuracy on noise {mean}", describe(&config));
        assert!(!is_reliable(&accuracies, 0.75), "{}: {accuracies:?}", describe(&config));
        assert!(is_reliable(&[cav.holdout_accuracy], DEFAULT_ACCURACY_THRESHOLD));
    }
}

#[test]
fn the_holdout_split_is_balanced_stratified_and_seeded() {
    // 50 concept rows vs 12 negative rows: 12 per side, 2 (12·0.2 rounded)
    // of each held out.
    let concept = cloud(50, &offset(6, 1, 2.0), 1);
    let negative = cloud(12, &[0.0; 6], 2);
    let config = CavConfig { estimator: Estimator::MeanDifference {}, ..CavConfig::default() };
    let cav = fit_cav(label(), &concept, &negative, &config, 3).unwrap();
    assert_eq!((cav.train_rows, cav.holdout_rows), (10, 2));
    // Accuracy is counted over both sides' held-out rows: a multiple of 1/4.
    assert_eq!((cav.holdout_accuracy * 4.0).fract(), 0.0);
    // Another seed draws other rows, so another mean difference.
    let other = fit_cav(label(), &concept, &negative, &config, 4).unwrap();
    assert_ne!(cav.direction, other.direction);
    let tiny = CavConfig { holdout_fraction: 0.01, ..config };
    assert_eq!(fit_cav(label(), &concept, &negative, &tiny, 3).unwrap().holdout_rows, 1);
}

#[test]
fn fitting_is_deterministic_for_a_seed() {
    let concept = cloud(30, &offset(10, 1, 1.0), 1);
    let negative = cloud(30, &[0.0; 10], 2);
    for config in every_estimator() {
        let a = fit_cav(label(), &concept, &negative, &config, 3).unwrap();
        let b = fit_cav(label(), &concept, &negative, &config, 3).unwrap();
        assert_eq!(a, b, "{}", describe(&config));
        assert_eq!(a.config, config);
    }
}

#[test]
fn dual_and_primal_logistic_cavs_agree() {
    // More activation values than images, as at real bottlenecks.
    let d = 400;
    let mut shift = vec![0.0f32; d];
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    shift.iter_mut().for_each(|v| *v = rng.random_range(-0.2..0.2));
    let concept = cloud(30, &shift, 1);
    let negative = cloud(35, &vec![0.0; d], 2);
    let logistic = |solver| CavConfig {
        estimator: Estimator::Logistic(LogisticConfig {
            solver,
            gradient_tolerance: 1e-8,
            max_iterations: 3000,
            ..LogisticConfig::default()
        }),
        ..CavConfig::default()
    };
    let primal = fit_cav(label(), &concept, &negative, &logistic(Solver::Primal), 5).unwrap();
    let dual = fit_cav(label(), &concept, &negative, &logistic(Solver::Dual), 5).unwrap();
    let cosine_distance = 1.0 - dot64(&primal.direction, &dual.direction);
    assert!(cosine_distance < 1e-4, "cosine distance {cosine_distance}");
    assert!((primal.intercept - dual.intercept).abs() < 1e-3, "{} vs {}", primal.intercept, dual.intercept);
    assert_eq!(primal.holdout_accuracy, dual.holdout_accuracy);
    assert!(dual.iterations.is_some_and(|steps| steps < 30), "{:?}", dual.iterations);
}

#[test]
fn pattern_and_mean_difference_cavs_coincide_for_two_sets() {
    let concept = cloud(25, &offset(12, 5, 1.0), 1);
    let negative = cloud(30, &[0.0; 12], 2);
    let with = |estimator| CavConfig { estimator, ..CavConfig::default() };
    let pattern = fit_cav(label(), &concept, &negative, &with(Estimator::Pattern {}), 9).unwrap();
    let difference = fit_cav(label(), &concept, &negative, &with(Estimator::MeanDifference {}), 9).unwrap();
    for (p, m) in pattern.direction.iter().zip(&difference.direction) {
        assert!((p - m).abs() < 1e-6);
    }
    assert!((pattern.intercept - difference.intercept).abs() < 1e-6);
    assert_eq!(pattern.estimator, "pattern");
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
    for config in every_estimator() {
        let cav = fit_cav(label(), &concept, &negative, &config, 1).unwrap();
        let expected = dot64(&w_k, &cav.direction);
        let derivatives = directional_derivatives(&gradients, &cav).unwrap();
        assert!(derivatives.iter().all(|s| *s == expected), "{}", describe(&config));
        assert!(expected > 0.0, "{}: the concept lies along W_k's positive axis 4", describe(&config));
        assert_eq!(tcav_score(&derivatives), 1.0);
        assert_eq!(tcav_magnitude(&derivatives), 1.0);
        let away = directional_derivatives(&gradients, &cav.negated()).unwrap();
        assert_eq!((tcav_score(&away), tcav_magnitude(&away)), (0.0, 0.0));
    }
}

#[test]
fn scores_are_invariant_to_cav_scale_and_complementary_under_negation() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let d = 8;
    // Ten of the fifty gradient rows are exactly zero: ties at S = 0.
    let data = (0..50 * d).map(|k| if k / d < 10 { 0.0 } else { rng.random_range(-1.0f32..1.0) }).collect();
    let gradients = Matrix::new(50, d, data).unwrap();
    let concept = cloud(20, &offset(d, 2, 1.5), 1);
    let negative = cloud(20, &vec![0.0; d], 2);
    for config in every_estimator() {
        let cav = fit_cav(label(), &concept, &negative, &config, 0).unwrap();
        let derivatives = directional_derivatives(&gradients, &cav).unwrap();
        let (score, magnitude) = (tcav_score(&derivatives), tcav_magnitude(&derivatives));

        let mut scaled = cav.clone();
        scaled.direction.iter_mut().for_each(|v| *v *= 37.5);
        let scaled_derivatives = directional_derivatives(&gradients, &scaled).unwrap();
        assert_eq!(tcav_score(&scaled_derivatives), score);
        // The scaled f32 direction is rounded, so the magnitude moves by ~1 ulp.
        assert!((tcav_magnitude(&scaled_derivatives) - magnitude).abs() < 1e-6);

        let zeros = derivatives.iter().filter(|s| **s == 0.0).count();
        assert_eq!(zeros, 10);
        let flipped = directional_derivatives(&gradients, &cav.negated()).unwrap();
        let expected = 1.0 - score - zeros as f64 / 50.0;
        assert!((tcav_score(&flipped) - expected).abs() < 1e-12, "{}", describe(&config));
        assert!((tcav_magnitude(&flipped) - (1.0 - magnitude)).abs() < 1e-12);
        let negated = cav.negated();
        assert_eq!((negated.concept.as_str(), negated.negative.as_str()), ("random_0", "striped"));
        assert_eq!(negated.negated(), cav);
    }
}

#[test]
fn magnitude_follows_captums_definition() {
    // Σ max(S,0) / Σ|S| = (1 + 2) / (1 + 3 + 2 + 0) = 0.5; sign count 2/4.
    let s = [1.0, -3.0, 2.0, 0.0];
    assert_eq!(tcav_magnitude(&s), 0.5);
    assert_eq!(tcav_score(&s), 0.5);
    assert_eq!(tcav_magnitude(&[0.25, -0.75]), 0.25);
    assert_eq!(tcav_magnitude(&[-1.0, -2.0]), 0.0);
    assert!(tcav_magnitude(&[0.0, 0.0]).is_nan());
    assert!(tcav_magnitude(&[]).is_nan());
    assert!(tcav_score(&[]).is_nan());
}

#[test]
fn the_accuracy_gate_compares_the_mean_with_the_threshold() {
    assert!(is_reliable(&[0.75, 0.5], 0.625));
    assert!(!is_reliable(&[0.75, 0.5], 0.626));
    assert!(is_reliable(&[1.0, 0.5, 0.5, 0.5], DEFAULT_ACCURACY_THRESHOLD));
    assert!(!is_reliable(&[0.5; 10], DEFAULT_ACCURACY_THRESHOLD));
    assert!(!is_reliable(&[], 0.0));
    assert!(!is_reliable(&[1.0, f64::NAN], 0.5));
}

#[test]
fn relative_cavs_fit_against_a_union_of_other_concepts() {
    let d = 10;
    let a = cloud(12, &offset(d, 0, 2.0), 1);
    let b = cloud(8, &offset(d, 1, 2.0), 2);
    let c = cloud(9, &offset(d, 2, 2.0), 3);
    let union = stack_rows(&[&b, &c]).unwrap();
    assert_eq!((union.rows(), union.cols()), (17, d));
    assert_eq!(union.row(0), b.row(0));
    assert_eq!(union.row(8), c.row(0));
    assert_eq!(union.row(16), c.row(8));
    let label = CavLabel { layer: "conv2", concept: "a", negative: "b+c" };
    for config in every_estimator() {
        let cav = fit_cav(label, &a, &union, &config, 4).unwrap();
        assert!(cav.direction[0] > 0.4, "{}: {:?}", describe(&config), &cav.direction[..3]);
        assert_eq!(cav.negative, "b+c");
    }
    let err = stack_rows(&[&a, &cloud(3, &[0.0; 4], 1)]).unwrap_err().to_string();
    assert!(err.contains("part 1") && err.contains("widths differ"), "{err}");
    let empty = stack_rows(&[]).unwrap();
    assert_eq!((empty.rows(), empty.cols()), (0, 0));
}

#[test]
fn a_relative_cav_points_toward_its_concept_and_swapping_the_sides_negates_it() {
    // Concept A sits at +2 on axis 0, concept B at +2 on axis 1; a class
    // whose gradient rewards axis 0 and penalises axis 1 must score A vs B
    // at 1 and B vs A at 0.
    let d = 12;
    let a = cloud(24, &offset(d, 0, 2.0), 5);
    let b = cloud(24, &offset(d, 1, 2.0), 6);
    let mut g = vec![0.0f32; 7 * d];
    for (k, v) in g.iter_mut().enumerate() {
        *v = match k % d {
            0 => 1.0,
            1 => -1.0,
            _ => 0.05 * ((k * 37 % 11) as f32 - 5.0),
        };
    }
    let gradients = Matrix::new(7, d, g).unwrap();
    for config in every_estimator() {
        let ab = fit_cav(CavLabel { layer: "l", concept: "a", negative: "b" }, &a, &b, &config, 8).unwrap();
        let ba = fit_cav(CavLabel { layer: "l", concept: "b", negative: "a" }, &b, &a, &config, 8).unwrap();
        assert!(ab.direction[0] > 0.4 && ab.direction[1] < -0.4, "{}: {:?}", describe(&config), &ab.direction[..3]);
        // The swapped fit uses its own rows (the seeded draws fall on the
        // other side first), so it is the negation up to fitting noise.
        let cosine = dot64(&ab.direction, &ba.direction);
        assert!(cosine < -0.75, "{}: cosine {cosine}", describe(&config));
        let (s_ab, s_ba) = (
            tcav_score(&directional_derivatives(&gradients, &ab).unwrap()),
            tcav_score(&directional_derivatives(&gradients, &ba).unwrap()),
        );
        assert_eq!((s_ab, s_ba), (1.0, 0.0), "{}", describe(&config));
        // The exact negation scores 1 − score (no derivative is 0 here).
        let negated = tcav_score(&directional_derivatives(&gradients, &ab.negated()).unwrap());
        assert_eq!(negated, 1.0 - s_ab);
    }
}

#[test]
fn groups_of_cavs_round_trip_through_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cavs.safetensors");
    let a = cloud(10, &offset(6, 0, 2.0), 1);
    let b = cloud(10, &offset(6, 1, 2.0), 2);
    let cavs: Vec<Cav> = (0..3)
        .map(|seed| fit_cav(CavLabel { layer: "l", concept: "a", negative: "b" }, &a, &b, &CavConfig::default(), seed))
        .collect::<Result<_>>()
        .unwrap();
    Cav::save_all(&cavs, &path).unwrap();
    assert_eq!(Cav::load_all(&path).unwrap(), cavs, "bit-identical, records and directions");
    let mut narrow = cavs[0].clone();
    narrow.direction.pop();
    let err = Cav::save_all(&[cavs[0].clone(), narrow], &path).unwrap_err().to_string();
    assert!(err.contains("widths differ"), "{err}");
}

#[test]
fn shared_gram_matrices_give_bit_identical_cavs() {
    let (d, label) = (40, label());
    let concept = cloud(30, &offset(d, 3, 1.0), 1);
    let negative = cloud(26, &vec![0.0; d], 2);
    let (gc, gn) = (Gram::of(&concept), Gram::of(&negative));
    assert_eq!(gc.len(), 30);
    for config in every_estimator() {
        for seed in 0..3 {
            let alone = fit_cav(label, &concept, &negative, &config, seed).unwrap();
            let shared = fit_cav_shared(
                label,
                Rows { rows: &concept, gram: Some(&gc) },
                Rows { rows: &negative, gram: Some(&gn) },
                &config,
                seed,
            )
            .unwrap();
            assert_eq!(alone, shared, "{} seed {seed}", describe(&config));
        }
    }
    let err = fit_cav_shared(
        label,
        Rows { rows: &concept, gram: Some(&gn) },
        Rows { rows: &negative, gram: None },
        &CavConfig::default(),
        0,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("`striped`") && err.contains("26 rows"), "{err}");
}

#[test]
fn the_block_assembled_dual_kernel_matches_the_kernel_from_scratch() {
    // The blocks path (OUTPUT_VERSION 2) against the solver fed the Gram
    // matrix of the stacked fitting rows (version 1): equal up to rounding.
    let d = 300;
    let concept = cloud(20, &offset(d, 0, 0.5), 3);
    let negative = cloud(20, &vec![0.0; d], 4);
    let fit_rows: Vec<(bool, usize)> =
        (0..16).flat_map(|i| [(true, (i * 7) % 20), (false, (i * 3 + 1) % 20)]).collect();
    let config = LogisticConfig::default();
    let blocks = dual_from_blocks(&concept, None, &negative, None, &fit_rows, &config).unwrap();
    let (x, is_concept) = stack(&concept, &negative, &fit_rows);
    let scratch = logistic::fit_dual(&x, &is_concept, &config).unwrap();
    let norm = |w: &[f64]| w.iter().map(|v| v * v).sum::<f64>().sqrt();
    let cosine: f64 = blocks.weights.iter().zip(&scratch.weights).map(|(a, b)| a * b).sum::<f64>()
        / (norm(&blocks.weights) * norm(&scratch.weights));
    assert!(1.0 - cosine < 1e-12, "cosine distance {}", 1.0 - cosine);
    assert!((blocks.intercept - scratch.intercept).abs() < 1e-9, "{} vs {}", blocks.intercept, scratch.intercept);
    assert_eq!(blocks.iterations, scratch.iterations);
}

#[test]
fn bad_inputs_are_errors_that_name_the_sets() {
    let a = cloud(1, &[0.0; 4], 1);
    let b = cloud(10, &[0.0; 4], 2);
    let c = cloud(10, &[0.0; 5], 3);
    for config in every_estimator() {
        let err = fit_cav(label(), &a, &b, &config, 0).unwrap_err().to_string();
        assert!(err.contains("`striped`") && err.contains("1 images") && err.contains("conv3"), "{err}");
        let err = fit_cav(label(), &b, &a, &config, 0).unwrap_err().to_string();
        assert!(err.contains("`random_0`") && err.contains("1 images"), "{err}");
        let err = fit_cav(label(), &b, &c, &config, 0).unwrap_err().to_string();
        assert!(err.contains("widths differ") && err.contains("striped vs random_0"), "{err}");
        let bad = CavConfig { holdout_fraction: 1.5, ..config.clone() };
        let err = fit_cav(label(), &b, &b, &bad, 0).unwrap_err().to_string();
        assert!(err.contains("holdout_fraction"), "{err}");
    }
    // Identical rows everywhere: the means coincide, so there is no direction.
    let flat = Matrix::new(6, 3, vec![0.5; 18]).unwrap();
    for estimator in [Estimator::MeanDifference {}, Estimator::Pattern {}] {
        let config = CavConfig { estimator, ..CavConfig::default() };
        let err = fit_cav(label(), &flat, &flat, &config, 0).unwrap_err().to_string();
        assert!(
            err.contains("striped vs random_0") && err.contains(config.estimator.name()) && err.contains("identical"),
            "{err}"
        );
    }
    let cav = fit_cav(label(), &b, &cloud(10, &[1.0; 4], 4), &CavConfig::default(), 0).unwrap();
    let err = directional_derivatives(&c, &cav).unwrap_err().to_string();
    assert!(err.contains("striped vs random_0") && err.contains("conv3"), "{err}");
}

#[test]
fn cavs_round_trip_through_files_with_their_hyper_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let concept = cloud(10, &offset(4, 0, 2.0), 1);
    let negative = cloud(10, &[0.0; 4], 2);
    for config in every_estimator() {
        let cav = fit_cav(label(), &concept, &negative, &config, 0).unwrap();
        let path = dir.path().join(format!("{}.safetensors", describe(&config).replace('/', "-")));
        cav.save(&path).unwrap();
        assert_eq!(Cav::load(&path).unwrap(), cav);

        // The safetensors header (8-byte length, then JSON) carries the
        // metadata for readers that never see the .json twin.
        let bytes = std::fs::read(&path).unwrap();
        let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + len]).unwrap();
        let meta = &header["__metadata__"];
        assert_eq!(meta["estimator"], config.estimator.name());
        assert_eq!(meta["concept"], "striped");
        assert_eq!(meta["negative"], "random_0");
        assert_eq!(meta["layer"], "conv3");
        assert_eq!(meta["seed"], "0");
        let saved: CavConfig = serde_json::from_str(meta["config"].as_str().unwrap()).unwrap();
        assert_eq!(saved, config);
        let record: serde_json::Value = serde_json::from_str(meta["cav"].as_str().unwrap()).unwrap();
        assert_eq!(record["holdout_accuracy"], cav.holdout_accuracy);
        assert_eq!(record["config"]["holdout_fraction"], 0.2);
        match &config.estimator {
            Estimator::Logistic(c) => {
                assert_eq!(record["config"]["alpha"], c.alpha);
                assert_eq!(record["config"]["solver"], if c.solver == Solver::Dual { "dual" } else { "primal" });
            }
            Estimator::SgdHinge(c) => {
                assert_eq!(record["config"]["alpha"], 0.01);
                assert_eq!(record["config"]["max_iter"], 1000);
                assert_eq!(record["config"]["tol"], c.tol);
            }
            Estimator::MeanDifference {} | Estimator::Pattern {} => {}
        }
    }
}
