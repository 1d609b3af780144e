// SPDX-License-Identifier: GPL-2.0

//! I/O page faults: a device asks for translations its domain lacks, and
//! whoever owns the domain answers.
//!
//! A domain that takes faults ([`super::domain::Domain::take_faults`]) sends
//! them, as groups ([`FaultGroup`]), to the [`FaultSink`] of the attachment
//! they arrived through.  Every group is answered exactly once: by
//! [`FaultGroup::respond`], or with "invalid" when it is dropped.
//!
//! C header: [`include/linux/iommu.h`](srctree/include/linux/iommu.h)

use crate::{bindings, impl_flags, prelude::*};
use core::ptr::NonNull;

/// The answer to a group of page requests (`enum iommu_page_response_code`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageResponse {
    /// `IOMMU_PAGE_RESP_SUCCESS`: the fault was resolved, retry the access.
    Success = bindings::iommu_page_response_code_IOMMU_PAGE_RESP_SUCCESS,
    /// `IOMMU_PAGE_RESP_INVALID`: the access is invalid, do not retry it.
    Invalid = bindings::iommu_page_response_code_IOMMU_PAGE_RESP_INVALID,
    /// `IOMMU_PAGE_RESP_FAILURE`: fault handling failed; stop sending
    /// requests.
    Failure = bindings::iommu_page_response_code_IOMMU_PAGE_RESP_FAILURE,
}

impl_flags!(
    /// What a page request says of itself (`IOMMU_FAULT_PAGE_REQUEST_*`).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct PageRequestFlags(u32);

    /// One page request flag.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum PageRequestFlag {
        /// `IOMMU_FAULT_PAGE_REQUEST_PASID_VALID`: the request has a PASID.
        PasidValid = bindings::IOMMU_FAULT_PAGE_REQUEST_PASID_VALID,
        /// `IOMMU_FAULT_PAGE_REQUEST_LAST_PAGE`: the last request of its
        /// group.
        LastPage = bindings::IOMMU_FAULT_PAGE_REQUEST_LAST_PAGE,
    }
);

impl PageRequestFlags {
    /// The flags `bits`, unknown ones included: the core carries a
    /// request's flags to its handler unchanged.
    pub fn from_bits_retain(bits: u32) -> Self {
        Self(bits)
    }
}

impl_flags!(
    /// The access a page request asks for (`IOMMU_FAULT_PERM_*`).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct FaultPerm(u32);

    /// One kind of access.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum FaultPermFlag {
        /// `IOMMU_FAULT_PERM_READ`
        Read = bindings::IOMMU_FAULT_PERM_READ,
        /// `IOMMU_FAULT_PERM_WRITE`
        Write = bindings::IOMMU_FAULT_PERM_WRITE,
        /// `IOMMU_FAULT_PERM_EXEC`
        Exec = bindings::IOMMU_FAULT_PERM_EXEC,
        /// `IOMMU_FAULT_PERM_PRIV`: a privileged access.
        Priv = bindings::IOMMU_FAULT_PERM_PRIV,
    }
);

impl FaultPerm {
    /// The permissions `bits`, unknown ones included, as for
    /// [`PageRequestFlags::from_bits_retain`].
    pub fn from_bits_retain(bits: u32) -> Self {
        Self(bits)
    }
}

/// One page request (`struct iommu_fault_page_request`).
#[derive(Clone, Copy, Debug, Default)]
pub struct PageRequest {
    /// What the request says of itself.
    pub flags: PageRequestFlags,
    /// The PASID, if `flags` says it is valid.
    pub pasid: u32,
    /// The group the request is part of.
    pub grpid: u32,
    /// The access wanted.
    pub perm: FaultPerm,
    /// The faulting address.
    pub addr: u64,
}

impl PageRequest {
    fn from_raw(prm: &bindings::iommu_fault_page_request) -> Self {
        Self {
            flags: PageRequestFlags::from_bits_retain(prm.flags),
            pasid: prm.pasid,
            grpid: prm.grpid,
            perm: FaultPerm::from_bits_retain(prm.perm),
            addr: prm.addr,
        }
    }
}

/// A group of page requests a device made, to be answered once.
///
/// # Invariants
///
/// `ptr` is a group handed over by the core's fault path and taken off the
/// device's pending list, not answered or freed yet: this object does both.
pub struct FaultGroup {
    ptr: NonNull<bindings::iopf_group>,
}

// SAFETY: A group is owned by whoever answers it; the core's answer path
// takes its own locks and may run in any thread.
unsafe impl Send for FaultGroup {}
// SAFETY: `&FaultGroup` only reads the requests, which nothing changes.
unsafe impl Sync for FaultGroup {}

impl FaultGroup {
    /// Takes the group the core passed to a domain's fault handler.
    ///
    /// # Safety
    ///
    /// `group` is a group the core passed to an `iopf_handler`, which is
    /// now answered and freed only through the result.
    pub(crate) unsafe fn from_handler(group: *mut bindings::iopf_group) -> Self {
        #[cfg(CONFIG_IOMMU_IOPF)]
        // SAFETY: The caller passes the group of a handler call.
        unsafe {
            bindings::iopf_group_dequeue(group)
        };
        // INVARIANT: Taken off the pending list; the caller hands it over.
        Self {
            // SAFETY: The core passes a valid group.
            ptr: unsafe { NonNull::new_unchecked(group) },
        }
    }

    /// The number of requests in the group.
    pub fn len(&self) -> usize {
        // SAFETY: By the type invariant the group is valid.
        unsafe { (*self.ptr.as_ptr()).fault_count }
    }

    /// Whether the group has no request (never, from the core).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The requests of the group, in the order the device made them.
    pub fn requests(&self) -> Result<KVec<PageRequest>> {
        let mut out = KVec::with_capacity(self.len(), GFP_KERNEL)?;
        let off = core::mem::offset_of!(bindings::iopf_fault, list);
        // SAFETY: By the type invariant the group is valid; its `faults`
        // list links the `list` fields of `iopf_fault`s, which nothing
        // changes while we own the group.
        unsafe {
            let head = &raw mut (*self.ptr.as_ptr()).faults;
            let mut pos = (*head).next;
            while pos != head {
                let f = pos.cast::<u8>().sub(off).cast::<bindings::iopf_fault>();
                out.push(PageRequest::from_raw(&(*f).fault.prm), GFP_KERNEL)?;
                pos = (*pos).next;
            }
        }
        Ok(out)
    }

    /// Answers the group with `code`.
    pub fn respond(self, code: PageResponse) {
        let this = core::mem::ManuallyDrop::new(self);
        this.answer(code);
    }

    /// Answers and frees the group; called once, by `respond` or `drop`.
    fn answer(&self, _code: PageResponse) {
        // Without CONFIG_IOMMU_IOPF the core has no fault path, so no group
        // exists.
        #[cfg(CONFIG_IOMMU_IOPF)]
        // SAFETY: By the type invariant the group is ours to answer and free;
        // our callers do so once.
        unsafe {
            bindings::iopf_group_response(self.ptr.as_ptr(), _code as u32);
            bindings::iopf_free_group(self.ptr.as_ptr());
        }
    }
}

impl Drop for FaultGroup {
    fn drop(&mut self) {
        self.answer(PageResponse::Invalid);
    }
}

/// Where the faults arriving through an attachment go.
pub trait FaultSink: Send + Sync {
    /// Takes `group`, to answer it now or later.  Called from the device's
    /// fault path: must not sleep for long.
    fn deliver(&self, group: FaultGroup);
}
