//! A soak of `svcplane up`: seeded random churn of Services (creates, deletes, type changes,
//! creates of names that exist), Pods (creates, deletes) and readiness flips over a small set of
//! names, then the invariants a cluster must keep whatever happened:
//!
//! - no ClusterIP and no NodePort is held by two Services;
//! - after a repair pass, the IPAddress and NodePortAllocation objects are exactly the
//!   Services' values (a claim left by a refused create is freed);
//! - every selector Service's ready endpoints are its ready pods;
//! - no EndpointSlice outlives its Service;
//! - nothing answered 500.
//!
//! The short run is part of the suite; `SVCPLANE_SOAK_SECONDS=600` runs a long one, and
//! `SVCPLANE_SOAK_SEED` replays a run (a failure prints its seed).

#[path = "common/up_process.rs"]
mod up_process;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::IPAddress;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::DynamicObject;
use kube::discovery::ApiResource;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};

const SERVICES: usize = 8;
const PODS: usize = 24;
/// Upstream's grace period before the repair loop frees a claim nobody holds, plus a margin.
const SETTLE: Duration = Duration::from_secs(90);

fn seconds_from_env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn service_name(i: usize) -> String {
    format!("svc-{i}")
}

fn pod_name(i: usize) -> String {
    format!("pod-{i}")
}

/// A Service of a random type, selecting `app=<its name>`.
fn random_service_spec(rng: &mut StdRng, name: &str) -> Value {
    let ports = json!([{"name": "http", "port": 80, "targetPort": 8080}]);
    match rng.random_range(0..5) {
        0 => json!({"type": "NodePort", "selector": {"app": name}, "ports": ports}),
        1 => json!({"type": "LoadBalancer", "selector": {"app": name}, "ports": ports}),
        2 => json!({"type": "ExternalName", "externalName": "example.com", "ports": ports}),
        3 => json!({"clusterIP": "None", "selector": {"app": name}, "ports": ports}),
        _ => json!({"type": "ClusterIP", "selector": {"app": name}, "ports": ports}),
    }
}

/// A type change as a user sends it (`kubectl patch`).
fn random_type_change(rng: &mut StdRng) -> Value {
    match rng.random_range(0..4) {
        0 => json!({"spec": {"type": "NodePort"}}),
        1 => json!({"spec": {"type": "LoadBalancer"}}),
        2 => json!({"spec": {"type": "ExternalName", "externalName": "example.com"}}),
        _ => json!({"spec": {"type": "ClusterIP"}}),
    }
}

/// What one churn step got back: fine, or an answer no step may get.
fn judge(what: &str, result: Result<(), kube::Error>) -> Result<(), String> {
    match result {
        Ok(()) => Ok(()),
        // Racing ourselves (gone, exists, conflict) and refused changes are part of churn.
        Err(kube::Error::Api(s)) if matches!(s.code, 404 | 409 | 422) => Ok(()),
        Err(kube::Error::Api(s)) => Err(format!("{what}: {} {}", s.code, s.message)),
        Err(other) => Err(format!("{what}: {}", gocompat::api_error_text(&other))),
    }
}

struct Churn {
    services: Api<Service>,
    pods: Api<Pod>,
}

