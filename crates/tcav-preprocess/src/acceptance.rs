//! Acceptance tests of issue 6, through [`prepare_dataset`], on fixtures
//! generated here: one test per required case, plus the duplicate rules.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageBuffer, ImageFormat, Rgb, RgbImage, Rgba, RgbaImage, imageops};
use tcav_core::{SetName, Split};

use crate::config::{DuplicateConfig, GifFrames, PreprocessConfig, SplitFractions, WithinSet};
use crate::fixtures::{animated_gif, cmyk_jpeg, encode, noise_rgb, png_claiming, with_exif_orientation};
use crate::manifest::{DuplicateRelation, Manifest, ManifestEntry, Outcome, RejectionKind};
use crate::prepare::{CONTACT_SHEETS_DIR, DatasetInputs, LOCK_FILE, REPORT_JSON, REPORT_TEXT, prepare_dataset};

fn name(set: &str) -> SetName {
    SetName::new(set).unwrap()
}

fn config() -> PreprocessConfig {
    PreprocessConfig { size: 32, min_side: 8, ..PreprocessConfig::default() }
}

fn write(dir: &Path, file: &str, bytes: &[u8]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join(file);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// A smooth photo-like image: noise at 16 × 12, scaled up, so that rescaled
/// and re-encoded copies of it stay near duplicates.
fn photo(seed: u64) -> RgbImage {
    imageops::resize(&noise_rgb(16, 12, seed), 160, 120, imageops::FilterType::Triangle)
}

fn png(image: RgbImage) -> Vec<u8> {
    encode(&DynamicImage::ImageRgb8(image), ImageFormat::Png)
}

/// A near duplicate of `photo(seed)`: smaller, and JPEG instead of PNG.
fn near_copy(seed: u64) -> Vec<u8> {
    let small = imageops::resize(&photo(seed), 120, 90, imageops::FilterType::Lanczos3);
    encode(&DynamicImage::ImageRgb8(small), ImageFormat::Jpeg)
}

/// `count` distinct photos in `dir`, named `img<seed>.png`.
fn photos(dir: &Path, seeds: std::ops::Range<u64>) {
    for seed in seeds {
        write(dir, &format!("img{seed:04}.png"), &png(photo(seed)));
    }
}

fn inputs(root: &Path, classes: &[&str], concepts: &[&str], random: &[&str]) -> DatasetInputs {
    let sets = |group: &str, names: &[&str]| names.iter().map(|n| (name(n), root.join(group).join(n))).collect();
    DatasetInputs {
        classes: sets("classes", classes),
        concepts: sets("concepts", concepts),
        random_sets: sets("random", random),
    }
}

fn entry<'a>(manifest: &'a Manifest, file: &str) -> &'a ManifestEntry {
    manifest.entries.iter().find(|e| e.source.ends_with(file)).unwrap_or_else(|| panic!("no entry for {file}"))
}

fn rejection(manifest: &Manifest, file: &str) -> (RejectionKind, String) {
    match &entry(manifest, file).outcome {
        Outcome::Rejected { kind, reason } => (*kind, reason.clone()),
        other => panic!("{file} should be rejected, got {other:?}"),
    }
}

fn output(manifest: &Manifest, out: &Path, file: &str) -> RgbImage {
    match &entry(manifest, file).outcome {
        Outcome::Accepted { output, .. } => {
            let image = image::open(out.join(output)).unwrap();
            assert_eq!(image.color(), image::ColorType::Rgb8, "{file}: outputs are 8-bit RGB");
            image.into_rgb8()
        }
        other => panic!("{file} should be accepted, got {other:?}"),
    }
}

/// Every PNG under the two layouts, relative to `out`.
fn written(out: &Path) -> Vec<PathBuf> {
    fn walk(root: &Path, dir: &Path, found: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, found);
            } else {
                found.push(path.strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }
    let mut found = Vec::new();
    for layout in [crate::TRAIN_DIR, crate::TCAV_DIR] {
        walk(out, &out.join(layout), &mut found);
    }
    found.sort();
    found
}

fn splits(manifest: &Manifest) -> BTreeMap<PathBuf, Split> {
    manifest
        .entries
        .iter()
        .filter_map(|e| match &e.outcome {
            Outcome::Accepted { split: Some(split), .. } => Some((e.source.clone(), *split)),
            _ => None,
        })
        .collect()
}

