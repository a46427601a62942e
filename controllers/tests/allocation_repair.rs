//! The release-and-repair controller: its pure plan against upstream's repair cases, and the
//! controller itself against testenv.
//!
//! testenv only: these envtests make svcplane the allocator of record, which it is only where
//! the API server has no allocator of its own (testenv, `svcplane up`); kube-apiserver
//! allocates and repairs itself, and svcplane's audit mode beside it is tested in
//! `tests/tests/sidecar.rs`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use allocator::BitmapSizeLimit;
use allocator::registry::{
    AllocationMode, IP_FAMILY_LABEL, MANAGED_BY_LABEL, NodePortAllocation, SVCPLANE_MANAGED_BY,
    ServiceRef, UPSTREAM_MANAGED_BY, node_port_claim,
};
use allocator::{PortRange, ServiceClusterIpRanges};
use controllers::allocation_repair::{
    Claim, RepairAction, RepairInput, RepairPlan, ServiceKey, plan_repair,
};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::IPAddress;
use serde_json::{Value, json};

const NOW: &str = "2026-01-01T00:10:00Z";

fn ranges() -> ServiceClusterIpRanges {
    ServiceClusterIpRanges::parse("10.0.0.0/24", BitmapSizeLimit::Enforced).unwrap()
}

fn service(name: &str, spec: Value) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}")},
        "spec": spec,
    }))
    .unwrap()
}

fn ip_address(ip: &str, parent: &str, managed_by: &str, created: &str) -> IPAddress {
    serde_json::from_value(json!({
        "metadata": {"name": ip, "uid": format!("ip-{ip}"), "creationTimestamp": created,
            "labels": {IP_FAMILY_LABEL: "IPv4", MANAGED_BY_LABEL: managed_by}},
        "spec": {"parentRef": {"resource": "services", "namespace": "ns", "name": parent}},
    }))
    .unwrap()
}

fn node_port(port: i32, parent: &str, created: &str) -> NodePortAllocation {
    let mut obj = node_port_claim(
        port,
        &ServiceRef {
            namespace: "ns".into(),
            name: parent.into(),
            uid: None,
        },
    );
    obj.metadata.uid = Some(format!("np-{port}"));
    obj.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        created.parse().unwrap(),
    ));
    obj
}

struct Case {
    services: Vec<Service>,
    ips: Vec<IPAddress>,
    ports: Vec<NodePortAllocation>,
    dropped: BTreeSet<(ServiceKey, Claim)>,
    mode: AllocationMode,
}

impl Case {
    fn new() -> Self {
        Case {
            services: Vec::new(),
            ips: Vec::new(),
            ports: Vec::new(),
            dropped: BTreeSet::new(),
            mode: AllocationMode::Authoritative,
        }
    }

    fn plan(&self) -> RepairPlan {
        // As the informers' stores hand them over.
        fn shared<T: Clone>(objects: &[T]) -> Vec<Arc<T>> {
            objects.iter().cloned().map(Arc::new).collect()
        }
        plan_repair(&RepairInput {
            services: &shared(&self.services),
            ip_addresses: &shared(&self.ips),
            node_port_allocations: &shared(&self.ports),
            dropped: &self.dropped,
            ranges: &ranges(),
            node_ports: PortRange::parse("30000-32767").unwrap(),
            mode: self.mode,
            grace_period: Duration::from_secs(60),
            now: NOW.parse().unwrap(),
        })
    }
}

fn messages(plan: &RepairPlan) -> Vec<String> {
    plan.events
        .iter()
        .map(|e| format!("{} {}", e.reason, e.message))
        .collect()
}

fn deletes(plan: &RepairPlan) -> Vec<String> {
    plan.actions
        .iter()
        .filter_map(|a| match a {
            RepairAction::DeleteIpAddress { name, uid } => {
                Some(format!("ip {name} {}", uid.clone().unwrap_or_default()))
            }
            RepairAction::DeleteNodePort { name, uid } => {
                Some(format!("port {name} {}", uid.clone().unwrap_or_default()))
            }
            _ => None,
        })
        .collect()
}

/// repairip_test "one IP orphan" with the clock 70 s after creation.
#[test]
fn orphan_after_grace_is_deleted_with_upstreams_event() {
    let mut case = Case::new();
    case.ips.push(ip_address(
        "10.0.0.11",
        "test-svc",
        SVCPLANE_MANAGED_BY,
        "2026-01-01T00:08:50Z",
    ));
    let plan = case.plan();
    assert_eq!(
        messages(&plan),
        vec![
            "IPAddressNotAllocated IPAddress: 10.0.0.11 for Service ns/test-svc appears to have leaked: cleaning up"
        ]
    );
    assert_eq!(deletes(&plan), vec!["ip 10.0.0.11 ip-10.0.0.11"]);
    assert_eq!(plan.counts.ip_errors.get("leak"), Some(&1));
}

