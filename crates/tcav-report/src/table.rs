//! The plain-text table: one block per class, aligned, without colour codes,
//! so the same text suits a terminal and a file.

use std::fmt::Write as _;

use crate::model::{ConceptResult, ExperimentReport, StabilityRow, Verdict};

/// Marks a row whose difference from the random baseline is not significant.
pub const NOT_SIGNIFICANT_MARK: &str = "*";

/// Marks a row whose CAVs are near chance (`reliable == false`): no
/// significance is claimed for it.
pub const UNRELIABLE_MARK: &str = "?";

/// From this fraction of baseline scores at ≤ 0.05 or ≥ 0.95 on, the table
/// warns that the baseline caps the t-test's p-values.
const EXTREME_WARNING: f64 = 0.5;

/// What the direction words of the verdict column mean; printed under the
/// tables.
const READING: &str = "\
Reading the verdicts: `above` means the concept's TCAV scores lie significantly above the
random baseline: moving toward the concept raises the class logit, so the concept pushes the
classifier toward the class. `below` means significantly below: the concept pushes away from
the class. The test is two-sided, so scores near 0 are flagged too; they mean `below`, not
\"important\". `not significant` is no evidence either way, and `unreliable` rows have CAVs near
chance, so no claim is made for them whatever their p-value.
";

/// A few lines for the terminal: per class and layer, which concepts push
/// toward the class, which push away, and which are no evidence or
/// unreliable. The full table is [`render_table`].
pub fn render_summary(report: &ExperimentReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "TCAV summary: experiment `{}` ({} test, {} correction, α = {}); classifier test accuracy {:.1}%",
        report.experiment,
        report.test,
        report.correction,
        report.alpha,
        100.0 * report.classifier.test_accuracy
    );
    let headers = ["class", "layer", "above (pushes toward)", "below (pushes away)", "not significant", "unreliable"];
    let mut rows = Vec::new();
    for class in &report.classes {
        for layer in &report.layers {
            let with = |verdict: Verdict| {
                let names: Vec<&str> = report
                    .results
                    .iter()
                    .filter(|r| &r.class == class && &r.layer == layer && r.verdict == verdict)
                    .map(|r| r.concept.as_str())
                    .collect();
                if names.is_empty() { "-".to_string() } else { names.join(", ") }
            };
            rows.push([
                class.clone(),
                layer.clone(),
                with(Verdict::Above),
                with(Verdict::Below),
                with(Verdict::NotSignificant),
                with(Verdict::Unreliable),
            ]);
        }
    }
    let widths: Vec<usize> = (0..headers.len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).chain([headers[i].chars().count()]).max().unwrap_or(0))
        .collect();
    let mut line = |cells: &[&str]| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        let _ = writeln!(out, "  {}", padded.join("  ").trim_end());
    };
    line(&headers);
    for row in &rows {
        line(&row.iter().map(String::as_str).collect::<Vec<_>>());
    }
    out
}

