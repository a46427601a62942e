//! The event history watches resume from: one sliding window per resource, sized as
//! kube-apiserver's watch cache sizes its own.
//!
//! Why this rule and not a fixed count: a fixed global count (testenv used to keep the last
//! 50,000 events of every kind together) is either too small for a busy resource or, for a
//! playground that runs for hours, tens of megabytes of old object versions nobody will ever
//! resume from. kube-apiserver (staging/src/k8s.io/apiserver/pkg/storage/cacher/watch_cache.go)
//! keeps, per resource, what clients can still need: the last `eventFreshDuration` (75 s, a
//! bookmark interval plus a margin, so a watcher that got its last bookmark can resume) and at
//! least 100 events, never more than 100 Ki. Memory then follows the change *rate*, not the
//! number of changes ever made, and a watcher that resumes from a compacted resourceVersion
//! gets the same 410 Expired it would get from kube-apiserver.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::store::ChangeEvent;

/// How each resource's watch history is sized; the defaults are kube-apiserver's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchCacheSizing {
    /// Smallest capacity (`defaultLowerBoundCapacity`, 100); also the starting one.
    pub lower_bound: usize,
    /// Largest capacity (`defaultUpperBoundCapacity`, 100 × 1024).
    pub upper_bound: usize,
    /// How long events are worth keeping (`eventFreshDuration`, 75 s): a full window of younger
    /// events doubles the capacity; one whose newest quarter is older halves it.
    pub event_fresh: Duration,
}

impl Default for WatchCacheSizing {
    fn default() -> Self {
        Self {
            lower_bound: 100,
            upper_bound: 100 * 1024,
            event_fresh: Duration::from_secs(75),
        }
    }
}

impl WatchCacheSizing {
    /// A window of exactly `events` per resource, whatever their age (tests).
    pub fn fixed(events: usize) -> Self {
        Self {
            lower_bound: events,
            upper_bound: events,
            event_fresh: Duration::ZERO,
        }
    }
}

/// One resource's window of recent changes.
#[derive(Debug)]
pub(crate) struct WatchHistory {
    events: VecDeque<(Instant, Arc<ChangeEvent>)>,
    capacity: usize,
    /// Whether an event was ever dropped: watches may then only resume from just before the
    /// oldest kept one (upstream's `removedEventSinceRelist`).
    dropped: bool,
}

impl WatchHistory {
    pub(crate) fn new(sizing: &WatchCacheSizing) -> Self {
        Self {
            events: VecDeque::new(),
            capacity: sizing.lower_bound.max(1),
            dropped: false,
        }
    }

    /// Records a change made at `now`, resizing first as `updateCache` does.
    pub(crate) fn push(
        &mut self,
        event: Arc<ChangeEvent>,
        now: Instant,
        sizing: &WatchCacheSizing,
    ) {
        self.resize(now, sizing);
        if self.events.len() >= self.capacity {
            self.events.pop_front();
            self.dropped = true;
        }
        self.events.push_back((now, event));
    }

    /// `resizeCacheLocked`: grows a full window of fresh events, shrinks one whose newest quarter
    /// is stale.
    fn resize(&mut self, now: Instant, sizing: &WatchCacheSizing) {
        if self.events.len() < self.capacity {
            return;
        }
        let age = |i: usize| now.saturating_duration_since(self.events[i].0);
        if age(0) < sizing.event_fresh {
            // Never below the current size, even if the bounds were given the wrong way round.
            self.capacity = (self.capacity * 2)
                .min(sizing.upper_bound)
                .max(self.capacity);
            return;
        }
        // The event a quarter of the window from the newest (the oldest, for a tiny window).
        let quarter = (self.events.len() - self.capacity / 4) % self.events.len();
        if age(quarter) > sizing.event_fresh {
            let capacity = (self.capacity / 2).max(sizing.lower_bound.max(1));
            while self.events.len() > capacity {
                self.events.pop_front();
                self.dropped = true;
            }
            self.capacity = capacity;
        }
    }

