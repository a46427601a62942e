//! `pods/exec` and `pods/log` on both backends with one test body: discovery, and every answer
//! kube-apiserver gives before it would call a kubelet (unknown pod or container, a pod with
//! several containers and none named, an unscheduled pod, invalid log options) must read the same,
//! code and `Status`, from testenv. What happens after (the session, the log) needs a runtime and
//! is tested in testenv's own `tests/exec.rs`.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use svcplane_tests::real::{self, RealClusterOptions};
use testenv::TestEnv;

/// A request's answer: the HTTP code and the body (JSON, or `null` when empty or not JSON).
async fn get(client: &kube::Client, path: &str) -> (u16, Value) {
    let request = http::Request::get(path)
        .body(kube::client::Body::empty())
        .unwrap();
    let response = client.send(request).await.unwrap();
    let code = response.status().as_u16();
    let bytes = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn send_json(client: &kube::Client, request: http::Request<kube::client::Body>) -> Value {
    let response = client.send(request).await.unwrap();
    let bytes = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

fn pod(name: &str, node: Option<&str>, containers: &[&str]) -> Pod {
    let containers: Vec<Value> = containers
        .iter()
        .map(|c| json!({"name": c, "image": "busybox"}))
        .collect();
    let mut spec = json!({"containers": containers});
    if let Some(node) = node {
        spec["nodeName"] = json!(node);
    }
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .unwrap()
}

fn failure(code: u16, reason: &str, message: &str, details: Option<Value>) -> Value {
    let mut s = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason});
    if let Some(details) = details {
        s["details"] = details;
    }
    s["code"] = json!(code);
    s
}

fn bad_request(message: &str) -> (u16, Value) {
    (400, failure(400, "BadRequest", message, None))
}

async fn exec_and_log_are_answered_as_kube_apiserver_answers_them(client: kube::Client) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    for p in [
        pod("web", Some("node-1"), &["app"]),
        pod("multi", Some("node-1"), &["a", "b"]),
        pod("pending", None, &["app"]),
    ] {
        pods.create(&PostParams::default(), &p).await.unwrap();
    }
    let base = "/api/v1/namespaces/default/pods";
    let not_found = (
        404,
        failure(
            404,
            "NotFound",
            "pods \"nope\" not found",
            Some(json!({"name": "nope", "kind": "pods"})),
        ),
    );

    let exec =
        |pod: &str, extra: &str| format!("{base}/{pod}/exec?command=true&stdout=true{extra}");
    let cases = [
        (exec("nope", ""), not_found.clone()),
        (
            exec("web", "&container=nope"),
            bad_request("container nope is not valid for pod web"),
        ),
        (
            exec("multi", ""),
            bad_request("a container name must be specified for pod multi, choose one of: [a b]"),
        ),
        (
            exec("pending", ""),
            bad_request("pod pending does not have a host assigned"),
        ),
        (format!("{base}/nope/log"), not_found.clone()),
        (
            format!("{base}/web/log?container=nope"),
            bad_request("container nope is not valid for pod web"),
        ),
        (
            format!("{base}/multi/log"),
            bad_request("a container name must be specified for pod multi, choose one of: [a b]"),
        ),
        // An unscheduled pod has no log location: an empty answer.
        (format!("{base}/pending/log"), (204, Value::Null)),
        (
            format!("{base}/web/log?tailLines=-1&limitBytes=0"),
            (
                422,
                failure(
                    422,
                    "Invalid",
                    "PodLogOptions \"web\" is invalid: [tailLines: Invalid value: -1: must be greater than or equal to 0, limitBytes: Invalid value: 0: must be greater than 0]",
                    Some(json!({"name": "web", "kind": "PodLogOptions", "causes": [
                        {"reason": "FieldValueInvalid", "message": "Invalid value: -1: must be greater than or equal to 0", "field": "tailLines"},
                        {"reason": "FieldValueInvalid", "message": "Invalid value: 0: must be greater than 0", "field": "limitBytes"},
                    ]})),
                ),
            ),
        ),
    ];
    for (path, want) in cases {
        assert_eq!(get(&client, &path).await, want, "GET {path}");
    }

    // Discovery lists both subresources as kube-apiserver does.
    let (_, v1) = get(&client, "/api/v1").await;
    let entry = |name: &str| {
        v1["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .cloned()
    };
    assert_eq!(
        entry("pods/exec"),
        Some(
            json!({"name": "pods/exec", "singularName": "", "namespaced": true, "kind": "PodExecOptions", "verbs": ["create", "get"]})
        )
    );
    assert_eq!(
        entry("pods/log"),
        Some(
            json!({"name": "pods/log", "singularName": "", "namespaced": true, "kind": "Pod", "verbs": ["get"]})
        )
    );

    // And so does aggregated discovery, which kubectl reads: a subresource's responseKind names
    // no group or version when they are its resource's, in the core group and in others.
    let request = http::Request::get("/api")
        .header(
            "accept",
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
        )
        .body(kube::client::Body::empty())
        .unwrap();
    let core = send_json(&client, request).await;
    let pods_entry = core["items"][0]["versions"][0]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resource"] == "pods")
        .cloned()
        .unwrap();
    let sub = |name: &str| {
        pods_entry["subresources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["subresource"] == name)
            .cloned()
    };
    assert_eq!(
        sub("exec"),
        Some(
            json!({"subresource": "exec", "responseKind": {"group": "", "version": "", "kind": "PodExecOptions"}, "verbs": ["create", "get"]})
        )
    );
    assert_eq!(
        sub("log"),
        Some(
            json!({"subresource": "log", "responseKind": {"group": "", "version": "", "kind": "Pod"}, "verbs": ["get"]})
        )
    );
    let request = http::Request::get("/apis")
        .header(
            "accept",
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
        )
        .body(kube::client::Body::empty())
        .unwrap();
    let groups = send_json(&client, request).await;
    let apps = groups["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["metadata"]["name"] == "apps")
        .cloned()
        .unwrap();
    let deployment_status = apps["versions"][0]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resource"] == "deployments")
        .and_then(|r| {
            r["subresources"]
                .as_array()?
                .iter()
                .find(|s| s["subresource"] == "status")
                .cloned()
        });
    assert_eq!(
        deployment_status,
        Some(
            json!({"subresource": "status", "responseKind": {"group": "", "version": "", "kind": "Deployment"}, "verbs": ["get", "patch", "update"]})
        )
    );
}

#[tokio::test]
async fn pod_exec_and_log_on_testenv() {
    let env = TestEnv::start().await.unwrap();
    exec_and_log_are_answered_as_kube_apiserver_answers_them(env.client()).await;
}

#[tokio::test]
async fn pod_exec_and_log_on_kube_apiserver() {
    let Some(cluster) = real::start_or_skip("pod_exec", RealClusterOptions::default()).await else {
        return;
    };
    exec_and_log_are_answered_as_kube_apiserver_answers_them(cluster.client()).await;
}
