//! Which sandboxes to make and remove: a pure function of what the API says (desired) and
//! what exists (actual).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::pods::{NodePlan, PodKey, PodPlan};

/// One change to the namespaces, in the order [`plan`] returns them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Tear down a pod's namespace and stand-in.
    RemovePod(PodKey),
    /// Tear down a node's namespace.
    RemoveNode(String),
    /// Make a node's namespace.
    AddNode(NodePlan),
    /// Make a pod's namespace and start its stand-in.
    AddPod(PodPlan),
}

/// The steps that turn `actual` into `desired`: pods that went or changed (or whose node goes)
/// are removed first, then nodes that went or changed, then nodes are added, then pods whose
/// node is there. A pod whose node is not (yet) known waits. Sorted by name within each kind.
pub fn plan(
    desired_nodes: &BTreeMap<String, NodePlan>,
    desired_pods: &BTreeMap<PodKey, PodPlan>,
    actual_nodes: &BTreeMap<String, NodePlan>,
    actual_pods: &BTreeMap<PodKey, PodPlan>,
) -> Vec<Step> {
    let node_goes = |name: &str| match (actual_nodes.get(name), desired_nodes.get(name)) {
        (Some(a), Some(d)) => a != d,
        (Some(_), None) => true,
        (None, _) => false,
    };
    let mut steps = Vec::new();
    let mut removed_pods = Vec::new();
    for (key, actual) in actual_pods {
        if desired_pods.get(key) != Some(actual) || node_goes(&actual.node) {
            steps.push(Step::RemovePod(key.clone()));
            removed_pods.push(key);
        }
    }
    let mut removed_nodes = Vec::new();
    for name in actual_nodes.keys() {
        if node_goes(name) {
            steps.push(Step::RemoveNode(name.clone()));
            removed_nodes.push(name);
        }
    }
    for (name, node) in desired_nodes {
        if !actual_nodes.contains_key(name) || removed_nodes.contains(&name) {
            steps.push(Step::AddNode(node.clone()));
        }
    }
    for (key, pod) in desired_pods {
        let missing = !actual_pods.contains_key(key) || removed_pods.contains(&key);
        if missing && desired_nodes.contains_key(&pod.node) {
            steps.push(Step::AddPod(pod.clone()));
        }
    }
    steps
}

/// The routes node `node` needs to every other node's pod CIDR: `(cidr, via that node's IP)`.
pub fn peer_routes(nodes: &BTreeMap<String, NodePlan>, node: &str) -> Vec<(Ipv4Net, Ipv4Addr)> {
    nodes
        .values()
        .filter(|n| n.name != node)
        .map(|n| (n.pod_cidr, n.ip))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, n: u8) -> NodePlan {
        NodePlan {
            name: name.into(),
            ip: Ipv4Addr::new(172, 18, 0, n + 1),
            pod_cidr: format!("10.244.{n}.0/24").parse().unwrap(),
        }
    }

    fn pod(name: &str, node: &str, ip: [u8; 4]) -> PodPlan {
        PodPlan {
            namespace: "default".into(),
            name: name.into(),
            uid: format!("uid-{name}"),
            node: node.into(),
            ip: Ipv4Addr::from(ip),
            containers: Vec::new(),
        }
    }

    fn nodes(list: &[NodePlan]) -> BTreeMap<String, NodePlan> {
        list.iter().map(|n| (n.name.clone(), n.clone())).collect()
    }

    fn pods(list: &[PodPlan]) -> BTreeMap<PodKey, PodPlan> {
        list.iter().map(|p| (p.key(), p.clone())).collect()
    }

    #[test]
    fn nodes_come_before_their_pods_and_pods_wait_for_their_node() {
        let desired_nodes = nodes(&[node("node-1", 1)]);
        let desired_pods = pods(&[
            pod("a", "node-1", [10, 244, 1, 2]),
            pod("b", "node-9", [10, 244, 9, 2]),
        ]);
        let steps = plan(
            &desired_nodes,
            &desired_pods,
            &BTreeMap::new(),
            &BTreeMap::new(),
        );
        assert_eq!(
            steps,
            [
                Step::AddNode(node("node-1", 1)),
                Step::AddPod(pod("a", "node-1", [10, 244, 1, 2])),
            ]
        );
        // Nothing to do once it exists.
        let actual_pods = pods(&[pod("a", "node-1", [10, 244, 1, 2])]);
        let desired_pods = pods(&[pod("a", "node-1", [10, 244, 1, 2])]);
        assert!(plan(&desired_nodes, &desired_pods, &desired_nodes, &actual_pods).is_empty());
    }

    #[test]
    fn a_changed_pod_is_replaced_and_a_gone_node_takes_its_pods() {
        let actual_nodes = nodes(&[node("node-1", 1), node("node-2", 2)]);
        let actual_pods = pods(&[
            pod("a", "node-1", [10, 244, 1, 2]),
            pod("b", "node-2", [10, 244, 2, 2]),
        ]);
        let mut recreated = pod("a", "node-1", [10, 244, 1, 3]);
        recreated.uid = "uid-a2".into();
        let desired_nodes = nodes(&[node("node-1", 1)]);
        let desired_pods = pods(&[recreated.clone(), pod("b", "node-2", [10, 244, 2, 2])]);
        assert_eq!(
            plan(&desired_nodes, &desired_pods, &actual_nodes, &actual_pods),
            [
                Step::RemovePod(("default".into(), "a".into())),
                Step::RemovePod(("default".into(), "b".into())),
                Step::RemoveNode("node-2".into()),
                Step::AddPod(recreated),
            ]
        );
    }

    #[test]
    fn a_node_whose_address_changed_is_rebuilt_with_its_pods() {
        let actual_nodes = nodes(&[node("node-1", 1)]);
        let a = pod("a", "node-1", [10, 244, 1, 2]);
        let actual_pods = pods(std::slice::from_ref(&a));
        let mut moved = node("node-1", 1);
        moved.ip = Ipv4Addr::new(172, 18, 0, 99);
        let steps = plan(
            &nodes(&[moved.clone()]),
            &actual_pods,
            &actual_nodes,
            &actual_pods,
        );
        assert_eq!(
            steps,
            [
                Step::RemovePod(a.key()),
                Step::RemoveNode("node-1".into()),
                Step::AddNode(moved),
                Step::AddPod(a),
            ]
        );
    }

    #[test]
    fn each_node_routes_to_the_others() {
        let all = nodes(&[node("node-1", 1), node("node-2", 2), node("node-3", 3)]);
        assert_eq!(
            peer_routes(&all, "node-2"),
            [
                (
                    "10.244.1.0/24".parse().unwrap(),
                    Ipv4Addr::new(172, 18, 0, 2)
                ),
                (
                    "10.244.3.0/24".parse().unwrap(),
                    Ipv4Addr::new(172, 18, 0, 4)
                ),
            ]
        );
    }
}
