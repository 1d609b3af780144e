// SPDX-License-Identifier: GPL-2.0

//! Pins of user memory (`FOLL_PIN`, the `pin_user_pages` family) and the
//! locked-memory accounting that long-term pins are charged to.
//!
//! A [`PinnedPage`] owns exactly one pin and gives it back when dropped, so a
//! page can neither be unpinned twice nor be left pinned by a forgotten error
//! path.  Pins are taken in batches with [`MmapReadGuard::pin_pages`], which
//! needs the address space locked for reading.
//!
//! C headers: [`include/linux/mm.h`](srctree/include/linux/mm.h),
//! [`include/linux/sched/user.h`](srctree/include/linux/sched/user.h)

use super::{Mm, MmWithUser, MmapReadGuard};
use crate::{
    bindings,
    prelude::*,
    sync::aref::{ARef, AlwaysRefCounted},
    sync::atomic::{Atomic, Relaxed},
    task::Task,
    types::Opaque,
};
use core::ptr::NonNull;

/// One `FOLL_PIN` pin of a page, given back with `unpin_user_page()` when
/// dropped.
///
/// # Invariants
///
/// `page`, its bit [`WRITABLE`] cleared, points to a valid `struct page` on
/// which this object owns exactly one pin.  The bit is set if the kernel may
/// write to the page: it was pinned for writing (`FOLL_WRITE`), or it is a
/// page of a memfd (the file's own memory).  A page pinned for reading only
/// may be shared (the zero page, a page shared with another process until
/// it writes), so it must not be written.
#[repr(transparent)]
pub struct PinnedPage {
    page: NonNull<bindings::page>,
}

/// The bit of [`PinnedPage::page`] that says the pin allows writing; free
/// since a `struct page` is aligned.
const WRITABLE: usize = 1;
const _: () = assert!(core::mem::align_of::<bindings::page>() > WRITABLE);

// SAFETY: A pin is not tied to the task that took it: `unpin_user_page()` may
// be called from any thread.
unsafe impl Send for PinnedPage {}

// SAFETY: The methods taking `&self` read the page's identity, or copy to or
// from its memory through a temporary mapping, which is safe from any thread.
unsafe impl Sync for PinnedPage {}

impl PinnedPage {
    /// The pinned `struct page`, valid for as long as `self` lives.
    pub fn as_ptr(&self) -> *mut bindings::page {
        self.page.as_ptr().map_addr(|a| a & !WRITABLE)
    }

    /// Whether the pin allows the kernel to write to the page.
    pub fn is_writable(&self) -> bool {
        self.page.as_ptr().addr() & WRITABLE != 0
    }

    /// Marks the pin as one that allows writing.
    ///
    /// # Safety
    ///
    /// The page was pinned for writing, or is a page of a memfd opened for
    /// writing.
    unsafe fn set_writable(&mut self) {
        // INVARIANT: Per the function's requirements.
        self.page = self.page.map_addr(|a| a | WRITABLE);
    }

    /// The page frame number of the page.
    pub fn pfn(&self) -> usize {
        // SAFETY: By the type invariant the page is valid.
        unsafe { bindings::page_to_pfn(self.as_ptr()) }
    }

    /// The physical address of the page.
    pub fn phys_addr(&self) -> bindings::phys_addr_t {
        (self.pfn() as bindings::phys_addr_t) << bindings::PAGE_SHIFT
    }

    /// Copies `dst.len()` bytes from the page, starting `offset` bytes in.
    ///
    /// Fails with `EINVAL` if the range does not fit in the page.
    pub fn read(&self, offset: usize, dst: &mut [u8]) -> Result {
        self.with_mapped(offset, dst.len(), |va| {
            // SAFETY: `va` maps `dst.len()` bytes of the page, and `dst` is a
            // distinct kernel buffer of that length.
            unsafe { core::ptr::copy_nonoverlapping(va, dst.as_mut_ptr(), dst.len()) }
        })
    }

    /// Copies `src` into the page, starting `offset` bytes in.
    ///
    /// Fails with `EPERM` if the pin does not allow writing (see
    /// [`PinnedPage::is_writable`]), with `EINVAL` if the range does not fit
    /// in the page.
    pub fn write(&self, offset: usize, src: &[u8]) -> Result {
        if !self.is_writable() {
            return Err(EPERM);
        }
        self.with_mapped(offset, src.len(), |va| {
            // SAFETY: `va` maps `src.len()` bytes of the page, and `src` is a
            // distinct kernel buffer of that length.
            unsafe { core::ptr::copy_nonoverlapping(src.as_ptr(), va, src.len()) }
        })
    }

