//! Event validation as kube-apiserver's event strategy runs it (`ValidateEventCreate` and
//! `ValidateEventUpdate` of `k8s.io/kubernetes/pkg/apis/core/validation`): every Event passes the
//! legacy rules; one written through `events.k8s.io/v1` also the strict ones, and on update its
//! fields are immutable. Both judge the internal Event, so causes name core's fields
//! (`involvedObject`, `message`, `count`) whichever API the Event came through.

use serde_json::Value;

use crate::meta::{go_quote, qualified_name_errors};
use crate::status::{StatusCause, cause};

const REPORTING_INSTANCE_LENGTH_LIMIT: usize = 128;
const ACTION_LENGTH_LIMIT: usize = 128;
const REASON_LENGTH_LIMIT: usize = 128;
const NOTE_LENGTH_LIMIT: usize = 1024;

/// Causes for a create; `event` is in core/v1 form. `strict` (written through
/// `events.k8s.io/v1`) carries the ObjectMeta causes, which come after the legacy ones.
pub fn validate_create(event: &Value, strict: Option<Vec<StatusCause>>) -> Vec<StatusCause> {
    let mut causes = legacy(event, strict.is_some());
    let Some(meta) = strict else {
        return causes;
    };
    causes.extend(meta);
    causes.extend(series(event));
    if is_zero_time(event.get("eventTime")) {
        causes.push(required("eventTime"));
    }
    let event_type = text(event, "type");
    if event_type != "Normal" && event_type != "Warning" {
        causes.push(invalid_empty(
            "type",
            &format!("has invalid value: {event_type}"),
        ));
    }
    for time in ["firstTimestamp", "lastTimestamp"] {
        if !is_zero_time(event.get(time)) {
            causes.push(invalid_empty(time, "needs to be unset"));
        }
    }
    if count(event) != 0 {
        causes.push(invalid_empty("count", "needs to be unset"));
    }
    if !text_at(event, "/source/component").is_empty() || !text_at(event, "/source/host").is_empty()
    {
        causes.push(invalid_empty("source", "needs to be unset"));
    }
    causes
}

/// Causes for an update of `old` to `new` (both in core/v1 form); `strict` as for a create.
pub fn validate_update(
    new: &Value,
    old: &Value,
    strict: Option<Vec<StatusCause>>,
) -> Vec<StatusCause> {
    let mut causes = legacy(new, strict.is_some());
    let Some(meta) = strict else {
        return causes;
    };
    causes.extend(meta);
    if new.get("series") != old.get("series") {
        causes.extend(series(new));
    }
    // Upstream's list, `reason` twice included.
    for field in [
        "involvedObject",
        "reason",
        "message",
        "source",
        "firstTimestamp",
        "lastTimestamp",
        "count",
        "reason",
        "type",
        "eventTime",
        "action",
        "related",
        "reportingComponent",
        "reportingInstance",
    ] {
        let (a, b) = (go_value(new, field), go_value(old, field));
        // An eventTime may change below a microsecond (clients that truncate when they encode).
        let changed = if field == "eventTime" {
            microseconds(new.get(field)) != microseconds(old.get(field))
        } else {
            a != b
        };
        if changed {
            let path = if field == "reportingComponent" {
                "reportingController"
            } else {
                field
            };
            causes.push(cause(
                "FieldValueInvalid",
                path,
                format!("Invalid value: {a}: field is immutable"),
            ));
        }
    }
    causes
}

/// `legacyValidateEvent`: the involved object's namespace agrees with the Event's, and an Event
/// with an `eventTime` names its reporter, action and reason. The reporter's field is named as
/// the request's version names it.
fn legacy(event: &Value, strict: bool) -> Vec<StatusCause> {
    let reporter = if strict {
        "reportingController"
    } else {
        "reportingComponent"
    };
    let mut causes = Vec::new();
    let namespace = text_at(event, "/metadata/namespace");
    let involved = text_at(event, "/involvedObject/namespace");
    let mismatch = || {
        cause(
            "FieldValueInvalid",
            "involvedObject.namespace",
            format!(
                "Invalid value: {}: does not match event.namespace",
                go_quote(involved)
            ),
        )
    };
    if is_zero_time(event.get("eventTime")) {
        let agrees = if involved.is_empty() {
            namespace.is_empty() || namespace == "default"
        } else {
            namespace == involved
        };
        if !agrees {
            causes.push(mismatch());
        }
        return causes;
    }
    if involved.is_empty() && namespace != "default" && namespace != "kube-system" {
        causes.push(mismatch());
    }
    let controller = text(event, "reportingComponent");
    if controller.is_empty() {
        causes.push(required(reporter));
    }
    for message in qualified_name_errors(controller) {
        causes.push(cause(
            "FieldValueInvalid",
            reporter,
            format!("Invalid value: {}: {message}", go_quote(controller)),
        ));
    }
    let instance = text(event, "reportingInstance");
    if instance.is_empty() {
        causes.push(required("reportingInstance"));
    }
    if instance.len() > REPORTING_INSTANCE_LENGTH_LIMIT {
        causes.push(too_long(
            "reportingInstance",
            REPORTING_INSTANCE_LENGTH_LIMIT,
        ));
    }
    for (field, limit) in [
        ("action", ACTION_LENGTH_LIMIT),
        ("reason", REASON_LENGTH_LIMIT),
    ] {
        let value = text(event, field);
        if value.is_empty() {
            causes.push(required(field));
        }
        if value.len() > limit {
            causes.push(too_long(field, limit));
        }
    }
    if text(event, "message").len() > NOTE_LENGTH_LIMIT {
        causes.push(too_long("message", NOTE_LENGTH_LIMIT));
    }
    causes
}

