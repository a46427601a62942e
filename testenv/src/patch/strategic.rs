//! Strategic merge patch (k8s.io/apimachinery strategicpatch): a JSON merge patch in which lists
//! with a `merge` patch strategy are merged element by element — maps by their merge key,
//! primitives as a set — and the directives `$patch` (replace, delete), `$retainKeys`,
//! `$setElementOrder/<list>` and `$deleteFromPrimitiveList/<list>` steer the merge.
//!
//! The patch strategy of each field comes from the kind's OpenAPI schema (see
//! [`crate::schemas::PATCH_METADATA`]), the same metadata kubectl reads to build such patches.

// ApiError is the crate's one error type; its size is shared by every API path.
#![allow(clippy::result_large_err)]

use serde_json::{Map, Value};

use crate::meta::go_quote;
use crate::schemas::{builtin_schemas, schema_ref};
use crate::status::ApiError;

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";

/// Where in the schema a value sits: its resolved schema, if known.
#[derive(Clone, Copy)]
struct Meta<'a> {
    schema: Option<&'a Value>,
}

/// How a field's list merges.
struct FieldMeta<'a> {
    /// The schema of the field's value (of the items, for lists).
    child: Meta<'a>,
    /// The strategy names (`merge`, `retainKeys`).
    strategies: Vec<&'a str>,
    /// The merge key of a list of maps.
    merge_key: Option<&'a str>,
}

fn resolve(schema: Option<&Value>) -> Option<&Value> {
    let s = schema?;
    match schema_ref(s) {
        Some(name) => builtin_schemas().components.get(name),
        None => Some(s),
    }
}

impl<'a> Meta<'a> {
    fn of_kind(group: &str, kind: &str) -> Meta<'static> {
        let schemas = builtin_schemas();
        let name = schemas
            .kinds
            .iter()
            .find(|(g, _, k, _)| g == group && k == kind)
            .map(|(_, _, _, n)| n.as_str());
        Meta {
            schema: name.and_then(|n| schemas.components.get(n)),
        }
    }

    fn field(&self, key: &str) -> FieldMeta<'a> {
        let prop = self
            .schema
            .and_then(|s| s.get("properties"))
            .and_then(|p| p.get(key));
        let strategies = prop
            .and_then(|p| p.get("x-kubernetes-patch-strategy"))
            .and_then(Value::as_str)
            .map(|s| s.split(',').collect())
            .unwrap_or_default();
        let merge_key = prop
            .and_then(|p| p.get("x-kubernetes-patch-merge-key"))
            .and_then(Value::as_str);
        let resolved = resolve(prop);
        let child = match resolved.and_then(|r| r.get("items")) {
            Some(items) => resolve(Some(items)),
            None => resolved,
        };
        FieldMeta {
            child: Meta { schema: child },
            strategies,
            merge_key,
        }
    }
}

impl FieldMeta<'_> {
    fn has(&self, strategy: &str) -> bool {
        self.strategies.contains(&strategy)
    }
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(message)
}

/// Applies a strategic merge patch for an object of `kind`.
pub fn strategic_merge_patch(
    original: &Value,
    patch: &Value,
    group: &str,
    kind: &str,
) -> Result<Value, ApiError> {
    let Some(patch_map) = patch.as_object() else {
        return Err(bad(format!(
            "couldn't get version/kind; json parse error: json: cannot unmarshal array into Go value of type {}",
            crate::decode::GO_TYPE_META
        )));
    };
    let base = original.as_object().cloned().unwrap_or_default();
    let merged = merge_map(base, patch_map, Meta::of_kind(group, kind))?;
    Ok(Value::Object(merged))
}

