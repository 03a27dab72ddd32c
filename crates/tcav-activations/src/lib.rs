//! The activation-caching stage.
//!
//! Takes: a [`BottleneckModel`], the key of its weights, and lists of
//! preprocessed images. Produces, per bottleneck layer:
//!
//! * **activations** of each image set (concepts, random sets), flattened to
//!   one row per image;
//! * **gradients** of one class's logit with respect to those activations,
//!   for the images of that class, one row per image.
//!
//! Both are stored as safetensors in the artifact store under keys derived
//! from the model key, the layer, the class (for gradients) and the content
//! hashes of the images, in order. A changed model or image therefore can
//! never hit a stale entry.
//!
//! Gradients do not depend on any CAV, so TCAV needs each one exactly once:
//! this stage computes them in batches, and the CAV stage reuses them for
//! every CAV by a dot product.
//!
//! Invariant: the model only ever runs in evaluation mode here (no dropout),
//! and nothing in this stage depends on a concept or a random set's role.

#![deny(missing_docs)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use tch::{Device, Kind, Tensor};
use tcav_core::store::{ArtifactKey, ArtifactStore, KeyBuilder, hash_file};
use tcav_core::{CoreError, Matrix};
use tcav_model::{BottleneckModel, ModelError};

/// The version of what this stage stores. Cache keys include it: bump it
/// whenever a change here changes stored activations or gradients.
pub const OUTPUT_VERSION: u32 = 1;

/// Stored tensor name of activations.
pub const ACTIVATIONS: &str = "activations";
/// Stored tensor name of gradients.
pub const GRADIENTS: &str = "gradients";
const FILE: &str = "tensors.safetensors";

/// What can go wrong in this stage.
#[derive(Debug, thiserror::Error)]
pub enum ActivationError {
    /// A model or image error.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A store or file error.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// An empty list of images.
    #[error("no images given for {0}; check that the set's folder holds images")]
    NoImages(String),
}

/// Result alias for this crate.
pub type Result<T, E = ActivationError> = std::result::Result<T, E>;

/// An image and the blake3 hash of its file, the identity caches use.
#[derive(Clone, Debug)]
pub struct ImageRef {
    /// The preprocessed image file.
    pub path: PathBuf,
    /// blake3 hex hash of the file's bytes.
    pub hash: String,
}

impl ImageRef {
    /// Hashes the files at `paths`.
    pub fn hash_all(paths: &[PathBuf]) -> Result<Vec<ImageRef>> {
        paths.iter().map(|p| Ok(ImageRef { path: p.clone(), hash: hash_file(p)? })).collect()
    }
}

/// Computes activations and gradients in batches, through the artifact
/// store, and counts the passes it actually runs.
pub struct ActivationCache<'a, M: BottleneckModel> {
    model: &'a M,
    model_key: ArtifactKey,
    store: ArtifactStore,
    batch_size: usize,
    forward_passes: AtomicUsize,
    backward_passes: AtomicUsize,
}

impl<'a, M: BottleneckModel> ActivationCache<'a, M> {
    /// A cache for `model`, whose weights and spec are identified by
    /// `model_key`.
    pub fn new(model: &'a M, model_key: ArtifactKey, store: ArtifactStore, batch_size: usize) -> Self {
        ActivationCache {
            model,
            model_key,
            store,
            batch_size: batch_size.max(1),
            forward_passes: AtomicUsize::new(0),
            backward_passes: AtomicUsize::new(0),
        }
    }

    /// Batched forward passes run so far (cache hits run none).
    pub fn forward_passes(&self) -> usize {
        self.forward_passes.load(Ordering::Relaxed)
    }

    /// Batched backward passes run so far (cache hits run none).
    pub fn backward_passes(&self) -> usize {
        self.backward_passes.load(Ordering::Relaxed)
    }

    fn key(&self, kind: &str, layer: &str, class: Option<usize>, images: &[ImageRef]) -> ArtifactKey {
        let mut key = KeyBuilder::new(kind);
        key.param("version", &OUTPUT_VERSION).input("model", &self.model_key).param("layer", layer).param("class", &class);
        for image in images {
            key.content("image", &image.hash);
        }
        key.finish()
    }

