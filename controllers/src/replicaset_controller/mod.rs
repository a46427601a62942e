//! The ReplicaSet controller shell: reflectors over ReplicaSets and pods, the shared queue and
//! worker, the pure `replicaset` planner, and the writes it asks for: pods created in
//! slow-start batches, pods deleted, the status. Pod expectations keep a stale cache from
//! making it create or delete twice.
//!
//! Orphan pods that match the selector are adopted, and pods that stop matching are released,
//! before each sync counts the pods (upstream's `claimPods`).

use std::future::Future;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use futures::future::join_all;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::watcher;

use crate::leader_election::{NotLeader, WriteGate};
use crate::replicaset::{
    ManageFailure, PodExpectations, availability_recheck, calculate_status, manage_replicas,
    slow_start_batches, status_changed,
};
use crate::runtime::cache::{Applied, ObjectCache};
use crate::runtime::events::reference_to;
use crate::runtime::locks::{lock, read, write};
use crate::runtime::owned::{OwnedCache, patch_owner_references};
use crate::runtime::{
    CacheSyncSignal, ControllerParts, Delta, ErrorPolicy, EventRecorder, ObjectKey, QueueConfig,
    Reconciler, Reflectors, Shutdown, WorkQueue, is_namespace_terminating, run_controller,
};
use crate::workload::{
    claim, controller_of, controller_ref, is_pod_active, owner_references_after, selector_matches,
};
use gocompat::api_error_text;

/// Event source component.
pub const EVENT_COMPONENT: &str = "replicaset-controller";

/// Settings, named after kube-controller-manager's flags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaSetControllerConfig {
    /// `--concurrent-replicaset-syncs` (default 5).
    pub concurrent_replicaset_syncs: usize,
    /// Writes only while this replica holds the leader lease; workers start once it does.
    pub write_gate: WriteGate,
    /// Set when the caches have synced.
    pub caches_synced: CacheSyncSignal,
}

impl Default for ReplicaSetControllerConfig {
    fn default() -> Self {
        ReplicaSetControllerConfig {
            concurrent_replicaset_syncs: 5,
            write_gate: WriteGate::always(),
            caches_synced: CacheSyncSignal::default(),
        }
    }
}

