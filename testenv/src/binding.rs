//! `POST pods/{name}/binding`, as kube-apiserver's `BindingREST`: how a scheduler places a pod.
//! A pod's `spec.nodeName` cannot be set by an update or a patch (pod updates may change only
//! images, tolerations and a few deadlines); a Binding sets it once, with the PodScheduled
//! condition, in one storage update that bypasses the pod's update strategy (no generation bump,
//! no managedFields entry).
//!
//! Not modelled: admission webhooks registered for `pods/binding` are not called, and the legacy
//! `namespaces/{ns}/bindings` collection is not served.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::api::{ApiRequest, Reply, meta_mut, meta_str, parse_body};
use crate::meta::go_quote;
use crate::resources::ResourceType;
use crate::server::ApiServer;
use crate::status::ApiError;
use crate::store::CommitError;

/// The subresource's name in the path.
pub const BINDING: &str = "binding";

/// How many times a binding is retried when the pod changed between read and write.
const ATTEMPTS: usize = 16;

impl ApiServer {
    /// Binds the pod of `req` to the node its Binding names.
    pub(crate) async fn bind(self: &Arc<Self>, req: &ApiRequest) -> Result<Reply, ApiError> {
        let rt = req.resource.clone();
        let name = req.name.clone().unwrap_or_default();
        let binding = parse_body(req)?;
        check_binding_type(&binding)?;
        if meta_str(&binding, "name").unwrap_or("") != name {
            return Err(ApiError::bad_request(
                "name in URL does not match name in Binding object",
            ));
        }
        let target = binding.get("target").cloned().unwrap_or(Value::Null);
        let node = target.get("name").and_then(Value::as_str).unwrap_or("");
        // kube-apiserver returns ValidatePodBinding's errors as a plain error: 500, no reason.
        let mut errors = Vec::new();
        match target.get("kind").and_then(Value::as_str).unwrap_or("") {
            "" | "Node" => {}
            other => errors.push(format!(
                "target.kind: Unsupported value: {}: supported values: \"Node\", \"<empty>\"",
                go_quote(other)
            )),
        }
        if node.is_empty() {
            errors.push("target.name: Required value".to_string());
        }
        match errors.len() {
            0 => {}
            1 => return Err(ApiError::custom(500, "", errors.remove(0))),
            _ => {
                return Err(ApiError::custom(
                    500,
                    "",
                    format!("[{}]", errors.join(", ")),
                ));
            }
        }
        let uid = meta_str(&binding, "uid").filter(|s| !s.is_empty());
        let resource_version = meta_str(&binding, "resourceVersion").filter(|s| !s.is_empty());
        let annotations = binding
            .get("metadata")
            .and_then(|m| m.get("annotations"))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let bindings = ResourceType {
            plural: format!("{}/{BINDING}", rt.plural),
            ..(*rt).clone()
        };
        for _ in 0..ATTEMPTS {
            let current = self
                .store
                .read()
                .get(&req.collection(), req.ns(), &name)
                .ok_or_else(|| ApiError::not_found(&rt, &name))?;
            let mut pod = current.value();
            // Storage preconditions, checked before the update function runs.
            let key = rt.storage_key(req.ns(), &name);
            if let Some(uid) = uid
                && meta_str(&pod, "uid") != Some(uid)
            {
                return Err(precondition_failed(
                    &rt,
                    &name,
                    &key,
                    "UID",
                    uid,
                    meta_str(&pod, "uid").unwrap_or(""),
                ));
            }
            if let Some(rv) = resource_version
                && rv != current.resource_version.to_string()
            {
                return Err(precondition_failed(
                    &rt,
                    &name,
                    &key,
                    "ResourceVersion",
                    rv,
                    &current.resource_version.to_string(),
                ));
            }
            if meta_str(&pod, "deletionTimestamp").is_some() {
                return Err(ApiError::conflict_with(
                    &bindings,
                    &name,
                    &format!("pod {name} is being deleted, cannot be assigned to a host"),
                ));
            }
            let spec = pod.get("spec").cloned().unwrap_or(Value::Null);
            if let Some(bound) = spec
                .get("nodeName")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
            {
                return Err(ApiError::conflict_with(
                    &bindings,
                    &name,
                    &format!("pod {name} is already assigned to node {}", go_quote(bound)),
                ));
            }
            if spec
                .get("schedulingGates")
                .and_then(Value::as_array)
                .is_some_and(|g| !g.is_empty())
            {
                return Err(ApiError::conflict_with(
                    &bindings,
                    &name,
                    &format!("pod {name} has non-empty .spec.schedulingGates"),
                ));
            }
            pod["spec"]["nodeName"] = json!(node);
            if !annotations.is_empty() {
                let m = meta_mut(&mut pod);
                let merged = m
                    .entry("annotations")
                    .or_insert_with(|| Value::Object(Map::new()));
                if !merged.is_object() {
                    *merged = Value::Object(Map::new());
                }
                if let Some(merged) = merged.as_object_mut() {
                    merged.extend(annotations.clone());
                }
            }
            set_pod_scheduled(&mut pod);
            if req.dry_run() {
                return Ok(success());
            }
            match self.commit_put(&rt, &mut pod, Some(current.resource_version)) {
                Ok(()) => return Ok(success()),
                Err(CommitError::Conflict) => continue,
                Err(CommitError::NotFound) => return Err(ApiError::not_found(&rt, &name)),
                Err(e) => return Err(ApiError::internal(e.to_string())),
            }
        }
        Err(ApiError::conflict(&rt, &name))
    }
}

