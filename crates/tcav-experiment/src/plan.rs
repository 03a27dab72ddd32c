//! The stages a user can name, and the plan of a run (`--dry-run`): what
//! will run, what is in the store, and why.
//!
//! A plan builds nothing. It computes each job's key as a run would, looks
//! the key up in the store, and, for a job that will run, compares the
//! digests of its inputs with those recorded by the experiment's latest run
//! to say which input changed. A job whose key depends on an output that
//! does not exist yet (the classifier's key hashes the preprocessed
//! training images; TCAV's key hashes the model's weights) is planned as
//! running after that input, with what would let it be reused.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};
use tcav_core::store::{ArtifactStore, KeyBuilder};

use crate::config::{DataConfig, ExperimentConfig};
use crate::error::Result;
use crate::manifest::{JobRecord, MANIFEST_FILE, Manifest};
use crate::{Paths, jobs};

/// A stage of the experiment, as `--force` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    /// Generating the built-in images (folder data is only fingerprinted).
    Data,
    /// Preprocessing, and the counterfactual test images of reliance jobs.
    Preprocess,
    /// Training the classifier.
    Train,
    /// Measuring the classifier's reliance on cues.
    Reliance,
    /// The activation and gradient cache.
    Activations,
    /// Fitting CAVs.
    Cavs,
    /// Scores and statistics.
    Tcav,
}

impl Stage {
    /// The artifact kinds of this stage in the store.
    pub fn kinds(self) -> &'static [&'static str] {
        match self {
            Stage::Data => &["datagen"],
            Stage::Preprocess => &["preprocess", "counterfactual"],
            Stage::Train => &["train"],
            Stage::Reliance => &["reliance"],
            Stage::Activations => &["activations", "gradients"],
            Stage::Cavs => &["cav-groups"],
            Stage::Tcav => &["tcav"],
        }
    }

    /// Whether this stage reads, directly or not, the output of `other`
    /// (a stage depends on itself). The graph is a chain, except that
    /// reliance and the TCAV stages are two branches after training.
    pub fn depends_on(self, other: Stage) -> bool {
        let tcav_branch = |s: Stage| s >= Stage::Activations;
        match (self, other) {
            _ if self == other => true,
            (_, Stage::Data | Stage::Preprocess | Stage::Train) => self > other,
            (Stage::Reliance, _) | (_, Stage::Reliance) => false,
            _ => tcav_branch(self) && self > other,
        }
    }

    /// The artifact kinds `--force <self>` rebuilds: this stage's and every
    /// later stage's.
    pub fn forced_kinds(self) -> Vec<&'static str> {
        use clap::ValueEnum;
        Stage::value_variants().iter().filter(|s| s.depends_on(self)).flat_map(|s| s.kinds().iter().copied()).collect()
    }
}

/// What a plan says a job will do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Its output is in the store and intact: it will not run.
    Stored,
    /// It will run.
    WillRun,
    /// It will run because `--force` names it or a stage before it.
    Forced,
    /// Its key depends on an output that does not exist yet.
    AfterInputs,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Stored => "stored",
            Status::WillRun => "will run",
            Status::Forced => "forced",
            Status::AfterInputs => "will run?",
        })
    }
}

/// One job of a plan.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PlanStep {
    /// The job's stage (artifact kind).
    pub stage: String,
    /// Its key's first 12 hex digits, when it can be known before running.
    pub key: Option<String>,
    /// What will happen.
    pub status: Status,
    /// Why.
    pub why: String,
}

/// Renders a plan as an aligned table.
pub fn render_plan(steps: &[PlanStep]) -> String {
    let mut out = format!("{:<15} {:<13} {:<10} why\n", "job", "key", "status");
    for step in steps {
        out.push_str(&format!(
            "{:<15} {:<13} {:<10} {}\n",
            step.stage,
            step.key.as_deref().unwrap_or("?"),
            step.status.to_string(),
            step.why
        ));
    }
    out
}

/// The latest run of this experiment that left a manifest.
fn previous_run(paths: &Paths, experiment: &str) -> Option<Manifest> {
    let mut runs: Vec<_> = std::fs::read_dir(paths.runs.join(experiment)).ok()?.flatten().map(|e| e.path()).collect();
    runs.sort();
    runs.iter().rev().find_map(|dir| Manifest::read(&dir.join(MANIFEST_FILE)).ok())
}

struct Planner {
    store: ArtifactStore,
    previous: Option<Manifest>,
    force: Option<Stage>,
    steps: Vec<PlanStep>,
}

impl Planner {
    /// Plans one job whose key is known; returns whether it will run.
    fn job(&mut self, stage: Stage, kind: &str, key: &KeyBuilder) -> bool {
        let finished = key.finish();
        let (status, why) = if self.force.is_some_and(|f| stage.depends_on(f)) {
            (Status::Forced, format!("--force {}", self.force.map(stage_name).unwrap_or_default()))
        } else if self.store.contains(kind, &finished) {
            (Status::Stored, "in the store".to_string())
        } else {
            (Status::WillRun, self.why_missing(kind, key))
        };
        self.steps.push(PlanStep { stage: kind.to_string(), key: Some(finished.short().to_string()), status, why });
        status != Status::Stored
    }

