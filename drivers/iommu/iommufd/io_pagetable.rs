// SPDX-License-Identifier: GPL-2.0

//! The IOVA layout of an IOAS: allowed ranges, reserved ranges and the areas
//! that map user memory.
//!
//! An [`Area`] maps a slice of a [`Pages`], a range of user memory, at an
//! IOVA.  Areas never overlap; several areas (in one IOAS or, through
//! `IOMMU_IOAS_COPY`, in several) may share one `Pages`.
//!
//! What exists so far is the IOVA bookkeeping: no domain is attached and no
//! access pins pages, and then upstream pins nothing either, so mapping only
//! records what is mapped where.  Pinning, domains and accesses come next.

use kernel::new_mutex;
use kernel::page::PAGE_SIZE;
use kernel::prelude::*;
use kernel::sync::{Arc, Mutex};

use crate::interval::{gaps, merge_sorted, IntervalMap, RangeList};

const PAGE: u64 = PAGE_SIZE as u64;
/// The largest IOVA alignment automatic allocation asks for: a huge page,
/// so that a THP can be mapped whole.
const MAX_ALLOC_ALIGNMENT: u64 = 2 * 1024 * 1024;

/// Who reserved an IOVA range.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reserver {
    /// `IOMMU_TEST_OP_ADD_RESERVED`; never removed but with the IOAS.
    #[cfg_attr(not(CONFIG_IOMMUFD_TEST), allow(dead_code))]
    Test,
}

/// A range of user memory that areas map.
pub(crate) struct Pages {
    /// The first byte of the first page.
    uptr: u64,
    /// How many pages the range spans.
    npages: u64,
    /// Whether the memory may be mapped for device writes.
    writable: bool,
}

impl Pages {
    /// The user memory `[uptr, uptr + length)` of the current process.
    fn new_user(uptr: u64, length: u64, writable: bool) -> Result<Arc<Self>> {
        uptr.checked_add(length).ok_or(EOVERFLOW)?;
        // The IOMMU API takes a size_t length; keeps the page count below
        // from overflowing.
        if length == 0 || length > u64::MAX - PAGE {
            return Err(EINVAL);
        }
        let start_byte = uptr % PAGE;
        Ok(Arc::new(
            Pages {
                uptr: uptr - start_byte,
                npages: (start_byte + length).div_ceil(PAGE),
                writable,
            },
            GFP_KERNEL_ACCOUNT,
        )?)
    }
}

/// A slice of a `Pages` mapped at an IOVA (the key of the area map).
struct Area {
    pages: Arc<Pages>,
    /// Offset of the area's first byte in `pages`.
    start_byte: u64,
}

/// A slice of a `Pages`, to be mapped (`IOMMU_IOAS_MAP`, `IOMMU_IOAS_COPY`).
pub(crate) struct PagesSlice {
    pub(crate) pages: Arc<Pages>,
    pub(crate) start_byte: u64,
    pub(crate) length: u64,
}

impl PagesSlice {
    /// The user memory `[uptr, uptr + length)` of the current process, whole.
    pub(crate) fn user(uptr: u64, length: u64, writable: bool) -> Result<Self> {
        Ok(Self {
            pages: Pages::new_user(uptr, length, writable)?,
            start_byte: uptr % PAGE,
            length,
        })
    }
}

struct Inner {
    /// If not empty, the only ranges automatic IOVA allocation may use.
    allowed: IntervalMap<()>,
    /// Ranges nothing may map (may overlap: several owners may reserve the
    /// same window).
    reserved: RangeList<Reserver>,
    /// What is mapped: IOVA range -> area.
    areas: IntervalMap<Area>,
    /// Map only with the smallest page size (`IOMMU_OPTION_HUGE_PAGES` 0).
    disable_large_pages: bool,
}

