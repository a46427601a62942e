//! The shell: watches Services and EndpointSlices (with kube-proxy's label selector) through
//! `kuberun::watch_events`, and syncs the table after changes, at most once per
//! `min_sync_period`: nothing is written before both caches have listed; the first sync and the
//! one after a failure are full, the others partial; a failed transaction is retried after
//! `sync_period`. After each successful sync the health-check servers are re-synced.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, ObjectReference, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::ServiceCIDR;
use kube::Resource;
use kube::api::Api;
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::runtime::watcher::{self, Event};
use kuberun::Shutdown;
use tokio::sync::watch;

use crate::health::ProxyHealth;
use crate::metrics::{ProxyMetrics, SyncKind, unix_seconds};
use crate::model::{PROXY_LABEL_SELECTOR, ServiceKey};
use crate::nft::{IpFamily, Transaction};
use crate::rules::{RulesConfig, Ruleset, desired_ruleset};
use crate::runner::{NftError, NftRunner};
use crate::servers::{self, ServiceHealthServers, SharedHealth};
use crate::sync::SyncState;

pub use crate::servers::ListenerFactory;

/// The proxy's configuration.
#[derive(Clone)]
pub struct ProxyConfig {
    /// The rules' inputs (node, CIDRs, masquerading, NodePort addresses); `rules.family` is set
    /// per table from `families`.
    pub rules: RulesConfig,
    /// One table per family: `ip kube-proxy` and/or `ip6 kube-proxy` (upstream runs both on a
    /// dual-stack node).
    pub families: Vec<IpFamily>,
    /// Least time between two syncs (upstream's `minSyncPeriod`, default 1 s).
    pub min_sync_period: Duration,
    /// Retry delay after a failed transaction (upstream's `syncPeriod`, default 30 s); the proxy
    /// reports unhealthy when a change waits twice this long.
    pub sync_period: Duration,
    /// `--healthz-bind-address` (default 0.0.0.0:10256); `None` serves no healthz.
    pub healthz_bind_address: Option<SocketAddr>,
    /// `--metrics-bind-address`: `/metrics` (and `/healthz`, `/proxyMode`) as upstream's
    /// metrics server answers them. Upstream's flag defaults to 127.0.0.1:10249; here `None`
    /// (the default) serves none, so that several proxies in one namespace do not collide.
    pub metrics_bind_address: Option<SocketAddr>,
    /// The `kubeproxy_*` series this proxy updates (clones share them; register them in another
    /// registry to expose them elsewhere).
    pub metrics: ProxyMetrics,
    /// How nft is run (and in which network namespace).
    pub runner: NftRunner,
    /// How the health-check listeners are bound.
    pub listener_factory: ListenerFactory,
    /// Take the ServiceCIDRs from the API's `networking.k8s.io/v1` ServiceCIDR objects (as
    /// upstream does since MultiCIDRServiceAllocator is on), instead of `rules.service_cidrs`.
    pub watch_service_cidrs: bool,
    /// Watch this node's Node object: its `topology.kubernetes.io/zone` label feeds the zone
    /// hints, and `/healthz` answers 503 while it is missing, being deleted or tainted
    /// `ToBeDeletedByClusterAutoscaler` (upstream). Off: `rules.zone` is used and the node is
    /// always eligible.
    pub watch_node: bool,
}

impl ProxyConfig {
    /// Upstream's defaults for `rules`: a table for each family the node has an address of
    /// (IPv4 when it has none).
    pub fn new(rules: RulesConfig) -> Self {
        let mut families: Vec<IpFamily> = [IpFamily::V4, IpFamily::V6]
            .into_iter()
            .filter(|f| rules.node_ips.iter().any(|ip| f.contains(ip)))
            .collect();
        if families.is_empty() {
            families.push(IpFamily::V4);
        }
        ProxyConfig {
            rules,
            families,
            min_sync_period: Duration::from_secs(1),
            sync_period: Duration::from_secs(30),
            healthz_bind_address: Some(SocketAddr::from(([0, 0, 0, 0], 10256))),
            metrics_bind_address: None,
            metrics: ProxyMetrics::default(),
            runner: NftRunner::new(),
            listener_factory: servers::plain_bind(),
            watch_service_cidrs: true,
            watch_node: true,
        }
    }
}

