//! IP and CIDR validation of upstream's legacy ("sloppy") fields, and the special-address
//! checks shared by Endpoints, EndpointSlices and `externalIPs`. The parsing itself is
//! [`gocompat::ip`].

use std::net::IpAddr;

// One Go-faithful parser for the workspace; IPv4-mapped IPv6 stays IPv6 and the checks below
// ask `to_ipv4` when Go's view matters.
use gocompat::ip::{is_ipv6, parse_cidr_sloppy, parse_ip_sloppy, to_ipv4};

use crate::field::{FieldError, FieldPath, FieldValue};

/// Detail of an unparseable IP in a legacy field.
pub const INVALID_IP_MSG: &str = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)";
/// Detail of an unparseable CIDR in a legacy field.
pub const INVALID_CIDR_MSG: &str =
    "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)";

/// `validation.IsValidIP` for legacy fields.
pub fn validate_ip(value: &str, path: &FieldPath) -> Vec<FieldError> {
    if parse_ip_sloppy(value).is_some() {
        Vec::new()
    } else {
        vec![FieldError::invalid(
            path.clone(),
            FieldValue::Str(value.to_owned()),
            INVALID_IP_MSG,
        )]
    }
}

/// `validation.IsValidCIDR` for legacy fields.
pub fn validate_cidr(value: &str, path: &FieldPath) -> Vec<FieldError> {
    if parse_cidr_sloppy(value).is_some() {
        Vec::new()
    } else {
        vec![FieldError::invalid(
            path.clone(),
            FieldValue::Str(value.to_owned()),
            INVALID_CIDR_MSG,
        )]
    }
}

/// `validation.IsValidIPv4Address`
pub fn validate_ipv4_address(value: &str, path: &FieldPath) -> Vec<FieldError> {
    match parse_ip_sloppy(value).and_then(to_ipv4) {
        Some(_) => Vec::new(),
        None => vec![FieldError::invalid(
            path.clone(),
            FieldValue::Str(value.to_owned()),
            "must be a valid IPv4 address",
        )],
    }
}

/// `validation.IsValidIPv6Address`
pub fn validate_ipv6_address(value: &str, path: &FieldPath) -> Vec<FieldError> {
    match parse_ip_sloppy(value) {
        Some(ip) if is_ipv6(ip) => Vec::new(),
        _ => vec![FieldError::invalid(
            path.clone(),
            FieldValue::Str(value.to_owned()),
            "must be a valid IPv6 address",
        )],
    }
}

/// The detail of `ValidateNonSpecialIP`'s loopback error.
pub const LOOPBACK_DETAIL: &str = "may not be in the loopback range (127.0.0.0/8, ::1/128)";

/// `ValidateNonSpecialIP`: rejects unspecified, loopback, link-local and link-local multicast
/// addresses, with Go's `net.IP` classification (IPv4-mapped IPv6 counts as IPv4).
pub fn validate_non_special_ip(value: &str, path: &FieldPath) -> Vec<FieldError> {
    let invalid = |detail: String| {
        FieldError::invalid(path.clone(), FieldValue::Str(value.to_owned()), detail)
    };
    let Some(ip) = parse_ip_sloppy(value) else {
        return vec![invalid("must be a valid IP address".to_owned())];
    };
    let mut errs = Vec::new();
    let (unspecified, loopback, link_local, link_local_multicast) = match to_ipv4(ip) {
        Some(v4) => {
            let o = v4.octets();
            (
                v4.is_unspecified(),
                o[0] == 127,
                o[0] == 169 && o[1] == 254,
                o[0] == 224 && o[1] == 0 && o[2] == 0,
            )
        }
        None => {
            let IpAddr::V6(v6) = ip else {
                return errs;
            };
            let o = v6.octets();
            (
                v6.is_unspecified(),
                v6.is_loopback(),
                o[0] == 0xfe && o[1] & 0xc0 == 0x80,
                o[0] == 0xff && o[1] & 0x0f == 0x02,
            )
        }
    };
    if unspecified {
        errs.push(invalid(format!("may not be unspecified ({value})")));
    }
    if loopback {
        errs.push(invalid(LOOPBACK_DETAIL.to_owned()));
    }
    if link_local {
        errs.push(invalid(
            "may not be in the link-local range (169.254.0.0/16, fe80::/10)".to_owned(),
        ));
    }
    if link_local_multicast {
        errs.push(invalid(
            "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)".to_owned(),
        ));
    }
    errs
}
