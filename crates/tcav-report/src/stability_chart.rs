//! One chart per class of how each adjusted p-value moves as random runs
//! are added: a line per (layer, concept), the α line across.
//!
//! A verdict that holds once the line stays below α is settled; one that
//! crosses α back and forth as runs are added needs more runs. Colour is the
//! layer (the same colours as the bar charts), marker shape the concept, and
//! a filled marker a significant verdict at that number of runs.

use std::path::{Path, PathBuf};

use ab_glyph::FontRef;
use plotters::element::{DashedPathElement, Polygon};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};
use tcav_core::CoreError;

use crate::chart::{Area, CHART_SIZE, INK, fail, layer_colour, write_png};
use crate::error::Result;
use crate::model::{ExperimentReport, StabilityRow};
use crate::text::{self, Anchor};

/// The file name of the stability chart for `class`.
pub fn stability_chart_file_name(class: &str) -> String {
    format!("stability_{class}.png")
}

/// Draws one PNG per class that has [stability rows](ExperimentReport::stability)
/// into `dir` (created if missing), named by [`stability_chart_file_name`],
/// each [`CHART_SIZE`] pixels, and returns their paths in the report's class
/// order; classes without stability rows get no chart. The y axis is the
/// adjusted p-value on a log scale (a p-value of 0 is drawn at the axis'
/// floor), the x axis the number of random runs, and a dashed line marks
/// the report's α. The report is checked with
/// [`ExperimentReport::validate`] first, and every PNG is written
/// atomically.
pub fn write_stability_chart(report: &ExperimentReport, dir: &Path) -> Result<Vec<PathBuf>> {
    report.validate()?;
    let font = text::font()?;
    let mut written = Vec::new();
    for class in &report.classes {
        let rows = report.class_stability(class);
        if rows.is_empty() {
            continue;
        }
        std::fs::create_dir_all(dir).map_err(|e| CoreError::io("creating", dir, e))?;
        let path = dir.join(stability_chart_file_name(class));
        write_png(dir, &path, |tmp| StabilityPainter { report, font, class, rows: &rows }.draw(tmp))?;
        tracing::info!(path = %path.display(), lines = rows.len(), "wrote TCAV stability chart");
        written.push(path);
    }
    Ok(written)
}

const TITLE_HEIGHT: u32 = 44;
const FOOTNOTE_LINE: u32 = 17;
const FOOTNOTE_SIZE: f32 = 12.0;
const LEGEND_WIDTH: u32 = 200;
const LEGEND_SIZE: f32 = 13.0;
/// The lowest adjusted p-value the y axis can show; smaller ones (and 0)
/// are drawn at the floor.
const LOWEST_FLOOR: f64 = 1e-16;

/// The marker shapes that tell concepts apart, in the report's concept order.
#[derive(Clone, Copy)]
enum Shape {
    Circle,
    Square,
    TriangleUp,
    Diamond,
    TriangleDown,
}

const SHAPES: [Shape; 5] = [Shape::Circle, Shape::Square, Shape::TriangleUp, Shape::Diamond, Shape::TriangleDown];

fn concept_shape(index: usize) -> Shape {
    SHAPES[index % SHAPES.len()]
}

/// Draws a marker centred on pixel `(x, y)`: filled for a significant
/// verdict, an outline otherwise.
fn marker(area: &Area, shape: Shape, (x, y): (i32, i32), colour: RGBColor, filled: bool) -> Result<(), String> {
    let corners: Vec<(i32, i32)> = match shape {
        Shape::Circle => {
            let style = if filled { colour.filled() } else { colour.stroke_width(2) };
            return area.draw(&Circle::new((x, y), 5, style)).map_err(fail);
        }
        Shape::Square => vec![(x - 4, y - 4), (x + 4, y - 4), (x + 4, y + 4), (x - 4, y + 4)],
        Shape::TriangleUp => vec![(x, y - 6), (x + 6, y + 4), (x - 6, y + 4)],
        Shape::Diamond => vec![(x, y - 6), (x + 6, y), (x, y + 6), (x - 6, y)],
        Shape::TriangleDown => vec![(x - 6, y - 4), (x + 6, y - 4), (x, y + 6)],
    };
    if filled {
        area.draw(&Polygon::new(corners, colour.filled())).map_err(fail)
    } else {
        let mut outline = corners.clone();
        outline.push(corners[0]);
        area.draw(&PathElement::new(outline, colour.stroke_width(2))).map_err(fail)
    }
}

