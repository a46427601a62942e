//! Kinds kube-apiserver serves through two API groups from one storage.
//!
//! An Event written through `events.k8s.io/v1` is a core Event in etcd: both REST storages are
//! the core event registry, so the Event is listed, watched and read through `/api/v1` as well,
//! and a core Event through `events.k8s.io/v1`, with one resourceVersion sequence. Its fields are
//! converted as `k8s.io/kubernetes/pkg/apis/events/v1`'s conversion functions do (`regarding` is
//! `involvedObject`, `note` is `message`, the `deprecated*` fields are the core ones), and written
//! back as Go encodes the version asked for. Field selectors of `events.k8s.io/v1` name the
//! version's fields and select on the stored ones.

use serde_json::{Map, Value, json};

use crate::resources::ResourceType;
use crate::selector::FieldSelector;
use crate::store::CollectionKey;

/// `events.k8s.io/v1` field → core/v1 field, where the names differ.
const EVENT_FIELDS: [(&str, &str); 7] = [
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
    ("reportingController", "reportingComponent"),
];

/// Whether `rt`'s objects are stored as another resource's and converted on every read and write.
pub fn converts(rt: &ResourceType) -> bool {
    rt.group == "events.k8s.io" && rt.plural == "events"
}

/// The collection `rt`'s objects are stored in.
pub fn storage_collection(rt: &ResourceType) -> CollectionKey {
    if converts(rt) {
        CollectionKey::new("", "events")
    } else {
        CollectionKey::new(&rt.group, &rt.plural)
    }
}

/// The group of the kind a 422 names: kube-apiserver's registry judges the stored kind, so an
/// invalid `events.k8s.io/v1` Event is an invalid core `Event`.
pub fn judged_group(rt: &ResourceType) -> &str {
    if converts(rt) { "" } else { &rt.group }
}

/// `obj`, written through `rt`, as it is stored.
pub fn to_storage(rt: &ResourceType, obj: Value) -> Value {
    if !converts(rt) {
        return obj;
    }
    let Value::Object(event) = obj else {
        return obj;
    };
    let mut core = convert_fields(event, "v1", core_series, |key| {
        EVENT_FIELDS
            .iter()
            .find(|(v1, _)| *v1 == key)
            .map(|(_, core)| *core)
    });
    drop_zero(&mut core, &["message", "count"]);
    let mut core = Value::Object(core);
    crate::defaults::fill_event_zero_values(&mut core);
    core
}

/// A stored object as `rt`'s version shows it (an object already in that version is returned as
/// it is).
pub fn from_storage(rt: &ResourceType, obj: Value) -> Value {
    if !converts(rt) || obj.get("apiVersion").and_then(Value::as_str) != Some("v1") {
        return obj;
    }
    let Value::Object(core) = obj else {
        return obj;
    };
    let mut event = convert_fields(core, &rt.api_version(), events_v1_series, |key| {
        EVENT_FIELDS
            .iter()
            .find(|(_, core)| *core == key)
            .map(|(v1, _)| *v1)
    });
    // Go's encoding of events/v1.Event: empty strings and a zero count are `omitempty`; the two
    // structs are always written, the times as null when zero.
    drop_zero(
        &mut event,
        &[
            "reportingController",
            "reportingInstance",
            "action",
            "reason",
            "note",
            "type",
            "deprecatedCount",
        ],
    );
    for (key, zero) in [
        ("eventTime", Value::Null),
        ("regarding", json!({})),
        ("deprecatedSource", json!({})),
        ("deprecatedFirstTimestamp", Value::Null),
        ("deprecatedLastTimestamp", Value::Null),
    ] {
        event.entry(key).or_insert(zero);
    }
    Value::Object(event)
}

