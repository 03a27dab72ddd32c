//! The TCAV stage of an experiment: activations, gradients, CAVs, scores,
//! and the statistics that turn scores into verdicts.
//!
//! Random runs: with random sets `r_0..r_{N-1}`, run `j` scores a concept
//! with the CAV (concept vs `r_j`). The baseline is built by the configured
//! [`Baseline`] design; with the default, all pairs, one CAV is fitted per
//! unordered pair of random sets and the reverse direction is that CAV
//! negated, so `N(N−1)` baseline scores cost `N(N−1)/2` fits.
//!
//! Relative tests (`tcav.relative`, concept A vs concept B or vs the union
//! of the other concepts) have N runs too: run `j` fits (A vs B) with its
//! own seed. They are tested against the random-vs-random pairs of the
//! baseline (docs/STATISTICS.md).
//!
//! Cost: CAVs are stored in groups (a concept's CAVs, the baseline's, a
//! relative test's), one store artifact each; a layer's activations are
//! read once for all fits (up to [`SHARED_ACTIVATIONS_LIMIT`]); each CAV's
//! directional derivatives are computed once per class, in parallel.

use std::collections::BTreeMap;
use std::path::PathBuf;

use rayon::prelude::*;
use serde::Serialize;
use tcav_activations::{ACTIVATIONS, ActivationCache, ImageRef, read_rows};
use tcav_cav::{
    Cav, CavLabel, Gram, Rows, directional_derivatives, fit_cav_shared, is_reliable, tcav_magnitude, tcav_score,
};
use tcav_core::store::{ArtifactKey, ArtifactStore, KeyBuilder};
use tcav_core::{Matrix, SetName, Split, seed};
use tcav_model::BottleneckModel;
use tcav_report::{ConceptResult, StabilityPoint, StabilityRow, Verdict};
use tcav_stats::{
    Direction, TTest, adjust, baseline_spread, cohens_d, mann_whitney_u, summarize, two_sample_ttest,
    unit_rank_p_value, unit_ttest, unit_ttest_dependent,
};

use crate::config::{Baseline, OTHERS, RelativeTest, Statistic, TcavConfig};
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

    /// Every CAV to fit, in groups stored together: each concept against
    /// each of its random sets, each baseline pair once, and `runs()` CAVs
    /// per relative test.
    fn groups(&self, concepts: &[SetName], relative: &[Relative]) -> Vec<Vec<Fit>> {
        let mut groups: Vec<Vec<Fit>> =
            concepts.iter().map(|c| self.concept_negatives.iter().map(|r| Fit::single(c, r)).collect()).collect();
        groups.push(
            self.baseline_runs
                .iter()
                .filter(|r| !r.negated)
                .map(|run| Fit::single(&run.positive, &run.negative))
                .collect(),
        );
        for test in relative {
            groups.push((0..self.runs()).map(|j| test.fit(j)).collect());
        }
        groups
    }

    /// Runs per concept (and per relative test).
    fn runs(&self) -> usize {
        self.concept_negatives.len()
    }
}

/// One CAV to fit: `positive` against one set or the union of several.
#[derive(Clone, Debug, PartialEq)]
struct Fit {
    positive: SetName,
    /// The negative side: one set, or the sets of a union in name order.
    negatives: Vec<SetName>,
    /// The negative side's name in the CAV's record, seed and key.
    negative_name: String,
    /// Relative runs are CAVs of the same two sides, told apart by the run
    /// index in their seed (so each run holds out different images and,
    /// for a union, balances with a different subsample).
    run: Option<usize>,
}

impl Fit {
    fn single(positive: &SetName, negative: &SetName) -> Fit {
        Fit {
            positive: positive.clone(),
            negatives: vec![negative.clone()],
            negative_name: negative.to_string(),
            run: None,
        }
    }

    /// What the seed is derived from. Concept and baseline CAVs keep the
    /// path they always had, so their seeds (and cached CAVs) are unchanged.
    fn seed_path(&self, layer: &str) -> String {
        let base = format!("cav/{layer}/{}/{}", self.positive, self.negative_name);
        match self.run {
            None => base,
            Some(j) => format!("{base}/relative-run-{j}"),
        }
    }

    /// The lookup key of the fitted CAV.
    fn id(&self) -> (&str, &str, Option<usize>) {
        (self.positive.as_str(), self.negative_name.as_str(), self.run)
    }
}

