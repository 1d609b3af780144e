// SPDX-License-Identifier: GPL-2.0

//! The user side of the IOMMU core: the groups devices are in, DMA
//! ownership, paging domains and attaching groups to them - what iommufd
//! does with a device.
//!
//! C header: [`include/linux/iommu.h`](srctree/include/linux/iommu.h)

use crate::{
    bindings,
    device::Device,
    error::{from_err_ptr, to_result},
    prelude::*,
    sync::aref::{ARef, AlwaysRefCounted},
    sync::Arc,
    types::Opaque,
};
use core::ptr::NonNull;

// From `drivers/iommu/iommu-priv.h`, exported to iommufd
// (`IOMMUFD_INTERNAL`): the caller's module imports that namespace.
// Only pointers cross: the lint looks into the structures, which bindgen
// could not complete for Rust (the `bindings` crate allows it too).
#[allow(improper_ctypes)]
extern "C" {
    fn iommu_attach_group_handle(
        domain: *mut bindings::iommu_domain,
        group: *mut bindings::iommu_group,
        handle: *mut bindings::iommu_attach_handle,
    ) -> c_int;
    fn iommu_detach_group_handle(
        domain: *mut bindings::iommu_domain,
        group: *mut bindings::iommu_group,
    );
    fn iommu_replace_group_handle(
        group: *mut bindings::iommu_group,
        new_domain: *mut bindings::iommu_domain,
        handle: *mut bindings::iommu_attach_handle,
    ) -> c_int;
}

/// `IOMMU_READ`: devices may read.
pub const READ: u32 = bindings::IOMMU_READ;
/// `IOMMU_WRITE`: devices may write.
pub const WRITE: u32 = bindings::IOMMU_WRITE;
/// `IOMMU_CACHE`: DMA is cache coherent.
pub const CACHE: u32 = bindings::IOMMU_CACHE;

/// An IOMMU group (`struct iommu_group`): the devices that translate
/// together.
///
/// # Invariants
///
/// Instances live behind [`ARef`]s, each holding a reference.
#[repr(transparent)]
pub struct Group(Opaque<bindings::iommu_group>);

// SAFETY: Groups are reference counted and locked internally.
unsafe impl Send for Group {}
// SAFETY: As above.
unsafe impl Sync for Group {}

// SAFETY: `iommu_group_ref_get()` and `iommu_group_put()` take and drop a
// reference.
unsafe impl AlwaysRefCounted for Group {
    fn inc_ref(&self) {
        // SAFETY: `self` is a valid group.
        unsafe { bindings::iommu_group_ref_get(self.0.get()) };
    }

    unsafe fn dec_ref(obj: NonNull<Self>) {
        // SAFETY: The caller gives back a reference it owns.
        unsafe { bindings::iommu_group_put(obj.cast().as_ptr()) };
    }
}

impl Group {
    /// The group of `dev`, if it has one (it has an IOMMU).
    pub fn of(dev: &Device) -> Option<ARef<Self>> {
        // SAFETY: `dev` is valid; a non-NULL result carries a reference.
        let g = unsafe { bindings::iommu_group_get(dev.as_raw()) };
        // SAFETY: `Group` is a transparent wrapper; we own the reference.
        NonNull::new(g).map(|g| unsafe { ARef::from_raw(g.cast()) })
    }

    fn as_ptr(&self) -> *mut bindings::iommu_group {
        self.0.get()
    }

    /// Identifies the group (its address), for comparisons.
    pub fn key(&self) -> usize {
        self.as_ptr() as usize
    }
}

