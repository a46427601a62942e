//! The namespaces themselves: the fabric, one per node, one per pod with its stand-in servers
//! and readiness prober; made, looked up and torn down. [`crate::DataPlane`] drives this from
//! the API; tests may drive it directly.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use ipnet::Ipv4Net;
use testenv::nodesim::ReadinessReporter;
use tokio::task::JoinHandle;

use crate::DataPlaneError;
use crate::names::{self, Names};
use crate::netns;
use crate::plan::peer_routes;
use crate::pods::{NodePlan, PodKey, PodPlan};
use crate::probe::run_pod_probes;
use crate::standin::{ContainerLogBook, ReadinessSwitch, StandIn};
use crate::topology;

/// How the data plane lays out its network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataPlaneConfig {
    /// The node network on the fabric bridge; its first address is the bridge's (every node's
    /// default gateway). Nodes' InternalIPs must lie in it. testenv's nodes use 172.18.0.0/16.
    pub node_network: Ipv4Net,
    /// The cluster domain of pods' DNS search path.
    pub cluster_domain: String,
    /// The nameservers of pods' resolv.conf (the cluster DNS Service's ClusterIP).
    pub nameservers: Vec<IpAddr>,
}

impl Default for DataPlaneConfig {
    fn default() -> Self {
        Self {
            node_network: Ipv4Net::new(Ipv4Addr::new(172, 18, 0, 0), 16).unwrap_or_default(),
            cluster_domain: "cluster.local".into(),
            nameservers: vec![IpAddr::V4(Ipv4Addr::new(10, 96, 0, 10))],
        }
    }
}

impl DataPlaneConfig {
    /// The fabric's gateway: the first address of the node network.
    pub fn gateway(&self) -> Ipv4Addr {
        self.node_network
            .hosts()
            .next()
            .unwrap_or(self.node_network.network())
    }
}

struct NodeSandbox {
    plan: NodePlan,
    ns: String,
}

