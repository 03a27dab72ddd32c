//! The classifier-training stage.
//!
//! Takes: the training layout (`<root>/<split>/<class>/*.png`, written by
//! preprocessing), a [`TrainConfig`] and a seed. Produces: a folder holding
//! the model's spec (`model.json`), its weights (`weights.safetensors`,
//! readable from Python) and a [`TrainReport`] (`metrics.json`) with the
//! held-out test accuracy per class.
//!
//! The weights kept are those of the epoch with the best validation
//! accuracy; the test split is read only once, after training, so the
//! reported accuracy is an honest held-out figure.
//!
//! Invariant: training is a pure function of (images, config, seed): batch
//! order and augmentation come from a seeded generator, and libtorch's
//! generator (initial weights, dropout) is seeded from the same seed.

#![deny(missing_docs)]

use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tcav_core::{SetName, Split, TrainLayout, seed};
use tcav_model::{BottleneckModel, ModelError, ModelSpec, SimpleCnn};
use tch::nn::OptimizerConfig;
use tch::{Device, Kind, Tensor, nn};
use tracing_indicatif::span_ext::IndicatifSpanExt;

/// The version of what [`train`] produces. Artifact keys include it: bump it
/// whenever a change to training changes the weights for the same inputs.
pub const OUTPUT_VERSION: u32 = 1;

/// File names inside a trained-model folder.
pub const WEIGHTS_FILE: &str = "weights.safetensors";
/// The model spec's file name.
pub const SPEC_FILE: &str = "model.json";
/// The training report's file name.
pub const METRICS_FILE: &str = "metrics.json";

/// How to train.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Passes over the training split. 0 keeps the seeded random initial
    /// weights: the negative control of a ground-truth study, a model that
    /// has learnt nothing.
    pub epochs: usize,
    /// Images per optimiser step.
    pub batch_size: usize,
    /// Adam's learning rate.
    pub learning_rate: f64,
    /// Flip half of each batch left-right (creatures face either way).
    pub augment_flip: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig { epochs: 12, batch_size: 32, learning_rate: 1e-3, augment_flip: true }
    }
}

/// What training did and how well the kept model classifies held-out data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainReport {
    /// The seed everything random was drawn from.
    pub seed: u64,
    /// The config used.
    pub config: TrainConfig,
    /// Images per split (train, validation, test).
    pub images: [usize; 3],
    /// Mean training loss per epoch.
    pub train_loss: Vec<f64>,
    /// Validation accuracy per epoch.
    pub validation_accuracy: Vec<f64>,
    /// The epoch (0-based) whose weights were kept.
    pub best_epoch: usize,
    /// Accuracy on the test split.
    pub test_accuracy: f64,
    /// Test accuracy of each class, in class order.
    pub per_class_test_accuracy: Vec<(String, f64)>,
    /// Confusion matrix on the test split: `[true class][predicted class]`.
    pub confusion: Vec<Vec<usize>>,
}

