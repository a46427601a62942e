//! API errors as kube-apiserver writes them: a `Status` object with reason and code.

use serde_json::{Map, Value, json};

use crate::resources::ResourceType;

/// One cause of an `Invalid` or `Conflict` error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusCause {
    /// e.g. `FieldValueInvalid`.
    pub reason: String,
    /// The message without the field path.
    pub message: String,
    /// The field path, e.g. `metadata.name`.
    pub field: String,
}

/// An error response: rendered as a `Status` with this HTTP code.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// Machine-readable reason, e.g. `NotFound`.
    pub reason: String,
    /// Human-readable message.
    pub message: String,
    /// `details`, when the error concerns one object; kept as JSON so a webhook's denial passes unchanged.
    pub details: Option<Value>,
    /// Seconds for a `Retry-After` header (429 and 503).
    pub retry_after: Option<u64>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for ApiError {}

fn details(rt: &ResourceType, name: &str) -> Value {
    let mut d = Map::new();
    d.insert("name".into(), json!(name));
    if !rt.group.is_empty() {
        d.insert("group".into(), json!(rt.group));
    }
    d.insert("kind".into(), json!(rt.plural));
    Value::Object(d)
}

impl ApiError {
    fn new(code: u16, reason: &str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.into(),
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    /// 404 for an object: `services "web" not found`.
    pub fn not_found(rt: &ResourceType, name: &str) -> Self {
        Self {
            details: Some(details(rt, name)),
            ..Self::new(
                404,
                "NotFound",
                format!("{} \"{}\" not found", rt.qualified_plural(), name),
            )
        }
    }

    /// 404 for a path that names no resource.
    pub fn path_not_found() -> Self {
        Self {
            details: Some(json!({})),
            ..Self::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            )
        }
    }

    /// 409 on create of an existing name.
    pub fn already_exists(rt: &ResourceType, name: &str) -> Self {
        Self {
            details: Some(details(rt, name)),
            ..Self::new(
                409,
                "AlreadyExists",
                format!("{} \"{}\" already exists", rt.qualified_plural(), name),
            )
        }
    }

    /// 409 on a stale resourceVersion.
    pub fn conflict(rt: &ResourceType, name: &str) -> Self {
        Self::conflict_with(
            rt,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 409 Conflict with a custom reason text.
    pub fn conflict_with(rt: &ResourceType, name: &str, why: &str) -> Self {
        Self {
            details: Some(details(rt, name)),
            ..Self::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{}\": {}",
                    rt.qualified_plural(),
                    name,
                    why
                ),
            )
        }
    }

    /// 409 for a failed delete precondition: upstream names the kind, not the resource
    /// (`errors.NewConflict(GroupResource{Group, Resource: Kind}, ...)`).
    pub fn precondition_conflict(rt: &ResourceType, name: &str, why: &str) -> Self {
        let mut d = Map::new();
        d.insert("name".into(), json!(name));
        let qualified = if rt.group.is_empty() {
            rt.kind.to_string()
        } else {
            d.insert("group".into(), json!(rt.group));
            format!("{}.{}", rt.kind, rt.group)
        };
        d.insert("kind".into(), json!(rt.kind));
        Self {
            details: Some(Value::Object(d)),
            ..Self::new(
                409,
                "Conflict",
                format!("Operation cannot be fulfilled on {qualified} \"{name}\": {why}"),
            )
        }
    }

    /// 422 with field causes, as `errors.NewInvalid` builds it.
    pub fn invalid(kind: &str, group: &str, name: &str, causes: &[StatusCause]) -> Self {
        let errors: Vec<String> = {
            let mut seen = Vec::<String>::new();
            for c in causes {
                let s = if c.field.is_empty() {
                    c.message.clone()
                } else {
                    format!("{}: {}", c.field, c.message)
                };
                if !seen.contains(&s) {
                    seen.push(s);
                }
            }
            seen
        };
        let agg = match errors.len() {
            0 => String::new(),
            1 => format!(": {}", errors[0]),
            _ => format!(": [{}]", errors.join(", ")),
        };
        // Go omits empty strings here (`omitempty`).
        let mut d = Map::new();
        if !name.is_empty() {
            d.insert("name".into(), json!(name));
        }
        if !group.is_empty() {
            d.insert("group".into(), json!(group));
        }
        if !kind.is_empty() {
            d.insert("kind".into(), json!(kind));
        }
        d.insert(
            "causes".into(),
            Value::Array(
                causes
                    .iter()
                    .map(|c| {
                        let mut cause = json!({"reason": c.reason, "message": c.message});
                        if !c.field.is_empty() {
                            cause["field"] = json!(c.field);
                        }
                        cause
                    })
                    .collect(),
            ),
        );
        Self {
            details: Some(Value::Object(d)),
            ..Self::new(
                422,
                "Invalid",
                format!("{} \"{name}\" is invalid{agg}", group_kind(kind, group)),
            )
        }
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 405 MethodNotAllowed, with the empty details kube-apiserver sends.
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self {
            details: Some(json!({})),
            ..Self::new(405, "MethodNotAllowed", message)
        }
    }

