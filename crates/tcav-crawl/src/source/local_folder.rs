//! Images the user already has, imported from a folder.
//!
//! The files go through the same checks, hashing and manifest as downloads,
//! so a set can mix crawled and hand-picked images and a rerun imports only
//! files added since. Every regular, non-hidden file directly in the folder
//! is a candidate, in file-name order; files that are not images are
//! recorded as rejected rather than silently ignored.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::{Candidate, ImageRef, Source, SourceContext};
use crate::error::CrawlError;

/// A local folder in a crawl definition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalFolderSpec {
    /// The folder, relative to the current directory unless absolute.
    pub path: PathBuf,
}

/// An opened local folder.
#[derive(Debug)]
pub struct LocalFolder {
    label: String,
    remaining: VecDeque<Candidate>,
}

impl LocalFolder {
    /// Lists the folder.
    pub async fn open(spec: &LocalFolderSpec, context: &SourceContext) -> Result<LocalFolder, CrawlError> {
        let unreadable = |source| CrawlError::SourceUnreadable {
            set: context.set.clone(),
            what: "local folder",
            path: spec.path.clone(),
            source,
        };
        // Absolute paths make the manifest's file:// URLs stable whatever the
        // directory a rerun starts from.
        let folder = tokio::fs::canonicalize(&spec.path).await.map_err(unreadable)?;
        let mut files = Vec::new();
        let mut entries = tokio::fs::read_dir(&folder).await.map_err(unreadable)?;
        while let Some(entry) = entries.next_entry().await.map_err(unreadable)? {
            let path = entry.path();
            if is_hidden(&path) {
                continue;
            }
            // metadata() follows symlinks, so a link to an image is imported.
            if tokio::fs::metadata(&path).await.is_ok_and(|m| m.is_file()) {
                files.push(path);
            }
        }
        files.sort();
        let remaining =
            files.into_iter().enumerate().map(|(i, path)| Candidate::new(ImageRef::File(path), i + 1)).collect();
        Ok(LocalFolder { label: format!("local_folder:{}", spec.path.display()), remaining })
    }
}

fn is_hidden(path: &Path) -> bool {
    path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'))
}

impl Source for LocalFolder {
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

    #[tokio::test]
    async fn lists_visible_files_sorted_and_skips_folders_and_hidden_files() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.png", "a.jpg", ".DS_Store", "notes.txt"] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let context = crate::fetch::tests::context("mine");
        let mut folder = LocalFolder::open(&LocalFolderSpec { path: dir.path().into() }, &context).await.unwrap();
        let batch = folder.next_batch().await.unwrap().unwrap();
        let names: Vec<_> = batch
            .iter()
            .map(|c| match &c.image {
                ImageRef::File(p) => (p.file_name().unwrap().to_str().unwrap().to_owned(), c.rank),
                ImageRef::Url(u) => panic!("local folder produced a URL {u}"),
            })
            .collect();
        assert_eq!(names, [("a.jpg".to_owned(), 1), ("b.png".to_owned(), 2), ("notes.txt".to_owned(), 3)]);
        assert!(folder.next_batch().await.unwrap().is_none());

        let err = LocalFolder::open(&LocalFolderSpec { path: dir.path().join("gone") }, &context).await.unwrap_err();
        assert!(err.to_string().contains("local folder") && err.to_string().contains("gone"), "{err}");
    }
}
