//! The entry points and the engine they share.
//!
//! A call runs in phases, so that its result does not depend on how rayon
//! schedules the work:
//! 1. check the sets, read the exclusion list and the lockfile, list every
//!    input folder (sorted);
//! 2. in parallel: read, hash, decode, square, check and perceptually hash
//!    every file, and stage each surviving image as a PNG in a private
//!    folder inside the output root;
//! 3. sequentially, in priority order: apply the bad-image policy, find
//!    exact and near duplicates and decide which set keeps them, assign
//!    class images to splits, move the staged PNGs into place, remove
//!    outputs of earlier runs that this run no longer produces, update the
//!    lockfile and build the report.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use image::codecs::png::PngEncoder;
use image::{ExtendedColorType, ImageEncoder, RgbImage};
use rayon::prelude::*;
use tcav_core::store::write_atomic;
use tcav_core::{CoreError, ImageSetDir, SetName, Split, TcavLayout, TrainLayout};
use tracing::{info, info_span, warn};
use tracing_indicatif::span_ext::IndicatifSpanExt;

use crate::config::{BadImagePolicy, MAX_FILE_BYTES, PreprocessConfig, WithinSet};
use crate::contact_sheet;
use crate::decode::Rejection;
use crate::error::PreprocessError;
use crate::exclusions::ExclusionList;
use crate::geometry::mean_abs_difference;
use crate::lock::SplitLock;
use crate::manifest::{
    DuplicateGroup, DuplicateMember, DuplicateRelation, LayoutKind, LockConflict, Manifest, ManifestEntry, Outcome,
    RejectionKind, SetRole, SetSummary, SplitCounts,
};
use crate::pipeline::{PERCEPTUAL_HASH, preprocess_each};
use crate::split::{Placed, fill_empty_splits, natural_split, split_position};

/// The version of what this crate writes for given inputs and config.
/// Artifact keys should include it: it is bumped whenever a change here
/// changes the output images, their names or their splits, so that stored
/// preprocessing output from an older version is never reused. (Version 2:
/// SIMD resizing, near duplicates, frame names, lockfile.)
pub const OUTPUT_VERSION: u32 = 2;

/// The training layout's folder inside [`prepare_dataset`]'s output, named
/// as in the seed project.
pub const TRAIN_DIR: &str = "splited";
/// The TCAV layout's folder inside [`prepare_dataset`]'s output.
pub const TCAV_DIR: &str = "for_tcav";
/// The JSON report inside [`prepare_dataset`]'s output.
pub const REPORT_JSON: &str = "report.json";
/// The plain-text summary inside [`prepare_dataset`]'s output.
pub const REPORT_TEXT: &str = "report.txt";
/// The copy of the split lock inside [`prepare_dataset`]'s output.
pub const LOCK_FILE: &str = "splits.lock.json";
/// The folder of contact sheets inside [`prepare_dataset`]'s output.
pub const CONTACT_SHEETS_DIR: &str = "contact_sheets";

/// The training layout written by [`prepare_dataset`] into `out`.
pub fn train_layout(out: &Path) -> TrainLayout {
    TrainLayout::new(out.join(TRAIN_DIR))
}

/// The TCAV layout written by [`prepare_dataset`] into `out`.
pub fn tcav_layout(out: &Path) -> TcavLayout {
    TcavLayout::new(out.join(TCAV_DIR))
}

/// The raw image folders of one experiment, one per set, by role.
#[derive(Clone, Debug, Default)]
pub struct DatasetInputs {
    /// One folder per class the classifier learns.
    pub classes: Vec<(SetName, PathBuf)>,
    /// One folder per concept.
    pub concepts: Vec<(SetName, PathBuf)>,
    /// One folder per random set.
    pub random_sets: Vec<(SetName, PathBuf)>,
}

/// Preprocesses all the images of an experiment at once, so that duplicates
/// are found across every class, concept and random set.
///
/// Writes, into `out` (created if needed):
/// * `splited/{train,validation,test}/<class>/<name>.png` ([`train_layout`]);
/// * `for_tcav/<set>/<name>.png` for concepts and random sets ([`tcav_layout`]);
/// * `report.json` (the returned [`Manifest`]) and `report.txt` (its
///   [`Manifest::summary_text`]);
/// * `splits.lock.json`, the split of every class image ([`crate::lock`]);
/// * `contact_sheets/<set>.html`, one page per set for manual review.
///
/// Output names are the first 16 hex digits of the source file's blake3
/// hash, with `_f<frame>` for GIF frames; `output` paths in the report are
/// relative to `out`, so the folder can be moved.
///
/// **Duplicates.** Images with the same decoded pixels, or near duplicates
/// of each other (see [`crate::DuplicateConfig`]), form a group.
/// Sets are ranked: classes, then concepts, then random sets, and within a
/// role by name; files within a set by path. Each group is kept only in the
/// set of its highest-ranked member (its representative); its members in
/// other sets are left out and reported, so no concept or random image is a
/// copy of a class image, and no image is both a concept example and a
/// random counter-example. A group that spans two or more classes is left
/// out of every set, since its label is ambiguous. Within the keeping set,
/// exact duplicates are written once, and near duplicates are kept (and,
/// in a class, put in one split) or dropped as `duplicates.within_set` says.
///
/// **Splits** follow [`crate::split`] and the lockfile named by
/// `config.lockfile`, which this call reads and then rewrites with this
/// run's splits added.
///
/// # Errors
///
/// A missing or empty input folder (the error names the folder and the
/// set), a set name used twice, an output folder that is an input folder,
/// an invalid config, an unreadable exclusion list or lockfile, a set whose
/// every image was rejected (with the most common reasons), an I/O error on
/// an output path, and, under `on_bad_image = "fail"`, the first broken file
/// in priority order. Nothing is moved into the layouts before the bad-image
/// policy has been applied; later errors may leave part of this call's
/// output in `out`, so build into a fresh folder and trust it only once this
/// returns `Ok`.
pub fn prepare_dataset(
    inputs: &DatasetInputs,
    config: &PreprocessConfig,
    out: &Path,
) -> Result<Manifest, PreprocessError> {
    let train = train_layout(out);
    let tcav = tcav_layout(out);
    let mut sets = Vec::new();
    for (role, list) in [
        (SetRole::Class, &inputs.classes),
        (SetRole::Concept, &inputs.concepts),
        (SetRole::Random, &inputs.random_sets),
    ] {
        for (name, folder) in list {
            let dest = if role == SetRole::Class { Dest::Train(train.clone()) } else { Dest::Tcav(tcav.clone()) };
            sets.push(SetSpec { name: name.clone(), folder: folder.clone(), role: Some(role), dest });
        }
    }
    check_unique(&sets)?;
    sets.sort_by(|a, b| (a.role, &a.name).cmp(&(b.role, &b.name)));
    let extra = [out.to_path_buf(), out.join(CONTACT_SHEETS_DIR)];
    let (mut manifest, lock) =
        run(&sets, config, Mode { cross_set: true, layout: LayoutKind::Dataset, root: out, extra_dirs: &extra })?;
    for entry in &mut manifest.entries {
        if let Outcome::Accepted { output, .. } = &mut entry.outcome
            && let Ok(relative) = output.strip_prefix(out)
        {
            *output = relative.to_path_buf();
        }
    }
    contact_sheet::write_all(&manifest, out, &out.join(CONTACT_SHEETS_DIR), config.exclusions.as_deref())?;
    lock.write(&out.join(LOCK_FILE))?;
    manifest.write(&out.join(REPORT_JSON))?;
    write_atomic(&out.join(REPORT_TEXT), manifest.summary_text().as_bytes())?;
    Ok(manifest)
}

