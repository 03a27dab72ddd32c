//! A crawl definition: every set of a dataset in one TOML file.
//!
//! ```toml
//! dataset = "pokemon"
//! user_agent = "my-study/1.0 (https://my.site/tcav; me@my.site)"
//!
//! # Defaults for every set that does not give its own.
//! sources = [{ kind = "openverse" }, { kind = "commons" }]
//! [filters]
//! min_side = 64
//!
//! [options]          # all optional
//! concurrency = 4
//! timeout_secs = 30
//! per_host_rate = 2
//!
//! [[sets]]
//! name = "scorbunny"
//! query = "Scorbunny Raboot Cinderace"
//! max_num = 180
//!
//! [[sets]]
//! name = "random500_0"
//! # Several queries take turns, one candidate each, per source.
//! queries = ["street", "kitchen", "bicycle", "tree", "chair"]
//! max_num = 20
//! ```
//!
//! A set's own `sources` or `[sets.filters]` replace the top-level ones
//! whole. Relative paths in `url_list` and `local_folder` sources are
//! relative to the definition file. The images go to
//! `<dataset root>/raw/<set>/`; the dataset root defaults to the
//! definition's folder.

use std::collections::HashSet;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tcav_core::SetName;

use crate::crawl::{CrawlSummary, Crawler, Progress};
use crate::error::CrawlError;
use crate::request::{CrawlOptions, CrawlRequest, Filters};
use crate::source::SourceSpec;

/// Every set of one dataset, and how politely to crawl them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrawlDefinition {
    /// The dataset's name, for logs (folder-safe).
    pub dataset: SetName,
    /// The `User-Agent` to send; the default names the project with a
    /// placeholder contact, which Wikimedia Commons refuses.
    #[serde(default)]
    pub user_agent: Option<String>,
    /// Network behaviour; anything left out keeps its default.
    #[serde(default)]
    pub options: OptionsConfig,
    /// The sources of every set that names none.
    #[serde(default)]
    pub sources: Vec<SourceSpec>,
    /// The filters of every set that gives none.
    #[serde(default)]
    pub filters: Filters,
    /// The sets, crawled in this order.
    pub sets: Vec<SetDefinition>,
}

/// One set of a crawl definition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetDefinition {
    /// The class, concept or random set; its folder under `raw/`.
    pub name: SetName,
    /// The search query; give this or `queries`.
    #[serde(default)]
    pub query: Option<String>,
    /// Several search queries, taking turns (see [`CrawlRequest::queries`]);
    /// give this or `query`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queries: Vec<String>,
    /// How many images the set should hold.
    pub max_num: usize,
    /// This set's sources, instead of the definition's.
    #[serde(default)]
    pub sources: Option<Vec<SourceSpec>>,
    /// This set's filters, instead of the definition's.
    #[serde(default)]
    pub filters: Option<Filters>,
}

/// The network options a definition may set; see [`CrawlOptions`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptionsConfig {
    /// Downloads at once (default 4).
    pub concurrency: Option<usize>,
    /// Seconds one request may take (default 30).
    pub timeout_secs: Option<f64>,
    /// Retries of a passing failure (default 3).
    pub retries: Option<usize>,
    /// Requests per second to one host (default 2).
    pub per_host_rate: Option<u32>,
    /// Redirects one download may follow (default 5).
    pub max_redirects: Option<usize>,
    /// The longest `Retry-After`, in seconds, waited for (default 60).
    pub max_retry_after_secs: Option<f64>,
}

/// How one set's crawl ended.
#[derive(Debug)]
pub struct SetOutcome {
    /// The set.
    pub set: SetName,
    /// Its summary, or what stopped it.
    pub result: Result<CrawlSummary, CrawlError>,
}

/// The dataset root a definition file's images go under by default: the
/// file's own folder.
pub fn default_dataset_root(definition: &Path) -> PathBuf {
    match definition.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    }
}

