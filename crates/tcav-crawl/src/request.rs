//! What to crawl ([`CrawlRequest`], part of an experiment's definition) and
//! how politely to crawl it ([`CrawlOptions`], a property of the machine and
//! the network, not of the experiment).

use std::num::NonZeroU32;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tcav_core::SetName;

use crate::error::CrawlError;
use crate::sniff::ImageType;
use crate::source::SourceSpec;

/// One image set to fill: where to look and how many images to keep.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrawlRequest {
    /// The concept set or random set the images are for; also the folder
    /// name under `<root>/raw/`.
    pub set: SetName,
    /// The search query, recorded in the manifest and passed to sources that
    /// search. Leave it empty when `queries` is given.
    #[serde(default)]
    pub query: String,
    /// Several search queries instead of `query`, for a set that should mix
    /// subjects (a random set drawn from many everyday things). Each search
    /// source is asked with every query, and the queries take turns: one
    /// candidate from the first query's results, one from the second's, and
    /// so on round the list, skipping queries that have run out, before the
    /// next source is tried. The order is the list's, so a crawl is
    /// repeatable. Each manifest line records the query that found it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queries: Vec<String>,
    /// Where candidates come from, tried in order until `max_num` images are
    /// kept or every source runs out.
    pub sources: Vec<SourceSpec>,
    /// How many images the set should hold; a rerun tops the set up to this.
    pub max_num: usize,
    /// Which downloads are kept.
    #[serde(default)]
    pub filters: Filters,
}

/// Which candidates are kept.
///
/// What a source already knows (a licence, a declared type, a size in
/// pixels) is checked before downloading, so a candidate that cannot pass
/// costs no request; the rest is checked on the downloaded bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Filters {
    /// Files smaller than this many bytes are rejected (icons, spacers).
    pub min_bytes: u64,
    /// Images whose shorter side has fewer pixels are rejected (0: no limit).
    pub min_side: u32,
    /// The licences kept, as codes such as `by`, `by-sa`, `cc0`, `pdm` (any
    /// spelling a source uses is understood: `CC BY-SA 4.0` means `by-sa`).
    /// Empty keeps every image, including those of unknown licence; a
    /// non-empty list rejects images whose licence is unknown. Sources that
    /// can filter by licence themselves (Openverse) are asked to.
    pub licences: Vec<String>,
    /// Files larger than this many bytes are rejected; the download stops as
    /// soon as it passes this size.
    pub max_bytes: u64,
    /// The image types kept, judged from the file's signature.
    pub allowed_types: Vec<ImageType>,
}

/// The default cap on one file's size: 20 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 20 * 1024 * 1024;

impl Default for Filters {
    fn default() -> Self {
        Filters {
            min_bytes: 0,
            min_side: 0,
            licences: Vec::new(),
            max_bytes: DEFAULT_MAX_BYTES,
            allowed_types: ImageType::ALL.to_vec(),
        }
    }
}

impl CrawlRequest {
    /// The queries the search sources are asked with, in turn order: the
    /// `queries` list, or `query` alone.
    pub fn search_queries(&self) -> Vec<&str> {
        if self.queries.is_empty() {
            vec![self.query.as_str()]
        } else {
            self.queries.iter().map(String::as_str).collect()
        }
    }

    /// The query recorded for candidates that no search found (URL lists,
    /// local folders): `query`, or the `queries` joined by ` | `.
    pub fn summary_query(&self) -> String {
        if self.queries.is_empty() { self.query.clone() } else { self.queries.join(" | ") }
    }

