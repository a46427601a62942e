//! Upstream-fidelity tests: the vectors of spec §1.16 and the small tables of §1.3–1.10.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, Node, NodeCondition, NodeSpec, NodeStatus, Pod, PodCondition, PodIP,
    PodSpec, PodStatus, Service, ServicePort, ServiceSpec,
};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;

use super::indexed::IndexedSlice;
use super::pod::{self, ContainerPortInfo, PodInfo, PortNotFound};
use super::slice::{owner_reference, slice_labels};
use super::*;

// ---------------------------------------------------------------------------------------
// Fixtures (upstream utils_test.go shapes)

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn service_port(name: &str, port: i32, target: IntOrString, protocol: &str) -> ServicePort {
    ServicePort {
        name: Some(name.to_owned()),
        port,
        target_port: Some(target),
        protocol: Some(protocol.to_owned()),
        ..ServicePort::default()
    }
}

/// `svcFoo`: selector foo=bar, IPv4, clusterIP unset, port foo 80->80/TCP.
fn svc_foo() -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some("foo".into()),
            namespace: Some("test".into()),
            uid: Some("test-foo".into()),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            selector: Some(labels(&[("foo", "bar")])),
            ip_families: Some(vec!["IPv4".into()]),
            ports: Some(vec![service_port("foo", 80, IntOrString::Int(80), "TCP")]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

fn pod_ip(n: usize) -> String {
    if n < 252 {
        format!("1.2.3.{}", 4 + n)
    } else {
        format!("10.0.{}.{}", n / 256, n % 256)
    }
}

/// `newPod(n, ns, ready, 1, terminating)` as a full Pod.
fn full_pod(n: usize, ready: bool, terminating: bool) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(format!("pod{n}")),
            namespace: Some("test".into()),
            uid: Some(format!("uid-pod{n}")),
            labels: Some(labels(&[("foo", "bar")])),
            deletion_timestamp: terminating.then_some(Time(Timestamp::UNIX_EPOCH)),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            node_name: Some("node-1".into()),
            containers: vec![Container {
                name: "container-1".into(),
                ..Container::default()
            }],
            ..PodSpec::default()
        }),
        status: Some(PodStatus {
            pod_ip: Some(pod_ip(n)),
            pod_ips: Some(vec![PodIP { ip: pod_ip(n) }]),
            phase: Some("Running".into()),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                ..PodCondition::default()
            }]),
            ..PodStatus::default()
        }),
    }
}

fn pod(n: usize, ready: bool, terminating: bool) -> PodInfo {
    PodInfo::from_pod(&full_pod(n, ready, terminating))
}

fn pods(count: usize, ready: impl Fn(usize) -> bool) -> Vec<PodInfo> {
    (0..count).map(|i| pod(i, ready(i), false)).collect()
}

fn node(name: &str, zone: Option<&str>) -> NodeInfo {
    NodeInfo {
        name: name.into(),
        zone: zone.map(str::to_owned),
        ready: true,
        allocatable_cpu_millis: 100,
        excluded_from_topology: false,
    }
}

fn nodes(list: &[NodeInfo]) -> BTreeMap<String, NodeInfo> {
    list.iter().map(|n| (n.name.clone(), n.clone())).collect()
}

fn node1() -> BTreeMap<String, NodeInfo> {
    nodes(&[node("node-1", None)])
}

fn options(max: i64) -> PlanOptions {
    PlanOptions {
        max_endpoints_per_slice: MaxEndpointsPerSlice::new(max).unwrap(),
        trigger_time: Some(Timestamp::from_second(1_514_764_800).unwrap()),
        ..PlanOptions::default()
    }
}

fn foo_ports() -> Vec<EndpointPort> {
    vec![EndpointPort {
        name: Some("foo".into()),
        port: Some(80),
        protocol: Some("TCP".into()),
        app_protocol: None,
    }]
}

/// The endpoint the planner builds for a pod on an unzoned node-1.
fn endpoint_for(p: &PodInfo, publish_not_ready: bool) -> Endpoint {
    Endpoint {
        addresses: p.ips.clone(),
        conditions: Some(EndpointConditions {
            ready: Some(publish_not_ready || (p.ready && !p.terminating)),
            serving: Some(p.ready),
            terminating: Some(p.terminating),
        }),
        node_name: Some(p.node_name.to_string()).filter(|n| !n.is_empty()),
        target_ref: Some(ObjectReference {
            kind: Some("Pod".into()),
            namespace: Some(p.namespace.to_string()),
            name: Some(p.name.clone()),
            uid: Some(p.uid.clone()),
            ..ObjectReference::default()
        }),
        ..Endpoint::default()
    }
}

/// An existing slice owned by `svc` with the two controller labels only.
fn owned_slice(name: &str, svc: &Service, endpoints: Vec<Endpoint>) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("test".into()),
            labels: Some(labels(&[
                (LABEL_SERVICE_NAME, svc.metadata.name.as_deref().unwrap()),
                (LABEL_MANAGED_BY, CONTROLLER_NAME),
            ])),
            owner_references: Some(vec![owner_reference(svc)]),
            ..ObjectMeta::default()
        },
        address_type: "IPv4".into(),
        ports: Some(foo_ports()),
        endpoints,
    }
}

/// Applies a plan as the API server would: creates get names, `ports: []` reads back as
/// null, updates replace by name, deletes remove by name.
fn apply(existing: &[EndpointSlice], plan: &EndpointSlicePlan) -> Vec<EndpointSlice> {
    let mut result: Vec<EndpointSlice> = existing
        .iter()
        .filter(|s| {
            !plan
                .delete
                .iter()
                .any(|d| d.metadata.name == s.metadata.name)
        })
        .map(|s| {
            plan.update
                .iter()
                .find(|u| u.metadata.name == s.metadata.name)
                .cloned()
                .unwrap_or_else(|| s.clone())
        })
        .collect();
    let mut counter = result.len() + plan.delete.len();
    for created in &plan.create {
        let mut slice = created.clone();
        loop {
            counter += 1;
            let name = format!(
                "{}{counter}",
                slice.metadata.generate_name.as_deref().unwrap_or("")
            );
            if !result
                .iter()
                .any(|s| s.metadata.name.as_deref() == Some(&name))
            {
                slice.metadata.name = Some(name);
                break;
            }
        }
        result.push(slice);
    }
    for slice in &mut result {
        if slice.ports.as_ref().is_some_and(Vec::is_empty) {
            slice.ports = None;
        }
    }
    result
}

fn lengths(slices: &[EndpointSlice]) -> Vec<usize> {
    let mut l: Vec<usize> = slices.iter().map(|s| s.endpoints.len()).collect();
    l.sort_unstable();
    l
}

fn names(slices: &[EndpointSlice]) -> Vec<&str> {
    slices
        .iter()
        .map(|s| s.metadata.name.as_deref().unwrap_or(""))
        .collect()
}

fn endpoint_names(slice: &EndpointSlice) -> Vec<String> {
    let mut v: Vec<String> = slice
        .endpoints
        .iter()
        .filter_map(|e| e.target_ref.as_ref().and_then(|t| t.name.clone()))
        .collect();
    v.sort();
    v
}

fn conditions(e: &Endpoint) -> (bool, bool, bool) {
    let c = e.conditions.clone().unwrap_or_default();
    (
        c.ready.unwrap_or(false),
        c.serving.unwrap_or(false),
        c.terminating.unwrap_or(false),
    )
}

fn foo_labels(headless: bool, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut l = labels(&[
        (LABEL_SERVICE_NAME, "foo"),
        (LABEL_MANAGED_BY, CONTROLLER_NAME),
    ]);
    if headless {
        l.insert(LABEL_HEADLESS.into(), String::new());
    }
    l.extend(labels(extra));
    l
}

// ---------------------------------------------------------------------------------------
// Options, IPs, quantities, times

#[test]
fn max_endpoints_per_slice_is_validated_with_upstream_texts() {
    assert_eq!(
        MaxEndpointsPerSlice::new(0).unwrap_err().to_string(),
        "max-endpoints-per-slice must not be less than 1, but got 0"
    );
    assert_eq!(
        MaxEndpointsPerSlice::new(1001).unwrap_err().to_string(),
        "max-endpoints-per-slice must not be more than 1000, but got 1001"
    );
    assert_eq!(
        MaxEndpointsPerSlice::new(-5).unwrap_err().to_string(),
        "max-endpoints-per-slice must not be less than 1, but got -5"
    );
    assert_eq!(MaxEndpointsPerSlice::new(1).unwrap().get(), 1);
    assert_eq!(MaxEndpointsPerSlice::new(1000).unwrap().get(), 1000);
    assert_eq!(MaxEndpointsPerSlice::default().get(), 100);
}

#[test]
fn pod_ips_are_canonicalised_like_parse_ip_sloppy() {
    assert_eq!(
        pod::canonical_ip("1234::5678:0000:0000:9abc:def0"),
        "1234::5678:0:0:9abc:def0"
    );
    assert_eq!(
        pod::canonical_ip("fd08::5678:0000:0000:9abc:def0"),
        "fd08::5678:0:0:9abc:def0"
    );
    assert_eq!(pod::canonical_ip("010.000.001.002"), "10.0.1.2");
    assert_eq!(pod::canonical_ip("::ffff:1.2.3.4"), "1.2.3.4");
    assert_eq!(pod::canonical_ip("not-an-ip"), "<nil>");
    assert_eq!(pod::canonical_ip("1.2.3.256"), "<nil>");
    assert_eq!(pod::canonical_ip("1.2.3"), "<nil>");
    assert!(!pod::is_ipv6_canonical("<nil>"));
}

#[test]
fn cpu_quantities_parse_to_rounded_up_millis() {
    assert_eq!(node::quantity_millis("100m"), Some(100));
    assert_eq!(node::quantity_millis("4"), Some(4000));
    assert_eq!(node::quantity_millis("1.5"), Some(1500));
    assert_eq!(node::quantity_millis("0.1"), Some(100));
    assert_eq!(node::quantity_millis("2k"), Some(2_000_000));
    assert_eq!(node::quantity_millis("1Ki"), Some(1_024_000));
    assert_eq!(node::quantity_millis("1500u"), Some(2));
    assert_eq!(node::quantity_millis("5e3"), Some(5_000_000));
    assert_eq!(node::quantity_millis("abc"), None);
}

