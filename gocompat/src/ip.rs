//! IP literals as Kubernetes reads its legacy fields: `netutils.ParseIPSloppy` and
//! `ParseCIDRSloppy` (k8s.io/utils), which are Go 1.16's `net.ParseIP` / `ParseCIDR` kept
//! alive because stored objects may hold IPv4 octets with leading zeros.
//!
//! Go 1.16 reads every IPv4 octet (also an IPv4 tail inside IPv6) as decimal with any number
//! of leading zeros, and every IPv6 group as hex with any number of leading zeros; Rust's
//! `FromStr` rejects both, so this is a parser of its own rather than a pre-pass over std.
//!
//! Go stores IPv4 as the 16-byte IPv4-mapped form, so `1.2.3.4` and `::ffff:1.2.3.4` are the
//! same `net.IP` there. Here they stay apart ([`parse_ip_sloppy`] keeps the family the text was
//! written in); callers that need Go's view use [`to_ipv4`], [`is_ipv6`] or [`go_ip_string`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const IPV6_LEN: usize = 16;
const IPV4_LEN: usize = 4;
// Go's `big`: any number this large has already failed, so the accumulators cannot overflow.
const BIG: u32 = 0xFF_FFFF;

// Go's `dtoi`: the decimal number at the start of `s` and the digits it took.
fn dtoi(s: &[u8]) -> Option<(u32, usize)> {
    let digits = s.iter().take_while(|b| b.is_ascii_digit()).count();
    let mut n: u32 = 0;
    for b in s.iter().take(digits) {
        n = n * 10 + u32::from(b - b'0');
        if n >= BIG {
            return None;
        }
    }
    (digits > 0).then_some((n, digits))
}

// Go's `xtoi`: the hex number at the start of `s` and the digits it took.
fn xtoi(s: &[u8]) -> Option<(u32, usize)> {
    let digits = s.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    let mut n: u32 = 0;
    for b in s.iter().take(digits) {
        n = n * 16 + char::from(*b).to_digit(16)?;
        if n >= BIG {
            return None;
        }
    }
    (digits > 0).then_some((n, digits))
}

// Go 1.16 `parseIPv4`, without the leading-zero check Go 1.17 added.
fn parse_ipv4(s: &[u8]) -> Option<Ipv4Addr> {
    let mut octets = [0u8; IPV4_LEN];
    let mut rest = s;
    for (i, octet) in octets.iter_mut().enumerate() {
        if i > 0 {
            rest = rest.strip_prefix(b".")?;
        }
        let (n, used) = dtoi(rest)?;
        *octet = u8::try_from(n).ok()?;
        rest = rest.get(used..)?;
    }
    rest.is_empty().then_some(Ipv4Addr::from(octets))
}

// Go 1.16 `parseIPv6`: hex groups, at most one `::`, and an IPv4 tail only where it fills the
// last 32 bits (or anywhere after a `::`). Zones (`%eth0`) are not addresses here.
fn parse_ipv6(s: &[u8]) -> Option<Ipv6Addr> {
    let mut ip = [0u8; IPV6_LEN];
    let mut ellipsis: Option<usize> = None;
    let mut rest = s;
    if let Some(after) = rest.strip_prefix(b"::") {
        ellipsis = Some(0);
        rest = after;
        if rest.is_empty() {
            return Some(Ipv6Addr::UNSPECIFIED);
        }
    }
    let mut i = 0;
    while i < IPV6_LEN {
        let (n, used) = xtoi(rest)?;
        if n > 0xFFFF {
            return None;
        }
        if rest.get(used) == Some(&b'.') {
            if ellipsis.is_none() && i != IPV6_LEN - IPV4_LEN {
                return None;
            }
            let v4 = parse_ipv4(rest)?;
            ip.get_mut(i..i + IPV4_LEN)?.copy_from_slice(&v4.octets());
            rest = &[];
            i += IPV4_LEN;
            break;
        }
        let group = u16::try_from(n).ok()?.to_be_bytes();
        ip.get_mut(i..i + 2)?.copy_from_slice(&group);
        i += 2;
        rest = rest.get(used..)?;
        if rest.is_empty() {
            break;
        }
        // A group is followed by `:` and more text.
        rest = match rest.strip_prefix(b":") {
            Some(after) if !after.is_empty() => after,
            _ => return None,
        };
        if let Some(after) = rest.strip_prefix(b":") {
            if ellipsis.is_some() {
                return None;
            }
            ellipsis = Some(i);
            rest = after;
            if rest.is_empty() {
                break;
            }
        }
    }
    if !rest.is_empty() {
        return None;
    }
    match ellipsis {
        Some(at) if i < IPV6_LEN => {
            let gap = IPV6_LEN - i;
            ip.copy_within(at..i, at + gap);
            ip.get_mut(at..at + gap)?.fill(0);
        }
        None if i < IPV6_LEN => return None,
        // `::` must stand for at least one zero group.
        Some(_) => return None,
        None => {}
    }
    Some(Ipv6Addr::from(ip))
}

