//! Printers of the named groups: EndpointSlice, Lease, IPAddress, ServiceCIDR, webhook
//! configurations and Deployment.

use jiff::Timestamp;
use serde_json::{Value, json};

use super::{AGE, Column, NAME, age_of, array_at, col, int_col, name_of, str_at, wide};

pub(super) const ENDPOINT_SLICE_COLUMNS: &[Column] = &[
    NAME,
    col(
        "AddressType",
        "addressType specifies the type of address carried by this EndpointSlice. All addresses in this slice must be the same type. This field is immutable after creation. The following address types are currently supported: * IPv4: Represents an IPv4 Address. * IPv6: Represents an IPv6 Address. * FQDN: Represents a Fully Qualified Domain Name.",
    ),
    col(
        "Ports",
        "ports specifies the list of network ports exposed by each endpoint in this slice. Each port must have a unique name. When ports is empty, it indicates that there are no defined ports. When a port is defined with a nil port value, it indicates \"all ports\". Each slice may include a maximum of 100 ports.",
    ),
    col(
        "Endpoints",
        "endpoints is a list of unique endpoints in this slice. Each slice may include a maximum of 1000 endpoints.",
    ),
    AGE,
];

/// `listWithMoreString`: up to three items, `+ N more...`, `<unset>` when empty.
fn list_with_more(list: &[String], more: bool, count: usize) -> String {
    const MAX: usize = 3;
    let joined = list.join(",");
    if more {
        return format!("{joined} + {} more...", count - MAX);
    }
    if joined.is_empty() {
        return "<unset>".to_string();
    }
    joined
}

/// `formatDiscoveryPorts`: port numbers, or names, or `*`.
pub(crate) fn discovery_ports(slice: &Value) -> String {
    let mut list = Vec::new();
    let mut more = false;
    let mut count = 0;
    for port in array_at(slice, "/ports") {
        if list.len() < 3 {
            let text = match (
                port.get("port").and_then(Value::as_i64),
                port.get("name").and_then(Value::as_str),
            ) {
                (Some(p), _) => p.to_string(),
                (None, Some(n)) => n.to_string(),
                (None, None) => "*".to_string(),
            };
            list.push(text);
        } else if list.len() == 3 {
            more = true;
        }
        count += 1;
    }
    list_with_more(&list, more, count)
}

/// `formatDiscoveryEndpoints`: the addresses of every endpoint.
pub(crate) fn discovery_endpoints(slice: &Value) -> String {
    let mut list = Vec::new();
    let mut more = false;
    let mut count = 0;
    for endpoint in array_at(slice, "/endpoints") {
        for address in array_at(endpoint, "/addresses") {
            if list.len() < 3 {
                list.push(address.as_str().unwrap_or("").to_string());
            } else if list.len() == 3 {
                more = true;
            }
            count += 1;
        }
    }
    list_with_more(&list, more, count)
}

pub(super) fn endpoint_slice_cells(slice: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        json!(name_of(slice)),
        json!(str_at(slice, "/addressType")),
        json!(discovery_ports(slice)),
        json!(discovery_endpoints(slice)),
        age_of(slice, now),
    ]
}

pub(super) const LEASE_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Holder",
        "holderIdentity contains the identity of the holder of a current lease. If Coordinated Leader Election is used, the holder identity must be equal to the elected LeaseCandidate.metadata.name field.",
    ),
    AGE,
];

pub(super) fn lease_cells(lease: &Value, now: Timestamp) -> Vec<Value> {
    let holder = lease
        .pointer("/spec/holderIdentity")
        .and_then(Value::as_str)
        .unwrap_or("<unknown>");
    vec![json!(name_of(lease)), json!(holder), age_of(lease, now)]
}

pub(super) const IP_ADDRESS_COLUMNS: &[Column] = &[
    NAME,
    col(
        "ParentRef",
        "ParentRef references the resource that an IPAddress is attached to. An IPAddress must reference a parent object.",
    ),
];

