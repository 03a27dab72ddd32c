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
            let key = KeyBuilder::new("datagen")
                .param("version", &tcav_datagen::OUTPUT_VERSION)
                .param("generator", generator)
                .finish();
            let (dir, built) = store.get_or_build::<ExperimentError>("datagen", &key, |tmp| {
                tcav_datagen::generate(generator, tmp)?;
                Ok(())
            })?;
            tracing::info!(cached = !built, dir = %dir.display(), "built-in images");
            let named = |group: &str, names: Vec<String>| -> Result<Vec<(SetName, PathBuf)>> {
                names.into_iter().map(|n| Ok((SetName::new(n.clone())?, dir.join(group).join(n)))).collect()
            };
            let families = tcav_datagen::families();
            Ok(RawData {
                key,
                classes: named("classes", families.iter().map(|f| f.name.to_string()).collect())?,
                concepts: named("concepts", tcav_datagen::concept_names(generator))?,
                random_sets: named(
                    "random",
                    (0..generator.random_sets)
                        .map(|i| tcav_datagen::random_set_name(i).map(|n| n.to_string()))
                        .collect::<Result<_, _>>()?,
                )?,
                // Each family's own colour is the known answer only when the
                // colour follows the family.
                known_answer: if generator.colour_reliance >= 1.0 {
                    families.iter().map(|f| (f.name.to_string(), f.colour_concept.to_string())).collect()
                } else {
                    Vec::new()
                },
            })
        }
        DataConfig::Folders { crawl, classes, concepts, random_sets } => {
            if let Some(definition) = crawl {
                run_crawl(definition)?;
            }
            let mut key = KeyBuilder::new("folders");
            let mut named =
                |role: &str, sets: &std::collections::BTreeMap<String, PathBuf>| -> Result<Vec<(SetName, PathBuf)>> {
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

/// Runs a crawl definition: the first stage of an experiment on web data.
/// Sets that are already full download nothing.
fn run_crawl(definition: &std::path::Path) -> Result<()> {
    let crawl = tcav_crawl::CrawlDefinition::load(definition)?;
    let root = tcav_crawl::definition::default_dataset_root(definition);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| tcav_core::CoreError::io("starting the crawler's runtime for", definition, e))?;
    let outcomes = runtime.block_on(crawl.run(&root, &tcav_crawl::NoProgress))?;
    for outcome in outcomes {
        // A set that could not be crawled fails the experiment: its folder
        // may hold too few images to mean anything.
        let summary = outcome.result?;
        tracing::info!(set = %outcome.set, accepted = summary.accepted, requested = summary.requested, "crawled");
    }
    Ok(())
}

/// Preprocessed images in the training and TCAV layouts.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// The key of this artifact.
    pub key: ArtifactKey,
    /// The artifact's folder: the two layouts, `report.json`/`report.txt`
    /// (what happened to every file), contact sheets and the split lock.
    pub dir: PathBuf,
    /// `train/validation/test` per class.
    pub train: TrainLayout,
    /// One folder per concept and random set.
    pub sets: TcavLayout,
}

/// Runs preprocessing, or reuses its stored output. Class, concept and
/// random sets are prepared together, so duplicates across them are found
/// and kept in one set only.
pub fn prepare(raw: &RawData, config: &ExperimentConfig, store: &ArtifactStore) -> Result<Prepared> {
    let mut key = KeyBuilder::new("preprocess");
    key.param("version", &tcav_preprocess::OUTPUT_VERSION)
        .input("data", &raw.key)
        .param("config", &config.preprocess)
        .param("classes", &raw.classes)
        .param("sets", &(&raw.concepts, &raw.random_sets));
    if let Some(list) = &config.preprocess.exclusions {
        key.content("exclusions", &hash_file(list)?);
    }
    if let Some(lock) = config.preprocess.lockfile.as_ref().filter(|f| f.exists()) {
        key.content("lockfile", &hash_file(lock)?);
    }
    let key = key.finish();
    let (dir, built) = store.get_or_build::<ExperimentError>("preprocess", &key, |tmp| {
        let inputs = tcav_preprocess::DatasetInputs {
            classes: raw.classes.clone(),
            concepts: raw.concepts.clone(),
            random_sets: raw.random_sets.clone(),
        };
        let manifest = tcav_preprocess::prepare_dataset(&inputs, &config.preprocess, tmp)?;
        tracing::info!("{}", manifest.summary_text().lines().next().unwrap_or_default());
        Ok(())
    })?;
    tracing::info!(cached = !built, dir = %dir.display(), "preprocessed images");
    Ok(Prepared { key, train: tcav_preprocess::train_layout(&dir), sets: tcav_preprocess::tcav_layout(&dir), dir })
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
        .param(
            "architecture",
            tcav_model::SimpleCnn::spec_for(Vec::new(), config.preprocess.size).architecture.as_str(),
        )
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
    tracing::info!(cached = !built, test_accuracy = trained.report.test_accuracy, "classifier ready");
    // Later caches key on what the model *is* (its spec and weights), not on
    // how it was made, so a model brought from elsewhere caches the same way.
    let model_key = KeyBuilder::new("model")
        .param("spec", &trained.spec)
        .content("weights", &hash_file(&dir.join(tcav_train::WEIGHTS_FILE))?)
        .finish();
    Ok((trained, model_key))
}

