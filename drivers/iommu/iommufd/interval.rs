// SPDX-License-Identifier: GPL-2.0

//! Sets of closed IOVA intervals `[start, last]`, each with a value.
//!
//! [`IntervalMap`] holds disjoint intervals: the allowed ranges of an IOAS
//! (and, later, its areas).  Since they never overlap, a tree keyed by
//! `start` answers every query the C interval tree answers for them: the
//! interval holding an address is the one with the greatest start at or
//! below it.
//!
//! [`RangeList`] holds intervals that may overlap: reserved ranges, where
//! each device reserves its own regions and two devices may reserve the same
//! window.  There are few of them, so a sorted vector does.

use kernel::prelude::*;
use kernel::rbtree::{RBTree, RBTreeNode};

/// The last address of the `length` bytes from `start`, the one way a
/// user's (start, length) becomes a closed range: `EINVAL` if `length` is
/// 0, `EOVERFLOW` if the bytes would run past `u64::MAX` (upstream's
/// errnos for both, in that order).
pub(crate) fn last_of(start: u64, length: u64) -> Result<u64> {
    let Some(rest) = length.checked_sub(1) else {
        return Err(EINVAL);
    };
    start.checked_add(rest).ok_or(EOVERFLOW)
}

/// The address after `last`: None when `last` is the top of the space, so
/// that a walk ends there instead of wrapping to 0.
pub(crate) fn after(last: u64) -> Option<u64> {
    last.checked_add(1)
}

/// Whether `[start, last]` starts and ends on boundaries of `mask + 1`:
/// `start & mask` and `(last + 1) & mask` are 0, where `last + 1` wraps to 0
/// at the top of the space (which is on every boundary), as upstream's
/// unsigned arithmetic does.
pub(crate) fn range_aligned(start: u64, last: u64, mask: u64) -> bool {
    start & mask == 0 && last.wrapping_add(1) & mask == 0
}

/// An interval allocated ahead of its insertion.
pub(crate) struct IntervalNode<V>(RBTreeNode<u64, (u64, V)>);

pub(crate) struct IntervalMap<V> {
    /// `start -> (last, value)`
    tree: RBTree<u64, (u64, V)>,
}

impl<V> IntervalMap<V> {
    pub(crate) fn new() -> Self {
        Self {
            tree: RBTree::new(),
        }
    }

    /// The first interval (lowest start) that intersects `[start, last]`.
    pub(crate) fn first_overlap(&self, start: u64, last: u64) -> Option<(u64, u64, &V)> {
        let key = match self.tree.cursor_lower_bound(&start) {
            Some(cursor) => {
                // Only the interval before the first one starting at or after
                // `start` can reach into the range from below.
                match cursor.peek_prev() {
                    Some((s, (l, _))) if *l >= start => *s,
                    _ => {
                        let (s, _) = cursor.current();
                        if *s > last {
                            return None;
                        }
                        *s
                    }
                }
            }
            None => {
                let cursor = self.tree.cursor_back()?;
                let (s, (l, _)) = cursor.current();
                if *l < start {
                    return None;
                }
                *s
            }
        };
        let (l, v) = self.tree.get(&key)?;
        Some((key, *l, v))
    }

    pub(crate) fn overlaps(&self, start: u64, last: u64) -> bool {
        self.first_overlap(start, last).is_some()
    }

    /// Adds `[start, last]`: `EINVAL` if it is empty or intersects an
    /// interval of the set.
    pub(crate) fn insert(&mut self, start: u64, last: u64, value: V) -> Result {
        if start > last || self.overlaps(start, last) {
            return Err(EINVAL);
        }
        let node = Self::node(start, last, value)?;
        self.insert_node(node);
        Ok(())
    }

    /// Allocates `[start, last]` for [`IntervalMap::insert_node`], which then
    /// cannot fail.
    pub(crate) fn node(start: u64, last: u64, value: V) -> Result<IntervalNode<V>> {
        if start > last {
            return Err(EINVAL);
        }
        Ok(IntervalNode(RBTreeNode::new(
            start,
            (last, value),
            GFP_KERNEL_ACCOUNT,
        )?))
    }

