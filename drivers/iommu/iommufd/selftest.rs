// SPDX-License-Identifier: GPL-2.0

//! `IOMMU_TEST_CMD`: the hooks `tools/testing/selftests/iommu` drives, built
//! with `CONFIG_IOMMUFD_TEST` as upstream.  The operation numbers and
//! argument layouts are those of `drivers/iommu/iommufd/iommufd_test.h`.

use core::ffi::c_void;
use core::mem::size_of;
use kernel::bindings;
use kernel::dma_buf::{self, DmaBuf};
use kernel::error::from_err_ptr;
use kernel::fs::file::{flags::O_CLOEXEC, File, FileDescriptorReservation};
use kernel::iommu::driver::{BusDevice, Registration};
use kernel::iommu::fault::{FaultPerm, PageRequest, PageRequestFlag, PageRequestFlags};
use kernel::mm::gup::{UserPageRef, PIN_COUNTING_BIAS};
use kernel::new_mutex;
use kernel::page::PAGE_SIZE;
use kernel::prelude::*;
use kernel::str::{CStr, CString};
use kernel::sync::aref::ARef;
use kernel::sync::atomic::{Atomic, Relaxed};
use kernel::sync::{Arc, Mutex};
use kernel::types::ForeignOwnable;
use kernel::uaccess::{UserPtr, UserSlice};

use crate::access::{self, Access, AccessOps};
use crate::ctx::Ctx;
use crate::device::{Device, HwptNested, HwptPaging};
use crate::interval::last_of;
use crate::io_pagetable::Reserver;
use crate::ioas::Ioas;
use crate::mock;
use crate::object::Object;
use crate::uapi::iommu_test_cmd;
use crate::ucmd::Ucmd;

/// `IOMMU_TEST_OP_ADD_RESERVED`
const OP_ADD_RESERVED: u32 = 1;
/// `IOMMU_TEST_OP_MOCK_DOMAIN`
const OP_MOCK_DOMAIN: u32 = 2;
/// `IOMMU_TEST_OP_MD_CHECK_MAP`
const OP_MD_CHECK_MAP: u32 = 3;
/// `IOMMU_TEST_OP_MD_CHECK_REFS`
const OP_MD_CHECK_REFS: u32 = 4;
/// `IOMMU_TEST_OP_CREATE_ACCESS`
const OP_CREATE_ACCESS: u32 = 5;
/// `IOMMU_TEST_OP_DESTROY_ACCESS_PAGES`
const OP_DESTROY_ACCESS_PAGES: u32 = 6;
/// `IOMMU_TEST_OP_ACCESS_PAGES`
const OP_ACCESS_PAGES: u32 = 7;
/// `IOMMU_TEST_OP_ACCESS_RW`
const OP_ACCESS_RW: u32 = 8;
/// `IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT`
const OP_SET_TEMP_MEMORY_LIMIT: u32 = 9;
/// `IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE`
const OP_MOCK_DOMAIN_REPLACE: u32 = 10;
/// `IOMMU_TEST_OP_ACCESS_REPLACE_IOAS`
const OP_ACCESS_REPLACE_IOAS: u32 = 11;
/// `IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS`
const OP_MOCK_DOMAIN_FLAGS: u32 = 12;
/// `IOMMU_TEST_OP_DIRTY`
const OP_DIRTY: u32 = 13;
/// `IOMMU_TEST_OP_MD_CHECK_IOTLB`
const OP_MD_CHECK_IOTLB: u32 = 14;
/// `IOMMU_TEST_OP_TRIGGER_IOPF`
const OP_TRIGGER_IOPF: u32 = 15;
/// `IOMMU_TEST_OP_DEV_CHECK_CACHE`
const OP_DEV_CHECK_CACHE: u32 = 16;
/// `IOMMU_TEST_OP_PASID_ATTACH`
const OP_PASID_ATTACH: u32 = 18;
/// `IOMMU_TEST_OP_PASID_REPLACE`
const OP_PASID_REPLACE: u32 = 19;
/// `IOMMU_TEST_OP_PASID_DETACH`
const OP_PASID_DETACH: u32 = 20;
/// `IOMMU_TEST_OP_PASID_CHECK_HWPT`
const OP_PASID_CHECK_HWPT: u32 = 21;
/// `IOMMU_TEST_OP_DMABUF_GET`
const OP_DMABUF_GET: u32 = 22;
/// `IOMMU_TEST_OP_DMABUF_REVOKE`
const OP_DMABUF_REVOKE: u32 = 23;

/// `MOCK_FLAGS_DEVICE_NO_DIRTY`
const MOCK_FLAGS_DEVICE_NO_DIRTY: u32 = 1 << 0;
/// `MOCK_FLAGS_DEVICE_PASID`
const MOCK_FLAGS_DEVICE_PASID: u32 = 1 << 2;

