//! The crawl manifest: `<root>/raw/<set>/manifest.jsonl`.
//!
//! One JSON line per candidate tried, kept or not, so that every image in a
//! set can be traced to its source, licence and creator, and every gap to a
//! reason; plus one line per source request that failed (a search page that
//! could not be had or read), so a short set says why. Every line names its
//! set, so the manifests of a dataset can be concatenated and grepped: the
//! lines with one hash list every set that asked for those bytes. A rerun
//! reads the manifest to skip what is settled. Each line is written
//! whole with a single `write` on a file opened for appending, so a killed
//! crawl leaves at most one cut-off last line, which the next run drops.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::CrawlError;
use crate::sniff::ImageType;

/// The manifest's file name inside the set folder.
pub const MANIFEST_FILE: &str = "manifest.jsonl";

/// Whether a candidate was kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The image is in the set folder.
    Accepted,
    /// The image was not kept; see the reason.
    Rejected,
}

/// Why a candidate was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Not an `http`/`https` URL (or not a URL at all).
    UnsupportedUrl,
    /// The server answered with a non-success status.
    HttpStatus,
    /// The request or the body took longer than the time-out.
    Timeout,
    /// The connection could not be made or broke before a response.
    Network,
    /// Too many redirects, a redirect loop, or a redirect off http(s).
    Redirect,
    /// The body ended before its announced length, or the connection broke.
    Truncated,
    /// Larger than `filters.max_bytes`.
    TooLarge,
    /// Smaller than `filters.min_bytes`.
    TooSmall,
    /// The bytes carry no supported image signature.
    NotAnImage,
    /// An image type left out of `filters.allowed_types`.
    TypeNotAllowed,
    /// The same bytes are already in the set.
    Duplicate,
    /// A local file that could not be read.
    UnreadableFile,
    /// The image's signature is right but its header cannot be read.
    Corrupt,
    /// The licence is unknown or not in `filters.licences`.
    LicenceNotAllowed,
    /// The site's robots.txt does not allow this crawler to fetch the URL.
    RobotsDisallowed,
    /// A source's search request failed (the line's URL is the request's).
    SourceFailed,
    /// An HTML source's first page held no results: the page layout may
    /// have changed (the line's URL is the page's).
    LayoutChanged,
}

/// One line of the manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// The set that asked for the image.
    #[serde(default)]
    pub set: String,
    /// The source's label, such as `url_list:urls.txt`.
    pub source: String,
    /// The query the source was asked with when it offered the candidate
    /// (a request with several `queries` records which one found each
    /// image); for sources that do not search (URL list, local folder), the
    /// request's query, or its queries joined by ` | `.
    pub query: String,
    /// The candidate's 1-based rank in its source (0 on a source failure).
    pub rank: usize,
    /// The page the image was found on.
    #[serde(default)]
    pub page_url: Option<String>,
    /// The image's URL (`file://` for imported local files), or the failed
    /// request's URL on a source failure line.
    pub image_url: String,
    /// Where the image was finally fetched from, when redirects led
    /// elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_url: Option<String>,
    /// The image's title.
    #[serde(default)]
    pub title: Option<String>,
    /// The image's licence.
    #[serde(default)]
    pub licence: Option<String>,
    /// The image's creator.
    #[serde(default)]
    pub creator: Option<String>,
    /// The last HTTP status.
    #[serde(default)]
    pub http_status: Option<u16>,
    /// The content type the server declared.
    #[serde(default)]
    pub content_type: Option<String>,
    /// The type the bytes were recognised as.
    #[serde(default)]
    pub image_type: Option<ImageType>,
    /// Width in pixels, from the file's header (or the source's metadata
    /// for a candidate rejected before download).
    #[serde(default)]
    pub width: Option<u32>,
    /// Height in pixels, likewise.
    #[serde(default)]
    pub height: Option<u32>,
    /// How many bytes were received.
    #[serde(default)]
    pub bytes: Option<u64>,
    /// The blake3 hex hash of the bytes.
    #[serde(default)]
    pub hash: Option<String>,
    /// The stored file's name in the set folder (accepted images only); the
    /// same name under `<root>/raw/.objects/` holds the bytes once for the
    /// whole dataset.
    #[serde(default)]
    pub file: Option<String>,
    /// Kept or not.
    pub status: Status,
    /// Why not (rejected candidates only).
    #[serde(default)]
    pub reason: Option<Reason>,
    /// What happened, for a person.
    #[serde(default)]
    pub detail: Option<String>,
    /// Whether a later crawl tries this candidate again.
    #[serde(default)]
    pub retryable: bool,
}

impl ManifestEntry {
    /// A rejected line with only its origin filled in; the crawl loop adds
    /// what it learns.
    pub fn new(set: &str, source: &str, query: &str, rank: usize, image_url: String) -> Self {
        ManifestEntry {
            set: set.to_owned(),
            source: source.to_owned(),
            query: query.to_owned(),
            rank,
            page_url: None,
            image_url,
            final_url: None,
            title: None,
            licence: None,
            creator: None,
            http_status: None,
            content_type: None,
            image_type: None,
            width: None,
            height: None,
            bytes: None,
            hash: None,
            file: None,
            status: Status::Rejected,
            reason: None,
            detail: None,
            retryable: false,
        }
    }

    /// Whether a rerun should skip this candidate: it was kept, or rejected
    /// for a reason that will not pass.
    pub fn is_settled(&self) -> bool {
        self.status == Status::Accepted || !self.retryable
    }
}