/// `validateV1EventSeries`.
fn series(event: &Value) -> Vec<StatusCause> {
    let Some(series) = event.get("series").filter(|s| s.is_object()) else {
        return Vec::new();
    };
    let mut causes = Vec::new();
    if series.get("count").and_then(Value::as_i64).unwrap_or(0) < 2 {
        causes.push(invalid_empty("series.count", "should be at least 2"));
    }
    if is_zero_time(series.get("lastObservedTime")) {
        causes.push(required("series.lastObservedTime"));
    }
    causes
}

fn required(field: &str) -> StatusCause {
    cause("FieldValueRequired", field, "Required value")
}

/// `field.Invalid(path, "", detail)`, as upstream reports these rules.
fn invalid_empty(field: &str, detail: &str) -> StatusCause {
    cause(
        "FieldValueInvalid",
        field,
        format!("Invalid value: \"\": {detail}"),
    )
}

fn too_long(field: &str, limit: usize) -> StatusCause {
    invalid_empty(field, &format!("can have at most {limit} characters"))
}

fn text<'a>(event: &'a Value, field: &str) -> &'a str {
    event.get(field).and_then(Value::as_str).unwrap_or("")
}

fn text_at<'a>(event: &'a Value, pointer: &str) -> &'a str {
    event.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn count(event: &Value) -> i64 {
    event.get("count").and_then(Value::as_i64).unwrap_or(0)
}

fn is_zero_time(value: Option<&Value>) -> bool {
    value
        .and_then(Value::as_str)
        .is_none_or(|t| t.is_empty() || t.starts_with("0001-01-01T00:00:00"))
}

/// A JSON time in whole microseconds since the epoch (a zero time as `None`).
fn microseconds(value: Option<&Value>) -> Option<i128> {
    value
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<jiff::Timestamp>().ok())
        .map(|t| t.as_nanosecond().div_euclid(1000))
}

/// A field of the internal Event as `field.Invalid` prints it (apimachinery 0.34's `ErrorBody`):
/// strings quoted, numbers plain, anything else as `json.Marshal` writes it. The internal structs
/// carry no JSON tags, so their keys are Go's field names; times are their RFC 3339 JSON (a zero
/// time `null`), and a nil `related` is `null`.
fn go_value(event: &Value, field: &str) -> String {
    let value = event.get(field).unwrap_or(&Value::Null);
    match field {
        "involvedObject" => go_object_reference(value),
        "related" if value.is_null() => "null".to_string(),
        "related" => go_object_reference(value),
        "source" => go_struct(value, &[("Component", "component"), ("Host", "host")]),
        "firstTimestamp" | "lastTimestamp" | "eventTime" => go_time(field, value),
        "count" => count(event).to_string(),
        _ => go_quote(value.as_str().unwrap_or("")),
    }
}

fn go_object_reference(reference: &Value) -> String {
    go_struct(
        reference,
        &[
            ("Kind", "kind"),
            ("Namespace", "namespace"),
            ("Name", "name"),
            ("UID", "uid"),
            ("APIVersion", "apiVersion"),
            ("ResourceVersion", "resourceVersion"),
            ("FieldPath", "fieldPath"),
        ],
    )
}

/// `json.Marshal` of an untagged struct of strings: every field, in order, by its Go name.
fn go_struct(value: &Value, fields: &[(&str, &str)]) -> String {
    let mut object = serde_json::Map::new();
    for (go, json) in fields {
        object.insert(
            (*go).to_string(),
            Value::String(text(value, json).to_string()),
        );
    }
    Value::Object(object).to_string()
}

