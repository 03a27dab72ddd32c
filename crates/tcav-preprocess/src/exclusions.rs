//! The exclusion list: files a person reviewed and decided to leave out.
//!
//! One plain-text file per dataset, named by `exclusions` in the config.
//! Each line names one file to leave out, in either of two forms:
//!
//! * a content hash: the blake3 hex hash of the file's bytes, whole
//!   (64 digits) or its first 16 or more digits, as shown on the contact
//!   sheets and in output file names (`3f2a9c0d1b7e4f65`);
//! * a path, relative to the folder that holds the exclusion file (the
//!   dataset root), or absolute (`classes/fire/img_0031.jpg`).
//!
//! Blank lines are ignored, and so is everything from a `#` that starts a
//! line or follows a space, so an entry can carry its reason:
//! `3f2a9c0d1b7e4f65  # a person, not a Pokémon`.
//!
//! A listed file is never decoded and never reaches any output; the report
//! lists it as excluded, with the line that matched. Lines that match no
//! input are listed in the report too, since they are usually typos or
//! entries for files that were since renamed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use tcav_core::CoreError;

use crate::error::PreprocessError;

/// The shortest hash prefix accepted: the 16 digits of output file names.
const MIN_HASH_DIGITS: usize = 16;

/// A parsed exclusion list.
#[derive(Clone, Debug)]
pub(crate) struct ExclusionList {
    /// The list file.
    pub file: PathBuf,
    entries: Vec<Entry>,
    /// Canonical path → index into `entries`.
    by_path: HashMap<PathBuf, usize>,
}

#[derive(Clone, Debug)]
struct Entry {
    line: usize,
    text: String,
    kind: EntryKind,
}

#[derive(Clone, Debug)]
enum EntryKind {
    Hash(String),
    Path,
}

/// Which line of the list excluded a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Match {
    pub line: usize,
    pub text: String,
}

impl ExclusionList {
    /// Reads and parses the list at `file`.
    pub(crate) fn read(file: &Path) -> Result<Self, PreprocessError> {
        let text = std::fs::read_to_string(file).map_err(|e| CoreError::io("reading the exclusion list", file, e))?;
        Self::parse(file, &text)
    }

    pub(crate) fn parse(file: &Path, text: &str) -> Result<Self, PreprocessError> {
        let root = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let mut list = ExclusionList { file: file.to_path_buf(), entries: Vec::new(), by_path: HashMap::new() };
        for (number, raw) in text.lines().enumerate() {
            let line = number + 1;
            let entry = strip_comment(raw).trim();
            if entry.is_empty() {
                continue;
            }
            let kind = if looks_like_hash(entry) {
                if entry.len() < MIN_HASH_DIGITS || entry.len() > 64 {
                    return Err(PreprocessError::Exclusions {
                        file: file.to_path_buf(),
                        line,
                        problem: format!(
                            "`{entry}` looks like a content hash but has {} hex digits; give at least \
                             {MIN_HASH_DIGITS} and at most 64 (copy them from the contact sheet)",
                            entry.len()
                        ),
                    });
                }
                EntryKind::Hash(entry.to_ascii_lowercase())
            } else {
                let path = root.join(entry);
                // A listed file that no longer exists matches nothing; it is
                // reported as unused rather than failing the run.
                if let Ok(canonical) = std::fs::canonicalize(&path) {
                    list.by_path.insert(canonical, list.entries.len());
                }
                EntryKind::Path
            };
            list.entries.push(Entry { line, text: entry.to_owned(), kind });
        }
        Ok(list)
    }

    /// The first entry that names the file at `canonical` (its canonical
    /// path, when it has one) or with content hash `hash`.
    pub(crate) fn find(&self, canonical: Option<&Path>, hash: &str) -> Option<Match> {
        let by_path = canonical.and_then(|p| self.by_path.get(p)).copied();
        let by_hash =
            self.entries.iter().position(|e| matches!(&e.kind, EntryKind::Hash(h) if hash.starts_with(h.as_str())));
        let index = match (by_path, by_hash) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b)?,
        };
        let entry = &self.entries[index];
        Some(Match { line: entry.line, text: entry.text.clone() })
    }

    /// Entries that matched none of `used` (line numbers), as `line: text`.
    pub(crate) fn unused(&self, used: &[usize]) -> Vec<String> {
        self.entries
            .iter()
            .filter(|e| !used.contains(&e.line))
            .map(|e| format!("{}:{}: {}", self.file.display(), e.line, e.text))
            .collect()
    }
}

/// Removes a `#` comment that starts the line or follows whitespace.
fn strip_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'#' && (i == 0 || bytes[i - 1].is_ascii_whitespace()) {
            return &line[..i];
        }
    }
    line
}

/// Image paths always carry an extension, so a bare run of hex digits is a
/// hash.
fn looks_like_hash(entry: &str) -> bool {
    entry.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_paths_and_comments_are_parsed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("classes/fire")).unwrap();
        std::fs::write(dir.path().join("classes/fire/a#1.png"), b"x").unwrap();
        let file = dir.path().join("exclude.txt");
        let text =
            "# reviewed 2026-03-01\n\n3F2A9C0D1B7E4F65  # a person\nclasses/fire/a#1.png # chibi\nclasses/gone.png\n";
        let list = ExclusionList::parse(&file, text).unwrap();
        let hash = format!("3f2a9c0d1b7e4f65{}", "0".repeat(48));
        assert_eq!(list.find(None, &hash), Some(Match { line: 3, text: "3F2A9C0D1B7E4F65".into() }));
        assert_eq!(list.find(None, &"3f2a9c0d1b7e4f66".repeat(4)), None);
        let canonical = std::fs::canonicalize(dir.path().join("classes/fire/a#1.png")).unwrap();
        assert_eq!(list.find(Some(&canonical), &"0".repeat(64)).unwrap().line, 4);
        let unused = list.unused(&[3, 4]);
        assert_eq!(unused.len(), 1);
        assert!(unused[0].ends_with(":5: classes/gone.png"), "{unused:?}");
    }

    #[test]
    fn short_hashes_are_an_error_naming_the_line() {
        let err = ExclusionList::parse(Path::new("data/exclude.txt"), "ok.png\nabc123\n").unwrap_err().to_string();
        assert!(err.contains("data/exclude.txt") && err.contains("line 2") && err.contains("abc123"), "{err}");
    }
}
