//! The objects of record: `networking.k8s.io/v1` IPAddress for a ClusterIP and svcplane's
//! cluster-scoped `NodePortAllocation` for a NodePort, one object per value.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::networking::v1::{IPAddress, IPAddressSpec, ParentReference};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResource;
use kube::api::ObjectMeta;
use kube::core::CustomResourceExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::service_cidr::IpFamily;

/// Label naming the family of an IPAddress (upstream's `networking.k8s.io/v1` well-known label).
pub const IP_FAMILY_LABEL: &str = "ipaddress.kubernetes.io/ip-family";
/// Label naming the allocator that manages an IPAddress (upstream's well-known label).
pub const MANAGED_BY_LABEL: &str = "ipaddress.kubernetes.io/managed-by";
/// svcplane's `managed-by` value, shaped like upstream's (a label value cannot hold `/`);
/// upstream's own allocator writes [`UPSTREAM_MANAGED_BY`], so neither touches the other's.
pub const SVCPLANE_MANAGED_BY: &str = "ipallocator.svcplane.io";
/// The `managed-by` value of kube-apiserver's IPAddress allocator.
pub const UPSTREAM_MANAGED_BY: &str = "ipallocator.k8s.io";
/// The `parentRef.resource` of an address held by a Service.
pub const SERVICES_RESOURCE: &str = "services";
/// The API group of svcplane's allocation CRD.
pub const ALLOCATION_GROUP: &str = "allocation.svcplane.io";

/// The Service that holds a NodePort.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct NodePortParentRef {
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name.
    pub name: String,
    /// The Service's uid; absent when the port was claimed before the Service was stored
    /// (admission runs before the uid exists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
}

/// Which Service holds the NodePort this object is named after.
#[derive(CustomResource, Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[kube(
    doc = "NodePortAllocation records that one NodePort (or healthCheckNodePort) is held by one Service: the object's name is the port number, and creating it is the claim. svcplane's allocator writes one per allocated port, as kube-apiserver writes an IPAddress per ClusterIP; the repair loop deletes those whose Service no longer holds the port.",
    group = "allocation.svcplane.io",
    version = "v1alpha1",
    kind = "NodePortAllocation",
    plural = "nodeportallocations",
    singular = "nodeportallocation",
    shortname = "npa",
    printcolumn = r#"{"name":"Namespace","type":"string","jsonPath":".spec.parentRef.namespace"}"#,
    printcolumn = r#"{"name":"Service","type":"string","jsonPath":".spec.parentRef.name"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct NodePortAllocationSpec {
    /// The port number (also the object's name).
    pub port: i32,
    /// The Service holding the port.
    pub parent_ref: NodePortParentRef,
}

/// The CustomResourceDefinition of [`NodePortAllocation`] (for `svcplane crds` and `start`).
pub fn crd() -> CustomResourceDefinition {
    NodePortAllocation::crd()
}

/// The Service a claim is made for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceRef {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The uid, when the Service is stored already.
    pub uid: Option<String>,
}

impl ServiceRef {
    /// The reference of a Service object (`default` namespace when unset, as the API does).
    pub fn of(service: &k8s_openapi::api::core::v1::Service) -> Self {
        ServiceRef {
            namespace: service
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into()),
            name: service.metadata.name.clone().unwrap_or_default(),
            uid: service.metadata.uid.clone(),
        }
    }
}

/// The IPAddress that claims `ip` for `parent`, as svcplane writes it.
pub fn ip_address_claim(ip: IpAddr, parent: &ServiceRef) -> IPAddress {
    let family = IpFamily::of(&ip);
    IPAddress {
        metadata: ObjectMeta {
            name: Some(ip.to_string()),
            labels: Some(BTreeMap::from([
                (IP_FAMILY_LABEL.to_string(), family.as_str().to_string()),
                (
                    MANAGED_BY_LABEL.to_string(),
                    SVCPLANE_MANAGED_BY.to_string(),
                ),
            ])),
            ..ObjectMeta::default()
        },
        spec: Some(IPAddressSpec {
            parent_ref: ParentReference {
                // The core group is empty, which upstream omits in JSON.
                group: None,
                resource: SERVICES_RESOURCE.to_string(),
                namespace: Some(parent.namespace.clone()),
                name: parent.name.clone(),
            },
        }),
    }
}

