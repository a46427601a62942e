//! Field sets as structured-merge-diff tracks them: paths through an object, their FieldsV1
//! trie encoding (`f:`, `k:{...}`, `v:`, `i:`), and the list semantics (atomic, keyed, set) that
//! decide how finely ownership of a list is tracked.
//!
//! testenv has no OpenAPI schemas for ownership, so list semantics come from a table of the
//! merge-keyed lists of the built-in kinds; every other list is atomic, every object a struct.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::meta::go_quote;

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathElement {
    /// A field of an object: `f:name`.
    Field(String),
    /// An item of a keyed list, by its key fields as canonical JSON: `k:{"name":"web"}`.
    Key(String),
    /// An item of a set list, by its JSON value: `v:"finalizer"`.
    Value(String),
    /// An item of a list without usable keys, by position: `i:0`.
    Index(u64),
}

impl PathElement {
    /// The FieldsV1 key of this element.
    pub fn encode(&self) -> String {
        match self {
            PathElement::Field(f) => format!("f:{f}"),
            PathElement::Key(k) => format!("k:{k}"),
            PathElement::Value(v) => format!("v:{v}"),
            PathElement::Index(i) => format!("i:{i}"),
        }
    }

    /// Parses a FieldsV1 key.
    pub fn decode(s: &str) -> Option<Self> {
        let (kind, rest) = s.split_at_checked(2)?;
        match kind {
            "f:" => Some(PathElement::Field(rest.to_string())),
            "k:" => {
                let v: Value = serde_json::from_str(rest).ok()?;
                let m = v.as_object()?;
                Some(PathElement::Key(canonical_key(m.iter())))
            }
            "v:" => {
                let v: Value = serde_json::from_str(rest).ok()?;
                Some(PathElement::Value(v.to_string()))
            }
            "i:" => rest.parse().ok().map(PathElement::Index),
            _ => None,
        }
    }

    /// `.name`, `[name="web"]`, `[="x"]` or `[0]`, as `fieldpath.PathElement.String()` renders it.
    pub fn display(&self) -> String {
        match self {
            PathElement::Field(f) => format!(".{f}"),
            PathElement::Key(k) => {
                let parsed: Option<Map<String, Value>> = serde_json::from_str(k).ok();
                let parts: Vec<String> = parsed
                    .iter()
                    .flat_map(|m| m.iter())
                    .map(|(name, v)| format!("{name}={}", value_display(v)))
                    .collect();
                format!("[{}]", parts.join(","))
            }
            PathElement::Value(v) => {
                let parsed: Value = serde_json::from_str(v).unwrap_or(Value::Null);
                format!("[={}]", value_display(&parsed))
            }
            PathElement::Index(i) => format!("[{i}]"),
        }
    }
}

/// `value.ToString`: strings quoted, everything else as JSON.
fn value_display(v: &Value) -> String {
    match v {
        Value::String(s) => go_quote(s),
        other => other.to_string(),
    }
}

/// Key fields sorted by name, serialized as a JSON object (the `k:` form).
fn canonical_key<'a>(fields: impl Iterator<Item = (&'a String, &'a Value)>) -> String {
    let mut sorted: Vec<(&String, &Value)> = fields.collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut m = Map::new();
    for (k, v) in sorted {
        m.insert(k.clone(), v.clone());
    }
    Value::Object(m).to_string()
}

/// A path from the object root.
pub type FieldPath = Vec<PathElement>;

/// `.spec.ports[port=80,protocol="TCP"].name`: how conflicts name a field.
pub fn path_display(path: &[PathElement]) -> String {
    path.iter().map(PathElement::display).collect()
}

/// A FieldsV1 document that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid FieldsV1: {0}")]
pub struct FieldsError(String);

impl FieldsError {
    /// An error with this explanation.
    pub fn from_message(why: &str) -> Self {
        Self(why.to_string())
    }
}

/// A set of field paths (the members of a manager's ownership).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet(BTreeSet<FieldPath>);

impl FieldSet {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a path.
    pub fn insert(&mut self, path: FieldPath) {
        self.0.insert(path);
    }

