//! Writes every output of the report stage for a made-up experiment, to see
//! what they look like: `cargo run -p tcav-report --example report_preview -- DIR`.
//!
//! The numbers are invented for display only; no statistics are computed.

use std::path::PathBuf;

use tcav_report::{
    ClassifierSummary, ConceptResult, ExperimentReport, HtmlInputs, SensitiveImages, StabilityPoint, StabilityRow,
    TrainingCurves, Verdict,
};

fn result(
    class: &str,
    layer: &str,
    concept: &str,
    mean: f64,
    baseline: f64,
    p_adj: f64,
    verdict: Verdict,
) -> ConceptResult {
    let offsets = [-0.09, -0.05, -0.02, 0.0, 0.01, 0.03, 0.04, 0.08];
    let spread = [-0.2, -0.12, -0.05, 0.0, 0.02, 0.06, 0.13, 0.16];
    ConceptResult {
        class: class.into(),
        layer: layer.into(),
        concept: concept.into(),
        scores: offsets.iter().map(|d| (mean + d).clamp(0.0, 1.0)).collect(),
        mean,
        std: 0.055,
        baseline_scores: spread.iter().map(|d| (baseline + d).clamp(0.0, 1.0)).collect(),
        baseline_mean: baseline,
        baseline_std: 0.12,
        cav_accuracy_mean: 0.9,
        t: if mean > baseline { 5.1 } else { -5.1 },
        p_value: p_adj / 12.0,
        p_adjusted: p_adj,
        verdict,
        ci95_low: Some(mean - 0.046),
        ci95_high: Some(mean + 0.046),
        cohens_d: Some((mean - baseline) / 0.092),
        magnitude_mean: Some(mean.powf(0.8)),
        magnitude_std: Some(0.06),
        rank_p_value: Some((p_adj * 3.0).min(1.0)),
        baseline_extreme_fraction: Some(if layer == "conv4" { 0.8 } else { 0.15 }),
        reliable: verdict != Unreliable,
        derivatives_file: Some(format!("derivatives/{class}/{layer}/{concept}.npy")),
    }
}

/// How the p-value of a row might settle as runs are added: large at 5
/// runs, reaching `final_p` at 20.
fn stability(class: &str, layer: &str, concept: &str, final_p: f64, final_verdict: Verdict) -> StabilityRow {
    let points = [(5, 0.2_f64), (10, 0.5), (20, 1.0)]
        .into_iter()
        .map(|(runs, share)| {
            let p_adjusted = final_p.powf(share).min(1.0);
            let verdict = match final_verdict {
                Unreliable => Unreliable,
                v if p_adjusted <= 0.05 => v,
                _ => NotSignificant,
            };
            StabilityPoint { runs, p_value: p_adjusted / 12.0, p_adjusted, verdict }
        })
        .collect();
    StabilityRow { class: class.into(), layer: layer.into(), concept: concept.into(), points }
}

