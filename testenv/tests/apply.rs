//! Server-side apply through kube::Client: create-on-apply, managedFields, conflicts between
//! managers, force, and removal of fields an applier stops applying.

use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use testenv::TestEnv;

fn cm(data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": data})
}

fn entries(obj: &ConfigMap) -> Vec<(String, String, Value)> {
    obj.metadata
        .managed_fields
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|e| {
            (
                e.manager.unwrap_or_default(),
                e.operation.unwrap_or_default(),
                e.fields_v1.map(|f| f.0).unwrap_or(Value::Null),
            )
        })
        .collect()
}

fn api_error(err: kube::Error) -> kube::core::Status {
    match err {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn apply_creates_and_records_managed_fields() {
    let env = TestEnv::start().await.unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(env.client());
    let created = api
        .patch(
            "settings",
            &PatchParams::apply("alice"),
            &Patch::Apply(cm(json!({"a": "1"}))),
        )
        .await
        .unwrap();
    assert_eq!(created.data.clone().unwrap()["a"], "1");
    assert_eq!(
        entries(&created),
        [(
            "alice".into(),
            "Apply".into(),
            json!({"f:data": {"f:a": {}}})
        )]
    );
    let entry = &created.metadata.managed_fields.as_ref().unwrap()[0];
    assert_eq!(entry.api_version.as_deref(), Some("v1"));
    assert_eq!(entry.fields_type.as_deref(), Some("FieldsV1"));
    assert!(entry.time.is_some());
    // The stored object carries them too.
    assert_eq!(
        entries(&api.get("settings").await.unwrap()),
        entries(&created)
    );
}

#[tokio::test]
async fn a_second_manager_changing_a_field_gets_a_409_until_it_forces() {
    let env = TestEnv::start().await.unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(env.client());
    api.patch(
        "settings",
        &PatchParams::apply("alice"),
        &Patch::Apply(cm(json!({"a": "1", "b": "2"}))),
    )
    .await
    .unwrap();

    let status = api_error(
        api.patch(
            "settings",
            &PatchParams::apply("bob"),
            &Patch::Apply(cm(json!({"a": "changed"}))),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(status.code, 409);
    assert_eq!(status.reason, "Conflict");
    assert_eq!(
        status.message,
        "Apply failed with 1 conflict: conflict with \"alice\": .data.a"
    );
    let causes = status.details.unwrap().causes;
    assert_eq!(causes.len(), 1);
    assert_eq!(causes[0].reason, "FieldManagerConflict");
    assert_eq!(causes[0].field, ".data.a");
    assert_eq!(causes[0].message, "conflict with \"alice\"");
    assert_eq!(api.get("settings").await.unwrap().data.unwrap()["a"], "1");

    let forced = api
        .patch(
            "settings",
            &PatchParams::apply("bob").force(),
            &Patch::Apply(cm(json!({"a": "changed"}))),
        )
        .await
        .unwrap();
    assert_eq!(forced.data.clone().unwrap()["a"], "changed");
    assert_eq!(
        entries(&forced),
        [
            (
                "alice".into(),
                "Apply".into(),
                json!({"f:data": {"f:b": {}}})
            ),
            ("bob".into(), "Apply".into(), json!({"f:data": {"f:a": {}}})),
        ]
    );
}

#[tokio::test]
async fn fields_an_applier_omits_are_removed_unless_another_manager_owns_them() {
    let env = TestEnv::start().await.unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(env.client());
    let apply = |manager: &'static str, data: Value| {
        let api = api.clone();
        async move {
            api.patch(
                "settings",
                &PatchParams::apply(manager),
                &Patch::Apply(cm(data)),
            )
            .await
            .unwrap()
        }
    };
    apply("alice", json!({"a": "1", "b": "2", "shared": "s"})).await;
    apply("bob", json!({"shared": "s"})).await;
    let out = apply("alice", json!({"a": "1"})).await;
    let data = out.data.unwrap();
    assert_eq!(
        data.keys().map(String::as_str).collect::<Vec<_>>(),
        ["a", "shared"]
    );
}

#[tokio::test]
async fn updates_are_tracked_and_conflict_with_later_applies() {
    let env = TestEnv::start().await.unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(env.client());
    let created = api
        .create(
            &PostParams {
                field_manager: Some("creator".into()),
                ..Default::default()
            },
            &serde_json::from_value(cm(json!({"a": "1"}))).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        entries(&created),
        [(
            "creator".into(),
            "Update".into(),
            json!({"f:data": {".": {}, "f:a": {}}})
        )]
    );
    let status = api_error(
        api.patch(
            "settings",
            &PatchParams::apply("applier"),
            &Patch::Apply(cm(json!({"a": "2"}))),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(
        status.message,
        "Apply failed with 1 conflict: conflict with \"creator\" using v1: .data.a"
    );
    // A merge patch moves ownership of what it changes to its manager.
    let patched = api
        .patch(
            "settings",
            &PatchParams {
                field_manager: Some("patcher".into()),
                ..Default::default()
            },
            &Patch::Merge(json!({"data": {"a": "3"}})),
        )
        .await
        .unwrap();
    let owners = entries(&patched);
    assert_eq!(owners.len(), 2, "{owners:?}");
    assert_eq!(owners[0].0, "creator");
    assert_eq!(owners[0].2, json!({"f:data": {}}));
    assert_eq!(
        owners[1],
        (
            "patcher".into(),
            "Update".into(),
            json!({"f:data": {"f:a": {}}})
        )
    );
}

#[tokio::test]
async fn service_ports_are_owned_per_port() {
    let env = TestEnv::start().await.unwrap();
    let api: Api<Service> = Api::default_namespaced(env.client());
    let svc = |ports: Value| {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
               "spec": {"selector": {"app": "web"}, "ports": ports}})
    };
    api.patch(
        "web",
        &PatchParams::apply("alice"),
        &Patch::Apply(svc(json!([{"name": "http", "port": 80}]))),
    )
    .await
    .unwrap();
    let both = api
        .patch(
            "web",
            &PatchParams::apply("bob"),
            &Patch::Apply(svc(json!([{"name": "metrics", "port": 9090}]))),
        )
        .await
        .unwrap();
    let ports: Vec<i32> = both
        .spec
        .unwrap()
        .ports
        .unwrap()
        .iter()
        .map(|p| p.port)
        .collect();
    assert_eq!(ports, [80, 9090]);
    let bob = both
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .find(|e| e.manager.as_deref() == Some("bob"))
        .unwrap();
    assert_eq!(
        bob.fields_v1.unwrap().0["f:spec"]["f:ports"],
        json!({"k:{\"port\":9090,\"protocol\":\"TCP\"}": {".": {}, "f:name": {}, "f:port": {}}})
    );
}
