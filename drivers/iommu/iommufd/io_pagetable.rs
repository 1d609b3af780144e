// SPDX-License-Identifier: GPL-2.0

//! The IOVA layout of an IOAS: allowed ranges, reserved ranges and the areas
//! that map user memory.
//!
//! An [`Area`] maps a slice of a [`Pages`] at an IOVA.  Areas never overlap.
//! Accesses (emulated devices) pin pages through the areas and read or
//! write through them; an area an access holds pins in is unmapped only
//! after the access has been told to let go.

use kernel::bindings;
use kernel::fs::File;
use kernel::iommu::dirty::{DirtyFlag, DirtyFlags, DirtyRecord, IovaBitmap};
use kernel::iommu::domain::{self as iommu, Domain, ProtFlag};
use kernel::prelude::*;
use kernel::sync::aref::ARef;
use kernel::sync::{Arc, CondVar, Mutex, MutexGuard};
use kernel::{new_condvar, new_mutex};

use crate::interval::{after, gaps, last_of, merge_sorted, range_aligned, IntervalMap, RangeList};
use crate::pages::{AccountMode, Pages, PAGE};

/// The largest IOVA alignment automatic allocation asks for: a huge page,
/// so that a THP can be mapped whole.
const MAX_ALLOC_ALIGNMENT: u64 = 2 * 1024 * 1024;
/// How often an unmap asks accesses to let go of an area before it gives
/// up with `EDEADLOCK`.
const UNMAP_TRIES: u32 = 100;

/// Who reserved an IOVA range.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reserver {
    /// For good: removed only with the IOAS (the selftest's
    /// `IOMMU_TEST_OP_ADD_RESERVED`, as a device's reserved region).
    #[cfg_attr(not(CONFIG_IOMMUFD_TEST), allow(dead_code))]
    Permanent,
    /// Outside the aperture of an attached domain (its address).
    Domain(usize),
    /// A reserved region of an attached device (its address), for as long
    /// as it is attached.
    Device(usize),
}

/// An in-kernel user of the memory behind an I/O page table (an access),
/// told when IOVA it may hold pins in is unmapped.
pub(crate) trait UnmapListener: Send + Sync {
    /// Whether it pins pages (and so needs page-aligned IOVAs).
    fn pins(&self) -> bool;

    /// `[iova, iova + length)` is being unmapped: the listener gives back
    /// its pins there before it returns.  Called without the table's locks.
    fn unmapped(&self, iova: u64, length: u64);
}

/// What devices may do with a mapping.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Prot {
    pub(crate) read: bool,
    pub(crate) write: bool,
}

/// A slice of a `Pages` mapped at an IOVA (the key of the area map).
struct Area {
    pages: Arc<Pages>,
    /// Offset of the area's first byte in `pages`.
    start_byte: u64,
    prot: Prot,
    /// Pins accesses hold through this area (one per pin call).
    num_accesses: u32,
    /// Of those, the pins that keep the area from being unmapped (`EBUSY`):
    /// a HW queue's, whose hardware reads the memory by physical address.
    num_locks: u32,
    /// Set while an unmap waits for accesses to let go: no new pins.
    prevent_access: bool,
    /// Copies of accesses running through this area without the lock
    /// (`IoPagetable::access_rw`): the area stays, whole, until they end.
    copying: u32,
}

impl Area {
    fn new(pages: Arc<Pages>, start_byte: u64, prot: Prot) -> Self {
        Self {
            pages,
            start_byte,
            prot,
            num_accesses: 0,
            num_locks: 0,
            prevent_access: false,
            copying: 0,
        }
    }

    /// The byte of `pages` mapped at `iova`, the area starting at `start`.
    fn byte(&self, start: u64, iova: u64) -> u64 {
        self.start_byte + (iova - start)
    }

    /// `EPERM` unless the area allows an access to write (or read).
    fn check_access(&self, write: bool) -> Result {
        let allowed = if write {
            self.prot.write
        } else {
            self.prot.read
        };
        if allowed {
            Ok(())
        } else {
            Err(EPERM)
        }
    }

    /// The pages `[first, last]` of `pages` the area spans, for an area
    /// `length` bytes long.
    fn page_range(&self, length: u64) -> (u64, u64) {
        (
            self.start_byte / PAGE,
            (self.start_byte + length - 1) / PAGE,
        )
    }
}

/// A slice of a `Pages`, to be mapped (`IOMMU_IOAS_MAP`, `IOMMU_IOAS_COPY`).
pub(crate) struct PagesSlice {
    pub(crate) pages: Arc<Pages>,
    pub(crate) start_byte: u64,
    pub(crate) length: u64,
}

impl PagesSlice {
    /// `length` bytes of the dma-buf `buf` from byte `start`, whole.
    #[cfg(CONFIG_DMA_SHARED_BUFFER)]
    pub(crate) fn dmabuf(
        buf: kernel::dma_buf::DmaBuf,
        dev: &kernel::device::Device,
        start: u64,
        length: u64,
        writable: bool,
        locate: impl FnOnce(&kernel::dma_buf::DmaBuf) -> Result<(u64, u64)>,
    ) -> Result<Self> {
        Ok(Self {
            pages: Pages::new_dmabuf(buf, dev, start, length, writable, locate)?,
            start_byte: start % PAGE,
            length,
        })
    }

    /// `length` bytes of the memfd `file` from byte `start`, whole.
    pub(crate) fn file(
        file: ARef<File>,
        start: u64,
        length: u64,
        writable: bool,
        mode: AccountMode,
    ) -> Result<Self> {
        Ok(Self {
            pages: Pages::new_file(file, start, length, writable, mode)?,
            start_byte: start % PAGE,
            length,
        })
    }

