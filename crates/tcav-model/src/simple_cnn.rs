//! The seed write-up's CNN: three conv+ReLU+max-pool blocks, dense, dropout,
//! logits.

use std::path::Path;

use tch::nn::{self, Module};
use tch::{Device, Tensor};

use crate::error::{ModelError, Result};
use crate::{BottleneckModel, ModelSpec};

/// The architecture name recorded in [`ModelSpec::architecture`].
pub const ARCHITECTURE: &str = "simple-cnn";

/// Named bottlenecks, from input to output: the output of each conv block
/// (after pooling) and of the dense layer (after ReLU, before dropout).
pub const BOTTLENECKS: [&str; 4] = ["conv1", "conv2", "conv3", "dense"];

const CHANNELS: [i64; 3] = [16, 32, 64];
const DENSE_UNITS: i64 = 128;
const DROPOUT: f64 = 0.5;

/// The built-in CNN. Its stages are the bottlenecks in [`BOTTLENECKS`]
/// followed by dropout and the logits layer.
#[derive(Debug)]
pub struct SimpleCnn {
    spec: ModelSpec,
    vs: nn::VarStore,
    convs: [nn::Conv2D; 3],
    dense: nn::Linear,
    logits: nn::Linear,
}

impl SimpleCnn {
    /// The spec of a `SimpleCnn` for `classes` on `image_size`² inputs.
    pub fn spec_for(classes: Vec<String>, image_size: u32) -> ModelSpec {
        ModelSpec {
            architecture: ARCHITECTURE.to_string(),
            classes,
            image_size,
            bottlenecks: BOTTLENECKS.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Refuses input sizes the network cannot take, so an experiment can
    /// say so before preprocessing anything.
    pub fn check_image_size(image_size: u32) -> Result<()> {
        if image_size < 8 || !image_size.is_multiple_of(8) {
            return Err(ModelError::InvalidSpec(format!(
                "image_size {image_size} must be a positive multiple of 8 (three 2x2 poolings); set preprocess.size to e.g. 64"
            )));
        }
        Ok(())
    }

    /// A freshly initialised network. Initial weights come from libtorch's
    /// generator; seed it with `tch::manual_seed` first for reproducibility.
    pub fn new(spec: ModelSpec, device: Device) -> Result<Self> {
        SimpleCnn::build(spec, device, true)
    }

    /// Builds the network; `random_init = false` fills it with zeros
    /// instead, which draws nothing from libtorch's process-global
    /// generator. Loading uses that: its values are overwritten anyway, and
    /// it must not disturb a seeded training running on another thread.
    fn build(spec: ModelSpec, device: Device, random_init: bool) -> Result<Self> {
        if spec.architecture != ARCHITECTURE {
            return Err(ModelError::InvalidSpec(format!(
                "architecture `{}` is not `{ARCHITECTURE}`",
                spec.architecture
            )));
        }
        SimpleCnn::check_image_size(spec.image_size)?;
        if spec.classes.len() < 2 {
            return Err(ModelError::InvalidSpec(format!(
                "a classifier needs at least 2 classes, got {}",
                spec.classes.len()
            )));
        }
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let zeros = nn::Init::Const(0.0);
        let mut conv_cfg = nn::ConvConfig { padding: 1, ..Default::default() };
        let mut linear_cfg = nn::LinearConfig::default();
        if !random_init {
            conv_cfg.ws_init = zeros;
            conv_cfg.bs_init = zeros;
            linear_cfg.ws_init = zeros;
            linear_cfg.bs_init = Some(zeros);
        }
        let conv = |name: &str, cin: i64, cout: i64| nn::conv2d(&root / name, cin, cout, 3, conv_cfg);
        let convs = [
            conv("conv1", 3, CHANNELS[0]),
            conv("conv2", CHANNELS[0], CHANNELS[1]),
            conv("conv3", CHANNELS[1], CHANNELS[2]),
        ];
        let side = i64::from(spec.image_size) / 8;
        let dense = nn::linear(&root / "dense", CHANNELS[2] * side * side, DENSE_UNITS, linear_cfg);
        let logits = nn::linear(&root / "logits", DENSE_UNITS, spec.classes.len() as i64, linear_cfg);
        Ok(SimpleCnn { spec, vs, convs, dense, logits })
    }

    /// Loads weights saved by [`SimpleCnn::save`].
    pub fn load(spec: ModelSpec, weights: &Path, device: Device) -> Result<Self> {
        let mut model = SimpleCnn::build(spec, device, false)?;
        model.vs.load(weights).map_err(ModelError::torch(format!(
            "loading weights from {} (retrain to regenerate them)",
            weights.display()
        )))?;
        Ok(model)
    }

    /// Saves the weights as safetensors, atomically.
    pub fn save(&self, weights: &Path) -> Result<()> {
        // tch picks the format from the extension, so the temporary file
        // must end in `.safetensors` too.
        let tmp = weights.with_extension("partial.safetensors");
        // VarStore::save writes variables in hash-map order; sorting them
        // makes equal weights give equal bytes, so the model's content key
        // is reproducible.
        let mut named: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        Tensor::write_safetensors(&named, &tmp)
            .map_err(ModelError::torch(format!("saving weights to {}", tmp.display())))?;
        std::fs::rename(&tmp, weights).map_err(|e| tcav_core::CoreError::io("renaming into", weights, e))?;
        Ok(())
    }

    /// Converts the weights to `kind` (for example `Kind::Double` for
    /// numerical checks); inputs must then be of the same kind.
    pub fn set_kind(&mut self, kind: tch::Kind) {
        self.vs.set_kind(kind);
    }

    /// The variables, for an optimiser.
    pub fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    /// Logits in training mode (`train = true` enables dropout).
    pub fn forward_t(&self, input: &Tensor, train: bool) -> Tensor {
        self.stages(input, 0, BOTTLENECKS.len() + 1, train)
    }

    /// Runs stages `from..to`, where stage `i < 4` produces bottleneck `i`
    /// and stage 4 is dropout plus logits.
    fn stages(&self, x: &Tensor, from: usize, to: usize, train: bool) -> Tensor {
        let mut x = x.shallow_clone();
        for stage in from..to {
            x = match stage {
                0..=2 => self.convs[stage].forward(&x).relu().max_pool2d_default(2),
                3 => self.dense.forward(&x.flatten(1, -1)).relu(),
                _ => self.logits.forward(&x.dropout(DROPOUT, train)),
            };
        }
        x
    }

    fn check_input(&self, input: &Tensor) -> Result<()> {
        let side = i64::from(self.spec.image_size);
        match input.size().as_slice() {
            [_, 3, h, w] if *h == side && *w == side => Ok(()),
            other => Err(ModelError::InvalidSpec(format!(
                "input of shape {other:?} given to a model for [N, 3, {side}, {side}] images"
            ))),
        }
    }
}

impl BottleneckModel for SimpleCnn {
    fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    fn device(&self) -> Device {
        self.vs.device()
    }

    fn bottleneck(&self, input: &Tensor, layer: &str) -> Result<Tensor> {
        let index = self.layer_index(layer)?;
        self.check_input(input)?;
        Ok(self.stages(input, 0, index + 1, false))
    }

    fn logits_from_bottleneck(&self, activations: &Tensor, layer: &str) -> Result<Tensor> {
        let index = self.layer_index(layer)?;
        Ok(self.stages(activations, index + 1, BOTTLENECKS.len() + 1, false))
    }

    fn logits(&self, input: &Tensor) -> Result<Tensor> {
        self.check_input(input)?;
        Ok(self.forward_t(input, false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    fn model(size: u32) -> SimpleCnn {
        tch::manual_seed(0);
        SimpleCnn::new(SimpleCnn::spec_for(vec!["a".into(), "b".into(), "c".into()], size), Device::Cpu).unwrap()
    }

    #[test]
    fn bottleneck_then_head_equals_the_whole_network() {
        let m = model(16);
        let x = Tensor::rand([4, 3, 16, 16], (Kind::Float, Device::Cpu)) - 0.5;
        let full = m.logits(&x).unwrap();
        for layer in BOTTLENECKS {
            let acts = m.bottleneck(&x, layer).unwrap();
            let split = m.logits_from_bottleneck(&acts, layer).unwrap();
            let diff = (&full - &split).abs().max().double_value(&[]);
            assert!(diff < 1e-5, "layer {layer}: {diff}");
        }
        assert_eq!(m.bottleneck(&x, "conv3").unwrap().size(), [4, 64, 2, 2]);
        assert_eq!(m.bottleneck(&x, "dense").unwrap().size(), [4, 128]);
    }

    #[test]
    fn evaluation_mode_is_deterministic_and_training_mode_is_not() {
        let m = model(16);
        let x = Tensor::rand([8, 3, 16, 16], (Kind::Float, Device::Cpu));
        let a = m.logits(&x).unwrap();
        let b = m.logits(&x).unwrap();
        assert_eq!((&a - &b).abs().max().double_value(&[]), 0.0);
        let t1 = m.forward_t(&x, true);
        let t2 = m.forward_t(&x, true);
        assert!((&t1 - &t2).abs().max().double_value(&[]) > 0.0, "dropout must be active in training");
    }

    #[test]
    fn unknown_layers_and_bad_inputs_are_errors() {
        let m = model(16);
        let x = Tensor::zeros([1, 3, 16, 16], (Kind::Float, Device::Cpu));
        let err = m.bottleneck(&x, "mixed4c").unwrap_err().to_string();
        assert!(err.contains("mixed4c") && err.contains("conv1, conv2, conv3, dense"), "{err}");
        let wrong = Tensor::zeros([1, 3, 8, 8], (Kind::Float, Device::Cpu));
        assert!(m.logits(&wrong).is_err());
        assert!(SimpleCnn::new(SimpleCnn::spec_for(vec!["a".into(), "b".into()], 20), Device::Cpu).is_err());
    }

    #[test]
    fn weights_round_trip_through_safetensors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        let m = model(16);
        m.save(&path).unwrap();
        tch::manual_seed(99);
        let back = SimpleCnn::load(m.spec().clone(), &path, Device::Cpu).unwrap();
        // Equal weights, equal bytes.
        let again = dir.path().join("again.safetensors");
        back.save(&again).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), std::fs::read(&again).unwrap());
        let x = Tensor::rand([2, 3, 16, 16], (Kind::Float, Device::Cpu));
        let diff = (m.logits(&x).unwrap() - back.logits(&x).unwrap()).abs().max().double_value(&[]);
        assert_eq!(diff, 0.0);
    }
}
