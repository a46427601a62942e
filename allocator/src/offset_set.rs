//! A set of allocated offsets `0..len` that answers "next free offset from here" without rescans.
//!
//! Two layouts behind one type, picked by the size of the range:
//! - small ranges (every port range, IPv4 /10 and longer prefixes) use a hierarchical bitmap:
//!   level 0 holds one bit per offset, each higher level one bit per *full* word of the level
//!   below, so a free bit is found in O(levels) from any start;
//! - huge ranges (IPv6 /64 and friends) use maximal runs of allocated offsets in a `BTreeMap`,
//!   so memory follows what is allocated and the first free offset after any point is the end
//!   of at most one run (runs are always merged, so `end + 1` is free).

use std::collections::BTreeMap;

/// Ranges up to this many offsets use the dense hierarchical bitmap (512 KiB at most).
const DENSE_LIMIT: u64 = 1 << 22;

/// Allocated offsets of one range.
#[derive(Debug, Clone)]
pub(crate) enum OffsetSet {
    Dense(DenseBitmap),
    Runs(RunSet),
}

impl OffsetSet {
    /// An empty set over `0..len`.
    pub(crate) fn new(len: u64) -> Self {
        if len <= DENSE_LIMIT {
            OffsetSet::Dense(DenseBitmap::new(len))
        } else {
            OffsetSet::Runs(RunSet::new(len))
        }
    }

    /// The number of offsets the set covers.
    pub(crate) fn len(&self) -> u64 {
        match self {
            OffsetSet::Dense(d) => d.len,
            OffsetSet::Runs(r) => r.len,
        }
    }

    /// Marks `offset` allocated; false when it already was (or lies outside the set).
    pub(crate) fn insert(&mut self, offset: u64) -> bool {
        if offset >= self.len() {
            return false;
        }
        match self {
            OffsetSet::Dense(d) => d.insert(offset),
            OffsetSet::Runs(r) => r.insert(offset),
        }
    }

    /// Marks `offset` free; false when it was not allocated.
    pub(crate) fn remove(&mut self, offset: u64) -> bool {
        if offset >= self.len() {
            return false;
        }
        match self {
            OffsetSet::Dense(d) => d.remove(offset),
            OffsetSet::Runs(r) => r.remove(offset),
        }
    }

    /// Whether `offset` is allocated.
    pub(crate) fn contains(&self, offset: u64) -> bool {
        match self {
            OffsetSet::Dense(d) => d.contains(offset),
            OffsetSet::Runs(r) => r.contains(offset),
        }
    }

    /// How many offsets are allocated.
    pub(crate) fn count(&self) -> u64 {
        match self {
            OffsetSet::Dense(d) => d.count,
            OffsetSet::Runs(r) => r.count,
        }
    }

    /// The first free offset in `from..below`.
    pub(crate) fn next_free(&self, from: u64, below: u64) -> Option<u64> {
        let below = below.min(self.len());
        if from >= below {
            return None;
        }
        let found = match self {
            OffsetSet::Dense(d) => d.next_zero(0, from),
            OffsetSet::Runs(r) => r.next_free(from),
        }?;
        (found < below).then_some(found)
    }

    /// The first free offset in `lo..hi` scanning from `start` and wrapping around once.
    pub(crate) fn next_free_wrapping(&self, lo: u64, hi: u64, start: u64) -> Option<u64> {
        self.next_free(start, hi)
            .or_else(|| self.next_free(lo, start))
    }

    /// Marks allocated and returns what `next_free_wrapping` would find (`AllocateNext`'s scan
    /// and claim in one step: the bitmap sets the bit it has just found without looking again).
    #[inline]
    pub(crate) fn claim_next_free_wrapping(&mut self, lo: u64, hi: u64, start: u64) -> Option<u64> {
        // Unless the range is nearly full, the start's own word has a free bit at or after it:
        // that case stays inline, every other goes through the summary levels or the runs.
        if let OffsetSet::Dense(d) = self
            && let Some(found) = d.claim_in_word_of(start, hi.min(d.len))
        {
            return Some(found);
        }
        self.claim_next_free_wrapping_by_scan(lo, hi, start)
    }

