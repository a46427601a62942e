//! A child process in its own process group, killed as a group, with a watchdog that kills the
//! group if the test process dies without running destructors (SIGKILL, a test-runner timeout).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::os::unix::process::CommandExt;

use super::RealClusterError;

/// How long a component gets to exit after SIGTERM before its group gets SIGKILL.
pub(crate) const STOP_GRACE: Duration = Duration::from_secs(5);

/// How many bytes of a log the error messages quote.
const LOG_TAIL_BYTES: u64 = 4096;

/// Reads its stdin until EOF, which comes when the process holding the other end (the test
/// process) exits for any reason, then stops the process group given as `$1` (SIGTERM, SIGKILL
/// 3 s later) and removes the directory `$2` if one is given. The normal stop path kills this
/// watchdog first, so it only fires when the test process died without cleaning up.
const WATCHDOG_SCRIPT: &str = r#"while read -r _; do :; done
if kill -s TERM -- "-$1" 2>/dev/null; then
  i=0
  while [ "$i" -lt 30 ] && kill -s 0 -- "-$1" 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
  kill -s KILL -- "-$1" 2>/dev/null
fi
[ -n "$2" ] && rm -rf -- "$2"
exit 0"#;

/// A running component (etcd, kube-apiserver, ...) and the watchdog that outlives the test process.
pub(crate) struct ChildProcess {
    name: &'static str,
    child: Child,
    watchdog: Option<Child>,
    log: PathBuf,
    exited: Option<String>,
    stopped: bool,
}

impl ChildProcess {
    /// Starts `binary args...` as the leader of a new process group, stdout and stderr to `log`.
    /// If the test process dies without stopping it, its watchdog stops it and removes
    /// `cleanup_dir`.
    pub(crate) fn spawn(
        name: &'static str,
        binary: &Path,
        args: &[String],
        log: &Path,
        cleanup_dir: Option<&Path>,
    ) -> Result<Self, RealClusterError> {
        let io = |source| RealClusterError::Io {
            path: log.display().to_string(),
            source,
        };
        let out = File::create(log).map_err(io)?;
        let err = out.try_clone().map_err(io)?;
        let child = Command::new(binary)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .map_err(|source| RealClusterError::Spawn {
                component: name,
                binary: binary.display().to_string(),
                source,
            })?;
        let mut process = Self {
            name,
            child,
            watchdog: None,
            log: log.to_path_buf(),
            exited: None,
            stopped: false,
        };
        // Its own process group too, so that a runner killing the test's group leaves it alive
        // to do its job. If it cannot start, the component is stopped by this value's drop.
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG_SCRIPT)
            .arg("svcplane-realk8s-watchdog")
            .arg(process.pid().to_string())
            .arg(cleanup_dir.map(Path::as_os_str).unwrap_or_default())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|source| RealClusterError::Spawn {
                component: "watchdog",
                binary: "sh".into(),
                source,
            })?;
        process.watchdog = Some(watchdog);
        Ok(process)
    }

    /// The component's name in messages.
    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    /// The process id (also its process group id).
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The watchdog's process id, while it runs.
    pub(crate) fn watchdog_pid(&self) -> Option<u32> {
        self.watchdog.as_ref().map(Child::id)
    }

    /// The log file holding the component's stdout and stderr.
    pub(crate) fn log(&self) -> &Path {
        &self.log
    }

    /// How the process exited, if it has.
    pub(crate) fn exit_status(&mut self) -> Option<String> {
        if self.exited.is_none()
            && let Ok(Some(status)) = self.child.try_wait()
        {
            self.exited = Some(status.to_string());
        }
        self.exited.clone()
    }

    /// The error for this process having exited (with `status`) while it was awaited.
    pub(crate) fn exited_error(&self, status: String) -> RealClusterError {
        RealClusterError::Exited {
            component: self.name,
            status,
            log: self.log.display().to_string(),
            tail: self.log_tail(),
        }
    }

    /// The last lines of the log, for error messages.
    pub(crate) fn log_tail(&self) -> String {
        log_tail(&self.log)
    }

    /// SIGTERM to the group, SIGKILL after `grace`, then reaps the process. Blocks the thread.
    /// Does nothing the second time.
    pub(crate) fn stop(&mut self, grace: Duration) {
        if std::mem::replace(&mut self.stopped, true) {
            return;
        }
        self.stop_watchdog();
        if self.exit_status().is_none() {
            signal_group(self.pid(), "TERM");
            let deadline = Instant::now() + grace;
            while self.exit_status().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // Also after a clean exit: anything the leader left behind in its group goes too.
        signal_group(self.pid(), "KILL");
        if self.exit_status().is_none() {
            let _ = self.child.kill();
            if let Ok(status) = self.child.wait() {
                self.exited = Some(status.to_string());
            }
        }
    }

    /// SIGKILL to the group at once (`kill -9`, no shutdown), then reaps the process.
    pub(crate) fn kill(&mut self) {
        self.stopped = true;
        self.stop_watchdog();
        signal_group(self.pid(), "KILL");
        if let Ok(status) = self.child.wait() {
            self.exited = Some(status.to_string());
        }
    }

    fn stop_watchdog(&mut self) {
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        self.stop(STOP_GRACE);
    }
}

/// Sends `signal` to the process group `pgid`; a group that is already gone is not an error.
fn signal_group(pgid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args(["-s", signal, "--", &format!("-{pgid}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The last few KiB of a log file, starting at a line boundary.
pub(crate) fn log_tail(path: &Path) -> String {
    let Ok(mut file) = File::open(path) else {
        return format!("(no log at {})", path.display());
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(LOG_TAIL_BYTES);
    let mut bytes = Vec::new();
    if file.seek(SeekFrom::Start(start)).is_err() || file.read_to_end(&mut bytes).is_err() {
        return format!("(cannot read {})", path.display());
    }
    let text = String::from_utf8_lossy(&bytes);
    let text = if start > 0 {
        text.split_once('\n').map_or(&*text, |(_, rest)| rest)
    } else {
        &text
    };
    if text.trim().is_empty() {
        "(the log is empty)".into()
    } else {
        text.trim_end().to_string()
    }
}
