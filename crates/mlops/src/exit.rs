//! Exit codes, the same for every subcommand (documented in the README).

/// What a process exit code means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    /// Success.
    Ok = 0,
    /// The check said no: an invalid manifest, a failed gate, a holdout mismatch.
    No = 1,
    /// Usage or input error: a bad flag, a file that cannot be read.
    Usage = 2,
    /// A remote service or the runtime failed.
    Runtime = 3,
    /// Interrupted (SIGINT or SIGTERM) after cleaning up, e.g. stopping a training job.
    Cancelled = 130,
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> Self {
        std::process::ExitCode::from(e as u8)
    }
}

/// The one mapping from whose fault a problem is to the exit code.
impl From<mlops_core::Fault> for Exit {
    fn from(f: mlops_core::Fault) -> Self {
        match f {
            mlops_core::Fault::Refused => Exit::No,
            mlops_core::Fault::Input => Exit::Usage,
            mlops_core::Fault::Broken => Exit::Runtime,
            mlops_core::Fault::Cancelled => Exit::Cancelled,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The binary's exit codes are the ones the library records (run.json's `exit_code`).
    #[test]
    fn each_fault_exits_with_its_documented_code() {
        use mlops_core::Fault;
        for f in [
            Fault::Refused,
            Fault::Input,
            Fault::Broken,
            Fault::Cancelled,
        ] {
            assert_eq!(Exit::from(f) as u8, f.exit_code(), "{f:?}");
        }
    }
}