    /// `claim_next_free_wrapping` when the start's word has nothing: out of line, so that the
    /// common case inlines small.
    #[inline(never)]
    fn claim_next_free_wrapping_by_scan(&mut self, lo: u64, hi: u64, start: u64) -> Option<u64> {
        let found = self.next_free_wrapping(lo, hi, start)?;
        match self {
            OffsetSet::Dense(d) => d.set_clear_bit(found),
            OffsetSet::Runs(r) => {
                r.insert(found);
            }
        }
        Some(found)
    }

    /// Allocated offsets as maximal inclusive runs, ascending.
    pub(crate) fn runs(&self) -> Vec<(u64, u64)> {
        match self {
            OffsetSet::Dense(d) => {
                let mut runs: Vec<(u64, u64)> = Vec::new();
                for offset in d.iter() {
                    match runs.last_mut() {
                        Some((_, end)) if *end + 1 == offset => *end = offset,
                        _ => runs.push((offset, offset)),
                    }
                }
                runs
            }
            OffsetSet::Runs(r) => r.runs.iter().map(|(s, e)| (*s, *e)).collect(),
        }
    }

    /// Allocated offsets, ascending.
    pub(crate) fn iter(&self) -> Box<dyn Iterator<Item = u64> + '_> {
        match self {
            OffsetSet::Dense(d) => Box::new(d.iter()),
            OffsetSet::Runs(r) => Box::new(r.runs.iter().flat_map(|(s, e)| *s..=*e)),
        }
    }

    /// Bytes this set holds on the heap (exact for the bitmap; an upper bound for the runs).
    pub(crate) fn heap_bytes(&self) -> usize {
        match self {
            OffsetSet::Dense(d) => d.heap_bytes(),
            OffsetSet::Runs(r) => r.heap_bytes(),
        }
    }
}

/// One bit per offset plus summary levels that mark full words of the level below.
#[derive(Debug, Clone)]
pub(crate) struct DenseBitmap {
    len: u64,
    count: u64,
    /// `levels[0]` is the bitmap proper; bit `j` of `levels[k + 1]` is set iff word `j` of
    /// `levels[k]` is all ones. Bits past the end of every level are set, so padding never
    /// looks free and fullness needs no special case for the last word.
    levels: Vec<Vec<u64>>,
}

impl DenseBitmap {
    fn new(len: u64) -> Self {
        let mut levels = Vec::new();
        let mut bits = len;
        loop {
            let words = bits.div_ceil(64) as usize;
            let mut level = vec![0u64; words];
            let tail = bits % 64;
            if let (Some(last), true) = (level.last_mut(), tail != 0) {
                *last = u64::MAX << tail;
            }
            levels.push(level);
            if words <= 1 {
                break;
            }
            bits = words as u64;
        }
        DenseBitmap {
            len,
            count: 0,
            levels,
        }
    }

    fn contains(&self, offset: u64) -> bool {
        offset < self.len
            && self.levels[0]
                .get((offset / 64) as usize)
                .is_some_and(|w| w & (1 << (offset % 64)) != 0)
    }

    fn insert(&mut self, offset: u64) -> bool {
        if self.contains(offset) {
            return false;
        }
        self.set_clear_bit(offset);
        true
    }

    /// Sets the bit of `offset`, known to be clear and in range, and marks the words it fills.
    #[inline]
    fn set_clear_bit(&mut self, offset: u64) {
        let w = offset / 64;
        let Some(word) = self.levels[0].get_mut(w as usize) else {
            return;
        };
        *word |= 1 << (offset % 64);
        let filled = *word == u64::MAX;
        self.count += 1;
        if filled {
            self.mark_filled(w);
        }
    }

    /// Sets and returns the first clear bit of `start..hi` that lies in `start`'s own word.
    #[inline]
    fn claim_in_word_of(&mut self, start: u64, hi: u64) -> Option<u64> {
        let w = start / 64;
        let word = self.levels.first_mut()?.get_mut(w as usize)?;
        let free = !*word & (u64::MAX << (start % 64));
        let found = w * 64 + u64::from(free.trailing_zeros());
        // A free bit at or past `hi` (the word holds the band's end) is none of `start..hi`'s.
        if free == 0 || found >= hi {
            return None;
        }
        // Set in place rather than through `set_clear_bit`: a second lookup of the word costs
        // a tenth of the whole allocation here.
        *word |= free & free.wrapping_neg();
        let filled = *word == u64::MAX;
        self.count += 1;
        if filled {
            self.mark_filled(w);
        }
        Some(found)
    }