/// `MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES`
const MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES: u32 = 1 << 0;
/// `MOCK_FLAGS_ACCESS_WRITE`
const MOCK_FLAGS_ACCESS_WRITE: u32 = 1 << 0;
/// `MOCK_FLAGS_ACCESS_SYZ`: IOVAs in syzkaller's encoding (not supported).
const MOCK_FLAGS_ACCESS_SYZ: u32 = 1 << 16;
/// `MOCK_ACCESS_RW_WRITE`
const MOCK_ACCESS_RW_WRITE: u32 = 1 << 0;
/// `MOCK_ACCESS_RW_SLOW_PATH`
const MOCK_ACCESS_RW_SLOW_PATH: u32 = 1 << 2;
const _: () = assert!(MOCK_ACCESS_RW_WRITE == access::RW_WRITE);
const _: () = assert!(MOCK_ACCESS_RW_SLOW_PATH == access::RW_SLOW_PATH);
/// The largest buffer the access ops take, as upstream.
const MAX_ACCESS_LENGTH: u64 = 16 * 1024 * 1024;

/// The most temporary memory, in bytes, one batch of page pinning may use.
/// A test knob: shrinking it makes the selftests exercise many small batches.
pub(crate) static TEMP_MEMORY_LIMIT: Atomic<u32> = Atomic::new(65536);
/// A batch entry (a PFN and a count) must fit, whatever the limit.
const MIN_TEMP_MEMORY_LIMIT: u32 = (size_of::<usize>() + size_of::<u32>()) as u32;
/// One past the last operation of `enum iommufd_test_op` in 7.3.
const OP_END: usize = 24;

/// Whether the log has said that an operation is not implemented yet.
static WARNED: [Atomic<bool>; OP_END] = [const { Atomic::new(false) }; OP_END];

/// Reads the `u64` at byte `off` of the command's argument union.
fn arg_u64(cmd: &iommu_test_cmd, off: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&cmd.u[off..off + 8]);
    u64::from_ne_bytes(b)
}

/// Writes the `u32` at byte `off` of the command's argument union.
fn set_u32(cmd: &mut iommu_test_cmd, off: usize, v: u32) {
    cmd.u[off..off + 4].copy_from_slice(&v.to_ne_bytes());
}

/// Reads the `u32` at byte `off` of the command's argument union.
fn arg_u32(cmd: &iommu_test_cmd, off: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&cmd.u[off..off + 4]);
    u32::from_ne_bytes(b)
}

