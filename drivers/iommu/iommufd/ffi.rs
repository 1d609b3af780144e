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
use core::ffi::c_void;
use kernel::bindings;
use kernel::error::from_err_ptr;
use kernel::ffi::c_char;
use kernel::fs::file::{File, LocalFile};
use kernel::prelude::*;
use kernel::str::CStr;
use kernel::sync::aref::ARef;
use kernel::sync::poll::PollTable;
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

/// A uAPI structure that can be copied from and to user memory as raw bytes.
///
/// # Safety
///
/// The implementor is a `#[repr(C)]` structure (or union) made only of
/// integers and arrays of integers, with no implicit padding: every bit
/// pattern is a valid value, and its bytes never carry uninitialised memory.
/// The iommufd uAPI spells out all of its padding as `__reserved` fields,
/// which is what makes the implementations below sound.
pub(crate) unsafe trait Pod: Sized + 'static {
    /// The all-zero value.
    fn zeroed() -> Self {
        // SAFETY: `Self: Pod`, so the all-zero bit pattern is a valid value.
        // (Not `Default`: bindgen's `Default` for structures with unions is
        // an out-of-line function of the uapi crate that modules cannot call.)
        unsafe { core::mem::zeroed() }
    }

    /// The value as bytes.
    fn as_bytes(&self) -> &[u8] {
        // SAFETY: `Self: Pod`, so all `size_of::<Self>()` bytes behind `self`
        // are initialised integer bytes; the slice borrows `self`.
        unsafe {
            core::slice::from_raw_parts(
                core::ptr::from_ref(self).cast::<u8>(),
                core::mem::size_of::<Self>(),
            )
        }
    }

    /// The value as mutable bytes.
    fn as_bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_bytes`, and any byte pattern written through the
        // slice leaves a valid `Self` behind because `Self: Pod`.
        unsafe {
            core::slice::from_raw_parts_mut(
                core::ptr::from_mut(self).cast::<u8>(),
                core::mem::size_of::<Self>(),
            )
        }
    }
}

/// Marks uAPI structures as plain bytes.
macro_rules! plain_bytes {
    ($($t:ty),* $(,)?) => {
        // SAFETY: Each is a bindgen-generated iommufd or VFIO uAPI structure
        // (or the selftest command, laid out as C's in `uapi.rs`) made of
        // `__u8`/`__u16`/`__u32`/`__s32`/`__aligned_u64` fields and arrays
        // of them, with explicit reserved fields in place of padding (see
        // the trait).
        $(unsafe impl Pod for $t {})*
    };
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

/// The uAPI structures the module copies, as plain bytes.
mod uapi_bytes {
    use super::Pod;
    use kernel::uapi::*;

    plain_bytes!(
        iommu_destroy,
        iommu_fault_alloc,
        iommu_hw_info,
        iommu_hw_queue_alloc,
        iommu_hwpt_alloc,
        iommu_hwpt_get_dirty_bitmap,
        iommu_hwpt_invalidate,
        iommu_hwpt_page_response,
        iommu_hwpt_pgfault,
        iommu_hwpt_set_dirty_tracking,
        iommu_ioas_alloc,
        iommu_ioas_allow_iovas,
        iommu_ioas_change_process,
        iommu_ioas_copy,
        iommu_ioas_iova_ranges,
        iommu_ioas_map,
        iommu_ioas_map_file,
        iommu_ioas_noiommu_get_pa,
        iommu_ioas_unmap,
        iommu_iova_range,
        iommu_option,
        iommu_vdevice_alloc,
        iommu_veventq_alloc,
        iommu_vfio_ioas,
        iommu_viommu_alloc,
        vfio_info_cap_header,
        vfio_iommu_type1_dma_map,
        vfio_iommu_type1_dma_unmap,
        vfio_iommu_type1_info,
        vfio_iommu_type1_info_cap_iova_range,
        vfio_iommu_type1_info_dma_avail,
        vfio_iova_range,
    );
}

#[cfg(CONFIG_IOMMUFD_TEST)]
plain_bytes!(iommu_test_cmd);

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