/// Renders the report as plain text: a header (experiment, seed, test,
/// correction, α, CAV estimator, design, CAV accuracy threshold, rank test,
/// classifier accuracy) and one aligned table per class with the columns
/// layer, concept, TCAV score mean ± std, 95 % CI of the mean, baseline mean ±
/// std, Cohen's d, CAV accuracy, p, p_adj, rank p (when the report has a
/// rank or permutation test) and verdict. Rows that are not significant carry
/// [`NOT_SIGNIFICANT_MARK`], rows whose CAVs are near chance
/// [`UNRELIABLE_MARK`], each explained under its table. Each class block
/// ends with a warning for layers whose baseline piles up at 0 and 1, and,
/// when the report has them, one stability line per (layer, concept): the
/// verdict and p_adj at each number of random runs. A paragraph at the end
/// explains the direction words.
///
/// Numbers that the report does not hold (older reports) are shown as `–`.
/// The report is presented as given; call
/// [`ExperimentReport::validate`] first to reject inconsistent input.
pub fn render_table(report: &ExperimentReport) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail, so the results of writeln! are ignored.
    let _ = writeln!(out, "TCAV report: experiment `{}`, run `{}`", report.experiment, report.run_id);
    let _ = writeln!(
        out,
        "seed {} | {} t-test of concept vs random baseline (see design) | {} correction | α = {}",
        report.seed, report.test, report.correction, report.alpha
    );
    let _ = writeln!(out, "{}", method_line(report));
    let per_class = report
        .classifier
        .per_class_accuracy
        .iter()
        .map(|(class, acc)| format!("{class} {}", percent(*acc)))
        .collect::<Vec<_>>()
        .join(", ");
    let _ = write!(
        out,
        "classifier: {}, test accuracy {}",
        report.classifier.architecture,
        percent(report.classifier.test_accuracy)
    );
    if per_class.is_empty() {
        out.push('\n');
    } else {
        let _ = writeln!(out, " ({per_class})");
    }
    let _ = writeln!(
        out,
        "layers: {} | concepts: {} | random sets: {}",
        report.layers.join(", "),
        report.concepts.join(", "),
        report.random_sets.len()
    );

    let with_rank = report.results.iter().any(|r| r.rank_p_value.is_some());
    for class in &report.classes {
        out.push('\n');
        match report.class_accuracy(class) {
            Some(acc) => {
                let _ = writeln!(out, "Class `{class}` (classifier test accuracy on this class: {})", percent(acc));
            }
            None => {
                let _ = writeln!(out, "Class `{class}`");
            }
        }
        let rows = report.class_results(class);
        if rows.is_empty() {
            let _ = writeln!(out, "  (no results for this class)");
            continue;
        }
        out.push_str(&class_table(&rows, with_rank));
        if rows.iter().any(|r| r.reliable && !r.verdict.is_significant()) {
            let _ = writeln!(
                out,
                "  {NOT_SIGNIFICANT_MARK} not significant: p_adj ≥ α = {}; the TCAV score is no evidence in either direction.",
                report.alpha
            );
        }
        if rows.iter().any(|r| !r.reliable) {
            let _ = writeln!(
                out,
                "  {UNRELIABLE_MARK} CAVs near chance (mean held-out accuracy < {}): no significance is claimed.",
                report.accuracy_threshold
            );
        }
        out.push_str(&baseline_warnings(report, &rows));
        out.push_str(&stability_section(&report.class_stability(class)));
    }
    out.push('\n');
    out.push_str(READING);
    out
}

/// How the CAVs were fitted and judged; fields missing from older reports
/// read "not recorded".
fn method_line(report: &ExperimentReport) -> String {
    let or_unknown = |text: &str| if text.trim().is_empty() { "not recorded".to_string() } else { text.to_string() };
    let gate = if report.accuracy_threshold > 0.0 {
        format!("CAV accuracy gate: mean held-out ≥ {}", report.accuracy_threshold)
    } else {
        "no CAV accuracy gate".to_string()
    };
    let mut line =
        format!("CAV estimator: {} | design: {} | {gate}", or_unknown(&report.estimator), or_unknown(&report.design));
    if !report.rank_test.trim().is_empty() {
        let _ = write!(line, " | rank test: {}", report.rank_test);
    }
    line
}

/// One line per layer whose baseline piles up at 0 and 1.
fn baseline_warnings(report: &ExperimentReport, rows: &[&ConceptResult]) -> String {
    let mut out = String::new();
    for layer in &report.layers {
        let worst = rows
            .iter()
            .filter(|r| &r.layer == layer)
            .filter_map(|r| r.baseline_extreme_fraction)
            .fold(None, |max: Option<f64>, f| Some(max.map_or(f, |m| m.max(f))));
        if let Some(fraction) = worst.filter(|&f| f >= EXTREME_WARNING) {
            let advice = if report.rank_test.trim().is_empty() {
                "a rank or permutation test is more telling there"
            } else {
                "read the rank p there"
            };
            let _ = writeln!(
                out,
                "  ! {layer}: {} of baseline scores are ≤ 0.05 or ≥ 0.95, capping the t-test's p-values; {advice}.",
                percent(fraction)
            );
        }
    }
    out
}

/// The verdict in the table's words, explained under the tables.
fn verdict_word(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Above => "above",
        Verdict::Below => "below",
        Verdict::NotSignificant => "not significant",
        Verdict::Unreliable => "unreliable",
    }
}

/// The shorter words of the stability lines.
fn stability_word(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::NotSignificant => "n.s.",
        other => verdict_word(other),
    }
}

