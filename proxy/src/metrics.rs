//! kube-proxy's metrics of the nftables mode, with upstream's names, help texts, types and
//! buckets (`k/k pkg/proxy/metrics/metrics.go`, v1.34.10), and the `/metrics` answer in the
//! Prometheus text format 0.0.4 that upstream serves on `--metrics-bind-address`.
//!
//! Registered, as `RegisterMetrics(ProxyModeNFTables)` does: the sync latencies (all, full,
//! partial), the last and last-queued sync timestamps, the Service and EndpointSlice change
//! counters, the nftables sync and stale-chain clean-up failure counters, the `/healthz` and
//! `/livez` answer counters.
//! Left out: `network_programming_duration_seconds` and the `*_changes_pending` gauges (they need
//! upstream's change trackers), `sync_proxy_rules_no_local_endpoints_total` (the ruleset does not
//! count them yet), and the conntrack reconciler's (no conntrack clean-up here).

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::nft::IpFamily;

type FloatGauge = Gauge<f64, AtomicU64>;

/// The `ip_family` label: `IPv4` or `IPv6` (Kubernetes' `IPFamily` values).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FamilyLabel {
    ip_family: String,
}

impl FamilyLabel {
    fn of(family: IpFamily) -> Self {
        FamilyLabel {
            ip_family: match family {
                IpFamily::V4 => "IPv4",
                IpFamily::V6 => "IPv6",
            }
            .to_owned(),
        }
    }
}

/// The `code` label of the healthz and livez counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabel {
    code: String,
}

/// Upstream's sync latency buckets: `ExponentialBuckets(0.001, 2, 15)`, 1 ms to ~16 s.
fn sync_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// The proxy's metrics; clones share the same series.
#[derive(Clone)]
pub struct ProxyMetrics {
    sync_duration: Family<FamilyLabel, Histogram, fn() -> Histogram>,
    full_sync_duration: Family<FamilyLabel, Histogram, fn() -> Histogram>,
    partial_sync_duration: Family<FamilyLabel, Histogram, fn() -> Histogram>,
    last_timestamp: Family<FamilyLabel, FloatGauge>,
    last_queued_timestamp: Family<FamilyLabel, FloatGauge>,
    endpoint_changes: Counter,
    service_changes: Counter,
    nftables_sync_failures: Family<FamilyLabel, Counter>,
    nftables_cleanup_failures: Family<FamilyLabel, Counter>,
    healthz: Family<CodeLabel, Counter>,
    livez: Family<CodeLabel, Counter>,
}

impl Default for ProxyMetrics {
    fn default() -> Self {
        ProxyMetrics {
            sync_duration: Family::new_with_constructor(sync_histogram),
            full_sync_duration: Family::new_with_constructor(sync_histogram),
            partial_sync_duration: Family::new_with_constructor(sync_histogram),
            last_timestamp: Family::default(),
            last_queued_timestamp: Family::default(),
            endpoint_changes: Counter::default(),
            service_changes: Counter::default(),
            nftables_sync_failures: Family::default(),
            nftables_cleanup_failures: Family::default(),
            healthz: Family::default(),
            livez: Family::default(),
        }
    }
}

/// Which sync a duration belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncKind {
    /// The table re-created (the first sync, and the one after a failure).
    Full,
    /// Only what changed.
    Partial,
}

