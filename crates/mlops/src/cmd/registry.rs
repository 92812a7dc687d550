//! `mlops registry list|show|approve|reject`: the model registry, in a directory or on S3, and
//! the SageMaker model package group beside it, shown as a table or JSON. Approving or rejecting
//! is [`mlops_core::registry::set_status`] (the model package first, then the registry).

use mlops_core::registry::on_sagemaker;
use mlops_registry::{ModelRef, Registry, Status};
use serde_json::json;

use crate::cli::{Format, RegistryCommand, RegistryListArgs, RegistryRefArgs};
use crate::cmd::{error, valid_manifest};
use crate::exit::Exit;

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

fn list_packages(args: &RegistryListArgs, group: &str, format: Format) -> Exit {
    let group = if group == "sagemaker" {
        let m = match valid_manifest(&args.registry.manifest, format, "no group to list") {
            Ok((m, _)) => m,
            Err(code) => return code,
        };
        match m.registry.sagemaker_model_package_group {
            Some(g) => g,
            None => {
                error(
                    "the manifest has no registry.sagemaker_model_package_group",
                    "name the group: --model-package-group NAME",
                );
                return Exit::Usage;
            }
        }
    } else {
        group.to_owned()
    };
    let packages = match on_sagemaker(async |sm| sm.packages(&group).await) {
        Ok(p) => p,
        Err(p) => return super::failed(&p),
    };
    if format == Format::Json {
        let rows: Vec<_> = packages
            .iter()
            .map(|p| json!({ "arn": p.arn, "version": p.version, "approval": p.approval, "description": p.description, "created": p.created }))
            .collect();
        println!(
            "{}",
            json!({ "model_package_group": group, "packages": rows })
        );
        return Exit::Ok;
    }
    print!(
        "{}",
        mlops_aws::sagemaker::Package::table(&group, &packages)
    );
    Exit::Ok
}

fn list(args: &RegistryListArgs, format: Format) -> Exit {
    if let Some(group) = &args.model_package_group {
        return list_packages(args, group, format);
    }
    let args = &args.registry;
    let registry = match super::registry(args, format) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let entries = match registry.list() {
        Ok(e) => e,
        Err(e) => return super::failed(&e.into()),
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
    print!("{}", mlops_registry::table(&entries));
    Exit::Ok
}

/// The registry and the reference the arguments name.
fn opened(args: &RegistryRefArgs, format: Format) -> Result<(Registry, ModelRef), Exit> {
    Ok((super::registry(&args.registry, format)?, reference(args)?))
}

fn show(args: &RegistryRefArgs, format: Format) -> Exit {
    let shown = opened(args, format).and_then(|(registry, r)| {
        mlops_core::registry::show(&registry, &r).map_err(|p| super::failed(&p))
    });
    let (entry, card, package) = match shown {
        Ok(found) => found,
        Err(code) => return code,
    };
    let mut doc = json!({ "ref": entry.reference, "status": entry.status, "location": entry.location, "card": card });
    if let Some(p) = package
        && let Some(fields) = doc.as_object_mut()
    {
        fields.insert(
            "model_package".to_owned(),
            json!({
                "arn": p.arn,
                "version": p.version,
                "approval": p.approval,
                "approval_description": p.approval_description,
                "model_data_url": p.model_data_url,
                "metadata": p.metadata,
            }),
        );
    }
    if format == Format::Json {
        println!("{doc}");
    } else {
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    }
    Exit::Ok
}

fn set(args: &RegistryRefArgs, status: Status, format: Format) -> Exit {
    let (registry, r) = match opened(args, format) {
        Ok(found) => found,
        Err(code) => return code,
    };
    let set = mlops_core::registry::set_status(
        &registry,
        &r,
        status,
        args.reason.as_deref(),
        &mut super::Console(format),
    );
    match set {
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
        Err(p) => super::failed(&p),
    }
}
