//! Drawing: a supersampled canvas, shape outlines, backgrounds, lighting and
//! pixel noise. Shapes are filled with `imageproc`; this module only turns
//! geometry into polygons and polygons into pixels.

use std::f32::consts::{PI, TAU};

use image::{Rgb, RgbImage};
use imageproc::drawing::draw_polygon_mut;
use imageproc::point::Point;
use rand::Rng;

use crate::colour::{Hsv, uniform};

/// The generator every image draws from, seeded from the image's own label.
pub(crate) type ImageRng = rand_chacha::ChaCha8Rng;

/// Edges are drawn at this many times the output resolution and averaged
/// down, so shapes get smooth (anti-aliased) borders.
const SUPERSAMPLING: u32 = 2;

/// Points on an ellipse outline; enough that the polygon looks round at
/// every size we allow.
const ELLIPSE_POINTS: usize = 48;

/// A point in canvas coordinates: (0, 0) is the top-left corner and (1, 1)
/// the bottom-right, so shapes do not depend on the image size.
pub(crate) type Pt = (f32, f32);

/// A square image being drawn, at [`SUPERSAMPLING`] times its final size.
pub(crate) struct Painter {
    image: RgbImage,
    size: u32,
}

impl Painter {
    pub fn new(size: u32) -> Self {
        Painter { image: RgbImage::new(size * SUPERSAMPLING, size * SUPERSAMPLING), size }
    }

    /// Side of the final image in pixels.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Fills the square of final-image pixels with top-left pixel (`x`, `y`)
    /// and side `side`, exactly: every supersample of those pixels and no
    /// other, so nothing outside the square changes. Clipped to the canvas.
    pub fn fill_pixel_square(&mut self, x: u32, y: u32, side: u32, colour: Hsv) {
        let rgb = colour.to_rgb();
        let end = |start: u32| start.saturating_add(side).min(self.size) * SUPERSAMPLING;
        for sy in y.min(self.size) * SUPERSAMPLING..end(y) {
            for sx in x.min(self.size) * SUPERSAMPLING..end(x) {
                self.image.put_pixel(sx, sy, rgb);
            }
        }
    }

    /// Sets every pixel from its canvas coordinates.
    pub fn fill_with(&mut self, colour_at: impl Fn(f32, f32) -> Rgb<u8>) {
        let side = self.image.width() as f32;
        for (x, y, pixel) in self.image.enumerate_pixels_mut() {
            *pixel = colour_at((x as f32 + 0.5) / side, (y as f32 + 0.5) / side);
        }
    }

    /// Fills the polygon with `points` (canvas coordinates, open or closed).
    pub fn polygon(&mut self, points: &[Pt], colour: Hsv) {
        let side = self.image.width() as f32;
        let mut pixels: Vec<Point<i32>> = Vec::with_capacity(points.len());
        for &(x, y) in points {
            // Far-off points are pulled in so imageproc's integer edge
            // arithmetic cannot overflow; `as` maps NaN to 0.
            let to_pixel = |c: f32| (c.clamp(-4.0, 5.0) * side).round() as i32;
            let p = Point::new(to_pixel(x), to_pixel(y));
            if pixels.last() != Some(&p) {
                pixels.push(p);
            }
        }
        while pixels.len() > 1 && pixels.first() == pixels.last() {
            pixels.pop();
        }
        if pixels.len() >= 3 {
            draw_polygon_mut(&mut self.image, &pixels, colour.to_rgb());
        }
    }

    /// The final image: each output pixel is the mean of its supersamples.
    pub fn finish(self) -> RgbImage {
        let ss = SUPERSAMPLING;
        let count = ss * ss;
        RgbImage::from_fn(self.size, self.size, |x, y| {
            let mut sum = [0u32; 3];
            for dy in 0..ss {
                for dx in 0..ss {
                    let p = self.image.get_pixel(x * ss + dx, y * ss + dy);
                    for (s, c) in sum.iter_mut().zip(p.0) {
                        *s += u32::from(c);
                    }
                }
            }
            Rgb(sum.map(|s| ((s + count / 2) / count) as u8))
        })
    }
}

