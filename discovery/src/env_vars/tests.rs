//! The upstream vectors of `shared/spec/discovery.md` §6.4 (`envvars_test.go` TestFromServices)
//! and §6.5 (`kubelet_pods_test.go` TestMakeEnvironmentVariables, Service part), and the rules
//! around them.

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use super::*;

fn service(namespace: &str, name: &str, cluster_ip: &str, ports: Value) -> Service {
    serde_json::from_value(json!({
        "metadata": {"namespace": namespace, "name": name},
        "spec": {"clusterIP": cluster_ip, "ports": ports},
    }))
    .expect("service JSON")
}

fn lines(vars: &[EnvVar]) -> Vec<String> {
    vars.iter().map(ToString::to_string).collect()
}

/// §6.4, exact and in order.
const FROM_SERVICES: &str = "\
FOO_BAR_SERVICE_HOST=1.2.3.4
FOO_BAR_SERVICE_PORT=8080
FOO_BAR_PORT=tcp://1.2.3.4:8080
FOO_BAR_PORT_8080_TCP=tcp://1.2.3.4:8080
FOO_BAR_PORT_8080_TCP_PROTO=tcp
FOO_BAR_PORT_8080_TCP_PORT=8080
FOO_BAR_PORT_8080_TCP_ADDR=1.2.3.4
ABC_123_SERVICE_HOST=5.6.7.8
ABC_123_SERVICE_PORT=8081
ABC_123_SERVICE_PORT_U_D_P=8081
ABC_123_SERVICE_PORT_T_C_P=8081
ABC_123_PORT=udp://5.6.7.8:8081
ABC_123_PORT_8081_UDP=udp://5.6.7.8:8081
ABC_123_PORT_8081_UDP_PROTO=udp
ABC_123_PORT_8081_UDP_PORT=8081
ABC_123_PORT_8081_UDP_ADDR=5.6.7.8
ABC_123_PORT_8081_TCP=tcp://5.6.7.8:8081
ABC_123_PORT_8081_TCP_PROTO=tcp
ABC_123_PORT_8081_TCP_PORT=8081
ABC_123_PORT_8081_TCP_ADDR=5.6.7.8
Q_U_U_X_SERVICE_HOST=9.8.7.6
Q_U_U_X_SERVICE_PORT=8082
Q_U_U_X_SERVICE_PORT_8083=8083
Q_U_U_X_PORT=tcp://9.8.7.6:8082
Q_U_U_X_PORT_8082_TCP=tcp://9.8.7.6:8082
Q_U_U_X_PORT_8082_TCP_PROTO=tcp
Q_U_U_X_PORT_8082_TCP_PORT=8082
Q_U_U_X_PORT_8082_TCP_ADDR=9.8.7.6
Q_U_U_X_PORT_8083_TCP=tcp://9.8.7.6:8083
Q_U_U_X_PORT_8083_TCP_PROTO=tcp
Q_U_U_X_PORT_8083_TCP_PORT=8083
Q_U_U_X_PORT_8083_TCP_ADDR=9.8.7.6
SUPER_IPV6_SERVICE_HOST=2001:DB8::
SUPER_IPV6_SERVICE_PORT=8084
SUPER_IPV6_SERVICE_PORT_U_D_P=8084
SUPER_IPV6_SERVICE_PORT_T_C_P=8084
SUPER_IPV6_PORT=udp://[2001:DB8::]:8084
SUPER_IPV6_PORT_8084_UDP=udp://[2001:DB8::]:8084
SUPER_IPV6_PORT_8084_UDP_PROTO=udp
SUPER_IPV6_PORT_8084_UDP_PORT=8084
SUPER_IPV6_PORT_8084_UDP_ADDR=2001:DB8::
SUPER_IPV6_PORT_8084_TCP=tcp://[2001:DB8::]:8084
SUPER_IPV6_PORT_8084_TCP_PROTO=tcp
SUPER_IPV6_PORT_8084_TCP_PORT=8084
SUPER_IPV6_PORT_8084_TCP_ADDR=2001:DB8::
SCTP_1_SERVICE_HOST=1.2.3.4
SCTP_1_SERVICE_PORT=777
SCTP_1_PORT=sctp://1.2.3.4:777
SCTP_1_PORT_777_SCTP=sctp://1.2.3.4:777
SCTP_1_PORT_777_SCTP_PROTO=sctp
SCTP_1_PORT_777_SCTP_PORT=777
SCTP_1_PORT_777_SCTP_ADDR=1.2.3.4
";

