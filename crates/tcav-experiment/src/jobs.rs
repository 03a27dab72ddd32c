//! The experiment's jobs before TCAV: data, preprocessing, training.
//!
//! Each job is a pure function of its inputs. Its output lives in the
//! artifact store under a key derived from the job's parameters and its
//! inputs' keys, so a rerun, or another machine sharing the store, reuses it
//! instead of recomputing, and a changed input can never hit a stale output.

use std::path::PathBuf;

use tcav_core::store::{ArtifactKey, ArtifactStore, KeyBuilder, hash_file};
use tcav_core::{ImageSetDir, SetName, TcavLayout, TrainLayout};
use tcav_train::TrainedModel;

use crate::config::{DataConfig, ExperimentConfig};
use crate::error::{ExperimentError, Result};

/// Raw image folders, one per class, concept and random set.
#[derive(Clone, Debug)]
pub struct RawData {
    /// The key of these images' content.
    pub key: ArtifactKey,
    /// Class folders, in class order.
    pub classes: Vec<(SetName, PathBuf)>,
    /// Concept folders.
    pub concepts: Vec<(SetName, PathBuf)>,
    /// Random set folders.
    pub random_sets: Vec<(SetName, PathBuf)>,
    /// For generated data: the (class, concept) pairs the classifier is
    /// built to rely on, i.e. each family and its own colour.
    pub known_answer: Vec<(String, String)>,
}

/// Generates the built-in data, or fingerprints the user's folders.
pub fn raw_data(config: &ExperimentConfig, store: &ArtifactStore) -> Result<RawData> {
    match &config.data {
        DataConfig::Builtin { generator } => {
            let key = KeyBuilder::new("datagen").param("version", &tcav_datagen::OUTPUT_VERSION).param("generator", generator).finish();
            let (dir, built) = store.get_or_build::<ExperimentError>("datagen", &key, |tmp| {
                tcav_datagen::generate(generator, tmp)?;
                Ok(())
            })?;
            tracing::info!(cached = !built, dir = %dir.display(), "built-in images");
            let named = |group: &str, names: Vec<String>| -> Result<Vec<(SetName, PathBuf)>> {
                names
                    .into_iter()
                    .map(|n| Ok((SetName::new(n.clone())?, dir.join(group).join(n))))
                    .collect()
            };
            let families = tcav_datagen::families();
            Ok(RawData {
                key,
                classes: named("classes", families.iter().map(|f| f.name.to_string()).collect())?,
                concepts: named("concepts", tcav_datagen::colour_concepts().iter().map(|c| c.to_string()).collect())?,
                random_sets: named(
                    "random",
                    (0..generator.random_sets)
                        .map(|i| tcav_datagen::random_set_name(i).map(|n| n.to_string()))
                        .collect::<Result<_, _>>()?,
                )?,
                known_answer: families.iter().map(|f| (f.name.to_string(), f.colour_concept.to_string())).collect(),
            })
        }
        DataConfig::Folders { classes, concepts, random_sets } => {
            let mut key = KeyBuilder::new("folders");
            let mut named = |role: &str, sets: &std::collections::BTreeMap<String, PathBuf>| -> Result<Vec<(SetName, PathBuf)>> {
                let mut out = Vec::new();
                for (name, folder) in sets {
                    let set = SetName::new(name.clone())?;
                    // Content, not paths, identifies the data: renaming a
                    // folder reuses results, editing an image does not.
                    for image in ImageSetDir::new(folder, format!("{role} `{name}`")).list()? {
                        key.param("set", &(role, name)).content("image", &hash_file(&image)?);
                    }
                    out.push((set, folder.clone()));
                }
                Ok(out)
            };
            let classes = named("class", classes)?;
            let concepts = named("concept", concepts)?;
            let random_sets = named("random set", random_sets)?;
            Ok(RawData { key: key.finish(), classes, concepts, random_sets, known_answer: Vec::new() })
        }
    }
}

/// Preprocessed images in the training and TCAV layouts.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// The key of this artifact.
    pub key: ArtifactKey,
    /// `train/validation/test` per class.
    pub train: TrainLayout,
    /// One folder per concept and random set.
    pub sets: TcavLayout,
}

/// Runs preprocessing, or reuses its stored output.
pub fn prepare(raw: &RawData, config: &ExperimentConfig, store: &ArtifactStore) -> Result<Prepared> {
    let key = KeyBuilder::new("preprocess")
        .input("data", &raw.key)
        .param("config", &config.preprocess)
        .param("classes", &raw.classes)
        .param("sets", &(&raw.concepts, &raw.random_sets))
        .finish();
    let (dir, built) = store.get_or_build::<ExperimentError>("preprocess", &key, |tmp| {
        let training = tcav_preprocess::prepare_training(&raw.classes, &config.preprocess, &TrainLayout::new(tmp.join("train")))?;
        training.write(&tmp.join("train-manifest.json"))?;
        let sets: Vec<_> = raw.concepts.iter().chain(&raw.random_sets).cloned().collect();
        let tcav = tcav_preprocess::prepare_sets(&sets, &config.preprocess, &TcavLayout::new(tmp.join("sets")))?;
        tcav.write(&tmp.join("sets-manifest.json"))?;
        Ok(())
    })?;
    tracing::info!(cached = !built, dir = %dir.display(), "preprocessed images");
    Ok(Prepared { key, train: TrainLayout::new(dir.join("train")), sets: TcavLayout::new(dir.join("sets")) })
}

/// Trains the classifier, or reuses a stored one. Returns the model and the
/// key that identifies it: a hash of its spec and weights.
pub fn train(
    prepared: &Prepared,
    classes: &[SetName],
    config: &ExperimentConfig,
    store: &ArtifactStore,
    device: tch::Device,
) -> Result<(TrainedModel, ArtifactKey)> {
    // The device is an input: CUDA kernels round differently from CPU ones,
    // so a model trained on either is a different artifact.
    let device_kind = if device.is_cuda() { "cuda" } else { "cpu" };
    let key = KeyBuilder::new("train")
        .param("version", &tcav_train::OUTPUT_VERSION)
        .input("data", &prepared.key)
        .param("classes", classes)
        .param("architecture", tcav_model::SimpleCnn::spec_for(Vec::new(), config.preprocess.size).architecture.as_str())
        .param("image_size", &config.preprocess.size)
        .param("config", &config.train)
        .param("seed", &config.seed)
        .param("device", device_kind)
        .finish();
    let (dir, built) = store.get_or_build::<ExperimentError>("train", &key, |tmp| {
        tcav_train::train(&prepared.train, classes, config.preprocess.size, &config.train, config.seed, device, tmp)?;
        Ok(())
    })?;
    let trained = TrainedModel::open(&dir)?;
    tracing::info!(
        cached = !built,
        test_accuracy = trained.report.test_accuracy,
        "classifier ready"
    );
    // Later caches key on what the model *is* (its spec and weights), not on
    // how it was made, so a model brought from elsewhere caches the same way.
    let model_key = KeyBuilder::new("model")
        .param("spec", &trained.spec)
        .content("weights", &hash_file(&dir.join(tcav_train::WEIGHTS_FILE))?)
        .finish();
    Ok((trained, model_key))
}
