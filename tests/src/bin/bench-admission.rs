#![forbid(unsafe_code)]
//! What svcplane's admission webhooks cost a cluster (issue 13, item 4): Service creates through
//! a real kube-apiserver + etcd with and without the webhooks of `config/webhook` installed.
//!
//! The webhook runs as its own process, `svcplane webhook` with the Deployment's flags (audit
//! mode: kube-apiserver allocates, svcplane validates), on loopback; the configurations are
//! `config/webhook`'s own, pointed at it by URL as cert-manager's CA injection would leave them.
//! One cluster serves every round, and the arms alternate (without, with, without, with, …), so
//! both see the same machine. Per round and arm, in a fresh namespace:
//!
//! - latency: N Services created one at a time, each create timed: p50 / p99;
//! - throughput: N more created with C in flight: creates/s.
//!
//! Each arm is checked, not assumed: the webhook's `svcplane_webhook_requests_total` must not move
//! in an arm without it, and must count two admission requests (validate and mutate) per create in
//! an arm with it.
//!
//! Usage: bench-admission --svcplane PATH [--services N] [--concurrency C] [--rounds N]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::{Value, json};
use svcplane_tests::real::{RealCluster, RealClusterOptions};

const CLUSTER_IP_RANGE: &str = "10.96.0.0/12";
const NODE_PORT_RANGE: &str = "30000-32767";

struct Options {
    svcplane: PathBuf,
    services: usize,
    concurrency: usize,
    rounds: usize,
}

fn parse() -> Result<Options, String> {
    let mut options = Options {
        svcplane: PathBuf::new(),
        services: 500,
        concurrency: 16,
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
            "--services" => options.services = number(value()?)?,
            "--concurrency" => options.concurrency = number(value()?)?,
            "--rounds" => options.rounds = number(value()?)?,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if options.svcplane.as_os_str().is_empty() {
        return Err(
            "usage: bench-admission --svcplane PATH [--services N] [--concurrency C] [--rounds N]"
                .into(),
        );
    }
    Ok(options)
}

/// The webhook process, killed when dropped.
struct Webhook {
    child: Child,
    port: u16,
    ca: PathBuf,
}

impl Drop for Webhook {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Webhook {
    /// The webhook's own counters, summed over their labels (read with curl: the webhook serves
    /// HTTPS with the CA this harness made).
    fn counters(&self) -> anyhow::Result<WebhookCounters> {
        let out = Command::new("curl")
            .args(["-sS", "--cacert"])
            .arg(&self.ca)
            .arg(format!("https://127.0.0.1:{}/metrics", self.port))
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "curl /metrics: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let sum = |name: &str| -> f64 {
            text.lines()
                .filter(|line| {
                    line.strip_prefix(name)
                        .is_some_and(|rest| rest.starts_with(['{', ' ']))
                })
                .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        };
        Ok(WebhookCounters {
            requests: sum("svcplane_webhook_requests_total"),
            seconds: sum("svcplane_webhook_request_duration_seconds_sum"),
        })
    }
}

/// `svcplane_webhook_requests_total` and the seconds its handlers spent
/// (`svcplane_webhook_request_duration_seconds_sum`).
#[derive(Clone, Copy)]
struct WebhookCounters {
    requests: f64,
    seconds: f64,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn start_webhook(options: &Options, cluster: &RealCluster, dir: &Path) -> anyhow::Result<Webhook> {
    let (ca, cert, key) = webhook::server::tls::generate_certificates(&["127.0.0.1".to_owned()])?;
    let (ca_path, cert_path, key_path) =
        (dir.join("ca.crt"), dir.join("tls.crt"), dir.join("tls.key"));
    std::fs::write(&ca_path, ca)?;
    std::fs::write(&cert_path, cert)?;
    std::fs::write(&key_path, key)?;
    let port = free_port()?;
    let log = std::fs::File::create(dir.join("webhook.log"))?;
    let child = Command::new(&options.svcplane)
        .arg("webhook")
        .arg(format!("--bind-address=127.0.0.1:{port}"))
        .arg(format!("--tls-cert-file={}", cert_path.display()))
        .arg(format!("--tls-private-key-file={}", key_path.display()))
        .arg(format!(
            "--kubeconfig={}",
            cluster.kubeconfig_path().display()
        ))
        .arg(format!("--service-cluster-ip-range={CLUSTER_IP_RANGE}"))
        .arg(format!("--service-node-port-range={NODE_PORT_RANGE}"))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    let mut webhook = Webhook {
        child,
        port,
        ca: ca_path,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(error) = webhook.counters() {
        if webhook.child.try_wait()?.is_some() || Instant::now() > deadline {
            let log = std::fs::read_to_string(dir.join("webhook.log")).unwrap_or_default();
            anyhow::bail!("the webhook does not serve ({error}); its log:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(webhook)
}

/// `config/webhook`'s two configurations, pointed at the webhook by URL with its CA.
fn configurations(
    webhook: &Webhook,
) -> anyhow::Result<(ValidatingWebhookConfiguration, MutatingWebhookConfiguration)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/webhook");
    let ca_bundle = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        std::fs::read(&webhook.ca)?,
    );
    let load = |file: &str| -> anyhow::Result<Value> {
        let text = std::fs::read_to_string(root.join(file))?;
        let mut object = manifests::documents(&text)?
            .into_iter()
            .next()
            .ok_or_else(|| anyhow::anyhow!("{file} is empty"))?;
        for hook in object["webhooks"].as_array_mut().into_iter().flatten() {
            let path = hook["clientConfig"]["service"]["path"]
                .as_str()
                .unwrap_or("/")
                .to_owned();
            hook["clientConfig"] = json!({
                "url": format!("https://127.0.0.1:{}{path}", webhook.port),
                "caBundle": ca_bundle,
            });
        }
        Ok(object)
    };
    Ok((
        serde_json::from_value(load("validating_webhook_configuration.yaml")?)?,
        serde_json::from_value(load("mutating_webhook_configuration.yaml")?)?,
    ))
}

async fn install(
    client: &kube::Client,
    validating: &ValidatingWebhookConfiguration,
    mutating: &MutatingWebhookConfiguration,
) -> anyhow::Result<()> {
    Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .create(&PostParams::default(), validating)
        .await?;
    Api::<MutatingWebhookConfiguration>::all(client.clone())
        .create(&PostParams::default(), mutating)
        .await?;
    Ok(())
}

async fn uninstall(client: &kube::Client, name: &str) -> anyhow::Result<()> {
    Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .delete(name, &DeleteParams::default())
        .await?;
    Api::<MutatingWebhookConfiguration>::all(client.clone())
        .delete(name, &DeleteParams::default())
        .await?;
    Ok(())
}

fn service(name: &str) -> anyhow::Result<Service> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
    }))?)
}