#[test]
fn from_services_upstream_vector() {
    let services = [
        service(
            "",
            "foo-bar",
            "1.2.3.4",
            json!([{"port": 8080, "protocol": "TCP"}]),
        ),
        service(
            "",
            "abc-123",
            "5.6.7.8",
            json!([
                {"name": "u-d-p", "port": 8081, "protocol": "UDP"},
                {"name": "t-c-p", "port": 8081, "protocol": "TCP"},
            ]),
        ),
        service(
            "",
            "q-u-u-x",
            "9.8.7.6",
            json!([{"port": 8082, "protocol": "TCP"}, {"name": "8083", "port": 8083, "protocol": "TCP"}]),
        ),
        service(
            "",
            "svrc-clusterip-none",
            "None",
            json!([{"port": 8082, "protocol": "TCP"}]),
        ),
        service(
            "",
            "svrc-clusterip-empty",
            "",
            json!([{"port": 8082, "protocol": "TCP"}]),
        ),
        service(
            "",
            "super-ipv6",
            "2001:DB8::",
            json!([
                {"name": "u-d-p", "port": 8084, "protocol": "UDP"},
                {"name": "t-c-p", "port": 8084, "protocol": "TCP"},
            ]),
        ),
        service(
            "",
            "sctp-1",
            "1.2.3.4",
            json!([{"port": 777, "protocol": "SCTP"}]),
        ),
    ];
    let want: Vec<&str> = FROM_SERVICES.lines().collect();
    assert_eq!(lines(&from_services(&services)), want);
}

#[test]
fn protocol_defaults_to_tcp_and_names_are_mangled() {
    let services = [service(
        "",
        "my-svc",
        "10.0.0.1",
        json!([{"name": "http-alt", "port": 80}]),
    )];
    assert_eq!(
        lines(&from_services(&services)),
        [
            "MY_SVC_SERVICE_HOST=10.0.0.1",
            "MY_SVC_SERVICE_PORT=80",
            "MY_SVC_SERVICE_PORT_HTTP_ALT=80",
            "MY_SVC_PORT=tcp://10.0.0.1:80",
            "MY_SVC_PORT_80_TCP=tcp://10.0.0.1:80",
            "MY_SVC_PORT_80_TCP_PROTO=tcp",
            "MY_SVC_PORT_80_TCP_PORT=80",
            "MY_SVC_PORT_80_TCP_ADDR=10.0.0.1",
        ]
    );
}

#[test]
fn a_service_without_ports_gets_only_its_host() {
    let services = [service("", "bare", "10.0.0.2", json!([]))];
    assert_eq!(
        lines(&from_services(&services)),
        ["BARE_SERVICE_HOST=10.0.0.2"]
    );
}

/// The seven variables of a one-port TCP Service, as §6.5 writes `K(ip, port)`.
fn seven(prefix: &str, ip: &str, port: u16) -> Vec<String> {
    vec![
        format!("{prefix}_SERVICE_HOST={ip}"),
        format!("{prefix}_SERVICE_PORT={port}"),
        format!("{prefix}_PORT=tcp://{ip}:{port}"),
        format!("{prefix}_PORT_{port}_TCP=tcp://{ip}:{port}"),
        format!("{prefix}_PORT_{port}_TCP_PROTO=tcp"),
        format!("{prefix}_PORT_{port}_TCP_PORT={port}"),
        format!("{prefix}_PORT_{port}_TCP_ADDR={ip}"),
    ]
}

