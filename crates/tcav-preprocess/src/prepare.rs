//! The two entry points and the stages they share.
//!
//! A call runs in phases, so that its result does not depend on how rayon
//! schedules the work:
//! 1. list every input folder (sorted) and hash every file, in parallel;
//! 2. decide duplicates sequentially, in input order;
//! 3. decode, square, check and write every surviving file, in parallel,
//!    each into its own output path;
//! 4. sequentially: apply the bad-image policy, fix empty splits, remove
//!    outputs of earlier runs that this run no longer produces, and build the
//!    manifest in input order.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use image::codecs::png::PngEncoder;
use image::{ExtendedColorType, ImageEncoder, RgbImage};
use rayon::prelude::*;
use tcav_core::store::{hash_file, write_atomic};
use tcav_core::{CoreError, ImageSetDir, SetName, Split, TcavLayout, TrainLayout};
use tracing::{info, warn};

use crate::config::{BadImagePolicy, NEAR_UNIFORM_LUMA_STD, PreprocessConfig};
use crate::decode::{Rejection, decode_rgb};
use crate::error::PreprocessError;
use crate::geometry::square;
use crate::manifest::{LayoutKind, Manifest, ManifestEntry, Outcome, RejectionKind, SetSummary, SplitCounts};
use crate::split::{Placed, fill_empty_splits, natural_split, split_position};

/// Preprocesses one folder of raw images per class into the training layout
/// `<out>/<split>/<class>/<hash>.png`.
///
/// Each image's split follows from the salt, its class and its content hash
/// (see [`crate::split`]). Byte-identical files within a class are written
/// once; files whose bytes appear in more than one class are left out of all
/// of them, because an image with two labels would teach the classifier a
/// contradiction. Output files of earlier runs into the same class folders
/// that this run does not produce are removed, so that a changed salt or
/// split never leaves an image in two splits.
///
/// # Errors
///
/// A missing or empty input folder (the error names the folder and the
/// class), a class listed twice, an output folder that is an input folder,
/// an invalid config, a class whose every image was rejected (with the most
/// common reasons), an I/O error on an output path, and, under
/// `on_bad_image = "fail"`, the first broken file in input order. Errors found
/// after decoding (a broken file, an all-rejected class) may leave this
/// call's images in the output folder; the orchestrator builds into a fresh
/// artifact folder, so such a partial output is never trusted.
pub fn prepare_training(
    classes: &[(SetName, PathBuf)],
    config: &PreprocessConfig,
    out: &TrainLayout,
) -> Result<Manifest, PreprocessError> {
    run(classes, config, Target::Training(out))
}

/// Preprocesses one folder of raw images per concept or random set into the
/// TCAV layout `<out>/<set>/<hash>.png`.
///
/// Byte-identical files within a set are written once. The same image may
/// appear in several sets (random sets are often drawn from one pool).
/// Output files of earlier runs into the same set folders that this run does
/// not produce are removed.
///
/// # Errors
///
/// A missing or empty input folder (the error names the folder and the
/// set), a set listed twice, an output folder that is an input folder,
/// an invalid config, a set whose every image was rejected (with the most
/// common reasons), an I/O error on an output path, and, under
/// `on_bad_image = "fail"`, the first broken file in input order. Errors found
/// after decoding (a broken file, an all-rejected set) may leave this
/// call's images in the output folder; the orchestrator builds into a fresh
/// artifact folder, so such a partial output is never trusted.
pub fn prepare_sets(
    sets: &[(SetName, PathBuf)],
    config: &PreprocessConfig,
    out: &TcavLayout,
) -> Result<Manifest, PreprocessError> {
    run(sets, config, Target::Tcav(out))
}

#[derive(Clone, Copy)]
enum Target<'a> {
    Training(&'a TrainLayout),
    Tcav(&'a TcavLayout),
}

impl Target<'_> {
    fn what(self) -> &'static str {
        match self {
            Target::Training(_) => "class",
            Target::Tcav(_) => "set",
        }
    }

    fn dir(self, set: &SetName, split: Option<Split>) -> PathBuf {
        match self {
            Target::Training(layout) => layout.class_dir(split.unwrap_or(Split::Train), set),
            Target::Tcav(layout) => layout.set_dir(set),
        }
    }

    /// Every folder this call writes into for `set`.
    fn managed_dirs(self, set: &SetName) -> Vec<PathBuf> {
        match self {
            Target::Training(layout) => Split::ALL.iter().map(|&split| layout.class_dir(split, set)).collect(),
            Target::Tcav(layout) => vec![layout.set_dir(set)],
        }
    }

    fn root(self) -> PathBuf {
        match self {
            Target::Training(layout) => layout.root().to_path_buf(),
            Target::Tcav(layout) => layout.root().to_path_buf(),
        }
    }
}

