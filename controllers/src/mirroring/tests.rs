//! Vectors from upstream `endpointslicemirroring/reconciler_test.go` (`TestReconcile`) and
//! the controller's sync rules.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Service, ServiceSpec,
};
use k8s_openapi::api::discovery::v1::{
    Endpoint, EndpointConditions, EndpointPort as SlicePort, EndpointSlice,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};

use super::*;

const UID: &str = "d8f2c1f6-5285-4b3c-b3c1-9b89f9e7ed7a";

fn port(name: &str, number: i32, protocol: &str) -> EndpointPort {
    EndpointPort {
        name: Some(name.into()),
        port: number,
        protocol: Some(protocol.into()),
        ..Default::default()
    }
}

fn slice_port(name: &str, number: i32, protocol: &str) -> SlicePort {
    SlicePort {
        name: Some(name.into()),
        port: Some(number),
        protocol: Some(protocol.into()),
        ..Default::default()
    }
}

fn address(ip: &str, hostname: &str, node: Option<&str>) -> EndpointAddress {
    EndpointAddress {
        ip: ip.into(),
        hostname: Some(hostname.into()),
        node_name: node.map(str::to_string),
        ..Default::default()
    }
}

fn subset(
    ports: Vec<EndpointPort>,
    ready: Vec<EndpointAddress>,
    not_ready: Vec<EndpointAddress>,
) -> EndpointSubset {
    EndpointSubset {
        ports: Some(ports),
        addresses: (!ready.is_empty()).then_some(ready),
        not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
    }
}

fn endpoints(subsets: Vec<EndpointSubset>) -> Endpoints {
    Endpoints {
        metadata: ObjectMeta {
            name: Some("test-ep".into()),
            namespace: Some("test".into()),
            uid: Some(UID.into()),
            ..Default::default()
        },
        subsets: Some(subsets),
    }
}

fn selectorless_service() -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some("test-ep".into()),
            namespace: Some("test".into()),
            ..Default::default()
        },
        spec: Some(ServiceSpec::default()),
        ..Default::default()
    }
}

fn mirrored_labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        (SERVICE_NAME_LABEL.to_string(), "test-ep".to_string()),
        (MANAGED_BY_LABEL.to_string(), CONTROLLER_NAME.to_string()),
    ])
}

fn existing_slice(name: &str, ports: Vec<SlicePort>, eps: Vec<Endpoint>) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("test".into()),
            labels: Some(mirrored_labels()),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".into(),
                kind: "Endpoints".into(),
                name: "test-ep".into(),
                uid: UID.into(),
                ..Default::default()
            }]),
            ..Default::default()
        },
        address_type: "IPv4".into(),
        ports: Some(ports),
        endpoints: eps,
    }
}

