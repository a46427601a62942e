//! The node simulator against testenv: nodes registered, pods bound, given IPs, Running and
//! Ready; readiness held and flipped by annotation; terminating pods kept for their grace period.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use futures::StreamExt;
use ipnet::IpNet;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use testenv::nodesim::{
    NodeSimConfig, NodeSimulator, READY_ANNOTATION, TERMINATION_ANNOTATION, ZONE_LABEL,
};
use testenv::{TestEnv, TestEnvOptions};

async fn env_with(config: NodeSimConfig) -> TestEnv {
    TestEnv::start_with(TestEnvOptions {
        node_simulator: Some(config),
        ..TestEnvOptions::default()
    })
    .await
    .unwrap()
}

fn pod(name: &str, annotations: Value, grace: Option<i64>) -> Pod {
    let mut spec = json!({"containers": [{"name": "web", "image": "nginx"}]});
    if let Some(g) = grace {
        spec["terminationGracePeriodSeconds"] = json!(g);
    }
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": "web"}, "annotations": annotations},
        "spec": spec,
    }))
    .unwrap()
}

fn condition(pod: &Pod, type_: &str) -> Option<(String, String)> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| {
            (
                c.status.clone(),
                c.last_transition_time
                    .as_ref()
                    .map(|t| t.0.to_string())
                    .unwrap_or_default(),
            )
        })
}

fn is_ready(pod: &Pod) -> bool {
    condition(pod, "Ready").is_some_and(|(s, _)| s == "True")
}

fn is_running(pod: &Pod) -> bool {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
}

