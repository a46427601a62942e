//! `svcplane up --data-plane`: the playground's pods as network namespaces (the `dataplane`
//! crate), serving `kubectl exec` and `kubectl logs` through the embedded API server, with
//! cluster DNS answering inside the cluster the way kubeadm lays it out: a `kube-system/kube-dns`
//! Service on the tenth address of the Service range, backed by a pod whose namespace svcplane's
//! DNS server listens in.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use dataplane::{DataPlane, DataPlaneConfig};
use ipnet::IpNet;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use testenv::nodesim::ReadinessReporter;

use crate::component::{Component, Shutdown};

/// Where the data plane records a Node's network namespace, for `svcplane node-exec`.
pub const NODE_NAMESPACE_ANNOTATION: &str = "dataplane.svcplane.io/network-namespace";

/// The namespace and name of the cluster DNS Service and of the pod behind it.
const DNS_NAMESPACE: &str = "kube-system";
const DNS_SERVICE: &str = "kube-dns";
const DNS_POD: &str = "cluster-dns";

/// How often the data plane is asked whether a namespace it makes exists yet.
const POLL: Duration = Duration::from_millis(20);

/// Least time between two syncs of a node's proxy.
const PROXY_MIN_SYNC_PERIOD: Duration = Duration::from_millis(10);

/// The field manager of the data plane's writes.
const FIELD_MANAGER: &str = "svcplane-data-plane";

/// What the data plane component is handed by the components started before it.
pub struct DataPlaneSetup {
    /// The embedded API server, which serves exec and logs through the data plane.
    pub server: Arc<testenv::ApiServer>,
    /// The node simulator's readiness reporter (probes run by the data plane drive Ready).
    pub readiness: Arc<OnceLock<ReadinessReporter>>,
    /// What cluster DNS answers from (served again inside the cluster DNS pod).
    pub dns_records: Arc<OnceLock<dns::DnsRecords>>,
    /// The cluster DNS Service's ClusterIP (pods' nameserver).
    pub dns_ip: IpAddr,
    /// The Nodes the simulator registers.
    pub nodes: Vec<String>,
    /// The pod network (kube-proxy's `--cluster-cidr`): traffic from outside it to a ClusterIP
    /// is masqueraded.
    pub cluster_cidr: IpNet,
    /// The LoadBalancer IP pool (CIDRs and first-last ranges): the fabric, the nodes' own
    /// network, routes it over every node, as a router would learn it from them.
    pub load_balancer_pool: Vec<String>,
}

/// The IPv4 networks of LoadBalancer pool entries (CIDRs, or `first-last` ranges split into
/// the CIDRs that cover them exactly); IPv6 and malformed entries are left out (pods are IPv4
/// only, and the controller refuses malformed entries at start).
pub fn pool_v4_networks(entries: &[String]) -> Vec<ipnet::Ipv4Net> {
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.trim();
        if let Ok(IpNet::V4(net)) = entry.parse::<IpNet>() {
            out.push(net.trunc());
        } else if let Some((first, last)) = entry.split_once('-')
            && let (Ok(first), Ok(last)) = (
                first.trim().parse::<Ipv4Addr>(),
                last.trim().parse::<Ipv4Addr>(),
            )
        {
            out.extend(ipnet::Ipv4Subnets::new(first, last, 0));
        }
    }
    out
}

/// The smallest network holding every one of `nets` (all of one family), e.g. 10.244.0.0/16
/// for the nodes' 10.244.N.0/24 pod CIDRs with N < 256; `None` for none or mixed families.
pub fn covering_network(nets: &[IpNet]) -> Option<IpNet> {
    let first = *nets.first()?;
    (0..=first.prefix_len()).rev().find_map(|len| {
        let candidate = IpNet::new(first.addr(), len).ok()?.trunc();
        nets.iter()
            .all(|n| candidate.contains(n))
            .then_some(candidate)
    })
}

/// The tenth address of the first Service range, where kubeadm puts the cluster DNS Service
/// (10.96.0.10 for 10.96.0.0/12); `None` for a range too small to hold it.
pub fn cluster_dns_ip(range: IpNet) -> Option<IpAddr> {
    let ip = match range {
        IpNet::V4(net) => IpAddr::V4(Ipv4Addr::from(u32::from(net.network()).checked_add(10)?)),
        IpNet::V6(net) => IpAddr::V6(Ipv6Addr::from(u128::from(net.network()).checked_add(10)?)),
    };
    (range.contains(&ip) && ip != range.broadcast()).then_some(ip)
}

