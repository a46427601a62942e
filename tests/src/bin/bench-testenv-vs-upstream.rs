#![forbid(unsafe_code)]
//! testenv against kube-apiserver + etcd, side by side (issue 13, item 3). Run by
//! `scripts/bench-vs-upstream --only testenv`, which builds this binary and `testenv-server`
//! and finds the Go binaries.
//!
//! The peers alternate (upstream, testenv, testenv, upstream, …), each a fresh server. Per run:
//!
//! - start-to-ready: process spawn → `/readyz` 200 (for upstream, etcd's spawn → kube-apiserver's
//!   `/readyz`, as `RealCluster` starts them, 50 ms polls; for testenv, 5 ms polls), `--starts`
//!   times (the last start serves the rest of the run);
//! - creates at a fixed offered rate (`--rate`/s for `--create-seconds`, open loop: each create
//!   starts at its scheduled time whatever the earlier ones do) of pods into one namespace, with
//!   10 pod watches open; latency from the scheduled start, creates completed per second;
//! - LIST of every pod of that namespace (`--rate` × `--create-seconds` pods), 5 times;
//! - watch fan-out: `--watchers` watches on a second namespace, one pod created, the time until
//!   every watcher has its ADDED event; 20 times;
//! - RSS (VmRSS; for upstream kube-apiserver + etcd) idle and after filling to
//!   `--scale` × (150,000 pods, 10,000 headless Services, 20,000 EndpointSlices);
//! - then, holding those objects, creates in a closed loop: 16 clients, each creating its next
//!   pod (into a third namespace) when its last is answered, for `--create-seconds`; the creates
//!   answered per second are the most the server sustains (last, so that the RSS above holds the
//!   same objects on both sides).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use serde_json::{Value, json};
use svcplane_tests::bench_report::{self, Flags, free_port};
use svcplane_tests::closed_loop;
use svcplane_tests::procfs::{load_average, status_mib};
use svcplane_tests::real::{RealCluster, RealClusterOptions};
use svcplane_tests::testenv_bench::{PeerRun, median, percentile, table};

const USAGE: &str = "usage: bench-testenv-vs-upstream [--smoke] [--rounds N] [--starts N] \
[--rate N] [--create-seconds N] [--watchers N] [--scale F] [--write FILE]";
const BEGIN_MARK: &str = "<!-- bench-vs-upstream:testenv:begin -->";
const END_MARK: &str = "<!-- bench-vs-upstream:testenv:end -->";
/// The pod watches open during the create phase.
const CREATE_PHASE_WATCHES: usize = 10;
const LISTS: usize = 5;
const FANOUT_EVENTS: usize = 20;
/// Closed-loop concurrency of the fill to `--scale` (not timed).
const FILL_CONCURRENCY: usize = 32;
/// Clients of the timed closed-loop creates.
const CLOSED_LOOP_CLIENTS: usize = 16;

#[derive(Debug, Clone)]
struct Options {
    smoke: bool,
    rounds: usize,
    starts: usize,
    rate: usize,
    create_seconds: usize,
    watchers: usize,
    scale: f64,
    write: Option<PathBuf>,
}

fn parse_options() -> Result<Options, String> {
    let mut flags = Flags::from_env(USAGE);
    let smoke = flags.smoke();
    let mut o = Options {
        smoke,
        rounds: if smoke { 1 } else { 2 },
        starts: if smoke { 1 } else { 3 },
        rate: 1000,
        create_seconds: if smoke { 1 } else { 10 },
        watchers: if smoke { 10 } else { 100 },
        scale: if smoke { 0.0 } else { 0.1 },
        write: None,
    };
    while let Some(flag) = flags.next_flag() {
        match flag.as_str() {
            "--rounds" => o.rounds = flags.count(&flag)?,
            "--starts" => o.starts = flags.count(&flag)?,
            "--rate" => o.rate = flags.count(&flag)?,
            "--create-seconds" => o.create_seconds = flags.count(&flag)?,
            "--watchers" => o.watchers = flags.count(&flag)?,
            "--scale" => {
                let v = flags.value(&flag)?;
                o.scale = v
                    .parse::<f64>()
                    .ok()
                    .filter(|s| (0.0..=10.0).contains(s))
                    .ok_or(format!("--scale: not a number from 0 to 10: {v}"))?
            }
            "--write" => o.write = Some(PathBuf::from(flags.value(&flag)?)),
            other => return Err(flags.unknown(other)),
        }
    }
    Ok(o)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Peer {
    Upstream,
    Testenv,
}

impl Peer {
    fn label(self) -> &'static str {
        match self {
            Peer::Upstream => "kube-apiserver + etcd",
            Peer::Testenv => "testenv",
        }
    }
}

