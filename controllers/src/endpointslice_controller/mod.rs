//! The EndpointSlice controller shell: reflectors over Services, Pods, Nodes and its own
//! EndpointSlices feed indexed caches; upstream's enqueue rules feed a keyed work queue;
//! `--concurrent-service-endpoint-syncs` workers gather a Service's inputs from the caches,
//! call the pure planner and write its plan, tracking their own writes so that stale caches
//! are retried instead of causing 409 storms (kubernetes#92928).

pub mod metrics;

use gocompat::api_error_text;
use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams};
use kube::runtime::watcher;
use prometheus_client::registry::Registry;

use self::metrics::EndpointSliceMetrics;
use crate::endpointslice::hints::{
    TOPOLOGY_AWARE_HINTS_DISABLED, TOPOLOGY_AWARE_HINTS_ENABLED, topology_annotation_enabled,
};
use crate::endpointslice::{
    CONTROLLER_NAME, EndpointSlicePlan, IndexedPod, IndexedSlice, LABEL_MANAGED_BY,
    MaxEndpointsPerSlice, NodeInfo, PlanOptions, PodInfo, TopologyHintsOutcome, plan_indexed,
};
use crate::leader_election::{NotLeader, WriteGate};
use crate::runtime::STALE_RETRY_DELAY;
use crate::runtime::cache::{
    PodCache, ServiceCache, SliceCache, SliceChange, pod_selector, slice_service,
};
use crate::runtime::events::reference_to;
use crate::runtime::locks::{lock, read, write};
use crate::runtime::slice_tracker::SliceTracker;
use crate::runtime::{
    CacheSyncSignal, ControllerParts, Delta, ErrorPolicy, EventRecorder, ObjectKey, QueueConfig,
    Reconciler, Reflectors, Shutdown, SyncResult, TriggerTimeTracker, WorkQueue, enqueue,
    is_namespace_terminating, run_controller,
};

/// Event source component.
pub const EVENT_COMPONENT: &str = "endpoint-slice-controller";
/// Minimum delay of slice-triggered syncs (`endpointSliceChangeMinSyncDelay`).
pub const SLICE_CHANGE_MIN_SYNC_DELAY: Duration = Duration::from_secs(1);
/// Upstream's stale-cache error text.
pub const STALE_INFORMER_ERROR: &str = "EndpointSlice informer cache is out of date";

/// Settings, named after kube-controller-manager's flags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointSliceControllerConfig {
    /// `--concurrent-service-endpoint-syncs` (default 5, valid 1..=50).
    pub concurrent_service_endpoint_syncs: usize,
    /// `--max-endpoints-per-slice` (default 100, valid 1..=1000).
    pub max_endpoints_per_slice: MaxEndpointsPerSlice,
    /// `--endpointslice-updates-batch-period` (default 0): delay of pod-triggered syncs.
    pub endpoint_updates_batch_period: Duration,
    /// Feature gate `PreferSameTrafficDistribution`.
    pub prefer_same_traffic_distribution: bool,
    /// Writes only while this replica holds the leader lease; workers start once it does.
    pub write_gate: WriteGate,
    /// Set when the caches have synced.
    pub caches_synced: CacheSyncSignal,
}

impl Default for EndpointSliceControllerConfig {
    fn default() -> Self {
        EndpointSliceControllerConfig {
            concurrent_service_endpoint_syncs: 5,
            max_endpoints_per_slice: MaxEndpointsPerSlice::default(),
            endpoint_updates_batch_period: Duration::ZERO,
            prefer_same_traffic_distribution: true,
            write_gate: WriteGate::always(),
            caches_synced: CacheSyncSignal::default(),
        }
    }
}

/// A configuration the controller refuses.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `--concurrent-service-endpoint-syncs` outside 1..=50.
    #[error("concurrent-service-endpoint-syncs must be between 1 and 50, but got {0}")]
    ConcurrentSyncs(usize),
}

impl EndpointSliceControllerConfig {
    /// Checks the ranges upstream enforces.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=50).contains(&self.concurrent_service_endpoint_syncs) {
            return Err(ConfigError::ConcurrentSyncs(
                self.concurrent_service_endpoint_syncs,
            ));
        }
        Ok(())
    }
}

/// Why one Service sync failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The slice cache is older than our own writes.
    #[error("{STALE_INFORMER_ERROR}")]
    Stale,
    /// Writes or planning failed; the text joins every error as Go's aggregate does.
    #[error("{0}")]
    Failed(String),
}

