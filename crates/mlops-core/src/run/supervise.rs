//! The processes `mlops run` starts, and what a signal does to them: SIGINT or SIGTERM marks the
//! run interrupted and passes SIGTERM on to every child still running (a terminal's Ctrl-C
//! reaches them anyway; a SIGTERM sent to `mlops run` alone would not). The run then stops the
//! staging service, says where it stopped, and exits 130.

use std::process::{Child, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How often a wait looks at its child.
const POLL: Duration = Duration::from_millis(10);

/// How long a stopped child may take before it is killed.
const GRACE: Duration = Duration::from_secs(10);

#[derive(Clone, Default)]
pub(super) struct Supervisor {
    /// The running children. A child is reaped (by `try_wait`) and removed under this lock, and
    /// signalled under it, so a signal never reaches a reused process ID.
    children: Arc<Mutex<Vec<u32>>>,
    interrupted: Arc<AtomicBool>,
    /// The signal that interrupted the run, for the run to say.
    signal: Arc<Mutex<Option<&'static str>>>,
}

impl Supervisor {
    /// A supervisor with a thread that waits for SIGINT and SIGTERM; a warning when that thread
    /// cannot start.
    pub(super) fn install() -> (Supervisor, Option<String>) {
        let s = Supervisor::default();
        let watcher = s.clone();
        let listening = std::thread::Builder::new()
            .name("mlops-run-signals".into())
            .spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                let got = rt.block_on(crate::runtime::interrupted());
                *watcher
                    .signal
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(got);
                watcher.interrupted.store(true, Ordering::SeqCst);
                let children = watcher
                    .children
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                for pid in children.iter() {
                    let _ = terminate(*pid);
                }
            });
        let warning = listening.err().map(|e| {
            format!(
                "warning: cannot watch for Ctrl-C ({e}); an interrupted run may leave its staging service running"
            )
        });
        (s, warning)
    }

    /// The signal that interrupted the run, once one did.
    pub(super) fn signal(&self) -> Option<&'static str> {
        *self.signal.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn interrupted(&self) -> bool {
        self.interrupted.load(Ordering::SeqCst)
    }

    /// Registers a child just started (so a signal reaches it).
    pub(super) fn adopt(&self, child: &Child) {
        let mut children = self.lock();
        children.push(child.id());
        if self.interrupted() {
            let _ = terminate(child.id());
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<u32>> {
        self.children.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `child` has ended, reaping and forgetting it if so.
    pub(super) fn try_wait(&self, child: &mut Child) -> std::io::Result<Option<ExitStatus>> {
        let mut children = self.lock();
        let status = child.try_wait()?;
        if status.is_some() {
            children.retain(|pid| *pid != child.id());
        }
        Ok(status)
    }

    /// Waits for `child` to end.
    pub(super) fn wait(&self, child: &mut Child) -> std::io::Result<ExitStatus> {
        loop {
            if let Some(status) = self.try_wait(child)? {
                return Ok(status);
            }
            std::thread::sleep(POLL);
        }
    }

    /// Stops `child`: SIGTERM, then SIGKILL if it has not ended after a grace period (at once
    /// where there is no SIGTERM).
    pub(super) fn stop(&self, child: &mut Child) {
        let asked = {
            let children = self.lock();
            children.contains(&child.id()) && terminate(child.id())
        };
        if !asked {
            let _ = child.kill();
        }
        let started = Instant::now();
        loop {
            match self.try_wait(child) {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) if started.elapsed() > GRACE => {
                    let _ = child.kill();
                    let _ = self.wait(child);
                    return;
                }
                Ok(None) => std::thread::sleep(POLL),
            }
        }
    }
}

/// Asks process `pid` to stop (SIGTERM); whether the signal was sent.
#[cfg(unix)]
fn terminate(pid: u32) -> bool {
    i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .is_some_and(|pid| {
            rustix::process::kill_process(pid, rustix::process::Signal::TERM).is_ok()
        })
}

/// Without POSIX signals nothing can ask: `stop` kills the child at once (on Windows a console's
/// Ctrl-C reaches the whole process group anyway).
#[cfg(not(unix))]
fn terminate(_pid: u32) -> bool {
    false
}