/// Outline of an ellipse centred at (cx, cy) with radii rx, ry, turned by
/// `angle` radians.
pub(crate) fn ellipse(cx: f32, cy: f32, rx: f32, ry: f32, angle: f32) -> Vec<Pt> {
    let (sin, cos) = angle.sin_cos();
    (0..ELLIPSE_POINTS)
        .map(|i| {
            let t = TAU * i as f32 / ELLIPSE_POINTS as f32;
            let (x, y) = (rx * t.cos(), ry * t.sin());
            (cx + x * cos - y * sin, cy + x * sin + y * cos)
        })
        .collect()
}

/// Outline of a `width` x `height` rectangle centred at (cx, cy), turned by `angle`.
pub(crate) fn rectangle(cx: f32, cy: f32, width: f32, height: f32, angle: f32) -> Vec<Pt> {
    let (sin, cos) = angle.sin_cos();
    [(-0.5, -0.5), (0.5, -0.5), (0.5, 0.5), (-0.5, 0.5)]
        .into_iter()
        .map(|(u, v)| {
            let (x, y) = (u * width, v * height);
            (cx + x * cos - y * sin, cy + x * sin + y * cos)
        })
        .collect()
}

/// A thick line from `a` to `b`, `width` wide.
pub(crate) fn bar(a: Pt, b: Pt, width: f32) -> Vec<Pt> {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let length = dx.hypot(dy).max(1e-6);
    rectangle((a.0 + b.0) / 2.0, (a.1 + b.1) / 2.0, length, width, dy.atan2(dx))
}

/// A leaf (two arcs meeting at both ends) from `base` to `tip`.
pub(crate) fn leaf(base: Pt, tip: Pt, width: f32) -> Vec<Pt> {
    let (dx, dy) = (tip.0 - base.0, tip.1 - base.1);
    let length = dx.hypot(dy).max(1e-6);
    let normal = (-dy / length, dx / length);
    let n = 12;
    let side = |sign: f32, i: usize| {
        let f = i as f32 / n as f32;
        let w = sign * width / 2.0 * (PI * f).sin();
        (base.0 + dx * f + normal.0 * w, base.1 + dy * f + normal.1 * w)
    };
    (0..=n).map(|i| side(1.0, i)).chain((1..n).rev().map(|i| side(-1.0, i))).collect()
}

/// A star-shaped random polygon around (cx, cy) with `corners` corners.
pub(crate) fn blob_polygon(rng: &mut impl Rng, cx: f32, cy: f32, radius: f32, corners: usize) -> Vec<Pt> {
    let start = uniform(rng, 0.0, TAU);
    (0..corners)
        .map(|i| {
            let t = start + TAU * (i as f32 + uniform(rng, -0.3, 0.3)) / corners as f32;
            let r = radius * uniform(rng, 0.45, 1.0);
            (cx + r * t.cos(), cy + r * t.sin())
        })
        .collect()
}

/// A similarity transform (scale, turn, mirror, shift) from a creature's own
/// coordinates, where it fits in [-1, 1]², to canvas coordinates.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pose {
    m: [f32; 4],
    t: Pt,
}

impl Pose {
    /// `scale` is the creature's extent as a fraction of the canvas side.
    pub fn new(centre: Pt, scale: f32, angle: f32, mirror: bool) -> Self {
        let k = scale / 2.0;
        let (sin, cos) = angle.sin_cos();
        let flip = if mirror { -1.0 } else { 1.0 };
        Pose { m: [k * cos * flip, -k * sin, k * sin * flip, k * cos], t: centre }
    }

    pub fn apply(&self, (x, y): Pt) -> Pt {
        (self.m[0] * x + self.m[1] * y + self.t.0, self.m[2] * x + self.m[3] * y + self.t.1)
    }

    pub fn apply_all(&self, points: &[Pt]) -> Vec<Pt> {
        points.iter().map(|&p| self.apply(p)).collect()
    }
}

/// Smooth random values on the canvas: random numbers on a coarse grid,
/// interpolated bilinearly. Used for blotchy backgrounds and textures.
pub(crate) struct ValueNoise {
    cells: usize,
    values: Vec<f32>,
}

impl ValueNoise {
    pub fn new(rng: &mut impl Rng, cells: usize) -> Self {
        let cells = cells.max(1);
        ValueNoise { cells, values: (0..(cells + 1) * (cells + 1)).map(|_| rng.random::<f32>()).collect() }
    }

