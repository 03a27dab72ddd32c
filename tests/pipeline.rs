//! Cross-crate tests of the pipeline.

#![allow(clippy::unwrap_used, missing_docs)]

#[path = "../crates/tcav-report/tests/support/browser_check.rs"]
mod browser_check;
mod orchestration;
mod pokemon;

use std::path::{Path, PathBuf};

use tcav_activations::{ActivationCache, ImageRef};
use tcav_cav::{CavConfig, CavLabel, directional_derivatives, fit_cav, tcav_score};
use tcav_core::store::{ArtifactStore, KeyBuilder};
use tcav_experiment::{ExperimentConfig, Paths, run_experiment};
use tcav_model::{BottleneckModel, ModelSpec};
use tcav_report::Verdict;
use tcav_tests::{temp_dir, write_images};
use tch::{Device, Kind, Tensor};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The shipped default experiment, run end to end on the CPU, recovers the
/// answer its data were built around, and a rerun from the warm store gives
/// bit-identical results.
#[test]
fn default_experiment_recovers_the_known_answer() {
    let config = ExperimentConfig::load(&repo_root().join("datasets/builtin/experiment.toml")).unwrap();
    let work = temp_dir();
    let paths = Paths { store: work.path().join("store"), runs: work.path().join("runs") };
    let outcome = run_experiment(&config, &paths, Device::Cpu).unwrap();
    let report = &outcome.report;

    assert!(report.classifier.test_accuracy >= 0.9, "held-out accuracy {}", report.classifier.test_accuracy);
    assert_eq!(outcome.known_answer.len(), 3);
    for (family, colour) in &outcome.known_answer {
        for layer in &report.layers {
            let row = report
                .results
                .iter()
                .find(|r| &r.class == family && &r.layer == layer && &r.concept == colour)
                .unwrap();
            assert_eq!(row.verdict, Verdict::Above, "{family}/{colour} at {layer}: {row:?}");
            assert!(row.mean >= 0.75, "{family}/{colour} at {layer}: mean {}", row.mean);
        }
    }
    // White and black are colours no family carries (eyes are a few pixels):
    // they must never come out above the baseline.
    for row in report.results.iter().filter(|r| r.concept == "white" || r.concept == "black") {
        assert_ne!(row.verdict, Verdict::Above, "{row:?}");
    }

    for file in [
        "report.json",
        "report.csv",
        "report.txt",
        "runs.csv",
        "runs.json",
        "cavs.json",
        "manifest.json",
        "config.toml",
    ] {
        assert!(outcome.dir.join(file).is_file(), "{file} missing");
    }
    // The self-contained report renders in a real browser: a chart per
    // (class, layer), every result row, thumbnails decoded, no console error.
    let rendered = browser_check::Page::open(&outcome.dir.join(tcav_experiment::REPORT_HTML)).assert_renders();
    assert_eq!(rendered.charts.len(), report.classes.len() * report.layers.len());
    assert_eq!(rendered.result_rows, report.results.len());
    assert_eq!(rendered.confusion_rows, report.classes.len());
    assert!(rendered.images.len() >= report.results.len() * 2, "{} thumbnails", rendered.images.len());
    assert_eq!(outcome.charts.len(), 3);
    for chart in &outcome.charts {
        let image = image::open(chart).unwrap();
        assert!(image.width() > 300 && image.height() > 200);
    }
    let written = tcav_report::read_json(&outcome.dir.join("report.json")).unwrap();
    assert_eq!(&written, report);

    // The model measurably relies on colour (the ground truth of the claim).
    let colour = outcome.reliance.iter().find(|r| r.cue == "colour").unwrap();
    assert!(colour.drop > 0.3, "{colour:?}");

    // Warm store: nothing is recomputed and every number is identical.
    let again = run_experiment(&config, &paths, Device::Cpu).unwrap();
    assert_eq!(again.report.results, report.results);
    assert_eq!(again.manifest.backward_passes, 0, "a warm rerun must not recompute gradients");
    assert!(again.manifest.work.values().all(|w| w.built == 0), "{:?}", again.manifest.work);
}

