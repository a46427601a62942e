//! `svcplane proxy`: kube-proxy's job on nftables (the `proxy` crate) for one node, with
//! kube-proxy's own flag names, until SIGTERM. `--netns` programs a network namespace other than
//! the current one (a node of the playground's data plane).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use k8s_openapi::api::core::v1::Node;
use kube::Api;

use crate::flags::{UsageError, parse_go_duration};

/// `--proxy-mode`: svcplane implements upstream's nftables mode only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProxyMode {
    /// kube-proxy's nftables mode (rule layout of 1.34).
    Nftables,
}

/// Flags of `svcplane proxy`.
#[derive(Debug, clap::Args)]
pub struct ProxyArgs {
    /// Path to a kubeconfig; without it KUBECONFIG, ~/.kube/config or the in-cluster config.
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// The name of this node (decides which endpoints are local); default: the host name.
    #[arg(long, value_name = "NAME")]
    hostname_override: Option<String>,
    /// The node's primary IP; default: the Node object's InternalIP.
    #[arg(long, value_name = "IP")]
    bind_address: Option<IpAddr>,
    /// The pods' CIDRs, one per family, comma-separated: ClusterIP traffic from outside them is
    /// masqueraded.
    #[arg(long, value_delimiter = ',', value_name = "CIDR")]
    cluster_cidr: Vec<IpNet>,
    /// Addresses NodePorts answer on: CIDRs (comma-separated), or `primary` (the node's
    /// primary IP of each family).
    #[arg(long, default_value = "primary", value_parser = parse_nodeport_addresses)]
    nodeport_addresses: NodePortAddresses,
    /// Masquerade all traffic to ClusterIPs.
    #[arg(long)]
    masquerade_all: bool,
    /// Address of /healthz and /livez.
    #[arg(long, default_value = "0.0.0.0:10256")]
    healthz_bind_address: SocketAddr,
    /// Address of the metrics server (/metrics, /healthz, /proxyMode); empty to disable.
    #[arg(long, default_value = "127.0.0.1:10249", value_parser = parse_bind_address)]
    metrics_bind_address: BindAddress,
    /// Least time between two syncs (upstream keeps the iptables name in nftables mode).
    #[arg(long, default_value = "1s", value_parser = parse_go_duration)]
    iptables_min_sync_period: Duration,
    /// Retry delay after a failed sync.
    #[arg(long, default_value = "30s", value_parser = parse_go_duration)]
    iptables_sync_period: Duration,
    /// The proxy mode; only nftables.
    #[arg(long, value_enum, default_value_t = ProxyMode::Nftables)]
    proxy_mode: ProxyMode,
    /// Program this network namespace (as `ip netns` names it) instead of the current one.
    #[arg(long, value_name = "NAME")]
    netns: Option<String>,
}

/// An `IP:port` to listen on, or none (the flag given as an empty string).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BindAddress(Option<SocketAddr>);

/// Parses `--metrics-bind-address`: `IP:port`, or empty to disable the server.
pub fn parse_bind_address(text: &str) -> Result<BindAddress, String> {
    if text.trim().is_empty() {
        return Ok(BindAddress(None));
    }
    text.trim()
        .parse::<SocketAddr>()
        .map(|addr| BindAddress(Some(addr)))
        .map_err(|_| format!("{text:?} is not a valid IP:port (or empty, to disable)"))
}

/// `--nodeport-addresses`.
#[derive(Debug, Clone, PartialEq)]
pub enum NodePortAddresses {
    /// The node's primary IPs.
    Primary,
    /// These networks.
    Cidrs(Vec<IpNet>),
}

