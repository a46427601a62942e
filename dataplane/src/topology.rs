//! The links, addresses and routes that join the namespaces, made over netlink (rtnetlink) from
//! a socket opened inside each namespace. See docs/data-plane.md for the picture.
//!
//! - the fabric: a bridge (`br0`) carrying the gateway of the node network;
//! - a node: `eth0` (a veth whose peer is a port of the bridge) with the node's InternalIP,
//!   a default route via the fabric's gateway, routes to every other node's pod CIDR via that
//!   node's IP, and `ip_forward` on;
//! - a pod: `eth0` (a veth whose peer `vethN` stays in the node's namespace) with the pod IP as a
//!   /32 and a default route via 169.254.1.1, which the node answers for by proxy ARP; the node
//!   routes `podIP/32 dev vethN`. Routed, not bridged: a pod that reaches itself through a
//!   Service (hairpin) passes through the node's netfilter hooks without br_netfilter.

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;

use futures::TryStreamExt;
use ipnet::Ipv4Net;
use rtnetlink::packet_route::link::{InfoData, InfoVeth};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteNextHop, RouteScope};
use rtnetlink::{
    Handle, LinkBridge, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder,
};

use crate::names::{FABRIC_BRIDGE, NODE_INTERFACE, POD_GATEWAY, POD_INTERFACE};
use crate::netns::{in_netns_async, netns_path, write_sysctl};

/// A netlink error in the words of the step that failed.
fn step_error(step: &str, e: rtnetlink::Error) -> io::Error {
    io::Error::other(format!("{step}: {e}"))
}

/// A netlink handle whose socket lives in namespace `ns`. The connection task ends when the
/// handle (and its clones) are dropped, releasing the socket and with it its hold on `ns`.
async fn netlink_in(ns: &str) -> io::Result<Handle> {
    let runtime = tokio::runtime::Handle::current();
    let (connection, handle, _) = in_netns_async(ns, move || {
        // The socket registers with this runtime's reactor from the namespace's thread.
        let _entered = runtime.enter();
        rtnetlink::new_connection()
    })
    .await?;
    tokio::spawn(connection);
    Ok(handle)
}

async fn link_index(handle: &Handle, name: &str) -> io::Result<u32> {
    let link = handle
        .link()
        .get()
        .match_name(name)
        .execute()
        .try_next()
        .await
        .map_err(|e| step_error(&format!("finding link {name}"), e))?;
    link.map(|l| l.header.index)
        .ok_or_else(|| io::Error::other(format!("link {name} not found")))
}

async fn set_up(handle: &Handle, name: &str) -> io::Result<()> {
    handle
        .link()
        .set(LinkUnspec::new_with_name(name).up().build())
        .execute()
        .await
        .map_err(|e| step_error(&format!("setting {name} up"), e))
}

/// Creates veth `name` in the handle's namespace with its peer `peer` directly in namespace
/// `peer_ns` (`ip link add NAME type veth peer name PEER netns PEER_NS`).
async fn add_veth(handle: &Handle, name: &str, peer: &str, peer_ns: &str) -> io::Result<()> {
    let peer_ns_file = std::fs::File::open(netns_path(peer_ns))?;
    let peer_message = LinkMessageBuilder::<LinkUnspec>::new()
        .name(peer.to_string())
        .setns_by_fd(peer_ns_file.as_raw_fd())
        .build();
    let message = LinkVeth::new(name, peer)
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_message)))
        .build();
    handle.link().add(message).execute().await.map_err(|e| {
        step_error(
            &format!("creating veth {name} (peer {peer} in {peer_ns})"),
            e,
        )
    })
}

async fn add_address(handle: &Handle, name: &str, ip: Ipv4Addr, prefix: u8) -> io::Result<()> {
    let index = link_index(handle, name).await?;
    handle
        .address()
        .add(index, IpAddr::V4(ip), prefix)
        .replace()
        .execute()
        .await
        .map_err(|e| step_error(&format!("adding {ip}/{prefix} to {name}"), e))
}

/// Makes the fabric: `br0`, up, holding the node network's gateway address.
pub async fn make_fabric(fabric_ns: &str, gateway: Ipv4Addr, prefix: u8) -> io::Result<()> {
    let h = netlink_in(fabric_ns).await?;
    set_up(&h, "lo").await?;
    h.link()
        .add(LinkBridge::new(FABRIC_BRIDGE).build())
        .execute()
        .await
        .map_err(|e| step_error("creating bridge br0", e))?;
    set_up(&h, FABRIC_BRIDGE).await?;
    add_address(&h, FABRIC_BRIDGE, gateway, prefix).await
}

/// Plugs node namespace `node_ns` into the fabric through bridge port `port`, with address
/// `ip/prefix` on its `eth0`, a default route via `gateway`, and forwarding on.
pub async fn make_node(
    node_ns: &str,
    fabric_ns: &str,
    port: &str,
    ip: Ipv4Addr,
    prefix: u8,
    gateway: Ipv4Addr,
) -> io::Result<()> {
    let node = netlink_in(node_ns).await?;
    set_up(&node, "lo").await?;
    add_veth(&node, NODE_INTERFACE, port, fabric_ns).await?;
    let fabric = netlink_in(fabric_ns).await?;
    let bridge = link_index(&fabric, FABRIC_BRIDGE).await?;
    fabric
        .link()
        .set(
            LinkUnspec::new_with_name(port)
                .controller(bridge)
                .up()
                .build(),
        )
        .execute()
        .await
        .map_err(|e| step_error(&format!("plugging {port} into br0"), e))?;
    set_up(&node, NODE_INTERFACE).await?;
    add_address(&node, NODE_INTERFACE, ip, prefix).await?;
    node.route()
        .add(
            RouteMessageBuilder::<Ipv4Addr>::new()
                .gateway(gateway)
                .build(),
        )
        .replace()
        .execute()
        .await
        .map_err(|e| step_error(&format!("default route via {gateway}"), e))?;
    in_netns_async(node_ns, || write_sysctl("net/ipv4/ip_forward", "1")).await
}

