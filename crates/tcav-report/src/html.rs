//! `report.html`: the whole report in one file that opens in any browser
//! without a network.
//!
//! Charts are inline SVG drawn by the same painter as the PNG charts
//! (one per class and layer), thumbnails are PNG data URIs, the style sheet
//! and the one small script (click a table header to sort) are inline. No
//! element refers to anything outside the file, so the report can be mailed
//! or archived as is. Every name put into the page is escaped: set names
//! come from users' folder names.

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use tcav_core::store;

use crate::chart::{INK, fail, layer_colour, svg_chart};
use crate::error::{ReportError, Result};
use crate::model::{ConceptResult, ExperimentReport, StabilityRow, Verdict};
use crate::text;

/// The longest side of a thumbnail in `report.html`, in pixels.
pub const THUMBNAIL_SIZE: u32 = 64;

/// Size of the training-curve chart, in pixels.
const TRAINING_CHART_SIZE: (u32, u32) = (900, 330);

/// Everything `report.html` shows besides the [`ExperimentReport`].
#[derive(Clone, Debug)]
pub struct HtmlInputs<'a> {
    /// The TCAV results; checked with [`ExperimentReport::validate`] before
    /// anything is written.
    pub report: &'a ExperimentReport,
    /// How the classifier trained; the section says so when absent.
    pub training: Option<TrainingCurves>,
    /// The class images most and least sensitive to each concept, shown in
    /// this order.
    pub sensitive_images: Vec<SensitiveImages>,
    /// Free `(key, value)` lines for the header (run id, device, libtorch
    /// version, …), shown in this order after the report's own fields.
    pub notes: Vec<(String, String)>,
}

/// The classifier's training history and held-out results, as the training
/// stage records them.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainingCurves {
    /// Mean training loss of each epoch (cross-entropy, nats).
    pub train_loss: Vec<f64>,
    /// Validation accuracy after each epoch, in `[0, 1]`; as long as
    /// `train_loss`.
    pub validation_accuracy: Vec<f64>,
    /// The epoch (0-based) whose weights were kept.
    pub best_epoch: usize,
    /// Accuracy of the kept weights on the test split, in `[0, 1]`.
    pub test_accuracy: f64,
    /// The classes, in the order of the confusion matrix's rows and columns.
    pub classes: Vec<String>,
    /// Test-split counts: `confusion[true class][predicted class]`.
    pub confusion: Vec<Vec<usize>>,
}

/// For one (layer, class, concept), the class's test images whose class
/// logit the concept moves most and least.
#[derive(Clone, Debug, PartialEq)]
pub struct SensitiveImages {
    /// The layer (bottleneck) of the CAVs.
    pub layer: String,
    /// The class whose test images these are.
    pub class: String,
    /// The concept.
    pub concept: String,
    /// The most sensitive images, most first: each image's file and its
    /// directional derivative `∇h_k · v` averaged over the random runs.
    pub most: Vec<(PathBuf, f64)>,
    /// The least sensitive images (most negative derivative), least first.
    pub least: Vec<(PathBuf, f64)>,
}

impl TrainingCurves {
    /// Checks that the curves have one value per epoch, the kept epoch is
    /// one of them, accuracies are fractions and the confusion matrix is
    /// square over `classes`.
    pub fn validate(&self) -> Result<()> {
        let field = |field: &str, problem: String| ReportError::InvalidField { field: field.into(), problem };
        let epochs = self.train_loss.len();
        if epochs == 0 || self.validation_accuracy.len() != epochs {
            return Err(field(
                "training.validation_accuracy",
                format!(
                    "{} training losses and {} validation accuracies: give one of each per epoch, at least one epoch",
                    epochs,
                    self.validation_accuracy.len()
                ),
            ));
        }
        if self.best_epoch >= epochs {
            return Err(field(
                "training.best_epoch",
                format!(
                    "epoch {} (0-based) does not exist in {epochs} epochs: give the kept epoch's index",
                    self.best_epoch
                ),
            ));
        }
        if let Some((epoch, loss)) = self.train_loss.iter().enumerate().find(|(_, l)| !l.is_finite()) {
            return Err(field("training.train_loss", format!("epoch {epoch}: {loss} is not a finite loss")));
        }
        let fraction = |v: &f64| v.is_finite() && (0.0..=1.0).contains(v);
        if let Some((epoch, acc)) = self.validation_accuracy.iter().enumerate().find(|(_, a)| !fraction(a)) {
            return Err(field(
                "training.validation_accuracy",
                format!("epoch {epoch}: {acc} is not a fraction in [0, 1]; store accuracy as a fraction, such as 0.93"),
            ));
        }
        if !fraction(&self.test_accuracy) {
            return Err(field(
                "training.test_accuracy",
                format!(
                    "{} is not a fraction in [0, 1]; store accuracy as a fraction, such as 0.93",
                    self.test_accuracy
                ),
            ));
        }
        let k = self.classes.len();
        if self.confusion.len() != k || self.confusion.iter().any(|row| row.len() != k) {
            return Err(field(
                "training.confusion",
                format!("the matrix must be {k} × {k}, one row and one column per class of `classes`"),
            ));
        }
        Ok(())
    }
}

