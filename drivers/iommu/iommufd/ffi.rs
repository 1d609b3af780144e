// SPDX-License-Identifier: GPL-2.0

//! The module's one boundary with C: every `extern` function it calls in
//! its shim (`iommufd_shim.c`), every function the shim calls back, and the
//! raw file operations behind them.  Every other file of the module is
//! `#![deny(unsafe_code)]`; what is here offers them safe interfaces.
//!
//! Files: the module's anonymous-inode files (a fault queue's, a selftest
//! access's) share one set of C file operations, which call back here.  A
//! file owns a [`FileOps`] value; its operations borrow it and its release
//! drops it.

#![allow(unsafe_code)]

use core::any::Any;
use core::ffi::{c_int, c_ulong, c_void};
use kernel::bindings;
use kernel::error::from_err_ptr;
use kernel::ffi::c_char;
use kernel::fs::file::{File, LocalFile};
use kernel::iommu::domain::{Domain, Prot};
use kernel::prelude::*;
use kernel::str::CStr;
use kernel::sync::aref::ARef;
#[cfg(CONFIG_IOMMUFD_TEST)]
use kernel::sync::atomic::Full;
use kernel::sync::atomic::{Acquire, Atomic, Release};
use kernel::sync::poll::PollTable;
use kernel::sync::{Arc, ArcBorrow};
use kernel::types::ForeignOwnable;

/// `DEFAULT_POLLMASK`: what `poll()` of a file without a poll operation
/// reports.
pub(crate) const DEFAULT_POLLMASK: u32 =
    bindings::POLLIN | bindings::POLLOUT | bindings::POLLRDNORM | bindings::POLLWRNORM;

/// The operations of one of the module's files, on what the file owns.
/// Dropping the value is the file's release.
pub(crate) trait FileOps: Any + Send + Sync {
    /// `read()` at offset 0 (other offsets fail with `ESPIPE` first) into
    /// the user buffer `buf` of `count` bytes; the bytes read.
    fn read(&self, _buf: usize, _count: usize) -> Result<usize> {
        Err(EINVAL)
    }

    /// `write()` at offset 0 from the user buffer `buf` of `count` bytes;
    /// the bytes taken.
    fn write(&self, _buf: usize, _count: usize) -> Result<usize> {
        Err(EINVAL)
    }

    /// `poll()`: registers in `table` what wakes the poller up, and returns
    /// the events ready now.
    fn poll(&self, _file: &File, _table: &PollTable<'_>) -> u32 {
        DEFAULT_POLLMASK
    }
}

/// What the private data of one of the module's files points to.
struct Private {
    ops: KBox<dyn FileOps>,
}

extern "C" {
    /// A new anonymous-inode file named `name` (`O_RDWR`) owning `data`.
    fn iommufd_shim_file(name: *const c_char, data: *mut c_void) -> *mut c_void;
    /// The private data of `file` if it is one of the module's files, else
    /// NULL.
    fn iommufd_shim_file_data(file: *mut c_void) -> *mut c_void;
    /// The `allow_unsafe_interrupts` module parameter (the shim's).
    fn iommufd_shim_allow_unsafe_interrupts() -> bool;
}

/// Whether devices whose MSIs the platform cannot isolate may be bound
/// (the `allow_unsafe_interrupts` module parameter, writable at run time).
pub(crate) fn allow_unsafe_interrupts() -> bool {
    // SAFETY: Reads the parameter; no precondition.
    unsafe { iommufd_shim_allow_unsafe_interrupts() }
}

/// A new anonymous-inode file named `name`, owning `ops`, with the one
/// reference.
pub(crate) fn anon_file(name: &'static CStr, ops: KBox<dyn FileOps>) -> Result<ARef<File>> {
    let data = KBox::new(Private { ops }, GFP_KERNEL_ACCOUNT)?.into_foreign();
    // SAFETY: `name` is a static C string; `data` comes from `into_foreign`,
    // and the file owns it from here on success.
    let raw = from_err_ptr(unsafe { iommufd_shim_file(name.as_char_ptr(), data) });
    let raw = match raw {
        Ok(raw) => raw.cast::<bindings::file>(),
        Err(e) => {
            // SAFETY: No file took `data`; it is turned back once, here.
            drop(unsafe { <KBox<Private> as ForeignOwnable>::from_foreign(data) });
            return Err(e);
        }
    };
    // SAFETY: `raw` is a new file, not yet installed in any file table, on
    // which we own the one reference: `ARef::from` counts a second one, and
    // the first is given back right after.
    let file: ARef<File> = ARef::from(unsafe { File::from_raw_file(raw) });
    // SAFETY: As above: our first reference.
    unsafe { bindings::fput(raw) };
    Ok(file)
}

