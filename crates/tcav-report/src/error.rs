//! The error type of the report stage.

use std::path::PathBuf;

use tcav_core::CoreError;

/// What can go wrong when checking, writing or reading a report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A field of the report's header (not of a result row) is invalid.
    #[error("report field `{field}`: {problem}")]
    InvalidField {
        /// The field, as named in the JSON file (for example `alpha`).
        field: String,
        /// What is wrong and how to fix it.
        problem: String,
    },
    /// One result row is invalid.
    #[error("report result #{index} (class `{class}`, layer `{layer}`, concept `{concept}`): {problem}")]
    InvalidResult {
        /// The row's position in `results`, counted from 0.
        index: usize,
        /// The row's class.
        class: String,
        /// The row's layer (bottleneck).
        layer: String,
        /// The row's concept.
        concept: String,
        /// What is wrong and how to fix it.
        problem: String,
    },
    /// One stability row is invalid.
    #[error("report stability row #{index} (class `{class}`, layer `{layer}`, concept `{concept}`): {problem}")]
    InvalidStability {
        /// The row's position in `stability`, counted from 0.
        index: usize,
        /// The row's class.
        class: String,
        /// The row's layer (bottleneck).
        layer: String,
        /// The row's concept.
        concept: String,
        /// What is wrong and how to fix it.
        problem: String,
    },
    /// The bundled chart font could not be loaded.
    #[error(
        "the chart font bundled in tcav-report (assets/DejaVuSans.ttf) cannot be parsed: restore the file from version control and rebuild"
    )]
    Font,
    /// Drawing or encoding a chart failed.
    #[error("drawing chart {path}: {message}; check that the folder is writable and has free space")]
    Chart {
        /// The chart that was being drawn.
        path: PathBuf,
        /// The drawing library's message.
        message: String,
    },
    /// Drawing an SVG chart for the HTML report failed.
    #[error(
        "drawing {what} as SVG: {message}; the bundled font or the chart code is at fault, so report this with the report.json"
    )]
    Svg {
        /// Which chart.
        what: String,
        /// The drawing library's message.
        message: String,
    },
    /// An image to be shown as a thumbnail could not be read or encoded.
    #[error(
        "thumbnail of {path}: {message}; check that the file exists and is a PNG, JPEG, GIF, WebP or BMP image, or leave it out of the sensitive images"
    )]
    Image {
        /// The image file.
        path: PathBuf,
        /// The image library's message.
        message: String,
    },
    /// Reading or writing a file failed.
    #[error(transparent)]
    Core(#[from] CoreError),
}

/// Result alias for this crate.
pub type Result<T, E = ReportError> = std::result::Result<T, E>;