    /// Records in the summary levels that word `w` of level 0 has just become all ones.
    #[cold]
    fn mark_filled(&mut self, w: u64) {
        let mut index = w;
        for level in self.levels.iter_mut().skip(1) {
            let Some(word) = level.get_mut((index / 64) as usize) else {
                break;
            };
            *word |= 1 << (index % 64);
            if *word != u64::MAX {
                break;
            }
            index /= 64;
        }
    }

    fn remove(&mut self, offset: u64) -> bool {
        if !self.contains(offset) {
            return false;
        }
        let mut index = offset;
        for level in self.levels.iter_mut() {
            let Some(word) = level.get_mut((index / 64) as usize) else {
                break;
            };
            let was_full = *word == u64::MAX;
            *word &= !(1 << (index % 64));
            if !was_full {
                break;
            }
            index /= 64;
        }
        self.count -= 1;
        true
    }

    /// First clear bit at `level` at or after `pos`; climbs one level when the word is full.
    fn next_zero(&self, level: usize, pos: u64) -> Option<u64> {
        let words = self.levels.get(level)?;
        let w = (pos / 64) as usize;
        let word = *words.get(w)?;
        let free = !word & (u64::MAX << (pos % 64));
        if free != 0 {
            return Some(w as u64 * 64 + u64::from(free.trailing_zeros()));
        }
        if level + 1 == self.levels.len() {
            // The top level has a single word, already examined.
            return None;
        }
        let next_word = self.next_zero(level + 1, w as u64 + 1)?;
        let word = *words.get(next_word as usize)?;
        Some(next_word * 64 + u64::from((!word).trailing_zeros()))
    }

    fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        let len = self.len;
        self.levels[0]
            .iter()
            .enumerate()
            .flat_map(|(w, word)| {
                let mut bits = *word;
                std::iter::from_fn(move || {
                    if bits == 0 {
                        return None;
                    }
                    let b = bits.trailing_zeros();
                    bits &= bits - 1;
                    Some(w as u64 * 64 + u64::from(b))
                })
            })
            .take_while(move |offset| *offset < len)
    }

    fn heap_bytes(&self) -> usize {
        self.levels.capacity() * std::mem::size_of::<Vec<u64>>()
            + self
                .levels
                .iter()
                .map(|l| l.capacity() * std::mem::size_of::<u64>())
                .sum::<usize>()
    }
}

/// Maximal runs of allocated offsets, `start -> end` inclusive; adjacent runs are always merged.
#[derive(Debug, Clone)]
pub(crate) struct RunSet {
    len: u64,
    count: u64,
    runs: BTreeMap<u64, u64>,
}

/// Bytes of a std B-tree leaf holding up to 11 `(u64, u64)` pairs, plus its header.
const BTREE_LEAF_BYTES: usize = 11 * 16 + 16;
/// A B-tree internal node: a leaf plus 12 child pointers.
const BTREE_INTERNAL_BYTES: usize = BTREE_LEAF_BYTES + 12 * 8;
/// Every std B-tree node except the root holds at least this many entries.
const BTREE_MIN_ENTRIES: usize = 5;

impl RunSet {
    fn new(len: u64) -> Self {
        RunSet {
            len,
            count: 0,
            runs: BTreeMap::new(),
        }
    }

    fn run_containing(&self, offset: u64) -> Option<(u64, u64)> {
        self.runs
            .range(..=offset)
            .next_back()
            .filter(|(_, end)| **end >= offset)
            .map(|(s, e)| (*s, *e))
    }

    fn contains(&self, offset: u64) -> bool {
        self.run_containing(offset).is_some()
    }

