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
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use headless_chrome::protocol::cdp::Log::LogEntryLevel;
use headless_chrome::protocol::cdp::Runtime::ConsoleAPICalledEventTypeOption;
use headless_chrome::protocol::cdp::types::Event;
use headless_chrome::{Browser, LaunchOptions};
use tcav_report::{
    ClassifierSummary, ConceptResult, ExperimentReport, HtmlInputs, SensitiveImages, StabilityPoint, StabilityRow,
    TrainingCurves, Verdict, write_html,
};

#[path = "../src/fixture.rs"]
mod fixture;

/// How long any one step in the browser may take before the test fails.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// Debian's Chromium, or the first `chromium` on `PATH`.
fn chromium() -> PathBuf {
    let debian = PathBuf::from("/usr/bin/chromium");
    if debian.is_file() {
        return debian;
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("chromium"))
        .find(|path| path.is_file())
        .unwrap_or_else(|| {
            panic!(
                "Chromium is not installed (looked for /usr/bin/chromium and `chromium` on PATH): run \
                 `cargo xtask test`, which installs Debian's `chromium` package, or \
                 `apt-get install -y --no-install-recommends chromium`"
            )
        })
}

/// What the page reported while it loaded and ran.
#[derive(Default)]
struct Problems {
    console_errors: Vec<String>,
    exceptions: Vec<String>,
}

/// The report as the browser sees it, measured by `MEASURE`.
#[derive(Debug, serde::Deserialize)]
struct Rendered {
    /// Width and height of each chart's `<svg>`, as laid out.
    charts: Vec<(f64, f64)>,
    /// Per chart, how many of its `<text>` elements have a non-empty box.
    chart_texts: Vec<usize>,
    training: Vec<(f64, f64)>,
    result_rows: usize,
    stability_rows: Vec<usize>,
    confusion_rows: usize,
    /// Per `<img>`: `complete` and `naturalWidth`.
    images: Vec<(bool, u32)>,
    /// Every resource the page fetched other than data URIs.
    fetched: Vec<String>,
}

const MEASURE: &str = r##"
(async () => {
  await Promise.all(Array.from(document.images).map((img) => img.decode().catch(() => null)));
  const size = (el) => { const r = el.getBoundingClientRect(); return [r.width, r.height]; };
  const charts = Array.from(document.querySelectorAll("figure.tcav-chart > svg"));
  return JSON.stringify({
    charts: charts.map(size),
    chart_texts: charts.map((svg) =>
      Array.from(svg.querySelectorAll("text")).filter((t) => t.getBBox().width > 0).length),
    training: Array.from(document.querySelectorAll("figure.training-chart > svg")).map(size),
    result_rows: document.querySelectorAll("#results-table > tbody > tr").length,
    stability_rows: Array.from(document.querySelectorAll("table.stability")).map((t) => t.tBodies[0].rows.length),
    confusion_rows: document.querySelectorAll("table.confusion > tbody > tr").length,
    images: Array.from(document.images).map((img) => [img.complete, img.naturalWidth]),
    fetched: performance.getEntriesByType("resource").map((e) => e.name).filter((n) => !n.startsWith("data:")),
  });
})()
"##;

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

