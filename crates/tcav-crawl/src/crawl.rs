//! The crawl loop: candidates in, checked images and manifest lines out.
//!
//! One coordinator owns the manifest and the set folder; downloads run as
//! separate tasks and only hand back bytes. So every decision about the set
//! (is it a duplicate, is the set full) is made in one place, one candidate
//! at a time, and a new download starts only while the images kept plus the
//! downloads running are fewer than asked for. Which candidates get tried
//! therefore depends on the sources' order and on which downloads fail, not
//! on which finish first.

use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tcav_core::SetName;
use tokio::task::JoinSet;

use crate::error::CrawlError;
use crate::fetch::{Download, Http, Rejection};
use crate::manifest::{MANIFEST_FILE, Manifest, ManifestEntry, Reason, Status};
use crate::request::{CrawlOptions, CrawlRequest, Filters};
use crate::sniff::{ImageType, describe_non_image, sniff};
use crate::source::{Candidate, ImageRef, Source, SourceContext};

/// What a crawl achieved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrawlSummary {
    /// How many images the request asked for (`max_num`).
    pub requested: usize,
    /// How many images the set folder holds now, from this and earlier runs.
    pub accepted: usize,
    /// How many of those this run added.
    pub added: usize,
    /// How many candidates this run rejected.
    pub rejected: usize,
    /// How many candidates this run skipped because the manifest had already
    /// settled them (or an earlier source in this run offered the same URL).
    pub skipped: usize,
    /// Whether every source ran out before the set was full.
    pub exhausted: bool,
}

/// The folder a set's crawled images go to: `<root>/raw/<set>`.
pub fn raw_set_dir(root: &Path, set: &SetName) -> PathBuf {
    root.join("raw").join(set.as_str())
}

/// Fills `<root>/raw/<set>/` with up to `request.max_num` images and records
/// every candidate tried in `manifest.jsonl` there.
///
/// Resumable: candidates the manifest records as kept or as rejected for
/// good are skipped, images already in the folder count towards `max_num`,
/// and candidates that failed for a passing reason are tried again. Returns
/// once the set is full or every source has run out.
pub async fn crawl(request: &CrawlRequest, options: &CrawlOptions, root: &Path) -> Result<CrawlSummary, CrawlError> {
    request.validate()?;
    let http = Http::new(options)?;
    let set_dir = raw_set_dir(root, &request.set);
    let context = SourceContext { set: request.set.to_string(), query: request.query.clone(), http: http.clone() };
    // Open every source before touching the set folder, so a wrong path in
    // the definition fails without leaving anything behind.
    let mut sources = VecDeque::new();
    for spec in &request.sources {
        sources.push_back(spec.open(&context).await?);
    }

    tokio::fs::create_dir_all(&set_dir).await.map_err(|e| CrawlError::io("creating the set folder", &set_dir, e))?;
    let (mut manifest, entries) = Manifest::open(&set_dir.join(MANIFEST_FILE))?;
    let settled: HashSet<String> = entries.iter().filter(|e| e.is_settled()).map(|e| e.image_url.clone()).collect();
    let stored = stored_hashes(&set_dir).await?;
    let mut set = SetFolder {
        dir: set_dir,
        stored,
        kept: entries.iter().filter(|e| e.status == Status::Accepted).filter_map(|e| e.hash.clone()).collect(),
    };
    let wanted = request.max_num;
    let mut summary = CrawlSummary {
        requested: wanted,
        accepted: set.stored.len(),
        added: 0,
        rejected: 0,
        skipped: 0,
        exhausted: false,
    };
    if set.stored.len() >= wanted {
        tracing::info!(set = %request.set, "got {} of {} images: the set is already full", set.stored.len(), wanted);
        return Ok(summary);
    }

    let mut feed = Feed { sources, label: Arc::from(""), batch: VecDeque::new(), done: false };
    let mut tried: HashSet<String> = HashSet::new();
    let mut running: JoinSet<Job> = JoinSet::new();
    loop {
        while !feed.done && running.len() < options.concurrency && set.stored.len() + running.len() < wanted {
            let Some((source, candidate)) = feed.next().await? else { break };
            let image_url = candidate.image.manifest_url();
            if settled.contains(&image_url) || !tried.insert(image_url.clone()) {
                summary.skipped += 1;
                continue;
            }
            running.spawn(obtain(http.clone(), source, candidate, image_url, request.filters.max_bytes));
        }
        let Some(joined) = running.join_next().await else { break };
        let job = joined.map_err(|source| CrawlError::TaskStopped { what: "a download".to_owned(), source })?;
        let before = set.stored.len();
        let entry = set.settle(job, request, &request.filters).await?;
        manifest.append(&entry)?;
        match entry.status {
            Status::Accepted => {
                summary.added += set.stored.len() - before;
                tracing::debug!(url = entry.image_url, file = entry.file.as_deref().unwrap_or_default(), "kept");
            }
            Status::Rejected => {
                summary.rejected += 1;
                tracing::debug!(url = entry.image_url, reason = ?entry.reason, "rejected: {}", entry.detail.as_deref().unwrap_or_default());
            }
        }
    }

    summary.accepted = set.stored.len();
    summary.exhausted = feed.done && summary.accepted < wanted;
    if summary.exhausted {
        tracing::warn!(set = %request.set, "got {} of {} images: every source ran out; add sources or lower max_num", summary.accepted, wanted);
    } else {
        tracing::info!(set = %request.set, "got {} of {} images ({} new, {} rejected)", summary.accepted, wanted, summary.added, summary.rejected);
    }
    Ok(summary)
}

