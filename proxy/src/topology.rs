//! Which endpoints a ServicePort's traffic may reach from this node (upstream's
//! `CategorizeEndpoints` in `pkg/proxy/topology.go`): the Cluster-policy list (with topology
//! hints, falling back to serving-terminating endpoints), the Local-policy list, their union, and
//! whether the Service has any usable endpoint anywhere.

use crate::model::{Endpoint, ServicePortInfo};

/// The endpoint lists of one ServicePort.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Categorized<'a> {
    /// Endpoints for Cluster traffic policy.
    pub cluster: Vec<&'a Endpoint>,
    /// Endpoints for Local traffic policy.
    pub local: Vec<&'a Endpoint>,
    /// Every endpoint this node may send to (sorted by `ip:port`).
    pub all_reachable: Vec<&'a Endpoint>,
    /// Some usable endpoint exists, on any node.
    pub has_any: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TopologyMode {
    None,
    PreferSameNode,
    PreferSameZone,
}

/// Splits `endpoints` (sorted by `ip:port`) for `svc` on node `node_name` in zone `zone`.
/// `prefer_same_node` is the PreferSameTrafficDistribution gate (beta and on in 1.34).
pub fn categorize_endpoints<'a>(
    endpoints: &'a [Endpoint],
    svc: &ServicePortInfo,
    node_name: &str,
    zone: Option<&str>,
    prefer_same_node: bool,
) -> Categorized<'a> {
    let mut out = Categorized::default();
    if endpoints.is_empty() {
        return out;
    }
    let zone = zone.unwrap_or("");
    let mut mode = TopologyMode::None;
    if svc.uses_cluster_endpoints() {
        mode = topology_mode(endpoints, node_name, zone, prefer_same_node);
        out.cluster = endpoints
            .iter()
            .filter(|ep| ep.ready && available_for_topology(ep, mode, node_name, zone))
            .collect();
        if out.cluster.is_empty() {
            out.cluster = endpoints
                .iter()
                .filter(|ep| ep.serving && ep.terminating)
                .collect();
        }
        out.has_any = !out.cluster.is_empty();
    }
    if !svc.uses_local_endpoints() {
        out.all_reachable = out.cluster.clone();
        return out;
    }

    let (mut local_ready, mut local_serving_terminating) = (false, false);
    for ep in endpoints {
        if ep.ready {
            out.has_any = true;
            local_ready |= ep.is_local;
        } else if ep.serving && ep.terminating {
            out.has_any = true;
            local_serving_terminating |= ep.is_local;
        }
    }
    let mut use_serving_terminating = false;
    if local_ready {
        out.local = endpoints
            .iter()
            .filter(|ep| ep.is_local && ep.ready)
            .collect();
    } else if local_serving_terminating {
        use_serving_terminating = true;
        out.local = endpoints
            .iter()
            .filter(|ep| ep.is_local && ep.serving && ep.terminating)
            .collect();
    }

    if !svc.uses_cluster_endpoints() {
        out.all_reachable = out.local.clone();
        return out;
    }
    if mode == TopologyMode::None && !use_serving_terminating {
        out.all_reachable = out.cluster.clone();
        return out;
    }
    let mut union: Vec<&Endpoint> = out.cluster.iter().chain(&out.local).copied().collect();
    union.sort_by_key(|ep| ep.address());
    union.dedup_by_key(|ep| ep.address());
    out.all_reachable = union;
    out
}

fn topology_mode(
    endpoints: &[Endpoint],
    node_name: &str,
    zone: &str,
    prefer_same_node: bool,
) -> TopologyMode {
    let (mut for_node, mut all_node_hints) = (false, true);
    let (mut for_zone, mut all_zone_hints) = (false, true);
    for ep in endpoints.iter().filter(|ep| ep.ready) {
        if ep.node_hints.is_empty() {
            all_node_hints = false;
        } else if ep.node_hints.contains(node_name) {
            for_node = true;
        }
        if ep.zone_hints.is_empty() {
            all_zone_hints = false;
        } else if ep.zone_hints.contains(zone) {
            for_zone = true;
        }
    }
    if prefer_same_node && all_node_hints && for_node {
        TopologyMode::PreferSameNode
    } else if all_zone_hints && for_zone {
        TopologyMode::PreferSameZone
    } else {
        TopologyMode::None
    }
}