#[test]
fn bad_files_never_crash_the_stage_and_each_is_one_line_in_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw");
    let fire = raw.join("classes/fire");
    photos(&fire, 0..6);
    photos(&raw.join("concepts/red"), 100..104);
    photos(&raw.join("random/random_0"), 200..204);
    let jpeg = encode(&DynamicImage::ImageRgb8(photo(7)), ImageFormat::Jpeg);
    write(&fire, "truncated.jpg", &jpeg[..jpeg.len() * 2 / 3]);
    let png_bytes = png(photo(8));
    write(&fire, "truncated.png", &png_bytes[..png_bytes.len() - 20]);
    let gif = animated_gif(&[RgbaImage::from_fn(40, 40, |x, y| Rgba([(x * 6) as u8, (y * 6) as u8, 0, 255]))]);
    write(&fire, "truncated.gif", &gif[..gif.len() - 1]);
    write(&fire, "claims_30000.png", &png_claiming(30_000, 30_000));
    write(&fire, "empty.png", b"");
    write(&fire, "html.jpg", b"<html><body>403 Forbidden</body></html>");
    write(&fire, "one_pixel.png", &png(RgbImage::from_pixel(1, 1, Rgb([200, 0, 0]))));
    let bad = ["truncated.jpg", "truncated.png", "truncated.gif", "claims_30000.png", "empty.png", "html.jpg"];

    let out = dir.path().join("out");
    let manifest = prepare_dataset(&inputs(&raw, &["fire"], &["red"], &["random_0"]), &config(), &out).unwrap();

    assert_eq!(rejection(&manifest, "truncated.jpg").0, RejectionKind::Truncated);
    assert_eq!(rejection(&manifest, "truncated.png").0, RejectionKind::Truncated);
    assert_eq!(rejection(&manifest, "truncated.gif").0, RejectionKind::Truncated);
    let (kind, reason) = rejection(&manifest, "claims_30000.png");
    assert_eq!(kind, RejectionKind::TooLarge);
    assert!(reason.contains("30000 x 30000"), "{reason}");
    assert_eq!(rejection(&manifest, "empty.png").0, RejectionKind::NotAnImage);
    assert_eq!(rejection(&manifest, "html.jpg").0, RejectionKind::NotAnImage);
    // The 1 × 1 image is a valid image, left out by the size check.
    let (kind, reason) = rejection(&manifest, "one_pixel.png");
    assert_eq!(kind, RejectionKind::TooSmall);
    assert!(reason.contains("1 x 1") && reason.contains("min_side = 8"), "{reason}");

    let fire_summary = manifest.summary(&name("fire")).unwrap();
    assert_eq!((fire_summary.inputs, fire_summary.accepted, fire_summary.rejected), (13, 6, 7));
    assert_eq!(manifest.rejected_by_kind[&RejectionKind::Truncated], 3);
    assert_eq!(written(&out).len(), 6 + 4 + 4);

    // One line per bad file in the text report, naming the file and why.
    let text = std::fs::read_to_string(out.join(REPORT_TEXT)).unwrap();
    assert!(text.contains("bad files (6):"), "{text}");
    for file in bad {
        let lines: Vec<&str> = text.lines().filter(|l| l.contains(file)).collect();
        assert_eq!(lines.len(), 1, "{file} should be on exactly one line:\n{text}");
        assert!(lines[0].contains("[fire]"), "{}", lines[0]);
    }
    assert_eq!(text.lines().filter(|l| l.contains("one_pixel.png")).count(), 1, "{text}");
    assert_eq!(Manifest::read(&out.join(REPORT_JSON)).unwrap(), manifest);
    // The inputs are untouched.
    assert_eq!(std::fs::read_dir(&fire).unwrap().count(), 13);
}

