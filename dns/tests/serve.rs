//! The shell against an API server (testenv): the watches fill the index, the server answers
//! over UDP and TCP, UDP answers that do not fit are truncated, a new Service resolves within
//! milliseconds, and everything stops on the shutdown token.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dns::probe::{ProbeQuery, Transport, probe};
use dns::{ClusterDns, DnsConfig};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, PostParams};
use kuberun::shutdown_channel;
use serde_json::json;
use testenv::TestEnv;

const WAIT: Duration = Duration::from_secs(10);

async fn ask(server: SocketAddr, transport: Transport, name: &str, qtype: RecordType) -> Message {
    let query = ProbeQuery::new(Name::from_ascii(name).expect("name"), qtype);
    probe(server, transport, &query, Duration::from_secs(2))
        .await
        .expect("an answer")
}

fn addresses(message: &Message) -> Vec<String> {
    let mut out: Vec<String> = message
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0.to_string()),
            RData::AAAA(a) => Some(a.0.to_string()),
            _ => None,
        })
        .collect();
    out.sort();
    out
}

async fn create_service(env: &TestEnv, body: serde_json::Value) {
    let api: Api<Service> = Api::namespaced(env.client(), "default");
    let service: Service = serde_json::from_value(body).expect("service JSON");
    api.create(&PostParams::default(), &service)
        .await
        .expect("service created");
}

async fn create_slice(env: &TestEnv, body: serde_json::Value) {
    let api: Api<EndpointSlice> = Api::namespaced(env.client(), "default");
    let slice: EndpointSlice = serde_json::from_value(body).expect("slice JSON");
    api.create(&PostParams::default(), &slice)
        .await
        .expect("slice created");
}

async fn start(env: &TestEnv) -> (ClusterDns, kuberun::ShutdownTrigger) {
    let (trigger, shutdown) = shutdown_channel();
    let dns = ClusterDns::start(
        env.client(),
        DnsConfig::default(),
        "127.0.0.1:0".parse().expect("addr"),
        shutdown,
    )
    .await
    .expect("dns starts");
    assert!(dns.wait_synced(WAIT).await, "the watches listed");
    (dns, trigger)
}

