//! The TCAV stage of an experiment: activations, gradients, CAVs, scores,
//! and the statistics that turn scores into verdicts.
//!
//! Random runs: with random sets `r_0..r_{N-1}`, run `j` scores a concept
//! with the CAV (concept vs `r_j`). The baseline is built by the configured
//! [`Baseline`] design; with the default, all pairs, one CAV is fitted per
//! unordered pair of random sets and the reverse direction is that CAV
//! negated, so `N(N−1)` baseline scores cost `N(N−1)/2` fits.

use std::collections::BTreeMap;
use std::path::PathBuf;

use rayon::prelude::*;
use serde::Serialize;
use tcav_activations::{ACTIVATIONS, ActivationCache, ImageRef, read_rows};
use tcav_cav::{Cav, CavLabel, directional_derivatives, fit_cav, is_reliable, tcav_magnitude, tcav_score};
use tcav_core::store::{ArtifactKey, ArtifactStore, KeyBuilder};
use tcav_core::{Matrix, SetName, Split, seed};
use tcav_model::BottleneckModel;
use tcav_report::{ConceptResult, StabilityPoint, StabilityRow, Verdict};
use tcav_stats::{
    Direction, TTest, adjust, baseline_spread, cohens_d, mann_whitney_u, summarize, two_sample_ttest,
    unit_rank_p_value, unit_ttest,
};

use crate::config::{Baseline, Statistic, TcavConfig};
use crate::error::{ExperimentError, Result};
use crate::jobs::Prepared;

/// Everything TCAV needs to know about the sets, resolved from the data.
pub struct Sets {
    /// Classes to explain.
    pub classes: Vec<SetName>,
    /// Concepts to test.
    pub concepts: Vec<SetName>,
    /// Random sets, one per random run.
    pub random_sets: Vec<SetName>,
}

/// One fitted CAV's record, for `cavs.json`.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct CavRecord {
    /// The CAV's metadata (layer, sets, estimator, seed, accuracy).
    #[serde(flatten)]
    pub cav: Cav,
    /// Its artifact key.
    pub key: ArtifactKey,
}

/// The per-image directional derivatives behind one (layer, class,
/// concept) result: one row per random run, one column per class image.
pub struct Derivatives {
    /// Bottleneck layer.
    pub layer: String,
    /// Class whose logit was differentiated.
    pub class: SetName,
    /// Concept, or `baseline` for the random-vs-random runs.
    pub concept: String,
    /// Runs × images.
    pub values: Matrix,
}

/// Scores and CAVs of the whole experiment.
pub struct TcavOutcome {
    /// One row per (class, layer, concept), with p-values adjusted over all.
    pub results: Vec<ConceptResult>,
    /// How each result's p-value and verdict move with the number of runs.
    pub stability: Vec<StabilityRow>,
    /// Every CAV fitted.
    pub cavs: Vec<CavRecord>,
    /// The directional derivatives behind every result and baseline.
    pub derivatives: Vec<Derivatives>,
    /// Batched backward passes actually run (0 when all came from the store).
    pub backward_passes: usize,
}

/// A run: which fitted CAV (`positive` vs `negative`), and whether it is
/// used negated, in which case the run scores `negative` vs `positive`.
#[derive(Clone, Debug, PartialEq)]
struct Run {
    positive: SetName,
    negative: SetName,
    negated: bool,
}

impl Run {
    /// The (positive, negative) sets of what the run scores.
    fn scored(&self) -> (&SetName, &SetName) {
        if self.negated { (&self.negative, &self.positive) } else { (&self.positive, &self.negative) }
    }
}

/// The CAVs a layer needs, and how the runs use them.
#[derive(Debug)]
struct Design {
    /// Random sets concepts are scored against, one run each.
    concept_negatives: Vec<SetName>,
    /// Baseline runs.
    baseline_runs: Vec<Run>,
}

