//! What the registry checks against the cluster's configuration before validation: IP-family
//! defaulting (`initIPFamilyFields`) and the static (user-requested) ClusterIP and NodePort
//! claims, judged against configured ranges and a snapshot of what is already taken.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use gocompat::ip::{is_ipv6, parse_ip_sloppy, to_ipv4};
use ipnet::IpNet;
use k8s_openapi::api::core::v1::Service;

use crate::field::{FieldError, FieldPath, FieldValue};
use crate::service::{SpecView, spec_of, validate_cluster_ips_related_fields};

/// The cluster's Service ranges (`--service-cluster-ip-range`, `--service-node-port-range`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceRanges {
    /// One CIDR per configured family; the first is the primary family.
    pub cluster_ip: Vec<IpNet>,
    /// Inclusive NodePort range.
    pub node_ports: (u16, u16),
}

impl Default for ServiceRanges {
    fn default() -> Self {
        ServiceRanges {
            cluster_ip: vec![IpNet::V4(
                ipnet::Ipv4Net::new(std::net::Ipv4Addr::new(10, 96, 0, 0), 12).unwrap_or_default(),
            )],
            node_ports: (30000, 32767),
        }
    }
}

impl ServiceRanges {
    fn family_configured(&self, family: &str) -> bool {
        self.cluster_ip
            .iter()
            .any(|net| family_of_net(net) == family)
    }

    fn primary_family(&self) -> &'static str {
        self.cluster_ip.first().map(family_of_net).unwrap_or("IPv4")
    }

    fn dual_stack(&self) -> bool {
        self.family_configured("IPv4") && self.family_configured("IPv6")
    }

    // The IPAddress allocator's static rule: inside a configured CIDR of the address's family,
    // excluding the network address and (IPv4) the broadcast address.
    fn contains_assignable(&self, ip: IpAddr) -> bool {
        let ip = match to_ipv4(ip) {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        };
        self.cluster_ip.iter().any(|net| {
            net.contains(&ip)
                && ip != net.network()
                && !(matches!(net, IpNet::V4(_)) && ip == net.broadcast())
        })
    }

    /// The `LOW-HIGH` form of the NodePort range.
    pub fn node_port_range(&self) -> String {
        format!("{}-{}", self.node_ports.0, self.node_ports.1)
    }
}

fn family_of_net(net: &IpNet) -> &'static str {
    match net {
        IpNet::V4(_) => "IPv4",
        IpNet::V6(_) => "IPv6",
    }
}

fn family_of_ip(ip: &str) -> &'static str {
    match parse_ip_sloppy(ip) {
        Some(ip) if is_ipv6(ip) => "IPv6",
        _ => "IPv4",
    }
}

/// What other objects already hold, as seen by the allocator.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllocationSnapshot {
    /// ClusterIPs held by other Services.
    pub cluster_ips: BTreeSet<IpAddr>,
    /// NodePorts held by other Services.
    pub node_ports: BTreeSet<i32>,
}

/// An allocation-stage outcome other than success; upstream never mixes these with validation
/// causes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// A 422 with exactly these causes.
    Invalid(Vec<FieldError>),
    /// A 500 `Internal error occurred: <message>`.
    Internal(String),
}