#[test]
fn trigger_time_is_rfc3339_nano_utc() {
    let t = Timestamp::from_second(1_514_764_800).unwrap();
    assert_eq!(format_rfc3339_nano(t), "2018-01-01T00:00:00Z");
    let t = Timestamp::new(1_514_764_800, 120_000_000).unwrap();
    assert_eq!(format_rfc3339_nano(t), "2018-01-01T00:00:00.12Z");
}

#[test]
fn node_info_from_node() {
    let n = Node {
        metadata: ObjectMeta {
            name: Some("n".into()),
            labels: Some(labels(&[
                ("topology.kubernetes.io/zone", "zone-a"),
                ("node-role.kubernetes.io/control-plane", ""),
            ])),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec::default()),
        status: Some(NodeStatus {
            conditions: Some(vec![NodeCondition {
                type_: "Ready".into(),
                status: "True".into(),
                ..NodeCondition::default()
            }]),
            allocatable: Some(BTreeMap::from([("cpu".into(), Quantity("1500m".into()))])),
            ..NodeStatus::default()
        }),
    };
    assert_eq!(
        NodeInfo::from_node(&n),
        NodeInfo {
            name: "n".into(),
            zone: Some("zone-a".into()),
            ready: true,
            allocatable_cpu_millis: 1500,
            excluded_from_topology: true,
        }
    );
}

// ---------------------------------------------------------------------------------------
// §1.3 TestSupportedServiceAddressType

#[test]
fn supported_service_address_types() {
    let with = |families: Option<Vec<&str>>, cluster_ip: Option<&str>| {
        let mut s = svc_foo();
        let spec = s.spec.as_mut().unwrap();
        spec.ip_families = families.map(|f| f.into_iter().map(str::to_owned).collect());
        spec.cluster_ip = cluster_ip.map(str::to_owned);
        address_types_for_service(&s)
    };
    assert_eq!(with(None, Some("10.0.0.1")), vec!["IPv4"]);
    assert_eq!(with(None, Some("2000::1")), vec!["IPv6"]);
    assert_eq!(with(Some(vec!["IPv6", "IPv4"]), None), vec!["IPv4", "IPv6"]);
    assert_eq!(with(None, Some("None")), vec!["IPv4", "IPv6"]);
    assert_eq!(with(None, None), vec!["IPv4", "IPv6"]);
}

// ---------------------------------------------------------------------------------------
// §1.5 TestPodToEndpoint

#[test]
fn pod_to_endpoint_conditions() {
    let cases = [
        (true, false, false, (true, true, false)),
        (true, false, true, (true, true, false)),
        (false, false, false, (false, false, false)),
        (false, false, true, (true, false, false)),
        (true, true, false, (false, true, true)),
        (false, true, false, (false, false, true)),
        (true, true, true, (true, true, true)),
    ];
    for (ready, terminating, publish, want) in cases {
        let mut svc = svc_foo();
        svc.spec.as_mut().unwrap().publish_not_ready_addresses = Some(publish);
        let p = plan(
            &svc,
            &[pod(1, ready, terminating)],
            &node1(),
            &[],
            &options(100),
        );
        assert_eq!(p.create.len(), 1);
        let e = &p.create[0].endpoints[0];
        assert_eq!(
            conditions(e),
            want,
            "ready={ready} terminating={terminating} publish={publish}"
        );
        assert_eq!(e.node_name.as_deref(), Some("node-1"));
        assert_eq!(e.zone, None);
        let t = e.target_ref.clone().unwrap();
        assert_eq!(
            (
                t.kind,
                t.namespace,
                t.name,
                t.uid,
                t.api_version,
                t.resource_version
            ),
            (
                Some("Pod".into()),
                Some("test".into()),
                Some("pod1".into()),
                Some("uid-pod1".into()),
                None,
                None
            )
        );
    }
}

#[test]
fn hostname_only_when_subdomain_names_the_service() {
    let mut full = full_pod(1, true, false);
    full.spec.as_mut().unwrap().hostname = Some("example-hostname".into());
    let no_subdomain = PodInfo::from_pod(&full);
    full.spec.as_mut().unwrap().subdomain = Some("foo".into());
    let with_subdomain = PodInfo::from_pod(&full);
    full.spec.as_mut().unwrap().subdomain = Some("bar".into());
    let other_subdomain = PodInfo::from_pod(&full);
    let hostname_of = |p: PodInfo| {
        plan(&svc_foo(), &[p], &node1(), &[], &options(100)).create[0].endpoints[0]
            .hostname
            .clone()
    };
    assert_eq!(hostname_of(no_subdomain), None);
    assert_eq!(
        hostname_of(with_subdomain),
        Some("example-hostname".to_owned())
    );
    assert_eq!(hostname_of(other_subdomain), None);
}

// ---------------------------------------------------------------------------------------
// §1.6 TestFindPort, TestGetEndpointPorts

fn container(ports: &[(&str, i32, &str)]) -> Container {
    Container {
        name: "c".into(),
        ports: Some(
            ports
                .iter()
                .map(|(name, number, protocol)| ContainerPort {
                    name: Some((*name).to_owned()).filter(|n| !n.is_empty()),
                    container_port: *number,
                    protocol: Some((*protocol).to_owned()),
                    ..ContainerPort::default()
                })
                .collect(),
        ),
        ..Container::default()
    }
}

fn find(
    containers: Vec<Container>,
    init: Vec<Container>,
    target: IntOrString,
    protocol: &str,
) -> Result<i32, PortNotFound> {
    let p = Pod {
        metadata: ObjectMeta {
            uid: Some("pod-uid".into()),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            containers,
            init_containers: Some(init),
            ..PodSpec::default()
        }),
        status: None,
    };
    PodInfo::from_pod(&p).find_port(&ServicePort {
        port: 1,
        target_port: Some(target),
        protocol: Some(protocol.into()),
        ..ServicePort::default()
    })
}

fn sidecar(ports: &[(&str, i32, &str)]) -> Container {
    Container {
        restart_policy: Some("Always".into()),
        ..container(ports)
    }
}

#[test]
fn find_port_vectors() {
    let named = || container(&[("", 11, "UDP"), ("p", 22, "TCP"), ("q", 33, "TCP")]);
    let s = |n: &str| IntOrString::String(n.into());
    let not_found = Err(PortNotFound {
        pod_uid: "pod-uid".into(),
    });
    assert_eq!(find(vec![], vec![], IntOrString::Int(93), "TCP"), Ok(93));
    assert_eq!(
        find(vec![named()], vec![], IntOrString::Int(93), "TCP"),
        Ok(93)
    );
    assert_eq!(find(vec![], vec![], s("p"), "TCP"), not_found);
    assert_eq!(find(vec![named()], vec![], s("q"), "TCP"), Ok(33));
    assert_eq!(
        find(
            vec![
                container(&[("p", 11, "TCP")]),
                container(&[("q", 33, "TCP")])
            ],
            vec![],
            s("q"),
            "TCP"
        ),
        Ok(33)
    );
    assert_eq!(
        find(
            vec![container(&[("q", 22, "TCP"), ("p", 22, "TCP")])],
            vec![],
            s("p"),
            "TCP"
        ),
        Ok(22)
    );
    assert_eq!(
        find(vec![container(&[("a", 11, "snmp")])], vec![], s("a"), "TCP"),
        not_found
    );
    let mut host_port = container(&[("a", 11, "TCP")]);
    if let Some(ports) = host_port.ports.as_mut() {
        ports[0].host_port = Some(81);
    }
    assert_eq!(find(vec![host_port], vec![], s("a"), "TCP"), Ok(11));
    assert_eq!(
        find(vec![container(&[("a", -1, "TCP")])], vec![], s("a"), "TCP"),
        Ok(-1)
    );
    assert_eq!(
        find(vec![], vec![sidecar(&[("a", 80, "TCP")])], s("a"), "TCP"),
        Ok(80)
    );
    assert_eq!(
        find(vec![], vec![container(&[("a", 80, "TCP")])], s("a"), "TCP"),
        not_found
    );
    assert_eq!(
        find(
            vec![
                container(&[("a", 81, "TCP")]),
                container(&[("a", 82, "TCP")])
            ],
            vec![sidecar(&[("a", 80, "TCP")])],
            s("a"),
            "TCP"
        ),
        Ok(81)
    );
    assert_eq!(
        PortNotFound {
            pod_uid: "pod-uid".into()
        }
        .to_string(),
        "no suitable port for manifest: pod-uid"
    );
}