/// The Services of §6.5, in upstream's list order.
fn kubelet_services() -> Vec<Service> {
    let port = |p: u16| json!([{"protocol": "TCP", "port": p}]);
    vec![
        service("default", "kubernetes", "1.2.3.1", port(8081)),
        service("test1", "test", "1.2.3.3", port(8083)),
        service("test2", "kubernetes", "1.2.3.4", port(8084)),
        service("test2", "test", "1.2.3.5", port(8085)),
        service("test2", "test", "None", port(8085)),
        service("test2", "test", "", port(8085)),
        service("default", "not-special", "1.2.3.8", port(8088)),
        service("default", "not-special", "None", port(8088)),
        service("default", "not-special", "", port(8088)),
    ]
}

fn pod(namespace: &str, links: bool) -> PodEnv {
    PodEnv {
        namespace: namespace.to_owned(),
        enable_service_links: links,
        services_as_of: None,
    }
}

fn declared(vars: &[(&str, &str)]) -> Vec<EnvVar> {
    vars.iter().map(|(n, v)| EnvVar::new(*n, *v)).collect()
}

fn concat(parts: &[Vec<String>]) -> Vec<String> {
    parts.concat()
}

#[test]
fn kubelet_services_not_synced() {
    assert_eq!(
        container_env(&pod("test1", false), false, &[], ServiceCache::NotSynced),
        Err(EnvVarError::ServicesNotSynced)
    );
    assert_eq!(
        container_env(&pod("test1", false), true, &[], ServiceCache::NotSynced),
        Ok(vec![])
    );
}