/// A model whose head is linear on the bottleneck: h = W a. Then
/// ∇ₐ h_k = W_k for every image, every directional derivative is W_k · v,
/// and the TCAV score is exactly [W_k · v > 0].
struct LinearHead {
    spec: ModelSpec,
    weights: Tensor,
}

impl BottleneckModel for LinearHead {
    fn spec(&self) -> &ModelSpec {
        &self.spec
    }
    fn device(&self) -> Device {
        Device::Cpu
    }
    fn bottleneck(&self, input: &Tensor, layer: &str) -> tcav_model::Result<Tensor> {
        self.layer_index(layer)?;
        Ok(input.flatten(1, -1))
    }
    fn logits_from_bottleneck(&self, activations: &Tensor, layer: &str) -> tcav_model::Result<Tensor> {
        self.layer_index(layer)?;
        Ok(activations.matmul(&self.weights.tr()))
    }
    fn logits(&self, input: &Tensor) -> tcav_model::Result<Tensor> {
        self.logits_from_bottleneck(&self.bottleneck(input, "pixels")?, "pixels")
    }
}

#[test]
fn linear_head_scores_are_known_exactly() {
    const SIZE: u32 = 4;
    let d = (SIZE * SIZE * 3) as i64;
    // Activations are channel-first pixels: the first 16 values are red.
    // Class `warm` rewards red and penalises blue; class `cold` the opposite.
    let mut w_warm = vec![0f32; d as usize];
    for i in 0..16 {
        w_warm[i] = 1.0;
        w_warm[32 + i] = -0.5;
    }
    let w_cold: Vec<f32> = w_warm.iter().map(|w| -w).collect();
    let weights = Tensor::from_slice(&[w_warm.clone(), w_cold.clone()].concat()).view([2, d]).to_kind(Kind::Float);
    let model = LinearHead {
        spec: ModelSpec {
            architecture: "linear-head".into(),
            classes: vec!["warm".into(), "cold".into()],
            image_size: SIZE,
            bottlenecks: vec!["pixels".into()],
        },
        weights,
    };

    let dir = temp_dir();
    let red = ImageRef::hash_all(&write_images(&dir.path().join("red"), 12, SIZE, [200, 20, 20])).unwrap();
    let random = ImageRef::hash_all(&write_images(&dir.path().join("blue"), 12, SIZE, [20, 20, 200])).unwrap();
    let class_images = ImageRef::hash_all(&write_images(&dir.path().join("class"), 7, SIZE, [90, 90, 90])).unwrap();
    let cache = ActivationCache::new(
        &model,
        KeyBuilder::new("linear").finish(),
        ArtifactStore::new(dir.path().join("store")),
        5,
    );

    let label = CavLabel { layer: "pixels", concept: "red", negative: "blue" };
    let cav = fit_cav(
        label,
        &cache.activations("pixels", &red, "red").unwrap(),
        &cache.activations("pixels", &random, "blue").unwrap(),
        &CavConfig::default(),
        11,
    )
    .unwrap();
    for (class, w) in [("warm", &w_warm), ("cold", &w_cold)] {
        let expected: f64 = w.iter().zip(&cav.direction).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum();
        let derivatives =
            directional_derivatives(&cache.logit_gradients("pixels", class, &class_images).unwrap(), &cav).unwrap();
        assert_eq!(derivatives.len(), 7);
        for s in &derivatives {
            assert!((s - expected).abs() <= 1e-6 * expected.abs().max(1.0), "{class}: {s} vs {expected}");
        }
        assert_eq!(tcav_score(&derivatives), if expected > 0.0 { 1.0 } else { 0.0 });
    }
    // And the direction is the one the design implies.
    let warm: f64 = w_warm.iter().zip(&cav.direction).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum();
    assert!(warm > 0.0, "moving toward red must raise the warm logit");
}

