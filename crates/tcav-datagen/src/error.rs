//! The error type of the data generator.

use std::path::PathBuf;

use tcav_core::CoreError;

/// What can go wrong when generating the built-in dataset.
#[derive(Debug, thiserror::Error)]
pub enum DatagenError {
    /// A config field is out of its allowed range.
    #[error("invalid datagen config: `{field}` is {value}; {fix}")]
    InvalidConfig {
        /// The offending field of [`crate::DatagenConfig`].
        field: &'static str,
        /// The value it had, as written in the config.
        value: String,
        /// What to set it to instead.
        fix: &'static str,
    },
    /// Caption counterfactuals were asked of a config without captions.
    #[error(
        "cannot blank the captions: the datagen config has no `caption` section, so its images carry no caption; \
         add `caption = {{ probability = ... }}` to the config, or remove the colour cue instead"
    )]
    NoCaptions,
    /// The output folder already holds something.
    #[error(
        "output folder {path} is not empty: the generator refuses to mix its images with files already there \
         (stale images would silently join a class or concept); pass a missing or empty folder, or delete this one"
    )]
    OutputNotEmpty {
        /// The output folder.
        path: PathBuf,
    },
    /// The output path exists but is a file.
    #[error("output path {path} is a file, not a folder: pass a folder path (missing or empty)")]
    OutputIsFile {
        /// The output path.
        path: PathBuf,
    },
    /// Encoding an image as PNG failed.
    #[error(
        "encoding the image for {path} as PNG failed: {source}; this is a bug in tcav-datagen, please report it with the config used"
    )]
    Encode {
        /// The file the image was meant for.
        path: PathBuf,
        /// The encoder's error.
        source: image::ImageError,
    },
    /// Writing a file or naming a set failed.
    #[error(transparent)]
    Core(#[from] CoreError),
}
