//! Downloading one URL politely and defensively.
//!
//! [`Http`] is the only place in the project that sends a request. It
//! fetches `http`/`https` only, follows a bounded number of redirects itself
//! (so each hop is checked: scheme, loops, the hop's own host rate limit and,
//! when asked, its robots.txt), waits its turn under a per-host rate limit,
//! retries passing failures with exponential backoff (or as long as
//! `Retry-After` asks, within a cap), stops reading once a body passes the
//! byte cap, and refuses a body shorter than its `Content-Length`. The body
//! is held in memory until it is complete, so a failed download never
//! leaves a file.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use backon::{ExponentialBuilder, Retryable};
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use reqwest::header::{CONTENT_TYPE, HeaderMap, LOCATION, RETRY_AFTER};
use reqwest::{StatusCode, Url, redirect};

use crate::error::CrawlError;
use crate::manifest::Reason;
use crate::request::CrawlOptions;
use crate::robots::RobotsCache;

/// The bytes of a completed download or file read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Download {
    /// The final HTTP status (none for local files).
    pub http_status: Option<u16>,
    /// The `Content-Type` the server declared, if any.
    pub content_type: Option<String>,
    /// The URL the body came from, when redirects led away from the one
    /// asked for.
    pub final_url: Option<String>,
    /// The whole body.
    pub bytes: Vec<u8>,
}

/// Why a candidate was not kept, as recorded in the manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// The machine-readable reason.
    pub reason: Reason,
    /// What happened, for a person reading the manifest.
    pub detail: String,
    /// Whether a later crawl should try the candidate again (the failure may
    /// pass: a time-out, a busy server) or skip it for good.
    pub retryable: bool,
    /// The last HTTP status seen, if any.
    pub http_status: Option<u16>,
    /// The declared content type, if any.
    pub content_type: Option<String>,
    /// How many bytes were received, when that is meaningful.
    pub bytes: Option<u64>,
}

impl Rejection {
    /// A rejection with no HTTP details.
    pub fn new(reason: Reason, retryable: bool, detail: impl Into<String>) -> Self {
        Rejection { reason, detail: detail.into(), retryable, http_status: None, content_type: None, bytes: None }
    }
}

/// A failed attempt, with the server's wish about when to try again.
struct Failure {
    rejection: Rejection,
    retry_after: Option<Duration>,
    /// Trying again within this crawl cannot help (robots.txt answers are
    /// kept for the whole crawl), even if a later crawl may.
    not_this_run: bool,
}

impl From<Rejection> for Failure {
    fn from(rejection: Rejection) -> Self {
        Failure { rejection, retry_after: None, not_this_run: false }
    }
}

/// The crawl's HTTP client: one per crawl (or per crawl definition, so that
/// its sets share rate limits and robots.txt), cheap to clone.
#[derive(Clone)]
pub struct Http {
    inner: Arc<Inner>,
}

struct Inner {
    client: reqwest::Client,
    user_agent: String,
    limiter: DefaultKeyedRateLimiter<String>,
    robots: RobotsCache,
    retries: usize,
    retry_base_delay: Duration,
    max_retry_after: Duration,
    max_redirects: usize,
}

impl Http {
    /// Builds the client from the crawl options.
    pub fn new(options: &CrawlOptions) -> Result<Http, CrawlError> {
        options.validate()?;
        // Redirects are followed by hand in `attempt`, so that every hop
        // waits for its own host's turn and is checked before it is sent.
        let client = reqwest::Client::builder()
            .user_agent(&options.user_agent)
            .timeout(options.timeout)
            .connect_timeout(options.timeout)
            .redirect(redirect::Policy::none())
            .build()
            .map_err(|source| CrawlError::HttpClient { source })?;
        Ok(Http {
            inner: Arc::new(Inner {
                client,
                user_agent: options.user_agent.clone(),
                limiter: RateLimiter::keyed(Quota::per_second(options.per_host_rate)),
                robots: RobotsCache::new(&options.user_agent),
                retries: options.retries,
                retry_base_delay: options.retry_base_delay,
                max_retry_after: options.max_retry_after,
                max_redirects: options.max_redirects,
            }),
        })
    }

    /// The `User-Agent` this client sends.
    pub fn user_agent(&self) -> &str {
        &self.inner.user_agent
    }