/// Writes a small "folders" experiment and returns its config path. The
/// `tweak` closure edits the folders before the run.
fn folders_experiment(root: &Path, extra: &str) -> PathBuf {
    for (name, colour) in [("a", [200, 30, 30]), ("b", [30, 30, 200])] {
        write_images(&root.join("classes").join(name), 6, 24, colour);
    }
    write_images(&root.join("concepts/red"), 4, 24, [220, 10, 10]);
    for i in 0..3 {
        write_images(&root.join(format!("random/r{i}")), 4, 24, [40 * i as u8, 120, 60]);
    }
    let config = format!(
        r#"name = "bad-input"
seed = 1
[data]
source = "folders"
classes = {{ a = "classes/a", b = "classes/b" }}
concepts = {{ red = "concepts/red" }}
random_sets = {{ r0 = "random/r0", r1 = "random/r1", r2 = "random/r2" }}
[preprocess]
size = 16
min_side = 8
[train]
epochs = 1
{extra}
"#
    );
    let path = root.join("experiment.toml");
    std::fs::write(&path, config).unwrap();
    path
}

fn run_error(config_path: &Path) -> String {
    let config = match ExperimentConfig::load(config_path) {
        Ok(config) => config,
        Err(e) => return e.to_string(),
    };
    let work = config_path.parent().unwrap();
    let paths = Paths { store: work.join("store"), runs: work.join("runs") };
    match run_experiment(&config, &paths, Device::Cpu) {
        Ok(outcome) => panic!("expected an error, got a run in {}", outcome.dir.display()),
        Err(e) => format!("{e}"),
    }
}

#[test]
fn bad_input_gets_a_clear_error_not_a_panic() {
    // A missing concept folder.
    let dir = temp_dir();
    let config = folders_experiment(dir.path(), "");
    std::fs::remove_dir_all(dir.path().join("concepts/red")).unwrap();
    let err = run_error(&config);
    assert!(err.contains("concepts/red") && err.contains("does not exist") && err.contains("concept `red`"), "{err}");

    // An empty concept folder.
    let dir = temp_dir();
    let config = folders_experiment(dir.path(), "");
    for entry in std::fs::read_dir(dir.path().join("concepts/red")).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    let err = run_error(&config);
    assert!(err.contains("concepts/red") && err.contains("holds no images"), "{err}");

    // A layer the model lacks: refused before any work is done.
    let dir = temp_dir();
    let config = folders_experiment(dir.path(), "[tcav]\nlayers = [\"mixed4c\"]\n");
    let err = run_error(&config);
    assert!(err.contains("mixed4c") && err.contains("conv1, conv2, conv3, dense"), "{err}");
    assert!(!dir.path().join("store/train").exists(), "no model may be trained for a config that cannot run");

    // An image that does not decode, with on_bad_image = "fail".
    let dir = temp_dir();
    let config = folders_experiment(dir.path(), "");
    let text =
        std::fs::read_to_string(&config).unwrap().replace("min_side = 8", "min_side = 8\non_bad_image = \"fail\"");
    std::fs::write(&config, text).unwrap();
    std::fs::write(dir.path().join("classes/a/broken.png"), b"\x89PNG\r\n\x1a\n this is not a picture").unwrap();
    let err = run_error(&config);
    assert!(err.contains("broken.png"), "{err}");

    // A malformed config names the file and the field.
    let dir = temp_dir();
    let config = folders_experiment(dir.path(), "[tcav]\nlayerz = [\"conv3\"]\n");
    let err = run_error(&config);
    // `layerz` is on line 14 of the written file.
    assert!(err.contains("experiment.toml") && err.contains("layerz") && err.contains("line 14"), "{err}");
}

