//! `--service-node-port-range`: parsing as apimachinery's `port_range.go` does.

use std::fmt;
use std::str::FromStr;

use gocompat::quote::go_quote;

use crate::error::RangeConfigError;

/// An inclusive range of ports, `base..base+size-1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortRange {
    base: u32,
    size: u32,
}

/// The default `--service-node-port-range`.
pub const DEFAULT_SERVICE_NODE_PORT_RANGE: PortRange = PortRange {
    base: 30000,
    size: 2768,
};

impl Default for PortRange {
    fn default() -> Self {
        DEFAULT_SERVICE_NODE_PORT_RANGE
    }
}

impl PortRange {
    /// Parses `LOW-HIGH`, `LOW+OFFSET` or `PORT`; surrounding whitespace is trimmed and the
    /// empty string is the empty range.
    pub fn parse(value: &str) -> Result<Self, RangeConfigError> {
        let value = value.trim();
        if value.is_empty() {
            return Ok(PortRange { base: 0, size: 0 });
        }
        let (low, high) = match (value.find('-'), value.find('+')) {
            (None, None) => {
                let port = atoi(value)?;
                (port, port)
            }
            (Some(h), None) => (atoi(&value[..h])?, atoi(&value[h + 1..])?),
            // Go's int addition wraps; an absurd offset therefore fails as "less than start".
            (None, Some(p)) => {
                let low = atoi(&value[..p])?;
                (low, low.wrapping_add(atoi(&value[p + 1..])?))
            }
            (Some(_), Some(_)) => {
                return Err(RangeConfigError::UnparsablePortRange(value.to_string()));
            }
        };
        if low > 65535 || high > 65535 {
            return Err(RangeConfigError::PortRangeTooHigh(value.to_string()));
        }
        if high < low {
            return Err(RangeConfigError::PortRangeReversed(value.to_string()));
        }
        // Both are within 0..=65535 here (Atoi of a negative needs a '-', handled above).
        let (Ok(low), Ok(high)) = (u32::try_from(low), u32::try_from(high)) else {
            return Err(RangeConfigError::PortRangeReversed(value.to_string()));
        };
        Ok(PortRange {
            base: low,
            size: high - low + 1,
        })
    }

    /// The first port.
    pub fn base(&self) -> u32 {
        self.base
    }

    /// How many ports the range holds.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Whether `port` lies in the range.
    pub fn contains(&self, port: i64) -> bool {
        port >= i64::from(self.base) && port - i64::from(self.base) < i64::from(self.size)
    }

    /// KEP-3668's static band size: `min(max(16, size/32), 128)`, 0 when `size <= 16`.
    pub fn static_band_size(&self) -> u32 {
        if self.size <= 16 {
            0
        } else {
            (self.size / 32).clamp(16, 128)
        }
    }
}

/// `LOW-HIGH` (a single port prints `30000-30000`); the empty range prints nothing.
impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.size == 0 {
            return Ok(());
        }
        write!(f, "{}-{}", self.base, self.base + self.size - 1)
    }
}

impl FromStr for PortRange {
    type Err = RangeConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Go's `strconv.Atoi`: optional sign, decimal digits, 64-bit.
fn atoi(s: &str) -> Result<i64, RangeConfigError> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(RangeConfigError::NotANumber {
            quoted: go_quote(s),
            reason: "invalid syntax",
        });
    }
    s.parse::<i64>().map_err(|_| RangeConfigError::NotANumber {
        quoted: go_quote(s),
        reason: "value out of range",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// P5 and the error cases of `port_range.go`.
    #[test]
    fn p5_parsing() {
        let ok = |s: &str| PortRange::parse(s).unwrap();
        let err = |s: &str| PortRange::parse(s).unwrap_err().to_string();
        let r = ok("30000-32767");
        assert_eq!((r.base(), r.size()), (30000, 2768));
        assert_eq!(r, PortRange::default());
        assert_eq!(ok("30000+100").to_string(), "30000-30100");
        assert_eq!(ok("30000+100").size(), 101);
        assert_eq!(ok("30000").to_string(), "30000-30000");
        assert_eq!(ok("30000").size(), 1);
        assert_eq!(ok("").size(), 0);
        assert_eq!(ok("").to_string(), "");
        assert_eq!(ok("  30000-32767 ").to_string(), "30000-32767");
        assert_eq!(ok("30000+2767"), PortRange::default());
        assert_eq!(
            err("32767-30000"),
            "end port cannot be less than start port: 32767-30000"
        );
        assert_eq!(
            err("30000-70000"),
            "the port range cannot be greater than 65535: 30000-70000"
        );
        assert_eq!(err("1-2+3"), "unable to parse port range: 1-2+3");
        assert_eq!(err("abc"), "strconv.Atoi: parsing \"abc\": invalid syntax");
        assert_eq!(err("-5"), "strconv.Atoi: parsing \"\": invalid syntax");
        assert_eq!(err("30000-"), "strconv.Atoi: parsing \"\": invalid syntax");
        assert_eq!(
            err("99999999999999999999"),
            "strconv.Atoi: parsing \"99999999999999999999\": value out of range"
        );
        assert_eq!(
            err("70000"),
            "the port range cannot be greater than 65535: 70000"
        );
        assert_eq!(ok("0-65535").size(), 65536);
    }

    /// P2 and §3.2's table.
    #[test]
    fn p2_static_band_sizes() {
        for (size, offset) in [
            (2768, 86),
            (10, 0),
            (16, 0),
            (17, 16),
            (128, 16),
            (129, 16),
            (201, 16),
            (2048, 64),
            (4096, 128),
            (8192, 128),
        ] {
            let r = PortRange { base: 30000, size };
            assert_eq!(r.static_band_size(), offset, "size {size}");
        }
    }
}