/// `stability:` and one line per (layer, concept) with the verdict and p_adj
/// at each number of runs, cells aligned across lines.
fn stability_section(rows: &[&StabilityRow]) -> String {
    if rows.is_empty() {
        return String::new();
    }
    let mut out =
        String::from("  stability: verdict (p_adj) as the number of random runs grows (n.s. = not significant)\n");
    let layer_width = rows.iter().map(|r| width(&r.layer)).max().unwrap_or(0);
    let concept_width = rows.iter().map(|r| width(&r.concept)).max().unwrap_or(0);
    let runs_width = rows.iter().flat_map(|r| &r.points).map(|p| p.runs.to_string().len()).max().unwrap_or(0);
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            r.points
                .iter()
                .map(|p| {
                    format!("{:>runs_width$}: {} (p_adj {})", p.runs, stability_word(p.verdict), p_value(p.p_adjusted))
                })
                .collect()
        })
        .collect();
    let columns = cells.iter().map(Vec::len).max().unwrap_or(0);
    let cell_widths: Vec<usize> =
        (0..columns).map(|i| cells.iter().filter_map(|c| c.get(i)).map(|c| width(c)).max().unwrap_or(0)).collect();
    for (row, cells) in rows.iter().zip(&cells) {
        let mut line = format!(
            "    {}{}  {}{}",
            row.layer,
            " ".repeat(layer_width - width(&row.layer)),
            row.concept,
            " ".repeat(concept_width - width(&row.concept))
        );
        for (cell, &w) in cells.iter().zip(&cell_widths) {
            line.push_str("  ");
            line.push_str(cell);
            line.push_str(&" ".repeat(w - width(cell)));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Whether a column's cells line up on the left or on the right.
#[derive(Clone, Copy)]
enum Align {
    Left,
    Right,
}

/// Shown where the report holds no value (older reports).
const MISSING: &str = "–";

fn class_table(rows: &[&ConceptResult], with_rank: bool) -> String {
    use Align::{Left, Right};
    let mut columns = vec![
        ("layer", Left),
        ("concept", Left),
        ("TCAV±std", Right),
        ("95% CI", Right),
        ("baseline", Right),
        ("d", Right),
        ("CAV acc", Right),
        ("p", Right),
        ("p_adj", Right),
    ];
    if with_rank {
        columns.push(("rank p", Right));
    }
    columns.extend([("", Left), ("verdict", Left)]);
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut row = vec![
                r.layer.clone(),
                r.concept.clone(),
                format!("{:.3}±{:.3}", r.mean, r.std),
                match (r.ci95_low, r.ci95_high) {
                    (Some(low), Some(high)) => format!("[{low:.3}, {high:.3}]"),
                    _ => MISSING.to_string(),
                },
                format!("{:.3}±{:.3}", r.baseline_mean, r.baseline_std),
                r.cohens_d.map_or_else(|| MISSING.to_string(), |d| format!("{d:.2}")),
                format!("{:.3}", r.cav_accuracy_mean),
                p_value(r.p_value),
                p_value(r.p_adjusted),
            ];
            if with_rank {
                row.push(r.rank_p_value.map_or_else(|| MISSING.to_string(), p_value));
            }
            let mark = if !r.reliable {
                UNRELIABLE_MARK
            } else if !r.verdict.is_significant() {
                NOT_SIGNIFICANT_MARK
            } else {
                ""
            };
            row.extend([mark.to_string(), verdict_word(r.verdict).to_string()]);
            row
        })
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, (title, _))| cells.iter().map(|row| width(&row[i])).chain([width(title)]).max().unwrap_or(0))
        .collect();

    let mut out = String::new();
    let mut line = |texts: &[&str]| {
        let mut text = String::new();
        for (i, ((cell, (_, align)), &w)) in texts.iter().zip(&columns).zip(&widths).enumerate() {
            // The marker column is one character wide and sits one space
            // from the verdict it qualifies; it vanishes when no row is marked.
            if i == columns.len() - 1 {
                text.push(' ');
            } else if w > 0 {
                text.push_str("  ");
            }
            let pad = " ".repeat(w - width(cell));
            match align {
                Align::Left => {
                    text.push_str(cell);
                    text.push_str(&pad);
                }
                Align::Right => {
                    text.push_str(&pad);
                    text.push_str(cell);
                }
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    let titles: Vec<&str> = columns.iter().map(|(t, _)| *t).collect();
    line(&titles);
    let rules: Vec<String> = widths
        .iter()
        .zip(&columns)
        .map(|(&w, (title, _))| if title.is_empty() { " ".repeat(w) } else { "-".repeat(w) })
        .collect();
    line(&rules.iter().map(String::as_str).collect::<Vec<_>>());
    for row in &cells {
        line(&row.iter().map(String::as_str).collect::<Vec<_>>());
    }
    out
}

/// Display width in characters: every character this table prints (ASCII,
/// `±`, `≥`, `≤`, `α`, `–`) is one column wide in a monospaced font.
fn width(text: &str) -> usize {
    text.chars().count()
}

fn percent(fraction: f64) -> String {
    format!("{:.1}%", fraction * 100.0)
}

/// Four decimals hide small p-values as 0.0000, so those switch to
/// scientific notation.
fn p_value(p: f64) -> String {
    if p == 0.0 {
        "0".into()
    } else if p < 1e-3 {
        format!("{p:.1e}")
    } else {
        format!("{p:.4}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tests::sample;

    #[test]
    fn the_summary_lists_each_verdict_per_class_and_layer() {
        let report = crate::fixture::sample();
        let summary = render_summary(&report);
        assert_eq!(summary.lines().count(), 2 + report.classes.len() * report.layers.len(), "{summary}");
        for row in &report.results {
            let line = summary
                .lines()
                .find(|l| l.split_whitespace().take(2).eq([row.class.as_str(), row.layer.as_str()]))
                .unwrap_or_else(|| panic!("no line for {}/{}", row.class, row.layer));
            assert!(line.contains(&row.concept), "{} missing from {line}", row.concept);
        }
    }

    #[test]
    fn table_holds_every_row_with_markers_and_direction_words() {
        let report = sample();
        let text = render_table(&report);
        assert!(text.contains("seed 42"), "{text}");
        assert!(text.contains("welch") && text.contains("bonferroni") && text.contains("α = 0.05"), "{text}");
        assert!(text.contains("test accuracy 93.2%") || text.contains("test accuracy 93.3%"), "{text}");
        assert!(text.contains("Class `zebra`") && text.contains("Class `tiger`"));

        let lines: Vec<&str> = text.lines().collect();
        let find = |layer: &str, concept: &str, class_start: usize| {
            lines[class_start..]
                .iter()
                .find(|l| l.split_whitespace().take(2).eq([layer, concept]))
                .copied()
                .unwrap_or_else(|| panic!("no row {layer}/{concept} in\n{text}"))
        };
        let zebra = lines.iter().position(|l| l.starts_with("Class `zebra`")).unwrap();
        let tiger = lines.iter().position(|l| l.starts_with("Class `tiger`")).unwrap();

        let striped = find("conv4", "striped", zebra);
        assert!(striped.contains("0.930±0.030") && striped.contains("0.520±0.160"), "{striped}");
        assert!(striped.contains("3.0e-9") && striped.ends_with("    above"), "{striped}");
        assert!(!striped.contains(" * "), "{striped}");
        // 95% CI, Cohen's d (0.41 / 0.11) and the rank p (p_adj / 2).
        assert!(striped.contains("[0.893, 0.967]") && striped.contains("  3.73  "), "{striped}");
        assert!(striped.contains("  1.5e-9  "), "{striped}");

        let dotted = find("conv4", "dotted", zebra);
        assert!(dotted.ends_with("    below"), "{dotted}");
        let dotted_ns = find("conv2", "dotted", zebra);
        assert!(dotted_ns.ends_with("* not significant"), "{dotted_ns}");
        assert!(dotted_ns.contains("0.8400"), "{dotted_ns}");

        assert!(find("conv2", "dotted", tiger).ends_with("    below"));
        let unreliable = find("conv2", "zigzagged", tiger);
        assert!(unreliable.ends_with("? unreliable") && unreliable.contains("0.520"), "{unreliable}");
        // Every row appears once.
        let row_count = lines.iter().filter(|l| l.starts_with("  conv")).count();
        assert_eq!(row_count, report.results.len(), "{text}");
        assert!(text.contains("* not significant: p_adj ≥ α = 0.05"));
    }

    #[test]
    fn header_names_the_method_and_the_notes_follow_their_class() {
        let text = render_table(&sample());
        assert!(
            text.contains(
                "CAV estimator: logistic | design: all-pairs baseline | CAV accuracy gate: mean held-out ≥ 0.6 | rank test: mann-whitney"
            ),
            "{text}"
        );
        let (zebra, tiger) = text.split_once("Class `tiger`").unwrap();
        let near_chance = "? CAVs near chance (mean held-out accuracy < 0.6): no significance is claimed.";
        assert!(tiger.contains(near_chance) && !zebra.contains(near_chance), "{text}");
        // Zebra's conv4 baseline has 80 % extreme scores; conv2's 20 % do not warn.
        assert!(zebra.contains("  ! conv4: 80.0% of baseline scores are ≤ 0.05 or ≥ 0.95"), "{text}");
        assert!(zebra.contains("read the rank p there") && !zebra.contains("! conv2"), "{text}");
        for line in text.lines() {
            assert!(line.chars().count() <= 120, "line wider than 120 columns:\n{line}");
        }
        // The reading guide comes once, after every table.
        let guide = text.find("Reading the verdicts").unwrap();
        assert!(guide > text.rfind("  conv").unwrap());
        assert!(text[guide..].contains("`above` means") && text[guide..].contains("pushes away"), "{text}");
        assert!(text[guide..].contains("scores near 0 are flagged too; they mean `below`, not\n\"important\""));
    }

    #[test]
    fn stability_lines_follow_each_class_block() {
        let text = render_table(&sample());
        let (zebra, tiger) = text.split_once("Class `tiger`").unwrap();
        let section = zebra.split_once("  stability: ").unwrap().1;
        let lines: Vec<&str> = section.lines().skip(1).take_while(|l| l.starts_with("    ")).collect();
        assert_eq!(lines.len(), 2, "{section}");
        assert!(lines[0].starts_with("    conv2  striped  "), "{}", lines[0]);
        assert!(
            lines[0].contains("3: above (p_adj 0.0300)")
                && lines[0].contains("4: above (p_adj 2.0e-4)")
                && lines[0].contains("5: above (p_adj 1.2e-6)"),
            "{}",
            lines[0]
        );
        assert!(lines[1].contains("4: n.s. (p_adj 0.1200)"), "{}", lines[1]);
        // Cells line up across lines.
        assert_eq!(lines[0].find("4: "), lines[1].find("4: "), "{section}");
        assert!(
            tiger.contains("    conv2  zigzagged  3: unreliable (p_adj 0.2000)  5: unreliable (p_adj 1.0e-4)"),
            "{tiger}"
        );
    }

    #[test]
    fn reports_without_the_new_fields_render_dashes() {
        let old: ExperimentReport = serde_json::from_str(&crate::model::tests::old_report_json()).unwrap();
        let text = render_table(&old);
        assert!(text.contains("CAV estimator: not recorded | design: not recorded | no CAV accuracy gate"), "{text}");
        assert!(!text.contains("rank p") && !text.contains("stability:") && !text.contains("? "), "{text}");
        let row = text.lines().find(|l| l.starts_with("  conv4  striped")).unwrap();
        assert!(row.contains("  –  ") && row.ends_with("above"), "{row}");
    }

    #[test]
    fn columns_are_aligned_and_plain() {
        let text = render_table(&sample());
        assert!(!text.contains('\u{1b}'), "no colour codes");
        let lines: Vec<Vec<char>> = text.lines().map(|l| l.chars().collect()).collect();
        let header = lines.iter().position(|l| l.starts_with(&[' ', ' ', 'l', 'a', 'y', 'e', 'r'][..])).unwrap();
        let head: String = lines[header].iter().collect();
        let col = |needle: &str| head.find(needle).map(|b| head[..b].chars().count()).unwrap();
        let (p_adj_end, verdict_start) = (col("p_adj") + 5, col("verdict"));
        let rows: Vec<&Vec<char>> =
            lines[header + 2..].iter().take_while(|l| l.starts_with(&[' ', ' ', 'c'][..])).collect();
        assert_eq!(rows.len(), 6, "{text}");
        for row in rows {
            let line: String = row.iter().collect();
            assert!(
                row[p_adj_end - 1].is_ascii_digit() && row[p_adj_end] == ' ',
                "p_adj not right-aligned under its header:\n{head}\n{line}"
            );
            assert!(
                row[verdict_start].is_alphabetic() && row[verdict_start - 1] == ' ',
                "verdict not aligned:\n{head}\n{line}"
            );
        }
    }

    #[test]
    fn small_p_values_switch_to_scientific_notation() {
        assert_eq!(p_value(0.0123), "0.0123");
        assert_eq!(p_value(0.00012), "1.2e-4");
        assert_eq!(p_value(0.0), "0");
    }

    #[test]
    fn a_class_without_results_says_so() {
        let mut report = sample();
        report.classes.push("horse".into());
        let text = render_table(&report);
        assert!(text.contains("Class `horse`\n  (no results for this class)"), "{text}");
    }
}
