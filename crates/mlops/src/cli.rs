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

/// The manifest flag every manifest-reading subcommand shares.
#[derive(Debug, Args)]
pub(crate) struct ManifestArg {
    /// Path of the manifest.
    #[arg(long, env = "MLOPS_MANIFEST", default_value = "mlops.yaml")]
    pub manifest: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct ValidateArgs {
    #[command(flatten)]
    pub manifest: ManifestArg,
}