    /// Checks the fields that serde cannot, with messages naming the field.
    pub fn validate(&self) -> Result<(), CrawlError> {
        let bad = |field, problem: &str| CrawlError::InvalidRequest {
            set: self.set.to_string(),
            field,
            problem: problem.to_owned(),
        };
        if self.set.as_str().starts_with('.') {
            return Err(bad(
                "set",
                "starts with `.`: such folders are hidden, and `.objects` holds the dataset's shared image store; pick another name",
            ));
        }
        if !self.queries.is_empty() && !self.query.is_empty() {
            return Err(bad(
                "queries",
                "is given together with `query`: keep one (`queries` for several, `query` for one)",
            ));
        }
        if let Some(i) = self.queries.iter().position(|q| q.trim().is_empty()) {
            return Err(bad("queries", &format!("entry {i} is blank: remove it or write a query there")));
        }
        for (i, query) in self.queries.iter().enumerate() {
            if self.queries[..i].contains(query) {
                return Err(bad(
                    "queries",
                    &format!("lists {query:?} twice: each query is searched once, so remove the repeat"),
                ));
            }
        }
        if self.max_num == 0 {
            return Err(bad("max_num", "is 0: ask for at least one image"));
        }
        if self.sources.is_empty() {
            return Err(bad(
                "sources",
                "is empty: add at least one source (for example a `url_list` or a `local_folder`)",
            ));
        }
        if self.filters.max_bytes == 0 {
            return Err(bad(
                "filters.max_bytes",
                "is 0: no image fits; raise it or leave it out for the 20 MiB default",
            ));
        }
        if self.filters.min_bytes > self.filters.max_bytes {
            return Err(bad(
                "filters.min_bytes",
                &format!(
                    "({}) is larger than filters.max_bytes ({}): no file can pass both",
                    self.filters.min_bytes, self.filters.max_bytes
                ),
            ));
        }
        if self.filters.allowed_types.is_empty() {
            return Err(bad(
                "filters.allowed_types",
                "is empty: list at least one type, such as \"image/jpeg\", or leave it out to allow all",
            ));
        }
        if self.filters.licences.iter().any(|l| l.trim().is_empty()) {
            return Err(bad(
                "filters.licences",
                "holds an empty name: list codes such as \"by\", \"by-sa\", \"cc0\", \"pdm\"",
            ));
        }
        for source in &self.sources {
            source.check(self)?;
        }
        Ok(())
    }
}

/// How the crawler behaves on the network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrawlOptions {
    /// The `User-Agent` header: says who is crawling and where to complain.
    /// Its first word (up to `/`) is the name matched against robots.txt
    /// groups. Wikimedia Commons requires a real contact (a URL or an
    /// e-mail address): the default's placeholder contact is refused there.
    pub user_agent: String,
    /// The limit on one request, from connecting to the last body byte.
    pub timeout: Duration,
    /// How many downloads run at once.
    pub concurrency: usize,
    /// How many times a download that failed for a passing reason (time-out,
    /// lost connection, 429 or 5xx) is tried again within one crawl.
    pub retries: usize,
    /// The first wait before a retry; it doubles with each further retry.
    pub retry_base_delay: Duration,
    /// The longest `Retry-After` the crawler waits for; a server asking for
    /// longer gets its URL recorded as a passing failure, retried next run.
    pub max_retry_after: Duration,
    /// The most requests per second sent to one host, counted for every
    /// host a request reaches, redirect targets and robots.txt included.
    pub per_host_rate: NonZeroU32,
    /// How many redirects one download may follow.
    pub max_redirects: usize,
}

/// The default `User-Agent`: names the project, but its contact is a
/// placeholder, so set your own for real crawls.
pub const DEFAULT_USER_AGENT: &str = "tcav-rs/0.1 (+https://example.invalid/tcav-rs)";

impl Default for CrawlOptions {
    fn default() -> Self {
        CrawlOptions {
            user_agent: DEFAULT_USER_AGENT.to_owned(),
            timeout: Duration::from_secs(30),
            concurrency: 4,
            retries: 3,
            retry_base_delay: Duration::from_millis(500),
            max_retry_after: Duration::from_secs(60),
            per_host_rate: NonZeroU32::MIN.saturating_add(1),
            max_redirects: 5,
        }
    }
}

