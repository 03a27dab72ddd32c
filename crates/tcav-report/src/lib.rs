//! The report stage of tcav-rs.
//!
//! Takes the results of one TCAV experiment as plain data, an
//! [`ExperimentReport`] that the orchestrator fills from the statistics
//! stage: per class, layer (bottleneck) and concept, the TCAV score of every
//! random run, the random-vs-random baseline, the CAVs' accuracy, the test
//! statistic, raw and corrected p-values, and the verdict. Produces what a
//! researcher reads and keeps: an aligned plain-text table
//! ([`render_table`]), machine-readable results ([`write_json`],
//! [`write_csv`], read back with [`read_json`]) and one bar chart per class
//! ([`write_charts`]).
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
mod model;
mod table;
mod text;

pub use chart::{CHART_SIZE, chart_file_name, write_charts};
pub use error::{ReportError, Result};
pub use files::{CSV_COLUMNS, read_json, write_csv, write_json};
pub use model::{ClassifierSummary, ConceptResult, ExperimentReport, Verdict};
pub use table::{NOT_SIGNIFICANT_MARK, render_table};
