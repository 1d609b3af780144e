// SPDX-License-Identifier: GPL-2.0

//! Dirty tracking: domains whose IOMMU marks the page table entries DMA
//! wrote to, read (and cleared) into a bitmap of IOVA in user memory.
//!
//! [`IovaBitmap`] is that bitmap (`struct iova_bitmap`): one bit per
//! `page_size` bytes of IOVA, which the core pins and writes a chunk at a
//! time.  A user reads a domain's dirty bits into it through a
//! [`DirtyRecord`].
//!
//! C headers: [`include/linux/iommu.h`](srctree/include/linux/iommu.h),
//! [`include/linux/iova_bitmap.h`](srctree/include/linux/iova_bitmap.h)

use crate::{bindings, error::to_result, impl_flags, prelude::*, types::Opaque};
use core::{marker::PhantomData, ptr::NonNull};

impl_flags!(
    /// How dirty bits are read (`IOMMU_DIRTY_*` flags).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct DirtyFlags(u32);

    /// One way of reading dirty bits.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum DirtyFlag {
        /// `IOMMU_DIRTY_NO_CLEAR`: read the dirty bits but leave them set.
        NoClear = bindings::IOMMU_DIRTY_NO_CLEAR,
    }
);

impl DirtyFlags {
    /// The flags in `raw` (as user space or the core pass them); bits that
    /// are no `IOMMU_DIRTY_*` flag are dropped.
    pub fn from_bits_truncate(raw: u32) -> Self {
        Self(raw & Self::all_bits())
    }
}

/// A bitmap of IOVA in user memory (`struct iova_bitmap`), freed when
/// dropped.
///
/// # Invariants
///
/// `ptr` is a bitmap from `iova_bitmap_alloc()` that we own.
pub struct IovaBitmap {
    ptr: NonNull<bindings::iova_bitmap>,
}

impl IovaBitmap {
    /// The bitmap at the user address `uptr` for `[iova, iova + length)`,
    /// one bit per `page_size` bytes.
    pub fn new(iova: u64, length: u64, page_size: u64, uptr: u64) -> Result<Self> {
        // SAFETY: Any values may be passed: the core checks them, and pins
        // the user memory itself (the pointer is a user address, never
        // dereferenced by the kernel directly).
        let p = unsafe {
            bindings::iova_bitmap_alloc(
                iova as c_ulong,
                length as usize,
                page_size as c_ulong,
                uptr as usize as *mut u64,
            )
        };
        let p = crate::error::from_err_ptr(p)?;
        // INVARIANT: A new bitmap, ours.
        Ok(Self {
            ptr: NonNull::new(p).ok_or(ENOMEM)?,
        })
    }

    /// Calls `f` with each chunk of the bitmap's IOVA range, `(iova,
    /// length)`, while that chunk of user memory is mapped for recording;
    /// stops at the first error.
    pub fn for_each(&self, mut f: impl FnMut(u64, usize) -> Result) -> Result {
        type F<'a> = &'a mut dyn FnMut(u64, usize) -> Result;
        /// Runs the closure of `for_each` on one chunk.
        ///
        /// # Safety
        ///
        /// `opaque` is the `F` `for_each` passes, live for the call.
        unsafe extern "C" fn step(
            _bitmap: *mut bindings::iova_bitmap,
            iova: c_ulong,
            length: usize,
            opaque: *mut c_void,
        ) -> c_int {
            // SAFETY: `opaque` is the `F` below, live for the whole walk.
            let f = unsafe { &mut *opaque.cast::<F<'_>>() };
            match f(iova as u64, length) {
                Ok(()) => 0,
                Err(e) => e.to_errno(),
            }
        }
        let mut f: F<'_> = &mut f;
        // SAFETY: By the type invariant the bitmap is valid; `f` outlives
        // the call.
        to_result(unsafe {
            bindings::iova_bitmap_for_each(self.ptr.as_ptr(), (&raw mut f).cast(), Some(step))
        })
    }
}

impl Drop for IovaBitmap {
    fn drop(&mut self) {
        // SAFETY: By the type invariant we own the bitmap; freed once.
        unsafe { bindings::iova_bitmap_free(self.ptr.as_ptr()) };
    }
}

#[repr(C)]
struct RecordInner {
    dirty: Opaque<bindings::iommu_dirty_bitmap>,
    gather: Opaque<bindings::iommu_iotlb_gather>,
}

/// Where a user has a domain's dirty bits go (`struct iommu_dirty_bitmap`
/// with its IOTLB gather): into an [`IovaBitmap`], or nowhere when the
/// bits are only cleared.
pub struct DirtyRecord<'a> {
    // Pinned: the gather's free list points to itself.
    inner: Pin<KBox<RecordInner>>,
    _bitmap: PhantomData<&'a IovaBitmap>,
}

impl<'a> DirtyRecord<'a> {
    /// A record into `bitmap`, or a clear-only record.
    pub fn new(bitmap: Option<&'a IovaBitmap>) -> Result<Self> {
        let inner = KBox::pin(
            RecordInner {
                dirty: Opaque::zeroed(),
                gather: Opaque::zeroed(),
            },
            GFP_KERNEL,
        )?;
        let g = inner.gather.get();
        // SAFETY: The record is pinned and zeroed; with `reset_gather` below
        // this is `iommu_iotlb_gather_init()` and `iommu_dirty_bitmap_init()`.
        unsafe {
            let list = &raw mut (*g).freelist.pages;
            (*list).next = list;
            (*list).prev = list;
            let d = inner.dirty.get();
            (*d).bitmap = bitmap.map_or(core::ptr::null_mut(), |b| b.ptr.as_ptr());
            (*d).gather = g;
        }
        let mut rec = Self {
            inner,
            _bitmap: PhantomData,
        };
        rec.reset_gather();
        Ok(rec)
    }

    /// Empties the gathered IOVA range (after a flush, or to start).
    pub(crate) fn reset_gather(&mut self) {
        let g = self.gather();
        // SAFETY: The gather is ours; only its range changes.
        unsafe {
            (*g).start = c_ulong::MAX;
            (*g).end = 0;
        }
    }

    /// The IOVA range, first and last, of the entries whose dirty bits the
    /// reads into this record cleared since the last flush: what the IOTLB
    /// flush covers.  `None` if they cleared none.
    pub fn cleared(&self) -> Option<(u64, u64)> {
        let g = self.gather();
        // SAFETY: The gather is ours; reading its range races with nothing
        // (reads into the record take `&mut self`).
        let (start, end) = unsafe { ((*g).start, (*g).end) };
        (start <= end).then_some((start as u64, end as u64))
    }

    pub(crate) fn as_raw(&self) -> *mut bindings::iommu_dirty_bitmap {
        self.inner.dirty.get()
    }

    pub(crate) fn gather(&self) -> *mut bindings::iommu_iotlb_gather {
        self.inner.gather.get()
    }
}
