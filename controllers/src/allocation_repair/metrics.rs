//! Allocation and repair metrics under upstream's names.

use allocator::registry::AllocatorMetrics;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::allocation_repair::plan::RepairCounts;

type Labels = Vec<(String, String)>;

/// `kube_apiserver_{clusterip,nodeport}_allocator_*` gauges and counters plus the repair
/// loops' `apiserver_clusterip_repair_ip_errors_total` and
/// `apiserver_nodeport_repair_port_errors_total` (label `type`; upstream's namespace here is
/// `apiserver`, not `kube_apiserver`). Cloning shares them.
#[derive(Debug, Clone, Default)]
pub struct RepairMetrics {
    /// The allocator series (also recorded by a `ServiceRegistry` given the same value).
    pub allocator: AllocatorMetrics,
    ip_repair_errors: Family<Labels, Counter>,
    port_repair_errors: Family<Labels, Counter>,
}

impl RepairMetrics {
    /// Adds the repair counters to the repair error series.
    pub fn count(&self, counts: &RepairCounts) {
        for (kind, n) in &counts.ip_errors {
            self.ip_repair_errors
                .get_or_create(&vec![("type".into(), (*kind).into())])
                .inc_by(*n);
        }
        for (kind, n) in &counts.port_errors {
            self.port_repair_errors
                .get_or_create(&vec![("type".into(), (*kind).into())])
                .inc_by(*n);
        }
    }
}

/// Registers every allocation and repair series of `metrics` in `registry`.
pub fn register(metrics: &RepairMetrics, registry: &mut Registry) {
    metrics.allocator.register(registry);
    registry
        .sub_registry_with_prefix("apiserver_clusterip_repair")
        .register(
            "ip_errors_total",
            "Number of errors detected on clusterips by the repair loop broken down by type of error: leak, repair, full, outOfRange, duplicate, unknown, invalid",
            metrics.ip_repair_errors.clone(),
        );
    registry
        .sub_registry_with_prefix("apiserver_nodeport_repair")
        .register(
            "port_errors_total",
            "Number of errors detected on ports by the repair loop broken down by type of error: leak, repair, full, outOfRange, duplicate, unknown",
            metrics.port_repair_errors.clone(),
        );
}