/// Moves `*start` up to `align` (a power of two), plus `page_offset`, and
/// checks that `length` bytes still fit before `last`.
fn fit_aligned(start: &mut u64, last: u64, length: u64, align: u64, page_offset: u64) -> bool {
    let Some(up) = start.checked_add(align - 1) else {
        return false;
    };
    let aligned = (up & !(align - 1)) | page_offset;
    if aligned >= last || last - aligned < length - 1 {
        return false;
    }
    *start = aligned;
    true
}

impl Inner {
    fn iova_alignment(&self) -> u64 {
        1
    }

    /// Finds a free IOVA for `length` bytes whose user address is `addr`:
    /// not reserved, not mapped, inside an allowed range if there are any,
    /// never 0, and aligned like `addr` (up to a huge page) so that large
    /// pages can be used.
    fn alloc_iova(&self, addr: u64, length: u64) -> Result<u64> {
        if length == 0 || length >= u64::MAX / 2 {
            return Err(EOVERFLOW);
        }
        let page_offset = addr % PAGE;
        let mut align = length.next_power_of_two();
        if addr != 0 {
            align = align.min(1 << addr.trailing_zeros());
        }
        align = align.min(MAX_ALLOC_ALIGNMENT);
        if align < self.iova_alignment() {
            return Err(EINVAL);
        }

        let (lo, hi) = (PAGE, u64::MAX - PAGE);
        // The first fit in `[start, last]`, a span of allowed IOVA.
        let first_fit = |mut start: u64, last: u64| -> Option<u64> {
            if !fit_aligned(&mut start, last, length, align, page_offset) {
                return None;
            }
            let used = merge_sorted(
                self.reserved.spans(),
                self.areas.iter().map(|(s, l, _)| (s, l)),
            );
            gaps(used)
                .skip_while(|&(_, l)| l < start)
                .take_while(|&(s, _)| s <= last)
                .find_map(|(s, l)| {
                    let mut s = s.max(start);
                    fit_aligned(&mut s, l.min(last), length, align, page_offset).then_some(s)
                })
        };
        let found = if self.allowed.iter().next().is_none() {
            first_fit(lo, hi)
        } else {
            self.allowed
                .iter()
                .filter(|&(s, l, ())| l >= lo && s <= hi)
                .find_map(|(s, l, ())| first_fit(s.max(lo), l.min(hi)))
        };
        found.ok_or(ENOSPC)
    }

    /// Checks that `[iova, iova + length)` may be mapped.
    fn check_iova(&self, iova: u64, length: u64) -> Result {
        if iova & (self.iova_alignment() - 1) != 0 {
            return Err(EINVAL);
        }
        let last = iova.checked_add(length - 1).ok_or(EOVERFLOW)?;
        if self.reserved.overlaps(iova, last) {
            return Err(EINVAL);
        }
        if self.areas.overlaps(iova, last) {
            return Err(EEXIST);
        }
        Ok(())
    }
}

#[pin_data]
pub(crate) struct IoPagetable {
    #[pin]
    inner: Mutex<Inner>,
}

