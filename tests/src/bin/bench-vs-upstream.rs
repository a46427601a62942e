#![forbid(unsafe_code)]
//! svcplane's EndpointSlice, Endpoints and EndpointSlice-mirroring controllers against upstream
//! kube-controller-manager's, side by side (issue 13, item 1). Run by `scripts/bench-vs-upstream`,
//! which builds this binary, `svcplane` and the Go binaries first.
//!
//! Each peer runs one controller alone (`--controllers=endpointslice`, `endpoint` or
//! `endpointslicemirroring`, the same names in both) against its own fresh kube-apiserver + etcd
//! ([`RealCluster`]) with the same workload, made before the controller starts: for the
//! EndpointSlice and Endpoints controllers N Services × 15 pods, bound to Nodes and made Running
//! and Ready by status patches (as a kubelet would); for the mirroring controller N selector-less
//! Services, each with a user-written Endpoints object of 15 addresses. Per peer and round:
//!
//! - cold start: controller process spawned → every Service's objects correct (slices, Endpoints
//!   or mirrored slices: exactly the right addresses, targets and ports, all ready, nothing
//!   extra; [`controller_bench::service_correct`]), checked on a watch held by this harness and
//!   confirmed afterwards by one LIST;
//! - API requests of the controller: kube-apiserver's `apiserver_request_total`, before/after
//!   deltas by verb and resource, minus the requests this harness made in the same window (its
//!   client counts them); WATCHes are left out (the metric counts a watch when it ends);
//! - CPU seconds (utime + stime of /proc/PID/stat) and RSS (VmHWM peak, VmRSS steady after the
//!   churn) of the controller process;
//! - churn: FLIPS/s changes of one endpoint's readiness (a pod's Ready condition by status patch,
//!   or an address moved between an Endpoints object's `addresses` and `notReadyAddresses`); the
//!   latency from the harness's watch of the changed object to its watch of the controller's
//!   output; the controller's writes per change.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Endpoints, Namespace, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher::{self, Event};
use serde_json::{Value, json};
use svcplane_tests::bench_report;
use svcplane_tests::controller_bench::{
    self, Bench, Observed, Peer, RequestCounts, RunResult, Tracker, Workload, controller_delta,
    counts_minus, observe_endpoints, observe_slice, parse_request_totals, request_key,
};
use svcplane_tests::fixtures::kubelet_status;
use svcplane_tests::procfs::{cpu_seconds, load_average, status_mib};
use svcplane_tests::real::{ControllerManagerOptions, RealCluster, RealClusterOptions};

const USAGE: &str = "usage: bench-vs-upstream [--smoke] [--controller endpointslice|endpoints|mirroring|all] \
[--services N] [--pods-per-service N] [--flips-per-second N] [--flip-seconds N] [--rounds N] [--write FILE]";

const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

#[derive(Debug, Clone)]
struct Options {
    smoke: bool,
    /// The controllers to compare, in order.
    benches: Vec<Bench>,
    /// Services per bench; each bench's own default when not given.
    services: Option<usize>,
    pods_per_service: usize,
    flips_per_second: usize,
    /// Seconds of churn; each bench's own default when not given.
    flip_seconds: Option<usize>,
    rounds: usize,
    write: Option<PathBuf>,
}

impl Options {
    fn workload(&self, bench: Bench) -> Workload {
        let services = self
            .services
            .unwrap_or_else(|| bench.default_services(self.smoke));
        Workload::new(
            bench,
            services,
            self.pods_per_service,
            self.flips_per_second * self.flip_seconds(bench),
        )
    }

    fn flip_seconds(&self, bench: Bench) -> usize {
        self.flip_seconds
            .unwrap_or_else(|| bench.default_flip_seconds(self.smoke))
    }
}

fn parse_options() -> Result<Options, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let smoke = args.iter().any(|a| a == "--smoke");
    let mut options = Options {
        smoke,
        benches: Bench::ALL.to_vec(),
        services: None,
        pods_per_service: 15,
        flips_per_second: 20,
        flip_seconds: None,
        rounds: if smoke { 1 } else { 2 },
        write: None,
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
            "--controller" => {
                let v = value()?;
                options.benches = Bench::select(&v).ok_or_else(|| {
                    format!(
                        "--controller takes endpointslice, endpoints, mirroring or all, not '{v}'\n{USAGE}"
                    )
                })?;
            }
            "--services" => options.services = Some(number(value()?)?),
            "--pods-per-service" => options.pods_per_service = number(value()?)?,
            "--flips-per-second" => options.flips_per_second = number(value()?)?,
            "--flip-seconds" => options.flip_seconds = Some(number(value()?)?),
            "--rounds" => options.rounds = number(value()?)?,
            "--write" => options.write = Some(PathBuf::from(value()?)),
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown option {other}\n{USAGE}")),
        }
    }
    Ok(options)
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

