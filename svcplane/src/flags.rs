//! Flag values shared by several subcommands, parsed as kube-apiserver and
//! kube-controller-manager parse them: Go durations, the Service ranges, the allocation mode.

use std::time::Duration;

use allocator::registry::AllocationMode;
use allocator::{BitmapSizeLimit, PortRange, ServiceClusterIpRanges};

/// A configuration mistake: the process exits with status 2, as for a bad flag.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Parses a Go `time.Duration` string such as `15s`, `1m30s`, `250ms` or `0`.
pub fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("time: invalid duration \"{text}\"");
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if text.is_empty() || text.starts_with('-') {
        return Err(invalid());
    }
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if number_len == 0 {
            return Err(invalid());
        }
        let number: f64 = rest[..number_len].parse().map_err(|_| invalid())?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds_per_unit = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => return Err(format!("time: missing unit in duration \"{text}\"")),
            unit => {
                return Err(format!(
                    "time: unknown unit \"{unit}\" in duration \"{text}\""
                ));
            }
        };
        total += number * seconds_per_unit;
        rest = &rest[unit_len..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| invalid())
}

/// `--service-cluster-ip-range`, with kube-apiserver's validation messages.
pub fn parse_cluster_ip_ranges(text: &str) -> Result<ServiceClusterIpRanges, String> {
    ServiceClusterIpRanges::parse(text, BitmapSizeLimit::Enforced).map_err(|e| e.to_string())
}

/// `--service-node-port-range`, with kube-apiserver's parse messages.
pub fn parse_node_port_range(text: &str) -> Result<PortRange, String> {
    PortRange::parse(text).map_err(|e| e.to_string())
}

/// `--allocation-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AllocationModeFlag {
    /// svcplane allocates ClusterIPs and NodePorts and writes the objects of record.
    Authoritative,
    /// A kube-apiserver allocates; svcplane only checks and reports.
    Audit,
}

impl AllocationModeFlag {
    /// The flag's value as typed.
    pub fn as_str(self) -> &'static str {
        match self {
            AllocationModeFlag::Authoritative => "authoritative",
            AllocationModeFlag::Audit => "audit",
        }
    }
}

impl From<AllocationModeFlag> for AllocationMode {
    fn from(flag: AllocationModeFlag) -> Self {
        match flag {
            AllocationModeFlag::Authoritative => AllocationMode::Authoritative,
            AllocationModeFlag::Audit => AllocationMode::Audit,
        }
    }
}

/// The allocation ranges as the webhook's validation sees them.
pub fn validation_ranges(
    cluster_ips: &ServiceClusterIpRanges,
    node_ports: PortRange,
) -> webhook::ServiceRanges {
    let last = node_ports.base() + node_ports.size().saturating_sub(1);
    webhook::ServiceRanges {
        cluster_ip: cluster_ips.all().into_iter().map(|c| c.net()).collect(),
        node_ports: (
            u16::try_from(node_ports.base()).unwrap_or(u16::MAX),
            u16::try_from(last).unwrap_or(u16::MAX),
        ),
    }
}

/// The one line a user reads when an address flag's address cannot be bound: the address, the
/// flag that set it, and why, in plain words.
pub fn listen_error(
    flag: &str,
    addr: std::net::SocketAddr,
    error: &std::io::Error,
) -> anyhow::Error {
    use std::io::ErrorKind;
    let why = match error.kind() {
        ErrorKind::AddrInUse => "the address is already in use".to_owned(),
        ErrorKind::AddrNotAvailable => "the address is not on this machine".to_owned(),
        ErrorKind::PermissionDenied => "permission denied".to_owned(),
        _ => error.to_string(),
    };
    anyhow::anyhow!("cannot listen on {addr} ({why}); choose another address with {flag}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        let ok = [
            ("15s", Duration::from_secs(15)),
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
            ("1m30s", Duration::from_secs(90)),
            ("250ms", Duration::from_millis(250)),
            ("1.5s", Duration::from_millis(1500)),
            ("2h", Duration::from_secs(7200)),
        ];
        for (text, want) in ok {
            assert_eq!(parse_go_duration(text), Ok(want), "{text}");
        }
        assert_eq!(
            parse_go_duration("15"),
            Err("time: missing unit in duration \"15\"".to_string())
        );
        assert_eq!(
            parse_go_duration("3d"),
            Err("time: unknown unit \"d\" in duration \"3d\"".to_string())
        );
        assert_eq!(
            parse_go_duration("-1s"),
            Err("time: invalid duration \"-1s\"".to_string())
        );
        assert_eq!(
            parse_go_duration("s"),
            Err("time: invalid duration \"s\"".to_string())
        );
    }

    #[test]
    fn ranges_carry_upstream_messages() {
        assert_eq!(
            parse_cluster_ip_ranges("10.0.0.0/30").unwrap_err(),
            "error determining service IP ranges for primary service cidr: the service cluster IP range must be at least 8 IP addresses"
        );
        let ranges = parse_cluster_ip_ranges("10.96.0.0/12").unwrap();
        let ports = parse_node_port_range("30000-32767").unwrap();
        let v = validation_ranges(&ranges, ports);
        assert_eq!(v.node_ports, (30000, 32767));
        assert_eq!(v.cluster_ip[0].to_string(), "10.96.0.0/12");
    }
}