/// The candidates of all sources, one at a time, in source order.
struct Feed {
    sources: VecDeque<Box<dyn Source>>,
    label: Arc<str>,
    batch: VecDeque<Candidate>,
    done: bool,
}

impl Feed {
    async fn next(&mut self) -> Result<Option<(Arc<str>, Candidate)>, CrawlError> {
        loop {
            if let Some(candidate) = self.batch.pop_front() {
                return Ok(Some((self.label.clone(), candidate)));
            }
            let Some(source) = self.sources.front_mut() else {
                self.done = true;
                return Ok(None);
            };
            match source.next_batch().await? {
                Some(batch) => {
                    self.label = Arc::from(source.label());
                    self.batch = batch.into();
                }
                None => {
                    self.sources.pop_front();
                }
            }
        }
    }
}

/// A finished download, waiting for the coordinator's verdict.
struct Job {
    source: Arc<str>,
    candidate: Candidate,
    image_url: String,
    result: Result<Download, Rejection>,
}

async fn obtain(http: Http, source: Arc<str>, candidate: Candidate, image_url: String, max_bytes: u64) -> Job {
    let result = match &candidate.image {
        ImageRef::Url(url) => http.get(url, max_bytes).await,
        ImageRef::File(path) => read_local(path, max_bytes).await,
    };
    Job { source, candidate, image_url, result }
}

async fn read_local(path: &Path, max_bytes: u64) -> Result<Download, Rejection> {
    let unreadable = |e: std::io::Error| Rejection::new(Reason::UnreadableFile, true, format!("cannot read {}: {e}", path.display()));
    let len = tokio::fs::metadata(path).await.map_err(unreadable)?.len();
    if len > max_bytes {
        let mut rejection = Rejection::new(Reason::TooLarge, false, format!("the file has {len} bytes, over the cap of {max_bytes} (filters.max_bytes)"));
        rejection.bytes = Some(len);
        return Err(rejection);
    }
    let bytes = tokio::fs::read(path).await.map_err(unreadable)?;
    Ok(Download { http_status: None, content_type: None, bytes })
}

/// The checks on a complete download that do not depend on the set.
fn judge(bytes: &[u8], filters: &Filters) -> Result<ImageType, (Option<ImageType>, Rejection)> {
    let Some(image_type) = sniff(bytes) else {
        return Err((None, Rejection::new(Reason::NotAnImage, false, describe_non_image(bytes))));
    };
    let reject = |reason, detail: String| Err((Some(image_type), Rejection::new(reason, false, detail)));
    if !filters.allowed_types.contains(&image_type) {
        return reject(Reason::TypeNotAllowed, format!("{image_type} is not in filters.allowed_types"));
    }
    let len = bytes.len() as u64;
    if len < filters.min_bytes {
        return reject(Reason::TooSmall, format!("{len} bytes is under filters.min_bytes ({})", filters.min_bytes));
    }
    if len > filters.max_bytes {
        return reject(Reason::TooLarge, format!("{len} bytes is over filters.max_bytes ({})", filters.max_bytes));
    }
    Ok(image_type)
}

