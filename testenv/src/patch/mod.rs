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

#[cfg(test)]
mod tests {
    use super::*;
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
