//! The API server under the playground: testenv in this process, or a real control plane
//! (etcd, kube-apiserver and kube-controller-manager built from upstream's Go modules by
//! `scripts/k8s-binaries`) in child processes, each in its own process group.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::Duration;

use allocator::{PortRange, ServiceClusterIpRanges};
use realcluster::{RealCluster, RealClusterOptions, binaries};
use testenv::{TestEnv, TestEnvOptions};

use crate::flags::UsageError;

/// `--apiserver`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ApiServerKind {
    /// testenv, the embedded in-memory API server.
    Testenv,
    /// kube-apiserver and etcd, with kube-controller-manager for the controllers svcplane does
    /// not replace.
    Real,
}

/// How long kube-controller-manager may take to serve and hold its Lease.
const KCM_START_TIMEOUT: Duration = Duration::from_secs(60);

/// How often a real control plane's processes are checked for having died.
const DEATH_POLL: Duration = Duration::from_millis(100);

/// A running API server.
pub enum ApiServer {
    /// testenv.
    Embedded(TestEnv),
    /// etcd, kube-apiserver and kube-controller-manager.
    Real(Box<RealCluster>),
}

impl ApiServer {
    /// testenv on `listen`, its state in `data_dir` (or in memory).
    pub async fn embedded(listen: SocketAddr, data_dir: Option<PathBuf>) -> anyhow::Result<Self> {
        let env = TestEnv::start_with(TestEnvOptions {
            listen,
            system_namespaces: true,
            data_dir,
            ..TestEnvOptions::default()
        })
        .await
        .map_err(|e| match e {
            testenv::TestEnvError::Bind { addr, source } => {
                crate::flags::listen_error("--listen", addr, &source)
            }
            other => other.into(),
        })?;
        Ok(Self::Embedded(env))
    }

    /// etcd and kube-apiserver on 127.0.0.1 (kube-apiserver on `listen`'s port, or a free one
    /// for port 0) with the playground's ranges, then kube-controller-manager beside them.
    pub async fn real(
        listen: SocketAddr,
        k8s_bin: Option<&Path>,
        ranges: &ServiceClusterIpRanges,
        node_ports: PortRange,
    ) -> anyhow::Result<Self> {
        let binaries = k8s_binaries(k8s_bin).await?;
        if listen.port() != 0 {
            // kube-apiserver would only say so in its log, after a second of starting.
            TcpListener::bind(listen)
                .map_err(|e| crate::flags::listen_error("--listen", listen, &e))?;
        }
        let options = RealClusterOptions {
            service_cluster_ip_range: ranges
                .all()
                .iter()
                .map(|r| r.net().to_string())
                .collect::<Vec<_>>()
                .join(","),
            service_node_port_range: node_ports.to_string(),
            binaries: Some(binaries),
            secure_port: (listen.port() != 0).then_some(listen.port()),
            ..RealClusterOptions::default()
        };
        let cluster = RealCluster::start_with(options).await?;
        tracing::info!(url = %cluster.url(), logs = %cluster.dir().join("logs").display(),
            "kube-apiserver and etcd ready; starting kube-controller-manager");
        cluster
            .start_kube_controller_manager(&[], KCM_START_TIMEOUT)
            .await?;
        Ok(Self::Real(Box::new(cluster)))
    }

    /// The address the API server listens on.
    pub fn addr(&self) -> SocketAddr {
        match self {
            Self::Embedded(env) => env.addr(),
            Self::Real(cluster) => cluster.addr(),
        }
    }

    /// The embedded API server itself, for what runs in its process (in-process admission,
    /// the data plane's container runtime); `None` for a real one.
    pub fn embedded_server(&self) -> Option<std::sync::Arc<testenv::ApiServer>> {
        match self {
            Self::Embedded(env) => Some(env.server().clone()),
            Self::Real(_) => None,
        }
    }

    /// The API server's URL.
    pub fn url(&self) -> String {
        match self {
            Self::Embedded(env) => env.url(),
            Self::Real(cluster) => cluster.url(),
        }
    }

    /// Where the API server keeps its state, for the log.
    pub fn storage(&self, data_dir: Option<&Path>) -> String {
        match (self, data_dir) {
            (Self::Embedded(_), Some(dir)) => dir.display().to_string(),
            (Self::Embedded(_), None) => "memory".to_owned(),
            (Self::Real(cluster), _) => format!("etcd in {}", cluster.dir().display()),
        }
    }

    /// A kubeconfig (YAML) for kubectl.
    pub fn kubeconfig(&self) -> String {
        match self {
            Self::Embedded(env) => env.kubeconfig(),
            Self::Real(cluster) => cluster.kubeconfig().to_owned(),
        }
    }

    /// A client with every permission.
    pub fn client(&self) -> anyhow::Result<kube::Client> {
        Ok(match self {
            Self::Embedded(env) => env.try_client()?,
            Self::Real(cluster) => cluster.try_client()?,
        })
    }