impl ProxyMetrics {
    /// Registers every series under upstream's `kubeproxy_` names.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("kubeproxy");
        r.register(
            "sync_proxy_rules_duration_seconds",
            "SyncProxyRules latency in seconds",
            self.sync_duration.clone(),
        );
        r.register(
            "sync_full_proxy_rules_duration_seconds",
            "SyncProxyRules latency in seconds for full resyncs",
            self.full_sync_duration.clone(),
        );
        r.register(
            "sync_partial_proxy_rules_duration_seconds",
            "SyncProxyRules latency in seconds for partial resyncs",
            self.partial_sync_duration.clone(),
        );
        r.register(
            "sync_proxy_rules_last_timestamp_seconds",
            "The last time proxy rules were successfully synced",
            self.last_timestamp.clone(),
        );
        r.register(
            "sync_proxy_rules_last_queued_timestamp_seconds",
            "The last time a sync of proxy rules was queued",
            self.last_queued_timestamp.clone(),
        );
        // The 0.0.4 text exposes a counter under its registered name: `_total` is spelled here.
        r.register(
            "sync_proxy_rules_endpoint_changes_total",
            "Cumulative proxy rules Endpoint changes",
            self.endpoint_changes.clone(),
        );
        r.register(
            "sync_proxy_rules_service_changes_total",
            "Cumulative proxy rules Service changes",
            self.service_changes.clone(),
        );
        r.register(
            "sync_proxy_rules_nftables_sync_failures_total",
            "Cumulative proxy nftables sync failures",
            self.nftables_sync_failures.clone(),
        );
        r.register(
            "sync_proxy_rules_nftables_cleanup_failures_total",
            "Cumulative proxy nftables cleanup failures",
            self.nftables_cleanup_failures.clone(),
        );
        r.register(
            "proxy_healthz_total",
            "Cumulative proxy healthz HTTP status",
            self.healthz.clone(),
        );
        r.register(
            "proxy_livez_total",
            "Cumulative proxy livez HTTP status",
            self.livez.clone(),
        );
    }

    /// One sync of `family`'s table (successful or not) took `seconds`.
    pub fn observe_sync(&self, family: IpFamily, kind: SyncKind, seconds: f64) {
        let label = FamilyLabel::of(family);
        self.sync_duration.get_or_create(&label).observe(seconds);
        match kind {
            SyncKind::Full => &self.full_sync_duration,
            SyncKind::Partial => &self.partial_sync_duration,
        }
        .get_or_create(&label)
        .observe(seconds);
    }

    /// `family`'s table was synced successfully at `unix_seconds`.
    pub fn synced(&self, family: IpFamily, unix_seconds: f64) {
        self.last_timestamp
            .get_or_create(&FamilyLabel::of(family))
            .set(unix_seconds);
    }

    /// A sync of `family`'s table was asked for at `unix_seconds`.
    pub fn queued(&self, family: IpFamily, unix_seconds: f64) {
        self.last_queued_timestamp
            .get_or_create(&FamilyLabel::of(family))
            .set(unix_seconds);
    }

    /// The watch saw a Service change.
    pub fn service_changed(&self) {
        self.service_changes.inc();
    }

    /// The watch saw an EndpointSlice change.
    pub fn endpoint_changed(&self) {
        self.endpoint_changes.inc();
    }

    /// nft refused `family`'s sync transaction.
    pub fn sync_failed(&self, family: IpFamily) {
        self.nftables_sync_failures
            .get_or_create(&FamilyLabel::of(family))
            .inc();
    }

    /// nft refused to delete `family`'s stale chains.
    pub fn cleanup_failed(&self, family: IpFamily) {
        self.nftables_cleanup_failures
            .get_or_create(&FamilyLabel::of(family))
            .inc();
    }

    /// `/healthz` answered `status`.
    pub fn healthz_answered(&self, status: u16) {
        self.healthz
            .get_or_create(&CodeLabel {
                code: status.to_string(),
            })
            .inc();
    }

    /// `/livez` answered `status`.
    pub fn livez_answered(&self, status: u16) {
        self.livez
            .get_or_create(&CodeLabel {
                code: status.to_string(),
            })
            .inc();
    }
}