    fn with_mapped(&self, offset: usize, len: usize, f: impl FnOnce(*mut u8)) -> Result {
        if offset.checked_add(len).ok_or(EINVAL)? > crate::page::PAGE_SIZE {
            return Err(EINVAL);
        }
        // SAFETY: By the type invariant the page is valid; a pinned page
        // stays allocated until it is unpinned.
        let base = unsafe { bindings::kmap_local_page(self.as_ptr()) };
        // SAFETY: `base` maps the whole page and `offset + len` is within it.
        f(unsafe { base.cast::<u8>().add(offset) });
        // SAFETY: `base` was returned by the `kmap_local_page()` above, the
        // last local mapping taken.
        unsafe { bindings::kunmap_local(base) };
        Ok(())
    }

    /// Gives the pin back after marking the page dirty: for a page the
    /// device or the kernel may have written to.
    pub fn unpin_dirty(self) {
        let mut page = self.as_ptr();
        core::mem::forget(self);
        // SAFETY: `page` is an array of one page on which we owned one pin
        // (type invariant); `forget` above ensures it is given back once.
        unsafe { bindings::unpin_user_pages_dirty_lock(&mut page, 1, true) };
    }
}

impl Drop for PinnedPage {
    fn drop(&mut self) {
        // SAFETY: By the type invariant this object owns one pin on the page,
        // given back here exactly once.
        unsafe { bindings::unpin_user_page(self.as_ptr()) };
    }
}

/// How to pin (`FOLL_*` flags).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PinFlags(u32);

impl PinFlags {
    /// A pin for reading only.
    pub const READ: Self = Self(0);
    /// The pin will be used to write to the memory (`FOLL_WRITE`).
    pub const WRITE: Self = Self(bindings::FOLL_WRITE);
    /// The pin is held for an unbounded time, e.g. for DMA
    /// (`FOLL_LONGTERM`): the page is first moved out of movable memory.
    pub const LONGTERM: Self = Self(bindings::FOLL_LONGTERM);
}

impl core::ops::BitOr for PinFlags {
    type Output = Self;

    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl MmapReadGuard<'_> {
    /// Pins up to `nr` pages of this address space starting at the page
    /// aligned address `start`, and appends them to `out`.
    ///
    /// Returns how many were pinned, at least one; fewer than `nr` when the
    /// pinning stopped early (the caller continues from there).  Fails with
    /// `EFAULT` if the first page cannot be pinned, or with the error
    /// `pin_user_pages_remote()` gives.
    pub fn pin_pages(
        &self,
        start: usize,
        nr: usize,
        flags: PinFlags,
        out: &mut KVec<PinnedPage>,
    ) -> Result<usize> {
        if nr == 0 {
            return Err(EINVAL);
        }
        out.reserve(nr, GFP_KERNEL_ACCOUNT)?;
        let len = out.len();
        // SAFETY: `reserve` made room for `nr` more elements past `len`.
        let dst = unsafe { out.as_mut_ptr().add(len) }.cast::<*mut bindings::page>();
        // SAFETY: The read lock on `self.mm` is held for the whole call (the
        // `locked` argument is NULL so it is never dropped), and `dst` has
        // room for `nr` page pointers; `PinnedPage` is a transparent
        // `NonNull<page>`, so the array layout is the same.
        let got = unsafe {
            bindings::pin_user_pages_remote(
                self.mm.as_raw(),
                start,
                nr as c_ulong,
                flags.0,
                dst,
                core::ptr::null_mut(),
            )
        };
        if got < 0 {
            return Err(Error::from_errno(got as c_int));
        }
        let got = got as usize;
        if got == 0 || got > nr {
            return Err(EFAULT);
        }
        // SAFETY: `pin_user_pages_remote()` stored `got` valid, non-NULL page
        // pointers, each carrying one pin, which the vector now owns (with the
        // bit `WRITABLE` clear: pages are aligned).
        unsafe { out.inc_len(got) };
        if flags.0 & bindings::FOLL_WRITE != 0 {
            for page in &mut out[len..] {
                // SAFETY: Pinned for writing just above.
                unsafe { page.set_writable() };
            }
        }
        Ok(got)
    }
}

