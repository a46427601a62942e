//! Which nodes the simulator runs and how it schedules, and the Node objects it registers.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde_json::{Value, json};

use super::NodeSimError;

/// Label naming a node's zone.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
/// Label naming a node's host.
pub const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";

const ZONES: [&str; 3] = ["zone-a", "zone-b", "zone-c"];

/// One simulated node.
#[derive(Debug, Clone, PartialEq)]
pub struct SimNode {
    /// Node name.
    pub name: String,
    /// Value of `topology.kubernetes.io/zone`.
    pub zone: String,
    /// Pod CIDRs, at most one per family; the first is `spec.podCIDR`.
    pub pod_cidrs: Vec<IpNet>,
    /// The node's InternalIP addresses, which pods report as hostIP(s).
    pub internal_ips: Vec<IpAddr>,
    /// Allocatable CPU, as a quantity.
    pub cpu: String,
    /// Allocatable memory, as a quantity.
    pub memory: String,
    /// Allocatable pods.
    pub max_pods: u32,
    /// Extra labels besides hostname, zone, os and arch.
    pub labels: BTreeMap<String, String>,
}

/// How unscheduled pods are spread over Ready nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scheduling {
    /// The node with the fewest pods (ties to the first in configuration order).
    #[default]
    LeastLoaded,
    /// Each node in turn.
    RoundRobin,
}

/// Everything the node simulator needs.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSimConfig {
    /// The nodes, registered at start.
    pub nodes: Vec<SimNode>,
    /// Spreading policy.
    pub scheduling: Scheduling,
    /// How long a running pod stays unready before its Ready condition turns True.
    pub ready_delay: Duration,
    /// Most API requests the simulator has in flight at once.
    pub max_in_flight: usize,
    /// Pods with a `readinessProbe` are probed by someone else (the playground's data plane),
    /// who reports each result through [`super::ReadinessReporter`]: such pods stay unready
    /// until a result says otherwise. Pods without a probe turn Ready as before.
    pub external_readiness_probes: bool,
    /// Record the Events a scheduler and kubelet record as a pod starts (`Scheduled`, then
    /// `Pulled`, `Created` and `Started` per container), which `kubectl describe pod` shows. Off
    /// by default: four writes per pod are a load the simulator's large clusters do without.
    pub pod_events: bool,
}

impl Default for NodeSimConfig {
    /// Three Ready nodes `node-1..3` in `zone-a..c` with pod CIDRs 10.244.{1,2,3}.0/24.
    fn default() -> Self {
        Self::with_node_count(3)
    }
}

/// Block `index` of length `prefix` counted from `base`, if it stays inside 10.0.0.0/8.
fn v4_block(base: Ipv4Addr, index: u64, prefix: u8) -> Option<Ipv4Net> {
    let size = 1u64 << (32 - u32::from(prefix));
    let addr = u64::from(u32::from(base)).checked_add(index.checked_mul(size)?)?;
    if addr + size > u64::from(u32::from(Ipv4Addr::new(11, 0, 0, 0))) {
        return None;
    }
    let addr = u32::try_from(addr).ok()?;
    Ipv4Net::new(Ipv4Addr::from(addr), prefix).ok()
}

impl NodeSimConfig {
    /// `count` Ready nodes `node-1..N`, zones `zone-a, zone-b, zone-c` in turn, node N with pod
    /// CIDR 10.244.N.0/24 and InternalIP 172.18.0.(N+1), 110 allocatable pods.
    pub fn with_node_count(count: usize) -> Self {
        let nodes = (1..=count as u64)
            .map(|i| SimNode {
                name: format!("node-{i}"),
                zone: ZONES[((i - 1) % 3) as usize].to_string(),
                pod_cidrs: v4_block(Ipv4Addr::new(10, 244, 0, 0), i, 24)
                    .map(IpNet::V4)
                    .into_iter()
                    .collect(),
                internal_ips: vec![IpAddr::V4(Ipv4Addr::from(
                    u32::from(Ipv4Addr::new(172, 18, 0, 1)).wrapping_add(i as u32),
                ))],
                cpu: "32".into(),
                memory: "256Gi".into(),
                max_pods: 110,
                labels: BTreeMap::new(),
            })
            .collect();
        Self {
            nodes,
            scheduling: Scheduling::default(),
            ready_delay: Duration::ZERO,
            max_in_flight: 64,
            external_readiness_probes: false,
            pod_events: false,
        }
    }

