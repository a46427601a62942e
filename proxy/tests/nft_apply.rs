//! The transactions applied by the real `nft` inside a private network namespace: a full sync,
//! a partial sync that changes one endpoint, a Service's deletion with the delayed chain delete,
//! and nft's refusal reported with the statement it names.

mod common;

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use proxy::nft::{Statement, Transaction};
use proxy::{IpFamily, NftError, NftRunner, RulesConfig, SyncState, desired_ruleset};
use serde_json::json;

fn service(name: &str, ip: &str) -> Service {
    serde_json::from_value(json!({
        "metadata": {"namespace": "default", "name": name},
        "spec": {"clusterIP": ip, "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
                 "sessionAffinity": "ClientIP"}
    }))
    .unwrap()
}

fn slice(service: &str, ips: &[&str]) -> EndpointSlice {
    serde_json::from_value(json!({
        "metadata": {"namespace": "default", "name": format!("{service}-abc"),
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "endpoints": ips.iter().map(|ip| json!({"addresses": [ip]})).collect::<Vec<_>>(),
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]
    }))
    .unwrap()
}

fn config() -> RulesConfig {
    let mut c = RulesConfig::new("node-a", vec!["172.18.0.2".parse().unwrap()]);
    c.cluster_cidrs = vec!["10.244.0.0/16".parse().unwrap()];
    c.service_cidrs = vec!["10.96.0.0/12".parse().unwrap()];
    c
}

#[tokio::test]
async fn full_partial_and_delayed_delete_apply_in_a_namespace() {
    if !common::netns_available("full_partial_and_delayed_delete_apply_in_a_namespace") {
        return;
    }
    let ns = common::Netns::create("apply");
    let runner = NftRunner::in_netns(&ns.name);
    let cfg = config();
    let mut services = vec![service("web", "10.96.0.10"), service("api", "10.96.0.11")];
    let mut slices = vec![slice("web", &["10.244.1.5"]), slice("api", &["10.244.2.7"])];
    let mut now = Instant::now();

    // Full sync.
    let kernel = runner.list_objects(IpFamily::V4).await.expect("lists");
    assert!(kernel.chains.is_empty(), "a fresh namespace has no table");
    let state = SyncState::new(IpFamily::V4);
    let plan = state.plan(
        &desired_ruleset(&cfg, &services, &slices),
        Some(&kernel),
        now,
    );
    runner
        .apply(&plan.transaction)
        .await
        .expect("full sync applies");
    let state = plan.next;
    let listing = ns.list_table();
    let web_ep = "endpoint-";
    assert!(
        listing.contains("chain filter-prerouting-pre-dnat"),
        "{listing}"
    );
    assert!(
        listing.contains("type nat hook output priority -100; policy accept;"),
        "{listing}"
    );
    assert!(
        listing.contains("-default/web/tcp/http__10.244.1.5/8080"),
        "{listing}"
    );
    assert!(listing.contains("dnat to 10.244.1.5:8080"), "{listing}");
    assert!(
        listing.contains("10.96.0.10 . tcp . 80 : goto service-"),
        "{listing}"
    );
    assert!(listing.contains("set affinity-"), "{listing}");
    let listed = runner.list_objects(IpFamily::V4).await.expect("lists");
    assert!(
        listed
            .chains
            .iter()
            .any(|c| c.starts_with(web_ep) && c.contains("web"))
    );
    assert!(
        listed.sets.values().any(|t| *t == Some(10800)),
        "{:?}",
        listed.sets
    );

    // Partial sync: web's endpoint moves.
    now += Duration::from_millis(10);
    slices[0] = slice("web", &["10.244.1.6"]);
    let plan = state.plan(&desired_ruleset(&cfg, &services, &slices), None, now);
    assert!(!plan.full);
    let text = plan.transaction.render();
    assert!(
        !text.contains("api"),
        "only web's objects are touched:\n{text}"
    );
    runner
        .apply(&plan.transaction)
        .await
        .expect("partial sync applies");
    let state = plan.next;
    let listing = ns.list_table();
    assert!(listing.contains("dnat to 10.244.1.6:8080"), "{listing}");
    assert!(
        !listing.contains("dnat to 10.244.1.5:8080"),
        "the old chain is flushed"
    );
    assert!(
        listing.contains("__10.244.1.5/8080"),
        "but not deleted yet: {listing}"
    );
    assert!(
        !listing
            .lines()
            .any(|l| l.trim_start().starts_with("set affinity-") && l.contains("10.244.1.5")),
        "the old affinity set is deleted at once: {listing}"
    );

    // Delete api: its elements and chains go; the chains a second later.
    now += Duration::from_millis(10);
    services.retain(|s| s.metadata.name.as_deref() != Some("api"));
    slices.retain(|s| s.metadata.name.as_deref() != Some("api-abc"));
    let plan = state.plan(&desired_ruleset(&cfg, &services, &slices), None, now);
    runner
        .apply(&plan.transaction)
        .await
        .expect("deletion applies");
    let state = plan.next;
    let listing = ns.list_table();
    assert!(!listing.contains("10.96.0.11"), "{listing}");
    assert!(
        listing.contains("default/api/tcp/http"),
        "flushed chains remain a while: {listing}"
    );
    assert!(
        state.stale_chain_deletion(now).is_none(),
        "not before a second"
    );
    let (tx, state) = state
        .stale_chain_deletion(now + Duration::from_secs(1))
        .expect("due after a second");
    runner.apply(&tx).await.expect("stale chains delete");
    let listing = ns.list_table();
    assert!(!listing.contains("default/api/"), "{listing}");
    assert!(!listing.contains("__10.244.1.5/8080"), "{listing}");
    assert!(state.stale_chains().is_empty());

    // No change: nothing to run.
    let plan = state.plan(&desired_ruleset(&cfg, &services, &slices), None, now);
    assert!(plan.transaction.is_empty());

    // A new ServiceCIDR changes the skeleton: a full sync over the live table.
    let mut cfg = cfg;
    cfg.service_cidrs.push("10.200.0.0/16".parse().unwrap());
    let plan = state.plan(&desired_ruleset(&cfg, &services, &slices), None, now);
    assert!(plan.full);
    runner
        .apply(&plan.transaction)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", plan.transaction.render()));
    let listing = ns.list_table();
    assert!(listing.contains("10.200.0.0/16"), "{listing}");
    assert!(listing.contains("dnat to 10.244.1.6:8080"), "{listing}");
}