/// Routes `cidr` via `via` (another node's IP) in node namespace `node_ns`, replacing any
/// route to it.
pub async fn route_via(node_ns: &str, cidr: Ipv4Net, via: Ipv4Addr) -> io::Result<()> {
    let h = netlink_in(node_ns).await?;
    h.route()
        .add(
            RouteMessageBuilder::<Ipv4Addr>::new()
                .destination_prefix(cidr.network(), cidr.prefix_len())
                .gateway(via)
                .build(),
        )
        .replace()
        .execute()
        .await
        .map_err(|e| step_error(&format!("route {cidr} via {via}"), e))
}

/// Routes `cidr` in namespace `ns` over every one of `vias` (equal-cost multipath, as a router
/// learning a LoadBalancer range from every node by BGP would), replacing any route to it.
pub async fn route_multipath(ns: &str, cidr: Ipv4Net, vias: &[Ipv4Addr]) -> io::Result<()> {
    if vias.is_empty() {
        return Ok(());
    }
    let hops = vias
        .iter()
        .map(|via| {
            let mut hop = RouteNextHop::default();
            hop.attributes
                .push(RouteAttribute::Gateway(RouteAddress::Inet(*via)));
            hop
        })
        .collect();
    let h = netlink_in(ns).await?;
    h.route()
        .add(
            RouteMessageBuilder::<Ipv4Addr>::new()
                .destination_prefix(cidr.network(), cidr.prefix_len())
                .multipath(hops)
                .build(),
        )
        .replace()
        .execute()
        .await
        .map_err(|e| step_error(&format!("route {cidr} over {} nodes", vias.len()), e))
}

/// Removes the route to `cidr` via `via` from node namespace `node_ns` (absent is fine).
pub async fn remove_route(node_ns: &str, cidr: Ipv4Net, via: Ipv4Addr) -> io::Result<()> {
    let h = netlink_in(node_ns).await?;
    match h
        .route()
        .del(
            RouteMessageBuilder::<Ipv4Addr>::new()
                .destination_prefix(cidr.network(), cidr.prefix_len())
                .gateway(via)
                .build(),
        )
        .execute()
        .await
    {
        Ok(()) => Ok(()),
        // ESRCH: no such route.
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -3 => Ok(()),
        Err(e) => Err(step_error(&format!("removing route {cidr} via {via}"), e)),
    }
}

/// Joins pod namespace `pod_ns` to node namespace `node_ns`: the pod's `eth0` with `ip/32` and
/// a default route via 169.254.1.1; the node's `veth` with proxy ARP and `ip/32 dev veth`.
pub async fn make_pod(pod_ns: &str, node_ns: &str, veth: &str, ip: Ipv4Addr) -> io::Result<()> {
    let pod = netlink_in(pod_ns).await?;
    set_up(&pod, "lo").await?;
    add_veth(&pod, POD_INTERFACE, veth, node_ns).await?;

    // The node side first, so that the pod's first ARP request for the gateway is answered.
    let node = netlink_in(node_ns).await?;
    let veth_name = veth.to_string();
    in_netns_async(node_ns, move || {
        write_sysctl(&format!("net/ipv4/conf/{veth_name}/proxy_arp"), "1")?;
        // Answer at once rather than after the default random delay of up to 0.8 s.
        write_sysctl(&format!("net/ipv4/neigh/{veth_name}/proxy_delay"), "0")
    })
    .await?;
    set_up(&node, veth).await?;
    let veth_index = link_index(&node, veth).await?;
    node.route()
        .add(
            RouteMessageBuilder::<Ipv4Addr>::new()
                .destination_prefix(ip, 32)
                .output_interface(veth_index)
                .scope(RouteScope::Link)
                .build(),
        )
        .replace()
        .execute()
        .await
        .map_err(|e| step_error(&format!("route {ip}/32 dev {veth}"), e))?;

    set_up(&pod, POD_INTERFACE).await?;
    add_address(&pod, POD_INTERFACE, ip, 32).await?;
    let eth0 = link_index(&pod, POD_INTERFACE).await?;
    pod.route()
        .add(
            RouteMessageBuilder::<Ipv4Addr>::new()
                .destination_prefix(POD_GATEWAY, 32)
                .output_interface(eth0)
                .scope(RouteScope::Link)
                .build(),
        )
        .replace()
        .execute()
        .await
        .map_err(|e| step_error(&format!("route {POD_GATEWAY} dev eth0"), e))?;
    pod.route()
        .add(
            RouteMessageBuilder::<Ipv4Addr>::new()
                .gateway(POD_GATEWAY)
                .output_interface(eth0)
                .build(),
        )
        .replace()
        .execute()
        .await
        .map_err(|e| step_error(&format!("default route via {POD_GATEWAY}"), e))
}
