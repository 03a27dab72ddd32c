//! One bar chart per class: a group of bars per concept, a bar per layer.
//!
//! A bar is the mean TCAV score over the random runs, its error bar ± 1 std.
//! Behind each bar a grey band and across it a dashed line show the
//! random-vs-random baseline (mean ± std) of that layer, so every bar is read
//! against the baseline it was tested against. Bars that are not significant
//! are faded, hatched and marked `n.s.` (or `*` where bars are too narrow for
//! it); bars significantly below the baseline are marked `↓`. Bars whose
//! CAVs are near chance (not `reliable`, verdict `unreliable`) are only a
//! grey outline marked `?`: no claim is made for them, so they carry no
//! layer colour that could be read as a result.
//!
//! Text is drawn with a bundled font, so no system font or fontconfig is
//! needed.
//!
//! The same painter draws the SVG charts of `report.html` ([`svg_chart`]),
//! one per class and layer, with the text left to the browser.

use std::path::{Path, PathBuf};

use ab_glyph::FontRef;
use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};
use tcav_core::CoreError;

use crate::error::{ReportError, Result};
use crate::model::{ConceptResult, ExperimentReport, Verdict};
use crate::text::{self, Anchor, Lettering};

/// Width and height of every chart, in pixels.
pub const CHART_SIZE: (u32, u32) = (900, 500);

/// The file name of the chart for `class`.
pub fn chart_file_name(class: &str) -> String {
    format!("tcav_{class}.png")
}

/// Draws one PNG chart per class of the report into `dir` (created if
/// missing), named by [`chart_file_name`], each [`CHART_SIZE`] pixels, and
/// returns their paths in the report's class order. The report is checked
/// with [`ExperimentReport::validate`] first. Each PNG is drawn into a
/// temporary file in `dir` and renamed into place, so a chart on disk is
/// always complete.
pub fn write_charts(report: &ExperimentReport, dir: &Path) -> Result<Vec<PathBuf>> {
    report.validate()?;
    let font = text::font()?;
    std::fs::create_dir_all(dir).map_err(|e| CoreError::io("creating", dir, e))?;
    let mut written = Vec::with_capacity(report.classes.len());
    for class in &report.classes {
        let path = dir.join(chart_file_name(class));
        let rows = report.class_results(class);
        if rows.is_empty() {
            tracing::warn!(class = %class, "no TCAV results for this class: its chart has no bars");
        }
        write_png(dir, &path, |tmp| {
            let root = BitMapBackend::new(tmp, CHART_SIZE).into_drawing_area();
            Painter { report, font, class, layer: None, rows: &rows }.draw(&root)?;
            root.present().map_err(fail)
        })?;
        tracing::info!(path = %path.display(), bars = rows.len(), "wrote TCAV chart");
        written.push(path);
    }
    Ok(written)
}

/// The chart of `class` at one `layer` as an SVG document of [`CHART_SIZE`]
/// (a bar per concept, drawn as in [`write_charts`]), for inlining into
/// HTML. The report must have been checked with
/// [`ExperimentReport::validate`]. Text stays `<text>` in the family
/// `sans-serif`, escaped by plotters.
pub(crate) fn svg_chart(report: &ExperimentReport, class: &str, layer: &String) -> Result<String> {
    let font = text::font()?;
    let rows: Vec<&ConceptResult> = report.class_results(class).into_iter().filter(|r| r.layer == *layer).collect();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, CHART_SIZE).into_drawing_area();
        Painter { report, font, class, layer: Some(layer), rows: &rows }
            .draw(&root)
            .and_then(|()| root.present().map_err(fail))
            .map_err(|message| ReportError::Svg {
                what: format!("the chart of class `{class}` at layer `{layer}`"),
                message,
            })?;
    }
    Ok(svg)
}

