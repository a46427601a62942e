//! What this controller last wrote per Endpoints, to tell a cache that has not caught up with
//! those writes yet (upstream's `staleEndpointsTracker`, extended to creations).
//!
//! Upstream remembers the resourceVersion each update replaced: a cache still holding it is
//! stale. It remembers nothing of a creation, so a sync that runs before the watch delivers the
//! Endpoints it has just created creates it again, gets `409 AlreadyExists` and records a
//! `FailedToCreateEndpoint` Warning on the Service. That is only a lagging watch (a loaded
//! machine, a burst of pod changes right after the Service appeared), not a failure: svcplane
//! also remembers its creations and waits for the cache instead, with no write and no Event.

use std::collections::HashMap;

use crate::runtime::ObjectKey;

/// A write the cache may not show yet.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Written {
    /// We replaced this resourceVersion: a cache that still holds it is stale.
    Replaced(String),
    /// We created the object: a cache without it is stale.
    Created,
}

/// Why a cached Endpoints is older than our own writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Staleness {
    /// The cache holds a resourceVersion we replaced.
    Replaced(String),
    /// The cache lacks an Endpoints we created.
    NotYetCreated,
}

#[derive(Debug, Default)]
pub(crate) struct WrittenTracker {
    written: HashMap<ObjectKey, Written>,
}

impl WrittenTracker {
    /// An update of `key` replaced `old_resource_version`.
    pub(crate) fn replaced(&mut self, key: &ObjectKey, old_resource_version: String) {
        self.written
            .insert(key.clone(), Written::Replaced(old_resource_version));
    }

    /// We created `key`.
    pub(crate) fn created(&mut self, key: &ObjectKey) {
        self.written.insert(key.clone(), Written::Created);
    }

    /// The cache saw `key` added, changed or deleted: a creation of ours is no longer ahead of
    /// it (a replaced resourceVersion still is, as it can only come back stale).
    pub(crate) fn observed(&mut self, key: &ObjectKey) {
        if self.written.get(key) == Some(&Written::Created) {
            self.written.remove(key);
        }
    }

    /// A relist is a whole view: a creation it does not show happened after its list and
    /// arrives by the watch, or was deleted since; either way we stop waiting for it (at worst
    /// the next sync creates once more and gets upstream's 409).
    pub(crate) fn relisted(&mut self) {
        self.written.retain(|_, w| *w != Written::Created);
    }

    /// The Service is gone: nothing more is written for it.
    pub(crate) fn forget(&mut self, key: &ObjectKey) {
        self.written.remove(key);
    }

    /// Whether the cache's Endpoints for `key` (its resourceVersion, `None` when it holds none)
    /// is older than what we wrote.
    pub(crate) fn staleness(&self, key: &ObjectKey, cached: Option<&str>) -> Option<Staleness> {
        match (self.written.get(key)?, cached) {
            (Written::Replaced(rv), Some(cached)) if rv == cached => {
                Some(Staleness::Replaced(rv.clone()))
            }
            (Written::Created, None) => Some(Staleness::NotYetCreated),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ObjectKey {
        ObjectKey::new("default", "web")
    }

    #[test]
    fn a_cache_holding_the_replaced_version_is_stale_and_a_newer_one_is_not() {
        let mut t = WrittenTracker::default();
        assert_eq!(t.staleness(&key(), Some("5")), None);
        t.replaced(&key(), "5".into());
        assert_eq!(
            t.staleness(&key(), Some("5")),
            Some(Staleness::Replaced("5".into()))
        );
        assert_eq!(t.staleness(&key(), Some("6")), None);
        // The cache seeing the new version does not make the old one fresh again.
        t.observed(&key());
        assert!(t.staleness(&key(), Some("5")).is_some());
    }

    #[test]
    fn a_cache_without_what_we_created_is_stale_until_it_sees_it() {
        let mut t = WrittenTracker::default();
        assert_eq!(t.staleness(&key(), None), None);
        t.created(&key());
        assert_eq!(t.staleness(&key(), None), Some(Staleness::NotYetCreated));
        assert_eq!(t.staleness(&key(), Some("7")), None);
        t.observed(&key());
        // Deleted by someone else afterwards: recreating it is right, not stale.
        assert_eq!(t.staleness(&key(), None), None);
    }

    #[test]
    fn a_relist_ends_the_wait_for_creations_and_keeps_replaced_versions() {
        let mut t = WrittenTracker::default();
        let other = ObjectKey::new("default", "api");
        t.created(&key());
        t.replaced(&other, "3".into());
        t.relisted();
        assert_eq!(t.staleness(&key(), None), None);
        assert!(t.staleness(&other, Some("3")).is_some());
        t.forget(&other);
        assert_eq!(t.staleness(&other, Some("3")), None);
    }
}