/// Preprocesses one folder of raw images per class into the training layout
/// `<out>/<split>/<class>/<name>.png`, on its own.
///
/// Duplicates are looked for across the classes given, not against concept
/// or random sets (use [`prepare_dataset`] for that): a group of exact or
/// near duplicates that spans two classes is left out of both, because an
/// image with two labels would teach the classifier a contradiction. Each
/// image's split follows [`crate::split`] and the lockfile. Output files of
/// earlier runs into the same class folders that this run does not produce
/// are removed, so that a changed salt or split never leaves an image in two
/// splits. `output` paths in the manifest are full paths.
///
/// # Errors
///
/// As [`prepare_dataset`], for classes.
pub fn prepare_training(
    classes: &[(SetName, PathBuf)],
    config: &PreprocessConfig,
    out: &TrainLayout,
) -> Result<Manifest, PreprocessError> {
    let sets: Vec<SetSpec> = classes
        .iter()
        .map(|(name, folder)| SetSpec {
            name: name.clone(),
            folder: folder.clone(),
            role: None,
            dest: Dest::Train(out.clone()),
        })
        .collect();
    check_unique(&sets)?;
    Ok(run(&sets, config, Mode { cross_set: true, layout: LayoutKind::Training, root: out.root(), extra_dirs: &[] })?.0)
}

/// Preprocesses one folder of raw images per concept or random set into the
/// TCAV layout `<out>/<set>/<name>.png`, each set on its own.
///
/// Duplicates are looked for within each set only: the same image may
/// appear in several sets. [`prepare_dataset`] also resolves duplicates
/// across sets. Output files of earlier runs into the same set folders that
/// this run does not produce are removed. `output` paths in the manifest are
/// full paths.
///
/// # Errors
///
/// As [`prepare_dataset`], for sets.
pub fn prepare_sets(
    sets: &[(SetName, PathBuf)],
    config: &PreprocessConfig,
    out: &TcavLayout,
) -> Result<Manifest, PreprocessError> {
    let sets: Vec<SetSpec> = sets
        .iter()
        .map(|(name, folder)| SetSpec {
            name: name.clone(),
            folder: folder.clone(),
            role: None,
            dest: Dest::Tcav(out.clone()),
        })
        .collect();
    check_unique(&sets)?;
    Ok(run(&sets, config, Mode { cross_set: false, layout: LayoutKind::Tcav, root: out.root(), extra_dirs: &[] })?.0)
}

/// One input set and where its images go.
struct SetSpec {
    name: SetName,
    folder: PathBuf,
    role: Option<SetRole>,
    dest: Dest,
}

#[derive(Clone)]
enum Dest {
    Train(TrainLayout),
    Tcav(TcavLayout),
}

impl SetSpec {
    fn what(&self) -> &'static str {
        match (self.role, &self.dest) {
            (Some(role), _) => role.as_str(),
            (None, Dest::Train(_)) => "class",
            (None, Dest::Tcav(_)) => "set",
        }
    }

    fn is_class(&self) -> bool {
        matches!(self.dest, Dest::Train(_))
    }

    fn dir(&self, split: Option<Split>) -> PathBuf {
        match &self.dest {
            Dest::Train(layout) => layout.class_dir(split.unwrap_or(Split::Train), &self.name),
            Dest::Tcav(layout) => layout.set_dir(&self.name),
        }
    }

    /// Every folder this call writes into for the set.
    fn managed_dirs(&self) -> Vec<PathBuf> {
        match &self.dest {
            Dest::Train(layout) => Split::ALL.iter().map(|&split| layout.class_dir(split, &self.name)).collect(),
            Dest::Tcav(layout) => vec![layout.set_dir(&self.name)],
        }
    }
}

/// How one call treats its sets.
struct Mode<'a> {
    /// Whether duplicates are looked for across sets, or within each set.
    cross_set: bool,
    layout: LayoutKind,
    /// The folder that holds every output (the staging folder goes here).
    root: &'a Path,
    /// Further folders this call writes into, besides the sets' folders.
    extra_dirs: &'a [PathBuf],
}

/// One input file and what became of it in phase 2.
struct Item {
    set: usize,
    path: PathBuf,
    hash: Option<String>,
    /// The exclusion-list line that excluded it.
    excluded_by: Option<usize>,
    outcome: Result<Vec<FrameOut>, Rejection>,
}

/// One frame of an input file (a still image has one).
struct FrameOut {
    index: Option<u32>,
    perceptual_hash: Option<u64>,
    /// The staged image, or why the frame was left out in phase 2.
    result: Result<Staged, Rejection>,
    /// Its position in the list of images, once phase 3 has one.
    image: Option<usize>,
}

struct Staged {
    path: PathBuf,
    pixel_hash: String,
    colour_thumbnail: Vec<u8>,
}

/// An image that survived phase 2, in priority order.
struct Image {
    item: usize,
    set: usize,
    frame: Option<u32>,
    source_hash: String,
    pixel_hash: String,
    perceptual_hash: u64,
    colour_thumbnail: Vec<u8>,
    staged: PathBuf,
    name: String,
    fate: Result<(), Rejection>,
    split: Option<Split>,
    output: Option<PathBuf>,
}

/// The name of an output file: 16 hex digits of the source's content hash,
/// and the frame index for GIF frames.
fn output_name(hash: &str, frame: Option<u32>) -> String {
    let stem = hash.get(..16).unwrap_or(hash);
    match frame {
        Some(frame) => format!("{stem}_f{frame:04}.png"),
        None => format!("{stem}.png"),
    }
}

fn is_output_name(name: &str) -> bool {
    let Some(stem) = name.strip_suffix(".png") else {
        return false;
    };
    let (hash, frame) = match stem.split_once("_f") {
        Some((hash, frame)) => (hash, Some(frame)),
        None => (stem, None),
    };
    hash.len() == 16
        && hash.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && frame.is_none_or(|f| f.len() >= 4 && f.bytes().all(|b| b.is_ascii_digit()))
}

fn check_unique(sets: &[SetSpec]) -> Result<(), PreprocessError> {
    let mut first: HashMap<&SetName, &SetSpec> = HashMap::new();
    for set in sets {
        if let Some(earlier) = first.insert(&set.name, set) {
            return Err(PreprocessError::DuplicateSet {
                what: set.what(),
                set: set.name.clone(),
                first: earlier.folder.clone(),
                second: set.folder.clone(),
            });
        }
    }
    Ok(())
}

