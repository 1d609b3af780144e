// SPDX-License-Identifier: GPL-2.0

//! The IOVA layout of an IOAS: allowed ranges, reserved ranges and (to come)
//! the areas that map user memory.
//!
//! What exists so far: no area and no domain, so the usable IOVA space is
//! everything that is not reserved, at any alignment.

use kernel::new_mutex;
use kernel::prelude::*;
use kernel::sync::Mutex;

use crate::interval::{IntervalMap, RangeList};

/// Who reserved an IOVA range.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reserver {
    /// `IOMMU_TEST_OP_ADD_RESERVED`; never removed but with the IOAS.
    #[cfg_attr(not(CONFIG_IOMMUFD_TEST), allow(dead_code))]
    Test,
}

struct Inner {
    /// If not empty, the only ranges automatic IOVA allocation may use.
    allowed: IntervalMap<()>,
    /// Ranges nothing may map (may overlap: several owners may reserve the
    /// same window).
    reserved: RangeList<Reserver>,
    /// Map only with the smallest page size (`IOMMU_OPTION_HUGE_PAGES` 0).
    disable_large_pages: bool,
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
                disable_large_pages: false,
            }),
        })
    }

    /// The alignment every mapped IOVA and length must have.
    pub(crate) fn iova_alignment(&self) -> u64 {
        1
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
    /// allowed range (or, to come, a mapping).
    pub(crate) fn reserve(&self, start: u64, last: u64, by: Reserver) -> Result {
        let mut inner = self.inner.lock();
        if inner.allowed.overlaps(start, last) {
            return Err(EADDRINUSE);
        }
        inner.reserved.insert(start, last, by)
    }

    pub(crate) fn large_pages(&self) -> bool {
        !self.inner.lock().disable_large_pages
    }

    /// Allows or forbids mapping with page sizes above the smallest one.
    ///
    /// Nothing can be mapped yet, so there is no mapping this could conflict
    /// with.
    pub(crate) fn set_large_pages(&self, enable: bool) -> Result {
        self.inner.lock().disable_large_pages = !enable;
        Ok(())
    }
}
