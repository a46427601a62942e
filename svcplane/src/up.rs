//! `svcplane up`: the playground. An API server on `--listen` (testenv, in memory; or with
//! `--apiserver real`, kube-apiserver and etcd with kube-controller-manager), simulated nodes, the
//! allocator registry, admission (in-process on testenv; the webhook beside kube-apiserver), every
//! controller, cluster DNS (`--dns-listen`) and with `--data-plane` pods that really answer
//! (`data_plane`), until Ctrl-C or SIGTERM; `/healthz`, `/readyz` and `/metrics` on
//! `--metrics-listen`.

mod apiserver;
pub mod data_plane;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use allocator::registry::AllocationMode;
use allocator::{PortRange, ServiceClusterIpRanges};
use controllers::allocation_repair::{RepairConfig, RepairMetrics, register};
use controllers::deployment_controller::DeploymentControllerConfig;
use controllers::endpoints_controller::EndpointsControllerConfig;
use controllers::endpointslice_controller::EndpointSliceControllerConfig;
use controllers::kubernetes_service_controller::KubernetesServiceConfig;
use controllers::loadbalancer_controller::LoadBalancerControllerConfig;
use controllers::mirroring_controller::MirroringControllerConfig;
use controllers::replicaset_controller::ReplicaSetControllerConfig;
use controllers::runtime::CacheSyncSignal;
use prometheus_client::registry::Registry;
use testenv::nodesim::{NodeSimConfig, NodeSimulator, ReadinessReporter};

use self::apiserver::{ApiServer, ApiServerKind};
use crate::component::{Component, first_to_exit, shutdown_channel, start_in_order, stop_all};
use crate::control_plane;
use crate::health::{self, HealthState};

/// Flags of `svcplane up`.
#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// The API server: testenv (embedded, in memory) or real (kube-apiserver and etcd, with
    /// kube-controller-manager, as built by scripts/k8s-binaries).
    #[arg(long, value_enum, default_value_t = ApiServerKind::Testenv)]
    apiserver: ApiServerKind,
    /// With --apiserver real: the directory holding etcd, kube-apiserver and
    /// kube-controller-manager (default: $SVCPLANE_K8S_BIN, else what scripts/k8s-binaries built).
    #[arg(long, value_name = "DIR")]
    k8s_bin: Option<PathBuf>,
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
    /// Keep the cluster's state in this directory so a restart loses nothing; in memory if unset
    /// (testenv only).
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
    /// Address of cluster DNS, UDP and TCP, zone cluster.local (port 0 picks one; the address
    /// is printed with a dig line).
    #[arg(long, default_value = "127.0.0.1:0")]
    dns_listen: SocketAddr,
    /// Run pods for real: every node and pod a Linux network namespace (pods answer on their
    /// ports with a stand-in server), readiness probes executed, `kubectl exec` and `kubectl
    /// logs`, cluster DNS inside pods, Services through a kube-proxy on nftables in each node
    /// (docs/data-plane.md). Needs root; without it `up` runs as without the flag and says why.
    #[arg(long)]
    data_plane: bool,
    /// Where LoadBalancer Services' IPs come from: CIDRs or first-last ranges, comma-separated,
    /// one family or both (with --data-plane they answer inside the nodes' namespaces only).
    #[arg(long, value_delimiter = ',', value_name = "CIDR|RANGE",
          default_values = controllers::loadbalancer::DEFAULT_POOL,
          value_parser = parse_pool_entry)]
    load_balancer_pool: Vec<String>,
}

