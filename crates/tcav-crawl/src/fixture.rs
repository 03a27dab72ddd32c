//! Loopback HTTP servers for tests (the `fixture` feature, or this crate's
//! own tests).
//!
//! * [`SearchFixture`] (public): answers the Openverse and Wikimedia Commons
//!   APIs like the real ones, for any query, with images a test draws in
//!   code, so a whole crawl definition can run offline by pointing its
//!   sources' `base_url`s at it.
//! * `Fixture` (this crate's tests only): misbehaves on purpose. It serves
//!   each path in one fixed way (good images, errors, stalls, lies, and the
//!   real answer shapes of Openverse, the MediaWiki API and Bing's result
//!   pages) and records every request.
//!
//! Both listen on 127.0.0.1 on a port the OS picks and stop when dropped.

// With only the `fixture` feature, the crawler's own misbehaving server and
// its helpers are compiled but unused.
#![cfg_attr(not(test), allow(dead_code, reason = "the misbehaving server is used by this crate's tests only"))]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

use crate::request::CrawlOptions;

/// The byte cap tests crawl with; `/big*` bodies are twice this.
pub(crate) const CAP: u64 = 16 * 1024;

/// A user agent with a contact, as Wikimedia asks.
pub(crate) const TEST_USER_AGENT: &str = "tcav-crawl-tests/0.1 (mailto:tests@localhost)";

/// Options that keep tests fast: short time-outs and retry waits, no real
/// rate limit.
pub(crate) fn fast_options() -> CrawlOptions {
    CrawlOptions {
        user_agent: TEST_USER_AGENT.to_owned(),
        timeout: Duration::from_secs(1),
        retries: 2,
        retry_base_delay: Duration::from_millis(10),
        max_retry_after: Duration::from_secs(2),
        per_host_rate: NonZeroU32::MIN.saturating_add(999),
        ..CrawlOptions::default()
    }
}

fn encode(name: &str, format: image::ImageFormat) -> Vec<u8> {
    // Each name gets its own colour, so different names give different bytes.
    let h = blake3::hash(name.as_bytes());
    let [r, g, b, ..] = *h.as_bytes();
    let img = image::RgbImage::from_fn(8, 8, |x, y| image::Rgb([r ^ (x as u8 * 16), g ^ (y as u8 * 16), b]));
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img).write_to(&mut out, format).expect("encoding a test image");
    out.into_inner()
}

/// A small valid PNG, different for each name.
pub(crate) fn png(name: &str) -> Vec<u8> {
    encode(name, image::ImageFormat::Png)
}

/// A small valid JPEG, different for each name.
pub(crate) fn jpeg(name: &str) -> Vec<u8> {
    encode(name, image::ImageFormat::Jpeg)
}

/// A small valid GIF, different for each name.
pub(crate) fn gif(name: &str) -> Vec<u8> {
    encode(name, image::ImageFormat::Gif)
}

/// A small valid WebP, different for each name.
pub(crate) fn webp(name: &str) -> Vec<u8> {
    encode(name, image::ImageFormat::WebP)
}

/// The fixture's robots.txt.
pub(crate) const ROBOTS_TXT: &str = "User-agent: *\nDisallow: /private/\nDisallow: /bing-blocked/\n";

#[derive(Default)]
struct Log {
    hits: Mutex<Vec<(String, String, Instant)>>,
    user_agents: Mutex<Vec<String>>,
    addr: OnceLock<SocketAddr>,
}

/// A running fixture server.
pub(crate) struct Fixture {
    addr: SocketAddr,
    log: Arc<Log>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Binds a loopback port and serves `app` on it from the current runtime.
async fn listen(app: Router) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binding a loopback port");
    let addr = listener.local_addr().expect("reading the bound address");
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, task)
}

impl Fixture {
    pub(crate) async fn start() -> Fixture {
        let log = Arc::new(Log::default());
        let app = Router::new().fallback(serve).with_state(log.clone());
        let (addr, task) = listen(app).await;
        let _ = log.addr.set(addr);
        Fixture { addr, log, task }
    }

    /// The full URL of `path` on this server.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// How many requests `path` received.
    pub(crate) fn hits(&self, path: &str) -> usize {
        self.hit_times(path).len()
    }

    /// The same server under the name `localhost`, which the crawler
    /// counts as another host.
    pub(crate) fn localhost_url(&self, path: &str) -> String {
        format!("http://localhost:{}{path}", self.addr.port())
    }