/// Pins `nr` pages of the memfd `file` starting at byte `start` (page
/// aligned), one pin per page, and appends them to `out`; all of them, or
/// fails with nothing appended.  The pins are long-term ones
/// (`memfd_pin_folios()`), which allow writing if the file is open for
/// writing.
pub fn pin_memfd_pages(
    file: &crate::fs::File,
    start: u64,
    nr: usize,
    out: &mut KVec<PinnedPage>,
) -> Result {
    // `memfd_pin_folios()` counts folios in an `unsigned int`.
    let max_folios = c_uint::try_from(nr).map_err(|_| EINVAL)?;
    if nr == 0 {
        return Err(EINVAL);
    }
    let end = (nr as u64)
        .checked_mul(crate::page::PAGE_SIZE as u64)
        .and_then(|len| start.checked_add(len - 1))
        .ok_or(EOVERFLOW)?;
    out.reserve(nr, GFP_KERNEL_ACCOUNT)?;
    let mut folios: KVec<*mut bindings::folio> = KVec::with_capacity(nr, GFP_KERNEL)?;
    let mut offset: c_ulong = 0;
    // SAFETY: `file` is a valid file; `folios` has room for `nr` entries;
    // each folio returned carries one pin.
    let got = unsafe {
        bindings::memfd_pin_folios(
            file.as_ptr(),
            start as bindings::loff_t,
            end as bindings::loff_t,
            folios.as_mut_ptr(),
            max_folios,
            &mut offset,
        )
    };
    if got <= 0 {
        return Err(if got < 0 {
            Error::from_errno(got as c_int)
        } else {
            EFAULT
        });
    }
    // SAFETY: `memfd_pin_folios()` stored `got` folio pointers.
    unsafe { folios.inc_len(got as usize) };
    let first = out.len();
    let mut page_in_folio = (offset as usize) >> bindings::PAGE_SHIFT;
    let flags = file.flags();
    let writable = flags & crate::fs::file::flags::O_ACCMODE != crate::fs::file::flags::O_RDONLY;
    let mut res = Ok(());
    let mut left = nr;
    for (i, &folio) in folios.iter().enumerate() {
        // SAFETY: `folio` is pinned, hence valid.
        let folio_pages = unsafe { bindings::folio_nr_pages(folio) } as usize;
        // An offset past the folio would be the core's bug: n = 0 fails.
        let n = folio_pages.saturating_sub(page_in_folio).min(left);
        // One pin per page: the folio has one, add the others.
        // SAFETY: `folio` is pinned.
        if n == 0 || (n > 1 && unsafe { bindings::folio_add_pins(folio, (n - 1) as c_uint) } != 0) {
            res = Err(ENOMEM);
            // Give back the pins of this folio and the ones after it; the
            // pages already taken are unpinned when `out` is truncated.
            for &f in folios.iter().skip(i) {
                // SAFETY: Each of these folios carries the one pin taken by
                // `memfd_pin_folios()`.
                unsafe { bindings::unpin_folio(f) };
            }
            break;
        }
        for k in 0..n {
            // SAFETY: `page_in_folio + k` is within the folio, which is
            // pinned once for each page taken.
            let page = unsafe { bindings::folio_page(folio, page_in_folio + k) };
            // INVARIANT: one pin per page, as above; a memfd's page.
            let mut pinned = PinnedPage {
                // SAFETY: A page of a valid folio is not NULL.
                page: unsafe { NonNull::new_unchecked(page) },
            };
            if writable {
                // SAFETY: A page of the memfd, opened for writing.
                unsafe { pinned.set_writable() };
            }
            // Cannot fail: `reserve` made room for `nr` pages.
            let _ = out.push_within_capacity(pinned);
        }
        left -= n;
        page_in_folio = 0;
    }
    if res.is_ok() && left != 0 {
        res = Err(EFAULT);
    }
    if res.is_err() {
        out.truncate(first);
    }
    res
}

impl Mm {
    /// Adds `delta` pages to the address space's count of pinned pages
    /// (`mm_struct::pinned_vm`, reported as `VmPin`).
    pub fn add_pinned_vm(&self, delta: i64) {
        // SAFETY: `self.as_raw()` is a valid mm; `pinned_vm` is an
        // `atomic64_t`, whose only field is the counter, only ever accessed
        // atomically.
        let counter = unsafe { &raw mut (*self.as_raw()).__bindgen_anon_1.pinned_vm.counter };
        // SAFETY: `counter` is valid and aligned for as long as `self` lives.
        unsafe { Atomic::<i64>::from_ptr(counter) }.add(delta, Relaxed);
    }

    /// The address space's count of pinned pages.
    pub fn pinned_vm(&self) -> i64 {
        // SAFETY: As in `add_pinned_vm`.
        let counter = unsafe { &raw mut (*self.as_raw()).__bindgen_anon_1.pinned_vm.counter };
        // SAFETY: As in `add_pinned_vm`.
        unsafe { Atomic::<i64>::from_ptr(counter) }.load(Relaxed)
    }
}

