//! The orchestrator: chains the stages into one reproducible experiment.
//!
//! Takes: an [`ExperimentConfig`] (a TOML file), an artifact store and a
//! folder for runs. Produces: a run folder `runs/<name>/<run id>/` holding
//! the report (terminal table, JSON, CSV, one chart per class), every CAV's
//! metadata, the classifier's metrics, the resolved config and the keys of
//! every job's artifact.
//!
//! The chain is data → preprocessing → training → activations and gradients
//! → CAVs → scores → statistics → report. Each job before the report is a
//! pure function of its inputs and is stored under a key derived from them
//! (see `tcav_core::store`), so reruns reuse everything that did not change,
//! and jobs could run on other machines sharing the store.
//!
//! Invariant: this crate only wires stages together; it computes no
//! statistic, score or gradient itself, and stages never call each other.

#![deny(missing_docs)]

pub mod config;
pub mod error;
pub mod jobs;
pub mod manifest;
pub mod plan;
pub mod tcav;
pub mod validation;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tcav_core::SetName;
use tcav_core::store::{ArtifactKey, ArtifactStore, KeyBuilder, read_json, write_atomic, write_json};
use tcav_report::{ClassifierSummary, ConceptResult, ExperimentReport, StabilityRow};

pub use config::{DataConfig, ExperimentConfig, TcavConfig};
pub use error::{ExperimentError, Result};
pub use manifest::{JobLog, JobRecord, MANIFEST_FILE, Manifest};
pub use plan::{PlanStep, Stage};

/// The version of the TCAV stage's stored output (scores and statistics);
/// bump it when the statistics change, so stored results are not reused.
pub const TCAV_OUTPUT_VERSION: u32 = 2;

/// Where a run's inputs and outputs live.
#[derive(Clone, Debug)]
pub struct Paths {
    /// The artifact store.
    pub store: PathBuf,
    /// The folder under which run folders are created.
    pub runs: PathBuf,
}

/// What a finished run produced.
#[derive(Clone, Debug)]
pub struct RunOutcome {
    /// The run folder.
    pub dir: PathBuf,
    /// The report, as written to `report.json`.
    pub report: ExperimentReport,
    /// The rendered terminal table (also in `report.txt`).
    pub table: String,
    /// Chart files, one per class.
    pub charts: Vec<PathBuf>,
    /// For generated data: (class, concept) pairs the data were built around.
    pub known_answer: Vec<(String, String)>,
    /// The measured reliance on each cue asked for.
    pub reliance: Vec<jobs::Reliance>,
    /// What the run did, as written to `manifest.json`.
    pub manifest: Manifest,
}

/// How a run is started, beyond its config.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// The config file, recorded in the manifest.
    pub config_file: PathBuf,
    /// Rerun this stage and every stage after it, even when stored.
    pub force: Option<Stage>,
}

/// Picks the named subset (all when `wanted` is empty), in data order,
/// failing with the list of what exists when a name is unknown.
fn select(kind: &str, field: &str, available: &[SetName], wanted: &[String]) -> Result<Vec<SetName>> {
    if wanted.is_empty() {
        return Ok(available.to_vec());
    }
    wanted
        .iter()
        .map(|w| {
            available.iter().find(|a| a.as_str() == w).cloned().ok_or_else(|| {
                let names: Vec<&str> = available.iter().map(SetName::as_str).collect();
                ExperimentError::Mismatch(format!(
                    "{kind} `{w}` (in `{field}`) is not in the data; available: {}",
                    names.join(", ")
                ))
            })
        })
        .collect()
}

/// Refuses layer names and image sizes the architecture cannot take before
/// any work is done, so a typo never costs a preprocessing or training run.
pub(crate) fn check_layers(config: &ExperimentConfig) -> Result<()> {
    tcav_model::SimpleCnn::check_image_size(config.preprocess.size)?;
    let spec = tcav_model::SimpleCnn::spec_for(Vec::new(), config.preprocess.size);
    for layer in &config.tcav.layers {
        if !spec.bottlenecks.contains(layer) {
            return Err(tcav_model::ModelError::UnknownLayer {
                layer: layer.clone(),
                architecture: spec.architecture.clone(),
                available: spec.bottlenecks.join(", "),
            }
            .into());
        }
    }
    Ok(())
}

