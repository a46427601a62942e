//! Decoding a built-in kind as kube-apiserver's JSON serializer does: fields the Go structs do not
//! have are dropped (and named, for `fieldValidation=Strict|Warn`), duplicate keys are found, and
//! a value of the wrong JSON type is a 400 naming the Go struct field, as `encoding/json` words it.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::resources::ResourceType;
use crate::schemas::{builtin_schemas, schema_ref};
use crate::status::ApiError;

/// What a request asked of field validation (`fieldValidation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    /// Drop unknown fields silently.
    Ignore,
    /// Drop them with a warning each (the default).
    Warn,
    /// Reject the request.
    Strict,
}

impl FieldValidation {
    /// Parses the query parameter (empty: `Warn`, upstream's default since 1.27).
    pub fn parse(value: Option<&str>) -> Result<Self, ApiError> {
        match value.unwrap_or("") {
            "" | "Warn" => Ok(Self::Warn),
            "Ignore" => Ok(Self::Ignore),
            "Strict" => Ok(Self::Strict),
            other => Err(ApiError::bad_request(format!(
                "fieldValidation must be one of Ignore, Warn or Strict, not {other:?}"
            ))),
        }
    }
}

/// The anonymous struct apimachinery reads a body's apiVersion and kind into, as Go names it
/// in a type error (`json: cannot unmarshal array into Go value of type struct { ... }`).
pub(crate) const GO_TYPE_META: &str = r#"struct { APIVersion string "json:\"apiVersion,omitempty\""; Kind string "json:\"kind,omitempty\"" }"#;

/// The problems strict decoding reports: `duplicate field "a.b"`, `unknown field "a.c"`.
#[derive(Debug, Default)]
pub struct StrictErrors(pub Vec<String>);

/// Drops the fields of `obj` that `rt`'s Go type does not have and checks value types; returns
/// the strict-decoding problems (duplicates in `raw` first, then unknown fields) in order. A type
/// error is the 400 a create or update body gets.
pub fn decode_builtin(
    rt: &ResourceType,
    raw: Option<&[u8]>,
    obj: &mut Value,
) -> Result<StrictErrors, ApiError> {
    decode_builtin_object(rt, raw, obj).map_err(|e| {
        let group_version = rt.api_version();
        ApiError::bad_request(format!(
            "{kind} in version \"{version}\" cannot be handled as a {kind}: {e}",
            kind = rt.kind,
            version = group_version.rsplit('/').next().unwrap_or(&group_version),
        ))
    })
}

/// As [`decode_builtin`], with a type error as `encoding/json`'s own text (`json: cannot
/// unmarshal ...`), which the patch handler words differently.
pub fn decode_builtin_object(
    rt: &ResourceType,
    raw: Option<&[u8]>,
    obj: &mut Value,
) -> Result<StrictErrors, String> {
    let schemas = builtin_schemas();
    let Some(name) = schemas.schema_name(&rt.group, &rt.version, &rt.kind) else {
        return Ok(StrictErrors::default());
    };
    let mut errors = StrictErrors::default();
    if let Some(raw) = raw {
        duplicates(raw, &mut errors.0);
    }
    let mut walk = Walk {
        components: &schemas.components,
        unknown: Vec::new(),
        type_error: None,
    };
    walk.object(name, obj, "", "");
    if let Some(e) = walk.type_error {
        return Err(e);
    }
    errors.0.extend(walk.unknown);
    Ok(errors)
}

struct Walk<'a> {
    components: &'a Map<String, Value>,
    unknown: Vec<String>,
    type_error: Option<String>,
}

fn go_type(schema: &Value, components: &Map<String, Value>) -> String {
    if let Some(r) = schema_ref(schema) {
        let short = r.rsplit('.').next().unwrap_or(r);
        return match components.get(r) {
            Some(s) if s.get("type").and_then(Value::as_str) == Some("string") => {
                format!("{}.{short}", go_package(r))
            }
            _ => format!("{}.{short}", go_package(r)),
        };
    }
    match (
        schema.get("type").and_then(Value::as_str),
        schema.get("format").and_then(Value::as_str),
    ) {
        (Some("integer"), Some(f)) => f.to_string(),
        (Some("integer"), None) => "int".into(),
        (Some("number"), _) => "float64".into(),
        (Some("boolean"), _) => "bool".into(),
        (Some("string"), Some("byte")) => "[]uint8".into(),
        (Some("string"), _) => "string".into(),
        (Some("array"), _) => match schema.get("items") {
            Some(items) => format!("[]{}", go_type(items, components)),
            None => "[]interface {}".into(),
        },
        (Some("object"), _) => match schema.get("additionalProperties") {
            Some(v) if v.is_object() => format!("map[string]{}", go_type(v, components)),
            _ => "map[string]interface {}".into(),
        },
        _ => "interface {}".into(),
    }
}

