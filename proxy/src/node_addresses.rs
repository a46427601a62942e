//! The node's addresses for [`crate::RulesConfig::node_ips`]: its primary IPs from the Node
//! object (upstream's `GetNodeHostIPs`: InternalIPs first, then ExternalIPs, one per family) and
//! the addresses of its interfaces (what `--nodeport-addresses` CIDRs are matched against), read
//! with `ip -j addr` in the node's network namespace.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::Node;
use tokio::process::Command;

/// The node's primary IPs: the first InternalIP (else ExternalIP), then the first address of
/// the other family, as upstream's `GetNodeHostIPs`.
pub fn node_host_ips(node: &Node) -> Vec<IpAddr> {
    let addresses = node
        .status
        .as_ref()
        .and_then(|s| s.addresses.as_ref())
        .map(Vec::as_slice)
        .unwrap_or_default();
    let of_type = |t: &'static str| {
        addresses
            .iter()
            .filter(move |a| a.type_ == t)
            .filter_map(|a| a.address.parse::<IpAddr>().ok())
    };
    let all: Vec<IpAddr> = of_type("InternalIP").chain(of_type("ExternalIP")).collect();
    let Some(first) = all.first().copied() else {
        return Vec::new();
    };
    let mut out = vec![first];
    if let Some(other) = all.iter().find(|ip| ip.is_ipv6() != first.is_ipv6()) {
        out.push(*other);
    }
    out
}

/// The addresses in `ip -j addr` output, in order.
pub fn parse_ip_addr_json(json: &[u8]) -> Result<Vec<IpAddr>, String> {
    let links: serde_json::Value = serde_json::from_slice(json).map_err(|e| e.to_string())?;
    let links = links.as_array().ok_or("not a list of links")?;
    Ok(links
        .iter()
        .filter_map(|l| l.get("addr_info")?.as_array())
        .flatten()
        .filter_map(|a| a.get("local")?.as_str()?.parse().ok())
        .collect())
}

/// The addresses of every interface of the network namespace `netns` (the current one when
/// `None`).
pub async fn interface_addresses(netns: Option<&str>) -> Result<Vec<IpAddr>, String> {
    let mut cmd = Command::new("ip");
    if let Some(ns) = netns {
        cmd.args(["-n", ns]);
    }
    let out = cmd
        .args(["-j", "addr", "show"])
        .output()
        .await
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "ip -j addr show: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    parse_ip_addr_json(&out.stdout)
}

/// `primary` first, then the other addresses, without duplicates: the order
/// [`crate::RulesConfig::node_ips`] expects (the first of each family is the primary IP).
pub fn node_ips(primary: &[IpAddr], interfaces: &[IpAddr]) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = Vec::new();
    for ip in primary.iter().chain(interfaces) {
        if !out.contains(ip) {
            out.push(*ip);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn internal_ips_come_first_one_per_family() {
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": "n"},
            "status": {"addresses": [
                {"type": "Hostname", "address": "n"},
                {"type": "ExternalIP", "address": "203.0.113.5"},
                {"type": "InternalIP", "address": "172.18.0.2"},
                {"type": "InternalIP", "address": "172.18.0.3"},
                {"type": "ExternalIP", "address": "2001:db8::5"}
            ]}
        }))
        .unwrap();
        assert_eq!(
            node_host_ips(&node),
            vec![
                "172.18.0.2".parse::<IpAddr>().unwrap(),
                "2001:db8::5".parse().unwrap()
            ]
        );
        let bare: Node = serde_json::from_value(json!({"metadata": {"name": "n"}})).unwrap();
        assert!(node_host_ips(&bare).is_empty());
    }

    #[test]
    fn ip_addr_json_gives_every_local_address() {
        let json = br#"[{"ifindex":1,"ifname":"lo","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8},{"family":"inet6","local":"::1","prefixlen":128}]},
            {"ifindex":2,"ifname":"eth0","addr_info":[{"family":"inet","local":"172.18.0.2","prefixlen":16}]},
            {"ifindex":3,"ifname":"down0","addr_info":[]}]"#;
        let ips = parse_ip_addr_json(json).expect("parses");
        assert_eq!(ips.len(), 3);
        let merged = node_ips(&["172.18.0.2".parse().unwrap()], &ips);
        assert_eq!(merged[0], "172.18.0.2".parse::<IpAddr>().unwrap());
        assert_eq!(merged.len(), 3);
    }
}
