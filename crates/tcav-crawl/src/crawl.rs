//! The crawl loop: candidates in, checked images and manifest lines out.
//!
//! One coordinator owns the manifest and the set folder; downloads run as
//! separate tasks that fetch, check and store the bytes in the dataset's
//! object folder, and hand back what they found. Every decision about the
//! set (is it a duplicate, is the set full) is made in the coordinator, one
//! candidate at a time, and a new download starts only while the images
//! kept plus the downloads running are fewer than asked for. Which
//! candidates get tried therefore depends on the sources' order and on which
//! downloads fail, not on which finish first.
//!
//! What a source already says about a candidate (licence, declared type,
//! size in pixels) is judged before any request, so a candidate that cannot
//! pass costs nothing. A source that fails is recorded as a manifest line
//! and the crawl moves to the next source.

use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tcav_core::SetName;
use tokio::task::JoinSet;

use crate::error::CrawlError;
use crate::fetch::{Download, Http, Rejection};
use crate::licence::licence_code;
use crate::manifest::{MANIFEST_FILE, Manifest, ManifestEntry, Reason, Status};
use crate::request::{CrawlOptions, CrawlRequest, Filters};
use crate::sniff::{ImageType, describe_non_image, dimensions, sniff};
use crate::source::{Candidate, ImageRef, Source, SourceContext};
use crate::store::{Objects, remove_stale_temporaries};

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
    /// Whether every source ran out (or failed) before the set was full.
    pub exhausted: bool,
    /// Why each source that failed this run stopped (also in the manifest).
    pub failed_sources: Vec<String>,
}

/// Hears about a crawl as it goes, to show progress. Every method has a
/// default that does nothing.
pub trait Progress: Send + Sync {
    /// The crawl of `set` starts with `have` of `wanted` images already.
    fn started(&self, set: &SetName, wanted: usize, have: usize) {
        let _ = (set, wanted, have);
    }

    /// A manifest line was written; the set now holds `have` images.
    fn recorded(&self, set: &SetName, entry: &ManifestEntry, have: usize) {
        let _ = (set, entry, have);
    }

    /// The crawl of `set` ended.
    fn finished(&self, set: &SetName, summary: &CrawlSummary) {
        let _ = (set, summary);
    }
}

/// Progress that nobody watches.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// The folder a set's crawled images go to: `<root>/raw/<set>`.
pub fn raw_set_dir(root: &Path, set: &SetName) -> PathBuf {
    root.join("raw").join(set.as_str())
}

/// Crawls sets with one HTTP client, so that sets crawled one after another
/// share per-host rate limits and robots.txt answers.
#[derive(Clone)]
pub struct Crawler {
    http: Http,
    options: CrawlOptions,
}

impl Crawler {
    /// A crawler with the given network behaviour.
    pub fn new(options: &CrawlOptions) -> Result<Crawler, CrawlError> {
        Ok(Crawler { http: Http::new(options)?, options: options.clone() })
    }

    /// The options the crawler was built with.
    pub fn options(&self) -> &CrawlOptions {
        &self.options
    }

    /// Checks a request and its sources against this crawler's options
    /// without touching the disk or the network.
    pub fn check(&self, request: &CrawlRequest) -> Result<(), CrawlError> {
        request.validate()?;
        request.sources.iter().try_for_each(|source| source.check_user_agent(&self.options.user_agent))
    }

    /// Fills `<root>/raw/<set>/`; see [`crawl`].
    pub async fn crawl(&self, request: &CrawlRequest, root: &Path) -> Result<CrawlSummary, CrawlError> {
        self.crawl_with_progress(request, root, &NoProgress).await
    }

