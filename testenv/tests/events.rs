//! Events are one resource served through two APIs, as kube-apiserver serves them: what a
//! controller records through `events.k8s.io/v1` (kube-rs's `Recorder`, client-go's new
//! recorder) is what `kubectl get events` and `kubectl describe` read through core/v1.

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Event as CoreEvent;
use k8s_openapi::api::events::v1::Event;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use serde_json::json;
use testenv::store::{CollectionKey, Store, WatchCacheSizing};
use testenv::{TestEnv, TestEnvOptions};

fn events_v1_event(name: &str) -> Event {
    serde_json::from_value(json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": name, "namespace": "default"},
        "eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "example.com/ctl",
        "reportingInstance": "ctl-1", "action": "Reconcile", "reason": "Synced", "type": "Normal",
        "regarding": {"kind": "Service", "name": "web", "namespace": "default"},
        "note": "synced"}))
    .unwrap()
}

#[tokio::test]
async fn an_event_written_through_one_api_is_read_changed_and_deleted_through_the_other() {
    let env = TestEnv::start().await.unwrap();
    let v1: Api<Event> = Api::namespaced(env.client(), "default");
    let core: Api<CoreEvent> = Api::namespaced(env.client(), "default");

    let made = v1
        .create(&PostParams::default(), &events_v1_event("one"))
        .await
        .unwrap();
    let read = core.get("one").await.unwrap();
    assert_eq!(read.message.as_deref(), Some("synced"));
    assert_eq!(read.involved_object.name.as_deref(), Some("web"));
    assert_eq!(read.reporting_component.as_deref(), Some("example.com/ctl"));
    assert_eq!(
        read.metadata.resource_version,
        made.metadata.resource_version
    );
    assert_eq!(read.metadata.uid, made.metadata.uid);

    let selected = core
        .list(&ListParams::default().fields("involvedObject.name=web"))
        .await
        .unwrap();
    assert_eq!(selected.items.len(), 1);
    let none = v1
        .list(&ListParams::default().fields("regarding.name=other"))
        .await
        .unwrap();
    assert!(none.items.is_empty());

    core.patch(
        "one",
        &PatchParams::default(),
        &Patch::Merge(json!({"count": 2})),
    )
    .await
    .unwrap();
    let changed = v1.get("one").await.unwrap();
    assert_eq!(changed.deprecated_count, Some(2));
    assert_eq!(changed.note.as_deref(), Some("synced"));

    // Through events.k8s.io/v1 the Event's fields are immutable, and the cause names core's.
    let refused = v1
        .patch(
            "one",
            &PatchParams::default(),
            &Patch::Merge(json!({"note": "other"})),
        )
        .await
        .unwrap_err();
    let kube::Error::Api(status) = refused else {
        panic!("expected a Status, got {refused}");
    };
    assert_eq!(status.code, 422);
    assert!(
        status
            .message
            .contains("message: Invalid value: \"other\": field is immutable"),
        "{}",
        status.message
    );

    core.delete("one", &DeleteParams::default()).await.unwrap();
    assert!(v1.get_opt("one").await.unwrap().is_none());
    env.stop().await;
}

/// The first two ADDED events of a watch, each as `seen` reads it.
async fn first_two_added<K>(
    watch: &mut (impl futures::Stream<Item = kube::Result<WatchEvent<K>>> + Unpin),
    seen: impl Fn(K) -> (String, String),
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    while let Some(WatchEvent::Added(e)) = watch.try_next().await.unwrap() {
        out.push(seen(e));
        if out.len() == 2 {
            break;
        }
    }
    out
}

#[tokio::test]
async fn a_watch_through_either_api_sees_events_written_through_both() {
    let env = TestEnv::start().await.unwrap();
    let v1: Api<Event> = Api::namespaced(env.client(), "default");
    let core: Api<CoreEvent> = Api::namespaced(env.client(), "default");
    let start = core.list(&ListParams::default()).await.unwrap();
    let rv = start.metadata.resource_version.unwrap();
    let mut core_watch = core
        .watch(&WatchParams::default().timeout(2), &rv)
        .await
        .unwrap()
        .boxed();
    let mut v1_watch = v1
        .watch(&WatchParams::default().timeout(2), &rv)
        .await
        .unwrap()
        .boxed();

    v1.create(&PostParams::default(), &events_v1_event("two"))
        .await
        .unwrap();
    let core_event: CoreEvent = serde_json::from_value(json!({
        "metadata": {"name": "three", "namespace": "default"},
        "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
        "reason": "Started", "message": "started", "type": "Normal"}))
    .unwrap();
    core.create(&PostParams::default(), &core_event)
        .await
        .unwrap();

    let expected = [
        ("two".to_string(), "synced".to_string()),
        ("three".to_string(), "started".to_string()),
    ];
    let by_core = first_two_added(&mut core_watch, |e: CoreEvent| {
        (e.metadata.name.unwrap(), e.message.unwrap_or_default())
    })
    .await;
    assert_eq!(by_core, expected);
    let by_v1 = first_two_added(&mut v1_watch, |e: Event| {
        (e.metadata.name.unwrap(), e.note.unwrap_or_default())
    })
    .await;
    assert_eq!(by_v1, expected);
    env.stop().await;
}

#[tokio::test]
async fn events_an_older_data_dir_kept_apart_are_moved_to_the_core_events() {
    // An older testenv stored events.k8s.io Events in a collection of their own.
    let store = Store::new(WatchCacheSizing::default());
    {
        let mut state = store.write();
        let rv = state.next_resource_version();
        let mut old = serde_json::to_value(events_v1_event("kept-apart")).unwrap();
        old["metadata"]["uid"] = json!("uid-kept-apart");
        old["metadata"]["resourceVersion"] = json!(rv.to_string());
        state
            .put(&CollectionKey::new("events.k8s.io", "events"), &old, None)
            .unwrap();
    }
    let env = TestEnv::start_on_store(TestEnvOptions::default(), store.clone())
        .await
        .unwrap();
    assert_eq!(
        store
            .read()
            .count(&CollectionKey::new("events.k8s.io", "events")),
        0
    );
    let core: Api<CoreEvent> = Api::namespaced(env.client(), "default");
    let moved = core.get("kept-apart").await.unwrap();
    assert_eq!(moved.message.as_deref(), Some("synced"));
    assert_eq!(moved.metadata.uid.as_deref(), Some("uid-kept-apart"));
    let v1: Api<Event> = Api::namespaced(env.client(), "default");
    assert_eq!(
        v1.get("kept-apart").await.unwrap().note.as_deref(),
        Some("synced")
    );
    env.stop().await;
}
