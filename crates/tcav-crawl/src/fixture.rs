//! A loopback HTTP server that misbehaves on purpose, for tests.
//!
//! It listens on 127.0.0.1 on a port the OS picks, serves each path in one
//! fixed way (good images, errors, stalls, lies), records every request, and
//! stops when the [`Fixture`] is dropped (or with the test's runtime).

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
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

/// Options that keep tests fast: short time-outs and retry waits, no real
/// rate limit.
pub(crate) fn fast_options() -> CrawlOptions {
    CrawlOptions {
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

#[derive(Default)]
struct Log {
    hits: Mutex<Vec<(String, Instant)>>,
    user_agents: Mutex<Vec<String>>,
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

impl Fixture {
    pub(crate) async fn start() -> Fixture {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binding a loopback port");
        let addr = listener.local_addr().expect("reading the bound address");
        let log = Arc::new(Log::default());
        let app = Router::new().fallback(serve).with_state(log.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
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

    /// When `path` was requested, in order.
    pub(crate) fn hit_times(&self, path: &str) -> Vec<Instant> {
        self.log.hits.lock().expect("fixture log").iter().filter(|(p, _)| p == path).map(|(_, t)| *t).collect()
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

fn image_response(content_type: &'static str, bytes: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, content_type)], bytes).into_response()
}

fn redirect(to: &str) -> Response {
    (StatusCode::FOUND, [(header::LOCATION, to.to_owned())]).into_response()
}

async fn serve(State(log): State<Arc<Log>>, headers: HeaderMap, uri: Uri) -> Response {
    let path = uri.path().to_owned();
    let previous_hits = {
        let mut hits = log.hits.lock().expect("fixture log");
        let n = hits.iter().filter(|(p, _)| *p == path).count();
        hits.push((path.clone(), Instant::now()));
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
            _ => StatusCode::NOT_FOUND.into_response(),
        };
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
            let chunks = futures_util::stream::iter([Ok(half), Err(std::io::Error::other("connection cut by the fixture"))])
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
        "/html.jpg" => image_response("image/jpeg", b"<!DOCTYPE html><html><body>Image not found</body></html>".to_vec()),
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
        "/loop" => redirect("/loop"),
        "/redirect.png" => redirect("/img/redirected.png"),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}
