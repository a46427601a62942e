//! `svcplane webhook`: the HTTPS admission server for a real cluster, with certificate files that
//! cert-manager rotates, the allocator registry in the configured mode, until SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use allocator::registry::ServiceRegistry;
use allocator::{PortRange, ServiceClusterIpRanges};
use webhook::server::{
    AdmissionPolicy, CertificateSource, ServiceClusterIpIndex, WebhookConfig, WebhookServer,
};

use crate::flags::{AllocationModeFlag, parse_cluster_ip_ranges, parse_node_port_range};

/// Flags of `svcplane webhook`.
#[derive(Debug, clap::Args)]
pub struct WebhookArgs {
    /// Where to serve HTTPS (`/validate`, `/mutate`, `/healthz`, `/readyz`, `/metrics`).
    #[arg(long, default_value = "0.0.0.0:9443")]
    bind_address: SocketAddr,
    /// Serving certificate chain (PEM); reloaded when the file changes.
    #[arg(long, value_name = "FILE")]
    tls_cert_file: PathBuf,
    /// Serving private key (PEM); reloaded when the file changes.
    #[arg(long, value_name = "FILE")]
    tls_private_key_file: PathBuf,
    /// Path to a kubeconfig; without it KUBECONFIG, ~/.kube/config or the in-cluster config.
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// ClusterIP range(s).
    #[arg(long, default_value = "10.96.0.0/12", value_parser = parse_cluster_ip_ranges)]
    service_cluster_ip_range: ServiceClusterIpRanges,
    /// NodePort range.
    #[arg(long, default_value = "30000-32767", value_parser = parse_node_port_range)]
    service_node_port_range: PortRange,
    /// audit: a kube-apiserver allocates, the webhook validates; authoritative: the webhook
    /// allocates ClusterIPs and NodePorts (generic control planes).
    #[arg(long, value_enum, default_value_t = AllocationModeFlag::Audit)]
    allocation_mode: AllocationModeFlag,
}

/// Runs the admission server until a termination signal.
pub async fn run(args: WebhookArgs) -> anyhow::Result<()> {
    let termination = crate::signals::termination()?;
    let client = crate::client::client(
        args.kubeconfig.as_ref(),
        concat!("svcplane-webhook/", env!("CARGO_PKG_VERSION")),
    )
    .await?;
    let registry = ServiceRegistry::start(
        client.clone(),
        crate::control_plane::registry_config(
            args.service_cluster_ip_range.clone(),
            args.service_node_port_range,
            args.allocation_mode.into(),
        ),
    )
    .await?;
    let policy = AdmissionPolicy {
        ranges: crate::flags::validation_ranges(
            &args.service_cluster_ip_range,
            args.service_node_port_range,
        ),
        ..AdmissionPolicy::default()
    };
    let certificate = CertificateSource::Files {
        cert: args.tls_cert_file,
        key: args.tls_private_key_file,
        poll_interval: Duration::from_secs(10),
    };
    let mut config = WebhookConfig::new(args.bind_address, certificate, policy);
    config.allocator = Some(Arc::new(registry));
    config.services = Some(Arc::new(ServiceClusterIpIndex::start(client)));
    let handle = WebhookServer::start(config).await.map_err(|e| match e {
        webhook::server::ServerError::Bind { addr, source } => {
            crate::flags::listen_error("--bind-address", addr, &source)
        }
        other => other.into(),
    })?;
    tracing::info!(address = %handle.addr(), mode = args.allocation_mode.as_str(), "webhook serving");
    let signal = termination.await;
    tracing::info!(signal, "shutting down");
    handle.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}