#[test]
fn orphan_within_grace_is_kept_and_rechecked() {
    let mut case = Case::new();
    case.ips.push(ip_address(
        "10.0.0.11",
        "test-svc",
        SVCPLANE_MANAGED_BY,
        "2026-01-01T00:09:30Z",
    ));
    let plan = case.plan();
    assert!(plan.actions.is_empty() && plan.events.is_empty());
    assert_eq!(plan.recheck_after, Some(Duration::from_secs(30)));
}

#[test]
fn a_value_seen_dropped_goes_at_once_without_an_event() {
    let mut case = Case::new();
    case.ips.push(ip_address(
        "10.0.0.11",
        "gone",
        SVCPLANE_MANAGED_BY,
        "2026-01-01T00:09:59Z",
    ));
    case.ports
        .push(node_port(30080, "gone", "2026-01-01T00:09:59Z"));
    let key = ("ns".to_string(), "gone".to_string());
    case.dropped
        .insert((key.clone(), Claim::Ip("10.0.0.11".parse().unwrap())));
    case.dropped.insert((key, Claim::Port(30080)));
    let plan = case.plan();
    assert!(plan.events.is_empty());
    assert_eq!(
        deletes(&plan),
        vec!["ip 10.0.0.11 ip-10.0.0.11", "port 30080 np-30080"]
    );
}

#[test]
fn someone_elses_address_is_never_touched() {
    let mut case = Case::new();
    case.ips.push(ip_address(
        "10.0.0.11",
        "gone",
        UPSTREAM_MANAGED_BY,
        "2026-01-01T00:00:00Z",
    ));
    case.services.push(service(
        "web",
        json!({"clusterIP": "10.0.0.11", "clusterIPs": ["10.0.0.11"]}),
    ));
    let plan = case.plan();
    assert!(plan.actions.is_empty(), "{:?}", plan.actions);
    assert_eq!(
        messages(&plan),
        vec![
            "ClusterIPNotAllocated the ClusterIP [IPv4]: 10.0.0.11 for Service ns/web has a wrong reference; repairing"
        ]
    );
}

#[test]
fn service_side_problems_are_reported_with_upstreams_texts() {
    let mut case = Case::new();
    case.services = vec![
        service(
            "a-out",
            json!({"clusterIP": "192.168.0.1", "clusterIPs": ["192.168.0.1"]}),
        ),
        service(
            "b-first",
            json!({"clusterIP": "10.0.0.20", "clusterIPs": ["10.0.0.20"],
            "type": "NodePort", "ports": [{"port": 80, "nodePort": 30100}]}),
        ),
        service(
            "c-second",
            json!({"clusterIP": "10.0.0.20", "clusterIPs": ["10.0.0.20"],
            "type": "NodePort", "ports": [{"port": 80, "nodePort": 30100}, {"port": 81, "nodePort": 80}]}),
        ),
    ];
    let plan = case.plan();
    assert_eq!(
        messages(&plan),
        vec![
            // a-out, then b-first, then c-second: events are ordered by the object.
            "ClusterIPOutOfRange Cluster IP [IPv4]: 192.168.0.1 is not within any configured Service CIDR; please recreate service",
            "ClusterIPNotAllocated Cluster IP [IPv4]: 10.0.0.20 is not allocated; repairing",
            "PortNotAllocated Port 30100 is not allocated; repairing",
            "ClusterIPAlreadyAllocated Cluster IP [IPv4]:10.0.0.20 was assigned to multiple services; please recreate service",
            "PortAlreadyAllocated Port 30100 was assigned to multiple services; please recreate service",
            "PortOutOfRange Port 80 is not within the port range 30000-32767; please recreate service",
        ]
    );
    let creates: Vec<String> = plan
        .actions
        .iter()
        .filter_map(|a| match a {
            RepairAction::CreateIpAddress(o) => o.metadata.name.clone(),
            RepairAction::CreateNodePort(o) => o.metadata.name.clone(),
            _ => None,
        })
        .collect();
    assert_eq!(creates, vec!["10.0.0.20", "30100"]);
    assert_eq!(plan.allocated_ips.get("10.0.0.0/24"), Some(&1));
    assert_eq!(plan.allocated_ports, 1);
}