/// An open manifest, appended to line by line.
#[derive(Debug)]
pub struct Manifest {
    path: PathBuf,
    file: File,
}

impl Manifest {
    /// Opens (or creates) the manifest at `path` and returns the entries it
    /// already holds. A cut-off last line, left by a killed crawl, is
    /// removed; a malformed complete line is an error naming its number.
    pub fn open(path: &Path) -> Result<(Manifest, Vec<ManifestEntry>), CrawlError> {
        let text = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(CrawlError::io("reading the crawl manifest", path, e)),
        };
        let complete = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        if complete < text.len() {
            tracing::warn!(path = %path.display(), "dropping a cut-off last line of the crawl manifest (a crawl was stopped mid-write); its URL will be tried again");
            let file = OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| CrawlError::io("repairing the crawl manifest", path, e))?;
            file.set_len(complete as u64).map_err(|e| CrawlError::io("repairing the crawl manifest", path, e))?;
        }
        let mut entries = Vec::new();
        for (i, line) in text[..complete].split(|&b| b == b'\n').enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let entry = serde_json::from_slice(line).map_err(|source| CrawlError::Manifest {
                path: path.into(),
                line: i + 1,
                source,
            })?;
            entries.push(entry);
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| CrawlError::io("opening the crawl manifest", path, e))?;
        Ok((Manifest { path: path.into(), file }, entries))
    }

    /// Appends one entry as one line.
    pub fn append(&mut self, entry: &ManifestEntry) -> Result<(), CrawlError> {
        let mut line =
            serde_json::to_vec(entry).map_err(|e| CrawlError::io("encoding a line of", &self.path, e.into()))?;
        line.push(b'\n');
        // One write_all of the whole line on an O_APPEND file: the kernel
        // places it at the end in one piece, so lines never interleave.
        self.file.write_all(&line).map_err(|e| CrawlError::io("appending to the crawl manifest", &self.path, e))?;
        self.file.flush().map_err(|e| CrawlError::io("appending to the crawl manifest", &self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(url: &str, status: Status, retryable: bool) -> ManifestEntry {
        ManifestEntry {
            licence: Some("CC0".into()),
            http_status: Some(200),
            content_type: Some("image/png".into()),
            image_type: Some(ImageType::Png),
            bytes: Some(10),
            status,
            reason: (status == Status::Rejected).then_some(Reason::Timeout),
            retryable,
            ..ManifestEntry::new("striped", "url_list:u.txt", "stripes", 1, url.into())
        }
    }

    #[test]
    fn entries_round_trip_one_line_each() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(MANIFEST_FILE);
        let written = [entry("http://a/1", Status::Accepted, false), entry("http://a/2", Status::Rejected, true)];
        {
            let (mut manifest, old) = Manifest::open(&path).unwrap();
            assert!(old.is_empty());
            manifest.append(&written[0]).unwrap();
        }
        let (mut manifest, old) = Manifest::open(&path).unwrap();
        assert_eq!(old, written[..1]);
        manifest.append(&written[1]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2);
        let line: serde_json::Value = serde_json::from_str(text.lines().nth(1).unwrap()).unwrap();
        assert_eq!(line["reason"], "timeout");
        assert_eq!(line["status"], "rejected");
        assert_eq!(line["image_type"], "image/png");
        assert_eq!(line["set"], "striped");
        assert!(line.get("final_url").is_none(), "absent redirects are left out");
        let (_, back) = Manifest::open(&path).unwrap();
        assert_eq!(back, written);
        assert!(back[0].is_settled() && !back[1].is_settled());
    }

    #[test]
    fn lines_written_before_sets_and_sizes_were_recorded_still_read() {
        let old = r#"{"source":"url_list:u.txt","query":"q","rank":1,"page_url":null,"image_url":"http://a/1","title":null,"licence":null,"creator":null,"http_status":200,"content_type":"image/png","image_type":"image/png","bytes":10,"hash":"ab","file":"ab.png","status":"accepted","reason":null,"detail":null,"retryable":false}"#;
        let entry: ManifestEntry = serde_json::from_str(old).unwrap();
        assert_eq!((entry.set.as_str(), entry.width, entry.final_url.as_deref()), ("", None, None));
        assert!(entry.is_settled());
        for reason in ["corrupt", "licence_not_allowed", "robots_disallowed", "source_failed", "layout_changed"] {
            serde_json::from_str::<Reason>(&format!("\"{reason}\"")).unwrap();
        }
    }

    #[test]
    fn a_cut_off_last_line_is_dropped_but_a_broken_middle_line_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(MANIFEST_FILE);
        let good = serde_json::to_string(&entry("http://a/1", Status::Accepted, false)).unwrap();
        std::fs::write(&path, format!("{good}\n{{\"source\": \"url_li")).unwrap();
        let (mut manifest, old) = Manifest::open(&path).unwrap();
        assert_eq!(old.len(), 1);
        manifest.append(&entry("http://a/2", Status::Accepted, false)).unwrap();
        let (_, back) = Manifest::open(&path).unwrap();
        assert_eq!(back.len(), 2, "the appended line must not be glued to the cut-off one");

        std::fs::write(&path, format!("{good}\nnot json\n{good}\n")).unwrap();
        let err = Manifest::open(&path).unwrap_err().to_string();
        assert!(err.contains("line 2") && err.contains(MANIFEST_FILE), "{err}");
    }
}
