//! `ValidateService` and `ValidateServiceUpdate`: the field rules of a Service, causes in
//! upstream's order.

use std::collections::HashSet;

use gocompat::ip::{is_ipv6, parse_ip_sloppy};
use gocompat::quote::{go_json_string, go_quote};
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::field::{FieldError, FieldPath, FieldValue};
use crate::ip::{validate_cidr, validate_ip, validate_non_special_ip};
use crate::meta::{NameRule, validate_object_meta, validate_object_meta_update};
use crate::names::{
    is_dns1123_label, is_dns1123_subdomain, is_qualified_name, is_valid_port_name,
    is_valid_port_num, validate_dns1123_label, validate_dns1123_subdomain, validate_labels,
    validate_qualified_name,
};

/// Annotation that may carry load-balancer source ranges when the field is empty.
pub const LB_SOURCE_RANGES_ANNOTATION: &str =
    "service.beta.kubernetes.io/load-balancer-source-ranges";
const TOPOLOGY_HINTS_ANNOTATION: &str = "service.kubernetes.io/topology-aware-hints";
const TOPOLOGY_MODE_ANNOTATION: &str = "service.kubernetes.io/topology-mode";
/// Largest accepted `sessionAffinityConfig.clientIP.timeoutSeconds`.
pub const MAX_CLIENT_IP_AFFINITY_SECONDS: i32 = 86400;

/// Which `trafficDistribution` values the emulated release accepts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TrafficDistributionValues {
    /// 1.31–1.32: only `PreferClose`.
    PreferCloseOnly,
    /// 1.34+ (`PreferSameTrafficDistribution` on): `PreferClose`, `PreferSameZone`, `PreferSameNode`.
    #[default]
    WithPreferSame,
}

/// Feature switches that change what upstream accepts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ValidationOptions {
    /// `RelaxedServiceNameValidation`: names may be DNS-1123 labels (start with a digit).
    pub relaxed_service_names: bool,
    /// Accepted `trafficDistribution` values.
    pub traffic_distribution: TrafficDistributionValues,
}

/// Read access to a Service with Go's zero values for absent fields.
pub(crate) struct SpecView<'a>(pub &'a ServiceSpec);

impl<'a> SpecView<'a> {
    pub fn type_(&self) -> &'a str {
        self.0.type_.as_deref().unwrap_or("")
    }
    pub fn cluster_ip(&self) -> &'a str {
        self.0.cluster_ip.as_deref().unwrap_or("")
    }
    pub fn cluster_ips(&self) -> &'a [String] {
        self.0.cluster_ips.as_deref().unwrap_or(&[])
    }
    pub fn ip_families(&self) -> &'a [String] {
        self.0.ip_families.as_deref().unwrap_or(&[])
    }
    pub fn ports(&self) -> &'a [ServicePort] {
        self.0.ports.as_deref().unwrap_or(&[])
    }
    pub fn external_ips(&self) -> &'a [String] {
        self.0.external_ips.as_deref().unwrap_or(&[])
    }
    pub fn etp(&self) -> &'a str {
        self.0.external_traffic_policy.as_deref().unwrap_or("")
    }
    pub fn hcnp(&self) -> i32 {
        self.0.health_check_node_port.unwrap_or(0)
    }
    pub fn is_headless(&self) -> bool {
        self.cluster_ips().len() == 1 && self.cluster_ips()[0] == "None"
    }
    pub fn externally_accessible(&self) -> bool {
        matches!(self.type_(), "LoadBalancer" | "NodePort")
            || (self.type_() == "ClusterIP" && !self.external_ips().is_empty())
    }
    pub fn needs_health_check(&self) -> bool {
        self.type_() == "LoadBalancer" && self.etp() == "Local"
    }
}

pub(crate) fn spec_of(svc: &Service) -> std::borrow::Cow<'_, ServiceSpec> {
    match &svc.spec {
        Some(spec) => std::borrow::Cow::Borrowed(spec),
        None => std::borrow::Cow::Owned(ServiceSpec::default()),
    }
}

pub(crate) fn port_name(port: &ServicePort) -> &str {
    port.name.as_deref().unwrap_or("")
}

pub(crate) fn port_protocol(port: &ServicePort) -> &str {
    port.protocol.as_deref().unwrap_or("")
}