/// The NodePortAllocation that claims `port` for `parent`.
pub fn node_port_claim(port: i32, parent: &ServiceRef) -> NodePortAllocation {
    let mut claim = NodePortAllocation::new(
        &port.to_string(),
        NodePortAllocationSpec {
            port,
            parent_ref: NodePortParentRef {
                namespace: parent.namespace.clone(),
                name: parent.name.clone(),
                uid: parent.uid.clone(),
            },
        },
    );
    claim.metadata.labels = Some(BTreeMap::from([(
        format!("{ALLOCATION_GROUP}/managed-by"),
        SVCPLANE_MANAGED_BY.to_string(),
    )]));
    claim
}

/// The Service an IPAddress points at, when its parent is a core Service.
pub fn ip_address_parent(ip_address: &IPAddress) -> Option<(String, String)> {
    let parent = &ip_address.spec.as_ref()?.parent_ref;
    let core = parent.group.as_deref().unwrap_or_default().is_empty();
    (core && parent.resource == SERVICES_RESOURCE).then(|| {
        (
            parent.namespace.clone().unwrap_or_default(),
            parent.name.clone(),
        )
    })
}

/// Whether svcplane manages this IPAddress.
pub fn managed_by_svcplane(ip_address: &IPAddress) -> bool {
    ip_address
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(MANAGED_BY_LABEL))
        .map(String::as_str)
        == Some(SVCPLANE_MANAGED_BY)
}

/// The address an IPAddress names, if its name is an address.
pub fn ip_address_ip(ip_address: &IPAddress) -> Option<IpAddr> {
    ip_address.metadata.name.as_deref()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ip_address_claim_has_upstream_shape() {
        let parent = ServiceRef {
            namespace: "kube-system".into(),
            name: "kube-dns".into(),
            uid: None,
        };
        let claim = ip_address_claim("10.96.0.10".parse().unwrap(), &parent);
        let value = serde_json::to_value(&claim).unwrap();
        assert_eq!(
            value,
            json!({
                "apiVersion": "networking.k8s.io/v1",
                "kind": "IPAddress",
                "metadata": {"name": "10.96.0.10", "labels": {
                    "ipaddress.kubernetes.io/ip-family": "IPv4",
                    "ipaddress.kubernetes.io/managed-by": "ipallocator.svcplane.io"}},
                "spec": {"parentRef": {"resource": "services", "namespace": "kube-system", "name": "kube-dns"}}
            })
        );
        assert_eq!(
            ip_address_parent(&claim),
            Some(("kube-system".into(), "kube-dns".into()))
        );
        assert!(managed_by_svcplane(&claim));
        let v6 = ip_address_claim("fd00:0::a".parse().unwrap(), &parent);
        assert_eq!(v6.metadata.name.as_deref(), Some("fd00::a"));
    }

    #[test]
    fn crd_is_cluster_scoped_v1alpha1() {
        let crd = serde_json::to_value(crd()).unwrap();
        assert_eq!(
            crd["metadata"]["name"],
            "nodeportallocations.allocation.svcplane.io"
        );
        assert_eq!(crd["spec"]["scope"], "Cluster");
        assert_eq!(crd["spec"]["versions"][0]["name"], "v1alpha1");
        let props = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
            ["properties"];
        assert_eq!(props["port"]["type"], "integer");
        assert_eq!(props["parentRef"]["required"], json!(["name", "namespace"]));
    }

    /// Every node of the schema: (path, node).
    fn schema_nodes(
        path: String,
        node: &serde_json::Value,
        out: &mut Vec<(String, serde_json::Value)>,
    ) {
        out.push((path.clone(), node.clone()));
        for (name, child) in node["properties"].as_object().into_iter().flatten() {
            schema_nodes(format!("{path}.{name}"), child, out);
        }
    }

    #[test]
    fn every_field_kubectl_explain_shows_has_a_written_description() {
        let crd = serde_json::to_value(crd()).unwrap();
        let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        let mut nodes = Vec::new();
        schema_nodes("NodePortAllocation".into(), schema, &mut nodes);
        assert!(nodes.len() >= 6, "{nodes:?}");
        for (path, node) in nodes {
            let description = node["description"].as_str().unwrap_or_default();
            assert!(!description.is_empty(), "{path} has no description");
            assert!(
                !description.contains("Auto-generated") && !description.contains("CustomResource"),
                "{path}: {description}"
            );
        }
    }
}
