//! The `default/kubernetes` Service: its desired shape and the create / repair decision.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{
    KubernetesServiceError, MIN_SERVICE_RANGE_SIZE, SERVICE_NAME, SERVICE_NAMESPACE, SERVICE_PORT,
    SERVICE_PORT_NAME,
};

/// The ClusterIP of the `kubernetes` Service: index 1 of the range (network address + 1).
pub fn first_usable_ip(range: &IpNet) -> Result<IpAddr, KubernetesServiceError> {
    let host_bits = u32::from(range.max_prefix_len() - range.prefix_len());
    let size: u128 = if host_bits >= 127 {
        u128::MAX
    } else {
        1u128 << host_bits
    };
    if size < MIN_SERVICE_RANGE_SIZE {
        return Err(KubernetesServiceError::RangeTooSmall);
    }
    Ok(match range.network() {
        IpAddr::V4(v4) => IpAddr::V4((u32::from(v4) + 1).into()),
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) + 1).into()),
    })
}

/// Ports and type of the `kubernetes` Service (upstream `createPortAndServiceSpec`):
/// `https` 443 -> the secure port; `NodePort` when a node port is configured (> 0).
pub fn kubernetes_service_ports(
    secure_port: i32,
    node_port: Option<i32>,
) -> (Vec<ServicePort>, &'static str) {
    let node_port = node_port.filter(|p| *p > 0);
    let port = ServicePort {
        name: Some(SERVICE_PORT_NAME.to_string()),
        port: SERVICE_PORT,
        protocol: Some("TCP".to_string()),
        target_port: Some(IntOrString::Int(secure_port)),
        node_port,
        ..Default::default()
    };
    let service_type = if node_port.is_some() {
        "NodePort"
    } else {
        "ClusterIP"
    };
    (vec![port], service_type)
}

/// The Service the controller creates when `default/kubernetes` is absent.
pub fn desired_service(cluster_ip: IpAddr, ports: Vec<ServicePort>, service_type: &str) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(SERVICE_NAME.to_string()),
            namespace: Some(SERVICE_NAMESPACE.to_string()),
            labels: Some(BTreeMap::from([
                ("provider".to_string(), "kubernetes".to_string()),
                ("component".to_string(), "apiserver".to_string()),
            ])),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            ports: Some(ports),
            selector: None,
            cluster_ip: Some(cluster_ip.to_string()),
            ip_family_policy: Some("SingleStack".to_string()),
            session_affinity: Some("None".to_string()),
            type_: Some(service_type.to_string()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// What to do with the `kubernetes` Service this interval.
#[derive(Clone, Debug, PartialEq)]
pub enum ServiceAction {
    /// It exists and is left alone.
    NoOp,
    /// It is absent: create this.
    Create(Service),
    /// Drift repair (only with `reconcile = true`): PUT this.
    Update(Service),
}

/// Upstream `CreateOrUpdateMasterServiceIfNeeded`: create when absent; with `reconcile`
/// (never set in production since 1.17) replace ports and type when the type differs, the
/// port count differs, or any port differs in order.
pub fn plan_service(
    existing: Option<&Service>,
    desired: &Service,
    reconcile: bool,
) -> ServiceAction {
    let Some(existing) = existing else {
        return ServiceAction::Create(desired.clone());
    };
    if !reconcile {
        return ServiceAction::NoOp;
    }
    let want = desired.spec.clone().unwrap_or_default();
    let have = existing.spec.clone().unwrap_or_default();
    let want_ports = want.ports.unwrap_or_default();
    let format_correct = have.type_ == want.type_
        && have.ports.as_deref().unwrap_or_default() == want_ports.as_slice();
    if format_correct {
        return ServiceAction::NoOp;
    }
    let mut updated = existing.clone();
    let spec = updated.spec.get_or_insert_with(Default::default);
    spec.ports = Some(want_ports);
    spec.type_ = want.type_;
    ServiceAction::Update(updated)
}
