//! Loads a `report.html` in headless Chromium over the DevTools protocol and
//! measures how it rendered. Shared: `tests/browser.rs` includes it, and an
//! end-to-end test of a real run can too, with
//! `#[path = ".../tcav-report/tests/support/browser_check.rs"] mod browser_check;`
//! and `headless_chrome`, `serde` and `serde_json` as dev-dependencies.
//!
//! [`Page::open`] fails the test when Chromium is missing, naming the
//! command that installs it: a check that skips itself would pass without
//! checking anything.

#![allow(dead_code, reason = "each includer uses the part it needs")]
#![allow(clippy::unwrap_used, reason = "in a test, a failed unwrap is a failed test")]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use headless_chrome::protocol::cdp::Log::LogEntryLevel;
use headless_chrome::protocol::cdp::Runtime::ConsoleAPICalledEventTypeOption;
use headless_chrome::protocol::cdp::types::Event;
use headless_chrome::{Browser, LaunchOptions, Tab};

/// How long any one step in the browser may take before the test fails.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// Debian's Chromium, or the first `chromium` on `PATH`; panics naming the
/// install command when there is none.
pub fn chromium() -> PathBuf {
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
#[derive(Debug, Default)]
pub struct Problems {
    /// `console.error` / `console.assert` calls and browser log errors
    /// (a resource that failed to load, a blocked request, …).
    pub console_errors: Vec<String>,
    /// Uncaught exceptions of the page's scripts.
    pub exceptions: Vec<String>,
}

/// The report as the browser laid it out, measured by [`MEASURE`].
#[derive(Debug, serde::Deserialize)]
pub struct Rendered {
    /// Width and height of each bar chart's `<svg>`, in CSS pixels.
    pub charts: Vec<(f64, f64)>,
    /// Per bar chart, how many of its `<text>` elements have a non-empty box.
    pub chart_texts: Vec<usize>,
    /// Width and height of the training-curve chart(s).
    pub training: Vec<(f64, f64)>,
    /// Rows of the results table.
    pub result_rows: usize,
    /// Rows of each stability table, in page order.
    pub stability_rows: Vec<usize>,
    /// Rows of the confusion matrix.
    pub confusion_rows: usize,
    /// Per `<img>`: `complete` and `naturalWidth`.
    pub images: Vec<(bool, u32)>,
    /// Every resource the page fetched other than data URIs.
    pub fetched: Vec<String>,
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

/// A report open in headless Chromium; the browser closes when it drops.
pub struct Page {
    // Kept alive: dropping the browser ends the Chromium process.
    _browser: Browser,
    tab: Arc<Tab>,
    problems: Arc<Mutex<Problems>>,
}

impl Page {
    /// Starts Chromium headless (without its sandbox, which refuses to run
    /// as root as CI containers do), opens `path` and waits for its load
    /// event, recording console errors and uncaught exceptions from the
    /// start.
    pub fn open(path: &Path) -> Page {
        let options = LaunchOptions::default_builder()
            .path(Some(chromium()))
            .headless(true)
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
        tab.add_event_listener(Arc::new(move |event: &Event| record(&sink, event))).unwrap();
        tab.enable_log().unwrap().enable_runtime().unwrap();
        let path = path.canonicalize().unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        tab.navigate_to(&format!("file://{}", path.display())).unwrap().wait_until_navigated().unwrap();
        Page { _browser: browser, tab, problems }
    }

    /// Runs `script` in the page (awaiting it if it is a promise) and returns
    /// the string it yields; scripts return `JSON.stringify(…)`.
    pub fn evaluate(&self, script: &str) -> String {
        let result = self.tab.evaluate(script, true).unwrap_or_else(|e| panic!("evaluating in the page failed: {e}"));
        match result.value {
            Some(serde_json::Value::String(json)) => json,
            other => panic!("the page script returned {other:?} ({:?})", result.description),
        }
    }

    /// Measures the page once its images are decoded.
    pub fn measure(&self) -> Rendered {
        serde_json::from_str(&self.evaluate(MEASURE)).unwrap()
    }

    /// The problems recorded so far (and forgets them).
    pub fn take_problems(&self) -> Problems {
        // Taken at once, so that a failed assertion does not poison the lock
        // for the listener, which may still be called.
        std::mem::take(&mut *self.problems.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Asserts what holds for every report: no console error, no uncaught
    /// exception, nothing fetched, every chart laid out with a non-zero size
    /// and its labels, every image decoded. Returns the measurement for
    /// report-specific checks.
    pub fn assert_renders(&self) -> Rendered {
        let rendered = self.measure();
        let problems = self.take_problems();
        assert!(problems.console_errors.is_empty(), "console errors: {:#?}", problems.console_errors);
        assert!(problems.exceptions.is_empty(), "uncaught exceptions: {:#?}", problems.exceptions);
        assert!(rendered.fetched.is_empty(), "the page fetched resources: {:?}", rendered.fetched);
        assert!(!rendered.charts.is_empty(), "no chart in the page");
        for (i, &(width, height)) in rendered.charts.iter().chain(&rendered.training).enumerate() {
            assert!(width > 300.0 && height > 100.0, "chart #{i} renders at {width} × {height}");
        }
        for (i, &labels) in rendered.chart_texts.iter().enumerate() {
            assert!(labels > 10, "chart #{i} shows only {labels} labels");
        }
        for (i, &(complete, width)) in rendered.images.iter().enumerate() {
            assert!(complete && width > 0, "image #{i} did not load (complete {complete}, naturalWidth {width})");
        }
        rendered
    }
}

fn record(sink: &Mutex<Problems>, event: &Event) {
    // A poisoned lock means the test already failed; keep recording.
    let mut problems = sink.lock().unwrap_or_else(PoisonError::into_inner);
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
}