    /// Downloads `url` whole, refusing bodies over `max_bytes`.
    pub async fn get(&self, url: &str, max_bytes: u64) -> Result<Download, Rejection> {
        self.fetch(url, max_bytes, false).await
    }

    /// Like [`Http::get`], but first asks each host's robots.txt whether
    /// this crawler may fetch the URL (and every URL it redirects to). HTML
    /// sources, and the images they find, are fetched this way.
    pub async fn get_obeying_robots(&self, url: &str, max_bytes: u64) -> Result<Download, Rejection> {
        self.fetch(url, max_bytes, true).await
    }

    /// The fetch with retries; boxed because fetching robots.txt goes
    /// through it too, from inside an attempt.
    fn fetch<'a>(
        &'a self,
        url: &'a str,
        max_bytes: u64,
        obey_robots: bool,
    ) -> BoxFuture<'a, Result<Download, Rejection>> {
        Box::pin(async move {
            let parsed = parse_fetchable(url)?;
            let inner = &self.inner;
            let tries = AtomicUsize::new(0);
            let backoff =
                ExponentialBuilder::default().with_min_delay(inner.retry_base_delay).with_max_times(inner.retries);
            let result = (|| {
                tries.fetch_add(1, Ordering::Relaxed);
                self.attempt(&parsed, max_bytes, obey_robots)
            })
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .when(|failure: &Failure| failure.rejection.retryable && !failure.not_this_run)
            .adjust(|failure, backoff| next_wait(failure.retry_after, backoff, inner.max_retry_after))
            .notify(|failure, wait| {
                tracing::debug!(url, wait_ms = wait.as_millis() as u64, "retrying after: {}", failure.rejection.detail);
            })
            .await;
            result.map_err(|failure| {
                let mut rejection = failure.rejection;
                let tries = tries.load(Ordering::Relaxed);
                if tries > 1 {
                    rejection.detail = format!("{} (gave up after {tries} tries)", rejection.detail);
                }
                rejection
            })
        })
    }

    /// One try: the request, its redirects, and the body.
    async fn attempt(&self, url: &Url, max_bytes: u64, obey_robots: bool) -> Result<Download, Failure> {
        let inner = &self.inner;
        let mut current = url.clone();
        let mut visited: Vec<Url> = Vec::new();
        let response = loop {
            if obey_robots {
                inner
                    .robots
                    .check(self, &current)
                    .await
                    .map_err(|rejection| Failure { not_this_run: true, ..rejection.into() })?;
            }
            inner.limiter.until_key_ready(&current.host_str().unwrap_or_default().to_owned()).await;
            let response = inner.client.get(current.clone()).send().await.map_err(request_failure)?;
            if !response.status().is_redirection() {
                break response;
            }
            let Some(location) = response.headers().get(LOCATION) else { break response };
            let status = response.status().as_u16();
            let redirect_error = |detail: String| {
                let mut rejection = Rejection::new(Reason::Redirect, false, detail);
                rejection.http_status = Some(status);
                Failure::from(rejection)
            };
            let next =
                location.to_str().ok().and_then(|l| current.join(l).ok()).ok_or_else(|| {
                    redirect_error(format!("{current} redirects to an unreadable Location {location:?}"))
                })?;
            if !matches!(next.scheme(), "http" | "https") {
                return Err(redirect_error(format!("redirect to {next}: only http and https URLs are fetched")));
            }
            visited.push(current);
            if visited.contains(&next) {
                return Err(redirect_error(format!("redirect loop: {next} was already visited")));
            }
            if visited.len() > inner.max_redirects {
                let max = inner.max_redirects;
                return Err(redirect_error(format!(
                    "more than {max} redirects (crawl option max_redirects), the last to {next}"
                )));
            }
            current = next;
        };
        let final_url = (current != *url).then(|| current.to_string());
        let status = response.status();
        let content_type = header_text(response.headers(), CONTENT_TYPE);
        let with_http = |mut rejection: Rejection, bytes: Option<u64>| {
            rejection.http_status = Some(status.as_u16());
            rejection.content_type.clone_from(&content_type);
            rejection.bytes = bytes;
            rejection
        };
        if !status.is_success() {
            let retry_after = retry_after(response.headers(), SystemTime::now());
            let mut detail = format!("the server answered {status}");
            if let Some(wait) = retry_after {
                detail.push_str(&format!(" and asked to retry after {} s", wait.as_secs_f32()));
            }
            let rejection = with_http(Rejection::new(Reason::HttpStatus, is_passing(status), detail), None);
            return Err(Failure { rejection, retry_after, not_this_run: false });
        }
        let declared = response.content_length();
        if let Some(len) = declared.filter(|&len| len > max_bytes) {
            let detail = format!("the server announced {len} bytes, over the cap of {max_bytes} (filters.max_bytes)");
            return Err(with_http(Rejection::new(Reason::TooLarge, false, detail), Some(len)).into());
        }
        // Reserve at most 1 MiB up front: the declared length is the
        // server's claim, not a promise.
        let mut bytes = Vec::with_capacity(declared.unwrap_or(0).min(max_bytes).min(1 << 20) as usize);
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    let got = bytes.len() as u64;
                    let (reason, what) = if e.is_timeout() {
                        (Reason::Timeout, "timed out")
                    } else {
                        (Reason::Truncated, "the connection broke")
                    };
                    let of = declared.map_or_else(String::new, |len| format!(" of {len}"));
                    let detail = format!("{what} after {got}{of} bytes of the body: {}", error_chain(&e));
                    return Err(with_http(Rejection::new(reason, true, detail), Some(got)).into());
                }
            };
            if (bytes.len() + chunk.len()) as u64 > max_bytes {
                let detail =
                    format!("the body passed the cap of {max_bytes} bytes (filters.max_bytes) while downloading");
                return Err(with_http(Rejection::new(Reason::TooLarge, false, detail), Some(max_bytes)).into());
            }
            bytes.extend_from_slice(&chunk);
        }
        if let Some(len) = declared.filter(|&len| (bytes.len() as u64) < len) {
            let detail =
                format!("the body ended after {} of the {len} bytes its Content-Length announced", bytes.len());
            return Err(with_http(Rejection::new(Reason::Truncated, true, detail), Some(bytes.len() as u64)).into());
        }
        Ok(Download { http_status: Some(status.as_u16()), content_type, final_url, bytes })
    }
}

