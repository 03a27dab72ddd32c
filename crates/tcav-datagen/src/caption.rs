//! Captions: the small glyph patches of the TCAV paper's caption variant,
//! where they go on a creature image, and the caption concept images.
//!
//! A caption is a white box with a black glyph, one glyph per family. Its
//! placement and its glyph come from a seed of their own, never from the
//! creature's, so a captioned image and its caption-free counterfactual
//! hold the same creature, background, lighting and noise: they differ
//! only inside the caption box.

use image::RgbImage;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::colour::Hsv;
use crate::config::{CaptionConfig, CaptionPlacement};
use crate::creature::Species;
use crate::paint::{ImageRng, Painter, bar, ellipse};
use crate::random_set;

/// The smallest caption box side in pixels: below it the glyphs stop being
/// told apart once the image is averaged down from its supersamples.
const MIN_SIDE: u32 = 6;

/// The box colour: near white, so the glyph stands out on any background.
const PAPER: Hsv = Hsv { h: 0.0, s: 0.0, v: 0.96 };
/// The glyph colour: near black.
const INK: Hsv = Hsv { h: 0.0, s: 0.0, v: 0.05 };

/// Where a caption box is, in pixels of the final image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptionBox {
    /// Left edge: the first pixel column inside the box.
    pub x: u32,
    /// Top edge: the first pixel row inside the box.
    pub y: u32,
    /// Width and height of the box, in pixels.
    pub side: u32,
}

impl CaptionBox {
    /// Whether pixel (`px`, `py`) lies inside the box.
    pub fn contains(&self, px: u32, py: u32) -> bool {
        (self.x..self.x + self.side).contains(&px) && (self.y..self.y + self.side).contains(&py)
    }
}

/// One caption to draw: whose glyph, and where.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Caption {
    pub glyph: Species,
    pub place: CaptionBox,
}

impl Caption {
    /// Paints the box and its glyph. The box covers its pixels exactly, so
    /// nothing outside [`Caption::place`] changes.
    pub fn draw(&self, painter: &mut Painter) {
        let CaptionBox { x, y, side } = self.place;
        painter.fill_pixel_square(x, y, side, PAPER);
        let size = painter.size() as f32;
        // Box-local coordinates (0 to 1, y down) to canvas coordinates.
        let (left, top, scale) = (x as f32 / size, y as f32 / size, side as f32 / size);
        let to_canvas = |(u, v): (f32, f32)| (left + u * scale, top + v * scale);
        let shapes: Vec<Vec<(f32, f32)>> = match self.glyph {
            // Fire: a solid upward triangle, like a flame or a warning sign.
            Species::FireRabbit => vec![vec![(0.5, 0.14), (0.87, 0.84), (0.13, 0.84)]],
            // Water: a ring, like a drop seen from above.
            Species::WaterLizard => vec![ellipse(0.5, 0.5, 0.36, 0.36, 0.0)],
            // Grass: a diagonal cross.
            Species::GrassMonkey => vec![bar((0.18, 0.18), (0.82, 0.82), 0.2), bar((0.82, 0.18), (0.18, 0.82), 0.2)],
        };
        for shape in shapes {
            painter.polygon(&shape.into_iter().map(to_canvas).collect::<Vec<_>>(), INK);
        }
        if self.glyph == Species::WaterLizard {
            let hole: Vec<_> = ellipse(0.5, 0.5, 0.17, 0.17, 0.0).into_iter().map(to_canvas).collect();
            painter.polygon(&hole, PAPER);
        }
    }
}

/// The caption box side in pixels for a box of `fraction` of the image side.
fn side_pixels(fraction: f64, image_size: u32) -> u32 {
    let side = (fraction * f64::from(image_size)).round() as u32;
    side.clamp(MIN_SIDE.min(image_size), image_size)
}

/// The caption a creature of `species` gets, and whether it is its own.
///
/// Every draw is made whatever the outcome, so that the corner does not
/// depend on `probability`, and one uniform number decides agreement: the
/// images whose caption disagrees at a higher probability are a subset of
/// those at a lower one, which keeps a sweep over `probability` paired.
pub(crate) fn choose(config: &CaptionConfig, species: Species, image_size: u32, seed: u64) -> (Caption, bool) {
    let mut rng = ImageRng::seed_from_u64(seed);
    let agree_draw: f64 = rng.random();
    let other_draw = rng.random_range(0..Species::ALL.len() - 1);
    let corner_draw = rng.random_range(0..4u8);
    let agrees = agree_draw < config.probability;
    let glyph = if agrees {
        species
    } else {
        let others: Vec<Species> = Species::ALL.into_iter().filter(|&s| s != species).collect();
        others[other_draw]
    };
    let corner = match config.placement {
        CaptionPlacement::RandomCorner => corner_draw,
        CaptionPlacement::TopLeft => 0,
        CaptionPlacement::TopRight => 1,
        CaptionPlacement::BottomLeft => 2,
        CaptionPlacement::BottomRight => 3,
    };
    let side = side_pixels(config.size, image_size);
    let margin = ((config.margin * f64::from(image_size)).round() as u32).min(image_size - side);
    let far = image_size - side - margin;
    let (x, y) = match corner {
        0 => (margin, margin),
        1 => (far, margin),
        2 => (margin, far),
        _ => (far, far),
    };
    (Caption { glyph, place: CaptionBox { x, y, side } }, agrees)
}

