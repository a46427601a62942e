//! Upstream kube-proxy's own nftables tests, replayed on the pure core: the table after a sync is
//! compared with upstream's expected dump as a set of statements (upstream's
//! `assertNFTablesTransactionEqual` is order-insensitive too), and partial syncs are counted in
//! operations as `TestSyncProxyRulesRepeated` counts them.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use proxy::{IpFamily, RulesConfig, SyncState, TableState, desired_ruleset};
use serde_json::{Value, json};

/// upstream's `NewFakeProxier`: pods in 10.0.0.0/8, ServiceCIDR 172.30.0.0/16, node
/// 192.168.0.2 with --nodeport-addresses 192.168.0.2/32, mark 0x4000.
fn fake_config() -> RulesConfig {
    let mut c = RulesConfig::new(
        "test-node",
        vec![
            "192.168.0.2".parse().unwrap(),
            "192.168.1.2".parse().unwrap(),
            "192.168.99.11".parse().unwrap(),
            "2001:db8::1".parse().unwrap(),
        ],
    );
    c.cluster_cidrs = vec!["10.0.0.0/8".parse().unwrap()];
    c.service_cidrs = vec!["172.30.0.0/16".parse().unwrap()];
    c.nodeport_addresses = Some(vec![
        "192.168.0.2/32".parse().unwrap(),
        "2001:db8::1/128".parse().unwrap(),
    ]);
    c
}

fn service(ns: &str, name: &str, spec: Value, status: Value) -> Service {
    serde_json::from_value(json!({
        "metadata": {"namespace": ns, "name": name},
        "spec": spec,
        "status": status,
    }))
    .expect("a Service")
}

fn slice(ns: &str, svc: &str, endpoints: Value, port_name: &str, port: i32) -> EndpointSlice {
    serde_json::from_value(json!({
        "metadata": {"namespace": ns, "name": format!("{svc}-1"),
                     "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": port_name, "port": port, "protocol": "TCP"}],
    }))
    .expect("an EndpointSlice")
}