/// Polls `name` until `check` holds, returning the pod.
async fn wait_for(api: &Api<Pod>, name: &str, what: &str, check: impl Fn(&Pod) -> bool) -> Pod {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(p) = api.get(name).await
            && check(&p)
        {
            return p;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {name}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn nodes_are_registered_ready_with_zones_and_pod_cidrs() {
    let env = env_with(NodeSimConfig::default()).await;
    let nodes: Api<Node> = Api::all(env.client());
    let list = nodes.list(&ListParams::default()).await.unwrap();
    let summary: Vec<(String, String, String, String, String)> = list
        .items
        .iter()
        .map(|n| {
            let labels = n.metadata.labels.clone().unwrap_or_default();
            let ready = n
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
                .map(|c| c.status.clone())
                .unwrap_or_default();
            (
                n.metadata.name.clone().unwrap_or_default(),
                labels.get(ZONE_LABEL).cloned().unwrap_or_default(),
                labels
                    .get("kubernetes.io/hostname")
                    .cloned()
                    .unwrap_or_default(),
                n.spec
                    .as_ref()
                    .and_then(|s| s.pod_cidr.clone())
                    .unwrap_or_default(),
                ready,
            )
        })
        .collect();
    let expected: Vec<(String, String, String, String, String)> = [
        ("node-1", "zone-a", "10.244.1.0/24"),
        ("node-2", "zone-b", "10.244.2.0/24"),
        ("node-3", "zone-c", "10.244.3.0/24"),
    ]
    .iter()
    .map(|(n, z, c)| {
        (
            n.to_string(),
            z.to_string(),
            n.to_string(),
            c.to_string(),
            "True".into(),
        )
    })
    .collect();
    assert_eq!(summary, expected);
    let allocatable = list.items[0]
        .status
        .as_ref()
        .and_then(|s| s.allocatable.clone())
        .unwrap();
    assert_eq!(allocatable["pods"].0, "110");
}

#[tokio::test]
async fn pods_are_bound_spread_given_ips_and_become_running_and_ready() {
    let env = env_with(NodeSimConfig::default()).await;
    let api: Api<Pod> = Api::default_namespaced(env.client());
    for i in 0..6 {
        api.create(
            &PostParams::default(),
            &pod(&format!("web-{i}"), json!({}), None),
        )
        .await
        .unwrap();
    }
    let cidrs: BTreeMap<String, IpNet> = NodeSimConfig::default()
        .nodes
        .iter()
        .map(|n| (n.name.clone(), n.pod_cidrs[0]))
        .collect();
    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    let mut ips = BTreeSet::new();
    for i in 0..6 {
        let p = wait_for(&api, &format!("web-{i}"), "Running and Ready", |p| {
            is_running(p) && is_ready(p)
        })
        .await;
        let node = p.spec.as_ref().unwrap().node_name.clone().unwrap();
        let status = p.status.as_ref().unwrap();
        let ip: IpAddr = status.pod_ip.as_ref().unwrap().parse().unwrap();
        assert!(cidrs[&node].contains(&ip), "{ip} outside {node}'s pod CIDR");
        assert!(ips.insert(ip), "{ip} handed out twice");
        assert_eq!(
            status.pod_ips.as_ref().unwrap()[0].ip,
            status.pod_ip.clone().unwrap()
        );
        let node_index: u8 = node.trim_start_matches("node-").parse().unwrap();
        assert_eq!(
            status.host_ip.as_deref(),
            Some(format!("172.18.0.{}", node_index + 1).as_str())
        );
        for c in ["PodScheduled", "Initialized", "ContainersReady", "Ready"] {
            let (s, since) = condition(&p, c).unwrap();
            assert_eq!(s, "True", "{c}");
            assert!(!since.is_empty(), "{c} has a lastTransitionTime");
        }
        let cs = &status.container_statuses.as_ref().unwrap()[0];
        assert!(cs.ready && cs.started == Some(true));
        assert!(cs.state.as_ref().unwrap().running.is_some());
        *per_node.entry(node).or_default() += 1;
    }
    // Least-loaded spreading: two pods on each of the three nodes.
    assert_eq!(
        per_node.into_iter().collect::<Vec<_>>(),
        [
            ("node-1".into(), 2),
            ("node-2".into(), 2),
            ("node-3".into(), 2)
        ]
    );
}

#[tokio::test]
async fn starting_pods_record_scheduler_and_kubelet_events_once() {
    let env = env_with(NodeSimConfig::default().with_pod_events(true)).await;
    let api: Api<Pod> = Api::default_namespaced(env.client());
    api.create(&PostParams::default(), &pod("web-0", json!({}), None))
        .await
        .unwrap();
    let p = wait_for(&api, "web-0", "Running and Ready", |p| {
        is_running(p) && is_ready(p)
    })
    .await;
    let node = p.spec.unwrap().node_name.unwrap();
    let uid = p.metadata.uid.unwrap();
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::default_namespaced(env.client());
    // As `kubectl describe pod` asks for them.
    let selector = format!(
        "involvedObject.name=web-0,involvedObject.namespace=default,involvedObject.uid={uid}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let lines = loop {
        let list = events
            .list(&ListParams::default().fields(&selector))
            .await
            .unwrap();
        let mut items = list.items;
        items.sort_by_key(|e| e.metadata.name.clone());
        let lines: Vec<String> = items
            .iter()
            .map(|e| {
                format!(
                    "{} {} {}",
                    e.reason.as_deref().unwrap_or(""),
                    e.reporting_component.as_deref().unwrap_or(""),
                    e.message.as_deref().unwrap_or("")
                )
            })
            .collect();
        if lines.len() >= 4 || Instant::now() > deadline {
            break lines;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        lines,
        [
            format!("Scheduled default-scheduler Successfully assigned default/web-0 to {node}"),
            "Pulled kubelet Container image \"nginx\" already present on machine".to_string(),
            "Created kubelet Created container: web".to_string(),
            "Started kubelet Started container web".to_string(),
        ]
    );
    // Readiness flips and further status writes record nothing more.
    api.patch(
        "web-0",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {READY_ANNOTATION: "false"}}})),
    )
    .await
    .unwrap();
    wait_for(&api, "web-0", "unready", |p| !is_ready(p)).await;
    let count = events
        .list(&ListParams::default().fields(&selector))
        .await
        .unwrap()
        .items
        .len();
    assert_eq!(count, 4);
}

