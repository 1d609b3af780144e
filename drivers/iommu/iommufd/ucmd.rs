// SPDX-License-Identifier: GPL-2.0

//! The ioctl table of `/dev/iommu`.
//!
//! Every command is an extensible structure whose first `u32` is its size as
//! the caller knows it.  The rules for such structures are applied here, once,
//! for every command:
//!
//! - a size below the end of the command's last mandatory field: `EINVAL`;
//! - a size above the kernel's structure whose extra bytes are not all zero:
//!   `E2BIG` (an older kernel cannot honour a newer caller's request);
//! - a flags word with a bit the command does not know: `EOPNOTSUPP`;
//! - a command number this table does not have: `ENOTTY`.
//!
//! A handler receives the structure in kernel memory, zero-filled past the
//! caller's size, and answers through [`Ucmd::respond`], which copies back no
//! more than the caller's size.

use core::mem::{offset_of, size_of};
use kernel::ioctl::{_IO, _IOC_NR};
use kernel::prelude::*;
use kernel::sync::atomic::{Atomic, Relaxed};
use kernel::uaccess::{UserPtr, UserSlice};

use crate::ctx::{self, CtxHandle};
#[cfg(CONFIG_IOMMUFD_TEST)]
use crate::selftest;
use crate::uapi::{self, Pod};
use crate::{device, fault, ioas, object, vfio_compat, viommu};

/// One command in flight: the caller's structure and where it came from.
pub(crate) struct Ucmd<'a, T: Pod> {
    pub(crate) ctx: &'a crate::ctx::Ctx,
    /// The same context, for in-kernel users that need a long-term hold.
    pub(crate) handle: CtxHandle<'a>,
    op: &'a Op,
    ubuf: usize,
    user_size: usize,
    pub(crate) cmd: T,
    /// What `ioctl(2)` returns on success (a new file descriptor for some
    /// test commands), 0 by default.
    pub(crate) ret: isize,
}

impl<T: Pod> Ucmd<'_, T> {
    /// Fails with `EOPNOTSUPP` for something (`what`) of this command that is
    /// not implemented yet, saying so in the kernel log the first time.
    pub(crate) fn not_implemented(&self, what: &str) -> Result {
        if !self.op.warned.xchg(true, Relaxed) {
            pr_notice!("{what}: not implemented yet, failing with EOPNOTSUPP\n");
        }
        Err(EOPNOTSUPP)
    }

    /// Copies the (updated) command back to the caller, truncated to the
    /// size the caller passed in.
    pub(crate) fn respond(&self) -> Result {
        uapi::write_prefix(self.ubuf, &self.cmd, self.user_size)
    }
}

