//! The node simulator through the API, on both backends with one test body: against
//! kube-apiserver it must do what a scheduler and a kubelet do there (bind through `pods/binding`,
//! report status through `pods/status`), not what only testenv would accept.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use svcplane_tests::real::{self, RealClusterOptions};
use testenv::TestEnv;
use testenv::nodesim::{
    NOT_READY_TAINT, NodeSimConfig, NodeSimulator, READY_ANNOTATION, TERMINATION_ANNOTATION,
};

fn condition(pod: &Pod, type_: &str) -> Option<String> {
    let conditions = pod.status.as_ref()?.conditions.as_ref()?;
    conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status.clone())
}

fn is_ready(pod: &Pod) -> bool {
    condition(pod, "Ready").as_deref() == Some("True")
}

/// Polls `name` until `check` holds (a missing pod is `None`), returning what it saw.
async fn wait_for(
    api: &Api<Pod>,
    name: &str,
    what: &str,
    check: impl Fn(Option<&Pod>) -> bool,
) -> Option<Pod> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let pod = api.get_opt(name).await.unwrap();
        if check(pod.as_ref()) {
            return pod;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {name}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn the_simulator_schedules_and_runs_pods(client: kube::Client) {
    let config = NodeSimConfig::default();
    let simulator = NodeSimulator::start(client.clone(), config.clone())
        .await
        .expect("the simulator registers its nodes");

    // Nodes: Ready, and without the not-ready taint kube-apiserver's admission puts on new Nodes.
    let nodes: Api<Node> = Api::all(client.clone());
    for node in nodes.list(&ListParams::default()).await.unwrap().items {
        let name = node.metadata.name.clone().unwrap_or_default();
        let ready = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.status.clone());
        assert_eq!(ready.as_deref(), Some("True"), "{name}");
        let taints = node.spec.and_then(|s| s.taints).unwrap_or_default();
        assert!(
            taints.iter().all(|t| t.key != NOT_READY_TAINT),
            "{name}: {taints:?}"
        );
    }

    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    for i in 1..=6 {
        let pod = json!({"metadata": {"name": format!("web-{i}"), "labels": {"app": "web"},
            "annotations": {TERMINATION_ANNOTATION: "1"}},
            "spec": {"containers": [{"name": "web", "image": "nginx"}]}});
        pods.create(
            &PostParams::default(),
            &serde_json::from_value(pod).unwrap(),
        )
        .await
        .unwrap();
    }
    let cidrs: BTreeMap<String, ipnet::IpNet> = config
        .nodes
        .iter()
        .map(|n| (n.name.clone(), n.pod_cidrs[0]))
        .collect();
    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    for i in 1..=6 {
        let name = format!("web-{i}");
        let pod = wait_for(&pods, &name, "Running and Ready", |p| {
            p.is_some_and(is_ready)
        })
        .await
        .unwrap();
        let node = pod.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap();
        let status = pod.status.as_ref().unwrap();
        assert_eq!(status.phase.as_deref(), Some("Running"), "{name}");
        assert_eq!(
            condition(&pod, "PodScheduled").as_deref(),
            Some("True"),
            "{name}"
        );
        let ip: IpAddr = status.pod_ip.as_deref().unwrap().parse().unwrap();
        assert!(
            cidrs[&node].contains(&ip),
            "{name}: {ip} outside {node}'s pod CIDR"
        );
        *per_node.entry(node).or_default() += 1;
    }
    assert_eq!(per_node.values().copied().collect::<Vec<_>>(), [2, 2, 2]);

    // Readiness follows the annotation, through pods/status.
    let annotate = |value: serde_json::Value| {
        Patch::Merge(json!({"metadata": {"annotations": {READY_ANNOTATION: value}}}))
    };
    pods.patch("web-2", &PatchParams::default(), &annotate(json!("false")))
        .await
        .unwrap();
    wait_for(&pods, "web-2", "unready", |p| {
        p.is_some_and(|p| !is_ready(p))
    })
    .await;
    pods.patch(
        "web-2",
        &PatchParams::default(),
        &annotate(serde_json::Value::Null),
    )
    .await
    .unwrap();
    wait_for(&pods, "web-2", "Ready again", |p| p.is_some_and(is_ready)).await;

    // A deleted pod terminates for the annotation's second, then the kubelet deletes it.
    pods.delete("web-3", &DeleteParams::default())
        .await
        .unwrap();
    let terminating = pods.get("web-3").await.unwrap();
    assert!(terminating.metadata.deletion_timestamp.is_some());
    wait_for(&pods, "web-3", "gone", |p| p.is_none()).await;

    simulator.stop().await;
}

#[tokio::test]
async fn node_simulator_on_testenv() {
    let env = TestEnv::start().await.unwrap();
    the_simulator_schedules_and_runs_pods(env.client()).await;
}

#[tokio::test]
async fn node_simulator_on_kube_apiserver() {
    let Some(cluster) = real::start_or_skip("node_simulator", RealClusterOptions::default()).await
    else {
        return;
    };
    the_simulator_schedules_and_runs_pods(cluster.client()).await;
}
