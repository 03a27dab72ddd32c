//! Writes every output of the report stage for the crate's test fixture (a
//! small made-up experiment with every kind of verdict), to see what they
//! look like: `cargo run -p tcav-report --example report_preview -- DIR`.
//!
//! The numbers are invented for display only; no statistics are computed.

#![allow(clippy::unwrap_used, reason = "a preview tool; the fixture unwraps its image writes")]

use std::path::PathBuf;

pub use tcav_report::{
    ClassifierSummary, ConceptResult, ExperimentReport, HtmlInputs, SensitiveImages, StabilityPoint, StabilityRow,
    TrainingCurves, Verdict,
};

#[allow(dead_code, reason = "the preview uses part of the fixture")]
#[path = "../src/fixture.rs"]
mod fixture;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(std::env::args().nth(1).ok_or("usage: report_preview DIR")?);
    let report = fixture::sample();
    print!("{}", tcav_report::render_table(&report));
    tcav_report::write_json(&report, &dir.join("report.json"))?;
    tcav_report::write_csv(&report, &dir.join("report.csv"))?;
    for path in tcav_report::write_charts(&report, &dir)? {
        println!("chart: {}", path.display());
    }
    for path in tcav_report::write_stability_chart(&report, &dir)? {
        println!("stability chart: {}", path.display());
    }
    tcav_report::write_runs_csv(&report, &dir.join("runs.csv"))?;
    tcav_report::write_runs_json(&report, &dir.join("runs.json"))?;
    let images = dir.join("images");
    std::fs::create_dir_all(&images)?;
    let inputs = HtmlInputs {
        report: &report,
        training: Some(fixture::training_curves()),
        sensitive_images: fixture::sensitive_images(&report, &images),
        notes: vec![("device".into(), "cpu (preview)".into())],
    };
    tcav_report::write_html(&inputs, &dir.join("report.html"))?;
    println!("html: {}", dir.join("report.html").display());
    Ok(())
}
