//! Writing the `kubernetes` Endpoints and EndpointSlice(s) for a set of apiserver IPs (the
//! newest upstream `EndpointsAdapter.Sync`).

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{EndpointAddress, EndpointPort, EndpointSubset, Endpoints};
use k8s_openapi::api::discovery::v1::{
    Endpoint, EndpointConditions, EndpointPort as SlicePort, EndpointSlice,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{Lease, SERVICE_NAME, SERVICE_NAME_LABEL, SERVICE_NAMESPACE, SKIP_MIRROR_LABEL};

/// What the endpoints should point at: the Service IPs (primary first, optional secondary
/// of the other family) and the endpoint ports.
#[derive(Clone, Debug, PartialEq)]
pub struct EndpointsTarget {
    /// The primary Service IP; its family is the primary family.
    pub primary_service_ip: IpAddr,
    /// A secondary Service IP (dual-stack); enables the `kubernetes-v4|v6` slice.
    pub secondary_service_ip: Option<IpAddr>,
    /// Endpoint ports, e.g. `[{https, 6443, TCP}]`.
    pub ports: Vec<EndpointPort>,
}

/// The observed `kubernetes` objects: the Endpoints and every EndpointSlice labelled
/// `kubernetes.io/service-name=kubernetes` in `default`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ApiServerEndpoints {
    /// `default/kubernetes` Endpoints, if it exists.
    pub endpoints: Option<Endpoints>,
    /// The EndpointSlices of the `kubernetes` Service.
    pub slices: Vec<EndpointSlice>,
}

/// One write of the lease / endpoint reconcilers, in the order they are issued.
#[derive(Clone, Debug, PartialEq)]
pub enum ApiServerWrite {
    /// Create or rewrite this apiserver's lease (key `/masterleases/<primary IP>`).
    PutLease(Lease),
    /// Delete the lease of this primary IP.
    DeleteLease(IpAddr),
    /// POST the Endpoints.
    CreateEndpoints(Endpoints),
    /// PUT the Endpoints.
    UpdateEndpoints(Endpoints),
    /// POST an EndpointSlice.
    CreateEndpointSlice(EndpointSlice),
    /// PUT an EndpointSlice.
    UpdateEndpointSlice(EndpointSlice),
    /// DELETE the EndpointSlice of this name.
    DeleteEndpointSlice(String),
}

fn family_name(ip: &IpAddr) -> &'static str {
    if ip.is_ipv4() { "IPv4" } else { "IPv6" }
}

/// Name of the secondary-family slice.
fn secondary_slice_name(ip: &IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "kubernetes-v4"
    } else {
        "kubernetes-v6"
    }
}

fn subsets_equal(a: Option<&[EndpointSubset]>, b: Option<&[EndpointSubset]>) -> bool {
    let norm = |s: Option<&[EndpointSubset]>| -> Vec<(
        Vec<EndpointAddress>,
        Vec<EndpointAddress>,
        Vec<EndpointPort>,
    )> {
        s.unwrap_or_default()
            .iter()
            .map(|s| {
                (
                    s.addresses.clone().unwrap_or_default(),
                    s.not_ready_addresses.clone().unwrap_or_default(),
                    s.ports.clone().unwrap_or_default(),
                )
            })
            .collect()
    };
    norm(a) == norm(b)
}

