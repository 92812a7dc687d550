//! Measures burn's two pure-Rust CPU backends on the quickstart MLP, interleaved, in one run:
//! `cargo run -p mlops-train --example cpu_backends [HIDDEN,... [BATCH]]`, e.g. `512,512 256`
//! for the wide MLP of `cargo xtask bench train`. The result picked `flex` for `device: cpu`
//! (figures in BENCHMARKS.md).

use std::path::Path;

use burn::tensor::Device;
use mlops_data::data::{self, Spec};
use mlops_manifest::model::Family;
use mlops_train::model::Architecture;
use mlops_train::train::{self, Settings};

fn main() -> Result<(), String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/quickstart/mlops.yaml");
    let report = mlops_manifest::check_file(&path).map_err(|e| e.to_string())?;
    let m = report.manifest.ok_or("invalid quickstart")?;
    let spec = Spec::from_manifest(&m, path.parent().ok_or("no dir")?)?;
    let d = data::load(&spec).map_err(|e| e.to_string())?;
    let z = d.standardized(mlops_manifest::model::Missing::Error);
    let (train_set, validation) = (z.train, z.validation);
    let mut args = std::env::args().skip(1);
    let mut hyperparameters = m.model.hyperparameters.clone();
    if let Some(layers) = args.next() {
        hyperparameters.hidden_layers = layers
            .split(',')
            .map(|w| {
                w.trim()
                    .parse()
                    .map_err(|_| format!("bad layer width {w:?}"))
            })
            .collect::<Result<_, _>>()?;
    }
    let architecture = Architecture::new(Family::Mlp, 64, 10, &hyperparameters, None);
    let mut settings = Settings::new(m.model.task, &m.training);
    if let Some(batch) = args.next() {
        settings.batch_size = batch
            .parse()
            .map_err(|_| format!("bad batch size {batch:?}"))?;
    }
    println!(
        "hidden layers {:?}, batch {}",
        hyperparameters.hidden_layers, settings.batch_size
    );
    #[allow(deprecated)] // burn 0.22 deprecates ndarray in favour of flex: this is the check
    let backends = [("flex", Device::flex()), ("ndarray", Device::ndarray())];
    let mut results: Vec<(&str, Vec<f64>, f64)> = backends
        .iter()
        .map(|(n, _)| (*n, Vec::new(), 0.0))
        .collect();
    for _ in 0..5 {
        for (i, (_, device)) in backends.iter().enumerate() {
            let t = train::train(
                &architecture,
                &train_set,
                &validation,
                &settings,
                device,
                None,
                |_| {},
            )
            .map_err(|e| e.to_string())?;
            results[i].1.push(t.samples_per_second);
            results[i].2 = t.curve.last().map_or(0.0, |e| e.metrics["accuracy"]);
        }
    }
    println!("backend   samples/s (median of 5)   validation accuracy");
    for (name, mut rates, accuracy) in results {
        rates.sort_by(f64::total_cmp);
        println!(
            "{name:<9} {:>22.0} {accuracy:>21.4}",
            rates[rates.len() / 2]
        );
    }
    Ok(())
}
