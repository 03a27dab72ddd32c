//! From file bytes to an upright 8-bit RGB image, or a reason why not.
//!
//! The `image` crate is lenient in ways that would hide bad data from a
//! classifier: it fills a truncated JPEG with grey and ignores EXIF
//! orientation. This module adds the checks it leaves out.

use std::io::Cursor;

use image::codecs::gif::GifDecoder;
use image::metadata::Orientation;
use image::{AnimationDecoder, DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader, Limits, RgbImage};

use crate::config::{GifFrames, MAX_DECODE_BYTES, MAX_GIF_FRAMES, MAX_SIDE};
use crate::manifest::RejectionKind;

/// Why one file (or one frame of a GIF) was left out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// The kind, for counting.
    pub kind: RejectionKind,
    /// Why, in words that name the problem.
    pub reason: String,
}

impl Rejection {
    pub(crate) fn new(kind: RejectionKind, reason: impl Into<String>) -> Self {
        Rejection { kind, reason: reason.into() }
    }
}

/// What decoding needs from the config.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DecodeOptions {
    pub min_side: u32,
    pub background: [u8; 3],
    pub gif_frames: GifFrames,
}

/// Decodes `bytes` and hands each wanted frame to `each` as upright 8-bit
/// RGB, with transparency composited onto the background. A still image has
/// one frame, passed as `None`; under [`GifFrames::Every`] a GIF's frames are
/// passed with their index. Rejects images whose shorter side is below
/// `min_side` before decoding their pixels.
///
/// Frames are handed over one at a time rather than collected, so that a
/// long animation never holds more than one decoded frame in memory.
/// Returns whether reading stopped at [`MAX_GIF_FRAMES`] with frames left.
pub(crate) fn decode_frames(
    bytes: &[u8],
    options: DecodeOptions,
    mut each: impl FnMut(Option<u32>, RgbImage),
) -> Result<bool, Rejection> {
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Rejection::new(RejectionKind::Unreadable, format!("cannot read: {e}")))?;
    let Some(format) = reader.format() else {
        return Err(Rejection::new(
            RejectionKind::NotAnImage,
            format!(
                "not an image: the first bytes ({}) match no PNG, JPEG, GIF, WebP or BMP signature",
                hex_start(bytes)
            ),
        ));
    };
    check_complete(bytes, format)?;
    if let (ImageFormat::Gif, GifFrames::Every(step)) = (format, options.gif_frames) {
        return decode_gif_frames(bytes, options, step.max(1), each);
    }

    let mut reader = reader;
    reader.limits(limits());
    let mut decoder = reader.into_decoder().map_err(|e| match e {
        // Some decoders check the limits while reading the header: say what
        // the header claims, as the check below would.
        ImageError::Limits(_) => claimed_size(bytes)
            .and_then(|(w, h)| check_header((w, h), u64::from(w) * u64::from(h) * 3, 0).err())
            .unwrap_or_else(|| classify(format, e)),
        other => classify(format, other),
    })?;
    check_header(decoder.dimensions(), decoder.total_bytes(), options.min_side)?;
    // Broken EXIF data is common in crawled photos and says nothing about
    // the pixels: treat it as "no rotation" rather than rejecting the image.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(|e| classify(format, e))?;
    image.apply_orientation(orientation);
    each(None, to_rgb8(image, options.background));
    Ok(false)
}

/// Every `step`-th frame of a GIF, composited onto the full canvas as the
/// GIF's disposal rules say (so a frame that only updates a corner still
/// yields the whole picture).
fn decode_gif_frames(
    bytes: &[u8],
    options: DecodeOptions,
    step: u32,
    mut each: impl FnMut(Option<u32>, RgbImage),
) -> Result<bool, Rejection> {
    let mut decoder = GifDecoder::new(Cursor::new(bytes)).map_err(|e| classify(ImageFormat::Gif, e))?;
    decoder.set_limits(limits()).map_err(|e| classify(ImageFormat::Gif, e))?;
    check_header(decoder.dimensions(), decoder.total_bytes(), options.min_side)?;
    let mut frames = decoder.into_frames();
    for index in 0.. {
        if index == MAX_GIF_FRAMES {
            return Ok(frames.next().is_some());
        }
        let Some(frame) = frames.next() else { break };
        let frame = frame.map_err(|e| {
            let mut rejection = classify(ImageFormat::Gif, e);
            rejection.reason = format!("frame {index}: {}", rejection.reason);
            rejection
        })?;
        if index % step == 0 {
            each(Some(index), to_rgb8(DynamicImage::ImageRgba8(frame.into_buffer()), options.background));
        }
    }
    Ok(false)
}

