// SPDX-License-Identifier: GPL-2.0

//! POSIX capabilities of the current task.
//!
//! C header: [`include/linux/capability.h`](srctree/include/linux/capability.h)

use crate::{bindings, ffi::c_int};

/// A capability (`CAP_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capability(u32);

impl Capability {
    /// `CAP_IPC_LOCK`: lock memory beyond `RLIMIT_MEMLOCK`.
    pub const IPC_LOCK: Self = Self(bindings::CAP_IPC_LOCK);
    /// `CAP_SYS_ADMIN`.
    pub const SYS_ADMIN: Self = Self(bindings::CAP_SYS_ADMIN);
    /// `CAP_SYS_RAWIO`.
    pub const SYS_RAWIO: Self = Self(bindings::CAP_SYS_RAWIO);
    /// `CAP_SYS_RESOURCE`: override resource limits.
    pub const SYS_RESOURCE: Self = Self(bindings::CAP_SYS_RESOURCE);
}

/// Whether the current task has `cap` in its effective set, with respect to
/// the initial user namespace (`capable()`).
///
/// Like the C function, a successful check is audited and marks the task as
/// having used a privilege.
pub fn capable(cap: Capability) -> bool {
    // The `CAP_*` values are small, so the conversion is lossless.
    let cap = cap.0 as c_int;
    // SAFETY: `capable()` may be called from any process context with any
    // capability number.
    unsafe { bindings::capable(cap) }
}