fn statements(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

fn assert_same(expected: &BTreeSet<String>, got: &[String]) {
    let got: BTreeSet<String> = got.iter().cloned().collect();
    let missing: Vec<_> = expected.difference(&got).collect();
    let extra: Vec<_> = got.difference(expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing:\n{}\nunexpected:\n{}",
        missing
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        extra
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

fn port(name: &str, port: i32, node_port: Option<i32>) -> Value {
    let mut p = json!({"name": name, "port": port, "protocol": "TCP"});
    if let Some(n) = node_port {
        p["nodePort"] = json!(n);
    }
    p
}

#[test]
fn overall_nftables_rules() {
    let services = vec![
        service(
            "ns1",
            "svc1",
            json!({"clusterIP": "172.30.0.41", "ports": [port("p80", 80, None)]}),
            json!({}),
        ),
        service(
            "ns2",
            "svc2",
            json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local", "clusterIP": "172.30.0.42",
                   "ports": [port("p80", 80, Some(3001))], "externalIPs": ["192.168.99.22"],
                   "healthCheckNodePort": 30000}),
            json!({"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}),
        ),
        service(
            "ns3",
            "svc3",
            json!({"type": "NodePort", "clusterIP": "172.30.0.43", "ports": [port("p80", 80, Some(3003))]}),
            json!({}),
        ),
        service(
            "ns4",
            "svc4",
            json!({"type": "NodePort", "clusterIP": "172.30.0.44", "externalIPs": ["192.168.99.33"],
                   "ports": [{"name": "p80", "port": 80, "protocol": "TCP", "targetPort": 80}]}),
            json!({}),
        ),
        service(
            "ns5",
            "svc5",
            json!({"type": "LoadBalancer", "externalTrafficPolicy": "Cluster", "clusterIP": "172.30.0.45",
                   "ports": [port("p80", 80, Some(3002))], "healthCheckNodePort": 30000,
                   "loadBalancerSourceRanges": [" 203.0.113.0/25"],
                   "sessionAffinity": "ClientIP",
                   "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10800}}}),
            json!({"loadBalancer": {"ingress": [{"ip": "5.6.7.8"}]}}),
        ),
        service(
            "ns6",
            "svc6",
            json!({"type": "ClusterIP", "clusterIP": "172.30.0.46", "ports": [port("p80", 80, None)]}),
            json!({}),
        ),
    ];
    let slices = vec![
        slice(
            "ns1",
            "svc1",
            json!([{"addresses": ["10.180.0.1"]}]),
            "p80",
            80,
        ),
        // Not local: no nodeName.
        slice(
            "ns2",
            "svc2",
            json!([{"addresses": ["10.180.0.2"]}]),
            "p80",
            80,
        ),
        slice(
            "ns3",
            "svc3",
            json!([{"addresses": ["10.180.0.3"]}]),
            "p80",
            80,
        ),
        slice(
            "ns4",
            "svc4",
            json!([{"addresses": ["10.180.0.4"]}, {"addresses": ["10.180.0.5"], "nodeName": "test-node"}]),
            "p80",
            80,
        ),
        slice(
            "ns5",
            "svc5",
            json!([{"addresses": ["10.180.0.3"]}]),
            "p80",
            80,
        ),
    ];
    let desired = desired_ruleset(&fake_config(), &services, &slices);
    let plan = SyncState::new(IpFamily::V4).plan(&desired, None, Instant::now());
    assert!(plan.full);
    let mut table = TableState::new(IpFamily::V4);
    table
        .apply(&plan.transaction)
        .expect("the transaction applies");
    let expected = statements(include_str!("fixtures/overall_nftables_rules.nft"));
    assert_same(&expected, &table.dump());

    // svc2 needs a health check and has no local endpoint; svc5 is ETP=Cluster (none).
    assert_eq!(
        desired
            .health_check_node_ports
            .into_iter()
            .collect::<Vec<_>>(),
        vec![(("ns2".to_string(), "svc2".to_string()), 30000)]
    );
    assert_eq!(
        desired
            .local_ready_endpoints
            .into_iter()
            .collect::<Vec<_>>(),
        vec![(("ns4".to_string(), "svc4".to_string()), 1)]
    );
}

/// A stateful harness: the desired ruleset from the current objects, the plan, the table model.
struct Harness {
    config: RulesConfig,
    services: Vec<Service>,
    slices: Vec<EndpointSlice>,
    state: SyncState,
    table: TableState,
    now: Instant,
    last_ops: usize,
}

impl Harness {
    fn new() -> Self {
        Harness {
            config: fake_config(),
            services: Vec::new(),
            slices: Vec::new(),
            state: SyncState::new(IpFamily::V4),
            table: TableState::new(IpFamily::V4),
            now: Instant::now(),
            last_ops: 0,
        }
    }

    fn set_service(&mut self, svc: Service) {
        self.services
            .retain(|s| s.metadata.name != svc.metadata.name);
        self.services.push(svc);
    }

    fn set_slice(&mut self, s: EndpointSlice) {
        self.slices.retain(|x| x.metadata.name != s.metadata.name);
        self.slices.push(s);
    }

    /// One sync as upstream's `syncProxyRules`: stale chains first, then the main transaction.
    fn sync(&mut self) {
        if let Some((tx, next)) = self.state.stale_chain_deletion(self.now) {
            self.table.apply(&tx).expect("stale chains delete");
            self.state = next;
        }
        let desired = desired_ruleset(&self.config, &self.services, &self.slices);
        let plan = self.state.plan(&desired, None, self.now);
        self.table
            .apply(&plan.transaction)
            .unwrap_or_else(|e| panic!("{e}\n{}", plan.transaction.render()));
        self.last_ops = plan.transaction.len();
        self.state = plan.next;
    }

    fn age(&mut self) {
        self.now += Duration::from_secs(2);
    }

    fn assert_table(&self, services: &str) {
        let mut expected = statements(include_str!("fixtures/base_rules.nft"));
        expected.extend(statements(services));
        assert_same(&expected, &self.table.dump());
    }
}

fn clusterip(ns: &str, name: &str, ip: &str, port_name: &str, port_number: i32) -> Service {
    service(
        ns,
        name,
        json!({"type": "ClusterIP", "clusterIP": ip, "ports": [port(port_name, port_number, None)]}),
        json!({}),
    )
}

fn eps(ips: &[&str]) -> Value {
    Value::Array(ips.iter().map(|ip| json!({"addresses": [ip]})).collect())
}

const SVC1: &str = "
add element ip kube-proxy cluster-ips { 172.30.0.41 }
add element ip kube-proxy service-ips { 172.30.0.41 . tcp . 80 : goto service-ULMVA6XW-ns1/svc1/tcp/p80 }
add chain ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80
add rule ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80 ip daddr 172.30.0.41 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
add rule ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80 numgen random mod 1 vmap { 0 : goto endpoint-5TPGNJF2-ns1/svc1/tcp/p80__10.0.1.1/80 }
add chain ip kube-proxy endpoint-5TPGNJF2-ns1/svc1/tcp/p80__10.0.1.1/80
add rule ip kube-proxy endpoint-5TPGNJF2-ns1/svc1/tcp/p80__10.0.1.1/80 ip saddr 10.0.1.1 jump mark-for-masquerade
add rule ip kube-proxy endpoint-5TPGNJF2-ns1/svc1/tcp/p80__10.0.1.1/80 meta l4proto tcp dnat to 10.0.1.1:80
";

const SVC2: &str = "
add element ip kube-proxy cluster-ips { 172.30.0.42 }
add element ip kube-proxy service-ips { 172.30.0.42 . tcp . 8080 : goto service-MHHHYRWA-ns2/svc2/tcp/p8080 }
add chain ip kube-proxy service-MHHHYRWA-ns2/svc2/tcp/p8080
add rule ip kube-proxy service-MHHHYRWA-ns2/svc2/tcp/p8080 ip daddr 172.30.0.42 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
add rule ip kube-proxy service-MHHHYRWA-ns2/svc2/tcp/p8080 numgen random mod 1 vmap { 0 : goto endpoint-7RVP4LUQ-ns2/svc2/tcp/p8080__10.0.2.1/8080 }
add chain ip kube-proxy endpoint-7RVP4LUQ-ns2/svc2/tcp/p8080__10.0.2.1/8080
add rule ip kube-proxy endpoint-7RVP4LUQ-ns2/svc2/tcp/p8080__10.0.2.1/8080 ip saddr 10.0.2.1 jump mark-for-masquerade
add rule ip kube-proxy endpoint-7RVP4LUQ-ns2/svc2/tcp/p8080__10.0.2.1/8080 meta l4proto tcp dnat to 10.0.2.1:8080
";

const SVC3: &str = "
add element ip kube-proxy cluster-ips { 172.30.0.43 }
add element ip kube-proxy service-ips { 172.30.0.43 . tcp . 80 : goto service-4AT6LBPK-ns3/svc3/tcp/p80 }
add chain ip kube-proxy service-4AT6LBPK-ns3/svc3/tcp/p80
add rule ip kube-proxy service-4AT6LBPK-ns3/svc3/tcp/p80 ip daddr 172.30.0.43 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
add rule ip kube-proxy service-4AT6LBPK-ns3/svc3/tcp/p80 numgen random mod 1 vmap { 0 : goto endpoint-2OCDJSZQ-ns3/svc3/tcp/p80__10.0.3.1/80 }
add chain ip kube-proxy endpoint-2OCDJSZQ-ns3/svc3/tcp/p80__10.0.3.1/80
add rule ip kube-proxy endpoint-2OCDJSZQ-ns3/svc3/tcp/p80__10.0.3.1/80 ip saddr 10.0.3.1 jump mark-for-masquerade
add rule ip kube-proxy endpoint-2OCDJSZQ-ns3/svc3/tcp/p80__10.0.3.1/80 meta l4proto tcp dnat to 10.0.3.1:80
";

const SVC4: &str = "
add element ip kube-proxy cluster-ips { 172.30.0.44 }
add element ip kube-proxy service-ips { 172.30.0.44 . tcp . 80 : goto service-LAUZTJTB-ns4/svc4/tcp/p80 }
add chain ip kube-proxy service-LAUZTJTB-ns4/svc4/tcp/p80
add rule ip kube-proxy service-LAUZTJTB-ns4/svc4/tcp/p80 ip daddr 172.30.0.44 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
add rule ip kube-proxy service-LAUZTJTB-ns4/svc4/tcp/p80 numgen random mod 1 vmap { 0 : goto endpoint-WAHRBT2B-ns4/svc4/tcp/p80__10.0.4.1/80 }
add chain ip kube-proxy endpoint-WAHRBT2B-ns4/svc4/tcp/p80__10.0.4.1/80
add rule ip kube-proxy endpoint-WAHRBT2B-ns4/svc4/tcp/p80__10.0.4.1/80 ip saddr 10.0.4.1 jump mark-for-masquerade
add rule ip kube-proxy endpoint-WAHRBT2B-ns4/svc4/tcp/p80__10.0.4.1/80 meta l4proto tcp dnat to 10.0.4.1:80
";

#[test]
fn sync_proxy_rules_repeated() {
    let mut h = Harness::new();
    h.set_service(clusterip("ns1", "svc1", "172.30.0.41", "p80", 80));
    h.set_service(clusterip("ns2", "svc2", "172.30.0.42", "p8080", 8080));
    h.set_slice(slice("ns1", "svc1", eps(&["10.0.1.1"]), "p80", 80));
    h.set_slice(slice("ns2", "svc2", eps(&["10.0.2.1"]), "p8080", 8080));
    h.sync();
    h.assert_table(&format!("{SVC1}{SVC2}"));

    // Add a service and its endpoints: 2 elements, 2 chains added and flushed, 4 rules.
    h.set_service(clusterip("ns3", "svc3", "172.30.0.43", "p80", 80));
    h.set_slice(slice("ns3", "svc3", eps(&["10.0.3.1"]), "p80", 80));
    h.sync();
    h.assert_table(&format!("{SVC1}{SVC2}{SVC3}"));
    assert_eq!(h.last_ops, 10);

    // Delete a service: 2 element deletes, 2 chain flushes; the chains stay, empty.
    h.services
        .retain(|s| s.metadata.name.as_deref() != Some("svc2"));
    h.sync();
    h.assert_table(&format!(
        "{SVC1}{SVC3}
        add chain ip kube-proxy service-MHHHYRWA-ns2/svc2/tcp/p8080
        add chain ip kube-proxy endpoint-7RVP4LUQ-ns2/svc2/tcp/p8080__10.0.2.1/8080"
    ));
    assert_eq!(h.last_ops, 4);

    // A second later the stale chains go, in their own transaction; the sync itself is empty.
    h.age();
    h.sync();
    h.assert_table(&format!("{SVC1}{SVC3}"));
    assert_eq!(h.last_ops, 0);

    // A service without endpoints yet: its ClusterIP and a reject verdict.
    h.set_service(clusterip("ns4", "svc4", "172.30.0.44", "p80", 80));
    h.sync();
    h.assert_table(&format!(
        "{SVC1}{SVC3}
        add element ip kube-proxy cluster-ips {{ 172.30.0.44 }}
        add element ip kube-proxy no-endpoint-services {{ 172.30.0.44 . tcp . 80 comment \"ns4/svc4:p80\" : goto reject-chain }}"
    ));
    assert_eq!(h.last_ops, 2);

    // Its endpoints arrive: service-ips add, no-endpoint-services delete, 2 chains, 4 rules.
    h.set_slice(slice("ns4", "svc4", eps(&["10.0.4.1"]), "p80", 80));
    h.sync();
    h.assert_table(&format!("{SVC1}{SVC3}{SVC4}"));
    assert_eq!(h.last_ops, 10);

    // Change one endpoint's IP: the service chain and the new endpoint chain rewritten (8),
    // the old endpoint chain flushed (1).
    h.set_slice(slice("ns3", "svc3", eps(&["10.0.3.2"]), "p80", 80));
    h.sync();
    let svc3_one = "
        add element ip kube-proxy cluster-ips { 172.30.0.43 }
        add element ip kube-proxy service-ips { 172.30.0.43 . tcp . 80 : goto service-4AT6LBPK-ns3/svc3/tcp/p80 }
        add chain ip kube-proxy service-4AT6LBPK-ns3/svc3/tcp/p80
        add rule ip kube-proxy service-4AT6LBPK-ns3/svc3/tcp/p80 ip daddr 172.30.0.43 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
        add rule ip kube-proxy service-4AT6LBPK-ns3/svc3/tcp/p80 numgen random mod 1 vmap { 0 : goto endpoint-SWWHDC7X-ns3/svc3/tcp/p80__10.0.3.2/80 }
        add chain ip kube-proxy endpoint-SWWHDC7X-ns3/svc3/tcp/p80__10.0.3.2/80
        add rule ip kube-proxy endpoint-SWWHDC7X-ns3/svc3/tcp/p80__10.0.3.2/80 ip saddr 10.0.3.2 jump mark-for-masquerade
        add rule ip kube-proxy endpoint-SWWHDC7X-ns3/svc3/tcp/p80__10.0.3.2/80 meta l4proto tcp dnat to 10.0.3.2:80
    ";
    h.assert_table(&format!(
        "{SVC1}{svc3_one}{SVC4}
        add chain ip kube-proxy endpoint-2OCDJSZQ-ns3/svc3/tcp/p80__10.0.3.1/80"
    ));
    assert_eq!(h.last_ops, 9);

    // Add an endpoint (after the old chain aged): 3 chains of svc3 rewritten = 12.
    h.age();
    h.set_slice(slice(
        "ns3",
        "svc3",
        eps(&["10.0.3.2", "10.0.3.3"]),
        "p80",
        80,
    ));
    h.sync();
    let svc3_two = "
        add element ip kube-proxy cluster-ips { 172.30.0.43 }
        add element ip kube-proxy service-ips { 172.30.0.43 . tcp . 80 : goto service-4AT6LBPK-ns3/svc3/tcp/p80 }
        add chain ip kube-proxy service-4AT6LBPK-ns3/svc3/tcp/p80
        add rule ip kube-proxy service-4AT6LBPK-ns3/svc3/tcp/p80 ip daddr 172.30.0.43 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
        add rule ip kube-proxy service-4AT6LBPK-ns3/svc3/tcp/p80 numgen random mod 2 vmap { 0 : goto endpoint-SWWHDC7X-ns3/svc3/tcp/p80__10.0.3.2/80 , 1 : goto endpoint-TQ2QKHCZ-ns3/svc3/tcp/p80__10.0.3.3/80 }
        add chain ip kube-proxy endpoint-SWWHDC7X-ns3/svc3/tcp/p80__10.0.3.2/80
        add rule ip kube-proxy endpoint-SWWHDC7X-ns3/svc3/tcp/p80__10.0.3.2/80 ip saddr 10.0.3.2 jump mark-for-masquerade
        add rule ip kube-proxy endpoint-SWWHDC7X-ns3/svc3/tcp/p80__10.0.3.2/80 meta l4proto tcp dnat to 10.0.3.2:80
        add chain ip kube-proxy endpoint-TQ2QKHCZ-ns3/svc3/tcp/p80__10.0.3.3/80
        add rule ip kube-proxy endpoint-TQ2QKHCZ-ns3/svc3/tcp/p80__10.0.3.3/80 ip saddr 10.0.3.3 jump mark-for-masquerade
        add rule ip kube-proxy endpoint-TQ2QKHCZ-ns3/svc3/tcp/p80__10.0.3.3/80 meta l4proto tcp dnat to 10.0.3.3:80
    ";
    h.assert_table(&format!("{SVC1}{svc3_two}{SVC4}"));
    assert_eq!(h.last_ops, 12);

    // Empty the endpoints: service-ips delete, no-endpoint-services add, 3 chains flushed.
    h.set_slice(slice("ns3", "svc3", eps(&[]), "p80", 80));
    h.sync();
    h.assert_table(&format!(
        "{SVC1}{SVC4}
        add element ip kube-proxy cluster-ips {{ 172.30.0.43 }}
        add element ip kube-proxy no-endpoint-services {{ 172.30.0.43 . tcp . 80 comment \"ns3/svc3:p80\" : goto reject-chain }}
        add chain ip kube-proxy service-4AT6LBPK-ns3/svc3/tcp/p80
        add chain ip kube-proxy endpoint-SWWHDC7X-ns3/svc3/tcp/p80__10.0.3.2/80
        add chain ip kube-proxy endpoint-TQ2QKHCZ-ns3/svc3/tcp/p80__10.0.3.3/80"
    ));
    assert_eq!(h.last_ops, 5);
    assert_eq!(h.state.stale_chains().len(), 3);

    // Restored at once: the chains come back and leave the stale list (2 + 12).
    h.set_slice(slice(
        "ns3",
        "svc3",
        eps(&["10.0.3.2", "10.0.3.3"]),
        "p80",
        80,
    ));
    h.sync();
    h.assert_table(&format!("{SVC1}{svc3_two}{SVC4}"));
    assert_eq!(h.last_ops, 14);
    assert!(h.state.stale_chains().is_empty());

    // Emptied, aged, restored: deleted first, then re-created; the same table.
    h.set_slice(slice("ns3", "svc3", eps(&[]), "p80", 80));
    h.sync();
    h.age();
    h.set_slice(slice(
        "ns3",
        "svc3",
        eps(&["10.0.3.2", "10.0.3.3"]),
        "p80",
        80,
    ));
    h.sync();
    h.assert_table(&format!("{SVC1}{svc3_two}{SVC4}"));

    // No change: no operation.
    h.sync();
    assert_eq!(h.last_ops, 0);
}

#[test]
fn a_failed_sync_makes_the_next_one_full_and_finds_kernel_leftovers() {
    let mut h = Harness::new();
    h.set_service(clusterip("ns1", "svc1", "172.30.0.41", "p80", 80));
    h.set_slice(slice("ns1", "svc1", eps(&["10.0.1.1"]), "p80", 80));
    h.sync();
    // The process restarts with svc1 gone; the kernel still holds its chains.
    h.services.clear();
    h.slices.clear();
    let kernel = proxy::KernelObjects {
        chains: h.table.chain_names().into_iter().collect(),
        sets: Default::default(),
    };
    let desired = desired_ruleset(&h.config, &h.services, &h.slices);
    let fresh = SyncState::new(IpFamily::V4);
    let plan = fresh.plan(&desired, Some(&kernel), h.now);
    assert!(plan.full);
    let text = plan.transaction.render();
    assert!(
        text.contains(
            "add chain ip kube-proxy filter-input\ndelete chain ip kube-proxy filter-input\n"
        ),
        "{text}"
    );
    h.table.apply(&plan.transaction).expect("applies");
    assert_eq!(
        plan.next.stale_chains().len(),
        2,
        "svc1's two chains wait for deletion"
    );
    let (tx, _) = plan
        .next
        .stale_chain_deletion(h.now + Duration::from_secs(1))
        .expect("due");
    h.table.apply(&tx).expect("deletes");
    h.assert_table("");
    assert!(plan.next.failed().needs_full_sync());
}
