//! Services and EndpointSlices as the proxier sees them (upstream's `serviceport.go`,
//! `servicechangetracker.go` and `endpointslicecache.go`): one [`ServicePortInfo`] per port of a
//! proxied Service, and per ServicePort the endpoints sorted by the string `ip:port`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::names;
use crate::nft::IpFamily;

/// Services and EndpointSlices with this label belong to another proxy.
pub const LABEL_SERVICE_PROXY_NAME: &str = "service.kubernetes.io/service-proxy-name";
/// Headless Services' slices carry this label.
pub const LABEL_HEADLESS: &str = "service.kubernetes.io/headless";
/// The label naming a slice's Service.
pub const LABEL_SERVICE_NAME: &str = "kubernetes.io/service-name";
/// The label selector of kube-proxy's Service and EndpointSlice informers.
pub const PROXY_LABEL_SELECTOR: &str =
    "!service.kubernetes.io/service-proxy-name,!service.kubernetes.io/headless";
/// The session-affinity timeout the API server defaults (3 hours).
pub const DEFAULT_AFFINITY_TIMEOUT_SECONDS: u32 = 10800;

/// A Service's namespace and name.
pub type ServiceKey = (String, String);

/// A transport protocol, lower case in chain names and set keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Protocol {
    /// From the API's `TCP`/`UDP`/`SCTP` (absent means TCP, as the API server defaults).
    pub fn parse(api: Option<&str>) -> Option<Protocol> {
        match api.unwrap_or("TCP") {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// `tcp`, `udp` or `sctp`.
    pub fn lower(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// One port of a proxied Service, everything the rules need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePortInfo {
    /// Namespace of the Service.
    pub namespace: String,
    /// Name of the Service.
    pub name: String,
    /// The port's name (may be empty).
    pub port_name: String,
    /// The port's protocol.
    pub protocol: Protocol,
    /// The ClusterIP of the proxier's family.
    pub cluster_ip: IpAddr,
    /// The Service port.
    pub port: u16,
    /// The NodePort, 0 when none.
    pub node_port: u16,
    /// externalIPs of the family.
    pub external_ips: Vec<IpAddr>,
    /// LoadBalancer ingress IPs of the family in VIP mode.
    pub load_balancer_vips: Vec<IpAddr>,
    /// loadBalancerSourceRanges of the family (empty when one is a zero CIDR: allow all).
    pub load_balancer_source_ranges: Vec<IpNet>,
    /// ClientIP affinity's timeout; `None` without affinity.
    pub affinity_timeout_seconds: Option<u32>,
    /// The healthCheckNodePort, 0 when the Service needs none.
    pub health_check_node_port: u16,
    /// externalTrafficPolicy Local (only for externally accessible Services).
    pub external_policy_local: bool,
    /// internalTrafficPolicy Local.
    pub internal_policy_local: bool,
}

impl ServicePortInfo {
    /// `ns/name:port`, the element comment (upstream's `ServicePortName.String()`).
    pub fn name_string(&self) -> String {
        format!("{}/{}:{}", self.namespace, self.name, self.port_name)
    }

    /// Reachable other than through the ClusterIP.
    pub fn externally_accessible(&self) -> bool {
        self.node_port != 0 || !self.load_balancer_vips.is_empty() || !self.external_ips.is_empty()
    }

    /// Sends traffic to endpoints by the Cluster policy (short-circuiting needs them too).
    pub fn uses_cluster_endpoints(&self) -> bool {
        !self.internal_policy_local || self.externally_accessible()
    }

    /// Sends traffic to endpoints by the Local policy.
    pub fn uses_local_endpoints(&self) -> bool {
        self.internal_policy_local || (self.external_policy_local && self.externally_accessible())
    }

    /// The base of its chain names.
    pub fn chain_base(&self) -> String {
        names::service_port_base(
            &self.namespace,
            &self.name,
            self.protocol.lower(),
            &self.port_name,
        )
    }
}

/// One endpoint of a ServicePort.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `addresses[0]`.
    pub ip: IpAddr,
    /// The slice port's number.
    pub port: u16,
    /// On this node (`nodeName` equals the proxy's node name).
    pub is_local: bool,
    /// `ready` (nil means true).
    pub ready: bool,
    /// `serving` (nil means true).
    pub serving: bool,
    /// `terminating` (nil means false).
    pub terminating: bool,
    /// `hints.forZones`.
    pub zone_hints: BTreeSet<String>,
    /// `hints.forNodes`.
    pub node_hints: BTreeSet<String>,
}

impl Endpoint {
    /// `ip:port` (`[ip]:port` for IPv6): the sort key and the DNAT target.
    pub fn address(&self) -> String {
        SocketAddr::new(self.ip, self.port).to_string()
    }
}

/// A ServicePort's identity as endpoints are matched to it: port name and protocol.
pub type PortKey = (String, Protocol);

/// The node label that zone hints are matched against.
pub const LABEL_TOPOLOGY_ZONE: &str = "topology.kubernetes.io/zone";

/// The zone of `node` (its `topology.kubernetes.io/zone` label).
pub fn node_zone(node: &k8s_openapi::api::core::v1::Node) -> Option<String> {
    node.metadata
        .labels
        .as_ref()?
        .get(LABEL_TOPOLOGY_ZONE)
        .cloned()
}

/// Whether the proxy should ignore a Service or slice by its labels (the informers' selector).
fn selected_out(labels: Option<&BTreeMap<String, String>>) -> bool {
    labels
        .is_some_and(|l| l.contains_key(LABEL_SERVICE_PROXY_NAME) || l.contains_key(LABEL_HEADLESS))
}

/// The ServicePorts of `service` for `family`; empty when the Service is not proxied (no
/// ClusterIP or `None`, ExternalName, no ClusterIP of the family, or selected out by label).
pub fn service_ports(service: &Service, family: IpFamily) -> Vec<ServicePortInfo> {
    if selected_out(service.metadata.labels.as_ref()) {
        return Vec::new();
    }
    let Some(spec) = &service.spec else {
        return Vec::new();
    };
    let cluster_ip = spec.cluster_ip.as_deref().unwrap_or("");
    if cluster_ip.is_empty() || cluster_ip == "None" {
        return Vec::new();
    }
    let service_type = spec.type_.as_deref().unwrap_or("ClusterIP");
    if service_type == "ExternalName" {
        return Vec::new();
    }
    let Some(cluster_ip) = cluster_ip_of_family(service, family) else {
        return Vec::new();
    };
    let namespace = service.metadata.namespace.clone().unwrap_or_default();
    let name = service.metadata.name.clone().unwrap_or_default();

    let external_ips: Vec<IpAddr> = spec
        .external_ips
        .iter()
        .flatten()
        .filter_map(|ip| ip.trim().parse::<IpAddr>().ok())
        .filter(|ip| family.contains(ip))
        .collect();
    let mut source_ranges: Vec<IpNet> = spec
        .load_balancer_source_ranges
        .iter()
        .flatten()
        .filter_map(|r| r.trim().parse::<IpNet>().ok())
        .filter(|n| family.contains(&n.addr()))
        .collect();
    if source_ranges.iter().any(|n| n.prefix_len() == 0) {
        source_ranges.clear();
    }
    let load_balancer_vips: Vec<IpAddr> = service
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter(|ing| ing.ip_mode.as_deref().is_none_or(|m| m == "VIP"))
        .filter_map(|ing| ing.ip.as_deref()?.parse::<IpAddr>().ok())
        .filter(|ip| family.contains(ip))
        .collect();

    let externally_accessible_type = service_type == "LoadBalancer"
        || service_type == "NodePort"
        || (service_type == "ClusterIP" && !spec.external_ips.as_ref().is_none_or(Vec::is_empty));
    let external_policy_local =
        externally_accessible_type && spec.external_traffic_policy.as_deref() == Some("Local");
    let internal_policy_local = spec.internal_traffic_policy.as_deref() == Some("Local");
    let affinity_timeout_seconds =
        (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
            spec.session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds)
                .and_then(|t| u32::try_from(t).ok())
                .unwrap_or(DEFAULT_AFFINITY_TIMEOUT_SECONDS)
        });
    let health_check_node_port = if service_type == "LoadBalancer" && external_policy_local {
        spec.health_check_node_port
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(0)
    } else {
        0
    };

    spec.ports
        .iter()
        .flatten()
        .filter_map(|p| {
            Some(ServicePortInfo {
                namespace: namespace.clone(),
                name: name.clone(),
                port_name: p.name.clone().unwrap_or_default(),
                protocol: Protocol::parse(p.protocol.as_deref())?,
                cluster_ip,
                port: u16::try_from(p.port).ok()?,
                node_port: p.node_port.and_then(|n| u16::try_from(n).ok()).unwrap_or(0),
                external_ips: external_ips.clone(),
                load_balancer_vips: load_balancer_vips.clone(),
                load_balancer_source_ranges: source_ranges.clone(),
                affinity_timeout_seconds,
                health_check_node_port,
                external_policy_local,
                internal_policy_local,
            })
        })
        .collect()
}