/// Draws one image of the caption concept of `species`: a random-set-like
/// image (any colours, primitive shapes) with the family's caption where
/// class images carry theirs: at a random corner, at the configured size.
/// The varied backgrounds make a CAV learn the caption, not a background;
/// the shared geometry lets a CAV in a spatial (convolutional) layer line
/// up with where the classifier sees captions. Returns the image and the
/// caption drawn.
pub(crate) fn render_concept(config: &CaptionConfig, species: Species, size: u32, seed: u64) -> (RgbImage, Caption) {
    let mut rng = ImageRng::seed_from_u64(seed);
    let background_seed = rng.random();
    let place_seed = rng.random();
    // Placed exactly as a creature's own caption would be (probability 1).
    let always = CaptionConfig { probability: 1.0, ..config.clone() };
    let (caption, _) = choose(&always, species, size, place_seed);
    (random_set::render_random_with(size, background_seed, |painter| caption.draw(painter)), caption)
}

/// Reads which glyph the caption box `place` of `image` shows: the one
/// whose clean drawing's ink pattern is nearest. Lighting and noise shift
/// the greys, so ink is whatever is darker than the middle of the box's
/// own darkest and lightest values.
#[cfg(test)]
pub(crate) fn read_glyph(image: &RgbImage, place: CaptionBox) -> Species {
    let luma = |p: &image::Rgb<u8>| p.0.iter().map(|&c| u32::from(c)).sum::<u32>();
    let ink_of = |image: &RgbImage, x0: u32, y0: u32| -> Vec<bool> {
        let values: Vec<u32> = (0..place.side * place.side)
            .map(|i| luma(image.get_pixel(x0 + i % place.side, y0 + i / place.side)))
            .collect();
        let (lo, hi) = (values.iter().min().copied().unwrap_or(0), values.iter().max().copied().unwrap_or(0));
        values.iter().map(|&v| v * 2 < lo + hi).collect()
    };
    let seen = ink_of(image, place.x, place.y);
    let distance = |glyph: Species| {
        let mut painter = Painter::new(place.side);
        Caption { glyph, place: CaptionBox { x: 0, y: 0, side: place.side } }.draw(&mut painter);
        let clean = ink_of(&painter.finish(), 0, 0);
        seen.iter().zip(&clean).filter(|(a, b)| a != b).count()
    };
    Species::ALL.into_iter().min_by_key(|&g| distance(g)).unwrap_or(Species::FireRabbit)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "in a test, a failed unwrap is a failed test")]
mod tests {
    use tcav_core::seed::derive;

    use super::*;

    /// A caption drawn alone on a mid-grey canvas and averaged down, as it
    /// would look in a `size`-pixel image; the box at the top left.
    fn lone_caption(glyph: Species, side: u32, size: u32) -> RgbImage {
        let mut painter = Painter::new(size);
        painter.fill_with(|_, _| image::Rgb([128, 128, 128]));
        Caption { glyph, place: CaptionBox { x: 0, y: 0, side } }.draw(&mut painter);
        painter.finish()
    }

    /// Dark pixels (the glyph's ink) inside the box.
    fn ink(image: &RgbImage, side: u32) -> Vec<bool> {
        (0..side * side).map(|i| image.get_pixel(i % side, i / side).0[0] < 128).collect()
    }

    #[test]
    fn the_three_glyphs_are_clearly_distinct_at_64_pixels() {
        let side = side_pixels(CaptionConfig::DEFAULT_SIZE, 64);
        assert_eq!(side, 12);
        let inks: Vec<Vec<bool>> = Species::ALL.iter().map(|&s| ink(&lone_caption(s, side, 64), side)).collect();
        for (i, a) in inks.iter().enumerate() {
            let count = a.iter().filter(|&&d| d).count();
            assert!(count >= 25, "glyph {i} has only {count} dark pixels");
            for b in &inks[i + 1..] {
                let both = a.iter().zip(b).filter(|(x, y)| **x && **y).count();
                let either = a.iter().zip(b).filter(|(x, y)| **x || **y).count();
                let iou = both as f64 / either as f64;
                assert!(iou < 0.6, "two glyphs overlap too much (IoU {iou})");
                let differing = a.iter().zip(b).filter(|(x, y)| x != y).count();
                assert!(differing >= 20, "two glyphs differ in only {differing} pixels");
            }
        }
        // The ring's centre is paper, the triangle's and the cross's ink.
        let centre = |s: Species| lone_caption(s, side, 64).get_pixel(side / 2, side / 2).0[0];
        assert!(centre(Species::WaterLizard) > 200);
        assert!(centre(Species::FireRabbit) < 60 && centre(Species::GrassMonkey) < 60);
    }