fn merge_map(
    mut original: Map<String, Value>,
    patch: &Map<String, Value>,
    meta: Meta<'_>,
) -> Result<Map<String, Value>, ApiError> {
    if let Some(directive) = patch.get(DIRECTIVE) {
        return match directive.as_str() {
            Some("replace") => Ok(strip_directives(patch, meta)),
            Some("delete") => Ok(Map::new()),
            _ => Err(bad(format!(
                "Unexpected kind of patch directive: {directive}"
            ))),
        };
    }
    if let Some(retain) = patch.get(RETAIN_KEYS) {
        let keep: Vec<&str> = retain
            .as_array()
            .ok_or_else(|| bad("$retainKeys must be a list of strings"))?
            .iter()
            .filter_map(Value::as_str)
            .collect();
        for k in patch.keys() {
            if !k.starts_with('$') && !keep.contains(&k.as_str()) && !patch[k].is_null() {
                return Err(bad(format!(
                    "The content of the patch doesn't match the $retainKeys list: key {} is not in $retainKeys",
                    go_quote(k)
                )));
            }
        }
        original.retain(|k, _| keep.contains(&k.as_str()));
    }
    let mut orders: Vec<(&str, &Value)> = Vec::new();
    for (key, value) in patch {
        if key == RETAIN_KEYS {
            continue;
        }
        if let Some(field) = key.strip_prefix(SET_ELEMENT_ORDER) {
            orders.push((field, value));
            continue;
        }
        if let Some(field) = key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
            let remove = value
                .as_array()
                .ok_or_else(|| bad(format!("{key} must be a list")))?;
            if let Some(Value::Array(list)) = original.get_mut(field) {
                list.retain(|v| !remove.contains(v));
            }
            continue;
        }
        if value.is_null() {
            original.remove(key);
            continue;
        }
        let field = meta.field(key);
        let merged = match (original.remove(key), value) {
            (Some(Value::Object(o)), Value::Object(p)) => {
                Value::Object(merge_map(o, p, field.child)?)
            }
            (Some(Value::Array(o)), Value::Array(p)) if field.has("merge") => {
                Value::Array(merge_list(o, p, &field)?)
            }
            (None, Value::Object(p)) => Value::Object(merge_map(Map::new(), p, field.child)?),
            (None, Value::Array(p)) if field.has("merge") => {
                Value::Array(merge_list(Vec::new(), p, &field)?)
            }
            (_, Value::Array(p)) => Value::Array(strip_list(p, field.child)),
            (_, v) => v.clone(),
        };
        if merged.as_object().is_some_and(|m| m.is_empty())
            && value.get(DIRECTIVE).and_then(Value::as_str) == Some("delete")
        {
            continue;
        }
        original.insert(key.clone(), merged);
    }
    for (field, order) in orders {
        let order = order
            .as_array()
            .ok_or_else(|| bad(format!("{SET_ELEMENT_ORDER}{field} must be a list")))?;
        let merge_key = meta.field(field).merge_key;
        if let Some(Value::Array(list)) = original.get_mut(field) {
            reorder(list, order, merge_key);
        }
    }
    Ok(original)
}

fn strip_directives(patch: &Map<String, Value>, meta: Meta<'_>) -> Map<String, Value> {
    patch
        .iter()
        .filter(|(k, _)| !k.starts_with('$'))
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| {
            let field = meta.field(k);
            let v = match v {
                Value::Object(m) => Value::Object(strip_directives(m, field.child)),
                Value::Array(a) => Value::Array(strip_list(a, field.child)),
                other => other.clone(),
            };
            (k.clone(), v)
        })
        .collect()
}

fn strip_list(list: &[Value], meta: Meta<'_>) -> Vec<Value> {
    list.iter()
        .filter(|v| !is_directive_element(v))
        .map(|v| match v {
            Value::Object(m) => Value::Object(strip_directives(m, meta)),
            other => other.clone(),
        })
        .collect()
}

fn is_directive_element(v: &Value) -> bool {
    v.get(DIRECTIVE).is_some()
}

fn merge_list(
    mut original: Vec<Value>,
    patch: &[Value],
    field: &FieldMeta<'_>,
) -> Result<Vec<Value>, ApiError> {
    if patch
        .iter()
        .any(|v| v.get(DIRECTIVE).and_then(Value::as_str) == Some("replace"))
    {
        return Ok(strip_list(patch, field.child));
    }
    let Some(key) = field.merge_key else {
        // A merged list of primitives is a set union, original order first.
        for v in patch {
            if !original.contains(v) {
                original.push(v.clone());
            }
        }
        return Ok(original);
    };
    for element in patch {
        let Some(p) = element.as_object() else {
            if !original.contains(element) {
                original.push(element.clone());
            }
            continue;
        };
        let Some(id) = p.get(key) else {
            return Err(bad(format!(
                "map: {} does not contain declared merge key: {key}",
                Value::Object(p.clone())
            )));
        };
        let pos = original.iter().position(|o| o.get(key) == Some(id));
        match p.get(DIRECTIVE).and_then(Value::as_str) {
            Some("delete") => {
                original.retain(|o| o.get(key) != Some(id));
            }
            Some("merge") | None => match pos {
                Some(i) => {
                    let base = original[i].as_object().cloned().unwrap_or_default();
                    let mut without = p.clone();
                    without.remove(DIRECTIVE);
                    original[i] = Value::Object(merge_map(base, &without, field.child)?);
                }
                None => {
                    let mut without = p.clone();
                    without.remove(DIRECTIVE);
                    original.push(Value::Object(merge_map(Map::new(), &without, field.child)?));
                }
            },
            Some(other) => {
                return Err(bad(format!("Unexpected kind of patch directive: {other}")));
            }
        }
    }
    Ok(original)
}

