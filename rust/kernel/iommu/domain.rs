// SPDX-License-Identifier: GPL-2.0

//! The user side of the IOMMU core: the groups devices are in, DMA
//! ownership, paging domains and attaching groups to them - what iommufd
//! does with a device.
//!
//! C header: [`include/linux/iommu.h`](srctree/include/linux/iommu.h)

use super::fault::FaultSink;
use super::user_data::{UserData, UserDataArray};
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
    fn iommu_replace_device_pasid(
        domain: *mut bindings::iommu_domain,
        dev: *mut bindings::device,
        pasid: bindings::ioasid_t,
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

/// The ops of the IOMMU driver of `dev`; `ENODEV` if it has none.
fn ops_of(dev: &Device) -> Result<&'static bindings::iommu_ops> {
    let raw = dev.as_raw();
    // SAFETY: A device with an IOMMU has `iommu` and its IOMMU device set for
    // as long as it stays probed, which the caller's hold on the device (a
    // bound user keeps its group) ensures; the ops of a registered IOMMU are
    // static.
    unsafe {
        let iommu = (*raw).iommu;
        if iommu.is_null() || (*iommu).iommu_dev.is_null() {
            return Err(ENODEV);
        }
        Ok(&*(*(*iommu).iommu_dev).ops)
    }
}