fn evaluate(tab: &headless_chrome::Tab, script: &str) -> String {
    let result = tab.evaluate(script, true).unwrap_or_else(|e| panic!("evaluating in the page failed: {e}"));
    match result.value {
        Some(serde_json::Value::String(json)) => json,
        other => panic!("the page script returned {other:?} ({:?})", result.description),
    }
}

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

    let options = LaunchOptions::default_builder()
        .path(Some(chromium()))
        .headless(true)
        // Chromium's sandbox refuses to run as root, as CI containers do.
        .sandbox(false)
        .window_size(Some((1280, 1024)))
        .idle_browser_timeout(STEP_TIMEOUT)
        .build()
        .unwrap();
    let browser = Browser::new(options).unwrap_or_else(|e| panic!("Chromium did not start: {e}"));
    let tab = browser.new_tab().unwrap();
    tab.set_default_timeout(STEP_TIMEOUT);

    let problems = Arc::new(Mutex::new(Problems::default()));
    let sink = Arc::clone(&problems);
    tab.add_event_listener(Arc::new(move |event: &Event| {
        // A poisoned lock means the test already failed; keep recording.
        let mut problems = sink.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match event {
            Event::LogEntryAdded(e) if matches!(e.params.entry.level, LogEntryLevel::Error) => {
                problems.console_errors.push(format!("{} ({:?})", e.params.entry.text, e.params.entry.url));
            }
            Event::RuntimeConsoleAPICalled(e)
                if matches!(
                    e.params.Type,
                    ConsoleAPICalledEventTypeOption::Error | ConsoleAPICalledEventTypeOption::Assert
                ) =>
            {
                let args: Vec<String> = e.params.args.iter().map(|a| format!("{:?}", a.value)).collect();
                problems.console_errors.push(args.join(" "));
            }
            Event::RuntimeExceptionThrown(e) => {
                let details = &e.params.exception_details;
                let description = details.exception.as_ref().and_then(|x| x.description.clone());
                problems.exceptions.push(format!("{} {description:?}", details.text));
            }
            _ => {}
        }
    }))
    .unwrap();
    tab.enable_log().unwrap().enable_runtime().unwrap();

    let url = format!("file://{}", path.display());
    tab.navigate_to(&url).unwrap().wait_until_navigated().unwrap();
    let rendered: Rendered = serde_json::from_str(&evaluate(&tab, MEASURE)).unwrap();
    let sorted: (Vec<f64>, Vec<f64>) = serde_json::from_str(&evaluate(&tab, SORT)).unwrap();

    // Released at once, so that a failed assertion does not poison it for
    // the listener, which may still be called.
    let problems = std::mem::take(&mut *problems.lock().unwrap());
    assert!(problems.console_errors.is_empty(), "console errors: {:#?}", problems.console_errors);
    assert!(problems.exceptions.is_empty(), "uncaught exceptions: {:#?}", problems.exceptions);
    assert!(rendered.fetched.is_empty(), "the page fetched resources: {:?}", rendered.fetched);

    assert_eq!(rendered.charts.len(), report.classes.len() * report.layers.len(), "{rendered:?}");
    for (i, &(width, height)) in rendered.charts.iter().enumerate() {
        assert!(width > 300.0 && height > 150.0, "chart #{i} renders at {width} × {height}");
        assert!(rendered.chart_texts[i] > 10, "chart #{i} shows only {} labels", rendered.chart_texts[i]);
    }
    assert!(matches!(rendered.training[..], [(w, h)] if w > 300.0 && h > 100.0), "{:?}", rendered.training);

    assert_eq!(rendered.result_rows, report.results.len());
    let stability: Vec<usize> =
        report.classes.iter().map(|c| report.stability.iter().filter(|r| r.class == *c).count()).collect();
    assert_eq!(rendered.stability_rows, stability);
    assert_eq!(rendered.confusion_rows, fixture::training_curves().classes.len());

    assert_eq!(rendered.images.len(), report.results.len() * 6);
    for (i, &(complete, width)) in rendered.images.iter().enumerate() {
        assert!(complete && width > 0, "image #{i} did not load (complete {complete}, naturalWidth {width})");
    }

    let (ascending, descending) = sorted;
    assert_eq!(ascending.len(), report.results.len());
    assert!(ascending.windows(2).all(|w| w[0] <= w[1]), "{ascending:?}");
    assert!(descending.windows(2).all(|w| w[0] >= w[1]), "{descending:?}");

    eprintln!("report.html checked in {} in {:.1} s", chromium().display(), started.elapsed().as_secs_f64());
}