/// Why one write of a plan was not done; the texts are upstream's.
#[derive(Debug, thiserror::Error)]
enum WriteError {
    #[error(transparent)]
    NotLeader(#[from] NotLeader),
    #[error(
        "failed to create EndpointSlice for Service {service}: {}",
        api_error_text(source)
    )]
    Create {
        service: ObjectKey,
        source: kube::Error,
    },
    #[error(
        "failed to update {name} EndpointSlice for Service {service}: {}",
        api_error_text(source)
    )]
    Update {
        name: String,
        service: ObjectKey,
        source: kube::Error,
    },
    #[error(
        "failed to delete {name} EndpointSlice for Service {service}: {}",
        api_error_text(source)
    )]
    Delete {
        name: String,
        service: ObjectKey,
        source: kube::Error,
    },
}

/// Go's `utilerrors.NewAggregate(...).Error()`: one message as is, several in brackets.
pub fn aggregate_error_text(messages: &[String]) -> String {
    match messages {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

fn managed_by_us(slice: &EndpointSlice) -> bool {
    slice
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(LABEL_MANAGED_BY))
        .is_some_and(|v| v == CONTROLLER_NAME)
}

/// Sizes of the controller's caches (for memory estimates and tests).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheSizes {
    /// Cached Services.
    pub services: usize,
    /// Cached pods.
    pub pods: usize,
    /// Cached nodes.
    pub nodes: usize,
    /// Cached EndpointSlices.
    pub slices: usize,
}

struct Inner {
    client: kube::Client,
    config: EndpointSliceControllerConfig,
    services: RwLock<ServiceCache>,
    pods: RwLock<PodCache>,
    nodes: RwLock<BTreeMap<String, NodeInfo>>,
    slices: RwLock<SliceCache>,
    tracker: Mutex<SliceTracker>,
    triggers: Mutex<TriggerTimeTracker>,
    hints_populated: Mutex<HashSet<ObjectKey>>,
    waiting_for_nodes: Mutex<HashSet<ObjectKey>>,
    queue: WorkQueue<ObjectKey>,
    metrics: EndpointSliceMetrics,
    events: EventRecorder,
}

/// The EndpointSlice controller.
#[derive(Clone)]
pub struct EndpointSliceController {
    inner: Arc<Inner>,
}

/// Runs the EndpointSlice controller with its own metrics registry until `shutdown`.
pub async fn run(
    client: kube::Client,
    config: EndpointSliceControllerConfig,
    shutdown: Shutdown,
) -> Result<(), ConfigError> {
    let mut registry = Registry::default();
    EndpointSliceController::new(client, config, &mut registry)?
        .run(shutdown)
        .await;
    Ok(())
}

impl EndpointSliceController {
    /// A controller whose metrics are registered in `registry`.
    pub fn new(
        client: kube::Client,
        config: EndpointSliceControllerConfig,
        registry: &mut Registry,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let events = EventRecorder::new(client.clone(), EVENT_COMPONENT);
        Ok(EndpointSliceController {
            inner: Arc::new(Inner {
                client,
                config,
                services: RwLock::default(),
                pods: RwLock::default(),
                nodes: RwLock::default(),
                slices: RwLock::default(),
                tracker: Mutex::default(),
                triggers: Mutex::default(),
                hints_populated: Mutex::default(),
                waiting_for_nodes: Mutex::default(),
                queue: WorkQueue::new(QueueConfig::endpoint_slice()),
                metrics: EndpointSliceMetrics::new(registry),
                events,
            }),
        })
    }

    /// Events recorded so far (most recent 256).
    pub fn events(&self) -> EventRecorder {
        self.inner.events.clone()
    }

    /// How many objects each cache holds.
    pub fn cache_sizes(&self) -> CacheSizes {
        CacheSizes {
            services: read(&self.inner.services).keys().len(),
            pods: read(&self.inner.pods).len(),
            nodes: read(&self.inner.nodes).len(),
            slices: read(&self.inner.slices).len(),
        }
    }

