//! From an upright RGB image of any shape to a `size` × `size` square.
//!
//! Resizing uses `fast_image_resize`, whose SIMD convolutions on 8-bit
//! pixels are about ten times faster than the `image` crate's (which go
//! through 32-bit floats), and which crops while it resizes, so the centre
//! square is never copied out first.

use fast_image_resize::{ResizeOptions, Resizer};
use image::{RgbImage, imageops};

use crate::config::{CropMode, ResizeFilter};

/// The square output and the luma standard deviation of the image content in
/// it (padding excluded, so padding cannot make a blank image look varied).
pub(crate) struct Squared {
    pub image: RgbImage,
    pub content_luma_std: f64,
}

/// Crops or pads `image` to a square and resizes it to `size`.
pub(crate) fn square(image: &RgbImage, size: u32, crop: CropMode, filter: ResizeFilter) -> Squared {
    let (width, height) = image.dimensions();
    match crop {
        CropMode::CenterSquare => {
            let side = width.min(height);
            let window = ((width - side) / 2, (height - side) / 2, side, side);
            let resized = resize(image, window, size, size, filter);
            let content_luma_std = luma_std(&resized);
            Squared { image: resized, content_luma_std }
        }
        CropMode::PadSquare { colour } => {
            // Scale the longer side to `size` first, then pad: padding at full
            // resolution would cost more and blur the content edge.
            let longer = u64::from(width.max(height));
            let scaled = |side: u32| {
                let exact = (u64::from(side) * u64::from(size) * 2 + longer) / (2 * longer);
                // Between 1 and `size`, so it fits in u32.
                u32::try_from(exact.clamp(1, u64::from(size))).unwrap_or(size)
            };
            let (new_width, new_height) = (scaled(width), scaled(height));
            let resized = resize(image, (0, 0, width, height), new_width, new_height, filter);
            let content_luma_std = luma_std(&resized);
            let mut canvas = RgbImage::from_pixel(size, size, image::Rgb(colour));
            imageops::replace(
                &mut canvas,
                &resized,
                i64::from((size - new_width) / 2),
                i64::from((size - new_height) / 2),
            );
            Squared { image: canvas, content_luma_std }
        }
    }
}

/// Resizes the `(x, y, width, height)` window of `image` to `width` × `height`.
fn resize(image: &RgbImage, window: (u32, u32, u32, u32), width: u32, height: u32, filter: ResizeFilter) -> RgbImage {
    let (x, y, w, h) = window;
    if (w, h) == (width, height) {
        return imageops::crop_imm(image, x, y, w, h).to_image();
    }
    let mut out = RgbImage::new(width, height);
    let options = ResizeOptions::new().resize_alg(filter.to_fast_image_resize()).crop(
        f64::from(x),
        f64::from(y),
        f64::from(w),
        f64::from(h),
    );
    match Resizer::new().resize(image, &mut out, &options) {
        Ok(()) => out,
        // Only reachable with a zero-sized image, which decoding never
        // yields; fall back to the slower resizer rather than panic.
        Err(_) => imageops::resize(&imageops::crop_imm(image, x, y, w, h).to_image(), width, height, filter.to_image()),
    }
}

/// Side of the colour thumbnails compared to confirm near duplicates.
pub(crate) const THUMBNAIL_SIDE: u32 = 16;

/// The mean colour of each of the 16 × 16 blocks of `image` (a box filter),
/// as 16 × 16 × 3 bytes.
pub(crate) fn colour_thumbnail(image: &RgbImage) -> Vec<u8> {
    let mut out = RgbImage::new(THUMBNAIL_SIDE, THUMBNAIL_SIDE);
    let options =
        ResizeOptions::new().resize_alg(fast_image_resize::ResizeAlg::Convolution(fast_image_resize::FilterType::Box));
    match Resizer::new().resize(image, &mut out, &options) {
        Ok(()) => out.into_raw(),
        Err(_) => imageops::thumbnail(image, THUMBNAIL_SIDE, THUMBNAIL_SIDE).into_raw(),
    }
}

/// Mean absolute difference between two equally sized byte slices.
pub(crate) fn mean_abs_difference(a: &[u8], b: &[u8]) -> f64 {
    if a.is_empty() || a.len() != b.len() {
        return f64::INFINITY;
    }
    let sum: u64 = a.iter().zip(b).map(|(x, y)| u64::from(x.abs_diff(*y))).sum();
    sum as f64 / a.len() as f64
}

