//! Whether this machine can run the data plane, in one line a user can act on.

use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;

/// The first executable called `name` on `PATH`.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// `Ok` when the data plane can run here; otherwise why not, in one line: not root, no network
/// namespaces (or not allowed to make them), or `ip` or `nft` missing.
pub fn check_host() -> Result<(), String> {
    if !nix::unistd::geteuid().is_root() {
        return Err(
            "the data plane makes network namespaces and needs root: run as root (or with sudo)"
                .into(),
        );
    }
    if !Path::new("/proc/self/ns/net").exists() {
        return Err("this kernel has no network namespaces (/proc/self/ns/net is missing)".into());
    }
    // A throwaway thread tries what the data plane will do; the thread's namespace goes with it.
    let allowed = std::thread::spawn(|| nix::sched::unshare(CloneFlags::CLONE_NEWNET))
        .join()
        .unwrap_or(Err(nix::Error::EPERM));
    if let Err(e) = allowed {
        return Err(format!(
            "cannot create network namespaces here (unshare: {}); a container needs CAP_SYS_ADMIN, e.g. docker run --privileged",
            e.desc()
        ));
    }
    for (tool, package) in [("ip", "iproute2"), ("nft", "nftables")] {
        if on_path(tool).is_none() {
            return Err(format!(
                "the data plane needs the `{tool}` command, which is not on PATH (install {package})"
            ));
        }
    }
    Ok(())
}
