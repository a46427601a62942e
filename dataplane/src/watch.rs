//! The data plane's shell: Nodes and Pods watched (kube-runtime's watcher through
//! `kuberun::watch_events`), the namespaces kept in step with them by [`crate::plan::plan`].

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::Api;
use kube::runtime::watcher::{self, Event};
use kuberun::{Shutdown, ShutdownTrigger};
use testenv::nodesim::ReadinessReporter;
use testenv::runtime::ContainerRuntime;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::DataPlaneError;
use crate::plan::{Step, plan};
use crate::pods::{NodePlan, PodKey, PodPlan};
use crate::runtime::{DataPlaneRuntime, netns_exec_command};
use crate::sandbox::{DataPlaneConfig, Sandboxes};

/// How often steps that failed are tried again.
const RETRY_EVERY: Duration = Duration::from_secs(2);

/// Watch events, boxed: a Pod event is kilobytes.
enum Input {
    Node(Box<Event<Node>>),
    Pod(Box<Event<Pod>>),
}

/// What the API says should run: nodes with an address and pod CIDR, pods with a node and IP.
#[derive(Debug, Default)]
pub struct Desired {
    /// Nodes.
    pub nodes: BTreeMap<String, NodePlan>,
    /// Pods.
    pub pods: BTreeMap<PodKey, PodPlan>,
    listing_nodes: Option<BTreeSet<String>>,
    listing_pods: Option<BTreeSet<PodKey>>,
}

fn pod_key(pod: &Pod) -> PodKey {
    (
        pod.metadata.namespace.clone().unwrap_or_default(),
        pod.metadata.name.clone().unwrap_or_default(),
    )
}

impl Desired {
    /// Takes a Node event. A re-list replaces the nodes as a whole.
    pub fn node_event(&mut self, event: Event<Node>) {
        match event {
            Event::Init => self.listing_nodes = Some(BTreeSet::new()),
            Event::InitApply(node) | Event::Apply(node) => {
                let name = node.metadata.name.clone().unwrap_or_default();
                if let Some(seen) = self.listing_nodes.as_mut() {
                    seen.insert(name.clone());
                }
                match NodePlan::from_node(&node) {
                    Ok(plan) => {
                        self.nodes.insert(name, plan);
                    }
                    Err(why) => {
                        tracing::debug!(node = %name, %why, "node not (yet) usable by the data plane");
                        self.nodes.remove(&name);
                    }
                }
            }
            Event::Delete(node) => {
                self.nodes
                    .remove(node.metadata.name.as_deref().unwrap_or_default());
            }
            Event::InitDone => {
                let seen = self.listing_nodes.take().unwrap_or_default();
                self.nodes.retain(|name, _| seen.contains(name));
            }
        }
    }

    /// Takes a Pod event. A re-list replaces the pods as a whole.
    pub fn pod_event(&mut self, event: Event<Pod>) {
        match event {
            Event::Init => self.listing_pods = Some(BTreeSet::new()),
            Event::InitApply(pod) | Event::Apply(pod) => {
                let key = pod_key(&pod);
                if let Some(seen) = self.listing_pods.as_mut() {
                    seen.insert(key.clone());
                }
                match PodPlan::from_pod(&pod) {
                    Some(plan) => {
                        self.pods.insert(key, plan);
                    }
                    None => {
                        self.pods.remove(&key);
                    }
                }
            }
            Event::Delete(pod) => {
                self.pods.remove(&pod_key(&pod));
            }
            Event::InitDone => {
                let seen = self.listing_pods.take().unwrap_or_default();
                self.pods.retain(|key, _| seen.contains(key));
            }
        }
    }
}

/// The playground's data plane: every Node a network namespace plugged into a fabric bridge,
/// every running Pod a network namespace routed from its node's, running a stand-in server on
/// its ports and (given a readiness reporter) its readiness probes.
///
/// Dropped without [`DataPlane::shutdown`] (a panicking test), it still removes its namespaces
/// at once, without waiting for its servers to stop.
pub struct DataPlane {
    sandboxes: Arc<Sandboxes>,
    trigger: ShutdownTrigger,
    task: Option<JoinHandle<()>>,
}

impl DataPlane {
    /// Removes leftovers of crashed runs, makes the fabric, and keeps node and pod namespaces in
    /// step with the API behind `client` until [`DataPlane::shutdown`]. Pods' readiness probe
    /// results go to `readiness` (the node simulator, configured with
    /// `external_readiness_probes`); without it no probe runs.
    pub async fn start(
        client: kube::Client,
        config: DataPlaneConfig,
        readiness: Option<ReadinessReporter>,
    ) -> Result<Self, DataPlaneError> {
        let sandboxes = Arc::new(Sandboxes::start(config, readiness).await?);
        let (trigger, shutdown) = kuberun::shutdown_channel();
        let task = tokio::spawn(keep(sandboxes.clone(), client, shutdown));
        Ok(Self {
            sandboxes,
            trigger,
            task: Some(task),
        })
    }

    /// The namespaces themselves.
    pub fn sandboxes(&self) -> &Arc<Sandboxes> {
        &self.sandboxes
    }

