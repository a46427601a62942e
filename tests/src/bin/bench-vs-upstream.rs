#![forbid(unsafe_code)]
//! svcplane's EndpointSlice controller against upstream kube-controller-manager's, side by side
//! (issue 13, item 1). Run by `scripts/bench-vs-upstream`, which builds this binary, `svcplane`
//! and the Go binaries first.
//!
//! Each peer runs alone against its own fresh kube-apiserver + etcd ([`RealCluster`]) with the
//! same workload: N Services × 15 pods, bound to Nodes and made Running and Ready by status
//! patches (as a kubelet would) before the controller starts. Per peer and round:
//!
//! - cold start: controller process spawned → every Service's slices correct (the right pod
//!   names and IPs, all ready, nothing extra), checked on a slice watch held by this harness and
//!   confirmed afterwards by one LIST;
//! - API requests of the controller: kube-apiserver's `apiserver_request_total`, before/after
//!   deltas by verb and resource, minus the requests this harness made in the same window (its
//!   client counts them); WATCHes are left out (the metric counts a watch when it ends);
//! - CPU seconds (utime + stime of /proc/PID/stat) and RSS (VmHWM peak, VmRSS steady after the
//!   churn) of the controller process;
//! - readiness churn: FLIPS/s pod Ready flips by status patch; pod Ready → slice written, from
//!   the harness's pod and slice watches; slice writes per flip.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher::{self, Event};
use serde_json::{Value, json};
use svcplane_tests::bench_report;
use svcplane_tests::fixtures::kubelet_status;
use svcplane_tests::procfs::{cpu_seconds, load_average, status_mib};
use svcplane_tests::real::{ControllerManagerOptions, RealCluster, RealClusterOptions};

const USAGE: &str = "usage: bench-vs-upstream [--smoke] [--services N] [--pods-per-service N] \
[--flips-per-second N] [--flip-seconds N] [--rounds N] [--write FILE]";

/// The label kube-apiserver's slices carry naming their Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
const BEGIN_MARK: &str = "<!-- bench-vs-upstream:begin -->";
const END_MARK: &str = "<!-- bench-vs-upstream:end -->";

#[derive(Debug, Clone)]
struct Options {
    smoke: bool,
    services: usize,
    pods_per_service: usize,
    flips_per_second: usize,
    flip_seconds: usize,
    rounds: usize,
    write: Option<PathBuf>,
}

fn parse_options() -> Result<Options, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let smoke = args.iter().any(|a| a == "--smoke");
    let mut options = if smoke {
        Options {
            smoke,
            services: 100,
            pods_per_service: 15,
            flips_per_second: 20,
            flip_seconds: 5,
            rounds: 1,
            write: None,
        }
    } else {
        Options {
            smoke,
            services: 2_000,
            pods_per_service: 15,
            flips_per_second: 20,
            flip_seconds: 60,
            rounds: 2,
            write: None,
        }
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (arg.as_str(), None),
        };
        if name == "--smoke" {
            continue;
        }
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))
        };
        let number = |v: String| {
            v.parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{name}: not a positive number: {v}"))
        };
        match name {
            "--services" => options.services = number(value()?)?,
            "--pods-per-service" => options.pods_per_service = number(value()?)?,
            "--flips-per-second" => options.flips_per_second = number(value()?)?,
            "--flip-seconds" => options.flip_seconds = number(value()?)?,
            "--rounds" => options.rounds = number(value()?)?,
            "--write" => options.write = Some(PathBuf::from(value()?)),
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown option {other}\n{USAGE}")),
        }
    }
    Ok(options)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Peer {
    Kcm,
    Svcplane,
}

impl Peer {
    fn process(self) -> &'static str {
        match self {
            Peer::Kcm => "kube-controller-manager",
            Peer::Svcplane => "svcplane",
        }
    }
    fn label(self) -> &'static str {
        match self {
            Peer::Kcm => "kcm",
            Peer::Svcplane => "svcplane",
        }
    }
}

/// (verb, resource[/subresource]) → count.
type RequestCounts = BTreeMap<(String, String), f64>;

/// The figures of one peer in one round.
#[derive(Debug, Clone, Default)]
struct RunResult {
    cold_seconds: f64,
    verified: usize,
    cpu_cold: f64,
    cpu_churn: f64,
    rss_converged_mib: f64,
    rss_steady_mib: f64,
    rss_peak_mib: f64,
    cold_requests: RequestCounts,
    churn_requests: RequestCounts,
    flips: usize,
    latencies_ms: Vec<f64>,
    unmatched: usize,
}