/// `url` as a URL this crawler may fetch: http or https, with a host.
fn parse_fetchable(url: &str) -> Result<Url, Rejection> {
    match Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty()) => Ok(u),
        Ok(u) => {
            let detail = format!("only http and https URLs with a host are fetched, not `{}:` URLs", u.scheme());
            Err(Rejection::new(Reason::UnsupportedUrl, false, detail))
        }
        Err(e) => Err(Rejection::new(Reason::UnsupportedUrl, false, format!("not a URL: {e}"))),
    }
}

/// Statuses worth trying again: the server is busy or briefly broken.
fn is_passing(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 425 | 429 | 500 | 502 | 503 | 504)
}

/// The wait before the next try. `backoff` is `None` once the retries are
/// used up, and then no `Retry-After` may extend the crawl. A server asking
/// for more than `cap` is not waited for.
fn next_wait(retry_after: Option<Duration>, backoff: Option<Duration>, cap: Duration) -> Option<Duration> {
    let backoff = backoff?;
    match retry_after {
        Some(wait) if wait > cap => None,
        Some(wait) => Some(wait),
        None => Some(backoff),
    }
}

/// `Retry-After` as a wait from `now`: either delay-seconds or an HTTP date.
fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = header_text(headers, RETRY_AFTER)?;
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

fn header_text(headers: &HeaderMap, name: reqwest::header::HeaderName) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

fn request_failure(e: reqwest::Error) -> Failure {
    let detail = error_chain(&e);
    let rejection = if e.is_redirect() {
        Rejection::new(Reason::Redirect, false, detail)
    } else if e.is_timeout() {
        Rejection::new(Reason::Timeout, true, detail)
    } else if e.is_builder() {
        Rejection::new(Reason::UnsupportedUrl, false, detail)
    } else {
        Rejection::new(Reason::Network, true, detail)
    };
    rejection.into()
}