/// A relative test resolved against the experiment's concepts.
#[derive(Clone, Debug, PartialEq)]
struct Relative {
    /// The result row's name, `red vs blue`.
    label: String,
    /// A file-safe name for its derivatives, `red-vs-blue`.
    file_stem: String,
    concept: SetName,
    negatives: Vec<SetName>,
    negative_name: String,
}

impl Relative {
    fn resolve(tests: &[RelativeTest], concepts: &[SetName]) -> Result<Vec<Relative>> {
        let known = || concepts.iter().map(SetName::as_str).collect::<Vec<_>>().join(", ");
        let find = |name: &str| {
            concepts.iter().find(|c| c.as_str() == name).cloned().ok_or_else(|| {
                ExperimentError::Mismatch(format!(
                    "tcav.relative names `{name}`, which is not among the concepts tested ({}); add it to tcav.concepts or fix the name",
                    known()
                ))
            })
        };
        if concepts.iter().any(|c| c.as_str() == OTHERS) && tests.iter().any(|t| t.against == OTHERS) {
            return Err(ExperimentError::Mismatch(format!(
                "a concept is named `{OTHERS}`, which tcav.relative reserves for the union of the other concepts; rename that concept"
            )));
        }
        tests
            .iter()
            .map(|test| {
                let concept = find(&test.concept)?;
                let (negatives, negative_name) = if test.against == OTHERS {
                    let mut others: Vec<SetName> = concepts.iter().filter(|c| **c != concept).cloned().collect();
                    // Name order, so the union (and its seeds) does not
                    // depend on the order concepts are listed in.
                    others.sort();
                    if others.is_empty() {
                        return Err(ExperimentError::Mismatch(format!(
                            "tcav.relative: `{}` vs `{OTHERS}` needs at least one other concept",
                            test.concept
                        )));
                    }
                    let name =
                        format!("{OTHERS}({})", others.iter().map(SetName::as_str).collect::<Vec<_>>().join("+"));
                    (others, name)
                } else {
                    let against = find(&test.against)?;
                    (vec![against.clone()], against.to_string())
                };
                Ok(Relative {
                    label: test.label(),
                    file_stem: format!("{}-vs-{}", test.concept, test.against),
                    concept,
                    negatives,
                    negative_name,
                })
            })
            .collect()
    }

    fn fit(&self, run: usize) -> Fit {
        Fit {
            positive: self.concept.clone(),
            negatives: self.negatives.clone(),
            negative_name: self.negative_name.clone(),
            run: Some(run),
        }
    }
}

