//! `PortAllocator`: NodePorts of one range, with KEP-3668's static and dynamic bands.

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

use crate::cluster_ip::{RangeSnapshot, restore_offsets};
use crate::error::AllocationError;
use crate::offset_set::OffsetSet;
use crate::port_range::PortRange;

/// Allocates NodePorts. Dynamic allocations come from the upper band first, from a random
/// start, then from the static band; explicit requests may use any port of the range.
#[derive(Debug, Clone)]
pub struct PortAllocator {
    range: PortRange,
    /// The first offset of the dynamic (upper) band: the static band's size.
    dynamic_band_start: u64,
    used: OffsetSet,
    rng: SmallRng,
}

impl PortAllocator {
    /// An empty allocator over `range`, seeded from the thread's RNG.
    pub fn new(range: PortRange) -> Self {
        Self::with_seed(range, rand::random())
    }

    /// An empty allocator whose random starts are reproducible.
    pub fn with_seed(range: PortRange, seed: u64) -> Self {
        PortAllocator {
            range,
            dynamic_band_start: u64::from(range.static_band_size().min(range.size())),
            used: OffsetSet::new(u64::from(range.size())),
            rng: SmallRng::seed_from_u64(seed),
        }
    }

    /// The range this allocator serves.
    pub fn range(&self) -> PortRange {
        self.range
    }

    fn offset_of(&self, port: i32) -> Option<u64> {
        self.range
            .contains(i64::from(port))
            .then(|| (i64::from(port) - i64::from(self.range.base())) as u64)
    }

    fn port_at(&self, offset: u64) -> i32 {
        // Offsets stay below the range size, so the sum is at most 65535.
        (u64::from(self.range.base()) + offset) as i32
    }

    /// Claims `port` (`Allocate`).
    pub fn allocate(&mut self, port: i32) -> Result<(), AllocationError> {
        let offset = self
            .offset_of(port)
            .ok_or_else(|| AllocationError::PortNotInRange {
                valid_ports: self.range.to_string(),
            })?;
        if self.used.insert(offset) {
            Ok(())
        } else {
            Err(AllocationError::PortAllocated)
        }
    }

    /// Claims a free port (`AllocateNext`): upper band from a random start, then the lower.
    pub fn allocate_next(&mut self) -> Result<i32, AllocationError> {
        let (split, size) = (self.dynamic_band_start, u64::from(self.range.size()));
        let found = match self.claim_from_random_start(split, size) {
            Some(found) => found,
            None => self.claim_from_static_band()?,
        };
        Ok(self.port_at(found))
    }

    /// The static band, once the dynamic one is full: kept out of `allocate_next`'s hot path.
    #[cold]
    fn claim_from_static_band(&mut self) -> Result<u64, AllocationError> {
        self.claim_from_random_start(0, self.dynamic_band_start)
            .ok_or(AllocationError::Full)
    }

    /// Claims the first free offset of `lo..hi` from a random start, wrapping around once.
    #[inline]
    fn claim_from_random_start(&mut self, lo: u64, hi: u64) -> Option<u64> {
        if lo >= hi {
            return None;
        }
        let start = self.rng.random_range(lo..hi);
        self.used.claim_next_free_wrapping(lo, hi, start)
    }

    /// Frees `port`; out-of-range or unallocated ports are a no-op, as upstream.
    pub fn release(&mut self, port: i32) -> bool {
        self.offset_of(port)
            .is_some_and(|offset| self.used.remove(offset))
    }

    /// Whether `port` is allocated (`Has`).
    pub fn contains(&self, port: i32) -> bool {
        self.offset_of(port)
            .is_some_and(|offset| self.used.contains(offset))
    }

    /// How many ports are free.
    pub fn free(&self) -> u64 {
        self.used.len() - self.used.count()
    }

    /// How many ports are allocated.
    pub fn used(&self) -> u64 {
        self.used.count()
    }

