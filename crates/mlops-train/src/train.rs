//! The training loop: seeded initialisation and batch order, one optimiser step per batch,
//! validation after every epoch, and a stop with a clear error when the loss stops being a
//! number.

use std::collections::BTreeMap;
use std::time::Instant;

use burn::module::Module;
use burn::nn::loss::{CrossEntropyLossConfig, MseLoss, Reduction};
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer, SgdConfig};
use burn::tensor::{Device, Int, Tensor, TensorData};
use mlops_manifest::model::{Metric, Optimizer, Task, Training};
use serde::{Deserialize, Serialize};

use crate::adam::FusedAdam;
use crate::checkpoint::{Checkpoints, Found, State};
use crate::metrics;
use crate::model::{Architecture, Network};
use mlops_data::data::Table;

/// burn's random number generator is global to the process (seeding one device seeds it for
/// all): a training run holds this lock from seeding to its last dropout mask, so two runs in one
/// process cannot interleave their draws and each stays reproducible.
pub static RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// How to optimise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub task: Task,
    pub epochs: u32,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub optimizer: Optimizer,
    pub seed: u64,
}

impl Settings {
    /// The manifest's training settings for a `task`.
    pub fn new(task: Task, t: &Training) -> Self {
        Self {
            task,
            // Validation requires epochs for the families that train.
            epochs: t.epochs.unwrap_or(1),
            batch_size: t.batch_size as usize,
            learning_rate: t.learning_rate,
            optimizer: t.optimizer,
            seed: t.seed,
        }
    }
}

pub use mlops_artifacts::training::Epoch;

/// What training reports as it goes.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// Checkpoints were found but could not be used (the reason); training starts over.
    CheckpointUnusable(&'a str),
    /// Training goes on from the checkpoint saved after this epoch.
    Resumed { epoch: u32 },
    /// A batch was stepped: `batch` of `batches` in `epoch` of `epochs`.
    Batch {
        epoch: u32,
        epochs: u32,
        batch: usize,
        batches: usize,
    },
    /// An epoch ended.
    Epoch(&'a Epoch),
}

impl Event<'_> {
    /// The line a log shows for a checkpoint event (none for batches and epochs).
    pub fn note(&self) -> Option<String> {
        match self {
            Event::CheckpointUnusable(why) => Some(format!("not resuming from checkpoints: {why}")),
            Event::Resumed { epoch } => Some(format!(
                "resuming from the checkpoint saved after epoch {epoch}"
            )),
            Event::Batch { .. } | Event::Epoch(_) => None,
        }
    }
}

/// Why training stopped without a model.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TrainError {
    #[error("the training loss became {loss} at epoch {epoch}, batch {batch}: training diverged")]
    Diverged { epoch: u32, batch: usize, loss: f64 },
    #[error("the backend failed: {0}")]
    Backend(String),
    #[error("cannot save a checkpoint: {0}")]
    Checkpoint(String),
}

impl TrainError {
    pub fn hint(&self) -> &'static str {
        match self {
            TrainError::Diverged { .. } => {
                "lower `training.learning_rate`, or check the features for extreme values"
            }
            TrainError::Backend(_) => "run again with `--format json` and report the error",
            TrainError::Checkpoint(_) => "the checkpoint directory must be writable",
        }
    }
}

/// A trained network and how it got there.
#[derive(Debug)]
pub struct Trained {
    pub network: Network,
    pub curve: Vec<Epoch>,
    /// Training rows processed per second, over the whole run.
    pub samples_per_second: f64,
    /// The epoch a checkpoint let training start after.
    pub resumed_from: Option<u32>,
    /// Why checkpoints that were there could not be used (training started over).
    pub unusable_checkpoint: Option<String>,
}

/// A small, seeded generator for the batch order (splitmix64): the same seed gives the same
/// order on every machine.
struct Order(u64);