type Exec = fn(CtxHandle<'_>, usize, usize, &Op) -> Result<isize>;

/// An entry of the table.
pub(crate) struct Op {
    /// The uAPI structure's name, for the kernel log.
    name: &'static str,
    /// Whether the log has said that this command is not implemented.
    warned: Atomic<bool>,
    /// The full ioctl number, as `_IO(IOMMUFD_TYPE, nr)`.
    cmd: u32,
    /// Size of the kernel's structure.
    size: usize,
    /// End of the last field every caller must pass.
    min_size: usize,
    /// For commands whose second `u32` is a flags word: the bits it knows.
    flags: Option<u32>,
    exec: Exec,
}

/// `offsetofend()`: the end of a field, at compile time.
macro_rules! offset_of_end {
    ($t:ty, $f:ident) => {{
        const fn field_size<T, F>(_: fn(&T) -> &F) -> usize {
            size_of::<F>()
        }
        offset_of!($t, $f) + field_size::<$t, _>(|s| &s.$f)
    }};
}

const fn iommufd_cmd(nr: u32) -> u32 {
    _IO(uapi::IOMMUFD_TYPE as u32, nr) // u32::from is not const
}

/// The table: `NR => struct, last mandatory field, handler [, flags: valid bits];`
macro_rules! ioctl_table {
    (@flags $t:ty) => {
        None
    };
    (@flags $t:ty, $valid:expr) => {{
        const _: () = assert!(offset_of!($t, flags) == 4);
        Some($valid)
    }};
    ($($nr:ident => $t:ty, $last:ident, $handler:path $(, flags: $valid:expr)?;)*) => {
        [$(Op {
            name: stringify!($t),
            warned: Atomic::new(false),
            cmd: iommufd_cmd($nr),
            size: size_of::<$t>(),
            min_size: offset_of_end!($t, $last),
            flags: ioctl_table!(@flags $t $(, $valid)?),
            exec: |h, ubuf, user_size, op| run::<$t>(h, ubuf, user_size, op, $handler),
        }),*]
    };
}

/// A command the module knows the layout of but does not implement yet.
fn not_implemented<T: Pod>(ucmd: &mut Ucmd<'_, T>) -> Result {
    ucmd.not_implemented(ucmd.op.name)
}

use uapi::*;

#[rustfmt::skip]
static OPS: [Op; 22] = ioctl_table! {
    IOMMUFD_CMD_DESTROY => iommu_destroy, id, object::destroy_ioctl;
    IOMMUFD_CMD_IOAS_ALLOC => iommu_ioas_alloc, out_ioas_id, ioas::alloc_ioctl, flags: 0;
    IOMMUFD_CMD_IOAS_ALLOW_IOVAS => iommu_ioas_allow_iovas, allowed_iovas,
        ioas::allow_iovas_ioctl;
    IOMMUFD_CMD_IOAS_COPY => iommu_ioas_copy, src_iova, ioas::copy_ioctl,
        flags: ioas::MAP_FLAGS;
    IOMMUFD_CMD_IOAS_IOVA_RANGES => iommu_ioas_iova_ranges, out_iova_alignment,
        ioas::iova_ranges_ioctl;
    IOMMUFD_CMD_IOAS_MAP => iommu_ioas_map, iova, ioas::map_ioctl, flags: ioas::MAP_FLAGS;
    IOMMUFD_CMD_IOAS_UNMAP => iommu_ioas_unmap, length, ioas::unmap_ioctl;
    IOMMUFD_CMD_OPTION => iommu_option, val64, ctx::option_ioctl;
    IOMMUFD_CMD_VFIO_IOAS => iommu_vfio_ioas, __reserved, vfio_compat::vfio_ioas_ioctl;
    IOMMUFD_CMD_HWPT_ALLOC => iommu_hwpt_alloc, __reserved, device::hwpt_alloc_ioctl;
    IOMMUFD_CMD_GET_HW_INFO => iommu_hw_info, __reserved, device::get_hw_info_ioctl;
    IOMMUFD_CMD_HWPT_SET_DIRTY_TRACKING => iommu_hwpt_set_dirty_tracking, __reserved,
        device::set_dirty_tracking_ioctl;
    IOMMUFD_CMD_HWPT_GET_DIRTY_BITMAP => iommu_hwpt_get_dirty_bitmap, data,
        device::get_dirty_bitmap_ioctl;
    IOMMUFD_CMD_HWPT_INVALIDATE => iommu_hwpt_invalidate, __reserved,
        device::hwpt_invalidate_ioctl;
    IOMMUFD_CMD_FAULT_QUEUE_ALLOC => iommu_fault_alloc, out_fault_fd, fault::alloc_ioctl;
    IOMMUFD_CMD_IOAS_MAP_FILE => iommu_ioas_map_file, iova, ioas::map_file_ioctl,
        flags: ioas::MAP_FLAGS;
    IOMMUFD_CMD_VIOMMU_ALLOC => iommu_viommu_alloc, out_viommu_id, viommu::alloc_ioctl;
    IOMMUFD_CMD_VDEVICE_ALLOC => iommu_vdevice_alloc, virt_id, viommu::vdevice_alloc_ioctl;
    IOMMUFD_CMD_IOAS_CHANGE_PROCESS => iommu_ioas_change_process, __reserved,
        ioas::change_process_ioctl;
    IOMMUFD_CMD_VEVENTQ_ALLOC => iommu_veventq_alloc, out_veventq_fd,
        viommu::veventq_alloc_ioctl;
    IOMMUFD_CMD_HW_QUEUE_ALLOC => iommu_hw_queue_alloc, length, viommu::hw_queue_alloc_ioctl;
    IOMMUFD_CMD_IOAS_NOIOMMU_GET_PA => iommu_ioas_noiommu_get_pa, out_phys, not_implemented;
};

/// The selftests' private command, built with `CONFIG_IOMMUFD_TEST` as upstream.
#[cfg(CONFIG_IOMMUFD_TEST)]
#[rustfmt::skip]
static TEST_OPS: [Op; 1] = ioctl_table! {
    IOMMUFD_CMD_TEST => iommu_test_cmd, last, selftest::test_ioctl;
};
#[cfg(not(CONFIG_IOMMUFD_TEST))]
static TEST_OPS: [Op; 0] = [];

fn all_ops() -> impl Iterator<Item = &'static Op> {
    Iterator::chain(OPS.iter(), TEST_OPS.iter())
}