/// What `file` owns, if it is one of the module's files and owns a `T`.
pub(crate) fn ops_of<T: FileOps>(file: &LocalFile) -> Option<&T> {
    // SAFETY: `file` is a live file; the shim only compares its operations
    // and reads its private data.
    let data = unsafe { iommufd_shim_file_data(file.as_ptr().cast()) };
    if data.is_null() {
        return None;
    }
    // SAFETY: The file is one of ours, so `data` came from `into_foreign`
    // in `anon_file` and is turned back only at its release, which cannot
    // come while the caller's `file` is live.
    let private: &Private = unsafe { <KBox<Private> as ForeignOwnable>::borrow(data) };
    let ops: &dyn Any = &*private.ops;
    ops.downcast_ref::<T>()
}

/// Borrows what a file owns.
///
/// # Safety
///
/// `data` is the private data of one of the module's files, which is not
/// released during `'a`.
unsafe fn private<'a>(data: *mut c_void) -> &'a Private {
    // SAFETY: Per the function's requirements, `data` came from
    // `into_foreign` and is turned back only at release.
    unsafe { <KBox<Private> as ForeignOwnable>::borrow(data) }
}

/// A result as `read()`/`write()` return it.
fn to_ssize(res: Result<usize>) -> isize {
    match res {
        // No more than the `count` the caller passed, a `ssize_t`.
        Ok(n) => isize::try_from(n).unwrap_or(isize::MAX),
        Err(e) => e.to_errno() as isize,
    }
}

/// `read()` of one of the module's files (`*ppos` checked by the shim).
///
/// # Safety
///
/// `data` is the private data of a file of ours being read.
#[no_mangle]
unsafe extern "C" fn iommufd_rs_file_read(data: *mut c_void, buf: usize, count: usize) -> isize {
    // SAFETY: The file is live during its `read()`.
    to_ssize(unsafe { private(data) }.ops.read(buf, count))
}

/// `write()` of one of the module's files (`*ppos` checked by the shim).
///
/// # Safety
///
/// `data` is the private data of a file of ours being written.
#[no_mangle]
unsafe extern "C" fn iommufd_rs_file_write(data: *mut c_void, buf: usize, count: usize) -> isize {
    // SAFETY: The file is live during its `write()`.
    to_ssize(unsafe { private(data) }.ops.write(buf, count))
}

/// `poll()` of one of the module's files.
///
/// # Safety
///
/// `data` is the private data of `file`, a file of ours being polled with
/// `wait`.
#[no_mangle]
unsafe extern "C" fn iommufd_rs_file_poll(
    data: *mut c_void,
    file: *mut bindings::file,
    wait: *mut bindings::poll_table,
) -> u32 {
    // SAFETY: The file and the table are live during its `poll()`.
    let (p, file, table) = unsafe {
        (
            private(data),
            File::from_raw_file(file),
            PollTable::from_raw(wait),
        )
    };
    p.ops.poll(file, &table)
}

/// Release of one of the module's files: drops what it owns.
///
/// # Safety
///
/// `data` is the private data of a file of ours, passed once, at its
/// release.
#[no_mangle]
unsafe extern "C" fn iommufd_rs_file_release(data: *mut c_void) {
    // SAFETY: `data` came from `into_foreign`; released once.
    drop(unsafe { <KBox<Private> as ForeignOwnable>::from_foreign(data) });
}

/// Whether the pages of `file` can be pinned as a memfd's (`memfd_pin_folios()`):
/// those of shmem (memfd, tmpfs) and hugetlbfs files.
pub(crate) fn pins_like_memfd(file: &File) -> bool {
    extern "C" {
        fn iommufd_shim_file_pins_like_memfd(file: *mut c_void) -> bool;
    }
    // SAFETY: `file` is a live file; the shim only looks at its inode.
    unsafe { iommufd_shim_file_pins_like_memfd(file.as_ptr().cast()) }
}

/// `USER_PTR_MAX`: the highest address `access_ok()` lets a user range
/// reach (its start plus its size, for ranges of unknown size).
pub(crate) fn user_ptr_max() -> usize {
    #[cfg(CONFIG_X86_64)]
    {
        // SAFETY: `USER_PTR_MAX` is set once during boot, before any module
        // can load, and only read after.
        unsafe { bindings::USER_PTR_MAX }
    }
    #[cfg(not(CONFIG_X86_64))]
    usize::MAX
}

/// `struct iommu_test_cmd` of `drivers/iommu/iommufd/iommufd_test.h`, the
/// selftests' private command.  It is not uAPI, so bindgen does not see it;
/// the layout is spelled out here and checked against the C one below.
/// The per-operation union is kept as bytes and read by `selftest.rs`.
#[cfg(CONFIG_IOMMUFD_TEST)]
#[repr(C, align(8))]
#[derive(Clone, Copy)]
pub(crate) struct iommu_test_cmd {
    pub(crate) size: u32,
    pub(crate) op: u32,
    pub(crate) id: u32,
    pub(crate) __reserved: u32,
    pub(crate) u: [u8; 48],
    pub(crate) last: u32,
    /// The C structure's tail padding, named so that no byte is implicit.
    pub(crate) __pad: u32,
}

#[cfg(CONFIG_IOMMUFD_TEST)]
const _: () = {
    // sizeof(), offsetof(u) and offsetof(last) of the C structure.
    assert!(core::mem::size_of::<iommu_test_cmd>() == 72);
    assert!(core::mem::offset_of!(iommu_test_cmd, u) == 16);
    assert!(core::mem::offset_of!(iommu_test_cmd, last) == 64);
};