#[test]
fn an_exif_rotated_jpeg_is_written_upright() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw");
    // 96 × 48, red left half, blue right half, tagged "rotate 90° clockwise":
    // upright it is 48 × 96 with red on top, and the centre square keeps the
    // middle rows, red above blue.
    let wide = RgbImage::from_fn(96, 48, |x, _| if x < 48 { Rgb([255, 0, 0]) } else { Rgb([0, 0, 255]) });
    let plain = encode(&DynamicImage::ImageRgb8(wide), ImageFormat::Jpeg);
    write(&raw.join("classes/fire"), "rotated.jpg", &with_exif_orientation(&plain, 6));
    photos(&raw.join("classes/fire"), 0..3);
    photos(&raw.join("concepts/red"), 10..12);
    let out = dir.path().join("out");
    let manifest = prepare_dataset(&inputs(&raw, &["fire"], &["red"], &[]), &config(), &out).unwrap();
    let image = output(&manifest, &out, "rotated.jpg");
    let (top, bottom) = (image.get_pixel(16, 4), image.get_pixel(16, 28));
    assert!(top[0] > 200 && top[2] < 60, "top should be red: {top:?}");
    assert!(bottom[2] > 200 && bottom[0] < 60, "bottom should be blue: {bottom:?}");
}

#[test]
fn an_rgba_png_is_composited_onto_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw");
    let rgba = RgbaImage::from_fn(64, 64, |x, _| if x < 32 { Rgba([0, 0, 0, 0]) } else { Rgba([0, 180, 0, 255]) });
    write(&raw.join("concepts/green"), "alpha.png", &encode(&DynamicImage::ImageRgba8(rgba), ImageFormat::Png));
    photos(&raw.join("classes/fire"), 0..3);
    let out = dir.path().join("out");
    let config = PreprocessConfig { background: [10, 20, 30], ..config() };
    let manifest = prepare_dataset(&inputs(&raw, &["fire"], &["green"], &[]), &config, &out).unwrap();
    let image = output(&manifest, &out, "alpha.png");
    assert_eq!(image.get_pixel(2, 16), &Rgb([10, 20, 30]), "transparent pixels take the background");
    assert_eq!(image.get_pixel(29, 16), &Rgb([0, 180, 0]));
}

#[test]
fn a_cmyk_jpeg_is_written_as_rgb() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw");
    write(&raw.join("concepts/red"), "cmyk.jpg", &cmyk_jpeg(64, 64, [0, 255, 255, 0]));
    photos(&raw.join("classes/fire"), 0..3);
    let out = dir.path().join("out");
    let manifest = prepare_dataset(&inputs(&raw, &["fire"], &["red"], &[]), &config(), &out).unwrap();
    let image = output(&manifest, &out, "cmyk.jpg");
    let red = image.get_pixel(16, 4);
    assert!(red[0] > 220 && red[1] < 40 && red[2] < 40, "CMYK red written as {red:?}");
}

#[test]
fn a_16_bit_png_is_written_as_8_bit_rgb() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw");
    let deep = ImageBuffer::<Rgb<u16>, _>::from_fn(64, 64, |x, y| {
        Rgb([257 * (x as u16 * 4), 257 * (y as u16 * 4), 257 * 128])
    });
    write(&raw.join("classes/fire"), "deep.png", &encode(&DynamicImage::ImageRgb16(deep), ImageFormat::Png));
    photos(&raw.join("classes/fire"), 0..3);
    photos(&raw.join("concepts/red"), 10..12);
    let config = PreprocessConfig { size: 64, filter: crate::ResizeFilter::Nearest, ..config() };
    let out = dir.path().join("out");
    let manifest = prepare_dataset(&inputs(&raw, &["fire"], &["red"], &[]), &config, &out).unwrap();
    let image = output(&manifest, &out, "deep.png");
    assert_eq!(image.get_pixel(10, 20), &Rgb([40, 80, 128]));
}

