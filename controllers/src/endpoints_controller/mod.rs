//! The legacy Endpoints controller shell (spec §2): the same reflector, queue and worker
//! pieces as the EndpointSlice controller, driving the pure `endpoints::plan`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use kube::api::{Api, DeleteParams};
use kube::runtime::watcher;

use crate::endpoints::{EndpointsOptions, EndpointsPlan, plan};
use crate::endpointslice::PodInfo;
use crate::endpointslice_controller::NOT_LEADER_ERROR;
use crate::endpointslice_controller::cache::{CachedPod, PodCache, ServiceCache, pod_selector};
use crate::endpointslice_controller::enqueue;
use crate::endpointslice_controller::is_namespace_terminating;
use crate::leader_election::WriteGate;
use crate::mirroring::LEADER_ANNOTATION;
use crate::runtime::events::reference_to;
use crate::runtime::reflector::spawn_reflector;
use crate::runtime::{
    CacheSyncSignal, Delta, EventRecorder, ObjectKey, QueueConfig, SyncedFlags, TriggerTimeTracker,
    WorkQueue, run_workers,
};
use gocompat::api_error_text;

/// Event source component.
pub const EVENT_COMPONENT: &str = "endpoint-controller";
/// Requeues after which a failing key is dropped.
pub const MAX_RETRIES: u32 = 15;

/// Settings, named after kube-controller-manager's flags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointsControllerConfig {
    /// `--concurrent-endpoint-syncs` (default 5).
    pub concurrent_endpoint_syncs: usize,
    /// `--endpoint-updates-batch-period` (default 0): delay of pod-triggered syncs.
    pub endpoint_updates_batch_period: Duration,
    /// Writes only while this replica holds the leader lease; workers start once it does.
    pub write_gate: WriteGate,
    /// Set when the caches have synced.
    pub caches_synced: CacheSyncSignal,
}

