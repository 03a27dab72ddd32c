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
//! Each image's row is stored as its own safetensors file in the artifact
//! store, at a path made of the model key (a hash of the weights and spec),
//! the layer, the class (for gradients) and the image's content hash. Rows
//! are reused across sets, runs and experiments; a changed model, image or
//! preprocessing setting changes the path, so it never hits a stale entry.
//! Rows are computed in batches and written as each batch finishes, so
//! memory holds one batch, not a whole layer of an experiment.
//!
//! Gradients do not depend on any CAV, so TCAV needs each one exactly once:
//! this stage computes them in batches, and the CAV stage reuses them for
//! every CAV by a dot product.
//!
//! Invariant: the model only ever runs in evaluation mode here (no dropout),
//! and nothing in this stage depends on a concept or a random set's role.

#![deny(missing_docs)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use tcav_core::store::{ArtifactKey, ArtifactStore, KeyBuilder, hash_file};
use tcav_core::{CoreError, Matrix};
use tcav_model::{BottleneckModel, ModelError};
use tch::{Device, Kind, Tensor};

/// The version of what this stage stores. Cache keys include it: bump it
/// whenever a change here changes stored activations or gradients.
pub const OUTPUT_VERSION: u32 = 1;

/// Stored tensor name of activations.
pub const ACTIVATIONS: &str = "activations";
/// Stored tensor name of gradients.
pub const GRADIENTS: &str = "gradients";

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
    /// Rows recomputed by this cache, so a forced store recomputes each once.
    recomputed: std::sync::Mutex<std::collections::HashSet<PathBuf>>,
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
            recomputed: std::sync::Mutex::default(),
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

    /// Where one image's row lives:
    /// `<store>/<kind>/v<version>-<model key>/<layer>/[<class>/]<image hash>.safetensors`.
    /// The path is the cache key: the model key covers weights and spec, the
    /// image hash covers content and preprocessing.
    fn entry_path(&self, kind: &str, layer: &str, class: Option<&str>, image: &ImageRef) -> PathBuf {
        let mut path =
            self.store.root().join(kind).join(format!("v{OUTPUT_VERSION}-{}", self.model_key)).join(path_safe(layer));
        if let Some(class) = class {
            path.push(path_safe(class));
        }
        path.join(format!("{}.safetensors", image.hash))
    }

    /// The cache files of the activations of `images` at `layer`, computing
    /// any that are missing. Read them with [`read_rows`], from any thread.
    pub fn activation_files(&self, layer: &str, images: &[ImageRef], what: &str) -> Result<Vec<PathBuf>> {
        self.model.layer_index(layer)?;
        if images.is_empty() {
            return Err(ActivationError::NoImages(what.to_string()));
        }
        let paths: Vec<PathBuf> = images.iter().map(|i| self.entry_path("activations", layer, None, i)).collect();
        let computed = self.fill_missing(images, &paths, ACTIVATIONS, layer, |x| {
            self.forward_passes.fetch_add(1, Ordering::Relaxed);
            let acts = tch::no_grad(|| self.model.bottleneck(x, layer))?;
            Ok(acts.flatten(1, -1))
        })?;
        tracing::debug!(layer, what, computed, cached = images.len() - computed, "activations");
        Ok(paths)
    }

    /// The flattened activations at `layer`, one row per image.
    pub fn activations(&self, layer: &str, images: &[ImageRef], what: &str) -> Result<Matrix> {
        read_rows(&self.activation_files(layer, images, what)?, ACTIVATIONS)
    }

    /// The gradients of `class`'s logit with respect to the flattened
    /// activations at `layer`, one row per image.
    pub fn logit_gradients(&self, layer: &str, class: &str, images: &[ImageRef]) -> Result<Matrix> {
        self.model.layer_index(layer)?;
        let class_index = self.model.class_index(class)?;
        if images.is_empty() {
            return Err(ActivationError::NoImages(format!("class `{class}`")));
        }
        let paths: Vec<PathBuf> = images.iter().map(|i| self.entry_path("gradients", layer, Some(class), i)).collect();
        let computed = self.fill_missing(images, &paths, GRADIENTS, layer, |x| {
            self.backward_passes.fetch_add(1, Ordering::Relaxed);
            self.batch_gradients(x, layer, class_index)
        })?;
        tracing::debug!(layer, class, computed, cached = images.len() - computed, "gradients");
        read_rows(&paths, GRADIENTS)
    }

    /// Computes, in batches, the rows whose files are missing, writing each
    /// row to its own file as soon as its batch is done, so memory holds at
    /// most one batch. Returns how many rows were computed.
    fn fill_missing(
        &self,
        images: &[ImageRef],
        paths: &[PathBuf],
        name: &str,
        layer: &str,
        mut compute: impl FnMut(&Tensor) -> Result<Tensor>,
    ) -> Result<usize> {
        let kind = if name == ACTIVATIONS { "activations" } else { "gradients" };
        let forced = self.store.is_forced(kind);
        let mut seen = std::collections::HashSet::new();
        let mut recomputed = self.recomputed.lock().map_err(|_| ModelError::InvalidSpec("a poisoned lock".into()))?;
        // A damaged or truncated file fails its checksum and is recomputed;
        // under `--force` every row is recomputed once in this process.
        let missing: Vec<usize> = (0..images.len())
            .filter(|&i| {
                let stale = !tcav_core::matrix::is_intact(&paths[i]) || (forced && !recomputed.contains(&paths[i]));
                stale && seen.insert(paths[i].clone())
            })
            .collect();
        self.store.count(kind, |w| {
            w.built += missing.len();
            w.reused += images.len() - missing.len();
        });
        recomputed.extend(missing.iter().map(|&i| paths[i].clone()));
        drop(recomputed);
        let size = self.model.spec().image_size;
        let device = self.model.device();
        for batch in missing.chunks(self.batch_size) {
            let batch_paths: Vec<PathBuf> = batch.iter().map(|&i| images[i].path.clone()).collect();
            let x = tcav_model::load_images(&batch_paths, size, device)?;
            let out = compute(&x)?.to_device(Device::Cpu).to_kind(Kind::Float).contiguous();
            let cols = out.size()[1] as usize;
            let values = Vec::<f32>::try_from(&out.flatten(0, -1)).map_err(ModelError::torch("copying results"))?;
            for (row, &i) in values.chunks_exact(cols.max(1)).zip(batch) {
                let matrix = Matrix::new(1, cols, row.to_vec())
                    .ok_or_else(|| ModelError::InvalidSpec("a batch output of the wrong size".into()))?;
                let metadata = HashMap::from([
                    ("model".to_string(), self.model_key.to_string()),
                    ("layer".to_string(), layer.to_string()),
                    (
                        "image".to_string(),
                        images[i].path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
                    ),
                    ("image_hash".to_string(), images[i].hash.clone()),
                ]);
                tcav_core::matrix::write_safetensors(&paths[i], &[(name, &matrix)], metadata)?;
            }
        }
        Ok(missing.len())
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
}

