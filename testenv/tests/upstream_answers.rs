//! Answers the API differential (`tests/fidelity/`) found different from kube-apiserver 1.34's,
//! pinned here as upstream gives them: one test per fix.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use testenv::TestEnv;

/// The code, the `Warning` texts and the JSON body of one request.
async fn send(
    env: &TestEnv,
    method: &str,
    path: &str,
    content_type: &str,
    body: impl Into<Bytes>,
) -> (u16, Vec<String>, Value) {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let req = http::Request::builder()
        .method(method)
        .uri(format!("{}{}", env.url(), path))
        .header("content-type", content_type)
        .body(Full::new(body.into()))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    let code = resp.status().as_u16();
    let warnings = resp
        .headers()
        .get_all("warning")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        code,
        warnings,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

const SVCS: &str = "/api/v1/namespaces/default/services";
const CMS: &str = "/api/v1/namespaces/default/configmaps";

fn service(spec: Value) -> String {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": spec})
        .to_string()
}

#[tokio::test]
async fn unknown_fields_are_dropped_warned_or_rejected() {
    let env = TestEnv::start().await.unwrap();
    let body = service(json!({"ports": [{"port": 80}], "portz": [1]}));
    let strict = format!("{SVCS}?fieldValidation=Strict");
    let (code, _, status) = send(&env, "POST", &strict, "application/json", body.clone()).await;
    assert_eq!(code, 400);
    assert_eq!(
        status["message"],
        "Service in version \"v1\" cannot be handled as a Service: strict decoding error: unknown field \"spec.portz\""
    );
    let (code, warnings, svc) = send(&env, "POST", SVCS, "application/json", body).await;
    assert_eq!(code, 201);
    assert_eq!(warnings, ["299 - \"unknown field \\\"spec.portz\\\"\""]);
    assert!(svc["spec"].get("portz").is_none(), "{svc}");
    let (_, _, got) = send(&env, "GET", &format!("{SVCS}/web"), "", "").await;
    assert!(got["spec"].get("portz").is_none(), "{got}");
}

#[tokio::test]
async fn duplicate_keys_fail_strict_decoding() {
    let env = TestEnv::start().await.unwrap();
    let body = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"},"data":{"k":"v","k":"w"}}"#;
    let (code, _, status) = send(
        &env,
        "POST",
        &format!("{CMS}?fieldValidation=Strict"),
        "application/json",
        body,
    )
    .await;
    assert_eq!(code, 400);
    assert_eq!(
        status["message"],
        "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: strict decoding error: duplicate field \"data.k\""
    );
}

#[tokio::test]
async fn a_wrong_type_is_go_s_unmarshal_error() {
    let env = TestEnv::start().await.unwrap();
    let body = service(json!({"ports": [{"port": "eighty"}]}));
    let (code, _, status) = send(&env, "POST", SVCS, "application/json", body).await;
    assert_eq!(code, 400);
    assert_eq!(
        status["message"],
        "Service in version \"v1\" cannot be handled as a Service: json: cannot unmarshal string into Go struct field ServicePort.spec.ports.port of type int32"
    );
}

#[tokio::test]
async fn unsupported_field_selectors_and_bad_label_selectors_are_400() {
    let env = TestEnv::start().await.unwrap();
    for (path, message) in [
        (
            format!("{CMS}?fieldSelector=bogus%3D1"),
            "\"bogus\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\"",
        ),
        (
            "/apis/discovery.k8s.io/v1/endpointslices?fieldSelector=addressType%3DIPv4".into(),
            "\"addressType\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\"",
        ),
        (
            format!("{SVCS}?fieldSelector=spec.ports%3D1"),
            "field label not supported: spec.ports",
        ),
        (
            format!("{CMS}?labelSelector=a%3D%3Db%3D%3Dc"),
            "found '==', expected: ',' or 'end of string'",
        ),
        (
            format!("{CMS}?labelSelector=app%3Dwe%20b"),
            "found 'b', expected: ',' or 'end of string'",
        ),
    ] {
        let (code, _, status) = send(&env, "GET", &path, "", "").await;
        assert_eq!(
            (code, status["message"].as_str()),
            (400, Some(message)),
            "{path}"
        );
    }
    // `gt` takes an integer and selects by it.
    send(
        &env,
        "POST",
        CMS,
        "application/json",
        r#"{"metadata":{"name":"c","labels":{"tier":"3"}}}"#,
    )
    .await;
    let (code, _, list) = send(
        &env,
        "GET",
        &format!("{CMS}?labelSelector=tier%3E2"),
        "",
        "",
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn empty_maps_and_lists_are_omitted_and_services_have_a_status() {
    let env = TestEnv::start().await.unwrap();
    let (_, _, cm) = send(
        &env,
        "POST",
        CMS,
        "application/json",
        r#"{"metadata":{"name":"c","labels":{},"annotations":{}},"data":{},"binaryData":null}"#,
    )
    .await;
    assert_eq!(cm["metadata"].get("labels"), None, "{cm}");
    assert_eq!(cm.get("data"), None, "{cm}");
    assert_eq!(cm.get("binaryData"), None, "{cm}");
    let (_, _, svc) = send(
        &env,
        "POST",
        SVCS,
        "application/json",
        service(json!({"selector": {}, "ports": [{"port": 80}]})),
    )
    .await;
    assert_eq!(svc["status"], json!({"loadBalancer": {}}));
    assert_eq!(svc["spec"].get("selector"), None, "{svc}");
}

#[tokio::test]
async fn paged_lists_say_how_many_items_remain() {
    let env = TestEnv::start().await.unwrap();
    for name in ["a", "b", "c"] {
        let body = format!(r#"{{"metadata":{{"name":"{name}"}}}}"#);
        send(&env, "POST", CMS, "application/json", body).await;
    }
    let (_, _, page) = send(&env, "GET", &format!("{CMS}?limit=2"), "", "").await;
    assert_eq!(page["metadata"]["remainingItemCount"], 1);
    // Built-in lists carry their items without apiVersion and kind.
    assert_eq!(page["items"][0].get("kind"), None);
}

#[tokio::test]
async fn text_plain_is_415() {
    let env = TestEnv::start().await.unwrap();
    let (code, _, status) = send(
        &env,
        "POST",
        CMS,
        "text/plain",
        r#"{"metadata":{"name":"c"}}"#,
    )
    .await;
    assert_eq!(code, 415);
    assert_eq!(status["reason"], "UnsupportedMediaType");
}

#[tokio::test]
async fn warnings_as_kube_apiserver_sends_them() {
    let env = TestEnv::start().await.unwrap();
    let (_, warnings, _) = send(&env, "GET", "/api/v1/namespaces/default/endpoints", "", "").await;
    assert_eq!(
        warnings,
        ["299 - \"v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice\""]
    );
    let body = service(json!({"externalName": "example.com", "ports": [{"port": 80}]}));
    let (_, warnings, _) = send(&env, "POST", SVCS, "application/json", body).await;
    assert_eq!(
        warnings,
        ["299 - \"spec.externalName is ignored when spec.type is not \\\"ExternalName\\\"\""]
    );
}

#[tokio::test]
async fn delete_answers_a_status_and_options_are_validated() {
    let env = TestEnv::start().await.unwrap();
    send(
        &env,
        "POST",
        CMS,
        "application/json",
        r#"{"metadata":{"name":"c"}}"#,
    )
    .await;
    let (code, _, status) = send(&env, "DELETE", &format!("{CMS}/c"), "", "").await;
    assert_eq!(code, 200);
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["status"], "Success");
    assert_eq!(status["details"]["kind"], "configmaps");
    let (code, _, status) = send(
        &env,
        "POST",
        &format!("{CMS}?dryRun=Some"),
        "application/json",
        r#"{"metadata":{"name":"d"}}"#,
    )
    .await;
    assert_eq!(code, 422);
    assert_eq!(
        status["message"],
        "CreateOptions.meta.k8s.io \"\" is invalid: dryRun: Unsupported value: [\"Some\"]: supported values: \"All\""
    );
    let (code, _, status) = send(
        &env,
        "GET",
        &format!("{CMS}?resourceVersionMatch=Exact"),
        "",
        "",
    )
    .await;
    assert_eq!(code, 422);
    assert_eq!(
        status["message"],
        "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided"
    );
}

#[tokio::test]
async fn namespaces_carry_their_name_label_and_managers_default_to_unknown() {
    let env = TestEnv::start().await.unwrap();
    let (_, _, ns) = send(
        &env,
        "POST",
        "/api/v1/namespaces",
        "application/json",
        r#"{"metadata":{"name":"team-a"}}"#,
    )
    .await;
    assert_eq!(
        ns["metadata"]["labels"]["kubernetes.io/metadata.name"],
        "team-a"
    );
    assert_eq!(ns["metadata"]["managedFields"][0]["manager"], "unknown");
}

#[tokio::test]
async fn paths_outside_the_api_get_go_s_plain_404() {
    let env = TestEnv::start().await.unwrap();
    for path in ["/nope", "/apis/nope.example.com/v1"] {
        let (code, _, body) = send(&env, "GET", path, "", "").await;
        // Not JSON: Go's "404 page not found".
        assert_eq!((code, body), (404, Value::Null), "{path}");
    }
    let (code, _, status) = send(&env, "GET", "/api/v1/namespaces/default/widgets", "", "").await;
    assert_eq!((code, status["kind"].as_str()), (404, Some("Status")));
}

#[tokio::test]
async fn discovery_carries_storage_version_hashes_and_namespace_verbs() {
    let env = TestEnv::start().await.unwrap();
    let (_, _, list) = send(&env, "GET", "/api/v1", "", "").await;
    let resource = |name: &str| {
        list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .cloned()
            .unwrap()
    };
    // kube-apiserver 1.34's own values.
    assert_eq!(resource("configmaps")["storageVersionHash"], "qFsyl6wFWjQ=");
    assert_eq!(resource("events")["storageVersionHash"], "r2yiGXH7wu8=");
    assert_eq!(
        resource("namespaces")["verbs"],
        json!([
            "create", "delete", "get", "list", "patch", "update", "watch"
        ])
    );
    assert_eq!(resource("namespaces/finalize")["verbs"], json!(["update"]));
    assert_eq!(list.get("apiVersion"), None);
    let (_, _, events) = send(&env, "GET", "/apis/events.k8s.io/v1", "", "").await;
    assert_eq!(events["resources"][0]["storageVersionHash"], "r2yiGXH7wu8=");
}

#[tokio::test]
async fn secrets_fold_string_data_into_data_and_default_to_opaque() {
    let env = TestEnv::start().await.unwrap();
    let (_, _, secret) = send(
        &env,
        "POST",
        "/api/v1/namespaces/default/secrets",
        "application/json",
        r#"{"metadata":{"name":"s"},"stringData":{"k":"v"}}"#,
    )
    .await;
    assert_eq!(secret["data"], json!({"k": "dg=="}));
    assert_eq!(secret.get("stringData"), None);
    assert_eq!(secret["type"], "Opaque");
    let (_, _, list) = send(
        &env,
        "GET",
        "/api/v1/namespaces/default/secrets?fieldSelector=type%3DOpaque",
        "",
        "",
    )
    .await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
}

/// `/metrics` serves `apiserver_request_total` with kube-apiserver's labels, so a harness that
/// counts a controller's requests reads testenv as it reads kube-apiserver.
#[tokio::test]
async fn metrics_count_requests_as_kube_apiserver_labels_them() {
    let env = TestEnv::start().await.unwrap();
    let cm = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"}}"#;
    let (code, _, _) = send(
        &env,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        "application/json",
        cm,
    )
    .await;
    assert_eq!(code, 201);
    let (code, _, _) = send(
        &env,
        "POST",
        "/api/v1/namespaces/default/configmaps?dryRun=All",
        "application/json",
        cm.replace("\"a\"", "\"b\""),
    )
    .await;
    assert_eq!(code, 201);
    send(
        &env,
        "GET",
        "/api/v1/namespaces/default/configmaps/a",
        "",
        "",
    )
    .await;
    send(
        &env,
        "GET",
        "/api/v1/namespaces/default/configmaps/missing",
        "",
        "",
    )
    .await;
    send(&env, "GET", "/api/v1/configmaps", "", "").await;

    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let resp = client
        .get(format!("{}/metrics", env.url()).parse().unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    for line in [
        r#"apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="configmaps",scope="namespace",subresource="",verb="POST",version="v1"} 1"#,
        r#"apiserver_request_total{code="201",component="apiserver",dry_run="All",group="",resource="configmaps",scope="namespace",subresource="",verb="POST",version="v1"} 1"#,
        r#"apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="configmaps",scope="resource",subresource="",verb="GET",version="v1"} 1"#,
        r#"apiserver_request_total{code="404",component="apiserver",dry_run="",group="",resource="configmaps",scope="resource",subresource="",verb="GET",version="v1"} 1"#,
        r#"apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="configmaps",scope="cluster",subresource="",verb="LIST",version="v1"} 1"#,
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
    }
}

/// A watch is counted when it ends, as kube-apiserver's instrumentation counts it once the
/// handler returns: an open watch is not in `apiserver_request_total` yet.
#[tokio::test]
async fn metrics_count_a_watch_when_it_ends() {
    let env = TestEnv::start().await.unwrap();
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let metrics = || async {
        let resp = client
            .get(format!("{}/metrics", env.url()).parse().unwrap())
            .await
            .unwrap();
        String::from_utf8(
            resp.into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes()
                .to_vec(),
        )
        .unwrap()
    };
    let watch_line = r#"apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="configmaps",scope="namespace",subresource="",verb="WATCH",version="v1"} 1"#;
    let open = client
        .get(
            format!(
                "{}/api/v1/namespaces/default/configmaps?watch=true",
                env.url()
            )
            .parse()
            .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(open.status(), 200);
    assert!(
        !metrics().await.contains(r#"verb="WATCH""#),
        "an open watch is counted"
    );
    drop(open);
    // The server notices the closed connection when it next writes or polls it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let text = metrics().await;
        if text.lines().any(|l| l == watch_line) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the closed watch is not counted:\n{text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // A watch that ends by its own timeout is counted too.
    let (code, _, _) = send(
        &env,
        "GET",
        "/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=1",
        "",
        "",
    )
    .await;
    assert_eq!(code, 200);
    let text = metrics().await;
    assert!(
        text.contains(&watch_line.replace("} 1", "} 2")),
        "the timed-out watch is not counted:\n{text}"
    );
}
