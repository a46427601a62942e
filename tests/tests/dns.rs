//! Cluster DNS on both backends, fed the way a cluster feeds it: pods run by the node simulator,
//! EndpointSlices written by svcplane's controller, svcplane's DNS server queried over UDP and
//! TCP; and how long a new Service takes to resolve.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use controllers::endpointslice_controller::{
    EndpointSliceController, EndpointSliceControllerConfig,
};
use dns::probe::{ProbeQuery, Transport, probe};
use dns::{ClusterDns, DnsConfig};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use kube::api::{Patch, PatchParams};
use prometheus_client::registry::Registry;
use serde_json::json;
use svcplane_tests::fixtures::{eventually, pod, service};
use svcplane_tests::{BackendKind, Harness, HarnessOptions, on_both_backends};
use testenv::nodesim::NodeSimConfig;

const WAIT: Duration = Duration::from_secs(30);

async fn start(kind: BackendKind, nodes: Option<NodeSimConfig>) -> Option<(Harness, ClusterDns)> {
    let options = HarnessOptions {
        nodes,
        garbage_collection: false,
    };
    let mut harness = Harness::start(kind, options).await?;
    let mut registry = Registry::default();
    let controller = EndpointSliceController::new(
        harness.controller_client(),
        EndpointSliceControllerConfig::default(),
        &mut registry,
    )
    .expect("valid config");
    harness.spawn(controller.run(controllers::runtime::Shutdown::never()));
    // The DNS server stops with the harness's runtime; its token never fires before.
    let dns = ClusterDns::start(
        harness.client.clone(),
        DnsConfig::default(),
        "127.0.0.1:0".parse().expect("addr"),
        kuberun::Shutdown::never(),
    )
    .await
    .expect("dns starts");
    assert!(dns.wait_synced(WAIT).await, "dns caches synced");
    Some((harness, dns))
}

async fn ask(server: SocketAddr, transport: Transport, name: &str, qtype: RecordType) -> Message {
    let query = ProbeQuery::new(Name::from_ascii(name).expect("name"), qtype);
    probe(server, transport, &query, Duration::from_secs(2))
        .await
        .expect("an answer")
}

/// The answer's data, one string per record, sorted.
fn data(message: &Message) -> BTreeSet<String> {
    message
        .answers
        .iter()
        .map(|r| match &r.data {
            RData::SRV(s) => format!("{} {}", s.port, s.target),
            other => other.to_string(),
        })
        .collect()
}

fn set<const N: usize>(items: [&str; N]) -> BTreeSet<String> {
    items.into_iter().map(str::to_owned).collect()
}

/// Waits until `name qtype` answers `want` on both transports.
async fn resolves_to(server: SocketAddr, name: &str, qtype: RecordType, want: BTreeSet<String>) {
    for transport in [Transport::Udp, Transport::Tcp] {
        let what = format!("{name} {qtype} over {transport:?} = {want:?}");
        eventually(&what, WAIT, || async {
            let got = ask(server, transport, name, qtype).await;
            (got.metadata.response_code == ResponseCode::NoError && data(&got) == want)
                .then_some(())
        })
        .await;
    }
}

async fn pod_ip(h: &Harness, name: &str) -> String {
    eventually(&format!("{name} has an IP"), WAIT, || async {
        let pod = h.pods().get(name).await.ok()?;
        pod.status?.pod_ip
    })
    .await
}

