//! Server-side printing: the `Table` columns and cells kube-apiserver's printers produce for each
//! kind (pkg/printers/internalversion), so `kubectl get` shows what it shows against a cluster.
//!
//! Every function here is pure: objects are JSON, the current time is a parameter.

mod core;
mod custom;
mod other;

use jiff::Timestamp;
use serde_json::{Value, json};

pub use custom::{CustomColumn, custom_columns, custom_resource_cells};
pub(crate) use other::format_label_selector;

/// One column of a `Table`, as `metav1.TableColumnDefinition`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Header text; kubectl upper-cases it.
    pub name: &'static str,
    /// OpenAPI type of the cells: `string`, `integer`, `boolean`, `date`, ...
    pub kind: &'static str,
    /// `name` for the name column, else empty.
    pub format: &'static str,
    /// What the column shows.
    pub description: &'static str,
    /// 0: always shown; 1: only with `-o wide`.
    pub priority: u8,
}

impl Column {
    /// The JSON form of the column definition.
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.kind,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

pub(crate) const NAME_DOC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
pub(crate) const AGE_DOC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

pub(crate) const fn col(name: &'static str, description: &'static str) -> Column {
    Column {
        name,
        kind: "string",
        format: "",
        description,
        priority: 0,
    }
}

pub(crate) const fn wide(name: &'static str, description: &'static str) -> Column {
    Column {
        name,
        kind: "string",
        format: "",
        description,
        priority: 1,
    }
}

pub(crate) const fn int_col(name: &'static str, description: &'static str) -> Column {
    Column {
        name,
        kind: "integer",
        format: "",
        description,
        priority: 0,
    }
}

pub(crate) const NAME: Column = Column {
    name: "Name",
    kind: "string",
    format: "name",
    description: NAME_DOC,
    priority: 0,
};
pub(crate) const AGE: Column = col("Age", AGE_DOC);

/// The printer for a kind: its columns and how to fill one row.
pub struct Printer {
    /// Column definitions, wide ones included (the server always prints wide; kubectl hides
    /// priority-1 columns unless `-o wide`).
    pub columns: &'static [Column],
    /// Cells of one object, one per column.
    pub cells: fn(&Value, Timestamp) -> Vec<Value>,
}

/// The built-in printer for `group`/`kind`; `None` means the default `Name, Created At` table.
pub fn printer_for(group: &str, kind: &str) -> Option<Printer> {
    let p = |columns: &'static [Column], cells: fn(&Value, Timestamp) -> Vec<Value>| {
        Some(Printer { columns, cells })
    };
    match (group, kind) {
        ("", "Service") => p(core::SERVICE_COLUMNS, core::service_cells),
        ("", "Pod") => p(core::POD_COLUMNS, core::pod_cells),
        ("", "Endpoints") => p(core::ENDPOINTS_COLUMNS, core::endpoints_cells),
        ("", "Node") => p(core::NODE_COLUMNS, core::node_cells),
        ("", "Namespace") => p(core::NAMESPACE_COLUMNS, core::namespace_cells),
        ("", "ConfigMap") => p(core::CONFIGMAP_COLUMNS, core::configmap_cells),
        ("", "Secret") => p(core::SECRET_COLUMNS, core::secret_cells),
        ("", "ServiceAccount") => p(core::SERVICE_ACCOUNT_COLUMNS, core::service_account_cells),
        ("", "Event") => p(core::EVENT_COLUMNS, core::event_cells),
        ("events.k8s.io", "Event") => p(core::EVENT_COLUMNS, core::events_v1_cells),
        ("discovery.k8s.io", "EndpointSlice") => {
            p(other::ENDPOINT_SLICE_COLUMNS, other::endpoint_slice_cells)
        }
        ("coordination.k8s.io", "Lease") => p(other::LEASE_COLUMNS, other::lease_cells),
        ("networking.k8s.io", "IPAddress") => p(other::IP_ADDRESS_COLUMNS, other::ip_address_cells),
        ("networking.k8s.io", "ServiceCIDR") => {
            p(other::SERVICE_CIDR_COLUMNS, other::service_cidr_cells)
        }
        ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration")
        | ("admissionregistration.k8s.io", "MutatingWebhookConfiguration") => {
            p(other::WEBHOOK_COLUMNS, other::webhook_cells)
        }
        ("apps", "Deployment") => p(other::DEPLOYMENT_COLUMNS, other::deployment_cells),
        ("apps", "ReplicaSet") => p(other::REPLICA_SET_COLUMNS, other::replica_set_cells),
        _ => None,
    }
}

/// The default table of resources without a printer (`rest.NewDefaultTableConvertor`).
pub const DEFAULT_COLUMNS: &[Column] = &[
    NAME,
    Column {
        name: "Created At",
        kind: "date",
        format: "",
        description: "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
        priority: 0,
    },
];