/// Writes `report.html` to `path`, atomically: see [`render_html`].
pub fn write_html(inputs: &HtmlInputs, path: &Path) -> Result<()> {
    let html = render_html(inputs)?;
    store::write_atomic(path, html.as_bytes())?;
    tracing::info!(path = %path.display(), bytes = html.len(), "wrote TCAV report HTML");
    Ok(())
}

/// The self-contained HTML page of the report, after checking the report
/// ([`ExperimentReport::validate`]) and the training curves
/// ([`TrainingCurves::validate`]). Sections, in order: a header (experiment,
/// run, method, classifier, notes); `#charts`, one SVG bar chart per class
/// and layer; `#results`, the table of every result; `#stability`, per
/// class, the verdict and adjusted p-value at each number of random runs;
/// `#images`, the most and least sensitive images per (layer, class,
/// concept) as thumbnails of at most [`THUMBNAIL_SIZE`] pixels; `#training`,
/// the training curves, test accuracy and confusion matrix.
///
/// An image that cannot be read is an error naming it: a thumbnail missing
/// from the page would otherwise go unnoticed.
pub fn render_html(inputs: &HtmlInputs) -> Result<String> {
    let report = inputs.report;
    report.validate()?;
    if let Some(training) = &inputs.training {
        training.validate()?;
    }
    let mut page = Page::default();
    page.header(inputs);
    page.charts(report)?;
    page.results(report);
    page.stability(report);
    page.images(&inputs.sensitive_images)?;
    page.training(report, inputs.training.as_ref())?;
    Ok(page.finish(report))
}

/// The page being written; its sections are appended in order.
#[derive(Default)]
struct Page {
    body: String,
    /// Data URIs and sizes of the thumbnails made so far: one test image is
    /// often among the most sensitive for several concepts.
    thumbnails: HashMap<PathBuf, Thumbnail>,
}

struct Thumbnail {
    uri: String,
    width: u32,
    height: u32,
}

// Writing to a String cannot fail, so the results of write! are ignored below.
impl Page {
    fn header(&mut self, inputs: &HtmlInputs) {
        let r = inputs.report;
        let out = &mut self.body;
        let _ = writeln!(out, "<header>\n<h1>TCAV report: {}</h1>", esc(&r.experiment));
        let classifier = format!(
            "{}, test accuracy {}{}",
            r.classifier.architecture,
            percent(r.classifier.test_accuracy),
            if r.classifier.per_class_accuracy.is_empty() {
                String::new()
            } else {
                let per_class: Vec<String> =
                    r.classifier.per_class_accuracy.iter().map(|(c, a)| format!("{c} {}", percent(*a))).collect();
                format!(" ({})", per_class.join(", "))
            }
        );
        let optional = |text: &str| if text.is_empty() { "–".to_string() } else { text.to_string() };
        let mut fields: Vec<(String, String)> = vec![
            ("run".into(), r.run_id.clone()),
            ("seed".into(), r.seed.to_string()),
            ("test".into(), format!("{} t-test of concept vs random baseline", r.test)),
            ("correction".into(), format!("{}, α = {}", r.correction, r.alpha)),
            ("CAV estimator".into(), optional(&r.estimator)),
            ("design".into(), optional(&r.design)),
            ("CAV accuracy threshold".into(), r.accuracy_threshold.to_string()),
            ("rank test".into(), optional(&r.rank_test)),
            ("classifier".into(), classifier),
            ("layers".into(), r.layers.join(", ")),
            ("concepts".into(), r.concepts.join(", ")),
            ("random sets".into(), r.random_sets.len().to_string()),
        ];
        fields.extend(inputs.notes.iter().cloned());
        out.push_str("<dl class=\"notes\">\n");
        for (key, value) in &fields {
            let _ = writeln!(out, "<dt>{}</dt><dd>{}</dd>", esc(key), esc(value));
        }
        out.push_str(
            "</dl>\n<nav><a href=\"#charts\">charts</a> · <a href=\"#results\">results</a> · \
             <a href=\"#stability\">stability</a> · <a href=\"#images\">sensitive images</a> · \
             <a href=\"#training\">classifier</a></nav>\n</header>\n",
        );
    }

    fn charts(&mut self, r: &ExperimentReport) -> Result<()> {
        let _ = writeln!(
            self.body,
            "<section id=\"charts\">\n<h2>TCAV scores</h2>\n<p>One chart per class and layer. A bar is the mean TCAV \
             score over the random runs; its error bar is ± 1 standard deviation of the runs' scores (not a \
             confidence interval: the 95 % intervals of the mean are in the <a href=\"#results\">results table</a>). \
             The dashed line and grey band are the random-vs-random baseline (mean ± 1 std) of the same class \
             and layer. Solid bars are significantly above the baseline (the concept pushes the classifier \
             toward the class); bars marked ↓ are significantly below (it pushes away); faded, hatched bars \
             marked n.s. (or *) are not significant; grey outlines marked ? have CAVs near chance, so no claim \
             is made for them.</p>"
        );
        for class in &r.classes {
            let _ = writeln!(self.body, "<h3>Class <code>{}</code></h3>\n<div class=\"charts\">", esc(class));
            for layer in &r.layers {
                let svg = svg_chart(r, class, layer)?;
                let label = format!("TCAV scores for class {class} at layer {layer}");
                let _ = writeln!(
                    self.body,
                    "<figure class=\"tcav-chart\" data-class=\"{}\" data-layer=\"{}\">\n{}\n<figcaption>Class \
                     <code>{}</code>, layer <code>{}</code>: mean TCAV score ± 1 std over the random runs, \
                     against the baseline's mean ± 1 std.</figcaption>\n</figure>",
                    esc(class),
                    esc(layer),
                    inline_svg(&svg, &label),
                    esc(class),
                    esc(layer)
                );
            }
            self.body.push_str("</div>\n");
        }
        self.body.push_str("</section>\n");
        Ok(())
    }