/// What the IOMMU driver of `dev` reports about its hardware
/// (`iommu_ops::hw_info`) for the `IOMMU_HW_INFO_TYPE_*` `ty` asked for:
/// the data and its actual type, or `(empty, IOMMU_HW_INFO_TYPE_NONE)` if
/// the driver reports nothing.  `dev` must have an IOMMU (a group).
pub fn hw_info(dev: &Device, ty: u32) -> Result<(KVec<u8>, u32)> {
    let raw = dev.as_raw();
    // SAFETY: A device with an IOMMU group has `iommu` and its IOMMU device
    // set for as long as it stays probed, which its group reference (held by
    // the caller through the group) ensures.
    let ops = unsafe {
        let iommu = (*raw).iommu;
        if iommu.is_null() || (*iommu).iommu_dev.is_null() {
            return Err(ENODEV);
        }
        &*(*(*iommu).iommu_dev).ops
    };
    let Some(f) = ops.hw_info else {
        return Ok((
            KVec::new(),
            bindings::iommu_hw_info_type_IOMMU_HW_INFO_TYPE_NONE,
        ));
    };
    let mut len: u32 = 0;
    let mut out_ty = ty;
    // SAFETY: `raw` is a valid device of this driver; the out parameters are
    // valid.  The result is a `kmalloc()`ed buffer of `len` bytes or an error
    // pointer.
    let data = from_err_ptr(unsafe { f(raw, &mut len, &mut out_ty) })?;
    let mut v = KVec::new();
    // SAFETY: `data` holds `len` bytes.
    let res = v.extend_from_slice(
        unsafe { core::slice::from_raw_parts(data.cast::<u8>(), len as usize) },
        GFP_KERNEL,
    );
    // SAFETY: The driver's buffer is ours to free.
    unsafe { bindings::kfree(data) };
    res?;
    Ok((v, out_ty))
}

/// `log2` of the number of PASIDs `dev` has enabled, 0 for none.
pub fn max_pasid_log2(dev: &Device) -> u8 {
    // SAFETY: `dev` is valid; `iommu` is set while it has an IOMMU.
    let n = unsafe {
        let iommu = (*dev.as_raw()).iommu;
        if iommu.is_null() {
            0
        } else {
            (*iommu).max_pasids
        }
    };
    if n == 0 {
        0
    } else {
        (31 - n.leading_zeros()) as u8
    }
}

/// Whether the IOMMU of `dev` has the capability `cap` (`enum iommu_cap`).
pub fn capable(dev: &Device, cap: u32) -> bool {
    // SAFETY: `dev` is valid.
    unsafe { bindings::device_iommu_capable(dev.as_raw(), cap) }
}

/// DMA ownership of a device claimed for a user (`owner`), given back when
/// dropped (`iommu_device_claim_dma_owner()`).
pub struct DmaOwner {
    dev: ARef<Device>,
}

impl DmaOwner {
    /// Claims `dev` for `owner`, an opaque cookie shared by all devices of
    /// one user: `EBUSY` if a kernel driver or another owner has it.
    pub fn claim(dev: &Device, owner: *mut c_void) -> Result<Self> {
        // SAFETY: `dev` is valid; `owner` is only compared by the core.
        to_result(unsafe { bindings::iommu_device_claim_dma_owner(dev.as_raw(), owner) })?;
        Ok(Self { dev: dev.into() })
    }
}

impl Drop for DmaOwner {
    fn drop(&mut self) {
        // SAFETY: Claimed in `claim`, given back once.
        unsafe { bindings::iommu_device_release_dma_owner(self.dev.as_raw()) };
    }
}

/// A paging domain owned by its user, freed when dropped.
///
/// # Invariants
///
/// `ptr` is a valid paging domain we own.
pub struct Domain {
    ptr: NonNull<bindings::iommu_domain>,
}

// SAFETY: Domain operations may be called from any thread; the driver
// serialises what needs it.
unsafe impl Send for Domain {}
// SAFETY: As above.
unsafe impl Sync for Domain {}

impl Domain {
    /// A new paging domain suitable for `dev`, with `IOMMU_HWPT_ALLOC_*`
    /// `flags`.
    pub fn alloc_paging(dev: &Device, flags: u32) -> Result<Self> {
        // SAFETY: `dev` is valid.
        let d = from_err_ptr(unsafe {
            bindings::iommu_paging_domain_alloc_flags(dev.as_raw(), flags)
        })?;
        NonNull::new(d).map(|ptr| Self { ptr }).ok_or(ENOMEM)
    }

