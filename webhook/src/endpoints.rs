//! Validation of Endpoints (`ValidateEndpoints`) and EndpointSlices (`ValidateEndpointSlice`)
//! beyond ObjectMeta, and Pod container port names.

use std::collections::HashSet;

use k8s_openapi::api::core::v1::{Container, EndpointAddress, EndpointPort, EndpointSubset};
use k8s_openapi::api::discovery::v1::{
    Endpoint, EndpointHints, EndpointPort as SlicePort, EndpointSlice,
};

use crate::field::{FieldError, FieldPath, FieldValue};
use crate::ip::{
    validate_ip, validate_ipv4_address, validate_ipv6_address, validate_non_special_ip,
};
use crate::names::{
    is_dns1123_subdomain, is_valid_label_value, is_valid_port_name, is_valid_port_num,
    validate_dns1123_label, validate_fully_qualified_domain_name, validate_labels,
    validate_qualified_name,
};

/// The protocols an endpoint port may have (`sets.List`: sorted).
const PORT_PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
/// The address types an EndpointSlice may have (sorted).
const ADDRESS_TYPES: &[&str] = &["FQDN", "IPv4", "IPv6"];
const MAX_SLICE_PORTS: usize = 20_000;
const MAX_TOPOLOGY_LABELS: usize = 16;
const MAX_HINTS: usize = 8;

/// `validateEndpointSubsets`: each subset has addresses (ready or not), valid addresses and
/// valid ports (named when there are several).
pub fn validate_endpoint_subsets(subsets: &[EndpointSubset]) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, subset) in subsets.iter().enumerate() {
        let path = FieldPath::new("subsets").index(i);
        let none = |list: &Option<Vec<EndpointAddress>>| list.as_ref().is_none_or(Vec::is_empty);
        if none(&subset.addresses) && none(&subset.not_ready_addresses) {
            errs.push(FieldError::required(
                path.clone(),
                "must specify `addresses` or `notReadyAddresses`",
            ));
        }
        for (list, field) in [
            (&subset.addresses, "addresses"),
            (&subset.not_ready_addresses, "notReadyAddresses"),
        ] {
            for (j, address) in list.iter().flatten().enumerate() {
                errs.extend(validate_endpoint_address(
                    address,
                    &path.child(field).index(j),
                ));
            }
        }
        let ports = subset.ports.as_deref().unwrap_or(&[]);
        for (j, port) in ports.iter().enumerate() {
            errs.extend(validate_endpoint_port(
                port,
                ports.len() > 1,
                &path.child("ports").index(j),
            ));
        }
    }
    errs
}

/// `validateEndpointPort` of core/v1 Endpoints.
fn validate_endpoint_port(
    port: &EndpointPort,
    require_name: bool,
    path: &FieldPath,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let name = port.name.as_deref().unwrap_or("");
    if require_name && name.is_empty() {
        errs.push(FieldError::required(path.child("name"), ""));
    } else if !name.is_empty() {
        errs.extend(validate_dns1123_label(name, &path.child("name")));
    }
    for msg in is_valid_port_num(port.port.into()) {
        errs.push(FieldError::invalid(
            path.child("port"),
            FieldValue::Int(port.port.into()),
            msg,
        ));
    }
    errs.extend(validate_protocol(
        port.protocol.as_deref(),
        &path.child("protocol"),
    ));
    if let Some(app_protocol) = &port.app_protocol {
        errs.extend(validate_qualified_name(
            app_protocol,
            &path.child("appProtocol"),
        ));
    }
    errs
}

/// A port's protocol: required, and one of [`PORT_PROTOCOLS`].
fn validate_protocol(protocol: Option<&str>, path: &FieldPath) -> Vec<FieldError> {
    match protocol {
        None | Some("") => vec![FieldError::required(path.clone(), "")],
        Some(p) if !PORT_PROTOCOLS.contains(&p) => vec![FieldError::not_supported(
            path.clone(),
            FieldValue::Str(p.to_owned()),
            PORT_PROTOCOLS,
        )],
        Some(_) => Vec::new(),
    }
}