    fn results(&mut self, r: &ExperimentReport) {
        let rank = !r.rank_test.is_empty();
        let out = &mut self.body;
        let _ = writeln!(
            out,
            "<section id=\"results\">\n<h2>Results</h2>\n<p>One row per class, layer and concept; click a column \
             header to sort. p is the {} t-test's p-value, p_adj after {} correction over all tests; verdicts \
             at α = {}. The CI is the 95 % confidence interval of the mean TCAV score.</p>",
            esc(&r.test),
            esc(&r.correction),
            r.alpha
        );
        out.push_str("<table class=\"results sortable\" id=\"results-table\">\n<thead><tr>");
        let mut columns =
            vec!["class", "layer", "concept", "mean TCAV score", "std", "95 % CI", "baseline mean ± std", "p", "p_adj"];
        if rank {
            columns.push("rank p");
        }
        columns.extend(["verdict", "CAV accuracy", "Cohen's d"]);
        for column in columns {
            let _ = write!(out, "<th>{}</th>", esc(column));
        }
        out.push_str("</tr></thead>\n<tbody>\n");
        // Rows in presentation order: class, then layer, then concept.
        for class in &r.classes {
            for row in r.class_results(class) {
                result_row(out, r, row, rank);
            }
        }
        out.push_str("</tbody>\n</table>\n</section>\n");
    }

    fn stability(&mut self, r: &ExperimentReport) {
        let out = &mut self.body;
        out.push_str("<section id=\"stability\">\n<h2>Stability over random runs</h2>\n");
        if r.stability.is_empty() {
            out.push_str("<p class=\"absent\">Not computed for this run.</p>\n</section>\n");
            return;
        }
        let _ = writeln!(
            out,
            "<p>Each test repeated on its first N random runs: the verdict and p_adj ({} correction over all \
             tests at that N): ▲ significantly above the baseline, ▼ below, n.s. not significant, ? CAVs near chance. \
             A verdict that changes as runs are added needs more runs.</p>",
            esc(&r.correction)
        );
        for class in &r.classes {
            let rows = r.class_stability(class);
            if rows.is_empty() {
                continue;
            }
            let runs: BTreeSet<usize> = rows.iter().flat_map(|row| row.points.iter().map(|p| p.runs)).collect();
            let _ = writeln!(
                out,
                "<h3>Class <code>{}</code></h3>\n<table class=\"stability\" data-class=\"{}\">\n<thead><tr>\
                 <th>layer</th><th>concept</th>",
                esc(class),
                esc(class)
            );
            for n in &runs {
                let _ = write!(out, "<th>{n} runs</th>");
            }
            out.push_str("</tr></thead>\n<tbody>\n");
            for row in rows {
                stability_row(out, row, &runs);
            }
            out.push_str("</tbody>\n</table>\n");
        }
        out.push_str("</section>\n");
    }

    fn images(&mut self, entries: &[SensitiveImages]) -> Result<()> {
        self.body.push_str("<section id=\"images\">\n<h2>Most and least sensitive images</h2>\n");
        if entries.is_empty() {
            self.body.push_str("<p class=\"absent\">Not recorded for this run.</p>\n</section>\n");
            return Ok(());
        }
        self.body.push_str(
            "<p>For each concept, the class's test images whose class logit it moves most toward the class and \
             most away from it. Under each image: its directional derivative ∇h·v of the class logit along the \
             concept's CAV, averaged over the random runs (positive: toward the class).</p>\n",
        );
        for entry in entries {
            let _ = writeln!(
                self.body,
                "<div class=\"sensitive\">\n<h3>Class <code>{}</code>, layer <code>{}</code>, concept \
                 <code>{}</code></h3>",
                esc(&entry.class),
                esc(&entry.layer),
                esc(&entry.concept)
            );
            for (label, images) in [("most sensitive", &entry.most), ("least sensitive", &entry.least)] {
                let _ = write!(self.body, "<div class=\"strip\"><span class=\"strip-label\">{label}</span>");
                for (path, value) in images {
                    self.thumbnail(path, *value)?;
                }
                self.body.push_str("</div>\n");
            }
            self.body.push_str("</div>\n");
        }
        self.body.push_str("</section>\n");
        Ok(())
    }