#[tokio::test]
async fn nft_refusals_name_the_statement() {
    if !common::netns_available("nft_refusals_name_the_statement") {
        return;
    }
    let ns = common::Netns::create("refuse");
    let runner = NftRunner::in_netns(&ns.name);
    let mut tx = Transaction::new(IpFamily::V4);
    tx.push(Statement::AddTable {
        comment: "rules for kube-proxy".into(),
    });
    tx.push(Statement::FlushChain("no-such-chain".into()));
    let err = runner.apply(&tx).await.expect_err("nft refuses");
    let text = err.to_string();
    assert!(matches!(err, NftError::Refused { .. }));
    assert!(
        text.contains("statement 2 \"flush chain ip kube-proxy no-such-chain\""),
        "{text}"
    );
    assert!(text.contains("No such file or directory"), "{text}");
    // The transaction was atomic: not even the table exists.
    assert!(
        ns.exec(&["nft", "list", "table", "ip", "kube-proxy"])
            .status
            .code()
            != Some(0)
    );

    let missing = NftRunner::in_netns("svcp-px-no-such-namespace");
    let err = missing.apply(&tx).await.expect_err("no namespace");
    assert!(
        err.to_string().contains("refused") || err.to_string().contains("cannot run"),
        "{err}"
    );
}

#[tokio::test]
async fn the_ip6_table_applies_too() {
    if !common::netns_available("the_ip6_table_applies_too") {
        return;
    }
    let ns = common::Netns::create("ip6");
    let runner = NftRunner::in_netns(&ns.name);
    let mut cfg = RulesConfig::new("node-a", vec!["fd00:18::2".parse().unwrap()]);
    cfg.family = IpFamily::V6;
    cfg.cluster_cidrs = vec!["fd00:10::/64".parse().unwrap()];
    cfg.service_cidrs = vec!["fd00:96::/112".parse().unwrap()];
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"namespace": "default", "name": "web"},
        "spec": {"type": "NodePort", "clusterIP": "fd00:96::a", "ipFamilies": ["IPv6"], "clusterIPs": ["fd00:96::a"],
                 "sessionAffinity": "ClientIP",
                 "ports": [{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080}]}
    }))
    .unwrap();
    let eps: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"namespace": "default", "name": "web-abc", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv6",
        "endpoints": [{"addresses": ["fd00:10::5"]}],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]
    }))
    .unwrap();
    let plan = SyncState::new(IpFamily::V6).plan(
        &desired_ruleset(&cfg, &[svc], &[eps]),
        None,
        Instant::now(),
    );
    runner
        .apply(&plan.transaction)
        .await
        .expect("the ip6 table applies");
    let listing = ns.exec_ok(&["nft", "list", "table", "ip6", "kube-proxy"]);
    assert!(listing.contains("dnat to [fd00:10::5]:8080"), "{listing}");
    assert!(listing.contains("elements = { fd00:18::2 }"), "{listing}");
}

#[tokio::test]
async fn interface_addresses_are_read_inside_the_namespace() {
    if !common::netns_available("interface_addresses_are_read_inside_the_namespace") {
        return;
    }
    let ns = common::Netns::create("addrs");
    ns.exec_ok(&[
        "ip", "link", "add", "pxa0", "type", "veth", "peer", "name", "pxb0",
    ]);
    ns.exec_ok(&["ip", "addr", "add", "172.18.0.9/16", "dev", "pxa0"]);
    let ips = proxy::node_addresses::interface_addresses(Some(&ns.name))
        .await
        .expect("ip -j addr");
    assert!(ips.contains(&"172.18.0.9".parse().unwrap()), "{ips:?}");
    assert!(ips.contains(&"127.0.0.1".parse().unwrap()), "{ips:?}");
}
