//! The work behind `mlops`'s commands. Each flow takes a request (typed values the binary built
//! from its arguments, the manifest already validated), reports what it does through
//! [`Progress`], and returns an outcome or a [`Problem`]. Nothing here prints or exits: the
//! binary decides where a line goes (stdout, or stderr when stdout holds JSON) and turns a
//! problem's [`Fault`] into the exit code.

pub mod deploy;
pub mod doctor;
pub mod gate;
pub mod github;
pub mod holdout;
pub mod image;
pub mod init;
pub mod monitor;
pub mod predict;
pub mod problem;
pub mod promote;
pub mod registry;
pub mod render;
pub mod run;
pub mod runtime;
pub mod sagemaker;
pub mod serve;
mod staged;
pub mod sweep;
pub mod train;
mod transform;

pub use problem::{Fault, Problem};

/// Where a flow reports what it does, one human-readable line at a time. The binary shows the
/// lines; a test collects them.
pub trait Progress {
    /// A step done or under way ("pushed IMAGE"): the flow's own output, on stdout unless stdout
    /// holds a JSON result.
    fn step(&mut self, line: &str);
    /// A warning or a word on an interruption, always beside the output (stderr), never in it.
    fn notice(&mut self, line: &str);
}
