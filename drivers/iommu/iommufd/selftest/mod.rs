// SPDX-License-Identifier: GPL-2.0

//! `IOMMU_TEST_CMD`: the hooks `tools/testing/selftests/iommu` drives, built
//! with `CONFIG_IOMMUFD_TEST` as upstream.  The operation numbers and
//! argument layouts are those of `drivers/iommu/iommufd/iommufd_test.h`.

use core::mem::size_of;
use kernel::bindings;
use kernel::dma_buf::{self, DmaBuf};
use kernel::fs::file::{flags::O_CLOEXEC, FileDescriptorReservation, LocalFile};
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
use kernel::uaccess::{UserPtr, UserSlice};

use crate::access::{self, Access, AccessOps};
use crate::ctx::Ctx;
use crate::device::Device;
use crate::ffi::{self, FileOps};
use crate::hw_pagetable::Hwpt;
use crate::interval::last_of;
use crate::io_pagetable::Reserver;
use crate::ioas::Ioas;
use crate::object::{Held, Object};
use crate::uapi::iommu_test_cmd;
use crate::ucmd::Ucmd;

mod args;
mod dmabuf;
pub(crate) mod mock;
mod mockdev;
mod staccess;

use args::*;
pub(crate) use dmabuf::dmabuf_phys;
use dmabuf::{dmabuf_get, dmabuf_revoke};
use mock::MockIommu;
use mockdev::{mock_domain, MockDev};
use staccess::{access_pages, access_replace_ioas, access_rw, create_access, destroy_access_pages};

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
/// `IOMMU_TEST_OP_TRIGGER_VEVENT`
const OP_TRIGGER_VEVENT: u32 = 17;
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

/// A batch entry (a PFN and a count) must fit, whatever the limit.
const MIN_TEMP_MEMORY_LIMIT: u32 = (size_of::<usize>() + size_of::<u32>()) as u32;
/// One past the last operation of `enum iommufd_test_op` in 7.3.
const OP_END: usize = 24;

/// Whether the log has said that an operation is not implemented yet.
static WARNED: [Atomic<bool>; OP_END] = [const { Atomic::new(false) }; OP_END];