/// `netutils.ParseIPSloppy`: Go 1.16 `net.ParseIP`; IPv4-mapped IPv6 text stays IPv6.
pub fn parse_ip_sloppy(s: &str) -> Option<IpAddr> {
    let bytes = s.as_bytes();
    // Go picks the grammar from the first separator it meets.
    match bytes.iter().find(|b| matches!(b, b'.' | b':'))? {
        b'.' => parse_ipv4(bytes).map(IpAddr::V4),
        _ => parse_ipv6(bytes).map(IpAddr::V6),
    }
}

/// `netutils.ParseCIDRSloppy`: the address as written (not masked) and the prefix length.
pub fn parse_cidr_sloppy(s: &str) -> Option<(IpAddr, u8)> {
    let (addr, mask) = s.split_once('/')?;
    let (ip, width) = match parse_ipv4(addr.as_bytes()) {
        Some(v4) => (IpAddr::V4(v4), 32),
        None => (IpAddr::V6(parse_ipv6(addr.as_bytes())?), 128),
    };
    let (len, used) = dtoi(mask.as_bytes())?;
    if used != mask.len() || len > width {
        return None;
    }
    u8::try_from(len).ok().map(|len| (ip, len))
}

/// Go's `ip.To4()`: the IPv4 form of an IPv4 or IPv4-mapped IPv6 address.
pub fn to_ipv4(ip: IpAddr) -> Option<Ipv4Addr> {
    match ip {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(v6) => v6.to_ipv4_mapped(),
    }
}

/// `netutils.IsIPv6`: an address Go does not see as IPv4 (IPv4-mapped IPv6 is IPv4).
pub fn is_ipv6(ip: IpAddr) -> bool {
    to_ipv4(ip).is_none()
}