fn labels_of(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn endpoints_write(
    ips: &[IpAddr],
    target: &EndpointsTarget,
    reconcile_ports: bool,
    current: Option<&Endpoints>,
) -> Option<ApiServerWrite> {
    let addresses: Vec<EndpointAddress> = ips
        .iter()
        .map(|ip| EndpointAddress {
            ip: ip.to_string(),
            ..Default::default()
        })
        .collect();
    let labels = labels_of(&[(SKIP_MIRROR_LABEL, "true")]);
    let Some(current) = current else {
        return Some(ApiServerWrite::CreateEndpoints(Endpoints {
            metadata: ObjectMeta {
                name: Some(SERVICE_NAME.to_string()),
                namespace: Some(SERVICE_NAMESPACE.to_string()),
                labels: Some(labels),
                ..Default::default()
            },
            subsets: Some(vec![EndpointSubset {
                addresses: Some(addresses),
                ports: Some(target.ports.clone()),
                ..Default::default()
            }]),
        }));
    };
    let current_ports = current
        .subsets
        .as_ref()
        .and_then(|s| s.first())
        .and_then(|s| s.ports.clone())
        .unwrap_or_default();
    let ports = if current_ports.is_empty() || (reconcile_ports && current_ports != target.ports) {
        target.ports.clone()
    } else {
        current_ports
    };
    let subsets = vec![EndpointSubset {
        addresses: Some(addresses),
        ports: Some(ports),
        ..Default::default()
    }];
    let labels_same = current.metadata.labels.clone().unwrap_or_default() == labels;
    if labels_same && subsets_equal(current.subsets.as_deref(), Some(&subsets)) {
        return None;
    }
    let mut next = current.clone();
    next.metadata.labels = Some(labels);
    next.subsets = Some(subsets);
    Some(ApiServerWrite::UpdateEndpoints(next))
}

fn slice_ports(ports: &[EndpointPort]) -> Vec<SlicePort> {
    ports
        .iter()
        .map(|p| SlicePort {
            name: p.name.clone(),
            port: Some(p.port),
            protocol: p.protocol.clone(),
            ..Default::default()
        })
        .collect()
}

fn slice_write(
    name: &str,
    address_type: &str,
    ips: &[IpAddr],
    target: &EndpointsTarget,
    reconcile_ports: bool,
    current: Option<&EndpointSlice>,
) -> Option<ApiServerWrite> {
    let endpoints: Vec<Endpoint> = ips
        .iter()
        .map(|ip| Endpoint {
            addresses: vec![ip.to_string()],
            conditions: Some(EndpointConditions {
                ready: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        })
        .collect();
    let labels = labels_of(&[(SERVICE_NAME_LABEL, SERVICE_NAME)]);
    let wanted_ports = slice_ports(&target.ports);
    let Some(current) = current else {
        return Some(ApiServerWrite::CreateEndpointSlice(EndpointSlice {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some(SERVICE_NAMESPACE.to_string()),
                labels: Some(labels),
                ..Default::default()
            },
            address_type: address_type.to_string(),
            endpoints,
            ports: Some(wanted_ports),
        }));
    };
    let current_ports = current.ports.clone().unwrap_or_default();
    let ports = if current_ports.is_empty() || (reconcile_ports && current_ports != wanted_ports) {
        wanted_ports
    } else {
        current_ports.clone()
    };
    let same = current.endpoints == endpoints
        && current_ports == ports
        && current.address_type == address_type
        && current.metadata.labels.clone().unwrap_or_default() == labels;
    if same {
        return None;
    }
    let mut next = current.clone();
    next.metadata.labels = Some(labels);
    next.address_type = address_type.to_string();
    next.endpoints = endpoints;
    next.ports = Some(ports);
    Some(ApiServerWrite::UpdateEndpointSlice(next))
}

/// Brings the Endpoints and slice(s) to the given apiserver IPs: Endpoints first, then
/// deletion of stray slices, then the primary slice, then the secondary one.
///
/// IPs are sorted and split by family; the secondary family is used only when a secondary
/// Service IP is configured and it has exactly as many IPs as the primary family. Ports are
/// replaced when the current ones are empty, or differ and `reconcile_ports` is set.
pub fn sync_endpoints(
    ips: &[IpAddr],
    target: &EndpointsTarget,
    reconcile_ports: bool,
    current: &ApiServerEndpoints,
) -> Vec<ApiServerWrite> {
    let mut sorted: Vec<IpAddr> = ips.to_vec();
    sorted.sort_by_key(|ip| ip.to_string());
    sorted.dedup();
    let primary_v4 = target.primary_service_ip.is_ipv4();
    let (primary, other): (Vec<IpAddr>, Vec<IpAddr>) = sorted
        .into_iter()
        .partition(|ip| ip.is_ipv4() == primary_v4);
    let secondary = if target.secondary_service_ip.is_some() && other.len() == primary.len() {
        other
    } else {
        Vec::new()
    };

    let mut writes = Vec::new();
    writes.extend(endpoints_write(
        &primary,
        target,
        reconcile_ports,
        current.endpoints.as_ref(),
    ));

    let secondary_name = target
        .secondary_service_ip
        .as_ref()
        .map(secondary_slice_name);
    let wanted = |name: &str| name == SERVICE_NAME || Some(name) == secondary_name;
    let mut strays: Vec<String> = current
        .slices
        .iter()
        .filter_map(|s| s.metadata.name.clone())
        .filter(|n| !wanted(n))
        .collect();
    strays.sort();
    writes.extend(strays.into_iter().map(ApiServerWrite::DeleteEndpointSlice));

    let find = |name: &str| {
        current
            .slices
            .iter()
            .find(|s| s.metadata.name.as_deref() == Some(name))
    };
    writes.extend(slice_write(
        SERVICE_NAME,
        family_name(&target.primary_service_ip),
        &primary,
        target,
        reconcile_ports,
        find(SERVICE_NAME),
    ));
    if let (Some(ip), Some(name)) = (target.secondary_service_ip.as_ref(), secondary_name) {
        writes.extend(slice_write(
            name,
            family_name(ip),
            &secondary,
            target,
            reconcile_ports,
            find(name),
        ));
    }
    writes
}
