//! The classifier as TCAV sees it: an image model with named bottlenecks.
//!
//! Takes: a [`ModelSpec`] and weights (safetensors), or a freshly initialised
//! network. Produces: a [`BottleneckModel`], which maps images to the
//! activations at a named bottleneck and maps those activations on to class
//! logits. TCAV needs exactly these two halves: CAVs live in the bottleneck's
//! activation space, and directional derivatives are gradients of a logit
//! with respect to those activations.
//!
//! The built-in architecture is [`SimpleCnn`], the seed write-up's network
//! (three conv+ReLU+max-pool blocks, dense, dropout, logits). Other models
//! (TorchScript, safetensors weights for standard architectures) plug in by
//! implementing [`BottleneckModel`]; nothing downstream names `SimpleCnn`.
//!
//! Invariant: every method a later stage calls runs the network in
//! evaluation mode (no dropout), because TCAV's gradients are only meaningful
//! for the deterministic function the classifier computes at test time.

#![deny(missing_docs)]

mod error;
mod input;
mod simple_cnn;

pub use error::{ModelError, Result};
pub use input::{images_to_tensor, load_images};
pub use simple_cnn::SimpleCnn;

use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

/// What a trained model is: enough to rebuild it and to check inputs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// The architecture's name, for example `"simple-cnn"`.
    pub architecture: String,
    /// Class names, in logit order.
    pub classes: Vec<String>,
    /// Side of the square RGB input, in pixels.
    pub image_size: u32,
    /// Named bottlenecks, from input to output.
    pub bottlenecks: Vec<String>,
}

/// A classifier split at named bottlenecks.
///
/// Inputs are float tensors `[N, 3, H, W]` made by [`load_images`].
pub trait BottleneckModel {
    /// The model's description.
    fn spec(&self) -> &ModelSpec;

    /// The device the model's weights live on.
    fn device(&self) -> Device;

    /// Activations at `layer` for a batch of inputs, in evaluation mode.
    fn bottleneck(&self, input: &Tensor, layer: &str) -> Result<Tensor>;

    /// Class logits (pre-softmax) computed from activations at `layer`, in
    /// evaluation mode. Differentiable with respect to `activations`.
    fn logits_from_bottleneck(&self, activations: &Tensor, layer: &str) -> Result<Tensor>;

    /// Class logits for a batch of inputs, in evaluation mode.
    fn logits(&self, input: &Tensor) -> Result<Tensor>;

    /// The index of `layer`, or an error listing the layers there are.
    fn layer_index(&self, layer: &str) -> Result<usize> {
        let spec = self.spec();
        spec.bottlenecks.iter().position(|l| l == layer).ok_or_else(|| ModelError::UnknownLayer {
            layer: layer.to_string(),
            architecture: spec.architecture.clone(),
            available: spec.bottlenecks.join(", "),
        })
    }

    /// The index of `class`, or an error listing the classes there are.
    fn class_index(&self, class: &str) -> Result<usize> {
        let spec = self.spec();
        spec.classes
            .iter()
            .position(|c| c == class)
            .ok_or_else(|| ModelError::UnknownClass { class: class.to_string(), available: spec.classes.join(", ") })
    }
}

/// The predicted class index (argmax of the logits) of each input, in
/// evaluation mode.
pub fn predict(model: &impl BottleneckModel, input: &Tensor) -> Result<Vec<i64>> {
    let logits = tch::no_grad(|| model.logits(input))?;
    let predicted = logits.argmax(1, false).to_device(Device::Cpu);
    Vec::<i64>::try_from(&predicted).map_err(ModelError::torch("reading predictions"))
}

/// The device to run on: the first CUDA device when one is usable, else CPU.
pub fn default_device() -> Device {
    Device::cuda_if_available()
}
