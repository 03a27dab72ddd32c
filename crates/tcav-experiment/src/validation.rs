//! The ground-truth table: how TCAV's verdicts line up with what each
//! model measurably relies on (`docs/VALIDATION.md`).

use std::fmt::Write;

use tcav_report::{ConceptResult, Verdict};

use crate::RunOutcome;
use crate::config::{DataConfig, ExperimentConfig};

/// One ground-truth experiment and its outcome.
pub struct Variant<'a> {
    /// The config file, as given.
    pub file: String,
    /// The experiment's config.
    pub config: &'a ExperimentConfig,
    /// What the run produced.
    pub outcome: &'a RunOutcome,
}

/// For each family: (family, its colour concept, its caption concept).
fn matching_concepts() -> Vec<(String, String, String)> {
    tcav_datagen::families()
        .iter()
        .map(|f| (f.name.to_string(), f.colour_concept.to_string(), f.caption_concept()))
        .collect()
}

fn rows(outcome: &RunOutcome, concept_of: impl Fn(&(String, String, String)) -> &String) -> Vec<&ConceptResult> {
    let families = matching_concepts();
    outcome
        .report
        .results
        .iter()
        .filter(|r| families.iter().any(|f| f.0 == r.class && *concept_of(f) == r.concept))
        .collect()
}

fn verdict_counts(rows: &[&ConceptResult]) -> String {
    if rows.is_empty() {
        return "–".into();
    }
    let count = |v: Verdict| rows.iter().filter(|r| r.verdict == v).count();
    let mut parts = Vec::new();
    for (v, word) in [
        (Verdict::Above, "above"),
        (Verdict::Below, "below"),
        (Verdict::NotSignificant, "n.s."),
        (Verdict::Unreliable, "unreliable"),
    ] {
        if count(v) > 0 {
            parts.push(format!("{} {word}", count(v)));
        }
    }
    format!("{} of {}", parts.join(", "), rows.len())
}