#[test]
fn an_animated_gif_gives_its_first_frame_or_every_nth_frame() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw");
    let frames: Vec<RgbaImage> = (0..5)
        .map(|i| {
            let rgb = photo(500 + i);
            RgbaImage::from_fn(rgb.width(), rgb.height(), |x, y| {
                let p = rgb.get_pixel(x, y);
                Rgba([p[0], p[1], p[2], 255])
            })
        })
        .collect();
    write(&raw.join("classes/fire"), "anim.gif", &animated_gif(&frames));
    photos(&raw.join("classes/fire"), 0..6);
    photos(&raw.join("concepts/red"), 10..12);
    let sets = inputs(&raw, &["fire"], &["red"], &[]);

    let out = dir.path().join("first");
    let manifest = prepare_dataset(&sets, &config(), &out).unwrap();
    let gif_entries: Vec<&ManifestEntry> = manifest.entries.iter().filter(|e| e.source.ends_with("anim.gif")).collect();
    assert_eq!(gif_entries.len(), 1);
    assert_eq!(gif_entries[0].frame, None);

    let out = dir.path().join("every");
    let config = PreprocessConfig { gif_frames: GifFrames::Every(2), ..config() };
    let manifest = prepare_dataset(&sets, &config, &out).unwrap();
    let gif_entries: Vec<&ManifestEntry> = manifest.entries.iter().filter(|e| e.source.ends_with("anim.gif")).collect();
    assert_eq!(gif_entries.iter().map(|e| e.frame).collect::<Vec<_>>(), [Some(0), Some(2), Some(4)]);
    let hash = gif_entries[0].source_hash.as_deref().unwrap();
    let mut split_of_frames = Vec::new();
    for (entry, frame) in gif_entries.iter().zip([0, 2, 4]) {
        let Outcome::Accepted { output, split } = &entry.outcome else { panic!("{entry:?}") };
        assert_eq!(output.file_name().unwrap().to_str().unwrap(), format!("{}_f{frame:04}.png", &hash[..16]));
        assert!(out.join(output).is_file());
        split_of_frames.push(split.unwrap());
    }
    // The frames of one GIF are one unit: they never straddle splits.
    assert!(split_of_frames.windows(2).all(|w| w[0] == w[1]), "{split_of_frames:?}");
    assert_eq!(manifest.summary(&name("fire")).unwrap().accepted, 6 + 3);
    assert_eq!(output(&manifest, &out, "anim.gif").dimensions(), (32, 32));
}

#[test]
fn a_near_duplicate_across_a_class_and_a_concept_is_kept_in_the_class_only() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw");
    photos(&raw.join("classes/fire"), 0..5);
    photos(&raw.join("concepts/red"), 10..14);
    photos(&raw.join("random/random_0"), 20..24);
    // img0002.png of `fire`, smaller and as JPEG, in `red`; `red`'s
    // img0011.png, copied exactly, in a random set.
    write(&raw.join("concepts/red"), "copy_of_fire.jpg", &near_copy(2));
    std::fs::copy(raw.join("concepts/red/img0011.png"), raw.join("random/random_0/copy_of_red.png")).unwrap();
    let out = dir.path().join("out");
    let manifest = prepare_dataset(&inputs(&raw, &["fire"], &["red"], &["random_0"]), &config(), &out).unwrap();

    let (kind, reason) = rejection(&manifest, "copy_of_fire.jpg");
    assert_eq!(kind, RejectionKind::CrossSetDuplicate);
    assert!(
        reason.contains("near duplicate") && reason.contains("img0002.png") && reason.contains("class `fire`"),
        "{reason}"
    );
    let (kind, reason) = rejection(&manifest, "copy_of_red.png");
    assert_eq!(kind, RejectionKind::CrossSetDuplicate);
    assert!(reason.contains("exact duplicate") && reason.contains("concept `red`"), "{reason}");
    assert!(matches!(entry(&manifest, "img0002.png").outcome, Outcome::Accepted { .. }));

    assert_eq!(manifest.duplicate_groups.len(), 2);
    let group = manifest.duplicate_groups.iter().find(|g| g.kept_in == Some(name("fire"))).unwrap();
    assert_eq!(group.members.len(), 2);
    assert!(group.members[0].source.ends_with("img0002.png") && group.members[0].kept);
    assert_eq!(group.members[0].relation, DuplicateRelation::Representative);
    assert!(group.members[1].source.ends_with("copy_of_fire.jpg") && !group.members[1].kept);
    assert!(
        matches!(group.members[1].relation, DuplicateRelation::Near { distance, colour_difference } if distance <= 10 && colour_difference <= 6.0)
    );
    assert!(group.spans_sets());
    assert_eq!(manifest.summary(&name("red")).unwrap().accepted, 4);
    assert_eq!(manifest.summary(&name("random_0")).unwrap().accepted, 4);
    let text = std::fs::read_to_string(out.join(REPORT_TEXT)).unwrap();
    assert!(text.contains("duplicate groups: 2 (2 across sets)"), "{text}");
}