async fn services_resolve_as_their_endpoint_slices_say(kind: BackendKind) {
    let Some((h, dns)) = start(kind, Some(NodeSimConfig::with_node_count(2))).await else {
        return;
    };
    let server = dns.local_addr();
    let mut pods = vec![
        pod("web-0", "web"),
        pod("web-1", "web"),
        pod("web-2", "web"),
    ];
    // A not-ready pod: the simulated kubelet reports Ready=false for it.
    pods[2]["metadata"]["annotations"]["testenv.svcplane.io/ready"] = json!("false");
    let mut db = pod("db-0", "db");
    db["spec"]["hostname"] = json!("db-0");
    db["spec"]["subdomain"] = json!("db");
    pods.push(db);
    h.create_pods(pods).await;
    let ips = [
        pod_ip(&h, "web-0").await,
        pod_ip(&h, "web-1").await,
        pod_ip(&h, "web-2").await,
    ];
    let db_ip = pod_ip(&h, "db-0").await;

    h.create_service(service("web", "web", json!(8080))).await;
    let headless = |name: &str, app: &str, publish_not_ready: bool| {
        json!({"metadata": {"name": name, "namespace": "default"}, "spec": {
            "selector": {"app": app}, "clusterIP": "None", "clusterIPs": ["None"],
            "publishNotReadyAddresses": publish_not_ready,
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]}})
    };
    h.create_service(headless("web-hl", "web", false)).await;
    h.create_service(headless("web-all", "web", true)).await;
    h.create_service(headless("db", "db", false)).await;

    let z = "default.svc.cluster.local.";
    resolves_to(
        server,
        &format!("web.{z}"),
        RecordType::A,
        set(["10.96.0.10"]),
    )
    .await;
    resolves_to(
        server,
        &format!("web-hl.{z}"),
        RecordType::A,
        set([ips[0].as_str(), ips[1].as_str()]),
    )
    .await;
    // publishNotReadyAddresses: the controller writes every endpoint ready.
    resolves_to(
        server,
        &format!("web-all.{z}"),
        RecordType::A,
        set([ips[0].as_str(), ips[1].as_str(), ips[2].as_str()]),
    )
    .await;
    resolves_to(
        server,
        &format!("db-0.db.{z}"),
        RecordType::A,
        set([db_ip.as_str()]),
    )
    .await;
    resolves_to(
        server,
        &format!("_http._tcp.db.{z}"),
        RecordType::SRV,
        set([format!("8080 db-0.db.{z}").as_str()]),
    )
    .await;
    resolves_to(
        server,
        &format!("_http._tcp.web.{z}"),
        RecordType::SRV,
        set([format!("80 web.{z}").as_str()]),
    )
    .await;
    let dashed = ips[0].replace('.', "-");
    resolves_to(
        server,
        &format!("{dashed}.default.pod.cluster.local."),
        RecordType::A,
        set([ips[0].as_str()]),
    )
    .await;

    // web-1 turns not ready: it leaves web-hl, stays in web-all.
    let patch = json!({"metadata": {"annotations": {"testenv.svcplane.io/ready": "false"}}});
    h.pods()
        .patch("web-1", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("pod patched");
    resolves_to(
        server,
        &format!("web-hl.{z}"),
        RecordType::A,
        set([ips[0].as_str()]),
    )
    .await;
    resolves_to(
        server,
        &format!("web-all.{z}"),
        RecordType::A,
        set([ips[0].as_str(), ips[1].as_str(), ips[2].as_str()]),
    )
    .await;
    let missing = ask(server, Transport::Udp, &format!("nope.{z}"), RecordType::A).await;
    assert_eq!(missing.metadata.response_code, ResponseCode::NXDomain);
}

async fn a_created_service_resolves_within_milliseconds(kind: BackendKind) {
    let Some((h, dns)) = start(kind, None).await else {
        return;
    };
    let server = dns.local_addr();
    let mut latencies = Vec::new();
    for i in 0..50u32 {
        let name = format!("lat-{i}");
        let ip = format!("10.96.20.{}", i + 1);
        let body = json!({"metadata": {"name": name, "namespace": "default"}, "spec": {
            "clusterIP": ip, "clusterIPs": [ip], "ports": [{"port": 80, "protocol": "TCP"}]}});
        h.create_service(body).await;
        // From the create call's return to the first answer with data, polled every ms.
        let started = Instant::now();
        let qname = format!("{name}.default.svc.cluster.local.");
        loop {
            let got = ask(server, Transport::Udp, &qname, RecordType::A).await;
            if !got.answers.is_empty() {
                break;
            }
            assert!(started.elapsed() < WAIT, "{qname} never resolved");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        latencies.push(started.elapsed());
    }
    latencies.sort();
    let at = |q: usize| latencies[(latencies.len() * q / 100).min(latencies.len() - 1)];
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    eprintln!(
        "{}: service created -> resolvable over {} Services: p50 {:.2} ms, p99 {:.2} ms",
        kind.name(),
        latencies.len(),
        ms(at(50)),
        ms(at(99))
    );
    assert!(at(99) < Duration::from_millis(50), "p99 {:?}", at(99));
}

on_both_backends!(
    services_resolve_as_their_endpoint_slices_say,
    a_created_service_resolves_within_milliseconds
);
