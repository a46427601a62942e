//! Spec §3.7 vectors (KS-1..KS-36).

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Service, ServicePort,
};
use k8s_openapi::api::discovery::v1::{
    Endpoint, EndpointConditions, EndpointPort as SlicePort, EndpointSlice,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;

use super::*;

fn ip(text: &str) -> IpAddr {
    text.parse()
        .unwrap_or_else(|e| panic!("bad ip {text}: {e}"))
}

fn ips(texts: &[&str]) -> Vec<IpAddr> {
    texts.iter().map(|t| ip(t)).collect()
}

// ---- Service (TestCreateOrUpdateMasterService) ----

fn sport(name: &str, port: i32, protocol: &str, target: i32) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        port,
        protocol: Some(protocol.into()),
        target_port: Some(IntOrString::Int(target)),
        ..Default::default()
    }
}

fn with_ports(svc: &Service, ports: Vec<ServicePort>, service_type: &str) -> Service {
    let mut out = svc.clone();
    if let Some(spec) = out.spec.as_mut() {
        spec.ports = Some(ports);
        spec.type_ = Some(service_type.into());
    }
    out
}

#[test]
fn ks1_absent_service_is_created() {
    let desired = desired_service(
        ip("1.2.3.4"),
        vec![sport("foo", 8080, "TCP", 8080)],
        "ClusterIP",
    );
    let ServiceAction::Create(created) = plan_service(None, &desired, false) else {
        panic!("expected a create");
    };
    assert_eq!(created.metadata.name.as_deref(), Some("kubernetes"));
    assert_eq!(created.metadata.namespace.as_deref(), Some("default"));
    assert_eq!(
        created.metadata.labels,
        Some(BTreeMap::from([
            ("provider".to_string(), "kubernetes".to_string()),
            ("component".to_string(), "apiserver".to_string()),
        ]))
    );
    let spec = created.spec.unwrap_or_default();
    assert_eq!(spec.ports, Some(vec![sport("foo", 8080, "TCP", 8080)]));
    assert_eq!(spec.selector, None);
    assert_eq!(spec.cluster_ip.as_deref(), Some("1.2.3.4"));
    assert_eq!(spec.ip_family_policy.as_deref(), Some("SingleStack"));
    assert_eq!(spec.session_affinity.as_deref(), Some("None"));
    assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
}

#[test]
fn ks2_to_ks10_drift_repair() {
    let foo = sport("foo", 8080, "TCP", 8080);
    let desired = desired_service(ip("1.2.3.4"), vec![foo.clone()], "ClusterIP");
    let repaired =
        |existing: Service, want: &Service| match plan_service(Some(&existing), want, true) {
            ServiceAction::Update(s) => {
                let spec = s.spec.clone().unwrap_or_default();
                (
                    spec.ports.unwrap_or_default(),
                    spec.type_.unwrap_or_default(),
                )
            }
            other => panic!("expected an update, got {other:?}"),
        };
    // KS-2
    let drifted = with_ports(&desired, vec![sport("foo", 8000, "TCP", 8080)], "ClusterIP");
    assert_eq!(
        repaired(drifted, &desired),
        (vec![foo.clone()], "ClusterIP".into())
    );
    // KS-3
    let both = desired_service(
        ip("1.2.3.4"),
        vec![foo.clone(), sport("baz", 1000, "TCP", 1000)],
        "ClusterIP",
    );
    assert_eq!(
        repaired(desired.clone(), &both).0,
        vec![foo.clone(), sport("baz", 1000, "TCP", 1000)]
    );
    // KS-4..KS-7
    for existing_port in [
        sport("bar", 1000, "UDP", 1000),
        sport("foo", 1000, "UDP", 1000),
        sport("foo", 8080, "TCP", 1000),
        sport("foo", 8080, "UDP", 8080),
    ] {
        let drifted = with_ports(&desired, vec![existing_port], "ClusterIP");
        assert_eq!(repaired(drifted, &desired).0, vec![foo.clone()]);
    }
    // KS-8
    let node_port = with_ports(&desired, vec![foo.clone()], "NodePort");
    assert_eq!(
        repaired(node_port, &desired),
        (vec![foo.clone()], "ClusterIP".into())
    );
    // KS-9
    assert_eq!(
        plan_service(Some(&desired), &desired, true),
        ServiceAction::NoOp
    );
    // KS-10
    let drifted = with_ports(&desired, vec![sport("foo", 1000, "TCP", 8080)], "ClusterIP");
    assert_eq!(
        plan_service(Some(&drifted), &desired, false),
        ServiceAction::NoOp
    );
}

