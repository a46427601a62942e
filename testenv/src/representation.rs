//! How objects are rendered for the client's Accept header: JSON, `Table` (kubectl get), or
//! `PartialObjectMetadata` (metadata-only clients).

use std::collections::HashMap;

use bytes::Bytes;
use jiff::Timestamp;
use serde_json::{Map, Value, json};

use crate::resources::ResourceType;
use crate::server::ApiServer;
use crate::store::CollectionKey;
use crate::table::{self, CustomColumn};

/// Whether the client asked for server-side printing.
pub fn wants_table(accept: &str) -> bool {
    preferred_as(accept).is_some_and(|(kind, _)| kind == "Table")
}

/// The `as=` kind and `v=` version of the first media type in `accept` that names one, if that
/// media type is the client's first choice among JSON representations.
fn preferred_as(accept: &str) -> Option<(String, String)> {
    let first = accept.split(',').next()?;
    let mut kind = None;
    let mut version = "v1".to_string();
    let mut group = String::new();
    for param in first.split(';').skip(1) {
        let (k, v) = param.trim().split_once('=')?;
        match k.trim() {
            "as" => kind = Some(v.trim().to_string()),
            "v" => version = v.trim().to_string(),
            "g" => group = v.trim().to_string(),
            _ => {}
        }
    }
    let kind = kind?;
    (group == "meta.k8s.io" || group.is_empty()).then_some((kind, version))
}

/// How a table row carries its object (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    /// No object.
    None,
    /// `PartialObjectMetadata` (the default).
    Metadata,
    /// The whole object.
    Object,
}

impl IncludeObject {
    /// Parses the `includeObject` query parameter.
    pub fn from_query(query: &HashMap<String, String>) -> Self {
        match query.get("includeObject").map(String::as_str) {
            Some("None") => Self::None,
            Some("Object") => Self::Object,
            _ => Self::Metadata,
        }
    }
}

/// The column definitions and row printer of one resource type.
pub enum TablePrinter {
    /// A built-in kind with upstream's printer (or the default name/created-at table).
    Builtin(Option<table::Printer>),
    /// A custom resource with its CRD's printer columns.
    Custom(Vec<CustomColumn>),
}

impl TablePrinter {
    /// The printer for `rt`; `crd` is the CRD object serving it, if any.
    pub fn for_resource(rt: &ResourceType, crd: Option<&Value>, builtin: bool) -> Self {
        match crd {
            Some(crd) if !builtin => Self::Custom(table::custom_columns(crd, &rt.version)),
            _ => Self::Builtin(table::printer_for(&rt.group, &rt.kind)),
        }
    }

    /// The column definitions as JSON.
    pub fn columns(&self) -> Vec<Value> {
        match self {
            Self::Builtin(Some(p)) => p.columns.iter().map(table::Column::to_json).collect(),
            Self::Builtin(None) => table::DEFAULT_COLUMNS
                .iter()
                .map(table::Column::to_json)
                .collect(),
            Self::Custom(cols) => cols.iter().map(CustomColumn::to_json).collect(),
        }
    }

    /// The cells of one object.
    pub fn cells(&self, obj: &Value, now: Timestamp) -> Vec<Value> {
        match self {
            Self::Builtin(Some(p)) => (p.cells)(obj, now),
            Self::Builtin(None) => table::default_cells(obj, now),
            Self::Custom(cols) => table::custom_resource_cells(obj, cols, now),
        }
    }
}

/// `PartialObjectMetadata` of an object.
pub fn partial_metadata(obj: &Value, api_version: &str) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": api_version,
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