    /// Whether the path is a member.
    pub fn contains(&self, path: &[PathElement]) -> bool {
        self.0.contains(path)
    }

    /// Whether the set has no members.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Members in order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &FieldPath> {
        self.0.iter()
    }

    /// Members of either set.
    pub fn union(&self, other: &FieldSet) -> FieldSet {
        FieldSet(self.0.union(&other.0).cloned().collect())
    }

    /// Members of this set that are not in `other`.
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        FieldSet(self.0.difference(&other.0).cloned().collect())
    }

    /// Members of both sets.
    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        FieldSet(self.0.intersection(&other.0).cloned().collect())
    }

    /// Whether some member is `path` or lies below it.
    pub fn covers(&self, path: &[PathElement]) -> bool {
        self.0
            .range(path.to_vec()..)
            .next()
            .is_some_and(|p| p.starts_with(path))
    }

    /// Drops the members for which `drop` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&FieldPath) -> bool) {
        self.0.retain(|p| keep(p));
    }

    /// The FieldsV1 trie: `{"f:spec":{"f:ports":{"k:{...}":{".":{},"f:name":{}}}}}`.
    pub fn to_fields_v1(&self) -> Value {
        let mut root = Map::new();
        for path in &self.0 {
            let mut node = &mut root;
            for pe in path {
                let entry = node
                    .entry(pe.encode())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !entry.is_object() {
                    *entry = Value::Object(Map::new());
                }
                let Value::Object(child) = entry else {
                    break;
                };
                node = child;
            }
        }
        mark_inner_members(&mut root, &self.0, &mut Vec::new());
        sort_trie(&mut root);
        Value::Object(root)
    }

    /// Parses a FieldsV1 trie.
    pub fn from_fields_v1(v: &Value) -> Result<Self, FieldsError> {
        let mut set = FieldSet::new();
        let m = v
            .as_object()
            .ok_or_else(|| FieldsError("not an object".into()))?;
        read_trie(m, &mut Vec::new(), &mut set)?;
        Ok(set)
    }
}

/// A member that gained children after it was written needs its `.` marker.
fn mark_inner_members(
    node: &mut Map<String, Value>,
    members: &BTreeSet<FieldPath>,
    path: &mut FieldPath,
) {
    for (key, child) in node.iter_mut() {
        let Some(pe) = PathElement::decode(key) else {
            continue;
        };
        path.push(pe);
        if let Value::Object(c) = child {
            let has_children = c.keys().any(|k| k != ".");
            if has_children && members.contains(path.as_slice()) {
                c.insert(".".into(), Value::Object(Map::new()));
            }
            mark_inner_members(c, members, path);
        }
        path.pop();
    }
}

/// Orders trie keys as fieldpath serializes them: `.` first, then by element kind and text.
fn sort_trie(node: &mut Map<String, Value>) {
    let mut entries: Vec<(String, Value)> = std::mem::take(node).into_iter().collect();
    entries.sort_by(|a, b| {
        let rank = |k: &str| match k {
            "." => (0, None),
            other => (1, PathElement::decode(other)),
        };
        rank(&a.0).cmp(&rank(&b.0))
    });
    for (k, mut v) in entries {
        if let Value::Object(m) = &mut v {
            sort_trie(m);
        }
        node.insert(k, v);
    }
}

fn read_trie(
    node: &Map<String, Value>,
    path: &mut FieldPath,
    set: &mut FieldSet,
) -> Result<(), FieldsError> {
    for (key, child) in node {
        if key == "." {
            set.insert(path.clone());
            continue;
        }
        let pe = PathElement::decode(key)
            .ok_or_else(|| FieldsError(format!("unknown path element {}", go_quote(key))))?;
        let m = child
            .as_object()
            .ok_or_else(|| FieldsError(format!("{} is not an object", go_quote(key))))?;
        path.push(pe);
        if m.is_empty() {
            set.insert(path.clone());
        } else {
            read_trie(m, path, set)?;
        }
        path.pop();
    }
    Ok(())
}

