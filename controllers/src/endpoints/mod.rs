//! The legacy Endpoints controller's planner (upstream `pkg/controller/endpoint`): from a
//! Service and its pods, the one write (or none) that brings `core/v1` Endpoints up to date.

mod capacity;
mod repack;

#[cfg(test)]
mod tests;

use std::borrow::Borrow;
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Node, ObjectReference, Service,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;

use crate::endpointslice::pod::{self as pod_facts, PodInfo};

pub use capacity::{MAX_CAPACITY, total_addresses, truncate_subsets};
pub use repack::{repack_subsets, subsets_equal_ignoring_resource_version};

/// Endpoints used as leader-election locks (old-style leader election) carry this annotation:
/// they belong to no Service, and are neither deleted as orphans nor mirrored.
pub const LEADER_ANNOTATION: &str = "control-plane.alpha.kubernetes.io/leader";
/// Annotation set when the object was truncated to [`MAX_CAPACITY`] addresses.
pub const OVER_CAPACITY_ANNOTATION: &str = "endpoints.kubernetes.io/over-capacity";
/// Value of [`OVER_CAPACITY_ANNOTATION`].
pub const TRUNCATED: &str = "truncated";
/// Annotation carrying the time of the change that triggered the write.
pub const TRIGGER_TIME_ANNOTATION: &str = "endpoints.kubernetes.io/last-change-trigger-time";
/// Label naming the controller that manages an Endpoints object (v1.33+).
pub const MANAGED_BY_LABEL: &str = "endpoints.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`] for this controller.
pub const CONTROLLER_NAME: &str = "endpoint-controller";
/// Label present (empty) on the Endpoints of a headless Service.
pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";

/// Inputs of [`plan`] that are not objects.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EndpointsOptions {
    /// Trigger time computed by the shell's tracker; `None` (zero) removes the annotation.
    pub trigger_time: Option<Timestamp>,
}

/// The single write the Endpoints controller issues for one Service sync.
#[derive(Clone, Debug, PartialEq)]
pub enum EndpointsPlan {
    /// Nothing to write.
    NoOp,
    /// POST this new object.
    Create(Endpoints),
    /// PUT this object (it carries the resourceVersion of the current one).
    Update(Endpoints),
    /// DELETE the Endpoints of a Service that no longer exists.
    Delete {
        /// Namespace of the Endpoints.
        namespace: String,
        /// Name of the Endpoints (the Service name).
        name: String,
    },
}

/// Plans the sync of one Service's Endpoints (upstream `syncService`).
///
/// `service` is `None` when the Service is gone; the Endpoints of that name is then deleted
/// (the shell knows the key from `existing`). `pods` may contain any pods (owned `PodInfo`s
/// or references into a cache): only those in the Service's namespace matching its selector
/// are used. Nodes are not consulted by this controller (no zone, no node check) and are
/// accepted only for symmetry with the EndpointSlice planner.
pub fn plan(
    service: Option<&Service>,
    pods: &[impl Borrow<PodInfo>],
    _nodes: &[Node],
    existing: Option<&Endpoints>,
    options: &EndpointsOptions,
) -> EndpointsPlan {
    let Some(service) = service else {
        return match existing {
            Some(current) => EndpointsPlan::Delete {
                namespace: current.metadata.namespace.clone().unwrap_or_default(),
                name: current.metadata.name.clone().unwrap_or_default(),
            },
            None => EndpointsPlan::NoOp,
        };
    };
    let Some(spec) = service.spec.as_ref() else {
        return EndpointsPlan::NoOp;
    };
    if spec.type_.as_deref() == Some("ExternalName") {
        return EndpointsPlan::NoOp;
    }
    let Some(selector) = spec.selector.as_ref() else {
        return EndpointsPlan::NoOp;
    };

    let namespace = service.metadata.namespace.as_deref().unwrap_or_default();
    let selected = pods
        .iter()
        .map(Borrow::borrow)
        .filter(|pod| *pod.namespace == *namespace && pod.matches_selector(selector));
    let subsets = desired_subsets(service, selected);
    plan_write(service, subsets, existing, options)
}

fn is_service_ip_set(service: &Service) -> bool {
    let ip = service
        .spec
        .as_ref()
        .and_then(|s| s.cluster_ip.as_deref())
        .unwrap_or_default();
    !ip.is_empty() && ip != "None"
}

/// Computes the repacked subsets for the given (already selected) pods.
pub fn desired_subsets<'a>(
    service: &Service,
    pods: impl IntoIterator<Item = &'a PodInfo>,
) -> Vec<EndpointSubset> {
    let spec = service.spec.clone().unwrap_or_default();
    let publish_not_ready = spec.publish_not_ready_addresses.unwrap_or(false);
    let service_ports = spec.ports.unwrap_or_default();
    let headless_none = spec.cluster_ip.as_deref() == Some("None");

    let mut subsets = Vec::new();
    for pod in pods {
        if !pod.should_be_in_endpoints(publish_not_ready) {
            continue;
        }
        let Some(address) = pod_address(service, pod) else {
            continue;
        };
        let ready = publish_not_ready || pod.ready;
        let mut push = |ports: Option<Vec<EndpointPort>>| {
            let list = Some(vec![address.clone()]);
            subsets.push(EndpointSubset {
                addresses: if ready { list.clone() } else { None },
                not_ready_addresses: if ready { None } else { list },
                ports,
            });
        };
        if service_ports.is_empty() {
            // Only `None` counts as headless for this rule, unlike the headless label.
            if headless_none {
                push(None);
            }
            continue;
        }
        for service_port in &service_ports {
            let Ok(number) = pod.find_port(service_port) else {
                continue;
            };
            push(Some(vec![EndpointPort {
                name: service_port.name.clone().filter(|n| !n.is_empty()),
                port: number,
                protocol: service_port.protocol.clone(),
                app_protocol: service_port.app_protocol.clone(),
            }]));
        }
    }
    repack_subsets(&subsets)
}