/// Go's `net.IP.String()`: IPv4-mapped IPv6 prints as dotted IPv4.
pub fn go_ip_string(ip: IpAddr) -> String {
    ip.to_canonical().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v4(s: &str) -> Option<IpAddr> {
        Some(IpAddr::V4(s.parse().unwrap()))
    }

    fn v6(s: &str) -> Option<IpAddr> {
        Some(IpAddr::V6(s.parse().unwrap()))
    }

    /// Go 1.16 `net.ParseIP` as forked into k8s.io/utils, case by case.
    #[test]
    fn parse_ip_sloppy_table() {
        let cases: &[(&str, Option<IpAddr>)] = &[
            ("127.0.1.2", v4("127.0.1.2")),
            ("010.001.0.1", v4("10.1.0.1")),
            ("0001.2.3.4", v4("1.2.3.4")),
            ("000000000000000000010.0.0.0255", v4("10.0.0.255")),
            ("0.0.0.0", v4("0.0.0.0")),
            ("255.255.255.255", v4("255.255.255.255")),
            ("256.1.1.1", None),
            ("1.2.3.0256", None),
            ("1.2.3", None),
            ("1.2.3.4.5", None),
            ("1.2.3.", None),
            (".1.2.3", None),
            ("1..2.3", None),
            ("1.2.3.4:80", None),
            ("1.2.3.-4", None),
            ("+1.2.3.4", None),
            ("0x1.2.3.4", None),
            ("", None),
            (" 1.2.3.4", None),
            ("1.2.3.4 ", None),
            ("1.2.3.4\n", None),
            (":: ", None),
            ("abc", None),
            ("2001:4860:0:2001::68", v6("2001:4860:0:2001::68")),
            (
                "2001:4860:0000:2001:0000:0000:0000:0068",
                v6("2001:4860:0:2001::68"),
            ),
            ("00002001:0db8::1", v6("2001:db8::1")),
            ("2001:DB8::1", v6("2001:db8::1")),
            ("::", v6("::")),
            ("::1", v6("::1")),
            ("1::", v6("1::")),
            ("1:2:3:4:5:6:7::", v6("1:2:3:4:5:6:7:0")),
            ("::2:3:4:5:6:7:8", v6("0:2:3:4:5:6:7:8")),
            ("1:2:3:4:5:6:7:8", v6("1:2:3:4:5:6:7:8")),
            ("1:2:3:4:5:6:7:8::", None),
            ("1:2:3:4::5:6:7:8", None),
            ("1:2:3:4:5:6:7", None),
            ("1:2:3:4:5:6:7:8:9", None),
            ("1::2::3", None),
            (":::1", None),
            ("1:::2", None),
            (":1::", None),
            ("1:", None),
            ("1:2:3:4:5:6:7:8:", None),
            ("10000::1", None),
            ("fe80::1%eth0", None),
            ("fe80::1%1", None),
            ("[::1]", None),
            ("::ffff:1.2.3.4", v6("::ffff:1.2.3.4")),
            ("::ffff:01.2.3.4", v6("::ffff:1.2.3.4")),
            ("::ffff:010.000.001.0002", v6("::ffff:10.0.1.2")),
            ("::ffff:0001.2.3.4", v6("::ffff:1.2.3.4")),
            ("::ffff:256.2.3.4", None),
            ("::ffff:1.2.3", None),
            ("::ffff:1.2.3.4:5", None),
            ("::1.2.3.4", v6("::1.2.3.4")),
            ("1:2:3:4:5:6:1.2.3.4", v6("1:2:3:4:5:6:102:304")),
            ("1:2:3:4:5:1.2.3.4", None),
            ("1:2:3:4:5:6:7:1.2.3.4", None),
            ("1::5:6:7:1.2.3.4", v6("1::5:6:7:102:304")),
            ("1.2.3.4::", None),
            ("::ffff:a.2.3.4", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_ip_sloppy(text), *want, "{text:?}");
        }
    }

    /// Go 1.16 `net.ParseCIDR` as forked: the prefix is decimal (leading zeros allowed) and
    /// bounded by the width of the grammar the address parsed with.
    #[test]
    fn parse_cidr_sloppy_table() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let cases: &[(&str, Option<(IpAddr, u8)>)] = &[
            ("10.0.0.1/8", Some((ip("10.0.0.1"), 8))),
            ("010.000.000.000/08", Some((ip("10.0.0.0"), 8))),
            ("10.0.0.0/0032", Some((ip("10.0.0.0"), 32))),
            ("10.0.0.0/33", None),
            ("10.0.0.0/", None),
            ("10.0.0.0", None),
            ("10.0.0.0/+8", None),
            ("10.0.0.0/8 ", None),
            ("10.0.0.0/8/8", None),
            ("2001:db8::/64", Some((ip("2001:db8::"), 64))),
            ("2001:db8::/128", Some((ip("2001:db8::"), 128))),
            ("2001:db8::/129", None),
            ("::ffff:10.0.0.0/104", Some((ip("::ffff:10.0.0.0"), 104))),
            ("::ffff:010.0.0.0/120", Some((ip("::ffff:10.0.0.0"), 120))),
            ("fe80::%eth0/64", None),
            ("/8", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_cidr_sloppy(text), *want, "{text:?}");
        }
    }

    /// `To4`, `IsIPv6` and `String()` see IPv4-mapped IPv6 as IPv4; IPv4-compatible
    /// (`::1.2.3.4`) is IPv6 and prints in hex, as Go does.
    #[test]
    fn go_views_of_an_address() {
        let mapped = parse_ip_sloppy("::ffff:01.2.3.4").unwrap();
        assert_eq!(to_ipv4(mapped), Some(Ipv4Addr::new(1, 2, 3, 4)));
        assert!(!is_ipv6(mapped));
        assert_eq!(go_ip_string(mapped), "1.2.3.4");
        let compatible = parse_ip_sloppy("::1.2.3.4").unwrap();
        assert_eq!(to_ipv4(compatible), None);
        assert!(is_ipv6(compatible));
        assert_eq!(go_ip_string(compatible), "::102:304");
        let plain = parse_ip_sloppy("010.0.0.1").unwrap();
        assert!(!is_ipv6(plain));
        assert_eq!(go_ip_string(plain), "10.0.0.1");
        let v6 = parse_ip_sloppy("1234::5678:0000:0000:9abc:def0").unwrap();
        assert!(is_ipv6(v6));
        assert_eq!(go_ip_string(v6), "1234::5678:0:0:9abc:def0");
        assert_eq!(
            go_ip_string(parse_ip_sloppy("1:0:0:1::").unwrap()),
            "1:0:0:1::"
        );
    }

    proptest! {
        /// Every strict literal (what Rust's `FromStr` accepts) is also a Go 1.16 literal of
        /// the same address.
        #[test]
        fn strict_literals_parse_the_same(text in prop_oneof![
            "[0-9a-fA-F:.%]{0,24}",
            "(([0-9a-f]{1,4})?:){1,8}([0-9a-f]{1,4}|[0-9]{1,3}(\\.[0-9]{1,3}){3})?",
        ]) {
            if let Ok(strict) = text.parse::<IpAddr>() {
                prop_assert_eq!(parse_ip_sloppy(&text), Some(strict));
            }
        }

        /// Printed addresses read back as themselves, with any zero padding added.
        #[test]
        fn printed_addresses_round_trip(ip in any::<IpAddr>(), pad in 0usize..4) {
            prop_assert_eq!(parse_ip_sloppy(&ip.to_string()), Some(ip));
            let padded = match ip {
                IpAddr::V4(v4) => v4
                    .octets()
                    .iter()
                    .map(|o| format!("{}{o}", "0".repeat(pad)))
                    .collect::<Vec<_>>()
                    .join("."),
                IpAddr::V6(v6) => v6
                    .segments()
                    .iter()
                    .map(|g| format!("{}{g:x}", "0".repeat(pad)))
                    .collect::<Vec<_>>()
                    .join(":"),
            };
            prop_assert_eq!(parse_ip_sloppy(&padded), Some(ip));
        }
    }
}
