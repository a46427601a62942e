//! The Deployment controller's pure core (`k/k pkg/controller/deployment`, spec §4.2–§4.7):
//! one sync of a Deployment as plain data. In: the Deployment, the ReplicaSets it controls,
//! their pods and the time. Out: the ReplicaSet to create, the ReplicaSets to update (scale
//! and annotations) and delete, the Deployment's revision annotation and status, and events.
//!
//! The steps and their early returns follow upstream's `syncDeployment`, `rolloutRolling`,
//! `rolloutRecreate` and `sync` (scaling events, paused Deployments), so one plan is what one
//! upstream sync would write. The shell applies it in order: create, updates, deletes, the
//! revision, the status.
//!
//! The ReplicaSets are those the Deployment controls once the shell has adopted and released
//! by selector (`crate::workload::claim`). Left out: the deprecated `rollbackTo`.

mod hash;
mod math;
mod status;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet, ReplicaSetSpec,
};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

use crate::workload::{
    POD_TEMPLATE_HASH_LABEL, controller_ref, is_controlled_by, selector_is_empty,
};

pub use hash::{compute_hash, fnv32a, safe_encode_string};
pub use math::{max_surge, max_unavailable, new_rs_new_replicas, resolve_fenceposts};
pub use status::{calculate_status, set_condition};

/// The revision of a ReplicaSet, mirrored on its Deployment.
pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";
/// The earlier revisions of a re-promoted ReplicaSet, comma-separated.
pub const REVISION_HISTORY_ANNOTATION: &str = "deployment.kubernetes.io/revision-history";
/// `spec.replicas` of the Deployment when the ReplicaSet was last scaled.
pub const DESIRED_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/desired-replicas";
/// `replicas + maxSurge` of the Deployment when the ReplicaSet was last scaled.
pub const MAX_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/max-replicas";
/// kubectl's record of an applied configuration: never copied to ReplicaSets.
const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// The deprecated extensions/v1beta1 rollback request: never copied.
const DEPRECATED_ROLLBACK_TO: &str = "deprecated.deployment.rollback.to";
/// `maxRevHistoryLengthInChars`.
pub const MAX_REVISION_HISTORY_CHARS: usize = 2000;

/// Condition types and reasons (`deployment_util.go`).
pub mod reasons {
    /// The Available condition.
    pub const AVAILABLE: &str = "Available";
    /// The Progressing condition.
    pub const PROGRESSING: &str = "Progressing";
    /// The ReplicaFailure condition.
    pub const REPLICA_FAILURE: &str = "ReplicaFailure";
    /// Available=True.
    pub const MINIMUM_REPLICAS_AVAILABLE: &str = "MinimumReplicasAvailable";
    /// Available=False.
    pub const MINIMUM_REPLICAS_UNAVAILABLE: &str = "MinimumReplicasUnavailable";
    /// Progressing=True, the rollout is complete.
    pub const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
    /// Progressing=True, progress was made.
    pub const REPLICA_SET_UPDATED: &str = "ReplicaSetUpdated";
    /// Progressing=True, the new ReplicaSet was created.
    pub const NEW_RS_CREATED: &str = "NewReplicaSetCreated";
    /// Progressing=True, the new ReplicaSet was found without a Progressing condition.
    pub const FOUND_NEW_RS: &str = "FoundNewReplicaSet";
    /// Progressing=False, no progress within the deadline.
    pub const TIMED_OUT: &str = "ProgressDeadlineExceeded";
    /// Progressing=Unknown, paused.
    pub const PAUSED: &str = "DeploymentPaused";
    /// Progressing=Unknown, resumed.
    pub const RESUMED: &str = "DeploymentResumed";
    /// Progressing=False, the new ReplicaSet could not be created.
    pub const FAILED_RS_CREATE: &str = "ReplicaSetCreateError";
}

/// An event the sync records on the Deployment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedEvent {
    /// Warning rather than Normal.
    pub warning: bool,
    /// Upstream's reason, e.g. `ScalingReplicaSet`.
    pub reason: &'static str,
    /// Upstream's message.
    pub message: String,
}

