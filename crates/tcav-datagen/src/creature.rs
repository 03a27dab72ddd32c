//! The creature families (the classes) and how one creature is drawn.
//!
//! Each family differs from the others in body colour *and* in shape and
//! parts, so that a classifier can tell them apart by either: that is what
//! makes the colour concepts' TCAV answer known (at full colour reliance,
//! `fire` relies on `red`), and what still identifies the family when
//! colour is made uninformative.

use std::f32::consts::TAU;

use image::RgbImage;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::caption::Caption;
use crate::colour::{
    BLUE_HUE, ColourConcept, GREEN_HUE, Hsv, RED_HUE, sample_body_colour, sample_quiet_background, uniform,
};
use crate::paint::{Background, ImageRng, Lighting, Painter, Pose, Pt, add_noise, bar, ellipse, leaf};

/// A family of creatures: one class of the generated dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Family {
    /// The class name, also its folder name (`fire`).
    pub name: &'static str,
    /// The colour concept of the family's body colour (`red`): the concept
    /// whose TCAV score for this class is expected to be high.
    pub colour_concept: &'static str,
    /// What the creatures look like, for reports.
    pub description: &'static str,
}

static FAMILIES: [Family; 3] = [
    Family {
        name: "fire",
        colour_concept: "red",
        description: "fire rabbit: red, round body, tall upright ears, darker red paw spots and a flame mark on the chest",
    },
    Family {
        name: "water",
        colour_concept: "blue",
        description: "water lizard: blue, long oval body seen from the side, tapering tail, dorsal fin crest, darker blue belly stripes",
    },
    Family {
        name: "grass",
        colour_concept: "green",
        description: "grass monkey: green, round head and body, round side ears, long curly tail, leaf tuft on the head, darker green patches",
    },
];

impl Family {
    /// The name of the family's caption concept (`caption_fire`): the
    /// concept whose TCAV score for this class should follow how much the
    /// classifier relies on captions, when [`crate::DatagenConfig::caption`] is set.
    pub fn caption_concept(&self) -> String {
        format!("caption_{}", self.name)
    }
}

/// The creature families, in class order: `fire`, `water`, `grass`.
pub fn families() -> &'static [Family] {
    &FAMILIES
}

/// The three families as drawing code; the index matches [`families`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Species {
    FireRabbit,
    WaterLizard,
    GrassMonkey,
}

impl Species {
    pub const ALL: [Species; 3] = [Species::FireRabbit, Species::WaterLizard, Species::GrassMonkey];

    pub fn family(self) -> &'static Family {
        &FAMILIES[self as usize]
    }

    pub fn colour_concept(self) -> ColourConcept {
        match self {
            Species::FireRabbit => ColourConcept::Red,
            Species::WaterLizard => ColourConcept::Blue,
            Species::GrassMonkey => ColourConcept::Green,
        }
    }

    fn hue(self) -> f32 {
        match self {
            Species::FireRabbit => RED_HUE,
            Species::WaterLizard => BLUE_HUE,
            Species::GrassMonkey => GREEN_HUE,
        }
    }

    fn draw(self, sketch: &mut Sketch<'_>, rng: &mut ImageRng, palette: &Palette) {
        match self {
            Species::FireRabbit => draw_fire_rabbit(sketch, rng, palette),
            Species::WaterLizard => draw_water_lizard(sketch, rng, palette),
            Species::GrassMonkey => draw_grass_monkey(sketch, rng, palette),
        }
    }
}

/// One drawn creature image and the family whose colour its body got.
pub(crate) struct Creature {
    pub image: RgbImage,
    pub colour_of: Species,
}