    /// Resolves when a process of a real control plane dies, with which and why; never for
    /// testenv, which runs in this process.
    pub async fn died(&self) -> anyhow::Error {
        let Self::Real(cluster) = self else {
            return std::future::pending().await;
        };
        loop {
            if let Some(died) = cluster.exited() {
                return died.into();
            }
            tokio::time::sleep(DEATH_POLL).await;
        }
    }

    /// Stops the API server (for a real one: kube-controller-manager, kube-apiserver and etcd,
    /// each given a few seconds after SIGTERM) and removes what it kept in temporary places.
    pub async fn stop(self) {
        match self {
            Self::Embedded(env) => env.stop().await,
            Self::Real(cluster) => {
                cluster.stop().await;
                // Removes its directory (etcd's data, the certificates, the logs).
                let _ = tokio::task::spawn_blocking(move || drop(cluster)).await;
            }
        }
    }
}

/// The flags `--apiserver real` cannot take, and the ones only it takes.
pub fn check_flags(
    kind: ApiServerKind,
    listen: SocketAddr,
    primary_range: ipnet::IpNet,
    data_dir: Option<&Path>,
    k8s_bin: Option<&Path>,
) -> Result<(), UsageError> {
    match kind {
        ApiServerKind::Testenv => {
            if k8s_bin.is_some() {
                return Err(UsageError(
                    "--k8s-bin names the binaries of --apiserver real; the embedded API server (--apiserver testenv) needs none".into(),
                ));
            }
            // svcplane maintains the `kubernetes` Service here, listing --listen's address in its
            // endpoints: kube-apiserver's own rule for its advertise address and text.
            if matches!(primary_range, ipnet::IpNet::V4(_)) != listen.ip().is_ipv4() {
                return Err(UsageError(format!(
                    "service IP family {} must match public address family {} (the first --service-cluster-ip-range and --listen's address)",
                    gocompat::quote::go_quote(&primary_range.to_string()),
                    gocompat::quote::go_quote(&listen.ip().to_string())
                )));
            }
        }
        ApiServerKind::Real => {
            if data_dir.is_some() {
                return Err(UsageError(
                    "--data-dir keeps the embedded API server's state and does not apply to --apiserver real (etcd keeps its data in a temporary directory, removed at exit)".into(),
                ));
            }
            if listen.ip() != IpAddr::V4(Ipv4Addr::LOCALHOST) {
                return Err(UsageError(format!(
                    "--apiserver real serves kube-apiserver on 127.0.0.1 only; choose --listen 127.0.0.1:PORT (not {listen})"
                )));
            }
        }
    }
    Ok(())
}

/// The directory holding etcd, kube-apiserver and kube-controller-manager: `--k8s-bin`, else
/// `SVCPLANE_K8S_BIN`, else what `scripts/k8s-binaries` built (never a build: that takes minutes).
/// Every failure is one line that says how to get them.
async fn k8s_binaries(flag: Option<&Path>) -> anyhow::Result<PathBuf> {
    const NEEDED: &str = "--apiserver real needs etcd, kube-apiserver and kube-controller-manager";
    let from_env = std::env::var_os(binaries::BIN_DIR_ENV).filter(|d| !d.is_empty());
    let (dir, source) = match (flag, from_env) {
        (Some(dir), _) => (dir.to_path_buf(), "--k8s-bin".to_owned()),
        (None, Some(dir)) => (PathBuf::from(dir), binaries::BIN_DIR_ENV.to_owned()),
        (None, None) => match binaries::built().await {
            Ok(Some(dir)) => (dir, "scripts/k8s-binaries".to_owned()),
            Ok(None) => anyhow::bail!(
                "{NEEDED}, and they are not built yet: run scripts/k8s-binaries (a first build takes about 12 minutes on 2 cores), or give a directory holding them with --k8s-bin or {}",
                binaries::BIN_DIR_ENV
            ),
            Err(why) => anyhow::bail!(
                "{NEEDED}, and scripts/k8s-binaries cannot tell where they are ({why}): give a directory holding them with --k8s-bin or {}",
                binaries::BIN_DIR_ENV
            ),
        },
    };
    let build =
        "build them with scripts/k8s-binaries, which prints their directory as its last line";
    if !dir.is_dir() {
        anyhow::bail!(
            "{NEEDED}: {} (from {source}) is not a directory; {build}",
            dir.display()
        );
    }
    let missing: Vec<String> = binaries::missing(&dir)
        .iter()
        .filter_map(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .collect();
    if !missing.is_empty() {
        anyhow::bail!(
            "{NEEDED}: {} (from {source}) has no {}; {build}",
            dir.display(),
            missing.join(", ")
        );
    }
    Ok(dir)
}