impl Design {
    fn new(random_sets: &[SetName], baseline: &Baseline) -> Result<Design> {
        let n = random_sets.len();
        let run = |i: usize, j: usize, negated: bool| Run {
            positive: random_sets[i].clone(),
            negative: random_sets[j].clone(),
            negated,
        };
        Ok(match baseline {
            Baseline::AllPairs => Design {
                concept_negatives: random_sets.to_vec(),
                baseline_runs: (0..n)
                    .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
                    // Each pair is fitted in the direction its names sort,
                    // so results do not depend on the order sets are listed.
                    .map(|(i, j)| if random_sets[i] < random_sets[j] { run(i, j, false) } else { run(j, i, true) })
                    .collect(),
            },
            Baseline::Ring => Design {
                concept_negatives: random_sets.to_vec(),
                baseline_runs: (0..n).map(|j| run(j, (j + 1) % n, false)).collect(),
            },
            Baseline::SingleCounterpart(name) => {
                let c = random_sets.iter().position(|r| r.as_str() == name).ok_or_else(|| {
                    ExperimentError::Mismatch(format!(
                        "tcav.baseline.single-counterpart = `{name}` is not among the random sets used ({})",
                        random_sets.iter().map(SetName::as_str).collect::<Vec<_>>().join(", ")
                    ))
                })?;
                Design {
                    concept_negatives: random_sets.iter().filter(|r| r.as_str() != name).cloned().collect(),
                    baseline_runs: (0..n).filter(|&j| j != c).map(|j| run(c, j, false)).collect(),
                }
            }
        })
    }

    /// Every CAV to fit: (positive, negative), each unordered pair once.
    fn fits(&self, concepts: &[SetName]) -> Vec<(SetName, SetName)> {
        let mut fits: Vec<(SetName, SetName)> =
            concepts.iter().flat_map(|c| self.concept_negatives.iter().map(move |r| (c.clone(), r.clone()))).collect();
        for run in self.baseline_runs.iter().filter(|r| !r.negated) {
            fits.push((run.positive.clone(), run.negative.clone()));
        }
        fits
    }
}

fn set_digest(images: &[ImageRef]) -> String {
    let mut key = KeyBuilder::new("image-set");
    for image in images {
        key.content("image", &image.hash);
    }
    key.finish().to_string()
}