/// Draws a PNG with `draw` into a temporary file in `dir` and renames it to
/// `path`, so that a chart on disk is always complete.
pub(crate) fn write_png(dir: &Path, path: &Path, draw: impl FnOnce(&Path) -> Result<(), String>) -> Result<()> {
    // The temporary name keeps the .png extension: plotters picks the
    // encoder from it.
    let tmp = tempfile::Builder::new()
        .prefix(".tmp-tcav_")
        .suffix(".png")
        .tempfile_in(dir)
        .map_err(|e| CoreError::io("creating a temporary file in", dir, e))?;
    draw(tmp.path()).map_err(|message| ReportError::Chart { path: path.to_path_buf(), message })?;
    tmp.as_file().sync_all().map_err(|e| CoreError::io("flushing", tmp.path(), e))?;
    tmp.persist(path).map_err(|e| CoreError::io("renaming into", path, e.error))?;
    Ok(())
}

/// One colour per layer, from matplotlib's "tab10", the palette TCAV users
/// know from tensorflow/tcav's plots.
const LAYER_COLOURS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

pub(crate) fn layer_colour(index: usize) -> RGBColor {
    LAYER_COLOURS[index % LAYER_COLOURS.len()]
}

pub(crate) const INK: RGBColor = RGBColor(40, 40, 40);
const TITLE_HEIGHT: u32 = 44;
const FOOTNOTE_LINE: u32 = 17;
const FOOTNOTE_SIZE: f32 = 12.0;
/// The outline of a bar whose CAVs are near chance: a grey with a faint blue
/// cast, so that no anti-aliased text pixel shares its exact colour.
const UNRELIABLE_GREY: RGBColor = RGBColor(145, 145, 158);
/// The mark over such a bar.
const UNRELIABLE_MARK: &str = "?";
/// How strong a not-significant bar's fill is.
const FADED: f64 = 0.28;
/// How dark the baseline band is.
const BAND: f64 = 0.11;
/// Share of a concept's slot that its bars fill; the rest separates groups.
const GROUP_SHARE: f64 = 0.78;
/// Share of a bar's slot that the bar fills; the rest separates layers.
const BAR_SHARE: f64 = 0.84;

pub(crate) type Area<'b> = DrawingArea<BitMapBackend<'b>, Shift>;
type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

pub(crate) fn fail<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Everything one chart is drawn from.
struct Painter<'r> {
    report: &'r ExperimentReport,
    font: &'static FontRef<'static>,
    class: &'r str,
    /// The one layer drawn, or `None` for a bar per layer of the report.
    layer: Option<&'r String>,
    /// The rows drawn: the class's, at `layer` when one is given.
    rows: &'r [&'r ConceptResult],
}