    /// One descending range walk finds both neighbours: the run starting at `offset + 1`
    /// (merged into ours) and the run at or before `offset` (which may hold it already).
    fn insert(&mut self, offset: u64) -> bool {
        let next = offset.checked_add(1);
        let mut walk = self.runs.range(..=next.unwrap_or(offset)).rev();
        let (right_end, left) = match walk.next() {
            Some((&s, &e)) if Some(s) == next => (Some(e), walk.next().map(|(s, e)| (*s, *e))),
            Some((&s, &e)) => (None, Some((s, e))),
            None => (None, None),
        };
        if left.is_some_and(|(_, e)| e >= offset) {
            return false;
        }
        let joins_left = left
            .filter(|(_, e)| e.checked_add(1) == Some(offset))
            .map(|(s, _)| s);
        if let (Some(after), Some(_)) = (next, right_end) {
            self.runs.remove(&after);
        }
        let end = right_end.unwrap_or(offset);
        match joins_left.and_then(|s| self.runs.get_mut(&s)) {
            Some(left_end) => *left_end = end,
            None => {
                self.runs.insert(offset, end);
            }
        }
        self.count += 1;
        true
    }

    fn remove(&mut self, offset: u64) -> bool {
        let Some((start, end)) = self.run_containing(offset) else {
            return false;
        };
        self.runs.remove(&start);
        if start < offset {
            self.runs.insert(start, offset - 1);
        }
        if offset < end {
            self.runs.insert(offset + 1, end);
        }
        self.count -= 1;
        true
    }

    fn next_free(&self, from: u64) -> Option<u64> {
        match self.run_containing(from) {
            Some((_, end)) => end.checked_add(1).filter(|next| *next < self.len),
            None => Some(from),
        }
    }

    /// An upper bound: every node at its minimum fill and sized like an internal node.
    fn heap_bytes(&self) -> usize {
        let entries = self.runs.len();
        if entries == 0 {
            return 0;
        }
        let nodes = entries.div_ceil(BTREE_MIN_ENTRIES);
        nodes * BTREE_INTERNAL_BYTES
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn both(len: u64) -> [OffsetSet; 2] {
        [
            OffsetSet::Dense(DenseBitmap::new(len)),
            OffsetSet::Runs(RunSet::new(len)),
        ]
    }

    #[test]
    fn next_free_skips_full_words_and_levels() {
        for mut set in both(100_000) {
            for offset in 0..70_000 {
                assert!(set.insert(offset));
            }
            assert_eq!(set.next_free(0, 100_000), Some(70_000));
            assert_eq!(set.next_free(5, 70_000), None);
            assert!(set.remove(4_097));
            assert_eq!(set.next_free(10, 100_000), Some(4_097));
            assert_eq!(set.next_free_wrapping(0, 100_000, 80_000), Some(80_000));
            assert_eq!(set.count(), 69_999);
        }
    }

    #[test]
    fn padding_is_never_free() {
        for mut set in both(65) {
            for offset in 0..65 {
                assert!(set.insert(offset));
            }
            assert_eq!(set.next_free(0, u64::MAX), None);
            assert!(!set.insert(65));
        }
    }

    #[test]
    fn empty_set_has_nothing() {
        for set in both(0) {
            assert_eq!(set.next_free(0, 10), None);
            assert_eq!(set.count(), 0);
        }
    }

    /// What `claim_next_free_wrapping` must equal: the scan, then an insert of what it found.
    fn claim_by_scan_then_insert(set: &mut OffsetSet, lo: u64, hi: u64, start: u64) -> Option<u64> {
        let found = set.next_free_wrapping(lo, hi, start)?;
        assert!(set.insert(found));
        Some(found)
    }

    #[test]
    fn claim_takes_the_free_bit_at_start_then_the_next_one() {
        for mut set in both(2768) {
            assert_eq!(set.claim_next_free_wrapping(86, 2768, 1000), Some(1000));
            assert_eq!(set.claim_next_free_wrapping(86, 2768, 1000), Some(1001));
            assert!(set.contains(1000) && set.contains(1001));
            assert_eq!(set.count(), 2);
        }
    }

    #[test]
    fn claim_wraps_around_to_the_start_of_its_band() {
        for mut set in both(2768) {
            for offset in 90..2768 {
                assert!(set.insert(offset));
            }
            // Nothing free from 2000 to the end of the band: the scan wraps to 86.
            assert_eq!(set.claim_next_free_wrapping(86, 2768, 2000), Some(86));
            assert_eq!(set.claim_next_free_wrapping(86, 2768, 2767), Some(87));
            // Below the band is never looked at.
            assert_eq!(set.claim_next_free_wrapping(88, 2768, 1500), Some(88));
            assert_eq!(set.claim_next_free_wrapping(88, 2768, 1500), Some(89));
            assert_eq!(set.claim_next_free_wrapping(88, 2768, 1500), None);
            assert!(!set.contains(85));
        }
    }

    #[test]
    fn claim_finds_the_last_free_bit_and_then_reports_full() {
        for mut set in both(2768) {
            for offset in (0..2768).filter(|o| *o != 2700) {
                assert!(set.insert(offset));
            }
            assert_eq!(set.claim_next_free_wrapping(0, 2768, 5), Some(2700));
            assert_eq!(set.count(), 2768);
            assert_eq!(set.claim_next_free_wrapping(0, 2768, 5), None);
            assert_eq!(set.claim_next_free_wrapping(0, 86, 0), None);
            assert_eq!(set.count(), 2768);
        }
    }

    #[test]
    fn claim_stops_at_a_band_end_inside_a_word() {
        // The static band 0..86 ends in the middle of the second word: 86.. must not be taken.
        for mut set in both(2768) {
            for offset in (0..86).filter(|o| *o != 3) {
                assert!(set.insert(offset));
            }
            assert_eq!(set.claim_next_free_wrapping(0, 86, 70), Some(3));
            assert_eq!(set.claim_next_free_wrapping(0, 86, 70), None);
            assert!(!set.contains(86));
        }
    }

    #[test]
    fn claim_marks_filled_words_in_the_summary() {
        // Filling word 1 by claims must let later scans skip it through the summary level.
        let mut set = OffsetSet::Dense(DenseBitmap::new(4096));
        for expected in 64..128 {
            assert_eq!(set.claim_next_free_wrapping(0, 4096, 64), Some(expected));
        }
        assert_eq!(set.claim_next_free_wrapping(0, 4096, 64), Some(128));
        assert!(set.remove(100));
        assert_eq!(set.claim_next_free_wrapping(0, 4096, 64), Some(100));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u64),
        Remove(u64),
        NextFree(u64),
    }

