//! Finding the external test tools (installed by `cargo xtask tools`) on PATH. Without them a
//! test says so and passes, unless `MLOPS_REQUIRE_TOOLS=1` (set by `cargo xtask ci`), where a
//! missing tool is a failure.

use std::path::PathBuf;

/// The tool's path on PATH, or `None` (after saying why) when tools are optional here.
#[allow(dead_code)] // each test binary includes this file and uses what it needs
pub(crate) fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|p| p.is_file());
    if found.is_none() {
        missing(&format!(
            "`{name}` is not on PATH; run `cargo xtask tools` and put its bin directory on PATH"
        ));
    }
    found
}

/// Says a test tool or file is missing: a failure under `MLOPS_REQUIRE_TOOLS=1`, else a skip.
#[allow(dead_code)] // each test binary includes this file and uses what it needs
pub(crate) fn missing(what: &str) {
    let required = std::env::var("MLOPS_REQUIRE_TOOLS").is_ok_and(|v| v == "1");
    assert!(!required, "{what}");
    eprintln!("skipping: {what}");
}

/// The interpreter of the ML tools' environment (`MLOPS_ML_PYTHON`, set by `cargo xtask ci`;
/// `cargo xtask tools` installs it and prints the path), or `None` after saying why.
#[allow(dead_code)] // each test binary includes this file and uses what it needs
pub(crate) fn ml_python() -> Option<PathBuf> {
    let found = std::env::var_os("MLOPS_ML_PYTHON")
        .map(PathBuf::from)
        .filter(|p| p.is_file());
    if found.is_none() {
        missing(
            "MLOPS_ML_PYTHON does not name a Python interpreter; run `cargo xtask tools` and set \
             it to the one it prints",
        );
    }
    found
}