    /// The flattened activations at `layer`, one row per image.
    pub fn activations(&self, layer: &str, images: &[ImageRef], what: &str) -> Result<Matrix> {
        self.model.layer_index(layer)?;
        if images.is_empty() {
            return Err(ActivationError::NoImages(what.to_string()));
        }
        let key = self.key("activations", layer, None, images);
        let (dir, built) = self.store.get_or_build::<ActivationError>("activations", &key, |tmp| {
            let matrix = self.run_batches(images, |x| {
                self.forward_passes.fetch_add(1, Ordering::Relaxed);
                let acts = tch::no_grad(|| self.model.bottleneck(x, layer))?;
                Ok(acts.flatten(1, -1))
            })?;
            save(tmp, ACTIVATIONS, &matrix, layer, images)
        })?;
        tracing::debug!(layer, what, cached = !built, "activations");
        Ok(tcav_core::matrix::read_safetensors(&dir.join(FILE), ACTIVATIONS)?)
    }

    /// The gradients of `class`'s logit with respect to the flattened
    /// activations at `layer`, one row per image.
    pub fn logit_gradients(&self, layer: &str, class: &str, images: &[ImageRef]) -> Result<Matrix> {
        self.model.layer_index(layer)?;
        let class_index = self.model.class_index(class)?;
        if images.is_empty() {
            return Err(ActivationError::NoImages(format!("class `{class}`")));
        }
        let key = self.key("gradients", layer, Some(class_index), images);
        let (dir, built) = self.store.get_or_build::<ActivationError>("gradients", &key, |tmp| {
            let matrix = self.run_batches(images, |x| {
                self.backward_passes.fetch_add(1, Ordering::Relaxed);
                self.batch_gradients(x, layer, class_index)
            })?;
            save(tmp, GRADIENTS, &matrix, layer, images)
        })?;
        tracing::debug!(layer, class, cached = !built, "gradients");
        Ok(tcav_core::matrix::read_safetensors(&dir.join(FILE), GRADIENTS)?)
    }

    /// ∇ₐ h_k(a) for a batch: the activation is detached so that it is a
    /// leaf, and the logits of the batch are summed so that one backward
    /// pass yields every row's gradient (rows do not interact in
    /// evaluation mode).
    fn batch_gradients(&self, x: &Tensor, layer: &str, class_index: usize) -> Result<Tensor> {
        let acts = tch::no_grad(|| self.model.bottleneck(x, layer))?.detach().set_requires_grad(true);
        let logits = self.model.logits_from_bottleneck(&acts, layer)?;
        let target = logits
            .f_select(1, class_index as i64)
            .and_then(|t| t.f_sum(Kind::Float))
            .map_err(ModelError::torch("selecting the class logit"))?;
        let grads = Tensor::f_run_backward(&[&target], &[&acts], false, false)
            .map_err(ModelError::torch(format!("back-propagating to layer `{layer}`")))?;
        let grad = grads.into_iter().next().ok_or_else(|| ModelError::InvalidSpec("no gradient returned".into()))?;
        Ok(grad.flatten(1, -1))
    }

    fn run_batches(&self, images: &[ImageRef], mut f: impl FnMut(&Tensor) -> Result<Tensor>) -> Result<Matrix> {
        let size = self.model.spec().image_size;
        let device = self.model.device();
        let mut data = Vec::new();
        let mut cols = 0;
        for batch in images.chunks(self.batch_size) {
            let paths: Vec<PathBuf> = batch.iter().map(|i| i.path.clone()).collect();
            let x = tcav_model::load_images(&paths, size, device)?;
            let out = f(&x)?.to_device(Device::Cpu).to_kind(Kind::Float).contiguous();
            cols = out.size()[1] as usize;
            let values = Vec::<f32>::try_from(&out.flatten(0, -1)).map_err(ModelError::torch("copying results"))?;
            data.extend(values);
        }
        Matrix::new(images.len(), cols, data)
            .ok_or_else(|| ActivationError::Model(ModelError::InvalidSpec("batch outputs of different widths".into())))
    }
}

fn save(dir: &Path, name: &str, matrix: &Matrix, layer: &str, images: &[ImageRef]) -> Result<()> {
    let names: Vec<String> = images
        .iter()
        .map(|i| i.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default())
        .collect();
    let hashes: Vec<&str> = images.iter().map(|i| i.hash.as_str()).collect();
    let metadata = HashMap::from([
        ("layer".to_string(), layer.to_string()),
        ("images".to_string(), serde_json::to_string(&names).unwrap_or_default()),
        ("image_hashes".to_string(), serde_json::to_string(&hashes).unwrap_or_default()),
    ]);
    tcav_core::matrix::write_safetensors(&dir.join(FILE), &[(name, matrix)], metadata)?;
    Ok(())
}

#[cfg(test)]
mod tests;