/// A layer or class name as a folder name: kept when it is already safe
/// (so Python users can browse the cache), hashed otherwise.
fn path_safe(name: &str) -> String {
    match tcav_core::SetName::new(name) {
        Ok(safe) => safe.to_string(),
        Err(_) => KeyBuilder::new("name").content("name", name).finish().short().to_string(),
    }
}

/// Stacks single-row cache files (of tensor `name`: [`ACTIVATIONS`] or
/// [`GRADIENTS`]) into one matrix, in order.
pub fn read_rows(paths: &[PathBuf], name: &str) -> Result<Matrix> {
    let mut data = Vec::new();
    let mut cols = None;
    for path in paths {
        let row = tcav_core::matrix::read_safetensors(path, name)?;
        if *cols.get_or_insert(row.cols()) != row.cols() || row.rows() != 1 {
            return Err(CoreError::Tensors {
                path: path.clone(),
                reason: format!(
                    "holds a {}x{} `{name}` where a 1x{} row was expected",
                    row.rows(),
                    row.cols(),
                    cols.unwrap_or(0)
                ),
            }
            .into());
        }
        data.extend(row.into_vec());
    }
    let cols = cols.unwrap_or(0);
    Matrix::new(paths.len(), cols, data)
        .ok_or_else(|| ModelError::InvalidSpec("rows of different widths".into()).into())
}

#[cfg(test)]
mod tests;