/// `IOMMU_TEST_CMD`
pub(crate) fn test_ioctl(ucmd: &mut Ucmd<'_, iommu_test_cmd>) -> Result {
    let cmd = &ucmd.cmd;
    match cmd.op {
        // add_reserved: { __aligned_u64 start; __aligned_u64 length; }
        OP_ADD_RESERVED => add_reserved(ucmd.ctx, cmd.id, arg_u64(cmd, 0), arg_u64(cmd, 8)),
        // mock_domain: { __u32 out_stdev_id, out_hwpt_id, out_idev_id; }
        OP_MOCK_DOMAIN => mock_domain(ucmd, 0),
        // mock_domain_flags: { __u32 out_stdev_id, out_hwpt_id, out_idev_id,
        //                      dev_flags; }
        OP_MOCK_DOMAIN_FLAGS => mock_domain(ucmd, arg_u32(cmd, 12)),
        // mock_domain_replace: { __u32 pt_id; }
        OP_MOCK_DOMAIN_REPLACE => {
            let mdev = ucmd.ctx.objects.get::<MockDev>(cmd.id)?;
            let id = mdev.idev()?.replace(arg_u32(cmd, 0))?;
            drop(mdev);
            set_u32(&mut ucmd.cmd, 0, id);
            ucmd.respond()
        }
        // pasid_attach, pasid_replace: { __u32 pasid; __u32 pt_id; }
        OP_PASID_ATTACH | OP_PASID_REPLACE => {
            let mdev = ucmd.ctx.objects.get::<MockDev>(cmd.id)?;
            let idev = mdev.idev()?;
            let pasid = pasid_arg(arg_u32(cmd, 0));
            let pt_id = arg_u32(cmd, 4);
            let id = if cmd.op == OP_PASID_ATTACH {
                idev.attach_pasid(pasid, pt_id)?
            } else {
                idev.replace_pasid(pasid, pt_id)?
            };
            set_u32(&mut ucmd.cmd, 4, id);
            let res = ucmd.respond();
            if res.is_err() && ucmd.cmd.op == OP_PASID_ATTACH {
                idev.detach_pasid(pasid);
            }
            res
        }
        // pasid_detach: { __u32 pasid; }
        OP_PASID_DETACH => {
            let mdev = ucmd.ctx.objects.get::<MockDev>(cmd.id)?;
            mdev.idev()?.detach_pasid(pasid_arg(arg_u32(cmd, 0)));
            Ok(())
        }
        // pasid_check: { __u32 pasid; __u32 hwpt_id; }
        OP_PASID_CHECK_HWPT => {
            let objects = &ucmd.ctx.objects;
            let mdev = objects.get::<MockDev>(cmd.id)?;
            let attached = mdev.idev()?.attached_domain(pasid_arg(arg_u32(cmd, 0)));
            let hwpt_id = arg_u32(cmd, 4);
            if hwpt_id == 0 {
                return if attached.is_some() {
                    Err(EINVAL)
                } else {
                    Ok(())
                };
            }
            let domain = match objects.get::<HwptPaging>(hwpt_id) {
                Ok(h) => h.domain.clone(),
                Err(_) => objects.get::<HwptNested>(hwpt_id)?.domain.clone(),
            };
            match attached {
                Some(d) if Arc::ptr_eq(&d, &domain) => Ok(()),
                _ => Err(EINVAL),
            }
        }
        // dmabuf_get: { __u32 length; __u32 open_flags; }; returns the fd.
        OP_DMABUF_GET => {
            let fd = dmabuf_get(arg_u32(cmd, 0), arg_u32(cmd, 4))?;
            ucmd.ret = fd as isize;
            Ok(())
        }
        // dmabuf_revoke: { __s32 dmabuf_fd; __u32 revoked; }
        OP_DMABUF_REVOKE => dmabuf_revoke(arg_u32(cmd, 0) as i32, arg_u32(cmd, 4) != 0),
        // dirty: { __u32 flags; __aligned_u64 iova, length, page_size, uptr,
        //          out_nr_dirty; }
        OP_DIRTY => {
            let n = mock_dirty(
                ucmd.ctx,
                cmd.id,
                arg_u64(cmd, 8),
                arg_u64(cmd, 16),
                arg_u64(cmd, 24),
                arg_u64(cmd, 32),
            )?;
            ucmd.cmd.u[40..48].copy_from_slice(&n.to_ne_bytes());
            ucmd.respond()
        }
        // check_iotlb: { __u32 id; __u32 iotlb; }
        OP_MD_CHECK_IOTLB => {
            let hwpt = ucmd.ctx.objects.get::<HwptNested>(cmd.id)?;
            let nested = mock::registration()?
                .nested_data_of(&hwpt.domain)
                .ok_or(EINVAL)?;
            let entry = nested.iotlb.get(arg_u32(cmd, 0) as usize).ok_or(EINVAL)?;
            if entry.load(Relaxed) != arg_u32(cmd, 4) {
                return Err(EINVAL);
            }
            Ok(())
        }
        // trigger_iopf: { __u32 dev_id, pasid, grpid, perm; __u64 addr; }
        OP_TRIGGER_IOPF => trigger_iopf(ucmd.ctx, cmd),
        // check_dev_cache: { __u32 id; __u32 cache; }
        OP_DEV_CHECK_CACHE => {
            let idev = ucmd.ctx.objects.get::<Device>(cmd.id)?;
            let data = Registration::<mock::MockIommu>::data_of(idev.dev()).ok_or(EINVAL)?;
            let entry = data.cache.get(arg_u32(cmd, 0) as usize).ok_or(EINVAL)?;
            if entry.load(Relaxed) != arg_u32(cmd, 4) {
                return Err(EINVAL);
            }
            Ok(())
        }
        // check_map: { __aligned_u64 iova, length, uptr; }
        OP_MD_CHECK_MAP => md_check_map(
            ucmd.ctx,
            cmd.id,
            arg_u64(cmd, 0),
            arg_u64(cmd, 8),
            arg_u64(cmd, 16),
        ),
        // check_refs: { __aligned_u64 length; __aligned_u64 uptr; __u32 refs; }
        OP_MD_CHECK_REFS => md_check_refs(arg_u64(cmd, 8), arg_u64(cmd, 0), arg_u32(cmd, 16)),
        // create_access: { __u32 out_access_fd; __u32 flags; }
        OP_CREATE_ACCESS => create_access(ucmd, cmd.id, arg_u32(cmd, 4)),
        // destroy_access_pages: { __u32 access_pages_id; }
        OP_DESTROY_ACCESS_PAGES => destroy_access_pages(cmd.id, arg_u32(cmd, 0)),
        // access_pages: { __u32 flags; __u32 out_access_pages_id;
        //                 __aligned_u64 iova, length, uptr; }
        OP_ACCESS_PAGES => access_pages(ucmd),
        // access_rw: { __aligned_u64 iova, length, uptr; __u32 flags; }
        OP_ACCESS_RW => access_rw(cmd),
        // access_replace_ioas: { __u32 ioas_id; }
        OP_ACCESS_REPLACE_IOAS => {
            let st = staccess_get(cmd.id)?;
            Access::replace(&st.access()?, arg_u32(cmd, 0))
        }
        // memory_limit: { __u32 limit; }
        OP_SET_TEMP_MEMORY_LIMIT => {
            let limit = arg_u32(cmd, 0);
            if limit < MIN_TEMP_MEMORY_LIMIT {
                return Err(EINVAL);
            }
            TEMP_MEMORY_LIMIT.store(limit, Relaxed);
            Ok(())
        }
        op if (1..OP_END as u32).contains(&op) => {
            if !WARNED[op as usize].xchg(true, Relaxed) {
                pr_notice!(
                    "IOMMU_TEST_CMD op {op}: not implemented yet, failing with EOPNOTSUPP\n"
                );
            }
            Err(EOPNOTSUPP)
        }
        _ => Err(EOPNOTSUPP),
    }
}

