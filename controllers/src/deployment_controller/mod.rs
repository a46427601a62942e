//! The Deployment controller shell: reflectors over Deployments, ReplicaSets and pods, the
//! shared queue and worker, and the writes of the pure `deployment::plan` in upstream's order
//! (create the new ReplicaSet, update ReplicaSets, delete old ones, the status, the revision
//! annotation).
//!
//! A name collision of the new ReplicaSet (`AlreadyExists` with a ReplicaSet that is not this
//! Deployment's template) bumps `status.collisionCount`, as upstream does. Orphan ReplicaSets
//! that match the selector are adopted and ReplicaSets that stop matching are released before
//! each sync (upstream's `claimReplicaSets`).

use std::future::Future;
use std::sync::{Arc, RwLock};

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::watcher;
use serde_json::json;

use crate::deployment::{
    DeploymentInput, DeploymentPlan, REVISION_ANNOTATION, has_progress_deadline, plan, reasons,
    set_condition, templates_equal_ignoring_hash,
};
use crate::leader_election::{NotLeader, WriteGate};
use crate::runtime::cache::{Applied, ObjectCache};
use crate::runtime::events::reference_to;
use crate::runtime::locks::{read, write};
use crate::runtime::owned::{OwnedCache, patch_owner_references};
use crate::runtime::{
    CacheSyncSignal, ControllerParts, Delta, ErrorPolicy, EventRecorder, ObjectKey, QueueConfig,
    Reconciler, Reflectors, Shutdown, WorkQueue, is_namespace_terminating, run_controller,
};
use crate::workload::{
    claim, controller_of, controller_ref, is_controlled_by, owner_references_after,
    selector_matches,
};
use gocompat::api_error_text;

/// Event source component.
pub const EVENT_COMPONENT: &str = "deployment-controller";

/// Settings, named after kube-controller-manager's flags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeploymentControllerConfig {
    /// `--concurrent-deployment-syncs` (default 5).
    pub concurrent_deployment_syncs: usize,
    /// Writes only while this replica holds the leader lease; workers start once it does.
    pub write_gate: WriteGate,
    /// Set when the caches have synced.
    pub caches_synced: CacheSyncSignal,
}

impl Default for DeploymentControllerConfig {
    fn default() -> Self {
        DeploymentControllerConfig {
            concurrent_deployment_syncs: 5,
            write_gate: WriteGate::always(),
            caches_synced: CacheSyncSignal::default(),
        }
    }
}