/// Cells of the default table: the name and the creation time in RFC 3339.
pub fn default_cells(obj: &Value, _now: Timestamp) -> Vec<Value> {
    let created = timestamp(obj.pointer("/metadata/creationTimestamp"))
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| "0001-01-01T00:00:00Z".to_string());
    vec![json!(name_of(obj)), json!(created)]
}

pub(crate) fn name_of(obj: &Value) -> &str {
    str_at(obj, "/metadata/name")
}

pub(crate) fn str_at<'a>(obj: &'a Value, pointer: &str) -> &'a str {
    obj.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

pub(crate) fn array_at<'a>(obj: &'a Value, pointer: &str) -> &'a [Value] {
    obj.pointer(pointer)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

pub(crate) fn object_len(obj: &Value, pointer: &str) -> usize {
    obj.pointer(pointer)
        .and_then(Value::as_object)
        .map_or(0, serde_json::Map::len)
}

pub(crate) fn timestamp(v: Option<&Value>) -> Option<Timestamp> {
    v.and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .and_then(|s| s.parse::<Timestamp>().ok())
}

/// `translateTimestampSince`: the age of a timestamp, `<unknown>` when unset.
pub fn age_since(v: Option<&Value>, now: Timestamp) -> String {
    match timestamp(v) {
        Some(t) => human_duration(
            now.as_second() - t.as_second(),
            now.subsec_nanosecond() < t.subsec_nanosecond(),
        ),
        None => "<unknown>".to_string(),
    }
}

/// The age cell of an object.
pub(crate) fn age_of(obj: &Value, now: Timestamp) -> Value {
    json!(age_since(obj.pointer("/metadata/creationTimestamp"), now))
}

/// `duration.HumanDuration` over whole seconds (`borrow` when the sub-second part makes the
/// difference one second shorter, as Go's truncation of a Duration does).
pub fn human_duration(mut seconds: i64, borrow: bool) -> String {
    if borrow {
        seconds -= 1;
    }
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    if seconds < 0 {
        return "0s".to_string();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        if s == 0 {
            return format!("{minutes}m");
        }
        return format!("{minutes}m{s}s");
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        if m == 0 {
            return format!("{hours}h");
        }
        return format!("{hours}h{m}m");
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        if h == 0 {
            return format!("{}d", hours / 24);
        }
        return format!("{}d{}h", hours / 24, h);
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        if dy == 0 {
            return format!("{}y", hours / 24 / 365);
        }
        return format!("{}y{}d", hours / 24 / 365, dy);
    }
    format!("{}y", hours / 24 / 365)
}

/// `labels.FormatLabels` / `labels.SelectorFromSet(...).String()`: sorted `k=v` pairs, `<none>`
/// when empty.
pub(crate) fn format_labels(map: Option<&Value>) -> String {
    let Some(m) = map.and_then(Value::as_object) else {
        return "<none>".to_string();
    };
    let mut pairs: Vec<String> = m
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    if pairs.is_empty() {
        return "<none>".to_string();
    }
    pairs.sort();
    pairs.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations_match_upstream() {
        let cases: &[(i64, &str)] = &[
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (5, "5s"),
            (119, "119s"),
            (120, "2m"),
            (182, "3m2s"),
            (600, "10m"),
            (179 * 60 + 59, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 5 * 60, "3h5m"),
            (8 * 3600, "8h"),
            (47 * 3600, "47h"),
            (48 * 3600, "2d"),
            (49 * 3600, "2d1h"),
            (8 * 24 * 3600, "8d"),
            (2 * 365 * 24 * 3600, "2y"),
            (2 * 365 * 24 * 3600 + 24 * 3600, "2y1d"),
            (9 * 365 * 24 * 3600, "9y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(*secs, false), *want, "{secs}s");
        }
        assert_eq!(human_duration(120, true), "119s");
    }

    #[test]
    fn ages_read_creation_timestamps() {
        let now: Timestamp = "2026-01-01T00:03:02Z".parse().unwrap();
        assert_eq!(age_since(Some(&json!("2026-01-01T00:00:00Z")), now), "3m2s");
        assert_eq!(age_since(None, now), "<unknown>");
        let obj = json!({"metadata": {"name": "x", "creationTimestamp": "2026-01-01T00:00:00Z"}});
        assert_eq!(
            default_cells(&obj, now),
            vec![json!("x"), json!("2026-01-01T00:00:00Z")]
        );
    }

    #[test]
    fn labels_format_sorted() {
        assert_eq!(format_labels(Some(&json!({"b": "2", "a": "1"}))), "a=1,b=2");
        assert_eq!(format_labels(Some(&json!({}))), "<none>");
        assert_eq!(format_labels(None), "<none>");
    }
}