/// The set folder as the coordinator sees it.
struct SetFolder {
    dir: PathBuf,
    /// Hashes of the image files in the folder now: what counts towards
    /// `max_num`. A file a person deleted no longer counts.
    stored: HashSet<String>,
    /// Hashes the manifest records as kept. Bytes kept once and then deleted
    /// by a person stay out: a duplicate of them is rejected.
    kept: HashSet<String>,
}

impl SetFolder {
    /// Decides on one finished download, storing its image if it is kept,
    /// and returns its manifest line.
    async fn settle(&mut self, job: Job, request: &CrawlRequest, filters: &Filters) -> Result<ManifestEntry, CrawlError> {
        let Job { source, candidate, image_url, result } = job;
        let mut entry = ManifestEntry {
            source: source.to_string(),
            query: request.query.clone(),
            rank: candidate.rank,
            page_url: candidate.page_url,
            image_url,
            title: candidate.title,
            licence: candidate.licence,
            creator: candidate.creator,
            http_status: None,
            content_type: None,
            image_type: None,
            bytes: None,
            hash: None,
            file: None,
            status: Status::Rejected,
            reason: None,
            detail: None,
            retryable: false,
        };
        let download = match result {
            Ok(download) => download,
            Err(rejection) => {
                entry.http_status = rejection.http_status;
                entry.content_type = rejection.content_type.clone();
                entry.bytes = rejection.bytes;
                return Ok(reject(entry, rejection));
            }
        };
        entry.http_status = download.http_status;
        entry.content_type = download.content_type;
        entry.bytes = Some(download.bytes.len() as u64);
        let hash = blake3::hash(&download.bytes).to_hex().to_string();
        entry.hash = Some(hash.clone());
        let image_type = match judge(&download.bytes, filters) {
            Ok(image_type) => image_type,
            Err((image_type, rejection)) => {
                entry.image_type = image_type;
                return Ok(reject(entry, rejection));
            }
        };
        entry.image_type = Some(image_type);
        let file = format!("{hash}.{}", image_type.extension());
        if self.kept.contains(&hash) {
            let detail = format!("the same bytes were already kept for this set as {file}");
            return Ok(reject(entry, Rejection::new(Reason::Duplicate, false, detail)));
        }
        // The file may exist without a manifest line when an earlier crawl
        // was stopped between the two writes; it is already counted.
        if !self.stored.contains(&hash) {
            let path = self.dir.join(&file);
            let bytes = download.bytes;
            let written = path.clone();
            tokio::task::spawn_blocking(move || tcav_core::store::write_atomic(&written, &bytes))
                .await
                .map_err(|source| CrawlError::TaskStopped { what: format!("writing image {}", path.display()), source })??;
            self.stored.insert(hash.clone());
        }
        self.kept.insert(hash);
        entry.file = Some(file);
        entry.status = Status::Accepted;
        Ok(entry)
    }
}

fn reject(mut entry: ManifestEntry, rejection: Rejection) -> ManifestEntry {
    entry.status = Status::Rejected;
    entry.reason = Some(rejection.reason);
    entry.detail = Some(rejection.detail);
    entry.retryable = rejection.retryable;
    entry
}

/// The hashes of the `<blake3 hex>.<ext>` image files in `dir`.
async fn stored_hashes(dir: &Path) -> Result<HashSet<String>, CrawlError> {
    let listing = |e| CrawlError::io("listing the set folder", dir, e);
    let mut hashes = HashSet::new();
    let mut entries = tokio::fs::read_dir(dir).await.map_err(listing)?;
    while let Some(entry) = entries.next_entry().await.map_err(listing)? {
        let name = entry.file_name();
        let Some((stem, ext)) = name.to_str().and_then(|n| n.split_once('.')) else { continue };
        let is_hash = stem.len() == 64 && stem.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if is_hash && ImageType::from_extension(ext).is_some() {
            hashes.insert(stem.to_owned());
        }
    }
    Ok(hashes)
}

#[cfg(test)]
mod tests;
