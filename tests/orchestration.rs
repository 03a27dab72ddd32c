//! The orchestrator as a build system: reruns do no work, a change
//! recomputes exactly what depends on it, damaged artifacts are rebuilt,
//! `--force` and `--dry-run` do what they say, and a manifest alone
//! reproduces a run. Each test counts the work the store saw.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tcav_core::store::Work;
use tcav_experiment::plan::{Status, plan};
use tcav_experiment::{ExperimentConfig, Manifest, Paths, RunOptions, RunOutcome, Stage, run_experiment_with};
use tcav_tests::{temp_dir, write_images};
use tch::Device;

/// A small built-in experiment: generated data, two layers, a few random
/// sets. Seconds, not minutes.
const SMALL_BUILTIN: &str = r#"name = "small"
seed = 7
[data]
source = "builtin"
[data.generator]
seed = 7
image_size = 32
images_per_class = 24
concept_images = 8
random_sets = 4
random_set_images = 8
[preprocess]
size = 24
[train]
epochs = 2
[tcav]
layers = ["conv2", "conv3"]
"#;

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("experiment.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn run(config_file: &Path, paths: &Paths, force: Option<Stage>) -> RunOutcome {
    let config = ExperimentConfig::load(config_file).unwrap();
    let options = RunOptions { config_file: config_file.to_path_buf(), force };
    run_experiment_with(&config, paths, Device::Cpu, &options).unwrap()
}

fn paths(dir: &Path, store: &str) -> Paths {
    Paths { store: dir.join(store), runs: dir.join("runs") }
}

/// Artifacts built per kind (kinds with nothing built are left out).
fn built(outcome: &RunOutcome) -> BTreeMap<String, usize> {
    outcome.manifest.work.iter().filter(|(_, w)| w.built > 0).map(|(k, w)| (k.clone(), w.built)).collect()
}

fn work(outcome: &RunOutcome, kind: &str) -> Work {
    outcome.manifest.work.get(kind).copied().unwrap_or_default()
}

#[test]
fn a_rerun_does_no_work_and_a_new_concept_computes_only_what_depends_on_it() {
    let dir = temp_dir();
    let root = dir.path();
    let config = crate::folders_experiment(root, "[tcav]\nlayers = [\"conv2\", \"conv3\"]\n");
    let paths = paths(root, "store");
    let first = run(&config, &paths, None);
    assert!(work(&first, "train").built == 1 && first.manifest.backward_passes > 0);

    let second = run(&config, &paths, None);
    assert_ne!(second.dir, first.dir, "each run gets its own folder, even within one second");
    assert_eq!(built(&second), BTreeMap::new(), "a rerun of an unchanged experiment must do no work");
    assert_eq!(second.manifest.backward_passes, 0);
    assert_eq!(second.report.results, first.report.results);
    assert_eq!(second.table, first.table.replace(&first.report.run_id, &second.report.run_id));

    // One more concept: 4 images.
    write_images(&root.join("concepts/green"), 4, 24, [20, 200, 30]);
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "concepts = { red = \"concepts/red\" }",
        "concepts = { red = \"concepts/red\", green = \"concepts/green\" }",
    );
    std::fs::write(&config, text).unwrap();
    let third = run(&config, &paths, None);
    // Preprocessing looks for duplicates across all sets, so it runs again;
    // the classifier's training images are unchanged, so it is reused.
    let layers = 2;
    assert_eq!(
        built(&third),
        BTreeMap::from([
            ("activations".to_string(), layers * 4),
            // One group per (layer, concept): the new concept's CAVs against
            // every random set.
            ("cav-groups".to_string(), layers),
            ("preprocess".to_string(), 1),
            ("tcav".to_string(), 1),
        ]),
        "only the new concept's activations and CAVs, and the statistics, may be computed"
    );
    assert_eq!(third.manifest.backward_passes, 0, "class gradients do not depend on concepts");
    // The old concept's numbers are the same; only the correction, which
    // now covers more tests, may change its adjusted p-values.
    for row in first.report.results.iter() {
        let again = third
            .report
            .results
            .iter()
            .find(|r| (&r.class, &r.layer, &r.concept) == (&row.class, &row.layer, &row.concept))
            .unwrap();
        assert_eq!(
            (&again.scores, again.p_value, &again.baseline_scores),
            (&row.scores, row.p_value, &row.baseline_scores)
        );
    }
    assert!(third.report.results.iter().any(|r| r.concept == "green"));
}

#[test]
fn changing_the_image_size_recomputes_everything_downstream_and_nothing_upstream() {
    let dir = temp_dir();
    let config = write_config(dir.path(), SMALL_BUILTIN);
    let paths = paths(dir.path(), "store");
    run(&config, &paths, None);
    std::fs::write(&config, SMALL_BUILTIN.replace("size = 24", "size = 16")).unwrap();

    // The plan says what will run and why, and runs nothing.
    let stored_before = tcav_core::store::hash_tree(&paths.store).unwrap().len();
    let steps = plan(&ExperimentConfig::load(&config).unwrap(), &paths, Device::Cpu, None).unwrap();
    let step = |kind: &str| steps.iter().find(|s| s.stage == kind).unwrap();
    assert_eq!(step("datagen").status, Status::Stored);
    assert_eq!(step("preprocess").status, Status::WillRun);
    assert!(
        step("preprocess").why.contains("changed since run") && step("preprocess").why.contains("config"),
        "{:?}",
        step("preprocess")
    );
    assert_eq!(step("train").status, Status::AfterInputs);
    assert_eq!(step("tcav").status, Status::AfterInputs);
    assert_eq!(
        tcav_core::store::hash_tree(&paths.store).unwrap().len(),
        stored_before,
        "a plan must not build anything"
    );

    let changed = run(&config, &paths, None);
    assert_eq!(work(&changed, "datagen"), Work { built: 0, reused: 1, corrupted: 0 });
    for kind in ["preprocess", "train", "tcav"] {
        assert_eq!(work(&changed, kind).built, 1, "{kind}");
    }
    assert_eq!(work(&changed, "activations").reused, 0, "a new model shares no activations");
    assert!(changed.manifest.backward_passes > 0);
}

