//! Printers of the core group: Service, Pod, Endpoints, Node, Namespace, ConfigMap, Secret,
//! ServiceAccount and Event (both APIs).

use jiff::Timestamp;
use serde_json::{Value, json};

use super::{
    AGE, Column, NAME, age_of, age_since, array_at, col, format_labels, name_of, object_len,
    str_at, timestamp, wide,
};

pub(super) const SERVICE_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Type",
        "type determines how the Service is exposed. Defaults to ClusterIP. Valid options are ExternalName, ClusterIP, NodePort, and LoadBalancer. \"ClusterIP\" allocates a cluster-internal IP address for load-balancing to endpoints. Endpoints are determined by the selector or if that is not specified, by manual construction of an Endpoints object or EndpointSlice objects. If clusterIP is \"None\", no virtual IP is allocated and the endpoints are published as a set of endpoints rather than a virtual IP. \"NodePort\" builds on ClusterIP and allocates a port on every node which routes to the same endpoints as the clusterIP. \"LoadBalancer\" builds on NodePort and creates an external load-balancer (if supported in the current cloud) which routes to the same endpoints as the clusterIP. \"ExternalName\" aliases this service to the specified externalName. Several other fields do not apply to ExternalName services. More info: https://kubernetes.io/docs/concepts/services-networking/service/#publishing-services-service-types",
    ),
    col(
        "Cluster-IP",
        "clusterIP is the IP address of the service and is usually assigned randomly. If an address is specified manually, is in-range (as per system configuration), and is not in use, it will be allocated to the service; otherwise creation of the service will fail. This field may not be changed through updates unless the type field is also being changed to ExternalName (which requires this field to be blank) or the type field is being changed from ExternalName (in which case this field may optionally be specified, as describe above).  Valid values are \"None\", empty string (\"\"), or a valid IP address. Setting this to \"None\" makes a \"headless service\" (no virtual IP), which is useful when direct endpoint connections are preferred and proxying is not required.  Only applies to types ClusterIP, NodePort, and LoadBalancer. If this field is specified when creating a Service of type ExternalName, creation will fail. This field will be wiped when updating a Service to type ExternalName. More info: https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies",
    ),
    col(
        "External-IP",
        "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.  These IPs are not managed by Kubernetes.  The user is responsible for ensuring that traffic arrives at a node with this IP.  A common example is external load-balancers that are not part of the Kubernetes system.",
    ),
    col(
        "Port(s)",
        "The list of ports that are exposed by this service. More info: https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies",
    ),
    AGE,
    wide(
        "Selector",
        "Route service traffic to pods with label keys and values matching this selector. If empty or not present, the service is assumed to have an external process managing its endpoints, which Kubernetes will not modify. Only applies to types ClusterIP, NodePort, and LoadBalancer. Ignored if type is ExternalName. More info: https://kubernetes.io/docs/concepts/services-networking/service/",
    ),
];

/// Width `loadBalancerStatusStringer` clips ingress lists to outside `-o wide`; the server
/// prints wide, so the clip never applies there.
fn load_balancer_ingress(svc: &Value) -> String {
    let mut seen: Vec<String> = array_at(svc, "/status/loadBalancer/ingress")
        .iter()
        .filter_map(|i| {
            let ip = str_at(i, "/ip");
            let host = str_at(i, "/hostname");
            if !ip.is_empty() {
                Some(ip.to_string())
            } else if !host.is_empty() {
                Some(host.to_string())
            } else {
                None
            }
        })
        .collect();
    seen.sort();
    seen.dedup();
    seen.join(",")
}

fn strings_at(obj: &Value, pointer: &str) -> Vec<String> {
    array_at(obj, pointer)
        .iter()
        .filter_map(|v| v.as_str().map(String::from))
        .collect()
}

