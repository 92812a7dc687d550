//! The command line: subcommands and shared flags. Every flag is also read from an `MLOPS_*`
//! environment variable, which is how the composite actions pass their inputs.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// MLOps on GitHub Actions from one `mlops.yaml`.
#[derive(Debug, Parser)]
#[command(name = "mlops", version, about, propagate_version = true)]
pub(crate) struct Cli {
    /// Output format. Defaults to `github` inside GitHub Actions (`GITHUB_ACTIONS=true`), else
    /// `human`.
    #[arg(long, global = true, env = "MLOPS_FORMAT", value_enum)]
    pub format: Option<Format>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Check a manifest against its schema and rules; every problem is located at file:line:col.
    Validate(ValidateArgs),
    /// Render Terraform and GitHub workflows from the manifest; `--check` reports drift instead.
    Render(RenderArgs),
    /// Train the manifest's model, score it on validation and holdout data, and register it.
    Train(TrainArgs),
    /// The trainer inside a training container (SageMaker's /opt/ml layout).
    TrainWorker(TrainWorkerArgs),
    /// List, show, approve and reject registered model versions.
    #[command(subcommand)]
    Registry(RegistryCommand),
}

/// How results are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// For people: the source line with a caret and a hint.
    Human,
    /// One JSON document on stdout.
    Json,
    /// GitHub workflow commands: annotations on the pull request.
    Github,
}

impl Format {
    pub(crate) fn from_env() -> Format {
        if std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true") {
            Format::Github
        } else {
            Format::Human
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct ValidateArgs {
    /// Path of a manifest. Repeat it for a repository's several manifests: they are also checked
    /// against each other (derived names must not collide).
    #[arg(long = "manifest", env = "MLOPS_MANIFEST", default_value = "mlops.yaml", action = clap::ArgAction::Append)]
    pub manifests: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct RenderArgs {
    /// Path of the manifest.
    #[arg(long, env = "MLOPS_MANIFEST", default_value = "mlops.yaml")]
    pub manifest: PathBuf,
    /// Directory to render into. Defaults to the root of the git repository holding the
    /// manifest (or the manifest's directory outside git).
    #[arg(long, env = "MLOPS_OUT")]
    pub out: Option<PathBuf>,
    /// Write nothing: show a diff of every file that differs from what would be rendered, and
    /// exit 1 if any does.
    #[arg(long, env = "MLOPS_CHECK")]
    pub check: bool,
    /// Overwrite files that lack the `mlops render` header (files you wrote yourself).
    #[arg(long, env = "MLOPS_FORCE", conflicts_with = "check")]
    pub force: bool,
}

/// Where training runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum TrainBackend {
    /// On this machine, with burn.
    Local,
    /// As a SageMaker training job.
    Sagemaker,
}

#[derive(Debug, Args)]
pub(crate) struct TrainArgs {
    /// Path of the manifest.
    #[arg(long, env = "MLOPS_MANIFEST", default_value = "mlops.yaml")]
    pub manifest: PathBuf,
    /// Where training runs; defaults to the manifest's `training.backend`.
    #[arg(long, env = "MLOPS_BACKEND", value_enum)]
    pub backend: Option<TrainBackend>,
    /// The model registry (a directory); defaults to the manifest's `registry.path`.
    #[arg(long, env = "MLOPS_REGISTRY")]
    pub registry: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct TrainWorkerArgs {
    /// The base of the container layout (`input/`, `model/`, `output/`).
    #[arg(long, env = "MLOPS_WORKER_BASE", default_value = "/opt/ml")]
    pub base: PathBuf,
}

#[derive(Debug, Subcommand)]
pub(crate) enum RegistryCommand {
    /// Every registered version, with its status.
    List(RegistryArgs),
    /// One version's model card.
    Show(RegistryRefArgs),
    /// Mark a version approved (it may go to production).
    Approve(RegistryRefArgs),
    /// Mark a version rejected.
    Reject(RegistryRefArgs),
}

#[derive(Debug, Args)]
pub(crate) struct RegistryArgs {
    /// The registry directory; defaults to the manifest's `registry.path`.
    #[arg(long, env = "MLOPS_REGISTRY")]
    pub registry: Option<PathBuf>,
    /// The manifest whose registry to use when --registry is not given.
    #[arg(long, env = "MLOPS_MANIFEST", default_value = "mlops.yaml")]
    pub manifest: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct RegistryRefArgs {
    /// NAME@VERSION, NAME@latest or NAME@approved.
    pub model: String,
    /// Why (recorded with the status).
    #[arg(long, env = "MLOPS_REASON")]
    pub reason: Option<String>,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    /// Every flag of every subcommand is mirrored to an `MLOPS_*` variable (the actions rely on it).
    #[test]
    fn every_flag_has_an_mlops_variable() {
        let cli = Cli::command();
        let mut checked = 0;
        let nested: Vec<&clap::Command> = cli
            .get_subcommands()
            .flat_map(|c| std::iter::once(c).chain(c.get_subcommands()))
            .collect();
        for cmd in std::iter::once(&cli).chain(nested) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "version") || arg.is_positional() {
                    continue;
                }
                let env = arg.get_env().and_then(|e| e.to_str()).unwrap_or_default();
                assert!(
                    env.starts_with("MLOPS_"),
                    "`{} --{id}` has no MLOPS_* variable",
                    cmd.get_name()
                );
                checked += 1;
            }
        }
        assert!(checked >= 2, "only {checked} flags seen");
    }

    #[test]
    fn the_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