/// `apiserver_request_total` by verb and resource (WATCH left out).
async fn request_totals(client: &kube::Client) -> anyhow::Result<RequestCounts> {
    let request = http::Request::get("/metrics").body(Vec::new())?;
    Ok(parse_request_totals(&client.request_text(request).await?))
}

// ---------------------------------------------------------------------------------------------
// The workload

fn pod_status(i: usize, node: usize, ready: bool) -> Value {
    kubelet_status(&node_ip(node), &Workload::pod_ip(i), ready)
}

fn node_ip(node: usize) -> String {
    format!("10.63.{}.{}", node / 250, node % 250 + 1)
}

/// The subsets of Service `service`'s user-written Endpoints, with endpoint `not_ready` (if any)
/// among the `notReadyAddresses`.
fn user_endpoints_subsets(w: &Workload, service: usize, not_ready: Option<usize>) -> Value {
    let address = |i: usize| json!({"ip": Workload::pod_ip(i)});
    let indices = service * w.per_service..(service + 1) * w.per_service;
    let ready: Vec<Value> = indices
        .clone()
        .filter(|i| Some(*i) != not_ready)
        .map(address)
        .collect();
    let mut subset = json!({
        "addresses": ready,
        "ports": [{"port": 8080, "protocol": "TCP"}],
    });
    if let Some(i) = not_ready.filter(|i| indices.contains(i)) {
        subset["notReadyAddresses"] = json!([address(i)]);
    }
    json!([subset])
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

/// Runs `make(i)` for every `i` in `range`, `concurrency` at a time, failing on the first error.
async fn for_each_concurrent<F, Fut>(
    range: std::ops::Range<usize>,
    concurrency: usize,
    make: F,
) -> anyhow::Result<()>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    futures::stream::iter(range)
        .map(make)
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<()>>>()?;
    Ok(())
}

