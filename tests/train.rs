//! Training for real on the quickstart's digits with burn's CPU backend: the quality bar,
//! reproducibility (same seed, byte-identical weights), a different seed giving different
//! weights, and a run resumed from a checkpoint ending where an unbroken run ends.

// Tests: a panic here is a failed run, not a user's crash.
#![allow(clippy::indexing_slicing, clippy::string_slice)]

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use mlops_data::data::{self, Spec};
use mlops_manifest::Manifest;
use mlops_manifest::model::{Family, Metric};
use mlops_train::checkpoint::Checkpoints;
use mlops_train::model::Architecture;
use mlops_train::train::{self, Event, Settings, Trained};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn quickstart() -> (Manifest, PathBuf) {
    let path = root().join("examples/quickstart/mlops.yaml");
    let report = mlops_manifest::check_file(&path).expect("readable");
    assert!(report.is_valid(), "{:?}", report.diagnostics);
    (report.manifest.expect("typed"), path)
}

struct Run {
    trained: Trained,
    holdout: std::collections::BTreeMap<Metric, f64>,
    weights: Vec<u8>,
}

fn run(m: &Manifest, manifest: &Path, seed: u64) -> Run {
    let spec = Spec::from_manifest(m, manifest.parent().expect("dir")).expect("spec");
    let d = data::load(&spec).expect("loads");
    let classes = d.classes.as_ref().expect("classification").0.len();
    let z = d.standardized(mlops_manifest::model::Missing::Error);
    let (train_set, validation, holdout) = (z.train, z.validation, z.holdout);
    let architecture = Architecture::new(
        Family::Mlp,
        spec.features.len(),
        classes,
        &m.model.hyperparameters,
        None,
    );
    let settings = Settings {
        seed,
        ..Settings::new(m.model.task, &m.training)
    };
    let device = Device::flex();
    let trained = train::train(
        &architecture,
        &train_set,
        &validation,
        &settings,
        &device,
        None,
        |_| {},
    )
    .expect("trains");
    let holdout = train::evaluate(&trained.network, &holdout, m.model.task)
        .expect("scores")
        .metrics;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("model.safetensors");
    mlops_train::model::save(&trained.network, &path).expect("saves");
    let weights = std::fs::read(&path).expect("weights");
    Run {
        trained,
        holdout,
        weights,
    }
}

#[test]
fn quickstart_reaches_the_quality_bar_and_is_reproducible() {
    let (m, path) = quickstart();
    let a = run(&m, &path, m.training.seed);
    let last = a.trained.curve.last().expect("epochs");
    assert_eq!(
        Some(a.trained.curve.len()),
        m.training.epochs.map(|e| e as usize)
    );
    let accuracy = last.metrics["accuracy"];
    assert!(accuracy >= 0.95, "validation accuracy {accuracy}");
    assert!(a.holdout[&Metric::Accuracy] >= 0.9, "{:?}", a.holdout);
    let first = &a.trained.curve[0];
    assert!(
        last.loss < first.loss / 4.0,
        "{} -> {}",
        first.loss,
        last.loss
    );

    let b = run(&m, &path, m.training.seed);
    assert!(a.weights == b.weights, "same seed, different weights");
    assert_eq!(
        a.trained.curve.last().map(|e| &e.metrics),
        b.trained.curve.last().map(|e| &e.metrics)
    );
    assert_eq!(a.holdout, b.holdout);

    let c = run(&m, &path, m.training.seed + 1);
    assert!(
        a.weights != c.weights,
        "a different seed gave the same weights"
    );
}

