//! The work behind `mlops`'s commands. Each flow takes a request (typed values the binary built
//! from its arguments, the manifest already validated), reports progress through a [`Say`]
//! callback, and returns an outcome or a [`Problem`]. Nothing here prints or exits: the binary
//! decides where a line goes (stdout, or stderr when stdout holds JSON) and turns a problem's
//! [`Fault`] into the exit code.

pub mod image;
pub mod problem;
pub mod runtime;

pub use problem::{Fault, Problem};

/// Where a flow reports progress: one human-readable line at a time ("pushed IMAGE"). The binary
/// shows the lines; a test collects them.
pub type Say<'a> = &'a mut dyn FnMut(&str);