#[test]
fn audit_mode_reports_and_writes_nothing() {
    let mut case = Case::new();
    case.mode = AllocationMode::Audit;
    case.ips.push(ip_address(
        "10.0.0.11",
        "gone",
        UPSTREAM_MANAGED_BY,
        "2026-01-01T00:00:00Z",
    ));
    case.services.push(service(
        "a-out",
        json!({"clusterIP": "192.168.0.1", "clusterIPs": ["192.168.0.1"]}),
    ));
    let plan = case.plan();
    assert!(plan.actions.is_empty());
    assert_eq!(
        messages(&plan),
        vec![
            "ClusterIPOutOfRange Cluster IP [IPv4]: 192.168.0.1 is not within any configured Service CIDR; please recreate service",
            "IPAddressNotAllocated IPAddress: 10.0.0.11 for Service ns/gone appears to have leaked",
        ]
    );
}

#[test]
fn a_modified_parent_is_reported_in_go_syntax() {
    let mut case = Case::new();
    let mut obj = ip_address(
        "10.0.0.12",
        "x",
        SVCPLANE_MANAGED_BY,
        "2026-01-01T00:00:00Z",
    );
    if let Some(spec) = obj.spec.as_mut() {
        spec.parent_ref.resource = "gateways".into();
        spec.parent_ref.group = Some("gateway.networking.k8s.io".into());
    }
    case.ips.push(obj);
    let plan = case.plan();
    assert_eq!(
        messages(&plan),
        vec![
            "IPAddressNotAllocated IPAddress 10.0.0.12 appears to have been modified, not referencing a Service &{gateway.networking.k8s.io gateways ns x}: cleaning up"
        ]
    );
    assert_eq!(deletes(&plan), vec!["ip 10.0.0.12 ip-10.0.0.12"]);
}

// ---- the controller against testenv ----

use allocator::registry::{
    RegistryConfig, ServiceRegistry, list_ip_addresses, list_node_port_allocations,
};
use controllers::allocation_repair::{AllocationRepair, RepairConfig, RepairMetrics, register};
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};

