//! `svcplane up` as a user runs it: the built binary, a kubeconfig, nodes through kube::Client,
//! SIGTERM, exit 0; bad flags and a busy port fail clearly; a data dir survives a restart;
//! `/metrics`, `/healthz` and `/readyz` on `--metrics-listen`.

mod common;
#[path = "common/up_process.rs"]
mod up_process;

use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Endpoints, Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};

use common::{Answer, assert_upstream_exposition, free_port, http_get};
use up_process::spawn_up;

async fn node_names(client: &kube::Client) -> Vec<String> {
    let nodes: Api<Node> = Api::all(client.clone());
    nodes
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect()
}

#[tokio::test]
async fn up_serves_nodes_and_exits_cleanly_on_sigterm_keeping_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();
    let port = free_port();
    let mut up = spawn_up(dir.path(), port, &["--nodes", "2", "--data-dir", data_arg]);
    let client = up.client().await;
    assert_eq!(node_names(&client).await, ["node-1", "node-2"]);
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let cm: ConfigMap = serde_json::from_value(
        serde_json::json!({"metadata": {"name": "kept"}, "data": {"k": "v"}}),
    )
    .unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();

    let kubeconfig = up.kubeconfig.clone();
    let out = up.terminate();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
    assert!(
        stdout.contains(&format!("export KUBECONFIG={}", kubeconfig.display())),
        "{stdout}"
    );
    assert!(stdout.contains("kubectl get nodes"), "{stdout}");
    // Without --metrics-listen, /metrics is on an ephemeral loopback port.
    assert!(stdout.contains("Metrics at http://127.0.0.1:"), "{stdout}");
    assert!(stderr.contains("shutting down"), "{stderr}");
    assert!(stderr.contains("stopped"), "{stderr}");

    // Same data dir, new process: the ConfigMap is still there.
    std::fs::remove_file(&kubeconfig).unwrap();
    let mut up = spawn_up(
        dir.path(),
        free_port(),
        &["--nodes", "2", "--data-dir", data_arg],
    );
    let client = up.client().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let kept = cms.get("kept").await.unwrap();
    assert_eq!(kept.data.unwrap()["k"], "v");
    assert_eq!(node_names(&client).await, ["node-1", "node-2"]);
    assert_eq!(up.terminate().status.code(), Some(0));
}

#[tokio::test]
async fn up_serves_metrics_in_the_upstream_text_format_and_prints_where() {
    let dir = tempfile::tempdir().unwrap();
    let metrics_port = free_port();
    let metrics_listen = format!("127.0.0.1:{metrics_port}");
    let mut up = spawn_up(
        dir.path(),
        free_port(),
        &["--nodes", "1", "--metrics-listen", &metrics_listen],
    );
    let client = up.client().await;
    let healthz = http_get(metrics_port, "/healthz").unwrap();
    assert_eq!((healthz.status, healthz.body.as_str()), (200, "ok"));
    // The kubeconfig is written once every controller has synced its caches.
    let Answer { status, body, .. } = http_get(metrics_port, "/readyz?verbose").unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        "[+]informer-sync:endpointslice ok\n[+]informer-sync:endpoint ok\n\
         [+]informer-sync:endpointslicemirroring ok\n[+]informer-sync:loadbalancer ok\n\
         [+]informer-sync:allocation-repair ok\n[+]informer-sync:replicaset ok\n\
         [+]informer-sync:deployment ok\nreadyz check passed\n"
    );

    let services: Api<Service> = Api::default_namespaced(client.clone());
    let web: Service = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}
    }))
    .unwrap();
    services.create(&PostParams::default(), &web).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let scrape = loop {
        let answer = http_get(metrics_port, "/metrics").unwrap();
        assert_eq!(answer.status, 200, "{}", answer.body);
        // The placeholder slice of `web`, written by a sync of the controller.
        if answer
            .body
            .contains("endpoint_slice_controller_changes{operation=\"create\"} ")
        {
            break answer;
        }
        assert!(
            Instant::now() < deadline,
            "no slice creation counted:\n{}",
            answer.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_upstream_exposition(
        &scrape,
        &["kube_apiserver_clusterip_allocator_available_ips{cidr=\"10.96.0.0/12\"} "],
    );
    // The `kubernetes` Service's ClusterIP was claimed when the webhook admitted it, so the
    // repair loop's first pass found nothing to repair.
    assert!(
        !scrape
            .body
            .contains("apiserver_clusterip_repair_ip_errors_total{type=\"repair\"}"),
        "{}",
        scrape.body
    );

    let out = up.terminate();
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "Metrics at http://{metrics_listen}/metrics (health: /healthz, /readyz)."
        )),
        "{stdout}"
    );
    // The listener stops with the rest.
    assert!(http_get(metrics_port, "/healthz").is_none());
}