    /// Allocated ports, ascending.
    pub fn iter(&self) -> impl Iterator<Item = i32> + '_ {
        self.used.iter().map(|offset| self.port_at(offset))
    }

    /// A copy of the allocation state.
    pub fn snapshot(&self) -> RangeSnapshot {
        RangeSnapshot {
            range: self.range.to_string(),
            allocated: self.used.runs(),
        }
    }

    /// Replaces the allocation state with `snapshot`, which must be of the same range.
    pub fn restore(&mut self, snapshot: &RangeSnapshot) -> Result<(), AllocationError> {
        if snapshot.range != self.range.to_string() {
            return Err(AllocationError::MismatchedPortRange);
        }
        self.used = restore_offsets(self.used.len(), snapshot)?;
        Ok(())
    }

    /// Heap bytes held by the allocation state.
    pub fn heap_bytes(&self) -> usize {
        self.used.heap_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn allocator(range: &str) -> PortAllocator {
        PortAllocator::with_seed(PortRange::parse(range).unwrap(), 3)
    }

    /// P1.
    #[test]
    fn p1_allocate() {
        let mut a = allocator("10000-10200");
        assert_eq!(a.free(), 201);
        let not_in_range = AllocationError::PortNotInRange {
            valid_ports: "10000-10200".into(),
        };
        assert_eq!(
            a.allocate(1).unwrap_err().to_string(),
            "provided port is not in the valid range. The range of valid ports is 10000-10200"
        );
        assert_eq!(a.allocate(20000), Err(not_in_range.clone()));
        assert_eq!(a.allocate(10201), Err(not_in_range.clone()));
        assert_eq!(a.allocate(-1), Err(not_in_range));
        assert_eq!(a.allocate(10001), Ok(()));
        assert_eq!(
            a.allocate(10001).unwrap_err().to_string(),
            "provided port is already allocated"
        );
        assert_eq!(a.free(), 200);
    }

    /// P3: dynamic allocation exhausts 30016..30128 before the static band.
    #[test]
    fn p3_static_band_is_used_last() {
        let mut a = allocator("30000-30128");
        assert_eq!(a.range().static_band_size(), 16);
        let got: BTreeSet<i32> = (0..113).map(|_| a.allocate_next().unwrap()).collect();
        assert_eq!(got, (30016..=30128).collect());
        assert_eq!(a.free(), 16);
        for port in 30000..=30015 {
            assert_eq!(a.allocate(port), Ok(()));
        }
        assert_eq!(a.free(), 0);
        assert_eq!(a.allocate_next(), Err(AllocationError::Full));
        assert_eq!(AllocationError::Full.to_string(), "range is full");
    }

    /// P4: the default range's bands.
    #[test]
    fn p4_default_bands() {
        let mut a = PortAllocator::with_seed(PortRange::default(), 11);
        assert_eq!(a.range().static_band_size(), 86);
        for _ in 0..(2768 - 86) {
            let port = a.allocate_next().unwrap();
            assert!((30086..=32767).contains(&port), "{port}");
        }
        let port = a.allocate_next().unwrap();
        assert!((30000..=30085).contains(&port), "{port}");
    }

    #[test]
    fn restore_refuses_another_range() {
        let mut a = allocator("30000-32767");
        let other = allocator("30000-30100").snapshot();
        assert_eq!(
            a.restore(&other).unwrap_err().to_string(),
            "the provided port range does not match the current port range"
        );
    }

    proptest! {
        #[test]
        fn ports_never_handed_out_twice(seed in any::<u64>(), ops in proptest::collection::vec((0u8..3, 30000i32..30040), 0..200)) {
            let mut a = PortAllocator::with_seed(PortRange::parse("30000-30031").unwrap(), seed);
            let mut held = BTreeSet::new();
            for (kind, port) in ops {
                match kind {
                    0 => match a.allocate_next() {
                        Ok(p) => prop_assert!(held.insert(p)),
                        Err(_) => prop_assert_eq!(held.len(), 32),
                    },
                    1 => {
                        let expected = port < 30032 && !held.contains(&port);
                        prop_assert_eq!(a.allocate(port).is_ok(), expected);
                        if expected { held.insert(port); }
                    }
                    _ => prop_assert_eq!(a.release(port), held.remove(&port)),
                }
                prop_assert_eq!(a.used(), held.len() as u64);
                prop_assert_eq!(a.free() + a.used(), 32);
            }
            prop_assert_eq!(a.iter().collect::<Vec<_>>(), held.iter().copied().collect::<Vec<_>>());
            let mut b = PortAllocator::with_seed(a.range(), 0);
            b.restore(&a.snapshot()).unwrap();
            prop_assert_eq!(b.snapshot(), a.snapshot());
        }
    }
}