/// Why the proxy could not run.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// nft is unusable.
    #[error("kube-proxy (nftables mode) cannot start: {0}")]
    Nft(#[from] NftError),
    /// The healthz server could not bind.
    #[error("failed to start proxy healthz on {addr}: {source}")]
    Healthz {
        /// The address.
        addr: SocketAddr,
        /// The bind error.
        source: std::io::Error,
    },
    /// The metrics server could not bind.
    #[error("starting metrics server failed: listen tcp {addr}: {source}")]
    Metrics {
        /// The address.
        addr: SocketAddr,
        /// The bind error.
        source: std::io::Error,
    },
}

/// The whole-table transaction a fresh process would run for these objects (for tests, and to
/// compare with upstream kube-proxy's).
pub fn full_sync_transaction(
    config: &RulesConfig,
    services: &[Service],
    slices: &[EndpointSlice],
) -> Transaction {
    let desired = desired_ruleset(config, services, slices);
    SyncState::new(config.family)
        .plan(&desired, None, Instant::now())
        .transaction
}

#[derive(Default)]
struct Caches {
    services: BTreeMap<ServiceKey, Service>,
    slices: BTreeMap<ServiceKey, EndpointSlice>,
    service_cidrs: BTreeMap<ServiceKey, ServiceCIDR>,
    nodes: BTreeMap<ServiceKey, Node>,
    services_synced: bool,
    slices_synced: bool,
}

fn key_of<K: Resource>(object: &K) -> ServiceKey {
    let meta = object.meta();
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

/// How each kind is kept in the caches.
trait Cached:
    Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static
{
    fn map(caches: &mut Caches) -> &mut BTreeMap<ServiceKey, Self>;
    fn set_synced(caches: &mut Caches);
    /// Counts one change seen by the watch (upstream's `*_changes_total`).
    fn count_change(_: &ProxyMetrics) {}
}

impl Cached for Service {
    fn map(caches: &mut Caches) -> &mut BTreeMap<ServiceKey, Self> {
        &mut caches.services
    }
    fn set_synced(caches: &mut Caches) {
        caches.services_synced = true;
    }
    fn count_change(metrics: &ProxyMetrics) {
        metrics.service_changed();
    }
}

impl Cached for EndpointSlice {
    fn map(caches: &mut Caches) -> &mut BTreeMap<ServiceKey, Self> {
        &mut caches.slices
    }
    fn set_synced(caches: &mut Caches) {
        caches.slices_synced = true;
    }
    fn count_change(metrics: &ProxyMetrics) {
        metrics.endpoint_changed();
    }
}

impl Cached for ServiceCIDR {
    fn map(caches: &mut Caches) -> &mut BTreeMap<ServiceKey, Self> {
        &mut caches.service_cidrs
    }
    // Rules are written without waiting for ServiceCIDRs, as upstream does.
    fn set_synced(_: &mut Caches) {}
}

impl Cached for Node {
    fn map(caches: &mut Caches) -> &mut BTreeMap<ServiceKey, Self> {
        &mut caches.nodes
    }
    fn set_synced(_: &mut Caches) {}
}

/// Keeps `K` in the caches until `shutdown`, waking the sync loop on every change.
// The watch's shared state is passed piece by piece, as each piece is owned by `run`.
#[allow(clippy::too_many_arguments)]
async fn keep<K>(
    api: Api<K>,
    config: watcher::Config,
    caches: Arc<Mutex<Caches>>,
    changed: Arc<watch::Sender<u64>>,
    health: SharedHealth,
    metrics: ProxyMetrics,
    families: Vec<IpFamily>,
    shutdown: Shutdown,
) where
    K: Cached,
    K::DynamicType: Default,
{
    let mut listing: Option<BTreeMap<ServiceKey, K>> = None;
    kuberun::watch_events(api, config, shutdown, move |event| {
        let mut caches = caches.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            Event::Apply(object) => {
                K::count_change(&metrics);
                K::map(&mut caches).insert(key_of(&object), object);
            }
            Event::Delete(object) => {
                K::count_change(&metrics);
                K::map(&mut caches).remove(&key_of(&object));
            }
            Event::Init => {
                listing = Some(BTreeMap::new());
                return;
            }
            Event::InitApply(object) => {
                // Upstream's informers call OnServiceAdd / OnEndpointSliceAdd for a listing too.
                K::count_change(&metrics);
                if let Some(listing) = listing.as_mut() {
                    listing.insert(key_of(&object), object);
                }
                return;
            }
            Event::InitDone => {
                // A (re-)list replaces the kind as a whole.
                *K::map(&mut caches) = listing.take().unwrap_or_default();
                K::set_synced(&mut caches);
            }
        }
        drop(caches);
        let now = jiff::Timestamp::now();
        let mut health = health.lock().unwrap_or_else(|e| e.into_inner());
        for family in &families {
            health.queued_update(*family, now);
            metrics.queued(*family, unix_seconds(now));
        }
        drop(health);
        changed.send_modify(|generation| *generation += 1);
    })
    .await;
}

