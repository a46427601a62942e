//! Deletion as kube-apiserver's registries and kube-controller-manager's namespace controller do
//! it: namespaces go through Terminating, graceful pod deletion marks the pod first.

use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use testenv::{TestEnv, TestEnvOptions};

fn cm(name: &str, finalizers: &[&str]) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name, "finalizers": finalizers},
        "data": {"k": "v"}}))
    .unwrap()
}

fn namespace(name: &str) -> Namespace {
    serde_json::from_value(json!({"metadata": {"name": name}})).unwrap()
}

/// Deletes namespace `name` and returns the answer's body.
async fn delete_namespace(env: &TestEnv, name: &str) -> Value {
    let namespaces: Api<Namespace> = Api::all(env.client());
    let answer = namespaces
        .delete(name, &DeleteParams::default())
        .await
        .expect("namespace deleted");
    let ns = answer
        .left()
        .expect("a namespace answers with the namespace");
    serde_json::to_value(ns).unwrap()
}

async fn eventually_gone<K>(api: &Api<K>, name: &str) -> bool
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    for _ in 0..100 {
        if api.get_opt(name).await.unwrap().is_none() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn a_deleted_namespace_terminates_refuses_creates_and_goes_once_empty() {
    let env = TestEnv::start().await.unwrap();
    let namespaces: Api<Namespace> = Api::all(env.client());
    namespaces
        .create(&PostParams::default(), &namespace("team"))
        .await
        .unwrap();
    let configmaps: Api<ConfigMap> = Api::namespaced(env.client(), "team");
    configmaps
        .create(&PostParams::default(), &cm("plain", &[]))
        .await
        .unwrap();
    configmaps
        .create(&PostParams::default(), &cm("held", &["example.com/hold"]))
        .await
        .unwrap();

    let answer = delete_namespace(&env, "team").await;
    assert_eq!(answer["status"]["phase"], "Terminating");
    assert_eq!(answer["spec"]["finalizers"], json!(["kubernetes"]));
    assert!(answer["metadata"]["deletionTimestamp"].is_string());
    assert!(
        answer["metadata"]
            .get("deletionGracePeriodSeconds")
            .is_none()
    );

    // NamespaceLifecycle: no new content while it terminates.
    let refused = configmaps
        .create(&PostParams::default(), &cm("late", &[]))
        .await
        .unwrap_err();
    let kube::Error::Api(status) = refused else {
        panic!("expected a Status, got {refused:?}");
    };
    assert_eq!(status.code, 403);
    assert_eq!(status.reason, "Forbidden");
    assert_eq!(
        status.message,
        "configmaps \"late\" is forbidden: unable to create new content in namespace team because it is being terminated"
    );

    // The namespace controller deletes the content; the finalized config map holds it.
    assert!(eventually_gone(&configmaps, "plain").await);
    let held = configmaps.get("held").await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());
    let ns = namespaces.get("team").await.unwrap();
    assert_eq!(
        ns.status.and_then(|s| s.phase).as_deref(),
        Some("Terminating")
    );

    configmaps
        .patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
    assert!(
        eventually_gone(&namespaces, "team").await,
        "namespace removed"
    );
    // The name is free again.
    namespaces
        .create(&PostParams::default(), &namespace("team"))
        .await
        .unwrap();
}

#[tokio::test]
async fn without_the_namespace_controller_a_deleted_namespace_stays_terminating() {
    let mut env = TestEnv::start_with(TestEnvOptions {
        namespace_controller: false,
        ..TestEnvOptions::default()
    })
    .await
    .unwrap();
    let namespaces: Api<Namespace> = Api::all(env.client());
    namespaces
        .create(&PostParams::default(), &namespace("kept"))
        .await
        .unwrap();
    let configmaps: Api<ConfigMap> = Api::namespaced(env.client(), "kept");
    configmaps
        .create(&PostParams::default(), &cm("c", &[]))
        .await
        .unwrap();
    delete_namespace(&env, "kept").await;
    // A second delete changes nothing while spec.finalizers is not empty.
    let again = delete_namespace(&env, "kept").await;
    assert_eq!(again["status"]["phase"], "Terminating");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(configmaps.get_opt("c").await.unwrap().is_some());
    assert!(namespaces.get_opt("kept").await.unwrap().is_some());

    env.start_namespace_controller();
    assert!(eventually_gone(&configmaps, "c").await);
    assert!(eventually_gone(&namespaces, "kept").await);
}

#[tokio::test]
async fn deleting_an_unscheduled_pod_answers_the_marked_pod_and_removes_it() {
    let env = TestEnv::start().await.unwrap();
    let pods: Api<Pod> = Api::default_namespaced(env.client());
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]}}))
    .unwrap();
    let created = pods.create(&PostParams::default(), &pod).await.unwrap();
    assert_eq!(created.metadata.generation, Some(1));

    let dry = pods
        .delete("p", &DeleteParams::default().dry_run())
        .await
        .unwrap()
        .left()
        .expect("the pod");
    assert_eq!(dry.metadata.deletion_grace_period_seconds, Some(0));
    assert!(
        pods.get_opt("p").await.unwrap().is_some(),
        "dry run kept it"
    );

    let deleted = pods
        .delete("p", &DeleteParams::default())
        .await
        .unwrap()
        .left()
        .expect("a pod answers with the pod");
    assert!(deleted.metadata.deletion_timestamp.is_some());
    assert_eq!(deleted.metadata.deletion_grace_period_seconds, Some(0));
    assert_eq!(deleted.metadata.generation, Some(2));
    assert!(
        pods.get_opt("p").await.unwrap().is_none(),
        "removed at once"
    );
}

#[tokio::test]
async fn a_scheduled_pod_waits_for_its_grace_period_and_the_final_delete_removes_it() {
    let env = TestEnv::start().await.unwrap();
    let pods: Api<Pod> = Api::default_namespaced(env.client());
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p"},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "nginx"}]}}))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let marked = pods
        .delete("p", &DeleteParams::default())
        .await
        .unwrap()
        .left()
        .expect("the pod");
    assert_eq!(marked.metadata.deletion_grace_period_seconds, Some(30));
    assert_eq!(marked.metadata.generation, Some(2));
    // A longer grace period changes nothing; the kubelet's grace 0 removes it.
    let again = pods
        .delete("p", &DeleteParams::default().grace_period(60))
        .await
        .unwrap()
        .left()
        .expect("the pod");
    assert_eq!(
        again.metadata.resource_version,
        marked.metadata.resource_version
    );
    let last = pods
        .delete("p", &DeleteParams::default().grace_period(0))
        .await
        .unwrap()
        .left()
        .expect("the pod");
    assert_eq!(last.metadata.deletion_grace_period_seconds, Some(0));
    assert_eq!(last.metadata.generation, Some(2));
    assert!(pods.get_opt("p").await.unwrap().is_none());
}