// SAFETY: `iommu_test_cmd` is `repr(C)` and made of `u32`s and a byte
// array, its tail padding named (`__pad`), as the layout checks above
// confirm: any bytes are a valid value, all of them are initialised, and
// nothing in it is interior mutable.
#[cfg(CONFIG_IOMMUFD_TEST)]
unsafe impl kernel::transmute::FromBytes for iommu_test_cmd {}
// SAFETY: As above.
#[cfg(CONFIG_IOMMUFD_TEST)]
unsafe impl kernel::transmute::AsBytes for iommu_test_cmd {}

/// Maps `[iova, iova + size)` of `domain` to the physical memory at `paddr`.
///
/// Only `pages.rs` calls this (`scripts/check-layers.py` checks it): the
/// memory is pinned pages, or a dma-buf attachment's memory, that it holds
/// pinned until it has unmapped the range again, as `Domain::map` requires.
pub(crate) fn map_pinned(
    domain: &Domain,
    iova: u64,
    paddr: u64,
    size: usize,
    prot: Prot,
) -> Result {
    // SAFETY: The caller, `pages.rs`, holds the memory (pages it pinned, or
    // an attachment of the buffer it has pinned) until the range is unmapped
    // (see above).
    unsafe { domain.map(iova, paddr, size, prot) }
}

/// The file of descriptor `fd` of the calling task, to pin its pages with:
/// `EBADF` if there is none.
///
/// Only ioctl handlers call this (`scripts/check-layers.py` checks it):
/// they hold no `fdget_pos()` on any file.
pub(crate) fn fget_for_pinning(fd: u32) -> Result<ARef<File>> {
    let file = LocalFile::fget(fd).map_err(|_| EBADF)?;
    // SAFETY: An ioctl handler holds no `fdget_pos()` on any file, so the
    // file may be shared with other threads.
    Ok(unsafe { LocalFile::assume_no_fdget_pos(file) })
}

/// A shared value of the module, set at module init and taken back at exit
/// (the selftest's mock IOMMU registration).
#[cfg(CONFIG_IOMMUFD_TEST)]
type GlobalValue = Option<Arc<dyn Any + Send + Sync>>;

#[cfg(CONFIG_IOMMUFD_TEST)]
kernel::sync::global_lock! {
    // SAFETY: `global_replace` initialises it, once (`GLOBAL_STATE`), before
    // any other use.
    unsafe(uninit) static GLOBAL: Mutex<GlobalValue> = None;
}

/// `GLOBAL`'s state: 0 before its lock is initialised, 1 while it is, 2
/// from then on.
#[cfg(CONFIG_IOMMUFD_TEST)]
static GLOBAL_STATE: Atomic<i32> = Atomic::new(0);

/// Replaces the module's shared value with `value`; the old one.
#[cfg(CONFIG_IOMMUFD_TEST)]
pub(crate) fn global_replace(value: GlobalValue) -> Result<GlobalValue> {
    if GLOBAL_STATE.cmpxchg(0, 1, Full).is_ok() {
        // SAFETY: Only the caller that moved the state from 0 gets here,
        // once; no one uses the lock before the state is 2.
        unsafe { GLOBAL.init() };
        GLOBAL_STATE.store(2, Release);
    }
    if GLOBAL_STATE.load(Acquire) != 2 {
        return Err(EBUSY);
    }
    Ok(core::mem::replace(&mut *GLOBAL.lock(), value))
}

/// The module's shared value, if it is set and is a `T`.
#[cfg(CONFIG_IOMMUFD_TEST)]
pub(crate) fn global<T: Any + Send + Sync>() -> Option<Arc<T>> {
    if GLOBAL_STATE.load(Acquire) != 2 {
        return None;
    }
    let value = GLOBAL.lock().clone()?;
    if !(*value).is::<T>() {
        return None;
    }
    let raw = Arc::into_raw(value).cast::<T>();
    // SAFETY: `raw` points to a `T` (checked above), the value of an
    // `Arc<T>` coerced to `Arc<dyn Any>` (the same allocation, with the same
    // layout), whose reference `into_raw` handed over.
    Some(unsafe { Arc::from_raw(raw) })
}

/// KUnit support: a shmem file of `len` bytes, which pins like a memfd.
#[cfg(CONFIG_KUNIT)]
pub(crate) fn kunit_memfd(len: usize) -> Result<ARef<File>> {
    extern "C" {
        fn iommufd_shim_kunit_memfd(size: usize) -> *mut c_void;
    }
    // SAFETY: The shim makes a new file of `len` bytes, or fails.
    let f = from_err_ptr(unsafe { iommufd_shim_kunit_memfd(len) })?;
    let f = core::ptr::NonNull::new(f.cast::<File>()).ok_or(ENOMEM)?;
    // SAFETY: The new file's one reference is ours, which the `ARef` takes
    // over; `File` is a transparent wrapper of `struct file`.
    Ok(unsafe { ARef::from_raw(f) })
}