/// Everything before TCAV proper: data, preprocessing, the trained model,
/// and the sets TCAV will use. Each step comes from the store when it can.
pub struct Prepared {
    /// The raw data.
    pub raw: jobs::RawData,
    /// The preprocessed layouts.
    pub prepared: jobs::Prepared,
    /// The trained model on disk.
    pub trained: tcav_train::TrainedModel,
    /// The model's key (a hash of its spec and weights).
    pub model_key: ArtifactKey,
    /// Classes, concepts and random sets for TCAV.
    pub sets: tcav::Sets,
}

/// Runs (or fetches) every job up to the trained model.
pub fn prepare(config: &ExperimentConfig, store: &ArtifactStore, device: tch::Device) -> Result<Prepared> {
    prepare_logged(config, store, device, &JobLog::default())
}

/// As [`prepare`], recording each job in `log`.
pub fn prepare_logged(
    config: &ExperimentConfig,
    store: &ArtifactStore,
    device: tch::Device,
    log: &JobLog,
) -> Result<Prepared> {
    check_layers(config)?;
    let raw = jobs::raw_data(config, store, log)?;
    let sets = resolve_sets(config, &raw)?;
    let prepared = jobs::prepare(&raw, config, store, log)?;
    let (trained, model_key) = jobs::train(&prepared, &class_names(&raw), config, store, device, log)?;
    Ok(Prepared { raw, prepared, trained, model_key, sets })
}

/// Every class of the data, in data order: the classifier learns them all.
fn class_names(raw: &jobs::RawData) -> Vec<SetName> {
    raw.classes.iter().map(|(n, _)| n.clone()).collect()
}

/// The classes, concepts and random sets TCAV uses, picked from the data
/// by the config.
pub fn resolve_sets(config: &ExperimentConfig, raw: &jobs::RawData) -> Result<tcav::Sets> {
    let class_names = class_names(raw);
    let concept_names: Vec<SetName> = raw.concepts.iter().map(|(n, _)| n.clone()).collect();
    let random_names: Vec<SetName> = raw.random_sets.iter().map(|(n, _)| n.clone()).collect();
    let tcav_config = &config.tcav;
    // Sanity control: the last `random_sets_as_concepts` random sets are
    // tested as if they were concepts, and never used as random runs.
    let as_concepts = tcav_config.random_sets_as_concepts;
    if as_concepts > 0 && as_concepts + 3 > random_names.len() {
        return Err(ExperimentError::Mismatch(format!(
            "tcav.random_sets_as_concepts = {as_concepts} leaves fewer than 3 of the {} random sets for the baseline",
            random_names.len()
        )));
    }
    let (random_pool, control_concepts) = random_names.split_at(random_names.len() - as_concepts);
    let mut concepts = select("concept", "tcav.concepts", &concept_names, &tcav_config.concepts)?;
    concepts.extend(control_concepts.iter().cloned());
    let sets = tcav::Sets {
        classes: select("class", "tcav.classes", &class_names, &tcav_config.classes)?,
        concepts,
        random_sets: match tcav_config.random_runs {
            0 => random_pool.to_vec(),
            n if n <= random_pool.len() => random_pool[..n].to_vec(),
            n => {
                return Err(ExperimentError::Mismatch(format!(
                    "tcav.random_runs = {n} but only {} random sets are available for runs; lower it or add random sets",
                    random_pool.len()
                )));
            }
        },
    };
    Ok(sets)
}

/// The stored output of the TCAV stage, `outcome.json` in its artifact.
#[derive(Serialize, Deserialize)]
struct StoredTcav {
    results: Vec<ConceptResult>,
    stability: Vec<StabilityRow>,
    cavs: Vec<tcav::CavRecord>,
}

