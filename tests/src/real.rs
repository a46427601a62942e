//! The real control plane for the envtests: [`realcluster`] (etcd + kube-apiserver built from
//! upstream's Go modules, and kube-controller-manager and svcplane as its sidecar), re-exported
//! here under its old path, and the helpers that skip a test (outside CI) when the binaries are
//! missing.
//!
//! ```no_run
//! # async fn demo() -> Result<(), svcplane_tests::real::RealClusterError> {
//! let cluster = svcplane_tests::real::RealCluster::start().await?;
//! let client = cluster.client();
//! # Ok(()) }
//! ```

pub use realcluster::*;

/// Starts a cluster for a test, or says why the test is skipped. Under `CI=true` missing binaries
/// fail the test instead; any other start failure always does.
pub async fn start_or_skip(test: &str, options: RealClusterOptions) -> Option<RealCluster> {
    match RealCluster::start_with(options).await {
        Ok(cluster) => Some(cluster),
        Err(e) if e.is_binaries_unavailable() && !is_ci() => {
            eprintln!("skipping {test}: {e} (under CI=true this is a failure)");
            None
        }
        Err(e) => panic!("{test}: cannot start the real control plane: {e}"),
    }
}

/// `CI=true` in the environment.
pub fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Starts a cluster, kube-controller-manager and svcplane as its sidecar for a test, or says why
/// the test is skipped: as [`start_or_skip`], missing binaries (the Kubernetes ones or
/// `svcplane`) skip outside CI and fail under `CI=true`; any other failure fails the test.
pub async fn start_sidecar_or_skip(
    test: &str,
    options: RealClusterOptions,
    sidecar: &SidecarOptions,
) -> Option<(RealCluster, SidecarPorts)> {
    if let Err(e) = svcplane_binary() {
        if is_ci() {
            panic!("{test}: {e}");
        }
        eprintln!("skipping {test}: {e} (under CI=true this is a failure)");
        return None;
    }
    let cluster = start_or_skip(test, options).await?;
    match cluster.start_sidecar(sidecar).await {
        Ok(ports) => Some((cluster, ports)),
        Err(e) => panic!("{test}: cannot start kube-controller-manager and svcplane: {e}"),
    }
}
