//! End-to-end benchmark of the EndpointSlice controller in testenv with the node simulator
//! (not criterion: one long scenario, figures printed).
//!
//! 1. Cold start: SERVICES Services × PODS_PER_SERVICE ready pods exist; the controller
//!    starts; seconds until every Service has its slice with all endpoints ready.
//! 2. Memory: RSS of the controller, which runs alone in a child process (this executable
//!    again, with `E2E_CONTROLLER_KUBECONFIG` set), after convergence and at its peak during
//!    the cold start, split into anonymous (heap) and file-backed (the binary) pages; and the
//!    bench+testenv process before the controller starts.
//! 3. Readiness churn: FLIPS_PER_SECOND pod readiness flips for FLIP_SECONDS with batch
//!    period 0; latency from the pod's Ready change (seen on a pod watch) to the slice change
//!    that reflects it (seen on a slice watch).
//!
//! Scale by environment: `E2E_SERVICES` (default 10000), `E2E_PODS_PER_SERVICE` (15),
//! `E2E_NAMESPACES` (100), `E2E_FLIPS_PER_SECOND` (20), `E2E_FLIP_SECONDS` (60).
//! `E2E_CONTROLLER_COMMAND` runs another binary as the controller process; heaptrack cannot
//! see mimalloc's allocations, so profile one built on the system allocator, e.g.
//! `E2E_CONTROLLER_COMMAND="heaptrack -o /tmp/e2e ./controller-on-malloc"`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use controllers::endpointslice_controller::{
    EndpointSliceController, EndpointSliceControllerConfig,
};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher::{self, Event};
use prometheus_client::registry::Registry;
use serde_json::json;
use testenv::nodesim::NodeSimConfig;
use testenv::{TestEnv, TestEnvOptions};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.saturating_sub(1).min(sorted.len() - 1)]
}

fn rss_mib_of(pid: u32) -> f64 {
    status_mib_of(pid, "VmRSS:")
}

/// One `kB` figure of `/proc/PID/status` (`VmRSS:`, `RssAnon:`, `RssFile:`) in MiB.
fn status_mib_of(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The controller alone in a child process, so its memory can be measured by itself.
async fn controller_process(kubeconfig_yaml: String) {
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&kubeconfig_yaml).expect("kubeconfig");
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("client config");
    config.read_timeout = Some(Duration::from_secs(300));
    let client = kube::Client::try_from(config).expect("client");
    let mut registry = Registry::default();
    let controller = EndpointSliceController::new(
        client,
        EndpointSliceControllerConfig::default(),
        &mut registry,
    )
    .expect("config");
    controller
        .run(controllers::runtime::Shutdown::never())
        .await;
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    match std::env::var("E2E_CONTROLLER_KUBECONFIG") {
        Ok(url) => runtime.block_on(controller_process(url)),
        Err(_) => runtime.block_on(scenario()),
    }
}

