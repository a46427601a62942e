#![forbid(unsafe_code)]
//! Proxy sync, svcplane against upstream kube-proxy (issue 16, Performance): N Services (default
//! 10,000), each with one EndpointSlice of 15 ready endpoints, in one in-process testenv; then,
//! alternating per round, `svcplane proxy` and kube-proxy v1.34.10 in nftables mode, each as its
//! own process programming its own fresh network namespace, against the same API objects.
//!
//! Per round and proxy:
//! - the first (full) sync: its duration from the proxy's own
//!   `kubeproxy_sync_full_proxy_rules_duration_seconds` (sum / count), and the wall time from
//!   starting the process to its `kubeproxy_sync_proxy_rules_last_timestamp_seconds`;
//! - one change (one endpoint of one Service's slice moves to a new IP): the partial sync's
//!   duration (`kubeproxy_sync_partial_proxy_rules_duration_seconds`), and the wall time from the
//!   API write until the Service's chain in the namespace's table names the new endpoint
//!   (`nft list chain`, polled);
//! - CPU seconds of the process, alone and with its children (both proxies run `nft`), its peak
//!   RSS, and the table it left: chains, rules, set and map elements, bytes of `nft list table`.
//!
//! svcplane's proxy runs in the root namespace and programs the namespace with `--netns`;
//! kube-proxy runs inside it (`ip netns exec`), where it reaches the API through a relay: a
//! listener bound on the namespace's loopback, forwarding each connection to testenv on the
//! machine's loopback. Nothing else crosses the namespace.
//!
//! Usage: bench-proxy --svcplane PATH --kube-proxy PATH [--services N] [--rounds N]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::ServiceCIDR;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use svcplane_tests::procfs;
use testenv::TestEnv;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const NODE: &str = "node-1";
const NODE_IP: &str = "172.18.0.2";
const CLUSTER_CIDR: &str = "10.244.0.0/16";
const ENDPOINTS_PER_SERVICE: usize = 15;
/// Where both proxies serve their metrics and health, on the namespace's own loopback.
const METRICS: &str = "127.0.0.1:10249";
const HEALTHZ: &str = "127.0.0.1:10256";
/// Where kube-proxy finds the API inside its namespace (the relay).
const RELAY: &str = "127.0.0.1:6443";
/// The prefix of this harness's namespaces: `bpx<pid>-…`.
const PREFIX: &str = "bpx";

struct Options {
    svcplane: PathBuf,
    kube_proxy: PathBuf,
    services: usize,
    rounds: usize,
}

fn parse() -> Result<Options, String> {
    let mut options = Options {
        svcplane: PathBuf::new(),
        kube_proxy: PathBuf::new(),
        services: 10_000,
        rounds: 3,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        let number = |text: String| {
            text.parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{flag}: {text:?} is not a positive number"))
        };
        match flag.as_str() {
            "--svcplane" => options.svcplane = PathBuf::from(value()?),
            "--kube-proxy" => options.kube_proxy = PathBuf::from(value()?),
            "--services" => options.services = number(value()?)?,
            "--rounds" => options.rounds = number(value()?)?,
            other => {
                return Err(format!(
                    "unknown flag {other}; usage: bench-proxy --svcplane PATH --kube-proxy PATH [--services N] [--rounds N]"
                ));
            }
        }
    }
    for (flag, path) in [
        ("--svcplane", &options.svcplane),
        ("--kube-proxy", &options.kube_proxy),
    ] {
        if !path.is_file() {
            return Err(format!("{flag} {:?} is not a file", path.display()));
        }
    }
    // 10.96.0.0/12 holds 4096 /24s of 250 ClusterIPs each.
    if options.services > 1_000_000 {
        return Err("--services: at most 1000000".into());
    }
    Ok(options)
}

/// The two proxies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arm {
    Svcplane,
    Upstream,
}

