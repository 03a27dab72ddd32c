//! Test fixtures, shared by the crate's unit tests and by
//! `tests/browser.rs`, which includes this file with `#[path]`: a small
//! report with every kind of verdict, training curves, and thumbnail images
//! written into a folder. The crate's types are named through `super::`,
//! which both includers provide, so this file compiles in either crate.

use std::path::Path;

use super::{
    ClassifierSummary, ConceptResult, ExperimentReport, SensitiveImages, StabilityPoint, StabilityRow, TrainingCurves,
    Verdict,
};

pub fn row(
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
        ci95_low: Some(mean - 0.037),
        ci95_high: Some(mean + 0.037),
        cohens_d: Some((mean - baseline) / 0.11),
        magnitude_mean: Some(mean.powf(0.8)),
        magnitude_std: Some(0.05),
        rank_p_value: Some(p_adj / 2.0),
        baseline_extreme_fraction: Some(if layer == "conv4" { 0.8 } else { 0.2 }),
        reliable: true,
        derivatives_file: Some(format!("derivatives/{class}/{layer}/{concept}.npy")),
    }
}

pub fn point(runs: usize, p_adjusted: f64, verdict: Verdict) -> StabilityPoint {
    StabilityPoint { runs, p_value: p_adjusted / 4.0, p_adjusted, verdict }
}

/// A small report: two classes, two layers, three concepts, with every
/// kind of verdict. Used by the tests of every module.
pub fn sample() -> ExperimentReport {
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
            ConceptResult {
                cav_accuracy_mean: 0.52,
                reliable: false,
                ..row("tiger", "conv2", "zigzagged", 0.9, 0.49, 1e-4, Unreliable)
            },
        ],
        estimator: "logistic".into(),
        design: "all-pairs baseline".into(),
        accuracy_threshold: 0.6,
        rank_test: "mann-whitney".into(),
        stability: vec![
            StabilityRow {
                class: "zebra".into(),
                layer: "conv2".into(),
                concept: "striped".into(),
                points: vec![point(3, 0.03, Above), point(4, 2e-4, Above), point(5, 1.2e-6, Above)],
            },
            StabilityRow {
                class: "zebra".into(),
                layer: "conv2".into(),
                concept: "zigzagged".into(),
                points: vec![point(3, 0.04, Above), point(4, 0.12, NotSignificant), point(5, 0.31, NotSignificant)],
            },
            StabilityRow {
                class: "tiger".into(),
                layer: "conv2".into(),
                concept: "zigzagged".into(),
                points: vec![point(3, 0.2, Unreliable), point(5, 1e-4, Unreliable)],
            },
        ],
    }
}

/// Training curves of a classifier of the sample's two classes over six
/// epochs, the best at the fifth (index 4).
pub fn training_curves() -> TrainingCurves {
    TrainingCurves {
        train_loss: vec![0.69, 0.52, 0.37, 0.29, 0.24, 0.22],
        validation_accuracy: vec![0.55, 0.71, 0.84, 0.9, 0.93, 0.92],
        best_epoch: 4,
        test_accuracy: 0.9325,
        classes: vec!["zebra".into(), "tiger".into()],
        confusion: vec![vec![38, 2], vec![3, 37]],
    }
}

/// Writes a few small PNGs (wider than a thumbnail, so that they are
/// downscaled) into `dir` and returns, for every result of `report`, three
/// most and three least sensitive images with made-up mean directional
/// derivatives.
pub fn sensitive_images(report: &ExperimentReport, dir: &Path) -> Vec<SensitiveImages> {
    let paths: Vec<_> = (0..6u8)
        .map(|i| {
            let path = dir.join(format!("image_{i}.png"));
            let image = image::RgbImage::from_fn(96, 80, |x, y| image::Rgb([i * 40, (x * 2) as u8, (y * 3) as u8]));
            image.save(&path).unwrap();
            path
        })
        .collect();
    report
        .results
        .iter()
        .map(|r| SensitiveImages {
            layer: r.layer.clone(),
            class: r.class.clone(),
            concept: r.concept.clone(),
            most: paths[..3].iter().zip([2.5, 1.75, 0.5]).map(|(p, v)| (p.clone(), v)).collect(),
            least: paths[3..].iter().zip([-3.25, -1.5, -0.125]).map(|(p, v)| (p.clone(), v)).collect(),
        })
        .collect()
}