impl Order {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn shuffle(&mut self, items: &mut [usize]) {
        for i in (1..items.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }
}

fn optimizer(settings: &Settings) -> ModuleOptimizer {
    match settings.optimizer {
        Optimizer::Adam => ModuleOptimizer::from(FusedAdam::default()),
        Optimizer::Adamw => AdamWConfig::new().init(),
        Optimizer::Sgd => SgdConfig::new().init(),
    }
}

/// Features of the rows `index` as a `[rows, width]` tensor.
fn features(table: &Table, index: &[usize], device: &Device) -> Tensor<2> {
    let mut x = Vec::with_capacity(index.len() * table.width);
    for &i in index {
        x.extend_from_slice(table.row(i));
    }
    Tensor::from_data(TensorData::new(x, [index.len(), table.width]), device)
}

fn scalar(t: Tensor<1>) -> Result<f64, TrainError> {
    t.into_data()
        .try_into_vec_as::<f32>()
        .map_err(|e| TrainError::Backend(format!("{e:?}")))?
        .first()
        .map(|&v| f64::from(v))
        .ok_or_else(|| TrainError::Backend("empty loss".to_owned()))
}

/// The loss of a batch: cross-entropy over class indices, or mean squared error.
fn loss(
    task: Task,
    output: Tensor<2>,
    table: &Table,
    index: &[usize],
    device: &Device,
) -> Tensor<1> {
    match task {
        Task::Classification => {
            // `index` is a permutation of the table's rows.
            let y: Vec<i64> = index
                .iter()
                .map(|&i| table.y.get(i).copied().unwrap_or_default() as i64)
                .collect();
            let y = Tensor::<1, Int>::from_data(TensorData::new(y, [index.len()]), device);
            CrossEntropyLossConfig::new()
                .init(device)
                .forward(output, y)
        }
        Task::Regression => {
            let y: Vec<f32> = index
                .iter()
                .map(|&i| table.y.get(i).copied().unwrap_or_default())
                .collect();
            let y = Tensor::<2>::from_data(TensorData::new(y, [index.len(), 1]), device);
            MseLoss::new()
                .forward(output, y, Reduction::Mean)
                .reshape([1])
        }
    }
}

/// The seed of burn's generator for an epoch (dropout masks): a function of the run's seed and
/// the epoch, so a run resumed from a checkpoint draws what an unbroken run draws.
fn epoch_seed(seed: u64, epoch: u32) -> u64 {
    Order(seed ^ u64::from(epoch).wrapping_mul(0xA24B_AED4_963E_E407)).next()
}

/// Makes the calling thread the first of a rayon pool of its own, as many threads as the CPUs
/// rayon would use (`RAYON_NUM_THREADS`, else the available parallelism), for as long as the
/// thread lives. Training calls it: a thread outside any pool hands every parallel matrix product
/// and element-wise loop to rayon's shared pool and sleeps until it is done (two context switches
/// per operation, a few thousand per second of training), while a worker of the pool works on
/// its part itself. On the wide MLP, on this project's 2-CPU machines, that was worth 13% of the
/// training rate (BENCHMARKS.md). A thread already in a pool (the shared one, or its own from
/// `predict::keep_parallel_loops_on_this_thread`) is left as it is.
pub fn share_parallel_loops_with_this_thread() {
    crate::predict::join_a_pool_of_its_own(0);
}

/// Trains a new network on `train` (standardised), validating on `validation` after every
/// epoch; `on_event` sees each batch and epoch as it ends. With `checkpoints`, the state is saved
/// after every epoch and a run starts from the newest checkpoint of the same job.
pub fn train(
    architecture: &Architecture,
    train: &Table,
    validation: &Table,
    settings: &Settings,
    device: &Device,
    checkpoints: Option<&Checkpoints>,
    mut on_event: impl FnMut(Event<'_>),
) -> Result<Trained, TrainError> {
    share_parallel_loops_with_this_thread();
    let _rng = RNG
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let device = device.clone().autodiff();
    device.seed(settings.seed);
    let mut network = Network::new(architecture, &device);
    let mut optim = optimizer(settings);
    let mut order = Order(settings.seed);
    let mut first_loss: Option<f64> = None;
    let mut curve = Vec::new();
    let (mut resumed_from, mut unusable_checkpoint) = (None, None);
    if let Some(c) = checkpoints {
        match c.find(architecture, optimizer(settings), &device) {
            Found::None => {}
            Found::Unusable(why) => unusable_checkpoint = Some(why),
            Found::Resume(r) if r.state.epoch > settings.epochs => {
                unusable_checkpoint = Some(format!(
                    "the newest checkpoint is at epoch {}, past the job's {} epochs",
                    r.state.epoch, settings.epochs
                ));
            }
            Found::Resume(r) => {
                network = r.network;
                optim = r.optimizer;
                order = Order(r.state.order);
                first_loss = r.state.first_loss;
                curve = r.state.curve;
                resumed_from = Some(r.state.epoch);
            }
        }
    }
    if let Some(why) = &unusable_checkpoint {
        on_event(Event::CheckpointUnusable(why));
    }
    if let Some(epoch) = resumed_from {
        on_event(Event::Resumed { epoch });
    }
    let start = resumed_from.unwrap_or(0) + 1;
    let batch = settings.batch_size.max(1);
    let batches_per_epoch = train.rows().div_ceil(batch);
    let mut writer = CheckpointWriter(None);
    let started = Instant::now();
    for epoch in start..=settings.epochs {
        let epoch_started = Instant::now();
        device.seed(epoch_seed(settings.seed, epoch));
        let mut rows: Vec<usize> = (0..train.rows()).collect();
        order.shuffle(&mut rows);
        let mut total = 0.0;
        let mut batches = 0;
        for (b, index) in rows.chunks(batch).enumerate() {
            let output = network.forward(features(train, index, &device));
            let loss = loss(settings.task, output, train, index, &device);
            let value = scalar(loss.clone())?;
            if !value.is_finite() || first_loss.is_some_and(|f| value > f * 1e4 + 1e6) {
                return Err(TrainError::Diverged {
                    epoch,
                    batch: b + 1,
                    loss: value,
                });
            }
            first_loss.get_or_insert(value);
            let grads = GradientsParams::from_grads(loss.backward(), &network);
            network = optim.step(settings.learning_rate, network, grads);
            total += value;
            batches += 1;
            on_event(Event::Batch {
                epoch,
                epochs: settings.epochs,
                batch: b + 1,
                batches: batches_per_epoch,
            });
        }
        let Evaluation {
            loss: validation_loss,
            metrics,
            ..
        } = evaluate(&network.valid(), validation, settings.task)?;
        let record = Epoch {
            epoch,
            loss: total / f64::from(batches.max(1)),
            validation_loss,
            metrics: metrics::by_name(&metrics),
            seconds: epoch_started.elapsed().as_secs_f64(),
        };
        on_event(Event::Epoch(&record));
        curve.push(record);
        if let Some(c) = checkpoints {
            let state = State {
                fingerprint: c.fingerprint.clone(),
                epoch,
                order: order.0,
                first_loss,
                curve: curve.clone(),
            };
            writer.wait()?;
            let (c, network, optim) = (c.clone(), network.clone(), optim.clone());
            writer.0 = Some(std::thread::spawn(move || c.save(&state, &network, &optim)));
        }
    }
    writer.wait()?;
    let elapsed = started.elapsed().as_secs_f64().max(1e-9);
    let trained_epochs = settings.epochs.saturating_sub(start - 1);
    Ok(Trained {
        network: network.valid(),
        samples_per_second: (train.rows() as f64 * f64::from(trained_epochs)) / elapsed,
        curve,
        resumed_from,
        unusable_checkpoint,
    })
}

/// The checkpoint being written, if any. An epoch's checkpoint is written (files, fsync, rename,
/// the directory's fsync) on a thread of its own from handles to that epoch's weights and
/// optimiser state, which burn never changes in place while a handle is held, while the next
/// epoch trains: on the wide MLP the write took 23% of the loop's time (BENCHMARKS.md). It is
/// waited for before the next one starts and before training returns, so at most one is in
/// flight and a returned model's last checkpoint is on disk; a checkpoint counts only once
/// renamed into place, so a job killed during a write resumes from the one before.
struct CheckpointWriter(Option<std::thread::JoinHandle<Result<(), String>>>);

impl CheckpointWriter {
    /// Waits for the write in flight; its failure is training's.
    fn wait(&mut self) -> Result<(), TrainError> {
        match self.0.take().map(std::thread::JoinHandle::join) {
            None => Ok(()),
            Some(Ok(written)) => written.map_err(TrainError::Checkpoint),
            Some(Err(_)) => Err(TrainError::Checkpoint(
                "the checkpoint writer stopped unexpectedly".to_owned(),
            )),
        }
    }
}

impl Drop for CheckpointWriter {
    /// A run that stops early (a diverged loss) still lets the write in flight finish, so no
    /// thread outlives training.
    fn drop(&mut self) {
        let _ = self.wait();
    }
}

/// What a `[rows, outputs]` network output predicts: class indices, or values.
fn predictions(y: Tensor<2>, classification: bool) -> Result<Vec<f32>, TrainError> {
    let backend = |e| TrainError::Backend(format!("{e:?}"));
    if classification {
        Ok(y.argmax(1)
            .into_data()
            .try_into_vec_as::<i64>()
            .map_err(backend)?
            .into_iter()
            .map(|v| v as f32)
            .collect())
    } else {
        y.into_data().try_into_vec_as::<f32>().map_err(backend)
    }
}

/// Loss and metrics of a network on a table, from one forward pass per chunk.
pub fn evaluate(network: &Network, table: &Table, task: Task) -> Result<Evaluation, TrainError> {
    let device = network_device(network);
    let all: Vec<usize> = (0..table.rows()).collect();
    let mut loss_sum = 0.0;
    let mut predicted = Vec::with_capacity(table.rows());
    for index in all.chunks(1024) {
        let output = network.forward(features(table, index, &device));
        loss_sum += scalar(loss(task, output.clone(), table, index, &device))? * index.len() as f64;
        predicted.extend(predictions(output, task == Task::Classification)?);
    }
    let metrics = match task {
        Task::Classification => {
            let p: Vec<usize> = predicted.iter().map(|&v| v as usize).collect();
            let t: Vec<usize> = table.y.iter().map(|&v| v as usize).collect();
            metrics::classification(&p, &t, network.architecture().outputs)
        }
        Task::Regression => metrics::regression(&predicted, &table.y),
    };
    Ok(Evaluation {
        loss: loss_sum / table.rows().max(1) as f64,
        metrics,
        predicted,
    })
}

/// A network scored on a table.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// The mean loss per row.
    pub loss: f64,
    pub metrics: BTreeMap<Metric, f64>,
    /// Each row's prediction: a class index, or the value.
    pub predicted: Vec<f32>,
}

fn network_device(network: &Network) -> Device {
    network
        .devices()
        .into_iter()
        .next()
        .unwrap_or_else(Device::flex)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_batch_order_is_a_seeded_permutation() {
        let mut a: Vec<usize> = (0..50).collect();
        let mut b = a.clone();
        Order(7).shuffle(&mut a);
        Order(7).shuffle(&mut b);
        assert_eq!(a, b);
        let mut c: Vec<usize> = (0..50).collect();
        Order(8).shuffle(&mut c);
        assert_ne!(a, c);
        a.sort_unstable();
        assert_eq!(a, (0..50).collect::<Vec<_>>());
    }

    #[test]
    fn a_training_thread_is_the_first_worker_of_a_pool_of_its_own() {
        let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        std::thread::spawn(move || {
            assert_eq!(rayon_core::current_thread_index(), None);
            share_parallel_loops_with_this_thread();
            share_parallel_loops_with_this_thread();
            assert_eq!(rayon_core::current_thread_index(), Some(0));
            if std::env::var_os("RAYON_NUM_THREADS").is_none() {
                assert_eq!(rayon_core::current_num_threads(), cpus);
            }
            let (a, b) = rayon_core::join(|| 1 + 1, || 2 + 2);
            assert_eq!((a, b), (2, 4));
        })
        .join()
        .expect("the thread and its pool end");
        // A thread that keeps its loops to itself (a serving thread) stays so.
        std::thread::spawn(|| {
            crate::predict::keep_parallel_loops_on_this_thread();
            share_parallel_loops_with_this_thread();
            assert_eq!(rayon_core::current_num_threads(), 1);
        })
        .join()
        .expect("the thread and its pool end");
    }
}