/// A standard normal draw (Box–Muller), for the null simulations.
fn normal(rng: &mut rand_chacha::ChaCha8Rng) -> f64 {
    use rand::Rng;
    let (u, v): (f64, f64) = (rng.random_range(1e-12..1.0), rng.random());
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

/// A random set's activations for the null simulations: `images` rows of
/// `width` normal values around the set's own small offset, as real image
/// sets have.
fn null_set(rng: &mut rand_chacha::ChaCha8Rng, width: usize, images: usize) -> tcav_core::Matrix {
    let offset: Vec<f64> = (0..width).map(|_| 0.3 * normal(rng)).collect();
    let data = (0..images * width).map(|k| (offset[k % width] + normal(rng)) as f32).collect();
    tcav_core::Matrix::new(images, width, data).unwrap()
}

/// Null calibration, activations only: every "concept" is just one more
/// random set, drawn exactly like the random sets, and the class gradients
/// share a consistent direction (as a trained classifier's do). Over 300
/// simulated experiments (3 concepts × 10 random sets each, Bonferroni over
/// the 3), the concept-as-unit test must reject no more often than α allows,
/// while the run-level two-sample test, which counts correlated runs as
/// independent, rejects far more often.
#[test]
fn null_calibration_concepts_that_are_random_sets() {
    use rand::SeedableRng;
    use rayon::prelude::*;

    const EXPERIMENTS: usize = 300;
    const RANDOM_SETS: usize = 10;
    const CONCEPTS: usize = 3;
    const ALPHA: f64 = 0.05;
    let (width, images, class_images) = (32, 20, 30);

    let set = |rng: &mut rand_chacha::ChaCha8Rng| null_set(rng, width, images);

    let outcomes: Vec<(bool, bool, usize)> = (0..EXPERIMENTS)
        .into_par_iter()
        .map(|experiment| {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(experiment as u64);
            let direction: Vec<f64> = (0..width).map(|_| normal(&mut rng)).collect();
            let data = (0..class_images * width).map(|k| (direction[k % width] + normal(&mut rng)) as f32).collect();
            let gradients = tcav_core::Matrix::new(class_images, width, data).unwrap();
            let random: Vec<_> = (0..RANDOM_SETS).map(|_| set(&mut rng)).collect();
            let concepts: Vec<_> = (0..CONCEPTS).map(|_| set(&mut rng)).collect();
            let label = CavLabel { layer: "l", concept: "c", negative: "r" };
            let derivatives = |a: &tcav_core::Matrix, b: &tcav_core::Matrix, seed: u64| {
                directional_derivatives(&gradients, &fit_cav(label, a, b, &CavConfig::default(), seed).unwrap())
                    .unwrap()
            };
            let mean = |d: &[f64]| d.iter().sum::<f64>() / d.len() as f64;

            // All pairs, each fitted once; the reverse run is the negation.
            let mut unit_means = vec![0.0; RANDOM_SETS];
            let mut baseline_scores = Vec::new();
            for i in 0..RANDOM_SETS {
                for j in i + 1..RANDOM_SETS {
                    let d = derivatives(&random[i], &random[j], (i * 100 + j) as u64);
                    unit_means[i] += mean(&d) / (RANDOM_SETS - 1) as f64;
                    unit_means[j] -= mean(&d) / (RANDOM_SETS - 1) as f64;
                    let s = tcav_score(&d);
                    baseline_scores.extend([s, 1.0 - s]);
                }
            }
            let (mut unit_p, mut run_p) = (Vec::new(), Vec::new());
            for (c, concept) in concepts.iter().enumerate() {
                let runs: Vec<Vec<f64>> =
                    random.iter().enumerate().map(|(j, r)| derivatives(concept, r, (1000 * c + j) as u64)).collect();
                let concept_mean = runs.iter().map(|d| mean(d)).sum::<f64>() / runs.len() as f64;
                unit_p.push(tcav_stats::unit_ttest(concept_mean, &unit_means).unwrap().p_value);
                let scores: Vec<f64> = runs.iter().map(|d| tcav_score(d)).collect();
                run_p.push(
                    tcav_stats::two_sample_ttest(&scores, &baseline_scores, tcav_stats::TTestKind::Welch)
                        .unwrap()
                        .p_value,
                );
            }
            let any = |p: &[f64]| tcav_stats::adjust(p, tcav_stats::Correction::Bonferroni).iter().any(|&q| q <= ALPHA);
            (any(&unit_p), any(&run_p), unit_p.iter().filter(|&&p| p <= ALPHA).count())
        })
        .collect();

    let rate = |hits: usize, n: usize| hits as f64 / n as f64;
    let unit_fwer = rate(outcomes.iter().filter(|o| o.0).count(), EXPERIMENTS);
    let run_fwer = rate(outcomes.iter().filter(|o| o.1).count(), EXPERIMENTS);
    let unit_raw = rate(outcomes.iter().map(|o| o.2).sum(), EXPERIMENTS * CONCEPTS);
    // Tolerance: α plus 3 binomial standard errors (Bonferroni may be
    // conservative, so only the upper side is bounded for the FWER).
    let tolerance = |n: usize| 3.0 * (ALPHA * (1.0 - ALPHA) / n as f64).sqrt();
    assert!(unit_fwer <= ALPHA + tolerance(EXPERIMENTS), "concept-as-unit FWER {unit_fwer}");
    // Per-test rate before correction: within 4 standard errors of α on both
    // sides (tests in one experiment share random sets, hence 4, not 3).
    assert!((unit_raw - ALPHA).abs() <= 4.0 / 3.0 * tolerance(EXPERIMENTS * CONCEPTS), "raw rate {unit_raw}");
    assert!(run_fwer > 0.2, "the run-level test was expected to be anti-conservative here, FWER {run_fwer}");
    eprintln!(
        "null calibration: concept-as-unit FWER {unit_fwer:.3} (raw {unit_raw:.3}), run-level Welch FWER {run_fwer:.3}"
    );
}

/// Null calibration of relative TCAV, activations only: concepts A, B and
/// C are random sets drawn like the 10 random sets. `A vs B` (10 runs of
/// seeded subsamples) and `A vs others` (the union of B and C) are tested
/// against the all-pairs random baseline with k = 10 units, as the
/// orchestrator does; neither may reject more often than α allows.
#[test]
fn null_calibration_of_relative_tcav() {
    use rand::SeedableRng;
    use rayon::prelude::*;

    const EXPERIMENTS: usize = 300;
    const RANDOM_SETS: usize = 10;
    const ALPHA: f64 = 0.05;
    let (width, images, class_images) = (32, 20, 30);
    let set = |rng: &mut rand_chacha::ChaCha8Rng| null_set(rng, width, images);
    let rejections: Vec<(bool, bool)> = (0..EXPERIMENTS)
        .into_par_iter()
        .map(|experiment| {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(10_000 + experiment as u64);
            let direction: Vec<f64> = (0..width).map(|_| normal(&mut rng)).collect();
            let data = (0..class_images * width).map(|k| (direction[k % width] + normal(&mut rng)) as f32).collect();
            let gradients = tcav_core::Matrix::new(class_images, width, data).unwrap();
            let random: Vec<_> = (0..RANDOM_SETS).map(|_| set(&mut rng)).collect();
            let (a, b, c) = (set(&mut rng), set(&mut rng), set(&mut rng));
            let label = CavLabel { layer: "l", concept: "a", negative: "b" };
            let mean_derivative = |p: &tcav_core::Matrix, n: &tcav_core::Matrix, seed: u64| {
                let d =
                    directional_derivatives(&gradients, &fit_cav(label, p, n, &CavConfig::default(), seed).unwrap())
                        .unwrap();
                d.iter().sum::<f64>() / d.len() as f64
            };
            let mut pairs = Vec::new();
            for i in 0..RANDOM_SETS {
                for j in i + 1..RANDOM_SETS {
                    let m = mean_derivative(&random[i], &random[j], (i * 100 + j) as u64);
                    pairs.extend([m, -m]);
                }
            }
            let union = tcav_cav::stack_rows(&[&b, &c]).unwrap();
            let p = |negative: &tcav_core::Matrix, salt: u64| {
                let runs: Vec<f64> = (0..RANDOM_SETS).map(|j| mean_derivative(&a, negative, salt + j as u64)).collect();
                let value = runs.iter().sum::<f64>() / runs.len() as f64;
                tcav_stats::unit_ttest_dependent(value, &pairs, RANDOM_SETS).unwrap().p_value
            };
            (p(&b, 5000) <= ALPHA, p(&union, 6000) <= ALPHA)
        })
        .collect();
    let rate = |hits: usize| hits as f64 / EXPERIMENTS as f64;
    let pair_rate = rate(rejections.iter().filter(|r| r.0).count());
    let union_rate = rate(rejections.iter().filter(|r| r.1).count());
    let tolerance = 3.0 * (ALPHA * (1.0 - ALPHA) / EXPERIMENTS as f64).sqrt();
    assert!(pair_rate <= ALPHA + tolerance, "A vs B rejects {pair_rate}");
    assert!(union_rate <= ALPHA + tolerance, "A vs others rejects {union_rate}");
    eprintln!("relative null calibration: A vs B {pair_rate:.3}, A vs others {union_rate:.3} (alpha {ALPHA})");
}

/// Ground truth (issue 4): a shipped ground-truth config, shrunk for CI
/// (fewer and smaller images, fewer random sets), run in its own store.
fn ground_truth(name: &str, work: &Path) -> tcav_experiment::RunOutcome {
    ground_truth_with(name, work, |_| {})
}

fn ground_truth_with(
    name: &str,
    work: &Path,
    tweak: impl FnOnce(&mut ExperimentConfig),
) -> tcav_experiment::RunOutcome {
    let mut config = ExperimentConfig::load(&repo_root().join(format!("datasets/ground-truth/{name}.toml"))).unwrap();
    let tcav_experiment::DataConfig::Builtin { generator } = &mut config.data else {
        panic!("{name}: built-in data expected")
    };
    generator.image_size = 64;
    generator.images_per_class = 120;
    generator.concept_images = 24;
    generator.random_sets = 12 + config.tcav.random_sets_as_concepts;
    generator.random_set_images = 24;
    config.preprocess.size = 48;
    tweak(&mut config);
    let paths = Paths { store: work.join("store"), runs: work.join("runs") };
    run_experiment(&config, &paths, Device::Cpu).unwrap()
}

fn own(
    outcome: &tcav_experiment::RunOutcome,
    concept_of: impl Fn(&tcav_datagen::Family) -> String,
) -> Vec<&tcav_report::ConceptResult> {
    let families = tcav_datagen::families();
    outcome
        .report
        .results
        .iter()
        .filter(|r| families.iter().any(|f| f.name == r.class && concept_of(f) == r.concept))
        .collect()
}

fn drop_of(outcome: &tcav_experiment::RunOutcome, cue: &str) -> f64 {
    outcome.reliance.iter().find(|r| r.cue == cue).unwrap().drop
}

#[test]
fn ground_truth_colour_is_not_claimed_when_it_carries_no_class_information() {
    let work = temp_dir();
    let outcome = ground_truth("shape-only", work.path());
    assert!(drop_of(&outcome, "colour").abs() < 0.05, "{:?}", outcome.reliance);
    for row in own(&outcome, |f| f.colour_concept.to_string()) {
        assert_ne!(row.verdict, Verdict::Above, "{row:?}");
    }
}

#[test]
fn ground_truth_caption_scores_follow_the_measured_reliance() {
    // As the caption agrees with the class more often, the model relies on
    // it more (measured: accuracy drop when it is blanked), and the own-
    // caption concepts must rise with it. Required: Spearman's rank
    // correlation ≥ 0.8 over the four variants (at most one adjacent swap).
    let work = temp_dir();
    let mut drops = Vec::new();
    let mut strengths = Vec::new();
    for name in ["caption-p033", "caption-p060", "caption-p080", "caption-p100"] {
        let outcome = ground_truth(name, work.path());
        drops.push(drop_of(&outcome, "caption"));
        strengths.push(tcav_experiment::validation::own_caption_t(&outcome).unwrap());
    }
    let rho = tcav_experiment::validation::spearman(&drops, &strengths);
    // 0.8 is one adjacent swap; allow for rounding in the rank arithmetic.
    assert!(rho >= 0.8 - 1e-9, "Spearman {rho}: drops {drops:?}, own-caption t {strengths:?}");
    assert!(drops[3] > drops[0] + 0.2, "the model must rely on a caption that always agrees: {drops:?}");
}

/// Relative TCAV on the colour ground truth: for the red family, moving
/// from blue toward red raises its logit (`red vs blue` above the random
/// pairs) and the swapped test says the opposite, at every layer.
#[test]
fn relative_tcav_red_vs_blue_is_above_for_the_red_family_and_blue_vs_red_below() {
    use tcav_experiment::config::RelativeTest;
    let work = temp_dir();
    let outcome = ground_truth_with("colour", work.path(), |config| {
        config.measure_reliance.clear();
        config.tcav.relative = [("red", "blue"), ("blue", "red"), ("red", "others")]
            .map(|(concept, against)| RelativeTest { concept: concept.into(), against: against.into() })
            .to_vec();
    });
    let red_family = tcav_datagen::families().iter().find(|f| f.colour_concept == "red").unwrap();
    let report = &outcome.report;
    assert!(report.concepts.iter().any(|c| c == "red vs others"), "{:?}", report.concepts);
    for layer in &report.layers {
        let row = |concept: &str| {
            report
                .results
                .iter()
                .find(|r| r.class == red_family.name && &r.layer == layer && r.concept == concept)
                .unwrap()
        };
        let (red_blue, blue_red) = (row("red vs blue"), row("blue vs red"));
        assert_eq!(red_blue.verdict, Verdict::Above, "{layer}: {red_blue:?}");
        assert_eq!(blue_red.verdict, Verdict::Below, "{layer}: {blue_red:?}");
        assert_eq!(red_blue.scores.len(), report.random_sets.len(), "one run per random set");
        // Swapping the sides complements the score (up to fitting noise:
        // each run fits its own subsample).
        assert!((red_blue.mean + blue_red.mean - 1.0).abs() < 0.1, "{} + {}", red_blue.mean, blue_red.mean);
        assert!(row("red vs others").mean > 0.5, "{:?}", row("red vs others"));
    }
}

#[test]
fn ground_truth_negative_controls() {
    // A model with random weights: nothing is significant, or the CAVs are
    // flagged unreliable.
    let work = temp_dir();
    let outcome = ground_truth("random-weights", work.path());
    for row in &outcome.report.results {
        assert!(!row.verdict.is_significant(), "random weights: {row:?}");
    }
    // Random sets tested as concepts: with Bonferroni over every test, no
    // more significant results than α allows (expected 0; at most one).
    let outcome = ground_truth("random-concepts", work.path());
    let control: Vec<_> = outcome.report.results.iter().filter(|r| r.concept.starts_with("random_")).collect();
    assert!(!control.is_empty());
    let significant = control.iter().filter(|r| r.verdict.is_significant()).count();
    assert!(significant <= 1, "{significant} of {} random-set concepts significant", control.len());
}

/// A folders experiment whose first stage is a crawl: here the crawl imports
/// local folders (no network), into `raw/<set>/` beside the definition, and
/// the experiment then runs on what the crawl stored.
#[test]
fn a_crawl_definition_runs_as_the_first_stage_of_an_experiment() {
    let dir = temp_dir();
    let root = dir.path();
    folders_experiment(&root.join("collected"), "");
    let mut definition = String::from("dataset = \"mine\"\nuser_agent = \"tcav-rs-tests/0.1 (tests@example.org)\"\n");
    let sets = [
        ("a", "classes/a"),
        ("b", "classes/b"),
        ("red", "concepts/red"),
        ("r0", "random/r0"),
        ("r1", "random/r1"),
        ("r2", "random/r2"),
    ];
    for (name, folder) in sets {
        definition.push_str(&format!(
            "\n[[sets]]\nname = \"{name}\"\nquery = \"{name}\"\nmax_num = 10\nsources = [{{ kind = \"local_folder\", path = \"{}\" }}]\n",
            root.join("collected").join(folder).display()
        ));
    }
    std::fs::write(root.join("crawl.toml"), definition).unwrap();
    let config = r#"name = "crawled"
seed = 1
[data]
source = "folders"
crawl = "crawl.toml"
classes = { a = "raw/a", b = "raw/b" }
concepts = { red = "raw/red" }
random_sets = { r0 = "raw/r0", r1 = "raw/r1", r2 = "raw/r2" }
[preprocess]
size = 16
min_side = 8
[train]
epochs = 1
"#;
    std::fs::write(root.join("experiment.toml"), config).unwrap();
    let config = ExperimentConfig::load(&root.join("experiment.toml")).unwrap();
    let paths = Paths { store: root.join("store"), runs: root.join("runs") };
    let outcome = run_experiment(&config, &paths, Device::Cpu).unwrap();
    assert_eq!(outcome.report.classes, ["a", "b"]);
    // The crawl stored every image under raw/<set>/ with its manifest.
    assert_eq!(
        std::fs::read_dir(root.join("raw/a"))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "png"))
            .count(),
        6
    );
    assert!(root.join("raw/a/manifest.jsonl").is_file());
}

