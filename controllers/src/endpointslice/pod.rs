//! What the Service controllers need to know about a Pod, cached in a small struct.
//!
//! These helpers are shared with the Endpoints controller: pod readiness, canonical pod IP
//! strings and named `targetPort` resolution behave the same in both.
//!
//! A cluster holds far more pods than distinct label sets, namespaces, nodes or port lists
//! (a Deployment's replicas share all of them), so those fields are shared `Arc`s, and a
//! [`PodInterner`] hands out one copy of each distinct value to the pods of a cache.

use std::collections::{BTreeMap, HashSet};
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Container, Pod, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;

/// The string upstream produces when a pod IP does not parse (Go's `net.IP(nil).String()`).
pub const INVALID_IP_STRING: &str = "<nil>";

/// One container port, with the protocol defaulted to `TCP` as the API server does.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ContainerPortInfo {
    /// The port's `name` ("" when unnamed).
    pub name: String,
    /// The port's protocol (`TCP`, `UDP`, `SCTP`).
    pub protocol: String,
    /// The port's `containerPort`, unvalidated (upstream returns -1 as -1).
    pub container_port: i32,
}

/// The part of a Pod the Service controllers read; cheap to cache per pod.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PodInfo {
    /// `metadata.namespace`.
    pub namespace: Arc<str>,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.uid`.
    pub uid: String,
    /// `metadata.labels`, matched against Service selectors.
    pub labels: Arc<BTreeMap<String, String>>,
    /// True if `status.podIP` or `status.podIPs` is non-empty (upstream's "has an IP" test).
    pub has_ip: bool,
    /// `status.podIPs` in order, each in canonical form (see [`canonical_ip`]).
    pub ips: Vec<String>,
    /// The pod's `Ready` condition is `True`.
    pub ready: bool,
    /// `lastTransitionTime` of the `Ready` condition (input to the trigger-time tracker).
    pub ready_transition_time: Option<Timestamp>,
    /// `metadata.deletionTimestamp` is set.
    pub terminating: bool,
    /// `status.phase` is `Failed` or `Succeeded`.
    pub terminal: bool,
    /// `spec.nodeName` ("" when unscheduled).
    pub node_name: Arc<str>,
    /// `spec.hostname`.
    pub hostname: String,
    /// `spec.subdomain`.
    pub subdomain: String,
    /// Ports of the app containers in order, then of sidecar init containers (restartPolicy
    /// `Always`); the search order of [`find_port`].
    pub container_ports: Arc<[ContainerPortInfo]>,
}

/// No container port matched a named `targetPort` (upstream's error text).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("no suitable port for manifest: {pod_uid}")]
pub struct PortNotFound {
    /// UID of the pod that was searched.
    pub pod_uid: String,
}

impl PodInfo {
    /// Extracts what the planners need from a full Pod.
    pub fn from_pod(pod: &Pod) -> Self {
        Self::extract(pod, &mut Unshared)
    }

    /// Extracts what the planners need from a full Pod, sharing the labels, namespace, node
    /// name and port list with the pods `interner` has seen.
    pub fn from_pod_interned(pod: &Pod, interner: &mut PodInterner) -> Self {
        Self::extract(pod, interner)
    }

    fn extract(pod: &Pod, interner: &mut impl Share) -> Self {
        let metadata = &pod.metadata;
        let spec = pod.spec.as_ref();
        let status = pod.status.as_ref();
        let ready_condition = status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"));
        let pod_ips: Vec<String> = status
            .and_then(|s| s.pod_ips.as_ref())
            .map(|ips| ips.iter().map(|ip| canonical_ip(&ip.ip)).collect())
            .unwrap_or_default();
        let has_pod_ip = status
            .and_then(|s| s.pod_ip.as_deref())
            .is_some_and(|ip| !ip.is_empty());
        let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("");
        PodInfo {
            namespace: interner.string(metadata.namespace.as_deref().unwrap_or("")),
            name: metadata.name.clone().unwrap_or_default(),
            uid: metadata.uid.clone().unwrap_or_default(),
            labels: interner.labels(metadata.labels.as_ref().unwrap_or(&BTreeMap::new())),
            has_ip: has_pod_ip || !pod_ips.is_empty(),
            ips: pod_ips,
            ready: ready_condition.is_some_and(|c| c.status == "True"),
            ready_transition_time: ready_condition
                .and_then(|c| c.last_transition_time.as_ref())
                .map(|t| t.0),
            terminating: metadata.deletion_timestamp.is_some(),
            terminal: phase == "Failed" || phase == "Succeeded",
            node_name: interner.string(spec.and_then(|s| s.node_name.as_deref()).unwrap_or("")),
            hostname: spec.and_then(|s| s.hostname.clone()).unwrap_or_default(),
            subdomain: spec.and_then(|s| s.subdomain.clone()).unwrap_or_default(),
            container_ports: interner.ports(spec.map(searchable_ports).unwrap_or_default()),
        }
    }

    /// Whether the pod can be an endpoint at all: not terminal and has an IP. Terminating
    /// pods pass when `include_terminating` (EndpointSlice) and fail otherwise (Endpoints).
    pub fn should_be_in_endpoints(&self, include_terminating: bool) -> bool {
        !self.terminal && self.has_ip && (include_terminating || !self.terminating)
    }

    /// The conditions of the endpoint this pod becomes (upstream's `podToEndpoint`): serving
    /// is the pod's readiness; ready also asks that it is not terminating, unless the Service
    /// publishes not-ready addresses.
    pub fn endpoint_conditions(&self, publish_not_ready: bool) -> EndpointConditionsOf {
        let serving = self.ready;
        EndpointConditionsOf {
            ready: publish_not_ready || (serving && !self.terminating),
            serving,
            terminating: self.terminating,
        }
    }

    /// Whether the endpoint gets `hostname`: set, and `subdomain` names the Service in the
    /// pod's namespace.
    pub fn should_set_hostname(&self, service_name: &str, service_namespace: &str) -> bool {
        !self.hostname.is_empty()
            && self.subdomain == service_name
            && *self.namespace == *service_namespace
    }

    /// Resolves a Service port's `targetPort` for this pod (see [`find_port`]).
    pub fn find_port(&self, service_port: &ServicePort) -> Result<i32, PortNotFound> {
        find_port(&self.container_ports, &self.uid, service_port)
    }

    /// True if every key/value of `selector` is among the pod's labels (`{}` matches all).
    pub fn matches_selector(&self, selector: &BTreeMap<String, String>) -> bool {
        selector
            .iter()
            .all(|(k, v)| self.labels.get(k).is_some_and(|have| have == v))
    }
}

/// The `ready`, `serving` and `terminating` conditions of a pod's endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EndpointConditionsOf {
    /// Traffic may be sent to it.
    pub ready: bool,
    /// It answers (its pod is Ready), terminating or not.
    pub serving: bool,
    /// Its pod is being deleted.
    pub terminating: bool,
}

/// One shared copy of each distinct label set, namespace or node name, and port list among
/// the pods of a cache. Values no pod uses any more are dropped once the tables have
/// doubled since the last sweep, so the interner stays within twice what is in use.
#[derive(Debug, Default)]
pub struct PodInterner {
    strings: HashSet<Arc<str>>,
    labels: HashSet<Arc<BTreeMap<String, String>>>,
    ports: HashSet<Arc<[ContainerPortInfo]>>,
    entries_after_sweep: usize,
}

/// Where `PodInfo::extract` gets its shared fields: fresh copies, or an interner's.
trait Share {
    fn string(&mut self, value: &str) -> Arc<str>;
    fn labels(&mut self, value: &BTreeMap<String, String>) -> Arc<BTreeMap<String, String>>;
    fn ports(&mut self, value: Vec<ContainerPortInfo>) -> Arc<[ContainerPortInfo]>;
}

/// Fresh copies, for a `PodInfo` outside any cache.
struct Unshared;

impl Share for Unshared {
    fn string(&mut self, value: &str) -> Arc<str> {
        Arc::from(value)
    }

    fn labels(&mut self, value: &BTreeMap<String, String>) -> Arc<BTreeMap<String, String>> {
        Arc::new(value.clone())
    }

    fn ports(&mut self, value: Vec<ContainerPortInfo>) -> Arc<[ContainerPortInfo]> {
        value.into()
    }
}

impl Share for PodInterner {
    fn string(&mut self, value: &str) -> Arc<str> {
        PodInterner::string(self, value)
    }

    fn labels(&mut self, value: &BTreeMap<String, String>) -> Arc<BTreeMap<String, String>> {
        PodInterner::labels(self, value)
    }

    fn ports(&mut self, value: Vec<ContainerPortInfo>) -> Arc<[ContainerPortInfo]> {
        PodInterner::ports(self, value)
    }
}

/// The shared copy of `value` in `table`, added if new.
fn shared<T, Q>(table: &mut HashSet<Arc<T>>, value: &Q, make: impl FnOnce() -> Arc<T>) -> Arc<T>
where
    T: Hash + Eq + ?Sized + std::borrow::Borrow<Q>,
    Q: Hash + Eq + ?Sized,
    Arc<T>: std::borrow::Borrow<Q>,
{
    if let Some(existing) = table.get(value) {
        return existing.clone();
    }
    let made = make();
    table.insert(made.clone());
    made
}

impl PodInterner {
    /// The shared copy of a namespace or node name.
    pub fn string(&mut self, value: &str) -> Arc<str> {
        self.sweep_if_grown();
        shared(&mut self.strings, value, || Arc::from(value))
    }

    /// The shared copy of a label set.
    pub fn labels(&mut self, value: &BTreeMap<String, String>) -> Arc<BTreeMap<String, String>> {
        self.sweep_if_grown();
        shared(&mut self.labels, value, || Arc::new(value.clone()))
    }

    /// The shared copy of a port list.
    pub fn ports(&mut self, value: Vec<ContainerPortInfo>) -> Arc<[ContainerPortInfo]> {
        self.sweep_if_grown();
        if let Some(existing) = self.ports.get(value.as_slice()) {
            return existing.clone();
        }
        let made: Arc<[ContainerPortInfo]> = value.into();
        self.ports.insert(made.clone());
        made
    }

    /// `info` with its shareable fields replaced by the shared copies.
    pub fn intern(&mut self, info: &mut PodInfo) {
        info.namespace = self.string(&info.namespace);
        info.node_name = self.string(&info.node_name);
        info.labels = self.labels(&info.labels);
        self.sweep_if_grown();
        info.container_ports = shared(&mut self.ports, &*info.container_ports, || {
            info.container_ports.clone()
        });
    }

    /// How many distinct values are held (for tests and memory estimates).
    pub fn len(&self) -> usize {
        self.strings.len() + self.labels.len() + self.ports.len()
    }

    /// Whether no value is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every value that only the interner still holds.
    pub fn sweep(&mut self) {
        self.strings.retain(|v| Arc::strong_count(v) > 1);
        self.labels.retain(|v| Arc::strong_count(v) > 1);
        self.ports.retain(|v| Arc::strong_count(v) > 1);
        self.entries_after_sweep = self.len();
    }

    fn sweep_if_grown(&mut self) {
        if self.len() >= 2 * self.entries_after_sweep.max(64) {
            self.sweep();
        }
    }
}

fn searchable_ports(spec: &k8s_openapi::api::core::v1::PodSpec) -> Vec<ContainerPortInfo> {
    let app = spec.containers.iter();
    let sidecars = spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| c.restart_policy.as_deref() == Some("Always"));
    app.chain(sidecars).flat_map(container_ports).collect()
}

fn container_ports(container: &Container) -> impl Iterator<Item = ContainerPortInfo> + '_ {
    container.ports.iter().flatten().map(|p| ContainerPortInfo {
        name: p.name.clone().unwrap_or_default(),
        protocol: p.protocol.clone().unwrap_or_else(|| "TCP".to_owned()),
        container_port: p.container_port,
    })
}

/// The protocol of a Service port, defaulted to `TCP` as the API server does.
pub fn service_port_protocol(service_port: &ServicePort) -> &str {
    service_port.protocol.as_deref().unwrap_or("TCP")
}

/// Resolves a Service port's `targetPort` against a pod's ports, as upstream's `FindPort`:
/// a number is returned as is; a name is looked up (same name AND protocol) in app
/// containers first, then sidecar init containers; first match wins. An unset
/// `targetPort` means the Service `port` (API-server defaulting).
pub fn find_port(
    ports: &[ContainerPortInfo],
    pod_uid: &str,
    service_port: &ServicePort,
) -> Result<i32, PortNotFound> {
    match &service_port.target_port {
        None => Ok(service_port.port),
        Some(IntOrString::Int(n)) => Ok(*n),
        Some(IntOrString::String(name)) => {
            let protocol = service_port_protocol(service_port);
            ports
                .iter()
                .find(|p| p.name == *name && p.protocol == protocol)
                .map(|p| p.container_port)
                .ok_or_else(|| PortNotFound {
                    pod_uid: pod_uid.to_owned(),
                })
        }
    }
}

/// `netutils.ParseIPSloppy` with Go's identity of addresses: IPv4-mapped IPv6 becomes IPv4
/// (Go stores both as one 16-byte value), so `is_ipv4()` answers as Go's `To4() != nil`.
pub fn parse_ip_sloppy(s: &str) -> Option<IpAddr> {
    gocompat::ip::parse_ip_sloppy(s).map(|ip| ip.to_canonical())
}

/// The canonical string of a pod IP, as Go's `net.IP.String()` prints it (IPv6 compressed,
/// IPv4 without leading zeros, IPv4-mapped IPv6 as dotted IPv4); a string that does not parse
/// becomes `<nil>`, as upstream.
pub fn canonical_ip(s: &str) -> String {
    match gocompat::ip::parse_ip_sloppy(s) {
        Some(ip) => gocompat::ip::go_ip_string(ip),
        None => INVALID_IP_STRING.to_owned(),
    }
}

/// Whether a canonical IP string (from [`canonical_ip`]) is IPv6; `<nil>` counts as IPv4
/// as it does upstream.
pub fn is_ipv6_canonical(canonical: &str) -> bool {
    // A byte scan: pod IPs are short, and `contains` goes through memchr.
    canonical.bytes().any(|b| b == b':')
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerPort, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod(name: &str, app: &str, node: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                namespace: Some("ns".into()),
                name: Some(name.into()),
                labels: Some(BTreeMap::from([("app".into(), app.into())])),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                node_name: Some(node.into()),
                containers: vec![Container {
                    name: "c".into(),
                    ports: Some(vec![ContainerPort {
                        name: Some("http".into()),
                        container_port: 8080,
                        ..ContainerPort::default()
                    }]),
                    ..Container::default()
                }],
                ..PodSpec::default()
            }),
            status: None,
        }
    }

    #[test]
    fn interned_pods_share_equal_values_and_equal_unshared_ones() {
        let mut interner = PodInterner::default();
        let a = PodInfo::from_pod_interned(&pod("a", "web", "node-1"), &mut interner);
        let b = PodInfo::from_pod_interned(&pod("b", "web", "node-2"), &mut interner);
        let c = PodInfo::from_pod_interned(&pod("c", "db", "node-1"), &mut interner);
        assert!(Arc::ptr_eq(&a.labels, &b.labels));
        assert!(!Arc::ptr_eq(&a.labels, &c.labels));
        assert!(Arc::ptr_eq(&a.namespace, &c.namespace));
        assert!(Arc::ptr_eq(&a.node_name, &c.node_name));
        assert!(!Arc::ptr_eq(&a.node_name, &b.node_name));
        assert!(Arc::ptr_eq(&a.container_ports, &c.container_ports));
        assert_eq!(a, PodInfo::from_pod(&pod("a", "web", "node-1")));
        assert_eq!(
            *a.container_ports,
            [ContainerPortInfo {
                name: "http".into(),
                protocol: "TCP".into(),
                container_port: 8080,
            }]
        );
        // "ns", "node-1", "node-2"; {app: web}, {app: db}; one port list.
        assert_eq!(interner.len(), 6);
    }

    #[test]
    fn intern_replaces_fresh_copies_with_shared_ones() {
        let mut interner = PodInterner::default();
        let a = PodInfo::from_pod_interned(&pod("a", "web", "node-1"), &mut interner);
        let mut b = PodInfo::from_pod(&pod("b", "web", "node-1"));
        assert!(!Arc::ptr_eq(&a.labels, &b.labels));
        let before = b.clone();
        interner.intern(&mut b);
        assert_eq!(b, before);
        assert!(Arc::ptr_eq(&a.labels, &b.labels));
        assert!(Arc::ptr_eq(&a.namespace, &b.namespace));
        assert!(Arc::ptr_eq(&a.node_name, &b.node_name));
        assert!(Arc::ptr_eq(&a.container_ports, &b.container_ports));
    }

    #[test]
    fn values_no_pod_uses_are_swept() {
        let mut interner = PodInterner::default();
        let kept = PodInfo::from_pod_interned(&pod("kept", "kept", "node-0"), &mut interner);
        for i in 0..1000 {
            // Each pod is dropped at once: its label set is garbage from then on.
            let _ =
                PodInfo::from_pod_interned(&pod("p", &format!("app-{i}"), "node-0"), &mut interner);
        }
        assert!(
            interner.len() <= 2 * 64 + 1,
            "{} values held",
            interner.len()
        );
        interner.sweep();
        // "ns", "node-0", {app: kept}, the port list: what `kept` still uses.
        assert_eq!(interner.len(), 4);
        let again = PodInfo::from_pod_interned(&pod("again", "kept", "node-0"), &mut interner);
        assert!(Arc::ptr_eq(&kept.labels, &again.labels));
    }

    /// Go's `net.IP.String()` of `ParseIPSloppy`: leading zeros (any number, also in an IPv4
    /// tail) read as decimal, IPv4-mapped IPv6 printed dotted, zones and blanks rejected.
    #[test]
    fn canonical_ip_prints_as_go() {
        let cases = [
            ("0001.2.3.4", "1.2.3.4"),
            ("::ffff:01.2.3.4", "1.2.3.4"),
            ("::FFFF:10.0.0.1", "10.0.0.1"),
            ("::1.2.3.4", "::102:304"),
            ("00fd00::0001", "fd00::1"),
            ("256.1.1.1", INVALID_IP_STRING),
            ("fe80::1%eth0", INVALID_IP_STRING),
            ("", INVALID_IP_STRING),
            (" 10.0.0.1", INVALID_IP_STRING),
        ];
        for (text, want) in cases {
            assert_eq!(canonical_ip(text), want, "{text:?}");
        }
        assert!(!is_ipv6_canonical(&canonical_ip("::ffff:1.2.3.4")));
        assert!(is_ipv6_canonical(&canonical_ip("::1.2.3.4")));
        assert_eq!(
            parse_ip_sloppy("::ffff:010.0.0.1"),
            Some(IpAddr::from([10, 0, 0, 1]))
        );
    }

    /// `getAddressTypesForService` classifies a legacy `clusterIP` with `IsIPv6String`.
    #[test]
    fn address_types_classify_cluster_ip_as_go() {
        let service = |cluster_ip: &str| k8s_openapi::api::core::v1::Service {
            spec: Some(k8s_openapi::api::core::v1::ServiceSpec {
                cluster_ip: Some(cluster_ip.to_owned()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let types = |ip: &str| crate::endpointslice::address_types_for_service(&service(ip));
        assert_eq!(types("::ffff:10.0.0.1"), vec!["IPv4"]);
        assert_eq!(types("0010.0.0.1"), vec!["IPv4"]);
        assert_eq!(types("00fd00::1"), vec!["IPv6"]);
        assert_eq!(types("not-an-ip"), vec!["IPv4"]);
    }
}
