//! Server-side apply with field managers: `metadata.managedFields`, ownership of applied fields,
//! 409 conflicts between managers, force, and removal of fields an applier stopped applying.
//! Non-apply writes record what they changed as `Update` entries, as kube-apiserver does.

// ApiError is the REST layer's error type everywhere; boxing it only here would buy nothing.
#![allow(clippy::result_large_err)]

pub mod fields;
pub mod schema;

use serde_json::{Map, Value, json};

use crate::meta::go_quote;
use crate::status::ApiError;
pub use fields::{
    Comparison, FieldPath, FieldSet, FieldsError, ListType, PathElement, applied_fields, compare,
    empty_object_like, item_element, list_type, path_display,
};
pub use schema::Ty;

/// The manager that takes over the fields of an object that has no managedFields at its first apply.
pub const BEFORE_FIRST_APPLY: &str = "before-first-apply";

/// The result of applying a configuration.
pub struct Applied {
    /// The merged object, with managedFields updated.
    pub object: Value,
}

/// One entry of `metadata.managedFields`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedFieldsEntry {
    /// The field manager's name.
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    /// The apiVersion the fields were written at.
    pub api_version: String,
    /// When the entry last changed (RFC 3339).
    pub time: Option<String>,
    /// `status` for writes through the status subresource, else empty.
    pub subresource: String,
    /// The owned fields.
    pub fields: FieldSet,
}

impl ManagedFieldsEntry {
    /// Whether `other` is the same manager (upstream's manager identifier: appliers ignore the version).
    fn same_manager(&self, manager: &str, operation: &str, api_version: &str) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource.is_empty()
            && (operation == "Apply" || self.api_version == api_version)
    }

    /// `"name"`, `"name" using v1`, as conflicts print a manager.
    fn describe(&self) -> String {
        let mut s = go_quote(&self.manager);
        if !self.subresource.is_empty() {
            s.push_str(&format!(
                " with subresource {}",
                go_quote(&self.subresource)
            ));
        }
        if self.operation == "Update" {
            s.push_str(&format!(" using {}", self.api_version));
        }
        s
    }

    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("manager".into(), json!(self.manager));
        m.insert("operation".into(), json!(self.operation));
        m.insert("apiVersion".into(), json!(self.api_version));
        if let Some(t) = &self.time {
            m.insert("time".into(), json!(t));
        }
        m.insert("fieldsType".into(), json!("FieldsV1"));
        m.insert("fieldsV1".into(), self.fields.to_fields_v1());
        if !self.subresource.is_empty() {
            m.insert("subresource".into(), json!(self.subresource));
        }
        Value::Object(m)
    }

    fn from_json(v: &Value) -> Result<Self, FieldsError> {
        let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        if v.get("fieldsType").and_then(Value::as_str) != Some("FieldsV1") {
            return Err(FieldsError::from_message("fieldsType must be FieldsV1"));
        }
        Ok(Self {
            manager: s("manager"),
            operation: s("operation"),
            api_version: s("apiVersion"),
            time: v.get("time").and_then(Value::as_str).map(String::from),
            subresource: s("subresource"),
            fields: FieldSet::from_fields_v1(v.get("fieldsV1").unwrap_or(&json!({})))?,
        })
    }
}

/// Decodes `metadata.managedFields`; absent means none.
pub fn decode_managed_fields(obj: &Value) -> Result<Vec<ManagedFieldsEntry>, FieldsError> {
    match obj.pointer("/metadata/managedFields") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(entries)) => entries.iter().map(ManagedFieldsEntry::from_json).collect(),
        Some(_) => Err(FieldsError::from_message("managedFields must be a list")),
    }
}