const TCAV_OUTCOME: &str = "outcome.json";

/// The key of the TCAV stage: the model, every set's images (by the hashes
/// preprocessing recorded), the TCAV settings and the seed.
pub fn tcav_key(
    config: &ExperimentConfig,
    (prepared, model_key, sets): (&jobs::Prepared, &ArtifactKey, &tcav::Sets),
    store: &ArtifactStore,
) -> Result<KeyBuilder> {
    let mut key = KeyBuilder::new("tcav");
    key.param("version", &TCAV_OUTPUT_VERSION)
        .param("cav_version", &tcav_cav::OUTPUT_VERSION)
        .param("activations_version", &tcav_activations::OUTPUT_VERSION)
        .input("model", model_key)
        .param("tcav", &config.tcav)
        .param("seed", &config.seed)
        .param("sets", &(&sets.classes, &sets.concepts, &sets.random_sets));
    let folders: Vec<String> = (sets.classes.iter())
        .map(|class| format!("{}/test/{class}/", tcav_preprocess::TRAIN_DIR))
        .chain(sets.concepts.iter().chain(&sets.random_sets).map(|set| format!("{}/{set}/", tcav_preprocess::TCAV_DIR)))
        .collect();
    for digest in store.files_digests("preprocess", &prepared.key, &folders)? {
        key.content("images", &digest);
    }
    Ok(key)
}

/// Runs the whole experiment.
pub fn run_experiment(config: &ExperimentConfig, paths: &Paths, device: tch::Device) -> Result<RunOutcome> {
    run_experiment_with(config, paths, device, &RunOptions::default())
}

