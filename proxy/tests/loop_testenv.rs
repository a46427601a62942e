//! The whole proxy driven through the API: testenv serves Services and EndpointSlices, the loop
//! writes the table into a private network namespace. A slice change rewrites only its Service's
//! chains (the other Service's rules keep their kernel handles); the healthCheckNodePort server
//! answers for the local endpoint, /healthz follows the Node object; ServiceCIDR objects become the unallocated-ClusterIP drop rule;
//! a deleted Service's chains go, the delayed delete included.

mod common;

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::ServiceCIDR;
use kube::api::{Api, DeleteParams, PostParams};
use proxy::names::service_port_base;
use proxy::{IpFamily, NftRunner, ProxyConfig, RulesConfig};
use serde_json::json;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn slice(service: &str, ip: &str, node: &str) -> EndpointSlice {
    serde_json::from_value(json!({
        "metadata": {"namespace": "default", "name": format!("{service}-abc"),
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [ip], "nodeName": node}],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]
    }))
    .unwrap()
}

/// Waits until `check` holds for the table listing, or fails with the last listing.
async fn eventually(ns: &common::Netns, what: &str, check: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let out = ns.exec(&["nft", "-a", "list", "table", "ip", "kube-proxy"]);
        let listing = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() && check(&listing) {
            return listing;
        }
        assert!(
            Instant::now() < deadline,
            "{what} never happened:\n{listing}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The rules of `chain` in a `nft -a` listing, with their handles.
fn chain_rules(listing: &str, chain: &str) -> Vec<String> {
    let mut lines = listing
        .lines()
        .skip_while(|l| !l.contains(&format!("chain {chain} {{")));
    lines.next();
    lines
        .take_while(|l| l.trim() != "}")
        .map(|l| l.trim().to_string())
        .collect()
}

fn http_get(url: &str) -> (String, String) {
    let out = std::process::Command::new("curl")
        .args(["-sS", "-i", "--max-time", "5", url])
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if text.is_empty() {
        return (
            String::from_utf8_lossy(&out.stderr).into_owned(),
            String::new(),
        );
    }
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.to_string(), body.to_string())
}

// Several threads: the test blocks on curl and nft while the proxy serves and syncs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loop_follows_the_api_into_a_namespace() {
    if !common::netns_available("the_loop_follows_the_api_into_a_namespace") {
        return;
    }
    let ns = common::Netns::create("loop");
    let env = testenv::TestEnv::start().await.expect("testenv starts");
    let client = env.client();
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let hcnp = free_port();
    let web: Service = serde_json::from_value(json!({
        "metadata": {"namespace": "default", "name": "web"},
        "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                 "externalTrafficPolicy": "Local", "healthCheckNodePort": hcnp,
                 "ports": [{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080}]}
    }))
    .unwrap();
    let api: Service = serde_json::from_value(json!({
        "metadata": {"namespace": "default", "name": "api"},
        "spec": {"clusterIP": "10.96.0.11", "clusterIPs": ["10.96.0.11"],
                 "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}
    }))
    .unwrap();
    services
        .create(&PostParams::default(), &web)
        .await
        .expect("web");
    // A Service whose health-check port is taken: its server cannot start.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let taken_port = taken.local_addr().unwrap().port();
    let busy: Service = serde_json::from_value(json!({
        "metadata": {"namespace": "default", "name": "busy"},
        "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.12", "clusterIPs": ["10.96.0.12"],
                 "externalTrafficPolicy": "Local", "healthCheckNodePort": taken_port,
                 "ports": [{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30081}]}
    }))
    .unwrap();
    services
        .create(&PostParams::default(), &busy)
        .await
        .expect("busy");
    services
        .create(&PostParams::default(), &api)
        .await
        .expect("api");
    slices
        .create(
            &PostParams::default(),
            &slice("web", "10.244.1.5", "node-a"),
        )
        .await
        .expect("web's slice");
    slices
        .create(
            &PostParams::default(),
            &slice("api", "10.244.2.7", "node-b"),
        )
        .await
        .expect("api's slice");

    let cidrs: Api<ServiceCIDR> = Api::all(client.clone());
    let cidr = |name: &str, cidr: &str| -> ServiceCIDR {
        serde_json::from_value(json!({"metadata": {"name": name}, "spec": {"cidrs": [cidr]}}))
            .unwrap()
    };
    cidrs
        .create(&PostParams::default(), &cidr("kubernetes", "10.96.0.0/12"))
        .await
        .expect("the default ServiceCIDR");

    let mut rules = RulesConfig::new(
        "node-a",
        vec![
            "172.18.0.2".parse().unwrap(),
            "127.0.0.1".parse().unwrap(),
            "fd00:18::2".parse().unwrap(),
        ],
    );
    rules.cluster_cidrs = vec!["10.244.0.0/16".parse().unwrap()];
    // Health checks listen where NodePorts are accepted: loopback here, so that the test only
    // talks to loopback (nftables mode never accepts NodePorts on it).
    rules.nodeport_addresses = Some(vec![
        "127.0.0.1/32".parse().unwrap(),
        "::1/128".parse().unwrap(),
    ]);
    let mut config = ProxyConfig::new(rules);
    assert_eq!(
        config.families,
        vec![IpFamily::V4, IpFamily::V6],
        "a dual-stack node"
    );
    config.min_sync_period = Duration::from_millis(50);
    let healthz_port = free_port();
    config.healthz_bind_address = Some(([127, 0, 0, 1], healthz_port).into());
    let metrics_port = free_port();
    config.metrics_bind_address = Some(([127, 0, 0, 1], metrics_port).into());
    let metrics_url = format!("http://127.0.0.1:{metrics_port}/metrics");
    config.runner = NftRunner::in_netns(&ns.name);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let proxy = tokio::spawn(proxy::run(client.clone(), config, async {
        let _ = stopped.await;
    }));

    let web_chain = format!(
        "service-{}",
        service_port_base("default", "web", "tcp", "http")
    );
    let api_chain = format!(
        "service-{}",
        service_port_base("default", "api", "tcp", "http")
    );
    // ServiceCIDRs are not waited for (as upstream): the first sync may come before them.
    let listing = eventually(&ns, "the first sync with the ServiceCIDR", |l| {
        l.contains("dnat to 10.244.1.5:8080")
            && l.contains("dnat to 10.244.2.7:8080")
            && l.contains("10.96.0.0/12")
    })
    .await;
    assert!(listing.contains(&format!(
        "chain external-{}",
        &web_chain["service-".len()..]
    )));
    // kube-proxy's metrics: one full sync per family, and when the last one was.
    let (head, metrics) = http_get(&metrics_url);
    assert!(
        head.contains("text/plain; version=0.0.4; charset=utf-8"),
        "{head}"
    );
    for family in ["IPv4", "IPv6"] {
        assert!(
            metrics.contains(&format!(
                "kubeproxy_sync_full_proxy_rules_duration_seconds_count{{ip_family=\"{family}\"}} "
            )) && metrics.contains(&format!(
                "kubeproxy_sync_proxy_rules_last_timestamp_seconds{{ip_family=\"{family}\"}} "
            )),
            "{metrics}"
        );
    }
    assert!(
        metrics.contains("kubeproxy_sync_proxy_rules_service_changes_total "),
        "{metrics}"
    );
    assert!(
        !metrics.contains("kubeproxy_sync_proxy_rules_nftables_sync_failures_total"),
        "no failure: {metrics}"
    );
    let api_before = chain_rules(&listing, &api_chain);
    let web_before = chain_rules(&listing, &web_chain);
    assert!(
        !api_before.is_empty() && !web_before.is_empty(),
        "{listing}"
    );

    // The healthCheckNodePort answers for web's local endpoint.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (head, body) = loop {
        let (head, body) = http_get(&format!("http://127.0.0.1:{hcnp}/any/path"));
        if head.starts_with("HTTP/1.1 200") || Instant::now() > deadline {
            break (head, body);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("x-load-balancing-endpoint-weight: 1"),
        "{head}"
    );
    assert_eq!(
        body,
        "{\n\t\"service\": {\n\t\t\"namespace\": \"default\",\n\t\t\"name\": \"web\"\n\t},\n\t\"localEndpoints\": 1,\n\t\"serviceProxyHealthy\": true\n}"
    );

    // The port that was taken: a Warning event on the Service, as upstream's.
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(client.clone(), "default");
    let deadline = Instant::now() + Duration::from_secs(10);
    let note = loop {
        let list = events.list(&Default::default()).await.expect("events list");
        if let Some(e) = list
            .items
            .iter()
            .find(|e| e.reason.as_deref() == Some("FailedToStartServiceHealthcheck"))
        {
            assert_eq!(e.type_.as_deref(), Some("Warning"));
            assert_eq!(e.action.as_deref(), Some("Listen"));
            assert_eq!(e.reporting_controller.as_deref(), Some("kube-proxy"));
            assert_eq!(
                e.regarding.as_ref().and_then(|r| r.name.as_deref()),
                Some("busy")
            );
            break e.note.clone().unwrap_or_default();
        }
        assert!(
            Instant::now() < deadline,
            "no FailedToStartServiceHealthcheck event"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        note.starts_with(&format!(
            "node node-a failed to start healthcheck \"default/busy\" on port {taken_port}: "
        )),
        "{note}"
    );
    drop(taken);

    // /healthz: 503 while this node's Node object is missing, 200 once it exists.
    let healthz = format!("http://127.0.0.1:{healthz_port}/healthz");
    let (head, body) = http_get(&healthz);
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    assert!(body.contains("\"nodeEligible\":false"), "{body}");
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({"metadata": {"name": "node-a"}})).unwrap();
    nodes
        .create(&PostParams::default(), &node)
        .await
        .expect("the node");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (head, body) = http_get(&healthz);
        if head.starts_with("HTTP/1.1 200") {
            assert!(
                body.contains("\"nodeEligible\":true,\"healthy\":true"),
                "{body}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "healthz never became 200: {head}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        http_get(&format!("http://127.0.0.1:{healthz_port}/livez"))
            .0
            .starts_with("HTTP/1.1 200")
    );

    // web's endpoint moves: only web's chains are rewritten.
    let mut moved = slices.get("web-abc").await.expect("web's slice");
    moved.endpoints[0].addresses = vec!["10.244.1.6".into()];
    slices
        .replace("web-abc", &PostParams::default(), &moved)
        .await
        .expect("replace");
    let listing = eventually(&ns, "the endpoint change", |l| {
        l.contains("dnat to 10.244.1.6:8080") && !l.contains("dnat to 10.244.1.5:8080")
    })
    .await;
    assert_eq!(
        chain_rules(&listing, &api_chain),
        api_before,
        "api's chain was not rewritten"
    );
    assert_ne!(
        chain_rules(&listing, &web_chain),
        web_before,
        "web's chain was rewritten"
    );
    // That was a partial sync, and /healthz and /livez answers were counted.
    let (_, metrics) = http_get(&metrics_url);
    for line in [
        "kubeproxy_sync_partial_proxy_rules_duration_seconds_count{ip_family=\"IPv4\"} ",
        "kubeproxy_proxy_healthz_total{code=\"200\"} ",
        "kubeproxy_proxy_healthz_total{code=\"503\"} ",
        "kubeproxy_proxy_livez_total{code=\"200\"} 1\n",
    ] {
        assert!(metrics.contains(line), "missing {line:?}: {metrics}");
    }
    assert_eq!(
        http_get(&format!("http://127.0.0.1:{metrics_port}/proxyMode")).1,
        "nftables"
    );

    // A second ServiceCIDR changes the skeleton: a full sync writes it.
    cidrs
        .create(&PostParams::default(), &cidr("extra", "10.200.0.0/16"))
        .await
        .expect("a second ServiceCIDR");
    eventually(&ns, "the second ServiceCIDR's rule", |l| {
        l.contains("10.200.0.0/16")
    })
    .await;

    // api goes: its elements at once, its chains flushed and then deleted.
    services
        .delete("api", &DeleteParams::default())
        .await
        .expect("delete api");
    eventually(&ns, "api's deletion", |l| {
        !l.contains("10.96.0.11") && !l.contains("default/api/")
    })
    .await;

    stop.send(()).expect("the proxy still runs");
    tokio::time::timeout(Duration::from_secs(10), proxy)
        .await
        .expect("the proxy stops")
        .expect("the task ran")
        .expect("the proxy ran without error");
}
