//! Local training: datasets streamed and hashed ([`data`]), the burn networks ([`model`]), the
//! compute device ([`device`]), the training loop ([`train`]), evaluation metrics ([`metrics`]),
//! the model registry ([`registry`]) and predictions from a saved artifact ([`predict`]).

pub mod checkpoint;
pub mod data;
pub mod device;
pub mod metrics;
pub mod model;
pub mod number;
pub mod predict;
pub mod records;
pub mod registry;
pub mod train;
pub mod worker;

/// Writes `value` as pretty JSON with a final newline, atomically: a temporary file beside
/// `path`, renamed over it, so a reader sees the old file or the new one, never half of one.
pub(crate) fn write_json(
    path: &std::path::Path,
    value: &impl serde::Serialize,
) -> std::io::Result<()> {
    let mut text = serde_json::to_string_pretty(value).map_err(std::io::Error::other)?;
    text.push('\n');
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut tmp, text.as_bytes())?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