/// One sync's inputs.
#[derive(Clone, Copy, Debug)]
pub struct DeploymentInput<'a> {
    /// The Deployment.
    pub deployment: &'a Deployment,
    /// The ReplicaSets whose controllerRef is the Deployment.
    pub replica_sets: &'a [ReplicaSet],
    /// The pods whose controllerRef is one of those ReplicaSets (Recreate waits for them).
    pub pods: &'a [Pod],
    /// The time of the sync.
    pub now: Timestamp,
}

/// What one sync writes, in this order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DeploymentPlan {
    /// The new ReplicaSet to create.
    pub create: Option<ReplicaSet>,
    /// ReplicaSets to update (their new spec and annotations), in the order upstream writes.
    pub update: Vec<ReplicaSet>,
    /// Old ReplicaSets to delete beyond `revisionHistoryLimit`.
    pub delete: Vec<String>,
    /// The Deployment's new `deployment.kubernetes.io/revision` annotation.
    pub revision: Option<String>,
    /// The Deployment's new status, when it changed.
    pub status: Option<DeploymentStatus>,
    /// Events on the Deployment.
    pub events: Vec<PlannedEvent>,
    /// When to sync again even if nothing changes (the progress deadline).
    pub requeue_after: Option<Duration>,
}

pub(crate) fn desired(deployment: &Deployment) -> i32 {
    deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1)
}

pub(crate) fn spec_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

fn status_replicas(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().map(|s| s.replicas).unwrap_or(0)
}

fn available_replicas(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

pub(crate) fn annotation<'a>(rs: &'a ReplicaSet, key: &str) -> Option<&'a str> {
    rs.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

pub(crate) fn is_rolling_update(deployment: &Deployment) -> bool {
    deployment
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        .is_none_or(|t| t == "RollingUpdate")
}

fn is_paused(deployment: &Deployment) -> bool {
    deployment
        .spec
        .as_ref()
        .and_then(|s| s.paused)
        .unwrap_or(false)
}

fn template(deployment: &Deployment) -> PodTemplateSpec {
    deployment
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default()
}

/// The revision of a ReplicaSet (0 when absent or unparsable).
pub fn revision(rs: &ReplicaSet) -> i64 {
    annotation(rs, REVISION_ANNOTATION)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Drops nulls, empty objects and empty arrays: Go's semantic equality treats a nil map or
/// slice and an empty one alike.
fn semantic(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, semantic(v)))
                .filter(|(_, v)| !is_empty_value(v))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(semantic).collect()),
        other => other,
    }
}

fn is_empty_value(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// `EqualIgnoreHash`: whether two pod templates are semantically equal once the
/// `pod-template-hash` label is removed from both.
pub fn templates_equal_ignoring_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    let normalize = |t: &PodTemplateSpec| {
        let mut t = t.clone();
        if let Some(labels) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
            labels.remove(POD_TEMPLATE_HASH_LABEL);
        }
        semantic(serde_json::to_value(&t).unwrap_or(Value::Null))
    };
    normalize(a) == normalize(b)
}

fn skip_copy_annotation(key: &str) -> bool {
    matches!(
        key,
        LAST_APPLIED_ANNOTATION
            | REVISION_ANNOTATION
            | REVISION_HISTORY_ANNOTATION
            | DESIRED_REPLICAS_ANNOTATION
            | MAX_REPLICAS_ANNOTATION
            | DEPRECATED_ROLLBACK_TO
    )
}

/// `SetReplicasAnnotations`: desired-replicas and max-replicas; whether they changed.
fn set_replicas_annotations(rs: &mut ReplicaSet, desired: i32, max_replicas: i32) -> bool {
    let annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let mut changed = false;
    for (key, value) in [
        (DESIRED_REPLICAS_ANNOTATION, desired),
        (MAX_REPLICAS_ANNOTATION, max_replicas),
    ] {
        let value = value.to_string();
        if annotations.get(key) != Some(&value) {
            annotations.insert(key.to_string(), value);
            changed = true;
        }
    }
    changed
}