/// The result-row names of the relative tests a config asks for
/// (`red vs blue`), in config order, for the report's list of concepts.
pub fn relative_labels(config: &TcavConfig) -> Vec<String> {
    config.relative.iter().map(RelativeTest::label).collect()
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
    let relative = Relative::resolve(&config.relative, &sets.concepts)?;
    let index_of = |set: &SetName| sets.random_sets.iter().position(|r| r == set).unwrap_or(usize::MAX);
    let fit_groups = design.groups(&sets.concepts, &relative);
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

        let groups = fitted_groups(layer, &fit_groups, &set_images, &cache, model_key, config, master_seed, store)?;
        let all: Vec<&(Cav, ArtifactKey)> = groups.iter().flatten().collect();
        let index: BTreeMap<(&str, &str, Option<usize>), usize> =
            fit_groups.iter().flatten().map(Fit::id).zip(0..).collect();
        let cav_index = |id: (&str, &str, Option<usize>)| index[&id];
        tracing::info!(cavs = all.len(), "CAVs ready");

        for class in &sets.classes {
            // One class's gradients at one layer are in memory at a time.
            let grads = cache.logit_gradients(layer, class.as_str(), &class_images[class])?;
            // Each CAV's derivatives once, in parallel: a baseline pair
            // serves two runs (the reverse is the negation).
            let per_cav: Vec<Vec<f64>> =
                all.par_iter().map(|(cav, _)| directional_derivatives(&grads, cav)).collect::<Result<_, _>>()?;
            let run_derivatives = |run: &Run| -> Result<Vec<f64>> {
                let d = &per_cav[cav_index((run.positive.as_str(), run.negative.as_str(), None))];
                // Negating the CAV negates every derivative exactly.
                Ok(if run.negated { d.iter().map(|v| -v).collect() } else { d.clone() })
            };
            let baseline_derivatives: Vec<Vec<f64>> =
                design.baseline_runs.iter().map(run_derivatives).collect::<Result<_>>()?;
            let baseline: Vec<f64> = baseline_derivatives.iter().map(|d| tcav_score(d)).collect();
            let baseline_values: Vec<f64> =
                baseline_derivatives.iter().map(|d| statistic(config.statistic, d)).collect();
            derivatives.push(to_matrix(layer, class, "baseline", &baseline_derivatives)?);
            let mut push_row =
                |kind: RowKind, name: String, file_stem: &str, cavs: Vec<usize>, negatives: Vec<usize>| {
                    let per_run: Vec<Vec<f64>> = cavs.iter().map(|&i| per_cav[i].clone()).collect();
                    let file = derivatives_file(layer, class, file_stem);
                    derivatives.push(to_matrix(layer, class, file_stem, &per_run)?);
                    raw_rows.push(RawRow {
                        class: class.clone(),
                        layer: layer.clone(),
                        concept: name,
                        kind,
                        scores: per_run.iter().map(|d| tcav_score(d)).collect(),
                        magnitudes: per_run.iter().map(|d| tcav_magnitude(d)).collect(),
                        values: per_run.iter().map(|d| statistic(config.statistic, d)).collect(),
                        baseline_values: baseline_values.clone(),
                        negatives,
                        baseline: baseline.clone(),
                        baseline_sets: baseline_sets.clone(),
                        accuracies: cavs.iter().map(|&i| all[i].0.holdout_accuracy).collect(),
                        derivatives_file: file,
                    });
                    Ok::<_, ExperimentError>(())
                };
            for concept in &sets.concepts {
                let cavs = design.concept_negatives.iter().map(|r| cav_index((concept.as_str(), r.as_str(), None)));
                let negatives = design.concept_negatives.iter().map(index_of).collect();
                push_row(RowKind::Concept, concept.to_string(), concept.as_str(), cavs.collect(), negatives)?;
            }
            for test in &relative {
                let cavs = (0..design.runs()).map(|j| cav_index(test.fit(j).id())).collect();
                // Run j counts as "among the first k random sets" when j < k,
                // so the stability steps use the first k relative runs.
                push_row(RowKind::Relative, test.label.clone(), &test.file_stem, cavs, (0..design.runs()).collect())?;
            }
        }
        cav_records.extend(groups.into_iter().flatten().map(|(cav, key)| CavRecord { cav, key }));
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

/// Above this many bytes of one layer's activations (every concept and
/// random set), CAV jobs read their own sets from the per-image cache
/// instead of sharing one in-memory copy of the layer. The default
/// experiment with 50 random sets needs about 55 MB at conv2.
pub const SHARED_ACTIVATIONS_LIMIT: usize = 1 << 30;

/// A CAV's seed and its artifact key, which names everything it depends on.
fn cav_key(
    layer: &str,
    fit: &Fit,
    digests: &BTreeMap<SetName, String>,
    model_key: &ArtifactKey,
    config: &TcavConfig,
    master_seed: u64,
) -> (u64, ArtifactKey) {
    let cav_seed = seed::derive(master_seed, &fit.seed_path(layer));
    let mut key = KeyBuilder::new("cav");
    key.param("version", &tcav_cav::OUTPUT_VERSION)
        .input("model", model_key)
        .param("layer", layer)
        .param("concept", &fit.positive)
        .content("concept_images", &digests[&fit.positive])
        .param("negative", &fit.negative_name);
    if let [negative] = fit.negatives.as_slice() {
        key.content("negative_images", &digests[negative]);
    } else {
        for negative in &fit.negatives {
            key.param("union_member", negative).content("negative_images", &digests[negative]);
        }
    }
    (cav_seed, key.param("config", &config.cav).param("seed", &cav_seed).finish())
}

/// Fits (or fetches) every group of CAVs of one layer. Each group is one
/// store artifact (one file for all its CAVs) keyed by its CAVs' keys;
/// creating a folder and three files per CAV used to cost more than
/// fitting it. Groups missing from the store are fitted together in
/// parallel, from one in-memory copy of the layer's activations (each set
/// read once) unless that exceeds [`SHARED_ACTIVATIONS_LIMIT`].
#[allow(clippy::too_many_arguments, reason = "the stage's context, passed as is")]
fn fitted_groups(
    layer: &str,
    groups: &[Vec<Fit>],
    set_images: &BTreeMap<SetName, Vec<ImageRef>>,
    cache: &ActivationCache<'_, impl BottleneckModel>,
    model_key: &ArtifactKey,
    config: &TcavConfig,
    master_seed: u64,
    store: &ArtifactStore,
) -> Result<Vec<Vec<(Cav, ArtifactKey)>>> {
    const KIND: &str = "cav-groups";
    const FILE: &str = "cavs.safetensors";
    let digests: BTreeMap<SetName, String> = set_images.iter().map(|(s, i)| (s.clone(), set_digest(i))).collect();
    let keyed: Vec<Vec<(u64, ArtifactKey)>> = groups
        .iter()
        .map(|g| g.iter().map(|fit| cav_key(layer, fit, &digests, model_key, config, master_seed)).collect())
        .collect();
    let group_keys: Vec<ArtifactKey> = keyed
        .iter()
        .map(|g| {
            let mut key = KeyBuilder::new("cav-group");
            key.param("version", &tcav_cav::OUTPUT_VERSION);
            for (_, cav) in g {
                key.input("cav", cav);
            }
            key.finish()
        })
        .collect();
    // Under `--force cavs` every group is refitted (once: the store
    // remembers what it rebuilt).
    let missing: Vec<usize> =
        (0..groups.len()).filter(|&g| store.is_forced(KIND) || store.get(KIND, &group_keys[g]).is_none()).collect();

    if !missing.is_empty() {
        // Activations go to the per-image cache on disk first.
        let mut files: BTreeMap<&SetName, Vec<PathBuf>> = BTreeMap::new();
        for (set, images) in set_images {
            files.insert(set, cache.activation_files(layer, images, &format!("set `{set}`"))?);
        }
        let shared = shared_activations(&files)?;
        // The union of other concepts is the same in every run of a
        // relative test: stacked, and its Gram matrix computed, once.
        let mut unions: BTreeMap<&str, (Matrix, Gram)> = BTreeMap::new();
        if let Some(shared) = &shared {
            for &g in &missing {
                for fit in groups[g].iter().filter(|f| f.negatives.len() > 1) {
                    if !unions.contains_key(fit.negative_name.as_str()) {
                        let parts: Vec<&Matrix> = fit.negatives.iter().map(|n| &shared[n].0).collect();
                        let union = tcav_cav::stack_rows(&parts)?;
                        let gram = Gram::of(&union);
                        unions.insert(fit.negative_name.as_str(), (union, gram));
                    }
                }
            }
        }
        let side = |names: &[SetName], name: &str| -> Result<(std::borrow::Cow<'_, Matrix>, Option<&Gram>)> {
            Ok(match (&shared, names) {
                (Some(shared), [one]) => (std::borrow::Cow::Borrowed(&shared[one].0), Some(&shared[one].1)),
                (Some(_), _) => {
                    let (union, gram) = &unions[name];
                    (std::borrow::Cow::Borrowed(union), Some(gram))
                }
                (None, names) => {
                    let paths: Vec<PathBuf> = names.iter().flat_map(|n| files[n].iter().cloned()).collect();
                    (std::borrow::Cow::Owned(read_rows(&paths, ACTIVATIONS)?), None)
                }
            })
        };
        let jobs: Vec<(usize, usize)> =
            missing.iter().flat_map(|&g| (0..groups[g].len()).map(move |i| (g, i))).collect();
        let mut fitted: Vec<Cav> = jobs
            .par_iter()
            .map(|&(g, i)| {
                let fit = &groups[g][i];
                let label = CavLabel { layer, concept: fit.positive.as_str(), negative: &fit.negative_name };
                let (positive, positive_gram) = side(std::slice::from_ref(&fit.positive), fit.positive.as_str())?;
                let (negative, negative_gram) = side(&fit.negatives, &fit.negative_name)?;
                let positive = Rows { rows: &positive, gram: positive_gram };
                let negative = Rows { rows: &negative, gram: negative_gram };
                Ok(fit_cav_shared(label, positive, negative, &config.cav, keyed[g][i].0)?)
            })
            .collect::<Result<_>>()?;
        for &g in missing.iter().rev() {
            let cavs = fitted.split_off(fitted.len() - groups[g].len());
            store.get_or_build::<ExperimentError>(KIND, &group_keys[g], |tmp| {
                Cav::save_all(&cavs, &tmp.join(FILE))?;
                Ok(())
            })?;
        }
    }
    // Always read back from the store, so a cold run reports exactly what
    // a warm rerun will.
    groups
        .iter()
        .enumerate()
        .map(|(g, fits)| {
            let dir = store.get(KIND, &group_keys[g]).ok_or_else(|| {
                ExperimentError::Mismatch(format!("CAV group {} vanished from the store while running", group_keys[g]))
            })?;
            let cavs = Cav::load_all(&dir.join(FILE))?;
            if cavs.len() != fits.len() {
                return Err(ExperimentError::Mismatch(format!(
                    "{} holds {} CAVs where {} were expected: delete that folder so it is rebuilt",
                    dir.display(),
                    cavs.len(),
                    fits.len()
                )));
            }
            Ok(cavs.into_iter().zip(keyed[g].iter().map(|(_, k)| k.clone())).collect())
        })
        .collect()
}

/// Every set's activations of one layer, each read once, with their Gram
/// matrices, or `None` when they would take more than
/// [`SHARED_ACTIVATIONS_LIMIT`] bytes.
#[allow(clippy::type_complexity, reason = "a plain map of plain pairs")]
fn shared_activations(files: &BTreeMap<&SetName, Vec<PathBuf>>) -> Result<Option<BTreeMap<SetName, (Matrix, Gram)>>> {
    let Some(first) = files.values().find_map(|f| f.first()) else { return Ok(Some(BTreeMap::new())) };
    let width = tcav_core::matrix::read_safetensors(first, ACTIVATIONS)?.cols();
    let rows: usize = files.values().map(Vec::len).sum();
    if rows.saturating_mul(width).saturating_mul(4) > SHARED_ACTIVATIONS_LIMIT {
        tracing::info!(rows, width, "activations exceed the shared-memory limit; each CAV job reads its own sets");
        return Ok(None);
    }
    let sets: Vec<(&SetName, &Vec<PathBuf>)> = files.iter().map(|(s, f)| (*s, f)).collect();
    let matrices: Vec<(Matrix, Gram)> = sets
        .par_iter()
        .map(|(_, f)| {
            let m = read_rows(f, ACTIVATIONS)?;
            let gram = Gram::of(&m);
            Ok((m, gram))
        })
        .collect::<Result<_>>()?;
    Ok(Some(sets.into_iter().map(|(s, _)| s.clone()).zip(matrices).collect()))
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

/// What a row's runs score.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RowKind {
    /// A concept against random sets.
    Concept,
    /// A concept against another concept or the union of the others.
    Relative,
}

/// One (class, layer, concept) before statistics.
struct RawRow {
    class: SetName,
    layer: String,
    /// The row's name: a concept, or `red vs blue` for a relative test.
    concept: String,
    kind: RowKind,
    /// Sign-count TCAV score per run.
    scores: Vec<f64>,
    /// Captum magnitude score per run.
    magnitudes: Vec<f64>,
    /// The test's per-run statistic for each concept run.
    values: Vec<f64>,
    /// The test's per-run statistic for each baseline run.
    baseline_values: Vec<f64>,
    /// Index of each run's negative random set (for a relative row, the
    /// run's index), for restricting to the first k random sets.
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
            None if self.kind == RowKind::Relative => {
                // A relative CAV (A vs B) is compared with CAVs of pairs of
                // random sets (r_i vs r_j, among the first k): one value per
                // baseline run, built from only k independent sets.
                let (runs, pairs) = self.first_runs(k, &self.values, &self.baseline_values);
                let value = runs.iter().sum::<f64>() / runs.len().max(1) as f64;
                (unit_ttest_dependent(value, &pairs, k.min(pairs.len()))?, unit_rank_p_value(value, &pairs)?)
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
            concept: row.concept.clone(),
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
            concept: row.concept.clone(),
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
        let groups = design.groups(&names("c", 2), &[]);
        assert_eq!(groups.len(), 3, "one group per concept, one for the baseline");
        let fits: Vec<Fit> = groups.into_iter().flatten().collect();
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
            concept: "x".into(),
            kind: RowKind::Concept,
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

    fn relative(concept: &str, against: &str) -> RelativeTest {
        RelativeTest { concept: concept.into(), against: against.into() }
    }

    #[test]
    fn relative_tests_fit_one_cav_per_run_against_the_concept_or_the_union() {
        let random = names("random_", 4);
        let concepts: Vec<SetName> = ["red", "blue", "green"].map(|c| SetName::new(c).unwrap()).to_vec();
        let design = Design::new(&random, &Baseline::AllPairs).unwrap();
        let tests = [relative("red", "blue"), relative("blue", "red"), relative("red", "others")];
        let resolved = Relative::resolve(&tests, &concepts).unwrap();
        let labels: Vec<&str> = resolved.iter().map(|r| r.label.as_str()).collect();
        assert_eq!(labels, ["red vs blue", "blue vs red", "red vs others"]);
        assert_eq!(resolved[2].file_stem, "red-vs-others");
        // The union is the other concepts in name order, named after them.
        assert_eq!(resolved[2].negatives, [SetName::new("blue").unwrap(), SetName::new("green").unwrap()]);
        assert_eq!(resolved[2].negative_name, "others(blue+green)");

        let groups = design.groups(&concepts, &resolved);
        assert_eq!(groups.len(), 3 + 1 + 3, "concepts, baseline, relative tests");
        let fits: Vec<Fit> = groups.into_iter().flatten().collect();
        let absolute = 3 * 4 + 6;
        assert_eq!(fits.len(), absolute + 3 * 4, "one CAV per random run and relative test");
        let red_vs_blue: Vec<&Fit> =
            fits.iter().filter(|f| f.positive.as_str() == "red" && f.negative_name == "blue").collect();
        assert_eq!(red_vs_blue.len(), 4);
        assert_eq!(red_vs_blue.iter().map(|f| f.run).collect::<Vec<_>>(), [Some(0), Some(1), Some(2), Some(3)]);
        // Each run has its own seed, distinct from the absolute CAVs' seeds.
        let mut seeds: Vec<String> = fits.iter().map(|f| f.seed_path("conv2")).collect();
        seeds.sort();
        seeds.dedup();
        assert_eq!(seeds.len(), fits.len(), "every CAV has its own seed");
        // Absolute CAVs keep the seed path they always had.
        assert_eq!(Fit::single(&concepts[0], &random[1]).seed_path("conv2"), "cav/conv2/red/random_1");
        assert_eq!(resolved[0].fit(2).seed_path("conv2"), "cav/conv2/red/blue/relative-run-2");
        // The union does not depend on the order concepts are listed in.
        let reordered: Vec<SetName> = concepts.iter().rev().cloned().collect();
        assert_eq!(Relative::resolve(&tests, &reordered).unwrap(), resolved);
    }

    #[test]
    fn relative_tests_name_unknown_concepts_and_reserved_names() {
        let concepts: Vec<SetName> = ["red", "blue"].map(|c| SetName::new(c).unwrap()).to_vec();
        let err = Relative::resolve(&[relative("red", "green")], &concepts).unwrap_err().to_string();
        assert!(err.contains("`green`") && err.contains("red, blue"), "{err}");
        let err = Relative::resolve(&[relative("red", "others")], &concepts[..1]).unwrap_err().to_string();
        assert!(err.contains("at least one other concept"), "{err}");
        let with_others: Vec<SetName> = ["red", "others"].map(|c| SetName::new(c).unwrap()).to_vec();
        let err = Relative::resolve(&[relative("red", "others")], &with_others).unwrap_err().to_string();
        assert!(err.contains("rename"), "{err}");
    }

    #[test]
    fn relative_rows_are_tested_against_the_random_pairs() {
        // Three random sets, all ordered pairs (±d): the reference of a
        // relative row is these six pair values, with k = 3 units.
        let pairs = vec![(0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1)];
        let baseline = vec![0.3, 0.5, -0.3, 0.1, -0.5, -0.1];
        let mut r = row(vec![1.0, 2.0, 3.0], pairs, baseline.clone());
        r.kind = RowKind::Relative;
        let config = TcavConfig::default();
        let (test, rank) = r.test(3, &config).unwrap();
        let expected = unit_ttest_dependent(2.0, &baseline, 3).unwrap();
        assert_eq!((test.t, test.df, test.p_value), (expected.t, 2.0, expected.p_value));
        assert_eq!(rank, unit_rank_p_value(2.0, &baseline).unwrap());
        // With the first two random sets: runs 0 and 1, pairs (0,1), (1,0).
        let (concept, pairs) = r.first_runs(2, &r.values, &r.baseline_values);
        assert_eq!((concept, pairs), (vec![1.0, 2.0], vec![0.3, -0.3]));
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
