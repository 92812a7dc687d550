//! Files written whole before they are put in place: staged beside a local destination (the
//! rename into place is then atomic, on one filesystem) or in a scratch directory for an `s3://`
//! one (uploaded once whole). A failure before [`put`] leaves the destination as it was.

use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use crate::Problem;

/// A new hidden file (`{prefix}…`) where `dest` will be put: beside it, or in `scratch` for
/// `s3://`. Readable by others as a file written normally is (0666 less the umask), not 0600.
pub(crate) fn stage(dest: &str, scratch: &Path, prefix: &str) -> Result<NamedTempFile, Problem> {
    let dir = if dest.starts_with("s3://") {
        scratch.to_owned()
    } else {
        match Path::new(dest).parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        }
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix(prefix);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    builder
        .tempfile_in(&dir)
        .map_err(|e| Problem::input(format!("cannot write in {}: {e}", dir.display()), ""))
}

/// The whole `staged` file at `dest`: renamed over a local path (over an existing file only
/// with `overwrite`), or uploaded.
pub(crate) fn put(staged: NamedTempFile, dest: &str, overwrite: bool) -> Result<(), Problem> {
    if dest.starts_with("s3://") {
        let uri = mlops_aws::S3Uri::parse(dest)?;
        let rt = crate::runtime::current_thread()?;
        return rt.block_on(async {
            let s3 = mlops_aws::S3::from_env().await;
            s3.upload(staged.path(), &uri).await.map_err(Problem::from)
        });
    }
    let persisted = if overwrite {
        staged.persist(dest)
    } else {
        staged.persist_noclobber(dest)
    };
    persisted.map(|_| ()).map_err(|e| {
        let hint = if overwrite {
            ""
        } else {
            "pass --overwrite to replace an existing file"
        };
        Problem::input(format!("cannot write {dest}: {}", e.error), hint)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_staged_file_is_put_whole_and_keeps_what_exists_unless_told() {
        let dir = tempfile::tempdir().expect("dir");
        let dest = dir.path().join("out.csv");
        let dest_text = dest.display().to_string();
        let staged = stage(&dest_text, dir.path(), ".t-").expect("staged");
        assert_eq!(staged.path().parent(), Some(dir.path()));
        std::fs::write(staged.path(), "new").expect("write");
        std::fs::write(&dest, "old").expect("write");
        let refused = put(staged, &dest_text, false).expect_err("kept");
        assert!(refused.hint.contains("--overwrite"), "{refused:?}");
        assert_eq!(std::fs::read_to_string(&dest).expect("read"), "old");
        let names = || std::fs::read_dir(dir.path()).expect("dir").count();
        assert_eq!(names(), 1, "the refused stage is removed");
        let staged = stage(&dest_text, dir.path(), ".t-").expect("staged");
        std::fs::write(staged.path(), "new").expect("write");
        put(staged, &dest_text, true).expect("put");
        assert_eq!(std::fs::read_to_string(&dest).expect("read"), "new");
        assert_eq!(names(), 1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&dest).expect("meta").permissions().mode();
            assert_ne!(
                mode & 0o044,
                0,
                "readable by others as the umask allows: {mode:o}"
            );
        }
    }
}