impl Default for EndpointsControllerConfig {
    fn default() -> Self {
        EndpointsControllerConfig {
            concurrent_endpoint_syncs: 5,
            endpoint_updates_batch_period: Duration::ZERO,
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

struct Inner {
    client: kube::Client,
    config: EndpointsControllerConfig,
    services: RwLock<ServiceCache>,
    pods: RwLock<PodCache>,
    endpoints: RwLock<HashMap<ObjectKey, Arc<Endpoints>>>,
    /// resourceVersions this controller replaced, per object (upstream's stale tracker).
    replaced: Mutex<HashMap<ObjectKey, String>>,
    triggers: Mutex<TriggerTimeTracker>,
    queue: WorkQueue<ObjectKey>,
    events: EventRecorder,
}

/// The Endpoints controller.
#[derive(Clone)]
pub struct EndpointsController {
    inner: Arc<Inner>,
}

/// Runs the Endpoints controller until `shutdown`.
pub async fn run(
    client: kube::Client,
    config: EndpointsControllerConfig,
    shutdown: impl Future<Output = ()> + Send,
) {
    EndpointsController::new(client, config).run(shutdown).await;
}

impl EndpointsController {
    /// A controller (not yet running).
    pub fn new(client: kube::Client, config: EndpointsControllerConfig) -> Self {
        let events = EventRecorder::new(client.clone(), EVENT_COMPONENT);
        EndpointsController {
            inner: Arc::new(Inner {
                client,
                config,
                services: RwLock::default(),
                pods: RwLock::default(),
                endpoints: RwLock::default(),
                replaced: Mutex::default(),
                triggers: Mutex::default(),
                queue: WorkQueue::new(QueueConfig::default_controller()),
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
                Inner::on_pod,
            ),
            spawn_reflector(
                &client,
                watcher::Config::default(),
                synced.flag(2),
                &inner,
                Inner::on_endpoints,
            ),
        ];
        let workers = {
            let inner = inner.clone();
            tokio::spawn(async move {
                synced.wait().await;
                inner.config.caches_synced.mark_synced();
                // Non-leaders keep warm caches but run no workers.
                inner.config.write_gate.clone().wait_for_leadership().await;
                for key in read(&inner.services).keys() {
                    inner.queue.add(key);
                }
                // Orphans whose Service vanished while we were down get deleted.
                let orphans: Vec<ObjectKey> = read(&inner.endpoints)
                    .iter()
                    .filter(|(_, e)| {
                        !e.metadata
                            .annotations
                            .as_ref()
                            .is_some_and(|a| a.contains_key(LEADER_ANNOTATION))
                    })
                    .map(|(k, _)| k.clone())
                    .collect();
                for key in orphans {
                    inner.queue.add(key);
                }
                let count = inner.config.concurrent_endpoint_syncs;
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
    fn on_service(&self, delta: Delta<Service>) {
        let changed = write(&self.services).apply(delta);
        for key in changed {
            self.queue.add(key);
        }
    }

    fn enqueue_for_pod(&self, pod: &PodInfo) {
        let keys = read(&self.services).selecting(&pod.namespace, &pod.labels);
        for key in keys {
            self.queue
                .add_after(key, self.config.endpoint_updates_batch_period);
        }
    }

    fn on_pod(&self, delta: Delta<Pod>) {
        match delta {
            Delta::Upsert(pod) => {
                let (new, old) = write(&self.pods).insert(
                    PodInfo::from_pod(&pod),
                    pod.metadata.resource_version.clone().unwrap_or_default(),
                );
                match old {
                    None => self.enqueue_for_pod(&new.info),
                    Some(old) if old.resource_version == new.resource_version => {}
                    Some(old) => {
                        let change = enqueue::pod_change(&old.info, &new.info);
                        let services = read(&self.services);
                        let selecting_old =
                            services.selecting(&old.info.namespace, &old.info.labels);
                        let selecting_new =
                            services.selecting(&new.info.namespace, &new.info.labels);
                        drop(services);
                        for key in
                            enqueue::services_for_pod_update(change, &selecting_old, &selecting_new)
                        {
                            self.queue
                                .add_after(key, self.config.endpoint_updates_batch_period);
                        }
                    }
                }
            }
            Delta::Delete(pod) => {
                let removed = write(&self.pods).remove(&ObjectKey::of(&pod));
                let info =
                    removed.map_or_else(|| PodInfo::from_pod(&pod), |p| p.info.info().clone());
                self.enqueue_for_pod(&info);
            }
            Delta::Relisted(seen) => {
                let removed: Vec<Arc<CachedPod>> = {
                    let mut pods = write(&self.pods);
                    pods.keys()
                        .into_iter()
                        .filter(|k| !seen.contains(k))
                        .filter_map(|k| pods.remove(&k))
                        .collect()
                };
                for pod in removed {
                    self.enqueue_for_pod(&pod.info);
                }
            }
        }
    }

    fn on_endpoints(&self, delta: Delta<Endpoints>) {
        match delta {
            Delta::Upsert(endpoints) => {
                write(&self.endpoints).insert(ObjectKey::of(&endpoints), Arc::new(endpoints));
            }
            Delta::Delete(endpoints) => {
                let key = ObjectKey::of(&endpoints);
                write(&self.endpoints).remove(&key);
                // A deleted Endpoints of an existing Service is recreated.
                self.queue.add(key);
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

    async fn process(&self, key: ObjectKey) {
        match self.sync(&key).await {
            Ok(()) => self.queue.forget(&key),
            Err(error) if self.queue.num_requeues(&key) < MAX_RETRIES => {
                tracing::info!(service = %key, %error, "Endpoints sync failed; retrying");
                self.queue.add_rate_limited(key);
            }
            Err(error) => {
                tracing::warn!(service = %key, %error, "dropping Service out of the queue");
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
        let service = read(&self.services).get(key);
        let existing = read(&self.endpoints).get(key).cloned();
        let api: Api<Endpoints> = Api::namespaced(self.client.clone(), &key.namespace);
        let Some(service) = service else {
            lock(&self.triggers).forget(key);
            lock(&self.replaced).remove(key);
            if existing.is_some() {
                self.may_write()?;
                match api.delete(&key.name, &DeleteParams::default()).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    Err(e) => return Err(api_error_text(&e)),
                }
            }
            return Ok(());
        };
        let Some(selector) = pod_selector(&service) else {
            return Ok(());
        };
        if service.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("ExternalName") {
            return Ok(());
        }
        let selected: Vec<Arc<CachedPod>> = read(&self.pods).select(&key.namespace, selector);
        if let Some(current) = &existing {
            let rv = current
                .metadata
                .resource_version
                .clone()
                .unwrap_or_default();
            if lock(&self.replaced).get(key) == Some(&rv) {
                return Err(format!(
                    "endpoints informer cache is out of date, resource version {rv} already processed for endpoints {key}"
                ));
            }
        }
        let trigger_time = lock(&self.triggers)
            .compute(
                key,
                service.metadata.creation_timestamp.as_ref().map(|t| t.0),
                selected.iter().map(|p| p.info.info()),
            )
            .trigger_time;
        let pods: Vec<&PodInfo> = selected.iter().map(|p| p.info.info()).collect();
        let planned = plan(
            Some(&service),
            &pods,
            &[],
            existing.as_deref(),
            &EndpointsOptions { trigger_time },
        );
        let reference = || reference_to(service.as_ref());
        if !matches!(planned, EndpointsPlan::NoOp) {
            self.may_write()?;
        }
        match planned {
            EndpointsPlan::NoOp => Ok(()),
            EndpointsPlan::Create(object) => {
                match api.create(&crate::runtime::write_params(), &object).await {
                    Ok(_) => Ok(()),
                    Err(e) if is_namespace_terminating(&e) => Ok(()),
                    Err(e) => {
                        let text = api_error_text(&e);
                        self.events.record(
                            reference(),
                            true,
                            "FailedToCreateEndpoint",
                            format!("Failed to create endpoint for service {key}: {text}"),
                        );
                        Err(text)
                    }
                }
            }
            EndpointsPlan::Update(object) => {
                let old_rv = object.metadata.resource_version.clone().unwrap_or_default();
                match api
                    .replace(&key.name, &crate::runtime::write_params(), &object)
                    .await
                {
                    Ok(updated) => {
                        if updated.metadata.resource_version.as_deref() != Some(old_rv.as_str()) {
                            lock(&self.replaced).insert(key.clone(), old_rv);
                        }
                        Ok(())
                    }
                    Err(e) => {
                        let text = api_error_text(&e);
                        self.events.record(
                            reference(),
                            true,
                            "FailedToUpdateEndpoint",
                            format!("Failed to update endpoint {key}: {text}"),
                        );
                        Err(text)
                    }
                }
            }
            EndpointsPlan::Delete { name, .. } => {
                match api.delete(&name, &DeleteParams::default()).await {
                    Ok(_) => Ok(()),
                    Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                    Err(e) => Err(api_error_text(&e)),
                }
            }
        }
    }
}