/// Why one Deployment sync failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Another replica may hold the leader lease.
    #[error(transparent)]
    NotLeader(#[from] NotLeader),
    /// The new ReplicaSet's name is taken by another template: the collision count went up.
    #[error("replica set {0} already exists with another template; retrying with a new hash")]
    HashCollision(String),
    /// The API refused a write.
    #[error("{}", api_error_text(.0))]
    Api(#[from] kube::Error),
}

struct Inner {
    client: kube::Client,
    config: DeploymentControllerConfig,
    deployments: RwLock<ObjectCache<Deployment>>,
    replica_sets: RwLock<OwnedCache<ReplicaSet>>,
    pods: RwLock<OwnedCache<Pod>>,
    queue: WorkQueue<ObjectKey>,
    events: EventRecorder,
}

/// The Deployment controller.
#[derive(Clone)]
pub struct DeploymentController {
    inner: Arc<Inner>,
}

/// Runs the Deployment controller until `shutdown`.
pub async fn run(client: kube::Client, config: DeploymentControllerConfig, shutdown: Shutdown) {
    DeploymentController::new(client, config)
        .run(shutdown)
        .await;
}

impl DeploymentController {
    /// A controller (not yet running).
    pub fn new(client: kube::Client, config: DeploymentControllerConfig) -> Self {
        let events = EventRecorder::new(client.clone(), EVENT_COMPONENT);
        DeploymentController {
            inner: Arc::new(Inner {
                client,
                config,
                deployments: RwLock::default(),
                replica_sets: RwLock::default(),
                pods: RwLock::default(),
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
            .watch(every(), Inner::on_deployment)
            .watch(every(), Inner::on_replica_set)
            .watch(every(), Inner::on_pod)
            .started();
        let parts = ControllerParts {
            name: "Deployment",
            reflectors,
            caches_synced: inner.config.caches_synced.clone(),
            write_gate: inner.config.write_gate.clone(),
            queue: inner.queue.clone(),
            workers: inner.config.concurrent_deployment_syncs,
        };
        let every_deployment = |inner: &Inner| read(&inner.deployments).keys();
        run_controller(inner, parts, every_deployment, shutdown).await;
    }
}

impl Inner {
    fn on_deployment(&self, delta: Delta<Deployment>) {
        match write(&self.deployments).apply(delta) {
            Applied::Upserted(key) | Applied::Deleted(key) => self.queue.add(key),
            Applied::Gone(keys) => keys.into_iter().for_each(|key| self.queue.add(key)),
        }
    }

    fn on_replica_set(&self, delta: Delta<ReplicaSet>) {
        let changes = write(&self.replica_sets).apply(delta);
        for change in changes {
            for (namespace, owner) in change.controllers() {
                if owner.kind == "Deployment" {
                    self.queue.add(ObjectKey::new(namespace, owner.name));
                }
            }
            // An orphan may be adopted by any Deployment whose selector matches it.
            for rs in [&change.old, &change.new].into_iter().flatten() {
                if controller_of(&rs.metadata).is_none() {
                    let keys: Vec<ObjectKey> = read(&self.deployments)
                        .iter()
                        .filter(|(k, d)| {
                            k.namespace == change.key.namespace
                                && selector_matches(
                                    d.spec.as_ref().map(|s| &s.selector),
                                    rs.metadata.labels.as_ref(),
                                )
                        })
                        .map(|(k, _)| k.clone())
                        .collect();
                    keys.into_iter().for_each(|key| self.queue.add(key));
                }
            }
        }
    }

    /// `claimReplicaSets`: the ReplicaSets the Deployment controls once orphans that match are
    /// adopted and ReplicaSets that stopped matching are released.
    async fn claim_replica_sets(
        &self,
        key: &ObjectKey,
        deployment: &Deployment,
    ) -> Result<Vec<ReplicaSet>, SyncError> {
        let uid = deployment.metadata.uid.clone().unwrap_or_default();
        let candidates = read(&self.replica_sets).in_namespace(&key.namespace);
        let selector = deployment.spec.as_ref().map(|s| &s.selector);
        let claims = claim(
            &deployment.metadata,
            selector,
            candidates.iter().map(|rs| &rs.metadata),
        );
        let released = |rs: &ReplicaSet| {
            rs.metadata
                .name
                .as_ref()
                .is_some_and(|n| claims.release.contains(n))
        };
        let mut replica_sets: Vec<ReplicaSet> = read(&self.replica_sets)
            .controlled_by(&uid)
            .iter()
            .filter(|rs| !released(rs))
            .map(|rs| ReplicaSet::clone(rs))
            .collect();
        if claims.adopt.is_empty() && claims.release.is_empty() {
            return Ok(replica_sets);
        }
        self.config.write_gate.check()?;
        let api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), &key.namespace);
        let me = controller_ref("apps/v1", "Deployment", &deployment.metadata);
        for rs in &candidates {
            let name = rs.metadata.name.clone().unwrap_or_default();
            let (adopt, release) = (claims.adopt.contains(&name), claims.release.contains(&name));
            if !adopt && !release {
                continue;
            }
            let refs = if adopt {
                owner_references_after(&rs.metadata, Some(&me), None)
            } else {
                owner_references_after(&rs.metadata, None, Some(&uid))
            };
            match patch_owner_references(&api, &rs.metadata, refs).await {
                Ok(patched) if adopt => replica_sets.push(patched),
                Ok(_) => {}
                // Changed or gone meanwhile: its next event brings it back here.
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(replica_sets)
    }

    /// A pod going away may let a Recreate rollout go on: queue its ReplicaSet's Deployment.
    fn on_pod(&self, delta: Delta<Pod>) {
        let changes = write(&self.pods).apply(delta);
        for change in changes.into_iter().filter(|c| c.new.is_none()) {
            for (namespace, owner) in change.controllers() {
                let rs_key = ObjectKey::new(namespace.clone(), owner.name);
                let Some(rs) = read(&self.replica_sets).get(&rs_key) else {
                    continue;
                };
                if let Some(d) = crate::workload::controller_of(&rs.metadata)
                    && d.kind == "Deployment"
                {
                    self.queue.add(ObjectKey::new(namespace, d.name.clone()));
                }
            }
        }
    }

    async fn sync_deployment(&self, key: &ObjectKey) -> Result<(), SyncError> {
        let Some(deployment) = read(&self.deployments).get(key) else {
            return Ok(());
        };
        let replica_sets = self.claim_replica_sets(key, &deployment).await?;
        let pods: Vec<Pod> = {
            let pods = read(&self.pods);
            replica_sets
                .iter()
                .filter_map(|rs| rs.metadata.uid.as_deref())
                .flat_map(|rs_uid| pods.controlled_by(rs_uid))
                .map(|p| Pod::clone(&p))
                .collect()
        };
        let planned = plan(&DeploymentInput {
            deployment: &deployment,
            replica_sets: &replica_sets,
            pods: &pods,
            now: jiff::Timestamp::now(),
        });
        self.apply(key, &deployment, planned).await
    }

    async fn apply(
        &self,
        key: &ObjectKey,
        deployment: &Deployment,
        planned: DeploymentPlan,
    ) -> Result<(), SyncError> {
        let reference = reference_to(deployment);
        let replica_sets: Api<ReplicaSet> = Api::namespaced(self.client.clone(), &key.namespace);
        let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), &key.namespace);
        if let Some(new) = &planned.create {
            self.config.write_gate.check()?;
            match replica_sets
                .create(&crate::runtime::write_params(), new)
                .await
            {
                Ok(_) => {}
                Err(e) if is_namespace_terminating(&e) => return Ok(()),
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    return self
                        .on_name_taken(deployment, new, &replica_sets, &deployments)
                        .await;
                }
                Err(e) => {
                    self.report_create_failure(deployment, new, &e, &deployments)
                        .await;
                    return Err(e.into());
                }
            }
        }
        for rs in &planned.update {
            self.config.write_gate.check()?;
            let name = rs.metadata.name.clone().unwrap_or_default();
            replica_sets
                .replace(&name, &crate::runtime::write_params(), rs)
                .await?;
        }
        for name in &planned.delete {
            self.config.write_gate.check()?;
            let uid = read(&self.replica_sets)
                .get(&ObjectKey::new(key.namespace.clone(), name.clone()))
                .and_then(|rs| rs.metadata.uid.clone());
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    uid,
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            match replica_sets.delete(name, &params).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
        if let Some(status) = planned.status {
            self.config.write_gate.check()?;
            self.write_status(&deployments, deployment, status).await?;
        }
        if let Some(revision) = planned.revision {
            self.config.write_gate.check()?;
            let patch = json!({"metadata": {"annotations": {REVISION_ANNOTATION: revision}}});
            deployments
                .patch(
                    &key.name,
                    &PatchParams {
                        field_manager: Some(crate::runtime::FIELD_MANAGER.into()),
                        ..PatchParams::default()
                    },
                    &Patch::Merge(&patch),
                )
                .await?;
        }
        for event in planned.events {
            self.events.record(
                reference.clone(),
                event.warning,
                event.reason,
                event.message,
            );
        }
        if let Some(after) = planned.requeue_after {
            self.queue.add_after(key.clone(), after);
        }
        Ok(())
    }

    /// Replaces the status, with the resourceVersion the plan was made from.
    async fn write_status(
        &self,
        deployments: &Api<Deployment>,
        deployment: &Deployment,
        status: DeploymentStatus,
    ) -> Result<(), kube::Error> {
        let mut updated = deployment.clone();
        updated.status = Some(status);
        let name = deployment.metadata.name.clone().unwrap_or_default();
        match deployments
            .replace_status(&name, &PostParams::default(), &updated)
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The new ReplicaSet's name exists: ours (a slow cache) or a hash collision.
    async fn on_name_taken(
        &self,
        deployment: &Deployment,
        new: &ReplicaSet,
        replica_sets: &Api<ReplicaSet>,
        deployments: &Api<Deployment>,
    ) -> Result<(), SyncError> {
        let name = new.metadata.name.clone().unwrap_or_default();
        let existing = replica_sets.get(&name).await?;
        let uid = deployment.metadata.uid.as_deref().unwrap_or("");
        let template = deployment.spec.as_ref().map(|s| &s.template);
        let same = is_controlled_by(&existing.metadata, uid)
            && template
                .zip(existing.spec.as_ref().and_then(|s| s.template.as_ref()))
                .is_some_and(|(a, b)| templates_equal_ignoring_hash(a, b));
        if same {
            // The cache will show it; the ReplicaSet's event queues this Deployment again.
            return Ok(());
        }
        let mut status = deployment.status.clone().unwrap_or_default();
        status.collision_count = Some(status.collision_count.unwrap_or(0) + 1);
        self.write_status(deployments, deployment, status).await?;
        Err(SyncError::HashCollision(name))
    }

    /// `ReplicaSetCreateError`: Progressing=False and a warning event.
    async fn report_create_failure(
        &self,
        deployment: &Deployment,
        new: &ReplicaSet,
        error: &kube::Error,
        deployments: &Api<Deployment>,
    ) {
        let message = format!(
            "Failed to create new replica set \"{}\": {}",
            new.metadata.name.as_deref().unwrap_or(""),
            api_error_text(error)
        );
        self.events.record(
            reference_to(deployment),
            true,
            reasons::FAILED_RS_CREATE,
            message.clone(),
        );
        if has_progress_deadline(deployment) {
            let mut status = deployment.status.clone().unwrap_or_default();
            let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now());
            set_condition(
                &mut status,
                k8s_openapi::api::apps::v1::DeploymentCondition {
                    type_: reasons::PROGRESSING.into(),
                    status: "False".into(),
                    reason: Some(reasons::FAILED_RS_CREATE.into()),
                    message: Some(message),
                    last_update_time: Some(now.clone()),
                    last_transition_time: Some(now),
                },
            );
            if let Err(e) = self.write_status(deployments, deployment, status).await {
                tracing::debug!(error = %api_error_text(&e), "cannot record the create failure");
            }
        }
    }
}

impl Reconciler for Inner {
    type Error = SyncError;
    const KEY_KIND: &'static str = "Deployment";

    fn sync(&self, key: &ObjectKey) -> impl Future<Output = Result<(), SyncError>> + Send {
        self.sync_deployment(key)
    }

    fn error_policy(&self, _error: &SyncError) -> ErrorPolicy {
        ErrorPolicy::Backoff
    }
}