    /// The user memory `[uptr, uptr + length)` of the current process, whole.
    pub(crate) fn user(uptr: u64, length: u64, writable: bool, mode: AccountMode) -> Result<Self> {
        Ok(Self {
            pages: Pages::new_user(uptr, length, writable, mode)?,
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
    /// Attached accesses that pin pages, hence need page-aligned IOVAs.
    pinning_accesses: u32,
    /// The domains every area is mapped into.  While there is one, each
    /// area holds a user on all its pages.
    domains: KVec<Arc<Domain>>,
    /// The alignment every mapped IOVA, length and page offset has.
    iova_alignment: u64,
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

/// The smallest page size of `domain`.
fn min_pgsize(domain: &Domain) -> u64 {
    let bitmap = domain.pgsize_bitmap();
    if bitmap == 0 {
        u64::MAX
    } else {
        1 << bitmap.trailing_zeros()
    }
}

fn iommu_prot(prot: Prot) -> iommu::Prot {
    let mut p = iommu::Prot::empty();
    if prot.read {
        p |= ProtFlag::Read;
    }
    if prot.write {
        p |= ProtFlag::Write;
    }
    p
}

/// Adds a user to every page of the area `[s, l]`.
fn pin_area(area: &Area, s: u64, l: u64) -> Result {
    let (first, last) = area.page_range(l - s + 1);
    area.pages.pin(first, last)
}

/// Undoes [`pin_area`].
fn unpin_area(area: &Area, s: u64, l: u64) {
    let (first, last) = area.page_range(l - s + 1);
    area.pages.unpin(first, last);
}

/// Maps the area `[s, l]` into `domain`, pinning it first if `pin`; on
/// failure nothing of it stays mapped or pinned.  `small`: one page per
/// mapping (`IOMMU_OPTION_HUGE_PAGES` 0), else contiguous runs together.
fn fill_area(domain: &Arc<Domain>, s: u64, l: u64, area: &Area, pin: bool, small: bool) -> Result {
    if pin {
        pin_area(area, s, l)?;
    }
    let prot = iommu_prot(area.prot);
    // A failed map leaves nothing mapped.
    area.pages
        .map_range(domain, s, area.start_byte, area.byte(s, l), prot, small)
        .inspect_err(|_| {
            if pin {
                unpin_area(area, s, l);
            }
        })
}

/// Unmaps the area `[s, l]` from `domain`, unpinning it if `unpin`.
fn unfill_area(domain: &Arc<Domain>, s: u64, l: u64, area: &Area, unpin: bool) {
    area.pages.unmap_range(domain, s, l - s + 1);
    if unpin {
        unpin_area(area, s, l);
    }
}

impl Inner {
    /// The alignment the current users ask for.
    fn wanted_alignment(&self) -> u64 {
        let mut align = if self.disable_large_pages || self.pinning_accesses != 0 {
            PAGE
        } else {
            1
        };
        for d in self.domains.iter() {
            align = align.max(min_pgsize(d));
        }
        align
    }

    /// Recomputes the IOVA alignment after a change of its inputs; a larger
    /// one must suit every area already mapped (`EADDRINUSE`).
    fn update_alignment(&mut self) -> Result {
        let align = self.wanted_alignment();
        if align > self.iova_alignment {
            let mask = align - 1;
            let misfit = self.areas.iter().any(|(s, l, a)| {
                s & mask != 0 || (l - s + 1) & mask != 0 || (a.start_byte % PAGE) & mask != 0
            });
            if misfit {
                return Err(EADDRINUSE);
            }
        }
        self.iova_alignment = align;
        Ok(())
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
        if align < self.iova_alignment {
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
        if iova & (self.iova_alignment - 1) != 0 {
            return Err(EINVAL);
        }
        let last = last_of(iova, length)?;
        if self.reserved.overlaps(iova, last) {
            return Err(EINVAL);
        }
        if self.areas.overlaps(iova, last) {
            return Err(EEXIST);
        }
        Ok(())
    }

    /// Calls `f(cur, end, area_start, area)` for each area covering
    /// `[iova, last]`, in order, with `[cur, end]` the part of the range in
    /// that area.  Stops at the first error of `f`, or with `ENOENT` at a
    /// gap; either way also returns the IOVA it stopped at (`last + 1`, or
    /// 0 after wrapping, when all went through).
    fn walk(
        &mut self,
        iova: u64,
        last: u64,
        mut f: impl FnMut(u64, u64, u64, &mut Area) -> Result,
    ) -> (u64, Result) {
        let mut cur = iova;
        loop {
            let Some((s, _, _)) = self.areas.first_overlap(cur, cur) else {
                return (cur, Err(ENOENT));
            };
            let Some((l, area)) = self.areas.get_mut(s) else {
                return (cur, Err(ENOENT));
            };
            let end = l.min(last);
            if let Err(e) = f(cur, end, s, area) {
                return (cur, Err(e));
            }
            if end == last {
                return (end.wrapping_add(1), Ok(()));
            }
            cur = end + 1;
        }
    }
}

#[pin_data]
pub(crate) struct IoPagetable {
    #[pin]
    inner: Mutex<Inner>,
    /// Woken, under `inner`, when the copies through an area are over.
    #[pin]
    copied: CondVar,
}

impl IoPagetable {
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            inner <- new_mutex!(Inner {
                allowed: IntervalMap::new(),
                reserved: RangeList::new(),
                areas: IntervalMap::new(),
                disable_large_pages: false,
                pinning_accesses: 0,
                domains: KVec::new(),
                iova_alignment: 1,
            }),
            copied <- new_condvar!("iommufd_iopt_copied"),
        })
    }

    /// Locks the table once no copy runs through the area holding `iova`,
    /// for a change that removes or splits that area.
    fn lock_idle_at(&self, iova: u64) -> MutexGuard<'_, Inner> {
        let mut inner = self.inner.lock();
        while inner
            .areas
            .first_overlap(iova, iova)
            .is_some_and(|(_, _, a)| a.copying != 0)
        {
            self.copied.wait(&mut inner);
        }
        inner
    }

    /// The alignment every mapped IOVA and length must have.
    pub(crate) fn iova_alignment(&self) -> u64 {
        self.inner.lock().iova_alignment
    }

    /// The page sizes every attached domain maps with (all of them without
    /// a domain), and the IOVA alignment, read together.
    pub(crate) fn pgsizes_and_alignment(&self) -> (u64, u64) {
        let inner = self.inner.lock();
        let sizes = inner
            .domains
            .iter()
            .fold(u64::MAX, |sizes, d| sizes & d.pgsize_bitmap());
        (sizes, inner.iova_alignment)
    }

    /// The maximal usable IOVA ranges `(start, last)`, in order: the
    /// complement of the reserved ranges.  Collected under the lock, for
    /// the caller to copy to user memory without it.
    pub(crate) fn usable_ranges(&self) -> Result<KVec<(u64, u64)>> {
        let mut out = KVec::new();
        self.inner.lock().reserved.for_each_hole(|start, last| {
            out.push((start, last), GFP_KERNEL)?;
            Ok(())
        })?;
        Ok(out)
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
    #[cfg_attr(not(CONFIG_IOMMUFD_TEST), allow(dead_code))] // The selftest's (IOMMU_TEST_OP_ADD_RESERVED).
    pub(crate) fn reserve(&self, start: u64, last: u64, by: Reserver) -> Result {
        Self::reserve_locked(&mut self.inner.lock(), start, last, by)
    }

    /// [`IoPagetable::reserve`] under the lock.
    fn reserve_locked(inner: &mut Inner, start: u64, last: u64, by: Reserver) -> Result {
        if inner.allowed.overlaps(start, last) || inner.areas.overlaps(start, last) {
            return Err(EADDRINUSE);
        }
        inner.reserved.insert(start, last, by)
    }

    /// Reserves every range `[start, last]` of `ranges` for the device
    /// `dev` (its address): all or none, `EADDRINUSE` if one intersects an
    /// allowed range or a mapping.  [`IoPagetable::unreserve_device`] takes
    /// them out again.
    pub(crate) fn reserve_device(&self, dev: usize, ranges: &[(u64, u64)]) -> Result {
        let mut inner = self.inner.lock();
        let by = Reserver::Device(dev);
        for &(start, last) in ranges {
            if let Err(e) = Self::reserve_locked(&mut inner, start, last, by) {
                inner.reserved.remove_if(|r| *r == by);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Takes out what [`IoPagetable::reserve_device`] reserved for `dev`.
    pub(crate) fn unreserve_device(&self, dev: usize) {
        self.inner
            .lock()
            .reserved
            .remove_if(|r| *r == Reserver::Device(dev));
    }

    /// Maps `slices`, one after the other, at `iova` or, if `iova` is None,
    /// at an IOVA found for them.  Returns the IOVA.  Either every slice is
    /// mapped or none.
    pub(crate) fn map(&self, slices: &[PagesSlice], iova: Option<u64>, prot: Prot) -> Result<u64> {
        let length = slices
            .iter()
            .try_fold(0u64, |sum, s| sum.checked_add(s.length))
            .ok_or(EOVERFLOW)?;
        let first = slices.first().ok_or(EINVAL)?;
        let mut inner = self.inner.lock();
        if length == 0 || length & (inner.iova_alignment - 1) != 0 {
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
        // Both paths checked that `[iova, last]` fits below the top of the
        // space, which the last area may end at: areas are walked by their
        // inclusive last, and `next` is None past the top.
        let last = last_of(iova, length)?;
        let mut next = Some(iova);
        let mut res = Ok(());
        for s in slices {
            let Some(at) = next else {
                res = Err(EOVERFLOW);
                break;
            };
            match Self::insert_area(&mut inner, s, at, prot) {
                Ok(l) => next = after(l),
                Err(e) => {
                    res = Err(e);
                    break;
                }
            }
        }
        if res.is_ok() {
            res = Self::fill_new_areas(&mut inner, iova, last);
        }
        if let Err(e) = res {
            // Undo the areas this call inserted: from `iova` up to `next`.
            let mut undo = Some(iova);
            while undo != next {
                let Some(at) = undo else {
                    break;
                };
                match inner.areas.remove(at) {
                    Some((l, _)) => undo = after(l),
                    None => break,
                }
            }
            return Err(e);
        }
        Ok(iova)
    }

    /// Maps the areas in `[iova, last]`, just inserted, into every domain;
    /// on failure none of them stays mapped or pinned.
    fn fill_new_areas(inner: &mut Inner, iova: u64, last: u64) -> Result {
        let inner = &*inner;
        if inner.domains.is_empty() {
            return Ok(());
        }
        // The areas of `[iova, last]`, in order, each found in O(log n).
        let in_range = |from: u64| {
            inner
                .areas
                .first_overlap(from, last)
                .filter(|&(s, _, _)| s >= iova)
        };
        let mut failed = None;
        let mut cur = in_range(iova);
        'areas: while let Some((s, l, area)) = cur {
            for (i, d) in inner.domains.iter().enumerate() {
                if let Err(e) = fill_area(d, s, l, area, i == 0, inner.disable_large_pages) {
                    for (j, d) in inner.domains.iter().enumerate().take(i) {
                        unfill_area(d, s, l, area, j == 0);
                    }
                    failed = Some((s, e));
                    break 'areas;
                }
            }
            cur = if l >= last { None } else { in_range(l + 1) };
        }
        let Some((stop, e)) = failed else {
            return Ok(());
        };
        let mut cur = in_range(iova);
        while let Some((s, l, area)) = cur {
            if s >= stop {
                break;
            }
            for (j, d) in inner.domains.iter().enumerate() {
                unfill_area(d, s, l, area, j == 0);
            }
            cur = if l >= last { None } else { in_range(l + 1) };
        }
        Err(e)
    }

    /// Appends the distinct `Pages` the areas map to `out`.
    pub(crate) fn collect_pages(&self, out: &mut KVec<Arc<Pages>>) -> Result {
        let inner = self.inner.lock();
        for (_, _, area) in inner.areas.iter() {
            if !out.iter().any(|p| Arc::ptr_eq(p, &area.pages)) {
                out.push(area.pages.clone(), GFP_KERNEL_ACCOUNT)?;
            }
        }
        Ok(())
    }

    /// Attaches `domain`: maps every area into it (pinning them if it is
    /// the first domain), reserves the IOVA outside its aperture, and keeps
    /// it filled until [`IoPagetable::remove_domain`].  Its smallest page
    /// becomes a lower bound of the IOVA alignment.
    pub(crate) fn add_domain(&self, domain: &Arc<Domain>) -> Result {
        let mut inner = self.inner.lock();
        if inner.domains.iter().any(|d| Arc::ptr_eq(d, domain)) {
            return Err(EEXIST);
        }
        // Pages are pinned PAGE_SIZE at a time: a domain must take those.
        if min_pgsize(domain) > PAGE {
            return Err(EINVAL);
        }
        let key = Reserver::Domain(domain.as_ptr() as usize);
        let (ap_start, ap_last) = domain.aperture();
        let mut holes = KVec::new();
        if ap_start != 0 {
            holes.push((0, ap_start - 1), GFP_KERNEL_ACCOUNT)?;
        }
        if ap_last != u64::MAX {
            holes.push((ap_last + 1, u64::MAX), GFP_KERNEL_ACCOUNT)?;
        }
        for &(s, l) in holes.iter() {
            if inner.allowed.overlaps(s, l) || inner.areas.overlaps(s, l) {
                return Err(EADDRINUSE);
            }
        }
        inner.domains.reserve(1, GFP_KERNEL_ACCOUNT)?;
        let first = inner.domains.is_empty();
        // Check the alignment before anything changes.
        let old_align = inner.iova_alignment;
        let res = inner.domains.push(domain.clone(), GFP_KERNEL_ACCOUNT);
        res?;
        if let Err(e) = inner.update_alignment() {
            inner.domains.pop();
            inner.iova_alignment = old_align;
            return Err(e);
        }
        let res = (|| -> Result {
            for &(s, l) in holes.iter() {
                inner.reserved.insert(s, l, key)?;
            }
            let areas = &inner.areas;
            let small = inner.disable_large_pages;
            let mut filled: Option<u64> = None;
            let mut res = Ok(());
            for (s, l, area) in areas.iter() {
                if let Err(e) = fill_area(domain, s, l, area, first, small) {
                    res = Err(e);
                    break;
                }
                filled = Some(s);
            }
            if res.is_err() {
                if let Some(end) = filled {
                    for (s, l, area) in areas.iter().take_while(|(s, _, _)| *s <= end) {
                        unfill_area(domain, s, l, area, first);
                    }
                }
            }
            res
        })();
        if let Err(e) = res {
            inner.reserved.remove_if(|r| *r == key);
            inner.domains.pop();
            let _ = inner.update_alignment();
            inner.iova_alignment = old_align;
            return Err(e);
        }
        Ok(())
    }

    /// Detaches a domain added with [`IoPagetable::add_domain`]: unmaps
    /// every area from it (and unpins them if it was the last domain).
    pub(crate) fn remove_domain(&self, domain: &Arc<Domain>) {
        let mut inner = self.inner.lock();
        let Some(i) = inner.domains.iter().position(|d| Arc::ptr_eq(d, domain)) else {
            kernel::warn_on!(true);
            pr_warn!("removing a domain that is not attached\n");
            return;
        };
        let gone = inner.domains.remove(i);
        let last = inner.domains.is_empty();
        for (s, l, area) in inner.areas.iter() {
            unfill_area(domain, s, l, area, last);
        }
        let key = Reserver::Domain(domain.as_ptr() as usize);
        inner.reserved.remove_if(|r| *r == key);
        // A smaller alignment suits every mapping.
        let _ = inner.update_alignment();
        drop(inner);
        drop(gone);
    }

    /// Inserts the area of `s` at `iova`; returns its last IOVA.
    fn insert_area(inner: &mut Inner, s: &PagesSlice, iova: u64, prot: Prot) -> Result<u64> {
        if prot.write && !s.pages.writable {
            return Err(EPERM);
        }
        if (s.start_byte % PAGE) & (inner.iova_alignment - 1) != 0 {
            return Err(EINVAL);
        }
        let last = last_of(iova, s.length)?;
        let last_byte = last_of(s.start_byte, s.length)?;
        if last_byte / PAGE >= s.pages.npages {
            return Err(EOVERFLOW);
        }
        inner
            .areas
            .insert(iova, last, Area::new(s.pages.clone(), s.start_byte, prot))?;
        Ok(last)
    }

    /// The physical address `iova` is mapped to, and how many bytes from
    /// there (at most `max_len`, which is not 0) are physically contiguous
    /// within its area: `IOMMU_IOAS_NOIOMMU_GET_PA`, for devices without an
    /// IOMMU, whose DMA uses physical addresses.  Read from the IOAS's
    /// first domain (the one upstream reads an area's pages back from),
    /// which must be a software one (`EOPNOTSUPP`: a real IOMMU's domain
    /// translates, and its physical addresses are no use to a device).
    /// `ENOENT` if nothing is mapped at `iova`, `EINVAL` if the dma-buf
    /// mapped there was revoked.  The walks run under the IOAS's lock,
    /// which every map and unmap of its domains holds, and a dma-buf's
    /// state lock, which its revocation holds to unmap it.
    #[cfg_attr(not(CONFIG_IOMMUFD_NOIOMMU), allow(dead_code))]
    pub(crate) fn phys(&self, iova: u64, max_len: u64) -> Result<(u64, u64)> {
        let inner = self.inner.lock();
        let (_, last, area) = inner.areas.first_overlap(iova, iova).ok_or(ENOENT)?;
        let domains = &inner.domains;
        area.pages.with_unrevoked(|| match domains.first() {
            Some(d) if d.is_software() => Ok(contiguous(d, iova, last, max_len)),
            _ => Err(EOPNOTSUPP),
        })?
    }
}

/// `iova`'s physical address in `domain` and how many bytes from it, at
/// most `max_len`, are physically contiguous up to `last`, the end of its
/// area.  The caller keeps the domain's mappings there from changing.
#[cfg_attr(not(CONFIG_IOMMUFD_NOIOMMU), allow(dead_code))]
fn contiguous(domain: &Domain, iova: u64, last: u64, max_len: u64) -> (u64, u64) {
    let phys = domain.iova_to_phys(iova);
    // The rest of `iova`'s page, then whole pages while they follow
    // each other in physical memory and the area goes on.
    let to_page_end = PAGE - iova % PAGE;
    let mut len = if last - iova < to_page_end {
        last - iova + 1
    } else {
        to_page_end
    };
    let (mut cur, mut cur_phys) = (iova, phys);
    while cur < last && len < max_len {
        let Some(next) = cur.checked_add(PAGE).filter(|&n| n <= last) else {
            break;
        };
        let next_phys = domain.iova_to_phys(next);
        if next_phys == 0 || Some(next_phys) != cur_phys.checked_add(PAGE) {
            break;
        }
        (cur, cur_phys) = (next, next_phys);
        len = len.saturating_add(PAGE);
    }
    // Not past the area, which may end inside a CPU page.
    (phys, len.min((last - iova).saturating_add(1)).min(max_len))
}

impl IoPagetable {
    /// The slices of pages mapped at `[iova, iova + length)`, which areas
    /// must cover without a gap (`ENOENT`).
    pub(crate) fn get_pages(&self, iova: u64, length: u64) -> Result<KVec<PagesSlice>> {
        let last = last_of(iova, length)?;
        let mut inner = self.inner.lock();
        let mut out = KVec::new();
        let (_, res) = inner.walk(iova, last, |cur, end, s, area| {
            out.push(
                PagesSlice {
                    pages: area.pages.clone(),
                    start_byte: area.byte(s, cur),
                    length: end - cur + 1,
                },
                GFP_KERNEL_ACCOUNT,
            )?;
            Ok(())
        });
        res.map(|()| out)
    }

    /// Unmaps the areas inside `[start, last]` and returns how many bytes
    /// they covered.  An area that reaches outside the range is `ENOENT`;
    /// the areas before it are unmapped all the same, as upstream does.
    ///
    /// An area accesses hold pins in is closed to new pins, `notify(iova,
    /// length)` asks the accesses to unpin it (called without the lock
    /// held), and the unmap goes on once they have.
    #[cfg_attr(not(CONFIG_IOMMUFD_TEST), allow(dead_code))] // The tests'.
    pub(crate) fn unmap(&self, start: u64, last: u64, notify: &dyn Fn(u64, u64)) -> Result<u64> {
        let (unmapped, res) = self.unmap_counted(start, last, notify);
        res.map(|()| unmapped)
    }

    /// [`IoPagetable::unmap`], which also tells how many bytes went before
    /// a failure (VFIO reports them).  The count is upstream's `unsigned
    /// long`: unmapping all 2^64 bytes counts 0.
    pub(crate) fn unmap_counted(
        &self,
        start: u64,
        last: u64,
        notify: &dyn Fn(u64, u64),
    ) -> (u64, Result) {
        let mut unmapped = 0u64;
        let mut from = start;
        let mut tries = 0;
        loop {
            let mut inner = self.inner.lock();
            let Some((s, l, _)) = inner.areas.first_overlap(from, last) else {
                return (unmapped, Ok(()));
            };
            if inner.areas.get_mut(s).is_some_and(|(_, a)| a.copying != 0) {
                // A copy through the area runs without the lock: wait for
                // it, then look again.
                self.copied.wait(&mut inner);
                continue;
            }
            if inner
                .areas
                .get_mut(s)
                .is_some_and(|(_, a)| a.num_locks != 0)
            {
                return (unmapped, Err(EBUSY));
            }
            if s < start || l > last {
                return (unmapped, Err(ENOENT));
            }
            if let Some((_, area)) = inner.areas.get_mut(s) {
                if area.num_accesses != 0 {
                    area.prevent_access = true;
                    drop(inner);
                    tries += 1;
                    if tries > UNMAP_TRIES {
                        pr_warn!("IOVA {s:#x}: accesses do not release their pins\n");
                        return (unmapped, Err(EDEADLK));
                    }
                    notify(s, l - s + 1);
                    continue;
                }
            }
            tries = 0;
            let cur = &*inner;
            if let Some((_, _, area)) = cur.areas.first_overlap(s, s) {
                for (j, d) in cur.domains.iter().enumerate() {
                    unfill_area(d, s, l, area, j == 0);
                }
            }
            let removed = inner.areas.remove(s);
            drop(inner);
            drop(removed);
            unmapped = unmapped.wrapping_add(l - s + 1);
            match after(l) {
                Some(next) if l < last => from = next,
                _ => return (unmapped, Ok(())),
            }
        }
    }

    /// Splits the area holding `iova`, if any, into one ending at `iova`
    /// and one starting after it, so that a later unmap can end or start
    /// there (VFIO type1 semantics).  An area that cannot be split fails as
    /// upstream's: `EBUSY` while an unmap waits for its accesses,
    /// `EOPNOTSUPP` for a dma-buf, `EINVAL` off the IOVA alignment, with
    /// pins of accesses in it, or while a domain may map it with huge IOPTEs.
    pub(crate) fn cut(&self, iova: u64) -> Result {
        let mut inner = self.lock_idle_at(iova);
        let align = inner.iova_alignment;
        let huge = !inner.disable_large_pages && !inner.domains.is_empty();
        let Some((s, l, area)) = inner.areas.first_overlap(iova, iova) else {
            return Ok(());
        };
        if iova == s || iova == l {
            return Ok(());
        }
        if area.prevent_access {
            return Err(EBUSY);
        }
        if area.pages.is_dmabuf() {
            return Err(EOPNOTSUPP);
        }
        // `iova < l`: the right part starts at most at the top.
        let new_start = iova + 1;
        let rhs_byte = area.byte(s, new_start);
        if new_start & (align - 1) != 0 || rhs_byte & (align - 1) != 0 {
            return Err(EINVAL);
        }
        // Pins of accesses are counted per area, and a huge IOPTE cannot be
        // split: neither would survive.
        if area.num_accesses != 0 || huge {
            return Err(EINVAL);
        }
        let lhs = Area::new(area.pages.clone(), area.start_byte, area.prot);
        let rhs = Area::new(area.pages.clone(), rhs_byte, area.prot);
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
    /// Forbidding them makes IOVAs page aligned: `EADDRINUSE` if a mapping
    /// is not, `EINVAL` while a domain maps anything.
    pub(crate) fn set_large_pages(&self, enable: bool) -> Result {
        let mut inner = self.inner.lock();
        // What domains map already may be in huge IOPTEs, which a later cut
        // could not split (upstream: EINVAL).
        if !enable
            && !inner.disable_large_pages
            && !inner.domains.is_empty()
            && inner.areas.iter().next().is_some()
        {
            return Err(EINVAL);
        }
        let old = inner.disable_large_pages;
        inner.disable_large_pages = !enable;
        let res = inner.update_alignment();
        if res.is_err() {
            inner.disable_large_pages = old;
        }
        res
    }

    /// Starts or stops dirty tracking in `domain`, one of this IOAS's; when
    /// starting, clears what is dirty first so that the first read reports
    /// only what DMA writes from now on.
    pub(crate) fn set_dirty_tracking(&self, domain: &Domain, enable: bool) -> Result {
        if !domain.tracks_dirty() {
            return Err(EOPNOTSUPP);
        }
        let inner = self.inner.lock();
        if enable {
            let mut rec = DirtyRecord::new(None)?;
            for (s, l, _) in inner.areas.iter() {
                domain.read_and_clear_dirty(
                    s,
                    (l - s + 1) as usize,
                    DirtyFlags::empty(),
                    &mut rec,
                )?;
            }
            domain.flush_dirty(&mut rec);
        }
        domain.set_dirty_tracking(enable)
    }

    /// Reads the dirty state of `[iova, last]` of `domain` into `bitmap`,
    /// clearing it unless `flags` has `IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR`.
    /// The range must be mapped throughout (`EINVAL`), aligned to the IOAS
    /// and to the bitmap's page size.
    pub(crate) fn read_and_clear_dirty(
        &self,
        domain: &Domain,
        flags: u32,
        iova: u64,
        length: u64,
        page_size: u64,
        data: u64,
    ) -> Result {
        let last = last_of(iova, length)?;
        let inner = self.inner.lock();
        if !range_aligned(iova, last, inner.iova_alignment - 1) {
            return Err(EINVAL);
        }
        if page_size == 0 {
            return Err(EINVAL);
        }
        // Upstream masks with `page_size - 1` whatever `page_size` is; a
        // size that is no power of two passes when the masked bits are 0.
        if !range_aligned(iova, last, page_size - 1) {
            return Err(EINVAL);
        }
        if !domain.tracks_dirty() {
            return Err(EOPNOTSUPP);
        }
        // The uAPI's NO_CLEAR is the core's.
        const _: () =
            assert!(crate::uapi::IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR == DirtyFlag::NoClear as u32);
        let flags = DirtyFlags::from_bits_truncate(flags);
        let bitmap = IovaBitmap::new(iova, length, page_size, data).map_err(|_| ENOMEM)?;
        let mut rec = DirtyRecord::new(Some(&bitmap))?;
        let res = bitmap.for_each(|iova, len| {
            // The chunk must be mapped throughout, by areas that follow
            // each other.
            let last = last_of(iova, len as u64)?;
            let mut at = iova;
            while let Some((s, l, _)) = inner.areas.first_overlap(at, last) {
                if s > at {
                    break;
                }
                let end = l.min(last);
                domain.read_and_clear_dirty(at, (end - at + 1) as usize, flags, &mut rec)?;
                if end == last {
                    return Ok(());
                }
                at = end + 1;
            }
            Err(EINVAL)
        });
        if !flags.contains(DirtyFlag::NoClear) {
            domain.flush_dirty(&mut rec);
        }
        res
    }

    /// Counts an attached access; one that pins pages needs page aligned
    /// IOVAs (`EADDRINUSE` if a mapping is not).
    pub(crate) fn add_access(&self, pins: bool) -> Result {
        let mut inner = self.inner.lock();
        if pins {
            inner.pinning_accesses += 1;
            if let Err(e) = inner.update_alignment() {
                inner.pinning_accesses -= 1;
                return Err(e);
            }
        }
        Ok(())
    }

    /// Undoes [`IoPagetable::add_access`].
    pub(crate) fn remove_access(&self, pins: bool) {
        let mut inner = self.inner.lock();
        if pins {
            inner.pinning_accesses -= 1;
            // A smaller alignment suits every mapping.
            let _ = inner.update_alignment();
        }
    }

    /// Pins the pages mapped at `[iova, last]` for an access and appends
    /// their `struct page` pointers to `out`.  The range must be covered by
    /// areas without a gap (`ENOENT`), start on a page boundary and, where
    /// it goes from one area to the next, change area on page boundaries
    /// (`EINVAL`); the areas must allow the access (`EPERM`).
    pub(crate) fn access_pin(
        &self,
        iova: u64,
        last: u64,
        write: bool,
        out: &mut KVec<*mut bindings::page>,
    ) -> Result {
        let mut inner = self.inner.lock();
        let (stop, res) = inner.walk(iova, last, |cur, end, s, area| {
            let first_byte = area.byte(s, cur);
            let last_byte = area.byte(s, end);
            if area.prevent_access
                || area.pages.is_dmabuf()
                || first_byte % PAGE != 0
                || (end != last && last_byte % PAGE != PAGE - 1)
            {
                return Err(EINVAL);
            }
            area.check_access(write)?;
            area.pages.pin(first_byte / PAGE, last_byte / PAGE)?;
            area.num_accesses += 1;
            area.pages
                .page_ptrs(first_byte / PAGE, last_byte / PAGE, out)
                .inspect_err(|_| {
                    area.num_accesses -= 1;
                    area.pages.unpin(first_byte / PAGE, last_byte / PAGE);
                })
        });
        if let Err(e) = res {
            if stop > iova {
                Self::unpin_locked(&mut inner, iova, stop - 1);
            }
            return Err(e);
        }
        Ok(())
    }

    /// Pins the page-aligned range `[iova, last]` for a HW queue, whose
    /// hardware reads it by physical address: the pages must be physically
    /// contiguous (`EFAULT` if not), and the areas cannot be unmapped
    /// (`EBUSY`) until [`IoPagetable::unlock_pin`].  Returns the physical
    /// address of `iova`.  Fails as [`IoPagetable::access_pin`] for what is
    /// not mapped or not readable.
    pub(crate) fn lock_pin(&self, iova: u64, last: u64) -> Result<u64> {
        let mut inner = self.inner.lock();
        let mut base = None;
        let mut next = 0u64;
        let (stop, res) = inner.walk(iova, last, |cur, end, s, area| {
            let (first, lastb) = (area.byte(s, cur), area.byte(s, end));
            if area.prevent_access
                || area.pages.is_dmabuf()
                || first % PAGE != 0
                || lastb % PAGE != PAGE - 1
            {
                return Err(EINVAL);
            }
            area.check_access(false)?;
            area.pages.pin(first / PAGE, lastb / PAGE)?;
            let contiguous = area
                .pages
                .for_each_phys(first / PAGE, lastb / PAGE, |_, pa| {
                    if base.is_some() && pa != next {
                        return Err(EFAULT);
                    }
                    base.get_or_insert(pa);
                    next = pa.checked_add(PAGE).ok_or(EFAULT)?;
                    Ok(())
                });
            if let Err(e) = contiguous {
                area.pages.unpin(first / PAGE, lastb / PAGE);
                return Err(e);
            }
            area.num_accesses += 1;
            area.num_locks += 1;
            Ok(())
        });
        if let Err(e) = res {
            if stop > iova {
                Self::unlock_locked(&mut inner, iova, stop - 1);
            }
            return Err(e);
        }
        base.ok_or(EFAULT)
    }

    /// Gives back what [`IoPagetable::lock_pin`] took on `[iova, last]`.
    pub(crate) fn unlock_pin(&self, iova: u64, last: u64) {
        let mut inner = self.inner.lock();
        Self::unlock_locked(&mut inner, iova, last);
    }

    fn unlock_locked(inner: &mut Inner, iova: u64, last: u64) {
        let (_, res) = inner.walk(iova, last, |cur, end, s, area| {
            if area.num_locks == 0 || area.num_accesses == 0 {
                return Err(EINVAL);
            }
            area.num_locks -= 1;
            area.num_accesses -= 1;
            area.pages
                .unpin(area.byte(s, cur) / PAGE, area.byte(s, end) / PAGE);
            Ok(())
        });
        if res.is_err() {
            pr_warn!(
                "unlock of IOVA {iova:#x}..{last:#x} that was not locked
"
            );
        }
    }

    /// Gives back the pins [`IoPagetable::access_pin`] took on `[iova,
    /// last]`.
    pub(crate) fn access_unpin(&self, iova: u64, last: u64) {
        let mut inner = self.inner.lock();
        Self::unpin_locked(&mut inner, iova, last);
    }

    fn unpin_locked(inner: &mut Inner, iova: u64, last: u64) {
        let (_, res) = inner.walk(iova, last, |cur, end, s, area| {
            if area.num_accesses == 0 {
                return Err(EINVAL);
            }
            area.num_accesses -= 1;
            area.pages
                .unpin(area.byte(s, cur) / PAGE, area.byte(s, end) / PAGE);
            Ok(())
        });
        if res.is_err() {
            pr_warn!("access unpin of IOVA {iova:#x}..{last:#x} that was not pinned\n");
        }
    }

    /// Copies between `buf` and the memory mapped at `iova`: into the
    /// memory if `write`.  Same coverage and permission rules as
    /// [`IoPagetable::access_pin`], at any alignment.
    pub(crate) fn access_rw(&self, iova: u64, buf: &mut [u8], write: bool, direct: bool) -> Result {
        let last = last_of(iova, buf.len() as u64)?;
        // Area by area, as upstream (a gap after some areas is ENOENT, with
        // what came before copied): under the lock, the area is checked and
        // marked as being copied through, so that no unmap or cut changes
        // it; then the copy runs without the lock, so that a fault on user
        // memory (userfaultfd, say) stalls this copy only, not every
        // operation on the IOAS.
        let mut cur = iova;
        let mut done = 0usize;
        loop {
            let (start, end, pages, byte) = {
                let mut inner = self.inner.lock();
                let (s, l, _) = inner.areas.first_overlap(cur, cur).ok_or(ENOENT)?;
                let (_, area) = inner.areas.get_mut(s).ok_or(ENOENT)?;
                if area.prevent_access || area.pages.is_dmabuf() {
                    return Err(EINVAL);
                }
                area.check_access(write)?;
                area.copying += 1;
                (s, l.min(last), area.pages.clone(), area.byte(s, cur))
            };
            let n = (end - cur + 1) as usize;
            let res = pages.rw(byte, &mut buf[done..done + n], write, direct);
            drop(pages);
            let mut inner = self.inner.lock();
            if let Some((_, area)) = inner.areas.get_mut(start) {
                area.copying -= 1;
                if area.copying == 0 {
                    self.copied.notify_all();
                }
            }
            drop(inner);
            res?;
            done += n;
            if end == last {
                return Ok(());
            }
            cur = end + 1;
        }
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
        Ok([PagesSlice::user(uptr, length, writable, AccountMode::User)?])
    }

    const RW: Prot = Prot {
        read: true,
        write: true,
    };

    fn unmap(t: &IoPagetable, start: u64, last: u64) -> Result<u64> {
        t.unmap(start, last, &|_, _| {})
    }

    /// The first address of the last `n` bytes of the IOVA space.
    const fn top(n: u64) -> u64 {
        0u64.wrapping_sub(n)
    }

    #[test]
    fn map_and_unmap_at_the_top() -> Result {
        let t = iopt()?;
        let s = slice(0x1000, PAGE, true)?;
        assert_eq!(t.map(&s, Some(top(PAGE)), RW)?, top(PAGE));
        assert_eq!(t.map(&s, Some(top(PAGE)), RW), Err(EEXIST));
        let back = t.get_pages(top(PAGE), PAGE)?;
        assert_eq!((back.len(), back[0].length), (1, PAGE));
        assert_eq!(t.get_pages(top(PAGE), PAGE + 1).err(), Some(EOVERFLOW));
        assert_eq!(unmap(&t, top(PAGE), u64::MAX)?, PAGE);
        // One byte at the last address (the IOVA alignment is 1 here).
        assert_eq!(
            t.map(&slice(0x1000, 1, true)?, Some(u64::MAX), RW)?,
            u64::MAX
        );
        assert_eq!(unmap(&t, u64::MAX, u64::MAX)?, 1);
        // Two pages end at the top; one byte further does not fit.
        let two = slice(0x1000, 2 * PAGE, true)?;
        assert_eq!(t.map(&two, Some(top(2 * PAGE) + 1), RW), Err(EOVERFLOW));
        assert_eq!(t.map(&two, Some(top(2 * PAGE)), RW)?, top(2 * PAGE));
        assert_eq!(unmap(&t, 0, u64::MAX)?, 2 * PAGE);
        Ok(())
    }

    /// Automatic allocation, as upstream's, never returns IOVA 0 and never
    /// uses the last page of the space, wherever the allowed ranges are.
    #[test]
    fn auto_iova_at_the_edges_of_the_space() -> Result {
        let t = iopt()?;
        let mut allowed = IntervalMap::new();
        allowed.insert(0, 2 * PAGE - 1, ())?;
        allowed.insert(top(4 * PAGE), u64::MAX, ())?;
        t.set_allowed(allowed)?;
        assert_eq!(t.map(&slice(0x1000, PAGE, true)?, None, RW)?, PAGE);
        assert_eq!(
            t.map(&slice(0x1000, 4 * PAGE, true)?, None, RW),
            Err(ENOSPC)
        );
        let three = slice(0x1000, 3 * PAGE, true)?;
        assert_eq!(t.map(&three, None, RW)?, top(4 * PAGE));
        assert_eq!(t.map(&slice(0x1000, 1, true)?, None, RW), Err(ENOSPC));
        // A fixed IOVA may use what allocation leaves out.
        assert_eq!(
            t.map(&slice(0x1000, PAGE, true)?, Some(top(PAGE)), RW)?,
            top(PAGE)
        );
        assert_eq!(t.map(&slice(0x1000, PAGE, true)?, Some(0), RW)?, 0);
        assert_eq!(unmap(&t, 0, u64::MAX)?, 6 * PAGE);
        Ok(())
    }

    #[test]
    fn copy_to_the_top_in_two_slices() -> Result {
        let t = iopt()?;
        t.map(&slice(0x1000, PAGE, true)?, Some(0x10_0000), RW)?;
        t.map(&slice(0x8000, PAGE, true)?, Some(0x10_1000), RW)?;
        let two = t.get_pages(0x10_0800, PAGE)?;
        assert_eq!(two.len(), 2);
        assert_eq!(t.map(&two, Some(top(PAGE)), RW)?, top(PAGE));
        let back = t.get_pages(top(PAGE), PAGE)?;
        assert_eq!(back.len(), 2);
        assert_eq!((back[0].start_byte, back[0].length), (0x800, 0x800));
        assert_eq!((back[1].start_byte, back[1].length), (0, 0x800));
        // A copy of the copy, from the top.
        let again = t.get_pages(top(0x800), 0x800)?;
        assert_eq!(t.map(&again, Some(0x20_0000), RW)?, 0x20_0000);
        assert_eq!(unmap(&t, top(PAGE), u64::MAX)?, PAGE);
        assert_eq!(unmap(&t, 0, u64::MAX)?, 2 * PAGE + 0x800);
        Ok(())
    }

    #[test]
    fn failed_map_at_the_top_leaves_nothing() -> Result {
        let t = iopt()?;
        let rw = PagesSlice::user(0x1000, PAGE, true, AccountMode::User)?;
        let ro = PagesSlice::user(0x8000, PAGE, false, AccountMode::User)?;
        assert_eq!(t.map(&[rw, ro], Some(top(2 * PAGE)), RW), Err(EPERM));
        // Nothing of it stayed: the range maps again.
        let two = slice(0x1000, 2 * PAGE, true)?;
        assert_eq!(t.map(&two, Some(top(2 * PAGE)), RW)?, top(2 * PAGE));
        assert_eq!(unmap(&t, 0, u64::MAX)?, 2 * PAGE);
        Ok(())
    }

    #[test]
    fn unmapping_all_2_pow_64_bytes_counts_0() -> Result {
        let t = iopt()?;
        let half = 1u64 << 63;
        t.map(&slice(0x1000, half, true)?, Some(0), RW)?;
        t.map(&slice(0x1000, half, true)?, Some(half), RW)?;
        // Upstream counts in an unsigned long, which wraps: all of it went,
        // and 0 bytes are counted.
        assert_eq!(unmap(&t, 0, u64::MAX)?, 0);
        assert_eq!(t.get_pages(0, PAGE).err(), Some(ENOENT));
        assert_eq!(t.get_pages(top(PAGE), PAGE).err(), Some(ENOENT));
        Ok(())
    }

    #[test]
    fn cut_pin_and_copy_at_the_top() -> Result {
        let t = iopt()?;
        let pages = crate::pages::kunit_memfd_pages(4)?;
        let s = [PagesSlice {
            pages: pages.clone(),
            start_byte: 0,
            length: 4 * PAGE,
        }];
        t.map(&s, Some(top(4 * PAGE)), RW)?;
        // At an end of the area there is nothing to cut.
        t.cut(u64::MAX)?;
        t.cut(top(4 * PAGE))?;
        // An access pins the last page and copies through it.
        let mut out = KVec::new();
        t.access_pin(top(PAGE), u64::MAX, true, &mut out)?;
        assert_eq!(out.len(), 1);
        let mut data = [0u8; 16];
        for (i, b) in data.iter_mut().enumerate() {
            *b = 0xa0 + i as u8;
        }
        t.access_rw(u64::MAX - 15, &mut data, true, false)?;
        let mut back = [0u8; 16];
        t.access_rw(u64::MAX - 15, &mut back, false, false)?;
        assert_eq!(data, back);
        assert_eq!(
            t.access_rw(u64::MAX - 15, &mut [0u8; 17], false, false),
            Err(EOVERFLOW)
        );
        // Pins of an access are counted per area: no cut (upstream EINVAL).
        assert_eq!(t.cut(top(2 * PAGE) - 1), Err(EINVAL));
        t.access_unpin(top(PAGE), u64::MAX);
        assert_eq!(pages.npinned(), 0);
        // Free of pins, the last page is cut off and unmapped alone.
        t.cut(top(PAGE) - 1)?;
        assert_eq!(unmap(&t, top(PAGE), u64::MAX)?, PAGE);
        // While an unmap waits for the accesses of an area: EBUSY.
        if let Some((_, area)) = t.inner.lock().areas.get_mut(top(4 * PAGE)) {
            area.prevent_access = true;
        }
        assert_eq!(t.cut(top(3 * PAGE) - 1), Err(EBUSY));
        if let Some((_, area)) = t.inner.lock().areas.get_mut(top(4 * PAGE)) {
            area.prevent_access = false;
        }
        t.cut(top(3 * PAGE) - 1)?;
        assert_eq!(unmap(&t, top(4 * PAGE), top(3 * PAGE) - 1)?, PAGE);
        assert_eq!(unmap(&t, 0, u64::MAX)?, 2 * PAGE);
        Ok(())
    }

    #[test]
    fn auto_iova_keeps_the_user_alignment() -> Result {
        let t = iopt()?;
        // 2 MiB-aligned memory of 2 MiB: a huge-page-aligned IOVA, never 0.
        let a = t.map(&slice(0x4020_0000, 0x20_0000, true)?, None, RW)?;
        assert_eq!(a, 0x20_0000);
        // 8 KiB at an address whose lowest set bit is 4 KiB: 4 KiB-aligned,
        // below the first mapping.
        let b = t.map(&slice(0x7000, 0x2000, true)?, None, RW)?;
        assert_eq!(b, PAGE);
        // The offset in the page is kept.
        let c = t.map(&slice(0x9010, 0x10, true)?, None, RW)?;
        assert_eq!(c % PAGE, 0x10);
        assert!(c >= b + 0x2000);
        Ok(())
    }

    #[test]
    fn auto_iova_avoids_reserved_and_honours_allowed() -> Result {
        let t = iopt()?;
        t.reserve(0, 0xf_ffff, Reserver::Permanent)?;
        let a = t.map(&slice(0x1000, 0x1000, true)?, None, RW)?;
        assert_eq!(a, 0x10_0000);

        let mut allowed = IntervalMap::new();
        allowed.insert(0x4000_0000, 0x4000_ffff, ())?;
        t.set_allowed(allowed)?;
        let b = t.map(&slice(0x1000, 0x1000, true)?, None, RW)?;
        assert_eq!(b, 0x4000_0000);
        // 64 KiB allowed, 4 KiB used: 64 KiB more does not fit.
        assert_eq!(
            t.map(&slice(0x1_0000, 0x1_0000, true)?, None, RW),
            Err(ENOSPC)
        );
        Ok(())
    }

    #[test]
    fn fixed_iova_checks() -> Result {
        let t = iopt()?;
        t.reserve(0x1_0000, 0x1_ffff, Reserver::Permanent)?;
        let s = slice(0x1000, 0x2000, true)?;
        assert_eq!(t.map(&s, Some(0x1_8000), RW), Err(EINVAL));
        assert_eq!(t.map(&s, Some(u64::MAX - 0xfff), RW), Err(EOVERFLOW));
        assert_eq!(t.map(&s, Some(0x3_0000), RW)?, 0x3_0000);
        assert_eq!(t.map(&s, Some(0x3_1000), RW), Err(EEXIST));
        // A mapping is no place for a reservation.
        assert_eq!(
            t.reserve(0x3_1000, 0x3_1000, Reserver::Permanent),
            Err(EADDRINUSE)
        );
        // Read-only memory is not mapped for device writes.
        let ro = t.get_pages(0x3_0000, 0x2000)?;
        assert_eq!(t.map(&ro, Some(0x5_0000), RW)?, 0x5_0000);
        let ro = slice(0x1000, 0x1000, false)?;
        assert_eq!(t.map(&ro, Some(0x6_0000), RW), Err(EPERM));
        Ok(())
    }

    #[test]
    fn copy_needs_contiguous_areas() -> Result {
        let t = iopt()?;
        t.map(&slice(0x1000, 0x1000, true)?, Some(0x10_0000), RW)?;
        t.map(&slice(0x8000, 0x1000, true)?, Some(0x10_1000), RW)?;
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
        t.map(&slice(0x1000, 0x4000, true)?, Some(0x10_0000), RW)?;
        t.map(&slice(0x1000, 0x4000, true)?, Some(0x10_4000), RW)?;
        // Ends inside the second area: the first goes, the error stays.
        assert_eq!(unmap(&t, 0x10_0000, 0x10_5fff), Err(ENOENT));
        assert_eq!(unmap(&t, 0x10_0000, 0x10_3fff)?, 0);
        // Cut the second area in three and take out the middle.
        t.cut(0x10_4fff)?;
        t.cut(0x10_5fff)?;
        assert_eq!(unmap(&t, 0x10_5000, 0x10_5fff)?, 0x1000);
        let rest = t.get_pages(0x10_6000, 0x2000)?;
        assert_eq!(rest[0].start_byte, 0x2000);
        assert_eq!(unmap(&t, 0, u64::MAX)?, 0x3000);
        Ok(())
    }

    /// No-IOMMU mode: where an IOVA's memory is, as the software domain
    /// records it, and how far it is physically contiguous; at the top of
    /// the IOVA space too.
    #[cfg(CONFIG_IOMMUFD_NOIOMMU)]
    #[test]
    fn phys_through_a_software_domain() -> Result {
        let t = iopt()?;
        let n = 4;
        let pages = crate::pages::kunit_memfd_pages(n)?;
        let s = [PagesSlice {
            pages: pages.clone(),
            start_byte: 0,
            length: n * PAGE,
        }];
        let iova = top(n * PAGE);
        assert_eq!(t.map(&s, Some(iova), RW)?, iova);
        // No domain yet: nothing records physical addresses.
        assert_eq!(t.phys(iova, PAGE), Err(EOPNOTSUPP));
        let d = Arc::new(Domain::alloc_software()?, GFP_KERNEL)?;
        assert!(d.is_software());
        t.add_domain(&d)?;
        let mut pa = KVec::new();
        pages.for_each_phys(0, n - 1, |_, p| pa.push(p, GFP_KERNEL).map_err(Into::into))?;
        for i in 0..n {
            let at = iova + i * PAGE;
            let p = pa[i as usize];
            // The pages from `i` on that follow each other physically.
            let run = (i + 1..n)
                .take_while(|&j| pa[j as usize] == p + (j - i) * PAGE)
                .count() as u64
                + 1;
            assert_eq!(t.phys(at, u64::MAX)?, (p, run * PAGE));
            assert_eq!(t.phys(at + 5, 1)?, (p + 5, 1));
            assert_eq!(t.phys(at + 5, PAGE)?, (p + 5, PAGE.min(run * PAGE - 5)));
        }
        // The last byte of the space is one byte long.
        assert_eq!(
            t.phys(u64::MAX, u64::MAX)?,
            (pa[n as usize - 1] + PAGE - 1, 1)
        );
        assert_eq!(t.phys(iova - 1, PAGE), Err(ENOENT));
        t.remove_domain(&d);
        assert_eq!(t.phys(iova, PAGE), Err(EOPNOTSUPP));
        assert_eq!(unmap(&t, 0, u64::MAX)?, n * PAGE);
        assert_eq!(t.phys(iova, PAGE), Err(ENOENT));
        Ok(())
    }
}
