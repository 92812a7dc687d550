//! The `mlops` binary: parses the command line and hands each subcommand to its module in
//! [`cmd`]. It owns only what a binary must: argument parsing, output format and exit codes.

mod cli;
mod cmd;
mod exit;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version print to stdout and exit 0; usage errors exit 2.
            let _ = e.print();
            return if e.use_stderr() {
                exit::Exit::Usage.into()
            } else {
                exit::Exit::Ok.into()
            };
        }
    };
    let format = cli.format.unwrap_or_else(cli::Format::from_env);
    let code = match cli.command {
        cli::Command::Validate(args) => cmd::validate::run(&args, format),
        cli::Command::Render(args) => cmd::render::run(&args, format),
        cli::Command::Train(args) => cmd::train::run(&args, format),
        cli::Command::TrainWorker(args) => cmd::train::worker(&args),
        cli::Command::Registry(command) => cmd::registry::run(&command, format),
    };
    code.into()
}