fn ports_set(slice: &EndpointSlice) -> Vec<(String, i32, String, Option<String>)> {
    let mut v: Vec<_> = slice
        .ports
        .iter()
        .flatten()
        .map(|p| {
            (
                p.name.clone().unwrap_or_default(),
                p.port.unwrap_or_default(),
                p.protocol.clone().unwrap_or_default(),
                p.app_protocol.clone(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn get_endpoint_ports_vectors() {
    let run = |ports: Vec<ServicePort>, containers: Vec<Container>, init: Vec<Container>| {
        let mut svc = svc_foo();
        svc.spec.as_mut().unwrap().ports = Some(ports);
        let mut full = full_pod(1, true, false);
        let spec = full.spec.as_mut().unwrap();
        spec.containers = containers;
        spec.init_containers = Some(init);
        let p = plan(
            &svc,
            &[PodInfo::from_pod(&full)],
            &node1(),
            &[],
            &options(100),
        );
        ports_set(&p.create[0])
    };
    let mut http = service_port("http", 80, IntOrString::Int(80), "TCP");
    http.app_protocol = Some("example.com/custom-protocol".into());
    assert_eq!(
        run(vec![http], vec![container(&[])], vec![]),
        vec![(
            "http".into(),
            80,
            "TCP".into(),
            Some("example.com/custom-protocol".into())
        )]
    );
    let mut https = service_port("https", 443, IntOrString::String("https".into()), "TCP");
    https.app_protocol = Some("https".into());
    assert_eq!(
        run(
            vec![service_port("http", 80, IntOrString::Int(80), "TCP"), https],
            vec![container(&[("https", 443, "TCP")])],
            vec![]
        ),
        vec![
            ("http".into(), 80, "TCP".into(), None),
            ("https".into(), 443, "TCP".into(), Some("https".into()))
        ]
    );
    assert_eq!(
        run(
            vec![service_port(
                "http",
                80,
                IntOrString::String("http".into()),
                "TCP"
            )],
            vec![container(&[("http", 8090, "TCP")])],
            vec![sidecar(&[("http", 8080, "TCP")])]
        ),
        vec![("http".into(), 8090, "TCP".into(), None)]
    );
}

/// The order upstream writes a slice's ports in (found by the controller differential): not the
/// Service's, but `NewPortMapKey`'s sort by the MD5 of each port's go-spew dump — for
/// `[sctp/7777, http/8080]` it writes `[http, sctp]`.
#[test]
fn slice_ports_are_written_in_upstreams_hash_order() {
    let mut svc = svc_foo();
    svc.spec.as_mut().unwrap().ports = Some(vec![
        service_port("sctp", 7777, IntOrString::Int(7777), "SCTP"),
        service_port("http", 80, IntOrString::Int(8080), "TCP"),
    ]);
    let p = plan(
        &svc,
        &[PodInfo::from_pod(&full_pod(1, true, false))],
        &node1(),
        &[],
        &options(100),
    );
    let names: Vec<String> = p.create[0]
        .ports
        .iter()
        .flatten()
        .map(|port| port.name.clone().unwrap_or_default())
        .collect();
    assert_eq!(names, ["http", "sctp"]);
}

#[test]
fn pod_info_keeps_app_ports_before_sidecar_ports() {
    let mut full = full_pod(1, true, false);
    let spec = full.spec.as_mut().unwrap();
    spec.containers = vec![container(&[("a", 81, "TCP")])];
    spec.init_containers = Some(vec![
        sidecar(&[("b", 80, "UDP")]),
        container(&[("c", 79, "TCP")]),
    ]);
    let info = PodInfo::from_pod(&full);
    assert_eq!(
        *info.container_ports,
        vec![
            ContainerPortInfo {
                name: "a".into(),
                protocol: "TCP".into(),
                container_port: 81
            },
            ContainerPortInfo {
                name: "b".into(),
                protocol: "UDP".into(),
                container_port: 80
            },
        ]
    );
}

// ---------------------------------------------------------------------------------------
// §1.10 TestSetEndpointSliceLabels

#[test]
fn set_endpoint_slice_labels_table() {
    let reserved_name = (LABEL_SERVICE_NAME, "foo");
    let reserved_by = (LABEL_MANAGED_BY, CONTROLLER_NAME);
    let headless = (LABEL_HEADLESS, "");
    type Case<'a> = (
        Vec<(&'a str, &'a str)>,
        bool,
        Vec<(&'a str, &'a str)>,
        Vec<(&'a str, &'a str)>,
        bool,
    );
    let cases: Vec<Case> = vec![
        (
            vec![],
            false,
            vec![],
            vec![reserved_name, reserved_by],
            false,
        ),
        (
            vec![],
            true,
            vec![("foo", "bar")],
            vec![reserved_name, reserved_by, headless, ("foo", "bar")],
            true,
        ),
        (
            vec![],
            true,
            vec![],
            vec![reserved_name, reserved_by, headless],
            false,
        ),
        (
            vec![],
            false,
            vec![(LABEL_HEADLESS, "")],
            vec![reserved_name, reserved_by],
            false,
        ),
        (
            vec![reserved_name, reserved_by, headless],
            false,
            vec![(LABEL_HEADLESS, "")],
            vec![reserved_name, reserved_by],
            false,
        ),
        (
            vec![reserved_name, reserved_by, headless],
            false,
            vec![],
            vec![reserved_name, reserved_by],
            false,
        ),
        (
            vec![reserved_name, reserved_by, ("foo", "bar")],
            true,
            vec![("foo", "bar")],
            vec![reserved_name, reserved_by, headless, ("foo", "bar")],
            false,
        ),
        (
            vec![],
            false,
            vec![("foo", "bar")],
            vec![reserved_name, reserved_by, ("foo", "bar")],
            true,
        ),
        (
            vec![reserved_name, reserved_by, ("foo", "bar")],
            false,
            vec![],
            vec![reserved_name, reserved_by],
            true,
        ),
        (
            vec![reserved_name, reserved_by],
            false,
            vec![
                (LABEL_SERVICE_NAME, "bad"),
                (LABEL_MANAGED_BY, "actor"),
                (LABEL_HEADLESS, "invalid"),
            ],
            vec![reserved_name, reserved_by],
            false,
        ),
        (
            vec![reserved_name, reserved_by],
            false,
            vec![
                (LABEL_SERVICE_NAME, "bad"),
                (LABEL_MANAGED_BY, "actor"),
                ("foo", "bar"),
            ],
            vec![reserved_name, reserved_by, ("foo", "bar")],
            true,
        ),
    ];
    for (i, (slice_labels_in, is_headless, service_labels, want, want_changed)) in
        cases.into_iter().enumerate()
    {
        let mut svc = svc_foo();
        svc.spec.as_mut().unwrap().cluster_ip =
            Some(if is_headless { "None" } else { "1.1.1.1" }.into());
        svc.metadata.labels = Some(labels(&service_labels));
        let current = labels(&slice_labels_in);
        let (got, changed) = slice_labels(Some(&current), &svc);
        assert_eq!(got, labels(&want), "case {i}");
        assert_eq!(changed, want_changed, "case {i}");
    }
}

// ---------------------------------------------------------------------------------------
// §1.16 vectors

#[test]
fn es01_reconcile_empty() {
    let p = plan(&svc_foo(), &[], &node1(), &[], &options(100));
    assert!(p.update.is_empty() && p.delete.is_empty() && p.errors.is_empty());
    assert_eq!(p.create.len(), 1);
    let s = &p.create[0];
    assert_eq!(s.metadata.generate_name.as_deref(), Some("foo-"));
    assert_eq!(s.metadata.name, None);
    assert_eq!(s.metadata.namespace.as_deref(), Some("test"));
    assert_eq!(s.address_type, "IPv4");
    assert_eq!(s.ports, Some(vec![]));
    assert!(s.endpoints.is_empty());
    assert_eq!(s.metadata.labels, Some(foo_labels(true, &[])));
    assert_eq!(
        s.metadata.annotations,
        Some(labels(&[(ANNOTATION_TRIGGER_TIME, "2018-01-01T00:00:00Z")]))
    );
    assert_eq!(
        s.metadata.owner_references,
        Some(vec![OwnerReference {
            api_version: "v1".into(),
            kind: "Service".into(),
            name: "foo".into(),
            uid: "test-foo".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }])
    );
    let stats = &p.stats[0];
    assert_eq!(
        (
            stats.desired_slices,
            stats.actual_slices,
            stats.desired_endpoints
        ),
        (1, 1, 0)
    );
}

#[test]
fn es02_reconcile_one_pod() {
    let mut full = full_pod(1, true, false);
    full.status.as_mut().unwrap().pod_ips = Some(vec![
        PodIP {
            ip: "1.2.3.4".into(),
        },
        PodIP {
            ip: "1234::5678:0000:0000:9abc:def0".into(),
        },
    ]);
    full.spec.as_mut().unwrap().hostname = Some("example-hostname".into());
    let pod1 = PodInfo::from_pod(&full);
    let zoned = nodes(&[node("node-1", Some("us-central1-a"))]);
    let expected = |address: &str| Endpoint {
        addresses: vec![address.into()],
        conditions: Some(EndpointConditions {
            ready: Some(true),
            serving: Some(true),
            terminating: Some(false),
        }),
        zone: Some("us-central1-a".into()),
        node_name: Some("node-1".into()),
        target_ref: Some(ObjectReference {
            kind: Some("Pod".into()),
            namespace: Some("test".into()),
            name: Some("pod1".into()),
            uid: Some("uid-pod1".into()),
            ..ObjectReference::default()
        }),
        ..Endpoint::default()
    };
    let v4 = "1.2.3.4";
    let v6 = "1234::5678:0:0:9abc:def0";
    type Case<'a> = (
        &'a str,
        Option<Vec<&'a str>>,
        Option<&'a str>,
        Vec<(&'a str, &'a str)>,
        Vec<(&'a str, &'a str)>,
        bool,
    );
    let cases: Vec<Case> = vec![
        (
            "ipv4",
            Some(vec!["IPv4"]),
            None,
            vec![],
            vec![("IPv4", v4)],
            true,
        ),
        (
            "ipv4-clusterip",
            Some(vec!["IPv4"]),
            Some("1.1.1.1"),
            vec![],
            vec![("IPv4", v4)],
            false,
        ),
        (
            "ipv4-labels",
            Some(vec!["IPv4"]),
            None,
            vec![("foo", "bar")],
            vec![("IPv4", v4)],
            true,
        ),
        (
            "ipv4-bad-labels",
            Some(vec!["IPv4"]),
            None,
            vec![
                (LABEL_SERVICE_NAME, "bad"),
                (LABEL_MANAGED_BY, "actor"),
                (LABEL_HEADLESS, "invalid"),
            ],
            vec![("IPv4", v4)],
            true,
        ),
        (
            "ipv6",
            Some(vec!["IPv6"]),
            None,
            vec![],
            vec![("IPv6", v6)],
            true,
        ),
        (
            "ipv6-clusterip",
            Some(vec!["IPv6"]),
            Some("1234::5678:0000:0000:9abc:def1"),
            vec![],
            vec![("IPv6", v6)],
            false,
        ),
        (
            "dualstack",
            Some(vec!["IPv4", "IPv6"]),
            Some("10.0.0.10"),
            vec![],
            vec![("IPv4", v4), ("IPv6", v6)],
            false,
        ),
        (
            "no-family",
            None,
            Some("10.0.0.10"),
            vec![],
            vec![("IPv4", v4)],
            false,
        ),
    ];
    for (name, families, cluster_ip, service_labels, want, headless) in cases {
        let mut svc = svc_foo();
        let spec = svc.spec.as_mut().unwrap();
        spec.ip_families = families.map(|f| f.into_iter().map(str::to_owned).collect());
        spec.cluster_ip = cluster_ip.map(str::to_owned);
        if !service_labels.is_empty() {
            svc.metadata.labels = Some(labels(&service_labels));
        }
        let extra: Vec<(&str, &str)> = if name == "ipv4-labels" {
            vec![("foo", "bar")]
        } else {
            vec![]
        };
        let p = plan(
            &svc,
            std::slice::from_ref(&pod1),
            &zoned,
            &[],
            &options(100),
        );
        assert!(p.update.is_empty() && p.delete.is_empty(), "{name}");
        assert_eq!(p.create.len(), want.len(), "{name}");
        for (slice, (address_type, address)) in p.create.iter().zip(&want) {
            assert_eq!(slice.address_type, *address_type, "{name}");
            assert_eq!(slice.endpoints, vec![expected(address)], "{name}");
            assert_eq!(
                slice.metadata.labels,
                Some(foo_labels(headless, &extra)),
                "{name}"
            );
            assert_eq!(
                slice
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(ANNOTATION_TRIGGER_TIME))
                    .map(String::as_str),
                Some("2018-01-01T00:00:00Z"),
                "{name}"
            );
        }
    }
}

fn placeholder_for(svc: &Service, name: &str) -> EndpointSlice {
    let mut s = slice::new_slice(svc, "IPv4", vec![]);
    s.metadata.name = Some(name.into());
    s
}

#[test]
fn es03_reconcile_one_endpoint_slice() {
    let svc = svc_foo();
    // a) nothing exists: placeholder created
    let p = plan(&svc, &[], &node1(), &[], &options(100));
    assert_eq!((p.create.len(), p.update.len(), p.delete.len()), (1, 0, 0));
    // b) the exact placeholder exists: nothing to do
    let existing = vec![placeholder_for(&svc, "foo-abc")];
    let p = plan(&svc, &[], &node1(), &existing, &options(100));
    assert!(p.is_noop(), "{p:?}");
    // c) a stale slice with ports and an extra label: recycled into the placeholder
    let mut stale = owned_slice("foo-1", &svc, vec![]);
    stale
        .metadata
        .labels
        .as_mut()
        .unwrap()
        .insert("bar".into(), "baz".into());
    let p = plan(&svc, &[], &node1(), &[stale], &options(100));
    assert_eq!((p.create.len(), p.update.len(), p.delete.len()), (0, 1, 0));
    let u = &p.update[0];
    assert_eq!(u.metadata.name.as_deref(), Some("foo-1"));
    assert_eq!(u.ports, Some(vec![]));
    assert_eq!(u.metadata.labels, Some(foo_labels(true, &[])));
}

#[test]
fn es04_publish_not_ready_addresses() {
    let mut svc = svc_foo();
    svc.spec.as_mut().unwrap().publish_not_ready_addresses = Some(true);
    let p = plan(
        &svc,
        &pods(50, |i| !i.is_multiple_of(3)),
        &node1(),
        &[],
        &options(100),
    );
    assert_eq!(lengths(&p.create), vec![50]);
    for e in &p.create[0].endpoints {
        let name = e.target_ref.as_ref().unwrap().name.clone().unwrap();
        let n: usize = name.trim_start_matches("pod").parse().unwrap();
        assert_eq!(conditions(e), (true, !n.is_multiple_of(3), false), "{name}");
    }
}

#[test]
fn es05_many_pods() {
    let p = plan(
        &svc_foo(),
        &pods(250, |i| !i.is_multiple_of(3)),
        &node1(),
        &[],
        &options(100),
    );
    assert_eq!(lengths(&p.create), vec![50, 100, 100]);
    let s = &p.stats[0];
    assert_eq!(
        (
            s.desired_slices,
            s.actual_slices,
            s.desired_endpoints,
            s.endpoints_added
        ),
        (3, 3, 250, 250)
    );
}

#[test]
fn es06_hundred_and_one_pods() {
    let p = plan(
        &svc_foo(),
        &pods(101, |_| true),
        &node1(),
        &[],
        &options(100),
    );
    assert_eq!(lengths(&p.create), vec![1, 100]);
    assert_eq!(p.stats[0].desired_slices, 2);
}

fn slice_of(
    name: &str,
    svc: &Service,
    all: &[PodInfo],
    which: impl Fn(usize) -> bool,
) -> EndpointSlice {
    let endpoints = all
        .iter()
        .enumerate()
        .filter(|(i, _)| which(*i))
        .map(|(_, p)| endpoint_for(p, false))
        .collect();
    owned_slice(name, svc, endpoints)
}

#[test]
fn es07_some_preexisting() {
    let svc = svc_foo();
    let all = pods(250, |i| !i.is_multiple_of(3));
    // Upstream's slices carry no labels at all and are handed to the reconciler directly;
    // here they carry only the two listing labels (the planner selects slices by them),
    // which is the same for the label comparison: no non-reserved labels.
    let slice1 = slice_of("foo-1", &svc, &all, |i| i % 4 == 1 && i <= 245);
    let slice2 = slice_of("foo-2", &svc, &all, |i| i % 4 == 3 && i <= 243);
    assert_eq!((slice1.endpoints.len(), slice2.endpoints.len()), (62, 61));
    let existing = vec![slice1, slice2];
    let p = plan(&svc, &all, &node1(), &existing, &options(100));
    assert_eq!(lengths(&p.create), vec![100]);
    assert_eq!(names(&p.update), vec!["foo-1"]);
    assert_eq!(p.update[0].endpoints.len(), 89);
    assert!(p.delete.is_empty());
    assert_eq!(lengths(&apply(&existing, &p)), vec![61, 89, 100]);
    let s = &p.stats[0];
    assert_eq!(
        (s.endpoints_added, s.desired_slices, s.actual_slices),
        (127, 3, 3)
    );
    // foo-2 untouched: it is neither updated nor deleted, and keeps its labels (no
    // headless label, though the Service is headless).
    assert!(!names(&p.update).contains(&"foo-2"));
    let stored = apply(&existing, &p);
    assert_eq!(stored[1].metadata.labels, existing[1].metadata.labels);
    // foo-1 was unchanged before it was topped up, so it keeps its labels as they were.
    assert_eq!(p.update[0].metadata.labels, existing[0].metadata.labels);
}

#[test]
fn es08_some_preexisting_worse_allocation() {
    let svc = svc_foo();
    let all = pods(300, |i| !i.is_multiple_of(3));
    let existing = vec![
        slice_of("foo-1", &svc, &all, |i| i < 74),
        slice_of("foo-2", &svc, &all, |i| (74..148).contains(&i)),
    ];
    let p = plan(&svc, &all, &node1(), &existing, &options(100));
    assert_eq!(lengths(&p.create), vec![52, 100]);
    assert!(p.update.is_empty() && p.delete.is_empty());
    assert_eq!(lengths(&apply(&existing, &p)), vec![52, 74, 74, 100]);
    let s = &p.stats[0];
    assert_eq!((s.desired_slices, s.actual_slices), (3, 4));
}

#[test]
fn es09_updating_target_port() {
    let mut svc = svc_foo();
    let all = pods(250, |i| !i.is_multiple_of(3));
    let first = plan(&svc, &all, &node1(), &[], &options(100));
    let existing = apply(&[], &first);
    assert_eq!(lengths(&existing), vec![50, 100, 100]);
    svc.spec.as_mut().unwrap().ports =
        Some(vec![service_port("foo", 80, IntOrString::Int(81), "TCP")]);
    let p = plan(&svc, &all, &node1(), &existing, &options(100));
    assert_eq!((p.create.len(), p.update.len(), p.delete.len()), (0, 3, 0));
    assert_eq!(lengths(&p.update), vec![50, 100, 100]);
    for u in &p.update {
        assert_eq!(u.ports.as_ref().unwrap()[0].port, Some(81));
    }
}

#[test]
fn es10_service_labels_updating() {
    let mut svc = svc_foo();
    let all = pods(250, |i| !i.is_multiple_of(3));
    let existing = apply(&[], &plan(&svc, &all, &node1(), &[], &options(100)));
    svc.metadata.labels = Some(labels(&[("foo", "bar")]));
    let p = plan(&svc, &all, &node1(), &existing, &options(100));
    assert_eq!((p.create.len(), p.update.len(), p.delete.len()), (0, 3, 0));
    for u in &p.update {
        assert_eq!(u.metadata.labels, Some(foo_labels(true, &[("foo", "bar")])));
    }
}

#[test]
fn es11_service_reserved_labels() {
    let mut svc = svc_foo();
    let all = pods(250, |i| !i.is_multiple_of(3));
    let existing = apply(&[], &plan(&svc, &all, &node1(), &[], &options(100)));
    svc.metadata.labels = Some(labels(&[
        (LABEL_SERVICE_NAME, "bad"),
        (LABEL_MANAGED_BY, "actor"),
        (LABEL_HEADLESS, "invalid"),
    ]));
    let p = plan(&svc, &all, &node1(), &existing, &options(100));
    assert!(p.is_noop(), "{p:?}");
}

#[test]
fn es12_recycling() {
    let mut svc = svc_foo();
    let all = pods(300, |i| !i.is_multiple_of(3));
    let existing: Vec<EndpointSlice> = (0..10)
        .map(|k| slice_of(&format!("foo-{k}"), &svc, &all, |i| i / 30 == k))
        .collect();
    let p = plan(&svc, &all, &node1(), &existing, &options(100));
    assert!(p.is_noop(), "first reconcile: {p:?}");
    svc.spec.as_mut().unwrap().ports =
        Some(vec![service_port("foo", 80, IntOrString::Int(81), "TCP")]);
    let p = plan(&svc, &all, &node1(), &existing, &options(100));
    assert_eq!((p.create.len(), p.update.len(), p.delete.len()), (0, 3, 7));
    assert_eq!(lengths(&apply(&existing, &p)), vec![100, 100, 100]);
}

#[test]
fn es13_update_packing() {
    let svc = svc_foo();
    let mut all: Vec<PodInfo> = (0..80)
        .chain(100..120)
        .map(|i| pod(i, true, false))
        .collect();
    let slice1 = slice_of("foo-1", &svc, &all, |i| i < 80);
    let slice2 = slice_of("foo-2", &svc, &all, |i| i >= 80);
    for (index, p) in all.iter_mut().enumerate() {
        if index % 10 == 0 {
            p.ready = false;
        }
    }
    all.extend((200..215).map(|i| pod(i, true, false)));
    let existing = vec![slice1, slice2];
    let p = plan(&svc, &all, &node1(), &existing, &options(100));
    assert!(p.create.is_empty() && p.delete.is_empty());
    assert_eq!(names(&p.update), vec!["foo-1", "foo-2"]);
    assert_eq!(lengths(&p.update), vec![20, 95]);
    assert_eq!(p.update[0].endpoints.len(), 95);
    assert_eq!(p.stats[0].endpoints_added, 15);
}

#[test]
fn es14_replace_deprecated_ip_address_type() {
    let svc = svc_foo();
    let all = pods(130, |i| !i.is_multiple_of(3));
    let mut a = slice_of("foo-ip-1", &svc, &all, |i| i < 80);
    let mut b = slice_of("foo-ip-2", &svc, &all, |i| i >= 80);
    a.address_type = "IP".into();
    b.address_type = "IP".into();
    let p = plan(&svc, &all, &node1(), &[a, b], &options(100));
    assert_eq!(lengths(&p.create), vec![30, 100]);
    assert!(p.create.iter().all(|s| s.address_type == "IPv4"));
    assert!(p.update.is_empty());
    assert_eq!(names(&p.delete), vec!["foo-ip-1", "foo-ip-2"]);
}

#[test]
fn es15_recreation() {
    let svc = svc_foo();
    let all = vec![pod(1, true, false)];
    let existing = vec![slice_of("foo-1", &svc, &all, |_| true)];
    assert!(plan(&svc, &all, &node1(), &existing, &options(100)).is_noop());
    let mut foreign = existing[0].clone();
    foreign.metadata.owner_references.as_mut().unwrap()[0].uid = "different".into();
    let p = plan(&svc, &all, &node1(), &[foreign.clone()], &options(100));
    assert_eq!((p.create.len(), p.update.len()), (1, 0));
    assert_eq!(names(&p.delete), vec!["foo-1"]);
    assert_eq!(apply(&[foreign], &p).len(), 1);
}

#[test]
fn es16_named_ports() {
    let mut svc = svc_foo();
    svc.metadata.name = Some("named-port-example".into());
    svc.spec.as_mut().unwrap().ports = Some(vec![ServicePort {
        name: Some(String::new()),
        port: 80,
        target_port: Some(IntOrString::String("http".into())),
        protocol: Some("TCP".into()),
        ..ServicePort::default()
    }]);
    let all: Vec<PodInfo> = (0..300)
        .map(|i| {
            let mut p = pod(i, !i.is_multiple_of(3), false);
            p.container_ports = [ContainerPortInfo {
                name: "http".into(),
                protocol: "TCP".into(),
                container_port: 8080 + (i % 5) as i32,
            }]
            .into();
            p
        })
        .collect();
    let p = plan(&svc, &all, &node1(), &[], &options(100));
    assert_eq!(lengths(&p.create), vec![60; 5]);
    let mut ports: Vec<_> = p.create.iter().map(ports_set).collect();
    ports.sort();
    let want: Vec<_> = (0..5)
        .map(|k| vec![(String::new(), 8080 + k, "TCP".to_owned(), None)])
        .collect();
    assert_eq!(ports, want);
}

#[test]
fn es17_max_endpoints_per_slice() {
    let all = pods(250, |i| !i.is_multiple_of(3));
    for (max, want) in [
        (50, vec![50, 50, 50, 50, 50]),
        (80, vec![10, 80, 80, 80]),
        (150, vec![100, 150]),
        (250, vec![250]),
        (500, vec![250]),
    ] {
        let p = plan(&svc_foo(), &all, &node1(), &[], &options(max));
        assert_eq!(lengths(&p.create), want, "max {max}");
    }
}

#[test]
fn es18_finalize_and_service_deletion() {
    let live = svc_foo();
    let mut deleting = svc_foo();
    deleting.metadata.deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
    let to_create = || {
        let mut s = slice::new_slice(&live, "IPv4", foo_ports());
        s.endpoints = vec![endpoint_for(&pod(1, true, false), false)];
        s
    };
    let to_update = || {
        let mut s = owned_slice(
            "to-update",
            &live,
            vec![endpoint_for(&pod(2, true, false), false)],
        );
        s.metadata
            .labels
            .as_mut()
            .unwrap()
            .insert("x".into(), "y".into());
        s
    };
    let to_delete = IndexedSlice::new(owned_slice("to-delete", &live, vec![]));
    let options = options(100);
    let nodes = node1();
    let run = |svc: &Service, create: bool, delete: bool| {
        let context = reconcile::Context::new(svc, &nodes, &options);
        let (c, u, d) = context.finalize(
            &[],
            if create { vec![to_create()] } else { vec![] },
            vec![to_update()],
            if delete { vec![&to_delete] } else { vec![] },
        );
        (c.len(), names(&u).join(","), d.len())
    };
    assert_eq!(run(&live, true, false), (1, "to-update".into(), 0));
    assert_eq!(run(&deleting, true, false), (0, "to-update".into(), 0));
    assert_eq!(run(&live, true, true), (0, "to-update,to-delete".into(), 0));
    assert_eq!(
        run(&deleting, true, true),
        (0, "to-update,to-delete".into(), 0)
    );
    assert_eq!(run(&deleting, false, true), (0, "to-update".into(), 1));
}

#[test]
fn es18_pending_deletion_suppresses_placeholder() {
    let mut svc = svc_foo();
    svc.metadata.deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
    assert!(plan(&svc, &[], &node1(), &[], &options(100)).is_noop());
}

#[test]
fn es19_pod_missing_node() {
    let svc = svc_foo();
    let mut pod0 = pod(0, true, false);
    pod0.node_name = "node-0".into();
    let mut pod1 = pod(1, true, false);
    pod1.node_name = "node-1".into();
    let all = vec![pod0, pod1];
    let node0 = nodes(&[node("node-0", None)]);
    let none = nodes(&[]);
    let with_publish = |publish: bool| {
        let mut s = svc.clone();
        s.spec.as_mut().unwrap().publish_not_ready_addresses = Some(publish);
        s
    };
    let node_error = PlanError::NodeNotFound {
        pod: "pod1".into(),
        namespace: "test".into(),
        service: "foo".into(),
        node: "node-1".into(),
    };
    assert_eq!(
        node_error.to_string(),
        "skipping Pod pod1 for Service test/foo: Node node-1 Not Found"
    );

    // create, publishNotReady=false, nodes {node-0}
    let p = plan(&with_publish(false), &all, &node0, &[], &options(100));
    assert_eq!(p.errors, vec![node_error.clone()]);
    assert_eq!(lengths(&p.create), vec![1]);
    // create, publishNotReady=true, nodes {node-0}
    let p = plan(&with_publish(true), &all, &node0, &[], &options(100));
    assert!(p.errors.is_empty());
    assert_eq!(lengths(&p.create), vec![2]);

    let both = apply(&[], &p);
    // update (slice has both), false, {node-0}: error, 1 update, removed 1
    let p = plan(&with_publish(false), &all, &node0, &both, &options(100));
    assert_eq!(p.errors, vec![node_error.clone()]);
    assert_eq!((p.create.len(), p.update.len(), p.delete.len()), (0, 1, 0));
    assert_eq!(p.stats[0].endpoints_removed, 1);
    // update, true, no nodes / {node-0}: ok, no writes
    assert!(plan(&with_publish(true), &all, &none, &both, &options(100)).is_noop());
    assert!(plan(&with_publish(true), &all, &node0, &both, &options(100)).is_noop());
    // update, false, no nodes: both skipped; slice becomes the placeholder through an update
    let p = plan(&with_publish(false), &all, &none, &both, &options(100));
    assert_eq!(p.errors.len(), 2);
    assert_eq!((p.create.len(), p.update.len(), p.delete.len()), (0, 1, 0));
    assert!(p.update[0].endpoints.is_empty());
    assert_eq!(p.update[0].ports, Some(vec![]));
    assert_eq!(p.stats[0].endpoints_removed, 2);
}

#[test]
fn es20_headless_service_without_ports_does_not_churn() {
    let mut svc = svc_foo();
    let spec = svc.spec.as_mut().unwrap();
    spec.cluster_ip = Some("None".into());
    spec.ports = None;
    let all = vec![pod(1, true, false)];
    let first = plan(&svc, &all, &node1(), &[], &options(100));
    assert_eq!(first.create.len(), 1);
    assert_eq!(first.create[0].ports, Some(vec![]));
    let stored = apply(&[], &first);
    assert_eq!(stored[0].ports, None);
    assert!(plan(&svc, &all, &node1(), &stored, &options(100)).is_noop());
}

fn sync_service() -> Service {
    let mut svc = svc_foo();
    svc.metadata.name = Some("foobar".into());
    svc.metadata.namespace = Some("default".into());
    svc.metadata.uid = Some("foobar-uid".into());
    svc.metadata.creation_timestamp = Some(Time(Timestamp::from_second(1_600_000_000).unwrap()));
    svc.spec.as_mut().unwrap().ports = Some(vec![
        service_port("tcp-example", 80, IntOrString::Int(80), "TCP"),
        service_port("udp-example", 161, IntOrString::Int(161), "UDP"),
        service_port("sctp-example", 3456, IntOrString::Int(3456), "SCTP"),
    ]);
    svc
}

fn sync_pod(n: usize, ips: &[&str], ready: bool, terminating: bool) -> PodInfo {
    let mut p = pod(n, ready, terminating);
    p.namespace = "default".into();
    p.ips = ips.iter().map(|ip| pod::canonical_ip(ip)).collect();
    p
}

#[test]
fn es21_sync_service() {
    let svc = sync_service();
    let trigger = svc.metadata.creation_timestamp.clone().map(|t| t.0);
    let opts = PlanOptions {
        trigger_time: trigger,
        ..PlanOptions::default()
    };
    type Summary = Vec<(String, Vec<String>, (bool, bool, bool))>;
    let summarize = |p: &EndpointSlicePlan| -> Summary {
        assert_eq!(p.create.len(), 1);
        p.create[0]
            .endpoints
            .iter()
            .map(|e| {
                (
                    e.target_ref.as_ref().unwrap().name.clone().unwrap(),
                    e.addresses.clone(),
                    conditions(e),
                )
            })
            .collect()
    };
    let dual = ["10.0.0.2", "fd08::5678:0000:0000:9abc:def0"];
    // a) IPv4
    let p = plan(
        &svc,
        &[
            sync_pod(0, &["10.0.0.1"], true, false),
            sync_pod(1, &dual, true, false),
        ],
        &node1(),
        &[],
        &opts,
    );
    assert_eq!(
        ports_set(&p.create[0]),
        vec![
            ("sctp-example".into(), 3456, "SCTP".into(), None),
            ("tcp-example".into(), 80, "TCP".into(), None),
            ("udp-example".into(), 161, "UDP".into(), None),
        ]
    );
    assert_eq!(
        summarize(&p),
        vec![
            ("pod0".into(), vec!["10.0.0.1".into()], (true, true, false)),
            ("pod1".into(), vec!["10.0.0.2".into()], (true, true, false)),
        ]
    );
    assert_eq!(
        p.create[0].metadata.annotations,
        Some(labels(&[(ANNOTATION_TRIGGER_TIME, "2020-09-13T12:26:40Z")]))
    );
    // b) IPv6
    let mut v6 = svc.clone();
    v6.spec.as_mut().unwrap().ip_families = Some(vec!["IPv6".into()]);
    let p = plan(
        &v6,
        &[
            sync_pod(0, &["10.0.0.1"], true, false),
            sync_pod(1, &dual, true, false),
        ],
        &node1(),
        &[],
        &opts,
    );
    assert_eq!(
        summarize(&p),
        vec![(
            "pod1".into(),
            vec!["fd08::5678:0:0:9abc:def0".into()],
            (true, true, false)
        )]
    );
    // c) / d) terminating pod1, ready and not ready
    for (ready, want) in [(true, (false, true, true)), (false, (false, false, true))] {
        let p = plan(
            &svc,
            &[
                sync_pod(0, &["10.0.0.1"], true, false),
                sync_pod(1, &dual, ready, true),
            ],
            &node1(),
            &[],
            &opts,
        );
        assert_eq!(summarize(&p)[1].2, want);
    }
    // e) / f) two pods with the same IP stay two endpoints
    for (ready1, want1) in [(false, (false, false, false)), (true, (true, true, false))] {
        let p = plan(
            &svc,
            &[
                sync_pod(0, &["10.0.0.1"], true, false),
                sync_pod(1, &["10.0.0.1"], ready1, false),
            ],
            &node1(),
            &[],
            &opts,
        );
        assert_eq!(
            summarize(&p),
            vec![
                ("pod0".into(), vec!["10.0.0.1".into()], (true, true, false)),
                ("pod1".into(), vec!["10.0.0.1".into()], want1),
            ]
        );
    }
}

#[test]
fn es22_controller_early_exits_and_selection() {
    let all = vec![pod(1, true, false)];
    let mut no_selector = svc_foo();
    no_selector.spec.as_mut().unwrap().selector = None;
    assert!(plan(&no_selector, &all, &node1(), &[], &options(100)).is_noop());
    let mut external = svc_foo();
    external.spec.as_mut().unwrap().type_ = Some("ExternalName".into());
    assert!(plan(&external, &all, &node1(), &[], &options(100)).is_noop());

    let mut other = pod(2, true, false);
    other.labels = labels(&[("foo", "boo")]).into();
    let p = plan(
        &svc_foo(),
        &[pod(1, true, false), other],
        &node1(),
        &[],
        &options(100),
    );
    assert_eq!(p.create.len(), 1);
    assert_eq!(endpoint_names(&p.create[0]), vec!["pod1"]);

    // a slice being deleted is ignored
    let svc = svc_foo();
    let mut stored = apply(&[], &plan(&svc, &all, &node1(), &[], &options(100)));
    let mut dying = stored[0].clone();
    dying.metadata.name = Some("foo-dying".into());
    dying.metadata.deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
    stored.push(dying);
    assert!(plan(&svc, &all, &node1(), &stored, &options(100)).is_noop());

    // label selection: two matching slices, three that are not ours
    let matching = |name: &str| {
        let mut s = placeholder_for(&svc, name);
        s.ports = None;
        s
    };
    let mut partially = matching("partially-matching");
    partially
        .metadata
        .labels
        .as_mut()
        .unwrap()
        .remove(LABEL_MANAGED_BY);
    let mut other_service = matching("not-matching-1");
    other_service
        .metadata
        .labels
        .as_mut()
        .unwrap()
        .insert(LABEL_SERVICE_NAME.into(), "bar".into());
    let mut other_manager = matching("not-matching-2");
    other_manager
        .metadata
        .labels
        .as_mut()
        .unwrap()
        .insert(LABEL_MANAGED_BY.into(), "other".into());
    let existing = vec![
        matching("matching-1"),
        matching("matching-2"),
        partially,
        other_service,
        other_manager,
    ];
    // Upstream: [update, delete] (one becomes the placeholder, the other goes). The update
    // would only stamp the trigger time on a slice already equal to the placeholder, so
    // this planner leaves it out (kubernetes#108231); the end state is the same.
    let p = plan(&svc, &[], &node1(), &existing, &options(100));
    assert!(p.create.is_empty());
    assert!(p.update.is_empty(), "{p:?}");
    assert_eq!(names(&p.delete), vec!["matching-2"]);
    let stored = apply(&existing, &p);
    assert_eq!(
        names(&stored),
        vec![
            "matching-1",
            "partially-matching",
            "not-matching-1",
            "not-matching-2"
        ]
    );
    assert!(plan(&svc, &[], &node1(), &stored, &options(100)).is_noop());
}

#[test]
fn es23_scale_up_without_splitting() {
    let svc = svc_foo();
    let all = pods(110, |_| true);
    let existing = vec![slice_of("foo-1", &svc, &all, |i| i < 50)];
    let p = plan(&svc, &all, &node1(), &existing, &options(100));
    assert!(p.update.is_empty() && p.delete.is_empty());
    assert_eq!(lengths(&p.create), vec![60]);
    assert_eq!(lengths(&apply(&existing, &p)), vec![50, 60]);

    let p = plan(&svc, &all[..80], &node1(), &existing, &options(100));
    assert!(p.create.is_empty() && p.delete.is_empty());
    assert_eq!(names(&p.update), vec!["foo-1"]);
    assert_eq!(lengths(&p.update), vec![80]);
}

#[test]
fn es24_selector_change() {
    let mut svc = svc_foo();
    let mk = |n: usize, app: &str| {
        let mut p = pod(n, true, false);
        p.labels = labels(&[("app", app)]).into();
        p
    };
    let (a, b, c, d) = (mk(1, "a"), mk(2, "a"), mk(3, "b"), mk(4, "b"));
    let existing = vec![owned_slice(
        "foo-1",
        &svc,
        vec![endpoint_for(&a, false), endpoint_for(&b, false)],
    )];
    svc.spec.as_mut().unwrap().selector = Some(labels(&[("app", "b")]));
    let all = vec![a.clone(), b, c.clone(), d];
    let p = plan(&svc, &all, &node1(), &existing, &options(100));
    assert!(p.create.is_empty() && p.delete.is_empty());
    assert_eq!(names(&p.update), vec!["foo-1"]);
    assert_eq!(endpoint_names(&p.update[0]), vec!["pod3", "pod4"]);
    assert_eq!(
        (p.stats[0].endpoints_added, p.stats[0].endpoints_removed),
        (2, 2)
    );

    // keeping A: selector matches A and C only
    let mut a2 = a;
    std::sync::Arc::make_mut(&mut a2.labels).insert("keep".into(), "yes".into());
    let mut c2 = c;
    std::sync::Arc::make_mut(&mut c2.labels).insert("keep".into(), "yes".into());
    svc.spec.as_mut().unwrap().selector = Some(labels(&[("keep", "yes")]));
    let p = plan(&svc, &[a2, c2], &node1(), &existing, &options(100));
    assert_eq!(names(&p.update), vec!["foo-1"]);
    assert_eq!(endpoint_names(&p.update[0]), vec!["pod1", "pod3"]);
}

#[test]
fn es25_named_port_defined_by_some_pods() {
    let mut svc = svc_foo();
    svc.spec.as_mut().unwrap().ports = Some(vec![service_port(
        "http",
        80,
        IntOrString::String("http".into()),
        "TCP",
    )]);
    let mut p1 = pod(1, true, false);
    p1.container_ports = [ContainerPortInfo {
        name: "http".into(),
        protocol: "TCP".into(),
        container_port: 8080,
    }]
    .into();
    let p2 = pod(2, true, false);
    let p = plan(&svc, &[p1, p2], &node1(), &[], &options(100));
    assert_eq!(p.create.len(), 2);
    let mut summary: Vec<_> = p
        .create
        .iter()
        .map(|s| (ports_set(s), endpoint_names(s)))
        .collect();
    summary.sort();
    assert_eq!(
        summary,
        vec![
            (vec![], vec!["pod2".to_owned()]),
            (
                vec![("http".into(), 8080, "TCP".into(), None)],
                vec!["pod1".to_owned()]
            ),
        ]
    );
}

#[test]
fn es26_pods_filtered_out() {
    let mut failed = full_pod(1, true, false);
    failed.status.as_mut().unwrap().phase = Some("Failed".into());
    let mut succeeded = full_pod(2, true, false);
    succeeded.status.as_mut().unwrap().phase = Some("Succeeded".into());
    let mut no_ip = full_pod(3, true, false);
    no_ip.status.as_mut().unwrap().pod_ip = None;
    no_ip.status.as_mut().unwrap().pod_ips = None;
    let mut pod_ip_only = full_pod(4, true, false);
    pod_ip_only.status.as_mut().unwrap().pod_ips = Some(vec![]);
    let all: Vec<PodInfo> = [failed, succeeded, no_ip, pod_ip_only]
        .iter()
        .map(PodInfo::from_pod)
        .collect();
    assert!(all[3].should_be_in_endpoints(true));
    let p = plan(&svc_foo(), &all, &node1(), &[], &options(100));
    assert_eq!(p.create.len(), 1);
    assert!(p.create[0].endpoints.is_empty());
}

#[test]
fn es27_dual_stack_with_ipv4_only_pods() {
    let mut svc = svc_foo();
    svc.spec.as_mut().unwrap().ip_families = Some(vec!["IPv4".into(), "IPv6".into()]);
    let p = plan(&svc, &pods(2, |_| true), &node1(), &[], &options(100));
    assert_eq!(p.create.len(), 2);
    assert_eq!(p.create[0].address_type, "IPv4");
    assert_eq!(p.create[0].endpoints.len(), 2);
    assert_eq!(p.create[1].address_type, "IPv6");
    assert!(p.create[1].endpoints.is_empty());
    assert_eq!(p.create[1].ports, Some(vec![]));
    // stable once applied
    let stored = apply(&[], &p);
    assert!(plan(&svc, &pods(2, |_| true), &node1(), &stored, &options(100)).is_noop());
}

#[test]
fn es28_ready_to_terminating_updates_in_place() {
    let svc = svc_foo();
    let a = pod(1, true, false);
    let existing = vec![owned_slice("foo-1", &svc, vec![endpoint_for(&a, false)])];
    let p = plan(
        &svc,
        &[pod(1, true, true)],
        &node1(),
        &existing,
        &options(100),
    );
    assert!(p.create.is_empty() && p.delete.is_empty());
    assert_eq!(names(&p.update), vec!["foo-1"]);
    assert_eq!(conditions(&p.update[0].endpoints[0]), (false, true, true));
}

#[test]
fn trigger_time_annotation_removed_when_zero() {
    let svc = svc_foo();
    let existing = apply(
        &[],
        &plan(&svc, &[pod(1, true, false)], &node1(), &[], &options(100)),
    );
    let no_trigger = PlanOptions::default();
    let p = plan(
        &svc,
        &[pod(1, false, false)],
        &node1(),
        &existing,
        &no_trigger,
    );
    assert_eq!(p.update.len(), 1);
    assert!(
        p.update[0]
            .metadata
            .annotations
            .as_ref()
            .is_none_or(|a| !a.contains_key(ANNOTATION_TRIGGER_TIME))
    );
}

#[test]
fn equal_update_is_never_written() {
    // An endpoint differing only in order or in identity-irrelevant ways must not churn:
    // a slice holding the same endpoints in reverse order is left alone.
    let svc = svc_foo();
    let all = pods(3, |_| true);
    let mut endpoints: Vec<Endpoint> = all.iter().map(|p| endpoint_for(p, false)).collect();
    endpoints.reverse();
    let existing = vec![owned_slice("foo-1", &svc, endpoints)];
    assert!(plan(&svc, &all, &node1(), &existing, &options(100)).is_noop());
}

// ---------------------------------------------------------------------------------------
// §1.13 TestReconcile_TrafficDistribution

fn zone_hint_distribution(p: &EndpointSlicePlan) -> (BTreeMap<String, usize>, usize) {
    let mut by_zone = BTreeMap::new();
    let mut cross = 0;
    for s in &p.create {
        for e in &s.endpoints {
            let hint = e
                .hints
                .as_ref()
                .and_then(|h| h.for_zones.as_ref())
                .filter(|z| z.len() == 1)
                .map(|z| z[0].name.clone())
                .unwrap_or_default();
            if !hint.is_empty() && e.zone.as_deref() != Some(hint.as_str()) {
                cross += 1;
            }
            *by_zone.entry(hint).or_insert(0) += 1;
        }
    }
    (by_zone, cross)
}

fn node_hints(p: &EndpointSlicePlan) -> BTreeMap<String, usize> {
    let mut by_node = BTreeMap::new();
    for e in p.create.iter().flat_map(|s| &s.endpoints) {
        for n in e.hints.iter().flat_map(|h| h.for_nodes.iter().flatten()) {
            *by_node.entry(n.name.clone()).or_insert(0) += 1;
        }
    }
    by_node
}

#[test]
fn traffic_distribution_vectors() {
    let topology = nodes(&[
        node("node-0", Some("zone-a")),
        node("node-1", Some("zone-b")),
        node("node-2", Some("zone-c")),
    ]);
    let all: Vec<PodInfo> = [0, 1, 1, 1, 2, 2]
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let mut p = pod(i, true, false);
            p.node_name = format!("node-{n}").into();
            p
        })
        .collect();
    let run = |td: Option<&str>, annotation: &str, prefer_same: bool| {
        let mut svc = svc_foo();
        svc.spec.as_mut().unwrap().traffic_distribution = td.map(str::to_owned);
        svc.metadata.annotations = Some(labels(&[(
            hints::ANNOTATION_TOPOLOGY_AWARE_HINTS,
            annotation,
        )]));
        let opts = PlanOptions {
            prefer_same_traffic_distribution: prefer_same,
            ..options(100)
        };
        plan(&svc, &all, &topology, &[], &opts)
    };
    let zones = |pairs: &[(&str, usize)]| -> BTreeMap<String, usize> {
        pairs.iter().map(|(z, n)| ((*z).to_owned(), *n)).collect()
    };

    let p = run(Some("PreferClose"), "Disabled", false);
    assert_eq!(
        zone_hint_distribution(&p),
        (zones(&[("zone-a", 1), ("zone-b", 3), ("zone-c", 2)]), 0)
    );
    assert!(p.topology_hints.is_empty());

    let p = run(Some("PreferClose"), "Auto", false);
    assert_eq!(
        zone_hint_distribution(&p),
        (zones(&[("zone-a", 2), ("zone-b", 2), ("zone-c", 2)]), 1)
    );
    assert_eq!(
        p.topology_hints,
        vec![(
            "IPv4".to_owned(),
            TopologyHintsOutcome::Allocated(zones(&[("zone-a", 2), ("zone-b", 2), ("zone-c", 2)]))
        )]
    );

    let p = run(None, "", false);
    assert_eq!(zone_hint_distribution(&p), (zones(&[("", 6)]), 0));

    let p = run(Some("PreferSameNode"), "", true);
    assert_eq!(
        zone_hint_distribution(&p),
        (zones(&[("zone-a", 1), ("zone-b", 3), ("zone-c", 2)]), 0)
    );
    assert_eq!(
        node_hints(&p),
        zones(&[("node-0", 1), ("node-1", 3), ("node-2", 2)])
    );

    let p = run(Some("PreferSameZone"), "", false);
    assert_eq!(zone_hint_distribution(&p), (zones(&[("", 6)]), 0));

    // Hints are stable: re-planning the applied result writes nothing.
    for (td, annotation, same) in [
        (Some("PreferClose"), "Disabled", false),
        (Some("PreferClose"), "Auto", false),
        (Some("PreferSameNode"), "", true),
    ] {
        let p = run(td, annotation, same);
        let stored = apply(&[], &p);
        let mut svc = svc_foo();
        svc.spec.as_mut().unwrap().traffic_distribution = td.map(str::to_owned);
        svc.metadata.annotations = Some(labels(&[(
            hints::ANNOTATION_TOPOLOGY_AWARE_HINTS,
            annotation,
        )]));
        let opts = PlanOptions {
            prefer_same_traffic_distribution: same,
            ..options(100)
        };
        assert!(
            plan(&svc, &all, &topology, &stored, &opts).is_noop(),
            "{td:?} {annotation}"
        );
        // Turning hints off removes them through an update.
        let mut plain = svc_foo();
        plain.metadata.annotations = None;
        let p = plan(&plain, &all, &topology, &stored, &options(100));
        assert_eq!(p.update.len(), 1);
        assert!(p.update[0].endpoints.iter().all(|e| e.hints.is_none()));
    }
}

