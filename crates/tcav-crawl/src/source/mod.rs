//! Where candidate images come from.
//!
//! A [`Source`] hands out batches of [`Candidate`]s, best first, until it
//! runs out. It only *finds* images: fetching, checking, storing and
//! recording them is the same for every source and lives in the crawl loop.
//!
//! Adding a source means writing one file in this folder that defines a
//! serde spec struct and a [`Source`] implementation, then naming it once in
//! [`SourceSpec`] and in its three `match`es. A source that calls a web API
//! uses [`SourceContext::http`], so it shares the crawl's user agent,
//! time-outs, retries and per-host rate limits; a source that reads HTML
//! pages uses [`Http::get_obeying_robots`] and marks its candidates
//! [`Candidate::obey_robots`]. Every web source's base URL is part of its
//! spec, defaulting to the real public endpoint, so tests point it at a
//! loopback server.
//!
//! A source that cannot go on (its request failed, its answer does not
//! parse) returns [`CrawlError::SourceFailed`] or, for an HTML page with no
//! results, [`CrawlError::LayoutChanged`]: the crawl records that in the
//! manifest and moves to the set's next source. Running out is `Ok(None)`.

mod bing;
mod commons;
mod local_folder;
mod openverse;
mod url_list;

use std::path::PathBuf;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

pub use bing::{Bing, BingSpec};
pub use commons::{Commons, CommonsSpec};
pub use local_folder::{LocalFolder, LocalFolderSpec};
pub use openverse::{Openverse, OpenverseSpec};
pub use url_list::{UrlList, UrlListSpec};

use crate::error::CrawlError;
use crate::fetch::{Http, Rejection};
use crate::manifest::Reason;
use crate::request::{CrawlRequest, Filters};

/// The cap on one search page or API answer.
const PAGE_MAX_BYTES: u64 = 8 * 1024 * 1024;

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
            ImageRef::File(path) => reqwest::Url::from_file_path(path)
                .map_or_else(|()| format!("file://{}", path.display()), |u| u.to_string()),
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
    /// The media type the source declares for the image, when known.
    pub mime: Option<String>,
    /// Width in pixels, when the source says.
    pub width: Option<u32>,
    /// Height in pixels, when the source says.
    pub height: Option<u32>,
    /// Whether the image's host's robots.txt must allow fetching it (true
    /// for images found by scraping HTML pages).
    pub obey_robots: bool,
    /// The 1-based position in the source's own order.
    pub rank: usize,
}

impl Candidate {
    /// A candidate with only an image and a rank.
    pub fn new(image: ImageRef, rank: usize) -> Self {
        Candidate {
            image,
            page_url: None,
            title: None,
            licence: None,
            creator: None,
            mime: None,
            width: None,
            height: None,
            obey_robots: false,
            rank,
        }
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
    /// The crawl request's filters, for sources that can ask their API to
    /// apply some of them.
    pub filters: Filters,
    /// The crawl's HTTP client, for sources that call web APIs.
    pub http: Http,
}

impl SourceContext {
    /// A search request's failure as the error that makes the crawl record
    /// it and move to the next source.
    pub fn source_failed(&self, label: &str, url: &str, rejection: Rejection) -> CrawlError {
        let reason =
            if rejection.reason == Reason::RobotsDisallowed { Reason::RobotsDisallowed } else { Reason::SourceFailed };
        CrawlError::SourceFailed {
            set: self.set.clone(),
            source_label: label.to_owned(),
            url: url.to_owned(),
            reason,
            detail: rejection.detail,
            retryable: rejection.retryable,
        }
    }

    /// An answer that arrived but cannot be read.
    pub fn unreadable_answer(&self, label: &str, url: &str, detail: String) -> CrawlError {
        // A malformed answer is most likely a passing fault (a proxy's error
        // page, a deploy), so a rerun asks again.
        CrawlError::SourceFailed {
            set: self.set.clone(),
            source_label: label.to_owned(),
            url: url.to_owned(),
            reason: Reason::SourceFailed,
            detail,
            retryable: true,
        }
    }
}

/// A source as written in a crawl definition, tagged by `kind`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceSpec {
    /// The Openverse images API: openly licensed images with licence and
    /// creator.
    Openverse(OpenverseSpec),
    /// Wikimedia Commons, searched through the MediaWiki API.
    Commons(CommonsSpec),
    /// Bing image search result pages (HTML; licences unknown).
    Bing(BingSpec),
    /// A text file of image URLs, one per line.
    UrlList(UrlListSpec),
    /// A folder of images the user already has.
    LocalFolder(LocalFolderSpec),
}

impl SourceSpec {
    /// Opens the source, reading whatever it needs up front so that a wrong
    /// path fails before any download starts. Web sources send nothing
    /// until asked for their first batch.
    pub async fn open(&self, context: &SourceContext) -> Result<Box<dyn Source>, CrawlError> {
        Ok(match self {
            SourceSpec::Openverse(spec) => Box::new(Openverse::open(spec, context)),
            SourceSpec::Commons(spec) => Box::new(Commons::open(spec, context)),
            SourceSpec::Bing(spec) => Box::new(Bing::open(spec, context)),
            SourceSpec::UrlList(spec) => Box::new(UrlList::open(spec, context).await?),
            SourceSpec::LocalFolder(spec) => Box::new(LocalFolder::open(spec, context).await?),
        })
    }