    /// When `path` was requested, in order.
    pub(crate) fn hit_times(&self, path: &str) -> Vec<Instant> {
        self.log.hits.lock().expect("fixture log").iter().filter(|(p, _, _)| p == path).map(|(_, _, t)| *t).collect()
    }

    /// The query parameters of every request for `path`, in order.
    pub(crate) fn queries(&self, path: &str) -> Vec<BTreeMap<String, String>> {
        let hits = self.log.hits.lock().expect("fixture log");
        hits.iter().filter(|(p, _, _)| p == path).map(|(_, q, _)| query_pairs(q)).collect()
    }

    /// All requests received.
    pub(crate) fn total_hits(&self) -> usize {
        self.log.hits.lock().expect("fixture log").len()
    }

    /// The `User-Agent` of every request, in order.
    pub(crate) fn user_agents(&self) -> Vec<String> {
        self.log.user_agents.lock().expect("fixture log").clone()
    }
}

fn query_pairs(query: &str) -> BTreeMap<String, String> {
    reqwest::Url::parse(&format!("http://fixture/?{query}"))
        .map(|u| u.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect())
        .unwrap_or_default()
}

fn image_response(content_type: &'static str, bytes: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, content_type)], bytes).into_response()
}

fn redirect(to: &str) -> Response {
    (StatusCode::FOUND, [(header::LOCATION, to.to_owned())]).into_response()
}

async fn serve(State(log): State<Arc<Log>>, headers: HeaderMap, uri: Uri) -> Response {
    let path = uri.path().to_owned();
    let query = query_pairs(uri.query().unwrap_or_default());
    let base = log.addr.get().map_or_else(String::new, |addr| format!("http://{addr}"));
    let previous_hits = {
        let mut hits = log.hits.lock().expect("fixture log");
        let n = hits.iter().filter(|(p, _, _)| *p == path).count();
        hits.push((path.clone(), uri.query().unwrap_or_default().to_owned(), Instant::now()));
        n
    };
    let agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    log.user_agents.lock().expect("fixture log").push(agent);

    if let Some(name) = path.strip_prefix("/img/") {
        let (stem, ext) = name.rsplit_once('.').unwrap_or((name, ""));
        return match ext {
            "png" => image_response("image/png", png(stem)),
            "jpg" => image_response("image/jpeg", jpeg(stem)),
            "gif" => image_response("image/gif", gif(stem)),
            "webp" => image_response("image/webp", webp(stem)),
            _ => StatusCode::NOT_FOUND.into_response(),
        };
    }
    // Images behind URLs with no extension at all.
    if let Some(name) = path.strip_prefix("/noext/") {
        return image_response("image/png", png(name));
    }
    // Never fetched by a crawler that obeys the fixture's robots.txt.
    if let Some(name) = path.strip_prefix("/private/") {
        return image_response("image/png", png(name));
    }
    // Slow enough that a crawl can be stopped with downloads in flight.
    if let Some(name) = path.strip_prefix("/slowish/") {
        tokio::time::sleep(Duration::from_millis(150)).await;
        return image_response("image/png", png(name.trim_end_matches(".png")));
    }
    // A redirect to another host name of this server.
    if let Some(rest) = path.strip_prefix("/to-ip/") {
        let port = log.addr.get().map_or(0, SocketAddr::port);
        return redirect(&format!("http://127.0.0.1:{port}/{rest}"));
    }
    if let Some(n) = path.strip_prefix("/chain/").and_then(|n| n.parse::<u32>().ok()) {
        return redirect(&format!("/chain/{}", n + 1));
    }
    match path.as_str() {
        // The same bytes as /img/a.png under another URL.
        "/same-as-a.png" => image_response("image/png", png("a")),
        // Declared wrongly, but the bytes are a PNG.
        "/octet.png" => image_response("application/octet-stream", png("octet")),
        "/flaky.png" if previous_hits == 0 => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        "/flaky.png" => image_response("image/png", png("flaky")),
        "/ratelimited.png" if previous_hits == 0 => {
            (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, "1")], "slow down").into_response()
        }
        "/ratelimited.png" => image_response("image/png", png("ratelimited")),
        "/busy.png" => StatusCode::SERVICE_UNAVAILABLE.into_response(),
        "/slow.png" => {
            tokio::time::sleep(Duration::from_secs(10)).await;
            image_response("image/png", png("slow"))
        }
        "/cut.png" => {
            // Announce the whole image, send half, then break the connection.
            let full = png("cut");
            let half = Bytes::copy_from_slice(&full[..full.len() / 2]);
            // The pause lets the headers and the first half reach the client
            // before the connection breaks.
            let chunks =
                futures_util::stream::iter([Ok(half), Err(std::io::Error::other("connection cut by the fixture"))])
                    .then(|chunk| async move {
                        if chunk.is_err() {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        chunk
                    });
            Response::builder()
                .header(header::CONTENT_TYPE, "image/png")
                .header(header::CONTENT_LENGTH, full.len())
                .body(Body::from_stream(chunks))
                .expect("building the cut response")
        }
        "/html.jpg" => {
            image_response("image/jpeg", b"<!DOCTYPE html><html><body>Image not found</body></html>".to_vec())
        }
        "/big.png" => {
            let mut body = png("big");
            body.resize(2 * CAP as usize, 0);
            image_response("image/png", body)
        }
        "/big-stream.png" => {
            // No Content-Length: only counting while streaming can stop it.
            let mut first = png("big-stream");
            first.resize(4096, 0);
            let rest = (0..(2 * CAP as usize / 4096)).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![0u8; 4096])));
            let chunks = std::iter::once(Ok(Bytes::from(first))).chain(rest);
            Response::builder()
                .header(header::CONTENT_TYPE, "image/png")
                .body(Body::from_stream(futures_util::stream::iter(chunks)))
                .expect("building the streamed response")
        }
        "/robots.txt" => ([(header::CONTENT_TYPE, "text/plain")], ROBOTS_TXT).into_response(),
        "/openverse/v1/images/" => openverse(&query, &base),
        "/commons/w/api.php" => commons(&query, &base),
        "/commons-broken/w/api.php" => json_response(
            &serde_json::json!({"error": {"code": "internal_api_error_DBQueryError", "info": "A database query error has occurred."}}),
        ),
        "/bing/images/async" => bing(&query, &base),
        "/bing-blocked/images/async" => bing(&query, &base),
        "/bing-changed/images/async" => {
            let page = "<html><body><div class=\"imgpt\"><a class=\"iuscp\" data-m=\"{}\" href=\"/x\">new layout</a></div></body></html>";
            ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response()
        }
        "/loop" => redirect("/loop"),
        "/redirect.png" => redirect("/img/redirected.png"),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