    #[test]
    fn a_caption_changes_only_the_pixels_of_its_box() {
        let place = CaptionBox { x: 5, y: 9, side: 11 };
        for glyph in Species::ALL {
            let mut painter = Painter::new(32);
            painter.fill_with(|_, _| image::Rgb([40, 90, 140]));
            Caption { glyph, place }.draw(&mut painter);
            let image = painter.finish();
            for (x, y, pixel) in image.enumerate_pixels() {
                assert_eq!(place.contains(x, y), pixel.0 != [40, 90, 140], "pixel ({x}, {y}) of {glyph:?}");
            }
        }
    }

    #[test]
    fn captions_sit_in_the_chosen_corner_inside_the_image() {
        let mut corners = std::collections::BTreeSet::new();
        for size in [16, 64, 128] {
            for seed in 0..40 {
                let config = CaptionConfig::with_probability(0.5);
                let (caption, _) = choose(&config, Species::WaterLizard, size, seed);
                let CaptionBox { x, y, side } = caption.place;
                assert!(side >= MIN_SIDE && x + side <= size && y + side <= size, "{size}: {caption:?}");
                if size == 64 {
                    assert_eq!(side, 12);
                    assert!([2, 50].contains(&x) && [2, 50].contains(&y), "{caption:?}");
                    corners.insert((x, y));
                }
            }
        }
        assert_eq!(corners.len(), 4, "a random corner should reach every corner: {corners:?}");
        let fixed = CaptionConfig { placement: CaptionPlacement::BottomLeft, ..CaptionConfig::with_probability(0.5) };
        for seed in 0..10 {
            let place = choose(&fixed, Species::FireRabbit, 64, seed).0.place;
            assert_eq!((place.x, place.y), (2, 50));
        }
    }

    #[test]
    fn caption_concept_images_show_their_family_caption_where_class_images_do() {
        let config = CaptionConfig::with_probability(0.5);
        let mut corners = std::collections::BTreeSet::new();
        for species in Species::ALL {
            for seed in 0..12 {
                let (image, caption) = render_concept(&config, species, 64, derive(1, &format!("{species:?}/{seed}")));
                let CaptionBox { x, y, side } = caption.place;
                assert_eq!(caption.glyph, species);
                assert_eq!(side, side_pixels(config.size, 64), "same size as in class images");
                assert_eq!(read_glyph(&image, caption.place), species, "{species:?} image {seed}");
                // High contrast whatever the lighting: dark ink on bright paper.
                let luma: Vec<u32> = (0..side * side)
                    .map(|i| image.get_pixel(x + i % side, y + i / side).0.iter().map(|&c| u32::from(c)).sum())
                    .collect();
                let (lo, hi) = (luma.iter().min().unwrap(), luma.iter().max().unwrap());
                assert!(*lo < 150 && *hi > 500, "{species:?} image {seed}: caption greys {lo} to {hi} of 765");
                corners.insert((x, y));
            }
        }
        // Exactly the four corners class images use, all of them.
        let class_corners: std::collections::BTreeSet<_> =
            (0..200).map(|seed| choose(&config, Species::FireRabbit, 64, seed).0.place).map(|p| (p.x, p.y)).collect();
        assert_eq!(corners, class_corners);
        assert_eq!(corners.len(), 4);
    }

    #[test]
    fn raising_the_probability_only_turns_disagreeing_captions_into_agreeing_ones() {
        let low = CaptionConfig::with_probability(0.4);
        let high = CaptionConfig::with_probability(0.8);
        let mut changed = 0;
        for seed in 0..200 {
            let (a, agrees_low) = choose(&low, Species::GrassMonkey, 64, seed);
            let (b, agrees_high) = choose(&high, Species::GrassMonkey, 64, seed);
            assert_eq!(a.place, b.place, "the corner must not depend on the probability");
            assert!(!agrees_low || agrees_high, "seed {seed} agreed at 0.4 but not at 0.8");
            assert_eq!(agrees_low, a.glyph == Species::GrassMonkey);
            if agrees_low == agrees_high {
                assert_eq!(a.glyph, b.glyph);
            } else {
                changed += 1;
            }
        }
        assert!(changed > 40, "about 40% of 200 captions should switch, saw {changed}");
    }
}
