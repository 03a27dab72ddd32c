//! The per-image steps: decode, orient, composite, square, resize, check,
//! hash. Everything here is a pure function of the file's bytes and the
//! config, so it runs on any thread in any order.

use image::RgbImage;
use image_hasher::{HashAlg, Hasher, HasherConfig};

use crate::config::{NEAR_UNIFORM_LUMA_STD, PreprocessConfig};
use crate::decode::{DecodeOptions, Rejection, decode_frames};
use crate::geometry::{colour_thumbnail, square};
use crate::manifest::RejectionKind;

/// One frame of a file (a still image has one) and what became of it.
#[derive(Clone, Debug)]
pub struct Frame {
    /// The GIF frame index, when frames are taken with
    /// [`crate::GifFrames::Every`]; `None` for a still image.
    pub index: Option<u32>,
    /// The preprocessed image, or why this frame was left out.
    pub result: Result<PreprocessedImage, Rejection>,
}

/// One image (a still image, or one frame of a GIF) after preprocessing.
#[derive(Clone, Debug)]
pub struct PreprocessedImage {
    /// The upright, square, `size` × `size` 8-bit RGB image.
    pub image: RgbImage,
    /// blake3 hex hash of the decoded, upright pixels (and their
    /// dimensions), before squaring: equal for exact duplicates whatever
    /// their file format or metadata.
    pub pixel_hash: String,
    /// 64-bit perceptual hash of [`Self::image`] (see [`perceptual_hash`]).
    pub perceptual_hash: u64,
    /// The mean colour of each of the 16 × 16 blocks of [`Self::image`],
    /// row by row, RGB: what near duplicates are confirmed with.
    pub colour_thumbnail: Vec<u8>,
}

/// Runs the per-image steps on one file's bytes.
///
/// The outer error rejects the whole file (unreadable, truncated, too large,
/// too small). Each frame then either passes or is rejected on its own (a
/// near-uniform frame of an otherwise fine GIF).
///
/// # Errors
///
/// The [`Rejection`] of a file that is no usable image, with its reason.
pub fn preprocess_bytes(bytes: &[u8], config: &PreprocessConfig) -> Result<Vec<Frame>, Rejection> {
    let mut frames = Vec::new();
    let capped = preprocess_each(bytes, config, |frame| frames.push(frame))?;
    if capped {
        tracing::warn!("a GIF has more than {} frames; only the first ones were read", crate::MAX_GIF_FRAMES);
    }
    Ok(frames)
}

/// [`preprocess_bytes`], handing over each frame as soon as it is done, so
/// that a long GIF never holds all its frames in memory. Returns whether a
/// GIF had more frames than [`crate::MAX_GIF_FRAMES`] (the rest were not read).
pub(crate) fn preprocess_each(
    bytes: &[u8],
    config: &PreprocessConfig,
    mut each: impl FnMut(Frame),
) -> Result<bool, Rejection> {
    let options =
        DecodeOptions { min_side: config.min_side, background: config.background, gif_frames: config.gif_frames };
    let hasher = perceptual_hasher();
    decode_frames(bytes, options, |index, upright| {
        each(Frame { index, result: finish(&upright, config, &hasher) });
    })
}

fn finish(
    upright: &RgbImage,
    config: &PreprocessConfig,
    hasher: &Hasher<[u8; 8]>,
) -> Result<PreprocessedImage, Rejection> {
    let pixel_hash = pixel_hash(upright);
    let squared = square(upright, config.size, config.crop, config.filter);
    if squared.content_luma_std < NEAR_UNIFORM_LUMA_STD {
        return Err(Rejection::new(
            RejectionKind::NearUniform,
            format!(
                "near-uniform: the luma standard deviation {:.2} is below {NEAR_UNIFORM_LUMA_STD}",
                squared.content_luma_std
            ),
        ));
    }
    let perceptual_hash = u64::from_le_bytes(hasher.hash_image(&squared.image).into_inner());
    let colour_thumbnail = colour_thumbnail(&squared.image);
    Ok(PreprocessedImage { image: squared.image, pixel_hash, perceptual_hash, colour_thumbnail })
}