/// How a list's items are told apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListType {
    /// Replaced and owned as a whole.
    Atomic,
    /// Items identified by these key fields (`+listType=map`).
    Map(&'static [&'static str]),
    /// Scalar items identified by value (`+listType=set`).
    Set,
}

/// The list semantics at `path` (a path whose last element names the list).
pub fn list_type(path: &[PathElement]) -> ListType {
    let fields: Vec<&str> = path
        .iter()
        .filter_map(|pe| match pe {
            PathElement::Field(f) => Some(f.as_str()),
            _ => None,
        })
        .collect();
    let Some((&last, parents)) = fields.split_last() else {
        return ListType::Atomic;
    };
    let parent = parents.last().copied().unwrap_or("");
    let in_container = matches!(
        parent,
        "containers" | "initContainers" | "ephemeralContainers"
    );
    match last {
        "finalizers" if parents == ["metadata"] => ListType::Set,
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "imagePullSecrets" => ListType::Map(&["name"]),
        "ports" if in_container => ListType::Map(&["containerPort", "protocol"]),
        "ports" if parents == ["spec"] && path.len() == 2 => ListType::Map(&["port", "protocol"]),
        "env" if in_container => ListType::Map(&["name"]),
        "volumeMounts" if in_container => ListType::Map(&["mountPath"]),
        "conditions" => ListType::Map(&["type"]),
        "ownerReferences" if parents == ["metadata"] => ListType::Map(&["uid"]),
        "podIPs" | "hostIPs" => ListType::Map(&["ip"]),
        _ => ListType::Atomic,
    }
}

/// Schema defaults of key fields, used when an item omits them (structured-merge-diff does the same).
fn key_default(field: &str) -> Option<Value> {
    match field {
        "protocol" => Some(Value::String("TCP".into())),
        _ => None,
    }
}

/// The path element of item `index` of a list of type `list`.
pub fn item_element(list: ListType, index: usize, item: &Value) -> PathElement {
    match list {
        ListType::Set if !item.is_object() && !item.is_array() => {
            PathElement::Value(item.to_string())
        }
        ListType::Map(keys) => {
            let mut fields = Vec::with_capacity(keys.len());
            for k in keys {
                match item
                    .get(*k)
                    .filter(|v| !v.is_null())
                    .cloned()
                    .or_else(|| key_default(k))
                {
                    Some(v) if !v.is_object() && !v.is_array() => {
                        fields.push(((*k).to_string(), v))
                    }
                    _ => return PathElement::Index(index as u64),
                }
            }
            PathElement::Key(canonical_key(fields.iter().map(|(k, v)| (k, v))))
        }
        _ => PathElement::Index(index as u64),
    }
}

/// Fields no manager owns: identity and system metadata (upstream's stripMeta).
pub fn is_ignored(path: &[PathElement]) -> bool {
    let field = |i: usize| match path.get(i) {
        Some(PathElement::Field(f)) => Some(f.as_str()),
        _ => None,
    };
    match (field(0), field(1)) {
        (Some("apiVersion" | "kind"), _) => path.len() == 1,
        (Some("metadata"), None) => path.len() == 1,
        (Some("metadata"), Some("managedFields")) => true,
        (
            Some("metadata"),
            Some(
                "name" | "namespace" | "creationTimestamp" | "selfLink" | "uid" | "clusterName"
                | "generation" | "resourceVersion",
            ),
        ) => path.len() == 2,
        _ => false,
    }
}

/// The fields an applied configuration sets (`TypedValue.ToFieldSet`): leaves, keyed items, and
/// null or empty objects; objects themselves are not members.
pub fn applied_fields(config: &Value) -> FieldSet {
    let mut set = FieldSet::new();
    walk_applied(config, &mut Vec::new(), &mut set);
    set.retain(|p| !is_ignored(p));
    set
}

