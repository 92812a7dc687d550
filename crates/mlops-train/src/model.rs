//! The networks (burn): an MLP over tabular features and a small CNN over grayscale images, both
//! built from an [`Architecture`] that is saved beside the weights (in `model.json`), so whoever loads a model
//! rebuilds exactly the network that was trained.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::{Device, Tensor, activation};
use burn_store::{ModuleSnapshot, SafetensorsStore};
pub use mlops_artifacts::bundle::Architecture;
use mlops_manifest::model::{Activation, Family};

use crate::dense;

/// The network.
#[derive(Module, Debug)]
pub struct Network {
    convs: Vec<Conv2d>,
    pool: MaxPool2d,
    dense: Vec<Linear>,
    output: Linear,
    dropout: Dropout,
    #[module(skip)]
    architecture: Architecture,
    #[module(skip)]
    pools: Vec<bool>,
}

impl Network {
    /// A freshly initialised network (seed the device first for reproducible weights).
    pub fn new(architecture: &Architecture, device: &Device) -> Self {
        let mut convs = Vec::new();
        let mut channels_in = 1;
        for &c in &architecture.conv_channels {
            convs.push(
                Conv2dConfig::new(
                    [channels_in, c],
                    [architecture.kernel_size, architecture.kernel_size],
                )
                .with_padding(PaddingConfig2d::Same)
                .init(device),
            );
            channels_in = c;
        }
        let (flat, pools) = architecture.conv_output();
        let mut width = match architecture.family {
            // An ONNX model's network is its graph (mlops-onnx); none is built from this.
            Family::Mlp | Family::Onnx => architecture.inputs,
            Family::Cnn => flat,
        };
        let mut dense = Vec::new();
        for &h in &architecture.hidden_layers {
            dense.push(LinearConfig::new(width, h).init(device));
            width = h;
        }
        Self {
            convs,
            pool: MaxPool2dConfig::new([2, 2]).init(),
            dense,
            output: LinearConfig::new(width, architecture.outputs).init(device),
            dropout: DropoutConfig::new(architecture.dropout).init(),
            architecture: architecture.clone(),
            pools,
        }
    }

    pub fn architecture(&self) -> &Architecture {
        &self.architecture
    }

    fn activate<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        match self.architecture.activation {
            Activation::Relu => activation::relu(x),
            Activation::Gelu => activation::gelu(x),
            Activation::Tanh => activation::tanh(x),
        }
    }

    /// `[batch, inputs]` standardised features to `[batch, outputs]` logits (or values).
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let mut x = match self.architecture.image {
            Some([h, w]) if self.architecture.family == Family::Cnn => {
                let [batch, _] = x.dims();
                let mut y: Tensor<4> = x.reshape([batch, 1, h, w]);
                for (conv, &pool) in self.convs.iter().zip(&self.pools) {
                    y = self.activate(conv.forward(y));
                    if pool {
                        y = self.pool.forward(y);
                    }
                }
                y.flatten(1, 3)
            }
            _ => x,
        };
        for layer in &self.dense {
            x = self
                .dropout
                .forward(self.activate(dense::forward(layer, x)));
        }
        dense::forward(&self.output, x)
    }
}