impl RunResult {
    fn requests_total(counts: &RequestCounts) -> f64 {
        counts.values().sum()
    }
    fn slice_writes(counts: &RequestCounts) -> f64 {
        counts
            .iter()
            .filter(|((verb, resource), _)| {
                resource == "endpointslices"
                    && matches!(verb.as_str(), "POST" | "PUT" | "PATCH" | "APPLY" | "DELETE")
            })
            .map(|(_, n)| n)
            .sum()
    }
    fn percentile(&self, p: f64) -> f64 {
        let sorted = &self.latencies_ms;
        if sorted.is_empty() {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
        sorted[rank.saturating_sub(1).min(sorted.len() - 1)]
    }
}

// ---------------------------------------------------------------------------------------------
// The harness's own requests, counted so that they can be subtracted from the apiserver's.

#[derive(Clone, Default)]
struct RequestLog(Arc<Mutex<RequestCounts>>);

impl RequestLog {
    fn record(&self, method: &http::Method, uri: &http::Uri) {
        let Some(key) = request_key(method, uri) else {
            return;
        };
        *self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key)
            .or_default() += 1.0;
    }
    fn snapshot(&self) -> RequestCounts {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The (verb, resource) kube-apiserver's `apiserver_request_total` would file a request under;
/// `None` for non-resource paths.
fn request_key(method: &http::Method, uri: &http::Uri) -> Option<(String, String)> {
    let segments: Vec<&str> = uri.path().split('/').filter(|s| !s.is_empty()).collect();
    let rest = match segments.as_slice() {
        ["api", _version, rest @ ..] => rest,
        ["apis", _group, _version, rest @ ..] => rest,
        _ => return None,
    };
    let rest = match rest {
        ["namespaces", _ns, tail @ ..] if !tail.is_empty() => tail,
        other => other,
    };
    let resource = match rest {
        [] => return None,
        [resource] | [resource, _] => resource.to_string(),
        [resource, _, sub, ..] => format!("{resource}/{sub}"),
    };
    let named = rest.len() >= 2;
    let query = uri.query().unwrap_or("");
    let watch = query
        .split('&')
        .any(|kv| kv == "watch=true" || kv == "watch=1");
    let verb = match *method {
        http::Method::GET if watch => "WATCH",
        http::Method::GET if named => "GET",
        http::Method::GET => "LIST",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::PATCH => "PATCH",
        http::Method::DELETE if named => "DELETE",
        http::Method::DELETE => "DELETECOLLECTION",
        _ => return None,
    };
    Some((verb.to_string(), resource))
}

#[derive(Clone)]
struct Counting<S> {
    inner: S,
    log: RequestLog,
}

impl<S, B> tower::Service<http::Request<B>> for Counting<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        self.log.record(request.method(), request.uri());
        self.inner.call(request)
    }
}

fn counting_client(cluster: &RealCluster, log: &RequestLog) -> anyhow::Result<kube::Client> {
    let log = log.clone();
    let builder = kube::client::ClientBuilder::try_from(cluster.config().clone())?;
    Ok(builder
        .with_layer(&tower::layer::layer_fn(move |inner| Counting {
            inner,
            log: log.clone(),
        }))
        .build())
}

/// `apiserver_request_total` summed over everything but verb and resource (WATCH left out).
async fn request_totals(client: &kube::Client) -> anyhow::Result<RequestCounts> {
    let request = http::Request::get("/metrics").body(Vec::new())?;
    let text = client.request_text(request).await?;
    let mut counts = RequestCounts::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("apiserver_request_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let label = |name: &str| {
            labels
                .split("\",")
                .find_map(|kv| kv.strip_prefix(&format!("{name}=\"")))
                .map(|v| v.trim_end_matches('"').to_string())
                .unwrap_or_default()
        };
        let (verb, resource, sub) = (label("verb"), label("resource"), label("subresource"));
        // kube-apiserver renews its own identity Lease every 10 s through its loopback client;
        // neither controller touches Leases with leader election off.
        if resource.is_empty() || verb == "WATCH" || resource == "leases" {
            continue;
        }
        let resource = if sub.is_empty() {
            resource
        } else {
            format!("{resource}/{sub}")
        };
        *counts.entry((verb, resource)).or_default() += value.trim().parse::<f64>().unwrap_or(0.0);
    }
    Ok(counts)
}

/// `after - before - harness`, dropping zeros.
fn controller_delta(
    before: &RequestCounts,
    after: &RequestCounts,
    harness: &RequestCounts,
) -> RequestCounts {
    after
        .iter()
        .filter_map(|(key, n)| {
            let d = n
                - before.get(key).copied().unwrap_or(0.0)
                - harness.get(key).copied().unwrap_or(0.0);
            (d.abs() > 0.5).then(|| (key.clone(), d))
        })
        .collect()
}

