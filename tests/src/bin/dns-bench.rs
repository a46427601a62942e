#![forbid(unsafe_code)]
//! svcplane's cluster DNS against CoreDNS, side by side on one machine in one run: both watch one
//! testenv holding N ClusterIP Services (default 10,000), each runs as its own process
//! (`svcplane dns` and `coredns`), and per round and server:
//!
//! - throughput: `dnsperf` (Debian's, on PATH) unpaced for SECONDS, A queries for every Service
//!   name in random order: queries/s answered;
//! - latency at a fixed load: RATE queries/s from WORKERS UDP sockets, each query timed from send
//!   to answer: p50 / p99 / max;
//! - memory: RSS (VmRSS) of each server process after the first lists and after the load, and
//!   its peak (VmHWM).
//!
//! Usage: dns-bench --svcplane PATH --coredns PATH [--services N] [--seconds N] [--rate N]
//! [--rounds N]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, PostParams};
use serde_json::json;
use svcplane_tests::procfs;
use testenv::TestEnv;
use tokio::net::UdpSocket;

struct Options {
    svcplane: PathBuf,
    coredns: PathBuf,
    services: usize,
    seconds: u64,
    rate: u64,
    rounds: usize,
}

fn parse() -> Result<Options, String> {
    let mut args = std::env::args().skip(1);
    let mut options = Options {
        svcplane: PathBuf::new(),
        coredns: PathBuf::new(),
        services: 10_000,
        seconds: 15,
        rate: 5_000,
        rounds: 2,
    };
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || value.parse::<u64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--svcplane" => options.svcplane = PathBuf::from(&value),
            "--coredns" => options.coredns = PathBuf::from(&value),
            "--services" => options.services = number()? as usize,
            "--seconds" => options.seconds = number()?,
            "--rate" => options.rate = number()?,
            "--rounds" => options.rounds = number()? as usize,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if options.svcplane.as_os_str().is_empty() || options.coredns.as_os_str().is_empty() {
        return Err("usage: dns-bench --svcplane PATH --coredns PATH [--services N] [--seconds N] [--rate N] [--rounds N]".into());
    }
    Ok(options)
}

/// A server process, killed when dropped.
struct Server {
    name: &'static str,
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// (VmRSS, VmHWM) in MiB.
    fn memory(&self) -> (f64, f64) {
        let pid = self.child.id();
        (
            procfs::status_mib(pid, "VmRSS:"),
            procfs::status_mib(pid, "VmHWM:"),
        )
    }

    /// CPU seconds the server has used. The load generators share the machine's cores with the
    /// server, so its throughput is bounded by theirs; CPU per query measures the server alone.
    fn cpu_seconds(&self) -> f64 {
        procfs::cpu_seconds(self.child.id())
    }
}