/// Checks that the `len` bytes at `uptr` are all zero: `E2BIG` if not.
fn check_zeroed_user(uptr: usize, len: usize) -> Result {
    // As upstream's check_zeroed_user(): a range that is not all user
    // memory is EFAULT before anything is read ...
    let end = uptr.checked_add(len).ok_or(EFAULT)?;
    #[cfg(CONFIG_X86_64)]
    {
        // SAFETY: `USER_PTR_MAX` is set once during boot, before any
        // module can load, and only read after.
        let max = unsafe { kernel::bindings::USER_PTR_MAX };
        if end > max {
            return Err(EFAULT);
        }
    }
    // ... then the bytes are read in order: E2BIG at the first non-zero one,
    // EFAULT at the first that cannot be read.  No read crosses a page, so
    // a fault is seen where upstream's word reads see it.
    let mut chunk = [0u8; 64];
    let mut addr = uptr;
    while addr < end {
        let n = (end - addr)
            .min(chunk.len())
            .min(kernel::page::PAGE_SIZE - addr % kernel::page::PAGE_SIZE);
        UserSlice::new(UserPtr::from_addr(addr), n)
            .reader()
            .read_slice(&mut chunk[..n])?;
        if chunk[..n].iter().any(|&b| b != 0) {
            return Err(E2BIG);
        }
        addr += n;
    }
    Ok(())
}

/// Copies in the structure of `op`, applies the extensible-struct rules and
/// runs `handler`.
fn run<T: Pod>(
    handle: CtxHandle<'_>,
    ubuf: usize,
    user_size: usize,
    op: &Op,
    handler: fn(&mut Ucmd<'_, T>) -> Result,
) -> Result<isize> {
    if user_size < op.min_size {
        return Err(EINVAL);
    }
    let cmd: T = uapi::read_prefix(ubuf, user_size)?;
    if user_size > op.size {
        let tail = ubuf.checked_add(op.size).ok_or(EFAULT)?;
        check_zeroed_user(tail, user_size - op.size)?;
    }
    if let Some(valid) = op.flags {
        let b = cmd.as_bytes();
        let flags = u32::from_ne_bytes([b[4], b[5], b[6], b[7]]);
        if flags & !valid != 0 {
            return Err(EOPNOTSUPP);
        }
    }
    let mut ucmd = Ucmd {
        ctx: handle.ctx(),
        handle,
        op,
        ubuf,
        user_size,
        cmd,
        ret: 0,
    };
    handler(&mut ucmd)?;
    Ok(ucmd.ret)
}

/// Entry point of `ioctl(2)` on `/dev/iommu`.
pub(crate) fn dispatch(handle: CtxHandle<'_>, cmd: u32, arg: usize) -> Result<isize> {
    let nr = _IOC_NR(cmd);
    let Some(op) = all_ops().find(|op| _IOC_NR(op.cmd) == nr) else {
        return vfio_compat::vfio_ioctl(handle.ctx(), cmd, arg);
    };
    let user_size = UserSlice::new(UserPtr::from_addr(arg), size_of::<u32>())
        .reader()
        .read::<u32>()?;
    if op.cmd != cmd {
        return Err(ENOTTY);
    }
    (op.exec)(handle, arg, user_size as usize, op)
}

#[kunit_tests(iommufd_rs_ucmd)]
mod tests {
    use super::*;

    #[test]
    fn table_is_consistent() {
        for (i, a) in all_ops().enumerate() {
            // Every entry is a distinct command of the iommufd ioctl type.
            assert_eq!(
                kernel::ioctl::_IOC_TYPE(a.cmd),
                u32::from(uapi::IOMMUFD_TYPE)
            );
            for b in all_ops().skip(i + 1) {
                assert_ne!(_IOC_NR(a.cmd), _IOC_NR(b.cmd));
            }
            // The mandatory part fits in the structure and covers `size`.
            assert!(a.min_size >= size_of::<u32>());
            assert!(a.min_size <= a.size);
        }
    }

    #[test]
    fn minimum_sizes_match_the_uapi() {
        // offsetofend() of the last mandatory field, as the uAPI defines it.
        use uapi::*;
        let min = |nr| {
            OPS.iter()
                .find(|op| _IOC_NR(op.cmd) == nr)
                .unwrap()
                .min_size
        };
        assert_eq!(min(IOMMUFD_CMD_DESTROY), 8);
        assert_eq!(min(IOMMUFD_CMD_IOAS_ALLOC), 12);
        assert_eq!(min(IOMMUFD_CMD_IOAS_IOVA_RANGES), 32);
        assert_eq!(min(IOMMUFD_CMD_IOAS_MAP), 40);
        assert_eq!(min(IOMMUFD_CMD_IOAS_UNMAP), 24);
        assert_eq!(min(IOMMUFD_CMD_OPTION), 24);
        assert_eq!(min(IOMMUFD_CMD_VFIO_IOAS), 12);
    }
}
