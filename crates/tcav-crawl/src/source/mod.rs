//! Where candidate images come from.
//!
//! A [`Source`] hands out batches of [`Candidate`]s, best first, until it
//! runs out. It only *finds* images: fetching, checking, storing and
//! recording them is the same for every source and lives in the crawl loop.
//!
//! Adding a source means writing one file in this folder that defines a
//! serde spec struct and a [`Source`] implementation, then naming it once in
//! [`SourceSpec`] and in [`SourceSpec::open`]. A source that calls a web API
//! uses [`SourceContext::http`], so it shares the crawl's user agent,
//! time-outs, retries and per-host rate limits.

mod local_folder;
mod url_list;

use std::path::PathBuf;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

pub use local_folder::{LocalFolder, LocalFolderSpec};
pub use url_list::{UrlList, UrlListSpec};

use crate::error::CrawlError;
use crate::fetch::Http;

/// Where a candidate image lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageRef {
    /// A URL to download (only `http` and `https` are fetched; anything else
    /// is recorded as rejected).
    Url(String),
    /// A file the user already has, copied without touching the network.
    File(PathBuf),
}

impl ImageRef {
    /// The identity of the image in the manifest: the URL, or a `file://`
    /// URL for local files. Resuming skips candidates by this string.
    pub fn manifest_url(&self) -> String {
        match self {
            ImageRef::Url(url) => url.clone(),
            ImageRef::File(path) => {
                reqwest::Url::from_file_path(path).map_or_else(|()| format!("file://{}", path.display()), |u| u.to_string())
            }
        }
    }
}

/// One image a source suggests, with what is known about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// The image itself.
    pub image: ImageRef,
    /// The page the image was found on, when known.
    pub page_url: Option<String>,
    /// The image's title, when known.
    pub title: Option<String>,
    /// The image's licence, when known (for example `CC BY-SA 4.0`).
    pub licence: Option<String>,
    /// Who made the image, when known.
    pub creator: Option<String>,
    /// The 1-based position in the source's own order.
    pub rank: usize,
}

impl Candidate {
    /// A candidate with only an image and a rank.
    pub fn new(image: ImageRef, rank: usize) -> Self {
        Candidate { image, page_url: None, title: None, licence: None, creator: None, rank }
    }
}

/// A supply of candidates.
pub trait Source: Send {
    /// A short label for the manifest, such as `url_list:urls.txt`.
    fn label(&self) -> String;

    /// The next batch of candidates, or `None` once the source is exhausted.
    /// A batch may be empty (a result page whose hits were all filtered out)
    /// without the source being exhausted.
    fn next_batch(&mut self) -> BoxFuture<'_, Result<Option<Vec<Candidate>>, CrawlError>>;
}

/// What a source may use while it runs.
#[derive(Clone)]
pub struct SourceContext {
    /// The set being crawled, for error messages.
    pub set: String,
    /// The search query of the crawl request.
    pub query: String,
    /// The crawl's HTTP client, for sources that call web APIs.
    pub http: Http,
}

/// A source as written in a crawl definition, tagged by `kind`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceSpec {
    /// A text file of image URLs, one per line.
    UrlList(UrlListSpec),
    /// A folder of images the user already has.
    LocalFolder(LocalFolderSpec),
}

impl SourceSpec {
    /// Opens the source, reading whatever it needs up front so that a wrong
    /// path fails before any download starts.
    pub async fn open(&self, context: &SourceContext) -> Result<Box<dyn Source>, CrawlError> {
        Ok(match self {
            SourceSpec::UrlList(spec) => Box::new(UrlList::open(spec, context).await?),
            SourceSpec::LocalFolder(spec) => Box::new(LocalFolder::open(spec, context).await?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_are_tagged_by_kind_and_refuse_unknown_fields() {
        let spec: SourceSpec = serde_json::from_str(r#"{"kind": "local_folder", "path": "mine"}"#).unwrap();
        assert_eq!(spec, SourceSpec::LocalFolder(LocalFolderSpec { path: "mine".into() }));
        let spec: SourceSpec = serde_json::from_str(r#"{"kind": "url_list", "path": "u.txt"}"#).unwrap();
        assert_eq!(spec, SourceSpec::UrlList(UrlListSpec { path: "u.txt".into() }));
        assert!(serde_json::from_str::<SourceSpec>(r#"{"kind": "url_list", "path": "u", "x": 1}"#).is_err());
        assert!(serde_json::from_str::<SourceSpec>(r#"{"kind": "bing", "path": "u"}"#).is_err());
    }

    #[test]
    fn local_files_are_identified_by_file_urls() {
        let image = ImageRef::File(PathBuf::from("/data/my pics/a.png"));
        assert_eq!(image.manifest_url(), "file:///data/my%20pics/a.png");
        assert_eq!(ImageRef::Url("https://x/a.png".into()).manifest_url(), "https://x/a.png");
    }
}