/// `io.k8s.api.core.v1.ServicePort` → `v1` (Go names types by their package's last element).
fn go_package(schema_name: &str) -> &str {
    let mut parts = schema_name.rsplit('.');
    parts.next();
    parts.next().unwrap_or("")
}

/// A map (`map[string]T` in Go) rather than a struct.
fn is_map(schema: &Value) -> bool {
    schema.get("additionalProperties").is_some() && schema.get("properties").is_none()
}

/// The fields Go declares as `omitempty` strings, per schema (`scripts/gen-omitempty-strings`
/// reads them from the Go structs): encoding/json drops them when empty, so `"clusterIP": ""` is
/// neither stored nor returned.
fn is_omitempty_string(schema: &str, field: &str) -> bool {
    static FIELDS: std::sync::OnceLock<HashMap<String, Vec<String>>> = std::sync::OnceLock::new();
    FIELDS
        .get_or_init(|| {
            let data: Value =
                serde_json::from_str(include_str!("omitempty_strings.json")).unwrap_or(Value::Null);
            serde_json::from_value(data["schemas"].clone()).unwrap_or_default()
        })
        .get(schema)
        .is_some_and(|fields| fields.iter().any(|f| f == field))
}

impl Walk<'_> {
    /// Walks an object of the component schema `name`. `path` is the field path for unknown
    /// fields (`spec.ports[0]`), `go_path` the one `encoding/json` names (`spec.ports`).
    fn object(&mut self, name: &str, value: &mut Value, path: &str, go_path: &str) {
        let Some(schema) = self.components.get(name) else {
            return;
        };
        let Some(props) = schema.get("properties").and_then(Value::as_object) else {
            return;
        };
        let Value::Object(map) = value else {
            return;
        };
        let struct_name = name.rsplit('.').next().unwrap_or(name);
        let keys: Vec<String> = map.keys().cloned().collect();
        for key in keys {
            let child_path = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            let Some(prop) = props.get(&key) else {
                self.unknown.push(format!("unknown field \"{child_path}\""));
                map.remove(&key);
                continue;
            };
            let child_go = if go_path.is_empty() {
                key.clone()
            } else {
                format!("{go_path}.{key}")
            };
            if let Some(v) = map.get_mut(&key) {
                self.value(prop, v, &child_path, &child_go, struct_name);
            }
            if self.type_error.is_some() {
                return;
            }
            // Go's `omitempty` drops nulls, empty maps and empty lists; the fields it keeps are
            // those OpenAPI marks required.
            let required = schema
                .get("required")
                .and_then(Value::as_array)
                .is_some_and(|r| r.iter().any(|k| k == key.as_str()));
            let empty = match map.get(&key) {
                Some(Value::Null) => true,
                Some(Value::String(text)) => text.is_empty() && is_omitempty_string(name, &key),
                Some(Value::Array(items)) => items.is_empty(),
                Some(Value::Object(m)) => m.is_empty() && is_map(prop),
                _ => false,
            };
            if empty && !required {
                map.remove(&key);
            }
        }
    }

    fn value(&mut self, schema: &Value, v: &mut Value, path: &str, go_path: &str, owner: &str) {
        if v.is_null() {
            return;
        }
        if let Some(r) = schema_ref(schema) {
            let target = self.components.get(r);
            let ty = target.and_then(|t| t.get("type")).and_then(Value::as_str);
            match ty {
                Some("object") | None if target.is_some_and(|t| t.get("properties").is_some()) => {
                    if !v.is_object() {
                        self.mismatch(v, path, go_path, owner, schema);
                        return;
                    }
                    let r = r.to_string();
                    self.object(&r, v, path, go_path);
                }
                _ => {
                    if let Some(t) = target {
                        let t = t.clone();
                        self.value(&t, v, path, go_path, owner);
                    }
                }
            }
            return;
        }
        let ok = match schema.get("type").and_then(Value::as_str) {
            Some("integer") => v.as_i64().is_some() || v.as_u64().is_some(),
            Some("number") => v.is_number(),
            Some("boolean") => v.is_boolean(),
            Some("string") => v.is_string(),
            Some("array") => v.is_array(),
            Some("object") => v.is_object(),
            _ => true,
        };
        if !ok {
            self.mismatch(v, path, go_path, owner, schema);
            return;
        }
        match v {
            Value::Array(items) => {
                if let Some(item_schema) = schema.get("items") {
                    for (i, item) in items.iter_mut().enumerate() {
                        self.value(item_schema, item, &format!("{path}[{i}]"), go_path, owner);
                        if self.type_error.is_some() {
                            return;
                        }
                    }
                }
            }
            Value::Object(map) => {
                if let Some(inner) = schema.get("additionalProperties").filter(|s| s.is_object()) {
                    for (k, item) in map.iter_mut() {
                        self.value(inner, item, &format!("{path}.{k}"), go_path, owner);
                        if self.type_error.is_some() {
                            return;
                        }
                    }
                }
            }
            // A `[]byte` field: encoding/json decodes the string as padded standard base64.
            Value::String(text) if schema.get("format").and_then(Value::as_str) == Some("byte") => {
                match gocompat::base64::std_canonical(text) {
                    // Stored as Go writes the bytes back.
                    Some(canonical) => *text = canonical,
                    None => {
                        let at = gocompat::base64::std_decode_error(text).unwrap_or(0);
                        self.type_error = Some(format!("illegal base64 data at input byte {at}"));
                    }
                }
            }
            _ => {}
        }
    }

    fn mismatch(&mut self, v: &Value, _path: &str, go_path: &str, owner: &str, schema: &Value) {
        if self.type_error.is_none() {
            self.type_error = Some(format!(
                "json: cannot unmarshal {} into Go struct field {owner}.{go_path} of type {}",
                gocompat::json::value_kind(v),
                go_type(schema, self.components)
            ));
        }
    }
}

