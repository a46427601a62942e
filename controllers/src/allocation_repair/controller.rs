//! The shell of the release-and-repair controller: watches, the pass loop, the writes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use allocator::registry::{AllocationMode, NodePortAllocation};
use allocator::{PortRange, ServiceClusterIpRanges, held_cluster_ips, held_node_ports};
use k8s_openapi::api::core::v1::{ObjectReference, Service};
use k8s_openapi::api::networking::v1::IPAddress;
use kube::api::{DeleteParams, Preconditions};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Api, Client};
use kuberun::store_reflector;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::allocation_repair::metrics::RepairMetrics;
use crate::allocation_repair::plan::{
    Claim, Regarding, RepairAction, RepairEvent, RepairInput, RepairPlan, ServiceKey, key_of,
    plan_repair,
};
use crate::leader_election::WriteGate;
use crate::runtime::locks::lock;
use crate::runtime::{CacheSyncSignal, Shutdown};

/// Upstream's grace period for an IPAddress whose Service is missing.
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(60);
/// Upstream's repair interval.
pub const DEFAULT_REPAIR_INTERVAL: Duration = Duration::from_secs(180);
/// Changes arriving together are handled in one pass.
const DEBOUNCE: Duration = Duration::from_millis(20);
/// A pass looks at every Service and claim, so while changes stream in (a burst of creates)
/// the next pass waits this many times as long as the last one took to plan: the repair then
/// takes about a tenth of a core at any cluster size, where back-to-back passes took half of
/// `svcplane up`'s CPU during 1,300 Service creates/s at 15,000 Services.
const SETTLE_PER_PASS: u32 = 9;
/// The longest such wait: a released claim is written back within about a second.
const MAX_SETTLE: Duration = Duration::from_secs(1);

/// What the controller watches over and how eagerly it acts.
#[derive(Debug, Clone)]
pub struct RepairConfig {
    /// `--service-cluster-ip-range`.
    pub ranges: ServiceClusterIpRanges,
    /// `--service-node-port-range`.
    pub node_ports: PortRange,
    /// Authoritative (release and repair) or audit (report only).
    pub mode: AllocationMode,
    /// How long a claim without its Service is left alone.
    pub grace_period: Duration,
    /// How often a full pass runs without any change (and how often an unchanged problem is
    /// reported again).
    pub interval: Duration,
    /// The `reportingController` of the events.
    pub reporter: String,
    /// The `reportingInstance` of the events (the API requires one; e.g. the pod name).
    pub instance: String,
    /// Writes only while this replica holds the leader lease; passes start once it does.
    pub write_gate: WriteGate,
    /// Set when the caches have synced.
    pub caches_synced: CacheSyncSignal,
}

impl RepairConfig {
    /// Upstream's grace period and interval over the given ranges, authoritative.
    pub fn new(ranges: ServiceClusterIpRanges, node_ports: PortRange) -> Self {
        RepairConfig {
            ranges,
            node_ports,
            mode: AllocationMode::Authoritative,
            grace_period: DEFAULT_GRACE_PERIOD,
            interval: DEFAULT_REPAIR_INTERVAL,
            reporter: "svcplane-allocation-repair".into(),
            instance: "svcplane-allocation-repair".into(),
            write_gate: WriteGate::always(),
            caches_synced: CacheSyncSignal::default(),
        }
    }
}

/// Why the controller stopped.
#[derive(Debug, thiserror::Error)]
pub enum RepairError {
    /// A watch ended, so the caches can no longer be trusted.
    #[error("the {0} watch ended")]
    WatchEnded(&'static str),
}

/// Releases the ClusterIPs and NodePorts of deleted Services and of values a Service dropped,
/// and repairs leaked, duplicate, out-of-range and mismatched allocations.
pub struct AllocationRepair {
    client: Client,
    config: RepairConfig,
    metrics: RepairMetrics,
}

#[derive(Default)]
struct Observed {
    holdings: BTreeMap<ServiceKey, BTreeSet<Claim>>,
    dropped: BTreeMap<(ServiceKey, Claim), Instant>,
}

fn claims_of(service: &Service) -> BTreeSet<Claim> {
    held_cluster_ips(service)
        .into_iter()
        .map(Claim::Ip)
        .chain(held_node_ports(service).into_iter().map(Claim::Port))
        .collect()
}

impl AllocationRepair {
    /// A controller over `client`.
    pub fn new(client: Client, config: RepairConfig, metrics: RepairMetrics) -> Self {
        AllocationRepair {
            client,
            config,
            metrics,
        }
    }