/// Reserves `[start, start + length)` in the IOAS `ioas_id`, as a device's
/// reserved region would.
fn add_reserved(ctx: &Ctx, ioas_id: u32, start: u64, length: u64) -> Result {
    let last = last_of(start, length)?;
    let ioas = ctx.objects.get::<Ioas>(ioas_id)?;
    ioas.iopt.reserve(start, last, Reserver::Test)
}

/// Checks that every small page of the user buffer `[uptr, uptr + length)`
/// is pinned exactly `refs` times: `EIO` if one is not.  Compound pages are
/// not checked (their pins are counted on the folio).
fn md_check_refs(uptr: u64, length: u64, refs: u32) -> Result {
    let page = PAGE_SIZE as u64;
    if length % page != 0 || uptr % page != 0 || uptr.checked_add(length).is_none() {
        return Err(EINVAL);
    }
    let refs = i32::try_from(refs).map_err(|_| EIO)?;
    let mut addr = uptr;
    while addr < uptr + length {
        let p = UserPageRef::get_fast(usize::try_from(addr).map_err(|_| EFAULT)?, false)?;
        if !p.is_compound() && p.ref_count() / PIN_COUNTING_BIAS != refs {
            return Err(EIO);
        }
        addr += page;
    }
    Ok(())
}

extern "C" {
    /// `iommufd_shim.c`: a file owning `data`, released through
    /// [`iommufd_rs_staccess_release`].
    fn iommufd_shim_staccess_file(data: *mut c_void) -> *mut c_void;
    /// `iommufd_shim.c`: a reference on the selftest access file `fd` and
    /// what it owns, or NULL.
    fn iommufd_shim_staccess_fget(fd: c_int, data: *mut *mut c_void) -> *mut c_void;
}

/// A range pinned with `IOMMU_TEST_OP_ACCESS_PAGES`.
struct Item {
    iova: u64,
    length: u64,
    id: u32,
}

struct Items {
    list: KVec<Item>,
    next_id: u32,
}

/// A selftest access: an access owned by a file descriptor, which pins
/// ranges on request and unpins them when told to unmap.
#[pin_data]
pub(crate) struct StAccess {
    /// `MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES`
    pins: bool,
    /// Set once the access is attached and its file installed.
    #[pin]
    access: Mutex<Option<Arc<Object<Access>>>>,
    /// Held across pin and unpin, so that an unmap request waits for a pin
    /// in progress and then finds its item.
    #[pin]
    items: Mutex<Items>,
}

impl StAccess {
    fn access(&self) -> Result<Arc<Object<Access>>> {
        self.access.lock().clone().ok_or(ENOENT)
    }
}

impl AccessOps for StAccess {
    fn needs_pin_pages(&self) -> bool {
        self.pins
    }

    /// Unpins every item that intersects `[iova, iova + length)`.
    fn unmap(&self, iova: u64, length: u64) {
        let Ok(access) = self.access() else {
            return;
        };
        let last = iova.saturating_add(length.saturating_sub(1));
        let mut items = self.items.lock();
        items.list.retain(|it| {
            let it_last = it.iova + (it.length - 1);
            if iova > it_last || last < it.iova {
                return true;
            }
            access.unpin_pages(it.iova, it.length);
            false
        });
    }
}

/// Called by the shim when the last reference to an access file goes.
///
/// # Safety
///
/// `data` is the private data of a file made by `create_access`, passed
/// once, at its release.
#[no_mangle]
unsafe extern "C" fn iommufd_rs_staccess_release(data: *mut c_void) {
    // SAFETY: `data` is what `create_access` gave the file, from
    // `into_foreign`; the file is released once, so it is turned back once.
    let st = unsafe { <Arc<StAccess> as ForeignOwnable>::from_foreign(data) };
    st.unmap(0, u64::MAX);
    let access = st.access.lock().take();
    if let Some(access) = access {
        Access::destroy(access);
    }
}