fn run(sets: &[SetSpec], config: &PreprocessConfig, mode: Mode<'_>) -> Result<(Manifest, SplitLock), PreprocessError> {
    config.validate()?;

    // Phase 1: list, check, read the review files.
    let mut items = Vec::new();
    for (index, set) in sets.iter().enumerate() {
        let files = ImageSetDir::new(&set.folder, format!("{} `{}`", set.what(), set.name)).list()?;
        note_ignored_files(set);
        items.extend(files.into_iter().map(|path| Item {
            set: index,
            path,
            hash: None,
            excluded_by: None,
            outcome: Err(Rejection::new(RejectionKind::Unreadable, "not processed")),
        }));
    }
    check_overlap(sets, mode.extra_dirs)?;
    let exclusions = config.exclusions.as_deref().map(ExclusionList::read).transpose()?;
    let mut lock = match &config.lockfile {
        Some(path) => SplitLock::read(path)?,
        None => SplitLock::default(),
    };
    info!(files = items.len(), sets = sets.len(), root = %mode.root.display(), "preprocessing images");

    // Phase 2: the per-file work, in parallel, staged in a private folder
    // that is removed however this call ends.
    std::fs::create_dir_all(mode.root).map_err(|e| CoreError::io("creating", mode.root, e))?;
    let staging = tempfile::Builder::new()
        .prefix(".staging-")
        .tempdir_in(mode.root)
        .map_err(|e| CoreError::io("creating a staging folder in", mode.root, e))?;
    let span = info_span!("preprocess", files = items.len());
    if let Ok(style) = tracing_indicatif::style::ProgressStyle::with_template(
        "{span_child_prefix}preprocessing {wide_bar} {pos}/{len} files ({per_sec}, {eta} left)",
    ) {
        span.pb_set_style(&style);
    }
    span.pb_set_length(items.len() as u64);
    let outcomes: Vec<Result<FileResult, PreprocessError>> = {
        let _entered = span.enter();
        items
            .par_iter()
            .enumerate()
            .map(|(index, item)| {
                let result = process_file(&item.path, index, exclusions.as_ref(), config, staging.path());
                span.pb_inc(1);
                result
            })
            .collect()
    };
    drop(span);
    for (item, outcome) in items.iter_mut().zip(outcomes) {
        let (hash, excluded_by, frames) = outcome?;
        item.hash = hash;
        item.excluded_by = excluded_by;
        item.outcome = frames;
    }

    // Phase 3: decisions, in priority order.
    apply_bad_image_policy(&items, sets, config)?;
    let mut images = collect_images(&mut items);
    reject_name_collisions(&mut images, &items);
    let groups = group_duplicates(&images, config, mode.cross_set);
    resolve_groups(&mut images, &groups, &items, sets, config);
    check_every_set_has_images(&items, &images, sets)?;
    let lock_conflicts = assign_splits(&mut images, &groups, &items, sets, config, &mut lock);

    for image in &mut images {
        if image.fate.is_err() {
            continue;
        }
        let set = &sets[image.set];
        let dir = set.dir(image.split);
        std::fs::create_dir_all(&dir).map_err(|e| CoreError::io("creating", &dir, e))?;
        let output = dir.join(&image.name);
        std::fs::rename(&image.staged, &output)
            .map_err(|e| CoreError::io("moving a preprocessed image into", &output, e))?;
        image.output = Some(output);
    }
    remove_stale_outputs(&images, sets)?;
    if let Some(path) = &config.lockfile {
        lock.write(path)?;
    }
    for entry in &items {
        if let Err(rejection) = &entry.outcome {
            warn!(file = %entry.path.display(), "{} `{}`: left out: {}", sets[entry.set].what(), sets[entry.set].name, rejection.reason);
        }
    }
    for image in &images {
        if let Err(rejection) = &image.fate {
            info!(file = %items[image.item].path.display(), "{} `{}`: left out: {}", sets[image.set].what(), sets[image.set].name, rejection.reason);
        }
    }
    let unused_exclusions = exclusions.as_ref().map_or(Vec::new(), |list| {
        let used: Vec<usize> = items.iter().filter_map(|it| it.excluded_by).collect();
        list.unused(&used)
    });
    for line in &unused_exclusions {
        warn!("exclusion entry matched no input file: {line}");
    }
    let duplicate_groups = report_groups(&groups, &images, &items, sets);
    let manifest =
        build_manifest(items, &images, sets, config, &mode, duplicate_groups, lock_conflicts, unused_exclusions);
    for summary in &manifest.sets {
        info!(
            accepted = summary.accepted,
            rejected = summary.rejected,
            "{} `{}`: {} images from {} files",
            summary.role.map_or("set", SetRole::as_str),
            summary.set,
            summary.accepted,
            summary.inputs
        );
    }
    Ok((manifest, lock))
}

type FileResult = (Option<String>, Option<usize>, Result<Vec<FrameOut>, Rejection>);

/// Phase 2 for one file: read, hash, check the exclusion list, decode,
/// preprocess and stage every frame. Only I/O errors on the staging folder
/// are errors; everything wrong with the file is a rejection.
fn process_file(
    path: &Path,
    index: usize,
    exclusions: Option<&ExclusionList>,
    config: &PreprocessConfig,
    staging: &Path,
) -> Result<FileResult, PreprocessError> {
    let unreadable =
        |e: std::io::Error| Rejection::new(RejectionKind::Unreadable, format!("cannot read the file: {e}"));
    let size = match std::fs::metadata(path) {
        Ok(meta) => meta.len(),
        Err(e) => return Ok((None, None, Err(unreadable(e)))),
    };
    if size > MAX_FILE_BYTES {
        let reason = format!("the file has {} MiB, over the limit of {} MiB", size >> 20, MAX_FILE_BYTES >> 20);
        return Ok((None, None, Err(Rejection::new(RejectionKind::TooLarge, reason))));
    }
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) => return Ok((None, None, Err(unreadable(e)))),
    };
    let hash = blake3::hash(&bytes).to_hex().to_string();
    if let Some(list) = exclusions {
        let canonical = std::fs::canonicalize(path).ok();
        if let Some(found) = list.find(canonical.as_deref(), &hash) {
            let reason =
                format!("listed in the exclusion list {}, line {}: {}", list.file.display(), found.line, found.text);
            return Ok((Some(hash), Some(found.line), Err(Rejection::new(RejectionKind::Excluded, reason))));
        }
    }
    let mut frames = Vec::new();
    let mut write_error = None;
    let decoded = preprocess_each(&bytes, config, |frame| {
        let perceptual_hash = frame.result.as_ref().ok().map(|image| image.perceptual_hash);
        let result = match frame.result {
            Ok(image) => {
                let staged = staging.join(format!("{index}-{}.png", frames.len()));
                match write_png(&image.image, &staged) {
                    Ok(()) => Ok(Staged {
                        path: staged,
                        pixel_hash: image.pixel_hash,
                        colour_thumbnail: image.colour_thumbnail,
                    }),
                    Err(e) => {
                        write_error.get_or_insert(e);
                        Err(Rejection::new(RejectionKind::Unreadable, "the staged image could not be written"))
                    }
                }
            }
            Err(rejection) => Err(rejection),
        };
        frames.push(FrameOut { index: frame.index, perceptual_hash, result, image: None });
    });
    if let Some(e) = write_error {
        return Err(e);
    }
    if decoded == Ok(true) {
        warn!(file = %path.display(), "this GIF has more than {} frames; only the first were read", crate::MAX_GIF_FRAMES);
    }
    Ok((Some(hash), None, decoded.map(|_| frames)))
}

/// Encodes `image` as PNG and writes it to `path` (a staging file: the move
/// into the layout is the atomic step).
fn write_png(image: &RgbImage, path: &Path) -> Result<(), PreprocessError> {
    let mut bytes = Vec::new();
    PngEncoder::new(&mut bytes)
        .write_image(image.as_raw(), image.width(), image.height(), ExtendedColorType::Rgb8)
        .map_err(|source| PreprocessError::Encode { path: path.to_path_buf(), source })?;
    std::fs::write(path, &bytes).map_err(|e| CoreError::io("writing", path, e))?;
    Ok(())
}

fn apply_bad_image_policy(items: &[Item], sets: &[SetSpec], config: &PreprocessConfig) -> Result<(), PreprocessError> {
    if config.on_bad_image != BadImagePolicy::Fail {
        return Ok(());
    }
    for item in items {
        if let Err(rejection) = &item.outcome
            && rejection.kind.is_bad_file()
        {
            let set = &sets[item.set];
            return Err(PreprocessError::BadImage {
                what: set.what(),
                set: set.name.clone(),
                path: item.path.clone(),
                reason: rejection.reason.clone(),
            });
        }
    }
    Ok(())
}

/// Every staged frame, in priority order (sets, then paths, then frames).
fn collect_images(items: &mut [Item]) -> Vec<Image> {
    let mut images = Vec::new();
    for (item_index, item) in items.iter_mut().enumerate() {
        let Ok(frames) = &mut item.outcome else {
            continue;
        };
        let hash = item.hash.clone().unwrap_or_default();
        for frame in frames.iter_mut() {
            let Ok(staged) = &frame.result else { continue };
            frame.image = Some(images.len());
            images.push(Image {
                item: item_index,
                set: item.set,
                frame: frame.index,
                name: output_name(&hash, frame.index),
                source_hash: hash.clone(),
                pixel_hash: staged.pixel_hash.clone(),
                perceptual_hash: frame.perceptual_hash.unwrap_or_default(),
                colour_thumbnail: staged.colour_thumbnail.clone(),
                staged: staged.path.clone(),
                fate: Ok(()),
                split: None,
                output: None,
            });
        }
    }
    images
}