/// The `kube-system/kube-dns` Service, as kubeadm creates it for CoreDNS.
fn dns_service(ip: IpAddr) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": DNS_SERVICE, "namespace": DNS_NAMESPACE,
                     "labels": {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"}},
        "spec": {
            "clusterIP": ip.to_string(),
            "selector": {"k8s-app": "kube-dns"},
            "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53}
            ]
        }
    }))
    .unwrap_or_default()
}

/// The pod behind it. It declares no container ports, so the data plane's stand-in server
/// leaves port 53 to svcplane's DNS server; the image named is the one that would serve it in
/// a cluster (`svcplane dns`).
fn dns_pod() -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": DNS_POD, "namespace": DNS_NAMESPACE,
                     "labels": {"k8s-app": "kube-dns"}},
        "spec": {
            "containers": [{
                "name": "dns",
                "image": concat!("ghcr.io/svcplane/svcplane:", env!("CARGO_PKG_VERSION")),
                "args": ["dns"]
            }]
        }
    }))
    .unwrap_or_default()
}

/// Creates `object` unless one of its name exists (a `--data-dir` playground keeps them).
async fn create_unless_present<K>(api: &Api<K>, object: &K) -> Result<(), kube::Error>
where
    K: kube::Resource + Clone + std::fmt::Debug,
    K: k8s_openapi::serde::Serialize + k8s_openapi::serde::de::DeserializeOwned,
{
    match api.create(&PostParams::default(), object).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// The data plane as a component of `up`.
pub fn component(setup: DataPlaneSetup) -> Component {
    Component::new("data-plane", move |client, shutdown| async move {
        let readiness = setup.readiness.get().cloned();
        let config = DataPlaneConfig {
            nameservers: vec![setup.dns_ip],
            ..DataPlaneConfig::default()
        };
        let plane = DataPlane::start(client.clone(), config, readiness)
            .await
            .map_err(|e| anyhow::anyhow!("cannot start the data plane: {e}"))?;
        setup.server.set_container_runtime(plane.runtime());
        let plane = Arc::new(plane);

        let services: Api<Service> = Api::namespaced(client.clone(), DNS_NAMESPACE);
        let pods: Api<Pod> = Api::namespaced(client.clone(), DNS_NAMESPACE);
        if let Err(e) = create_unless_present(&services, &dns_service(setup.dns_ip)).await {
            tracing::warn!(error = %gocompat::api_error_text(&e), ip = %setup.dns_ip,
                "cannot create the kube-dns Service: names do not resolve inside pods");
        }
        create_unless_present(&pods, &dns_pod())
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot create the cluster DNS pod: {}",
                    gocompat::api_error_text(&e)
                )
            })?;

        let mut tasks = tokio::task::JoinSet::new();
        if let Some(records) = setup.dns_records.get().cloned() {
            tasks.spawn(serve_cluster_dns(
                plane.clone(),
                pods.clone(),
                records,
                shutdown.clone(),
            ));
        }
        tasks.spawn(route_load_balancers(
            plane.clone(),
            Api::all(client.clone()),
            setup.nodes.clone(),
            pool_v4_networks(&setup.load_balancer_pool),
            shutdown.clone(),
        ));
        for node in setup.nodes {
            tasks.spawn(run_node(
                plane.clone(),
                client.clone(),
                node,
                setup.cluster_cidr,
                shutdown.clone(),
            ));
        }
        Ok(tokio::spawn(async move {
            shutdown.wait().await;
            tasks.shutdown().await;
            match Arc::try_unwrap(plane) {
                Ok(plane) => plane
                    .shutdown()
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot remove the data plane: {e}")),
                // A task still holds it: dropping the last handle removes the namespaces.
                Err(_) => Ok(()),
            }
        }))
    })
}