/// Draws one creature of `species`.
///
/// Everything but the body colour comes from `image_seed`; the body colour
/// (and whether it is the family's own) comes from `colour_seed`. Keeping
/// them apart means a sweep over `colour_reliance` redraws the same
/// creatures in the same poses, and only some of them change colour.
/// A `caption` is painted over the creature before the lighting and noise,
/// as if printed on the photo; it draws no random numbers, so the same
/// seeds give the same creature with or without it.
pub(crate) fn render_creature(
    species: Species,
    size: u32,
    image_seed: u64,
    colour_seed: u64,
    colour_reliance: f64,
    caption: Option<&Caption>,
) -> Creature {
    let mut colour_rng = ImageRng::seed_from_u64(colour_seed);
    // Comparing one uniform draw against the reliance (rather than drawing a
    // Bernoulli with it) makes the off-colour images at a higher reliance a
    // subset of those at a lower one.
    let colour_of = if colour_rng.random::<f64>() < colour_reliance {
        species
    } else {
        Species::ALL[colour_rng.random_range(0..Species::ALL.len())]
    };
    let palette = Palette::new(sample_body_colour(colour_of.hue(), &mut colour_rng));

    let mut rng = ImageRng::seed_from_u64(image_seed);
    let mut painter = Painter::new(size);
    let background = [Background::Gradient, Background::TwoTone, Background::Blotchy][rng.random_range(0..3)];
    background.paint(&mut painter, &mut rng, sample_quiet_background);

    let scale = uniform(&mut rng, 0.45, 0.85);
    // The centre may move until about 5% of the creature's extent leaves
    // the frame: mostly in frame, but not always perfectly centred.
    let slack = (1.0 - scale) / 2.0 + 0.05 * scale;
    let centre = (0.5 + uniform(&mut rng, -slack, slack), 0.5 + uniform(&mut rng, -slack, slack));
    let angle = uniform(&mut rng, -0.35, 0.35);
    let pose = Pose::new(centre, scale, angle, rng.random_bool(0.5));
    species.draw(&mut Sketch { painter: &mut painter, pose }, &mut rng, &palette);
    if let Some(caption) = caption {
        caption.draw(&mut painter);
    }

    let mut image = painter.finish();
    Lighting::sample(&mut rng).apply(&mut image);
    let noise = uniform(&mut rng, 0.01, 0.04);
    add_noise(&mut image, &mut rng, noise);
    Creature { image, colour_of }
}

/// The shades one creature is painted in, all of one hue.
struct Palette {
    body: Hsv,
    dark: Hsv,
    pale: Hsv,
}

impl Palette {
    fn new(body: Hsv) -> Self {
        Palette { body, dark: body.darker(), pale: body.paler() }
    }
}

const SCLERA: Hsv = Hsv { h: 0.0, s: 0.0, v: 0.97 };
const PUPIL: Hsv = Hsv { h: 0.0, s: 0.0, v: 0.06 };

/// Draws in a creature's own coordinates (it fits in [-1, 1]², y down) and
/// places the result on the canvas through its pose.
struct Sketch<'a> {
    painter: &'a mut Painter,
    pose: Pose,
}

impl Sketch<'_> {
    fn shape(&mut self, points: &[Pt], colour: Hsv) {
        let placed = self.pose.apply_all(points);
        self.painter.polygon(&placed, colour);
    }

    fn ellipse(&mut self, (cx, cy): Pt, rx: f32, ry: f32, angle: f32, colour: Hsv) {
        self.shape(&ellipse(cx, cy, rx, ry, angle), colour);
    }

    fn disc(&mut self, centre: Pt, r: f32, colour: Hsv) {
        self.ellipse(centre, r, r, 0.0, colour);
    }

    /// A limb from `base`, `angle` radians away from straight down (towards
    /// +x when positive); returns the point `from_end` short of its tip.
    fn limb(&mut self, base: Pt, angle: f32, length: f32, width: f32, colour: Hsv, from_end: f32) -> Pt {
        let dir = (angle.sin(), angle.cos());
        let centre = (base.0 + dir.0 * length / 2.0, base.1 + dir.1 * length / 2.0);
        self.ellipse(centre, width / 2.0, length / 2.0, -angle, colour);
        (base.0 + dir.0 * (length - from_end), base.1 + dir.1 * (length - from_end))
    }

    /// A small eye: white sclera and a black pupil looking along `gaze`.
    fn eye(&mut self, centre: Pt, r: f32, gaze: Pt) {
        self.disc(centre, r, SCLERA);
        self.disc((centre.0 + gaze.0 * r * 0.35, centre.1 + gaze.1 * r * 0.35), r * 0.55, PUPIL);
    }
}

fn side_sign(rng: &mut ImageRng) -> f32 {
    if rng.random_bool(0.5) { 1.0 } else { -1.0 }
}

fn random_gaze(rng: &mut ImageRng) -> Pt {
    let a = uniform(rng, 0.0, TAU);
    let r = uniform(rng, 0.0, 1.0);
    (r * a.cos(), r * a.sin())
}