/// A selftest access looked up by file descriptor, with a reference on its
/// file for as long as the operation runs: the access is not released (and
/// destroyed) under it, as upstream's `iommufd_access_get()` holds it.
struct StAccessRef {
    st: Arc<StAccess>,
    _file: ARef<File>,
}

impl core::ops::Deref for StAccessRef {
    type Target = StAccess;

    fn deref(&self) -> &StAccess {
        &self.st
    }
}

/// The selftest access of the file descriptor `fd`: `EBADFD` if `fd` is
/// not one.
fn staccess_get(fd: u32) -> Result<StAccessRef> {
    let fd = c_int::try_from(fd).map_err(|_| EBADFD)?;
    let mut data = core::ptr::null_mut();
    // SAFETY: `data` is a valid place for the shim to store a pointer.
    let file = unsafe { iommufd_shim_staccess_fget(fd, &mut data) };
    let file = core::ptr::NonNull::new(file.cast::<File>()).ok_or(EBADFD)?;
    // SAFETY: The shim returned a file on which it took a reference, which
    // the `ARef` takes over.
    let file: ARef<File> = unsafe { ARef::from_raw(file) };
    // SAFETY: The file is a selftest access file, which owns `data` (from
    // `into_foreign`) until its release, and our reference keeps it open.
    let st: Arc<StAccess> = unsafe { <Arc<StAccess> as ForeignOwnable>::borrow(data) }.into();
    Ok(StAccessRef { st, _file: file })
}

/// `IOMMU_TEST_OP_CREATE_ACCESS`: an access attached to `ioas_id`, owned by
/// a new file descriptor.
fn create_access(ucmd: &mut Ucmd<'_, iommu_test_cmd>, ioas_id: u32, flags: u32) -> Result {
    if flags & !MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES != 0 {
        return Err(EOPNOTSUPP);
    }
    let st = Arc::pin_init(
        pin_init!(StAccess {
            pins: flags & MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES != 0,
            access <- new_mutex!(None),
            items <- new_mutex!(Items {
                list: KVec::new(),
                next_id: 0,
            }),
        }),
        GFP_KERNEL_ACCOUNT,
    )?;
    let data = st.clone().into_foreign();
    // SAFETY: `data` comes from `into_foreign`; the file owns it from here.
    let raw = from_err_ptr(unsafe { iommufd_shim_staccess_file(data) }.cast::<bindings::file>());
    let raw = raw.inspect_err(|_| {
        // SAFETY: No file took `data`; it is turned back once, here.
        drop(unsafe { <Arc<StAccess> as ForeignOwnable>::from_foreign(data) });
    })?;
    // SAFETY: `raw` is a new file on which we own the one reference; the
    // `ARef` takes a second one and the first is given back.
    let file: ARef<File> = ARef::from(unsafe { File::from_raw_file(raw) });
    // SAFETY: See above.
    unsafe { bindings::fput(raw) };
    // From here on, dropping `file` releases the access file and its data.
    let fd = FileDescriptorReservation::get_unused_fd_flags(O_CLOEXEC)?;
    let access = Access::create(ucmd.handle, st.clone())?;
    let res = Access::attach(&access, ioas_id).and_then(|()| {
        set_u32(&mut ucmd.cmd, 0, fd.reserved_fd());
        ucmd.respond()
    });
    if let Err(e) = res {
        Access::destroy(access);
        return Err(e);
    }
    *st.access.lock() = Some(access);
    fd.fd_install(file);
    Ok(())
}

/// `IOMMU_TEST_OP_ACCESS_PAGES`: pins a range through the access `cmd.id`,
/// checks that the pages are those of the user buffer, and keeps the pin as
/// an item.
fn access_pages(ucmd: &mut Ucmd<'_, iommu_test_cmd>) -> Result {
    let cmd = &ucmd.cmd;
    let (flags, iova) = (arg_u32(cmd, 0), arg_u64(cmd, 8));
    let (length, uptr) = (arg_u64(cmd, 16), arg_u64(cmd, 24));
    if length > MAX_ACCESS_LENGTH {
        return Err(ENOMEM);
    }
    if flags & !(MOCK_FLAGS_ACCESS_WRITE | MOCK_FLAGS_ACCESS_SYZ) != 0 {
        return Err(EOPNOTSUPP);
    }
    if flags & MOCK_FLAGS_ACCESS_SYZ != 0 {
        pr_notice!("IOMMU_TEST_OP_ACCESS_PAGES: syzkaller IOVAs are not supported\n");
        return Err(EOPNOTSUPP);
    }
    let st = staccess_get(cmd.id)?;
    let access = st.access()?;
    if !access.pins() {
        return Err(EOPNOTSUPP);
    }
    let mut items = st.items.lock();
    let mut pages = KVec::new();
    access.pin_pages(
        iova,
        length,
        flags & MOCK_FLAGS_ACCESS_WRITE != 0,
        &mut pages,
    )?;
    let res = (|| -> Result<u32> {
        if uptr != 0 {
            // Upstream's pointer arithmetic, which wraps.
            check_pages(uptr.wrapping_sub(iova % PAGE_SIZE as u64), &pages)?;
        }
        let id = items.next_id;
        items
            .list
            .push(Item { iova, length, id }, GFP_KERNEL_ACCOUNT)?;
        items.next_id = id.wrapping_add(1);
        set_u32(&mut ucmd.cmd, 4, id);
        if let Err(e) = ucmd.respond() {
            items.list.pop();
            return Err(e);
        }
        Ok(id)
    })();
    if res.is_err() {
        access.unpin_pages(iova, length);
    }
    res.map(|_| ())
}