    fn thumbnail(&mut self, path: &Path, value: f64) -> Result<()> {
        let t = match self.thumbnails.entry(path.to_path_buf()) {
            Entry::Occupied(made) => made.into_mut(),
            Entry::Vacant(slot) => slot.insert(make_thumbnail(path)?),
        };
        let name = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
        let _ = write!(
            self.body,
            "<figure class=\"thumb\"><img src=\"{}\" width=\"{}\" height=\"{}\" alt=\"{}\" title=\"{}\">\
             <figcaption>{}</figcaption></figure>",
            t.uri,
            t.width,
            t.height,
            esc(&name),
            esc(&path.display().to_string()),
            signed(value)
        );
        Ok(())
    }

    fn training(&mut self, r: &ExperimentReport, training: Option<&TrainingCurves>) -> Result<()> {
        self.body.push_str("<section id=\"training\">\n<h2>Classifier</h2>\n");
        let Some(t) = training else {
            let _ = writeln!(
                self.body,
                "<p>{}, test accuracy {}.</p>\n<p class=\"absent\">Training curves were not recorded for this \
                 run.</p>\n</section>",
                esc(&r.classifier.architecture),
                percent(r.classifier.test_accuracy)
            );
            return Ok(());
        };
        let svg = training_svg(t)?;
        let _ = writeln!(
            self.body,
            "<figure class=\"training-chart\">\n{}\n<figcaption>Mean training loss (left) and validation \
             accuracy (right) per epoch; the dashed line marks the kept epoch.</figcaption>\n</figure>",
            inline_svg(&svg, "training loss and validation accuracy per epoch")
        );
        let _ = writeln!(
            self.body,
            "<p>{}: test accuracy <strong>{}</strong> with the weights of epoch {} of {} (best validation \
             accuracy, {}).</p>",
            esc(&r.classifier.architecture),
            percent(t.test_accuracy),
            t.best_epoch + 1,
            t.train_loss.len(),
            percent(t.validation_accuracy[t.best_epoch])
        );
        confusion_table(&mut self.body, t);
        self.body.push_str("</section>\n");
        Ok(())
    }

    fn finish(self, r: &ExperimentReport) -> String {
        let title = format!("TCAV report: {} ({})", r.experiment, r.run_id);
        format!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" \
             content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n<style>\n{STYLE}</style>\n\
             </head>\n<body>\n{}<script>\n{SCRIPT}</script>\n</body>\n</html>\n",
            esc(&title),
            self.body
        )
    }
}

fn result_row(out: &mut String, r: &ExperimentReport, row: &ConceptResult, rank: bool) {
    let (mark, class) = verdict_mark(row.verdict);
    let _ = write!(
        out,
        "<tr class=\"{class}\"><td>{}</td><td>{}</td><td>{}</td>",
        esc(&row.class),
        esc(&row.layer),
        esc(&row.concept)
    );
    number_cell(out, Some(row.mean), fixed(row.mean));
    number_cell(out, Some(row.std), fixed(row.std));
    match (row.ci95_low, row.ci95_high) {
        (Some(low), Some(high)) => number_cell(out, Some(low), format!("[{}, {}]", fixed(low), fixed(high))),
        _ => number_cell(out, None, "–".into()),
    }
    number_cell(out, Some(row.baseline_mean), format!("{} ± {}", fixed(row.baseline_mean), fixed(row.baseline_std)));
    number_cell(out, Some(row.p_value), p_value(row.p_value));
    number_cell(out, Some(row.p_adjusted), p_value(row.p_adjusted));
    if rank {
        number_cell(out, row.rank_p_value, row.rank_p_value.map_or("–".into(), p_value));
    }
    let _ = write!(out, "<td>{mark} {}</td>", esc(row.verdict.describe()));
    let accuracy = if row.reliable {
        percent(row.cav_accuracy_mean)
    } else {
        format!("{} (&lt; {})", percent(row.cav_accuracy_mean), percent(r.accuracy_threshold))
    };
    number_cell(out, Some(row.cav_accuracy_mean), accuracy);
    number_cell(out, row.cohens_d, row.cohens_d.map_or("–".into(), signed_short));
    out.push_str("</tr>\n");
}

/// A numeric cell: `data-sort` holds the number the sort script orders by
/// (`-Infinity` for a missing one, so that those sort together). `shown`
/// must already be escaped; it is built from numbers only.
fn number_cell(out: &mut String, value: Option<f64>, shown: String) {
    let key = match value {
        Some(v) if v == f64::INFINITY => "Infinity".to_string(),
        Some(v) if v == f64::NEG_INFINITY => "-Infinity".to_string(),
        Some(v) => format!("{v:e}"),
        None => "-Infinity".to_string(),
    };
    let _ = write!(out, "<td class=\"num\" data-sort=\"{key}\">{shown}</td>");
}

fn stability_row(out: &mut String, row: &StabilityRow, runs: &BTreeSet<usize>) {
    let _ = write!(out, "<tr><td>{}</td><td>{}</td>", esc(&row.layer), esc(&row.concept));
    for n in runs {
        match row.points.iter().find(|p| p.runs == *n) {
            Some(point) => {
                let (mark, class) = verdict_mark(point.verdict);
                let _ = write!(
                    out,
                    "<td class=\"{class}\" title=\"p = {}\">{mark} {}</td>",
                    p_value(point.p_value),
                    p_value(point.p_adjusted)
                );
            }
            None => out.push_str("<td>–</td>"),
        }
    }
    out.push_str("</tr>\n");
}

