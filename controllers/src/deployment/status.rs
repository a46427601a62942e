//! A Deployment's status (`calculateStatus`, `syncRolloutStatus`, spec §4.7): replica counts
//! from its ReplicaSets, the Available and Progressing conditions, ReplicaFailure copied from
//! the ReplicaSets, and when to look again for the progress deadline.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{
    available_replicas, deployment_complete, desired, go_quote, has_progress_deadline,
    max_unavailable, reasons, replica_failure, spec_replicas, status_replicas,
};

/// A condition stamped `now` for both times (`NewDeploymentCondition`).
pub(crate) fn new_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: Timestamp,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// The condition of `type_`, if present.
pub(crate) fn condition<'a>(
    status: &'a DeploymentStatus,
    type_: &str,
) -> Option<&'a DeploymentCondition> {
    status
        .conditions
        .as_deref()?
        .iter()
        .find(|c| c.type_ == type_)
}

fn remove_condition(status: &mut DeploymentStatus, type_: &str) {
    if let Some(conditions) = status.conditions.as_mut() {
        conditions.retain(|c| c.type_ != type_);
        if conditions.is_empty() {
            status.conditions = None;
        }
    }
}

/// `SetDeploymentCondition`: nothing when status and reason are unchanged; the transition time
/// kept when only the reason changes; the condition moved to the end.
pub fn set_condition(status: &mut DeploymentStatus, mut condition: DeploymentCondition) {
    if let Some(current) = self::condition(status, &condition.type_) {
        if current.status == condition.status && current.reason == condition.reason {
            return;
        }
        if current.status == condition.status {
            condition.last_transition_time = current.last_transition_time.clone();
        }
    }
    remove_condition(status, &condition.type_);
    status
        .conditions
        .get_or_insert_with(Vec::new)
        .push(condition);
}

/// `calculateStatus`: the counts over the ReplicaSets and the Available condition; the other
/// conditions are carried over from `current` (the status as this sync left it so far).
pub fn calculate_status(
    deployment: &Deployment,
    current: &DeploymentStatus,
    all: &[&ReplicaSet],
    new: Option<&ReplicaSet>,
    now: Timestamp,
) -> DeploymentStatus {
    let available: i32 = all.iter().map(|rs| available_replicas(rs)).sum();
    let total: i32 = all.iter().map(|rs| spec_replicas(rs)).sum();
    let ready: i32 = all
        .iter()
        .map(|rs| {
            rs.status
                .as_ref()
                .and_then(|s| s.ready_replicas)
                .unwrap_or(0)
        })
        .sum();
    let mut status = DeploymentStatus {
        observed_generation: deployment.metadata.generation,
        replicas: Some(all.iter().map(|rs| status_replicas(rs)).sum()),
        updated_replicas: Some(new.map_or(0, status_replicas)),
        ready_replicas: Some(ready),
        available_replicas: Some(available),
        unavailable_replicas: Some((total - available).max(0)),
        collision_count: current.collision_count,
        conditions: current.conditions.clone(),
        terminating_replicas: None,
    };
    let condition = if available >= desired(deployment) - max_unavailable(deployment) {
        new_condition(
            reasons::AVAILABLE,
            "True",
            reasons::MINIMUM_REPLICAS_AVAILABLE,
            "Deployment has minimum availability.".into(),
            now,
        )
    } else {
        new_condition(
            reasons::AVAILABLE,
            "False",
            reasons::MINIMUM_REPLICAS_UNAVAILABLE,
            "Deployment does not have minimum availability.".into(),
            now,
        )
    };
    set_condition(&mut status, condition);
    status
}

/// `DeploymentProgressing`: more updated, ready or available replicas, or fewer old ones,
/// than the stored status says.
fn progressing(deployment: &Deployment, new: &DeploymentStatus) -> bool {
    let old = deployment.status.clone().unwrap_or_default();
    let n = |v: Option<i32>| v.unwrap_or(0);
    let old_olds = n(old.replicas) - n(old.updated_replicas);
    let new_olds = n(new.replicas) - n(new.updated_replicas);
    n(new.updated_replicas) > n(old.updated_replicas)
        || new_olds < old_olds
        || n(new.ready_replicas) > n(old.ready_replicas)
        || n(new.available_replicas) > n(old.available_replicas)
}

