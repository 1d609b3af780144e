// SPDX-License-Identifier: GPL-2.0

//! `IOMMU_TEST_CMD`: the hooks `tools/testing/selftests/iommu` drives, built
//! with `CONFIG_IOMMUFD_TEST` as upstream.  The operation numbers and
//! argument layouts are those of `drivers/iommu/iommufd/iommufd_test.h`.

use core::mem::size_of;
use kernel::mm::gup::{UserPageRef, PIN_COUNTING_BIAS};
use kernel::page::PAGE_SIZE;
use kernel::prelude::*;
use kernel::sync::atomic::{Atomic, Relaxed};

use crate::ctx::Ctx;
use crate::io_pagetable::Reserver;
use crate::ioas::Ioas;
use crate::uapi::iommu_test_cmd;
use crate::ucmd::Ucmd;

/// `IOMMU_TEST_OP_ADD_RESERVED`
const OP_ADD_RESERVED: u32 = 1;
/// `IOMMU_TEST_OP_MD_CHECK_REFS`
const OP_MD_CHECK_REFS: u32 = 4;
/// `IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT`
const OP_SET_TEMP_MEMORY_LIMIT: u32 = 9;

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
        // check_refs: { __aligned_u64 length; __aligned_u64 uptr; __u32 refs; }
        OP_MD_CHECK_REFS => md_check_refs(arg_u64(cmd, 8), arg_u64(cmd, 0), arg_u32(cmd, 16)),
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
    if length == 0 {
        return Err(EINVAL);
    }
    let last = start.checked_add(length - 1).ok_or(EOVERFLOW)?;
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