    /// Runs until `shutdown` (`Ok`), or until a watch ends without it.
    pub async fn run(self, shutdown: Shutdown) -> Result<(), RepairError> {
        let notify = Arc::new(Notify::new());
        let observed = Arc::new(Mutex::new(Observed::default()));
        let every = watcher::Config::default;

        let (services, keep_services) = {
            let (notify, observed) = (notify.clone(), observed.clone());
            store_reflector(
                Api::<Service>::all(self.client.clone()),
                every(),
                shutdown.clone(),
                move |event| {
                    observe_service(&mut lock(&observed), event);
                    notify.notify_one();
                },
            )
        };
        let (ips, keep_ips) = store_reflector(
            Api::<IPAddress>::all(self.client.clone()),
            every(),
            shutdown.clone(),
            notify_on_change(&notify),
        );
        let (ports, keep_ports) = if self.config.mode == AllocationMode::Authoritative {
            let (store, keep) = store_reflector(
                Api::<NodePortAllocation>::all(self.client.clone()),
                every(),
                shutdown.clone(),
                notify_on_change(&notify),
            );
            (Some(store), Some(keep))
        } else {
            (None, None)
        };
        let keep_ports = async {
            match keep_ports {
                Some(keep) => keep.await,
                None => std::future::pending().await,
            }
        };

        let passes = self.pass_loop(services, ips, ports, observed, notify);
        // Shutdown first: the watches end on the same token, and that is not an error.
        tokio::select! {
            biased;
            () = shutdown.wait() => Ok(()),
            () = keep_services => Err(RepairError::WatchEnded("Service")),
            () = keep_ips => Err(RepairError::WatchEnded("IPAddress")),
            () = keep_ports => Err(RepairError::WatchEnded("NodePortAllocation")),
            result = passes => result,
        }
    }