/// Runs the proxy against `client` until `shutdown`.
pub async fn run(
    client: kube::Client,
    config: ProxyConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ProxyError> {
    let families = config.families.clone();
    // Fail early and clearly when nft cannot be run at all.
    for family in &families {
        config.runner.list_objects(*family).await?;
    }

    let health: SharedHealth = Arc::new(Mutex::new(ProxyHealth::new(config.sync_period * 2)));
    // Until the first sync, upstream counts the start as an update, and as a queued sync.
    for family in &families {
        let now = jiff::Timestamp::now();
        health
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .updated(*family, now);
        config.metrics.queued(*family, unix_seconds(now));
    }
    let metrics_server = match config.metrics_bind_address {
        Some(addr) => {
            let mut registry = prometheus_client::registry::Registry::default();
            config.metrics.register(&mut registry);
            Some(
                servers::start_metrics(&config.listener_factory, addr, Arc::new(registry))
                    .map_err(|source| ProxyError::Metrics { addr, source })?,
            )
        }
        None => None,
    };
    let caches = Arc::new(Mutex::new(Caches::default()));
    let healthz = match config.healthz_bind_address {
        Some(addr) => {
            let watch_node = config.watch_node;
            let nodes = caches.clone();
            let eligible = Arc::new(move || {
                !watch_node
                    || crate::health::node_eligible(
                        nodes
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .nodes
                            .values()
                            .next(),
                    )
            });
            Some(
                servers::start_healthz(
                    &config.listener_factory,
                    addr,
                    health.clone(),
                    eligible,
                    config.metrics.clone(),
                )
                .map_err(|source| ProxyError::Healthz { addr, source })?,
            )
        }
        None => None,
    };

    let (trigger, token) = kuberun::shutdown_channel();
    let changed = Arc::new(watch::Sender::new(0u64));
    let selected = watcher::Config::default().labels(PROXY_LABEL_SELECTOR);
    let cidrs = config.watch_service_cidrs.then(|| {
        tokio::spawn(keep::<ServiceCIDR>(
            Api::all(client.clone()),
            watcher::Config::default(),
            caches.clone(),
            changed.clone(),
            health.clone(),
            config.metrics.clone(),
            families.clone(),
            token.clone(),
        ))
    });
    let node = config.watch_node.then(|| {
        let this_node =
            watcher::Config::default().fields(&format!("metadata.name={}", config.rules.node_name));
        tokio::spawn(keep::<Node>(
            Api::all(client.clone()),
            this_node,
            caches.clone(),
            changed.clone(),
            health.clone(),
            config.metrics.clone(),
            families.clone(),
            token.clone(),
        ))
    });
    let services = tokio::spawn(keep::<Service>(
        Api::all(client.clone()),
        selected.clone(),
        caches.clone(),
        changed.clone(),
        health.clone(),
        config.metrics.clone(),
        families.clone(),
        token.clone(),
    ));
    let client_for_events = client.clone();
    let slices = tokio::spawn(keep::<EndpointSlice>(
        Api::all(client),
        selected,
        caches.clone(),
        changed.clone(),
        health.clone(),
        config.metrics.clone(),
        families.clone(),
        token.clone(),
    ));

    let events = HealthcheckEvents::new(client_for_events, &config.rules.node_name);
    let loops = futures::future::join_all(families.iter().map(|family| {
        let mut rules = config.rules.clone();
        rules.family = *family;
        let servers = ServiceHealthServers::new(
            config.listener_factory.clone(),
            *family,
            &rules.nodeport_selection(),
            health.clone(),
        );
        sync_loop(
            &config,
            &events,
            rules,
            &caches,
            changed.subscribe(),
            &health,
            servers,
        )
    }));
    tokio::select! {
        () = shutdown => {}
        _ = loops => {}
    }
    trigger.fire();
    let _ = tokio::join!(services, slices);
    for task in [cidrs, node].into_iter().flatten() {
        let _ = task.await;
    }
    for server in [healthz, metrics_server].into_iter().flatten() {
        server.abort();
    }
    Ok(())
}

/// Syncs one family's table until the future is dropped.
async fn sync_loop(
    config: &ProxyConfig,
    events: &HealthcheckEvents,
    base_rules: RulesConfig,
    caches: &Mutex<Caches>,
    mut changed: watch::Receiver<u64>,
    health: &SharedHealth,
    mut servers: ServiceHealthServers,
) {
    let family = base_rules.family;
    let mut state = SyncState::new(family);
    let mut last_sync: Option<Instant> = None;
    let mut retry_at: Option<Instant> = None;
    loop {
        let ready = {
            let c = caches.lock().unwrap_or_else(|e| e.into_inner());
            c.services_synced && c.slices_synced
        };
        if ready {
            if let Some(last) = last_sync {
                tokio::time::sleep_until((last + config.min_sync_period).into()).await;
            }
            // Upstream's latency runs from here (changes not yet taken in) to nft's answer.
            let now = Instant::now();
            last_sync = Some(now);
            let mut rules = base_rules.clone();
            let (services, slices) = {
                let c = caches.lock().unwrap_or_else(|e| e.into_inner());
                if config.watch_service_cidrs {
                    rules.service_cidrs = service_cidrs_of(c.service_cidrs.values());
                }
                if config.watch_node {
                    rules.zone = c.nodes.values().next().and_then(crate::model::node_zone);
                }
                (
                    c.services.values().cloned().collect::<Vec<_>>(),
                    c.slices.values().cloned().collect::<Vec<_>>(),
                )
            };
            let desired = desired_ruleset(&rules, &services, &slices);
            let (result, kind) =
                sync_once(&config.runner, &state, &desired, now, &config.metrics).await;
            config
                .metrics
                .observe_sync(family, kind, now.elapsed().as_secs_f64());
            match result {
                Ok(next) => {
                    state = next;
                    retry_at = None;
                    let synced_at = jiff::Timestamp::now();
                    health
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .updated(family, synced_at);
                    config.metrics.synced(family, unix_seconds(synced_at));
                    for (key, port, error) in servers.sync(
                        &desired.health_check_node_ports,
                        &desired.local_ready_endpoints,
                    ) {
                        tracing::error!(service = %format!("{}/{}", key.0, key.1), port, %error, "Failed to start healthcheck");
                        events.failed_healthcheck(&key, port, &error);
                    }
                }
                Err((next, error)) => {
                    tracing::error!(family = family.nft(), %error, retry_in = ?config.sync_period, "nftables sync failed");
                    config.metrics.sync_failed(family);
                    state = next;
                    retry_at = Some(Instant::now() + config.sync_period);
                }
            }
        }
        // Wake for a change, a retry, or a stale chain due for deletion.
        let wake = [retry_at, state.next_stale_deadline()]
            .into_iter()
            .flatten()
            .min();
        tokio::select! {
            result = changed.changed() => {
                if result.is_err() {
                    return;
                }
            }
            () = sleep_until_opt(wake) => {}
        }
    }
}

/// Publishes upstream's Warning `FailedToStartServiceHealthcheck` events on Services (as
/// `kube-proxy`, instance = the node), off the sync path.
struct HealthcheckEvents {
    recorder: Recorder,
    node_name: String,
}

impl HealthcheckEvents {
    fn new(client: kube::Client, node_name: &str) -> Self {
        HealthcheckEvents {
            recorder: Recorder::new(
                client,
                Reporter {
                    controller: "kube-proxy".into(),
                    instance: Some(node_name.to_string()),
                },
            ),
            node_name: node_name.to_string(),
        }
    }

    fn failed_healthcheck(&self, key: &ServiceKey, port: u16, error: &str) {
        let (namespace, name) = key;
        let event = KubeEvent {
            type_: EventType::Warning,
            reason: "FailedToStartServiceHealthcheck".into(),
            note: Some(format!(
                "node {} failed to start healthcheck \"{namespace}/{name}\" on port {port}: {error}",
                self.node_name
            )),
            action: "Listen".into(),
            secondary: None,
        };
        let reference = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Service".into()),
            namespace: Some(namespace.clone()),
            name: Some(name.clone()),
            // Upstream has no UID at hand and uses the name.
            uid: Some(format!("{namespace}/{name}")),
            ..ObjectReference::default()
        };
        let recorder = self.recorder.clone();
        tokio::spawn(async move {
            if let Err(error) = recorder.publish(&event, &reference).await {
                tracing::debug!(%error, "cannot publish event");
            }
        });
    }
}