/// An error and all its sources, since reqwest's own message omits the cause.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::fixture::{Fixture, fast_options};
    use crate::source::SourceContext;

    /// A source context for tests that never sends a request.
    pub(crate) fn context(set: &str) -> SourceContext {
        SourceContext {
            set: set.to_owned(),
            query: "q".to_owned(),
            filters: crate::Filters::default(),
            http: Http::new(&fast_options()).unwrap(),
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers, now), None);
        headers.insert(RETRY_AFTER, " 7 ".parse().unwrap());
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        headers.insert(RETRY_AFTER, later.parse().unwrap());
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(30)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        headers.insert(RETRY_AFTER, past.parse().unwrap());
        assert_eq!(retry_after(&headers, now), Some(Duration::ZERO));
        headers.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&headers, now), None);
    }

    #[test]
    fn retry_after_replaces_backoff_within_the_cap_but_never_adds_tries() {
        let s = Duration::from_secs;
        assert_eq!(next_wait(None, Some(s(1)), s(60)), Some(s(1)));
        assert_eq!(next_wait(Some(s(5)), Some(s(1)), s(60)), Some(s(5)));
        assert_eq!(next_wait(Some(s(61)), Some(s(1)), s(60)), None);
        assert_eq!(next_wait(Some(s(5)), None, s(60)), None);
    }

    #[tokio::test]
    async fn non_http_urls_are_refused_without_a_request() {
        let http = Http::new(&fast_options()).unwrap();
        for url in ["ftp://h/a.png", "file:///etc/hostname", "data:image/png;base64,AAAA", "no scheme.png"] {
            let rejection = http.get(url, 100).await.unwrap_err();
            assert_eq!(rejection.reason, Reason::UnsupportedUrl, "{url}");
            assert!(!rejection.retryable);
        }
    }

    #[tokio::test]
    async fn hosts_reached_by_redirect_wait_for_their_own_rate_limit() {
        tokio::time::timeout(Duration::from_secs(10), async {
            let fixture = Fixture::start().await;
            let options = CrawlOptions { per_host_rate: std::num::NonZeroU32::MIN, ..fast_options() };
            let http = Http::new(&options).unwrap();
            http.get(&fixture.url("/img/first.png"), 1 << 20).await.unwrap();
            // `localhost` is another host to the limiter, so its request
            // goes at once; the redirect back to 127.0.0.1 must wait.
            let second = http.get(&fixture.localhost_url("/to-ip/img/second.png"), 1 << 20).await.unwrap();
            assert_eq!(second.final_url, Some(fixture.url("/img/second.png")));
            let asked = fixture.hit_times("/to-ip/img/second.png")[0];
            let redirected = fixture.hit_times("/img/second.png")[0];
            let first = fixture.hit_times("/img/first.png")[0];
            assert!(asked - first < Duration::from_millis(500), "localhost waited {:?}", asked - first);
            assert!(
                redirected - first >= Duration::from_millis(900),
                "the redirect target's host was not rate limited"
            );
            // And the hop counted against 127.0.0.1, not against the host
            // first asked.
            http.get(&fixture.url("/img/third.png"), 1 << 20).await.unwrap();
            let third = fixture.hit_times("/img/third.png")[0];
            assert!(third - redirected >= Duration::from_millis(900), "the redirect was charged to the wrong host");
        })
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn the_user_agent_is_sent_and_rate_limits_space_requests_per_host() {
        tokio::time::timeout(Duration::from_secs(10), async {
            let fixture = Fixture::start().await;
            let options = CrawlOptions { per_host_rate: std::num::NonZeroU32::MIN, ..fast_options() };
            let http = Http::new(&options).unwrap();
            let first = http.get(&fixture.url("/img/ua-1.png"), 1 << 20).await.unwrap();
            assert_eq!(crate::sniff::sniff(&first.bytes), Some(crate::sniff::ImageType::Png));
            assert_eq!(first.http_status, Some(200));
            http.get(&fixture.url("/img/ua-2.png"), 1 << 20).await.unwrap();
            assert_eq!(fixture.user_agents(), [options.user_agent.clone(), options.user_agent.clone()]);
            // One request per second per host: the second waited its turn.
            let gap = fixture.hit_times("/img/ua-2.png")[0] - fixture.hit_times("/img/ua-1.png")[0];
            assert!(gap >= Duration::from_millis(900), "requests only {gap:?} apart");
        })
        .await
        .unwrap();
    }
}
