//! The built-in data generator: a dataset whose TCAV answer is known.
//!
//! Takes a [`DatagenConfig`]. Produces, in one output folder, PNG images of
//! three creature families (the classes `fire`, `water`, `grass`: a red
//! rabbit, a blue lizard, a green monkey), six colour concepts (`red`,
//! `blue`, `green`, `yellow`, `white`, `black`) and several random
//! counter-example sets, plus a `datagen.json` manifest recording the config
//! and the body colour every creature got. With the default
//! `colour_reliance` of 1.0 each family has its own colour, so a classifier
//! that uses colour should show a high TCAV score for `fire` ↔ `red`,
//! `water` ↔ `blue`, `grass` ↔ `green` (see [`families`]), and no
//! significant score for `yellow`, `white` or `black`.
//!
//! With a [`CaptionConfig`] (the caption variant of the TCAV paper) every
//! creature also carries a caption, a white box with a black glyph of one
//! family, that names its class with a chosen probability; the caption
//! concepts `caption_fire`, `caption_water`, `caption_grass` are generated
//! too (see [`concept_names`]).
//!
//! Layout of the output folder:
//! * `classes/<class>/<class>_<index:04>.png`
//! * `concepts/<concept>/<concept>_<index:04>.png`
//! * `random/random_<i>/random_<i>_<index:04>.png`
//! * `datagen.json`
//!
//! To measure how much a trained classifier relies on a cue, rather than
//! trusting how the data were made, [`generate_counterfactuals`] redraws
//! every class image with one [`Cue`] removed (colours randomised, or the
//! caption blanked) under the same file names, so each image pairs with
//! its original and differs from it only in the cue.
//!
//! Invariant: generation never touches the network and is a pure function
//! of the config. Each image is drawn from its own seed, derived from the
//! master seed and the image's label with [`tcav_core::seed::derive`], so
//! the same config gives byte-identical files however the work is spread
//! over threads. Concept and random images never contain creature shapes,
//! and creature backgrounds are never saturated, so no concept leaks into a
//! set where it does not belong.

#![deny(missing_docs)]

mod caption;
mod colour;
mod concept;
mod config;
mod counterfactual;
mod creature;
mod error;
mod paint;
mod random_set;

use std::path::{Path, PathBuf};
use std::time::Instant;

use image::{ImageEncoder, RgbImage};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tcav_core::seed::derive;
use tcav_core::store::{write_atomic, write_json};
use tcav_core::{CoreError, SetName};

use crate::colour::ColourConcept;
use crate::creature::Species;

pub use crate::caption::CaptionBox;
pub use crate::config::{CaptionConfig, CaptionPlacement, DatagenConfig, MAX_IMAGE_SIZE, MIN_IMAGE_SIZE};
pub use crate::counterfactual::{
    COUNTERFACTUAL_MANIFEST_FILE, Cue, GeneratedCounterfactuals, generate_counterfactuals,
};
pub use crate::creature::{Family, families};
pub use crate::error::DatagenError;

/// The file, directly in the output folder, that records what was generated.
pub const MANIFEST_FILE: &str = "datagen.json";

/// The colour concepts, in the order they are generated.
pub fn colour_concepts() -> &'static [&'static str] {
    const NAMES: [&str; 6] = ["red", "blue", "green", "yellow", "white", "black"];
    &NAMES
}

/// The names of every concept `config` generates, in the order of
/// [`GeneratedDataset::concepts`]: the [`colour_concepts`], then, when
/// captions are on, each family's caption concept (`caption_fire`,
/// `caption_water`, `caption_grass`, see [`Family::caption_concept`]).
pub fn concept_names(config: &DatagenConfig) -> Vec<String> {
    let mut names: Vec<String> = colour_concepts().iter().map(|c| c.to_string()).collect();
    if config.caption.is_some() {
        names.extend(families().iter().map(Family::caption_concept));
    }
    names
}

/// The version of what [`generate`] draws. Artifact keys include it: bump it
/// whenever a change to the generator changes its output for the same
/// config, so stored datasets from the old generator are never reused.
pub const OUTPUT_VERSION: u32 = 2;

/// The name of random set `index`: `random_<index>`.
pub fn random_set_name(index: usize) -> Result<SetName, DatagenError> {
    Ok(SetName::new(format!("random_{index}"))?)
}