/// The addresses the `kubernetes` Endpoints and EndpointSlice list, if both exist.
async fn kubernetes_endpoint_addresses(
    client: &kube::Client,
) -> Option<(Vec<String>, Vec<String>)> {
    let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let from_endpoints: Vec<String> = endpoints
        .get_opt("kubernetes")
        .await
        .unwrap()?
        .subsets
        .into_iter()
        .flatten()
        .flat_map(|s| s.addresses.into_iter().flatten())
        .map(|a| a.ip)
        .collect();
    let from_slice: Vec<String> = slices
        .get_opt("kubernetes")
        .await
        .unwrap()?
        .endpoints
        .into_iter()
        .flat_map(|e| e.addresses)
        .collect();
    Some((from_endpoints, from_slice))
}

#[tokio::test]
async fn the_kubernetes_endpoints_come_back_after_every_delete_of_the_service() {
    let dir = tempfile::tempdir().unwrap();
    let mut up = spawn_up(dir.path(), free_port(), &[]);
    let client = up.client().await;
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let listed = (vec!["127.0.0.1".to_owned()], vec!["127.0.0.1".to_owned()]);
    let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    for cycle in 0..3 {
        // `kubectl delete svc,ep,endpointslices kubernetes`: everything must be written anew.
        services
            .delete("kubernetes", &Default::default())
            .await
            .unwrap();
        // Either may already be gone (the Endpoints controller deletes a Service's Endpoints).
        let _ = endpoints.delete("kubernetes", &Default::default()).await;
        let _ = slices.delete("kubernetes", &Default::default()).await;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let service = services.get_opt("kubernetes").await.unwrap();
            let addresses = kubernetes_endpoint_addresses(&client).await;
            if service.is_some() && addresses.as_ref() == Some(&listed) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "cycle {cycle}: the kubernetes Service and endpoints did not come back: {addresses:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let out = up.terminate();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("loopback range"), "{stderr}");
}

#[tokio::test]
async fn dual_stack_services_are_allocated_in_both_families() {
    let dir = tempfile::tempdir().unwrap();
    let mut up = spawn_up(
        dir.path(),
        free_port(),
        &[
            "--dual-stack",
            "--service-cluster-ip-range",
            "10.96.0.0/16,fd00:10:96::/108",
        ],
    );
    let client = up.client().await;
    let services: Api<Service> = Api::namespaced(client, "default");
    let cases = [
        (
            "prefer",
            serde_json::json!({"ipFamilyPolicy": "PreferDualStack"}),
            vec!["IPv4", "IPv6"],
        ),
        (
            "require",
            serde_json::json!({"ipFamilyPolicy": "RequireDualStack"}),
            vec!["IPv4", "IPv6"],
        ),
        (
            "v6",
            serde_json::json!({"ipFamilies": ["IPv6"]}),
            vec!["IPv6"],
        ),
        (
            "static-v6",
            serde_json::json!({"clusterIP": "fd00:10:96::a"}),
            vec!["IPv6"],
        ),
    ];
    for (name, spec, families) in cases {
        let mut spec = spec;
        spec["ports"] = serde_json::json!([{"port": 80}]);
        let svc: Service =
            serde_json::from_value(serde_json::json!({"metadata": {"name": name}, "spec": spec}))
                .unwrap();
        let created = services
            .create(&PostParams::default(), &svc)
            .await
            .unwrap_or_else(|e| panic!("{name}: {}", gocompat::api_error_text(&e)));
        let spec = created.spec.unwrap();
        assert_eq!(spec.ip_families.unwrap(), families, "{name}");
        let ips = spec.cluster_ips.unwrap();
        assert_eq!(ips.len(), families.len(), "{name}: {ips:?}");
        if name == "static-v6" {
            assert_eq!(ips, ["fd00:10:96::a"]);
        }
    }
    assert_eq!(up.terminate().status.code(), Some(0));
}

#[test]
fn a_bad_flag_exits_2_with_clap_s_message() {
    let out = Command::new(env!("CARGO_BIN_EXE_svcplane"))
        .args(["up", "--nodes", "zero"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("error: invalid value 'zero' for '--nodes <NODES>'"),
        "{stderr}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_svcplane"))
        .args(["up", "--log-format", "xml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_service_range_of_another_family_than_the_listen_address_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_svcplane"))
        .args(["up", "--service-cluster-ip-range", "fd00:10:96::/108"])
        .args(["--listen", "127.0.0.1:0", "--kubeconfig-out"])
        .arg(dir.path().join("kubeconfig"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim_end(),
        "svcplane: service IP family \"fd00:10:96::/108\" must match public address family \"127.0.0.1\" (the first --service-cluster-ip-range and --listen's address)"
    );
}

#[test]
fn a_port_in_use_is_reported_with_its_address() {
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_svcplane"))
        .args(["up", "--listen", &addr.to_string()])
        .arg("--kubeconfig-out")
        .arg(dir.path().join("kubeconfig"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    // One line that names the flag, and the reason once (it used to be printed twice).
    let line = format!(
        "svcplane: cannot listen on {addr} (the address is already in use); choose another address with --listen"
    );
    assert_eq!(
        stderr
            .lines()
            .filter(|l| l.contains("cannot listen"))
            .collect::<Vec<_>>(),
        [line.as_str()],
        "{stderr}"
    );
    assert!(!stderr.contains("os error"), "{stderr}");
    assert!(!dir.path().join("kubeconfig").exists());

    // The same for the metrics address.
    let out = Command::new(env!("CARGO_BIN_EXE_svcplane"))
        .args([
            "up",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            &addr.to_string(),
        ])
        .arg("--kubeconfig-out")
        .arg(dir.path().join("kubeconfig"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "svcplane: cannot listen on {addr} (the address is already in use); choose another address with --metrics-listen\n"
        )),
        "{stderr}"
    );
}

/// Time from spawning `svcplane up` to its kubeconfig (everything ready), median of five;
/// run with `--ignored --nocapture`.
#[tokio::test]
#[ignore = "measurement"]
async fn measure_time_to_ready() {
    let mut samples = Vec::new();
    for _ in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let start = Instant::now();
        let mut up = spawn_up(dir.path(), free_port(), &[]);
        let client = up.client().await;
        samples.push(start.elapsed());
        assert_eq!(node_names(&client).await.len(), 3);
        assert_eq!(up.terminate().status.code(), Some(0));
    }
    samples.sort();
    println!(
        "svcplane up ready after: median {:?} (all {samples:?})",
        samples[2]
    );
}

#[tokio::test]
async fn an_invalid_service_gets_the_api_servers_own_422_with_no_webhook_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut up = spawn_up(dir.path(), free_port(), &["--nodes", "1"]);
    let client = up.client().await;
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/invalid-service.yaml"),
    )
    .unwrap();
    let invalid: Service =
        serde_json::from_value(manifests::documents(&text).unwrap().remove(0)).unwrap();
    let services: Api<Service> = Api::default_namespaced(client.clone());
    match services.create(&PostParams::default(), &invalid).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
            assert!(
                status.message.starts_with(
                    "Service \"bad-ports\" is invalid: spec.ports[0].name: Invalid value: \"123_abc\": "
                ),
                "{}",
                status.message
            );
        }
        other => panic!("the invalid Service was not refused: {other:?}"),
    }
    // Admission runs inside the API server: no webhook configuration points at a loopback port.
    let hooks: Api<k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration> =
        Api::all(client.clone());
    assert!(
        hooks
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    // A valid Service is still allocated a ClusterIP.
    let web: Service = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}
    }))
    .unwrap();
    let created = services.create(&PostParams::default(), &web).await.unwrap();
    let spec = created.spec.unwrap();
    assert!(
        spec.cluster_ip
            .as_deref()
            .is_some_and(|ip| ip.starts_with("10.")),
        "{spec:?}"
    );
    assert_eq!(spec.ip_families.unwrap(), ["IPv4"]);
    // The registry's other rules, with kube-apiserver's messages: a Service's load-balancer
    // status, Endpoints ports, EndpointSlice address types.
    let refused = |result: Result<serde_json::Value, kube::Error>| match result {
        Err(kube::Error::Api(status)) if status.code == 422 => status.message,
        other => panic!("not refused with a 422: {other:?}"),
    };
    let status_patch =
        serde_json::json!({"status": {"loadBalancer": {"ingress": [{"ip": "not-an-ip"}]}}});
    let message = refused(
        services
            .patch_status("web", &PatchParams::default(), &Patch::Merge(&status_patch))
            .await
            .map(|s| serde_json::to_value(s).unwrap()),
    );
    assert_eq!(
        message,
        "Service \"web\" is invalid: status.loadBalancer.ingress: Forbidden: may only be used when `spec.type` is 'LoadBalancer'"
    );
    let endpoints: Api<Endpoints> = Api::default_namespaced(client.clone());
    let bad_endpoints = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "manual"},
        "subsets": [{"addresses": [{"ip": "10.1.0.1"}], "ports": [{"port": 99999, "protocol": "FOO"}]}]
    }))
    .unwrap();
    assert_eq!(
        refused(
            endpoints
                .create(&PostParams::default(), &bad_endpoints)
                .await
                .map(|e| serde_json::to_value(e).unwrap())
        ),
        "Endpoints \"manual\" is invalid: [subsets[0].ports[0].port: Invalid value: 99999: must be between 1 and 65535, inclusive, subsets[0].ports[0].protocol: Unsupported value: \"FOO\": supported values: \"SCTP\", \"TCP\", \"UDP\"]"
    );
    let slices: Api<k8s_openapi::api::discovery::v1::EndpointSlice> =
        Api::default_namespaced(client.clone());
    let bad_slice = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "manual-1"}, "addressType": "FOO", "endpoints": []
    }))
    .unwrap();
    assert_eq!(
        refused(
            slices
                .create(&PostParams::default(), &bad_slice)
                .await
                .map(|e| serde_json::to_value(e).unwrap())
        ),
        "EndpointSlice.discovery.k8s.io \"manual-1\" is invalid: addressType: Unsupported value: \"FOO\": supported values: \"FQDN\", \"IPv4\", \"IPv6\""
    );
    assert_eq!(up.terminate().status.code(), Some(0));
}
