//! Spec §5.3 / §5.4 vectors, compared as exact strings.

use k8s_openapi::api::core::v1::Service;
use serde_json::{Value, json};
use webhook::{
    AllocationSnapshot, Rejection, ServiceRanges, Status, ValidationOptions, ValueRendering,
    check_service_create, check_service_update, default_service, validate_service,
};

fn service(name: &str, spec: Value) -> Service {
    let mut svc: Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec,
    }))
    .expect("test fixture is a valid Service");
    default_service(&mut svc);
    svc
}

fn ranges() -> ServiceRanges {
    ServiceRanges::default()
}

fn dual_ranges() -> ServiceRanges {
    ServiceRanges {
        cluster_ip: vec![
            "10.96.0.0/12".parse().expect("cidr"),
            "fd00::/108".parse().expect("cidr"),
        ],
        node_ports: (30000, 32767),
    }
}

fn create_with(name: &str, spec: Value, taken: &AllocationSnapshot) -> Result<Service, Rejection> {
    check_service_create(
        &service(name, spec),
        &ranges(),
        taken,
        &ValidationOptions::default(),
    )
}

fn status_of(name: &str, spec: Value, taken: &AllocationSnapshot) -> Status {
    match create_with(name, spec, taken) {
        Ok(_) => panic!("expected a rejection"),
        Err(r) => r.to_status("Service", name, ValueRendering::Json),
    }
}

/// Causes as (field, reason, message) triples.
fn causes(spec: Value) -> Vec<(String, String, String)> {
    causes_taken(spec, &AllocationSnapshot::default())
}

fn causes_taken(spec: Value, taken: &AllocationSnapshot) -> Vec<(String, String, String)> {
    let status = status_of("svc", spec, taken);
    assert_eq!(status.code, 422, "{status:?}");
    status
        .details
        .unwrap_or_default()
        .causes
        .into_iter()
        .map(|c| (c.field, c.reason, c.message))
        .collect()
}

fn one(field: &str, reason: &str, message: &str) -> Vec<(String, String, String)> {
    vec![(field.to_owned(), reason.to_owned(), message.to_owned())]
}

const RFC1123_LABEL: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

#[test]
fn e1_node_port_out_of_range_full_status_json() {
    let status = status_of(
        "web",
        json!({"type":"NodePort","ports":[{"port":80,"nodePort":80,"protocol":"TCP","targetPort":80}]}),
        &AllocationSnapshot::default(),
    );
    let expected = r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Service \"web\" is invalid: spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767","reason":"Invalid","details":{"name":"web","kind":"Service","causes":[{"reason":"FieldValueInvalid","message":"Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767","field":"spec.ports[0].nodePort"}]},"code":422}"#;
    assert_eq!(status.to_json(), expected);
    // The typed struct serialises with the same key order.
    assert_eq!(
        serde_json::to_string(&status).expect("serialises"),
        expected
    );
    assert_eq!(
        status.kubectl_message(),
        "The Service \"web\" is invalid: spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767\n"
    );
}

#[test]
fn e2_node_port_already_allocated() {
    let taken = AllocationSnapshot {
        node_ports: [30080].into(),
        ..Default::default()
    };
    assert_eq!(
        causes_taken(
            json!({"type":"NodePort","ports":[{"port":80,"nodePort":30080}]}),
            &taken
        ),
        one(
            "spec.ports[0].nodePort",
            "FieldValueInvalid",
            "Invalid value: 30080: provided port is already allocated"
        )
    );
}

#[test]
fn e3_static_cluster_ip_already_allocated() {
    let taken = AllocationSnapshot {
        cluster_ips: ["10.96.0.10".parse().expect("ip")].into(),
        ..Default::default()
    };
    let spec = json!({"clusterIP":"10.96.0.10","ports":[{"name":"dns","port":53,"protocol":"UDP"},{"name":"dns-tcp","port":53,"protocol":"TCP"}]});
    let status = status_of("kube-dns", spec.clone(), &taken);
    assert_eq!(
        status.message,
        "Service \"kube-dns\" is invalid: spec.clusterIPs: Invalid value: [\"10.96.0.10\"]: failed to allocate IP 10.96.0.10: provided IP is already allocated"
    );
    let legacy = create_with("kube-dns", spec, &taken)
        .expect_err("rejected")
        .to_status("Service", "kube-dns", ValueRendering::GoSyntax);
    assert_eq!(
        legacy.details.expect("details").causes[0].message,
        "Invalid value: []string{\"10.96.0.10\"}: failed to allocate IP 10.96.0.10: provided IP is already allocated"
    );
}