/// A started server: a client, the process ids whose RSS counts, and what stops it.
struct Running {
    client: kube::Client,
    pids: Vec<u32>,
    handle: Handle,
}

enum Handle {
    Real(Box<RealCluster>),
    Testenv(tokio::process::Child),
}

impl Running {
    async fn stop(self) {
        match self.handle {
            Handle::Real(cluster) => cluster.stop().await,
            Handle::Testenv(mut child) => {
                let _ = child.kill().await;
            }
        }
    }
    fn rss_mib(&self) -> f64 {
        self.pids.iter().map(|pid| status_mib(*pid, "VmRSS:")).sum()
    }
}

fn testenv_server() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("SVCPLANE_TESTENV_SERVER") {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe()?;
    let path = exe.with_file_name("testenv-server");
    anyhow::ensure!(
        path.exists(),
        "{} is missing (cargo build --release -p svcplane-tests --bin testenv-server)",
        path.display()
    );
    Ok(path)
}

async fn readyz(client: &kube::Client) -> bool {
    let Ok(request) = http::Request::get("/readyz").body(kube::client::Body::empty()) else {
        return false;
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), client.send(request)).await,
        Ok(Ok(response)) if response.status() == http::StatusCode::OK
    )
}

/// Starts the peer; returns it with its spawn-to-ready time in seconds.
async fn start(peer: Peer) -> anyhow::Result<(Running, f64)> {
    match peer {
        Peer::Upstream => {
            let started = Instant::now();
            let cluster = RealCluster::start_with(RealClusterOptions {
                service_cluster_ip_range: "10.96.0.0/12".into(),
                start_timeout: Duration::from_secs(120),
                ..RealClusterOptions::default()
            })
            .await?;
            let seconds = started.elapsed().as_secs_f64();
            let pids = ["etcd", "kube-apiserver"]
                .iter()
                .filter_map(|name| cluster.pid_of(name))
                .collect();
            let client = cluster.client();
            Ok((
                Running {
                    client,
                    pids,
                    handle: Handle::Real(Box::new(cluster)),
                },
                seconds,
            ))
        }
        Peer::Testenv => {
            let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
            let url: http::Uri = format!("http://{addr}").parse()?;
            let client = kube::Client::try_from(kube::Config::new(url))?;
            let started = Instant::now();
            let child = tokio::process::Command::new(testenv_server()?)
                .args(["--listen", &addr.to_string()])
                .stdout(Stdio::null())
                .kill_on_drop(true)
                .spawn()?;
            let pid = child.id().unwrap_or_default();
            while !readyz(&client).await {
                anyhow::ensure!(
                    started.elapsed() < Duration::from_secs(60),
                    "testenv-server did not answer /readyz within 60 s"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let seconds = started.elapsed().as_secs_f64();
            Ok((
                Running {
                    client,
                    pids: vec![pid],
                    handle: Handle::Testenv(child),
                },
                seconds,
            ))
        }
    }
}

fn pod(name: &str, i: usize) -> anyhow::Result<Pod> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": format!("app-{}", i / 15), "tier": "bench"}},
        "spec": {"containers": [{
            "name": "app",
            "image": "registry.k8s.io/pause:3.10",
            "ports": [{"name": "http", "containerPort": 8080}],
            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
        }]},
    }))?)
}

async fn create_namespace(client: &kube::Client, name: &str) -> anyhow::Result<()> {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    Ok(())
}

