//! A test fixture (feature `testing`): in one call, a throw-away CA and serving certificate, the
//! server on loopback with the [`InMemoryAllocator`], and both configurations installed with a
//! URL target. `svcplane up` wires its webhook itself, over the allocator registry.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use allocator::{PortRange, ServiceClusterIpRanges};
use k8s_openapi::api::core::v1::Service;
use kube::Client;
use kube::api::{Api, ListParams};
use thiserror::Error;

use crate::ServiceRanges;
use crate::server::admission::AdmissionPolicy;
use crate::server::in_memory::InMemoryAllocator;
use crate::server::install::{WebhookTarget, install_configurations};
use crate::server::lookup::ServiceClusterIpIndex;
use crate::server::tls::{CertificateSource, generate_certificates};
use crate::server::{ServerError, WebhookConfig, WebhookHandle, WebhookServer};

/// Why the test webhook could not start.
#[derive(Debug, Error)]
pub enum EmbeddedError {
    /// Certificate generation failed.
    #[error("generating the webhook certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    /// The server did not start.
    #[error(transparent)]
    Server(#[from] ServerError),
    /// The API server refused a request.
    #[error("talking to the API server: {}", gocompat::api_error_text(.0))]
    Api(#[from] kube::Error),
}

/// What the test webhook serves.
#[derive(Clone, Debug)]
pub struct EmbeddedWebhookOptions {
    /// `--service-cluster-ip-range`.
    pub cluster_ip_ranges: ServiceClusterIpRanges,
    /// `--service-node-port-range`.
    pub node_ports: PortRange,
    /// Where to listen; port 0 picks one.
    pub bind: SocketAddr,
}

impl EmbeddedWebhookOptions {
    /// Loopback, any port, over the given ranges.
    pub fn new(cluster_ip_ranges: ServiceClusterIpRanges, node_ports: PortRange) -> Self {
        EmbeddedWebhookOptions {
            cluster_ip_ranges,
            node_ports,
            bind: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
        }
    }
}

/// A running test webhook.
pub struct EmbeddedWebhook {
    /// The server.
    pub handle: WebhookHandle,
    /// The CA that signed the serving certificate (PEM), as put into `caBundle`.
    pub ca_pem: String,
    /// The allocator it fills in ClusterIPs and NodePorts from.
    pub allocator: Arc<InMemoryAllocator>,
}

fn service_ranges(options: &EmbeddedWebhookOptions) -> ServiceRanges {
    ServiceRanges {
        cluster_ip: options
            .cluster_ip_ranges
            .all()
            .into_iter()
            .map(|c| c.net())
            .collect(),
        node_ports: (
            u16::try_from(options.node_ports.base()).unwrap_or(30000),
            u16::try_from(options.node_ports.base() + options.node_ports.size().saturating_sub(1))
                .unwrap_or(32767),
        ),
    }
}

impl EmbeddedWebhook {
    /// Generates certificates, marks what existing Services hold, starts the server with the
    /// in-memory allocator and a Service cache, and installs both configurations.
    pub async fn start(
        client: Client,
        options: EmbeddedWebhookOptions,
    ) -> Result<Self, EmbeddedError> {
        let host = options.bind.ip().to_string();
        let (ca_pem, cert, key) = generate_certificates(&[host, "localhost".to_owned()])?;
        let allocator = Arc::new(InMemoryAllocator::new(
            options.cluster_ip_ranges.clone(),
            options.node_ports,
        ));
        let existing = Api::<Service>::all(client.clone())
            .list(&ListParams::default())
            .await?;
        allocator.restore(existing.items.iter());
        let policy = AdmissionPolicy {
            ranges: service_ranges(&options),
            ..AdmissionPolicy::default()
        };
        let mut config =
            WebhookConfig::new(options.bind, CertificateSource::Pem { cert, key }, policy);
        config.allocator = Some(allocator.clone());
        config.services = Some(Arc::new(ServiceClusterIpIndex::start(client.clone())));
        let handle = WebhookServer::start(config).await?;
        let base = format!("https://{}", handle.addr());
        install_configurations(client, ca_pem.as_bytes(), &WebhookTarget::Url(base)).await?;
        Ok(EmbeddedWebhook {
            handle,
            ca_pem,
            allocator,
        })
    }
}
