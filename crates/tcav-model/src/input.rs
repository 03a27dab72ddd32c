//! Turning preprocessed images into input tensors.

use std::path::{Path, PathBuf};

use tch::{Device, Kind, Tensor};

use crate::error::{ModelError, Result};

/// Decodes preprocessed images into a float tensor `[N, 3, size, size]`
/// scaled to `[-0.5, 0.5]`, on `device`.
///
/// Every image must already be `size`×`size`: the model never resizes, so
/// that what it sees is exactly what preprocessing wrote and recorded.
pub fn load_images(paths: &[PathBuf], size: u32, device: Device) -> Result<Tensor> {
    let mut bytes = Vec::with_capacity(paths.len() * (size as usize).pow(2) * 3);
    for path in paths {
        bytes.extend_from_slice(&decode_rgb(path, size)?);
    }
    images_to_tensor(&bytes, paths.len(), size, device)
}

/// Builds the input tensor from `count` RGB8 images of `size`×`size`, laid
/// out one after another (height, width, channel).
pub fn images_to_tensor(rgb: &[u8], count: usize, size: u32, device: Device) -> Result<Tensor> {
    let side = i64::from(size);
    let expected = count * (size as usize).pow(2) * 3;
    if rgb.len() != expected {
        return Err(ModelError::InvalidSpec(format!(
            "{} bytes of pixels given for {count} images of {size}x{size} (expected {expected})",
            rgb.len()
        )));
    }
    let hwc = Tensor::f_from_data_size(rgb, &[count as i64, side, side, 3], Kind::Uint8)
        .map_err(ModelError::torch("building the input tensor"))?;
    let nchw = hwc.permute([0, 3, 1, 2]).to_kind(Kind::Float) / 255.0 - 0.5;
    Ok(nchw.to_device(device))
}

fn decode_rgb(path: &Path, size: u32) -> Result<Vec<u8>> {
    let image = image::ImageReader::open(path)
        .and_then(|r| r.with_guessed_format())
        .map_err(|e| ModelError::Image { path: path.into(), reason: format!("cannot be read ({e})") })?
        .decode()
        .map_err(|e| ModelError::Image {
            path: path.into(),
            reason: format!("does not decode ({e}); delete it or rerun preprocessing"),
        })?
        .into_rgb8();
    if image.width() != size || image.height() != size {
        return Err(ModelError::Image {
            path: path.into(),
            reason: format!(
                "is {}x{} but the model expects {size}x{size}; rerun preprocessing with size = {size}",
                image.width(),
                image.height()
            ),
        });
    }
    Ok(image.into_raw())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixels_map_to_channels_first_and_centred_range() {
        // Two 2x2 images: first all red, second all blue.
        let mut rgb = Vec::new();
        rgb.extend([255, 0, 0].repeat(4));
        rgb.extend([0, 0, 255].repeat(4));
        let t = images_to_tensor(&rgb, 2, 2, Device::Cpu).unwrap();
        assert_eq!(t.size(), [2, 3, 2, 2]);
        assert!((t.double_value(&[0, 0, 1, 1]) - 0.5).abs() < 1e-6);
        assert!((t.double_value(&[0, 2, 0, 0]) + 0.5).abs() < 1e-6);
        assert!((t.double_value(&[1, 2, 0, 1]) - 0.5).abs() < 1e-6);
    }

    #[test]
    fn undecodable_and_wrong_size_images_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.png");
        std::fs::write(&junk, b"not a png").unwrap();
        let err = load_images(&[junk], 8, Device::Cpu).unwrap_err().to_string();
        assert!(err.contains("junk.png") && err.contains("does not decode"), "{err}");

        let small = dir.path().join("small.png");
        image::RgbImage::new(4, 4).save(&small).unwrap();
        let err = load_images(&[small], 8, Device::Cpu).unwrap_err().to_string();
        assert!(err.contains("small.png") && err.contains("4x4") && err.contains("size = 8"), "{err}");
    }
}