/// `printIPAddress`: `resource[.group]/[namespace/]name` of the parent, lower-cased group
/// resource, or `<none>`.
pub(super) fn ip_address_cells(ip: &Value, _now: Timestamp) -> Vec<Value> {
    let parent = match ip.pointer("/spec/parentRef").filter(|p| p.is_object()) {
        Some(p) => {
            let group = str_at(p, "/group");
            let resource = str_at(p, "/resource");
            let mut s = if group.is_empty() {
                resource.to_string()
            } else {
                format!("{resource}.{group}")
            }
            .to_lowercase();
            let ns = str_at(p, "/namespace");
            if !ns.is_empty() {
                s.push('/');
                s.push_str(ns);
            }
            s.push('/');
            s.push_str(str_at(p, "/name"));
            s
        }
        None => "<none>".to_string(),
    };
    vec![json!(name_of(ip)), json!(parent)]
}

pub(super) const SERVICE_CIDR_COLUMNS: &[Column] = &[
    NAME,
    col(
        "CIDRs",
        "CIDRs defines the IP blocks in CIDR notation (e.g. \"192.168.0.0/24\" or \"2001:db8::/64\") from which to assign service cluster IPs. Max of two CIDRs is allowed, one of each IP family. This field is immutable.",
    ),
    AGE,
];

pub(super) fn service_cidr_cells(cidr: &Value, now: Timestamp) -> Vec<Value> {
    let cidrs: Vec<&str> = array_at(cidr, "/spec/cidrs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    vec![
        json!(name_of(cidr)),
        json!(cidrs.join(",")),
        age_of(cidr, now),
    ]
}

pub(super) const WEBHOOK_COLUMNS: &[Column] = &[
    NAME,
    int_col(
        "Webhooks",
        "Webhooks indicates the number of webhooks registered in this configuration",
    ),
    AGE,
];

pub(super) fn webhook_cells(cfg: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        json!(name_of(cfg)),
        json!(array_at(cfg, "/webhooks").len()),
        age_of(cfg, now),
    ]
}

pub(super) const DEPLOYMENT_COLUMNS: &[Column] = &[
    NAME,
    col("Ready", "Number of the pod with ready state"),
    col(
        "Up-to-date",
        "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
    ),
    col(
        "Available",
        "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
    ),
    AGE,
    wide("Containers", "Names of each container in the template."),
    wide(
        "Images",
        "Images referenced by each container in the template.",
    ),
    wide(
        "Selector",
        "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.",
    ),
];

/// `metav1.LabelSelectorAsSelector(...).String()`.
pub(crate) fn format_label_selector(sel: Option<&Value>) -> String {
    let Some(sel) = sel.filter(|s| s.is_object()) else {
        return String::new();
    };
    let mut terms: Vec<(String, String)> = Vec::new();
    if let Some(m) = sel.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in m {
            terms.push((k.clone(), format!("{k}={}", v.as_str().unwrap_or(""))));
        }
    }
    for e in array_at(sel, "/matchExpressions") {
        let key = str_at(e, "/key").to_string();
        let mut values: Vec<&str> = array_at(e, "/values")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        values.sort_unstable();
        let text = match str_at(e, "/operator") {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.clone(),
            "DoesNotExist" => format!("!{key}"),
            _ => continue,
        };
        terms.push((key, text));
    }
    terms.sort();
    terms
        .into_iter()
        .map(|(_, t)| t)
        .collect::<Vec<_>>()
        .join(",")
}

pub(super) fn deployment_cells(d: &Value, now: Timestamp) -> Vec<Value> {
    let int = |p: &str| d.pointer(p).and_then(Value::as_i64).unwrap_or(0);
    let containers = array_at(d, "/spec/template/spec/containers");
    let names: Vec<&str> = containers.iter().map(|c| str_at(c, "/name")).collect();
    let images: Vec<&str> = containers.iter().map(|c| str_at(c, "/image")).collect();
    vec![
        json!(name_of(d)),
        json!(format!(
            "{}/{}",
            int("/status/readyReplicas"),
            int("/spec/replicas")
        )),
        json!(int("/status/updatedReplicas")),
        json!(int("/status/availableReplicas")),
        age_of(d, now),
        json!(names.join(",")),
        json!(images.join(",")),
        json!(format_label_selector(d.pointer("/spec/selector"))),
    ]
}

