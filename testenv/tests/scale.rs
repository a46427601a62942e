//! The `scale` subresource of Deployments and ReplicaSets (autoscaling/v1 Scale), as
//! kube-apiserver's `ScaleREST` answers it, and the apps/v1 defaults both kinds get.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use testenv::TestEnv;

fn deployment() -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}}}))
    .unwrap()
}

#[tokio::test]
async fn deployments_are_defaulted_and_scaled_through_their_scale_subresource() {
    let env = TestEnv::start().await.unwrap();
    let api: Api<Deployment> = Api::default_namespaced(env.client());
    let created = api
        .create(&PostParams::default(), &deployment())
        .await
        .unwrap();
    let spec = created.spec.clone().unwrap();
    assert_eq!(spec.replicas, Some(1));
    assert_eq!(spec.revision_history_limit, Some(10));
    assert_eq!(spec.progress_deadline_seconds, Some(600));
    let strategy = spec.strategy.unwrap();
    assert_eq!(strategy.type_.as_deref(), Some("RollingUpdate"));
    assert!(strategy.rolling_update.is_some());

    let scale = api.get_scale("web").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(1));
    let status = scale.status.unwrap();
    assert_eq!(
        (status.replicas, status.selector.as_deref()),
        (0, Some("app=web"))
    );
    assert_eq!(
        scale.metadata.resource_version,
        created.metadata.resource_version
    );

    // kubectl scale: a merge patch of the Scale.
    let patched = api
        .patch_scale(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 4}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.spec.unwrap().replicas, Some(4));
    let stored = api.get("web").await.unwrap();
    assert_eq!(stored.spec.unwrap().replicas, Some(4));
    assert_eq!(
        stored.metadata.generation,
        Some(2),
        "a new spec is a new generation"
    );

    // PUT with a stale resourceVersion conflicts; a negative size is invalid.
    let mut stale = scale_body(&created.metadata.resource_version.clone().unwrap(), 2);
    let err = api
        .replace_scale(
            "web",
            &PostParams::default(),
            &serde_json::from_value(stale.clone()).unwrap(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 409),
        "{err}"
    );
    stale["metadata"]["resourceVersion"] = json!(stored.metadata.resource_version);
    stale["spec"]["replicas"] = json!(-1);
    let err = api
        .replace_scale(
            "web",
            &PostParams::default(),
            &serde_json::from_value(stale.clone()).unwrap(),
        )
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 422);
            assert!(
                s.message.contains(
                    "spec.replicas: Invalid value: -1: must be greater than or equal to 0"
                ),
                "{}",
                s.message
            );
        }
        other => panic!("{other}"),
    }
    stale["spec"]["replicas"] = json!(0);
    let put = api
        .replace_scale(
            "web",
            &PostParams::default(),
            &serde_json::from_value(stale.clone()).unwrap(),
        )
        .await
        .unwrap();
    // Zero is left out of the Scale, as Go omits an empty int32.
    assert_eq!(put.spec.unwrap().replicas, None);
}

fn scale_body(resource_version: &str, replicas: i32) -> serde_json::Value {
    json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
        "metadata": {"name": "web", "resourceVersion": resource_version},
        "spec": {"replicas": replicas}})
}

#[tokio::test]
async fn replica_sets_are_served_with_status_and_scale() {
    let env = TestEnv::start().await.unwrap();
    let api: Api<ReplicaSet> = Api::default_namespaced(env.client());
    let rs: ReplicaSet = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web-1"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}},
        "status": {"replicas": 9}}))
    .unwrap();
    let created = api.create(&PostParams::default(), &rs).await.unwrap();
    assert_eq!(created.spec.as_ref().unwrap().replicas, Some(1));
    assert_eq!(
        created.status.as_ref().map_or(0, |s| s.replicas),
        0,
        "status is reset on create"
    );
    let template = created.spec.unwrap().template.unwrap().spec.unwrap();
    assert_eq!(template.restart_policy.as_deref(), Some("Always"));
    assert!(
        template.enable_service_links.is_none(),
        "not a pod default of templates"
    );

    let mut with_status = api.get("web-1").await.unwrap();
    with_status.status = Some(k8s_openapi::api::apps::v1::ReplicaSetStatus {
        replicas: 1,
        ..Default::default()
    });
    api.replace_status("web-1", &PostParams::default(), &with_status)
        .await
        .unwrap();
    let scale = api
        .patch_scale(
            "web-1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(3));
    assert_eq!(scale.status.unwrap().replicas, 1);
    assert_eq!(api.get("web-1").await.unwrap().status.unwrap().replicas, 1);
}

#[tokio::test]
async fn discovery_names_scale_as_autoscaling_v1() {
    let env = TestEnv::start().await.unwrap();
    let client = env.client();
    let resources = client
        .list_api_group_resources("apps/v1")
        .await
        .unwrap()
        .resources;
    let scale = resources
        .iter()
        .find(|r| r.name == "replicasets/scale")
        .expect("replicasets/scale");
    assert_eq!(
        (
            scale.group.as_deref(),
            scale.version.as_deref(),
            scale.kind.as_str()
        ),
        (Some("autoscaling"), Some("v1"), "Scale")
    );
    let rs = resources.iter().find(|r| r.name == "replicasets").unwrap();
    assert_eq!(rs.short_names.as_deref(), Some(&["rs".to_string()][..]));
    assert!(resources.iter().any(|r| r.name == "deployments/scale"));
}
