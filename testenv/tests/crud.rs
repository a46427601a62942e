//! kube::Client against testenv: CRUD, conflicts, generateName, selectors, paging.

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use testenv::TestEnv;

fn cm(name: &str, labels: serde_json::Value) -> ConfigMap {
    serde_json::from_value(
        json!({"metadata": {"name": name, "labels": labels}, "data": {"k": "v"}}),
    )
    .unwrap()
}

#[tokio::test]
async fn create_get_update_delete_configmap() {
    let env = TestEnv::start().await.unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(env.client());
    let created = api
        .create(&PostParams::default(), &cm("a", json!({"app": "web"})))
        .await
        .unwrap();
    let uid = created.metadata.uid.clone().unwrap();
    assert!(created.metadata.creation_timestamp.is_some());
    assert_eq!(created.metadata.namespace.as_deref(), Some("default"));

    let mut got = api.get("a").await.unwrap();
    assert_eq!(got.metadata.uid.as_deref(), Some(uid.as_str()));
    got.data.as_mut().unwrap().insert("k".into(), "v2".into());
    let updated = api
        .replace("a", &PostParams::default(), &got)
        .await
        .unwrap();
    assert_ne!(
        updated.metadata.resource_version,
        got.metadata.resource_version
    );

    // Stale resourceVersion: 409 Conflict.
    let err = api
        .replace("a", &PostParams::default(), &got)
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 409);
            assert_eq!(s.reason, "Conflict");
        }
        other => panic!("expected 409, got {other:?}"),
    }
    // Duplicate: 409 AlreadyExists.
    let err = api
        .create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.reason == "AlreadyExists" && s.code == 409),
        "{err:?}"
    );

    api.delete("a", &DeleteParams::default()).await.unwrap();
    let err = api.get("a").await.unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 404 && s.message == "configmaps \"a\" not found"),
        "{err:?}"
    );
}

#[tokio::test]
async fn generate_name_selectors_and_paging() {
    let env = TestEnv::start().await.unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(env.client());
    for i in 0..7 {
        let mut c = cm(
            "",
            json!({"app": if i % 2 == 0 { "even" } else { "odd" }, "i": i.to_string()}),
        );
        c.metadata.name = None;
        c.metadata.generate_name = Some("gen-".into());
        let made = api.create(&PostParams::default(), &c).await.unwrap();
        let name = made.metadata.name.unwrap();
        assert!(name.starts_with("gen-") && name.len() == 9, "{name}");
    }
    let even = api
        .list(&ListParams::default().labels("app=even"))
        .await
        .unwrap();
    assert_eq!(even.items.len(), 4);
    let set = api
        .list(&ListParams::default().labels("i in (1,2,3),app!=odd"))
        .await
        .unwrap();
    assert_eq!(set.items.len(), 1);
    let mut seen = 0;
    let mut params = ListParams::default().limit(3);
    loop {
        let page = api.list(&params).await.unwrap();
        seen += page.items.len();
        assert!(page.items.len() <= 3);
        match page.metadata.continue_ {
            Some(c) if !c.is_empty() => params = params.continue_token(&c),
            _ => break,
        }
    }
    assert_eq!(seen, 7);
    let one = api
        .list(&ListParams::default().fields("metadata.name=nope"))
        .await
        .unwrap();
    assert!(one.items.is_empty());
}

#[tokio::test]
async fn services_get_v1_defaults_but_no_cluster_ip() {
    let env = TestEnv::start().await.unwrap();
    let api: Api<Service> = Api::default_namespaced(env.client());
    let svc: Service = serde_json::from_value(json!({"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})).unwrap();
    let made = api.create(&PostParams::default(), &svc).await.unwrap();
    let spec = made.spec.unwrap();
    assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
    assert_eq!(spec.session_affinity.as_deref(), Some("None"));
    assert_eq!(spec.ports.unwrap()[0].protocol.as_deref(), Some("TCP"));
    assert_eq!(spec.cluster_ip, None);

    let bad: Service = serde_json::from_value(
        json!({"metadata": {"name": "Web"}, "spec": {"ports": [{"port": 80}]}}),
    )
    .unwrap();
    let err = api.create(&PostParams::default(), &bad).await.unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 422);
            assert!(s.message.starts_with("Service \"Web\" is invalid: metadata.name: Invalid value: \"Web\": a DNS-1035 label"), "{}", s.message);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn merge_json_and_status_patches() {
    let env = TestEnv::start().await.unwrap();
    let pods: Api<Pod> = Api::default_namespaced(env.client());
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}, "status": {"phase": "Running"}})).unwrap();
    let made = pods.create(&PostParams::default(), &pod).await.unwrap();
    let status = made.status.expect("a new pod has status");
    assert_eq!(
        status.phase.as_deref(),
        Some("Pending"),
        "client status is replaced by Pending on create"
    );
    let patched = pods
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.metadata.labels.unwrap()["a"], "b");
    let status = pods
        .patch_status(
            "p",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"status": {"phase": "Running"}, "metadata": {"labels": {"ignored": "x"}}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(status.status.unwrap().phase.as_deref(), Some("Running"));
    assert!(!status.metadata.labels.unwrap().contains_key("ignored"));
    // A failing JSON-patch `test` is a 422.
    let p: json_patch::Patch =
        serde_json::from_value(json!([{"op": "test", "path": "/metadata/name", "value": "other"}]))
            .unwrap();
    let err = pods
        .patch("p", &PatchParams::default(), &Patch::<()>::Json(p))
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 422),
        "{err:?}"
    );
}

#[tokio::test]
async fn finalizers_hold_deletion_and_gc_removes_dependents() {
    let env = TestEnv::start().await.unwrap();
    let client = env.client();
    let svcs: Api<Service> = Api::default_namespaced(client.clone());
    let slices: Api<EndpointSlice> = Api::default_namespaced(client.clone());
    let svc: Service = serde_json::from_value(json!({"metadata": {"name": "web", "finalizers": ["example.com/hold"]}, "spec": {"ports": [{"port": 80}]}})).unwrap();
    let svc = svcs.create(&PostParams::default(), &svc).await.unwrap();
    let uid = svc.metadata.uid.clone().unwrap();
    let slice: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"generateName": "web-", "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": "web", "uid": uid, "controller": true, "blockOwnerDeletion": true}]},
        "addressType": "IPv4", "endpoints": []
    })).unwrap();
    let slice = slices.create(&PostParams::default(), &slice).await.unwrap();
    let slice_name = slice.metadata.name.unwrap();

    svcs.delete("web", &DeleteParams::default()).await.unwrap();
    let held = svcs.get("web").await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());
    assert!(slices.get(&slice_name).await.is_ok(), "owner still exists");

    svcs.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert!(svcs.get_opt("web").await.unwrap().is_none());
    env.wait_until(
        "slice garbage-collected",
        std::time::Duration::from_secs(5),
        || {
            let slices = slices.clone();
            let name = slice_name.clone();
            async move { slices.get_opt(&name).await.unwrap().is_none() }
        },
    )
    .await
    .unwrap();
}