impl CrawlOptions {
    /// Checks that the options allow a crawl to make progress.
    pub fn validate(&self) -> Result<(), CrawlError> {
        let bad = |field, problem: &str| CrawlError::InvalidOptions { field, problem: problem.to_owned() };
        if self.user_agent.trim().is_empty() {
            return Err(bad("user_agent", "is empty: name the project and a contact URL, as the default does"));
        }
        if self.timeout.is_zero() {
            return Err(bad("timeout", "is zero: every request would time out; use a few seconds or more"));
        }
        if self.concurrency == 0 {
            return Err(bad("concurrency", "is 0: nothing would be downloaded; use 1 or more (default 4)"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request_json(extra: &str) -> String {
        format!(
            r#"{{"set": "striped", "query": "zebra", "sources": [{{"kind": "url_list", "path": "u.txt"}}], "max_num": 3{extra}}}"#
        )
    }

    #[test]
    fn filters_default_to_a_20_mib_cap_and_all_types() {
        let request: CrawlRequest = serde_json::from_str(&request_json("")).unwrap();
        assert_eq!(request.filters.max_bytes, 20 * 1024 * 1024);
        assert_eq!(request.filters.min_bytes, 0);
        assert_eq!(request.filters.allowed_types, ImageType::ALL);
        request.validate().unwrap();

        let partial: CrawlRequest = serde_json::from_str(&request_json(r#", "filters": {"min_bytes": 10}"#)).unwrap();
        assert_eq!(partial.filters.min_bytes, 10);
        assert_eq!(partial.filters.max_bytes, DEFAULT_MAX_BYTES);
    }

    #[test]
    fn a_request_searches_its_query_or_its_list_of_queries() {
        let one: CrawlRequest = serde_json::from_str(&request_json("")).unwrap();
        assert_eq!(one.search_queries(), ["zebra"]);
        assert_eq!(one.summary_query(), "zebra");
        let json = request_json(r#", "queries": ["street", "kitchen"]"#).replace(r#""query": "zebra", "#, "");
        let many: CrawlRequest = serde_json::from_str(&json).unwrap();
        many.validate().unwrap();
        assert_eq!(many.search_queries(), ["street", "kitchen"]);
        assert_eq!(many.summary_query(), "street | kitchen");
        // Written back out, a one-query request keeps its old shape.
        assert!(!serde_json::to_string(&one).unwrap().contains("queries"));
    }

    #[test]
    fn unknown_fields_are_refused_at_every_level() {
        for extra in [
            r#", "maxnum": 3"#,
            r#", "filters": {"max_byte": 3}"#,
            r#", "filters": {"allowed_types": ["image/svg+xml"]}"#,
        ] {
            let err = serde_json::from_str::<CrawlRequest>(&request_json(extra)).unwrap_err().to_string();
            assert!(err.contains("unknown") || err.contains("variant"), "{extra}: {err}");
        }
        let typo_in_source =
            r#"{"set": "s", "query": "", "sources": [{"kind": "url_list", "pth": "u.txt"}], "max_num": 1}"#;
        assert!(serde_json::from_str::<CrawlRequest>(typo_in_source).is_err());
        let bad_set = r#"{"set": "a/b", "query": "", "sources": [], "max_num": 1}"#;
        assert!(serde_json::from_str::<CrawlRequest>(bad_set).is_err());
        let bad_set = r#"{"set": "..", "query": "", "sources": [], "max_num": 1}"#;
        assert!(serde_json::from_str::<CrawlRequest>(bad_set).is_err());
    }

    #[test]
    fn validation_names_the_field_to_fix() {
        let base: CrawlRequest = serde_json::from_str(&request_json("")).unwrap();
        type BreakIt = fn(&mut CrawlRequest);
        let cases: [(&str, BreakIt); 10] = [
            ("set", |r| r.set = SetName::new(".objects").unwrap()),
            ("queries", |r| r.queries = vec!["street".into()]),
            ("queries", |r| {
                r.query.clear();
                r.queries = vec!["street".into(), " ".into()];
            }),
            ("queries", |r| {
                r.query.clear();
                r.queries = vec!["street".into(), "kitchen".into(), "street".into()];
            }),
            ("filters.licences", |r| r.filters.licences = vec!["by".into(), " ".into()]),
            ("max_num", |r| r.max_num = 0),
            ("sources", |r| r.sources.clear()),
            ("filters.max_bytes", |r| r.filters.max_bytes = 0),
            ("filters.min_bytes", |r| r.filters.min_bytes = r.filters.max_bytes + 1),
            ("filters.allowed_types", |r| r.filters.allowed_types.clear()),
        ];
        for (field, break_it) in cases {
            let mut request = base.clone();
            break_it(&mut request);
            let err = request.validate().unwrap_err().to_string();
            assert!(
                err.contains(&format!("`{field}`")) && (err.contains("striped") || err.contains(".objects")),
                "{err}"
            );
        }

        let mut options = CrawlOptions::default();
        options.validate().unwrap();
        options.concurrency = 0;
        assert!(options.validate().unwrap_err().to_string().contains("concurrency"));
        let options = CrawlOptions { user_agent: " ".into(), ..CrawlOptions::default() };
        assert!(options.validate().unwrap_err().to_string().contains("user_agent"));
        let options = CrawlOptions { timeout: Duration::ZERO, ..CrawlOptions::default() };
        assert!(options.validate().unwrap_err().to_string().contains("timeout"));
    }

    #[test]
    fn default_options_are_polite() {
        let options = CrawlOptions::default();
        assert!(options.user_agent.starts_with("tcav-rs/") && options.user_agent.contains("+http"));
        assert_eq!(options.concurrency, 4);
        assert_eq!(options.per_host_rate.get(), 2);
        assert_eq!(options.max_redirects, 5);
    }
}
