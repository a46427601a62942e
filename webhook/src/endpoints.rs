//! Address checks of Endpoints and EndpointSlices, and Pod container port names.

use std::collections::HashSet;

use k8s_openapi::api::core::v1::{Container, EndpointAddress};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::field::{FieldError, FieldPath, FieldValue};
use crate::ip::{
    validate_ip, validate_ipv4_address, validate_ipv6_address, validate_non_special_ip,
};
use crate::names::{is_dns1123_subdomain, is_valid_port_name, validate_dns1123_label};

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

/// The address part of EndpointSlice validation (`endpoints[i].addresses[j]`, hostname).
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
                // FQDN and unknown types are not address-checked here.
                _ => {}
            }
        }
        if let Some(hostname) = &endpoint.hostname {
            errs.extend(validate_dns1123_label(
                hostname,
                &idx_path.child("hostname"),
            ));
        }
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
