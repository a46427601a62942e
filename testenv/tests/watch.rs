//! kube_runtime against testenv: watchers, relists after 410 and after a restart, a Controller.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, reflector};
use serde_json::json;
use testenv::TestEnv;

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"k": "v"}})).unwrap()
}

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn reflector_follows_changes_and_relists_after_compaction_and_restart() {
    let env = TestEnv::start().await.unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(env.client());
    api.create(&PostParams::default(), &cm("before"))
        .await
        .unwrap();

    let (reader, writer) = reflector::store::<ConfigMap>();
    let stream = reflector::reflector(
        writer,
        watcher::watcher(api.clone(), watcher::Config::default()),
    )
    .default_backoff()
    .touched_objects();
    let task = tokio::spawn(async move {
        futures::pin_mut!(stream);
        while stream.next().await.is_some() {}
    });
    let has = |reader: reflector::Store<ConfigMap>, name: &'static str| async move {
        reader
            .state()
            .iter()
            .any(|c| c.metadata.name.as_deref() == Some(name))
    };
    env.wait_until("initial list", WAIT, || has(reader.clone(), "before"))
        .await
        .unwrap();
    api.create(&PostParams::default(), &cm("live"))
        .await
        .unwrap();
    env.wait_until("live event", WAIT, || has(reader.clone(), "live"))
        .await
        .unwrap();

    // Compaction ends the watch; resuming from the old resourceVersion gets 410 and relists.
    env.compact();
    api.create(&PostParams::default(), &cm("after-compaction"))
        .await
        .unwrap();
    env.wait_until("relist after 410", WAIT, || {
        has(reader.clone(), "after-compaction")
    })
    .await
    .unwrap();
    let lists = env
        .oplog()
        .all()
        .iter()
        .filter(|o| o.verb == "list" && o.resource == "configmaps")
        .count();
    assert!(lists >= 2, "the watcher relisted after 410 ({lists} lists)");

    env.restart().await.unwrap();
    api.create(&PostParams::default(), &cm("after-restart"))
        .await
        .unwrap();
    env.wait_until("resync after restart", WAIT, || {
        has(reader.clone(), "after-restart")
    })
    .await
    .unwrap();
    task.abort();
}

#[tokio::test]
async fn streaming_list_and_label_transitions() {
    let env = TestEnv::start().await.unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(env.client());
    api.create(&PostParams::default(), &cm("a")).await.unwrap();
    let config = watcher::Config::default()
        .labels("app=web")
        .streaming_lists();
    let mut events = watcher::watcher(api.clone(), config).boxed();
    // Initial state: nothing matches.
    loop {
        match tokio::time::timeout(WAIT, events.try_next())
            .await
            .unwrap()
            .unwrap()
        {
            Some(Event::InitDone) => break,
            Some(Event::InitApply(o)) => panic!("unexpected initial object {:?}", o.metadata.name),
            _ => {}
        }
    }
    // Labelling "a" makes it enter the selector: the watcher sees it applied.
    api.patch(
        "a",
        &Default::default(),
        &kube::api::Patch::Merge(json!({"metadata": {"labels": {"app": "web"}}})),
    )
    .await
    .unwrap();
    match tokio::time::timeout(WAIT, events.try_next())
        .await
        .unwrap()
        .unwrap()
    {
        Some(Event::Apply(o)) => assert_eq!(o.metadata.name.as_deref(), Some("a")),
        other => panic!("expected Apply, got {other:?}"),
    }
    // Removing the label makes it leave: a deletion for this watcher.
    api.patch(
        "a",
        &Default::default(),
        &kube::api::Patch::Merge(json!({"metadata": {"labels": {"app": null}}})),
    )
    .await
    .unwrap();
    match tokio::time::timeout(WAIT, events.try_next())
        .await
        .unwrap()
        .unwrap()
    {
        Some(Event::Delete(o)) => assert_eq!(o.metadata.name.as_deref(), Some("a")),
        other => panic!("expected Delete, got {other:?}"),
    }
}

#[derive(Debug, thiserror::Error)]
#[error("reconcile failed: {0}")]
struct ReconcileError(#[from] kube::Error);

#[tokio::test]
async fn a_controller_reconciles_objects_and_their_changes() {
    let env = TestEnv::start().await.unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(env.client());
    api.create(&PostParams::default(), &cm("one"))
        .await
        .unwrap();
    let reconciles = Arc::new(AtomicUsize::new(0));
    struct Ctx {
        api: Api<ConfigMap>,
        count: Arc<AtomicUsize>,
    }
    async fn reconcile(obj: Arc<ConfigMap>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
        ctx.count.fetch_add(1, Ordering::SeqCst);
        let name = obj.metadata.name.clone().unwrap_or_default();
        if obj.data.as_ref().and_then(|d| d.get("seen")).is_none() {
            ctx.api
                .patch(
                    &name,
                    &Default::default(),
                    &kube::api::Patch::Merge(json!({"data": {"seen": "yes"}})),
                )
                .await?;
        }
        Ok(Action::await_change())
    }
    fn error_policy(_: Arc<ConfigMap>, _: &ReconcileError, _: Arc<Ctx>) -> Action {
        Action::requeue(Duration::from_millis(100))
    }
    let ctx = Arc::new(Ctx {
        api: api.clone(),
        count: reconciles.clone(),
    });
    let controller = tokio::spawn(
        Controller::new(api.clone(), watcher::Config::default())
            .run(reconcile, error_policy, ctx)
            .for_each(|_| async {}),
    );
    let seen = |name: &'static str| {
        let api = api.clone();
        async move {
            api.get(name)
                .await
                .ok()
                .and_then(|c| c.data)
                .is_some_and(|d| d.contains_key("seen"))
        }
    };
    env.wait_until("existing object reconciled", WAIT, || seen("one"))
        .await
        .unwrap();
    api.create(&PostParams::default(), &cm("two"))
        .await
        .unwrap();
    env.wait_until("new object reconciled", WAIT, || seen("two"))
        .await
        .unwrap();
    assert!(reconciles.load(Ordering::SeqCst) >= 2);
    controller.abort();
}