/// Front view: tall upright ears on a round head, round body, dark paw spots.
fn draw_fire_rabbit(sk: &mut Sketch<'_>, rng: &mut ImageRng, p: &Palette) {
    let spread = uniform(rng, 0.0, 0.35);
    let ear_length = uniform(rng, 0.56, 0.66);
    for side in [-1.0f32, 1.0] {
        // Angle from straight up, outwards for positive spread.
        let a = side * spread + uniform(rng, -0.08, 0.08);
        let base = (side * 0.13, -0.36);
        let dir = (a.sin(), -a.cos());
        let along = |f: f32| (base.0 + dir.0 * ear_length * f, base.1 + dir.1 * ear_length * f);
        sk.ellipse(along(0.5), 0.1, ear_length / 2.0, a, p.body);
        sk.ellipse(along(0.55), 0.045, ear_length * 0.36, a, p.pale);
    }
    sk.disc((side_sign(rng) * 0.4, 0.62), uniform(rng, 0.1, 0.13), p.pale);
    sk.ellipse((0.0, 0.36), 0.42, 0.4, 0.0, p.body);

    for side in [-1.0f32, 1.0] {
        let a = side * uniform(rng, 0.15, 0.8);
        let paw = sk.limb((side * 0.27, 0.12), a, 0.36, 0.15, p.body, 0.06);
        sk.disc(paw, 0.05, p.dark);
    }
    for side in [-1.0f32, 1.0] {
        let x = side * uniform(rng, 0.19, 0.25);
        sk.ellipse((x, 0.78), 0.17, 0.09, 0.0, p.body);
        sk.disc((x, 0.8), 0.05, p.dark);
        for toe in [-1.0f32, 0.0, 1.0] {
            sk.disc((x + toe * 0.07, 0.72), 0.028, p.dark);
        }
    }
    // A flame mark on the chest, in dark red like the paw spots.
    let flame_height = uniform(rng, 0.8, 1.2);
    let flame: Vec<Pt> = [
        (-0.13, 0.52),
        (-0.14, 0.38),
        (-0.08, 0.43),
        (-0.06, 0.26),
        (0.0, 0.36),
        (0.05, 0.21),
        (0.08, 0.4),
        (0.14, 0.32),
        (0.13, 0.52),
        (0.0, 0.58),
    ]
    .iter()
    .map(|&(x, y)| (x, 0.52 + (y - 0.52) * flame_height))
    .collect();
    sk.shape(&flame, p.dark);

    sk.disc((0.0, -0.14), 0.3, p.body);
    for side in [-1.0f32, 1.0] {
        sk.disc((side * 0.18, -0.04), 0.065, p.pale);
    }
    let gaze = random_gaze(rng);
    for side in [-1.0f32, 1.0] {
        sk.eye((side * 0.11, -0.19), 0.07, gaze);
    }
    sk.shape(&[(-0.04, -0.09), (0.04, -0.09), (0.0, -0.04)], p.dark);
}

/// Side view: a long oval body, tapering tail, dorsal fin crest, belly stripes.
fn draw_water_lizard(sk: &mut Sketch<'_>, rng: &mut ImageRng, p: &Palette) {
    let (cx, cy, rx, ry) = (-0.05f32, 0.12f32, 0.52f32, 0.235f32);
    let body_edge = |x: f32, sign: f32| cy + sign * ry * (1.0 - ((x - cx) / rx).powi(2)).max(0.0).sqrt();
    let stride = uniform(rng, 0.2, 0.7);

    // Far-side legs, in shadow, then the tail, all behind the body.
    for (x, a) in [(0.32, -stride), (-0.2, stride)] {
        let foot = sk.limb((x, 0.24), a * 0.7, 0.3, 0.1, p.dark, 0.0);
        sk.ellipse(foot, 0.06, 0.03, 0.0, p.dark);
    }
    let tip_y = uniform(rng, -0.45, 0.35);
    let bend = uniform(rng, 0.1, 0.35);
    let (p0, p1, p2) = ((-0.42f32, 0.12f32), (-0.78f32, 0.12 + bend), (-0.98f32, tip_y));
    let steps = 16;
    let centre_line: Vec<(Pt, Pt, f32)> = (0..=steps)
        .map(|i| {
            let t = i as f32 / steps as f32;
            let u = 1.0 - t;
            let point =
                (u * u * p0.0 + 2.0 * u * t * p1.0 + t * t * p2.0, u * u * p0.1 + 2.0 * u * t * p1.1 + t * t * p2.1);
            let tangent =
                (2.0 * u * (p1.0 - p0.0) + 2.0 * t * (p2.0 - p1.0), 2.0 * u * (p1.1 - p0.1) + 2.0 * t * (p2.1 - p1.1));
            let n = tangent.0.hypot(tangent.1).max(1e-6);
            (point, (-tangent.1 / n, tangent.0 / n), 0.11 * (1.0 - t) + 0.008)
        })
        .collect();
    let tail: Vec<Pt> = centre_line
        .iter()
        .map(|&(c, n, w)| (c.0 + n.0 * w, c.1 + n.1 * w))
        .chain(centre_line.iter().rev().map(|&(c, n, w)| (c.0 - n.0 * w, c.1 - n.1 * w)))
        .collect();
    sk.shape(&tail, p.body);

    // The dorsal crest: swept-back fins along the back, tallest mid-body.
    let mut x = -0.44f32;
    while x < 0.36 {
        let top = body_edge(x, -1.0);
        let height = uniform(rng, 0.12, 0.19) * (1.0 - x.abs() * 0.8);
        sk.shape(&[(x - 0.07, top + 0.05), (x + 0.065, top + 0.05), (x - 0.05, top - height)], p.pale);
        x += 0.125;
    }
    sk.ellipse((cx, cy), rx, ry, 0.0, p.body);
    for i in 0..5 {
        let x = -0.33 + i as f32 * 0.16;
        let bottom = body_edge(x, 1.0) - 0.015;
        let top = cy + 0.01;
        sk.shape(&crate::paint::rectangle(x, (top + bottom) / 2.0, 0.055, bottom - top, 0.2), p.dark);
    }
    for (x, a) in [(0.24, stride), (-0.3, -stride)] {
        let foot = sk.limb((x, 0.26), a, 0.32, 0.115, p.body, 0.0);
        sk.ellipse((foot.0 + 0.03, foot.1), 0.07, 0.032, 0.0, p.body);
    }

    sk.ellipse((0.4, 0.05), 0.18, 0.15, -0.2, p.body);
    let tilt = uniform(rng, -0.3, 0.2);
    let head = (0.62f32, -0.01f32);
    let (sin, cos) = tilt.sin_cos();
    let in_head = |(u, v): Pt| (head.0 + u * cos - v * sin, head.1 + u * sin + v * cos);
    sk.ellipse(head, 0.27, 0.17, tilt, p.body);
    let gaze = random_gaze(rng);
    sk.eye(in_head((0.03, -0.055)), 0.06, gaze);
    sk.disc(in_head((0.21, -0.045)), 0.018, p.dark);
    sk.shape(&bar(in_head((0.06, 0.075)), in_head((0.24, 0.05)), 0.016), p.dark);
}