#[test]
fn kubelet_api_server_and_kubelet_both_set_service_vars() {
    let services = kubelet_services();
    let mut env = vec![("FOO", "BAR")];
    let test: Vec<String> = seven("TEST", "1.2.3.3", 8083);
    let test_pairs: Vec<(String, String)> = test
        .iter()
        .map(|l| {
            let (n, v) = l.split_once('=').expect("name=value");
            (n.to_owned(), v.to_owned())
        })
        .collect();
    env.extend(test_pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    let declared = declared(&env);
    let got = container_env(
        &pod("test1", false),
        false,
        &declared,
        ServiceCache::Synced(&services),
    );
    let want = concat(&[
        vec!["FOO=BAR".to_owned()],
        test.clone(),
        seven("KUBERNETES", "1.2.3.1", 8081),
    ]);
    assert_eq!(got.map(|v| lines(&v)), Ok(want));

    // A standalone kubelet adds nothing.
    let got = container_env(&pod("test1", false), false, &declared, ServiceCache::Absent);
    let want = concat(&[vec!["FOO=BAR".to_owned()], test]);
    assert_eq!(got.map(|v| lines(&v)), Ok(want));
}

#[test]
fn kubelet_links_disabled_and_enabled() {
    let services = kubelet_services();
    let cache = ServiceCache::Synced(&services);
    let got = container_env(
        &pod("test1", false),
        false,
        &declared(&[("FOO", "BAZ")]),
        cache,
    );
    let want = concat(&[
        vec!["FOO=BAZ".to_owned()],
        seven("KUBERNETES", "1.2.3.1", 8081),
    ]);
    assert_eq!(got.map(|v| lines(&v)), Ok(want));

    let got = container_env(
        &pod("test1", true),
        false,
        &declared(&[("FOO", "BAZ")]),
        cache,
    );
    let want = concat(&[
        vec!["FOO=BAZ".to_owned()],
        seven("KUBERNETES", "1.2.3.1", 8081),
        seven("TEST", "1.2.3.3", 8083),
    ]);
    assert_eq!(got.map(|v| lines(&v)), Ok(want));
}

#[test]
fn kubelet_master_service_in_pod_namespace() {
    let services = kubelet_services();
    let cache = ServiceCache::Synced(&services);
    let got = container_env(
        &pod("test2", false),
        false,
        &declared(&[("FOO", "ZAP")]),
        cache,
    );
    let want = concat(&[
        vec!["FOO=ZAP".to_owned()],
        seven("KUBERNETES", "1.2.3.1", 8081),
    ]);
    assert_eq!(got.map(|v| lines(&v)), Ok(want));

    // With links on, the pod's own namespace's `kubernetes` wins, whatever the list order.
    let want = concat(&[
        vec!["FOO=ZAP".to_owned()],
        seven("KUBERNETES", "1.2.3.4", 8084),
        seven("TEST", "1.2.3.5", 8085),
    ]);
    let got = container_env(
        &pod("test2", true),
        false,
        &declared(&[("FOO", "ZAP")]),
        cache,
    );
    assert_eq!(got.map(|v| lines(&v)), Ok(want.clone()));
    let mut reversed = services.clone();
    reversed.reverse();
    let cache = ServiceCache::Synced(&reversed);
    let got = container_env(
        &pod("test2", true),
        false,
        &declared(&[("FOO", "ZAP")]),
        cache,
    );
    assert_eq!(got.map(|v| lines(&v)), Ok(want));
}

#[test]
fn kubelet_pod_in_master_service_namespace() {
    let services = kubelet_services();
    let cache = ServiceCache::Synced(&services);
    let got = container_env(&pod("default", false), false, &[], cache);
    assert_eq!(
        got.map(|v| lines(&v)),
        Ok(seven("KUBERNETES", "1.2.3.1", 8081))
    );
    let got = container_env(&pod("default", true), false, &[], cache);
    let want = concat(&[
        seven("KUBERNETES", "1.2.3.1", 8081),
        seven("NOT_SPECIAL", "1.2.3.8", 8088),
    ]);
    assert_eq!(got.map(|v| lines(&v)), Ok(want));
}

#[test]
fn kubelet_env_expansion_sees_service_vars() {
    let services = kubelet_services();
    let cache = ServiceCache::Synced(&services);
    let declared = declared(&[(
        "SERVICE_VAR_TEST",
        "$(TEST_SERVICE_HOST):$(TEST_SERVICE_PORT)",
    )]);
    let got = container_env(&pod("test1", true), false, &declared, cache).expect("env");
    assert_eq!(lines(&got[..1]), ["SERVICE_VAR_TEST=1.2.3.3:8083"]);
}

#[test]
fn expansion_follows_upstream() {
    let map = |name: &str| match name {
        "VAR_A" => Some("A"),
        "VAR_EMPTY" => Some(""),
        _ => None,
    };
    let cases = [
        ("$(VAR_A)", "A"),
        ("___$(VAR_A)___", "___A___"),
        ("$(VAR_A)-$(VAR_A)", "A-A"),
        ("$(VAR_EMPTY)", ""),
        ("$(UNDEFINED)", "$(UNDEFINED)"),
        ("$$(VAR_A)", "$(VAR_A)"),
        ("$$$(VAR_A)", "$A"),
        ("$(VAR_A", "$(VAR_A"),
        ("$VAR_A", "$VAR_A"),
        ("$", "$"),
        ("a$", "a$"),
        ("$()", "$()"),
        ("$(é)ü$", "$(é)ü$"),
    ];
    for (input, want) in cases {
        assert_eq!(expand(input, map), want, "{input}");
    }
}

#[test]
fn declared_vars_expand_against_earlier_ones_only() {
    let declared = declared(&[("B", "$(A)"), ("A", "x"), ("C", "$(A)")]);
    let got = container_env(&pod("ns", true), false, &declared, ServiceCache::Absent);
    assert_eq!(
        got.map(|v| lines(&v)),
        Ok(vec!["B=$(A)".into(), "A=x".into(), "C=x".into()])
    );
}

#[test]
fn headless_and_external_name_services_get_nothing() {
    let external: Service = serde_json::from_value(json!({
        "metadata": {"namespace": "ns", "name": "ext"},
        "spec": {"type": "ExternalName", "externalName": "example.test", "ports": [{"port": 80}]},
    }))
    .expect("service JSON");
    let services = [
        external,
        service("ns", "headless", "None", json!([{"port": 80}])),
        service("ns", "web", "10.0.0.9", json!([{"port": 80}])),
    ];
    let names: Vec<String> = service_env(&pod("ns", true), &services)
        .into_iter()
        .map(|v| v.name)
        .collect();
    assert!(names.iter().all(|n| n.starts_with("WEB_")), "{names:?}");
}

#[test]
fn services_created_after_the_cut_off_are_not_seen() {
    let at = |t: &str| -> Timestamp { t.parse().expect("timestamp") };
    let mut early = service("ns", "early", "10.0.0.1", json!([{"port": 80}]));
    let mut same = service("ns", "same", "10.0.0.2", json!([{"port": 80}]));
    let mut late = service("ns", "late", "10.0.0.3", json!([{"port": 80}]));
    let mut master = service("default", "kubernetes", "10.0.0.4", json!([{"port": 443}]));
    let time = |t: &str| Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at(t)));
    early.metadata.creation_timestamp = time("2026-01-01T00:00:00Z");
    same.metadata.creation_timestamp = time("2026-01-01T00:01:00Z");
    late.metadata.creation_timestamp = time("2026-01-01T00:01:01Z");
    master.metadata.creation_timestamp = time("2026-01-01T00:05:00Z");
    let services = [late, same, early, master];
    let viewer = PodEnv {
        services_as_of: Some(at("2026-01-01T00:01:00Z")),
        ..pod("ns", true)
    };
    let hosts: Vec<String> = service_env(&viewer, &services)
        .into_iter()
        .filter(|v| v.name.ends_with("_SERVICE_HOST"))
        .map(|v| v.to_string())
        .collect();
    // Even the master Service is subject to the cut-off: kubelet had not seen it either.
    assert_eq!(
        hosts,
        ["EARLY_SERVICE_HOST=10.0.0.1", "SAME_SERVICE_HOST=10.0.0.2"]
    );

    // Without a cut-off, every Service counts.
    let all = service_env(
        &PodEnv {
            services_as_of: None,
            ..viewer
        },
        &services,
    );
    assert_eq!(
        all.iter()
            .filter(|v| v.name.ends_with("_SERVICE_HOST"))
            .count(),
        4
    );
}