/// Rejects an image whose output name is taken in its set by an image from
/// other bytes (two hashes sharing their first 16 hex digits).
fn reject_name_collisions(images: &mut [Image], items: &[Item]) {
    let mut owner: HashMap<(usize, String), usize> = HashMap::new();
    for i in 0..images.len() {
        let key = (images[i].set, images[i].name.clone());
        match owner.get(&key) {
            Some(&first) if images[first].source_hash != images[i].source_hash => {
                images[i].fate = Err(Rejection::new(
                    RejectionKind::NameCollision,
                    format!(
                        "its output name {} is taken by {}, a different file with content hash {}",
                        images[i].name,
                        items[images[first].item].path.display(),
                        images[first].source_hash
                    ),
                ));
            }
            Some(_) => {}
            None => {
                owner.insert(key, i);
            }
        }
    }
}

/// A group of duplicates: image indices with their relation, representative
/// first.
struct Group {
    members: Vec<(usize, DuplicateRelation)>,
}

/// Groups the surviving images: the same pixels join the group of the first
/// image with those pixels; otherwise an image joins the group of the first
/// representative it is a near duplicate of (perceptual hashes within
/// `max_distance` bits and colour thumbnails within `max_colour_difference`),
/// or starts a group. Comparing with representatives only (not with every member)
/// keeps groups from chaining into one huge group through many small steps.
fn group_duplicates(images: &[Image], config: &PreprocessConfig, cross_set: bool) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    let mut by_pixels: HashMap<(usize, &str), usize> = HashMap::new();
    let mut representatives: HashMap<usize, Vec<usize>> = HashMap::new();
    for (i, image) in images.iter().enumerate() {
        if image.fate.is_err() {
            continue;
        }
        let scope = if cross_set { 0 } else { image.set };
        if let Some(&g) = by_pixels.get(&(scope, image.pixel_hash.as_str())) {
            groups[g].members.push((i, DuplicateRelation::Exact));
            continue;
        }
        let reps = representatives.entry(scope).or_default();
        let near = config
            .duplicates
            .near
            .then(|| {
                reps.iter().find_map(|&g| {
                    let rep = &images[groups[g].members[0].0];
                    let distance = (rep.perceptual_hash ^ image.perceptual_hash).count_ones();
                    if distance > config.duplicates.max_distance {
                        return None;
                    }
                    let colour_difference = mean_abs_difference(&rep.colour_thumbnail, &image.colour_thumbnail);
                    (colour_difference <= config.duplicates.max_colour_difference).then_some((
                        g,
                        distance,
                        colour_difference,
                    ))
                })
            })
            .flatten();
        let g = match near {
            Some((g, distance, colour_difference)) => {
                groups[g].members.push((i, DuplicateRelation::Near { distance, colour_difference }));
                g
            }
            None => {
                groups.push(Group { members: vec![(i, DuplicateRelation::Representative)] });
                reps.push(groups.len() - 1);
                groups.len() - 1
            }
        };
        by_pixels.insert((scope, image.pixel_hash.as_str()), g);
    }
    groups
}

/// The duplicate rule of [`prepare_dataset`], in words for the report.
const RULE: &str = "classes win over concepts and concepts over random sets, then the set whose name sorts first";

/// Decides which members of each group are written (see [`prepare_dataset`]).
fn resolve_groups(images: &mut [Image], groups: &[Group], items: &[Item], sets: &[SetSpec], config: &PreprocessConfig) {
    let path_of = |images: &[Image], i: usize| items[images[i].item].path.display().to_string();
    for group in groups {
        let Some(&(rep, _)) = group.members.first() else {
            continue;
        };
        let classes: BTreeSet<usize> =
            group.members.iter().map(|&(i, _)| images[i].set).filter(|&s| sets[s].is_class()).collect();
        if classes.len() >= 2 {
            let names: Vec<String> = classes.iter().map(|&s| format!("`{}`", sets[s].name)).collect();
            let names = names.join(" and ");
            for &(i, _) in &group.members {
                images[i].fate = Err(if sets[images[i].set].is_class() {
                    Rejection::new(
                        RejectionKind::AmbiguousLabel,
                        format!(
                            "exact or near duplicates of it are in classes {names}, so its label is ambiguous; keep it \
                             in one class folder only, or list the wrong copies in the exclusion list"
                        ),
                    )
                } else {
                    Rejection::new(
                        RejectionKind::CrossSetDuplicate,
                        format!("a duplicate of images in classes {names}, which are left out as ambiguous"),
                    )
                });
            }
            continue;
        }
        let winner = images[rep].set;
        let mut kept_pixels: HashMap<String, usize> = HashMap::new();
        for (k, &(i, relation)) in group.members.iter().enumerate() {
            let distance = (images[i].perceptual_hash ^ images[rep].perceptual_hash).count_ones();
            let fate = if images[i].set != winner {
                let how = match relation {
                    DuplicateRelation::Exact => "exact duplicate (same pixels)".to_owned(),
                    _ => format!("near duplicate ({distance} bits apart)"),
                };
                let keeper = &sets[winner];
                Err(Rejection::new(
                    RejectionKind::CrossSetDuplicate,
                    format!(
                        "{how} of {} in {} `{}`, which keeps it ({RULE})",
                        path_of(images, rep),
                        keeper.what(),
                        keeper.name
                    ),
                ))
            } else if k == 0 {
                Ok(())
            } else if let Some(&twin) = kept_pixels.get(&images[i].pixel_hash) {
                Err(Rejection::new(
                    RejectionKind::ExactDuplicate,
                    format!("exact duplicate of {}: the same decoded pixels", describe(images, items, twin)),
                ))
            } else if config.duplicates.within_set == WithinSet::Drop {
                Err(Rejection::new(
                    RejectionKind::NearDuplicate,
                    format!(
                        "near duplicate ({distance} bits apart) of {}; duplicates.within_set = \"drop\" keeps only the first",
                        describe(images, items, rep)
                    ),
                ))
            } else {
                Ok(())
            };
            if fate.is_ok() {
                kept_pixels.entry(images[i].pixel_hash.clone()).or_insert(i);
            }
            images[i].fate = fate;
        }
    }
}

fn describe(images: &[Image], items: &[Item], i: usize) -> String {
    let path = items[images[i].item].path.display();
    match images[i].frame {
        Some(frame) => format!("{path} frame {frame}"),
        None => path.to_string(),
    }
}

fn check_every_set_has_images(items: &[Item], images: &[Image], sets: &[SetSpec]) -> Result<(), PreprocessError> {
    for (index, set) in sets.iter().enumerate() {
        if images.iter().any(|im| im.set == index && im.fate.is_ok()) {
            continue;
        }
        let mut rejected: Vec<&Rejection> = Vec::new();
        for item in items.iter().filter(|it| it.set == index) {
            match &item.outcome {
                Err(rejection) => rejected.push(rejection),
                Ok(frames) => {
                    for frame in frames {
                        match (&frame.result, frame.image) {
                            (Err(rejection), _) => rejected.push(rejection),
                            (Ok(_), Some(i)) => rejected.extend(images[i].fate.as_ref().err()),
                            (Ok(_), None) => {}
                        }
                    }
                }
            }
        }
        return Err(PreprocessError::AllRejected {
            what: set.what(),
            set: set.name.clone(),
            folder: set.folder.clone(),
            count: items.iter().filter(|it| it.set == index).count(),
            reasons: top_reasons(&rejected),
        });
    }
    Ok(())
}

