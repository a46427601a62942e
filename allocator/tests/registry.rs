//! Envtest-style tests of the registry of record: real API objects in testenv.
//!
//! testenv only: the registry claims as the allocator of record, which kube-apiserver is
//! itself (its own IPAddress allocator); beside it svcplane runs in audit mode
//! (`tests/tests/sidecar.rs`).

use std::collections::BTreeSet;
use std::net::IpAddr;

use allocator::registry::{
    AllocationMode, MANAGED_BY_LABEL, RegistryConfig, ServiceRegistry, UPSTREAM_MANAGED_BY,
    list_ip_addresses, list_node_port_allocations,
};
use allocator::{BitmapSizeLimit, PortRange, ServiceClusterIpRanges};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::IPAddress;
use kube::Api;
use kube::api::PostParams;
use serde_json::{Value, json};
use testenv::TestEnv;

fn config(cidr: &str, ports: &str) -> RegistryConfig {
    RegistryConfig::new(
        ServiceClusterIpRanges::parse(cidr, BitmapSizeLimit::Enforced).unwrap(),
        PortRange::parse(ports).unwrap(),
    )
}

fn service(name: &str, spec: Value) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec,
    }))
    .unwrap()
}

fn cluster_ip(svc: &Service) -> IpAddr {
    svc.spec
        .as_ref()
        .and_then(|s| s.cluster_ip.as_deref())
        .unwrap()
        .parse()
        .unwrap()
}

fn node_ports(svc: &Service) -> Vec<i32> {
    svc.spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .unwrap()
        .iter()
        .map(|p| p.node_port.unwrap())
        .collect()
}

