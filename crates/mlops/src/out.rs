//! Every line the binary prints goes through here: the crate root shadows `print!`,
//! `println!`, `eprint!` and `eprintln!` with macros that call [`print`], so text from elsewhere
//! (a dataset's cell, a service's error, a pull request's title) is printed neutral
//! ([`mlops_actions::neutral`]) and cannot be read by the Actions runner as a workflow command.
//! The binary's own workflow commands (annotations, log groups) are printed by [`command`].

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

/// Standard output is JSON (`--format json`).
static JSON: AtomicBool = AtomicBool::new(false);

pub(crate) fn json_output(on: bool) {
    JSON.store(on, Ordering::Relaxed);
}

#[derive(Clone, Copy)]
pub(crate) enum Stream {
    Out,
    Err,
}

/// Writes `args` (and a newline when `newline`) neutralised; write errors are ignored (a closed
/// pipe must not turn into a panic).
pub(crate) fn print(stream: Stream, args: std::fmt::Arguments<'_>, newline: bool) {
    let text = match args.as_str() {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(args.to_string()),
    };
    let json = matches!(stream, Stream::Out) && JSON.load(Ordering::Relaxed);
    let safe = mlops_actions::neutral(&text, json);
    let end: &[u8] = if newline { b"\n" } else { b"" };
    let _ = match stream {
        Stream::Out => {
            let mut o = std::io::stdout().lock();
            o.write_all(safe.as_bytes()).and_then(|()| o.write_all(end))
        }
        Stream::Err => {
            let mut e = std::io::stderr().lock();
            e.write_all(safe.as_bytes()).and_then(|()| e.write_all(end))
        }
    };
}

/// Prints workflow commands the binary made itself (annotations, groups), as they are.
pub(crate) fn command(text: &str) {
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(text.as_bytes());
}
