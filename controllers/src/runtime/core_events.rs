//! Events as kube-controller-manager's controllers write them: core/v1 Events from client-go's
//! `record` package (`event.go`, `events_cache.go`), not the events.k8s.io API. `kubectl describe`
//! and the `SOURCE` column of `kubectl get events` read these fields, and a server that stores the
//! two APIs apart (testenv) shows only what was written here.
//!
//! [`make_event`] builds an event as `recorderImpl.makeEvent` does; [`Correlator`] is the
//! `EventCorrelator`: a spam filter (per source and object, a token bucket of 25 refilled at one
//! per 5 minutes), an aggregator (from the 10th distinct message of one reason in 10 minutes on,
//! one event "(combined from similar events): …") and a de-duplicator (a repeat becomes a patch
//! of the first one's count, lastTimestamp and message). Its caches keep 4,096 keys each, as
//! upstream's LRUs do; the oldest key goes first (upstream drops the least recently used).

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde_json::{Value, json};

const CACHE_ENTRIES: usize = 4096;
const AGGREGATE_MAX_EVENTS: usize = 10;
const AGGREGATE_INTERVAL_SECONDS: i64 = 600;
const SPAM_BURST: f64 = 25.0;
const SPAM_QPS: f64 = 1.0 / 300.0;

/// What to send to the API server for one recorded event.
#[derive(Clone, Debug, PartialEq)]
pub enum EventWrite {
    /// A new event.
    Create(Box<Event>),
    /// A repeat: a strategic-merge patch of the event first written for it.
    Patch {
        /// The event as patched: what is created instead when the first one is gone.
        event: Box<Event>,
        /// The event's namespace.
        namespace: String,
        /// The name of the event first written.
        name: String,
        /// `count`, `lastTimestamp` and `message`.
        patch: Value,
    },
}

/// The event client-go's recorder makes for `reference` (its namespace, or `default`).
pub fn make_event(
    reference: ObjectReference,
    warning: bool,
    reason: &str,
    message: String,
    component: &str,
    now: Timestamp,
) -> Event {
    let namespace = reference
        .namespace
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "default".to_owned());
    let name = event_name(reference.name.as_deref().unwrap_or_default(), now);
    let time = Time(now);
    Event {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(namespace),
            ..ObjectMeta::default()
        },
        involved_object: reference,
        reason: Some(reason.to_owned()),
        message: Some(message),
        first_timestamp: Some(time.clone()),
        last_timestamp: Some(time),
        count: Some(1),
        type_: Some(if warning { "Warning" } else { "Normal" }.to_owned()),
        source: Some(EventSource {
            component: Some(component.to_owned()),
            host: None,
        }),
        reporting_component: Some(component.to_owned()),
        reporting_instance: Some(String::new()),
        ..Event::default()
    }
}

/// `util.GenerateEventName`: the object's name and the time in hexadecimal nanoseconds.
fn event_name(object: &str, now: Timestamp) -> String {
    format!("{object}.{:x}", now.as_nanosecond())
}

/// A map of at most [`CACHE_ENTRIES`] keys; the oldest inserted goes first.
struct Bounded<K, V> {
    values: HashMap<K, V>,
    order: VecDeque<K>,
}

impl<K: Clone + Eq + Hash, V> Default for Bounded<K, V> {
    fn default() -> Self {
        Bounded {
            values: HashMap::new(),
            order: VecDeque::new(),
        }
    }
}

impl<K: Clone + Eq + Hash, V> Bounded<K, V> {
    fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.values.get_mut(key)
    }

    fn insert(&mut self, key: K, value: V) {
        if self.values.insert(key.clone(), value).is_none() {
            self.order.push_back(key);
            while self.order.len() > CACHE_ENTRIES {
                if let Some(oldest) = self.order.pop_front() {
                    self.values.remove(&oldest);
                }
            }
        }
    }
}

struct SpamBucket {
    tokens: f64,
    last: Timestamp,
}

struct AggregateRecord {
    messages: HashSet<String>,
    last: Timestamp,
}

