//! The allocator metrics under upstream's names (`ipallocator/metrics.go`,
//! `portallocator/metrics.go`). Counters are registered with upstream's full name, `_total`
//! included: svcplane's `/metrics` (Prometheus text 0.0.4) exposes them as registered, while
//! prometheus-client's own OpenMetrics encoder would append a second `_total`.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

use crate::cluster_ip::ClusterIpAllocator;
use crate::node_port::PortAllocator;

type Labels = Vec<(String, String)>;
type FloatGauge = Gauge<f64, AtomicU64>;

/// Whether a value was requested by the client or chosen by the allocator (label `scope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The client asked for the value.
    Static,
    /// The allocator chose it.
    Dynamic,
}

impl Scope {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Static => "static",
            Scope::Dynamic => "dynamic",
        }
    }
}

/// `kube_apiserver_clusterip_allocator_*` and `kube_apiserver_nodeport_allocator_*`.
/// Cloning shares the series.
#[derive(Debug, Clone, Default)]
pub struct AllocatorMetrics {
    ip_allocated: Family<Labels, FloatGauge>,
    ip_available: Family<Labels, FloatGauge>,
    ip_allocations: Family<Labels, Counter>,
    ip_errors: Family<Labels, Counter>,
    port_allocated: FloatGauge,
    port_available: FloatGauge,
    port_allocations: Family<Labels, Counter>,
    port_errors: Family<Labels, Counter>,
}

fn cidr_scope(cidr: &str, scope: Scope) -> Labels {
    vec![
        ("cidr".into(), cidr.into()),
        ("scope".into(), scope.as_str().into()),
    ]
}

impl AllocatorMetrics {
    /// Adds every series to `registry` under upstream's names.
    pub fn register(&self, registry: &mut Registry) {
        let ip = registry.sub_registry_with_prefix("kube_apiserver_clusterip_allocator");
        ip.register(
            "allocated_ips",
            "Gauge measuring the number of allocated IPs for Services",
            self.ip_allocated.clone(),
        );
        ip.register(
            "available_ips",
            "Gauge measuring the number of available IPs for Services",
            self.ip_available.clone(),
        );
        ip.register(
            "allocation_total",
            "Number of Cluster IPs allocations",
            self.ip_allocations.clone(),
        );
        ip.register(
            "allocation_errors_total",
            "Number of errors trying to allocate Cluster IPs",
            self.ip_errors.clone(),
        );
        let port = registry.sub_registry_with_prefix("kube_apiserver_nodeport_allocator");
        port.register(
            "allocated_ports",
            "Gauge measuring the number of allocated NodePorts for Services",
            self.port_allocated.clone(),
        );
        port.register(
            "available_ports",
            "Gauge measuring the number of available NodePorts for Services",
            self.port_available.clone(),
        );
        port.register(
            "allocation_total",
            "Number of NodePort allocations",
            self.port_allocations.clone(),
        );
        port.register(
            "allocation_errors_total",
            "Number of errors trying to allocate NodePort",
            self.port_errors.clone(),
        );
    }

    /// Counts one ClusterIP allocation in `cidr`.
    pub fn ip_allocated_once(&self, cidr: &str, scope: Scope) {
        self.ip_allocations
            .get_or_create(&cidr_scope(cidr, scope))
            .inc();
    }

    /// Counts one failed ClusterIP allocation in `cidr`.
    pub fn ip_error(&self, cidr: &str, scope: Scope) {
        self.ip_errors.get_or_create(&cidr_scope(cidr, scope)).inc();
    }

    /// Counts one NodePort allocation.
    pub fn port_allocated_once(&self, scope: Scope) {
        self.port_allocations
            .get_or_create(&vec![("scope".into(), scope.as_str().into())])
            .inc();
    }

    /// Counts one failed NodePort allocation.
    pub fn port_error(&self, scope: Scope) {
        self.port_errors
            .get_or_create(&vec![("scope".into(), scope.as_str().into())])
            .inc();
    }

    /// Sets the allocated/available gauges of one CIDR.
    pub fn set_ip_usage(&self, cidr: &str, allocated: u64, available: u64) {
        let labels = vec![("cidr".to_string(), cidr.to_string())];
        self.ip_allocated
            .get_or_create(&labels)
            .set(allocated as f64);
        self.ip_available
            .get_or_create(&labels)
            .set(available as f64);
    }

    /// Sets the NodePort gauges.
    pub fn set_port_usage(&self, allocated: u64, available: u64) {
        self.port_allocated.set(allocated as f64);
        self.port_available.set(available as f64);
    }

    /// Sets every gauge from the allocators' counts.
    pub fn observe(&self, ips: &[ClusterIpAllocator], ports: &PortAllocator) {
        for a in ips {
            self.set_ip_usage(&a.cidr().to_string(), a.used(), a.free());
        }
        self.set_port_usage(ports.used(), ports.free());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;

    #[test]
    fn names_match_upstream() {
        let metrics = AllocatorMetrics::default();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        metrics.ip_allocated_once("10.96.0.0/12", Scope::Dynamic);
        metrics.ip_error("10.96.0.0/12", Scope::Static);
        metrics.port_allocated_once(Scope::Static);
        metrics.port_error(Scope::Dynamic);
        metrics.set_ip_usage("10.96.0.0/12", 3, 1_048_571);
        metrics.set_port_usage(2, 2766);
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        // The OpenMetrics encoder appends `_total` to counter samples; the family names in
        // the TYPE lines are what svcplane's 0.0.4 `/metrics` exposes.
        for line in [
            "kube_apiserver_clusterip_allocator_allocated_ips{cidr=\"10.96.0.0/12\"} 3.0",
            "kube_apiserver_clusterip_allocator_available_ips{cidr=\"10.96.0.0/12\"} 1048571.0",
            "# TYPE kube_apiserver_clusterip_allocator_allocation_total counter",
            "kube_apiserver_clusterip_allocator_allocation_total_total{cidr=\"10.96.0.0/12\",scope=\"dynamic\"} 1",
            "# TYPE kube_apiserver_clusterip_allocator_allocation_errors_total counter",
            "kube_apiserver_clusterip_allocator_allocation_errors_total_total{cidr=\"10.96.0.0/12\",scope=\"static\"} 1",
            "kube_apiserver_nodeport_allocator_allocated_ports 2.0",
            "kube_apiserver_nodeport_allocator_available_ports 2766.0",
            "# TYPE kube_apiserver_nodeport_allocator_allocation_total counter",
            "kube_apiserver_nodeport_allocator_allocation_total_total{scope=\"static\"} 1",
            "# TYPE kube_apiserver_nodeport_allocator_allocation_errors_total counter",
            "kube_apiserver_nodeport_allocator_allocation_errors_total_total{scope=\"dynamic\"} 1",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }
}