    /// The changes after `resource_version`, or — when some of them were dropped — the oldest
    /// resourceVersion a watch can resume from.
    pub(crate) fn since(&self, resource_version: u64) -> Result<Vec<Arc<ChangeEvent>>, u64> {
        if self.dropped
            && let Some((_, oldest)) = self.events.front()
        {
            let resumable = oldest.resource_version - 1;
            if resource_version < resumable {
                return Err(resumable);
            }
        }
        let start = self
            .events
            .partition_point(|(_, e)| e.resource_version <= resource_version);
        Ok(self.events.range(start..).map(|(_, e)| e.clone()).collect())
    }

    /// How many events are kept.
    pub(crate) fn len(&self) -> usize {
        self.events.len()
    }

    /// How many events fit before the oldest is dropped.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{CollectionKey, EventType, StoredObject};

    fn event(rv: u64) -> Arc<ChangeEvent> {
        let object = StoredObject::from_value(&serde_json::json!({"metadata": {"name": "a",
            "resourceVersion": rv.to_string()}}));
        Arc::new(ChangeEvent {
            resource_version: rv,
            collection: CollectionKey::new("", "configmaps"),
            event_type: EventType::Modified,
            object: Arc::new(object),
            previous: None,
        })
    }

    fn sizing() -> WatchCacheSizing {
        WatchCacheSizing {
            lower_bound: 4,
            upper_bound: 16,
            event_fresh: Duration::from_secs(75),
        }
    }

    #[test]
    fn a_burst_grows_the_window_up_to_the_upper_bound() {
        let t0 = Instant::now();
        let mut h = WatchHistory::new(&sizing());
        for rv in 1..=40 {
            h.push(event(rv), t0 + Duration::from_millis(rv), &sizing());
        }
        assert_eq!((h.capacity(), h.len()), (16, 16));
        // The oldest kept is 25: a watch from 24 still sees every change, from 23 it cannot.
        assert_eq!(h.since(24).unwrap().len(), 16);
        assert_eq!(h.since(39).unwrap().len(), 1);
        assert_eq!(h.since(23).unwrap_err(), 24);
    }

    #[test]
    fn a_quiet_resource_shrinks_back_to_the_lower_bound() {
        let t0 = Instant::now();
        let s = sizing();
        let mut h = WatchHistory::new(&s);
        for rv in 1..=16 {
            h.push(event(rv), t0, &s);
        }
        assert_eq!(h.capacity(), 16);
        // Long after: every push into a full, stale window halves it.
        let later = t0 + Duration::from_secs(300);
        for rv in 17..=19 {
            h.push(event(rv), later, &s);
        }
        assert_eq!((h.capacity(), h.len()), (4, 4));
        assert_eq!(
            h.since(15)
                .unwrap()
                .iter()
                .map(|e| e.resource_version)
                .collect::<Vec<_>>(),
            [16, 17, 18, 19]
        );
        assert!(h.since(14).is_err());
    }

    #[test]
    fn nothing_expires_before_an_event_is_dropped() {
        let mut h = WatchHistory::new(&sizing());
        let now = Instant::now();
        h.push(event(50), now, &sizing());
        assert_eq!(h.since(3).unwrap().len(), 1);
        assert!(h.since(50).unwrap().is_empty());
    }

    #[test]
    fn bounds_given_the_wrong_way_round_never_overfill_the_window() {
        let s = WatchCacheSizing {
            lower_bound: 8,
            upper_bound: 4,
            event_fresh: Duration::from_secs(75),
        };
        let mut h = WatchHistory::new(&s);
        let now = Instant::now();
        for rv in 1..=20 {
            h.push(event(rv), now, &s);
            assert!(h.len() <= h.capacity());
        }
        assert_eq!((h.capacity(), h.len()), (8, 8));
    }

    #[test]
    fn a_fixed_window_never_resizes() {
        let s = WatchCacheSizing::fixed(3);
        let mut h = WatchHistory::new(&s);
        let now = Instant::now();
        for rv in 1..=10 {
            h.push(event(rv), now, &s);
        }
        assert_eq!((h.capacity(), h.len()), (3, 3));
    }
}