/// Writes `entries` into `metadata.managedFields` in upstream's order (Apply before Update,
/// then by time, manager, apiVersion, subresource); no entries removes the field.
fn store_managed_fields(obj: &mut Value, mut entries: Vec<ManagedFieldsEntry>) {
    entries.retain(|e| !e.fields.is_empty());
    entries.sort_by(|a, b| {
        (
            &a.operation,
            &a.time,
            &a.manager,
            &a.api_version,
            &a.subresource,
        )
            .cmp(&(
                &b.operation,
                &b.time,
                &b.manager,
                &b.api_version,
                &b.subresource,
            ))
    });
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    if entries.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert(
            "managedFields".into(),
            Value::Array(entries.iter().map(ManagedFieldsEntry::to_json).collect()),
        );
    }
}

fn api_version_of(obj: &Value) -> String {
    obj.get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// The object without managedFields: what "did the object change" compares.
fn without_managed_fields(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("managedFields");
    }
    o
}

/// Applies `config` as `manager` to `live` (absent: create).
pub fn server_side_apply(
    live: Option<&Value>,
    config: &Value,
    manager: &str,
    force: bool,
) -> Result<Applied, ApiError> {
    if config
        .pointer("/metadata/managedFields")
        .is_some_and(|m| !m.is_null())
    {
        return Err(ApiError::bad_request("metadata.managedFields must be nil"));
    }
    let now = crate::names::now_rfc3339();
    let live_value = live.cloned().unwrap_or_else(|| json!({}));
    let api_version = match api_version_of(config) {
        v if v.is_empty() => api_version_of(&live_value),
        v => v,
    };
    let mut managers = decode_managed_fields(&live_value).unwrap_or_default();
    if live.is_some() && managers.is_empty() {
        // Fields set before anyone applied belong to a stand-in manager, so they can conflict.
        let owned = compare(&json!({}), &live_value);
        managers.push(ManagedFieldsEntry {
            manager: BEFORE_FIRST_APPLY.into(),
            operation: "Update".into(),
            api_version: api_version_of(&live_value),
            time: Some(now.clone()),
            subresource: String::new(),
            fields: owned.added.union(&owned.modified),
        });
    }
    let mine = managers
        .iter()
        .position(|e| e.same_manager(manager, "Apply", &api_version));
    let last_applied = mine.map(|i| managers[i].fields.clone()).unwrap_or_default();
    let applied = applied_fields(config);
    let mine = match mine {
        Some(i) => {
            managers[i].fields = applied;
            managers[i].api_version = api_version.clone();
            i
        }
        None => {
            managers.push(ManagedFieldsEntry {
                manager: manager.into(),
                operation: "Apply".into(),
                api_version: api_version.clone(),
                time: None,
                subresource: String::new(),
                fields: applied,
            });
            managers.len() - 1
        }
    };

    let ty = Ty::of_object(config);
    let mut merged = merge_values(&live_value, config, ty, &mut Vec::new());
    let owned_by_anyone = managers
        .iter()
        .fold(FieldSet::new(), |acc, e| acc.union(&e.fields));
    prune(
        &mut merged,
        &last_applied.difference(&owned_by_anyone),
        &owned_by_anyone,
    );

    let changes = compare(&live_value, &merged);
    let changed = changes.added.union(&changes.modified);
    let mut conflicts: Vec<(usize, FieldPath)> = Vec::new();
    for (i, entry) in managers.iter().enumerate() {
        if i != mine {
            conflicts.extend(
                entry
                    .fields
                    .intersection(&changed)
                    .iter()
                    .map(|p| (i, p.clone())),
            );
        }
    }
    if !force && !conflicts.is_empty() {
        return Err(conflict_error(&managers, &conflicts));
    }
    for (i, entry) in managers.iter_mut().enumerate() {
        if i != mine {
            entry.fields = entry
                .fields
                .difference(&changed)
                .difference(&changes.removed);
        }
    }
    let changed_object =
        live.is_none() || without_managed_fields(&live_value) != without_managed_fields(&merged);
    // Only an apply that changes the object stamps its time (`managedFieldsUpdater.Apply`): a
    // new manager that applied what was already there has none, and sorts first.
    if changed_object {
        managers[mine].time = Some(now);
    }
    if merged.get("metadata").is_none_or(|m| !m.is_object()) {
        merged["metadata"] = json!({});
    }
    store_managed_fields(&mut merged, managers);
    Ok(Applied { object: merged })
}

