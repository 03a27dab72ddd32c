//! Colours: HSV shades, the colour concepts and how to draw a shade of one.

use image::Rgb;
use rand::Rng;

/// A colour in hue (degrees, 0 to 360), saturation and value (0 to 1).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Hsv {
    pub h: f32,
    pub s: f32,
    pub v: f32,
}

impl Hsv {
    pub fn new(h: f32, s: f32, v: f32) -> Self {
        Hsv { h: h.rem_euclid(360.0), s: s.clamp(0.0, 1.0), v: v.clamp(0.0, 1.0) }
    }

    pub fn to_rgb(self) -> Rgb<u8> {
        let h = self.h.rem_euclid(360.0) / 60.0;
        let c = self.v * self.s;
        let x = c * (1.0 - (h % 2.0 - 1.0).abs());
        let (r, g, b) = match h as u32 {
            0 => (c, x, 0.0),
            1 => (x, c, 0.0),
            2 => (0.0, c, x),
            3 => (0.0, x, c),
            4 => (x, 0.0, c),
            _ => (c, 0.0, x),
        };
        let m = self.v - c;
        Rgb([to_byte(r + m), to_byte(g + m), to_byte(b + m)])
    }

    #[cfg(test)]
    pub fn from_rgb(rgb: Rgb<u8>) -> Self {
        let [r, g, b] = rgb.0.map(|c| f32::from(c) / 255.0);
        let max = r.max(g).max(b);
        let min = r.min(g).min(b);
        let delta = max - min;
        let h = if delta <= 0.0 {
            0.0
        } else if max == r {
            60.0 * ((g - b) / delta)
        } else if max == g {
            60.0 * ((b - r) / delta + 2.0)
        } else {
            60.0 * ((r - g) / delta + 4.0)
        };
        let s = if max <= 0.0 { 0.0 } else { delta / max };
        Hsv::new(h, s, max)
    }

    /// The same hue, darker: the colour of spots, stripes and patches.
    pub fn darker(self) -> Self {
        Hsv::new(self.h, (self.s * 1.05).min(1.0), self.v * 0.58)
    }

    /// The same hue, paler: inner ears, muzzles, tail puffs. Saturation stays
    /// well above a background's so the part still reads as the body colour.
    pub fn paler(self) -> Self {
        Hsv::new(self.h, (self.s * 0.62).max(0.38), (self.v * 1.2).min(1.0))
    }
}

fn to_byte(x: f32) -> u8 {
    (x.clamp(0.0, 1.0) * 255.0).round() as u8
}

/// Uniform in `[lo, hi)`; never panics, unlike `random_range` on an empty range.
pub(crate) fn uniform(rng: &mut impl Rng, lo: f32, hi: f32) -> f32 {
    lo + (hi - lo) * rng.random::<f32>()
}

/// The colour concepts, in the order they are generated and listed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ColourConcept {
    Red,
    Blue,
    Green,
    Yellow,
    White,
    Black,
}