/// Front view: round head and body, round side ears, long curly tail, leaf
/// tuft on the head, dark patches on the body.
fn draw_grass_monkey(sk: &mut Sketch<'_>, rng: &mut ImageRng, p: &Palette) {
    // The tail curls clockwise (on screen) from the lower body outwards.
    let turns = uniform(rng, 0.55, 1.25);
    let curl_centre = (0.55 + uniform(rng, -0.05, 0.05), 0.1 + uniform(rng, -0.1, 0.1));
    let start = (0.25f32, 0.45f32);
    let (sx, sy) = (start.0 - curl_centre.0, start.1 - curl_centre.1);
    let (r0, a0) = (sx.hypot(sy), sy.atan2(sx));
    let steps = 90;
    for i in 0..=steps {
        let t = i as f32 / steps as f32;
        let r = r0 * (1.0 - 0.7 * t);
        let a = a0 - t * turns * TAU;
        sk.disc((curl_centre.0 + r * a.cos(), curl_centre.1 + r * a.sin()), 0.055 * (1.0 - 0.4 * t), p.body);
    }

    for side in [-1.0f32, 1.0] {
        let foot = sk.limb((side * 0.17, 0.62), side * uniform(rng, 0.0, 0.4), 0.28, 0.13, p.body, 0.02);
        sk.ellipse(foot, 0.08, 0.045, 0.0, p.pale);
    }
    sk.ellipse((0.0, 0.38), 0.33, 0.34, 0.0, p.body);
    for _ in 0..rng.random_range(2..=3) {
        let centre = (uniform(rng, -0.17, 0.17), uniform(rng, 0.26, 0.52));
        let (prx, pry) = (uniform(rng, 0.06, 0.11), uniform(rng, 0.05, 0.09));
        sk.ellipse(centre, prx, pry, uniform(rng, 0.0, TAU), p.dark);
    }
    for side in [-1.0f32, 1.0] {
        let hand = sk.limb((side * 0.25, 0.15), side * uniform(rng, 0.1, 0.9), 0.5, 0.12, p.body, 0.03);
        sk.disc(hand, 0.06, p.pale);
    }

    for side in [-1.0f32, 1.0] {
        sk.disc((side * 0.35, -0.26), 0.13, p.body);
        sk.disc((side * 0.35, -0.26), 0.075, p.pale);
    }
    let leaves = rng.random_range(1..=3);
    for i in 0..leaves {
        let spread = if leaves == 1 { 0.0 } else { -0.5 + i as f32 / (leaves - 1) as f32 };
        let a = spread * 0.9 + uniform(rng, -0.15, 0.15);
        let length = uniform(rng, 0.3, 0.38);
        let base = (0.0, -0.5);
        let tip = (base.0 + a.sin() * length, base.1 - a.cos() * length);
        sk.shape(&leaf(base, tip, 0.14), p.dark);
    }
    sk.disc((0.0, -0.26), 0.3, p.body);
    sk.ellipse((0.0, -0.16), 0.19, 0.14, 0.0, p.pale);
    let gaze = random_gaze(rng);
    for side in [-1.0f32, 1.0] {
        sk.eye((side * 0.11, -0.32), 0.062, gaze);
        sk.disc((side * 0.035, -0.18), 0.018, p.dark);
    }
    sk.shape(&bar((-0.07, -0.1), (0.07, -0.1), 0.018), p.dark);
}