#[derive(Clone)]
struct Observation {
    count: i32,
    first_timestamp: Option<Time>,
    name: String,
}

/// client-go's `EventCorrelator` with its defaults.
#[derive(Default)]
pub struct Correlator {
    spam: Bounded<String, SpamBucket>,
    aggregates: Bounded<String, AggregateRecord>,
    observed: Bounded<String, Observation>,
}

impl Correlator {
    /// What to write for `event` recorded at `now`; `None` when the spam filter drops it.
    pub fn correlate(&mut self, event: Event, now: Timestamp) -> Option<EventWrite> {
        let (event, key) = self.aggregate(event, now);
        let (event, patch) = self.observe(event, &key);
        if !self.allowed(&spam_key(&event), now) {
            return None;
        }
        Some(match patch {
            None => EventWrite::Create(Box::new(event)),
            Some(patch) => EventWrite::Patch {
                namespace: event.metadata.namespace.clone().unwrap_or_default(),
                name: event.metadata.name.clone().unwrap_or_default(),
                event: Box::new(event),
                patch,
            },
        })
    }

    /// Remembers the event as the server stored it (its name), as `UpdateState` does.
    pub fn stored(&mut self, event: &Event) {
        self.observed.insert(
            event_key(event),
            Observation {
                count: event.count.unwrap_or(1),
                first_timestamp: event.first_timestamp.clone(),
                name: event.metadata.name.clone().unwrap_or_default(),
            },
        );
    }

    /// `EventAggregate`: the event itself, keyed by everything, until the 10th distinct message
    /// of its kind in 10 minutes; from then on one combined event, keyed by its kind.
    fn aggregate(&mut self, event: Event, now: Timestamp) -> (Event, String) {
        let key = event_key(&event);
        let aggregate_key = aggregate_key(&event);
        let message = event.message.clone().unwrap_or_default();
        let fresh = |now| AggregateRecord {
            messages: HashSet::new(),
            last: now,
        };
        let mut record = self
            .aggregates
            .values
            .remove(&aggregate_key)
            .filter(|r| now.as_second() - r.last.as_second() <= AGGREGATE_INTERVAL_SECONDS)
            .unwrap_or_else(|| fresh(now));
        record.messages.insert(message.clone());
        record.last = now;
        let over = record.messages.len() >= AGGREGATE_MAX_EVENTS;
        if over {
            // Upstream drops one key at random to stay at the maximum.
            if let Some(any) = record.messages.iter().next().cloned() {
                record.messages.remove(&any);
            }
        }
        self.aggregates.insert(aggregate_key.clone(), record);
        if !over {
            return (event, key);
        }
        let time = Time(now);
        let combined = Event {
            metadata: ObjectMeta {
                name: Some(event_name(
                    event.involved_object.name.as_deref().unwrap_or_default(),
                    now,
                )),
                namespace: event.metadata.namespace.clone(),
                ..ObjectMeta::default()
            },
            count: Some(1),
            first_timestamp: Some(time.clone()),
            last_timestamp: Some(time),
            message: Some(format!("(combined from similar events): {message}")),
            involved_object: event.involved_object.clone(),
            type_: event.type_.clone(),
            reason: event.reason.clone(),
            source: event.source.clone(),
            ..Event::default()
        };
        (combined, aggregate_key)
    }

    /// `eventObserve`: a repeat of an event seen under `key` becomes a patch of the first one
    /// (its name, first timestamp and the count so far); the event is returned as patched.
    fn observe(&mut self, mut event: Event, key: &str) -> (Event, Option<Value>) {
        let key = key.to_owned();
        let patch = match self.observed.get_mut(&key) {
            Some(seen) => {
                seen.count += 1;
                event.metadata.name = Some(seen.name.clone());
                event.first_timestamp = seen.first_timestamp.clone();
                event.count = Some(seen.count);
                // CreateTwoWayMergePatch against the event with no count, lastTimestamp and
                // message: exactly these three fields.
                let mut patch = json!({"count": seen.count});
                if let Some(last) = &event.last_timestamp {
                    patch["lastTimestamp"] = json!(last);
                }
                if let Some(message) = event.message.as_deref().filter(|m| !m.is_empty()) {
                    patch["message"] = json!(message);
                }
                Some(patch)
            }
            None => {
                self.observed.insert(
                    key,
                    Observation {
                        count: event.count.unwrap_or(1),
                        first_timestamp: event.first_timestamp.clone(),
                        name: event.metadata.name.clone().unwrap_or_default(),
                    },
                );
                None
            }
        };
        (event, patch)
    }

