//! Envtest-style: every Service type change, both ways, through the webhook and the registry of
//! record. What the apiserver stores must match what was released: no ClusterIP kept on an
//! ExternalName Service after its IPAddress was freed, no nodePort kept on a ClusterIP Service
//! after its NodePortAllocation was freed, and every later write still accepted.
//!
//! testenv only: svcplane's registry is the allocator of record here; next to kube-apiserver,
//! which allocates itself, the webhook audits (`tests/tests/sidecar.rs` sends 422s through it).

mod common;

use allocator::registry::{NodePortAllocation, ip_address_parent};
use common::RegistryBackedWebhook;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::IPAddress;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

/// The kinds of Service a type change starts from or ends at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    ClusterIp,
    NodePort,
    LoadBalancer,
    ExternalName,
    Headless,
}

const KINDS: [Kind; 5] = [
    Kind::ClusterIp,
    Kind::NodePort,
    Kind::LoadBalancer,
    Kind::ExternalName,
    Kind::Headless,
];

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::ClusterIp => "clusterip",
            Kind::NodePort => "nodeport",
            Kind::LoadBalancer => "lb",
            Kind::ExternalName => "extname",
            Kind::Headless => "headless",
        }
    }

    /// The spec `kubectl create service <kind>` would send.
    fn create_spec(self) -> Value {
        let ports = json!([{"name": "80-80", "port": 80, "protocol": "TCP", "targetPort": 80}]);
        match self {
            Kind::ClusterIp => {
                json!({"type": "ClusterIP", "ports": ports, "selector": {"app": "a"}})
            }
            Kind::NodePort => json!({"type": "NodePort", "ports": ports, "selector": {"app": "a"}}),
            Kind::LoadBalancer => {
                json!({"type": "LoadBalancer", "ports": ports, "selector": {"app": "a"}})
            }
            // With a port, as `kubectl create service externalname --tcp`, so that a change to
            // a type that needs ports is valid.
            Kind::ExternalName => {
                json!({"type": "ExternalName", "externalName": "example.com", "ports": ports})
            }
            Kind::Headless => {
                json!({"type": "ClusterIP", "clusterIP": "None", "ports": ports, "selector": {"app": "a"}})
            }
        }
    }

    /// The merge patch a user sends to change an existing Service to this kind.
    fn change_to(self) -> Value {
        match self {
            Kind::ClusterIp => json!({"spec": {"type": "ClusterIP"}}),
            Kind::NodePort => json!({"spec": {"type": "NodePort"}}),
            Kind::LoadBalancer => json!({"spec": {"type": "LoadBalancer"}}),
            Kind::ExternalName => {
                json!({"spec": {"type": "ExternalName", "externalName": "example.com"}})
            }
            Kind::Headless => json!({"spec": {"type": "ClusterIP", "clusterIP": "None"}}),
        }
    }
}

/// Whether kube-apiserver accepts changing `from` to `to` with [`Kind::change_to`]'s patch:
/// a ClusterIP may not change between an address and `None` while the type needs one
/// (`spec.clusterIPs[0]: ... may not change once set`), and a NodePort or LoadBalancer
/// Service may not be headless.
fn accepted(from: Kind, to: Kind) -> bool {
    !matches!(
        (from, to),
        (
            Kind::ClusterIp | Kind::NodePort | Kind::LoadBalancer,
            Kind::Headless
        ) | (Kind::Headless, Kind::NodePort | Kind::LoadBalancer)
    )
}

fn spec(svc: &Service) -> Value {
    serde_json::to_value(svc.spec.clone().unwrap_or_default()).unwrap()
}

/// What the stored Service holds: its ClusterIPs (without `None`) and NodePorts.
fn held(svc: &Service) -> (Vec<String>, Vec<i32>) {
    let spec = svc.spec.clone().unwrap_or_default();
    let mut ips: Vec<String> = spec
        .cluster_ips
        .unwrap_or_default()
        .into_iter()
        .filter(|ip| ip != "None" && !ip.is_empty())
        .collect();
    ips.sort();
    let mut ports: Vec<i32> = spec
        .ports
        .unwrap_or_default()
        .iter()
        .filter_map(|p| p.node_port)
        .filter(|&p| p != 0)
        .collect();
    ports.extend(spec.health_check_node_port.filter(|&p| p != 0));
    ports.sort();
    (ips, ports)
}

/// The claims that name `name` as their Service: IPAddress names and NodePortAllocation ports.
async fn claims(rig: &RegistryBackedWebhook, name: &str) -> (Vec<String>, Vec<i32>) {
    let client = rig.env.client();
    let ips = Api::<IPAddress>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap();
    let mut ips: Vec<String> = ips
        .items
        .iter()
        .filter(|o| ip_address_parent(o).is_some_and(|(_, n)| n == name))
        .filter_map(|o| o.metadata.name.clone())
        .collect();
    ips.sort();
    let ports = Api::<NodePortAllocation>::all(client)
        .list(&ListParams::default())
        .await
        .unwrap();
    let mut ports: Vec<i32> = ports
        .items
        .iter()
        .filter(|o| o.spec.parent_ref.name == name)
        .map(|o| o.spec.port)
        .collect();
    ports.sort();
    (ips, ports)
}

