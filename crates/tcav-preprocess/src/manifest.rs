//! The record of what preprocessing did to every input file.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tcav_core::{SetName, Split};

use crate::config::PreprocessConfig;
use crate::error::PreprocessError;

/// Which layout a manifest describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LayoutKind {
    /// `<out>/<split>/<class>/*.png`, from [`crate::prepare_training`].
    Training,
    /// `<out>/<set>/*.png`, from [`crate::prepare_sets`].
    Tcav,
}

/// Everything one preprocessing call did: the config, a summary per set and
/// one entry per input file, in the order the sets were given and, within a
/// set, sorted by path.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Which layout was written.
    pub layout: LayoutKind,
    /// The config the images were processed with.
    pub config: PreprocessConfig,
    /// Counts per set, in the order the sets were given.
    pub sets: Vec<SetSummary>,
    /// One entry per input image file.
    pub entries: Vec<ManifestEntry>,
}

/// Counts for one class, concept or random set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SetSummary {
    /// The set.
    pub set: SetName,
    /// Its input folder.
    pub folder: PathBuf,
    /// Image files found in the folder.
    pub inputs: usize,
    /// Images written to the output.
    pub accepted: usize,
    /// Images left out.
    pub rejected: usize,
    /// Rejections by kind.
    pub rejected_by_kind: BTreeMap<RejectionKind, usize>,
    /// Accepted images per split (training layout only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub splits: Option<SplitCounts>,
}

/// Accepted images per split.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitCounts {
    /// Images in the train split.
    pub train: usize,
    /// Images in the validation split.
    pub validation: usize,
    /// Images in the test split.
    pub test: usize,
}

impl SplitCounts {
    /// The count of `split`.
    pub fn get(&self, split: Split) -> usize {
        match split {
            Split::Train => self.train,
            Split::Validation => self.validation,
            Split::Test => self.test,
        }
    }

    pub(crate) fn add(&mut self, split: Split) {
        match split {
            Split::Train => self.train += 1,
            Split::Validation => self.validation += 1,
            Split::Test => self.test += 1,
        }
    }
}

/// What happened to one input file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// The set the file was given in.
    pub set: SetName,
    /// The input file.
    pub source: PathBuf,
    /// The blake3 hex hash of the file's bytes (absent when it could not be read).
    pub source_hash: Option<String>,
    /// Whether it was written, and where.
    pub outcome: Outcome,
}

/// Whether an input file made it into the output.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    /// The file was processed and written.
    Accepted {
        /// The PNG written.
        output: PathBuf,
        /// Its split (training layout only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        split: Option<Split>,
    },
    /// The file was left out.
    Rejected {
        /// The kind of rejection, for counting.
        kind: RejectionKind,
        /// Why, in words.
        reason: String,
    },
}

/// Why an input file was left out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectionKind {
    /// The file could not be read.
    Unreadable,
    /// The bytes match no supported image format.
    NotAnImage,
    /// The file ends early (JPEG without end marker, PNG without IEND, short WebP).
    Truncated,
    /// The decoder failed.
    Undecodable,
    /// Dimensions or decoded size beyond the limits.
    TooLarge,
    /// The file changed between hashing and decoding.
    ChangedDuringRun,
    /// The shorter side is below `min_side`.
    TooSmall,
    /// The output's luma varies too little.
    NearUniform,
    /// Byte-identical to an earlier file of the same set.
    ExactDuplicate,
    /// The same bytes appear in several classes.
    AmbiguousLabel,
    /// Different bytes whose output name (16 hex digits) coincides.
    NameCollision,
}

impl RejectionKind {
    /// Whether the file itself is broken (as opposed to a valid image that
    /// preprocessing chose to leave out). Only these stop a call under
    /// `on_bad_image = "fail"`.
    pub fn is_bad_file(self) -> bool {
        matches!(
            self,
            RejectionKind::Unreadable
                | RejectionKind::NotAnImage
                | RejectionKind::Truncated
                | RejectionKind::Undecodable
                | RejectionKind::TooLarge
                | RejectionKind::ChangedDuringRun
        )
    }

    /// A short name for summaries.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectionKind::Unreadable => "unreadable",
            RejectionKind::NotAnImage => "not an image",
            RejectionKind::Truncated => "truncated",
            RejectionKind::Undecodable => "undecodable",
            RejectionKind::TooLarge => "too large",
            RejectionKind::ChangedDuringRun => "changed during run",
            RejectionKind::TooSmall => "too small",
            RejectionKind::NearUniform => "near-uniform",
            RejectionKind::ExactDuplicate => "exact duplicate",
            RejectionKind::AmbiguousLabel => "ambiguous label",
            RejectionKind::NameCollision => "output name collision",
        }
    }
}

impl fmt::Display for RejectionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Manifest {
    /// Writes the manifest as pretty JSON, atomically.
    pub fn write(&self, path: &Path) -> Result<(), PreprocessError> {
        Ok(tcav_core::store::write_json(path, self)?)
    }

    /// Reads a manifest written by [`Manifest::write`].
    pub fn read(path: &Path) -> Result<Self, PreprocessError> {
        Ok(tcav_core::store::read_json(path)?)
    }

    /// The summary of `set`, if it was part of the call.
    pub fn summary(&self, set: &SetName) -> Option<&SetSummary> {
        self.sets.iter().find(|s| &s.set == set)
    }

    /// The accepted entries of `set`.
    pub fn accepted<'a>(&'a self, set: &'a SetName) -> impl Iterator<Item = &'a ManifestEntry> + 'a {
        self.entries.iter().filter(move |e| &e.set == set && matches!(e.outcome, Outcome::Accepted { .. }))
    }
}