/// Opens `n` pod watches on `namespace` from `resource_version`; each sends the name of every
/// pod it sees ADDED, with its watcher index.
async fn open_watches(
    client: &kube::Client,
    namespace: &str,
    n: usize,
    resource_version: &str,
    tx: tokio::sync::mpsc::UnboundedSender<(usize, String)>,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let api = Api::<Pod>::namespaced(client.clone(), namespace);
    let mut tasks = Vec::with_capacity(n);
    for index in 0..n {
        let stream = api
            .watch(&WatchParams::default().timeout(290), resource_version)
            .await?;
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Ok(Some(event)) = stream.try_next().await {
                if let WatchEvent::Added(pod) = event {
                    let name = pod.metadata.name.unwrap_or_default();
                    if tx.send((index, name)).is_err() {
                        return;
                    }
                }
            }
        }));
    }
    Ok(tasks)
}

/// Creates `rate × seconds` pods at `rate`/s (open loop) with 10 watches open.
async fn create_phase(
    client: &kube::Client,
    options: &Options,
    run: &mut PeerRun,
) -> anyhow::Result<()> {
    create_namespace(client, "bench").await?;
    let api = Api::<Pod>::namespaced(client.clone(), "bench");
    let rv = api
        .list_metadata(&ListParams::default().limit(1))
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let watches = open_watches(client, "bench", CREATE_PHASE_WATCHES, &rv, tx).await?;
    // Drain the watches' events (the watches are load, not a measurement here).
    let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });

    let total = options.rate * options.create_seconds;
    let interval = Duration::from_secs_f64(1.0 / options.rate as f64);
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        let at = start + interval * i as u32;
        tokio::time::sleep_until(at).await;
        let api = api.clone();
        let pod = pod(&format!("pod-{i}"), i)?;
        tasks.push(tokio::spawn(async move {
            let result = api.create(&PostParams::default(), &pod).await;
            (result.is_ok(), at.elapsed(), tokio::time::Instant::now())
        }));
    }
    let mut last = start;
    for task in tasks {
        let (ok, latency, done) = task.await?;
        if ok {
            run.create_ms.push(latency.as_secs_f64() * 1000.0);
        } else {
            run.create_errors += 1;
        }
        last = last.max(done);
    }
    run.creates_per_second = run.create_ms.len() as f64 / (last - start).as_secs_f64();
    for w in watches {
        w.abort();
    }
    drain.abort();
    Ok(())
}

/// Creates pods into a namespace of their own from CLOSED_LOOP_CLIENTS clients in a closed loop
/// for `--create-seconds`.
async fn closed_create_phase(
    client: &kube::Client,
    options: &Options,
    run: &mut PeerRun,
) -> anyhow::Result<()> {
    create_namespace(client, "closed").await?;
    let api = Api::<Pod>::namespaced(client.clone(), "closed");
    let within = Duration::from_secs(options.create_seconds as u64);
    let outcome = closed_loop::run(CLOSED_LOOP_CLIENTS, within, usize::MAX, move |i| {
        let api = api.clone();
        async move {
            let pod = pod(&format!("closed-{i}"), i).map_err(|e| e.to_string())?;
            api.create(&PostParams::default(), &pod)
                .await
                .map(drop)
                .map_err(|e| format!("closed-{i}: {e}"))
        }
    })
    .await;
    if let Some(first) = outcome.errors.first() {
        eprintln!(
            "bench-testenv-vs-upstream: {} closed-loop creates failed, the first: {first}",
            outcome.errors.len()
        );
    }
    run.create_errors += outcome.errors.len();
    run.closed_create_ms = outcome.latencies_ms;
    run.closed_creates_per_second = outcome.per_second;
    Ok(())
}

async fn list_phase(client: &kube::Client, run: &mut PeerRun) -> anyhow::Result<()> {
    let api = Api::<Pod>::namespaced(client.clone(), "bench");
    for _ in 0..LISTS {
        let started = Instant::now();
        let list = api.list(&ListParams::default()).await?;
        run.list_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        run.listed = list.items.len();
    }
    Ok(())
}