use Verdict::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(std::env::args().nth(1).ok_or("usage: preview DIR")?);
    let mut results = Vec::new();
    for (layer, baseline, shift) in [("conv2", 0.48, -0.1), ("conv3", 0.51, 0.0), ("conv4", 0.5, 0.06)] {
        results.push(result("zebra", layer, "striped", 0.82 + shift, baseline, 1e-6, Above));
        let (m, p, v) = if layer == "conv4" { (0.18, 0.002, Below) } else { (0.44, 0.7, NotSignificant) };
        results.push(result("zebra", layer, "dotted", m, baseline, p, v));
        let (m, p, v) = if layer == "conv2" { (0.55, 1.0, NotSignificant) } else { (0.68 + shift, 0.01, Above) };
        results.push(result("zebra", layer, "zigzagged", m, baseline, p, v));
        let red = result("zebra", layer, "red", 0.5, baseline, 1.0, Unreliable);
        results.push(ConceptResult { cav_accuracy_mean: 0.53, ..red });
    }
    let stability_rows = results
        .iter()
        .filter(|r| r.layer != "conv3")
        .map(|r| stability(&r.class, &r.layer, &r.concept, r.p_adjusted, r.verdict))
        .collect();
    let report = ExperimentReport {
        experiment: "stripes-demo".into(),
        run_id: "preview".into(),
        seed: 42,
        alpha: 0.05,
        correction: "bonferroni".into(),
        test: "welch".into(),
        classifier: ClassifierSummary {
            architecture: "simple-cnn".into(),
            test_accuracy: 0.94,
            per_class_accuracy: vec![("zebra".into(), 0.96), ("horse".into(), 0.92)],
        },
        layers: vec!["conv2".into(), "conv3".into(), "conv4".into()],
        classes: vec!["zebra".into()],
        concepts: vec!["striped".into(), "dotted".into(), "zigzagged".into(), "red".into()],
        random_sets: (0..20).map(|i| format!("random500_{i}")).collect(),
        results,
        estimator: "logistic".into(),
        design: "all-pairs baseline".into(),
        accuracy_threshold: 0.6,
        rank_test: "mann-whitney".into(),
        stability: stability_rows,
    };
    print!("{}", tcav_report::render_table(&report));
    tcav_report::write_json(&report, &dir.join("report.json"))?;
    tcav_report::write_csv(&report, &dir.join("results.csv"))?;
    for path in tcav_report::write_charts(&report, &dir)? {
        println!("chart: {}", path.display());
    }
    for path in tcav_report::write_stability_chart(&report, &dir)? {
        println!("stability chart: {}", path.display());
    }
    tcav_report::write_runs_csv(&report, &dir.join("runs.csv"))?;
    tcav_report::write_runs_json(&report, &dir.join("runs.json"))?;
    let inputs = HtmlInputs {
        report: &report,
        training: Some(TrainingCurves {
            train_loss: vec![0.69, 0.55, 0.41, 0.33, 0.27, 0.24, 0.22, 0.21],
            validation_accuracy: vec![0.52, 0.68, 0.81, 0.88, 0.92, 0.94, 0.93, 0.935],
            best_epoch: 5,
            test_accuracy: 0.94,
            classes: vec!["zebra".into(), "horse".into()],
            confusion: vec![vec![48, 2], vec![4, 46]],
        }),
        sensitive_images: sensitive_images(&report, &dir.join("images"))?,
        notes: vec![("device".into(), "cpu (preview)".into())],
    };
    tcav_report::write_html(&inputs, &dir.join("report.html"))?;
    println!("html: {}", dir.join("report.html").display());
    Ok(())
}

/// Striped test pictures of varying stripe width, standing in for a class's
/// test images, with made-up derivatives.
fn sensitive_images(
    report: &ExperimentReport,
    dir: &std::path::Path,
) -> Result<Vec<SensitiveImages>, Box<dyn std::error::Error>> {
    std::fs::create_dir_all(dir)?;
    let mut paths = Vec::new();
    for i in 0..8u32 {
        let path = dir.join(format!("test_{i}.png"));
        let width = 3 + 2 * i;
        image::RgbImage::from_fn(128, 128, |x, y| {
            if (x + y) / width % 2 == 0 { image::Rgb([30, 30, 30]) } else { image::Rgb([235, 225, 200]) }
        })
        .save(&path)?;
        paths.push(path);
    }
    Ok(report
        .results
        .iter()
        .map(|r| SensitiveImages {
            layer: r.layer.clone(),
            class: r.class.clone(),
            concept: r.concept.clone(),
            most: paths[..4].iter().zip([3.1, 2.4, 1.9, 1.2]).map(|(p, v)| (p.clone(), v)).collect(),
            least: paths[4..].iter().zip([-2.2, -1.4, -0.6, -0.05]).map(|(p, v)| (p.clone(), v)).collect(),
        })
        .collect())
}