/// Waits until `ready` gives a value, polling; `None` once `shutdown` fires.
async fn wait_for<T>(shutdown: &Shutdown, mut ready: impl FnMut() -> Option<T>) -> Option<T> {
    loop {
        if let Some(value) = ready() {
            return Some(value);
        }
        tokio::select! {
            _ = shutdown.clone().wait() => return None,
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

/// Serves cluster DNS on port 53 inside the cluster DNS pod's namespace, once it exists.
async fn serve_cluster_dns(
    plane: Arc<DataPlane>,
    pods: Api<Pod>,
    records: dns::DnsRecords,
    shutdown: Shutdown,
) {
    let Some(netns) = wait_for(&shutdown, || plane.pod_namespace(DNS_NAMESPACE, DNS_POD)).await
    else {
        return;
    };
    let pod_ip = match pods.get(DNS_POD).await {
        Ok(pod) => pod
            .status
            .and_then(|s| s.pod_ip)
            .and_then(|ip| ip.parse::<IpAddr>().ok()),
        Err(e) => {
            tracing::warn!(error = %gocompat::api_error_text(&e), "cannot read the cluster DNS pod");
            None
        }
    };
    let Some(pod_ip) = pod_ip else {
        tracing::warn!("the cluster DNS pod has no IP: names do not resolve inside pods");
        return;
    };
    let listen = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 53));
    let sockets = async {
        let udp = dataplane::bind_udp(&netns, listen).await?;
        let tcp = dataplane::bind_tcp(&netns, listen).await?;
        std::io::Result::Ok((udp, tcp))
    };
    let (udp, tcp) = match sockets.await {
        Ok(sockets) => sockets,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen on port 53 in the cluster DNS pod");
            return;
        }
    };
    match records.serve_on(udp, tcp, pod_ip, shutdown) {
        Ok(server) => {
            tracing::info!(pod_ip = %pod_ip, "cluster DNS serving inside the cluster");
            server.stopped().await;
        }
        Err(e) => tracing::warn!(error = %e, "cannot serve cluster DNS in its pod"),
    }
}

/// Routes the LoadBalancer pool from the fabric over every node once all exist, so that a
/// client outside the nodes (in the fabric's namespace) reaches LoadBalancer IPs; each node's
/// proxy answers them.
async fn route_load_balancers(
    plane: Arc<DataPlane>,
    nodes: Api<Node>,
    names: Vec<String>,
    pool: Vec<ipnet::Ipv4Net>,
    shutdown: Shutdown,
) {
    let all_made = || {
        names
            .iter()
            .all(|n| plane.node_namespace(n).is_some())
            .then_some(())
    };
    if pool.is_empty() || wait_for(&shutdown, all_made).await.is_none() {
        return;
    }
    let mut node_ips = Vec::new();
    for name in &names {
        match nodes.get(name).await {
            Ok(node) => node_ips.extend(
                proxy::node_addresses::node_host_ips(&node)
                    .into_iter()
                    .filter_map(|ip| match ip {
                        IpAddr::V4(v4) => Some(v4),
                        IpAddr::V6(_) => None,
                    }),
            ),
            Err(e) => {
                tracing::warn!(node = %name, error = %gocompat::api_error_text(&e), "cannot read the node: LoadBalancer IPs are not routed to it");
            }
        }
    }
    let fabric = plane.fabric_namespace();
    for net in pool {
        if let Err(e) = dataplane::topology::route_multipath(&fabric, net, &node_ips).await {
            tracing::warn!(%net, error = %e, "cannot route LoadBalancer IPs from outside the nodes");
        }
    }
}