impl Churn {
    async fn step(&self, rng: &mut StdRng) -> Result<(), String> {
        let service = service_name(rng.random_range(0..SERVICES));
        let pod = pod_name(rng.random_range(0..PODS));
        match rng.random_range(0..100) {
            // Creates, and creates of names that exist (409 after admission claimed).
            0..25 => {
                let svc: Service = serde_json::from_value(json!({
                    "metadata": {"name": service},
                    "spec": random_service_spec(rng, &service)}))
                .map_err(|e| e.to_string())?;
                let r = self.services.create(&PostParams::default(), &svc).await;
                judge("create service", r.map(drop))
            }
            25..35 => {
                let r = self
                    .services
                    .delete(&service, &DeleteParams::default())
                    .await;
                judge("delete service", r.map(drop))
            }
            35..50 => {
                let patch = random_type_change(rng);
                let r = self
                    .services
                    .patch(&service, &PatchParams::default(), &Patch::Merge(&patch))
                    .await;
                judge("change service type", r.map(drop))
            }
            50..72 => {
                let app = service_name(rng.random_range(0..SERVICES));
                let pod: Pod = serde_json::from_value(json!({
                    "metadata": {"name": pod, "labels": {"app": app},
                        "annotations": {"testenv.svcplane.io/termination-seconds": "1"}},
                    "spec": {"containers": [{"name": "c", "image": "kubia",
                        "ports": [{"containerPort": 8080}]}]}}))
                .map_err(|e| e.to_string())?;
                let r = self.pods.create(&PostParams::default(), &pod).await;
                judge("create pod", r.map(drop))
            }
            72..82 => {
                let r = self.pods.delete(&pod, &DeleteParams::default()).await;
                judge("delete pod", r.map(drop))
            }
            _ => {
                let ready = if rng.random_range(0..2) == 0 {
                    json!("false")
                } else {
                    Value::Null
                };
                let patch =
                    json!({"metadata": {"annotations": {"testenv.svcplane.io/ready": ready}}});
                let r = self
                    .pods
                    .patch(&pod, &PatchParams::default(), &Patch::Merge(&patch))
                    .await;
                judge("flip readiness", r.map(drop))
            }
        }
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Every invariant that does not hold, in words.
async fn broken_invariants(client: &kube::Client) -> Vec<String> {
    let mut broken = Vec::new();
    let services = Api::<Service>::namespaced(client.clone(), "default")
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    let pods = Api::<Pod>::namespaced(client.clone(), "default")
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    let slices = Api::<EndpointSlice>::namespaced(client.clone(), "default")
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    let ip_objects = Api::<IPAddress>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    let port_resource = ApiResource {
        group: "allocation.svcplane.io".into(),
        version: "v1alpha1".into(),
        api_version: "allocation.svcplane.io/v1alpha1".into(),
        kind: "NodePortAllocation".into(),
        plural: "nodeportallocations".into(),
    };
    let port_objects = Api::<DynamicObject>::all_with(client.clone(), &port_resource)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;

    // Values held by Services, and by the claims of record.
    let mut ip_holders: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut port_holders: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for svc in &services {
        let name = svc.metadata.name.clone().unwrap_or_default();
        let spec = svc.spec.clone().unwrap_or_default();
        for ip in spec.cluster_ips.iter().flatten().filter(|ip| *ip != "None") {
            ip_holders.entry(ip.clone()).or_default().push(name.clone());
        }
        let ports = spec.ports.iter().flatten().filter_map(|p| p.node_port);
        for port in ports.chain(spec.health_check_node_port).filter(|&p| p != 0) {
            port_holders
                .entry(i64::from(port))
                .or_default()
                .push(name.clone());
        }
    }
    for (ip, holders) in &ip_holders {
        if holders.len() > 1 {
            broken.push(format!("ClusterIP {ip} is held by {holders:?}"));
        }
    }
    for (port, holders) in &port_holders {
        let distinct: BTreeSet<&String> = holders.iter().collect();
        if distinct.len() > 1 {
            broken.push(format!("NodePort {port} is held by {holders:?}"));
        }
    }
    let claimed_ips: BTreeMap<String, String> = ip_objects
        .iter()
        .filter(|o| o.metadata.name.as_deref() != Some("10.96.0.1"))
        .map(|o| {
            let parent = o
                .spec
                .as_ref()
                .map(|s| s.parent_ref.name.clone())
                .unwrap_or_default();
            (o.metadata.name.clone().unwrap_or_default(), parent)
        })
        .collect();
    let held_ips: BTreeMap<String, String> = ip_holders
        .iter()
        .filter(|(ip, _)| *ip != "10.96.0.1")
        .map(|(ip, holders)| (ip.clone(), holders[0].clone()))
        .collect();
    if claimed_ips != held_ips {
        broken.push(format!(
            "IPAddress objects {claimed_ips:?} are not the Services' ClusterIPs {held_ips:?}"
        ));
    }
    let claimed_ports: BTreeMap<i64, String> = port_objects
        .iter()
        .map(|o| {
            (
                o.data["spec"]["port"].as_i64().unwrap_or_default(),
                o.data["spec"]["parentRef"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    let held_ports: BTreeMap<i64, String> = port_holders
        .iter()
        .map(|(port, holders)| (*port, holders[0].clone()))
        .collect();
    if claimed_ports != held_ports {
        broken.push(format!(
            "NodePortAllocations {claimed_ports:?} are not the Services' NodePorts {held_ports:?}"
        ));
    }

    // Ready endpoints are ready pods; no slice without its Service.
    let mut ready_endpoints: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let names: BTreeSet<String> = services
        .iter()
        .filter_map(|s| s.metadata.name.clone())
        .collect();
    for slice in &slices {
        let labels = slice.metadata.labels.clone().unwrap_or_default();
        let Some(owner) = labels.get("kubernetes.io/service-name") else {
            continue;
        };
        if owner == "kubernetes" {
            continue;
        }
        if !names.contains(owner) {
            broken.push(format!(
                "EndpointSlice {} outlives Service {owner}",
                slice.metadata.name.clone().unwrap_or_default()
            ));
        }
        let entry = ready_endpoints.entry(owner.clone()).or_default();
        for endpoint in &slice.endpoints {
            let is_ready = endpoint
                .conditions
                .as_ref()
                .and_then(|c| c.ready)
                .unwrap_or(false);
            if is_ready {
                entry.extend(endpoint.addresses.iter().cloned());
            }
        }
    }
    for svc in &services {
        let name = svc.metadata.name.clone().unwrap_or_default();
        let spec = svc.spec.clone().unwrap_or_default();
        if spec.type_.as_deref() == Some("ExternalName") || spec.selector.is_none() {
            continue;
        }
        let want: BTreeSet<String> = pods
            .iter()
            .filter(|p| {
                p.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("app"))
                    .is_some_and(|app| *app == name)
            })
            .filter(|p| ready(p))
            .filter_map(|p| p.status.as_ref().and_then(|s| s.pod_ip.clone()))
            .collect();
        let got = ready_endpoints.get(&name).cloned().unwrap_or_default();
        if got != want {
            broken.push(format!(
                "Service {name}: ready endpoints {got:?}, ready pods {want:?}"
            ));
        }
    }
    broken
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_keeps_every_invariant() {
    let seconds = seconds_from_env("SVCPLANE_SOAK_SECONDS", 20);
    let seed = seconds_from_env("SVCPLANE_SOAK_SEED", rand::random::<u32>().into());
    println!("soak: seed {seed}, {seconds} s (SVCPLANE_SOAK_SEED={seed} replays it)");
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // Small ranges, so that a value freed but still shown on a Service is soon handed to
    // another one (8 Services never fill them).
    let mut up = up_process::spawn_up(
        dir.path(),
        port,
        &[
            "--service-cluster-ip-range",
            "10.96.0.0/28",
            "--service-node-port-range",
            "30000-30015",
        ],
    );
    let client = up.client().await;
    let pid = up.child.as_ref().map(|c| c.id()).unwrap_or_default();
    let churn = Churn {
        services: Api::namespaced(client.clone(), "default"),
        pods: Api::namespaced(client.clone(), "default"),
    };
    let mut rng = StdRng::seed_from_u64(seed);
    let started = Instant::now();
    let mut steps = 0u64;
    let mut rss = Vec::new();
    while started.elapsed() < Duration::from_secs(seconds) {
        if let Err(e) = churn.step(&mut rng).await {
            panic!("soak seed {seed}, step {steps}: {e}");
        }
        steps += 1;
        if steps.is_multiple_of(500) {
            rss.push(rss_kib(pid));
        }
    }
    rss.push(rss_kib(pid));
    println!(
        "soak: {steps} steps in {:.1} s; RSS of svcplane up every 500 steps (KiB): {rss:?}",
        started.elapsed().as_secs_f64()
    );

    // Quiet: controllers converge, and the repair pass frees what refused creates claimed.
    let deadline = Instant::now() + SETTLE;
    let mut broken;
    loop {
        broken = broken_invariants(&client).await;
        if broken.is_empty() || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        broken.is_empty(),
        "soak seed {seed} ({steps} steps): {} invariants broken after {} s of quiet:\n{}",
        broken.len(),
        SETTLE.as_secs(),
        broken.join("\n")
    );
    println!(
        "soak: settled after {:.1} s",
        (started.elapsed().as_secs_f64() - seconds as f64).max(0.0)
    );
    // A long run is where memory growth shows: the live set is bounded, so RSS must be too.
    if seconds >= 300 && rss.len() >= 4 {
        let warm = rss[rss.len() / 4];
        let last = rss[rss.len() - 1];
        assert!(
            last <= warm + warm / 2,
            "soak seed {seed}: RSS grew from {warm} KiB to {last} KiB with a bounded live set"
        );
    }
    let out = up.terminate();
    assert_eq!(
        out.status.code(),
        Some(0),
        "soak seed {seed}: svcplane up did not stop cleanly"
    );
}
