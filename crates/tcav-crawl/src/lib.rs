//! The crawling stage: fills class, concept and random sets with candidate
//! images from the web or from the user's own folders, politely and with
//! provenance.
//!
//! Takes a [`CrawlRequest`] per set (the set's name, a query, an ordered
//! list of [`SourceSpec`]s — Openverse, Wikimedia Commons, Bing result
//! pages, a URL list, a local folder — how many images to keep, and
//! [`Filters`]) or a whole [`CrawlDefinition`] (a TOML file of sets), plus
//! [`CrawlOptions`] (user agent, time-outs, concurrency, retries, per-host
//! rate, redirects) and a dataset root.
//!
//! Produces, under the dataset root:
//! * `raw/<set>/<blake3 hex>.<ext>`: one file per distinct image the set
//!   kept, named by its content and by the type its bytes show (never by
//!   anything in a URL);
//! * `raw/<set>/manifest.jsonl`: one line per candidate tried (source,
//!   query, rank, page and image URL, licence, creator, HTTP status, content
//!   type, size, hash, kept or rejected and why) and per source that failed;
//! * `raw/.objects/`: each distinct image once for the whole dataset; set
//!   files are hard links to it, so bytes two sets asked for are stored once
//!   and both manifests record them ([`store`]).
//!
//! A rerun resumes: it skips what the manifest has settled, counts what the
//! folder holds and tops the set up to `max_num`. Later stages read only the
//! set folders.
//!
//! Invariant: this is the only crate in the project that touches the
//! network, and it never leaves a partial file behind: bodies are held in
//! memory until complete and checked, then written atomically, so a crawl
//! stopped at any point (killed, or its future dropped) loses only what was
//! in flight.
//!
//! A crawl request, as a definition would hold it:
//!
//! ```
//! use tcav_crawl::{CrawlOptions, CrawlRequest, ImageType};
//!
//! let request: CrawlRequest = serde_json::from_str(r#"{
//!     "set": "striped",
//!     "query": "zebra stripes texture",
//!     "sources": [
//!         { "kind": "openverse" },
//!         { "kind": "url_list", "path": "concepts/striped/urls.txt" },
//!         { "kind": "local_folder", "path": "concepts/striped/mine" }
//!     ],
//!     "max_num": 200,
//!     "filters": { "min_side": 64, "licences": ["by", "by-sa", "cc0"],
//!                  "allowed_types": ["image/jpeg", "image/png"] }
//! }"#)?;
//! request.validate()?;
//! assert_eq!(request.filters.max_bytes, 20 * 1024 * 1024, "the default cap");
//! assert_eq!(request.filters.allowed_types, [ImageType::Jpeg, ImageType::Png]);
//!
//! async fn fill(request: &CrawlRequest) -> Result<(), tcav_crawl::CrawlError> {
//!     let options = CrawlOptions { user_agent: "my-study/1.0 (me@my.site)".into(), ..CrawlOptions::default() };
//!     let summary = tcav_crawl::crawl(request, &options, "datasets/mine".as_ref()).await?;
//!     if summary.exhausted {
//!         eprintln!("only {} of {} images found", summary.accepted, summary.requested);
//!     }
//!     Ok(())
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The `tcav-crawl` binary runs a definition: `tcav-crawl run
//! datasets/pokemon/crawl.toml`.

#![deny(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used, reason = "in a test, a failed unwrap is a failed test"))]

mod crawl;
pub mod definition;
pub mod error;
pub mod fetch;
pub mod licence;
pub mod manifest;
pub mod request;
mod robots;
pub mod sniff;
pub mod source;
pub mod store;

#[cfg(any(test, feature = "fixture"))]
pub mod fixture;

pub use crawl::{CrawlSummary, Crawler, NoProgress, Progress, crawl, raw_set_dir};
pub use definition::{CrawlDefinition, SetDefinition, SetOutcome};
pub use error::CrawlError;
pub use manifest::{MANIFEST_FILE, ManifestEntry, Reason, Status};
pub use request::{CrawlOptions, CrawlRequest, DEFAULT_MAX_BYTES, DEFAULT_USER_AGENT, Filters};
pub use sniff::ImageType;
pub use source::{Candidate, ImageRef, Source, SourceContext, SourceSpec};
