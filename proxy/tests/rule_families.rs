//! One test per rule family of the spec (§1.5–§1.11): the statements a configuration or a Service
//! shape must produce, and those it must not, checked on the table after a full sync.

use std::collections::BTreeSet;
use std::time::Instant;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use proxy::{IpFamily, RulesConfig, SyncState, TableState, desired_ruleset};
use serde_json::{Value, json};

fn config() -> RulesConfig {
    let mut c = RulesConfig::new("node-a", vec!["192.168.0.2".parse().unwrap()]);
    c.cluster_cidrs = vec!["10.0.0.0/8".parse().unwrap()];
    c
}

fn service(spec: Value, status: Value) -> Service {
    serde_json::from_value(
        json!({"metadata": {"namespace": "ns", "name": "s"}, "spec": spec, "status": status}),
    )
    .unwrap()
}

fn slice(endpoints: Value, address_type: &str) -> EndpointSlice {
    serde_json::from_value(json!({
        "metadata": {"namespace": "ns", "name": "s-1", "labels": {"kubernetes.io/service-name": "s"}},
        "addressType": address_type,
        "endpoints": endpoints,
        "ports": [{"name": "p", "port": 8080, "protocol": "TCP"}]
    }))
    .unwrap()
}

/// The table after a full sync, as a set of statements.
fn table(config: &RulesConfig, services: &[Service], slices: &[EndpointSlice]) -> BTreeSet<String> {
    let desired = desired_ruleset(config, services, slices);
    let plan = SyncState::new(config.family).plan(&desired, None, Instant::now());
    let mut t = TableState::new(config.family);
    t.apply(&plan.transaction)
        .unwrap_or_else(|e| panic!("{e}\n{}", plan.transaction.render()));
    t.dump().into_iter().collect()
}

fn has(t: &BTreeSet<String>, needle: &str) -> bool {
    t.iter().any(|s| s.contains(needle))
}

fn cluster_ip_service() -> Service {
    service(
        json!({"clusterIP": "172.30.0.1", "ports": [{"name": "p", "port": 80, "protocol": "TCP"}]}),
        json!({}),
    )
}

#[test]
fn masquerade_all_marks_every_cluster_ip_connection_and_no_detector_marks_none() {
    let eps = [slice(json!([{"addresses": ["10.1.0.1"]}]), "IPv4")];
    let mut c = config();
    c.masquerade_all = true;
    let t = table(&c, &[cluster_ip_service()], &eps);
    assert!(has(&t, "ip daddr 172.30.0.1 jump mark-for-masquerade"));
    assert!(!has(&t, "saddr != 10.0.0.0/8"));

    let mut c = config();
    c.cluster_cidrs.clear();
    let t = table(&c, &[cluster_ip_service()], &eps);
    assert!(
        !has(&t, "ip daddr 172.30.0.1"),
        "without a local detector no off-cluster rule"
    );

    let mut c = config();
    c.masquerade_bit = 10;
    let t = table(&c, &[cluster_ip_service()], &eps);
    assert!(t.contains("add rule ip kube-proxy mark-for-masquerade mark set mark or 0x400"));
    assert!(t.contains("add rule ip kube-proxy masquerading mark and 0x400 == 0 return"));
}

#[test]
fn internal_local_without_a_local_endpoint_drops_the_cluster_ip() {
    let svc = service(
        json!({"clusterIP": "172.30.0.1", "internalTrafficPolicy": "Local",
               "ports": [{"name": "p", "port": 80, "protocol": "TCP"}]}),
        json!({}),
    );
    let remote = [slice(
        json!([{"addresses": ["10.1.0.1"], "nodeName": "node-b"}]),
        "IPv4",
    )];
    let t = table(&config(), std::slice::from_ref(&svc), &remote);
    assert!(t.contains(
        "add element ip kube-proxy no-endpoint-services { 172.30.0.1 . tcp . 80 comment \"ns/s:p\" : drop }"
    ));
    assert!(!has(&t, "add element ip kube-proxy service-ips"));
    assert!(!has(&t, "chain ip kube-proxy local-"));

    let local = [slice(
        json!([{"addresses": ["10.1.0.1"], "nodeName": "node-b"}, {"addresses": ["10.1.0.2"], "nodeName": "node-a"}]),
        "IPv4",
    )];
    let t = table(&config(), &[svc], &local);
    assert!(has(&t, "service-ips { 172.30.0.1 . tcp . 80 : goto local-"));
    assert!(has(&t, "numgen random mod 1 vmap { 0 : goto endpoint-"));
    assert!(has(&t, "dnat to 10.1.0.2:8080"));
    assert!(
        !has(&t, "dnat to 10.1.0.1:8080"),
        "the remote endpoint is unreachable from here"
    );
}