    /// Adds IPv6 to every node: pod CIDR fd00:10:244:N::/64 (N in hex) and InternalIP
    /// fc00:f853:ccd:e793::(N+1).
    pub fn dual_stack(mut self) -> Self {
        for (i, node) in self.nodes.iter_mut().enumerate() {
            let n = i as u128 + 1;
            if node.pod_cidrs.iter().any(|c| matches!(c, IpNet::V6(_))) {
                continue;
            }
            let base = u128::from(Ipv6Addr::new(0xfd00, 0x10, 0x244, 0, 0, 0, 0, 0));
            if let Ok(net) = Ipv6Net::new(Ipv6Addr::from(base + (n << 64)), 64) {
                node.pod_cidrs.push(IpNet::V6(net));
            }
            let host = u128::from(Ipv6Addr::new(0xfc00, 0xf853, 0xccd, 0xe793, 0, 0, 0, 0));
            node.internal_ips
                .push(IpAddr::V6(Ipv6Addr::from(host + n + 1)));
        }
        self
    }

    /// Gives node N the N-th IPv4 block of length `prefix` counted from 10.244.0.0 (so /24 keeps
    /// the defaults), for nodes that must hold more than 253 pods.
    pub fn with_ipv4_pod_cidr_prefix(mut self, prefix: u8) -> Result<Self, NodeSimError> {
        if !(8..=30).contains(&prefix) {
            return Err(NodeSimError::Config(format!(
                "IPv4 pod CIDR prefix /{prefix} is outside /8../30"
            )));
        }
        for (i, node) in self.nodes.iter_mut().enumerate() {
            let block = v4_block(Ipv4Addr::new(10, 244, 0, 0), i as u64 + 1, prefix)
                .ok_or_else(|| {
                    NodeSimError::Config(format!(
                        "{} nodes do not fit /{prefix} blocks between 10.244.0.0 and 10.255.255.255",
                        i + 1
                    ))
                })?;
            node.pod_cidrs.retain(|c| !matches!(c, IpNet::V4(_)));
            node.pod_cidrs.insert(0, IpNet::V4(block));
        }
        Ok(self)
    }

    /// Sets every node's allocatable pods.
    pub fn with_max_pods(mut self, max_pods: u32) -> Self {
        for node in &mut self.nodes {
            node.max_pods = max_pods;
        }
        self
    }

    /// Sets the spreading policy.
    pub fn with_scheduling(mut self, scheduling: Scheduling) -> Self {
        self.scheduling = scheduling;
        self
    }

    /// Sets the delay before running pods turn Ready.
    pub fn with_ready_delay(mut self, delay: Duration) -> Self {
        self.ready_delay = delay;
        self
    }

    /// Leaves the readiness of pods with a `readinessProbe` to an outside prober.
    pub fn with_external_readiness_probes(mut self, external: bool) -> Self {
        self.external_readiness_probes = external;
        self
    }

    /// Records the Events a scheduler and kubelet record as pods start.
    pub fn with_pod_events(mut self, record: bool) -> Self {
        self.pod_events = record;
        self
    }

