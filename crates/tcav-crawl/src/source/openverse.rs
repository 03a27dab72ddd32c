//! The Openverse images API: openly licensed images, each with its licence,
//! creator and landing page.
//!
//! `GET {base_url}/v1/images/?q=…&page=N&page_size=P[&license=by,cc0]`
//! answers `{"page_count": …, "results": [{"url", "foreign_landing_url",
//! "title", "creator", "license", "license_version", "filetype", "width",
//! "height", …}]}`. Pages are asked for one at a time, only as the crawl
//! needs more candidates, until a page comes back empty, `page_count` is
//! reached, or `max_pages`. Anonymous clients get at most 20 results a
//! page, and deep pages may be refused (401): that ends the source with a
//! manifest line saying so.

use futures_util::future::BoxFuture;
use reqwest::Url;
use serde::{Deserialize, Serialize};

use super::{Candidate, ImageRef, PAGE_MAX_BYTES, Source, SourceContext, base_url_problem};
use crate::error::CrawlError;
use crate::licence::{OPENVERSE_CODES, licence_code, openverse_licence_name};

/// Openverse in a crawl definition. Every field has a default.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpenverseSpec {
    /// The API's root (default `https://api.openverse.org`).
    pub base_url: String,
    /// Results per page, 1 to 20 (the anonymous limit; default 20).
    pub page_size: u32,
    /// Licence codes to ask the API for (`license=`); empty asks for the
    /// crawl request's `filters.licences`, where Openverse knows them.
    pub license: Vec<String>,
    /// Licence types to ask for (`license_type=`: `commercial`,
    /// `modification`, `all`, `all-cc`); empty asks for none.
    pub license_type: Vec<String>,
    /// The most pages asked for (default 50).
    pub max_pages: u32,
}

impl Default for OpenverseSpec {
    fn default() -> Self {
        OpenverseSpec {
            base_url: "https://api.openverse.org".to_owned(),
            page_size: 20,
            license: Vec::new(),
            license_type: Vec::new(),
            max_pages: 50,
        }
    }
}

impl OpenverseSpec {
    pub(super) fn problem(&self) -> Option<(&'static str, String)> {
        if !(1..=20).contains(&self.page_size) {
            return Some((
                "page_size",
                format!("= {} is outside 1 to 20, the most Openverse gives anonymous clients", self.page_size),
            ));
        }
        if self.max_pages == 0 {
            return Some(("max_pages", "is 0: nothing would be asked for; use 1 or more (default 50)".to_owned()));
        }
        base_url_problem("base_url", &self.base_url)
    }
}

/// An Openverse search in progress.
pub struct Openverse {
    spec: OpenverseSpec,
    context: SourceContext,
    licences: Vec<String>,
    page: u32,
    rank: usize,
    done: bool,
}

#[derive(Deserialize)]
struct Page {
    results: Vec<Hit>,
    #[serde(default)]
    page_count: Option<u64>,
}

#[derive(Deserialize)]
struct Hit {
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    foreign_landing_url: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    creator: Option<String>,
    #[serde(default)]
    license: Option<String>,
    #[serde(default)]
    license_version: Option<String>,
    #[serde(default)]
    filetype: Option<String>,
    #[serde(default)]
    width: Option<u32>,
    #[serde(default)]
    height: Option<u32>,
}

impl Openverse {
    /// Prepares the search; nothing is sent yet.
    pub fn open(spec: &OpenverseSpec, context: &SourceContext) -> Openverse {
        let licences = if spec.license.is_empty() {
            let mut codes: Vec<String> = Vec::new();
            for code in context.filters.licences.iter().map(|l| licence_code(l)) {
                if OPENVERSE_CODES.contains(&code.as_str()) && !codes.contains(&code) {
                    codes.push(code);
                }
            }
            codes
        } else {
            spec.license.clone()
        };
        Openverse { spec: spec.clone(), context: context.clone(), licences, page: 0, rank: 0, done: false }
    }

