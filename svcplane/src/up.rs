//! `svcplane up`: the playground. An in-memory API server on `--listen`, simulated nodes, the
//! allocator registry, the admission webhook and every controller, until Ctrl-C or SIGTERM;
//! `/healthz`, `/readyz` and `/metrics` on `--metrics-listen`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use allocator::registry::AllocationMode;
use allocator::{PortRange, ServiceClusterIpRanges};
use anyhow::Context;
use controllers::allocation_repair::{RepairConfig, RepairMetrics, register};
use controllers::endpoints_controller::EndpointsControllerConfig;
use controllers::endpointslice_controller::EndpointSliceControllerConfig;
use controllers::kubernetes_service_controller::KubernetesServiceConfig;
use controllers::mirroring_controller::MirroringControllerConfig;
use controllers::runtime::CacheSyncSignal;
use prometheus_client::registry::Registry;
use testenv::nodesim::{NodeSimConfig, NodeSimulator};
use testenv::{TestEnv, TestEnvOptions};

use crate::component::{Component, first_to_exit, shutdown_channel, start_in_order, stop_all};
use crate::control_plane;
use crate::health::{self, HealthState};

/// Flags of `svcplane up`.
#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Address the Kubernetes API server listens on.
    #[arg(long, default_value = "127.0.0.1:6443")]
    listen: SocketAddr,
    /// Number of simulated nodes (node-1..N, zones zone-a..c).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=3000))]
    nodes: u16,
    /// Give nodes IPv6 pod CIDRs too, so pods get one IP per family.
    #[arg(long)]
    dual_stack: bool,
    /// Where to write the kubeconfig for kubectl.
    #[arg(long, default_value = ".svcplane/kubeconfig")]
    kubeconfig_out: PathBuf,
    /// Keep the cluster's state in this directory so a restart loses nothing; in memory if unset.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// ClusterIP range(s): one CIDR, or two of different families for dual stack.
    #[arg(long, default_value = "10.96.0.0/12", value_parser = crate::flags::parse_cluster_ip_ranges)]
    service_cluster_ip_range: ServiceClusterIpRanges,
    /// NodePort range.
    #[arg(long, default_value = "30000-32767", value_parser = crate::flags::parse_node_port_range)]
    service_node_port_range: PortRange,
    /// Address of /healthz, /readyz and /metrics (port 0 picks one; the address is printed).
    #[arg(long, default_value = "127.0.0.1:0")]
    metrics_listen: SocketAddr,
}

/// The controllers' cache-sync signals, named as `/readyz` lists them.
type SyncSignals = Vec<(String, CacheSyncSignal)>;

/// A cache-sync signal for `controller`, recorded in `signals` under controller-manager's name.
fn sync_signal(signals: &mut SyncSignals, controller: &str) -> CacheSyncSignal {
    let signal = CacheSyncSignal::default();
    signals.push((format!("informer-sync:{controller}"), signal.clone()));
    signal
}

/// The components `up` runs, in start order, with the controllers' cache-sync signals; `api` is
/// the embedded API server's address and `metrics` what `/metrics` serves.
fn components(
    args: &UpArgs,
    api: SocketAddr,
    metrics: &Arc<Mutex<Registry>>,
) -> (Vec<Component>, SyncSignals) {
    let mut nodes = NodeSimConfig::with_node_count(usize::from(args.nodes));
    if args.dual_stack {
        nodes = nodes.dual_stack();
    }
    let ranges = args.service_cluster_ip_range.clone();
    let ports = args.service_node_port_range;
    let registry = control_plane::SharedRegistry::default();
    let repair_metrics = RepairMetrics::default();
    register(
        &repair_metrics,
        &mut metrics.lock().unwrap_or_else(|e| e.into_inner()),
    );
    let mut signals = SyncSignals::new();
    let slices = EndpointSliceControllerConfig {
        caches_synced: sync_signal(&mut signals, "endpointslice"),
        ..Default::default()
    };
    let endpoints = EndpointsControllerConfig {
        caches_synced: sync_signal(&mut signals, "endpoint"),
        ..Default::default()
    };
    let mirroring = MirroringControllerConfig {
        caches_synced: sync_signal(&mut signals, "endpointslicemirroring"),
        ..Default::default()
    };
    let repair = RepairConfig {
        caches_synced: sync_signal(&mut signals, "allocation-repair"),
        ..RepairConfig::new(ranges.clone(), ports)
    };
    let webhook_bind = SocketAddr::new(api.ip(), 0);
    let kubernetes = KubernetesServiceConfig {
        service_cluster_ip_ranges: ranges.all().into_iter().map(|c| c.net()).collect(),
        advertise_addresses: vec![api.ip()],
        secure_port: i32::from(api.port()),
        ..KubernetesServiceConfig::default()
    };
    let components = vec![
        node_simulator(nodes),
        control_plane::allocator_registry(
            control_plane::registry_config(ranges.clone(), ports, AllocationMode::Authoritative),
            registry.clone(),
        ),
        // Before the webhook, as kube-apiserver's bootstrap; the webhook waives the loopback
        // rule for this address on these endpoints only, so a recreated Service gets them too.
        control_plane::kubernetes_service(kubernetes, true),
        control_plane::embedded_webhook(
            webhook_bind,
            ranges.clone(),
            ports,
            vec![api.ip()],
            registry,
        ),
        control_plane::endpointslice(slices, metrics.clone()),
        control_plane::endpoints(endpoints),
        control_plane::mirroring(mirroring),
        control_plane::allocation_repair(repair, repair_metrics),
    ];
    (components, signals)
}

