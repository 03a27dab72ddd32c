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
use crate::manifest::{JobLog, JobRecord};

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

/// Generates the built-in data, or fingerprints the user's folders (after
/// running the crawl definition, when the config names one).
pub fn raw_data(config: &ExperimentConfig, store: &ArtifactStore, log: &JobLog) -> Result<RawData> {
    let started = std::time::Instant::now();
    match &config.data {
        DataConfig::Builtin { generator } => {
            let (raw, key) = data_plan(config, store)?;
            let (dir, _, built) = log.job(store, "datagen", &key, |tmp| {
                tcav_datagen::generate(generator, tmp)?;
                Ok(())
            })?;
            tracing::info!(cached = !built, dir = %dir.display(), "built-in images");
            Ok(raw)
        }
        DataConfig::Folders { crawl, .. } => {
            if let Some(definition) = crawl {
                run_crawl(definition)?;
            }
            let (raw, key) = data_plan(config, store)?;
            // The user's folders are not copied into the store; the job
            // that fingerprints them is still recorded with its key.
            log.push(JobRecord {
                stage: "data".into(),
                key: raw.key.clone(),
                inputs: key.parts(),
                built: false,
                seconds: started.elapsed().as_secs_f64(),
            });
            Ok(raw)
        }
    }
}

/// The data an experiment will use, without generating or crawling
/// anything: set names, their folders, and the data's key (for folders,
/// a hash of every image's content as the folders are now).
pub fn data_plan(config: &ExperimentConfig, store: &ArtifactStore) -> Result<(RawData, KeyBuilder)> {
    match &config.data {
        DataConfig::Builtin { generator } => {
            let mut key = KeyBuilder::new("datagen");
            key.param("version", &tcav_datagen::OUTPUT_VERSION).param("generator", generator);
            let dir = store.path("datagen", &key.finish());
            let named = |group: &str, names: Vec<String>| -> Result<Vec<(SetName, PathBuf)>> {
                names.into_iter().map(|n| Ok((SetName::new(n.clone())?, dir.join(group).join(n)))).collect()
            };
            let families = tcav_datagen::families();
            let raw = RawData {
                key: key.finish(),
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
            };
            Ok((raw, key))
        }
        DataConfig::Folders { classes, concepts, random_sets, .. } => {
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
            Ok((RawData { key: key.finish(), classes, concepts, random_sets, known_answer: Vec::new() }, key))
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
pub fn prepare(raw: &RawData, config: &ExperimentConfig, store: &ArtifactStore, log: &JobLog) -> Result<Prepared> {
    let key = preprocess_key(raw, config)?;
    let (dir, key, built) = log.job(store, "preprocess", &key, |tmp| {
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

/// The preprocessing job's key: the data, the settings, the sets, and the
/// exclusion list and split lockfile when there are any.
pub fn preprocess_key(raw: &RawData, config: &ExperimentConfig) -> Result<KeyBuilder> {
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
    Ok(key)
}

/// Trains the classifier, or reuses a stored one. Returns the model and the
/// key that identifies it: a hash of its spec and weights.
pub fn train(
    prepared: &Prepared,
    classes: &[SetName],
    config: &ExperimentConfig,
    store: &ArtifactStore,
    device: tch::Device,
    log: &JobLog,
) -> Result<(TrainedModel, ArtifactKey)> {
    let key = train_key(&prepared.key, classes, config, store, device)?;
    let (dir, _, built) = log.job(store, "train", &key, |tmp| {
        tcav_train::train(&prepared.train, classes, config.preprocess.size, &config.train, config.seed, device, tmp)?;
        Ok(())
    })?;
    let trained = TrainedModel::open(&dir)?;
    tracing::info!(cached = !built, test_accuracy = trained.report.test_accuracy, "classifier ready");
    let model_key = model_key(&trained)?;
    Ok((trained, model_key))
}

/// Later caches key on what the model *is* (its spec and weights), not on
/// how it was made, so a model brought from elsewhere caches the same way.
pub fn model_key(trained: &TrainedModel) -> Result<ArtifactKey> {
    Ok(KeyBuilder::new("model")
        .param("spec", &trained.spec)
        .content("weights", &hash_file(&trained.dir.join(tcav_train::WEIGHTS_FILE))?)
        .finish())
}

/// The training job's key (needs the preprocessing artifact in the store).
pub fn train_key(
    preprocess_key: &ArtifactKey,
    classes: &[SetName],
    config: &ExperimentConfig,
    store: &ArtifactStore,
    device: tch::Device,
) -> Result<KeyBuilder> {
    // The device is an input: CUDA kernels round differently from CPU ones,
    // so a model trained on either is a different artifact.
    let device_kind = if device.is_cuda() { "cuda" } else { "cpu" };
    let mut key = KeyBuilder::new("train");
    key.param("version", &tcav_train::OUTPUT_VERSION)
        // The training images themselves, not the preprocessing job's key:
        // adding a concept reruns preprocessing (duplicates are looked for
        // across all sets) but leaves these files, so the classifier is reused.
        .content(
            "training_images",
            &store.files_digests("preprocess", preprocess_key, &[format!("{}/", tcav_preprocess::TRAIN_DIR)])?.concat(),
        )
        .param("classes", classes)
        .param(
            "architecture",
            tcav_model::SimpleCnn::spec_for(Vec::new(), config.preprocess.size).architecture.as_str(),
        )
        .param("image_size", &config.preprocess.size)
        .param("config", &config.train)
        .param("seed", &config.seed)
        .param("device", device_kind);
    Ok(key)
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
    (model, model_key): (&M, &ArtifactKey),
    cue: tcav_datagen::Cue,
    store: &ArtifactStore,
    log: &JobLog,
) -> Result<Reliance> {
    let DataConfig::Builtin { generator } = &config.data else {
        return Err(ExperimentError::Mismatch(
            "`measure_reliance` needs the built-in data (it regenerates the test images without the cue); remove it for folder data".into(),
        ));
    };
    let key = counterfactual_key(generator, cue, config);
    let (dir, counterfactual_key, _) = log.job(store, "counterfactual", &key, |tmp| {
        let generated = tcav_datagen::generate_counterfactuals(generator, cue, &tmp.join("raw"))?;
        let manifest = tcav_preprocess::prepare_sets(
            &generated.classes,
            &config.preprocess,
            &TcavLayout::new(tmp.join("processed")),
        )?;
        manifest.write(&tmp.join("manifest.json"))?;
        Ok(())
    })?;

    let key = reliance_key(model_key, &counterfactual_key, &prepared.key);
    let (dir, _, _) = log.job(store, "reliance", &key, |tmp| {
        let measured = measure_reliance(prepared, &dir, model, cue)?;
        tcav_core::store::write_json(&tmp.join(RELIANCE_FILE), &measured)?;
        Ok(())
    })?;
    let measured: Reliance = tcav_core::store::read_json(&dir.join(RELIANCE_FILE))?;
    tracing::info!(cue = %cue, measured.accuracy, measured.accuracy_without_cue, "reliance measured");
    Ok(measured)
}

const RELIANCE_FILE: &str = "reliance.json";

/// The key of the test images regenerated without `cue`.
pub fn counterfactual_key(
    generator: &tcav_datagen::DatagenConfig,
    cue: tcav_datagen::Cue,
    config: &ExperimentConfig,
) -> KeyBuilder {
    let mut key = KeyBuilder::new("counterfactual");
    key.param("version", &tcav_datagen::OUTPUT_VERSION)
        .param("generator", generator)
        .param("cue", &cue)
        .param("preprocess", &config.preprocess);
    key
}

/// The key of a reliance measurement: the model, the counterfactual images
/// and the preprocessed originals.
pub fn reliance_key(model: &ArtifactKey, counterfactual: &ArtifactKey, preprocessed: &ArtifactKey) -> KeyBuilder {
    let mut key = KeyBuilder::new("reliance");
    key.input("model", model).input("counterfactual", counterfactual).input("data", preprocessed);
    key
}

/// Accuracy on the held-out test images and on their counterfactuals (in
/// the `counterfactual` artifact `dir`).
fn measure_reliance<M: tcav_model::BottleneckModel>(
    prepared: &Prepared,
    dir: &std::path::Path,
    model: &M,
    cue: tcav_datagen::Cue,
) -> Result<Reliance> {
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
    Ok(Reliance {
        cue: cue.to_string(),
        images: pairs.len(),
        accuracy,
        accuracy_without_cue,
        drop: accuracy - accuracy_without_cue,
    })
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
