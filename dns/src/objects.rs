//! What cluster DNS keeps of each API object: the few fields CoreDNS's kubernetes plugin reads
//! (`plugin/kubernetes/object/*.go`), as plain data. Everything else in the objects is dropped,
//! so an update that changes nothing here changes no answer (and does not bump the SOA serial).

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// A port of a Service or of an EndpointSlice: CoreDNS's `-1` sentinel stands for "no ports", so
/// that A/AAAA still answer while SRV gives nothing.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PortInfo {
    /// The port's name ("" when unnamed).
    pub name: String,
    /// `TCP`, `UDP`, `SCTP` as written ("" when unset on a slice port).
    pub protocol: String,
    /// The number; `-1` is the no-ports sentinel (also a slice port without a number).
    pub port: i32,
}

impl PortInfo {
    /// The sentinel of an object without ports.
    pub fn sentinel() -> Self {
        PortInfo {
            name: String::new(),
            protocol: String::new(),
            port: -1,
        }
    }
}

/// How a Service is published.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServiceKind {
    /// A virtual IP per family (ClusterIP, NodePort, LoadBalancer): `spec.clusterIPs` as written.
    ClusterIp(Vec<String>),
    /// `clusterIP: None`: the ready endpoints' addresses.
    Headless,
    /// A CNAME to `spec.externalName`.
    ExternalName(String),
}

/// A Service as cluster DNS sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceInfo {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// ClusterIP, headless or ExternalName.
    pub kind: ServiceKind,
    /// `spec.ports` (the sentinel when there are none).
    pub ports: Vec<PortInfo>,
}

impl ServiceInfo {
    /// What DNS keeps of `service`; `None` without a name or namespace.
    pub fn from_service(service: &Service) -> Option<ServiceInfo> {
        let namespace = service.metadata.namespace.clone()?;
        let name = service.metadata.name.clone()?;
        let spec = service.spec.clone().unwrap_or_default();
        // As object.ToService: clusterIPs, falling back to clusterIP; headless is decided by
        // the first entry alone.
        let cluster_ips = match spec.cluster_ips {
            Some(ips) if !ips.is_empty() => ips,
            _ => vec![spec.cluster_ip.unwrap_or_default()],
        };
        let kind = if spec.type_.as_deref() == Some("ExternalName") {
            ServiceKind::ExternalName(spec.external_name.unwrap_or_default())
        } else if cluster_ips.first().map(String::as_str) == Some("None") {
            ServiceKind::Headless
        } else {
            ServiceKind::ClusterIp(cluster_ips)
        };
        let ports = match spec.ports {
            Some(ports) if !ports.is_empty() => ports
                .into_iter()
                .map(|p| PortInfo {
                    name: p.name.unwrap_or_default(),
                    protocol: p.protocol.unwrap_or_default(),
                    port: p.port,
                })
                .collect(),
            _ => vec![PortInfo::sentinel()],
        };
        Some(ServiceInfo {
            namespace,
            name,
            kind,
            ports,
        })
    }
}

/// A ready address of an EndpointSlice endpoint.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct EndpointAddress {
    /// The address as the slice writes it (the dashed endpoint name is made from this text).
    pub ip: String,
    /// `hostname` of the endpoint ("" when unset).
    pub hostname: String,
    /// `targetRef.name`, kept only when shorter than 64 characters (a valid label).
    pub target_ref_name: String,
}

/// An EndpointSlice as cluster DNS sees it: only ready endpoints are kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SliceInfo {
    /// Namespace.
    pub namespace: String,
    /// The slice's own name.
    pub name: String,
    /// The `kubernetes.io/service-name` label ("" when missing: the slice feeds PTRs only).
    pub service: String,
    /// The slice's ports (the sentinel when there are none).
    pub ports: Vec<PortInfo>,
    /// Every address of every ready endpoint, in slice order.
    pub addresses: Vec<EndpointAddress>,
}

impl SliceInfo {
    /// What DNS keeps of `slice`; `None` without a name or namespace.
    pub fn from_slice(slice: &EndpointSlice) -> Option<SliceInfo> {
        let namespace = slice.metadata.namespace.clone()?;
        let name = slice.metadata.name.clone()?;
        let service = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SERVICE_NAME_LABEL))
            .cloned()
            .unwrap_or_default();
        let ports = match &slice.ports {
            Some(ports) if !ports.is_empty() => ports
                .iter()
                .map(|p| PortInfo {
                    name: p.name.clone().unwrap_or_default(),
                    protocol: p.protocol.clone().unwrap_or_default(),
                    port: p.port.unwrap_or(-1),
                })
                .collect(),
            _ => vec![PortInfo::sentinel()],
        };
        let mut addresses = Vec::new();
        for endpoint in &slice.endpoints {
            // Ready when true or unset (object/endpoint.go); serving and terminating are not
            // read: the EndpointSlice controller already folded publishNotReadyAddresses in.
            let ready = endpoint
                .conditions
                .as_ref()
                .and_then(|c| c.ready)
                .unwrap_or(true);
            if !ready {
                continue;
            }
            let target_ref_name = endpoint
                .target_ref
                .as_ref()
                .and_then(|r| r.name.clone())
                .filter(|n| n.len() < 64)
                .unwrap_or_default();
            for ip in &endpoint.addresses {
                addresses.push(EndpointAddress {
                    ip: ip.clone(),
                    hostname: endpoint.hostname.clone().unwrap_or_default(),
                    target_ref_name: target_ref_name.clone(),
                });
            }
        }
        Some(SliceInfo {
            namespace,
            name,
            service,
            ports,
            addresses,
        })
    }
}

/// A pod as `pods verified` sees it: its IPs while it may run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodInfo {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `status.podIPs` as written (CoreDNS 1.15 indexes every family, not only `podIP`).
    pub ips: Vec<String>,
}

impl PodInfo {
    /// What DNS keeps of `pod`; `None` without a name or namespace, or once it has ended
    /// (Succeeded, Failed, Unknown), as CoreDNS's pod list-watch selects those out.
    pub fn from_pod(pod: &Pod) -> Option<PodInfo> {
        let status = pod.status.as_ref();
        let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("");
        if matches!(phase, "Succeeded" | "Failed" | "Unknown") {
            return None;
        }
        Some(PodInfo {
            namespace: pod.metadata.namespace.clone()?,
            name: pod.metadata.name.clone()?,
            ips: status
                .and_then(|s| s.pod_ips.as_ref())
                .map(|ips| ips.iter().map(|ip| ip.ip.clone()).collect())
                .unwrap_or_default(),
        })
    }
}