    /// Runs reflectors and workers until `shutdown` completes.
    pub async fn run(self, shutdown: Shutdown) {
        let inner = self.inner;
        let client = inner.client.clone();
        let by_us =
            watcher::Config::default().labels(&format!("{LABEL_MANAGED_BY}={CONTROLLER_NAME}"));
        let every = watcher::Config::default;
        let reflectors = Reflectors::new(&client, &inner, &inner.queue, &shutdown)
            .watch(every(), Inner::on_service)
            .watch(every(), Inner::on_pod)
            .watch(every(), Inner::on_node)
            .watch(by_us, Inner::on_slice)
            .started();
        let parts = ControllerParts {
            name: "EndpointSlice",
            reflectors,
            caches_synced: inner.config.caches_synced.clone(),
            write_gate: inner.config.write_gate.clone(),
            queue: inner.queue.clone(),
            workers: inner.config.concurrent_service_endpoint_syncs,
        };
        let every_service = |inner: &Inner| read(&inner.services).keys();
        run_controller(inner, parts, every_service, shutdown).await;
    }
}

impl Inner {
    fn pod_delay(&self) -> Duration {
        self.config.endpoint_updates_batch_period
    }

    fn slice_delay(&self) -> Duration {
        self.config
            .endpoint_updates_batch_period
            .max(SLICE_CHANGE_MIN_SYNC_DELAY)
    }

    fn on_service(&self, delta: Delta<Service>) {
        let changed = write(&self.services).apply(delta);
        for key in changed {
            self.queue.add(key);
        }
    }

    fn services_selecting(&self, pod: &PodInfo) -> std::collections::BTreeSet<ObjectKey> {
        read(&self.services).selecting(&pod.namespace, &pod.labels)
    }

    fn enqueue_pod_services(&self, keys: impl IntoIterator<Item = ObjectKey>) {
        let delay = self.pod_delay();
        for key in keys {
            self.queue.add_after(key, delay);
        }
    }

    fn on_pod(&self, delta: Delta<Pod>) {
        match delta {
            Delta::Upsert(pod) => {
                let (new, old) = write(&self.pods).insert(
                    PodInfo::from_pod(&pod),
                    pod.metadata.resource_version.clone().unwrap_or_default(),
                );
                let keys = match old {
                    None => self.services_selecting(&new.info),
                    Some(old) if old.resource_version == new.resource_version => return,
                    Some(old) => {
                        let change = enqueue::pod_change(&old.info, &new.info);
                        if !change.endpoint_changed && !change.labels_changed {
                            return;
                        }
                        let selecting_old = if change.labels_changed {
                            self.services_selecting(&old.info)
                        } else {
                            Default::default()
                        };
                        let selecting_new = self.services_selecting(&new.info);
                        enqueue::services_for_pod_update(change, &selecting_old, &selecting_new)
                    }
                };
                self.enqueue_pod_services(keys);
            }
            Delta::Delete(pod) => {
                let key = ObjectKey::of(&pod);
                let removed = write(&self.pods).remove(&key);
                let info =
                    removed.map_or_else(|| PodInfo::from_pod(&pod), |p| p.info.info().clone());
                let keys = self.services_selecting(&info);
                self.enqueue_pod_services(keys);
            }
            Delta::Relisted(seen) => {
                let removed = write(&self.pods).remove_unseen(&seen);
                for pod in removed {
                    let keys = self.services_selecting(&pod.info);
                    self.enqueue_pod_services(keys);
                }
            }
        }
    }

    fn on_node(&self, delta: Delta<Node>) {
        let (topology_changed, added) = match delta {
            Delta::Upsert(node) => {
                let info = NodeInfo::from_node(&node);
                let old = write(&self.nodes).insert(info.name.clone(), info.clone());
                match old {
                    None => (true, true),
                    Some(old) => (old.ready != info.ready || old.zone != info.zone, false),
                }
            }
            Delta::Delete(node) => {
                let name = node.metadata.name.clone().unwrap_or_default();
                (write(&self.nodes).remove(&name).is_some(), false)
            }
            Delta::Relisted(seen) => {
                let mut nodes = write(&self.nodes);
                let before = nodes.len();
                nodes.retain(|name, _| seen.contains(&ObjectKey::new("", name.clone())));
                (nodes.len() != before, false)
            }
        };
        if added {
            let waiting: Vec<ObjectKey> = lock(&self.waiting_for_nodes).drain().collect();
            for key in waiting {
                self.queue.add(key);
            }
        }
        if topology_changed {
            // Upstream refreshes its topology cache and syncs Services whose hints it
            // changes; every Service with hints on is the simple superset.
            let keys: Vec<ObjectKey> = read(&self.services)
                .iter()
                .filter(|(_, s)| topology_annotation_enabled(s.metadata.annotations.as_ref()))
                .map(|(k, _)| k.clone())
                .collect();
            for key in keys {
                self.queue.add(key);
            }
        }
    }

