//! What can stop a preprocessing call.

use std::path::PathBuf;

use tcav_core::{CoreError, SetName};

/// Why a preprocessing call failed. Single bad images are not errors unless
/// `on_bad_image = "fail"`: they are recorded in the report instead.
#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    /// A config field is out of range.
    #[error("invalid preprocessing setting `{field}`: {problem}; fix it in the preprocessing config")]
    Config {
        /// The field, as written in the config (`split.train`).
        field: &'static str,
        /// What is wrong with its value.
        problem: String,
    },
    /// A missing or empty input folder, or an I/O error on a named path.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// The same set name was given twice.
    #[error(
        "{what} `{set}` is listed twice (folders {first} and {second}): give each {what} one folder, or merge the folders"
    )]
    DuplicateSet {
        /// "class", "concept", "random set" or "set".
        what: &'static str,
        /// The repeated name.
        set: SetName,
        /// The folder given first.
        first: PathBuf,
        /// The folder given second.
        second: PathBuf,
    },
    /// An output folder is one of the input folders.
    #[error(
        "the output folder {output} is the input folder {input} of {what} `{set}`: preprocessing never writes into or \
         cleans its inputs; choose an output root outside the raw image folders"
    )]
    OutputOverlapsInput {
        /// "class", "concept", "random set" or "set".
        what: &'static str,
        /// The set whose input folder it is.
        set: SetName,
        /// The output folder.
        output: PathBuf,
        /// The input folder it coincides with.
        input: PathBuf,
    },
    /// A file could not be read or decoded and `on_bad_image = "fail"`.
    #[error(
        "bad image {path} in {what} `{set}`: {reason}; remove the file from its folder, or set \
         on_bad_image = \"skip\" to leave such files out and record them in the report"
    )]
    BadImage {
        /// "class", "concept", "random set" or "set".
        what: &'static str,
        /// The set the file belongs to.
        set: SetName,
        /// The file.
        path: PathBuf,
        /// Why it was rejected.
        reason: String,
    },
    /// Every image of a set was rejected.
    #[error(
        "all {count} images of {what} `{set}` in {folder} were rejected (most common: {reasons}); the warnings and the \
         report name each file: fix or replace the images, or remove the {what} from the experiment config"
    )]
    AllRejected {
        /// "class", "concept", "random set" or "set".
        what: &'static str,
        /// The set.
        set: SetName,
        /// Its input folder.
        folder: PathBuf,
        /// How many images it had.
        count: usize,
        /// The most common rejection reasons with their counts.
        reasons: String,
    },
    /// A line of the exclusion list cannot be understood.
    #[error("{file}, line {line}: {problem}")]
    Exclusions {
        /// The exclusion list.
        file: PathBuf,
        /// The 1-based line number.
        line: usize,
        /// What is wrong with the line and how to write it.
        problem: String,
    },
    /// The split lockfile is not one this crate wrote.
    #[error(
        "split lockfile {path}: {problem}; restore it from version control, or delete it to draw every split from \
         the salted hash again (images may then move between splits)"
    )]
    Lockfile {
        /// The lockfile.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// A preprocessed image could not be encoded as PNG.
    #[error("encoding the preprocessed image {path} as PNG: {source}")]
    Encode {
        /// Where it was to be written.
        path: PathBuf,
        /// The encoder's error.
        source: image::ImageError,
    },
}