/// What the generator drew in one class image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassImageRecord {
    /// The image's path relative to the output folder, with `/` separators.
    pub file: String,
    /// The class (creature family) of the creature.
    pub class: SetName,
    /// The colour concept of its body colour. Equal to the family's own
    /// colour concept except where `colour_reliance` < 1 redrew it.
    pub body_colour: String,
    /// The caption concept whose caption the image shows (`caption_water`),
    /// or `None` when it has no caption (captions off, or blanked in a
    /// counterfactual).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    /// Whether the caption names the creature's own class; `None` when the
    /// image has no caption.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption_agrees: Option<bool>,
    /// Where the caption is, in pixels; `None` when the image has no caption.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption_box: Option<CaptionBox>,
}

/// Where the generated sets are, by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeneratedDataset {
    /// The class folders (`fire`, `water`, `grass`), in [`families`] order.
    pub classes: Vec<(SetName, PathBuf)>,
    /// The concept folders, in [`concept_names`] order: the colour
    /// concepts, then the caption concepts when captions are on.
    pub concepts: Vec<(SetName, PathBuf)>,
    /// The random set folders `random_0`, `random_1`, ..., in order.
    pub random_sets: Vec<(SetName, PathBuf)>,
    /// The manifest ([`MANIFEST_FILE`]).
    pub manifest: PathBuf,
    /// One record per class image, in class then index order.
    pub class_images: Vec<ClassImageRecord>,
}

/// The manifest written next to the images.
#[derive(Serialize)]
struct Manifest<'a> {
    config: &'a DatagenConfig,
    families: &'static [Family],
    colour_concepts: &'static [&'static str],
    // Left out when empty, so a caption-free manifest is byte-identical to
    // one written before captions existed.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    caption_concepts: Vec<String>,
    class_images: &'a [ClassImageRecord],
}

/// One image to draw.
#[derive(Clone, Copy, Debug)]
enum Job<'a> {
    Class { species: Species, index: usize },
    Concept { concept: ColourConcept, index: usize },
    CaptionConcept { caption: &'a CaptionConfig, species: Species, index: usize },
    Random { set: usize, index: usize },
}

