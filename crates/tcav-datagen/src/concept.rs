//! Colour concept images: shades of one colour in blobs, stripes, patches
//! and textures, with a little neutral grey, and no creature shapes.

use std::f32::consts::TAU;

use image::RgbImage;
use rand::{Rng, SeedableRng};

use crate::colour::{ColourConcept, sample_grey, uniform};
use crate::paint::{Background, ImageRng, Painter, add_noise, bar, blob_polygon, ellipse};

/// The background kinds a concept image may start from: all cover the
/// whole canvas in shades of the concept.
const BASES: [Background; 5] =
    [Background::Gradient, Background::TwoTone, Background::Blotchy, Background::Stripes, Background::Checker];

/// Draws one image of `concept` from `seed`.
pub(crate) fn render_concept(concept: ColourConcept, size: u32, seed: u64) -> RgbImage {
    let mut rng = ImageRng::seed_from_u64(seed);
    let mut painter = Painter::new(size);
    let shade = |rng: &mut ImageRng| concept.sample_shade(rng);
    BASES[rng.random_range(0..BASES.len())].paint(&mut painter, &mut rng, shade);

    for _ in 0..rng.random_range(1..=3) {
        match rng.random_range(0..3) {
            0 => {
                for _ in 0..rng.random_range(4..=12) {
                    let (x, y) = (uniform(&mut rng, 0.0, 1.0), uniform(&mut rng, 0.0, 1.0));
                    let (rx, ry) = (uniform(&mut rng, 0.04, 0.3), uniform(&mut rng, 0.04, 0.3));
                    let angle = uniform(&mut rng, 0.0, TAU);
                    painter.polygon(&ellipse(x, y, rx, ry, angle), shade(&mut rng));
                }
            }
            1 => {
                let angle = uniform(&mut rng, 0.0, TAU);
                let (dx, dy) = (angle.cos(), angle.sin());
                let (nx, ny) = (-dy, dx);
                let count = rng.random_range(3..=8);
                let width = uniform(&mut rng, 0.02, 0.09);
                let offset = uniform(&mut rng, -0.5, 0.5);
                let gap = uniform(&mut rng, 0.08, 0.2);
                for i in 0..count {
                    let s = offset + i as f32 * gap - count as f32 * gap / 2.0;
                    let centre = (0.5 + nx * s, 0.5 + ny * s);
                    let a = (centre.0 - dx, centre.1 - dy);
                    let b = (centre.0 + dx, centre.1 + dy);
                    painter.polygon(&bar(a, b, width), shade(&mut rng));
                }
            }
            _ => {
                for _ in 0..rng.random_range(2..=6) {
                    let (x, y) = (uniform(&mut rng, 0.0, 1.0), uniform(&mut rng, 0.0, 1.0));
                    let radius = uniform(&mut rng, 0.1, 0.35);
                    let corners = rng.random_range(3..=8);
                    let patch = blob_polygon(&mut rng, x, y, radius, corners);
                    painter.polygon(&patch, shade(&mut rng));
                }
            }
        }
    }
    // A little neutral grey shows through, as in photos of a coloured
    // thing; at most three small patches, well under a fifth of the image.
    for _ in 0..rng.random_range(0..=3) {
        let (x, y) = (uniform(&mut rng, 0.05, 0.95), uniform(&mut rng, 0.05, 0.95));
        let (rx, ry) = (uniform(&mut rng, 0.03, 0.12), uniform(&mut rng, 0.03, 0.12));
        let angle = uniform(&mut rng, 0.0, TAU);
        painter.polygon(&ellipse(x, y, rx, ry, angle), sample_grey(&mut rng));
    }
    let mut image = painter.finish();
    let noise = uniform(&mut rng, 0.01, 0.04);
    add_noise(&mut image, &mut rng, noise);
    image
}
