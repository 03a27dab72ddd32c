//! What preprocessing does to every image, as one serde struct.
//!
//! Every field has a default, so an empty config section is valid; unknown
//! fields are rejected so that a typo (`min_sied`) never silently falls back
//! to a default.

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
        }
    }
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
        config.validate().unwrap();
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
    }

    #[test]
    fn unknown_fields_are_rejected() {
        for json in [r#"{"min_sied": 3}"#, r#"{"split": {"train": 1.0, "tets": 0.0}}"#, r#"{"crop": {"pad_square": {"color": [0,0,0]}}}"#] {
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
        // Sums off by rounding only are fine.
        let ok = PreprocessConfig {
            split: SplitFractions { train: 0.1 + 0.2, validation: 0.3, test: 0.4 },
            ..PreprocessConfig::default()
        };
        ok.validate().unwrap();
    }
}
