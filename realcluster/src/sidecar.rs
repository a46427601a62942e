//! svcplane as kube-controller-manager's sidecar (docs/sidecar.md): upstream kube-controller-manager
//! with its EndpointSlice, Endpoints and mirroring controllers off, and `svcplane
//! controller-manager` running them, both with leader election, against a [`RealCluster`].
//!
//! Both run as processes in their own process groups, stopped (before kube-apiserver and etcd)
//! when the cluster is stopped or dropped, with the same watchdog as etcd and kube-apiserver.

use std::path::{Path, PathBuf};
use std::time::Duration;

use http::StatusCode;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use tokio::time::Instant;

use super::process::ChildProcess;
use super::{RealCluster, RealClusterError, free_ports, last_lines, plain_client, probe};

/// kube-controller-manager's `--controllers` next to svcplane: every default controller but the
/// three svcplane replaces, and but `nodelifecycle`: with no kubelet renewing Node leases it
/// would mark every Node Unknown after `--node-monitor-grace-period` (50 s) and then every Pod
/// on it NotReady, which would race the tests' own Pod readiness.
pub const KCM_CONTROLLERS: &str =
    "*,-endpointslice,-endpoint,-endpointslicemirroring,-nodelifecycle";

/// A path to the `svcplane` binary; overrides looking beside the test binary.
pub const SVCPLANE_BIN_ENV: &str = "SVCPLANE_BIN";

/// The Lease svcplane's replicas compete for (docs/sidecar.md).
pub const SVCPLANE_LEASE: &str = "svcplane-controller-manager";

/// The Lease kube-controller-manager's replicas compete for.
pub const KCM_LEASE: &str = "kube-controller-manager";

/// How to start the two controller managers.
#[derive(Debug, Clone)]
pub struct SidecarOptions {
    /// More kube-controller-manager flags, after (and so overriding) the defaults.
    pub extra_kcm_args: Vec<String>,
    /// More `svcplane controller-manager` flags, after the defaults.
    pub extra_svcplane_args: Vec<String>,
    /// How long each may take to serve and hold its Lease.
    pub start_timeout: Duration,
}

impl Default for SidecarOptions {
    fn default() -> Self {
        Self {
            extra_kcm_args: Vec::new(),
            extra_svcplane_args: Vec::new(),
            start_timeout: Duration::from_secs(60),
        }
    }
}

/// How to start one controller manager alone ([`RealCluster::start_kube_controller_manager_with`],
/// [`RealCluster::start_svcplane_controller_manager_with`]): a controller list and leader election
/// replace the sidecar defaults instead of being appended to them (kube-controller-manager appends
/// a repeated `--controllers`).
#[derive(Debug, Clone)]
pub struct ControllerManagerOptions {
    /// `--controllers`; `None` keeps the sidecar's list ([`KCM_CONTROLLERS`], or svcplane's four).
    pub controllers: Option<String>,
    /// `--leader-elect`; when off, the start waits for health only, not for a Lease.
    pub leader_elect: bool,
    /// More flags, after (and so overriding) the defaults.
    pub extra_args: Vec<String>,
    /// How long the process may take to serve (and, with leader election, to hold its Lease).
    pub timeout: Duration,
}

impl Default for ControllerManagerOptions {
    fn default() -> Self {
        Self {
            controllers: None,
            leader_elect: true,
            extra_args: Vec::new(),
            timeout: Duration::from_secs(60),
        }
    }
}

/// Where the two controller managers serve on 127.0.0.1.
#[derive(Debug, Clone, Copy)]
pub struct SidecarPorts {
    /// kube-controller-manager's HTTPS port (`/healthz`, `/metrics`).
    pub kube_controller_manager: u16,
    /// svcplane's HTTP port (`/healthz`, `/readyz`, `/metrics`).
    pub svcplane: u16,
}

impl RealCluster {
    /// Starts upstream kube-controller-manager (`--controllers` [`KCM_CONTROLLERS`], the admin
    /// kubeconfig, leader election on, serving HTTPS on a free loopback port) and waits until
    /// `/healthz` answers and it holds the `kube-system/kube-controller-manager` Lease. Returns
    /// its secure port.
    pub async fn start_kube_controller_manager(
        &self,
        extra_args: &[String],
        timeout: Duration,
    ) -> Result<u16, RealClusterError> {
        self.start_kube_controller_manager_with(&ControllerManagerOptions {
            extra_args: extra_args.to_vec(),
            timeout,
            ..ControllerManagerOptions::default()
        })
        .await
    }