fn free_port() -> u16 {
    loop {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp bind");
        let port = udp.local_addr().expect("addr").port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn query_bytes(name: &str, id: u16) -> Vec<u8> {
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(
        Name::from_ascii(name).expect("name"),
        RecordType::A,
    ));
    message.to_vec().expect("query encodes")
}

async fn answers(addr: SocketAddr, name: &str) -> bool {
    let Ok(socket) = UdpSocket::bind("127.0.0.1:0").await else {
        return false;
    };
    if socket.send_to(&query_bytes(name, 1), addr).await.is_err() {
        return false;
    }
    let mut buf = vec![0u8; 4096];
    match tokio::time::timeout(Duration::from_millis(500), socket.recv(&mut buf)).await {
        Ok(Ok(n)) => Message::from_vec(&buf[..n]).is_ok_and(|m| !m.answers.is_empty()),
        _ => false,
    }
}

/// Fixed-rate load: `rate` queries/s over `workers` sockets for `seconds`; sorted latencies and
/// the number of queries that got no answer within a second.
async fn paced(
    addr: SocketAddr,
    names: Arc<Vec<String>>,
    rate: u64,
    seconds: u64,
) -> (Vec<Duration>, usize) {
    let workers = 16u64;
    let per_worker = Duration::from_secs_f64(workers as f64 / rate as f64);
    let mut tasks = Vec::new();
    for w in 0..workers {
        let names = names.clone();
        tasks.push(tokio::spawn(async move {
            let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
            socket.connect(addr).await.expect("connect");
            let mut ticker = tokio::time::interval(per_worker);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let end = Instant::now() + Duration::from_secs(seconds);
            let mut latencies = Vec::new();
            let mut lost = 0usize;
            let mut buf = vec![0u8; 4096];
            let mut i = w as usize;
            while Instant::now() < end {
                ticker.tick().await;
                let id = (i % 65_536) as u16;
                let bytes = query_bytes(&names[i % names.len()], id);
                i += workers as usize;
                let sent = Instant::now();
                if socket.send(&bytes).await.is_err() {
                    lost += 1;
                    continue;
                }
                loop {
                    match tokio::time::timeout(Duration::from_secs(1), socket.recv(&mut buf)).await
                    {
                        Ok(Ok(n)) if n >= 2 && u16::from_be_bytes([buf[0], buf[1]]) == id => {
                            latencies.push(sent.elapsed());
                            break;
                        }
                        // A late answer to an earlier query: keep waiting for ours.
                        Ok(Ok(_)) => continue,
                        _ => {
                            lost += 1;
                            break;
                        }
                    }
                }
            }
            (latencies, lost)
        }));
    }
    let mut all = Vec::new();
    let mut lost = 0;
    for task in tasks {
        if let Ok((latencies, l)) = task.await {
            all.extend(latencies);
            lost += l;
        }
    }
    all.sort();
    (all, lost)
}

/// `dnsperf` unpaced: queries per second it reports.
fn dnsperf(addr: SocketAddr, datafile: &Path, seconds: u64) -> Result<(f64, String), String> {
    let out = Command::new("dnsperf")
        .args(["-s", &addr.ip().to_string(), "-p", &addr.port().to_string()])
        .arg("-d")
        .arg(datafile)
        .args([
            "-l",
            &seconds.to_string(),
            "-c",
            "4",
            "-T",
            "1",
            "-q",
            "200",
        ])
        .output()
        .map_err(|e| format!("cannot run dnsperf: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let qps = text
        .lines()
        .find(|l| l.trim_start().starts_with("Queries per second:"))
        .and_then(|l| l.split(':').nth(1))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .ok_or_else(|| format!("no 'Queries per second' in dnsperf's output:\n{text}"))?;
    let lost = text
        .lines()
        .find(|l| l.trim_start().starts_with("Queries lost:"))
        .and_then(|l| l.split(':').nth(1))
        .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    Ok((qps, lost))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let options = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("dns-bench: {e}");
            std::process::exit(2);
        }
    };
    let started = jiff::Timestamp::now().strftime("%Y-%m-%d %H:%M:%SZ");
    let env = TestEnv::start().await.expect("testenv");
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    env.write_kubeconfig(&kubeconfig).expect("kubeconfig");

    let t = Instant::now();
    let api: Api<Service> = Api::namespaced(env.client(), "default");
    let results: Vec<Result<Service, kube::Error>> = futures::stream::iter(0..options.services)
        .map(|i| {
            let api = api.clone();
            async move {
                let ip = format!("10.96.{}.{}", 1 + i / 250, 1 + i % 250);
                let service: Service = serde_json::from_value(json!({
                        "metadata": {"name": format!("svc-{i}")},
                        "spec": {"clusterIP": ip, "clusterIPs": [ip],
                            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}))
                .expect("service JSON");
                api.create(&PostParams::default(), &service).await
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let failed = results.iter().filter(|r| r.is_err()).count();
    eprintln!(
        "{} Services created in {:.1} s ({failed} failed)",
        options.services,
        t.elapsed().as_secs_f64()
    );

    let names: Vec<String> = (0..options.services)
        .map(|i| format!("svc-{i}.default.svc.cluster.local."))
        .collect();
    let datafile = dir.path().join("queries.txt");
    {
        // A fixed shuffle (a multiplicative walk), so both servers get the same sequence.
        let n = names.len();
        let mut text = String::new();
        for k in 0..n {
            let i = (k * 7919) % n;
            text.push_str(&format!("{} A\n", names[i]));
        }
        std::fs::write(&datafile, text).expect("query file");
    }
    let names = Arc::new(names);

    let svcplane_port = free_port();
    let svcplane = Server {
        name: "svcplane",
        child: Command::new(&options.svcplane)
            .arg("dns")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["--listen", &format!("127.0.0.1:{svcplane_port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("svcplane dns starts"),
        addr: ([127, 0, 0, 1], svcplane_port).into(),
    };
    let coredns_port = free_port();
    let corefile = dir.path().join("Corefile");
    std::fs::write(
        &corefile,
        format!(
            "cluster.local:{coredns_port} in-addr.arpa:{coredns_port} ip6.arpa:{coredns_port} {{\n    bind 127.0.0.1\n    kubernetes cluster.local in-addr.arpa ip6.arpa {{\n        kubeconfig {}\n        pods insecure\n        ttl 5\n    }}\n}}\n",
            kubeconfig.display()
        ),
    )
    .expect("Corefile");
    let coredns = Server {
        name: "coredns",
        child: Command::new(&options.coredns)
            .arg("-conf")
            .arg(&corefile)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("coredns starts"),
        addr: ([127, 0, 0, 1], coredns_port).into(),
    };
    let last = names[names.len() - 1].clone();
    for server in [&svcplane, &coredns] {
        let t = Instant::now();
        while !answers(server.addr, &last).await {
            assert!(
                t.elapsed() < Duration::from_secs(120),
                "{} never answered {last}",
                server.name
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (rss, _) = server.memory();
        eprintln!(
            "{}: serving all {} names {:.1} s after start; RSS {rss:.1} MiB",
            server.name,
            names.len(),
            t.elapsed().as_secs_f64()
        );
    }

    let mut rows = Vec::new();
    for round in 1..=options.rounds {
        for server in [&svcplane, &coredns] {
            let load = procfs::load_average();
            let cpu_before = server.cpu_seconds();
            let (qps, lost) = match dnsperf(server.addr, &datafile, options.seconds) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("{e}");
                    (f64::NAN, String::new())
                }
            };
            let cpu_unpaced = server.cpu_seconds() - cpu_before;
            let cpu_before = server.cpu_seconds();
            let (latencies, unanswered) =
                paced(server.addr, names.clone(), options.rate, options.seconds).await;
            let cpu_paced = server.cpu_seconds() - cpu_before;
            let micros_per_query = cpu_unpaced * 1e6 / (qps * options.seconds as f64);
            let paced_cpu_percent = cpu_paced * 100.0 / options.seconds as f64;
            let at = |q: usize| {
                latencies
                    .get((latencies.len() * q / 100).min(latencies.len().saturating_sub(1)))
                    .copied()
                    .unwrap_or_default()
            };
            let (rss, hwm) = server.memory();
            let row = format!(
                "| {round} | {} | {qps:.0} (lost {lost}) | {micros_per_query:.1} µs | {} answered, {unanswered} lost: p50 {:.3} ms, p99 {:.3} ms, max {:.2} ms | {paced_cpu_percent:.0} % | {rss:.1} / {hwm:.1} | {load} |",
                server.name,
                latencies.len(),
                ms(at(50)),
                ms(at(99)),
                ms(latencies.last().copied().unwrap_or_default())
            );
            eprintln!("{row}");
            rows.push(row);
        }
    }
    println!(
        "dns-bench {started}: {} Services, dnsperf -c 4 -q 200 for {} s, then {} q/s paced for {} s, {} rounds\n",
        options.services, options.seconds, options.rate, options.seconds, options.rounds
    );
    println!(
        "| round | server | dnsperf unpaced: q/s | server CPU per query (unpaced) | {} q/s paced: latency | server CPU at that rate | RSS / peak MiB | load avg |",
        options.rate
    );
    println!("|---|---|---|---|---|---|---|---|");
    for row in rows {
        println!("{row}");
    }
}