#[tokio::test]
async fn the_ready_annotation_holds_a_pod_unready_and_flipping_it_flips_readiness() {
    let env = env_with(NodeSimConfig::default()).await;
    let api: Api<Pod> = Api::default_namespaced(env.client());
    api.create(
        &PostParams::default(),
        &pod("held", json!({READY_ANNOTATION: "false"}), None),
    )
    .await
    .unwrap();
    api.create(&PostParams::default(), &pod("free", json!({}), None))
        .await
        .unwrap();
    wait_for(&api, "free", "Ready", is_ready).await;
    let held = wait_for(&api, "held", "Running with an IP", |p| {
        is_running(p) && p.status.as_ref().is_some_and(|s| s.pod_ip.is_some())
    })
    .await;
    let (status, unready_since) = condition(&held, "Ready").unwrap();
    assert_eq!(status, "False");
    let ready = held
        .status
        .as_ref()
        .unwrap()
        .conditions
        .as_ref()
        .unwrap()
        .iter()
        .find(|c| c.type_ == "ContainersReady")
        .unwrap()
        .clone();
    assert_eq!(ready.reason.as_deref(), Some("ContainersNotReady"));
    assert_eq!(
        ready.message.as_deref(),
        Some("containers with unready status: [web]")
    );
    assert!(
        !held
            .status
            .as_ref()
            .unwrap()
            .container_statuses
            .as_ref()
            .unwrap()[0]
            .ready
    );
    // Still unready a while later: nothing turns it Ready behind the annotation's back.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!is_ready(&api.get("held").await.unwrap()));

    let flip = |v: &str| Patch::Merge(json!({"metadata": {"annotations": {READY_ANNOTATION: v}}}));
    api.patch("held", &PatchParams::default(), &flip("true"))
        .await
        .unwrap();
    let now_ready = wait_for(&api, "held", "Ready after the flip", is_ready).await;
    let (_, ready_since) = condition(&now_ready, "Ready").unwrap();
    assert!(ready_since >= unready_since);
    let ip_before = now_ready.status.as_ref().unwrap().pod_ip.clone();

    api.patch("held", &PatchParams::default(), &flip("false"))
        .await
        .unwrap();
    let unready = wait_for(&api, "held", "unready after the flip back", |p| {
        !is_ready(p)
    })
    .await;
    assert_eq!(
        unready.status.as_ref().unwrap().pod_ip,
        ip_before,
        "the IP stays"
    );
    assert!(is_running(&unready));
}

#[tokio::test]
async fn under_external_probes_a_probed_pod_is_ready_only_while_its_prober_says_so() {
    let env = env_with(NodeSimConfig::default().with_external_readiness_probes(true)).await;
    let reporter = env.readiness_reporter().unwrap();
    let api: Api<Pod> = Api::default_namespaced(env.client());
    let mut probed = pod("probed", json!({}), None);
    probed.spec.as_mut().unwrap().containers[0].readiness_probe =
        Some(serde_json::from_value(json!({"httpGet": {"path": "/healthz", "port": 80}})).unwrap());
    api.create(&PostParams::default(), &probed).await.unwrap();
    api.create(&PostParams::default(), &pod("plain", json!({}), None))
        .await
        .unwrap();

    // A pod without a probe is Ready as before; the probed one runs but waits for its prober.
    wait_for(&api, "plain", "Ready", is_ready).await;
    let running = wait_for(&api, "probed", "Running", is_running).await;
    let uid = running.metadata.uid.clone().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!is_ready(&api.get("probed").await.unwrap()));

    // A result for another uid (an earlier pod of the same name) changes nothing.
    reporter.set_probe_result("default", "probed", "not-its-uid", true);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!is_ready(&api.get("probed").await.unwrap()));

    reporter.set_probe_result("default", "probed", &uid, true);
    wait_for(&api, "probed", "Ready after a passing probe", is_ready).await;
    reporter.set_probe_result("default", "probed", &uid, false);
    let unready = wait_for(&api, "probed", "unready after a failing probe", |p| {
        !is_ready(p)
    })
    .await;
    assert!(is_running(&unready));
    reporter.set_probe_result("default", "probed", &uid, true);
    wait_for(&api, "probed", "Ready again", is_ready).await;
}