impl IoPagetable {
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            inner <- new_mutex!(Inner {
                allowed: IntervalMap::new(),
                reserved: RangeList::new(),
                areas: IntervalMap::new(),
                disable_large_pages: false,
            }),
        })
    }

    /// The alignment every mapped IOVA and length must have.
    pub(crate) fn iova_alignment(&self) -> u64 {
        self.inner.lock().iova_alignment()
    }

    /// Calls `f(start, last)` for each maximal usable IOVA range, in order:
    /// the complement of the reserved ranges.
    pub(crate) fn for_each_usable_range(&self, f: impl FnMut(u64, u64) -> Result) -> Result {
        self.inner.lock().reserved.for_each_hole(f)
    }

    /// Replaces the allowed ranges: `EADDRINUSE`, and no change, if one of
    /// them intersects a reserved range.
    pub(crate) fn set_allowed(&self, allowed: IntervalMap<()>) -> Result {
        let mut inner = self.inner.lock();
        if allowed
            .iter()
            .any(|(s, l, ())| inner.reserved.overlaps(s, l))
        {
            return Err(EADDRINUSE);
        }
        let old = core::mem::replace(&mut inner.allowed, allowed);
        drop(inner);
        drop(old);
        Ok(())
    }

    /// Reserves `[start, last]` for `by`: `EADDRINUSE` if it intersects an
    /// allowed range or a mapping.
    pub(crate) fn reserve(&self, start: u64, last: u64, by: Reserver) -> Result {
        let mut inner = self.inner.lock();
        if inner.allowed.overlaps(start, last) || inner.areas.overlaps(start, last) {
            return Err(EADDRINUSE);
        }
        inner.reserved.insert(start, last, by)
    }

    /// Maps `slices`, one after the other, at `iova` or, if `iova` is None,
    /// at an IOVA found for them.  Returns the IOVA.  Either every slice is
    /// mapped or none.
    pub(crate) fn map(&self, slices: &[PagesSlice], iova: Option<u64>, write: bool) -> Result<u64> {
        let length = slices
            .iter()
            .try_fold(0u64, |sum, s| sum.checked_add(s.length))
            .ok_or(EOVERFLOW)?;
        let first = slices.first().ok_or(EINVAL)?;
        let mut inner = self.inner.lock();
        if length == 0 || length & (inner.iova_alignment() - 1) != 0 {
            return Err(EINVAL);
        }
        let iova = match iova {
            Some(iova) => {
                inner.check_iova(iova, length)?;
                iova
            }
            None => {
                let addr = first.pages.uptr.wrapping_add(first.start_byte);
                inner.alloc_iova(addr, length)?
            }
        };
        let mut at = iova;
        for s in slices {
            let res = Self::insert_area(&mut inner, s, at, write);
            if let Err(e) = res {
                // Undo the areas this call inserted.
                let mut undo = iova;
                while undo < at {
                    match inner.areas.remove(undo) {
                        Some((last, _)) => undo = last + 1,
                        None => break,
                    }
                }
                return Err(e);
            }
            at += s.length;
        }
        Ok(iova)
    }

    fn insert_area(inner: &mut Inner, s: &PagesSlice, iova: u64, write: bool) -> Result {
        if write && !s.pages.writable {
            return Err(EPERM);
        }
        if (s.start_byte % PAGE) & (inner.iova_alignment() - 1) != 0 {
            return Err(EINVAL);
        }
        let last = iova.checked_add(s.length - 1).ok_or(EOVERFLOW)?;
        let last_byte = s.start_byte.checked_add(s.length - 1).ok_or(EOVERFLOW)?;
        if last_byte / PAGE >= s.pages.npages {
            return Err(EOVERFLOW);
        }
        let area = Area {
            pages: s.pages.clone(),
            start_byte: s.start_byte,
        };
        inner.areas.insert(iova, last, area)
    }

    /// The slices of pages mapped at `[iova, iova + length)`, which areas
    /// must cover without a gap (`ENOENT`).
    pub(crate) fn get_pages(&self, iova: u64, length: u64) -> Result<KVec<PagesSlice>> {
        if length == 0 {
            return Err(EINVAL);
        }
        let last = iova.checked_add(length - 1).ok_or(EOVERFLOW)?;
        let inner = self.inner.lock();
        let mut out = KVec::new();
        let mut cur = iova;
        loop {
            let (s, l, area) = inner.areas.first_overlap(cur, cur).ok_or(ENOENT)?;
            let end = l.min(last);
            out.push(
                PagesSlice {
                    pages: area.pages.clone(),
                    start_byte: area.start_byte + (cur - s),
                    length: end - cur + 1,
                },
                GFP_KERNEL_ACCOUNT,
            )?;
            if end == last {
                return Ok(out);
            }
            cur = end + 1;
        }
    }

    /// Unmaps the areas inside `[start, last]` and returns how many bytes
    /// they covered.  An area that reaches outside the range is `ENOENT`;
    /// the areas before it are unmapped all the same, as upstream does.
    pub(crate) fn unmap(&self, start: u64, last: u64) -> Result<u64> {
        let mut inner = self.inner.lock();
        let mut unmapped = 0u64;
        let mut from = start;
        while let Some((s, l, _)) = inner.areas.first_overlap(from, last) {
            if s < start || l > last {
                return Err(ENOENT);
            }
            let removed = inner.areas.remove(s);
            drop(removed);
            unmapped += l - s + 1;
            if l >= last {
                break;
            }
            from = l + 1;
        }
        Ok(unmapped)
    }

    /// Splits the area holding `iova`, if any, into one ending at `iova`
    /// and one starting after it, so that a later unmap can end or start
    /// there (VFIO type1 semantics).
    pub(crate) fn cut(&self, iova: u64) -> Result {
        let mut inner = self.inner.lock();
        let align = inner.iova_alignment();
        let Some((s, l, area)) = inner.areas.first_overlap(iova, iova) else {
            return Ok(());
        };
        if iova == s || iova == l {
            return Ok(());
        }
        let new_start = iova + 1;
        let rhs_byte = area.start_byte + (new_start - s);
        if new_start & (align - 1) != 0 || rhs_byte & (align - 1) != 0 {
            return Err(EINVAL);
        }
        let lhs = Area {
            pages: area.pages.clone(),
            start_byte: area.start_byte,
        };
        let rhs = Area {
            pages: area.pages.clone(),
            start_byte: rhs_byte,
        };
        // Allocated before the area goes, so that the split cannot fail
        // half-way.
        let lhs = IntervalMap::node(s, iova, lhs)?;
        let rhs = IntervalMap::node(new_start, l, rhs)?;
        let old = inner.areas.remove(s);
        inner.areas.insert_node(lhs);
        inner.areas.insert_node(rhs);
        drop(inner);
        drop(old);
        Ok(())
    }

    pub(crate) fn large_pages(&self) -> bool {
        !self.inner.lock().disable_large_pages
    }

    /// Allows or forbids mapping with page sizes above the smallest one.
    ///
    /// No domain exists yet, so no mapping already made with large pages
    /// can conflict with forbidding them.
    pub(crate) fn set_large_pages(&self, enable: bool) -> Result {
        self.inner.lock().disable_large_pages = !enable;
        Ok(())
    }
}