impl Painter<'_> {
    fn label<DB: Lettering>(
        &self,
        area: &DrawingArea<DB, Shift>,
        text: &str,
        size: f32,
        at: (i32, i32),
        anchor: Anchor,
    ) -> Result<(), String> {
        DB::label(area, self.font, text, size, INK, at, anchor)
    }

    /// The layers that get a bar in each concept's group.
    fn layers(&self) -> &[String] {
        self.layer.map_or(&self.report.layers, std::slice::from_ref)
    }

    /// The layer's colour: its place in the report, so that a layer has the
    /// same colour in every chart.
    fn colour(&self, layer: &str) -> RGBColor {
        layer_colour(self.report.layers.iter().position(|l| l == layer).unwrap_or(0))
    }

    fn draw<DB: Lettering>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let (width, height) = CHART_SIZE;
        let report = self.report;
        root.fill(&WHITE).map_err(fail)?;

        let title = match self.layer {
            None => format!("TCAV scores for class {} (α={}, {})", self.class, report.alpha, report.correction),
            Some(layer) => format!(
                "TCAV scores for class {} at layer {layer} (α={}, {})",
                self.class, report.alpha, report.correction
            ),
        };
        let (title, title_size) = self.fit(&title, width - 20, 20, 13);
        self.label(root, &title, title_size, ((width / 2) as i32, 12), Anchor(HPos::Center, VPos::Top))?;

        // The footnote's line count does not depend on the marker's spelling.
        let footnote_height = FOOTNOTE_LINE * self.footnote("").len() as u32 + 8;
        let legend = Legend::new(self);
        let body = root.margin(TITLE_HEIGHT, footnote_height, 0, 0);
        let (plot, legend_area) = body.split_horizontally(width - legend.width);

        let concepts = report.concepts.len().max(1);
        let mut chart = ChartBuilder::on(&plot)
            .margin_top(6)
            .margin_left(34)
            .margin_right(6)
            .x_label_area_size(30)
            .y_label_area_size(36)
            .build_cartesian_2d(0f64..concepts as f64, 0f64..1f64)
            .map_err(fail)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_labels(6)
            .y_label_formatter(&|v| format!("{v:.1}"))
            .label_style((text::FAMILY, 13).into_font().color(&INK))
            .bold_line_style(INK.mix(0.12))
            .light_line_style(TRANSPARENT)
            .axis_style(INK.mix(0.8))
            .draw()
            .map_err(fail)?;
        let (x_range, y_range) = chart.plotting_area().get_pixel_range();
        DB::label_upwards(root, self.font, "TCAV score", 14.0, INK, (14, (y_range.start + y_range.end) / 2))?;

        self.concept_labels(root, &chart)?;
        let marker = self.not_significant_marker(&chart);
        // Bands first, so that no band covers a neighbouring bar.
        for row in self.rows {
            let (x0, x1) = self.bar_span(row);
            let (b0, b1) =
                ((row.baseline_mean - row.baseline_std).max(0.0), (row.baseline_mean + row.baseline_std).min(1.0));
            chart.draw_series([Rectangle::new([(x0, b0), (x1, b1)], BLACK.mix(BAND).filled())]).map_err(fail)?;
        }
        for row in self.rows {
            self.bar(root, &mut chart, row, marker)?;
        }
        if self.rows.is_empty() {
            let centre = ((x_range.start + x_range.end) / 2, (y_range.start + y_range.end) / 2);
            self.label(root, "no results for this class", 16.0, centre, Anchor(HPos::Center, VPos::Center))?;
        }

        legend.draw(self, &legend_area, marker)?;
        for (i, line) in self.footnote(marker).iter().enumerate() {
            let y = (height - footnote_height + 2 + FOOTNOTE_LINE * i as u32) as i32;
            let (line, size) = self.fit(line, width - 20, FOOTNOTE_SIZE as u32, 9);
            self.label(root, &line, size, (12, y), Anchor(HPos::Left, VPos::Top))?;
        }
        Ok(())
    }

    /// Where the bar of a row's layer sits in its concept's group.
    fn bar_span(&self, row: &ConceptResult) -> (f64, f64) {
        let concept = self.report.concepts.iter().position(|c| *c == row.concept).unwrap_or(0) as f64;
        let layer = self.layers().iter().position(|l| *l == row.layer).unwrap_or(0) as f64;
        let slot = self.slot();
        let left = concept + (1.0 - GROUP_SHARE) / 2.0 + layer * slot;
        let gap = slot * (1.0 - BAR_SHARE) / 2.0;
        (left + gap, left + slot - gap)
    }

    fn slot(&self) -> f64 {
        GROUP_SHARE / self.layers().len().max(1) as f64
    }

    /// `text` at the largest size from `max_size` down to `min_size` that
    /// fits `room` pixels, shortened with `…` if even `min_size` does not.
    fn fit(&self, label: &str, room: u32, max_size: u32, min_size: u32) -> (String, f32) {
        for size in (min_size..=max_size).rev() {
            if text::width(self.font, label, size as f32) <= room {
                return (label.to_string(), size as f32);
            }
        }
        let size = min_size as f32;
        let chars: Vec<char> = label.chars().collect();
        (1..chars.len())
            .rev()
            .map(|keep| chars[..keep].iter().chain(['…'].iter()).collect::<String>())
            .find(|short| text::width(self.font, short, size) <= room)
            .map_or(("…".into(), size), |short| (short, size))
    }

    /// Concept names under their groups, shrunk and then shortened until
    /// they fit the group's width, so that neighbours never overlap.
    fn concept_labels<DB: Lettering>(&self, root: &DrawingArea<DB, Shift>, chart: &Chart<DB>) -> Result<(), String> {
        let group_px = chart.backend_coord(&(1.0, 0.0)).0 - chart.backend_coord(&(0.0, 0.0)).0;
        let room = (group_px - 6).max(8) as u32;
        for (i, concept) in self.report.concepts.iter().enumerate() {
            let (x, y) = chart.backend_coord(&(i as f64 + 0.5, 0.0));
            let (label, size) = self.fit(concept, room, 14, 10);
            self.label(root, &label, size, (x, y + 7), Anchor(HPos::Center, VPos::Top))?;
        }
        Ok(())
    }

    /// `n.s.` where it fits over every bar, else `*`; one marker per chart,
    /// so that the legend and footnote name exactly what is drawn.
    fn not_significant_marker<DB: DrawingBackend>(&self, chart: &Chart<DB>) -> &'static str {
        let bar_px = chart.backend_coord(&(self.slot() * BAR_SHARE, 0.0)).0 - chart.backend_coord(&(0.0, 0.0)).0;
        if text::width(self.font, "n.s.", 12.0) as i32 + 2 <= bar_px { "n.s." } else { "*" }
    }

    fn bar<DB: Lettering>(
        &self,
        root: &DrawingArea<DB, Shift>,
        chart: &mut Chart<DB>,
        row: &ConceptResult,
        marker: &str,
    ) -> Result<(), String> {
        let colour = self.colour(&row.layer);
        let (x0, x1) = self.bar_span(row);
        let significant = row.verdict.is_significant();

        if is_unreliable(row) {
            let outline = [chart.backend_coord(&(x0, row.mean)), chart.backend_coord(&(x1, 0.0))];
            root.draw(&Rectangle::new(outline, UNRELIABLE_GREY.stroke_width(2))).map_err(fail)?;
        } else if significant {
            chart.draw_series([Rectangle::new([(x0, 0.0), (x1, row.mean)], colour.filled())]).map_err(fail)?;
        } else {
            chart
                .draw_series([Rectangle::new([(x0, 0.0), (x1, row.mean)], colour.mix(FADED).filled())])
                .map_err(fail)?;
            hatch(root, chart.backend_coord(&(x0, row.mean)), chart.backend_coord(&(x1, 0.0)), colour)?;
            chart.draw_series([Rectangle::new([(x0, 0.0), (x1, row.mean)], colour.stroke_width(1))]).map_err(fail)?;
        }

        // The dashed baseline reaches a little past the bar, so that it stays
        // visible where the bar's top is level with it.
        let reach = (x1 - x0) * 0.08;
        chart
            .draw_series(DashedLineSeries::new(
                [(x0 - reach, row.baseline_mean), (x1 + reach, row.baseline_mean)],
                5,
                3,
                INK.stroke_width(2),
            ))
            .map_err(fail)?;

        // The error bar, capped, clipped to the axis like the scores are.
        let xc = (x0 + x1) / 2.0;
        let (lo, hi) = ((row.mean - row.std).max(0.0), (row.mean + row.std).min(1.0));
        let cap = (x1 - x0) * 0.18;
        let whisker = INK.stroke_width(1);
        chart
            .draw_series([
                PathElement::new([(xc, lo), (xc, hi)], whisker),
                PathElement::new([(xc - cap, lo), (xc + cap, lo)], whisker),
                PathElement::new([(xc - cap, hi), (xc + cap, hi)], whisker),
            ])
            .map_err(fail)?;

        // A not-significant bar's mark goes above its baseline band too,
        // where nothing else is drawn; a below-baseline bar's mark sits on
        // its error bar, under the band.
        let (mark, size, above) = match row.verdict {
            _ if is_unreliable(row) => (UNRELIABLE_MARK, 14.0, hi.max(row.baseline_mean + row.baseline_std)),
            Verdict::Above => return Ok(()),
            Verdict::NotSignificant | Verdict::Unreliable => {
                (marker, 12.0, hi.max(row.baseline_mean + row.baseline_std))
            }
            Verdict::Below => ("↓", 16.0, hi),
        };
        let (x, y) = chart.backend_coord(&(xc, above.min(1.0)));
        let top = chart.plotting_area().get_pixel_range().1.start;
        // Keep the mark inside the plot when a bar reaches the top.
        let y = (y - 2).max(top + size as i32 + 1);
        self.label(root, mark, size, (x, y), Anchor(HPos::Center, VPos::Bottom))
    }

    /// Whether any bar of this chart is drawn as near chance.
    fn any_unreliable(&self) -> bool {
        self.rows.iter().any(|r| is_unreliable(r))
    }

    /// The lines under the chart: what bars, error bars and baseline show,
    /// and what the marks mean, with the test and correction behind them.
    /// The line on near-chance CAVs appears only when such a bar is drawn.
    fn footnote(&self, marker: &str) -> Vec<String> {
        let report = self.report;
        let runs_min = self.rows.iter().map(|r| r.scores.len()).min().unwrap_or(0);
        let runs_max = self.rows.iter().map(|r| r.scores.len()).max().unwrap_or(0);
        let runs = if runs_min == runs_max { runs_min.to_string() } else { format!("{runs_min}–{runs_max}") };
        let mut lines = vec![
            format!(
                "Bars: mean TCAV score over {runs} random runs, error bars ± 1 std. Dashed line and grey band: random-vs-random baseline (mean ± std) of that layer."
            ),
            format!(
                "Faded, hatched bars marked {marker}: not significant ({} t-test vs baseline, {}-corrected p ≥ α = {}); no evidence in either direction.",
                report.test, report.correction, report.alpha
            ),
            format!(
                "↓: significantly below baseline (the concept pushes the classifier away from {}). Unmarked solid bars: significantly above baseline.",
                self.class
            ),
        ];
        if self.any_unreliable() {
            lines.push(format!(
                "Grey outlines marked {UNRELIABLE_MARK}: CAVs near chance (mean held-out accuracy < {}); no significance is claimed for them.",
                report.accuracy_threshold
            ));
        }
        lines
    }
}

