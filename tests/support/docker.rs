//! The docker stand-in (`docker_standin.py`: build, run, login and push as far as `mlops image
//! push` can see them, pushing into moto's ECR) as a command of its own, with its call log and
//! image store in a directory deleted when dropped.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

pub(crate) struct Docker {
    dir: tempfile::TempDir,
    /// The executable to run as `docker`.
    pub(crate) command: PathBuf,
}

impl Docker {
    /// `None` (after saying why) when Python is not installed and tools are optional.
    pub(crate) fn new() -> Option<Self> {
        let python = crate::tools::tool("python")?;
        let dir = tempfile::tempdir().expect("tempdir");
        let command = dir.path().join("docker");
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/support/docker_standin.py");
        std::fs::write(
            &command,
            format!(
                "#!/bin/sh\nexec '{}' '{}' \"$@\"\n",
                python.display(),
                script.display()
            ),
        )
        .expect("write");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&command, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::create_dir(dir.path().join("images")).expect("mkdir");
        Some(Self { dir, command })
    }

    /// The variables the stand-in reads: where it logs and keeps images.
    pub(crate) fn env(&self) -> Vec<(String, String)> {
        let at = |p: &str| self.dir.path().join(p).display().to_string();
        vec![
            ("STANDIN_LOG".to_owned(), at("calls.jsonl")),
            ("STANDIN_STATE".to_owned(), at("images")),
        ]
    }

    /// The calls since the last `take`: each one's command (`build`, `run`, ...), and the whole
    /// entries (`args`, `docker_config`, and a login's `password`).
    pub(crate) fn take(&self) -> (Vec<String>, Vec<serde_json::Value>) {
        let path = self.dir.path().join("calls.jsonl");
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let _ = std::fs::remove_file(&path);
        let calls: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect();
        let commands = calls
            .iter()
            .map(|c| c["args"][0].as_str().unwrap_or_default().to_owned())
            .collect();
        (commands, calls)
    }
}