    /// A value in [0, 1] at canvas point (x, y).
    pub fn at(&self, x: f32, y: f32) -> f32 {
        let n = self.cells;
        let fx = x.clamp(0.0, 1.0) * n as f32;
        let fy = y.clamp(0.0, 1.0) * n as f32;
        let (ix, iy) = ((fx as usize).min(n - 1), (fy as usize).min(n - 1));
        let (tx, ty) = (smooth(fx - ix as f32), smooth(fy - iy as f32));
        let v = |i: usize, j: usize| self.values[j * (n + 1) + i];
        let top = v(ix, iy) + (v(ix + 1, iy) - v(ix, iy)) * tx;
        let bottom = v(ix, iy + 1) + (v(ix + 1, iy + 1) - v(ix, iy + 1)) * tx;
        top + (bottom - top) * ty
    }
}

fn smooth(t: f32) -> f32 {
    t * t * (3.0 - 2.0 * t)
}

fn mix(a: Rgb<u8>, b: Rgb<u8>, t: f32) -> Rgb<u8> {
    let t = t.clamp(0.0, 1.0);
    Rgb(std::array::from_fn(|i| (f32::from(a.0[i]) * (1.0 - t) + f32::from(b.0[i]) * t).round() as u8))
}

fn scale_rgb(c: Rgb<u8>, factor: f32) -> Rgb<u8> {
    Rgb(c.0.map(|v| (f32::from(v) * factor).round().clamp(0.0, 255.0) as u8))
}

/// The kinds of background, all drawn from a colour sampler so the same code
/// serves quiet creature backgrounds and anything-goes random images.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Background {
    /// A linear gradient between two colours in a random direction.
    Gradient,
    /// Two colours split along a random line.
    TwoTone,
    /// One colour with soft blotches of lighter and darker.
    Blotchy,
    /// Parallel bands of two colours.
    Stripes,
    /// A checkerboard of two colours, turned by a random angle.
    Checker,
}

impl Background {
    pub fn paint(self, painter: &mut Painter, rng: &mut ImageRng, colour: impl Fn(&mut ImageRng) -> Hsv) {
        let a = colour(rng).to_rgb();
        let b = colour(rng).to_rgb();
        let angle = uniform(rng, 0.0, TAU);
        let (dx, dy) = (angle.cos(), angle.sin());
        match self {
            Background::Gradient => painter.fill_with(|x, y| {
                // Projection onto the direction, rescaled to [0, 1] over the canvas.
                let t = ((x - 0.5) * dx + (y - 0.5) * dy) / std::f32::consts::SQRT_2 + 0.5;
                mix(a, b, t)
            }),
            Background::TwoTone => {
                let offset = uniform(rng, -0.25, 0.25);
                let softness = uniform(rng, 0.005, 0.08);
                painter.fill_with(|x, y| {
                    let d = (x - 0.5) * dx + (y - 0.5) * dy - offset;
                    mix(a, b, d / softness + 0.5)
                })
            }
            Background::Blotchy => {
                let cells = rng.random_range(3..=7);
                let noise = ValueNoise::new(rng, cells);
                let strength = uniform(rng, 0.08, 0.25);
                painter.fill_with(|x, y| {
                    let n = noise.at(x, y);
                    scale_rgb(mix(a, b, n * 0.5), 1.0 + strength * (2.0 * n - 1.0))
                })
            }
            Background::Stripes => {
                let period = uniform(rng, 0.06, 0.3);
                let duty = uniform(rng, 0.3, 0.7);
                painter.fill_with(|x, y| {
                    let phase = ((x * dx + y * dy) / period).rem_euclid(1.0);
                    if phase < duty { a } else { b }
                })
            }
            Background::Checker => {
                let cell = uniform(rng, 0.06, 0.25);
                let (sin, cos) = (dy, dx);
                painter.fill_with(|x, y| {
                    let u = ((x * cos + y * sin) / cell).floor() as i64;
                    let v = ((y * cos - x * sin) / cell).floor() as i64;
                    if (u + v).rem_euclid(2) == 0 { a } else { b }
                })
            }
        }
    }
}

/// The light a photo was taken in: overall brightness and contrast, and a
/// soft gradient of light across the frame.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Lighting {
    brightness: f32,
    contrast: f32,
    direction: Pt,
    gradient: f32,
}

impl Lighting {
    pub fn sample(rng: &mut ImageRng) -> Self {
        let angle = uniform(rng, 0.0, TAU);
        Lighting {
            brightness: uniform(rng, 0.75, 1.2),
            contrast: uniform(rng, 0.85, 1.15),
            direction: (angle.cos(), angle.sin()),
            gradient: uniform(rng, 0.0, 0.12),
        }
    }

