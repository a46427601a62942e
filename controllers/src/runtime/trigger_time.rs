//! Upstream's trigger-time tracker (`util/trigger_time_tracker.go`): per Service, the
//! creation time and each pod's Ready `lastTransitionTime` seen at the last sync; the
//! trigger time of a sync is the earliest change since then.

use std::collections::HashMap;

use jiff::Timestamp;

use super::ObjectKey;
use crate::endpointslice::PodInfo;

#[derive(Default)]
struct ServiceState {
    created: Option<Timestamp>,
    /// Ready transition per pod name, sorted by name: a tenth of a hash map's memory for
    /// the handful of pods most Services have, and one per pod of the cluster in all.
    pods: Box<[(Box<str>, Timestamp)]>,
}

impl ServiceState {
    fn seen(&self, pod: &str) -> Option<Timestamp> {
        let index = self
            .pods
            .binary_search_by(|(name, _)| (**name).cmp(pod))
            .ok()?;
        self.pods.get(index).map(|(_, t)| *t)
    }
}

/// What one sync learns from the tracker.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TriggerTimes {
    /// The trigger time to annotate (`None`: remove the annotation).
    pub trigger_time: Option<Timestamp>,
    /// Ready transitions first seen in this sync, for the pod-ready latency histogram.
    pub new_ready_transitions: Vec<Timestamp>,
}

/// Trigger-time state of every Service a controller has synced.
#[derive(Default)]
pub struct TriggerTimeTracker {
    services: HashMap<ObjectKey, ServiceState>,
}

impl TriggerTimeTracker {
    /// An empty tracker.
    pub fn new() -> Self {
        Self::default()
    }

    /// Computes the trigger time of a sync of `service` over `pods` and remembers what it saw.
    pub fn compute<'a>(
        &mut self,
        service: &ObjectKey,
        service_created: Option<Timestamp>,
        pods: impl IntoIterator<Item = &'a PodInfo>,
    ) -> TriggerTimes {
        let first_sync = !self.services.contains_key(service);
        let state = self.services.entry(service.clone()).or_default();
        let mut earliest: Option<Timestamp> = None;
        let mut consider = |t: Timestamp| earliest = Some(earliest.map_or(t, |e| e.min(t)));
        if first_sync {
            if let Some(created) = service_created {
                consider(created);
            }
        } else if let (Some(now), Some(before)) = (service_created, state.created)
            && now > before
        {
            consider(now);
        }
        state.created = service_created;
        let mut new_ready_transitions = Vec::new();
        let mut current: Vec<(Box<str>, Timestamp)> = Vec::with_capacity(state.pods.len());
        for pod in pods {
            let Some(transition) = pod.ready_transition_time else {
                continue;
            };
            let seen = state.seen(&pod.name);
            if seen.is_none_or(|s| transition > s) {
                if !first_sync {
                    consider(transition);
                }
                new_ready_transitions.push(transition);
            }
            current.push((pod.name.as_str().into(), transition));
        }
        // Stable, so that of two pods with one name the later one wins, as in a map.
        current.sort_by(|a, b| a.0.cmp(&b.0));
        current.dedup_by(|later, earlier| {
            let same = later.0 == earlier.0;
            if same {
                earlier.1 = later.1;
            }
            same
        });
        state.pods = current.into_boxed_slice();
        TriggerTimes {
            trigger_time: earliest,
            new_ready_transitions,
        }
    }

    /// Forgets a Service (it was deleted).
    pub fn forget(&mut self, service: &ObjectKey) {
        self.services.remove(service);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, ready_at: i64) -> PodInfo {
        PodInfo {
            name: name.into(),
            ready_transition_time: Timestamp::from_second(ready_at).ok(),
            ..PodInfo::default()
        }
    }

    fn ts(second: i64) -> Option<Timestamp> {
        Timestamp::from_second(second).ok()
    }

    #[test]
    fn first_sync_uses_service_creation_then_earliest_new_transition() {
        let key = ObjectKey::new("ns", "svc");
        let mut tracker = TriggerTimeTracker::new();
        let first = tracker.compute(&key, ts(100), &[pod("a", 150), pod("b", 160)]);
        assert_eq!(first.trigger_time, ts(100));
        let unchanged = tracker.compute(&key, ts(100), &[pod("a", 150), pod("b", 160)]);
        assert_eq!(unchanged.trigger_time, None);
        assert!(unchanged.new_ready_transitions.is_empty());
        let changed = tracker.compute(
            &key,
            ts(100),
            &[pod("a", 300), pod("b", 200), pod("c", 250)],
        );
        assert_eq!(changed.trigger_time, ts(200));
        assert_eq!(changed.new_ready_transitions.len(), 3);
        tracker.forget(&key);
        assert_eq!(tracker.compute(&key, ts(100), &[]).trigger_time, ts(100));
    }

    #[test]
    fn pods_in_any_order_are_remembered_by_name_the_later_of_two_winning() {
        let key = ObjectKey::new("ns", "svc");
        let mut tracker = TriggerTimeTracker::new();
        tracker.compute(
            &key,
            ts(100),
            &[pod("c", 150), pod("a", 150), pod("b", 150)],
        );
        let next = tracker.compute(
            &key,
            ts(100),
            &[pod("b", 150), pod("c", 170), pod("a", 150)],
        );
        assert_eq!(next.trigger_time, ts(170));
        assert_eq!(next.new_ready_transitions, [ts(170).expect("valid")]);
        let twice = tracker.compute(&key, ts(100), &[pod("a", 150), pod("a", 180)]);
        assert_eq!(twice.trigger_time, ts(180));
        let after = tracker.compute(&key, ts(100), &[pod("a", 180)]);
        assert_eq!(after.trigger_time, None);
    }

    #[test]
    fn recreated_service_with_later_creation_time_triggers() {
        let key = ObjectKey::new("ns", "svc");
        let mut tracker = TriggerTimeTracker::new();
        tracker.compute(&key, ts(100), &[]);
        assert_eq!(tracker.compute(&key, ts(400), &[]).trigger_time, ts(400));
    }
}
