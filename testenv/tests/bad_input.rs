//! Bad input gets kube-apiserver's error answers and never corrupts the store.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use testenv::TestEnv;

async fn send(
    env: &TestEnv,
    method: &str,
    path: &str,
    content_type: &str,
    body: impl Into<Bytes>,
) -> (u16, Value) {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let req = http::Request::builder()
        .method(method)
        .uri(format!("{}{}", env.url(), path))
        .header("content-type", content_type)
        .body(Full::new(body.into()))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    let code = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test]
async fn malformed_json_is_a_400_status() {
    let env = TestEnv::start().await.unwrap();
    let (code, status) = send(
        &env,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        "application/json",
        "{not json",
    )
    .await;
    assert_eq!(code, 400);
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "BadRequest");
    assert_eq!(status["code"], 400);
}

#[tokio::test]
async fn unsupported_patch_type_is_415() {
    let env = TestEnv::start().await.unwrap();
    let (code, _) = send(
        &env,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        "application/json",
        r#"{"metadata":{"name":"a"}}"#,
    )
    .await;
    assert_eq!(code, 201);
    let (code, status) = send(
        &env,
        "PATCH",
        "/api/v1/namespaces/default/configmaps/a",
        "text/plain",
        "{}",
    )
    .await;
    assert_eq!(code, 415);
    assert_eq!(status["reason"], "UnsupportedMediaType");
}

#[tokio::test]
async fn body_over_3_mib_is_413() {
    let env = TestEnv::start().await.unwrap();
    let big = json!({"metadata": {"name": "big"}, "data": {"k": "x".repeat(3 * 1024 * 1024 + 1)}})
        .to_string();
    let (code, status) = send(
        &env,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        "application/json",
        big,
    )
    .await;
    assert_eq!(code, 413);
    assert_eq!(status["reason"], "RequestEntityTooLarge");
    let (code, _) = send(
        &env,
        "GET",
        "/api/v1/namespaces/default/configmaps/big",
        "application/json",
        "",
    )
    .await;
    assert_eq!(code, 404, "nothing was stored");
}

#[tokio::test]
async fn invalid_names_are_422_with_upstream_messages() {
    let env = TestEnv::start().await.unwrap();
    let (code, status) = send(
        &env,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        "application/json",
        r#"{"metadata":{"name":"Bad_Name"}}"#,
    )
    .await;
    assert_eq!(code, 422);
    assert_eq!(status["reason"], "Invalid");
    assert_eq!(
        status["message"],
        "ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
    );
    assert_eq!(status["details"]["causes"][0]["field"], "metadata.name");
    let (code, status) = send(
        &env,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        "application/json",
        r#"{"metadata":{}}"#,
    )
    .await;
    assert_eq!(code, 422);
    assert_eq!(
        status["details"]["causes"][0]["message"],
        "Required value: name or generateName is required"
    );
}

#[tokio::test]
async fn unknown_resources_and_namespaces_are_404() {
    let env = TestEnv::start().await.unwrap();
    let (code, status) = send(
        &env,
        "GET",
        "/api/v1/namespaces/default/widgets",
        "application/json",
        "",
    )
    .await;
    assert_eq!(code, 404);
    assert_eq!(status["reason"], "NotFound");
    let (code, _) = send(
        &env,
        "GET",
        "/apis/example.com/v1/widgets",
        "application/json",
        "",
    )
    .await;
    assert_eq!(code, 404);
    let (code, status) = send(
        &env,
        "POST",
        "/api/v1/namespaces/nope/configmaps",
        "application/json",
        r#"{"metadata":{"name":"a"}}"#,
    )
    .await;
    assert_eq!(code, 404);
    assert_eq!(status["message"], "namespaces \"nope\" not found");
}