#[test]
fn a_group_spanning_two_classes_is_left_out_of_every_set() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw");
    photos(&raw.join("classes/fire"), 0..4);
    photos(&raw.join("classes/water"), 10..14);
    photos(&raw.join("concepts/red"), 20..23);
    write(&raw.join("classes/water"), "fire_again.jpg", &near_copy(1));
    std::fs::copy(raw.join("classes/fire/img0001.png"), raw.join("concepts/red/also.png")).unwrap();
    let out = dir.path().join("out");
    let manifest = prepare_dataset(&inputs(&raw, &["fire", "water"], &["red"], &[]), &config(), &out).unwrap();
    let (kind, reason) = rejection(&manifest, "img0001.png");
    assert_eq!(kind, RejectionKind::AmbiguousLabel);
    assert!(reason.contains("`fire` and `water`"), "{reason}");
    assert_eq!(rejection(&manifest, "fire_again.jpg").0, RejectionKind::AmbiguousLabel);
    assert_eq!(rejection(&manifest, "also.png").0, RejectionKind::CrossSetDuplicate);
    assert_eq!(manifest.duplicate_groups.len(), 1);
    assert_eq!(manifest.duplicate_groups[0].kept_in, None);
}

#[test]
fn near_duplicates_in_a_class_share_one_split_or_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw");
    let fire = raw.join("classes/fire");
    photos(&fire, 0..30);
    for seed in 0..8 {
        write(&fire, &format!("zz_copy{seed}.jpg"), &near_copy(seed));
    }
    photos(&raw.join("concepts/red"), 100..103);
    let sets = inputs(&raw, &["fire"], &["red"], &[]);
    let config = PreprocessConfig { split: SplitFractions { train: 0.4, validation: 0.3, test: 0.3 }, ..config() };
    let manifest = prepare_dataset(&sets, &config, &dir.path().join("keep")).unwrap();
    let by_source = splits(&manifest);
    assert_eq!(by_source.len(), 38);
    for seed in 0..8 {
        assert_eq!(
            by_source[&fire.join(format!("img{seed:04}.png"))],
            by_source[&fire.join(format!("zz_copy{seed}.jpg"))],
            "copy {seed} left its original's split"
        );
    }
    assert_eq!(manifest.duplicate_groups.len(), 8);
    assert!(manifest.duplicate_groups.iter().all(|g| !g.spans_sets() && g.members.iter().all(|m| m.kept)));

    let drop = PreprocessConfig {
        duplicates: DuplicateConfig { within_set: WithinSet::Drop, ..DuplicateConfig::default() },
        ..config
    };
    let manifest = prepare_dataset(&sets, &drop, &dir.path().join("drop")).unwrap();
    assert_eq!(manifest.summary(&name("fire")).unwrap().accepted, 30);
    let (kind, reason) = rejection(&manifest, "zz_copy3.jpg");
    assert_eq!(kind, RejectionKind::NearDuplicate);
    assert!(reason.contains("img0003.png"), "{reason}");

    // With near-duplicate detection off the copies are independent images.
    let off = PreprocessConfig { duplicates: DuplicateConfig { near: false, ..DuplicateConfig::default() }, ..drop };
    let manifest = prepare_dataset(&sets, &off, &dir.path().join("off")).unwrap();
    assert_eq!(manifest.summary(&name("fire")).unwrap().accepted, 38);
    assert!(manifest.duplicate_groups.is_empty());
}

