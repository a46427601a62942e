//! The EndpointSlice-mirroring controller shell (spec §1.14): mirrors the custom Endpoints of
//! selector-less Services into EndpointSlices with the pure `mirroring::plan`, on the same
//! reflector, queue and tracker pieces as the EndpointSlice controller.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams};
use kube::runtime::watcher;

use crate::endpointslice::IndexedSlice;
use crate::endpointslice_controller::NOT_LEADER_ERROR;
use crate::endpointslice_controller::cache::{SliceCache, slice_service};
use crate::endpointslice_controller::is_namespace_terminating;
use crate::endpointslice_controller::tracker::SliceTracker;
use crate::leader_election::WriteGate;
use crate::mirroring::{CONTROLLER_NAME, MANAGED_BY_LABEL, MirroringOptions, plan};
use crate::runtime::events::reference_to;
use crate::runtime::reflector::spawn_reflector;
use crate::runtime::{
    CacheSyncSignal, Delta, EventRecorder, ObjectKey, QueueConfig, SyncedFlags, WorkQueue,
    run_workers,
};
use gocompat::api_error_text;

/// Event source component.
pub const EVENT_COMPONENT: &str = "endpoint-slice-mirroring-controller";
/// Requeues after which a failing key is dropped.
pub const MAX_RETRIES: u32 = 15;
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

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
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
    services: RwLock<HashMap<ObjectKey, Arc<Service>>>,
    endpoints: RwLock<HashMap<ObjectKey, Arc<Endpoints>>>,
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
pub async fn run(
    client: kube::Client,
    config: MirroringControllerConfig,
    shutdown: impl Future<Output = ()> + Send,
) {
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
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        let inner = self.inner.clone();
        let client = inner.client.clone();
        let synced = SyncedFlags::new(3);
        let mirrored =
            watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={CONTROLLER_NAME}"));
        let reflectors = vec![
            spawn_reflector(
                &client,
                watcher::Config::default(),
                synced.flag(0),
                &inner,
                Inner::on_service,
            ),
            spawn_reflector(
                &client,
                watcher::Config::default(),
                synced.flag(1),
                &inner,
                Inner::on_endpoints,
            ),
            spawn_reflector(&client, mirrored, synced.flag(2), &inner, Inner::on_slice),
        ];
        let workers = {
            let inner = inner.clone();
            tokio::spawn(async move {
                synced.wait().await;
                inner.config.caches_synced.mark_synced();
                // Non-leaders keep warm caches but run no workers.
                inner.config.write_gate.clone().wait_for_leadership().await;
                let keys: Vec<ObjectKey> = read(&inner.endpoints).keys().cloned().collect();
                for key in keys {
                    inner.queue.add(key);
                }
                let count = inner.config.mirroring_concurrent_service_endpoint_syncs;
                let queue = inner.queue.clone();
                run_workers(queue, count, move |key| {
                    let inner = inner.clone();
                    async move { inner.process(key).await }
                })
                .await;
            })
        };
        shutdown.await;
        inner.queue.shut_down();
        for r in &reflectors {
            r.abort();
        }
        let _ = workers.await;
    }
}

impl Inner {
    fn batch(&self) -> Duration {
        self.config.mirroring_endpointslice_updates_batch_period
    }

    fn on_service(&self, delta: Delta<Service>) {
        match delta {
            Delta::Upsert(service) => {
                let key = ObjectKey::of(&service);
                write(&self.services).insert(key.clone(), Arc::new(service));
                self.queue.add_after(key, self.batch());
            }
            Delta::Delete(service) => {
                let key = ObjectKey::of(&service);
                write(&self.services).remove(&key);
                self.queue.add_after(key, self.batch());
            }
            Delta::Relisted(seen) => {
                let mut services = write(&self.services);
                let gone: Vec<ObjectKey> = services
                    .keys()
                    .filter(|k| !seen.contains(k))
                    .cloned()
                    .collect();
                for key in gone {
                    services.remove(&key);
                    self.queue.add(key);
                }
            }
        }
    }