#[test]
fn repair_keeps_other_fields() {
    let desired = desired_service(
        ip("1.2.3.4"),
        vec![sport("foo", 8080, "TCP", 8080)],
        "ClusterIP",
    );
    let mut drifted = with_ports(&desired, vec![], "NodePort");
    if let Some(spec) = drifted.spec.as_mut() {
        spec.cluster_ip = Some("1.2.3.9".into());
    }
    let ServiceAction::Update(updated) = plan_service(Some(&drifted), &desired, true) else {
        panic!("expected an update");
    };
    assert_eq!(
        updated.spec.and_then(|s| s.cluster_ip).as_deref(),
        Some("1.2.3.9")
    );
}

#[test]
fn ks35_first_usable_ip() {
    let first =
        |cidr: &str| first_usable_ip(&cidr.parse().unwrap_or_else(|e| panic!("{cidr}: {e}")));
    assert_eq!(first("10.96.0.0/12"), Ok(ip("10.96.0.1")));
    assert_eq!(first(DEFAULT_SERVICE_CLUSTER_IP_RANGE), Ok(ip("10.0.0.1")));
    assert_eq!(first("fd00::/108"), Ok(ip("fd00::1")));
    assert_eq!(first("10.0.0.0/29"), Ok(ip("10.0.0.1")));
    assert_eq!(
        first("10.0.0.0/30"),
        Err(KubernetesServiceError::RangeTooSmall)
    );
    assert_eq!(
        KubernetesServiceError::RangeTooSmall.to_string(),
        "the service cluster IP range must be at least 8 IP addresses"
    );
}

#[test]
fn ks36_node_port_variant() {
    let (ports, service_type) = kubernetes_service_ports(DEFAULT_SECURE_PORT, Some(30443));
    assert_eq!(service_type, "NodePort");
    assert_eq!(ports[0].node_port, Some(30443));
    assert_eq!(ports[0].port, 443);
    assert_eq!(ports[0].name.as_deref(), Some("https"));
    assert_eq!(ports[0].target_port, Some(IntOrString::Int(6443)));
    let (ports, service_type) = kubernetes_service_ports(DEFAULT_SECURE_PORT, None);
    assert_eq!((service_type, ports[0].node_port), ("ClusterIP", None));
}

// ---- Lease reconciler (lease_test.go) ----

fn eport(name: &str, port: i32, protocol: &str) -> EndpointPort {
    EndpointPort {
        name: Some(name.into()),
        port,
        protocol: Some(protocol.into()),
        ..Default::default()
    }
}

fn p() -> Vec<EndpointPort> {
    vec![eport("foo", 8080, "TCP")]
}

fn target(ports: Vec<EndpointPort>) -> EndpointsTarget {
    EndpointsTarget {
        primary_service_ip: ip("172.30.0.1"),
        secondary_service_ip: None,
        ports,
    }
}

