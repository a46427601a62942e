//! Object names follow each kind's own rule, as kube-apiserver applies it, and a bad name gets
//! kube-apiserver's 422 `Status` byte for byte: IPAddresses are named by a canonical IP, CRDs by
//! `plural.group`, core v1 Events by any path segment, Services by a DNS-1035 label, the rest
//! (ServiceCIDRs among them) by an RFC 1123 subdomain.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use testenv::TestEnv;

const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1035_LABEL_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";

async fn post(env: &TestEnv, path: &str, body: Value) -> (u16, Value) {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let req = http::Request::builder()
        .method("POST")
        .uri(format!("{}{}", env.url(), path))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    let code = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

const IPADDRESSES: &str = "/apis/networking.k8s.io/v1/ipaddresses";

fn ip_address(name: &str) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "IPAddress",
        "metadata": {"name": name},
        "spec": {"parentRef": {"group": "", "resource": "services", "namespace": "default", "name": "web"}}
    })
}

/// The 422 `Status` kube-apiserver answers for one invalid `metadata.name`.
fn invalid_name(kind: &str, group: &str, name: &str, detail: &str) -> Value {
    let quoted = serde_json::to_string(name).unwrap();
    let group_kind = if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    };
    let mut details = json!({"name": name, "kind": kind, "causes": [{
        "reason": "FieldValueInvalid",
        "message": format!("Invalid value: {quoted}: {detail}"),
        "field": "metadata.name",
    }]});
    if !group.is_empty() {
        details["group"] = json!(group);
    }
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("{group_kind} \"{name}\" is invalid: metadata.name: Invalid value: {quoted}: {detail}"),
        "reason": "Invalid",
        "details": details,
        "code": 422,
    })
}

#[tokio::test]
async fn ipaddress_names_are_canonical_ips() {
    let env = TestEnv::start().await.unwrap();
    for good in ["fd00:10:96::4:f50a", "10.96.0.10", "::", "2001:db8::ffff"] {
        let (code, body) = post(&env, IPADDRESSES, ip_address(good)).await;
        assert_eq!(code, 201, "{good}: {body}");
        assert_eq!(body["metadata"]["name"], good);
    }
    let cases = [
        (
            "fd00:10:96:0::a",
            "must be in canonical form (\"fd00:10:96::a\")",
        ),
        ("FD00::A", "must be in canonical form (\"fd00::a\")"),
        ("0:0:0:0:0:0:0:1", "must be in canonical form (\"::1\")"),
        (
            "web",
            "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
        ),
        (
            "10.96.0.0/16",
            "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
        ),
        (
            "fe80::1%eth0",
            "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
        ),
        ("10.96.0.010", "must not have leading 0s"),
        (
            "::ffff:10.96.0.1",
            "must not be an IPv4-mapped IPv6 address",
        ),
    ];
    for (name, detail) in cases {
        let (code, status) = post(&env, IPADDRESSES, ip_address(name)).await;
        assert_eq!(code, 422, "{name}: {status}");
        assert_eq!(
            status,
            invalid_name("IPAddress", "networking.k8s.io", name, detail),
            "{name}"
        );
    }
}

#[tokio::test]
async fn an_ipaddress_generate_name_is_taken_as_the_name() {
    // IPAddress's strategy generates no suffix: the prefix must already be the IP.
    let env = TestEnv::start().await.unwrap();
    let mut body = ip_address("");
    body["metadata"] = json!({"generateName": "10.96.0.7"});
    let (code, created) = post(&env, IPADDRESSES, body).await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["metadata"]["name"], "10.96.0.7");
}

