//! `controllers::offline::plan_files` over YAML and JSON files.

use std::path::PathBuf;

use controllers::endpointslice::MaxEndpointsPerSlice;
use controllers::offline::{OfflineError, plan_files};

fn write(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("svcplane-offline-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("written");
    path
}

fn pod_yaml(name: &str, ip: &str, ready: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: default
  uid: uid-{name}
  labels:
    app: web
spec:
  nodeName: node-1
  containers:
  - name: web
    image: nginx
    ports:
    - name: http
      containerPort: 8080
status:
  phase: Running
  podIP: {ip}
  podIPs:
  - ip: {ip}
  conditions:
  - type: Ready
    status: "{ready}"
"#
    )
}

const SERVICE: &str = r#"apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: default
  uid: uid-web
spec:
  selector:
    app: web
  clusterIP: 10.96.0.10
  ipFamilies: [IPv4]
  ports:
  - name: http
    port: 80
    protocol: TCP
    targetPort: http
"#;

const NODE: &str = r#"apiVersion: v1
kind: Node
metadata:
  name: node-1
  labels:
    topology.kubernetes.io/zone: zone-a
"#;

#[test]
fn multi_document_yaml_and_list_give_slices_and_endpoints() {
    let stream = format!(
        "{SERVICE}---\n{}---\n{NODE}---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ignored\n",
        pod_yaml("web-0", "10.244.1.5", "True")
    );
    let list = format!(
        "{{\"apiVersion\": \"v1\", \"kind\": \"List\", \"items\": [{}, {}]}}",
        serde_json::to_string(
            &serde_saphyr::from_str::<serde_json::Value>(&pod_yaml("web-1", "10.244.1.6", "False"))
                .expect("yaml")
        )
        .expect("json"),
        serde_json::to_string(
            &serde_saphyr::from_str::<serde_json::Value>(&pod_yaml("web-2", "10.244.1.7", "True"))
                .expect("yaml")
        )
        .expect("json"),
    );
    let paths = [write("stream.yaml", &stream), write("pods.json", &list)];
    let output = plan_files(&paths, MaxEndpointsPerSlice::new(2).expect("valid")).expect("planned");

    assert_eq!(output.warnings.len(), 1);
    assert!(
        output.warnings[0]
            .ends_with("stream.yaml: document 4: ignoring unsupported kind ConfigMap"),
        "{:?}",
        output.warnings
    );

    let mut counts: Vec<usize> = output
        .endpoint_slices
        .iter()
        .map(|s| s.endpoints.len())
        .collect();
    counts.sort_unstable();
    assert_eq!(counts, [1, 2], "3 endpoints with at most 2 per slice");
    let mut addresses: Vec<(String, bool, Option<String>)> = output
        .endpoint_slices
        .iter()
        .flat_map(|s| &s.endpoints)
        .map(|e| {
            (
                e.addresses[0].clone(),
                e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(false),
                e.zone.clone(),
            )
        })
        .collect();
    addresses.sort();
    assert_eq!(
        addresses,
        [
            ("10.244.1.5".to_owned(), true, Some("zone-a".to_owned())),
            ("10.244.1.6".to_owned(), false, Some("zone-a".to_owned())),
            ("10.244.1.7".to_owned(), true, Some("zone-a".to_owned())),
        ]
    );
    for slice in &output.endpoint_slices {
        assert_eq!(slice.metadata.generate_name.as_deref(), Some("web-"));
        assert_eq!(slice.ports.as_ref().map(|p| p[0].port), Some(Some(8080)));
    }

    assert_eq!(output.endpoints.len(), 1);
    let subsets = output.endpoints[0].subsets.clone().unwrap_or_default();
    assert_eq!(subsets.len(), 1);
    let ips: Vec<&str> = subsets[0]
        .addresses
        .iter()
        .flatten()
        .map(|a| a.ip.as_str())
        .collect();
    let not_ready: Vec<&str> = subsets[0]
        .not_ready_addresses
        .iter()
        .flatten()
        .map(|a| a.ip.as_str())
        .collect();
    assert_eq!(ips, ["10.244.1.5", "10.244.1.7"]);
    assert_eq!(not_ready, ["10.244.1.6"]);

    let yaml = output.to_yaml().expect("yaml");
    assert_eq!(yaml.matches("kind: EndpointSlice").count(), 2);
    assert_eq!(yaml.matches("kind: Endpoints\n").count(), 1);
    let json: serde_json::Value =
        serde_json::from_str(&output.to_json().expect("json")).expect("valid JSON");
    assert_eq!(json["kind"], "List");
    assert_eq!(json["items"].as_array().map(Vec::len), Some(3));
    assert_eq!(json["items"][0]["apiVersion"], "discovery.k8s.io/v1");
}

#[test]
fn malformed_document_names_file_and_document() {
    let text = format!("{SERVICE}---\napiVersion: v1\nkind: Pod\nmetadata: [not, a, map]\n");
    let path = write("bad.yaml", &text);
    let err = plan_files(&[&path], MaxEndpointsPerSlice::default()).expect_err("malformed");
    match &err {
        OfflineError::Malformed {
            path: p, document, ..
        } => {
            assert!(p.ends_with("bad.yaml"));
            assert_eq!(*document, 2);
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert!(
        err.to_string().contains("bad.yaml: document 2: Pod: "),
        "{err}"
    );

    let missing_kind = write("nokind.yaml", "apiVersion: v1\nmetadata:\n  name: x\n");
    let err = plan_files(&[&missing_kind], MaxEndpointsPerSlice::default()).expect_err("no kind");
    assert!(
        err.to_string()
            .ends_with("nokind.yaml: document 1: object has no kind"),
        "{err}"
    );
}

#[test]
fn selector_less_service_with_endpoints_is_mirrored() {
    let text = r#"apiVersion: v1
kind: Service
metadata: {name: external, namespace: default, uid: uid-ext}
spec:
  clusterIP: 10.96.0.30
  ipFamilies: [IPv4]
  ports: [{name: db, port: 5432, protocol: TCP}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: external, namespace: default, uid: uid-ep}
subsets:
- addresses: [{ip: 192.0.2.10}, {ip: not-an-ip}]
  ports: [{name: db, port: 5432, protocol: TCP}]
"#;
    let output = plan_files(
        &[write("mirror.yaml", text)],
        MaxEndpointsPerSlice::default(),
    )
    .expect("planned");
    assert_eq!(output.endpoint_slices.len(), 1);
    let slice = &output.endpoint_slices[0];
    assert_eq!(slice.endpoints.len(), 1, "the invalid IP is dropped");
    assert_eq!(slice.endpoints[0].addresses, ["192.0.2.10"]);
    assert!(
        output.endpoints.is_empty(),
        "the Endpoints controller leaves selector-less Services alone"
    );
    assert_eq!(output.warnings.len(), 1, "{:?}", output.warnings);
    assert!(
        output.warnings[0].starts_with("default/external: InvalidIPAddress: "),
        "{:?}",
        output.warnings
    );
}
