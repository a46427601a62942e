//! The four PATCH content types of the Kubernetes API.

pub mod apply;
pub mod strategic;

use serde_json::Value;

use crate::status::ApiError;

/// The patch content types the API accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/merge-patch+json` (RFC 7386).
    Merge,
    /// `application/json-patch+json` (RFC 6902).
    Json,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// `application/apply-patch+yaml` (server-side apply).
    Apply,
}

impl PatchType {
    /// Parses a Content-Type header (parameters ignored).
    pub fn from_content_type(ct: &str) -> Option<Self> {
        match ct.split(';').next().unwrap_or("").trim() {
            "application/merge-patch+json" => Some(Self::Merge),
            "application/json-patch+json" => Some(Self::Json),
            "application/strategic-merge-patch+json" => Some(Self::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => Some(Self::Apply),
            _ => None,
        }
    }
}

/// Applies an RFC 7386 merge patch.
pub fn merge_patch(original: &Value, patch: &Value) -> Result<Value, ApiError> {
    if !patch.is_object() {
        return Err(ApiError::bad_request(format!(
            "couldn't get version/kind; json parse error: json: cannot unmarshal array into Go value of type {}",
            crate::decode::GO_TYPE_META
        )));
    }
    let mut out = original.clone();
    json_patch::merge(&mut out, patch);
    Ok(out)
}

/// Applies an RFC 6902 JSON patch as kube-apiserver does (evanphx/json-patch v4 behind its
/// patch handler): 400 when it cannot be decoded, a detail-less 422 when it cannot be applied.
///
/// `strict_decode` is whether `fieldValidation` is `Strict` or `Warn`: kube-apiserver then decodes
/// the operations into its own type first, and a malformed patch is reported in that type's words.
pub fn json_patch(original: &Value, patch: &Value, strict_decode: bool) -> Result<Value, ApiError> {
    if let Some(message) = json_patch_decode_error(patch, strict_decode) {
        return Err(ApiError::bad_request(message));
    }
    let operations = patch.as_array().map(Vec::as_slice).unwrap_or_default();
    let mut out = original.clone();
    for operation in operations {
        // An operation json-patch cannot represent (an unknown `op`, no `path`) is one Go's
        // decoded and then failed to apply: the same 422.
        let parsed: json_patch::PatchOperation = serde_json::from_value(operation.clone())
            .map_err(|_| ApiError::generic_unprocessable())?;
        let parsed = replace_of_missing_key_as_add(&out, parsed);
        json_patch::patch(&mut out, std::slice::from_ref(&parsed))
            .map_err(|_| ApiError::generic_unprocessable())?;
    }
    Ok(out)
}

/// evanphx/json-patch v4 reads a missing object member as null and replaces it, so `replace` of
/// a key an object lacks adds it (RFC 6902 would refuse); an array index out of range still fails.
fn replace_of_missing_key_as_add(
    doc: &Value,
    operation: json_patch::PatchOperation,
) -> json_patch::PatchOperation {
    let json_patch::PatchOperation::Replace(replace) = operation else {
        return operation;
    };
    let path = replace.path.to_string();
    let parent_is_object = path
        .rsplit_once('/')
        .and_then(|(parent, _)| doc.pointer(parent))
        .is_some_and(Value::is_object);
    if parent_is_object && doc.pointer(&path).is_none() {
        json_patch::PatchOperation::Add(json_patch::AddOperation {
            path: replace.path,
            value: replace.value,
        })
    } else {
        json_patch::PatchOperation::Replace(replace)
    }
}

/// What Go says when the patch's JSON does not fit the type it is decoded into: kube-apiserver's
/// `[]handlers.jsonPatchOp` (strict or warning field validation), or json-patch's own
/// `jsonpatch.Patch`.
fn json_patch_decode_error(patch: &Value, strict_decode: bool) -> Option<String> {
    let kind = gocompat::json::value_kind;
    let Some(operations) = patch.as_array() else {
        if patch.is_null() {
            return None;
        }
        return Some(if strict_decode {
            format!(
                "error decoding patch: json: cannot unmarshal {} into Go value of type []handlers.jsonPatchOp",
                kind(patch)
            )
        } else {
            format!(
                "json: cannot unmarshal {} into Go value of type jsonpatch.Patch",
                kind(patch)
            )
        });
    };
    for operation in operations {
        match operation {
            Value::Object(fields) if strict_decode => {
                for field in ["op", "path", "from"] {
                    if let Some(value) =
                        fields.get(field).filter(|v| !v.is_string() && !v.is_null())
                    {
                        return Some(format!(
                            "error decoding patch: json: cannot unmarshal {} into Go struct field jsonPatchOp.{field} of type string",
                            kind(value)
                        ));
                    }
                }
            }
            Value::Object(_) | Value::Null => {}
            other if strict_decode => {
                return Some(format!(
                    "error decoding patch: json: cannot unmarshal {} into Go value of type handlers.jsonPatchOp",
                    kind(other)
                ));
            }
            other => {
                return Some(format!(
                    "json: cannot unmarshal {} into Go value of type jsonpatch.Operation",
                    kind(other)
                ));
            }
        }
    }
    None
}

/// The text kube-apiserver gives a patch body that is not JSON: Go's syntax error.
pub fn patch_syntax_error(body: &[u8]) -> ApiError {
    let detail = gocompat::json::syntax_error(body)
        .unwrap_or_else(|| "the patch is not valid JSON".to_string());
    ApiError::bad_request(format!("error decoding patch: {detail}"))
}

/// A value as Go's `json.Marshal` writes it, keys in the order held: compact, strings
/// HTML-escaped, numbers as a float64 prints them.
pub fn go_marshal(value: &Value) -> String {
    let mut out = String::new();
    push_go_generic(&mut out, value);
    out
}

/// `value` with the keys of every object sorted, as Go marshals a generic map.
pub fn sorted_deep(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sorted_deep(&map[k])))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted_deep).collect()),
        other => other.clone(),
    }
}