/// Splits every accepted class image, unit by unit (see [`crate::split`]),
/// and records the splits in `lock`. Returns the locked images that had to
/// follow their group into another split.
fn assign_splits(
    images: &mut [Image],
    groups: &[Group],
    items: &[Item],
    sets: &[SetSpec],
    config: &PreprocessConfig,
    lock: &mut SplitLock,
) -> Vec<LockConflict> {
    // Units: union of duplicate groups and of the frames of one file.
    let mut parent: Vec<usize> = (0..images.len()).collect();
    fn find(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    fn union(parent: &mut [usize], a: usize, b: usize) {
        let (ra, rb) = (find(parent, a), find(parent, b));
        // The smaller index (higher priority) stays the root.
        if ra != rb {
            parent[ra.max(rb)] = ra.min(rb);
        }
    }
    let accepted = |images: &[Image], i: usize| images[i].fate.is_ok() && sets[images[i].set].is_class();
    for group in groups {
        let members: Vec<usize> = group.members.iter().map(|&(i, _)| i).filter(|&i| accepted(images, i)).collect();
        for pair in members.windows(2) {
            union(&mut parent, pair[0], pair[1]);
        }
    }
    let mut first_of_item: HashMap<usize, usize> = HashMap::new();
    for i in 0..images.len() {
        if accepted(images, i) {
            if let Some(&first) = first_of_item.get(&images[i].item) {
                union(&mut parent, first, i);
            } else {
                first_of_item.insert(images[i].item, i);
            }
        }
    }
    let mut units: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for i in 0..images.len() {
        if accepted(images, i) {
            let root = find(&mut parent, i);
            units.entry(root).or_default().push(i);
        }
    }

    let mut conflicts = Vec::new();
    for (set_index, set) in sets.iter().enumerate() {
        if !set.is_class() {
            continue;
        }
        let class_units: Vec<&Vec<usize>> =
            units.iter().filter(|(root, _)| images[**root].set == set_index).map(|(_, m)| m).collect();
        let mut placed: Vec<Placed> = class_units
            .iter()
            .map(|members| {
                let rep = &images[members[0]];
                let position = split_position(&config.salt, &set.name, &rep.source_hash);
                let locked = members.iter().find_map(|&i| lock.get(&set.name, &images[i].source_hash));
                Placed {
                    position,
                    source_hash: rep.source_hash.clone(),
                    split: locked.unwrap_or_else(|| natural_split(position, &config.split)),
                    locked: locked.is_some(),
                }
            })
            .collect();
        for k in fill_empty_splits(&mut placed, &config.split) {
            info!(
                file = %items[images[class_units[k][0]].item].path.display(),
                "class `{}`: moved to {} so that no split of the class is empty",
                set.name,
                placed[k].split
            );
        }
        for (members, unit) in class_units.iter().zip(&placed) {
            for &i in members.iter() {
                if let Some(was) = lock.get(&set.name, &images[i].source_hash)
                    && was != unit.split
                    && !conflicts.iter().any(|c: &LockConflict| c.source == items[images[i].item].path)
                {
                    warn!(
                        file = %items[images[i].item].path.display(),
                        "class `{}`: locked in {was}, moved to {} with its near duplicates so that they share a split",
                        set.name,
                        unit.split
                    );
                    conflicts.push(LockConflict {
                        class: set.name.clone(),
                        source: items[images[i].item].path.clone(),
                        locked: was,
                        now: unit.split,
                    });
                }
            }
            for &i in members.iter() {
                images[i].split = Some(unit.split);
                lock.set(&set.name, &images[i].source_hash, unit.split);
            }
        }
        for split in Split::ALL {
            if config.split.get(split) > 0.0 && !placed.iter().any(|p| p.split == split) {
                warn!(
                    "class `{}` has only {} groups of accepted images, so its {split} split is empty; add images to the class",
                    set.name,
                    placed.len()
                );
            }
        }
    }
    conflicts
}

/// Logs files in an input folder that are not taken as images, so that a
/// crawl that saved `.tiff` or extension-less files does not silently yield a
/// smaller set than expected. Hidden files (`.DS_Store`) are not mentioned.
fn note_ignored_files(set: &SetSpec) {
    let Ok(entries) = std::fs::read_dir(&set.folder) else {
        return;
    };
    let ignored: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && !tcav_core::layout::is_image_path(p))
        .filter(|p| !p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.')))
        .collect();
    if let Some(example) = ignored.iter().min() {
        info!(
            folder = %set.folder.display(),
            "{} `{}`: {} files without an image extension are not inputs (for example {})",
            set.what(),
            set.name,
            ignored.len(),
            example.display()
        );
    }
}

/// Fails when a folder this call writes into is one of the input folders:
/// writing there would modify the inputs, and removing stale outputs there
/// could delete them.
fn check_overlap(sets: &[SetSpec], extra_dirs: &[PathBuf]) -> Result<(), PreprocessError> {
    let inputs: Vec<(PathBuf, &SetSpec)> = sets
        .iter()
        .filter_map(|set| std::fs::canonicalize(&set.folder).ok().map(|canonical| (canonical, set)))
        .collect();
    let outputs = sets.iter().flat_map(SetSpec::managed_dirs).chain(extra_dirs.iter().cloned());
    for dir in outputs {
        // An output folder that does not exist yet cannot be an input.
        let Ok(canonical) = std::fs::canonicalize(&dir) else {
            continue;
        };
        if let Some((_, input)) = inputs.iter().find(|(c, _)| c == &canonical) {
            return Err(PreprocessError::OutputOverlapsInput {
                what: input.what(),
                set: input.name.clone(),
                output: dir,
                input: input.folder.clone(),
            });
        }
    }
    Ok(())
}

/// Removes output-named files in the folders this call manages that it did
/// not write: leftovers of a run with another salt, split or input set.
/// Other files are left alone but reported, since later stages will read them.
fn remove_stale_outputs(images: &[Image], sets: &[SetSpec]) -> Result<(), PreprocessError> {
    let expected: HashSet<&Path> = images.iter().filter_map(|im| im.output.as_deref()).collect();
    for set in sets {
        for dir in set.managed_dirs() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut paths: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
            paths.sort();
            for path in paths {
                if !path.is_file() || expected.contains(path.as_path()) {
                    continue;
                }
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                if is_output_name(name) {
                    std::fs::remove_file(&path).map_err(|e| CoreError::io("removing the stale output", &path, e))?;
                    info!(file = %path.display(), "removed an output of an earlier run that this run does not produce");
                } else if tcav_core::layout::is_image_path(&path) {
                    warn!(
                        file = %path.display(),
                        "this image was not written by preprocessing but will be read as part of {} `{}`; remove it from the output folder",
                        set.what(),
                        set.name
                    );
                }
            }
        }
    }
    Ok(())
}

fn top_reasons(rejected: &[&Rejection]) -> String {
    let mut by_kind: BTreeMap<RejectionKind, usize> = BTreeMap::new();
    for r in rejected {
        *by_kind.entry(r.kind).or_default() += 1;
    }
    let mut counts: Vec<(RejectionKind, usize)> = by_kind.into_iter().collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut text: Vec<String> = counts.iter().take(3).map(|(kind, n)| format!("{kind} × {n}")).collect();
    if let Some(first) = rejected.first() {
        text.push(format!("first: {}", first.reason));
    }
    text.join(", ")
}

fn report_groups(groups: &[Group], images: &[Image], items: &[Item], sets: &[SetSpec]) -> Vec<DuplicateGroup> {
    groups
        .iter()
        .filter(|g| g.members.len() >= 2)
        .map(|group| {
            let kept_in = group
                .members
                .iter()
                .find(|&&(i, _)| images[i].fate.is_ok())
                .map(|&(i, _)| sets[images[i].set].name.clone());
            DuplicateGroup {
                kept_in,
                members: group
                    .members
                    .iter()
                    .map(|&(i, relation)| DuplicateMember {
                        set: sets[images[i].set].name.clone(),
                        source: items[images[i].item].path.clone(),
                        frame: images[i].frame,
                        relation,
                        kept: images[i].fate.is_ok(),
                    })
                    .collect(),
            }
        })
        .collect()
}

