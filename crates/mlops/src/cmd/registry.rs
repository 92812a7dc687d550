//! `mlops registry list|show|approve|reject`: the model registry, in a directory or on S3.

use mlops_train::registry::{ModelRef, Registry, RegistryError, Status, tally};
use serde_json::json;

use crate::cli::{Format, RegistryArgs, RegistryCommand, RegistryRefArgs};
use crate::cmd::train::open_registry;
use crate::cmd::{error, valid_manifest};
use crate::exit::Exit;

/// The registry of `--registry`, else of the manifest.
pub(crate) fn open(args: &RegistryArgs, format: Format) -> Result<Registry, Exit> {
    if let Some(dir) = &args.registry {
        return Registry::at(&dir.to_string_lossy(), std::path::Path::new(""))
            .map_err(|e| failed(&e));
    }
    let (m, _) = valid_manifest(&args.manifest, format, "no registry to open")?;
    open_registry(None, &m, &args.manifest)
}

fn failed(e: &RegistryError) -> Exit {
    error(&e.message, &e.hint);
    if e.user { Exit::Usage } else { Exit::Runtime }
}

fn reference(args: &RegistryRefArgs) -> Result<ModelRef, Exit> {
    args.model.parse().map_err(|e: String| {
        error(&e, "");
        Exit::Usage
    })
}

pub(crate) fn run(command: &RegistryCommand, format: Format) -> Exit {
    match command {
        RegistryCommand::List(args) => list(args, format),
        RegistryCommand::Show(args) => show(args, format),
        RegistryCommand::Approve(args) => set(args, Status::Approved, format),
        RegistryCommand::Reject(args) => set(args, Status::Rejected, format),
    }
}

fn list(args: &RegistryArgs, format: Format) -> Exit {
    let registry = match open(args, format) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let entries = match registry.list() {
        Ok(e) => e,
        Err(e) => return failed(&e),
    };
    if format == Format::Json {
        println!(
            "{}",
            json!({ "registry": registry.location(), "versions": entries })
        );
        return Exit::Ok;
    }
    if entries.is_empty() {
        println!("no models in {}", registry.location());
        return Exit::Ok;
    }
    println!("{:<32} {:<9} {:<20} reason", "model", "status", "changed");
    for e in &entries {
        println!(
            "{:<32} {:<9} {:<20} {}",
            e.reference,
            e.status.status.name(),
            e.status.changed_at,
            e.status.reason
        );
    }
    let counts: Vec<String> = tally(&entries)
        .iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect();
    println!("{} versions: {}", entries.len(), counts.join(", "));
    Exit::Ok
}

fn show(args: &RegistryRefArgs, format: Format) -> Exit {
    let (registry, r) = match (open(&args.registry, format), reference(args)) {
        (Ok(reg), Ok(r)) => (reg, r),
        (Err(code), _) | (_, Err(code)) => return code,
    };
    let entry = match registry.resolve(&r) {
        Ok(e) => e,
        Err(e) => return failed(&e),
    };
    let card = match registry.card(&entry.model, entry.version) {
        Ok(c) => c,
        Err(e) => return failed(&e),
    };
    let doc = json!({ "ref": entry.reference, "status": entry.status, "location": entry.location, "card": card });
    if format == Format::Json {
        println!("{doc}");
    } else {
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    }
    Exit::Ok
}

fn set(args: &RegistryRefArgs, status: Status, format: Format) -> Exit {
    let (registry, r) = match (open(&args.registry, format), reference(args)) {
        (Ok(reg), Ok(r)) => (reg, r),
        (Err(code), _) | (_, Err(code)) => return code,
    };
    let reason = args
        .reason
        .clone()
        .unwrap_or_else(|| format!("{} with `mlops registry`", status.name()));
    match registry.set_status(&r, status, &reason) {
        Ok(entry) => {
            if format == Format::Json {
                println!(
                    "{}",
                    json!({ "ref": entry.reference, "status": entry.status })
                );
            } else {
                println!("{} is {}", entry.reference, status.name());
            }
            Exit::Ok
        }
        Err(e) => failed(&e),
    }
}