/// Generates the whole dataset into `out`, which must be missing or empty.
///
/// Images are drawn in parallel (rayon); each one's content depends only on
/// the config and its own label, never on the order of the work, so the same
/// config gives byte-identical files on the same platform. (Drawing uses
/// `f32` trigonometry from the platform's maths library, which may differ in
/// the last bit on another platform and so move an edge pixel.)
///
/// Fails before writing anything when the config is invalid or `out` is a
/// file or a non-empty folder. Each file is written atomically, but a run
/// that fails later (a full disk) leaves the images written so far: build
/// into the temporary folder of [`tcav_core::ArtifactStore::get_or_build`]
/// to get an all-or-nothing dataset.
///
/// ```
/// use tcav_datagen::{DatagenConfig, families, generate};
///
/// let dir = tempfile::tempdir()?;
/// let config = DatagenConfig {
///     image_size: 32,
///     images_per_class: 2,
///     concept_images: 2,
///     random_sets: 2,
///     random_set_images: 2,
///     ..DatagenConfig::default()
/// };
/// let dataset = generate(&config, &dir.path().join("data"))?;
/// // The known answer: each class and the concept its colour should score on.
/// for ((class, _folder), family) in dataset.classes.iter().zip(families()) {
///     assert_eq!(class.as_str(), family.name);
///     println!("{} <-> {}", family.name, family.colour_concept); // fire <-> red, ...
/// }
/// assert_eq!(dataset.class_images.len(), 6);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn generate(config: &DatagenConfig, out: &Path) -> Result<GeneratedDataset, DatagenError> {
    config.validate()?;
    prepare_output(out)?;
    let started = Instant::now();

    let set_dir = |group: &str, name: &str| out.join(group).join(name);
    let mut classes = Vec::new();
    let mut concepts = Vec::new();
    let mut random_sets = Vec::new();
    let mut jobs = Vec::new();
    for species in Species::ALL {
        let name = SetName::new(species.family().name)?;
        classes.push((name.clone(), set_dir("classes", name.as_str())));
        jobs.extend((0..config.images_per_class).map(|index| Job::Class { species, index }));
    }
    for concept in ColourConcept::ALL {
        let name = SetName::new(concept.name())?;
        concepts.push((name.clone(), set_dir("concepts", name.as_str())));
        jobs.extend((0..config.concept_images).map(|index| Job::Concept { concept, index }));
    }
    if let Some(caption) = &config.caption {
        for species in Species::ALL {
            let name = SetName::new(species.family().caption_concept())?;
            concepts.push((name.clone(), set_dir("concepts", name.as_str())));
            jobs.extend((0..config.concept_images).map(|index| Job::CaptionConcept { caption, species, index }));
        }
    }
    for set in 0..config.random_sets {
        let name = random_set_name(set)?;
        random_sets.push((name.clone(), set_dir("random", name.as_str())));
        jobs.extend((0..config.random_set_images).map(|index| Job::Random { set, index }));
    }
    for (_, dir) in classes.iter().chain(&concepts).chain(&random_sets) {
        std::fs::create_dir_all(dir).map_err(|e| CoreError::io("creating", dir, e))?;
    }
    tracing::info!(
        out = %out.display(),
        images = jobs.len(),
        image_size = config.image_size,
        colour_reliance = config.colour_reliance,
        caption_probability = config.caption.as_ref().map(|c| c.probability),
        "generating the built-in creature dataset"
    );

    let results: Vec<Result<Option<ClassImageRecord>, DatagenError>> =
        jobs.par_iter().map(|job| run_job(config, out, *job)).collect();
    let mut class_images = Vec::new();
    for result in results {
        // The first failure in job order, so the error reported is the same
        // on every run.
        if let Some(record) = result? {
            class_images.push(record);
        }
    }

    let manifest = out.join(MANIFEST_FILE);
    write_json(
        &manifest,
        &Manifest {
            config,
            families: families(),
            colour_concepts: colour_concepts(),
            caption_concepts: concept_names(config).split_off(colour_concepts().len()),
            class_images: &class_images,
        },
    )?;
    let off_colour = class_images
        .iter()
        .filter(|r| families().iter().any(|f| f.name == r.class.as_str() && f.colour_concept != r.body_colour))
        .count();
    let disagreeing_captions = class_images.iter().filter(|r| r.caption_agrees == Some(false)).count();
    tracing::info!(
        images = jobs.len(),
        off_colour_creatures = off_colour,
        disagreeing_captions,
        seconds = started.elapsed().as_secs_f64(),
        "generated the built-in creature dataset"
    );
    Ok(GeneratedDataset { classes, concepts, random_sets, manifest, class_images })
}

/// Refuses an output folder that already holds files, so stale images from
/// another config can never end up in a set.
pub(crate) fn prepare_output(out: &Path) -> Result<(), DatagenError> {
    if out.exists() {
        if !out.is_dir() {
            return Err(DatagenError::OutputIsFile { path: out.to_path_buf() });
        }
        let mut entries = std::fs::read_dir(out).map_err(|e| CoreError::io("listing", out, e))?;
        if entries.next().is_some() {
            return Err(DatagenError::OutputNotEmpty { path: out.to_path_buf() });
        }
    }
    std::fs::create_dir_all(out).map_err(|e| CoreError::io("creating", out, e))?;
    Ok(())
}

fn run_job(config: &DatagenConfig, out: &Path, job: Job<'_>) -> Result<Option<ClassImageRecord>, DatagenError> {
    let size = config.image_size;
    let (relative, image, record) = match job {
        Job::Class { species, index } => {
            let (image, record) = render_class_image(config, species, index, None)?;
            (record.file.clone(), image, Some(record))
        }
        Job::Concept { concept, index } => {
            let name = concept.name();
            let image = concept::render_concept(concept, size, derive(config.seed, &format!("concept/{name}/{index}")));
            (format!("concepts/{name}/{name}_{index:04}.png"), image, None)
        }
        Job::CaptionConcept { caption, species, index } => {
            let name = species.family().caption_concept();
            let seed = derive(config.seed, &format!("concept/{name}/{index}"));
            let (image, _) = caption::render_concept(caption, species, size, seed);
            (format!("concepts/{name}/{name}_{index:04}.png"), image, None)
        }
        Job::Random { set, index } => {
            let name = random_set_name(set)?;
            let image = random_set::render_random(size, derive(config.seed, &format!("random/{name}/{index}")));
            (format!("random/{name}/{name}_{index:04}.png"), image, None)
        }
    };
    let path = out.join(&relative);
    write_atomic(&path, &encode_png(&image, &path)?)?;
    Ok(record)
}

