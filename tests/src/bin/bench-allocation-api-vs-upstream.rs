#![forbid(unsafe_code)]
//! Allocation through the API, side by side (issue 13, item 2): Service creates/s and latency
//! against kube-apiserver + etcd (kube-apiserver's own ClusterIP and NodePort allocators) and
//! against `svcplane up` (svcplane's registry inside the embedded API server). Run by
//! `scripts/bench-vs-upstream --only allocator`, which builds this binary and svcplane and finds
//! the Go binaries.
//!
//! The peers alternate (upstream, svcplane, svcplane, upstream, …), each a fresh server. Per run,
//! after a warm-up of `--clients` × 5 creates in a namespace of its own:
//!
//! - ClusterIP phase: `--clients` clients, each creating selector-less ClusterIP Services one
//!   after the other (closed loop) for `--seconds`; latency of each create, creates per second;
//! - NodePort phase: the same with type NodePort (a ClusterIP and a node port each), for
//!   `--seconds` or until `--node-ports` Services, whichever comes first (the default range holds
//!   2,768 ports);
//! - after each phase the namespace is listed and what was allocated checked: as many Services as
//!   creates succeeded, every ClusterIP inside 10.96.0.0/12 and every node port inside
//!   30000-32767, none given twice.
//!
//! Any failed create or failed check fails the run, after the table is printed.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::api::{Api, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::json;
use svcplane_tests::allocation_api_bench::{PeerRun, PhaseRun, check_allocations, table};
use svcplane_tests::bench_report::{self, Flags, free_port};
use svcplane_tests::closed_loop;
use svcplane_tests::figures::percentile;
use svcplane_tests::procfs::load_average;
use svcplane_tests::real::{RealCluster, RealClusterOptions};

const USAGE: &str = "usage: bench-allocation-api-vs-upstream [--smoke] [--rounds N] [--clients N] \
[--seconds N] [--node-ports N] [--write FILE]";
const BEGIN_MARK: &str = "<!-- bench-vs-upstream:allocation-api:begin -->";
const END_MARK: &str = "<!-- bench-vs-upstream:allocation-api:end -->";
const CLUSTER_IP_RANGE: &str = "10.96.0.0/12";
const NODE_PORTS: std::ops::RangeInclusive<i32> = 30000..=32767;
const WARM_UP_PER_CLIENT: usize = 5;

#[derive(Debug, Clone)]
struct Options {
    smoke: bool,
    rounds: usize,
    clients: usize,
    seconds: usize,
    node_ports: usize,
    write: Option<PathBuf>,
}

