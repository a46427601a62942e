//! Memory stays bounded under churn: many thousands of creates, updates and deletes over a small
//! live set of Services and Pods leave the operation log, the watch history and the store no
//! bigger than their bounds.
//!
//! The RSS measurement is ignored by default (it takes a minute and wants a quiet machine):
//! `cargo test --release -p testenv --test memory -- --ignored --nocapture`.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use testenv::store::{CollectionKey, WatchCacheSizing};
use testenv::{ServerOptions, TestEnv, TestEnvOptions};

/// Services and pods each worker owns: 4 workers keep at most 40 Services and 120 Pods alive.
const WORKERS: usize = 4;
const SERVICES_PER_WORKER: usize = 10;
const PODS_PER_WORKER: usize = 30;
/// Updates an object gets between its create and its delete.
const UPDATES: u32 = 3;

fn service(name: &str) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
    }))
    .unwrap()
}

fn pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10",
            "ports": [{"name": "http", "containerPort": 8080}]}]}
    }))
    .unwrap()
}

/// One step of an object's life: create it, update it `UPDATES` times, delete it, again.
async fn step<K>(api: &Api<K>, name: &str, age: &mut u32, make: impl Fn(&str) -> K)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    match *age {
        0 => {
            api.create(&PostParams::default(), &make(name))
                .await
                .unwrap();
        }
        n if n <= UPDATES => {
            let patch = json!({"metadata": {"annotations": {"churn/step": n.to_string()}}});
            api.patch(name, &PatchParams::default(), &Patch::Merge(patch))
                .await
                .unwrap();
        }
        _ => {
            api.delete(name, &DeleteParams::default()).await.unwrap();
            *age = 0;
            return;
        }
    }
    *age += 1;
}

/// Where each worker's objects are in their lives, kept across runs.
#[derive(Clone, Copy)]
struct Ages {
    services: [u32; SERVICES_PER_WORKER],
    pods: [u32; PODS_PER_WORKER],
    step: usize,
}

/// A small live set churned by `WORKERS` concurrent clients.
struct Churn {
    workers: Vec<Ages>,
}

impl Churn {
    fn new() -> Self {
        let ages = Ages {
            services: [0; SERVICES_PER_WORKER],
            pods: [0; PODS_PER_WORKER],
            step: 0,
        };
        Self {
            workers: vec![ages; WORKERS],
        }
    }

    /// Makes `ops` API writes, a quarter on Services and the rest on Pods, each worker cycling
    /// through its own names.
    async fn run(&mut self, env: &TestEnv, ops: usize) {
        let mut tasks = Vec::new();
        for (w, mut ages) in self.workers.iter().copied().enumerate() {
            let services: Api<Service> = Api::default_namespaced(env.client());
            let pods: Api<Pod> = Api::default_namespaced(env.client());
            let share = ops / WORKERS + usize::from(w < ops % WORKERS);
            tasks.push(tokio::spawn(async move {
                for _ in 0..share {
                    let i = ages.step;
                    ages.step += 1;
                    if i % 4 == 0 {
                        let k = (i / 4) % SERVICES_PER_WORKER;
                        let name = format!("svc-{w}-{k}");
                        step(&services, &name, &mut ages.services[k], service).await;
                    } else {
                        let k = (i - i / 4 - 1) % PODS_PER_WORKER;
                        let name = format!("pod-{w}-{k}");
                        step(&pods, &name, &mut ages.pods[k], pod).await;
                    }
                }
                ages
            }));
        }
        for (w, t) in tasks.into_iter().enumerate() {
            self.workers[w] = t.await.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_leaves_the_log_the_history_and_the_store_within_their_bounds() {
    // Events count as stale at once, so each resource's history stays at the lower bound (100)
    // however fast the churn; the log keeps 1,000 operations.
    let sizing = WatchCacheSizing {
        event_fresh: Duration::ZERO,
        ..WatchCacheSizing::default()
    };
    let env = TestEnv::start_with(TestEnvOptions {
        server: ServerOptions {
            watch_cache: sizing,
            operation_log_capacity: Some(1_000),
            ..ServerOptions::default()
        },
        ..TestEnvOptions::default()
    })
    .await
    .unwrap();
    let mark = env.oplog().len();
    let mut churn = Churn::new();
    churn.run(&env, 6_000).await;

    let log = env.oplog();
    assert!(log.len() >= mark + 6_000, "every request is counted");
    assert_eq!(log.retained(), 1_000);
    assert!(
        log.try_since(mark).is_err(),
        "a mark the ring dropped is refused"
    );
    assert_eq!(log.since(log.len() - 10).len(), 10);

    let store = env.server().store().read();
    for plural in ["services", "pods"] {
        let c = CollectionKey::new("", plural);
        assert_eq!(store.history_len(&c), 100, "{plural} history");
        assert_eq!(store.history_capacity(&c), 100, "{plural} history capacity");
    }
    let system_namespaces = testenv::SYSTEM_NAMESPACES.len();
    let live = WORKERS * (SERVICES_PER_WORKER + PODS_PER_WORKER);
    assert!(
        store.object_count() <= live + system_namespaces,
        "{} objects",
        store.object_count()
    );
}

/// The resident set size of this process, in MiB.
fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a minute-long RSS measurement; run with --ignored --nocapture"]
async fn rss_stays_flat_over_100k_operations() {
    let total: usize = std::env::var("CHURN_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    // Default options, as `svcplane up` runs them.
    let env = TestEnv::start().await.unwrap();
    let mut churn = Churn::new();
    // Warm up: connections, the allocator's arenas, the first objects of each kind.
    churn.run(&env, 2_000).await;
    let started = Instant::now();
    println!("RSS at start: {:.1} MiB", rss_mib());
    let tenth = total / 10;
    for part in 1..=10 {
        churn.run(&env, tenth).await;
        let (services, pods, objects) = {
            let store = env.server().store().read();
            (
                store.history_len(&CollectionKey::new("", "services")),
                store.history_len(&CollectionKey::new("", "pods")),
                store.object_count(),
            )
        };
        println!(
            "RSS after {:>6} operations ({:>5.1} s): {:.1} MiB; history: {services} services, {pods} pods; log: {}; objects: {objects}",
            part * tenth,
            started.elapsed().as_secs_f64(),
            rss_mib(),
            env.oplog().retained(),
        );
    }
}