struct StabilityPainter<'r> {
    report: &'r ExperimentReport,
    font: &'static FontRef<'static>,
    class: &'r str,
    rows: &'r [&'r StabilityRow],
}

impl StabilityPainter<'_> {
    fn label(&self, area: &Area, text: &str, size: f32, at: (i32, i32), anchor: Anchor) -> Result<(), String> {
        text::draw(area, self.font, text, size, INK, at, anchor)
    }

    fn layer_index(&self, layer: &str) -> usize {
        self.report.layers.iter().position(|l| l == layer).unwrap_or(0)
    }

    fn concept_index(&self, concept: &str) -> usize {
        self.report.concepts.iter().position(|c| c == concept).unwrap_or(0)
    }

    /// The y axis' floor: a power of ten below every positive p-value shown
    /// and at least a decade below α, so that the α line never sits on the
    /// axis.
    fn floor(&self) -> f64 {
        let smallest = self
            .rows
            .iter()
            .flat_map(|r| &r.points)
            .map(|p| p.p_adjusted)
            .filter(|&p| p > 0.0)
            .fold(self.report.alpha / 10.0, f64::min);
        10f64.powf(smallest.log10().floor()).max(LOWEST_FLOOR)
    }

    fn draw(&self, path: &Path) -> Result<(), String> {
        let (width, height) = CHART_SIZE;
        let report = self.report;
        let root = BitMapBackend::new(path, CHART_SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(fail)?;
        let title =
            format!("How p_adj moves with the number of random runs: class {} ({})", self.class, report.correction);
        self.label(&root, &title, 18.0, ((width / 2) as i32, 12), Anchor(HPos::Center, VPos::Top))?;

        let footnote = [
            "Each line: one layer (colour) and concept (marker), tested on its first N random runs; p_adj corrected over all hypotheses at that N."
                .to_string(),
            format!(
                "Filled markers: significant at α = {} (dashed line). A verdict that still crosses the line as runs are added needs more runs.",
                report.alpha
            ),
        ];
        let footnote_height = FOOTNOTE_LINE * footnote.len() as u32 + 8;
        let body = root.margin(TITLE_HEIGHT, footnote_height, 0, 0);
        let (plot, legend) = body.split_horizontally(width - LEGEND_WIDTH);

        let max_runs = self.rows.iter().flat_map(|r| &r.points).map(|p| p.runs).max().unwrap_or(1) as f64;
        let x_max = (max_runs * 1.06).max(max_runs + 1.0);
        let floor = self.floor();
        let mut chart = ChartBuilder::on(&plot)
            .margin_top(6)
            .margin_left(34)
            .margin_right(12)
            .x_label_area_size(40)
            .y_label_area_size(52)
            .build_cartesian_2d(0f64..x_max, (floor..1f64).log_scale())
            .map_err(fail)?;
        chart
            .configure_mesh()
            .x_labels(8)
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| if *v >= 0.999 { "1".into() } else { format!("{v:.0e}") })
            .label_style((text::FAMILY, 13).into_font().color(&INK))
            .bold_line_style(INK.mix(0.12))
            .light_line_style(TRANSPARENT)
            .axis_style(INK.mix(0.8))
            .draw()
            .map_err(fail)?;
        let (x_range, y_range) = chart.plotting_area().get_pixel_range();
        text::draw_upwards(&root, self.font, "p_adj (log scale)", 14.0, INK, (14, (y_range.start + y_range.end) / 2))?;
        let x_title = ((x_range.start + x_range.end) / 2, y_range.end + 26);
        self.label(&root, "random runs", 14.0, x_title, Anchor(HPos::Center, VPos::Top))?;

        chart
            .draw_series(DashedLineSeries::new([(0.0, report.alpha), (x_max, report.alpha)], 6, 4, INK.stroke_width(2)))
            .map_err(fail)?;
        let at_floor = |p: f64| p.max(floor);
        for row in self.rows {
            let colour = layer_colour(self.layer_index(&row.layer));
            let points: Vec<(f64, f64)> = row.points.iter().map(|p| (p.runs as f64, at_floor(p.p_adjusted))).collect();
            chart.draw_series(LineSeries::new(points, colour.stroke_width(2))).map_err(fail)?;
        }
        let shape_of = |row: &StabilityRow| concept_shape(self.concept_index(&row.concept));
        for row in self.rows {
            let colour = layer_colour(self.layer_index(&row.layer));
            for point in &row.points {
                let at = chart.backend_coord(&(point.runs as f64, at_floor(point.p_adjusted)));
                marker(&root, shape_of(row), at, colour, point.verdict.is_significant())?;
            }
        }

        self.legend(&legend)?;
        for (i, line) in footnote.iter().enumerate() {
            let y = (height - footnote_height + 2 + FOOTNOTE_LINE * i as u32) as i32;
            self.label(&root, line, FOOTNOTE_SIZE, (12, y), Anchor(HPos::Left, VPos::Top))?;
        }
        root.present().map_err(fail)?;
        Ok(())
    }

    /// Layers by colour, concepts by marker, then what filled and dashed mean.
    fn legend(&self, area: &Area) -> Result<(), String> {
        let left = Anchor(HPos::Left, VPos::Center);
        let (x, text_x) = (10, 34);
        let mut y = 14;
        let shown = |name: &String, of_row: fn(&StabilityRow) -> &String| self.rows.iter().any(|r| of_row(r) == name);
        self.label(area, "layer", LEGEND_SIZE, (x, y), left)?;
        y += 20;
        for (i, layer) in self.report.layers.iter().enumerate().filter(|(_, l)| shown(l, |r| &r.layer)) {
            area.draw(&Rectangle::new([(x, y - 6), (x + 16, y + 6)], layer_colour(i).filled())).map_err(fail)?;
            self.label(area, &shorten(layer, 18), LEGEND_SIZE, (x + text_x, y), left)?;
            y += 19;
        }
        y += 10;
        self.label(area, "concept", LEGEND_SIZE, (x, y), left)?;
        y += 20;
        for (i, concept) in self.report.concepts.iter().enumerate().filter(|(_, c)| shown(c, |r| &r.concept)) {
            marker(area, concept_shape(i), (x + 8, y), INK, true)?;
            self.label(area, &shorten(concept, 18), LEGEND_SIZE, (x + text_x, y), left)?;
            y += 19;
        }
        y += 12;
        marker(area, Shape::Circle, (x + 8, y), INK, true)?;
        self.label(area, "significant", LEGEND_SIZE, (x + text_x, y), left)?;
        y += 19;
        marker(area, Shape::Circle, (x + 8, y), INK, false)?;
        self.label(area, "not significant", LEGEND_SIZE, (x + text_x, y), left)?;
        y += 19;
        area.draw(&DashedPathElement::new([(x - 2, y), (x + 20, y)], 6, 4, INK.stroke_width(2))).map_err(fail)?;
        self.label(area, &format!("α = {}", self.report.alpha), LEGEND_SIZE, (x + text_x, y), left)?;
        Ok(())
    }
}