impl Arm {
    fn name(self) -> &'static str {
        match self {
            Arm::Svcplane => "svcplane",
            Arm::Upstream => "kube-proxy",
        }
    }
}

/// What one proxy did in one round.
#[derive(Debug, Clone, Default)]
struct Sample {
    full_sync_s: f64,
    first_sync_wall_s: f64,
    partial_sync_s: f64,
    change_visible_s: f64,
    cpu_s: f64,
    cpu_with_nft_s: f64,
    peak_rss_mib: f64,
    chains: f64,
    rules: f64,
    elements: f64,
    table_kib: f64,
    load: String,
}

fn service_name(i: usize) -> String {
    format!("svc-{i}")
}

fn cluster_ip(i: usize) -> String {
    format!("10.{}.{}.{}", 96 + i / 62_500, (i / 250) % 250, 1 + i % 250)
}

/// Endpoint IPs of the generated slices: 10.244.a.b with b in 1..=250 (251..=254 are left for
/// the changes).
fn endpoint_ip(n: usize) -> String {
    format!("10.244.{}.{}", (n / 250) % 256, 1 + n % 250)
}

fn service(i: usize) -> Service {
    let ip = cluster_ip(i);
    serde_json::from_value(json!({
        "metadata": {"name": service_name(i), "namespace": "default"},
        "spec": {"clusterIP": ip, "clusterIPs": [ip], "type": "ClusterIP",
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]}
    }))
    .expect("Service JSON")
}

fn slice(i: usize, ips: &[String]) -> EndpointSlice {
    let endpoints: Vec<Value> = ips
        .iter()
        .map(|ip| json!({"addresses": [ip], "conditions": {"ready": true, "serving": true, "terminating": false}, "nodeName": "node-2"}))
        .collect();
    serde_json::from_value(json!({
        "metadata": {"name": format!("{}-abcde", service_name(i)), "namespace": "default",
            "labels": {"kubernetes.io/service-name": service_name(i),
                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}},
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]
    }))
    .expect("EndpointSlice JSON")
}

fn slice_ips(i: usize) -> Vec<String> {
    (0..ENDPOINTS_PER_SERVICE)
        .map(|j| endpoint_ip(i * ENDPOINTS_PER_SERVICE + j))
        .collect()
}

async fn create_objects(client: &kube::Client, n: usize) -> anyhow::Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({
        "metadata": {"name": NODE},
        "status": {"addresses": [{"type": "InternalIP", "address": NODE_IP}]}
    }))?;
    nodes.create(&PostParams::default(), &node).await?;
    let cidrs: Api<ServiceCIDR> = Api::all(client.clone());
    let cidr: ServiceCIDR = serde_json::from_value(json!({
        "metadata": {"name": "kubernetes"}, "spec": {"cidrs": ["10.96.0.0/12"]}
    }))?;
    cidrs.create(&PostParams::default(), &cidr).await?;
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let failures = futures::stream::iter(0..n)
        .map(|i| {
            let (services, slices) = (services.clone(), slices.clone());
            async move {
                services.create(&PostParams::default(), &service(i)).await?;
                slices
                    .create(&PostParams::default(), &slice(i, &slice_ips(i)))
                    .await
            }
        })
        .buffer_unordered(64)
        .filter_map(|r| async move { r.err() })
        .collect::<Vec<_>>()
        .await;
    if let Some(e) = failures.first() {
        anyhow::bail!("{} of {n} creates failed, the first: {e}", failures.len());
    }
    Ok(())
}

