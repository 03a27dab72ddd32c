//! Recognising image files by their first bytes.
//!
//! Servers often lie about content types: a missing image becomes an HTML
//! error page served as `image/jpeg`, and a PNG arrives as
//! `application/octet-stream`. So the crawler trusts only the file's
//! signature (its magic bytes), and names the stored file after it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An image format the crawler can store, named by its media type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ImageType {
    /// JPEG, stored as `.jpg`.
    #[serde(rename = "image/jpeg")]
    Jpeg,
    /// PNG.
    #[serde(rename = "image/png")]
    Png,
    /// GIF.
    #[serde(rename = "image/gif")]
    Gif,
    /// WebP.
    #[serde(rename = "image/webp")]
    Webp,
    /// Windows bitmap.
    #[serde(rename = "image/bmp")]
    Bmp,
}

impl ImageType {
    /// Every type, in the order of the default filter.
    pub const ALL: [ImageType; 5] = [ImageType::Jpeg, ImageType::Png, ImageType::Gif, ImageType::Webp, ImageType::Bmp];

    /// The media type, for example `image/jpeg`.
    pub fn mime(self) -> &'static str {
        match self {
            ImageType::Jpeg => "image/jpeg",
            ImageType::Png => "image/png",
            ImageType::Gif => "image/gif",
            ImageType::Webp => "image/webp",
            ImageType::Bmp => "image/bmp",
        }
    }

    /// The file extension the image is stored under, lower case, no dot.
    pub fn extension(self) -> &'static str {
        match self {
            ImageType::Jpeg => "jpg",
            ImageType::Png => "png",
            ImageType::Gif => "gif",
            ImageType::Webp => "webp",
            ImageType::Bmp => "bmp",
        }
    }

    /// The type whose stored extension is `ext`, if any.
    pub fn from_extension(ext: &str) -> Option<ImageType> {
        ImageType::ALL.into_iter().find(|t| t.extension() == ext)
    }

    /// The type a media type names (parameters and case ignored; `image/jpg`
    /// and `image/x-ms-bmp` are accepted as the aliases servers send).
    pub fn from_mime(mime: &str) -> Option<ImageType> {
        let essence = mime.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        match essence.as_str() {
            "image/jpg" | "image/pjpeg" => Some(ImageType::Jpeg),
            "image/x-ms-bmp" | "image/x-bmp" => Some(ImageType::Bmp),
            other => ImageType::ALL.into_iter().find(|t| t.mime() == other),
        }
    }

    fn format(self) -> image::ImageFormat {
        match self {
            ImageType::Jpeg => image::ImageFormat::Jpeg,
            ImageType::Png => image::ImageFormat::Png,
            ImageType::Gif => image::ImageFormat::Gif,
            ImageType::Webp => image::ImageFormat::WebP,
            ImageType::Bmp => image::ImageFormat::Bmp,
        }
    }
}

/// Width and height from the image's header, without decoding the pixels.
///
/// A file with the right signature but an unreadable header (a cut-off or
/// mangled file) fails here, with the decoder's complaint.
pub fn dimensions(bytes: &[u8], image_type: ImageType) -> Result<(u32, u32), String> {
    image::ImageReader::with_format(std::io::Cursor::new(bytes), image_type.format())
        .into_dimensions()
        .map_err(|e| format!("the {image_type} header cannot be read: {e}"))
}

impl fmt::Display for ImageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.mime())
    }
}

/// The image type whose signature `bytes` start with, if any.
pub fn sniff(bytes: &[u8]) -> Option<ImageType> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(ImageType::Jpeg)
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(ImageType::Png)
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some(ImageType::Gif)
    } else if bytes.len() >= 12 && bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WEBP" {
        Some(ImageType::Webp)
    } else if is_bmp(bytes) {
        Some(ImageType::Bmp)
    } else {
        None
    }
}

/// `BM` alone is too weak a signature (any text starting "BM" would pass),
/// so also require one of the known DIB header sizes.
fn is_bmp(bytes: &[u8]) -> bool {
    if bytes.len() < 18 || !bytes.starts_with(b"BM") {
        return false;
    }
    let dib = u32::from_le_bytes([bytes[14], bytes[15], bytes[16], bytes[17]]);
    matches!(dib, 12 | 40 | 52 | 56 | 64 | 108 | 124)
}