struct PodSandbox {
    plan: PodPlan,
    ns: String,
    node_ns: String,
    /// `None` while the pod is being torn down.
    standin: Option<StandIn>,
    prober: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct State {
    nodes: BTreeMap<String, NodeSandbox>,
    pods: BTreeMap<PodKey, PodSandbox>,
    next_port: u64,
    next_veth: u64,
}

/// Every namespace of one data plane.
pub struct Sandboxes {
    names: Names,
    config: DataPlaneConfig,
    readiness: Option<ReadinessReporter>,
    state: Mutex<State>,
}

/// Data planes started by this process so far (the `<seq>` of their prefix).
static SEQUENCE: AtomicU32 = AtomicU32::new(0);

fn process_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Removes the namespaces and /etc/netns directories that data planes of processes that no
/// longer run left behind; returns their names.
pub fn remove_leftovers() -> Result<Vec<String>, DataPlaneError> {
    let io = |what: &str, e: std::io::Error| DataPlaneError::Io(format!("{what}: {e}"));
    let existing = netns::list_netns().map_err(|e| io("listing /run/netns", e))?;
    let mut gone = names::leftovers(existing.iter().map(String::as_str), process_alive);
    for name in &gone {
        netns::delete_netns(name).map_err(|e| io(&format!("removing leftover {name}"), e))?;
    }
    let dirs = netns::list_dir(std::path::Path::new(netns::NETNS_ETC_DIR))
        .map_err(|e| io("listing /etc/netns", e))?;
    for name in names::leftovers(dirs.iter().map(String::as_str), process_alive) {
        netns::remove_etc_dir(&name).map_err(|e| io(&format!("removing /etc/netns/{name}"), e))?;
        if !gone.contains(&name) {
            gone.push(name);
        }
    }
    Ok(gone)
}

impl Sandboxes {
    /// Removes leftovers of crashed runs, then makes the fabric namespace with its bridge.
    /// `readiness`, when given, receives the results of pods' readiness probes (without it no
    /// probe runs).
    pub async fn start(
        config: DataPlaneConfig,
        readiness: Option<ReadinessReporter>,
    ) -> Result<Self, DataPlaneError> {
        let removed = remove_leftovers()?;
        if !removed.is_empty() {
            tracing::info!(
                count = removed.len(),
                "removed namespaces left by an earlier data plane"
            );
        }
        let names = Names::new(std::process::id(), SEQUENCE.fetch_add(1, Ordering::Relaxed));
        let this = Self {
            names,
            config,
            readiness,
            state: Mutex::new(State::default()),
        };
        let fabric = this.names.fabric();
        let made = async {
            netns::create_netns(&fabric)?;
            topology::make_fabric(
                &fabric,
                this.config.gateway(),
                this.config.node_network.prefix_len(),
            )
            .await
        }
        .await;
        if let Err(e) = made {
            let _ = netns::delete_netns(&fabric);
            return Err(DataPlaneError::Io(format!(
                "making the fabric namespace {fabric}: {e}"
            )));
        }
        Ok(this)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The names this data plane uses.
    pub fn names(&self) -> &Names {
        &self.names
    }

    /// The fabric namespace (the bridge every node is plugged into: the "outside" of nodes).
    pub fn fabric_namespace(&self) -> String {
        self.names.fabric()
    }

    /// The namespace of node `node`, once made.
    pub fn node_namespace(&self, node: &str) -> Option<String> {
        self.lock().nodes.get(node).map(|n| n.ns.clone())
    }

    /// The namespace of pod `namespace/name` and its uid, once its stand-in runs.
    pub fn pod_namespace(&self, namespace: &str, name: &str) -> Option<(String, String)> {
        self.lock()
            .pods
            .get(&(namespace.to_string(), name.to_string()))
            .map(|p| (p.ns.clone(), p.plan.uid.clone()))
    }

    /// The nodes and pods that exist now.
    pub fn actual(&self) -> (BTreeMap<String, NodePlan>, BTreeMap<PodKey, PodPlan>) {
        let state = self.lock();
        (
            state
                .nodes
                .iter()
                .map(|(k, n)| (k.clone(), n.plan.clone()))
                .collect(),
            state
                .pods
                .iter()
                .map(|(k, p)| (k.clone(), p.plan.clone()))
                .collect(),
        )
    }

    /// The pod's container `container`: its uid, pod namespace, log; `None` without a running
    /// sandbox, `Some(.., None)` when the pod has no such container.
    pub(crate) fn container(
        &self,
        namespace: &str,
        name: &str,
        container: &str,
    ) -> Option<(String, String, Option<Arc<ContainerLogBook>>)> {
        let state = self.lock();
        let pod = state.pods.get(&(namespace.to_string(), name.to_string()))?;
        let standin = pod.standin.as_ref()?;
        Some((pod.plan.uid.clone(), pod.ns.clone(), standin.log(container)))
    }

    /// Makes node `node`'s namespace, plugged into the fabric, with routes to and from every
    /// other node's pod CIDR.
    pub async fn add_node(&self, node: &NodePlan) -> Result<(), DataPlaneError> {
        if !self.config.node_network.contains(&node.ip) {
            return Err(DataPlaneError::Io(format!(
                "node {} has InternalIP {}, outside the data plane's node network {}",
                node.name, node.ip, self.config.node_network
            )));
        }
        let ns = self.names.node(&node.name);
        let port = {
            let mut state = self.lock();
            state.next_port += 1;
            names::fabric_port(state.next_port)
        };
        let made = async {
            netns::create_netns(&ns)?;
            topology::make_node(
                &ns,
                &self.names.fabric(),
                &port,
                node.ip,
                self.config.node_network.prefix_len(),
                self.config.gateway(),
            )
            .await?;
            let mut all = self.actual().0;
            all.insert(node.name.clone(), node.clone());
            for (cidr, via) in peer_routes(&all, &node.name) {
                topology::route_via(&ns, cidr, via).await?;
            }
            for other in all.values().filter(|n| n.name != node.name) {
                topology::route_via(&self.names.node(&other.name), node.pod_cidr, node.ip).await?;
            }
            Ok::<_, std::io::Error>(())
        }
        .await;
        if let Err(e) = made {
            let _ = netns::delete_netns(&ns);
            return Err(DataPlaneError::Io(format!(
                "making node {}: {e}",
                node.name
            )));
        }
        self.lock().nodes.insert(
            node.name.clone(),
            NodeSandbox {
                plan: node.clone(),
                ns,
            },
        );
        Ok(())
    }

    /// Removes node `node`'s namespace and the other nodes' routes to its pods.
    pub async fn remove_node(&self, node: &str) -> Result<(), DataPlaneError> {
        let Some(gone) = self.lock().nodes.remove(node) else {
            return Ok(());
        };
        let others: Vec<String> = self.lock().nodes.values().map(|n| n.ns.clone()).collect();
        for other in others {
            if let Err(e) = topology::remove_route(&other, gone.plan.pod_cidr, gone.plan.ip).await {
                tracing::warn!(node, error = %e, "cannot remove a route to a removed node");
            }
        }
        netns::delete_netns(&gone.ns)
            .map_err(|e| DataPlaneError::Io(format!("removing node {node}: {e}")))
    }

    /// Makes pod `pod`'s namespace on its node, writes its resolv.conf, starts its stand-in
    /// servers and (with a readiness reporter) its readiness prober.
    pub async fn add_pod(&self, pod: &PodPlan) -> Result<(), DataPlaneError> {
        let key = format!("{}/{}", pod.namespace, pod.name);
        let Some(node_ns) = self.node_namespace(&pod.node) else {
            return Err(DataPlaneError::Io(format!(
                "pod {key}: node {} has no namespace",
                pod.node
            )));
        };
        let ns = self.names.pod(&pod.namespace, &pod.name);
        let veth = {
            let mut state = self.lock();
            state.next_veth += 1;
            names::pod_veth(state.next_veth)
        };
        let resolv = names::resolv_conf(
            &pod.namespace,
            &self.config.cluster_domain,
            &self.config.nameservers,
        );
        let switch = Arc::new(ReadinessSwitch::new(false));
        let made = async {
            netns::create_netns(&ns)?;
            netns::write_resolv_conf(&ns, &resolv)?;
            topology::make_pod(&ns, &node_ns, &veth, pod.ip).await?;
            StandIn::start(&ns, pod, switch).await
        }
        .await;
        let standin = match made {
            Ok(s) => s,
            Err(e) => {
                let _ = netns::delete_netns(&ns);
                let _ = netns::remove_etc_dir(&ns);
                return Err(DataPlaneError::Io(format!("making pod {key}: {e}")));
            }
        };
        let prober = match &self.readiness {
            Some(reporter) if pod.probed() => Some(tokio::spawn(run_pod_probes(
                pod.clone(),
                node_ns.clone(),
                ns.clone(),
                reporter.clone(),
            ))),
            _ => None,
        };
        self.lock().pods.insert(
            pod.key(),
            PodSandbox {
                plan: pod.clone(),
                ns,
                node_ns,
                standin: Some(standin),
                prober,
            },
        );
        Ok(())
    }

    /// Stops pod `key`'s stand-in and prober and removes its namespace and resolv.conf. The pod
    /// keeps its entry (its namespace is still found) until the namespace is gone; exec and logs
    /// find it not running from the start.
    pub async fn remove_pod(&self, key: &PodKey) -> Result<(), DataPlaneError> {
        let (ns, node_ns, standin, prober) = {
            let mut state = self.lock();
            let Some(pod) = state.pods.get_mut(key) else {
                return Ok(());
            };
            (
                pod.ns.clone(),
                pod.node_ns.clone(),
                pod.standin.take(),
                pod.prober.take(),
            )
        };
        if let Some(prober) = prober {
            prober.abort();
            let _ = prober.await;
        }
        // Closing the stand-in's sockets first lets the namespace (and its veth) go at once.
        if let Some(standin) = standin {
            standin.stop().await;
        }
        tracing::debug!(pod = %format!("{}/{}", key.0, key.1), %node_ns, "removing pod sandbox");
        // On failure the entry stays, so the removal is tried again.
        netns::delete_netns(&ns)
            .and(netns::remove_etc_dir(&ns))
            .map_err(|e| DataPlaneError::Io(format!("removing pod {}/{}: {e}", key.0, key.1)))?;
        self.lock().pods.remove(key);
        Ok(())
    }

    /// Removes every namespace at once, without waiting for servers and probers to end (their
    /// tasks are aborted; the namespaces go when their last socket closes). For `Drop`.
    pub fn remove_all_now(&self) {
        let (pods, nodes) = {
            let mut state = self.lock();
            (
                std::mem::take(&mut state.pods),
                std::mem::take(&mut state.nodes),
            )
        };
        for pod in pods.into_values() {
            if let Some(prober) = pod.prober {
                prober.abort();
            }
            drop(pod.standin);
            let _ = netns::delete_netns(&pod.ns);
            let _ = netns::remove_etc_dir(&pod.ns);
        }
        for node in nodes.into_values() {
            let _ = netns::delete_netns(&node.ns);
        }
        let _ = netns::delete_netns(&self.names.fabric());
    }

    /// Removes every pod, node and the fabric. Errors are logged; the first is returned.
    pub async fn shutdown(&self) -> Result<(), DataPlaneError> {
        let mut first = None;
        let pods: Vec<PodKey> = self.lock().pods.keys().cloned().collect();
        for key in pods {
            if let Err(e) = self.remove_pod(&key).await {
                tracing::warn!(error = %e, "data plane shutdown");
                first.get_or_insert(e);
            }
        }
        let nodes: Vec<NodeSandbox> = std::mem::take(&mut self.lock().nodes)
            .into_values()
            .collect();
        for node in nodes {
            if let Err(e) = netns::delete_netns(&node.ns) {
                tracing::warn!(error = %e, "data plane shutdown");
                first.get_or_insert(DataPlaneError::Io(e.to_string()));
            }
        }
        if let Err(e) = netns::delete_netns(&self.names.fabric()) {
            first.get_or_insert(DataPlaneError::Io(e.to_string()));
        }
        first.map_or(Ok(()), Err)
    }
}

impl Drop for Sandboxes {
    fn drop(&mut self) {
        self.remove_all_now();
    }
}