async fn ip_names(env: &TestEnv) -> BTreeSet<String> {
    list_ip_addresses(env.client())
        .await
        .unwrap()
        .into_iter()
        .filter_map(|o| o.metadata.name)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_registries_race_for_a_22_without_sharing_an_address() {
    let env = TestEnv::start().await.unwrap();
    let a = ServiceRegistry::start(env.client(), config("10.0.0.0/22", "30000-32767"))
        .await
        .unwrap();
    let b = ServiceRegistry::start(env.client(), config("10.0.0.0/22", "30000-32767"))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..500 {
        for (label, registry) in [("a", a.clone()), ("b", b.clone())] {
            tasks.push(tokio::spawn(async move {
                let svc = service(
                    &format!("svc-{label}-{i}"),
                    json!({"ports": [{"port": 80}]}),
                );
                registry.allocate_for_create(&svc).await
            }));
        }
    }
    let mut ips = BTreeSet::new();
    let mut by_ip = std::collections::BTreeMap::new();
    for task in tasks {
        let allocated = task.await.unwrap().unwrap();
        let ip = cluster_ip(&allocated.service);
        assert_eq!(allocated.claimed_ips, vec![ip]);
        assert!(ips.insert(ip), "{ip} handed out twice");
        by_ip.insert(ip.to_string(), allocated.service.metadata.name.unwrap());
    }
    assert_eq!(ips.len(), 1000);
    // No leaks: exactly one object per address handed out, each pointing at its Service.
    let objects = list_ip_addresses(env.client()).await.unwrap();
    assert_eq!(objects.len(), 1000);
    for obj in objects {
        let name = obj.metadata.name.clone().unwrap();
        let parent = obj.spec.unwrap().parent_ref;
        assert_eq!(by_ip.get(&name), Some(&parent.name));
        assert_eq!(parent.resource, "services");
        assert_eq!(parent.namespace.as_deref(), Some("default"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_registries_race_for_node_ports_without_sharing_a_port() {
    let env = TestEnv::start().await.unwrap();
    let cfg = config("10.0.0.0/22", "30000-30299");
    let a = ServiceRegistry::start(env.client(), cfg.clone())
        .await
        .unwrap();
    let b = ServiceRegistry::start(env.client(), cfg).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..100 {
        for (label, registry) in [("a", a.clone()), ("b", b.clone())] {
            tasks.push(tokio::spawn(async move {
                let svc = service(
                    &format!("np-{label}-{i}"),
                    json!({"type": "NodePort", "ports": [{"port": 80}]}),
                );
                registry.allocate_for_create(&svc).await
            }));
        }
    }
    let mut ports = BTreeSet::new();
    for task in tasks {
        let allocated = task.await.unwrap().unwrap();
        for port in node_ports(&allocated.service) {
            assert!(ports.insert(port), "{port} handed out twice");
        }
    }
    assert_eq!(ports.len(), 200);
    let objects = list_node_port_allocations(env.client()).await.unwrap();
    let held: BTreeSet<i32> = objects.iter().map(|o| o.spec.port).collect();
    assert_eq!(held, ports);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_registry_does_not_reuse_held_values() {
    let env = TestEnv::start().await.unwrap();
    // A /27 has 30 usable addresses.
    let first = ServiceRegistry::start(env.client(), config("10.1.0.0/27", "30000-30009"))
        .await
        .unwrap();
    let mut ips = BTreeSet::new();
    let mut ports = BTreeSet::new();
    for i in 0..20 {
        // The first ten are NodePort Services and fill the 10-port range.
        let kind = if i < 10 { "NodePort" } else { "ClusterIP" };
        let svc = service(
            &format!("before-{i}"),
            json!({"type": kind, "ports": [{"port": 80}]}),
        );
        let done = first.allocate_for_create(&svc).await.unwrap();
        ips.insert(cluster_ip(&done.service));
        if i < 10 {
            ports.extend(node_ports(&done.service));
        }
    }
    assert_eq!(ports.len(), 10);
    drop(first);
    let second = ServiceRegistry::start(env.client(), config("10.1.0.0/27", "30000-30009"))
        .await
        .unwrap();
    for ip in &ips {
        assert!(second.cache_holds_ip(*ip), "{ip} not in the rebuilt cache");
    }
    let no_port = second
        .allocate_for_create(&service(
            "np-after",
            json!({"type": "NodePort", "ports": [{"port": 80}]}),
        ))
        .await
        .unwrap_err();
    assert_eq!(
        no_port.to_string(),
        "failed to allocate a nodePort: range is full"
    );
    for i in 0..10 {
        let svc = service(&format!("after-{i}"), json!({"ports": [{"port": 80}]}));
        let done = second.allocate_for_create(&svc).await.unwrap();
        assert!(ips.insert(cluster_ip(&done.service)), "reused an address");
    }
    assert_eq!(ips.len(), 30);
    let full = second
        .allocate_for_create(&service("one-too-many", json!({"ports": [{"port": 80}]})))
        .await
        .unwrap_err();
    assert_eq!(
        full.to_string(),
        "failed to allocate a serviceIP: range is full"
    );
    assert_eq!(ip_names(&env).await.len(), 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhaustion_gives_the_upstream_500s() {
    let env = TestEnv::start().await.unwrap();
    // A /29 holds 6 usable addresses; the port range holds 4 ports.
    let registry = ServiceRegistry::start(env.client(), config("10.2.0.0/29", "30000-30003"))
        .await
        .unwrap();
    for i in 0..4 {
        let svc = service(
            &format!("s{i}"),
            json!({"type": "NodePort", "ports": [{"port": 80}]}),
        );
        registry.allocate_for_create(&svc).await.unwrap();
    }
    let error = registry
        .allocate_for_create(&service(
            "np-full",
            json!({"type": "NodePort", "ports": [{"port": 80}]}),
        ))
        .await
        .unwrap_err();
    let outcome = error.outcome();
    assert_eq!(outcome.code(), 500);
    assert_eq!(
        outcome,
        allocator::Outcome::Internal {
            message: "failed to allocate a nodePort: range is full".into()
        }
    );
    // The failed write rolled back its ClusterIP: 4 addresses held, not 5.
    assert_eq!(ip_names(&env).await.len(), 4);

    for i in 4..6 {
        let svc = service(&format!("s{i}"), json!({"ports": [{"port": 80}]}));
        registry.allocate_for_create(&svc).await.unwrap();
    }
    let error = registry
        .allocate_for_create(&service("ip-full", json!({"ports": [{"port": 80}]})))
        .await
        .unwrap_err();
    let outcome = error.outcome();
    assert_eq!(outcome.code(), 500);
    assert_eq!(
        outcome,
        allocator::Outcome::Internal {
            message: "failed to allocate a serviceIP: range is full".into()
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_requests_give_the_upstream_422s() {
    let env = TestEnv::start().await.unwrap();
    let registry = ServiceRegistry::start(env.client(), config("10.96.0.0/12", "30000-32767"))
        .await
        .unwrap();
    // E3: kube-dns's address twice.
    let dns = json!({"clusterIP": "10.96.0.10", "ports": [
        {"name": "dns", "port": 53, "protocol": "UDP"},
        {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]});
    let first = registry
        .allocate_for_create(&service("kube-dns", dns.clone()))
        .await
        .unwrap();
    assert_eq!(cluster_ip(&first.service).to_string(), "10.96.0.10");
    let again = registry
        .allocate_for_create(&service("kube-dns-2", dns))
        .await
        .unwrap_err()
        .outcome();
    assert_eq!(again.code(), 422);
    assert_eq!(
        again.to_string(),
        "spec.clusterIPs: Invalid value: [\"10.96.0.10\"]: failed to allocate IP 10.96.0.10: provided IP is already allocated"
    );
    // E4, IPAddress-allocator form.
    let outside = registry
        .allocate_for_create(&service(
            "outside",
            json!({"clusterIP": "192.168.1.5", "ports": [{"port": 80}]}),
        ))
        .await
        .unwrap_err()
        .outcome();
    assert_eq!(
        outside.cause_message().unwrap(),
        "Invalid value: [\"192.168.1.5\"]: failed to allocate IP 192.168.1.5: the provided network does not match the current range"
    );
    // E1: nodePort outside the range; nothing is left behind.
    let before = ip_names(&env).await;
    let e1 = registry
        .allocate_for_create(&service(
            "e1",
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 80, "protocol": "TCP"}]}),
        ))
        .await
        .unwrap_err()
        .outcome();
    assert_eq!(
        e1.to_string(),
        "spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767"
    );
    assert_eq!(
        ip_names(&env).await,
        before,
        "the failed create leaked its ClusterIP"
    );
    // E2: a nodePort held by another Service.
    registry
        .allocate_for_create(&service(
            "holder",
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}),
        ))
        .await
        .unwrap();
    let e2 = registry
        .allocate_for_create(&service(
            "e2",
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}),
        ))
        .await
        .unwrap_err()
        .outcome();
    assert_eq!(
        e2.cause_message().unwrap(),
        "Invalid value: 30080: provided port is already allocated"
    );
    // E25: TCP and UDP of one port share one nodePort, one object.
    let shared = registry
        .allocate_for_create(&service(
            "e25",
            json!({"type": "NodePort", "ports": [
                {"name": "p", "port": 53, "protocol": "TCP"},
                {"name": "q", "port": 53, "protocol": "UDP"}]}),
        ))
        .await
        .unwrap();
    let ports = node_ports(&shared.service);
    assert_eq!(ports[0], ports[1]);
    assert!((30086..=32767).contains(&ports[0]));
    assert_eq!(shared.claimed_ports, vec![ports[0]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_ip_address_is_respected() {
    let env = TestEnv::start().await.unwrap();
    let api: Api<IPAddress> = Api::all(env.client());
    let foreign: IPAddress = serde_json::from_value(json!({
        "metadata": {"name": "10.3.0.5", "labels": {
            "ipaddress.kubernetes.io/ip-family": "IPv4",
            MANAGED_BY_LABEL: UPSTREAM_MANAGED_BY}},
        "spec": {"parentRef": {"resource": "services", "namespace": "other", "name": "theirs"}}
    }))
    .unwrap();
    let foreign = api.create(&PostParams::default(), &foreign).await.unwrap();
    let registry = ServiceRegistry::start(env.client(), config("10.3.0.0/29", "30000-32767"))
        .await
        .unwrap();
    let refused = registry
        .allocate_for_create(&service(
            "mine",
            json!({"clusterIP": "10.3.0.5", "ports": [{"port": 80}]}),
        ))
        .await
        .unwrap_err();
    assert_eq!(
        refused.outcome().cause_message().unwrap(),
        "Invalid value: [\"10.3.0.5\"]: failed to allocate IP 10.3.0.5: provided IP is already allocated"
    );
    // Dynamic allocation skips it: 5 of the 6 addresses are ours, then the range is full.
    let mut ours = BTreeSet::new();
    for i in 0..5 {
        let done = registry
            .allocate_for_create(&service(&format!("d{i}"), json!({"ports": [{"port": 80}]})))
            .await
            .unwrap();
        ours.insert(cluster_ip(&done.service).to_string());
    }
    assert!(!ours.contains("10.3.0.5"));
    assert!(
        registry
            .allocate_for_create(&service("d5", json!({"ports": [{"port": 80}]})))
            .await
            .is_err()
    );
    // Releasing a Service that claims to hold the address does not delete someone else's.
    registry
        .release(&service(
            "theirs",
            json!({"clusterIP": "10.3.0.5", "ports": [{"port": 80}]}),
        ))
        .await
        .unwrap();
    let after = api.get("10.3.0.5").await.unwrap();
    assert_eq!(after.metadata.uid, foreign.metadata.uid);
    assert_eq!(after.metadata.labels, foreign.metadata.labels);
    assert_eq!(after.spec, foreign.spec);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_and_update_move_the_claims() {
    let env = TestEnv::start().await.unwrap();
    let registry = ServiceRegistry::start(env.client(), config("10.4.0.0/24", "30000-32767"))
        .await
        .unwrap();
    let created = registry
        .allocate_for_create(&service(
            "web",
            json!({"type": "NodePort", "ports": [{"name": "http", "port": 80}]}),
        ))
        .await
        .unwrap();
    let ip = cluster_ip(&created.service);
    let port = node_ports(&created.service)[0];
    // NodePort → ClusterIP: the port is to be released once the update is stored (E35).
    let mut to_cluster_ip = created.service.clone();
    if let Some(spec) = to_cluster_ip.spec.as_mut() {
        spec.type_ = Some("ClusterIP".into());
        for p in spec.ports.iter_mut().flatten() {
            p.node_port = None;
        }
    }
    let updated = registry
        .allocate_for_update(&created.service, &to_cluster_ip)
        .await
        .unwrap();
    assert_eq!(cluster_ip(&updated.service), ip);
    assert!(updated.claimed_ips.is_empty());
    assert_eq!(updated.release_ports, vec![port]);
    assert!(updated.release_ips.is_empty());

    registry.release(&created.service).await.unwrap();
    assert!(ip_names(&env).await.is_empty());
    assert!(
        list_node_port_allocations(env.client())
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_mode_writes_nothing_and_checks_ranges() {
    let env = TestEnv::start().await.unwrap();
    let mut cfg = config("10.96.0.0/12", "30000-32767");
    cfg.mode = AllocationMode::Audit;
    let registry = ServiceRegistry::start(env.client(), cfg).await.unwrap();
    let svc = service(
        "audited",
        json!({"clusterIP": "10.96.0.10", "type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}),
    );
    let out = registry.allocate_for_create(&svc).await.unwrap();
    assert_eq!(out.service, svc);
    let bad = registry
        .allocate_for_create(&service(
            "bad",
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 80}]}),
        ))
        .await
        .unwrap_err();
    assert_eq!(
        bad.to_string(),
        "spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767"
    );
    let writes: Vec<_> = env
        .oplog()
        .all()
        .into_iter()
        .filter(|o| o.is_write())
        .collect();
    assert!(writes.is_empty(), "audit mode wrote {writes:?}");
}

#[test]
fn malformed_flags_give_the_upstream_messages() {
    let cases = [
        (
            "10.92.0.0/8",
            "specified --service-cluster-ip-range is too large; for 32-bit addresses, the mask must be >= 12",
        ),
        (
            "10.0.0.0/24,10.1.0.0/24",
            "--service-cluster-ip-range[0] and --service-cluster-ip-range[1] must be of different IP family",
        ),
        (
            "10.0.0.0/24,fd00::/108,10.2.0.0/24",
            "--service-cluster-ip-range must not contain more than two entries",
        ),
    ];
    for (flag, message) in cases {
        let error = ServiceClusterIpRanges::parse(flag, BitmapSizeLimit::Enforced).unwrap_err();
        assert_eq!(error.to_string(), message, "{flag}");
    }
    let small = ServiceClusterIpRanges::parse("10.0.0.0/30", BitmapSizeLimit::Enforced)
        .unwrap_err()
        .to_string();
    assert!(
        small.ends_with("the service cluster IP range must be at least 8 IP addresses"),
        "{small}"
    );
    for (range, message) in [
        (
            "32767-30000",
            "end port cannot be less than start port: 32767-30000",
        ),
        (
            "30000-70000",
            "the port range cannot be greater than 65535: 30000-70000",
        ),
        ("1-2+3", "unable to parse port range: 1-2+3"),
    ] {
        assert_eq!(PortRange::parse(range).unwrap_err().to_string(), message);
    }
}