fn service_external_ip(svc: &Value) -> String {
    let external_ips = strings_at(svc, "/spec/externalIPs");
    match str_at(svc, "/spec/type") {
        "ClusterIP" | "NodePort" => {
            if external_ips.is_empty() {
                "<none>".to_string()
            } else {
                external_ips.join(",")
            }
        }
        "LoadBalancer" => {
            let lb = load_balancer_ingress(svc);
            if !external_ips.is_empty() {
                let mut results: Vec<String> = if lb.is_empty() {
                    Vec::new()
                } else {
                    lb.split(',').map(String::from).collect()
                };
                results.extend(external_ips);
                return results.join(",");
            }
            if lb.is_empty() {
                "<pending>".to_string()
            } else {
                lb
            }
        }
        "ExternalName" => str_at(svc, "/spec/externalName").to_string(),
        _ => "<unknown>".to_string(),
    }
}

/// `makePortString`: `80/TCP`, `80:30007/TCP`, comma-joined.
pub(crate) fn service_ports(svc: &Value) -> String {
    array_at(svc, "/spec/ports")
        .iter()
        .map(|p| {
            let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
            let protocol = str_at(p, "/protocol");
            match p.get("nodePort").and_then(Value::as_i64) {
                Some(np) if np > 0 => format!("{port}:{np}/{protocol}"),
                _ => format!("{port}/{protocol}"),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

pub(super) fn service_cells(svc: &Value, now: Timestamp) -> Vec<Value> {
    let cluster_ip = array_at(svc, "/spec/clusterIPs")
        .first()
        .and_then(Value::as_str)
        .unwrap_or("<none>");
    let mut ports = service_ports(svc);
    if ports.is_empty() {
        ports = "<none>".to_string();
    }
    vec![
        json!(name_of(svc)),
        json!(str_at(svc, "/spec/type")),
        json!(cluster_ip),
        json!(service_external_ip(svc)),
        json!(ports),
        age_of(svc, now),
        json!(format_labels(svc.pointer("/spec/selector"))),
    ]
}

pub(super) const POD_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Ready",
        "The aggregate readiness state of this pod for accepting traffic.",
    ),
    col(
        "Status",
        "The aggregate status of the containers in this pod.",
    ),
    col(
        "Restarts",
        "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
    ),
    AGE,
    wide(
        "IP",
        "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.",
    ),
    wide(
        "Node",
        "NodeName indicates in which node this pod is scheduled. If empty, this pod is a candidate for scheduling by the scheduler defined in schedulerName. Once this field is set, the kubelet for this node becomes responsible for the lifecycle of this pod. This field should not be used to express a desire for the pod to be scheduled on a specific node. https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/#nodename",
    ),
    wide(
        "Nominated Node",
        "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods. This field does not guarantee that the pod will be scheduled on this node. Scheduler may decide to place the pod elsewhere if other nodes become available sooner. Scheduler may also decide to give the resources on this node to a higher priority pod that is created after preemption. As a result, this field may be different than PodSpec.nodeName when the pod is scheduled.",
    ),
    wide(
        "Readiness Gates",
        "If specified, all readiness gates will be evaluated for pod readiness. A pod is ready when all its containers are ready AND all conditions specified in the readiness gates have status equal to \"True\" More info: https://git.k8s.io/enhancements/keps/sig-network/580-pod-readiness-gates",
    ),
];

fn condition_true(conditions: &[Value], kind: &str) -> bool {
    conditions
        .iter()
        .any(|c| str_at(c, "/type") == kind && str_at(c, "/status") == "True")
}

fn later(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

fn restart_count(status: &Value) -> i64 {
    status
        .get("restartCount")
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

fn last_terminated_at(status: &Value) -> Option<Timestamp> {
    timestamp(status.pointer("/lastState/terminated/finishedAt"))
}

/// `printPod`: READY, STATUS and RESTARTS as kubelet-reported container states summarise them.
pub(super) fn pod_cells(pod: &Value, now: Timestamp) -> Vec<Value> {
    let init_specs = array_at(pod, "/spec/initContainers");
    let restartable = |name: &str| {
        init_specs
            .iter()
            .any(|c| str_at(c, "/name") == name && str_at(c, "/restartPolicy") == "Always")
    };
    let total = array_at(pod, "/spec/containers").len()
        + init_specs
            .iter()
            .filter(|c| str_at(c, "/restartPolicy") == "Always")
            .count();
    let mut ready = 0usize;
    let mut restarts: i64 = 0;
    let mut restartable_restarts: i64 = 0;
    let mut last_restart: Option<Timestamp> = None;
    let mut last_restartable_restart: Option<Timestamp> = None;
    let conditions = array_at(pod, "/status/conditions");

    let mut reason = str_at(pod, "/status/phase").to_string();
    let status_reason = str_at(pod, "/status/reason");
    if !status_reason.is_empty() {
        reason = status_reason.to_string();
    }
    if conditions
        .iter()
        .any(|c| str_at(c, "/type") == "PodScheduled" && str_at(c, "/reason") == "SchedulingGated")
    {
        reason = "SchedulingGated".to_string();
    }

    let mut initializing = false;
    for (i, cs) in array_at(pod, "/status/initContainerStatuses")
        .iter()
        .enumerate()
    {
        let name = str_at(cs, "/name");
        restarts += restart_count(cs);
        last_restart = later(last_restart, last_terminated_at(cs));
        if restartable(name) {
            restartable_restarts += restart_count(cs);
            last_restartable_restart = later(last_restartable_restart, last_terminated_at(cs));
        }
        let terminated = cs.pointer("/state/terminated");
        let exit_code = terminated
            .and_then(|t| t.get("exitCode"))
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if terminated.is_some() && exit_code == 0 {
            continue;
        }
        if restartable(name) && cs.get("started").and_then(Value::as_bool) == Some(true) {
            if cs.get("ready").and_then(Value::as_bool) == Some(true) {
                ready += 1;
            }
            continue;
        }
        let waiting_reason = str_at(cs, "/state/waiting/reason");
        if let Some(t) = terminated {
            let r = str_at(t, "/reason");
            let signal = t.get("signal").and_then(Value::as_i64).unwrap_or(0);
            reason = if !r.is_empty() {
                format!("Init:{r}")
            } else if signal != 0 {
                format!("Init:Signal:{signal}")
            } else {
                format!("Init:ExitCode:{exit_code}")
            };
        } else if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
            reason = format!("Init:{waiting_reason}");
        } else {
            reason = format!("Init:{i}/{}", init_specs.len());
        }
        initializing = true;
        break;
    }

    if !initializing || condition_true(conditions, "Initialized") {
        restarts = restartable_restarts;
        last_restart = last_restartable_restart;
        let mut has_running = false;
        for cs in array_at(pod, "/status/containerStatuses").iter().rev() {
            restarts += restart_count(cs);
            last_restart = later(last_restart, last_terminated_at(cs));
            let waiting = str_at(cs, "/state/waiting/reason");
            let terminated = cs.pointer("/state/terminated");
            let term_reason = terminated.map(|t| str_at(t, "/reason")).unwrap_or("");
            if !waiting.is_empty() {
                reason = waiting.to_string();
            } else if !term_reason.is_empty() {
                reason = term_reason.to_string();
            } else if let Some(t) = terminated {
                let signal = t.get("signal").and_then(Value::as_i64).unwrap_or(0);
                let code = t.get("exitCode").and_then(Value::as_i64).unwrap_or(0);
                reason = if signal != 0 {
                    format!("Signal:{signal}")
                } else {
                    format!("ExitCode:{code}")
                };
            } else if cs.get("ready").and_then(Value::as_bool) == Some(true)
                && cs.pointer("/state/running").is_some()
            {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if condition_true(conditions, "Ready") {
                "Running".to_string()
            } else {
                "NotReady".to_string()
            };
        }
    }

    if pod.pointer("/metadata/deletionTimestamp").is_some() {
        reason = if status_reason == "NodeLost" {
            "Unknown".to_string()
        } else {
            "Terminating".to_string()
        };
    }

    let restarts_cell = match last_restart {
        Some(t) if restarts != 0 => format!(
            "{restarts} ({} ago)",
            age_since(Some(&json!(t.to_string())), now)
        ),
        _ => restarts.to_string(),
    };

    let or_none = |s: &str| {
        if s.is_empty() {
            "<none>".to_string()
        } else {
            s.to_string()
        }
    };
    let pod_ip = array_at(pod, "/status/podIPs")
        .first()
        .map(|ip| str_at(ip, "/ip"))
        .unwrap_or("");
    let gates = array_at(pod, "/spec/readinessGates");
    let readiness_gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let true_count = gates
            .iter()
            .filter(|g| {
                let t = str_at(g, "/conditionType");
                conditions
                    .iter()
                    .find(|c| str_at(c, "/type") == t)
                    .is_some_and(|c| str_at(c, "/status") == "True")
            })
            .count();
        format!("{true_count}/{}", gates.len())
    };
    vec![
        json!(name_of(pod)),
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts_cell),
        age_of(pod, now),
        json!(or_none(pod_ip)),
        json!(or_none(str_at(pod, "/spec/nodeName"))),
        json!(or_none(str_at(pod, "/status/nominatedNodeName"))),
        json!(readiness_gates),
    ]
}

pub(super) const ENDPOINTS_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Endpoints",
        "The set of all endpoints is the union of all subsets. Addresses are placed into subsets according to the IPs they share. A single address with multiple ports, some of which are ready and some of which are not (because they come from different containers) will result in the address being displayed in different subsets for the different ports. No address will appear in both Addresses and NotReadyAddresses in the same subset. Sets of addresses and ports that comprise a service.",
    ),
    AGE,
];

