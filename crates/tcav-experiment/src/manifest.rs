//! The run manifest: everything needed to know what a run did and to do it
//! again, written as `manifest.json` in the run folder.
//!
//! It records the config as resolved (every default explicit), the seeds,
//! the versions of the tools and crates, libtorch and the device, every
//! job's key with a digest of each of its inputs, whether the job ran or
//! came from the store and how long it took, the work counted per artifact
//! kind, and the hash of every file of the run folder. `tcav run
//! manifest.json` runs its config again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tcav_core::store::{ArtifactKey, ArtifactStore, KeyBuilder, Work};

use crate::config::ExperimentConfig;
use crate::error::{ExperimentError, Result};

/// The manifest's file name in a run folder.
pub const MANIFEST_FILE: &str = "manifest.json";

/// One job of a run.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct JobRecord {
    /// The job's stage (its artifact kind in the store).
    pub stage: String,
    /// The artifact's key.
    pub key: ArtifactKey,
    /// A digest of each input part of the key (config section, input
    /// artifacts, code version, seed), so a later plan can say which changed.
    pub inputs: BTreeMap<String, String>,
    /// Whether the job ran (false: its output came from the store).
    pub built: bool,
    /// Wall-clock seconds, including reading a stored output.
    pub seconds: f64,
}

/// The jobs of one run, in the order they finished, and the run's
/// progress display (a bar of jobs done, naming the running stage; stages
/// with many items, like preprocessing and training, add their own bar
/// below it). Without a terminal the bar is not drawn and logs are plain.
#[derive(Debug, Default)]
pub struct JobLog {
    records: Mutex<Vec<JobRecord>>,
    progress: Option<tracing::Span>,
}

impl JobLog {
    /// A log that also drives a progress bar over `jobs` jobs.
    pub fn with_progress(experiment: &str, jobs: usize) -> Self {
        use tracing_indicatif::span_ext::IndicatifSpanExt;
        let span = tracing::info_span!("experiment", name = experiment);
        if let Ok(style) = tracing_indicatif::style::ProgressStyle::with_template(
            "{span_child_prefix}experiment {msg:<14} [{bar:30}] {pos}/{len} jobs, {elapsed} elapsed, ETA {eta}",
        ) {
            span.pb_set_style(&style);
        }
        span.pb_set_length(jobs as u64);
        span.pb_start();
        JobLog { records: Mutex::default(), progress: Some(span) }
    }

    /// The progress span, to enter while jobs run so that stage bars nest
    /// under it.
    pub fn span(&self) -> tracing::Span {
        self.progress.clone().unwrap_or_else(tracing::Span::none)
    }

    /// Runs (or fetches) the job `stage` keyed by `key` in `store`, and
    /// records it.
    pub fn job(
        &self,
        store: &ArtifactStore,
        stage: &str,
        key: &KeyBuilder,
        build: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<(PathBuf, ArtifactKey, bool)> {
        if let Some(span) = &self.progress {
            tracing_indicatif::span_ext::IndicatifSpanExt::pb_set_message(span, stage);
        }
        let started = Instant::now();
        let finished = key.finish();
        let (dir, built) = store.get_or_build::<ExperimentError>(stage, &finished, build)?;
        self.push(JobRecord {
            stage: stage.to_string(),
            key: finished.clone(),
            inputs: key.parts(),
            built,
            seconds: started.elapsed().as_secs_f64(),
        });
        Ok((dir, finished, built))
    }

    /// Records a job that does not store an artifact of its own (hashing
    /// the user's folders, say).
    pub fn push(&self, record: JobRecord) {
        use tracing_indicatif::span_ext::IndicatifSpanExt;
        if let Some(span) = &self.progress {
            span.pb_inc(1);
        }
        if let Ok(mut jobs) = self.records.lock() {
            jobs.push(record);
        }
    }

    /// The jobs recorded so far.
    pub fn records(&self) -> Vec<JobRecord> {
        self.records.lock().map(|j| j.clone()).unwrap_or_default()
    }
}

/// Versions of what produced a run.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Versions {
    /// This workspace's version.
    pub tcav_rs: String,
    /// The rustc that built the binary.
    pub rustc: String,
    /// Versions of the crates the numbers depend on, from Cargo.lock.
    pub crates: BTreeMap<String, String>,
    /// Each stage's output version (part of its artifacts' keys).
    pub stage_outputs: BTreeMap<String, u32>,
    /// libtorch's version, as its Python package or zip records it.
    pub libtorch: String,
    /// Where libtorch was loaded from.
    pub libtorch_path: Option<PathBuf>,
}