fn json_response(value: &serde_json::Value) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], value.to_string()).into_response()
}

/// How many results the Openverse fixture holds before licence filtering.
pub(crate) const OPENVERSE_RESULTS: usize = 23;

/// One Openverse result: fault results at fixed positions, good images
/// elsewhere.
fn openverse_result(i: usize, base: &str) -> serde_json::Value {
    let (url, filetype, license) = match i {
        3 => ("/missing.png".to_owned(), "png", "by"),
        7 => ("/html.jpg".to_owned(), "jpg", "cc0"),
        11 => (format!("/img/ov-{i}.svg"), "svg", "by"),
        15 => (format!("/img/ov-{i}.jpg"), "jpg", "by-nc"),
        _ if i.is_multiple_of(2) => (format!("/img/ov-{i}.jpg"), "jpg", ["by", "cc0", "by-sa"][i % 3]),
        _ => (format!("/img/ov-{i}.png"), "png", ["by", "cc0", "by-sa"][i % 3]),
    };
    serde_json::json!({
        "id": format!("00000000-0000-0000-0000-{i:012}"),
        "title": format!("Red thing {i}"),
        "foreign_landing_url": format!("https://www.flickr.com/photos/someone/{i}"),
        "url": format!("{base}{url}"),
        "creator": format!("Creator {i}"),
        "creator_url": null,
        "license": license,
        "license_version": if license == "cc0" { "1.0" } else { "4.0" },
        "license_url": "https://creativecommons.org/licenses/by/4.0/",
        "provider": "flickr",
        "source": "flickr",
        "filetype": filetype,
        "filesize": null,
        "width": 8,
        "height": 8,
        "tags": [],
        "mature": false,
    })
}

