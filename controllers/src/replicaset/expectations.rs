//! Upstream's `ControllerExpectations` for pods (`k/k pkg/controller/controller_utils.go`): after
//! creating or deleting pods, a ReplicaSet is not managed again until the cache has seen those
//! changes (or a timeout passes), so that a stale cache never makes it create twice.
//! Creations are counted (the names are unknown until the API answers, and the watch may
//! report a pod before its create returns); deletions are tracked by pod name.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use crate::runtime::ObjectKey;

/// `ExpectationsTimeout`: after this, a ReplicaSet is managed again whatever was seen.
pub const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(5 * 60);

#[derive(Debug)]
struct Pending {
    creations: usize,
    deletions: BTreeSet<String>,
    since: Instant,
}

/// Pending creations and deletions per ReplicaSet.
#[derive(Debug, Default)]
pub struct PodExpectations {
    pending: HashMap<ObjectKey, Pending>,
}

impl PodExpectations {
    /// Whether the ReplicaSet may be managed now: nothing pending, or pending too long.
    pub fn satisfied(&self, rs: &ObjectKey, now: Instant) -> bool {
        self.pending.get(rs).is_none_or(|p| {
            (p.creations == 0 && p.deletions.is_empty())
                || now.duration_since(p.since) > EXPECTATIONS_TIMEOUT
        })
    }

    fn entry(&mut self, rs: &ObjectKey, now: Instant) -> &mut Pending {
        let pending = self.pending.entry(rs.clone()).or_insert_with(|| Pending {
            creations: 0,
            deletions: BTreeSet::new(),
            since: now,
        });
        pending.since = now;
        pending
    }

    /// `ExpectCreations`: `count` pods are about to be created (replacing what was pending).
    pub fn expect_creations(&mut self, rs: &ObjectKey, count: usize, now: Instant) {
        let pending = self.entry(rs, now);
        pending.creations = count;
        pending.deletions.clear();
    }

    /// `ExpectDeletions`: these pods are about to be deleted (replacing what was pending).
    pub fn expect_deletions(&mut self, rs: &ObjectKey, names: &[String], now: Instant) {
        let pending = self.entry(rs, now);
        pending.creations = 0;
        pending.deletions = names.iter().cloned().collect();
    }

    /// `CreationObserved`: a new pod of the ReplicaSet appeared, or a create failed or was
    /// skipped.
    pub fn creation_observed(&mut self, rs: &ObjectKey) {
        if let Some(p) = self.pending.get_mut(rs) {
            p.creations = p.creations.saturating_sub(1);
        }
    }

    /// `DeletionObserved`: the pod is gone or terminating, or its delete failed.
    pub fn deletion_observed(&mut self, rs: &ObjectKey, pod: &str) {
        if let Some(p) = self.pending.get_mut(rs) {
            p.deletions.remove(pod);
        }
    }

    /// `DeleteExpectations`: the ReplicaSet is gone.
    pub fn forget(&mut self, rs: &ObjectKey) {
        self.pending.remove(rs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replica_set_waits_for_its_creations_and_deletions() {
        let rs = ObjectKey::new("default", "web-1");
        let t0 = Instant::now();
        let mut e = PodExpectations::default();
        assert!(e.satisfied(&rs, t0));
        e.expect_creations(&rs, 2, t0);
        assert!(!e.satisfied(&rs, t0));
        e.creation_observed(&rs);
        assert!(!e.satisfied(&rs, t0));
        e.creation_observed(&rs);
        e.creation_observed(&rs);
        assert!(e.satisfied(&rs, t0));
        e.expect_deletions(&rs, &["a".into(), "b".into()], t0);
        e.deletion_observed(&rs, "a");
        e.deletion_observed(&rs, "other");
        assert!(!e.satisfied(&rs, t0));
        e.deletion_observed(&rs, "b");
        assert!(e.satisfied(&rs, t0));
    }

    #[test]
    fn expectations_expire() {
        let rs = ObjectKey::new("default", "web-1");
        let t0 = Instant::now();
        let mut e = PodExpectations::default();
        e.expect_creations(&rs, 1, t0);
        assert!(!e.satisfied(&rs, t0 + EXPECTATIONS_TIMEOUT));
        assert!(e.satisfied(&rs, t0 + EXPECTATIONS_TIMEOUT + Duration::from_secs(1)));
        e.forget(&rs);
        assert!(e.satisfied(&rs, t0));
    }
}
