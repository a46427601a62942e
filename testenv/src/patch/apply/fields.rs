//! Field sets as structured-merge-diff tracks them: paths through an object, their FieldsV1
//! trie encoding (`f:`, `k:{...}`, `v:`, `i:`), and the list semantics (atomic, keyed, set) that
//! decide how finely ownership of a list is tracked.
//!
//! The semantics come from the built-in kinds' structured-merge-diff schema ([`super::schema`]);
//! objects of kinds without one (custom resources) are structs with atomic lists, and ObjectMeta.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::schema::{ListKeys, Ty};
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListType {
    /// Replaced and owned as a whole.
    Atomic,
    /// Items identified by these key fields (`+listType=map`).
    Map(Vec<String>),
    /// Scalar items identified by value (`+listType=set`).
    Set,
}

/// The list semantics of a list of type `ty`: the schema's; without one (custom resources,
/// fields a schema does not know) atomic, as upstream treats a list without
/// `x-kubernetes-list-type`.
pub fn list_type(ty: Ty) -> ListType {
    match ty.list_keys() {
        Some(ListKeys::Set) => ListType::Set,
        Some(ListKeys::Keys(keys)) => ListType::Map(keys.to_vec()),
        Some(ListKeys::Atomic) | None => ListType::Atomic,
    }
}

/// The type at `path` below an object of type `root`.
pub fn ty_at(root: Ty, path: &[PathElement]) -> Ty {
    path.iter().fold(root, |ty, pe| match pe {
        PathElement::Field(f) => ty.field(f),
        _ => ty.item(),
    })
}

/// Key defaults for items of lists without a schema.
fn key_default(field: &str) -> Option<Value> {
    match field {
        "protocol" => Some(Value::String("TCP".into())),
        _ => None,
    }
}

/// The path element of item `index` of a list of type `list` whose items are of type `item_ty`.
/// A keyed item that leaves a key out takes the key field's schema default, or goes without that
/// key (structured-merge-diff does the same); one without any key is told apart by position
/// (where upstream refuses the object).
pub fn item_element(list: &ListType, index: usize, item: &Value, item_ty: Ty) -> PathElement {
    match list {
        ListType::Set if !item.is_object() && !item.is_array() => {
            PathElement::Value(item.to_string())
        }
        ListType::Map(keys) => {
            let mut fields = Vec::with_capacity(keys.len());
            for k in keys {
                let default = || {
                    if item_ty.is_known() {
                        item_ty.field_default(k).cloned()
                    } else {
                        key_default(k)
                    }
                };
                match item.get(k.as_str()).cloned().or_else(default) {
                    Some(v) if v.is_object() || v.is_array() || v.is_null() => {
                        return PathElement::Index(index as u64);
                    }
                    Some(v) => fields.push((k.clone(), v)),
                    None => {}
                }
            }
            if fields.is_empty() {
                return PathElement::Index(index as u64);
            }
            PathElement::Key(canonical_key(fields.iter().map(|(k, v)| (k, v))))
        }
        _ => PathElement::Index(index as u64),
    }
}

