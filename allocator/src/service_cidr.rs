//! Service CIDRs: which addresses are usable, the static band, and `--service-cluster-ip-range`.
//!
//! Usable addresses are those of upstream's bitmap allocator (§2.1): the network address is
//! never handed out, nor the IPv4 broadcast address; the IPv6 all-ones address is usable.
//! **Deliberate difference:** upstream's bitmap caps an IPv6 range at 65,536 entries, so a /64
//! offers only `::1`–`::ffff`. svcplane keeps no such cap: a /64 is a real range of 2^64 − 1
//! addresses (like upstream's newer IPAddress allocator, which also refuses prefixes shorter
//! than /64). [`ServiceCidr::upstream_bitmap_size`] reports the capped size for comparison.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use crate::error::RangeConfigError;

/// An IP family, spelled as the Kubernetes API spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IpFamily {
    /// `IPv4`.
    V4,
    /// `IPv6`.
    V6,
}

impl IpFamily {
    /// `"IPv4"` or `"IPv6"`.
    pub fn as_str(self) -> &'static str {
        match self {
            IpFamily::V4 => "IPv4",
            IpFamily::V6 => "IPv6",
        }
    }

    /// The family of an address.
    pub fn of(ip: &IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => IpFamily::V4,
            IpAddr::V6(_) => IpFamily::V6,
        }
    }

    /// The other family.
    pub fn other(self) -> Self {
        match self {
            IpFamily::V4 => IpFamily::V6,
            IpFamily::V6 => IpFamily::V4,
        }
    }

    /// Parses `"IPv4"`/`"IPv6"`.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "IPv4" => Some(IpFamily::V4),
            "IPv6" => Some(IpFamily::V6),
            _ => None,
        }
    }
}

impl fmt::Display for IpFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Upstream's `RangeSize` saturates at `MaxInt64` from 63 host bits on.
const MAX_INT64: u64 = i64::MAX as u64;

/// A Service CIDR with its usable addresses and static band.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceCidr {
    net: IpNet,
    usable: u64,
}

impl ServiceCidr {
    /// A range over `cidr` (host bits are dropped, as Go's `ParseCIDR` does). IPv6 prefixes
    /// shorter than /64 are refused as upstream's IPAddress allocator refuses them.
    pub fn new(cidr: IpNet) -> Result<Self, RangeConfigError> {
        let net = cidr.trunc();
        let host_bits = host_bits(&net);
        let usable = match net {
            IpNet::V4(_) if host_bits <= 1 => 0,
            IpNet::V4(_) => (1u64 << host_bits) - 2,
            IpNet::V6(_) if host_bits > 64 => {
                return Err(RangeConfigError::PrefixTooShort(net.prefix_len()));
            }
            IpNet::V6(_) if host_bits <= 1 => 0,
            // 2^64 - 1 for a /64: the all-ones address is usable, the network address is not.
            IpNet::V6(_) => ((1u128 << host_bits) - 1) as u64,
        };
        Ok(ServiceCidr { net, usable })
    }

    /// Parses a CIDR string such as `10.96.0.0/12`.
    pub fn parse(cidr: &str) -> Result<Self, RangeConfigError> {
        let net: IpNet = cidr.parse().map_err(|_| RangeConfigError::PrimaryNotCidr)?;
        Self::new(net)
    }

    /// The CIDR (network address and prefix).
    pub fn net(&self) -> IpNet {
        self.net
    }

    /// The family of the range.
    pub fn family(&self) -> IpFamily {
        match self.net {
            IpNet::V4(_) => IpFamily::V4,
            IpNet::V6(_) => IpFamily::V6,
        }
    }

    /// How many addresses can be allocated (no IPv6 cap, see the module docs).
    pub fn usable_size(&self) -> u64 {
        self.usable
    }

    /// Upstream's `RangeSize(cidr)`: 2^hostbits, `MaxInt64` from 63 host bits, 0 for IPv4
    /// /31–/32 and IPv6 /127–/128.
    pub fn upstream_range_size(&self) -> u64 {
        let host_bits = host_bits(&self.net);
        if host_bits <= 1 {
            0
        } else if host_bits >= 63 {
            MAX_INT64
        } else {
            1u64 << host_bits
        }
    }