/// `ValidateService` on an object that has been defaulted and normalised.
pub fn validate_service_fields(svc: &Service, opts: &ValidationOptions) -> Vec<FieldError> {
    validate_fields_with_meta(&svc.metadata, svc, opts)
}

// `spec_holder` supplies the spec (and nothing else), so callers that prepared a spec-only copy
// need not clone the metadata.
pub(crate) fn validate_fields_with_meta(
    metadata: &ObjectMeta,
    spec_holder: &Service,
    opts: &ValidationOptions,
) -> Vec<FieldError> {
    let svc = spec_holder;
    let spec_owned = spec_of(svc);
    let s = SpecView(&spec_owned);
    let meta_path = FieldPath::new("metadata");
    let rule = if opts.relaxed_service_names {
        NameRule::Dns1123Label
    } else {
        NameRule::Dns1035Label
    };
    let mut errs = validate_object_meta(metadata, rule, &meta_path);
    let annotations = metadata.annotations.as_ref();

    if let (Some(mode), Some(hints)) = (
        annotations.and_then(|a| a.get(TOPOLOGY_MODE_ANNOTATION)),
        annotations.and_then(|a| a.get(TOPOLOGY_HINTS_ANNOTATION)),
    ) && mode != hints
    {
        errs.push(FieldError::invalid(
            meta_path.child("annotations").key(TOPOLOGY_MODE_ANNOTATION),
            FieldValue::Str(mode.clone()),
            format!("must match annotations[{TOPOLOGY_HINTS_ANNOTATION}] when both are specified"),
        ));
    }

    let spec_path = FieldPath::new("spec");
    let ports_path = spec_path.child("ports");
    if s.ports().is_empty() && !s.is_headless() && s.type_() != "ExternalName" {
        errs.push(FieldError::required(ports_path.clone(), ""));
    }

    match s.type_() {
        "LoadBalancer" | "NodePort" if s.is_headless() => {
            errs.push(FieldError::invalid(
                spec_path.child("clusterIPs").index(0),
                FieldValue::Str("None".to_owned()),
                format!("may not be set to 'None' for {} services", s.type_()),
            ));
        }
        "ExternalName" => {
            let msg = "may not be set for ExternalName services";
            if !s.cluster_ips().is_empty() {
                errs.push(FieldError::forbidden(spec_path.child("clusterIPs"), msg));
            }
            if !s.ip_families().is_empty() {
                errs.push(FieldError::forbidden(spec_path.child("ipFamilies"), msg));
            }
            if s.0.ip_family_policy.is_some() {
                errs.push(FieldError::forbidden(
                    spec_path.child("ipFamilyPolicy"),
                    msg,
                ));
            }
            let external_name = s.0.external_name.as_deref().unwrap_or("");
            let cname = external_name.strip_suffix('.').unwrap_or(external_name);
            if cname.is_empty() {
                errs.push(FieldError::required(spec_path.child("externalName"), ""));
            } else {
                errs.extend(validate_dns1123_subdomain(
                    cname,
                    &spec_path.child("externalName"),
                ));
            }
        }
        _ => {}
    }

    let mut port_names: Vec<&str> = Vec::new();
    let require_name = s.ports().len() > 1;
    for (i, port) in s.ports().iter().enumerate() {
        errs.extend(validate_service_port(
            port,
            require_name,
            &mut port_names,
            &ports_path.index(i),
        ));
    }

    if let Some(selector) = &s.0.selector {
        errs.extend(validate_labels(selector, &spec_path.child("selector")));
    }

    errs.extend(validate_session_affinity(&s, &spec_path));
    errs.extend(validate_cluster_ips_related_fields(svc));

    let external_ips_path = spec_path.child("externalIPs");
    for (i, ip) in s.external_ips().iter().enumerate() {
        let path = external_ips_path.index(i);
        let ip_errs = validate_ip(ip, &path);
        if ip_errs.is_empty() {
            errs.extend(validate_non_special_ip(ip, &path));
        } else {
            errs.extend(ip_errs);
        }
    }

    match s.type_() {
        "" => errs.push(FieldError::required(spec_path.child("type"), "")),
        "ClusterIP" | "ExternalName" | "LoadBalancer" | "NodePort" => {}
        other => errs.push(FieldError::not_supported(
            spec_path.child("type"),
            FieldValue::Named(other.to_owned()),
            &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"],
        )),
    }

    if s.type_() == "ClusterIP" {
        for (i, port) in s.ports().iter().enumerate() {
            if port.node_port.unwrap_or(0) != 0 {
                errs.push(FieldError::forbidden(
                    ports_path.index(i).child("nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                ));
            }
        }
    }

    let mut node_ports: Vec<(&str, i32)> = Vec::new();
    for (i, port) in s.ports().iter().enumerate() {
        let node_port = port.node_port.unwrap_or(0);
        if node_port == 0 {
            continue;
        }
        let key = (port_protocol(port), node_port);
        if node_ports.contains(&key) {
            errs.push(FieldError::duplicate(
                ports_path.index(i).child("nodePort"),
                FieldValue::Int(node_port.into()),
            ));
        }
        node_ports.push(key);
    }

    let mut seen_ports: Vec<(&str, i32)> = Vec::new();
    for (i, port) in s.ports().iter().enumerate() {
        let key = (port_protocol(port), port.port);
        if seen_ports.contains(&key) {
            errs.push(FieldError::duplicate(
                ports_path.index(i),
                duplicate_port_value(port_protocol(port), port.port),
            ));
        }
        seen_ports.push(key);
    }

    errs.extend(validate_source_ranges(metadata, &s, &spec_path));

    if s.0.allocate_load_balancer_node_ports.is_some() && s.type_() != "LoadBalancer" {
        errs.push(FieldError::forbidden(
            spec_path.child("allocateLoadBalancerNodePorts"),
            "may only be used when `type` is 'LoadBalancer'",
        ));
    }
    if s.type_() == "LoadBalancer" && s.0.allocate_load_balancer_node_ports.is_none() {
        // Upstream builds this path without the `spec.` prefix.
        errs.push(FieldError::required(
            FieldPath::new("allocateLoadBalancerNodePorts"),
            "",
        ));
    }

    errs.extend(validate_load_balancer_class(None, &s));
    errs.extend(validate_external_traffic_policy(&s, &spec_path));
    errs.extend(validate_internal_traffic_policy(&s, &spec_path));
    errs.extend(validate_traffic_distribution(&s, &spec_path, opts));
    errs
}

// The key of the duplicate-port check is an internal ServicePort with only Protocol and Port set.
fn duplicate_port_value(protocol: &str, port: i32) -> FieldValue {
    FieldValue::Rendered {
        json: format!(
            "{{\"Name\":\"\",\"Protocol\":{},\"AppProtocol\":null,\"Port\":{port},\"TargetPort\":0,\"NodePort\":0}}",
            go_json_string(protocol)
        ),
        go_syntax: format!(
            "core.ServicePort{{Name:\"\", Protocol:{}, AppProtocol:(*string)(nil), Port:{port}, TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:\"\"}}, NodePort:0}}",
            go_quote(protocol)
        ),
    }
}

// Ports are few, so uniqueness is checked by linear scans rather than hashing, and child paths
// are built only when there is an error to report.
fn validate_service_port<'a>(
    port: &'a ServicePort,
    require_name: bool,
    names: &mut Vec<&'a str>,
    path: &FieldPath,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let name = port_name(port);
    if require_name && name.is_empty() {
        errs.push(FieldError::required(path.child("name"), ""));
    } else if !name.is_empty() {
        if !is_dns1123_label(name).is_empty() {
            errs.extend(validate_dns1123_label(name, &path.child("name")));
        }
        if names.contains(&name) {
            errs.push(FieldError::duplicate(
                path.child("name"),
                FieldValue::Str(name.to_owned()),
            ));
        } else {
            names.push(name);
        }
    }
    for msg in is_valid_port_num(port.port.into()) {
        errs.push(FieldError::invalid(
            path.child("port"),
            FieldValue::Int(port.port.into()),
            msg,
        ));
    }
    match port_protocol(port) {
        "" => errs.push(FieldError::required(path.child("protocol"), "")),
        "TCP" | "UDP" | "SCTP" => {}
        other => errs.push(FieldError::not_supported(
            path.child("protocol"),
            FieldValue::Named(other.to_owned()),
            &["SCTP", "TCP", "UDP"],
        )),
    }
    let target = port.target_port.as_ref().unwrap_or(&IntOrString::Int(0));
    let target_ok = match target {
        IntOrString::Int(n) => is_valid_port_num((*n).into()).is_empty(),
        IntOrString::String(name) => is_valid_port_name(name).is_empty(),
    };
    if !target_ok {
        errs.extend(validate_port_num_or_name(target, &path.child("targetPort")));
    }
    if let Some(app_protocol) = &port.app_protocol
        && !is_qualified_name(app_protocol).is_empty()
    {
        errs.extend(validate_qualified_name(
            app_protocol,
            &path.child("appProtocol"),
        ));
    }
    errs
}

/// `ValidatePortNumOrName`: a number in 1..65535 or an IANA_SVC_NAME.
pub fn validate_port_num_or_name(port: &IntOrString, path: &FieldPath) -> Vec<FieldError> {
    match port {
        IntOrString::Int(n) => is_valid_port_num((*n).into())
            .into_iter()
            .map(|m| FieldError::invalid(path.clone(), FieldValue::Int((*n).into()), m))
            .collect(),
        IntOrString::String(name) => is_valid_port_name(name)
            .into_iter()
            .map(|m| FieldError::invalid(path.clone(), FieldValue::Str(name.clone()), m))
            .collect(),
    }
}

fn validate_session_affinity(s: &SpecView<'_>, spec_path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let affinity = s.0.session_affinity.as_deref().unwrap_or("");
    let path = spec_path.child("sessionAffinity");
    match affinity {
        "" => errs.push(FieldError::required(path, "")),
        "ClientIP" | "None" => {}
        other => errs.push(FieldError::not_supported(
            path,
            FieldValue::Named(other.to_owned()),
            &["ClientIP", "None"],
        )),
    }
    let config_path = spec_path.child("sessionAffinityConfig");
    if affinity == "ClientIP" {
        let detail = "when session affinity type is ClientIP";
        let Some(config) = &s.0.session_affinity_config else {
            errs.push(FieldError::required(config_path, detail));
            return errs;
        };
        let client_ip_path = config_path.child("clientIP");
        let Some(client_ip) = &config.client_ip else {
            errs.push(FieldError::required(client_ip_path, detail));
            return errs;
        };
        let timeout_path = client_ip_path.child("timeoutSeconds");
        let Some(timeout) = client_ip.timeout_seconds else {
            errs.push(FieldError::required(timeout_path, detail));
            return errs;
        };
        if timeout <= 0 || timeout > MAX_CLIENT_IP_AFFINITY_SECONDS {
            errs.push(FieldError::invalid(
                timeout_path,
                FieldValue::Int(timeout.into()),
                format!("must be greater than 0 and less than {MAX_CLIENT_IP_AFFINITY_SECONDS}"),
            ));
        }
    } else if affinity == "None" && s.0.session_affinity_config.is_some() {
        errs.push(FieldError::forbidden(
            config_path,
            "must not be set when session affinity is None",
        ));
    }
    errs
}

/// `ValidateServiceClusterIPsRelatedFields` (skipped for ExternalName).
pub fn validate_cluster_ips_related_fields(svc: &Service) -> Vec<FieldError> {
    let spec_owned = spec_of(svc);
    let s = SpecView(&spec_owned);
    let mut errs = Vec::new();
    if s.type_() == "ExternalName" {
        return errs;
    }
    let spec_path = FieldPath::new("spec");
    let ips_path = spec_path.child("clusterIPs");
    let families_path = spec_path.child("ipFamilies");
    let ips = s.cluster_ips();
    let ips_value = || FieldValue::strings(s.0.cluster_ips.as_ref());

    if !s.cluster_ip().is_empty() {
        if ips.is_empty() {
            errs.push(FieldError::required(ips_path.clone(), ""));
        } else if ips[0] != s.cluster_ip() {
            errs.push(FieldError::invalid(
                ips_path.clone(),
                ips_value(),
                "first value must match `clusterIP`",
            ));
        }
    } else if !ips.is_empty() {
        errs.push(FieldError::invalid(
            ips_path.clone(),
            ips_value(),
            "must be empty when `clusterIP` is not specified",
        ));
    }

    let mut seen = HashSet::new();
    for (i, family) in s.ip_families().iter().enumerate() {
        if family != "IPv4" && family != "IPv6" {
            errs.push(FieldError::not_supported(
                families_path.index(i),
                FieldValue::Named(family.clone()),
                &["IPv4", "IPv6"],
            ));
        }
        if !seen.insert(family.as_str()) {
            errs.push(FieldError::duplicate(
                families_path.index(i),
                FieldValue::Named(family.clone()),
            ));
        }
    }

    if let Some(policy) = &s.0.ip_family_policy
        && !matches!(
            policy.as_str(),
            "SingleStack" | "PreferDualStack" | "RequireDualStack"
        )
    {
        errs.push(FieldError::not_supported(
            spec_path.child("ipFamilyPolicy"),
            FieldValue::Named(policy.clone()),
            &["PreferDualStack", "RequireDualStack", "SingleStack"],
        ));
    }

    let mut has_invalid_ips = false;
    for (i, ip) in ips.iter().enumerate() {
        if i == 0 && ip == "None" {
            if ips.len() > 1 {
                has_invalid_ips = true;
                errs.push(FieldError::invalid(
                    ips_path.clone(),
                    ips_value(),
                    "'None' must be the first and only value",
                ));
            }
            continue;
        }
        let ip_errs = validate_ip(ip, &ips_path.index(i));
        has_invalid_ips |= !ip_errs.is_empty();
        errs.extend(ip_errs);
    }

    if ips.len() > 2 {
        errs.push(FieldError::invalid(
            ips_path.clone(),
            ips_value(),
            "may only hold up to 2 values",
        ));
    }
    if has_invalid_ips {
        return errs;
    }

    if ips.len() > 1 {
        // `IsDualStackIPStrings`: some address of each family, however many there are (a third
        // value is reported by "may only hold up to 2 values" alone).
        let v6: Vec<bool> = ips
            .iter()
            .filter_map(|ip| parse_ip_sloppy(ip))
            .map(is_ipv6)
            .collect();
        let dual_stack = v6.contains(&true) && v6.contains(&false);
        if !dual_stack {
            errs.push(FieldError::invalid(
                ips_path.clone(),
                ips_value(),
                "may specify no more than one IP for each IP family",
            ));
        }
    }

    if !s.is_headless() {
        for (i, (ip, family)) in ips.iter().zip(s.ip_families()).enumerate() {
            let ip_is_v6 = parse_ip_sloppy(ip).is_some_and(is_ipv6);
            let expected = match family.as_str() {
                "IPv4" if ip_is_v6 => "IPv4",
                "IPv6" if !ip_is_v6 => "IPv6",
                _ => continue,
            };
            errs.push(FieldError::invalid(
                ips_path.index(i),
                FieldValue::Str(ip.clone()),
                format!("expected an {expected} value as indicated by `ipFamilies[{i}]`"),
            ));
        }
    }
    errs
}

fn validate_source_ranges(
    metadata: &ObjectMeta,
    s: &SpecView<'_>,
    spec_path: &FieldPath,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let ranges = s.0.load_balancer_source_ranges.as_deref().unwrap_or(&[]);
    let forbidden = "may only be used when `type` is 'LoadBalancer'";
    if !ranges.is_empty() {
        // Upstream names this path with a capital L.
        let path = spec_path.child("LoadBalancerSourceRanges");
        if s.type_() != "LoadBalancer" {
            errs.push(FieldError::forbidden(path.clone(), forbidden));
        }
        for (i, value) in ranges.iter().enumerate() {
            errs.extend(validate_cidr(value.trim(), &path.index(i)));
        }
    } else if let Some(value) = metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(LB_SOURCE_RANGES_ANNOTATION))
    {
        let path = FieldPath::new("metadata")
            .child("annotations")
            .key(LB_SOURCE_RANGES_ANNOTATION);
        if s.type_() != "LoadBalancer" {
            errs.push(FieldError::forbidden(path.clone(), forbidden));
        }
        let value = value.trim();
        if !value.is_empty() {
            for cidr in value.split(',') {
                errs.extend(validate_cidr(cidr.trim(), &path));
            }
        }
    }
    errs
}

fn validate_load_balancer_class(old: Option<&SpecView<'_>>, s: &SpecView<'_>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let path = FieldPath::new("spec").child("loadBalancerClass");
    let class = s.0.load_balancer_class.as_ref();
    if let Some(old) = old
        && old.type_() == "LoadBalancer"
        && s.type_() == "LoadBalancer"
        && old.0.load_balancer_class.as_ref() != class
    {
        errs.push(FieldError::invalid(
            path.clone(),
            FieldValue::named_ptr(class),
            "may not change once set",
        ));
    }
    if s.type_() == "LoadBalancer" {
        if let Some(class) = class {
            errs.extend(validate_qualified_name(class, &path));
        }
    } else if class.is_some() {
        errs.push(FieldError::forbidden(
            path,
            "may only be used when `type` is 'LoadBalancer'",
        ));
    }
    errs
}

fn validate_external_traffic_policy(s: &SpecView<'_>, spec_path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let path = spec_path.child("externalTrafficPolicy");
    if !s.externally_accessible() {
        if !s.etp().is_empty() {
            errs.push(FieldError::invalid(
                path,
                FieldValue::Named(s.etp().to_owned()),
                "may only be set for externally-accessible services",
            ));
        }
    } else if s.etp().is_empty() {
        errs.push(FieldError::required(path, ""));
    } else if !matches!(s.etp(), "Cluster" | "Local") {
        errs.push(FieldError::not_supported(
            path,
            FieldValue::Named(s.etp().to_owned()),
            &["Cluster", "Local"],
        ));
    }
    let hc_path = spec_path.child("healthCheckNodePort");
    if !s.needs_health_check() {
        if s.hcnp() != 0 {
            errs.push(FieldError::invalid(
                hc_path,
                FieldValue::Int(s.hcnp().into()),
                "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
            ));
        }
    } else if s.hcnp() == 0 {
        errs.push(FieldError::required(hc_path, ""));
    } else {
        for msg in is_valid_port_num(s.hcnp().into()) {
            errs.push(FieldError::invalid(
                hc_path.clone(),
                FieldValue::Int(s.hcnp().into()),
                msg,
            ));
        }
    }
    errs
}

fn validate_internal_traffic_policy(s: &SpecView<'_>, spec_path: &FieldPath) -> Vec<FieldError> {
    let path = spec_path.child("internalTrafficPolicy");
    match &s.0.internal_traffic_policy {
        None if matches!(s.type_(), "NodePort" | "LoadBalancer" | "ClusterIP") => {
            vec![FieldError::required(path, "")]
        }
        Some(policy) if !matches!(policy.as_str(), "Cluster" | "Local") => {
            vec![FieldError::not_supported(
                path,
                FieldValue::Named(policy.clone()),
                &["Cluster", "Local"],
            )]
        }
        _ => Vec::new(),
    }
}

fn validate_traffic_distribution(
    s: &SpecView<'_>,
    spec_path: &FieldPath,
    opts: &ValidationOptions,
) -> Vec<FieldError> {
    let Some(value) = &s.0.traffic_distribution else {
        return Vec::new();
    };
    let supported: &[&str] = match opts.traffic_distribution {
        TrafficDistributionValues::PreferCloseOnly => &["PreferClose"],
        TrafficDistributionValues::WithPreferSame => {
            &["PreferClose", "PreferSameZone", "PreferSameNode"]
        }
    };
    if supported.contains(&value.as_str()) {
        return Vec::new();
    }
    vec![FieldError::not_supported(
        spec_path.child("trafficDistribution"),
        FieldValue::Str(value.clone()),
        supported,
    )]
}

/// `ValidateServiceUpdate`: update-only causes first, then `ValidateService` on the new object.
pub fn validate_service_update_fields(
    new: &Service,
    old: &Service,
    opts: &ValidationOptions,
) -> Vec<FieldError> {
    let new_spec = spec_of(new);
    let old_spec = spec_of(old);
    let n = SpecView(&new_spec);
    let o = SpecView(&old_spec);
    let mut errs =
        validate_object_meta_update(&new.metadata, &old.metadata, &FieldPath::new("metadata"));
    errs.extend(validate_upgrade_downgrade_cluster_ips(&o, &n));
    errs.extend(validate_upgrade_downgrade_ip_families(&o, &n));
    errs.extend(validate_load_balancer_class(Some(&o), &n));
    if o.needs_health_check() && n.needs_health_check() && o.hcnp() != n.hcnp() {
        errs.push(FieldError::forbidden(
            FieldPath::new("spec").child("healthCheckNodePort"),
            "field is immutable",
        ));
    }
    errs.extend(validate_service_fields(new, opts));
    errs
}

fn validate_upgrade_downgrade_cluster_ips(o: &SpecView<'_>, n: &SpecView<'_>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if n.type_() == "ExternalName"
        || o.type_() == "ExternalName"
        || (o.is_headless() && n.is_headless())
    {
        return errs;
    }
    let path = FieldPath::new("spec").child("clusterIPs");
    let value = || FieldValue::strings(n.0.cluster_ips.as_ref());
    let (old_ips, new_ips) = (o.cluster_ips(), n.cluster_ips());
    let changed = "may not change once set";
    if old_ips.len() == new_ips.len() {
        for (i, (old_ip, new_ip)) in old_ips.iter().zip(new_ips).enumerate() {
            if old_ip != new_ip {
                errs.push(FieldError::invalid(path.index(i), value(), changed));
            }
        }
    } else if old_ips.len() > new_ips.len() {
        if new_ips.is_empty() {
            errs.push(FieldError::invalid(
                path.index(0),
                value(),
                "primary clusterIP can not be unset",
            ));
        }
        if let (Some(old_first), Some(new_first)) = (old_ips.first(), new_ips.first())
            && old_first != new_first
        {
            errs.push(FieldError::invalid(path.index(0), value(), changed));
        }
        if new_ips.len() == 1 && n.0.ip_family_policy.as_deref() != Some("SingleStack") {
            errs.push(FieldError::invalid(
                FieldPath::new("spec").child("ipFamilyPolicy"),
                FieldValue::named_ptr(n.0.ip_family_policy.as_ref()),
                "must be set to 'SingleStack' when releasing the secondary clusterIP",
            ));
        }
    } else if let (Some(old_first), Some(new_first)) = (old_ips.first(), new_ips.first())
        && old_first != new_first
    {
        errs.push(FieldError::invalid(path.index(0), value(), changed));
    }
    errs
}

fn validate_upgrade_downgrade_ip_families(o: &SpecView<'_>, n: &SpecView<'_>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if n.type_() == "ExternalName"
        || o.type_() == "ExternalName"
        || o.is_headless()
        || n.is_headless()
    {
        return errs;
    }
    // Upstream always reports index 0, and prints the clusterIPs list in two branches.
    let path = FieldPath::new("spec").child("ipFamilies").index(0);
    let families_value = || FieldValue::ip_families(n.0.ip_families.as_ref());
    let ips_value = || FieldValue::strings(n.0.cluster_ips.as_ref());
    let (old_families, new_families) = (o.ip_families(), n.ip_families());
    let changed = "may not change once set";
    if old_families.len() == new_families.len() {
        for (old_family, new_family) in old_families.iter().zip(new_families) {
            if old_family != new_family {
                errs.push(FieldError::invalid(path.clone(), families_value(), changed));
            }
        }
    } else if old_families.len() > new_families.len() {
        if n.cluster_ips().is_empty() {
            errs.push(FieldError::invalid(
                path.clone(),
                families_value(),
                "primary ipFamily can not be unset",
            ));
        }
        if let (Some(old_first), Some(new_first)) = (old_families.first(), new_families.first())
            && old_first != new_first
        {
            errs.push(FieldError::invalid(path.clone(), ips_value(), changed));
        }
        if new_families.len() == 1 && n.0.ip_family_policy.as_deref() != Some("SingleStack") {
            errs.push(FieldError::invalid(
                FieldPath::new("spec").child("ipFamilyPolicy"),
                FieldValue::named_ptr(n.0.ip_family_policy.as_ref()),
                "must be set to 'SingleStack' when releasing the secondary ipFamily",
            ));
        }
    } else if let (Some(old_first), Some(new_first)) = (old_families.first(), new_families.first())
        && old_first != new_first
    {
        errs.push(FieldError::invalid(path, ips_value(), changed));
    }
    errs
}

/// `ValidateLoadBalancerStatus` of a status update (`services/status`), after the API server's
/// defaulting (which gives every ingress with an `ip` an `ipMode`, so "must be specified when
/// `ip` is set" cannot arise): ingress only on a LoadBalancer; each ingress's IP, IP mode and
/// hostname.
pub fn validate_service_status(svc: &Service) -> Vec<FieldError> {
    let ingress_path = FieldPath::new("status")
        .child("loadBalancer")
        .child("ingress");
    let ingresses = svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_deref())
        .unwrap_or(&[]);
    let type_ = svc
        .spec
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("");
    if type_ != "LoadBalancer" && !ingresses.is_empty() {
        return vec![FieldError::forbidden(
            ingress_path,
            "may only be used when `spec.type` is 'LoadBalancer'",
        )];
    }
    let mut errs = Vec::new();
    for (i, ingress) in ingresses.iter().enumerate() {
        let path = ingress_path.index(i);
        let ip = ingress.ip.as_deref().unwrap_or("");
        if !ip.is_empty() {
            errs.extend(validate_ip(ip, &path.child("ip")));
        }
        match ingress.ip_mode.as_deref() {
            Some(_) if ip.is_empty() => errs.push(FieldError::forbidden(
                path.child("ipMode"),
                "may not be specified when `ip` is not set",
            )),
            Some(mode) if !matches!(mode, "Proxy" | "VIP") => errs.push(FieldError::not_supported(
                path.child("ipMode"),
                FieldValue::Str(mode.to_owned()),
                &["Proxy", "VIP"],
            )),
            _ => {}
        }
        let hostname = ingress.hostname.as_deref().unwrap_or("");
        if !hostname.is_empty() {
            for msg in is_dns1123_subdomain(hostname) {
                errs.push(FieldError::invalid(
                    path.child("hostname"),
                    FieldValue::Str(hostname.to_owned()),
                    msg,
                ));
            }
            if parse_ip_sloppy(hostname).is_some() {
                errs.push(FieldError::invalid(
                    path.child("hostname"),
                    FieldValue::Str(hostname.to_owned()),
                    "must be a DNS name, not an IP address",
                ));
            }
        }
    }
    errs
}

