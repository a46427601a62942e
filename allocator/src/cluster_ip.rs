//! `ClusterIpAllocator`: one family's ClusterIPs, with KEP-3070's static and dynamic bands.

use std::net::IpAddr;

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::AllocationError;
use crate::offset_set::OffsetSet;
use crate::service_cidr::ServiceCidr;

/// A serialisable copy of an allocator's state: the range and the allocated offsets as
/// inclusive runs (the counterpart of upstream's `RangeAllocation`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeSnapshot {
    /// The range, e.g. `10.96.0.0/12` or `30000-32767`.
    pub range: String,
    /// Allocated offsets from the first usable value, as ascending inclusive runs.
    pub allocated: Vec<(u64, u64)>,
}

/// Allocates ClusterIPs of one CIDR. Dynamic allocations come from the upper band first,
/// starting at a random address as upstream does, then from the static band.
#[derive(Debug, Clone)]
pub struct ClusterIpAllocator {
    cidr: ServiceCidr,
    used: OffsetSet,
    rng: SmallRng,
}

impl ClusterIpAllocator {
    /// An empty allocator over `cidr`, seeded from the thread's RNG.
    pub fn new(cidr: ServiceCidr) -> Self {
        Self::with_seed(cidr, rand::random())
    }

    /// An empty allocator whose random starts are reproducible.
    pub fn with_seed(cidr: ServiceCidr, seed: u64) -> Self {
        let used = OffsetSet::new(cidr.usable_size());
        ClusterIpAllocator {
            cidr,
            used,
            rng: SmallRng::seed_from_u64(seed),
        }
    }

    /// The CIDR this allocator serves.
    pub fn cidr(&self) -> &ServiceCidr {
        &self.cidr
    }

    fn not_in_range(&self, ip: impl ToString) -> AllocationError {
        AllocationError::IpNotInRange {
            ip: ip.to_string(),
            valid_range: self.cidr.to_string(),
        }
    }

    /// Claims `ip` (`Allocate`): any usable address, in either band.
    pub fn allocate(&mut self, ip: IpAddr) -> Result<(), AllocationError> {
        let offset = self
            .cidr
            .offset_of(ip)
            .ok_or_else(|| self.not_in_range(ip))?;
        if self.used.insert(offset) {
            Ok(())
        } else {
            Err(AllocationError::IpAllocated)
        }
    }

    /// Claims a free address (`AllocateNext`): random start in the dynamic band, scanning
    /// forward with wrap-around; then the same in the static band.
    pub fn allocate_next(&mut self) -> Result<IpAddr, AllocationError> {
        let size = self.used.len();
        let offset = self.cidr.static_band_size().min(size);
        let offset = self
            .claim_from_random_start(offset, size)
            .or_else(|| self.claim_from_random_start(0, offset))
            .ok_or(AllocationError::Full)?;
        self.cidr.address_at(offset).ok_or(AllocationError::Full)
    }

    /// Claims the first free offset of `lo..hi` from a random start, wrapping around once.
    fn claim_from_random_start(&mut self, lo: u64, hi: u64) -> Option<u64> {
        if lo >= hi {
            return None;
        }
        let start = self.rng.random_range(lo..hi);
        self.used.claim_next_free_wrapping(lo, hi, start)
    }

    /// Frees `ip`; out-of-range or unallocated addresses are a no-op, as upstream.
    pub fn release(&mut self, ip: IpAddr) -> bool {
        self.cidr
            .offset_of(ip)
            .is_some_and(|offset| self.used.remove(offset))
    }

    /// Whether `ip` is allocated (`Has`); false when out of range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.cidr
            .offset_of(ip)
            .is_some_and(|offset| self.used.contains(offset))
    }

    /// Upstream's DryRun `Allocate`: only the range check.
    pub fn dry_run_allocate(&self, ip: IpAddr) -> Result<(), AllocationError> {
        self.cidr
            .offset_of(ip)
            .map(|_| ())
            .ok_or_else(|| self.not_in_range(ip))
    }

    /// Upstream's DryRun `AllocateNext`: the network address, nothing allocated.
    pub fn dry_run_allocate_next(&self) -> IpAddr {
        self.cidr.net().network()
    }

    /// How many addresses are free.
    pub fn free(&self) -> u64 {
        self.used.len() - self.used.count()
    }

    /// How many addresses are allocated.
    pub fn used(&self) -> u64 {
        self.used.count()
    }

    /// Allocated addresses, ascending.
    pub fn iter(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.used
            .iter()
            .filter_map(|offset| self.cidr.address_at(offset))
    }

    /// A copy of the allocation state.
    pub fn snapshot(&self) -> RangeSnapshot {
        RangeSnapshot {
            range: self.cidr.to_string(),
            allocated: self.used.runs(),
        }
    }

    /// Replaces the allocation state with `snapshot`, which must be of the same CIDR.
    pub fn restore(&mut self, snapshot: &RangeSnapshot) -> Result<(), AllocationError> {
        if snapshot.range != self.cidr.to_string() {
            return Err(AllocationError::MismatchedNetwork);
        }
        self.used = restore_offsets(self.used.len(), snapshot)?;
        Ok(())
    }

    /// Heap bytes held by the allocation state (deterministic; see `OffsetSet::heap_bytes`).
    pub fn heap_bytes(&self) -> usize {
        self.used.heap_bytes()
    }
}