    /// Fills `<root>/raw/<set>/`, telling `progress` as it goes; see
    /// [`crawl`].
    pub async fn crawl_with_progress(
        &self,
        request: &CrawlRequest,
        root: &Path,
        progress: &dyn Progress,
    ) -> Result<CrawlSummary, CrawlError> {
        self.check(request)?;
        let set_name = request.set.to_string();
        let set_dir = raw_set_dir(root, &request.set);
        let objects = Objects::new(root);
        // Open every source before touching the set folder, so a wrong path
        // in the definition fails without leaving anything behind. A search
        // source is opened once per query, and those lanes take turns.
        let mut stages = VecDeque::new();
        for spec in &request.sources {
            let queries = if spec.searches() {
                request.search_queries().into_iter().map(str::to_owned).collect()
            } else {
                vec![request.summary_query()]
            };
            let mut lanes = VecDeque::new();
            for query in queries {
                let context = SourceContext {
                    set: set_name.clone(),
                    query: query.clone(),
                    filters: request.filters.clone(),
                    http: self.http.clone(),
                };
                let source = spec.open(&context).await?;
                lanes.push_back(Lane { source, query: Arc::from(query), label: Arc::from(""), batch: VecDeque::new() });
            }
            stages.push_back(lanes);
        }

        for dir in [&set_dir, objects.dir()] {
            tokio::fs::create_dir_all(dir).await.map_err(|e| CrawlError::io("creating the folder", dir, e))?;
            remove_stale_temporaries(dir);
        }
        let (mut manifest, entries) = Manifest::open(&set_dir.join(MANIFEST_FILE))?;
        let settled: HashSet<String> = entries.iter().filter(|e| e.is_settled()).map(|e| e.image_url.clone()).collect();
        let stored = stored_hashes(&set_dir).await?;
        let mut folder = SetFolder {
            dir: set_dir,
            objects: objects.clone(),
            stored,
            kept: entries.iter().filter(|e| e.status == Status::Accepted).filter_map(|e| e.hash.clone()).collect(),
        };
        let wanted = request.max_num;
        let mut summary = CrawlSummary {
            requested: wanted,
            accepted: folder.stored.len(),
            added: 0,
            rejected: 0,
            skipped: 0,
            exhausted: false,
            failed_sources: Vec::new(),
        };
        progress.started(&request.set, wanted, folder.stored.len());
        if folder.stored.len() >= wanted {
            tracing::info!(set = set_name, "got {} of {} images: the set is already full", folder.stored.len(), wanted);
            progress.finished(&request.set, &summary);
            return Ok(summary);
        }
        tracing::info!(
            set = set_name,
            query = request.summary_query(),
            "crawling: {} of {} images so far",
            folder.stored.len(),
            wanted
        );

        let filters = Arc::new(request.filters.clone());
        let mut feed = Feed { stages, done: false };
        let mut tried: HashSet<String> = HashSet::new();
        let mut running: JoinSet<Job> = JoinSet::new();
        loop {
            while !feed.done && running.len() < self.options.concurrency && folder.stored.len() + running.len() < wanted
            {
                let (found, candidate) = match feed.next().await? {
                    Next::Candidate(found, candidate) => (found, candidate),
                    Next::Done => break,
                    Next::Failed(found, failure) => {
                        tracing::warn!(set = set_name, "{}", failure.message);
                        let mut entry = ManifestEntry::new(&set_name, &found.source, &found.query, 0, failure.url);
                        entry.reason = Some(failure.reason);
                        entry.detail = Some(failure.message.clone());
                        entry.retryable = failure.retryable;
                        summary.failed_sources.push(failure.message);
                        // Not counted as a rejected candidate: none was offered.
                        manifest.append(&entry)?;
                        progress.recorded(&request.set, &entry, folder.stored.len());
                        continue;
                    }
                };
                let image_url = candidate.image.manifest_url();
                if settled.contains(&image_url) || !tried.insert(image_url.clone()) {
                    summary.skipped += 1;
                    continue;
                }
                if let Err(rejection) = prejudge(&candidate, &filters) {
                    let entry = reject(describe(&set_name, &found, candidate, image_url), rejection);
                    summary.rejected += 1;
                    record(&mut manifest, progress, &request.set, &entry, folder.stored.len())?;
                    continue;
                }
                running.spawn(obtain(
                    self.http.clone(),
                    folder.objects.clone(),
                    filters.clone(),
                    found,
                    candidate,
                    image_url,
                ));
            }
            let Some(joined) = running.join_next().await else { break };
            let job = joined.map_err(|source| CrawlError::TaskStopped { what: "a download".to_owned(), source })?;
            let before = folder.stored.len();
            let entry = folder.settle(job, &set_name)?;
            summary.added += folder.stored.len() - before;
            if entry.status == Status::Rejected {
                summary.rejected += 1;
            }
            record(&mut manifest, progress, &request.set, &entry, folder.stored.len())?;
        }

        summary.accepted = folder.stored.len();
        summary.exhausted = feed.done && summary.accepted < wanted;
        if summary.exhausted {
            tracing::warn!(
                set = set_name,
                "got {} of {} images: every source ran out or failed; add sources, widen the query or lower max_num",
                summary.accepted,
                wanted
            );
        } else {
            tracing::info!(
                set = set_name,
                "got {} of {} images ({} new, {} rejected)",
                summary.accepted,
                wanted,
                summary.added,
                summary.rejected
            );
        }
        progress.finished(&request.set, &summary);
        Ok(summary)
    }
}

