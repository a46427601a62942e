//! The manifests under `config/` against the code: the checked-in CRD is what `svcplane crds`
//! prints, and the controller-manager's ClusterRole allows every request its controllers make
//! against testenv — and holds no verb beyond those and a named few this scenario cannot reach.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use kube::api::{Api, PostParams};
use serde_json::Value;
use testenv::nodesim::NodeSimConfig;
use testenv::{TestEnv, TestEnvOptions};

fn config_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config")
}

#[test]
fn the_checked_in_crd_is_what_svcplane_crds_prints() {
    let out = Command::new(env!("CARGO_BIN_EXE_svcplane"))
        .arg("crds")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let generated = String::from_utf8(out.stdout).unwrap();
    let path = config_dir().join("crd/allocation.svcplane.io_nodeportallocations.yaml");
    let checked_in = std::fs::read_to_string(&path).unwrap();
    assert!(
        generated == checked_in,
        "{} is stale: regenerate it with `svcplane crds > {}`",
        path.display(),
        path.display()
    );
    assert!(generated.contains("name: nodeportallocations.allocation.svcplane.io"));
}

/// (apiGroup, resource, verb) triples a role grants.
fn grants(file: &str) -> BTreeSet<(String, String, String)> {
    let text = std::fs::read_to_string(config_dir().join(file)).unwrap();
    let role: Value = serde_saphyr::from_str(&text).unwrap();
    let mut out = BTreeSet::new();
    for rule in role["rules"].as_array().unwrap() {
        let strings = |key: &str| -> Vec<String> {
            rule[key]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect()
        };
        for group in strings("apiGroups") {
            for resource in strings("resources") {
                for verb in strings("verbs") {
                    assert!(
                        group != "*" && resource != "*" && verb != "*",
                        "wildcards are not least privilege"
                    );
                    out.insert((group.clone(), resource.clone(), verb));
                }
            }
        }
    }
    out
}

fn triple(group: &str, resource: &str, verb: &str) -> (String, String, String) {
    (group.into(), resource.into(), verb.into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_role_allows_exactly_the_calls_the_controllers_make() {
    let env = TestEnv::start_with(TestEnvOptions {
        node_simulator: Some(NodeSimConfig::with_node_count(2)),
        ..TestEnvOptions::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    env.write_kubeconfig(&kubeconfig).unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // The registry installs the CRD in a real deployment (config/crd); here the test does.
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(env.client());
    crds.create(&PostParams::default(), &allocator::registry::crd())
        .await
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_svcplane"))
        .arg("controller-manager")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args([
            "--bind-address=127.0.0.1",
            &format!("--port={port}"),
            "--allocation-mode=authoritative",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    // A selector Service with pods (slices, Endpoints, events), a selector-less one with custom
    // Endpoints (mirroring), then a pod deleted and the Service removed (updates and deletes).
    let client = env.client();
    let services: Api<Service> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let endpoints: Api<Endpoints> = Api::default_namespaced(client.clone());
    let json = |v: Value| v;
    services
        .create(
            &PostParams::default(),
            &serde_json::from_value(json(serde_json::json!({
                "metadata": {"name": "web"},
                "spec": {"clusterIP": "None", "selector": {"app": "web"}, "ports": [{"port": 80}]}
            })))
            .unwrap(),
        )
        .await
        .unwrap();
    for i in 0..2 {
        pods.create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({
                "metadata": {"name": format!("web-{i}"), "labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    }
    services
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({
                "metadata": {"name": "db"}, "spec": {"ports": [{"port": 5432}]}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    endpoints
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({
                "metadata": {"name": "db"},
                "subsets": [{"addresses": [{"ip": "192.0.2.10"}], "ports": [{"port": 5432}]}]
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let agent = "svcplane-controller-manager/";
    let wrote = |resource: &str, verb: &str| {
        env.oplog()
            .all()
            .iter()
            .any(|o| o.user_agent.starts_with(agent) && o.resource == resource && o.verb == verb)
    };
    let wait_for = |resource: &'static str, verb: &'static str| {
        let wrote = &wrote;
        async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            while !wrote(resource, verb) {
                assert!(Instant::now() < deadline, "no {verb} of {resource}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    wait_for("endpoints", "create").await;
    wait_for("endpointslices", "create").await;
    pods.delete("web-0", &kube::api::DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    wait_for("endpoints", "update").await;
    wait_for("endpointslices", "update").await;
    services.delete("web", &Default::default()).await.unwrap();
    wait_for("endpoints", "delete").await;
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();

    let mut granted = grants("rbac/role.yaml");
    granted.extend(grants("rbac/leader_election_role.yaml"));
    let mut used = BTreeSet::new();
    for op in env.oplog().all() {
        if !op.user_agent.starts_with(agent) || op.resource.is_empty() {
            continue;
        }
        let call = triple(&op.group, &op.resource, &op.verb);
        assert!(
            granted.contains(&call),
            "not granted: {call:?} ({})",
            op.path
        );
        used.insert(call);
    }
    // Granted, but only reached by paths this scenario does not take: repairs after the 60 s
    // grace period, deleting a Service's surplus slices, and events (recorded on failures and
    // repairs only; a repeated one is patched).
    let unexercised: BTreeSet<_> = [
        triple("networking.k8s.io", "ipaddresses", "create"),
        triple("networking.k8s.io", "ipaddresses", "delete"),
        triple("allocation.svcplane.io", "nodeportallocations", "create"),
        triple("allocation.svcplane.io", "nodeportallocations", "delete"),
        triple("discovery.k8s.io", "endpointslices", "delete"),
        triple("", "events", "create"),
        triple("", "events", "patch"),
        triple("events.k8s.io", "events", "create"),
        triple("events.k8s.io", "events", "patch"),
    ]
    .into_iter()
    .collect();
    let surplus: Vec<_> = granted
        .difference(&used)
        .filter(|g| !unexercised.contains(*g))
        .collect();
    assert!(surplus.is_empty(), "granted but never used: {surplus:?}");
}
