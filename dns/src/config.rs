//! What the server answers for: the options of CoreDNS's kubernetes plugin that svcplane keeps.

use std::collections::BTreeSet;
use std::net::IpAddr;

use hickory_proto::rr::Name;

/// CoreDNS's default `ttl` (the plugin's, not kubeadm's 30).
pub const DEFAULT_TTL: u32 = 5;
/// The largest `ttl` CoreDNS accepts.
pub const MAX_TTL: u32 = 3600;
/// The cluster domain of kubeadm and of most clusters.
pub const DEFAULT_ZONE: &str = "cluster.local";
/// The reverse zones kubeadm's Corefile serves next to the cluster domain.
pub const REVERSE_ZONES: [&str; 2] = ["in-addr.arpa", "ip6.arpa"];

/// The `pods` option: what `<a-b-c-d>.<ns>.pod.<zone>` answers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PodMode {
    /// Every pod name is NXDOMAIN (the plugin's default).
    Disabled,
    /// Any name that reads as an IP answers that IP, pod or not (kubeadm's choice).
    #[default]
    Insecure,
    /// Only IPs of running pods in that namespace answer.
    Verified,
}

/// A bad configuration value, in the words a flag error shows.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// The zone is not a domain name.
    #[error("invalid zone {zone:?}: {reason}")]
    InvalidZone {
        /// As given.
        zone: String,
        /// Why.
        reason: String,
    },
    /// The TTL is out of CoreDNS's range.
    #[error("ttl must be in range [0, {MAX_TTL}]: {0}")]
    TtlOutOfRange(u32),
}

/// The server's options.
#[derive(Clone, Debug)]
pub struct DnsConfig {
    /// Zones served, lower-case and fully qualified; the first forward zone is the primary one
    /// (PTR targets use it).
    pub zones: Vec<Name>,
    /// TTL of every record but `dns-version` (28800) and the SOA (at most 300).
    pub ttl: u32,
    /// The `pods` option.
    pub pods: PodMode,
    /// The `namespaces` option: only these are served; empty serves all.
    pub namespaces: BTreeSet<String>,
    /// The `endpoint_pod_names` option: hostless endpoints are named after their pod.
    pub endpoint_pod_names: bool,
    /// The `ignore empty_service` option: ClusterIP Services without endpoints are NXDOMAIN.
    pub ignore_empty_service: bool,
    /// The addresses the server listens on, for the apex NS and `ns.dns.<zone>`; loopback
    /// addresses are left out, as CoreDNS leaves them out.
    pub bound_ips: Vec<IpAddr>,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig::new(DEFAULT_ZONE, DEFAULT_TTL).unwrap_or_else(|_| DnsConfig {
            zones: Vec::new(),
            ttl: DEFAULT_TTL,
            pods: PodMode::default(),
            namespaces: BTreeSet::new(),
            endpoint_pod_names: false,
            ignore_empty_service: false,
            bound_ips: Vec::new(),
        })
    }
}

impl DnsConfig {
    /// `cluster_domain` with the reverse zones `in-addr.arpa` and `ip6.arpa`, as kubeadm's
    /// Corefile, pods insecure, and `ttl`.
    pub fn new(cluster_domain: &str, ttl: u32) -> Result<DnsConfig, ConfigError> {
        let mut zones = vec![parse_zone(cluster_domain)?];
        for reverse in REVERSE_ZONES {
            zones.push(parse_zone(reverse)?);
        }
        if ttl > MAX_TTL {
            return Err(ConfigError::TtlOutOfRange(ttl));
        }
        Ok(DnsConfig {
            zones,
            ttl,
            pods: PodMode::Insecure,
            namespaces: BTreeSet::new(),
            endpoint_pod_names: false,
            ignore_empty_service: false,
            bound_ips: Vec::new(),
        })
    }

    /// The zone PTR targets are written in: the first that is not a reverse zone.
    pub fn primary_zone(&self) -> Option<&Name> {
        self.zones
            .iter()
            .find(|z| !is_reverse(z))
            .or(self.zones.first())
    }

    /// Whether `namespace` passes the `namespaces` option (existence is checked elsewhere).
    pub fn namespace_configured(&self, namespace: &str) -> bool {
        self.namespaces.is_empty() || self.namespaces.contains(namespace)
    }
}

/// A zone name as given on a flag (`cluster.local` or `cluster.local.`), lower-cased and fully
/// qualified.
pub fn parse_zone(zone: &str) -> Result<Name, ConfigError> {
    let invalid = |reason: String| ConfigError::InvalidZone {
        zone: zone.to_owned(),
        reason,
    };
    let trimmed = zone.trim_end_matches('.');
    if trimmed.is_empty() {
        return Err(invalid("the root zone cannot be the cluster domain".into()));
    }
    if !trimmed
        .split('.')
        .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    {
        return Err(invalid(
            "labels must be non-empty and made of letters, digits and '-'".into(),
        ));
    }
    let mut name = Name::from_ascii(trimmed).map_err(|e| invalid(e.to_string()))?;
    name.set_fqdn(true);
    Ok(name.to_lowercase())
}

/// Whether `name` is under `in-addr.arpa.` or `ip6.arpa.` (or is one of them).
pub fn is_reverse(name: &Name) -> bool {
    // Label by label: this runs for every query, and parsing the two names each time showed up.
    let mut labels = name.iter().rev();
    let (Some(last), Some(second)) = (labels.next(), labels.next()) else {
        return false;
    };
    last.eq_ignore_ascii_case(b"arpa")
        && (second.eq_ignore_ascii_case(b"in-addr") || second.eq_ignore_ascii_case(b"ip6"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_and_ttl() {
        let config = DnsConfig::new("Cluster.Local.", 30).unwrap();
        assert_eq!(config.zones[0].to_ascii(), "cluster.local.");
        assert_eq!(config.primary_zone().unwrap().to_ascii(), "cluster.local.");
        assert_eq!(config.zones.len(), 3);
        assert!(is_reverse(&config.zones[1]));
        assert_eq!(
            DnsConfig::new("cluster.local", 3601).unwrap_err(),
            ConfigError::TtlOutOfRange(3601)
        );
        assert!(parse_zone("").is_err());
        assert!(parse_zone("a..b").is_err());
        assert!(parse_zone("a_b.local").is_err());
    }
}
