//! Time per CAV fit, per estimator, at TCAV's usual shape: 60 training rows
//! (38 images per set, 8 of each held out) and wide bottlenecks (8192 and
//! 65536 activation values). The primal/dual pair shows what solving the
//! logistic CAV over one coefficient per row saves.
//!
//! `cargo bench -p tcav-cav --bench fit` (add a filter such as `logistic`).

#![allow(missing_docs, clippy::unwrap_used, reason = "a benchmark: a failed unwrap is a failed run")]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tcav_cav::{CavConfig, CavLabel, Estimator, LogisticConfig, SgdHingeConfig, Solver, fit_cav};
use tcav_core::Matrix;

/// ReLU-like activations: non-negative, with the concept adding a weak
/// shift on a random tenth of the units.
fn activations(n: usize, d: usize, concept: bool, rng: &mut ChaCha8Rng, pattern: &[bool]) -> Matrix {
    let data = (0..n * d)
        .map(|k| {
            let shift = if concept && pattern[k % d] { 0.3 } else { 0.0 };
            (rng.random_range(-1.0f32..1.0) + shift).max(0.0)
        })
        .collect();
    Matrix::new(n, d, data).unwrap()
}

fn fits(c: &mut Criterion) {
    let logistic = |solver| Estimator::Logistic(LogisticConfig { solver, ..LogisticConfig::default() });
    let estimators = [
        ("logistic-primal", logistic(Solver::Primal)),
        ("logistic-dual", logistic(Solver::Dual)),
        ("sgd-hinge", Estimator::SgdHinge(SgdHingeConfig::default())),
        ("mean-difference", Estimator::MeanDifference {}),
        ("pattern", Estimator::Pattern {}),
    ];
    let mut group = c.benchmark_group("cav_fit_60_rows");
    group.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5));
    for d in [8192, 65536] {
        let mut rng = ChaCha8Rng::seed_from_u64(d as u64);
        let pattern: Vec<bool> = (0..d).map(|_| rng.random_bool(0.1)).collect();
        let concept = activations(38, d, true, &mut rng, &pattern);
        let negative = activations(38, d, false, &mut rng, &pattern);
        let label = CavLabel { layer: "bench", concept: "concept", negative: "random" };
        for (name, estimator) in &estimators {
            let config = CavConfig { estimator: estimator.clone(), ..CavConfig::default() };
            group.bench_with_input(BenchmarkId::new(*name, d), &config, |b, config| {
                b.iter(|| fit_cav(label, black_box(&concept), black_box(&negative), config, 7).unwrap())
            });
        }
    }
    group.finish();
}

criterion_group!(benches, fits);
criterion_main!(benches);