/// The ClusterIP of `family` (upstream's `GetClusterIPByFamily`): by `ipFamilies` and
/// `clusterIPs` when set, else `clusterIP` if it is of the family.
fn cluster_ip_of_family(service: &Service, family: IpFamily) -> Option<IpAddr> {
    let spec = service.spec.as_ref()?;
    let families = spec.ip_families.as_deref().unwrap_or_default();
    if families.is_empty() {
        let ip: IpAddr = spec.cluster_ip.as_deref()?.parse().ok()?;
        return family.contains(&ip).then_some(ip);
    }
    let index = families.iter().position(|f| {
        f == if family == IpFamily::V4 {
            "IPv4"
        } else {
            "IPv6"
        }
    })?;
    let ip: IpAddr = spec.cluster_ips.as_ref()?.get(index)?.parse().ok()?;
    family.contains(&ip).then_some(ip)
}

/// The key of the Service a slice belongs to, by its `kubernetes.io/service-name` label.
pub fn slice_service_key(slice: &EndpointSlice) -> Option<ServiceKey> {
    let service = slice.metadata.labels.as_ref()?.get(LABEL_SERVICE_NAME)?;
    let namespace = slice.metadata.namespace.as_ref()?;
    if service.is_empty() || namespace.is_empty() {
        return None;
    }
    Some((namespace.clone(), service.clone()))
}

