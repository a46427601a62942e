//! The numbers of a rollout (`deployment_util.go`): surge and unavailability fenceposts, the
//! new ReplicaSet's next size, and the proportional share of a scaling event.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};

use crate::workload::scaled_value;

use super::{MAX_REPLICAS_ANNOTATION, annotation, desired, is_rolling_update, spec_replicas};

/// `ResolveFenceposts`: `(maxSurge, maxUnavailable)` for `desired` replicas. Surge rounds up,
/// unavailability down; if both come out 0, unavailability is 1.
pub fn resolve_fenceposts(deployment: &Deployment, desired: i32) -> (i32, i32) {
    let rolling = deployment
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    let surge =
        scaled_value(rolling.and_then(|r| r.max_surge.as_ref()), desired, true).unwrap_or(0);
    let unavailable = scaled_value(
        rolling.and_then(|r| r.max_unavailable.as_ref()),
        desired,
        false,
    )
    .unwrap_or(0);
    if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable)
    }
}

/// `MaxSurge`: 0 unless rolling.
pub fn max_surge(deployment: &Deployment) -> i32 {
    if !is_rolling_update(deployment) {
        return 0;
    }
    resolve_fenceposts(deployment, desired(deployment)).0
}

/// `MaxUnavailable`: 0 unless rolling with replicas; never more than the replicas.
pub fn max_unavailable(deployment: &Deployment) -> i32 {
    let replicas = desired(deployment);
    if !is_rolling_update(deployment) || replicas == 0 {
        return 0;
    }
    resolve_fenceposts(deployment, replicas).1.min(replicas)
}

/// `NewRSNewReplicas`: how big the new ReplicaSet may be now. Rolling: up to
/// `replicas + maxSurge` pods in all, never above `replicas`. Recreate: `replicas`.
pub fn new_rs_new_replicas(deployment: &Deployment, all: &[&ReplicaSet], new: &ReplicaSet) -> i32 {
    let replicas = desired(deployment);
    if !is_rolling_update(deployment) {
        return replicas;
    }
    let current: i32 = all.iter().map(|rs| spec_replicas(rs)).sum();
    let max_total = replicas + max_surge(deployment);
    if current >= max_total {
        return spec_replicas(new);
    }
    let scale_up = (max_total - current).min(replicas - spec_replicas(new));
    spec_replicas(new) + scale_up
}

/// `getReplicaSetFraction`: the change of `rs` that keeps its share of the Deployment when the
/// Deployment goes from the size in its `max-replicas` annotation to `replicas + maxSurge`.
fn replica_set_fraction(rs: &ReplicaSet, deployment: &Deployment) -> i32 {
    let replicas = desired(deployment);
    if replicas == 0 {
        return -spec_replicas(rs);
    }
    let max_replicas = replicas + max_surge(deployment);
    let before = annotation(rs, MAX_REPLICAS_ANNOTATION)
        .and_then(|v| v.parse::<i32>().ok())
        .filter(|v| *v != 0)
        .unwrap_or_else(|| {
            deployment
                .status
                .as_ref()
                .and_then(|s| s.replicas)
                .unwrap_or(0)
        });
    if before == 0 {
        return 0;
    }
    let size = f64::from(spec_replicas(rs)) * f64::from(max_replicas) / f64::from(before);
    // integer.RoundToInt32: half away from zero.
    size.round() as i32 - spec_replicas(rs)
}

/// `GetReplicaSetProportion`: `rs`'s share of `to_add`, `added` having been handed out so far.
pub fn replica_set_proportion(
    rs: &ReplicaSet,
    deployment: &Deployment,
    to_add: i32,
    added: i32,
) -> i32 {
    if spec_replicas(rs) == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let fraction = replica_set_fraction(rs, deployment);
    let allowed = to_add - added;
    if to_add > 0 {
        fraction.min(allowed)
    } else {
        fraction.max(allowed)
    }
}