/// What the IOMMU driver of `dev` reports about its hardware
/// (`iommu_ops::hw_info`) for the `IOMMU_HW_INFO_TYPE_*` `ty` asked for:
/// the data and its actual type, or `(empty, IOMMU_HW_INFO_TYPE_NONE)` if
/// the driver reports nothing.  `dev` must have an IOMMU (a group).
pub fn hw_info(dev: &Device, ty: u32) -> Result<(KVec<u8>, u32)> {
    let raw = dev.as_raw();
    let ops = ops_of(dev)?;
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

/// A domain owned by its user, freed when dropped: a paging domain, which
/// the user maps, or a nested domain, which translates through a guest's
/// page table and then its paging parent.
///
/// # Invariants
///
/// `ptr` is a valid paging or nested domain we own.
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

    /// A new paging domain for `dev` made by its driver from user space's
    /// driver-specific `data` (if any) and `IOMMU_HWPT_ALLOC_*` `flags`, as
    /// iommufd's `IOMMU_HWPT_ALLOC` asks.  `EOPNOTSUPP` if the driver takes
    /// neither.
    pub fn alloc_paging_user(dev: &Device, flags: u32, data: Option<&UserData>) -> Result<Self> {
        let ops = ops_of(dev)?;
        let Some(alloc) = ops.domain_alloc_paging_flags else {
            if flags != 0 || data.is_some() {
                return Err(EOPNOTSUPP);
            }
            return Self::alloc_paging(dev, 0);
        };
        let data = data.map_or(core::ptr::null(), |d| d.as_raw());
        // SAFETY: `dev` is valid and has this driver; `data` is NULL or
        // describes user memory the driver copies from.
        let d = from_err_ptr(unsafe { alloc(dev.as_raw(), flags, data) })?;
        let d = NonNull::new(d).ok_or(ENOMEM)?;
        // SAFETY: The driver returned a valid domain, ours now.
        unsafe { (*d.as_ptr()).owner = ops };
        // INVARIANT: A paging domain from the driver, which we own.
        Ok(Self { ptr: d })
    }

    /// The domain's dirty-tracking ops, if it tracks.
    fn dirty_ops(&self) -> Option<&bindings::iommu_dirty_ops> {
        // SAFETY: By the type invariant the domain is valid; its dirty ops,
        // if any, are the driver's and live as long as the domain.
        unsafe { (*self.as_ptr()).dirty_ops.as_ref() }
    }

    /// Whether the domain tracks what DMA writes (it was allocated with
    /// `IOMMU_HWPT_ALLOC_DIRTY_TRACKING`).
    pub fn tracks_dirty(&self) -> bool {
        self.dirty_ops().is_some()
    }

    /// Starts or stops dirty tracking; `EOPNOTSUPP` if the domain cannot
    /// track.
    pub fn set_dirty_tracking(&self, enable: bool) -> Result {
        let op = self
            .dirty_ops()
            .and_then(|o| o.set_dirty_tracking)
            .ok_or(EOPNOTSUPP)?;
        // SAFETY: The domain is valid.
        to_result(unsafe { op(self.as_ptr(), enable) })
    }

    /// Reads the dirty state of `[iova, iova + len)` into `rec`, clearing
    /// it unless `flags` has [`super::dirty::NO_CLEAR`]; after the last
    /// range, [`Domain::flush_dirty`] flushes what was cleared.
    #[cfg(CONFIG_IOMMUFD_DRIVER)]
    pub fn read_and_clear_dirty(
        &self,
        iova: u64,
        len: usize,
        flags: u32,
        rec: &mut super::dirty::DirtyRecord<'_>,
    ) -> Result {
        let op = self
            .dirty_ops()
            .and_then(|o| o.read_and_clear_dirty)
            .ok_or(EOPNOTSUPP)?;
        // SAFETY: The domain is valid; `rec` is a valid record, ours for
        // the call.
        to_result(unsafe {
            op(
                self.as_ptr(),
                iova as c_ulong,
                len,
                flags as c_ulong,
                rec.as_raw(),
            )
        })
    }

    /// Flushes the IOTLB for what reads into `rec` cleared
    /// (`iommu_iotlb_sync()`).
    #[cfg(CONFIG_IOMMUFD_DRIVER)]
    pub fn flush_dirty(&self, rec: &mut super::dirty::DirtyRecord<'_>) {
        // SAFETY: By the type invariant the domain and its ops are valid;
        // the gather is valid and ours.
        unsafe {
            if let Some(sync) = (*(*self.as_ptr()).ops).iotlb_sync {
                sync(self.as_ptr(), rec.gather());
            }
        }
        rec.reset_gather();
    }

    /// A new nested domain for `dev` on top of `parent`, described by the
    /// driver-specific `data`; `flags` are `IOMMU_HWPT_ALLOC_*` flags.
    /// `EOPNOTSUPP` if the driver cannot nest; `EINVAL` if `parent` is not a
    /// paging domain of the same driver.
    pub fn alloc_nested(
        dev: &Device,
        parent: &Domain,
        flags: u32,
        data: &UserData,
    ) -> Result<Self> {
        let ops = ops_of(dev)?;
        let Some(alloc) = ops.domain_alloc_nested else {
            return Err(EOPNOTSUPP);
        };
        // SAFETY: By the type invariant `parent` is valid.
        let (pty, powner) = unsafe { ((*parent.as_ptr()).type_, (*parent.as_ptr()).owner) };
        if pty & bindings::__IOMMU_DOMAIN_PAGING == 0 || !core::ptr::eq(powner, ops) {
            return Err(EINVAL);
        }
        // SAFETY: `dev` is valid and has this driver, whose domain `parent`
        // is; `data` describes user memory the driver copies from.
        let d =
            from_err_ptr(unsafe { alloc(dev.as_raw(), parent.as_ptr(), flags, data.as_raw()) })?;
        let d = NonNull::new(d).ok_or(ENOMEM)?;
        // INVARIANT: Checked to be nested below, freed if not.
        let domain = Self { ptr: d };
        // SAFETY: The driver returned a valid domain, ours now.
        unsafe { (*d.as_ptr()).owner = ops };
        if !domain.is_nested() {
            return Err(EOPNOTSUPP);
        }
        Ok(domain)
    }

    /// Whether this is a nested domain.
    pub fn is_nested(&self) -> bool {
        // SAFETY: By the type invariant the domain is valid.
        unsafe { (*self.as_ptr()).type_ == bindings::IOMMU_DOMAIN_NESTED }
    }

    /// Makes the domain take I/O page faults: from now on, faults of devices
    /// attached to it go to the [`FaultSink`] of their [`Attachment`].
    /// Only a domain no group is attached to yet can change (`&mut`).
    pub fn take_faults(&mut self) {
        // SAFETY: By the type invariant the domain is valid; nothing uses it
        // yet, since we have it exclusively.
        unsafe { (*self.as_ptr()).iopf_handler = Some(iopf_handler) };
    }

    /// Has the driver invalidate the caches of a nested domain, as the
    /// entries of `array` say; `array` then tells how many were handled,
    /// also on failure.  `EOPNOTSUPP` if the driver has no such caches.
    pub fn cache_invalidate_user(&self, array: &mut UserDataArray) -> Result {
        // SAFETY: By the type invariant the domain and its ops are valid.
        let op = unsafe { (*(*self.as_ptr()).ops).cache_invalidate_user };
        let Some(op) = op else {
            array.set_done(0);
            return Err(EOPNOTSUPP);
        };
        // SAFETY: The domain is valid; `array` describes user memory the
        // driver copies from, and is ours for the call.
        to_result(unsafe { op(self.as_ptr(), array.as_raw()) })
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

/// The core's attach handle, with what faults arriving through it go to.
#[repr(C)]
struct Handle {
    raw: Opaque<bindings::iommu_attach_handle>,
    sink: Option<Arc<dyn FaultSink>>,
}

/// The fault handler of every domain that takes faults: passes the group to
/// the sink of the attachment it arrived through.
unsafe extern "C" fn iopf_handler(group: *mut bindings::iopf_group) -> c_int {
    // SAFETY: The core passes a group whose attach handle is live for the
    // call (callers of the fault path serialise with attach changes); the
    // domain takes faults only through `take_faults`, and the domains of
    // this module are attached only by `Attachment`, whose handles are the
    // first field of a `Handle`.
    let handle = unsafe { &*(*group).attach_handle.cast::<Handle>() };
    let Some(sink) = &handle.sink else {
        // The core answers a group it gets back.
        return ENODEV.to_errno();
    };
    // SAFETY: The core handed us the group; the `FaultGroup` answers it.
    sink.deliver(unsafe { super::fault::FaultGroup::from_handler(group) });
    0
}

/// What an [`Attachment`] attaches: a group (the requests without a PASID
/// of its devices), or one PASID of a device.
enum Target {
    Group(ARef<Group>),
    Pasid(ARef<Device>, u32),
}

/// A group, or a PASID of a device, attached to a domain; detached when
/// dropped.
pub struct Attachment {
    handle: Pin<KBox<Handle>>,
    target: Target,
    domain: Arc<Domain>,
}

// SAFETY: The handle is only used by the core, under the group's lock, and
// by the fault path; the rest are reference-counted objects usable from any
// thread.
unsafe impl Send for Attachment {}
// SAFETY: As above; `&Attachment` only reads the domain.
unsafe impl Sync for Attachment {}

fn new_handle(sink: Option<Arc<dyn FaultSink>>) -> Result<Pin<KBox<Handle>>> {
    Ok(KBox::pin(
        Handle {
            raw: Opaque::zeroed(),
            sink,
        },
        GFP_KERNEL_ACCOUNT,
    )?)
}

impl Attachment {
    /// Attaches `group` to `domain`: its devices translate through it.
    /// Faults, if the domain takes them, go to `sink`.
    pub fn attach(
        domain: &Arc<Domain>,
        group: &Group,
        sink: Option<Arc<dyn FaultSink>>,
    ) -> Result<Self> {
        let handle = new_handle(sink)?;
        // SAFETY: The domain and group are valid; the handle is pinned and
        // stays so while attached.
        to_result(unsafe {
            iommu_attach_group_handle(domain.as_ptr(), group.as_ptr(), handle.raw.get())
        })?;
        Ok(Self {
            handle,
            target: Target::Group(group.into()),
            domain: domain.clone(),
        })
    }

    /// Attaches PASID `pasid` of `dev` to `domain`: requests with that PASID
    /// translate through it.  `EBUSY` if the PASID is attached already.
    pub fn attach_pasid(
        domain: &Arc<Domain>,
        dev: &Device,
        pasid: u32,
        sink: Option<Arc<dyn FaultSink>>,
    ) -> Result<Self> {
        let handle = new_handle(sink)?;
        // SAFETY: The domain and device are valid; the handle is pinned and
        // stays so while attached.
        to_result(unsafe {
            bindings::iommu_attach_device_pasid(
                domain.as_ptr(),
                dev.as_raw(),
                pasid,
                handle.raw.get(),
            )
        })?;
        Ok(Self {
            handle,
            target: Target::Pasid(dev.into(), pasid),
            domain: domain.clone(),
        })
    }

    /// Moves what is attached to `domain`, its faults to `sink`, without a
    /// window in which it is blocked; on failure it stays where it was.
    pub fn replace(&mut self, domain: &Arc<Domain>, sink: Option<Arc<dyn FaultSink>>) -> Result {
        let handle = new_handle(sink)?;
        // SAFETY: The target is attached (through `self.handle`); the new
        // handle is pinned and stays so while attached.
        to_result(unsafe {
            match &self.target {
                Target::Group(g) => {
                    iommu_replace_group_handle(g.as_ptr(), domain.as_ptr(), handle.raw.get())
                }
                Target::Pasid(dev, pasid) => iommu_replace_device_pasid(
                    domain.as_ptr(),
                    dev.as_raw(),
                    *pasid,
                    handle.raw.get(),
                ),
            }
        })?;
        // The core no longer knows the old handle.
        self.handle = handle;
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
        // SAFETY: Attached in `attach*` (or `replace`) to `self.domain`,
        // which this holds; detached once.
        unsafe {
            match &self.target {
                Target::Group(g) => iommu_detach_group_handle(self.domain.as_ptr(), g.as_ptr()),
                Target::Pasid(dev, pasid) => {
                    bindings::iommu_detach_device_pasid(self.domain.as_ptr(), dev.as_raw(), *pasid)
                }
            }
        }
    }
}
