//! Predictions from a saved model: the artifact (weights + `model.json`), checked against its
//! recorded digest, loaded on the CPU backend, and applied to raw features with the standardisation
//! saved beside it. Training's offline holdout scoring, `mlops serve` and the holdout test's parity
//! check all predict through this one path.

use mlops_data::categories::{OneHot, Vocabulary};
use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData, activation};
use mlops_manifest::model::{Family, Task};

use crate::model::Network;
use crate::worker::Bundle;

/// Runs rayon's parallel loops on the calling thread from now on, one part after another.
///
/// burn's CPU backend splits element-wise operations, reductions and the larger matrix products
/// over rayon's threads. For one batch among many at once (a service under load, the holdout
/// test's offline predictions beside its requests) the split costs more than it gives: each
/// operation hands parts to other threads and sleeps until they are done, two context switches,
/// and rayon's idle threads spin on `sched_yield` for CPU that the other requests need. This makes
/// the calling thread the only worker of a rayon pool of its own, so those loops run inline on
/// it. Once per thread is enough (later calls do nothing); a thread that is already a rayon worker
/// is left as it is. Threads that never call it keep the shared pool, which is what a single large
/// batch wants.
pub fn keep_parallel_loops_on_this_thread() {
    join_a_pool_of_its_own(1);
}

/// Makes the calling thread the first worker of a rayon pool of its own with `threads` threads
/// (0: as many as rayon's shared pool has, `RAYON_NUM_THREADS` or the available parallelism), for
/// as long as the thread lives. A thread that already is a rayon worker (of the shared pool, or of
/// its own from an earlier call) is left in its pool.
pub(crate) fn join_a_pool_of_its_own(threads: usize) {
    thread_local! {
        /// Kept alive as long as the thread: dropping it would stop the pool's other threads.
        static OWN_POOL: std::cell::OnceCell<Option<rayon_core::ThreadPool>> =
            const { std::cell::OnceCell::new() };
    }
    if rayon_core::current_thread_index().is_some() {
        return;
    }
    OWN_POOL.with(|pool| {
        pool.get_or_init(|| {
            rayon_core::ThreadPoolBuilder::new()
                .num_threads(threads)
                .use_current_thread()
                .build()
                .ok()
        });
    });
}

pub use mlops_artifacts::artifact::{ARTIFACT_FILES, ArtifactDigest, read_artifact};

/// What a model gives for a batch of rows.
#[derive(Debug, Clone, PartialEq)]
pub enum Outputs {
    /// Classification: the class index of each row and the `rows * classes` probabilities.
    Classes {
        index: Vec<usize>,
        probabilities: Vec<f32>,
        classes: usize,
    },
    /// Regression: one value per row.
    Values(Vec<f32>),
}

impl Outputs {
    pub fn rows(&self) -> usize {
        match self {
            Outputs::Classes { index, .. } => index.len(),
            Outputs::Values(v) => v.len(),
        }
    }
}

/// A loaded model, ready to predict on the CPU.
#[derive(Debug)]
pub struct Predictor {
    pub bundle: Bundle,
    pub digest: ArtifactDigest,
    engine: Engine,
    /// The categorical features' text to codes, and codes to the model's inputs.
    vocabulary: Vocabulary,
    one_hot: OneHot,
}

/// What runs the model: burn (a model mlops trained) or tract (one brought as ONNX).
#[derive(Debug)]
enum Engine {
    Burn {
        network: Box<Network>,
        device: Device,
    },
    Onnx(Box<mlops_onnx::Model>),
}

impl Predictor {
    /// Loads the artifact files (by name, as [`read_artifact`] returns them).
    pub fn from_files(files: &BTreeMap<String, Vec<u8>>) -> Result<Self, String> {
        let digest = ArtifactDigest::of(files);
        let bundle_bytes = files
            .get(mlops_artifacts::artifact::BUNDLE)
            .ok_or("the artifact has no model.json")?;
        let bundle = Bundle::from_slice(bundle_bytes)
            .map_err(|e| format!("model.json is not a usable model bundle: {e}"))?;
        let engine = if bundle.architecture.family == Family::Onnx {
            let graph = files
                .get(mlops_artifacts::artifact::ONNX)
                .ok_or("the artifact of an ONNX model has no model.onnx")?;
            let model = mlops_onnx::Model::load(graph, bundle.signature.inputs())
                .map_err(|e| format!("model.onnx: {e}"))?;
            // The classes the registry recorded are the graph's, in its order.
            let classes = model.classes().map(<[String]>::to_vec);
            if classes != bundle.signature.classes {
                return Err(
                    "model.onnx's classes are not the ones model.json records for it".to_owned(),
                );
            }
            Engine::Onnx(Box::new(model))
        } else {
            let weights = files
                .get(mlops_artifacts::artifact::WEIGHTS)
                .ok_or("the artifact has no model.safetensors")?
                .clone();
            let device = Device::flex();
            let network = crate::model::load_bytes(&bundle.architecture, weights, &device)?;
            Engine::Burn {
                network: Box::new(network),
                device,
            }
        };
        let sig = &bundle.signature;
        let vocabulary = Vocabulary::new(&sig.features, &sig.categorical, sig.unseen);
        let one_hot = OneHot::new(&sig.features, &sig.categorical);
        Ok(Self {
            bundle,
            digest,
            engine,
            vocabulary,
            one_hot,
        })
    }