#[cfg(test)]
mod status_tests {
    use super::*;
    use serde_json::json;

    fn messages(svc: serde_json::Value) -> Vec<String> {
        let svc: Service = serde_json::from_value(svc).unwrap();
        validate_service_status(&svc)
            .iter()
            .map(|e| e.message(crate::field::ValueRendering::default()))
            .collect()
    }

    // kube-apiserver 1.34's answers to the same status patches (services/status).
    #[test]
    fn load_balancer_status_is_refused_as_upstream_refuses_it() {
        assert_eq!(
            messages(json!({"spec": {"type": "ClusterIP"},
                "status": {"loadBalancer": {"ingress": [{"ip": "not-an-ip"}]}}})),
            [
                "status.loadBalancer.ingress: Forbidden: may only be used when `spec.type` is 'LoadBalancer'"
            ]
        );
        assert_eq!(
            messages(json!({"spec": {"type": "LoadBalancer"},
                "status": {"loadBalancer": {"ingress": [
                    {"ip": "not-an-ip", "ipMode": "VIP"},
                    {"hostname": "10.0.0.1", "ipMode": "VIP"},
                    {"ip": "10.0.0.2", "ipMode": "Foo"},
                    {"hostname": "Bad_Host"}]}}})),
            [
                "status.loadBalancer.ingress[0].ip: Invalid value: \"not-an-ip\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                "status.loadBalancer.ingress[1].ipMode: Forbidden: may not be specified when `ip` is not set",
                "status.loadBalancer.ingress[1].hostname: Invalid value: \"10.0.0.1\": must be a DNS name, not an IP address",
                "status.loadBalancer.ingress[2].ipMode: Unsupported value: \"Foo\": supported values: \"Proxy\", \"VIP\"",
                "status.loadBalancer.ingress[3].hostname: Invalid value: \"Bad_Host\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
            ]
        );
        assert!(
            messages(json!({"spec": {"type": "LoadBalancer"},
            "status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.3", "ipMode": "VIP"}]}}}))
            .is_empty()
        );
    }
}
