//! The seed's own experiment, `datasets/pokemon/`, run end to end (crawl,
//! preprocessing, training, TCAV, report) against a loopback server that
//! answers the Openverse and Wikimedia Commons APIs with images drawn here.
//!
//! CI has no internet, so this is where the shipped `experiment.toml` and
//! `crawl.toml` are shown to work: both are copied, and only what must
//! change for the loopback server and CI's time budget is rewritten (see
//! [`rewrite_for_the_fixture`]). The numbers mean nothing (the images are
//! blobs); the test checks that every stage runs on the shipped definition
//! and that every set, class, concept and result row is there.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Instant;

use tcav_crawl::fixture::SearchFixture;
use tcav_experiment::DataConfig;
use tcav_experiment::{ExperimentConfig, Paths, run_experiment};
use tcav_tests::temp_dir;
use tch::Device;

const FAMILIES: [&str; 3] = ["scorbunny", "sobble", "grookey"];
const COLOURS: [&str; 6] = ["red", "blue", "green", "yellow", "white", "black"];
/// Images per class and per concept or random set in the test's copy.
const CLASS_IMAGES: i64 = 24;
const SET_IMAGES: i64 = 8;
/// The shipped filters keep images with a shorter side of 128 or more.
const SIDE: u32 = 128;

/// A tiny deterministic generator per (query, index): each image differs.
struct Dice([u8; 32], usize);

impl Dice {
    fn new(query: &str, index: usize) -> Dice {
        Dice(*blake3::hash(format!("{query}#{index}").as_bytes()).as_bytes(), 0)
    }

    fn next(&mut self) -> u8 {
        self.1 += 1;
        if self.1 == 32 {
            self.0 = *blake3::hash(&self.0).as_bytes();
            self.1 = 0;
        }
        self.0[self.1]
    }

    /// A value in `lo..lo + span`.
    fn range(&mut self, lo: u32, span: u32) -> u32 {
        lo + u32::from(self.next()) % span
    }
}

fn colour_of(name: &str) -> Option<[u8; 3]> {
    Some(match name {
        "red" => [210, 30, 30],
        "blue" => [30, 60, 210],
        "green" => [40, 170, 50],
        "yellow" => [235, 215, 40],
        "white" => [245, 245, 245],
        "black" => [15, 15, 15],
        _ => return None,
    })
}

fn jitter(c: [u8; 3], amount: u8, dice: &mut Dice) -> image::Rgb<u8> {
    image::Rgb(c.map(|v| v.saturating_add(dice.next() % amount).saturating_sub(amount / 2)))
}

/// The image the fixture serves as result `index` for `query`: a creature
/// in its family's colours for a class query, a noisy texture of the colour
/// for a colour query, and shapes in random colours for everyday queries.
fn draw(query: &str, index: usize) -> image::RgbImage {
    let mut dice = Dice::new(query, index);
    let family = [("Scorbunny", [235, 70, 50]), ("Sobble", [60, 130, 230]), ("Grookey", [90, 180, 60])]
        .into_iter()
        .find(|(name, _)| query.contains(name));
    if let Some((_, body)) = family {
        let background = [dice.range(150, 100) as u8, dice.range(150, 100) as u8, dice.range(150, 100) as u8];
        let (cx, cy) = (dice.range(44, 40) as f32, dice.range(44, 40) as f32);
        let (rx, ry) = (dice.range(22, 18) as f32, dice.range(26, 18) as f32);
        let mut img = image::RgbImage::new(SIDE, SIDE);
        for (x, y, pixel) in img.enumerate_pixels_mut() {
            let (dx, dy) = ((x as f32 - cx) / rx, (y as f32 - cy) / ry);
            let eye = ((x as f32 - cx - rx / 3.0).powi(2) + (y as f32 - cy + ry / 3.0).powi(2)) < 9.0;
            *pixel = match (dx * dx + dy * dy < 1.0, eye) {
                (true, true) => image::Rgb([20, 20, 20]),
                (true, false) => jitter(body, 24, &mut dice),
                (false, _) => jitter(background, 16, &mut dice),
            };
        }
        return img;
    }
    if let Some(colour) = query.split_whitespace().next().and_then(colour_of) {
        let period = dice.range(6, 20);
        let tilt = dice.range(0, 3);
        return image::RgbImage::from_fn(SIDE, SIDE, |x, y| {
            let stripe = ((x + tilt * y) / period).is_multiple_of(2);
            jitter(colour, if stripe { 40 } else { 70 }, &mut dice)
        });
    }
    let [a, b] = [[dice.next(), dice.next(), dice.next()], [dice.next(), dice.next(), dice.next()]];
    let mut img = image::RgbImage::from_fn(SIDE, SIDE, |_, y| {
        let t = y as f32 / SIDE as f32;
        image::Rgb([0, 1, 2].map(|i| (f32::from(a[i]) * (1.0 - t) + f32::from(b[i]) * t) as u8))
    });
    for _ in 0..dice.range(2, 4) {
        let (x0, y0, w, h) = (dice.range(0, 96), dice.range(0, 96), dice.range(12, 40), dice.range(12, 40));
        let fill = [dice.next(), dice.next(), dice.next()];
        for y in y0..(y0 + h).min(SIDE) {
            for x in x0..(x0 + w).min(SIDE) {
                img.put_pixel(x, y, image::Rgb(fill));
            }
        }
    }
    img
}