/// KUnit support: maps `[iova, iova + size)` of `domain` to the physical
/// address `paddr`, whatever is there, to test a page table with.
///
/// Only the mock's KUnit tests call this (`scripts/check-layers.py` checks
/// it), on mock domains they allocate and drop without ever attaching a
/// device to them: no device can reach the memory, which is all
/// `Domain::map` asks of its caller.
#[cfg(CONFIG_KUNIT)]
pub(crate) fn kunit_map_unattached(
    domain: &Domain,
    iova: u64,
    paddr: u64,
    size: usize,
    prot: Prot,
) -> Result {
    // SAFETY: No device is attached to `domain`, now or later (see above).
    unsafe { domain.map(iova, paddr, size, prot) }
}

/// KUnit support: the offset of field `which` of a structure the module
/// reaches through bindgen's layouts, as C lays it out (see the shim).
#[cfg(CONFIG_KUNIT)]
pub(crate) fn c_offset(which: u32) -> usize {
    extern "C" {
        fn iommufd_shim_c_offset(which: u32) -> usize;
    }
    // SAFETY: The shim function only computes a constant.
    unsafe { iommufd_shim_c_offset(which) }
}

/// KUnit support: entry `i` of the C compiler's table of the sizes and
/// field offsets of iommufd's C-layout objects (`iommufd_layout.c`), `!0`
/// past its end.
#[cfg(CONFIG_KUNIT)]
pub(crate) fn c_layout(i: u32) -> usize {
    extern "C" {
        fn iommufd_shim_layout(i: u32) -> usize;
    }
    // SAFETY: The C function only reads a constant table.
    unsafe { iommufd_shim_layout(i) }
}

// The in-kernel C API (`include/linux/iommufd.h`), for VFIO.
//
// What C callers hold are opaque pointers:
// - `struct iommufd_ctx *` is the `/dev/iommu` file itself: one per open,
//   so VFIO's comparisons of context pointers hold; a reference on it is a
//   reference on the file (`iommufd_ctx_get()`/`_put()`), which keeps the
//   context (the file's private data) alive.
// - `struct iommufd_device *` and `struct iommufd_access *` are boxes of
//   [`CApi::Device`] and [`CApi::Access`] with a reference on the file,
//   given back by `iommufd_device_unbind()` and `iommufd_access_destroy()`.
// The crate root implements [`CApi`] over the module's objects; the shim
// exports the functions with the C module's names, namespaces and licence.

/// The module's objects behind the C API, implemented by the crate root
/// (`crate::CApiImpl`).
pub(crate) trait CApi {
    /// A context: what a `/dev/iommu` file's private data is an `Arc` of.
    type Ctx: Send + Sync + 'static;
    /// A device bound for a C caller, unbound when dropped.
    type Device: Send + Sync;
    /// An access created for a C caller, destroyed when dropped.
    type Access: Send + Sync;

    /// `iommufd_device_bind()`: binds `dev` to `ctx`, whose file is `file`;
    /// the device and its object ID.
    fn device_bind(
        ctx: ArcBorrow<'_, Self::Ctx>,
        file: &File,
        dev: &kernel::device::Device,
    ) -> Result<(Self::Device, u32)>;
    /// `iommufd_device_attach()`/`_replace()`: attaches the RID (`pasid`
    /// `None`) or a PASID to the IOAS or HWPT `pt_id`; the HWPT used.
    fn device_attach(
        d: &Self::Device,
        pasid: Option<u32>,
        pt_id: u32,
        replace: bool,
    ) -> Result<u32>;
    /// `iommufd_device_detach()`.
    fn device_detach(d: &Self::Device, pasid: Option<u32>);
    /// `iommufd_ctx_has_group()`: whether a device of the group with key
    /// `group` is bound to `ctx`.
    fn ctx_has_group(ctx: &Self::Ctx, group: usize) -> bool;
    /// `iommufd_access_create()`: an access owned by `ops`; it and its ID.
    fn access_create(
        ctx: ArcBorrow<'_, Self::Ctx>,
        file: &File,
        ops: CAccessOps,
    ) -> Result<(Self::Access, u32)>;
    /// `iommufd_access_attach()`/`_replace()` (`replace`) to IOAS `ioas_id`.
    fn access_attach(a: &Self::Access, ioas_id: u32, replace: bool) -> Result;
    /// `iommufd_access_detach()`.
    fn access_detach(a: &Self::Access);
    /// `iommufd_access_pin_pages()`: appends the pages of `[iova, last]`.
    fn access_pin(
        a: &Self::Access,
        iova: u64,
        length: u64,
        write: bool,
        out: &mut KVec<*mut bindings::page>,
    ) -> Result;
    /// `iommufd_access_unpin_pages()`.
    fn access_unpin(a: &Self::Access, iova: u64, length: u64);
    /// `iommufd_access_rw()`.
    fn access_rw(a: &Self::Access, iova: u64, buf: &mut [u8], flags: u32) -> Result;
    /// `iommufd_vfio_compat_ioas_get_id()`: `ENODEV` without a compat IOAS.
    fn compat_ioas_get_id(ctx: &Self::Ctx) -> Result<u32>;
    /// `iommufd_vfio_compat_ioas_create()`.
    fn compat_ioas_create(ctx: &Self::Ctx) -> Result;
    /// `iommufd_vfio_compat_set_no_iommu()`.
    fn compat_set_no_iommu(ctx: &Self::Ctx) -> Result;
}