    /// Inserts a preallocated interval, which the caller knows does not
    /// intersect any interval of the set.
    pub(crate) fn insert_node(&mut self, node: IntervalNode<V>) {
        self.tree.insert(node.0);
    }

    /// The interval that starts at `start`, as `(last, value)`.
    pub(crate) fn get_mut(&mut self, start: u64) -> Option<(u64, &mut V)> {
        self.tree.get_mut(&start).map(|(l, v)| (*l, v))
    }

    /// Removes the interval that starts at `start`.
    pub(crate) fn remove(&mut self, start: u64) -> Option<(u64, V)> {
        self.tree.remove(&start)
    }

    /// The intervals in address order, as `(start, last, value)`.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, u64, &V)> {
        self.tree.iter().map(|(s, (l, v))| (*s, *l, v))
    }

    /// Calls `f(start, last)` for each maximal range of addresses that no
    /// interval covers, in order.
    #[cfg_attr(not(CONFIG_IOMMUFD_TEST), allow(dead_code))] // The selftest's, so far.
    pub(crate) fn for_each_hole(&self, mut f: impl FnMut(u64, u64) -> Result) -> Result {
        gaps(self.iter().map(|(s, l, _)| (s, l))).try_for_each(|(s, l)| f(s, l))
    }
}

/// The maximal ranges of addresses that none of `intervals` covers, in
/// order; `intervals` come sorted by start and may overlap.
pub(crate) fn gaps(
    intervals: impl Iterator<Item = (u64, u64)>,
) -> impl Iterator<Item = (u64, u64)> {
    let mut intervals = intervals.fuse();
    // The next address not yet known to be covered; None past u64::MAX.
    let mut next = Some(0u64);
    core::iter::from_fn(move || loop {
        let from = next?;
        match intervals.next() {
            Some((s, l)) => {
                if l >= from {
                    next = l.checked_add(1);
                }
                if s > from {
                    return Some((from, s - 1));
                }
            }
            None => {
                next = None;
                return Some((from, u64::MAX));
            }
        }
    })
}

/// Merges two sequences of intervals sorted by start into one.
pub(crate) fn merge_sorted<A, B>(a: A, b: B) -> impl Iterator<Item = (u64, u64)>
where
    A: Iterator<Item = (u64, u64)>,
    B: Iterator<Item = (u64, u64)>,
{
    let mut a = a.peekable();
    let mut b = b.peekable();
    core::iter::from_fn(move || match (a.peek(), b.peek()) {
        (Some(x), Some(y)) if x.0 <= y.0 => a.next(),
        (Some(_), Some(_)) => b.next(),
        (Some(_), None) => a.next(),
        (None, _) => b.next(),
    })
}

/// Closed intervals that may overlap, sorted by start.
pub(crate) struct RangeList<V> {
    ranges: KVec<(u64, u64, V)>,
}

impl<V> RangeList<V> {
    pub(crate) fn new() -> Self {
        Self {
            ranges: KVec::new(),
        }
    }

    /// Adds `[start, last]`: `EINVAL` if it is empty.
    pub(crate) fn insert(&mut self, start: u64, last: u64, value: V) -> Result {
        if start > last {
            return Err(EINVAL);
        }
        self.ranges.reserve(1, GFP_KERNEL_ACCOUNT)?;
        let at = self.ranges.iter().take_while(|r| r.0 <= start).count();
        // Neither out of capacity nor out of bounds, after the reserve.
        self.ranges
            .insert_within_capacity(at, (start, last, value))
            .map_err(|_| ENOMEM)
    }

    pub(crate) fn overlaps(&self, start: u64, last: u64) -> bool {
        self.ranges.iter().any(|r| r.0 <= last && r.1 >= start)
    }

    /// Removes the ranges `f` picks.
    pub(crate) fn remove_if(&mut self, mut f: impl FnMut(&V) -> bool) {
        self.ranges.retain(|r| !f(&r.2));
    }

    /// The ranges in order of their start, as `(start, last)`.
    pub(crate) fn spans(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.ranges.iter().map(|r| (r.0, r.1))
    }