    /// Plans a job whose key needs an output that is not there yet.
    fn after(&mut self, kind: &str, why: String) {
        let status = if self.force.is_some() { Status::Forced } else { Status::AfterInputs };
        self.steps.push(PlanStep { stage: kind.to_string(), key: None, status, why });
    }

    /// Which inputs differ from the latest run's job of the same kind.
    fn why_missing(&self, kind: &str, key: &KeyBuilder) -> String {
        let Some(previous) = &self.previous else {
            return "not in the store (no earlier run of this experiment)".into();
        };
        let Some(before) = previous.jobs.iter().rev().find(|j: &&JobRecord| j.stage == kind) else {
            return format!("not in the store (run {} had no such job)", previous.run_id);
        };
        let now = key.parts();
        if before.key == key.finish() {
            return format!("same inputs as run {}, but its output is missing or corrupted", previous.run_id);
        }
        let changed: Vec<&str> = now
            .iter()
            .filter(|(name, digest)| before.inputs.get(*name) != Some(*digest))
            .map(|(name, _)| name.as_str())
            .chain(before.inputs.keys().filter(|name| !now.contains_key(*name)).map(String::as_str))
            .collect();
        format!("changed since run {}: {}", previous.run_id, changed.join(", "))
    }
}

fn stage_name(stage: Stage) -> String {
    use clap::ValueEnum;
    stage.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_default()
}

/// Plans a run without running anything.
pub fn plan(
    config: &ExperimentConfig,
    paths: &Paths,
    device: tch::Device,
    force: Option<Stage>,
) -> Result<Vec<PlanStep>> {
    crate::check_layers(config)?;
    let store = ArtifactStore::new(&paths.store);
    let previous = previous_run(paths, &config.name);
    let mut planner = Planner { store: store.clone(), previous, force, steps: Vec::new() };

    if let DataConfig::Folders { crawl: Some(definition), .. } = &config.data {
        planner.steps.push(PlanStep {
            stage: "crawl".into(),
            key: None,
            status: Status::WillRun,
            why: format!(
                "tops up the sets of {} over the network (full sets download nothing); planned on the folders as they are now",
                definition.display()
            ),
        });
    }
    let (raw, data_key) = jobs::data_plan(config, &store)?;
    let data_runs = match &config.data {
        DataConfig::Builtin { .. } => planner.job(Stage::Data, "datagen", &data_key),
        DataConfig::Folders { .. } => {
            planner.steps.push(PlanStep {
                stage: "data".into(),
                key: Some(raw.key.short().to_string()),
                status: Status::Stored,
                why: "the folders are fingerprinted by content; nothing is copied".into(),
            });
            false
        }
    };
    let sets = crate::resolve_sets(config, &raw)?;
    let preprocess_key = jobs::preprocess_key(&raw, config)?;
    let preprocess_runs = planner.job(Stage::Preprocess, "preprocess", &preprocess_key) || data_runs;
    let preprocessed = preprocess_key.finish();

    let mut model = None;
    if store.contains("preprocess", &preprocessed) {
        let classes: Vec<_> = raw.classes.iter().map(|(n, _)| n.clone()).collect();
        let train_key = jobs::train_key(&preprocessed, &classes, config, &store, device)?;
        if !planner.job(Stage::Train, "train", &train_key)
            && let Some(dir) = store.get("train", &train_key.finish())
        {
            let trained = tcav_train::TrainedModel::open(&dir)?;
            model = Some(jobs::model_key(&trained)?);
        }
    } else {
        planner.after(
            "train",
            "after preprocessing; the stored classifier is reused if the training images come out unchanged".into(),
        );
    }

    for &cue in &config.measure_reliance {
        if let DataConfig::Builtin { generator } = &config.data {
            let counterfactual = jobs::counterfactual_key(generator, cue, config);
            planner.job(Stage::Preprocess, "counterfactual", &counterfactual);
            match &model {
                Some(model) if !preprocess_runs => {
                    let key = jobs::reliance_key(model, &counterfactual.finish(), &preprocessed);
                    planner.job(Stage::Reliance, "reliance", &key);
                }
                _ => planner.after("reliance", format!("measures `{cue}` once the classifier is ready")),
            }
        }
    }
    match &model {
        Some(model) if !preprocess_runs => {
            let prepared = jobs::Prepared {
                key: preprocessed.clone(),
                dir: store.path("preprocess", &preprocessed),
                train: tcav_preprocess::train_layout(&store.path("preprocess", &preprocessed)),
                sets: tcav_preprocess::tcav_layout(&store.path("preprocess", &preprocessed)),
            };
            let key = crate::tcav_key(config, (&prepared, model, &sets), &store)?;
            if planner.job(Stage::Tcav, "tcav", &key) {
                planner.steps.push(PlanStep {
                    stage: "cav-groups".into(),
                    key: None,
                    status: if force.is_some_and(|f| Stage::Cavs.depends_on(f)) { Status::Forced } else { Status::WillRun },
                    why: "inside the TCAV job: activations, gradients and CAVs already in the store are reused, the rest computed".into(),
                });
            }
        }
        _ => planner.after("tcav", "after the classifier: activations, CAVs, scores and statistics".into()),
    }
    Ok(planner.steps)
}

/// `true` when `path` looks like a run manifest rather than a config.
pub fn is_manifest(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "json")
}
