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

use core::mem::size_of;
use kernel::ioctl::{_IO, _IOC_NR};
use kernel::prelude::*;
use kernel::uaccess::{UserPtr, UserSlice};

use crate::ctx::{Ctx, CtxHandle};
use crate::uapi::{self, Pod};

/// One command in flight: the caller's structure and where it came from.
pub(crate) struct Ucmd<'a, T: Pod> {
    pub(crate) ctx: &'a Ctx,
    /// The same context, for in-kernel users that need a long-term hold.
    pub(crate) handle: CtxHandle<'a>,
    ubuf: usize,
    user_size: usize,
    pub(crate) cmd: T,
    /// What `ioctl(2)` returns on success (a new file descriptor for some
    /// test commands), 0 by default.
    pub(crate) ret: isize,
}

impl<T: Pod> Ucmd<'_, T> {
    /// Copies the (updated) command back to the caller, truncated to the
    /// size the caller passed in.
    pub(crate) fn respond(&self) -> Result {
        uapi::write_prefix(self.ubuf, &self.cmd, self.user_size)
    }
}

pub(crate) type Exec = fn(CtxHandle<'_>, usize, usize, &Op) -> Result<isize>;

/// An entry of an ioctl table (see [`ioctl_table!`]).
pub(crate) struct Op {
    /// The full ioctl number, as `_IO(IOMMUFD_TYPE, nr)`.
    pub(crate) cmd: u32,
    /// Size of the kernel's structure.
    pub(crate) size: usize,
    /// End of the last field every caller must pass.
    pub(crate) min_size: usize,
    /// For commands whose second `u32` is a flags word: the bits it knows.
    pub(crate) flags: Option<u32>,
    pub(crate) exec: Exec,
}

/// `offsetofend()`: the end of a field, at compile time.
macro_rules! offset_of_end {
    ($t:ty, $f:ident) => {{
        const fn field_size<T, F>(_: fn(&T) -> &F) -> usize {
            ::core::mem::size_of::<F>()
        }
        ::core::mem::offset_of!($t, $f) + field_size::<$t, _>(|s| &s.$f)
    }};
}
pub(crate) use offset_of_end;

/// The full number of iommufd command `nr`.
pub(crate) const fn iommufd_cmd(nr: u32) -> u32 {
    _IO(uapi::IOMMUFD_TYPE as u32, nr) // u32::from is not const
}

/// An ioctl table: `NR => struct, last mandatory field, handler [, flags:
/// valid bits];`
macro_rules! ioctl_table {
    (@flags $t:ty) => {
        None
    };
    (@flags $t:ty, $valid:expr) => {{
        const _: () = assert!(::core::mem::offset_of!($t, flags) == 4);
        Some($valid)
    }};
    ($($nr:ident => $t:ty, $last:ident, $handler:path $(, flags: $valid:expr)?;)*) => {
        [$($crate::ucmd::Op {
            cmd: $crate::ucmd::iommufd_cmd($nr),
            size: ::core::mem::size_of::<$t>(),
            min_size: $crate::ucmd::offset_of_end!($t, $last),
            flags: $crate::ucmd::ioctl_table!(@flags $t $(, $valid)?),
            exec: |h, ubuf, user_size, op| {
                $crate::ucmd::run::<$t>(h, ubuf, user_size, op, $handler)
            },
        }),*]
    };
}
pub(crate) use ioctl_table;

/// Checks that the `len` bytes at `uptr` are all zero: `E2BIG` if not.
fn check_zeroed_user(uptr: usize, len: usize) -> Result {
    // As upstream's check_zeroed_user(): a range that is not all user
    // memory is EFAULT before anything is read ...
    let end = uptr.checked_add(len).ok_or(EFAULT)?;
    if end > crate::ffi::user_ptr_max() {
        return Err(EFAULT);
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
pub(crate) fn run<T: Pod>(
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
        ubuf,
        user_size,
        cmd,
        ret: 0,
    };
    handler(&mut ucmd)?;
    Ok(ucmd.ret)
}

/// Runs command `cmd` from `table` on the argument at `arg`; `None` if the
/// table has no command of that number.
pub(crate) fn dispatch<'t>(
    handle: CtxHandle<'_>,
    cmd: u32,
    arg: usize,
    mut table: impl Iterator<Item = &'t Op>,
) -> Option<Result<isize>> {
    let nr = _IOC_NR(cmd);
    let op = table.find(|op| _IOC_NR(op.cmd) == nr)?;
    Some(exec(handle, op, cmd, arg))
}

fn exec(handle: CtxHandle<'_>, op: &Op, cmd: u32, arg: usize) -> Result<isize> {
    let user_size = UserSlice::new(UserPtr::from_addr(arg), size_of::<u32>())
        .reader()
        .read::<u32>()?;
    if op.cmd != cmd {
        return Err(ENOTTY);
    }
    (op.exec)(handle, arg, user_size as usize, op)
}