/// Appends a candidate's line, logs it and tells `progress`.
fn record(
    manifest: &mut Manifest,
    progress: &dyn Progress,
    set: &SetName,
    entry: &ManifestEntry,
    have: usize,
) -> Result<(), CrawlError> {
    manifest.append(entry)?;
    match entry.status {
        Status::Rejected => {
            tracing::debug!(url = entry.image_url, reason = ?entry.reason, "rejected: {}", entry.detail.as_deref().unwrap_or_default());
        }
        Status::Accepted => {
            tracing::debug!(url = entry.image_url, file = entry.file.as_deref().unwrap_or_default(), "kept")
        }
    }
    progress.recorded(set, entry, have);
    Ok(())
}

/// Fills `<root>/raw/<set>/` with up to `request.max_num` images and records
/// every candidate tried in `manifest.jsonl` there; the bytes are stored
/// once per dataset under `<root>/raw/.objects/` (see [`crate::store`]).
///
/// Resumable: candidates the manifest records as kept or as rejected for
/// good are skipped, images already in the folder count towards `max_num`,
/// and candidates that failed for a passing reason are tried again. Returns
/// once the set is full or every source has run out or failed. Dropping the
/// future stops the crawl: what was written stays whole, and a rerun
/// fetches only what is missing.
pub async fn crawl(request: &CrawlRequest, options: &CrawlOptions, root: &Path) -> Result<CrawlSummary, CrawlError> {
    Crawler::new(options)?.crawl(request, root).await
}

/// Which source, asked with which query, offered a candidate: its
/// provenance in the manifest.
#[derive(Clone)]
struct Found {
    source: Arc<str>,
    query: Arc<str>,
}

/// What the feed hands the coordinator next.
enum Next {
    Candidate(Found, Candidate),
    Failed(Found, SourceFailure),
    Done,
}

/// A source that stopped with an error the crawl records and survives.
struct SourceFailure {
    url: String,
    reason: Reason,
    retryable: bool,
    message: String,
}

impl SourceFailure {
    /// The failure, if `error` is one a source may stop with; any other
    /// error stops the crawl.
    fn from_error(error: CrawlError) -> Result<SourceFailure, CrawlError> {
        let message = error.to_string();
        match error {
            CrawlError::SourceFailed { url, reason, retryable, .. } => {
                Ok(SourceFailure { url, reason, retryable, message })
            }
            CrawlError::LayoutChanged { url, .. } => {
                Ok(SourceFailure { url, reason: Reason::LayoutChanged, retryable: true, message })
            }
            other => Err(other),
        }
    }
}

/// One source opened with one query.
struct Lane {
    source: Box<dyn Source>,
    query: Arc<str>,
    label: Arc<str>,
    batch: VecDeque<Candidate>,
}

/// The candidates of all sources, one at a time: the sources in order, and
/// within one source its query lanes in turn, one candidate each, so that
/// every query contributes even when the set is small. Lanes that run out
/// or fail leave the turn order; the order depends only on the request and
/// the sources' answers.
struct Feed {
    stages: VecDeque<VecDeque<Lane>>,
    done: bool,
}

impl Feed {
    async fn next(&mut self) -> Result<Next, CrawlError> {
        loop {
            let Some(lanes) = self.stages.front_mut() else {
                self.done = true;
                return Ok(Next::Done);
            };
            let Some(mut lane) = lanes.pop_front() else {
                self.stages.pop_front();
                continue;
            };
            if let Some(candidate) = lane.batch.pop_front() {
                let found = Found { source: lane.label.clone(), query: lane.query.clone() };
                lanes.push_back(lane);
                return Ok(Next::Candidate(found, candidate));
            }
            match lane.source.next_batch().await {
                Ok(Some(batch)) => {
                    lane.label = Arc::from(lane.source.label());
                    lane.batch = batch.into();
                    // Still this lane's turn: it hands out its first new
                    // candidate next time round the loop.
                    lanes.push_front(lane);
                }
                // Run out: the lane leaves the turn order.
                Ok(None) => {}
                Err(error) => {
                    let found = Found { source: Arc::from(lane.source.label()), query: lane.query.clone() };
                    return Ok(Next::Failed(found, SourceFailure::from_error(error)?));
                }
            }
        }
    }
}