/// Runs `program` with `args`, failing on a non-zero exit.
fn run(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(program).args(args).output()?;
    anyhow::ensure!(
        out.status.success(),
        "{program} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn nft_in(ns: &str, args: &[&str]) -> anyhow::Result<String> {
    let mut all = vec!["netns", "exec", ns, "nft"];
    all.extend_from_slice(args);
    run("ip", &all)
}

/// A network namespace of this run, deleted on drop.
struct Netns(String);

impl Netns {
    fn create(name: String) -> anyhow::Result<Self> {
        dataplane::netns::create_netns(&name)
            .map_err(|e| anyhow::anyhow!("creating network namespace {name}: {e}"))?;
        let ns = Netns(name);
        run("ip", &["-n", &ns.0, "link", "set", "lo", "up"])?;
        Ok(ns)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = dataplane::netns::delete_netns(&self.0) {
            eprintln!(
                "bench-proxy: cannot delete network namespace {}: {e}",
                self.0
            );
        }
    }
}

/// Deletes the namespaces of earlier runs whose process is gone.
fn remove_leftovers() {
    for name in dataplane::netns::list_netns().unwrap_or_default() {
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            eprintln!("bench-proxy: removing {name}, left by an earlier run");
            let _ = dataplane::netns::delete_netns(&name);
        }
    }
}

/// The relay that gives kube-proxy, inside `ns`, the API on the machine's loopback.
async fn start_relay(
    ns: &str,
    api: std::net::SocketAddr,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = dataplane::bind_tcp(ns, RELAY.parse()?).await?;
    Ok(tokio::spawn(svcplane_tests::data_plane::relay_to(
        listener, api,
    )))
}

/// `/metrics` of the proxy serving inside `ns` (HTTP/1.0: one plain body, then close).
async fn metrics(ns: &str) -> anyhow::Result<String> {
    let mut stream =
        dataplane::connect_tcp(ns, METRICS.parse()?, Duration::from_millis(500)).await?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await?;
    let mut text = String::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut text)).await??;
    let (_, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("no HTTP answer"))?;
    Ok(body.to_string())
}