/// How much the trained model relies on one cue, measured on the model
/// itself: its accuracy on the held-out test images, and on the same images
/// regenerated with the cue removed.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Reliance {
    /// The cue removed (`colour`, `caption`).
    pub cue: String,
    /// Test images compared.
    pub images: usize,
    /// Accuracy on the original test images.
    pub accuracy: f64,
    /// Accuracy on the same images with the cue removed.
    pub accuracy_without_cue: f64,
    /// `accuracy - accuracy_without_cue`: the ground truth of how much the
    /// model uses the cue.
    pub drop: f64,
}

/// Measures the model's reliance on `cue` (built-in data only).
pub fn reliance<M: tcav_model::BottleneckModel>(
    config: &ExperimentConfig,
    prepared: &Prepared,
    model: &M,
    cue: tcav_datagen::Cue,
    store: &ArtifactStore,
) -> Result<Reliance> {
    let DataConfig::Builtin { generator } = &config.data else {
        return Err(ExperimentError::Mismatch(
            "`measure_reliance` needs the built-in data (it regenerates the test images without the cue); remove it for folder data".into(),
        ));
    };
    let key = KeyBuilder::new("counterfactual")
        .param("version", &tcav_datagen::OUTPUT_VERSION)
        .param("generator", generator)
        .param("cue", &cue)
        .param("preprocess", &config.preprocess)
        .finish();
    let (dir, _) = store.get_or_build::<ExperimentError>("counterfactual", &key, |tmp| {
        let generated = tcav_datagen::generate_counterfactuals(generator, cue, &tmp.join("raw"))?;
        let manifest = tcav_preprocess::prepare_sets(
            &generated.classes,
            &config.preprocess,
            &TcavLayout::new(tmp.join("processed")),
        )?;
        manifest.write(&tmp.join("manifest.json"))?;
        Ok(())
    })?;

    // Pair each held-out test image with its counterfactual by the name of
    // the generated file both were made from.
    // Manifests record where files were written while their artifact was
    // being built; the same names live under the artifact's final folder.
    let counterfactual_layout = TcavLayout::new(dir.join("processed"));
    let mut counterfactuals = std::collections::BTreeMap::new();
    for (set, source, output, _) in accepted(&dir.join("manifest.json"))? {
        let path = counterfactual_layout.set_dir(&SetName::new(set.clone())?).join(file_name(&output));
        counterfactuals.insert((set, source), path);
    }
    let mut pairs = Vec::new();
    for (set, source, output, split) in accepted(&prepared.dir.join(tcav_preprocess::REPORT_JSON))? {
        if split == Some(tcav_core::Split::Test)
            && let Some(counterfactual) = counterfactuals.get(&(set.clone(), source))
        {
            let label = model.class_index(&set)?;
            let original =
                prepared.train.class_dir(tcav_core::Split::Test, &SetName::new(set)?).join(file_name(&output));
            pairs.push((label, original, counterfactual.clone()));
        }
    }
    if pairs.is_empty() {
        return Err(ExperimentError::Mismatch(format!(
            "no test image could be paired with its `{cue}` counterfactual"
        )));
    }
    let accuracy_of = |paths: Vec<PathBuf>| -> Result<f64> {
        let mut correct = 0;
        for (chunk, labels) in paths.chunks(64).zip(pairs.chunks(64)) {
            let x = tcav_model::load_images(chunk, model.spec().image_size, model.device())?;
            let predicted = tcav_model::predict(model, &x)?;
            correct += predicted.iter().zip(labels).filter(|(p, (l, _, _))| **p == *l as i64).count();
        }
        Ok(correct as f64 / paths.len() as f64)
    };
    let accuracy = accuracy_of(pairs.iter().map(|(_, o, _)| o.clone()).collect())?;
    let accuracy_without_cue = accuracy_of(pairs.iter().map(|(_, _, c)| c.clone()).collect())?;
    let measured = Reliance {
        cue: cue.to_string(),
        images: pairs.len(),
        accuracy,
        accuracy_without_cue,
        drop: accuracy - accuracy_without_cue,
    };
    tracing::info!(cue = %cue, accuracy, accuracy_without_cue, "reliance measured");
    Ok(measured)
}

fn file_name(path: &std::path::Path) -> std::ffi::OsString {
    path.file_name().map(ToOwned::to_owned).unwrap_or_default()
}

/// (set, source file name, output path, split) of one accepted file.
type AcceptedFile = (String, String, PathBuf, Option<tcav_core::Split>);

/// Every accepted entry of a preprocessing manifest.
fn accepted(manifest: &std::path::Path) -> Result<Vec<AcceptedFile>> {
    let manifest = tcav_preprocess::Manifest::read(manifest)?;
    Ok(manifest
        .entries
        .into_iter()
        .filter_map(|e| match e.outcome {
            tcav_preprocess::Outcome::Accepted { output, split } => {
                let source = e.source.file_name()?.to_string_lossy().into_owned();
                Some((e.set.to_string(), source, output, split))
            }
            tcav_preprocess::Outcome::Rejected { .. } => None,
        })
        .collect())
}