fn sort_level(value: &mut Value) {
    if let Value::Object(map) = value {
        let mut entries: Vec<(String, Value)> = std::mem::take(map).into_iter().collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        map.extend(entries);
    }
}

/// The text of a merge patch's result as evanphx/json-patch (v4) writes it, which the patch
/// handler quotes when the result does not decode: `patched` holds the result with untouched
/// parts in Go's struct order; the levels the patch merged into are re-encoded from maps (keys
/// sorted), and so are the objects and lists it brought in, nulls pruned.
pub fn merge_patch_text(old: &Value, patch: &Value, patched: &Value) -> String {
    let mut doc = patched.clone();
    sort_along_merge(&mut doc, old, patch);
    go_marshal(&doc)
}

fn sort_along_merge(doc: &mut Value, old: &Value, patch: &Value) {
    sort_level(doc);
    let (Some(patch), Some(doc)) = (patch.as_object(), doc.as_object_mut()) else {
        return;
    };
    for (k, pv) in patch {
        let Some(dv) = doc.get_mut(k) else {
            continue;
        };
        match old.get(k) {
            Some(cur) if cur.is_object() && pv.is_object() => sort_along_merge(dv, cur, pv),
            // An object kept as the patch sent it (the patch value is no object).
            Some(cur) if cur.is_object() => {}
            // New, or replacing a non-object: parsed to prune nulls.
            _ => *dv = sorted_deep(dv),
        }
    }
}

/// As [`merge_patch_text`] for a JSON patch: the containers its operations' paths lead through
/// are re-encoded from maps (keys sorted); values keep the order they were sent in.
pub fn json_patch_text(operations: &Value, patched: &Value) -> String {
    let mut doc = patched.clone();
    sort_level(&mut doc);
    for op in operations.as_array().into_iter().flatten() {
        for key in ["path", "from"] {
            if let Some(path) = op.get(key).and_then(Value::as_str) {
                sort_along_pointer(&mut doc, path);
            }
        }
    }
    go_marshal(&doc)
}

