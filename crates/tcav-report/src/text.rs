//! Chart text, laid out with the bundled font.
//!
//! plotters 0.3.7 draws ab_glyph text without the glyphs' side bearings, so
//! "conv2" comes out as "con v2". This module places every glyph at its pen
//! position plus its bearing and kerning, and blends its coverage into the
//! drawing area pixel by pixel. SVG charts keep their text as `<text>`
//! elements instead (the browser lays them out, and they stay selectable);
//! [`Lettering`] picks the way per backend, so one chart painter serves both.

use std::sync::OnceLock;

use ab_glyph::{Font, FontRef, OutlinedGlyph, PxScale, ScaleFont, point};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{FontStyle, FontTransform, register_font};

use crate::error::{ReportError, Result};

static FONT_BYTES: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// The family name the bundled font is registered under with plotters,
/// which draws the axis tick labels.
pub(crate) const FAMILY: &str = "sans-serif";

/// The bundled font, parsed once, and registered with plotters once per
/// process (plotters keeps fonts in a global table).
pub(crate) fn font() -> Result<&'static FontRef<'static>> {
    static FONT: OnceLock<Option<FontRef<'static>>> = OnceLock::new();
    FONT.get_or_init(|| {
        let font = FontRef::try_from_slice(FONT_BYTES).ok()?;
        register_font(FAMILY, FontStyle::Normal, FONT_BYTES).ok()?;
        Some(font)
    })
    .as_ref()
    .ok_or(ReportError::Font)
}

/// Text laid out on one line: glyph outlines positioned in a box whose top
/// left is (0, 0), `width` wide and `height` (ascent to descent) tall.
struct Line {
    glyphs: Vec<OutlinedGlyph>,
    width: f32,
    height: f32,
}

fn layout(font: &FontRef<'static>, text: &str, size: f32) -> Line {
    let scaled = font.as_scaled(PxScale::from(size));
    let mut pen = 0.0;
    let mut previous = None;
    let mut glyphs = Vec::with_capacity(text.len());
    for c in text.chars() {
        let id = scaled.glyph_id(c);
        if let Some(previous) = previous {
            pen += scaled.kern(previous, id);
        }
        let glyph = id.with_scale_and_position(size, point(pen, scaled.ascent()));
        pen += scaled.h_advance(id);
        previous = Some(id);
        glyphs.extend(scaled.outline_glyph(glyph));
    }
    Line { glyphs, width: pen, height: scaled.ascent() - scaled.descent() }
}

/// Width of `text` at `size` pixels, rounded up.
pub(crate) fn width(font: &FontRef<'static>, text: &str, size: f32) -> u32 {
    layout(font, text, size).width.ceil() as u32
}

/// How a label is placed relative to its anchor point.
#[derive(Clone, Copy)]
pub(crate) struct Anchor(pub HPos, pub VPos);

/// Draws `text` horizontally at `at`, anchored as `anchor` says.
pub(crate) fn draw<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    font: &FontRef<'static>,
    text: &str,
    size: f32,
    colour: RGBColor,
    at: (i32, i32),
    anchor: Anchor,
) -> Result<(), String> {
    let line = layout(font, text, size);
    let dx = match anchor.0 {
        HPos::Left => 0.0,
        HPos::Center => -line.width / 2.0,
        HPos::Right => -line.width,
    };
    let dy = match anchor.1 {
        VPos::Top => 0.0,
        VPos::Center => -line.height / 2.0,
        VPos::Bottom => -line.height,
    };
    let origin = (at.0 + dx.round() as i32, at.1 + dy.round() as i32);
    paint(area, &line, colour, |x, y| (origin.0 + x, origin.1 + y))
}

/// Draws `text` reading upwards (turned a quarter left), centred on `at`.
pub(crate) fn draw_upwards<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    font: &FontRef<'static>,
    text: &str,
    size: f32,
    colour: RGBColor,
    at: (i32, i32),
) -> Result<(), String> {
    let line = layout(font, text, size);
    let left = at.0 - (line.height / 2.0).round() as i32;
    let bottom = at.1 + (line.width / 2.0).round() as i32;
    // Along the text goes up the image; down the text goes right.
    paint(area, &line, colour, |x, y| (left + y, bottom - x))
}

