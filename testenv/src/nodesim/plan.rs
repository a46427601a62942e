//! The simulated kubelet's and scheduler's decisions as plain functions of a compact view of a
//! pod: which node to bind to, which status to write, when a terminating pod may go.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

use super::config::{Scheduling, SimNode};

/// `"false"` keeps the pod's containers unready; any other value (or none) lets them turn ready.
pub const READY_ANNOTATION: &str = "testenv.svcplane.io/ready";
/// Seconds a running pod stays unready before turning Ready (overrides the configured delay).
pub const READY_DELAY_ANNOTATION: &str = "testenv.svcplane.io/ready-delay-seconds";
/// Seconds the simulated kubelet lets a deleted pod terminate, when shorter than its grace period.
pub const TERMINATION_ANNOTATION: &str = "testenv.svcplane.io/termination-seconds";

const SCHEDULER_NAME: &str = "default-scheduler";

/// What the simulator keeps of a pod: a few hundred bytes instead of the whole object.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodView {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// metadata.uid.
    pub uid: String,
    /// metadata.resourceVersion.
    pub resource_version: String,
    /// spec.nodeName.
    pub node_name: Option<String>,
    /// Whether the default scheduler (us) should place it.
    pub ours_to_schedule: bool,
    /// spec.nodeSelector.
    pub node_selector: BTreeMap<String, String>,
    /// Container names and images, in spec order.
    pub containers: Vec<(String, String)>,
    /// `testenv.svcplane.io/ready: "false"`.
    pub held_unready: bool,
    /// Some container declares a `readinessProbe`.
    pub has_readiness_probe: bool,
    /// `testenv.svcplane.io/ready-delay-seconds`.
    pub ready_delay: Option<Duration>,
    /// `testenv.svcplane.io/termination-seconds`.
    pub termination_seconds: Option<i64>,
    /// metadata.deletionTimestamp and deletionGracePeriodSeconds.
    pub deletion: Option<(Timestamp, i64)>,
    /// What the pod's status says now.
    pub status: ObservedStatus,
}

/// The parts of a pod's status the kubelet owns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObservedStatus {
    /// status.phase.
    pub phase: Option<String>,
    /// status.podIPs (or podIP).
    pub pod_ips: Vec<String>,
    /// status.hostIPs (or hostIP).
    pub host_ips: Vec<String>,
    /// status.startTime.
    pub start_time: Option<Timestamp>,
    /// Conditions: type → (status is "True", lastTransitionTime).
    pub conditions: BTreeMap<String, (bool, Option<Timestamp>)>,
    /// Container statuses: name → (ready, running).
    pub containers: BTreeMap<String, (bool, bool)>,
}

impl ObservedStatus {
    /// Whether the pod has finished (the kubelet leaves such pods alone).
    pub fn terminal(&self) -> bool {
        matches!(self.phase.as_deref(), Some("Succeeded" | "Failed"))
    }
}