fn cluster_config() -> (ServiceClusterIpRanges, PortRange) {
    (
        ServiceClusterIpRanges::parse("10.5.0.0/24", BitmapSizeLimit::Enforced).unwrap(),
        PortRange::parse("30000-32767").unwrap(),
    )
}

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_service_releases_its_ip_and_ports() {
    let env = testenv::TestEnv::start().await.unwrap();
    let (ranges, ports) = cluster_config();
    let registry = ServiceRegistry::start(env.client(), RegistryConfig::new(ranges.clone(), ports))
        .await
        .unwrap();
    let mut config = RepairConfig::new(ranges, ports);
    // A long grace period: the release must come from seeing the delete, not from the leak path.
    config.grace_period = Duration::from_secs(3600);
    let metrics = RepairMetrics::default();
    let repair = tokio::spawn(
        AllocationRepair::new(env.client(), config, metrics.clone())
            .run(controllers::runtime::Shutdown::never()),
    );

    let services: Api<Service> = Api::namespaced(env.client(), "default");
    let mut kept = Vec::new();
    for name in ["web", "keep"] {
        let svc = service(
            name,
            json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local",
            "ports": [{"name": "http", "port": 80}, {"name": "dns", "port": 53, "protocol": "UDP"}]}),
        );
        let mut svc = svc;
        svc.metadata.namespace = Some("default".into());
        svc.metadata.uid = None;
        let allocated = registry.allocate_for_create(&svc).await.unwrap();
        // 1 ClusterIP, 2 nodePorts, 1 healthCheckNodePort.
        assert_eq!(allocated.claimed_ports.len(), 3);
        services
            .create(&PostParams::default(), &allocated.service)
            .await
            .unwrap();
        kept.push(allocated);
    }
    assert_eq!(list_ip_addresses(env.client()).await.unwrap().len(), 2);
    assert_eq!(
        list_node_port_allocations(env.client())
            .await
            .unwrap()
            .len(),
        6
    );
    // Let the controller see the Services before one goes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    services
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();

    let keep_ip = kept[1].claimed_ips[0].to_string();
    let keep_ports: BTreeSet<i32> = kept[1].claimed_ports.iter().copied().collect();
    let client = env.client();
    eventually("the deleted Service's claims to go", || {
        let client = client.clone();
        async move {
            let ips = list_ip_addresses(client.clone()).await.unwrap();
            let ports = list_node_port_allocations(client).await.unwrap();
            ips.len() == 1 && ports.len() == 3
        }
    })
    .await;
    let ips = list_ip_addresses(env.client()).await.unwrap();
    assert_eq!(ips[0].metadata.name.as_deref(), Some(keep_ip.as_str()));
    let ports_left: BTreeSet<i32> = list_node_port_allocations(env.client())
        .await
        .unwrap()
        .iter()
        .map(|o| o.spec.port)
        .collect();
    assert_eq!(ports_left, keep_ports);

    // Type change: LoadBalancer → ClusterIP drops every port of "keep".
    let stored = services.get("keep").await.unwrap();
    let mut changed = stored.clone();
    if let Some(spec) = changed.spec.as_mut() {
        spec.type_ = Some("ClusterIP".into());
        spec.external_traffic_policy = None;
        spec.health_check_node_port = None;
        for p in spec.ports.iter_mut().flatten() {
            p.node_port = None;
        }
    }
    services
        .replace("keep", &PostParams::default(), &changed)
        .await
        .unwrap();
    eventually("the dropped ports to go", || {
        let client = client.clone();
        async move { list_node_port_allocations(client).await.unwrap().is_empty() }
    })
    .await;
    assert_eq!(list_ip_addresses(env.client()).await.unwrap().len(), 1);

    let mut text = String::new();
    let mut prom = prometheus_client::registry::Registry::default();
    register(&metrics, &mut prom);
    eventually("the gauges to settle", || {
        text.clear();
        prometheus_client::encoding::text::encode(&mut text, &prom).unwrap();
        let done = text.contains("kube_apiserver_nodeport_allocator_allocated_ports 0")
            && text.contains(
                "kube_apiserver_clusterip_allocator_allocated_ips{cidr=\"10.5.0.0/24\"} 1",
            );
        async move { done }
    })
    .await;
    assert!(
        text.contains("kube_apiserver_clusterip_allocator_available_ips{cidr=\"10.5.0.0/24\"} 253"),
        "{text}"
    );
    repair.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaked_ip_address_is_repaired_after_its_grace_period() {
    let env = testenv::TestEnv::start().await.unwrap();
    let (ranges, ports) = cluster_config();
    let registry = ServiceRegistry::start(env.client(), RegistryConfig::new(ranges.clone(), ports))
        .await
        .unwrap();
    // A claim whose Service is never stored (say, the webhook's request was rejected later).
    let claimed_at = tokio::time::Instant::now();
    let mut orphan = service("never-stored", json!({"ports": [{"port": 80}]}));
    orphan.metadata.uid = None;
    let allocated = registry.allocate_for_create(&orphan).await.unwrap();
    let leaked = allocated.claimed_ips[0].to_string();
    // And one IPAddress of upstream's allocator, also without a Service: not ours to clean.
    let foreign = ip_address(
        "10.5.0.200",
        "theirs",
        UPSTREAM_MANAGED_BY,
        "2020-01-01T00:00:00Z",
    );
    let mut foreign = foreign;
    foreign.metadata.uid = None;
    foreign.metadata.creation_timestamp = None;
    let ip_api: Api<IPAddress> = Api::all(env.client());
    ip_api
        .create(&PostParams::default(), &foreign)
        .await
        .unwrap();

    let mut config = RepairConfig::new(ranges, ports);
    config.grace_period = Duration::from_secs(2);
    let repair = tokio::spawn(
        AllocationRepair::new(env.client(), config, RepairMetrics::default())
            .run(controllers::runtime::Shutdown::never()),
    );
    let client = env.client();
    let name = leaked.clone();
    eventually("the leaked IPAddress to go", || {
        let api: Api<IPAddress> = Api::all(client.clone());
        let name = name.clone();
        async move { api.get_opt(&name).await.unwrap().is_none() }
    })
    .await;
    // Not before the grace period, counted from the object's creationTimestamp, which has
    // whole-second resolution (so up to 1 s of the 2 s may pass before the claim was made).
    assert!(
        claimed_at.elapsed() >= Duration::from_secs(1),
        "{:?}",
        claimed_at.elapsed()
    );
    assert!(ip_api.get_opt("10.5.0.200").await.unwrap().is_some());

    let events: Api<k8s_openapi::api::events::v1::Event> = Api::all(env.client());
    let expected = format!(
        "IPAddress: {leaked} for Service ns/never-stored appears to have leaked: cleaning up"
    );
    eventually("the leak event", || {
        let events = events.clone();
        let expected = expected.clone();
        async move {
            events
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .iter()
                .any(|e| {
                    e.reason.as_deref() == Some("IPAddressNotAllocated")
                        && e.note.as_deref() == Some(expected.as_str())
                        && e.regarding.as_ref().and_then(|r| r.kind.as_deref()) == Some("IPAddress")
                })
        }
    })
    .await;
    repair.abort();
}