fn parse_options() -> Result<Options, String> {
    let mut flags = Flags::from_env(USAGE);
    let smoke = flags.smoke();
    let mut o = Options {
        smoke,
        rounds: if smoke { 1 } else { 2 },
        clients: 16,
        seconds: if smoke { 1 } else { 10 },
        node_ports: if smoke { 100 } else { 2000 },
        write: None,
    };
    while let Some(flag) = flags.next_flag() {
        match flag.as_str() {
            "--rounds" => o.rounds = flags.count(&flag)?,
            "--clients" => o.clients = flags.count(&flag)?,
            "--seconds" => o.seconds = flags.count(&flag)?,
            "--node-ports" => {
                let n = flags.count(&flag)?;
                let capacity = NODE_PORTS.count();
                if n > capacity {
                    return Err(format!(
                        "--node-ports: at most {capacity}, the ports of {}-{}",
                        NODE_PORTS.start(),
                        NODE_PORTS.end()
                    ));
                }
                o.node_ports = n;
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
    Svcplane,
}

impl Peer {
    fn label(self) -> &'static str {
        match self {
            Peer::Upstream => "kube-apiserver + etcd",
            Peer::Svcplane => "svcplane up",
        }
    }
}

/// A started peer: a client and what stops it.
struct Running {
    client: kube::Client,
    handle: Handle,
}

enum Handle {
    Real(Box<RealCluster>),
    /// `svcplane up`, and the directory holding its kubeconfig and log.
    Up(Box<tokio::process::Child>, tempfile::TempDir),
}

impl Running {
    async fn stop(self) {
        match self.handle {
            Handle::Real(cluster) => cluster.stop().await,
            Handle::Up(mut child, _dir) => {
                let _ = child.kill().await;
            }
        }
    }
}

/// The svcplane binary: `$SVCPLANE_BIN`, else the one built beside this benchmark.
fn svcplane_bin() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("SVCPLANE_BIN") {
        return Ok(PathBuf::from(path));
    }
    let path = std::env::current_exe()?.with_file_name("svcplane");
    anyhow::ensure!(
        path.exists(),
        "{} is missing (cargo build --release -p svcplane --bin svcplane, or set SVCPLANE_BIN)",
        path.display()
    );
    Ok(path)
}

async fn start(peer: Peer) -> anyhow::Result<Running> {
    match peer {
        Peer::Upstream => {
            let cluster = RealCluster::start_with(RealClusterOptions {
                service_cluster_ip_range: CLUSTER_IP_RANGE.into(),
                service_node_port_range: format!("{}-{}", NODE_PORTS.start(), NODE_PORTS.end()),
                start_timeout: Duration::from_secs(120),
                ..RealClusterOptions::default()
            })
            .await?;
            Ok(Running {
                client: cluster.client(),
                handle: Handle::Real(Box::new(cluster)),
            })
        }
        Peer::Svcplane => {
            let dir = tempfile::tempdir()?;
            let kubeconfig = dir.path().join("kubeconfig");
            let log = std::fs::File::create(dir.path().join("stderr"))?;
            // One simulated node: the nodes' heartbeats are load the upstream peer does not
            // carry, and no Service here needs a node.
            let mut child = tokio::process::Command::new(svcplane_bin()?)
                .arg("up")
                .args(["--listen", &format!("127.0.0.1:{}", free_port()?)])
                .args(["--nodes", "1"])
                .args(["--service-cluster-ip-range", CLUSTER_IP_RANGE])
                .args([
                    "--service-node-port-range",
                    &format!("{}-{}", NODE_PORTS.start(), NODE_PORTS.end()),
                ])
                .arg("--kubeconfig-out")
                .arg(&kubeconfig)
                .stdout(Stdio::null())
                .stderr(log)
                .kill_on_drop(true)
                .spawn()?;
            // `up` writes the kubeconfig once every component is ready.
            let started = Instant::now();
            while !kubeconfig.exists() {
                if let Some(status) = child.try_wait()? {
                    let log = std::fs::read_to_string(dir.path().join("stderr"))?;
                    anyhow::bail!("svcplane up exited with {status} before it was ready:\n{log}");
                }
                anyhow::ensure!(
                    started.elapsed() < Duration::from_secs(60),
                    "svcplane up wrote no kubeconfig within 60 s"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let config = kube::Config::from_custom_kubeconfig(
                Kubeconfig::read_from(&kubeconfig)?,
                &KubeConfigOptions::default(),
            )
            .await?;
            Ok(Running {
                client: kube::Client::try_from(config)?,
                handle: Handle::Up(Box::new(child), dir),
            })
        }
    }
}

async fn create_namespace(client: &kube::Client, name: &str) -> anyhow::Result<()> {
    let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await?;
    Ok(())
}

fn service(name: &str, node_port: bool) -> anyhow::Result<Service> {
    let kind = if node_port { "NodePort" } else { "ClusterIP" };
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"type": kind, "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]},
    }))?)
}

/// `clients` clients create Services of the one kind into `namespace`, each one after another,
/// until `seconds` have passed or `cap` creates were started; then the namespace is listed and
/// the allocations checked.
async fn phase(
    client: &kube::Client,
    namespace: &str,
    node_port: bool,
    clients: usize,
    seconds: usize,
    cap: usize,
) -> anyhow::Result<PhaseRun> {
    create_namespace(client, namespace).await?;
    let api = Api::<Service>::namespaced(client.clone(), namespace);
    let creates = api.clone();
    let within = Duration::from_secs(seconds as u64);
    let outcome = closed_loop::run(clients, within, cap, move |i| {
        let api = creates.clone();
        async move {
            let name = format!("svc-{i}");
            let object = service(&name, node_port).map_err(|e| e.to_string())?;
            match api.create(&PostParams::default(), &object).await {
                Ok(_) => Ok(()),
                Err(e) => Err(format!("{name}: {e}")),
            }
        }
    })
    .await;
    let run = PhaseRun {
        creates_per_second: outcome.per_second,
        errors: outcome.errors.len(),
        first_error: outcome.errors.into_iter().next(),
        create_ms: outcome.latencies_ms,
    };
    let listed = api.list(&ListParams::default()).await?.items;
    check_allocations(
        &listed,
        run.create_ms.len(),
        CLUSTER_IP_RANGE.parse()?,
        node_port.then_some(NODE_PORTS),
    )
    .map_err(|e| anyhow::anyhow!("{namespace}: {e}"))?;
    Ok(run)
}