    /// Calls `f(start, last)` for each maximal range of addresses that no
    /// range covers, in order.
    pub(crate) fn for_each_hole(&self, mut f: impl FnMut(u64, u64) -> Result) -> Result {
        gaps(self.spans()).try_for_each(|(s, l)| f(s, l))
    }
}

#[kunit_tests(iommufd_rs_interval)]
mod tests {
    use super::*;

    fn holes<V>(m: &IntervalMap<V>) -> Result<KVec<(u64, u64)>> {
        let mut out = KVec::new();
        m.for_each_hole(|s, l| Ok(out.push((s, l), GFP_KERNEL)?))?;
        Ok(out)
    }

    #[test]
    fn last_of_at_the_boundaries() {
        const P: u64 = 4096;
        assert_eq!(last_of(0, 0), Err(EINVAL));
        assert_eq!(last_of(u64::MAX, 0), Err(EINVAL));
        assert_eq!(last_of(0, 1), Ok(0));
        assert_eq!(last_of(P - 1, 1), Ok(P - 1));
        assert_eq!(last_of(0, u64::MAX), Ok(u64::MAX - 1));
        assert_eq!(last_of(1, u64::MAX), Ok(u64::MAX));
        assert_eq!(last_of(2, u64::MAX), Err(EOVERFLOW));
        assert_eq!(last_of(u64::MAX, 1), Ok(u64::MAX));
        assert_eq!(last_of(u64::MAX, 2), Err(EOVERFLOW));
        assert_eq!(last_of(0u64.wrapping_sub(P), P), Ok(u64::MAX));
        assert_eq!(last_of(0u64.wrapping_sub(P), P + 1), Err(EOVERFLOW));
        assert_eq!(last_of(0u64.wrapping_sub(P) + 1, P), Err(EOVERFLOW));
        assert_eq!(after(u64::MAX - 1), Some(u64::MAX));
        assert_eq!(after(u64::MAX), None);
    }

    #[test]
    fn alignment_of_ranges_ending_at_the_top() {
        const M: u64 = 4096 - 1;
        assert!(range_aligned(0, u64::MAX, M));
        assert!(range_aligned(0u64.wrapping_sub(4096), u64::MAX, M));
        assert!(range_aligned(0x1000, 0x1fff, M));
        assert!(!range_aligned(0x1000, 0x1ffe, M));
        assert!(!range_aligned(0x1001, 0x1fff, M));
        assert!(!range_aligned(0u64.wrapping_sub(4096), u64::MAX - 1, M));
        // Any mask, as upstream's: bits of a size that is no power of two.
        assert!(range_aligned(0, 0x3fff, 0x2fff));
        assert!(!range_aligned(0, 0x2fff, 0x2fff));
        assert!(range_aligned(u64::MAX, u64::MAX, 0));
    }

    #[test]
    fn single_addresses_at_both_ends() -> Result {
        let mut m = IntervalMap::new();
        m.insert(u64::MAX, u64::MAX, 'z')?;
        m.insert(0, 0, 'a')?;
        assert_eq!(m.insert(u64::MAX, u64::MAX, 'y'), Err(EINVAL));
        assert_eq!(m.insert(u64::MAX - 1, u64::MAX, 'y'), Err(EINVAL));
        assert_eq!(m.first_overlap(u64::MAX, u64::MAX).map(|o| *o.2), Some('z'));
        assert_eq!(m.first_overlap(1, u64::MAX - 1), None);
        assert_eq!(m.first_overlap(0, u64::MAX).map(|o| *o.2), Some('a'));
        assert_eq!(m.first_overlap(1, u64::MAX).map(|o| o.0), Some(u64::MAX));
        assert_eq!(&holes(&m)?[..], &[(1, u64::MAX - 1)]);
        m.insert(1, u64::MAX - 1, 'm')?;
        assert!(holes(&m)?.is_empty());
        assert_eq!(m.remove(u64::MAX), Some((u64::MAX, 'z')));
        assert_eq!(&holes(&m)?[..], &[(u64::MAX, u64::MAX)]);
        Ok(())
    }