impl PodView {
    /// Extracts the view from a pod.
    pub fn from_pod(pod: &Pod) -> Self {
        let meta = &pod.metadata;
        let spec = pod.spec.as_ref();
        let annotation = |k: &str| meta.annotations.as_ref().and_then(|a| a.get(k));
        let status = pod.status.as_ref();
        let mut observed = ObservedStatus::default();
        if let Some(s) = status {
            observed.phase = s.phase.clone();
            observed.pod_ips = match &s.pod_ips {
                Some(ips) if !ips.is_empty() => ips.iter().map(|i| i.ip.clone()).collect(),
                _ => s.pod_ip.iter().cloned().collect(),
            };
            observed.host_ips = match &s.host_ips {
                Some(ips) if !ips.is_empty() => ips.iter().map(|i| i.ip.clone()).collect(),
                _ => s.host_ip.iter().cloned().collect(),
            };
            observed.start_time = s.start_time.as_ref().map(|t| t.0);
            for c in s.conditions.iter().flatten() {
                observed.conditions.insert(
                    c.type_.clone(),
                    (
                        c.status == "True",
                        c.last_transition_time.as_ref().map(|t| t.0),
                    ),
                );
            }
            for c in s.container_statuses.iter().flatten() {
                let running = c.state.as_ref().is_some_and(|st| st.running.is_some());
                observed
                    .containers
                    .insert(c.name.clone(), (c.ready, running));
            }
        }
        Self {
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            uid: meta.uid.clone().unwrap_or_default(),
            resource_version: meta.resource_version.clone().unwrap_or_default(),
            node_name: spec
                .and_then(|s| s.node_name.clone())
                .filter(|n| !n.is_empty()),
            ours_to_schedule: spec
                .and_then(|s| s.scheduler_name.as_deref())
                .is_none_or(|n| n.is_empty() || n == SCHEDULER_NAME),
            node_selector: spec
                .and_then(|s| s.node_selector.clone())
                .unwrap_or_default(),
            containers: spec
                .map(|s| {
                    s.containers
                        .iter()
                        .map(|c| (c.name.clone(), c.image.clone().unwrap_or_default()))
                        .collect()
                })
                .unwrap_or_default(),
            held_unready: annotation(READY_ANNOTATION).is_some_and(|v| v == "false"),
            has_readiness_probe: spec
                .is_some_and(|s| s.containers.iter().any(|c| c.readiness_probe.is_some())),
            ready_delay: annotation(READY_DELAY_ANNOTATION)
                .and_then(|v| v.parse::<f64>().ok())
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(Duration::from_secs_f64),
            termination_seconds: annotation(TERMINATION_ANNOTATION)
                .and_then(|v| v.parse::<i64>().ok())
                .filter(|s| *s >= 0),
            deletion: meta
                .deletion_timestamp
                .as_ref()
                .map(|t| (t.0, meta.deletion_grace_period_seconds.unwrap_or(0).max(0))),
            status: observed,
        }
    }

    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// How long the kubelet lets this deleted pod terminate.
    pub fn termination_period(&self) -> Option<Duration> {
        let (_, grace) = self.deletion?;
        let secs = match self.termination_seconds {
            Some(t) => t.min(grace),
            None => grace,
        };
        Some(Duration::from_secs(secs.max(0) as u64))
    }
}

/// A node as the scheduler sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate<'a> {
    /// The node's labels (from the API, so users can relabel).
    pub labels: &'a BTreeMap<String, String>,
    /// Ready, not cordoned, and simulated by us.
    pub schedulable: bool,
    /// Pods bound to it (including ones whose binding is in flight).
    pub pods: u32,
    /// How many pods it can take (allocatable pods, capped by its pod CIDR).
    pub capacity: u32,
}

/// Picks a node for `pod` among `nodes` (indices are configuration order), or `None` if none
/// fits. `cursor` is the round-robin position, advanced past the chosen node.
pub fn pick_node(
    pod: &PodView,
    nodes: &[Candidate<'_>],
    policy: Scheduling,
    cursor: &mut usize,
) -> Option<usize> {
    let fits = |c: &Candidate<'_>| {
        c.schedulable
            && c.pods < c.capacity
            && pod
                .node_selector
                .iter()
                .all(|(k, v)| c.labels.get(k) == Some(v))
    };
    match policy {
        Scheduling::LeastLoaded => nodes
            .iter()
            .enumerate()
            .filter(|(_, c)| fits(c))
            .min_by_key(|(i, c)| (c.pods, *i))
            .map(|(i, _)| i),
        Scheduling::RoundRobin => {
            let n = nodes.len();
            let chosen = (0..n)
                .map(|k| (*cursor + k) % n)
                .find(|&i| fits(&nodes[i]))?;
            *cursor = (chosen + 1) % n;
            Some(chosen)
        }
    }
}

/// The Binding that places a pod on `node` (`POST pods/{name}/binding`), as kube-scheduler sends
/// it: guarded by the pod's uid, so a pod deleted and created again under the same name is not
/// bound by a decision made for the old one. kube-apiserver refuses to set `spec.nodeName` by an
/// update or a patch.
pub fn binding(pod: &PodView, node: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": pod.name, "namespace": pod.namespace, "uid": pod.uid},
        "target": {"kind": "Node", "name": node},
    })
}