async fn create_workload(client: &kube::Client, w: Workload) -> anyhow::Result<()> {
    let started = Instant::now();
    let post = &PostParams::default();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for n in 0..w.namespaces {
        let ns = from_json(json!({"metadata": {"name": format!("bench-{n}")}}))?;
        retry("create namespace", || namespaces.create(post, &ns)).await?;
    }
    if w.bench.has_pods() {
        create_pods(client, w).await?;
    }
    for_each_concurrent(0..w.services, 32, |s| {
        let client = client.clone();
        async move {
            let services: Api<Service> = Api::namespaced(client.clone(), &w.namespace(s));
            let name = format!("svc-{s}");
            let mut service = json!({
                "metadata": {"name": name},
                "spec": {"ports": [{"port": 80, "protocol": "TCP", "targetPort": "http"}]},
            });
            if w.bench.has_pods() {
                service["spec"]["selector"] = json!({"app": name});
            } else {
                // Selector-less: its endpoints are the user's to write, and the mirroring
                // controller's to mirror.
                service["spec"]["ports"][0]["targetPort"] = json!(8080);
            }
            let service: Service = from_json(service)?;
            retry("create service", || services.create(post, &service)).await?;
            if !w.bench.has_pods() {
                let endpoints: Api<Endpoints> = Api::namespaced(client, &w.namespace(s));
                let object: Endpoints = from_json(json!({
                    "metadata": {"name": name},
                    "subsets": user_endpoints_subsets(&w, s, None),
                }))?;
                retry("create endpoints", || endpoints.create(post, &object)).await?;
            }
            anyhow::Ok(())
        }
    })
    .await?;
    eprintln!(
        "bench-vs-upstream: {}: {} nodes, {} {}, {} Services in {} namespaces created in {:.1} s",
        w.bench.label(),
        w.nodes,
        w.pods(),
        if w.bench.has_pods() {
            "pods (Running, Ready)"
        } else {
            "addresses in user-written Endpoints"
        },
        w.services,
        w.namespaces,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The Nodes and the pods (Running and Ready) the Services select.
async fn create_pods(client: &kube::Client, w: Workload) -> anyhow::Result<()> {
    let (post, patch) = (&PostParams::default(), &PatchParams::default());
    let nodes: Api<Node> = Api::all(client.clone());
    for_each_concurrent(0..w.nodes, 16, |n| {
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
    .await?;
    let flipped = w.flip_endpoints();
    let flipped = &flipped;
    for_each_concurrent(0..w.pods(), 48, |i| {
        let client = client.clone();
        async move {
            let service = i / w.per_service;
            let pods: Api<Pod> = Api::namespaced(client, &w.namespace(service));
            let name = w.pod_name(i);
            let node = w.node_of(i);
            let mut labels = json!({"app": format!("svc-{service}")});
            if flipped.binary_search(&i).is_ok() {
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
    .await
}

// ---------------------------------------------------------------------------------------------
// What the harness sees on its watches

fn object_key<K: kube::Resource>(object: &K) -> String {
    format!(
        "{}/{}",
        object.meta().namespace.as_deref().unwrap_or_default(),
        object.meta().name.as_deref().unwrap_or_default()
    )
}

type WatchTask = (
    tokio::task::JoinHandle<()>,
    tokio::sync::watch::Receiver<bool>,
);

/// Watches `api` (with `config`), handing each object to `seen` with `true` when it was listed,
/// added or changed, `false` when deleted, and the time its event arrived; the returned receiver
/// turns true when the initial list is in.
fn spawn_watch<K, F>(api: Api<K>, config: watcher::Config, mut seen: F) -> WatchTask
where
    K: kube::Resource + Clone + std::fmt::Debug + k8s_openapi::serde::de::DeserializeOwned,
    K: Send + 'static,
    F: FnMut(&K, bool, Instant) + Send + 'static,
{
    let (synced_tx, synced) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move {
        let stream = watcher::watcher(api, config);
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            let now = Instant::now();
            let Ok(event) = event else { continue };
            match event {
                Event::Apply(o) | Event::InitApply(o) => seen(&o, true, now),
                Event::Delete(o) => seen(&o, false, now),
                Event::InitDone => {
                    let _ = synced_tx.send(true);
                }
                Event::Init => {}
            }
        }
    });
    (task, synced)
}

/// Watches what the controller writes (slices, or Endpoints) into the tracker.
fn watch_output(client: kube::Client, w: Workload, tracker: Arc<Mutex<Tracker>>) -> WatchTask {
    fn feed(tracker: &Mutex<Tracker>, w: &Workload, key: String, o: Option<Observed>, at: Instant) {
        tracker
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .apply_output(w, &key, o, at);
    }
    let config = watcher::Config::default();
    match w.bench {
        Bench::Endpoints => {
            spawn_watch(Api::<Endpoints>::all(client), config, move |e, live, at| {
                let observed = live.then(|| observe_endpoints(&w, e)).flatten();
                feed(&tracker, &w, object_key(e), observed, at);
            })
        }
        Bench::EndpointSlice | Bench::Mirroring => spawn_watch(
            Api::<EndpointSlice>::all(client),
            config,
            move |s, live, at| {
                let observed = live.then(|| observe_slice(&w, s)).flatten();
                feed(&tracker, &w, object_key(s), observed, at);
            },
        ),
    }
}

/// Watches the objects the churn changes (the flipped pods, or the user-written Endpoints) and
/// tells the tracker when each change is seen.
fn watch_source(client: kube::Client, w: Workload, tracker: Arc<Mutex<Tracker>>) -> WatchTask {
    if w.bench.has_pods() {
        let config = watcher::Config::default().labels("flip=yes");
        spawn_watch(Api::<Pod>::all(client), config, move |pod, live, at| {
            let Some(i) = pod.metadata.name.as_deref().and_then(|n| w.parse_pod(n)) else {
                return;
            };
            let ready = pod
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            if live {
                tracker
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .apply_source(i, ready, at);
            }
        })
    } else {
        let config = watcher::Config::default();
        spawn_watch(Api::<Endpoints>::all(client), config, move |e, live, at| {
            let Some(observed) = live.then(|| observe_endpoints(&w, e)).flatten() else {
                return;
            };
            let mut t = tracker.lock().unwrap_or_else(|e| e.into_inner());
            for endpoint in &observed.endpoints {
                if let Some(i) = w.parse_ip(&endpoint.address) {
                    t.apply_source(i, endpoint.ready, at);
                }
            }
        })
    }
}

/// How many Services a LIST of the controller's objects finds correct.
async fn verified_by_list(client: &kube::Client, w: Workload) -> anyhow::Result<usize> {
    let mut check = Tracker::new(w.services);
    let now = Instant::now();
    let params = ListParams::default();
    match w.bench {
        Bench::Endpoints => {
            for e in Api::<Endpoints>::all(client.clone()).list(&params).await? {
                check.apply_output(&w, &object_key(&e), observe_endpoints(&w, &e), now);
            }
        }
        Bench::EndpointSlice | Bench::Mirroring => {
            for s in Api::<EndpointSlice>::all(client.clone())
                .list(&params)
                .await?
            {
                check.apply_output(&w, &object_key(&s), observe_slice(&w, &s), now);
            }
        }
    }
    Ok(check.correct_count)
}

/// Makes endpoint `i` `ready`: a pod status patch, or the Service's Endpoints rewritten.
async fn change(client: kube::Client, w: Workload, i: usize, ready: bool) -> anyhow::Result<()> {
    let service = i / w.per_service;
    let params = PatchParams::default();
    if w.bench.has_pods() {
        let pods: Api<Pod> = Api::namespaced(client, &w.namespace(service));
        let status = pod_status(i, w.node_of(i), ready);
        pods.patch_status(&w.pod_name(i), &params, &Patch::Merge(&status))
            .await?;
    } else {
        let endpoints: Api<Endpoints> = Api::namespaced(client, &w.namespace(service));
        // A merge patch replaces the whole list: the object as the harness wants it.
        let body = json!({"subsets": user_endpoints_subsets(&w, service, (!ready).then_some(i))});
        endpoints
            .patch(&format!("svc-{service}"), &params, &Patch::Merge(&body))
            .await?;
    }
    Ok(())
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
    let (output_task, mut output_synced) = watch_output(client.clone(), w, tracker.clone());
    wait_true(&mut output_synced, "the watch of the controller's objects").await?;
    if tracker
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .correct_count
        > 0
    {
        anyhow::bail!(
            "{}: the controller's objects exist before it started",
            w.bench.label()
        );
    }

    // Cold start.
    let before = request_totals(&client).await?;
    let harness_before = log.snapshot();
    let started = Instant::now();
    let manager = ControllerManagerOptions {
        controllers: Some(w.bench.controller().into()),
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
                "{} {}: not converged after an hour ({} of {} Services correct)",
                w.bench.label(),
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
    let verified = verified_by_list(&client, w).await?;
    // Settle: no more writes should come; the figures include anything that does.
    tokio::time::sleep(Duration::from_secs(if options.smoke { 1 } else { 5 })).await;
    let harness_after = log.snapshot();
    let after = request_totals(&client).await?;
    let cold_requests = controller_delta(
        &before,
        &after,
        &counts_minus(&harness_after, &harness_before),
    );
    let rss_converged_mib = status_mib(pid, "VmRSS:");

    // Churn.
    let (source_task, mut source_synced) = watch_source(client.clone(), w, tracker.clone());
    wait_true(&mut source_synced, "the watch of the changed objects").await?;
    let flip_endpoints = w.flip_endpoints();
    let cpu_before_churn = cpu_seconds(pid);
    let before = request_totals(&client).await?;
    let harness_before = log.snapshot();
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(
        1.0 / options.flips_per_second as f64,
    ));
    let mut changes = Vec::with_capacity(w.flips);
    for (n, &i) in flip_endpoints.iter().cycle().take(w.flips).enumerate() {
        ticker.tick().await;
        // The first pass turns each endpoint not ready, the next ready again, and so on.
        let ready = (n / flip_endpoints.len()) % 2 == 1;
        tracker
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .expect_change(i, ready);
        changes.push(tokio::spawn(change(client.clone(), w, i, ready)));
    }
    for change in changes {
        change.await??;
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
    // Anything the controller still writes after the last change is seen belongs to the churn.
    tokio::time::sleep(Duration::from_secs(if options.smoke { 1 } else { 2 })).await;
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
    output_task.abort();
    source_task.abort();
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
        flips: w.flips,
        latencies_ms,
        unmatched,
    })
}

// ---------------------------------------------------------------------------------------------
// Every round of one bench, and its table

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

/// Runs every round of `bench` and returns its table, and whether every run's LIST confirmed
/// every Service.
async fn run_bench(options: &Options, bench: Bench) -> anyhow::Result<(String, bool)> {
    let w = options.workload(bench);
    let flip_seconds = options.flip_seconds(bench);
    let start_date = bench_report::now_utc();
    let load_start = load_average();
    eprintln!(
        "bench-vs-upstream: {}: {} Services x {}, churn {} changes/s for {} s, {} round(s) per peer; load average {load_start}",
        bench.label(),
        w.services,
        w.per_service,
        options.flips_per_second,
        flip_seconds,
        options.rounds
    );
    let mut results = Vec::new();
    let mut loads = vec![load_start];
    for round in 0..options.rounds {
        let order = bench_report::abba_order(round, Peer::Kcm, Peer::Svcplane);
        for peer in order {
            let t = Instant::now();
            let result = run_peer(peer, options, w).await?;
            let load = load_average();
            eprintln!(
                "bench-vs-upstream: {} round {} {}: cold start {:.1} s ({} of {} verified), CPU {:.2} s + {:.2} s churn, RSS peak {:.0} / steady {:.0} MiB, p99 {:.1} ms, {:.0} {} writes / {} changes ({:.0} s, load {load})",
                bench.label(),
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
                RunResult::writes(&result.churn_requests, bench.output_resource()),
                bench.output_resource(),
                result.flips,
                t.elapsed().as_secs_f64()
            );
            loads.push(load);
            results.push((peer, result));
        }
    }
    let shape = if bench.has_pods() {
        format!(
            "{} Services × {} pods ({} pods, {} nodes, {} namespaces)",
            w.services,
            w.per_service,
            w.pods(),
            w.nodes,
            w.namespaces
        )
    } else {
        format!(
            "{} selector-less Services × {} addresses in user-written Endpoints ({} addresses, {} namespaces)",
            w.services,
            w.per_service,
            w.pods(),
            w.namespaces
        )
    };
    let churn = match bench {
        Bench::Mirroring => format!(
            "{} Endpoints changes/s for {flip_seconds} s, each moving one address between `addresses` and `notReadyAddresses` ({} Services' first address, in turn)",
            options.flips_per_second,
            w.flip_endpoints().len()
        ),
        Bench::EndpointSlice | Bench::Endpoints => {
            format!("{} flips/s for {flip_seconds} s", options.flips_per_second)
        }
    };
    let controller = bench.controller();
    let header = format!(
        "### {}: {shape}{}\n\n{start_date} – {}; {}; load average (1/5/15 min) at the start and after each run: {}. \
Churn: {churn}. kube-apiserver and etcd {}, kube-controller-manager with `--controllers={controller} --leader-elect=false` and its defaults, \
`svcplane controller-manager --controllers={controller} --leader-elect=false` and its defaults; runs alternated kcm, svcplane, svcplane, kcm, ….",
        match bench {
            Bench::EndpointSlice => "EndpointSlice controller",
            Bench::Endpoints => "Endpoints controller",
            Bench::Mirroring => "EndpointSlice-mirroring controller",
        },
        if options.smoke { " — smoke" } else { "" },
        bench_report::now_utc(),
        machine(),
        loads.join("; "),
        "v1.34.10 / v3.6.16",
    );
    let text = controller_bench::report(&w, &results, &header);
    let complete = results.iter().all(|(_, r)| r.verified == w.services);
    Ok((text, complete))
}

async fn run(options: Options) -> anyhow::Result<()> {
    let mut incomplete = Vec::new();
    for &bench in &options.benches {
        let (text, complete) = run_bench(&options, bench).await?;
        println!("{text}");
        if let Some(path) = &options.write {
            let (begin, end) = bench.markers();
            bench_report::write_section(path, begin, end, &text)?;
            eprintln!(
                "bench-vs-upstream: {}: wrote {}",
                bench.label(),
                path.display()
            );
        }
        if !complete {
            incomplete.push(bench.label());
        }
    }
    if !incomplete.is_empty() {
        anyhow::bail!(
            "a run's LIST did not confirm every Service's objects ({})",
            incomplete.join(", ")
        );
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    bench_report::bench_main("bench-vs-upstream", parse_options, run)
}