fn ready_endpoint(ip: &str, hostname: &str, node: Option<&str>) -> Endpoint {
    Endpoint {
        addresses: vec![ip.into()],
        hostname: Some(hostname.into()),
        node_name: node.map(str::to_string),
        conditions: Some(EndpointConditions {
            ready: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn run(ep: &Endpoints, existing: &[EndpointSlice]) -> MirroringPlan {
    plan(
        "test-ep",
        Some(ep),
        Some(&selectorless_service()),
        existing,
        &MirroringOptions::default(),
    )
}

fn actions(p: &MirroringPlan) -> usize {
    p.create.len() + p.update.len() + p.delete.len()
}

fn http() -> Vec<EndpointPort> {
    vec![port("http", 80, "TCP")]
}

fn two_ports() -> Vec<EndpointPort> {
    vec![port("http", 80, "TCP"), port("https", 443, "UDP")]
}

fn second_ports() -> Vec<EndpointPort> {
    vec![port("http", 3000, "TCP"), port("https", 3001, "UDP")]
}

#[test]
fn no_subsets_or_no_addresses_write_nothing() {
    assert_eq!(actions(&run(&endpoints(vec![]), &[])), 0);
    assert_eq!(
        actions(&run(&endpoints(vec![subset(http(), vec![], vec![])]), &[])),
        0
    );
}

#[test]
fn one_subset_creates_one_mirrored_slice() {
    let ep = endpoints(vec![subset(
        http(),
        vec![address("10.0.0.1", "pod-1", Some("node-1"))],
        vec![],
    )]);
    let p = run(&ep, &[]);
    assert_eq!((p.create.len(), p.update.len(), p.delete.len()), (1, 0, 0));
    let slice = &p.create[0];
    assert_eq!(slice.metadata.generate_name.as_deref(), Some("test-ep-"));
    assert_eq!(slice.metadata.name, None);
    assert_eq!(slice.metadata.namespace.as_deref(), Some("test"));
    assert_eq!(slice.metadata.labels, Some(mirrored_labels()));
    assert_eq!(slice.metadata.annotations, Some(BTreeMap::new()));
    assert_eq!(
        slice.metadata.owner_references,
        Some(vec![OwnerReference {
            api_version: "v1".into(),
            kind: "Endpoints".into(),
            name: "test-ep".into(),
            uid: UID.into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }])
    );
    assert_eq!(slice.address_type, "IPv4");
    assert_eq!(slice.ports, Some(vec![slice_port("http", 80, "TCP")]));
    assert_eq!(
        slice.endpoints,
        vec![ready_endpoint("10.0.0.1", "pod-1", Some("node-1"))]
    );
}

#[test]
fn subsets_with_different_ports_make_separate_slices() {
    let ep = endpoints(vec![
        subset(
            http(),
            vec![address("10.0.0.1", "pod-1", Some("node-1"))],
            vec![],
        ),
        subset(
            vec![port("https", 443, "TCP")],
            vec![address("10.0.0.2", "pod-2", Some("node-1"))],
            vec![],
        ),
    ]);
    assert_eq!(run(&ep, &[]).create.len(), 2);
}

#[test]
fn same_address_under_two_ports_is_repacked_into_one_slice() {
    let ep = endpoints(vec![
        subset(
            http(),
            vec![address("10.0.0.1", "pod-1", Some("node-1"))],
            vec![],
        ),
        subset(
            vec![port("https", 443, "TCP")],
            vec![address("10.0.0.1", "pod-1", Some("node-1"))],
            vec![],
        ),
    ]);
    let p = run(&ep, &[]);
    assert_eq!(p.create.len(), 1);
    assert_eq!(p.create[0].ports.as_ref().map(Vec::len), Some(2));
}

#[test]
fn same_port_two_subsets_merge() {
    let ep = endpoints(vec![
        subset(
            http(),
            vec![address("10.0.0.1", "pod-1", Some("node-1"))],
            vec![],
        ),
        subset(
            http(),
            vec![address("10.0.0.2", "pod-2", Some("node-1"))],
            vec![],
        ),
    ]);
    let p = run(&ep, &[]);
    assert_eq!(p.create.len(), 1);
    assert_eq!(p.create[0].endpoints.len(), 2);
}

#[test]
fn endpoints_pending_deletion_creates_nothing() {
    let mut ep = endpoints(vec![subset(
        http(),
        vec![address("10.0.0.1", "pod-1", Some("node-1"))],
        vec![],
    )]);
    ep.metadata.deletion_timestamp = Some(Time("2020-01-01T00:00:00Z".parse().unwrap_or_default()));
    assert_eq!(actions(&run(&ep, &[])), 0);
}

#[test]
fn identical_existing_slice_is_left_alone() {
    let ep = endpoints(vec![subset(
        http(),
        vec![address("10.0.0.1", "pod-1", None)],
        vec![],
    )]);
    let existing = existing_slice(
        "test-ep-1",
        vec![slice_port("http", 80, "TCP")],
        vec![ready_endpoint("10.0.0.1", "pod-1", None)],
    );
    assert_eq!(actions(&run(&ep, &[existing])), 0);
}

#[test]
fn existing_slice_owned_by_another_uid_is_rewritten() {
    let ep = endpoints(vec![subset(
        http(),
        vec![address("10.0.0.1", "pod-1", None)],
        vec![],
    )]);
    let mut existing = existing_slice(
        "test-ep-1",
        vec![slice_port("http", 80, "TCP")],
        vec![ready_endpoint("10.0.0.1", "pod-1", None)],
    );
    if let Some(refs) = existing.metadata.owner_references.as_mut() {
        refs[0].uid = "fb91e798-1875-4857-b5eb-e2c878157b4d".into();
    }
    let p = run(&ep, &[existing]);
    assert_eq!((p.create.len(), p.update.len(), p.delete.len()), (0, 1, 0));
    assert_eq!(p.update[0].metadata.name.as_deref(), Some("test-ep-1"));
    assert_eq!(
        p.update[0]
            .metadata
            .owner_references
            .as_ref()
            .map(|r| r[0].uid.as_str()),
        Some(UID)
    );
}

#[test]
fn extra_annotation_or_label_difference_updates() {
    let ep = endpoints(vec![subset(
        http(),
        vec![address("10.0.0.1", "pod-1", None)],
        vec![],
    )]);
    let mut annotated = existing_slice(
        "test-ep-1",
        vec![slice_port("http", 80, "TCP")],
        vec![ready_endpoint("10.0.0.1", "pod-1", None)],
    );
    annotated.metadata.annotations = Some(BTreeMap::from([("foo".into(), "bar".into())]));
    let p = run(&ep, &[annotated.clone()]);
    assert_eq!((p.update.len(), actions(&p)), (1, 1));
    assert_eq!(p.update[0].metadata.annotations, Some(BTreeMap::new()));

    let mut labelled = ep.clone();
    labelled.metadata.labels = Some(BTreeMap::from([("foo".into(), "bar".into())]));
    let p = run(&labelled, &[annotated]);
    assert_eq!((p.update.len(), actions(&p)), (1, 1));
    let mut want = mirrored_labels();
    want.insert("foo".into(), "bar".into());
    assert_eq!(p.update[0].metadata.labels, Some(want));
}

#[test]
fn ready_and_not_ready_addresses() {
    let ep = endpoints(vec![subset(
        two_ports(),
        vec![
            address("10.1.1.1", "pod-11", Some("node-1")),
            address("10.1.1.2", "pod-12", Some("node-2")),
        ],
        vec![
            address("10.0.0.1", "pod-1", Some("node-1")),
            address("10.0.0.2", "pod-2", Some("node-2")),
        ],
    )]);
    let p = run(&ep, &[]);
    assert_eq!(p.create.len(), 1);
    let readiness: Vec<(String, Option<bool>)> = p.create[0]
        .endpoints
        .iter()
        .map(|e| {
            (
                e.addresses[0].clone(),
                e.conditions.as_ref().and_then(|c| c.ready),
            )
        })
        .collect();
    assert_eq!(
        readiness,
        vec![
            ("10.0.0.1".to_string(), Some(false)),
            ("10.0.0.2".to_string(), Some(false)),
            ("10.1.1.1".to_string(), Some(true)),
            ("10.1.1.2".to_string(), Some(true)),
        ]
    );
}

fn two_subsets() -> Endpoints {
    endpoints(vec![
        subset(
            two_ports(),
            vec![
                address("10.0.0.1", "pod-1", Some("node-1")),
                address("10.0.0.2", "pod-2", Some("node-2")),
            ],
            vec![],
        ),
        subset(
            second_ports(),
            vec![
                address("10.0.1.1", "pod-11", Some("node-1")),
                address("10.0.1.2", "pod-12", Some("node-2")),
                address("10.0.1.3", "pod-13", Some("node-3")),
            ],
            vec![],
        ),
    ])
}

#[test]
fn two_subsets_with_existing_empty_slice() {
    let existing = existing_slice(
        "test-ep-1",
        vec![
            slice_port("http", 80, "TCP"),
            slice_port("https", 443, "UDP"),
        ],
        vec![],
    );
    let p = run(&two_subsets(), &[existing]);
    assert_eq!((p.create.len(), p.update.len(), p.delete.len()), (1, 1, 0));
}

#[test]
fn two_subsets_with_existing_slice_identical_to_one() {
    let existing = existing_slice(
        "test-ep-1",
        vec![
            slice_port("https", 443, "UDP"),
            slice_port("http", 80, "TCP"),
        ],
        vec![
            ready_endpoint("10.0.0.1", "pod-1", Some("node-1")),
            ready_endpoint("10.0.0.2", "pod-2", Some("node-2")),
        ],
    );
    let mut unowned = existing.clone();
    unowned.metadata.owner_references = None;
    for slice in [existing, unowned] {
        let p = run(&two_subsets(), &[slice]);
        assert_eq!((p.create.len(), p.update.len(), p.delete.len()), (1, 0, 0));
        assert_eq!(p.create[0].endpoints.len(), 3);
    }
}

#[test]
fn dual_stack_addresses_split_by_address_type() {
    let ep = endpoints(vec![
        subset(
            two_ports(),
            vec![
                address(
                    "2001:db8:2222:3333:4444:5555:6666:7777",
                    "pod-1",
                    Some("node-1"),
                ),
                address("10.0.0.2", "pod-2", Some("node-2")),
            ],
            vec![],
        ),
        subset(
            second_ports(),
            vec![
                address("10.0.1.1", "pod-11", Some("node-1")),
                address("10.0.1.2", "pod-12", Some("node-2")),
                address(
                    "2001:db8:3333:4444:5555:6666:7777:8888",
                    "pod-13",
                    Some("node-3"),
                ),
            ],
            vec![],
        ),
    ]);
    let p = run(&ep, &[]);
    assert_eq!(p.create.len(), 4);
    let types: Vec<&str> = p.create.iter().map(|s| s.address_type.as_str()).collect();
    assert_eq!(types.iter().filter(|t| **t == "IPv6").count(), 2);
    let total: usize = p.create.iter().map(|s| s.endpoints.len()).sum();
    assert_eq!(total, 5);
}

#[test]
fn invalid_addresses_are_dropped_with_an_event() {
    let ep = endpoints(vec![
        subset(
            two_ports(),
            vec![
                address(
                    "2001:db8:1111:3333:4444:5555:6666:7777",
                    "pod-1",
                    Some("node-1"),
                ),
                address("this-is-not-an-ip", "pod-2", Some("node-2")),
            ],
            vec![],
        ),
        subset(
            second_ports(),
            vec![
                address("this-is-also-not-an-ip", "pod-11", Some("node-1")),
                address(
                    "2001:db8:4444:3333:4444:5555:6666:7777",
                    "pod-12",
                    Some("node-2"),
                ),
                address(
                    "2001:db8:5555:3333:4444:5555:6666:7777",
                    "pod-13",
                    Some("node-3"),
                ),
            ],
            vec![],
        ),
    ]);
    let p = run(&ep, &[]);
    assert_eq!(p.create.len(), 2);
    assert_eq!(p.addresses_skipped, 2);
    assert_eq!(
        p.events,
        vec![MirroringEvent {
            reason: INVALID_IP_ADDRESS_REASON,
            message: "Skipped 2 invalid IP addresses when mirroring to EndpointSlices".into(),
        }]
    );
}

#[test]
fn all_invalid_addresses_create_nothing() {
    let ep = endpoints(vec![subset(
        two_ports(),
        vec![
            address("this-is-not-an-ip1", "pod-1", None),
            address("this-is-not-an-ip12", "pod-2", None),
        ],
        vec![],
    )]);
    let p = run(&ep, &[]);
    assert_eq!(actions(&p), 0);
    assert_eq!(p.addresses_skipped, 2);
}

#[test]
fn max_endpoints_per_subset_caps_and_warns() {
    let options = MirroringOptions {
        max_endpoints_per_subset: 2,
    };
    let p = plan(
        "test-ep",
        Some(&two_subsets()),
        Some(&selectorless_service()),
        &[],
        &options,
    );
    assert_eq!(p.create.len(), 2);
    let total: usize = p.create.iter().map(|s| s.endpoints.len()).sum();
    assert_eq!(total, 4);
    assert_eq!(p.addresses_skipped, 1);
    assert_eq!(
        p.events,
        vec![MirroringEvent {
            reason: TOO_MANY_ADDRESSES_REASON,
            message: "A max of 2 addresses can be mirrored to EndpointSlices per Endpoints subset. 1 addresses were skipped".into(),
        }]
    );
}

#[test]
fn reserved_annotations_are_not_mirrored() {
    let mut ep = endpoints(vec![subset(
        http(),
        vec![address("10.0.0.1", "pod-1", None)],
        vec![],
    )]);
    ep.metadata.annotations = Some(BTreeMap::from([
        (
            LAST_APPLIED_ANNOTATION.into(),
            "{\"apiVersion\":\"v1\",\"kind\":\"Endpoints\",\"subsets\":[]}".into(),
        ),
        (
            TRIGGER_TIME_ANNOTATION.into(),
            "2020-01-01T00:00:00Z".into(),
        ),
        ("foo".into(), "bar".into()),
    ]));
    let p = run(&ep, &[]);
    assert_eq!(
        p.create[0].metadata.annotations,
        Some(BTreeMap::from([("foo".to_string(), "bar".to_string())]))
    );

    let plain = endpoints(vec![subset(
        http(),
        vec![address("10.0.0.1", "pod-1", None)],
        vec![],
    )]);
    let mut stale = existing_slice(
        "test-ep-1",
        vec![slice_port("http", 80, "TCP")],
        vec![ready_endpoint("10.0.0.1", "pod-1", None)],
    );
    stale.metadata.annotations = Some(BTreeMap::from([(
        LAST_APPLIED_ANNOTATION.into(),
        "{}".into(),
    )]));
    let p = run(&plain, &[stale]);
    assert_eq!(p.update.len(), 1);
    assert_eq!(p.update[0].metadata.annotations, Some(BTreeMap::new()));
}

#[test]
fn extra_slices_of_a_group_are_deleted_and_creates_recycle_deletes() {
    let ep = endpoints(vec![subset(
        http(),
        vec![address("10.0.0.1", "pod-1", None)],
        vec![],
    )]);
    let keep = existing_slice(
        "a",
        vec![slice_port("http", 80, "TCP")],
        vec![ready_endpoint("10.0.0.1", "pod-1", None)],
    );
    let extra = existing_slice("b", vec![slice_port("http", 80, "TCP")], vec![]);
    let p = run(&ep, &[extra.clone(), keep]);
    assert_eq!(
        (p.create.len(), p.update.len(), p.delete,),
        (0, 0, vec!["b".to_string()])
    );

    let old_ports = existing_slice("old", vec![slice_port("http", 8080, "TCP")], vec![]);
    let p = run(&ep, &[old_ports]);
    assert_eq!((p.create.len(), p.update.len(), p.delete.len()), (0, 1, 0));
    assert_eq!(p.update[0].metadata.name.as_deref(), Some("old"));
    // As upstream's recycleSlices: the name of the deleted slice, the generateName of a create.
    assert_eq!(
        p.update[0].metadata.generate_name.as_deref(),
        Some("test-ep-")
    );
    assert_eq!(p.update[0].ports, Some(vec![slice_port("http", 80, "TCP")]));
}

#[test]
fn mirrored_slices_are_deleted_when_mirroring_stops() {
    let ep = endpoints(vec![subset(
        http(),
        vec![address("10.0.0.1", "pod-1", None)],
        vec![],
    )]);
    let mine = existing_slice("a", vec![slice_port("http", 80, "TCP")], vec![]);
    let mut foreign = mine.clone();
    foreign.metadata.name = Some("z".into());
    if let Some(l) = foreign.metadata.labels.as_mut() {
        l.insert(
            MANAGED_BY_LABEL.into(),
            "endpointslice-controller.k8s.io".into(),
        );
    }
    let slices = [mine, foreign];
    let options = MirroringOptions::default();
    let deleted = vec!["a".to_string()];

    assert_eq!(
        plan(
            "test-ep",
            None,
            Some(&selectorless_service()),
            &slices,
            &options
        )
        .delete,
        deleted
    );
    assert_eq!(
        plan("test-ep", Some(&ep), None, &slices, &options).delete,
        deleted
    );

    let mut with_selector = selectorless_service();
    if let Some(spec) = with_selector.spec.as_mut() {
        spec.selector = Some(BTreeMap::new());
    }
    assert_eq!(
        plan(
            "test-ep",
            Some(&ep),
            Some(&with_selector),
            &slices,
            &options
        )
        .delete,
        deleted
    );

    let mut skip = ep.clone();
    skip.metadata.labels = Some(BTreeMap::from([(SKIP_MIRROR_LABEL.into(), "true".into())]));
    assert!(!should_mirror(&skip));
    assert_eq!(
        plan(
            "test-ep",
            Some(&skip),
            Some(&selectorless_service()),
            &slices,
            &options
        )
        .delete,
        deleted
    );

    let mut leader = ep.clone();
    leader.metadata.annotations = Some(BTreeMap::from([(LEADER_ANNOTATION.into(), "{}".into())]));
    assert!(!should_mirror(&leader));
    assert_eq!(
        plan(
            "test-ep",
            Some(&leader),
            Some(&selectorless_service()),
            &slices,
            &options
        )
        .delete,
        deleted
    );

    let mut skip_false = ep.clone();
    skip_false.metadata.labels = Some(BTreeMap::from([(SKIP_MIRROR_LABEL.into(), "false".into())]));
    assert!(should_mirror(&skip_false));
}

#[test]
fn irregular_ips_are_restringified() {
    let ep = endpoints(vec![subset(
        http(),
        vec![address(
            "2001:0db8:0000:0000:0000:0000:0000:0001",
            "pod-1",
            None,
        )],
        vec![],
    )]);
    let p = run(&ep, &[]);
    assert_eq!(
        p.create[0].endpoints[0].addresses,
        vec!["2001:db8::1".to_string()]
    );
    assert_eq!(p.create[0].address_type, "IPv6");
}
