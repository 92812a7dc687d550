//! Training checkpoints: everything the loop needs to go on from the end of an epoch exactly as if
//! it had never stopped — the weights (with their parameter ids, which key the optimiser state),
//! the optimiser state, the batch-order generator, the curve so far.
//!
//! SageMaker managed spot training stops a job when it reclaims the instance and restarts it with
//! the checkpoint directory restored; the worker saves after every epoch and resumes from the
//! newest complete checkpoint of the job. Checkpoints are kept under a directory named by the
//! job's fingerprint (`job-<16 hex digits>/`), so jobs sharing one `checkpoint_uri` neither
//! resume from nor delete each other's. Each checkpoint is written to a hidden `.partial`
//! directory, flushed to disk, and renamed into place, so a job killed mid-write leaves the
//! previous checkpoint intact; older checkpoints of the job are removed once a newer one is in
//! place.

use std::path::{Path, PathBuf};

use burn::optim::ModuleOptimizer;
use burn::tensor::Device;
use burn_store::{BurnpackStore, ModuleSnapshot};
use serde::{Deserialize, Serialize};

use crate::model::{Architecture, Network};
use crate::train::Epoch;

const STATE: &str = "state.json";
const NETWORK: &str = "network.bpk";
const OPTIMIZER: &str = "optimizer.bpk";

/// Where checkpoints go, and the job they belong to.
#[derive(Debug, Clone)]
pub struct Checkpoints {
    pub dir: PathBuf,
    /// Identifies the job apart from its epoch count (a checkpoint of the same job with fewer
    /// epochs is a valid start for more); a checkpoint with another fingerprint is not used.
    pub fingerprint: String,
}

/// The loop's state after an epoch, beside the weights and the optimiser.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub fingerprint: String,
    pub epoch: u32,
    /// The batch-order generator.
    pub order: u64,
    pub first_loss: Option<f64>,
    pub curve: Vec<Epoch>,
}

/// A checkpoint read back.
pub(crate) struct Restored {
    pub state: State,
    pub network: Network,
    pub optimizer: ModuleOptimizer,
}

/// What was found in the checkpoint directory.
pub(crate) enum Found {
    /// Nothing to resume from.
    None,
    /// A checkpoint of this job.
    Resume(Box<Restored>),
    /// Checkpoints that cannot be used, and why; training starts over.
    Unusable(String),
}

impl Checkpoints {
    /// This job's own directory under `dir`.
    pub fn job_dir(&self) -> PathBuf {
        let key: String = self
            .fingerprint
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .take(16)
            .collect();
        self.dir.join(format!("job-{key}"))
    }

    fn epoch_dir(&self, epoch: u32) -> PathBuf {
        self.job_dir().join(format!("epoch-{epoch:06}"))
    }

    /// Complete checkpoints of this job, newest first.
    fn complete(&self) -> Vec<(u32, PathBuf)> {
        let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir(self.job_dir())
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let epoch = name.strip_prefix("epoch-")?.parse().ok()?;
                Some((epoch, e.path()))
            })
            .collect();
        found.sort_by_key(|f| std::cmp::Reverse(f.0));
        found
    }

    /// Saves the state after `state.epoch`, then removes older checkpoints.
    pub(crate) fn save(
        &self,
        state: &State,
        network: &Network,
        optimizer: &ModuleOptimizer,
    ) -> Result<(), String> {
        let at = |p: &Path, e: &dyn std::fmt::Display| format!("{}: {e}", p.display());
        let job = self.job_dir();
        std::fs::create_dir_all(&job).map_err(|e| at(&job, &e))?;
        let partial = job.join(format!(".epoch-{:06}.partial", state.epoch));
        if partial.exists() {
            std::fs::remove_dir_all(&partial).map_err(|e| at(&partial, &e))?;
        }
        std::fs::create_dir(&partial).map_err(|e| at(&partial, &e))?;
        let file = partial.join(NETWORK);
        network
            .save_into(&mut BurnpackStore::from_file(&file).overwrite(true))
            .map_err(|e| at(&file, &format!("{e:?}")))?;
        let file = partial.join(OPTIMIZER);
        optimizer
            .save(&file)
            .map_err(|e| at(&file, &format!("{e:?}")))?;
        let file = partial.join(STATE);
        crate::write_json(&file, state).map_err(|e| at(&file, &e))?;
        let done = self.epoch_dir(state.epoch);
        if done.exists() {
            std::fs::remove_dir_all(&done).map_err(|e| at(&done, &e))?;
        }
        mlops_artifacts::fs::sync_files_in(&partial).map_err(|e| at(&partial, &e))?;
        std::fs::rename(&partial, &done).map_err(|e| at(&done, &e))?;
        mlops_artifacts::fs::sync_dir(&job).map_err(|e| at(&job, &e))?;
        for (epoch, dir) in self.complete() {
            if epoch < state.epoch {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
        Ok(())
    }

    /// The newest checkpoint of this job, ready to train on from `device`.
    pub(crate) fn find(
        &self,
        architecture: &Architecture,
        fresh_optimizer: ModuleOptimizer,
        device: &Device,
    ) -> Found {
        let complete = self.complete();
        let Some((_, dir)) = complete.first() else {
            return Found::None;
        };
        match self.read(dir, architecture, fresh_optimizer, device) {
            Ok(restored) => Found::Resume(Box::new(restored)),
            Err(why) => Found::Unusable(why),
        }
    }

    fn read(
        &self,
        dir: &Path,
        architecture: &Architecture,
        fresh_optimizer: ModuleOptimizer,
        device: &Device,
    ) -> Result<Restored, String> {
        let file = dir.join(STATE);
        let text =
            std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        let state: State =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
        if state.fingerprint != self.fingerprint {
            return Err(format!(
                "{} belongs to another job (other data, model or settings)",
                dir.display()
            ));
        }
        let mut network = Network::new(architecture, device);
        let file = dir.join(NETWORK);
        let result = network
            .load_from(&mut BurnpackStore::from_file(&file))
            .map_err(|e| format!("{}: {e:?}", file.display()))?;
        if !result.is_success() || !result.missing.is_empty() {
            return Err(format!(
                "{}: the weights do not fit the architecture",
                file.display()
            ));
        }
        let file = dir.join(OPTIMIZER);
        let optimizer = fresh_optimizer
            .load(&file)
            .map_err(|e| format!("{}: {e:?}", file.display()))?;
        Ok(Restored {
            state,
            network,
            optimizer,
        })
    }
}
