//! Shared harness of the controller tests: a testenv with the node simulator, the
//! controllers running in the test's runtime, and small object builders.

#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams, PostParams};
use serde_json::{Value, json};
use testenv::nodesim::NodeSimConfig;
use testenv::{TestEnv, TestEnvOptions};
use tokio::task::JoinHandle;

/// A running environment; aborts the controllers when dropped.
pub struct Harness {
    pub env: TestEnv,
    pub client: kube::Client,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Harness {
    pub async fn start(nodes: Option<NodeSimConfig>) -> Harness {
        let env = TestEnv::start_with(TestEnvOptions {
            node_simulator: nodes,
            gc_sweep_interval: Duration::from_millis(500),
            ..TestEnvOptions::default()
        })
        .await
        .expect("testenv starts");
        let client = env.client();
        Harness {
            env,
            client,
            tasks: Vec::new(),
        }
    }

    pub fn spawn(&mut self, task: impl Future<Output = ()> + Send + 'static) {
        self.tasks.push(tokio::spawn(task));
    }

    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), "default")
    }

    pub fn services(&self) -> Api<Service> {
        Api::namespaced(self.client.clone(), "default")
    }

    pub fn slice_api(&self) -> Api<EndpointSlice> {
        Api::namespaced(self.client.clone(), "default")
    }

    /// The slices labelled with the Service's name, by name.
    pub async fn slices(&self, service: &str) -> Vec<EndpointSlice> {
        let params = ListParams::default().labels(&format!("kubernetes.io/service-name={service}"));
        let mut slices = self
            .slice_api()
            .list(&params)
            .await
            .map(|l| l.items)
            .unwrap_or_default();
        slices.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        slices
    }

    pub async fn create_service(&self, service: Value) -> Service {
        let service: Service = serde_json::from_value(service).expect("service JSON");
        self.services()
            .create(&PostParams::default(), &service)
            .await
            .expect("service created")
    }

    pub async fn create_pods(&self, pods: Vec<Value>) {
        let api = self.pods();
        let results: Vec<Result<Pod, kube::Error>> = futures::stream::iter(pods)
            .map(|p| {
                let api = api.clone();
                async move {
                    let pod: Pod = serde_json::from_value(p).expect("pod JSON");
                    api.create(&PostParams::default(), &pod).await
                }
            })
            .buffer_unordered(32)
            .collect()
            .await;
        for r in results {
            r.expect("pod created");
        }
    }

    /// Successful endpointslice writes logged after `mark`.
    pub fn slice_writes_since(&self, mark: usize) -> Vec<testenv::Operation> {
        self.env
            .oplog()
            .since(mark)
            .into_iter()
            .filter(|o| o.is_write() && o.resource == "endpointslices" && o.code < 300)
            .collect()
    }
}

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