/// `formatEndpoints(endpoints, nil)`: up to three `ip:port`, then `+ N more...`.
pub(crate) fn format_endpoints(ep: &Value) -> String {
    let subsets = array_at(ep, "/subsets");
    if subsets.is_empty() {
        return "<none>".to_string();
    }
    const MAX: usize = 3;
    let mut list: Vec<String> = Vec::new();
    let mut more = false;
    let mut count = 0usize;
    for ss in subsets {
        let addresses = array_at(ss, "/addresses");
        let ports = array_at(ss, "/ports");
        if ports.is_empty() {
            count += addresses.len();
            for a in addresses {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(str_at(a, "/ip").to_string());
            }
            continue;
        }
        for port in ports {
            count += addresses.len();
            let p = port.get("port").and_then(Value::as_i64).unwrap_or(0);
            for a in addresses {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(join_host_port(str_at(a, "/ip"), p));
            }
        }
    }
    let joined = list.join(",");
    if more {
        format!("{joined} + {} more...", count - MAX)
    } else {
        joined
    }
}

/// `net.JoinHostPort`: IPv6 hosts in brackets.
pub(crate) fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

pub(super) fn endpoints_cells(ep: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        json!(name_of(ep)),
        json!(format_endpoints(ep)),
        age_of(ep, now),
    ]
}

