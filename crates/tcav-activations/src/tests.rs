use super::*;
use std::path::Path;
use tcav_model::SimpleCnn;

const SIZE: u32 = 16;

fn model() -> SimpleCnn {
    tch::manual_seed(3);
    SimpleCnn::new(SimpleCnn::spec_for(vec!["a".into(), "b".into(), "c".into()], SIZE), Device::Cpu).unwrap()
}

fn images(dir: &Path, n: usize) -> Vec<ImageRef> {
    std::fs::create_dir_all(dir).unwrap();
    let paths: Vec<PathBuf> = (0..n)
        .map(|i| {
            let img = image::RgbImage::from_fn(SIZE, SIZE, |x, y| {
                let v = ((x * 31 + y * 17 + i as u32 * 53) % 251) as u8;
                image::Rgb([v, v.wrapping_mul(3), 255 - v])
            });
            let path = dir.join(format!("img{i}.png"));
            img.save(&path).unwrap();
            path
        })
        .collect();
    ImageRef::hash_all(&paths).unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn gradients_match_central_finite_differences_on_the_cnn() {
    // Double precision makes the check sharp: (h(a+εv) − h(a−εv)) / 2ε must
    // equal ∇h·v to within 1e-6 relative for every layer and class.
    let mut m = model();
    m.set_kind(Kind::Double);
    let x = Tensor::rand([5, 3, SIZE as i64, SIZE as i64], (Kind::Double, Device::Cpu)) - 0.5;
    let cache = ActivationCache::new(&m, KeyBuilder::new("m").finish(), ArtifactStore::new("unused"), 8);
    for layer in tcav_model::SimpleCnn::spec_for(vec![], SIZE).bottlenecks {
        let acts = m.bottleneck(&x, &layer).unwrap();
        for class in 0..3 {
            let grad = cache.batch_gradients(&x, &layer, class).unwrap();
            let v = Tensor::randn(acts.size(), (Kind::Double, Device::Cpu));
            let v = &v / v.norm();
            let eps = 1e-5;
            let plus = m.logits_from_bottleneck(&(&acts + &v * eps), &layer).unwrap().select(1, class as i64);
            let minus = m.logits_from_bottleneck(&(&acts - &v * eps), &layer).unwrap().select(1, class as i64);
            let numeric = (plus - minus) / (2.0 * eps);
            let analytic = (grad * v.flatten(1, -1)).sum_dim_intlist(1, false, Kind::Double);
            let err = (&numeric - &analytic).abs().max().double_value(&[]);
            let scale = analytic.abs().max().double_value(&[]).max(1e-3);
            assert!(err / scale < 1e-6, "layer {layer} class {class}: error {err} vs scale {scale}");
        }
    }
}

#[test]
fn batched_results_equal_per_image_results_and_are_cached() {
    let dir = tempfile::tempdir().unwrap();
    let imgs = images(dir.path(), 5);
    let m = model();
    let key = KeyBuilder::new("m").finish();
    let batched = ActivationCache::new(&m, key.clone(), ArtifactStore::new(dir.path().join("s1")), 4);
    let single = ActivationCache::new(&m, key.clone(), ArtifactStore::new(dir.path().join("s2")), 1);
    for layer in ["conv2", "dense"] {
        let a = batched.activations(layer, &imgs, "set").unwrap();
        let b = single.activations(layer, &imgs, "set").unwrap();
        assert_eq!((a.rows(), a.cols()), (5, b.cols()));
        assert!(max_abs_diff(a.as_slice(), b.as_slice()) < 1e-5);
        let ga = batched.logit_gradients(layer, "b", &imgs).unwrap();
        let gb = single.logit_gradients(layer, "b", &imgs).unwrap();
        assert!(max_abs_diff(ga.as_slice(), gb.as_slice()) < 1e-5);
    }
    // 2 layers x ceil(5/4) batches.
    assert_eq!(batched.backward_passes(), 4);
    assert_eq!(single.backward_passes(), 10);

    // A second request is served from the store with no pass at all.
    let before = batched.backward_passes();
    let again = batched.logit_gradients("dense", "b", &imgs).unwrap();
    assert_eq!(batched.backward_passes(), before);
    assert_eq!(again, batched.logit_gradients("dense", "b", &imgs).unwrap());

    // A set that overlaps one already computed only computes the new images.
    let more = images(&dir.path().join("more"), 7);
    let overlap: Vec<ImageRef> = imgs.iter().take(3).cloned().chain(more.iter().skip(5).cloned()).collect();
    let forward_before = batched.forward_passes();
    let overlapping = batched.activations("dense", &overlap, "overlap").unwrap();
    assert_eq!(batched.forward_passes(), forward_before + 1, "only the 2 new images are run, in one batch");
    let fresh = single.activations("dense", &overlap, "overlap").unwrap();
    assert!(max_abs_diff(overlapping.as_slice(), fresh.as_slice()) < 1e-5);

    // Another class, another model key or other images miss the cache.
    batched.logit_gradients("dense", "c", &imgs).unwrap();
    assert_eq!(batched.backward_passes(), before + 2);
    let other =
        ActivationCache::new(&m, KeyBuilder::new("other").finish(), ArtifactStore::new(dir.path().join("s1")), 4);
    other.logit_gradients("dense", "b", &imgs).unwrap();
    assert_eq!(other.backward_passes(), 2);
}

#[test]
fn unknown_layers_classes_and_bad_images_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let imgs = images(dir.path(), 2);
    let m = model();
    let cache = ActivationCache::new(&m, KeyBuilder::new("m").finish(), ArtifactStore::new(dir.path().join("s")), 4);
    let err = cache.activations("mixed4c", &imgs, "set `red`").unwrap_err().to_string();
    assert!(err.contains("mixed4c") && err.contains("available bottlenecks"), "{err}");
    let err = cache.logit_gradients("dense", "zebra", &imgs).unwrap_err().to_string();
    assert!(err.contains("zebra"), "{err}");
    let err = cache.activations("dense", &[], "set `red`").unwrap_err().to_string();
    assert!(err.contains("set `red`"), "{err}");

    let broken = dir.path().join("broken.png");
    std::fs::write(&broken, b"\x89PNG\r\n\x1a\nnot really").unwrap();
    let refs = ImageRef::hash_all(&[broken]).unwrap();
    let err = cache.activations("dense", &refs, "set `red`").unwrap_err().to_string();
    assert!(err.contains("broken.png") && err.contains("does not decode"), "{err}");
    // Nothing was cached for the broken image.
    assert!(!cache.entry_path("activations", "dense", None, &refs[0]).exists());
}
