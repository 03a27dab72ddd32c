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
    /// Probability, in [0, 1], that a creature gets its family's colour.
    /// Otherwise its body colour is drawn uniformly from the three family
    /// colours, independently of its class: at 0 only shape and parts tell
    /// the families apart, so a classifier cannot rely on colour.
    pub colour_reliance: f64,
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
    }

    #[test]
    fn every_out_of_range_field_is_named_in_the_error() {
        let base = DatagenConfig::default();
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
        ];
        for (field, config) in cases {
            let message = field_error(&config);
            assert!(message.contains(&format!("`{field}`")), "{message}");
            assert!(message.contains("use "), "the message should say what to use instead: {message}");
        }
        DatagenConfig { image_size: 16, random_sets: 2, colour_reliance: 0.0, ..base }.validate().unwrap();
    }

    #[test]
    fn config_files_fill_defaults_and_reject_unknown_fields() {
        let config: DatagenConfig = serde_json::from_str(r#"{"seed": 5, "colour_reliance": 0.25}"#).unwrap();
        assert_eq!(config, DatagenConfig { seed: 5, colour_reliance: 0.25, ..DatagenConfig::default() });
        let err = serde_json::from_str::<DatagenConfig>(r#"{"colour_reliability": 0.5}"#).unwrap_err();
        assert!(err.to_string().contains("colour_reliability"), "{err}");
    }
}
