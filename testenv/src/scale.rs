//! The `scale` subresource of Deployments and ReplicaSets, as kube-apiserver's `ScaleREST`:
//! an `autoscaling/v1` Scale (`spec.replicas`, `status.replicas`, `status.selector` as a
//! string) read from the parent object, and written back into the parent's `spec.replicas`
//! by GET, PUT and PATCH (merge, JSON and strategic; `kubectl scale` sends a merge patch).
//!
//! Not modelled: server-side apply on `/scale`.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::api::{ApiRequest, Reply, Verb, WriteError, meta_str};
use crate::patch::{self, PatchType};
use crate::server::ApiServer;
use crate::status::{ApiError, cause};

/// The subresource's name in the path.
pub const SCALE: &str = "scale";
/// The kind the subresource takes and answers with.
pub const SCALE_KIND: &str = "Scale";
/// The group and version of [`SCALE_KIND`].
pub const SCALE_GROUP_VERSION: (&str, &str) = ("autoscaling", "v1");

/// How many times a write is retried when the parent changed between read and write.
const ATTEMPTS: usize = 16;

/// The Scale of a Deployment or ReplicaSet (`scaleFromDeployment`, `scaleFromReplicaSet`).
pub fn scale_of(parent: &Value) -> Value {
    let mut metadata = serde_json::Map::new();
    for key in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = parent.get("metadata").and_then(|m| m.get(key)) {
            metadata.insert(key.into(), v.clone());
        }
    }
    let int = |pointer: &str| parent.pointer(pointer).and_then(Value::as_i64);
    // `ScaleSpec.Replicas` is an `int32` with omitempty: zero replicas are left out.
    let mut spec = json!({});
    if let Some(replicas) = int("/spec/replicas").filter(|r| *r != 0) {
        spec["replicas"] = json!(replicas);
    }
    let selector = crate::table::format_label_selector(parent.pointer("/spec/selector"));
    let mut status = json!({"replicas": int("/status/replicas").unwrap_or(0)});
    if !selector.is_empty() {
        status["selector"] = json!(selector);
    }
    json!({
        "kind": SCALE_KIND,
        "apiVersion": format!("{}/{}", SCALE_GROUP_VERSION.0, SCALE_GROUP_VERSION.1),
        "metadata": metadata,
        "spec": spec,
        "status": status,
    })
}

/// `ValidateScale`: replicas may not be negative.
fn validate_scale(scale: &Value, name: &str) -> Result<i64, ApiError> {
    let replicas = scale
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if replicas < 0 {
        return Err(ApiError::invalid(
            SCALE_KIND,
            "autoscaling",
            name,
            &[cause(
                "FieldValueInvalid",
                "spec.replicas",
                format!("Invalid value: {replicas}: must be greater than or equal to 0"),
            )],
        ));
    }
    Ok(replicas)
}

/// A Scale sent with PUT.
fn parse_scale_body(req: &ApiRequest) -> Result<Value, ApiError> {
    let scale = crate::api::parse_body(req)?;
    let kind = scale.get("kind").and_then(Value::as_str).unwrap_or("");
    let api_version = scale
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let scale_version = format!("{}/{}", SCALE_GROUP_VERSION.0, SCALE_GROUP_VERSION.1);
    if matches!(kind, "" | SCALE_KIND) && (api_version.is_empty() || api_version == scale_version) {
        return Ok(scale);
    }
    // The decoder's words for a body of another type.
    let version = api_version.rsplit('/').next().unwrap_or(api_version);
    Err(ApiError::bad_request(format!(
        "{kind} in version {} cannot be handled as a Scale: converting ({version}.{kind}) to (autoscaling.Scale): unknown conversion",
        crate::meta::go_quote(version)
    )))
}