/// Checks that `pages` are the pages of the current process at `uptr`:
/// `EBADE` if one is not.
fn check_pages(uptr: u64, pages: &[*mut bindings::page]) -> Result {
    for (i, &page) in pages.iter().enumerate() {
        // Past the top of the address space nothing can be pinned.
        let addr = uptr
            .checked_add(i as u64 * PAGE_SIZE as u64)
            .ok_or(EFAULT)?;
        let p = UserPageRef::get_fast(usize::try_from(addr).map_err(|_| EFAULT)?, false)?;
        if p.as_ptr() != page {
            return Err(EBADE);
        }
    }
    Ok(())
}

/// `IOMMU_TEST_OP_DESTROY_ACCESS_PAGES`: unpins an item.
fn destroy_access_pages(fd: u32, item_id: u32) -> Result {
    let st = staccess_get(fd)?;
    let access = st.access()?;
    let mut items = st.items.lock();
    let i = items
        .list
        .iter()
        .position(|it| it.id == item_id)
        .ok_or(ENOENT)?;
    let item = items.list.remove(i).map_err(|_| ENOENT)?;
    access.unpin_pages(item.iova, item.length);
    Ok(())
}

/// `IOMMU_TEST_OP_ACCESS_RW`: copies between a user buffer and the IOAS
/// through the access `cmd.id`.
fn access_rw(cmd: &iommu_test_cmd) -> Result {
    let (iova, length) = (arg_u64(cmd, 0), arg_u64(cmd, 8));
    let (uptr, flags) = (arg_u64(cmd, 16), arg_u32(cmd, 24));
    if length > MAX_ACCESS_LENGTH {
        return Err(ENOMEM);
    }
    if flags & !(MOCK_ACCESS_RW_WRITE | MOCK_ACCESS_RW_SLOW_PATH | MOCK_FLAGS_ACCESS_SYZ) != 0 {
        return Err(EOPNOTSUPP);
    }
    if flags & MOCK_FLAGS_ACCESS_SYZ != 0 {
        pr_notice!("IOMMU_TEST_OP_ACCESS_RW: syzkaller IOVAs are not supported\n");
        return Err(EOPNOTSUPP);
    }
    let st = staccess_get(cmd.id)?;
    let access = st.access()?;
    let len = length as usize;
    let mut buf = KVVec::from_elem(0u8, len, GFP_KERNEL_ACCOUNT)?;
    let user = UserSlice::new(UserPtr::from_addr(uptr as usize), len);
    let write = flags & MOCK_ACCESS_RW_WRITE != 0;
    if write {
        user.reader().read_slice(&mut buf)?;
        access.rw(iova, &mut buf, flags)
    } else {
        access.rw(iova, &mut buf, flags)?;
        user.writer().write_slice(&buf)
    }
}

/// Numbers the mock devices (`iommufd_mock<N>`).
static MOCK_DEV_SEQ: Atomic<u32> = Atomic::new(0);

/// A mock device bound to a context (the selftest's "stdev" object):
/// destroying it detaches and unbinds the device and removes it.
pub(crate) struct MockDev {
    ctx: Arc<Ctx>,
    /// With a use of the device object; None only during teardown.
    idev: Option<Arc<Object<Device>>>,
    dev: Option<BusDevice>,
}

impl MockDev {
    fn idev(&self) -> Result<&Arc<Object<Device>>> {
        self.idev.as_ref().ok_or(ENOENT)
    }
}

impl Drop for MockDev {
    fn drop(&mut self) {
        if let Some(idev) = self.idev.take() {
            idev.detach();
            let id = idev.id();
            drop(idev);
            // The device object goes with its binding, before the device
            // (it gives back the device's DMA ownership): once the commands
            // using it are over.
            if self.ctx.objects.remove_owned(id).is_err() {
                pr_err!("mock device: device object {id} still in use\n");
            }
        }
        drop(self.dev.take());
    }
}