/// `initIPFamilyFields`: defaults `ipFamilyPolicy` and `ipFamilies` from the cluster's families,
/// rejecting requests the cluster cannot serve. `old` is the stored object on update.
pub fn prepare_ip_families(
    svc: &mut Service,
    old: Option<&Service>,
    ranges: &ServiceRanges,
) -> Result<(), Vec<FieldError>> {
    let spec = svc.spec.get_or_insert_with(Default::default);
    if SpecView(spec).type_() == "ExternalName" {
        return Ok(());
    }
    let old_spec = old.map(spec_of);
    if let Some(old_spec) = &old_spec
        && spec.ip_family_policy.as_deref() == Some("PreferDualStack")
        && old_spec.ip_family_policy == spec.ip_family_policy
        && old_spec.type_ == spec.type_
        && SpecView(old_spec).cluster_ips() == SpecView(spec).cluster_ips()
        && SpecView(old_spec).ip_families() == SpecView(spec).ip_families()
    {
        return Ok(());
    }
    let headless_selectorless = SpecView(spec).cluster_ip() == "None"
        && spec.selector.as_ref().is_none_or(|s| s.is_empty());
    if spec.ip_family_policy.is_none() {
        spec.ip_family_policy = match old_spec.as_ref().and_then(|o| o.ip_family_policy.clone()) {
            Some(inherited) => Some(inherited),
            None if headless_selectorless => Some("RequireDualStack".to_owned()),
            None => Some("SingleStack".to_owned()),
        };
    }
    let errs = validate_cluster_ips_related_fields(svc);
    if !errs.is_empty() {
        return Err(errs);
    }
    let spec = svc.spec.get_or_insert_with(Default::default);
    let policy = spec.ip_family_policy.clone().unwrap_or_default();
    let policy_value = || FieldValue::Named(policy.clone());
    let policy_path = FieldPath::new("spec").child("ipFamilyPolicy");
    let mut errs = Vec::new();
    if policy == "SingleStack" {
        if SpecView(spec).cluster_ips().len() == 2 {
            errs.push(FieldError::invalid(
                policy_path.clone(),
                policy_value(),
                "must be 'RequireDualStack' or 'PreferDualStack' when multiple cluster IPs are specified",
            ));
        }
        if SpecView(spec).ip_families().len() == 2 {
            errs.push(FieldError::invalid(
                policy_path.clone(),
                policy_value(),
                "must be 'RequireDualStack' or 'PreferDualStack' when multiple IP families are specified",
            ));
        }
    }
    let ips: Vec<String> = SpecView(spec).cluster_ips().to_vec();
    let mut families: Vec<String> = SpecView(spec).ip_families().to_vec();
    for (i, ip) in ips.iter().enumerate() {
        if ip == "None" {
            break;
        }
        let family = family_of_ip(ip);
        if i >= families.len() {
            if ranges.family_configured(family) {
                families.push(family.to_owned());
            } else {
                errs.push(FieldError::invalid(
                    FieldPath::new("spec").child("clusterIPs").index(i),
                    FieldValue::strings(spec.cluster_ips.as_ref()),
                    format!("{family} is not configured on this cluster"),
                ));
            }
        }
    }
    if !families.is_empty() {
        spec.ip_families = Some(families.clone());
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    let other = |family: &str| if family == "IPv4" { "IPv6" } else { "IPv4" };
    if headless_selectorless {
        if families.is_empty() {
            families.push(ranges.primary_family().to_owned());
        }
        if policy != "SingleStack" && families.len() == 1 {
            let second = other(&families[0]).to_owned();
            families.push(second);
        }
        spec.ip_families = Some(families);
        return Ok(());
    }
    if policy == "RequireDualStack" && !ranges.dual_stack() {
        errs.push(FieldError::invalid(
            policy_path,
            policy_value(),
            "this cluster is not configured for dual-stack services",
        ));
    }
    for (i, family) in families.iter().enumerate() {
        if !ranges.family_configured(family) {
            errs.push(FieldError::invalid(
                FieldPath::new("spec").child("ipFamilies").index(i),
                FieldValue::Named(family.clone()),
                "not configured on this cluster",
            ));
        }
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    if families.is_empty() {
        families.push(ranges.primary_family().to_owned());
    }
    if policy != "SingleStack" && families.len() == 1 && ranges.dual_stack() {
        let second = other(&families[0]).to_owned();
        families.push(second);
    }
    spec.ip_families = Some(families);
    Ok(())
}

/// Judges the user-requested ClusterIPs, NodePorts and health-check NodePort of a Service being
/// created, in upstream's order, against the ranges and the snapshot. Dynamic allocations are not
/// simulated (they need the allocator).
pub fn check_static_claims(
    svc: &Service,
    ranges: &ServiceRanges,
    taken: &AllocationSnapshot,
) -> Result<(), Rejection> {
    let spec_owned = spec_of(svc);
    let s = SpecView(&spec_owned);
    if s.type_() != "ExternalName" && !s.is_headless() {
        let mut printed: Vec<String> = s.cluster_ips().to_vec();
        while printed.len() < s.ip_families().len() {
            printed.push(String::new());
        }
        for ip in s.cluster_ips().iter().take(s.ip_families().len().max(1)) {
            if ip.is_empty() {
                continue;
            }
            let Some(parsed) = parse_ip_sloppy(ip) else {
                return Err(Rejection::Internal(format!(
                    "failed to parse service IP {}",
                    gocompat::quote::go_quote(ip)
                )));
            };
            let reason = if !ranges.contains_assignable(parsed) {
                Some("the provided network does not match the current range")
            } else if taken.cluster_ips.contains(&parsed) {
                Some("provided IP is already allocated")
            } else {
                None
            };
            if let Some(reason) = reason {
                return Err(Rejection::Invalid(vec![FieldError::invalid(
                    FieldPath::new("spec").child("clusterIPs"),
                    FieldValue::strings(Some(&printed)),
                    format!("failed to allocate IP {ip}: {reason}"),
                )]));
            }
        }
    }
    if !matches!(s.type_(), "NodePort" | "LoadBalancer") {
        return Ok(());
    }
    let auto_node_ports =
        s.type_() == "NodePort" || s.0.allocate_load_balancer_node_ports != Some(false);
    let mut claimed: BTreeSet<i32> = BTreeSet::new();
    let mut by_service_port: BTreeMap<i32, i32> = BTreeMap::new();
    let claim = |port: i32, claimed: &mut BTreeSet<i32>| -> Result<(), String> {
        if port < i32::from(ranges.node_ports.0) || port > i32::from(ranges.node_ports.1) {
            return Err(format!(
                "provided port is not in the valid range. The range of valid ports is {}",
                ranges.node_port_range()
            ));
        }
        if taken.node_ports.contains(&port) || !claimed.insert(port) {
            return Err("provided port is already allocated".to_owned());
        }
        Ok(())
    };
    let node_port_path = |i: usize| {
        FieldPath::new("spec")
            .child("ports")
            .index(i)
            .child("nodePort")
    };
    for (i, port) in s.ports().iter().enumerate() {
        let node_port = port.node_port.unwrap_or(0);
        if node_port == 0 && !auto_node_ports {
            continue;
        }
        match by_service_port.get(&port.port).copied() {
            None => {
                let requested = s
                    .ports()
                    .iter()
                    .find(|p| p.port == port.port && p.node_port.unwrap_or(0) != 0)
                    .and_then(|p| p.node_port);
                if let Some(requested) = requested {
                    claim(requested, &mut claimed).map_err(|e| {
                        Rejection::Invalid(vec![FieldError::invalid(
                            node_port_path(i),
                            FieldValue::Int(requested.into()),
                            e,
                        )])
                    })?;
                    by_service_port.insert(port.port, requested);
                }
            }
            Some(shared) if node_port != 0 && node_port != shared => {
                claim(node_port, &mut claimed).map_err(|e| {
                    Rejection::Invalid(vec![FieldError::invalid(
                        node_port_path(i),
                        FieldValue::Int(node_port.into()),
                        e,
                    )])
                })?;
            }
            Some(_) => {}
        }
    }
    if s.needs_health_check() && s.hcnp() != 0 {
        claim(s.hcnp(), &mut claimed).map_err(|e| {
            Rejection::Internal(format!(
                "failed to allocate requested HealthCheck NodePort {}: {e}",
                s.hcnp()
            ))
        })?;
    }
    Ok(())
}

/// The health-check NodePort the allocator would give a LoadBalancer with
/// `externalTrafficPolicy: Local` that asks for none (upstream allocates it before validation,
/// which then requires it): a free port of the range stands in for it, or the allocator's 500
/// when none is free. Services that hold one (allocated by the webhook) are left alone.
pub fn stand_in_health_check_node_port(
    svc: &mut Service,
    ranges: &ServiceRanges,
    taken: &AllocationSnapshot,
) -> Result<(), Rejection> {
    let spec = svc.spec.get_or_insert_with(Default::default);
    if !SpecView(spec).needs_health_check() || SpecView(spec).hcnp() != 0 {
        return Ok(());
    }
    let in_use: BTreeSet<i32> = SpecView(spec)
        .ports()
        .iter()
        .filter_map(|p| p.node_port)
        .collect();
    let (low, high) = (
        i32::from(ranges.node_ports.0),
        i32::from(ranges.node_ports.1),
    );
    let free = (low..=high).find(|p| !taken.node_ports.contains(p) && !in_use.contains(p));
    match free {
        Some(port) => {
            spec.health_check_node_port = Some(port);
            Ok(())
        }
        None => Err(Rejection::Internal(
            "failed to allocate a HealthCheck NodePort 0: range is full".to_owned(),
        )),
    }
}
