//! Object builders and checks the envtests share.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Value, json};

/// A ClusterIP Service selecting `app=<app>` with one port 80 → `target_port`.
pub fn service(name: &str, app: &str, target_port: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "selector": {"app": app},
            "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
            "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": target_port}],
        }
    })
}

/// A pod labelled `app=<app>` with a container port `http` 8080, deleted at once.
pub fn pod(name: &str, app: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": app},
            "annotations": {"testenv.svcplane.io/termination-seconds": "0"}},
        "spec": {"containers": [{"name": "web", "image": "nginx",
            "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]}]}
    })
}

/// Polls `check` every 50 ms until it returns `Some`, or panics after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Endpoint counts per slice, sorted.
pub fn endpoint_counts(slices: &[EndpointSlice]) -> Vec<usize> {
    let mut counts: Vec<usize> = slices.iter().map(|s| s.endpoints.len()).collect();
    counts.sort_unstable();
    counts
}

/// Whether every endpoint of every slice is ready.
pub fn all_ready(slices: &[EndpointSlice]) -> bool {
    slices
        .iter()
        .flat_map(|s| &s.endpoints)
        .all(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(false))
}

/// The pod names referenced by the slices, sorted.
pub fn pod_names(slices: &[EndpointSlice]) -> Vec<String> {
    let mut names: Vec<String> = slices
        .iter()
        .flat_map(|s| &s.endpoints)
        .filter_map(|e| e.target_ref.as_ref().and_then(|r| r.name.clone()))
        .collect();
    names.sort();
    names
}

/// The managers of an object's `managedFields`, in order.
pub fn field_managers(meta: &ObjectMeta) -> Vec<Option<String>> {
    meta.managed_fields
        .iter()
        .flatten()
        .map(|f| f.manager.clone())
        .collect()
}

/// What a kubelet writes for a running Pod on the node at `host_ip`, Ready or not (a merge patch
/// of `pods/status`).
pub fn kubelet_status(host_ip: &str, pod_ip: &str, ready: bool) -> Value {
    let ready = if ready { "True" } else { "False" };
    json!({"status": {
        "phase": "Running",
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "conditions": [
            {"type": "PodScheduled", "status": "True"},
            {"type": "Initialized", "status": "True"},
            {"type": "ContainersReady", "status": ready},
            {"type": "Ready", "status": ready},
        ],
    }})
}
