//! Bing image search result pages, scraped.
//!
//! `GET {base_url}?q=…&first=N&count=C` answers an HTML page whose results
//! are anchors `<a class="iusc" m="{…}">`; the `m` attribute holds JSON with
//! `murl` (the image), `purl` (the page it is on) and `t` (its title). Every
//! image URL is kept, whatever its extension (or none): the crawler judges
//! files by their bytes.
//!
//! This is the one source that parses a page meant for people, so two
//! things differ from the APIs. Result pages and the images they list are
//! fetched only where robots.txt allows. And a first page with no readable
//! result is the distinct error [`CrawlError::LayoutChanged`], not "no
//! results": it is far more likely that Bing changed its markup than that
//! a search found nothing. Licences are unknown, so a crawl with
//! `filters.licences` keeps nothing from Bing.

use std::collections::{BTreeMap, HashSet};

use futures_util::future::BoxFuture;
use reqwest::Url;
use scraper::{Html, Selector};
use serde::{Deserialize, Serialize};

use super::{Candidate, ImageRef, PAGE_MAX_BYTES, Source, SourceContext, base_url_problem};
use crate::error::CrawlError;

/// Bing in a crawl definition. Every field has a default.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BingSpec {
    /// The result page endpoint (default
    /// `https://www.bing.com/images/async`).
    pub base_url: String,
    /// Results asked for per page (`count`, default 35).
    pub page_size: u32,
    /// The most pages asked for (default 20).
    pub max_pages: u32,
    /// Extra query parameters, such as Bing's `qft` filters.
    pub params: BTreeMap<String, String>,
}

impl Default for BingSpec {
    fn default() -> Self {
        BingSpec {
            base_url: "https://www.bing.com/images/async".to_owned(),
            page_size: 35,
            max_pages: 20,
            params: BTreeMap::new(),
        }
    }
}

impl BingSpec {
    pub(super) fn problem(&self) -> Option<(&'static str, String)> {
        if self.page_size == 0 || self.max_pages == 0 {
            return Some(("page_size", "and `max_pages` must be at least 1 (defaults 35 and 20)".to_owned()));
        }
        if let Some(reserved) = ["q", "first", "count"].into_iter().find(|k| self.params.contains_key(*k)) {
            return Some(("params", format!("sets `{reserved}`, which the source sets itself; remove it")));
        }
        base_url_problem("base_url", &self.base_url)
    }
}

/// A Bing search in progress.
pub struct Bing {
    spec: BingSpec,
    context: SourceContext,
    /// The offset of the next page (`first`).
    offset: usize,
    pages: u32,
    seen: HashSet<String>,
    rank: usize,
    done: bool,
}

/// What one result anchor's `m` attribute says.
#[derive(Debug, PartialEq, Eq, Deserialize)]
struct Hit {
    #[serde(default)]
    murl: Option<String>,
    #[serde(default)]
    purl: Option<String>,
    #[serde(default)]
    t: Option<String>,
}

/// The results of one page: how many result anchors it has, and the hits
/// whose `m` names an image.
fn parse_page(html: &str) -> (usize, Vec<Hit>) {
    let document = Html::parse_document(html);
    // A fixed, valid selector: parsing it cannot fail.
    let Ok(anchors) = Selector::parse("a.iusc") else { return (0, Vec::new()) };
    let mut count = 0;
    let mut hits = Vec::new();
    for anchor in document.select(&anchors) {
        count += 1;
        let Some(m) = anchor.value().attr("m") else { continue };
        match serde_json::from_str::<Hit>(m) {
            Ok(hit) if hit.murl.as_deref().is_some_and(|u| !u.trim().is_empty()) => hits.push(hit),
            Ok(_) => {}
            Err(e) => tracing::debug!("a Bing result's `m` attribute is not JSON ({e}); skipping it"),
        }
    }
    (count, hits)
}

impl Bing {
    /// Prepares the search; nothing is sent yet.
    pub fn open(spec: &BingSpec, context: &SourceContext) -> Bing {
        Bing {
            spec: spec.clone(),
            context: context.clone(),
            offset: 0,
            pages: 0,
            seen: HashSet::new(),
            rank: 0,
            done: false,
        }
    }

