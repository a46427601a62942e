//! The ReplicaSet controller's pure core (`k/k pkg/controller/replicaset/replica_set{,_utils}.go`,
//! spec §4.8): which pods to create from the template and which to delete, in upstream's
//! order, the slow-start batches creations go in, and the status.
//!
//! Inputs are plain data: the ReplicaSet, the pods it controls (by controllerRef, after the
//! shell's adoptions and releases, `crate::workload::claim`) and the time.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use crate::workload::{controller_ref, is_pod_active, is_pod_available, is_pod_ready, ready_since};

mod expectations;
#[cfg(test)]
mod tests;

pub use expectations::{EXPECTATIONS_TIMEOUT, PodExpectations};

/// How many pods one sync creates or deletes at most (`BurstReplicas`).
pub const BURST_REPLICAS: usize = 500;
/// The first slow-start batch (`SlowStartInitialBatchSize`).
pub const SLOW_START_INITIAL_BATCH_SIZE: usize = 1;
/// The annotation that orders pods for deletion (lower first).
pub const POD_DELETION_COST_ANNOTATION: &str = "controller.kubernetes.io/pod-deletion-cost";
/// The condition a failed create or delete sets.
pub const REPLICA_FAILURE: &str = "ReplicaFailure";

/// What to change so that the ReplicaSet has `spec.replicas` active pods.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ManageReplicas {
    /// Pods to create, each from the template (the API server names them from generateName).
    pub create: Vec<Pod>,
    /// Names of the pods to delete, the first to go first.
    pub delete: Vec<String>,
}

/// Why the last create or delete failed: the `ReplicaFailure` condition's reason and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManageFailure {
    /// `FailedCreate` or `FailedDelete`.
    pub reason: &'static str,
    /// The API's error text.
    pub message: String,
}

/// `getPodsPrefix`: `"<name>-"`, or the bare name when the dash would make a generated pod
/// name invalid (a name already at the 253-character limit).
pub fn pods_prefix(controller_name: &str) -> String {
    let prefix = format!("{controller_name}-");
    // ValidatePodName(prefix, true) checks the prefix as a DNS subdomain with room for the
    // generated suffix removed: only its length can make the dash invalid.
    if prefix.len() > 253 {
        controller_name.to_string()
    } else {
        prefix
    }
}

/// `GetPodFromTemplate`: a pod of `rs`'s template, with generateName, the template's labels,
/// annotations and finalizers, and the ReplicaSet as its controller.
pub fn pod_from_template(rs: &ReplicaSet) -> Pod {
    let template = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .unwrap_or_default();
    let meta = template.metadata.unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(pods_prefix(rs.metadata.name.as_deref().unwrap_or(""))),
            namespace: rs.metadata.namespace.clone(),
            labels: Some(meta.labels.unwrap_or_default()),
            annotations: Some(meta.annotations.unwrap_or_default()),
            finalizers: meta.finalizers,
            owner_references: Some(vec![controller_ref("apps/v1", "ReplicaSet", &rs.metadata)]),
            ..ObjectMeta::default()
        },
        spec: template.spec,
        status: None,
    }
}

fn desired_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1)
        .max(0)
}

fn min_ready_seconds(rs: &ReplicaSet) -> i32 {
    rs.spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0)
}

/// `manageReplicas`: create or delete the difference between the active pods and
/// `spec.replicas`, at most [`BURST_REPLICAS`] per sync. `pods` are the pods the ReplicaSet
/// controls; inactive ones are ignored.
pub fn manage_replicas(rs: &ReplicaSet, pods: &[Pod]) -> ManageReplicas {
    let active: Vec<&Pod> = pods.iter().filter(|p| is_pod_active(p)).collect();
    let diff = active.len() as i64 - i64::from(desired_replicas(rs));
    if diff < 0 {
        let count = (diff.unsigned_abs() as usize).min(BURST_REPLICAS);
        let pod = pod_from_template(rs);
        return ManageReplicas {
            create: vec![pod; count],
            delete: Vec::new(),
        };
    }
    let count = (diff as usize).min(BURST_REPLICAS);
    ManageReplicas {
        create: Vec::new(),
        delete: pods_to_delete(&active, count),
    }
}

/// `getPodsToDelete`: the `count` lowest-ranked pods (`ActivePodsWithRanks`), by name.
pub fn pods_to_delete(active: &[&Pod], count: usize) -> Vec<String> {
    if count == 0 {
        return Vec::new();
    }
    // Rank 5: how many of the ReplicaSet's active pods share the pod's node.
    let mut on_node: BTreeMap<&str, usize> = BTreeMap::new();
    for pod in active {
        *on_node.entry(node_name(pod)).or_default() += 1;
    }
    let mut ranked: Vec<(&Pod, usize)> = active
        .iter()
        .map(|p| (*p, on_node.get(node_name(p)).copied().unwrap_or(0)))
        .collect();
    ranked.sort_by(deletion_order);
    ranked
        .into_iter()
        .take(count)
        .map(|(p, _)| p.metadata.name.clone().unwrap_or_default())
        .collect()
}

fn node_name(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or("")
}

fn phase_ordinal(pod: &Pod) -> u8 {
    match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Pending") => 0,
        Some("Unknown") => 1,
        Some("Running") => 2,
        _ => 0,
    }
}

fn deletion_cost(pod: &Pod) -> i32 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(POD_DELETION_COST_ANNOTATION))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn max_restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_deref())
        .unwrap_or_default()
        .iter()
        .map(|c| c.restart_count)
        .max()
        .unwrap_or(0)
}