/// `SetNewReplicaSetAnnotations`: the Deployment's annotations copied (but the skipped ones),
/// the revision raised to `new_revision` with the old one kept in the history (a rollback),
/// and for a ReplicaSet about to be created the replicas annotations; whether anything changed.
fn set_new_replica_set_annotations(
    deployment: &Deployment,
    rs: &mut ReplicaSet,
    new_revision: i64,
    exists: bool,
) -> bool {
    let mut changed = false;
    let annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    for (k, v) in deployment.metadata.annotations.iter().flatten() {
        if skip_copy_annotation(k) || annotations.get(k) == Some(v) {
            continue;
        }
        annotations.insert(k.clone(), v.clone());
        changed = true;
    }
    let old_revision = annotations.get(REVISION_ANNOTATION).cloned();
    let old_revision_number = match old_revision.as_deref() {
        None | Some("") => 0,
        Some(v) => match v.parse::<i64>() {
            Ok(n) => n,
            // Upstream gives up on a ReplicaSet whose revision is not a number.
            Err(_) => return false,
        },
    };
    if old_revision_number < new_revision {
        annotations.insert(REVISION_ANNOTATION.into(), new_revision.to_string());
        changed = true;
        if let Some(old) = old_revision {
            let history = annotations
                .get(REVISION_HISTORY_ANNOTATION)
                .cloned()
                .unwrap_or_default();
            if history.is_empty() {
                annotations.insert(REVISION_HISTORY_ANNOTATION.into(), old);
            } else {
                let mut revisions: Vec<&str> = history.split(',').collect();
                let mut total = history.len() + old.len() + 1;
                let mut start = 0;
                while total > MAX_REVISION_HISTORY_CHARS && start < revisions.len() {
                    total -= revisions[start].len() + 1;
                    start += 1;
                }
                if total <= MAX_REVISION_HISTORY_CHARS {
                    revisions.drain(..start);
                    revisions.push(&old);
                    let joined = revisions.join(",");
                    annotations.insert(REVISION_HISTORY_ANNOTATION.into(), joined);
                }
            }
        }
    }
    if !exists {
        let replicas = desired(deployment);
        if set_replicas_annotations(rs, replicas, replicas + max_surge(deployment)) {
            changed = true;
        }
    }
    changed
}

/// The new ReplicaSet of a Deployment's current template (`getNewReplicaSet`, create branch):
/// named `<deployment>-<hash>`, the hash added to the template labels and selector, the
/// Deployment as controller, `replicas` as given.
pub fn new_replica_set(deployment: &Deployment, replicas: i32) -> ReplicaSet {
    let collision_count = deployment.status.as_ref().and_then(|s| s.collision_count);
    let mut template = template(deployment);
    let hash = compute_hash(&template, collision_count);
    template
        .metadata
        .get_or_insert_with(ObjectMeta::default)
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(POD_TEMPLATE_HASH_LABEL.into(), hash.clone());
    let mut selector = deployment
        .spec
        .as_ref()
        .map(|s| s.selector.clone())
        .unwrap_or_default();
    selector
        .match_labels
        .get_or_insert_with(BTreeMap::new)
        .insert(POD_TEMPLATE_HASH_LABEL.into(), hash.clone());
    let labels = template.metadata.as_ref().and_then(|m| m.labels.clone());
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(format!(
                "{}-{hash}",
                deployment.metadata.name.as_deref().unwrap_or("")
            )),
            namespace: deployment.metadata.namespace.clone(),
            owner_references: Some(vec![controller_ref(
                "apps/v1",
                "Deployment",
                &deployment.metadata,
            )]),
            labels,
            ..ObjectMeta::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            min_ready_seconds: deployment.spec.as_ref().and_then(|s| s.min_ready_seconds),
            selector,
            template: Some(template),
        }),
        status: None,
    }
}

/// A sync in progress: working copies of the ReplicaSets and of the Deployment's status, and
/// what has been decided so far.
struct Sync<'a> {
    deployment: &'a Deployment,
    pods: &'a [Pod],
    now: Timestamp,
    /// The ReplicaSets, oldest first (a ReplicaSet about to be created is the newest).
    replica_sets: Vec<ReplicaSet>,
    new: Option<usize>,
    created: bool,
    updated: Vec<usize>,
    /// `d.Status` as upstream's sync mutates it before the final status write.
    status: DeploymentStatus,
    plan: DeploymentPlan,
}

fn creation_order(a: &ReplicaSet, b: &ReplicaSet) -> std::cmp::Ordering {
    let key = |rs: &ReplicaSet| {
        (
            rs.metadata
                .creation_timestamp
                .as_ref()
                .map_or(Timestamp::MAX, |t| t.0),
            rs.metadata.name.clone(),
        )
    };
    key(a).cmp(&key(b))
}

