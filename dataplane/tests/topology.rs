//! The namespaces alone (no API): two nodes, three pods; pod to pod on one node and across
//! nodes, node to pod, TCP and UDP, without SNAT; everything gone afterwards. Needs root and
//! network namespaces (skipped otherwise, failing under CI=true).

mod support;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use dataplane::pods::{ContainerPlan, NodePlan, PodPlan, Protocol};
use dataplane::{DataPlaneConfig, Sandboxes, in_netns_async};
use support::{curl_in, host_or_skip, namespaces_with, root_links, run_in};

fn node(name: &str, n: u8) -> NodePlan {
    NodePlan {
        name: name.into(),
        ip: Ipv4Addr::new(172, 18, 0, n + 1),
        pod_cidr: format!("10.244.{n}.0/24").parse().unwrap(),
    }
}

fn pod(name: &str, node: &str, ip: [u8; 4]) -> PodPlan {
    PodPlan {
        namespace: "default".into(),
        name: name.into(),
        uid: format!("uid-{name}"),
        node: node.into(),
        ip: Ipv4Addr::from(ip),
        containers: vec![ContainerPlan {
            name: "kubia".into(),
            ports: vec![(8080, Protocol::Tcp), (5353, Protocol::Udp)],
            readiness: None,
        }],
    }
}

