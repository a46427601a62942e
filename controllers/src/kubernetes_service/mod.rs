//! The default `kubernetes` Service and its endpoints (upstream
//! `pkg/controlplane/controller/kubernetesservice`, `pkg/controlplane/reconcilers` and the
//! system-namespaces controller), as pure functions from observed state to writes.

mod endpoints_sync;
mod namespaces;
mod reconcilers;
mod service;

#[cfg(test)]
mod tests;

use std::time::Duration;

pub use endpoints_sync::{ApiServerEndpoints, ApiServerWrite, EndpointsTarget, sync_endpoints};
pub use namespaces::{SYSTEM_NAMESPACES, missing_system_namespaces};
pub use reconcilers::{
    Lease, ReconcilerType, lease_reconcile, lease_remove, master_count_reconcile,
    master_count_remove,
};
pub use service::{
    ServiceAction, desired_service, first_usable_ip, kubernetes_service_ports, plan_service,
};

/// Name of the default Service and of its Endpoints / primary EndpointSlice.
pub const SERVICE_NAME: &str = "kubernetes";
/// Namespace of the default Service.
pub const SERVICE_NAMESPACE: &str = "default";
/// `APIServerServicePort`: the Service port.
pub const SERVICE_PORT: i32 = 443;
/// Name of the Service port and endpoint port.
pub const SERVICE_PORT_NAME: &str = "https";
/// Default `--secure-port`, the targetPort and endpoint port.
pub const DEFAULT_SECURE_PORT: i32 = 6443;
/// Default `--service-cluster-ip-range`.
pub const DEFAULT_SERVICE_CLUSTER_IP_RANGE: &str = "10.0.0.0/24";
/// Smallest accepted service range, in addresses.
pub const MIN_SERVICE_RANGE_SIZE: u128 = 8;
/// `DefaultEndpointReconcilerInterval`.
pub const RECONCILE_INTERVAL: Duration = Duration::from_secs(10);
/// `DefaultEndpointReconcilerTTL`: how long a lease lives without renewal.
pub const LEASE_TTL: Duration = Duration::from_secs(15);
/// Label on the `kubernetes` Endpoints that keeps the mirroring controller away.
pub const SKIP_MIRROR_LABEL: &str = "endpointslice.kubernetes.io/skip-mirror";
/// Label naming the Service an EndpointSlice belongs to.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Failures of the pure kubernetes-Service functions, with upstream's messages.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KubernetesServiceError {
    /// `--service-cluster-ip-range` holds fewer than 8 addresses.
    #[error("the service cluster IP range must be at least 8 IP addresses")]
    RangeTooSmall,
    /// No live lease, not even our own: refusing to empty the endpoints.
    #[error(
        "no API server IP addresses were listed in storage, refusing to erase all endpoints for the kubernetes Service"
    )]
    NoApiServerIps,
    /// `RemoveEndpoints` for an IP that holds no lease (storage NotFound).
    #[error("key not found: /masterleases/{ip}")]
    LeaseNotFound {
        /// The IP whose lease key was to be deleted.
        ip: String,
    },
    /// The apiserver was given no IP of its own.
    #[error("no API server IP given")]
    NoOwnIp,
}