impl<'a> Sync<'a> {
    fn new(input: &DeploymentInput<'a>) -> Self {
        let mut replica_sets: Vec<ReplicaSet> = input.replica_sets.to_vec();
        replica_sets.sort_by(creation_order);
        Sync {
            deployment: input.deployment,
            pods: input.pods,
            now: input.now,
            replica_sets,
            new: None,
            created: false,
            updated: Vec::new(),
            status: input.deployment.status.clone().unwrap_or_default(),
            plan: DeploymentPlan::default(),
        }
    }

    fn olds(&self) -> Vec<usize> {
        (0..self.replica_sets.len())
            .filter(|i| Some(*i) != self.new)
            .collect()
    }

    fn active(&self, indices: &[usize]) -> Vec<usize> {
        indices
            .iter()
            .copied()
            .filter(|i| spec_replicas(&self.replica_sets[*i]) > 0)
            .collect()
    }

    fn all(&self) -> Vec<usize> {
        (0..self.replica_sets.len()).collect()
    }

    fn total_spec(&self, indices: &[usize]) -> i32 {
        indices
            .iter()
            .map(|i| spec_replicas(&self.replica_sets[*i]))
            .sum()
    }

    fn mark_updated(&mut self, index: usize) {
        let is_created = self.created && Some(index) == self.new;
        if !is_created && !self.updated.contains(&index) {
            self.updated.push(index);
        }
    }

    fn event(&mut self, warning: bool, reason: &'static str, message: String) {
        self.plan.events.push(PlannedEvent {
            warning,
            reason,
            message,
        });
    }

    /// `getAllReplicaSetsAndSyncRevision`: finds (or, when `create`, makes) the new
    /// ReplicaSet and brings its annotations and the Deployment's revision up to date.
    fn sync_revision(&mut self, create: bool) {
        let deployment = self.deployment;
        let template = template(deployment);
        self.new = self.replica_sets.iter().position(|rs| {
            rs.spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .is_some_and(|t| templates_equal_ignoring_hash(&template, t))
        });
        let max_old_revision = self
            .olds()
            .iter()
            .map(|i| revision(&self.replica_sets[*i]))
            .max()
            .unwrap_or(0);
        let new_revision = max_old_revision + 1;
        if let Some(index) = self.new {
            let mut rs = self.replica_sets[index].clone();
            let annotations_updated =
                set_new_replica_set_annotations(deployment, &mut rs, new_revision, true);
            let min_ready = deployment.spec.as_ref().and_then(|s| s.min_ready_seconds);
            let spec = rs.spec.get_or_insert_with(ReplicaSetSpec::default);
            let min_ready_changed = spec.min_ready_seconds != min_ready;
            if annotations_updated || min_ready_changed {
                spec.min_ready_seconds = min_ready;
                self.replica_sets[index] = rs;
                self.mark_updated(index);
                return;
            }
            let rs_revision = annotation(&rs, REVISION_ANNOTATION)
                .unwrap_or("")
                .to_string();
            self.set_deployment_revision(rs_revision);
            if has_progress_deadline(deployment)
                && status::condition(&self.status, reasons::PROGRESSING).is_none()
            {
                let message = format!(
                    "Found new replica set {}",
                    go_quote(rs.metadata.name.as_deref().unwrap_or(""))
                );
                set_condition(
                    &mut self.status,
                    status::new_condition(
                        reasons::PROGRESSING,
                        "True",
                        reasons::FOUND_NEW_RS,
                        message,
                        self.now,
                    ),
                );
            }
            return;
        }
        if !create {
            return;
        }
        let mut rs = new_replica_set(deployment, 0);
        let all: Vec<&ReplicaSet> = self
            .replica_sets
            .iter()
            .chain(std::iter::once(&rs))
            .collect();
        let replicas = new_rs_new_replicas(deployment, &all, &rs);
        if let Some(spec) = rs.spec.as_mut() {
            spec.replicas = Some(replicas);
        }
        set_new_replica_set_annotations(deployment, &mut rs, new_revision, false);
        let name = rs.metadata.name.clone().unwrap_or_default();
        self.replica_sets.push(rs);
        self.new = Some(self.replica_sets.len() - 1);
        self.created = true;
        if replicas > 0 {
            self.event(
                false,
                "ScalingReplicaSet",
                format!("Scaled up replica set {name} from 0 to {replicas}"),
            );
        }
        self.set_deployment_revision(new_revision.to_string());
        if has_progress_deadline(deployment) {
            let message = format!("Created new replica set {}", go_quote(&name));
            set_condition(
                &mut self.status,
                status::new_condition(
                    reasons::PROGRESSING,
                    "True",
                    reasons::NEW_RS_CREATED,
                    message,
                    self.now,
                ),
            );
        }
    }

