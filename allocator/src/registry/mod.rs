//! The registry of record: ClusterIPs held by `networking.k8s.io/v1` IPAddress objects and
//! NodePorts held by svcplane's `NodePortAllocation` objects, claimed by creating them (the
//! API's AlreadyExists is the arbiter between replicas). The pure allocators of this crate are
//! a cache of those objects, fed by watches.

mod cache;
mod error;
mod metrics;
mod objects;
mod service_registry;

pub use cache::ClaimCache;

/// The field manager of every object svcplane writes, as `kube-controller-manager` and
/// `kube-apiserver` name theirs: `managedFields` show who wrote what.
pub const FIELD_MANAGER: &str = "svcplane";

/// Create/replace parameters naming [`FIELD_MANAGER`].
pub fn write_params() -> kube::api::PostParams {
    kube::api::PostParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..kube::api::PostParams::default()
    }
}
pub use error::RegistryError;
pub use metrics::{AllocatorMetrics, Scope};
pub use objects::{
    ALLOCATION_GROUP, IP_FAMILY_LABEL, MANAGED_BY_LABEL, NodePortAllocation,
    NodePortAllocationSpec, NodePortParentRef, SERVICES_RESOURCE, SVCPLANE_MANAGED_BY, ServiceRef,
    UPSTREAM_MANAGED_BY, crd, ip_address_claim, ip_address_ip, ip_address_parent,
    managed_by_svcplane, node_port_claim,
};
pub use service_registry::{
    AllocatedService, AllocationMode, RegistryConfig, ServiceRegistry, list_ip_addresses,
    list_node_port_allocations,
};