fn confusion_table(out: &mut String, t: &TrainingCurves) {
    out.push_str(
        "<table class=\"confusion\">\n<caption>Confusion matrix on the test split: rows are the true class, \
         columns the predicted class; the last column is the class's recall.</caption>\n<thead><tr>\
         <th>true \\ predicted</th>",
    );
    for class in &t.classes {
        let _ = write!(out, "<th>{}</th>", esc(class));
    }
    out.push_str("<th>recall</th></tr></thead>\n<tbody>\n");
    for (i, (class, row)) in t.classes.iter().zip(&t.confusion).enumerate() {
        let total: usize = row.iter().sum();
        let _ = write!(out, "<tr><th>{}</th>", esc(class));
        for (j, &count) in row.iter().enumerate() {
            let share = if total == 0 { 0.0 } else { count as f64 / total as f64 };
            // Shade by the share of the true class's images, blue on the
            // diagonal and red off it, so that confusions stand out.
            let (red, green, blue) = if i == j { (31, 119, 180) } else { (214, 39, 40) };
            let _ = write!(
                out,
                "<td class=\"num\" style=\"background: rgba({red}, {green}, {blue}, {:.2})\">{count}</td>",
                share * 0.6
            );
        }
        let recall = if total == 0 { "–".to_string() } else { percent(row[i] as f64 / total as f64) };
        let _ = writeln!(out, "<td class=\"num\">{recall}</td></tr>");
    }
    out.push_str("</tbody>\n</table>\n");
}

/// The symbol and CSS class of a verdict: the symbol carries the direction
/// for readers who cannot tell the colours apart.
fn verdict_mark(verdict: Verdict) -> (&'static str, &'static str) {
    match verdict {
        Verdict::Above => ("▲", "v-above"),
        Verdict::Below => ("▼", "v-below"),
        Verdict::NotSignificant => ("n.s.", "v-ns"),
        Verdict::Unreliable => ("?", "v-unreliable"),
    }
}

/// `svg` (a document from plotters) as an element for an HTML page: the
/// XML namespace is implied in HTML, and the label is read by screen
/// readers.
fn inline_svg(svg: &str, label: &str) -> String {
    svg.replacen(" xmlns=\"http://www.w3.org/2000/svg\"", &format!(" role=\"img\" aria-label=\"{}\"", esc(label)), 1)
}

/// JPEG quality of opaque thumbnails: high enough that flat synthetic
/// images show no visible blocks at 64 pixels.
const JPEG_QUALITY: u8 = 90;

/// Decodes an image, shrinks it to fit [`THUMBNAIL_SIZE`] (never enlarging
/// it) and encodes it as a data URI: JPEG when it is opaque (a third of the
/// PNG's size on photographs, and a test image appears in many concepts'
/// strips), PNG when it has an alpha channel.
fn make_thumbnail(path: &Path) -> Result<Thumbnail> {
    let fail = |message: String| ReportError::Image { path: path.to_path_buf(), message };
    let image = image::open(path).map_err(|e| fail(e.to_string()))?;
    let image = if image.width().max(image.height()) > THUMBNAIL_SIZE {
        image.thumbnail(THUMBNAIL_SIZE, THUMBNAIL_SIZE)
    } else {
        image
    };
    let mut bytes = Vec::new();
    let mime = if image.color().has_alpha() {
        image.write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Png).map_err(|e| fail(e.to_string()))?;
        "image/png"
    } else {
        let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, JPEG_QUALITY);
        image.to_rgb8().write_with_encoder(encoder).map_err(|e| fail(e.to_string()))?;
        "image/jpeg"
    };
    let uri = format!("data:{mime};base64,{}", base64::engine::general_purpose::STANDARD.encode(&bytes));
    Ok(Thumbnail { uri, width: image.width(), height: image.height() })
}

/// The training loss and validation accuracy side by side, the kept epoch
/// marked on both, as an SVG document.
fn training_svg(t: &TrainingCurves) -> Result<String> {
    text::font()?;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, TRAINING_CHART_SIZE).into_drawing_area();
        draw_training(&root, t)
            .and_then(|()| root.present().map_err(fail))
            .map_err(|message| ReportError::Svg { what: "the training curves".into(), message })?;
    }
    Ok(svg)
}