struct ArmResult {
    latencies: Vec<Duration>,
    creates_per_second: f64,
    webhook_requests: f64,
    /// Seconds the webhook's handlers spent on this arm's requests.
    webhook_seconds: f64,
}

async fn run_arm(
    client: &kube::Client,
    namespace: &str,
    options: &Options,
    webhook: &Webhook,
) -> anyhow::Result<ArmResult> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": namespace}}))?,
        )
        .await?;
    let services: Api<Service> = Api::namespaced(client.clone(), namespace);
    let before = webhook.counters()?;
    let mut latencies = Vec::with_capacity(options.services);
    for i in 0..options.services {
        let object = service(&format!("one-{i}"))?;
        let start = Instant::now();
        services.create(&PostParams::default(), &object).await?;
        latencies.push(start.elapsed());
    }
    let start = Instant::now();
    futures::stream::iter(0..options.services)
        .map(|i| {
            let services = services.clone();
            async move {
                services
                    .create(&PostParams::default(), &service(&format!("many-{i}"))?)
                    .await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(options.concurrency)
        .try_collect::<Vec<()>>()
        .await?;
    let creates_per_second = options.services as f64 / start.elapsed().as_secs_f64();
    let after = webhook.counters()?;
    let webhook_requests = after.requests - before.requests;
    let webhook_seconds = after.seconds - before.seconds;
    latencies.sort();
    Ok(ArmResult {
        latencies,
        creates_per_second,
        webhook_requests,
        webhook_seconds,
    })
}

fn percentile(sorted: &[Duration], p: usize) -> f64 {
    let i = (sorted.len() * p / 100).min(sorted.len().saturating_sub(1));
    sorted.get(i).map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

#[tokio::main]
async fn main() {
    let options = match parse() {
        Ok(options) => options,
        Err(error) => {
            eprintln!("bench-admission: {error}");
            std::process::exit(2);
        }
    };
    if let Err(error) = run(options).await {
        eprintln!("bench-admission: error: {error:#}");
        std::process::exit(1);
    }
}

async fn run(options: Options) -> anyhow::Result<()> {
    let cluster = RealCluster::start_with(RealClusterOptions {
        service_cluster_ip_range: CLUSTER_IP_RANGE.into(),
        service_node_port_range: NODE_PORT_RANGE.into(),
        ..RealClusterOptions::default()
    })
    .await?;
    let client = cluster.client();
    let dir = tempfile::tempdir()?;
    let webhook = start_webhook(&options, &cluster, dir.path())?;
    let (validating, mutating) = configurations(&webhook)?;
    let name = validating.metadata.name.clone().unwrap_or_default();
    let started = jiff::Timestamp::now();

    let mut rows = Vec::new();
    let mut summary: [Vec<(f64, f64, f64)>; 2] = [Vec::new(), Vec::new()];
    for round in 1..=options.rounds {
        for (arm, with_webhook) in [(0, false), (1, true)] {
            if with_webhook {
                install(&client, &validating, &mutating).await?;
            }
            // kube-apiserver learns of configuration changes by a watch: give it a moment.
            tokio::time::sleep(Duration::from_secs(2)).await;
            let load = svcplane_tests::procfs::load_average();
            let namespace = format!(
                "round-{round}-{}",
                if with_webhook { "with" } else { "without" }
            );
            let result = run_arm(&client, &namespace, &options, &webhook).await?;
            if with_webhook {
                uninstall(&client, &name).await?;
            }
            let expected = if with_webhook {
                4.0 * options.services as f64
            } else {
                0.0
            };
            anyhow::ensure!(
                result.webhook_requests >= expected
                    && (with_webhook || result.webhook_requests == 0.0),
                "round {round}: the webhook counted {} admission requests, expected {}{}",
                result.webhook_requests,
                if with_webhook { "at least " } else { "" },
                expected
            );
            let (p50, p99) = (
                percentile(&result.latencies, 50),
                percentile(&result.latencies, 99),
            );
            summary[arm].push((p50, p99, result.creates_per_second));
            let row = format!(
                "| {round} | {} | {p50:.2} / {p99:.2} ms | {:.0} creates/s | {:.0} | {} | {load} |",
                if with_webhook {
                    "with svcplane's webhooks"
                } else {
                    "without"
                },
                result.creates_per_second,
                result.webhook_requests,
                if result.webhook_requests > 0.0 {
                    format!(
                        "{:.3} ms",
                        result.webhook_seconds * 1000.0 / result.webhook_requests
                    )
                } else {
                    "—".to_owned()
                }
            );
            eprintln!("{row}");
            rows.push(row);
        }
    }

    println!(
        "bench-admission {started}: {} Services one at a time, then {} with {} in flight, per round and arm; {} rounds, arms alternated\n",
        options.services, options.services, options.concurrency, options.rounds
    );
    println!(
        "| round | arm | create latency p50 / p99 | throughput | webhook requests | time in the webhook per request (mean) | load avg |"
    );
    println!("|---|---|---|---|---|---|---|");
    for row in rows {
        println!("{row}");
    }
    let medians = |arm: usize| {
        let values = &summary[arm];
        (
            median(values.iter().map(|v| v.0).collect()),
            median(values.iter().map(|v| v.1).collect()),
            median(values.iter().map(|v| v.2).collect()),
        )
    };
    let (without, with) = (medians(0), medians(1));
    println!(
        "\nMedians over rounds: p50 {:.2} → {:.2} ms ({:.2}×), p99 {:.2} → {:.2} ms ({:.2}×), {:.0} → {:.0} creates/s ({:.2}×)",
        without.0,
        with.0,
        with.0 / without.0,
        without.1,
        with.1,
        with.1 / without.1,
        without.2,
        with.2,
        with.2 / without.2
    );
    Ok(())
}