use crate::CApiImpl as Api;
type CtxOf = <Api as CApi>::Ctx;

/// `struct iommufd_access_ops` of a C caller, with its `data`: what an
/// access created through the C API calls back.
pub(crate) struct CAccessOps {
    needs_pin_pages: bool,
    unmap: Option<unsafe extern "C" fn(*mut c_void, c_ulong, c_ulong)>,
    data: *mut c_void,
}

// SAFETY: The C API requires the callbacks to be callable from any thread
// with the caller's `data`, which the caller keeps until it destroys the
// access.
unsafe impl Send for CAccessOps {}
// SAFETY: As above.
unsafe impl Sync for CAccessOps {}

impl CAccessOps {
    /// Whether the caller pins pages (`needs_pin_pages`).
    pub(crate) fn needs_pin_pages(&self) -> bool {
        self.needs_pin_pages
    }

    /// Tells the caller that `[iova, iova + length)` goes away (`unmap`).
    pub(crate) fn unmap(&self, iova: u64, length: u64) {
        if let Some(unmap) = self.unmap {
            // SAFETY: The caller's callback, with its data, as the C API
            // defines (the caller keeps both until it destroys the access).
            unsafe { unmap(self.data, iova, length) }
        }
    }
}

/// The file operations of `/dev/iommu` files (0 before the first open).
static CTX_FOPS: Atomic<usize> = Atomic::new(0);

/// Notes the file operations of a `/dev/iommu` file being opened, by which
/// `iommufd_ctx_from_file()` recognises them.
pub(crate) fn note_ctx_file(file: &File) {
    // SAFETY: `file` is valid; its operations do not change while it is
    // open.
    let fops = unsafe { (*file.as_ptr()).f_op };
    CTX_FOPS.store(fops as usize, Release);
}

/// Whether `file` is a `/dev/iommu` file.
///
/// # Safety
///
/// `file` is a valid file.
unsafe fn is_ctx_file(file: *mut bindings::file) -> bool {
    let ours = CTX_FOPS.load(Acquire);
    // SAFETY: Per the function's requirements.
    ours != 0 && unsafe { (*file).f_op } as usize == ours
}

/// The context of a `/dev/iommu` file.
///
/// # Safety
///
/// `file` is a `/dev/iommu` file ([`is_ctx_file`]) on which the caller
/// holds a reference for `'a`.
unsafe fn ctx_of<'a>(file: *mut bindings::file) -> ArcBorrow<'a, CtxOf> {
    // SAFETY: The misc device's open stored an `Arc` of the context with
    // `into_foreign`, turned back only at the file's release.
    unsafe { <Arc<CtxOf> as ForeignOwnable>::borrow((*file).private_data) }
}

/// A device bound or an access created through the C API, with the
/// reference on the context's file that it holds.
struct CHandle<T> {
    obj: T,
    id: u32,
    file: ARef<File>,
}

/// What `iommufd_device_bind()` and `iommufd_access_create()` return for
/// `made`: a handle holding it with a reference on `file`, its ID written
/// to `id`; or the error as a pointer.
///
/// # Safety
///
/// `id` is valid for a write.
unsafe fn into_handle<T>(made: Result<(T, u32)>, file: &File, id: *mut u32) -> *mut c_void {
    let boxed = made.and_then(|(obj, obj_id)| {
        let file = file.into();
        Ok(KBox::new(
            CHandle {
                obj,
                id: obj_id,
                file,
            },
            GFP_KERNEL,
        )?)
    });
    match boxed {
        Ok(h) => {
            // SAFETY: Per the function's requirements.
            unsafe { *id = h.id };
            KBox::into_raw(h).cast()
        }
        Err(e) => e.to_ptr(),
    }
}

/// `struct iommufd_ctx *iommufd_ctx_from_file(struct file *file)`
///
/// # Safety
///
/// `file` is a valid file.
#[no_mangle]
unsafe extern "C" fn iommufd_rs_ctx_from_file(file: *mut bindings::file) -> *mut c_void {
    // SAFETY: Per the function's requirements.
    if !unsafe { is_ctx_file(file) } {
        return EBADFD.to_ptr();
    }
    // SAFETY: A valid file, on which this takes a reference for the caller.
    unsafe { bindings::get_file(file) };
    file.cast()
}