    fn on_endpoints(&self, delta: Delta<Endpoints>) {
        match delta {
            Delta::Upsert(endpoints) => {
                let key = ObjectKey::of(&endpoints);
                write(&self.endpoints).insert(key.clone(), Arc::new(endpoints));
                self.queue.add_after(key, self.batch());
            }
            Delta::Delete(endpoints) => {
                let key = ObjectKey::of(&endpoints);
                write(&self.endpoints).remove(&key);
                self.queue.add_after(key, self.batch());
            }
            Delta::Relisted(seen) => {
                let mut cache = write(&self.endpoints);
                let gone: Vec<ObjectKey> = cache
                    .keys()
                    .filter(|k| !seen.contains(k))
                    .cloned()
                    .collect();
                for key in gone {
                    cache.remove(&key);
                    self.queue.add(key);
                }
            }
        }
    }

    fn on_slice(&self, delta: Delta<EndpointSlice>) {
        let delay = self.batch().max(SLICE_CHANGE_MIN_SYNC_DELAY);
        match delta {
            Delta::Upsert(slice) => {
                let slice = Arc::new(IndexedSlice::new(slice));
                let old = write(&self.slices).insert(slice.clone());
                let sync = lock(&self.tracker).should_sync(&slice)
                    || old.is_some_and(|o| slice_service(&o) != slice_service(&slice));
                if sync && let Some(key) = slice_service(&slice) {
                    self.queue.add_after(key, delay);
                }
            }
            Delta::Delete(slice) => {
                write(&self.slices).remove(&ObjectKey::of(&slice));
                self.on_slice_deleted(&slice, delay);
            }
            Delta::Relisted(seen) => {
                let removed: Vec<Arc<IndexedSlice>> = {
                    let mut slices = write(&self.slices);
                    slices
                        .keys()
                        .into_iter()
                        .filter(|k| !seen.contains(k))
                        .filter_map(|k| slices.remove(&k))
                        .collect()
                };
                for slice in removed {
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

    async fn process(&self, key: ObjectKey) {
        match self.sync(&key).await {
            Ok(()) => self.queue.forget(&key),
            Err(error) if self.queue.num_requeues(&key) < MAX_RETRIES => {
                tracing::info!(endpoints = %key, %error, "mirroring sync failed; retrying");
                self.queue.add_rate_limited(key);
            }
            Err(error) => {
                tracing::warn!(endpoints = %key, %error, "dropping Endpoints out of the queue");
                self.queue.forget(&key);
            }
        }
    }

    fn may_write(&self) -> Result<(), String> {
        if self.config.write_gate.allows_writes() {
            Ok(())
        } else {
            Err(NOT_LEADER_ERROR.to_string())
        }
    }

    async fn sync(&self, key: &ObjectKey) -> Result<(), String> {
        let endpoints = read(&self.endpoints).get(key).cloned();
        let service = read(&self.services).get(key).cloned();
        let cached: Vec<Arc<IndexedSlice>> = read(&self.slices)
            .for_service(key)
            .into_iter()
            .filter(|s| mirrored(s) && s.metadata.deletion_timestamp.is_none())
            .collect();
        if service.is_none() && endpoints.is_none() {
            lock(&self.tracker).delete_service(key);
        }
        if lock(&self.tracker).stale(key, cached.iter().map(|s| s.slice())) {
            return Err("EndpointSlice informer cache is out of date".to_owned());
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
            self.may_write()?;
            match api.create(&crate::runtime::write_params(), slice).await {
                Ok(created) => lock(&self.tracker).update(&created),
                Err(e) if is_namespace_terminating(&e) => return Ok(()),
                Err(e) => return Err(api_error_text(&e)),
            }
        }
        for slice in &planned.update {
            let name = slice.metadata.name.clone().unwrap_or_default();
            self.may_write()?;
            match api
                .replace(&name, &crate::runtime::write_params(), slice)
                .await
            {
                Ok(updated) => lock(&self.tracker).update(&updated),
                Err(e) => return Err(api_error_text(&e)),
            }
        }
        for name in &planned.delete {
            self.may_write()?;
            match api.delete(name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(api_error_text(&e)),
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