/// What the report says about the perceptual hash, so that distances in it
/// can be interpreted.
pub const PERCEPTUAL_HASH: &str = "image_hasher 3.1 gradient hash (dHash), 8 x 8 = 64 bits, of the output image's luma; \
     near duplicates are confirmed by the mean absolute difference of 16 x 16 box-filtered RGB thumbnails";

fn perceptual_hasher() -> Hasher<[u8; 8]> {
    HasherConfig::with_bytes_type::<[u8; 8]>().hash_alg(HashAlg::Gradient).hash_size(8, 8).to_hasher()
}

/// The 64-bit gradient hash of `image` (see [`PERCEPTUAL_HASH`]). Near
/// duplicates (re-encoded, rescaled, slightly recoloured copies) differ in
/// a few bits; unrelated images in about 32.
pub fn perceptual_hash(image: &RgbImage) -> u64 {
    u64::from_le_bytes(perceptual_hasher().hash_image(image).into_inner())
}

fn pixel_hash(image: &RgbImage) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&image.width().to_le_bytes());
    hasher.update(&image.height().to_le_bytes());
    hasher.update(image.as_raw());
    hasher.finalize().to_hex().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{encode, gradient_rgb, noise_rgb};
    use image::{DynamicImage, ImageFormat, imageops};

    #[test]
    fn re_encoded_and_rescaled_copies_are_near_and_unrelated_images_far() {
        let original = noise_rgb(16, 12, 1);
        let big = imageops::resize(&original, 320, 240, imageops::FilterType::Triangle);
        let config = PreprocessConfig { size: 64, ..PreprocessConfig::default() };
        let from = |bytes: Vec<u8>| preprocess_bytes(&bytes, &config).unwrap().remove(0).result.unwrap();
        let png = from(encode(&DynamicImage::ImageRgb8(big.clone()), ImageFormat::Png));
        let jpeg = from(encode(&DynamicImage::ImageRgb8(big.clone()), ImageFormat::Jpeg));
        let small = imageops::resize(&big, 200, 150, imageops::FilterType::Lanczos3);
        let smaller = from(encode(&DynamicImage::ImageRgb8(small), ImageFormat::Png));
        assert_ne!(png.pixel_hash, jpeg.pixel_hash);
        for copy in [&jpeg, &smaller] {
            let distance = (png.perceptual_hash ^ copy.perceptual_hash).count_ones();
            assert!(distance <= 2, "a copy should be within 2 bits, got {distance}");
        }
        for seed in 2..12 {
            let other = imageops::resize(&noise_rgb(16, 12, seed), 320, 240, imageops::FilterType::Triangle);
            let other = from(encode(&DynamicImage::ImageRgb8(other), ImageFormat::Png));
            let distance = (png.perceptual_hash ^ other.perceptual_hash).count_ones();
            assert!(distance >= 12, "unrelated images should be far apart, got {distance}");
        }
    }

    #[test]
    fn pixel_hash_ignores_the_file_format_but_not_the_pixels() {
        let config = PreprocessConfig { size: 16, min_side: 1, ..PreprocessConfig::default() };
        let image = DynamicImage::ImageRgb8(gradient_rgb(40, 30));
        let hash_of =
            |format| preprocess_bytes(&encode(&image, format), &config).unwrap().remove(0).result.unwrap().pixel_hash;
        assert_eq!(hash_of(ImageFormat::Png), hash_of(ImageFormat::Bmp));
        let mut other = gradient_rgb(40, 30);
        other.put_pixel(3, 3, image::Rgb([1, 2, 3]));
        let changed = preprocess_bytes(&encode(&DynamicImage::ImageRgb8(other), ImageFormat::Png), &config).unwrap();
        let changed = changed[0].result.as_ref().unwrap();
        assert_ne!(changed.pixel_hash, hash_of(ImageFormat::Png));
        assert_eq!(perceptual_hash(&changed.image), changed.perceptual_hash);
    }
}