/// Layers wide enough that burn's CPU backend splits each matrix multiply across threads (its
/// threshold is 192^3 multiply-adds) still train to byte-identical weights: each output element
/// is summed by one thread in a fixed order.
#[test]
fn a_wide_mlp_multiplied_across_threads_is_reproducible() {
    let (mut m, path) = quickstart();
    m.model.hyperparameters.hidden_layers = vec![512, 512];
    m.training.batch_size = 128;
    m.training.epochs = Some(2);
    let a = run(&m, &path, m.training.seed);
    let b = run(&m, &path, m.training.seed);
    assert!(a.weights == b.weights, "same seed, different weights");
    let losses = |r: &Run| -> Vec<(f64, f64)> {
        r.trained
            .curve
            .iter()
            .map(|e| (e.loss, e.validation_loss))
            .collect()
    };
    assert_eq!(losses(&a), losses(&b));
    let accuracy = a.trained.curve.last().expect("epochs").metrics["accuracy"];
    assert!(accuracy > 0.5, "validation accuracy {accuracy}");
}

/// The small CNN learns the 8x8 digits as images.
#[test]
fn the_cnn_learns_the_digits_as_8x8_images() {
    let (m, path) = quickstart();
    let spec = Spec::from_manifest(&m, path.parent().expect("dir")).expect("spec");
    let d = data::load(&spec).expect("loads");
    let z = d.standardized(mlops_manifest::model::Missing::Error);
    let hp = mlops_manifest::model::Hyperparameters {
        hidden_layers: vec![32],
        conv_channels: Some(vec![8, 16]),
        kernel_size: Some(3),
        ..m.model.hyperparameters.clone()
    };
    let image = mlops_manifest::model::ImageShape {
        height: 8,
        width: 8,
    };
    let architecture = Architecture::new(Family::Cnn, 64, 10, &hp, Some(image));
    let settings = Settings {
        epochs: 15,
        seed: 1,
        ..Settings::new(m.model.task, &m.training)
    };
    let trained = train::train(
        &architecture,
        &z.train,
        &z.validation,
        &settings,
        &Device::flex(),
        None,
        |_| {},
    )
    .expect("trains");
    let accuracy = trained.curve.last().expect("epochs").metrics["accuracy"];
    assert!(accuracy >= 0.9, "cnn validation accuracy {accuracy}");
}