fn drop(outcome: &RunOutcome, cue: &str) -> Option<f64> {
    outcome.reliance.iter().find(|r| r.cue == cue).map(|r| r.drop)
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let v: Vec<f64> = values.collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// Spearman's rank correlation (average ranks for ties).
pub fn spearman(x: &[f64], y: &[f64]) -> f64 {
    fn ranks(v: &[f64]) -> Vec<f64> {
        let mut order: Vec<usize> = (0..v.len()).collect();
        order.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
        let mut ranks = vec![0.0; v.len()];
        let mut i = 0;
        while i < order.len() {
            let mut j = i;
            while j + 1 < order.len() && v[order[j + 1]] == v[order[i]] {
                j += 1;
            }
            for k in i..=j {
                ranks[order[k]] = (i + j) as f64 / 2.0 + 1.0;
            }
            i = j + 1;
        }
        ranks
    }
    let (rx, ry) = (ranks(x), ranks(y));
    let n = x.len() as f64;
    let (mx, my) = (rx.iter().sum::<f64>() / n, ry.iter().sum::<f64>() / n);
    let cov: f64 = rx.iter().zip(&ry).map(|(a, b)| (a - mx) * (b - my)).sum();
    let sx = rx.iter().map(|a| (a - mx).powi(2)).sum::<f64>().sqrt();
    let sy = ry.iter().map(|b| (b - my).powi(2)).sum::<f64>().sqrt();
    if sx == 0.0 || sy == 0.0 { f64::NAN } else { cov / (sx * sy) }
}

/// The mean sign-count TCAV score of each family's own caption concept for
/// its class, over layers: the caption concept's score in one experiment.
pub fn own_caption_score(outcome: &RunOutcome) -> Option<f64> {
    mean(rows(outcome, |f| &f.2).iter().map(|r| r.mean))
}

/// The mean concept-as-unit statistic's t of each family's own caption
/// concept, over layers (how far above random sets the caption sits).
pub fn own_caption_t(outcome: &RunOutcome) -> Option<f64> {
    mean(rows(outcome, |f| &f.2).iter().map(|r| r.t).filter(|t| t.is_finite()))
}

/// Renders `docs/VALIDATION.md`.
pub fn markdown(variants: &[Variant<'_>], command: &str) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# Validation: does TCAV find what the model really uses?\n");
    let _ = writeln!(
        md,
        "Each row is one experiment on built-in data whose cues are controlled: how much the family decides the \
         creatures' colour (`colour_reliance`), and whether a caption patch agrees with the family with probability p. \
         The ground truth is measured on each trained model itself, not taken from how the data were made: the drop in \
         held-out accuracy when the test images are regenerated with the cue removed (creatures recoloured at random, \
         or the caption blanked). The verdicts are TCAV's, for each family's own colour and own caption, over both \
         layers (so 6 per cell).\n"
    );
    let _ =
        writeln!(md, "Regenerate this file with `{command}` (it reruns every experiment below; seeds are fixed).\n");
    let _ = writeln!(
        md,
        "| variant | colour follows family | caption p | test accuracy | accuracy drop without colour | accuracy drop without caption | own colour: verdicts | own colour: mean TCAV | own caption: verdicts | own caption: mean TCAV | random sets as concepts: significant | significant results, all concepts |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|---|");
    for v in variants {
        let (reliance, caption) = match &v.config.data {
            DataConfig::Builtin { generator } => (
                format!("{:.2}", generator.colour_reliance),
                generator.caption.as_ref().map_or("–".into(), |c| format!("{:.2}", c.probability)),
            ),
            DataConfig::Folders { .. } => ("–".into(), "–".into()),
        };
        let pct = |x: Option<f64>| x.map_or("–".into(), |d| format!("{:+.1} pts", 100.0 * d));
        let score = |x: Option<f64>| x.map_or("–".into(), |s| format!("{s:.2}"));
        let colour_rows = rows(v.outcome, |f| &f.1);
        let caption_rows = rows(v.outcome, |f| &f.2);
        let all = &v.outcome.report.results;
        let significant = all.iter().filter(|r| r.verdict.is_significant()).count();
        let random_names = &v.outcome.report.random_sets;
        let controls: Vec<&ConceptResult> =
            all.iter().filter(|r| r.concept.starts_with("random_") && !random_names.contains(&r.concept)).collect();
        let control_cell = if controls.is_empty() {
            "–".to_string()
        } else {
            format!("{} of {}", controls.iter().filter(|r| r.verdict.is_significant()).count(), controls.len())
        };
        let unreliable = all.iter().filter(|r| r.verdict == Verdict::Unreliable).count();
        let _ = writeln!(
            md,
            "| `{}` | {} | {} | {:.1}% | {} | {} | {} | {} | {} | {} | {} | {} of {}{} |",
            v.file,
            reliance,
            caption,
            100.0 * v.outcome.report.classifier.test_accuracy,
            pct(drop(v.outcome, "colour")),
            pct(drop(v.outcome, "caption")),
            verdict_counts(&colour_rows),
            score(mean(colour_rows.iter().map(|r| r.mean))),
            verdict_counts(&caption_rows),
            score(mean(caption_rows.iter().map(|r| r.mean))),
            control_cell,
            significant,
            all.len(),
            if unreliable > 0 { format!(" ({unreliable} unreliable)") } else { String::new() },
        );
    }

    let captions: Vec<(f64, f64, f64)> = variants
        .iter()
        .filter_map(|v| Some((drop(v.outcome, "caption")?, own_caption_score(v.outcome)?, own_caption_t(v.outcome)?)))
        .collect();
    if captions.len() >= 3 {
        let drops: Vec<f64> = captions.iter().map(|c| c.0).collect();
        let scores: Vec<f64> = captions.iter().map(|c| c.1).collect();
        let ts: Vec<f64> = captions.iter().map(|c| c.2).collect();
        let _ = writeln!(
            md,
            "\nAcross the {} caption variants, Spearman's rank correlation between the measured caption reliance (accuracy drop) \
             and the own-caption TCAV score is **{:.2}**, and with the concept-as-unit t statistic **{:.2}**.\n",
            captions.len(),
            spearman(&drops, &scores),
            spearman(&drops, &ts)
        );
    }

    let _ = writeln!(md, "\n## Details: each family's own colour and caption\n");
    let _ = writeln!(
        md,
        "| variant | class | layer | concept | TCAV score (mean ± std over runs) | verdict | p | p adjusted |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|");
    for v in variants {
        let mut own: Vec<&ConceptResult> = rows(v.outcome, |f| &f.1);
        own.extend(rows(v.outcome, |f| &f.2));
        for r in own {
            let _ = writeln!(
                md,
                "| `{}` | {} | {} | {} | {:.3} ± {:.3} | {} | {:.2e} | {:.2e} |",
                v.file,
                r.class,
                r.layer,
                r.concept,
                r.mean,
                r.std,
                r.verdict.as_str(),
                r.p_value,
                r.p_adjusted
            );
        }
    }
    let _ = writeln!(md, "\n## Runs\n");
    for v in variants {
        let _ = writeln!(md, "* `{}`: run `{}`, {}", v.file, v.outcome.report.run_id, v.outcome.report.test);
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spearman_matches_hand_computed_values() {
        assert!((spearman(&[1.0, 2.0, 3.0, 4.0], &[10.0, 20.0, 30.0, 40.0]) - 1.0).abs() < 1e-12);
        assert!((spearman(&[1.0, 2.0, 3.0, 4.0], &[4.0, 3.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
        // One adjacent swap among 4: 1 − 6·2/(4·15) = 0.8.
        assert!((spearman(&[1.0, 2.0, 3.0, 4.0], &[1.0, 3.0, 2.0, 4.0]) - 0.8).abs() < 1e-12);
        // scipy.stats.spearmanr([1,2,2,3],[1,3,2,4]).statistic = 0.9486832980505138
        assert!((spearman(&[1.0, 2.0, 2.0, 3.0], &[1.0, 3.0, 2.0, 4.0]) - 0.9486832980505139).abs() < 1e-12);
    }
}
