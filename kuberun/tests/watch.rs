//! The watch loop against a real HTTP API server (testenv): it hands over every change, lives
//! through a compaction (410 Gone, then a relist) and an apiserver restart, and ends when its
//! shutdown token fires.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use kube::runtime::watcher::{self, Event};
use kuberun::{shutdown_channel, store_reflector, watch_events};
use testenv::TestEnv;

fn config_map(name: &str) -> ConfigMap {
    serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).expect("ConfigMap")
}

fn names(seen: &Mutex<Vec<String>>) -> Vec<String> {
    seen.lock().expect("lock").clone()
}

#[tokio::test]
async fn the_watch_loop_follows_changes_through_a_compaction_and_a_restart_and_stops_on_shutdown() {
    let env = TestEnv::start().await.expect("testenv");
    let api: Api<ConfigMap> = Api::namespaced(env.client(), "default");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (trigger, shutdown) = shutdown_channel();
    let task = {
        let seen = seen.clone();
        tokio::spawn(watch_events(
            api.clone(),
            watcher::Config::default(),
            shutdown,
            move |event| {
                if let Event::Apply(cm) | Event::InitApply(cm) = event {
                    seen.lock()
                        .expect("lock")
                        .push(cm.metadata.name.unwrap_or_default());
                }
            },
        ))
    };
    let seen_name = |name: &'static str| {
        let seen = seen.clone();
        move || {
            let found = names(&seen).iter().any(|n| n == name);
            async move { found }
        }
    };
    let wait = Duration::from_secs(20);
    api.create(&PostParams::default(), &config_map("one"))
        .await
        .expect("create one");
    env.wait_until("one is seen", wait, seen_name("one"))
        .await
        .expect("one");

    // The history is gone: the watch ends, resuming gets 410, the watcher lists again.
    env.compact();
    api.create(&PostParams::default(), &config_map("two"))
        .await
        .expect("create two");
    env.wait_until("two is seen after the compaction", wait, seen_name("two"))
        .await
        .expect("two");

    env.restart().await.expect("restart");
    api.create(&PostParams::default(), &config_map("three"))
        .await
        .expect("create three");
    env.wait_until("three is seen after the restart", wait, seen_name("three"))
        .await
        .expect("three");
    assert!(!task.is_finished());

    trigger.fire();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the loop ended on shutdown")
        .expect("the loop did not panic");
}

#[tokio::test]
async fn a_store_reflector_keeps_whole_objects_until_shutdown() {
    let env = TestEnv::start().await.expect("testenv");
    let api: Api<ConfigMap> = Api::namespaced(env.client(), "default");
    api.create(&PostParams::default(), &config_map("kept"))
        .await
        .expect("create");
    let events = Arc::new(Mutex::new(0usize));
    let (trigger, shutdown) = shutdown_channel();
    let (store, keep) = {
        let events = events.clone();
        store_reflector(api, watcher::Config::default(), shutdown, move |_| {
            *events.lock().expect("lock") += 1;
        })
    };
    let task = tokio::spawn(keep);
    tokio::time::timeout(Duration::from_secs(20), store.wait_until_ready())
        .await
        .expect("the store listed")
        .expect("the writer lives");
    let names: Vec<String> = store
        .state()
        .iter()
        .filter_map(|cm| cm.metadata.name.clone())
        .collect();
    assert_eq!(names, ["kept"]);
    assert!(
        *events.lock().expect("lock") >= 2,
        "Init, InitApply, InitDone pass through"
    );
    drop(trigger);
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the loop ended when its trigger was dropped")
        .expect("the loop did not panic");
}
