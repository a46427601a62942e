//! The offline tools as a user runs them: `svcplane validate` and `svcplane slices` on the
//! example manifests, on standard input and on bad input.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("examples")
}

fn svcplane(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_svcplane"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const NODE_PORT_30007: &str = "apiVersion: v1
kind: Service
metadata: {name: NAME}
spec: {type: NodePort, selector: {app: a}, ports: [{port: 80, nodePort: 30007}]}
";

#[test]
fn validate_says_what_passed_and_names_where_each_refusal_came_from() {
    let playground = examples().join("playground.yaml");
    let out = svcplane(&["validate", "-f", playground.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("playground.yaml (document 5): service/web-nodeport is valid\n"),
        "{stdout}"
    );

    // Two files asking for one nodePort are one set, as `kubectl apply -f a -f b` makes them.
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.yaml"), dir.path().join("b.yaml"));
    std::fs::write(&a, NODE_PORT_30007.replace("NAME", "a")).unwrap();
    std::fs::write(&b, NODE_PORT_30007.replace("NAME", "b")).unwrap();
    let out = svcplane(
        &[
            "validate",
            "-f",
            a.to_str().unwrap(),
            "-f",
            b.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stdout),
        format!(
            "{} (document 1): service/a is valid\n{} (document 1): The Service \"b\" is invalid: spec.ports[0].nodePort: Invalid value: 30007: provided port is already allocated\n",
            a.display(),
            b.display()
        )
    );
}

#[test]
fn validate_reads_standard_input_and_bad_input_is_exit_2_not_a_server_error() {
    let out = svcplane(
        &["validate", "-f", "-"],
        Some(&NODE_PORT_30007.replace("NAME", "web")),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "stdin (document 1): service/web is valid\n"
    );

    let out = svcplane(
        &["validate", "-f", "-"],
        Some("kind: Service\nmetadata: {name: web}\nspec: {ports: [{port: eighty}]}\n"),
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("error: stdin (document 1): cannot decode Service \"web\": "),
        "{stderr}"
    );
    assert!(!stderr.contains("Error from server"), "{stderr}");
}

#[test]
fn slices_stores_services_as_the_apiserver_would_and_says_what_it_assumed() {
    let playground = examples().join("playground.yaml");
    let out = svcplane(&["slices", "-f", playground.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let documents: Vec<serde_json::Value> = serde_saphyr::from_multiple(&stdout).unwrap();
    let web: Vec<&serde_json::Value> = documents
        .iter()
        .filter(|d| d["kind"] == "EndpointSlice")
        .filter(|d| d["metadata"]["labels"]["kubernetes.io/service-name"] == "web")
        .collect();
    // A ClusterIP Service without a clusterIP in the file gets one: one IPv4 slice, not headless.
    assert_eq!(web.len(), 1, "{stdout}");
    assert_eq!(web[0]["addressType"], "IPv4");
    assert!(
        web[0]["metadata"]["labels"]
            .get("service.kubernetes.io/headless")
            .is_none(),
        "{stdout}"
    );
    let headless: Vec<&serde_json::Value> = documents
        .iter()
        .filter(|d| d["metadata"]["labels"]["kubernetes.io/service-name"] == "web-headless")
        .collect();
    assert_eq!(
        headless[0]["metadata"]["labels"]["service.kubernetes.io/headless"],
        ""
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("Warning: default/web: no clusterIP in the file; planned with an IPv4 ClusterIP from 10.96.0.0/12"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "Warning: 3 of 3 pods have no status (no IP, not Ready), so they are no endpoints"
        ),
        "{stderr}"
    );
}
