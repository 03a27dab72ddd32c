//! Cost of the TCAV stage on the default experiment, phase by phase, and
//! as a ratio to the bare forward and backward passes it needs.
//!
//! Everything before TCAV (data, preprocessing, training) is prepared once
//! in `target/bench-store`; every timed iteration starts from an empty
//! activation/gradient/CAV cache, so it pays for every pass and every fit.
//! Run with `cargo xtask bench -- tcav` (add `--quick` for a fast look).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use tcav_activations::{ActivationCache, ImageRef};
use tcav_core::Split;
use tcav_core::store::ArtifactStore;
use tcav_experiment::{ExperimentConfig, Prepared, prepare, tcav};

fn bench_store() -> ArtifactStore {
    ArtifactStore::new(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-store"))
}

/// The default experiment with 60 random sets, so that 10 and 50 random
/// runs can be drawn from the same data.
fn config(random_runs: usize) -> ExperimentConfig {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../datasets/builtin/experiment.toml");
    let mut config = ExperimentConfig::load(&path).expect("the shipped default config loads");
    if let tcav_experiment::DataConfig::Builtin { generator } = &mut config.data {
        generator.random_sets = 50;
    }
    config.tcav.random_runs = random_runs;
    config.measure_reliance.clear();
    config
}

/// Forward passes for every concept and random set, backward passes for
/// every class's test images, at every layer: the passes TCAV cannot avoid.
fn bare_passes(ready: &Prepared, config: &ExperimentConfig, store: &ArtifactStore) -> (Duration, usize) {
    let model = ready.trained.load(tch::Device::Cpu).expect("model loads");
    let cache = ActivationCache::new(&model, ready.model_key.clone(), store.clone(), config.tcav.batch_size);
    let sets: Vec<Vec<ImageRef>> = ready
        .sets
        .concepts
        .iter()
        .chain(&ready.sets.random_sets)
        .map(|s| ImageRef::hash_all(&ready.prepared.sets.images(s).expect("set images")).expect("hash"))
        .collect();
    let classes: Vec<(String, Vec<ImageRef>)> = ready
        .sets
        .classes
        .iter()
        .map(|c| {
            let images = ready.prepared.train.images(Split::Test, c).expect("class images");
            (c.to_string(), ImageRef::hash_all(&images).expect("hash"))
        })
        .collect();
    let start = Instant::now();
    for layer in &config.tcav.layers {
        for images in &sets {
            cache.activation_files(layer, images, "set").expect("activations");
        }
        for (class, images) in &classes {
            cache.logit_gradients(layer, class, images).expect("gradients");
        }
    }
    (start.elapsed(), cache.backward_passes())
}

fn tcav_stage(c: &mut Criterion) {
    tch::set_num_threads(2);
    let store = bench_store();
    let mut group = c.benchmark_group("tcav_stage");
    group.sample_size(10).measurement_time(Duration::from_secs(20)).warm_up_time(Duration::from_secs(1));
    let mut summary = Vec::new();
    for runs in [10, 50] {
        let config = config(runs);
        let ready = prepare(&config, &store, tch::Device::Cpu).expect("pipeline up to the model");
        let model = ready.trained.load(tch::Device::Cpu).expect("model loads");

        group.bench_function(format!("bare_passes/{runs}_runs"), |b| {
            b.iter_custom(|iterations| {
                (0..iterations)
                    .map(|_| {
                        let dir = tempfile::tempdir().expect("tmp");
                        bare_passes(&ready, &config, &ArtifactStore::new(dir.path())).0
                    })
                    .sum()
            })
        });
        group.bench_function(format!("whole_stage/{runs}_runs"), |b| {
            b.iter_custom(|iterations| {
                (0..iterations)
                    .map(|_| {
                        let dir = tempfile::tempdir().expect("tmp");
                        let cold = ArtifactStore::new(dir.path());
                        let start = Instant::now();
                        tcav::run(
                            &model,
                            &ready.model_key,
                            &ready.prepared,
                            &ready.sets,
                            &config.tcav,
                            config.seed,
                            &cold,
                        )
                        .expect("tcav stage");
                        start.elapsed()
                    })
                    .sum()
            })
        });

        // Side by side, same process, three times each: the ratio and the
        // proof that every gradient is computed once.
        let mut bare = Vec::new();
        let mut whole = Vec::new();
        let mut refit = Vec::new();
        let mut warm = Vec::new();
        let mut backward = 0;
        let stage = |store: &ArtifactStore| {
            let start = Instant::now();
            let outcome =
                tcav::run(&model, &ready.model_key, &ready.prepared, &ready.sets, &config.tcav, config.seed, store)
                    .expect("stage");
            (start.elapsed(), outcome)
        };
        for _ in 0..3 {
            let dir = tempfile::tempdir().expect("tmp");
            let (t, n) = bare_passes(&ready, &config, &ArtifactStore::new(dir.path()));
            bare.push(t);
            let dir = tempfile::tempdir().expect("tmp");
            let cold = ArtifactStore::new(dir.path());
            let (t, outcome) = stage(&cold);
            whole.push(t);
            backward = outcome.backward_passes;
            assert_eq!(n, outcome.backward_passes, "the stage runs exactly the bare backward passes");
            // Phases: with activations and gradients cached but no CAVs, the
            // rerun pays for fitting, scoring and statistics; fully warm,
            // for loading CAVs, scoring and statistics only.
            std::fs::remove_dir_all(dir.path().join("cav-groups")).expect("CAV groups in the store");
            refit.push(stage(&cold).0);
            warm.push(stage(&cold).0);
        }
        refit.sort();
        warm.sort();
        bare.sort();
        whole.sort();
        let images: Vec<usize> = ready
            .sets
            .classes
            .iter()
            .map(|c| ready.prepared.train.images(Split::Test, c).expect("class images").len())
            .collect();
        let expected: usize =
            config.tcav.layers.len() * images.iter().map(|n| n.div_ceil(config.tcav.batch_size)).sum::<usize>();
        summary.push(format!(
            "{runs} random runs: stage {:.2} s / bare passes {:.2} s = {:.2}x; backward passes {backward} (layers x classes x ceil(images / batch) = {expected}); phases: CAV fitting {:.2} s, scoring + statistics (warm store) {:.2} s",
            whole[1].as_secs_f64(),
            bare[1].as_secs_f64(),
            whole[1].as_secs_f64() / bare[1].as_secs_f64(),
            refit[1].as_secs_f64() - warm[1].as_secs_f64(),
            warm[1].as_secs_f64(),
        ));
    }
    group.finish();
    for line in summary {
        println!("{line}");
    }
}

criterion_group!(benches, tcav_stage);
criterion_main!(benches);
