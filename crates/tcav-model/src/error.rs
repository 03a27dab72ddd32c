//! Errors of the model layer.

use std::path::PathBuf;

/// What can go wrong when building, loading or running a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A bottleneck name the model does not have.
    #[error(
        "layer `{layer}` is not a bottleneck of model `{architecture}`; available bottlenecks: {available}. Fix `layers` in the experiment config"
    )]
    UnknownLayer {
        /// The requested layer.
        layer: String,
        /// The model's architecture.
        architecture: String,
        /// The layers it has, comma-separated.
        available: String,
    },
    /// A class name the model does not have.
    #[error("class `{class}` is not one of the model's classes ({available}); fix `classes` in the experiment config")]
    UnknownClass {
        /// The requested class.
        class: String,
        /// The classes it has, comma-separated.
        available: String,
    },
    /// An image that cannot be used as input.
    #[error("image {path}: {reason}")]
    Image {
        /// The image file.
        path: PathBuf,
        /// Why it cannot be used, and what to do.
        reason: String,
    },
    /// A model description or weights that do not fit together.
    #[error("invalid model spec: {0}")]
    InvalidSpec(String),
    /// An error from libtorch, with what was being done.
    #[error("{action}: {source}")]
    Torch {
        /// What was being done.
        action: String,
        /// libtorch's error.
        source: tch::TchError,
    },
    /// A file error from the shared layer.
    #[error(transparent)]
    Core(#[from] tcav_core::CoreError),
}

impl ModelError {
    /// Wraps a libtorch error with what was being done.
    pub fn torch(action: impl Into<String>) -> impl FnOnce(tch::TchError) -> ModelError {
        let action = action.into();
        move |source| ModelError::Torch { action, source }
    }
}

/// Result alias for this crate.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;