    /// The size of upstream's bitmap for this CIDR: capped at 65,536 for IPv6, minus the
    /// network address, minus the broadcast address for IPv4 (§2.1).
    pub fn upstream_bitmap_size(&self) -> u64 {
        let mut max = self.upstream_range_size();
        if self.family() == IpFamily::V6 {
            max = max.min(65_536);
        } else {
            max = max.saturating_sub(1);
        }
        max.saturating_sub(1)
    }

    /// The size of the static band (KEP-3070 `calculateRangeOffset`): the first this many
    /// usable addresses are kept for explicit requests.
    pub fn static_band_size(&self) -> u64 {
        static_band_size(self.upstream_range_size())
    }

    /// The first usable address, if any.
    pub fn first(&self) -> Option<IpAddr> {
        self.address_at(0)
    }

    /// The last usable address, if any.
    pub fn last(&self) -> Option<IpAddr> {
        self.usable.checked_sub(1).and_then(|o| self.address_at(o))
    }

    /// The address of the `default/kubernetes` Service: the first usable address.
    pub fn kubernetes_service_ip(&self) -> Option<IpAddr> {
        self.first()
    }

    /// The offset of `ip` among the usable addresses, if it is one of them.
    pub fn offset_of(&self, ip: IpAddr) -> Option<u64> {
        let offset = match (self.net, ip) {
            (IpNet::V4(net), IpAddr::V4(ip)) => {
                u64::from(u32::from(ip)).checked_sub(u64::from(u32::from(net.network())) + 1)?
            }
            (IpNet::V6(net), IpAddr::V6(ip)) => {
                let distance = u128::from(ip).checked_sub(u128::from(net.network()) + 1)?;
                u64::try_from(distance).ok()?
            }
            _ => return None,
        };
        (offset < self.usable).then_some(offset)
    }

    /// The usable address at `offset`.
    pub fn address_at(&self, offset: u64) -> Option<IpAddr> {
        if offset >= self.usable {
            return None;
        }
        Some(match self.net {
            IpNet::V4(net) => {
                IpAddr::V4(Ipv4Addr::from(u32::from(net.network()) + 1 + offset as u32))
            }
            IpNet::V6(net) => IpAddr::V6(Ipv6Addr::from(
                u128::from(net.network()) + 1 + u128::from(offset),
            )),
        })
    }
}

impl fmt::Display for ServiceCidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.net.fmt(f)
    }
}

fn host_bits(net: &IpNet) -> u8 {
    net.max_prefix_len() - net.prefix_len()
}

/// KEP-3070's offset: `min(max(16, size/16), 256)`, 0 when `size <= 16`.
pub(crate) fn static_band_size(range_size: u64) -> u64 {
    if range_size <= 16 {
        0
    } else {
        (range_size / 16).clamp(16, 256)
    }
}

/// The default used by kube-apiserver when the flag is empty (deprecated upstream).
pub const DEFAULT_SERVICE_CLUSTER_IP_RANGE: &str = "10.0.0.0/24";

/// What `--service-cluster-ip-range` configures: one range per family, primary first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceClusterIpRanges {
    /// The primary range; its first address is the `kubernetes` Service's ClusterIP.
    pub primary: ServiceCidr,
    /// The secondary range of the other family, for dual stack.
    pub secondary: Option<ServiceCidr>,
}

/// Whether kube-apiserver's 20-host-bit limit of the legacy bitmap applies to the flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BitmapSizeLimit {
    /// Enforce the limit (upstream unless `MultiCIDRServiceAllocator` and
    /// `DisableAllocatorDualWrite` are both on).
    #[default]
    Enforced,
    /// No upper bound (only the /64 floor for IPv6).
    Lifted,
}

