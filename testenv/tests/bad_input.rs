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
