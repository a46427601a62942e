//! CustomResourceDefinitions: a stored CRD makes its resource servable at once.

use serde_json::{Value, json};

use crate::resources::ResourceType;
use crate::server::ApiServer;

/// The resource types a CRD defines, one per served version.
pub fn resource_types(crd: &Value) -> Vec<ResourceType> {
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or("").to_string();
    let names = &spec["names"];
    let plural = names["plural"].as_str().unwrap_or("").to_string();
    let kind = names["kind"].as_str().unwrap_or("").to_string();
    if group.is_empty() || plural.is_empty() || kind.is_empty() {
        return Vec::new();
    }
    let singular = names["singular"]
        .as_str()
        .map(String::from)
        .unwrap_or_else(|| kind.to_ascii_lowercase());
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let namespaced = spec["scope"].as_str() != Some("Cluster");
    spec["versions"]
        .as_array()
        .map(|versions| {
            versions
                .iter()
                .filter(|v| v["served"].as_bool().unwrap_or(true))
                .filter_map(|v| {
                    let version = v["name"].as_str()?.to_string();
                    let has_status = v.pointer("/subresources/status").is_some();
                    let mut subresources = Vec::new();
                    if has_status {
                        subresources.push("status".to_string());
                    }
                    if v.pointer("/subresources/scale").is_some() {
                        subresources.push("scale".to_string());
                    }
                    Some(ResourceType {
                        group: group.clone(),
                        version,
                        kind: kind.clone(),
                        plural: plural.clone(),
                        singular: singular.clone(),
                        namespaced,
                        short_names: strings(&names["shortNames"]),
                        categories: strings(&names["categories"]),
                        has_status,
                        tracks_generation: true,
                        subresources,
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The status a CRD gets when stored: names accepted and established at once.
pub fn established_status(crd: &Value) -> Value {
    let stored: Vec<Value> = crd["spec"]["versions"]
        .as_array()
        .map(|vs| {
            vs.iter()
                .filter(|v| v["storage"].as_bool() == Some(true))
                .map(|v| v["name"].clone())
                .collect()
        })
        .unwrap_or_default();
    let now = crate::names::now_rfc3339();
    json!({
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "lastTransitionTime": now, "reason": "NoConflicts", "message": "no conflicts found"},
            {"type": "Established", "status": "True", "lastTransitionTime": now, "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"}
        ],
        "acceptedNames": crd["spec"]["names"].clone(),
        "storedVersions": stored,
    })
}

impl ApiServer {
    /// Serves the resources of a stored CRD.
    pub(crate) fn crd_changed(&self, crd: &Value) {
        let types = resource_types(crd);
        let mut table = self.resources_mut();
        if let Some(first) = types.first() {
            table.remove_group_resource(&first.group, &first.plural);
        }
        for rt in types {
            table.insert(rt);
        }
    }

    /// Stops serving the resources of a deleted CRD.
    pub(crate) fn crd_removed(&self, crd: &Value) {
        let group = crd["spec"]["group"].as_str().unwrap_or("");
        let plural = crd["spec"]["names"]["plural"].as_str().unwrap_or("");
        self.resources_mut().remove_group_resource(group, plural);
    }
}