#[test]
fn added_images_never_move_earlier_split_assignments() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw");
    let fire = raw.join("classes/fire");
    photos(&fire, 0..20);
    photos(&raw.join("classes/water"), 100..110);
    photos(&raw.join("concepts/red"), 200..203);
    let sets = inputs(&raw, &["fire", "water"], &["red"], &[]);
    let lockfile = raw.join("splits.lock.json");
    let first_config = PreprocessConfig { lockfile: Some(lockfile.clone()), ..config() };
    let first = prepare_dataset(&sets, &first_config, &dir.path().join("run1")).unwrap();
    let before = splits(&first);
    assert_eq!(before.len(), 30);
    let lock = crate::SplitLock::read(&lockfile).unwrap();
    assert_eq!(lock.classes[&name("fire")].len(), 20);
    assert_eq!(crate::SplitLock::read(&dir.path().join("run1").join(LOCK_FILE)).unwrap(), lock);

    // More images, another salt and other fractions: the locked images stay.
    photos(&fire, 20..40);
    let second_config = PreprocessConfig {
        salt: "another salt".into(),
        split: SplitFractions { train: 0.34, validation: 0.33, test: 0.33 },
        ..first_config
    };
    let second = prepare_dataset(&sets, &second_config, &dir.path().join("run2")).unwrap();
    let after = splits(&second);
    assert_eq!(after.len(), 50);
    for (source, split) in &before {
        assert_eq!(after[source], *split, "{} moved", source.display());
    }
    assert!(second.lock_conflicts.is_empty());
    assert_eq!(crate::SplitLock::read(&lockfile).unwrap().classes[&name("fire")].len(), 40);

    // Without the lockfile the new salt would have moved some of them.
    let unlocked = PreprocessConfig { lockfile: None, ..second_config };
    let moved = splits(&prepare_dataset(&sets, &unlocked, &dir.path().join("run3")).unwrap());
    assert!(before.iter().any(|(source, split)| moved[source] != *split));
}

#[test]
fn a_locked_image_follows_its_near_duplicate_group_and_the_report_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw");
    let fire = raw.join("classes/fire");
    photos(&fire, 0..12);
    for seed in 0..12 {
        write(&fire, &format!("zz_copy{seed}.jpg"), &near_copy(seed));
    }
    photos(&raw.join("concepts/red"), 100..103);
    let sets = inputs(&raw, &["fire"], &["red"], &[]);
    let lockfile = dir.path().join("splits.lock.json");
    let base = PreprocessConfig {
        lockfile: Some(lockfile),
        split: SplitFractions { train: 0.4, validation: 0.3, test: 0.3 },
        ..config()
    };
    // First without near-duplicate detection: copies draw their own splits.
    let blind =
        PreprocessConfig { duplicates: DuplicateConfig { near: false, ..DuplicateConfig::default() }, ..base.clone() };
    let first = splits(&prepare_dataset(&sets, &blind, &dir.path().join("a")).unwrap());
    let differing = (0..12)
        .filter(|s| first[&fire.join(format!("img{s:04}.png"))] != first[&fire.join(format!("zz_copy{s}.jpg"))])
        .count();
    assert!(differing > 0, "the fixture needs a copy in another split than its original");

    let manifest = prepare_dataset(&sets, &base, &dir.path().join("b")).unwrap();
    let now = splits(&manifest);
    for seed in 0..12 {
        let original = fire.join(format!("img{seed:04}.png"));
        assert_eq!(now[&original], first[&original], "the representative keeps its locked split");
        assert_eq!(now[&fire.join(format!("zz_copy{seed}.jpg"))], now[&original]);
    }
    assert_eq!(manifest.lock_conflicts.len(), differing);
    let text = std::fs::read_to_string(dir.path().join("b").join(REPORT_TEXT)).unwrap();
    assert!(
        text.contains(&format!("locked splits overridden to keep near duplicates together ({differing})")),
        "{text}"
    );
}