fn draw_training(root: &DrawingArea<SVGBackend, plotters::coord::Shift>, t: &TrainingCurves) -> Result<(), String> {
    root.fill(&WHITE).map_err(fail)?;
    let (loss_area, accuracy_area) = root.split_horizontally(TRAINING_CHART_SIZE.0 / 2);
    let epochs = t.train_loss.len();
    let x_range = 0.5..epochs as f64 + 0.5;
    let best = (t.best_epoch + 1) as f64;
    let max_loss = t.train_loss.iter().copied().fold(0.0, f64::max).max(f64::MIN_POSITIVE) * 1.1;
    let panels = [
        (loss_area, "training loss", t.train_loss.as_slice(), max_loss, layer_colour(0)),
        (accuracy_area, "validation accuracy", t.validation_accuracy.as_slice(), 1.0, layer_colour(1)),
    ];
    for (area, title, values, y_max, colour) in panels {
        let mut chart = ChartBuilder::on(&area)
            .caption(title, (text::FAMILY, 18).into_font().color(&INK))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(48)
            .build_cartesian_2d(x_range.clone(), 0f64..y_max)
            .map_err(fail)?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .x_labels(epochs.min(10))
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| format!("{v:.2}"))
            .label_style((text::FAMILY, 13).into_font().color(&INK))
            .axis_desc_style((text::FAMILY, 14).into_font().color(&INK))
            .bold_line_style(INK.mix(0.12))
            .light_line_style(TRANSPARENT)
            .axis_style(INK.mix(0.8))
            .draw()
            .map_err(fail)?;
        chart
            .draw_series(DashedLineSeries::new([(best, 0.0), (best, y_max)], 5, 3, INK.mix(0.6).stroke_width(1)))
            .map_err(fail)?;
        let points: Vec<(f64, f64)> = values.iter().enumerate().map(|(i, v)| ((i + 1) as f64, *v)).collect();
        chart.draw_series(LineSeries::new(points.clone(), colour.stroke_width(2))).map_err(fail)?;
        chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, colour.filled()))).map_err(fail)?;
        let kept = values[t.best_epoch];
        // backend_coord is in the root's pixels, not the panel's.
        let at = chart.backend_coord(&(best, kept));
        let style = (text::FAMILY, 13).into_font().color(&INK).pos(Pos::new(HPos::Left, VPos::Top));
        root.draw_text(&format!("kept: {kept:.3}"), &style, (at.0 + 6, at.1 + 6)).map_err(fail)?;
    }
    Ok(())
}

/// `text` with the five characters that HTML gives meaning escaped (by the
/// html-escape crate), safe in element content and in quoted attribute
/// values.
fn esc(text: &str) -> String {
    html_escape::encode_quoted_attribute(text).into_owned()
}

fn fixed(value: f64) -> String {
    format!("{value:.3}")
}

fn percent(value: f64) -> String {
    format!("{:.1} %", value * 100.0)
}

/// A p-value: three decimals, or two significant digits in exponent form
/// below 0.001 so that small p-values do not read as 0.
fn p_value(p: f64) -> String {
    if p != 0.0 && p < 1e-3 { format!("{p:.1e}") } else { format!("{p:.3}") }
}

/// A signed number, spelling infinity as ±∞.
fn signed_short(value: f64) -> String {
    match value {
        f64::INFINITY => "+∞".into(),
        f64::NEG_INFINITY => "−∞".into(),
        v => format!("{v:+.2}"),
    }
}

/// A directional derivative under a thumbnail.
fn signed(value: f64) -> String {
    if value != 0.0 && value.abs() < 1e-2 { format!("{value:+.2e}") } else { format!("{value:+.3}") }
}

