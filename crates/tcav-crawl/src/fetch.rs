//! Downloading one URL politely and defensively.
//!
//! [`Http::get`] is the only place in the project that sends a request. It
//! fetches `http`/`https` only, follows a bounded number of redirects and
//! refuses loops, waits its turn under a per-host rate limit, retries
//! passing failures with exponential backoff (or as long as `Retry-After`
//! asks, within a cap), stops reading once a body passes the byte cap, and
//! refuses a body shorter than its `Content-Length`. The body is held in
//! memory until it is complete, so a failed download never leaves a file.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use backon::{ExponentialBuilder, Retryable};
use futures_util::StreamExt;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use reqwest::{StatusCode, Url, redirect};

use crate::error::CrawlError;
use crate::manifest::Reason;
use crate::request::CrawlOptions;

/// The bytes of a completed download or file read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Download {
    /// The final HTTP status (none for local files).
    pub http_status: Option<u16>,
    /// The `Content-Type` the server declared, if any.
    pub content_type: Option<String>,
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
}

impl From<Rejection> for Failure {
    fn from(rejection: Rejection) -> Self {
        Failure { rejection, retry_after: None }
    }
}

/// The crawl's HTTP client: one per crawl, cheap to clone.
#[derive(Clone)]
pub struct Http {
    inner: Arc<Inner>,
}

struct Inner {
    client: reqwest::Client,
    limiter: DefaultKeyedRateLimiter<String>,
    retries: usize,
    retry_base_delay: Duration,
    max_retry_after: Duration,
}

impl Http {
    /// Builds the client from the crawl options.
    pub fn new(options: &CrawlOptions) -> Result<Http, CrawlError> {
        options.validate()?;
        let max_redirects = options.max_redirects;
        let policy = redirect::Policy::custom(move |attempt| {
            let next = attempt.url().clone();
            if attempt.previous().contains(&next) {
                attempt.error(format!("redirect loop: {next} was already visited"))
            } else if attempt.previous().len() > max_redirects {
                attempt.error(format!("more than {max_redirects} redirects (crawl option max_redirects)"))
            } else if !matches!(next.scheme(), "http" | "https") {
                attempt.error(format!("redirect to {next}: only http and https URLs are fetched"))
            } else {
                attempt.follow()
            }
        });
        let client = reqwest::Client::builder()
            .user_agent(&options.user_agent)
            .timeout(options.timeout)
            .connect_timeout(options.timeout)
            .redirect(policy)
            .build()
            .map_err(|source| CrawlError::HttpClient { source })?;
        Ok(Http {
            inner: Arc::new(Inner {
                client,
                limiter: RateLimiter::keyed(Quota::per_second(options.per_host_rate)),
                retries: options.retries,
                retry_base_delay: options.retry_base_delay,
                max_retry_after: options.max_retry_after,
            }),
        })
    }

    /// Downloads `url` whole, refusing bodies over `max_bytes`.
    pub async fn get(&self, url: &str, max_bytes: u64) -> Result<Download, Rejection> {
        let parsed = match Url::parse(url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => u,
            Ok(u) => {
                let detail = format!("only http and https URLs with a host are fetched, not `{}:` URLs", u.scheme());
                return Err(Rejection::new(Reason::UnsupportedUrl, false, detail));
            }
            Err(e) => return Err(Rejection::new(Reason::UnsupportedUrl, false, format!("not a URL: {e}"))),
        };
        let host = parsed.host_str().unwrap_or_default().to_owned();
        let inner = &self.inner;
        let tries = AtomicUsize::new(0);
        let backoff = ExponentialBuilder::default().with_min_delay(inner.retry_base_delay).with_max_times(inner.retries);
        let result = (|| {
            tries.fetch_add(1, Ordering::Relaxed);
            self.attempt(&parsed, &host, max_bytes)
        })
        .retry(backoff)
        .sleep(tokio::time::sleep)
        .when(|failure: &Failure| failure.rejection.retryable)
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
    }

    async fn attempt(&self, url: &Url, host: &str, max_bytes: u64) -> Result<Download, Failure> {
        self.inner.limiter.until_key_ready(&host.to_owned()).await;
        let response = self.inner.client.get(url.clone()).send().await.map_err(request_failure)?;
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
            return Err(Failure { rejection, retry_after });
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
                let detail = format!("the body passed the cap of {max_bytes} bytes (filters.max_bytes) while downloading");
                return Err(with_http(Rejection::new(Reason::TooLarge, false, detail), Some(max_bytes)).into());
            }
            bytes.extend_from_slice(&chunk);
        }
        if let Some(len) = declared.filter(|&len| (bytes.len() as u64) < len) {
            let detail = format!("the body ended after {} of the {len} bytes its Content-Length announced", bytes.len());
            return Err(with_http(Rejection::new(Reason::Truncated, true, detail), Some(bytes.len() as u64)).into());
        }
        Ok(Download { http_status: Some(status.as_u16()), content_type, bytes })
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
        SourceContext { set: set.to_owned(), query: "q".to_owned(), http: Http::new(&fast_options()).unwrap() }
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