/// What can go wrong while training.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A bad config value.
    #[error("invalid train config: {0}")]
    Config(String),
    /// A missing or empty image folder, or a file error.
    #[error(transparent)]
    Core(#[from] tcav_core::CoreError),
    /// A model error (bad image, libtorch failure).
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// Result alias for this crate.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;

/// A trained model as written to disk.
#[derive(Clone, Debug)]
pub struct TrainedModel {
    /// The folder holding spec, weights and metrics.
    pub dir: PathBuf,
    /// The model's spec.
    pub spec: ModelSpec,
    /// The training report.
    pub report: TrainReport,
}

impl TrainedModel {
    /// Reads a trained-model folder written by [`train`].
    pub fn open(dir: &Path) -> Result<Self> {
        Ok(TrainedModel {
            dir: dir.to_path_buf(),
            spec: tcav_core::store::read_json(&dir.join(SPEC_FILE))?,
            report: tcav_core::store::read_json(&dir.join(METRICS_FILE))?,
        })
    }

    /// Loads the network onto `device`.
    pub fn load(&self, device: Device) -> Result<SimpleCnn> {
        Ok(SimpleCnn::load(self.spec.clone(), &self.dir.join(WEIGHTS_FILE), device)?)
    }
}

struct SplitData {
    inputs: Tensor,
    labels: Tensor,
}

fn load_split(layout: &TrainLayout, split: Split, classes: &[SetName], size: u32, device: Device) -> Result<SplitData> {
    let mut paths = Vec::new();
    let mut labels = Vec::new();
    for (label, class) in classes.iter().enumerate() {
        let images = layout.images(split, class)?;
        labels.extend(std::iter::repeat_n(label as i64, images.len()));
        paths.extend(images);
    }
    Ok(SplitData {
        inputs: tcav_model::load_images(&paths, size, Device::Cpu)?.to_device(device),
        labels: Tensor::from_slice(&labels).to_device(device),
    })
}

/// Trains a [`SimpleCnn`] on `layout` and writes it to `out`.
pub fn train(
    layout: &TrainLayout,
    classes: &[SetName],
    image_size: u32,
    config: &TrainConfig,
    master_seed: u64,
    device: Device,
    out: &Path,
) -> Result<TrainedModel> {
    if config.batch_size == 0 || config.learning_rate.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
        return Err(TrainError::Config(format!(
            "batch_size ({}) and learning_rate ({}) must both be positive",
            config.batch_size, config.learning_rate
        )));
    }
    let train_data = load_split(layout, Split::Train, classes, image_size, device)?;
    let validation = load_split(layout, Split::Validation, classes, image_size, device)?;
    let test = load_split(layout, Split::Test, classes, image_size, device)?;
    let n_train = train_data.labels.size()[0] as usize;

    // libtorch's generator (initial weights, dropout) is process-global:
    // two trainings interleaving in one process would draw from each
    // other's sequence. Training holds this lock so a seed fixes the result.
    static TORCH_GENERATOR: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _generator = TORCH_GENERATOR.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    tch::manual_seed(seed::derive(master_seed, "train/torch") as i64);
    let spec = SimpleCnn::spec_for(classes.iter().map(|c| c.to_string()).collect(), image_size);
    let model = SimpleCnn::new(spec.clone(), device)?;
    let mut optimiser = nn::Adam::default()
        .build(model.var_store(), config.learning_rate)
        .map_err(ModelError::torch("creating the optimiser"))?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed::derive(master_seed, "train/batches"));

    let best_path = out.join(WEIGHTS_FILE);
    let mut report = TrainReport {
        seed: master_seed,
        config: config.clone(),
        images: [n_train, validation.labels.size()[0] as usize, test.labels.size()[0] as usize],
        train_loss: Vec::new(),
        validation_accuracy: Vec::new(),
        best_epoch: 0,
        test_accuracy: 0.0,
        per_class_test_accuracy: Vec::new(),
        confusion: Vec::new(),
    };
    let span = tracing::info_span!("train", images = n_train, epochs = config.epochs);
    span.pb_set_length(config.epochs as u64);
    let _entered = span.enter();
    let mut best_accuracy = f64::NEG_INFINITY;
    for epoch in 0..config.epochs {
        let mut order: Vec<i64> = (0..n_train as i64).collect();
        order.shuffle(&mut rng);
        let mut loss_sum = 0.0;
        for batch in order.chunks(config.batch_size) {
            let index = Tensor::from_slice(batch).to_device(device);
            let mut x = train_data.inputs.index_select(0, &index);
            if config.augment_flip {
                let flips: Vec<bool> = batch.iter().map(|_| rng.random_bool(0.5)).collect();
                let mask = Tensor::from_slice(&flips).to_device(device).view([-1, 1, 1, 1]);
                x = x.flip([3]).where_self(&mask, &x);
            }
            let y = train_data.labels.index_select(0, &index);
            let loss = model.forward_t(&x, true).cross_entropy_for_logits(&y);
            optimiser.backward_step(&loss);
            loss_sum += loss.double_value(&[]) * batch.len() as f64;
        }
        let accuracy = accuracy(&model, &validation)?;
        report.train_loss.push(loss_sum / n_train as f64);
        report.validation_accuracy.push(accuracy);
        tracing::info!(
            epoch = epoch + 1,
            loss = loss_sum / n_train as f64,
            validation_accuracy = accuracy,
            "epoch done"
        );
        if accuracy > best_accuracy {
            best_accuracy = accuracy;
            report.best_epoch = epoch;
            model.save(&best_path)?;
        }
        span.pb_inc(1);
    }

    if config.epochs == 0 {
        // The negative control: a network with its seeded initial weights.
        model.save(&best_path)?;
    }
    let best = SimpleCnn::load(spec.clone(), &best_path, device)?;
    let (test_accuracy, per_class, confusion) = evaluate(&best, &test, classes)?;
    report.test_accuracy = test_accuracy;
    report.per_class_test_accuracy = per_class;
    report.confusion = confusion;
    tcav_core::store::write_json(&out.join(SPEC_FILE), &spec)?;
    tcav_core::store::write_json(&out.join(METRICS_FILE), &report)?;
    tracing::info!(test_accuracy, best_epoch = report.best_epoch + 1, "classifier trained");
    Ok(TrainedModel { dir: out.to_path_buf(), spec, report })
}

fn predictions(model: &impl BottleneckModel, data: &SplitData) -> Result<Vec<i64>> {
    Ok(tcav_model::predict(model, &data.inputs)?)
}

fn accuracy(model: &impl BottleneckModel, data: &SplitData) -> Result<f64> {
    let predicted = predictions(model, data)?;
    let labels = labels_of(data)?;
    let correct = predicted.iter().zip(&labels).filter(|(p, l)| p == l).count();
    Ok(correct as f64 / labels.len().max(1) as f64)
}

