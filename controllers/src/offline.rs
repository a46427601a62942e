//! `svcplane slices -f FILE...`: the EndpointSlices and Endpoints the controllers would write
//! for Services, Pods, Nodes (and optionally existing EndpointSlices and Endpoints) read from
//! YAML or JSON files, computed by the same pure planners the controllers call.

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::Value;

use crate::endpoints::{EndpointsOptions, EndpointsPlan};
use crate::endpointslice::{MaxEndpointsPerSlice, NodeInfo, PlanOptions, PodInfo};
use crate::mirroring::MirroringOptions;

/// Why the files could not be planned.
#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A document is not valid YAML/JSON or not a valid object of its kind.
    #[error("{path}: document {document}: {message}")]
    Malformed {
        /// The file.
        path: String,
        /// 1-based index of the document in the file.
        document: usize,
        /// What is wrong.
        message: String,
    },
    /// The output could not be rendered.
    #[error("cannot render output: {0}")]
    Render(String),
}

/// The objects read from files.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    /// Services.
    pub services: Vec<Service>,
    /// Pods.
    pub pods: Vec<Pod>,
    /// Nodes.
    pub nodes: Vec<Node>,
    /// Existing EndpointSlices.
    pub endpoint_slices: Vec<EndpointSlice>,
    /// Existing Endpoints (the Endpoints controller's current objects, and the mirroring
    /// controller's input for selector-less Services).
    pub endpoints: Vec<Endpoints>,
    /// Documents that were skipped.
    pub warnings: Vec<String>,
}

/// What the controllers would write.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Output {
    /// EndpointSlices created or updated (by the EndpointSlice and mirroring controllers).
    pub endpoint_slices: Vec<EndpointSlice>,
    /// `namespace/name` of existing slices that would be deleted.
    pub deleted_endpoint_slices: Vec<String>,
    /// Endpoints created or updated by the Endpoints controller.
    pub endpoints: Vec<Endpoints>,
    /// Skipped documents and per-Service planning problems.
    pub warnings: Vec<String>,
}

impl Output {
    fn objects(&self) -> Result<Vec<Value>, OfflineError> {
        let render = |e: serde_json::Error| OfflineError::Render(e.to_string());
        let mut out = Vec::new();
        for slice in &self.endpoint_slices {
            out.push(serde_json::to_value(slice).map_err(render)?);
        }
        for endpoints in &self.endpoints {
            out.push(serde_json::to_value(endpoints).map_err(render)?);
        }
        Ok(out)
    }

    /// The objects as a multi-document YAML stream.
    pub fn to_yaml(&self) -> Result<String, OfflineError> {
        let mut text = String::new();
        for object in self.objects()? {
            text.push_str("---\n");
            text.push_str(
                &serde_saphyr::to_string(&object)
                    .map_err(|e| OfflineError::Render(e.to_string()))?,
            );
        }
        Ok(text)
    }

    /// The objects as a JSON `v1` `List`, as `kubectl get -o json` prints several objects.
    pub fn to_json(&self) -> Result<String, OfflineError> {
        let list = serde_json::json!({
            "apiVersion": "v1",
            "kind": "List",
            "metadata": {"resourceVersion": ""},
            "items": self.objects()?,
        });
        serde_json::to_string_pretty(&list).map_err(|e| OfflineError::Render(e.to_string()))
    }
}

/// Reads `paths` and plans what the controllers would write, taking the objects as written.
pub fn plan_files(
    paths: &[impl AsRef<Path>],
    max_endpoints_per_slice: MaxEndpointsPerSlice,
) -> Result<Output, OfflineError> {
    Ok(plan_inputs(&read_files(paths)?, max_endpoints_per_slice))
}

/// Reads the objects of `paths`.
pub fn read_files(paths: &[impl AsRef<Path>]) -> Result<Inputs, OfflineError> {
    let mut inputs = Inputs::default();
    for path in paths {
        let path = path.as_ref();
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| OfflineError::Read {
            path: name.clone(),
            source,
        })?;
        read_documents(&name, &text, &mut inputs)?;
    }
    Ok(inputs)
}

/// Parses one file's documents into `inputs`.
pub fn read_documents(path: &str, text: &str, inputs: &mut Inputs) -> Result<(), OfflineError> {
    let documents = manifests::documents(text).map_err(|e| OfflineError::Malformed {
        path: path.to_owned(),
        document: e.document,
        message: e.message,
    })?;
    for (index, value) in documents.into_iter().enumerate() {
        add_object(path, index + 1, value, inputs)?;
    }
    Ok(())
}

