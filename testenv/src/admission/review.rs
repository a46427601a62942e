//! AdmissionReview v1: the request testenv sends, the checks it makes on the answer (with
//! kube-apiserver's texts), and `ToStatusErr`, which turns a denial into the client's error.

use base64::Engine;
use serde_json::{Map, Value, json};

use crate::meta::go_quote;
use crate::status::ApiError;

/// The request fields that do not come from the objects.
#[derive(Debug, Clone)]
pub struct ReviewRequest<'a> {
    /// Echoed back by the webhook.
    pub uid: &'a str,
    /// API group.
    pub group: &'a str,
    /// API version.
    pub version: &'a str,
    /// Kind.
    pub kind: &'a str,
    /// Plural resource.
    pub resource: &'a str,
    /// Subresource, empty for the main resource.
    pub subresource: &'a str,
    /// Object name (may be empty on create with generateName).
    pub name: &'a str,
    /// Namespace, empty for cluster-scoped objects.
    pub namespace: &'a str,
    /// `CREATE`, `UPDATE` or `DELETE`.
    pub operation: &'a str,
    /// Who is asking.
    pub username: &'a str,
    /// Whether the request is a dry run.
    pub dry_run: bool,
}

/// The AdmissionReview body for a request.
pub fn review_body(r: &ReviewRequest<'_>, object: Option<&Value>, old: Option<&Value>) -> Value {
    let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
    let gvr = json!({"group": r.group, "version": r.version, "resource": r.resource});
    let mut req = Map::new();
    req.insert("uid".into(), json!(r.uid));
    req.insert("kind".into(), gvk.clone());
    req.insert("resource".into(), gvr.clone());
    if !r.subresource.is_empty() {
        req.insert("subResource".into(), json!(r.subresource));
    }
    req.insert("requestKind".into(), gvk);
    req.insert("requestResource".into(), gvr);
    if !r.subresource.is_empty() {
        req.insert("requestSubResource".into(), json!(r.subresource));
    }
    if !r.name.is_empty() {
        req.insert("name".into(), json!(r.name));
    }
    if !r.namespace.is_empty() {
        req.insert("namespace".into(), json!(r.namespace));
    }
    req.insert("operation".into(), json!(r.operation));
    req.insert(
        "userInfo".into(),
        json!({"username": r.username, "groups": ["system:masters", "system:authenticated"]}),
    );
    req.insert("object".into(), object.cloned().unwrap_or(Value::Null));
    req.insert("oldObject".into(), old.cloned().unwrap_or(Value::Null));
    req.insert("dryRun".into(), json!(r.dry_run));
    let options_kind = match r.operation {
        "CREATE" => "CreateOptions",
        "UPDATE" => "UpdateOptions",
        _ => "DeleteOptions",
    };
    req.insert(
        "options".into(),
        json!({"apiVersion": "meta.k8s.io/v1", "kind": options_kind}),
    );
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": req})
}

/// A webhook's verified answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ReviewResponse {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// The decoded JSON Patch (mutating webhooks only).
    pub patch: Option<Value>,
    /// The denial's `metav1.Status`, if any.
    pub status: Option<Value>,
    /// Free-text warnings for the client.
    pub warnings: Vec<String>,
}