    /// `SetDeploymentRevision`.
    fn set_deployment_revision(&mut self, revision: String) {
        let current = self
            .deployment
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(REVISION_ANNOTATION));
        if current != Some(&revision) {
            self.plan.revision = Some(revision);
        }
    }

    /// `scaleReplicaSetAndRecordEvent`: whether the size changed.
    fn scale(&mut self, index: usize, new_scale: i32) -> bool {
        let deployment = self.deployment;
        let replicas = desired(deployment);
        let max_replicas = replicas + max_surge(deployment);
        let rs = &mut self.replica_sets[index];
        let old_scale = spec_replicas(rs);
        let size_changed = old_scale != new_scale;
        let mut copy = rs.clone();
        let annotations_changed = set_replicas_annotations(&mut copy, replicas, max_replicas);
        if !size_changed && !annotations_changed {
            return false;
        }
        copy.spec
            .get_or_insert_with(ReplicaSetSpec::default)
            .replicas = Some(new_scale);
        let name = copy.metadata.name.clone().unwrap_or_default();
        *rs = copy;
        self.mark_updated(index);
        if size_changed {
            let direction = if old_scale < new_scale { "up" } else { "down" };
            self.event(
                false,
                "ScalingReplicaSet",
                format!("Scaled {direction} replica set {name} from {old_scale} to {new_scale}"),
            );
        }
        size_changed
    }

    /// `reconcileNewReplicaSet`.
    fn reconcile_new(&mut self) -> bool {
        let Some(new) = self.new else {
            return false;
        };
        let replicas = desired(self.deployment);
        let current = spec_replicas(&self.replica_sets[new]);
        if current == replicas {
            return false;
        }
        if current > replicas {
            return self.scale(new, replicas);
        }
        let all: Vec<&ReplicaSet> = self.replica_sets.iter().collect();
        let count = new_rs_new_replicas(self.deployment, &all, &self.replica_sets[new]);
        self.scale(new, count)
    }

    /// `reconcileOldReplicaSets`: unhealthy old replicas first, then healthy ones while
    /// availability allows, oldest ReplicaSet first.
    fn reconcile_olds(&mut self) -> bool {
        let olds = self.olds();
        if self.total_spec(&olds) == 0 {
            return false;
        }
        let all_pods = self.total_spec(&self.all());
        let min_available = desired(self.deployment) - max_unavailable(self.deployment);
        let new_unavailable = self.new.map_or(0, |i| {
            spec_replicas(&self.replica_sets[i]) - available_replicas(&self.replica_sets[i])
        });
        let max_scaled_down = all_pods - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return false;
        }
        let active_olds = self.active(&olds);
        let mut cleaned = 0;
        for &i in &active_olds {
            if cleaned >= max_scaled_down {
                break;
            }
            let rs = &self.replica_sets[i];
            let (spec, available) = (spec_replicas(rs), available_replicas(rs));
            if spec == 0 || spec == available {
                continue;
            }
            let count = (max_scaled_down - cleaned).min(spec - available);
            self.scale(i, spec - count);
            cleaned += count;
        }
        // scaleDownOldReplicaSetsForRollingUpdate, on the old ReplicaSets' new sizes.
        let available: i32 = self.replica_sets.iter().map(available_replicas).sum();
        let mut scaled = 0;
        if available > min_available {
            let to_scale_down = available - min_available;
            for &i in &active_olds {
                if scaled >= to_scale_down {
                    break;
                }
                let spec = spec_replicas(&self.replica_sets[i]);
                if spec == 0 {
                    continue;
                }
                let count = spec.min(to_scale_down - scaled);
                self.scale(i, spec - count);
                scaled += count;
            }
        }
        cleaned + scaled > 0
    }

    /// `cleanupDeployment`: delete the oldest revisions beyond `revisionHistoryLimit` that are
    /// scaled to zero and settled.
    fn cleanup(&mut self) {
        let Some(limit) = self
            .deployment
            .spec
            .as_ref()
            .and_then(|s| s.revision_history_limit)
        else {
            return;
        };
        let mut cleanable: Vec<&ReplicaSet> = self
            .olds()
            .into_iter()
            .map(|i| &self.replica_sets[i])
            .filter(|rs| rs.metadata.deletion_timestamp.is_none())
            .collect();
        let diff = cleanable.len() as i64 - i64::from(limit);
        if diff <= 0 {
            return;
        }
        cleanable.sort_by(|a, b| {
            revision(a)
                .cmp(&revision(b))
                .then_with(|| creation_order(a, b))
        });
        let mut delete = Vec::new();
        for rs in cleanable.into_iter().take(diff as usize) {
            let observed = rs
                .status
                .as_ref()
                .and_then(|s| s.observed_generation)
                .unwrap_or(0);
            if status_replicas(rs) != 0
                || spec_replicas(rs) != 0
                || rs.metadata.generation.unwrap_or(0) > observed
            {
                continue;
            }
            delete.push(rs.metadata.name.clone().unwrap_or_default());
        }
        self.plan.delete.extend(delete);
    }

    /// `scale`: the sizes of a scaling event or a paused Deployment, shared in proportion.
    fn scale_proportionally(&mut self) {
        let deployment = self.deployment;
        let replicas = desired(deployment);
        let olds = self.olds();
        // FindActiveOrLatest.
        if self.new.is_some() || !olds.is_empty() {
            let mut candidates = self.active(&olds);
            candidates.extend(
                self.new
                    .filter(|i| spec_replicas(&self.replica_sets[*i]) > 0),
            );
            let only = match candidates.len() {
                0 => self.new.or_else(|| olds.last().copied()),
                1 => Some(candidates[0]),
                _ => None,
            };
            if let Some(index) = only {
                if spec_replicas(&self.replica_sets[index]) != replicas {
                    self.scale(index, replicas);
                }
                return;
            }
        }
        if let Some(new) = self.new
            && is_saturated(deployment, &self.replica_sets[new])
        {
            for i in self.active(&olds) {
                self.scale(i, 0);
            }
            return;
        }
        if !is_rolling_update(deployment) {
            return;
        }
        let mut all = olds.clone();
        all.extend(self.new);
        let mut active = self.active(&all);
        let allowed = if replicas > 0 {
            replicas + max_surge(deployment)
        } else {
            0
        };
        let to_add = allowed - self.total_spec(&active);
        // Larger first; ties newer first when growing, older first when shrinking.
        let by_size = |rs: &ReplicaSet| spec_replicas(rs);
        match to_add.cmp(&0) {
            std::cmp::Ordering::Greater => active.sort_by(|a, b| {
                let (ra, rb) = (&self.replica_sets[*a], &self.replica_sets[*b]);
                by_size(rb)
                    .cmp(&by_size(ra))
                    .then_with(|| creation_order(rb, ra))
            }),
            std::cmp::Ordering::Less => active.sort_by(|a, b| {
                let (ra, rb) = (&self.replica_sets[*a], &self.replica_sets[*b]);
                by_size(rb)
                    .cmp(&by_size(ra))
                    .then_with(|| creation_order(ra, rb))
            }),
            std::cmp::Ordering::Equal => {}
        }
        let mut added = 0;
        let mut sizes: Vec<i32> = Vec::with_capacity(active.len());
        for &i in &active {
            let rs = &self.replica_sets[i];
            if to_add != 0 {
                let proportion = math::replica_set_proportion(rs, deployment, to_add, added);
                sizes.push(spec_replicas(rs) + proportion);
                added += proportion;
            } else {
                sizes.push(spec_replicas(rs));
            }
        }
        for (position, &i) in active.iter().enumerate() {
            let mut size = sizes[position];
            if position == 0 && to_add != 0 {
                size = (size + to_add - added).max(0);
            }
            // scaleReplicaSet: no event for proportional scaling.
            let events = self.plan.events.len();
            self.scale(i, size);
            self.plan.events.truncate(events);
        }
    }

    /// `oldPodsRunning`: whether an old ReplicaSet still reports pods or has a pod that has
    /// not finished.
    fn old_pods_running(&self) -> bool {
        let olds = self.olds();
        if olds
            .iter()
            .any(|i| status_replicas(&self.replica_sets[*i]) > 0)
        {
            return true;
        }
        let old_uids: Vec<&str> = olds
            .iter()
            .filter_map(|i| self.replica_sets[*i].metadata.uid.as_deref())
            .collect();
        self.pods.iter().any(|pod| {
            old_uids
                .iter()
                .any(|uid| is_controlled_by(&pod.metadata, uid))
                && !matches!(
                    pod.status.as_ref().and_then(|s| s.phase.as_deref()),
                    Some("Failed" | "Succeeded")
                )
        })
    }

    fn rollout_rolling(&mut self) {
        self.sync_revision(true);
        if self.reconcile_new() {
            return self.finish_rollout();
        }
        if self.reconcile_olds() {
            return self.finish_rollout();
        }
        if deployment_complete(self.deployment, &self.status) {
            self.cleanup();
        }
        self.finish_rollout();
    }

    fn rollout_recreate(&mut self) {
        self.sync_revision(false);
        let mut scaled_down = false;
        for i in self.active(&self.olds()) {
            if self.scale(i, 0) {
                scaled_down = true;
            }
        }
        if scaled_down || self.old_pods_running() {
            return self.finish_rollout();
        }
        if self.new.is_none() {
            self.sync_revision(true);
        }
        if let Some(new) = self.new {
            let replicas = desired(self.deployment);
            self.scale(new, replicas);
        }
        if deployment_complete(self.deployment, &self.status) {
            self.cleanup();
        }
        self.finish_rollout();
    }

    /// `sync`: scaling events and paused Deployments.
    fn sync_scaling(&mut self) {
        self.sync_revision(false);
        self.scale_proportionally();
        if is_paused(self.deployment) {
            self.cleanup();
        }
        let new = self.new_rs();
        let computed =
            calculate_status(self.deployment, &self.status, &self.all_rs(), new, self.now);
        self.finish(computed);
    }

    fn new_rs(&self) -> Option<&ReplicaSet> {
        self.new.map(|i| &self.replica_sets[i])
    }

    fn all_rs(&self) -> Vec<&ReplicaSet> {
        self.replica_sets.iter().collect()
    }

    /// `syncRolloutStatus`.
    fn finish_rollout(&mut self) {
        let computed = status::rollout_status(
            self.deployment,
            &self.status,
            &self.all_rs(),
            self.new_rs(),
            self.now,
        );
        self.plan.requeue_after = status::requeue_stuck(self.deployment, &computed, self.now);
        self.finish(computed);
    }

    fn finish(&mut self, status: DeploymentStatus) {
        let original = self.deployment.status.clone().unwrap_or_default();
        if status != original {
            self.plan.status = Some(status);
        }
    }

    fn into_plan(mut self) -> DeploymentPlan {
        if self.created
            && let Some(new) = self.new
        {
            self.plan.create = Some(self.replica_sets[new].clone());
        }
        self.plan.update = self
            .updated
            .iter()
            .map(|i| self.replica_sets[*i].clone())
            .collect();
        self.plan
    }
}