    /// Checks names are unique and every node has a pod CIDR and an address.
    pub fn validate(&self) -> Result<(), NodeSimError> {
        let mut names = std::collections::BTreeSet::new();
        for node in &self.nodes {
            if !names.insert(node.name.as_str()) {
                return Err(NodeSimError::Config(format!(
                    "node {} is listed twice",
                    node.name
                )));
            }
            if node.pod_cidrs.is_empty() || node.internal_ips.is_empty() {
                return Err(NodeSimError::Config(format!(
                    "node {} needs a pod CIDR and an InternalIP",
                    node.name
                )));
            }
        }
        if self.max_in_flight == 0 {
            return Err(NodeSimError::Config(
                "max_in_flight must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

impl SimNode {
    /// The node's labels as the kubelet sets them, plus the configured extras.
    pub fn all_labels(&self) -> BTreeMap<String, String> {
        let mut labels = self.labels.clone();
        labels.insert("kubernetes.io/arch".into(), "amd64".into());
        labels.insert("kubernetes.io/os".into(), "linux".into());
        labels.insert(HOSTNAME_LABEL.into(), self.name.clone());
        labels.insert(ZONE_LABEL.into(), self.zone.clone());
        labels.insert("type".into(), "kwok".into());
        labels
    }

    /// The Node object registered at start (without status).
    pub fn node_object(&self) -> Value {
        let cidrs: Vec<String> = self.pod_cidrs.iter().map(ToString::to_string).collect();
        json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.name,
                "labels": self.all_labels(),
                "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
            },
            "spec": {
                "podCIDR": cidrs.first(),
                "podCIDRs": cidrs,
                "providerID": format!("kwok://{}", self.name),
            },
        })
    }

    /// The node's status: capacity, addresses and the kubelet's conditions, Ready since
    /// `ready_since` (RFC 3339) and heartbeat at `now`.
    pub fn node_status(&self, ready_since: &str, now: &str) -> Value {
        let resources = json!({
            "cpu": self.cpu,
            "memory": self.memory,
            "pods": self.max_pods.to_string(),
            "ephemeral-storage": "100Gi",
        });
        let condition = |type_: &str, status: &str, reason: &str, message: &str| {
            json!({"type": type_, "status": status, "reason": reason, "message": message,
                "lastHeartbeatTime": now, "lastTransitionTime": ready_since})
        };
        let mut addresses: Vec<Value> = self
            .internal_ips
            .iter()
            .map(|ip| json!({"type": "InternalIP", "address": ip.to_string()}))
            .collect();
        addresses.push(json!({"type": "Hostname", "address": self.name}));
        json!({
            "capacity": resources,
            "allocatable": resources,
            "conditions": [
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
            ],
            "addresses": addresses,
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": "", "systemUUID": "", "bootID": "",
                "kernelVersion": "", "osImage": "",
                "containerRuntimeVersion": "kwok-v0.7.0",
                "kubeletVersion": "v1.34.0", "kubeProxyVersion": "",
                "operatingSystem": "linux", "architecture": "amd64",
            },
            "phase": "Running",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_three_nodes_in_three_zones() {
        let c = NodeSimConfig::default();
        let summary: Vec<(String, String, String, String)> = c
            .nodes
            .iter()
            .map(|n| {
                (
                    n.name.clone(),
                    n.zone.clone(),
                    n.pod_cidrs[0].to_string(),
                    n.internal_ips[0].to_string(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("node-1", "zone-a", "10.244.1.0/24", "172.18.0.2"),
                ("node-2", "zone-b", "10.244.2.0/24", "172.18.0.3"),
                ("node-3", "zone-c", "10.244.3.0/24", "172.18.0.4"),
            ]
            .map(|(a, b, c, d)| (a.into(), b.into(), c.into(), d.into()))
        );
        assert!(c.validate().is_ok());
    }

    #[test]
    fn dual_stack_and_wider_cidrs() {
        let c = NodeSimConfig::with_node_count(2).dual_stack();
        assert_eq!(c.nodes[1].pod_cidrs[1].to_string(), "fd00:10:244:2::/64");
        assert_eq!(
            c.nodes[1].internal_ips[1].to_string(),
            "fc00:f853:ccd:e793::3"
        );
        let wide = c.with_ipv4_pod_cidr_prefix(20).unwrap();
        assert_eq!(wide.nodes[0].pod_cidrs[0].to_string(), "10.244.16.0/20");
        assert_eq!(wide.nodes[1].pod_cidrs[0].to_string(), "10.244.32.0/20");
        assert_eq!(wide.nodes[1].pod_cidrs[1].to_string(), "fd00:10:244:2::/64");
        assert!(
            NodeSimConfig::with_node_count(300)
                .with_ipv4_pod_cidr_prefix(16)
                .is_err()
        );
    }

    #[test]
    fn node_object_carries_labels_and_cidrs() {
        let c = NodeSimConfig::default().dual_stack();
        let n = c.nodes[0].node_object();
        assert_eq!(n["metadata"]["labels"][ZONE_LABEL], "zone-a");
        assert_eq!(n["metadata"]["labels"][HOSTNAME_LABEL], "node-1");
        assert_eq!(n["spec"]["podCIDR"], "10.244.1.0/24");
        assert_eq!(
            n["spec"]["podCIDRs"],
            json!(["10.244.1.0/24", "fd00:10:244:1::/64"])
        );
        let s = c.nodes[0].node_status("2024-01-01T00:00:00Z", "2024-01-01T00:00:01Z");
        assert_eq!(s["conditions"][3]["type"], "Ready");
        assert_eq!(s["conditions"][3]["status"], "True");
        assert_eq!(s["allocatable"]["pods"], "110");
    }
}