pub(super) const NODE_COLUMNS: &[Column] = &[
    NAME,
    col("Status", "The status of the node"),
    col("Roles", "The roles of the node"),
    AGE,
    col("Version", "Kubelet Version reported by the node."),
    wide(
        "Internal-IP",
        "List of addresses reachable to the node. Queried from cloud provider, if available. More info: https://kubernetes.io/docs/reference/node/node-status/#addresses Note: This field is declared as mergeable, but the merge key is not sufficiently unique, which can cause data corruption when it is merged. Callers should instead use a full-replacement patch. See https://pr.k8s.io/79391 for an example. Consumers should assume that addresses can change during the lifetime of a Node. However, there are some exceptions where this may not be possible, such as Pods that inherit a Node's address in its own status or consumers of the downward API (status.hostIP).",
    ),
    wide(
        "External-IP",
        "List of addresses reachable to the node. Queried from cloud provider, if available. More info: https://kubernetes.io/docs/reference/node/node-status/#addresses Note: This field is declared as mergeable, but the merge key is not sufficiently unique, which can cause data corruption when it is merged. Callers should instead use a full-replacement patch. See https://pr.k8s.io/79391 for an example. Consumers should assume that addresses can change during the lifetime of a Node. However, there are some exceptions where this may not be possible, such as Pods that inherit a Node's address in its own status or consumers of the downward API (status.hostIP).",
    ),
    wide(
        "OS-Image",
        "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).",
    ),
    wide(
        "Kernel-Version",
        "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).",
    ),
    wide(
        "Container-Runtime",
        "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).",
    ),
];