#[test]
fn topology_auto_reports_why_hints_are_disabled() {
    let one_zone = nodes(&[node("node-1", Some("zone-a"))]);
    let mut svc = svc_foo();
    svc.metadata.annotations = Some(labels(&[(hints::ANNOTATION_TOPOLOGY_MODE, "auto")]));
    let p = plan(&svc, &pods(3, |_| true), &one_zone, &[], &options(100));
    assert_eq!(
        p.topology_hints,
        vec![(
            "IPv4".to_owned(),
            TopologyHintsOutcome::Disabled(
                "Insufficient Node information: allocatable CPU or zone not specified on one or more nodes, addressType: IPv4".into()
            )
        )]
    );
    let two_zones = nodes(&[
        node("node-1", Some("zone-a")),
        node("node-2", Some("zone-b")),
    ]);
    let p = plan(&svc, &pods(1, |_| true), &two_zones, &[], &options(100));
    assert_eq!(
        p.topology_hints[0].1,
        TopologyHintsOutcome::Disabled(
            "Insufficient number of endpoints (1 endpoints, 2 zones), addressType: IPv4".into()
        )
    );
    let mut aupper = svc.clone();
    aupper.metadata.annotations = Some(labels(&[(hints::ANNOTATION_TOPOLOGY_MODE, "aUto")]));
    assert!(
        plan(&aupper, &pods(1, |_| true), &two_zones, &[], &options(100))
            .topology_hints
            .is_empty()
    );
}

