//! The LoadBalancer IP controller shell: a reflector over Services, the shared queue and
//! worker, and the pure `loadbalancer` pool. At start (once the Service cache has listed) the
//! pool is restored from the Services' status; each sync writes the Service's
//! `status.loadBalancer.ingress` and records the pool's events on the Service.

use std::future::Future;
use std::sync::{Arc, Mutex, RwLock};

use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::watcher;
use serde_json::json;

use crate::leader_election::{NotLeader, WriteGate};
use crate::loadbalancer::{
    DEFAULT_POOL, LoadBalancerPool, PoolError, plan_service, wants_load_balancer,
};
use crate::runtime::cache::{Applied, ObjectCache};
use crate::runtime::events::reference_to;
use crate::runtime::locks::{lock, read, write};
use crate::runtime::{
    CacheSyncSignal, ControllerParts, Delta, ErrorPolicy, EventRecorder, FIELD_MANAGER, ObjectKey,
    QueueConfig, Reconciler, Reflectors, Shutdown, WorkQueue, run_controller,
};
use gocompat::api_error_text;

/// Event source component (MetalLB's controller reports as `metallb-controller`).
pub const EVENT_COMPONENT: &str = "loadbalancer-ip-controller";

/// Settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadBalancerControllerConfig {
    /// The pool: CIDRs (`198.18.100.0/24`) and ranges (`198.18.100.10-198.18.100.20`), IPv4
    /// and IPv6, handed out in this order. Default [`DEFAULT_POOL`].
    pub pool: Vec<String>,
    /// `--concurrent-service-syncs` of the cloud service controller (default 1).
    pub concurrent_service_syncs: usize,
    /// Writes only while this replica holds the leader lease; workers start once it does.
    pub write_gate: WriteGate,
    /// Set when the caches have synced.
    pub caches_synced: CacheSyncSignal,
}

impl Default for LoadBalancerControllerConfig {
    fn default() -> Self {
        LoadBalancerControllerConfig {
            pool: DEFAULT_POOL.iter().map(|s| s.to_string()).collect(),
            concurrent_service_syncs: 1,
            write_gate: WriteGate::always(),
            caches_synced: CacheSyncSignal::default(),
        }
    }
}

/// Why one Service sync failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Another replica may hold the leader lease.
    #[error(transparent)]
    NotLeader(#[from] NotLeader),
    /// The API refused a write.
    #[error("{}", api_error_text(.0))]
    Api(#[from] kube::Error),
}

struct Inner {
    client: kube::Client,
    config: LoadBalancerControllerConfig,
    services: RwLock<ObjectCache<Service>>,
    pool: Mutex<LoadBalancerPool>,
    queue: WorkQueue<ObjectKey>,
    events: EventRecorder,
}

/// The LoadBalancer IP controller.
#[derive(Clone)]
pub struct LoadBalancerController {
    inner: Arc<Inner>,
}

/// Runs the LoadBalancer IP controller until `shutdown`; fails at once on a malformed pool.
pub async fn run(
    client: kube::Client,
    config: LoadBalancerControllerConfig,
    shutdown: Shutdown,
) -> Result<(), PoolError> {
    LoadBalancerController::new(client, config)?
        .run(shutdown)
        .await;
    Ok(())
}

impl LoadBalancerController {
    /// A controller (not yet running), or why its pool cannot be read.
    pub fn new(
        client: kube::Client,
        config: LoadBalancerControllerConfig,
    ) -> Result<Self, PoolError> {
        let pool = LoadBalancerPool::new(&config.pool)?;
        let events = EventRecorder::new(client.clone(), EVENT_COMPONENT);
        Ok(LoadBalancerController {
            inner: Arc::new(Inner {
                client,
                config,
                services: RwLock::default(),
                pool: Mutex::new(pool),
                queue: WorkQueue::new(QueueConfig::default_controller()),
                events,
            }),
        })
    }

    /// Events recorded so far.
    pub fn events(&self) -> EventRecorder {
        self.inner.events.clone()
    }

    /// Runs the reflector and workers until `shutdown` completes.
    pub async fn run(self, shutdown: Shutdown) {
        let inner = self.inner;
        let client = inner.client.clone();
        let reflectors = Reflectors::new(&client, &inner, &inner.queue, &shutdown)
            .watch(watcher::Config::default(), Inner::on_service)
            .started();
        let parts = ControllerParts {
            name: "LoadBalancerIP",
            reflectors,
            caches_synced: inner.config.caches_synced.clone(),
            write_gate: inner.config.write_gate.clone(),
            queue: inner.queue.clone(),
            workers: inner.config.concurrent_service_syncs,
        };
        run_controller(inner, parts, Inner::restore, shutdown).await;
    }
}

impl Inner {
    /// Rebuilds the pool from the listed Services' status; every Service is then synced.
    fn restore(&self) -> Vec<ObjectKey> {
        let services = read(&self.services);
        let all: Vec<&Service> = services.iter().map(|(_, s)| s.as_ref()).collect();
        lock(&self.pool).restore(&all);
        services.keys()
    }

    fn on_service(&self, delta: Delta<Service>) {
        match write(&self.services).apply(delta) {
            Applied::Upserted(key) | Applied::Deleted(key) => self.queue.add(key),
            Applied::Gone(keys) => keys.into_iter().for_each(|key| self.queue.add(key)),
        }
    }

    /// After IPs went back to the pool: the LoadBalancers still without one try again.
    fn retry_waiting(&self) {
        let services = read(&self.services);
        let pool = lock(&self.pool);
        for (key, service) in services.iter() {
            if wants_load_balancer(service) && pool.assigned_to(key).is_empty() {
                self.queue.add(key.clone());
            }
        }
    }

    async fn sync_service(&self, key: &ObjectKey) -> Result<(), SyncError> {
        let service = read(&self.services).get(key);
        let decision = plan_service(key, service.as_deref(), &mut lock(&self.pool));
        if let Some(service) = &service {
            if let Some(ingress) = decision.ingress {
                self.config.write_gate.check()?;
                let patch = if ingress.is_empty() {
                    json!({"status": {"loadBalancer": {"ingress": null}}})
                } else {
                    json!({"status": {"loadBalancer": {"ingress": ingress}}})
                };
                let api: Api<Service> = Api::namespaced(self.client.clone(), &key.namespace);
                let params = PatchParams {
                    field_manager: Some(FIELD_MANAGER.into()),
                    ..PatchParams::default()
                };
                match api
                    .patch_status(&key.name, &params, &Patch::Merge(&patch))
                    .await
                {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    Err(e) => return Err(e.into()),
                }
            }
            if let Some(event) = decision.event {
                self.events.record(
                    reference_to(service.as_ref()),
                    event.warning,
                    event.reason,
                    event.message,
                );
            }
        }
        if !decision.released.is_empty() {
            self.retry_waiting();
        }
        Ok(())
    }
}

impl Reconciler for Inner {
    type Error = SyncError;
    const KEY_KIND: &'static str = "Service";

    fn sync(&self, key: &ObjectKey) -> impl Future<Output = Result<(), SyncError>> + Send {
        self.sync_service(key)
    }

    fn error_policy(&self, _error: &SyncError) -> ErrorPolicy {
        ErrorPolicy::Backoff
    }
}