/// Checks an AdmissionReview answer as `VerifyAdmissionResponse` does; the error text is what
/// follows `received invalid webhook response: `.
pub fn verify_response(body: &Value, uid: &str, mutating: bool) -> Result<ReviewResponse, String> {
    let Some(resp) = body.get("response").filter(|r| r.is_object()) else {
        return Err("webhook response was absent".into());
    };
    let got_uid = resp.get("uid").and_then(Value::as_str).unwrap_or("");
    if got_uid != uid {
        return Err(format!(
            "expected response.uid={}, got {}",
            go_quote(uid),
            go_quote(got_uid)
        ));
    }
    let api_version = body.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = body.get("kind").and_then(Value::as_str).unwrap_or("");
    if api_version != "admission.k8s.io/v1" || kind != "AdmissionReview" {
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        return Err(format!(
            "expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got {group}/{version}, Kind={kind}"
        ));
    }
    let patch_text = resp.get("patch").and_then(Value::as_str).unwrap_or("");
    let patch_type = resp.get("patchType").and_then(Value::as_str).unwrap_or("");
    if mutating && !patch_text.is_empty() && patch_type.is_empty() {
        return Err("webhook returned response.patch but not response.patchType".into());
    }
    if mutating && patch_text.is_empty() && !patch_type.is_empty() {
        return Err("webhook returned response.patchType but not response.patch".into());
    }
    if !mutating && !patch_text.is_empty() {
        return Err("validating webhook may not return response.patch".into());
    }
    if !mutating && !patch_type.is_empty() {
        return Err("validating webhook may not return response.patchType".into());
    }
    if mutating && !patch_type.is_empty() && patch_type != "JSONPatch" {
        return Err(format!(
            "webhook returned invalid response.patchType of {}",
            go_quote(patch_type)
        ));
    }
    let patch = if patch_text.is_empty() {
        None
    } else {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(patch_text)
            .map_err(|e| format!("illegal base64 data in response.patch: {e}"))?;
        Some(serde_json::from_slice(&raw).map_err(|e| format!("invalid JSON patch: {e}"))?)
    };
    Ok(ReviewResponse {
        allowed: resp
            .get("allowed")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        patch,
        status: resp.get("status").filter(|s| s.is_object()).cloned(),
        warnings: resp
            .get("warnings")
            .and_then(Value::as_array)
            .map(|w| {
                w.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default(),
    })
}

/// `ToStatusErr`: the denial as the client sees it; code and details kept, message prefixed.
pub fn denial_error(webhook: &str, status: Option<&Value>) -> ApiError {
    let empty = json!({});
    let status = status.unwrap_or(&empty);
    let mut err = ApiError::from_status(status, 400);
    if err.code < 400 {
        err.code = 400;
    }
    let denied_by = format!("admission webhook {} denied the request", go_quote(webhook));
    err.message = if !err.message.is_empty() {
        format!("{denied_by}: {}", err.message)
    } else if !err.reason.is_empty() {
        format!("{denied_by}: {}", err.reason)
    } else {
        format!("{denied_by} without explanation")
    };
    err
}

/// A webhook that could not be called (transport, timeout, invalid answer) under `Fail`.
pub fn calling_error(webhook: &str, reason: &str) -> ApiError {
    ApiError::internal(format!(
        "failed calling webhook {}: {reason}",
        go_quote(webhook)
    ))
}

/// A dry-run request reaching a webhook with side effects.
pub fn dry_run_unsupported(webhook: &str) -> ApiError {
    ApiError::bad_request(format!(
        "admission webhook {} does not support dry run",
        go_quote(webhook)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow(extra: Value) -> Value {
        let mut resp = json!({"uid": "u1", "allowed": true});
        if let (Some(r), Some(e)) = (resp.as_object_mut(), extra.as_object()) {
            r.extend(e.clone());
        }
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": resp})
    }

    #[test]
    fn response_checks_use_the_apiserver_texts() {
        let check = |body: Value, mutating: bool| verify_response(&body, "u1", mutating).err();
        assert_eq!(
            check(
                json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}),
                true
            )
            .as_deref(),
            Some("webhook response was absent")
        );
        assert_eq!(
            check(
                json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                         "response": {"uid": "other", "allowed": true}}),
                true
            )
            .as_deref(),
            Some("expected response.uid=\"u1\", got \"other\"")
        );
        assert_eq!(
            check(
                json!({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview",
                         "response": {"uid": "u1", "allowed": true}}),
                true
            )
            .as_deref(),
            Some(
                "expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got admission.k8s.io/v1beta1, Kind=AdmissionReview"
            )
        );
        assert_eq!(
            check(allow(json!({"patch": "W10="})), true).as_deref(),
            Some("webhook returned response.patch but not response.patchType")
        );
        assert_eq!(
            check(allow(json!({"patchType": "JSONPatch"})), true).as_deref(),
            Some("webhook returned response.patchType but not response.patch")
        );
        assert_eq!(
            check(allow(json!({"patch": "W10="})), false).as_deref(),
            Some("validating webhook may not return response.patch")
        );
        assert_eq!(
            check(allow(json!({"patchType": "JSONPatch"})), false).as_deref(),
            Some("validating webhook may not return response.patchType")
        );
        assert_eq!(
            check(
                allow(json!({"patch": "W10=", "patchType": "MergePatch"})),
                true
            )
            .as_deref(),
            Some("webhook returned invalid response.patchType of \"MergePatch\"")
        );
    }

    #[test]
    fn the_spec_patch_decodes() {
        let body = allow(json!({"patchType": "JSONPatch",
            "patch": "W3sib3AiOiJhZGQiLCJwYXRoIjoiL3NwZWMvaXBGYW1pbHlQb2xpY3kiLCJ2YWx1ZSI6IlNpbmdsZVN0YWNrIn1d"}));
        let r = verify_response(&body, "u1", true).unwrap();
        assert_eq!(
            r.patch,
            Some(json!([{"op": "add", "path": "/spec/ipFamilyPolicy", "value": "SingleStack"}]))
        );
        assert!(r.allowed);
    }

    #[test]
    fn denials_keep_code_and_details_and_prefix_the_message() {
        let status = json!({"status": "Failure", "code": 422, "reason": "Invalid",
            "message": "Service \"web\" is invalid: spec.ports[0].name: Invalid value: \"123_abc\"",
            "details": {"name": "web", "kind": "Service", "causes": [{"reason": "FieldValueInvalid",
                "field": "spec.ports[0].name", "message": "Invalid value: \"123_abc\""}]}});
        let e = denial_error("svc.example.com", Some(&status));
        assert_eq!(e.code, 422);
        assert_eq!(e.reason, "Invalid");
        assert_eq!(
            e.message,
            "admission webhook \"svc.example.com\" denied the request: Service \"web\" is invalid: spec.ports[0].name: Invalid value: \"123_abc\""
        );
        assert_eq!(e.details, status.get("details").cloned());

        let low = denial_error("h", Some(&json!({"code": 200, "reason": "NotAllowed"})));
        assert_eq!(low.code, 400);
        assert_eq!(
            low.message,
            "admission webhook \"h\" denied the request: NotAllowed"
        );
        let bare = denial_error("h", None);
        assert_eq!(bare.code, 400);
        assert_eq!(
            bare.message,
            "admission webhook \"h\" denied the request without explanation"
        );
    }

    #[test]
    fn calling_errors_are_internal_errors() {
        let e = calling_error("h.example.com", "failed to call webhook: boom");
        assert_eq!(e.code, 500);
        assert_eq!(
            e.message,
            "Internal error occurred: failed calling webhook \"h.example.com\": failed to call webhook: boom"
        );
        assert_eq!(
            dry_run_unsupported("h").message,
            "admission webhook \"h\" does not support dry run"
        );
    }

    #[test]
    fn review_requests_carry_the_v1_fields() {
        let r = ReviewRequest {
            uid: "u",
            group: "",
            version: "v1",
            kind: "Service",
            resource: "services",
            subresource: "",
            name: "web",
            namespace: "default",
            operation: "CREATE",
            username: "admin",
            dry_run: false,
        };
        let body = review_body(&r, Some(&json!({"kind": "Service"})), None);
        assert_eq!(body["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(
            body["request"]["kind"],
            json!({"group": "", "version": "v1", "kind": "Service"})
        );
        assert_eq!(body["request"]["requestResource"]["resource"], "services");
        assert_eq!(body["request"]["oldObject"], Value::Null);
        assert_eq!(body["request"]["options"]["kind"], "CreateOptions");
        assert!(body["request"].get("subResource").is_none());
    }
}