fn rfc3339(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The status the kubelet reports for a running pod, or `None` when the pod already reports it.
/// Transition times are kept for conditions whose status does not change.
pub fn desired_status(
    pod: &PodView,
    node: &SimNode,
    pod_ips: &[IpAddr],
    ready: bool,
    now: Timestamp,
) -> Option<Value> {
    let ips: Vec<String> = pod_ips.iter().map(ToString::to_string).collect();
    let host_ips: Vec<String> = node.internal_ips.iter().map(ToString::to_string).collect();
    let mut names: Vec<&str> = pod.containers.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    let conditions = [
        ("PodReadyToStartContainers", true),
        ("Initialized", true),
        ("Ready", ready),
        ("ContainersReady", ready),
        ("PodScheduled", true),
    ];
    let s = &pod.status;
    let up_to_date = s.phase.as_deref() == Some("Running")
        && s.pod_ips == ips
        && s.host_ips == host_ips
        && s.start_time.is_some()
        && conditions
            .iter()
            .all(|(t, want)| s.conditions.get(*t).is_some_and(|(have, _)| have == want))
        && s.containers.len() == names.len()
        && names
            .iter()
            .all(|n| s.containers.get(*n) == Some(&(ready, true)));
    if up_to_date {
        return None;
    }
    let start = s.start_time.unwrap_or(now);
    // Spec order, as the kubelet lists unready containers.
    let spec_order: Vec<&str> = pod.containers.iter().map(|(n, _)| n.as_str()).collect();
    let unready_message = format!("containers with unready status: [{}]", spec_order.join(" "));
    let conditions: Vec<Value> = conditions
        .iter()
        .map(|&(type_, status)| {
            let since = match s.conditions.get(type_) {
                Some((have, Some(t))) if *have == status => *t,
                _ => now,
            };
            let mut c = json!({
                "type": type_,
                "status": if status { "True" } else { "False" },
                "lastProbeTime": null,
                "lastTransitionTime": rfc3339(since),
            });
            if !status {
                c["reason"] = json!("ContainersNotReady");
                c["message"] = json!(unready_message);
            }
            c
        })
        .collect();
    let mut containers: Vec<&(String, String)> = pod.containers.iter().collect();
    containers.sort_by(|a, b| a.0.cmp(&b.0));
    let uid_hex: String = pod.uid.chars().filter(char::is_ascii_hexdigit).collect();
    let container_statuses: Vec<Value> = containers
        .iter()
        .enumerate()
        .map(|(i, (name, image))| {
            json!({
                "name": name,
                "image": image,
                "imageID": "",
                "containerID": format!("containerd://{uid_hex}{i:032x}"),
                "ready": ready,
                "started": true,
                "restartCount": 0,
                "state": {"running": {"startedAt": rfc3339(start)}},
            })
        })
        .collect();
    Some(json!({
        "status": {
            "phase": "Running",
            "conditions": conditions,
            "hostIP": host_ips.first(),
            "hostIPs": host_ips.iter().map(|ip| json!({"ip": ip})).collect::<Vec<_>>(),
            "podIP": ips.first(),
            "podIPs": ips.iter().map(|ip| json!({"ip": ip})).collect::<Vec<_>>(),
            "startTime": rfc3339(start),
            "containerStatuses": container_statuses,
        }
    }))
}

/// The core/v1 Event the default scheduler records when it binds `pod` to `node` (k/k
/// `schedule_one.go`: reason `Scheduled`, action `Binding`), in the form kube-apiserver stores it.
pub fn scheduled_event(pod: &PodView, node: &str, now: Timestamp) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": event_name(pod, now, 0), "namespace": pod.namespace},
        "involvedObject": pod_reference(pod, None),
        "reason": "Scheduled",
        "message": format!("Successfully assigned {}/{} to {node}", pod.namespace, pod.name),
        "type": "Normal",
        "eventTime": now.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
        "action": "Binding",
        "reportingComponent": SCHEDULER_NAME,
        "reportingInstance": SCHEDULER_NAME,
    })
}

/// The core/v1 Events a kubelet records as it starts each container of `pod` on `node`, in order:
/// the image is already on the (simulated) machine, then `Created` and `Started` (k/k
/// `images/image_manager.go`, `kuberuntime/kuberuntime_container.go`).
pub fn container_start_events(pod: &PodView, node: &str, now: Timestamp) -> Vec<Value> {
    let seconds = now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let mut events = Vec::new();
    for (name, image) in &pod.containers {
        let steps = [
            (
                "Pulled",
                format!(
                    "Container image {} already present on machine",
                    crate::meta::go_quote(image)
                ),
            ),
            ("Created", format!("Created container: {name}")),
            ("Started", format!("Started container {name}")),
        ];
        for (reason, message) in steps {
            events.push(json!({
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {
                    "name": event_name(pod, now, events.len()),
                    "namespace": pod.namespace,
                },
                "involvedObject": pod_reference(pod, Some(name)),
                "reason": reason,
                "message": message,
                "source": {"component": "kubelet", "host": node},
                "firstTimestamp": seconds,
                "lastTimestamp": seconds,
                "count": 1,
                "type": "Normal",
                "reportingComponent": "kubelet",
                "reportingInstance": node,
            }));
        }
    }
    events
}