/// Drops the managedFields entries of versions `rt`'s endpoint cannot convert an object to.
/// kube-apiserver's field manager for core Events finds the `events.k8s.io` versions missing
/// when it converts, and deletes their managers on every write through `/api/v1`; a write through
/// `events.k8s.io/v1` keeps core's.
pub fn drop_unconvertible_managers(rt: &ResourceType, obj: &mut Value) {
    if !(rt.group.is_empty() && rt.plural == "events") {
        return;
    }
    if let Some(entries) = obj
        .pointer_mut("/metadata/managedFields")
        .and_then(Value::as_array_mut)
    {
        entries.retain(|entry| {
            !entry
                .get("apiVersion")
                .and_then(Value::as_str)
                .is_some_and(|v| v.starts_with("events.k8s.io/"))
        });
    }
}

/// `fields`, which name `rt`'s fields, as selectors of the stored objects' fields.
pub fn storage_fields(rt: &ResourceType, fields: FieldSelector) -> FieldSelector {
    if !converts(rt) {
        return fields;
    }
    fields.renamed(|field| {
        let (head, rest) = field.split_once('.').unwrap_or((field, ""));
        let core = EVENT_FIELDS
            .iter()
            .find(|(v1, _)| *v1 == head)
            .map_or(head, |(_, core)| core);
        if rest.is_empty() {
            core.to_string()
        } else {
            format!("{core}.{rest}")
        }
    })
}

/// `object`'s fields in another version: `apiVersion` set, `series` rewritten by `series`, and
/// each other field under the name `rename` gives it (its own when none).
fn convert_fields(
    object: Map<String, Value>,
    api_version: &str,
    series: fn(Value) -> Value,
    rename: impl Fn(&str) -> Option<&'static str>,
) -> Map<String, Value> {
    object
        .into_iter()
        .map(|(key, value)| match key.as_str() {
            "apiVersion" => (key, json!(api_version)),
            "series" => (key, series(value)),
            _ => match rename(&key) {
                Some(name) => (name.to_string(), value),
                None => (key, value),
            },
        })
        .collect()
}

/// A core `EventSeries` (both fields `omitempty`) from an `events.k8s.io/v1` one.
fn core_series(series: Value) -> Value {
    match series {
        Value::Object(mut s) => {
            drop_zero(&mut s, &["count"]);
            if s.get("lastObservedTime").is_some_and(Value::is_null) {
                s.remove("lastObservedTime");
            }
            Value::Object(s)
        }
        other => other,
    }
}

/// An `events.k8s.io/v1` `EventSeries` (neither field `omitempty`) from a core one.
fn events_v1_series(series: Value) -> Value {
    match series {
        Value::Object(mut s) => {
            s.entry("count").or_insert(json!(0));
            s.entry("lastObservedTime").or_insert(Value::Null);
            Value::Object(s)
        }
        other => other,
    }
}