    fn on_slice(&self, delta: Delta<EndpointSlice>) {
        let delay = self.slice_delay();
        let change = write(&self.slices).apply(delta);
        match change {
            SliceChange::Upserted { new: slice, old } => {
                let tracker = lock(&self.tracker);
                match old {
                    None => {
                        if managed_by_us(&slice) && tracker.should_sync(&slice) {
                            drop(tracker);
                            if let Some(key) = slice_service(&slice) {
                                self.queue.add_after(key, delay);
                            }
                        }
                    }
                    Some(old) => {
                        let (old_service, new_service) =
                            (slice_service(&old), slice_service(&slice));
                        if old_service != new_service {
                            drop(tracker);
                            for key in [old_service, new_service].into_iter().flatten() {
                                self.queue.add_after(key, delay);
                            }
                        } else if managed_by_us(&old) != managed_by_us(&slice)
                            || (managed_by_us(&slice) && tracker.should_sync(&slice))
                        {
                            drop(tracker);
                            if let Some(key) = new_service {
                                self.queue.add_after(key, delay);
                            }
                        }
                    }
                }
            }
            SliceChange::Removed(slices) => {
                for slice in slices {
                    self.on_slice_deleted(&slice, delay);
                }
            }
        }
    }

    fn on_slice_deleted(&self, slice: &EndpointSlice, delay: Duration) {
        if !managed_by_us(slice) {
            return;
        }
        let unexpected = {
            let mut tracker = lock(&self.tracker);
            tracker.has(slice) && tracker.handle_deletion(slice)
        };
        if unexpected && let Some(key) = slice_service(slice) {
            self.queue.add_after(key, delay);
        }
    }

    fn forget_service(&self, key: &ObjectKey) {
        lock(&self.tracker).delete_service(key);
        lock(&self.triggers).forget(key);
        lock(&self.hints_populated).remove(key);
        lock(&self.waiting_for_nodes).remove(key);
        self.metrics.forget_service(key);
    }

    async fn sync_service(&self, key: &ObjectKey) -> Result<(), SyncError> {
        let Some(service) = read(&self.services).get(key) else {
            // Slices go with the Service through their owner reference (garbage collection).
            self.forget_service(key);
            return Ok(());
        };
        let Some(spec) = service.spec.as_ref() else {
            return Ok(());
        };
        if spec.type_.as_deref() == Some("ExternalName") {
            return Ok(());
        }
        let Some(selector) = pod_selector(&service) else {
            return Ok(());
        };
        // The caches' own Arcs: nothing is copied for a sync.
        let cached_pods = read(&self.pods).select(&key.namespace, selector);
        let pods: Vec<&IndexedPod> = cached_pods.iter().map(|p| &p.info).collect();
        let cached: Vec<Arc<IndexedSlice>> = read(&self.slices)
            .for_service(key)
            .into_iter()
            .filter(|s| managed_by_us(s) && s.metadata.deletion_timestamp.is_none())
            .collect();
        if lock(&self.tracker).stale(key, cached.iter().map(|s| s.slice())) {
            return Err(SyncError::Stale);
        }
        let existing: Vec<&IndexedSlice> = cached.iter().map(Arc::as_ref).collect();
        let triggers = lock(&self.triggers).compute(
            key,
            service.metadata.creation_timestamp.as_ref().map(|t| t.0),
            pods.iter().map(|p| p.info()),
        );
        let options = PlanOptions {
            max_endpoints_per_slice: self.config.max_endpoints_per_slice,
            prefer_same_traffic_distribution: self.config.prefer_same_traffic_distribution,
            topology_hints: true,
            trigger_time: triggers.trigger_time,
        };
        let plan = {
            let nodes = read(&self.nodes);
            plan_indexed(&service, &pods, &nodes, &existing, &options)
        };
        drop(existing);
        drop(cached);

        let mut errors: Vec<String> = Vec::new();
        if let Err(e) = self.write_plan(key, &service, &plan).await {
            errors.push(e.to_string());
        } else if !plan.is_noop() {
            let now = jiff::Timestamp::now();
            for transition in &triggers.new_ready_transitions {
                let latency = now.duration_since(*transition).as_secs_f64();
                self.metrics.observe_pod_ready_latency(latency);
            }
        }
        let topology = if topology_annotation_enabled(service.metadata.annotations.as_ref()) {
            "Auto"
        } else {
            "Disabled"
        };
        let traffic_distribution = spec.traffic_distribution.as_deref().unwrap_or("");
        self.metrics
            .observe_plan(key, &plan, topology, traffic_distribution);
        self.record_topology_events(key, &service, &plan);
        if !plan.errors.is_empty() {
            lock(&self.waiting_for_nodes).insert(key.clone());
            errors.extend(plan.errors.iter().map(ToString::to_string));
        }
        if errors.is_empty() {
            return Ok(());
        }
        let text = aggregate_error_text(&errors);
        self.events.record(
            reference_to(service.as_ref()),
            true,
            "FailedToUpdateEndpointSlices",
            format!(
                "Error updating Endpoint Slices for Service {}/{}: {text}",
                key.namespace, key.name
            ),
        );
        Err(SyncError::Failed(text))
    }