    #[test]
    fn empty_set_is_one_hole() -> Result {
        let m = IntervalMap::<()>::new();
        assert!(!m.overlaps(0, u64::MAX));
        assert_eq!(&holes(&m)?[..], &[(0, u64::MAX)]);
        Ok(())
    }

    #[test]
    fn overlap_queries() -> Result {
        let mut m = IntervalMap::new();
        m.insert(0x1000, 0x1fff, 1)?;
        m.insert(0x4000, 0x4fff, 2)?;
        assert_eq!(m.first_overlap(0, 0xfff), None);
        assert_eq!(m.first_overlap(0, 0x1000).map(|o| o.0), Some(0x1000));
        assert_eq!(m.first_overlap(0x1fff, 0x1fff).map(|o| o.0), Some(0x1000));
        assert_eq!(m.first_overlap(0x2000, 0x3fff), None);
        assert_eq!(m.first_overlap(0x1800, 0x4800).map(|o| *o.2), Some(1));
        assert_eq!(m.first_overlap(0x2000, u64::MAX).map(|o| *o.2), Some(2));
        assert_eq!(m.first_overlap(0x4800, u64::MAX).map(|o| o.0), Some(0x4000));
        assert_eq!(m.first_overlap(0x5000, u64::MAX), None);
        Ok(())
    }

    #[test]
    fn insert_rejects_overlap_and_empty() -> Result {
        let mut m = IntervalMap::new();
        m.insert(10, 20, ())?;
        assert_eq!(m.insert(20, 30, ()), Err(EINVAL));
        assert_eq!(m.insert(0, 10, ()), Err(EINVAL));
        assert_eq!(m.insert(12, 13, ()), Err(EINVAL));
        assert_eq!(m.insert(5, 25, ()), Err(EINVAL));
        assert_eq!(m.insert(31, 30, ()), Err(EINVAL));
        m.insert(21, 30, ())?;
        m.insert(0, 9, ())?;
        assert_eq!(m.iter().count(), 3);
        Ok(())
    }

    #[test]
    fn holes_at_the_edges() -> Result {
        let mut m = IntervalMap::new();
        m.insert(0, 0xfff, ())?;
        m.insert(0x2000, 0x2fff, ())?;
        m.insert(u64::MAX - 0xfff, u64::MAX, ())?;
        assert_eq!(
            &holes(&m)?[..],
            &[(0x1000, 0x1fff), (0x3000, u64::MAX - 0x1000)]
        );
        let mut all = IntervalMap::new();
        all.insert(0, u64::MAX, ())?;
        assert!(holes(&all)?.is_empty());
        Ok(())
    }

    #[test]
    fn merged_gaps() -> Result {
        let a = [(0x1000u64, 0x1fffu64), (0x8000, 0x8fff)];
        let b = [(0x1800u64, 0x27ffu64), (0x4000, 0x4fff)];
        let mut out = KVec::new();
        for gap in gaps(merge_sorted(a.into_iter(), b.into_iter())) {
            out.push(gap, GFP_KERNEL)?;
        }
        assert_eq!(
            &out[..],
            &[
                (0, 0xfff),
                (0x2800, 0x3fff),
                (0x5000, 0x7fff),
                (0x9000, u64::MAX)
            ]
        );
        Ok(())
    }

    #[test]
    fn range_list_allows_overlap() -> Result {
        let mut r = RangeList::new();
        r.insert(0x3000, 0x3fff, 'a')?;
        r.insert(0x1000, 0x1fff, 'b')?;
        r.insert(0x1800, 0x37ff, 'c')?;
        r.insert(0x1000, 0x17ff, 'd')?;
        assert_eq!(r.insert(2, 1, 'e'), Err(EINVAL));
        assert!(r.overlaps(0x2000, 0x2000));
        assert!(!r.overlaps(0x4000, u64::MAX));
        let mut out = KVec::new();
        r.for_each_hole(|s, l| Ok(out.push((s, l), GFP_KERNEL)?))?;
        assert_eq!(&out[..], &[(0, 0xfff), (0x4000, u64::MAX)]);
        Ok(())
    }
}