fn is_ipv6_string(text: &str) -> bool {
    matches!(
        pod_facts::parse_ip_sloppy(text),
        Some(std::net::IpAddr::V6(_))
    )
}

/// Upstream `podToEndpointAddressForService`: one address per pod, of the Service's primary
/// family. A pod IP that does not parse yields no address (upstream would write `<nil>`,
/// which the API server rejects).
fn pod_address(service: &Service, pod: &PodInfo) -> Option<EndpointAddress> {
    let spec = service.spec.as_ref();
    let want_v6 = match spec
        .and_then(|s| s.ip_families.as_ref())
        .and_then(|f| f.first())
    {
        Some(family) => family == "IPv6",
        None if is_service_ip_set(service) => is_ipv6_string(
            spec.and_then(|s| s.cluster_ip.as_deref())
                .unwrap_or_default(),
        ),
        // Upstream reads `status.podIP`; the API server keeps it equal to `podIPs[0]`.
        None => pod
            .ips
            .first()
            .is_some_and(|ip| pod_facts::is_ipv6_canonical(ip)),
    };
    let ip = pod
        .ips
        .iter()
        .find(|ip| pod_facts::is_ipv6_canonical(ip) == want_v6)?;
    if ip == pod_facts::INVALID_IP_STRING {
        return None;
    }
    let service_name = service.metadata.name.as_deref().unwrap_or_default();
    let service_namespace = service.metadata.namespace.as_deref().unwrap_or_default();
    let hostname = pod
        .should_set_hostname(service_name, service_namespace)
        .then(|| pod.hostname.clone());
    let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_string());
    Some(EndpointAddress {
        ip: ip.clone(),
        hostname,
        node_name: Some(pod.node_name.to_string()),
        target_ref: Some(ObjectReference {
            kind: Some("Pod".to_string()),
            namespace: non_empty(&pod.namespace),
            name: non_empty(&pod.name),
            uid: non_empty(&pod.uid),
            ..Default::default()
        }),
    })
}

fn labels_equal(
    a: Option<&BTreeMap<String, String>>,
    b: Option<&BTreeMap<String, String>>,
) -> bool {
    let empty = BTreeMap::new();
    a.unwrap_or(&empty) == b.unwrap_or(&empty)
}

/// Upstream `capacityAnnotationSetCorrectly`, over the CURRENT object.
fn capacity_annotation_correct(current: &Endpoints) -> bool {
    let subsets = current.subsets.as_deref().unwrap_or_default();
    if total_addresses(subsets) > MAX_CAPACITY {
        return false;
    }
    !current
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(OVER_CAPACITY_ANNOTATION))
}

/// Formats a trigger time as Go's RFC3339Nano in UTC.
pub fn format_trigger_time(time: Timestamp) -> String {
    time.to_string()
}

fn plan_write(
    service: &Service,
    subsets: Vec<EndpointSubset>,
    existing: Option<&Endpoints>,
    options: &EndpointsOptions,
) -> EndpointsPlan {
    let current = match existing {
        Some(current) => current.clone(),
        None => Endpoints {
            metadata: ObjectMeta {
                name: service.metadata.name.clone(),
                namespace: service.metadata.namespace.clone(),
                labels: service.metadata.labels.clone(),
                ..Default::default()
            },
            ..Default::default()
        },
    };
    let create = current
        .metadata
        .resource_version
        .as_deref()
        .is_none_or(str::is_empty);

    if !create {
        let mut compare_labels = current.metadata.labels.clone().unwrap_or_default();
        compare_labels.remove(HEADLESS_LABEL);
        if compare_labels.get(MANAGED_BY_LABEL).map(String::as_str) == Some(CONTROLLER_NAME) {
            compare_labels.remove(MANAGED_BY_LABEL);
        }
        // Cheapest test first: over capacity, the subsets need not be compared at all.
        if capacity_annotation_correct(&current)
            && labels_equal(Some(&compare_labels), service.metadata.labels.as_ref())
            && subsets_equal_ignoring_resource_version(current.subsets.as_deref(), Some(&subsets))
        {
            return EndpointsPlan::NoOp;
        }
    }

    let mut next = current;
    let mut subsets = subsets;
    let truncated = truncate_subsets(&mut subsets);
    next.subsets = Some(subsets);

    let mut annotations = next.metadata.annotations.take().unwrap_or_default();
    match options.trigger_time {
        Some(time) => {
            annotations.insert(
                TRIGGER_TIME_ANNOTATION.to_string(),
                format_trigger_time(time),
            );
        }
        None => {
            annotations.remove(TRIGGER_TIME_ANNOTATION);
        }
    }
    if truncated {
        annotations.insert(OVER_CAPACITY_ANNOTATION.to_string(), TRUNCATED.to_string());
    } else {
        annotations.remove(OVER_CAPACITY_ANNOTATION);
    }
    next.metadata.annotations = (!annotations.is_empty()).then_some(annotations);

    let mut labels = service.metadata.labels.clone().unwrap_or_default();
    if is_service_ip_set(service) {
        labels.remove(HEADLESS_LABEL);
    } else {
        labels.insert(HEADLESS_LABEL.to_string(), String::new());
    }
    labels.insert(MANAGED_BY_LABEL.to_string(), CONTROLLER_NAME.to_string());
    next.metadata.labels = Some(labels);

    if create {
        EndpointsPlan::Create(next)
    } else {
        EndpointsPlan::Update(next)
    }
}