/// A finished download, waiting for the coordinator's verdict.
struct Job {
    found: Found,
    candidate: Candidate,
    image_url: String,
    result: Result<Checked, CrawlError>,
}

/// What a download task learnt about its candidate.
struct Checked {
    http_status: Option<u16>,
    content_type: Option<String>,
    final_url: Option<String>,
    bytes: Option<u64>,
    hash: Option<String>,
    image_type: Option<ImageType>,
    dimensions: Option<(u32, u32)>,
    /// The object file the image is stored as, or why it is not kept.
    verdict: Result<String, Rejection>,
}

impl Checked {
    fn failed(rejection: Rejection) -> Checked {
        Checked {
            http_status: rejection.http_status,
            content_type: rejection.content_type.clone(),
            final_url: None,
            bytes: rejection.bytes,
            hash: None,
            image_type: None,
            dimensions: None,
            verdict: Err(rejection),
        }
    }
}

async fn obtain(
    http: Http,
    objects: Objects,
    filters: Arc<Filters>,
    found: Found,
    candidate: Candidate,
    image_url: String,
) -> Job {
    let fetched = match &candidate.image {
        ImageRef::Url(url) if candidate.obey_robots => http.get_obeying_robots(url, filters.max_bytes).await,
        ImageRef::Url(url) => http.get(url, filters.max_bytes).await,
        ImageRef::File(path) => read_local(path, filters.max_bytes).await,
    };
    let result = match fetched {
        Err(rejection) => Ok(Checked::failed(rejection)),
        // Hashing, header parsing and the atomic write (with its fsync) are
        // blocking work: off the async workers, and in parallel across
        // downloads rather than in the coordinator.
        Ok(download) => {
            tokio::task::spawn_blocking(move || check_and_store(download, &filters, &objects)).await.unwrap_or_else(
                |source| Err(CrawlError::TaskStopped { what: format!("checking and storing {image_url}"), source }),
            )
        }
    };
    Job { found, candidate, image_url, result }
}

async fn read_local(path: &Path, max_bytes: u64) -> Result<Download, Rejection> {
    let unreadable = |e: std::io::Error| {
        Rejection::new(Reason::UnreadableFile, true, format!("cannot read {}: {e}", path.display()))
    };
    let len = tokio::fs::metadata(path).await.map_err(unreadable)?.len();
    if len > max_bytes {
        let mut rejection = Rejection::new(
            Reason::TooLarge,
            false,
            format!("the file has {len} bytes, over the cap of {max_bytes} (filters.max_bytes)"),
        );
        rejection.bytes = Some(len);
        return Err(rejection);
    }
    let bytes = tokio::fs::read(path).await.map_err(unreadable)?;
    Ok(Download { http_status: None, content_type: None, final_url: None, bytes })
}

/// Judges a complete download and, if it passes, stores it as an object.
fn check_and_store(download: Download, filters: &Filters, objects: &Objects) -> Result<Checked, CrawlError> {
    let hash = blake3::hash(&download.bytes).to_hex().to_string();
    let mut checked = Checked {
        http_status: download.http_status,
        content_type: download.content_type,
        final_url: download.final_url,
        bytes: Some(download.bytes.len() as u64),
        hash: Some(hash.clone()),
        image_type: None,
        dimensions: None,
        verdict: Err(Rejection::new(Reason::NotAnImage, false, "")),
    };
    checked.verdict = match judge(&download.bytes, filters, &mut checked) {
        Err(rejection) => Err(rejection),
        Ok(image_type) => {
            // Named by content and sniffed type only: nothing from the URL
            // reaches the file system.
            let file = format!("{hash}.{}", image_type.extension());
            objects.put(&file, &download.bytes)?;
            Ok(file)
        }
    };
    Ok(checked)
}

/// The checks on a complete download that do not depend on the set. Fills
/// in the type and dimensions as they are learnt.
fn judge(bytes: &[u8], filters: &Filters, checked: &mut Checked) -> Result<ImageType, Rejection> {
    let Some(image_type) = sniff(bytes) else {
        return Err(Rejection::new(Reason::NotAnImage, false, describe_non_image(bytes)));
    };
    checked.image_type = Some(image_type);
    let reject = |reason, detail: String| Err(Rejection::new(reason, false, detail));
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
    let (width, height) = match dimensions(bytes, image_type) {
        Ok(dims) => dims,
        Err(detail) => return reject(Reason::Corrupt, detail),
    };
    checked.dimensions = Some((width, height));
    if width.min(height) < filters.min_side {
        return reject(
            Reason::TooSmall,
            format!("{width}×{height} pixels: the shorter side is under filters.min_side ({})", filters.min_side),
        );
    }
    Ok(image_type)
}