#[test]
fn external_local_short_circuits_and_prefers_local_endpoints() {
    let svc = service(
        json!({"type": "NodePort", "clusterIP": "172.30.0.1", "externalTrafficPolicy": "Local",
               "ports": [{"name": "p", "port": 80, "protocol": "TCP", "nodePort": 30080}]}),
        json!({}),
    );
    let eps = [slice(
        json!([{"addresses": ["10.1.0.1"], "nodeName": "node-b"}, {"addresses": ["10.1.0.2"], "nodeName": "node-a"}]),
        "IPv4",
    )];
    let t = table(&config(), &[svc], &eps);
    let ext: Vec<&String> = t
        .iter()
        .filter(|s| s.contains("rule ip kube-proxy external-"))
        .collect();
    assert_eq!(ext.len(), 4, "{ext:#?}");
    assert!(has(&t, "ip saddr 10.0.0.0/8 goto service-"));
    assert!(has(
        &t,
        "fib saddr type local jump mark-for-masquerade comment \"masquerade local traffic\""
    ));
    assert!(has(&t, "fib saddr type local goto service-"));
    assert!(ext.iter().any(|s| s.contains(" goto local-")));
    assert!(has(&t, "service-nodeports { tcp . 30080 : goto external-"));
    assert!(
        !has(&t, "add element ip kube-proxy no-endpoint-nodeports"),
        "there is a local endpoint"
    );
    // Both endpoints have chains: the service chain (for short-circuited traffic) uses both.
    assert!(has(&t, "numgen random mod 2"));
    assert!(has(&t, "numgen random mod 1"));
}

#[test]
fn nodeport_addresses_matching_all_use_fib_and_no_nodeport_ips_set() {
    let mut c = config();
    c.nodeport_addresses = Some(vec!["0.0.0.0/0".parse().unwrap()]);
    let t = table(&c, &[], &[]);
    assert!(t.contains(
        "add rule ip kube-proxy services fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports"
    ));
    assert!(t.contains(
        "add rule ip kube-proxy nodeport-endpoints-check ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @no-endpoint-nodeports"
    ));
    assert!(!has(&t, "nodeport-ips"));
    assert!(
        !has(&t, "Drop traffic to unallocated ClusterIPs"),
        "no ServiceCIDRs known"
    );

    // The default, "primary": the node's primary IP of the family.
    let t = table(&config(), &[], &[]);
    assert!(t.contains("add element ip kube-proxy nodeport-ips { 192.168.0.2 }"));
}

#[test]
fn source_ranges_that_contain_the_node_let_the_vips_through() {
    let svc = |ranges: Value| {
        service(
            json!({"type": "LoadBalancer", "clusterIP": "172.30.0.1",
                   "loadBalancerSourceRanges": ranges,
                   "ports": [{"name": "p", "port": 80, "protocol": "TCP", "nodePort": 30080}]}),
            json!({"loadBalancer": {"ingress": [{"ip": "5.6.7.8"}, {"ip": "5.6.7.9"}]}}),
        )
    };
    let eps = [slice(json!([{"addresses": ["10.1.0.1"]}]), "IPv4")];
    let t = table(
        &config(),
        &[svc(json!(["203.0.113.0/25", "192.168.0.0/24"]))],
        &eps,
    );
    assert!(has(
        &t,
        "ip saddr != { 203.0.113.0/25 , 192.168.0.0/24 , 5.6.7.8 , 5.6.7.9 } drop"
    ));
    assert!(has(
        &t,
        "firewall-ips { 5.6.7.8 . tcp . 80 : goto firewall-"
    ));
    assert!(
        !has(&t, "firewall-ips { tcp . 30080"),
        "NodePorts are not subject to source ranges"
    );
    let t = table(
        &config(),
        &[svc(json!(["0.0.0.0/0", "203.0.113.0/25"]))],
        &eps,
    );
    assert!(
        !has(&t, "add element ip kube-proxy firewall-ips"),
        "a zero range allows all"
    );
    assert!(
        !t.iter()
            .any(|s| s.contains("firewall-") && s.contains("ns/s/tcp/p"))
    );
}