    /// Starts kube-controller-manager as [`Self::start_kube_controller_manager`] does, with
    /// `options`' controller list and leader election; without leader election it waits for
    /// `/healthz` only.
    pub async fn start_kube_controller_manager_with(
        &self,
        options: &ControllerManagerOptions,
    ) -> Result<u16, RealClusterError> {
        let timeout = options.timeout;
        let leader_elect = options.leader_elect;
        let kubeconfig = self.kubeconfig_path().display().to_string();
        let pki = self.dir().join("pki");
        let [port] = free_ports()?;
        let mut args = vec![
            format!("--kubeconfig={kubeconfig}"),
            // Without these two it looks for an in-cluster config to check its callers with.
            format!("--authentication-kubeconfig={kubeconfig}"),
            format!("--authorization-kubeconfig={kubeconfig}"),
            "--bind-address=127.0.0.1".into(),
            format!("--secure-port={port}"),
            format!("--cert-dir={}", self.dir().join("kcm-certs").display()),
            format!("--leader-elect={leader_elect}"),
            // Every controller acts as the kubeconfig's identity (admin), not as a minted
            // per-controller ServiceAccount.
            "--use-service-account-credentials=false".into(),
            // The apiserver's signing key: without it the token controller turns itself off.
            format!(
                "--service-account-private-key-file={}",
                pki.join("sa.key").display()
            ),
            format!("--root-ca-file={}", pki.join("ca.crt").display()),
            format!(
                "--controllers={}",
                options.controllers.as_deref().unwrap_or(KCM_CONTROLLERS)
            ),
            "--profiling=false".into(),
        ];
        args.extend(options.extra_args.iter().cloned());
        let mut kcm = ChildProcess::spawn(
            "kube-controller-manager",
            &self.binaries().join("kube-controller-manager"),
            &args,
            &self.log_path("kube-controller-manager"),
            None,
        )?;
        let mut insecure = kube::Config::new(
            format!("https://127.0.0.1:{port}")
                .parse()
                .map_err(|e: http::uri::InvalidUri| RealClusterError::Client(e.to_string()))?,
        );
        insecure.accept_invalid_certs = true;
        // Without the warning that the certificate is not checked: this client only reads /healthz.
        let health =
            tracing::subscriber::with_default(tracing::subscriber::NoSubscriber::default(), || {
                kube::Client::try_from(insecure)
            })
            .map_err(|e| RealClusterError::Client(e.to_string()))?;
        let leases: Api<Lease> = Api::namespaced(self.try_client()?, "kube-system");
        wait_component(
            &mut kcm,
            timeout,
            "kube-controller-manager /healthz and its Lease",
            || async {
                let (status, body) = probe(&health, "/healthz").await?;
                if status != StatusCode::OK {
                    return Err(format!("/healthz {status}: {}", last_lines(&body, 3)));
                }
                if !leader_elect {
                    return Ok(());
                }
                lease_holder(&leases, KCM_LEASE).await.map(drop)
            },
        )
        .await?;
        self.adopt(kcm);
        Ok(port)
    }

    /// Starts `svcplane controller-manager` as kube-controller-manager's sidecar (the flags of
    /// docs/sidecar.md: `--allocation-mode=audit`, leader election on the
    /// `kube-system/svcplane-controller-manager` Lease, this cluster's ranges) and waits until
    /// `/readyz` answers 200 and it holds that Lease. Returns its health port.
    pub async fn start_svcplane_controller_manager(
        &self,
        extra_args: &[String],
        timeout: Duration,
    ) -> Result<u16, RealClusterError> {
        self.start_svcplane_controller_manager_with(&ControllerManagerOptions {
            extra_args: extra_args.to_vec(),
            timeout,
            ..ControllerManagerOptions::default()
        })
        .await
    }

