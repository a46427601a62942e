//! The errors of the allocators and of range configuration, worded as upstream words them.

use thiserror::Error;

/// Why an allocator refused an operation. `Display` is upstream's text byte for byte
/// (`ipallocator/interfaces.go`, `portallocator/allocator.go`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AllocationError {
    /// No free address or port is left in the band(s) searched (`ErrFull`).
    #[error("range is full")]
    Full,
    /// The requested IP is held already (`ipallocator.ErrAllocated`).
    #[error("provided IP is already allocated")]
    IpAllocated,
    /// The requested IP lies outside the usable addresses (`ipallocator.ErrNotInRange`).
    #[error(
        "the provided IP ({ip}) is not in the valid range. The range of valid IPs is {valid_range}"
    )]
    IpNotInRange {
        /// The requested IP as given.
        ip: String,
        /// The configured CIDR.
        valid_range: String,
    },
    /// A snapshot of another CIDR was offered for restore (`ipallocator.ErrMismatchedNetwork`).
    #[error("the provided network does not match the current range")]
    MismatchedNetwork,
    /// The requested port is held already (`portallocator.ErrAllocated`).
    #[error("provided port is already allocated")]
    PortAllocated,
    /// The requested port lies outside the node-port range (`portallocator.ErrNotInRange`).
    #[error("provided port is not in the valid range. The range of valid ports is {valid_ports}")]
    PortNotInRange {
        /// The range in `LOW-HIGH` form.
        valid_ports: String,
    },
    /// A snapshot of another port range was offered for restore (`portallocator.ErrMismatchedNetwork`).
    #[error("the provided port range does not match the current port range")]
    MismatchedPortRange,
    /// A snapshot names offsets beyond its own range (svcplane's own check; upstream trusts etcd).
    #[error("the snapshot holds offsets outside the range {range}")]
    CorruptSnapshot {
        /// The range the snapshot claims.
        range: String,
    },
}

/// Why a `--service-cluster-ip-range`, `--service-node-port-range` or CIDR was rejected.
/// `Display` is upstream's text (kube-apiserver `Complete`/`Validate`, `port_range.go`,
/// `ipallocator.NewIPAllocator`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RangeConfigError {
    /// The primary flag entry is not a CIDR.
    #[error("service-cluster-ip-range[0] is not a valid cidr")]
    PrimaryNotCidr,
    /// The secondary flag entry is not a CIDR.
    #[error("service-cluster-ip-range[1] is not an ip net")]
    SecondaryNotCidr,
    /// The primary range holds fewer than 8 addresses (wrapped by `PrimaryRange`).
    #[error("the service cluster IP range must be at least 8 IP addresses")]
    TooSmall,
    /// An error of the primary range, with the prefix `Complete` adds.
    #[error("error determining service IP ranges for primary service cidr: {0}")]
    PrimaryRange(Box<RangeConfigError>),
    /// More than two comma-separated entries.
    #[error("--service-cluster-ip-range must not contain more than two entries")]
    TooManyEntries,
    /// Both entries are of one family.
    #[error(
        "--service-cluster-ip-range[0] and --service-cluster-ip-range[1] must be of different IP family"
    )]
    SameFamily,
    /// More than 20 host bits while the legacy bitmap allocator is in use.
    #[error(
        "specified {flag} is too large; for {bits}-bit addresses, the mask must be >= {min_prefix}"
    )]
    TooLarge {
        /// `--service-cluster-ip-range` or `--service-cluster-ip-range[1]`.
        flag: &'static str,
        /// 32 or 128.
        bits: u8,
        /// `bits - 20`.
        min_prefix: u8,
    },
    /// IPv6 prefix shorter than /64 (`ipallocator.NewIPAllocator`).
    #[error("shortest allowed prefix length for service CIDR is 64, got {0}")]
    PrefixTooShort(u8),
    /// Several flag errors, aggregated like `utilerrors.NewAggregate` prints them.
    #[error("{}", aggregate(.0))]
    Several(Vec<RangeConfigError>),
    /// `port_range.go`: both `-` and `+` present.
    #[error("unable to parse port range: {0}")]
    UnparsablePortRange(String),
    /// `port_range.go`: an end above 65535.
    #[error("the port range cannot be greater than 65535: {0}")]
    PortRangeTooHigh(String),
    /// `port_range.go`: high below low.
    #[error("end port cannot be less than start port: {0}")]
    PortRangeReversed(String),
    /// Go's `strconv.Atoi` error for a non-number (`strconv.Atoi: parsing "x": invalid syntax`).
    #[error("strconv.Atoi: parsing {quoted}: {reason}")]
    NotANumber {
        /// The input, Go-`%q`-quoted.
        quoted: String,
        /// `invalid syntax` or `value out of range`.
        reason: &'static str,
    },
}

fn aggregate(errors: &[RangeConfigError]) -> String {
    match errors {
        [one] => one.to_string(),
        many => format!(
            "[{}]",
            many.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocation_errors_read_like_upstream() {
        let cases = [
            (AllocationError::Full, "range is full"),
            (
                AllocationError::IpAllocated,
                "provided IP is already allocated",
            ),
            (
                AllocationError::IpNotInRange {
                    ip: "10.0.0.300".into(),
                    valid_range: "10.96.0.0/12".into(),
                },
                "the provided IP (10.0.0.300) is not in the valid range. The range of valid IPs is 10.96.0.0/12",
            ),
            (
                AllocationError::MismatchedNetwork,
                "the provided network does not match the current range",
            ),
            (
                AllocationError::PortAllocated,
                "provided port is already allocated",
            ),
            (
                AllocationError::PortNotInRange {
                    valid_ports: "30000-32767".into(),
                },
                "provided port is not in the valid range. The range of valid ports is 30000-32767",
            ),
            (
                AllocationError::MismatchedPortRange,
                "the provided port range does not match the current port range",
            ),
        ];
        for (error, text) in cases {
            assert_eq!(error.to_string(), text);
        }
    }

    #[test]
    fn several_errors_aggregate_in_brackets() {
        let one = RangeConfigError::Several(vec![RangeConfigError::TooManyEntries]);
        assert_eq!(
            one.to_string(),
            "--service-cluster-ip-range must not contain more than two entries"
        );
        let two = RangeConfigError::Several(vec![
            RangeConfigError::TooManyEntries,
            RangeConfigError::SameFamily,
        ]);
        assert_eq!(
            two.to_string(),
            "[--service-cluster-ip-range must not contain more than two entries, --service-cluster-ip-range[0] and --service-cluster-ip-range[1] must be of different IP family]"
        );
    }
}