/// `IOMMU_TEST_CMD`
pub(crate) fn test_ioctl(ucmd: &mut Ucmd<'_, iommu_test_cmd>) -> Result {
    let cmd = &ucmd.cmd;
    match cmd.op {
        OP_ADD_RESERVED => {
            let a = AddReserved::read(&cmd.u);
            add_reserved(ucmd.ctx, cmd.id, a.start, a.length)
        }
        OP_MOCK_DOMAIN => mock_domain(ucmd, 0),
        OP_MOCK_DOMAIN_FLAGS => mock_domain(ucmd, MockDomain::read(&cmd.u).dev_flags),
        OP_MOCK_DOMAIN_REPLACE => {
            let mdev = ucmd.ctx.objects.get::<MockDev>(cmd.id)?;
            let pt_id = mdev
                .idev()?
                .replace(MockDomainReplace::read(&cmd.u).pt_id)?;
            drop(mdev);
            MockDomainReplace { pt_id }.write(&mut ucmd.cmd.u);
            ucmd.respond()
        }
        OP_PASID_ATTACH | OP_PASID_REPLACE => {
            let mdev = ucmd.ctx.objects.get::<MockDev>(cmd.id)?;
            let idev = mdev.idev()?;
            let mut a = Pasid::read(&cmd.u);
            let pasid = pasid_arg(a.pasid);
            let pt_id = a.pt_id;
            let id = if cmd.op == OP_PASID_ATTACH {
                idev.attach_pasid(pasid, pt_id)?
            } else {
                idev.replace_pasid(pasid, pt_id)?
            };
            a.pt_id = id;
            a.write(&mut ucmd.cmd.u);
            let res = ucmd.respond();
            if res.is_err() && ucmd.cmd.op == OP_PASID_ATTACH {
                idev.detach_pasid(pasid);
            }
            res
        }
        OP_PASID_DETACH => {
            let mdev = ucmd.ctx.objects.get::<MockDev>(cmd.id)?;
            mdev.idev()?
                .detach_pasid(pasid_arg(Pasid::read(&cmd.u).pasid));
            Ok(())
        }
        OP_PASID_CHECK_HWPT => {
            let objects = &ucmd.ctx.objects;
            let mdev = objects.get::<MockDev>(cmd.id)?;
            let a = Pasid::read(&cmd.u);
            let attached = mdev.idev()?.attached_domain(pasid_arg(a.pasid));
            let hwpt_id = a.pt_id;
            if hwpt_id == 0 {
                return if attached.is_some() {
                    Err(EINVAL)
                } else {
                    Ok(())
                };
            }
            let domain = objects.get::<Hwpt>(hwpt_id)?.domain.clone();
            match attached {
                Some(d) if Arc::ptr_eq(&d, &domain) => Ok(()),
                _ => Err(EINVAL),
            }
        }
        OP_DMABUF_GET => {
            let a = DmabufGet::read(&cmd.u);
            let fd = dmabuf_get(a.length, a.open_flags)?;
            ucmd.ret = fd as isize;
            Ok(())
        }
        OP_DMABUF_REVOKE => {
            let a = DmabufRevoke::read(&cmd.u);
            dmabuf_revoke(a.dmabuf_fd, a.revoked != 0)
        }
        OP_DIRTY => {
            let mut a = Dirty::read(&cmd.u);
            a.out_nr_dirty = mock_dirty(ucmd.ctx, cmd.id, a.iova, a.length, a.page_size, a.uptr)?;
            a.write(&mut ucmd.cmd.u);
            ucmd.respond()
        }
        OP_MD_CHECK_IOTLB => {
            let hwpt = ucmd.ctx.objects.get::<Hwpt>(cmd.id)?;
            // A nested HWPT's: another kind is not found, as upstream.
            if hwpt.paging().is_some() {
                return Err(ENOENT);
            }
            let reg = mock::registration()?;
            let nested = reg.nested_data_of(&hwpt.domain).ok_or(EINVAL)?;
            let a = CheckEntry::read(&cmd.u);
            let entry = nested.iotlb.get(a.index as usize).ok_or(EINVAL)?;
            if entry.load(Relaxed) != a.value {
                return Err(EINVAL);
            }
            Ok(())
        }
        OP_TRIGGER_IOPF => trigger_iopf(ucmd.ctx, cmd),
        OP_TRIGGER_VEVENT => {
            let idev = ucmd
                .ctx
                .objects
                .get::<Device>(TriggerVevent::read(&cmd.u).dev_id)?;
            mock::trigger_vevent(idev.dev())
        }
        OP_DEV_CHECK_CACHE => {
            let idev = ucmd.ctx.objects.get::<Device>(cmd.id)?;
            let data = Registration::<MockIommu>::data_of(idev.dev()).ok_or(EINVAL)?;
            let a = CheckEntry::read(&cmd.u);
            let entry = data.cache.get(a.index as usize).ok_or(EINVAL)?;
            if entry.load(Relaxed) != a.value {
                return Err(EINVAL);
            }
            Ok(())
        }
        OP_MD_CHECK_MAP => {
            let a = CheckMap::read(&cmd.u);
            md_check_map(ucmd.ctx, cmd.id, a.iova, a.length, a.uptr)
        }
        OP_MD_CHECK_REFS => {
            let a = CheckRefs::read(&cmd.u);
            md_check_refs(a.uptr, a.length, a.refs)
        }
        OP_CREATE_ACCESS => create_access(ucmd, cmd.id, CreateAccess::read(&cmd.u).flags),
        OP_DESTROY_ACCESS_PAGES => {
            destroy_access_pages(cmd.id, DestroyAccessPages::read(&cmd.u).access_pages_id)
        }
        OP_ACCESS_PAGES => access_pages(ucmd),
        OP_ACCESS_RW => access_rw(cmd),
        OP_ACCESS_REPLACE_IOAS => {
            access_replace_ioas(cmd.id, AccessReplaceIoas::read(&cmd.u).ioas_id)
        }
        OP_SET_TEMP_MEMORY_LIMIT => {
            let limit = MemoryLimit::read(&cmd.u).limit;
            if limit < MIN_TEMP_MEMORY_LIMIT {
                return Err(EINVAL);
            }
            crate::pages::BATCH_MEMORY_LIMIT.store(limit, Relaxed);
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
    ioas.iopt.reserve(start, last, Reserver::Permanent)
}

/// Checks that every small page of the user buffer `[uptr, uptr + length)`
/// is pinned exactly `refs` times: `EIO` if one is not.  Compound pages are
/// not checked (their pins are counted on the folio).
fn md_check_refs(uptr: u64, length: u64, refs: u32) -> Result {
    let page = PAGE_SIZE as u64;
    if length % page != 0 || uptr % page != 0 || uptr.checked_add(length).is_none() {
        return Err(EINVAL);
    }
    let mut addr = uptr;
    while addr < uptr + length {
        let p = UserPageRef::get_fast(usize::try_from(addr).map_err(|_| EFAULT)?, false)?;
        // As upstream: unsigned, and only per page (a zero length checks
        // nothing, whatever `refs`).
        if !p.is_compound() && (p.ref_count() as u32) / (PIN_COUNTING_BIAS as u32) != refs {
            return Err(EIO);
        }
        addr += page;
    }
    Ok(())
}

/// A paging HWPT, looked up for a test operation: `ENOENT` for any other
/// object.
fn paging_hwpt(ctx: &Ctx, id: u32) -> Result<crate::object::ObjRef<'_, Hwpt>> {
    let hwpt = ctx.objects.get::<Hwpt>(id)?;
    if hwpt.paging().is_none() {
        return Err(ENOENT);
    }
    Ok(hwpt)
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
    let hwpt = paging_hwpt(ctx, hwpt_id)?;
    let reg = mock::registration()?;
    let mock = reg.paging_data_of(&hwpt.domain).ok_or(EINVAL)?;
    let table = reg.paging_table_of(&hwpt.domain).ok_or(EINVAL)?;
    if !mock.tracking() || !table.walker().can_set_dirty() {
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
        let walker = table.walker();
        for &b in &chunk[..n] {
            for k in 0..8 {
                if bit + k < max && b & (1 << k) != 0 {
                    // `(bit + k) * page_size < length`, but `iova + length`
                    // may pass the top: upstream's IOVA wraps there.
                    // As upstream, where nothing is mapped the bit counts
                    // all the same.
                    let _ = walker.set_dirty(iova.wrapping_add((bit + k) * page_size));
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
    let a = TriggerIopf::read(&cmd.u);
    let idev = ctx.objects.get::<Device>(a.dev_id)?;
    let pasid = a.pasid;
    let mut flags = PageRequestFlags::from(PageRequestFlag::LastPage);
    if pasid != 0 {
        // IOMMU_NO_PASID is 0.
        flags |= PageRequestFlag::PasidValid;
    }
    let req = PageRequest {
        flags,
        pasid,
        grpid: a.grpid,
        perm: FaultPerm::from_bits_retain(a.perm),
        addr: a.addr,
    };
    let reg = mock::registration()?;
    if Registration::<MockIommu>::data_of(idev.dev()).is_none() {
        return Err(EINVAL);
    }
    // As upstream, whether anyone takes the fault is not the trigger's
    // concern: unhandled, it is answered as failed.
    let _ = reg.report_fault(idev.dev(), &req);
    Ok(())
}

/// `IOMMU_TEST_OP_MD_CHECK_MAP`: checks that the mock domain of HWPT
/// `hwpt_id` translates `[iova, iova + length)` to the user buffer `uptr`,
/// one mock page at a time: `EINVAL` where it does not.
fn md_check_map(ctx: &Ctx, hwpt_id: u32, iova: u64, length: u64, uptr: u64) -> Result {
    let hwpt = paging_hwpt(ctx, hwpt_id)?;
    let reg = mock::registration()?;
    let table = reg.paging_table_of(&hwpt.domain).ok_or(EINVAL)?;
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
        if table.walker().iova_to_phys(iova.wrapping_add(off)) != want {
            return Err(EINVAL);
        }
        off += psize;
    }
    Ok(())
}