/// The 409 of `NewApplyConflict`: one cause per conflicting field.
fn conflict_error(managers: &[ManagedFieldsEntry], conflicts: &[(usize, FieldPath)]) -> ApiError {
    let mut sorted: Vec<(String, String, &FieldPath)> = conflicts
        .iter()
        .filter_map(|(i, p)| {
            managers
                .get(*i)
                .map(|m| (m.describe(), m.manager.clone(), p))
        })
        .collect();
    sorted.sort_by(|a, b| (&a.1, &a.0, a.2).cmp(&(&b.1, &b.0, b.2)));
    let causes: Vec<Value> = sorted
        .iter()
        .map(|(who, _, p)| {
            json!({"reason": "FieldManagerConflict", "message": format!("conflict with {who}"), "field": path_display(p)})
        })
        .collect();
    let message = if let [(who, _, p)] = sorted.as_slice() {
        format!(
            "Apply failed with 1 conflict: conflict with {who}: {}",
            path_display(p)
        )
    } else {
        let mut lines = Vec::new();
        let mut current: Option<&str> = None;
        for (who, _, p) in &sorted {
            if current != Some(who.as_str()) {
                lines.push(format!("conflicts with {who}:"));
                current = Some(who.as_str());
            }
            lines.push(format!("- {}", path_display(p)));
        }
        format!(
            "Apply failed with {} conflicts: {}",
            sorted.len(),
            lines.join("\n")
        )
    };
    let mut err = ApiError::custom(409, "Conflict", message);
    err.details = Some(json!({"causes": causes}));
    err
}

/// Records that `manager` changed `old` into `new` with a non-apply operation.
pub fn track_update(old: Option<&Value>, new: &mut Value, manager: &str, operation: &str) {
    track_update_resetting(old, new, manager, operation, &[]);
}

/// [`track_update`] for a write whose strategy resets `reset` (upstream's `ResetFieldsStrategy`:
/// a main-resource write of a kind with a status subresource owns no `status` fields).
pub fn track_update_resetting(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    operation: &str,
    reset: &[&str],
) {
    let sent = new.clone();
    track_write(old, &sent, new, manager, operation, reset);
}

/// Records in `stored`'s managedFields that `manager` wrote `sent` over `old` (absent: a create)
/// with a non-apply operation. `sent` is the object as the request brought it, defaulted but
/// before admission plugins and the strategy changed it (`stored` is what they made of it):
/// kube-apiserver's field manager runs there, so what they set belongs to nobody. A create
/// compares with the empty object Go writes for the kind ([`empty_object_like`]).
pub fn track_write(
    old: Option<&Value>,
    sent: &Value,
    stored: &mut Value,
    manager: &str,
    operation: &str,
    reset: &[&str],
) {
    let old_value = old.cloned().unwrap_or_else(|| empty_object_like(sent));
    let new = sent;
    let api_version = api_version_of(new);
    // Clients that echo managedFields back keep them; `[]` resets them; anything else (absent or
    // undecodable) falls back to what is stored, so clients unaware of them cannot erase them.
    let mut managers = match new.pointer("/metadata/managedFields") {
        Some(Value::Array(a)) if a.is_empty() => Vec::new(),
        _ => match decode_managed_fields(new) {
            Ok(m) if !m.is_empty() => m,
            _ => decode_managed_fields(&old_value).unwrap_or_default(),
        },
    };
    let without_reset = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.as_object_mut() {
            for field in reset {
                m.remove(*field);
            }
        }
        v
    };
    let changes = if reset.is_empty() {
        compare(&old_value, new)
    } else {
        compare(&without_reset(&old_value), &without_reset(new))
    };
    let changed = changes.added.union(&changes.modified);
    for entry in &mut managers {
        entry.fields = entry
            .fields
            .difference(&changes.removed)
            .difference(&changed);
    }
    if !changed.is_empty() {
        let now = crate::names::now_rfc3339();
        match managers
            .iter_mut()
            .find(|e| e.same_manager(manager, operation, &api_version))
        {
            Some(e) => {
                e.fields = e.fields.union(&changed);
                e.time = Some(now);
            }
            None => managers.push(ManagedFieldsEntry {
                manager: manager.into(),
                operation: operation.into(),
                api_version,
                time: Some(now),
                subresource: String::new(),
                fields: changed,
            }),
        }
    }
    if stored.get("metadata").is_some_and(Value::is_object) {
        store_managed_fields(stored, managers);
    }
}