// ---------------------------------------------------------------------------------------
// Properties: coverage, capacity, and convergence (a second plan over the applied result
// writes nothing).

mod properties {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    #[derive(Clone, Debug)]
    struct PodSeed {
        ready: bool,
        terminating: bool,
        family: u8,
        node: u8,
        http_port: Option<u8>,
    }

    fn pod_seed() -> impl Strategy<Value = PodSeed> {
        (
            any::<bool>(),
            prop::bool::weighted(0.1),
            0u8..3,
            0u8..4,
            prop::option::of(0u8..3),
        )
            .prop_map(|(ready, terminating, family, node, http_port)| PodSeed {
                ready,
                terminating,
                family,
                node,
                http_port,
            })
    }

    fn build_pod(i: usize, seed: &PodSeed) -> PodInfo {
        let mut p = pod(i, seed.ready, seed.terminating);
        let v4 = format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256);
        let v6 = format!("fd00::{i:x}");
        p.ips = match seed.family {
            0 => vec![v4],
            1 => vec![v6],
            _ => vec![v4, v6],
        };
        // node-3 does not exist: exercises the "Node not found" path.
        p.node_name = format!("node-{}", seed.node).into();
        if let Some(k) = seed.http_port {
            p.container_ports = [ContainerPortInfo {
                name: "http".into(),
                protocol: "TCP".into(),
                container_port: 8080 + i32::from(k),
            }]
            .into();
        }
        p
    }

    #[derive(Clone, Debug)]
    struct World {
        max: i64,
        families: u8,
        named: bool,
        publish: bool,
        traffic: bool,
        before: Vec<PodSeed>,
        after: Vec<PodSeed>,
    }

    fn world() -> impl Strategy<Value = World> {
        (
            1i64..120,
            0u8..3,
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            prop::collection::vec(pod_seed(), 0..250),
            prop::collection::vec(pod_seed(), 0..250),
        )
            .prop_map(
                |(max, families, named, publish, traffic, before, after)| World {
                    max,
                    families,
                    named,
                    publish,
                    traffic,
                    before,
                    after,
                },
            )
    }

    fn service_of(w: &World) -> Service {
        let mut svc = svc_foo();
        let spec = svc.spec.as_mut().unwrap();
        spec.ip_families = Some(match w.families {
            0 => vec!["IPv4".into()],
            1 => vec!["IPv6".into()],
            _ => vec!["IPv4".into(), "IPv6".into()],
        });
        spec.publish_not_ready_addresses = Some(w.publish);
        if w.traffic {
            spec.traffic_distribution = Some("PreferClose".into());
        }
        if w.named {
            spec.ports = Some(vec![
                service_port("foo", 80, IntOrString::Int(80), "TCP"),
                service_port("http", 81, IntOrString::String("http".into()), "TCP"),
            ]);
        }
        svc
    }

    fn topology() -> BTreeMap<String, NodeInfo> {
        nodes(&[
            node("node-0", Some("zone-a")),
            node("node-1", Some("zone-b")),
            node("node-2", None),
        ])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn plans_cover_every_endpoint_once_within_capacity_and_converge(w in world()) {
            let svc = service_of(&w);
            let nodes = topology();
            let opts = options(w.max);
            let before: Vec<PodInfo> = w.before.iter().enumerate().map(|(i, s)| build_pod(i, s)).collect();
            let after: Vec<PodInfo> = w.after.iter().enumerate().map(|(i, s)| build_pod(i, s)).collect();

            let stored = apply(&[], &plan(&svc, &before, &nodes, &[], &opts));
            let p = plan(&svc, &after, &nodes, &stored, &opts);
            let state = apply(&stored, &p);

            for slice in &state {
                prop_assert!(slice.endpoints.len() <= opts.max_endpoints_per_slice.get());
            }
            for address_type in address_types_for_service(&svc) {
                let want_v6 = address_type == "IPv6";
                let expected: BTreeSet<String> = after
                    .iter()
                    .filter(|p| p.should_be_in_endpoints(true))
                    .filter(|p| w.publish || nodes.contains_key(&*p.node_name))
                    .filter(|p| p.ips.iter().any(|ip| pod::is_ipv6_canonical(ip) == want_v6))
                    .map(|p| p.name.clone())
                    .collect();
                let mut seen: Vec<String> = state
                    .iter()
                    .filter(|s| s.address_type == address_type)
                    .flat_map(|s| s.endpoints.iter())
                    .filter_map(|e| e.target_ref.as_ref().and_then(|t| t.name.clone()))
                    .collect();
                seen.sort();
                let unique: BTreeSet<String> = seen.iter().cloned().collect();
                prop_assert_eq!(seen.len(), unique.len(), "an endpoint is in two slices");
                prop_assert_eq!(&unique, &expected);
                prop_assert!(state.iter().any(|s| s.address_type == address_type));
            }
            prop_assert!(state.iter().all(|s| address_types_for_service(&svc).contains(&s.address_type.as_str())));

            let again = plan(&svc, &after, &nodes, &state, &opts);
            prop_assert!(again.is_noop(), "re-plan not empty: {} creates, {} updates, {} deletes",
                again.create.len(), again.update.len(), again.delete.len());
        }

        #[test]
        fn plans_do_not_depend_on_input_order(w in world()) {
            let svc = service_of(&w);
            let nodes = topology();
            let opts = options(w.max);
            let before: Vec<PodInfo> = w.before.iter().enumerate().map(|(i, s)| build_pod(i, s)).collect();
            let after: Vec<PodInfo> = w.after.iter().enumerate().map(|(i, s)| build_pod(i, s)).collect();
            let stored = apply(&[], &plan(&svc, &before, &nodes, &[], &opts));
            let forward = plan(&svc, &after, &nodes, &stored, &opts);
            let mut reversed_pods = after.clone();
            reversed_pods.reverse();
            let mut reversed_slices = stored.clone();
            reversed_slices.reverse();
            let backward = plan(&svc, &reversed_pods, &nodes, &reversed_slices, &opts);
            prop_assert_eq!(forward, backward);
        }
    }
}

