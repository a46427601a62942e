//! Finding kube-apiserver, kube-controller-manager and etcd: `SVCPLANE_K8S_BIN`, else what
//! `scripts/k8s-binaries` builds (or finds already built) from the pinned Go modules.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use super::RealClusterError;

/// A directory holding the binaries; overrides running `scripts/k8s-binaries`.
pub const BIN_DIR_ENV: &str = "SVCPLANE_K8S_BIN";

/// The binaries a [`super::RealCluster`] runs.
pub const REQUIRED: &[&str] = &["etcd", "kube-apiserver", "kube-controller-manager"];

/// The directory holding the binaries. The script runs at most once per process (a cold build
/// takes tens of minutes; a warm run, a fraction of a second).
pub async fn locate() -> Result<PathBuf, RealClusterError> {
    static FOUND: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let found = tokio::task::spawn_blocking(|| FOUND.get_or_init(locate_blocking).clone())
        .await
        .map_err(|e| RealClusterError::BinariesUnavailable(e.to_string()))?;
    found.map_err(RealClusterError::BinariesUnavailable)
}

fn locate_blocking() -> Result<PathBuf, String> {
    let dir = match std::env::var_os(BIN_DIR_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => run_script()?,
    };
    check_dir(&dir)?;
    Ok(dir)
}

fn repo_root() -> PathBuf {
    // tests/ is a member of the workspace at the repository root.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from(".."), Path::to_path_buf)
}

fn run_script() -> Result<PathBuf, String> {
    let script = script();
    let output = Command::new(&script)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if !output.status.success() {
        return Err(format!(
            "{} failed ({}); its messages are on stderr above (or set {BIN_DIR_ENV} to a directory holding {})",
            script.display(),
            output.status,
            REQUIRED.join(", ")
        ));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().rev().find(|l| !l.trim().is_empty());
    last.map(|l| PathBuf::from(l.trim()))
        .ok_or_else(|| format!("{} printed no directory", script.display()))
}

/// The paths of the [`REQUIRED`] binaries that `dir` does not hold.
pub fn missing(dir: &Path) -> Vec<PathBuf> {
    REQUIRED
        .iter()
        .map(|name| dir.join(name))
        .filter(|path| !path.is_file())
        .collect()
}

/// Whether `dir` holds every [`REQUIRED`] binary.
pub fn check(dir: &Path) -> Result<(), RealClusterError> {
    check_dir(dir).map_err(RealClusterError::BinariesUnavailable)
}

fn check_dir(dir: &Path) -> Result<(), String> {
    let missing: Vec<String> = missing(dir)
        .iter()
        .map(|path| path.display().to_string())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("missing {}", missing.join(", ")))
    }
}

/// The script that builds the binaries, in the source tree this crate was built from.
pub fn script() -> PathBuf {
    repo_root().join("scripts").join("k8s-binaries")
}

/// The directory `scripts/k8s-binaries` built the pinned versions into, without building
/// anything: `Ok(None)` when they are not built yet, `Err` (the script's last message) when the
/// script is missing or cannot tell (no Go toolchain, for one).
pub async fn built() -> Result<Option<PathBuf>, String> {
    tokio::task::spawn_blocking(built_blocking)
        .await
        .map_err(|e| e.to_string())?
}

/// The exit status of `scripts/k8s-binaries --no-build` when the binaries are not built.
const NOT_BUILT: i32 = 3;

fn built_blocking() -> Result<Option<PathBuf>, String> {
    let script = script();
    if !script.is_file() {
        return Err(format!("{} does not exist", script.display()));
    }
    let output = Command::new(&script)
        .arg("--no-build")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if output.status.code() == Some(NOT_BUILT) {
        return Ok(None);
    }
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
        return Err(last.map_or_else(
            || format!("{} failed ({})", script.display(), output.status),
            |l| l.trim().to_string(),
        ));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().rev().find(|l| !l.trim().is_empty());
    last.map(|l| Some(PathBuf::from(l.trim())))
        .ok_or_else(|| format!("{} printed no directory", script.display()))
}