#[kunit_tests(iommufd_rs_io_pagetable)]
mod tests {
    use super::*;

    fn iopt() -> Result<Pin<KBox<IoPagetable>>> {
        KBox::pin_init(IoPagetable::new(), GFP_KERNEL)
    }

    /// `length` bytes of user memory at `uptr`, as one slice.  Nothing is
    /// pinned, so no real memory is needed.
    fn slice(uptr: u64, length: u64, writable: bool) -> Result<[PagesSlice; 1]> {
        Ok([PagesSlice::user(uptr, length, writable)?])
    }

    #[test]
    fn auto_iova_keeps_the_user_alignment() -> Result {
        let t = iopt()?;
        // 2 MiB-aligned memory of 2 MiB: a huge-page-aligned IOVA, never 0.
        let a = t.map(&slice(0x4020_0000, 0x20_0000, true)?, None, true)?;
        assert_eq!(a, 0x20_0000);
        // 8 KiB at an address whose lowest set bit is 4 KiB: 4 KiB-aligned,
        // below the first mapping.
        let b = t.map(&slice(0x7000, 0x2000, true)?, None, true)?;
        assert_eq!(b, PAGE);
        // The offset in the page is kept.
        let c = t.map(&slice(0x9010, 0x10, true)?, None, true)?;
        assert_eq!(c % PAGE, 0x10);
        assert!(c >= b + 0x2000);
        Ok(())
    }