    pub fn apply(&self, image: &mut RgbImage) {
        let side = image.width() as f32;
        let (dx, dy) = self.direction;
        for (x, y, pixel) in image.enumerate_pixels_mut() {
            let (u, v) = ((x as f32 + 0.5) / side - 0.5, (y as f32 + 0.5) / side - 0.5);
            let light = self.brightness * (1.0 + self.gradient * (u * dx + v * dy) * std::f32::consts::SQRT_2);
            for c in pixel.0.iter_mut() {
                let value = ((f32::from(*c) / 255.0 - 0.5) * self.contrast + 0.5) * light;
                *c = (value * 255.0).round().clamp(0.0, 255.0) as u8;
            }
        }
    }
}

/// Adds sensor-like noise, independent per pixel and channel, of at most
/// `amplitude` (a fraction of full scale; triangular, so mostly much less).
pub(crate) fn add_noise(image: &mut RgbImage, rng: &mut ImageRng, amplitude: f32) {
    let scale = amplitude * 255.0;
    for c in image.iter_mut() {
        let n = (rng.random::<f32>() + rng.random::<f32>() - 1.0) * scale;
        *c = (f32::from(*c) + n).round().clamp(0.0, 255.0) as u8;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "in a test, a failed unwrap is a failed test")]
mod tests {
    use super::*;

    #[test]
    fn polygons_fill_their_inside_only_and_degenerate_ones_are_skipped() {
        let mut painter = Painter::new(32);
        painter.fill_with(|_, _| Rgb([0, 0, 0]));
        let red = Hsv::new(0.0, 1.0, 1.0);
        painter.polygon(&ellipse(0.5, 0.5, 0.25, 0.25, 0.3), red);
        painter.polygon(&[(0.1, 0.1), (0.1, 0.1), (0.1, 0.1)], red);
        // Wild coordinates must not panic (NaN, infinities, far off the canvas).
        painter.polygon(&[(f32::NAN, 0.9), (f32::NEG_INFINITY, 0.95), (0.05, 1e30)], Hsv::new(120.0, 1.0, 1.0));
        let image = painter.finish();
        assert_eq!(image.get_pixel(16, 16), &Rgb([255, 0, 0]));
        assert_eq!(image.get_pixel(3, 3), &Rgb([0, 0, 0]));
        // Coverage-weighted area; imageproc also paints the outline's
        // pixels, which makes shapes about half a supersample fatter.
        let area = image.pixels().map(|p| f32::from(p.0[0]) / 255.0).sum::<f32>();
        let expected = PI * 8.0 * 8.0;
        assert!((area - expected).abs() < 0.15 * expected, "{area} vs {expected}");
    }

    #[test]
    fn pixel_squares_cover_their_pixels_exactly_and_clip_at_the_edge() {
        let mut painter = Painter::new(10);
        painter.fill_with(|_, _| Rgb([0, 0, 0]));
        let white = Hsv::new(0.0, 0.0, 1.0);
        painter.fill_pixel_square(2, 3, 4, white);
        painter.fill_pixel_square(8, 8, 5, white);
        painter.fill_pixel_square(u32::MAX, 0, u32::MAX, white);
        let image = painter.finish();
        for (x, y, pixel) in image.enumerate_pixels() {
            let inside = ((2..6).contains(&x) && (3..7).contains(&y)) || (x >= 8 && y >= 8);
            assert_eq!(pixel.0, if inside { [255; 3] } else { [0; 3] }, "pixel ({x}, {y})");
        }
    }

    #[test]
    fn poses_scale_turn_and_mirror() {
        let pose = Pose::new((0.5, 0.5), 0.5, 0.0, false);
        assert_eq!(pose.apply((1.0, 0.0)), (0.75, 0.5));
        let mirrored = Pose::new((0.5, 0.5), 0.5, 0.0, true);
        assert_eq!(mirrored.apply((1.0, 0.0)), (0.25, 0.5));
        let turned = Pose::new((0.0, 0.0), 2.0, PI / 2.0, false).apply((1.0, 0.0));
        assert!((turned.0).abs() < 1e-6 && (turned.1 - 1.0).abs() < 1e-6, "{turned:?}");
    }
}