/// Runs the whole experiment with the given options.
///
/// The job graph: data → preprocessing → training → {reliance, TCAV}, where
/// the reliance jobs and the TCAV stage only read the trained model and run
/// concurrently; inside TCAV, CAVs are fitted in parallel. Every job's
/// output is stored under its key, so this returns the same results however
/// often it is rerun, interrupted or resumed.
pub fn run_experiment_with(
    config: &ExperimentConfig,
    paths: &Paths,
    device: tch::Device,
    options: &RunOptions,
) -> Result<RunOutcome> {
    let started = std::time::Instant::now();
    let store = ArtifactStore::new(&paths.store).forcing(options.force.map(Stage::forced_kinds).unwrap_or_default());
    // data, preprocess, train, tcav, and a counterfactual and a reliance
    // job per cue.
    let log = JobLog::with_progress(&config.name, 4 + 2 * config.measure_reliance.len());
    let progress = log.span();
    let _entered = progress.enter();
    let config_key = KeyBuilder::new("experiment-config").param("config", config).finish();
    let run_id = format!("{}-{}", jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ"), config_key.short());
    tracing::info!(experiment = config.name.as_str(), run_id = run_id.as_str(), "starting");

    let ready = prepare_logged(config, &store, device, &log)?;
    let tcav_config = &config.tcav;
    let tcav_key = tcav_key(config, (&ready.prepared, &ready.model_key, &ready.sets), &store)?;
    let backward_passes = std::sync::atomic::AtomicUsize::new(0);
    let (reliance, tcav_job) = std::thread::scope(|scope| {
        // Each thread loads its own copy of the model: libtorch modules are
        // not shared between threads.
        let reliance = scope.spawn(|| -> Result<Vec<jobs::Reliance>> {
            if config.measure_reliance.is_empty() {
                return Ok(Vec::new());
            }
            let model = ready.trained.load(device)?;
            config
                .measure_reliance
                .iter()
                .map(|&cue| jobs::reliance(config, &ready.prepared, (&model, &ready.model_key), cue, &store, &log))
                .collect()
        });
        let tcav_job = log.job(&store, "tcav", &tcav_key, |tmp| {
            let model = ready.trained.load(device)?;
            let outcome =
                tcav::run(&model, &ready.model_key, &ready.prepared, &ready.sets, tcav_config, config.seed, &store)?;
            backward_passes.store(outcome.backward_passes, std::sync::atomic::Ordering::Relaxed);
            write_derivatives(tmp, &outcome.derivatives)?;
            let stored = StoredTcav { results: outcome.results, stability: outcome.stability, cavs: outcome.cavs };
            write_json(&tmp.join(TCAV_OUTCOME), &stored)?;
            Ok(())
        });
        let reliance = reliance.join().unwrap_or_else(|_| {
            Err(ExperimentError::Mismatch("the reliance job panicked; rerun to resume from the store".into()))
        });
        (reliance, tcav_job)
    });
    let reliance = reliance?;
    let (tcav_dir, _, _) = tcav_job?;
    let stored: StoredTcav = read_json(&tcav_dir.join(TCAV_OUTCOME))?;
    let Prepared { raw, trained, sets, .. } = &ready;
    let (dir, run_id) = new_run_folder(&paths.runs.join(&config.name), &run_id)?;

    let report = ExperimentReport {
        experiment: config.name.clone(),
        run_id: run_id.clone(),
        seed: config.seed,
        alpha: tcav_config.alpha,
        correction: serde_plain(&tcav_config.correction),
        // The report appends "t-test": keep the name short and put what is
        // compared into `design`.
        test: serde_plain(&tcav_config.test),
        classifier: ClassifierSummary {
            architecture: trained.spec.architecture.clone(),
            test_accuracy: trained.report.test_accuracy,
            per_class_accuracy: trained.report.per_class_test_accuracy.clone(),
        },
        layers: tcav_config.layers.clone(),
        classes: sets.classes.iter().map(|s| s.to_string()).collect(),
        concepts: sets.concepts.iter().map(|s| s.to_string()).chain(tcav::relative_labels(tcav_config)).collect(),
        random_sets: sets.random_sets.iter().map(|s| s.to_string()).collect(),
        results: stored.results,
        estimator: tcav_config.cav.estimator.name().to_string(),
        design: design_line(tcav_config),
        accuracy_threshold: tcav_config.accuracy_threshold,
        rank_test: match tcav_config.test.run_level() {
            Some(_) => "Mann-Whitney U, two-sided (concept runs vs baseline runs)".into(),
            None => "exact rank of the concept among random sets as concepts, two-sided (never below 2/(N+1))".into(),
        },
        stability: stored.stability,
    };
    report.validate()?;

    let mut table = tcav_report::render_table(&report);
    for r in &reliance {
        table.push_str(&format!(
            "\nmeasured reliance on {}: test accuracy {:.1}% → {:.1}% without it (drop {:+.1} points, {} images)",
            r.cue,
            100.0 * r.accuracy,
            100.0 * r.accuracy_without_cue,
            100.0 * r.drop,
            r.images
        ));
    }
    write_atomic(&dir.join("report.txt"), table.as_bytes())?;
    tcav_report::write_json(&report, &dir.join("report.json"))?;
    tcav_report::write_csv(&report, &dir.join("report.csv"))?;
    let charts = tcav_report::write_charts(&report, &dir)?;
    write_json(&dir.join("cavs.json"), &stored.cavs)?;
    copy_tree(&tcav_dir.join(DERIVATIVES_DIR), &dir.join(DERIVATIVES_DIR))?;
    write_json(&dir.join("classifier.json"), &trained.report)?;
    write_json(&dir.join("reliance.json"), &reliance)?;
    write_json(&dir.join("known_answer.json"), &raw.known_answer)?;
    tcav_report::write_runs_csv(&report, &dir.join("runs.csv"))?;
    tcav_report::write_runs_json(&report, &dir.join("runs.json"))?;
    let versions = manifest::Versions::current();
    let html = tcav_report::HtmlInputs {
        report: &report,
        // An untrained model (epochs = 0, a negative control) has no curves.
        training: (!trained.report.train_loss.is_empty()).then(|| tcav_report::TrainingCurves {
            train_loss: trained.report.train_loss.clone(),
            validation_accuracy: trained.report.validation_accuracy.clone(),
            best_epoch: trained.report.best_epoch,
            test_accuracy: trained.report.test_accuracy,
            classes: trained.spec.classes.clone(),
            confusion: trained.report.confusion.clone(),
        }),
        sensitive_images: sensitive_images(&report, &dir, &ready.prepared, SENSITIVE_IMAGES)?,
        notes: vec![
            ("config".into(), options.config_file.display().to_string()),
            ("device".into(), format!("{device:?}")),
            ("libtorch".into(), versions.libtorch.clone()),
            ("measured reliance".into(), reliance_line(&reliance)),
            ("manifest".into(), MANIFEST_FILE.into()),
        ],
    };
    tcav_report::write_html(&html, &dir.join(REPORT_HTML))?;
    let resolved = toml::to_string_pretty(config).unwrap_or_else(|e| format!("# could not render config: {e}\n"));
    write_atomic(&dir.join("config.toml"), resolved.as_bytes())?;

    let jobs = log.records();
    let manifest = Manifest {
        experiment: config.name.clone(),
        run_id: run_id.clone(),
        config_file: options.config_file.clone(),
        config: config.clone(),
        seeds: manifest::Seeds {
            master: config.seed,
            datagen: match &config.data {
                DataConfig::Builtin { generator } => Some(generator.seed),
                DataConfig::Folders { .. } => None,
            },
            derivation: "training uses the master seed; each CAV uses tcav_core::seed::derive(master, \"cav/<layer>/<concept>/<negative>\"); splits hash each image with preprocess.split.salt".into(),
        },
        versions,
        device: format!("{device:?}"),
        cuda_available: tch::Cuda::is_available(),
        store: paths.store.clone(),
        seconds_per_stage: manifest::seconds_per_stage(&jobs),
        jobs,
        work: store.work(),
        backward_passes: backward_passes.into_inner(),
        seconds: started.elapsed().as_secs_f64(),
        files: manifest::hash_run_folder(&dir)?,
    };
    write_json(&dir.join(MANIFEST_FILE), &manifest)?;
    tracing::info!(dir = %dir.display(), seconds = manifest.seconds, "run complete");
    Ok(RunOutcome { dir, report, table, charts, known_answer: raw.known_answer.clone(), reliance, manifest })
}

/// Creates the run's folder, `<id>` or, when a run of the same config
/// started in the same second already has it, `<id>-2`, `<id>-3`, …: a run
/// never writes into another run's folder. Returns the folder and its name.
fn new_run_folder(parent: &Path, id: &str) -> Result<(PathBuf, String)> {
    std::fs::create_dir_all(parent).map_err(|e| tcav_core::CoreError::io("creating", parent, e))?;
    let mut n = 1;
    loop {
        let name = if n == 1 { id.to_string() } else { format!("{id}-{n}") };
        let dir = parent.join(&name);
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok((dir, name)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => n += 1,
            Err(e) => return Err(tcav_core::CoreError::io("creating", dir, e).into()),
        }
    }
}

/// The self-contained report's file name in a run folder.
pub const REPORT_HTML: &str = "report.html";

/// Thumbnails shown per end (most and least sensitive) for each result.
const SENSITIVE_IMAGES: usize = 4;

/// For every result, the class test images whose mean directional
/// derivative (over the runs) toward the concept is highest and lowest,
/// read back from the derivatives written to the run folder. Columns of
/// those files follow the class's test images in layout order, as the TCAV
/// stage read them.
fn sensitive_images(
    report: &ExperimentReport,
    dir: &Path,
    prepared: &jobs::Prepared,
    per_end: usize,
) -> Result<Vec<tcav_report::SensitiveImages>> {
    let mut out = Vec::new();
    for row in &report.results {
        let Some(file) = &row.derivatives_file else { continue };
        let derivatives = tcav_core::matrix::read_safetensors(&dir.join(file), "derivatives")?;
        let images = prepared.train.images(tcav_core::Split::Test, &SetName::new(row.class.clone())?)?;
        if derivatives.cols() != images.len() || derivatives.rows() == 0 {
            return Err(ExperimentError::Mismatch(format!(
                "{file} has {} columns but class `{}` has {} test images",
                derivatives.cols(),
                row.class,
                images.len()
            )));
        }
        let mut means: Vec<(PathBuf, f64)> = (0..images.len())
            .map(|j| {
                let sum: f64 = derivatives.iter_rows().map(|r| f64::from(r[j])).sum();
                (images[j].clone(), sum / derivatives.rows() as f64)
            })
            .collect();
        means.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let most = means.iter().take(per_end).cloned().collect();
        let least = means.iter().rev().take(per_end).cloned().collect();
        out.push(tcav_report::SensitiveImages {
            layer: row.layer.clone(),
            class: row.class.clone(),
            concept: row.concept.clone(),
            most,
            least,
        });
    }
    Ok(out)
}

fn reliance_line(reliance: &[jobs::Reliance]) -> String {
    if reliance.is_empty() {
        return "not measured".into();
    }
    reliance
        .iter()
        .map(|r| {
            format!(
                "{}: accuracy {:.1}% → {:.1}% without it",
                r.cue,
                100.0 * r.accuracy,
                100.0 * r.accuracy_without_cue
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The report's one-line description of the design and what is compared.
fn design_line(tcav_config: &TcavConfig) -> String {
    let relative = if tcav_config.relative.is_empty() {
        String::new()
    } else {
        "; relative rows (A vs B) against the random pairs' values (prediction-interval t, N − 1 df)".to_string()
    };
    format!(
        "{}; {}{relative}",
        match &tcav_config.baseline {
            config::Baseline::AllPairs => {
                "all-pairs baseline (each unordered pair of random sets fitted once; reverse = negated CAV)".to_string()
            }
            config::Baseline::Ring => "ring baseline (random_j vs random_j+1)".to_string(),
            config::Baseline::SingleCounterpart(name) => {
                format!("single-counterpart baseline ({name} vs each other random set)")
            }
        },
        match tcav_config.test.run_level() {
            Some(_) => "run-level test on per-run TCAV scores".to_string(),
            None => format!(
                "concept set as the unit: the {} averaged over its runs, against random sets acting as concepts",
                serde_plain(&tcav_config.statistic)
            ),
        }
    )
}

const DERIVATIVES_DIR: &str = "derivatives";

/// Copies a folder tree (files written atomically), so the run folder owns
/// its files and editing them cannot damage the store.
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    for file in tcav_core::store::files_in(from)? {
        let bytes =
            std::fs::read(from.join(&file)).map_err(|e| tcav_core::CoreError::io("reading", from.join(&file), e))?;
        write_atomic(&to.join(&file), &bytes)?;
    }
    Ok(())
}

/// Writes `derivatives/<layer>/<class>/<concept>.safetensors`: the
/// per-image directional derivatives (runs × class images) behind each
/// result, readable with `safetensors.numpy.load_file`.
fn write_derivatives(dir: &Path, derivatives: &[tcav::Derivatives]) -> Result<()> {
    for d in derivatives {
        let path =
            dir.join(DERIVATIVES_DIR).join(&d.layer).join(d.class.as_str()).join(format!("{}.safetensors", d.concept));
        let metadata = std::collections::HashMap::from([
            ("layer".to_string(), d.layer.clone()),
            ("class".to_string(), d.class.to_string()),
            ("concept".to_string(), d.concept.clone()),
        ]);
        tcav_core::matrix::write_safetensors(&path, &[("derivatives", &d.values)], metadata)?;
    }
    Ok(())
}

/// The serde name of a unit enum value (`Correction::Bonferroni` →
/// `"bonferroni"`), as written in configs.
fn serde_plain<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(e) => e.to_string(),
    }
}