/// Polls until `name` has an A/AAAA answer; how long that took.
async fn until_resolvable(server: SocketAddr, name: &str, qtype: RecordType) -> Duration {
    let started = Instant::now();
    loop {
        let got = ask(server, Transport::Udp, name, qtype).await;
        if got.metadata.response_code == ResponseCode::NoError && !got.answers.is_empty() {
            return started.elapsed();
        }
        assert!(started.elapsed() < WAIT, "{name} never resolved: {got:?}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_and_slices_resolve_over_udp_and_tcp() {
    let env = TestEnv::start().await.expect("testenv");
    let (dns, trigger) = start(&env).await;
    let server = dns.local_addr();

    create_service(
        &env,
        json!({"metadata": {"name": "web"}, "spec": {
            "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}),
    )
    .await;
    create_service(
        &env,
        json!({"metadata": {"name": "db"}, "spec": {
            "clusterIP": "None", "clusterIPs": ["None"],
            "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}]}}),
    )
    .await;
    create_slice(
        &env,
        json!({"metadata": {"name": "db-1", "labels": {"kubernetes.io/service-name": "db"}},
        "addressType": "IPv4",
        "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}],
        "endpoints": [
            {"addresses": ["10.244.0.5"], "hostname": "db-0", "conditions": {"ready": true}},
            {"addresses": ["10.244.0.6"], "conditions": {"ready": true}},
            {"addresses": ["10.244.0.7"], "conditions": {"ready": false}}
        ]}),
    )
    .await;
    until_resolvable(server, "db.default.svc.cluster.local.", RecordType::A).await;

    for transport in [Transport::Udp, Transport::Tcp] {
        let web = ask(
            server,
            transport,
            "web.default.svc.cluster.local.",
            RecordType::A,
        )
        .await;
        assert_eq!(web.metadata.response_code, ResponseCode::NoError);
        assert!(web.metadata.authoritative);
        assert_eq!(addresses(&web), ["10.96.0.10"]);

        let db = ask(
            server,
            transport,
            "db.default.svc.cluster.local.",
            RecordType::A,
        )
        .await;
        assert_eq!(
            addresses(&db),
            ["10.244.0.5", "10.244.0.6"],
            "not-ready left out"
        );
        let db0 = ask(
            server,
            transport,
            "db-0.db.default.svc.cluster.local.",
            RecordType::A,
        )
        .await;
        assert_eq!(addresses(&db0), ["10.244.0.5"]);

        let srv = ask(
            server,
            transport,
            "_pg._tcp.db.default.svc.cluster.local.",
            RecordType::SRV,
        )
        .await;
        let mut targets: Vec<String> = srv
            .answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::SRV(s) => Some(format!("{} {}", s.port, s.target)),
                _ => None,
            })
            .collect();
        targets.sort();
        assert_eq!(
            targets,
            [
                "5432 10-244-0-6.db.default.svc.cluster.local.",
                "5432 db-0.db.default.svc.cluster.local."
            ]
        );
        assert_eq!(srv.additionals.len(), 2);

        let missing = ask(
            server,
            transport,
            "nope.default.svc.cluster.local.",
            RecordType::A,
        )
        .await;
        assert_eq!(missing.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(missing.authorities.len(), 1, "SOA in authority");

        let ptr = ask(
            server,
            transport,
            "10.0.96.10.in-addr.arpa.",
            RecordType::PTR,
        )
        .await;
        assert_eq!(ptr.answers.len(), 1);
        assert_eq!(
            ptr.answers[0].data.to_string(),
            "web.default.svc.cluster.local."
        );
    }

    trigger.fire();
    tokio::time::timeout(WAIT, dns.stopped())
        .await
        .expect("the server and the watches stop on shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_answers_that_do_not_fit_are_truncated_and_tcp_carries_them_whole() {
    let env = TestEnv::start().await.expect("testenv");
    let (dns, _trigger) = start(&env).await;
    let server = dns.local_addr();
    create_service(
        &env,
        json!({"metadata": {"name": "many"}, "spec": {"clusterIP": "None", "clusterIPs": ["None"]}}),
    )
    .await;
    let endpoints: Vec<serde_json::Value> = (1..=120)
        .map(|i| json!({"addresses": [format!("10.244.1.{i}")], "conditions": {"ready": true}}))
        .collect();
    create_slice(
        &env,
        json!({"metadata": {"name": "many-1", "labels": {"kubernetes.io/service-name": "many"}},
            "addressType": "IPv4", "endpoints": endpoints}),
    )
    .await;
    let name = "many.default.svc.cluster.local.";
    until_resolvable(server, name, RecordType::A).await;
    let whole = ask(server, Transport::Tcp, name, RecordType::A).await;
    assert_eq!(whole.answers.len(), 120);
    assert!(!whole.metadata.truncation);

    // No EDNS: 512 bytes at most.
    let mut query = ProbeQuery::new(Name::from_ascii(name).expect("name"), RecordType::A);
    query.edns_payload = None;
    let cut = probe(server, Transport::Udp, &query, Duration::from_secs(2))
        .await
        .expect("an answer");
    assert!(cut.metadata.truncation, "TC set");
    assert!(cut.answers.len() < 120);
    assert!(cut.to_vec().expect("encodes").len() <= 512);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_service_resolves_within_milliseconds() {
    let env = TestEnv::start().await.expect("testenv");
    let (dns, _trigger) = start(&env).await;
    let server = dns.local_addr();
    // From the create call's return (the object is stored: what a client calls "created") to
    // the first NOERROR with data, polled every millisecond; and the create call itself.
    let mut latencies = Vec::new();
    let mut creates = Vec::new();
    for i in 0..100u32 {
        let name = format!("latency-{i}");
        let ip = format!("10.96.{}.{}", 1 + i / 200, 1 + i % 200);
        let started = Instant::now();
        create_service(
            &env,
            json!({"metadata": {"name": name}, "spec": {"clusterIP": ip, "clusterIPs": [ip],
                "ports": [{"port": 80}]}}),
        )
        .await;
        creates.push(started.elapsed());
        latencies.push(
            until_resolvable(
                server,
                &format!("{name}.default.svc.cluster.local."),
                RecordType::A,
            )
            .await,
        );
    }
    let (p50, p99, max) = percentiles(&mut latencies);
    let (c50, c99, _) = percentiles(&mut creates);
    eprintln!(
        "service created -> resolvable over {} services: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms \
         (the create call itself: p50 {:.2} ms, p99 {:.2} ms)",
        latencies.len(),
        ms(p50),
        ms(p99),
        ms(max),
        ms(c50),
        ms(c99)
    );
    assert!(p99 < Duration::from_millis(50), "p99 {p99:?}");
}

fn percentiles(samples: &mut [Duration]) -> (Duration, Duration, Duration) {
    samples.sort();
    let at = |q: usize| samples[(samples.len() * q / 100).min(samples.len() - 1)];
    (at(50), at(99), samples[samples.len() - 1])
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_verified_answers_running_pods_only() {
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Patch, PatchParams};

    let env = TestEnv::start().await.expect("testenv");
    let (trigger, shutdown) = shutdown_channel();
    let config = DnsConfig {
        pods: dns::PodMode::Verified,
        ..DnsConfig::default()
    };
    let dns = ClusterDns::start(
        env.client(),
        config,
        "127.0.0.1:0".parse().expect("addr"),
        shutdown,
    )
    .await
    .expect("dns starts");
    assert!(dns.wait_synced(WAIT).await, "the watches listed (Pods too)");
    let server = dns.local_addr();
    let pods: Api<Pod> = Api::namespaced(env.client(), "default");
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]}}))
    .expect("pod JSON");
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("pod created");
    let status = |phase: &str| {
        json!({"status": {"phase": phase, "podIP": "10.244.9.9",
            "podIPs": [{"ip": "10.244.9.9"}, {"ip": "fd00:10:244::9"}]}})
    };
    pods.patch_status(
        "p",
        &PatchParams::default(),
        &Patch::Merge(&status("Running")),
    )
    .await
    .expect("status written");
    let name = "10-244-9-9.default.pod.cluster.local.";
    until_resolvable(server, name, RecordType::A).await;
    // Every podIPs entry is indexed (CoreDNS 1.15), not only podIP.
    until_resolvable(
        server,
        "fd00-10-244--9.default.pod.cluster.local.",
        RecordType::AAAA,
    )
    .await;
    // Not a pod's IP: NXDOMAIN in verified mode (insecure would answer).
    let other = ask(
        server,
        Transport::Udp,
        "10-244-9-8.default.pod.cluster.local.",
        RecordType::A,
    )
    .await;
    assert_eq!(other.metadata.response_code, ResponseCode::NXDomain);
    // An ended pod answers no more.
    pods.patch_status(
        "p",
        &PatchParams::default(),
        &Patch::Merge(&status("Succeeded")),
    )
    .await
    .expect("status written");
    let started = Instant::now();
    loop {
        let got = ask(server, Transport::Udp, name, RecordType::A).await;
        if got.metadata.response_code == ResponseCode::NXDomain {
            break;
        }
        assert!(
            started.elapsed() < WAIT,
            "the ended pod still answers: {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    trigger.fire();
    dns.stopped().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_pair_of_sockets_serves_the_same_records() {
    let env = TestEnv::start().await.expect("testenv");
    let (dns, trigger) = start(&env).await;
    // As the playground's cluster DNS pod does, on sockets bound by the caller (127.0.0.2
    // stands in for the pod's namespace here).
    create_service(
        &env,
        json!({"metadata": {"name": "kube-dns"}, "spec": {
            "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
            "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]}}),
    )
    .await;
    create_slice(
        &env,
        json!({"metadata": {"name": "kube-dns-1", "labels": {"kubernetes.io/service-name": "kube-dns"}},
        "addressType": "IPv4",
        "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}],
        "endpoints": [{"addresses": ["127.0.0.2"], "conditions": {"ready": true}}]}),
    )
    .await;
    let udp = tokio::net::UdpSocket::bind("127.0.0.2:0")
        .await
        .expect("udp");
    let port = udp.local_addr().expect("addr").port();
    let tcp = tokio::net::TcpListener::bind(("127.0.0.2", port))
        .await
        .expect("tcp on the same port");
    let (also_trigger, also_shutdown) = shutdown_channel();
    let also = dns
        .records()
        .serve_on(udp, tcp, "127.0.0.2".parse().expect("ip"), also_shutdown)
        .expect("serves");
    let second = also.local_addr();
    let name = "kube-dns.default.svc.cluster.local.";
    until_resolvable(second, name, RecordType::A).await;
    for transport in [Transport::Udp, Transport::Tcp] {
        let first = ask(dns.local_addr(), transport, name, RecordType::A).await;
        let again = ask(second, transport, name, RecordType::A).await;
        assert_eq!(addresses(&first), ["10.96.0.10"]);
        assert_eq!(addresses(&again), addresses(&first));
    }
    also_trigger.fire();
    also.stopped().await;
    trigger.fire();
    dns.stopped().await;
}
