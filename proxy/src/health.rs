//! The health-check answers, as pure functions (upstream's `pkg/proxy/healthcheck`): the
//! healthCheckNodePort answer of a Service (`service_health.go`) and the proxy's own `/healthz`
//! and `/livez` (`proxy_health.go`).

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::json;

use crate::nft::IpFamily;

/// The taint cluster-autoscaler puts on a node it is about to delete.
pub const TO_BE_DELETED_TAINT: &str = "ToBeDeletedByClusterAutoscaler";

/// Whether this node may receive load-balancer traffic (upstream's `NodeEligible`): its Node
/// exists, is not being deleted and is not tainted [`TO_BE_DELETED_TAINT`].
pub fn node_eligible(node: Option<&k8s_openapi::api::core::v1::Node>) -> bool {
    let Some(node) = node else {
        return false;
    };
    node.metadata.deletion_timestamp.is_none()
        && !node
            .spec
            .as_ref()
            .and_then(|s| s.taints.as_ref())
            .is_some_and(|t| t.iter().any(|t| t.key == TO_BE_DELETED_TAINT))
}

/// An HTTP answer: status, headers, body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthResponse {
    /// 200 or 503.
    pub status: u16,
    /// Headers in the order upstream sets them.
    pub headers: Vec<(&'static str, String)>,
    /// The body, exactly.
    pub body: String,
}

/// A Service's healthCheckNodePort answer: 200 when this node has a Ready endpoint of it and
/// the proxy is healthy, else 503; any method, any path.
pub fn service_health_response(
    namespace: &str,
    name: &str,
    local_endpoints: usize,
    proxy_healthy: bool,
) -> HealthResponse {
    let status = if local_endpoints != 0 && proxy_healthy {
        200
    } else {
        503
    };
    // Go's %q of a DNS label is its JSON string; serde_json writes the same.
    let q = |s: &str| serde_json::Value::String(s.to_string()).to_string();
    HealthResponse {
        status,
        headers: vec![
            ("Content-Type", "application/json".into()),
            ("X-Content-Type-Options", "nosniff".into()),
            (
                "X-Load-Balancing-Endpoint-Weight",
                local_endpoints.to_string(),
            ),
        ],
        body: format!(
            "{{\n\t\"service\": {{\n\t\t\"namespace\": {},\n\t\t\"name\": {}\n\t}},\n\t\"localEndpoints\": {local_endpoints},\n\t\"serviceProxyHealthy\": {proxy_healthy}\n}}",
            q(namespace),
            q(name)
        ),
    }
}

/// The proxy's health: per family, when rules were last written and the oldest change waiting
/// to be written. Unhealthy when a change has waited longer than the timeout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyHealth {
    timeout: Duration,
    last_updated: BTreeMap<IpFamily, Timestamp>,
    oldest_pending: BTreeMap<IpFamily, Timestamp>,
}

/// One reading of [`ProxyHealth`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthReading {
    /// No family has a change waiting longer than the timeout.
    pub healthy: bool,
    /// The latest update of any family.
    pub last_updated: Option<Timestamp>,
    /// Per family: its last update and whether it is healthy.
    pub status: BTreeMap<IpFamily, (Timestamp, bool)>,
}

/// Go's zero `time.Time` as encoding/json writes it.
const GO_ZERO_TIME: &str = "0001-01-01T00:00:00Z";

fn family_name(family: IpFamily) -> &'static str {
    family.address_type()
}

impl ProxyHealth {
    /// A tracker with upstream's timeout (2 × syncPeriod).
    pub fn new(timeout: Duration) -> Self {
        ProxyHealth {
            timeout,
            last_updated: BTreeMap::new(),
            oldest_pending: BTreeMap::new(),
        }
    }

    /// A change is queued for `family` (kept when one is already waiting).
    pub fn queued_update(&mut self, family: IpFamily, now: Timestamp) {
        self.oldest_pending.entry(family).or_insert(now);
    }

    /// `family`'s rules were written.
    pub fn updated(&mut self, family: IpFamily, now: Timestamp) {
        self.oldest_pending.remove(&family);
        self.last_updated.insert(family, now);
    }

    /// The health at `now`.
    pub fn read(&self, now: Timestamp) -> HealthReading {
        let mut reading = HealthReading {
            healthy: true,
            last_updated: self.last_updated.values().max().copied(),
            status: BTreeMap::new(),
        };
        for (family, last) in &self.last_updated {
            let stuck = self.oldest_pending.get(family).is_some_and(|queued| {
                now.duration_since(*queued).unsigned_abs() >= self.timeout && now >= *queued
            });
            if stuck {
                reading.healthy = false;
            }
            reading.status.insert(*family, (*last, !stuck));
        }
        reading
    }
}

