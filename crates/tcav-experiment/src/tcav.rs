//! The TCAV stage of an experiment: activations, gradients, CAVs, scores,
//! and the statistics that turn scores into verdicts.
//!
//! Design of the random runs: with random sets `r_0..r_{N-1}`, run `j`
//! scores each concept with the CAV (concept vs `r_j`). The baseline's run
//! `j` scores the CAV (`r_j` vs `r_{j+1 mod N}`): every random set serves
//! once as the "concept" and once as the negative, each baseline CAV is a
//! different pair, and both samples have N independent-looking runs, so the
//! t-test compares like with like.

use std::collections::BTreeMap;

use rayon::prelude::*;
use serde::Serialize;
use tcav_activations::{ActivationCache, ImageRef};
use tcav_cav::{Cav, CavLabel, directional_derivatives, fit_cav, tcav_score};
use tcav_core::store::{ArtifactKey, ArtifactStore, KeyBuilder};
use tcav_core::{Matrix, SetName, Split, seed};
use tcav_model::BottleneckModel;
use tcav_report::{ConceptResult, Verdict};
use tcav_stats::{Direction, adjust, summarize, two_sample_ttest};

use crate::config::TcavConfig;
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
#[derive(Clone, Debug, Serialize)]
pub struct CavRecord {
    /// The CAV's metadata (layer, sets, estimator, seed, accuracy).
    #[serde(flatten)]
    pub cav: Cav,
    /// Its artifact key.
    pub key: ArtifactKey,
}

/// Scores and CAVs of the whole experiment, before statistics.
pub struct TcavOutcome {
    /// One row per (class, layer, concept), with p-values adjusted over all.
    pub results: Vec<ConceptResult>,
    /// Every CAV used.
    pub cavs: Vec<CavRecord>,
    /// Batched backward passes actually run (0 when all came from the store).
    pub backward_passes: usize,
}

/// The CAV pairs one layer needs: each concept against each random set, and
/// the baseline ring of random sets.
fn cav_pairs(sets: &Sets) -> Vec<(SetName, SetName)> {
    let n = sets.random_sets.len();
    let mut pairs = Vec::new();
    for concept in &sets.concepts {
        for random in &sets.random_sets {
            pairs.push((concept.clone(), random.clone()));
        }
    }
    for j in 0..n {
        pairs.push((sets.random_sets[j].clone(), sets.random_sets[(j + 1) % n].clone()));
    }
    pairs
}

fn set_digest(images: &[ImageRef]) -> String {
    let mut key = KeyBuilder::new("image-set");
    for image in images {
        key.content("image", &image.hash);
    }
    key.finish().to_string()
}

/// Runs TCAV for every layer, class and concept.
#[allow(clippy::too_many_arguments)]
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
    for layer in &config.layers {
        model.layer_index(layer)?;
        let span = tracing::info_span!("layer", layer = layer.as_str());
        let _entered = span.enter();

        let mut activations: BTreeMap<SetName, Matrix> = BTreeMap::new();
        for (set, images) in &set_images {
            activations.insert(set.clone(), cache.activations(layer, images, &format!("set `{set}`"))?);
        }
        let mut gradients: BTreeMap<SetName, Matrix> = BTreeMap::new();
        for (class, images) in &class_images {
            gradients.insert(class.clone(), cache.logit_gradients(layer, class.as_str(), images)?);
        }
        tracing::info!(sets = activations.len(), classes = gradients.len(), "activations and gradients ready");

        let pairs = cav_pairs(sets);
        let fitted: Vec<(SetName, SetName, Cav, ArtifactKey)> = pairs
            .par_iter()
            .map(|(concept, negative)| {
                let (cav, key) = cached_cav(
                    layer,
                    (concept, &activations[concept], &set_images[concept]),
                    (negative, &activations[negative], &set_images[negative]),
                    model_key,
                    config,
                    master_seed,
                    store,
                )?;
                Ok((concept.clone(), negative.clone(), cav, key))
            })
            .collect::<Result<_>>()?;
        let cav_of: BTreeMap<(&SetName, &SetName), &Cav> = fitted.iter().map(|(c, n, cav, _)| ((c, n), cav)).collect();
        tracing::info!(cavs = fitted.len(), "CAVs ready");

        for class in &sets.classes {
            let grads = &gradients[class];
            let score = |cav: &Cav| -> Result<f64> { Ok(tcav_score(&directional_derivatives(grads, cav)?)) };
            let n = sets.random_sets.len();
            let baseline: Vec<f64> = (0..n)
                .map(|j| score(cav_of[&(&sets.random_sets[j], &sets.random_sets[(j + 1) % n])]))
                .collect::<Result<_>>()?;
            for concept in &sets.concepts {
                let runs: Vec<&Cav> = sets.random_sets.iter().map(|r| cav_of[&(concept, r)]).collect();
                let scores: Vec<f64> = runs.iter().map(|cav| score(cav)).collect::<Result<_>>()?;
                let accuracy = runs.iter().map(|c| c.holdout_accuracy).sum::<f64>() / runs.len() as f64;
                raw_rows.push((class.clone(), layer.clone(), concept.clone(), scores, baseline.clone(), accuracy));
            }
        }
        cav_records.extend(fitted.into_iter().map(|(_, _, cav, key)| CavRecord { cav, key }));
    }

    let results = statistics(raw_rows, config)?;
    Ok(TcavOutcome { results, cavs: cav_records, backward_passes: cache.backward_passes() })
}

