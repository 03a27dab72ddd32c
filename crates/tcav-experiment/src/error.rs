//! Errors of the orchestrator.

use std::path::PathBuf;

/// What can stop an experiment. Every stage's error passes through with its
/// own message, which names the file, set or field at fault.
#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    /// The config file cannot be read.
    #[error("cannot read experiment config {path}: {source}")]
    ConfigRead {
        /// The config file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The config file is not valid TOML for an experiment.
    #[error("malformed experiment config {path}: {message}")]
    ConfigParse {
        /// The config file.
        path: PathBuf,
        /// The parser's message, with line, column and field.
        message: String,
    },
    /// A config value is out of range or inconsistent.
    #[error("invalid experiment config {path}: {message}")]
    ConfigInvalid {
        /// The config file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The experiment asks for something the data does not have.
    #[error("{0}")]
    Mismatch(String),
    /// Shared layer (files, store, layouts).
    #[error(transparent)]
    Core(#[from] tcav_core::CoreError),
    /// Crawling.
    #[error(transparent)]
    Crawl(#[from] tcav_crawl::CrawlError),
    /// Data generation.
    #[error(transparent)]
    Datagen(#[from] tcav_datagen::DatagenError),
    /// Preprocessing.
    #[error(transparent)]
    Preprocess(#[from] tcav_preprocess::PreprocessError),
    /// Model.
    #[error(transparent)]
    Model(#[from] tcav_model::ModelError),
    /// Training.
    #[error(transparent)]
    Train(#[from] tcav_train::TrainError),
    /// Activations and gradients.
    #[error(transparent)]
    Activations(#[from] tcav_activations::ActivationError),
    /// CAVs.
    #[error(transparent)]
    Cav(#[from] tcav_cav::CavError),
    /// Statistics.
    #[error(transparent)]
    Stats(#[from] tcav_stats::StatsError),
    /// Report.
    #[error(transparent)]
    Report(#[from] tcav_report::ReportError),
}

/// Result alias for this crate.
pub type Result<T, E = ExperimentError> = std::result::Result<T, E>;