/// Sends `text` to `target` over UDP from inside `ns` and returns the answer.
async fn udp_from(ns: &str, target: SocketAddr) -> String {
    in_netns_async(ns, move || {
        let socket = UdpSocket::bind("0.0.0.0:0")?;
        socket.set_read_timeout(Some(Duration::from_secs(5)))?;
        socket.send_to(b"hello", target)?;
        let mut buf = [0u8; 1024];
        let (n, _) = socket.recv_from(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_reach_pods_on_their_node_and_across_nodes_without_snat_and_all_is_removed() {
    if !host_or_skip("topology") {
        return;
    }
    let links_before = root_links();
    let sandboxes = Sandboxes::start(DataPlaneConfig::default(), None)
        .await
        .unwrap();
    let prefix = sandboxes.names().prefix().to_string();
    sandboxes.add_node(&node("node-1", 1)).await.unwrap();
    sandboxes.add_node(&node("node-2", 2)).await.unwrap();
    let (a, b, c) = (
        pod("a", "node-1", [10, 244, 1, 2]),
        pod("b", "node-1", [10, 244, 1, 3]),
        pod("c", "node-2", [10, 244, 2, 2]),
    );
    for p in [&a, &b, &c] {
        sandboxes.add_pod(p).await.unwrap();
    }
    let (a_ns, _) = sandboxes.pod_namespace("default", "a").unwrap();
    let node2_ns = sandboxes.node_namespace("node-2").unwrap();

    // The pod's own view: its IP alone on eth0, the default route via the link-local gateway.
    let addr = run_in(&a_ns, &["ip", "-4", "-o", "addr", "show", "eth0"]);
    assert!(addr.contains("10.244.1.2/32"), "{addr}");
    let routes = run_in(&a_ns, &["ip", "route"]);
    assert!(
        routes.contains("default via 169.254.1.1 dev eth0"),
        "{routes}"
    );

    // Same node.
    let same = curl_in(&a_ns, "http://10.244.1.3:8080/");
    assert_eq!(
        same,
        "You've hit b\nclient address: 10.244.1.2:".to_string() + port_of(&same) + "\n"
    );
    // Across nodes: the client address is still A's pod IP (no SNAT on the way).
    let across = curl_in(&a_ns, "http://10.244.2.2:8080/some/path");
    assert!(
        across.starts_with("You've hit c\nclient address: 10.244.1.2:"),
        "{across}"
    );
    // From a node to a pod on another node: the node's own IP.
    let from_node = curl_in(&node2_ns, "http://10.244.1.2:8080/");
    assert!(
        from_node.starts_with("You've hit a\nclient address: 172.18.0.3:"),
        "{from_node}"
    );
    // UDP, across nodes.
    let udp = udp_from(&a_ns, "10.244.2.2:5353".parse().unwrap()).await;
    assert!(
        udp.starts_with("You've hit c\nclient address: 10.244.1.2:"),
        "{udp}"
    );

    // A pod reaching itself through a "Service" (a DNAT in its node's namespace, as kube-proxy
    // writes it) comes back through the node's netfilter hooks: hairpin works without
    // br_netfilter, masqueraded to the node's address as kube-proxy's hairpin rule does.
    let node1 = sandboxes.node_namespace("node-1").unwrap();
    let rules = "table ip svc {
        chain pre { type nat hook prerouting priority dstnat; ip daddr 10.96.0.50 tcp dport 80 dnat to 10.244.1.2:8080; }
        chain post { type nat hook postrouting priority srcnat; ip saddr 10.244.1.2 ip daddr 10.244.1.2 masquerade; }
    }";
    let mut nft = dataplane::netns_exec_command(&node1, &["nft".into(), "-f".into(), "-".into()]);
    nft.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = nft.spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), rules.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "nft: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hairpin = curl_in(&a_ns, "http://10.96.0.50/");
    assert!(
        hairpin.starts_with("You've hit a\nclient address: 172.18.0.2:"),
        "{hairpin}"
    );
    let (b_ns, _) = sandboxes.pod_namespace("default", "b").unwrap();
    let via_service = curl_in(&b_ns, "http://10.96.0.50/");
    assert!(
        via_service.starts_with("You've hit a\nclient address: 10.244.1.3:"),
        "{via_service}"
    );

    // A removed pod's namespace is gone, and with it (nothing holds it any more) its veth: the
    // node side disappears from the node's namespace.
    let veths = |ns: &str| -> Vec<String> {
        run_in(ns, &["ip", "-o", "link"])
            .lines()
            .filter_map(|l| l.split(':').nth(1))
            .map(|n| n.trim().split('@').next().unwrap_or_default().to_string())
            .filter(|n| n.starts_with("veth"))
            .collect()
    };
    assert_eq!(veths(&node1).len(), 2);
    sandboxes.remove_pod(&b.key()).await.unwrap();
    support::eventually(10, "b's veth gone from node-1", || {
        (veths(&node1).len() == 1).then_some(())
    })
    .await;
    assert!(sandboxes.pod_namespace("default", "b").is_none());
    assert!(!namespaces_with(&prefix).iter().any(|n| n.ends_with("_b")));

    sandboxes.shutdown().await.unwrap();
    assert_eq!(namespaces_with(&prefix), Vec::<String>::new());
    assert!(!std::path::Path::new("/etc/netns").join(&a_ns).exists());
    assert_eq!(
        root_links(),
        links_before,
        "nothing was added to the root namespace"
    );
}

fn port_of(greeting: &str) -> &str {
    greeting
        .lines()
        .nth(1)
        .and_then(|l| l.rsplit(':').next())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leftovers_of_a_dead_process_are_removed_and_live_ones_kept() {
    if !host_or_skip("leftovers") {
        return;
    }
    // No process has this id (above the kernel's pid_max limit of 2^22).
    let dead = "svp-999999999-0-fabric";
    let live = format!("svp-{}-999-fabric", std::process::id());
    dataplane::netns::create_netns(dead).unwrap();
    dataplane::netns::create_netns(&live).unwrap();
    dataplane::netns::write_resolv_conf(dead, "nameserver 10.96.0.10\n").unwrap();
    let removed = dataplane::remove_leftovers().unwrap();
    assert!(removed.contains(&dead.to_string()), "{removed:?}");
    assert!(namespaces_with(dead).is_empty());
    assert!(!dataplane::netns::etc_dir(dead).exists());
    assert_eq!(namespaces_with(&live), vec![live.clone()]);
    dataplane::netns::delete_netns(&live).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_data_plane_removes_its_namespaces() {
    if !host_or_skip("dropped") {
        return;
    }
    let sandboxes = Sandboxes::start(DataPlaneConfig::default(), None)
        .await
        .unwrap();
    let prefix = sandboxes.names().prefix().to_string();
    sandboxes.add_node(&node("node-1", 1)).await.unwrap();
    sandboxes
        .add_pod(&pod("a", "node-1", [10, 244, 1, 2]))
        .await
        .unwrap();
    assert_eq!(namespaces_with(&prefix).len(), 3);
    drop(sandboxes);
    assert_eq!(namespaces_with(&prefix), Vec::<String>::new());
    assert!(!dataplane::netns::etc_dir(&format!("{prefix}p-default_a")).exists());
}