pub(crate) fn restore_offsets(
    len: u64,
    snapshot: &RangeSnapshot,
) -> Result<OffsetSet, AllocationError> {
    let corrupt = || AllocationError::CorruptSnapshot {
        range: snapshot.range.clone(),
    };
    let mut set = OffsetSet::new(len);
    for (start, end) in &snapshot.allocated {
        if start > end || *end >= len {
            return Err(corrupt());
        }
        for offset in *start..=*end {
            set.insert(offset);
        }
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn allocator(cidr: &str) -> ClusterIpAllocator {
        ClusterIpAllocator::with_seed(ServiceCidr::parse(cidr).unwrap(), 7)
    }

    fn not_in_range(ip: &str, range: &str) -> AllocationError {
        AllocationError::IpNotInRange {
            ip: ip.into(),
            valid_range: range.into(),
        }
    }

    /// A1 and A2.
    #[test]
    fn a1_ipv4_allocate() {
        let mut a = allocator("192.168.1.0/24");
        assert_eq!(a.free(), 254);
        for bad in ["192.168.0.1", "192.168.1.0", "192.168.1.255", "192.168.2.2"] {
            assert_eq!(
                a.allocate(ip(bad)),
                Err(not_in_range(bad, "192.168.1.0/24"))
            );
        }
        assert_eq!(
            a.allocate(ip("192.168.1.0")).unwrap_err().to_string(),
            "the provided IP (192.168.1.0) is not in the valid range. The range of valid IPs is 192.168.1.0/24"
        );
        assert_eq!(a.allocate(ip("192.168.1.1")), Ok(()));
        assert_eq!(
            a.allocate(ip("192.168.1.1")),
            Err(AllocationError::IpAllocated)
        );
        assert_eq!(a.free(), 253);
        assert_eq!(a.used(), 1);
    }

    /// A3.
    #[test]
    fn a3_ipv4_large() {
        let mut a = allocator("10.0.0.0/15");
        assert_eq!(a.free(), 131_070);
        assert_eq!(
            a.allocate(ip("10.0.0.0")),
            Err(not_in_range("10.0.0.0", "10.0.0.0/15"))
        );
        assert_eq!(
            a.allocate(ip("10.255.255.2")),
            Err(not_in_range("10.255.255.2", "10.0.0.0/15"))
        );
    }

    /// A4 adapted: the network address and addresses past the /64 are refused; the upstream
    /// cap does not apply, so `::1:0` is usable in svcplane (it is not upstream).
    #[test]
    fn a4_ipv6_bounds_without_the_cap() {
        let mut a = allocator("2001:db8:1::/64");
        assert_eq!(a.free(), u64::MAX);
        assert_eq!(
            a.allocate(ip("2001:db8:1::")),
            Err(not_in_range("2001:db8:1::", "2001:db8:1::/64"))
        );
        assert_eq!(a.allocate(ip("2001:db8:1::ffff")), Ok(()));
        assert_eq!(a.allocate(ip("2001:db8:1::1:0")), Ok(()));
        assert_eq!(a.allocate(ip("2001:db8:1:0:ffff:ffff:ffff:ffff")), Ok(()));
        assert_eq!(
            a.allocate(ip("2001:db8:1:1::")),
            Err(not_in_range("2001:db8:1:1::", "2001:db8:1::/64"))
        );
    }

    /// A5, A6.
    #[test]
    fn a5_a6_tiny_ranges_are_full() {
        let mut a = allocator("192.168.1.0/32");
        assert_eq!(a.free(), 0);
        assert_eq!(a.allocate_next(), Err(AllocationError::Full));
        let mut a = allocator("192.168.1.0/31");
        assert_eq!(a.free(), 0);
        assert_eq!(a.allocate_next(), Err(AllocationError::Full));
        assert_eq!(
            a.allocate(ip("192.168.1.1")),
            Err(not_in_range("192.168.1.1", "192.168.1.0/31"))
        );
        for v6 in ["fd00::/127", "fd00::/128"] {
            assert_eq!(allocator(v6).allocate_next(), Err(AllocationError::Full));
        }
    }

    /// A7.
    #[test]
    fn a7_small_range() {
        let mut a = allocator("192.168.1.240/30");
        assert_eq!(a.free(), 2);
        let first = a.allocate_next().unwrap();
        let second = a.allocate_next().unwrap();
        let got: BTreeSet<IpAddr> = [first, second].into();
        assert_eq!(got, [ip("192.168.1.241"), ip("192.168.1.242")].into());
        assert_eq!(a.allocate_next(), Err(AllocationError::Full));
        assert_eq!(
            a.allocate(ip("192.168.1.241")),
            Err(AllocationError::IpAllocated)
        );
    }

    /// A8: dynamic allocation fills the upper band before touching the static band.
    #[test]
    fn a8_static_band_is_used_last() {
        let mut a = allocator("192.168.1.0/25");
        assert_eq!(a.cidr().static_band_size(), 16);
        let mut got = BTreeSet::new();
        for _ in 0..110 {
            got.insert(a.allocate_next().unwrap());
        }
        let expected: BTreeSet<IpAddr> =
            (17..=126).map(|h| ip(&format!("192.168.1.{h}"))).collect();
        assert_eq!(got, expected);
        assert_eq!(a.free(), 16);
        for h in 1..=16 {
            assert_eq!(a.allocate(ip(&format!("192.168.1.{h}"))), Ok(()));
        }
        assert_eq!(a.free(), 0);
        assert!(a.release(ip("192.168.1.10")));
        assert_eq!(a.allocate_next(), Ok(ip("192.168.1.10")));
    }

    /// Once the dynamic band is full, dynamic allocation falls back to the static band.
    #[test]
    fn dynamic_falls_back_to_static_band() {
        let mut a = allocator("10.96.0.0/24");
        for h in 17..=254 {
            a.allocate(ip(&format!("10.96.0.{h}"))).unwrap();
        }
        let next = a.allocate_next().unwrap();
        assert!(a.cidr().offset_of(next).unwrap() < 16, "{next}");
    }

    /// A10, A12: the last IPv6 address is usable; bands of a /120.
    #[test]
    fn a10_a12_ipv6_small() {
        let mut a = allocator("2001:db8:1::/116");
        assert_eq!(a.free(), 4095);
        assert!(a.allocate(ip("2001:db8:1::")).is_err());
        assert!(a.allocate(ip("2001:db8::1")).is_err());
        assert_eq!(a.allocate(ip("2001:db8:1::fff")), Ok(()));

        let mut a = allocator("fd00::/120");
        assert_eq!(a.free(), 255);
        assert_eq!(a.cidr().static_band_size(), 16);
        let mut got = BTreeSet::new();
        for _ in 0..(255 - 16) {
            got.insert(a.allocate_next().unwrap());
        }
        assert_eq!(got.first(), Some(&ip("fd00::11")));
        assert_eq!(got.last(), Some(&ip("fd00::ff")));
    }

    /// A13 (svcplane side): a /64's dynamic band starts at ::101 and reaches the all-ones host.
    #[test]
    fn a13_ipv6_64_dynamic_band() {
        let mut a = allocator("fd00::/64");
        for _ in 0..1000 {
            let got = a.allocate_next().unwrap();
            assert!(a.cidr().offset_of(got).unwrap() >= 256, "{got}");
        }
        assert_eq!(a.used(), 1000);
        assert_eq!(a.cidr().kubernetes_service_ip(), Some(ip("fd00::1")));
    }

    /// A17.
    #[test]
    fn a17_dry_run() {
        let a = allocator("10.96.0.0/12");
        assert_eq!(a.dry_run_allocate_next(), ip("10.96.0.0"));
        assert_eq!(a.dry_run_allocate(ip("10.96.0.10")), Ok(()));
        assert!(a.dry_run_allocate(ip("10.96.0.0")).is_err());
        assert_eq!(a.used(), 0);
    }

    /// The `kubernetes` Service's address sits in the static band and can be claimed there.
    #[test]
    fn reserved_first_address() {
        let mut a = allocator("10.96.0.0/12");
        let first = a.cidr().kubernetes_service_ip().unwrap();
        assert_eq!(first, ip("10.96.0.1"));
        assert!(a.cidr().offset_of(first).unwrap() < a.cidr().static_band_size());
        assert_eq!(a.allocate(first), Ok(()));
        assert!(a.contains(first));
    }

    #[test]
    fn full_range_reports_full_and_release_reopens() {
        let mut a = allocator("10.96.0.0/28");
        for _ in 0..14 {
            a.allocate_next().unwrap();
        }
        assert_eq!(a.allocate_next(), Err(AllocationError::Full));
        assert!(a.release(ip("10.96.0.5")));
        assert!(!a.release(ip("10.96.0.5")));
        assert!(!a.release(ip("10.0.0.1")));
        assert_eq!(a.allocate_next(), Ok(ip("10.96.0.5")));
    }

    #[test]
    fn restore_refuses_another_range() {
        let mut a = allocator("10.96.0.0/12");
        let other = allocator("10.0.0.0/24").snapshot();
        assert_eq!(a.restore(&other), Err(AllocationError::MismatchedNetwork));
        let corrupt = RangeSnapshot {
            range: "10.0.0.0/24".into(),
            allocated: vec![(250, 260)],
        };
        let mut b = allocator("10.0.0.0/24");
        assert!(matches!(
            b.restore(&corrupt),
            Err(AllocationError::CorruptSnapshot { .. })
        ));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Next,
        Allocate(u64),
        Release(u64),
    }

    fn ops() -> impl Strategy<Value = Vec<Op>> {
        proptest::collection::vec(
            prop_oneof![
                3 => Just(Op::Next),
                1 => (0u64..600).prop_map(Op::Allocate),
                2 => (0u64..600).prop_map(Op::Release),
            ],
            0..300,
        )
    }

    proptest! {
        #[test]
        fn never_hands_out_twice_and_counts_stay_consistent(
            cidr in prop_oneof![Just("10.0.0.0/23"), Just("10.0.0.0/27"), Just("fd00::/64"), Just("fd00::/119")],
            seed in any::<u64>(),
            ops in ops(),
        ) {
            let mut a = ClusterIpAllocator::with_seed(ServiceCidr::parse(cidr).unwrap(), seed);
            let total = a.free();
            let mut held: BTreeSet<IpAddr> = BTreeSet::new();
            for op in ops {
                match op {
                    Op::Next => match a.allocate_next() {
                        Ok(got) => prop_assert!(held.insert(got), "handed out twice: {}", got),
                        Err(e) => {
                            prop_assert_eq!(e, AllocationError::Full);
                            prop_assert_eq!(held.len() as u64, total);
                        }
                    },
                    Op::Allocate(o) => {
                        let Some(target) = a.cidr().address_at(o) else { continue };
                        let fresh = !held.contains(&target);
                        prop_assert_eq!(a.allocate(target).is_ok(), fresh);
                        held.insert(target);
                    }
                    Op::Release(o) => {
                        let Some(target) = a.cidr().address_at(o) else { continue };
                        prop_assert_eq!(a.release(target), held.remove(&target));
                        prop_assert!(!a.contains(target));
                        // Released addresses are available again.
                        prop_assert_eq!(a.allocate(target), Ok(()));
                        prop_assert!(a.release(target));
                    }
                }
                prop_assert_eq!(a.used(), held.len() as u64);
                prop_assert_eq!(a.used() + a.free(), total);
            }
            prop_assert_eq!(a.iter().collect::<Vec<_>>(), held.iter().copied().collect::<Vec<_>>());
            let snapshot = a.snapshot();
            let mut b = ClusterIpAllocator::with_seed(ServiceCidr::parse(cidr).unwrap(), 1);
            b.restore(&snapshot).unwrap();
            prop_assert_eq!(b.snapshot(), snapshot);
            prop_assert_eq!(b.iter().collect::<Vec<_>>(), a.iter().collect::<Vec<_>>());
            prop_assert_eq!(b.free(), a.free());
        }
    }
}

/// Memory targets of the issue, measured with the deterministic `heap_bytes`.
#[cfg(test)]
mod memory_tests {
    use super::*;

    #[test]
    fn ipv4_12_stays_under_160_kib_empty_and_full() {
        let mut a = ClusterIpAllocator::with_seed(ServiceCidr::parse("10.96.0.0/12").unwrap(), 1);
        assert!(a.heap_bytes() < 160 * 1024, "{}", a.heap_bytes());
        while a.allocate_next().is_ok() {}
        assert_eq!(a.free(), 0);
        assert!(a.heap_bytes() < 160 * 1024, "{}", a.heap_bytes());
    }

    #[test]
    fn ipv6_64_with_a_million_allocations_stays_under_64_mib() {
        let mut a = ClusterIpAllocator::with_seed(ServiceCidr::parse("fd00::/64").unwrap(), 1);
        assert_eq!(a.heap_bytes(), 0);
        for _ in 0..1_000_000 {
            a.allocate_next().unwrap();
        }
        assert_eq!(a.used(), 1_000_000);
        assert!(a.heap_bytes() < 64 * 1024 * 1024, "{}", a.heap_bytes());
    }
}