/// Results do not depend on the order concepts, classes and random sets are
/// listed in: every CAV's seed comes from its sets' names, pairs are fitted
/// in name order, and corrections see the same family of tests.
#[test]
fn results_do_not_depend_on_the_order_of_concepts_classes_or_sets() {
    let dir = temp_dir();
    let base = folders_experiment(dir.path(), "[tcav]\nconcepts = [\"red\", \"r_extra\"]\nclasses = [\"a\", \"b\"]\n");
    write_images(&dir.path().join("concepts/r_extra"), 4, 24, [90, 200, 40]);
    let text = std::fs::read_to_string(&base).unwrap().replace(
        "concepts = { red = \"concepts/red\" }",
        "concepts = { red = \"concepts/red\", r_extra = \"concepts/r_extra\" }",
    );
    std::fs::write(&base, &text).unwrap();
    let reordered = dir.path().join("reordered.toml");
    std::fs::write(
        &reordered,
        text.replace("concepts = [\"red\", \"r_extra\"]", "concepts = [\"r_extra\", \"red\"]")
            .replace("classes = [\"a\", \"b\"]", "classes = [\"b\", \"a\"]")
            .replace(
                "random_sets = { r0 = \"random/r0\", r1 = \"random/r1\", r2 = \"random/r2\" }",
                "random_sets = { r2 = \"random/r2\", r0 = \"random/r0\", r1 = \"random/r1\" }",
            ),
    )
    .unwrap();
    // Separate stores: the second run recomputes everything, including the
    // model, rather than reusing the first run's CAVs.
    let run = |file: &Path, store: &str| {
        let paths = Paths { store: dir.path().join(store), runs: dir.path().join("runs") };
        run_experiment(&ExperimentConfig::load(file).unwrap(), &paths, Device::Cpu).unwrap().report
    };
    let (first, second) = (run(&base, "store-1"), run(&reordered, "store-2"));
    assert_eq!(first.results.len(), second.results.len());
    for row in &first.results {
        let other = second
            .results
            .iter()
            .find(|r| r.class == row.class && r.layer == row.layer && r.concept == row.concept)
            .unwrap();
        assert_eq!(row, other);
    }
}