fn read_toml(path: &Path) -> toml::Table {
    toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Rewrites the copies for the loopback server and CI's budget; everything
/// else is the shipped file.
fn rewrite_for_the_fixture(crawl: &mut toml::Table, experiment: &mut toml::Table, server: &SearchFixture) {
    // Where the sources search: the loopback server instead of the public
    // APIs (each source keeps its kind and its other settings).
    let mut sources = crawl["sources"].as_array().unwrap().clone();
    for source in &mut sources {
        let source = source.as_table_mut().unwrap();
        let base = match source["kind"].as_str().unwrap() {
            "openverse" => server.openverse_base_url(),
            "commons" => server.commons_base_url(),
            other => panic!("the fixture answers Openverse and Commons only, not {other}"),
        };
        source.insert("base_url".into(), base.into());
    }
    crawl.insert("sources".into(), sources.into());
    // The shipped placeholder contact is refused on purpose (Commons'
    // policy); the test has a real one for its own server.
    crawl.insert("user_agent".into(), "tcav-rs-tests/0.1 (mailto:tests@localhost)".into());
    // CI's budget: no politeness delay against our own server, fewer
    // images, smaller images, fewer epochs.
    let options = crawl["options"].as_table_mut().unwrap();
    options.insert("per_host_rate".into(), 1000.into());
    options.insert("concurrency".into(), 8.into());
    for set in crawl["sets"].as_array_mut().unwrap() {
        let set = set.as_table_mut().unwrap();
        let class = FAMILIES.contains(&set["name"].as_str().unwrap());
        set.insert("max_num".into(), (if class { CLASS_IMAGES } else { SET_IMAGES }).into());
    }
    experiment
        .entry("preprocess")
        .or_insert(toml::Table::new().into())
        .as_table_mut()
        .unwrap()
        .insert("size".into(), 32.into());
    experiment
        .entry("train")
        .or_insert(toml::Table::new().into())
        .as_table_mut()
        .unwrap()
        .insert("epochs".into(), 3.into());
}

/// The shipped Pokémon experiment and crawl definition run end to end
/// against the loopback search server: the crawl fills every set, and the
/// report has a row for every (class, layer, concept).
#[test]
fn the_shipped_pokemon_experiment_runs_against_the_fixture_server() {
    let started = Instant::now();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../datasets/pokemon");
    let server = SearchFixture::start(40, draw);
    let work = temp_dir();
    let dataset = work.path().join("pokemon");
    std::fs::create_dir_all(&dataset).unwrap();
    let mut crawl = read_toml(&shipped.join("crawl.toml"));
    let mut experiment = read_toml(&shipped.join("experiment.toml"));
    rewrite_for_the_fixture(&mut crawl, &mut experiment, &server);
    std::fs::write(dataset.join("crawl.toml"), toml::to_string(&crawl).unwrap()).unwrap();
    std::fs::write(dataset.join("experiment.toml"), toml::to_string(&experiment).unwrap()).unwrap();

    // The real loader: it resolves `crawl` and the folders against the copy.
    let config = ExperimentConfig::load(&dataset.join("experiment.toml")).unwrap();
    let DataConfig::Folders { classes, concepts, random_sets, crawl: Some(_) } = &config.data else {
        panic!("the Pokémon experiment reads crawled folders: {:?}", config.data);
    };
    let names = |sets: &BTreeMap<String, _>| sets.keys().cloned().collect::<BTreeSet<String>>();
    assert_eq!(names(classes), FAMILIES.map(String::from).into());
    assert_eq!(names(concepts), COLOURS.map(String::from).into());
    assert!(random_sets.len() >= 2, "{random_sets:?}");

    let paths = Paths { store: work.path().join("store"), runs: work.path().join("runs") };
    let outcome = run_experiment(&config, &paths, Device::Cpu).unwrap();

    // The crawl filled every set, each with a manifest; a random set's
    // images came from several of its everyday queries.
    let raw = dataset.join("raw");
    for set in crawl["sets"].as_array().unwrap() {
        let name = set["name"].as_str().unwrap();
        let dir = raw.join(name);
        let images = std::fs::read_dir(&dir)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|ext| ext == "png"));
        assert_eq!(images.count() as i64, set["max_num"].as_integer().unwrap(), "{name}");
        let manifest = std::fs::read_to_string(dir.join(tcav_crawl::MANIFEST_FILE)).unwrap();
        let entries: Vec<tcav_crawl::ManifestEntry> =
            manifest.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
        assert!(entries.iter().all(|e| e.licence.is_some() && e.creator.is_some()), "{name}: provenance");
        if let Some(queries) = set.get("queries").and_then(|q| q.as_array()) {
            let used: BTreeSet<&str> = entries.iter().map(|e| e.query.as_str()).collect();
            assert!(used.len() >= 5, "{name} drew on only {used:?}");
            assert!(used.iter().all(|q| queries.iter().any(|s| s.as_str() == Some(q))), "{name}: {used:?}");
        }
    }

    let report = &outcome.report;
    let layers: Vec<String> = config.tcav.layers.clone();
    assert_eq!(report.layers, layers);
    assert_eq!(report.classes.iter().cloned().collect::<BTreeSet<_>>(), FAMILIES.map(String::from).into());
    for class in FAMILIES {
        for layer in &layers {
            for concept in COLOURS {
                let rows =
                    report.results.iter().filter(|r| r.class == class && &r.layer == layer && r.concept == concept);
                assert_eq!(rows.count(), 1, "{class}/{layer}/{concept}");
            }
        }
    }
    assert!(outcome.dir.join("report.json").is_file());
    drop(server);
    eprintln!("the Pokémon experiment ran against the fixture in {:.1?}", started.elapsed());
}
