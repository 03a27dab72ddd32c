//! The record of what preprocessing did to every input file: the report.

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
    /// Both layouts of a whole experiment (`<out>/splited/…` and
    /// `<out>/for_tcav/…`), from [`crate::prepare_dataset`].
    Dataset,
}

/// What a set is for. Its order is the priority order of the duplicate
/// rule: classes first, then concepts, then random sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SetRole {
    /// Images of one class the classifier learns.
    Class,
    /// Examples of a concept, for its CAV.
    Concept,
    /// Random counter-examples, for CAVs and the significance test.
    Random,
}

impl SetRole {
    /// The role in words, as used in messages ("class `fire`").
    pub fn as_str(self) -> &'static str {
        match self {
            SetRole::Class => "class",
            SetRole::Concept => "concept",
            SetRole::Random => "random set",
        }
    }
}

/// Everything one preprocessing call did: the config, a summary per set,
/// the rejections by reason, the duplicate groups, and one entry per input
/// file (one per frame for GIFs read frame by frame), in set order and,
/// within a set, sorted by path. Fields added in [`crate::OUTPUT_VERSION`] 2
/// default to empty, so manifests written by version 1 still read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Which layout was written.
    pub layout: LayoutKind,
    /// The config the images were processed with.
    pub config: PreprocessConfig,
    /// How perceptual hashes were computed, so that distances can be read.
    #[serde(default)]
    pub perceptual_hash: String,
    /// Counts per set, in priority order for [`crate::prepare_dataset`] and
    /// in the order given otherwise.
    pub sets: Vec<SetSummary>,
    /// Rejections by kind, over all sets.
    #[serde(default)]
    pub rejected_by_kind: BTreeMap<RejectionKind, usize>,
    /// Every group of two or more exact or near duplicates, and which of its
    /// members were kept.
    #[serde(default)]
    pub duplicate_groups: Vec<DuplicateGroup>,
    /// Class images whose locked split was overridden so that a group of near
    /// duplicates lands in one split.
    #[serde(default)]
    pub lock_conflicts: Vec<LockConflict>,
    /// Lines of the exclusion list that matched no input file (`file:line:
    /// entry`): usually typos or renamed files.
    #[serde(default)]
    pub unused_exclusions: Vec<String>,
    /// One entry per input image file, or per frame taken from a GIF.
    pub entries: Vec<ManifestEntry>,
}

/// Exact or near duplicates found together, in priority order: the first
/// member is the group's representative.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DuplicateGroup {
    /// The set that keeps the group's images; `None` when the group spans
    /// several classes and was left out of every set.
    pub kept_in: Option<SetName>,
    /// The members, representative first.
    pub members: Vec<DuplicateMember>,
}

/// One image of a [`DuplicateGroup`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DuplicateMember {
    /// Its set.
    pub set: SetName,
    /// Its file.
    pub source: PathBuf,
    /// Its GIF frame, if taken frame by frame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame: Option<u32>,
    /// How it relates to the representative.
    pub relation: DuplicateRelation,
    /// Whether it was written to the output.
    pub kept: bool,
}

/// How a member of a duplicate group relates to the group.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DuplicateRelation {
    /// The first member in priority order.
    Representative,
    /// The same decoded pixels as an earlier member.
    Exact,
    /// A perceptual hash this many bits from the representative's, and a
    /// thumbnail this close in colour.
    Near {
        /// The Hamming distance between the 64-bit perceptual hashes.
        distance: u32,
        /// The mean absolute difference of the 16 × 16 colour thumbnails.
        colour_difference: f64,
    },
}

/// A class image that left its locked split.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LockConflict {
    /// The class.
    pub class: SetName,
    /// The image file.
    pub source: PathBuf,
    /// The split the lockfile gave it.
    pub locked: Split,
    /// The split it is in now, its group's.
    pub now: Split,
}

