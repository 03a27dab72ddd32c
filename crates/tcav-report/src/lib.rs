//! The report stage of tcav-rs.
//!
//! Takes the results of one TCAV experiment as plain data, an
//! [`ExperimentReport`] that the orchestrator fills from the statistics
//! stage: per class, layer (bottleneck) and concept, the TCAV score of every
//! random run, the random-vs-random baseline, the CAVs' accuracy, the test
//! statistic, raw and corrected p-values, and the verdict. Produces what a
//! researcher reads and keeps: an aligned plain-text table
//! ([`render_table`]), machine-readable results ([`write_json`],
//! [`write_csv`], read back with [`read_json`]), one bar chart per class
//! ([`write_charts`]) and, where the report holds them, one chart per class
//! of how the adjusted p-values move as random runs are added
//! ([`write_stability_chart`]). [`write_html`] puts all of it, with the
//! classifier's training curves and the images most and least sensitive to
//! each concept, into one self-contained `report.html`; [`write_runs_csv`]
//! and [`write_runs_json`] export every run's score in long form.
//!
//! Besides the t-test's verdicts a report carries what a reader needs to
//! judge them: 95 % intervals, Cohen's d, a rank or permutation test's
//! p-value, the share of baseline scores piled up at 0 and 1, the CAV
//! accuracy gate (rows whose CAVs are near chance get the verdict
//! [`Verdict::Unreliable`] and no claim), and the stability of each verdict
//! as runs grow. Fields added over time are optional in the JSON, so older
//! `report.json` files still read.
//!
//! Invariant: this crate never computes a statistic; it presents exactly
//! what it is given. It checks the report ([`ExperimentReport::validate`])
//! before writing anything, so a row naming an unlisted class or layer, a
//! NaN, or a verdict contradicting its p-value is an error naming the row,
//! never a silently wrong report. Every file is written atomically.

#![deny(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used, reason = "in a test, a failed unwrap is a failed test"))]

mod chart;
mod error;
mod files;
#[cfg(test)]
mod fixture;
mod float_serde;
mod html;
mod model;
mod stability_chart;
mod table;
mod text;

pub use chart::{CHART_SIZE, chart_file_name, write_charts};
pub use error::{ReportError, Result};
pub use files::{CSV_COLUMNS, RUNS_COLUMNS, read_json, write_csv, write_json, write_runs_csv, write_runs_json};
pub use html::{HtmlInputs, SensitiveImages, THUMBNAIL_SIZE, TrainingCurves, render_html, write_html};
pub use model::{ClassifierSummary, ConceptResult, ExperimentReport, StabilityPoint, StabilityRow, Verdict};
pub use stability_chart::{stability_chart_file_name, write_stability_chart};
pub use table::{NOT_SIGNIFICANT_MARK, UNRELIABLE_MARK, render_summary, render_table};
