//! What the Service controllers need to know about a Pod, cached in a small struct.
//!
//! These helpers are shared with the Endpoints controller: pod readiness, canonical pod IP
//! strings and named `targetPort` resolution behave the same in both.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use k8s_openapi::api::core::v1::{Container, Pod, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;

/// The string upstream produces when a pod IP does not parse (Go's `net.IP(nil).String()`).
pub const INVALID_IP_STRING: &str = "<nil>";

/// One container port, with the protocol defaulted to `TCP` as the API server does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerPortInfo {
    /// The port's `name` ("" when unnamed).
    pub name: String,
    /// The port's protocol (`TCP`, `UDP`, `SCTP`).
    pub protocol: String,
    /// The port's `containerPort`, unvalidated (upstream returns -1 as -1).
    pub container_port: i32,
}

/// The part of a Pod the Service controllers read; cheap to cache per pod.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PodInfo {
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.uid`.
    pub uid: String,
    /// `metadata.labels`, matched against Service selectors.
    pub labels: BTreeMap<String, String>,
    /// True if `status.podIP` or `status.podIPs` is non-empty (upstream's "has an IP" test).
    pub has_ip: bool,
    /// `status.podIPs` in order, each in canonical form (see [`canonical_ip`]).
    pub ips: Vec<String>,
    /// The pod's `Ready` condition is `True`.
    pub ready: bool,
    /// `lastTransitionTime` of the `Ready` condition (input to the trigger-time tracker).
    pub ready_transition_time: Option<Timestamp>,
    /// `metadata.deletionTimestamp` is set.
    pub terminating: bool,
    /// `status.phase` is `Failed` or `Succeeded`.
    pub terminal: bool,
    /// `spec.nodeName` ("" when unscheduled).
    pub node_name: String,
    /// `spec.hostname`.
    pub hostname: String,
    /// `spec.subdomain`.
    pub subdomain: String,
    /// Ports of the app containers in order, then of sidecar init containers (restartPolicy
    /// `Always`); the search order of [`find_port`].
    pub container_ports: Vec<ContainerPortInfo>,
}

/// No container port matched a named `targetPort` (upstream's error text).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("no suitable port for manifest: {pod_uid}")]
pub struct PortNotFound {
    /// UID of the pod that was searched.
    pub pod_uid: String,
}

impl PodInfo {
    /// Extracts what the planners need from a full Pod.
    pub fn from_pod(pod: &Pod) -> Self {
        let metadata = &pod.metadata;
        let spec = pod.spec.as_ref();
        let status = pod.status.as_ref();
        let ready_condition = status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"));
        let pod_ips: Vec<String> = status
            .and_then(|s| s.pod_ips.as_ref())
            .map(|ips| ips.iter().map(|ip| canonical_ip(&ip.ip)).collect())
            .unwrap_or_default();
        let has_pod_ip = status
            .and_then(|s| s.pod_ip.as_deref())
            .is_some_and(|ip| !ip.is_empty());
        let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("");
        PodInfo {
            namespace: metadata.namespace.clone().unwrap_or_default(),
            name: metadata.name.clone().unwrap_or_default(),
            uid: metadata.uid.clone().unwrap_or_default(),
            labels: metadata.labels.clone().unwrap_or_default(),
            has_ip: has_pod_ip || !pod_ips.is_empty(),
            ips: pod_ips,
            ready: ready_condition.is_some_and(|c| c.status == "True"),
            ready_transition_time: ready_condition
                .and_then(|c| c.last_transition_time.as_ref())
                .map(|t| t.0),
            terminating: metadata.deletion_timestamp.is_some(),
            terminal: phase == "Failed" || phase == "Succeeded",
            node_name: spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
            hostname: spec.and_then(|s| s.hostname.clone()).unwrap_or_default(),
            subdomain: spec.and_then(|s| s.subdomain.clone()).unwrap_or_default(),
            container_ports: spec.map(searchable_ports).unwrap_or_default(),
        }
    }

    /// Whether the pod can be an endpoint at all: not terminal and has an IP. Terminating
    /// pods pass when `include_terminating` (EndpointSlice) and fail otherwise (Endpoints).
    pub fn should_be_in_endpoints(&self, include_terminating: bool) -> bool {
        !self.terminal && self.has_ip && (include_terminating || !self.terminating)
    }

    /// Whether the endpoint gets `hostname`: set, and `subdomain` names the Service in the
    /// pod's namespace.
    pub fn should_set_hostname(&self, service_name: &str, service_namespace: &str) -> bool {
        !self.hostname.is_empty()
            && self.subdomain == service_name
            && self.namespace == service_namespace
    }

    /// Resolves a Service port's `targetPort` for this pod (see [`find_port`]).
    pub fn find_port(&self, service_port: &ServicePort) -> Result<i32, PortNotFound> {
        find_port(&self.container_ports, &self.uid, service_port)
    }

    /// True if every key/value of `selector` is among the pod's labels (`{}` matches all).
    pub fn matches_selector(&self, selector: &BTreeMap<String, String>) -> bool {
        selector
            .iter()
            .all(|(k, v)| self.labels.get(k).is_some_and(|have| have == v))
    }
}

fn searchable_ports(spec: &k8s_openapi::api::core::v1::PodSpec) -> Vec<ContainerPortInfo> {
    let app = spec.containers.iter();
    let sidecars = spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| c.restart_policy.as_deref() == Some("Always"));
    app.chain(sidecars).flat_map(container_ports).collect()
}

fn container_ports(container: &Container) -> impl Iterator<Item = ContainerPortInfo> + '_ {
    container.ports.iter().flatten().map(|p| ContainerPortInfo {
        name: p.name.clone().unwrap_or_default(),
        protocol: p.protocol.clone().unwrap_or_else(|| "TCP".to_owned()),
        container_port: p.container_port,
    })
}

/// The protocol of a Service port, defaulted to `TCP` as the API server does.
pub fn service_port_protocol(service_port: &ServicePort) -> &str {
    service_port.protocol.as_deref().unwrap_or("TCP")
}

/// Resolves a Service port's `targetPort` against a pod's ports, as upstream's `FindPort`:
/// a number is returned as is; a name is looked up (same name AND protocol) in app
/// containers first, then sidecar init containers; first match wins. An unset
/// `targetPort` means the Service `port` (API-server defaulting).
pub fn find_port(
    ports: &[ContainerPortInfo],
    pod_uid: &str,
    service_port: &ServicePort,
) -> Result<i32, PortNotFound> {
    match &service_port.target_port {
        None => Ok(service_port.port),
        Some(IntOrString::Int(n)) => Ok(*n),
        Some(IntOrString::String(name)) => {
            let protocol = service_port_protocol(service_port);
            ports
                .iter()
                .find(|p| p.name == *name && p.protocol == protocol)
                .map(|p| p.container_port)
                .ok_or_else(|| PortNotFound {
                    pod_uid: pod_uid.to_owned(),
                })
        }
    }
}

/// Parses an IP as Go's `ParseIPSloppy`: IPv4 octets may carry leading zeros (read as
/// decimal), and IPv4-mapped IPv6 addresses are IPv4.
pub fn parse_ip_sloppy(s: &str) -> Option<IpAddr> {
    if s.contains(':') {
        let v6: Ipv6Addr = s.parse().ok()?;
        return Some(match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        });
    }
    let mut octets = [0u8; 4];
    let mut parts = s.split('.');
    for octet in &mut octets {
        let part = parts.next()?;
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let trimmed = part.trim_start_matches('0');
        if trimmed.len() > 3 {
            return None;
        }
        let value: u16 = if trimmed.is_empty() {
            0
        } else {
            trimmed.parse().ok()?
        };
        *octet = u8::try_from(value).ok()?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(IpAddr::V4(Ipv4Addr::from(octets)))
}

/// The canonical string of a pod IP (IPv6 compressed, IPv4 without leading zeros); a
/// string that does not parse becomes `<nil>`, as upstream.
pub fn canonical_ip(s: &str) -> String {
    match parse_ip_sloppy(s) {
        Some(ip) => ip.to_string(),
        None => INVALID_IP_STRING.to_owned(),
    }
}

/// Whether a canonical IP string (from [`canonical_ip`]) is IPv6; `<nil>` counts as IPv4
/// as it does upstream.
pub fn is_ipv6_canonical(canonical: &str) -> bool {
    // A byte scan: pod IPs are short, and `contains` goes through memchr.
    canonical.bytes().any(|b| b == b':')
}