#[test]
fn of_pod_takes_links_and_creation_time_and_refuses_nil_links() {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"namespace": "ns", "name": "p", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"containers": [], "enableServiceLinks": false},
    }))
    .expect("pod JSON");
    let env = PodEnv::of_pod(&pod).expect("pod env");
    assert_eq!(env.namespace, "ns");
    assert!(!env.enable_service_links);
    assert_eq!(
        env.services_as_of,
        Some("2026-01-01T00:00:00Z".parse().expect("ts"))
    );
    let mut nil = pod;
    nil.spec.as_mut().expect("spec").enable_service_links = None;
    assert_eq!(
        PodEnv::of_pod(&nil),
        Err(EnvVarError::NilEnableServiceLinks)
    );
}

#[test]
fn colliding_names_keep_their_first_place_and_the_later_value() {
    let services = [
        service("ns", "foo", "10.0.0.1", json!([{"port": 80}])),
        service("ns", "foo-port-80-tcp", "10.0.0.2", json!([{"port": 81}])),
    ];
    let env = service_env(&pod("ns", true), &services);
    let port: Vec<String> = env
        .iter()
        .filter(|v| v.name == "FOO_PORT_80_TCP_PORT")
        .map(ToString::to_string)
        .collect();
    assert_eq!(port, ["FOO_PORT_80_TCP_PORT=tcp://10.0.0.2:81"]);
    let names: std::collections::BTreeSet<&str> = env.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names.len(), env.len());
}
