//! Property: no AdmissionReview — well-formed, half-formed or garbage — makes the handlers panic,
//! and every decodable review gets an answer carrying its uid. The same inputs drive the cargo
//! fuzz target in `webhook/fuzz`.

use std::sync::Arc;

use allocator::{BitmapSizeLimit, PortRange, ServiceClusterIpRanges};
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use webhook::server::{
    AdmissionHandler, AdmissionPolicy, InMemoryAllocator, Phase, UnknownKindPolicy,
};

fn handler(unknown: UnknownKindPolicy) -> AdmissionHandler {
    let allocator = InMemoryAllocator::new(
        ServiceClusterIpRanges::parse("10.96.0.0/28", BitmapSizeLimit::Enforced).unwrap(),
        PortRange::parse("30000-30010").unwrap(),
    );
    let lookup: Vec<k8s_openapi::api::core::v1::Service> = vec![serde_json::from_value(json!(
        {"metadata": {"name": "web", "namespace": "default"}, "spec": {"clusterIP": "10.96.0.2"}}
    ))
    .unwrap()];
    AdmissionHandler::new(
        AdmissionPolicy {
            unknown_kinds: unknown,
            ..AdmissionPolicy::default()
        },
        Some(Arc::new(allocator)),
        Some(Arc::new(lookup)),
    )
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-2i64..70000).prop_map(Value::from),
        prop::sample::select(vec![
            "",
            "None",
            "TCP",
            "UDP",
            "SCTP",
            "HTTP",
            "NodePort",
            "LoadBalancer",
            "ClusterIP",
            "ExternalName",
            "10.96.0.1",
            "10.96.0.2",
            "127.0.0.1",
            "fd00::1",
            "0.0.0.0",
            "-web",
            "123_abc",
            "abcdefghijklmnop",
            "IPv4",
            "IPv6",
            "SingleStack",
            "RequireDualStack",
            "PreferDualStack",
            "ClientIP",
            "Local",
            "Cluster",
            "http",
            "a.b",
        ])
        .prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ]
}

const KEYS: &[&str] = &[
    "type",
    "clusterIP",
    "clusterIPs",
    "ipFamilies",
    "ipFamilyPolicy",
    "ports",
    "port",
    "name",
    "nodePort",
    "targetPort",
    "protocol",
    "selector",
    "sessionAffinity",
    "sessionAffinityConfig",
    "clientIP",
    "timeoutSeconds",
    "externalName",
    "externalTrafficPolicy",
    "healthCheckNodePort",
    "loadBalancerSourceRanges",
    "allocateLoadBalancerNodePorts",
    "addresses",
    "ip",
    "subsets",
    "notReadyAddresses",
    "endpoints",
    "addressType",
    "containers",
    "containerPort",
    "hostname",
];

fn tree() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|kvs| {
                Value::Object(
                    kvs.into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect::<Map<_, _>>(),
                )
            }),
        ]
    })
}

fn review() -> impl Strategy<Value = Value> {
    let kinds = prop::sample::select(vec![
        ("", "Service"),
        ("", "Endpoints"),
        ("discovery.k8s.io", "EndpointSlice"),
        ("", "Pod"),
        ("apps", "Deployment"),
    ]);
    let ops = prop::sample::select(vec!["CREATE", "UPDATE", "DELETE", "CONNECT"]);
    (kinds, ops, tree(), tree(), tree(), tree(), any::<bool>()).prop_map(
        |((group, kind), op, spec, old_spec, extra, meta, dry)| {
            let object = json!({"apiVersion": "v1", "kind": kind,
                "metadata": {"name": "svc", "namespace": "default", "x": meta},
                "spec": spec, "subsets": extra.clone(), "endpoints": extra.clone(),
                "addressType": "IPv4"});
            let old =
                json!({"metadata": {"name": "svc", "namespace": "default"}, "spec": old_spec});
            json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                "request": {"uid": "u", "kind": {"group": group, "version": "v1", "kind": kind},
                    "resource": {"group": group, "version": "v1", "resource": "x"},
                    "name": "svc", "namespace": "default", "operation": op,
                    "object": object, "oldObject": old, "dryRun": dry}})
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn structured_reviews_never_panic_and_echo_the_uid(review in review()) {
        let body = serde_json::to_vec(&review).unwrap();
        for policy in [UnknownKindPolicy::AllowWithWarning, UnknownKindPolicy::Deny] {
            let handler = handler(policy);
            for phase in [Phase::Mutate, Phase::Validate] {
                let answer = futures::executor::block_on(handler.review(phase, &body)).unwrap();
                prop_assert_eq!(answer.response.uid.as_str(), "u");
                if !answer.response.allowed {
                    let status = answer.response.status.as_ref().unwrap();
                    prop_assert!(status.code >= 400);
                }
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let handler = handler(UnknownKindPolicy::Deny);
        for phase in [Phase::Mutate, Phase::Validate] {
            let _ = futures::executor::block_on(handler.review(phase, &bytes));
        }
    }
}
