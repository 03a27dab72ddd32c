//! The error type of the shared layer.

use std::path::PathBuf;

/// What can go wrong when reading a layout or writing to the artifact store.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// A folder that should hold images does not exist.
    #[error(
        "image folder {path} does not exist: create it and put the {what} images in it, or fix the path in the experiment config"
    )]
    MissingFolder {
        /// The folder that was looked for.
        path: PathBuf,
        /// What the folder was supposed to hold ("concept `red`", "class `fire`").
        what: String,
    },
    /// A folder exists but holds no image files.
    #[error(
        "image folder {path} holds no images (.png, .jpg, .jpeg, .gif, .webp, .bmp): add the {what} images, or remove the set from the experiment config"
    )]
    EmptyFolder {
        /// The empty folder.
        path: PathBuf,
        /// What the folder was supposed to hold.
        what: String,
    },
    /// A set name that cannot be used as a folder name.
    #[error(
        "invalid set name {name:?}: use letters, digits, `_`, `-` and `.` only (for example `red` or `random500_0`)"
    )]
    InvalidSetName {
        /// The offending name.
        name: String,
    },
    /// An I/O error on a named path.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done ("writing", "reading", "renaming").
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A safetensors file that does not hold what it should.
    #[error("{path}: {reason}; delete the file (or its artifact folder) to have it recomputed")]
    Tensors {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A metadata file that does not parse.
    #[error("malformed JSON in {path}: {source}; delete the file to have it recomputed")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
}

impl CoreError {
    /// Wraps an I/O error with the action and path it happened on.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        CoreError::Io { action, path: path.into(), source }
    }
}

/// Result alias for this crate.
pub type Result<T, E = CoreError> = std::result::Result<T, E>;
