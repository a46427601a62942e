//! The EndpointSlice-mirroring controller shell (spec §1.14): mirrors the custom Endpoints of
//! selector-less Services into EndpointSlices with the pure `mirroring::plan`, on the same
//! reflector, queue and tracker pieces as the EndpointSlice controller.

use std::future::Future;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams};
use kube::runtime::watcher;

use crate::endpointslice::IndexedSlice;
use crate::leader_election::{NotLeader, WriteGate};
use crate::mirroring::{CONTROLLER_NAME, MANAGED_BY_LABEL, MirroringOptions, plan};
use crate::runtime::cache::{Applied, ObjectCache, SliceCache, SliceChange, slice_service};
use crate::runtime::events::reference_to;
use crate::runtime::locks::{lock, read, write};
use crate::runtime::slice_tracker::SliceTracker;
use crate::runtime::{
    CacheSyncSignal, ControllerParts, Delta, ErrorPolicy, EventRecorder, ObjectKey, QueueConfig,
    Reconciler, Reflectors, Shutdown, WorkQueue, is_namespace_terminating, run_controller,
};
use gocompat::api_error_text;

/// Event source component.
pub const EVENT_COMPONENT: &str = "endpoint-slice-mirroring-controller";
/// Minimum delay of slice-triggered syncs.
const SLICE_CHANGE_MIN_SYNC_DELAY: Duration = Duration::from_secs(1);

/// Settings, named after kube-controller-manager's flags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MirroringControllerConfig {
    /// `--mirroring-concurrent-service-endpoint-syncs` (default 5).
    pub mirroring_concurrent_service_endpoint_syncs: usize,
    /// `--mirroring-max-endpoints-per-subset` (default 1000).
    pub mirroring_max_endpoints_per_subset: usize,
    /// `--mirroring-endpointslice-updates-batch-period` (default 0).
    pub mirroring_endpointslice_updates_batch_period: Duration,
    /// Writes only while this replica holds the leader lease; workers start once it does.
    pub write_gate: WriteGate,
    /// Set when the caches have synced.
    pub caches_synced: CacheSyncSignal,
}

impl Default for MirroringControllerConfig {
    fn default() -> Self {
        MirroringControllerConfig {
            mirroring_concurrent_service_endpoint_syncs: 5,
            mirroring_max_endpoints_per_subset: crate::mirroring::DEFAULT_MAX_ENDPOINTS_PER_SUBSET,
            mirroring_endpointslice_updates_batch_period: Duration::ZERO,
            write_gate: WriteGate::always(),
            caches_synced: CacheSyncSignal::default(),
        }
    }
}

/// Why one mirroring sync failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Another replica may hold the leader lease.
    #[error(transparent)]
    NotLeader(#[from] NotLeader),
    /// The slice cache is older than our own writes (upstream's text).
    #[error("EndpointSlice informer cache is out of date")]
    Stale,
    /// The API refused a write.
    #[error("{}", api_error_text(.0))]
    Api(#[from] kube::Error),
}

fn mirrored(slice: &EndpointSlice) -> bool {
    slice
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(MANAGED_BY_LABEL))
        .is_some_and(|v| v == CONTROLLER_NAME)
}

struct Inner {
    client: kube::Client,
    config: MirroringControllerConfig,
    services: RwLock<ObjectCache<Service>>,
    endpoints: RwLock<ObjectCache<Endpoints>>,
    slices: RwLock<SliceCache>,
    tracker: Mutex<SliceTracker>,
    queue: WorkQueue<ObjectKey>,
    events: EventRecorder,
}

/// The mirroring controller.
#[derive(Clone)]
pub struct MirroringController {
    inner: Arc<Inner>,
}

/// Runs the mirroring controller until `shutdown`.
pub async fn run(client: kube::Client, config: MirroringControllerConfig, shutdown: Shutdown) {
    MirroringController::new(client, config).run(shutdown).await;
}

impl MirroringController {
    /// A controller (not yet running).
    pub fn new(client: kube::Client, config: MirroringControllerConfig) -> Self {
        let events = EventRecorder::new(client.clone(), EVENT_COMPONENT);
        MirroringController {
            inner: Arc::new(Inner {
                client,
                config,
                services: RwLock::default(),
                endpoints: RwLock::default(),
                slices: RwLock::default(),
                tracker: Mutex::default(),
                queue: WorkQueue::new(QueueConfig::mirroring()),
                events,
            }),
        }
    }

    /// Events recorded so far.
    pub fn events(&self) -> EventRecorder {
        self.inner.events.clone()
    }

