//! testenv's performance figures, over real HTTP on loopback:
//! - create latency (p50/p99) at a paced 1,000 creates/s with 10 open watches;
//! - watch fan-out latency (create acknowledged → event read by all 10 watchers);
//! - LIST of 10,000 pods;
//! - with `--scale`: RSS holding 150,000 pods + 10,000 Services + 20,000 EndpointSlices.
//!
//! Run: `cargo bench -p testenv --bench apiserver [-- --scale]`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use testenv::TestEnv;
use tokio::sync::Mutex;

type HttpClient = Client<HttpConnector, Full<Bytes>>;

fn pod(i: usize) -> Bytes {
    let node = i % 100;
    Bytes::from(
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("pod-{i}"), "labels": {"app": format!("svc-{}", i / 15), "pod-template-hash": "5d8f7c9b6"}},
            "spec": {"nodeName": format!("node-{node}"), "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10", "ports": [{"name": "http", "containerPort": 8080}]}]},
        })
        .to_string(),
    )
}

async fn post(client: &HttpClient, url: &str, body: Bytes) -> u16 {
    let req = http::Request::builder()
        .method("POST")
        .uri(url)
        .header("content-type", "application/json")
        .body(Full::new(body))
        .expect("request");
    match client.request(req).await {
        Ok(resp) => {
            let code = resp.status().as_u16();
            let _ = resp.into_body().collect().await;
            code
        }
        Err(_) => 0,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn pod_name(line: &[u8]) -> Option<String> {
    const KEY: &[u8] = b"\"name\":\"pod-";
    let start = line.windows(KEY.len()).position(|w| w == KEY)? + KEY.len() - 4;
    let end = start + line[start..].iter().position(|b| *b == b'"')?;
    String::from_utf8(line[start..end].to_vec()).ok()
}

/// Opens a watch and records when each pod name's ADDED event arrives.
fn open_watch(client: HttpClient, url: String, seen: Arc<Mutex<Vec<(String, Instant)>>>) {
    tokio::spawn(async move {
        let req = http::Request::builder()
            .uri(url)
            .body(Full::new(Bytes::new()))
            .expect("request");
        let Ok(resp) = client.request(req).await else {
            return;
        };
        let mut body = resp.into_body();
        let mut buf = Vec::new();
        while let Some(Ok(frame)) = body.frame().await {
            let Ok(data) = frame.into_data() else {
                continue;
            };
            buf.extend_from_slice(&data);
            while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=pos).collect();
                // The watcher runs in the server's process: find the pod name without parsing the
                // whole event, so the client costs the server as little as possible.
                if let Some(name) = pod_name(&line) {
                    seen.lock().await.push((name, Instant::now()));
                }
            }
        }
    });
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let scale = std::env::args().any(|a| a == "--scale");
    let env = TestEnv::start().await.expect("testenv");
    let base = env.url();
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(64)
        .build_http();
    let pods_url = format!("{base}/api/v1/namespaces/default/pods");

    // 10 watches from now on.
    let watchers: Vec<_> = (0..10).map(|_| Arc::new(Mutex::new(Vec::new()))).collect();
    let rv = env.server().store().read().resource_version();
    for w in &watchers {
        open_watch(
            client.clone(),
            format!("{pods_url}?watch=true&resourceVersion={rv}"),
            w.clone(),
        );
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Paced creates: 1,000/s for 5 s, open loop (a request every millisecond whatever the answers).
    let total = 5_000;
    let mut ticker = tokio::time::interval(Duration::from_millis(1));
    let mut tasks = Vec::with_capacity(total);
    let started = Instant::now();
    for i in 0..total {
        ticker.tick().await;
        let client = client.clone();
        let url = pods_url.clone();
        let body = pod(i);
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let code = post(&client, &url, body).await;
            (i, code, t, t.elapsed(), Instant::now())
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    let mut acked = vec![Instant::now(); total];
    let mut failures = 0;
    for t in tasks {
        let (i, code, _, lat, done) = t.await.expect("task");
        if code != 201 {
            failures += 1;
        }
        latencies.push(lat);
        acked[i] = done;
    }
    let elapsed = started.elapsed();
    latencies.sort();
    println!(
        "create: {total} pods at 1000/s with 10 watches in {:.2?} ({:.0}/s), failures {failures}: p50 {:?} p99 {:?} max {:?}",
        elapsed,
        total as f64 / elapsed.as_secs_f64(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default()
    );

    // Fan-out: from acknowledgement to the event read by every watcher.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut fanout = Vec::new();
    let mut last_seen: std::collections::HashMap<String, Instant> =
        std::collections::HashMap::new();
    for w in &watchers {
        for (name, at) in w.lock().await.iter() {
            let e = last_seen.entry(name.clone()).or_insert(*at);
            if *at > *e {
                *e = *at;
            }
        }
    }
    for (name, at) in &last_seen {
        if let Some(i) = name
            .strip_prefix("pod-")
            .and_then(|n| n.parse::<usize>().ok())
        {
            fanout.push(at.saturating_duration_since(acked[i]));
        }
    }
    fanout.sort();
    println!(
        "watch fan-out to 10 watchers: {} events, p50 {:?} p99 {:?} (ack → last watcher read; negative clamps to 0)",
        fanout.len(),
        percentile(&fanout, 0.5),
        percentile(&fanout, 0.99)
    );

    // Top up to 10,000 pods, then LIST them all.
    let sem = Arc::new(tokio::sync::Semaphore::new(32));
    let mut tasks = Vec::new();
    for i in total..10_000 {
        let permit = sem.clone().acquire_owned().await.expect("semaphore");
        let client = client.clone();
        let url = pods_url.clone();
        tasks.push(tokio::spawn(async move {
            post(&client, &url, pod(i)).await;
            drop(permit);
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let mut lists = Vec::new();
    for _ in 0..7 {
        let t = Instant::now();
        let req = http::Request::builder()
            .uri(&pods_url)
            .body(Full::new(Bytes::new()))
            .expect("request");
        let resp = client.request(req).await.expect("list");
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        lists.push(t.elapsed());
        assert!(bytes.len() > 1_000_000);
    }
    lists.sort();
    println!(
        "LIST 10,000 pods: median {:?} (min {:?}, max {:?}) over 7 runs",
        lists[3], lists[0], lists[6]
    );

    if scale {
        scale_test(&env, &client, &base).await;
    }
    env.stop().await;
}

/// Loads 150,000 pods, 10,000 Services and 20,000 EndpointSlices and reports RSS.
async fn scale_test(env: &TestEnv, client: &HttpClient, base: &str) {
    let before = rss_mib();
    let started = Instant::now();
    let sem = Arc::new(tokio::sync::Semaphore::new(64));
    let mut tasks = Vec::new();
    let pods_url = format!("{base}/api/v1/namespaces/default/pods");
    for i in 10_000..150_000 {
        let permit = sem.clone().acquire_owned().await.expect("semaphore");
        let client = client.clone();
        let url = pods_url.clone();
        tasks.push(tokio::spawn(async move {
            post(&client, &url, pod(i)).await;
            drop(permit);
        }));
    }
    for t in tasks.drain(..) {
        let _ = t.await;
    }
    let svc_url = format!("{base}/api/v1/namespaces/default/services");
    let slice_url = format!("{base}/apis/discovery.k8s.io/v1/namespaces/default/endpointslices");
    for s in 0..10_000 {
        let permit = sem.clone().acquire_owned().await.expect("semaphore");
        let client = client.clone();
        let (svc_url, slice_url) = (svc_url.clone(), slice_url.clone());
        tasks.push(tokio::spawn(async move {
            let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": format!("svc-{s}")},
                "spec": {"selector": {"app": format!("svc-{s}")}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}});
            post(&client, &svc_url, Bytes::from(svc.to_string())).await;
            for family in ["IPv4", "IPv6"] {
                let endpoints: Vec<_> = (0..15)
                    .map(|e| {
                        let addr = if family == "IPv4" { format!("10.{}.{}.{}", s / 256 % 256, s % 256, e + 1) } else { format!("fd00::{:x}:{:x}", s, e + 1) };
                        json!({"addresses": [addr], "conditions": {"ready": true, "serving": true, "terminating": false},
                               "nodeName": format!("node-{}", e % 100), "zone": "zone-a",
                               "targetRef": {"kind": "Pod", "namespace": "default", "name": format!("pod-{}", s * 15 + e), "uid": "00000000-0000-4000-8000-000000000000"}})
                    })
                    .collect();
                let slice = json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                    "metadata": {"generateName": format!("svc-{s}-"), "labels": {"kubernetes.io/service-name": format!("svc-{s}"), "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}},
                    "addressType": family, "endpoints": endpoints, "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]});
                post(&client, &slice_url, Bytes::from(slice.to_string())).await;
            }
            drop(permit);
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let state = env.server().store().read();
    let pods = state.count(&testenv::store::CollectionKey::new("", "pods"));
    let svcs = state.count(&testenv::store::CollectionKey::new("", "services"));
    let slices = state.count(&testenv::store::CollectionKey::new(
        "discovery.k8s.io",
        "endpointslices",
    ));
    drop(state);
    println!(
        "scale: {pods} pods, {svcs} services, {slices} endpointslices loaded in {:.1?}; RSS {:.0} MiB (before load {:.0} MiB)",
        started.elapsed(),
        rss_mib(),
        before
    );
}