#[tokio::test]
async fn wrong_kind_and_mismatched_namespace_are_400() {
    let env = TestEnv::start().await.unwrap();
    let (code, _) = send(
        &env,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        "application/json",
        r#"{"kind":"Secret","apiVersion":"v1","metadata":{"name":"a"}}"#,
    )
    .await;
    assert_eq!(code, 400);
    let (code, status) = send(
        &env,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        "application/json",
        r#"{"metadata":{"name":"a","namespace":"kube-system"}}"#,
    )
    .await;
    assert_eq!(code, 400);
    assert_eq!(
        status["message"],
        "the namespace of the provided object does not match the namespace sent on the request"
    );
    let (code, _) = send(
        &env,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        "application/json",
        "[1,2]",
    )
    .await;
    assert_eq!(code, 400);
}

#[tokio::test]
async fn injected_faults_answer_with_their_code_and_retry_after() {
    let env = TestEnv::start().await.unwrap();
    env.faults().fail(
        testenv::FaultMatch {
            verb: Some("create".into()),
            resource: Some("configmaps".into()),
            ..Default::default()
        },
        429,
        Some(1),
    );
    let (code, status) = send(
        &env,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        "application/json",
        r#"{"metadata":{"name":"a"}}"#,
    )
    .await;
    assert_eq!(code, 429);
    assert_eq!(status["reason"], "TooManyRequests");
    let (code, _) = send(
        &env,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        "application/json",
        r#"{"metadata":{"name":"a"}}"#,
    )
    .await;
    assert_eq!(code, 201, "the fault was used up");
}

