//! Request count and latency of admission reviews, by operation (`Kind/OPERATION`) and outcome.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The labels of both metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReviewLabels {
    /// `/validate` or `/mutate`.
    pub path: String,
    /// `Kind/OPERATION`, e.g. `Service/CREATE`; `malformed` for undecodable bodies.
    pub operation: String,
    /// `allowed`, `denied` or `error`.
    pub outcome: String,
}

fn latency_histogram() -> Histogram {
    // 50 µs .. ~1.6 s: loopback answers sit at the bottom, the apiserver's 10 s timeout far above.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

/// The webhook's metrics.
#[derive(Clone)]
pub struct WebhookMetrics {
    requests: Family<ReviewLabels, Counter>,
    latency: Family<ReviewLabels, Histogram, fn() -> Histogram>,
}

impl Default for WebhookMetrics {
    fn default() -> Self {
        WebhookMetrics {
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
        }
    }
}

impl WebhookMetrics {
    /// Registers `svcplane_webhook_requests_total` and `svcplane_webhook_request_duration_seconds`.
    pub fn register(&self, registry: &mut Registry) {
        // svcplane's own names (upstream has no webhook-side metrics). The 0.0.4 text exposes a
        // counter under its registered name, so the `_total` Prometheus expects is spelled here.
        registry.register(
            "svcplane_webhook_requests_total",
            "Admission reviews answered, by path, operation and outcome",
            self.requests.clone(),
        );
        registry.register(
            "svcplane_webhook_request_duration_seconds",
            "Time from a full request body to the encoded answer, by path, operation and outcome",
            self.latency.clone(),
        );
    }

    /// Counts one answered review that took `seconds`.
    pub fn observe(&self, path: &str, operation: &str, outcome: &str, seconds: f64) {
        let labels = ReviewLabels {
            path: path.to_owned(),
            operation: operation.to_owned(),
            outcome: outcome.to_owned(),
        };
        self.requests.get_or_create(&labels).inc();
        self.latency.get_or_create(&labels).observe(seconds);
    }
}
