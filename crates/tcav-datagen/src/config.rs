//! The generator's config and its validation.

use serde::{Deserialize, Serialize};

use crate::error::DatagenError;

/// The smallest image side that still draws recognisable creature parts.
pub const MIN_IMAGE_SIZE: u32 = 16;
/// The largest image side; larger images only cost memory (every worker
/// holds a canvas of four times the pixels while drawing).
pub const MAX_IMAGE_SIZE: u32 = 1024;

/// What to generate. Every field has a default, so a config file only names
/// what it changes; unknown fields are rejected so that a typo is not
/// silently ignored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatagenConfig {
    /// Master seed: the same config gives byte-identical files.
    pub seed: u64,
    /// Side of every (square, RGB) image in pixels, 16 to 1024.
    pub image_size: u32,
    /// Creature images per class (`fire`, `water`, `grass`).
    pub images_per_class: usize,
    /// Images per colour concept (`red`, `blue`, `green`, `yellow`, `white`, `black`).
    pub concept_images: usize,
    /// Number of random counter-example sets (`random_0`, `random_1`, ...), at least 2.
    pub random_sets: usize,
    /// Images per random set.
    pub random_set_images: usize,
    /// Probability, in [0, 1], that a creature keeps its family's colour.
    /// Otherwise its body colour is drawn uniformly from the three family
    /// colours, independently of its class (so it still gets its own one
    /// time in three: r + (1 - r)/3 of the creatures have their family's
    /// colour). At 1 each family has its own colour; at 0 only shape and
    /// parts tell the families apart, so a classifier cannot rely on colour.
    pub colour_reliance: f64,
    /// The caption variant of the TCAV paper: when set, every creature image
    /// carries a small caption patch (a glyph, one per family) that names
    /// its class with a chosen probability, and the caption concepts
    /// (`caption_fire`, ...) are generated too. Off by default; a config
    /// without it writes exactly what the generator wrote before captions
    /// existed (the field is left out of the manifest and artifact keys).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caption: Option<CaptionConfig>,
}

/// How creature images are captioned; see [`DatagenConfig::caption`].
///
/// A caption is a white box with a black glyph, one glyph per family: a
/// triangle for `fire`, a ring for `water`, a cross for `grass`. Only
/// `probability` must be given; the placement knobs have defaults that a
/// small CNN picks up at 64 pixels.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptionConfig {
    /// Probability, in [0, 1], that a creature's caption is its own
    /// family's. Otherwise the caption is one of the other two families',
    /// chosen uniformly. So 1/3 makes the caption carry no class
    /// information, 1.0 makes it name the class every time, and below 1/3
    /// it points *away* from the class.
    pub probability: f64,
    /// Side of the (square) caption box as a fraction of the image side,
    /// 0.1 to 0.4; 0.18 by default (about 12 pixels at 64). The box is at
    /// least 6 pixels, so that its glyph stays legible on tiny images.
    #[serde(default = "CaptionConfig::default_size")]
    pub size: f64,
    /// Gap between the caption box and the image edges, as a fraction of
    /// the image side, 0 to 0.1; 0.03 by default.
    #[serde(default = "CaptionConfig::default_margin")]
    pub margin: f64,
    /// Which corner the caption goes in; a random corner by default.
    #[serde(default)]
    pub placement: CaptionPlacement,
}

impl CaptionConfig {
    /// The default [`CaptionConfig::size`].
    pub const DEFAULT_SIZE: f64 = 0.18;
    /// The default [`CaptionConfig::margin`].
    pub const DEFAULT_MARGIN: f64 = 0.03;

    /// A caption config with the given probability and default placement.
    pub fn with_probability(probability: f64) -> Self {
        CaptionConfig {
            probability,
            size: Self::DEFAULT_SIZE,
            margin: Self::DEFAULT_MARGIN,
            placement: CaptionPlacement::default(),
        }
    }

    fn default_size() -> f64 {
        Self::DEFAULT_SIZE
    }

    fn default_margin() -> f64 {
        Self::DEFAULT_MARGIN
    }
}

/// The corner a caption is placed in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaptionPlacement {
    /// Each image's own random corner (drawn from the image's seed).
    #[default]
    RandomCorner,
    /// Always the top-left corner.
    TopLeft,
    /// Always the top-right corner.
    TopRight,
    /// Always the bottom-left corner.
    BottomLeft,
    /// Always the bottom-right corner.
    BottomRight,
}

