//! Wikimedia Commons, searched through the MediaWiki API.
//!
//! One request per batch: `action=query&generator=search&gsrnamespace=6`
//! (the File namespace) `&gsrsearch=…&prop=imageinfo&iiprop=url|size|mime|
//! extmetadata`, continued with whatever the previous answer's `continue`
//! object holds until an answer has none. The licence comes from
//! `extmetadata.LicenseShortName` and the creator from `Artist`, both with
//! their HTML stripped; the page is the file's description page.
//!
//! By default the search is narrowed to bitmaps (`filetype:bitmap`) and the
//! crawler fetches a thumbnail 960 pixels wide rather than the original,
//! which can be tens of megabytes; `thumb_width = 0` fetches originals.
//!
//! Wikimedia's User-Agent policy asks every client for a User-Agent with a
//! contact (a URL or an e-mail address); a crawl with a placeholder one is
//! refused before it starts.

use std::collections::BTreeMap;

use futures_util::future::BoxFuture;
use reqwest::Url;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Candidate, ImageRef, PAGE_MAX_BYTES, Source, SourceContext, base_url_problem, html_text};
use crate::error::CrawlError;

/// Commons in a crawl definition. Every field has a default.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CommonsSpec {
    /// The API endpoint (default `https://commons.wikimedia.org/w/api.php`).
    pub base_url: String,
    /// Files per request (`gsrlimit`), 1 to 50 (default 50).
    pub limit: u32,
    /// Width of the thumbnails fetched instead of originals; 0 fetches the
    /// original files (default 960).
    pub thumb_width: u32,
    /// Search bitmaps only (`filetype:bitmap`), leaving out drawings, PDFs,
    /// audio and video (default true).
    pub bitmaps_only: bool,
    /// The most requests made (default 50).
    pub max_requests: u32,
}

impl Default for CommonsSpec {
    fn default() -> Self {
        CommonsSpec {
            base_url: "https://commons.wikimedia.org/w/api.php".to_owned(),
            limit: 50,
            thumb_width: 960,
            bitmaps_only: true,
            max_requests: 50,
        }
    }
}

impl CommonsSpec {
    pub(super) fn problem(&self) -> Option<(&'static str, String)> {
        if !(1..=50).contains(&self.limit) {
            return Some((
                "limit",
                format!("= {} is outside 1 to 50, the most the API gives with image metadata", self.limit),
            ));
        }
        if self.max_requests == 0 {
            return Some(("max_requests", "is 0: nothing would be asked for; use 1 or more (default 50)".to_owned()));
        }
        base_url_problem("base_url", &self.base_url)
    }
}

/// Refuses a User-Agent without a real contact, as Wikimedia's policy asks.
pub(super) fn check_user_agent(user_agent: &str) -> Result<(), CrawlError> {
    let lower = user_agent.to_ascii_lowercase();
    let has_contact = lower.contains('@') || lower.contains("http://") || lower.contains("https://");
    // Reserved names (RFC 2606) are placeholders, never a reachable contact.
    let placeholder = [".invalid", "example.com", "example.org", "example.net"].iter().any(|p| lower.contains(p));
    if has_contact && !placeholder {
        return Ok(());
    }
    Err(CrawlError::InvalidOptions {
        field: "user_agent",
        problem: format!(
            "= {user_agent:?} has no real contact, and Wikimedia's User-Agent policy requires one for Commons: set `user_agent` in the crawl definition (or pass --user-agent) to something like \"my-tcav-study/1.0 (https://my.site/tcav; me@my.site)\""
        ),
    })
}

/// A Commons search in progress.
pub struct Commons {
    spec: CommonsSpec,
    context: SourceContext,
    /// The `continue` parameters of the last answer; `None` before the
    /// first request.
    continuation: Option<Vec<(String, String)>>,
    requests: u32,
    rank: usize,
    done: bool,
}

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    error: Option<ApiError>,
    #[serde(default)]
    query: Option<Query>,
    #[serde(default, rename = "continue")]
    continuation: Option<serde_json::Map<String, Value>>,
}

#[derive(Deserialize)]
struct ApiError {
    #[serde(default)]
    code: String,
    #[serde(default)]
    info: String,
}

#[derive(Deserialize)]
struct Query {
    #[serde(default)]
    pages: Pages,
}

/// `formatversion=2` lists pages; the older format keys them by page id.
#[derive(Deserialize)]
#[serde(untagged)]
enum Pages {
    List(Vec<FilePage>),
    Map(BTreeMap<String, FilePage>),
}