/// Whether a Deployment has a progress deadline (`HasProgressDeadline`).
pub fn has_progress_deadline(deployment: &Deployment) -> bool {
    deployment
        .spec
        .as_ref()
        .and_then(|s| s.progress_deadline_seconds)
        .is_some_and(|s| s != i32::MAX)
}

/// `IsSaturated`: the new ReplicaSet runs all the replicas, all available.
fn is_saturated(deployment: &Deployment, rs: &ReplicaSet) -> bool {
    let replicas = desired(deployment);
    annotation(rs, DESIRED_REPLICAS_ANNOTATION).and_then(|v| v.parse::<i32>().ok())
        == Some(replicas)
        && spec_replicas(rs) == replicas
        && available_replicas(rs) == replicas
}

/// `DeploymentComplete`.
pub fn deployment_complete(deployment: &Deployment, status: &DeploymentStatus) -> bool {
    let replicas = desired(deployment);
    status.updated_replicas.unwrap_or(0) == replicas
        && status.replicas.unwrap_or(0) == replicas
        && status.available_replicas.unwrap_or(0) == replicas
        && status.observed_generation.unwrap_or(0) >= deployment.metadata.generation.unwrap_or(0)
}

/// `isScalingEvent`: an active ReplicaSet was sized for another `spec.replicas`.
fn is_scaling_event(deployment: &Deployment, replica_sets: &[ReplicaSet]) -> bool {
    let replicas = desired(deployment);
    replica_sets
        .iter()
        .filter(|rs| spec_replicas(rs) > 0)
        .filter_map(|rs| {
            annotation(rs, DESIRED_REPLICAS_ANNOTATION)?
                .parse::<i32>()
                .ok()
        })
        .any(|d| d != replicas)
}

