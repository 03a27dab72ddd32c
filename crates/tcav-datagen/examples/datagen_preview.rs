//! Writes a small preview of the built-in dataset, to look at what the
//! generator draws:
//! `cargo run -p tcav-datagen --example datagen_preview -- OUT [SEED] [COLOUR_RELIANCE] [CAPTION_PROBABILITY] [IMAGE_SIZE]`.
//!
//! Besides the dataset in `OUT/data`, it writes the colour counterfactuals
//! (and, with a caption probability, the caption-blanked ones) and
//! `OUT/sheet.png`: one row per class image, showing the original, its
//! colour counterfactual and its caption-blanked counterfactual, then the
//! caption concept images, all enlarged four times.

use std::path::{Path, PathBuf};

use image::{RgbImage, imageops};
use tcav_datagen::{CaptionConfig, Cue, DatagenConfig, generate, generate_counterfactuals};

const ZOOM: u32 = 4;
const GAP: u32 = 4;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: datagen_preview OUT_FOLDER [SEED] [COLOUR_RELIANCE] [CAPTION_PROBABILITY] [IMAGE_SIZE]";
    let out = PathBuf::from(args.next().ok_or(usage)?);
    let seed = args.next().map(|s| s.parse()).transpose()?.unwrap_or(0);
    let colour_reliance = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1.0);
    let caption = args.next().map(|s| s.parse::<f64>()).transpose()?.map(CaptionConfig::with_probability);
    let image_size = args.next().map(|s| s.parse()).transpose()?.unwrap_or(128);
    let config = DatagenConfig {
        seed,
        image_size,
        images_per_class: 3,
        concept_images: 3,
        random_sets: 2,
        random_set_images: 3,
        colour_reliance,
        caption,
    };
    let dataset = generate(&config, &out.join("data"))?;
    for (name, dir) in dataset.classes.iter().chain(&dataset.concepts).chain(&dataset.random_sets) {
        println!("{name}: {}", dir.display());
    }
    let recoloured = generate_counterfactuals(&config, Cue::Colour, &out.join("no-colour"))?;
    let blanked = match config.caption {
        Some(_) => Some(generate_counterfactuals(&config, Cue::Caption, &out.join("no-caption"))?),
        None => None,
    };

    let mut rows: Vec<Vec<PathBuf>> = Vec::new();
    for (i, record) in dataset.class_images.iter().enumerate() {
        let mut row =
            vec![out.join("data").join(&record.file), out.join("no-colour").join(&recoloured.class_images[i].file)];
        if let Some(blanked) = &blanked {
            row.push(out.join("no-caption").join(&blanked.class_images[i].file));
        }
        println!(
            "{}: colour {} -> {}, caption {:?} (agrees {:?})",
            record.file,
            record.body_colour,
            recoloured.class_images[i].body_colour,
            record.caption,
            record.caption_agrees
        );
        rows.push(row);
    }
    for (name, dir) in &dataset.concepts {
        if name.as_str().starts_with("caption_") {
            rows.push((0..config.concept_images).map(|i| dir.join(format!("{name}_{i:04}.png"))).collect());
        }
    }
    let sheet = contact_sheet(&rows, image_size)?;
    sheet.save(out.join("sheet.png"))?;
    println!("sheet: {}", out.join("sheet.png").display());
    Ok(())
}

fn contact_sheet(rows: &[Vec<PathBuf>], size: u32) -> Result<RgbImage, Box<dyn std::error::Error>> {
    let cell = size * ZOOM + GAP;
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0) as u32;
    let mut sheet = RgbImage::from_pixel(columns * cell, rows.len() as u32 * cell, image::Rgb([255, 255, 255]));
    for (r, row) in rows.iter().enumerate() {
        for (c, path) in row.iter().enumerate() {
            let image = load(path)?;
            let big = imageops::resize(&image, size * ZOOM, size * ZOOM, imageops::FilterType::Nearest);
            imageops::replace(&mut sheet, &big, i64::from(c as u32 * cell), i64::from(r as u32 * cell));
        }
    }
    Ok(sheet)
}

fn load(path: &Path) -> Result<RgbImage, Box<dyn std::error::Error>> {
    Ok(image::open(path)?.to_rgb8())
}