#[tokio::test]
async fn servicecidr_names_are_rfc1123_subdomains() {
    let env = TestEnv::start().await.unwrap();
    let cidr = |name: &str| {
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "ServiceCIDR", "metadata": {"name": name},
            "spec": {"cidrs": ["10.100.0.0/16"]}})
    };
    let path = "/apis/networking.k8s.io/v1/servicecidrs";
    let (code, body) = post(&env, path, cidr("secondary.range")).await;
    assert_eq!(code, 201, "{body}");
    let (code, status) = post(&env, path, cidr("Secondary")).await;
    assert_eq!(code, 422);
    assert_eq!(
        status,
        invalid_name(
            "ServiceCIDR",
            "networking.k8s.io",
            "Secondary",
            DNS1123_SUBDOMAIN_MSG
        )
    );
}

fn core_event(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": name},
        "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web-0"},
        "reason": "Started", "message": "started", "type": "Normal"})
}

#[tokio::test]
async fn core_event_names_are_path_segments() {
    let env = TestEnv::start().await.unwrap();
    let path = "/api/v1/namespaces/default/events";
    let (code, body) = post(&env, path, core_event("Web_0.17f3a")).await;
    assert_eq!(code, 201, "{body}");
    let (code, status) = post(&env, path, core_event("web%0")).await;
    assert_eq!(code, 422);
    assert_eq!(
        status,
        invalid_name("Event", "", "web%0", "may not contain '%'")
    );
    let (code, status) = post(&env, path, core_event("..")).await;
    assert_eq!(code, 422);
    assert_eq!(status, invalid_name("Event", "", "..", "may not be '..'"));
}

#[tokio::test]
async fn events_k8s_io_event_names_are_rfc1123_subdomains() {
    let env = TestEnv::start().await.unwrap();
    let event = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": "Web_0.17f3a"}, "eventTime": "2025-01-01T00:00:00.000000Z",
        "reportingController": "example.com/controller", "reportingInstance": "controller-0",
        "action": "Started", "reason": "Started", "type": "Normal",
        "regarding": {"kind": "Pod", "namespace": "default", "name": "web-0"}});
    let (code, status) = post(
        &env,
        "/apis/events.k8s.io/v1/namespaces/default/events",
        event,
    )
    .await;
    assert_eq!(code, 422);
    // The registry judges the stored core Event, so the Status names no group (as
    // kube-apiserver's does; the API differential's events-v1-invalid-name compares it).
    assert_eq!(
        status,
        invalid_name("Event", "", "Web_0.17f3a", DNS1123_SUBDOMAIN_MSG)
    );
}

fn crd(name: &str) -> Value {
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": name},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}})
}

#[tokio::test]
async fn crd_names_are_plural_dot_group() {
    let env = TestEnv::start().await.unwrap();
    let path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
    let (code, status) = post(&env, path, crd("widgets")).await;
    assert_eq!(code, 422);
    assert_eq!(
        status,
        invalid_name(
            "CustomResourceDefinition",
            "apiextensions.k8s.io",
            "widgets",
            "must be spec.names.plural+\".\"+spec.group"
        )
    );
    let (code, body) = post(&env, path, crd("widgets.example.com")).await;
    assert_eq!(code, 201, "{body}");
}

#[tokio::test]
async fn generate_name_is_checked_as_a_prefix_before_the_name() {
    let env = TestEnv::start().await.unwrap();
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"generateName": "Web-"},
        "spec": {"ports": [{"port": 80}]}});
    let (code, status) = post(&env, "/api/v1/namespaces/default/services", svc).await;
    assert_eq!(code, 422, "{status}");
    let causes = status["details"]["causes"].as_array().unwrap();
    let fields: Vec<&str> = causes
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["metadata.generateName", "metadata.name"]);
    assert_eq!(
        causes[0]["message"],
        format!("Invalid value: \"Web-\": {DNS1035_LABEL_MSG}")
    );
    let generated = status["details"]["name"].as_str().unwrap();
    assert!(
        generated.starts_with("Web-") && generated.len() == 9,
        "{generated}"
    );
    assert_eq!(
        status["message"],
        format!(
            "Service \"{generated}\" is invalid: [metadata.generateName: Invalid value: \"Web-\": {DNS1035_LABEL_MSG}, metadata.name: Invalid value: \"{generated}\": {DNS1035_LABEL_MSG}]"
        )
    );
}