fn node_address(node: &Value, kind: &str) -> String {
    array_at(node, "/status/addresses")
        .iter()
        .find(|a| str_at(a, "/type") == kind)
        .map(|a| str_at(a, "/address").to_string())
        .unwrap_or_else(|| "<none>".to_string())
}

fn node_roles(node: &Value) -> String {
    let mut roles: Vec<String> = Vec::new();
    if let Some(labels) = node.pointer("/metadata/labels").and_then(Value::as_object) {
        for (k, v) in labels {
            if let Some(role) = k.strip_prefix("node-role.kubernetes.io/") {
                if !role.is_empty() {
                    roles.push(role.to_string());
                }
            } else if k == "kubernetes.io/role" {
                let v = v.as_str().unwrap_or("");
                if !v.is_empty() {
                    roles.push(v.to_string());
                }
            }
        }
    }
    roles.sort();
    roles.dedup();
    if roles.is_empty() {
        "<none>".to_string()
    } else {
        roles.join(",")
    }
}

pub(super) fn node_cells(node: &Value, now: Timestamp) -> Vec<Value> {
    let mut status: Vec<String> = Vec::new();
    if let Some(ready) = array_at(node, "/status/conditions")
        .iter()
        .rev()
        .find(|c| str_at(c, "/type") == "Ready")
    {
        status.push(if str_at(ready, "/status") == "True" {
            "Ready".to_string()
        } else {
            "NotReady".to_string()
        });
    }
    if status.is_empty() {
        status.push("Unknown".to_string());
    }
    if node.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        status.push("SchedulingDisabled".to_string());
    }
    let unknown = |p: &str| {
        let s = str_at(node, p);
        if s.is_empty() {
            "<unknown>".to_string()
        } else {
            s.to_string()
        }
    };
    vec![
        json!(name_of(node)),
        json!(status.join(",")),
        json!(node_roles(node)),
        age_of(node, now),
        json!(str_at(node, "/status/nodeInfo/kubeletVersion")),
        json!(node_address(node, "InternalIP")),
        json!(node_address(node, "ExternalIP")),
        json!(unknown("/status/nodeInfo/osImage")),
        json!(unknown("/status/nodeInfo/kernelVersion")),
        json!(unknown("/status/nodeInfo/containerRuntimeVersion")),
    ]
}

pub(super) const NAMESPACE_COLUMNS: &[Column] =
    &[NAME, col("Status", "The status of the namespace"), AGE];

pub(super) fn namespace_cells(ns: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        json!(name_of(ns)),
        json!(str_at(ns, "/status/phase")),
        age_of(ns, now),
    ]
}

pub(super) const CONFIGMAP_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Data",
        "Data contains the configuration data. Each key must consist of alphanumeric characters, '-', '_' or '.'. Values with non-UTF-8 byte sequences must use the BinaryData field. The keys stored in Data must not overlap with the keys in the BinaryData field, this is enforced during validation process.",
    ),
    AGE,
];

pub(super) fn configmap_cells(cm: &Value, now: Timestamp) -> Vec<Value> {
    let n = object_len(cm, "/data") + object_len(cm, "/binaryData");
    vec![json!(name_of(cm)), json!(n), age_of(cm, now)]
}

pub(super) const SECRET_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Type",
        "Used to facilitate programmatic handling of secret data. More info: https://kubernetes.io/docs/concepts/configuration/secret/#secret-types",
    ),
    col(
        "Data",
        "Data contains the secret data. Each key must consist of alphanumeric characters, '-', '_' or '.'. The serialized form of the secret data is a base64 encoded string, representing the arbitrary (possibly non-string) data value here. Described in https://tools.ietf.org/html/rfc4648#section-4",
    ),
    AGE,
];

pub(super) fn secret_cells(s: &Value, now: Timestamp) -> Vec<Value> {
    let data = object_len(s, "/data") + object_len(s, "/stringData");
    vec![
        json!(name_of(s)),
        json!(str_at(s, "/type")),
        json!(data),
        age_of(s, now),
    ]
}