fn walk_applied(v: &Value, path: &mut FieldPath, set: &mut FieldSet) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                path.push(PathElement::Field(k.clone()));
                walk_applied(child, path, set);
                if child.is_null() || child.as_object().is_some_and(Map::is_empty) {
                    set.insert(path.clone());
                }
                path.pop();
            }
        }
        Value::Array(items) => match list_type(path) {
            ListType::Atomic => set.insert(path.clone()),
            lt => {
                for (i, item) in items.iter().enumerate() {
                    path.push(item_element(lt, i, item));
                    if item.is_object() {
                        walk_applied(item, path, set);
                    }
                    set.insert(path.clone());
                    path.pop();
                }
            }
        },
        _ => {
            if !path.is_empty() {
                set.insert(path.clone());
            }
        }
    }
}

/// What changed between two versions of an object (`TypedValue.Compare`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Comparison {
    /// Fields present only in the new object.
    pub added: FieldSet,
    /// Fields present in both with different values.
    pub modified: FieldSet,
    /// Fields present only in the old object.
    pub removed: FieldSet,
}

/// Compares `old` with `new`, ignoring system metadata.
pub fn compare(old: &Value, new: &Value) -> Comparison {
    let mut c = Comparison::default();
    compare_at(old, new, &mut Vec::new(), &mut c);
    for set in [&mut c.added, &mut c.modified, &mut c.removed] {
        set.retain(|p| !p.is_empty() && !is_ignored(p));
    }
    c
}

/// Objects that are maps rather than structs: a new one is itself a member (the `.` of
/// `f:labels` in an Update entry).
fn is_map_field(path: &[PathElement]) -> bool {
    matches!(
        path.last(),
        Some(PathElement::Field(f)) if matches!(
            f.as_str(),
            "labels" | "annotations" | "data" | "stringData" | "binaryData" | "nodeSelector"
                | "capacity" | "allocatable" | "limits" | "requests"
        )
    )
}

fn compare_at(old: &Value, new: &Value, path: &mut FieldPath, c: &mut Comparison) {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            for (k, nv) in n {
                path.push(PathElement::Field(k.clone()));
                match o.get(k) {
                    Some(ov) => compare_at(ov, nv, path, c),
                    None => subtree(nv, path, &mut c.added),
                }
                path.pop();
            }
            for (k, ov) in o {
                if !n.contains_key(k) {
                    path.push(PathElement::Field(k.clone()));
                    subtree(ov, path, &mut c.removed);
                    path.pop();
                }
            }
        }
        (Value::Array(o), Value::Array(n)) if list_type(path) != ListType::Atomic => {
            let lt = list_type(path);
            let old_items: Vec<(PathElement, &Value)> = o
                .iter()
                .enumerate()
                .map(|(i, v)| (item_element(lt, i, v), v))
                .collect();
            let new_items: Vec<(PathElement, &Value)> = n
                .iter()
                .enumerate()
                .map(|(i, v)| (item_element(lt, i, v), v))
                .collect();
            for (pe, nv) in &new_items {
                path.push(pe.clone());
                match old_items.iter().find(|(p, _)| p == pe) {
                    Some((_, ov)) => compare_at(ov, nv, path, c),
                    None => subtree(nv, path, &mut c.added),
                }
                path.pop();
            }
            for (pe, ov) in &old_items {
                if !new_items.iter().any(|(p, _)| p == pe) {
                    path.push(pe.clone());
                    subtree(ov, path, &mut c.removed);
                    path.pop();
                }
            }
        }
        _ => {
            if old != new {
                c.modified.insert(path.clone());
                if old.is_object() || old.is_array() {
                    let mut gone = FieldSet::new();
                    subtree(old, path, &mut gone);
                    gone.retain(|p| p.len() > path.len());
                    c.removed = c.removed.union(&gone);
                }
            }
        }
    }
}

/// Every member a whole subtree contributes when it appears or disappears.
fn subtree(v: &Value, path: &mut FieldPath, set: &mut FieldSet) {
    match v {
        Value::Object(m) => {
            if m.is_empty() || is_map_field(path) || is_list_item(path) {
                set.insert(path.clone());
            }
            for (k, child) in m {
                path.push(PathElement::Field(k.clone()));
                subtree(child, path, set);
                path.pop();
            }
        }
        Value::Array(items) => {
            set.insert(path.clone());
            let lt = list_type(path);
            if lt != ListType::Atomic {
                for (i, item) in items.iter().enumerate() {
                    path.push(item_element(lt, i, item));
                    subtree(item, path, set);
                    path.pop();
                }
            }
        }
        _ => set.insert(path.clone()),
    }
}