/// A Binding, or a body without apiVersion and kind (the path names the type).
fn check_binding_type(binding: &Value) -> Result<(), ApiError> {
    let kind = binding.get("kind").and_then(Value::as_str).unwrap_or("");
    let version = binding
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    if (kind.is_empty() || kind == "Binding") && (version.is_empty() || version == "v1") {
        return Ok(());
    }
    Err(ApiError::bad_request(format!(
        "{kind} in version {} cannot be handled as a Binding: converting ({version}.{kind}) to (core.Binding): unknown conversion",
        go_quote(version)
    )))
}

/// The Conflict of a failed storage precondition, in etcd3 storage's words.
pub(crate) fn precondition_failed(
    rt: &ResourceType,
    name: &str,
    key: &str,
    field: &str,
    wanted: &str,
    actual: &str,
) -> ApiError {
    ApiError::conflict_with(
        rt,
        name,
        &format!(
            "StorageError: invalid object, Code: 4, Key: {key}, ResourceVersion: 0, AdditionalErrorMsg: Precondition failed: {field} in precondition: {wanted}, {field} in object meta: {actual}"
        ),
    )
}

/// podutil.UpdatePodCondition with PodScheduled=True: added, or replaced keeping its
/// lastTransitionTime when it was already True.
fn set_pod_scheduled(pod: &mut Value) {
    let now = crate::names::now_rfc3339();
    if !pod.get("status").is_some_and(Value::is_object) {
        pod["status"] = json!({});
    }
    let status = &mut pod["status"];
    if !status.get("conditions").is_some_and(Value::is_array) {
        status["conditions"] = json!([]);
    }
    let Some(conditions) = status["conditions"].as_array_mut() else {
        return;
    };
    let existing = conditions
        .iter()
        .position(|c| c.get("type").and_then(Value::as_str) == Some("PodScheduled"));
    let mut condition =
        json!({"type": "PodScheduled", "status": "True", "lastTransitionTime": now});
    match existing {
        Some(i) => {
            if conditions[i].get("status").and_then(Value::as_str) == Some("True")
                && let Some(since) = conditions[i].get("lastTransitionTime")
            {
                condition["lastTransitionTime"] = since.clone();
            }
            conditions[i] = condition;
        }
        None => conditions.push(condition),
    }
}

/// kube-apiserver's answer to a binding: a Status, 201.
fn success() -> Reply {
    Reply {
        code: 201,
        body: json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    }
}