/// Node `node`'s share of the data plane, once its namespace exists: its namespace recorded on
/// the Node object (for `svcplane node-exec`), and its kube-proxy, programming the node's
/// namespace from the EndpointSlice API until shutdown.
async fn run_node(
    plane: Arc<DataPlane>,
    client: kube::Client,
    node: String,
    cluster_cidr: IpNet,
    shutdown: Shutdown,
) {
    let Some(netns) = wait_for(&shutdown, || plane.node_namespace(&node)).await else {
        return;
    };
    let nodes: Api<Node> = Api::all(client.clone());
    let patch = json!({"metadata": {"annotations": {NODE_NAMESPACE_ANNOTATION: netns}}});
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    let node_ips = match nodes.patch(&node, &params, &Patch::Merge(&patch)).await {
        Ok(object) => proxy::node_addresses::node_host_ips(&object),
        Err(e) => {
            tracing::warn!(node, error = %gocompat::api_error_text(&e), "cannot annotate the node; its proxy does not run");
            return;
        }
    };
    let mut rules = proxy::RulesConfig::new(node.clone(), node_ips);
    rules.cluster_cidrs = vec![cluster_cidr];
    let mut config = proxy::ProxyConfig::new(rules);
    // Upstream's 1 s between syncs protects a node with thousands of Services; a playground's
    // few hundred sync in milliseconds, and its pods should be reachable as soon as they are
    // Ready (network programming latency, docs/data-plane.md). Bursts still coalesce.
    config.min_sync_period = PROXY_MIN_SYNC_PERIOD;
    // Pods are IPv4 only (docs/data-plane.md).
    config.families = vec![proxy::IpFamily::V4];
    config.runner = proxy::NftRunner::in_netns(netns.clone());
    // Health checks answer on the node's addresses, inside its namespace.
    config.listener_factory = dataplane::tcp_listener_factory(&netns);
    if let Err(e) = proxy::run(client, config, shutdown.wait()).await {
        tracing::warn!(node, error = %e, "the node's proxy stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_dns_sits_on_the_tenth_address_as_kubeadm_puts_it() {
        let ip = |s: &str| cluster_dns_ip(s.parse().unwrap()).map(|ip| ip.to_string());
        assert_eq!(ip("10.96.0.0/12").as_deref(), Some("10.96.0.10"));
        assert_eq!(ip("10.0.0.0/24").as_deref(), Some("10.0.0.10"));
        assert_eq!(ip("fd00:10:96::/112").as_deref(), Some("fd00:10:96::a"));
        assert_eq!(ip("10.0.0.0/29"), None);
        assert_eq!(ip("10.0.0.0/28").as_deref(), Some("10.0.0.10"));
    }

    #[test]
    fn the_cluster_cidr_covers_every_nodes_pod_cidr() {
        let nets = |v: &[&str]| v.iter().map(|s| s.parse().unwrap()).collect::<Vec<IpNet>>();
        let cover = |v: &[&str]| covering_network(&nets(v)).map(|n| n.to_string());
        assert_eq!(
            cover(&["10.244.1.0/24", "10.244.2.0/24", "10.244.3.0/24"]).as_deref(),
            Some("10.244.0.0/22")
        );
        assert_eq!(cover(&["10.244.1.0/24"]).as_deref(), Some("10.244.1.0/24"));
        assert_eq!(
            cover(&["10.244.1.0/24", "10.245.0.0/24"]).as_deref(),
            Some("10.244.0.0/15")
        );
        assert_eq!(cover(&[]), None);
        assert_eq!(cover(&["10.244.1.0/24", "fd00::/64"]), None);
    }

    #[test]
    fn pool_entries_become_the_networks_routed_to_the_nodes() {
        let entries: Vec<String> = [
            "198.18.100.0/24",
            "2001:db8::/120",
            "192.0.2.10-192.0.2.13",
            "bogus",
        ]
        .map(String::from)
        .to_vec();
        let nets: Vec<String> = pool_v4_networks(&entries)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(nets, ["198.18.100.0/24", "192.0.2.10/31", "192.0.2.12/31"]);
    }

    #[test]
    fn the_dns_objects_are_kubeadms() {
        let svc = dns_service("10.96.0.10".parse().unwrap());
        let spec = svc.spec.unwrap();
        assert_eq!(spec.cluster_ip.as_deref(), Some("10.96.0.10"));
        let ports: Vec<_> = spec
            .ports
            .unwrap()
            .into_iter()
            .map(|p| (p.name.unwrap(), p.port, p.protocol.unwrap()))
            .collect();
        assert_eq!(
            ports,
            [
                ("dns".to_owned(), 53, "UDP".to_owned()),
                ("dns-tcp".to_owned(), 53, "TCP".to_owned())
            ]
        );
        let pod = dns_pod();
        assert_eq!(pod.metadata.labels.unwrap()["k8s-app"], "kube-dns");
        assert!(pod.spec.unwrap().containers[0].ports.is_none());
    }
}