#[test]
fn e4_static_cluster_ip_outside_range() {
    assert_eq!(
        causes(json!({"clusterIP":"192.168.1.5","ports":[{"port":80}]})),
        one(
            "spec.clusterIPs",
            "FieldValueInvalid",
            "Invalid value: [\"192.168.1.5\"]: failed to allocate IP 192.168.1.5: the provided network does not match the current range"
        )
    );
    // Network and broadcast addresses of the range are not assignable either (A16).
    for ip in ["10.96.0.0", "10.111.255.255"] {
        let c = causes(json!({"clusterIP": ip, "ports":[{"port":80}]}));
        assert!(
            c[0].2
                .ends_with("the provided network does not match the current range"),
            "{c:?}"
        );
    }
}

#[test]
fn e5_e6_internal_error_shapes() {
    let status = Status::internal_error("failed to allocate a serviceIP: range is full");
    assert_eq!(
        status.to_json(),
        r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Internal error occurred: failed to allocate a serviceIP: range is full","reason":"InternalError","details":{"causes":[{"message":"failed to allocate a serviceIP: range is full"}]},"code":500}"#
    );
    assert_eq!(
        status.kubectl_message(),
        "Error from server (InternalError): Internal error occurred: failed to allocate a serviceIP: range is full\n"
    );
    assert_eq!(
        Status::internal_error("failed to allocate a nodePort: range is full").message,
        "Internal error occurred: failed to allocate a nodePort: range is full"
    );
}

#[test]
fn e7_invalid_cluster_ip_literal() {
    assert_eq!(
        causes(json!({"clusterIP":"10.0.0.256","ports":[{"port":80}]})),
        one(
            "spec.clusterIPs[0]",
            "FieldValueInvalid",
            "Invalid value: \"10.0.0.256\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
        )
    );
}

#[test]
fn e8_multi_port_without_names() {
    let status = status_of(
        "svc",
        json!({"ports":[{"port":80},{"port":443}]}),
        &AllocationSnapshot::default(),
    );
    assert_eq!(
        status.message,
        "Service \"svc\" is invalid: [spec.ports[0].name: Required value, spec.ports[1].name: Required value]"
    );
    let causes: Vec<_> = status.details.clone().expect("details").causes;
    assert_eq!(causes.len(), 2);
    assert_eq!(
        (
            causes[0].field.as_str(),
            causes[0].reason.as_str(),
            causes[0].message.as_str()
        ),
        ("spec.ports[0].name", "FieldValueRequired", "Required value")
    );
    assert_eq!(
        (causes[1].field.as_str(), causes[1].message.as_str()),
        ("spec.ports[1].name", "Required value")
    );
    assert_eq!(
        status.kubectl_message(),
        "The Service \"svc\" is invalid: \n* spec.ports[0].name: Required value\n* spec.ports[1].name: Required value\n"
    );
}

#[test]
fn e9_e10_e11_port_names() {
    assert!(
        create_with(
            "svc",
            json!({"ports":[{"name":"123-abc","port":80}]}),
            &AllocationSnapshot::default()
        )
        .is_ok()
    );
    for name in ["123_abc", "-web", "Web", "HTTP"] {
        assert_eq!(
            causes(json!({"ports":[{"name": name, "port":80}]})),
            one(
                "spec.ports[0].name",
                "FieldValueInvalid",
                &format!("Invalid value: \"{name}\": {RFC1123_LABEL}")
            ),
        );
    }
    assert_eq!(
        causes(json!({"ports":[{"name":"web.1","port":80}]})),
        one(
            "spec.ports[0].name",
            "FieldValueInvalid",
            "Invalid value: \"web.1\": must not contain dots"
        )
    );
    let long = "a".repeat(64);
    assert_eq!(
        causes(json!({"ports":[{"name": long, "port":80}]})),
        one(
            "spec.ports[0].name",
            "FieldValueInvalid",
            &format!("Invalid value: \"{long}\": must be no more than 63 characters")
        )
    );
}