/// The endpoints of one Service from its slices, per port (name, protocol), each list sorted by
/// `ip:port` as a string and free of duplicates: of two copies of one `ip:port` the local one
/// wins (upstream), then the non-terminating one, then the one of the first slice by name.
pub fn service_endpoints<'a>(
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
    family: IpFamily,
    node_name: &str,
) -> BTreeMap<PortKey, Vec<Endpoint>> {
    let mut slices: Vec<&EndpointSlice> = slices
        .into_iter()
        .filter(|s| s.address_type == family.address_type())
        .filter(|s| !selected_out(s.metadata.labels.as_ref()))
        .collect();
    slices.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));

    let mut by_port: BTreeMap<PortKey, BTreeMap<String, Endpoint>> = BTreeMap::new();
    for slice in slices {
        for port in slice.ports.iter().flatten() {
            let Some(port_name) = &port.name else {
                continue;
            };
            let Some(number) = port
                .port
                .and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p != 0)
            else {
                continue;
            };
            let Some(protocol) = Protocol::parse(port.protocol.as_deref()) else {
                continue;
            };
            let set = by_port.entry((port_name.clone(), protocol)).or_default();
            for ep in &slice.endpoints {
                let Some(ip) = ep.addresses.first().and_then(|a| a.parse::<IpAddr>().ok()) else {
                    continue;
                };
                let conditions = ep.conditions.as_ref();
                let hints = ep.hints.as_ref();
                let endpoint = Endpoint {
                    ip,
                    port: number,
                    is_local: !node_name.is_empty() && ep.node_name.as_deref() == Some(node_name),
                    ready: conditions.and_then(|c| c.ready).unwrap_or(true),
                    serving: conditions.and_then(|c| c.serving).unwrap_or(true),
                    terminating: conditions.and_then(|c| c.terminating).unwrap_or(false),
                    zone_hints: hints
                        .and_then(|h| h.for_zones.as_ref())
                        .into_iter()
                        .flatten()
                        .map(|z| z.name.clone())
                        .collect(),
                    node_hints: hints
                        .and_then(|h| h.for_nodes.as_ref())
                        .into_iter()
                        .flatten()
                        .map(|n| n.name.clone())
                        .collect(),
                };
                let address = endpoint.address();
                let replace = match set.get(&address) {
                    None => true,
                    Some(old) => {
                        (endpoint.is_local && !old.is_local)
                            || (endpoint.is_local == old.is_local
                                && old.terminating
                                && !endpoint.terminating)
                    }
                };
                if replace {
                    set.insert(address, endpoint);
                }
            }
        }
    }
    // A BTreeMap keyed by the address string is already in upstream's string order.
    by_port
        .into_iter()
        .filter(|(_, set)| !set.is_empty())
        .map(|(k, set)| (k, set.into_values().collect()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(v: serde_json::Value) -> Service {
        serde_json::from_value(v).expect("a Service")
    }

    fn slice(v: serde_json::Value) -> EndpointSlice {
        serde_json::from_value(v).expect("an EndpointSlice")
    }

    #[test]
    fn services_that_are_not_proxied_have_no_ports() {
        let base = |spec: serde_json::Value| {
            service(json!({"metadata": {"namespace": "ns", "name": "s"}, "spec": spec}))
        };
        let port = json!([{"port": 80}]);
        assert!(
            service_ports(
                &base(json!({"clusterIP": "None", "ports": port})),
                IpFamily::V4
            )
            .is_empty()
        );
        assert!(service_ports(&base(json!({"ports": port})), IpFamily::V4).is_empty());
        assert!(
            service_ports(
                &base(json!({"type": "ExternalName", "clusterIP": "10.0.0.1", "ports": port})),
                IpFamily::V4
            )
            .is_empty()
        );
        assert!(
            service_ports(
                &base(json!({"clusterIP": "fd00::1", "ports": port})),
                IpFamily::V4
            )
            .is_empty()
        );
        let labelled = service(json!({
            "metadata": {"namespace": "ns", "name": "s", "labels": {LABEL_SERVICE_PROXY_NAME: "other"}},
            "spec": {"clusterIP": "10.0.0.1", "ports": port}
        }));
        assert!(service_ports(&labelled, IpFamily::V4).is_empty());
        let ok = service_ports(
            &base(json!({"clusterIP": "10.0.0.1", "ports": port})),
            IpFamily::V4,
        );
        assert_eq!(ok.len(), 1);
        assert_eq!(ok[0].protocol, Protocol::Tcp);
        assert_eq!(ok[0].name_string(), "ns/s:");
    }

    #[test]
    fn family_filters_trimmed_ranges_vip_mode_and_defaults() {
        let svc = service(json!({
            "metadata": {"namespace": "ns", "name": "s"},
            "spec": {
                "type": "LoadBalancer",
                "clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1", "fd00::1"],
                "ipFamilies": ["IPv4", "IPv6"],
                "externalIPs": ["192.168.99.1", "fd00::99"],
                "loadBalancerSourceRanges": [" 203.0.113.0/25", "2001:db8::/32"],
                "externalTrafficPolicy": "Local", "healthCheckNodePort": 30000,
                "sessionAffinity": "ClientIP",
                "ports": [{"name": "p", "port": 80, "nodePort": 3001}]
            },
            "status": {"loadBalancer": {"ingress": [
                {"ip": "1.2.3.4"}, {"ip": "5.6.7.8", "ipMode": "Proxy"}, {"ip": "fd00::5"}
            ]}}
        }));
        let v4 = &service_ports(&svc, IpFamily::V4)[0];
        assert_eq!(
            v4.external_ips,
            vec!["192.168.99.1".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(
            v4.load_balancer_vips,
            vec!["1.2.3.4".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(
            v4.load_balancer_source_ranges,
            vec!["203.0.113.0/25".parse::<IpNet>().unwrap()]
        );
        assert_eq!(
            v4.affinity_timeout_seconds,
            Some(DEFAULT_AFFINITY_TIMEOUT_SECONDS)
        );
        assert_eq!(v4.health_check_node_port, 30000);
        assert!(v4.external_policy_local);
        let v6 = &service_ports(&svc, IpFamily::V6)[0];
        assert_eq!(v6.cluster_ip, "fd00::1".parse::<IpAddr>().unwrap());
        assert_eq!(
            v6.load_balancer_vips,
            vec!["fd00::5".parse::<IpAddr>().unwrap()]
        );
    }

    #[test]
    fn endpoints_are_sorted_as_strings_deduplicated_and_defaulted() {
        let a = slice(json!({
            "metadata": {"namespace": "ns", "name": "s-a", "labels": {LABEL_SERVICE_NAME: "s"}},
            "addressType": "IPv4",
            "endpoints": [
                {"addresses": ["10.180.0.9"]},
                {"addresses": ["10.180.0.10"], "conditions": {"ready": false, "terminating": true}},
                {"addresses": ["10.180.0.11", "10.180.0.12"], "nodeName": "me"}
            ],
            "ports": [{"name": "p", "port": 80}, {"port": 81}, {"name": "zero", "port": 0}]
        }));
        let b = slice(json!({
            "metadata": {"namespace": "ns", "name": "s-b", "labels": {LABEL_SERVICE_NAME: "s"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.180.0.10"]}],
            "ports": [{"name": "p", "port": 80}]
        }));
        let v6 = slice(json!({
            "metadata": {"namespace": "ns", "name": "s-c", "labels": {LABEL_SERVICE_NAME: "s"}},
            "addressType": "IPv6",
            "endpoints": [{"addresses": ["fd00::1"]}],
            "ports": [{"name": "p", "port": 80}]
        }));
        assert_eq!(slice_service_key(&a), Some(("ns".into(), "s".into())));
        let eps = service_endpoints([&a, &b, &v6], IpFamily::V4, "me");
        assert_eq!(eps.len(), 1, "nil name and port 0 are ignored");
        let list = &eps[&("p".to_string(), Protocol::Tcp)];
        let addrs: Vec<String> = list.iter().map(Endpoint::address).collect();
        assert_eq!(
            addrs,
            vec!["10.180.0.10:80", "10.180.0.11:80", "10.180.0.9:80"]
        );
        assert!(
            !list[0].terminating && list[0].ready,
            "the non-terminating copy wins"
        );
        assert!(list[1].is_local);
        assert!(list[2].ready && list[2].serving && !list[2].terminating);
    }
}
