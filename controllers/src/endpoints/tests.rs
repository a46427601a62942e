//! Spec §2.8 vectors (upstream `endpoints_controller_test.go`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EndpointAddress, EndpointPort, EndpointSubset, Endpoints,
    ObjectReference, Pod, PodCondition, PodIP, PodSpec, PodStatus, Service, ServicePort,
    ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;

use super::*;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const MB: (&str, &str) = (MANAGED_BY_LABEL, CONTROLLER_NAME);
const HL: (&str, &str) = (HEADLESS_LABEL, "");

/// Upstream `testPod`: IPv4 1.2.(3+(4+id)/256).((4+id)%256), IPv6 2000::<hex 4+id>.
fn test_pod(ns: &str, id: usize, n_ports: usize, ready: bool, v6: bool) -> Pod {
    let n = 4 + id;
    let v4 = format!("1.2.{}.{}", 3 + n / 256, n % 256);
    let v6ip = format!("2000::{n:x}");
    let mut ips = vec![PodIP { ip: v4.clone() }];
    if v6 {
        ips.push(PodIP { ip: v6ip });
    }
    Pod {
        metadata: ObjectMeta {
            namespace: Some(ns.into()),
            name: Some(format!("pod{id}")),
            labels: Some(labels(&[("foo", "bar")])),
            resource_version: Some(id.to_string()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                ports: Some(
                    (0..n_ports)
                        .map(|j| ContainerPort {
                            name: Some(format!("port{j}")),
                            container_port: 8080 + j as i32,
                            protocol: Some("TCP".into()),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: Some(PodStatus {
            phase: Some("Running".into()),
            pod_ip: Some(v4),
            pod_ips: Some(ips),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    }
}

fn svc_port(name: &str, port: i32, target: i32, protocol: &str) -> ServicePort {
    ServicePort {
        name: (!name.is_empty()).then(|| name.to_string()),
        port,
        target_port: Some(IntOrString::Int(target)),
        protocol: Some(protocol.into()),
        ..Default::default()
    }
}

fn service(ns: &str, selector: Option<&[(&str, &str)]>, ports: Vec<ServicePort>) -> Service {
    Service {
        metadata: ObjectMeta {
            namespace: Some(ns.into()),
            name: Some("foo".into()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            selector: selector.map(labels),
            ports: Some(ports),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn pod_address(ip: &str, ns: &str, name: &str) -> EndpointAddress {
    EndpointAddress {
        ip: ip.into(),
        node_name: Some(String::new()),
        target_ref: Some(ObjectReference {
            kind: Some("Pod".into()),
            namespace: Some(ns.into()),
            name: Some(name.into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn plain_address(ip: &str) -> EndpointAddress {
    EndpointAddress {
        ip: ip.into(),
        ..Default::default()
    }
}

fn ep_port(name: &str, port: i32, protocol: &str) -> EndpointPort {
    EndpointPort {
        name: (!name.is_empty()).then(|| name.to_string()),
        port,
        protocol: Some(protocol.into()),
        ..Default::default()
    }
}

fn existing(ns: &str, labels_: &[(&str, &str)], subsets: Option<Vec<EndpointSubset>>) -> Endpoints {
    Endpoints {
        metadata: ObjectMeta {
            namespace: Some(ns.into()),
            name: Some("foo".into()),
            resource_version: Some("1".into()),
            labels: (!labels_.is_empty()).then(|| labels(labels_)),
            ..Default::default()
        },
        subsets,
    }
}

/// The planner's view of test Pods, as the controller's cache and `svcplane slices` build it.
fn infos(pods: &[Pod]) -> Vec<PodInfo> {
    pods.iter().map(PodInfo::from_pod).collect()
}

fn run(svc: &Service, pods: &[Pod], current: Option<&Endpoints>) -> EndpointsPlan {
    plan(
        Some(svc),
        &infos(pods),
        &[],
        current,
        &EndpointsOptions::default(),
    )
}

fn expect_update(p: EndpointsPlan) -> Endpoints {
    match p {
        EndpointsPlan::Update(e) => e,
        other => panic!("expected an update, got {other:?}"),
    }
}

fn expect_create(p: EndpointsPlan) -> Endpoints {
    match p {
        EndpointsPlan::Create(e) => e,
        other => panic!("expected a create, got {other:?}"),
    }
}

fn old_subset() -> Vec<EndpointSubset> {
    vec![EndpointSubset {
        addresses: Some(vec![plain_address("6.7.8.9")]),
        ports: Some(vec![ep_port("", 1000, "TCP")]),
        ..Default::default()
    }]
}

#[test]
fn ep1_no_selector_preserves_items() {
    let svc = service("other", None, vec![svc_port("", 80, 8080, "TCP")]);
    let current = existing("other", &[], Some(old_subset()));
    assert_eq!(run(&svc, &[], Some(&current)), EndpointsPlan::NoOp);
}

#[test]
fn ep2_existing_nil_or_empty_subsets() {
    let svc = service(
        "other",
        Some(&[("foo", "bar")]),
        vec![svc_port("", 80, 8080, "TCP")],
    );
    for subsets in [None, Some(vec![])] {
        let current = existing("other", &[MB], subsets);
        assert_eq!(run(&svc, &[], Some(&current)), EndpointsPlan::NoOp);
    }
}

#[test]
fn ep3_pod_resource_version_change_only() {
    let svc = service(
        "other",
        Some(&[("foo", "bar")]),
        vec![svc_port("", 80, 8080, "TCP")],
    );
    let with_rv = |mut a: EndpointAddress, rv: &str| {
        if let Some(r) = a.target_ref.as_mut() {
            r.resource_version = Some(rv.into());
        }
        a
    };
    let current = existing(
        "other",
        &[MB],
        Some(vec![EndpointSubset {
            addresses: Some(vec![with_rv(pod_address("1.2.3.4", "other", "pod0"), "1")]),
            not_ready_addresses: Some(vec![with_rv(pod_address("1.2.3.5", "other", "pod1"), "2")]),
            ports: Some(vec![ep_port("", 8080, "TCP")]),
        }]),
    );
    let mut pod0 = test_pod("other", 0, 1, true, false);
    pod0.metadata.resource_version = Some("3".into());
    let mut pod1 = test_pod("other", 1, 1, false, false);
    pod1.metadata.resource_version = Some("4".into());
    assert_eq!(
        run(&svc, &[pod0, pod1], Some(&current)),
        EndpointsPlan::NoOp
    );
}

#[test]
fn ep4_new_without_subsets_is_created() {
    let svc = service(
        "other",
        Some(&[("foo", "bar")]),
        vec![svc_port("", 80, 8080, "TCP")],
    );
    let created = expect_create(run(&svc, &[], None));
    assert_eq!(created.subsets, Some(vec![]));
    assert_eq!(created.metadata.name.as_deref(), Some("foo"));
    assert_eq!(created.metadata.labels, Some(labels(&[MB, HL])));
}

#[test]
fn ep5_ep6_protocols() {
    for protocol in ["TCP", "UDP", "SCTP"] {
        let svc = service("other", Some(&[]), vec![svc_port("", 80, 8080, protocol)]);
        let current = existing("other", &[], Some(old_subset()));
        let updated = expect_update(run(
            &svc,
            &[test_pod("other", 0, 1, true, false)],
            Some(&current),
        ));
        assert_eq!(updated.metadata.resource_version.as_deref(), Some("1"));
        assert_eq!(updated.metadata.labels, Some(labels(&[MB, HL])));
        assert_eq!(updated.metadata.annotations, None);
        assert_eq!(
            updated.subsets,
            Some(vec![EndpointSubset {
                addresses: Some(vec![pod_address("1.2.3.4", "other", "pod0")]),
                ports: Some(vec![ep_port("", 8080, protocol)]),
                ..Default::default()
            }])
        );
    }
}

#[test]
fn ep7_headless_label_already_present() {
    let svc = service(
        "other",
        Some(&[("foo", "bar")]),
        vec![svc_port("", 80, 8080, "TCP")],
    );
    let current = existing("other", &[MB, HL], Some(vec![]));
    assert_eq!(run(&svc, &[], Some(&current)), EndpointsPlan::NoOp);
}

#[test]
fn ep8_external_name_is_ignored() {
    let mut svc = service(
        "other",
        Some(&[("foo", "bar")]),
        vec![svc_port("", 80, 8080, "TCP")],
    );
    if let Some(spec) = svc.spec.as_mut() {
        spec.type_ = Some("ExternalName".into());
        spec.external_name = Some("www.example.com".into());
    }
    let pods = [test_pod("other", 0, 1, true, false)];
    assert_eq!(run(&svc, &pods, None), EndpointsPlan::NoOp);
    let current = existing("other", &[], Some(old_subset()));
    assert_eq!(run(&svc, &pods, Some(&current)), EndpointsPlan::NoOp);
}

#[test]
fn ep9_not_ready_pod() {
    let svc = service("other", Some(&[]), vec![svc_port("", 80, 8080, "TCP")]);
    let current = existing("other", &[], Some(vec![]));
    let updated = expect_update(run(
        &svc,
        &[test_pod("other", 0, 1, false, false)],
        Some(&current),
    ));
    assert_eq!(
        updated.subsets,
        Some(vec![EndpointSubset {
            not_ready_addresses: Some(vec![pod_address("1.2.3.4", "other", "pod0")]),
            ports: Some(vec![ep_port("", 8080, "TCP")]),
            ..Default::default()
        }])
    );
}

#[test]
fn ep10_mixed_readiness() {
    let svc = service("other", Some(&[]), vec![svc_port("", 80, 8080, "TCP")]);
    let current = existing("other", &[], Some(vec![]));
    let pods = [
        test_pod("other", 0, 1, true, false),
        test_pod("other", 1, 1, false, false),
    ];
    let updated = expect_update(run(&svc, &pods, Some(&current)));
    assert_eq!(
        updated.subsets,
        Some(vec![EndpointSubset {
            addresses: Some(vec![pod_address("1.2.3.4", "other", "pod0")]),
            not_ready_addresses: Some(vec![pod_address("1.2.3.5", "other", "pod1")]),
            ports: Some(vec![ep_port("", 8080, "TCP")]),
        }])
    );
}

#[test]
fn ep11_preexisting_is_replaced() {
    let svc = service(
        "bar",
        Some(&[("foo", "bar")]),
        vec![svc_port("", 80, 8080, "TCP")],
    );
    let current = existing("bar", &[MB], Some(old_subset()));
    let updated = expect_update(run(
        &svc,
        &[test_pod("bar", 0, 1, true, false)],
        Some(&current),
    ));
    assert_eq!(updated.metadata.labels, Some(labels(&[MB, HL])));
    assert_eq!(
        updated.subsets,
        Some(vec![EndpointSubset {
            addresses: Some(vec![pod_address("1.2.3.4", "bar", "pod0")]),
            ports: Some(vec![ep_port("", 8080, "TCP")]),
            ..Default::default()
        }])
    );
}

#[test]
fn ep12_preexisting_identical() {
    let svc = service(
        "bar",
        Some(&[("foo", "bar")]),
        vec![svc_port("", 80, 8080, "TCP")],
    );
    let current = existing(
        "bar",
        &[MB],
        Some(vec![EndpointSubset {
            addresses: Some(vec![pod_address("1.2.3.4", "bar", "pod0")]),
            ports: Some(vec![ep_port("", 8080, "TCP")]),
            ..Default::default()
        }]),
    );
    assert_eq!(
        run(&svc, &[test_pod("bar", 0, 1, true, false)], Some(&current)),
        EndpointsPlan::NoOp
    );
}

fn three_pods_plus_foreign() -> Vec<Pod> {
    let mut pods: Vec<Pod> = (0..3)
        .map(|i| test_pod("other", i, 2, true, false))
        .collect();
    pods.extend((0..5).map(|i| test_pod("blah", i, 2, true, false)));
    pods
}

fn ep13_subsets() -> Option<Vec<EndpointSubset>> {
    Some(vec![EndpointSubset {
        addresses: Some(vec![
            pod_address("1.2.3.4", "other", "pod0"),
            pod_address("1.2.3.5", "other", "pod1"),
            pod_address("1.2.3.6", "other", "pod2"),
        ]),
        ports: Some(vec![
            ep_port("port0", 8080, "TCP"),
            ep_port("port1", 8088, "TCP"),
        ]),
        ..Default::default()
    }])
}

fn ep13_service() -> Service {
    service(
        "other",
        Some(&[]),
        vec![
            svc_port("port0", 80, 8080, "TCP"),
            svc_port("port1", 88, 8088, "TCP"),
        ],
    )
}

#[test]
fn ep13_items_created() {
    let created = expect_create(run(&ep13_service(), &three_pods_plus_foreign(), None));
    assert_eq!(created.metadata.resource_version, None);
    assert_eq!(created.metadata.namespace.as_deref(), Some("other"));
    assert_eq!(created.metadata.labels, Some(labels(&[MB, HL])));
    assert_eq!(created.subsets, ep13_subsets());
}

#[test]
fn ep14_items_with_service_labels() {
    let mut svc = ep13_service();
    svc.metadata.labels = Some(labels(&[("foo", "bar")]));
    let created = expect_create(run(&svc, &three_pods_plus_foreign(), None));
    assert_eq!(
        created.metadata.labels,
        Some(labels(&[("foo", "bar"), MB, HL]))
    );
    assert_eq!(created.subsets, ep13_subsets());
}

#[test]
fn ep15_label_change_replaces_all_labels() {
    let mut svc = ep13_service();
    svc.metadata.labels = Some(labels(&[("baz", "blah")]));
    let current = existing("other", &[("foo", "bar")], Some(old_subset()));
    let updated = expect_update(run(&svc, &three_pods_plus_foreign(), Some(&current)));
    assert_eq!(
        updated.metadata.labels,
        Some(labels(&[("baz", "blah"), MB, HL]))
    );
    assert_eq!(updated.subsets, ep13_subsets());
}

#[test]
fn ep16_headless_service() {
    let mut svc = service("headless", Some(&[]), vec![]);
    svc.metadata.labels = Some(labels(&[("a", "b")]));
    if let Some(spec) = svc.spec.as_mut() {
        spec.cluster_ip = Some("None".into());
    }
    let before = svc.clone();
    let current = existing("headless", &[], Some(vec![]));
    let updated = expect_update(run(
        &svc,
        &[test_pod("headless", 0, 1, true, false)],
        Some(&current),
    ));
    assert_eq!(updated.metadata.labels, Some(labels(&[MB, ("a", "b"), HL])));
    assert_eq!(
        updated.subsets,
        Some(vec![EndpointSubset {
            addresses: Some(vec![pod_address("1.2.3.4", "headless", "pod0")]),
            ..Default::default()
        }])
    );
    assert_eq!(svc, before);
}

#[test]
fn ep17_terminal_pods_are_excluded() {
    for phase in ["Failed", "Succeeded"] {
        let svc = service("other", Some(&[]), vec![svc_port("", 80, 8080, "TCP")]);
        let current = existing("other", &[("foo", "bar")], Some(old_subset()));
        let mut pod = test_pod("other", 0, 1, false, false);
        if let Some(status) = pod.status.as_mut() {
            status.phase = Some(phase.into());
        }
        let updated = expect_update(run(&svc, &[pod], Some(&current)));
        assert_eq!(updated.subsets, Some(vec![]));
        assert_eq!(updated.metadata.labels, Some(labels(&[MB, HL])));
    }
}

#[test]
fn ep18_headless_without_ports() {
    let mut svc = service("other", Some(&[]), vec![]);
    if let Some(spec) = svc.spec.as_mut() {
        spec.cluster_ip = Some("None".into());
        spec.ports = None;
    }
    let created = expect_create(run(&svc, &[test_pod("other", 0, 1, true, false)], None));
    assert_eq!(created.metadata.labels, Some(labels(&[MB, HL])));
    assert_eq!(
        created.subsets,
        Some(vec![EndpointSubset {
            addresses: Some(vec![pod_address("1.2.3.4", "other", "pod0")]),
            ports: None,
            ..Default::default()
        }])
    );
}

#[test]
fn non_headless_without_ports_has_no_subsets() {
    let mut svc = service("other", Some(&[]), vec![]);
    if let Some(spec) = svc.spec.as_mut() {
        spec.cluster_ip = Some(String::new());
    }
    let created = expect_create(run(&svc, &[test_pod("other", 0, 1, true, false)], None));
    assert_eq!(created.subsets, Some(vec![]));
    assert_eq!(created.metadata.labels, Some(labels(&[MB, HL])));
}

fn trigger(text: &str) -> Timestamp {
    text.parse()
        .unwrap_or_else(|e| panic!("bad timestamp {text}: {e}"))
}

#[test]
fn ep19_trigger_time_annotation() {
    let svc = service("other", Some(&[]), vec![svc_port("", 80, 8080, "TCP")]);
    let pods = [test_pod("other", 0, 1, true, false)];
    let options = EndpointsOptions {
        trigger_time: Some(trigger("2018-01-01T00:00:00Z")),
    };
    let current = existing("other", &[], Some(old_subset()));
    let updated = expect_update(plan(
        Some(&svc),
        &infos(&pods),
        &[],
        Some(&current),
        &options,
    ));
    let want = BTreeMap::from([(
        TRIGGER_TIME_ANNOTATION.to_string(),
        "2018-01-01T00:00:00Z".to_string(),
    )]);
    assert_eq!(updated.metadata.annotations, Some(want.clone()));

    let mut overridden = existing("other", &[], Some(old_subset()));
    overridden.metadata.annotations = Some(BTreeMap::from([(
        TRIGGER_TIME_ANNOTATION.to_string(),
        "2017-12-31T23:00:00Z".to_string(),
    )]));
    let updated = expect_update(plan(
        Some(&svc),
        &infos(&pods),
        &[],
        Some(&overridden),
        &options,
    ));
    assert_eq!(updated.metadata.annotations, Some(want));

    let cleared = expect_update(run(&svc, &pods, Some(&overridden)));
    assert_eq!(cleared.metadata.annotations, None);
}

#[test]
fn trigger_time_keeps_fractional_seconds_like_rfc3339nano() {
    assert_eq!(
        format_trigger_time(trigger("2018-01-01T00:00:00.5Z")),
        "2018-01-01T00:00:00.5Z"
    );
    assert_eq!(
        format_trigger_time(trigger("2018-01-01T01:00:00.123456789+01:00")),
        "2018-01-01T00:00:00.123456789Z"
    );
    let _ = Time(trigger("2018-01-01T00:00:00Z"));
}

#[test]
fn ep20_service_not_found_deletes() {
    let current = existing("default", &[], Some(old_subset()));
    assert_eq!(
        plan(
            None,
            &infos(&[]),
            &[],
            Some(&current),
            &EndpointsOptions::default()
        ),
        EndpointsPlan::Delete {
            namespace: "default".into(),
            name: "foo".into()
        }
    );
    assert_eq!(
        plan(None, &infos(&[]), &[], None, &EndpointsOptions::default()),
        EndpointsPlan::NoOp
    );
}

// EP-21 TestSyncServiceAddresses: (phase, ready, terminating, publishNotReady) -> (ready, notReady).
#[test]
fn ep21_service_addresses() {
    let table: &[(&str, bool, bool, bool, usize, usize)] = &[
        ("Running", true, false, false, 1, 0),
        ("Running", true, true, false, 0, 0),
        ("Unknown", true, false, false, 1, 0),
        ("Unknown", true, true, false, 0, 0),
        ("Pending", true, false, false, 1, 0),
        ("Pending", true, true, false, 0, 0),
        ("Unknown", false, false, false, 0, 1),
        ("Pending", false, false, false, 0, 1),
        ("Failed", false, false, false, 0, 0),
        ("Succeeded", false, false, false, 0, 0),
        ("Running", false, false, true, 1, 0),
        ("Running", false, true, true, 1, 0),
        ("Unknown", false, false, true, 1, 0),
        ("Unknown", false, true, true, 1, 0),
        ("Pending", false, false, true, 1, 0),
        ("Pending", false, true, true, 1, 0),
        ("Failed", false, false, true, 0, 0),
        ("Succeeded", false, false, true, 0, 0),
    ];
    for &(phase, ready, terminating, publish, want_ready, want_not_ready) in table {
        let mut svc = service(
            "default",
            Some(&[("foo", "bar")]),
            vec![svc_port("", 80, 8080, "TCP")],
        );
        if let Some(spec) = svc.spec.as_mut() {
            spec.cluster_ip = Some("1.1.1.1".into());
            spec.publish_not_ready_addresses = Some(publish);
        }
        let mut pod = test_pod("default", 0, 1, ready, false);
        if let Some(status) = pod.status.as_mut() {
            status.phase = Some(phase.into());
            status.pod_ip = Some("10.1.1.1".into());
            status.pod_ips = Some(vec![PodIP {
                ip: "10.1.1.1".into(),
            }]);
        }
        if terminating {
            pod.metadata.deletion_timestamp = Some(Time(trigger("2018-01-01T00:00:00Z")));
        }
        let created = expect_create(run(&svc, &[pod], None));
        let subsets = created.subsets.unwrap_or_default();
        let ready_count: usize = subsets
            .iter()
            .map(|s| s.addresses.as_ref().map_or(0, Vec::len))
            .sum();
        let not_ready_count: usize = subsets
            .iter()
            .map(|s| s.not_ready_addresses.as_ref().map_or(0, Vec::len))
            .sum();
        assert_eq!(
            (ready_count, not_ready_count),
            (want_ready, want_not_ready),
            "{phase} ready={ready} terminating={terminating} publish={publish}"
        );
        assert_eq!(
            created.metadata.labels,
            Some(labels(&[MB])),
            "clusterIP set: no headless label"
        );
    }
}

fn numbered_address(i: usize) -> EndpointAddress {
    pod_address(
        &format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256),
        "default",
        &format!("pod{i}"),
    )
}

fn numbered_pod(i: usize, ready: bool) -> Pod {
    let mut pod = test_pod("default", i, 1, ready, false);
    let ip = numbered_address(i).ip;
    if let Some(status) = pod.status.as_mut() {
        status.pod_ip = Some(ip.clone());
        status.pod_ips = Some(vec![PodIP { ip }]);
    }
    pod
}

// EP-22 TestSyncServiceOverCapacity.
#[test]
fn ep22_over_capacity() {
    type Row = (
        Option<&'static str>,
        usize,
        usize,
        usize,
        usize,
        usize,
        Option<&'static str>,
    );
    let table: &[Row] = &[
        (None, 0, 0, 0, 0, 0, None),
        (None, 999, 997, 4, 997, 3, Some(TRUNCATED)),
        (None, 999, 1000, 10, 1000, 0, Some(TRUNCATED)),
        (Some(TRUNCATED), 999, 999, 0, 999, 0, None),
        (Some("warning"), 1000, 1000, 0, 1000, 0, None),
        (Some("warning"), 1001, 1001, 0, 1000, 0, Some(TRUNCATED)),
        (Some(TRUNCATED), 1000, 1000, 0, 1000, 0, None),
        (Some("invalid"), 1001, 1001, 0, 1000, 0, Some(TRUNCATED)),
    ];
    for &(start, n_existing, n_ready, n_not_ready, want_ready, want_not_ready, want_annotation) in
        table
    {
        let mut svc = service(
            "default",
            Some(&[("foo", "bar")]),
            vec![svc_port("", 80, 8080, "TCP")],
        );
        if let Some(spec) = svc.spec.as_mut() {
            spec.cluster_ip = Some("10.0.0.1".into());
        }
        let mut current = existing(
            "default",
            &[MB],
            Some(vec![EndpointSubset {
                addresses: Some((0..n_existing).map(numbered_address).collect()),
                ports: Some(vec![ep_port("", 8080, "TCP")]),
                ..Default::default()
            }]),
        );
        current.metadata.annotations =
            start.map(|v| BTreeMap::from([(OVER_CAPACITY_ANNOTATION.to_string(), v.to_string())]));
        let pods: Vec<Pod> = (0..n_ready)
            .map(|i| numbered_pod(i, true))
            .chain((n_ready..n_ready + n_not_ready).map(|i| numbered_pod(i, false)))
            .collect();
        let result = match run(&svc, &pods, Some(&current)) {
            EndpointsPlan::NoOp => current.clone(),
            EndpointsPlan::Update(e) => e,
            other => panic!("unexpected {other:?}"),
        };
        let subsets = result.subsets.clone().unwrap_or_default();
        let ready: usize = subsets
            .iter()
            .map(|s| s.addresses.as_ref().map_or(0, Vec::len))
            .sum();
        let not_ready: usize = subsets
            .iter()
            .map(|s| s.not_ready_addresses.as_ref().map_or(0, Vec::len))
            .sum();
        assert_eq!(
            (ready, not_ready),
            (want_ready, want_not_ready),
            "case {start:?} {n_existing}"
        );
        let annotation = result
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(OVER_CAPACITY_ANNOTATION))
            .map(String::as_str);
        assert_eq!(annotation, want_annotation, "case {start:?} {n_existing}");
    }
}

#[test]
fn ep22_truncation_keeps_lowest_sorted_not_ready() {
    let svc = service("default", Some(&[]), vec![svc_port("", 80, 8080, "TCP")]);
    let pods: Vec<Pod> = (0..997)
        .map(|i| numbered_pod(i, true))
        .chain((997..1001).map(|i| numbered_pod(i, false)))
        .collect();
    let created = expect_create(run(&svc, &pods, None));
    let subsets = created.subsets.unwrap_or_default();
    let kept: Vec<&str> = subsets[0]
        .not_ready_addresses
        .iter()
        .flatten()
        .map(|a| a.ip.as_str())
        .collect();
    assert_eq!(kept, ["10.0.3.229", "10.0.3.230", "10.0.3.231"]);
}

#[test]
fn ep24_named_port_only_on_some_pods() {
    let svc = service(
        "default",
        Some(&[("foo", "bar")]),
        vec![ServicePort {
            name: Some("http".into()),
            port: 80,
            target_port: Some(IntOrString::String("http".into())),
            protocol: Some("TCP".into()),
            ..Default::default()
        }],
    );
    let mut p1 = test_pod("default", 0, 0, true, false);
    if let Some(spec) = p1.spec.as_mut() {
        spec.containers[0].ports = Some(vec![ContainerPort {
            name: Some("http".into()),
            container_port: 8080,
            ..Default::default()
        }]);
    }
    let p2 = test_pod("default", 1, 0, true, false);
    let created = expect_create(run(&svc, &[p1, p2], None));
    assert_eq!(
        created.subsets,
        Some(vec![EndpointSubset {
            addresses: Some(vec![pod_address("1.2.3.4", "default", "pod0")]),
            ports: Some(vec![ep_port("http", 8080, "TCP")]),
            ..Default::default()
        }])
    );
}

#[test]
fn ep25_1001_ready_pods_are_truncated_on_create() {
    let svc = service("default", Some(&[]), vec![svc_port("", 80, 8080, "TCP")]);
    let pods: Vec<Pod> = (0..1001).map(|i| numbered_pod(i, true)).collect();
    let created = expect_create(run(&svc, &pods, None));
    assert_eq!(
        total_addresses(created.subsets.as_deref().unwrap_or_default()),
        1000
    );
    assert_eq!(
        created.metadata.annotations,
        Some(BTreeMap::from([(
            OVER_CAPACITY_ANNOTATION.to_string(),
            TRUNCATED.to_string()
        )]))
    );
}

#[test]
fn ipv6_family_and_normalised_ip() {
    let mut svc = service("default", Some(&[]), vec![svc_port("", 80, 8080, "TCP")]);
    if let Some(spec) = svc.spec.as_mut() {
        spec.ip_families = Some(vec!["IPv6".into()]);
    }
    let mut pod = test_pod("default", 0, 1, true, true);
    if let Some(status) = pod.status.as_mut() {
        status.pod_ips = Some(vec![
            PodIP {
                ip: "01.2.3.4".into(),
            },
            PodIP {
                ip: "2000:0::4".into(),
            },
        ]);
    }
    let created = expect_create(run(&svc, &[pod.clone()], None));
    let subsets = created.subsets.unwrap_or_default();
    assert_eq!(
        subsets[0].addresses.as_ref().map(|a| a[0].ip.as_str()),
        Some("2000::4")
    );

    if let Some(spec) = svc.spec.as_mut() {
        spec.ip_families = Some(vec!["IPv4".into()]);
    }
    let created = expect_create(run(&svc, &[pod], None));
    let subsets = created.subsets.unwrap_or_default();
    assert_eq!(
        subsets[0].addresses.as_ref().map(|a| a[0].ip.as_str()),
        Some("1.2.3.4")
    );
}

#[test]
fn hostname_only_when_subdomain_names_the_service() {
    let svc = service("default", Some(&[]), vec![svc_port("", 80, 8080, "TCP")]);
    let mut pod = test_pod("default", 0, 1, true, false);
    if let Some(spec) = pod.spec.as_mut() {
        spec.hostname = Some("web-0".into());
        spec.subdomain = Some("foo".into());
    }
    let created = expect_create(run(&svc, &[pod.clone()], None));
    let subsets = created.subsets.unwrap_or_default();
    assert_eq!(
        subsets[0]
            .addresses
            .as_ref()
            .and_then(|a| a[0].hostname.as_deref()),
        Some("web-0")
    );
    if let Some(spec) = pod.spec.as_mut() {
        spec.subdomain = Some("other".into());
    }
    let created = expect_create(run(&svc, &[pod], None));
    let subsets = created.subsets.unwrap_or_default();
    assert_eq!(
        subsets[0]
            .addresses
            .as_ref()
            .and_then(|a| a[0].hostname.as_deref()),
        None
    );
}

#[test]
fn headless_without_ip_families_uses_the_family_of_the_first_pod_ip() {
    let mut svc = service("default", Some(&[]), vec![svc_port("", 80, 8080, "TCP")]);
    if let Some(spec) = svc.spec.as_mut() {
        spec.cluster_ip = Some("None".into());
    }
    let mut v6_first = test_pod("default", 0, 1, true, true);
    if let Some(status) = v6_first.status.as_mut() {
        status.pod_ip = Some("2000::4".into());
        status.pod_ips = Some(vec![
            PodIP {
                ip: "2000::4".into(),
            },
            PodIP {
                ip: "1.2.3.4".into(),
            },
        ]);
    }
    let v4_first = test_pod("default", 1, 1, true, true);
    let created = expect_create(run(&svc, &[v6_first, v4_first], None));
    let ips: Vec<&str> = created
        .subsets
        .iter()
        .flatten()
        .flat_map(|s| s.addresses.iter().flatten())
        .map(|a| a.ip.as_str())
        .collect();
    assert_eq!(ips, ["1.2.3.5", "2000::4"]);
}

#[test]
fn cached_pod_references_plan_like_owned_pods() {
    let svc = ep13_service();
    let owned = infos(&three_pods_plus_foreign());
    let borrowed: Vec<&PodInfo> = owned.iter().collect();
    let options = EndpointsOptions::default();
    let from_owned = plan(Some(&svc), &owned, &[], None, &options);
    assert_eq!(expect_create(from_owned.clone()).subsets, ep13_subsets());
    assert_eq!(plan(Some(&svc), &borrowed, &[], None, &options), from_owned);
}