/// A short description of bytes that are not an image, for the manifest.
pub fn describe_non_image(bytes: &[u8]) -> String {
    let text = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let start = text.iter().position(|b| !b.is_ascii_whitespace()).map_or(&[][..], |i| &text[i..]);
    let head: Vec<u8> = start.iter().take(16).map(u8::to_ascii_lowercase).collect();
    if head.starts_with(b"<!doctype html") || head.starts_with(b"<html") {
        "the content is an HTML page, not an image".to_owned()
    } else if head.starts_with(b"<?xml") || head.starts_with(b"<svg") {
        "the content is XML or SVG, which is not a supported raster image".to_owned()
    } else if head.starts_with(b"<") {
        "the content looks like HTML or XML, not an image".to_owned()
    } else if bytes.is_empty() {
        "the content is empty".to_owned()
    } else {
        let hex: Vec<String> = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
        format!("the content starts with bytes {} which match no supported image signature", hex.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(format: image::ImageFormat) -> Vec<u8> {
        let img = image::RgbImage::from_pixel(3, 2, image::Rgb([200, 30, 10]));
        let mut out = std::io::Cursor::new(Vec::new());
        image::DynamicImage::ImageRgb8(img).write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    #[test]
    fn real_encoded_images_are_recognised() {
        let cases = [
            (image::ImageFormat::Jpeg, ImageType::Jpeg),
            (image::ImageFormat::Png, ImageType::Png),
            (image::ImageFormat::Gif, ImageType::Gif),
            (image::ImageFormat::WebP, ImageType::Webp),
            (image::ImageFormat::Bmp, ImageType::Bmp),
        ];
        for (format, expected) in cases {
            assert_eq!(sniff(&encode(format)), Some(expected), "{format:?}");
        }
    }

    #[test]
    fn text_and_truncated_signatures_are_not_images() {
        for bytes in [
            &b"<!DOCTYPE html><html><body>Not found</body></html>"[..],
            b"BMW is a car maker, not a bitmap",
            b"RIFF\0\0\0\0WAVEfmt ",
            b"\x89PNG",
            b"",
        ] {
            assert_eq!(sniff(bytes), None, "{:?}", String::from_utf8_lossy(bytes));
        }
    }

    #[test]
    fn non_images_are_described_so_a_person_can_tell_why() {
        assert!(describe_non_image(b"\xEF\xBB\xBF\n  <!doctype HTML>").contains("HTML page"));
        assert!(describe_non_image(b"<svg xmlns=").contains("SVG"));
        assert!(describe_non_image(b"").contains("empty"));
        assert!(describe_non_image(&[0, 1, 2]).contains("00 01 02"));
    }

    #[test]
    fn dimensions_come_from_headers_and_broken_headers_are_errors() {
        let png = encode(image::ImageFormat::Png);
        assert_eq!(dimensions(&png, ImageType::Png), Ok((3, 2)));
        assert_eq!(dimensions(&encode(image::ImageFormat::Jpeg), ImageType::Jpeg), Ok((3, 2)));
        assert_eq!(dimensions(&encode(image::ImageFormat::WebP), ImageType::Webp), Ok((3, 2)));
        // The PNG signature with a truncated header.
        let err = dimensions(&png[..12], ImageType::Png).unwrap_err();
        assert!(err.contains("image/png header"), "{err}");
    }

    #[test]
    fn media_types_are_read_leniently() {
        assert_eq!(ImageType::from_mime("image/JPEG; charset=binary"), Some(ImageType::Jpeg));
        assert_eq!(ImageType::from_mime("image/jpg"), Some(ImageType::Jpeg));
        assert_eq!(ImageType::from_mime("image/webp"), Some(ImageType::Webp));
        assert_eq!(ImageType::from_mime("image/svg+xml"), None);
        assert_eq!(ImageType::from_mime("video/webm"), None);
    }

    #[test]
    fn media_types_round_trip_through_serde_and_extensions() {
        for t in ImageType::ALL {
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(json, format!("\"{}\"", t.mime()));
            assert_eq!(serde_json::from_str::<ImageType>(&json).unwrap(), t);
            assert_eq!(ImageType::from_extension(t.extension()), Some(t));
        }
        assert!(serde_json::from_str::<ImageType>("\"image/svg+xml\"").is_err());
    }
}