impl Versions {
    /// The versions of this binary and the libtorch it loaded.
    pub fn current() -> Self {
        let crates = env!("TCAV_LOCKED_VERSIONS")
            .split(',')
            .filter_map(|pair| pair.split_once('='))
            .map(|(name, version)| (name.to_string(), version.to_string()))
            .collect();
        let (libtorch, libtorch_path) = libtorch_version();
        Versions {
            tcav_rs: env!("CARGO_PKG_VERSION").to_string(),
            rustc: env!("TCAV_RUSTC_VERSION").to_string(),
            crates,
            stage_outputs: BTreeMap::from([
                ("datagen".to_string(), tcav_datagen::OUTPUT_VERSION),
                ("preprocess".to_string(), tcav_preprocess::OUTPUT_VERSION),
                ("train".to_string(), tcav_train::OUTPUT_VERSION),
                ("activations".to_string(), tcav_activations::OUTPUT_VERSION),
                ("cavs".to_string(), tcav_cav::OUTPUT_VERSION),
                ("tcav".to_string(), crate::TCAV_OUTPUT_VERSION),
            ]),
            libtorch,
            libtorch_path,
        }
    }
}

/// libtorch's version and folder, found from the shared library this
/// process loaded (so it is the one actually used, whatever the
/// environment says): the pip wheel's `torch/version.py`, or a libtorch
/// zip's `build-version`.
fn libtorch_version() -> (String, Option<PathBuf>) {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let Some(library) = maps
        .lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .find(|path| Path::new(path).file_name().is_some_and(|n| n.to_string_lossy().starts_with("libtorch_cpu")))
    else {
        return ("unknown (libtorch_cpu not found in /proc/self/maps)".into(), None);
    };
    let Some(root) = Path::new(library).parent().and_then(Path::parent) else {
        return ("unknown".into(), None);
    };
    let from_python = std::fs::read_to_string(root.join("version.py")).ok().and_then(|text| {
        text.lines().find_map(|l| {
            l.strip_prefix("__version__ = ").map(|v| v.trim_matches(|c| c == '\'' || c == '"').to_string())
        })
    });
    let from_zip = || std::fs::read_to_string(root.join("build-version")).ok().map(|v| v.trim().to_string());
    (from_python.or_else(from_zip).unwrap_or_else(|| "unknown".into()), Some(root.to_path_buf()))
}

/// The seeds of a run: the master seed, and how every other one derives
/// from it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Seeds {
    /// `seed` of the config.
    pub master: u64,
    /// The built-in generator's own seed, when the data are generated.
    pub datagen: Option<u64>,
    /// How the seeds of training and of each CAV are derived.
    pub derivation: String,
}

/// `manifest.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    /// The experiment's name.
    pub experiment: String,
    /// The run's id (its folder name).
    pub run_id: String,
    /// The config file the run was started from.
    pub config_file: PathBuf,
    /// The config as resolved: defaults explicit, folder paths absolute.
    pub config: ExperimentConfig,
    /// Seeds.
    pub seeds: Seeds,
    /// Tool, crate and libtorch versions.
    pub versions: Versions,
    /// The device the tensors ran on.
    pub device: String,
    /// Whether CUDA was available to this process.
    pub cuda_available: bool,
    /// The artifact store used.
    pub store: PathBuf,
    /// Every job, with its key, input digests, whether it ran, and its time.
    pub jobs: Vec<JobRecord>,
    /// Seconds per stage (summed over that stage's jobs).
    pub seconds_per_stage: BTreeMap<String, f64>,
    /// Artifacts built and reused per kind (CAVs and cache rows included).
    pub work: BTreeMap<String, Work>,
    /// Batched backward passes run (0 when every gradient came from the store).
    pub backward_passes: usize,
    /// Wall-clock seconds of the whole run.
    pub seconds: f64,
    /// Blake3 of every other file in the run folder, by relative path.
    pub files: BTreeMap<String, String>,
}

impl Manifest {
    /// Reads a manifest.
    pub fn read(path: &Path) -> Result<Manifest> {
        Ok(tcav_core::store::read_json(path)?)
    }
}

/// Sums the seconds of each stage's jobs.
pub fn seconds_per_stage(jobs: &[JobRecord]) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for job in jobs {
        *out.entry(job.stage.clone()).or_insert(0.0) += job.seconds;
    }
    out
}

/// Blake3 of every file under `dir` except the manifest, by relative path.
pub fn hash_run_folder(dir: &Path) -> Result<BTreeMap<String, String>> {
    let mut files = tcav_core::store::hash_tree(dir)?;
    files.remove(MANIFEST_FILE);
    Ok(files)
}