impl ServiceClusterIpRanges {
    /// Parses and validates the flag value as kube-apiserver's `Complete` and `Validate` do;
    /// `Complete` errors stop at the first, `Validate` errors are aggregated.
    pub fn parse(flag: &str, limit: BitmapSizeLimit) -> Result<Self, RangeConfigError> {
        let flag = if flag.is_empty() {
            DEFAULT_SERVICE_CLUSTER_IP_RANGE
        } else {
            flag
        };
        let entries: Vec<&str> = flag.split(',').collect();
        let primary_net = parse_sloppy_cidr(entries.first().copied().unwrap_or_default())
            .ok_or(RangeConfigError::PrimaryNotCidr)?;
        // `ServiceIPRange`: min(RangeSize, 65536) must be at least 8.
        let primary_probe = ServiceCidr {
            net: primary_net.trunc(),
            usable: 0,
        };
        if primary_probe.upstream_range_size().min(65_536) < 8 {
            return Err(RangeConfigError::PrimaryRange(Box::new(
                RangeConfigError::TooSmall,
            )));
        }
        let secondary_net = match entries.get(1) {
            Some(entry) => {
                Some(parse_sloppy_cidr(entry).ok_or(RangeConfigError::SecondaryNotCidr)?)
            }
            None => None,
        };

        let mut errors = Vec::new();
        if entries.len() > 2 {
            errors.push(RangeConfigError::TooManyEntries);
        }
        if limit == BitmapSizeLimit::Enforced
            && let Some(e) = too_large(&primary_net, "--service-cluster-ip-range")
        {
            errors.push(e);
        }
        if let Some(secondary) = &secondary_net {
            if family_of_net(secondary) == family_of_net(&primary_net) {
                errors.push(RangeConfigError::SameFamily);
            }
            if limit == BitmapSizeLimit::Enforced
                && let Some(e) = too_large(secondary, "--service-cluster-ip-range[1]")
            {
                errors.push(e);
            }
        }
        if !errors.is_empty() {
            return Err(RangeConfigError::Several(errors));
        }
        let primary = ServiceCidr::new(primary_net)?;
        let secondary = secondary_net.map(ServiceCidr::new).transpose()?;
        Ok(ServiceClusterIpRanges { primary, secondary })
    }

    /// The ranges, primary first.
    pub fn all(&self) -> Vec<&ServiceCidr> {
        std::iter::once(&self.primary)
            .chain(self.secondary.as_ref())
            .collect()
    }

    /// The range of `family`, if configured.
    pub fn for_family(&self, family: IpFamily) -> Option<&ServiceCidr> {
        self.all().into_iter().find(|r| r.family() == family)
    }

    /// Whether two families are configured.
    pub fn is_dual_stack(&self) -> bool {
        self.secondary.is_some()
    }

    /// The address of the `default/kubernetes` Service.
    pub fn kubernetes_service_ip(&self) -> Option<IpAddr> {
        self.primary.kubernetes_service_ip()
    }
}

/// Go's `ParseCIDRSloppy` keeps host bits in the address but masks the network; `ipnet` does
/// the same once truncated.
fn parse_sloppy_cidr(entry: &str) -> Option<IpNet> {
    entry.parse::<IpNet>().ok().map(|n| n.trunc())
}

fn family_of_net(net: &IpNet) -> IpFamily {
    match net {
        IpNet::V4(_) => IpFamily::V4,
        IpNet::V6(_) => IpFamily::V6,
    }
}