/// Go's `%q` for the names in messages (names never need escapes).
fn go_quote(s: &str) -> String {
    format!("\"{s}\"")
}

/// `checkPausedConditions`: Progressing=Unknown while paused, and once on resume.
fn check_paused_conditions(deployment: &Deployment, status: &mut DeploymentStatus, now: Timestamp) {
    if !has_progress_deadline(deployment) {
        return;
    }
    let current = status::condition(status, reasons::PROGRESSING);
    if current.is_some_and(|c| c.reason.as_deref() == Some(reasons::TIMED_OUT)) {
        return;
    }
    let paused_condition = current.is_some_and(|c| c.reason.as_deref() == Some(reasons::PAUSED));
    let paused = is_paused(deployment);
    let condition = if paused && !paused_condition {
        status::new_condition(
            reasons::PROGRESSING,
            "Unknown",
            reasons::PAUSED,
            "Deployment is paused".into(),
            now,
        )
    } else if !paused && paused_condition {
        status::new_condition(
            reasons::PROGRESSING,
            "Unknown",
            reasons::RESUMED,
            "Deployment is resumed".into(),
            now,
        )
    } else {
        return;
    };
    set_condition(status, condition);
}

/// One sync of a Deployment (`syncDeployment`).
pub fn plan(input: &DeploymentInput<'_>) -> DeploymentPlan {
    let deployment = input.deployment;
    let mut sync = Sync::new(input);
    let selector = deployment.spec.as_ref().map(|s| &s.selector);
    if selector_is_empty(selector) {
        sync.event(
            true,
            "SelectingAll",
            "This deployment is selecting all pods. A non-empty selector is required.".into(),
        );
        if sync.status.observed_generation < deployment.metadata.generation {
            sync.status.observed_generation = deployment.metadata.generation;
            let status = sync.status.clone();
            sync.finish(status);
        }
        return sync.into_plan();
    }
    if deployment.metadata.deletion_timestamp.is_some() {
        // syncStatusOnly.
        sync.sync_revision(false);
        let computed = calculate_status(
            deployment,
            &sync.status,
            &sync.all_rs(),
            sync.new_rs(),
            input.now,
        );
        sync.finish(computed);
        return sync.into_plan();
    }
    check_paused_conditions(deployment, &mut sync.status, input.now);
    if is_paused(deployment) || is_scaling_event(deployment, input.replica_sets) {
        sync.sync_scaling();
        return sync.into_plan();
    }
    if is_rolling_update(deployment) {
        sync.rollout_rolling();
    } else {
        sync.rollout_recreate();
    }
    sync.into_plan()
}

/// A Deployment condition converted from a ReplicaSet's ReplicaFailure
/// (`ReplicaSetToDeploymentCondition`).
fn replica_failure(rs: &ReplicaSet) -> Option<DeploymentCondition> {
    let condition = rs
        .status
        .as_ref()?
        .conditions
        .as_deref()?
        .iter()
        .find(|c| c.type_ == reasons::REPLICA_FAILURE)?;
    Some(DeploymentCondition {
        type_: condition.type_.clone(),
        status: condition.status.clone(),
        last_update_time: condition.last_transition_time.clone(),
        last_transition_time: condition.last_transition_time.clone(),
        reason: condition.reason.clone(),
        message: condition.message.clone(),
    })
}
