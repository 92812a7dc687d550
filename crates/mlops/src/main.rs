//! The `mlops` binary: parses the command line and hands each subcommand to its module in
//! [`cmd`]. It owns only what a binary must: argument parsing, output format and exit codes.

// Printing, neutralised for the Actions log (see `out`): defined before the modules so that
// they shadow the standard macros everywhere in the binary.
macro_rules! print {
    ($($t:tt)*) => { $crate::out::print($crate::out::Stream::Out, format_args!($($t)*), false) };
}
macro_rules! println {
    () => { $crate::out::print($crate::out::Stream::Out, format_args!(""), true) };
    ($($t:tt)*) => { $crate::out::print($crate::out::Stream::Out, format_args!($($t)*), true) };
}
macro_rules! eprint {
    ($($t:tt)*) => { $crate::out::print($crate::out::Stream::Err, format_args!($($t)*), false) };
}
macro_rules! eprintln {
    () => { $crate::out::print($crate::out::Stream::Err, format_args!(""), true) };
    ($($t:tt)*) => { $crate::out::print($crate::out::Stream::Err, format_args!($($t)*), true) };
}

mod cli;
mod cmd;
mod exit;
mod out;
mod proposal;

use clap::Parser;

/// mimalloc instead of the system allocator. burn's CPU backend allocates every tensor afresh,
/// and glibc's malloc hands allocations of that size (a 256-row batch's activations are 128 KiB
/// and more) to `mmap` and back to the kernel when they are freed: under load the service then
/// spent a tenth of its CPU on page faults and TLB shootdowns (BENCHMARKS.md, the holdout
/// bench, run 9). Built without transparent huge pages (`no_thp`): mimalloc asked the kernel to
/// back its arenas with 2 MiB pages, so every page it touched counted 2 MiB against the
/// process's memory; without them `mlops predict` peaks at 41 instead of 66 MB and the service
/// at 36 instead of 52 MB, at the same speed (ARCHITECTURE.md, Allocator).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    default_burn_device();
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
    out::json_output(format == cli::Format::Json);
    let code = match cli.command {
        cli::Command::Validate(args) => cmd::validate::run(&args, format),
        cli::Command::Render(args) => cmd::render::run(&args, format),
        cli::Command::Train(args) => cmd::train::run(&args, format),
        cli::Command::TrainWorker(args) => cmd::train_worker(&args.base),
        cli::Command::Registry(command) => cmd::registry::run(&command, format),
        cli::Command::Serve(args) => cmd::serve::run(&args, format),
        cli::Command::Container(args) => cmd::serve::container(&args, format),
        cli::Command::Init(args) => cmd::init::run(&args, format),
        cli::Command::Image(cli::ImageCommand::Push(args)) => cmd::image::push(&args, format),
        cli::Command::Holdout(args) => cmd::holdout::run(&args, format),
        cli::Command::Monitor(args) => cmd::monitor::run(&args, format),
        cli::Command::Predict(args) => cmd::predict::run(&args, format),
        cli::Command::Promote(args) => cmd::promote::run(&args, format),
        cli::Command::Gate(args) => cmd::gate::run(&args, format),
        cli::Command::Doctor(args) => cmd::doctor::run(&args, format),
        cli::Command::Deploy(args) => cmd::deploy::run(&args, format),
        cli::Command::Run(args) => cmd::run::run(&args, format),
    };
    code.into()
}

/// burn puts tensors it creates without being told where (the optimiser state read back from a
/// checkpoint) on its default device, which in a build with wgpu is the GPU: on a machine without
/// a Vulkan driver that would fail, and on one with a software driver it would start it for
/// nothing. Every device mlops trains on is chosen explicitly, so the default is the CPU backend
/// unless the user set `BURN_DEVICE`.
#[allow(unsafe_code)]
fn default_burn_device() {
    if std::env::var_os("BURN_DEVICE").is_none() {
        // SAFETY: called first thing in `main`, before any thread exists, so no other thread can
        // read or write the environment concurrently.
        unsafe { std::env::set_var("BURN_DEVICE", "flex") };
    }
}