/// Finds duplicate object keys in a JSON document: `duplicate field "data.k"`.
fn duplicates(raw: &[u8], out: &mut Vec<String>) {
    enum Frame {
        Object(Vec<String>, Option<String>),
        Array(usize),
    }
    let mut stack: Vec<Frame> = Vec::new();
    let path = |stack: &[Frame]| {
        let mut p = String::new();
        for f in stack {
            match f {
                Frame::Object(_, Some(k)) => {
                    if !p.is_empty() {
                        p.push('.');
                    }
                    p.push_str(k);
                }
                Frame::Array(i) => p.push_str(&format!("[{i}]")),
                Frame::Object(_, None) => {}
            }
        }
        p
    };
    let mut i = 0;
    let mut expect_key = false;
    while i < raw.len() {
        match raw[i] {
            b'{' => {
                stack.push(Frame::Object(Vec::new(), None));
                expect_key = true;
            }
            b'[' => stack.push(Frame::Array(0)),
            b'}' | b']' => {
                stack.pop();
                expect_key = false;
            }
            b',' => match stack.last_mut() {
                Some(Frame::Array(n)) => *n += 1,
                Some(Frame::Object(_, key)) => {
                    *key = None;
                    expect_key = true;
                }
                None => {}
            },
            b'"' => {
                let start = i + 1;
                let mut j = start;
                let mut text = String::new();
                while j < raw.len() && raw[j] != b'"' {
                    if raw[j] == b'\\' {
                        j += 1;
                    }
                    j += 1;
                }
                if let Ok(s) =
                    serde_json::from_slice::<String>(&raw[start - 1..(j + 1).min(raw.len())])
                {
                    text = s;
                }
                i = j;
                if expect_key {
                    expect_key = false;
                    let len = stack.len();
                    if let Some(Frame::Object(seen, key)) = stack.last_mut() {
                        if seen.contains(&text) {
                            *key = Some(text.clone());
                            let p = path(&stack[..len]);
                            out.push(format!("duplicate field \"{p}\""));
                        } else {
                            seen.push(text.clone());
                            *key = Some(text);
                        }
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_are_named_by_path() {
        let mut out = Vec::new();
        duplicates(
            br#"{"a":{"k":"v","k":"w"},"l":[{"x":1},{"x":1,"x":2}],"s":"{\"a\":1,\"a\":2}"}"#,
            &mut out,
        );
        assert_eq!(
            out,
            ["duplicate field \"a.k\"", "duplicate field \"l[1].x\""]
        );
    }
}