    /// The raw domain, valid for as long as `self` lives.
    pub fn as_ptr(&self) -> *mut bindings::iommu_domain {
        self.ptr.as_ptr()
    }

    /// The page sizes the domain maps with.
    pub fn pgsize_bitmap(&self) -> u64 {
        // SAFETY: By the type invariant the domain is valid.
        unsafe { (*self.as_ptr()).pgsize_bitmap as u64 }
    }

    /// The first and last IOVA the domain translates.
    pub fn aperture(&self) -> (u64, u64) {
        // SAFETY: By the type invariant the domain is valid.
        let g = unsafe { &(*self.as_ptr()).geometry };
        (g.aperture_start, g.aperture_end)
    }

    /// Maps `size` bytes at `iova` to `paddr`, with `prot` ([`READ`],
    /// [`WRITE`], [`CACHE`]).  On failure nothing stays mapped.
    pub fn map(&self, iova: u64, paddr: u64, size: usize, prot: u32) -> Result {
        // SAFETY: By the type invariant the domain is valid.
        to_result(unsafe {
            bindings::iommu_map(
                self.as_ptr(),
                iova as c_ulong,
                paddr,
                size,
                prot as c_int,
                bindings::GFP_KERNEL_ACCOUNT,
            )
        })
    }

    /// Unmaps `size` bytes at `iova`; returns the bytes unmapped.
    pub fn unmap(&self, iova: u64, size: usize) -> usize {
        // SAFETY: By the type invariant the domain is valid.
        unsafe { bindings::iommu_unmap(self.as_ptr(), iova as c_ulong, size) }
    }

    /// The physical address `iova` translates to, 0 if none.
    pub fn iova_to_phys(&self, iova: u64) -> u64 {
        // SAFETY: By the type invariant the domain is valid.
        unsafe { bindings::iommu_iova_to_phys(self.as_ptr(), iova) }
    }
}

impl Drop for Domain {
    fn drop(&mut self) {
        // SAFETY: By the type invariant we own the domain; no group is
        // attached to it any more (an `Attachment` holds the domain).
        unsafe { bindings::iommu_domain_free(self.as_ptr()) };
    }
}

/// A group attached to a domain, detached when dropped.
pub struct Attachment {
    handle: Pin<KBox<Opaque<bindings::iommu_attach_handle>>>,
    group: ARef<Group>,
    domain: Arc<Domain>,
}

// SAFETY: The handle is only used by the core, under the group's lock; the
// rest are reference-counted objects usable from any thread.
unsafe impl Send for Attachment {}
// SAFETY: As above; `&Attachment` only reads the domain.
unsafe impl Sync for Attachment {}

impl Attachment {
    /// Attaches `group` to `domain`: its devices translate through it.
    pub fn attach(domain: &Arc<Domain>, group: &Group) -> Result<Self> {
        let handle = KBox::pin(Opaque::zeroed(), GFP_KERNEL_ACCOUNT)?;
        // SAFETY: The domain and group are valid; the handle is pinned and
        // stays so while attached.
        to_result(unsafe {
            iommu_attach_group_handle(domain.as_ptr(), group.as_ptr(), handle.get())
        })?;
        Ok(Self {
            handle,
            group: group.into(),
            domain: domain.clone(),
        })
    }

    /// Moves the attached group to `domain` without a window in which it
    /// is blocked; on failure the group stays where it was.
    pub fn replace(&mut self, domain: &Arc<Domain>) -> Result {
        // SAFETY: The group is attached through `self.handle`, which the core
        // reuses for the new domain.
        to_result(unsafe {
            iommu_replace_group_handle(self.group.as_ptr(), domain.as_ptr(), self.handle.get())
        })?;
        self.domain = domain.clone();
        Ok(())
    }

    /// The domain the group is attached to.
    pub fn domain(&self) -> &Arc<Domain> {
        &self.domain
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        // SAFETY: Attached in `attach` (or `replace`) to `self.domain`, which
        // this holds; detached once.
        unsafe { iommu_detach_group_handle(self.domain.as_ptr(), self.group.as_ptr()) };
    }
}
