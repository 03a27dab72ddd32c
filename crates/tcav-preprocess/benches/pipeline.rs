//! Images per second through the per-image steps of preprocessing: decode →
//! orient → crop → resize to 256 × 256 → hash (pixel hash, near-uniform
//! check and perceptual hash), with [`tcav_preprocess::preprocess_bytes`].
//!
//! The inputs are 200 generated 640 × 480 JPEGs, one in four tagged with an
//! EXIF rotation, held in memory so that disk speed does not count. They
//! are also written to `<target>/tmp/tcav-preprocess-bench/` so that
//! `benches/pillow_baseline.py` can time Pillow on the very same files:
//!
//! ```text
//! cargo bench -p tcav-preprocess
//! python3 crates/tcav-preprocess/benches/pillow_baseline.py target/tmp/tcav-preprocess-bench
//! ```

use std::hint::black_box;
use std::io::Cursor;
use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use image::{DynamicImage, ImageFormat, Rgb, RgbImage};
use rayon::prelude::*;
use tcav_preprocess::{PreprocessConfig, preprocess_bytes};

const IMAGES: usize = 200;

/// A photo-like 640 × 480 image: smooth gradients, a few hard-edged shapes
/// and mild noise, so that the JPEG has realistic detail to decode.
fn photo(seed: u64) -> RgbImage {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let shapes: Vec<(u32, u32, u32, [u8; 3])> = (0..6)
        .map(|_| {
            let v = next();
            (
                (v % 640) as u32,
                ((v >> 16) % 480) as u32,
                20 + ((v >> 32) % 120) as u32,
                [(v >> 40) as u8, (v >> 48) as u8, (v >> 56) as u8],
            )
        })
        .collect();
    let phase = (seed % 97) as u32;
    RgbImage::from_fn(640, 480, |x, y| {
        for &(cx, cy, r, colour) in &shapes {
            if x.abs_diff(cx).pow(2) + y.abs_diff(cy).pow(2) < r * r {
                return Rgb(colour);
            }
        }
        let noise = (next() % 24) as u8;
        Rgb([((x + phase) / 3) as u8 ^ noise, ((y + 2 * phase) / 2) as u8 + noise / 2, ((x + y) / 5) as u8 + noise])
    })
}

/// Inserts an EXIF segment holding only an orientation tag after the JPEG's
/// start-of-image marker.
fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    let mut tiff = b"MM\0\x2A".to_vec();
    tiff.extend_from_slice(&8u32.to_be_bytes());
    tiff.extend_from_slice(&1u16.to_be_bytes());
    tiff.extend_from_slice(&0x0112u16.to_be_bytes());
    tiff.extend_from_slice(&3u16.to_be_bytes());
    tiff.extend_from_slice(&1u32.to_be_bytes());
    tiff.extend_from_slice(&orientation.to_be_bytes());
    tiff.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    let mut payload = b"Exif\0\0".to_vec();
    payload.extend_from_slice(&tiff);
    let mut out = vec![0xFF, 0xD8, 0xFF, 0xE1];
    out.extend_from_slice(&(payload.len() as u16 + 2).to_be_bytes());
    out.extend_from_slice(&payload);
    out.extend_from_slice(&jpeg[2..]);
    out
}

fn inputs() -> Vec<Vec<u8>> {
    let folder = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("tcav-preprocess-bench");
    std::fs::create_dir_all(&folder).expect("creating the benchmark folder");
    let images: Vec<Vec<u8>> = (0..IMAGES as u64)
        .into_par_iter()
        .map(|seed| {
            let mut bytes = Cursor::new(Vec::new());
            DynamicImage::ImageRgb8(photo(seed)).write_to(&mut bytes, ImageFormat::Jpeg).expect("encoding a JPEG");
            let bytes = bytes.into_inner();
            if seed % 4 == 0 { with_exif_orientation(&bytes, 6) } else { bytes }
        })
        .collect();
    for (i, bytes) in images.iter().enumerate() {
        std::fs::write(folder.join(format!("photo{i:03}.jpg")), bytes).expect("writing a benchmark JPEG");
    }
    let total: usize = images.iter().map(Vec::len).sum();
    eprintln!("{IMAGES} JPEGs, {} KiB on average, in {}", total / IMAGES / 1024, folder.display());
    images
}

fn run_all(images: &[Vec<u8>], config: &PreprocessConfig) -> usize {
    images.iter().map(|bytes| preprocess_bytes(black_box(bytes), config).map_or(0, |frames| frames.len())).sum()
}

fn bench(c: &mut Criterion) {
    let images = inputs();
    let config = PreprocessConfig::default();
    assert_eq!(run_all(&images, &config), IMAGES, "every benchmark image should pass");
    let mut group = c.benchmark_group("decode_orient_crop_resize_hash_256");
    group.sample_size(10);
    group.throughput(Throughput::Elements(IMAGES as u64));
    group.bench_function("one_thread", |b| b.iter(|| run_all(&images, &config)));
    group.bench_function(format!("rayon_{}_threads", rayon::current_num_threads()), |b| {
        b.iter(|| {
            images
                .par_iter()
                .map(|bytes| preprocess_bytes(black_box(bytes), &config).map_or(0, |frames| frames.len()))
                .sum::<usize>()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
