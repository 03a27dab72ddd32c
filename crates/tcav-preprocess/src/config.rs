//! What preprocessing does to every image, as one serde struct.
//!
//! Every field has a default, so an empty config section is valid; unknown
//! fields are rejected so that a typo (`min_sied`) never silently falls back
//! to a default.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::PreprocessError;

/// The largest side (in pixels) an input image or the output size may have.
///
/// Images beyond it are rejected from their header alone, before any pixel
/// is decoded, so that a decompression bomb (a tiny file that claims to be
/// 100000 × 100000 pixels) cannot exhaust memory.
pub const MAX_SIDE: u32 = 16_384;

/// The most bytes a decoder may allocate for one image (512 MiB).
pub const MAX_DECODE_BYTES: u64 = 512 * 1024 * 1024;

/// Files larger than this (256 MiB) are rejected before they are read: no
/// image a crawler keeps for a 256-pixel dataset needs more, and reading a
/// huge file whole would exhaust memory before any decoder limit applies.
pub const MAX_FILE_BYTES: u64 = 256 * 1024 * 1024;

/// At most this many frames of one GIF are read, whatever `gif_frames` asks:
/// a GIF of a million tiny frames is a denial of service, not a dataset.
pub const MAX_GIF_FRAMES: u32 = 1000;

/// Perceptual hashes of unrelated images differ in about 32 of their 64 bits,
/// so a near-duplicate threshold at or above this would call them duplicates.
pub const MAX_NEAR_DUPLICATE_DISTANCE: u32 = 24;

/// Images whose luma standard deviation (0–255 scale, on the output pixels)
/// is below this are rejected as near-uniform: blank placeholders, solid
/// colours and "image not available" tiles teach a concept nothing.
pub const NEAR_UNIFORM_LUMA_STD: f64 = 2.0;

/// How preprocessing turns raw images into square, equally sized PNGs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PreprocessConfig {
    /// Side of the square output images, in pixels.
    pub size: u32,
    /// How a non-square image becomes square.
    pub crop: CropMode,
    /// The resampling filter used to resize.
    pub filter: ResizeFilter,
    /// Images whose shorter side is below this many pixels are rejected.
    pub min_side: u32,
    /// How class images are divided between train, validation and test.
    pub split: SplitFractions,
    /// Mixed into the split hash: changing it draws a new split.
    pub salt: String,
    /// What to do with a file that cannot be read or decoded.
    pub on_bad_image: BadImagePolicy,
    /// The colour transparent pixels are composited onto (RGB).
    pub background: [u8; 3],
    /// Which frames of a GIF become images.
    pub gif_frames: GifFrames,
    /// How exact and near duplicates are found and resolved.
    pub duplicates: DuplicateConfig,
    /// The exclusion list written during manual review: files listed there
    /// never reach any output. See [`crate::exclusions`] for its format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclusions: Option<PathBuf>,
    /// The split lockfile: read before splitting, so that every class image
    /// listed there keeps its split, and rewritten after a successful run
    /// with the splits of this run's images added. See [`crate::lock`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lockfile: Option<PathBuf>,
}

impl Default for PreprocessConfig {
    fn default() -> Self {
        PreprocessConfig {
            size: 256,
            crop: CropMode::default(),
            filter: ResizeFilter::default(),
            min_side: 32,
            split: SplitFractions::default(),
            salt: "tcav".to_owned(),
            on_bad_image: BadImagePolicy::default(),
            background: [255, 255, 255],
            gif_frames: GifFrames::default(),
            duplicates: DuplicateConfig::default(),
            exclusions: None,
            lockfile: None,
        }
    }
}

/// Which frames of a GIF become images. Other formats have one frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GifFrames {
    /// The first frame only (`"first"`); the output is named like any image.
    #[default]
    First,
    /// Frames 0, n, 2n, … (`{ every = 5 }`), at most [`MAX_GIF_FRAMES`] read.
    /// Each becomes its own image, named and recorded with its frame index.
    Every(u32),
}