/// An empty placeholder left from a Service that had no endpoints is reused or removed once
/// endpoints appear: it never lingers beside the filled slices.
#[test]
fn placeholder_does_not_linger_once_endpoints_exist() {
    for headless_without_ports in [false, true] {
        let mut svc = svc_foo();
        if headless_without_ports {
            let spec = svc.spec.as_mut().unwrap();
            spec.cluster_ip = Some("None".into());
            spec.ports = None;
        }
        let placeholder = plan(&svc, &[], &node1(), &[], &options(2)).create;
        assert_eq!(placeholder.len(), 1);
        let mut existing = placeholder;
        existing[0].metadata.name = Some("foo-placeholder".into());
        let p = plan(&svc, &pods(5, |_| true), &node1(), &existing, &options(2));
        let mut after: Vec<usize> = p
            .create
            .iter()
            .chain(p.update.iter())
            .map(|s| s.endpoints.len())
            .collect();
        let placeholder_kept = !p
            .delete
            .iter()
            .any(|d| d.metadata.name.as_deref() == Some("foo-placeholder"))
            && !p
                .update
                .iter()
                .any(|u| u.metadata.name.as_deref() == Some("foo-placeholder"));
        if placeholder_kept {
            after.push(0);
        }
        after.sort_unstable();
        assert_eq!(after, [1, 2, 2], "headless={headless_without_ports}: {p:?}");
    }
}

