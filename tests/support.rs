//! Fixtures shared by the cross-crate tests: small image folders made in
//! code.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

/// Writes `count` `size`×`size` PNGs into `dir`, each a smooth pattern of
/// `base` colour with per-image variation, and returns their paths.
pub fn write_images(dir: &Path, count: usize, size: u32, base: [u8; 3]) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    (0..count)
        .map(|i| {
            let img = image::RgbImage::from_fn(size, size, |x, y| {
                let wobble = ((x * 7 + y * 13 + i as u32 * 29) % 64) as u8;
                image::Rgb(base.map(|c| c.saturating_add(wobble).saturating_sub(wobble / 2)))
            });
            let path = dir.join(format!("img_{i:03}.png"));
            img.save(&path).unwrap();
            path
        })
        .collect()
}

/// A temporary folder that lives as long as the value.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}