/// The CIDRs of ServiceCIDR objects, sorted and without duplicates.
fn service_cidrs_of<'a>(objects: impl Iterator<Item = &'a ServiceCIDR>) -> Vec<ipnet::IpNet> {
    let mut cidrs: Vec<ipnet::IpNet> = objects
        .filter_map(|o| o.spec.as_ref()?.cidrs.as_ref())
        .flatten()
        .filter_map(|c| c.parse().ok())
        .collect();
    cidrs.sort();
    cidrs.dedup();
    cidrs
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// One sync: the due stale chains' deletion, then the (full or partial) transaction, and which
/// of the two it was. On failure the returned state forces a full sync.
async fn sync_once(
    runner: &NftRunner,
    state: &SyncState,
    desired: &Ruleset,
    now: Instant,
    metrics: &ProxyMetrics,
) -> (Result<SyncState, (SyncState, NftError)>, SyncKind) {
    let mut state = state.clone();
    if let Some((tx, next)) = state.stale_chain_deletion(now) {
        match runner.apply(&tx).await {
            Ok(()) => state = next,
            Err(e) => {
                // The chains are found again (and re-flushed) by the full sync.
                tracing::warn!(error = %e, "Unable to delete stale chains; will retry later");
                metrics.cleanup_failed(desired.family);
                state = state.failed();
            }
        }
    }
    let kernel = if state.needs_full_sync_for(desired) {
        match runner.list_objects(desired.family).await {
            Ok(objects) => Some(objects),
            Err(e) => {
                tracing::warn!(error = %e, "Failed to list existing nftables objects");
                None
            }
        }
    } else {
        None
    };
    let plan = state.plan(desired, kernel.as_ref(), now);
    tracing::debug!(
        full = plan.full,
        operations = plan.transaction.len(),
        "Syncing nftables rules"
    );
    let kind = if plan.full {
        SyncKind::Full
    } else {
        SyncKind::Partial
    };
    let result = match runner.apply(&plan.transaction).await {
        Ok(()) => Ok(plan.next),
        Err(e) => Err((state.failed(), e)),
    };
    (result, kind)
}
