//! Write throughput of the persistent playground: 8 clients creating ConfigMaps as fast as they
//! can for 5 s against a server with a data directory (and, for reference, without one).
//! Run: `cargo test --release -p testenv --test write_throughput -- --ignored --nocapture`.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use testenv::persist;
use testenv::store::WatchCacheSizing;
use testenv::{TestEnv, TestEnvOptions};

const CLIENTS: usize = 8;
const RUN: Duration = Duration::from_secs(5);

/// Creates ConfigMaps from `CLIENTS` concurrent clients for `RUN`; returns every latency, sorted.
async fn hammer(env: &TestEnv) -> Vec<Duration> {
    let url = format!("{}/api/v1/namespaces/default/configmaps", env.url());
    let deadline = Instant::now() + RUN;
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
            let mut latencies = Vec::new();
            let mut i = 0;
            while Instant::now() < deadline {
                let body = json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": format!("cm-{c}-{i}")}, "data": {"k": "x".repeat(200)}});
                let req = http::Request::builder()
                    .method("POST")
                    .uri(&url)
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(body.to_string())))
                    .unwrap();
                let start = Instant::now();
                let resp = client.request(req).await.unwrap();
                let code = resp.status().as_u16();
                let _ = resp.into_body().collect().await.unwrap();
                assert_eq!(code, 201);
                latencies.push(start.elapsed());
                i += 1;
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    all
}

fn report(label: &str, latencies: &[Duration]) {
    let at = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "{label}: {} creates in {RUN:?} from {CLIENTS} clients = {:.0} writes/s; latency p50 {:?} p99 {:?} max {:?}",
        latencies.len(),
        latencies.len() as f64 / RUN.as_secs_f64(),
        at(0.5),
        at(0.99),
        at(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement"]
async fn measure_concurrent_creates_with_a_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let (store, persistence, _) = persist::open(
        dir.path(),
        WatchCacheSizing::default(),
        persist::PersistOptions::default(),
    )
    .unwrap();
    let env = TestEnv::start_on_store(TestEnvOptions::default(), store)
        .await
        .unwrap();
    let (appends, syncs) = (persistence.append_count(), persistence.sync_count());
    report("with a data dir", &hammer(&env).await);
    let appends = persistence.append_count() - appends;
    let syncs = persistence.sync_count() - syncs;
    println!(
        "  {appends} log records, {syncs} syncs ({:.1} records per sync)",
        appends as f64 / syncs.max(1) as f64
    );
    env.stop().await;

    let env = TestEnv::start().await.unwrap();
    report("in memory", &hammer(&env).await);
}