fn add_object(
    path: &str,
    document: usize,
    value: Value,
    inputs: &mut Inputs,
) -> Result<(), OfflineError> {
    let malformed = |message: String| OfflineError::Malformed {
        path: path.to_owned(),
        document,
        message,
    };
    let kind = value
        .get("kind")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("object has no kind".to_owned()))?
        .to_owned();
    let convert = |value: Value| -> Result<_, OfflineError> { Ok(value) };
    let value = convert(value)?;
    macro_rules! push {
        ($field:ident) => {
            inputs
                .$field
                .push(serde_json::from_value(value).map_err(|e| malformed(format!("{kind}: {e}")))?)
        };
    }
    match kind.as_str() {
        "Service" => push!(services),
        "Pod" => push!(pods),
        "Node" => push!(nodes),
        "EndpointSlice" => push!(endpoint_slices),
        "Endpoints" => push!(endpoints),
        k if k == "List" || k.ends_with("List") => {
            let Some(items) = value.get("items").and_then(Value::as_array) else {
                return Err(malformed(format!("{kind} has no items")));
            };
            for item in items.clone() {
                add_object(path, document, item, inputs)?;
            }
        }
        other => inputs.warnings.push(format!(
            "{path}: document {document}: ignoring unsupported kind {other}"
        )),
    }
    Ok(())
}

fn key_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> (String, String) {
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

/// A warning when pods carry no status: without an IP and a Ready condition they are no
/// endpoints, and offline input is exactly what was written (no kubelet runs here).
fn pods_without_status(pods: &[Pod]) -> Option<String> {
    let bare: Vec<String> = pods
        .iter()
        .filter(|p| {
            p.status
                .as_ref()
                .is_none_or(|s| s.pod_ip.as_deref().unwrap_or("").is_empty())
        })
        .map(|p| {
            let (namespace, name) = key_of(&p.metadata);
            let namespace = if namespace.is_empty() {
                "default".to_owned()
            } else {
                namespace
            };
            format!("{namespace}/{name}")
        })
        .collect();
    if bare.is_empty() {
        return None;
    }
    Some(format!(
        "{} of {} pods have no status (no IP, not Ready), so they are no endpoints: {}. To model running pods, give them status.podIP(s) and a Ready condition, as a kubelet would; in `svcplane up` the node simulator does, and the annotation testenv.svcplane.io/ready: \"false\" keeps a pod unready",
        bare.len(),
        pods.len(),
        bare.join(", ")
    ))
}

/// Plans every Service of `inputs` (pure).
pub fn plan_inputs(inputs: &Inputs, max_endpoints_per_slice: MaxEndpointsPerSlice) -> Output {
    let mut output = Output {
        warnings: inputs.warnings.clone(),
        ..Output::default()
    };
    output.warnings.extend(pods_without_status(&inputs.pods));
    let pod_infos: Vec<PodInfo> = inputs.pods.iter().map(PodInfo::from_pod).collect();
    let nodes: BTreeMap<String, NodeInfo> = inputs
        .nodes
        .iter()
        .map(NodeInfo::from_node)
        .map(|n| (n.name.clone(), n))
        .collect();
    let endpoints_by_key: BTreeMap<(String, String), &Endpoints> = inputs
        .endpoints
        .iter()
        .map(|e| (key_of(&e.metadata), e))
        .collect();
    let mut services: Vec<&Service> = inputs.services.iter().collect();
    services.sort_by_key(|s| key_of(&s.metadata));
    let options = PlanOptions {
        max_endpoints_per_slice,
        ..PlanOptions::default()
    };
    for service in services {
        let key = key_of(&service.metadata);
        let has_selector = service.spec.as_ref().is_some_and(|s| s.selector.is_some());
        let existing_endpoints = endpoints_by_key.get(&key).copied();
        if has_selector {
            let plan = crate::endpointslice::plan(
                service,
                &pod_infos,
                &nodes,
                &inputs.endpoint_slices,
                &options,
            );
            output
                .warnings
                .extend(plan.errors.iter().map(ToString::to_string));
            output.endpoint_slices.extend(plan.create);
            output.endpoint_slices.extend(plan.update);
            output
                .deleted_endpoint_slices
                .extend(plan.delete.iter().map(|s| {
                    format!(
                        "{}/{}",
                        key.0,
                        s.metadata.name.as_deref().unwrap_or_default()
                    )
                }));
            match crate::endpoints::plan(
                Some(service),
                &pod_infos,
                &[],
                existing_endpoints,
                &EndpointsOptions::default(),
            ) {
                EndpointsPlan::Create(e) | EndpointsPlan::Update(e) => output.endpoints.push(e),
                EndpointsPlan::NoOp | EndpointsPlan::Delete { .. } => {}
            }
        } else {
            let namespace_slices: Vec<EndpointSlice> = inputs
                .endpoint_slices
                .iter()
                .filter(|s| s.metadata.namespace.as_deref().unwrap_or_default() == key.0)
                .cloned()
                .collect();
            let plan = crate::mirroring::plan(
                &key.1,
                existing_endpoints,
                Some(service),
                &namespace_slices,
                &MirroringOptions::default(),
            );
            output.warnings.extend(
                plan.events
                    .iter()
                    .map(|e| format!("{}/{}: {}: {}", key.0, key.1, e.reason, e.message)),
            );
            output.endpoint_slices.extend(plan.create);
            output.endpoint_slices.extend(plan.update);
            output
                .deleted_endpoint_slices
                .extend(plan.delete.iter().map(|n| format!("{}/{n}", key.0)));
        }
    }
    output
}