/// Counts for one class, concept or random set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SetSummary {
    /// The set.
    pub set: SetName,
    /// What the set is for (absent from [`crate::prepare_sets`], which does
    /// not know which of its sets are random sets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<SetRole>,
    /// Its input folder.
    pub folder: PathBuf,
    /// Image files found in the folder.
    pub inputs: usize,
    /// Images written to the output (GIF frames count one each).
    pub accepted: usize,
    /// Files, or GIF frames, left out.
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
    /// The GIF frame this entry is about, when frames are taken with
    /// [`crate::GifFrames::Every`]; the output name carries it too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame: Option<u32>,
    /// The blake3 hex hash of the file's bytes (absent when it could not be read).
    pub source_hash: Option<String>,
    /// The 64-bit perceptual hash of the output image, as 16 hex digits
    /// (absent when the image was rejected before it was hashed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub perceptual_hash: Option<String>,
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
    /// File size, dimensions or decoded size beyond the limits.
    TooLarge,
    /// The shorter side is below `min_side`.
    TooSmall,
    /// The output's luma varies too little.
    NearUniform,
    /// Listed in the exclusion list.
    Excluded,
    /// The same decoded pixels as an earlier image of the same set.
    ExactDuplicate,
    /// A near duplicate of an earlier image of the same set, under
    /// `duplicates.within_set = "drop"`.
    NearDuplicate,
    /// An exact or near duplicate of an image kept in another set.
    CrossSetDuplicate,
    /// Exact or near duplicates appear in several classes.
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
            RejectionKind::TooSmall => "too small",
            RejectionKind::NearUniform => "near-uniform",
            RejectionKind::Excluded => "excluded",
            RejectionKind::ExactDuplicate => "exact duplicate",
            RejectionKind::NearDuplicate => "near duplicate",
            RejectionKind::CrossSetDuplicate => "duplicate of another set",
            RejectionKind::AmbiguousLabel => "ambiguous label",
            RejectionKind::NameCollision => "output name collision",
        }
    }
}

impl ManifestEntry {
    /// The rejection kind, if the entry was left out.
    pub fn rejection_kind(&self) -> Option<RejectionKind> {
        match &self.outcome {
            Outcome::Rejected { kind, .. } => Some(*kind),
            Outcome::Accepted { .. } => None,
        }
    }

    /// `path[ frame N]: reason` for a rejected entry, `path -> output` for an
    /// accepted one, on one line.
    pub fn one_line(&self) -> String {
        let frame = self.frame.map_or(String::new(), |f| format!(" frame {f}"));
        match &self.outcome {
            Outcome::Rejected { reason, .. } => {
                format!("{}{frame} [{}]: {}", self.source.display(), self.set, reason.replace('\n', " "))
            }
            Outcome::Accepted { output, .. } => {
                format!("{}{frame} [{}] -> {}", self.source.display(), self.set, output.display())
            }
        }
    }
}

impl DuplicateGroup {
    /// Whether the group has members in more than one set.
    pub fn spans_sets(&self) -> bool {
        self.members.iter().any(|m| self.members.first().is_some_and(|first| first.set != m.set))
    }
}

impl fmt::Display for RejectionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Manifest {
    /// Writes the manifest (the report) as pretty JSON, atomically.
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

