//! A text file of image URLs, one per line.
//!
//! Blank lines and lines starting with `#` are skipped, so a list can carry
//! notes on where its URLs came from. Lines are not checked here: a line that
//! is not an `http`/`https` URL becomes a rejected line in the manifest, so
//! the user sees every line of their list accounted for.

use std::collections::VecDeque;
use std::path::PathBuf;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::{Candidate, ImageRef, Source, SourceContext};
use crate::error::CrawlError;

/// A URL list in a crawl definition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UrlListSpec {
    /// The text file, relative to the current directory unless absolute.
    pub path: PathBuf,
}

/// An opened URL list.
#[derive(Debug)]
pub struct UrlList {
    label: String,
    remaining: VecDeque<Candidate>,
}

impl UrlList {
    /// Reads and parses the list.
    pub async fn open(spec: &UrlListSpec, context: &SourceContext) -> Result<UrlList, CrawlError> {
        let text = tokio::fs::read_to_string(&spec.path).await.map_err(|source| CrawlError::SourceUnreadable {
            set: context.set.clone(),
            what: "URL list",
            path: spec.path.clone(),
            source,
        })?;
        Ok(UrlList { label: format!("url_list:{}", spec.path.display()), remaining: parse(&text).collect() })
    }
}

/// The candidates of a list's text, ranked from 1 in file order.
fn parse(text: &str) -> impl Iterator<Item = Candidate> + '_ {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .enumerate()
        .map(|(i, url)| Candidate::new(ImageRef::Url(url.to_owned()), i + 1))
}

impl Source for UrlList {
    fn label(&self) -> String {
        self.label.clone()
    }

    fn next_batch(&mut self) -> BoxFuture<'_, Result<Option<Vec<Candidate>>, CrawlError>> {
        super::take_batch(&mut self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::LIST_BATCH;

    #[test]
    fn comments_and_blank_lines_are_skipped_and_ranks_count_urls() {
        let text = "# stripes, collected 2026-01\n\n  https://a.example/1.jpg  \n#https://skipped\nhttps://a.example/2.png\r\nnot a url\n";
        let got: Vec<(String, usize)> = parse(text).map(|c| (c.image.manifest_url(), c.rank)).collect();
        assert_eq!(
            got,
            [
                ("https://a.example/1.jpg".to_owned(), 1),
                ("https://a.example/2.png".to_owned(), 2),
                ("not a url".to_owned(), 3)
            ]
        );
    }

    #[tokio::test]
    async fn batches_drain_the_list_then_report_exhaustion() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("urls.txt");
        let text: String = (0..LIST_BATCH + 5).map(|i| format!("https://h/{i}.png\n")).collect();
        std::fs::write(&path, text).unwrap();
        let context = crate::fetch::tests::context("s");
        let mut list = UrlList::open(&UrlListSpec { path: path.clone() }, &context).await.unwrap();
        assert_eq!(list.next_batch().await.unwrap().unwrap().len(), LIST_BATCH);
        let last = list.next_batch().await.unwrap().unwrap();
        assert_eq!(last.len(), 5);
        assert_eq!(last[4].rank, LIST_BATCH + 5);
        assert!(list.next_batch().await.unwrap().is_none());
        assert!(list.next_batch().await.unwrap().is_none());

        let missing = UrlListSpec { path: dir.path().join("nope.txt") };
        let err = UrlList::open(&missing, &context).await.unwrap_err().to_string();
        assert!(err.contains("URL list") && err.contains("nope.txt") && err.contains("`s`"), "{err}");
    }
}