async fn scenario() {
    let services = env_usize("E2E_SERVICES", 10_000);
    let per_service = env_usize("E2E_PODS_PER_SERVICE", 15);
    let namespaces = env_usize("E2E_NAMESPACES", 100).clamp(1, services.max(1));
    let flips_per_second = env_usize("E2E_FLIPS_PER_SECOND", 20);
    let flip_seconds = env_usize("E2E_FLIP_SECONDS", 60);
    let total_pods = services * per_service;
    let flips = flips_per_second * flip_seconds;
    println!(
        "e2e: {services} Services x {per_service} pods = {total_pods} pods in {namespaces} namespaces"
    );

    let node_count = total_pods.div_ceil(2000).max(3);
    let nodes = NodeSimConfig::with_node_count(node_count)
        .with_ipv4_pod_cidr_prefix(20)
        .expect("pod CIDRs")
        .with_max_pods(4000);
    let mut nodes = nodes;
    nodes.max_in_flight = 256;
    let env = TestEnv::start_with(TestEnvOptions {
        node_simulator: Some(nodes),
        // The bench reads every write of the run back from the log: keep all of it.
        server: testenv::ServerOptions {
            operation_log_capacity: None,
            ..testenv::ServerOptions::default()
        },
        ..TestEnvOptions::default()
    })
    .await
    .expect("testenv");
    let client = env.client();

    let ns_api: Api<Namespace> = Api::all(client.clone());
    for n in 0..namespaces {
        let ns: Namespace =
            serde_json::from_value(json!({"metadata": {"name": format!("bench-{n}")}}))
                .expect("ns");
        let _ = ns_api.create(&PostParams::default(), &ns).await;
    }

    // Pods to flip carry a label so the latency watch lists only them.
    let flip_every = (total_pods / flips.max(1)).max(1);
    let started = Instant::now();
    let pod_specs: Vec<(String, String, String, bool)> = (0..total_pods)
        .map(|i| {
            let s = i / per_service;
            (
                format!("bench-{}", s % namespaces),
                format!("svc-{s}-{}", i % per_service),
                format!("svc-{s}"),
                i % flip_every == 0,
            )
        })
        .collect();
    let created = futures::stream::iter(pod_specs)
        .map(|(ns, name, app, flip)| {
            let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
            async move {
                let mut labels = json!({"app": app});
                if flip {
                    labels["flip"] = json!("yes");
                }
                let pod: Pod = serde_json::from_value(json!({
                    "metadata": {"name": name, "labels": labels},
                    "spec": {"containers": [{"name": "web", "image": "nginx",
                        "ports": [{"name": "http", "containerPort": 8080}]}]}
                }))
                .expect("pod");
                api.create(&PostParams::default(), &pod).await.is_ok()
            }
        })
        .buffer_unordered(64)
        .filter(|ok| std::future::ready(*ok))
        .count()
        .await;
    println!(
        "created {created} pods in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let created_services = futures::stream::iter(0..services)
        .map(|s| {
            let api: Api<Service> = Api::namespaced(client.clone(), &format!("bench-{}", s % namespaces));
            async move {
                let svc: Service = serde_json::from_value(json!({
                    "metadata": {"name": format!("svc-{s}")},
                    "spec": {"selector": {"app": format!("svc-{s}")}, "clusterIP": format!("10.96.{}.{}", (s / 250) % 250, s % 250 + 1),
                        "ipFamilies": ["IPv4"], "ports": [{"port": 80, "protocol": "TCP", "targetPort": "http"}]}
                }))
                .expect("service");
                api.create(&PostParams::default(), &svc).await.is_ok()
            }
        })
        .buffer_unordered(64)
        .filter(|ok| std::future::ready(*ok))
        .count()
        .await;
    println!("created {created_services} Services");

    // Wait for the simulator to make every pod Ready: one successful status write per pod
    // (ready delay 0), counted from the operation log rather than by listing every pod.
    let mut status_writes = 0usize;
    let mut cursor = 0usize;
    while status_writes < total_pods {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let ops = env.oplog().since(cursor);
        cursor += ops.len();
        status_writes += ops
            .iter()
            .filter(|o| o.resource == "pods" && o.subresource == "status" && o.code < 300)
            .count();
    }
    println!(
        "all {total_pods} pods Ready after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Cold start.
    let rss_before = rss_mib();
    let mark = env.oplog().len();
    let cold = Instant::now();
    // `E2E_CONTROLLER_COMMAND` runs another controller binary instead (e.g. one on the
    // system allocator under `heaptrack`, which cannot see mimalloc's allocations).
    let mut command = match std::env::var("E2E_CONTROLLER_COMMAND") {
        Ok(line) => {
            let mut words = line.split_whitespace();
            let mut command = std::process::Command::new(words.next().expect("command"));
            command.args(words);
            command
        }
        Err(_) => std::process::Command::new(std::env::current_exe().expect("own path")),
    };
    let mut child = command
        .env("E2E_CONTROLLER_KUBECONFIG", env.kubeconfig())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("controller process");
    let child_pid = child.id();
    let mut peak_rss = 0.0f64;
    let mut creates = 0usize;
    let mut cursor = mark;
    while creates < services {
        tokio::time::sleep(Duration::from_millis(100)).await;
        peak_rss = peak_rss.max(rss_mib_of(child_pid));
        let ops = env.oplog().since(cursor);
        cursor += ops.len();
        creates += ops
            .iter()
            .filter(|o| o.resource == "endpointslices" && o.verb == "create" && o.code < 300)
            .count();
        if cold.elapsed() > Duration::from_secs(1800) {
            println!("cold start did not converge: {creates} of {services} slices");
            break;
        }
    }
    let cold_seconds = cold.elapsed().as_secs_f64();
    let rss_after = rss_mib_of(child_pid);
    let (anon_after, file_after) = (
        status_mib_of(child_pid, "RssAnon:"),
        status_mib_of(child_pid, "RssFile:"),
    );
    let slices: Api<EndpointSlice> = Api::all(client.clone());
    let listed = slices
        .list(&ListParams::default())
        .await
        .expect("slices")
        .items;
    let correct = listed
        .iter()
        .filter(|s| {
            s.endpoints.len() == per_service
                && s.endpoints
                    .iter()
                    .all(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
        })
        .count();
    println!(
        "cold start: {services} Services converged in {cold_seconds:.1} s ({correct} of {} slices correct)",
        listed.len()
    );
    println!(
        "memory: controller process RSS {rss_after:.0} MiB after convergence (peak {peak_rss:.0} MiB during the cold start); bench+testenv process {rss_before:.0} MiB"
    );
    println!(
        "memory: of which anonymous (heap, stacks) {anon_after:.0} MiB, file-backed (the binary) {file_after:.0} MiB"
    );
    drop(listed);

    // Readiness churn. Per flipped pod: the wanted readiness, when the pod watch saw it, and
    // when the slice watch saw it (a slice can arrive first when the pod watch lags).
    type Pending = HashMap<String, (bool, Option<Instant>, Option<Instant>)>;
    let pending: Arc<Mutex<Pending>> = Arc::default();
    let latencies: Arc<Mutex<Vec<f64>>> = Arc::default();
    let flip_pods: Vec<Pod> = Api::<Pod>::all(client.clone())
        .list(&ListParams::default().labels("flip=yes"))
        .await
        .expect("flip pods")
        .items;
    let pod_watch = {
        let pending = pending.clone();
        let latencies = latencies.clone();
        let api: Api<Pod> = Api::all(client.clone());
        tokio::spawn(async move {
            let stream = watcher::watcher(api, watcher::Config::default().labels("flip=yes"));
            futures::pin_mut!(stream);
            while let Some(Ok(event)) = stream.next().await {
                let Event::Apply(pod) = event else { continue };
                let now = Instant::now();
                let name = pod.metadata.name.clone().unwrap_or_default();
                let mut pending = pending.lock().unwrap_or_else(|e| e.into_inner());
                let Some((target, seen, slice_seen)) = pending.get_mut(&name) else {
                    continue;
                };
                if *target != pod_ready(&pod) || seen.is_some() {
                    continue;
                }
                *seen = Some(now);
                if let Some(slice_seen) = slice_seen {
                    let ms = -(now.duration_since(*slice_seen).as_secs_f64() * 1000.0);
                    latencies.lock().unwrap_or_else(|e| e.into_inner()).push(ms);
                    pending.remove(&name);
                }
            }
        })
    };
    let slice_watch = {
        let pending = pending.clone();
        let latencies = latencies.clone();
        tokio::spawn(async move {
            let stream = watcher::watcher(slices, watcher::Config::default());
            futures::pin_mut!(stream);
            while let Some(Ok(event)) = stream.next().await {
                let Event::Apply(slice) = event else { continue };
                let now = Instant::now();
                let mut pending = pending.lock().unwrap_or_else(|e| e.into_inner());
                for endpoint in &slice.endpoints {
                    let Some(name) = endpoint.target_ref.as_ref().and_then(|r| r.name.as_deref())
                    else {
                        continue;
                    };
                    let ready = endpoint.conditions.as_ref().and_then(|c| c.ready) == Some(true);
                    let Some((target, seen, slice_seen)) = pending.get_mut(name) else {
                        continue;
                    };
                    if *target != ready {
                        continue;
                    }
                    match seen {
                        Some(seen) => {
                            let ms = now.duration_since(*seen).as_secs_f64() * 1000.0;
                            latencies.lock().unwrap_or_else(|e| e.into_inner()).push(ms);
                            pending.remove(name);
                        }
                        None => {
                            slice_seen.get_or_insert(now);
                        }
                    }
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    let interval = Duration::from_secs_f64(1.0 / flips_per_second.max(1) as f64);
    let churn = Instant::now();
    let mut ticker = tokio::time::interval(interval);
    for (i, pod) in flip_pods.iter().cycle().take(flips).enumerate() {
        ticker.tick().await;
        let name = pod.metadata.name.clone().unwrap_or_default();
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let make_ready = (i / flip_pods.len().max(1)) % 2 == 1;
        pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.clone(), (make_ready, None, None));
        let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
        let patch = json!({"metadata": {"annotations": {"testenv.svcplane.io/ready": make_ready.to_string()}}});
        tokio::spawn(async move {
            let _ = api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await;
        });
    }
    let churn_seconds = churn.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut measured = latencies.lock().unwrap_or_else(|e| e.into_inner()).clone();
    measured.sort_by(f64::total_cmp);
    let unfinished = pending.lock().unwrap_or_else(|e| e.into_inner()).len();
    let early = measured.iter().filter(|ms| **ms < 0.0).count();
    println!("churn: {early} slice writes arrived before the pod watch delivered the change");
    println!(
        "churn: {flips} flips in {churn_seconds:.1} s; {} measured, {unfinished} unmatched; pod-ready -> slice-written ms: p50 {:.1} p90 {:.1} p99 {:.1} max {:.1}",
        measured.len(),
        percentile(&measured, 50.0),
        percentile(&measured, 90.0),
        percentile(&measured, 99.0),
        measured.last().copied().unwrap_or(f64::NAN),
    );
    let writes = env.oplog().since(mark);
    for verb in ["create", "update", "delete"] {
        let (ok, failed) = writes
            .iter()
            .filter(|o| o.resource == "endpointslices" && o.verb == verb)
            .fold((0, 0), |(ok, failed), o| {
                if o.code < 300 {
                    (ok + 1, failed)
                } else {
                    (ok, failed + 1)
                }
            });
        println!("endpointslice {verb}: {ok} ok, {failed} failed");
    }
    println!(
        "controller process RSS after churn: {:.0} MiB",
        rss_mib_of(child_pid)
    );
    pod_watch.abort();
    slice_watch.abort();
    let _ = child.kill();
    let _ = child.wait();
}

/// The allocator the `svcplane` binary runs with.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