    /// A short plain-text summary for people: counts per set and split,
    /// rejections by reason, the duplicate groups, and one line per bad
    /// file and per excluded file.
    pub fn summary_text(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let inputs: usize = self.sets.iter().map(|s| s.inputs).sum();
        let written: usize = self.sets.iter().map(|s| s.accepted).sum();
        let rejected: usize = self.sets.iter().map(|s| s.rejected).sum();
        let _ = writeln!(out, "tcav-preprocess report ({:?} layout)", self.layout);
        let _ = writeln!(
            out,
            "{inputs} input files in {} sets: {written} images written, {rejected} files or frames left out\n",
            self.sets.len()
        );
        let _ = writeln!(
            out,
            "{:<24} {:<10} {:>7} {:>8} {:>9} {:>6} {:>11} {:>6}",
            "set", "role", "inputs", "written", "left out", "train", "validation", "test"
        );
        for s in &self.sets {
            let splits = |f: fn(&SplitCounts) -> usize| s.splits.as_ref().map_or("-".to_owned(), |c| f(c).to_string());
            let _ = writeln!(
                out,
                "{:<24} {:<10} {:>7} {:>8} {:>9} {:>6} {:>11} {:>6}",
                s.set.as_str(),
                s.role.map_or("set", SetRole::as_str),
                s.inputs,
                s.accepted,
                s.rejected,
                splits(|c| c.train),
                splits(|c| c.validation),
                splits(|c| c.test)
            );
        }
        let _ = writeln!(out, "\nleft out, by reason:");
        if self.rejected_by_kind.is_empty() {
            let _ = writeln!(out, "  nothing");
        }
        for (kind, count) in &self.rejected_by_kind {
            let _ = writeln!(out, "  {:<26} {count}", kind.as_str());
        }
        let across = self.duplicate_groups.iter().filter(|g| g.spans_sets()).count();
        let _ = writeln!(out, "\nduplicate groups: {} ({across} across sets)", self.duplicate_groups.len());
        for group in &self.duplicate_groups {
            let kept = group
                .kept_in
                .as_ref()
                .map_or("left out of every set (ambiguous label)".to_owned(), |s| format!("kept in `{s}`"));
            let members: Vec<String> = group
                .members
                .iter()
                .map(|m| {
                    let relation = match m.relation {
                        DuplicateRelation::Representative => "representative".to_owned(),
                        DuplicateRelation::Exact => "same pixels".to_owned(),
                        DuplicateRelation::Near { distance, colour_difference } => {
                            format!("{distance} bits, colour {colour_difference:.1}")
                        }
                    };
                    let frame = m.frame.map_or(String::new(), |f| format!(" frame {f}"));
                    let fate = if m.kept { "kept" } else { "dropped" };
                    format!("{}{frame} [{}, {relation}, {fate}]", m.source.display(), m.set)
                })
                .collect();
            let _ = writeln!(out, "  {kept}: {}", members.join(" | "));
        }
        let bad: Vec<&ManifestEntry> =
            self.entries.iter().filter(|e| e.rejection_kind().is_some_and(RejectionKind::is_bad_file)).collect();
        let _ = writeln!(out, "\nbad files ({}):", bad.len());
        for entry in bad {
            let _ = writeln!(out, "  {}", entry.one_line());
        }
        let others: Vec<&ManifestEntry> = self
            .entries
            .iter()
            .filter(|e| {
                e.rejection_kind().is_some_and(|k| {
                    matches!(k, RejectionKind::TooSmall | RejectionKind::NearUniform | RejectionKind::NameCollision)
                })
            })
            .collect();
        let _ = writeln!(out, "\nleft out by the size and content checks ({}):", others.len());
        for entry in others {
            let _ = writeln!(out, "  {}", entry.one_line());
        }
        let excluded: Vec<&ManifestEntry> =
            self.entries.iter().filter(|e| e.rejection_kind() == Some(RejectionKind::Excluded)).collect();
        let _ = writeln!(out, "\nexcluded by the exclusion list ({}):", excluded.len());
        for entry in excluded {
            let _ = writeln!(out, "  {}", entry.one_line());
        }
        if !self.unused_exclusions.is_empty() {
            let _ = writeln!(out, "\nexclusion entries that matched no file ({}):", self.unused_exclusions.len());
            for line in &self.unused_exclusions {
                let _ = writeln!(out, "  {line}");
            }
        }
        if !self.lock_conflicts.is_empty() {
            let _ = writeln!(
                out,
                "\nlocked splits overridden to keep near duplicates together ({}):",
                self.lock_conflicts.len()
            );
            for c in &self.lock_conflicts {
                let _ = writeln!(out, "  class `{}`: {}: {} -> {}", c.class, c.source.display(), c.locked, c.now);
            }
        }
        out
    }

    /// The accepted entries of `set`.
    pub fn accepted<'a>(&'a self, set: &'a SetName) -> impl Iterator<Item = &'a ManifestEntry> + 'a {
        self.entries.iter().filter(move |e| &e.set == set && matches!(e.outcome, Outcome::Accepted { .. }))
    }
}