fn endpoints_obj(addresses: &[&str], ports: Vec<EndpointPort>) -> Endpoints {
    Endpoints {
        metadata: ObjectMeta {
            name: Some("kubernetes".into()),
            namespace: Some("default".into()),
            labels: Some(BTreeMap::from([(
                SKIP_MIRROR_LABEL.to_string(),
                "true".to_string(),
            )])),
            ..Default::default()
        },
        subsets: Some(vec![EndpointSubset {
            addresses: Some(
                addresses
                    .iter()
                    .map(|a| EndpointAddress {
                        ip: a.to_string(),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ports: Some(ports),
            ..Default::default()
        }]),
    }
}

fn slice_obj(
    name: &str,
    address_type: &str,
    addresses: &[&str],
    ports: &[EndpointPort],
) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            labels: Some(BTreeMap::from([(
                SERVICE_NAME_LABEL.to_string(),
                "kubernetes".to_string(),
            )])),
            ..Default::default()
        },
        address_type: address_type.into(),
        endpoints: addresses
            .iter()
            .map(|a| Endpoint {
                addresses: vec![a.to_string()],
                conditions: Some(EndpointConditions {
                    ready: Some(true),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .collect(),
        ports: Some(
            ports
                .iter()
                .map(|p| SlicePort {
                    name: p.name.clone(),
                    port: Some(p.port),
                    protocol: p.protocol.clone(),
                    ..Default::default()
                })
                .collect(),
        ),
    }
}

fn both(addresses: &[&str], ports: Vec<EndpointPort>) -> ApiServerEndpoints {
    ApiServerEndpoints {
        endpoints: Some(endpoints_obj(addresses, ports.clone())),
        slices: vec![slice_obj("kubernetes", "IPv4", addresses, &ports)],
    }
}

fn now() -> Timestamp {
    "2024-01-01T00:00:00Z".parse().unwrap_or_default()
}

fn lease(addresses: &[&str], age_secs: i64) -> Lease {
    Lease {
        ips: ips(addresses),
        renew_time: now() - k8s_openapi::jiff::SignedDuration::from_secs(age_secs),
    }
}

fn leases(keys: &[&str]) -> Vec<Lease> {
    keys.iter().map(|k| lease(&[k], 1)).collect()
}

/// Writes after the lease refresh, which every lease reconcile issues first.
fn endpoint_writes(
    own: &[&str],
    existing_leases: &[Lease],
    t: &EndpointsTarget,
    reconcile_ports: bool,
    current: &ApiServerEndpoints,
) -> Vec<ApiServerWrite> {
    let writes = lease_reconcile(
        &ips(own),
        existing_leases,
        now(),
        t,
        reconcile_ports,
        current,
    )
    .unwrap_or_else(|e| panic!("reconcile failed: {e}"));
    assert_eq!(
        writes.first(),
        Some(&ApiServerWrite::PutLease(Lease {
            ips: ips(own),
            renew_time: now()
        }))
    );
    writes[1..].to_vec()
}

fn update_both(addresses: &[&str], ports: Vec<EndpointPort>) -> Vec<ApiServerWrite> {
    vec![
        ApiServerWrite::UpdateEndpoints(endpoints_obj(addresses, ports.clone())),
        ApiServerWrite::UpdateEndpointSlice(slice_obj("kubernetes", "IPv4", addresses, &ports)),
    ]
}

#[test]
fn ks11_nothing_exists() {
    let writes = endpoint_writes(
        &["1.2.3.4"],
        &[],
        &target(p()),
        true,
        &ApiServerEndpoints::default(),
    );
    assert_eq!(
        writes,
        vec![
            ApiServerWrite::CreateEndpoints(endpoints_obj(&["1.2.3.4"], p())),
            ApiServerWrite::CreateEndpointSlice(slice_obj(
                "kubernetes",
                "IPv4",
                &["1.2.3.4"],
                &p()
            )),
        ]
    );
}

#[test]
fn ks12_to_ks15_partial_state() {
    let t = target(p());
    let ok = both(&["1.2.3.4"], p());
    assert_eq!(
        endpoint_writes(&["1.2.3.4"], &leases(&["1.2.3.4"]), &t, true, &ok),
        vec![]
    );

    let no_slice = ApiServerEndpoints {
        slices: vec![],
        ..ok.clone()
    };
    assert_eq!(
        endpoint_writes(&["1.2.3.4"], &[], &t, true, &no_slice),
        vec![ApiServerWrite::CreateEndpointSlice(slice_obj(
            "kubernetes",
            "IPv4",
            &["1.2.3.4"],
            &p()
        ))]
    );

    let no_endpoints = ApiServerEndpoints {
        endpoints: None,
        ..ok.clone()
    };
    assert_eq!(
        endpoint_writes(&["1.2.3.4"], &[], &t, true, &no_endpoints),
        vec![ApiServerWrite::CreateEndpoints(endpoints_obj(
            &["1.2.3.4"],
            p()
        ))]
    );

    let wrong_slice = ApiServerEndpoints {
        slices: vec![slice_obj("kubernetes", "IPv4", &["4.3.2.1"], &p())],
        ..ok
    };
    assert_eq!(
        endpoint_writes(&["1.2.3.4"], &[], &t, true, &wrong_slice),
        vec![ApiServerWrite::UpdateEndpointSlice(slice_obj(
            "kubernetes",
            "IPv4",
            &["1.2.3.4"],
            &p()
        ))]
    );
}

#[test]
fn ks16_to_ks18_lease_sets() {
    let t = target(p());
    let current = both(&["1.2.3.4", "4.3.2.1"], p());
    assert_eq!(
        endpoint_writes(&["1.2.3.4"], &leases(&["1.2.3.4"]), &t, true, &current),
        update_both(&["1.2.3.4"], p())
    );

    let current = both(
        &["1.2.3.4", "4.3.2.1", "4.3.2.2", "4.3.2.3", "4.3.2.4"],
        p(),
    );
    let four = leases(&["1.2.3.4", "4.3.2.2", "4.3.2.3", "4.3.2.4"]);
    assert_eq!(
        endpoint_writes(&["1.2.3.4"], &four, &t, true, &current),
        update_both(&["1.2.3.4", "4.3.2.2", "4.3.2.3", "4.3.2.4"], p())
    );

    let current = both(&["4.3.2.1"], p());
    assert_eq!(
        endpoint_writes(&["4.3.2.2"], &leases(&["4.3.2.1"]), &t, true, &current),
        update_both(&["4.3.2.1", "4.3.2.2"], p())
    );
}

#[test]
fn expired_leases_are_ignored() {
    let t = target(p());
    let current = both(&["1.2.3.4", "4.3.2.1"], p());
    let mut existing = vec![lease(&["4.3.2.1"], 15)];
    assert_eq!(
        endpoint_writes(&["1.2.3.4"], &existing, &t, true, &current),
        update_both(&["1.2.3.4"], p())
    );
    existing[0] = lease(&["4.3.2.1"], 14);
    assert_eq!(
        endpoint_writes(&["1.2.3.4"], &existing, &t, true, &current),
        vec![]
    );
}

#[test]
fn ks19_port_drift_is_reset() {
    let t = target(p());
    for wrong in [
        eport("foo", 9090, "TCP"),
        eport("foo", 8080, "UDP"),
        eport("baz", 8080, "TCP"),
    ] {
        let current = both(&["1.2.3.4"], vec![wrong]);
        assert_eq!(
            endpoint_writes(&["1.2.3.4"], &[], &t, true, &current),
            update_both(&["1.2.3.4"], p())
        );
    }
}

#[test]
fn ks20_missing_skip_mirror_label() {
    let t = target(p());
    let mut current = both(&["1.2.3.4"], p());
    if let Some(e) = current.endpoints.as_mut() {
        e.metadata.labels = None;
    }
    assert_eq!(
        endpoint_writes(&["1.2.3.4"], &[], &t, true, &current),
        vec![ApiServerWrite::UpdateEndpoints(endpoints_obj(
            &["1.2.3.4"],
            p()
        ))]
    );
}

#[test]
fn ks21_to_ks23_reconcile_ports() {
    let foo_bar = vec![eport("foo", 8080, "TCP"), eport("bar", 1000, "TCP")];
    let t = target(foo_bar.clone());
    let current = both(&["1.2.3.4"], p());
    assert_eq!(
        endpoint_writes(&["1.2.3.4"], &[], &t, true, &current),
        update_both(&["1.2.3.4"], foo_bar)
    );
    assert_eq!(
        endpoint_writes(&["1.2.3.4"], &[], &t, false, &current),
        vec![]
    );
    let stale = both(&["4.3.2.1"], p());
    assert_eq!(
        endpoint_writes(&["1.2.3.4"], &[], &t, false, &stale),
        update_both(&["1.2.3.4"], p())
    );
}

fn dual_target() -> EndpointsTarget {
    EndpointsTarget {
        primary_service_ip: ip("172.30.0.1"),
        secondary_service_ip: Some(ip("fd02:1234::1")),
        ports: p(),
    }
}

#[test]
fn ks24_dual_stack_from_nothing() {
    let writes = endpoint_writes(
        &["1.2.3.4", "1234::5678"],
        &[],
        &dual_target(),
        true,
        &ApiServerEndpoints::default(),
    );
    assert_eq!(
        writes,
        vec![
            ApiServerWrite::CreateEndpoints(endpoints_obj(&["1.2.3.4"], p())),
            ApiServerWrite::CreateEndpointSlice(slice_obj(
                "kubernetes",
                "IPv4",
                &["1.2.3.4"],
                &p()
            )),
            ApiServerWrite::CreateEndpointSlice(slice_obj(
                "kubernetes-v6",
                "IPv6",
                &["1234::5678"],
                &p()
            )),
        ]
    );
}

#[test]
fn ks25_dual_stack_stray_slice_deleted() {
    let current = ApiServerEndpoints {
        endpoints: Some(endpoints_obj(&["1.2.3.4"], p())),
        slices: vec![
            slice_obj("kubernetes", "IPv4", &["4.3.2.1"], &p()),
            slice_obj("kubernetes-v4", "IPv4", &["5.6.7.8"], &p()),
            slice_obj("kubernetes-v6", "IPv6", &["1234::5678"], &p()),
        ],
    };
    let writes = endpoint_writes(
        &["1.2.3.4", "1234::5678"],
        &[],
        &dual_target(),
        true,
        &current,
    );
    assert_eq!(
        writes,
        vec![
            ApiServerWrite::DeleteEndpointSlice("kubernetes-v4".into()),
            ApiServerWrite::UpdateEndpointSlice(slice_obj(
                "kubernetes",
                "IPv4",
                &["1.2.3.4"],
                &p()
            )),
        ]
    );
}

#[test]
fn secondary_family_needs_as_many_ips_as_primary() {
    let current = ApiServerEndpoints::default();
    let writes = lease_reconcile(
        &ips(&["1.2.3.4", "1234::5678"]),
        &leases(&["4.3.2.1"]),
        now(),
        &dual_target(),
        true,
        &current,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        writes.last(),
        Some(&ApiServerWrite::CreateEndpointSlice(slice_obj(
            "kubernetes-v6",
            "IPv6",
            &[],
            &p()
        )))
    );
}

#[test]
fn ks26_to_ks28_removal() {
    let t = target(p());
    let four = leases(&["1.2.3.4", "4.3.2.2", "4.3.2.3", "4.3.2.4"]);
    let current = both(&["1.2.3.4", "4.3.2.2", "4.3.2.3", "4.3.2.4"], p());
    let mut expected = vec![ApiServerWrite::DeleteLease(ip("1.2.3.4"))];
    expected.extend(update_both(&["4.3.2.2", "4.3.2.3", "4.3.2.4"], p()));
    assert_eq!(
        lease_remove(&ips(&["1.2.3.4"]), &four, now(), &t, &current),
        Ok(expected.clone())
    );

    let mut no_subset = current.clone();
    if let Some(e) = no_subset.endpoints.as_mut() {
        e.subsets = None;
    }
    assert_eq!(
        lease_remove(&ips(&["1.2.3.4"]), &four, now(), &t, &no_subset),
        Ok(expected)
    );

    let missing = lease_remove(&ips(&["5.6.7.8"]), &four, now(), &t, &current);
    assert_eq!(
        missing,
        Err(KubernetesServiceError::LeaseNotFound {
            ip: "5.6.7.8".into()
        })
    );

    let last = both(&["1.2.3.4"], p());
    let writes = lease_remove(&ips(&["1.2.3.4"]), &leases(&["1.2.3.4"]), now(), &t, &last);
    let mut expected = vec![ApiServerWrite::DeleteLease(ip("1.2.3.4"))];
    expected.extend(update_both(&[], p()));
    assert_eq!(writes, Ok(expected));
}

#[test]
fn no_own_ip_is_an_error() {
    let result = lease_reconcile(
        &[],
        &[],
        now(),
        &target(p()),
        true,
        &ApiServerEndpoints::default(),
    );
    assert_eq!(result, Err(KubernetesServiceError::NoOwnIp));
    assert_eq!(
        KubernetesServiceError::NoApiServerIps.to_string(),
        "no API server IP addresses were listed in storage, refusing to erase all endpoints for the kubernetes Service"
    );
}

// ---- Master-count (instancecount_test.go) ----

#[test]
fn ks29_to_ks33_master_count() {
    let t = target(p());
    let five = both(
        &["1.2.3.4", "4.3.2.1", "4.3.2.2", "4.3.2.3", "4.3.2.4"],
        p(),
    );
    assert_eq!(
        master_count_reconcile(ip("1.2.3.4"), 4, &t, true, &five),
        update_both(&["1.2.3.4", "4.3.2.2", "4.3.2.3", "4.3.2.4"], p())
    );
    assert_eq!(
        master_count_reconcile(ip("4.3.2.4"), 4, &t, true, &five),
        update_both(&["4.3.2.1", "4.3.2.2", "4.3.2.3", "4.3.2.4"], p())
    );
    let two = both(&["4.3.2.1", "4.3.2.2"], p());
    assert_eq!(
        master_count_reconcile(ip("4.3.2.2"), 4, &t, true, &two),
        vec![]
    );
    let one = both(&["4.3.2.1"], p());
    assert_eq!(
        master_count_reconcile(ip("4.3.2.2"), 4, &t, true, &one),
        update_both(&["4.3.2.1", "4.3.2.2"], p())
    );
    assert_eq!(
        master_count_reconcile(ip("1.2.3.4"), 1, &t, true, &one),
        update_both(&["1.2.3.4"], p())
    );
}

#[test]
fn master_count_remove_drops_own_ip() {
    let t = target(p());
    let two = both(&["4.3.2.1", "4.3.2.2"], p());
    assert_eq!(
        master_count_remove(ip("4.3.2.2"), &t, &two),
        update_both(&["4.3.2.1"], p())
    );
    assert_eq!(master_count_remove(ip("9.9.9.9"), &t, &two), vec![]);
}

#[test]
fn reconciler_type_flag() {
    assert_eq!(
        ReconcilerType::from_flag("", 1),
        Some(ReconcilerType::Lease)
    );
    assert_eq!(
        ReconcilerType::from_flag("lease", 1),
        Some(ReconcilerType::Lease)
    );
    assert_eq!(
        ReconcilerType::from_flag("master-count", 3),
        Some(ReconcilerType::MasterCount(3))
    );
    assert_eq!(
        ReconcilerType::from_flag("none", 1),
        Some(ReconcilerType::None)
    );
    assert_eq!(ReconcilerType::from_flag("bogus", 1), None);
}

// ---- System namespaces ----

#[test]
fn ks34_system_namespaces() {
    let names = |ns: Vec<k8s_openapi::api::core::v1::Namespace>| -> Vec<String> {
        ns.into_iter().filter_map(|n| n.metadata.name).collect()
    };
    assert_eq!(
        names(missing_system_namespaces::<&str>(&[])),
        ["kube-system", "kube-public", "kube-node-lease", "default"]
    );
    assert_eq!(missing_system_namespaces(&["kube-system"]).len(), 3);
    assert_eq!(
        missing_system_namespaces(&["kube-system", "kube-public"]).len(),
        2
    );
    assert_eq!(
        missing_system_namespaces(&["kube-system", "kube-public", "kube-node-lease"]).len(),
        1
    );
    assert_eq!(missing_system_namespaces(&SYSTEM_NAMESPACES).len(), 0);
    assert_eq!(missing_system_namespaces(&["foo", "bar"]).len(), 4);
}