fn sort_along_pointer(doc: &mut Value, pointer: &str) {
    let tokens: Vec<String> = pointer
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect();
    let mut node = doc;
    // Every container before the last token is parsed on the way.
    for token in tokens.iter().take(tokens.len().saturating_sub(1)) {
        let next = match node {
            Value::Object(map) => map.get_mut(token),
            Value::Array(items) => token.parse::<usize>().ok().and_then(|i| items.get_mut(i)),
            _ => None,
        };
        let Some(next) = next else {
            return;
        };
        sort_level(next);
        node = next;
    }
}

/// A strategic merge patch as Go's `%+v` prints the generic map (`map[data:map[k:w] extra:1]`),
/// which the patch handler quotes when the patched object has unknown fields.
pub fn go_format_v(value: &Value) -> String {
    match value {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => go_float_v(n.as_f64().unwrap_or(0.0)),
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(go_format_v).collect();
            format!("[{}]", items.join(" "))
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let entries: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{k}:{}", go_format_v(&map[k])))
                .collect();
            format!("map[{}]", entries.join(" "))
        }
    }
}

/// A float64 as `%v` prints it: shortest digits, exponent form from 1e+06 up and below 1e-04.
fn go_float_v(f: f64) -> String {
    go_shortest(f, 1e-4..1e6)
}

/// A float64 in Go's shortest digits, in strconv's 'e' form (a two-digit exponent at least)
/// when its magnitude is outside `plain`.
fn go_shortest(f: f64, plain: std::ops::Range<f64>) -> String {
    let abs = f.abs();
    if abs != 0.0 && !plain.contains(&abs) {
        let s = format!("{f:e}");
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let (sign, digits) = match exp.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', exp),
        };
        return format!("{mantissa}e{sign}{digits:0>2}");
    }
    if f.fract() == 0.0 {
        format!("{f:.0}")
    } else {
        f.to_string()
    }
}

fn push_go_generic(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&go_float(n)),
        Value::String(s) => {
            out.push('"');
            gocompat::quote::push_go_json_escaped(out, s);
            out.push('"');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_go_generic(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push('"');
                gocompat::quote::push_go_json_escaped(out, k);
                out.push_str("\":");
                push_go_generic(out, v);
            }
            out.push('}');
        }
    }
}