const STYLE: &str = r#"body { font-family: "DejaVu Sans", "Segoe UI", Helvetica, Arial, sans-serif; margin: 1.5rem auto; max-width: 1250px; padding: 0 1rem; color: #282828; line-height: 1.4; }
h1 { font-size: 1.6rem; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2rem; margin-top: 2.2rem; } h3 { font-size: 1.1rem; }
dl.notes { display: grid; grid-template-columns: max-content auto; gap: 0.15rem 1rem; }
dl.notes dt { font-weight: bold; } dl.notes dd { margin: 0; }
nav { margin-top: 0.8rem; }
figure { margin: 0 0 1.2rem 0; }
figure.tcav-chart, figure.training-chart { max-width: 900px; }
figure.tcav-chart svg, figure.training-chart svg { width: 100%; height: auto; display: block; border: 1px solid #e4e4e4; }
figcaption { font-size: 0.85rem; color: #555; }
table { border-collapse: collapse; margin: 0.6rem 0; font-size: 0.88rem; }
th, td { border: 1px solid #d6d6d6; padding: 0.2rem 0.45rem; text-align: left; }
thead th { background: #f1f1f1; }
table.sortable thead th { cursor: pointer; }
table.sortable thead th[aria-sort="ascending"]::after { content: " ▲"; }
table.sortable thead th[aria-sort="descending"]::after { content: " ▼"; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.v-above td, td.v-above { background: #e5f3e5; }
tr.v-below td, td.v-below { background: #fbe9dc; }
tr.v-ns td, td.v-ns { color: #777; }
tr.v-unreliable td, td.v-unreliable { color: #777; font-style: italic; background: repeating-linear-gradient(135deg, #fff, #fff 6px, #f0f0f3 6px, #f0f0f3 12px); }
.sensitive { margin-bottom: 1rem; }
.strip { display: flex; flex-wrap: wrap; align-items: flex-end; gap: 0.5rem; margin: 0.3rem 0; }
.strip-label { width: 8.5rem; align-self: center; font-size: 0.85rem; color: #555; }
figure.thumb { text-align: center; }
figure.thumb img { display: block; image-rendering: auto; border: 1px solid #ccc; }
.absent { color: #777; font-style: italic; }
caption { caption-side: bottom; text-align: left; font-size: 0.85rem; color: #555; padding-top: 0.3rem; }
"#;

/// Sorts a `table.sortable` by the clicked column: by `data-sort` where the
/// cells have it, else by their text.
const SCRIPT: &str = r#""use strict";
document.querySelectorAll("table.sortable thead th").forEach(function (th) {
  th.addEventListener("click", function () {
    var table = th.closest("table");
    var body = table.tBodies[0];
    var column = th.cellIndex;
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    table.querySelectorAll("thead th").forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var key = function (row) {
      var cell = row.cells[column];
      var sort = cell.getAttribute("data-sort");
      return sort === null ? cell.textContent : parseFloat(sort);
    };
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a), y = key(b);
      var order = typeof x === "number" && typeof y === "number"
        ? (x < y ? -1 : x > y ? 1 : 0)
        : String(x).localeCompare(String(y));
      return ascending ? order : -order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  });
});
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::{sample, sensitive_images, training_curves};

    fn render(report: &ExperimentReport, dir: &Path) -> String {
        let inputs = HtmlInputs {
            report,
            training: Some(training_curves()),
            sensitive_images: sensitive_images(report, dir),
            notes: vec![("device".into(), "cpu".into()), ("libtorch".into(), "2.9.0".into())],
        };
        render_html(&inputs).unwrap()
    }

    /// The `src` values of every `<img>`.
    fn image_sources(html: &str) -> Vec<&str> {
        html.split("<img src=\"").skip(1).map(|rest| &rest[..rest.find('"').unwrap()]).collect()
    }

    #[test]
    fn every_section_is_present_with_one_chart_per_class_and_layer() {
        let dir = tempfile::tempdir().unwrap();
        let report = sample();
        let html = render(&report, dir.path());
        let charts = report.classes.len() * report.layers.len();
        assert_eq!(html.matches("<figure class=\"tcav-chart\"").count(), charts);
        // One more SVG: the training curves.
        assert_eq!(html.matches("<svg ").count(), charts + 1);
        assert!(html.contains("data-class=\"tiger\" data-layer=\"conv4\""));
        for id in ["charts", "results", "stability", "images", "training"] {
            assert!(html.contains(&format!("<section id=\"{id}\">")), "section {id}");
        }
        let table = &html[html.find("id=\"results-table\"").unwrap()..];
        let table = &table[..table.find("</table>").unwrap()];
        assert_eq!(table.matches("<tr class=\"v-").count(), report.results.len());
        assert!(table.contains("<td>zebra</td><td>conv4</td><td>dotted</td>"), "{table}");
        assert!(table.contains("[0.773, 0.847]") && table.contains("1.2e-6") && table.contains("+2.82"));
        assert!(table.contains("▼ below baseline (pushes away)") && table.contains("52.0 % (&lt; 60.0 %)"));
        assert_eq!(html.matches("<table class=\"stability\"").count(), 2);
        assert!(html.contains("<th>3 runs</th><th>4 runs</th><th>5 runs</th>"));
        assert!(
            html.contains("epoch 5 of 6") && html.contains("<th>true \\ predicted</th><th>zebra</th><th>tiger</th>")
        );
        assert!(html.contains("<dt>device</dt><dd>cpu</dd>"));
        assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));
    }

    #[test]
    fn nothing_refers_outside_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let html = render(&sample(), dir.path());
        assert!(!html.contains("http://") && !html.contains("https://"), "no network address may appear");
        assert!(!html.contains("url(") && !html.contains("@import") && !html.contains("<link"));
        for attribute in ["src=\"", "href=\""] {
            for value in html.split(attribute).skip(1) {
                assert!(value.starts_with("data:") || value.starts_with('#'), "{attribute}{}", &value[..40]);
            }
        }
    }

    #[test]
    fn thumbnails_are_small_data_uris_and_made_once_per_image() {
        let dir = tempfile::tempdir().unwrap();
        let report = sample();
        let html = render(&report, dir.path());
        let sources = image_sources(&html);
        assert_eq!(sources.len(), report.results.len() * 6);
        for source in &sources {
            // The fixture's images are opaque, so JPEG.
            let data = source.strip_prefix("data:image/jpeg;base64,").expect("a JPEG data URI");
            let jpeg = base64::engine::general_purpose::STANDARD.decode(data).unwrap();
            let image = image::load_from_memory_with_format(&jpeg, image::ImageFormat::Jpeg).unwrap();
            // The fixture's images are 96 × 80.
            assert_eq!((image.width(), image.height()), (THUMBNAIL_SIZE, 53));
        }
        assert!(html.contains("width=\"64\" height=\"53\" alt=\"image_0.png\""));
        assert!(html.contains("<figcaption>+2.500</figcaption>") && html.contains("<figcaption>-0.125</figcaption>"));
        let distinct: std::collections::HashSet<_> = sources.iter().collect();
        assert_eq!(distinct.len(), 6);
    }

    #[test]
    fn transparent_images_stay_png_and_small_ones_are_not_enlarged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alpha.png");
        image::RgbaImage::from_fn(200, 100, |x, _| image::Rgba([200, 10, 10, (x % 256) as u8])).save(&path).unwrap();
        let t = make_thumbnail(&path).unwrap();
        assert!(t.uri.starts_with("data:image/png;base64,"));
        assert_eq!((t.width, t.height), (64, 32));
        let small = dir.path().join("small.bmp");
        image::RgbImage::new(20, 30).save(&small).unwrap();
        let t = make_thumbnail(&small).unwrap();
        assert!(t.uri.starts_with("data:image/jpeg;base64,"));
        assert_eq!((t.width, t.height), (20, 30));
    }

    #[test]
    fn user_names_are_escaped() {
        let dir = tempfile::tempdir().unwrap();
        let evil = "<script>alert(1)</script>";
        let mut report = sample();
        report.experiment = "exp \"quoted\" & <b>bold</b>".into();
        report.concepts[0] = evil.into();
        for r in &mut report.results {
            if r.concept == "striped" {
                r.concept = evil.into();
            }
        }
        for r in &mut report.stability {
            if r.concept == "striped" {
                r.concept = evil.into();
            }
        }
        report.layers[1] = "conv4\" onload=\"alert(2)".into();
        for r in &mut report.results {
            if r.layer == "conv4" {
                r.layer = report.layers[1].clone();
            }
        }
        let inputs = HtmlInputs {
            report: &report,
            training: None,
            sensitive_images: sensitive_images(&report, dir.path()),
            notes: vec![("<i>key</i>".into(), "\"><img src=x onerror=alert(3)>".into())],
        };
        let html = render_html(&inputs).unwrap();
        assert!(!html.contains("<script>alert") && !html.contains("<b>bold") && !html.contains("<i>key"));
        assert!(!html.contains("onload=\"alert") && !html.contains("<img src=x"));
        assert_eq!(html.matches("<script").count(), 1, "only the page's own sort script");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("data-layer=\"conv4&quot; onload=&quot;alert(2)\""));
        assert!(html.contains("exp &quot;quoted&quot; &amp; &lt;b&gt;bold&lt;/b&gt;"));
    }

    #[test]
    fn absent_training_stability_and_images_are_said_so() {
        let mut report = sample();
        report.stability.clear();
        let inputs = HtmlInputs { report: &report, training: None, sensitive_images: Vec::new(), notes: Vec::new() };
        let html = render_html(&inputs).unwrap();
        assert_eq!(html.matches("class=\"absent\"").count(), 3);
        assert!(html.contains("Training curves were not recorded") && html.contains("test accuracy 93.2 %"));
        assert_eq!(html.matches("<svg ").count(), 4);
        assert!(!html.contains("<img"));
    }

    #[test]
    fn bad_inputs_write_nothing_and_say_what_to_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.html");
        let report = sample();
        let mut images = sensitive_images(&report, dir.path());
        images[2].least[1].0 = dir.path().join("missing.png");
        let inputs = HtmlInputs { report: &report, training: None, sensitive_images: images, notes: Vec::new() };
        let msg = write_html(&inputs, &path).unwrap_err().to_string();
        assert!(msg.contains("missing.png") && msg.contains("check that the file exists"), "{msg}");

        let mut training = training_curves();
        training.best_epoch = 6;
        let inputs = HtmlInputs { report: &report, training: Some(training), sensitive_images: vec![], notes: vec![] };
        assert!(write_html(&inputs, &path).unwrap_err().to_string().contains("training.best_epoch"));
        let mut training = training_curves();
        training.confusion.pop();
        assert!(training.validate().unwrap_err().to_string().contains("2 × 2"));
        let mut training = training_curves();
        training.validation_accuracy[0] = 55.0;
        assert!(training.validate().unwrap_err().to_string().contains("epoch 0"));

        let mut invalid = sample();
        invalid.results[0].mean = f64::NAN;
        let inputs = HtmlInputs { report: &invalid, training: None, sensitive_images: vec![], notes: vec![] };
        assert!(write_html(&inputs, &path).unwrap_err().to_string().contains("#0"));
        assert!(!path.exists());
    }

    #[test]
    fn the_file_is_written_atomically_and_reproducibly() {
        let dir = tempfile::tempdir().unwrap();
        let report = sample();
        let inputs = HtmlInputs {
            report: &report,
            training: Some(training_curves()),
            sensitive_images: sensitive_images(&report, dir.path()),
            notes: Vec::new(),
        };
        let out = dir.path().join("run");
        write_html(&inputs, &out.join("report.html")).unwrap();
        let first = std::fs::read(out.join("report.html")).unwrap();
        write_html(&inputs, &out.join("report.html")).unwrap();
        assert_eq!(std::fs::read(out.join("report.html")).unwrap(), first);
        let names: Vec<_> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["report.html"], "no temporary file may remain");
    }

    #[test]
    fn small_numbers_stay_readable() {
        assert_eq!(p_value(1.2e-6), "1.2e-6");
        assert_eq!(p_value(0.0), "0.000");
        assert_eq!(p_value(0.31), "0.310");
        assert_eq!(signed_short(f64::NEG_INFINITY), "−∞");
        assert_eq!(signed(0.004), "+4.00e-3");
        assert_eq!(esc("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&#x27;");
    }
}