/// `GET /openverse/v1/images/?q&page&page_size[&license]`, as Openverse
/// answers it, with result URLs on this server.
fn openverse(query: &BTreeMap<String, String>, base: &str) -> Response {
    let page: usize = query.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
    let page_size: usize = query.get("page_size").and_then(|p| p.parse().ok()).unwrap_or(20);
    let licences: Option<Vec<&str>> = query.get("license").map(|l| l.split(',').collect());
    let all: Vec<serde_json::Value> = (0..OPENVERSE_RESULTS)
        .map(|i| openverse_result(i, base))
        .filter(|r| licences.as_ref().is_none_or(|ls| r["license"].as_str().is_some_and(|l| ls.contains(&l))))
        .collect();
    let page_count = all.len().div_ceil(page_size);
    if page == 0 || page > page_count.max(1) {
        return (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"detail":"Invalid page."}"#,
        )
            .into_response();
    }
    let results: Vec<_> = all.iter().skip((page - 1) * page_size).take(page_size).cloned().collect();
    json_response(&serde_json::json!({
        "result_count": all.len(),
        "page_count": page_count,
        "page_size": page_size,
        "page": page,
        "results": results,
    }))
}

/// How many files the Commons fixture finds.
pub(crate) const COMMONS_RESULTS: usize = 7;

/// `GET /commons/w/api.php?action=query&generator=search…`, as MediaWiki
/// answers it with `formatversion=2`, continued by `gsroffset`.
fn commons(query: &BTreeMap<String, String>, base: &str) -> Response {
    let expect = [
        ("action", "query"),
        ("generator", "search"),
        ("gsrnamespace", "6"),
        ("prop", "imageinfo"),
        ("format", "json"),
    ];
    if let Some((key, _)) = expect.iter().find(|(k, v)| query.get(*k).map(String::as_str) != Some(*v)) {
        return json_response(
            &serde_json::json!({"error": {"code": "badparams", "info": format!("missing or wrong {key}")}}),
        );
    }
    if !query.get("iiprop").is_some_and(|p| p.split('|').any(|x| x == "extmetadata")) {
        return json_response(&serde_json::json!({"error": {"code": "badparams", "info": "iiprop lacks extmetadata"}}));
    }
    let limit: usize = query.get("gsrlimit").and_then(|p| p.parse().ok()).unwrap_or(10);
    let offset: usize = query.get("gsroffset").and_then(|p| p.parse().ok()).unwrap_or(0);
    let thumbs = query.contains_key("iiurlwidth");
    let end = (offset + limit).min(COMMONS_RESULTS);
    let mut pages: Vec<serde_json::Value> = (offset..end)
        .map(|i| {
            let mut info = serde_json::json!({
                "size": 1234, "width": 800, "height": 600,
                "url": format!("{base}/img/commons-{i}-orig.jpg"),
                "descriptionurl": format!("https://commons.wikimedia.org/wiki/File:Commons_{i}.jpg"),
                "descriptionshorturl": format!("https://commons.wikimedia.org/w/index.php?curid={}", 1000 + i),
                "mime": "image/jpeg",
                "extmetadata": {
                    "LicenseShortName": {"value": if i == 1 { "CC0" } else { "CC BY-SA 4.0" }, "source": "commons-desc-page", "hidden": ""},
                    "Artist": {"value": format!("<a href=\"//commons.wikimedia.org/wiki/User:Ash{i}\" title=\"User:Ash{i}\">Ash <b>Ketchum</b> {i}</a>"), "source": "commons-desc-page"},
                }
            });
            if i == 2 {
                info["mime"] = "application/pdf".into();
            } else if thumbs {
                info["thumburl"] = format!("{base}/img/commons-{i}.png").into();
                info["thumbwidth"] = 8.into();
                info["thumbheight"] = 8.into();
                info["thumbmime"] = "image/png".into();
            }
            if i == 4 {
                info["extmetadata"].as_object_mut().map(|m| m.remove("LicenseShortName"));
            }
            serde_json::json!({"pageid": 1000 + i, "ns": 6, "title": format!("File:Commons {i}.jpg"), "index": i + 1, "imageinfo": [info]})
        })
        .collect();
    // MediaWiki does not list pages in search order; `index` gives it.
    pages.reverse();
    let mut answer = serde_json::json!({"batchcomplete": true, "query": {"pages": pages}});
    if end < COMMONS_RESULTS {
        answer["continue"] = serde_json::json!({"gsroffset": end, "continue": "gsroffset||"});
    }
    json_response(&answer)
}