fn labels_of(data: &SplitData) -> Result<Vec<i64>> {
    Vec::<i64>::try_from(&data.labels.to_device(Device::Cpu).to_kind(Kind::Int64))
        .map_err(|e| ModelError::torch("reading labels")(e).into())
}

/// Accuracy, per-class accuracy and confusion matrix.
type Evaluation = (f64, Vec<(String, f64)>, Vec<Vec<usize>>);

/// Accuracy, per-class accuracy and the confusion matrix of `model` on `data`.
fn evaluate(model: &impl BottleneckModel, data: &SplitData, classes: &[SetName]) -> Result<Evaluation> {
    let predicted = predictions(model, data)?;
    let labels = labels_of(data)?;
    let k = classes.len();
    let mut confusion = vec![vec![0usize; k]; k];
    for (&p, &l) in predicted.iter().zip(&labels) {
        confusion[l as usize][p as usize] += 1;
    }
    let correct: usize = (0..k).map(|i| confusion[i][i]).sum();
    let per_class = classes
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let total: usize = confusion[i].iter().sum();
            (c.to_string(), confusion[i][i] as f64 / total.max(1) as f64)
        })
        .collect();
    Ok((correct as f64 / labels.len().max(1) as f64, per_class, confusion))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes a tiny training layout where class `left` is bright on the left
    /// half and class `right` on the right half, with per-image noise.
    fn write_layout(root: &Path) -> Vec<SetName> {
        let classes = vec![SetName::new("left").unwrap(), SetName::new("right").unwrap()];
        let layout = TrainLayout::new(root);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for split in Split::ALL {
            for (c, class) in classes.iter().enumerate() {
                let dir = layout.class_dir(split, class);
                std::fs::create_dir_all(&dir).unwrap();
                for i in 0..12 {
                    let img = image::RgbImage::from_fn(16, 16, |x, _| {
                        let bright = (x < 8) == (c == 0);
                        let base: u8 = if bright { 200 } else { 40 };
                        let v = base.saturating_add(rng.random_range(0..40));
                        image::Rgb([v, v, v])
                    });
                    img.save(dir.join(format!("{i}.png"))).unwrap();
                }
            }
        }
        classes
    }

    #[test]
    fn learns_a_separable_task_and_reports_held_out_accuracy() {
        let data = tempfile::tempdir().unwrap();
        let classes = write_layout(data.path());
        let out = tempfile::tempdir().unwrap();
        // No flips: flipping would swap the two classes of this toy task.
        let config = TrainConfig { epochs: 8, batch_size: 8, learning_rate: 3e-3, augment_flip: false };
        let layout = TrainLayout::new(data.path());
        let trained = train(&layout, &classes, 16, &config, 5, Device::Cpu, out.path()).unwrap();
        assert_eq!(trained.report.images, [24, 24, 24]);
        assert!(trained.report.test_accuracy >= 0.9, "{:?}", trained.report);
        assert_eq!(trained.report.confusion.iter().flatten().sum::<usize>(), 24);

        let reopened = TrainedModel::open(out.path()).unwrap();
        assert_eq!(reopened.report, trained.report);
        reopened.load(Device::Cpu).unwrap();

        // Same seed, same result: training is a pure function of its inputs.
        let again = tempfile::tempdir().unwrap();
        let second = train(&layout, &classes, 16, &config, 5, Device::Cpu, again.path()).unwrap();
        assert_eq!(second.report.train_loss, trained.report.train_loss);
    }

    #[test]
    fn zero_epochs_keep_the_seeded_random_weights() {
        let data = tempfile::tempdir().unwrap();
        let classes = write_layout(data.path());
        let layout = TrainLayout::new(data.path());
        let config = TrainConfig { epochs: 0, ..TrainConfig::default() };
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let first = train(&layout, &classes, 16, &config, 9, Device::Cpu, a.path()).unwrap();
        train(&layout, &classes, 16, &config, 9, Device::Cpu, b.path()).unwrap();
        assert!(first.report.train_loss.is_empty());
        let bytes = |d: &Path| std::fs::read(d.join(WEIGHTS_FILE)).unwrap();
        assert_eq!(bytes(a.path()), bytes(b.path()), "same seed, same random weights");
    }

    #[test]
    fn a_missing_split_folder_is_named() {
        let data = tempfile::tempdir().unwrap();
        let classes = write_layout(data.path());
        std::fs::remove_dir_all(data.path().join("validation").join("right")).unwrap();
        let out = tempfile::tempdir().unwrap();
        let err =
            train(&TrainLayout::new(data.path()), &classes, 16, &TrainConfig::default(), 0, Device::Cpu, out.path())
                .unwrap_err()
                .to_string();
        assert!(err.contains("validation") && err.contains("right") && err.contains("does not exist"), "{err}");
    }
}
