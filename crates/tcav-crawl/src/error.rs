//! The error type of the crawling stage.
//!
//! These are errors that stop a crawl: a bad request, an unreadable source
//! or manifest, a disk that cannot be written. A single image that cannot be
//! had is not an error: it becomes a rejected line in the manifest.

use std::path::PathBuf;

use tcav_core::CoreError;

/// What can stop a crawl.
#[derive(Debug, thiserror::Error)]
pub enum CrawlError {
    /// A field of the crawl request that cannot be used.
    #[error("crawl request for set `{set}`: `{field}` {problem}")]
    InvalidRequest {
        /// The set the request is for.
        set: String,
        /// The offending field.
        field: &'static str,
        /// What is wrong with it and how to fix it.
        problem: String,
    },
    /// A crawl option that cannot be used.
    #[error("crawl option `{field}` {problem}")]
    InvalidOptions {
        /// The offending option.
        field: &'static str,
        /// What is wrong with it and how to fix it.
        problem: String,
    },
    /// A source named in the crawl request that cannot be read.
    #[error(
        "cannot read the {what} {path} named in the crawl request for set `{set}`: {source}; fix the path in the crawl definition"
    )]
    SourceUnreadable {
        /// The set the request is for.
        set: String,
        /// What kind of source it is ("URL list", "local folder").
        what: &'static str,
        /// The path that was named.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A line of an existing manifest that does not parse.
    #[error(
        "line {line} of the crawl manifest {path} is not a crawl record ({source}); fix or delete that line, and the crawl will try its URL again"
    )]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// The 1-based line number.
        line: usize,
        /// The parse error.
        source: serde_json::Error,
    },
    /// An I/O error on a named path.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done ("appending to", "listing").
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An error from the shared layer (for example an atomic write).
    #[error(transparent)]
    Core(#[from] CoreError),
    /// The HTTP client could not be built from the crawl options.
    #[error("cannot set up the HTTP client: {source}; check the user agent and timeouts in the crawl options")]
    HttpClient {
        /// The underlying error.
        source: reqwest::Error,
    },
    /// A source's search request failed: the request could not be had, its
    /// answer did not parse, or robots.txt forbids it. The crawl records it
    /// in the manifest and goes on with the set's next source.
    #[error(
        "source `{source_label}` of set `{set}` stopped at {url}: {detail}; the crawl went on with the set's next source"
    )]
    SourceFailed {
        /// The set being crawled.
        set: String,
        /// The source's label.
        source_label: String,
        /// The request that failed.
        url: String,
        /// The manifest reason ([`Reason::SourceFailed`] or
        /// [`Reason::RobotsDisallowed`]).
        ///
        /// [`Reason::SourceFailed`]: crate::Reason::SourceFailed
        /// [`Reason::RobotsDisallowed`]: crate::Reason::RobotsDisallowed
        reason: crate::manifest::Reason,
        /// What went wrong.
        detail: String,
        /// Whether a rerun should expect a different answer.
        retryable: bool,
    },
    /// An HTML source's first result page held no results it could read.
    #[error(
        "source `{source_label}` of set `{set}`: 0 results: the page layout may have changed ({url}); update its parser in tcav-crawl/src/source/, or use another source; the crawl went on with the set's next source"
    )]
    LayoutChanged {
        /// The set being crawled.
        set: String,
        /// The source's label.
        source_label: String,
        /// The page that held no results.
        url: String,
    },
    /// A crawl definition file that cannot be used.
    #[error("crawl definition {path}: {problem}")]
    Definition {
        /// The definition file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        problem: String,
    },
    /// A background task (a download or an image write) died before
    /// finishing, which only a bug or a shutting-down runtime causes.
    #[error("{what} stopped before it finished: {source}; run the crawl again (it resumes from the manifest)")]
    TaskStopped {
        /// What the task was doing.
        what: String,
        /// Why it stopped.
        source: tokio::task::JoinError,
    },
}

impl CrawlError {
    /// Wraps an I/O error with the action and path it happened on.
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        CrawlError::Io { action, path: path.into(), source }
    }
}