    async fn pass_loop(
        &self,
        services: Store<Service>,
        ips: Store<IPAddress>,
        ports: Option<Store<NodePortAllocation>>,
        observed: Arc<Mutex<Observed>>,
        notify: Arc<Notify>,
    ) -> Result<(), RepairError> {
        let ended = |what| move |_| RepairError::WatchEnded(what);
        services
            .wait_until_ready()
            .await
            .map_err(ended("Service"))?;
        ips.wait_until_ready().await.map_err(ended("IPAddress"))?;
        if let Some(ports) = &ports {
            ports
                .wait_until_ready()
                .await
                .map_err(ended("NodePortAllocation"))?;
        }
        self.config.caches_synced.mark_synced();
        // Non-leaders keep warm caches but run no passes.
        self.config.write_gate.clone().wait_for_leadership().await;
        let recorder = Recorder::new(
            self.client.clone(),
            Reporter {
                controller: self.config.reporter.clone(),
                instance: Some(self.config.instance.clone()),
            },
        );
        let mut reported: BTreeMap<RepairEvent, Instant> = BTreeMap::new();
        loop {
            let planning = Instant::now();
            let plan = {
                let service_list = services.state();
                let ip_list = ips.state();
                let port_list = ports.as_ref().map(Store::state).unwrap_or_default();
                let dropped: BTreeSet<(ServiceKey, Claim)> =
                    lock(&observed).dropped.keys().cloned().collect();
                plan_repair(&RepairInput {
                    services: &service_list,
                    ip_addresses: &ip_list,
                    node_port_allocations: &port_list,
                    dropped: &dropped,
                    ranges: &self.config.ranges,
                    node_ports: self.config.node_ports,
                    mode: self.config.mode,
                    grace_period: self.config.grace_period,
                    now: jiff::Timestamp::now(),
                })
            };
            let settle = settle_after(planning.elapsed());
            self.record_metrics(&plan);
            self.execute(&plan).await;
            self.report(&recorder, &plan, &mut reported).await;
            {
                // A drop is remembered long enough for the pass that acts on it.
                let keep = self.config.grace_period.max(self.config.interval);
                lock(&observed)
                    .dropped
                    .retain(|_, seen| seen.elapsed() < keep);
            }
            let wait = plan
                .recheck_after
                .map_or(self.config.interval, |d| d.min(self.config.interval));
            tokio::select! {
                _ = notify.notified() => tokio::time::sleep(settle).await,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    fn record_metrics(&self, plan: &RepairPlan) {
        let allocator = &self.metrics.allocator;
        for cidr in self.config.ranges.all() {
            let name = cidr.to_string();
            let used = plan.allocated_ips.get(&name).copied().unwrap_or(0);
            allocator.set_ip_usage(&name, used, cidr.usable_size().saturating_sub(used));
        }
        let size = u64::from(self.config.node_ports.size());
        allocator.set_port_usage(
            plan.allocated_ports,
            size.saturating_sub(plan.allocated_ports),
        );
        self.metrics.count(&plan.counts);
    }

    async fn execute(&self, plan: &RepairPlan) {
        let ip_api: Api<IPAddress> = Api::all(self.client.clone());
        let port_api: Api<NodePortAllocation> = Api::all(self.client.clone());
        for action in &plan.actions {
            if !self.config.write_gate.allows_writes() {
                tracing::info!("not the leader: allocation repair writes skipped");
                return;
            }
            let result = match action {
                RepairAction::DeleteIpAddress { name, uid } => {
                    ip_api.delete(name, &precondition(uid)).await.map(|_| ())
                }
                RepairAction::DeleteNodePort { name, uid } => {
                    port_api.delete(name, &precondition(uid)).await.map(|_| ())
                }
                RepairAction::CreateIpAddress(obj) => ip_api
                    .create(&crate::runtime::write_params(), obj)
                    .await
                    .map(|_| ()),
                RepairAction::CreateNodePort(obj) => port_api
                    .create(&crate::runtime::write_params(), obj)
                    .await
                    .map(|_| ()),
            };
            match result {
                Ok(()) => {}
                // Gone already, changed since (uid precondition), or re-made by someone else:
                // the next pass sees the new state.
                Err(kube::Error::Api(status)) if matches!(status.code, 404 | 409) => {}
                Err(error) => {
                    tracing::warn!(%action, error = %gocompat::api_error_text(&error), "allocation repair write failed")
                }
            }
        }
    }

    async fn report(
        &self,
        recorder: &Recorder,
        plan: &RepairPlan,
        reported: &mut BTreeMap<RepairEvent, Instant>,
    ) {
        reported.retain(|_, at| at.elapsed() < self.config.interval);
        for event in &plan.events {
            if reported.contains_key(event) || !self.config.write_gate.allows_writes() {
                continue;
            }
            let published = recorder
                .publish(
                    &Event {
                        type_: EventType::Warning,
                        reason: event.reason.to_string(),
                        note: Some(event.message.clone()),
                        action: event.action.to_string(),
                        secondary: None,
                    },
                    &object_reference(&event.regarding),
                )
                .await;
            match published {
                Ok(()) => {
                    reported.insert(event.clone(), Instant::now());
                }
                Err(error) => {
                    tracing::warn!(error = %gocompat::api_error_text(&error), reason = event.reason, "cannot record event")
                }
            }
        }
    }
}

fn observe_service(observed: &mut Observed, event: &watcher::Event<Service>) {
    let now = Instant::now();
    match event {
        watcher::Event::Apply(service) | watcher::Event::InitApply(service) => {
            let key = key_of(service);
            let now_held = claims_of(service);
            let before = observed.holdings.insert(key.clone(), now_held.clone());
            for claim in before.unwrap_or_default().difference(&now_held) {
                observed.dropped.insert((key.clone(), claim.clone()), now);
            }
        }
        watcher::Event::Delete(service) => {
            let key = key_of(service);
            let mut held = observed.holdings.remove(&key).unwrap_or_default();
            held.extend(claims_of(service));
            for claim in held {
                observed.dropped.insert((key.clone(), claim), now);
            }
        }
        watcher::Event::Init | watcher::Event::InitDone => {}
    }
}

/// How long changes are gathered before the next pass, after a pass that took `planned` to plan.
fn settle_after(planned: Duration) -> Duration {
    (planned * SETTLE_PER_PASS).clamp(DEBOUNCE, MAX_SETTLE)
}

/// Wakes the pass loop on every change of a watched kind.
fn notify_on_change<K>(notify: &Arc<Notify>) -> impl FnMut(&watcher::Event<K>) + Send + 'static {
    let notify = notify.clone();
    move |_| notify.notify_one()
}

fn precondition(uid: &Option<String>) -> DeleteParams {
    DeleteParams {
        preconditions: uid.clone().map(|uid| Preconditions {
            uid: Some(uid),
            resource_version: None,
        }),
        ..DeleteParams::default()
    }
}

fn object_reference(regarding: &Regarding) -> ObjectReference {
    match regarding {
        Regarding::Service {
            namespace,
            name,
            uid,
        } => ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Service".into()),
            namespace: Some(namespace.clone()),
            name: Some(name.clone()),
            uid: uid.clone(),
            ..ObjectReference::default()
        },
        Regarding::IpAddress { name, uid } => ObjectReference {
            api_version: Some("networking.k8s.io/v1".into()),
            kind: Some("IPAddress".into()),
            name: Some(name.clone()),
            uid: uid.clone(),
            ..ObjectReference::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_settle_in_proportion_to_their_cost_within_bounds() {
        assert_eq!(settle_after(Duration::ZERO), DEBOUNCE);
        assert_eq!(settle_after(Duration::from_millis(1)), DEBOUNCE);
        assert_eq!(
            settle_after(Duration::from_millis(10)),
            Duration::from_millis(90)
        );
        assert_eq!(settle_after(Duration::from_millis(500)), MAX_SETTLE);
    }
}
