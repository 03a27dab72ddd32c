//! The crawling stage: fills an image set with candidate images from the web
//! or from the user's own folders.
//!
//! Takes a [`CrawlRequest`] (the set's name, a query, an ordered list of
//! [`SourceSpec`]s, how many images to keep and [`Filters`]) and
//! [`CrawlOptions`] (user agent, time-outs, concurrency, retries, per-host
//! rate). Produces `<root>/raw/<set>/<blake3 hex>.<ext>` files, one per
//! distinct image, named by their content and by the type their bytes show,
//! plus `<root>/raw/<set>/manifest.jsonl` with one line per candidate tried:
//! where it came from, its licence and creator when known, and why it was
//! kept or not. A rerun resumes: it skips what the manifest has settled and
//! tops the set up to `max_num`. Later stages read only the folder.
//!
//! Invariant: this is the only crate that touches the network, and it never
//! leaves a partial file behind: bodies are held in memory until complete
//! and checked, then written atomically.
//!
//! A crawl definition, as an experiment config would hold it:
//!
//! ```
//! use tcav_crawl::{CrawlOptions, CrawlRequest, ImageType};
//!
//! let request: CrawlRequest = serde_json::from_str(r#"{
//!     "set": "striped",
//!     "query": "zebra stripes texture",
//!     "sources": [
//!         { "kind": "url_list", "path": "concepts/striped/urls.txt" },
//!         { "kind": "local_folder", "path": "concepts/striped/mine" }
//!     ],
//!     "max_num": 200,
//!     "filters": { "min_bytes": 2048, "allowed_types": ["image/jpeg", "image/png"] }
//! }"#)?;
//! request.validate()?;
//! assert_eq!(request.filters.max_bytes, 20 * 1024 * 1024, "the default cap");
//! assert_eq!(request.filters.allowed_types, [ImageType::Jpeg, ImageType::Png]);
//!
//! async fn fill(request: &CrawlRequest) -> Result<(), tcav_crawl::CrawlError> {
//!     let summary = tcav_crawl::crawl(request, &CrawlOptions::default(), "data".as_ref()).await?;
//!     if summary.exhausted {
//!         eprintln!("only {} of {} images found", summary.accepted, summary.requested);
//!     }
//!     Ok(())
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used, reason = "in a test, a failed unwrap is a failed test"))]

mod crawl;
pub mod error;
pub mod fetch;
pub mod manifest;
pub mod request;
pub mod sniff;
pub mod source;

#[cfg(test)]
mod fixture;

pub use crawl::{CrawlSummary, crawl, raw_set_dir};
pub use error::CrawlError;
pub use manifest::{MANIFEST_FILE, ManifestEntry, Reason, Status};
pub use request::{CrawlOptions, CrawlRequest, DEFAULT_MAX_BYTES, DEFAULT_USER_AGENT, Filters};
pub use sniff::ImageType;
pub use source::{Candidate, ImageRef, Source, SourceContext, SourceSpec};