/// `replicaSetColumnDefinitions`, the columns of `kubectl get rs`.
pub(super) const REPLICA_SET_COLUMNS: &[Column] = &[
    NAME,
    int_col(
        "Desired",
        "Replicas is the number of desired pods. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicaset",
    ),
    int_col(
        "Current",
        "Replicas is the most recently observed number of non-terminating pods. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicaset",
    ),
    int_col(
        "Ready",
        "The number of non-terminating pods targeted by this ReplicaSet with a Ready Condition.",
    ),
    AGE,
    wide("Containers", "Names of each container in the template."),
    wide(
        "Images",
        "Images referenced by each container in the template.",
    ),
    wide(
        "Selector",
        "Selector is a label query over pods that should match the replica count. If the selector is empty, it is defaulted to the labels present on the pod template. Label keys and values that must match in order to be controlled by this replica set. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors",
    ),
];

/// `printReplicaSet`.
pub(super) fn replica_set_cells(rs: &Value, now: Timestamp) -> Vec<Value> {
    let int = |p: &str| rs.pointer(p).and_then(Value::as_i64).unwrap_or(0);
    let containers = array_at(rs, "/spec/template/spec/containers");
    let names: Vec<&str> = containers.iter().map(|c| str_at(c, "/name")).collect();
    let images: Vec<&str> = containers.iter().map(|c| str_at(c, "/image")).collect();
    vec![
        json!(name_of(rs)),
        json!(int("/spec/replicas")),
        json!(int("/status/replicas")),
        json!(int("/status/readyReplicas")),
        age_of(rs, now),
        json!(names.join(",")),
        json!(images.join(",")),
        json!(format_label_selector(rs.pointer("/spec/selector"))),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2026-01-01T00:00:05Z".parse().unwrap()
    }

    #[test]
    fn endpoint_slices_print_ports_and_addresses() {
        let slice = json!({"metadata": {"name": "web-abc12", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "addressType": "IPv4",
            "ports": [{"port": 8080, "name": "http"}, {"name": "metrics"}, {}, {"port": 1}],
            "endpoints": [{"addresses": ["10.1.0.1"]}, {"addresses": ["10.1.0.2"]}]});
        assert_eq!(
            endpoint_slice_cells(&slice, now()),
            vec![
                json!("web-abc12"),
                json!("IPv4"),
                json!("8080,metrics,* + 1 more..."),
                json!("10.1.0.1,10.1.0.2"),
                json!("5s")
            ]
        );
        let empty = json!({"metadata": {"name": "e"}, "addressType": "IPv6"});
        let cells = endpoint_slice_cells(&empty, now());
        assert_eq!(cells[2], json!("<unset>"));
        assert_eq!(cells[3], json!("<unset>"));
    }

    #[test]
    fn ip_addresses_name_their_parent() {
        let ip = json!({"metadata": {"name": "10.0.0.10"}, "spec": {"parentRef":
            {"group": "", "resource": "services", "namespace": "default", "name": "web"}}});
        assert_eq!(
            ip_address_cells(&ip, now()),
            vec![json!("10.0.0.10"), json!("services/default/web")]
        );
        let gw = json!({"metadata": {"name": "x"}, "spec": {"parentRef":
            {"group": "gateway.networking.k8s.io", "resource": "Gateways", "name": "gw"}}});
        assert_eq!(
            ip_address_cells(&gw, now())[1],
            json!("gateways.gateway.networking.k8s.io/gw")
        );
    }

    #[test]
    fn leases_cidrs_webhooks_and_deployments() {
        let lease = json!({"metadata": {"name": "l"}, "spec": {}});
        assert_eq!(lease_cells(&lease, now())[1], json!("<unknown>"));
        let cidr = json!({"metadata": {"name": "kubernetes"}, "spec": {"cidrs": ["10.0.0.0/16", "fd00::/108"]}});
        assert_eq!(
            service_cidr_cells(&cidr, now())[1],
            json!("10.0.0.0/16,fd00::/108")
        );
        let hooks = json!({"metadata": {"name": "h"}, "webhooks": [{}, {}]});
        assert_eq!(webhook_cells(&hooks, now())[1], json!(2));
        let d = json!({"metadata": {"name": "d"}, "spec": {"replicas": 3,
            "selector": {"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["b", "a"]}]},
            "template": {"spec": {"containers": [{"name": "c", "image": "nginx"}]}}},
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
        let cells = deployment_cells(&d, now());
        assert_eq!(cells[1], json!("2/3"));
        assert_eq!(cells[7], json!("app=web,tier in (a,b)"));
    }
}