    /// The spam filter: a token bucket per source and object.
    fn allowed(&mut self, key: &str, now: Timestamp) -> bool {
        let key = key.to_owned();
        let bucket = match self.spam.get_mut(&key) {
            Some(bucket) => bucket,
            None => {
                self.spam.insert(
                    key.clone(),
                    SpamBucket {
                        tokens: SPAM_BURST,
                        last: now,
                    },
                );
                match self.spam.get_mut(&key) {
                    Some(bucket) => bucket,
                    None => return true,
                }
            }
        };
        let elapsed = now.duration_since(bucket.last).as_secs_f64().max(0.0);
        bucket.tokens = (bucket.tokens + elapsed * SPAM_QPS).min(SPAM_BURST);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

fn text(value: Option<&String>) -> &str {
    value.map_or("", String::as_str)
}

/// The source, the involved object and the type, in the order client-go's keys join them;
/// `getEventKey` alone also has the object's fieldPath.
fn source_object_and_type(event: &Event, with_field_path: bool) -> Vec<&str> {
    let source = event.source.as_ref();
    let o = &event.involved_object;
    let mut parts = vec![
        source.map_or("", |s| text(s.component.as_ref())),
        source.map_or("", |s| text(s.host.as_ref())),
        text(o.kind.as_ref()),
        text(o.namespace.as_ref()),
        text(o.name.as_ref()),
    ];
    if with_field_path {
        parts.push(text(o.field_path.as_ref()));
    }
    parts.extend([
        text(o.uid.as_ref()),
        text(o.api_version.as_ref()),
        text(event.type_.as_ref()),
    ]);
    parts
}

/// `getEventKey`: source, object, type, reason and message.
fn event_key(event: &Event) -> String {
    let mut parts = source_object_and_type(event, true);
    parts.extend([text(event.reason.as_ref()), text(event.message.as_ref())]);
    parts.concat()
}

/// `getSpamKey`: source, object and type.
fn spam_key(event: &Event) -> String {
    source_object_and_type(event, false).concat()
}

/// `EventAggregatorByReasonFunc`: everything but the message.
fn aggregate_key(event: &Event) -> String {
    let mut parts = source_object_and_type(event, false);
    parts.extend([
        text(event.reason.as_ref()),
        text(event.reporting_component.as_ref()),
        text(event.reporting_instance.as_ref()),
    ]);
    parts.concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(name: &str) -> ObjectReference {
        ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Service".into()),
            name: Some(name.into()),
            namespace: Some("ns".into()),
            uid: Some("u-1".into()),
            ..ObjectReference::default()
        }
    }

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + second).unwrap()
    }

    fn event(name: &str, message: &str, second: i64) -> Event {
        make_event(
            reference(name),
            true,
            "FailedToUpdateEndpointSlices",
            message.to_owned(),
            "endpoint-slice-controller",
            at(second),
        )
    }

    #[test]
    fn an_event_is_made_as_client_go_s_recorder_makes_it() {
        let e = event("web", "boom", 0);
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            json!({
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": format!("web.{:x}", at(0).as_nanosecond()), "namespace": "ns"},
                "involvedObject": {"apiVersion": "v1", "kind": "Service", "name": "web",
                                   "namespace": "ns", "uid": "u-1"},
                "reason": "FailedToUpdateEndpointSlices",
                "message": "boom",
                "firstTimestamp": "2027-01-15T08:00:00Z",
                "lastTimestamp": "2027-01-15T08:00:00Z",
                "count": 1,
                "type": "Warning",
                "source": {"component": "endpoint-slice-controller"},
                "reportingComponent": "endpoint-slice-controller",
                "reportingInstance": "",
            })
        );
        let mut cluster_scoped = reference("node-a");
        cluster_scoped.namespace = None;
        let e = make_event(cluster_scoped, false, "R", "m".into(), "c", at(0));
        assert_eq!(e.metadata.namespace.as_deref(), Some("default"));
        assert_eq!(e.type_.as_deref(), Some("Normal"));
    }

    #[test]
    fn a_repeat_patches_the_first_event_s_count_time_and_message() {
        let mut c = Correlator::default();
        let first = c.correlate(event("web", "boom", 0), at(0)).unwrap();
        let EventWrite::Create(created) = first else {
            panic!("{first:?}")
        };
        let name = created.metadata.name.clone().unwrap();
        for (second, count) in [(5, 2), (9, 3)] {
            match c
                .correlate(event("web", "boom", second), at(second))
                .unwrap()
            {
                EventWrite::Patch {
                    name: patched,
                    patch,
                    event,
                    ..
                } => {
                    assert_eq!(patched, name);
                    assert_eq!(
                        patch,
                        json!({"count": count, "lastTimestamp": Time(at(second)),
                               "message": "boom"})
                    );
                    assert_eq!(event.first_timestamp, Some(Time(at(0))));
                }
                other => panic!("{other:?}"),
            }
        }
        // Another message, object or reason is another event.
        assert!(matches!(
            c.correlate(event("web", "other", 10), at(10)),
            Some(EventWrite::Create(_))
        ));
        assert!(matches!(
            c.correlate(event("db", "boom", 10), at(10)),
            Some(EventWrite::Create(_))
        ));
    }

    #[test]
    fn the_tenth_distinct_message_of_a_reason_in_ten_minutes_is_combined() {
        let mut c = Correlator::default();
        for i in 0..9 {
            let write = c.correlate(event("web", &format!("m{i}"), i), at(i));
            assert!(matches!(write, Some(EventWrite::Create(_))), "{i}");
        }
        let Some(EventWrite::Create(combined)) = c.correlate(event("web", "m9", 9), at(9)) else {
            panic!("the tenth message is combined into a new event")
        };
        assert_eq!(
            combined.message.as_deref(),
            Some("(combined from similar events): m9")
        );
        assert_eq!(combined.reporting_component, None);
        // Further messages patch the combined event.
        let Some(EventWrite::Patch { name, patch, .. }) =
            c.correlate(event("web", "m10", 10), at(10))
        else {
            panic!("the combined event counts on")
        };
        assert_eq!(Some(name), combined.metadata.name);
        assert_eq!(patch["count"], 2);
        assert_eq!(patch["message"], "(combined from similar events): m10");

        // Eleven minutes later the count of distinct messages starts again.
        let later = 10 + 11 * 60;
        assert!(matches!(
            c.correlate(event("web", "m11", later), at(later)),
            Some(EventWrite::Create(e)) if e.message.as_deref() == Some("m11")
        ));
    }

    #[test]
    fn an_object_gets_25_events_then_one_per_five_minutes() {
        let mut c = Correlator::default();
        let written = (0..30)
            .filter(|_| c.correlate(event("web", "boom", 0), at(0)).is_some())
            .count();
        assert_eq!(written, 25);
        assert!(c.correlate(event("web", "boom", 299), at(299)).is_none());
        assert!(c.correlate(event("web", "boom", 301), at(301)).is_some());
        // Another object has its own bucket.
        assert!(c.correlate(event("db", "boom", 301), at(301)).is_some());
    }

    #[test]
    fn caches_keep_at_most_their_size() {
        let mut map: Bounded<usize, ()> = Bounded::default();
        for i in 0..CACHE_ENTRIES + 10 {
            map.insert(i, ());
        }
        assert_eq!(map.values.len(), CACHE_ENTRIES);
        assert!(map.get_mut(&0).is_none());
        assert!(map.get_mut(&(CACHE_ENTRIES + 9)).is_some());
    }
}