/// One input file and what is known about it so far.
struct Item {
    set: usize,
    path: PathBuf,
    hash: Option<String>,
    /// Where the image goes if accepted: the output name and, for training,
    /// the split position and the split before the small-class fix.
    name: String,
    position: f64,
    split: Option<Split>,
    verdict: Result<PathBuf, Rejection>,
}

/// The name of every output file: 16 hex digits of the source's content hash.
fn output_name(hash: &str) -> String {
    format!("{}.png", hash.get(..16).unwrap_or(hash))
}

fn is_output_name(name: &str) -> bool {
    name.len() == 20
        && name.ends_with(".png")
        && name.bytes().take(16).all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn run(sets: &[(SetName, PathBuf)], config: &PreprocessConfig, target: Target<'_>) -> Result<Manifest, PreprocessError> {
    config.validate()?;
    let what = target.what();

    // Phase 1: list and hash.
    let mut first_folder: HashMap<&SetName, &PathBuf> = HashMap::new();
    for (set, folder) in sets {
        if let Some(first) = first_folder.insert(set, folder) {
            return Err(PreprocessError::DuplicateSet {
                what,
                set: set.clone(),
                first: first.clone(),
                second: folder.clone(),
            });
        }
    }
    let mut items = Vec::new();
    for (index, (set, folder)) in sets.iter().enumerate() {
        let files = ImageSetDir::new(folder, format!("{what} `{set}`")).list()?;
        note_ignored_files(folder, set, what);
        items.extend(files.into_iter().map(|path| Item {
            set: index,
            path,
            hash: None,
            name: String::new(),
            position: 0.0,
            split: None,
            verdict: Err(Rejection::new(RejectionKind::Unreadable, "not processed")),
        }));
    }
    check_overlap(sets, target)?;
    info!(files = items.len(), sets = sets.len(), root = %target.root().display(), "preprocessing {what} images");

    let hashes: Vec<Result<String, Rejection>> = items
        .par_iter()
        .map(|item| {
            hash_file(&item.path).map_err(|e| {
                let cause = match e {
                    CoreError::Io { source, .. } => source.to_string(),
                    other => other.to_string(),
                };
                Rejection::new(RejectionKind::Unreadable, format!("cannot read the file: {cause}"))
            })
        })
        .collect();

    // Phase 2: duplicates, decided in input order so the first path wins.
    let mut first_of: HashMap<(usize, String), PathBuf> = HashMap::new();
    let mut name_owner: HashMap<(usize, String), String> = HashMap::new();
    let mut survivors = Vec::new();
    for (i, (item, hash)) in items.iter_mut().zip(hashes).enumerate() {
        let hash = match hash {
            Ok(hash) => hash,
            Err(rejection) => {
                item.verdict = Err(rejection);
                continue;
            }
        };
        item.name = output_name(&hash);
        item.hash = Some(hash.clone());
        if let Some(first) = first_of.get(&(item.set, hash.clone())) {
            item.verdict =
                Err(Rejection::new(RejectionKind::ExactDuplicate, format!("exact duplicate of {}", first.display())));
            continue;
        }
        first_of.insert((item.set, hash.clone()), item.path.clone());
        match name_owner.get(&(item.set, item.name.clone())) {
            Some(owner) if owner != &hash => {
                item.verdict = Err(Rejection::new(
                    RejectionKind::NameCollision,
                    format!("its output name {} is taken by a different image with content hash {owner}", item.name),
                ));
                continue;
            }
            _ => {
                name_owner.insert((item.set, item.name.clone()), hash.clone());
            }
        }
        survivors.push(i);
    }
    if let Target::Training(_) = target {
        reject_ambiguous_labels(&mut items, &mut survivors, sets);
        for &i in &survivors {
            let item = &mut items[i];
            let hash = item.hash.as_deref().unwrap_or_default();
            item.position = split_position(&config.salt, &sets[item.set].0, hash);
            item.split = Some(natural_split(item.position, &config.split));
        }
    }

    // Phase 3: decode, square, write.
    let results: Vec<Result<Result<PathBuf, Rejection>, PreprocessError>> = survivors
        .par_iter()
        .map(|&i| {
            let item = &items[i];
            let expected = item.hash.as_deref().unwrap_or_default();
            match process(&item.path, expected, config) {
                Ok(image) => {
                    let path = target.dir(&sets[item.set].0, item.split).join(&item.name);
                    write_png(&image, &path).map(|()| Ok(path))
                }
                Err(rejection) => Ok(Err(rejection)),
            }
        })
        .collect();
    for (&i, result) in survivors.iter().zip(results) {
        items[i].verdict = result?;
    }

    // Phase 4: policy, splits, clean-up, manifest.
    for item in &items {
        if let Err(rejection) = &item.verdict {
            let set = &sets[item.set].0;
            if config.on_bad_image == BadImagePolicy::Fail && rejection.kind.is_bad_file() {
                return Err(PreprocessError::BadImage {
                    what,
                    set: set.clone(),
                    path: item.path.clone(),
                    reason: rejection.reason.clone(),
                });
            }
        }
    }
    for item in &items {
        if let Err(rejection) = &item.verdict {
            warn!(file = %item.path.display(), "{what} `{}`: left out: {}", sets[item.set].0, rejection.reason);
        }
    }
    for (index, (set, folder)) in sets.iter().enumerate() {
        let rejected: Vec<&Rejection> =
            items.iter().filter(|it| it.set == index).filter_map(|it| it.verdict.as_ref().err()).collect();
        let count = items.iter().filter(|it| it.set == index).count();
        if rejected.len() == count {
            return Err(PreprocessError::AllRejected {
                what,
                set: set.clone(),
                folder: folder.clone(),
                count,
                reasons: top_reasons(&rejected),
            });
        }
    }
    if let Target::Training(_) = target {
        for (index, (class, _)) in sets.iter().enumerate() {
            settle_splits(&mut items, index, class, config, target)?;
        }
    }
    remove_stale_outputs(&items, sets, target)?;
    let manifest = build_manifest(items, sets, config, target);
    for summary in &manifest.sets {
        info!(
            accepted = summary.accepted,
            rejected = summary.rejected,
            "{what} `{}`: {} of {} images accepted",
            summary.set,
            summary.accepted,
            summary.inputs
        );
    }
    Ok(manifest)
}

/// Logs files in an input folder that are not taken as images, so that a
/// crawl that saved `.tiff` or extension-less files does not silently yield a
/// smaller set than expected. Hidden files (`.DS_Store`) are not mentioned.
fn note_ignored_files(folder: &Path, set: &SetName, what: &str) {
    let Ok(entries) = std::fs::read_dir(folder) else { return };
    let ignored: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && !tcav_core::layout::is_image_path(p))
        .filter(|p| !p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.')))
        .collect();
    if let Some(example) = ignored.iter().min() {
        info!(
            folder = %folder.display(),
            "{what} `{set}`: {} files without an image extension are not inputs (for example {})",
            ignored.len(),
            example.display()
        );
    }
}

/// Fails when an output folder of any set is one of the input folders:
/// writing there would modify the inputs, and removing stale outputs there
/// could delete them.
fn check_overlap(sets: &[(SetName, PathBuf)], target: Target<'_>) -> Result<(), PreprocessError> {
    let inputs: Vec<(PathBuf, &PathBuf)> = sets
        .iter()
        .filter_map(|(_, folder)| std::fs::canonicalize(folder).ok().map(|canonical| (canonical, folder)))
        .collect();
    for (set, _) in sets {
        for dir in target.managed_dirs(set) {
            // An output folder that does not exist yet cannot be an input.
            let Ok(canonical) = std::fs::canonicalize(&dir) else { continue };
            if let Some((_, input)) = inputs.iter().find(|(c, _)| c == &canonical) {
                return Err(PreprocessError::OutputOverlapsInput {
                    what: target.what(),
                    set: set.clone(),
                    output: dir,
                    input: (*input).clone(),
                });
            }
        }
    }
    Ok(())
}

/// Rejects, in every class, the files whose bytes occur in several classes.
fn reject_ambiguous_labels(items: &mut [Item], survivors: &mut Vec<usize>, sets: &[(SetName, PathBuf)]) {
    let mut classes_of: HashMap<&str, Vec<usize>> = HashMap::new();
    for &i in survivors.iter() {
        if let Some(hash) = items[i].hash.as_deref() {
            classes_of.entry(hash).or_default().push(items[i].set);
        }
    }
    let ambiguous: HashMap<String, String> = classes_of
        .into_iter()
        .filter(|(_, classes)| classes.len() > 1)
        .map(|(hash, classes)| {
            let names: Vec<String> = classes.iter().map(|&c| format!("`{}`", sets[c].0)).collect();
            (hash.to_owned(), names.join(" and "))
        })
        .collect();
    survivors.retain(|&i| {
        let Some(classes) = items[i].hash.as_ref().and_then(|h| ambiguous.get(h)) else { return true };
        items[i].verdict = Err(Rejection::new(
            RejectionKind::AmbiguousLabel,
            format!("the same bytes are in classes {classes}, so its label is ambiguous; keep it in one class folder only"),
        ));
        false
    });
}

/// Reads, checks, decodes and squares one file.
fn process(path: &Path, expected_hash: &str, config: &PreprocessConfig) -> Result<RgbImage, Rejection> {
    let bytes = std::fs::read(path)
        .map_err(|e| Rejection::new(RejectionKind::Unreadable, format!("cannot read the file: {e}")))?;
    // The manifest records the hash taken in phase 1; make sure it describes
    // the bytes actually decoded.
    if blake3::hash(&bytes).to_hex().as_str() != expected_hash {
        return Err(Rejection::new(
            RejectionKind::ChangedDuringRun,
            "the file changed while it was being preprocessed; rerun once the folder is no longer being written",
        ));
    }
    let rgb = decode_rgb(&bytes, config.min_side, config.background)?;
    drop(bytes);
    let squared = square(&rgb, config.size, config.crop, config.filter);
    if squared.content_luma_std < NEAR_UNIFORM_LUMA_STD {
        return Err(Rejection::new(
            RejectionKind::NearUniform,
            format!(
                "near-uniform: the luma standard deviation {:.2} is below {NEAR_UNIFORM_LUMA_STD}",
                squared.content_luma_std
            ),
        ));
    }
    Ok(squared.image)
}

/// Encodes `image` as PNG and writes it atomically, unless the file already
/// holds exactly these bytes (a rerun then costs no writes).
fn write_png(image: &RgbImage, path: &Path) -> Result<(), PreprocessError> {
    let mut bytes = Vec::new();
    PngEncoder::new(&mut bytes)
        .write_image(image.as_raw(), image.width(), image.height(), ExtendedColorType::Rgb8)
        .map_err(|source| PreprocessError::Encode { path: path.to_path_buf(), source })?;
    if std::fs::read(path).is_ok_and(|existing| existing == bytes) {
        return Ok(());
    }
    write_atomic(path, &bytes)?;
    Ok(())
}

/// Applies the small-class fix to one class and moves the affected files.
fn settle_splits(
    items: &mut [Item],
    index: usize,
    class: &SetName,
    config: &PreprocessConfig,
    target: Target<'_>,
) -> Result<(), PreprocessError> {
    let accepted: Vec<usize> =
        (0..items.len()).filter(|&i| items[i].set == index && items[i].verdict.is_ok()).collect();
    let mut placed: Vec<Placed> = accepted
        .iter()
        .map(|&i| Placed {
            position: items[i].position,
            source_hash: items[i].hash.clone().unwrap_or_default(),
            split: items[i].split.unwrap_or(Split::Train),
        })
        .collect();
    for k in fill_empty_splits(&mut placed, &config.split) {
        let item = &mut items[accepted[k]];
        let Ok(from) = item.verdict.clone() else { continue };
        let dir = target.dir(class, Some(placed[k].split));
        let to = dir.join(&item.name);
        std::fs::create_dir_all(&dir).map_err(|e| CoreError::io("creating", &dir, e))?;
        std::fs::rename(&from, &to).map_err(|e| CoreError::io("renaming into", &to, e))?;
        info!(
            file = %item.path.display(),
            "class `{class}`: moved from {} to {} so that no split of the class is empty",
            item.split.map_or("?", Split::as_str),
            placed[k].split
        );
        item.split = Some(placed[k].split);
        item.verdict = Ok(to);
    }
    for split in Split::ALL {
        if config.split.get(split) > 0.0 && !placed.iter().any(|p| p.split == split) {
            warn!(
                "class `{class}` has only {} accepted images, so its {split} split is empty; add images to the class",
                placed.len()
            );
        }
    }
    Ok(())
}

/// Removes output-named files in the folders this call manages that it did
/// not write: leftovers of a run with another salt, split or input set.
/// Other files are left alone but reported, since later stages will read them.
fn remove_stale_outputs(items: &[Item], sets: &[(SetName, PathBuf)], target: Target<'_>) -> Result<(), PreprocessError> {
    let expected: HashSet<&Path> = items.iter().filter_map(|it| it.verdict.as_ref().ok()).map(PathBuf::as_path).collect();
    for (set, _) in sets {
        for dir in target.managed_dirs(set) {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
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
                        "this image was not written by preprocessing but will be read as part of {} `{set}`; remove it from the output folder",
                        target.what()
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

fn build_manifest(items: Vec<Item>, sets: &[(SetName, PathBuf)], config: &PreprocessConfig, target: Target<'_>) -> Manifest {
    let training = matches!(target, Target::Training(_));
    let mut summaries: Vec<SetSummary> = sets
        .iter()
        .map(|(set, folder)| SetSummary {
            set: set.clone(),
            folder: folder.clone(),
            inputs: 0,
            accepted: 0,
            rejected: 0,
            rejected_by_kind: BTreeMap::new(),
            splits: training.then(SplitCounts::default),
        })
        .collect();
    let mut entries = Vec::with_capacity(items.len());
    for item in items {
        let summary = &mut summaries[item.set];
        summary.inputs += 1;
        let outcome = match item.verdict {
            Ok(output) => {
                summary.accepted += 1;
                if let (Some(counts), Some(split)) = (summary.splits.as_mut(), item.split) {
                    counts.add(split);
                }
                Outcome::Accepted { output, split: if training { item.split } else { None } }
            }
            Err(rejection) => {
                summary.rejected += 1;
                *summary.rejected_by_kind.entry(rejection.kind).or_default() += 1;
                Outcome::Rejected { kind: rejection.kind, reason: rejection.reason }
            }
        };
        entries.push(ManifestEntry { set: sets[item.set].0.clone(), source: item.path, source_hash: item.hash, outcome });
    }
    Manifest {
        layout: if training { LayoutKind::Training } else { LayoutKind::Tcav },
        config: config.clone(),
        sets: summaries,
        entries,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CropMode, SplitFractions};
    use crate::fixtures::{encode, noise_rgb, write_noise_png};
    use image::{DynamicImage, ImageFormat, Rgb, Rgba, RgbaImage};

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
        let blank = encode(&DynamicImage::ImageRgb8(image::RgbImage::from_pixel(24, 24, Rgb([90, 90, 90]))), ImageFormat::Png);
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
        let blank = encode(&DynamicImage::ImageRgb8(image::RgbImage::from_pixel(24, 24, Rgb([0, 0, 0]))), ImageFormat::Png);
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
        assert!(Split::ALL.iter().all(|s| before.values().any(|v| v == s)), "30 images should fill every split: {before:?}");

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
        let config = PreprocessConfig {
            split: SplitFractions { train: 0.98, validation: 0.01, test: 0.01 },
            ..small_config()
        };
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
        assert!(err.contains("no_such_folder") && err.contains("class `fire`") && err.contains("does not exist"), "{err}");

        let empty = dir.path().join("empty_folder");
        std::fs::create_dir(&empty).unwrap();
        std::fs::write(empty.join("readme.txt"), b"x").unwrap();
        let tcav = TcavLayout::new(dir.path().join("tcav"));
        let err = prepare_sets(&[(name("striped"), empty)], &small_config(), &tcav).unwrap_err().to_string();
        assert!(err.contains("empty_folder") && err.contains("set `striped`") && err.contains("holds no images"), "{err}");
    }

    #[test]
    fn a_set_with_every_image_rejected_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let striped = dir.path().join("striped");
        std::fs::create_dir(&striped).unwrap();
        for (i, grey) in [10u8, 20, 30].iter().enumerate() {
            let blank = image::RgbImage::from_pixel(24, 24, Rgb([*grey; 3]));
            std::fs::write(striped.join(format!("{i}.png")), encode(&DynamicImage::ImageRgb8(blank), ImageFormat::Png)).unwrap();
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
        let config = PreprocessConfig { split: SplitFractions { train: 0.5, validation: 0.5, test: 0.5 }, ..small_config() };
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
        assert_eq!(output_name(&"ab".repeat(32)), format!("{}.png", "ab".repeat(8)));
    }
}