/// `afterOrZero` as an ordering: a zero time first, then the later time first.
fn later_first(a: Option<Timestamp>, b: Option<Timestamp>) -> std::cmp::Ordering {
    match (a, b) {
        (None, None) => std::cmp::Ordering::Equal,
        (None, Some(_)) => std::cmp::Ordering::Less,
        (Some(_), None) => std::cmp::Ordering::Greater,
        (Some(a), Some(b)) => b.cmp(&a),
    }
}

/// `ActivePodsWithRanks.Less` without the LogarithmicScaleDown buckets: the pod to delete first
/// orders first.
fn deletion_order(a: &(&Pod, usize), b: &(&Pod, usize)) -> std::cmp::Ordering {
    let ((pa, rank_a), (pb, rank_b)) = (a, b);
    let (node_a, node_b) = (node_name(pa), node_name(pb));
    // 1. unscheduled before scheduled.
    (!node_a.is_empty())
        .cmp(&!node_b.is_empty())
        // 2. Pending, Unknown, Running.
        .then_with(|| phase_ordinal(pa).cmp(&phase_ordinal(pb)))
        // 3. not ready before ready.
        .then_with(|| is_pod_ready(pa).cmp(&is_pod_ready(pb)))
        // 4. lower deletion cost first.
        .then_with(|| deletion_cost(pa).cmp(&deletion_cost(pb)))
        // 5. more crowded nodes first.
        .then_with(|| rank_b.cmp(rank_a))
        // 6. ready more recently first.
        .then_with(|| match (ready_since(pa), ready_since(pb)) {
            (Some(a), Some(b)) => later_first(a, b),
            _ => std::cmp::Ordering::Equal,
        })
        // 7. more restarts first.
        .then_with(|| max_restarts(pb).cmp(&max_restarts(pa)))
        // 8. newer first.
        .then_with(|| {
            later_first(
                pa.metadata.creation_timestamp.as_ref().map(|t| t.0),
                pb.metadata.creation_timestamp.as_ref().map(|t| t.0),
            )
        })
        .then_with(|| pa.metadata.name.cmp(&pb.metadata.name))
}

/// `slowStartBatch`'s batch sizes for `count` creations: 1, 2, 4, ... until all are covered.
/// A batch with an error stops the rest.
pub fn slow_start_batches(count: usize) -> Vec<usize> {
    let mut batches = Vec::new();
    let mut remaining = count;
    let mut size = SLOW_START_INITIAL_BATCH_SIZE.min(remaining);
    while size > 0 {
        batches.push(size);
        remaining -= size;
        size = (2 * size).min(remaining);
    }
    batches
}

/// `calculateStatus`: counts of the active pods, and the `ReplicaFailure` condition set while
/// `failure` is present and removed otherwise.
pub fn calculate_status(
    rs: &ReplicaSet,
    pods: &[Pod],
    failure: Option<&ManageFailure>,
    now: Timestamp,
) -> ReplicaSetStatus {
    let template_labels = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let min_ready = min_ready_seconds(rs);
    let active: Vec<&Pod> = pods.iter().filter(|p| is_pod_active(p)).collect();
    let count = |f: &dyn Fn(&Pod) -> bool| active.iter().filter(|p| f(p)).count() as i32;
    let fully_labeled = count(&|p| {
        let labels = p.metadata.labels.as_ref();
        template_labels
            .iter()
            .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
    });
    let old = rs.status.clone().unwrap_or_default();
    let mut conditions: Vec<ReplicaSetCondition> = old
        .conditions
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.type_ != REPLICA_FAILURE)
        .collect();
    if let Some(failure) = failure {
        conditions.push(ReplicaSetCondition {
            type_: REPLICA_FAILURE.into(),
            status: "True".into(),
            reason: Some(failure.reason.into()),
            message: Some(failure.message.clone()),
            last_transition_time: Some(Time(now)),
        });
    }
    ReplicaSetStatus {
        replicas: active.len() as i32,
        fully_labeled_replicas: Some(fully_labeled),
        ready_replicas: Some(count(&is_pod_ready)),
        available_replicas: Some(count(&|p| is_pod_available(p, min_ready, now))),
        observed_generation: rs.metadata.generation,
        conditions: (!conditions.is_empty()).then_some(conditions),
        terminating_replicas: old.terminating_replicas,
    }
}

/// When to sync again so that pods that are ready but not yet available become available:
/// the earliest moment one of them passes `minReadySeconds` (upstream requeues after
/// `minReadySeconds` whenever ready ≠ available).
pub fn availability_recheck(rs: &ReplicaSet, pods: &[Pod], now: Timestamp) -> Option<Duration> {
    let min_ready = min_ready_seconds(rs);
    if min_ready <= 0 {
        return None;
    }
    pods.iter()
        .filter(|p| is_pod_active(p) && !is_pod_available(p, min_ready, now))
        .filter_map(ready_since)
        .map(|since| match since {
            Some(since) => {
                let due = since + SignedDuration::from_secs(i64::from(min_ready));
                Duration::try_from(due.duration_since(now)).unwrap_or(Duration::ZERO)
            }
            None => Duration::from_secs(min_ready as u64),
        })
        .min()
        .map(|d| d.max(Duration::from_millis(100)))
}

/// Whether `new` differs from the ReplicaSet's current status (a write is needed).
pub fn status_changed(rs: &ReplicaSet, new: &ReplicaSetStatus) -> bool {
    let old = rs.status.clone().unwrap_or_default();
    // The failure condition's time is fresh each sync: compare it without the time.
    let strip = |s: &ReplicaSetStatus| {
        let mut s = s.clone();
        for c in s.conditions.iter_mut().flatten() {
            c.last_transition_time = None;
        }
        s
    };
    strip(&old) != strip(new)
}