/// A spot instance reclaimed after epoch 3 and restarted: the run resumed from the checkpoint
/// ends with the weights and curve of a run that never stopped (dropout on, so burn's generator
/// must be restored too). A checkpoint of another job, or one left half-written, is not used.
#[test]
fn a_run_resumed_from_a_checkpoint_ends_where_an_unbroken_run_ends() {
    let (m, path) = quickstart();
    let spec = Spec::from_manifest(&m, path.parent().expect("dir")).expect("spec");
    let z = data::load(&spec)
        .expect("loads")
        .standardized(mlops_manifest::model::Missing::Error);
    let hp = mlops_manifest::model::Hyperparameters {
        hidden_layers: vec![32],
        dropout: 0.2,
        ..m.model.hyperparameters.clone()
    };
    let architecture = Architecture::new(Family::Mlp, 64, 10, &hp, None);
    let settings = |epochs| Settings {
        epochs,
        ..Settings::new(m.model.task, &m.training)
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let weights = |t: &Trained, name: &str| {
        let file = dir.path().join(name);
        mlops_train::model::save(&t.network, &file).expect("saves");
        std::fs::read(&file).expect("weights")
    };
    let train = |epochs, checkpoints: Option<&Checkpoints>, events: &mut Vec<String>| {
        train::train(
            &architecture,
            &z.train,
            &z.validation,
            &settings(epochs),
            &Device::flex(),
            checkpoints,
            |e| match e {
                Event::Batch { .. } => {}
                Event::Epoch(e) => events.push(format!("epoch {}", e.epoch)),
                other => events.push(format!("{other:?}")),
            },
        )
        .expect("trains")
    };
    let unbroken = train(6, None, &mut Vec::new());

    let checkpoints = Checkpoints {
        dir: dir.path().join("checkpoints"),
        fingerprint: "job-a".into(),
    };
    let mut events = Vec::new();
    let first = train(3, Some(&checkpoints), &mut events);
    assert_eq!(first.resumed_from, None);
    assert_eq!(events, ["epoch 1", "epoch 2", "epoch 3"]);
    let kept: Vec<String> = std::fs::read_dir(checkpoints.job_dir())
        .expect("checkpoints")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(kept, ["epoch-000003"], "older checkpoints are removed");
    // A checkpoint being written when the instance went away.
    std::fs::create_dir(checkpoints.job_dir().join(".epoch-000004.partial")).expect("mkdir");

    let mut events = Vec::new();
    let resumed = train(6, Some(&checkpoints), &mut events);
    assert_eq!(resumed.resumed_from, Some(3));
    assert_eq!(
        events,
        ["Resumed { epoch: 3 }", "epoch 4", "epoch 5", "epoch 6"]
    );
    assert!(
        weights(&resumed, "resumed") == weights(&unbroken, "unbroken"),
        "the resumed run's weights differ from the unbroken run's"
    );
    let losses = |t: &Trained| t.curve.iter().map(|e| e.loss).collect::<Vec<_>>();
    assert_eq!(losses(&resumed), losses(&unbroken));

    // Another job sharing the directory (as jobs share a `checkpoint_uri`) neither resumes
    // from this job's checkpoints nor removes them.
    let other = Checkpoints {
        fingerprint: "job-b".into(),
        ..checkpoints.clone()
    };
    let mut events = Vec::new();
    let fresh = train(2, Some(&other), &mut events);
    assert_eq!(fresh.resumed_from, None);
    assert_eq!(events, ["epoch 1", "epoch 2"]);
    assert_ne!(other.job_dir(), checkpoints.job_dir());
    assert!(
        checkpoints
            .job_dir()
            .join("epoch-000006/state.json")
            .is_file()
    );
    assert!(other.job_dir().join("epoch-000002/state.json").is_file());
    // A checkpoint of another job put where this job's are is still refused.
    let moved = other.job_dir().join("epoch-000002");
    std::fs::rename(&moved, checkpoints.job_dir().join("epoch-000009")).expect("moves");
    let mut events = Vec::new();
    let refused = train(2, Some(&checkpoints), &mut events);
    assert_eq!(refused.resumed_from, None);
    assert!(events[0].contains("belongs to another job"), "{events:?}");
}

#[test]
fn a_checkpoint_that_cannot_be_written_stops_training_with_its_path() {
    let (m, path) = quickstart();
    let spec = Spec::from_manifest(&m, path.parent().expect("dir")).expect("spec");
    let z = data::load(&spec)
        .expect("loads")
        .standardized(mlops_manifest::model::Missing::Error);
    let architecture = Architecture::new(Family::Mlp, 64, 10, &m.model.hyperparameters, None);
    let dir = tempfile::tempdir().expect("tempdir");
    // A file where the checkpoint directory's parent should be: the write, made on the
    // checkpoint writer's own thread, fails, and training must say so rather than go on.
    let blocker = dir.path().join("not-a-directory");
    std::fs::write(&blocker, b"").expect("file");
    let checkpoints = Checkpoints {
        dir: blocker.join("checkpoints"),
        fingerprint: "job-b".into(),
    };
    let mut epochs = 0;
    let result = train::train(
        &architecture,
        &z.train,
        &z.validation,
        &Settings {
            epochs: 3,
            ..Settings::new(m.model.task, &m.training)
        },
        &Device::flex(),
        Some(&checkpoints),
        |e| {
            if let Event::Epoch(_) = e {
                epochs += 1;
            }
        },
    );
    match result {
        Err(train::TrainError::Checkpoint(why)) => {
            assert!(why.contains("not-a-directory"), "{why}");
        }
        other => panic!("expected a checkpoint error, got {other:?}"),
    }
    // The first epoch's write fails; it is found out before the second epoch's write at the
    // latest, never after training returned a model.
    assert!((1..=2).contains(&epochs), "{epochs} epochs ran");
}