impl MmWithUser {
    /// Charges (`inc`) or uncharges `npages` to the address space's
    /// `locked_vm`, checking `RLIMIT_MEMLOCK` of `task` when charging:
    /// `ENOMEM` if the limit would be exceeded.  Takes the mmap lock for
    /// writing (`__account_locked_vm()`).
    pub fn account_locked_vm(&self, npages: usize, inc: bool, task: &Task) -> Result {
        // SAFETY: `self` is a valid mm with users, so its mmap lock can be
        // taken.
        unsafe { bindings::mmap_write_lock(self.as_raw()) };
        // SAFETY: The mmap lock is held for writing; `task` is a valid task.
        let ret = unsafe {
            bindings::__account_locked_vm(
                self.as_raw(),
                npages as c_ulong,
                inc,
                task.as_ptr(),
                false,
            )
        };
        // SAFETY: Taken above.
        unsafe { bindings::mmap_write_unlock(self.as_raw()) };
        crate::error::to_result(ret)
    }
}

/// The `RLIMIT_MEMLOCK` of `task`, in pages.
pub fn memlock_limit_pages(task: &Task) -> usize {
    // SAFETY: `task` is a valid task; reading its rlimit is always allowed.
    let bytes = unsafe { bindings::task_rlimit(task.as_ptr(), bindings::RLIMIT_MEMLOCK) };
    (bytes >> bindings::PAGE_SHIFT) as usize
}

/// A user's accounting record (`struct user_struct`), which counts the
/// pages pinned on the user's behalf (`locked_vm`).
///
/// # Invariants
///
/// Instances are only created through [`ARef`], which holds a reference
/// taken with `get_uid()`.
#[repr(transparent)]
pub struct User(Opaque<bindings::user_struct>);

// SAFETY: `user_struct` is reference counted and its counters are atomic; it
// may be used and released from any thread.
unsafe impl Send for User {}
// SAFETY: As above.
unsafe impl Sync for User {}

// SAFETY: `get_uid()` and `free_uid()` take and drop a reference, and the
// object lives while one is held.
unsafe impl AlwaysRefCounted for User {
    fn inc_ref(&self) {
        // SAFETY: `self` is a valid user_struct.
        unsafe { bindings::get_uid(self.0.get()) };
    }

    unsafe fn dec_ref(obj: NonNull<Self>) {
        // SAFETY: The caller gives back a reference it owns.
        unsafe { bindings::free_uid(obj.cast().as_ptr()) };
    }
}

#[cfg(any(
    CONFIG_NET,
    CONFIG_IO_URING,
    CONFIG_VFIO_PCI_ZDEV_KVM,
    CONFIG_IOMMUFD,
    CONFIG_SECRETMEM
))]
impl User {
    /// The user of the current task's credentials.
    pub fn current() -> ARef<Self> {
        // SAFETY: `current_user()` is valid while the current task runs; the
        // reference taken here keeps it alive beyond that.
        let user = unsafe { bindings::current_user() };
        // SAFETY: `User` is a transparent wrapper of `user_struct`, and
        // `user` is valid.
        let user = unsafe { &*user.cast::<Self>() };
        ARef::from(user)
    }

    fn locked_vm_atomic(&self) -> &Atomic<isize> {
        // SAFETY: `locked_vm` is an `atomic_long_t`, whose only field is the
        // counter, only ever accessed atomically.
        let counter = unsafe { &raw mut (*self.0.get()).locked_vm.counter };
        // SAFETY: `counter` is valid and aligned for as long as `self` lives.
        unsafe { Atomic::<isize>::from_ptr(counter.cast()) }
    }

    /// The pages charged to this user.
    pub fn locked_vm(&self) -> usize {
        self.locked_vm_atomic().load(Relaxed) as usize
    }

    /// Charges `npages` to the user unless that takes its total above
    /// `limit` pages: `ENOMEM` then, and nothing is charged.
    pub fn charge_locked_vm(&self, npages: usize, limit: usize) -> Result {
        let counter = self.locked_vm_atomic();
        let mut cur = counter.load(Relaxed);
        loop {
            let new = (cur as usize).checked_add(npages).ok_or(ENOMEM)?;
            if new > limit {
                return Err(ENOMEM);
            }
            match counter.cmpxchg(cur, new as isize, Relaxed) {
                Ok(_) => return Ok(()),
                Err(now) => cur = now,
            }
        }
    }

    /// Gives back `npages` charged with [`User::charge_locked_vm`].
    pub fn uncharge_locked_vm(&self, npages: usize) {
        let prev = self.locked_vm_atomic().fetch_sub(npages as isize, Relaxed);
        if (prev as usize) < npages {
            pr_warn!("locked_vm of a user went negative\n");
        }
    }
}
