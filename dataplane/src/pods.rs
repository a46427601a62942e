//! What the data plane needs of Nodes and Pods, as plain data: a node's InternalIP and pod
//! CIDR; a pod's node, IP, and per container its ports and readiness probe.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net};
use k8s_openapi::api::core::v1::{Container, Node, Pod, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// `namespace/name`.
pub type PodKey = (String, String);

/// A node as the data plane builds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePlan {
    /// Node name.
    pub name: String,
    /// Its first IPv4 InternalIP.
    pub ip: Ipv4Addr,
    /// Its IPv4 pod CIDR.
    pub pod_cidr: Ipv4Net,
}

impl NodePlan {
    /// The plan of `node`, or why it cannot be built (no IPv4 InternalIP or pod CIDR yet).
    pub fn from_node(node: &Node) -> Result<Self, String> {
        let name = node.metadata.name.clone().unwrap_or_default();
        let ip = node
            .status
            .as_ref()
            .and_then(|s| s.addresses.as_ref())
            .into_iter()
            .flatten()
            .filter(|a| a.type_ == "InternalIP")
            .find_map(|a| a.address.parse::<Ipv4Addr>().ok())
            .ok_or_else(|| format!("node {name} has no IPv4 InternalIP"))?;
        let spec = node.spec.as_ref();
        let cidrs = spec
            .and_then(|s| s.pod_cidrs.clone())
            .filter(|c| !c.is_empty())
            .or_else(|| spec.and_then(|s| s.pod_cidr.clone()).map(|c| vec![c]))
            .unwrap_or_default();
        let pod_cidr = cidrs
            .iter()
            .find_map(|c| match c.parse::<IpNet>() {
                Ok(IpNet::V4(net)) => Some(net.trunc()),
                _ => None,
            })
            .ok_or_else(|| format!("node {name} has no IPv4 pod CIDR"))?;
        Ok(Self { name, ip, pod_cidr })
    }
}

/// A port's protocol (SCTP is not served).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Protocol {
    /// TCP: HTTP/1.1.
    Tcp,
    /// UDP: one answer per datagram.
    Udp,
}

/// What a readiness probe does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeAction {
    /// `httpGet`.
    HttpGet {
        /// Port number (named ports resolved).
        port: u16,
        /// Path, `/` when unset.
        path: String,
        /// `host`, when set (else the pod IP).
        host: Option<String>,
        /// `scheme: HTTPS` (the stand-in serves plain HTTP only).
        https: bool,
        /// `httpHeaders`.
        headers: Vec<(String, String)>,
    },
    /// `tcpSocket` (and `grpc`, probed as a connection).
    TcpSocket {
        /// Port number.
        port: u16,
    },
    /// `exec`: the command, run inside the pod's namespace.
    Exec {
        /// argv.
        command: Vec<String>,
    },
}

/// A readiness probe with kubelet's defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSpec {
    /// What it does.
    pub action: ProbeAction,
    /// `initialDelaySeconds` (0).
    pub initial_delay: Duration,
    /// `periodSeconds` (10).
    pub period: Duration,
    /// `timeoutSeconds` (1).
    pub timeout: Duration,
    /// `successThreshold` (1).
    pub success_threshold: u32,
    /// `failureThreshold` (3).
    pub failure_threshold: u32,
}

/// A container as the stand-in plays it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerPlan {
    /// Container name.
    pub name: String,
    /// The ports to serve: every containerPort, plus the port its probe targets.
    pub ports: Vec<(u16, Protocol)>,
    /// Its readiness probe.
    pub readiness: Option<ProbeSpec>,
}

impl ContainerPlan {
    /// The port and path of its httpGet readiness probe.
    pub fn http_probe(&self) -> Option<(u16, &str)> {
        match &self.readiness.as_ref()?.action {
            ProbeAction::HttpGet { port, path, .. } => Some((*port, path)),
            _ => None,
        }
    }

    /// The port of its tcpSocket readiness probe.
    pub fn tcp_probe_port(&self) -> Option<u16> {
        match &self.readiness.as_ref()?.action {
            ProbeAction::TcpSocket { port } => Some(*port),
            _ => None,
        }
    }
}

/// A pod as the data plane runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodPlan {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// metadata.uid.
    pub uid: String,
    /// spec.nodeName.
    pub node: String,
    /// Its IPv4 pod IP.
    pub ip: Ipv4Addr,
    /// Its containers, in spec order.
    pub containers: Vec<ContainerPlan>,
}