/// `struct iommufd_ctx *iommufd_ctx_from_fd(int fd)`
#[no_mangle]
extern "C" fn iommufd_rs_ctx_from_fd(fd: c_int) -> *mut c_void {
    let Ok(fd) = u32::try_from(fd) else {
        return EBADF.to_ptr();
    };
    // SAFETY: `fget` takes a reference on the file of `fd`, if any.
    let file = unsafe { bindings::fget(fd) };
    if file.is_null() {
        return EBADF.to_ptr();
    }
    // SAFETY: `file` is valid: we hold a reference.
    if !unsafe { is_ctx_file(file) } {
        // SAFETY: The reference `fget` took.
        unsafe { bindings::fput(file) };
        return EBADFD.to_ptr();
    }
    // The reference `fget` took is the caller's.
    file.cast()
}

/// `void iommufd_ctx_get(struct iommufd_ctx *ictx)`
///
/// # Safety
///
/// `ictx` is a context the caller holds a reference on.
#[no_mangle]
unsafe extern "C" fn iommufd_rs_ctx_get(ictx: *mut c_void) {
    // SAFETY: A context is its file, which the caller holds.
    unsafe { bindings::get_file(ictx.cast()) };
}

/// `void iommufd_ctx_put(struct iommufd_ctx *ictx)`
///
/// # Safety
///
/// `ictx` is a context the caller holds a reference on, given back here.
#[no_mangle]
unsafe extern "C" fn iommufd_rs_ctx_put(ictx: *mut c_void) {
    // SAFETY: Per the function's requirements.
    unsafe { bindings::fput(ictx.cast()) };
}

/// `bool iommufd_ctx_has_group(struct iommufd_ctx *ictx, struct iommu_group *group)`
///
/// # Safety
///
/// `ictx` is NULL or a context the caller holds a reference on.
#[no_mangle]
unsafe extern "C" fn iommufd_rs_ctx_has_group(ictx: *mut c_void, group: *mut c_void) -> bool {
    if ictx.is_null() || group.is_null() {
        return false;
    }
    // SAFETY: Per the function's requirements.
    let ctx = unsafe { ctx_of(ictx.cast()) };
    Api::ctx_has_group(&ctx, group as usize)
}

/// `struct iommufd_device *iommufd_device_bind(struct iommufd_ctx *ictx,
/// struct device *dev, u32 *id)`
///
/// # Safety
///
/// `ictx` is a context the caller holds a reference on, `dev` a valid
/// device, `id` valid for a write.
#[no_mangle]
unsafe extern "C" fn iommufd_rs_device_bind(
    ictx: *mut c_void,
    dev: *mut bindings::device,
    id: *mut u32,
) -> *mut c_void {
    let file_ptr: *mut bindings::file = ictx.cast();
    // SAFETY: Per the function's requirements.
    let (ctx, file, dev) = unsafe {
        (
            ctx_of(file_ptr),
            File::from_raw_file(file_ptr),
            kernel::device::Device::from_raw(dev),
        )
    };
    // SAFETY: Per the function's requirements.
    unsafe { into_handle(Api::device_bind(ctx, file, dev), file, id) }
}

/// The device of a `struct iommufd_device *`.
///
/// # Safety
///
/// `idev` came from [`iommufd_device_bind`] and is not unbound during `'a`.
unsafe fn device<'a>(idev: *mut c_void) -> &'a CHandle<<Api as CApi>::Device> {
    // SAFETY: Per the function's requirements.
    unsafe { &*idev.cast::<CHandle<<Api as CApi>::Device>>() }
}

/// `void iommufd_device_unbind(struct iommufd_device *idev)`
///
/// # Safety
///
/// `idev` came from [`iommufd_device_bind`]; unbound once.
#[no_mangle]
unsafe extern "C" fn iommufd_rs_device_unbind(idev: *mut c_void) {
    // SAFETY: Per the function's requirements: the box is given back once.
    drop(unsafe { KBox::from_raw(idev.cast::<CHandle<<Api as CApi>::Device>>()) });
}

/// `struct iommufd_ctx *iommufd_device_to_ictx(struct iommufd_device *idev)`
///
/// # Safety
///
/// As [`device`].
#[no_mangle]
unsafe extern "C" fn iommufd_rs_device_to_ictx(idev: *mut c_void) -> *mut c_void {
    // SAFETY: Per the function's requirements.
    unsafe { device(idev) }.file.as_ptr().cast()
}

/// `u32 iommufd_device_to_id(struct iommufd_device *idev)`
///
/// # Safety
///
/// As [`device`].
#[no_mangle]
unsafe extern "C" fn iommufd_rs_device_to_id(idev: *mut c_void) -> u32 {
    // SAFETY: Per the function's requirements.
    unsafe { device(idev) }.id
}

/// The PASID argument of the C API: `IOMMU_NO_PASID` (0) is the RID.
fn pasid_arg(pasid: u32) -> Option<u32> {
    (pasid != 0).then_some(pasid)
}

/// `int iommufd_device_attach(struct iommufd_device *idev, ioasid_t pasid,
/// u32 *pt_id)`
///
/// # Safety
///
/// As [`device`]; `pt_id` valid for a read and a write.
#[no_mangle]
unsafe extern "C" fn iommufd_rs_device_attach(
    idev: *mut c_void,
    pasid: u32,
    pt_id: *mut u32,
) -> c_int {
    // SAFETY: Per the function's requirements.
    unsafe { device_attach(idev, pasid, pt_id, false) }
}