/// How duplicates are found and what happens to them.
///
/// Exact duplicates (the same decoded, upright pixels) are always found.
/// Near duplicates are two output images whose perceptual hashes (64-bit
/// gradient hashes of their luma) differ in at most `max_distance` bits
/// *and* whose 16 × 16 colour thumbnails differ by at most
/// `max_colour_difference` on average. The hash alone is blind to colour and
/// weak on smooth, low-detail images: a red and a blue version of one
/// drawing, or two small creatures on similar plain backgrounds, can hash
/// within a few bits. Calling those duplicates would drop real examples
/// (and, for colour concepts, exactly the ones that matter). With the
/// defaults, on this project's generated dataset and on photos, JPEG
/// re-encodes and rescaled copies are found (99–100 %), most copies cropped
/// by 3 % are (80 %), and no two distinct generated images are.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DuplicateConfig {
    /// Whether to look for near duplicates at all.
    pub near: bool,
    /// The largest Hamming distance between perceptual hashes that still
    /// counts as a near duplicate (0 = identical hashes only).
    pub max_distance: u32,
    /// The largest mean absolute difference between the two images' 16 × 16
    /// RGB thumbnails (box-filtered, on the 0–255 scale) that still counts as
    /// a near duplicate.
    pub max_colour_difference: f64,
    /// What to do with near duplicates inside one set.
    pub within_set: WithinSet,
}

impl Default for DuplicateConfig {
    fn default() -> Self {
        DuplicateConfig { near: true, max_distance: 10, max_colour_difference: 6.0, within_set: WithinSet::default() }
    }
}

/// What to do with near duplicates inside one set. Exact duplicates inside
/// a set are always written once; duplicates across sets follow the rule in
/// [`crate::prepare_dataset`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WithinSet {
    /// Keep them all (`"keep"`): they are reported, and in a class they land
    /// in the same split, so they cannot leak between train and test.
    #[default]
    Keep,
    /// Keep only the first of each group, by path (`"drop"`).
    Drop,
}

/// How a non-square image becomes square.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum CropMode {
    /// Keep the largest centred square and drop the rest (`"center_square"`).
    #[default]
    CenterSquare,
    /// Keep the whole image, scaled to fit, centred on a square of `colour`
    /// (`{ pad_square = { colour = [0, 0, 0] } }`).
    PadSquare {
        /// The colour of the padding (RGB); black when left out.
        #[serde(default)]
        colour: [u8; 3],
    },
}

/// The resampling filter used to resize (the `image` crate's filters).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResizeFilter {
    /// Nearest neighbour: fastest, blocky.
    Nearest,
    /// Bilinear.
    Triangle,
    /// Bicubic (Catmull-Rom).
    CatmullRom,
    /// Gaussian: soft.
    Gaussian,
    /// Lanczos with a window of 3: sharpest when shrinking.
    #[default]
    Lanczos3,
}

impl ResizeFilter {
    pub(crate) fn to_fast_image_resize(self) -> fast_image_resize::ResizeAlg {
        use fast_image_resize::{FilterType, ResizeAlg};
        match self {
            ResizeFilter::Nearest => ResizeAlg::Nearest,
            ResizeFilter::Triangle => ResizeAlg::Convolution(FilterType::Bilinear),
            ResizeFilter::CatmullRom => ResizeAlg::Convolution(FilterType::CatmullRom),
            ResizeFilter::Gaussian => ResizeAlg::Convolution(FilterType::Gaussian),
            ResizeFilter::Lanczos3 => ResizeAlg::Convolution(FilterType::Lanczos3),
        }
    }

    pub(crate) fn to_image(self) -> image::imageops::FilterType {
        use image::imageops::FilterType;
        match self {
            ResizeFilter::Nearest => FilterType::Nearest,
            ResizeFilter::Triangle => FilterType::Triangle,
            ResizeFilter::CatmullRom => FilterType::CatmullRom,
            ResizeFilter::Gaussian => FilterType::Gaussian,
            ResizeFilter::Lanczos3 => FilterType::Lanczos3,
        }
    }
}

/// The share of each class's images that goes to each split.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SplitFractions {
    /// Share of images the classifier is fitted on.
    pub train: f64,
    /// Share used to pick the best epoch.
    pub validation: f64,
    /// Held-out share.
    pub test: f64,
}