/// Runs TCAV for every layer, class and concept.
pub fn run<M: BottleneckModel>(
    model: &M,
    model_key: &ArtifactKey,
    prepared: &Prepared,
    sets: &Sets,
    config: &TcavConfig,
    master_seed: u64,
    store: &ArtifactStore,
) -> Result<TcavOutcome> {
    if sets.random_sets.len() < 3 {
        return Err(ExperimentError::Mismatch(format!(
            "{} random sets given; the random baseline needs at least 3 (set tcav.random_runs to 0 or >= 3, or add random sets)",
            sets.random_sets.len()
        )));
    }
    let design = Design::new(&sets.random_sets, &config.baseline)?;
    let index_of = |set: &SetName| sets.random_sets.iter().position(|r| r == set).unwrap_or(usize::MAX);
    let fits = design.fits(&sets.concepts);
    let baseline_sets: Vec<(usize, usize)> =
        design.baseline_runs.iter().map(|r| r.scored()).map(|(p, n)| (index_of(p), index_of(n))).collect();
    let cache = ActivationCache::new(model, model_key.clone(), store.clone(), config.batch_size);

    let mut set_images = BTreeMap::new();
    for set in sets.concepts.iter().chain(&sets.random_sets) {
        set_images.insert(set.clone(), ImageRef::hash_all(&prepared.sets.images(set)?)?);
    }
    let mut class_images = BTreeMap::new();
    for class in &sets.classes {
        class_images.insert(class.clone(), ImageRef::hash_all(&prepared.train.images(Split::Test, class)?)?);
    }

    let mut raw_rows = Vec::new();
    let mut cav_records = Vec::new();
    let mut derivatives = Vec::new();
    for layer in &config.layers {
        model.layer_index(layer)?;
        let span = tracing::info_span!("layer", layer = layer.as_str());
        let _entered = span.enter();

        // Activations go to the cache on disk; each CAV job reads just its
        // two sets, so memory holds a few sets, not the whole layer.
        let mut files: BTreeMap<SetName, Vec<PathBuf>> = BTreeMap::new();
        for (set, images) in &set_images {
            files.insert(set.clone(), cache.activation_files(layer, images, &format!("set `{set}`"))?);
        }
        let fitted: Vec<((SetName, SetName), Cav, ArtifactKey)> = fits
            .par_iter()
            .map(|(positive, negative)| {
                let positive_side = (positive, set_images[positive].as_slice(), files[positive].as_slice());
                let negative_side = (negative, set_images[negative].as_slice(), files[negative].as_slice());
                let (cav, key) =
                    cached_cav(layer, positive_side, negative_side, model_key, config, master_seed, store)?;
                Ok(((positive.clone(), negative.clone()), cav, key))
            })
            .collect::<Result<_>>()?;
        let cav_of: BTreeMap<(&SetName, &SetName), &Cav> =
            fitted.iter().map(|((p, n), cav, _)| ((p, n), cav)).collect();
        let cav_for = |run: &Run| cav_of[&(&run.positive, &run.negative)];
        tracing::info!(cavs = fitted.len(), "CAVs ready");

        for class in &sets.classes {
            // One class's gradients at one layer are in memory at a time.
            let grads = cache.logit_gradients(layer, class.as_str(), &class_images[class])?;
            let run_derivatives = |run: &Run| -> Result<Vec<f64>> {
                let d = directional_derivatives(&grads, cav_for(run))?;
                // Negating the CAV negates every derivative exactly.
                Ok(if run.negated { d.into_iter().map(|v| -v).collect() } else { d })
            };
            let baseline_derivatives: Vec<Vec<f64>> =
                design.baseline_runs.iter().map(run_derivatives).collect::<Result<_>>()?;
            let baseline: Vec<f64> = baseline_derivatives.iter().map(|d| tcav_score(d)).collect();
            let baseline_values: Vec<f64> =
                baseline_derivatives.iter().map(|d| statistic(config.statistic, d)).collect();
            derivatives.push(to_matrix(layer, class, "baseline", &baseline_derivatives)?);
            for concept in &sets.concepts {
                let runs: Vec<Run> = design
                    .concept_negatives
                    .iter()
                    .map(|r| Run { positive: concept.clone(), negative: r.clone(), negated: false })
                    .collect();
                let per_run: Vec<Vec<f64>> = runs.iter().map(run_derivatives).collect::<Result<_>>()?;
                let accuracies: Vec<f64> = runs.iter().map(|r| cav_for(r).holdout_accuracy).collect();
                let file = derivatives_file(layer, class, concept.as_str());
                derivatives.push(to_matrix(layer, class, concept.as_str(), &per_run)?);
                raw_rows.push(RawRow {
                    class: class.clone(),
                    layer: layer.clone(),
                    concept: concept.clone(),
                    scores: per_run.iter().map(|d| tcav_score(d)).collect(),
                    magnitudes: per_run.iter().map(|d| tcav_magnitude(d)).collect(),
                    values: per_run.iter().map(|d| statistic(config.statistic, d)).collect(),
                    baseline_values: baseline_values.clone(),
                    negatives: design.concept_negatives.iter().map(index_of).collect(),
                    baseline: baseline.clone(),
                    baseline_sets: baseline_sets.clone(),
                    accuracies,
                    derivatives_file: file,
                });
            }
        }
        cav_records.extend(fitted.into_iter().map(|(_, cav, key)| CavRecord { cav, key }));
    }

    let (results, stability) = statistics(&raw_rows, config, sets.random_sets.len())?;
    Ok(TcavOutcome { results, stability, cavs: cav_records, derivatives, backward_passes: cache.backward_passes() })
}

fn to_matrix(layer: &str, class: &SetName, concept: &str, runs: &[Vec<f64>]) -> Result<Derivatives> {
    let cols = runs.first().map_or(0, Vec::len);
    let data: Vec<f32> = runs.iter().flatten().map(|&v| v as f32).collect();
    let values = Matrix::new(runs.len(), cols, data).ok_or_else(|| {
        ExperimentError::Mismatch(format!("runs of {layer}/{class}/{concept} scored different numbers of images"))
    })?;
    Ok(Derivatives { layer: layer.to_string(), class: class.clone(), concept: concept.to_string(), values })
}