impl Default for Pages {
    fn default() -> Self {
        Pages::List(Vec::new())
    }
}

#[derive(Deserialize)]
struct FilePage {
    #[serde(default)]
    title: String,
    /// The page's position in the search results.
    #[serde(default)]
    index: Option<i64>,
    #[serde(default)]
    imageinfo: Vec<ImageInfo>,
}

#[derive(Deserialize)]
struct ImageInfo {
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    descriptionurl: Option<String>,
    #[serde(default)]
    width: Option<u32>,
    #[serde(default)]
    height: Option<u32>,
    #[serde(default)]
    mime: Option<String>,
    #[serde(default)]
    thumburl: Option<String>,
    #[serde(default)]
    thumbwidth: Option<u32>,
    #[serde(default)]
    thumbheight: Option<u32>,
    #[serde(default)]
    thumbmime: Option<String>,
    #[serde(default)]
    extmetadata: BTreeMap<String, MetaValue>,
}

#[derive(Deserialize)]
struct MetaValue {
    #[serde(default)]
    value: Value,
}

impl ImageInfo {
    /// An `extmetadata` field as plain text.
    fn meta(&self, name: &str) -> Option<String> {
        match &self.extmetadata.get(name)?.value {
            Value::String(s) => html_text(s),
            Value::Null => None,
            other => Some(other.to_string()),
        }
    }
}

impl Commons {
    /// Prepares the search; nothing is sent yet.
    pub fn open(spec: &CommonsSpec, context: &SourceContext) -> Commons {
        Commons { spec: spec.clone(), context: context.clone(), continuation: None, requests: 0, rank: 0, done: false }
    }

    fn request_url(&self) -> Result<Url, String> {
        let mut url = Url::parse(&self.spec.base_url).map_err(|e| e.to_string())?;
        let search = if self.spec.bitmaps_only {
            format!("filetype:bitmap {}", self.context.query)
        } else {
            self.context.query.clone()
        };
        {
            let mut query = url.query_pairs_mut();
            for (key, value) in [
                ("action", "query"),
                ("format", "json"),
                ("formatversion", "2"),
                ("generator", "search"),
                ("gsrnamespace", "6"),
                ("gsrsearch", &search),
                ("gsrlimit", &self.spec.limit.to_string()),
                ("prop", "imageinfo"),
                ("iiprop", "url|size|mime|extmetadata"),
                ("iiextmetadatafilter", "LicenseShortName|Artist|ObjectName"),
            ] {
                query.append_pair(key, value);
            }
            if self.spec.thumb_width > 0 {
                query.append_pair("iiurlwidth", &self.spec.thumb_width.to_string());
            }
            match &self.continuation {
                Some(pairs) => {
                    for (key, value) in pairs {
                        query.append_pair(key, value);
                    }
                }
                // An empty `continue` asks for the continuation style that
                // hands back every parameter the next request needs.
                None => {
                    query.append_pair("continue", "");
                }
            }
        }
        Ok(url)
    }

    async fn next_answer(&mut self) -> Result<Option<Vec<Candidate>>, CrawlError> {
        if self.done {
            return Ok(None);
        }
        self.requests += 1;
        let label = self.label();
        let url = self.request_url().map_err(|e| self.context.unreadable_answer(&label, &self.spec.base_url, e))?;
        let download = self.context.http.get(url.as_str(), PAGE_MAX_BYTES).await.map_err(|rejection| {
            self.done = true;
            self.context.source_failed(&label, url.as_str(), rejection)
        })?;
        let answer: Answer = serde_json::from_slice(&download.bytes).map_err(|e| {
            self.done = true;
            self.context.unreadable_answer(&label, url.as_str(), format!("the answer is not MediaWiki API JSON: {e}"))
        })?;
        if let Some(error) = answer.error {
            self.done = true;
            let detail = format!("the API answered error `{}`: {}", error.code, error.info);
            return Err(self.context.unreadable_answer(&label, url.as_str(), detail));
        }
        self.continuation = answer.continuation.map(|map| {
            map.into_iter()
                .map(|(key, value)| {
                    let value = match value {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    (key, value)
                })
                .collect()
        });
        if self.continuation.is_none() || self.requests >= self.spec.max_requests {
            self.done = true;
        }
        let mut pages = match answer.query.map(|q| q.pages).unwrap_or_default() {
            Pages::List(pages) => pages,
            Pages::Map(pages) => pages.into_values().collect(),
        };
        // The search's own order; pages keyed by id come in id order.
        pages.sort_by_key(|page| page.index.unwrap_or(i64::MAX));
        let batch: Vec<Candidate> = pages.into_iter().filter_map(|page| self.candidate(page)).collect();
        if batch.is_empty() && self.done {
            return Ok(None);
        }
        Ok(Some(batch))
    }

    fn candidate(&mut self, page: FilePage) -> Option<Candidate> {
        let info = page.imageinfo.into_iter().next()?;
        let (image, mime, width, height) = match info.thumburl.clone().filter(|u| !u.is_empty()) {
            Some(thumb) => (thumb, info.thumbmime.clone().or(info.mime.clone()), info.thumbwidth, info.thumbheight),
            None => (info.url.clone().filter(|u| !u.is_empty())?, info.mime.clone(), info.width, info.height),
        };
        self.rank += 1;
        let mut candidate = Candidate::new(ImageRef::Url(image), self.rank);
        candidate.page_url = info.descriptionurl.clone();
        let title = page.title.strip_prefix("File:").unwrap_or(&page.title).to_owned();
        candidate.title = info.meta("ObjectName").or((!title.is_empty()).then_some(title));
        candidate.licence = info.meta("LicenseShortName");
        candidate.creator = info.meta("Artist");
        candidate.mime = mime;
        candidate.width = width;
        candidate.height = height;
        Some(candidate)
    }
}

impl Source for Commons {
    fn label(&self) -> String {
        "commons".to_owned()
    }