/// The IPv4 series `name` in a metrics text (0 when absent).
fn series(text: &str, name: &str) -> f64 {
    let prefix = format!("{name}{{ip_family=\"IPv4\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

struct Syncs {
    full_sum: f64,
    full_count: f64,
    partial_sum: f64,
    partial_count: f64,
    last: f64,
}

fn syncs(text: &str) -> Syncs {
    Syncs {
        full_sum: series(text, "kubeproxy_sync_full_proxy_rules_duration_seconds_sum"),
        full_count: series(
            text,
            "kubeproxy_sync_full_proxy_rules_duration_seconds_count",
        ),
        partial_sum: series(
            text,
            "kubeproxy_sync_partial_proxy_rules_duration_seconds_sum",
        ),
        partial_count: series(
            text,
            "kubeproxy_sync_partial_proxy_rules_duration_seconds_count",
        ),
        last: series(text, "kubeproxy_sync_proxy_rules_last_timestamp_seconds"),
    }
}

fn now_unix() -> f64 {
    jiff::Timestamp::now().as_nanosecond() as f64 / 1e9
}

/// CPU seconds of `pid` and of its waited-for children (nft), from /proc/PID/stat.
fn cpu_with_children(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<f64> = after
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    // After ")": cutime and cstime are fields 16 and 17 of stat(5), at 13 and 14.
    let children = fields.get(13).copied().unwrap_or(0.0) + fields.get(14).copied().unwrap_or(0.0);
    procfs::cpu_seconds(pid) + children / clock_ticks()
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// Chains, rules and elements of the table (`nft -j list table`) and the text listing's size.
fn table_size(ns: &str) -> anyhow::Result<(f64, f64, f64, f64)> {
    let json: Value =
        serde_json::from_str(&nft_in(ns, &["-j", "list", "table", "ip", "kube-proxy"])?)?;
    let items = json
        .get("nftables")
        .and_then(Value::as_array)
        .ok_or_else(|| anyhow::anyhow!("nft -j: no \"nftables\" array"))?;
    let (mut chains, mut rules, mut elements) = (0.0, 0.0, 0.0);
    for item in items {
        if item.get("chain").is_some() {
            chains += 1.0;
        }
        if item.get("rule").is_some() {
            rules += 1.0;
        }
        for kind in ["set", "map"] {
            if let Some(elem) = item
                .pointer(&format!("/{kind}/elem"))
                .and_then(Value::as_array)
            {
                elements += elem.len() as f64;
            }
        }
    }
    let text = nft_in(ns, &["list", "table", "ip", "kube-proxy"])?;
    Ok((chains, rules, elements, text.len() as f64 / 1024.0))
}

/// A proxy process, stopped (SIGTERM, then SIGKILL) on drop.
struct Proxy {
    child: Child,
    log: PathBuf,
}

impl Proxy {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.exited().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_proxy(
    arm: Arm,
    options: &Options,
    ns: &str,
    kubeconfig: &Path,
    log: PathBuf,
) -> anyhow::Result<Proxy> {
    let kubeconfig = kubeconfig.display().to_string();
    let output = std::fs::File::create(&log)?;
    let mut command = match arm {
        Arm::Svcplane => {
            let mut c = Command::new(&options.svcplane);
            c.args(["proxy", "--netns", ns, "--kubeconfig", &kubeconfig]);
            c
        }
        Arm::Upstream => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns])
                .arg(&options.kube_proxy)
                .args(["--proxy-mode", "nftables", "--kubeconfig", &kubeconfig])
                .args(["--conntrack-max-per-core", "0"])
                .args(["--kube-api-content-type", "application/json"]);
            c
        }
    };
    command
        .args(["--hostname-override", NODE, "--cluster-cidr", CLUSTER_CIDR])
        .args(["--healthz-bind-address", HEALTHZ])
        .args(["--metrics-bind-address", METRICS])
        .stdin(Stdio::null())
        .stdout(output.try_clone()?)
        .stderr(output);
    let child = command
        .spawn()
        .map_err(|e| anyhow::anyhow!("starting {}: {e}", arm.name()))?;
    Ok(Proxy { child, log })
}

/// Polls `ns`'s metrics until `done`, failing when the proxy exits or `timeout` passes.
async fn wait_metrics(
    proxy: &mut Proxy,
    ns: &str,
    what: &str,
    timeout: Duration,
    done: impl Fn(&Syncs) -> bool,
) -> anyhow::Result<Syncs> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(text) = metrics(ns).await {
            let s = syncs(&text);
            if done(&s) {
                return Ok(s);
            }
        }
        if let Some(status) = proxy.exited() {
            anyhow::bail!(
                "the proxy exited ({status}) before {what}:\n{}",
                proxy.log_tail()
            );
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "no {what} within {timeout:?}:\n{}",
            proxy.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

struct Run<'a> {
    options: &'a Options,
    client: kube::Client,
    api: std::net::SocketAddr,
    dir: &'a Path,
    root_kubeconfig: &'a Path,
}

async fn measure(run: &Run<'_>, arm: Arm, round: usize) -> anyhow::Result<Sample> {
    let tag = match arm {
        Arm::Svcplane => "s",
        Arm::Upstream => "k",
    };
    let ns = Netns::create(format!("{PREFIX}{}-{tag}{round}", std::process::id()))?;
    let (relay, kubeconfig) = match arm {
        Arm::Svcplane => (None, run.root_kubeconfig.to_path_buf()),
        Arm::Upstream => {
            let path = run.dir.join(format!("kubeconfig-{}", ns.0));
            std::fs::write(&path, testenv::kubeconfig_yaml(&format!("http://{RELAY}")))?;
            (Some(start_relay(&ns.0, run.api).await?), path)
        }
    };
    let log = run.dir.join(format!("{}.log", ns.0));
    let started = now_unix();
    let mut proxy = start_proxy(arm, run.options, &ns.0, &kubeconfig, log)?;
    let first = wait_metrics(
        &mut proxy,
        &ns.0,
        "the first full sync",
        Duration::from_secs(600),
        |s| s.full_count >= 1.0 && s.last > 0.0,
    )
    .await?;
    let mut sample = Sample {
        full_sync_s: first.full_sum / first.full_count,
        first_sync_wall_s: first.last - started,
        ..Sample::default()
    };
    // Past the minimum sync period, so that the change syncs at once.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (chains, rules, elements, table_kib) = table_size(&ns.0)?;
    sample.chains = chains;
    sample.rules = rules;
    sample.elements = elements;
    sample.table_kib = table_kib;

    // One change: endpoint 0 of one Service moves to an IP no generated slice uses.
    let index = (round * 7919 + usize::from(arm == Arm::Upstream) * 104_729) % run.options.services;
    let new_ip = format!(
        "10.244.{}.{}",
        round % 256,
        251 + usize::from(arm == Arm::Upstream)
    );
    let mut ips = slice_ips(index);
    ips[0] = new_ip.clone();
    let chain = format!(
        "service-{}",
        proxy::names::service_port_base("default", &service_name(index), "tcp", "http")
    );
    let needle = format!("__{new_ip}/8080");
    let before = syncs(&metrics(&ns.0).await?);
    let slices: Api<EndpointSlice> = Api::namespaced(run.client.clone(), "default");
    let name = format!("{}-abcde", service_name(index));
    let mut changed = slices.get(&name).await?;
    changed.endpoints = slice(index, &ips).endpoints;
    let written = Instant::now();
    slices
        .replace(&name, &PostParams::default(), &changed)
        .await?;
    // At N = 10,000 nft 1.0.6 needs minutes for what it lists before a partial sync.
    let deadline = written + Duration::from_secs(600);
    loop {
        let listing = nft_in(&ns.0, &["list", "chain", "ip", "kube-proxy", &chain])?;
        if listing.contains(&needle) {
            sample.change_visible_s = written.elapsed().as_secs_f64();
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{}: the change never reached chain {chain}:\n{listing}",
            arm.name()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let after = wait_metrics(
        &mut proxy,
        &ns.0,
        "the partial sync",
        Duration::from_secs(600),
        |s| s.partial_count > before.partial_count || s.full_count > before.full_count,
    )
    .await?;
    anyhow::ensure!(
        after.full_count == before.full_count,
        "{}: the change was written by a full sync, not a partial one",
        arm.name()
    );
    sample.partial_sync_s =
        (after.partial_sum - before.partial_sum) / (after.partial_count - before.partial_count);
    sample.cpu_s = procfs::cpu_seconds(proxy.pid());
    sample.cpu_with_nft_s = cpu_with_children(proxy.pid());
    sample.peak_rss_mib = procfs::status_mib(proxy.pid(), "VmHWM:");
    sample.load = procfs::load_average();
    drop(proxy);
    if let Some(relay) = relay {
        relay.abort();
    }
    drop(ns);
    Ok(sample)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

type Field = (&'static str, &'static str, fn(&Sample) -> f64);

const FIELDS: [Field; 11] = [
    ("first full sync (proxy's histogram)", "s", |s| {
        s.full_sync_s
    }),
    ("start to first sync done (wall)", "s", |s| {
        s.first_sync_wall_s
    }),
    ("one change: partial sync (proxy's histogram)", "ms", |s| {
        s.partial_sync_s * 1e3
    }),
    ("one change: API write to rule in table (wall)", "ms", |s| {
        s.change_visible_s * 1e3
    }),
    ("CPU, process", "s", |s| s.cpu_s),
    ("CPU, process + nft children", "s", |s| s.cpu_with_nft_s),
    ("peak RSS", "MiB", |s| s.peak_rss_mib),
    ("chains", "", |s| s.chains),
    ("rules", "", |s| s.rules),
    ("set and map elements", "", |s| s.elements),
    ("nft list table", "KiB", |s| s.table_kib),
];

fn print_report(options: &Options, samples: &[(Arm, usize, Sample)], started: &str) {
    let of = |arm: Arm| -> Vec<&Sample> {
        samples
            .iter()
            .filter(|(a, _, _)| *a == arm)
            .map(|(_, _, s)| s)
            .collect()
    };
    let (ours, theirs) = (of(Arm::Svcplane), of(Arm::Upstream));
    println!(
        "bench-proxy {started}: {} Services x {ENDPOINTS_PER_SERVICE} endpoints, {} rounds (arms alternated), 2 cores shared; medians",
        options.services, options.rounds
    );
    println!("| figure | svcplane | kube-proxy v1.34.10 | svcplane / kube-proxy |");
    println!("|---|---|---|---|");
    for (name, unit, get) in FIELDS {
        let a = median(ours.iter().map(|s| get(s)).collect());
        let b = median(theirs.iter().map(|s| get(s)).collect());
        let unit = if unit.is_empty() {
            String::new()
        } else {
            format!(" {unit}")
        };
        println!("| {name} | {a:.3}{unit} | {b:.3}{unit} | {:.2} |", a / b);
    }
    println!();
    println!("per round (load average 1/5/15 min at the end of each arm):");
    for (arm, round, s) in samples {
        println!("{}", arm_line(*arm, *round, s));
    }
}

/// One arm of one round on one line (printed as it ends, and again under the table).
fn arm_line(arm: Arm, round: usize, s: &Sample) -> String {
    format!(
        "round {round} {:>10}: full {:.3} s, first sync {:.3} s, partial {:.1} ms, visible {:.1} ms, cpu {:.2} s (with nft {:.2} s), peak rss {:.0} MiB, {} chains, {} rules, {} elements, load {}",
        arm.name(),
        s.full_sync_s,
        s.first_sync_wall_s,
        s.partial_sync_s * 1e3,
        s.change_visible_s * 1e3,
        s.cpu_s,
        s.cpu_with_nft_s,
        s.peak_rss_mib,
        s.chains,
        s.rules,
        s.elements,
        s.load
    )
}

async fn bench(options: Options) -> anyhow::Result<()> {
    let started = jiff::Timestamp::now()
        .strftime("%Y-%m-%d %H:%M:%SZ")
        .to_string();
    remove_leftovers();
    let env = TestEnv::start().await?;
    let dir = tempfile::tempdir()?;
    let root_kubeconfig = dir.path().join("kubeconfig");
    env.write_kubeconfig(&root_kubeconfig)?;
    let t = Instant::now();
    create_objects(&env.client(), options.services).await?;
    eprintln!(
        "{} Services and EndpointSlices created in {:.1} s (load {})",
        options.services,
        t.elapsed().as_secs_f64(),
        procfs::load_average()
    );
    let run = Run {
        options: &options,
        client: env.client(),
        api: env.addr(),
        dir: dir.path(),
        root_kubeconfig: &root_kubeconfig,
    };
    let mut samples = Vec::new();
    for round in 0..options.rounds {
        let order = svcplane_tests::bench_report::abba_order(round, Arm::Svcplane, Arm::Upstream);
        for arm in order {
            let sample = measure(&run, arm, round).await.map_err(|e| {
                anyhow::anyhow!(
                    "round {round}, {}: {e:#} (logs in {})",
                    arm.name(),
                    dir.path().display()
                )
            })?;
            eprintln!("{}", arm_line(arm, round, &sample));
            samples.push((arm, round, sample));
        }
    }
    print_report(&options, &samples, &started);
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let options = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("bench-proxy: {e}");
            std::process::exit(2);
        }
    };
    for tool in ["ip", "nft"] {
        if Command::new(tool).arg("-V").output().is_err() {
            eprintln!(
                "bench-proxy: error: {tool} is not on PATH (the proxies program nftables in network namespaces)"
            );
            std::process::exit(1);
        }
    }
    if let Err(e) = bench(options).await {
        eprintln!("bench-proxy: error: {e:#}");
        std::process::exit(1);
    }
}