fn cached_cav(
    layer: &str,
    (concept, concept_acts, concept_images): (&SetName, &Matrix, &[ImageRef]),
    (negative, negative_acts, negative_images): (&SetName, &Matrix, &[ImageRef]),
    model_key: &ArtifactKey,
    config: &TcavConfig,
    master_seed: u64,
    store: &ArtifactStore,
) -> Result<(Cav, ArtifactKey)> {
    let cav_seed = seed::derive(master_seed, &format!("cav/{layer}/{concept}/{negative}"));
    let key = KeyBuilder::new("cav")
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
        let cav = fit_cav(label, concept_acts, negative_acts, &config.cav, cav_seed)?;
        cav.save(&tmp.join(file))?;
        Ok(())
    })?;
    Ok((Cav::load(&dir.join(file))?, key))
}

type RawRow = (SetName, String, SetName, Vec<f64>, Vec<f64>, f64);

/// t-tests every row against its baseline, adjusts all p-values together,
/// and states each verdict's direction.
fn statistics(rows: Vec<RawRow>, config: &TcavConfig) -> Result<Vec<ConceptResult>> {
    let mut tests = Vec::with_capacity(rows.len());
    for (_, _, _, scores, baseline, _) in &rows {
        tests.push(two_sample_ttest(scores, baseline, config.test)?);
    }
    let p_values: Vec<f64> = tests.iter().map(|t| t.p_value).collect();
    let adjusted = adjust(&p_values, config.correction);
    let mut results = Vec::with_capacity(rows.len());
    for (((class, layer, concept, scores, baseline, accuracy), test), p_adjusted) in rows.into_iter().zip(&tests).zip(adjusted) {
        let concept_summary = summarize(&scores)?;
        let baseline_summary = summarize(&baseline)?;
        let verdict = match Direction::classify(test, p_adjusted, config.alpha)? {
            Direction::Above => Verdict::Above,
            Direction::Below => Verdict::Below,
            Direction::NotSignificant => Verdict::NotSignificant,
        };
        results.push(ConceptResult {
            class: class.to_string(),
            layer,
            concept: concept.to_string(),
            mean: concept_summary.mean,
            std: concept_summary.std,
            scores,
            baseline_mean: baseline_summary.mean,
            baseline_std: baseline_summary.std,
            baseline_scores: baseline,
            cav_accuracy_mean: accuracy,
            t: test.t,
            p_value: test.p_value,
            p_adjusted,
            verdict,
        });
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baseline_ring_uses_each_random_set_once_per_side_and_distinct_pairs() {
        let name = |s: &str| SetName::new(s).unwrap();
        let sets = Sets {
            classes: vec![name("a")],
            concepts: vec![name("red"), name("blue")],
            random_sets: (0..5).map(|i| name(&format!("random_{i}"))).collect(),
        };
        let pairs = cav_pairs(&sets);
        assert_eq!(pairs.len(), 2 * 5 + 5);
        let baseline = &pairs[10..];
        let mut unordered: Vec<_> =
            baseline.iter().map(|(a, b)| if a < b { (a.clone(), b.clone()) } else { (b.clone(), a.clone()) }).collect();
        unordered.sort();
        unordered.dedup();
        assert_eq!(unordered.len(), 5, "every baseline CAV is a different pair");
        for r in &sets.random_sets {
            assert_eq!(baseline.iter().filter(|(a, _)| a == r).count(), 1);
            assert_eq!(baseline.iter().filter(|(_, b)| b == r).count(), 1);
        }
    }
}