/// The planner decides "same identity" and "equal beyond identity" on digests; they must
/// agree with the field-by-field comparison for every kind of difference.
mod digests_agree_with_field_comparison {
    use super::*;
    use crate::endpointslice::indexed::{EndpointHashes, IndexedPod};
    use k8s_openapi::api::discovery::v1::{EndpointHints, ForZone};
    use proptest::prelude::*;

    /// One way an existing endpoint can differ from the one a pod becomes.
    fn mutate(endpoint: &mut Endpoint, which: u8) {
        let target = endpoint
            .target_ref
            .get_or_insert_with(ObjectReference::default);
        let conditions = endpoint
            .conditions
            .get_or_insert_with(EndpointConditions::default);
        match which {
            0 => {}
            1 => endpoint.addresses = vec!["1.2.3.99".into()],
            2 => endpoint.addresses.push("1.2.3.100".into()),
            3 => endpoint.hostname = Some("other".into()),
            4 => endpoint.hostname = Some(String::new()),
            5 => target.namespace = Some("elsewhere".into()),
            6 => target.namespace = None,
            7 => target.name = Some("pod-other".into()),
            8 => target.uid = Some("another-uid".into()),
            9 => target.uid = None,
            10 => target.kind = Some("Node".into()),
            11 => target.api_version = Some("v1".into()),
            12 => target.field_path = Some("spec".into()),
            13 => target.resource_version = Some("42".into()),
            14 => endpoint.node_name = None,
            15 => endpoint.node_name = Some(String::new()),
            16 => endpoint.node_name = Some("node-2".into()),
            17 => endpoint.zone = Some("zone-b".into()),
            18 => endpoint.zone = Some(String::new()),
            19 => conditions.ready = None,
            20 => conditions.ready = conditions.ready.map(|r| !r),
            21 => conditions.serving = None,
            22 => conditions.terminating = conditions.terminating.map(|t| !t),
            23 => endpoint.conditions = None,
            24 => endpoint.target_ref = None,
            25 => {
                endpoint.hints = Some(EndpointHints {
                    for_zones: Some(vec![ForZone {
                        name: "zone-a".into(),
                    }]),
                    for_nodes: None,
                })
            }
            _ => endpoint.addresses.reverse(),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn on_every_difference(
            ready in any::<bool>(),
            terminating in any::<bool>(),
            publish_not_ready in any::<bool>(),
            hostname in any::<bool>(),
            zoned in any::<bool>(),
            dual in any::<bool>(),
            first in 0u8..27,
            second in 0u8..27,
        ) {
            let mut svc = svc_foo();
            svc.spec.as_mut().unwrap().publish_not_ready_addresses = Some(publish_not_ready);
            let mut info = pod(7, ready, terminating);
            if hostname {
                info.hostname = "pod7".into();
                info.subdomain = "foo".into();
            }
            if dual {
                info.ips.push("1.2.3.1".into());
                info.ips.push("fd00::7".into());
            }
            let nodes = nodes(&[node("node-1", zoned.then_some("zone-a"))]);
            let options = options(100);
            let context = reconcile::Context::new(&svc, &nodes, &options);
            let indexed = IndexedPod::new(info);
            let (desired, identity, details) =
                context.desired_endpoint_for_test(&indexed, false).unwrap();
            let mut existing = desired.to_endpoint();
            mutate(&mut existing, first);
            mutate(&mut existing, second);
            let hashes = EndpointHashes::of(&existing);
            let by_hashes = (hashes.identity == identity).then_some(hashes.details == details);
            prop_assert_eq!(by_hashes, desired.compare(&existing), "{:?}", existing);
        }
    }
}

#[test]
fn pods_sharing_interned_label_sets_are_selected_by_their_labels() {
    let mut interner = pod::PodInterner::default();
    let selected = interner.labels(&labels(&[("foo", "bar")]));
    let other = interner.labels(&labels(&[("foo", "baz")]));
    let pods: Vec<PodInfo> = (0..6)
        .map(|i| PodInfo {
            labels: if i % 2 == 0 {
                selected.clone()
            } else {
                other.clone()
            },
            ..pod(i, true, false)
        })
        .collect();
    let plan = plan(&svc_foo(), &pods, &node1(), &[], &options(100));
    assert_eq!(plan.create.len(), 1);
    assert_eq!(endpoint_names(&plan.create[0]), ["pod0", "pod2", "pod4"]);
}