impl CrawlDefinition {
    /// Reads and checks a definition file; relative source paths are
    /// resolved against its folder.
    pub fn load(path: &Path) -> Result<CrawlDefinition, CrawlError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| CrawlError::io("reading the crawl definition", path, e))?;
        CrawlDefinition::parse(&text, path)
    }

    /// Parses and checks the text of the definition file at `path`.
    pub fn parse(text: &str, path: &Path) -> Result<CrawlDefinition, CrawlError> {
        let bad = |problem: String| CrawlError::Definition { path: path.to_owned(), problem };
        let mut definition: CrawlDefinition = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        let base = default_dataset_root(path);
        let all_sources = definition
            .sources
            .iter_mut()
            .chain(definition.sets.iter_mut().flat_map(|s| s.sources.iter_mut().flatten()));
        for source in all_sources {
            let folder = match source {
                SourceSpec::UrlList(spec) => &mut spec.path,
                SourceSpec::LocalFolder(spec) => &mut spec.path,
                SourceSpec::Openverse(_) | SourceSpec::Commons(_) | SourceSpec::Bing(_) => continue,
            };
            if folder.is_relative() {
                *folder = base.join(&*folder);
            }
        }
        if definition.sets.is_empty() {
            return Err(bad("has no [[sets]]: add at least one, with name, query and max_num".to_owned()));
        }
        let mut names = HashSet::new();
        for set in &definition.sets {
            if !names.insert(&set.name) {
                return Err(bad(format!("names set `{}` twice: each set needs its own name", set.name)));
            }
            match (&set.query, set.queries.is_empty()) {
                (None, true) => {
                    return Err(bad(format!(
                        "set `{}` has no query: give it `query = \"...\"`, or `queries = [\"...\", ...]` for several",
                        set.name
                    )));
                }
                (Some(_), false) => {
                    return Err(bad(format!(
                        "set `{}` gives both `query` and `queries`: keep one (`queries` for several)",
                        set.name
                    )));
                }
                _ => {}
            }
            if set.sources.as_ref().unwrap_or(&definition.sources).is_empty() {
                return Err(bad(format!(
                    "set `{}` has no sources: give it `sources` or set top-level `sources`",
                    set.name
                )));
            }
        }
        definition.options()?;
        for request in definition.requests() {
            request.validate()?;
        }
        Ok(definition)
    }

    /// The crawl request of every set, in order.
    pub fn requests(&self) -> Vec<CrawlRequest> {
        self.sets
            .iter()
            .map(|set| CrawlRequest {
                set: set.name.clone(),
                query: set.query.clone().unwrap_or_default(),
                queries: set.queries.clone(),
                sources: set.sources.clone().unwrap_or_else(|| self.sources.clone()),
                max_num: set.max_num,
                filters: set.filters.clone().unwrap_or_else(|| self.filters.clone()),
            })
            .collect()
    }

    /// The crawl options: the defaults, with what the definition sets.
    pub fn options(&self) -> Result<CrawlOptions, CrawlError> {
        let bad = |field, problem: String| CrawlError::InvalidOptions { field, problem };
        let seconds = |field, value: f64| {
            if value.is_finite() && value > 0.0 && value < 1e9 {
                Ok(Duration::from_secs_f64(value))
            } else {
                Err(bad(field, format!("= {value} is not a positive number of seconds")))
            }
        };
        let o = &self.options;
        let mut options = CrawlOptions::default();
        if let Some(agent) = &self.user_agent {
            options.user_agent.clone_from(agent);
        }
        if let Some(n) = o.concurrency {
            options.concurrency = n;
        }
        if let Some(t) = o.timeout_secs {
            options.timeout = seconds("options.timeout_secs", t)?;
        }
        if let Some(n) = o.retries {
            options.retries = n;
        }
        if let Some(rate) = o.per_host_rate {
            options.per_host_rate = NonZeroU32::new(rate)
                .ok_or_else(|| bad("options.per_host_rate", "is 0: use 1 or more requests per second".to_owned()))?;
        }
        if let Some(n) = o.max_redirects {
            options.max_redirects = n;
        }
        if let Some(t) = o.max_retry_after_secs {
            options.max_retry_after = seconds("options.max_retry_after_secs", t)?;
        }
        options.validate()?;
        Ok(options)
    }

    /// Crawls every set into `<root>/raw/<set>/`, one after another, with
    /// one client (shared rate limits and robots.txt). Every set is checked
    /// first, so a mistake in the last set fails before the first is
    /// crawled; after that, a set that fails does not stop the others.
    pub async fn run(&self, root: &Path, progress: &dyn Progress) -> Result<Vec<SetOutcome>, CrawlError> {
        let crawler = Crawler::new(&self.options()?)?;
        let requests = self.requests();
        for request in &requests {
            crawler.check(request)?;
        }
        tracing::info!(dataset = %self.dataset, root = %root.display(), sets = requests.len(), "crawling the dataset");
        let mut outcomes = Vec::with_capacity(requests.len());
        for request in requests {
            let result = crawler.crawl_with_progress(&request, root, progress).await;
            if let Err(e) = &result {
                tracing::error!(set = %request.set, "the crawl of this set stopped: {e}");
            }
            outcomes.push(SetOutcome { set: request.set, result });
        }
        Ok(outcomes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
dataset = "zoo"
user_agent = "zoo-study/1 (mailto:me@zoo.test)"
sources = [{ kind = "openverse" }, { kind = "url_list", path = "lists/extra.txt" }]
[filters]
licences = ["by", "cc0"]
[options]
concurrency = 8
timeout_secs = 2.5
[[sets]]
name = "striped"
query = "zebra stripes"
max_num = 20
[[sets]]
name = "random500_0"
query = "street"
max_num = 10
sources = [{ kind = "local_folder", path = "/abs/mine" }]
[sets.filters]
min_side = 64
"#;

    #[test]
    fn sets_inherit_sources_and_filters_and_paths_are_relative_to_the_file() {
        let definition = CrawlDefinition::parse(MINIMAL, Path::new("data/zoo/crawl.toml")).unwrap();
        let requests = definition.requests();
        assert_eq!(requests.len(), 2);
        assert_eq!(requests[0].set.as_str(), "striped");
        assert_eq!(requests[0].filters.licences, ["by", "cc0"]);
        let SourceSpec::UrlList(list) = &requests[0].sources[1] else { panic!("url list expected") };
        assert_eq!(list.path, Path::new("data/zoo/lists/extra.txt"));
        let SourceSpec::LocalFolder(folder) = &requests[1].sources[0] else { panic!("local folder expected") };
        assert_eq!(folder.path, Path::new("/abs/mine"));
        assert_eq!(
            requests[1].filters,
            Filters { min_side: 64, ..Filters::default() },
            "a set's filters replace the defaults whole"
        );

        let options = definition.options().unwrap();
        assert_eq!((options.concurrency, options.timeout), (8, Duration::from_millis(2500)));
        assert_eq!(options.user_agent, "zoo-study/1 (mailto:me@zoo.test)");
        assert_eq!(options.per_host_rate, CrawlOptions::default().per_host_rate);
        assert_eq!(default_dataset_root(Path::new("data/zoo/crawl.toml")), Path::new("data/zoo"));
        assert_eq!(default_dataset_root(Path::new("crawl.toml")), Path::new("."));

        let several = MINIMAL.replace("query = \"street\"", "queries = [\"street\", \"kitchen\", \"tree\"]");
        let definition = CrawlDefinition::parse(&several, Path::new("data/zoo/crawl.toml")).unwrap();
        let requests = definition.requests();
        assert_eq!(requests[1].search_queries(), ["street", "kitchen", "tree"]);
        assert_eq!(requests[0].search_queries(), ["zebra stripes"]);
    }

    #[test]
    fn mistakes_name_the_file_and_what_to_fix() {
        let path = Path::new("zoo/crawl.toml");
        let cases = [
            (MINIMAL.replace("max_num = 20", "max_num = 20\nmaxnum = 3"), "maxnum"),
            (MINIMAL.replace("name = \"random500_0\"", "name = \"striped\""), "twice"),
            (MINIMAL.replace("timeout_secs = 2.5", "timeout_secs = -1"), "options.timeout_secs"),
            (MINIMAL.replace("concurrency = 8", "per_host_rate = 0"), "options.per_host_rate"),
            (MINIMAL.replace("max_num = 10", "max_num = 0"), "max_num"),
            (
                MINIMAL.replace(
                    "sources = [{ kind = \"openverse\" }, { kind = \"url_list\", path = \"lists/extra.txt\" }]",
                    "",
                ),
                "no sources",
            ),
            (MINIMAL.replace("kind = \"openverse\"", "kind = \"openverse\", page_size = 500"), "page_size"),
            ("dataset = \"zoo\"\nsets = []\n".to_owned(), "no [[sets]]"),
            (MINIMAL.replace("query = \"zebra stripes\"\n", ""), "set `striped` has no query"),
            (
                MINIMAL.replace("query = \"street\"", "query = \"street\"\nqueries = [\"a\"]"),
                "both `query` and `queries`",
            ),
            (MINIMAL.replace("query = \"street\"", "queries = [\"a\", \"\"]"), "`queries`"),
            (MINIMAL.replace("query = \"street\"", "queries = \"street\""), "queries"),
        ];
        for (text, expected) in cases {
            let err = CrawlDefinition::parse(&text, path).unwrap_err().to_string();
            assert!(err.contains(expected), "{expected}: {err}");
        }
        let err = CrawlDefinition::load(Path::new("/nonexistent/crawl.toml")).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/crawl.toml"), "{err}");
    }

    #[test]
    fn the_pokemon_definition_parses_and_matches_its_experiment() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/pokemon");
        let definition = CrawlDefinition::load(&dir.join("crawl.toml")).unwrap();
        assert_eq!(definition.dataset.as_str(), "pokemon");
        let requests = definition.requests();
        let names: Vec<&str> = requests.iter().map(|r| r.set.as_str()).collect();
        for class in ["scorbunny", "sobble", "grookey"] {
            let request = requests.iter().find(|r| r.set.as_str() == class).unwrap();
            assert_eq!(request.max_num, 180, "{class}");
        }
        let concepts = ["red", "blue", "green", "yellow", "white", "black"];
        let random_sets = ["random500_0", "random500_1", "random500_2", "random500_3", "random500_4", "random500_5"];
        for name in concepts.into_iter().chain(random_sets) {
            assert!(names.contains(&name), "{name} missing from crawl.toml");
        }
        // Licence-clean by default: only the two API sources.
        for request in &requests {
            assert!(
                request.sources.iter().all(|s| matches!(s, SourceSpec::Openverse(_) | SourceSpec::Commons(_))),
                "{} uses a source with unknown licences",
                request.set
            );
        }
        // The random sets must differ, or their CAVs would all be one: each
        // draws on its own slice of a broad list of everyday subjects.
        let mut everyday = HashSet::new();
        for request in requests.iter().filter(|r| r.set.as_str().starts_with("random")) {
            let queries = request.search_queries();
            assert!(queries.len() >= 5, "{} has only {} queries", request.set, queries.len());
            for query in queries {
                assert!(everyday.insert(query), "{query:?} is in two random sets");
            }
        }
        assert!(everyday.len() >= 30, "only {} everyday queries", everyday.len());

        // Every folder the experiment reads is one the crawl fills.
        let experiment: toml::Value =
            toml::from_str(&std::fs::read_to_string(dir.join("experiment.toml")).unwrap()).unwrap();
        let data = &experiment["data"];
        assert_eq!(data["source"].as_str(), Some("folders"));
        let mut folders = Vec::new();
        for group in ["classes", "concepts", "random_sets"] {
            for (name, folder) in data[group].as_table().unwrap() {
                assert_eq!(folder.as_str(), Some(format!("raw/{name}").as_str()), "{group}.{name}");
                folders.push(name.clone());
            }
        }
        folders.sort();
        let mut crawled: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        crawled.sort();
        assert_eq!(folders, crawled);
    }
}