fn is_list_item(path: &[PathElement]) -> bool {
    matches!(
        path.last(),
        Some(PathElement::Key(_) | PathElement::Value(_) | PathElement::Index(_))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn f(s: &str) -> PathElement {
        PathElement::Field(s.into())
    }

    #[test]
    fn applied_fields_encode_like_upstream() {
        let config = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"},
                         "finalizers": ["a.io/x"]},
            "spec": {"selector": {"app": "web"}, "clusterIPs": ["10.0.0.1"],
                     "ports": [{"port": 80, "name": "http"}]}
        });
        let set = applied_fields(&config);
        assert_eq!(
            set.to_fields_v1(),
            json!({
                "f:metadata": {"f:finalizers": {"v:\"a.io/x\"": {}}, "f:labels": {"f:app": {}}},
                "f:spec": {
                    "f:clusterIPs": {},
                    "f:ports": {"k:{\"port\":80,\"protocol\":\"TCP\"}": {".": {}, "f:name": {}, "f:port": {}}},
                    "f:selector": {"f:app": {}}
                }
            })
        );
        let back = FieldSet::from_fields_v1(&set.to_fields_v1()).unwrap();
        assert_eq!(back, set);
    }

    #[test]
    fn paths_render_like_fieldpath_strings() {
        let p = vec![
            f("spec"),
            f("ports"),
            PathElement::Key(r#"{"port":80,"protocol":"TCP"}"#.into()),
            f("name"),
        ];
        assert_eq!(
            path_display(&p),
            r#".spec.ports[port=80,protocol="TCP"].name"#
        );
        assert_eq!(
            path_display(&[
                f("metadata"),
                f("finalizers"),
                PathElement::Value("\"x\"".into())
            ]),
            r#".metadata.finalizers[="x"]"#
        );
        assert_eq!(path_display(&[f("a"), PathElement::Index(3)]), ".a[3]");
    }

    #[test]
    fn compare_reports_added_modified_removed() {
        let old = json!({"metadata": {"name": "a", "labels": {"x": "1", "y": "2"}},
                         "spec": {"replicas": 1, "containers": [{"name": "c", "image": "i1"}]}});
        let new = json!({"metadata": {"name": "a", "labels": {"x": "1"}, "annotations": {"n": "v"}},
                         "spec": {"replicas": 2, "containers": [{"name": "c", "image": "i1"}, {"name": "d", "image": "i2"}]}});
        let c = compare(&old, &new);
        let d = |s: &FieldSet| s.iter().map(|p| path_display(p)).collect::<Vec<_>>();
        assert_eq!(d(&c.modified), [".spec.replicas"]);
        assert_eq!(d(&c.removed), [".metadata.labels.y"]);
        assert_eq!(
            d(&c.added),
            [
                ".metadata.annotations",
                ".metadata.annotations.n",
                ".spec.containers[name=\"d\"]",
                ".spec.containers[name=\"d\"].image",
                ".spec.containers[name=\"d\"].name",
            ]
        );
    }

    #[test]
    fn malformed_fields_v1_is_an_error_not_a_panic() {
        assert!(FieldSet::from_fields_v1(&json!({"x:y": {}})).is_err());
        assert!(FieldSet::from_fields_v1(&json!({"f:a": 1})).is_err());
        assert!(FieldSet::from_fields_v1(&json!([])).is_err());
        assert!(FieldSet::from_fields_v1(&json!({"k:notjson": {}})).is_err());
    }

    #[test]
    fn items_without_keys_fall_back_to_positions() {
        let lt = list_type(&[f("spec"), f("containers")]);
        assert_eq!(
            item_element(lt, 2, &json!({"image": "x"})),
            PathElement::Index(2)
        );
    }
}