/// `IOMMU_TEST_OP_MOCK_DOMAIN(_FLAGS)`: a mock device bound to the context
/// and attached to `cmd.id` (an IOAS or a HWPT).
fn mock_domain(ucmd: &mut Ucmd<'_, iommu_test_cmd>, dev_flags: u32) -> Result {
    if dev_flags & !(MOCK_FLAGS_DEVICE_NO_DIRTY | MOCK_FLAGS_DEVICE_PASID) != 0 {
        return Err(EINVAL);
    }
    // PASID attachment itself (IOMMU_TEST_OP_PASID_*) is not implemented
    // yet.
    let ctx = ucmd.handle.arc();
    let seq = MOCK_DEV_SEQ.fetch_add(1, Relaxed);
    let name = CString::try_from_fmt(fmt!("iommufd_mock{seq}"))?;
    // A PASID-capable device says so in firmware, as upstream's mock does.
    let props: &[(&'static CStr, u32)] = if dev_flags & MOCK_FLAGS_DEVICE_PASID != 0 {
        &[(c"pasid-num-bits", mock::MOCK_PASID_WIDTH)]
    } else {
        &[(c"pasid-num-bits", 0)]
    };
    let bus_dev = mock::registration()?.add_device(
        &name,
        mock::MockDevData::new(dev_flags & MOCK_FLAGS_DEVICE_NO_DIRTY != 0),
        props,
    )?;
    let idev = Device::bind(&ctx, bus_dev.device())?;
    let slot = match ctx.objects.reserve() {
        Ok(slot) => slot,
        Err(e) => {
            drop(MockDev {
                ctx: ctx.clone(),
                idev: Some(idev),
                dev: Some(bus_dev),
            });
            return Err(e);
        }
    };
    let stdev_id = slot.id();
    let idev_id = idev.id();
    let hwpt_id = idev.attach(ucmd.cmd.id);
    let mdev = slot.new_value(MockDev {
        ctx: ctx.clone(),
        idev: Some(idev),
        dev: Some(bus_dev),
    })?;
    let res = hwpt_id.and_then(|hwpt_id| {
        set_u32(&mut ucmd.cmd, 0, stdev_id);
        set_u32(&mut ucmd.cmd, 4, hwpt_id);
        set_u32(&mut ucmd.cmd, 8, idev_id);
        ucmd.respond()
    });
    if let Err(e) = res {
        // Unpublished: dropping tears the device down.
        drop(mdev);
        return Err(e);
    }
    slot.finalize(mdev);
    Ok(())
}

/// A PASID argument: `IOMMU_NO_PASID` (0) is the device's requests without
/// a PASID.
fn pasid_arg(pasid: u32) -> Option<u32> {
    (pasid != 0).then_some(pasid)
}

/// `IOMMU_TEST_OP_DIRTY`: marks dirty, in the mock domain of HWPT
/// `hwpt_id`, the PTEs of `[iova, iova + length)` whose bit is set in the
/// user bitmap at `uptr` (one bit per `page_size`), as DMA writing there
/// would.  Returns the number of bits set.
fn mock_dirty(
    ctx: &Ctx,
    hwpt_id: u32,
    iova: u64,
    length: u64,
    page_size: u64,
    uptr: u64,
) -> Result<u64> {
    if page_size == 0
        || length == 0
        || iova % page_size != 0
        || length % page_size != 0
        || uptr == 0
    {
        return Err(EINVAL);
    }
    let max = length / page_size;
    // As upstream: at most a 16 MiB bitmap.
    if max > 16 * 1024 * 1024 * 8 {
        return Err(EOVERFLOW);
    }
    let hwpt = ctx.objects.get::<HwptPaging>(hwpt_id)?;
    let mock = mock::registration()?
        .paging_data_of(&hwpt.domain)
        .ok_or(EINVAL)?;
    if !mock.tracking() {
        return Err(EINVAL);
    }
    let bytes = max.div_ceil(8) as usize;
    let mut r = UserSlice::new(UserPtr::from_addr(uptr as usize), bytes).reader();
    let mut chunk = [0u8; 256];
    let mut count = 0;
    let mut bit = 0u64;
    while !r.is_empty() {
        let n = r.len().min(chunk.len());
        r.read_slice(&mut chunk[..n])?;
        for &b in &chunk[..n] {
            for k in 0..8 {
                if bit + k < max && b & (1 << k) != 0 {
                    // `(bit + k) * page_size < length`, but `iova + length`
                    // may pass the top: upstream's IOVA wraps there.
                    mock.set_dirty(iova.wrapping_add((bit + k) * page_size));
                    count += 1;
                }
            }
            bit += 8;
        }
    }
    Ok(count)
}

/// `IOMMU_TEST_OP_TRIGGER_IOPF`: the mock device `dev_id` raises a page
/// request, the last of its group, as hardware would.
fn trigger_iopf(ctx: &Ctx, cmd: &iommu_test_cmd) -> Result {
    let idev = ctx.objects.get::<Device>(arg_u32(cmd, 0))?;
    let pasid = arg_u32(cmd, 4);
    let mut flags = PageRequestFlags::from(PageRequestFlag::LastPage);
    if pasid != 0 {
        // IOMMU_NO_PASID is 0.
        flags |= PageRequestFlag::PasidValid;
    }
    let req = PageRequest {
        flags,
        pasid,
        grpid: arg_u32(cmd, 8),
        perm: FaultPerm::from_bits_retain(arg_u32(cmd, 12)),
        addr: arg_u64(cmd, 16),
    };
    let reg = mock::registration()?;
    if Registration::<mock::MockIommu>::data_of(idev.dev()).is_none() {
        return Err(EINVAL);
    }
    // As upstream, whether anyone takes the fault is not the trigger's
    // concern: unhandled, it is answered as failed.
    idev.with_attach_locked(|| {
        // SAFETY: The device's attach lock is held: its group is not
        // attached, replaced or detached meanwhile (only `Device` attaches
        // it, under that lock).
        let _ = unsafe { reg.report_fault(idev.dev(), &req) };
    });
    Ok(())
}

/// `IOMMU_TEST_OP_MD_CHECK_MAP`: checks that the mock domain of HWPT
/// `hwpt_id` translates `[iova, iova + length)` to the user buffer `uptr`,
/// one mock page at a time: `EINVAL` where it does not.
fn md_check_map(ctx: &Ctx, hwpt_id: u32, iova: u64, length: u64, uptr: u64) -> Result {
    let hwpt = ctx.objects.get::<HwptPaging>(hwpt_id)?;
    // The domain's smallest page, as upstream (4 KiB for a huge mock).
    let psize = match hwpt.domain.pgsize_bitmap() {
        0 => return Err(EINVAL),
        sizes => 1u64 << sizes.trailing_zeros(),
    };
    if iova % psize != 0 || length % psize != 0 || uptr % psize != 0 {
        return Err(EINVAL);
    }
    uptr.checked_add(length).ok_or(EINVAL)?;
    let mut off = 0;
    while off < length {
        let addr = uptr + off;
        let page = UserPageRef::get_fast(usize::try_from(addr).map_err(|_| EFAULT)?, false)?;
        let want = page.phys_addr() + addr % PAGE_SIZE as u64;
        // Upstream's IOVA wraps past the top (where nothing is mapped).
        if hwpt.domain.iova_to_phys(iova.wrapping_add(off)) != want {
            return Err(EINVAL);
        }
        off += psize;
    }
    Ok(())
}

/// The name the selftest's dma-bufs are exported under, by which they are
/// recognised (its address).
static DMABUF_NAME: &CStr = c"iommufd_selftest_dmabuf";
/// The largest selftest dma-buf, as upstream.
const DMABUF_MAX: usize = 512 * PAGE_SIZE;

/// A selftest dma-buf: zeroed kernel memory, which the test may revoke.
pub(crate) struct MockDmaBuf {
    mem: KVec<u8>,
    revoked: Atomic<bool>,
}

impl dma_buf::Exporter for MockDmaBuf {}

/// `IOMMU_TEST_OP_DMABUF_GET`: exports a dma-buf of `len` bytes (rounded up
/// to pages) and returns its new file descriptor.
fn dmabuf_get(len: u32, open_flags: u32) -> Result<i32> {
    let len = (len as usize).div_ceil(PAGE_SIZE) * PAGE_SIZE;
    if len == 0 || len > DMABUF_MAX {
        return Err(EINVAL);
    }
    let data = MockDmaBuf {
        mem: KVec::from_elem(0u8, len, GFP_KERNEL)?,
        revoked: Atomic::new(false),
    };
    let module: &'static ThisModule =
        &<crate::IommufdModule as kernel::ModuleMetadata>::THIS_MODULE;
    dma_buf::export(DMABUF_NAME, module, len, open_flags, data)
}

/// Where a selftest dma-buf is, if `buf` is one: `ENODEV` once revoked.
pub(crate) fn dmabuf_phys(buf: &DmaBuf) -> Option<Result<(u64, u64)>> {
    let data = dma_buf::exporter_data::<MockDmaBuf>(buf, DMABUF_NAME)?;
    if data.revoked.load(Relaxed) {
        return Some(Err(ENODEV));
    }
    Some(Ok((
        dma_buf::kmalloc_phys_addr(&data.mem),
        data.mem.len() as u64,
    )))
}

/// `IOMMU_TEST_OP_DMABUF_REVOKE`: revokes (or restores) a selftest dma-buf;
/// its importers are told.
fn dmabuf_revoke(fd: i32, revoked: bool) -> Result {
    let buf = DmaBuf::get(fd)?;
    let data = dma_buf::exporter_data::<MockDmaBuf>(&buf, DMABUF_NAME).ok_or(EOPNOTSUPP)?;
    dma_buf::invalidate(&buf, || data.revoked.store(revoked, Relaxed));
    Ok(())
}