#[tokio::test]
async fn without_external_probes_a_probed_pod_turns_ready_by_itself() {
    let env = env_with(NodeSimConfig::default()).await;
    let api: Api<Pod> = Api::default_namespaced(env.client());
    let mut probed = pod("probed", json!({}), None);
    probed.spec.as_mut().unwrap().containers[0].readiness_probe =
        Some(serde_json::from_value(json!({"tcpSocket": {"port": 80}})).unwrap());
    api.create(&PostParams::default(), &probed).await.unwrap();
    wait_for(&api, "probed", "Ready", is_ready).await;
}

#[tokio::test]
async fn a_ready_delay_keeps_running_pods_unready_for_a_while() {
    let env = env_with(NodeSimConfig::default().with_ready_delay(Duration::from_millis(800))).await;
    let api: Api<Pod> = Api::default_namespaced(env.client());
    let created = Instant::now();
    api.create(&PostParams::default(), &pod("slow", json!({}), None))
        .await
        .unwrap();
    let running = wait_for(&api, "slow", "Running", is_running).await;
    assert!(!is_ready(&running));
    wait_for(&api, "slow", "Ready", is_ready).await;
    assert!(created.elapsed() >= Duration::from_millis(800));
}

#[tokio::test]
async fn a_deleted_pod_terminates_for_its_grace_period_and_then_is_gone() {
    let env = env_with(NodeSimConfig::default()).await;
    let api: Api<Pod> = Api::default_namespaced(env.client());
    api.create(&PostParams::default(), &pod("graceful", json!({}), Some(2)))
        .await
        .unwrap();
    wait_for(&api, "graceful", "Ready", is_ready).await;
    let deleted_at = Instant::now();
    api.delete("graceful", &DeleteParams::default())
        .await
        .unwrap();
    let terminating = api.get("graceful").await.unwrap();
    assert!(terminating.metadata.deletion_timestamp.is_some());
    assert_eq!(terminating.metadata.deletion_grace_period_seconds, Some(2));
    // Still there (terminating) well inside the grace period.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(api.get_opt("graceful").await.unwrap().is_some());
    let deadline = Instant::now() + Duration::from_secs(5);
    while api.get_opt("graceful").await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "the pod was never finalized");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = deleted_at.elapsed();
    assert!(took >= Duration::from_secs(2), "gone after {took:?}");
}