#[allow(clippy::too_many_arguments, reason = "one call site; the parts are the report's parts")]
fn build_manifest(
    items: Vec<Item>,
    images: &[Image],
    sets: &[SetSpec],
    config: &PreprocessConfig,
    mode: &Mode<'_>,
    duplicate_groups: Vec<DuplicateGroup>,
    lock_conflicts: Vec<LockConflict>,
    unused_exclusions: Vec<String>,
) -> Manifest {
    let mut summaries: Vec<SetSummary> = sets
        .iter()
        .map(|set| SetSummary {
            set: set.name.clone(),
            role: set.role,
            folder: set.folder.clone(),
            inputs: 0,
            accepted: 0,
            rejected: 0,
            rejected_by_kind: BTreeMap::new(),
            splits: set.is_class().then(SplitCounts::default),
        })
        .collect();
    let mut rejected_by_kind: BTreeMap<RejectionKind, usize> = BTreeMap::new();
    let mut entries = Vec::with_capacity(items.len());
    for item in items {
        let summary = &mut summaries[item.set];
        summary.inputs += 1;
        let set = sets[item.set].name.clone();
        let mut outcomes = Vec::new();
        match item.outcome {
            Err(rejection) => outcomes.push((None, None, Err(rejection))),
            Ok(frames) => {
                for frame in frames {
                    let fate = match (frame.result, frame.image) {
                        (Err(rejection), _) => Err(rejection),
                        (Ok(_), Some(i)) => match (&images[i].fate, &images[i].output) {
                            (Ok(()), Some(output)) => Ok((output.clone(), images[i].split)),
                            (Err(rejection), _) => Err(rejection.clone()),
                            (Ok(()), None) => Err(Rejection::new(RejectionKind::Unreadable, "not written")),
                        },
                        (Ok(_), None) => Err(Rejection::new(RejectionKind::Unreadable, "not placed")),
                    };
                    outcomes.push((frame.index, frame.perceptual_hash, fate));
                }
            }
        }
        for (frame, perceptual_hash, fate) in outcomes {
            let outcome = match fate {
                Ok((output, split)) => {
                    summary.accepted += 1;
                    if let (Some(counts), Some(split)) = (summary.splits.as_mut(), split) {
                        counts.add(split);
                    }
                    Outcome::Accepted { output, split }
                }
                Err(rejection) => {
                    summary.rejected += 1;
                    *summary.rejected_by_kind.entry(rejection.kind).or_default() += 1;
                    *rejected_by_kind.entry(rejection.kind).or_default() += 1;
                    Outcome::Rejected { kind: rejection.kind, reason: rejection.reason }
                }
            };
            entries.push(ManifestEntry {
                set: set.clone(),
                source: item.path.clone(),
                frame,
                source_hash: item.hash.clone(),
                perceptual_hash: perceptual_hash.map(|h| format!("{h:016x}")),
                outcome,
            });
        }
    }
    Manifest {
        layout: mode.layout,
        config: config.clone(),
        perceptual_hash: PERCEPTUAL_HASH.to_owned(),
        sets: summaries,
        rejected_by_kind,
        duplicate_groups,
        lock_conflicts,
        unused_exclusions,
        entries,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CropMode, SplitFractions};
    use crate::fixtures::{encode, noise_rgb, write_noise_png};
    use image::{DynamicImage, ImageFormat, Rgb, Rgba, RgbaImage};
    use tcav_core::store::hash_file;

    fn small_config() -> PreprocessConfig {
        PreprocessConfig { size: 16, min_side: 8, ..PreprocessConfig::default() }
    }

    fn name(set: &str) -> SetName {
        SetName::new(set).unwrap()
    }

    /// Writes `count` distinct noise images to `dir`, starting at `seed`.
    fn noise_folder(dir: &Path, count: u64, seed: u64) {
        for i in 0..count {
            write_noise_png(dir, &format!("img{:03}.png", seed + i), 24, seed + i);
        }
    }

    /// Every file under `root`, as (relative path, bytes), sorted.
    fn tree(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
        fn walk(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(root, &path, out);
                } else {
                    out.push((path.strip_prefix(root).unwrap().to_path_buf(), std::fs::read(&path).unwrap()));
                }
            }
        }
        let mut out = Vec::new();
        walk(root, root, &mut out);
        out.sort();
        out
    }

    fn splits_by_source(manifest: &Manifest) -> BTreeMap<PathBuf, Split> {
        manifest
            .entries
            .iter()
            .filter_map(|e| match &e.outcome {
                Outcome::Accepted { split: Some(split), .. } => Some((e.source.clone(), *split)),
                _ => None,
            })
            .collect()
    }

    fn rejection(manifest: &Manifest, file: &str) -> (RejectionKind, String) {
        let entry = manifest.entries.iter().find(|e| e.source.ends_with(file)).unwrap();
        match &entry.outcome {
            Outcome::Rejected { kind, reason } => (*kind, reason.clone()),
            other => panic!("{file} should be rejected, got {other:?}"),
        }
    }

    #[test]
    fn training_layout_records_every_input() {
        let dir = tempfile::tempdir().unwrap();
        let fire = dir.path().join("raw/fire");
        let water = dir.path().join("raw/water");
        noise_folder(&fire, 8, 0);
        noise_folder(&water, 8, 100);
        // The bad and the unwanted, all in `fire`.
        std::fs::copy(fire.join("img000.png"), fire.join("zz_copy.png")).unwrap();
        std::fs::write(fire.join("garbage.png"), b"<html>404 not found</html>").unwrap();
        let png = encode(&DynamicImage::ImageRgb8(noise_rgb(24, 24, 7)), ImageFormat::Png);
        std::fs::write(fire.join("cut.png"), &png[..png.len() - 30]).unwrap();
        let jpeg = encode(&DynamicImage::ImageRgb8(noise_rgb(24, 24, 8)), ImageFormat::Jpeg);
        std::fs::write(fire.join("cut.jpg"), &jpeg[..jpeg.len() / 2]).unwrap();
        let blank =
            encode(&DynamicImage::ImageRgb8(image::RgbImage::from_pixel(24, 24, Rgb([90, 90, 90]))), ImageFormat::Png);
        std::fs::write(fire.join("blank.png"), blank).unwrap();
        let tiny = encode(&DynamicImage::ImageRgb8(noise_rgb(30, 5, 9)), ImageFormat::Png);
        std::fs::write(fire.join("tiny.png"), tiny).unwrap();
        let rgba = RgbaImage::from_fn(24, 24, |x, _| if x < 12 { Rgba([0, 0, 0, 0]) } else { Rgba([0, 0, 200, 255]) });
        std::fs::write(fire.join("alpha.png"), encode(&DynamicImage::ImageRgba8(rgba), ImageFormat::Png)).unwrap();
        std::fs::write(fire.join("notes.txt"), b"crawl log").unwrap();

        let out = TrainLayout::new(dir.path().join("out"));
        let classes = [(name("fire"), fire.clone()), (name("water"), water.clone())];
        let manifest = prepare_training(&classes, &small_config(), &out).unwrap();

        assert_eq!(manifest.layout, LayoutKind::Training);
        let fire_summary = manifest.summary(&name("fire")).unwrap();
        // 8 noise + copy + garbage + 2 cut + blank + tiny + alpha; notes.txt is not an input.
        assert_eq!(fire_summary.inputs, 15);
        assert_eq!(fire_summary.accepted, 9);
        assert_eq!(fire_summary.rejected, 6);
        assert_eq!(manifest.entries.len(), 15 + 8);
        let counts = fire_summary.splits.unwrap();
        assert_eq!(counts.train + counts.validation + counts.test, 9);

        assert_eq!(rejection(&manifest, "garbage.png").0, RejectionKind::NotAnImage);
        assert_eq!(rejection(&manifest, "cut.png").0, RejectionKind::Truncated);
        assert_eq!(rejection(&manifest, "cut.jpg").0, RejectionKind::Truncated);
        assert_eq!(rejection(&manifest, "tiny.png").0, RejectionKind::TooSmall);
        let (kind, reason) = rejection(&manifest, "blank.png");
        assert_eq!(kind, RejectionKind::NearUniform);
        assert!(reason.contains("near-uniform"), "{reason}");
        let (kind, reason) = rejection(&manifest, "zz_copy.png");
        assert_eq!(kind, RejectionKind::ExactDuplicate);
        assert!(reason.contains("exact duplicate of") && reason.contains("img000.png"), "{reason}");
        assert_eq!(fire_summary.rejected_by_kind[&RejectionKind::Truncated], 2);

        // Every accepted entry points at a 16 × 16 RGB PNG named after its
        // source hash, in its split's class folder; nothing else was written.
        let mut written = 0;
        for entry in &manifest.entries {
            if let Outcome::Accepted { output, split } = &entry.outcome {
                let hash = entry.source_hash.as_ref().unwrap();
                assert_eq!(hash, &hash_file(&entry.source).unwrap());
                assert_eq!(output, &out.class_dir(split.unwrap(), &entry.set).join(format!("{}.png", &hash[..16])));
                let image = image::open(output).unwrap();
                assert_eq!(image.color(), image::ColorType::Rgb8);
                assert_eq!((image.width(), image.height()), (16, 16));
                written += 1;
            }
        }
        assert_eq!(written, 17);
        assert_eq!(tree(out.root()).len(), 17);
        // The transparent half of alpha.png became the white background.
        let alpha = manifest.entries.iter().find(|e| e.source.ends_with("alpha.png")).unwrap();
        let Outcome::Accepted { output, .. } = &alpha.outcome else { panic!("alpha.png should be accepted") };
        let image = image::open(output).unwrap().into_rgb8();
        assert_eq!(image.get_pixel(1, 8), &Rgb([255, 255, 255]));
        assert_eq!(image.get_pixel(14, 8), &Rgb([0, 0, 200]));

        // Entries come set by set, sorted by path within a set.
        let sources: Vec<&PathBuf> = manifest.entries.iter().map(|e| &e.source).collect();
        let mut sorted = sources.clone();
        sorted.sort_by_key(|p| (!p.starts_with(&fire), p.to_path_buf()));
        assert_eq!(sources, sorted);

        // The inputs are untouched.
        assert_eq!(std::fs::read_dir(&fire).unwrap().count(), 16);

        // The manifest survives a round trip through its file.
        let path = dir.path().join("manifest.json");
        manifest.write(&path).unwrap();
        assert_eq!(Manifest::read(&path).unwrap(), manifest);
    }

    #[test]
    fn bad_images_fail_the_call_only_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let fire = dir.path().join("fire");
        noise_folder(&fire, 3, 0);
        std::fs::write(fire.join("broken.png"), b"\x00\x01garbage bytes").unwrap();
        let classes = [(name("fire"), fire.clone())];
        let out = TrainLayout::new(dir.path().join("out"));

        let manifest = prepare_training(&classes, &small_config(), &out).unwrap();
        let (kind, reason) = rejection(&manifest, "broken.png");
        assert_eq!(kind, RejectionKind::NotAnImage);
        assert!(reason.contains("not an image"), "{reason}");

        let config = PreprocessConfig { on_bad_image: BadImagePolicy::Fail, ..small_config() };
        let err = prepare_training(&classes, &config, &out).unwrap_err().to_string();
        assert!(err.contains("broken.png") && err.contains("`fire`"), "{err}");
        assert!(err.contains("remove the file") && err.contains("on_bad_image = \"skip\""), "{err}");

        // Quality filters are not "bad files": they never fail the call.
        let blank =
            encode(&DynamicImage::ImageRgb8(image::RgbImage::from_pixel(24, 24, Rgb([0, 0, 0]))), ImageFormat::Png);
        std::fs::remove_file(fire.join("broken.png")).unwrap();
        std::fs::write(fire.join("blank.png"), blank).unwrap();
        prepare_training(&classes, &config, &out).unwrap();
    }

    #[test]
    fn splits_are_deterministic_and_stable_when_images_are_added() {
        let dir = tempfile::tempdir().unwrap();
        let fire = dir.path().join("fire");
        noise_folder(&fire, 30, 0);
        let classes = [(name("fire"), fire.clone())];
        let config = small_config();

        let first = prepare_training(&classes, &config, &TrainLayout::new(dir.path().join("a"))).unwrap();
        let again = prepare_training(&classes, &config, &TrainLayout::new(dir.path().join("a"))).unwrap();
        assert_eq!(first, again);
        let before = splits_by_source(&first);
        assert_eq!(before.len(), 30);
        assert!(
            Split::ALL.iter().all(|s| before.values().any(|v| v == s)),
            "30 images should fill every split: {before:?}"
        );

        noise_folder(&fire, 20, 1000);
        let grown = prepare_training(&classes, &config, &TrainLayout::new(dir.path().join("b"))).unwrap();
        let after = splits_by_source(&grown);
        assert_eq!(after.len(), 50);
        for (source, split) in &before {
            assert_eq!(after[source], *split, "{} moved when images were added", source.display());
        }

        // Another salt draws another split.
        let salted = PreprocessConfig { salt: "other".into(), ..config };
        let resalted = prepare_training(&classes, &salted, &TrainLayout::new(dir.path().join("c"))).unwrap();
        assert_ne!(splits_by_source(&resalted), after);
    }

    #[test]
    fn every_split_of_a_small_class_gets_an_image() {
        let dir = tempfile::tempdir().unwrap();
        let fire = dir.path().join("fire");
        let water = dir.path().join("water");
        noise_folder(&fire, 3, 0);
        noise_folder(&water, 2, 10);
        let config =
            PreprocessConfig { split: SplitFractions { train: 0.98, validation: 0.01, test: 0.01 }, ..small_config() };
        let out = TrainLayout::new(dir.path().join("out"));
        let classes = [(name("fire"), fire), (name("water"), water)];
        let manifest = prepare_training(&classes, &config, &out).unwrap();
        let counts = manifest.summary(&name("fire")).unwrap().splits.unwrap();
        assert_eq!(counts, SplitCounts { train: 1, validation: 1, test: 1 });
        for split in Split::ALL {
            assert_eq!(out.images(split, &name("fire")).unwrap().len(), 1, "{split}");
        }
        // Two images cannot fill three splits; that is a warning, not an error.
        assert_eq!(manifest.summary(&name("water")).unwrap().accepted, 2);
    }

    #[test]
    fn output_is_identical_across_thread_counts() {
        let dir = tempfile::tempdir().unwrap();
        let fire = dir.path().join("fire");
        let water = dir.path().join("water");
        noise_folder(&fire, 12, 0);
        noise_folder(&water, 12, 50);
        std::fs::copy(fire.join("img003.png"), fire.join("copy.png")).unwrap();
        std::fs::write(water.join("bad.jpg"), b"nope").unwrap();
        let classes = [(name("fire"), fire), (name("water"), water)];
        let config = PreprocessConfig { crop: CropMode::PadSquare { colour: [1, 2, 3] }, ..small_config() };
        let run_with = |threads: usize, root: &str| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let out = TrainLayout::new(dir.path().join(root));
            let mut manifest = pool.install(|| prepare_training(&classes, &config, &out)).unwrap();
            for entry in &mut manifest.entries {
                if let Outcome::Accepted { output, .. } = &mut entry.outcome {
                    *output = output.strip_prefix(out.root()).unwrap().to_path_buf();
                }
            }
            (manifest, tree(out.root()))
        };
        let (one, one_tree) = run_with(1, "one");
        let (two, two_tree) = run_with(2, "two");
        assert_eq!(one, two);
        assert_eq!(one_tree, two_tree);
        assert_eq!(one_tree.len(), 24);
    }

    #[test]
    fn missing_and_empty_folders_name_the_folder_and_the_set() {
        let dir = tempfile::tempdir().unwrap();
        let out = TrainLayout::new(dir.path().join("out"));
        let missing = dir.path().join("no_such_folder");
        let err = prepare_training(&[(name("fire"), missing)], &small_config(), &out).unwrap_err().to_string();
        assert!(
            err.contains("no_such_folder") && err.contains("class `fire`") && err.contains("does not exist"),
            "{err}"
        );

        let empty = dir.path().join("empty_folder");
        std::fs::create_dir(&empty).unwrap();
        std::fs::write(empty.join("readme.txt"), b"x").unwrap();
        let tcav = TcavLayout::new(dir.path().join("tcav"));
        let err = prepare_sets(&[(name("striped"), empty)], &small_config(), &tcav).unwrap_err().to_string();
        assert!(
            err.contains("empty_folder") && err.contains("set `striped`") && err.contains("holds no images"),
            "{err}"
        );
    }

    #[test]
    fn a_set_with_every_image_rejected_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let striped = dir.path().join("striped");
        std::fs::create_dir(&striped).unwrap();
        for (i, grey) in [10u8, 20, 30].iter().enumerate() {
            let blank = image::RgbImage::from_pixel(24, 24, Rgb([*grey; 3]));
            std::fs::write(striped.join(format!("{i}.png")), encode(&DynamicImage::ImageRgb8(blank), ImageFormat::Png))
                .unwrap();
        }
        std::fs::write(striped.join("x.jpg"), b"junk").unwrap();
        let tcav = TcavLayout::new(dir.path().join("tcav"));
        let err = prepare_sets(&[(name("striped"), striped)], &small_config(), &tcav).unwrap_err().to_string();
        assert!(err.contains("all 4 images of set `striped`"), "{err}");
        assert!(err.contains("near-uniform × 3") && err.contains("not an image × 1"), "{err}");
    }

    #[test]
    fn tcav_sets_have_no_splits_and_may_share_images() {
        let dir = tempfile::tempdir().unwrap();
        let striped = dir.path().join("striped");
        let random = dir.path().join("random500_0");
        noise_folder(&striped, 3, 0);
        noise_folder(&random, 3, 2);
        let tcav = TcavLayout::new(dir.path().join("tcav"));
        let sets = [(name("striped"), striped), (name("random500_0"), random)];
        let manifest = prepare_sets(&sets, &small_config(), &tcav).unwrap();
        assert_eq!(manifest.layout, LayoutKind::Tcav);
        for set in ["striped", "random500_0"] {
            let summary = manifest.summary(&name(set)).unwrap();
            assert_eq!((summary.accepted, summary.splits), (3, None));
            assert_eq!(tcav.images(&name(set)).unwrap().len(), 3);
        }
        assert!(manifest.entries.iter().all(|e| matches!(e.outcome, Outcome::Accepted { split: None, .. })));
        // img002.png is in both sets and kept in both.
        let shared: Vec<_> = manifest.entries.iter().filter(|e| e.source.ends_with("img002.png")).collect();
        assert_eq!(shared.len(), 2);
    }

    #[test]
    fn an_image_in_two_classes_is_left_out_of_both() {
        let dir = tempfile::tempdir().unwrap();
        let fire = dir.path().join("fire");
        let water = dir.path().join("water");
        noise_folder(&fire, 4, 0);
        noise_folder(&water, 4, 3);
        let out = TrainLayout::new(dir.path().join("out"));
        let classes = [(name("fire"), fire.clone()), (name("water"), water.clone())];
        let manifest = prepare_training(&classes, &small_config(), &out).unwrap();
        for entry in manifest.entries.iter().filter(|e| e.source.ends_with("img003.png")) {
            let Outcome::Rejected { kind, reason } = &entry.outcome else { panic!("{entry:?} should be rejected") };
            assert_eq!(*kind, RejectionKind::AmbiguousLabel);
            assert!(reason.contains("`fire` and `water`"), "{reason}");
        }
        assert_eq!(manifest.summary(&name("fire")).unwrap().accepted, 3);
        assert_eq!(manifest.summary(&name("water")).unwrap().accepted, 3);
    }

    #[test]
    fn reruns_remove_stale_outputs_but_not_foreign_files() {
        let dir = tempfile::tempdir().unwrap();
        let fire = dir.path().join("fire");
        noise_folder(&fire, 20, 0);
        let out = TrainLayout::new(dir.path().join("out"));
        let classes = [(name("fire"), fire.clone())];
        prepare_training(&classes, &small_config(), &out).unwrap();
        let foreign = out.class_dir(Split::Train, &name("fire")).join("mine.png");
        std::fs::write(&foreign, b"user file").unwrap();
        std::fs::remove_file(fire.join("img000.png")).unwrap();

        let resalted = PreprocessConfig { salt: "new".into(), ..small_config() };
        let manifest = prepare_training(&classes, &resalted, &out).unwrap();
        let files: Vec<PathBuf> = tree(out.root()).into_iter().map(|(path, _)| path).collect();
        assert_eq!(files.len(), 19 + 1);
        assert!(foreign.exists());
        // No image is in two splits, and the removed input's output is gone.
        let names: HashSet<_> = files.iter().map(|p| p.file_name().unwrap().to_owned()).collect();
        assert_eq!(names.len(), files.len());
        let expected: HashSet<&PathBuf> = manifest
            .entries
            .iter()
            .filter_map(|e| match &e.outcome {
                Outcome::Accepted { output, .. } => Some(output),
                Outcome::Rejected { .. } => None,
            })
            .collect();
        assert_eq!(expected.len(), 19);
        assert!(expected.iter().all(|p| p.exists()));
    }

    #[test]
    fn outputs_never_go_into_input_folders() {
        let dir = tempfile::tempdir().unwrap();
        let striped = dir.path().join("striped");
        noise_folder(&striped, 3, 0);
        let tcav = TcavLayout::new(dir.path());
        let err = prepare_sets(&[(name("striped"), striped.clone())], &small_config(), &tcav).unwrap_err().to_string();
        assert!(err.contains("is the input folder") && err.contains("`striped`"), "{err}");
        assert_eq!(std::fs::read_dir(&striped).unwrap().count(), 3);
    }

    #[test]
    fn a_set_listed_twice_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        noise_folder(&a, 1, 0);
        let tcav = TcavLayout::new(dir.path().join("out"));
        let sets = [(name("striped"), a.clone()), (name("striped"), a)];
        let err = prepare_sets(&sets, &small_config(), &tcav).unwrap_err().to_string();
        assert!(err.contains("set `striped` is listed twice"), "{err}");
    }

    #[test]
    fn invalid_config_is_rejected_before_any_work() {
        let dir = tempfile::tempdir().unwrap();
        let config =
            PreprocessConfig { split: SplitFractions { train: 0.5, validation: 0.5, test: 0.5 }, ..small_config() };
        let err = prepare_sets(&[(name("x"), dir.path().join("missing"))], &config, &TcavLayout::new(dir.path()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`split`"), "{err}");
    }

    #[test]
    fn output_names_are_recognised() {
        assert!(is_output_name("0123456789abcdef.png"));
        assert!(!is_output_name("0123456789ABCDEF.png"));
        assert!(!is_output_name("0123456789abcdeg.png"));
        assert!(!is_output_name("mine.png"));
        assert!(is_output_name("0123456789abcdef_f0012.png"));
        assert!(!is_output_name("0123456789abcdef_f12.png"));
        assert_eq!(output_name(&"ab".repeat(32), None), format!("{}.png", "ab".repeat(8)));
        assert_eq!(output_name(&"ab".repeat(32), Some(3)), format!("{}_f0003.png", "ab".repeat(8)));
    }
}