#[test]
fn no_endpoints_rejects_every_address_of_the_service() {
    let svc = service(
        json!({"type": "LoadBalancer", "clusterIP": "172.30.0.1", "externalIPs": ["192.168.99.1"],
               "ports": [{"name": "p", "port": 80, "protocol": "TCP", "nodePort": 30080}]}),
        json!({"loadBalancer": {"ingress": [{"ip": "5.6.7.8"}]}}),
    );
    let t = table(&config(), &[svc], &[]);
    for key in [
        "172.30.0.1 . tcp . 80",
        "192.168.99.1 . tcp . 80",
        "5.6.7.8 . tcp . 80",
    ] {
        assert!(
            t.contains(&format!(
                "add element ip kube-proxy no-endpoint-services {{ {key} comment \"ns/s:p\" : goto reject-chain }}"
            )),
            "{key}"
        );
    }
    assert!(t.contains(
        "add element ip kube-proxy no-endpoint-nodeports { tcp . 30080 comment \"ns/s:p\" : goto reject-chain }"
    ));
    assert!(!has(&t, "ns/s/tcp/p"), "no chains at all without endpoints");
}

#[test]
fn ipv6_is_the_same_logic_in_an_ip6_table() {
    let mut c = RulesConfig::new(
        "node-a",
        vec![
            "192.168.0.2".parse().unwrap(),
            "2001:db8::1".parse().unwrap(),
        ],
    );
    c.family = IpFamily::V6;
    // A dual-stack --cluster-cidr: each table takes its own family's CIDR.
    c.cluster_cidrs = vec![
        "10.0.0.0/8".parse().unwrap(),
        "fd00:10::/64".parse().unwrap(),
    ];
    c.service_cidrs = vec![
        "fd00:10:96::/112".parse().unwrap(),
        "172.30.0.0/16".parse().unwrap(),
    ];
    let svc = service(
        json!({"clusterIP": "fd00:10:96::1", "clusterIPs": ["fd00:10:96::1"], "ipFamilies": ["IPv6"],
               "sessionAffinity": "ClientIP",
               "ports": [{"name": "p", "port": 80, "protocol": "TCP"}]}),
        json!({}),
    );
    let eps = [
        slice(json!([{"addresses": ["fd00:10::5"]}]), "IPv6"),
        slice(json!([{"addresses": ["10.1.0.1"]}]), "IPv4"),
    ];
    let t = table(&c, &[svc], &eps[..1]);
    assert!(t.contains("add table ip6 kube-proxy { comment \"rules for kube-proxy\" ; }"));
    assert!(t.contains(
        "add set ip6 kube-proxy cluster-ips { type ipv6_addr ; comment \"Active ClusterIPs\" ; }"
    ));
    assert!(t.contains("add element ip6 kube-proxy nodeport-ips { 2001:db8::1 }"));
    assert!(t.contains(
        "add rule ip6 kube-proxy cluster-ips-check ip6 daddr { fd00:10:96::/112 } drop comment \"Drop traffic to unallocated ClusterIPs\""
    ));
    assert!(has(
        &t,
        "ip6 daddr fd00:10:96::1 ip6 saddr != fd00:10::/64 jump mark-for-masquerade"
    ));
    assert!(has(
        &t,
        "__fd00.10..5/8080 ip6 saddr fd00:10::5 jump mark-for-masquerade"
    ));
    assert!(has(&t, "meta l4proto tcp dnat to [fd00:10::5]:8080"));
    assert!(has(
        &t,
        "{ type ipv6_addr ; flags dynamic,timeout ; timeout 10800s ; }"
    ));
    assert!(has(&t, "update @affinity-"));
    assert!(has(&t, "{ ip6 saddr }"));
    assert!(
        !has(&t, "10.1.0.1"),
        "IPv4 slices are not read by the IPv6 table"
    );
}