/// The result anchors the Bing fixture lists, in order: `(murl, title)`;
/// a `None` murl stands for an anchor whose `m` is not JSON.
pub(crate) const BING_RESULTS: [(Option<&str>, &str); 12] = [
    (Some("/img/b0.png"), "PNG"),
    (Some("/img/b1.jpg"), "JPEG"),
    (Some("/img/b2.webp"), "WebP"),
    (Some("/img/b3.gif?w=300&h=200"), "GIF with a query"),
    (Some("/private/b4.png"), "forbidden by robots.txt"),
    (None, "broken m"),
    (Some("/noext/b6"), "no extension"),
    (Some("/img/b7.jpg"), "JPEG"),
    (Some("/img/b8.png"), "PNG"),
    (Some("/img/b9.png"), "PNG"),
    (Some("/img/b0.png"), "a repeat"),
    (Some("/html.jpg"), "HTML served as image/jpeg"),
];

/// `GET /bing/images/async?q&first&count`: at most four result anchors a
/// page (Bing often gives fewer than asked), then pages with none.
fn bing(query: &BTreeMap<String, String>, base: &str) -> Response {
    let first: usize = query.get("first").and_then(|p| p.parse().ok()).unwrap_or(0);
    let mut page =
        String::from("<!DOCTYPE html><html><head><title>Bing</title></head><body><div class=\"dgControl\"><ul>");
    for (murl, title) in BING_RESULTS.iter().skip(first).take(4) {
        let m = match murl {
            Some(murl) => serde_json::json!({
                "cid": "abc", "purl": format!("https://pages.example/{title}"), "murl": format!("{base}{murl}"),
                "turl": "https://tse1.mm.bing.net/th?id=x", "md5": "0", "shkey": "", "t": title, "mid": "", "desc": ""
            })
            .to_string(),
            None => "{\"murl\": ".to_owned(),
        };
        let escaped = m.replace('&', "&amp;").replace('"', "&quot;").replace('<', "&lt;");
        page.push_str(&format!(
            "<li><div class=\"iuscp\"><a class=\"iusc\" style=\"height:180px\" m=\"{escaped}\" href=\"/images/search?view=detailV2\"><img class=\"mimg\" src=\"https://tse1.mm.bing.net/th\"/></a></div></li>"
        ));
    }
    page.push_str("</ul></div></body></html>");
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response()
}

/// Draws result `index` of a search for `query`: the image a
/// [`SearchFixture`] serves for it.
pub type Draw = dyn Fn(&str, usize) -> image::RgbImage + Send + Sync;

/// A loopback server that answers Openverse and Wikimedia Commons searches
/// as the real APIs do (the answer shapes, paging, licences, creators and
/// Commons thumbnails), for any query, with images drawn by the test.
///
/// Each query has `per_query` Openverse results (indices `0..per_query`)
/// and as many Commons files (indices `per_query..2 * per_query`), so the
/// two sources never offer the same image. Result licences cycle through
/// CC BY, CC0 and CC BY-SA. The server runs on its own runtime thread, so
/// synchronous code (such as an experiment that starts its own runtime)
/// can crawl it; start and drop it outside any async context.
pub struct SearchFixture {
    addr: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
}

struct Search {
    per_query: usize,
    draw: Box<Draw>,
    base: OnceLock<String>,
}

impl SearchFixture {
    /// Starts the server; `draw(query, index)` makes each result's image.
    pub fn start(per_query: usize, draw: impl Fn(&str, usize) -> image::RgbImage + Send + Sync + 'static) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("starting the fixture's runtime");
        let search = Arc::new(Search { per_query, draw: Box::new(draw), base: OnceLock::new() });
        let app = Router::new().fallback(answer_search).with_state(search.clone());
        let (addr, _task) = runtime.block_on(listen(app));
        let _ = search.base.set(format!("http://{addr}"));
        SearchFixture { addr, runtime: Some(runtime) }
    }

    /// The `base_url` of an `openverse` source that searches this server.
    pub fn openverse_base_url(&self) -> String {
        format!("http://{}/openverse", self.addr)
    }

    /// The `base_url` of a `commons` source that searches this server.
    pub fn commons_base_url(&self) -> String {
        format!("http://{}/commons/w/api.php", self.addr)
    }
}