#[test]
fn damaged_artifacts_are_detected_and_rebuilt_to_identical_results() {
    let dir = temp_dir();
    let config = write_config(dir.path(), SMALL_BUILTIN);
    let paths = paths(dir.path(), "store");
    let first = run(&config, &paths, None);

    // Truncate the classifier's weights, flip a bit in one cached
    // activation row, and damage the stored statistics and every CAV group.
    let only = |kind: &str| std::fs::read_dir(paths.store.join(kind)).unwrap().next().unwrap().unwrap().path();
    let weights = only("train").join(tcav_train::WEIGHTS_FILE);
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();
    let row = tcav_core::store::hash_tree(&paths.store.join("activations")).unwrap().into_keys().next().unwrap();
    let row = paths.store.join("activations").join(row);
    let mut bytes = std::fs::read(&row).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&row, bytes).unwrap();
    std::fs::write(only("tcav").join("outcome.json"), b"{").unwrap();
    // Damaged CAV groups make the TCAV stage read the activations again.
    let groups: Vec<PathBuf> = std::fs::read_dir(paths.store.join("cav-groups"))
        .unwrap()
        .map(|e| e.unwrap().path().join("cavs.safetensors"))
        .collect();
    for group in &groups {
        let bytes = std::fs::read(group).unwrap();
        std::fs::write(group, &bytes[..bytes.len() - 8]).unwrap();
    }

    let again = run(&config, &paths, None);
    assert_eq!(work(&again, "train"), Work { built: 1, reused: 0, corrupted: 1 });
    assert_eq!(work(&again, "tcav"), Work { built: 1, reused: 0, corrupted: 1 });
    assert_eq!(work(&again, "cav-groups").built, groups.len());
    assert_eq!(work(&again, "cav-groups").corrupted, groups.len());
    assert_eq!(work(&again, "activations").built, 1, "only the damaged row is recomputed");
    assert_eq!(again.report.results, first.report.results, "retraining is deterministic");
}

#[test]
fn force_reruns_a_stage_and_every_stage_after_it() {
    let dir = temp_dir();
    let config = write_config(dir.path(), SMALL_BUILTIN);
    let paths = paths(dir.path(), "store");
    let first = run(&config, &paths, None);
    let cavs = work(&first, "cav-groups").built;
    assert!(cavs > 0);

    let forced = run(&config, &paths, Some(Stage::Cavs));
    assert_eq!(
        built(&forced),
        BTreeMap::from([("cav-groups".to_string(), cavs), ("tcav".to_string(), 1)]),
        "CAVs and statistics rerun; data, model and activations do not"
    );
    assert_eq!(forced.report.results, first.report.results);
    let steps = plan(&ExperimentConfig::load(&config).unwrap(), &paths, Device::Cpu, Some(Stage::Train)).unwrap();
    let status = |kind: &str| steps.iter().find(|s| s.stage == kind).unwrap().status;
    assert_eq!(
        (status("datagen"), status("preprocess"), status("train")),
        (Status::Stored, Status::Stored, Status::Forced)
    );
    assert_eq!(status("tcav"), Status::Forced);
}

#[test]
fn a_manifest_alone_reproduces_the_run_bit_for_bit() {
    let dir = temp_dir();
    let config = write_config(dir.path(), SMALL_BUILTIN);
    let first = run(&config, &paths(dir.path(), "store-1"), None);
    let manifest_file = first.dir.join(tcav_experiment::MANIFEST_FILE);
    let manifest = Manifest::read(&manifest_file).unwrap();
    assert_eq!(manifest.seeds.master, 7);
    assert!(manifest.versions.crates.contains_key("tch") && !manifest.versions.libtorch.is_empty());
    assert!(manifest.jobs.iter().any(|j| j.stage == "train" && j.built));
    assert!(manifest.seconds_per_stage.contains_key("tcav"));

    // A fresh store, and nothing but the manifest's resolved config.
    std::fs::remove_file(&config).unwrap();
    let options = RunOptions { config_file: manifest_file.clone(), force: None };
    let second = run_experiment_with(&manifest.config, &paths(dir.path(), "store-2"), Device::Cpu, &options).unwrap();
    assert_eq!(work(&second, "train").built, 1, "the second run must recompute, not reuse");
    assert_eq!(second.report.results, first.report.results);
    let same_files = |name: &str| {
        manifest.files.iter().filter(|(f, _)| f.starts_with(name)).all(|(f, h)| second.manifest.files.get(f) == Some(h))
    };
    // (The report files name the run, so they differ in that one field.)
    for file in ["cavs.json", "derivatives/", "classifier.json", "reliance.json", "config.toml"] {
        assert!(same_files(file), "{file} differs between the run and its reproduction");
    }
}
