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

/// One PNG chunk: length, type, data, CRC.
fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&u32::try_from(data.len()).expect("small chunk").to_be_bytes());
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    out.extend_from_slice(&body);
    out.extend_from_slice(&crc32(&body).to_be_bytes());
}

/// A palette (colour type 3) PNG built by hand, since the `image` crate's
/// encoder never writes one: `indices` is row-major, one byte per pixel.
pub(crate) fn palette_png(width: u32, height: u32, palette: &[[u8; 3]], indices: &[u8]) -> Vec<u8> {
    let mut raw = Vec::new();
    for row in indices.chunks(width as usize) {
        raw.push(0); // filter type "none"
        raw.extend_from_slice(row);
    }
    // A zlib stream of one stored (uncompressed) deflate block.
    let len = u16::try_from(raw.len()).expect("a small test image");
    let mut zlib = vec![0x78, 0x01, 0x01];
    zlib.extend_from_slice(&len.to_le_bytes());
    zlib.extend_from_slice(&(!len).to_le_bytes());
    zlib.extend_from_slice(&raw);
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in &raw {
        a = (a + u32::from(byte)) % 65521;
        b = (b + a) % 65521;
    }
    zlib.extend_from_slice(&((b << 16) | a).to_be_bytes());

    let mut png = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 3, 0, 0, 0]);
    png_chunk(&mut png, b"IHDR", &ihdr);
    png_chunk(&mut png, b"PLTE", &palette.concat());
    png_chunk(&mut png, b"IDAT", &zlib);
    png_chunk(&mut png, b"IEND", &[]);
    png
}

/// A valid small PNG whose header claims `width` × `height` pixels (the CRC
/// is fixed up, so only the size gives it away).
pub(crate) fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut png = encode(&DynamicImage::ImageRgb8(gradient_rgb(40, 40)), ImageFormat::Png);
    png[16..20].copy_from_slice(&width.to_be_bytes());
    png[20..24].copy_from_slice(&height.to_be_bytes());
    let crc = crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    png
}

/// A CMYK JPEG (4 components, Adobe APP14 marker, inverted values as
/// Photoshop writes them), every pixel `cmyk` except a gradient band in
/// the bottom half so that the image is not uniform.
pub(crate) fn cmyk_jpeg(width: u16, height: u16, cmyk: [u8; 4]) -> Vec<u8> {
    let mut data = Vec::new();
    for y in 0..height {
        for x in 0..width {
            if y < height / 2 {
                data.extend_from_slice(&cmyk);
            } else {
                data.extend_from_slice(&[0, 0, 0, (u32::from(x) * 255 / u32::from(width)) as u8]);
            }
        }
    }
    let mut bytes = Vec::new();
    jpeg_encoder::Encoder::new(&mut bytes, 95)
        .encode(&data, width, height, jpeg_encoder::ColorType::Cmyk)
        .expect("encoding a CMYK test JPEG");
    bytes
}

/// An animated GIF whose frame `i` is `frames[i]` (RGBA), each shown for
/// 100 ms.
pub(crate) fn animated_gif(frames: &[image::RgbaImage]) -> Vec<u8> {
    use image::codecs::gif::GifEncoder;
    let mut bytes = Vec::new();
    {
        let mut encoder = GifEncoder::new(&mut bytes);
        for frame in frames {
            let delay = image::Delay::from_numer_denom_ms(100, 1);
            encoder
                .encode_frame(image::Frame::from_parts(frame.clone(), 0, 0, delay))
                .expect("encoding a test GIF frame");
        }
    }
    bytes
}