/// `name` cut to `chars` characters with `…`, so legend entries stay inside
/// the legend.
fn shorten(name: &str, chars: usize) -> String {
    if name.chars().count() <= chars { name.to_string() } else { name.chars().take(chars - 1).chain(['…']).collect() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tests::sample;
    use crate::model::{StabilityPoint, Verdict};

    fn decode(path: &Path) -> image::RgbImage {
        image::open(path).unwrap_or_else(|e| panic!("{} is not a valid PNG: {e}", path.display())).to_rgb8()
    }

    fn colour_pixels(image: &image::RgbImage, colour: RGBColor, right: u32) -> usize {
        let RGBColor(r, g, b) = colour;
        image.enumerate_pixels().filter(|(x, _, p)| *x < right && p.0 == [r, g, b]).count()
    }

    #[test]
    fn one_png_per_class_with_stability_rows() {
        let dir = tempfile::tempdir().unwrap();
        let report = sample();
        let paths = write_stability_chart(&report, dir.path()).unwrap();
        assert_eq!(paths, [dir.path().join("stability_zebra.png"), dir.path().join("stability_tiger.png")]);
        for path in &paths {
            let image = decode(path);
            assert_eq!(image.dimensions(), CHART_SIZE);
            // Every stability row of the sample is at conv2, the first layer.
            let lines = colour_pixels(&image, layer_colour(0), CHART_SIZE.0 - LEGEND_WIDTH);
            assert!(lines > 200, "{}: the conv2 lines are missing ({lines} pixels)", path.display());
            assert_eq!(colour_pixels(&image, layer_colour(1), CHART_SIZE.0), 0, "no conv4 line or legend entry");
        }
        let mut names: Vec<_> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(names, ["stability_tiger.png", "stability_zebra.png"], "temporary files must not remain");

        let mut report = sample();
        report.stability.retain(|r| r.class == "zebra");
        let paths = write_stability_chart(&report, &dir.path().join("only_zebra")).unwrap();
        assert_eq!(paths, [dir.path().join("only_zebra/stability_zebra.png")]);
        report.stability.clear();
        assert!(write_stability_chart(&report, &dir.path().join("none")).unwrap().is_empty());
        assert!(!dir.path().join("none").exists());
    }

    #[test]
    fn charts_are_reproducible_and_follow_the_p_values() {
        let dir = tempfile::tempdir().unwrap();
        let report = sample();
        let first = decode(&write_stability_chart(&report, &dir.path().join("a")).unwrap()[0]);
        let again = decode(&write_stability_chart(&report, &dir.path().join("b")).unwrap()[0]);
        assert!(first == again, "the same report must draw the same pixels");
        let mut changed = report.clone();
        changed.stability[0].points[0].p_adjusted = 0.3;
        changed.stability[0].points[0].verdict = Verdict::NotSignificant;
        let other = decode(&write_stability_chart(&changed, &dir.path().join("c")).unwrap()[0]);
        assert!(first != other, "a different p-value must change the chart");
    }

    #[test]
    fn zero_p_values_and_many_concepts_still_draw() {
        let dir = tempfile::tempdir().unwrap();
        let mut report = sample();
        report.stability[0].points = vec![
            StabilityPoint { runs: 5, p_value: 0.0, p_adjusted: 0.0, verdict: Verdict::Above },
            StabilityPoint { runs: 50, p_value: 1e-300, p_adjusted: 1e-299, verdict: Verdict::Above },
        ];
        let paths = write_stability_chart(&report, dir.path()).unwrap();
        assert_eq!(decode(&paths[0]).dimensions(), CHART_SIZE);
    }

    #[test]
    fn invalid_reports_draw_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut report = sample();
        report.stability[1].points[0].runs = 99;
        let err = write_stability_chart(&report, &dir.path().join("charts")).unwrap_err();
        assert!(err.to_string().contains("stability row #1"), "{err}");
        assert!(!dir.path().join("charts").exists());
    }

    #[test]
    fn long_names_are_shortened() {
        assert_eq!(shorten("conv2", 18), "conv2");
        assert_eq!(shorten("features.denseblock4.conv", 10), "features.…");
    }
}