/// `now` as upstream's `SetToCurrentTime` writes it: `UnixNano() / 1e9`, seconds since the
/// epoch with a fraction.
pub fn unix_seconds(now: jiff::Timestamp) -> f64 {
    now.as_nanosecond() as f64 / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(metrics: &ProxyMetrics) -> String {
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        gocompat::metrics_text::render(&registry).expect("renders")
    }

    #[test]
    fn a_fresh_proxy_exposes_only_the_unlabelled_counters() {
        // Go's client leaves out vectors without children; plain counters start at 0.
        assert_eq!(
            rendered(&ProxyMetrics::default()),
            "# HELP kubeproxy_sync_proxy_rules_endpoint_changes_total Cumulative proxy rules Endpoint changes\n\
             # TYPE kubeproxy_sync_proxy_rules_endpoint_changes_total counter\n\
             kubeproxy_sync_proxy_rules_endpoint_changes_total 0\n\
             # HELP kubeproxy_sync_proxy_rules_service_changes_total Cumulative proxy rules Service changes\n\
             # TYPE kubeproxy_sync_proxy_rules_service_changes_total counter\n\
             kubeproxy_sync_proxy_rules_service_changes_total 0\n"
        );
    }

    #[test]
    fn a_full_sync_is_counted_in_the_overall_and_full_histograms_with_upstream_buckets() {
        let metrics = ProxyMetrics::default();
        metrics.observe_sync(IpFamily::V4, SyncKind::Full, 0.3);
        metrics.synced(IpFamily::V4, 1_764_000_000.25);
        let text = rendered(&metrics);
        let full = "# HELP kubeproxy_sync_full_proxy_rules_duration_seconds SyncProxyRules latency in seconds for full resyncs\n\
             # TYPE kubeproxy_sync_full_proxy_rules_duration_seconds histogram\n\
             kubeproxy_sync_full_proxy_rules_duration_seconds_bucket{ip_family=\"IPv4\",le=\"0.001\"} 0\n\
             kubeproxy_sync_full_proxy_rules_duration_seconds_bucket{ip_family=\"IPv4\",le=\"0.002\"} 0\n\
             kubeproxy_sync_full_proxy_rules_duration_seconds_bucket{ip_family=\"IPv4\",le=\"0.004\"} 0\n\
             kubeproxy_sync_full_proxy_rules_duration_seconds_bucket{ip_family=\"IPv4\",le=\"0.008\"} 0\n\
             kubeproxy_sync_full_proxy_rules_duration_seconds_bucket{ip_family=\"IPv4\",le=\"0.016\"} 0\n\
             kubeproxy_sync_full_proxy_rules_duration_seconds_bucket{ip_family=\"IPv4\",le=\"0.032\"} 0\n\
             kubeproxy_sync_full_proxy_rules_duration_seconds_bucket{ip_family=\"IPv4\",le=\"0.064\"} 0\n\
             kubeproxy_sync_full_proxy_rules_duration_seconds_bucket{ip_family=\"IPv4\",le=\"0.128\"} 0\n\
             kubeproxy_sync_full_proxy_rules_duration_seconds_bucket{ip_family=\"IPv4\",le=\"0.256\"} 0\n\
             kubeproxy_sync_full_proxy_rules_duration_seconds_bucket{ip_family=\"IPv4\",le=\"0.512\"} 1\n\
             kubeproxy_sync_full_proxy_rules_duration_seconds_bucket{ip_family=\"IPv4\",le=\"1.024\"} 1\n\
             kubeproxy_sync_full_proxy_rules_duration_seconds_bucket{ip_family=\"IPv4\",le=\"2.048\"} 1\n\
             kubeproxy_sync_full_proxy_rules_duration_seconds_bucket{ip_family=\"IPv4\",le=\"4.096\"} 1\n\
             kubeproxy_sync_full_proxy_rules_duration_seconds_bucket{ip_family=\"IPv4\",le=\"8.192\"} 1\n\
             kubeproxy_sync_full_proxy_rules_duration_seconds_bucket{ip_family=\"IPv4\",le=\"16.384\"} 1\n\
             kubeproxy_sync_full_proxy_rules_duration_seconds_bucket{ip_family=\"IPv4\",le=\"+Inf\"} 1\n\
             kubeproxy_sync_full_proxy_rules_duration_seconds_sum{ip_family=\"IPv4\"} 0.3\n\
             kubeproxy_sync_full_proxy_rules_duration_seconds_count{ip_family=\"IPv4\"} 1\n";
        assert!(text.contains(full), "{text}");
        assert!(
            text.contains(
                "kubeproxy_sync_proxy_rules_duration_seconds_count{ip_family=\"IPv4\"} 1\n"
            ),
            "{text}"
        );
        assert!(
            !text.contains("kubeproxy_sync_partial_proxy_rules_duration_seconds"),
            "no partial sync yet: {text}"
        );
        assert!(
            text.contains(
                "# HELP kubeproxy_sync_proxy_rules_last_timestamp_seconds The last time proxy rules were successfully synced\n\
                 # TYPE kubeproxy_sync_proxy_rules_last_timestamp_seconds gauge\n\
                 kubeproxy_sync_proxy_rules_last_timestamp_seconds{ip_family=\"IPv4\"} 1.76400000025e+09\n"
            ),
            "Go's %g rendering of a timestamp: {text}"
        );
    }

    #[test]
    fn partial_syncs_failures_and_probe_answers_have_their_own_series() {
        let metrics = ProxyMetrics::default();
        metrics.observe_sync(IpFamily::V6, SyncKind::Partial, 0.0005);
        metrics.sync_failed(IpFamily::V6);
        metrics.cleanup_failed(IpFamily::V4);
        metrics.service_changed();
        metrics.endpoint_changed();
        metrics.endpoint_changed();
        metrics.healthz_answered(200);
        metrics.healthz_answered(503);
        metrics.livez_answered(200);
        metrics.queued(IpFamily::V4, 2.5);
        let text = rendered(&metrics);
        for line in [
            "kubeproxy_sync_partial_proxy_rules_duration_seconds_bucket{ip_family=\"IPv6\",le=\"0.001\"} 1\n",
            "kubeproxy_sync_partial_proxy_rules_duration_seconds_count{ip_family=\"IPv6\"} 1\n",
            "kubeproxy_sync_proxy_rules_duration_seconds_sum{ip_family=\"IPv6\"} 0.0005\n",
            "# TYPE kubeproxy_sync_proxy_rules_nftables_sync_failures_total counter\n\
             kubeproxy_sync_proxy_rules_nftables_sync_failures_total{ip_family=\"IPv6\"} 1\n",
            "kubeproxy_sync_proxy_rules_nftables_cleanup_failures_total{ip_family=\"IPv4\"} 1\n",
            "kubeproxy_sync_proxy_rules_service_changes_total 1\n",
            "kubeproxy_sync_proxy_rules_endpoint_changes_total 2\n",
            "kubeproxy_proxy_healthz_total{code=\"200\"} 1\nkubeproxy_proxy_healthz_total{code=\"503\"} 1\n",
            "kubeproxy_proxy_livez_total{code=\"200\"} 1\n",
            "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds{ip_family=\"IPv4\"} 2.5\n",
        ] {
            assert!(text.contains(line), "missing {line:?} in:\n{text}");
        }
        assert!(
            !text.contains("kubeproxy_sync_full_proxy_rules_duration_seconds"),
            "{text}"
        );
    }

    #[test]
    fn timestamps_keep_their_fraction() {
        let t = jiff::Timestamp::from_millisecond(1_764_000_000_250).unwrap();
        // Go's `float64(time.Now().UnixNano()) / 1e9`: the same rounding as ours.
        assert!((unix_seconds(t) - 1_764_000_000.25).abs() < 1e-6);
        assert_eq!(unix_seconds(t).floor(), 1_764_000_000.0);
    }
}
