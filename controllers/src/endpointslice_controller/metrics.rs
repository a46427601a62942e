//! Upstream's `endpoint_slice_controller_*` metrics (spec §1.12) plus the pod-ready →
//! slice-written latency histogram upstream lacks.

use std::collections::HashMap;
use std::sync::Mutex;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::endpointslice::EndpointSlicePlan;
use crate::runtime::ObjectKey;

type Labels = Vec<(String, String)>;

/// Go client's default histogram buckets.
const DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

fn per_sync_histogram() -> Histogram {
    Histogram::new(exponential_buckets(2.0, 2.0, 15))
}

fn default_histogram() -> Histogram {
    Histogram::new(DEFAULT_BUCKETS)
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

#[derive(Clone, Copy, Default)]
struct ServiceGauges {
    desired_endpoints: i64,
    actual_slices: i64,
    desired_slices: i64,
}

/// The controller's metrics.
pub struct EndpointSliceMetrics {
    endpoints_added_per_sync: Histogram,
    endpoints_removed_per_sync: Histogram,
    endpoints_desired: Gauge,
    num_endpoint_slices: Gauge,
    desired_endpoint_slices: Gauge,
    changes: Family<Labels, Counter>,
    endpointslices_changed_per_sync: Family<Labels, Histogram, fn() -> Histogram>,
    syncs: Family<Labels, Counter>,
    services_count_by_traffic_distribution: Family<Labels, Gauge>,
    pod_ready_latency: Histogram,
    per_service: Mutex<PerService>,
}

#[derive(Default)]
struct PerService {
    gauges: HashMap<ObjectKey, ServiceGauges>,
    traffic_distribution: HashMap<ObjectKey, String>,
}

/// Outcome label of `endpoint_slice_controller_syncs`: the worker's sync result.
pub use crate::runtime::SyncResult;

impl EndpointSliceMetrics {
    /// Creates the metrics and registers them under `endpoint_slice_controller_`.
    pub fn new(registry: &mut Registry) -> Self {
        let m = EndpointSliceMetrics {
            endpoints_added_per_sync: per_sync_histogram(),
            endpoints_removed_per_sync: per_sync_histogram(),
            endpoints_desired: Gauge::default(),
            num_endpoint_slices: Gauge::default(),
            desired_endpoint_slices: Gauge::default(),
            changes: Family::default(),
            endpointslices_changed_per_sync: Family::new_with_constructor(default_histogram),
            syncs: Family::default(),
            services_count_by_traffic_distribution: Family::default(),
            pod_ready_latency: latency_histogram(),
            per_service: Mutex::default(),
        };
        let r = registry.sub_registry_with_prefix("endpoint_slice_controller");
        r.register(
            "endpoints_added_per_sync",
            "Number of endpoints added on each Service sync",
            m.endpoints_added_per_sync.clone(),
        );
        r.register(
            "endpoints_removed_per_sync",
            "Number of endpoints removed on each Service sync",
            m.endpoints_removed_per_sync.clone(),
        );
        r.register(
            "endpoints_desired",
            "Number of endpoints desired",
            m.endpoints_desired.clone(),
        );
        r.register(
            "num_endpoint_slices",
            "Number of EndpointSlices",
            m.num_endpoint_slices.clone(),
        );
        r.register(
            "desired_endpoint_slices",
            "Number of EndpointSlices that would exist with perfect endpoint allocation",
            m.desired_endpoint_slices.clone(),
        );
        r.register(
            "changes",
            "Number of EndpointSlice changes",
            m.changes.clone(),
        );
        r.register(
            "endpointslices_changed_per_sync",
            "Number of EndpointSlices changed on each Service sync",
            m.endpointslices_changed_per_sync.clone(),
        );
        r.register("syncs", "Number of EndpointSlice syncs", m.syncs.clone());
        r.register(
            "services_count_by_traffic_distribution",
            "Number of Services using some specific trafficDistribution",
            m.services_count_by_traffic_distribution.clone(),
        );
        r.register(
            "pod_ready_to_slice_write_seconds",
            "Latency from a pod's Ready condition transition to the EndpointSlice write that reflects it (svcplane addition)",
            m.pod_ready_latency.clone(),
        );
        m
    }

    /// Counts one sync.
    pub fn sync(&self, result: SyncResult) {
        let value = match result {
            SyncResult::Success => "success",
            SyncResult::Stale => "stale",
            SyncResult::Error => "error",
        };
        self.syncs
            .get_or_create(&vec![("result".to_owned(), value.to_owned())])
            .inc();
    }

    /// Counts one slice write.
    pub fn change(&self, operation: &str) {
        self.changes
            .get_or_create(&vec![("operation".to_owned(), operation.to_owned())])
            .inc();
    }

    /// Observes a written plan of `service`.
    pub fn observe_plan(
        &self,
        service: &ObjectKey,
        plan: &EndpointSlicePlan,
        topology: &str,
        traffic_distribution: &str,
    ) {
        for stats in &plan.stats {
            self.endpoints_added_per_sync
                .observe(stats.endpoints_added as f64);
            self.endpoints_removed_per_sync
                .observe(stats.endpoints_removed as f64);
        }
        let changed = plan.create.len() + plan.update.len() + plan.delete.len();
        self.endpointslices_changed_per_sync
            .get_or_create(&vec![
                ("topology".to_owned(), topology.to_owned()),
                (
                    "traffic_distribution".to_owned(),
                    traffic_distribution.to_owned(),
                ),
            ])
            .observe(changed as f64);
        // Upstream's per-Service cache is replaced by each address-type pass, so the last
        // address type wins (spec §1.12 quirk).
        let gauges = plan
            .stats
            .last()
            .map(|s| ServiceGauges {
                desired_endpoints: i64::try_from(s.desired_endpoints).unwrap_or(i64::MAX),
                actual_slices: i64::try_from(s.actual_slices).unwrap_or(i64::MAX),
                desired_slices: i64::try_from(s.desired_slices).unwrap_or(i64::MAX),
            })
            .unwrap_or_default();
        self.set_service(service, Some(gauges), Some(traffic_distribution));
    }

    /// Forgets a deleted Service.
    pub fn forget_service(&self, service: &ObjectKey) {
        self.set_service(service, None, None);
    }

    fn set_service(
        &self,
        service: &ObjectKey,
        gauges: Option<ServiceGauges>,
        traffic_distribution: Option<&str>,
    ) {
        let mut state = self.per_service.lock().unwrap_or_else(|e| e.into_inner());
        let old = match gauges {
            Some(g) => state.gauges.insert(service.clone(), g),
            None => state.gauges.remove(service),
        }
        .unwrap_or_default();
        let new = gauges.unwrap_or_default();
        self.endpoints_desired
            .inc_by(new.desired_endpoints - old.desired_endpoints);
        self.num_endpoint_slices
            .inc_by(new.actual_slices - old.actual_slices);
        self.desired_endpoint_slices
            .inc_by(new.desired_slices - old.desired_slices);
        let old_td = match traffic_distribution.filter(|t| !t.is_empty()) {
            Some(td) => state
                .traffic_distribution
                .insert(service.clone(), td.to_owned()),
            None => state.traffic_distribution.remove(service),
        };
        if let Some(old_td) = old_td {
            self.services_count_by_traffic_distribution
                .get_or_create(&vec![("traffic_distribution".to_owned(), old_td)])
                .dec();
        }
        if let Some(td) = traffic_distribution.filter(|t| !t.is_empty()) {
            self.services_count_by_traffic_distribution
                .get_or_create(&vec![("traffic_distribution".to_owned(), td.to_owned())])
                .inc();
        }
    }

    /// Observes the latency from a Ready transition to the write reflecting it.
    pub fn observe_pod_ready_latency(&self, seconds: f64) {
        self.pod_ready_latency.observe(seconds.max(0.0));
    }
}