/// `$setElementOrder`: the listed elements take the order of the list in the slots they occupy;
/// elements only the server has keep their places.
fn reorder(list: &mut [Value], order: &[Value], merge_key: Option<&str>) {
    let identity = |v: &Value| -> Value {
        match merge_key {
            Some(k) => v.get(k).cloned().unwrap_or(Value::Null),
            None => v.clone(),
        }
    };
    let rank: Vec<Value> = order.iter().map(&identity).collect();
    let position = |v: &Value| rank.iter().position(|r| *r == identity(v));
    let mut listed: Vec<Value> = list
        .iter()
        .filter(|v| position(v).is_some())
        .cloned()
        .collect();
    listed.sort_by_key(|v| position(v).unwrap_or(usize::MAX));
    let mut next = listed.into_iter();
    for slot in list.iter_mut() {
        if position(slot).is_some()
            && let Some(v) = next.next()
        {
            *slot = v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn smp(original: Value, patch: Value, kind: &str) -> Value {
        strategic_merge_patch(&original, &patch, "", kind).unwrap()
    }

    #[test]
    fn service_ports_merge_by_port() {
        let svc = json!({"spec": {"ports": [{"name": "http", "port": 80, "protocol": "TCP"},
            {"name": "https", "port": 443, "protocol": "TCP"}], "selector": {"app": "web"}}});
        let out = smp(
            svc,
            json!({"spec": {"ports": [{"port": 443, "name": "tls"}, {"port": 8080, "name": "alt"}],
                "selector": {"tier": "fe"}}}),
            "Service",
        );
        assert_eq!(
            out["spec"]["ports"],
            json!([{"name": "http", "port": 80, "protocol": "TCP"},
                {"name": "tls", "port": 443, "protocol": "TCP"},
                {"name": "alt", "port": 8080}])
        );
        assert_eq!(out["spec"]["selector"], json!({"app": "web", "tier": "fe"}));
    }

    #[test]
    fn delete_replace_and_order_directives() {
        let svc = json!({"spec": {"ports": [{"port": 80}, {"port": 81}, {"port": 82}]}});
        let out = smp(
            svc.clone(),
            json!({"spec": {"$setElementOrder/ports": [{"port": 82}, {"port": 80}],
                "ports": [{"$patch": "delete", "port": 81}]}}),
            "Service",
        );
        assert_eq!(out["spec"]["ports"], json!([{"port": 82}, {"port": 80}]));
        let out = smp(
            svc,
            json!({"spec": {"ports": [{"$patch": "replace"}, {"port": 9}]}}),
            "Service",
        );
        assert_eq!(out["spec"]["ports"], json!([{"port": 9}]));
        let out = smp(
            json!({"spec": {"selector": {"a": "1"}, "type": "ClusterIP"}}),
            json!({"spec": {"$patch": "replace", "selector": {"b": "2"}}}),
            "Service",
        );
        assert_eq!(out["spec"], json!({"selector": {"b": "2"}}));
    }

    #[test]
    fn finalizers_are_a_merged_set_and_owner_references_merge_by_uid() {
        let obj = json!({"metadata": {"finalizers": ["a", "b"],
            "ownerReferences": [{"uid": "1", "name": "x"}]}});
        let out = smp(
            obj,
            json!({"metadata": {"finalizers": ["c", "a"], "$deleteFromPrimitiveList/finalizers": ["b"],
                "ownerReferences": [{"uid": "2", "name": "y"}, {"uid": "1", "controller": true}]}}),
            "ConfigMap",
        );
        assert_eq!(out["metadata"]["finalizers"], json!(["a", "c"]));
        assert_eq!(
            out["metadata"]["ownerReferences"],
            json!([{"uid": "1", "name": "x", "controller": true}, {"uid": "2", "name": "y"}])
        );
    }

    #[test]
    fn containers_env_and_conditions_merge_by_key() {
        let pod = json!({"spec": {"containers": [{"name": "app", "image": "a:1",
                "env": [{"name": "A", "value": "1"}], "ports": [{"containerPort": 80}]}]},
            "status": {"conditions": [{"type": "Ready", "status": "False"}]}});
        let out = smp(
            pod,
            json!({"spec": {"containers": [{"name": "app", "image": "a:2",
                    "env": [{"name": "B", "value": "2"}]}, {"name": "side", "image": "s"}]},
                "status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
            "Pod",
        );
        assert_eq!(
            out["spec"]["containers"],
            json!([{"name": "app", "image": "a:2",
                    "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                    "ports": [{"containerPort": 80}]},
                {"name": "side", "image": "s"}])
        );
        assert_eq!(
            out["status"]["conditions"],
            json!([{"type": "Ready", "status": "True"}])
        );
    }

    #[test]
    fn atomic_lists_are_replaced_and_nulls_delete() {
        let slice = json!({"endpoints": [{"addresses": ["10.0.0.1"]}], "ports": [{"port": 1}]});
        let out = strategic_merge_patch(
            &slice,
            &json!({"endpoints": [{"addresses": ["10.0.0.2"]}], "ports": null}),
            "discovery.k8s.io",
            "EndpointSlice",
        )
        .unwrap();
        assert_eq!(out, json!({"endpoints": [{"addresses": ["10.0.0.2"]}]}));
    }

    #[test]
    fn retain_keys_clears_other_fields() {
        let d = json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}});
        let out = strategic_merge_patch(
            &d,
            &json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
            "apps",
            "Deployment",
        )
        .unwrap();
        assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
    }

    #[test]
    fn bad_patches_are_400() {
        let err = strategic_merge_patch(&json!({}), &json!([1]), "", "Service").unwrap_err();
        assert_eq!(err.code, 400);
        let err = strategic_merge_patch(
            &json!({"spec": {"ports": [{"port": 1}]}}),
            &json!({"spec": {"ports": [{"name": "x"}]}}),
            "",
            "Service",
        )
        .unwrap_err();
        assert_eq!(err.code, 400);
    }
}
