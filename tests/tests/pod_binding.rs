//! `POST pods/{name}/binding`, how a scheduler places a pod, on both backends with one test body:
//! the same requests must get the same answers (code and `Status`, byte for byte up to the pod's
//! uid and resourceVersion) from testenv and from kube-apiserver, and leave the pod the same.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use svcplane_tests::real::{self, RealClusterOptions};
use testenv::TestEnv;

/// A request's answer: the HTTP code and the JSON body.
async fn send(
    client: &kube::Client,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(match body {
            Some(b) => kube::client::Body::from(serde_json::to_vec(&b).unwrap()),
            None => kube::client::Body::empty(),
        })
        .unwrap();
    let response = client.send(request).await.unwrap();
    let code = response.status().as_u16();
    let bytes = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn binding(name: &str, metadata: Value, target: Value) -> Value {
    let mut metadata = metadata;
    if !name.is_empty() {
        metadata["name"] = json!(name);
    }
    json!({"apiVersion": "v1", "kind": "Binding", "metadata": metadata, "target": target})
}

fn status(code: u16, reason: Option<&str>, message: &str, details: Option<Value>) -> Value {
    let mut s = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "code": code});
    if let Some(reason) = reason {
        s["reason"] = json!(reason);
    }
    if let Some(details) = details {
        s["details"] = details;
    }
    s
}

fn conflict(kind: &str, name: &str, why: &str) -> Value {
    status(
        409,
        Some("Conflict"),
        &format!("Operation cannot be fulfilled on {kind} \"{name}\": {why}"),
        Some(json!({"name": name, "kind": kind})),
    )
}

/// What is sent (method, path, body) and what must come back (code, body), with a label.
type Case = (
    &'static str,
    &'static str,
    String,
    Option<Value>,
    u16,
    Value,
);

const PODS: &str = "/api/v1/namespaces/default/pods";

async fn create_pod(pods: &Api<Pod>, name: &str, extra: Value) -> Pod {
    let mut pod = json!({"metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": "nginx"}]}});
    json_merge(&mut pod, extra);
    pods.create(
        &PostParams::default(),
        &serde_json::from_value(pod).unwrap(),
    )
    .await
    .unwrap()
}

fn json_merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                json_merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (slot, v) => *slot = v,
    }
}

