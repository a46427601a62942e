//! Allocation through the API (issue 13, item 2): Service creates that each allocate a ClusterIP
//! (and, for type NodePort, a node port), in a closed loop against kube-apiserver + etcd (its own
//! allocator) and against `svcplane up` (svcplane's registry in the embedded API server). This
//! module is the plain-data part: what a phase measured, whether what the server allocated holds
//! together, and the table. The binary `bench-allocation-api-vs-upstream` drives the servers.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::ops::RangeInclusive;

use ipnet::IpNet;
use k8s_openapi::api::core::v1::Service;

use crate::figures::{Figure, Peers, percentile, side_by_side};

/// What one closed-loop phase of Service creates measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PhaseRun {
    /// Latency of each successful create (ms).
    pub create_ms: Vec<f64>,
    /// Successful creates per second, from the phase's start to its last answer.
    pub creates_per_second: f64,
    /// Creates the server refused or that failed on the way.
    pub errors: usize,
    /// The first failure's message, for the log.
    pub first_error: Option<String>,
}

/// One run of one peer: a ClusterIP phase and a NodePort phase.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PeerRun {
    pub cluster_ip: PhaseRun,
    pub node_port: PhaseRun,
}

/// Checks what the server allocated to `services`: each has one ClusterIP, inside `range`, no
/// two the same; with `node_ports`, each port has a node port inside it, no two the same. The
/// create count is checked too: `expected` Services, no more and no fewer.
pub fn check_allocations(
    services: &[Service],
    expected: usize,
    range: IpNet,
    node_ports: Option<RangeInclusive<i32>>,
) -> Result<(), String> {
    if services.len() != expected {
        return Err(format!(
            "{} Services listed, {expected} created",
            services.len()
        ));
    }
    let mut ips = BTreeSet::new();
    let mut ports = BTreeSet::new();
    for service in services {
        let name = service.metadata.name.as_deref().unwrap_or("?");
        let spec = service.spec.as_ref();
        let ip = spec
            .and_then(|s| s.cluster_ip.as_deref())
            .ok_or(format!("{name} has no ClusterIP"))?;
        let parsed: IpAddr = ip
            .parse()
            .map_err(|_| format!("{name} has the ClusterIP {ip:?}, not an address"))?;
        if !range.contains(&parsed) {
            return Err(format!("{name}'s ClusterIP {ip} is outside {range}"));
        }
        if !ips.insert(parsed) {
            return Err(format!(
                "{name}'s ClusterIP {ip} was also given to another Service"
            ));
        }
        let Some(node_ports) = &node_ports else {
            continue;
        };
        for port in spec.and_then(|s| s.ports.as_ref()).into_iter().flatten() {
            let node_port = port
                .node_port
                .ok_or(format!("{name} port {} has no node port", port.port))?;
            if !node_ports.contains(&node_port) {
                return Err(format!(
                    "{name}'s node port {node_port} is outside {}-{}",
                    node_ports.start(),
                    node_ports.end()
                ));
            }
            if !ports.insert(node_port) {
                return Err(format!(
                    "{name}'s node port {node_port} was also given to another Service"
                ));
            }
        }
    }
    Ok(())
}

fn figures() -> Vec<Figure<PeerRun>> {
    vec![
        Figure {
            name: "ClusterIP Services: creates/s",
            decimals: 0,
            value: |r| r.cluster_ip.creates_per_second,
        },
        Figure {
            name: "ClusterIP Services: create p50 (ms)",
            decimals: 2,
            value: |r| percentile(&r.cluster_ip.create_ms, 50.0),
        },
        Figure {
            name: "ClusterIP Services: create p99 (ms)",
            decimals: 2,
            value: |r| percentile(&r.cluster_ip.create_ms, 99.0),
        },
        Figure {
            name: "NodePort Services: creates/s",
            decimals: 0,
            value: |r| r.node_port.creates_per_second,
        },
        Figure {
            name: "NodePort Services: create p50 (ms)",
            decimals: 2,
            value: |r| percentile(&r.node_port.create_ms, 50.0),
        },
        Figure {
            name: "NodePort Services: create p99 (ms)",
            decimals: 2,
            value: |r| percentile(&r.node_port.create_ms, 99.0),
        },
    ]
}

