//! Opens a `report.html` written from the test fixture in a real headless
//! Chromium, driven over the DevTools protocol, and checks that it renders:
//! no console errors, no uncaught exceptions, no request leaving the file,
//! every chart drawn with a non-zero size, every table with its rows, every
//! thumbnail decoded, and the sort script working.
//!
//! Chromium comes from Debian's `chromium` package, which `cargo xtask test`
//! installs when it is missing. Without it this test fails, saying so: a
//! browser check that skips itself would pass without checking anything.

#![allow(clippy::unwrap_used, reason = "in a test, a failed unwrap is a failed test")]

use std::path::{Path, PathBuf};
use std::time::Instant;

use tcav_report::{
    ClassifierSummary, ConceptResult, ExperimentReport, HtmlInputs, SensitiveImages, StabilityPoint, StabilityRow,
    TrainingCurves, Verdict, write_html,
};

#[path = "support/browser_check.rs"]
mod browser_check;
#[path = "../src/fixture.rs"]
mod fixture;

use browser_check::Page;

/// Clicks the header of the mean TCAV score twice and returns the column's
/// values after each click, top to bottom.
const SORT: &str = r##"
(() => {
  const header = document.querySelectorAll("#results-table thead th")[3];
  const column = () => Array.from(document.querySelectorAll("#results-table tbody tr"))
    .map((row) => parseFloat(row.cells[3].getAttribute("data-sort")));
  header.click();
  const ascending = column();
  header.click();
  return JSON.stringify([ascending, column()]);
})()
"##;

fn write_report(dir: &Path) -> (ExperimentReport, PathBuf) {
    let mut report = fixture::sample();
    // A hostile set name must show as text, not run.
    let evil = "<script>alert(1)</script>";
    report.concepts[1] = evil.into();
    for r in &mut report.results {
        if r.concept == "dotted" {
            r.concept = evil.into();
        }
    }
    let images = dir.join("images");
    std::fs::create_dir_all(&images).unwrap();
    let inputs = HtmlInputs {
        report: &report,
        training: Some(fixture::training_curves()),
        sensitive_images: fixture::sensitive_images(&report, &images),
        notes: vec![("device".into(), "cpu".into())],
    };
    let path = dir.join("report.html");
    write_html(&inputs, &path).unwrap();
    (report, path)
}

#[test]
fn report_html_renders_in_headless_chromium() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let (report, path) = write_report(dir.path());

    let page = Page::open(&path);
    let rendered = page.assert_renders();
    assert_eq!(rendered.charts.len(), report.classes.len() * report.layers.len(), "{rendered:?}");
    assert_eq!(rendered.training.len(), 1);
    assert_eq!(rendered.result_rows, report.results.len());
    let stability: Vec<usize> =
        report.classes.iter().map(|c| report.stability.iter().filter(|r| r.class == *c).count()).collect();
    assert_eq!(rendered.stability_rows, stability);
    assert_eq!(rendered.confusion_rows, fixture::training_curves().classes.len());
    assert_eq!(rendered.images.len(), report.results.len() * 6);

    let (ascending, descending): (Vec<f64>, Vec<f64>) = serde_json::from_str(&page.evaluate(SORT)).unwrap();
    assert_eq!(ascending.len(), report.results.len());
    assert!(ascending.windows(2).all(|w| w[0] <= w[1]), "{ascending:?}");
    assert!(descending.windows(2).all(|w| w[0] >= w[1]), "{descending:?}");
    let problems = page.take_problems();
    assert!(problems.console_errors.is_empty() && problems.exceptions.is_empty(), "after sorting: {problems:?}");

    eprintln!(
        "report.html checked in {} in {:.1} s",
        browser_check::chromium().display(),
        started.elapsed().as_secs_f64()
    );
}