/// The stored Service carries nothing its type does not use.
fn assert_no_type_dependent_leftovers(svc: &Service, context: &str) {
    let spec = spec(svc);
    let ty = spec["type"].as_str().unwrap_or("ClusterIP");
    if ty == "ExternalName" {
        for field in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
            assert!(
                spec.get(field).is_none(),
                "{context}: an ExternalName Service kept {field}: {spec}"
            );
        }
    }
    if !matches!(ty, "NodePort" | "LoadBalancer") {
        for port in spec["ports"].as_array().into_iter().flatten() {
            assert!(
                port.get("nodePort").is_none(),
                "{context}: a {ty} Service kept a nodePort: {spec}"
            );
        }
        assert!(
            spec.get("externalTrafficPolicy").is_none(),
            "{context}: a {ty} Service kept externalTrafficPolicy: {spec}"
        );
    }
    if ty != "LoadBalancer" {
        for field in ["allocateLoadBalancerNodePorts", "loadBalancerClass"] {
            assert!(
                spec.get(field).is_none(),
                "{context}: a {ty} Service kept {field}: {spec}"
            );
        }
    }
}

#[tokio::test]
async fn every_type_change_stores_what_the_allocator_holds() {
    let rig = RegistryBackedWebhook::start().await;
    let api: Api<Service> = Api::namespaced(rig.env.client(), "default");
    for from in KINDS {
        for to in KINDS {
            if from == to {
                continue;
            }
            let name = format!("{}-to-{}", from.label(), to.label());
            let context = format!("{from:?} -> {to:?}");
            let svc: Service = serde_json::from_value(
                json!({"metadata": {"name": name}, "spec": from.create_spec()}),
            )
            .unwrap();
            let created = api.create(&PostParams::default(), &svc).await.unwrap();
            assert_eq!(
                held(&created),
                claims(&rig, &name).await,
                "{context}: create"
            );

            let changed = api
                .patch(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(&to.change_to()),
                )
                .await;
            let stored = api.get(&name).await.unwrap();
            match changed {
                Ok(_) => assert!(accepted(from, to), "{context}: accepted, upstream refuses"),
                Err(kube::Error::Api(status)) => {
                    assert!(
                        !accepted(from, to),
                        "{context}: refused, upstream accepts: {}",
                        status.message
                    );
                    assert_eq!(status.code, 422, "{context}: {}", status.message);
                    assert_eq!(stored, created, "{context}: a refused change was stored");
                }
                Err(other) => panic!("{context}: {other}"),
            }
            assert_no_type_dependent_leftovers(&stored, &context);
            assert_eq!(
                held(&stored),
                claims(&rig, &name).await,
                "{context}: the claims differ from what the stored Service holds"
            );
            // The stored object must stay writable (the repro: every later write got 422).
            api.patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(&json!({"metadata": {"labels": {"x": "y"}}})),
            )
            .await
            .unwrap_or_else(|e| panic!("{context}: a later label write was refused: {e}"));
        }
    }
    rig.server.shutdown().await;
}

#[tokio::test]
async fn a_released_cluster_ip_is_not_left_on_the_external_name_service() {
    let rig = RegistryBackedWebhook::start().await;
    let api: Api<Service> = Api::namespaced(rig.env.client(), "default");
    let a: Service = serde_json::from_value(
        json!({"metadata": {"name": "a"}, "spec": Kind::ClusterIp.create_spec()}),
    )
    .unwrap();
    let a = api.create(&PostParams::default(), &a).await.unwrap();
    let ip = a.spec.unwrap().cluster_ip.unwrap();
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(&Kind::ExternalName.change_to()),
    )
    .await
    .unwrap();
    let b: Service = serde_json::from_value(json!({"metadata": {"name": "b"},
        "spec": {"clusterIP": ip, "ports": [{"port": 80}]}}))
    .unwrap();
    api.create(&PostParams::default(), &b).await.unwrap();
    let holders: Vec<String> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter(|s| {
            s.spec
                .as_ref()
                .and_then(|s| s.cluster_ip.as_deref())
                .is_some_and(|c| c == ip)
        })
        .filter_map(|s| s.metadata.name.clone())
        .collect();
    assert_eq!(holders, vec!["b".to_owned()], "two Services show {ip}");
    rig.server.shutdown().await;
}

#[tokio::test]
async fn creates_refused_as_already_exists_leave_no_claims_behind() {
    let rig = RegistryBackedWebhook::start().await;
    let api: Api<Service> = Api::namespaced(rig.env.client(), "default");
    let svc: Service = serde_json::from_value(
        json!({"metadata": {"name": "dupl"}, "spec": Kind::NodePort.create_spec()}),
    )
    .unwrap();
    let created = api.create(&PostParams::default(), &svc).await.unwrap();
    // Let the webhook's Service cache see it, as it would long before a user retries.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    for _ in 0..3 {
        // `kubectl create svc nodeport dupl --tcp=80:80` again: admitted (and claimed), then 409.
        match api.create(&PostParams::default(), &svc).await {
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            other => panic!("expected 409 AlreadyExists, got {other:?}"),
        }
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let claims = claims(&rig, "dupl").await;
        if claims == held(&created) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the refused creates' claims stayed: {claims:?}, the Service holds {:?}",
            held(&created)
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    rig.server.shutdown().await;
}