impl Default for SplitFractions {
    fn default() -> Self {
        SplitFractions { train: 0.7, validation: 0.15, test: 0.15 }
    }
}

impl SplitFractions {
    /// The fraction of `split`.
    pub fn get(&self, split: tcav_core::Split) -> f64 {
        match split {
            tcav_core::Split::Train => self.train,
            tcav_core::Split::Validation => self.validation,
            tcav_core::Split::Test => self.test,
        }
    }
}

/// What to do with a file that cannot be read or decoded (garbage bytes,
/// truncated data, an unknown format, or dimensions beyond [`MAX_SIDE`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BadImagePolicy {
    /// Leave the file out, warn, and record why in the manifest.
    #[default]
    Skip,
    /// Stop with an error naming the file.
    Fail,
}

impl PreprocessConfig {
    /// Checks every field, naming the first one that is out of range.
    pub fn validate(&self) -> Result<(), PreprocessError> {
        let bad = |field: &'static str, problem: String| Err(PreprocessError::Config { field, problem });
        if self.size == 0 || self.size > MAX_SIDE {
            return bad("size", format!("{} is outside 1..={MAX_SIDE}", self.size));
        }
        let fractions = [
            ("split.train", self.split.train),
            ("split.validation", self.split.validation),
            ("split.test", self.split.test),
        ];
        for (field, value) in fractions {
            if !(0.0..=1.0).contains(&value) {
                return bad(field, format!("{value} is not a fraction in [0, 1]"));
            }
        }
        let sum = self.split.train + self.split.validation + self.split.test;
        if (sum - 1.0).abs() > 1e-9 {
            return bad(
                "split",
                format!(
                    "train + validation + test = {} + {} + {} = {sum}, but the fractions must add up to 1",
                    self.split.train, self.split.validation, self.split.test
                ),
            );
        }
        if self.split.train == 0.0 {
            return bad("split.train", "is 0, so the classifier would have no images to train on".to_owned());
        }
        if self.gif_frames == GifFrames::Every(0) {
            return bad(
                "gif_frames",
                "every = 0 takes no frame; use every = 1 for all frames, or \"first\"".to_owned(),
            );
        }
        if self.duplicates.max_distance >= MAX_NEAR_DUPLICATE_DISTANCE {
            return bad(
                "duplicates.max_distance",
                format!(
                    "{} is at least {MAX_NEAR_DUPLICATE_DISTANCE}: unrelated images differ in about 32 of the 64 \
                     hash bits, so this would call them duplicates; use 0 to 10",
                    self.duplicates.max_distance
                ),
            );
        }
        let colour = self.duplicates.max_colour_difference;
        if !(0.0..=255.0).contains(&colour) {
            return bad(
                "duplicates.max_colour_difference",
                format!("{colour} is not a mean difference of 8-bit colour values, in [0, 255]; the default is 6"),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<PreprocessConfig, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn empty_config_gives_the_documented_defaults() {
        let config = parse("{}").unwrap();
        assert_eq!(config, PreprocessConfig::default());
        assert_eq!(config.size, 256);
        assert_eq!(config.crop, CropMode::CenterSquare);
        assert_eq!(config.filter, ResizeFilter::Lanczos3);
        assert_eq!(config.min_side, 32);
        assert_eq!(config.split, SplitFractions { train: 0.7, validation: 0.15, test: 0.15 });
        assert_eq!(config.salt, "tcav");
        assert_eq!(config.on_bad_image, BadImagePolicy::Skip);
        assert_eq!(config.background, [255, 255, 255]);
        assert_eq!(config.gif_frames, GifFrames::First);
        assert_eq!(
            config.duplicates,
            DuplicateConfig { near: true, max_distance: 10, max_colour_difference: 6.0, within_set: WithinSet::Keep }
        );
        assert_eq!((config.exclusions.as_deref(), config.lockfile.as_deref()), (None, None));
        config.validate().unwrap();
        // Unset paths are left out of the JSON, so TOML can write it too.
        assert!(!serde_json::to_string(&config).unwrap().contains("lockfile"));
    }

    #[test]
    fn config_round_trips_and_parses_every_variant() {
        let config = parse(
            r#"{"size": 64, "crop": {"pad_square": {"colour": [1, 2, 3]}}, "filter": "catmull_rom",
                "split": {"train": 0.5, "validation": 0.5, "test": 0.0}, "on_bad_image": "fail"}"#,
        )
        .unwrap();
        assert_eq!(config.crop, CropMode::PadSquare { colour: [1, 2, 3] });
        assert_eq!(config.filter, ResizeFilter::CatmullRom);
        assert_eq!(config.on_bad_image, BadImagePolicy::Fail);
        config.validate().unwrap();
        let back = parse(&serde_json::to_string(&config).unwrap()).unwrap();
        assert_eq!(back, config);
        assert_eq!(parse(r#"{"crop": "center_square"}"#).unwrap().crop, CropMode::CenterSquare);
        assert_eq!(parse(r#"{"crop": {"pad_square": {}}}"#).unwrap().crop, CropMode::PadSquare { colour: [0, 0, 0] });

        let config = parse(
            r#"{"gif_frames": {"every": 3}, "duplicates": {"max_distance": 6, "within_set": "drop"},
                "exclusions": "data/exclude.txt", "lockfile": "data/splits.lock.json"}"#,
        )
        .unwrap();
        assert_eq!(config.gif_frames, GifFrames::Every(3));
        assert_eq!(
            config.duplicates,
            DuplicateConfig { near: true, max_distance: 6, max_colour_difference: 6.0, within_set: WithinSet::Drop }
        );
        assert_eq!(config.exclusions.as_deref(), Some(std::path::Path::new("data/exclude.txt")));
        config.validate().unwrap();
        assert_eq!(parse(&serde_json::to_string(&config).unwrap()).unwrap(), config);
        assert_eq!(parse(r#"{"gif_frames": "first"}"#).unwrap().gif_frames, GifFrames::First);
    }

    #[test]
    fn unknown_fields_are_rejected() {
        for json in [
            r#"{"min_sied": 3}"#,
            r#"{"split": {"train": 1.0, "tets": 0.0}}"#,
            r#"{"crop": {"pad_square": {"color": [0,0,0]}}}"#,
            r#"{"duplicates": {"max_distanse": 3}}"#,
            r#"{"gif_frames": "all"}"#,
        ] {
            assert!(parse(json).is_err(), "{json} should not parse");
        }
    }

    #[test]
    fn validation_names_the_bad_field() {
        let with = |f: &dyn Fn(&mut PreprocessConfig)| {
            let mut config = PreprocessConfig::default();
            f(&mut config);
            config.validate().unwrap_err().to_string()
        };
        let err = with(&|c| c.split.validation = 1.5);
        assert!(err.contains("`split.validation`") && err.contains("1.5"), "{err}");
        let err = with(&|c| c.split.test = -0.1);
        assert!(err.contains("`split.test`"), "{err}");
        let err = with(&|c| c.split.train = 0.8);
        assert!(err.contains("`split`") && err.contains("add up to 1"), "{err}");
        let err = with(&|c| c.split.validation = f64::NAN);
        assert!(err.contains("`split.validation`"), "{err}");
        let err = with(&|c| c.size = 0);
        assert!(err.contains("`size`"), "{err}");
        let err = with(&|c| c.split = SplitFractions { train: 0.0, validation: 0.5, test: 0.5 });
        assert!(err.contains("`split.train`"), "{err}");
        let err = with(&|c| c.gif_frames = GifFrames::Every(0));
        assert!(err.contains("`gif_frames`"), "{err}");
        let err = with(&|c| c.duplicates.max_distance = MAX_NEAR_DUPLICATE_DISTANCE);
        assert!(err.contains("`duplicates.max_distance`") && err.contains("about 32"), "{err}");
        let err = with(&|c| c.duplicates.max_colour_difference = f64::NAN);
        assert!(err.contains("`duplicates.max_colour_difference`"), "{err}");
        // Sums off by rounding only are fine.
        let ok = PreprocessConfig {
            split: SplitFractions { train: 0.1 + 0.2, validation: 0.3, test: 0.4 },
            ..PreprocessConfig::default()
        };
        ok.validate().unwrap();
    }
}
