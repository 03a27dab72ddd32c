//! Cross-crate tests of the pipeline.

#![allow(clippy::unwrap_used, missing_docs)]

use std::path::{Path, PathBuf};

use tch::{Device, Kind, Tensor};
use tcav_activations::{ActivationCache, ImageRef};
use tcav_cav::{CavConfig, CavLabel, directional_derivatives, fit_cav, tcav_score};
use tcav_core::store::{ArtifactStore, KeyBuilder};
use tcav_model::{BottleneckModel, ModelSpec};
use tcav_experiment::{ExperimentConfig, Paths, run_experiment};
use tcav_report::Verdict;
use tcav_tests::{temp_dir, write_images};

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

    for file in ["report.json", "report.csv", "report.txt", "cavs.json", "run.json", "config.toml"] {
        assert!(outcome.dir.join(file).is_file(), "{file} missing");
    }
    assert_eq!(outcome.charts.len(), 3);
    for chart in &outcome.charts {
        let image = image::open(chart).unwrap();
        assert!(image.width() > 300 && image.height() > 200);
    }
    let written = tcav_report::read_json(&outcome.dir.join("report.json")).unwrap();
    assert_eq!(&written, report);

    // Warm store: nothing is recomputed and every number is identical.
    let again = run_experiment(&config, &paths, Device::Cpu).unwrap();
    assert_eq!(again.report.results, report.results);
    let run: serde_json_value::Value = read_run_json(&again.dir);
    assert_eq!(run.backward_passes, 0, "a warm rerun must not recompute gradients");
}

mod serde_json_value {
    #[derive(serde::Deserialize)]
    pub struct Value {
        pub backward_passes: usize,
    }
}

fn read_run_json(dir: &Path) -> serde_json_value::Value {
    tcav_core::store::read_json(&dir.join("run.json")).unwrap()
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
    let cache = ActivationCache::new(&model, KeyBuilder::new("linear").finish(), ArtifactStore::new(dir.path().join("store")), 5);

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
        let derivatives = directional_derivatives(&cache.logit_gradients("pixels", class, &class_images).unwrap(), &cav).unwrap();
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
    let text = std::fs::read_to_string(&config).unwrap().replace("min_side = 8", "min_side = 8\non_bad_image = \"fail\"");
    std::fs::write(&config, text).unwrap();
    std::fs::write(dir.path().join("classes/a/broken.png"), b"\x89PNG\r\n\x1a\n this is not a picture").unwrap();
    let err = run_error(&config);
    assert!(err.contains("broken.png"), "{err}");

    // A malformed config names the file and the field.
    let dir = temp_dir();
    let config = folders_experiment(dir.path(), "[tcav]\nlayerz = [\"conv3\"]\n");
    let err = run_error(&config);
    assert!(err.contains("experiment.toml") && err.contains("layerz"), "{err}");
}