    fn next_batch(&mut self) -> BoxFuture<'_, Result<Option<Vec<Candidate>>, CrawlError>> {
        Box::pin(self.next_answer())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agents_need_a_real_contact() {
        assert!(check_user_agent("my-study/1.0 (https://lab.example.ac.uk/tcav; me@lab.ac.uk)").is_ok());
        assert!(check_user_agent("my-study/1.0 (me@lab.ac.uk)").is_ok());
        for bad in [crate::DEFAULT_USER_AGENT, "my-study/1.0", "bot (https://example.com)", "bot (me@example.org)"] {
            let err = check_user_agent(bad).unwrap_err().to_string();
            assert!(err.contains("user_agent") && err.contains("Wikimedia"), "{bad}: {err}");
        }
    }

    #[test]
    fn requests_ask_for_files_with_licence_metadata_and_pass_continuations_back() {
        let mut context = crate::fetch::tests::context("sobble");
        context.query = "Sobble".into();
        let spec = CommonsSpec { base_url: "http://127.0.0.1:9/w/api.php".into(), limit: 3, ..CommonsSpec::default() };
        let mut source = Commons::open(&spec, &context);
        let pairs =
            |url: Url| -> BTreeMap<String, String> { url.query_pairs().map(|(k, v)| (k.into(), v.into())).collect() };
        let first = pairs(source.request_url().unwrap());
        assert_eq!(first["generator"], "search");
        assert_eq!(first["gsrnamespace"], "6");
        assert_eq!(first["gsrsearch"], "filetype:bitmap Sobble");
        assert_eq!(first["gsrlimit"], "3");
        assert_eq!(first["prop"], "imageinfo");
        assert_eq!(first["iiprop"], "url|size|mime|extmetadata");
        assert_eq!(first["iiurlwidth"], "960");
        assert_eq!(first["continue"], "");
        source.continuation = Some(vec![("gsroffset".into(), "3".into()), ("continue".into(), "gsroffset||".into())]);
        let next = pairs(source.request_url().unwrap());
        assert_eq!((next["gsroffset"].as_str(), next["continue"].as_str()), ("3", "gsroffset||"));
    }

    #[test]
    fn both_page_formats_parse_in_search_order() {
        let v1 = r#"{"query": {"pages": {"9": {"title": "File:B.jpg", "index": 2, "imageinfo": [{"url": "http://u/b.jpg", "mime": "image/jpeg"}]},
                                           "4": {"title": "File:A.png", "index": 1, "imageinfo": [{"url": "http://u/a.png"}]}}}}"#;
        let answer: Answer = serde_json::from_str(v1).unwrap();
        let Pages::Map(pages) = answer.query.unwrap().pages else { panic!("map expected") };
        let mut pages: Vec<FilePage> = pages.into_values().collect();
        pages.sort_by_key(|p| p.index.unwrap_or(i64::MAX));
        assert_eq!(pages.iter().map(|p| p.title.as_str()).collect::<Vec<_>>(), ["File:A.png", "File:B.jpg"]);

        let empty: Answer = serde_json::from_str(r#"{"batchcomplete": true}"#).unwrap();
        assert!(empty.query.is_none() && empty.continuation.is_none() && empty.error.is_none());
    }
}
