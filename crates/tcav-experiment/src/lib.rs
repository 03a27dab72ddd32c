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
pub mod tcav;
pub mod validation;

use std::path::{Path, PathBuf};

use serde::Serialize;
use tcav_core::SetName;
use tcav_core::store::{ArtifactKey, ArtifactStore, KeyBuilder, write_atomic, write_json};
use tcav_report::{ClassifierSummary, ExperimentReport};

pub use config::{DataConfig, ExperimentConfig, TcavConfig};
pub use error::{ExperimentError, Result};

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
}

/// The run's record of what it used, written to `run.json`.
#[derive(Serialize)]
struct RunRecord<'a> {
    experiment: &'a str,
    run_id: &'a str,
    seed: u64,
    device: String,
    artifacts: Vec<(&'static str, &'a ArtifactKey)>,
    store: &'a Path,
    backward_passes: usize,
    known_answer: &'a [(String, String)],
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

/// Refuses layer names the architecture lacks before any work is done, so
/// a typo never costs a training run.
fn check_layers(config: &ExperimentConfig) -> Result<()> {
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
    check_layers(config)?;
    let raw = jobs::raw_data(config, store)?;
    let class_names: Vec<SetName> = raw.classes.iter().map(|(n, _)| n.clone()).collect();
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

    let prepared = jobs::prepare(&raw, config, store)?;
    let (trained, model_key) = jobs::train(&prepared, &class_names, config, store, device)?;
    Ok(Prepared { raw, prepared, trained, model_key, sets })
}

/// Runs the whole experiment.
pub fn run_experiment(config: &ExperimentConfig, paths: &Paths, device: tch::Device) -> Result<RunOutcome> {
    let store = ArtifactStore::new(&paths.store);
    let config_key = KeyBuilder::new("experiment-config").param("config", config).finish();
    let run_id = format!("{}-{}", jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ"), config_key.short());
    tracing::info!(experiment = config.name.as_str(), run_id = run_id.as_str(), "starting");

    let Prepared { raw, prepared, trained, model_key, sets } = prepare(config, &store, device)?;
    let tcav_config = &config.tcav;
    let model = trained.load(device)?;
    let reliance = config
        .measure_reliance
        .iter()
        .map(|&cue| jobs::reliance(config, &prepared, &model, cue, &store))
        .collect::<Result<Vec<_>>>()?;
    let outcome = tcav::run(&model, &model_key, &prepared, &sets, tcav_config, config.seed, &store)?;

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
        results: outcome.results,
        estimator: tcav_config.cav.estimator.name().to_string(),
        design: format!(
            "{}; {}",
            match &tcav_config.baseline {
                config::Baseline::AllPairs => {
                    "all-pairs baseline (each unordered pair of random sets fitted once; reverse = negated CAV)"
                        .to_string()
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
        ),
        accuracy_threshold: tcav_config.accuracy_threshold,
        rank_test: match tcav_config.test.run_level() {
            Some(_) => "Mann-Whitney U, two-sided (concept runs vs baseline runs)".into(),
            None => "exact rank of the concept among random sets as concepts, two-sided (never below 2/(N+1))".into(),
        },
        stability: outcome.stability,
    };
    report.validate()?;

    let dir = paths.runs.join(&config.name).join(&run_id);
    std::fs::create_dir_all(&dir).map_err(|e| tcav_core::CoreError::io("creating", &dir, e))?;
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
    write_json(&dir.join("cavs.json"), &outcome.cavs)?;
    write_derivatives(&dir, &outcome.derivatives)?;
    write_json(&dir.join("classifier.json"), &trained.report)?;
    write_json(&dir.join("reliance.json"), &reliance)?;
    let resolved = toml::to_string_pretty(config).unwrap_or_else(|e| format!("# could not render config: {e}\n"));
    write_atomic(&dir.join("config.toml"), resolved.as_bytes())?;
    let record = RunRecord {
        experiment: &config.name,
        run_id: &run_id,
        seed: config.seed,
        device: format!("{device:?}"),
        artifacts: vec![("data", &raw.key), ("preprocess", &prepared.key), ("model", &model_key)],
        store: &paths.store,
        backward_passes: outcome.backward_passes,
        known_answer: &raw.known_answer,
    };
    write_json(&dir.join("run.json"), &record)?;
    tracing::info!(dir = %dir.display(), "run complete");
    Ok(RunOutcome { dir, report, table, charts, known_answer: raw.known_answer, reliance })
}

/// Writes `derivatives/<layer>/<class>/<concept>.safetensors`: the
/// per-image directional derivatives (runs × class images) behind each
/// result, readable with `safetensors.numpy.load_file`.
fn write_derivatives(dir: &Path, derivatives: &[tcav::Derivatives]) -> Result<()> {
    for d in derivatives {
        let path =
            dir.join("derivatives").join(&d.layer).join(d.class.as_str()).join(format!("{}.safetensors", d.concept));
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
