//! Upstream's EndpointSlice tracker (`util/endpointslice_tracker.go`): the generation this
//! controller last wrote for each slice, per Service. It tells which slice events are echoes
//! of our own writes (no sync needed) and when the informer cache is older than our writes
//! (sync would plan from stale data and provoke 409s, kubernetes#92928).

use std::collections::HashMap;

use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::cache::slice_service;
use crate::runtime::ObjectKey;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tracked {
    Generation(i64),
    DeletionExpected,
}

/// Generations written by this controller, per Service and slice UID.
#[derive(Default, Debug)]
pub struct SliceTracker {
    by_service: HashMap<ObjectKey, HashMap<String, Tracked>>,
}

fn uid(slice: &EndpointSlice) -> String {
    slice.metadata.uid.clone().unwrap_or_default()
}

fn generation(slice: &EndpointSlice) -> i64 {
    slice.metadata.generation.unwrap_or(0)
}

impl SliceTracker {
    /// An empty tracker.
    pub fn new() -> Self {
        Self::default()
    }

    fn tracked(&self, slice: &EndpointSlice) -> Option<Tracked> {
        let service = slice_service(slice)?;
        self.by_service.get(&service)?.get(&uid(slice)).copied()
    }

    /// Whether the slice is tracked.
    pub fn has(&self, slice: &EndpointSlice) -> bool {
        self.tracked(slice).is_some()
    }

    /// Whether an event for this slice calls for a sync: untracked, or newer than our write.
    pub fn should_sync(&self, slice: &EndpointSlice) -> bool {
        match self.tracked(slice) {
            None | Some(Tracked::DeletionExpected) => true,
            Some(Tracked::Generation(g)) => generation(slice) > g,
        }
    }

    /// Whether `listed` (the cache's slices of `service`) is older than what we wrote.
    pub fn stale<'a>(
        &self,
        service: &ObjectKey,
        listed: impl IntoIterator<Item = &'a EndpointSlice>,
    ) -> bool {
        let Some(tracked) = self.by_service.get(service) else {
            return false;
        };
        let mut present = 0usize;
        for slice in listed {
            match tracked.get(&uid(slice)) {
                Some(Tracked::DeletionExpected) => return true,
                Some(Tracked::Generation(g)) => {
                    if *g > generation(slice) {
                        return true;
                    }
                    present += 1;
                }
                None => {}
            }
        }
        let expected = tracked
            .values()
            .filter(|t| matches!(t, Tracked::Generation(_)))
            .count();
        present < expected
    }

    /// Records a slice as written (the server's answer, carrying the new generation).
    pub fn update(&mut self, slice: &EndpointSlice) {
        if let Some(service) = slice_service(slice) {
            self.by_service
                .entry(service)
                .or_default()
                .insert(uid(slice), Tracked::Generation(generation(slice)));
        }
    }

    /// Records that we deleted a slice.
    pub fn expect_deletion(&mut self, slice: &EndpointSlice) {
        if let Some(service) = slice_service(slice) {
            self.by_service
                .entry(service)
                .or_default()
                .insert(uid(slice), Tracked::DeletionExpected);
        }
    }

    /// Handles a delete event: forgets the slice and says whether the deletion was
    /// unexpected (so the Service must be synced to repair it).
    pub fn handle_deletion(&mut self, slice: &EndpointSlice) -> bool {
        let Some(service) = slice_service(slice) else {
            return true;
        };
        let Some(tracked) = self.by_service.get_mut(&service) else {
            return true;
        };
        let was = tracked.remove(&uid(slice));
        if tracked.is_empty() {
            self.by_service.remove(&service);
        }
        was != Some(Tracked::DeletionExpected)
    }

    /// Forgets a Service.
    pub fn delete_service(&mut self, service: &ObjectKey) {
        self.by_service.remove(service);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn slice(uid: &str, generation: i64) -> EndpointSlice {
        EndpointSlice {
            metadata: ObjectMeta {
                namespace: Some("ns".into()),
                name: Some(format!("svc-{uid}")),
                uid: Some(uid.into()),
                generation: Some(generation),
                labels: Some([("kubernetes.io/service-name".to_owned(), "svc".to_owned())].into()),
                ..ObjectMeta::default()
            },
            address_type: "IPv4".into(),
            endpoints: Vec::new(),
            ports: None,
        }
    }

    /// `TestSyncServiceStaleInformer`: informer generation vs tracker generation.
    #[test]
    fn stale_informer_vectors() {
        let key = ObjectKey::new("ns", "svc");
        for (informer, tracker_gen, stale) in [(10, 12, true), (10, 10, false), (10, 1, false)] {
            let mut tracker = SliceTracker::new();
            tracker.update(&slice("u1", tracker_gen));
            assert_eq!(
                tracker.stale(&key, &[slice("u1", informer)]),
                stale,
                "{informer}/{tracker_gen}"
            );
        }
    }

    #[test]
    fn missing_or_deleted_slices_are_stale() {
        let key = ObjectKey::new("ns", "svc");
        let mut tracker = SliceTracker::new();
        tracker.update(&slice("u1", 1));
        tracker.update(&slice("u2", 1));
        assert!(tracker.stale(&key, &[slice("u1", 1)]));
        tracker.expect_deletion(&slice("u2", 1));
        assert!(!tracker.stale(&key, &[slice("u1", 1)]));
        assert!(tracker.stale(&key, &[slice("u1", 1), slice("u2", 1)]));
    }

    #[test]
    fn should_sync_and_deletion_handling() {
        let mut tracker = SliceTracker::new();
        assert!(tracker.should_sync(&slice("u1", 1)));
        tracker.update(&slice("u1", 2));
        assert!(!tracker.should_sync(&slice("u1", 2)));
        assert!(tracker.should_sync(&slice("u1", 3)));
        assert!(
            tracker.handle_deletion(&slice("u1", 2)),
            "unexpected deletion"
        );
        assert!(!tracker.has(&slice("u1", 2)));
        tracker.update(&slice("u2", 1));
        tracker.expect_deletion(&slice("u2", 1));
        assert!(
            !tracker.handle_deletion(&slice("u2", 1)),
            "expected deletion"
        );
    }
}