/// `int iommufd_device_replace(struct iommufd_device *idev, ioasid_t pasid,
/// u32 *pt_id)`
///
/// # Safety
///
/// As [`iommufd_device_attach`].
#[no_mangle]
unsafe extern "C" fn iommufd_rs_device_replace(
    idev: *mut c_void,
    pasid: u32,
    pt_id: *mut u32,
) -> c_int {
    // SAFETY: Per the function's requirements.
    unsafe { device_attach(idev, pasid, pt_id, true) }
}

/// Attach or replace for the C API.
///
/// # Safety
///
/// As [`iommufd_device_attach`].
unsafe fn device_attach(idev: *mut c_void, pasid: u32, pt_id: *mut u32, replace: bool) -> c_int {
    // SAFETY: Per the function's requirements.
    let (d, id) = unsafe { (device(idev), *pt_id) };
    match Api::device_attach(&d.obj, pasid_arg(pasid), id, replace) {
        Ok(used) => {
            // SAFETY: Per the function's requirements.
            unsafe { *pt_id = used };
            0
        }
        Err(e) => e.to_errno(),
    }
}

/// `void iommufd_device_detach(struct iommufd_device *idev, ioasid_t pasid)`
///
/// # Safety
///
/// As [`device`].
#[no_mangle]
unsafe extern "C" fn iommufd_rs_device_detach(idev: *mut c_void, pasid: u32) {
    // SAFETY: Per the function's requirements.
    Api::device_detach(&unsafe { device(idev) }.obj, pasid_arg(pasid));
}

/// `struct iommufd_access_ops` (include/linux/iommufd.h): a bit field
/// `needs_pin_pages : 1` in its first byte, then the callback.
#[repr(C)]
struct RawAccessOps {
    flags: u8,
    unmap: Option<unsafe extern "C" fn(*mut c_void, c_ulong, c_ulong)>,
}

/// `struct iommufd_access *iommufd_access_create(struct iommufd_ctx *ictx,
/// const struct iommufd_access_ops *ops, void *data, u32 *id)`
///
/// # Safety
///
/// `ictx` is a context the caller holds a reference on; `ops` valid, and
/// it and `data` kept by the caller until the access is destroyed; `id`
/// valid for a write.
#[no_mangle]
unsafe extern "C" fn iommufd_rs_access_create(
    ictx: *mut c_void,
    ops: *const RawAccessOps,
    data: *mut c_void,
    id: *mut u32,
) -> *mut c_void {
    let file_ptr: *mut bindings::file = ictx.cast();
    // SAFETY: Per the function's requirements.
    let (ctx, file, raw) = unsafe { (ctx_of(file_ptr), File::from_raw_file(file_ptr), &*ops) };
    let ops = CAccessOps {
        needs_pin_pages: raw.flags & 1 != 0,
        unmap: raw.unmap,
        data,
    };
    // SAFETY: Per the function's requirements.
    unsafe { into_handle(Api::access_create(ctx, file, ops), file, id) }
}

/// The access of a `struct iommufd_access *`.
///
/// # Safety
///
/// `access` came from [`iommufd_access_create`] and is not destroyed
/// during `'a`.
unsafe fn access<'a>(access: *mut c_void) -> &'a CHandle<<Api as CApi>::Access> {
    // SAFETY: Per the function's requirements.
    unsafe { &*access.cast::<CHandle<<Api as CApi>::Access>>() }
}

/// `void iommufd_access_destroy(struct iommufd_access *access)`
///
/// # Safety
///
/// `access` came from [`iommufd_access_create`]; destroyed once.
#[no_mangle]
unsafe extern "C" fn iommufd_rs_access_destroy(access: *mut c_void) {
    // SAFETY: Per the function's requirements: the box is given back once.
    drop(unsafe { KBox::from_raw(access.cast::<CHandle<<Api as CApi>::Access>>()) });
}

/// `int iommufd_access_attach(struct iommufd_access *access, u32 ioas_id)`
///
/// # Safety
///
/// As [`access`].
#[no_mangle]
unsafe extern "C" fn iommufd_rs_access_attach(access_: *mut c_void, ioas_id: u32) -> c_int {
    // SAFETY: Per the function's requirements.
    let a = unsafe { access(access_) };
    to_errno(Api::access_attach(&a.obj, ioas_id, false))
}

/// `int iommufd_access_replace(struct iommufd_access *access, u32 ioas_id)`
///
/// # Safety
///
/// As [`access`].
#[no_mangle]
unsafe extern "C" fn iommufd_rs_access_replace(access_: *mut c_void, ioas_id: u32) -> c_int {
    // SAFETY: Per the function's requirements.
    let a = unsafe { access(access_) };
    to_errno(Api::access_attach(&a.obj, ioas_id, true))
}

/// `void iommufd_access_detach(struct iommufd_access *access)`
///
/// # Safety
///
/// As [`access`].
#[no_mangle]
unsafe extern "C" fn iommufd_rs_access_detach(access_: *mut c_void) {
    // SAFETY: Per the function's requirements.
    Api::access_detach(&unsafe { access(access_) }.obj);
}

