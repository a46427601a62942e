//! Admission over TLS on loopback, open loop: `svcplane-admission-load`, a load generator written
//! here with hyper + tokio-rustls, drives a fixed request rate over N keep-alive TLS connections
//! against the webhook server in the same process, and reports latency percentiles.
//!
//! Two latencies per request: from the moment it is written (what the apiserver's webhook call
//! sees), and from its *scheduled* send time, so a stalled server cannot hide its queueing (no
//! coordinated omission). The second includes tokio's 1 ms timer granularity: a send scheduled
//! mid-millisecond waits for the next tick.
//!
//! Settings (environment): `ADMISSION_BENCH_RATE` (requests/s, default 2000),
//! `ADMISSION_BENCH_SECONDS` (default 10), `ADMISSION_BENCH_CONNECTIONS` (default 4).
//! Run: `cargo bench -p webhook --bench admission`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use allocator::{BitmapSizeLimit, PortRange, ServiceClusterIpRanges};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::json;
use webhook::server::tls::generate_certificates;
use webhook::server::{
    AdmissionPolicy, CertificateSource, InMemoryAllocator, WebhookConfig, WebhookServer,
};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn review(path: &str, i: u64) -> Vec<u8> {
    // A typical Service: two ports, selector, labels; after allocation on /validate.
    let third = (i / 250) % 250;
    let fourth = i % 250 + 1;
    let mut spec = json!({
        "type": "ClusterIP", "selector": {"app": "web"}, "sessionAffinity": "None",
        "internalTrafficPolicy": "Cluster",
        "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
                  {"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"}]
    });
    if path == "/validate" {
        let ip = format!("10.96.{third}.{fourth}");
        spec["clusterIP"] = json!(ip);
        spec["clusterIPs"] = json!([ip]);
        spec["ipFamilies"] = json!(["IPv4"]);
        spec["ipFamilyPolicy"] = json!("SingleStack");
    }
    let name = format!("web-{i}");
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": format!("00000000-0000-0000-0000-{i:012}"),
            "kind": {"group": "", "version": "v1", "kind": "Service"},
            "resource": {"group": "", "version": "v1", "resource": "services"},
            "name": name, "namespace": "default", "operation": "CREATE",
            "userInfo": {"username": "admin"},
            "object": {"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": name, "namespace": "default",
                             "labels": {"app": "web", "tier": "frontend"}},
                "spec": spec},
            "dryRun": false
        }
    }))
    .unwrap_or_default()
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr, ca_pem: &str) -> Sender {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
        let cert: CertificateDer<'static> = cert.expect("CA PEM");
        roots.add(cert).expect("CA certificate");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    let name = ServerName::try_from("127.0.0.1").expect("server name");
    let tls = connector.connect(name, tcp).await.expect("TLS handshake");
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .expect("HTTP handshake");
    tokio::spawn(conn);
    sender
}

struct RunResult {
    latencies: Vec<Duration>,
    scheduled: Vec<Duration>,
    errors: u64,
    elapsed: Duration,
}

async fn drive(
    addr: SocketAddr,
    ca_pem: &str,
    path: &'static str,
    rate: u64,
    seconds: u64,
    connections: u64,
) -> RunResult {
    let per_connection = Duration::from_secs_f64(connections as f64 / rate as f64);
    let total_per_connection = rate * seconds / connections;
    let started = Instant::now();
    let mut workers = Vec::new();
    for c in 0..connections {
        let mut sender = connect(addr, ca_pem).await;
        let bodies: Vec<Bytes> = (0..total_per_connection)
            .map(|i| Bytes::from(review(path, c * total_per_connection + i)))
            .collect();
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(bodies.len());
            let mut from_schedule = Vec::with_capacity(bodies.len());
            let mut errors = 0u64;
            // Stagger connections so the aggregate schedule is even.
            let offset = per_connection.mul_f64(c as f64 / connections as f64);
            let begin = tokio::time::Instant::now() + offset;
            for (i, body) in bodies.into_iter().enumerate() {
                let scheduled = begin + per_connection.mul_f64(i as f64);
                tokio::time::sleep_until(scheduled).await;
                let request = http::Request::post(path)
                    .header(http::header::HOST, "127.0.0.1")
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(Full::new(body))
                    .expect("request");
                let sent = tokio::time::Instant::now();
                let ok = match sender.send_request(request).await {
                    Ok(resp) => {
                        let status = resp.status();
                        let body = resp.into_body().collect().await.map(|b| b.to_bytes());
                        status.is_success()
                            && body.is_ok_and(|b| b.windows(14).any(|w| w == b"\"allowed\":true"))
                    }
                    Err(_) => false,
                };
                let done = tokio::time::Instant::now();
                latencies.push(done.duration_since(sent));
                from_schedule.push(done.duration_since(scheduled));
                if !ok {
                    errors += 1;
                }
            }
            (latencies, from_schedule, errors)
        }));
    }
    let mut latencies = Vec::new();
    let mut scheduled = Vec::new();
    let mut errors = 0;
    for w in workers {
        let (l, s, e) = w.await.expect("worker");
        latencies.extend(l);
        scheduled.extend(s);
        errors += e;
    }
    RunResult {
        latencies,
        scheduled,
        errors,
        elapsed: started.elapsed(),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn main() {
    let rate = env_or("ADMISSION_BENCH_RATE", 2000).max(1);
    let seconds = env_or("ADMISSION_BENCH_SECONDS", 10).max(1);
    let connections = env_or("ADMISSION_BENCH_CONNECTIONS", 4).max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let (ca, cert, key) = generate_certificates(&["127.0.0.1".to_owned()]).expect("certificates");
        let ranges = ServiceClusterIpRanges::parse("10.96.0.0/12", BitmapSizeLimit::Enforced).expect("range");
        let ports = PortRange::parse("30000-32767").expect("ports");
        let mut config = WebhookConfig::new(
            "127.0.0.1:0".parse().expect("addr"),
            CertificateSource::Pem { cert, key },
            AdmissionPolicy::default(),
        );
        config.allocator = Some(Arc::new(InMemoryAllocator::new(ranges, ports)));
        let server = WebhookServer::start(config).await.expect("server");
        println!(
            "svcplane-admission-load: {rate} req/s open loop for {seconds} s over {connections} keep-alive TLS 1.3 connections (HTTP/1.1), server and load generator in one process on loopback"
        );
        for path in ["/validate", "/mutate"] {
            let mut run = drive(server.addr(), &ca, path, rate, seconds, connections).await;
            run.latencies.sort();
            run.scheduled.sort();
            let n = run.latencies.len();
            println!(
                "admission{path}: {n} requests in {:.2} s ({:.0} req/s), errors {}",
                run.elapsed.as_secs_f64(),
                n as f64 / run.elapsed.as_secs_f64(),
                run.errors,
            );
            for (what, l) in [("from send", &run.latencies), ("from schedule", &run.scheduled)] {
                println!(
                    "  {what}: p50 {:?}, p90 {:?}, p99 {:?}, p99.9 {:?}, max {:?}",
                    percentile(l, 50.0),
                    percentile(l, 90.0),
                    percentile(l, 99.0),
                    percentile(l, 99.9),
                    l.last().copied().unwrap_or_default(),
                );
            }
        }
        server.shutdown().await;
    });
}
