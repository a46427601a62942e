//! The data plane driven by the API: testenv with its node simulator (readiness left to
//! probes), pods created through the API get namespaces and answer; a readiness probe decides
//! Ready and the stand-in's switch flips it; deleting a pod removes its namespace; the container
//! runtime's logs and exec reach the pod. Needs root and network namespaces (skipped otherwise,
//! failing under CI=true).

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use dataplane::{DataPlane, DataPlaneConfig};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;
use support::{curl_in, host_or_skip, namespaces_with, run};
use testenv::nodesim::NodeSimConfig;
use testenv::runtime::{ContainerRuntime, PodRef, RuntimeError};
use testenv::{TestEnv, TestEnvOptions};

fn pod(name: &str, probe: Option<serde_json::Value>) -> Pod {
    let mut container = json!({"name": "web", "image": "luksa/kubia",
        "ports": [{"name": "http", "containerPort": 8080}]});
    if let Some(p) = probe {
        container["readinessProbe"] = p;
    }
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {"containers": [container], "terminationGracePeriodSeconds": 0},
    }))
    .unwrap()
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True")
}

async fn wait_for(api: &Api<Pod>, name: &str, what: &str, check: impl Fn(&Pod) -> bool) -> Pod {
    let deadline = Instant::now() + Duration::from_secs(20);
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
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn pod_ref(pod: &Pod) -> PodRef {
    PodRef {
        namespace: pod.metadata.namespace.clone().unwrap(),
        name: pod.metadata.name.clone().unwrap(),
        uid: pod.metadata.uid.clone().unwrap(),
        node_name: pod.spec.as_ref().unwrap().node_name.clone().unwrap(),
    }
}

fn exec(runtime: &Arc<dyn ContainerRuntime>, pod: &PodRef, argv: &[&str]) -> String {
    let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
    run(runtime.exec(pod, "web", &argv).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_from_the_api_run_in_namespaces_with_probed_readiness_logs_and_exec() {
    if !host_or_skip("through_the_api") {
        return;
    }
    let env = TestEnv::start_with(TestEnvOptions {
        node_simulator: Some(
            NodeSimConfig::with_node_count(2).with_external_readiness_probes(true),
        ),
        ..TestEnvOptions::default()
    })
    .await
    .unwrap();
    let plane = DataPlane::start(
        env.client(),
        DataPlaneConfig::default(),
        env.readiness_reporter(),
    )
    .await
    .unwrap();
    let prefix = plane.sandboxes().names().prefix().to_string();
    let runtime = plane.runtime();
    env.server().set_container_runtime(runtime.clone());
    let api: Api<Pod> = Api::default_namespaced(env.client());

    let probe = json!({"httpGet": {"path": "/healthz", "port": "http"},
        "periodSeconds": 1, "failureThreshold": 1});
    api.create(&PostParams::default(), &pod("plain", None))
        .await
        .unwrap();
    api.create(&PostParams::default(), &pod("probed", Some(probe)))
        .await
        .unwrap();
    let delayed_probe = json!({"httpGet": {"path": "/", "port": 8080},
        "initialDelaySeconds": 3, "periodSeconds": 1});
    let delayed_created = Instant::now();
    api.create(&PostParams::default(), &pod("delayed", Some(delayed_probe)))
        .await
        .unwrap();
    let tcp_probe = json!({"tcpSocket": {"port": 8080}, "periodSeconds": 1, "failureThreshold": 1});
    api.create(&PostParams::default(), &pod("tcp", Some(tcp_probe)))
        .await
        .unwrap();

    // Both get namespaces; the probed pod turns Ready only once its probe passed.
    let plain = wait_for(&api, "plain", "Ready", is_ready).await;
    let probed = wait_for(&api, "probed", "Ready through its probe", is_ready).await;
    let plain_ns = support::eventually(10, "plain's namespace", || {
        plane.pod_namespace("default", "plain")
    })
    .await;
    let probed_ns = plane.pod_namespace("default", "probed").unwrap();
    let plain_ip = plain.status.as_ref().unwrap().pod_ip.clone().unwrap();
    let probed_ip = probed.status.as_ref().unwrap().pod_ip.clone().unwrap();
    let answer = curl_in(&plain_ns, &format!("http://{probed_ip}:8080/hello"));
    assert!(
        answer.starts_with(&format!("You've hit probed\nclient address: {plain_ip}:")),
        "{answer}"
    );
    let node = probed.spec.as_ref().unwrap().node_name.clone().unwrap();
    assert!(plane.node_namespace(&node).is_some());
    let from_node = run(plane
        .node_command(
            &node,
            &[
                "curl".into(),
                "-sS".into(),
                format!("http://{plain_ip}:8080/"),
            ],
        )
        .unwrap());
    assert!(from_node.starts_with("You've hit plain\n"), "{from_node}");

    // The fail switch, asked from inside the pod, turns it unready; pass turns it Ready.
    let probed_ref = pod_ref(&probed);
    let said = exec(
        &runtime,
        &probed_ref,
        &["curl", "-sS", "localhost:8080/svcplane/readiness/fail"],
    );
    assert_eq!(said, "readiness probes of probed now fail\n");
    wait_for(&api, "probed", "unready after the fail switch", |p| {
        !is_ready(p)
    })
    .await;
    // User traffic keeps being answered meanwhile.
    assert!(
        curl_in(&plain_ns, &format!("http://{probed_ip}:8080/")).starts_with("You've hit probed")
    );
    exec(
        &runtime,
        &probed_ref,
        &["curl", "-sS", "localhost:8080/svcplane/readiness/pass"],
    );
    wait_for(&api, "probed", "Ready after the pass switch", is_ready).await;

    // A tcpSocket probe fails while the switch holds: the port stops listening.
    let tcp = wait_for(&api, "tcp", "Ready through its tcpSocket probe", is_ready).await;
    let tcp_ref = pod_ref(&tcp);
    exec(
        &runtime,
        &tcp_ref,
        &["curl", "-sS", "localhost:8080/svcplane/readiness/fail"],
    );
    wait_for(&api, "tcp", "unready after the fail switch", |p| {
        !is_ready(p)
    })
    .await;
    exec(
        &runtime,
        &tcp_ref,
        &["curl", "-sS", "localhost:8080/svcplane/readiness/pass"],
    );
    wait_for(&api, "tcp", "Ready after the pass switch", is_ready).await;

    // initialDelaySeconds holds the first probe back: the pod answers long before it is Ready.
    let delayed_ns = support::eventually(10, "delayed's namespace", || {
        plane.pod_namespace("default", "delayed")
    })
    .await;
    assert!(curl_in(&delayed_ns, "http://localhost:8080/").starts_with("You've hit delayed"));
    wait_for(&api, "delayed", "Ready after its initial delay", is_ready).await;
    assert!(
        delayed_created.elapsed() >= Duration::from_secs(3),
        "Ready after {:?}, before the initial delay of 3 s",
        delayed_created.elapsed()
    );

    // Logs: the access log of the container, a line per request.
    let logs = runtime.logs(&probed_ref, "web").unwrap();
    let text: String = logs
        .written
        .iter()
        .map(|entry| String::from_utf8_lossy(&entry.bytes).into_owned())
        .collect();
    let line = text
        .lines()
        .find(|l| l.contains(" GET /hello 200"))
        .unwrap_or_else(|| panic!("no access-log line for /hello in:\n{text}"));
    assert!(line.contains(&format!(" {plain_ip}:")), "{line}");
    assert!(
        text.contains("GET /healthz 503"),
        "the failing probe was answered 503:\n{text}"
    );
    // Probes come from the node: its address is the client.
    let host_ip = probed.status.as_ref().unwrap().host_ip.clone().unwrap();
    assert!(
        text.lines()
            .any(|l| l.contains(&format!(" {host_ip}:")) && l.contains(" GET /healthz 200")),
        "no probe from the node {host_ip} in:\n{text}"
    );
    assert!(matches!(
        runtime.logs(&probed_ref, "nope"),
        Err(RuntimeError::NoSuchContainer { .. })
    ));

    // Exec runs inside the pod: its IP, its resolv.conf.
    let addresses = exec(&runtime, &probed_ref, &["ip", "-4", "-o", "addr"]);
    assert!(
        addresses.contains(&format!("{probed_ip}/32")),
        "{addresses}"
    );
    let resolv = exec(&runtime, &probed_ref, &["cat", "/etc/resolv.conf"]);
    assert!(
        resolv.contains("search default.svc.cluster.local svc.cluster.local cluster.local"),
        "{resolv}"
    );
    assert!(resolv.contains("nameserver 10.96.0.10"), "{resolv}");

    // Deleting the pod removes its namespace; the runtime no longer knows it.
    api.delete("probed", &DeleteParams::default())
        .await
        .unwrap();
    support::eventually(20, "probed's namespace removed", || {
        plane
            .pod_namespace("default", "probed")
            .is_none()
            .then_some(())
    })
    .await;
    assert!(!namespaces_with(&prefix).contains(&probed_ns));
    assert!(matches!(
        runtime.exec(&probed_ref, "web", &["true".into()]),
        Err(RuntimeError::NotRunning { .. })
    ));

    plane.shutdown().await.unwrap();
    assert_eq!(namespaces_with(&prefix), Vec::<String>::new());
}
