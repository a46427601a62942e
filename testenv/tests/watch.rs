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

/// The first line a raw watch request streams back, parsed.
async fn first_watch_event(env: &TestEnv, path_and_query: &str) -> serde_json::Value {
    use http_body_util::BodyExt;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let uri: http::Uri = format!("{}{path_and_query}", env.url()).parse().unwrap();
    let resp = client.get(uri).await.unwrap();
    assert_eq!(
        resp.status(),
        200,
        "a watch answers 200, errors come in-stream"
    );
    let mut body = resp.into_body();
    let mut buf = Vec::new();
    while !buf.contains(&b'\n') {
        let frame = tokio::time::timeout(WAIT, body.frame())
            .await
            .expect("a watch event in time")
            .expect("the stream is open")
            .unwrap();
        buf.extend_from_slice(frame.data_ref().expect("a data frame"));
    }
    let line = buf.split(|b| *b == b'\n').next().unwrap();
    serde_json::from_slice(line).unwrap()
}

#[tokio::test]
async fn each_resource_keeps_its_own_history_and_expired_watches_get_410_in_stream() {
    use testenv::store::WatchCacheSizing;
    use testenv::{ServerOptions, TestEnvOptions};
    let env = TestEnv::start_with(TestEnvOptions {
        server: ServerOptions {
            watch_cache: WatchCacheSizing::fixed(10),
            ..ServerOptions::default()
        },
        ..TestEnvOptions::default()
    })
    .await
    .unwrap();
    let configmaps: Api<ConfigMap> = Api::default_namespaced(env.client());
    let quiet = configmaps
        .create(&PostParams::default(), &cm("quiet"))
        .await
        .unwrap();
    let quiet_rv = quiet.metadata.resource_version.unwrap();
    let before_quiet: u64 = quiet_rv.parse::<u64>().unwrap() - 1;
    // Twenty changes to one Secret overflow the Secrets' window of ten, not the ConfigMaps'.
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::default_namespaced(env.client());
    let secret = serde_json::from_value(json!({"metadata": {"name": "busy"}})).unwrap();
    let first = secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let first_rv = first.metadata.resource_version.unwrap();
    let mut last_rv = String::new();
    for i in 0..20 {
        let patch = json!({"stringData": {"n": i.to_string()}});
        let s = secrets
            .patch("busy", &Default::default(), &kube::api::Patch::Merge(patch))
            .await
            .unwrap();
        last_rv = s.metadata.resource_version.unwrap();
    }

    let event = first_watch_event(
        &env,
        &format!("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={before_quiet}"),
    )
    .await;
    assert_eq!(event["type"], "ADDED");
    assert_eq!(event["object"]["metadata"]["name"], "quiet");

    let event = first_watch_event(
        &env,
        &format!("/api/v1/namespaces/default/secrets?watch=true&resourceVersion={first_rv}"),
    )
    .await;
    let oldest: u64 = last_rv.parse::<u64>().unwrap() - 10;
    assert_eq!(
        event,
        json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": format!("too old resource version: {first_rv} ({oldest})"),
            "reason": "Expired", "code": 410}})
    );
    // From the oldest resumable version, the ten kept changes replay.
    let event = first_watch_event(
        &env,
        &format!("/api/v1/namespaces/default/secrets?watch=true&resourceVersion={oldest}"),
    )
    .await;
    assert_eq!(event["type"], "MODIFIED");
    assert_eq!(
        event["object"]["metadata"]["resourceVersion"],
        (oldest + 1).to_string()
    );
}
