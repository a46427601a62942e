//! The flags of `svcplane controller-manager`, with kube-controller-manager's and
//! kube-apiserver's names and defaults. Every flag can also be set in the `--config` file under
//! the same name.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use allocator::{PortRange, ServiceClusterIpRanges};

use crate::flags::{
    AllocationModeFlag, parse_cluster_ip_ranges, parse_go_duration, parse_node_port_range,
};

/// The default port of `/healthz`, `/readyz` and `/metrics`: not kube-controller-manager's
/// 10257, which the sidecar shares a network namespace with, nor any other control-plane port.
pub const DEFAULT_PORT: u16 = 10357;

/// Flags of `svcplane controller-manager`.
#[derive(Debug, Clone, clap::Args)]
#[command(args_override_self = true)]
pub struct ControllerManagerArgs {
    /// A YAML file with any of these flags as keys (without the dashes); flags given on the
    /// command line win.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Path to a kubeconfig; without it KUBECONFIG, ~/.kube/config or the in-cluster config.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Controllers to run: `*` runs those on by default, `name` adds one, `-name` removes one.
    /// Names: endpointslice, endpoint, endpointslicemirroring, allocation-repair (on by
    /// default), kubernetes-service (off by default: kube-apiserver maintains it).
    #[arg(long, value_delimiter = ',', default_value = "*")]
    pub controllers: Vec<String>,

    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind_address: IpAddr,
    /// Port of /healthz, /readyz and /metrics (0 picks one).
    #[arg(long, default_value_t = DEFAULT_PORT)]
    pub port: u16,

    /// Maximum endpoints in one EndpointSlice (1..1000).
    #[arg(long, default_value_t = 100)]
    pub max_endpoints_per_slice: i64,
    /// EndpointSlice syncs running at once (1..50).
    #[arg(long, default_value_t = 5)]
    pub concurrent_service_endpoint_syncs: usize,
    /// Delay of pod-triggered EndpointSlice syncs, batching pod changes.
    #[arg(long, default_value = "0s", value_parser = parse_go_duration)]
    pub endpointslice_updates_batch_period: Duration,
    /// Endpoints syncs running at once.
    #[arg(long, default_value_t = 5)]
    pub concurrent_endpoint_syncs: usize,
    /// Delay of pod-triggered Endpoints syncs.
    #[arg(long, default_value = "0s", value_parser = parse_go_duration)]
    pub endpoint_updates_batch_period: Duration,
    /// Mirroring syncs running at once.
    #[arg(long, default_value_t = 5)]
    pub mirroring_concurrent_service_endpoint_syncs: usize,
    /// Maximum endpoints mirrored from one Endpoints subset.
    #[arg(long, default_value_t = 1000)]
    pub mirroring_max_endpoints_per_subset: usize,
    /// Delay of mirroring syncs.
    #[arg(long, default_value = "0s", value_parser = parse_go_duration)]
    pub mirroring_endpointslice_updates_batch_period: Duration,

    /// ClusterIP range(s): one CIDR, or two of different families for dual stack.
    #[arg(long, default_value = "10.96.0.0/12", value_parser = parse_cluster_ip_ranges)]
    pub service_cluster_ip_range: ServiceClusterIpRanges,
    /// NodePort range.
    #[arg(long, default_value = "30000-32767", value_parser = parse_node_port_range)]
    pub service_node_port_range: PortRange,
    /// audit: a kube-apiserver allocates, svcplane reports; authoritative: svcplane allocates
    /// (generic control planes) and releases and repairs.
    #[arg(long, value_enum, default_value_t = AllocationModeFlag::Audit)]
    pub allocation_mode: AllocationModeFlag,

    /// How the `kubernetes` Service's endpoints are kept: lease, master-count or none.
    #[arg(long, default_value = "lease", value_parser = ["lease", "master-count", "none"])]
    pub endpoint_reconciler_type: String,
    /// Number of apiservers (master-count reconciler).
    #[arg(long, default_value_t = 1)]
    pub apiserver_count: usize,
    /// The apiserver address listed in the `kubernetes` Service's endpoints.
    #[arg(long)]
    pub advertise_address: Option<IpAddr>,
    /// The apiserver's port: the `kubernetes` Service's targetPort.
    #[arg(long, default_value_t = 6443)]
    pub secure_port: u16,

    /// Elect a leader on a Lease; only the leader writes.
    #[arg(long, default_value = "true", num_args = 0..=1, default_missing_value = "true",
          action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub leader_elect: bool,
    /// How long a non-leader waits after the last renewal before taking the lease.
    #[arg(long, default_value = "15s", value_parser = parse_go_duration)]
    pub leader_elect_lease_duration: Duration,
    /// How long the leader retries renewing before giving up leadership.
    #[arg(long, default_value = "10s", value_parser = parse_go_duration)]
    pub leader_elect_renew_deadline: Duration,
    /// How often to try to acquire or renew.
    #[arg(long, default_value = "2s", value_parser = parse_go_duration)]
    pub leader_elect_retry_period: Duration,
    /// Name of the Lease.
    #[arg(long, default_value = "svcplane-controller-manager")]
    pub leader_elect_resource_name: String,
    /// Namespace of the Lease.
    #[arg(long, default_value = "kube-system")]
    pub leader_elect_resource_namespace: String,
}

impl ControllerManagerArgs {
    /// Where /healthz, /readyz and /metrics listen.
    pub fn serving_address(&self) -> SocketAddr {
        SocketAddr::new(self.bind_address, self.port)
    }
}