/// Rows drawn as near chance: the verdict says so, or the CAVs failed the
/// accuracy gate (a near-chance row may also be reported not significant).
fn is_unreliable(row: &ConceptResult) -> bool {
    !row.reliable || row.verdict == Verdict::Unreliable
}

/// Diagonal hatching inside a pixel rectangle: lines `x + y = c` every 6
/// pixels, clipped to the rectangle.
fn hatch<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    (left, top): (i32, i32),
    (right, bottom): (i32, i32),
    colour: RGBColor,
) -> Result<(), String> {
    if right <= left || bottom <= top {
        return Ok(());
    }
    let style = colour.mix(0.75).stroke_width(1);
    let mut c = left + top;
    while c <= right + bottom {
        let x_start = left.max(c - bottom);
        let x_end = right.min(c - top);
        if x_start <= x_end {
            area.draw(&PathElement::new([(x_start, c - x_start), (x_end, c - x_end)], style)).map_err(fail)?;
        }
        c += 6;
    }
    Ok(())
}

/// The key right of the plot: a swatch per layer, then the baseline and the
/// marks, each drawn as on the bars.
struct Legend {
    width: u32,
    layers: Vec<String>,
}

const LEGEND_SIZE: f32 = 13.0;
const SWATCH: i32 = 14;
const LEGEND_TEXT_X: i32 = 30;