fn deadline(deployment: &Deployment) -> SignedDuration {
    let seconds = deployment
        .spec
        .as_ref()
        .and_then(|s| s.progress_deadline_seconds)
        .unwrap_or(0);
    SignedDuration::from_secs(i64::from(seconds))
}

/// `DeploymentTimedOut`.
fn timed_out(deployment: &Deployment, status: &DeploymentStatus, now: Timestamp) -> bool {
    if !has_progress_deadline(deployment) {
        return false;
    }
    let Some(condition) = condition(status, reasons::PROGRESSING) else {
        return false;
    };
    match condition.reason.as_deref() {
        Some(reasons::NEW_RS_AVAILABLE) => false,
        Some(reasons::TIMED_OUT) => true,
        _ => condition
            .last_update_time
            .as_ref()
            .is_some_and(|from| from.0 + deadline(deployment) < now),
    }
}

/// `syncRolloutStatus`: the computed status with the Progressing condition estimated
/// (complete, progressing, or timed out) and ReplicaFailure copied from the ReplicaSets.
pub(crate) fn rollout_status(
    deployment: &Deployment,
    current: &DeploymentStatus,
    all: &[&ReplicaSet],
    new: Option<&ReplicaSet>,
    now: Timestamp,
) -> DeploymentStatus {
    let mut status = calculate_status(deployment, current, all, new, now);
    if !has_progress_deadline(deployment) {
        remove_condition(&mut status, reasons::PROGRESSING);
    }
    let current_condition = condition(current, reasons::PROGRESSING).cloned();
    let complete_before = status.replicas == status.updated_replicas
        && current_condition
            .as_ref()
            .is_some_and(|c| c.reason.as_deref() == Some(reasons::NEW_RS_AVAILABLE));
    let name = deployment.metadata.name.as_deref().unwrap_or("");
    let subject = match new {
        Some(rs) => format!(
            "ReplicaSet {}",
            go_quote(rs.metadata.name.as_deref().unwrap_or(""))
        ),
        None => format!("Deployment {}", go_quote(name)),
    };
    if has_progress_deadline(deployment) && !complete_before {
        if deployment_complete(deployment, &status) {
            set_condition(
                &mut status,
                new_condition(
                    reasons::PROGRESSING,
                    "True",
                    reasons::NEW_RS_AVAILABLE,
                    format!("{subject} has successfully progressed."),
                    now,
                ),
            );
        } else if progressing(deployment, &status) {
            let mut condition = new_condition(
                reasons::PROGRESSING,
                "True",
                reasons::REPLICA_SET_UPDATED,
                format!("{subject} is progressing."),
                now,
            );
            if let Some(current) = &current_condition {
                if current.status == "True" {
                    condition.last_transition_time = current.last_transition_time.clone();
                }
                remove_condition(&mut status, reasons::PROGRESSING);
            }
            set_condition(&mut status, condition);
        } else if timed_out(deployment, &status, now) {
            set_condition(
                &mut status,
                new_condition(
                    reasons::PROGRESSING,
                    "False",
                    reasons::TIMED_OUT,
                    format!("{subject} has timed out progressing."),
                    now,
                ),
            );
        }
    }
    let failure = new
        .and_then(replica_failure)
        .or_else(|| all.iter().find_map(|rs| replica_failure(rs)));
    match failure {
        Some(failure) => set_condition(&mut status, failure),
        None => remove_condition(&mut status, reasons::REPLICA_FAILURE),
    }
    status
}

/// `requeueStuckDeployment`: when a rollout in progress should be checked against its
/// deadline, if nothing else wakes the Deployment first.
pub(crate) fn requeue_stuck(
    deployment: &Deployment,
    status: &DeploymentStatus,
    now: Timestamp,
) -> Option<Duration> {
    let condition = condition(status, reasons::PROGRESSING)?;
    if !has_progress_deadline(deployment)
        || matches!(
            condition.reason.as_deref(),
            Some(reasons::NEW_RS_AVAILABLE | reasons::TIMED_OUT)
        )
        || deployment_complete(deployment, status)
    {
        return None;
    }
    let from = condition.last_update_time.as_ref()?.0;
    let after = (from + deadline(deployment)).duration_since(now);
    // Past the deadline already: look again right away (a second, as upstream's resync).
    Some(
        Duration::try_from(after)
            .unwrap_or(Duration::ZERO)
            .max(Duration::from_secs(1)),
    )
}
