//! Packets through the rules: a "node" namespace (also the client) holds the proxy's table, an
//! "endpoint" namespace joined to it by a veth pair runs an HTTP server. A ClusterIP reaches the
//! endpoint through the nat output hook's DNAT; a Service without endpoints is rejected
//! (connection refused); a port the ClusterIP does not serve is rejected too, and an unallocated
//! address of the ServiceCIDR dropped. All addresses live only inside the two namespaces.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use proxy::{IpFamily, NftRunner, RulesConfig, SyncState, desired_ruleset};
use serde_json::json;

/// The HTTP server in the endpoint namespace, killed (by its pid) on drop.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn service(name: &str, ip: &str) -> Service {
    serde_json::from_value(json!({
        "metadata": {"namespace": "default", "name": name},
        "spec": {"clusterIP": ip, "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}
    }))
    .unwrap()
}

fn slice(service: &str, ip: &str) -> EndpointSlice {
    serde_json::from_value(json!({
        "metadata": {"namespace": "default", "name": format!("{service}-abc"),
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [ip]}],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]
    }))
    .unwrap()
}

/// curl inside `ns`: (exit code, stdout, stderr).
fn curl(ns: &common::Netns, url: &str) -> (i32, String, String) {
    curl_within(ns, url, "5")
}

fn curl_within(ns: &common::Netns, url: &str, seconds: &str) -> (i32, String, String) {
    let out = ns.exec(&["curl", "-sS", "--max-time", seconds, url]);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn cluster_ip_traffic_reaches_the_endpoint_and_no_endpoints_is_refused() {
    if !common::netns_available(
        "cluster_ip_traffic_reaches_the_endpoint_and_no_endpoints_is_refused",
    ) {
        return;
    }
    let node = common::Netns::create("tnode");
    let pod = common::Netns::create("tpod");
    // veth names are at most 15 characters: unique per process.
    let pid = std::process::id() % 100_000;
    let (host_if, pod_if) = (format!("pxh{pid}"), format!("pxp{pid}"));
    common::ip(&[
        "link", "add", &host_if, "netns", &node.name, "type", "veth", "peer", "name", &pod_if,
        "netns", &pod.name,
    ]);
    node.exec_ok(&["ip", "addr", "add", "10.244.0.1/24", "dev", &host_if]);
    node.exec_ok(&["ip", "link", "set", &host_if, "up"]);
    // Locally generated packets need a route before the nat output hook rewrites them.
    node.exec_ok(&["ip", "route", "add", "default", "dev", &host_if]);
    pod.exec_ok(&["ip", "addr", "add", "10.244.0.2/24", "dev", &pod_if]);
    pod.exec_ok(&["ip", "link", "set", &pod_if, "up"]);
    pod.exec_ok(&["ip", "route", "add", "default", "via", "10.244.0.1"]);

    // A minimal server (http.server would first look up its address's name, which hangs
    // without DNS in a namespace): it answers with the client address it sees.
    let program = r#"
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('10.244.0.2', 8080))
s.listen()
while True:
    c, a = s.accept()
    c.recv(65536)
    body = ('served-by-endpoint client=' + a[0]).encode()
    c.sendall(b'HTTP/1.0 200 OK\r\nContent-Length: ' + str(len(body)).encode() + b'\r\n\r\n' + body)
    c.close()
"#;
    let _server = Server(
        Command::new("ip")
            .args(["netns", "exec", &pod.name, "python3", "-c", program])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 starts"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while curl(&node, "http://10.244.0.2:8080/").0 != 0 {
        assert!(
            Instant::now() < deadline,
            "the endpoint's server never answered"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let mut cfg = RulesConfig::new("node-a", vec!["10.244.0.1".parse().unwrap()]);
    cfg.cluster_cidrs = vec!["10.244.0.0/16".parse().unwrap()];
    cfg.service_cidrs = vec!["10.96.0.0/12".parse().unwrap()];
    let services = vec![service("web", "10.96.0.10"), service("empty", "10.96.0.11")];
    let slices = vec![slice("web", "10.244.0.2")];
    let runner = NftRunner::in_netns(&node.name);
    let plan = SyncState::new(IpFamily::V4).plan(
        &desired_ruleset(&cfg, &services, &slices),
        None,
        Instant::now(),
    );
    runner.apply(&plan.transaction).await.expect("rules apply");

    let (code, body, err) = curl(&node, "http://10.96.0.10/");
    assert_eq!(code, 0, "ClusterIP traffic reaches the endpoint: {err}");
    assert_eq!(
        body, "served-by-endpoint client=10.244.0.1",
        "a pod-network source is not masqueraded"
    );

    let (code, _, err) = curl(&node, "http://10.96.0.11/");
    assert_eq!(
        code, 7,
        "a Service without endpoints is refused at once: {err}"
    );
    assert!(
        err.contains("refused") || err.contains("Couldn't connect"),
        "{err}"
    );

    let (code, _, err) = curl(&node, "http://10.96.0.10:81/");
    assert_eq!(
        code, 7,
        "a port the ClusterIP does not serve is rejected: {err}"
    );

    let (code, _, err) = curl_within(&node, "http://10.96.0.99/", "1");
    assert_eq!(
        code, 28,
        "an unallocated ClusterIP in the ServiceCIDR is dropped: {err}"
    );
}
