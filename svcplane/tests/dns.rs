//! Cluster DNS as a user meets it: `svcplane up` serves it on `--dns-listen` and prints a dig
//! line; `svcplane dns --kubeconfig` serves the same records for any cluster; bad flags and busy
//! ports are one-line errors.

#[path = "common/up_process.rs"]
mod up_process;

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dns::probe::{ProbeQuery, Transport, probe};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RData, RecordType};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams, PostParams};

use up_process::spawn_up;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The A/AAAA addresses `name` resolves to at `server` (empty until it does).
async fn resolve(server: SocketAddr, transport: Transport, name: &str) -> Vec<String> {
    let query = ProbeQuery::new(Name::from_ascii(name).unwrap(), RecordType::A);
    match probe(server, transport, &query, Duration::from_secs(2)).await {
        Ok(m) if m.metadata.response_code == ResponseCode::NoError => m
            .answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::A(a) => Some(a.0.to_string()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

async fn eventually_resolves(server: SocketAddr, name: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    for transport in [Transport::Udp, Transport::Tcp] {
        loop {
            let got = resolve(server, transport, name).await;
            if got == [want] {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{name} over {transport:?}: {got:?}, want {want}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn create_web(client: kube::Client) -> String {
    let services: Api<Service> = Api::default_namespaced(client);
    let web: Service = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80}]}
    }))
    .unwrap();
    let created = services.create(&PostParams::default(), &web).await.unwrap();
    created.spec.unwrap().cluster_ip.unwrap()
}

/// A port free on both UDP and TCP (the server takes both).
fn free_dns_port() -> u16 {
    loop {
        let port = free_port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

#[tokio::test]
async fn up_serves_cluster_dns_and_svcplane_dns_serves_the_same_for_its_kubeconfig() {
    let dir = tempfile::tempdir().unwrap();
    let dns_port = free_dns_port();
    let mut up = spawn_up(
        dir.path(),
        free_port(),
        &[
            "--nodes",
            "1",
            "--dns-listen",
            &format!("127.0.0.1:{dns_port}"),
        ],
    );
    let client = up.client().await;
    let cluster_ip = create_web(client).await;
    let server: SocketAddr = ([127, 0, 0, 1], dns_port).into();
    eventually_resolves(server, "web.default.svc.cluster.local.", &cluster_ip).await;

    // `svcplane dns` against the playground, with its own zone.
    let standalone_port = free_dns_port();
    let mut standalone = Command::new(env!("CARGO_BIN_EXE_svcplane"))
        .arg("dns")
        .arg("--kubeconfig")
        .arg(&up.kubeconfig)
        .args(["--listen", &format!("127.0.0.1:{standalone_port}")])
        .args(["--zone", "example.internal", "--ttl", "30"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let standalone_addr: SocketAddr = ([127, 0, 0, 1], standalone_port).into();
    eventually_resolves(
        standalone_addr,
        "web.default.svc.example.internal.",
        &cluster_ip,
    )
    .await;
    let query = ProbeQuery::new(
        Name::from_ascii("web.default.svc.example.internal.").unwrap(),
        RecordType::A,
    );
    let answer = probe(
        standalone_addr,
        Transport::Udp,
        &query,
        Duration::from_secs(2),
    )
    .await
    .unwrap();
    assert_eq!(answer.answers[0].ttl, 30);
    Command::new("kill")
        .args(["-TERM", &standalone.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while standalone.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "svcplane dns ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = standalone.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "dig @127.0.0.1 -p {standalone_port} web.default.svc.example.internal"
        )),
        "{stdout}"
    );

    let out = up.terminate();
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "dig @127.0.0.1 -p {dns_port} web.default.svc.cluster.local"
        )),
        "{stdout}"
    );
}

#[test]
fn bad_dns_flags_are_one_line_errors() {
    for (args, want) in [
        (
            vec!["dns", "--zone", "a..b"],
            "error: invalid value 'a..b' for '--zone <ZONE>': invalid zone \"a..b\": labels must be non-empty and made of letters, digits and '-'",
        ),
        (
            vec!["dns", "--ttl", "3601"],
            "error: invalid value '3601' for '--ttl <TTL>': 3601 is not in 0..=3600",
        ),
        (
            vec!["up", "--dns-listen", "localhost"],
            "error: invalid value 'localhost' for '--dns-listen <DNS_LISTEN>': invalid socket address syntax",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_svcplane"))
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().next(), Some(want), "{args:?}: {stderr}");
    }
}

#[test]
fn a_busy_dns_port_names_the_flag() {
    let busy = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_svcplane"))
        .args(["up", "--listen", "127.0.0.1:0", "--nodes", "1"])
        .args(["--dns-listen", &addr.to_string()])
        .arg("--kubeconfig-out")
        .arg(dir.path().join("kubeconfig"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let want = format!(
        "svcplane: cannot start dns: cannot listen on {addr} (the address is already in use); choose another address with --dns-listen"
    );
    assert_eq!(
        stderr
            .lines()
            .filter(|l| l.contains("cannot listen"))
            .collect::<Vec<_>>(),
        [want.as_str()],
        "{stderr}"
    );
    assert!(!dir.path().join("kubeconfig").exists());
}

/// The answer section of `name qtype` at `server`, as (type, data) text pairs, with the rcode.
async fn ask(server: SocketAddr, name: &str, qtype: RecordType) -> (ResponseCode, Vec<String>) {
    let query = ProbeQuery::new(Name::from_ascii(name).unwrap(), qtype);
    match probe(server, Transport::Udp, &query, Duration::from_secs(2)).await {
        Ok(m) => (
            m.metadata.response_code,
            m.answers
                .iter()
                .map(|r| format!("{} {}", r.record_type(), r.data))
                .collect(),
        ),
        Err(_) => (ResponseCode::ServFail, Vec::new()),
    }
}

/// Asks until the answer is `want` (sorted), or fails after 20 s saying what came back.
async fn eventually_answers(
    server: SocketAddr,
    name: &str,
    qtype: RecordType,
    want: (ResponseCode, Vec<String>),
) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (rcode, mut answers) = ask(server, name, qtype).await;
        answers.sort();
        if (rcode, &answers) == (want.0, &want.1) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} {qtype}: {rcode} {answers:?}, want {} {:?}",
            want.0,
            want.1
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The README's promise: `svcplane up`, `kubectl apply -f examples/playground.yaml`, then DNS
/// answers for every Service there as the DNS specification says, with the values the API
/// shows (ClusterIPs, ready endpoint addresses, the external name, the ports).
#[tokio::test]
async fn every_playground_service_answers_as_the_specification_says() {
    let dir = tempfile::tempdir().unwrap();
    let dns_port = free_dns_port();
    let mut up = spawn_up(
        dir.path(),
        free_port(),
        &["--dns-listen", &format!("127.0.0.1:{dns_port}")],
    );
    let client = up.client().await;
    let server: SocketAddr = ([127, 0, 0, 1], dns_port).into();
    let playground = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/playground.yaml");
    let applied = Command::new("kubectl")
        .arg("apply")
        .arg("-f")
        .arg(&playground)
        .env("KUBECONFIG", &up.kubeconfig)
        .output()
        .expect("kubectl on PATH");
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );

    let text = std::fs::read_to_string(&playground).unwrap();
    let names: Vec<String> = manifests::documents(&text)
        .unwrap()
        .iter()
        .filter(|o| o["kind"] == "Service")
        .map(|o| o["metadata"]["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(names.len() >= 7, "{names:?}");
    let services: Api<Service> = Api::default_namespaced(client.clone());
    let slices: Api<EndpointSlice> = Api::default_namespaced(client.clone());
    for name in &names {
        let service = services.get(name).await.unwrap();
        let spec = service.spec.clone().unwrap();
        let fqdn = format!("{name}.default.svc.cluster.local.");
        if spec.type_.as_deref() == Some("ExternalName") {
            let target = format!("CNAME {}.", spec.external_name.unwrap());
            eventually_answers(
                server,
                &fqdn,
                RecordType::A,
                (ResponseCode::NoError, vec![target]),
            )
            .await;
            continue;
        }
        let cluster_ip = spec.cluster_ip.clone().unwrap();
        if cluster_ip == "None" {
            // Headless: one A per ready endpoint, once the pods are Ready.
            let ready = eventually_ready_addresses(&slices, name).await;
            let want = ready.iter().map(|ip| format!("A {ip}")).collect();
            eventually_answers(server, &fqdn, RecordType::A, (ResponseCode::NoError, want)).await;
        } else {
            let want = vec![format!("A {cluster_ip}")];
            eventually_answers(server, &fqdn, RecordType::A, (ResponseCode::NoError, want)).await;
            let reverse = format!(
                "{}.in-addr.arpa.",
                cluster_ip.split('.').rev().collect::<Vec<_>>().join(".")
            );
            let want = vec![format!("PTR {fqdn}")];
            eventually_answers(
                server,
                &reverse,
                RecordType::PTR,
                (ResponseCode::NoError, want),
            )
            .await;
            // A ClusterIP Service has no AAAA here (single-stack IPv4): NODATA, not NXDOMAIN.
            eventually_answers(
                server,
                &fqdn,
                RecordType::AAAA,
                (ResponseCode::NoError, vec![]),
            )
            .await;
        }
        for port in spec.ports.unwrap_or_default() {
            let Some(port_name) = port.name else { continue };
            let protocol = port.protocol.unwrap_or_else(|| "TCP".into()).to_lowercase();
            let srv = format!("_{port_name}._{protocol}.{fqdn}");
            let want = vec![format!("SRV 0 100 {} {fqdn}", port.port)];
            eventually_answers(server, &srv, RecordType::SRV, (ResponseCode::NoError, want)).await;
        }
    }
    eventually_answers(
        server,
        "nope.default.svc.cluster.local.",
        RecordType::A,
        (ResponseCode::NXDomain, vec![]),
    )
    .await;
    let out = up.terminate();
    assert_eq!(out.status.code(), Some(0));
}

/// The ready addresses of `service`'s EndpointSlices once there are some, sorted.
async fn eventually_ready_addresses(slices: &Api<EndpointSlice>, service: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let list = slices
            .list(&ListParams::default().labels(&format!("kubernetes.io/service-name={service}")))
            .await
            .unwrap();
        let mut ready: Vec<String> = list
            .items
            .iter()
            .flat_map(|s| s.endpoints.iter())
            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
            .flat_map(|e| e.addresses.clone())
            .collect();
        ready.sort();
        if !ready.is_empty() {
            return ready;
        }
        assert!(
            Instant::now() < deadline,
            "no ready endpoints for {service}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