fn cached_cav(
    layer: &str,
    (concept, concept_images, concept_files): (&SetName, &[ImageRef], &[PathBuf]),
    (negative, negative_images, negative_files): (&SetName, &[ImageRef], &[PathBuf]),
    model_key: &ArtifactKey,
    config: &TcavConfig,
    master_seed: u64,
    store: &ArtifactStore,
) -> Result<(Cav, ArtifactKey)> {
    let cav_seed = seed::derive(master_seed, &format!("cav/{layer}/{concept}/{negative}"));
    let key = KeyBuilder::new("cav")
        .param("version", &tcav_cav::OUTPUT_VERSION)
        .input("model", model_key)
        .param("layer", layer)
        .param("concept", concept)
        .content("concept_images", &set_digest(concept_images))
        .param("negative", negative)
        .content("negative_images", &set_digest(negative_images))
        .param("config", &config.cav)
        .param("seed", &cav_seed)
        .finish();
    let file = "cav.safetensors";
    let (dir, _) = store.get_or_build::<ExperimentError>("cavs", &key, |tmp| {
        let label = CavLabel { layer, concept: concept.as_str(), negative: negative.as_str() };
        let concept_acts = read_rows(concept_files, ACTIVATIONS)?;
        let negative_acts = read_rows(negative_files, ACTIVATIONS)?;
        let cav = fit_cav(label, &concept_acts, &negative_acts, &config.cav, cav_seed)?;
        cav.save(&tmp.join(file))?;
        Ok(())
    })?;
    Ok((Cav::load(&dir.join(file))?, key))
}

/// The per-run quantity a test compares, from one run's derivatives.
fn statistic(which: Statistic, derivatives: &[f64]) -> f64 {
    match which {
        Statistic::MeanDerivative => derivatives.iter().sum::<f64>() / derivatives.len().max(1) as f64,
        Statistic::SignCount => tcav_score(derivatives),
        Statistic::Magnitude => tcav_magnitude(derivatives),
    }
}

/// The relative path, inside a run folder, of one result's derivatives.
pub fn derivatives_file(layer: &str, class: &SetName, concept: &str) -> String {
    format!("derivatives/{layer}/{class}/{concept}.safetensors")
}

/// One (class, layer, concept) before statistics.
struct RawRow {
    class: SetName,
    layer: String,
    concept: SetName,
    /// Sign-count TCAV score per run.
    scores: Vec<f64>,
    /// Captum magnitude score per run.
    magnitudes: Vec<f64>,
    /// The test's per-run statistic for each concept run.
    values: Vec<f64>,
    /// The test's per-run statistic for each baseline run.
    baseline_values: Vec<f64>,
    /// Index of each run's negative random set.
    negatives: Vec<usize>,
    /// Baseline score per baseline run.
    baseline: Vec<f64>,
    /// (positive, negative) random-set indices of each baseline run.
    baseline_sets: Vec<(usize, usize)>,
    /// Held-out accuracy of each run's CAV.
    accuracies: Vec<f64>,
    derivatives_file: String,
}

impl RawRow {
    /// The concept's and the baseline's per-run `values`/`baseline`
    /// restricted to runs among the first `k` random sets.
    fn first_runs(&self, k: usize, concept: &[f64], baseline: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let scores = self.negatives.iter().zip(concept).filter(|(n, _)| **n < k).map(|(_, s)| *s).collect();
        let baseline =
            self.baseline_sets.iter().zip(baseline).filter(|((p, n), _)| *p < k && *n < k).map(|(_, s)| *s).collect();
        (scores, baseline)
    }

    /// The concept-as-unit comparison with the first `k` random sets: the
    /// concept's mean statistic, and each random set's mean statistic as a
    /// concept (over its baseline runs as the positive side).
    fn units(&self, k: usize) -> (f64, Vec<f64>) {
        let (concept, _) = self.first_runs(k, &self.values, &self.baseline_values);
        let mut sums = vec![(0.0, 0usize); k];
        for (&(p, n), &v) in self.baseline_sets.iter().zip(&self.baseline_values) {
            if p < k && n < k {
                sums[p].0 += v;
                sums[p].1 += 1;
            }
        }
        let reference =
            sums.into_iter().filter(|(_, count)| *count > 0).map(|(sum, count)| sum / count as f64).collect();
        (concept.iter().sum::<f64>() / concept.len().max(1) as f64, reference)
    }

    /// The chosen test with the first `k` random sets, and the matching
    /// rank test's p-value.
    fn test(&self, k: usize, config: &TcavConfig) -> Result<(TTest, f64)> {
        Ok(match config.test.run_level() {
            Some(kind) => {
                let (scores, baseline) = self.first_runs(k, &self.scores, &self.baseline);
                let rank = mann_whitney_u(&scores, &baseline)?.p_value;
                (two_sample_ttest(&scores, &baseline, kind)?, rank)
            }
            None => {
                let (concept, reference) = self.units(k);
                (unit_ttest(concept, &reference)?, unit_rank_p_value(concept, &reference)?)
            }
        })
    }
}