/// Parses `--nodeport-addresses`: `primary`, or CIDRs separated by commas.
pub fn parse_nodeport_addresses(text: &str) -> Result<NodePortAddresses, String> {
    if text.trim() == "primary" {
        return Ok(NodePortAddresses::Primary);
    }
    text.split(',')
        .map(|c| {
            c.trim().parse::<IpNet>().map_err(|_| {
                format!(
                    "invalid CIDR {:?}: want CIDRs separated by commas, or primary",
                    c.trim()
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(NodePortAddresses::Cidrs)
}

/// The host's name, as kube-proxy defaults `--hostname-override`: lower case, trimmed.
fn host_name() -> anyhow::Result<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").map_err(|e| {
        anyhow::anyhow!("cannot read the host name ({e}); give --hostname-override")
    })?;
    Ok(name.trim().to_lowercase())
}

/// Runs the proxy until a termination signal.
pub async fn run(args: ProxyArgs) -> anyhow::Result<()> {
    let termination = crate::signals::termination()?;
    let node_name = match &args.hostname_override {
        Some(name) if name.trim().is_empty() => {
            return Err(UsageError("--hostname-override is empty".into()).into());
        }
        Some(name) => name.trim().to_lowercase(),
        None => host_name()?,
    };
    let client = crate::client::client(
        args.kubeconfig.as_ref(),
        concat!("svcplane-proxy/", env!("CARGO_PKG_VERSION")),
    )
    .await?;
    let primary = match args.bind_address {
        Some(ip) => vec![ip],
        None => {
            let nodes: Api<Node> = Api::all(client.clone());
            let node = nodes.get_opt(&node_name).await?.ok_or_else(|| {
                anyhow::anyhow!("node {node_name} not found: give its name with --hostname-override, or its IP with --bind-address")
            })?;
            proxy::node_addresses::node_host_ips(&node)
        }
    };
    let families: Vec<proxy::IpFamily> = [proxy::IpFamily::V4, proxy::IpFamily::V6]
        .into_iter()
        .filter(|f| primary.iter().any(|ip| f.contains(ip)))
        .collect();
    if families.is_empty() {
        anyhow::bail!("node {node_name} has no address: give its IP with --bind-address");
    }
    let interfaces = proxy::node_addresses::interface_addresses(args.netns.as_deref())
        .await
        .map_err(|e| anyhow::anyhow!("cannot read the node's addresses: {e}"))?;
    let mut rules = proxy::RulesConfig::new(
        node_name.clone(),
        proxy::node_addresses::node_ips(&primary, &interfaces),
    );
    rules.cluster_cidrs = args.cluster_cidr.clone();
    rules.masquerade_all = args.masquerade_all;
    rules.nodeport_addresses = match &args.nodeport_addresses {
        NodePortAddresses::Primary => None,
        NodePortAddresses::Cidrs(cidrs) => Some(cidrs.clone()),
    };
    let mut config = proxy::ProxyConfig::new(rules);
    config.families = families;
    config.min_sync_period = args.iptables_min_sync_period;
    config.sync_period = args.iptables_sync_period;
    config.healthz_bind_address = Some(args.healthz_bind_address);
    config.metrics_bind_address = args.metrics_bind_address.0;
    if let Some(netns) = &args.netns {
        config.runner = proxy::NftRunner::in_netns(netns.clone());
        config.listener_factory = dataplane::tcp_listener_factory(netns);
    }
    let (trigger, shutdown) = crate::component::shutdown_channel();
    tracing::info!(node = %node_name, netns = args.netns.as_deref().unwrap_or("(current)"), "proxy starting");
    let proxy = tokio::spawn(proxy::run(client, config, shutdown.wait()));
    tokio::pin!(proxy);
    tokio::select! {
        signal = termination => {
            tracing::info!(signal, "shutting down");
            trigger.fire();
            match tokio::time::timeout(Duration::from_secs(10), &mut proxy).await {
                Ok(Ok(result)) => result.map_err(Into::into),
                Ok(Err(e)) => Err(anyhow::anyhow!("the proxy failed: {e}")),
                Err(_) => Err(anyhow::anyhow!("the proxy did not stop within 10s")),
            }
        }
        ended = &mut proxy => match ended {
            Ok(result) => result.map_err(Into::into),
            Err(e) => Err(anyhow::anyhow!("the proxy failed: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_bind_address_is_an_ip_port_or_empty() {
        assert_eq!(
            parse_bind_address("127.0.0.1:10249"),
            Ok(BindAddress(Some("127.0.0.1:10249".parse().unwrap())))
        );
        assert_eq!(
            parse_bind_address("[::]:10249"),
            Ok(BindAddress(Some("[::]:10249".parse().unwrap())))
        );
        assert_eq!(parse_bind_address(""), Ok(BindAddress(None)));
        assert_eq!(
            parse_bind_address("10249").unwrap_err(),
            "\"10249\" is not a valid IP:port (or empty, to disable)"
        );
    }

    #[test]
    fn nodeport_addresses_are_primary_or_cidrs() {
        assert_eq!(
            parse_nodeport_addresses("primary"),
            Ok(NodePortAddresses::Primary)
        );
        assert_eq!(
            parse_nodeport_addresses("0.0.0.0/0, ::/0"),
            Ok(NodePortAddresses::Cidrs(vec![
                "0.0.0.0/0".parse().unwrap(),
                "::/0".parse().unwrap()
            ]))
        );
        assert_eq!(
            parse_nodeport_addresses("10.0.0.0/33").unwrap_err(),
            "invalid CIDR \"10.0.0.0/33\": want CIDRs separated by commas, or primary"
        );
    }
}