fn too_large(net: &IpNet, flag: &'static str) -> Option<RangeConfigError> {
    const MAX_CIDR_BITS: u8 = 20;
    let bits = net.max_prefix_len();
    (host_bits(net) > MAX_CIDR_BITS).then_some(RangeConfigError::TooLarge {
        flag,
        bits,
        min_prefix: bits - MAX_CIDR_BITS,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> ServiceCidr {
        ServiceCidr::parse(s).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// CIDR, upstream's bitmap size, svcplane's usable size, first, last.
    type UsableRow<'a> = (&'a str, u64, u64, Option<&'a str>, Option<&'a str>);

    /// §2.1's table, with svcplane's uncapped IPv6 sizes where they differ from upstream's.
    #[test]
    fn usable_range_table() {
        let rows: &[UsableRow] = &[
            (
                "10.96.0.0/12",
                1_048_574,
                1_048_574,
                Some("10.96.0.1"),
                Some("10.111.255.254"),
            ),
            (
                "10.0.0.0/15",
                131_070,
                131_070,
                Some("10.0.0.1"),
                Some("10.1.255.254"),
            ),
            (
                "192.168.1.0/24",
                254,
                254,
                Some("192.168.1.1"),
                Some("192.168.1.254"),
            ),
            (
                "192.168.1.0/25",
                126,
                126,
                Some("192.168.1.1"),
                Some("192.168.1.126"),
            ),
            (
                "10.96.0.0/28",
                14,
                14,
                Some("10.96.0.1"),
                Some("10.96.0.14"),
            ),
            (
                "192.168.1.0/29",
                6,
                6,
                Some("192.168.1.1"),
                Some("192.168.1.6"),
            ),
            (
                "192.168.1.240/30",
                2,
                2,
                Some("192.168.1.241"),
                Some("192.168.1.242"),
            ),
            ("192.168.1.0/31", 0, 0, None, None),
            ("192.168.1.0/32", 0, 0, None, None),
            (
                "2001:db8:1::/64",
                65_535,
                u64::MAX,
                Some("2001:db8:1::1"),
                Some("2001:db8:1::ffff:ffff:ffff:ffff"),
            ),
            (
                "fd00::/64",
                65_535,
                u64::MAX,
                Some("fd00::1"),
                Some("fd00::ffff:ffff:ffff:ffff"),
            ),
            (
                "2001:db8::/112",
                65_535,
                65_535,
                Some("2001:db8::1"),
                Some("2001:db8::ffff"),
            ),
            (
                "2001:db8:1::/116",
                4_095,
                4_095,
                Some("2001:db8:1::1"),
                Some("2001:db8:1::fff"),
            ),
            ("fd00::/120", 255, 255, Some("fd00::1"), Some("fd00::ff")),
            ("fd00::/126", 3, 3, Some("fd00::1"), Some("fd00::3")),
            ("fd00::/127", 0, 0, None, None),
            ("fd00::/128", 0, 0, None, None),
        ];
        for (c, upstream, ours, first, last) in rows {
            let r = cidr(c);
            assert_eq!(r.upstream_bitmap_size(), *upstream, "{c} upstream");
            assert_eq!(r.usable_size(), *ours, "{c} usable");
            assert_eq!(r.first(), first.map(ip), "{c} first");
            assert_eq!(r.last(), last.map(ip), "{c} last");
        }
    }

    #[test]
    fn upstream_caps_the_48_at_65535() {
        // A4: upstream's bitmap over 2001:db8:1::/48 offers 65535 addresses; svcplane refuses
        // prefixes shorter than /64 like the IPAddress allocator (A14).
        let net: IpNet = "2001:db8:1::/48".parse().unwrap();
        let probe = ServiceCidr { net, usable: 0 };
        assert_eq!(probe.upstream_bitmap_size(), 65_535);
        assert_eq!(
            ServiceCidr::new(net).unwrap_err().to_string(),
            "shortest allowed prefix length for service CIDR is 64, got 48"
        );
        assert_eq!(
            ServiceCidr::parse("fd00::/63").unwrap_err().to_string(),
            "shortest allowed prefix length for service CIDR is 64, got 63"
        );
    }

    /// A9 (`Test_calculateRangeOffset`) plus §2.2's derived rows.
    #[test]
    fn static_band_offsets() {
        let rows = [
            ("192.168.1.1/32", 0),
            ("fd00::1/128", 0),
            ("192.168.1.1/30", 0),
            ("fd00::1/126", 0),
            ("192.168.1.1/28", 0),
            ("192.168.1.1/27", 16),
            ("fd00::1/124", 0),
            ("fd00::1/122", 16),
            ("192.168.1.1/22", 64),
            ("fd00::1/118", 64),
            ("192.168.1.1/8", 256),
            ("192.168.1.0/25", 16),
            ("10.96.0.0/24", 16),
            ("10.96.0.0/23", 32),
            ("10.96.0.0/21", 128),
            ("10.96.0.0/20", 256),
            ("10.96.0.0/12", 256),
            ("fd00::/120", 16),
            ("fd00::/112", 256),
            ("fd00::/64", 256),
        ];
        for (c, offset) in rows {
            assert_eq!(cidr(c).static_band_size(), offset, "{c}");
        }
        // fd00::/12 is refused by svcplane; upstream's formula still gives 256 for it.
        assert_eq!(static_band_size(MAX_INT64), 256);
    }

    #[test]
    fn offsets_round_trip_and_exclude_network_and_broadcast() {
        let r = cidr("192.168.1.0/24");
        assert_eq!(r.offset_of(ip("192.168.1.0")), None);
        assert_eq!(r.offset_of(ip("192.168.1.255")), None);
        assert_eq!(r.offset_of(ip("192.168.1.1")), Some(0));
        assert_eq!(r.offset_of(ip("192.168.2.2")), None);
        assert_eq!(r.offset_of(ip("fd00::1")), None);
        let v6 = cidr("fd00::/64");
        assert_eq!(
            v6.offset_of(ip("fd00::ffff:ffff:ffff:ffff")),
            Some(u64::MAX - 1)
        );
        assert_eq!(v6.offset_of(ip("fd00:0:0:1::")), None);
        assert_eq!(v6.address_at(0x100), Some(ip("fd00::101")));
    }

    /// A18 and the other §2.5 rules.
    #[test]
    fn service_cluster_ip_range_flag() {
        let ok = |flag: &str, limit| ServiceClusterIpRanges::parse(flag, limit).unwrap();
        let err = |flag: &str, limit| {
            ServiceClusterIpRanges::parse(flag, limit)
                .unwrap_err()
                .to_string()
        };
        use BitmapSizeLimit::*;
        assert_eq!(
            ok("10.92.0.0/12", Enforced).primary.to_string(),
            "10.80.0.0/12"
        );
        assert_eq!(ok("3000::/108", Enforced).primary.to_string(), "3000::/108");
        assert_eq!(
            err("10.92.0.0/8", Enforced),
            "specified --service-cluster-ip-range is too large; for 32-bit addresses, the mask must be >= 12"
        );
        assert_eq!(
            err("3000::/64", Enforced),
            "specified --service-cluster-ip-range is too large; for 128-bit addresses, the mask must be >= 108"
        );
        assert_eq!(ok("3000::/64", Lifted).primary.usable_size(), u64::MAX);
        assert_eq!(
            ok("10.0.0.0/8", Lifted).primary.usable_size(),
            (1 << 24) - 2
        );
        let tiny = ServiceClusterIpRanges::parse("10.0.0.0/30", Enforced).unwrap_err();
        assert_eq!(
            tiny,
            RangeConfigError::PrimaryRange(Box::new(RangeConfigError::TooSmall))
        );
        assert_eq!(
            tiny.to_string(),
            "error determining service IP ranges for primary service cidr: the service cluster IP range must be at least 8 IP addresses"
        );
        assert_eq!(
            RangeConfigError::TooSmall.to_string(),
            "the service cluster IP range must be at least 8 IP addresses"
        );
        assert_eq!(
            ok("10.0.0.0/29", Enforced).kubernetes_service_ip(),
            Some(ip("10.0.0.1"))
        );
        assert_eq!(
            ok("10.96.0.0/12", Enforced).kubernetes_service_ip(),
            Some(ip("10.96.0.1"))
        );
        assert_eq!(
            ok("fd00::/108", Enforced).kubernetes_service_ip(),
            Some(ip("fd00::1"))
        );
        assert!(ServiceClusterIpRanges::parse("fd00::/125", Enforced).is_ok());
        assert!(ServiceClusterIpRanges::parse("fd00::/126", Enforced).is_err());
        assert_eq!(
            err("10.0.0.0/24,10.1.0.0/24", Enforced),
            "--service-cluster-ip-range[0] and --service-cluster-ip-range[1] must be of different IP family"
        );
        assert_eq!(
            err("10.0.0.0/24,fd00::/108,fd01::/108", Enforced),
            "--service-cluster-ip-range must not contain more than two entries"
        );
        assert_eq!(
            err("10.0.0.0/24,10.1.0.0/8", Enforced),
            "[--service-cluster-ip-range[0] and --service-cluster-ip-range[1] must be of different IP family, specified --service-cluster-ip-range[1] is too large; for 32-bit addresses, the mask must be >= 12]"
        );
        assert_eq!(
            err("banana", Enforced),
            "service-cluster-ip-range[0] is not a valid cidr"
        );
        assert_eq!(
            err("10.0.0.0/24,banana", Enforced),
            "service-cluster-ip-range[1] is not an ip net"
        );
        let dual = ok("10.96.0.0/12,fd00::/108", Enforced);
        assert!(dual.is_dual_stack());
        assert_eq!(
            dual.for_family(IpFamily::V6).map(|r| r.to_string()),
            Some("fd00::/108".into())
        );
        assert_eq!(ok("", Enforced).primary.to_string(), "10.0.0.0/24");
    }
}