/// Draws class image `index` of `species` as [`generate`] does, or with the
/// cue `removed` taken out; only the cue's own draws change, every other
/// draw comes from the same seeds. Returns the image and its record.
pub(crate) fn render_class_image(
    config: &DatagenConfig,
    species: Species,
    index: usize,
    removed: Option<Cue>,
) -> Result<(RgbImage, ClassImageRecord), DatagenError> {
    let class = species.family().name;
    let label = format!("class/{class}/{index}");
    let caption = match &config.caption {
        Some(caption_config) if removed != Some(Cue::Caption) => Some(caption::choose(
            caption_config,
            species,
            config.image_size,
            derive(config.seed, &format!("{label}/caption")),
        )),
        _ => None,
    };
    // At reliance 0 the colour draw ignores the class: the same colour seed
    // then gives the colour this creature would get in a reliance-0 dataset.
    let colour_reliance = if removed == Some(Cue::Colour) { 0.0 } else { config.colour_reliance };
    let creature = creature::render_creature(
        species,
        config.image_size,
        derive(config.seed, &label),
        derive(config.seed, &format!("{label}/colour")),
        colour_reliance,
        caption.as_ref().map(|(c, _)| c),
    );
    let record = ClassImageRecord {
        file: format!("classes/{class}/{class}_{index:04}.png"),
        class: SetName::new(class)?,
        body_colour: creature.colour_of.colour_concept().name().to_string(),
        caption: caption.map(|(c, _)| c.glyph.family().caption_concept()),
        caption_agrees: caption.map(|(_, agrees)| agrees),
        caption_box: caption.map(|(c, _)| c.place),
    };
    Ok((creature.image, record))
}

pub(crate) fn encode_png(image: &RgbImage, path: &Path) -> Result<Vec<u8>, DatagenError> {
    let mut bytes = Vec::new();
    image::codecs::png::PngEncoder::new(&mut bytes)
        .write_image(image.as_raw(), image.width(), image.height(), image::ExtendedColorType::Rgb8)
        .map_err(|source| DatagenError::Encode { path: path.to_path_buf(), source })?;
    Ok(bytes)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "in a test, a failed unwrap is a failed test")]
mod tests {
    use std::collections::BTreeMap;

    use tcav_core::ImageSetDir;

    use super::*;
    use crate::colour::Hsv;

    fn tiny_config(seed: u64) -> DatagenConfig {
        DatagenConfig {
            seed,
            image_size: 32,
            images_per_class: 2,
            concept_images: 2,
            random_sets: 2,
            random_set_images: 2,
            colour_reliance: 1.0,
            caption: None,
        }
    }