    /// 410 Expired: the requested resourceVersion is older than the kept history.
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// 413 RequestEntityTooLarge.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(413, "RequestEntityTooLarge", message)
    }

    /// 415 for a create or update body in a media type the server does not decode.
    pub fn unsupported_media_type() -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf",
        )
    }

    /// 415 UnsupportedMediaType for a PATCH, listing the patch types the resource takes, in
    /// kube-apiserver's order (custom resources take no strategic merge patch).
    pub fn unsupported_patch_type(strategic: bool) -> Self {
        let accepted = if strategic {
            "application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml"
        } else {
            "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
        };
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: {accepted}"
            ),
        )
    }

    /// The 415 go-restful answers when no route of a built-in resource consumes the request's
    /// content type (kube-apiserver turns its plain-text reply into this Status, details empty).
    pub fn unsupported_route_media_type() -> Self {
        Self {
            details: Some(json!({})),
            ..Self::new(415, "UnsupportedMediaType", "415: Unsupported Media Type")
        }
    }

    /// A 422 without the object's details, as `NewGenericServerResponse` builds it: what
    /// kube-apiserver answers when a JSON patch cannot be applied (the reason is not passed on).
    pub fn generic_unprocessable() -> Self {
        Self {
            details: Some(json!({})),
            ..Self::new(
                422,
                "Invalid",
                "the server rejected our request due to an error in our request",
            )
        }
    }

    /// 500 InternalError.
    pub fn internal(message: impl Into<String>) -> Self {
        let message = message.into();
        Self {
            details: Some(json!({"causes": [{"message": message}]})),
            ..Self::new(
                500,
                "InternalError",
                format!("Internal error occurred: {message}"),
            )
        }
    }

    /// 403 Forbidden.
    pub fn forbidden(rt: &ResourceType, name: &str, why: &str) -> Self {
        Self {
            details: Some(details(rt, name)),
            ..Self::new(
                403,
                "Forbidden",
                format!(
                    "{} \"{}\" is forbidden: {}",
                    rt.qualified_plural(),
                    name,
                    why
                ),
            )
        }
    }

    /// The NamespaceLifecycle plugin's 403 for a create in a namespace being deleted, with its
    /// `NamespaceTerminating` cause.
    pub fn namespace_terminating(rt: &ResourceType, name: &str, namespace: &str) -> Self {
        let mut e = Self::forbidden(
            rt,
            name,
            &format!(
                "unable to create new content in namespace {namespace} because it is being terminated"
            ),
        );
        if let Some(d) = e.details.as_mut().and_then(Value::as_object_mut) {
            d.insert(
                "causes".into(),
                json!([{"reason": "NamespaceTerminating",
                    "message": format!("namespace {namespace} is being terminated"),
                    "field": "metadata.namespace"}]),
            );
        }
        e
    }

    /// An error with any code and reason (fault injection, webhook denials).
    pub fn custom(code: u16, reason: &str, message: impl Into<String>) -> Self {
        Self::new(code, reason, message)
    }

    /// The `Status` object, in kube-apiserver's key order.
    pub fn to_status(&self) -> Value {
        let mut m = Map::new();
        m.insert("kind".into(), json!("Status"));
        m.insert("apiVersion".into(), json!("v1"));
        m.insert("metadata".into(), json!({}));
        m.insert("status".into(), json!("Failure"));
        m.insert("message".into(), json!(self.message));
        // Go's omitempty: an error that is not an API status has no reason.
        if !self.reason.is_empty() {
            m.insert("reason".into(), json!(self.reason));
        }
        if let Some(d) = &self.details {
            m.insert("details".into(), d.clone());
        }
        m.insert("code".into(), json!(self.code));
        Value::Object(m)
    }

    /// Rebuilds an error from a `Status` object (a webhook's denial); code and details kept.
    pub fn from_status(status: &Value, fallback_code: u16) -> Self {
        let code = status
            .get("code")
            .and_then(Value::as_u64)
            .map(|c| c as u16)
            .unwrap_or(fallback_code);
        Self {
            code,
            reason: status
                .get("reason")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            message: status
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            details: status.get("details").cloned(),
            retry_after: None,
        }
    }
}

/// `GroupKind.String()`: `Kind` for core, `Kind.group` otherwise.
fn group_kind(kind: &str, group: &str) -> String {
    if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    }
}

/// Builds a `StatusCause`.
pub fn cause(reason: &str, field: &str, message: impl Into<String>) -> StatusCause {
    StatusCause {
        reason: reason.into(),
        message: message.into(),
        field: field.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::ResourceTable;

    #[test]
    fn not_found_and_conflict_read_like_the_apiserver() {
        let table = ResourceTable::builtin();
        let svc = table.get("", "v1", "services").unwrap();
        assert_eq!(
            ApiError::not_found(&svc, "web").message,
            "services \"web\" not found"
        );
        let slices = table
            .get("discovery.k8s.io", "v1", "endpointslices")
            .unwrap();
        assert_eq!(
            ApiError::conflict(&slices, "web-abc").message,
            "Operation cannot be fulfilled on endpointslices.discovery.k8s.io \"web-abc\": the object has been modified; please apply your changes to the latest version and try again"
        );
    }

    #[test]
    fn invalid_aggregates_like_errors_new_invalid() {
        let one = ApiError::invalid(
            "Service",
            "",
            "web",
            &[cause("FieldValueRequired", "spec.ports", "Required value")],
        );
        assert_eq!(
            one.message,
            "Service \"web\" is invalid: spec.ports: Required value"
        );
        let two = ApiError::invalid(
            "Lease",
            "coordination.k8s.io",
            "l",
            &[
                cause("FieldValueRequired", "a", "Required value"),
                cause("FieldValueRequired", "b", "Required value"),
            ],
        );
        assert_eq!(
            two.message,
            "Lease.coordination.k8s.io \"l\" is invalid: [a: Required value, b: Required value]"
        );
        let keys: Vec<String> = one
            .to_status()
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(
            keys,
            [
                "kind",
                "apiVersion",
                "metadata",
                "status",
                "message",
                "reason",
                "details",
                "code"
            ]
        );
    }
}