fn node_simulator(config: NodeSimConfig) -> Component {
    Component::new("node-simulator", move |client, shutdown| async move {
        let sim = NodeSimulator::start(client, config).await?;
        Ok(tokio::spawn(async move {
            shutdown.wait().await;
            sim.stop().await;
            Ok(())
        }))
    })
}

/// Runs the playground until a termination signal.
pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let termination = crate::signals::termination()?;
    let env = TestEnv::start_with(TestEnvOptions {
        listen: args.listen,
        system_namespaces: true,
        data_dir: args.data_dir.clone(),
        ..TestEnvOptions::default()
    })
    .await
    .map_err(|e| match e {
        testenv::TestEnvError::Bind { addr, source } => {
            crate::flags::listen_error("--listen", addr, &source)
        }
        other => other.into(),
    })?;
    let storage = match &args.data_dir {
        Some(dir) => dir.display().to_string(),
        None => "memory".to_owned(),
    };
    tracing::info!(url = %env.url(), data_dir = %storage, "API server listening");
    let client = env.try_client()?;

    let metrics = Arc::new(Mutex::new(Registry::default()));
    let (components, signals) = components(&args, env.addr(), &metrics);
    let (trigger, shutdown) = shutdown_channel();
    let state = HealthState {
        readiness: Arc::new(move || {
            signals
                .iter()
                .map(|(name, s)| (name.clone(), s.is_synced()))
                .collect()
        }),
        metrics,
    };
    let (serving, health_task) = match health::serve(
        "--metrics-listen",
        args.metrics_listen,
        state,
        shutdown.clone(),
    )
    .await
    {
        Ok(served) => served,
        Err(e) => {
            env.stop().await;
            return Err(e);
        }
    };
    tracing::info!(address = %serving, "serving /healthz, /readyz and /metrics");
    let running = vec![("health", health_task)];
    let mut running = match start_in_order(components, &client, &shutdown, &trigger, running).await
    {
        Ok(running) => running,
        Err(e) => {
            env.stop().await;
            return Err(e);
        }
    };

    let kubeconfig =
        std::path::absolute(&args.kubeconfig_out).unwrap_or_else(|_| args.kubeconfig_out.clone());
    write_atomically(&kubeconfig, &env.kubeconfig())
        .with_context(|| format!("cannot write the kubeconfig to {}", kubeconfig.display()))?;
    println!(
        "svcplane is up: Kubernetes API at {}, {} nodes.\nMetrics at http://{serving}/metrics (health: /healthz, /readyz).\n\nPoint kubectl at it:\n\n  export KUBECONFIG={}\n  kubectl get nodes\n\nStop with Ctrl-C.",
        env.url(),
        args.nodes,
        kubeconfig.display()
    );
    tracing::info!(
        ready_after_ms = started.elapsed().as_millis() as u64,
        kubeconfig = %kubeconfig.display(),
        "svcplane is up"
    );

    let outcome = tokio::select! {
        signal = termination => {
            tracing::info!(signal, "shutting down");
            Ok(())
        }
        failure = first_to_exit(&mut running) => Err(failure),
    };
    trigger.fire();
    stop_all(running).await;
    env.stop().await;
    tracing::info!("stopped");
    outcome
}

/// Writes `contents` so readers see the old file or the whole new one, never a partial one.
fn write_atomically(path: &Path, contents: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, contents)?;
    std::fs::rename(&tmp, path)
}