/// The dimensions a header claims, read without any limit (the header
/// alone is small, whatever it claims).
fn claimed_size(bytes: &[u8]) -> Option<(u32, u32)> {
    let mut reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format().ok()?;
    reader.no_limits();
    reader.into_dimensions().ok()
}

fn limits() -> Limits {
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    limits
}

/// Checks the dimensions a header claims before a single pixel is decoded,
/// whether or not the format's decoder enforces the limits itself.
fn check_header((width, height): (u32, u32), total_bytes: u64, min_side: u32) -> Result<(), Rejection> {
    if width > MAX_SIDE || height > MAX_SIDE {
        return Err(Rejection::new(
            RejectionKind::TooLarge,
            format!(
                "{width} x {height} pixels exceeds the limit of {MAX_SIDE} per side (a possible decompression bomb)"
            ),
        ));
    }
    if total_bytes > MAX_DECODE_BYTES {
        return Err(Rejection::new(
            RejectionKind::TooLarge,
            format!(
                "{width} x {height} pixels would need {} MiB to decode, over the limit of {} MiB",
                total_bytes >> 20,
                MAX_DECODE_BYTES >> 20
            ),
        ));
    }
    if width.min(height) < min_side {
        return Err(Rejection::new(
            RejectionKind::TooSmall,
            format!("{width} x {height} pixels: the shorter side is below min_side = {min_side}"),
        ));
    }
    Ok(())
}

/// Decodes a still image (or a GIF's first frame) to one upright RGB image.
#[cfg(test)]
pub(crate) fn decode_rgb(bytes: &[u8], min_side: u32, background: [u8; 3]) -> Result<RgbImage, Rejection> {
    let mut out = None;
    decode_frames(bytes, DecodeOptions { min_side, background, gif_frames: GifFrames::First }, |_, image| {
        out = Some(image);
    })?;
    out.ok_or_else(|| Rejection::new(RejectionKind::Undecodable, "no frame"))
}

fn classify(format: ImageFormat, error: ImageError) -> Rejection {
    match error {
        ImageError::Limits(e) => Rejection::new(RejectionKind::TooLarge, format!("over the decoding limits: {e}")),
        ImageError::Unsupported(e) => {
            Rejection::new(RejectionKind::Undecodable, format!("unsupported {format:?} variant: {e}"))
        }
        other => Rejection::new(RejectionKind::Undecodable, format!("cannot decode as {format:?}: {other}")),
    }
}

fn hex_start(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "the file is empty".to_owned();
    }
    bytes.iter().take(8).map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
}

/// Rejects files that end early. Decoders would otherwise fill the missing
/// part with grey (JPEG) or stop silently, and the classifier would learn
/// from half images.
pub(crate) fn check_complete(bytes: &[u8], format: ImageFormat) -> Result<(), Rejection> {
    let truncated = |what: &str| Err(Rejection::new(RejectionKind::Truncated, format!("truncated {format:?}: {what}")));
    match format {
        ImageFormat::Jpeg => {
            // Some writers pad files with zeros after the end marker.
            let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
            if end < 4 || bytes[end - 2..end] != [0xFF, 0xD9] {
                return truncated("the file does not end with the JPEG end-of-image marker FF D9");
            }
            Ok(())
        }
        ImageFormat::Png => {
            if png_has_iend(bytes) {
                Ok(())
            } else {
                truncated("the chunk sequence ends before the IEND chunk")
            }
        }
        ImageFormat::WebP => {
            // RIFF header: "RIFF", then the length of everything after these 8 bytes.
            let declared = bytes.get(4..8).map(|b| u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])));
            match declared {
                Some(len) if (bytes.len() as u64) >= len + 8 => Ok(()),
                Some(len) => {
                    truncated(&format!("the RIFF header declares {} bytes but the file has {}", len + 8, bytes.len()))
                }
                None => truncated("the file is shorter than its RIFF header"),
            }
        }
        ImageFormat::Gif => {
            // A GIF ends with the trailer byte 0x3B; the decoder would
            // otherwise stop quietly after the last complete frame.
            let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
            if end == 0 || bytes[end - 1] != 0x3B {
                truncated("the file does not end with the GIF trailer 3B")
            } else {
                Ok(())
            }
        }
        _ => Ok(()),
    }
}