impl Drop for SearchFixture {
    fn drop(&mut self) {
        // Stops the server without waiting for connections a client left
        // open.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

const SEARCH_LICENCES: [(&str, &str, &str); 3] =
    [("by", "4.0", "CC BY 4.0"), ("cc0", "1.0", "CC0"), ("by-sa", "4.0", "CC BY-SA 4.0")];

async fn answer_search(State(search): State<Arc<Search>>, uri: Uri) -> Response {
    let query = query_pairs(uri.query().unwrap_or_default());
    let base = search.base.get().cloned().unwrap_or_default();
    let q = query.get("q").cloned().unwrap_or_default();
    let number = |key: &str, default: usize| query.get(key).and_then(|v| v.parse().ok()).unwrap_or(default);
    let image_url = |q: &str, i: usize| {
        let mut url = reqwest::Url::parse(&format!("{base}/search-image.png")).expect("the fixture's own URL");
        url.query_pairs_mut().append_pair("q", q).append_pair("i", &i.to_string());
        url.to_string()
    };
    match uri.path() {
        "/search-image.png" => {
            let image = (search.draw)(&q, number("i", 0));
            let mut out = std::io::Cursor::new(Vec::new());
            match image::DynamicImage::ImageRgb8(image).write_to(&mut out, image::ImageFormat::Png) {
                Ok(()) => image_response("image/png", out.into_inner()),
                Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
            }
        }
        "/openverse/v1/images/" => {
            let (page, page_size) = (number("page", 1).max(1), number("page_size", 20).max(1));
            let wanted: Option<Vec<&str>> = query.get("license").map(|l| l.split(',').collect());
            let all: Vec<serde_json::Value> = (0..search.per_query)
                .filter_map(|i| {
                    let (code, version, _) = SEARCH_LICENCES[i % 3];
                    if wanted.as_ref().is_some_and(|w| !w.contains(&code)) {
                        return None;
                    }
                    let image = (search.draw)(&q, i);
                    Some(serde_json::json!({
                        "id": format!("00000000-0000-0000-0000-{i:012}"),
                        "title": format!("{q} {i}"),
                        "foreign_landing_url": format!("https://www.flickr.com/photos/someone/{i}"),
                        "url": image_url(&q, i),
                        "creator": format!("Photographer {i}"),
                        "license": code,
                        "license_version": version,
                        "provider": "flickr",
                        "filetype": "png",
                        "width": image.width(),
                        "height": image.height(),
                    }))
                })
                .collect();
            let page_count = all.len().div_ceil(page_size);
            let results: Vec<_> = all.iter().skip((page - 1) * page_size).take(page_size).cloned().collect();
            json_response(&serde_json::json!({
                "result_count": all.len(), "page_count": page_count, "page_size": page_size, "page": page,
                "results": results,
            }))
        }
        "/commons/w/api.php" => {
            let q =
                query.get("gsrsearch").map(|s| s.trim_start_matches("filetype:bitmap ").to_owned()).unwrap_or_default();
            let (limit, offset) = (number("gsrlimit", 10).max(1), number("gsroffset", 0));
            let end = (offset + limit).min(search.per_query);
            let pages: Vec<serde_json::Value> = (offset..end)
                .map(|n| {
                    let i = search.per_query + n;
                    let image = (search.draw)(&q, i);
                    let url = image_url(&q, i);
                    let info = serde_json::json!({
                        "width": image.width(), "height": image.height(), "url": url, "mime": "image/png",
                        "thumburl": url, "thumbwidth": image.width(), "thumbheight": image.height(), "thumbmime": "image/png",
                        "descriptionurl": format!("https://commons.wikimedia.org/wiki/File:Fixture_{i}.png"),
                        "extmetadata": {
                            "LicenseShortName": {"value": SEARCH_LICENCES[i % 3].2},
                            "Artist": {"value": format!("<a href=\"//commons.wikimedia.org/wiki/User:U{i}\">User {i}</a>")},
                        },
                    });
                    serde_json::json!({"pageid": 1000 + i, "ns": 6, "title": format!("File:Fixture {i}.png"), "index": n + 1, "imageinfo": [info]})
                })
                .collect();
            let mut answer = serde_json::json!({"batchcomplete": true, "query": {"pages": pages}});
            if end < search.per_query {
                answer["continue"] = serde_json::json!({"gsroffset": end, "continue": "gsroffset||"});
            }
            json_response(&answer)
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}