pub(super) const SERVICE_ACCOUNT_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Secrets",
        "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use. Pods are only limited to this list if this service account has a \"kubernetes.io/enforce-mountable-secrets\" annotation set to \"true\". The \"kubernetes.io/enforce-mountable-secrets\" annotation is deprecated since v1.32. Prefer separate namespaces to isolate access to mounted secrets. This field should not be used to find auto-generated service account token secrets for use outside of pods. Instead, tokens can be requested directly using the TokenRequest API, or service account token secrets can be manually created. More info: https://kubernetes.io/docs/concepts/configuration/secret",
    ),
    AGE,
];

pub(super) fn service_account_cells(sa: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        json!(name_of(sa)),
        json!(array_at(sa, "/secrets").len()),
        age_of(sa, now),
    ]
}

pub(super) const EVENT_COLUMNS: &[Column] = &[
    col(
        "Last Seen",
        "The time at which the most recent occurrence of this event was recorded.",
    ),
    col(
        "Type",
        "Type of this event (Normal, Warning), new types could be added in the future",
    ),
    col(
        "Reason",
        "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.",
    ),
    col("Object", "The object that this event is about."),
    wide(
        "Subobject",
        "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2]. For example, if the object reference is to a container within a pod, this would take on a value like: \"spec.containers{name}\" (where \"name\" refers to the name of the container that triggered the event) or if no container name is specified \"spec.containers[2]\" (container with index 2 in this pod). This syntax is chosen only to have some well-defined way of referencing a part of an object.",
    ),
    wide(
        "Source",
        "The component reporting this event. Should be a short machine understandable string.",
    ),
    col(
        "Message",
        "A human-readable description of the status of this operation.",
    ),
    wide(
        "First Seen",
        "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)",
    ),
    wide("Count", "The number of times this event has occurred."),
    Column {
        name: "Name",
        kind: "string",
        format: "name",
        description: super::NAME_DOC,
        priority: 1,
    },
];

/// The fields of `printEvent`, read from either Event API.
struct EventView<'a> {
    first: Option<&'a Value>,
    last: Option<&'a Value>,
    event_time: Option<&'a Value>,
    series_last: Option<&'a Value>,
    series_count: Option<i64>,
    count: i64,
    kind: &'a str,
    object_name: &'a str,
    field_path: &'a str,
    component: &'a str,
    host: &'a str,
    reporting_controller: &'a str,
    reporting_instance: &'a str,
    event_type: &'a str,
    reason: &'a str,
    message: &'a str,
}

fn non_null(v: Option<&Value>) -> Option<&Value> {
    v.filter(|x| !x.is_null())
}

fn print_event(e: &EventView<'_>, name: &str, now: Timestamp) -> Vec<Value> {
    let mut first = age_since(non_null(e.first), now);
    if timestamp(non_null(e.first)).is_none() {
        first = age_since(non_null(e.event_time), now);
    }
    let mut last = age_since(non_null(e.last), now);
    if timestamp(non_null(e.last)).is_none() {
        last = first.clone();
    }
    let mut count = e.count;
    if let Some(sc) = e.series_count {
        last = age_since(non_null(e.series_last), now);
        count = sc;
    } else if count == 0 {
        count = 1;
    }
    let target = if e.object_name.is_empty() {
        e.kind.to_ascii_lowercase()
    } else {
        format!("{}/{}", e.kind.to_ascii_lowercase(), e.object_name)
    };
    let component = if e.component.is_empty() {
        e.reporting_controller
    } else {
        e.component
    };
    let instance = if e.host.is_empty() {
        e.reporting_instance
    } else {
        e.host
    };
    let source = if instance.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {instance}")
    };
    vec![
        json!(last),
        json!(e.event_type),
        json!(e.reason),
        json!(target),
        json!(e.field_path),
        json!(source),
        json!(e.message.trim()),
        json!(first),
        json!(count),
        json!(name),
    ]
}