fn row(printer: &TablePrinter, obj: &Value, include: IncludeObject, now: Timestamp) -> Value {
    let mut row = Map::new();
    row.insert("cells".into(), Value::Array(printer.cells(obj, now)));
    match include {
        // Go's `TableRow.Object` is a `RawExtension`, a struct that `omitempty` keeps: an empty
        // one is written as `null`.
        IncludeObject::None => {
            row.insert("object".into(), Value::Null);
        }
        IncludeObject::Metadata => {
            row.insert("object".into(), partial_metadata(obj, "meta.k8s.io/v1"));
        }
        IncludeObject::Object => {
            row.insert("object".into(), obj.clone());
        }
    }
    Value::Object(row)
}

/// Builds a `Table` of `objects`; `list_meta` is the list's metadata (resourceVersion, continue).
pub fn build_table(
    printer: &TablePrinter,
    api_version: &str,
    objects: &[Value],
    list_meta: Value,
    include: IncludeObject,
    now: Timestamp,
) -> Value {
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| row(printer, o, include, now))
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": api_version,
        "metadata": list_meta,
        "columnDefinitions": printer.columns(),
        "rows": rows,
    })
}

fn printer_for_server(server: &ApiServer, rt: &ResourceType) -> TablePrinter {
    if crate::resources::is_builtin_resource(&rt.group, &rt.version, &rt.plural) {
        return TablePrinter::for_resource(rt, None, true);
    }
    let crd = server
        .store
        .read()
        .get(
            &CollectionKey::new("apiextensions.k8s.io", "customresourcedefinitions"),
            "",
            &format!("{}.{}", rt.plural, rt.group),
        )
        .map(|o| o.value());
    TablePrinter::for_resource(rt, crd.as_ref(), false)
}

fn table_api_version(accept: &str) -> String {
    match preferred_as(accept) {
        Some((_, v)) if v == "v1beta1" => "meta.k8s.io/v1beta1".to_string(),
        _ => "meta.k8s.io/v1".to_string(),
    }
}

/// Renders a reply body; returns the content type and the body.
pub fn render(
    server: &ApiServer,
    accept: &str,
    rt: &ResourceType,
    body: Value,
    is_list: bool,
    query: &HashMap<String, String>,
) -> (String, Value) {
    let json_ct = "application/json".to_string();
    if body.get("kind").and_then(Value::as_str) == Some("Status") {
        return (json_ct, body);
    }
    match preferred_as(accept) {
        Some((kind, _)) if kind == "Table" => {
            let printer = printer_for_server(server, rt);
            let (mut objects, meta) = split_body(body, is_list);
            // A row's object is encoded whole, with its type (list items carry none); kubectl's
            // `--sort-by` decodes it.
            for object in &mut objects {
                with_type(object, &rt.kind, &rt.api_version());
            }
            let table = build_table(
                &printer,
                &table_api_version(accept),
                &objects,
                meta,
                IncludeObject::from_query(query),
                Timestamp::now(),
            );
            (json_ct, table)
        }
        Some((kind, v)) if kind.starts_with("PartialObjectMetadata") => {
            let api_version = format!("meta.k8s.io/{v}");
            if is_list {
                let (objects, meta) = split_body(body, true);
                let items: Vec<Value> = objects
                    .iter()
                    .map(|o| partial_metadata(o, &api_version))
                    .collect();
                (
                    json_ct,
                    json!({"kind": "PartialObjectMetadataList", "apiVersion": api_version,
                        "metadata": meta, "items": items}),
                )
            } else {
                (json_ct, partial_metadata(&body, &api_version))
            }
        }
        _ => (json_ct, body),
    }
}

/// `object` with `kind` and `apiVersion` first, as Go encodes a typed object, unless it has them.
fn with_type(object: &mut Value, kind: &str, api_version: &str) {
    if let Value::Object(fields) = object
        && !fields.contains_key("kind")
    {
        let mut typed = Map::new();
        typed.insert("kind".into(), Value::String(kind.into()));
        typed.insert("apiVersion".into(), Value::String(api_version.into()));
        typed.extend(std::mem::take(fields));
        *fields = typed;
    }
}

