//! Machine-readable results: the whole report as JSON, one CSV row per
//! result for spreadsheets and data frames, and every run's score in long
//! form (one row per run) for plotting and re-analysis.

use std::path::Path;

use serde::Serialize;
use tcav_core::store;

use crate::error::Result;
use crate::model::ExperimentReport;

/// Writes the report as pretty JSON to `path`, atomically, after checking it
/// with [`ExperimentReport::validate`]. [`read_json`] reads back exactly the
/// same numbers.
pub fn write_json(report: &ExperimentReport, path: &Path) -> Result<()> {
    report.validate()?;
    store::write_json(path, report)?;
    tracing::info!(path = %path.display(), results = report.results.len(), "wrote TCAV report JSON");
    Ok(())
}

/// Reads a report written by [`write_json`] and checks it with
/// [`ExperimentReport::validate`].
pub fn read_json(path: &Path) -> Result<ExperimentReport> {
    let report: ExperimentReport = store::read_json(path)?;
    report.validate()?;
    Ok(report)
}

/// The CSV columns, in order. Columns added after the first release come
/// last, so that readers indexing the older columns by position still work.
pub const CSV_COLUMNS: [&str; 25] = [
    "experiment",
    "run_id",
    "class",
    "layer",
    "concept",
    "mean",
    "std",
    "baseline_mean",
    "baseline_std",
    "cav_accuracy_mean",
    "t",
    "p_value",
    "p_adjusted",
    "verdict",
    "scores",
    "baseline_scores",
    "ci95_low",
    "ci95_high",
    "cohens_d",
    "magnitude_mean",
    "magnitude_std",
    "rank_p_value",
    "baseline_extreme_fraction",
    "reliable",
    "derivatives_file",
];

/// Writes one CSV row per result (in the order of `results`) under a header
/// of [`CSV_COLUMNS`], atomically, after checking the report with
/// [`ExperimentReport::validate`]. Numbers are written in their shortest form
/// that parses back to the same `f64` (`inf` / `-inf` for an infinite t or
/// Cohen's d); `scores` and `baseline_scores` hold the per-run scores joined
/// with `;`; optional numbers the report does not hold are empty cells;
/// `reliable` is `true` or `false`. The experiment and run id repeat on
/// every row so that the CSVs of several runs can be concatenated.
pub fn write_csv(report: &ExperimentReport, path: &Path) -> Result<()> {
    report.validate()?;
    store::write_atomic(path, render_csv(report).as_bytes())?;
    tracing::info!(path = %path.display(), rows = report.results.len(), "wrote TCAV report CSV");
    Ok(())
}

/// The columns of the per-run export, in order: one row per (class, layer,
/// concept, kind, run). `kind` is `concept` for the concept's TCAV score in
/// that run and `baseline` for the random-vs-random score its test compared
/// against; `run` is the 0-based index into `scores` / `baseline_scores`;
/// `score` is the TCAV score, a fraction of the class's images in `[0, 1]`.
pub const RUNS_COLUMNS: [&str; 8] = ["experiment", "run_id", "class", "layer", "concept", "kind", "run", "score"];

/// One row of the per-run export; its fields are [`RUNS_COLUMNS`].
#[derive(Serialize)]
struct RunScore<'a> {
    experiment: &'a str,
    run_id: &'a str,
    class: &'a str,
    layer: &'a str,
    concept: &'a str,
    kind: &'static str,
    run: usize,
    score: f64,
}

/// Every run's score, results in their order, each result's concept runs
/// before its baseline runs. The baseline's rows repeat under every concept
/// because each test has its own baseline sample (they are the same sample
/// when the design shares one baseline per class and layer).
fn run_scores(report: &ExperimentReport) -> Vec<RunScore<'_>> {
    let mut rows = Vec::new();
    for r in &report.results {
        for (kind, scores) in [("concept", &r.scores), ("baseline", &r.baseline_scores)] {
            rows.extend(scores.iter().enumerate().map(|(run, &score)| RunScore {
                experiment: &report.experiment,
                run_id: &report.run_id,
                class: &r.class,
                layer: &r.layer,
                concept: &r.concept,
                kind,
                run,
                score,
            }));
        }
    }
    rows
}

