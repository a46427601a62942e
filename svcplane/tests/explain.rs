//! `svcplane explain service` as a user runs it: offline on manifests (`-f`), and against a
//! live API server (testenv and the real kube-apiserver) through a kubeconfig.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use svcplane_tests::backend::Backend;
use svcplane_tests::fixtures::{kubelet_status, pod, service};
use svcplane_tests::{BackendKind, Harness, HarnessOptions, on_both_backends};

fn svcplane(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_svcplane"))
        .args(args)
        .output()
        .expect("svcplane runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const SHOP: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  clusterIP: 10.96.0.10
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Pod
metadata: {name: web-1, labels: {app: web}}
spec:
  nodeName: node-a
  containers: [{name: app, image: app, ports: [{name: http, containerPort: 8080}]}]
status:
  phase: Running
  podIP: 10.244.0.5
  podIPs: [{ip: 10.244.0.5}]
  conditions: [{type: Ready, status: "False", reason: ContainersNotReady, message: "containers with unready status: [app]"}]
---
apiVersion: v1
kind: Pod
metadata: {name: api-1, labels: {app: api}}
spec: {containers: [{name: app, image: app}]}
---
apiVersion: v1
kind: Service
metadata: {name: lonely}
spec:
  clusterIP: 10.96.0.11
  selector: {app: webb}
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: kubernetes, namespace: default}
spec:
  clusterIP: 10.96.0.1
  ports: [{name: https, port: 443}]
"#;

fn shop_file(dir: &Path) -> PathBuf {
    let path = dir.join("shop.yaml");
    std::fs::write(&path, SHOP).expect("write manifests");
    path
}

#[test]
fn offline_explains_a_not_ready_pod_in_words_and_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = shop_file(dir.path());
    let file = file.to_str().expect("utf-8 path");
    let out = svcplane(&["explain", "service", "web", "-n", "shop", "-f", file]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("Service:    shop/web\n"), "{stdout}");
    assert!(
        stdout.contains(
            "      Ready=False: ContainersNotReady: containers with unready status: [app]\n"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("      targetPort http (http 80/TCP) -> 8080\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  KUBERNETES_SERVICE_HOST=10.96.0.1\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  WEB_PORT=tcp://10.96.0.10:80\n"),
        "{stdout}"
    );
    assert!(
        stdout.ends_with(
            "Verdict: no ready endpoints\n  - 1 matching pod(s) are not ready, so they are no ready endpoints: web-1\n"
        ),
        "{stdout}"
    );

    let out = svcplane(&[
        "explain", "service", "lonely", "-n", "shop", "-f", file, "-o", "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let json: Value = serde_json::from_slice(&out.stdout).expect("JSON output");
    let finding = &json["verdict"]["findings"][0];
    assert_eq!(finding["reason"], "NoPodMatches");
    assert_eq!(finding["nearest"]["pod"], "web-1");
    assert_eq!(
        finding["nearest"]["mismatches"],
        json!([{"key": "app", "want": "webb", "have": "web"}])
    );
}

#[test]
fn offline_unknown_service_and_bad_flags() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = shop_file(dir.path());
    let file = file.to_str().expect("utf-8 path");
    let out = svcplane(&["explain", "service", "nope", "-n", "shop", "-f", file]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr), "svcplane: services \"nope\" not found\n");
    assert!(out.stdout.is_empty());

    // The Service is in `shop`; without -n the files' unnamespaced objects are in `default`.
    let out = svcplane(&["explain", "service", "web", "-f", file]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("Service:    default/web\n"));

    let out = svcplane(&["explain", "service", "web", "-f", file, "-o", "yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("invalid value 'yaml' for '--output <OUTPUT>'"),
        "{}",
        text(&out.stderr)
    );
    let out = svcplane(&[
        "explain",
        "service",
        "web",
        "-f",
        file,
        "--kubeconfig",
        file,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("cannot be used with"),
        "{}",
        text(&out.stderr)
    );
    let out = svcplane(&["explain", "service"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("<NAME>"),
        "{}",
        text(&out.stderr)
    );
    let out = svcplane(&["explain", "pod", "x"]);
    assert_eq!(out.status.code(), Some(2));
    let missing = dir.path().join("missing.yaml");
    let out = svcplane(&[
        "explain",
        "service",
        "web",
        "-f",
        missing.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).starts_with("svcplane: "),
        "{}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stderr).contains("missing.yaml"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn offline_without_the_master_service_says_what_the_environment_lacks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("db.yaml");
    std::fs::write(
        &file,
        "apiVersion: v1\nkind: Service\nmetadata: {name: db}\nspec: {clusterIP: 10.96.0.20, ports: [{port: 5432}]}\n",
    )
    .expect("write manifests");
    let out = svcplane(&[
        "explain",
        "service",
        "db",
        "-f",
        file.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stderr),
        "Warning: the files hold no Service default/kubernetes, so the environment leaves out the KUBERNETES_* variables every pod gets\n"
    );
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("  DB_PORT_5432_TCP=tcp://10.96.0.20:5432\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  - the Service has no selector"),
        "{stdout}"
    );
}

/// Runs the CLI off the async runtime (the API server under test may share it).
async fn explain_live(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        svcplane(&args)
    })
    .await
    .expect("the CLI ran")
}

async fn explain_cli_against_a_live_server(kind: BackendKind) {
    let Some(harness) = Harness::start(kind, HarnessOptions::default()).await else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = match &harness.backend {
        Backend::Testenv(env) => {
            let path = dir.path().join("kubeconfig");
            env.write_kubeconfig(&path).expect("kubeconfig");
            path
        }
        Backend::Real(cluster) => cluster.kubeconfig_path().to_owned(),
    };
    let kubeconfig = kubeconfig.to_str().expect("utf-8 path").to_owned();
    let args = |extra: &[&str]| -> Vec<String> {
        ["explain", "service", "web", "--kubeconfig", &kubeconfig]
            .iter()
            .chain(extra)
            .map(|s| (*s).to_owned())
            .collect()
    };

    let out = explain_live(args(&[])).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert_eq!(text(&out.stderr), "svcplane: services \"web\" not found\n");

    harness
        .create_service(service("web", "web", json!("http")))
        .await;
    let node: Node =
        serde_json::from_value(json!({"metadata": {"name": "node-a"}})).expect("node JSON");
    Api::<Node>::all(harness.client.clone())
        .create(&PostParams::default(), &node)
        .await
        .expect("node created");
    let mut web_1 = pod("web-1", "web");
    web_1["spec"]["nodeName"] = json!("node-a");
    harness.create_pods(vec![web_1]).await;
    harness
        .pods()
        .patch_status(
            "web-1",
            &PatchParams::default(),
            &Patch::Merge(kubelet_status("192.0.2.1", "10.244.0.5", true)),
        )
        .await
        .expect("pod status");

    // No EndpointSlice controller runs here: the pod is ready, the slices lag.
    let out = explain_live(args(&["-n", "default", "-o", "json"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let json: Value = serde_json::from_slice(&out.stdout).expect("JSON output");
    assert_eq!(json["pods"][0]["name"], "web-1");
    assert_eq!(json["pods"][0]["ready"], true);
    assert_eq!(
        json["pods"][0]["namedTargetPorts"][0]["containerPort"],
        8080
    );
    assert_eq!(json["verdict"]["findings"][0]["reason"], "SlicesBehind");
    let variables: Vec<String> = json["environment"]["variables"]
        .as_array()
        .expect("variables")
        .iter()
        .map(|v| {
            format!(
                "{}={}",
                v["name"].as_str().unwrap_or(""),
                v["value"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert!(
        variables.contains(&"WEB_SERVICE_HOST=10.96.0.10".to_owned()),
        "{variables:?}"
    );
    if kind == BackendKind::Real {
        // kube-apiserver makes `default/kubernetes` itself; testenv has no service registry.
        assert!(
            variables
                .iter()
                .any(|v| v.starts_with("KUBERNETES_SERVICE_HOST=")),
            "{variables:?}"
        );
    }

    let slice: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"name": "web-manual", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [{"addresses": ["10.244.0.5"], "conditions": {"ready": true},
                       "targetRef": {"kind": "Pod", "namespace": "default", "name": "web-1"}}],
    }))
    .expect("slice JSON");
    Api::<EndpointSlice>::namespaced(harness.client.clone(), "default")
        .create(&PostParams::default(), &slice)
        .await
        .expect("slice created");
    let out = explain_live(args(&[])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("  web-manual (IPv4; http 8080/TCP; managed by <unset>)\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("    10.244.0.5  ready  pod web-1\n"),
        "{stdout}"
    );
    assert!(
        stdout.ends_with("Verdict: 1 ready endpoint(s); nothing stands in the way\n"),
        "{stdout}"
    );
}

on_both_backends!(explain_cli_against_a_live_server);
