//! The plain-text table: one block per class, aligned, without colour codes,
//! so the same text suits a terminal and a file.

use std::fmt::Write as _;

use crate::model::{ConceptResult, ExperimentReport};

/// Marks a row whose difference from the random baseline is not significant.
pub const NOT_SIGNIFICANT_MARK: &str = "*";

/// Renders the report as plain text: a header (experiment, seed, test,
/// correction, α, classifier accuracy) and one aligned table per class with
/// the columns layer, concept, TCAV mean ± std, baseline mean ± std, CAV
/// accuracy, p, p_adj and verdict. Rows that are not significant carry
/// [`NOT_SIGNIFICANT_MARK`], explained under each table.
///
/// The report is presented as given; call
/// [`ExperimentReport::validate`] first to reject inconsistent input.
pub fn render_table(report: &ExperimentReport) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail, so the results of writeln! are ignored.
    let _ = writeln!(out, "TCAV report: experiment `{}`, run `{}`", report.experiment, report.run_id);
    let _ = writeln!(
        out,
        "seed {} | {} t-test of concept vs random-baseline TCAV scores | {} correction | α = {}",
        report.seed, report.test, report.correction, report.alpha
    );
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
        out.push_str(&class_table(&rows));
        if rows.iter().any(|r| !r.verdict.is_significant()) {
            let _ = writeln!(
                out,
                "  {NOT_SIGNIFICANT_MARK} not significant: p_adj ≥ α = {}; the TCAV score is no evidence in either direction.",
                report.alpha
            );
        }
    }
    out
}

/// Whether a column's cells line up on the left or on the right.
#[derive(Clone, Copy)]
enum Align {
    Left,
    Right,
}

fn class_table(rows: &[&ConceptResult]) -> String {
    use Align::{Left, Right};
    let columns = [
        ("layer", Left),
        ("concept", Left),
        ("TCAV mean ± std", Right),
        ("baseline mean ± std", Right),
        ("CAV acc", Right),
        ("p", Right),
        ("p_adj", Right),
        ("", Left),
        ("verdict", Left),
    ];
    let cells: Vec<[String; 9]> = rows
        .iter()
        .map(|r| {
            [
                r.layer.clone(),
                r.concept.clone(),
                format!("{:.3} ± {:.3}", r.mean, r.std),
                format!("{:.3} ± {:.3}", r.baseline_mean, r.baseline_std),
                format!("{:.3}", r.cav_accuracy_mean),
                p_value(r.p_value),
                p_value(r.p_adjusted),
                if r.verdict.is_significant() { String::new() } else { NOT_SIGNIFICANT_MARK.to_string() },
                r.verdict.describe().to_string(),
            ]
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
/// `±`, `≥`, `α`) is one column wide in a monospaced font.
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
        assert!(striped.contains("0.930 ± 0.030") && striped.contains("0.520 ± 0.160"), "{striped}");
        assert!(striped.contains("3.0e-9") && striped.ends_with("above baseline (pushes toward class)"), "{striped}");
        assert!(!striped.contains(" * "), "{striped}");

        let dotted = find("conv4", "dotted", zebra);
        assert!(dotted.ends_with("below baseline (pushes away)"), "{dotted}");
        let dotted_ns = find("conv2", "dotted", zebra);
        assert!(dotted_ns.ends_with("* not significant"), "{dotted_ns}");
        assert!(dotted_ns.contains("0.8400"), "{dotted_ns}");

        assert!(find("conv2", "dotted", tiger).ends_with("below baseline (pushes away)"));
        // The tiger block has no zigzagged rows, and every row appears once.
        let row_count = lines.iter().filter(|l| l.starts_with("  conv")).count();
        assert_eq!(row_count, report.results.len(), "{text}");
        assert!(text.contains("* not significant: p_adj ≥ α = 0.05"));
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