/// Writes every run's TCAV score as CSV under a header of [`RUNS_COLUMNS`]
/// (tidy, long form: one row per class, layer, concept, kind and run),
/// atomically, after checking the report with
/// [`ExperimentReport::validate`]. Numbers are written as in [`write_csv`].
pub fn write_runs_csv(report: &ExperimentReport, path: &Path) -> Result<()> {
    report.validate()?;
    let rows = run_scores(report);
    let mut out = RUNS_COLUMNS.join(",");
    out.push('\n');
    for row in &rows {
        let fields = [
            csv_field(row.experiment),
            csv_field(row.run_id),
            csv_field(row.class),
            csv_field(row.layer),
            csv_field(row.concept),
            row.kind.to_string(),
            row.run.to_string(),
            number(row.score),
        ];
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    store::write_atomic(path, out.as_bytes())?;
    tracing::info!(path = %path.display(), rows = rows.len(), "wrote TCAV per-run scores CSV");
    Ok(())
}

/// Writes the rows of [`write_runs_csv`] as a JSON array of objects keyed by
/// [`RUNS_COLUMNS`], atomically, after checking the report with
/// [`ExperimentReport::validate`].
pub fn write_runs_json(report: &ExperimentReport, path: &Path) -> Result<()> {
    report.validate()?;
    let rows = run_scores(report);
    store::write_json(path, &rows)?;
    tracing::info!(path = %path.display(), rows = rows.len(), "wrote TCAV per-run scores JSON");
    Ok(())
}

fn render_csv(report: &ExperimentReport) -> String {
    let mut out = CSV_COLUMNS.join(",");
    out.push('\n');
    let joined = |values: &[f64]| values.iter().map(|&v| number(v)).collect::<Vec<_>>().join(";");
    let optional = |value: Option<f64>| value.map(number).unwrap_or_default();
    for r in &report.results {
        let fields = [
            report.experiment.clone(),
            report.run_id.clone(),
            r.class.clone(),
            r.layer.clone(),
            r.concept.clone(),
            number(r.mean),
            number(r.std),
            number(r.baseline_mean),
            number(r.baseline_std),
            number(r.cav_accuracy_mean),
            number(r.t),
            number(r.p_value),
            number(r.p_adjusted),
            r.verdict.as_str().to_string(),
            joined(&r.scores),
            joined(&r.baseline_scores),
            optional(r.ci95_low),
            optional(r.ci95_high),
            optional(r.cohens_d),
            optional(r.magnitude_mean),
            optional(r.magnitude_std),
            optional(r.rank_p_value),
            optional(r.baseline_extreme_fraction),
            r.reliable.to_string(),
            r.derivatives_file.clone().unwrap_or_default(),
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}

/// The shortest text that parses back to exactly `value`. Rust's plain
/// form never uses an exponent, which spells a p-value of 1e-12 with eleven
/// zeros, so very small and very large magnitudes use the exponent form.
fn number(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude != 0.0 && !(1e-4..1e15).contains(&magnitude) { format!("{value:e}") } else { value.to_string() }
}

/// Quotes a field as RFC 4180 asks when it holds a separator, a quote or a
/// line break; names come from user configs and may.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ReportError;
    use crate::model::tests::sample;

    #[test]
    fn json_round_trips_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out/report.json");
        let mut report = sample();
        // Values whose shortest decimal form needs all 17 digits, where
        // best-effort float parsing can land one ULP off.
        let mut x = 0.123_456_789_f64;
        for r in &mut report.results {
            for s in r.scores.iter_mut().chain(r.baseline_scores.iter_mut()) {
                x = (x * 7.318_927_104_3 + 0.271_828_182_845_904_5).fract();
                *s = x;
            }
            r.t = -x * 1e3 / 7.0;
            r.p_value = r.p_adjusted / 3.0;
        }
        write_json(&report, &path).unwrap();
        let back = read_json(&path).unwrap();
        assert_eq!(back, report);
        for (a, b) in back.results.iter().zip(&report.results) {
            for (x, y) in a.scores.iter().zip(&b.scores) {
                assert_eq!(x.to_bits(), y.to_bits());
            }
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"verdict\": \"not-significant\""), "{text}");
        assert!(text.contains("\"verdict\": \"unreliable\"") && text.contains("\"stability\": ["), "{text}");
        assert!(text.contains("\"verdict\": \"above\"") && text.contains("\"verdict\": \"below\""));
    }

    #[test]
    fn infinite_statistics_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.json");
        let mut report = sample();
        report.results[3].t = f64::NEG_INFINITY;
        report.results[3].cohens_d = Some(f64::NEG_INFINITY);
        report.results[0].t = f64::INFINITY;
        report.results[0].cohens_d = Some(f64::INFINITY);
        report.results[1].cohens_d = None;
        write_json(&report, &path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"t\": \"-inf\"") && text.contains("\"cohens_d\": \"inf\""), "{text}");
        assert!(text.contains("\"cohens_d\": null"), "{text}");
        assert_eq!(read_json(&path).unwrap(), report);
    }

    #[test]
    fn old_report_files_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.json");
        std::fs::write(&path, crate::model::tests::old_report_json()).unwrap();
        let old = read_json(&path).unwrap();
        assert!(old.results.iter().all(|r| r.reliable && r.cohens_d.is_none()));
        // Rewriting it keeps the numbers and adds the new fields' defaults.
        write_json(&old, &path).unwrap();
        assert_eq!(read_json(&path).unwrap(), old);
    }

    #[test]
    fn invalid_reports_are_not_written_or_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.json");
        let mut report = sample();
        report.results[1].mean = f64::NAN;
        assert!(matches!(write_json(&report, &path), Err(ReportError::InvalidResult { index: 1, .. })));
        assert!(matches!(write_csv(&report, &path), Err(ReportError::InvalidResult { index: 1, .. })));
        assert!(!path.exists());

        // A hand-edited file with an unlisted layer is rejected on reading.
        let mut report = sample();
        report.results[2].layer = "conv9".into();
        std::fs::write(&path, serde_json::to_vec(&report).unwrap()).unwrap();
        let msg = read_json(&path).unwrap_err().to_string();
        assert!(msg.contains("#2") && msg.contains("conv9"), "{msg}");

        std::fs::write(&path, b"{ not json").unwrap();
        let msg = read_json(&path).unwrap_err().to_string();
        assert!(msg.contains("report.json"), "{msg}");
    }

    #[test]
    fn csv_has_a_header_and_one_line_per_result() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results.csv");
        let report = sample();
        write_csv(&report, &path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), report.results.len() + 1);
        assert_eq!(lines[0], CSV_COLUMNS.join(","));
        for (line, r) in lines[1..].iter().zip(&report.results) {
            let cells: Vec<&str> = line.split(',').collect();
            assert_eq!(cells.len(), CSV_COLUMNS.len(), "{line}");
            assert_eq!(cells[2..5], [r.class.as_str(), r.layer.as_str(), r.concept.as_str()]);
            assert_eq!(cells[5].parse::<f64>().unwrap(), r.mean);
            assert_eq!(cells[13], r.verdict.as_str());
            let scores: Vec<f64> = cells[14].split(';').map(|s| s.parse().unwrap()).collect();
            assert_eq!(scores, r.scores);
            let baseline: Vec<f64> = cells[15].split(';').map(|s| s.parse().unwrap()).collect();
            assert_eq!(baseline, r.baseline_scores);
            let cell = |name: &str| cells[CSV_COLUMNS.iter().position(|c| *c == name).unwrap()];
            let parsed = |name: &str| Some(cell(name).parse::<f64>().unwrap());
            assert_eq!(parsed("ci95_low"), r.ci95_low);
            assert_eq!(parsed("ci95_high"), r.ci95_high);
            assert_eq!(parsed("cohens_d"), r.cohens_d);
            assert_eq!(parsed("magnitude_mean"), r.magnitude_mean);
            assert_eq!(parsed("magnitude_std"), r.magnitude_std);
            assert_eq!(parsed("rank_p_value"), r.rank_p_value);
            assert_eq!(parsed("baseline_extreme_fraction"), r.baseline_extreme_fraction);
            assert_eq!(cell("reliable"), r.reliable.to_string());
            assert_eq!(Some(cell("derivatives_file")), r.derivatives_file.as_deref());
        }
        let unreliable = lines.iter().find(|l| l.contains(",unreliable,")).unwrap();
        assert!(unreliable.contains(",false,derivatives/tiger/conv2/zigzagged.npy"), "{unreliable}");
    }

    #[test]
    fn csv_leaves_missing_numbers_empty_and_spells_infinity() {
        let mut report = sample();
        report.results[0].cohens_d = None;
        report.results[0].ci95_low = None;
        report.results[0].ci95_high = None;
        report.results[0].derivatives_file = None;
        report.results[3].cohens_d = Some(f64::NEG_INFINITY);
        report.results[3].t = f64::NEG_INFINITY;
        report.validate().unwrap();
        let text = render_csv(&report);
        let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split(',').collect()).collect();
        let column = |name: &str| CSV_COLUMNS.iter().position(|c| *c == name).unwrap();
        for name in ["ci95_low", "ci95_high", "cohens_d", "derivatives_file"] {
            assert_eq!(lines[1][column(name)], "", "{name}");
        }
        assert_eq!(lines[4][column("cohens_d")], "-inf");
        assert_eq!(lines[4][column("t")], "-inf");
    }

    #[test]
    fn csv_numbers_are_short_and_exact() {
        for value in [0.0, 1.0, 0.5, 0.1 + 0.2, 8.333_333_333_333_333e-8, 1e-300, -4.2, 12.5, 3e20] {
            let text = number(value);
            assert_eq!(text.parse::<f64>().unwrap().to_bits(), value.to_bits(), "{text}");
            assert!(text.len() <= 24, "{text}");
        }
        assert_eq!(number(1e-12), "1e-12");
        assert_eq!(number(0.05), "0.05");
    }

    #[test]
    fn runs_export_has_one_row_per_run_in_csv_and_json() {
        let dir = tempfile::tempdir().unwrap();
        let mut report = sample();
        report.experiment = "demo, v2".into();
        let csv = dir.path().join("runs.csv");
        let json = dir.path().join("runs.json");
        write_runs_csv(&report, &csv).unwrap();
        write_runs_json(&report, &json).unwrap();

        let expected: usize = report.results.iter().map(|r| r.scores.len() + r.baseline_scores.len()).sum();
        let text = std::fs::read_to_string(&csv).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], RUNS_COLUMNS.join(","));
        assert_eq!(lines.len(), expected + 1);
        let r = &report.results[3];
        assert_eq!(
            lines[1 + 2 * 5 * 3 + 5 + 2],
            format!("\"demo, v2\",run-0001,zebra,conv4,dotted,baseline,2,{}", r.baseline_scores[2])
        );
        assert_eq!(
            lines[1 + 2 * 5 * 3 + 1],
            format!("\"demo, v2\",run-0001,zebra,conv4,dotted,concept,1,{}", r.scores[1])
        );

        let rows: Vec<serde_json::Value> = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        assert_eq!(rows.len(), expected);
        let mut keys: Vec<&String> = rows[0].as_object().unwrap().keys().collect();
        keys.sort();
        let mut columns = RUNS_COLUMNS.to_vec();
        columns.sort();
        assert_eq!(keys, columns);
        // The JSON rows are the CSV rows, in the same order.
        for (row, line) in rows.iter().zip(&lines[1..]) {
            let score: f64 = line.rsplit(',').next().unwrap().parse().unwrap();
            assert_eq!(row["score"].as_f64().unwrap().to_bits(), score.to_bits(), "{line}");
            assert!(line.contains(&format!(",{},{},", row["kind"].as_str().unwrap(), row["run"])), "{line}");
        }

        let mut invalid = report.clone();
        invalid.results[0].scores[0] = f64::NAN;
        assert!(write_runs_csv(&invalid, &dir.path().join("bad.csv")).is_err());
        assert!(write_runs_json(&invalid, &dir.path().join("bad.json")).is_err());
        assert!(!dir.path().join("bad.csv").exists() && !dir.path().join("bad.json").exists());
    }

    #[test]
    fn csv_fields_with_separators_are_quoted() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        let mut report = sample();
        report.experiment = "demo, v2".into();
        let text = render_csv(&report);
        assert!(text.lines().nth(1).unwrap().starts_with("\"demo, v2\",run-0001,zebra,"), "{text}");
    }
}