#[test]
fn e9_admission_message_text() {
    let status = status_of(
        "web",
        json!({"ports":[{"name":"123_abc","port":80}]}),
        &AllocationSnapshot::default(),
    );
    assert_eq!(
        status.message,
        format!(
            "Service \"web\" is invalid: spec.ports[0].name: Invalid value: \"123_abc\": {RFC1123_LABEL}"
        )
    );
}

#[test]
fn e12_duplicate_port_names() {
    assert_eq!(
        causes(json!({"ports":[{"name":"http","port":80},{"name":"http","port":8080}]})),
        one(
            "spec.ports[1].name",
            "FieldValueDuplicate",
            "Duplicate value: \"http\""
        )
    );
}

#[test]
fn e13_duplicate_protocol_port() {
    let c = causes(json!({"ports":[{"name":"a","port":80},{"name":"b","port":80}]}));
    assert_eq!(c.len(), 1);
    assert_eq!(
        (c[0].0.as_str(), c[0].1.as_str()),
        ("spec.ports[1]", "FieldValueDuplicate")
    );
}

#[test]
fn e14_same_port_different_protocol() {
    let spec = json!({"ports":[{"name":"dns","port":53,"protocol":"UDP"},{"name":"dns-tcp","port":53,"protocol":"TCP"}]});
    assert!(create_with("svc", spec, &AllocationSnapshot::default()).is_ok());
}

#[test]
fn e15_iana_target_port_names() {
    for ok in ["http-web", "123-abc"] {
        assert!(
            create_with(
                "svc",
                json!({"ports":[{"port":80,"targetPort": ok}]}),
                &AllocationSnapshot::default()
            )
            .is_ok()
        );
    }
    let cases = [
        (
            "http_web",
            "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
        ),
        ("abcdefghijklmnop", "must be no more than 15 characters"),
        ("8080", "must contain at least one letter (a-z)"),
        ("my--port", "must not contain consecutive hyphens"),
        ("-web", "must not begin or end with a hyphen"),
        (
            "whois++",
            "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
        ),
        ("1-2-3-4", "must contain at least one letter (a-z)"),
    ];
    for (target, msg) in cases {
        assert_eq!(
            causes(json!({"ports":[{"port":80,"targetPort": target}]})),
            one(
                "spec.ports[0].targetPort",
                "FieldValueInvalid",
                &format!("Invalid value: \"{target}\": {msg}")
            ),
            "{target}"
        );
    }
}

#[test]
fn e16_port_range() {
    for port in [0, 65536] {
        let msg = format!("Invalid value: {port}: must be between 1 and 65535, inclusive");
        assert_eq!(
            causes(json!({"ports":[{"port": port}]})),
            vec![
                (
                    "spec.ports[0].port".to_owned(),
                    "FieldValueInvalid".to_owned(),
                    msg.clone()
                ),
                (
                    "spec.ports[0].targetPort".to_owned(),
                    "FieldValueInvalid".to_owned(),
                    msg
                ),
            ]
        );
    }
}

#[test]
fn e17_protocol() {
    assert_eq!(
        causes(json!({"ports":[{"port":80,"protocol":"HTTP"}]})),
        one(
            "spec.ports[0].protocol",
            "FieldValueNotSupported",
            "Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\""
        )
    );
}

#[test]
fn e18_node_port_on_cluster_ip() {
    assert_eq!(
        causes(json!({"type":"ClusterIP","ports":[{"port":80,"nodePort":30080}]})),
        one(
            "spec.ports[0].nodePort",
            "FieldValueForbidden",
            "Forbidden: may not be used when `type` is 'ClusterIP'"
        )
    );
}

