//! `mlops init`: a new project from a cookiecutter template, rendered as the real `cookiecutter`
//! renders it — the same variables, the same file tree, byte for byte and mode for mode — with
//! the template engine `mlops render` uses ([`engine`]).
//!
//! [`generate`] works in a staging directory beside the destination and moves the project into
//! place only when every file rendered and every hook succeeded, so a failure leaves nothing
//! behind; a rendered path that would leave the project is refused.

pub mod builtin;
pub mod engine;
pub mod generate;
pub mod python;
pub mod source;
pub mod update;

pub use generate::{
    Finish, Generated, InitError, Kind, Prompter, RECORD, Request, generate, project_path,
};
