#![forbid(unsafe_code)]
//! ClusterIP and NodePort allocation: the pure core (no I/O). The registry that makes an
//! allocation durable drives these types from the outside.

mod cluster_ip;
mod cluster_ip_plan;
mod error;
mod node_port;
mod node_port_plan;
mod offset_set;
mod outcome;
mod port_range;
pub mod registry;
mod service_cidr;

pub use cluster_ip::{ClusterIpAllocator, RangeSnapshot};
pub use cluster_ip_plan::{
    ClusterIpPlan, IpRequest, held_cluster_ips, plan_cluster_ips_for_create,
    plan_cluster_ips_for_update,
};
pub use error::{AllocationError, RangeConfigError};
pub use node_port::PortAllocator;
pub use node_port_plan::{
    NodePortPlan, allocates_node_ports, held_node_ports, needs_health_check, needs_node_ports,
    patch_allocated_values, plan_node_ports_for_create, plan_node_ports_for_update,
};
pub use outcome::{CauseReason, Outcome, ServiceAllocationError};
pub use port_range::{DEFAULT_SERVICE_NODE_PORT_RANGE, PortRange};
pub use service_cidr::{
    BitmapSizeLimit, DEFAULT_SERVICE_CLUSTER_IP_RANGE, IpFamily, ServiceCidr,
    ServiceClusterIpRanges,
};