/// Why one ReplicaSet sync failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Another replica may hold the leader lease.
    #[error(transparent)]
    NotLeader(#[from] NotLeader),
    /// Creating or deleting pods failed (recorded in the ReplicaFailure condition).
    #[error("{0}")]
    Manage(String),
    /// The API refused a write.
    #[error("{}", api_error_text(.0))]
    Api(#[from] kube::Error),
}

struct Inner {
    client: kube::Client,
    config: ReplicaSetControllerConfig,
    replica_sets: RwLock<ObjectCache<ReplicaSet>>,
    pods: RwLock<OwnedCache<Pod>>,
    expectations: Mutex<PodExpectations>,
    queue: WorkQueue<ObjectKey>,
    events: EventRecorder,
}

/// The ReplicaSet controller.
#[derive(Clone)]
pub struct ReplicaSetController {
    inner: Arc<Inner>,
}

/// Runs the ReplicaSet controller until `shutdown`.
pub async fn run(client: kube::Client, config: ReplicaSetControllerConfig, shutdown: Shutdown) {
    ReplicaSetController::new(client, config)
        .run(shutdown)
        .await;
}

impl ReplicaSetController {
    /// A controller (not yet running).
    pub fn new(client: kube::Client, config: ReplicaSetControllerConfig) -> Self {
        let events = EventRecorder::new(client.clone(), EVENT_COMPONENT);
        ReplicaSetController {
            inner: Arc::new(Inner {
                client,
                config,
                replica_sets: RwLock::default(),
                pods: RwLock::default(),
                expectations: Mutex::default(),
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
    pub async fn run(self, shutdown: Shutdown) {
        let inner = self.inner;
        let client = inner.client.clone();
        let every = watcher::Config::default;
        let reflectors = Reflectors::new(&client, &inner, &inner.queue, &shutdown)
            .watch(every(), Inner::on_replica_set)
            .watch(every(), Inner::on_pod)
            .started();
        let parts = ControllerParts {
            name: "ReplicaSet",
            reflectors,
            caches_synced: inner.config.caches_synced.clone(),
            write_gate: inner.config.write_gate.clone(),
            queue: inner.queue.clone(),
            workers: inner.config.concurrent_replicaset_syncs,
        };
        let every_replica_set = |inner: &Inner| read(&inner.replica_sets).keys();
        run_controller(inner, parts, every_replica_set, shutdown).await;
    }
}

impl Inner {
    fn on_replica_set(&self, delta: Delta<ReplicaSet>) {
        match write(&self.replica_sets).apply(delta) {
            Applied::Upserted(key) | Applied::Deleted(key) => self.queue.add(key),
            Applied::Gone(keys) => keys.into_iter().for_each(|key| self.queue.add(key)),
        }
    }

    /// Queues the ReplicaSets a pod change concerns and settles their expectations.
    fn on_pod(&self, delta: Delta<Pod>) {
        let changes = write(&self.pods).apply(delta);
        for change in changes {
            let name = change.key.name.clone();
            let terminating = change
                .new
                .as_ref()
                .is_none_or(|p| p.metadata.deletion_timestamp.is_some());
            for (namespace, owner) in change.controllers() {
                if owner.kind != "ReplicaSet" {
                    continue;
                }
                let key = ObjectKey::new(namespace, owner.name);
                {
                    let mut expectations = lock(&self.expectations);
                    if change.old.is_none() && change.new.is_some() {
                        expectations.creation_observed(&key);
                    }
                    if terminating {
                        expectations.deletion_observed(&key, &name);
                    }
                }
                self.queue.add(key);
            }
            // An orphan may be adopted by any ReplicaSet whose selector matches it.
            for pod in [&change.old, &change.new].into_iter().flatten() {
                if controller_of(&pod.metadata).is_none() {
                    self.enqueue_selecting(&change.key.namespace, pod);
                }
            }
        }
    }

    fn enqueue_selecting(&self, namespace: &str, pod: &Pod) {
        let keys: Vec<ObjectKey> = read(&self.replica_sets)
            .iter()
            .filter(|(k, rs)| {
                k.namespace == namespace
                    && selector_matches(
                        rs.spec.as_ref().map(|s| &s.selector),
                        pod.metadata.labels.as_ref(),
                    )
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            self.queue.add(key);
        }
    }

    /// `claimPods`: the active pods the ReplicaSet controls once orphans that match are adopted
    /// and pods that stopped matching are released.
    async fn claim_pods(&self, key: &ObjectKey, rs: &ReplicaSet) -> Result<Vec<Pod>, SyncError> {
        let uid = rs.metadata.uid.clone().unwrap_or_default();
        let candidates: Vec<Arc<Pod>> = read(&self.pods)
            .in_namespace(&key.namespace)
            .into_iter()
            .filter(|p| is_pod_active(p))
            .collect();
        let selector = rs.spec.as_ref().map(|s| &s.selector);
        let claims = claim(
            &rs.metadata,
            selector,
            candidates.iter().map(|p| &p.metadata),
        );
        let mut pods: Vec<Pod> = read(&self.pods)
            .controlled_by(&uid)
            .iter()
            .filter(|p| {
                !claims
                    .release
                    .contains(p.metadata.name.as_ref().unwrap_or(&String::new()))
            })
            .map(|p| Pod::clone(p))
            .collect();
        if claims.adopt.is_empty() && claims.release.is_empty() {
            return Ok(pods);
        }
        self.config.write_gate.check()?;
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &key.namespace);
        let me = controller_ref("apps/v1", "ReplicaSet", &rs.metadata);
        for pod in &candidates {
            let name = pod.metadata.name.clone().unwrap_or_default();
            let (adopt, release) = (claims.adopt.contains(&name), claims.release.contains(&name));
            if !adopt && !release {
                continue;
            }
            let refs = if adopt {
                owner_references_after(&pod.metadata, Some(&me), None)
            } else {
                owner_references_after(&pod.metadata, None, Some(&uid))
            };
            match patch_owner_references(&api, &pod.metadata, refs).await {
                Ok(patched) if adopt => pods.push(patched),
                Ok(_) => {}
                // Changed or gone meanwhile: its next event brings it back here.
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(pods)
    }

    async fn sync_replica_set(&self, key: &ObjectKey) -> Result<(), SyncError> {
        let Some(rs) = read(&self.replica_sets).get(key) else {
            lock(&self.expectations).forget(key);
            return Ok(());
        };
        let pods = self.claim_pods(key, &rs).await?;
        let manage = lock(&self.expectations).satisfied(key, Instant::now())
            && rs.metadata.deletion_timestamp.is_none();
        let failure = if manage {
            self.manage(key, &rs, &pods).await?
        } else {
            None
        };
        let now = jiff::Timestamp::now();
        let status = calculate_status(&rs, &pods, failure.as_ref(), now);
        if status_changed(&rs, &status) {
            self.config.write_gate.check()?;
            let mut updated = ReplicaSet::clone(&rs);
            updated.status = Some(status);
            let api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), &key.namespace);
            match api
                .replace_status(&key.name, &PostParams::default(), &updated)
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
        if let Some(after) = availability_recheck(&rs, &pods, now) {
            self.queue.add_after(key.clone(), after);
        }
        match failure {
            Some(failure) => Err(SyncError::Manage(failure.message)),
            None => Ok(()),
        }
    }

    /// `manageReplicas`: creates in slow-start batches or deletes; the first failure, if any.
    async fn manage(
        &self,
        key: &ObjectKey,
        rs: &ReplicaSet,
        pods: &[Pod],
    ) -> Result<Option<ManageFailure>, SyncError> {
        let plan = manage_replicas(rs, pods);
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &key.namespace);
        let reference = reference_to(rs);
        let params = crate::runtime::write_params();
        if !plan.create.is_empty() {
            self.config.write_gate.check()?;
            lock(&self.expectations).expect_creations(key, plan.create.len(), Instant::now());
            let mut templates = plan.create.iter();
            let mut failure = None;
            for batch in slow_start_batches(plan.create.len()) {
                if failure.is_some() {
                    // Skipped creations will not be observed.
                    for _ in 0..batch {
                        lock(&self.expectations).creation_observed(key);
                    }
                    continue;
                }
                let creates = templates
                    .by_ref()
                    .take(batch)
                    .map(|pod| api.create(&params, pod));
                for result in join_all(creates).await {
                    match result {
                        Ok(created) => self.events.record(
                            reference.clone(),
                            false,
                            "SuccessfulCreate",
                            format!(
                                "Created pod: {}",
                                created.metadata.name.as_deref().unwrap_or("")
                            ),
                        ),
                        Err(e) => {
                            lock(&self.expectations).creation_observed(key);
                            if is_namespace_terminating(&e) {
                                return Ok(None);
                            }
                            let message = api_error_text(&e);
                            self.events.record(
                                reference.clone(),
                                true,
                                "FailedCreate",
                                format!("Error creating: {message}"),
                            );
                            failure.get_or_insert(ManageFailure {
                                reason: "FailedCreate",
                                message,
                            });
                        }
                    }
                }
            }
            return Ok(failure);
        }
        if !plan.delete.is_empty() {
            self.config.write_gate.check()?;
            lock(&self.expectations).expect_deletions(key, &plan.delete, Instant::now());
            let deletes = plan.delete.iter().map(|name| {
                let api = api.clone();
                async move { (name, api.delete(name, &DeleteParams::default()).await) }
            });
            let mut failure = None;
            for (name, result) in join_all(deletes).await {
                match result {
                    Ok(_) => self.events.record(
                        reference.clone(),
                        false,
                        "SuccessfulDelete",
                        format!("Deleted pod: {name}"),
                    ),
                    Err(kube::Error::Api(s)) if s.code == 404 => {
                        lock(&self.expectations).deletion_observed(key, name);
                    }
                    Err(e) => {
                        lock(&self.expectations).deletion_observed(key, name);
                        let message = api_error_text(&e);
                        self.events.record(
                            reference.clone(),
                            true,
                            "FailedDelete",
                            format!("Error deleting: {message}"),
                        );
                        failure.get_or_insert(ManageFailure {
                            reason: "FailedDelete",
                            message,
                        });
                    }
                }
            }
            return Ok(failure);
        }
        Ok(None)
    }
}

impl Reconciler for Inner {
    type Error = SyncError;
    const KEY_KIND: &'static str = "ReplicaSet";

    fn sync(&self, key: &ObjectKey) -> impl Future<Output = Result<(), SyncError>> + Send {
        self.sync_replica_set(key)
    }

    fn error_policy(&self, _error: &SyncError) -> ErrorPolicy {
        ErrorPolicy::Backoff
    }
}