/// Removes the `keys` whose value is Go's zero (an empty string, 0 or null), as `omitempty` does.
fn drop_zero(object: &mut Map<String, Value>, keys: &[&str]) {
    for key in keys {
        let zero = match object.get(*key) {
            Some(Value::String(s)) => s.is_empty(),
            Some(Value::Number(n)) => n.as_f64() == Some(0.0),
            Some(Value::Null) => true,
            _ => false,
        };
        if zero {
            object.remove(*key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::ResourceTable;

    fn events_v1() -> std::sync::Arc<ResourceType> {
        ResourceTable::builtin()
            .get("events.k8s.io", "v1", "events")
            .unwrap()
    }

    fn core_events() -> std::sync::Arc<ResourceType> {
        ResourceTable::builtin().get("", "v1", "events").unwrap()
    }

    #[test]
    fn an_events_v1_event_is_stored_as_a_core_event() {
        let written = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "e", "namespace": "ns"},
            "eventTime": "2025-01-01T00:00:00.000000Z", "reportingController": "example.com/c",
            "reportingInstance": "i", "action": "Act", "reason": "Why", "type": "Normal",
            "regarding": {"kind": "Pod", "name": "p", "namespace": "ns"}, "note": "n",
            "series": {"count": 2, "lastObservedTime": "2025-01-01T00:00:01.000000Z"}});
        let stored = to_storage(&events_v1(), written.clone());
        assert_eq!(
            stored,
            json!({"apiVersion": "v1", "kind": "Event",
                "metadata": {"name": "e", "namespace": "ns"},
                "eventTime": "2025-01-01T00:00:00.000000Z", "reportingComponent": "example.com/c",
                "reportingInstance": "i", "action": "Act", "reason": "Why", "type": "Normal",
                "involvedObject": {"kind": "Pod", "name": "p", "namespace": "ns"}, "message": "n",
                "series": {"count": 2, "lastObservedTime": "2025-01-01T00:00:01.000000Z"},
                "source": {}, "firstTimestamp": null, "lastTimestamp": null})
        );
        let read = from_storage(&events_v1(), stored);
        let mut expected = written;
        expected["deprecatedSource"] = json!({});
        expected["deprecatedFirstTimestamp"] = Value::Null;
        expected["deprecatedLastTimestamp"] = Value::Null;
        assert_eq!(read, expected);
    }

    #[test]
    fn a_core_event_reads_as_events_v1_with_gos_zero_values() {
        let core = json!({"apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "e", "namespace": "ns"},
            "involvedObject": {"kind": "Pod", "name": "p"}, "reason": "Started",
            "message": "started", "source": {"component": "kubelet"},
            "firstTimestamp": "2025-01-01T00:00:00Z", "lastTimestamp": "2025-01-01T00:00:00Z",
            "count": 1, "type": "Normal", "eventTime": null, "reportingComponent": "",
            "reportingInstance": ""});
        assert_eq!(
            from_storage(&events_v1(), core),
            json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
                "metadata": {"name": "e", "namespace": "ns"},
                "regarding": {"kind": "Pod", "name": "p"}, "reason": "Started", "note": "started",
                "deprecatedSource": {"component": "kubelet"},
                "deprecatedFirstTimestamp": "2025-01-01T00:00:00Z",
                "deprecatedLastTimestamp": "2025-01-01T00:00:00Z", "deprecatedCount": 1,
                "type": "Normal", "eventTime": null})
        );
    }

    #[test]
    fn other_resources_and_core_reads_are_left_alone() {
        let core = json!({"apiVersion": "v1", "kind": "Event", "message": "m"});
        assert_eq!(from_storage(&core_events(), core.clone()), core);
        assert_eq!(to_storage(&core_events(), core.clone()), core);
        assert_eq!(
            storage_collection(&events_v1()),
            storage_collection(&core_events())
        );
    }

    #[test]
    fn writes_through_core_drop_the_managers_of_events_v1() {
        let event = json!({"metadata": {"managedFields": [
            {"manager": "a", "operation": "Update", "apiVersion": "events.k8s.io/v1"},
            {"manager": "b", "operation": "Update", "apiVersion": "v1"}]}});
        let mut through_core = event.clone();
        drop_unconvertible_managers(&core_events(), &mut through_core);
        assert_eq!(
            through_core["metadata"]["managedFields"],
            json!([{"manager": "b", "operation": "Update", "apiVersion": "v1"}])
        );
        let mut through_v1 = event.clone();
        drop_unconvertible_managers(&events_v1(), &mut through_v1);
        assert_eq!(through_v1, event);
    }

    #[test]
    fn events_v1_field_selectors_select_the_stored_fields() {
        let fields = FieldSelector::parse(
            "regarding.name=p,reportingController=c,reason=Why,metadata.name=e",
        )
        .unwrap();
        let renamed: Vec<String> = storage_fields(&events_v1(), fields)
            .fields()
            .map(String::from)
            .collect();
        assert_eq!(
            renamed,
            [
                "involvedObject.name",
                "reportingComponent",
                "reason",
                "metadata.name"
            ]
        );
    }
}
