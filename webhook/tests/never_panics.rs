//! Validation never panics, whatever strings and numbers the fields hold.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use proptest::prelude::*;
use webhook::{
    AllocationSnapshot, ServiceRanges, ValidationOptions, check_service_create,
    check_service_update, default_service,
};

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("None".to_owned()),
        Just("10.96.0.10".to_owned()),
        Just("fd00::10".to_owned()),
        Just("LoadBalancer".to_owned()),
        Just("NodePort".to_owned()),
        Just("ExternalName".to_owned()),
        Just("ClientIP".to_owned()),
        Just("Local".to_owned()),
        Just("PreferDualStack".to_owned()),
        Just("IPv6".to_owned()),
        ".{0,70}",
    ]
}

fn opt_text() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(text())
}

fn port() -> impl Strategy<Value = ServicePort> {
    (
        opt_text(),
        any::<i32>(),
        opt_text(),
        proptest::option::of(any::<i32>()),
        proptest::option::of(prop_oneof![
            any::<i32>().prop_map(IntOrString::Int),
            text().prop_map(IntOrString::String)
        ]),
        opt_text(),
    )
        .prop_map(
            |(name, port, protocol, node_port, target_port, app_protocol)| ServicePort {
                name,
                port,
                protocol,
                node_port,
                target_port,
                app_protocol,
            },
        )
}

fn service() -> impl Strategy<Value = Service> {
    let lists = (
        proptest::option::of(proptest::collection::vec(text(), 0..4)),
        proptest::option::of(proptest::collection::vec(text(), 0..4)),
        proptest::option::of(proptest::collection::vec(text(), 0..3)),
        proptest::option::of(proptest::collection::vec(port(), 0..4)),
    );
    let scalars = (
        opt_text(),
        opt_text(),
        opt_text(),
        opt_text(),
        opt_text(),
        proptest::option::of(any::<i32>()),
        opt_text(),
        opt_text(),
    );
    (
        text(),
        lists,
        scalars,
        proptest::option::of(any::<bool>()),
        proptest::option::of(any::<i32>()),
    )
        .prop_map(
            |(
                name,
                (cluster_ips, ip_families, ranges, ports),
                (type_, cluster_ip, etp, itp, policy, hcnp, affinity, lb_class),
                alloc,
                timeout,
            )| {
                let mut svc = Service::default();
                svc.metadata.name = Some(name);
                svc.metadata.namespace = Some("default".to_owned());
                svc.spec = Some(ServiceSpec {
                    type_,
                    cluster_ip,
                    cluster_ips,
                    ip_families,
                    ip_family_policy: policy,
                    load_balancer_source_ranges: ranges,
                    ports,
                    external_traffic_policy: etp,
                    internal_traffic_policy: itp,
                    health_check_node_port: hcnp,
                    session_affinity: affinity,
                    session_affinity_config: timeout.map(|t| {
                        k8s_openapi::api::core::v1::SessionAffinityConfig {
                            client_ip: Some(k8s_openapi::api::core::v1::ClientIPConfig {
                                timeout_seconds: Some(t),
                            }),
                        }
                    }),
                    load_balancer_class: lb_class,
                    allocate_load_balancer_node_ports: alloc,
                    ..Default::default()
                });
                svc
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn create_and_update_never_panic(raw in service(), other in service(), defaulted in any::<bool>()) {
        let mut svc = raw;
        if defaulted {
            default_service(&mut svc);
        }
        let ranges = ServiceRanges::default();
        let opts = ValidationOptions::default();
        let _ = check_service_create(&svc, &ranges, &AllocationSnapshot::default(), &opts);
        let _ = check_service_update(&other, &svc, &ranges, &opts);
        let _ = webhook::service::validate_service_fields(&svc, &opts);
    }
}
