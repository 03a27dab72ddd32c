//! robots.txt, fetched once per origin and obeyed for HTML sources.
//!
//! Rules are parsed with `texting_robots` for the user agent's product
//! token (its first word, up to `/`). Following RFC 9309: a robots.txt that
//! is missing (any 4xx) allows everything; one that cannot be had (5xx, a
//! time-out, a broken connection, after the usual retries) disallows
//! everything, for the rest of the crawl. `Crawl-delay` is not read: the
//! per-host rate limit applies instead.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use reqwest::Url;
use texting_robots::Robot;
use tokio::sync::OnceCell;

use crate::fetch::{Http, Rejection};
use crate::manifest::Reason;

/// robots.txt files are small; RFC 9309 asks parsers to read at least
/// 500 KiB.
const MAX_ROBOTS_BYTES: u64 = 512 * 1024;

/// What one origin's robots.txt says.
enum Rules {
    AllowAll,
    DisallowAll { why: String },
    Parsed(Robot),
}

/// The robots.txt rules of every origin asked about so far.
pub(crate) struct RobotsCache {
    token: String,
    origins: Mutex<HashMap<String, Arc<OnceCell<Arc<Rules>>>>>,
}

/// The product token robots.txt groups are matched against: `tcav-rs` for
/// `tcav-rs/0.1 (+https://…)`.
pub(crate) fn product_token(user_agent: &str) -> String {
    let first = user_agent.split_whitespace().next().unwrap_or_default();
    first.split('/').next().unwrap_or_default().to_owned()
}

impl RobotsCache {
    pub(crate) fn new(user_agent: &str) -> Self {
        RobotsCache { token: product_token(user_agent), origins: Mutex::new(HashMap::new()) }
    }

    /// Whether `url` may be fetched, fetching its origin's robots.txt the
    /// first time that origin is asked about (once, however many downloads
    /// ask at the same time).
    pub(crate) async fn check(&self, http: &Http, url: &Url) -> Result<(), Rejection> {
        let origin = url.origin().ascii_serialization();
        let cell = {
            let mut origins = self.origins.lock().unwrap_or_else(PoisonError::into_inner);
            origins.entry(origin.clone()).or_default().clone()
        };
        let rules = cell.get_or_init(|| self.load(http, &origin)).await;
        match &**rules {
            Rules::AllowAll => Ok(()),
            Rules::DisallowAll { why } => {
                Err(Rejection::new(Reason::RobotsDisallowed, true, format!("{why}; {url} was not fetched")))
            }
            Rules::Parsed(robot) if robot.allowed(url.as_str()) => Ok(()),
            Rules::Parsed(_) => {
                let detail =
                    format!("the robots.txt of {origin} disallows {} for user agent `{}`", url.path(), self.token);
                Err(Rejection::new(Reason::RobotsDisallowed, false, detail))
            }
        }
    }

    async fn load(&self, http: &Http, origin: &str) -> Arc<Rules> {
        let url = format!("{origin}/robots.txt");
        let rules = match http.get(&url, MAX_ROBOTS_BYTES).await {
            Ok(download) => match Robot::new(&self.token, &download.bytes) {
                Ok(robot) => Rules::Parsed(robot),
                Err(e) => {
                    tracing::warn!(
                        url,
                        "robots.txt does not parse ({e}); treating it as allowing everything, as a missing one would"
                    );
                    Rules::AllowAll
                }
            },
            Err(rejection) if rejection.http_status.is_some_and(|s| (400..500).contains(&s)) => Rules::AllowAll,
            Err(rejection) => Rules::DisallowAll {
                why: format!(
                    "the robots.txt of {origin} could not be read ({}), which RFC 9309 says to take as disallowing everything",
                    rejection.detail
                ),
            },
        };
        tracing::debug!(url, "robots.txt read");
        Arc::new(rules)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_product_token_is_the_first_word_before_the_version() {
        assert_eq!(product_token("tcav-rs/0.1 (+https://example.invalid/tcav-rs)"), "tcav-rs");
        assert_eq!(product_token("MyBot"), "MyBot");
        assert_eq!(product_token(""), "");
    }

    #[test]
    fn groups_for_this_crawler_win_over_the_catch_all() {
        let txt = b"User-agent: *\nDisallow: /\n\nUser-agent: tcav-rs\nDisallow: /private/\n";
        let robot = Robot::new(&product_token("tcav-rs/0.1"), txt).unwrap();
        assert!(robot.allowed("http://h/img/a.png"));
        assert!(!robot.allowed("http://h/private/a.png?x=1"));
        let other = Robot::new(&product_token("otherbot/2"), txt).unwrap();
        assert!(!other.allowed("http://h/img/a.png"));
    }
}