/// How a backend gets its chart text: the chart painters call these instead
/// of [`draw`] and [`draw_upwards`], so that they work on bitmaps and SVG.
pub(crate) trait Lettering: DrawingBackend + Sized {
    /// Draws `text` horizontally at `at`, anchored as `anchor` says.
    fn label(
        area: &DrawingArea<Self, Shift>,
        font: &FontRef<'static>,
        text: &str,
        size: f32,
        colour: RGBColor,
        at: (i32, i32),
        anchor: Anchor,
    ) -> Result<(), String>;

    /// Draws `text` reading upwards, centred on `at`.
    fn label_upwards(
        area: &DrawingArea<Self, Shift>,
        font: &FontRef<'static>,
        text: &str,
        size: f32,
        colour: RGBColor,
        at: (i32, i32),
    ) -> Result<(), String>;
}

impl Lettering for BitMapBackend<'_> {
    fn label(
        area: &DrawingArea<Self, Shift>,
        font: &FontRef<'static>,
        text: &str,
        size: f32,
        colour: RGBColor,
        at: (i32, i32),
        anchor: Anchor,
    ) -> Result<(), String> {
        draw(area, font, text, size, colour, at, anchor)
    }

    fn label_upwards(
        area: &DrawingArea<Self, Shift>,
        font: &FontRef<'static>,
        text: &str,
        size: f32,
        colour: RGBColor,
        at: (i32, i32),
    ) -> Result<(), String> {
        draw_upwards(area, font, text, size, colour, at)
    }
}

/// SVG text is a `<text>` element in the bundled font's family; plotters
/// escapes it. plotters writes `font-size` as the size over 1.24, which is
/// close to the em size of a DejaVu Sans line `size` pixels tall, so the
/// widths measured with [`width`] still hold.
impl Lettering for SVGBackend<'_> {
    fn label(
        area: &DrawingArea<Self, Shift>,
        _font: &FontRef<'static>,
        text: &str,
        size: f32,
        colour: RGBColor,
        at: (i32, i32),
        anchor: Anchor,
    ) -> Result<(), String> {
        let style = (FAMILY, f64::from(size)).into_font().color(&colour).pos(Pos::new(anchor.0, anchor.1));
        area.draw_text(text, &style, at).map_err(|e| e.to_string())
    }

    fn label_upwards(
        area: &DrawingArea<Self, Shift>,
        _font: &FontRef<'static>,
        text: &str,
        size: f32,
        colour: RGBColor,
        at: (i32, i32),
    ) -> Result<(), String> {
        let style = (FAMILY, f64::from(size))
            .into_font()
            .transform(FontTransform::Rotate270)
            .color(&colour)
            .pos(Pos::new(HPos::Center, VPos::Center));
        area.draw_text(text, &style, at).map_err(|e| e.to_string())
    }
}

fn paint<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    line: &Line,
    colour: RGBColor,
    place: impl Fn(i32, i32) -> (i32, i32),
) -> Result<(), String> {
    let mut failure = None;
    for glyph in &line.glyphs {
        let bounds = glyph.px_bounds();
        let (left, top) = (bounds.min.x as i32, bounds.min.y as i32);
        glyph.draw(|x, y, coverage| {
            if coverage > 0.0 && failure.is_none() {
                let at = place(left + x as i32, top + y as i32);
                if let Err(e) = area.draw_pixel(at, &colour.mix(f64::from(coverage.min(1.0)))) {
                    failure = Some(e.to_string());
                }
            }
        });
    }
    failure.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn side_bearings_are_kept() {
        let font = font().unwrap();
        // Glyph boxes of "nv" must not overlap and must not leave a gap
        // wider than the font's own spacing (the plotters bug doubled it).
        let line = layout(font, "nv", 20.0);
        let (n, v) = (line.glyphs[0].px_bounds(), line.glyphs[1].px_bounds());
        let gap = v.min.x - n.max.x;
        assert!((-1.0..3.0).contains(&gap), "gap between n and v: {gap} px");
        assert!(width(font, "conv2", 14.0) > width(font, "conv", 14.0));
    }
}
