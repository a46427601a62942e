//! Cluster DNS for Services: the records of the Kubernetes DNS specification as CoreDNS's
//! `kubernetes` plugin serves them (v1.15.0; the differences are in docs/dns.md).
//!
//! The core is pure: [`DnsIndex`] holds Services, EndpointSlices, Namespaces and Pods as plain
//! data ([`objects`]), and [`answer()`] turns a question into a response. The shell is
//! [`ClusterDns`]: watches that keep the index ([`watch`]) and a hickory-server on UDP and TCP
//! ([`server`]), both stopped by one `kuberun::Shutdown`.

#![forbid(unsafe_code)]

pub mod answer;
pub mod config;
pub mod index;
pub mod objects;
pub mod probe;
pub mod records;
pub mod server;
pub mod watch;

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

pub use answer::{Answer, AnswerFlags, answer};
pub use config::{ConfigError, DnsConfig, PodMode};
pub use index::DnsIndex;
pub use records::{ServiceRecordSet, records_for_service, records_for_service_objects};
pub use server::{DnsServer, ServeError, SharedIndex};

use kuberun::Shutdown;
use tokio::task::JoinHandle;

/// Cluster DNS running against one API server: the watches and the server.
pub struct ClusterDns {
    server: DnsServer,
    config: Arc<DnsConfig>,
    index: SharedIndex,
    watches: JoinHandle<()>,
}

/// The records a [`ClusterDns`] answers from (its configuration and its live index), cheap to
/// clone: the playground also serves them inside the cluster DNS pod's network namespace.
#[derive(Clone)]
pub struct DnsRecords {
    config: Arc<DnsConfig>,
    index: SharedIndex,
}

impl DnsRecords {
    /// Serves the records on sockets bound by the caller until `shutdown`. `bound_ip` is the
    /// address those sockets answer on, for the apex NS records (CoreDNS names the Service
    /// whose endpoint holds it, `kube-dns` in a cluster).
    pub fn serve_on(
        &self,
        udp: tokio::net::UdpSocket,
        tcp: tokio::net::TcpListener,
        bound_ip: std::net::IpAddr,
        shutdown: Shutdown,
    ) -> Result<DnsServer, ServeError> {
        let mut config = DnsConfig::clone(&self.config);
        config.bound_ips = vec![bound_ip];
        DnsServer::serve_on(udp, tcp, Arc::new(config), self.index.clone(), shutdown)
    }
}

impl ClusterDns {
    /// Binds `listen` (UDP and TCP), starts the watches through `client` and serves until
    /// `shutdown`. Returns once the sockets are bound; [`ClusterDns::wait_synced`] waits for the
    /// first lists (until then would-be NXDOMAINs are SERVFAIL, as in CoreDNS).
    pub async fn start(
        client: kube::Client,
        mut config: DnsConfig,
        listen: SocketAddr,
        shutdown: Shutdown,
    ) -> Result<ClusterDns, ServeError> {
        if config.bound_ips.is_empty() && !listen.ip().is_unspecified() {
            config.bound_ips.push(listen.ip());
        }
        let config = Arc::new(config);
        let index: SharedIndex = Arc::new(RwLock::new(DnsIndex::new()));
        let server =
            DnsServer::start(listen, config.clone(), index.clone(), shutdown.clone()).await?;
        let watch_index = index.clone();
        let watch_config = config.clone();
        let watches = tokio::spawn(async move {
            watch::keep_index(client, &watch_config, watch_index, shutdown).await;
        });
        Ok(ClusterDns {
            server,
            config,
            index,
            watches,
        })
    }

    /// The address UDP and TCP listen on.
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// What this server answers from, to serve it on sockets bound elsewhere as well.
    pub fn records(&self) -> DnsRecords {
        DnsRecords {
            config: self.config.clone(),
            index: self.index.clone(),
        }
    }

    /// The index the server answers from.
    pub fn index(&self) -> &SharedIndex {
        &self.index
    }

    /// Whether every watched kind has listed once.
    pub fn is_synced(&self) -> bool {
        self.index
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_synced()
    }

    /// Waits up to `timeout` for the first lists; whether they came.
    pub async fn wait_synced(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while !self.is_synced() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }

    /// Resolves when both the server and the watches have stopped (after the shutdown fired).
    pub async fn stopped(self) {
        self.server.stopped().await;
        let _ = self.watches.await;
    }
}