impl ApiServer {
    /// Serves `GET`, `PUT` and `PATCH` on `{deployments,replicasets}/{name}/scale`.
    pub(crate) async fn serve_scale(self: &Arc<Self>, req: &ApiRequest) -> Result<Reply, ApiError> {
        let rt = req.resource.clone();
        let name = req.name.clone().unwrap_or_default();
        let collection = req.collection();
        let read = || {
            self.store
                .read()
                .get(&collection, req.ns(), &name)
                .ok_or_else(|| ApiError::not_found(&rt, &name))
        };
        if req.verb == Verb::Get {
            return Ok(Reply {
                code: 200,
                body: scale_of(&read()?.value()),
            });
        }
        let (body, patch_type) = match req.verb {
            Verb::Update => (parse_scale_body(req)?, None),
            Verb::Patch => {
                let patch_type = PatchType::from_content_type(&req.content_type)
                    .ok_or_else(ApiError::unsupported_route_media_type)?;
                if patch_type == PatchType::Apply {
                    return Err(ApiError::unsupported_patch_type(true));
                }
                let value: Value = serde_json::from_slice(&req.body)
                    .map_err(|_| patch::patch_syntax_error(&req.body))?;
                (value, Some(patch_type))
            }
            _ => {
                return Err(ApiError::method_not_allowed(
                    "the server does not allow this method on the requested resource",
                ));
            }
        };
        for _ in 0..ATTEMPTS {
            let current = read()?;
            let old = current.value();
            let scale = match patch_type {
                None => body.clone(),
                Some(PatchType::Merge) => patch::merge_patch(&scale_of(&old), &body)?,
                Some(PatchType::Json) => {
                    let strict_decode =
                        req.query.get("fieldValidation").map(String::as_str) != Some("Ignore");
                    patch::json_patch(&scale_of(&old), &body, strict_decode)?
                }
                Some(_) => patch::strategic::strategic_merge_patch(
                    &scale_of(&old),
                    &body,
                    "autoscaling",
                    SCALE_KIND,
                )?,
            };
            let precondition = meta_str(&scale, "resourceVersion").filter(|s| !s.is_empty());
            if let Some(rv) = precondition
                && rv != current.resource_version.to_string()
            {
                return Err(ApiError::conflict(&rt, &name));
            }
            let replicas = validate_scale(&scale, &name)?;
            let mut new = old.clone();
            new["spec"]["replicas"] = json!(replicas);
            match self
                .write_update(
                    req,
                    &old,
                    new,
                    current.resource_version,
                    &req.field_manager(),
                    "Update",
                )
                .await
            {
                Ok(reply) => {
                    return Ok(Reply {
                        code: reply.code,
                        body: scale_of(&reply.body),
                    });
                }
                Err(WriteError::Conflict) if precondition.is_none() => continue,
                Err(WriteError::Conflict) => return Err(ApiError::conflict(&rt, &name)),
                Err(WriteError::Api(e)) => return Err(e),
            }
        }
        Err(ApiError::conflict(&rt, &name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_reads_replicas_and_selector_from_the_parent() {
        let deployment = json!({"metadata": {"name": "web", "namespace": "default", "uid": "u1",
                "resourceVersion": "7", "creationTimestamp": "2026-01-01T00:00:00Z", "labels": {"app": "web"}},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web", "tier": "fe"}}},
            "status": {"replicas": 2}});
        assert_eq!(
            scale_of(&deployment),
            json!({"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {"name": "web", "namespace": "default", "uid": "u1", "resourceVersion": "7",
                    "creationTimestamp": "2026-01-01T00:00:00Z"},
                "spec": {"replicas": 3}, "status": {"replicas": 2, "selector": "app=web,tier=fe"}})
        );
    }

    #[test]
    fn zero_replicas_are_omitted_as_go_omits_an_empty_int32() {
        let scaled_down = json!({"metadata": {"name": "web"}, "spec": {"replicas": 0}});
        assert_eq!(scale_of(&scaled_down)["spec"], json!({}));
        assert_eq!(scale_of(&scaled_down)["status"], json!({"replicas": 0}));
    }

    #[test]
    fn negative_replicas_are_invalid() {
        let err = validate_scale(&json!({"spec": {"replicas": -1}}), "web").unwrap_err();
        assert_eq!(err.code, 422);
        assert!(
            err.message
                .contains("spec.replicas: Invalid value: -1: must be greater than or equal to 0"),
            "{}",
            err.message
        );
        assert_eq!(
            validate_scale(&json!({"spec": {"replicas": 4}}), "web").unwrap(),
            4
        );
    }
}
