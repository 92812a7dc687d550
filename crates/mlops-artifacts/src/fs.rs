//! Writing the files mlops reads back: whole or not at all.

/// Writes `value` as pretty JSON with a final newline, atomically (see [`write_atomically`]).
pub fn write_json(path: &std::path::Path, value: &impl serde::Serialize) -> std::io::Result<()> {
    let mut text = serde_json::to_string_pretty(value).map_err(std::io::Error::other)?;
    text.push('\n');
    write_atomically(path, text.as_bytes())
}

/// Writes `bytes` to `path` through a temporary file beside it, renamed over it: a reader sees
/// the old file or the new one, never half of one. The file gets the mode a plain
/// `File::create` gives (0666 less the umask), not a temporary file's 0600, so that a registry
/// or a report shared with other users or a container's user stays readable. The directory is
/// created when missing.
pub fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let mut builder = tempfile::Builder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let mut tmp = builder.tempfile_in(dir)?;
    std::io::Write::write_all(&mut tmp, bytes)?;
    // On disk before the name points at it: after a crash the name holds the old file or the
    // whole new one, never an empty one (ext4 and XFS may order the rename first).
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(dir)
}

/// Makes the entries of `dir` (a rename into it, a file created in it) durable.
pub fn sync_dir(dir: &std::path::Path) -> std::io::Result<()> {
    #[cfg(unix)]
    std::fs::File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Makes every file directly in `dir`, and `dir`'s own entries, durable: for a directory
/// written by others (a checkpoint's weights) before it is renamed into place.
pub fn sync_files_in(dir: &std::path::Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::File::open(entry.path())?.sync_all()?;
        }
    }
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_atomic_write_has_the_mode_of_a_plain_one_and_replaces_the_file_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let plain = dir.path().join("plain");
        std::fs::write(&plain, b"x").expect("write");
        let atomic = dir.path().join("deeper/atomic.json");
        super::write_atomically(&atomic, b"old").expect("writes");
        super::write_atomically(&atomic, b"new").expect("replaces");
        assert_eq!(std::fs::read(&atomic).expect("reads"), b"new");
        let mode = |p: &std::path::Path| std::fs::metadata(p).expect("metadata").permissions();
        assert_eq!(mode(&atomic), mode(&plain));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // Readable by others unless the umask says otherwise (it does not in CI).
            assert_eq!(mode(&atomic).mode() & 0o777, mode(&plain).mode() & 0o777);
        }
        let left: Vec<_> = std::fs::read_dir(atomic.parent().expect("dir"))
            .expect("lists")
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .collect();
        assert_eq!(left, ["atomic.json"], "no temporary file is left beside it");
    }
}