    /// The categories of the model's categorical features (empty when it has none): what a
    /// reader of its rows codes their text with.
    pub fn vocabulary(&self) -> &Vocabulary {
        &self.vocabulary
    }

    /// Loads the artifact in `dir`.
    pub fn from_dir(dir: &Path) -> Result<Self, String> {
        Self::from_files(&read_artifact(dir)?)
    }

    /// Features per row.
    pub fn width(&self) -> usize {
        self.bundle.signature.features.len()
    }

    pub fn task(&self) -> Task {
        self.bundle.signature.task
    }

    /// Predicts `x` (`rows * width` raw features in signature order, categorical ones as the codes
    /// of [`Predictor::vocabulary`]): one-hot encodes the categorical ones, standardises each row with
    /// the saved statistics, runs the network, and takes the softmax and arg-max for classes.
    /// An ONNX model gets the raw rows (its graph does its own preprocessing; gaps filled) and
    /// gives its own labels and probabilities.
    pub fn predict(&self, x: &[f32]) -> Result<Outputs, String> {
        let width = self.width();
        if width == 0 || !x.len().is_multiple_of(width) {
            return Err(format!("{} values do not make rows of {width}", x.len()));
        }
        // Categorical features' codes to one-hot columns: what the model reads.
        let encoded;
        let (x, width) = if self.one_hot.is_identity() {
            (x, width)
        } else {
            let mut z = Vec::new();
            self.one_hot.encode(x, &mut z);
            encoded = z;
            (encoded.as_slice(), self.one_hot.inputs())
        };
        let (network, device) = match &self.engine {
            Engine::Burn { network, device } => (network, device),
            Engine::Onnx(model) => {
                // The graph does its own preprocessing; a gap takes the recorded fill value
                // first (`data.missing`; the standardisation of an ONNX model is the identity).
                let filled;
                let x = if self.bundle.standardizer.takes_gaps() {
                    let mut z = x.to_vec();
                    for row in z.chunks_mut(width) {
                        self.bundle.standardizer.apply_row(row);
                    }
                    filled = z;
                    filled.as_slice()
                } else {
                    x
                };
                return Ok(match model.predict(x)? {
                    mlops_onnx::Predictions::Classes {
                        index,
                        probabilities,
                        classes,
                    } => Outputs::Classes {
                        index,
                        probabilities,
                        classes,
                    },
                    mlops_onnx::Predictions::Values(v) => Outputs::Values(v),
                });
            }
        };
        let rows = x.len() / width;
        let mut z = x.to_vec();
        for row in z.chunks_mut(width) {
            self.bundle.standardizer.apply_row(row);
        }
        let input = Tensor::<2>::from_data(TensorData::new(z, [rows, width]), device);
        let output = network.forward(input);
        let err = |e| format!("the backend returned unexpected data: {e:?}");
        match self.task() {
            Task::Classification => {
                let classes = network.architecture().outputs;
                let probabilities = activation::softmax(output, 1)
                    .into_data()
                    .try_into_vec_as::<f32>()
                    .map_err(err)?;
                let index = probabilities.chunks(classes.max(1)).map(argmax).collect();
                Ok(Outputs::Classes {
                    index,
                    probabilities,
                    classes,
                })
            }
            Task::Regression => Ok(Outputs::Values(
                output.into_data().try_into_vec_as::<f32>().map_err(err)?,
            )),
        }
    }
}

/// The index of the largest value; the first one on ties.
pub fn argmax(values: &[f32]) -> usize {
    let mut best = (0, values.first().copied().unwrap_or(f32::NAN));
    for (i, &v) in values.iter().enumerate() {
        if v > best.1 {
            best = (i, v);
        }
    }
    best.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_loops_stay_on_a_thread_that_asks() {
        let here = |_: rayon_core::FnContext| std::thread::current().id();
        // A thread that did not ask hands both halves of a join to rayon's shared pool.
        std::thread::spawn(move || {
            let me = std::thread::current().id();
            assert_eq!(rayon_core::current_thread_index(), None);
            let (a, b) = rayon_core::join_context(here, here);
            assert!(a != me && b != me, "the shared pool ran them");
        })
        .join()
        .expect("joins");
        std::thread::spawn(move || {
            let me = std::thread::current().id();
            keep_parallel_loops_on_this_thread();
            keep_parallel_loops_on_this_thread();
            assert_eq!(rayon_core::current_thread_index(), Some(0));
            assert_eq!(rayon_core::current_num_threads(), 1);
            assert_eq!(rayon_core::join_context(here, here), (me, me));
        })
        .join()
        .expect("joins");
    }

    #[test]
    fn argmax_takes_the_first_of_equals() {
        assert_eq!(argmax(&[0.1, 0.7, 0.2]), 1);
        assert_eq!(argmax(&[0.5, 0.5]), 0);
    }
}