/// `ValidateEndpointSlice` beyond ObjectMeta: the address type, the ports, then the endpoints.
/// On an update whose endpoints are unchanged, their errors are ignored ("older versions of
/// Kubernetes considered the data valid").
pub fn validate_endpoint_slice(
    slice: &EndpointSlice,
    old: Option<&EndpointSlice>,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let address_type = FieldPath::new("addressType");
    match slice.address_type.as_str() {
        "" => errs.push(FieldError::required(address_type, "")),
        t if !ADDRESS_TYPES.contains(&t) => errs.push(FieldError::not_supported(
            address_type,
            FieldValue::Str(t.to_owned()),
            ADDRESS_TYPES,
        )),
        _ => {}
    }
    errs.extend(validate_slice_ports(slice.ports.as_deref().unwrap_or(&[])));
    let endpoint_errs = validate_endpoint_slice_addresses(slice);
    if !(old.is_some_and(|o| o.endpoints == slice.endpoints)) {
        errs.extend(endpoint_errs);
    }
    errs
}

/// `validatePorts` of discovery/v1 (no range check of the number: upstream has none).
fn validate_slice_ports(ports: &[SlicePort]) -> Vec<FieldError> {
    let path = FieldPath::new("ports");
    if ports.len() > MAX_SLICE_PORTS {
        return vec![FieldError::too_many(
            path,
            ports.len() as i64,
            MAX_SLICE_PORTS as i64,
        )];
    }
    let mut errs = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let idx = path.index(i);
        // Defaulting makes the name "" when absent.
        let name = port.name.as_deref().unwrap_or("");
        if !name.is_empty() {
            errs.extend(validate_dns1123_label(name, &idx.child("name")));
        }
        if names.contains(&name) {
            errs.push(FieldError::duplicate(
                idx.child("name"),
                FieldValue::Str(name.to_owned()),
            ));
        } else {
            names.push(name);
        }
        errs.extend(validate_protocol(
            port.protocol.as_deref(),
            &idx.child("protocol"),
        ));
        if let Some(app_protocol) = &port.app_protocol {
            errs.extend(validate_qualified_name(
                app_protocol,
                &idx.child("appProtocol"),
            ));
        }
    }
    errs
}

/// The checks of one slice endpoint after its addresses: node name, deprecated topology,
/// hostname, hints.
fn validate_slice_endpoint_fields(endpoint: &Endpoint, path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(node_name) = &endpoint.node_name {
        for msg in is_dns1123_subdomain(node_name) {
            errs.push(FieldError::invalid(
                path.child("nodeName"),
                FieldValue::Str(node_name.clone()),
                msg,
            ));
        }
    }
    let topology_path = path.child("deprecatedTopology");
    if let Some(topology) = &endpoint.deprecated_topology {
        if topology.len() > MAX_TOPOLOGY_LABELS {
            errs.push(FieldError::too_many(
                topology_path.clone(),
                topology.len() as i64,
                MAX_TOPOLOGY_LABELS as i64,
            ));
        }
        errs.extend(validate_labels(topology, &topology_path));
        if topology.contains_key("topology.kubernetes.io/zone") {
            errs.push(FieldError::internal(
                topology_path.key("topology.kubernetes.io/zone"),
                "reserved key was not removed in conversion",
            ));
        }
    }
    if let Some(hostname) = &endpoint.hostname {
        errs.extend(validate_dns1123_label(hostname, &path.child("hostname")));
    }
    if let Some(hints) = &endpoint.hints {
        errs.extend(validate_hints(hints, &path.child("hints")));
    }
    errs
}

/// `validateHints`: at most 8 zones and 8 nodes, each named once, zones as label values and
/// nodes as node names.
fn validate_hints(hints: &EndpointHints, path: &FieldPath) -> Vec<FieldError> {
    let zones: Vec<&str> = hints
        .for_zones
        .iter()
        .flatten()
        .map(|z| z.name.as_str())
        .collect();
    let nodes: Vec<&str> = hints
        .for_nodes
        .iter()
        .flatten()
        .map(|n| n.name.as_str())
        .collect();
    let zones_path = path.child("forZones");
    if zones.len() > MAX_HINTS {
        return vec![FieldError::too_many(
            zones_path,
            zones.len() as i64,
            MAX_HINTS as i64,
        )];
    }
    let mut errs = validate_hint_names(&zones, &zones_path, is_valid_label_value);
    let nodes_path = path.child("forNodes");
    if nodes.len() > MAX_HINTS {
        errs.push(FieldError::too_many(
            nodes_path,
            nodes.len() as i64,
            MAX_HINTS as i64,
        ));
        return errs;
    }
    errs.extend(validate_hint_names(
        &nodes,
        &nodes_path,
        is_dns1123_subdomain,
    ));
    errs
}