fn counts_minus(after: &RequestCounts, before: &RequestCounts) -> RequestCounts {
    after
        .iter()
        .map(|(key, n)| (key.clone(), n - before.get(key).copied().unwrap_or(0.0)))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The workload

/// The workload's shape; pod `i` is `svc-{i / per}-{i % per}` of Service `svc-{i / per}`.
#[derive(Debug, Clone, Copy)]
struct Workload {
    services: usize,
    per_service: usize,
    namespaces: usize,
    nodes: usize,
    flip_every: usize,
}

impl Workload {
    fn new(options: &Options) -> Self {
        let pods = options.services * options.pods_per_service;
        let flips = options.flips_per_second * options.flip_seconds;
        Self {
            services: options.services,
            per_service: options.pods_per_service,
            namespaces: (options.services / 20).clamp(1, 100),
            nodes: pods.div_ceil(110).max(3),
            flip_every: (pods / flips.max(1)).max(1),
        }
    }
    fn pods(&self) -> usize {
        self.services * self.per_service
    }
    fn namespace(&self, service: usize) -> String {
        format!("bench-{}", service % self.namespaces)
    }
    fn pod_name(&self, i: usize) -> String {
        format!("svc-{}-{}", i / self.per_service, i % self.per_service)
    }
    /// Pod IPs are data in the API only, never configured anywhere.
    fn pod_ip(i: usize) -> String {
        format!("10.{}.{}.{}", 64 + i / 62_500, (i / 250) % 250, i % 250 + 1)
    }
    fn node_of(&self, i: usize) -> usize {
        i % self.nodes
    }
    /// The pod index of `svc-S-K`, if it names one of the workload's pods.
    fn parse_pod(&self, name: &str) -> Option<usize> {
        let (s, k) = name.strip_prefix("svc-")?.split_once('-')?;
        let (s, k): (usize, usize) = (s.parse().ok()?, k.parse().ok()?);
        (s < self.services && k < self.per_service).then_some(s * self.per_service + k)
    }
    fn parse_service(&self, name: &str) -> Option<usize> {
        let s: usize = name.strip_prefix("svc-")?.parse().ok()?;
        (s < self.services).then_some(s)
    }
}

fn pod_status(i: usize, node: usize, ready: bool) -> Value {
    kubelet_status(&node_ip(node), &Workload::pod_ip(i), ready)
}

fn node_ip(node: usize) -> String {
    format!("10.63.{}.{}", node / 250, node % 250 + 1)
}

fn from_json<T: k8s_openapi::serde::de::DeserializeOwned>(value: Value) -> anyhow::Result<T> {
    Ok(serde_json::from_value(value)?)
}

/// Retries a request a few times: a loaded kube-apiserver may time one out.
async fn retry<F, Fut, T>(what: &str, mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match f().await {
            Ok(v) => return Ok(v),
            Err(kube::Error::Api(s)) if s.code == 409 => {
                return Err(anyhow::anyhow!("{what}: {}", s.message));
            }
            Err(e) if attempt < 5 => {
                eprintln!("bench-vs-upstream: {what}: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
            }
            Err(e) => return Err(anyhow::anyhow!("{what}: {e}")),
        }
    }
}

async fn create_workload(client: &kube::Client, w: Workload) -> anyhow::Result<()> {
    let started = Instant::now();
    let (post, patch) = (&PostParams::default(), &PatchParams::default());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for n in 0..w.namespaces {
        let ns = from_json(json!({"metadata": {"name": format!("bench-{n}")}}))?;
        retry("create namespace", || namespaces.create(post, &ns)).await?;
    }
    let nodes: Api<Node> = Api::all(client.clone());
    futures::stream::iter(0..w.nodes)
        .map(|n| {
            let nodes = nodes.clone();
            async move {
                let name = format!("node-{n}");
                let node: Node = from_json(json!({"metadata": {"name": name, "labels": {
                    "kubernetes.io/hostname": name,
                    ZONE_LABEL: format!("zone-{}", n % 3),
                }}}))?;
                retry("create node", || nodes.create(post, &node)).await?;
                let status = json!({"status": {
                    "addresses": [{"type": "InternalIP", "address": node_ip(n)},
                                  {"type": "Hostname", "address": name}],
                    "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                    "message": "set by bench-vs-upstream"}],
                }});
                let status = Patch::Merge(&status);
                retry("patch node status", || {
                    nodes.patch_status(&name, patch, &status)
                })
                .await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<()>>>()?;
    futures::stream::iter(0..w.pods())
        .map(|i| {
            let client = client.clone();
            async move {
                let service = i / w.per_service;
                let pods: Api<Pod> = Api::namespaced(client, &w.namespace(service));
                let name = w.pod_name(i);
                let node = w.node_of(i);
                let mut labels = json!({"app": format!("svc-{service}")});
                if i % w.flip_every == 0 {
                    labels["flip"] = json!("yes");
                }
                let pod: Pod = from_json(json!({
                    "metadata": {"name": name, "labels": labels},
                    "spec": {"nodeName": format!("node-{node}"),
                             "containers": [{"name": "web", "image": "registry.k8s.io/pause:3.10",
                                 "ports": [{"name": "http", "containerPort": 8080}]}]},
                }))?;
                retry("create pod", || pods.create(post, &pod)).await?;
                let status = pod_status(i, node, true);
                let status = Patch::Merge(&status);
                retry("patch pod status", || {
                    pods.patch_status(&name, patch, &status)
                })
                .await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(48)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<()>>>()?;
    futures::stream::iter(0..w.services)
        .map(|s| {
            let client = client.clone();
            async move {
                let services: Api<Service> = Api::namespaced(client, &w.namespace(s));
                let service: Service = from_json(json!({
                    "metadata": {"name": format!("svc-{s}")},
                    "spec": {"selector": {"app": format!("svc-{s}")},
                             "ports": [{"port": 80, "protocol": "TCP", "targetPort": "http"}]},
                }))?;
                retry("create service", || services.create(post, &service)).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<()>>>()?;
    eprintln!(
        "bench-vs-upstream: {} nodes, {} pods (Running, Ready), {} Services in {} namespaces created in {:.1} s",
        w.nodes,
        w.pods(),
        w.services,
        w.namespaces,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// What the harness sees on its watches

/// One endpoint as a slice holds it: the pod index, its address, its readiness.
type SliceEndpoints = Vec<(Option<usize>, String, bool)>;

#[derive(Default)]
struct Tracker {
    /// slice (ns/name) → (Service index, endpoints).
    slices: HashMap<String, (usize, SliceEndpoints)>,
    /// Service index → its slices' keys.
    by_service: HashMap<usize, Vec<String>>,
    correct: Vec<bool>,
    correct_count: usize,
    converged_at: Option<Instant>,
    /// Churn: pod index → (wanted readiness, pod watch saw it, slice watch saw it).
    pending: HashMap<usize, (bool, Option<Instant>, Option<Instant>)>,
    latencies_ms: Vec<f64>,
}

impl Tracker {
    fn new(services: usize) -> Self {
        Self {
            correct: vec![false; services],
            ..Self::default()
        }
    }

    fn service_correct(&self, w: &Workload, service: usize) -> bool {
        let mut seen = vec![false; w.per_service];
        let mut count = 0;
        for key in self.by_service.get(&service).into_iter().flatten() {
            let Some((_, endpoints)) = self.slices.get(key) else {
                continue;
            };
            for (pod, ip, ready) in endpoints {
                let Some(i) = pod.filter(|i| i / w.per_service == service) else {
                    return false;
                };
                let k = i % w.per_service;
                if seen[k] || !ready || *ip != Workload::pod_ip(i) {
                    return false;
                }
                seen[k] = true;
                count += 1;
            }
        }
        count == w.per_service
    }

    fn apply_slice(&mut self, w: &Workload, slice: &EndpointSlice, now: Instant) {
        let key = slice_key(slice);
        let Some(service) = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SERVICE_NAME_LABEL))
            .and_then(|name| w.parse_service(name))
        else {
            return;
        };
        let endpoints: SliceEndpoints = slice
            .endpoints
            .iter()
            .map(|e| {
                let pod = e
                    .target_ref
                    .as_ref()
                    .and_then(|r| r.name.as_deref())
                    .and_then(|n| w.parse_pod(n));
                let ip = e.addresses.first().cloned().unwrap_or_default();
                let ready = e.conditions.as_ref().and_then(|c| c.ready) == Some(true);
                (pod, ip, ready)
            })
            .collect();
        for (pod, _, ready) in &endpoints {
            let Some(pod) = pod else { continue };
            if let Some((target, seen, slice_seen)) = self.pending.get_mut(pod)
                && *target == *ready
            {
                match seen {
                    Some(seen) => {
                        self.latencies_ms
                            .push(now.duration_since(*seen).as_secs_f64() * 1000.0);
                        self.pending.remove(pod);
                    }
                    None => {
                        slice_seen.get_or_insert(now);
                    }
                }
            }
        }
        if self
            .slices
            .insert(key.clone(), (service, endpoints))
            .is_none()
        {
            self.by_service.entry(service).or_default().push(key);
        }
        self.refresh(w, service, now);
    }

    fn delete_slice(&mut self, w: &Workload, slice: &EndpointSlice, now: Instant) {
        let key = slice_key(slice);
        if let Some((service, _)) = self.slices.remove(&key) {
            if let Some(keys) = self.by_service.get_mut(&service) {
                keys.retain(|k| *k != key);
            }
            self.refresh(w, service, now);
        }
    }

    fn refresh(&mut self, w: &Workload, service: usize, now: Instant) {
        let correct = self.service_correct(w, service);
        if correct != self.correct[service] {
            self.correct[service] = correct;
            if correct {
                self.correct_count += 1;
            } else {
                self.correct_count -= 1;
            }
        }
        if self.correct_count == w.services && self.converged_at.is_none() {
            self.converged_at = Some(now);
        }
    }

    fn apply_pod(&mut self, w: &Workload, pod: &Pod, now: Instant) {
        let Some(i) = pod.metadata.name.as_deref().and_then(|n| w.parse_pod(n)) else {
            return;
        };
        let ready = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        let Some((target, seen, slice_seen)) = self.pending.get_mut(&i) else {
            return;
        };
        if *target != ready || seen.is_some() {
            return;
        }
        *seen = Some(now);
        if let Some(slice_seen) = slice_seen {
            // The slice arrived first (the pod watch lagged): a negative latency.
            self.latencies_ms
                .push(-(now.duration_since(*slice_seen).as_secs_f64() * 1000.0));
            self.pending.remove(&i);
        }
    }
}

fn slice_key(slice: &EndpointSlice) -> String {
    format!(
        "{}/{}",
        slice.metadata.namespace.as_deref().unwrap_or_default(),
        slice.metadata.name.as_deref().unwrap_or_default()
    )
}

/// Watches EndpointSlices into the tracker; the returned receiver turns true when the initial
/// list is in.
fn watch_slices(
    client: kube::Client,
    w: Workload,
    tracker: Arc<Mutex<Tracker>>,
) -> (
    tokio::task::JoinHandle<()>,
    tokio::sync::watch::Receiver<bool>,
) {
    let (synced_tx, synced) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move {
        let api: Api<EndpointSlice> = Api::all(client);
        let stream = watcher::watcher(api, watcher::Config::default());
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            let now = Instant::now();
            let Ok(event) = event else { continue };
            let mut t = tracker.lock().unwrap_or_else(|e| e.into_inner());
            match event {
                Event::Apply(s) | Event::InitApply(s) => t.apply_slice(&w, &s, now),
                Event::Delete(s) => t.delete_slice(&w, &s, now),
                Event::InitDone => {
                    let _ = synced_tx.send(true);
                }
                Event::Init => {}
            }
        }
    });
    (task, synced)
}

fn watch_flip_pods(
    client: kube::Client,
    w: Workload,
    tracker: Arc<Mutex<Tracker>>,
) -> (
    tokio::task::JoinHandle<()>,
    tokio::sync::watch::Receiver<bool>,
) {
    let (synced_tx, synced) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move {
        let api: Api<Pod> = Api::all(client);
        let stream = watcher::watcher(api, watcher::Config::default().labels("flip=yes"));
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            let now = Instant::now();
            let Ok(event) = event else { continue };
            match event {
                Event::Apply(p) => tracker
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .apply_pod(&w, &p, now),
                Event::InitDone => {
                    let _ = synced_tx.send(true);
                }
                _ => {}
            }
        }
    });
    (task, synced)
}

async fn wait_true(rx: &mut tokio::sync::watch::Receiver<bool>, what: &str) -> anyhow::Result<()> {
    tokio::time::timeout(Duration::from_secs(300), rx.wait_for(|v| *v))
        .await
        .map_err(|_| anyhow::anyhow!("timed out waiting for {what}"))??;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// One peer, one round

async fn run_peer(peer: Peer, options: &Options, w: Workload) -> anyhow::Result<RunResult> {
    let cluster = RealCluster::start_with(RealClusterOptions {
        // Room for N ClusterIPs; a range in the API only.
        service_cluster_ip_range: "10.96.0.0/16".into(),
        start_timeout: Duration::from_secs(120),
        ..RealClusterOptions::default()
    })
    .await?;
    let admin = cluster.try_client()?;
    create_workload(&admin, w).await?;

    let log = RequestLog::default();
    let client = counting_client(&cluster, &log)?;
    let tracker = Arc::new(Mutex::new(Tracker::new(w.services)));
    let (slice_task, mut slices_synced) = watch_slices(client.clone(), w, tracker.clone());
    wait_true(&mut slices_synced, "the slice watch").await?;
    if tracker
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .correct_count
        > 0
    {
        anyhow::bail!("slices exist before the controller started");
    }

    // Cold start.
    let before = request_totals(&client).await?;
    let harness_before = log.snapshot();
    let started = Instant::now();
    let manager = ControllerManagerOptions {
        controllers: Some("endpointslice".into()),
        leader_elect: false,
        extra_args: Vec::new(),
        timeout: Duration::from_secs(120),
    };
    match peer {
        Peer::Kcm => cluster.start_kube_controller_manager_with(&manager).await?,
        Peer::Svcplane => {
            cluster
                .start_svcplane_controller_manager_with(&manager)
                .await?
        }
    };
    let pid = cluster
        .pid_of(peer.process())
        .ok_or_else(|| anyhow::anyhow!("no {} process", peer.process()))?;
    let deadline = started + Duration::from_secs(3600);
    let converged_at = loop {
        if let Some(at) = tracker
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .converged_at
        {
            break at;
        }
        if let Some(e) = cluster.exited() {
            anyhow::bail!("{e}");
        }
        if Instant::now() > deadline {
            let t = tracker.lock().unwrap_or_else(|e| e.into_inner());
            anyhow::bail!(
                "{}: not converged after an hour ({} of {} Services correct)",
                peer.label(),
                t.correct_count,
                w.services
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let cpu_cold = cpu_seconds(pid);
    let cold_seconds = converged_at.duration_since(started).as_secs_f64();
    // Checked once more from a LIST, not only from the watch.
    let listed = Api::<EndpointSlice>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items;
    let mut check = Tracker::new(w.services);
    let now = Instant::now();
    for s in &listed {
        check.apply_slice(&w, s, now);
    }
    let verified = check.correct_count;
    drop(listed);
    drop(check);
    // Settle: no more writes should come; the figures include anything that does.
    tokio::time::sleep(Duration::from_secs(if options.smoke { 2 } else { 5 })).await;
    let harness_after = log.snapshot();
    let after = request_totals(&client).await?;
    let cold_requests = controller_delta(
        &before,
        &after,
        &counts_minus(&harness_after, &harness_before),
    );
    let rss_converged_mib = status_mib(pid, "VmRSS:");

    // Readiness churn.
    let (pod_task, mut pods_synced) = watch_flip_pods(client.clone(), w, tracker.clone());
    wait_true(&mut pods_synced, "the pod watch").await?;
    let flip_pods: Vec<usize> = (0..w.pods()).filter(|i| i % w.flip_every == 0).collect();
    let flips = options.flips_per_second * options.flip_seconds;
    let cpu_before_churn = cpu_seconds(pid);
    let before = request_totals(&client).await?;
    let harness_before = log.snapshot();
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(
        1.0 / options.flips_per_second as f64,
    ));
    let mut patches = Vec::with_capacity(flips);
    for (n, &i) in flip_pods.iter().cycle().take(flips).enumerate() {
        ticker.tick().await;
        let ready = (n / flip_pods.len()) % 2 == 1;
        tracker
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pending
            .insert(i, (ready, None, None));
        let pods: Api<Pod> = Api::namespaced(client.clone(), &w.namespace(i / w.per_service));
        let name = w.pod_name(i);
        let status = pod_status(i, w.node_of(i), ready);
        patches.push(tokio::spawn(async move {
            pods.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                .await
                .map(drop)
        }));
    }
    for patch in patches {
        patch.await??;
    }
    let settle = Instant::now() + Duration::from_secs(10);
    while Instant::now() < settle
        && !tracker
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pending
            .is_empty()
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let harness_after = log.snapshot();
    let after = request_totals(&client).await?;
    let churn_requests = controller_delta(
        &before,
        &after,
        &counts_minus(&harness_after, &harness_before),
    );
    let cpu_churn = cpu_seconds(pid) - cpu_before_churn;
    let rss_steady_mib = status_mib(pid, "VmRSS:");
    let rss_peak_mib = status_mib(pid, "VmHWM:");
    let (mut latencies_ms, unmatched) = {
        let t = tracker.lock().unwrap_or_else(|e| e.into_inner());
        (t.latencies_ms.clone(), t.pending.len())
    };
    latencies_ms.sort_by(f64::total_cmp);
    slice_task.abort();
    pod_task.abort();
    cluster.stop().await;
    Ok(RunResult {
        cold_seconds,
        verified,
        cpu_cold,
        cpu_churn,
        rss_converged_mib,
        rss_steady_mib,
        rss_peak_mib,
        cold_requests,
        churn_requests,
        flips,
        latencies_ms,
        unmatched,
    })
}

// ---------------------------------------------------------------------------------------------
// The report

fn median(mut values: Vec<f64>) -> f64 {
    values.retain(|v| !v.is_nan());
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn fmt(v: f64, decimals: usize) -> String {
    if v.is_nan() {
        "—".into()
    } else {
        format!("{v:.decimals$}")
    }
}

fn ratio(svcplane: f64, kcm: f64) -> String {
    if kcm == 0.0 || kcm.is_nan() || svcplane.is_nan() {
        if svcplane == 0.0 && kcm == 0.0 {
            "=".into()
        } else {
            "—".into()
        }
    } else {
        format!("{:.2}", svcplane / kcm)
    }
}

struct Row {
    what: &'static str,
    decimals: usize,
    get: fn(&RunResult) -> f64,
}

fn rows() -> Vec<Row> {
    vec![
        Row {
            what: "cold start to every Service's slices correct (s)",
            decimals: 1,
            get: |r| r.cold_seconds,
        },
        Row {
            what: "CPU seconds, cold start",
            decimals: 2,
            get: |r| r.cpu_cold,
        },
        Row {
            what: "CPU seconds, churn",
            decimals: 2,
            get: |r| r.cpu_churn,
        },
        Row {
            what: "peak RSS (VmHWM, MiB)",
            decimals: 1,
            get: |r| r.rss_peak_mib,
        },
        Row {
            what: "RSS after convergence (MiB)",
            decimals: 1,
            get: |r| r.rss_converged_mib,
        },
        Row {
            what: "steady RSS, after the churn (MiB)",
            decimals: 1,
            get: |r| r.rss_steady_mib,
        },
        Row {
            what: "API requests, cold start (no WATCH)",
            decimals: 0,
            get: |r| RunResult::requests_total(&r.cold_requests),
        },
        Row {
            what: "EndpointSlice writes, cold start",
            decimals: 0,
            get: |r| RunResult::slice_writes(&r.cold_requests),
        },
        Row {
            what: "API requests, churn (no WATCH)",
            decimals: 0,
            get: |r| RunResult::requests_total(&r.churn_requests),
        },
        Row {
            what: "EndpointSlice writes per flip",
            decimals: 3,
            get: |r| RunResult::slice_writes(&r.churn_requests) / r.flips.max(1) as f64,
        },
        Row {
            what: "pod Ready → slice written p50 (ms)",
            decimals: 1,
            get: |r| r.percentile(50.0),
        },
        Row {
            what: "pod Ready → slice written p99 (ms)",
            decimals: 1,
            get: |r| r.percentile(99.0),
        },
        Row {
            what: "pod Ready → slice written max (ms)",
            decimals: 1,
            get: |r| r.latencies_ms.last().copied().unwrap_or(f64::NAN),
        },
        Row {
            what: "flips not seen in a slice within 10 s",
            decimals: 0,
            get: |r| r.unmatched as f64,
        },
    ]
}

fn report(w: Workload, results: &[(Peer, RunResult)], header: &str) -> String {
    let of = |peer: Peer| -> Vec<&RunResult> {
        results
            .iter()
            .filter(|(p, _)| *p == peer)
            .map(|(_, r)| r)
            .collect()
    };
    let (kcm, svc) = (of(Peer::Kcm), of(Peer::Svcplane));
    let mut out = String::new();
    let _ = writeln!(out, "{header}\n");
    let _ = writeln!(
        out,
        "| figure (median of {} / {} runs) | kcm | svcplane | svcplane/kcm | runs kcm | runs svcplane |",
        kcm.len(),
        svc.len()
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    for row in rows() {
        let k: Vec<f64> = kcm.iter().map(|r| (row.get)(r)).collect();
        let s: Vec<f64> = svc.iter().map(|r| (row.get)(r)).collect();
        let (mk, ms) = (median(k.clone()), median(s.clone()));
        let runs = |v: &[f64]| {
            v.iter()
                .map(|x| fmt(*x, row.decimals))
                .collect::<Vec<_>>()
                .join(" / ")
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            row.what,
            fmt(mk, row.decimals),
            fmt(ms, row.decimals),
            ratio(ms, mk),
            runs(&k),
            runs(&s)
        );
    }
    let verified = |rs: &[&RunResult]| {
        rs.iter()
            .map(|r| r.verified.to_string())
            .collect::<Vec<_>>()
            .join(" / ")
    };
    let _ = writeln!(
        out,
        "\nConvergence confirmed by a LIST after the watch saw it: kcm {} of {} Services correct, svcplane {}.",
        verified(&kcm),
        w.services,
        verified(&svc)
    );
    for (title, get) in [
        (
            "cold start",
            (|r: &RunResult| &r.cold_requests) as fn(&RunResult) -> &RequestCounts,
        ),
        ("churn", |r: &RunResult| &r.churn_requests),
    ] {
        let mut keys: Vec<(String, String)> = results
            .iter()
            .flat_map(|(_, r)| get(r).keys().cloned())
            .collect();
        keys.sort();
        keys.dedup();
        let _ = writeln!(
            out,
            "\nAPI requests of the controller, {title} (medians; `apiserver_request_total` delta minus the harness's own):\n"
        );
        let _ = writeln!(out, "| verb | resource | kcm | svcplane |");
        let _ = writeln!(out, "|---|---|---|---|");
        for key in keys {
            let m = |rs: &[&RunResult]| {
                median(
                    rs.iter()
                        .map(|r| get(r).get(&key).copied().unwrap_or(0.0))
                        .collect(),
                )
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                key.0,
                key.1,
                fmt(m(&kcm), 0),
                fmt(m(&svc), 0)
            );
        }
    }
    out
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_default();
    let cores = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    format!("{cores} cores, {model}")
}

async fn run(options: Options) -> anyhow::Result<()> {
    let w = Workload::new(&options);
    let start_date = bench_report::now_utc();
    let load_start = load_average();
    eprintln!(
        "bench-vs-upstream: {} Services x {} pods, churn {} flips/s for {} s, {} round(s) per peer; load average {load_start}",
        options.services,
        options.pods_per_service,
        options.flips_per_second,
        options.flip_seconds,
        options.rounds
    );
    let mut results = Vec::new();
    let mut loads = vec![load_start.clone()];
    for round in 0..options.rounds {
        // ABBA: the order flips every round, so that drift in the machine's load hits both.
        let order = if round % 2 == 0 {
            [Peer::Kcm, Peer::Svcplane]
        } else {
            [Peer::Svcplane, Peer::Kcm]
        };
        for peer in order {
            let t = Instant::now();
            let result = run_peer(peer, &options, w).await?;
            let load = load_average();
            eprintln!(
                "bench-vs-upstream: round {} {}: cold start {:.1} s ({} of {} verified), CPU {:.2} s + {:.2} s churn, RSS peak {:.0} / steady {:.0} MiB, p99 {:.1} ms, {:.0} slice writes / {} flips ({:.0} s, load {load})",
                round + 1,
                peer.label(),
                result.cold_seconds,
                result.verified,
                w.services,
                result.cpu_cold,
                result.cpu_churn,
                result.rss_peak_mib,
                result.rss_steady_mib,
                result.percentile(99.0),
                RunResult::slice_writes(&result.churn_requests),
                result.flips,
                t.elapsed().as_secs_f64()
            );
            loads.push(load);
            results.push((peer, result));
        }
    }
    let header = format!(
        "### {} Services × {} pods ({} pods, {} nodes, {} namespaces){}\n\n{start_date} – {}; {}; load average (1/5/15 min) at the start and after each run: {}. \
Churn: {} flips/s for {} s. kube-apiserver and etcd {}, kube-controller-manager with `--controllers=endpointslice --leader-elect=false` and its defaults, \
`svcplane controller-manager --controllers=endpointslice --leader-elect=false` and its defaults; runs alternated kcm, svcplane, svcplane, kcm, ….",
        w.services,
        w.per_service,
        w.pods(),
        w.nodes,
        w.namespaces,
        if options.smoke { " — smoke" } else { "" },
        bench_report::now_utc(),
        machine(),
        loads.join("; "),
        options.flips_per_second,
        options.flip_seconds,
        "v1.34.10 / v3.6.16",
    );
    let text = report(w, &results, &header);
    println!("{text}");
    if let Some(path) = &options.write {
        bench_report::write_section(path, BEGIN_MARK, END_MARK, &text)?;
        eprintln!("bench-vs-upstream: wrote {}", path.display());
    }
    let failed = results.iter().any(|(_, r)| r.verified != w.services);
    if failed {
        anyhow::bail!("a run's LIST did not confirm every Service's slices");
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    bench_report::bench_main("bench-vs-upstream", parse_options, run)
}