/// Numbers of random runs at which stability is reported: 5, 10, 20, 30,
/// 40, … up to and including `n`.
fn stability_steps(n: usize) -> Vec<usize> {
    let mut steps: Vec<usize> =
        [5, 10].into_iter().chain((2..).map(|k| 10 * k).take_while(|&k| k < n)).filter(|&k| k < n).collect();
    steps.push(n);
    steps
}

/// t-tests every row against its baseline, adjusts all p-values of the
/// experiment together, states each verdict's direction, and withholds a
/// verdict from concepts whose CAVs are near chance. Repeats the tests with
/// the first 5, 10, 20, … random sets to show how stable each verdict is.
fn statistics(
    rows: &[RawRow],
    config: &TcavConfig,
    n_random: usize,
) -> Result<(Vec<ConceptResult>, Vec<StabilityRow>)> {
    // (test, adjusted p, verdict, reliable, rank-test p) per row.
    type Tested = (TTest, f64, Verdict, bool, f64);
    let verdicts = |k: usize| -> Result<Vec<Tested>> {
        let mut tests = Vec::with_capacity(rows.len());
        let mut ranks = Vec::with_capacity(rows.len());
        for row in rows {
            let (test, rank) = row.test(k, config)?;
            tests.push(test);
            ranks.push(rank);
        }
        let adjusted = adjust(&tests.iter().map(|t| t.p_value).collect::<Vec<_>>(), config.correction);
        rows.iter()
            .zip(tests)
            .zip(adjusted)
            .zip(ranks)
            .map(|(((row, test), p_adjusted), rank)| {
                let reliable = is_reliable(&row.accuracies, config.accuracy_threshold);
                let verdict = if !reliable {
                    Verdict::Unreliable
                } else {
                    match Direction::classify(&test, p_adjusted, config.alpha)? {
                        Direction::Above => Verdict::Above,
                        Direction::Below => Verdict::Below,
                        Direction::NotSignificant => Verdict::NotSignificant,
                    }
                };
                Ok((test, p_adjusted, verdict, reliable, rank))
            })
            .collect()
    };

    let steps = stability_steps(n_random);
    let mut stability: Vec<StabilityRow> = rows
        .iter()
        .map(|row| StabilityRow {
            class: row.class.to_string(),
            layer: row.layer.clone(),
            concept: row.concept.to_string(),
            points: Vec::new(),
        })
        .collect();
    for &k in &steps {
        // The baseline needs at least three random sets.
        if k < 3 {
            continue;
        }
        for (point, (test, p_adjusted, verdict, _, _)) in stability.iter_mut().zip(verdicts(k)?) {
            point.points.push(StabilityPoint { runs: k, p_value: test.p_value, p_adjusted, verdict });
        }
    }

    let mut results = Vec::with_capacity(rows.len());
    for (row, (test, p_adjusted, verdict, reliable, rank)) in rows.iter().zip(verdicts(n_random)?) {
        let concept = summarize(&row.scores)?;
        let baseline = summarize(&row.baseline)?;
        let magnitude = summarize(&row.magnitudes)?;
        results.push(ConceptResult {
            class: row.class.to_string(),
            layer: row.layer.clone(),
            concept: row.concept.to_string(),
            scores: row.scores.clone(),
            mean: concept.mean,
            std: concept.std,
            baseline_scores: row.baseline.clone(),
            baseline_mean: baseline.mean,
            baseline_std: baseline.std,
            cav_accuracy_mean: row.accuracies.iter().sum::<f64>() / row.accuracies.len() as f64,
            t: test.t,
            p_value: test.p_value,
            p_adjusted,
            verdict,
            ci95_low: Some(concept.ci95_low),
            ci95_high: Some(concept.ci95_high),
            cohens_d: Some(cohens_d(&row.scores, &row.baseline)?),
            magnitude_mean: Some(magnitude.mean),
            magnitude_std: Some(magnitude.std),
            rank_p_value: Some(rank),
            baseline_extreme_fraction: Some(baseline_spread(&row.baseline)?.extreme_fraction),
            reliable,
            derivatives_file: Some(row.derivatives_file.clone()),
        });
    }
    Ok((results, stability))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(prefix: &str, n: usize) -> Vec<SetName> {
        (0..n).map(|i| SetName::new(format!("{prefix}{i}")).unwrap()).collect()
    }

    #[test]
    fn all_pairs_fits_each_unordered_pair_once_and_uses_both_directions() {
        let random = names("random_", 5);
        let design = Design::new(&random, &Baseline::AllPairs).unwrap();
        assert_eq!(design.baseline_runs.len(), 20);
        let fits = design.fits(&names("c", 2));
        assert_eq!(fits.len(), 2 * 5 + 10, "10 unordered pairs, each fitted once");
        for i in 0..5 {
            for j in 0..5 {
                if i == j {
                    continue;
                }
                let scored = design.baseline_runs.iter().filter(|r| r.scored() == (&random[i], &random[j])).count();
                assert_eq!(scored, 1, "exactly one run scores {i} vs {j}");
                let uses = design
                    .baseline_runs
                    .iter()
                    .filter(|r| {
                        (r.positive == random[i] && r.negative == random[j] && !r.negated)
                            || (r.positive == random[j] && r.negative == random[i] && r.negated)
                    })
                    .count();
                assert_eq!(uses, 1, "ordered pair {i}->{j}");
            }
        }
    }

    fn row(values: Vec<f64>, baseline_sets: Vec<(usize, usize)>, baseline_values: Vec<f64>) -> RawRow {
        RawRow {
            class: SetName::new("c").unwrap(),
            layer: "l".into(),
            concept: SetName::new("x").unwrap(),
            scores: values.clone(),
            magnitudes: values.clone(),
            negatives: (0..values.len()).collect(),
            values,
            baseline: baseline_values.clone(),
            baseline_values,
            baseline_sets,
            accuracies: vec![1.0],
            derivatives_file: String::new(),
        }
    }

    #[test]
    fn units_average_each_random_set_over_its_runs_as_the_positive_side() {
        // Three random sets, all ordered pairs; set 0 as positive scores
        // 0.3 and 0.5, set 1 scores -0.3 and 0.1, set 2 scores -0.5, -0.1.
        let pairs = vec![(0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1)];
        let r = row(vec![1.0, 2.0, 3.0], pairs, vec![0.3, 0.5, -0.3, 0.1, -0.5, -0.1]);
        let (concept, reference) = r.units(3);
        assert_eq!(concept, 2.0);
        let expected = [0.4, -0.1, -0.3];
        for (got, want) in reference.iter().zip(expected) {
            assert!((got - want).abs() < 1e-12, "{reference:?}");
        }
        // With the first two random sets only, set 2's runs drop out.
        let (concept, reference) = r.units(2);
        assert_eq!(concept, 1.5);
        assert_eq!(reference.len(), 2);
    }

    #[test]
    fn stability_steps_end_at_the_number_of_runs() {
        assert_eq!(stability_steps(30), [5, 10, 20, 30]);
        assert_eq!(stability_steps(10), [5, 10]);
        assert_eq!(stability_steps(7), [5, 7]);
        assert_eq!(stability_steps(45), [5, 10, 20, 30, 40, 45]);
    }

    #[test]
    fn ring_and_single_counterpart_designs() {
        let random = names("random_", 4);
        let ring = Design::new(&random, &Baseline::Ring).unwrap();
        assert_eq!(ring.baseline_runs.len(), 4);
        for r in &random {
            assert_eq!(ring.baseline_runs.iter().filter(|run| &run.positive == r).count(), 1);
            assert_eq!(ring.baseline_runs.iter().filter(|run| &run.negative == r).count(), 1);
        }
        let single = Design::new(&random, &Baseline::SingleCounterpart("random_2".into())).unwrap();
        assert_eq!(single.concept_negatives.len(), 3);
        assert!(single.concept_negatives.iter().all(|r| r.as_str() != "random_2"));
        assert!(single.baseline_runs.iter().all(|run| run.positive.as_str() == "random_2" && !run.negated));
        let err = Design::new(&random, &Baseline::SingleCounterpart("nope".into())).unwrap_err().to_string();
        assert!(err.contains("nope") && err.contains("random_0"), "{err}");
    }
}