/// `json.Marshal` of a `metav1.Time` (RFC 3339 in seconds) or a `metav1.MicroTime` (`eventTime`,
/// in microseconds), in UTC; `null` when zero.
fn go_time(field: &str, value: &Value) -> String {
    let Some(t) = value
        .as_str()
        .and_then(|s| s.parse::<jiff::Timestamp>().ok())
    else {
        return "null".to_string();
    };
    let format = if field == "eventTime" {
        "%Y-%m-%dT%H:%M:%S%.6fZ"
    } else {
        "%Y-%m-%dT%H:%M:%SZ"
    };
    format!("\"{}\"", t.strftime(format))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn messages(causes: &[StatusCause]) -> Vec<String> {
        causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect()
    }

    fn strict_event() -> Value {
        json!({"metadata": {"name": "e", "namespace": "ns"},
            "eventTime": "2025-01-01T00:00:00.000000Z", "reportingComponent": "example.com/c",
            "reportingInstance": "i", "action": "Act", "reason": "Why", "type": "Normal",
            "involvedObject": {"kind": "Pod", "name": "p", "namespace": "ns"}, "message": "n",
            "source": {}, "firstTimestamp": null, "lastTimestamp": null})
    }

    #[test]
    fn legacy_events_need_their_involved_object_in_their_namespace() {
        let event = json!({"metadata": {"namespace": "ns"},
            "involvedObject": {"kind": "Pod", "name": "p", "namespace": "other"}});
        assert_eq!(
            messages(&validate_create(&event, None)),
            ["involvedObject.namespace: Invalid value: \"other\": does not match event.namespace"]
        );
        let in_default =
            json!({"metadata": {"namespace": "default"}, "involvedObject": {"kind": "Node"}});
        assert!(validate_create(&in_default, None).is_empty());
        assert!(validate_create(&strict_event(), Some(Vec::new())).is_empty());
    }

    #[test]
    fn events_v1_creates_are_held_to_the_strict_rules_in_upstreams_order() {
        let mut event = strict_event();
        event["eventTime"] = Value::Null;
        event["type"] = json!("Bogus");
        event["count"] = json!(3);
        event["source"] = json!({"component": "kubelet"});
        event["series"] = json!({"count": 1});
        assert_eq!(
            messages(&validate_create(&event, Some(Vec::new()))),
            [
                "series.count: Invalid value: \"\": should be at least 2",
                "series.lastObservedTime: Required value",
                "eventTime: Required value",
                "type: Invalid value: \"\": has invalid value: Bogus",
                "count: Invalid value: \"\": needs to be unset",
                "source: Invalid value: \"\": needs to be unset",
            ]
        );
        let mut reported = strict_event();
        reported["reportingComponent"] = json!("");
        reported["action"] = json!("");
        reported["reason"] = json!("x".repeat(129));
        assert_eq!(
            messages(&validate_create(&reported, Some(Vec::new()))),
            [
                "reportingController: Required value",
                "reportingController: Invalid value: \"\": name part must be non-empty",
                "reportingController: Invalid value: \"\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
                "action: Required value",
                "reason: Invalid value: \"\": can have at most 128 characters",
            ]
        );
    }

    #[test]
    fn events_v1_updates_keep_every_field_and_say_it_as_go_prints_it() {
        let old = strict_event();
        let mut new = old.clone();
        new["message"] = json!("changed");
        new["reason"] = json!("Other");
        new["involvedObject"]["name"] = json!("q");
        new["related"] = json!({"kind": "Node", "name": "n"});
        new["eventTime"] = json!("2025-01-01T00:00:01.5Z");
        assert_eq!(
            messages(&validate_update(&new, &old, Some(Vec::new()))),
            [
                r#"involvedObject: Invalid value: {"Kind":"Pod","Namespace":"ns","Name":"q","UID":"","APIVersion":"","ResourceVersion":"","FieldPath":""}: field is immutable"#,
                "reason: Invalid value: \"Other\": field is immutable",
                "message: Invalid value: \"changed\": field is immutable",
                "reason: Invalid value: \"Other\": field is immutable",
                r#"eventTime: Invalid value: "2025-01-01T00:00:01.500000Z": field is immutable"#,
                r#"related: Invalid value: {"Kind":"Node","Namespace":"","Name":"n","UID":"","APIVersion":"","ResourceVersion":"","FieldPath":""}: field is immutable"#,
            ]
        );
        assert!(validate_update(&new, &old, None).is_empty());
        let mut below_a_microsecond = old.clone();
        below_a_microsecond["eventTime"] = json!("2025-01-01T00:00:00.0000004Z");
        assert!(validate_update(&below_a_microsecond, &old, Some(Vec::new())).is_empty());
    }
}