/// Population standard deviation of Rec. 709 luma, on the 0–255 scale.
/// Two passes, so that a uniform image gives exactly 0 instead of the
/// rounding residue of `E[x²] - E[x]²`.
pub(crate) fn luma_std(image: &RgbImage) -> f64 {
    let n = f64::from(image.width()) * f64::from(image.height());
    if n == 0.0 {
        return 0.0;
    }
    let luma = |p: &image::Rgb<u8>| 0.2126 * f64::from(p[0]) + 0.7152 * f64::from(p[1]) + 0.0722 * f64::from(p[2]);
    let mean = image.pixels().map(luma).sum::<f64>() / n;
    let variance = image.pixels().map(|p| (luma(p) - mean).powi(2)).sum::<f64>() / n;
    variance.sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    const RED: Rgb<u8> = Rgb([255, 0, 0]);
    const BLUE: Rgb<u8> = Rgb([0, 0, 255]);

    /// 40 × 20, red left half, blue right half.
    fn halves() -> RgbImage {
        RgbImage::from_fn(40, 20, |x, _| if x < 20 { RED } else { BLUE })
    }

    #[test]
    fn centre_crop_keeps_the_middle_square() {
        let out = square(&halves(), 8, CropMode::CenterSquare, ResizeFilter::Nearest).image;
        assert_eq!(out.dimensions(), (8, 8));
        for y in 0..8 {
            for x in 0..8 {
                assert_eq!(out.get_pixel(x, y), if x < 4 { &RED } else { &BLUE }, "pixel ({x}, {y})");
            }
        }
        // Tall images lose their top and bottom.
        let tall = RgbImage::from_fn(10, 30, |_, y| if y < 10 { RED } else { BLUE });
        let out = square(&tall, 10, CropMode::CenterSquare, ResizeFilter::Nearest).image;
        assert!(out.pixels().all(|p| p == &BLUE));
    }

    #[test]
    fn pad_keeps_the_aspect_ratio() {
        let grey = [128, 128, 128];
        let out = square(&halves(), 8, CropMode::PadSquare { colour: grey }, ResizeFilter::Nearest).image;
        assert_eq!(out.dimensions(), (8, 8));
        // 40 × 20 scales to 8 × 4, centred: rows 2..6 hold the image.
        for y in 0..8 {
            for x in 0..8 {
                let expected = if !(2..6).contains(&y) {
                    &Rgb(grey)
                } else if x < 4 {
                    &RED
                } else {
                    &BLUE
                };
                assert_eq!(out.get_pixel(x, y), expected, "pixel ({x}, {y})");
            }
        }
        // A 1000 × 1 sliver still keeps one row.
        let sliver = RgbImage::from_pixel(1000, 1, RED);
        let out = square(&sliver, 8, CropMode::PadSquare { colour: [0; 3] }, ResizeFilter::Triangle).image;
        // Its one row lands at y = (8 - 1) / 2.
        assert_eq!(out.get_pixel(3, 3), &RED);
        assert_eq!(out.get_pixel(3, 4), &Rgb([0, 0, 0]));
    }

    #[test]
    fn size_and_filter_are_honoured() {
        let img = crate::fixtures::gradient_rgb(50, 30);
        let mut outputs = Vec::new();
        for filter in [ResizeFilter::Nearest, ResizeFilter::Triangle, ResizeFilter::Lanczos3] {
            for size in [7, 64] {
                let out = square(&img, size, CropMode::CenterSquare, filter).image;
                assert_eq!(out.dimensions(), (size, size));
                if size == 7 {
                    outputs.push(out);
                }
            }
        }
        assert_ne!(outputs[0], outputs[1], "nearest and bilinear should differ");
        assert_ne!(outputs[1], outputs[2], "bilinear and Lanczos should differ");
        // Nearest on an exact 2:1 shrink picks source pixels.
        let img = RgbImage::from_fn(4, 4, |x, y| Rgb([x as u8 * 60, y as u8 * 60, 0]));
        let out = square(&img, 2, CropMode::CenterSquare, ResizeFilter::Nearest).image;
        assert!(out.pixels().all(|p| img.pixels().any(|q| q == p)));
    }

    #[test]
    fn luma_std_measures_variation_of_content_only() {
        assert!(luma_std(&RgbImage::from_pixel(5, 5, RED)) < 1e-9);
        let checker = RgbImage::from_fn(4, 4, |x, y| if (x + y) % 2 == 0 { Rgb([0; 3]) } else { Rgb([255; 3]) });
        assert!((luma_std(&checker) - 127.5).abs() < 1e-9);
        // A uniform image padded with another colour is still uniform content.
        let padded = square(
            &RgbImage::from_pixel(40, 20, RED),
            8,
            CropMode::PadSquare { colour: [0; 3] },
            ResizeFilter::Lanczos3,
        );
        assert!(padded.content_luma_std < 1e-9);
        assert!(luma_std(&padded.image) > 10.0);
    }
}
