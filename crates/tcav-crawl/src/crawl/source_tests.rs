//! The web sources against the loopback server's copies of their real
//! answers, and the crawl-wide guarantees: interrupts, shared storage,
//! nothing written outside the dataset.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

use super::tests::{LIMIT, check_folder, read_manifest, url_request, write_list};
use super::*;
use crate::fixture::{CAP, Fixture, TEST_USER_AGENT, fast_options, png};
use crate::source::{BingSpec, CommonsSpec, OpenverseSpec, SourceSpec};
use crate::store::OBJECTS_DIR;

fn request(set: &str, query: &str, sources: Vec<SourceSpec>, max_num: usize) -> CrawlRequest {
    CrawlRequest {
        set: SetName::new(set).unwrap(),
        query: query.into(),
        queries: Vec::new(),
        sources,
        max_num,
        filters: Filters { max_bytes: CAP, ..Filters::default() },
    }
}

fn entry_for<'a>(entries: &'a [ManifestEntry], url: &str) -> &'a ManifestEntry {
    entries.iter().find(|e| e.image_url == url).unwrap_or_else(|| panic!("no manifest line for {url}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openverse_pages_are_read_as_needed_and_a_short_source_ends_the_crawl_cleanly() {
    tokio::time::timeout(LIMIT, async {
        let server = Fixture::start().await;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        let spec = OpenverseSpec { base_url: server.url("/openverse"), page_size: 10, ..OpenverseSpec::default() };
        let mut red = request("red", "red apple", vec![SourceSpec::Openverse(spec)], 5);
        red.filters.licences = vec!["by".into(), "CC0".into(), "CC BY-SA 4.0".into()];

        // Five images: the first page is enough.
        let first = crawl(&red, &fast_options(), &root).await.unwrap();
        assert_eq!((first.accepted, first.exhausted), (5, false));
        let asked = server.queries("/openverse/v1/images/");
        assert_eq!(asked.len(), 1);
        let expected: BTreeMap<String, String> =
            [("q", "red apple"), ("page", "1"), ("page_size", "10"), ("license", "by,cc0,by-sa")]
                .map(|(k, v)| (k.into(), v.into()))
                .into();
        assert_eq!(asked[0], expected);

        // Forty: every page, then a clean stop with what there is. Of the 22
        // results the API's licence filter lets through, a 404, an HTML page
        // served as JPEG and an SVG (judged from its declared type, never
        // fetched) are rejected.
        red.max_num = 40;
        let second = crawl(&red, &fast_options(), &root).await.unwrap();
        let pages: Vec<String> = server.queries("/openverse/v1/images/").iter().map(|q| q["page"].clone()).collect();
        assert_eq!(pages, ["1", "1", "2", "3"]);
        assert_eq!((second.accepted, second.exhausted), (19, true));
        assert_eq!(second.added, 14);
        assert!(second.failed_sources.is_empty());

        let set_dir = root.join("raw/red");
        let entries = read_manifest(&set_dir);
        let ov0 = entry_for(&entries, &server.url("/img/ov-0.jpg"));
        assert_eq!(ov0.status, Status::Accepted);
        assert_eq!(ov0.source, "openverse");
        assert_eq!((ov0.rank, ov0.query.as_str()), (1, "red apple"));
        assert_eq!(ov0.licence.as_deref(), Some("CC BY 4.0"));
        assert_eq!(ov0.creator.as_deref(), Some("Creator 0"));
        assert_eq!(ov0.title.as_deref(), Some("Red thing 0"));
        assert_eq!(ov0.page_url.as_deref(), Some("https://www.flickr.com/photos/someone/0"));
        assert_eq!((ov0.width, ov0.height), (Some(8), Some(8)));
        assert_eq!(entry_for(&entries, &server.url("/img/ov-1.png")).licence.as_deref(), Some("CC0 1.0"));
        let svg = entry_for(&entries, &server.url("/img/ov-11.svg"));
        assert_eq!((svg.status, svg.reason, svg.http_status), (Status::Rejected, Some(Reason::TypeNotAllowed), None));
        assert_eq!(server.hits("/img/ov-11.svg"), 0);
        assert_eq!(entry_for(&entries, &server.url("/missing.png")).reason, Some(Reason::HttpStatus));
        assert_eq!(entry_for(&entries, &server.url("/html.jpg")).reason, Some(Reason::NotAnImage));
        assert!(entries.iter().all(|e| !e.image_url.contains("ov-15")), "the API filtered out the by-nc result");
        assert_eq!(entries.len(), 22, "one line per result, none twice");
        assert_eq!(check_folder(&set_dir).len(), 19);
        for i in (0..23usize).filter(|i| ![3, 7, 11, 15].contains(i)) {
            let path = if i.is_multiple_of(2) { format!("/img/ov-{i}.jpg") } else { format!("/img/ov-{i}.png") };
            assert_eq!(server.hits(&path), 1, "{path}");
        }
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commons_answers_are_continued_and_read_for_licence_and_creator_and_shared_bytes_are_stored_once() {
    tokio::time::timeout(LIMIT, async {
        let server = Fixture::start().await;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        let spec = CommonsSpec { base_url: server.url("/commons/w/api.php"), limit: 3, ..CommonsSpec::default() };
        let blue = request("blue", "blue sky", vec![SourceSpec::Commons(spec.clone())], 10);

        // The default user agent's contact is a placeholder: refused before
        // anything is sent or written.
        let placeholder = CrawlOptions { user_agent: crate::DEFAULT_USER_AGENT.into(), ..fast_options() };
        let err = crawl(&blue, &placeholder, &root).await.unwrap_err().to_string();
        assert!(err.contains("Wikimedia") && err.contains("user_agent"), "{err}");
        assert!(!root.exists() && server.total_hits() == 0);

        let summary = crawl(&blue, &fast_options(), &root).await.unwrap();
        // Seven files: a PDF is rejected from its declared type, the file
        // with no licence is kept (no licence filter here).
        assert_eq!((summary.accepted, summary.rejected, summary.exhausted), (6, 1, true));
        let asked = server.queries("/commons/w/api.php");
        let offsets: Vec<Option<&str>> = asked.iter().map(|q| q.get("gsroffset").map(String::as_str)).collect();
        assert_eq!(offsets, [None, Some("3"), Some("6")]);
        assert_eq!(asked[0]["continue"], "");
        assert_eq!(asked[1]["continue"], "gsroffset||");
        assert_eq!(asked[0]["gsrsearch"], "filetype:bitmap blue sky");
        assert!(server.user_agents().iter().all(|ua| ua == TEST_USER_AGENT));

        let entries = read_manifest(&root.join("raw/blue"));
        let c0 = entry_for(&entries, &server.url("/img/commons-0.png"));
        assert_eq!(c0.status, Status::Accepted);
        assert_eq!((c0.source.as_str(), c0.rank), ("commons", 1), "search order, not answer order");
        assert_eq!(c0.licence.as_deref(), Some("CC BY-SA 4.0"));
        assert_eq!(c0.creator.as_deref(), Some("Ash Ketchum 0"), "the Artist field's HTML is stripped");
        assert_eq!(c0.page_url.as_deref(), Some("https://commons.wikimedia.org/wiki/File:Commons_0.jpg"));
        assert_eq!(c0.title.as_deref(), Some("Commons 0.jpg"));
        assert_eq!(entry_for(&entries, &server.url("/img/commons-1.png")).licence.as_deref(), Some("CC0"));
        assert_eq!(entry_for(&entries, &server.url("/img/commons-4.png")).licence, None);
        let pdf = entry_for(&entries, &server.url("/img/commons-2-orig.jpg"));
        assert_eq!(pdf.reason, Some(Reason::TypeNotAllowed));
        assert_eq!(server.hits("/img/commons-0-orig.jpg"), 0, "thumbnails, not originals");

        // A second set asking for the same files, licence-filtered: the
        // bytes it keeps are those of the first set, stored once.
        let mut random = request("random500_0", "blue sky", vec![SourceSpec::Commons(spec)], 10);
        random.filters.licences = vec!["by-sa".into()];
        let summary = crawl(&random, &fast_options(), &root).await.unwrap();
        assert_eq!((summary.accepted, summary.rejected), (4, 3));
        let entries = read_manifest(&root.join("raw/random500_0"));
        let reasons: BTreeMap<String, Option<Reason>> =
            entries.iter().map(|e| (e.image_url.rsplit('/').next().unwrap().to_owned(), e.reason)).collect();
        assert_eq!(reasons["commons-1.png"], Some(Reason::LicenceNotAllowed), "CC0 is not by-sa");
        assert_eq!(reasons["commons-4.png"], Some(Reason::LicenceNotAllowed), "unknown licence");
        let objects: Vec<_> = std::fs::read_dir(root.join("raw").join(OBJECTS_DIR)).unwrap().collect();
        assert_eq!(objects.len(), 6, "one object per distinct image in the dataset");
        let shared = entry_for(&entries, &server.url("/img/commons-0.png")).file.clone().unwrap();
        for set in ["blue", "random500_0"] {
            let lines = read_manifest(&root.join("raw").join(set));
            assert!(
                lines.iter().any(|e| e.file.as_ref() == Some(&shared) && e.set == set),
                "{set} records the shared image"
            );
            assert_eq!(std::fs::read(root.join("raw").join(set).join(&shared)).unwrap(), png("commons-0"));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let links = std::fs::metadata(root.join("raw").join(OBJECTS_DIR).join(&shared)).unwrap().nlink();
            assert_eq!(links, 3, "the object and one link per set");
        }

        // An API error ends that source with a line in the manifest; the
        // crawl goes on with the next one.
        let list = write_list(dir.path(), "more.txt", &[server.url("/img/after.png")]);
        let mut broken = url_request("sky", &list, 3);
        let broken_api = CommonsSpec { base_url: server.url("/commons-broken/w/api.php"), ..CommonsSpec::default() };
        broken.sources.insert(0, SourceSpec::Commons(broken_api));
        let summary = crawl(&broken, &fast_options(), &root).await.unwrap();
        assert_eq!((summary.accepted, summary.exhausted), (1, true));
        assert_eq!(summary.failed_sources.len(), 1);
        assert!(summary.failed_sources[0].contains("internal_api_error_DBQueryError"), "{:?}", summary.failed_sources);
        let lines = read_manifest(&root.join("raw/sky"));
        assert_eq!(lines[0].reason, Some(Reason::SourceFailed));
        assert!(lines[0].image_url.starts_with(&server.url("/commons-broken/w/api.php?")));
        assert!(lines[0].retryable);
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bing_pages_are_scraped_for_every_image_type_within_robots_rules() {
    tokio::time::timeout(LIMIT, async {
        let server = Fixture::start().await;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        let spec = BingSpec { base_url: server.url("/bing/images/async"), ..BingSpec::default() };
        let green = request("green", "green leaf", vec![SourceSpec::Bing(spec)], 20);

        let summary = crawl(&green, &fast_options(), &root).await.unwrap();
        assert_eq!((summary.accepted, summary.rejected, summary.exhausted), (8, 2, true));
        assert!(summary.failed_sources.is_empty(), "{:?}", summary.failed_sources);
        let firsts: Vec<String> = server.queries("/bing/images/async").iter().map(|q| q["first"].clone()).collect();
        assert_eq!(firsts, ["0", "4", "8", "12"], "paged by the anchors each page held, until a page held none");
        assert_eq!(server.hits("/robots.txt"), 1, "robots.txt is read once per host");
        assert_eq!(server.hits("/private/b4.png"), 0);

        let set_dir = root.join("raw/green");
        let entries = read_manifest(&set_dir);
        let types: HashSet<ImageType> =
            entries.iter().filter(|e| e.status == Status::Accepted).filter_map(|e| e.image_type).collect();
        assert_eq!(types, HashSet::from([ImageType::Png, ImageType::Jpeg, ImageType::Webp, ImageType::Gif]));
        let gif = entry_for(&entries, &server.url("/img/b3.gif?w=300&h=200"));
        assert_eq!(gif.status, Status::Accepted);
        assert_eq!((gif.source.as_str(), gif.rank), ("bing", 4));
        assert_eq!(gif.title.as_deref(), Some("GIF with a query"));
        assert_eq!(gif.page_url.as_deref(), Some("https://pages.example/GIF with a query"));
        assert_eq!(entry_for(&entries, &server.url("/noext/b6")).image_type, Some(ImageType::Png));
        let private = entry_for(&entries, &server.url("/private/b4.png"));
        assert_eq!((private.reason, private.retryable), (Some(Reason::RobotsDisallowed), false));
        assert!(private.detail.as_deref().unwrap().contains("robots.txt"));
        assert_eq!(entry_for(&entries, &server.url("/html.jpg")).reason, Some(Reason::NotAnImage));
        assert_eq!(
            entries.iter().filter(|e| e.image_url == server.url("/img/b0.png")).count(),
            1,
            "a repeated result is tried once"
        );
        assert_eq!(check_folder(&set_dir).len(), 8);
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_layout_or_a_forbidding_robots_txt_stops_only_that_source() {
    tokio::time::timeout(LIMIT, async {
        let server = Fixture::start().await;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        let bing = |path: &str| SourceSpec::Bing(BingSpec { base_url: server.url(path), ..BingSpec::default() });

        // The source on its own: a page without result anchors is its own error.
        let context = SourceContext {
            set: "yellow".into(),
            query: "yellow".into(),
            filters: Filters::default(),
            http: Http::new(&fast_options()).unwrap(),
        };
        let mut changed = bing("/bing-changed/images/async").open(&context).await.unwrap();
        let err = changed.next_batch().await.unwrap_err();
        assert!(matches!(err, CrawlError::LayoutChanged { .. }), "{err:?}");
        assert!(err.to_string().contains("0 results: the page layout may have changed"), "{err}");
        assert!(changed.next_batch().await.unwrap().is_none(), "a failed source is done");

        let list = write_list(dir.path(), "fallback.txt", &[server.url("/img/fallback.png")]);
        let mut yellow = url_request("yellow", &list, 5);
        yellow.sources.insert(0, bing("/bing-blocked/images/async"));
        yellow.sources.insert(0, bing("/bing-changed/images/async"));
        let summary = crawl(&yellow, &fast_options(), &root).await.unwrap();
        assert_eq!((summary.accepted, summary.rejected, summary.exhausted), (1, 0, true));
        assert_eq!(summary.failed_sources.len(), 2);
        assert!(summary.failed_sources[0].contains("0 results: the page layout may have changed"));
        assert!(summary.failed_sources[1].contains("robots.txt"), "{}", summary.failed_sources[1]);
        assert_eq!(server.hits("/bing-blocked/images/async"), 0);

        let entries = read_manifest(&root.join("raw/yellow"));
        let outcome: Vec<(Status, Option<Reason>)> = entries.iter().map(|e| (e.status, e.reason)).collect();
        assert_eq!(
            outcome,
            [
                (Status::Rejected, Some(Reason::LayoutChanged)),
                (Status::Rejected, Some(Reason::RobotsDisallowed)),
                (Status::Accepted, None)
            ]
        );
        assert!(entries[0].image_url.starts_with(&server.url("/bing-changed/images/async?q=")));
        assert_eq!((entries[0].source.as_str(), entries[0].rank), ("bing", 0));
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dot_dot_in_a_url_cannot_write_outside_the_dataset() {
    tokio::time::timeout(LIMIT, async {
        let server = Fixture::start().await;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        let urls = [
            server.url("/img/../img/dotdot.png"),
            server.url("/../../../../escape.png"),
            server.url("/img/%2e%2e/%2e%2e/escape-encoded.png"),
            server.url("/img/..%2f..%2f..%2fescape-slash.png"),
        ];
        let list = write_list(dir.path(), "urls.txt", &urls);
        let summary = crawl(&url_request("tricks", &list, 10), &fast_options(), &root).await.unwrap();
        // URL parsing resolves `..` (also written `%2e%2e`) before the
        // request; an encoded slash stays in the name the server sees. Two
        // images arrive, and both are named by their hash.
        assert_eq!((summary.accepted, summary.rejected), (2, 2));
        assert_eq!(server.hits("/img/dotdot.png"), 1);
        assert_eq!(server.hits("/img/..%2f..%2f..%2fescape-slash.png"), 1);

        let mut outside = Vec::new();
        let mut stack = vec![dir.path().to_owned()];
        while let Some(folder) = stack.pop() {
            for entry in std::fs::read_dir(&folder).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else if !path.starts_with(&root) && path != list {
                    outside.push(path);
                } else {
                    let name = path.file_name().unwrap().to_str().unwrap();
                    assert!(
                        !name.contains("escape") && !name.contains("dotdot"),
                        "a URL named a file: {}",
                        path.display()
                    );
                }
            }
        }
        assert!(outside.is_empty(), "written outside the dataset: {outside:?}");
        assert_eq!(check_folder(&root.join("raw/tricks")).len(), 2);
    })
    .await
    .unwrap();
}

/// Signals once `after` manifest lines have been written.
struct StopAfter {
    after: usize,
    lines: AtomicUsize,
    stop: Notify,
}

impl Progress for StopAfter {
    fn recorded(&self, _: &SetName, _: &ManifestEntry, _: usize) {
        if self.lines.fetch_add(1, Ordering::SeqCst) + 1 == self.after {
            self.stop.notify_one();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_crawl_loses_nothing_and_the_rerun_fetches_only_what_is_missing() {
    tokio::time::timeout(LIMIT, async {
        let server = Fixture::start().await;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        let paths: Vec<String> = (0..12).map(|i| format!("/slowish/s{i}.png")).collect();
        let list = write_list(dir.path(), "urls.txt", &paths.iter().map(|p| server.url(p)).collect::<Vec<_>>());
        let request = url_request("interrupted", &list, 12);
        let crawler = Crawler::new(&fast_options()).unwrap();

        // Drop the crawl's future as soon as three lines are written, with
        // downloads still in flight.
        let progress = StopAfter { after: 3, lines: AtomicUsize::new(0), stop: Notify::new() };
        tokio::select! {
            result = crawler.crawl_with_progress(&request, &root, &progress) => panic!("the crawl ended before the interrupt: {result:?}"),
            () = progress.stop.notified() => {}
        }
        // Let any write already handed to a blocking thread finish.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let set_dir = root.join("raw/interrupted");
        let before = read_manifest(&set_dir);
        assert!((3..12).contains(&before.len()), "{} lines", before.len());
        assert!(before.iter().all(|e| e.status == Status::Accepted));
        assert_eq!(check_folder(&set_dir).len(), before.len(), "every line's image, and nothing else");
        let leftovers: Vec<_> = std::fs::read_dir(root.join("raw").join(OBJECTS_DIR))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "partial files: {leftovers:?}");

        let summary = crawler.crawl(&request, &root).await.unwrap();
        assert_eq!((summary.accepted, summary.added, summary.skipped), (12, 12 - before.len(), before.len()));
        for entry in &before {
            let path = entry.image_url.strip_prefix(&server.url("")).unwrap();
            assert_eq!(server.hits(path), 1, "{path} was fetched again");
        }
        let total: usize = paths.iter().map(|p| server.hits(p)).sum();
        assert!(total <= 12 + fast_options().concurrency, "{total} requests: only what was in flight may be fetched twice");
        assert_eq!(check_folder(&set_dir).len(), 12);
    })
    .await
    .unwrap();
}

#[derive(Default)]
struct Counts {
    started: AtomicUsize,
    recorded: AtomicUsize,
    finished: AtomicUsize,
}

impl Progress for Counts {
    fn started(&self, _: &SetName, _: usize, _: usize) {
        self.started.fetch_add(1, Ordering::SeqCst);
    }
    fn recorded(&self, _: &SetName, _: &ManifestEntry, _: usize) {
        self.recorded.fetch_add(1, Ordering::SeqCst);
    }
    fn finished(&self, _: &SetName, _: &CrawlSummary) {
        self.finished.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_definition_crawls_each_set_into_the_dataset_root() {
    tokio::time::timeout(LIMIT, async {
        let server = Fixture::start().await;
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            r#"
dataset = "tiny"
user_agent = "{TEST_USER_AGENT}"
sources = [{{ kind = "openverse", base_url = "{openverse}", page_size = 5 }}]
[options]
timeout_secs = 1
retries = 0
per_host_rate = 1000
[[sets]]
name = "red"
query = "red"
max_num = 3
[[sets]]
name = "random500_0"
query = "street"
max_num = 2
sources = [{{ kind = "url_list", path = "lists/random.txt" }}]
"#,
            openverse = server.url("/openverse")
        );
        std::fs::create_dir(dir.path().join("lists")).unwrap();
        std::fs::write(
            dir.path().join("lists/random.txt"),
            format!("{}\n{}\n", server.url("/img/r0.png"), server.url("/img/r1.png")),
        )
        .unwrap();
        let path = dir.path().join("crawl.toml");
        std::fs::write(&path, text).unwrap();
        let definition = crate::CrawlDefinition::load(&path).unwrap();
        let counts = Counts::default();
        let root = crate::definition::default_dataset_root(&path);
        let outcomes = definition.run(&root, &counts).await.unwrap();
        let got: Vec<(&str, usize)> =
            outcomes.iter().map(|o| (o.set.as_str(), o.result.as_ref().unwrap().accepted)).collect();
        assert_eq!(got, [("red", 3), ("random500_0", 2)]);
        assert_eq!(check_folder(&dir.path().join("raw/red")).len(), 3);
        assert_eq!(check_folder(&dir.path().join("raw/random500_0")).len(), 2);
        assert_eq!((counts.started.load(Ordering::SeqCst), counts.finished.load(Ordering::SeqCst)), (2, 2));
        assert!(counts.recorded.load(Ordering::SeqCst) >= 5);
    })
    .await
    .unwrap();
}

/// A set with several queries: per source, the queries take turns one
/// candidate each (so 7 images from 3 queries split 3/2/2, Openverse before
/// Commons), and every line records the query that found it.
#[test]
fn several_queries_take_turns_and_each_image_records_its_query() {
    use crate::fixture::SearchFixture;
    use crate::source::UrlListSpec;

    let server = SearchFixture::start(4, |query, i| {
        let [r, g, b, ..] = *blake3::hash(query.as_bytes()).as_bytes();
        image::RgbImage::from_fn(16, 16, |x, y| image::Rgb([r, g ^ (i as u8).wrapping_mul(40), b ^ ((x + y) as u8)]))
    });
    let dir = tempfile::tempdir().unwrap();
    let list = write_list(dir.path(), "urls.txt", &[]);
    let root = dir.path().join("data");
    let openverse = OpenverseSpec { base_url: server.openverse_base_url(), ..OpenverseSpec::default() };
    let commons = CommonsSpec { base_url: server.commons_base_url(), ..CommonsSpec::default() };
    let sources = vec![
        SourceSpec::UrlList(UrlListSpec { path: list }),
        SourceSpec::Openverse(openverse),
        SourceSpec::Commons(commons),
    ];
    let mut everyday = request("random500_0", "", sources, 7);
    everyday.queries = vec!["street".into(), "kitchen".into(), "bicycle".into()];
    everyday.validate().unwrap();

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let run = |request: CrawlRequest| {
        let root = root.clone();
        runtime.block_on(async move { tokio::time::timeout(LIMIT, crawl(&request, &fast_options(), &root)).await })
    };
    let summary = run(everyday.clone()).unwrap().unwrap();
    assert_eq!((summary.accepted, summary.exhausted), (7, false));
    let kept = |entries: &[ManifestEntry], query: &str| {
        entries.iter().filter(|e| e.query == query && e.status == Status::Accepted).count()
    };
    let entries = read_manifest(&root.join("raw/random500_0"));
    assert_eq!(["street", "kitchen", "bicycle"].map(|q| kept(&entries, q)), [3, 2, 2]);
    assert!(entries.iter().all(|e| e.source == "openverse"), "Openverse had enough: {entries:?}");
    for entry in &entries {
        assert!(entry.image_url.contains(&format!("q={}", entry.query)), "{entry:?}");
    }

    // Topped up past what Openverse holds (4 a query): Commons takes over,
    // still in turns, and every query keeps its own images.
    everyday.max_num = 18;
    let summary = run(everyday).unwrap().unwrap();
    assert_eq!((summary.accepted, summary.exhausted), (18, false));
    let entries = read_manifest(&root.join("raw/random500_0"));
    assert_eq!(["street", "kitchen", "bicycle"].map(|q| kept(&entries, q)), [6, 6, 6]);
    let from_commons: Vec<&str> =
        entries.iter().filter(|e| e.source.starts_with("commons")).map(|e| e.query.as_str()).collect();
    assert_eq!(from_commons.len(), 6);
    drop(server);
}