#[test]
fn an_excluded_file_never_appears_in_any_output() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw");
    photos(&raw.join("classes/fire"), 0..6);
    photos(&raw.join("concepts/red"), 10..14);
    let by_hash = raw.join("classes/fire/img0003.png");
    let hash = blake3::hash(&std::fs::read(&by_hash).unwrap()).to_hex().to_string();
    let list = raw.join("exclude.txt");
    std::fs::write(
        &list,
        format!(
            "# reviewed by hand\n{}  # a person, not a Pokémon\nconcepts/red/img0012.png\nclasses/fire/renamed.png\n",
            &hash[..16]
        ),
    )
    .unwrap();
    let excluded_by_path = raw.join("concepts/red/img0012.png");
    let path_hash = blake3::hash(&std::fs::read(&excluded_by_path).unwrap()).to_hex().to_string();
    let out = dir.path().join("out");
    let config = PreprocessConfig { exclusions: Some(list.clone()), ..config() };
    let manifest = prepare_dataset(&inputs(&raw, &["fire"], &["red"], &[]), &config, &out).unwrap();

    let (kind, reason) = rejection(&manifest, "img0003.png");
    assert_eq!(kind, RejectionKind::Excluded);
    assert!(reason.contains("line 2"), "{reason}");
    let (kind, reason) = rejection(&manifest, "img0012.png");
    assert_eq!(kind, RejectionKind::Excluded);
    assert!(reason.contains("line 3"), "{reason}");
    assert_eq!(manifest.unused_exclusions.len(), 1);
    assert!(manifest.unused_exclusions[0].contains("renamed.png"), "{:?}", manifest.unused_exclusions);

    // No output is named after them or holds their pixels.
    let files = written(&out);
    assert_eq!(files.len(), 5 + 3);
    for file in &files {
        let stem = file.file_name().unwrap().to_str().unwrap();
        assert!(!stem.starts_with(&hash[..16]) && !stem.starts_with(&path_hash[..16]), "{}", file.display());
    }
    let excluded_pixels =
        crate::preprocess_bytes(&std::fs::read(&by_hash).unwrap(), &config).unwrap().remove(0).result.unwrap().image;
    assert!(files.iter().all(|f| image::open(out.join(f)).unwrap().into_rgb8() != excluded_pixels));
    // Nor a thumbnail on a contact sheet; the report lists both, one line each.
    for set in ["fire", "red"] {
        let html = std::fs::read_to_string(out.join(CONTACT_SHEETS_DIR).join(format!("{set}.html"))).unwrap();
        for h in [&hash, &path_hash] {
            assert!(!html.contains(&format!("title=\"{h}\"")) && !html.contains(&format!("<code>{}  #", &h[..16])));
        }
        assert_eq!(html.matches("<figure").count(), if set == "fire" { 5 } else { 3 });
    }
    let text = std::fs::read_to_string(out.join(REPORT_TEXT)).unwrap();
    assert!(text.contains("excluded by the exclusion list (2):"), "{text}");
    assert_eq!(text.lines().filter(|l| l.contains("img0003.png")).count(), 1, "{text}");
    assert!(text.contains("renamed.png"), "{text}");
    // The exclusion list is an input too: it is left as it was.
    assert!(std::fs::read_to_string(&list).unwrap().starts_with("# reviewed by hand"));
}

#[test]
fn contact_sheets_show_every_kept_image_with_its_hash() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw");
    photos(&raw.join("classes/fire"), 0..5);
    photos(&raw.join("concepts/red"), 10..13);
    photos(&raw.join("random/random_0"), 20..24);
    write(&raw.join("random/random_0"), "blank.png", &png(RgbImage::from_pixel(40, 40, Rgb([7, 7, 7]))));
    let out = dir.path().join("out");
    let manifest = prepare_dataset(&inputs(&raw, &["fire"], &["red"], &["random_0"]), &config(), &out).unwrap();
    for summary in &manifest.sets {
        let html = std::fs::read_to_string(out.join(CONTACT_SHEETS_DIR).join(format!("{}.html", summary.set))).unwrap();
        assert_eq!(html.matches("<figure").count(), summary.accepted, "{}", summary.set);
        assert_eq!(html.matches("src=\"data:image/jpeg;base64,").count(), summary.accepted);
        for entry in manifest.accepted(&summary.set) {
            let hash = entry.source_hash.as_deref().unwrap();
            let file = entry.source.file_name().unwrap().to_str().unwrap();
            assert!(html.contains(&format!("<code>{}  # {file}</code>", &hash[..16])), "{file} missing");
            assert!(html.contains(&format!("title=\"{hash}\"")));
        }
    }
    let random = std::fs::read_to_string(out.join(CONTACT_SHEETS_DIR).join("random_0.html")).unwrap();
    assert!(random.contains("Left out (1)") && random.contains("blank.png") && random.contains("near-uniform"));
}