    #[test]
    fn auto_iova_avoids_reserved_and_honours_allowed() -> Result {
        let t = iopt()?;
        t.reserve(0, 0xf_ffff, Reserver::Test)?;
        let a = t.map(&slice(0x1000, 0x1000, true)?, None, true)?;
        assert_eq!(a, 0x10_0000);

        let mut allowed = IntervalMap::new();
        allowed.insert(0x4000_0000, 0x4000_ffff, ())?;
        t.set_allowed(allowed)?;
        let b = t.map(&slice(0x1000, 0x1000, true)?, None, true)?;
        assert_eq!(b, 0x4000_0000);
        // 64 KiB allowed, 4 KiB used: 64 KiB more does not fit.
        assert_eq!(
            t.map(&slice(0x1_0000, 0x1_0000, true)?, None, true),
            Err(ENOSPC)
        );
        Ok(())
    }

    #[test]
    fn fixed_iova_checks() -> Result {
        let t = iopt()?;
        t.reserve(0x1_0000, 0x1_ffff, Reserver::Test)?;
        let s = slice(0x1000, 0x2000, true)?;
        assert_eq!(t.map(&s, Some(0x1_8000), true), Err(EINVAL));
        assert_eq!(t.map(&s, Some(u64::MAX - 0xfff), true), Err(EOVERFLOW));
        assert_eq!(t.map(&s, Some(0x3_0000), true)?, 0x3_0000);
        assert_eq!(t.map(&s, Some(0x3_1000), true), Err(EEXIST));
        // A mapping is no place for a reservation.
        assert_eq!(
            t.reserve(0x3_1000, 0x3_1000, Reserver::Test),
            Err(EADDRINUSE)
        );
        // Read-only memory is not mapped for device writes.
        let ro = t.get_pages(0x3_0000, 0x2000)?;
        assert_eq!(t.map(&ro, Some(0x5_0000), true)?, 0x5_0000);
        let ro = slice(0x1000, 0x1000, false)?;
        assert_eq!(t.map(&ro, Some(0x6_0000), true), Err(EPERM));
        Ok(())
    }

    #[test]
    fn copy_needs_contiguous_areas() -> Result {
        let t = iopt()?;
        t.map(&slice(0x1000, 0x1000, true)?, Some(0x10_0000), true)?;
        t.map(&slice(0x8000, 0x1000, true)?, Some(0x10_1000), true)?;
        let two = t.get_pages(0x10_0800, 0x1000)?;
        assert_eq!(two.len(), 2);
        assert_eq!((two[0].start_byte, two[0].length), (0x800, 0x800));
        assert_eq!((two[1].start_byte, two[1].length), (0, 0x800));
        assert_eq!(t.get_pages(0x10_1800, 0x1000).err(), Some(ENOENT));
        assert_eq!(t.get_pages(0x10_0000, 0).err(), Some(EINVAL));
        Ok(())
    }

    #[test]
    fn unmap_whole_areas_and_cut() -> Result {
        let t = iopt()?;
        t.map(&slice(0x1000, 0x4000, true)?, Some(0x10_0000), true)?;
        t.map(&slice(0x1000, 0x4000, true)?, Some(0x10_4000), true)?;
        // Ends inside the second area: the first goes, the error stays.
        assert_eq!(t.unmap(0x10_0000, 0x10_5fff), Err(ENOENT));
        assert_eq!(t.unmap(0x10_0000, 0x10_3fff)?, 0);
        // Cut the second area in three and take out the middle.
        t.cut(0x10_4fff)?;
        t.cut(0x10_5fff)?;
        assert_eq!(t.unmap(0x10_5000, 0x10_5fff)?, 0x1000);
        let rest = t.get_pages(0x10_6000, 0x2000)?;
        assert_eq!(rest[0].start_byte, 0x2000);
        assert_eq!(t.unmap(0, u64::MAX)?, 0x3000);
        Ok(())
    }
}
