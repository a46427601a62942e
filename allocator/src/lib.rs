#![forbid(unsafe_code)]
//! ClusterIP and NodePort allocation: the pure core (no I/O). The registry that makes an
//! allocation durable drives these types from the outside.

mod cluster_ip;
mod error;
mod offset_set;
mod service_cidr;

pub use cluster_ip::{ClusterIpAllocator, RangeSnapshot};
pub use error::{AllocationError, RangeConfigError};
pub use service_cidr::{
    BitmapSizeLimit, DEFAULT_SERVICE_CLUSTER_IP_RANGE, IpFamily, ServiceCidr,
    ServiceClusterIpRanges,
};