/// Splits a reply into its objects and the metadata a Table or list of them carries.
fn split_body(body: Value, is_list: bool) -> (Vec<Value>, Value) {
    if is_list {
        let mut meta = body.get("metadata").cloned().unwrap_or_else(|| json!({}));
        // A Table's or PartialObjectMetadataList's ListMeta omits an empty continue, which a
        // custom resource's UnstructuredList carries.
        if let Some(m) = meta.as_object_mut()
            && m.get("continue").is_some_and(|c| c == "")
        {
            m.remove("continue");
        }
        let items = match body {
            Value::Object(mut m) => match m.remove("items") {
                Some(Value::Array(a)) => a,
                _ => Vec::new(),
            },
            _ => Vec::new(),
        };
        (items, meta)
    } else {
        let mut meta = Map::new();
        if let Some(rv) = body.pointer("/metadata/resourceVersion") {
            meta.insert("resourceVersion".into(), rv.clone());
        }
        (vec![body], Value::Object(meta))
    }
}

/// Renders one object of a watch event.
pub fn render_watch_object(
    server: &ApiServer,
    accept: &str,
    rt: &ResourceType,
    object: &Bytes,
) -> Bytes {
    // Plain JSON goes out as stored, unless the resource is stored as another's (Events).
    if preferred_as(accept).is_none() && !crate::conversion::converts(rt) {
        return object.clone();
    }
    let Ok(value) = serde_json::from_slice::<Value>(object) else {
        return object.clone();
    };
    let value = server.present(rt, value);
    let (_, rendered) = render(server, accept, rt, value, false, &HashMap::new());
    Bytes::from(serde_json::to_vec(&rendered).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::ResourceTable;

    const KUBECTL_ACCEPT: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

    #[test]
    fn accept_headers_select_representations() {
        assert!(wants_table(KUBECTL_ACCEPT));
        assert!(!wants_table("application/json"));
        assert!(!wants_table(
            "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
        ));
        assert_eq!(
            table_api_version("application/json;as=Table;v=v1beta1;g=meta.k8s.io"),
            "meta.k8s.io/v1beta1"
        );
    }

    #[test]
    fn service_tables_carry_columns_rows_and_metadata() {
        let rt = ResourceTable::builtin().get("", "v1", "services").unwrap();
        let printer = TablePrinter::for_resource(&rt, None, true);
        let svc = json!({"metadata": {"name": "web", "namespace": "default", "resourceVersion": "7",
                "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"type": "ClusterIP", "clusterIPs": ["10.0.0.1"], "ports": [{"port": 80, "protocol": "TCP"}]}});
        let now: Timestamp = "2026-01-01T00:00:05Z".parse().unwrap();
        let t = build_table(
            &printer,
            "meta.k8s.io/v1",
            &[svc],
            json!({"resourceVersion": "9"}),
            IncludeObject::Metadata,
            now,
        );
        let names: Vec<&str> = t["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "Name",
                "Type",
                "Cluster-IP",
                "External-IP",
                "Port(s)",
                "Age",
                "Selector"
            ]
        );
        assert_eq!(t["columnDefinitions"][6]["priority"], json!(1));
        assert_eq!(
            t["rows"][0]["cells"],
            json!([
                "web",
                "ClusterIP",
                "10.0.0.1",
                "<none>",
                "80/TCP",
                "5s",
                "<none>"
            ])
        );
        assert_eq!(
            t["rows"][0]["object"]["kind"],
            json!("PartialObjectMetadata")
        );
        assert_eq!(
            t["rows"][0]["object"]["metadata"]["namespace"],
            json!("default")
        );
        assert_eq!(t["metadata"]["resourceVersion"], json!("9"));
    }

    #[test]
    fn single_objects_keep_their_resource_version() {
        let (objects, meta) = split_body(
            json!({"metadata": {"name": "a", "resourceVersion": "4"}}),
            false,
        );
        assert_eq!(objects.len(), 1);
        assert_eq!(meta, json!({"resourceVersion": "4"}));
    }
}