async fn run_peer(peer: Peer, options: &Options) -> anyhow::Result<PeerRun> {
    let running = start(peer).await?;
    let client = running.client.clone();
    let result = async {
        let warm_up = options.clients * WARM_UP_PER_CLIENT;
        phase(&client, "warm-up", false, options.clients, 60, warm_up).await?;
        let cluster_ip = phase(
            &client,
            "cluster-ip",
            false,
            options.clients,
            options.seconds,
            usize::MAX,
        )
        .await?;
        let node_port = phase(
            &client,
            "node-port",
            true,
            options.clients,
            options.seconds,
            options.node_ports,
        )
        .await?;
        anyhow::Ok(PeerRun {
            cluster_ip,
            node_port,
        })
    }
    .await;
    running.stop().await;
    result
}

fn summary(phase: &PhaseRun) -> String {
    format!(
        "{:.0}/s, p50 {:.2} / p99 {:.2} ms, {} failed{}",
        phase.creates_per_second,
        percentile(&phase.create_ms, 50.0),
        percentile(&phase.create_ms, 99.0),
        phase.errors,
        phase
            .first_error
            .as_deref()
            .map(|e| format!(" (first: {e})"))
            .unwrap_or_default()
    )
}

async fn run(options: Options) -> anyhow::Result<()> {
    let start_date = bench_report::now_utc();
    let mut loads = vec![load_average()];
    let mut upstream = Vec::new();
    let mut svcplane = Vec::new();
    for round in 0..options.rounds {
        let order = bench_report::abba_order(round, Peer::Upstream, Peer::Svcplane);
        for peer in order {
            let t = Instant::now();
            let r = run_peer(peer, &options).await?;
            let load = load_average();
            eprintln!(
                "bench-allocation-api-vs-upstream: round {} {}: ClusterIP {}; NodePort {} ({:.0} s, load {load})",
                round + 1,
                peer.label(),
                summary(&r.cluster_ip),
                summary(&r.node_port),
                t.elapsed().as_secs_f64()
            );
            loads.push(load);
            match peer {
                Peer::Upstream => upstream.push(r),
                Peer::Svcplane => svcplane.push(r),
            }
        }
    }
    let header = format!(
        "### Allocation through the API: Service creates, kube-apiserver vs svcplane{}\n\n{start_date} – {}; load average (1/5/15 min) at the start and after each run: {}. \
{} clients in a closed loop (each sends its next create when the last is answered), selector-less Services with one port: \
ClusterIP for {} s, then NodePort for {} s or {} Services; range {CLUSTER_IP_RANGE}, node ports {}-{}; after each phase every \
allocation was listed and checked (distinct, in range). kube-apiserver v1.34.10 + etcd v3.6.16 as `RealCluster` starts them \
(its own allocators: the IPAddress allocator and the node-port bitmap); `svcplane up --nodes 1` (svcplane's registry in the \
embedded API server, and every controller running). Runs alternated upstream, svcplane, svcplane, upstream, ….\n\n",
        if options.smoke { " — smoke" } else { "" },
        bench_report::now_utc(),
        loads.join("; "),
        options.clients,
        options.seconds,
        options.seconds,
        options.node_ports,
        NODE_PORTS.start(),
        NODE_PORTS.end(),
    );
    let text = format!("{header}{}", table(&upstream, &svcplane));
    println!("{text}");
    if let Some(path) = &options.write {
        bench_report::write_section(path, BEGIN_MARK, END_MARK, &text)?;
        eprintln!("bench-allocation-api-vs-upstream: wrote {}", path.display());
    }
    let failed = upstream
        .iter()
        .chain(&svcplane)
        .any(|r| r.cluster_ip.errors + r.node_port.errors > 0);
    anyhow::ensure!(!failed, "a run had failed creates (see the log above)");
    Ok(())
}

fn main() -> std::process::ExitCode {
    bench_report::bench_main("bench-allocation-api-vs-upstream", parse_options, run)
}