/// Merges an applied configuration into the live object: objects field by field, keyed and set
/// lists item by item (structured-merge-diff's order), everything else (atomic maps and lists,
/// scalars) replaced.
fn merge_values(live: &Value, config: &Value, ty: Ty, path: &mut FieldPath) -> Value {
    match (live, config) {
        (Value::Object(l), Value::Object(c)) if !ty.is_atomic_map() => {
            let mut out = l.clone();
            for (k, cv) in c {
                if cv.is_null() {
                    out.remove(k);
                    continue;
                }
                path.push(PathElement::Field(k.clone()));
                let merged = match l.get(k) {
                    Some(lv) => merge_values(lv, cv, ty.field(k), path),
                    None => cv.clone(),
                };
                path.pop();
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(l), Value::Array(c)) if list_type(ty) != ListType::Atomic => {
            Value::Array(merge_lists(l, c, ty, path))
        }
        _ => config.clone(),
    }
}

/// Keyed-list merge: live-only items stay where they are, applied items follow the applied order.
fn merge_lists(lhs: &[Value], rhs: &[Value], ty: Ty, path: &mut FieldPath) -> Vec<Value> {
    let lt = list_type(ty);
    let item_ty = ty.item();
    let lkeys = fields::item_elements(&lt, lhs, item_ty);
    let rkeys = fields::item_elements(&lt, rhs, item_ty);
    let in_rhs = |pe: &PathElement| rkeys.iter().any(|r| r == pe);
    let lhs_item = |pe: &PathElement| lkeys.iter().position(|l| l == pe).and_then(|i| lhs.get(i));
    let mut shared: std::collections::VecDeque<&PathElement> =
        rkeys.iter().filter(|r| lkeys.contains(r)).collect();
    let mut done: Vec<&PathElement> = Vec::new();
    let mut out = Vec::with_capacity(lhs.len().max(rhs.len()));
    let (mut li, mut ri) = (0, 0);
    let mut merge_item = |pe: &PathElement, l: Option<&Value>, r: &Value, out: &mut Vec<Value>| {
        path.push(pe.clone());
        out.push(match l {
            Some(l) => merge_values(l, r, item_ty, path),
            None => r.clone(),
        });
        path.pop();
    };
    while li < lkeys.len() || ri < rkeys.len() {
        if li < lkeys.len() && ri < rkeys.len() {
            if lkeys[li] == rkeys[ri] {
                merge_item(&rkeys[ri], lhs.get(li), &rhs[ri], &mut out);
                done.push(&rkeys[ri]);
                if shared.front() == Some(&&rkeys[ri]) {
                    shared.pop_front();
                }
                li += 1;
                ri += 1;
                continue;
            }
            if in_rhs(&lkeys[li]) && shared.front().is_some_and(|s| *s != &lkeys[li]) {
                li += 1;
                continue;
            }
        }
        if li < lkeys.len() {
            if !in_rhs(&lkeys[li]) {
                out.push(lhs[li].clone());
                li += 1;
                continue;
            }
            if done.contains(&&lkeys[li]) {
                li += 1;
                continue;
            }
        }
        if ri < rkeys.len() {
            let pe = &rkeys[ri];
            merge_item(pe, lhs_item(pe), &rhs[ri], &mut out);
            done.push(pe);
            if shared.front() == Some(&pe) {
                shared.pop_front();
            }
            ri += 1;
        }
    }
    out
}

/// Removes the fields in `to_remove` that nobody in `owned` still covers, then the objects and
/// lists that removal left empty (never the root, `metadata` or system fields).
fn prune(obj: &mut Value, to_remove: &FieldSet, owned: &FieldSet) {
    // Remove whole subtrees: once an item goes, paths below it no longer resolve.
    let mut roots: Vec<&FieldPath> = Vec::new();
    for path in to_remove.iter() {
        if !owned.covers(path) && !roots.iter().any(|r| path.starts_with(r)) {
            roots.push(path);
        }
    }
    for path in roots.into_iter().rev() {
        remove_at(obj, path);
        let mut ancestor = path.clone();
        ancestor.pop();
        while ancestor.len() > 1 && !owned.covers(&ancestor) {
            let empty = match get_at(obj, &ancestor) {
                Some(Value::Object(m)) => m.is_empty(),
                Some(Value::Array(a)) => a.is_empty(),
                _ => false,
            };
            if !empty || fields::is_ignored(&ancestor) {
                break;
            }
            remove_at(obj, &ancestor);
            ancestor.pop();
        }
    }
}

fn child_index(list_ty: Ty, items: &[Value], pe: &PathElement) -> Option<usize> {
    let lt = list_type(list_ty);
    let item_ty = list_ty.item();
    items
        .iter()
        .enumerate()
        .position(|(i, v)| &item_element(&lt, i, v, item_ty) == pe)
}

fn get_at<'a>(obj: &'a Value, path: &[PathElement]) -> Option<&'a Value> {
    let root = Ty::of_object(obj);
    let mut cur = obj;
    for (depth, pe) in path.iter().enumerate() {
        cur = match (pe, cur) {
            (PathElement::Field(f), Value::Object(m)) => m.get(f)?,
            (_, Value::Array(items)) => {
                items.get(child_index(fields::ty_at(root, &path[..depth]), items, pe)?)?
            }
            _ => return None,
        };
    }
    Some(cur)
}

