//! Counterfactual class images: the same creatures with one cue removed,
//! to measure how much a trained classifier relies on that cue (its
//! accuracy drop from the originals to the counterfactuals), rather than
//! trusting how the data were made.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tcav_core::store::{write_atomic, write_json};
use tcav_core::{CoreError, SetName};

use crate::creature::Species;
use crate::{ClassImageRecord, DatagenConfig, DatagenError, encode_png, prepare_output, render_class_image};

/// The file, directly in a counterfactual output folder, that records what
/// was generated.
pub const COUNTERFACTUAL_MANIFEST_FILE: &str = "counterfactuals.json";

/// A cue the generator can take out of a class image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cue {
    /// The body colour: redrawn uniformly from the three family colours,
    /// whatever the class, exactly as a `colour_reliance` of 0 draws it.
    /// A third of the creatures keep their family's colour by chance.
    Colour,
    /// The caption: not drawn at all, so the corner shows what lies under it.
    Caption,
}

impl Cue {
    /// Every cue, in a fixed order.
    pub const ALL: [Cue; 2] = [Cue::Colour, Cue::Caption];

    /// The cue's name, as in config files: `colour` or `caption`.
    pub fn name(self) -> &'static str {
        match self {
            Cue::Colour => "colour",
            Cue::Caption => "caption",
        }
    }
}

impl fmt::Display for Cue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where [`generate_counterfactuals`] put the class images.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeneratedCounterfactuals {
    /// The cue that was removed.
    pub cue: Cue,
    /// The class folders (`fire`, `water`, `grass`), in [`crate::families`] order.
    pub classes: Vec<(SetName, PathBuf)>,
    /// The manifest ([`COUNTERFACTUAL_MANIFEST_FILE`]).
    pub manifest: PathBuf,
    /// One record per class image, in class then index order; `file` is the
    /// same as the original's in [`crate::GeneratedDataset::class_images`].
    /// The records say what the counterfactual shows: its redrawn body
    /// colour, and no caption where captions were blanked.
    pub class_images: Vec<ClassImageRecord>,
}

/// The manifest written next to the counterfactual images.
#[derive(Serialize)]
struct Manifest<'a> {
    cue: Cue,
    config: &'a DatagenConfig,
    class_images: &'a [ClassImageRecord],
}

/// Redraws every class image of `config` with `cue` removed, into `out`
/// (missing or empty), under the same relative paths as [`crate::generate`]
/// (`classes/<class>/<class>_<index:04>.png`), so that each counterfactual
/// pairs with its original by file name.
///
/// Each image comes from the same seeds as its original, so it shows the
/// same creature in the same pose, background, lighting and noise; only
/// the cue differs. Removing the colour changes the creature's colours
/// only (a third keep theirs by chance); blanking the caption changes only
/// the pixels of its box. A trained classifier's accuracy drop from the
/// originals to these images is its measured reliance on the cue.
///
/// Fails before writing anything when the config is invalid, when `cue` is
/// [`Cue::Caption`] and the config draws no captions, or when `out` is a
/// file or a non-empty folder.
///
/// ```
/// use tcav_datagen::{CaptionConfig, Cue, DatagenConfig, generate, generate_counterfactuals};
///
/// let dir = tempfile::tempdir()?;
/// let config = DatagenConfig {
///     image_size: 32,
///     images_per_class: 2,
///     concept_images: 1,
///     random_set_images: 1,
///     caption: Some(CaptionConfig::with_probability(0.9)),
///     ..DatagenConfig::default()
/// };
/// let original = generate(&config, &dir.path().join("data"))?;
/// let blanked = generate_counterfactuals(&config, Cue::Caption, &dir.path().join("no-caption"))?;
/// for (a, b) in original.class_images.iter().zip(&blanked.class_images) {
///     assert_eq!(a.file, b.file);
///     assert!(a.caption.is_some() && b.caption.is_none());
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn generate_counterfactuals(
    config: &DatagenConfig,
    cue: Cue,
    out: &Path,
) -> Result<GeneratedCounterfactuals, DatagenError> {
    config.validate()?;
    if cue == Cue::Caption && config.caption.is_none() {
        return Err(DatagenError::NoCaptions);
    }
    prepare_output(out)?;
    let started = Instant::now();

    let mut classes = Vec::new();
    let mut jobs = Vec::new();
    for species in Species::ALL {
        let name = SetName::new(species.family().name)?;
        let dir = out.join("classes").join(name.as_str());
        std::fs::create_dir_all(&dir).map_err(|e| CoreError::io("creating", &dir, e))?;
        classes.push((name, dir));
        jobs.extend((0..config.images_per_class).map(|index| (species, index)));
    }
    tracing::info!(out = %out.display(), images = jobs.len(), %cue, "generating counterfactual class images");

    let results: Vec<Result<ClassImageRecord, DatagenError>> = jobs
        .par_iter()
        .map(|&(species, index)| {
            let (image, record) = render_class_image(config, species, index, Some(cue))?;
            let path = out.join(&record.file);
            write_atomic(&path, &encode_png(&image, &path)?)?;
            Ok(record)
        })
        .collect();
    // The first failure in job order, so the error is the same on every run.
    let class_images = results.into_iter().collect::<Result<Vec<_>, _>>()?;

    let manifest = out.join(COUNTERFACTUAL_MANIFEST_FILE);
    write_json(&manifest, &Manifest { cue, config, class_images: &class_images })?;
    tracing::info!(
        images = class_images.len(),
        %cue,
        seconds = started.elapsed().as_secs_f64(),
        "generated counterfactual class images"
    );
    Ok(GeneratedCounterfactuals { cue, classes, manifest, class_images })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "in a test, a failed unwrap is a failed test")]
