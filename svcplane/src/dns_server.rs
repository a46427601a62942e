//! `svcplane dns`: cluster DNS for any cluster's Services (the records CoreDNS's kubernetes
//! plugin serves), on UDP and TCP, until SIGTERM; and the same server as a component of
//! `svcplane up` (`--dns-listen`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use dns::{ClusterDns, DnsConfig, PodMode};

use crate::component::{Component, shutdown_channel};

/// How long the first lists of Services, EndpointSlices and Namespaces may take before the
/// server is reported up anyway (until then it answers SERVFAIL where it would say NXDOMAIN,
/// as CoreDNS does).
const SYNC_TIMEOUT: Duration = Duration::from_secs(30);

/// The `--pods` values, CoreDNS's `pods` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PodsFlag {
    /// `<a-b-c-d>.<ns>.pod.<zone>` is always NXDOMAIN.
    Disabled,
    /// Any such name answers its IP (kubeadm's default).
    Insecure,
    /// Only IPs of running pods in that namespace answer (watches Pods).
    Verified,
}

impl From<PodsFlag> for PodMode {
    fn from(flag: PodsFlag) -> Self {
        match flag {
            PodsFlag::Disabled => PodMode::Disabled,
            PodsFlag::Insecure => PodMode::Insecure,
            PodsFlag::Verified => PodMode::Verified,
        }
    }
}

/// Flags of `svcplane dns`.
#[derive(Debug, clap::Args)]
pub struct DnsArgs {
    /// Path to a kubeconfig; without it KUBECONFIG, ~/.kube/config or the in-cluster config.
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// Address for UDP and TCP (port 0 picks one; the address is printed).
    #[arg(long, default_value = "127.0.0.1:5353")]
    listen: SocketAddr,
    /// The cluster domain served (with in-addr.arpa and ip6.arpa for PTR records).
    #[arg(long, default_value = dns::config::DEFAULT_ZONE, value_parser = parse_zone)]
    zone: String,
    /// TTL of the records, in seconds (CoreDNS's default 5; kubeadm's Corefile says 30).
    #[arg(long, default_value_t = dns::config::DEFAULT_TTL,
          value_parser = clap::value_parser!(u32).range(0..=i64::from(dns::config::MAX_TTL)))]
    ttl: u32,
    /// Records for pod IPs (`<a-b-c-d>.<namespace>.pod.<zone>`).
    #[arg(long, value_enum, default_value_t = PodsFlag::Insecure)]
    pods: PodsFlag,
}

/// `--zone`, checked as a domain name.
pub fn parse_zone(text: &str) -> Result<String, String> {
    dns::config::parse_zone(text)
        .map(|_| text.trim_end_matches('.').to_ascii_lowercase())
        .map_err(|e| e.to_string())
}

/// The server's configuration from the flags' values.
fn config(zone: &str, ttl: u32, pods: PodsFlag) -> anyhow::Result<DnsConfig> {
    let mut config =
        DnsConfig::new(zone, ttl).map_err(|e| crate::flags::UsageError(e.to_string()))?;
    config.pods = pods.into();
    Ok(config)
}

/// Starts cluster DNS on `listen`; the bind error names `flag`.
async fn start(
    client: kube::Client,
    config: DnsConfig,
    listen: SocketAddr,
    flag: &'static str,
    shutdown: kuberun::Shutdown,
) -> anyhow::Result<ClusterDns> {
    let dns = ClusterDns::start(client, config, listen, shutdown)
        .await
        .map_err(|e| crate::flags::listen_error(flag, listen, e.io_error()))?;
    if !dns.wait_synced(SYNC_TIMEOUT).await {
        tracing::warn!(
            "cluster DNS caches not synced after {}s; serving anyway",
            SYNC_TIMEOUT.as_secs()
        );
    }
    Ok(dns)
}

/// The line that shows how to ask the server.
pub fn dig_line(addr: SocketAddr, zone: &str) -> String {
    format!(
        "dig @{} -p {} web.default.svc.{zone}",
        addr.ip(),
        addr.port()
    )
}

/// `svcplane up`'s DNS component: serves on `listen`, and once it is ready records the bound
/// address in `bound` and what it answers from in `records` (which the data plane serves in
/// the cluster DNS pod too).
pub fn component(
    listen: SocketAddr,
    bound: Arc<OnceLock<SocketAddr>>,
    records: Arc<OnceLock<dns::DnsRecords>>,
) -> Component {
    Component::new("dns", move |client, shutdown| async move {
        let config = config(
            dns::config::DEFAULT_ZONE,
            dns::config::DEFAULT_TTL,
            PodsFlag::Insecure,
        )?;
        let dns = start(client, config, listen, "--dns-listen", shutdown).await?;
        let _ = bound.set(dns.local_addr());
        let _ = records.set(dns.records());
        Ok(tokio::spawn(async move {
            dns.stopped().await;
            Ok(())
        }))
    })
}

/// Runs cluster DNS until a termination signal.
pub async fn run(args: DnsArgs) -> anyhow::Result<()> {
    let DnsArgs {
        kubeconfig,
        listen,
        zone,
        ttl,
        pods,
    } = args;
    let termination = crate::signals::termination()?;
    let config = config(&zone, ttl, pods)?;
    let client = crate::client::client(
        kubeconfig.as_ref(),
        concat!("svcplane-dns/", env!("CARGO_PKG_VERSION")),
    )
    .await?;
    let (trigger, shutdown) = shutdown_channel();
    let dns = start(client, config, listen, "--listen", shutdown).await?;
    let addr = dns.local_addr();
    tracing::info!(address = %addr, zone = %zone, "cluster DNS serving (UDP and TCP)");
    println!(
        "Cluster DNS for {zone} on {addr} (UDP and TCP). Ask it:\n\n  {}\n\nStop with Ctrl-C.",
        dig_line(addr, &zone)
    );
    let signal = termination.await;
    tracing::info!(signal, "shutting down");
    trigger.fire();
    if tokio::time::timeout(Duration::from_secs(10), dns.stopped())
        .await
        .is_err()
    {
        tracing::warn!("cluster DNS did not stop in time");
    }
    tracing::info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dig_line_names_the_port() {
        let addr: SocketAddr = "127.0.0.1:5353".parse().unwrap();
        assert_eq!(
            dig_line(addr, "cluster.local"),
            "dig @127.0.0.1 -p 5353 web.default.svc.cluster.local"
        );
    }

    #[test]
    fn zones_are_checked() {
        assert_eq!(parse_zone("Cluster.Local.").unwrap(), "cluster.local");
        assert!(parse_zone("a..b").unwrap_err().starts_with("invalid zone"));
    }
}