/// The checks on what a source says about a candidate, before any request.
fn prejudge(candidate: &Candidate, filters: &Filters) -> Result<(), Rejection> {
    let reject = |reason, detail: String| Err(Rejection::new(reason, false, detail));
    if !filters.licences.is_empty() {
        let allowed: Vec<String> = filters.licences.iter().map(|l| licence_code(l)).collect();
        match &candidate.licence {
            None => {
                let detail = format!("the source gives no licence, and filters.licences asks for one of {allowed:?}");
                return reject(Reason::LicenceNotAllowed, detail);
            }
            Some(licence) => {
                let code = licence_code(licence);
                if !allowed.contains(&code) {
                    let detail = format!("licence {licence:?} (code `{code}`) is not in filters.licences {allowed:?}");
                    return reject(Reason::LicenceNotAllowed, detail);
                }
            }
        }
    }
    if let Some(mime) = &candidate.mime {
        match ImageType::from_mime(mime) {
            Some(declared) if !filters.allowed_types.contains(&declared) => {
                return reject(
                    Reason::TypeNotAllowed,
                    format!("the source declares {declared}, which is not in filters.allowed_types"),
                );
            }
            Some(_) => {}
            None => {
                let detail =
                    format!("the source declares {mime}, not a type the crawler stores (JPEG, PNG, GIF, WebP, BMP)");
                return reject(Reason::TypeNotAllowed, detail);
            }
        }
    }
    if let (Some(width), Some(height)) = (candidate.width, candidate.height)
        && width.min(height) < filters.min_side
    {
        let detail = format!(
            "the source gives {width}×{height} pixels: the shorter side is under filters.min_side ({})",
            filters.min_side
        );
        return reject(Reason::TooSmall, detail);
    }
    Ok(())
}

/// A candidate's manifest line before anything is known about its bytes.
fn describe(set: &str, found: &Found, candidate: Candidate, image_url: String) -> ManifestEntry {
    let mut entry = ManifestEntry::new(set, &found.source, &found.query, candidate.rank, image_url);
    entry.page_url = candidate.page_url;
    entry.title = candidate.title;
    entry.licence = candidate.licence;
    entry.creator = candidate.creator;
    entry.width = candidate.width;
    entry.height = candidate.height;
    entry
}

/// The set folder as the coordinator sees it.
struct SetFolder {
    dir: PathBuf,
    objects: Objects,
    /// Hashes of the image files in the folder now: what counts towards
    /// `max_num`. A file a person deleted no longer counts.
    stored: HashSet<String>,
    /// Hashes the manifest records as kept. Bytes kept once and then deleted
    /// by a person stay out: a duplicate of them is rejected.
    kept: HashSet<String>,
}

impl SetFolder {
    /// Decides on one finished download, linking its image into the set if
    /// it is kept, and returns its manifest line.
    fn settle(&mut self, job: Job, set: &str) -> Result<ManifestEntry, CrawlError> {
        let Job { found, candidate, image_url, result } = job;
        let checked = result?;
        let mut entry = describe(set, &found, candidate, image_url);
        entry.http_status = checked.http_status;
        entry.content_type = checked.content_type;
        entry.final_url = checked.final_url;
        entry.bytes = checked.bytes;
        entry.image_type = checked.image_type;
        if let Some((width, height)) = checked.dimensions {
            entry.width = Some(width);
            entry.height = Some(height);
        }
        entry.hash.clone_from(&checked.hash);
        let file = match checked.verdict {
            Ok(file) => file,
            Err(rejection) => return Ok(reject(entry, rejection)),
        };
        let hash = checked.hash.unwrap_or_default();
        if self.kept.contains(&hash) {
            let detail = format!("the same bytes were already kept for this set as {file}");
            return Ok(reject(entry, Rejection::new(Reason::Duplicate, false, detail)));
        }
        // The file may exist without a manifest line when an earlier crawl
        // was stopped between the two writes; it is already counted.
        if !self.stored.contains(&hash) {
            self.objects.link_into(&file, &self.dir)?;
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

#[cfg(test)]
mod source_tests;