/// client-go's recorder names an Event after its object and the time in hex nanoseconds; `nth`
/// keeps the names of events recorded in one step apart.
fn event_name(pod: &PodView, now: Timestamp, nth: usize) -> String {
    let nanos = now.as_nanosecond().unsigned_abs() + nth as u128;
    format!("{}.{nanos:x}", pod.name)
}

/// The reference an Event keeps to a pod, or to one of its containers (`GenerateContainerRef`).
fn pod_reference(pod: &PodView, container: Option<&str>) -> Value {
    let mut reference = json!({
        "kind": "Pod",
        "namespace": pod.namespace,
        "name": pod.name,
        "uid": pod.uid,
        "apiVersion": "v1",
        "resourceVersion": pod.resource_version,
    });
    if let Some(container) = container {
        reference["fieldPath"] = json!(format!("spec.containers{{{container}}}"));
    }
    reference
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nodesim::config::NodeSimConfig;

    fn pod(annotations: Value, status: Value) -> PodView {
        let p: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web-0", "namespace": "default", "uid": "0a1b2c3d-0000-4000-8000-000000000001",
                "resourceVersion": "7", "annotations": annotations},
            "spec": {"containers": [{"name": "web", "image": "nginx"}, {"name": "app", "image": "busybox"}],
                "nodeName": "node-1", "schedulerName": "default-scheduler"},
            "status": status,
        }))
        .unwrap();
        PodView::from_pod(&p)
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_new_pod_gets_running_ready_status_and_then_nothing_more() {
        let node = &NodeSimConfig::default().nodes[0];
        let v = pod(json!({}), json!({"phase": "Pending"}));
        let now = ts("2025-01-02T03:04:05Z");
        let ip: IpAddr = "10.244.1.2".parse().unwrap();
        let patch = desired_status(&v, node, &[ip], true, now).unwrap();
        let s = &patch["status"];
        assert_eq!(s["phase"], "Running");
        assert_eq!(s["podIP"], "10.244.1.2");
        assert_eq!(s["podIPs"], json!([{"ip": "10.244.1.2"}]));
        assert_eq!(s["hostIP"], "172.18.0.2");
        assert_eq!(
            s["conditions"][2],
            json!({"type": "Ready", "status": "True",
            "lastProbeTime": null, "lastTransitionTime": "2025-01-02T03:04:05Z"})
        );
        assert_eq!(s["containerStatuses"][0]["name"], "app");
        assert_eq!(
            s["containerStatuses"][1]["state"]["running"]["startedAt"],
            "2025-01-02T03:04:05Z"
        );

        let mut p: Pod = serde_json::from_value(json!({"metadata": {"name": "web-0", "namespace": "default",
            "uid": "0a1b2c3d-0000-4000-8000-000000000001"},
            "spec": {"containers": [{"name": "web", "image": "nginx"}, {"name": "app", "image": "busybox"}]}})).unwrap();
        p.status = serde_json::from_value(s.clone()).unwrap();
        let applied = PodView::from_pod(&p);
        assert_eq!(desired_status(&applied, node, &[ip], true, now), None);

        // Turning unready changes Ready and ContainersReady only, with upstream's reason.
        let later = ts("2025-01-02T03:05:00Z");
        let patch = desired_status(&applied, node, &[ip], false, later).unwrap();
        let c = &patch["status"]["conditions"];
        assert_eq!(c[1]["lastTransitionTime"], "2025-01-02T03:04:05Z");
        assert_eq!(c[2]["status"], "False");
        assert_eq!(c[2]["lastTransitionTime"], "2025-01-02T03:05:00Z");
        assert_eq!(c[3]["reason"], "ContainersNotReady");
        assert_eq!(c[3]["message"], "containers with unready status: [web app]");
        assert_eq!(patch["status"]["startTime"], "2025-01-02T03:04:05Z");
    }

    #[test]
    fn annotations_are_read() {
        let v = pod(
            json!({READY_ANNOTATION: "false", READY_DELAY_ANNOTATION: "1.5", TERMINATION_ANNOTATION: "2"}),
            json!({}),
        );
        assert!(v.held_unready);
        assert_eq!(v.ready_delay, Some(Duration::from_millis(1500)));
        assert_eq!(v.termination_seconds, Some(2));
        assert!(!pod(json!({READY_ANNOTATION: "true"}), json!({})).held_unready);
        assert!(!v.has_readiness_probe);
    }

    #[test]
    fn a_readiness_probe_is_noticed() {
        let p: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web-0", "namespace": "default"},
            "spec": {"containers": [{"name": "web", "image": "nginx"},
                {"name": "app", "image": "busybox", "readinessProbe": {"tcpSocket": {"port": 80}}}]},
        }))
        .unwrap();
        assert!(PodView::from_pod(&p).has_readiness_probe);
    }

    #[test]
    fn termination_period_is_the_shorter_of_grace_and_annotation() {
        let mut v = pod(json!({TERMINATION_ANNOTATION: "1"}), json!({}));
        assert_eq!(v.termination_period(), None);
        v.deletion = Some((ts("2025-01-01T00:00:30Z"), 30));
        assert_eq!(v.termination_period(), Some(Duration::from_secs(1)));
        v.termination_seconds = None;
        assert_eq!(v.termination_period(), Some(Duration::from_secs(30)));
    }

    #[test]
    fn scheduling_policies() {
        let labels: Vec<BTreeMap<String, String>> = ["zone-a", "zone-b", "zone-c"]
            .iter()
            .map(|z| BTreeMap::from([("zone".to_string(), z.to_string())]))
            .collect();
        let mut nodes: Vec<Candidate<'_>> = labels
            .iter()
            .map(|l| Candidate {
                labels: l,
                schedulable: true,
                pods: 0,
                capacity: 2,
            })
            .collect();
        nodes[0].pods = 1;
        let mut v = pod(json!({}), json!({}));
        let mut cursor = 0;
        assert_eq!(
            pick_node(&v, &nodes, Scheduling::LeastLoaded, &mut cursor),
            Some(1)
        );
        nodes[1].schedulable = false;
        assert_eq!(
            pick_node(&v, &nodes, Scheduling::LeastLoaded, &mut cursor),
            Some(2)
        );
        assert_eq!(
            pick_node(&v, &nodes, Scheduling::RoundRobin, &mut cursor),
            Some(0)
        );
        assert_eq!(
            pick_node(&v, &nodes, Scheduling::RoundRobin, &mut cursor),
            Some(2)
        );
        assert_eq!(
            pick_node(&v, &nodes, Scheduling::RoundRobin, &mut cursor),
            Some(0)
        );
        v.node_selector.insert("zone".into(), "zone-b".into());
        assert_eq!(
            pick_node(&v, &nodes, Scheduling::LeastLoaded, &mut cursor),
            None
        );
        nodes[1].schedulable = true;
        nodes[1].pods = 2;
        assert_eq!(
            pick_node(&v, &nodes, Scheduling::LeastLoaded, &mut cursor),
            None
        );
    }

    #[test]
    fn starting_pods_record_what_scheduler_and_kubelet_record() {
        let pod = PodView {
            namespace: "default".into(),
            name: "web-1".into(),
            uid: "u-1".into(),
            resource_version: "7".into(),
            containers: vec![
                ("web".into(), "nginx".into()),
                ("side".into(), "busybox:1.36".into()),
            ],
            ..PodView::default()
        };
        let now: Timestamp = "2026-12-02T20:00:00.123456789Z".parse().unwrap();
        let scheduled = scheduled_event(&pod, "node-2", now);
        assert_eq!(
            scheduled["message"],
            "Successfully assigned default/web-1 to node-2"
        );
        assert_eq!(scheduled["eventTime"], "2026-12-02T20:00:00.123456Z");
        assert_eq!(scheduled["involvedObject"]["uid"], "u-1");
        let started = container_start_events(&pod, "node-2", now);
        let lines: Vec<String> = started
            .iter()
            .map(|e| {
                format!(
                    "{} {} {}",
                    e["reason"].as_str().unwrap(),
                    e["involvedObject"]["fieldPath"].as_str().unwrap(),
                    e["message"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(
            lines,
            [
                "Pulled spec.containers{web} Container image \"nginx\" already present on machine",
                "Created spec.containers{web} Created container: web",
                "Started spec.containers{web} Started container web",
                "Pulled spec.containers{side} Container image \"busybox:1.36\" already present on machine",
                "Created spec.containers{side} Created container: side",
                "Started spec.containers{side} Started container side",
            ]
        );
        let names: std::collections::BTreeSet<&str> = started
            .iter()
            .map(|e| e["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names.len(), 6, "names are unique");
        assert_eq!(
            started[0]["source"],
            json!({"component": "kubelet", "host": "node-2"})
        );
    }
}