    fn page_url(&self) -> Result<Url, String> {
        let mut url = Url::parse(&self.spec.base_url).map_err(|e| e.to_string())?;
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("q", &self.context.query);
            query.append_pair("first", &self.offset.to_string());
            query.append_pair("count", &self.spec.page_size.to_string());
            for (key, value) in &self.spec.params {
                query.append_pair(key, value);
            }
        }
        Ok(url)
    }

    async fn next_page(&mut self) -> Result<Option<Vec<Candidate>>, CrawlError> {
        if self.done {
            return Ok(None);
        }
        let label = self.label();
        let url = self.page_url().map_err(|e| self.context.unreadable_answer(&label, &self.spec.base_url, e))?;
        let download =
            self.context.http.get_obeying_robots(url.as_str(), PAGE_MAX_BYTES).await.map_err(|rejection| {
                self.done = true;
                self.context.source_failed(&label, url.as_str(), rejection)
            })?;
        let (anchors, hits) = parse_page(&String::from_utf8_lossy(&download.bytes));
        self.pages += 1;
        if hits.is_empty() {
            self.done = true;
            if self.pages == 1 {
                return Err(CrawlError::LayoutChanged {
                    set: self.context.set.clone(),
                    source_label: label,
                    url: url.to_string(),
                });
            }
            return Ok(None);
        }
        self.offset += anchors;
        if self.pages >= self.spec.max_pages {
            self.done = true;
        }
        let mut batch = Vec::new();
        for hit in hits {
            let Some(image) = hit.murl.as_deref().and_then(|m| url.join(m.trim()).ok()) else { continue };
            let image = image.to_string();
            if !self.seen.insert(image.clone()) {
                continue;
            }
            self.rank += 1;
            let mut candidate = Candidate::new(ImageRef::Url(image), self.rank);
            candidate.page_url = hit.purl;
            candidate.title = hit.t;
            candidate.obey_robots = true;
            batch.push(candidate);
        }
        // A page of nothing new: Bing repeats its last results once the
        // search runs dry.
        if batch.is_empty() {
            self.done = true;
            return Ok(None);
        }
        Ok(Some(batch))
    }
}

impl Source for Bing {
    fn label(&self) -> String {
        "bing".to_owned()
    }

    fn next_batch(&mut self) -> BoxFuture<'_, Result<Option<Vec<Candidate>>, CrawlError>> {
        Box::pin(self.next_page())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_anchors_are_read_from_their_m_attribute() {
        let page = r#"<html><body><ul>
            <li><a class="iusc" m="{&quot;murl&quot;:&quot;https://a.example/x.webp?w=300&quot;,&quot;purl&quot;:&quot;https://a.example/page&quot;,&quot;t&quot;:&quot;Scorbunny &amp; friends&quot;}" href="/images/search?view=detailV2">x</a></li>
            <li><a class="iusc other" m='{"murl":"https://b.example/y","t":"no extension"}'>y</a></li>
            <li><a class="iusc" m="not json">broken</a></li>
            <li><a class="iusc">no m</a></li>
            <li><a class="iusc" m='{"purl":"https://c.example/"}'>no image</a></li>
            <li><a class="thumb" m='{"murl":"https://d.example/z.jpg"}'>not a result</a></li>
        </ul></body></html>"#;
        let (anchors, hits) = parse_page(page);
        assert_eq!(anchors, 5);
        assert_eq!(
            hits,
            [
                Hit {
                    murl: Some("https://a.example/x.webp?w=300".into()),
                    purl: Some("https://a.example/page".into()),
                    t: Some("Scorbunny & friends".into())
                },
                Hit { murl: Some("https://b.example/y".into()), purl: None, t: Some("no extension".into()) },
            ]
        );
        assert_eq!(parse_page("<html><body><div class='imgpt'>new layout</div></body></html>"), (0, Vec::new()));
    }

    #[test]
    fn page_urls_carry_the_offset_and_extra_parameters() {
        let mut context = crate::fetch::tests::context("grookey");
        context.query = "Grookey Thwackey".into();
        let spec = BingSpec {
            base_url: "http://127.0.0.1:9/images/async".into(),
            params: BTreeMap::from([("qft".to_owned(), "+filterui:photo-photo".to_owned())]),
            ..BingSpec::default()
        };
        let mut source = Bing::open(&spec, &context);
        source.offset = 35;
        let url = source.page_url().unwrap();
        assert_eq!(url.query(), Some("q=Grookey+Thwackey&first=35&count=35&qft=%2Bfilterui%3Aphoto-photo"));
        let reserved =
            BingSpec { params: BTreeMap::from([("count".to_owned(), "5".to_owned())]), ..BingSpec::default() };
        assert!(reserved.problem().is_some_and(|(field, _)| field == "params"));
    }
}