/// The body of both tests.
async fn bindings_are_answered_as_kube_apiserver_answers_them(client: kube::Client) {
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let web = create_pod(&pods, "web", json!({})).await;
    let uid = web.metadata.uid.clone().unwrap();
    let rv = web.metadata.resource_version.clone().unwrap();
    let gated = create_pod(
        &pods,
        "gated",
        json!({"spec": {"schedulingGates": [{"name": "example.com/wait"}]}}),
    )
    .await;
    let held = create_pod(
        &pods,
        "held",
        json!({"metadata": {"finalizers": ["example.com/hold"]}}),
    )
    .await;
    pods.delete("held", &DeleteParams::default()).await.unwrap();
    let node = json!({"kind": "Node", "name": "node-1"});
    let binding_of = |pod: &str| format!("{PODS}/{pod}/binding");

    // Refusals, in kube-apiserver's order: decoding, the name, ValidatePodBinding (a plain error:
    // 500 without a reason), the pod, storage preconditions, then the binding's own conflicts.
    let cases: Vec<Case> = vec![
        (
            "a Pod as the body",
            "POST",
            binding_of("web"),
            Some(
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"}, "target": node}),
            ),
            400,
            status(
                400,
                Some("BadRequest"),
                "Pod in version \"v1\" cannot be handled as a Binding: converting (v1.Pod) to (core.Binding): unknown conversion",
                None,
            ),
        ),
        (
            "another name",
            "POST",
            binding_of("web"),
            Some(binding("other", json!({}), node.clone())),
            400,
            status(
                400,
                Some("BadRequest"),
                "name in URL does not match name in Binding object",
                None,
            ),
        ),
        (
            "no name",
            "POST",
            binding_of("web"),
            Some(binding("", json!({}), node.clone())),
            400,
            status(
                400,
                Some("BadRequest"),
                "name in URL does not match name in Binding object",
                None,
            ),
        ),
        (
            "no target",
            "POST",
            binding_of("web"),
            Some(binding("web", json!({}), json!({}))),
            500,
            status(500, None, "target.name: Required value", None),
        ),
        (
            "a Pod as the target",
            "POST",
            binding_of("web"),
            Some(binding("web", json!({}), json!({"kind": "Pod"}))),
            500,
            status(
                500,
                None,
                "[target.kind: Unsupported value: \"Pod\": supported values: \"Node\", \"<empty>\", target.name: Required value]",
                None,
            ),
        ),
        (
            "no such pod",
            "POST",
            binding_of("ghost"),
            Some(binding("ghost", json!({}), node.clone())),
            404,
            status(
                404,
                Some("NotFound"),
                "pods \"ghost\" not found",
                Some(json!({"name": "ghost", "kind": "pods"})),
            ),
        ),
        (
            "a stale uid",
            "POST",
            binding_of("web"),
            Some(binding(
                "web",
                json!({"uid": "0b0e5b6e-0000-4000-8000-000000000000"}),
                node.clone(),
            )),
            409,
            conflict(
                "pods",
                "web",
                &format!(
                    "StorageError: invalid object, Code: 4, Key: /registry/pods/default/web, ResourceVersion: 0, AdditionalErrorMsg: Precondition failed: UID in precondition: 0b0e5b6e-0000-4000-8000-000000000000, UID in object meta: {uid}"
                ),
            ),
        ),
        (
            "a stale resourceVersion",
            "POST",
            binding_of("web"),
            Some(binding(
                "web",
                json!({"resourceVersion": "1"}),
                node.clone(),
            )),
            409,
            conflict(
                "pods",
                "web",
                &format!(
                    "StorageError: invalid object, Code: 4, Key: /registry/pods/default/web, ResourceVersion: 0, AdditionalErrorMsg: Precondition failed: ResourceVersion in precondition: 1, ResourceVersion in object meta: {rv}"
                ),
            ),
        ),
        (
            "a pod being deleted",
            "POST",
            binding_of("held"),
            Some(binding("held", json!({}), node.clone())),
            409,
            conflict(
                "pods/binding",
                "held",
                "pod held is being deleted, cannot be assigned to a host",
            ),
        ),
        (
            "a pod with scheduling gates",
            "POST",
            binding_of("gated"),
            Some(binding("gated", json!({}), node.clone())),
            409,
            conflict(
                "pods/binding",
                "gated",
                "pod gated has non-empty .spec.schedulingGates",
            ),
        ),
        (
            "GET",
            "GET",
            binding_of("web"),
            None,
            405,
            status(
                405,
                Some("MethodNotAllowed"),
                "the server does not allow this method on the requested resource",
                Some(json!({})),
            ),
        ),
        (
            "PUT",
            "PUT",
            binding_of("web"),
            Some(binding("web", json!({}), node.clone())),
            405,
            status(
                405,
                Some("MethodNotAllowed"),
                "the server does not allow this method on the requested resource",
                Some(json!({})),
            ),
        ),
        (
            "POST to pods/status",
            "POST",
            format!("{PODS}/web/status"),
            Some(binding("web", json!({}), node.clone())),
            405,
            status(
                405,
                Some("MethodNotAllowed"),
                "the server does not allow this method on the requested resource",
                Some(json!({})),
            ),
        ),
        (
            "services have none",
            "POST",
            "/api/v1/namespaces/default/services/kubernetes/binding".into(),
            Some(binding("kubernetes", json!({}), node.clone())),
            404,
            status(
                404,
                Some("NotFound"),
                "the server could not find the requested resource",
                Some(json!({})),
            ),
        ),
        (
            "a dry run",
            "POST",
            format!("{}?dryRun=All", binding_of("web")),
            Some(binding("web", json!({}), node.clone())),
            201,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
        ),
    ];
    for (what, method, path, body, code, want) in cases {
        let (got_code, got) = send(&client, method, &path, body).await;
        assert_eq!((got_code, &got), (code, &want), "{what}");
    }
    let unbound = pods.get("web").await.unwrap();
    assert_eq!(
        unbound.metadata.resource_version.as_deref(),
        Some(rv.as_str()),
        "the dry run wrote"
    );
    assert_eq!(unbound.spec.unwrap().node_name, None);
    drop((gated, held));

    // The binding: the node, the binding's annotations, PodScheduled; no generation bump, no new
    // managedFields entry. The uid precondition is what kube-scheduler sends.
    let (code, answer) = send(
        &client,
        "POST",
        &binding_of("web"),
        Some(binding(
            "web",
            json!({"uid": uid, "annotations": {"example.com/by": "test"}}),
            node.clone(),
        )),
    )
    .await;
    assert_eq!(
        (code, answer),
        (
            201,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})
        )
    );
    let bound = pods.get("web").await.unwrap();
    assert_ne!(
        bound.metadata.resource_version,
        web.metadata.resource_version
    );
    assert_eq!(bound.metadata.generation, web.metadata.generation);
    assert_eq!(
        bound.metadata.managed_fields.as_ref().map(Vec::len),
        web.metadata.managed_fields.as_ref().map(Vec::len)
    );
    assert_eq!(
        bound
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("example.com/by"))
            .map(String::as_str),
        Some("test")
    );
    assert_eq!(
        bound.spec.as_ref().unwrap().node_name.as_deref(),
        Some("node-1")
    );
    let conditions: Vec<(String, String)> = bound
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|c| (c.type_, c.status))
        .collect();
    assert_eq!(
        conditions,
        [("PodScheduled".to_string(), "True".to_string())]
    );

    // Bound once: a second binding, and an update of spec.nodeName, are refused.
    let (code, answer) = send(
        &client,
        "POST",
        &binding_of("web"),
        Some(binding("web", json!({}), json!({"name": "node-2"}))),
    )
    .await;
    assert_eq!(
        (code, answer),
        (
            409,
            conflict(
                "pods/binding",
                "web",
                "pod web is already assigned to node \"node-1\""
            )
        )
    );

    // Discovery lists the subresource as kube-apiserver does.
    let (_, v1) = send(&client, "GET", "/api/v1", None).await;
    let entry = v1["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "pods/binding")
        .cloned();
    assert_eq!(
        entry,
        Some(
            json!({"name": "pods/binding", "singularName": "", "namespaced": true, "kind": "Binding", "verbs": ["create"]})
        )
    );
    let patched = pods
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"bound": "yes"}}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.spec.unwrap().node_name.as_deref(), Some("node-1"));
}

#[tokio::test]
async fn pod_binding_on_testenv() {
    let env = TestEnv::start().await.unwrap();
    bindings_are_answered_as_kube_apiserver_answers_them(env.client()).await;
}

#[tokio::test]
async fn pod_binding_on_kube_apiserver() {
    let Some(cluster) = real::start_or_skip("pod_binding", RealClusterOptions::default()).await
    else {
        return;
    };
    bindings_are_answered_as_kube_apiserver_answers_them(cluster.client()).await;
}