    async fn write_plan(
        &self,
        key: &ObjectKey,
        service: &Service,
        plan: &EndpointSlicePlan,
    ) -> Result<(), WriteError> {
        let api: Api<EndpointSlice> = Api::namespaced(self.client.clone(), &key.namespace);
        // Upstream creates nothing for a Service being deleted.
        if service.metadata.deletion_timestamp.is_none() {
            for slice in &plan.create {
                self.config.write_gate.check()?;
                match api.create(&crate::runtime::write_params(), slice).await {
                    Ok(created) => {
                        lock(&self.tracker).update(&created);
                        self.metrics.change("create");
                    }
                    Err(e) if is_namespace_terminating(&e) => return Ok(()),
                    Err(source) => {
                        return Err(WriteError::Create {
                            service: key.clone(),
                            source,
                        });
                    }
                }
            }
        }
        for slice in &plan.update {
            let name = slice.metadata.name.clone().unwrap_or_default();
            self.config.write_gate.check()?;
            match api
                .replace(&name, &crate::runtime::write_params(), slice)
                .await
            {
                Ok(updated) => {
                    lock(&self.tracker).update(&updated);
                    self.metrics.change("update");
                }
                Err(source) => {
                    return Err(WriteError::Update {
                        name,
                        service: key.clone(),
                        source,
                    });
                }
            }
        }
        for slice in &plan.delete {
            let name = slice.metadata.name.clone().unwrap_or_default();
            self.config.write_gate.check()?;
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {
                    lock(&self.tracker).expect_deletion(slice);
                    self.metrics.change("delete");
                }
                Err(kube::Error::Api(s)) if s.code == 404 => {
                    lock(&self.tracker).expect_deletion(slice);
                }
                Err(source) => {
                    return Err(WriteError::Delete {
                        name,
                        service: key.clone(),
                        source,
                    });
                }
            }
        }
        Ok(())
    }

    fn record_topology_events(&self, key: &ObjectKey, service: &Service, plan: &EndpointSlicePlan) {
        let reference = || reference_to(service);
        let mut populated = lock(&self.hints_populated);
        if !topology_annotation_enabled(service.metadata.annotations.as_ref()) {
            if populated.remove(key) {
                for stats in &plan.stats {
                    self.events.record(
                        reference(),
                        true,
                        "TopologyAwareHintsDisabled",
                        format!(
                            "{TOPOLOGY_AWARE_HINTS_DISABLED}, addressType: {}",
                            stats.address_type
                        ),
                    );
                }
            }
            return;
        }
        for (_, outcome) in &plan.topology_hints {
            match outcome {
                TopologyHintsOutcome::Allocated(_) => {
                    if populated.insert(key.clone()) {
                        self.events.record(
                            reference(),
                            false,
                            "TopologyAwareHintsEnabled",
                            TOPOLOGY_AWARE_HINTS_ENABLED.to_owned(),
                        );
                    }
                }
                TopologyHintsOutcome::Disabled(message) => {
                    populated.remove(key);
                    self.events.record(
                        reference(),
                        true,
                        "TopologyAwareHintsDisabled",
                        message.clone(),
                    );
                }
            }
        }
    }
}

impl Reconciler for Inner {
    type Error = SyncError;
    const KEY_KIND: &'static str = "Service";

    fn sync(&self, key: &ObjectKey) -> impl Future<Output = Result<(), SyncError>> + Send {
        self.sync_service(key)
    }

    fn error_policy(&self, error: &SyncError) -> ErrorPolicy {
        match error {
            SyncError::Stale => ErrorPolicy::Stale(STALE_RETRY_DELAY),
            SyncError::Failed(_) => ErrorPolicy::Backoff,
        }
    }

    fn observe(&self, result: SyncResult) {
        self.metrics.sync(result);
    }
}