/// Writes the weights as safetensors, byte for byte the same for the same weights: tensors in
/// name order, a fixed header, no metadata (burn-store's writer orders its metadata by hash, so
/// two saves of one model differ).
pub fn save(network: &Network, path: &std::path::Path) -> Result<(), String> {
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
    for t in network.collect(None, None, false) {
        let data = burn_store::bridge::to_data(&t).map_err(|e| format!("{}: {e:?}", t.name))?;
        let shape = data.shape().to_vec();
        let values = data
            .try_into_vec_as::<f32>()
            .map_err(|e| format!("{}: {e:?}", t.name))?;
        tensors.push((t.name.clone(), shape, values));
    }
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let mut header = serde_json::Map::new();
    let mut offset = 0usize;
    for (name, shape, values) in &tensors {
        let end = offset + values.len() * 4;
        header.insert(
            name.clone(),
            serde_json::json!({ "dtype": "F32", "shape": shape, "data_offsets": [offset, end] }),
        );
        offset = end;
    }
    let mut head = serde_json::Value::Object(header).to_string();
    while !head.len().is_multiple_of(8) {
        head.push(' ');
    }
    let mut bytes = Vec::with_capacity(8 + head.len() + offset);
    bytes.extend_from_slice(&(head.len() as u64).to_le_bytes());
    bytes.extend_from_slice(head.as_bytes());
    for (_, _, values) in &tensors {
        for v in values {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
    }
    std::fs::write(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Rebuilds the network of `architecture` with the weights in `path`; every parameter must be
/// there with its shape.
pub fn load(
    architecture: &Architecture,
    path: &std::path::Path,
    device: &Device,
) -> Result<Network, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    load_bytes(architecture, bytes, device).map_err(|e| format!("{}: {e}", path.display()))
}

/// [`load`] from the bytes of a safetensors file.
pub fn load_bytes(
    architecture: &Architecture,
    bytes: Vec<u8>,
    device: &Device,
) -> Result<Network, String> {
    if architecture.family == Family::Onnx {
        return Err("an ONNX model's weights are its graph, not burn's".to_owned());
    }
    let mut network = Network::new(architecture, device);
    let mut store = SafetensorsStore::from_bytes(Some(bytes));
    let result = network
        .load_from(&mut store)
        .map_err(|e| format!("the weights cannot be read: {e}"))?;
    if !result.is_success() || !result.missing.is_empty() {
        return Err(format!(
            "the weights do not fit the architecture ({} missing, {} errors)",
            result.missing.len(),
            result.errors.len()
        ));
    }
    Ok(network)
}

#[cfg(test)]
mod tests {
    use mlops_manifest::model::Hyperparameters;

    use super::*;

    fn mlp() -> Architecture {
        Architecture::new(Family::Mlp, 64, 10, &Hyperparameters::default(), None)
    }

    /// burn's RNG is global to the process: a test that initialises a network draws from it, so
    /// it holds the lock the trainer holds, or it would move another test's seeded draws.
    fn rng() -> std::sync::MutexGuard<'static, ()> {
        crate::train::RNG
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    #[test]
    fn shapes_and_parameter_counts() {
        let _rng = rng();
        let device = Device::flex();
        let a = mlp();
        assert_eq!(a.parameters(), 64 * 64 + 64 + 64 * 10 + 10);
        let net = Network::new(&a, &device);
        assert_eq!(net.num_params(), a.parameters());
        let y = net.forward(Tensor::<2>::zeros([3, 64], &device));
        assert_eq!(y.dims(), [3, 10]);

        let cnn = Architecture {
            family: Family::Cnn,
            image: Some([8, 8]),
            conv_channels: vec![8, 16],
            kernel_size: 3,
            hidden_layers: vec![32],
            ..a
        };
        // 8x8 -> pool 4x4 -> pool 2x2: 16 * 2 * 2 = 64 flattened
        assert_eq!(cnn.conv_output().0, 64);
        let net = Network::new(&cnn, &device);
        assert_eq!(net.num_params(), cnn.parameters());
        assert_eq!(
            net.forward(Tensor::<2>::zeros([2, 64], &device)).dims(),
            [2, 10]
        );
    }

    #[test]
    fn seeded_initialisation_is_reproducible() {
        let _rng = rng();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut files = Vec::new();
        for (i, seed) in [5u64, 5, 6].iter().enumerate() {
            Device::flex().seed(*seed);
            let device = Device::flex().autodiff();
            let net = Network::new(&mlp(), &device);
            let path = dir.path().join(format!("{i}.safetensors"));
            save(&net, &path).expect("saves");
            files.push(std::fs::read(&path).expect("read"));
        }
        assert!(files[0] == files[1], "same seed, different initial weights");
        assert!(
            files[0] != files[2],
            "different seeds, same initial weights"
        );
    }

    #[test]
    fn weights_round_trip_through_safetensors() {
        let _rng = rng();
        let device = Device::flex();
        device.seed(3);
        let a = mlp();
        let net = Network::new(&a, &device);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("model.safetensors");
        save(&net, &path).expect("saves");
        let back = load(&a, &path, &device).expect("loads");
        let x = Tensor::<2>::ones([2, 64], &device);
        let (y1, y2) = (net.forward(x.clone()), back.forward(x));
        assert_eq!(y1.into_data(), y2.into_data());
        let wrong = Architecture {
            hidden_layers: vec![32],
            ..a
        };
        assert!(load(&wrong, &path, &device).is_err());
    }
}