fn remove_at(obj: &mut Value, path: &[PathElement]) {
    let Some((last, parent_path)) = path.split_last() else {
        return;
    };
    let root = Ty::of_object(obj);
    let mut cur = obj;
    for (depth, pe) in parent_path.iter().enumerate() {
        let next = match (pe, cur) {
            (PathElement::Field(f), Value::Object(m)) => m.get_mut(f),
            (_, Value::Array(items)) => {
                match child_index(fields::ty_at(root, &parent_path[..depth]), items, pe) {
                    Some(i) => items.get_mut(i),
                    None => None,
                }
            }
            _ => None,
        };
        let Some(next) = next else {
            return;
        };
        cur = next;
    }
    match (last, cur) {
        (PathElement::Field(f), Value::Object(m)) => {
            m.remove(f);
        }
        (_, Value::Array(items)) => {
            if let Some(i) = child_index(fields::ty_at(root, parent_path), items, last) {
                items.remove(i);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cm(data: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "c", "namespace": "default"}, "data": data})
    }

    fn owners(obj: &Value) -> Vec<(String, String, Value)> {
        decode_managed_fields(obj)
            .unwrap()
            .into_iter()
            .map(|e| (e.manager, e.operation, e.fields.to_fields_v1()))
            .collect()
    }

    #[test]
    fn create_on_apply_records_the_applier() {
        let out = server_side_apply(None, &cm(json!({"a": "1"})), "alice", false).unwrap();
        assert_eq!(out.object["data"], json!({"a": "1"}));
        assert_eq!(
            owners(&out.object),
            [(
                "alice".into(),
                "Apply".into(),
                json!({"f:data": {"f:a": {}}})
            )]
        );
        let entry = &out.object["metadata"]["managedFields"][0];
        assert_eq!(entry["fieldsType"], "FieldsV1");
        assert_eq!(entry["apiVersion"], "v1");
        assert!(entry["time"].is_string());
    }

    #[test]
    fn a_different_value_owned_by_another_manager_conflicts() {
        let live = server_side_apply(None, &cm(json!({"a": "1", "b": "2"})), "alice", false)
            .unwrap()
            .object;
        let err = match server_side_apply(Some(&live), &cm(json!({"a": "9"})), "bob", false) {
            Err(e) => e,
            Ok(_) => panic!("expected a conflict"),
        };
        assert_eq!(err.code, 409);
        assert_eq!(err.reason, "Conflict");
        assert_eq!(
            err.message,
            "Apply failed with 1 conflict: conflict with \"alice\": .data.a"
        );
        assert_eq!(
            err.details,
            Some(json!({"causes": [{"reason": "FieldManagerConflict",
                "message": "conflict with \"alice\"", "field": ".data.a"}]}))
        );
        // The same value is shared ownership, not a conflict. Bob changed nothing, so his entry
        // has no time and sorts first (as kube-apiserver's).
        let shared = server_side_apply(Some(&live), &cm(json!({"a": "1"})), "bob", false)
            .unwrap()
            .object;
        assert_eq!(
            owners(&shared),
            [
                ("bob".into(), "Apply".into(), json!({"f:data": {"f:a": {}}})),
                (
                    "alice".into(),
                    "Apply".into(),
                    json!({"f:data": {"f:a": {}, "f:b": {}}})
                ),
            ]
        );
        assert!(shared["metadata"]["managedFields"][0].get("time").is_none());
        // Force takes the field away from alice.
        let forced = server_side_apply(Some(&live), &cm(json!({"a": "9"})), "bob", true)
            .unwrap()
            .object;
        assert_eq!(forced["data"], json!({"a": "9", "b": "2"}));
        assert_eq!(
            owners(&forced),
            [
                (
                    "alice".into(),
                    "Apply".into(),
                    json!({"f:data": {"f:b": {}}})
                ),
                ("bob".into(), "Apply".into(), json!({"f:data": {"f:a": {}}})),
            ]
        );
    }

    #[test]
    fn conflicts_with_several_fields_list_them_per_manager() {
        let mut live = cm(json!({"a": "1", "b": "2"}));
        track_update(None, &mut live, "kubectl", "Update");
        let err =
            match server_side_apply(Some(&live), &cm(json!({"a": "x", "b": "y"})), "me", false) {
                Err(e) => e,
                Ok(_) => panic!("expected a conflict"),
            };
        assert_eq!(
            err.message,
            "Apply failed with 2 conflicts: conflicts with \"kubectl\" using v1:\n- .data.a\n- .data.b"
        );
    }

    #[test]
    fn omitted_fields_are_removed_unless_someone_else_owns_them() {
        let live = server_side_apply(
            None,
            &cm(json!({"a": "1", "b": "2", "c": "3"})),
            "alice",
            false,
        )
        .unwrap()
        .object;
        let live = server_side_apply(Some(&live), &cm(json!({"c": "3"})), "bob", false)
            .unwrap()
            .object;
        let out = server_side_apply(Some(&live), &cm(json!({"a": "1"})), "alice", false)
            .unwrap()
            .object;
        assert_eq!(out["data"], json!({"a": "1", "c": "3"}));
        let out = server_side_apply(Some(&out), &cm(json!({})), "alice", false)
            .unwrap()
            .object;
        assert_eq!(out["data"], json!({"c": "3"}));
    }

    #[test]
    fn keyed_lists_merge_by_key_and_prune_items() {
        let svc = |ports: Value| {
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
                   "spec": {"ports": ports}})
        };
        let live = server_side_apply(
            None,
            &svc(json!([{"port": 80, "name": "http"}, {"port": 443, "name": "https"}])),
            "alice",
            false,
        )
        .unwrap()
        .object;
        let live = server_side_apply(
            Some(&live),
            &svc(json!([{"port": 8080, "name": "alt"}])),
            "bob",
            false,
        )
        .unwrap()
        .object;
        assert_eq!(
            live["spec"]["ports"],
            json!([{"port": 80, "name": "http"}, {"port": 443, "name": "https"}, {"port": 8080, "name": "alt"}])
        );
        let out = server_side_apply(
            Some(&live),
            &svc(json!([{"port": 443, "name": "https"}])),
            "alice",
            false,
        )
        .unwrap()
        .object;
        assert_eq!(
            out["spec"]["ports"],
            json!([{"port": 443, "name": "https"}, {"port": 8080, "name": "alt"}])
        );
    }

    #[test]
    fn atomic_maps_are_applied_and_owned_whole() {
        let svc = |selector: Value| {
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
                   "spec": {"selector": selector}})
        };
        let live = server_side_apply(
            None,
            &svc(json!({"app": "web", "tier": "front"})),
            "alice",
            false,
        )
        .unwrap()
        .object;
        assert_eq!(
            owners(&live),
            [(
                "alice".into(),
                "Apply".into(),
                json!({"f:spec": {"f:selector": {}}})
            )]
        );
        // Another applier's selector conflicts on the selector as a whole...
        let err = match server_side_apply(Some(&live), &svc(json!({"app": "api"})), "bob", false) {
            Err(e) => e,
            Ok(_) => panic!("expected a conflict"),
        };
        assert_eq!(
            err.message,
            "Apply failed with 1 conflict: conflict with \"alice\": .spec.selector"
        );
        // ...and replaces it whole: no key of alice's survives.
        let forced = server_side_apply(Some(&live), &svc(json!({"app": "api"})), "bob", true)
            .unwrap()
            .object;
        assert_eq!(forced["spec"]["selector"], json!({"app": "api"}));
        assert_eq!(
            owners(&forced),
            [(
                "bob".into(),
                "Apply".into(),
                json!({"f:spec": {"f:selector": {}}})
            )]
        );
    }

    #[test]
    fn an_applied_atomic_struct_is_one_field() {
        let event = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e"},
                           "involvedObject": {"kind": "Pod", "name": "p"}, "reason": "R"});
        let out = server_side_apply(None, &event, "alice", false)
            .unwrap()
            .object;
        assert_eq!(
            owners(&out),
            [(
                "alice".into(),
                "Apply".into(),
                json!({"f:involvedObject": {}, "f:reason": {}})
            )]
        );
    }

    #[test]
    fn updates_record_changed_fields_and_take_them_from_others() {
        let live = server_side_apply(None, &cm(json!({"a": "1"})), "alice", false)
            .unwrap()
            .object;
        let mut new = live.clone();
        new["data"]["a"] = json!("2");
        new["metadata"]["labels"] = json!({"x": "y"});
        track_update(Some(&live), &mut new, "kubectl-edit", "Update");
        assert_eq!(
            owners(&new),
            [(
                "kubectl-edit".into(),
                "Update".into(),
                json!({"f:data": {"f:a": {}}, "f:metadata": {"f:labels": {".": {}, "f:x": {}}}})
            )]
        );
    }

    #[test]
    fn first_apply_to_an_untracked_object_conflicts_with_its_existing_fields() {
        let live = cm(json!({"a": "1"}));
        let err = match server_side_apply(Some(&live), &cm(json!({"a": "2"})), "me", false) {
            Err(e) => e,
            Ok(_) => panic!("expected a conflict"),
        };
        assert_eq!(
            err.message,
            "Apply failed with 1 conflict: conflict with \"before-first-apply\" using v1: .data.a"
        );
    }

    #[test]
    fn managed_fields_in_an_applied_config_are_rejected() {
        let mut c = cm(json!({}));
        c["metadata"]["managedFields"] = json!([]);
        assert!(matches!(server_side_apply(None, &c, "m", false), Err(e) if e.code == 400));
    }
}