    fn page_url(&self, page: u32) -> Result<Url, String> {
        let mut url = Url::parse(&format!("{}/v1/images/", self.spec.base_url.trim_end_matches('/')))
            .map_err(|e| e.to_string())?;
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("q", &self.context.query);
            query.append_pair("page", &page.to_string());
            query.append_pair("page_size", &self.spec.page_size.to_string());
            if !self.licences.is_empty() {
                query.append_pair("license", &self.licences.join(","));
            }
            if !self.spec.license_type.is_empty() {
                query.append_pair("license_type", &self.spec.license_type.join(","));
            }
        }
        Ok(url)
    }

    async fn next_page(&mut self) -> Result<Option<Vec<Candidate>>, CrawlError> {
        if self.done {
            return Ok(None);
        }
        self.page += 1;
        let label = self.label();
        let url =
            self.page_url(self.page).map_err(|e| self.context.unreadable_answer(&label, &self.spec.base_url, e))?;
        let download = self.context.http.get(url.as_str(), PAGE_MAX_BYTES).await;
        let download = download.map_err(|rejection| {
            self.done = true;
            self.context.source_failed(&label, url.as_str(), rejection)
        })?;
        let page: Page = serde_json::from_slice(&download.bytes).map_err(|e| {
            self.done = true;
            self.context.unreadable_answer(
                &label,
                url.as_str(),
                format!("the answer is not an Openverse result page: {e}"),
            )
        })?;
        let last_page = page.page_count.is_some_and(|count| u64::from(self.page) >= count);
        if page.results.is_empty() || last_page || self.page >= self.spec.max_pages {
            self.done = true;
        }
        if page.results.is_empty() {
            return Ok(None);
        }
        let batch = page
            .results
            .into_iter()
            .filter_map(|hit| {
                let image = hit.url.filter(|u| !u.is_empty())?;
                self.rank += 1;
                let mut candidate = Candidate::new(ImageRef::Url(image), self.rank);
                candidate.page_url = hit.foreign_landing_url;
                candidate.title = hit.title;
                candidate.creator = hit.creator;
                candidate.licence =
                    hit.license.map(|code| openverse_licence_name(&code, hit.license_version.as_deref()));
                candidate.mime = hit.filetype.as_deref().map(filetype_mime);
                candidate.width = hit.width;
                candidate.height = hit.height;
                Some(candidate)
            })
            .collect();
        Ok(Some(batch))
    }
}

/// Openverse's `filetype` (an extension) as a media type.
fn filetype_mime(filetype: &str) -> String {
    match filetype.to_ascii_lowercase().as_str() {
        "jpg" | "jpeg" => "image/jpeg".to_owned(),
        "svg" => "image/svg+xml".to_owned(),
        "tif" | "tiff" => "image/tiff".to_owned(),
        other => format!("image/{other}"),
    }
}

impl Source for Openverse {
    fn label(&self) -> String {
        "openverse".to_owned()
    }

    fn next_batch(&mut self) -> BoxFuture<'_, Result<Option<Vec<Candidate>>, CrawlError>> {
        Box::pin(self.next_page())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_urls_carry_the_query_paging_and_licence_filters() {
        let mut context = crate::fetch::tests::context("red");
        context.query = "red apple".into();
        context.filters.licences = vec!["CC BY 4.0".into(), "cc0".into(), "GFDL".into(), "by".into()];
        let spec = OpenverseSpec { base_url: "http://127.0.0.1:9/root/".into(), ..OpenverseSpec::default() };
        let source = Openverse::open(&spec, &context);
        let url = source.page_url(3).unwrap();
        assert_eq!(url.path(), "/root/v1/images/");
        let pairs: Vec<(String, String)> = url.query_pairs().map(|(k, v)| (k.into(), v.into())).collect();
        let expected = [("q", "red apple"), ("page", "3"), ("page_size", "20"), ("license", "by,cc0")];
        assert_eq!(pairs, expected.map(|(k, v)| (k.to_owned(), v.to_owned())));

        let own = OpenverseSpec { license: vec!["by-sa".into()], license_type: vec!["commercial".into()], ..spec };
        let url = Openverse::open(&own, &context).page_url(1).unwrap();
        assert!(url.as_str().ends_with("&license=by-sa&license_type=commercial"), "{url}");
    }

    #[test]
    fn filetypes_become_media_types() {
        assert_eq!(filetype_mime("JPG"), "image/jpeg");
        assert_eq!(filetype_mime("png"), "image/png");
        assert_eq!(filetype_mime("svg"), "image/svg+xml");
    }
}