/// One list of hints (`path[i].name`): each name once, and of the form `check` accepts.
fn validate_hint_names(
    names: &[&str],
    path: &FieldPath,
    check: fn(&str) -> Vec<String>,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let name_path = path.index(i).child("name");
        let value = || FieldValue::Str((*name).to_owned());
        if names[..i].contains(name) {
            errs.push(FieldError::duplicate(name_path.clone(), value()));
        }
        for msg in check(name) {
            errs.push(FieldError::invalid(name_path.clone(), value(), msg));
        }
    }
    errs
}

/// `validateEndpointAddress` (core/v1 Endpoints), for an address at `path`.
pub fn validate_endpoint_address(address: &EndpointAddress, path: &FieldPath) -> Vec<FieldError> {
    let ip_path = path.child("ip");
    let mut errs = validate_ip(&address.ip, &ip_path);
    if let Some(hostname) = address.hostname.as_deref().filter(|h| !h.is_empty()) {
        errs.extend(validate_dns1123_label(hostname, &path.child("hostname")));
    }
    if let Some(node_name) = &address.node_name {
        for msg in is_dns1123_subdomain(node_name) {
            errs.push(FieldError::invalid(
                path.child("nodeName"),
                FieldValue::Str(node_name.clone()),
                msg,
            ));
        }
    }
    errs.extend(validate_non_special_ip(&address.ip, &ip_path));
    errs
}

/// `validateEndpoints` of discovery/v1: each endpoint's addresses, node name, deprecated
/// topology, hostname and hints.
pub fn validate_endpoint_slice_addresses(slice: &EndpointSlice) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let endpoints_path = FieldPath::new("endpoints");
    if slice.endpoints.len() > 1000 {
        errs.push(FieldError::too_many(
            endpoints_path,
            slice.endpoints.len() as i64,
            1000,
        ));
        return errs;
    }
    for (i, endpoint) in slice.endpoints.iter().enumerate() {
        let idx_path = endpoints_path.index(i);
        let addresses_path = idx_path.child("addresses");
        if endpoint.addresses.is_empty() {
            errs.push(FieldError::required(
                addresses_path.clone(),
                "must contain at least 1 address",
            ));
        } else if endpoint.addresses.len() > 100 {
            errs.push(FieldError::too_many(
                addresses_path.clone(),
                endpoint.addresses.len() as i64,
                100,
            ));
        }
        for (j, address) in endpoint.addresses.iter().enumerate() {
            let path = addresses_path.index(j);
            match slice.address_type.as_str() {
                "IPv4" => {
                    errs.extend(validate_ipv4_address(address, &path));
                    errs.extend(validate_non_special_ip(address, &path));
                }
                "IPv6" => {
                    errs.extend(validate_ipv6_address(address, &path));
                    errs.extend(validate_non_special_ip(address, &path));
                }
                "FQDN" => errs.extend(validate_fully_qualified_domain_name(address, &path)),
                // Unknown types fall through unchecked, as upstream's.
                _ => {}
            }
        }
        errs.extend(validate_slice_endpoint_fields(endpoint, &idx_path));
    }
    errs
}