impl PodPlan {
    /// `(namespace, name)`.
    pub fn key(&self) -> PodKey {
        (self.namespace.clone(), self.name.clone())
    }

    /// Whether any container has a readiness probe.
    pub fn probed(&self) -> bool {
        self.containers.iter().any(|c| c.readiness.is_some())
    }

    /// The plan of `pod`, or `None` while it has no sandbox to run: not yet bound or given an
    /// IPv4 pod IP, finished, or on the host's network.
    pub fn from_pod(pod: &Pod) -> Option<Self> {
        let spec = pod.spec.as_ref()?;
        let status = pod.status.as_ref()?;
        if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed"))
            || spec.host_network == Some(true)
        {
            return None;
        }
        let node = spec.node_name.clone().filter(|n| !n.is_empty())?;
        let ip = status
            .pod_ips
            .iter()
            .flatten()
            .map(|p| p.ip.as_str())
            .chain(status.pod_ip.as_deref())
            .find_map(|ip| ip.parse::<Ipv4Addr>().ok())?;
        Some(Self {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone()?,
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            node,
            ip,
            containers: spec.containers.iter().map(container_plan).collect(),
        })
    }
}

fn container_plan(container: &Container) -> ContainerPlan {
    let named: BTreeMap<&str, u16> = container
        .ports
        .iter()
        .flatten()
        .filter_map(|p| {
            let port = u16::try_from(p.container_port).ok()?;
            Some((p.name.as_deref()?, port))
        })
        .collect();
    let mut ports: Vec<(u16, Protocol)> = container
        .ports
        .iter()
        .flatten()
        .filter_map(|p| {
            let protocol = match p.protocol.as_deref() {
                None | Some("TCP") => Protocol::Tcp,
                Some("UDP") => Protocol::Udp,
                Some(_) => return None,
            };
            Some((u16::try_from(p.container_port).ok()?, protocol))
        })
        .collect();
    let readiness = container
        .readiness_probe
        .as_ref()
        .and_then(|p| probe_spec(p, &named));
    // A probe on an undeclared port still reaches the stand-in.
    let probe_port = match readiness.as_ref().map(|r| &r.action) {
        Some(ProbeAction::HttpGet { port, .. } | ProbeAction::TcpSocket { port }) => Some(*port),
        _ => None,
    };
    if let Some(port) = probe_port
        && !ports.contains(&(port, Protocol::Tcp))
    {
        ports.push((port, Protocol::Tcp));
    }
    ports.sort_unstable();
    ports.dedup();
    ContainerPlan {
        name: container.name.clone(),
        ports,
        readiness,
    }
}

fn resolve_port(port: &IntOrString, named: &BTreeMap<&str, u16>) -> Option<u16> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).ok().filter(|p| *p > 0),
        IntOrString::String(s) => named.get(s.as_str()).copied().or_else(|| s.parse().ok()),
    }
}

fn seconds(value: Option<i32>, default: u64, min: u64) -> Duration {
    Duration::from_secs(
        value
            .and_then(|v| u64::try_from(v).ok())
            .unwrap_or(default)
            .max(min),
    )
}

