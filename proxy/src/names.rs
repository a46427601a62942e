//! Per-ServicePort chain and set names (upstream's `servicePortChainNameBase`,
//! `servicePortEndpointChainNameBase` and `hashAndTruncate`): `H-ns/name/proto/port`, where `H`
//! is the first 8 characters of base32(sha256(the rest)), so that names stay unique and visually
//! distinct when they differ in one digit.

use std::net::IpAddr;

/// nftables' longest object name.
const NAME_LENGTH_MAX: usize = 256;
/// Room for the longest prefix (`external-`, `endpoint-`, … plus slack), as upstream leaves.
const PREFIX_LENGTH_MAX: usize = 16;
/// The longest base name.
const BASE_LENGTH_MAX: usize = NAME_LENGTH_MAX - PREFIX_LENGTH_MAX;

/// The RFC 4648 base32 alphabet (Go's `base32.StdEncoding`).
const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// The first 8 base32 characters of `bytes` (its first 40 bits).
fn base32_prefix8(bytes: &[u8]) -> String {
    let mut bits: u64 = 0;
    for b in &bytes[..5] {
        bits = (bits << 8) | u64::from(*b);
    }
    (0..8)
        .rev()
        .map(|i| BASE32[((bits >> (i * 5)) & 0x1f) as usize] as char)
        .collect()
}

/// `name` prefixed with its hash, cut to 240 characters with `...` when longer.
pub fn hash_and_truncate(name: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, name.as_bytes());
    let mut out = format!("{}-{name}", base32_prefix8(digest.as_ref()));
    if out.len() > BASE_LENGTH_MAX {
        // Names are ASCII (DNS labels, IPs, digits), so a byte cut is a character cut.
        out.truncate(BASE_LENGTH_MAX - 3);
        out.push_str("...");
    }
    out
}

/// The base of a ServicePort's chains: `H-ns/name/proto/portName`.
pub fn service_port_base(namespace: &str, name: &str, protocol: &str, port_name: &str) -> String {
    hash_and_truncate(&format!("{namespace}/{name}/{protocol}/{port_name}"))
}

/// The base of an endpoint's chain and affinity set: `H-ns/name/proto/portName__IP/port`, with
/// an IPv6 address's `:` written as `.` (not allowed in a chain name).
pub fn endpoint_base(
    namespace: &str,
    name: &str,
    protocol: &str,
    port_name: &str,
    ip: &IpAddr,
    port: u16,
) -> String {
    let ip = ip.to_string().replace(':', ".");
    hash_and_truncate(&format!(
        "{namespace}/{name}/{protocol}/{port_name}__{ip}/{port}"
    ))
}

/// Whether `chain` is a per-service chain (only those are ever flushed or deleted as stale):
/// they, and no fixed chain, contain a `/`.
pub fn is_service_chain(chain: &str) -> bool {
    chain.contains('/')
}

/// Whether `set` is a per-endpoint affinity set.
pub fn is_affinity_set(set: &str) -> bool {
    set.starts_with("affinity-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_match_the_upstream_vectors() {
        assert_eq!(
            hash_and_truncate("ns1/svc1/tcp/p80"),
            "ULMVA6XW-ns1/svc1/tcp/p80"
        );
        assert_eq!(
            hash_and_truncate("ns1/svc1/tcp/p80__10.180.0.1/80"),
            "5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80"
        );
        assert_eq!(
            service_port_base("ns2", "svc2", "tcp", "p80"),
            "42NFTM6N-ns2/svc2/tcp/p80"
        );
        assert_eq!(
            endpoint_base(
                "ns5",
                "svc5",
                "tcp",
                "p80",
                &"10.180.0.3".parse().unwrap(),
                80
            ),
            "GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80"
        );
    }

    #[test]
    fn ipv6_colons_become_dots_and_long_names_are_cut() {
        let base = endpoint_base("ns", "svc", "udp", "", &"fd00::1".parse().unwrap(), 53);
        assert!(base.ends_with("-ns/svc/udp/__fd00..1/53"), "{base}");
        let long = "x".repeat(300);
        let cut = hash_and_truncate(&long);
        assert_eq!(cut.len(), 240);
        assert!(cut.ends_with("..."));
    }

    #[test]
    fn only_per_service_names_are_service_chains() {
        assert!(is_service_chain("service-ULMVA6XW-ns1/svc1/tcp/p80"));
        assert!(!is_service_chain("reject-chain"));
        assert!(is_affinity_set(
            "affinity-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80"
        ));
        assert!(!is_affinity_set("cluster-ips"));
    }
}