    /// The network namespace of Node `node` (where a kube-proxy of that node programs its
    /// rules), once made.
    pub fn node_namespace(&self, node: &str) -> Option<String> {
        self.sandboxes.node_namespace(node)
    }

    /// The network namespace of pod `namespace/name`, once its stand-in runs.
    pub fn pod_namespace(&self, namespace: &str, name: &str) -> Option<String> {
        self.sandboxes
            .pod_namespace(namespace, name)
            .map(|(ns, _)| ns)
    }

    /// The namespace of the fabric bridge: outside every node, as a client on the nodes'
    /// network would be.
    pub fn fabric_namespace(&self) -> String {
        self.sandboxes.fabric_namespace()
    }

    /// A command that runs `argv` inside node `node`'s namespace (`ip netns exec`), e.g. to
    /// reach Services from a node.
    pub fn node_command(&self, node: &str, argv: &[String]) -> Result<Command, DataPlaneError> {
        let ns = self
            .node_namespace(node)
            .ok_or_else(|| DataPlaneError::NoSuchNode(node.to_string()))?;
        Ok(netns_exec_command(&ns, argv))
    }

    /// The data plane as testenv's container runtime (for `ApiServer::set_container_runtime`).
    pub fn runtime(&self) -> Arc<dyn ContainerRuntime> {
        Arc::new(DataPlaneRuntime::new(self.sandboxes.clone()))
    }

    /// Stops watching and removes every namespace, veth and /etc/netns directory it made.
    pub async fn shutdown(mut self) -> Result<(), DataPlaneError> {
        self.trigger.fire();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        self.sandboxes.shutdown().await
    }
}

impl Drop for DataPlane {
    fn drop(&mut self) {
        self.trigger.fire();
        if let Some(task) = self.task.take() {
            task.abort();
        }
        self.sandboxes.remove_all_now();
    }
}

async fn keep(sandboxes: Arc<Sandboxes>, client: kube::Client, shutdown: Shutdown) {
    let (inputs, mut received) = mpsc::unbounded_channel();
    let node_inputs = inputs.clone();
    let nodes = kuberun::watch_events(
        Api::<Node>::all(client.clone()),
        watcher::Config::default(),
        shutdown.clone(),
        move |e| {
            let _ = node_inputs.send(Input::Node(Box::new(e)));
        },
    );
    let pods = kuberun::watch_events(
        Api::<Pod>::all(client),
        watcher::Config::default(),
        shutdown.clone(),
        move |e| {
            let _ = inputs.send(Input::Pod(Box::new(e)));
        },
    );
    let watches = tokio::spawn(async move {
        tokio::join!(nodes, pods);
    });
    let mut desired = Desired::default();
    let mut stop = std::pin::pin!(shutdown.wait());
    let mut retry = tokio::time::interval(RETRY_EVERY);
    loop {
        tokio::select! {
            () = &mut stop => break,
            input = received.recv() => {
                let Some(input) = input else { break };
                let mut next = Some(input);
                // Take every event already waiting before acting on them.
                while let Some(input) = next {
                    match input {
                        Input::Node(e) => desired.node_event(*e),
                        Input::Pod(e) => desired.pod_event(*e),
                    }
                    next = received.try_recv().ok();
                }
            }
            _ = retry.tick() => {}
        }
        reconcile(&sandboxes, &desired).await;
    }
    let _ = watches.await;
}

async fn reconcile(sandboxes: &Sandboxes, desired: &Desired) {
    let (actual_nodes, actual_pods) = sandboxes.actual();
    for step in plan(&desired.nodes, &desired.pods, &actual_nodes, &actual_pods) {
        let done = match &step {
            Step::RemovePod(key) => sandboxes.remove_pod(key).await,
            Step::RemoveNode(name) => sandboxes.remove_node(name).await,
            Step::AddNode(node) => sandboxes.add_node(node).await,
            Step::AddPod(pod) => sandboxes.add_pod(pod).await,
        };
        if let Err(e) = done {
            tracing::warn!(error = %e, "data plane: retrying in {}s", RETRY_EVERY.as_secs());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, ip: Option<&str>) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "uid": name},
            "spec": {"nodeName": "node-1", "containers": [{"name": "c"}]},
            "status": {"phase": "Running", "podIP": ip},
        }))
        .unwrap()
    }

    #[test]
    fn a_relist_forgets_pods_it_no_longer_lists_and_unplannable_pods_leave() {
        let mut d = Desired::default();
        d.pod_event(Event::Apply(pod("a", Some("10.244.1.2"))));
        d.pod_event(Event::Apply(pod("b", Some("10.244.1.3"))));
        assert_eq!(d.pods.len(), 2);
        d.pod_event(Event::Apply(pod("b", None)));
        assert_eq!(d.pods.len(), 1);
        d.pod_event(Event::Init);
        d.pod_event(Event::InitApply(pod("c", Some("10.244.1.4"))));
        d.pod_event(Event::InitDone);
        let names: Vec<&str> = d.pods.keys().map(|(_, n)| n.as_str()).collect();
        assert_eq!(names, ["c"]);
    }
}