pub(super) fn event_cells(ev: &Value, now: Timestamp) -> Vec<Value> {
    let view = EventView {
        first: ev.get("firstTimestamp"),
        last: ev.get("lastTimestamp"),
        event_time: ev.get("eventTime"),
        series_last: ev.pointer("/series/lastObservedTime"),
        series_count: non_null(ev.get("series"))
            .map(|s| s.get("count").and_then(Value::as_i64).unwrap_or(0)),
        count: ev.get("count").and_then(Value::as_i64).unwrap_or(0),
        kind: str_at(ev, "/involvedObject/kind"),
        object_name: str_at(ev, "/involvedObject/name"),
        field_path: str_at(ev, "/involvedObject/fieldPath"),
        component: str_at(ev, "/source/component"),
        host: str_at(ev, "/source/host"),
        reporting_controller: str_at(ev, "/reportingComponent"),
        reporting_instance: str_at(ev, "/reportingInstance"),
        event_type: str_at(ev, "/type"),
        reason: str_at(ev, "/reason"),
        message: str_at(ev, "/message"),
    };
    print_event(&view, name_of(ev), now)
}

/// events.k8s.io/v1 Events print through the core printer after conversion (regarding →
/// involvedObject, note → message, deprecated* → the legacy fields).
pub(super) fn events_v1_cells(ev: &Value, now: Timestamp) -> Vec<Value> {
    let view = EventView {
        first: ev.get("deprecatedFirstTimestamp"),
        last: ev.get("deprecatedLastTimestamp"),
        event_time: ev.get("eventTime"),
        series_last: ev.pointer("/series/lastObservedTime"),
        series_count: non_null(ev.get("series"))
            .map(|s| s.get("count").and_then(Value::as_i64).unwrap_or(0)),
        count: ev
            .get("deprecatedCount")
            .and_then(Value::as_i64)
            .unwrap_or(0),
        kind: str_at(ev, "/regarding/kind"),
        object_name: str_at(ev, "/regarding/name"),
        field_path: str_at(ev, "/regarding/fieldPath"),
        component: str_at(ev, "/deprecatedSource/component"),
        host: str_at(ev, "/deprecatedSource/host"),
        reporting_controller: str_at(ev, "/reportingController"),
        reporting_instance: str_at(ev, "/reportingInstance"),
        event_type: str_at(ev, "/type"),
        reason: str_at(ev, "/reason"),
        message: str_at(ev, "/note"),
    };
    print_event(&view, name_of(ev), now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2026-01-01T00:03:02Z".parse().unwrap()
    }

    const CREATED: &str = "2026-01-01T00:00:00Z";

    #[test]
    fn service_rows_follow_print_service() {
        let svc = json!({"metadata": {"name": "web", "creationTimestamp": CREATED},
            "spec": {"type": "NodePort", "clusterIPs": ["10.0.0.10"], "selector": {"app": "web"},
                "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30007}, {"port": 53, "protocol": "UDP"}]}});
        assert_eq!(
            service_cells(&svc, now()),
            vec![
                json!("web"),
                json!("NodePort"),
                json!("10.0.0.10"),
                json!("<none>"),
                json!("80:30007/TCP,53/UDP"),
                json!("3m2s"),
                json!("app=web")
            ]
        );
        let lb = json!({"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer", "ports": []}});
        let cells = service_cells(&lb, now());
        assert_eq!(cells[2], json!("<none>"));
        assert_eq!(cells[3], json!("<pending>"));
        assert_eq!(cells[4], json!("<none>"));
        assert_eq!(cells[5], json!("<unknown>"));
        assert_eq!(cells[6], json!("<none>"));
        let ext = json!({"metadata": {"name": "x"}, "spec": {"type": "ExternalName", "externalName": "example.com"}});
        assert_eq!(service_cells(&ext, now())[3], json!("example.com"));
    }

    #[test]
    fn pod_rows_summarise_container_states() {
        let pod = json!({"metadata": {"name": "p", "creationTimestamp": CREATED},
        "spec": {"nodeName": "n1", "containers": [{"name": "a"}, {"name": "b"}]},
        "status": {"phase": "Running", "podIPs": [{"ip": "10.1.0.5"}],
            "conditions": [{"type": "Ready", "status": "False"}],
            "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 0, "state": {"running": {}}},
                {"name": "b", "ready": false, "restartCount": 2, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                 "lastState": {"terminated": {"finishedAt": "2026-01-01T00:02:00Z", "exitCode": 1}}}
            ]}});
        assert_eq!(
            pod_cells(&pod, now()),
            vec![
                json!("p"),
                json!("1/2"),
                json!("CrashLoopBackOff"),
                json!("2 (62s ago)"),
                json!("3m2s"),
                json!("10.1.0.5"),
                json!("n1"),
                json!("<none>"),
                json!("<none>")
            ]
        );
        let pending = json!({"metadata": {"name": "q", "deletionTimestamp": CREATED},
            "spec": {"containers": [{"name": "a"}]}, "status": {"phase": "Pending"}});
        let cells = pod_cells(&pending, now());
        assert_eq!(cells[1], json!("0/1"));
        assert_eq!(cells[2], json!("Terminating"));
        assert_eq!(cells[3], json!("0"));
        let init = json!({"metadata": {"name": "i"},
            "spec": {"initContainers": [{"name": "x"}, {"name": "y"}], "containers": [{"name": "a"}]},
            "status": {"phase": "Pending", "initContainerStatuses": [
                {"name": "x", "state": {"terminated": {"exitCode": 0}}},
                {"name": "y", "state": {"running": {}}}]}});
        assert_eq!(pod_cells(&init, now())[2], json!("Init:1/2"));
    }

    #[test]
    fn endpoints_list_three_then_more() {
        let ep = json!({"metadata": {"name": "web"}, "subsets": [{
            "addresses": [{"ip": "10.1.0.1"}, {"ip": "10.1.0.2"}, {"ip": "fd00::3"}, {"ip": "10.1.0.4"}],
            "ports": [{"port": 8080}]}]});
        assert_eq!(
            format_endpoints(&ep),
            "10.1.0.1:8080,10.1.0.2:8080,[fd00::3]:8080 + 1 more..."
        );
        assert_eq!(format_endpoints(&json!({"subsets": []})), "<none>");
    }

    #[test]
    fn nodes_show_readiness_and_roles() {
        let node = json!({"metadata": {"name": "n1", "creationTimestamp": CREATED,
                "labels": {"node-role.kubernetes.io/control-plane": "", "kubernetes.io/role": "worker"}},
            "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                "nodeInfo": {"kubeletVersion": "v1.34.0"},
                "addresses": [{"type": "InternalIP", "address": "192.0.2.1"}]}});
        let cells = node_cells(&node, now());
        assert_eq!(cells[1], json!("Ready,SchedulingDisabled"));
        assert_eq!(cells[2], json!("control-plane,worker"));
        assert_eq!(cells[4], json!("v1.34.0"));
        assert_eq!(cells[5], json!("192.0.2.1"));
        assert_eq!(cells[6], json!("<none>"));
        assert_eq!(cells[7], json!("<unknown>"));
    }

    #[test]
    fn events_print_target_and_counts() {
        let ev = json!({"metadata": {"name": "web.1"},
            "involvedObject": {"kind": "Service", "name": "web"},
            "reason": "Created", "type": "Normal", "message": " hello ",
            "firstTimestamp": CREATED, "lastTimestamp": "2026-01-01T00:03:00Z",
            "source": {"component": "svcplane"}});
        let cells = event_cells(&ev, now());
        assert_eq!(cells[0], json!("2s"));
        assert_eq!(cells[3], json!("service/web"));
        assert_eq!(cells[5], json!("svcplane"));
        assert_eq!(cells[6], json!("hello"));
        assert_eq!(cells[8], json!(1));
        let v1 = json!({"metadata": {"name": "e"}, "regarding": {"kind": "Pod", "name": "p"},
            "note": "n", "eventTime": "2026-01-01T00:03:00.000000Z", "reportingController": "ctl",
            "reportingInstance": "i-1", "series": {"count": 4, "lastObservedTime": "2026-01-01T00:03:01.000000Z"}});
        let cells = events_v1_cells(&v1, now());
        assert_eq!(cells[0], json!("1s"));
        assert_eq!(cells[3], json!("pod/p"));
        assert_eq!(cells[5], json!("ctl, i-1"));
        assert_eq!(cells[7], json!("2s"));
        assert_eq!(cells[8], json!(4));
    }
}