impl Legend {
    fn new(painter: &Painter) -> Self {
        const MIN: u32 = 175;
        const MAX: u32 = 240;
        let room = MAX - LEGEND_TEXT_X as u32 - 8;
        let layers: Vec<String> =
            painter.layers().iter().map(|l| painter.fit(l, room, LEGEND_SIZE as u32, LEGEND_SIZE as u32).0).collect();
        let widest = layers.iter().map(|l| text::width(painter.font, l, LEGEND_SIZE)).max().unwrap_or(0);
        Legend { width: (widest + LEGEND_TEXT_X as u32 + 12).clamp(MIN, MAX), layers }
    }

    fn draw<DB: Lettering>(
        &self,
        painter: &Painter,
        area: &DrawingArea<DB, Shift>,
        marker: &str,
    ) -> Result<(), String> {
        let left = Anchor(HPos::Left, VPos::Center);
        let x = 8;
        let mut y = 14;
        painter.label(area, "layer", LEGEND_SIZE, (x, y), left)?;
        y += 22;
        for (layer, label) in painter.layers().iter().zip(&self.layers) {
            let swatch = [(x, y - SWATCH / 2), (x + SWATCH, y + SWATCH / 2)];
            area.draw(&Rectangle::new(swatch, painter.colour(layer).filled())).map_err(fail)?;
            painter.label(area, label, LEGEND_SIZE, (x + LEGEND_TEXT_X, y), left)?;
            y += 20;
        }
        y += 16;

        area.draw(&Rectangle::new([(x, y - 6), (x + SWATCH + 4, y + 6)], BLACK.mix(BAND).filled())).map_err(fail)?;
        area.draw(&DashedPathElement::new([(x - 2, y), (x + SWATCH + 6, y)], 5, 3, INK.stroke_width(2)))
            .map_err(fail)?;
        painter.label(area, "random baseline", LEGEND_SIZE, (x + LEGEND_TEXT_X, y - 8), left)?;
        painter.label(area, "(mean ± std)", LEGEND_SIZE, (x + LEGEND_TEXT_X, y + 8), left)?;
        y += 44;

        let grey = RGBColor(127, 127, 127);
        let (top, bottom) = (y - SWATCH / 2, y + SWATCH / 2 + 2);
        area.draw(&Rectangle::new([(x, top), (x + SWATCH + 4, bottom)], grey.mix(FADED).filled())).map_err(fail)?;
        hatch(area, (x, top), (x + SWATCH + 4, bottom), grey)?;
        area.draw(&Rectangle::new([(x, top), (x + SWATCH + 4, bottom)], grey.stroke_width(1))).map_err(fail)?;
        painter.label(area, marker, 11.0, (x + SWATCH / 2 + 2, top - 1), Anchor(HPos::Center, VPos::Bottom))?;
        painter.label(area, "not significant", LEGEND_SIZE, (x + LEGEND_TEXT_X, y - 8), left)?;
        let threshold = format!("(p_adj ≥ α = {})", painter.report.alpha);
        painter.label(area, &threshold, LEGEND_SIZE, (x + LEGEND_TEXT_X, y + 8), left)?;
        y += 42;

        painter.label(area, "↓", 16.0, (x + SWATCH / 2 + 2, y), Anchor(HPos::Center, VPos::Center))?;
        painter.label(area, "below baseline", LEGEND_SIZE, (x + LEGEND_TEXT_X, y - 8), left)?;
        painter.label(area, "(pushes away)", LEGEND_SIZE, (x + LEGEND_TEXT_X, y + 8), left)?;

        if painter.any_unreliable() {
            y += 44;
            let (top, bottom) = (y - SWATCH / 2, y + SWATCH / 2 + 2);
            area.draw(&Rectangle::new([(x, top), (x + SWATCH + 4, bottom)], UNRELIABLE_GREY.stroke_width(2)))
                .map_err(fail)?;
            painter.label(
                area,
                UNRELIABLE_MARK,
                12.0,
                (x + SWATCH / 2 + 2, top - 1),
                Anchor(HPos::Center, VPos::Bottom),
            )?;
            painter.label(area, "CAVs near chance", LEGEND_SIZE, (x + LEGEND_TEXT_X, y - 8), left)?;
            painter.label(area, "(no claim)", LEGEND_SIZE, (x + LEGEND_TEXT_X, y + 8), left)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tests::sample;

    fn decode(path: &Path) -> image::RgbImage {
        image::open(path).unwrap_or_else(|e| panic!("{} is not a valid PNG: {e}", path.display())).to_rgb8()
    }

    fn near(p: &image::Rgb<u8>, colour: [f64; 3]) -> bool {
        p.0.iter().zip(colour).all(|(&c, want)| (f64::from(c) - want).abs() <= 3.0)
    }

    /// The first layer's colour, as a solid bar fills with it.
    fn is_solid_first_layer(p: &image::Rgb<u8>) -> bool {
        let RGBColor(r, g, b) = layer_colour(0);
        near(p, [r, g, b].map(f64::from))
    }

    /// The first layer's colour faded over white, as a not-significant bar
    /// fills with it.
    fn is_faded_first_layer(p: &image::Rgb<u8>) -> bool {
        let RGBColor(r, g, b) = layer_colour(0);
        near(p, [r, g, b].map(|c| 255.0 - FADED * (255.0 - f64::from(c))))
    }

    /// The columns left of the legend that hold a few pixels matching
    /// `hit`, grouped into runs of adjacent columns; runs narrower than a
    /// bar (such as a bar's outline) are dropped.
    fn column_runs(image: &image::RgbImage, hit: fn(&image::Rgb<u8>) -> bool) -> Vec<std::ops::Range<u32>> {
        let right = CHART_SIZE.0 - 240;
        let mut runs: Vec<std::ops::Range<u32>> = Vec::new();
        for x in 0..right {
            let filled = (TITLE_HEIGHT..CHART_SIZE.1 - 60).filter(|&y| hit(image.get_pixel(x, y))).count() > 3;
            match runs.last_mut() {
                Some(run) if filled && run.end == x => run.end = x + 1,
                _ if filled => runs.push(x..x + 1),
                _ => {}
            }
        }
        runs.retain(|run| run.len() > 4);
        runs
    }

    fn column_height(image: &image::RgbImage, x: u32, hit: fn(&image::Rgb<u8>) -> bool) -> u32 {
        (0..CHART_SIZE.1).filter(|&y| hit(image.get_pixel(x, y))).count() as u32
    }

    /// One class, one layer, concepts `high` (mean 0.9) and `low` (0.1).
    fn two_bars(low_verdict: Verdict) -> ExperimentReport {
        let mut report = sample();
        report.classes = vec!["zebra".into()];
        report.layers = vec!["conv2".into()];
        report.concepts = vec!["high".into(), "low".into()];
        let template = report.results[0].clone();
        let bar = |concept: &str, mean: f64, verdict: Verdict, p: f64| ConceptResult {
            concept: concept.into(),
            scores: vec![mean - 0.02, mean, mean + 0.02],
            mean,
            std: 0.02,
            baseline_mean: 0.5,
            baseline_std: 0.05,
            p_value: p / 2.0,
            p_adjusted: p,
            verdict,
            ci95_low: Some(mean - 0.05),
            ci95_high: Some(mean + 0.05),
            cohens_d: Some((mean - 0.5) / 0.04),
            ..template.clone()
        };
        let low_p = if low_verdict.is_significant() { 1e-4 } else { 0.4 };
        let mut low = bar("low", 0.1, low_verdict, low_p);
        if low_verdict == Verdict::Unreliable {
            low.reliable = false;
            low.cav_accuracy_mean = 0.55;
        }
        report.results = vec![bar("high", 0.9, Verdict::Above, 1e-5), low];
        report.stability.clear();
        report.validate().unwrap();
        report
    }

    #[test]
    fn one_valid_png_per_class_of_the_expected_size_and_no_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("charts");
        let report = sample();
        let paths = write_charts(&report, &out).unwrap();
        assert_eq!(paths, [out.join("tcav_zebra.png"), out.join("tcav_tiger.png")]);
        for path in &paths {
            let image = decode(path);
            assert_eq!(image.dimensions(), CHART_SIZE);
            let ink = image.pixels().filter(|p| p.0 != [255, 255, 255]).count();
            assert!(ink > 10_000, "{} looks blank ({ink} drawn pixels)", path.display());
        }
        let mut names: Vec<_> =
            std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(names, ["tcav_tiger.png", "tcav_zebra.png"], "temporary files must not remain");
    }

    #[test]
    fn bar_heights_follow_the_means() {
        let dir = tempfile::tempdir().unwrap();
        let path = &write_charts(&two_bars(Verdict::Below), dir.path()).unwrap()[0];
        let image = decode(path);
        let runs = column_runs(&image, is_solid_first_layer);
        assert_eq!(runs.len(), 2, "expected two solid bars, found column runs {runs:?}");
        // Sample a column away from the error bar in the middle.
        let high = column_height(&image, runs[0].start + 2, is_solid_first_layer);
        let low = column_height(&image, runs[1].start + 2, is_solid_first_layer);
        let ratio = f64::from(high) / f64::from(low);
        assert!((7.0..11.0).contains(&ratio), "bar heights {high} px and {low} px should be about 0.9 : 0.1");
    }

    #[test]
    fn not_significant_bars_are_faded() {
        let dir = tempfile::tempdir().unwrap();
        let path = &write_charts(&two_bars(Verdict::NotSignificant), dir.path()).unwrap()[0];
        let image = decode(path);
        let solid = column_runs(&image, is_solid_first_layer);
        assert_eq!(solid.len(), 1, "only the significant bar is solid: {solid:?}");
        let faded = column_runs(&image, is_faded_first_layer);
        assert!(
            faded.iter().any(|run| run.start > solid[0].end),
            "the not-significant bar right of the solid one should be faded: {faded:?}"
        );
    }

    fn is_unreliable_grey(p: &image::Rgb<u8>) -> bool {
        let RGBColor(r, g, b) = UNRELIABLE_GREY;
        p.0 == [r, g, b]
    }

    /// Pixels of the near-chance outline left of the legend and inside it.
    fn grey_pixels(image: &image::RgbImage) -> (usize, usize) {
        let legend_left = CHART_SIZE.0 - 240;
        let (mut plot, mut legend) = (0, 0);
        for (x, _, p) in image.enumerate_pixels() {
            if is_unreliable_grey(p) {
                if x < legend_left { plot += 1 } else { legend += 1 }
            }
        }
        (plot, legend)
    }

    #[test]
    fn unreliable_bars_are_grey_outlines_with_a_legend_entry() {
        let dir = tempfile::tempdir().unwrap();
        let path = &write_charts(&two_bars(Verdict::Unreliable), &dir.path().join("a")).unwrap()[0];
        let image = decode(path);
        let solid = column_runs(&image, is_solid_first_layer);
        assert_eq!(solid.len(), 1, "only the reliable bar is filled: {solid:?}");
        let faded = column_runs(&image, is_faded_first_layer);
        assert!(faded.iter().all(|run| run.start < solid[0].end), "no faded fill right of it: {faded:?}");
        let (plot, legend) = grey_pixels(&image);
        // The outline of a bar about 0.1 high: two sides and two ends.
        assert!(plot > 60, "the near-chance bar should be outlined in grey ({plot} pixels)");
        assert!(legend > 20, "the legend should show the near-chance outline ({legend} pixels)");

        // A chart without near-chance bars has neither.
        let path = &write_charts(&two_bars(Verdict::Below), &dir.path().join("b")).unwrap()[0];
        assert_eq!(grey_pixels(&decode(path)), (0, 0));
    }

    #[test]
    fn charts_are_reproducible_and_change_with_the_data() {
        let dir = tempfile::tempdir().unwrap();
        let report = two_bars(Verdict::Below);
        let first = decode(&write_charts(&report, &dir.path().join("a")).unwrap()[0]);
        let again = decode(&write_charts(&report, &dir.path().join("b")).unwrap()[0]);
        assert!(first == again, "the same report must draw the same pixels");

        let mut changed = report.clone();
        changed.results[0].mean = 0.7;
        changed.results[0].ci95_low = Some(0.65);
        changed.results[0].ci95_high = Some(0.75);
        let other = decode(&write_charts(&changed, &dir.path().join("c")).unwrap()[0]);
        assert!(first != other, "a different mean must change the chart");
    }

    #[test]
    fn invalid_reports_draw_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut report = sample();
        report.results[4].layer = "conv9".into();
        let err = write_charts(&report, &dir.path().join("charts")).unwrap_err();
        assert!(err.to_string().contains("#4"), "{err}");
        assert!(!dir.path().join("charts").exists());
    }

    #[test]
    fn long_names_and_empty_classes_still_draw() {
        let dir = tempfile::tempdir().unwrap();
        let mut report = sample();
        report.classes.push("horse".into());
        let long = "a-concept-name-far-too-long-to-fit-under-its-group".to_string();
        report.concepts[0] = long.clone();
        report.layers[0] = "features.denseblock4.denselayer16.conv2".into();
        for r in &mut report.results {
            if r.concept == "striped" {
                r.concept = long.clone();
            }
            if r.layer == "conv2" {
                r.layer = report.layers[0].clone();
            }
        }
        for r in &mut report.stability {
            if r.concept == "striped" {
                r.concept = long.clone();
            }
            if r.layer == "conv2" {
                r.layer = report.layers[0].clone();
            }
        }
        let paths = write_charts(&report, dir.path()).unwrap();
        assert_eq!(paths.len(), 3);
        for path in &paths {
            assert_eq!(decode(path).dimensions(), CHART_SIZE);
        }
    }
}