#[tokio::test]
async fn the_termination_annotation_shortens_the_wait() {
    let env = env_with(NodeSimConfig::default()).await;
    let api: Api<Pod> = Api::default_namespaced(env.client());
    api.create(
        &PostParams::default(),
        &pod("quick", json!({TERMINATION_ANNOTATION: "0"}), Some(30)),
    )
    .await
    .unwrap();
    wait_for(&api, "quick", "Ready", is_ready).await;
    let deleted_at = Instant::now();
    // The server keeps it terminating with the full grace period; the simulated kubelet does
    // not wait that long.
    let response = api.delete("quick", &DeleteParams::default()).await.unwrap();
    let terminating = response.left().expect("a graceful delete returns the pod");
    assert_eq!(terminating.metadata.deletion_grace_period_seconds, Some(30));
    while api.get_opt("quick").await.unwrap().is_some() {
        assert!(
            deleted_at.elapsed() < Duration::from_secs(5),
            "not finalized early"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn dual_stack_pods_get_one_ip_per_family() {
    let env = env_with(NodeSimConfig::default().dual_stack()).await;
    let api: Api<Pod> = Api::default_namespaced(env.client());
    api.create(&PostParams::default(), &pod("two", json!({}), None))
        .await
        .unwrap();
    let p = wait_for(&api, "two", "Ready", is_ready).await;
    let s = p.status.unwrap();
    let ips: Vec<IpAddr> = s
        .pod_ips
        .unwrap()
        .iter()
        .map(|i| i.ip.parse().unwrap())
        .collect();
    assert_eq!(ips.len(), 2);
    assert!(ips[0].is_ipv4() && ips[1].is_ipv6());
    let node = p.spec.unwrap().node_name.unwrap();
    let n: u32 = node.trim_start_matches("node-").parse().unwrap();
    let v6: IpNet = format!("fd00:10:244:{n:x}::/64").parse().unwrap();
    assert!(v6.contains(&ips[1]));
    assert_eq!(s.host_ips.unwrap().len(), 2);
}

#[tokio::test]
async fn a_restarted_simulator_keeps_pod_ips_and_releases_them_when_pods_go() {
    let env = TestEnv::start().await.unwrap();
    let client = env.client();
    // One node with a /29: five pod IPs, so reuse is visible.
    let mut config = NodeSimConfig::with_node_count(1);
    config.nodes[0].pod_cidrs = vec!["10.244.1.0/29".parse().unwrap()];
    let sim = NodeSimulator::start(client.clone(), config.clone())
        .await
        .unwrap();
    let api: Api<Pod> = Api::default_namespaced(client.clone());
    for i in 0..5 {
        api.create(
            &PostParams::default(),
            &pod(&format!("p{i}"), json!({TERMINATION_ANNOTATION: "0"}), None),
        )
        .await
        .unwrap();
    }
    let mut before = BTreeMap::new();
    for i in 0..5 {
        let p = wait_for(&api, &format!("p{i}"), "Ready", is_ready).await;
        before.insert(
            p.metadata.name.clone().unwrap(),
            p.status.unwrap().pod_ip.unwrap(),
        );
    }
    sim.stop().await;

    let sim = NodeSimulator::start(client.clone(), config).await.unwrap();
    // A sixth pod waits: the /29 is full with the adopted IPs.
    api.create(&PostParams::default(), &pod("p5", json!({}), None))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (name, ip) in &before {
        let p = api.get(name).await.unwrap();
        assert_eq!(
            p.status.unwrap().pod_ip.as_ref(),
            Some(ip),
            "{name} kept its IP"
        );
    }
    let p5 = api.get("p5").await.unwrap();
    assert!(p5.status.and_then(|s| s.pod_ip).is_none());

    // Deleting one frees its IP for the waiting pod.
    api.delete("p2", &DeleteParams::default()).await.unwrap();
    let p5 = wait_for(&api, "p5", "Ready", is_ready).await;
    assert_eq!(p5.status.unwrap().pod_ip, Some(before["p2"].clone()));
    sim.stop().await;
}

/// Measures pods/s from create to Ready for 1,000 pods (`NODESIM_PODS` to change); run with
/// `--ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement"]
async fn measure_throughput_to_ready() {
    let n: usize = std::env::var("NODESIM_PODS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let env = env_with(NodeSimConfig::with_node_count(n / 100 + 1)).await;
    let api: Api<Pod> = Api::default_namespaced(env.client());
    let start = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            async move {
                api.create(
                    &PostParams::default(),
                    &pod(&format!("load-{i}"), json!({}), None),
                )
                .await
                .unwrap();
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<()>>()
        .await;
    let created = start.elapsed();
    // Count Ready pods from a watch: polling lists would load the server being measured.
    let mut ready = BTreeSet::new();
    let mut events = std::pin::pin!(kube::runtime::watcher(
        api.clone(),
        kube::runtime::watcher::Config::default()
    ));
    while ready.len() < n {
        let event = tokio::time::timeout(Duration::from_secs(60), events.next())
            .await
            .expect("progress within a minute");
        if let Some(Ok(
            kube::runtime::watcher::Event::Apply(p) | kube::runtime::watcher::Event::InitApply(p),
        )) = event
            && is_ready(&p)
        {
            ready.insert(p.metadata.name.unwrap_or_default());
        }
    }
    let took = start.elapsed();
    println!(
        "{n} pods created in {created:?}, all Ready after {took:?}: {:.0} pods/s",
        n as f64 / took.as_secs_f64()
    );
}
