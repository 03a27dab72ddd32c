//! The crawl loop against the misbehaving loopback server.

use std::collections::BTreeMap;
use std::time::Duration;

use super::*;
use crate::fixture::{CAP, Fixture, fast_options, gif, jpeg, png};
use crate::source::{LocalFolderSpec, SourceSpec, UrlListSpec};

/// Every test gets this long; a hang fails instead of blocking the suite.
pub(super) const LIMIT: Duration = Duration::from_secs(15);

pub(super) fn url_request(set: &str, list: &Path, max_num: usize) -> CrawlRequest {
    CrawlRequest {
        set: SetName::new(set).unwrap(),
        query: "stripes".into(),
        queries: Vec::new(),
        sources: vec![SourceSpec::UrlList(UrlListSpec { path: list.into() })],
        max_num,
        filters: Filters { max_bytes: CAP, ..Filters::default() },
    }
}

pub(super) fn write_list(dir: &Path, name: &str, urls: &[String]) -> PathBuf {
    let path = dir.join(name);
    let mut text = String::from("# written by the test\n\n");
    for url in urls {
        text.push_str(url);
        text.push('\n');
    }
    std::fs::write(&path, text).unwrap();
    path
}

pub(super) fn read_manifest(set_dir: &Path) -> Vec<ManifestEntry> {
    std::fs::read_to_string(set_dir.join(MANIFEST_FILE))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// Checks that the folder holds only the manifest and complete images named
/// by their own hash and type, and returns the image names.
pub(super) fn check_folder(set_dir: &Path) -> Vec<String> {
    let mut images = Vec::new();
    for entry in std::fs::read_dir(set_dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        if name == MANIFEST_FILE {
            continue;
        }
        let bytes = std::fs::read(entry.path()).unwrap();
        let expected = format!("{}.{}", blake3::hash(&bytes).to_hex(), sniff(&bytes).unwrap().extension());
        assert_eq!(name, expected, "every file must be a complete image named by its content");
        images.push(name);
    }
    images.sort();
    images
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_failure_is_recorded_with_its_reason_and_leaves_no_file() {
    tokio::time::timeout(LIMIT, async {
        let server = Fixture::start().await;
        let dir = tempfile::tempdir().unwrap();
        let paths = [
            "/img/a.png",
            "/img/b.jpg",
            "/octet.png",
            "/missing.png",
            "/flaky.png",
            "/ratelimited.png",
            "/busy.png",
            "/slow.png",
            "/cut.png",
            "/html.jpg",
            "/big.png",
            "/big-stream.png",
            "/loop",
            "/chain/0",
            "/redirect.png",
            "/same-as-a.png",
        ];
        let mut urls: Vec<String> = paths.iter().map(|p| server.url(p)).collect();
        urls.push("ftp://127.0.0.1/x.png".into());
        urls.push("not a url".into());
        let list = write_list(dir.path(), "urls.txt", &urls);
        let root = dir.path().join("data");
        let request = url_request("striped", &list, 50);

        let summary = crawl(&request, &fast_options(), &root).await.unwrap();

        let set_dir = root.join("raw/striped");
        let entries = read_manifest(&set_dir);
        assert_eq!(entries.len(), urls.len(), "one manifest line per candidate");
        let by_path: BTreeMap<&str, &ManifestEntry> =
            paths.iter().map(|p| (*p, entries.iter().find(|e| e.image_url == server.url(p)).unwrap())).collect();
        let outcome = |p: &str| {
            let e = by_path[p];
            (e.status, e.reason, e.retryable)
        };
        let accepted = (Status::Accepted, None, false);
        for p in ["/img/b.jpg", "/octet.png", "/flaky.png", "/ratelimited.png", "/redirect.png"] {
            assert_eq!(outcome(p), accepted, "{p}: {:?}", by_path[p].detail);
        }
        assert_eq!(by_path["/redirect.png"].final_url, Some(server.url("/img/redirected.png")));
        assert_eq!(by_path["/img/b.jpg"].final_url, None);
        assert!(entries.iter().all(|e| e.set == "striped"));
        // a.png and its copy race; whichever lands second is the duplicate.
        let mut pair = [outcome("/img/a.png"), outcome("/same-as-a.png")];
        pair.sort_by_key(|o| o.0 == Status::Rejected);
        assert_eq!(pair, [accepted, (Status::Rejected, Some(Reason::Duplicate), false)]);
        let rejected = |reason, retryable| (Status::Rejected, Some(reason), retryable);
        assert_eq!(outcome("/missing.png"), rejected(Reason::HttpStatus, false));
        assert_eq!(by_path["/missing.png"].http_status, Some(404));
        assert_eq!(outcome("/busy.png"), rejected(Reason::HttpStatus, true));
        assert_eq!(by_path["/busy.png"].http_status, Some(503));
        assert!(by_path["/busy.png"].detail.as_deref().unwrap().contains("gave up after 3 tries"));
        assert_eq!(outcome("/slow.png"), rejected(Reason::Timeout, true));
        assert_eq!(outcome("/cut.png"), rejected(Reason::Truncated, true));
        assert_eq!(outcome("/html.jpg"), rejected(Reason::NotAnImage, false));
        assert_eq!(by_path["/html.jpg"].content_type.as_deref(), Some("image/jpeg"));
        assert!(by_path["/html.jpg"].detail.as_deref().unwrap().contains("HTML"));
        assert_eq!(outcome("/big.png"), rejected(Reason::TooLarge, false));
        assert_eq!(outcome("/big-stream.png"), rejected(Reason::TooLarge, false));
        assert_eq!(outcome("/loop"), rejected(Reason::Redirect, false));
        assert!(by_path["/loop"].detail.as_deref().unwrap().contains("loop"), "{:?}", by_path["/loop"].detail);
        assert_eq!(outcome("/chain/0"), rejected(Reason::Redirect, false));
        assert!(by_path["/chain/0"].detail.as_deref().unwrap().contains("more than 5 redirects"));
        for url in ["ftp://127.0.0.1/x.png", "not a url"] {
            let e = entries.iter().find(|e| e.image_url == url).unwrap();
            assert_eq!((e.status, e.reason), (Status::Rejected, Some(Reason::UnsupportedUrl)));
        }

        // Retries: the passing failures were retried, the permanent ones not.
        assert_eq!(server.hits("/flaky.png"), 2);
        assert_eq!(server.hits("/ratelimited.png"), 2);
        let times = server.hit_times("/ratelimited.png");
        assert!(
            times[1] - times[0] >= Duration::from_millis(950),
            "Retry-After: 1 was not honoured: {:?}",
            times[1] - times[0]
        );
        assert_eq!(server.hits("/busy.png"), 3);
        assert_eq!(server.hits("/missing.png"), 1);
        assert_eq!(server.hits("/html.jpg"), 1);
        assert_eq!(server.hits("/chain/5"), 1, "the sixth redirect must not be followed");
        assert_eq!(server.hits("/chain/6"), 0);

        // Kept images carry their record; the folder holds only them.
        let kept = by_path["/img/b.jpg"];
        assert_eq!((kept.http_status, kept.image_type, kept.rank), (Some(200), Some(ImageType::Jpeg), 2));
        assert_eq!(kept.bytes, Some(jpeg("b").len() as u64));
        assert_eq!(kept.file.as_deref(), Some(format!("{}.jpg", blake3::hash(&jpeg("b")).to_hex()).as_str()));
        assert_eq!(kept.query, "stripes");
        assert!(kept.source.starts_with("url_list:"));
        let images = check_folder(&set_dir);
        assert_eq!(images.len(), 6);
        let on_disk: HashSet<String> = images.into_iter().collect();
        let recorded: HashSet<String> = entries.iter().filter_map(|e| e.file.clone()).collect();
        assert_eq!(on_disk, recorded);

        assert_eq!(
            summary,
            CrawlSummary {
                requested: 50,
                accepted: 6,
                added: 6,
                rejected: 12,
                skipped: 0,
                exhausted: true,
                failed_sources: Vec::new()
            }
        );
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reruns_download_nothing_twice_and_top_the_set_up() {
    tokio::time::timeout(LIMIT, async {
        let server = Fixture::start().await;
        let dir = tempfile::tempdir().unwrap();
        let paths =
            ["/img/r1.png", "/missing.png", "/img/r2.png", "/busy.png", "/img/r3.png", "/img/r4.png", "/img/r5.png"];
        let urls: Vec<String> = paths.iter().map(|p| server.url(p)).collect();
        let list = write_list(dir.path(), "urls.txt", &urls);
        let root = dir.path().join("data");
        let set_dir = root.join("raw/tops");
        let options = fast_options();

        let first = crawl(&url_request("tops", &list, 2), &options, &root).await.unwrap();
        assert_eq!((first.accepted, first.added, first.rejected, first.exhausted), (2, 2, 1, false));
        // Only as many downloads start as could still be needed.
        assert_eq!(server.hits("/img/r3.png") + server.hits("/busy.png"), 0);

        let second = crawl(&url_request("tops", &list, 4), &options, &root).await.unwrap();
        assert_eq!((second.accepted, second.added, second.skipped, second.exhausted), (4, 2, 3, false));

        let third = crawl(&url_request("tops", &list, 10), &options, &root).await.unwrap();
        assert_eq!(
            third,
            CrawlSummary {
                requested: 10,
                accepted: 5,
                added: 1,
                rejected: 1,
                skipped: 5,
                exhausted: true,
                failed_sources: Vec::new()
            }
        );

        for p in ["/img/r1.png", "/img/r2.png", "/img/r3.png", "/img/r4.png", "/img/r5.png", "/missing.png"] {
            assert_eq!(server.hits(p), 1, "{p} was downloaded more than once");
        }
        // A busy server is tried again on each run that reaches it.
        assert_eq!(server.hits("/busy.png"), 6);
        assert_eq!(check_folder(&set_dir).len(), 5);
        assert_eq!(read_manifest(&set_dir).len(), 3 + 3 + 2);

        // Full set: nothing is fetched, nothing is written.
        let hits_before = server.total_hits();
        let full = crawl(&url_request("tops", &list, 3), &options, &root).await.unwrap();
        assert_eq!((full.accepted, full.added, full.exhausted), (5, 0, false));
        assert_eq!(server.total_hits(), hits_before);
        assert_eq!(read_manifest(&set_dir).len(), 8);

        // A person deletes a bad image: it no longer counts, is not fetched
        // again, and the next candidate fills the gap.
        let r1 = blake3::hash(&png("r1")).to_hex().to_string();
        std::fs::remove_file(set_dir.join(format!("{r1}.png"))).unwrap();
        std::fs::write(&list, format!("{}\n{}\n", server.url("/img/r1.png"), server.url("/img/r6.png"))).unwrap();
        let curated = crawl(&url_request("tops", &list, 5), &options, &root).await.unwrap();
        assert_eq!((curated.accepted, curated.added, curated.skipped), (5, 1, 1));
        assert_eq!(server.hits("/img/r1.png"), 1);
        assert_eq!(server.hits("/img/r6.png"), 1);
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn local_folders_are_imported_without_the_network_and_only_once() {
    tokio::time::timeout(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let mine = dir.path().join("mine");
        std::fs::create_dir(&mine).unwrap();
        std::fs::write(mine.join("a.png"), png("a")).unwrap();
        std::fs::write(mine.join("b.jpeg"), jpeg("b")).unwrap();
        std::fs::write(mine.join("copy of a.png"), png("a")).unwrap();
        std::fs::write(mine.join("readme.txt"), "photos from the zoo").unwrap();
        std::fs::write(mine.join("huge.png"), vec![0u8; CAP as usize + 1]).unwrap();
        let root = dir.path().join("data");
        let request = CrawlRequest {
            set: SetName::new("zoo").unwrap(),
            query: String::new(),
            queries: Vec::new(),
            sources: vec![SourceSpec::LocalFolder(LocalFolderSpec { path: mine.clone() })],
            max_num: 10,
            filters: Filters { max_bytes: CAP, ..Filters::default() },
        };

        let summary = crawl(&request, &fast_options(), &root).await.unwrap();
        assert_eq!((summary.accepted, summary.added, summary.rejected, summary.exhausted), (2, 2, 3, true));
        let set_dir = root.join("raw/zoo");
        let images = check_folder(&set_dir);
        assert!(
            images.contains(&format!("{}.jpg", blake3::hash(&jpeg("b")).to_hex())),
            "stored under the sniffed type's extension"
        );
        let entries = read_manifest(&set_dir);
        assert!(entries.iter().all(|e| e.image_url.starts_with("file:///") && e.http_status.is_none()));
        let reasons: BTreeMap<String, Option<Reason>> =
            entries.iter().map(|e| (e.image_url.rsplit('/').next().unwrap().to_owned(), e.reason)).collect();
        // a.png and its copy race; whichever lands second is the duplicate.
        let mut pair = [reasons["a.png"], reasons["copy%20of%20a.png"]];
        pair.sort_by_key(Option::is_some);
        assert_eq!(pair, [None, Some(Reason::Duplicate)]);
        assert_eq!(reasons["readme.txt"], Some(Reason::NotAnImage));
        assert_eq!(reasons["huge.png"], Some(Reason::TooLarge));
        assert!(mine.join("a.png").exists(), "imported files are copied, not moved");

        let again = crawl(&request, &fast_options(), &root).await.unwrap();
        assert_eq!((again.accepted, again.added, again.rejected, again.skipped), (2, 0, 0, 5));
        assert_eq!(read_manifest(&set_dir).len(), 5);

        std::fs::write(mine.join("c.gif"), gif("c")).unwrap();
        let grown = crawl(&request, &fast_options(), &root).await.unwrap();
        assert_eq!((grown.accepted, grown.added), (3, 1));
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn sources_are_used_in_order_and_running_out_is_reported() {
    tokio::time::timeout(LIMIT, async {
        let server = Fixture::start().await;
        let dir = tempfile::tempdir().unwrap();
        let empty = write_list(dir.path(), "empty.txt", &[]);
        let one = write_list(dir.path(), "one.txt", &[server.url("/img/x.png"), server.url("/img/x.png")]);
        let folder = dir.path().join("empty-folder");
        std::fs::create_dir(&folder).unwrap();
        let root = dir.path().join("data");
        let mut request = url_request("few", &empty, 3);
        request.sources.push(SourceSpec::LocalFolder(LocalFolderSpec { path: folder }));
        request.sources.push(SourceSpec::UrlList(UrlListSpec { path: one }));

        let summary = crawl(&request, &fast_options(), &root).await.unwrap();
        assert_eq!(
            summary,
            CrawlSummary {
                requested: 3,
                accepted: 1,
                added: 1,
                rejected: 0,
                skipped: 1,
                exhausted: true,
                failed_sources: Vec::new()
            }
        );
        assert_eq!(server.hits("/img/x.png"), 1, "a URL listed twice is fetched once");

        let nothing = crawl(&url_request("none", &empty, 3), &fast_options(), &root).await.unwrap();
        assert_eq!(
            nothing,
            CrawlSummary {
                requested: 3,
                accepted: 0,
                added: 0,
                rejected: 0,
                skipped: 0,
                exhausted: true,
                failed_sources: Vec::new()
            }
        );
        assert!(read_manifest(&root.join("raw/none")).is_empty());
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_bad_definition_fails_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    let request = url_request("broken", &dir.path().join("no-such-list.txt"), 3);
    let err = crawl(&request, &fast_options(), &root).await.unwrap_err().to_string();
    assert!(err.contains("no-such-list.txt") && err.contains("`broken`"), "{err}");
    assert!(!root.exists(), "nothing may be created for a request that cannot run");

    let options = CrawlOptions { concurrency: 0, ..fast_options() };
    let list = write_list(dir.path(), "urls.txt", &[]);
    let err = crawl(&url_request("broken", &list, 3), &options, &root).await.unwrap_err().to_string();
    assert!(err.contains("concurrency"), "{err}");
}

#[test]
fn judging_applies_the_filters_to_the_sniffed_type_and_header() {
    let filters = Filters {
        min_bytes: 10,
        max_bytes: 1000,
        allowed_types: vec![ImageType::Png, ImageType::Jpeg],
        ..Filters::default()
    };
    let judged = |bytes: &[u8], filters: &Filters| {
        let mut checked = Checked::failed(Rejection::new(Reason::Network, false, ""));
        let verdict = judge(bytes, filters, &mut checked).map_err(|r| r.reason);
        (verdict, checked.image_type, checked.dimensions)
    };
    assert_eq!(judged(&png("ok"), &filters), (Ok(ImageType::Png), Some(ImageType::Png), Some((8, 8))));
    let reason = |bytes: &[u8]| judged(bytes, &filters).0;
    assert_eq!(reason(&gif("g")), Err(Reason::TypeNotAllowed));
    assert_eq!(reason(&png("ok")[..9]), Err(Reason::TooSmall));
    assert_eq!(reason(b"GIF89a is text here"), Err(Reason::TypeNotAllowed));
    assert_eq!(reason(b"hello world, no image"), Err(Reason::NotAnImage));
    let mut big = png("big");
    big.resize(1001, 0);
    assert_eq!(reason(&big), Err(Reason::TooLarge));
    // The right signature, then garbage where the header should be.
    let mut mangled = b"\x89PNG\r\n\x1a\n".to_vec();
    mangled.extend_from_slice(b"this is not an IHDR chunk");
    assert_eq!(judged(&mangled, &filters), (Err(Reason::Corrupt), Some(ImageType::Png), None));
    let demanding = Filters { min_side: 9, ..filters.clone() };
    assert_eq!(judged(&png("ok"), &demanding), (Err(Reason::TooSmall), Some(ImageType::Png), Some((8, 8))));
}

#[test]
fn what_a_source_says_is_judged_before_any_request() {
    let filters = Filters { min_side: 64, licences: vec!["by".into(), "CC0 1.0".into()], ..Filters::default() };
    let candidate = |licence: Option<&str>, mime: Option<&str>, size: Option<(u32, u32)>| {
        let mut c = Candidate::new(ImageRef::Url("http://h/x".into()), 1);
        c.licence = licence.map(str::to_owned);
        c.mime = mime.map(str::to_owned);
        c.width = size.map(|s| s.0);
        c.height = size.map(|s| s.1);
        prejudge(&c, &filters).map_err(|r| r.reason)
    };
    assert_eq!(candidate(Some("CC BY 4.0"), Some("image/jpeg"), Some((640, 480))), Ok(()));
    assert_eq!(candidate(Some("CC0"), None, None), Ok(()), "unknown type and size are judged after download");
    assert_eq!(candidate(None, None, None), Err(Reason::LicenceNotAllowed));
    assert_eq!(candidate(Some("CC BY-NC 2.0"), None, None), Err(Reason::LicenceNotAllowed));
    assert_eq!(candidate(Some("by"), Some("image/svg+xml"), None), Err(Reason::TypeNotAllowed));
    assert_eq!(candidate(Some("by"), Some("application/pdf"), None), Err(Reason::TypeNotAllowed));
    assert_eq!(candidate(Some("by"), Some("image/png"), Some((640, 40))), Err(Reason::TooSmall));
    let png_only = Filters { allowed_types: vec![ImageType::Png], ..Filters::default() };
    let mut gif_candidate = Candidate::new(ImageRef::Url("http://h/x.gif".into()), 1);
    gif_candidate.mime = Some("image/gif".into());
    assert_eq!(prejudge(&gif_candidate, &png_only).map_err(|r| r.reason), Err(Reason::TypeNotAllowed));
    assert_eq!(prejudge(&gif_candidate, &Filters::default()), Ok(()));
}
