//! Pod IP allocation from one node's pod CIDR, as a host-local IPAM plugin does: the network
//! address and the gateway (`.1`) are never handed out, nor is the IPv4 broadcast address.

use std::net::IpAddr;

use ipnet::IpNet;

/// Largest number of addresses tracked per CIDR; an IPv6 /64 is far more than any node can use.
const MAX_TRACKED: u64 = 1 << 20;

/// The first host offset handed out: offset 0 is the network, offset 1 the gateway.
const FIRST_OFFSET: u64 = 2;

/// Free and used addresses of one pod CIDR.
#[derive(Debug, Clone)]
pub struct PodCidrPool {
    cidr: IpNet,
    /// One past the last usable offset.
    end: u64,
    used: Vec<u64>,
    /// Where the next search starts, so allocation does not rescan the used prefix every time.
    cursor: u64,
    in_use: u64,
}

impl PodCidrPool {
    /// A pool over `cidr`, all free.
    pub fn new(cidr: IpNet) -> Self {
        let cidr = cidr.trunc();
        let host_bits = u32::from(cidr.max_prefix_len() - cidr.prefix_len());
        let size = if host_bits >= 63 {
            u64::MAX
        } else {
            1u64 << host_bits
        };
        let end = match cidr {
            // No broadcast address in /31 and /32, and nothing to give out there after the gateway.
            IpNet::V4(_) if host_bits >= 2 => size - 1,
            _ => size,
        }
        .min(MAX_TRACKED);
        let words = end.div_ceil(64) as usize;
        Self {
            cidr,
            end,
            used: vec![0; words],
            cursor: FIRST_OFFSET,
            in_use: 0,
        }
    }

    /// The CIDR.
    pub fn cidr(&self) -> IpNet {
        self.cidr
    }

    /// How many addresses the pool can hand out.
    pub fn capacity(&self) -> u64 {
        self.end.saturating_sub(FIRST_OFFSET)
    }

    /// How many are handed out.
    pub fn in_use(&self) -> u64 {
        self.in_use
    }

    fn is_used(&self, offset: u64) -> bool {
        self.used
            .get((offset / 64) as usize)
            .is_some_and(|w| w & (1 << (offset % 64)) != 0)
    }

    fn set(&mut self, offset: u64, used: bool) {
        if let Some(w) = self.used.get_mut((offset / 64) as usize) {
            if used {
                *w |= 1 << (offset % 64);
            } else {
                *w &= !(1 << (offset % 64));
            }
        }
    }

    fn address(&self, offset: u64) -> IpAddr {
        match self.cidr {
            IpNet::V4(n) => IpAddr::V4((u32::from(n.network()) + offset as u32).into()),
            IpNet::V6(n) => IpAddr::V6((u128::from(n.network()) + u128::from(offset)).into()),
        }
    }

    fn offset(&self, ip: IpAddr) -> Option<u64> {
        if !self.cidr.contains(&ip) {
            return None;
        }
        let offset = match (self.cidr, ip) {
            (IpNet::V4(n), IpAddr::V4(a)) => u64::from(u32::from(a) - u32::from(n.network())),
            (IpNet::V6(n), IpAddr::V6(a)) => {
                u64::try_from(u128::from(a) - u128::from(n.network())).ok()?
            }
            _ => return None,
        };
        (FIRST_OFFSET..self.end).contains(&offset).then_some(offset)
    }

    /// Hands out the next free address after the last one given (next-fit), or `None` when full.
    pub fn allocate(&mut self) -> Option<IpAddr> {
        if self.in_use >= self.capacity() {
            return None;
        }
        let span = self.capacity();
        let mut offset = self.cursor.clamp(FIRST_OFFSET, self.end - 1);
        for _ in 0..span {
            if !self.is_used(offset) {
                self.set(offset, true);
                self.in_use += 1;
                self.cursor = if offset + 1 >= self.end {
                    FIRST_OFFSET
                } else {
                    offset + 1
                };
                return Some(self.address(offset));
            }
            // Skip whole used words quickly.
            if offset.is_multiple_of(64)
                && offset + 64 <= self.end
                && self.used.get((offset / 64) as usize) == Some(&u64::MAX)
            {
                offset += 63;
            }
            offset += 1;
            if offset >= self.end {
                offset = FIRST_OFFSET;
            }
        }
        None
    }

    /// Marks `ip` as used (adopting an address a pod already has); false if it is outside the
    /// pool or already taken.
    pub fn claim(&mut self, ip: IpAddr) -> bool {
        match self.offset(ip) {
            Some(o) if !self.is_used(o) => {
                self.set(o, true);
                self.in_use += 1;
                true
            }
            _ => false,
        }
    }

    /// Frees `ip`; addresses outside the pool or already free are ignored.
    pub fn release(&mut self, ip: IpAddr) {
        if let Some(o) = self.offset(ip)
            && self.is_used(o)
        {
            self.set(o, false);
            self.in_use -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn ipv4_pool_skips_network_gateway_and_broadcast() {
        let mut p = PodCidrPool::new(net("10.244.1.0/29"));
        assert_eq!(p.capacity(), 5);
        let got: Vec<String> = std::iter::from_fn(|| p.allocate())
            .map(|ip| ip.to_string())
            .collect();
        assert_eq!(
            got,
            [
                "10.244.1.2",
                "10.244.1.3",
                "10.244.1.4",
                "10.244.1.5",
                "10.244.1.6"
            ]
        );
        assert_eq!(p.allocate(), None);
        p.release("10.244.1.4".parse().unwrap());
        assert_eq!(p.in_use(), 4);
        assert_eq!(p.allocate(), Some("10.244.1.4".parse().unwrap()));
    }

    #[test]
    fn next_fit_does_not_reuse_a_released_address_at_once() {
        let mut p = PodCidrPool::new(net("10.244.1.0/24"));
        let a = p.allocate().unwrap();
        let b = p.allocate().unwrap();
        p.release(a);
        let c = p.allocate().unwrap();
        assert_eq!(b.to_string(), "10.244.1.3");
        assert_eq!(c.to_string(), "10.244.1.4");
    }

    #[test]
    fn ipv6_pool_and_claims() {
        let mut p = PodCidrPool::new(net("fd00:10:244:1::/64"));
        assert_eq!(p.capacity(), MAX_TRACKED - 2);
        assert!(p.claim("fd00:10:244:1::2".parse().unwrap()));
        assert!(!p.claim("fd00:10:244:1::2".parse().unwrap()));
        assert!(!p.claim("fd00:10:244:2::5".parse().unwrap()));
        assert!(!p.claim("10.0.0.1".parse().unwrap()));
        assert_eq!(p.allocate().unwrap().to_string(), "fd00:10:244:1::3");
    }

    #[test]
    fn a_full_large_pool_allocates_every_address_once() {
        let mut p = PodCidrPool::new(net("10.0.0.0/16"));
        let mut seen = std::collections::HashSet::new();
        while let Some(ip) = p.allocate() {
            assert!(seen.insert(ip));
        }
        assert_eq!(seen.len() as u64, 65_536 - 3);
        assert_eq!(p.in_use(), p.capacity());
    }
}