/// Walks the PNG chunk list (length, type, data, CRC) up to IEND. Searching
/// the bytes for "IEND" would be fooled by compressed data that happens to
/// contain those letters.
fn png_has_iend(bytes: &[u8]) -> bool {
    const SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    if !bytes.starts_with(&SIGNATURE) {
        return false;
    }
    let mut pos = SIGNATURE.len();
    loop {
        let Some(header) = bytes.get(pos..pos + 8) else {
            return false;
        };
        let length = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let Some(end) = pos.checked_add(12).and_then(|p| p.checked_add(length)) else {
            return false;
        };
        if end > bytes.len() {
            return false;
        }
        if &header[4..8] == b"IEND" {
            return true;
        }
        pos = end;
    }
}

/// Converts any colour type and bit depth to 8-bit RGB. Transparent pixels
/// are composited onto `background` first: dropping the alpha channel would
/// expose whatever colour the transparent pixels happen to store, which is
/// often black and would become a spurious concept.
pub(crate) fn to_rgb8(image: DynamicImage, background: [u8; 3]) -> RgbImage {
    if !image.color().has_alpha() {
        return image.into_rgb8();
    }
    let rgba = image.into_rgba32f();
    let bg = background.map(|c| f32::from(c) / 255.0);
    let mut out = RgbImage::new(rgba.width(), rgba.height());
    for (src, dst) in rgba.pixels().zip(out.pixels_mut()) {
        let alpha = src[3].clamp(0.0, 1.0);
        for c in 0..3 {
            let value = src[c].clamp(0.0, 1.0) * alpha + bg[c] * (1.0 - alpha);
            // In [0, 255] after the clamps above, so the cast cannot wrap.
            dst[c] = (value * 255.0).round() as u8;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{encode, gradient_rgb};
    use image::{ImageBuffer, Luma, LumaA, Rgb, Rgba};

    #[test]
    fn rgba_is_composited_onto_the_background() {
        let mut img = ImageBuffer::<Rgba<u8>, _>::new(4, 4);
        img.put_pixel(0, 0, Rgba([255, 0, 0, 255]));
        img.put_pixel(1, 0, Rgba([0, 0, 0, 0]));
        img.put_pixel(2, 0, Rgba([0, 0, 0, 128]));
        let rgb = to_rgb8(DynamicImage::ImageRgba8(img), [255, 255, 255]);
        assert_eq!(rgb.get_pixel(0, 0), &Rgb([255, 0, 0]));
        assert_eq!(rgb.get_pixel(1, 0), &Rgb([255, 255, 255]));
        // Half-transparent black on white: mid grey.
        assert_eq!(rgb.get_pixel(2, 0), &Rgb([127, 127, 127]));
        // Through a real PNG file, with a non-white background.
        let mut img = ImageBuffer::<Rgba<u8>, _>::from_pixel(40, 40, Rgba([0, 0, 0, 0]));
        img.put_pixel(5, 5, Rgba([0, 255, 0, 255]));
        let bytes = encode(&DynamicImage::ImageRgba8(img), ImageFormat::Png);
        let rgb = decode_rgb(&bytes, 1, [10, 20, 30]).unwrap();
        assert_eq!(rgb.get_pixel(0, 0), &Rgb([10, 20, 30]));
        assert_eq!(rgb.get_pixel(5, 5), &Rgb([0, 255, 0]));
    }

    #[test]
    fn grey_and_16_bit_inputs_become_8_bit_rgb() {
        let grey = ImageBuffer::<Luma<u8>, _>::from_fn(40, 40, |x, _| Luma([(x * 6) as u8]));
        let rgb = decode_rgb(&encode(&DynamicImage::ImageLuma8(grey), ImageFormat::Png), 1, [0; 3]).unwrap();
        assert_eq!(rgb.get_pixel(10, 3), &Rgb([60, 60, 60]));

        let deep = ImageBuffer::<Rgb<u16>, _>::from_fn(40, 40, |x, _| Rgb([65535, 257 * x as u16, 0]));
        let rgb = decode_rgb(&encode(&DynamicImage::ImageRgb16(deep), ImageFormat::Png), 1, [0; 3]).unwrap();
        assert_eq!(rgb.get_pixel(7, 0), &Rgb([255, 7, 0]));

        let grey_alpha = ImageBuffer::<LumaA<u16>, _>::from_pixel(40, 40, LumaA([0, 0]));
        let rgb = decode_rgb(&encode(&DynamicImage::ImageLumaA16(grey_alpha), ImageFormat::Png), 1, [9, 8, 7]).unwrap();
        assert_eq!(rgb.get_pixel(0, 0), &Rgb([9, 8, 7]));
    }

    #[test]
    fn truncated_jpeg_and_png_are_rejected() {
        let img = DynamicImage::ImageRgb8(gradient_rgb(48, 48));
        let jpeg = encode(&img, ImageFormat::Jpeg);
        decode_rgb(&jpeg, 1, [0; 3]).unwrap();
        // Zero padding after the end marker is harmless.
        let mut padded = jpeg.clone();
        padded.extend_from_slice(&[0; 16]);
        decode_rgb(&padded, 1, [0; 3]).unwrap();
        let err = decode_rgb(&jpeg[..jpeg.len() / 2], 1, [0; 3]).unwrap_err();
        assert_eq!(err.kind, RejectionKind::Truncated, "{err:?}");
        assert!(err.reason.contains("FF D9"), "{err:?}");

        let png = encode(&img, ImageFormat::Png);
        decode_rgb(&png, 1, [0; 3]).unwrap();
        // Cut only the IEND chunk: the pixels are all there, yet the file is
        // incomplete, so something went wrong while writing or copying it.
        let err = decode_rgb(&png[..png.len() - 12], 1, [0; 3]).unwrap_err();
        assert_eq!(err.kind, RejectionKind::Truncated, "{err:?}");
        let err = decode_rgb(&png[..png.len() / 2], 1, [0; 3]).unwrap_err();
        assert_eq!(err.kind, RejectionKind::Truncated, "{err:?}");
    }

    #[test]
    fn garbage_is_rejected_with_a_reason() {
        let err = decode_rgb(b"this is not an image at all", 1, [0; 3]).unwrap_err();
        assert_eq!(err.kind, RejectionKind::NotAnImage);
        assert!(err.reason.contains("74 68 69 73"), "{err:?}");
        let err = decode_rgb(b"", 1, [0; 3]).unwrap_err();
        assert!(err.reason.contains("empty"), "{err:?}");
        // A valid PNG signature and chunk list with a corrupt header chunk.
        let mut png = encode(&DynamicImage::ImageRgb8(gradient_rgb(40, 40)), ImageFormat::Png);
        png[16..24].copy_from_slice(&[0xFF; 8]);
        let err = decode_rgb(&png, 1, [0; 3]).unwrap_err();
        assert!(matches!(err.kind, RejectionKind::Undecodable | RejectionKind::TooLarge), "{err:?}");
    }

    #[test]
    fn huge_dimensions_are_rejected_before_decoding() {
        // A PNG header claiming 100000 x 100000 pixels, with no pixel data:
        // decoding would need 30 GB.
        let mut png = encode(&DynamicImage::ImageRgb8(gradient_rgb(40, 40)), ImageFormat::Png);
        png[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        png[20..24].copy_from_slice(&100_000u32.to_be_bytes());
        let crc_input = &png[12..29];
        let crc = crate::fixtures::crc32(crc_input);
        png[29..33].copy_from_slice(&crc.to_be_bytes());
        let err = decode_rgb(&png, 1, [0; 3]).unwrap_err();
        assert_eq!(err.kind, RejectionKind::TooLarge, "{err:?}");
    }

    #[test]
    fn small_images_are_rejected_by_their_shorter_side() {
        let bytes = encode(&DynamicImage::ImageRgb8(gradient_rgb(100, 20)), ImageFormat::Png);
        let err = decode_rgb(&bytes, 32, [0; 3]).unwrap_err();
        assert_eq!(err.kind, RejectionKind::TooSmall);
        assert!(err.reason.contains("100 x 20") && err.reason.contains("min_side = 32"), "{err:?}");
        assert_eq!(decode_rgb(&bytes, 20, [0; 3]).unwrap().dimensions(), (100, 20));
    }

    #[test]
    fn exif_orientation_is_applied() {
        // 64 x 32, red left half and blue right half, tagged "rotate 90° clockwise".
        let wide = RgbImage::from_fn(64, 32, |x, _| if x < 32 { Rgb([255, 0, 0]) } else { Rgb([0, 0, 255]) });
        let plain = encode(&DynamicImage::ImageRgb8(wide), ImageFormat::Jpeg);
        assert_eq!(decode_rgb(&plain, 1, [0; 3]).unwrap().dimensions(), (64, 32));
        let tagged = crate::fixtures::with_exif_orientation(&plain, 6);
        let upright = decode_rgb(&tagged, 1, [0; 3]).unwrap();
        assert_eq!(upright.dimensions(), (32, 64));
        // The left (red) half is now on top.
        let top = upright.get_pixel(16, 8);
        let bottom = upright.get_pixel(16, 56);
        assert!(top[0] > 200 && top[2] < 60, "top should be red: {top:?}");
        assert!(bottom[2] > 200 && bottom[0] < 60, "bottom should be blue: {bottom:?}");
    }

    #[test]
    fn webp_length_is_checked() {
        let mut riff = b"RIFF".to_vec();
        riff.extend_from_slice(&100u32.to_le_bytes());
        riff.extend_from_slice(b"WEBPVP8 ");
        let err = check_complete(&riff, ImageFormat::WebP).unwrap_err();
        assert_eq!(err.kind, RejectionKind::Truncated);
        assert!(err.reason.contains("108"), "{err:?}");
    }

    #[test]
    fn cmyk_jpeg_becomes_rgb() {
        // Pure magenta + yellow ink is red; no ink is white; full black ink is black.
        let bytes = crate::fixtures::cmyk_jpeg(64, 64, [0, 255, 255, 0]);
        assert!(bytes.windows(5).any(|w| w == b"Adobe"), "the fixture should carry an Adobe APP14 marker");
        let rgb = decode_rgb(&bytes, 1, [0; 3]).unwrap();
        let red = rgb.get_pixel(32, 8);
        assert!(red[0] > 220 && red[1] < 40 && red[2] < 40, "CMYK red decoded as {red:?}");
        let no_ink = rgb.get_pixel(1, 60);
        assert!(no_ink.0.iter().all(|&c| c > 220), "no ink should be white, got {no_ink:?}");
        let black = rgb.get_pixel(62, 60);
        assert!(black.0.iter().all(|&c| c < 40), "full black ink should be black, got {black:?}");
    }

    #[test]
    fn palette_png_becomes_rgb() {
        let palette = [[200, 10, 10], [10, 200, 10], [10, 10, 200]];
        let indices: Vec<u8> = (0..36u32 * 36).map(|i| ((i % 36) / 12) as u8).collect();
        let bytes = crate::fixtures::palette_png(36, 36, &palette, &indices);
        let rgb = decode_rgb(&bytes, 1, [0; 3]).unwrap();
        assert_eq!(rgb.get_pixel(0, 5), &Rgb([200, 10, 10]));
        assert_eq!(rgb.get_pixel(13, 5), &Rgb([10, 200, 10]));
        assert_eq!(rgb.get_pixel(35, 35), &Rgb([10, 10, 200]));
    }

    #[test]
    fn gif_frames_first_or_every_nth() {
        let colours = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [0, 255, 255]];
        let frames: Vec<image::RgbaImage> =
            colours.iter().map(|&[r, g, b]| image::RgbaImage::from_pixel(40, 40, Rgba([r, g, b, 255]))).collect();
        let gif = crate::fixtures::animated_gif(&frames);
        let collect = |gif_frames| {
            let mut out = Vec::new();
            decode_frames(&gif, DecodeOptions { min_side: 1, background: [0; 3], gif_frames }, |i, img| {
                out.push((i, *img.get_pixel(20, 20)));
            })
            .unwrap();
            out
        };
        assert_eq!(collect(GifFrames::First), [(None, Rgb([255, 0, 0]))]);
        assert_eq!(
            collect(GifFrames::Every(2)),
            [(Some(0), Rgb([255, 0, 0])), (Some(2), Rgb([0, 0, 255])), (Some(4), Rgb([0, 255, 255]))]
        );
        assert_eq!(collect(GifFrames::Every(1)).len(), 5);
        // Without its trailer the GIF is truncated, however many frames survive.
        let err = decode_rgb(&gif[..gif.len() - 1], 1, [0; 3]).unwrap_err();
        assert_eq!(err.kind, RejectionKind::Truncated, "{err:?}");
    }

    #[test]
    fn a_header_claiming_30000_by_30000_is_rejected_before_decoding() {
        let err = decode_rgb(&crate::fixtures::png_claiming(30_000, 30_000), 1, [0; 3]).unwrap_err();
        assert_eq!(err.kind, RejectionKind::TooLarge, "{err:?}");
        assert!(err.reason.contains("30000 x 30000"), "{err:?}");
        // The same claim in a GIF's logical screen descriptor, under both frame modes.
        let mut gif = crate::fixtures::animated_gif(&[image::RgbaImage::from_pixel(40, 40, Rgba([9, 9, 9, 255]))]);
        gif[6..8].copy_from_slice(&30_000u16.to_le_bytes());
        gif[8..10].copy_from_slice(&30_000u16.to_le_bytes());
        for gif_frames in [GifFrames::First, GifFrames::Every(1)] {
            let err = decode_frames(&gif, DecodeOptions { min_side: 1, background: [0; 3], gif_frames }, |_, _| {
                panic!("no frame may be decoded")
            })
            .unwrap_err();
            assert_eq!(err.kind, RejectionKind::TooLarge, "{err:?}");
        }
    }
}