async fn fanout_phase(
    client: &kube::Client,
    options: &Options,
    run: &mut PeerRun,
) -> anyhow::Result<()> {
    create_namespace(client, "fanout").await?;
    let api = Api::<Pod>::namespaced(client.clone(), "fanout");
    let rv = api
        .list_metadata(&ListParams::default().limit(1))
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let watches = open_watches(client, "fanout", options.watchers, &rv, tx).await?;
    for event in 0..FANOUT_EVENTS {
        let name = format!("fan-{event}");
        let started = Instant::now();
        api.create(&PostParams::default(), &pod(&name, event)?)
            .await?;
        let mut seen = vec![false; options.watchers];
        let mut count = 0;
        while count < options.watchers {
            let Ok(Some((index, pod))) =
                tokio::time::timeout(Duration::from_secs(30), rx.recv()).await
            else {
                anyhow::bail!(
                    "watch fan-out: {count} of {} watchers saw {name} within 30 s",
                    options.watchers
                );
            };
            if pod == name && !seen[index] {
                seen[index] = true;
                count += 1;
            }
        }
        run.fanout_ms.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    for w in watches {
        w.abort();
    }
    Ok(())
}

/// Creates `count` objects made by `make`, FILL_CONCURRENCY at a time.
async fn fill<K, F>(api: Api<K>, count: usize, first: usize, make: F) -> anyhow::Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
    F: Fn(usize) -> anyhow::Result<K>,
{
    let make = Arc::new(make);
    futures::stream::iter(first..first + count)
        .map(|i| {
            let api = api.clone();
            let make = make.clone();
            async move {
                let object = make(i)?;
                api.create(&PostParams::default(), &object).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(FILL_CONCURRENCY)
        .try_collect::<()>()
        .await
}

/// Fills to `scale` × (150,000 pods, 10,000 headless Services, 20,000 EndpointSlices), counting
/// the pods the create phase made.
async fn fill_phase(
    client: &kube::Client,
    options: &Options,
    already: usize,
) -> anyhow::Result<()> {
    let pods = (150_000.0 * options.scale) as usize;
    let services = (10_000.0 * options.scale) as usize;
    let slices = (20_000.0 * options.scale) as usize;
    fill::<Pod, _>(
        Api::namespaced(client.clone(), "bench"),
        pods.saturating_sub(already),
        already,
        |i| pod(&format!("pod-{i}"), i),
    )
    .await?;
    fill::<Service, _>(Api::namespaced(client.clone(), "bench"), services, 0, |i| {
        Ok(serde_json::from_value(json!({
            "metadata": {"name": format!("svc-{i}")},
            "spec": {"clusterIP": "None", "selector": {"app": format!("app-{i}")},
                     "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
        }))?)
    })
    .await?;
    fill::<EndpointSlice, _>(Api::namespaced(client.clone(), "bench"), slices, 0, |i| {
        let endpoints: Vec<Value> = (0..8)
            .map(|e| {
                let n = i * 8 + e;
                json!({"addresses": [format!("10.{}.{}.{}", 1 + n / 65536 % 200, n / 256 % 256, n % 256)],
                       "conditions": {"ready": true},
                       "targetRef": {"kind": "Pod", "namespace": "bench", "name": format!("pod-{}", n % 150_000)}})
            })
            .collect();
        Ok(serde_json::from_value(json!({
            "metadata": {"name": format!("svc-{}-{i}", i / 2),
                         "labels": {"kubernetes.io/service-name": format!("svc-{}", i / 2)}},
            "addressType": "IPv4",
            "endpoints": endpoints,
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        }))?)
    })
    .await?;
    Ok(())
}

async fn run_peer(peer: Peer, options: &Options) -> anyhow::Result<PeerRun> {
    let mut run = PeerRun::default();
    // The bare starts first; the last start serves the workload.
    for _ in 1..options.starts {
        let (running, seconds) = start(peer).await?;
        run.ready_seconds.push(seconds);
        running.stop().await;
    }
    let (running, seconds) = start(peer).await?;
    run.ready_seconds.push(seconds);
    let result = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        run.rss_idle_mib = running.rss_mib();
        create_phase(&running.client, options, &mut run).await?;
        list_phase(&running.client, &mut run).await?;
        fanout_phase(&running.client, options, &mut run).await?;
        fill_phase(
            &running.client,
            options,
            run.create_ms.len() + run.create_errors,
        )
        .await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        run.rss_mib = running.rss_mib();
        closed_create_phase(&running.client, options, &mut run).await?;
        anyhow::Ok(())
    }
    .await;
    running.stop().await;
    result.map(|()| run)
}

async fn run(options: Options) -> anyhow::Result<()> {
    let start_date = bench_report::now_utc();
    let mut loads = vec![load_average()];
    let mut upstream = Vec::new();
    let mut testenv = Vec::new();
    for round in 0..options.rounds {
        let order = bench_report::abba_order(round, Peer::Upstream, Peer::Testenv);
        for peer in order {
            let t = Instant::now();
            let r = run_peer(peer, &options).await?;
            let load = load_average();
            eprintln!(
                "bench-testenv-vs-upstream: round {} {}: ready {:.3} s, create p50 {:.2} / p99 {:.2} ms, {:.0} creates/s ({} failed), closed loop {:.0}/s (p99 {:.2} ms), LIST {:.1} ms ({} pods), fan-out {:.2} ms, RSS {:.0} → {:.0} MiB ({:.0} s, load {load})",
                round + 1,
                peer.label(),
                median(&r.ready_seconds),
                percentile(&r.create_ms, 50.0),
                percentile(&r.create_ms, 99.0),
                r.creates_per_second,
                r.create_errors,
                r.closed_creates_per_second,
                percentile(&r.closed_create_ms, 99.0),
                median(&r.list_ms),
                r.listed,
                median(&r.fanout_ms),
                r.rss_idle_mib,
                r.rss_mib,
                t.elapsed().as_secs_f64()
            );
            loads.push(load);
            match peer {
                Peer::Upstream => upstream.push(r),
                Peer::Testenv => testenv.push(r),
            }
        }
    }
    let header = format!(
        "### testenv vs kube-apiserver + etcd{}\n\n{start_date} – {}; load average (1/5/15 min) at the start and after each run: {}. \
{} start(s) per run; creates: {}/s offered for {} s ({} pods) with {} pod watches open; LIST of those pods ×{}; \
fan-out: {} watchers × {} events; fill: scale {} of 150,000 pods + 10,000 headless Services + 20,000 EndpointSlices \
({} pods, {} Services, {} slices); then, holding those, {CLOSED_LOOP_CLIENTS} clients creating pods in a closed loop for {} s. kube-apiserver v1.34.10 + etcd v3.6.16 as `RealCluster` starts them (range 10.96.0.0/12); \
testenv with its default options (`testenv-server`). Runs alternated upstream, testenv, testenv, upstream, ….\n\n",
        if options.smoke { " — smoke" } else { "" },
        bench_report::now_utc(),
        loads.join("; "),
        options.starts,
        options.rate,
        options.create_seconds,
        options.rate * options.create_seconds,
        CREATE_PHASE_WATCHES,
        LISTS,
        options.watchers,
        FANOUT_EVENTS,
        options.scale,
        ((150_000.0 * options.scale) as usize).max(options.rate * options.create_seconds),
        (10_000.0 * options.scale) as usize,
        (20_000.0 * options.scale) as usize,
        options.create_seconds,
    );
    let text = format!("{header}{}", table(&upstream, &testenv));
    println!("{text}");
    if let Some(path) = &options.write {
        bench_report::write_section(path, BEGIN_MARK, END_MARK, &text)?;
        eprintln!("bench-testenv-vs-upstream: wrote {}", path.display());
    }
    let expected = options.rate * options.create_seconds;
    let short = upstream
        .iter()
        .chain(&testenv)
        .any(|r| r.create_errors > 0 || r.listed != expected);
    if short {
        anyhow::bail!("a run had failed creates or a LIST short of the {expected} pods created");
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    bench_report::bench_main("bench-testenv-vs-upstream", parse_options, run)
}
