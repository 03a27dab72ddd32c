//! Writes a small preview of the built-in dataset, to look at what the
//! generator draws: `cargo run -p tcav-datagen --example datagen_preview -- OUT [SEED] [COLOUR_RELIANCE]`.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(args.next().ok_or("usage: preview OUT_FOLDER [SEED] [COLOUR_RELIANCE]")?);
    let seed = args.next().map(|s| s.parse()).transpose()?.unwrap_or(0);
    let colour_reliance = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1.0);
    let config = tcav_datagen::DatagenConfig {
        seed,
        images_per_class: 3,
        concept_images: 3,
        random_sets: 2,
        random_set_images: 3,
        colour_reliance,
        ..Default::default()
    };
    let dataset = tcav_datagen::generate(&config, &out)?;
    for (name, dir) in dataset.classes.iter().chain(&dataset.concepts).chain(&dataset.random_sets) {
        println!("{name}: {}", dir.display());
    }
    Ok(())
}