/// `IOMMUFD_ACCESS_RW_WRITE`
const ACCESS_RW_WRITE: u32 = 1 << 0;

/// `int iommufd_access_pin_pages(struct iommufd_access *access,
/// unsigned long iova, unsigned long length, struct page **out_pages,
/// unsigned int flags)`
///
/// # Safety
///
/// As [`access`]; `out_pages` valid for writes of one pointer per page of
/// `[iova, iova + length)`.
#[no_mangle]
unsafe extern "C" fn iommufd_rs_access_pin_pages(
    access_: *mut c_void,
    iova: c_ulong,
    length: c_ulong,
    out_pages: *mut *mut bindings::page,
    flags: u32,
) -> c_int {
    // SAFETY: Per the function's requirements.
    let a = unsafe { access(access_) };
    // The access checks the range (EINVAL for an empty one, EOVERFLOW for
    // one that wraps, as upstream): past it, `iova + length - 1` fits.
    let mut out = KVec::new();
    if let Err(e) = Api::access_pin(&a.obj, iova, length, flags & ACCESS_RW_WRITE != 0, &mut out) {
        return e.to_errno();
    }
    let page = bindings::PAGE_SIZE as u64;
    let npages = ((iova + (length - 1)) / page - iova / page + 1) as usize;
    if out.len() != npages {
        kernel::warn_on!(true);
        Api::access_unpin(&a.obj, iova, length);
        return EINVAL.to_errno();
    }
    for (i, p) in out.iter().enumerate() {
        // SAFETY: `i < npages`, which the caller's array holds.
        unsafe { *out_pages.add(i) = *p };
    }
    0
}

/// `void iommufd_access_unpin_pages(struct iommufd_access *access,
/// unsigned long iova, unsigned long length)`
///
/// # Safety
///
/// As [`access`].
#[no_mangle]
unsafe extern "C" fn iommufd_rs_access_unpin_pages(
    access_: *mut c_void,
    iova: c_ulong,
    length: c_ulong,
) {
    // SAFETY: Per the function's requirements.
    Api::access_unpin(&unsafe { access(access_) }.obj, iova, length);
}

/// `int iommufd_access_rw(struct iommufd_access *access, unsigned long iova,
/// void *data, size_t len, unsigned int flags)`
///
/// # Safety
///
/// As [`access`]; `data` valid for reads and writes of `len` bytes.
#[no_mangle]
unsafe extern "C" fn iommufd_rs_access_rw(
    access_: *mut c_void,
    iova: c_ulong,
    data: *mut c_void,
    len: usize,
    flags: u32,
) -> c_int {
    // SAFETY: Per the function's requirements.
    let a = unsafe { access(access_) };
    if len == 0 || data.is_null() {
        return EINVAL.to_errno();
    }
    // SAFETY: Per the function's requirements, a kernel buffer of `len`
    // bytes the caller does not use during the call.
    let buf = unsafe { core::slice::from_raw_parts_mut(data.cast::<u8>(), len) };
    to_errno(Api::access_rw(&a.obj, iova, buf, flags))
}

/// `int iommufd_vfio_compat_ioas_get_id(struct iommufd_ctx *ictx, u32 *out_ioas_id)`
///
/// # Safety
///
/// `ictx` is a context the caller holds a reference on; `out_ioas_id`
/// valid for a write.
#[no_mangle]
unsafe extern "C" fn iommufd_rs_vfio_compat_ioas_get_id(
    ictx: *mut c_void,
    out_ioas_id: *mut u32,
) -> c_int {
    // SAFETY: Per the function's requirements.
    let ctx = unsafe { ctx_of(ictx.cast()) };
    match Api::compat_ioas_get_id(&ctx) {
        Ok(id) => {
            // SAFETY: Per the function's requirements.
            unsafe { *out_ioas_id = id };
            0
        }
        Err(e) => e.to_errno(),
    }
}

/// `int iommufd_vfio_compat_ioas_create(struct iommufd_ctx *ictx)`
///
/// # Safety
///
/// `ictx` is a context the caller holds a reference on.
#[no_mangle]
unsafe extern "C" fn iommufd_rs_vfio_compat_ioas_create(ictx: *mut c_void) -> c_int {
    // SAFETY: Per the function's requirements.
    let ctx = unsafe { ctx_of(ictx.cast()) };
    to_errno(Api::compat_ioas_create(&ctx))
}

/// `int iommufd_vfio_compat_set_no_iommu(struct iommufd_ctx *ictx)`
///
/// # Safety
///
/// `ictx` is a context the caller holds a reference on.
#[no_mangle]
unsafe extern "C" fn iommufd_rs_vfio_compat_set_no_iommu(ictx: *mut c_void) -> c_int {
    // SAFETY: Per the function's requirements.
    let ctx = unsafe { ctx_of(ictx.cast()) };
    to_errno(Api::compat_set_no_iommu(&ctx))
}

/// 0 or the negative errno.
fn to_errno(res: Result) -> c_int {
    match res {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}
