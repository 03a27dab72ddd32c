//! Tiny images generated in code for the tests.

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageFormat, Rgb, RgbImage};

/// A smooth two-way gradient: varied enough to pass the near-uniform check.
pub(crate) fn gradient_rgb(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        Rgb([(x * 255 / width.max(1)) as u8, (y * 255 / height.max(1)) as u8, ((x + y) % 256) as u8])
    })
}

/// Pseudo-random pixels from `seed` (splitmix64), so every seed gives
/// different file bytes.
pub(crate) fn noise_rgb(width: u32, height: u32, seed: u64) -> RgbImage {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    RgbImage::from_fn(width, height, |_, _| {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let [a, b, c, ..] = z.to_le_bytes();
        Rgb([a, b, c])
    })
}

/// The image encoded in `format`.
pub(crate) fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut bytes = Cursor::new(Vec::new());
    image.write_to(&mut bytes, format).expect("encoding a test image");
    bytes.into_inner()
}

/// Writes a noise PNG of `size` × `size` pixels to `dir/name`.
pub(crate) fn write_noise_png(dir: &Path, name: &str, size: u32, seed: u64) {
    std::fs::create_dir_all(dir).expect("creating a test folder");
    let bytes = encode(&DynamicImage::ImageRgb8(noise_rgb(size, size, seed)), ImageFormat::Png);
    std::fs::write(dir.join(name), bytes).expect("writing a test image");
}

/// Inserts an EXIF APP1 segment holding only an orientation tag right after
/// the JPEG's start-of-image marker.
pub(crate) fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    assert_eq!(&jpeg[..2], &[0xFF, 0xD8], "not a JPEG");
    // TIFF header (big endian, first IFD at offset 8), then one IFD with one
    // entry: tag 0x0112 (orientation), type 3 (SHORT), count 1, value.
    let mut tiff = Vec::new();
    tiff.extend_from_slice(b"MM\0\x2A");
    tiff.extend_from_slice(&8u32.to_be_bytes());
    tiff.extend_from_slice(&1u16.to_be_bytes());
    tiff.extend_from_slice(&0x0112u16.to_be_bytes());
    tiff.extend_from_slice(&3u16.to_be_bytes());
    tiff.extend_from_slice(&1u32.to_be_bytes());
    tiff.extend_from_slice(&orientation.to_be_bytes());
    tiff.extend_from_slice(&[0, 0]);
    tiff.extend_from_slice(&0u32.to_be_bytes());
    let mut payload = b"Exif\0\0".to_vec();
    payload.extend_from_slice(&tiff);
    let mut out = vec![0xFF, 0xD8, 0xFF, 0xE1];
    // The segment length counts its own two bytes.
    out.extend_from_slice(&u16::try_from(payload.len() + 2).expect("small segment").to_be_bytes());
    out.extend_from_slice(&payload);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// CRC-32 as PNG chunks use it (for hand-edited headers).
pub(crate) fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}