    /// Runs reflectors and workers until `shutdown` completes.
    pub async fn run(self, shutdown: Shutdown) {
        let inner = self.inner;
        let client = inner.client.clone();
        let every = watcher::Config::default;
        let mirrored = every().labels(&format!("{MANAGED_BY_LABEL}={CONTROLLER_NAME}"));
        let reflectors = Reflectors::new(&client, &inner, &inner.queue, &shutdown)
            .watch(every(), Inner::on_service)
            .watch(every(), Inner::on_endpoints)
            .watch(mirrored, Inner::on_slice)
            .started();
        let parts = ControllerParts {
            name: "EndpointSliceMirroring",
            reflectors,
            caches_synced: inner.config.caches_synced.clone(),
            write_gate: inner.config.write_gate.clone(),
            queue: inner.queue.clone(),
            workers: inner.config.mirroring_concurrent_service_endpoint_syncs,
        };
        let every_endpoints = |inner: &Inner| read(&inner.endpoints).keys();
        run_controller(inner, parts, every_endpoints, shutdown).await;
    }
}

impl Inner {
    fn batch(&self) -> Duration {
        self.config.mirroring_endpointslice_updates_batch_period
    }

    /// Queues what a Service or Endpoints change concerns: the object's own key, after the
    /// batch period; keys a relist found gone at once.
    fn enqueue(&self, applied: Applied) {
        match applied {
            Applied::Upserted(key) | Applied::Deleted(key) => {
                self.queue.add_after(key, self.batch())
            }
            Applied::Gone(keys) => keys.into_iter().for_each(|key| self.queue.add(key)),
        }
    }

    fn on_service(&self, delta: Delta<Service>) {
        let applied = write(&self.services).apply(delta);
        self.enqueue(applied);
    }

    fn on_endpoints(&self, delta: Delta<Endpoints>) {
        let applied = write(&self.endpoints).apply(delta);
        self.enqueue(applied);
    }

    fn on_slice(&self, delta: Delta<EndpointSlice>) {
        let delay = self.batch().max(SLICE_CHANGE_MIN_SYNC_DELAY);
        let change = write(&self.slices).apply(delta);
        match change {
            SliceChange::Upserted { new: slice, old } => {
                let sync = lock(&self.tracker).should_sync(&slice)
                    || old.is_some_and(|o| slice_service(&o) != slice_service(&slice));
                if sync && let Some(key) = slice_service(&slice) {
                    self.queue.add_after(key, delay);
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
        let unexpected = {
            let mut tracker = lock(&self.tracker);
            tracker.has(slice) && tracker.handle_deletion(slice)
        };
        if unexpected && let Some(key) = slice_service(slice) {
            self.queue.add_after(key, delay);
        }
    }

    async fn sync_mirror(&self, key: &ObjectKey) -> Result<(), SyncError> {
        let endpoints = read(&self.endpoints).get(key);
        let service = read(&self.services).get(key);
        let cached: Vec<Arc<IndexedSlice>> = read(&self.slices)
            .for_service(key)
            .into_iter()
            .filter(|s| mirrored(s) && s.metadata.deletion_timestamp.is_none())
            .collect();
        if service.is_none() && endpoints.is_none() {
            lock(&self.tracker).delete_service(key);
        }
        if lock(&self.tracker).stale(key, cached.iter().map(|s| s.slice())) {
            return Err(SyncError::Stale);
        }
        let existing: Vec<EndpointSlice> = cached.iter().map(|s| s.slice().clone()).collect();
        let planned = plan(
            &key.name,
            endpoints.as_deref(),
            service.as_deref(),
            &existing,
            &MirroringOptions {
                max_endpoints_per_subset: self.config.mirroring_max_endpoints_per_subset,
            },
        );
        if let Some(endpoints) = &endpoints {
            for event in &planned.events {
                self.events.record(
                    reference_to(endpoints.as_ref()),
                    true,
                    event.reason,
                    event.message.clone(),
                );
            }
        }
        let api: Api<EndpointSlice> = Api::namespaced(self.client.clone(), &key.namespace);
        for slice in &planned.create {
            self.config.write_gate.check()?;
            match api.create(&crate::runtime::write_params(), slice).await {
                Ok(created) => lock(&self.tracker).update(&created),
                Err(e) if is_namespace_terminating(&e) => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
        for slice in &planned.update {
            let name = slice.metadata.name.clone().unwrap_or_default();
            self.config.write_gate.check()?;
            match api
                .replace(&name, &crate::runtime::write_params(), slice)
                .await
            {
                Ok(updated) => lock(&self.tracker).update(&updated),
                Err(e) => return Err(e.into()),
            }
        }
        for name in &planned.delete {
            self.config.write_gate.check()?;
            match api.delete(name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
            if let Some(slice) = existing
                .iter()
                .find(|s| s.metadata.name.as_deref() == Some(name))
            {
                lock(&self.tracker).expect_deletion(slice);
            }
        }
        Ok(())
    }
}

impl Reconciler for Inner {
    type Error = SyncError;
    const KEY_KIND: &'static str = "Endpoints";

    fn sync(&self, key: &ObjectKey) -> impl Future<Output = Result<(), SyncError>> + Send {
        self.sync_mirror(key)
    }

    /// Upstream retries every error with backoff, its stale-cache error too.
    fn error_policy(&self, _error: &SyncError) -> ErrorPolicy {
        ErrorPolicy::Backoff
    }
}