/// A JSON number as `encoding/json` writes a float64: plain digits below 1e21, else exponent
/// form (`1e+21`).
fn go_float(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64().filter(|i| i.unsigned_abs() < 1 << 53) {
        return i.to_string();
    }
    go_shortest(n.as_f64().unwrap_or(0.0), 1e-6..1e21)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_merge_patch_result_is_sorted_where_the_patch_went() {
        let old = serde_json::json!({"metadata": {"name": "c", "labels": {"b": "1", "a": "2"},
            "annotations": {"z": "1"}}, "kind": "ConfigMap", "data": {"k": "v"}});
        let patch = serde_json::json!({"metadata": {"labels": {"c": "3"}},
            "extra": {"y": 1, "x": null, "w": 2}});
        let patched = serde_json::json!({"metadata": {"name": "c",
            "labels": {"b": "1", "a": "2", "c": "3"}, "annotations": {"z": "1"}},
            "kind": "ConfigMap", "data": {"k": "v"}, "extra": {"y": 1, "w": 2}});
        assert_eq!(
            merge_patch_text(&old, &patch, &patched),
            r#"{"data":{"k":"v"},"extra":{"w":2,"y":1},"kind":"ConfigMap","metadata":{"annotations":{"z":"1"},"labels":{"a":"2","b":"1","c":"3"},"name":"c"}}"#
        );
        let untouched = serde_json::json!({"metadata": {"name": "c", "labels": {"b": "1"}}});
        assert_eq!(
            merge_patch_text(
                &untouched,
                &serde_json::json!({"x": 1}),
                &serde_json::json!({
                "metadata": {"name": "c", "labels": {"b": "1"}}, "x": 1})
            ),
            r#"{"metadata":{"name":"c","labels":{"b":"1"}},"x":1}"#
        );
    }

    #[test]
    fn a_json_patch_result_is_sorted_along_the_operations_paths() {
        let ops = serde_json::json!([{"op": "add", "path": "/metadata/labels/x", "value": "1"}]);
        let patched = serde_json::json!({"metadata": {"name": "c", "labels": {"x": "1", "a": "2"}},
            "data": {"z": "1", "k": "v"}});
        assert_eq!(
            json_patch_text(&ops, &patched),
            r#"{"data":{"z":"1","k":"v"},"metadata":{"labels":{"a":"2","x":"1"},"name":"c"}}"#
        );
    }

    #[test]
    fn a_strategic_patch_prints_as_go_percent_v() {
        let patch = serde_json::json!({"extra": 1, "data": {"k": "w"}, "l": [1e6, null, 2.5]});
        assert_eq!(
            go_format_v(&patch),
            "map[data:map[k:w] extra:1 l:[1e+06 <nil> 2.5]]"
        );
    }

    #[test]
    fn go_marshal_escapes_and_prints_numbers_as_go() {
        let v = serde_json::json!({"kind": "ConfigMap", "data": {"b": "<&>", "a": 1},
            "apiVersion": "v1", "list": [1.5, true, null], "big": 1e21, "small": 1e-7});
        assert_eq!(
            go_marshal(&sorted_deep(&v)),
            r#"{"apiVersion":"v1","big":1e+21,"data":{"a":1,"b":"\u003c\u0026\u003e"},"kind":"ConfigMap","list":[1.5,true,null],"small":1e-07}"#
        );
    }
    use serde_json::json;

    #[test]
    fn json_patch_replaces_a_missing_key_as_go_does() {
        let doc = json!({"data": {"k": "v"}, "list": [1]});
        let out = json_patch(
            &doc,
            &json!([{"op": "replace", "path": "/data/absent", "value": "x"}]),
            true,
        )
        .unwrap();
        assert_eq!(out["data"], json!({"k": "v", "absent": "x"}));
        let err = json_patch(
            &doc,
            &json!([{"op": "replace", "path": "/list/3", "value": 2}]),
            true,
        )
        .unwrap_err();
        assert_eq!(err.code, 422);
    }

    #[test]
    fn json_patch_failures_are_the_generic_422() {
        let doc = json!({"data": {"k": "v"}});
        for patch in [
            json!([{"op": "test", "path": "/data/k", "value": "other"}]),
            json!([{"op": "remove", "path": "/data/absent"}]),
            json!([{"op": "frob", "path": "/data/k"}]),
            json!([{"op": "add"}]),
        ] {
            let err = json_patch(&doc, &patch, true).unwrap_err();
            assert_eq!(
                (err.code, err.reason.as_str(), err.message.as_str()),
                (
                    422,
                    "Invalid",
                    "the server rejected our request due to an error in our request"
                ),
                "{patch}"
            );
        }
    }

    #[test]
    fn json_patch_decode_errors_are_go_type_errors() {
        let doc = json!({});
        let err =
            |patch: Value, strict: bool| json_patch(&doc, &patch, strict).unwrap_err().message;
        assert_eq!(
            err(json!({"op": "add"}), true),
            "error decoding patch: json: cannot unmarshal object into Go value of type []handlers.jsonPatchOp"
        );
        assert_eq!(
            err(json!({"op": "add"}), false),
            "json: cannot unmarshal object into Go value of type jsonpatch.Patch"
        );
        assert_eq!(
            err(json!(["x"]), true),
            "error decoding patch: json: cannot unmarshal string into Go value of type handlers.jsonPatchOp"
        );
        assert_eq!(
            err(json!([{"op": "add", "path": 1}]), true),
            "error decoding patch: json: cannot unmarshal number into Go struct field jsonPatchOp.path of type string"
        );
    }

    #[test]
    fn patch_syntax_errors_are_go_s() {
        assert_eq!(
            patch_syntax_error(b"{\"data\":").message,
            "error decoding patch: unexpected end of JSON input"
        );
    }
}