#[test]
fn dataset_output_is_identical_across_thread_counts() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw");
    photos(&raw.join("classes/fire"), 0..10);
    photos(&raw.join("classes/water"), 10..20);
    photos(&raw.join("concepts/red"), 20..25);
    photos(&raw.join("random/random_0"), 25..30);
    write(&raw.join("concepts/red"), "copy.jpg", &near_copy(3));
    write(&raw.join("classes/water"), "bad.jpg", b"nope");
    let sets = inputs(&raw, &["fire", "water"], &["red"], &["random_0"]);
    let run_with = |threads: usize, folder: &str| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        let out = dir.path().join(folder);
        pool.install(|| prepare_dataset(&sets, &config(), &out)).unwrap();
        let mut files = Vec::new();
        for file in written(&out).into_iter().chain([PathBuf::from(REPORT_JSON), PathBuf::from(LOCK_FILE)]) {
            files.push((file.clone(), std::fs::read(out.join(&file)).unwrap()));
        }
        files
    };
    let one = run_with(1, "one");
    assert_eq!(one, run_with(2, "two"));
    assert_eq!(one.len(), 10 + 10 + 5 + 5 + 2);
}

#[test]
fn a_recoloured_copy_is_not_a_near_duplicate() {
    // The same drawing in red and in blue hashes alike (the perceptual hash
    // sees luma structure only), but for colour concepts the two are
    // different examples: the colour thumbnails keep them apart.
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw");
    let shape = |colour: Rgb<u8>| {
        RgbImage::from_fn(96, 96, |x, y| {
            let inside = x.abs_diff(48).pow(2) + y.abs_diff(40).pow(2) < 26 * 26 || (30..66).contains(&x) && y > 60;
            if inside { colour } else { Rgb([128 + (x / 3) as u8, 128 + (y / 3) as u8, 140]) }
        })
    };
    let red = shape(Rgb([220, 30, 30]));
    let blue = shape(Rgb([30, 30, 220]));
    write(&raw.join("concepts/red"), "red_blob.png", &png(red.clone()));
    write(&raw.join("concepts/blue"), "blue_blob.png", &png(blue.clone()));
    photos(&raw.join("classes/fire"), 0..3);
    let config = config();
    let hash = |image: RgbImage| {
        let bytes = png(image);
        crate::preprocess_bytes(&bytes, &config).unwrap().remove(0).result.unwrap().perceptual_hash
    };
    let distance = (hash(red) ^ hash(blue)).count_ones();
    assert!(distance <= config.duplicates.max_distance, "the fixture should fool the hash alone: {distance} bits");
    let out = dir.path().join("out");
    let manifest = prepare_dataset(&inputs(&raw, &["fire"], &["blue", "red"], &[]), &config, &out).unwrap();
    assert!(manifest.duplicate_groups.is_empty(), "{:?}", manifest.duplicate_groups);
    assert_eq!(manifest.summary(&name("red")).unwrap().accepted, 1);
    assert_eq!(manifest.summary(&name("blue")).unwrap().accepted, 1);
}

#[test]
fn the_output_is_pinned_so_any_change_bumps_output_version() {
    // PNG inputs only: PNG decoding, the SIMD resizer (whose results are the
    // same on every CPU extension), the hashes and the PNG encoder are all
    // exact, so this digest is the same on every machine.
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw");
    photos(&raw.join("classes/fire"), 0..8);
    photos(&raw.join("classes/water"), 10..16);
    let copy = imageops::resize(&photo(3), 120, 90, imageops::FilterType::Triangle);
    write(&raw.join("classes/fire"), "copy.png", &png(copy));
    photos(&raw.join("concepts/red"), 20..23);
    photos(&raw.join("random/random_0"), 30..33);
    let out = dir.path().join("out");
    prepare_dataset(&inputs(&raw, &["fire", "water"], &["red"], &["random_0"]), &config(), &out).unwrap();
    let mut hasher = blake3::Hasher::new();
    for file in written(&out).into_iter().chain([PathBuf::from(LOCK_FILE)]) {
        hasher.update(file.to_string_lossy().as_bytes());
        hasher.update(&std::fs::read(out.join(&file)).unwrap());
    }
    assert_eq!(
        (crate::OUTPUT_VERSION, hasher.finalize().to_hex().to_string()),
        (2, "26db93d0c98c805f2b2993a54e7e798f21b3cf0e474272c4f651049be1002bba".to_string()),
        "the preprocessed output changed: bump OUTPUT_VERSION and pin the new digest"
    );
}
