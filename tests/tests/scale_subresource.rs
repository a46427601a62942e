//! The `scale` subresource of Deployments and ReplicaSets on both backends with one test body:
//! testenv must answer as kube-apiserver does (the Scale, conflicts, 422s, wrong bodies,
//! discovery), byte for byte up to uids, resourceVersions and timestamps.

use serde_json::{Value, json};
use svcplane_tests::real::{self, RealClusterOptions};
use testenv::TestEnv;

/// A request's answer: the HTTP code and the JSON body.
async fn send(
    client: &kube::Client,
    method: &str,
    path: &str,
    patch: bool,
    body: Option<Value>,
) -> (u16, Value) {
    let content_type = if patch {
        "application/merge-patch+json"
    } else {
        "application/json"
    };
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", content_type)
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

/// The Scale kube-apiserver answers, its identity fields taken from the answer itself.
fn scale(answer: &Value, replicas: i64) -> Value {
    let meta = &answer["metadata"];
    // `ScaleSpec.Replicas` is an int32 with omitempty.
    let spec = if replicas == 0 {
        json!({})
    } else {
        json!({"replicas": replicas})
    };
    json!({"kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": "web", "namespace": "default", "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"], "creationTimestamp": meta["creationTimestamp"]},
        "spec": spec, "status": {"replicas": 0, "selector": "app=web"}})
}

fn invalid(replicas: i64) -> Value {
    let message = format!("Invalid value: {replicas}: must be greater than or equal to 0");
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("Scale.autoscaling \"web\" is invalid: spec.replicas: {message}"),
        "reason": "Invalid", "details": {"name": "web", "group": "autoscaling", "kind": "Scale",
            "causes": [{"reason": "FieldValueInvalid", "message": message, "field": "spec.replicas"}]},
        "code": 422})
}

async fn scale_is_answered_as_kube_apiserver_answers_it(client: kube::Client) {
    for (plural, kind) in [("deployments", "Deployment"), ("replicasets", "ReplicaSet")] {
        let base = format!("/apis/apps/v1/namespaces/default/{plural}");
        let object = json!({"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}}});
        let (code, created) = send(&client, "POST", &base, false, Some(object)).await;
        assert_eq!(code, 201, "{created}");
        let path = format!("{base}/web/scale");

        let (code, got) = send(&client, "GET", &path, false, None).await;
        assert_eq!((code, &got), (200, &scale(&got, 1)), "{kind}");
        assert_eq!(
            got["metadata"]["resourceVersion"],
            created["metadata"]["resourceVersion"]
        );

        let (code, patched) = send(
            &client,
            "PATCH",
            &path,
            true,
            Some(json!({"spec": {"replicas": 4}})),
        )
        .await;
        assert_eq!((code, &patched), (200, &scale(&patched, 4)), "{kind}");
        let (_, stored) = send(&client, "GET", &format!("{base}/web"), false, None).await;
        assert_eq!(stored["spec"]["replicas"], 4);
        assert_eq!(stored["metadata"]["generation"], 2);

        let stale = json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
            "metadata": {"name": "web", "resourceVersion": created["metadata"]["resourceVersion"]},
            "spec": {"replicas": 2}});
        let (code, conflict) = send(&client, "PUT", &path, false, Some(stale)).await;
        assert_eq!(code, 409);
        assert_eq!(
            conflict,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": format!("Operation cannot be fulfilled on {plural}.apps \"web\": the object has been modified; please apply your changes to the latest version and try again"),
                "reason": "Conflict", "details": {"name": "web", "group": "apps", "kind": plural},
                "code": 409})
        );

        let negative = json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
            "metadata": {"name": "web"}, "spec": {"replicas": -1}});
        assert_eq!(
            send(&client, "PUT", &path, false, Some(negative)).await,
            (422, invalid(-1))
        );
        assert_eq!(
            send(
                &client,
                "PATCH",
                &path,
                true,
                Some(json!({"spec": {"replicas": -2}}))
            )
            .await,
            (422, invalid(-2))
        );

        let put = json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
            "metadata": {"name": "web"}, "spec": {"replicas": 0}});
        let (code, replaced) = send(&client, "PUT", &path, false, Some(put)).await;
        assert_eq!((code, &replaced), (200, &scale(&replaced, 0)), "{kind}");

        let wrong = json!({"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": "web"}});
        assert_eq!(
            send(&client, "PUT", &path, false, Some(wrong)).await,
            (
                400,
                json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": format!("{kind} in version \"v1\" cannot be handled as a Scale: converting (v1.{kind}) to (autoscaling.Scale): unknown conversion"),
                "reason": "BadRequest", "code": 400})
            )
        );
        assert_eq!(
            send(&client, "GET", &format!("{base}/nope/scale"), false, None).await,
            (
                404,
                json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": format!("{plural}.apps \"nope\" not found"), "reason": "NotFound",
                "details": {"name": "nope", "group": "apps", "kind": plural}, "code": 404})
            )
        );
        assert_eq!(
            send(&client, "POST", &path, false, Some(json!({}))).await,
            (
                405,
                json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "the server does not allow this method on the requested resource",
                "reason": "MethodNotAllowed", "details": {}, "code": 405})
            )
        );
    }

    let (_, discovery) = send(&client, "GET", "/apis/apps/v1", false, None).await;
    let resources = discovery["resources"].as_array().unwrap();
    let find = |name: &str| {
        resources
            .iter()
            .find(|r| r["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} not in discovery"))
    };
    for sub in ["deployments/scale", "replicasets/scale"] {
        assert_eq!(
            find(sub),
            json!({"name": sub, "singularName": "", "namespaced": true, "group": "autoscaling",
                "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"]})
        );
    }
    assert_eq!(
        find("replicasets"),
        json!({"name": "replicasets", "singularName": "replicaset", "namespaced": true,
            "kind": "ReplicaSet", "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
            "shortNames": ["rs"], "categories": ["all"], "storageVersionHash": "P1RzHs8/mWQ="})
    );
}

#[tokio::test]
async fn scale_on_testenv() {
    let env = TestEnv::start().await.unwrap();
    scale_is_answered_as_kube_apiserver_answers_it(env.client()).await;
}

#[tokio::test]
async fn scale_on_kube_apiserver() {
    let Some(cluster) = real::start_or_skip("scale", RealClusterOptions::default()).await else {
        return;
    };
    scale_is_answered_as_kube_apiserver_answers_it(cluster.client()).await;
}
