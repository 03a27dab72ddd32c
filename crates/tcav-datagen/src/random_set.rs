//! Random counter-example images: backgrounds and shapes of any colour, the
//! role that random photo sets play for TCAV's significance test.

use std::f32::consts::TAU;

use image::RgbImage;
use rand::{Rng, SeedableRng};

use crate::colour::{sample_any, uniform};
use crate::paint::{Background, ImageRng, Lighting, Painter, add_noise, bar, blob_polygon, ellipse, rectangle};

const BACKGROUNDS: [Background; 5] =
    [Background::Gradient, Background::TwoTone, Background::Blotchy, Background::Stripes, Background::Checker];

/// Draws one random image from `seed`: only primitive shapes, never a
/// creature, so a random set carries no class or concept on purpose.
pub(crate) fn render_random(size: u32, seed: u64) -> RgbImage {
    render_random_with(size, seed, |_| {})
}

/// Draws a random image from `seed`, with `overlay` painted over its shapes
/// before the lighting and noise. `overlay` gets no share of the image's
/// random numbers, so the image around it is the same whatever it draws.
pub(crate) fn render_random_with(size: u32, seed: u64, overlay: impl FnOnce(&mut Painter)) -> RgbImage {
    let mut rng = ImageRng::seed_from_u64(seed);
    let mut painter = Painter::new(size);
    BACKGROUNDS[rng.random_range(0..BACKGROUNDS.len())].paint(&mut painter, &mut rng, sample_any);

    for _ in 0..rng.random_range(0..=12) {
        let (x, y) = (uniform(&mut rng, -0.1, 1.1), uniform(&mut rng, -0.1, 1.1));
        let angle = uniform(&mut rng, 0.0, TAU);
        let shape = match rng.random_range(0..4) {
            0 => {
                let (rx, ry) = (uniform(&mut rng, 0.03, 0.35), uniform(&mut rng, 0.03, 0.35));
                ellipse(x, y, rx, ry, angle)
            }
            1 => {
                let (w, h) = (uniform(&mut rng, 0.05, 0.6), uniform(&mut rng, 0.05, 0.6));
                rectangle(x, y, w, h, angle)
            }
            2 => {
                let radius = uniform(&mut rng, 0.05, 0.4);
                let corners = rng.random_range(3..=9);
                blob_polygon(&mut rng, x, y, radius, corners)
            }
            _ => {
                let length = uniform(&mut rng, 0.1, 1.2);
                let (dx, dy) = (angle.cos() * length / 2.0, angle.sin() * length / 2.0);
                let width = uniform(&mut rng, 0.005, 0.05);
                bar((x - dx, y - dy), (x + dx, y + dy), width)
            }
        };
        painter.polygon(&shape, sample_any(&mut rng));
    }
    overlay(&mut painter);
    let mut image = painter.finish();
    if rng.random_bool(0.5) {
        Lighting::sample(&mut rng).apply(&mut image);
    }
    let noise = uniform(&mut rng, 0.0, 0.06);
    add_noise(&mut image, &mut rng, noise);
    image
}
