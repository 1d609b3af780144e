// SPDX-License-Identifier: GPL-2.0

//! Pages of user memory taken with the `get_user_pages` family.
//!
//! C header: [`include/linux/mm.h`](srctree/include/linux/mm.h)

use crate::{bindings, error::to_result, prelude::*};
use core::ptr::NonNull;

/// The amount `pin_user_pages()` adds to a small page's reference count for
/// every pin; see `GUP_PIN_COUNTING_BIAS`.
pub const PIN_COUNTING_BIAS: i32 = bindings::GUP_PIN_COUNTING_BIAS as i32;

/// A reference on a page of the current process's memory, taken with
/// `get_user_pages_fast()` and dropped with `put_page()`.
///
/// This is a plain page reference (no `FOLL_PIN`): enough to look at the
/// page, not to hand it to a device for DMA.
///
/// # Invariants
///
/// `page` points to a valid `struct page` on which this object owns exactly
/// one reference.
pub struct UserPageRef {
    page: NonNull<bindings::page>,
}

// SAFETY: A page reference is not tied to the task that took it: `put_page()`
// may be called from any thread.
unsafe impl Send for UserPageRef {}

// SAFETY: The methods taking `&self` only read the page's reference count and
// flags, which the kernel updates atomically.
unsafe impl Sync for UserPageRef {}

impl UserPageRef {
    /// Takes a reference on the page that backs the user address `addr` in
    /// the current process, faulting it in if needed (for writing if
    /// `write`).
    pub fn get_fast(addr: usize, write: bool) -> Result<Self> {
        let mut page: *mut bindings::page = core::ptr::null_mut();
        let flags = if write { bindings::FOLL_WRITE } else { 0 };
        // SAFETY: `page` is a valid array of one page pointer; the call only
        // writes to it, and takes one reference per page it returns.
        let got = unsafe { bindings::get_user_pages_fast(addr, 1, flags, &mut page) };
        to_result(got)?;
        match NonNull::new(page) {
            // INVARIANT: one page was returned with one reference taken.
            Some(page) if got == 1 => Ok(Self { page }),
            _ => Err(EFAULT),
        }
    }

    /// The physical address of the page.
    pub fn phys_addr(&self) -> bindings::phys_addr_t {
        // SAFETY: By the type invariant the page is valid.
        let pfn = unsafe { bindings::page_to_pfn(self.page.as_ptr()) };
        (pfn as bindings::phys_addr_t) << bindings::PAGE_SHIFT
    }

    /// The `struct page`, valid for as long as `self` lives.
    pub fn as_ptr(&self) -> *mut bindings::page {
        self.page.as_ptr()
    }

    /// The page's reference count (`page_ref_count()`).
    ///
    /// Every `FOLL_PIN` pin of a small page adds [`PIN_COUNTING_BIAS`], so
    /// `ref_count() / PIN_COUNTING_BIAS` counts its pins.
    pub fn ref_count(&self) -> i32 {
        // SAFETY: By the type invariant `self.page` is a valid page.
        unsafe { bindings::page_ref_count(self.page.as_ptr()) }
    }

    /// Whether the page is part of a compound page (`PageCompound()`), whose
    /// references are counted on its head.
    pub fn is_compound(&self) -> bool {
        // SAFETY: By the type invariant `self.page` is a valid page.
        unsafe { bindings::PageCompound(self.page.as_ptr()) }
    }
}

impl Drop for UserPageRef {
    fn drop(&mut self) {
        // SAFETY: By the type invariant this object owns one reference on the
        // page, given back here exactly once.
        unsafe { bindings::put_page(self.page.as_ptr()) };
    }
}