/// The probe with kubelet's defaults (`k/k pkg/apis/core/v1/defaults.go` `SetDefaults_Probe`).
/// `None` for a probe whose port names no port of the container (kubelet fails such a probe).
fn probe_spec(probe: &Probe, named: &BTreeMap<&str, u16>) -> Option<ProbeSpec> {
    let action = if let Some(h) = &probe.http_get {
        ProbeAction::HttpGet {
            port: resolve_port(&h.port, named)?,
            path: h
                .path
                .clone()
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| "/".into()),
            host: h.host.clone().filter(|h| !h.is_empty()),
            https: h.scheme.as_deref() == Some("HTTPS"),
            headers: h
                .http_headers
                .iter()
                .flatten()
                .map(|h| (h.name.clone(), h.value.clone()))
                .collect(),
        }
    } else if let Some(t) = &probe.tcp_socket {
        ProbeAction::TcpSocket {
            port: resolve_port(&t.port, named)?,
        }
    } else if let Some(g) = &probe.grpc {
        ProbeAction::TcpSocket {
            port: u16::try_from(g.port).ok()?,
        }
    } else if let Some(e) = &probe.exec {
        ProbeAction::Exec {
            command: e.command.clone().unwrap_or_default(),
        }
    } else {
        return None;
    };
    Some(ProbeSpec {
        action,
        initial_delay: seconds(probe.initial_delay_seconds, 0, 0),
        period: seconds(probe.period_seconds, 10, 1),
        timeout: seconds(probe.timeout_seconds, 1, 1),
        success_threshold: probe
            .success_threshold
            .and_then(|v| u32::try_from(v).ok())
            .filter(|v| *v > 0)
            .unwrap_or(1),
        failure_threshold: probe
            .failure_threshold
            .and_then(|v| u32::try_from(v).ok())
            .filter(|v| *v > 0)
            .unwrap_or(3),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value, status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web-1", "namespace": "shop", "uid": "u1"},
            "spec": spec,
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn a_bound_pod_with_an_ip_has_a_plan_with_ports_and_probe() {
        let p = pod(
            json!({"nodeName": "node-1", "containers": [{
                "name": "web", "image": "kubia",
                "ports": [{"name": "http", "containerPort": 8080}, {"containerPort": 53, "protocol": "UDP"},
                          {"containerPort": 9, "protocol": "SCTP"}],
                "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 2}}]}),
            json!({"phase": "Running", "podIP": "10.244.1.5", "podIPs": [{"ip": "fd00::5"}, {"ip": "10.244.1.5"}]}),
        );
        let plan = PodPlan::from_pod(&p).unwrap();
        assert_eq!(plan.key(), ("shop".into(), "web-1".into()));
        assert_eq!(plan.ip, Ipv4Addr::new(10, 244, 1, 5));
        assert_eq!(plan.node, "node-1");
        let c = &plan.containers[0];
        assert_eq!(c.ports, [(53, Protocol::Udp), (8080, Protocol::Tcp)]);
        assert_eq!(c.http_probe(), Some((8080, "/healthz")));
        let r = c.readiness.as_ref().unwrap();
        assert_eq!(
            (
                r.period,
                r.timeout,
                r.success_threshold,
                r.failure_threshold,
                r.initial_delay
            ),
            (
                Duration::from_secs(2),
                Duration::from_secs(1),
                1,
                3,
                Duration::ZERO
            )
        );
        assert!(plan.probed());
    }

    #[test]
    fn a_probe_port_that_is_not_declared_is_served_too() {
        let p = pod(
            json!({"nodeName": "node-1", "containers": [{"name": "web",
                "readinessProbe": {"tcpSocket": {"port": 7000}}}]}),
            json!({"phase": "Running", "podIP": "10.244.1.5"}),
        );
        let plan = PodPlan::from_pod(&p).unwrap();
        assert_eq!(plan.containers[0].ports, [(7000, Protocol::Tcp)]);
        assert_eq!(plan.containers[0].tcp_probe_port(), Some(7000));
    }

    #[test]
    fn pods_without_a_sandbox_have_no_plan() {
        let running = json!({"phase": "Running", "podIP": "10.244.1.5"});
        let c = json!([{"name": "web"}]);
        assert!(PodPlan::from_pod(&pod(json!({"containers": c}), running.clone())).is_none());
        assert!(
            PodPlan::from_pod(&pod(
                json!({"nodeName": "n", "containers": c}),
                json!({"phase": "Pending"})
            ))
            .is_none()
        );
        assert!(
            PodPlan::from_pod(&pod(
                json!({"nodeName": "n", "containers": c}),
                json!({"phase": "Succeeded", "podIP": "10.244.1.5"})
            ))
            .is_none()
        );
        assert!(
            PodPlan::from_pod(&pod(
                json!({"nodeName": "n", "hostNetwork": true, "containers": c}),
                running
            ))
            .is_none()
        );
    }

    #[test]
    fn a_node_plan_needs_an_internal_ip_and_a_pod_cidr() {
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": "node-2"},
            "spec": {"podCIDR": "10.244.2.0/24", "podCIDRs": ["10.244.2.0/24", "fd00:10:244:2::/64"]},
            "status": {"addresses": [{"type": "Hostname", "address": "node-2"},
                                     {"type": "InternalIP", "address": "172.18.0.3"}]},
        }))
        .unwrap();
        assert_eq!(
            NodePlan::from_node(&node).unwrap(),
            NodePlan {
                name: "node-2".into(),
                ip: Ipv4Addr::new(172, 18, 0, 3),
                pod_cidr: "10.244.2.0/24".parse().unwrap(),
            }
        );
        let bare: Node = serde_json::from_value(json!({"metadata": {"name": "x"}})).unwrap();
        assert_eq!(
            NodePlan::from_node(&bare).unwrap_err(),
            "node x has no IPv4 InternalIP"
        );
    }
}