    fn ops(len: u64) -> impl Strategy<Value = Vec<Op>> {
        proptest::collection::vec(
            prop_oneof![
                (0..len).prop_map(Op::Insert),
                (0..len).prop_map(Op::Remove),
                (0..len).prop_map(Op::NextFree),
            ],
            0..400,
        )
    }

    proptest! {
        #[test]
        fn behaves_like_a_btreeset(len in 1u64..300, ops in ops(300)) {
            for mut set in both(len) {
                let mut model = BTreeSet::new();
                for op in &ops {
                    match *op {
                        Op::Insert(o) => prop_assert_eq!(set.insert(o), o < len && model.insert(o)),
                        Op::Remove(o) => prop_assert_eq!(set.remove(o), model.remove(&o)),
                        Op::NextFree(o) => {
                            let expected = (o..len).find(|x| !model.contains(x));
                            prop_assert_eq!(set.next_free(o, len), expected);
                        }
                    }
                    prop_assert_eq!(set.count(), model.len() as u64);
                }
                prop_assert_eq!(set.iter().collect::<Vec<_>>(), model.iter().copied().collect::<Vec<_>>());
                let expanded: Vec<u64> = set.runs().iter().flat_map(|(s, e)| *s..=*e).collect();
                prop_assert_eq!(expanded, model.iter().copied().collect::<Vec<_>>());
            }
        }

        #[test]
        fn claim_is_scan_then_insert(
            len in 1u64..300,
            held in proptest::collection::vec((0u64..300, 1u64..100), 0..12),
            claims in proptest::collection::vec((0u64..310, 0u64..310, 0u64..310), 1..40),
        ) {
            // Held offsets come in runs, so that whole words are full and scans must leave
            // the start's word.
            for (mut set, mut model) in both(len).into_iter().zip(both(len)) {
                for offset in held.iter().flat_map(|(start, run)| *start..*start + *run) {
                    prop_assert_eq!(set.insert(offset), model.insert(offset));
                }
                for (lo, hi, start) in &claims {
                    let expected = claim_by_scan_then_insert(&mut model, *lo, *hi, *start);
                    prop_assert_eq!(set.claim_next_free_wrapping(*lo, *hi, *start), expected);
                    prop_assert_eq!(set.count(), model.count());
                }
                prop_assert_eq!(set.runs(), model.runs());
            }
        }
    }
}