    /// Whether the source searches with the request's query; the others (URL
    /// list, local folder) give the same candidates whatever it is, so a
    /// request with several queries opens them once.
    pub fn searches(&self) -> bool {
        match self {
            SourceSpec::Openverse(_) | SourceSpec::Commons(_) | SourceSpec::Bing(_) => true,
            SourceSpec::UrlList(_) | SourceSpec::LocalFolder(_) => false,
        }
    }

    /// Checks the spec's own fields, with errors naming the request's set.
    pub fn check(&self, request: &CrawlRequest) -> Result<(), CrawlError> {
        let problem = match self {
            SourceSpec::Openverse(spec) => spec.problem(),
            SourceSpec::Commons(spec) => spec.problem(),
            SourceSpec::Bing(spec) => spec.problem(),
            SourceSpec::UrlList(_) | SourceSpec::LocalFolder(_) => None,
        };
        match problem {
            Some((field, problem)) => Err(CrawlError::InvalidRequest { set: request.set.to_string(), field, problem }),
            None => Ok(()),
        }
    }

    /// Checks that the crawl's user agent meets the source's policy
    /// (Wikimedia requires a contact).
    pub fn check_user_agent(&self, user_agent: &str) -> Result<(), CrawlError> {
        match self {
            SourceSpec::Commons(_) => commons::check_user_agent(user_agent),
            _ => Ok(()),
        }
    }
}

/// Whether `base` is a usable base URL for a web source, as a problem to
/// report on `field`.
fn base_url_problem(field: &'static str, base: &str) -> Option<(&'static str, String)> {
    match reqwest::Url::parse(base) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => None,
        _ => Some((field, format!("= {base:?} is not an http(s) URL; leave it out for the public endpoint"))),
    }
}

/// The text of an HTML fragment (a Commons `Artist` field, say), entities
/// decoded and white space collapsed; `None` when nothing is left.
pub(crate) fn html_text(fragment: &str) -> Option<String> {
    let html = scraper::Html::parse_fragment(fragment);
    let text: String = html.root_element().text().collect();
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    (!text.is_empty()).then_some(text)
}

/// Candidates a source that knows its whole list up front (URL list, local
/// folder) hands out per batch: small enough that a crawl that needs only a
/// few images does not queue the whole list.
pub(crate) const LIST_BATCH: usize = 64;

/// The next batch of such a source's remaining candidates; `None` once
/// they are all handed out.
pub(crate) fn take_batch(
    remaining: &mut std::collections::VecDeque<Candidate>,
) -> BoxFuture<'static, Result<Option<Vec<Candidate>>, CrawlError>> {
    let batch: Vec<Candidate> = remaining.drain(..remaining.len().min(LIST_BATCH)).collect();
    Box::pin(async move { Ok((!batch.is_empty()).then_some(batch)) })
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
        assert!(serde_json::from_str::<SourceSpec>(r#"{"kind": "flickr"}"#).is_err());
    }

    #[test]
    fn web_sources_default_to_the_public_endpoints() {
        let open: SourceSpec = toml::from_str("kind = \"openverse\"").unwrap();
        let SourceSpec::Openverse(spec) = open else { panic!("openverse expected") };
        assert_eq!(spec.base_url, "https://api.openverse.org");
        let commons: SourceSpec = toml::from_str("kind = \"commons\"").unwrap();
        let SourceSpec::Commons(spec) = commons else { panic!("commons expected") };
        assert_eq!(spec.base_url, "https://commons.wikimedia.org/w/api.php");
        let bing: SourceSpec = toml::from_str("kind = \"bing\"").unwrap();
        let SourceSpec::Bing(spec) = bing else { panic!("bing expected") };
        assert_eq!(spec.base_url, "https://www.bing.com/images/async");
        let moved: SourceSpec = toml::from_str("kind = \"openverse\"\nbase_url = \"http://127.0.0.1:9/ov\"").unwrap();
        assert!(
            matches!(moved, SourceSpec::Openverse(OpenverseSpec { ref base_url, .. }) if base_url == "http://127.0.0.1:9/ov")
        );
    }

    #[test]
    fn bad_base_urls_are_named() {
        let request: CrawlRequest = serde_json::from_str(
            r#"{"set": "red", "query": "red", "sources": [{"kind": "openverse", "base_url": "ftp://x"}], "max_num": 3}"#,
        )
        .unwrap();
        let err = request.validate().unwrap_err().to_string();
        assert!(err.contains("`base_url`") && err.contains("red"), "{err}");
    }

    #[test]
    fn html_fragments_become_plain_text() {
        let artist =
            r#"<a href="//commons.wikimedia.org/wiki/User:Ash" title="User:Ash">Ash  K.</a> &amp; <span>Misty</span>"#;
        assert_eq!(html_text(artist).as_deref(), Some("Ash K. & Misty"));
        assert_eq!(html_text("  <br/> ").as_deref(), None);
        assert_eq!(html_text("plain").as_deref(), Some("plain"));
    }

    #[test]
    fn local_files_are_identified_by_file_urls() {
        let image = ImageRef::File(PathBuf::from("/data/my pics/a.png"));
        assert_eq!(image.manifest_url(), "file:///data/my%20pics/a.png");
        assert_eq!(ImageRef::Url("https://x/a.png".into()).manifest_url(), "https://x/a.png");
    }
}