/// The markdown table: per figure the median over runs of each peer, svcplane ÷ upstream, and
/// every run's figure.
pub fn table(upstream: &[PeerRun], svcplane: &[PeerRun]) -> String {
    let peers = Peers {
        upstream: "kube-apiserver + etcd",
        ours: "svcplane up",
        ours_short: "svcplane",
    };
    let mut out = side_by_side(&figures(), &peers, upstream, svcplane);
    let errors = |runs: &[PeerRun]| {
        runs.iter()
            .map(|r| r.cluster_ip.errors + r.node_port.errors)
            .sum::<usize>()
    };
    let _ = writeln!(
        out,
        "\nFailed creates: upstream {}, svcplane {}.",
        errors(upstream),
        errors(svcplane)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(name: &str, ip: &str, node_ports: &[i32]) -> Service {
        let ports: Vec<_> = node_ports
            .iter()
            .enumerate()
            .map(|(i, p)| json!({"port": 80 + i, "nodePort": p}))
            .collect();
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"clusterIP": ip, "ports": ports},
        }))
        .unwrap()
    }

    fn range() -> IpNet {
        "10.96.0.0/12".parse().unwrap()
    }

    #[test]
    fn distinct_addresses_and_ports_inside_their_ranges_pass() {
        let services = [
            service("a", "10.96.0.10", &[30000]),
            service("b", "10.111.255.254", &[32767]),
        ];
        assert_eq!(
            check_allocations(&services, 2, range(), Some(30000..=32767)),
            Ok(())
        );
    }

    #[test]
    fn a_shared_or_stray_address_is_named() {
        let twice = [
            service("a", "10.96.0.10", &[]),
            service("b", "10.96.0.10", &[]),
        ];
        assert_eq!(
            check_allocations(&twice, 2, range(), None),
            Err("b's ClusterIP 10.96.0.10 was also given to another Service".into())
        );
        let outside = [service("a", "10.112.0.1", &[])];
        assert_eq!(
            check_allocations(&outside, 1, range(), None),
            Err("a's ClusterIP 10.112.0.1 is outside 10.96.0.0/12".into())
        );
        let none = [service("a", "None", &[])];
        assert_eq!(
            check_allocations(&none, 1, range(), None),
            Err("a has the ClusterIP \"None\", not an address".into())
        );
    }

    #[test]
    fn a_shared_stray_or_missing_node_port_is_named() {
        let ports = Some(30000..=32767);
        let twice = [
            service("a", "10.96.0.10", &[30001]),
            service("b", "10.96.0.11", &[30001]),
        ];
        assert_eq!(
            check_allocations(&twice, 2, range(), ports.clone()),
            Err("b's node port 30001 was also given to another Service".into())
        );
        let outside = [service("a", "10.96.0.10", &[29999])];
        assert_eq!(
            check_allocations(&outside, 1, range(), ports.clone()),
            Err("a's node port 29999 is outside 30000-32767".into())
        );
        let missing: Service = serde_json::from_value(json!({
            "metadata": {"name": "a"},
            "spec": {"clusterIP": "10.96.0.10", "ports": [{"port": 80}]},
        }))
        .unwrap();
        assert_eq!(
            check_allocations(&[missing], 1, range(), ports),
            Err("a port 80 has no node port".into())
        );
    }

    #[test]
    fn a_count_other_than_the_creates_is_named() {
        let one = [service("a", "10.96.0.10", &[])];
        assert_eq!(
            check_allocations(&one, 2, range(), None),
            Err("1 Services listed, 2 created".into())
        );
    }

    #[test]
    fn the_table_gives_medians_ratios_and_every_run() {
        let run = |rate: f64, ms: f64| PeerRun {
            cluster_ip: PhaseRun {
                create_ms: vec![ms, ms * 2.0],
                creates_per_second: rate,
                errors: 0,
                first_error: None,
            },
            node_port: PhaseRun {
                create_ms: vec![ms],
                creates_per_second: rate / 2.0,
                errors: 1,
                first_error: Some("refused".into()),
            },
        };
        let upstream = [run(400.0, 10.0), run(600.0, 20.0)];
        let svcplane = [run(4000.0, 1.0), run(6000.0, 2.0)];
        let t = table(&upstream, &svcplane);
        assert!(
            t.contains(
                "| ClusterIP Services: creates/s | 500 | 5000 | 10.00 | 400 / 600 | 4000 / 6000 |"
            ),
            "{t}"
        );
        assert!(
            t.contains("| NodePort Services: create p50 (ms) | 15.00 | 1.50 | 0.10 | 10.00 / 20.00 | 1.00 / 2.00 |"),
            "{t}"
        );
        assert!(t.contains("Failed creates: upstream 2, svcplane 2."), "{t}");
    }
}