fn reading_json(
    reading: &HealthReading,
    last_updated: Option<Timestamp>,
    now: Timestamp,
    node_eligible: Option<bool>,
) -> String {
    let time = |t: Option<Timestamp>| t.map_or(GO_ZERO_TIME.to_string(), |t| t.to_string());
    let mut body = serde_json::Map::new();
    body.insert("lastUpdated".into(), json!(time(last_updated)));
    body.insert("currentTime".into(), json!(now.to_string()));
    if let Some(eligible) = node_eligible {
        body.insert("nodeEligible".into(), json!(eligible));
    }
    body.insert("healthy".into(), json!(reading.healthy));
    if !reading.status.is_empty() {
        let mut status = serde_json::Map::new();
        for (family, (last, healthy)) in &reading.status {
            status.insert(
                family_name(*family).into(),
                json!({"lastUpdated": last.to_string(), "healthy": healthy}),
            );
        }
        body.insert("status".into(), serde_json::Value::Object(status));
    }
    serde_json::Value::Object(body).to_string()
}

fn json_response(status: u16, body: String) -> HealthResponse {
    HealthResponse {
        status,
        headers: vec![
            ("Content-Type", "application/json".into()),
            ("X-Content-Type-Options", "nosniff".into()),
        ],
        body,
    }
}

/// `/healthz`: healthy and the node eligible (not being deleted, not tainted
/// `ToBeDeletedByClusterAutoscaler`) → 200 with `lastUpdated` = now; else 503.
pub fn healthz_response(
    health: &ProxyHealth,
    now: Timestamp,
    node_eligible: bool,
) -> HealthResponse {
    let reading = health.read(now);
    let ok = reading.healthy && node_eligible;
    let last = if ok { Some(now) } else { reading.last_updated };
    json_response(
        if ok { 200 } else { 503 },
        reading_json(&reading, last, now, Some(node_eligible)),
    )
}

/// `/livez`: as `/healthz` without the node check.
pub fn livez_response(health: &ProxyHealth, now: Timestamp) -> HealthResponse {
    let reading = health.read(now);
    let last = if reading.healthy {
        Some(now)
    } else {
        reading.last_updated
    };
    json_response(
        if reading.healthy { 200 } else { 503 },
        reading_json(&reading, last, now, None),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_health_body_is_upstreams_byte_for_byte() {
        let r = service_health_response("ns2", "svc2", 1, true);
        assert_eq!(r.status, 200);
        assert_eq!(
            r.body,
            "{\n\t\"service\": {\n\t\t\"namespace\": \"ns2\",\n\t\t\"name\": \"svc2\"\n\t},\n\t\"localEndpoints\": 1,\n\t\"serviceProxyHealthy\": true\n}"
        );
        assert_eq!(
            r.headers,
            vec![
                ("Content-Type", "application/json".to_string()),
                ("X-Content-Type-Options", "nosniff".to_string()),
                ("X-Load-Balancing-Endpoint-Weight", "1".to_string()),
            ]
        );
        assert_eq!(service_health_response("a", "b", 0, true).status, 503);
        let unhealthy = service_health_response("a", "b", 3, false);
        assert_eq!(unhealthy.status, 503);
        assert!(unhealthy.body.contains("\"serviceProxyHealthy\": false"));
    }

    #[test]
    fn nodes_being_deleted_or_tainted_are_not_eligible() {
        let node = |v: serde_json::Value| -> k8s_openapi::api::core::v1::Node {
            serde_json::from_value(v).unwrap()
        };
        assert!(!node_eligible(None));
        assert!(node_eligible(Some(&node(
            json!({"metadata": {"name": "n"}})
        ))));
        assert!(!node_eligible(Some(&node(json!({
            "metadata": {"name": "n", "deletionTimestamp": "2025-05-01T10:00:00Z"}
        })))));
        assert!(!node_eligible(Some(&node(json!({
            "metadata": {"name": "n"},
            "spec": {"taints": [{"key": TO_BE_DELETED_TAINT, "effect": "NoSchedule"}]}
        })))));
    }

    #[test]
    fn the_proxy_is_unhealthy_when_a_change_waits_too_long() {
        let t0: Timestamp = "2025-05-01T10:00:00Z".parse().unwrap();
        let at = |s: i64| t0 + jiff::SignedDuration::from_secs(s);
        let mut h = ProxyHealth::new(Duration::from_secs(60));
        assert!(h.read(t0).healthy, "nothing synced nor queued yet");
        h.updated(IpFamily::V4, t0);
        h.queued_update(IpFamily::V4, at(10));
        h.queued_update(IpFamily::V4, at(50));
        assert!(h.read(at(69)).healthy);
        assert!(!h.read(at(70)).healthy, "the oldest queued change counts");
        let r = healthz_response(&h, at(70), true);
        assert_eq!(r.status, 503);
        assert_eq!(
            r.body,
            "{\"lastUpdated\":\"2025-05-01T10:00:00Z\",\"currentTime\":\"2025-05-01T10:01:10Z\",\"nodeEligible\":true,\"healthy\":false,\"status\":{\"IPv4\":{\"lastUpdated\":\"2025-05-01T10:00:00Z\",\"healthy\":false}}}"
        );
        h.updated(IpFamily::V4, at(71));
        let r = healthz_response(&h, at(72), true);
        assert_eq!(r.status, 200);
        assert!(
            r.body
                .starts_with("{\"lastUpdated\":\"2025-05-01T10:01:12Z\""),
            "{}",
            r.body
        );
        assert_eq!(healthz_response(&h, at(72), false).status, 503);
        let live = livez_response(&h, at(72));
        assert_eq!(live.status, 200);
        assert!(!live.body.contains("nodeEligible"));
    }
}