mod tests {
    use image::RgbImage;

    use super::*;
    use crate::colour::Hsv;
    use crate::{CaptionConfig, GeneratedDataset, generate};

    fn config(seed: u64, colour_reliance: f64, caption: Option<f64>) -> DatagenConfig {
        DatagenConfig {
            seed,
            image_size: 48,
            images_per_class: 8,
            concept_images: 1,
            random_sets: 2,
            random_set_images: 1,
            colour_reliance,
            caption: caption.map(CaptionConfig::with_probability),
        }
    }

    /// The original dataset and its counterfactuals for `cue`.
    fn pair(config: &DatagenConfig, cue: Cue, dir: &Path) -> (GeneratedDataset, GeneratedCounterfactuals) {
        let original = generate(config, &dir.join("original")).unwrap();
        let counterfactual = generate_counterfactuals(config, cue, &dir.join(cue.name())).unwrap();
        assert_eq!(original.classes.len(), counterfactual.classes.len());
        for ((a, _), (b, folder)) in original.classes.iter().zip(&counterfactual.classes) {
            assert_eq!(a, b);
            assert_eq!(folder, &dir.join(cue.name()).join("classes").join(b.as_str()));
        }
        assert_eq!(original.class_images.len(), counterfactual.class_images.len());
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&counterfactual.manifest).unwrap()).unwrap();
        assert_eq!(manifest["cue"], cue.name());
        let records: Vec<ClassImageRecord> = serde_json::from_value(manifest["class_images"].clone()).unwrap();
        assert_eq!(records, counterfactual.class_images);
        (original, counterfactual)
    }

    fn load(root: &Path, record: &ClassImageRecord) -> RgbImage {
        image::open(root.join(&record.file)).unwrap().to_rgb8()
    }

    /// Pixels in the creatures' colour range: clearly saturated and not dark.
    /// Backgrounds and captions are never this saturated.
    fn creature_mask(image: &RgbImage) -> Vec<bool> {
        image.pixels().map(|&p| Hsv::from_rgb(p)).map(|hsv| hsv.s > 0.38 && hsv.v > 0.25).collect()
    }

    /// The family colour (`red`, `blue`, `green`) most creature pixels have.
    fn body_colour(image: &RgbImage) -> &'static str {
        let mut counts = [0usize; 3];
        for (&p, inside) in image.pixels().zip(creature_mask(image)) {
            let h = Hsv::from_rgb(p).h;
            if inside {
                let near = |hue: f32| (h - hue).rem_euclid(360.0).min((hue - h).rem_euclid(360.0)) < 40.0;
                for (count, hue) in counts.iter_mut().zip([0.0, 218.0, 120.0]) {
                    *count += usize::from(near(hue));
                }
            }
        }
        let best = (0..3).max_by_key(|&i| counts[i]).unwrap();
        ["red", "blue", "green"][best]
    }

    #[test]
    fn blanking_the_caption_changes_only_the_pixels_of_the_caption_box() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(4, 0.5, Some(0.7));
        let (original, blanked) = pair(&config, Cue::Caption, dir.path());
        for (a, b) in original.class_images.iter().zip(&blanked.class_images) {
            assert_eq!((&a.file, &a.class, &a.body_colour), (&b.file, &b.class, &b.body_colour));
            assert_eq!((&b.caption, b.caption_agrees, b.caption_box), (&None, None, None));
            let place = a.caption_box.unwrap();
            let (before, after) = (load(&dir.path().join("original"), a), load(&dir.path().join("caption"), b));
            let mut changed_inside = 0;
            for (x, y, pixel) in before.enumerate_pixels() {
                let changed = pixel != after.get_pixel(x, y);
                assert!(!changed || place.contains(x, y), "{}: pixel ({x}, {y}) outside the caption changed", a.file);
                changed_inside += u32::from(changed);
            }
            assert!(
                changed_inside * 2 > place.side * place.side,
                "{}: blanking changed only {changed_inside} caption pixels",
                a.file
            );
        }
    }

    #[test]
    fn removing_colour_keeps_the_creature_the_background_and_the_caption() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(6, 1.0, Some(0.8));
        let (original, recoloured) = pair(&config, Cue::Colour, dir.path());
        let mut recoloured_count = 0;
        let mut colours_per_class = std::collections::BTreeMap::<String, std::collections::BTreeSet<String>>::new();
        for (a, b) in original.class_images.iter().zip(&recoloured.class_images) {
            assert_eq!((&a.file, &a.class), (&b.file, &b.class));
            assert_eq!((&a.caption, a.caption_agrees, a.caption_box), (&b.caption, b.caption_agrees, b.caption_box));
            let (before, after) = (load(&dir.path().join("original"), a), load(&dir.path().join("colour"), b));
            assert_eq!(body_colour(&after), b.body_colour, "{}: the record must say what the pixels show", b.file);
            recoloured_count += usize::from(a.body_colour != b.body_colour);
            colours_per_class.entry(b.class.to_string()).or_default().insert(b.body_colour.clone());

            // The caption is drawn over the creature, so its box is untouched.
            let place = a.caption_box.unwrap();
            for (x, y, pixel) in before.enumerate_pixels() {
                if place.contains(x, y) {
                    assert_eq!(pixel, after.get_pixel(x, y), "{}: caption pixel ({x}, {y}) changed", a.file);
                }
            }
            // The background corners are the same (the creature reaches at
            // most one corner of the frame).
            let last = config.image_size - 1;
            let same_corners = [(0, 0), (last, 0), (0, last), (last, last)]
                .iter()
                .filter(|&&(x, y)| before.get_pixel(x, y) == after.get_pixel(x, y))
                .count();
            assert!(same_corners >= 3, "{}: only {same_corners} corners are unchanged", a.file);
            // The same creature in the same pose: the silhouettes coincide.
            let (m0, m1) = (creature_mask(&before), creature_mask(&after));
            let both = m0.iter().zip(&m1).filter(|(p, q)| **p && **q).count();
            let either = m0.iter().zip(&m1).filter(|(p, q)| **p || **q).count();
            let iou = both as f64 / either as f64;
            assert!(iou > 0.8, "{}: silhouettes overlap only {iou}", a.file);
            // Pixels away from the creature did not change.
            let unchanged = before.pixels().zip(after.pixels()).filter(|(p, q)| p == q).count();
            let outside = m0.iter().filter(|&&m| !m).count();
            assert!(unchanged as f64 > 0.8 * outside as f64, "{}: {unchanged} unchanged of {outside}", a.file);
        }
        // Two thirds should change colour: 16 of 24 expected.
        assert!((9..=22).contains(&recoloured_count), "{recoloured_count} of 24 creatures changed colour");
        for (class, colours) in &colours_per_class {
            assert!(colours.len() >= 2, "{class}: counterfactual colours still follow the class: {colours:?}");
        }
    }

    #[test]
    fn at_zero_colour_reliance_colour_counterfactuals_are_the_originals() {
        let dir = tempfile::tempdir().unwrap();
        let (original, recoloured) = pair(&config(8, 0.0, Some(0.5)), Cue::Colour, dir.path());
        assert_eq!(original.class_images, recoloured.class_images);
        for record in &original.class_images {
            let a = std::fs::read(dir.path().join("original").join(&record.file)).unwrap();
            let b = std::fs::read(dir.path().join("colour").join(&record.file)).unwrap();
            assert!(a == b, "{}: removing a cue the data never had must change nothing", record.file);
        }
    }

    #[test]
    fn missing_cues_bad_configs_and_used_folders_are_refused_before_writing() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let err = generate_counterfactuals(&config(0, 1.0, None), Cue::Caption, &out).unwrap_err();
        assert!(matches!(err, DatagenError::NoCaptions), "{err}");
        assert!(err.to_string().contains("`caption`"), "{err}");
        let err = generate_counterfactuals(&config(0, 1.0, Some(1.2)), Cue::Colour, &out).unwrap_err();
        assert!(err.to_string().contains("`caption.probability`"), "{err}");
        assert!(!out.exists(), "a refused run must not create the output folder");

        std::fs::create_dir(&out).unwrap();
        std::fs::write(out.join("old.png"), b"x").unwrap();
        let err = generate_counterfactuals(&config(0, 1.0, None), Cue::Colour, &out).unwrap_err();
        assert!(matches!(err, DatagenError::OutputNotEmpty { .. }), "{err}");
    }

    #[test]
    fn cues_have_their_config_names() {
        for cue in Cue::ALL {
            assert_eq!(serde_json::to_value(cue).unwrap(), cue.name());
            assert_eq!(serde_json::from_value::<Cue>(cue.name().into()).unwrap(), cue);
            assert_eq!(cue.to_string(), cue.name());
        }
    }
}