    /// Every file under `root`, by relative path, with its bytes.
    fn all_files(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut files = BTreeMap::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    files.insert(path.strip_prefix(root).unwrap().to_path_buf(), std::fs::read(&path).unwrap());
                }
            }
        }
        files
    }

    /// Which concept colour a pixel is close to, if any. The thresholds are
    /// the tests' own idea of "looks red", looser than the generator's ranges.
    fn concept_of(pixel: image::Rgb<u8>) -> Option<ColourConcept> {
        let hsv = Hsv::from_rgb(pixel);
        let near = |hue: f32, tolerance: f32| {
            let d = (hsv.h - hue).rem_euclid(360.0);
            d.min(360.0 - d) < tolerance
        };
        if hsv.v < 0.15 {
            Some(ColourConcept::Black)
        } else if hsv.s < 0.15 && hsv.v > 0.85 {
            Some(ColourConcept::White)
        } else if hsv.s < 0.4 || hsv.v < 0.2 {
            None
        } else if near(0.0, 25.0) {
            Some(ColourConcept::Red)
        } else if near(55.0, 15.0) && hsv.v > 0.5 {
            Some(ColourConcept::Yellow)
        } else if near(120.0, 30.0) {
            Some(ColourConcept::Green)
        } else if near(218.0, 30.0) {
            Some(ColourConcept::Blue)
        } else {
            None
        }
    }

    /// The fraction of pixels near each concept colour, in `ColourConcept::ALL` order.
    fn colour_fractions(image: &RgbImage) -> [f64; 6] {
        let mut counts = [0usize; 6];
        for pixel in image.pixels() {
            if let Some(concept) = concept_of(*pixel) {
                counts[concept as usize] += 1;
            }
        }
        let total = (image.width() * image.height()) as f64;
        counts.map(|c| c as f64 / total)
    }

    /// The family colour that covers most pixels of a creature image.
    fn dominant_family_colour(image: &RgbImage) -> Species {
        let f = colour_fractions(image);
        let mut best = Species::FireRabbit;
        for species in Species::ALL {
            if f[species.colour_concept() as usize] > f[best.colour_concept() as usize] {
                best = species;
            }
        }
        best
    }

    #[test]
    fn the_same_config_gives_the_same_bytes_and_another_seed_other_bytes() {
        let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
        let outs: Vec<PathBuf> = dirs.iter().map(|d| d.path().join("out")).collect();
        generate(&tiny_config(3), &outs[0]).unwrap();
        generate(&tiny_config(3), &outs[1]).unwrap();
        generate(&tiny_config(4), &outs[2]).unwrap();
        let [a, b, c] = [0, 1, 2].map(|i| all_files(&outs[i]));
        assert_eq!(a.len(), 3 * 2 + 6 * 2 + 2 * 2 + 1);
        assert!(a == b, "two runs of the same config must write identical files");
        assert_eq!(a.keys().collect::<Vec<_>>(), c.keys().collect::<Vec<_>>());
        for (path, bytes) in &a {
            if path.extension().is_some_and(|e| e == "png") {
                assert_ne!(bytes, &c[path], "{} did not change with the seed", path.display());
            }
        }
    }

    #[test]
    fn the_output_follows_the_documented_layout() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("data");
        let config = DatagenConfig { image_size: 40, images_per_class: 3, random_sets: 3, ..tiny_config(1) };
        let dataset = generate(&config, &out).unwrap();

        let names = |sets: &[(SetName, PathBuf)]| sets.iter().map(|(n, _)| n.to_string()).collect::<Vec<_>>();
        assert_eq!(names(&dataset.classes), ["fire", "water", "grass"]);
        assert_eq!(names(&dataset.concepts), colour_concepts());
        assert_eq!(names(&dataset.random_sets), ["random_0", "random_1", "random_2"]);
        let groups =
            [("classes", &dataset.classes, 3), ("concepts", &dataset.concepts, 2), ("random", &dataset.random_sets, 2)];
        for (group, sets, count) in groups {
            for (name, path) in sets {
                assert_eq!(path, &out.join(group).join(name.as_str()));
                let images = ImageSetDir::new(path, name.as_str()).list().unwrap();
                let files: Vec<_> =
                    images.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
                let expected: Vec<_> = (0..count).map(|i| format!("{name}_{i:04}.png")).collect();
                assert_eq!(files, expected);
                for image in images {
                    let decoded = image::open(&image).unwrap();
                    assert_eq!(decoded.color(), image::ColorType::Rgb8);
                    assert_eq!((decoded.width(), decoded.height()), (40, 40));
                }
            }
        }
        let top: Vec<_> =
            std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        let mut top = top;
        top.sort();
        assert_eq!(top, ["classes", "concepts", MANIFEST_FILE, "random"]);

        assert_eq!(dataset.manifest, out.join(MANIFEST_FILE));
        let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(&dataset.manifest).unwrap()).unwrap();
        assert_eq!(manifest["config"]["images_per_class"], 3);
        assert_eq!(manifest["families"][0]["colour_concept"], "red");
        let records: Vec<ClassImageRecord> = serde_json::from_value(manifest["class_images"].clone()).unwrap();
        assert_eq!(records, dataset.class_images);
        assert_eq!(records.len(), 9);
        for record in &records {
            assert!(out.join(&record.file).is_file(), "{}", record.file);
            let family = families().iter().find(|f| f.name == record.class.as_str()).unwrap();
            assert_eq!(record.body_colour, family.colour_concept, "reliance 1 keeps every family colour");
        }
    }

    #[test]
    fn bad_configs_and_used_output_folders_are_refused_before_writing() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let bad = DatagenConfig { random_sets: 1, ..tiny_config(0) };
        let err = generate(&bad, &out).unwrap_err().to_string();
        assert!(err.contains("`random_sets`"), "{err}");
        assert!(!out.exists(), "an invalid config must not create the output folder");

        std::fs::create_dir(&out).unwrap();
        std::fs::write(out.join("old.png"), b"x").unwrap();
        let err = generate(&tiny_config(0), &out).unwrap_err();
        assert!(matches!(err, DatagenError::OutputNotEmpty { .. }), "{err}");
        assert!(err.to_string().contains(&out.display().to_string()), "{err}");
        assert_eq!(all_files(&out).len(), 1, "nothing may be added to a used folder");

        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        let err = generate(&tiny_config(0), &file).unwrap_err();
        assert!(matches!(err, DatagenError::OutputIsFile { .. }), "{err}");

        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        generate(&tiny_config(0), &empty).unwrap();
    }

    #[test]
    fn creatures_are_dominated_by_their_family_colour_and_not_by_other_concepts() {
        for species in Species::ALL {
            for i in 0..10 {
                let label = format!("test/{}/{i}", species.family().name);
                let creature = creature::render_creature(
                    species,
                    64,
                    derive(11, &label),
                    derive(11, &format!("{label}/c")),
                    1.0,
                    None,
                );
                assert_eq!(creature.colour_of, species);
                let f = colour_fractions(&creature.image);
                let own = f[species.colour_concept() as usize];
                assert_eq!(dominant_family_colour(&creature.image), species, "{label}: {f:?}");
                assert!(own > 0.025, "{label}: the creature covers too little of the image: {f:?}");
                let others = f[ColourConcept::Yellow as usize]
                    + f[ColourConcept::White as usize]
                    + f[ColourConcept::Black as usize];
                assert!(others < 0.1, "{label}: yellow/white/black cover {others}: {f:?}");
            }
        }
    }

    #[test]
    fn concept_images_are_dominated_by_their_colour() {
        for concept in ColourConcept::ALL {
            for i in 0..8 {
                let image = concept::render_concept(concept, 48, derive(5, &format!("test/{}/{i}", concept.name())));
                let f = colour_fractions(&image);
                assert!(f[concept as usize] > 0.5, "{} image {i}: {f:?}", concept.name());
            }
        }
    }

    #[test]
    fn random_images_vary_and_favour_no_concept() {
        let images: Vec<RgbImage> =
            (0..40).map(|i| random_set::render_random(32, derive(9, &format!("test/random/{i}")))).collect();
        let mut mean = [0.0f64; 6];
        for image in &images {
            for (m, f) in mean.iter_mut().zip(colour_fractions(image)) {
                *m += f / images.len() as f64;
            }
        }
        assert!(mean.iter().all(|&m| m < 0.3), "random images lean to one concept: {mean:?}");
        let dominant: std::collections::BTreeSet<usize> = images
            .iter()
            .filter_map(|image| {
                let f = colour_fractions(image);
                (0..6).filter(|&i| f[i] > 0.3).max_by(|&a, &b| f[a].total_cmp(&f[b]))
            })
            .collect();
        assert!(dominant.len() >= 4, "random images should be dominated by many different colours: {dominant:?}");
    }

    /// Pearson's chi-square statistic of a contingency table.
    fn chi_square(table: &[[f64; 3]; 3]) -> f64 {
        let total: f64 = table.iter().flatten().sum();
        let rows: Vec<f64> = table.iter().map(|r| r.iter().sum()).collect();
        let cols: Vec<f64> = (0..3).map(|j| table.iter().map(|r| r[j]).sum()).collect();
        let mut chi = 0.0;
        for i in 0..3 {
            for j in 0..3 {
                let expected = rows[i] * cols[j] / total;
                if expected > 0.0 {
                    chi += (table[i][j] - expected).powi(2) / expected;
                }
            }
        }
        chi
    }

    /// Class x measured body colour counts, read from the generated PNGs;
    /// also checks that the manifest records the colour the pixels show.
    fn class_colour_table(reliance: f64) -> [[f64; 3]; 3] {
        let dir = tempfile::tempdir().unwrap();
        let config =
            DatagenConfig { images_per_class: 30, colour_reliance: reliance, concept_images: 1, ..tiny_config(21) };
        let dataset = generate(&config, dir.path()).unwrap();
        let mut table = [[0.0; 3]; 3];
        for record in &dataset.class_images {
            let image = image::open(dir.path().join(&record.file)).unwrap().to_rgb8();
            let measured = dominant_family_colour(&image);
            assert_eq!(measured.colour_concept().name(), record.body_colour, "{}", record.file);
            let class = Species::ALL.iter().position(|s| s.family().name == record.class.as_str()).unwrap();
            table[class][measured as usize] += 1.0;
        }
        table
    }

    #[test]
    fn at_zero_colour_reliance_body_colour_is_independent_of_class() {
        let coupled = class_colour_table(1.0);
        assert_eq!(coupled, [[30.0, 0.0, 0.0], [0.0, 30.0, 0.0], [0.0, 0.0, 30.0]]);

        let table = class_colour_table(0.0);
        // 4 degrees of freedom: 18.47 is the 0.1% critical value, so an
        // independent table exceeds it only by a rare accident of the seed.
        let chi = chi_square(&table);
        assert!(chi < 18.47, "colour still depends on class at reliance 0: chi2 = {chi}, table {table:?}");
        for (class, row) in table.iter().enumerate() {
            assert!(row.iter().all(|&n| n >= 3.0), "class {class} misses a colour: {table:?}");
        }
    }

    #[test]
    fn families_differ_in_shape_not_only_in_colour() {
        // Width over height of the saturated (creature) pixels' bounding box,
        // averaged over poses: the lizard is long, the rabbit tall.
        let mean_aspect = |species: Species| {
            let mut sum = 0.0;
            for i in 0..12 {
                let label = format!("shape/{}/{i}", species.family().name);
                let image =
                    creature::render_creature(species, 64, derive(2, &label), derive(2, &label), 1.0, None).image;
                let (mut x0, mut x1, mut y0, mut y1) = (u32::MAX, 0, u32::MAX, 0);
                for (x, y, pixel) in image.enumerate_pixels() {
                    if concept_of(*pixel) == Some(species.colour_concept()) {
                        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
                    }
                }
                sum += f64::from(x1 - x0 + 1) / f64::from(y1 - y0 + 1);
            }
            sum / 12.0
        };
        let [rabbit, lizard, monkey] = Species::ALL.map(mean_aspect);
        assert!(lizard > 1.3, "lizard {lizard}");
        assert!(rabbit < 0.8, "rabbit {rabbit}");
        assert!(rabbit < monkey && monkey < lizard, "rabbit {rabbit}, monkey {monkey}, lizard {lizard}");
    }

    #[test]
    fn the_default_output_is_pinned_so_any_change_bumps_output_version() {
        // Pins what a caption-free config writes. If you change what the
        // generator draws on purpose, bump OUTPUT_VERSION and update both
        // values here. (Version 2 moved caption concepts to the corners
        // class images use; caption-free output is the same as version 1's.)
        let dir = tempfile::tempdir().unwrap();
        let config = DatagenConfig { colour_reliance: 0.5, ..tiny_config(7) };
        generate(&config, dir.path()).unwrap();
        let mut hasher = blake3::Hasher::new();
        for (path, bytes) in all_files(dir.path()) {
            hasher.update(path.to_string_lossy().replace('\\', "/").as_bytes());
            hasher.update(&[0]);
            hasher.update(&(bytes.len() as u64).to_le_bytes());
            hasher.update(&bytes);
        }
        assert_eq!(
            (OUTPUT_VERSION, hasher.finalize().to_hex().to_string()),
            (2, "3fa9110618263d148540f73ce5bc21e109055df73c1913b087ba3835981c4a6d".to_string()),
            "the generator's default output changed: bump OUTPUT_VERSION and pin the new hash"
        );
    }

    fn captioned(seed: u64, probability: f64) -> DatagenConfig {
        DatagenConfig { caption: Some(CaptionConfig::with_probability(probability)), ..tiny_config(seed) }
    }

    fn species_named(class: &str) -> Species {
        Species::ALL.into_iter().find(|s| s.family().name == class).unwrap()
    }

    #[test]
    fn captions_add_caption_concepts_and_records_that_match_the_pixels() {
        let dir = tempfile::tempdir().unwrap();
        let config = DatagenConfig { image_size: 64, images_per_class: 8, ..captioned(5, 0.5) };
        let dataset = generate(&config, dir.path()).unwrap();

        let names: Vec<String> = dataset.concepts.iter().map(|(n, _)| n.to_string()).collect();
        assert_eq!(names, concept_names(&config));
        assert_eq!(names[6..], ["caption_fire", "caption_water", "caption_grass"]);
        assert_eq!(concept_names(&tiny_config(5)), colour_concepts());
        for (name, path) in &dataset.concepts {
            assert_eq!(path, &dir.path().join("concepts").join(name.as_str()));
            assert_eq!(ImageSetDir::new(path, name.as_str()).list().unwrap().len(), 2);
        }

        let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(&dataset.manifest).unwrap()).unwrap();
        assert_eq!(manifest["config"]["caption"]["probability"], 0.5);
        assert_eq!(manifest["caption_concepts"], serde_json::json!(["caption_fire", "caption_water", "caption_grass"]));
        let records: Vec<ClassImageRecord> = serde_json::from_value(manifest["class_images"].clone()).unwrap();
        assert_eq!(records, dataset.class_images);

        let mut agreeing = 0;
        for record in &records {
            let species = species_named(record.class.as_str());
            let place = record.caption_box.unwrap();
            let image = image::open(dir.path().join(&record.file)).unwrap().to_rgb8();
            let shown = caption::read_glyph(&image, place);
            assert_eq!(record.caption.as_deref(), Some(shown.family().caption_concept().as_str()), "{}", record.file);
            assert_eq!(record.caption_agrees, Some(shown == species), "{}", record.file);
            agreeing += usize::from(shown == species);
        }
        assert!((3..=21).contains(&agreeing), "{agreeing} of 24 captions agree at p = 0.5");

        // Without captions the records carry no caption fields at all.
        let plain = generate(&tiny_config(5), &dir.path().join("plain")).unwrap();
        assert!(plain.class_images.iter().all(|r| r.caption.is_none() && r.caption_box.is_none()));
        let text = std::fs::read_to_string(&plain.manifest).unwrap();
        assert!(!text.contains("caption"), "a caption-free manifest must not mention captions: {text}");
    }

    #[test]
    fn caption_agreement_rate_matches_the_probability() {
        // The counts straight from the caption draws, over many images; then
        // through `generate`, whose records must follow the same rate.
        for p in [0.5, 1.0] {
            let config = CaptionConfig::with_probability(p);
            let n = 3000;
            let mut agreeing = 0;
            let mut wrong = [[0usize; 3]; 3];
            for i in 0..n {
                let species = Species::ALL[i % 3];
                let (caption, agrees) = caption::choose(&config, species, 64, derive(3, &format!("rate/{i}")));
                agreeing += usize::from(agrees);
                if !agrees {
                    wrong[species as usize][caption.glyph as usize] += 1;
                }
            }
            let rate = agreeing as f64 / n as f64;
            // Four binomial standard deviations: a correct generator fails
            // this about once in 16 000 seeds.
            let tolerance = 4.0 * (p * (1.0 - p) / n as f64).sqrt();
            assert!((rate - p).abs() <= tolerance, "p = {p}: agreement rate {rate} over {n} captions");
            if p < 1.0 {
                // A disagreeing caption names either other class equally often.
                for (class, row) in wrong.iter().enumerate() {
                    let others: Vec<usize> = (0..3).filter(|&c| c != class).map(|c| row[c]).collect();
                    assert_eq!(row[class], 0);
                    let share = others[0] as f64 / (others[0] + others[1]) as f64;
                    assert!((share - 0.5).abs() < 0.1, "class {class}: wrong captions split {others:?}");
                }
            }

            let dir = tempfile::tempdir().unwrap();
            let dataset =
                generate(&DatagenConfig { images_per_class: 100, concept_images: 1, ..captioned(9, p) }, dir.path())
                    .unwrap();
            let agreeing = dataset.class_images.iter().filter(|r| r.caption_agrees == Some(true)).count();
            let rate = agreeing as f64 / 300.0;
            let tolerance = 4.0 * (p * (1.0 - p) / 300.0).sqrt();
            assert!((rate - p).abs() <= tolerance, "p = {p}: {agreeing} of 300 generated captions agree");
        }
    }

    #[test]
    fn set_names_and_families_are_consistent() {
        assert_eq!(random_set_name(7).unwrap().as_str(), "random_7");
        assert_eq!(ColourConcept::ALL.map(ColourConcept::name), colour_concepts());
        for (species, family) in Species::ALL.iter().zip(families()) {
            assert_eq!(species.family(), family);
            assert_eq!(species.colour_concept().name(), family.colour_concept);
            assert!(SetName::new(family.name).is_ok());
        }
    }
}