/// One `--load-balancer-pool` entry, checked as the controller will read it.
fn parse_pool_entry(text: &str) -> Result<String, String> {
    controllers::loadbalancer::LoadBalancerPool::new(&[text.trim()])
        .map(|_| text.trim().to_owned())
        .map_err(|e| e.to_string())
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
/// the API server's address and `metrics` what `/metrics` serves.
///
/// On testenv svcplane is the service registry: it allocates (authoritative), maintains the
/// `kubernetes` Service, and may list the loopback API server in its endpoints. A real
/// kube-apiserver allocates ClusterIPs and NodePorts and maintains the `kubernetes` Service
/// itself, so there svcplane audits, as beside any kube-apiserver (docs/sidecar.md).
fn components(
    args: &UpArgs,
    api: SocketAddr,
    embedded: Option<&Arc<testenv::ApiServer>>,
    metrics: &Arc<Mutex<Registry>>,
    dns_bound: &Arc<OnceLock<SocketAddr>>,
    data_plane_on: bool,
) -> (Vec<Component>, SyncSignals) {
    let registry_of_record = args.apiserver == ApiServerKind::Testenv;
    let mode = if registry_of_record {
        AllocationMode::Authoritative
    } else {
        AllocationMode::Audit
    };
    let mut nodes = NodeSimConfig::with_node_count(usize::from(args.nodes));
    if args.dual_stack {
        nodes = nodes.dual_stack();
    }
    // With pods running for real, probed pods are Ready when their probes pass.
    nodes = nodes.with_external_readiness_probes(data_plane_on);
    // The playground is for people: `kubectl describe pod` shows what a scheduler and kubelet did.
    nodes = nodes.with_pod_events(true);
    let node_names: Vec<String> = nodes.nodes.iter().map(|n| n.name.clone()).collect();
    let v4_pod_cidrs: Vec<ipnet::IpNet> = nodes
        .nodes
        .iter()
        .flat_map(|n| n.pod_cidrs.iter().copied())
        .filter(|c| matches!(c, ipnet::IpNet::V4(_)))
        .collect();
    let readiness = Arc::new(OnceLock::new());
    let dns_records = Arc::new(OnceLock::new());
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
    let load_balancer = LoadBalancerControllerConfig {
        pool: args.load_balancer_pool.clone(),
        caches_synced: sync_signal(&mut signals, "loadbalancer"),
        ..Default::default()
    };
    let repair = RepairConfig {
        caches_synced: sync_signal(&mut signals, "allocation-repair"),
        mode,
        ..RepairConfig::new(ranges.clone(), ports)
    };
    let webhook_bind = SocketAddr::new(api.ip(), 0);
    let kubernetes = KubernetesServiceConfig {
        service_cluster_ip_ranges: ranges.all().into_iter().map(|c| c.net()).collect(),
        advertise_addresses: vec![api.ip()],
        secure_port: i32::from(api.port()),
        ..KubernetesServiceConfig::default()
    };
    let mut components = vec![
        node_simulator(nodes, readiness.clone()),
        control_plane::allocator_registry(
            control_plane::registry_config(ranges.clone(), ports, mode),
            registry.clone(),
        ),
    ];
    if registry_of_record {
        // Before the webhook, as kube-apiserver's bootstrap; the webhook waives the loopback
        // rule for this address on these endpoints only, so a recreated Service gets them too.
        components.push(control_plane::kubernetes_service(kubernetes, true));
    }
    components.push(match embedded {
        // The embedded API server admits Services in-process, as kube-apiserver's registry
        // does: its 422s are the API's own.
        Some(server) => control_plane::in_process_admission(
            server.clone(),
            ranges.clone(),
            ports,
            vec![api.ip()],
            registry,
        ),
        // kube-apiserver calls the webhook.
        None => control_plane::embedded_webhook(webhook_bind, ranges.clone(), ports, registry),
    });
    components.extend([
        control_plane::endpointslice(slices, metrics.clone()),
        control_plane::endpoints(endpoints),
        control_plane::mirroring(mirroring),
        control_plane::load_balancer(load_balancer),
        control_plane::allocation_repair(repair, repair_metrics),
        crate::dns_server::component(args.dns_listen, dns_bound.clone(), dns_records.clone()),
    ]);
    if registry_of_record {
        // Beside a real kube-apiserver, kube-controller-manager runs upstream's.
        components.push(control_plane::replicaset(ReplicaSetControllerConfig {
            caches_synced: sync_signal(&mut signals, "replicaset"),
            ..Default::default()
        }));
        components.push(control_plane::deployment(DeploymentControllerConfig {
            caches_synced: sync_signal(&mut signals, "deployment"),
            ..Default::default()
        }));
    }
    if data_plane_on
        && let Some(server) = embedded
        && let Some(dns_ip) = data_plane::cluster_dns_ip(ranges.primary.net())
        && let Some(cluster_cidr) = data_plane::covering_network(&v4_pod_cidrs)
    {
        components.push(data_plane::component(data_plane::DataPlaneSetup {
            server: server.clone(),
            readiness,
            dns_records,
            dns_ip,
            nodes: node_names,
            cluster_cidr,
            load_balancer_pool: args.load_balancer_pool.clone(),
        }));
    }
    (components, signals)
}

fn node_simulator(config: NodeSimConfig, readiness: Arc<OnceLock<ReadinessReporter>>) -> Component {
    Component::new("node-simulator", move |client, shutdown| async move {
        let sim = NodeSimulator::start(client, config).await?;
        let _ = readiness.set(sim.readiness_reporter());
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
    tokio::pin!(termination);
    apiserver::check_flags(
        args.apiserver,
        args.listen,
        args.service_cluster_ip_range.primary.net(),
        args.data_dir.as_deref(),
        args.k8s_bin.as_deref(),
    )?;
    let api = match args.apiserver {
        ApiServerKind::Testenv => ApiServer::embedded(args.listen, args.data_dir.clone()).await?,
        // Seconds of starting: a signal meanwhile stops what was started (a dropped start stops
        // its processes) and ends the run as a signal later would.
        ApiServerKind::Real => tokio::select! {
            api = ApiServer::real(
                args.listen,
                args.k8s_bin.as_deref(),
                &args.service_cluster_ip_range,
                args.service_node_port_range,
            ) => api?,
            signal = &mut termination => {
                tracing::info!(signal, "shutting down before the API server was ready");
                return Ok(());
            }
        },
    };
    let data_plane_on = args.data_plane && data_plane_possible(&args);
    let storage = api.storage(args.data_dir.as_deref());
    tracing::info!(url = %api.url(), data_dir = %storage, "API server listening");
    let client = match api.client() {
        Ok(client) => client,
        Err(e) => {
            api.stop().await;
            return Err(e);
        }
    };

    let metrics = Arc::new(Mutex::new(Registry::default()));
    let dns_bound = Arc::new(OnceLock::new());
    let (components, signals) = components(
        &args,
        api.addr(),
        api.embedded_server().as_ref(),
        &metrics,
        &dns_bound,
        data_plane_on,
    );
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
            api.stop().await;
            return Err(e);
        }
    };
    tracing::info!(address = %serving, "serving /healthz, /readyz and /metrics");
    let running = vec![("health", health_task)];
    let mut running = match start_in_order(components, &client, &shutdown, &trigger, running).await
    {
        Ok(running) => running,
        Err(e) => {
            api.stop().await;
            return Err(e);
        }
    };

    let kubeconfig =
        std::path::absolute(&args.kubeconfig_out).unwrap_or_else(|_| args.kubeconfig_out.clone());
    if let Err(e) = write_atomically(&kubeconfig, &api.kubeconfig()) {
        trigger.fire();
        stop_all(running).await;
        api.stop().await;
        return Err(anyhow::Error::new(e).context(format!(
            "cannot write the kubeconfig to {}",
            kubeconfig.display()
        )));
    }
    let dns_line = match dns_bound.get() {
        Some(addr) => format!(
            "Cluster DNS (cluster.local) on {addr}, UDP and TCP:\n\n  {}\n\n",
            crate::dns_server::dig_line(*addr, dns::config::DEFAULT_ZONE)
        ),
        None => String::new(),
    };
    println!(
        "svcplane is up: Kubernetes API at {}, {} nodes.\nMetrics at http://{serving}/metrics (health: /healthz, /readyz).\n\nPoint kubectl at it:\n\n  export KUBECONFIG={}\n  kubectl get nodes\n\n{dns_line}Stop with Ctrl-C.",
        api.url(),
        args.nodes,
        kubeconfig.display()
    );
    tracing::info!(
        ready_after_ms = started.elapsed().as_millis() as u64,
        kubeconfig = %kubeconfig.display(),
        "svcplane is up"
    );

    let (outcome, api_died) = tokio::select! {
        signal = &mut termination => {
            tracing::info!(signal, "shutting down");
            (Ok(()), false)
        }
        failure = first_to_exit(&mut running) => (Err(failure), false),
        died = api.died() => (Err(died), true),
    };
    trigger.fire();
    if api_died {
        // What is left of the control plane goes first, so that the components' requests fail
        // at once instead of waiting on a server that cannot answer.
        api.stop().await;
        stop_all(running).await;
    } else {
        stop_all(running).await;
        api.stop().await;
    }
    tracing::info!("stopped");
    outcome
}

/// Whether `--data-plane` can run here; when not, says why in one line, and `up` goes on
/// without it.
fn data_plane_possible(args: &UpArgs) -> bool {
    let why_not = if args.apiserver == ApiServerKind::Real {
        Some("it needs the embedded API server (--apiserver testenv), which serves kubectl exec and logs from it".to_owned())
    } else if matches!(
        args.service_cluster_ip_range.primary.net(),
        ipnet::IpNet::V6(_)
    ) {
        Some(format!(
            "it lays out IPv4 only, and the primary --service-cluster-ip-range {} is IPv6",
            args.service_cluster_ip_range.primary.net()
        ))
    } else if data_plane::cluster_dns_ip(args.service_cluster_ip_range.primary.net()).is_none() {
        Some(format!(
            "--service-cluster-ip-range {} is too small for the cluster DNS Service, whose address is the range's tenth",
            args.service_cluster_ip_range.primary.net()
        ))
    } else {
        dataplane::check_host().err()
    };
    match why_not {
        Some(why) => {
            eprintln!("svcplane up: the data plane is off: {why}");
            false
        }
        None => true,
    }
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