impl Default for DatagenConfig {
    fn default() -> Self {
        DatagenConfig {
            seed: 0,
            image_size: 128,
            images_per_class: 200,
            concept_images: 30,
            random_sets: 10,
            random_set_images: 30,
            colour_reliance: 1.0,
            caption: None,
        }
    }
}

impl DatagenConfig {
    /// Checks every field, naming the first one that is out of range.
    pub fn validate(&self) -> Result<(), DatagenError> {
        let invalid = |field, value: String, fix| Err(DatagenError::InvalidConfig { field, value, fix });
        if !(MIN_IMAGE_SIZE..=MAX_IMAGE_SIZE).contains(&self.image_size) {
            return invalid(
                "image_size",
                self.image_size.to_string(),
                "use 16 to 1024 pixels (128 is the default; smaller images lose the creatures' parts)",
            );
        }
        if self.images_per_class == 0 {
            return invalid("images_per_class", "0".into(), "use at least 1 (200 is the default)");
        }
        if self.concept_images == 0 {
            return invalid("concept_images", "0".into(), "use at least 1 (30 is the default)");
        }
        if self.random_sets < 2 {
            return invalid(
                "random_sets",
                self.random_sets.to_string(),
                "use at least 2: TCAV's significance test compares scores across several random sets (10 is the default)",
            );
        }
        if self.random_set_images == 0 {
            return invalid("random_set_images", "0".into(), "use at least 1 (30 is the default)");
        }
        if !(0.0..=1.0).contains(&self.colour_reliance) {
            return invalid(
                "colour_reliance",
                self.colour_reliance.to_string(),
                "use a probability from 0.0 (colour says nothing about the class) to 1.0 (every creature has its family's colour)",
            );
        }
        if let Some(caption) = &self.caption {
            if !(0.0..=1.0).contains(&caption.probability) {
                return invalid(
                    "caption.probability",
                    caption.probability.to_string(),
                    "use a probability from 0.0 to 1.0 that the caption names the creature's own class \
                     (1/3 makes the caption say nothing about the class; 1.0 makes it always right)",
                );
            }
            if !(0.1..=0.4).contains(&caption.size) {
                return invalid(
                    "caption.size",
                    caption.size.to_string(),
                    "use 0.1 to 0.4 of the image side (0.18 is the default): smaller glyphs blur away, larger ones hide the creature",
                );
            }
            if !(0.0..=0.1).contains(&caption.margin) {
                return invalid(
                    "caption.margin",
                    caption.margin.to_string(),
                    "use 0.0 to 0.1 of the image side (0.03 is the default)",
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "in a test, a failed unwrap is a failed test")]
mod tests {
    use super::*;

    fn field_error(config: &DatagenConfig) -> String {
        match config.validate() {
            Err(e @ DatagenError::InvalidConfig { .. }) => e.to_string(),
            other => panic!("expected an invalid-config error, got {other:?}"),
        }
    }

    #[test]
    fn default_config_is_valid_and_matches_the_documented_values() {
        let config = DatagenConfig::default();
        config.validate().unwrap();
        assert_eq!((config.seed, config.image_size, config.images_per_class, config.concept_images), (0, 128, 200, 30));
        assert_eq!((config.random_sets, config.random_set_images, config.colour_reliance), (10, 30, 1.0));
        assert_eq!(config.caption, None);
    }

    #[test]
    fn every_out_of_range_field_is_named_in_the_error() {
        let base = DatagenConfig::default();
        let with_caption = |caption| DatagenConfig { caption: Some(caption), ..DatagenConfig::default() };
        let cases = [
            ("image_size", DatagenConfig { image_size: 15, ..base.clone() }),
            ("image_size", DatagenConfig { image_size: 4096, ..base.clone() }),
            ("images_per_class", DatagenConfig { images_per_class: 0, ..base.clone() }),
            ("concept_images", DatagenConfig { concept_images: 0, ..base.clone() }),
            ("random_sets", DatagenConfig { random_sets: 1, ..base.clone() }),
            ("random_set_images", DatagenConfig { random_set_images: 0, ..base.clone() }),
            ("colour_reliance", DatagenConfig { colour_reliance: 1.5, ..base.clone() }),
            ("colour_reliance", DatagenConfig { colour_reliance: -0.1, ..base.clone() }),
            ("colour_reliance", DatagenConfig { colour_reliance: f64::NAN, ..base.clone() }),
            ("caption.probability", with_caption(CaptionConfig::with_probability(1.01))),
            ("caption.probability", with_caption(CaptionConfig::with_probability(-0.5))),
            ("caption.probability", with_caption(CaptionConfig::with_probability(f64::NAN))),
            ("caption.size", with_caption(CaptionConfig { size: 0.05, ..CaptionConfig::with_probability(0.5) })),
            ("caption.size", with_caption(CaptionConfig { size: 0.5, ..CaptionConfig::with_probability(0.5) })),
            ("caption.margin", with_caption(CaptionConfig { margin: 0.2, ..CaptionConfig::with_probability(0.5) })),
            ("caption.margin", with_caption(CaptionConfig { margin: -0.01, ..CaptionConfig::with_probability(0.5) })),
        ];
        for (field, config) in cases {
            let message = field_error(&config);
            assert!(message.contains(&format!("`{field}`")), "{message}");
            assert!(message.contains("use "), "the message should say what to use instead: {message}");
        }
        DatagenConfig { image_size: 16, random_sets: 2, colour_reliance: 0.0, ..base }.validate().unwrap();
        for p in [0.0, 1.0 / 3.0, 1.0] {
            with_caption(CaptionConfig::with_probability(p)).validate().unwrap();
        }
        with_caption(CaptionConfig { size: 0.4, margin: 0.1, ..CaptionConfig::with_probability(0.5) })
            .validate()
            .unwrap();
    }

    #[test]
    fn config_files_fill_defaults_and_reject_unknown_fields() {
        let config: DatagenConfig = serde_json::from_str(r#"{"seed": 5, "colour_reliance": 0.25}"#).unwrap();
        assert_eq!(config, DatagenConfig { seed: 5, colour_reliance: 0.25, ..DatagenConfig::default() });
        let err = serde_json::from_str::<DatagenConfig>(r#"{"colour_reliability": 0.5}"#).unwrap_err();
        assert!(err.to_string().contains("colour_reliability"), "{err}");
    }

    #[test]
    fn caption_sections_fill_defaults_and_reject_unknown_fields() {
        let config: DatagenConfig = serde_json::from_str(r#"{"caption": {"probability": 0.7}}"#).unwrap();
        assert_eq!(config.caption, Some(CaptionConfig::with_probability(0.7)));
        assert_eq!(
            config.caption.map(|c| (c.size, c.margin, c.placement)),
            Some((0.18, 0.03, CaptionPlacement::RandomCorner))
        );
        let config: DatagenConfig = serde_json::from_str(
            r#"{"caption": {"probability": 1, "size": 0.2, "margin": 0, "placement": "top_left"}}"#,
        )
        .unwrap();
        assert_eq!(
            config.caption,
            Some(CaptionConfig { probability: 1.0, size: 0.2, margin: 0.0, placement: CaptionPlacement::TopLeft })
        );
        let err =
            serde_json::from_str::<DatagenConfig>(r#"{"caption": {"probability": 0.5, "sise": 0.2}}"#).unwrap_err();
        assert!(err.to_string().contains("sise"), "{err}");
        let err = serde_json::from_str::<DatagenConfig>(r#"{"caption": {"size": 0.2}}"#).unwrap_err();
        assert!(err.to_string().contains("probability"), "a caption must say its probability: {err}");
        let err = serde_json::from_str::<DatagenConfig>(r#"{"caption": {"probability": 0.5, "placement": "middle"}}"#)
            .unwrap_err();
        assert!(err.to_string().contains("middle"), "{err}");
        // A config without captions serialises as before captions existed,
        // so artifact keys built from it do not change.
        let json = serde_json::to_string(&DatagenConfig::default()).unwrap();
        assert!(!json.contains("caption"), "{json}");
        let round_trip: DatagenConfig = serde_json::from_str(&serde_json::to_string(&config).unwrap()).unwrap();
        assert_eq!(round_trip, config);
    }
}