impl ColourConcept {
    pub const ALL: [ColourConcept; 6] = [
        ColourConcept::Red,
        ColourConcept::Blue,
        ColourConcept::Green,
        ColourConcept::Yellow,
        ColourConcept::White,
        ColourConcept::Black,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ColourConcept::Red => "red",
            ColourConcept::Blue => "blue",
            ColourConcept::Green => "green",
            ColourConcept::Yellow => "yellow",
            ColourConcept::White => "white",
            ColourConcept::Black => "black",
        }
    }

    /// A shade of the concept colour for a concept image. The ranges are
    /// wide so that a CAV learns "red" rather than one RGB value.
    pub fn sample_shade(self, rng: &mut impl Rng) -> Hsv {
        match self {
            ColourConcept::Red => Hsv::new(uniform(rng, -10.0, 10.0), uniform(rng, 0.6, 1.0), uniform(rng, 0.45, 1.0)),
            ColourConcept::Blue => {
                Hsv::new(BLUE_HUE + uniform(rng, -10.0, 10.0), uniform(rng, 0.55, 1.0), uniform(rng, 0.4, 1.0))
            }
            ColourConcept::Green => {
                Hsv::new(GREEN_HUE + uniform(rng, -12.0, 12.0), uniform(rng, 0.5, 1.0), uniform(rng, 0.35, 0.95))
            }
            ColourConcept::Yellow => {
                Hsv::new(uniform(rng, 50.0, 60.0), uniform(rng, 0.65, 1.0), uniform(rng, 0.8, 1.0))
            }
            ColourConcept::White => Hsv::new(uniform(rng, 0.0, 360.0), uniform(rng, 0.0, 0.07), uniform(rng, 0.9, 1.0)),
            ColourConcept::Black => Hsv::new(uniform(rng, 0.0, 360.0), uniform(rng, 0.0, 0.5), uniform(rng, 0.0, 0.13)),
        }
    }
}

/// Hue of the family colours; red is 0.
pub(crate) const RED_HUE: f32 = 0.0;
pub(crate) const GREEN_HUE: f32 = 120.0;
pub(crate) const BLUE_HUE: f32 = 218.0;

/// A creature body colour: the family hue, jittered by up to 10 degrees,
/// with saturation and value kept where the darker and paler shades of
/// [`Hsv`] stay clearly of the same colour.
pub(crate) fn sample_body_colour(hue: f32, rng: &mut impl Rng) -> Hsv {
    Hsv::new(hue + uniform(rng, -10.0, 10.0), uniform(rng, 0.62, 0.95), uniform(rng, 0.58, 0.95))
}

/// A neutral grey for the small uncoloured patches of concept images.
pub(crate) fn sample_grey(rng: &mut impl Rng) -> Hsv {
    Hsv::new(uniform(rng, 0.0, 360.0), uniform(rng, 0.0, 0.05), uniform(rng, 0.35, 0.7))
}

/// A quiet background colour for creature images: any hue, but saturation
/// at most 0.3 and a middle value, so a background never reads as one of
/// the colour concepts (not red/green/blue, not white or black).
pub(crate) fn sample_quiet_background(rng: &mut impl Rng) -> Hsv {
    Hsv::new(uniform(rng, 0.0, 360.0), uniform(rng, 0.03, 0.3), uniform(rng, 0.32, 0.66))
}

/// Any colour at all, for random counter-example images.
pub(crate) fn sample_any(rng: &mut impl Rng) -> Hsv {
    Hsv::new(uniform(rng, 0.0, 360.0), uniform(rng, 0.0, 1.0), uniform(rng, 0.05, 1.0))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "in a test, a failed unwrap is a failed test")]
mod tests {
    use super::*;

    #[test]
    fn hsv_round_trips_through_rgb() {
        for (h, s, v) in [(0.0, 1.0, 1.0), (120.0, 0.5, 0.8), (218.0, 0.9, 0.4), (55.0, 0.7, 0.95), (300.0, 0.2, 0.3)] {
            let back = Hsv::from_rgb(Hsv::new(h, s, v).to_rgb());
            let dh = (back.h - h).abs().min(360.0 - (back.h - h).abs());
            assert!(dh < 2.0 && (back.s - s).abs() < 0.02 && (back.v - v).abs() < 0.01, "{h} {s} {v} -> {back:?}");
        }
        assert_eq!(Hsv::new(0.0, 1.0, 1.0).to_rgb(), Rgb([255, 0, 0]));
        assert_eq!(Hsv::new(120.0, 1.0, 1.0).to_rgb(), Rgb([0, 255, 0]));
        assert_eq!(Hsv::new(240.0, 1.0, 1.0).to_rgb(), Rgb([0, 0, 255]));
        assert_eq!(Hsv::new(17.0, 0.0, 1.0).to_rgb(), Rgb([255, 255, 255]));
    }
}
