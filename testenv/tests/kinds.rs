//! Every built-in kind through kube's dynamic API, and a CRD served, listed and watched from the
//! moment it is created.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, PostParams,
};
use kube::runtime::watcher;
use serde_json::json;
use testenv::TestEnv;

fn object(api_version: &str, kind: &str, name: &str, body: serde_json::Value) -> DynamicObject {
    let mut v = json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name}});
    if let (Some(obj), Some(extra)) = (v.as_object_mut(), body.as_object()) {
        for (k, val) in extra {
            obj.insert(k.clone(), val.clone());
        }
    }
    serde_json::from_value(v).unwrap()
}

#[tokio::test]
async fn crud_on_every_builtin_kind() {
    let env = TestEnv::start().await.unwrap();
    let client = env.client();
    let cases: Vec<(&str, &str, &str, &str, bool, serde_json::Value)> = vec![
        ("", "v1", "Namespace", "namespaces", false, json!({})),
        ("", "v1", "Node", "nodes", false, json!({})),
        (
            "",
            "v1",
            "Pod",
            "pods",
            true,
            json!({"spec": {"containers": [{"name": "c", "image": "nginx"}]}}),
        ),
        (
            "",
            "v1",
            "Service",
            "services",
            true,
            json!({"spec": {"ports": [{"port": 80}]}}),
        ),
        (
            "",
            "v1",
            "Endpoints",
            "endpoints",
            true,
            json!({"subsets": []}),
        ),
        (
            "",
            "v1",
            "ConfigMap",
            "configmaps",
            true,
            json!({"data": {"a": "b"}}),
        ),
        (
            "",
            "v1",
            "Secret",
            "secrets",
            true,
            json!({"stringData": {"a": "b"}}),
        ),
        (
            "",
            "v1",
            "ServiceAccount",
            "serviceaccounts",
            true,
            json!({}),
        ),
        (
            "",
            "v1",
            "Event",
            "events",
            true,
            json!({"involvedObject": {"kind": "Pod", "name": "p"}, "reason": "Test"}),
        ),
        (
            "discovery.k8s.io",
            "v1",
            "EndpointSlice",
            "endpointslices",
            true,
            json!({"addressType": "IPv4", "endpoints": []}),
        ),
        (
            "networking.k8s.io",
            "v1",
            "ServiceCIDR",
            "servicecidrs",
            false,
            json!({"spec": {"cidrs": ["10.96.0.0/12"]}}),
        ),
        (
            "coordination.k8s.io",
            "v1",
            "Lease",
            "leases",
            true,
            json!({"spec": {"holderIdentity": "me"}}),
        ),
        (
            "events.k8s.io",
            "v1",
            "Event",
            "events",
            true,
            json!({"reason": "Test", "action": "Testing", "type": "Normal", "eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "t", "reportingInstance": "t"}),
        ),
        (
            "admissionregistration.k8s.io",
            "v1",
            "ValidatingWebhookConfiguration",
            "validatingwebhookconfigurations",
            false,
            json!({"webhooks": []}),
        ),
        (
            "admissionregistration.k8s.io",
            "v1",
            "MutatingWebhookConfiguration",
            "mutatingwebhookconfigurations",
            false,
            json!({"webhooks": []}),
        ),
        (
            "apps",
            "v1",
            "Deployment",
            "deployments",
            true,
            json!({"spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}),
        ),
    ];
    for (group, version, kind, plural, namespaced, body) in cases {
        let ar =
            ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
        let api: Api<DynamicObject> = if namespaced {
            Api::namespaced_with(client.clone(), "default", &ar)
        } else {
            Api::all_with(client.clone(), &ar)
        };
        let name = format!("test-{}", kind.to_ascii_lowercase());
        let made = api
            .create(
                &PostParams::default(),
                &object(&ar.api_version, kind, &name, body),
            )
            .await;
        let made = made.unwrap_or_else(|e| panic!("create {kind}: {e}"));
        assert!(made.metadata.uid.is_some(), "{kind}");
        let got = api
            .get(&name)
            .await
            .unwrap_or_else(|e| panic!("get {kind}: {e}"));
        assert_eq!(
            got.metadata.resource_version, made.metadata.resource_version,
            "{kind}"
        );
        let listed = api
            .list(&ListParams::default())
            .await
            .unwrap_or_else(|e| panic!("list {kind}: {e}"));
        assert!(
            listed
                .items
                .iter()
                .any(|o| o.metadata.name.as_deref() == Some(&name)),
            "{kind}"
        );
        api.delete(&name, &DeleteParams::default())
            .await
            .unwrap_or_else(|e| panic!("delete {kind}: {e}"));
        if kind != "Namespace" {
            assert!(
                api.get_opt(&name).await.unwrap().is_none(),
                "{kind} deleted"
            );
        }
    }
    // IPAddress names must be canonical IPs.
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("networking.k8s.io", "v1", "IPAddress"),
        "ipaddresses",
    );
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    let ip = object(
        &ar.api_version,
        "IPAddress",
        "10.96.0.10",
        json!({"spec": {"parentRef": {"group": "", "resource": "services", "namespace": "default", "name": "web"}}}),
    );
    api.create(&PostParams::default(), &ip).await.unwrap();
    assert!(api.get_opt("10.96.0.10").await.unwrap().is_some());
}

#[tokio::test]
async fn a_crd_created_at_run_time_is_served_listed_and_watched() {
    let env = TestEnv::start().await.unwrap();
    let client = env.client();
    let crds: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
            "customresourcedefinitions",
        ),
    );
    let widgets = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("example.com", "v1", "Widget"),
        "widgets",
    );
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &widgets);
    assert!(
        api.list(&ListParams::default()).await.is_err(),
        "not served before the CRD exists"
    );

    let crd = object(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        "widgets.example.com",
        json!({"spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]
        }}),
    );
    let made = crds.create(&PostParams::default(), &crd).await.unwrap();
    let conditions = made.data["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        conditions
            .iter()
            .any(|c| c["type"] == "Established" && c["status"] == "True")
    );

    let mut events = watcher::watcher(api.clone(), watcher::Config::default()).boxed();
    api.create(
        &PostParams::default(),
        &object(
            "example.com/v1",
            "Widget",
            "w1",
            json!({"spec": {"size": 3}}),
        ),
    )
    .await
    .unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(e) = events.try_next().await.unwrap() {
            if let watcher::Event::Apply(o) | watcher::Event::InitApply(o) = e
                && o.metadata.name.as_deref() == Some("w1")
            {
                return o;
            }
        }
        panic!("watch ended");
    })
    .await
    .expect("the widget was watched");
    assert_eq!(seen.data["spec"]["size"], 3);
    assert_eq!(
        api.list(&ListParams::default()).await.unwrap().items.len(),
        1
    );

    crds.delete("widgets.example.com", &DeleteParams::default())
        .await
        .unwrap();
    assert!(
        api.list(&ListParams::default()).await.is_err(),
        "no longer served after the CRD is deleted"
    );
}
