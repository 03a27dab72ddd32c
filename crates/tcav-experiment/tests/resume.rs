//! A run killed at any moment (here: mid-training, then mid-CAV-fitting)
//! and started again finishes with the results of an uninterrupted run.
//! The `tcav` binary is killed with SIGKILL, so nothing gets to clean up.

#![allow(clippy::unwrap_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CONFIG: &str = r#"name = "resume"
seed = 3
[data]
source = "builtin"
[data.generator]
seed = 3
image_size = 32
images_per_class = 40
concept_images = 10
random_sets = 6
random_set_images = 10
[preprocess]
size = 24
[train]
epochs = 8
[tcav]
layers = ["conv2", "conv3"]
"#;

fn tcav(config: &Path, store: &Path, runs: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tcav"));
    command
        .arg("run")
        .arg(config)
        .arg("--store")
        .arg(store)
        .arg("--runs")
        .arg(runs)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

/// Starts a run and kills it as soon as `stage_started` holds; returns
/// false when the run finished first.
fn kill_when(mut command: Command, stage_started: impl Fn() -> bool) -> bool {
    let mut child: Child = command.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    while Instant::now() < deadline {
        if stage_started() {
            child.kill().unwrap();
            child.wait().unwrap();
            return true;
        }
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    panic!("the run neither reached the stage nor finished in 300 s");
}

/// Whether a job of `kind` is being built (its temporary folder exists).
fn building(store: &Path, kind: &str) -> bool {
    std::fs::read_dir(store.join(kind))
        .map(|entries| entries.flatten().any(|e| e.file_name().to_string_lossy().starts_with(".tmp-")))
        .unwrap_or(false)
}

/// Whether at least one artifact of `kind` is complete.
fn some_complete(store: &Path, kind: &str) -> bool {
    std::fs::read_dir(store.join(kind))
        .map(|entries| entries.flatten().any(|e| e.path().join(tcav_core::store::COMPLETE_MARKER).is_file()))
        .unwrap_or(false)
}

fn only_run(runs: &Path) -> PathBuf {
    let experiment = runs.join("resume");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&experiment).unwrap().flatten().map(|e| e.path()).collect();
    assert_eq!(found.len(), 1, "exactly one finished run expected in {}", experiment.display());
    found.pop().unwrap()
}

#[test]
fn a_killed_run_resumes_to_the_results_of_an_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("experiment.toml");
    std::fs::write(&config, CONFIG).unwrap();

    let (store, runs) = (dir.path().join("store-killed"), dir.path().join("runs-killed"));
    assert!(
        kill_when(tcav(&config, &store, &runs), || building(&store, "train")),
        "the run finished before training could be interrupted"
    );
    assert!(!some_complete(&store, "train"), "the killed training must not have left a model");
    // Second interruption, during CAV fitting (best effort: on a fast
    // machine the stage may finish between two polls).
    let killed_twice = kill_when(tcav(&config, &store, &runs), || some_complete(&store, "cav-groups"));
    let status = tcav(&config, &store, &runs).status().unwrap();
    assert!(status.success());

    let (clean_store, clean_runs) = (dir.path().join("store-clean"), dir.path().join("runs-clean"));
    assert!(tcav(&config, &clean_store, &clean_runs).status().unwrap().success());

    let resumed = tcav_report::read_json(&only_run(&runs).join("report.json")).unwrap();
    let clean = tcav_report::read_json(&only_run(&clean_runs).join("report.json")).unwrap();
    assert_eq!(resumed.results, clean.results, "killed twice: {killed_twice}");
    assert_eq!(resumed.stability, clean.stability);
    let hashes = |run: &Path| tcav_core::store::hash_tree(&run.join("derivatives")).unwrap();
    assert_eq!(hashes(&only_run(&runs)), hashes(&only_run(&clean_runs)));
}
