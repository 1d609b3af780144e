// SPDX-License-Identifier: GPL-2.0

//! The IOVA layout of an IOAS.
//!
//! What is here so far is an IOAS with nothing mapped, no domain attached and
//! no reserved range: the whole 64-bit IOVA space is usable, at any alignment.
//! Areas, allowed and reserved ranges and domain apertures live here as they
//! are implemented.

use kernel::new_mutex;
use kernel::prelude::*;
use kernel::sync::Mutex;

struct Inner {
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
                disable_large_pages: false,
            }),
        })
    }

    /// The alignment every mapped IOVA and length must have.
    pub(crate) fn iova_alignment(&self) -> u64 {
        1
    }

    /// Calls `f(start, last)` for each maximal usable IOVA range, in order.
    pub(crate) fn for_each_usable_range(&self, mut f: impl FnMut(u64, u64) -> Result) -> Result {
        f(0, u64::MAX)
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