#[tokio::test]
async fn messages_quote_values_as_go_does_never_as_rust_debug() {
    let env = TestEnv::start().await.unwrap();
    let (code, _) = send(
        &env,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        "application/json",
        r#"{"metadata":{"name":"a"}}"#,
    )
    .await;
    assert_eq!(code, 201);
    // kube-apiserver's routing (go-restful) refuses a content type no PATCH route consumes, in its
    // own words (no Rust-quoted echo of the type); the fidelity corpus checks it against upstream.
    let (code, status) = send(
        &env,
        "PATCH",
        "/api/v1/namespaces/default/configmaps/a",
        "text/plain",
        "{}",
    )
    .await;
    assert_eq!(code, 415);
    assert_eq!(status["message"], "415: Unsupported Media Type");
    // A control character in a value is quoted as Go's %q writes it (\x01), not as Rust's
    // Debug does (\u{1}).
    let (code, status) = send(
        &env,
        "GET",
        "/api/v1/namespaces/default/configmaps?labelSelector=%01%3Db",
        "application/json",
        "",
    )
    .await;
    assert_eq!(code, 400);
    let message = status["message"].as_str().unwrap();
    assert!(message.contains(r#""\x01""#), "{message}");
    assert!(!message.contains("\\u{"), "{message}");
}

#[tokio::test]
async fn a_patched_object_that_does_not_decode_is_a_422_on_the_patch() {
    let env = TestEnv::start().await.unwrap();
    let (code, _) = send(
        &env,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        "application/json",
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"},"data":{"k":"v"}}"#,
    )
    .await;
    assert_eq!(code, 201);
    let path = "/api/v1/namespaces/default/configmaps/c";

    // Unknown field under Strict: the result quoted as evanphx/json-patch writes it (top level
    // sorted, metadata in Go's struct order).
    let (code, status) = send(
        &env,
        "PATCH",
        &format!("{path}?fieldValidation=Strict"),
        "application/merge-patch+json",
        r#"{"extra":1}"#,
    )
    .await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(status["reason"], "Invalid");
    let message = status["message"].as_str().unwrap();
    assert!(
        message.starts_with(r#" "" is invalid: patch: Invalid value: "{\"apiVersion\":\"v1\",\"data\":{\"k\":\"v\"},\"extra\":1,\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"c\",\"namespace\":\"default\",\"uid\":"#),
        "{message}"
    );
    assert!(
        message.ends_with(r#": strict decoding error: unknown field "extra""#),
        "{message}"
    );
    assert_eq!(status["details"]["causes"][0]["field"], "patch");
    assert!(status["details"].get("name").is_none());

    // A value of the wrong type, whatever the field validation: json's own words.
    let (code, status) = send(
        &env,
        "PATCH",
        path,
        "application/merge-patch+json",
        r#"{"metadata":{"labels":{"x":true}}}"#,
    )
    .await;
    assert_eq!(code, 422, "{status}");
    assert!(
        status["message"].as_str().unwrap().ends_with(
            ": json: cannot unmarshal bool into Go struct field ObjectMeta.metadata.labels of type string"
        ),
        "{status}"
    );

    // A strategic merge patch is quoted as Go prints the patch map.
    let (code, status) = send(
        &env,
        "PATCH",
        &format!("{path}?fieldValidation=Strict"),
        "application/strategic-merge-patch+json",
        r#"{"extra":1,"data":{"k":"w"}}"#,
    )
    .await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(
        status["message"],
        r#" "" is invalid: patch: Invalid value: "map[data:map[k:w] extra:1]": strict decoding error: unknown field "extra""#
    );

    // Nothing was stored.
    let (_, stored) = send(&env, "GET", path, "application/json", "").await;
    assert_eq!(stored["data"], json!({"k": "v"}));
    assert!(stored.get("extra").is_none());
}

#[tokio::test]
async fn custom_resource_lists_carry_an_empty_continue() {
    let env = TestEnv::start().await.unwrap();
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object",
                    "x-kubernetes-preserve-unknown-fields": true}}}]}});
    let (code, _) = send(
        &env,
        "POST",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        "application/json",
        crd.to_string(),
    )
    .await;
    assert_eq!(code, 201);
    let path = "/apis/example.com/v1/namespaces/default/widgets";
    let mut listed = Value::Null;
    for _ in 0..50 {
        let (code, body) = send(&env, "GET", path, "application/json", "").await;
        if code == 200 {
            listed = body;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(listed["metadata"]["continue"], "", "{listed}");
    let keys: Vec<&String> = listed["metadata"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["continue", "resourceVersion"]);
    // Built-in lists leave it out.
    let (_, configmaps) = send(
        &env,
        "GET",
        "/api/v1/namespaces/default/configmaps",
        "application/json",
        "",
    )
    .await;
    assert!(configmaps["metadata"].get("continue").is_none());
}

#[tokio::test]
async fn custom_resources_are_pruned_to_their_schema_with_warnings() {
    let env = TestEnv::start().await.unwrap();
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget", "listKind": "GadgetList"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {"size": {"type": "integer"}}}}}}}]}});
    let (code, _) = send(
        &env,
        "POST",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        "application/json",
        crd.to_string(),
    )
    .await;
    assert_eq!(code, 201);
    let path = "/apis/example.com/v1/namespaces/default/gadgets";
    let body = |name: &str| {
        json!({"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": name},
            "spec": {"size": 1, "extra": "x"}})
        .to_string()
    };
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut answer = None;
    for _ in 0..50 {
        let req = http::Request::post(format!("{}{path}", env.url()))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body("g1"))))
            .unwrap();
        let resp = client.request(req).await.unwrap();
        if resp.status() != 404 {
            answer = Some(resp);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let resp = answer.expect("the CRD's resource is served");
    assert_eq!(resp.status(), 201);
    let warning = resp.headers()["warning"].to_str().unwrap().to_string();
    assert_eq!(warning, r#"299 - "unknown field \"spec.extra\"""#);
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let created: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(created["spec"], json!({"size": 1}));

    let (code, status) = send(
        &env,
        "POST",
        &format!("{path}?fieldValidation=Strict"),
        "application/json",
        body("g2"),
    )
    .await;
    assert_eq!(code, 400, "{status}");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .ends_with(r#"strict decoding error: unknown field "spec.extra""#),
        "{status}"
    );

    // A value of another type than the schema's: apiextensions-apiserver's 422.
    let wrong = json!({"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g3"},
        "spec": {"size": "big"}});
    let (code, status) = send(&env, "POST", path, "application/json", wrong.to_string()).await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(
        status["message"],
        r#"Gadget.example.com "g3" is invalid: spec.size: Invalid value: "string": spec.size in body must be of type integer: "string""#
    );
    assert_eq!(
        status["details"]["causes"][0]["reason"],
        "FieldValueTypeInvalid"
    );
}