/// Container port names (IANA_SVC_NAME, unique within a container) and numbers, with `path` the
/// containers list (e.g. `spec.containers`).
pub fn validate_container_ports(containers: &[Container], path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, container) in containers.iter().enumerate() {
        // Upstream checks uniqueness per container, and only for well-formed names.
        let mut names = HashSet::new();
        for (j, port) in container.ports.iter().flatten().enumerate() {
            let port_path = path.index(i).child("ports").index(j);
            if let Some(name) = port.name.as_deref().filter(|n| !n.is_empty()) {
                let msgs = is_valid_port_name(name);
                if !msgs.is_empty() {
                    for msg in msgs {
                        errs.push(FieldError::invalid(
                            port_path.child("name"),
                            FieldValue::Str(name.to_owned()),
                            msg,
                        ));
                    }
                } else if !names.insert(name.to_owned()) {
                    errs.push(FieldError::duplicate(
                        port_path.child("name"),
                        FieldValue::Str(name.to_owned()),
                    ));
                }
            }
            if port.container_port == 0 {
                errs.push(FieldError::required(port_path.child("containerPort"), ""));
            } else {
                for msg in crate::names::is_valid_port_num(port.container_port.into()) {
                    errs.push(FieldError::invalid(
                        port_path.child("containerPort"),
                        FieldValue::Int(port.container_port.into()),
                        msg,
                    ));
                }
            }
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn messages(errs: &[FieldError]) -> Vec<String> {
        errs.iter()
            .map(|e| e.message(ValueRenderingForTests::default()))
            .collect()
    }

    type ValueRenderingForTests = crate::field::ValueRendering;

    // Messages as kube-apiserver 1.34 answers the same objects (pkg/apis/core/validation's
    // validateEndpointSubsets and validateEndpointPort).
    #[test]
    fn endpoints_ports_and_empty_subsets_are_refused_as_upstream_refuses_them() {
        let subsets: Vec<EndpointSubset> = serde_json::from_value(json!([
            {"addresses": [{"ip": "10.1.0.1"}],
             "ports": [{"name": "UPPER_x", "port": 99999, "protocol": "FOO"},
                       {"port": 80, "protocol": "TCP", "appProtocol": "a/b/c"}]},
            {"ports": [{"port": 80, "protocol": "TCP"}]},
        ]))
        .unwrap();
        assert_eq!(
            messages(&validate_endpoint_subsets(&subsets)),
            [
                "subsets[0].ports[0].name: Invalid value: \"UPPER_x\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
                "subsets[0].ports[0].port: Invalid value: 99999: must be between 1 and 65535, inclusive",
                "subsets[0].ports[0].protocol: Unsupported value: \"FOO\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
                "subsets[0].ports[1].name: Required value",
                "subsets[0].ports[1].appProtocol: Invalid value: \"a/b/c\": a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                "subsets[1]: Required value: must specify `addresses` or `notReadyAddresses`",
            ]
        );
    }

    // pkg/apis/discovery/validation: addressType, then ports (no range check of the number),
    // then endpoints.
    #[test]
    fn slices_are_refused_as_upstream_refuses_them() {
        let slice: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"name": "s"},
            "addressType": "FOO",
            "ports": [{"name": "a", "port": 99999, "protocol": "FOO"},
                      {"name": "a", "port": 80, "protocol": "TCP"}],
            "endpoints": [{"addresses": ["x"], "nodeName": "Bad_Node",
                "hints": {"forZones": [{"name": "z"}, {"name": "z"}]}}],
        }))
        .unwrap();
        assert_eq!(
            messages(&validate_endpoint_slice(&slice, None)),
            [
                "addressType: Unsupported value: \"FOO\": supported values: \"FQDN\", \"IPv4\", \"IPv6\"",
                "ports[0].protocol: Unsupported value: \"FOO\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
                "ports[1].name: Duplicate value: \"a\"",
                "endpoints[0].nodeName: Invalid value: \"Bad_Node\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
                "endpoints[0].hints.forZones[1].name: Duplicate value: \"z\"",
            ]
        );
        let fqdn: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"name": "f"}, "addressType": "FQDN",
            "endpoints": [{"addresses": ["db.example.com."]}, {"addresses": ["db"]},
                {"addresses": ["Db.example"]}]}))
        .unwrap();
        assert_eq!(
            messages(&validate_endpoint_slice(&fqdn, None)),
            [
                "endpoints[1].addresses[0]: Invalid value: \"db\": should be a domain with at least two segments separated by dots",
                "endpoints[2].addresses[0]: Invalid value: \"Db.example\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
            ]
        );
        // An update that leaves the endpoints as they were keeps only the other errors.
        assert_eq!(
            validate_endpoint_slice(&slice, Some(&slice)).len(),
            3,
            "endpoint errors of an unchanged list are ignored"
        );
    }
}