#[test]
fn e19_session_affinity_timeout() {
    for timeout in [86401, 0] {
        assert_eq!(
            causes(
                json!({"sessionAffinity":"ClientIP","sessionAffinityConfig":{"clientIP":{"timeoutSeconds": timeout}},"ports":[{"port":80}]})
            ),
            one(
                "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                "FieldValueInvalid",
                &format!("Invalid value: {timeout}: must be greater than 0 and less than 86400")
            )
        );
    }
    let ok = json!({"sessionAffinity":"ClientIP","sessionAffinityConfig":{"clientIP":{"timeoutSeconds": 86400}},"ports":[{"port":80}]});
    assert!(create_with("svc", ok, &AllocationSnapshot::default()).is_ok());
    let defaulted = service(
        "svc",
        json!({"sessionAffinity":"ClientIP","ports":[{"port":80}]}),
    );
    let timeout = defaulted
        .spec
        .and_then(|s| s.session_affinity_config)
        .and_then(|c| c.client_ip)
        .and_then(|c| c.timeout_seconds);
    assert_eq!(timeout, Some(10800));
}

#[test]
fn e20_external_name_with_cluster_ip() {
    assert_eq!(
        causes(
            json!({"type":"ExternalName","externalName":"db.example.com","clusterIP":"10.96.0.20"})
        ),
        one(
            "spec.clusterIPs",
            "FieldValueForbidden",
            "Forbidden: may not be set for ExternalName services"
        )
    );
}