fn available_for_topology(ep: &Endpoint, mode: TopologyMode, node_name: &str, zone: &str) -> bool {
    match mode {
        TopologyMode::None => true,
        TopologyMode::PreferSameNode => ep.node_hints.contains(node_name),
        TopologyMode::PreferSameZone => ep.zone_hints.contains(zone),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Protocol;
    use std::collections::BTreeSet;

    fn svc(internal_local: bool, external_local: bool, node_port: u16) -> ServicePortInfo {
        ServicePortInfo {
            namespace: "ns".into(),
            name: "s".into(),
            port_name: "p".into(),
            protocol: Protocol::Tcp,
            cluster_ip: "172.30.0.1".parse().unwrap(),
            port: 80,
            node_port,
            external_ips: vec![],
            load_balancer_vips: vec![],
            load_balancer_source_ranges: vec![],
            affinity_timeout_seconds: None,
            health_check_node_port: 0,
            external_policy_local: external_local,
            internal_policy_local: internal_local,
        }
    }

    fn ep(
        last: u8,
        local: bool,
        ready: bool,
        serving: bool,
        terminating: bool,
        zone: &str,
    ) -> Endpoint {
        Endpoint {
            ip: format!("10.0.0.{last}").parse().unwrap(),
            port: 80,
            is_local: local,
            ready,
            serving,
            terminating,
            zone_hints: if zone.is_empty() {
                BTreeSet::new()
            } else {
                BTreeSet::from([zone.to_string()])
            },
            node_hints: BTreeSet::new(),
        }
    }

    fn ips(list: &[&Endpoint]) -> Vec<String> {
        list.iter().map(|e| e.address()).collect()
    }

    #[test]
    fn cluster_policy_uses_ready_then_serving_terminating() {
        let eps = vec![
            ep(1, false, false, true, true, ""),
            ep(2, false, true, true, false, ""),
            ep(3, false, false, false, true, ""),
        ];
        let c = categorize_endpoints(&eps, &svc(false, false, 0), "n", None, true);
        assert_eq!(ips(&c.cluster), vec!["10.0.0.2:80"]);
        assert!(c.local.is_empty() && c.has_any);
        let only_terminating = vec![eps[0].clone(), eps[2].clone()];
        let c = categorize_endpoints(&only_terminating, &svc(false, false, 0), "n", None, true);
        assert_eq!(
            ips(&c.cluster),
            vec!["10.0.0.1:80"],
            "neither ready nor serving is never used"
        );
    }

    #[test]
    fn internal_local_uses_only_local_endpoints_but_counts_remote_ones() {
        let eps = vec![
            ep(1, false, true, true, false, ""),
            ep(2, true, false, true, true, ""),
        ];
        let c = categorize_endpoints(&eps, &svc(true, false, 0), "n", None, true);
        assert!(c.cluster.is_empty());
        assert_eq!(
            ips(&c.local),
            vec!["10.0.0.2:80"],
            "local serving-terminating fallback"
        );
        assert_eq!(ips(&c.all_reachable), vec!["10.0.0.2:80"]);
        assert!(c.has_any);
        let remote_only = vec![eps[0].clone()];
        let c = categorize_endpoints(&remote_only, &svc(true, false, 0), "n", None, true);
        assert!(c.local.is_empty() && c.has_any);
    }

    #[test]
    fn zone_hints_apply_only_when_every_ready_endpoint_has_one() {
        let eps = vec![
            ep(1, false, true, true, false, "a"),
            ep(2, false, true, true, false, "b"),
        ];
        let c = categorize_endpoints(&eps, &svc(false, false, 0), "n", Some("a"), true);
        assert_eq!(ips(&c.cluster), vec!["10.0.0.1:80"]);
        let c = categorize_endpoints(&eps, &svc(false, false, 0), "n", Some("c"), true);
        assert_eq!(c.cluster.len(), 2, "no hint for this zone: all endpoints");
        let partial = vec![eps[0].clone(), ep(3, false, true, true, false, "")];
        let c = categorize_endpoints(&partial, &svc(false, false, 0), "n", Some("a"), true);
        assert_eq!(c.cluster.len(), 2);
    }

    #[test]
    fn external_local_reaches_the_union() {
        let eps = vec![
            ep(1, false, true, true, false, "a"),
            ep(2, true, true, true, false, "b"),
        ];
        let c = categorize_endpoints(&eps, &svc(false, true, 3001), "n", Some("a"), true);
        assert_eq!(ips(&c.cluster), vec!["10.0.0.1:80"]);
        assert_eq!(ips(&c.local), vec!["10.0.0.2:80"]);
        assert_eq!(ips(&c.all_reachable), vec!["10.0.0.1:80", "10.0.0.2:80"]);
    }
}