    /// Starts `svcplane controller-manager` as [`Self::start_svcplane_controller_manager`] does,
    /// with `options`' controller list and leader election; without leader election it waits for
    /// `/readyz` only.
    pub async fn start_svcplane_controller_manager_with(
        &self,
        options: &ControllerManagerOptions,
    ) -> Result<u16, RealClusterError> {
        let timeout = options.timeout;
        let leader_elect = options.leader_elect;
        let binary = svcplane_binary()?;
        let [port] = free_ports()?;
        let mut args = vec![
            "controller-manager".to_string(),
            format!("--kubeconfig={}", self.kubeconfig_path().display()),
            format!(
                "--controllers={}",
                options
                    .controllers
                    .as_deref()
                    .unwrap_or("endpointslice,endpoint,endpointslicemirroring,allocation-repair")
            ),
            "--allocation-mode=audit".into(),
            format!(
                "--service-cluster-ip-range={}",
                self.options().service_cluster_ip_range
            ),
            format!(
                "--service-node-port-range={}",
                self.options().service_node_port_range
            ),
            format!("--leader-elect={leader_elect}"),
            format!("--leader-elect-resource-name={SVCPLANE_LEASE}"),
            "--leader-elect-resource-namespace=kube-system".into(),
            "--bind-address=127.0.0.1".into(),
            format!("--port={port}"),
        ];
        args.extend(options.extra_args.iter().cloned());
        let mut svcplane =
            ChildProcess::spawn("svcplane", &binary, &args, &self.log_path("svcplane"), None)?;
        let health = plain_client(&format!("http://127.0.0.1:{port}"))?;
        let leases: Api<Lease> = Api::namespaced(self.try_client()?, "kube-system");
        wait_component(
            &mut svcplane,
            timeout,
            "svcplane /readyz and its Lease",
            || async {
                let (status, body) = probe(&health, "/readyz").await?;
                if status != StatusCode::OK {
                    return Err(format!("/readyz {status}: {}", last_lines(&body, 3)));
                }
                if !leader_elect {
                    return Ok(());
                }
                lease_holder(&leases, SVCPLANE_LEASE).await.map(drop)
            },
        )
        .await?;
        self.adopt(svcplane);
        Ok(port)
    }

    /// kube-controller-manager, then svcplane as its sidecar.
    pub async fn start_sidecar(
        &self,
        options: &SidecarOptions,
    ) -> Result<SidecarPorts, RealClusterError> {
        let kube_controller_manager = self
            .start_kube_controller_manager(&options.extra_kcm_args, options.start_timeout)
            .await?;
        let svcplane = self
            .start_svcplane_controller_manager(&options.extra_svcplane_args, options.start_timeout)
            .await?;
        Ok(SidecarPorts {
            kube_controller_manager,
            svcplane,
        })
    }

    /// Stopped with the others, before them (last started, first stopped).
    fn adopt(&self, process: ChildProcess) {
        self.processes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .push(process);
    }
}

/// The holder of `kube-system/<name>`, or why there is none yet.
async fn lease_holder(leases: &Api<Lease>, name: &str) -> Result<String, String> {
    let lease = leases
        .get_opt(name)
        .await
        .map_err(|e| format!("GET lease {name}: {e}"))?
        .ok_or_else(|| format!("no Lease kube-system/{name} yet"))?;
    lease
        .spec
        .and_then(|s| s.holder_identity)
        .filter(|h| !h.is_empty())
        .ok_or_else(|| format!("Lease kube-system/{name} has no holder"))
}

/// `$SVCPLANE_BIN`, else `svcplane` in the target directory holding this test binary
/// (`target/debug/deps/<test>` → `target/debug/svcplane`), which `cargo nextest run --workspace`
/// and `cargo build -p svcplane` build.
pub fn svcplane_binary() -> Result<PathBuf, RealClusterError> {
    let path = match std::env::var_os(SVCPLANE_BIN_ENV) {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => {
            let exe = std::env::current_exe().map_err(|source| RealClusterError::Io {
                path: "the test binary".into(),
                source,
            })?;
            let profile_dir = exe
                .parent()
                .filter(|d| d.ends_with("deps"))
                .and_then(Path::parent)
                .or_else(|| exe.parent())
                .map(Path::to_path_buf)
                .unwrap_or_default();
            profile_dir.join("svcplane")
        }
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(RealClusterError::BinariesUnavailable(format!(
            "no svcplane binary at {} (build it with `cargo build -p svcplane`, or set {SVCPLANE_BIN_ENV})",
            path.display()
        )))
    }
}

/// Polls `probe` every 50 ms until it succeeds, failing early when `process` exits.
async fn wait_component<F, Fut>(
    process: &mut ChildProcess,
    timeout: Duration,
    what: &str,
    mut probe: F,
) -> Result<(), RealClusterError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let last = match super::quietly(probe()).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if let Some(status) = process.exit_status() {
            return Err(process.exited_error(status));
        }
        if Instant::now() >= deadline {
            return Err(RealClusterError::StartTimeout {
                seconds: timeout.as_secs_f64(),
                what: what.to_string(),
                last,
                log: process.log().display().to_string(),
                tail: process.log_tail(),
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