#[test]
fn e21_external_name_values() {
    assert_eq!(
        causes(json!({"type":"ExternalName","externalName":"db_example.com"})),
        one(
            "spec.externalName",
            "FieldValueInvalid",
            "Invalid value: \"db_example.com\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        )
    );
    assert_eq!(
        causes(json!({"type":"ExternalName","externalName":""})),
        one("spec.externalName", "FieldValueRequired", "Required value")
    );
    assert!(
        create_with(
            "svc",
            json!({"type":"ExternalName","externalName":"db.example.com."}),
            &AllocationSnapshot::default()
        )
        .is_ok()
    );
}

#[test]
fn e22_external_traffic_policy_on_cluster_ip() {
    assert_eq!(
        causes(json!({"type":"ClusterIP","externalTrafficPolicy":"Local","ports":[{"port":80}]})),
        one(
            "spec.externalTrafficPolicy",
            "FieldValueInvalid",
            "Invalid value: \"Local\": may only be set for externally-accessible services"
        )
    );
}

#[test]
fn e23_source_ranges() {
    assert_eq!(
        causes(
            json!({"type":"NodePort","loadBalancerSourceRanges":["10.0.0.0/8"],"ports":[{"port":80}]})
        ),
        one(
            "spec.LoadBalancerSourceRanges",
            "FieldValueForbidden",
            "Forbidden: may only be used when `type` is 'LoadBalancer'"
        )
    );
    assert_eq!(
        causes(
            json!({"type":"LoadBalancer","loadBalancerSourceRanges":["10.0.0.0/33"],"ports":[{"port":80}]})
        ),
        one(
            "spec.LoadBalancerSourceRanges[0]",
            "FieldValueInvalid",
            "Invalid value: \"10.0.0.0/33\": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"
        )
    );
}

fn stored(name: &str, spec: Value) -> Service {
    let mut svc = service(name, spec);
    svc.metadata.resource_version = Some("1".to_owned());
    svc
}

fn update_causes(old: &Service, new_spec: Value) -> Vec<(String, String, String)> {
    let new = stored("svc", new_spec);
    match check_service_update(old, &new, &ranges(), &ValidationOptions::default()) {
        Ok(_) => Vec::new(),
        Err(r) => r
            .to_status("Service", "svc", ValueRendering::Json)
            .details
            .unwrap_or_default()
            .causes
            .into_iter()
            .map(|c| (c.field, c.reason, c.message))
            .collect(),
    }
}

#[test]
fn e24_cluster_ip_immutable() {
    let old = stored(
        "svc",
        json!({"clusterIP":"10.96.0.50","clusterIPs":["10.96.0.50"],"ipFamilies":["IPv4"],"ipFamilyPolicy":"SingleStack","ports":[{"port":80}]}),
    );
    let expected = one(
        "spec.clusterIPs[0]",
        "FieldValueInvalid",
        "Invalid value: [\"10.96.0.51\"]: may not change once set",
    );
    assert_eq!(
        update_causes(
            &old,
            json!({"clusterIP":"10.96.0.51","clusterIPs":["10.96.0.51"],"ports":[{"port":80}]})
        ),
        expected
    );
    assert_eq!(
        update_causes(
            &old,
            json!({"clusterIP":"10.96.0.51","clusterIPs":["10.96.0.50"],"ports":[{"port":80}]})
        ),
        expected
    );
    assert_eq!(
        update_causes(&old, json!({"ports":[{"port":80}]})),
        Vec::new()
    );
}

#[test]
fn e25_e26_e27_e28_node_port_sharing() {
    let shared = json!({"type":"NodePort","ports":[{"name":"p","port":53,"protocol":"TCP"},{"name":"q","port":53,"protocol":"UDP"}]});
    assert!(create_with("svc", shared, &AllocationSnapshot::default()).is_ok());
    let same = json!({"type":"NodePort","ports":[{"name":"p","port":53,"protocol":"TCP","nodePort":30053},{"name":"q","port":53,"protocol":"UDP","nodePort":30053}]});
    assert!(create_with("svc", same, &AllocationSnapshot::default()).is_ok());
    let conflict = json!({"type":"NodePort","ports":[{"name":"p","port":93,"protocol":"TCP","nodePort":30093},{"name":"q","port":76,"protocol":"UDP","nodePort":30093}]});
    assert_eq!(
        causes(conflict),
        one(
            "spec.ports[1].nodePort",
            "FieldValueInvalid",
            "Invalid value: 30093: provided port is already allocated"
        )
    );
    let same_tcp = json!({"type":"NodePort","ports":[{"name":"p","port":80,"nodePort":30080},{"name":"q","port":443,"nodePort":30080}]});
    assert_eq!(
        causes(same_tcp),
        one(
            "spec.ports[1].nodePort",
            "FieldValueInvalid",
            "Invalid value: 30080: provided port is already allocated"
        )
    );
}

#[test]
fn e29_load_balancer_without_node_ports() {
    let spec =
        json!({"type":"LoadBalancer","allocateLoadBalancerNodePorts":false,"ports":[{"port":80}]});
    assert!(create_with("svc", spec, &AllocationSnapshot::default()).is_ok());
    let explicit = json!({"type":"LoadBalancer","allocateLoadBalancerNodePorts":false,"ports":[{"port":80,"nodePort":30002}]});
    assert!(create_with("svc", explicit, &AllocationSnapshot::default()).is_ok());
}

#[test]
fn e30_health_check_node_port_out_of_range_is_500() {
    let spec = json!({"type":"LoadBalancer","externalTrafficPolicy":"Local","healthCheckNodePort":80,"ports":[{"port":80}]});
    let status = match create_with("svc", spec, &AllocationSnapshot::default()) {
        Err(r) => r.to_status("Service", "svc", ValueRendering::Json),
        Ok(_) => panic!("expected a 500"),
    };
    assert_eq!(status.code, 500);
    assert_eq!(
        status.message,
        "Internal error occurred: failed to allocate requested HealthCheck NodePort 80: provided port is not in the valid range. The range of valid ports is 30000-32767"
    );
}

#[test]
fn e31_require_dual_stack_on_single_stack() {
    assert_eq!(
        causes(json!({"ipFamilyPolicy":"RequireDualStack","ports":[{"port":80}]})),
        one(
            "spec.ipFamilyPolicy",
            "FieldValueInvalid",
            "Invalid value: \"RequireDualStack\": this cluster is not configured for dual-stack services"
        )
    );
}

#[test]
fn e32_ipv6_cluster_ip_on_ipv4_cluster() {
    assert_eq!(
        causes(json!({"clusterIP":"fd00::10","ports":[{"port":80}]})),
        one(
            "spec.clusterIPs[0]",
            "FieldValueInvalid",
            "Invalid value: [\"fd00::10\"]: IPv6 is not configured on this cluster"
        )
    );
}

fn families_after_create(
    spec: Value,
    ranges: &ServiceRanges,
) -> (Option<String>, Option<Vec<String>>, Option<Vec<String>>) {
    let svc = check_service_create(
        &service("svc", spec),
        ranges,
        &AllocationSnapshot::default(),
        &ValidationOptions::default(),
    )
    .expect("accepted");
    let spec = svc.spec.expect("spec");
    (spec.ip_family_policy, spec.ip_families, spec.cluster_ips)
}

#[test]
fn e33_dual_stack_defaults() {
    let fams = |v: &[&str]| Some(v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    let (policy, families, _) = families_after_create(
        json!({"ipFamilyPolicy":"PreferDualStack","ports":[{"port":80}]}),
        &dual_ranges(),
    );
    assert_eq!(
        (policy.as_deref(), families),
        (Some("PreferDualStack"), fams(&["IPv4", "IPv6"]))
    );
    let (policy, families, _) =
        families_after_create(json!({"ports":[{"port":80}]}), &dual_ranges());
    assert_eq!(
        (policy.as_deref(), families),
        (Some("SingleStack"), fams(&["IPv4"]))
    );
    for r in [dual_ranges(), ranges()] {
        let (policy, families, ips) =
            families_after_create(json!({"clusterIP":"None","ports":[{"port":80}]}), &r);
        assert_eq!(
            (policy.as_deref(), families, ips),
            (
                Some("RequireDualStack"),
                fams(&["IPv4", "IPv6"]),
                fams(&["None"])
            )
        );
    }
}

#[test]
fn e34_headless_node_port() {
    assert_eq!(
        causes(json!({"type":"NodePort","clusterIP":"None","ports":[{"port":80}]})),
        one(
            "spec.clusterIPs[0]",
            "FieldValueInvalid",
            "Invalid value: \"None\": may not be set to 'None' for NodePort services"
        )
    );
}

#[test]
fn e35_node_port_to_cluster_ip_drops_node_ports() {
    let old = stored(
        "svc",
        json!({"type":"NodePort","clusterIP":"10.96.0.50","clusterIPs":["10.96.0.50"],"ipFamilies":["IPv4"],"ipFamilyPolicy":"SingleStack","ports":[{"name":"http","port":80,"nodePort":30080}]}),
    );
    assert_eq!(
        update_causes(
            &old,
            json!({"type":"ClusterIP","ports":[{"name":"http","port":80,"nodePort":30080}]})
        ),
        Vec::new()
    );
    // Re-applying the NodePort YAML without nodePorts keeps the old one (matched by name).
    let kept = check_service_update(
        &old,
        &stored(
            "svc",
            json!({"type":"NodePort","ports":[{"name":"http","port":80}]}),
        ),
        &ranges(),
        &ValidationOptions::default(),
    )
    .expect("accepted");
    assert_eq!(
        kept.spec.and_then(|s| s.ports).and_then(|p| p[0].node_port),
        Some(30080)
    );
}

#[test]
fn update_downgrade_requires_single_stack() {
    let old = stored(
        "svc",
        json!({"clusterIP":"10.96.0.50","clusterIPs":["10.96.0.50","fd00::50"],"ipFamilies":["IPv4","IPv6"],"ipFamilyPolicy":"PreferDualStack","ports":[{"port":80}]}),
    );
    let new = stored(
        "svc",
        json!({"clusterIP":"10.96.0.50","clusterIPs":["10.96.0.50"],"ipFamilies":["IPv4"],"ipFamilyPolicy":"PreferDualStack","ports":[{"port":80}]}),
    );
    let errs =
        webhook::service::validate_service_update_fields(&new, &old, &ValidationOptions::default());
    let msgs: Vec<String> = errs
        .iter()
        .map(|e| e.message(ValueRendering::Json))
        .collect();
    assert_eq!(
        msgs,
        vec![
            "spec.ipFamilyPolicy: Invalid value: \"PreferDualStack\": must be set to 'SingleStack' when releasing the secondary clusterIP",
            "spec.ipFamilyPolicy: Invalid value: \"PreferDualStack\": must be set to 'SingleStack' when releasing the secondary ipFamily",
        ]
    );
}

#[test]
fn nil_policy_renders_per_release() {
    let e = webhook::FieldError::invalid(
        webhook::FieldPath::new("spec").child("ipFamilyPolicy"),
        webhook::FieldValue::Null,
        "must be set to 'SingleStack' when releasing the secondary clusterIP",
    );
    assert_eq!(
        e.message(ValueRendering::Json),
        "spec.ipFamilyPolicy: Invalid value: null: must be set to 'SingleStack' when releasing the secondary clusterIP"
    );
    assert_eq!(
        e.message(ValueRendering::GoSyntax),
        "spec.ipFamilyPolicy: Invalid value: \"null\": must be set to 'SingleStack' when releasing the secondary clusterIP"
    );
}

#[test]
fn invalid_service_name_dns1035() {
    let svc = service("1web", json!({"ports":[{"port":80}]}));
    let errs = validate_service(&svc, &ranges());
    assert_eq!(
        errs.iter()
            .map(|e| e.message(ValueRendering::Json))
            .collect::<Vec<_>>(),
        vec![
            "metadata.name: Invalid value: \"1web\": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
        ]
    );
    let relaxed = ValidationOptions {
        relaxed_service_names: true,
        ..Default::default()
    };
    assert!(
        check_service_create(&svc, &ranges(), &AllocationSnapshot::default(), &relaxed).is_ok()
    );
}

#[test]
fn cause_order_follows_upstream() {
    let c = causes(
        json!({"type":"ClusterIP","sessionAffinity":"Foo","externalTrafficPolicy":"Local","ports":[{"name":"A","port":80,"nodePort":30001}]}),
    );
    let fields: Vec<&str> = c.iter().map(|(f, _, _)| f.as_str()).collect();
    assert_eq!(
        fields,
        vec![
            "spec.ports[0].name",
            "spec.sessionAffinity",
            "spec.ports[0].nodePort",
            "spec.externalTrafficPolicy"
        ]
    );
}

// Found by the validation differential (tests/tests/validation_fidelity.rs) against kube-apiserver.

#[test]
fn three_cluster_ips_of_both_families_are_only_too_many() {
    let c = causes(
        json!({"clusterIP":"10.96.0.10","clusterIPs":["10.96.0.10","fd00::5","10.96.0.5"],"ports":[{"port":80}]}),
    );
    assert_eq!(
        c,
        one(
            "spec.clusterIPs",
            "FieldValueInvalid",
            "Invalid value: [\"10.96.0.10\",\"fd00::5\",\"10.96.0.5\"]: may only hold up to 2 values"
        )
    );
}

#[test]
fn families_are_judged_before_allocation() {
    let svc = service(
        "svc",
        json!({"type":"NodePort","ipFamilyPolicy":"Bogus","ports":[{"port":80,"nodePort":80}]}),
    );
    let status = webhook::check_before_allocation(None, &svc, &ranges())
        .expect_err("refused")
        .to_status("Service", "svc", ValueRendering::Json);
    assert_eq!(
        status.message,
        "Service \"svc\" is invalid: spec.ipFamilyPolicy: Unsupported value: \"Bogus\": supported values: \"PreferDualStack\", \"RequireDualStack\", \"SingleStack\""
    );
}

#[test]
fn a_local_load_balancer_without_a_health_check_port_gets_one_allocated() {
    let spec = json!({"type":"LoadBalancer","externalTrafficPolicy":"Local","ports":[{"port":80}]});
    assert!(create_with("svc", spec.clone(), &AllocationSnapshot::default()).is_ok());
    let small = ServiceRanges {
        node_ports: (30000, 30001),
        ..ranges()
    };
    let taken = AllocationSnapshot {
        node_ports: [30000, 30001].into(),
        ..Default::default()
    };
    let spec = json!({"type":"LoadBalancer","allocateLoadBalancerNodePorts":false,"externalTrafficPolicy":"Local","ports":[{"port":80}]});
    let refused = check_service_create(
        &service("svc", spec),
        &small,
        &taken,
        &ValidationOptions::default(),
    );
    assert_eq!(
        refused,
        Err(Rejection::Internal(
            "failed to allocate a HealthCheck NodePort 0: range is full".to_owned()
        ))
    );
}