/// The path elements of a list's items.
pub fn item_elements(list: &ListType, items: &[Value], item_ty: Ty) -> Vec<PathElement> {
    items
        .iter()
        .enumerate()
        .map(|(i, v)| item_element(list, i, v, item_ty))
        .collect()
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

/// The fields an applied configuration sets (`TypedValue.ToFieldSet`): leaves, keyed items, free
/// keys of maps, atomic maps and lists as a whole, and null or empty objects; struct fields that
/// hold something are not members themselves.
pub fn applied_fields(config: &Value) -> FieldSet {
    let mut set = FieldSet::new();
    walk_applied(config, Ty::of_object(config), &mut Vec::new(), &mut set);
    set.retain(|p| !is_ignored(p));
    set
}

fn walk_applied(v: &Value, ty: Ty, path: &mut FieldPath, set: &mut FieldSet) {
    match v {
        Value::Object(_) if ty.is_atomic_map() => set.insert(path.clone()),
        Value::Object(m) => {
            for (k, child) in m {
                path.push(PathElement::Field(k.clone()));
                walk_applied(child, ty.field(k), path, set);
                let empty = child.is_null() || child.as_object().is_some_and(Map::is_empty);
                if empty || !ty.is_named_field(k) {
                    set.insert(path.clone());
                }
                path.pop();
            }
        }
        Value::Array(items) => match list_type(ty) {
            ListType::Atomic => set.insert(path.clone()),
            lt => {
                let item_ty = ty.item();
                for (i, item) in items.iter().enumerate() {
                    path.push(item_element(&lt, i, item, item_ty));
                    if item.is_object() {
                        walk_applied(item, item_ty, path, set);
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

/// Compares `old` with `new` as kube-apiserver's field manager compares the typed objects (with
/// the fields Go always writes, [`Ty::fill_go_fields`]), ignoring system metadata.
pub fn compare(old: &Value, new: &Value) -> Comparison {
    let ty = match Ty::of_object(new) {
        Ty::UnknownRoot => Ty::of_object(old),
        known => known,
    };
    let (mut old, mut new) = (old.clone(), new.clone());
    ty.fill_go_fields(&mut old);
    ty.fill_go_fields(&mut new);
    let mut c = Comparison::default();
    compare_at(Some(&old), Some(&new), ty, &mut Vec::new(), &mut c);
    for set in [&mut c.added, &mut c.modified, &mut c.removed] {
        set.retain(|p| !p.is_empty() && !is_ignored(p));
    }
    c
}

/// What Go writes for a new, empty object of `obj`'s kind: the old side of a create's comparison
/// (kube-apiserver compares with `New()` of the kind, so the fields Go always writes are nobody's,
/// and `spec` is no member of the creator's set). Custom resources start from `{}`.
pub fn empty_object_like(obj: &Value) -> Value {
    Ty::of_object(obj).zero()
}

/// One node of structured-merge-diff's comparison: a node that only one side has is added or
/// removed as a whole (struct, map, list item or leaf); atomic maps and lists, scalars and
/// containers empty on both sides are leaves, compared by value; everything else is compared
/// member by member. A null is a value that is there (Go writes nil slices of required fields
/// as null), unlike an absent field.
fn compare_at(
    old: Option<&Value>,
    new: Option<&Value>,
    ty: Ty,
    path: &mut FieldPath,
    c: &mut Comparison,
) {
    // What each side is: absent, null (which takes the other side's shape), a scalar, an
    // object or a list. The node is an object or a list if either side is one.
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Shape {
        Missing,
        Null,
        Scalar,
        Object,
        List,
    }
    let shape = |v: Option<&Value>| match v {
        None => Shape::Missing,
        Some(Value::Null) => Shape::Null,
        Some(Value::Object(_)) => Shape::Object,
        Some(Value::Array(_)) => Shape::List,
        Some(_) => Shape::Scalar,
    };
    let (ls, rs) = (shape(old), shape(new));
    let container = |s: Shape| matches!(s, Shape::Object | Shape::List);
    // An object that became a list or a scalar (or back) is replaced as a leaf.
    let mismatched = ls != rs && ls != Shape::Missing && rs != Shape::Missing && {
        let typed = |s: Shape| !matches!(s, Shape::Null);
        typed(ls) && typed(rs) && (container(ls) || container(rs))
    };
    let kind = if container(rs) { rs } else { ls };
    let empty = |v: Option<&Value>| match v {
        None | Some(Value::Null) => true,
        Some(Value::Object(m)) => m.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        _ => false,
    };
    let both_empty = empty(old) && empty(new);
    let leaf = mismatched
        || !container(kind)
        || both_empty
        || (kind == Shape::Object && ty.is_atomic_map())
        || (kind == Shape::List && list_type(ty) == ListType::Atomic);
    if leaf {
        match (old, new) {
            (None, Some(_)) => c.added.insert(path.clone()),
            (Some(_), None) => c.removed.insert(path.clone()),
            (Some(o), Some(n)) if o != n => {
                c.modified.insert(path.clone());
                if mismatched {
                    let mut gone = Comparison::default();
                    compare_at(Some(o), None, ty, path, &mut gone);
                    gone.removed.retain(|p| p.len() > path.len());
                    c.removed = c.removed.union(&gone.removed);
                }
            }
            _ => {}
        }
        return;
    }
    if kind == Shape::Object {
        let no_map = Map::new();
        let o = old.and_then(Value::as_object).unwrap_or(&no_map);
        let n = new.and_then(Value::as_object).unwrap_or(&no_map);
        for (k, nv) in n {
            path.push(PathElement::Field(k.clone()));
            compare_at(o.get(k), Some(nv), ty.field(k), path, c);
            path.pop();
        }
        for (k, ov) in o {
            if !n.contains_key(k) {
                path.push(PathElement::Field(k.clone()));
                compare_at(Some(ov), None, ty.field(k), path, c);
                path.pop();
            }
        }
    } else {
        let lt = list_type(ty);
        let item_ty = ty.item();
        let none: Vec<Value> = Vec::new();
        let o = old.and_then(Value::as_array).unwrap_or(&none);
        let n = new.and_then(Value::as_array).unwrap_or(&none);
        let old_keys = item_elements(&lt, o, item_ty);
        let new_keys = item_elements(&lt, n, item_ty);
        for (pe, nv) in new_keys.iter().zip(n) {
            let ov = old_keys.iter().position(|p| p == pe).map(|i| &o[i]);
            path.push(pe.clone());
            compare_at(ov, Some(nv), item_ty, path, c);
            path.pop();
        }
        for (pe, ov) in old_keys.iter().zip(o) {
            if !new_keys.contains(pe) {
                path.push(pe.clone());
                compare_at(Some(ov), None, item_ty, path, c);
                path.pop();
            }
        }
    }
    match (old, new) {
        (None, Some(_)) => c.added.insert(path.clone()),
        (Some(_), None) => c.removed.insert(path.clone()),
        _ => {}
    }
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
                    "f:selector": {}
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

    /// What an Update entry of a create owns: the comparison with the empty object of the kind.
    fn created_fields(obj: &Value) -> Value {
        let c = compare(&empty_object_like(obj), obj);
        c.added.union(&c.modified).to_fields_v1()
    }

    #[test]
    fn a_create_owns_atomic_maps_whole_and_marks_added_containers() {
        // kube-apiserver 1.34's Update entry for this create: the selector is atomic
        // (`f:selector: {}`); `spec` and `status` exist in the empty Service, so they are no
        // members; `ports` (omitempty), each keyed item, `labels` and the pointer struct
        // sessionAffinityConfig are added whole, hence their `.`.
        let svc = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
            "spec": {"selector": {"app": "web"}, "type": "ClusterIP", "sessionAffinity": "ClientIP",
                     "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10800}},
                     "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}]},
            "status": {"loadBalancer": {}}
        });
        assert_eq!(
            created_fields(&svc),
            json!({
                "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                "f:spec": {
                    "f:ports": {".": {}, "k:{\"port\":80,\"protocol\":\"TCP\"}": {
                        ".": {}, "f:port": {}, "f:protocol": {}, "f:targetPort": {}}},
                    "f:selector": {},
                    "f:sessionAffinity": {},
                    "f:sessionAffinityConfig": {".": {}, "f:clientIP": {".": {}, "f:timeoutSeconds": {}}},
                    "f:type": {}
                }
            })
        );
    }

    #[test]
    fn a_required_list_go_writes_as_null_gets_no_dot() {
        // PodSpec.containers is not omitempty: the empty Pod has `containers: null`, so the list
        // is no member, only its keyed items are (with their `.`).
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "nginx", "resources": {}}],
                     "restartPolicy": "Always"}
        });
        assert_eq!(
            created_fields(&pod),
            json!({"f:spec": {
                "f:containers": {"k:{\"name\":\"c\"}": {
                    ".": {}, "f:image": {}, "f:name": {}, "f:resources": {}}},
                "f:restartPolicy": {}
            }})
        );
    }

    #[test]
    fn an_atomic_struct_and_fields_go_always_writes() {
        // ObjectReference is `+structType=atomic`: owned whole. reportingComponent is written
        // as "" by Go for every Event, so an empty one is nobody's.
        let event = json!({
            "apiVersion": "v1", "kind": "Event", "metadata": {"name": "e"},
            "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
            "reason": "Started", "reportingComponent": "", "source": {}
        });
        assert_eq!(
            created_fields(&event),
            json!({"f:involvedObject": {}, "f:reason": {}})
        );
    }

    #[test]
    fn set_lists_and_granular_maps_are_owned_by_member() {
        let cm = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "finalizers": ["a.io/x"], "annotations": {"n": "v"}},
            "data": {"k": "v"}
        });
        assert_eq!(
            created_fields(&cm),
            json!({
                "f:data": {".": {}, "f:k": {}},
                "f:metadata": {"f:annotations": {".": {}, "f:n": {}},
                               "f:finalizers": {".": {}, "v:\"a.io/x\"": {}}}
            })
        );
    }

    #[test]
    fn a_custom_resource_starts_from_nothing() {
        // Without a schema the empty object is `{}`: `spec` is added, with its `.`.
        let cr = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
                        "spec": {"size": 1, "tags": ["a"]}});
        assert_eq!(
            created_fields(&cr),
            json!({"f:spec": {".": {}, "f:size": {}, "f:tags": {}}})
        );
    }

    #[test]
    fn compare_reports_added_modified_removed() {
        let pod = |labels: Value, containers: Value| {
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a", "labels": labels},
                   "spec": {"containers": containers, "nodeSelector": {"zone": "a"}}})
        };
        let old = pod(
            json!({"x": "1", "y": "2"}),
            json!([{"name": "c", "image": "i1"}]),
        );
        let mut new = pod(
            json!({"x": "1"}),
            json!([{"name": "c", "image": "i2"}, {"name": "d", "image": "i2"}]),
        );
        new["metadata"]["annotations"] = json!({"n": "v"});
        let c = compare(&old, &new);
        let d = |s: &FieldSet| s.iter().map(|p| path_display(p)).collect::<Vec<_>>();
        assert_eq!(d(&c.modified), [".spec.containers[name=\"c\"].image"]);
        assert_eq!(d(&c.removed), [".metadata.labels.y"]);
        assert_eq!(
            d(&c.added),
            [
                ".metadata.annotations",
                ".metadata.annotations.n",
                ".spec.containers[name=\"d\"]",
                ".spec.containers[name=\"d\"].image",
                ".spec.containers[name=\"d\"].name",
                // Go writes `resources: {}` in every container it encodes.
                ".spec.containers[name=\"d\"].resources",
            ]
        );
    }

    #[test]
    fn a_value_that_changes_shape_is_replaced_and_null_is_a_value() {
        let cr = |spec: Value| json!({"apiVersion": "example.com/v1", "kind": "W", "spec": spec});
        let d = |s: &FieldSet| s.iter().map(|p| path_display(p)).collect::<Vec<_>>();
        let c = compare(&cr(json!({"x": {"a": 1}})), &cr(json!({"x": "s"})));
        assert_eq!(d(&c.modified), [".spec.x"]);
        assert_eq!(d(&c.removed), [".spec.x.a"]);
        assert!(c.added.is_empty());
        // From null to an object: its members are added, the field itself was there.
        let c = compare(&cr(json!({"x": null})), &cr(json!({"x": {"a": 1}})));
        assert_eq!(d(&c.added), [".spec.x.a"]);
        assert!(c.modified.is_empty() && c.removed.is_empty());
    }

    #[test]
    fn malformed_fields_v1_is_an_error_not_a_panic() {
        assert!(FieldSet::from_fields_v1(&json!({"x:y": {}})).is_err());
        assert!(FieldSet::from_fields_v1(&json!({"f:a": 1})).is_err());
        assert!(FieldSet::from_fields_v1(&json!([])).is_err());
        assert!(FieldSet::from_fields_v1(&json!({"k:notjson": {}})).is_err());
    }

    #[test]
    fn missing_keys_take_their_defaults_or_fall_back_to_positions() {
        let spec = Ty::of_object(&json!({"apiVersion": "v1", "kind": "Pod"})).field("spec");
        let containers = spec.field("containers");
        let lt = list_type(containers);
        assert_eq!(lt, ListType::Map(vec!["name".into()]));
        // Container.name is never omitted by Go: its default "" keys the item.
        assert_eq!(
            item_element(&lt, 2, &json!({"image": "x"}), containers.item()),
            PathElement::Key(r#"{"name":""}"#.into())
        );
        let ports = containers.item().field("ports");
        assert_eq!(
            item_element(
                &list_type(ports),
                0,
                &json!({"containerPort": 80}),
                ports.item()
            ),
            PathElement::Key(r#"{"containerPort":80,"protocol":"TCP"}"#.into())
        );
        let keyed = ListType::Map(vec!["name".into()]);
        assert_eq!(
            item_element(&keyed, 2, &json!({"image": "x"}), Ty::Unknown),
            PathElement::Index(2)
        );
    }
}
