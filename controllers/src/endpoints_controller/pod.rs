//! The Endpoints planner reads Pods; the controller caches `PodInfo`s. This rebuilds the
//! few Pod fields the planner reads from a `PodInfo`, so both controllers share one compact
//! cache shape.

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, Pod, PodCondition, PodIP, PodSpec, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use crate::endpointslice::PodInfo;

/// A Pod carrying exactly what `PodInfo::from_pod` reads, so that
/// `PodInfo::from_pod(&pod_from_info(info))` gives `info` back.
pub fn pod_from_info(info: &PodInfo) -> Pod {
    let ports: Vec<ContainerPort> = info
        .container_ports
        .iter()
        .map(|p| ContainerPort {
            name: (!p.name.is_empty()).then(|| p.name.clone()),
            protocol: Some(p.protocol.clone()),
            container_port: p.container_port,
            ..ContainerPort::default()
        })
        .collect();
    let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    Pod {
        metadata: ObjectMeta {
            namespace: non_empty(&info.namespace),
            name: non_empty(&info.name),
            uid: non_empty(&info.uid),
            labels: (!info.labels.is_empty()).then(|| (*info.labels).clone()),
            deletion_timestamp: info
                .terminating
                .then_some(Time(jiff::Timestamp::UNIX_EPOCH)),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "ports".into(),
                ports: (!ports.is_empty()).then_some(ports),
                ..Container::default()
            }],
            node_name: non_empty(&info.node_name),
            hostname: non_empty(&info.hostname),
            subdomain: non_empty(&info.subdomain),
            ..PodSpec::default()
        }),
        status: Some(PodStatus {
            phase: Some(if info.terminal { "Failed" } else { "Running" }.to_owned()),
            pod_ip: info.ips.first().cloned(),
            pod_ips: (!info.ips.is_empty())
                .then(|| info.ips.iter().map(|ip| PodIP { ip: ip.clone() }).collect()),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: if info.ready { "True" } else { "False" }.into(),
                last_transition_time: info.ready_transition_time.map(Time),
                ..PodCondition::default()
            }]),
            ..PodStatus::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpointslice::pod::ContainerPortInfo;
    use std::collections::BTreeMap;
    use std::sync::Arc;

    #[test]
    fn round_trips_through_pod_info() {
        let info = PodInfo {
            namespace: "ns".into(),
            name: "web-0".into(),
            uid: "u-1".into(),
            labels: BTreeMap::from([("app".into(), "web".into())]).into(),
            has_ip: true,
            ips: vec!["10.0.0.1".into(), "fd00::1".into()],
            ready: true,
            ready_transition_time: jiff::Timestamp::from_second(1_700_000_000).ok(),
            terminating: true,
            terminal: false,
            node_name: "node-1".into(),
            hostname: "web-0".into(),
            subdomain: "web".into(),
            container_ports: Arc::from(vec![
                ContainerPortInfo {
                    name: "http".into(),
                    protocol: "TCP".into(),
                    container_port: 8080,
                },
                ContainerPortInfo {
                    name: String::new(),
                    protocol: "UDP".into(),
                    container_port: 53,
                },
            ]),
        };
        assert_eq!(PodInfo::from_pod(&pod_from_info(&info)), info);
        let bare = PodInfo::default();
        assert_eq!(PodInfo::from_pod(&pod_from_info(&bare)), bare);
    }
}
