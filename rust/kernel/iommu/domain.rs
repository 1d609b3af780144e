// SPDX-License-Identifier: GPL-2.0

//! The user side of the IOMMU core: the groups devices are in, DMA
//! ownership, paging domains and attaching groups to them - what iommufd
//! does with a device.
//!
//! C headers: [`include/linux/iommu.h`](srctree/include/linux/iommu.h),
//! [`drivers/iommu/iommu-priv.h`](srctree/drivers/iommu/iommu-priv.h)
//! (the `IOMMUFD_INTERNAL` entry points: a module using them imports that
//! namespace).

use super::fault::FaultSink;
use super::user_data::{UserData, UserDataArray};
use crate::{
    bindings,
    device::Device,
    error::{from_err_ptr, to_result},
    impl_flags,
    prelude::*,
    sync::aref::{ARef, AlwaysRefCounted},
    sync::Arc,
    types::Opaque,
};
use core::ptr::NonNull;

impl_flags!(
    /// What the devices behind a domain may do with a mapping (`IOMMU_*`
    /// protection flags).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct Prot(u32);

    /// One permission or attribute of a mapping.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum ProtFlag {
        /// `IOMMU_READ`: devices may read.
        Read = bindings::IOMMU_READ,
        /// `IOMMU_WRITE`: devices may write.
        Write = bindings::IOMMU_WRITE,
        /// `IOMMU_CACHE`: DMA is cache coherent.
        Cache = bindings::IOMMU_CACHE,
        /// `IOMMU_NOEXEC`: devices may not execute from the mapping.
        NoExec = bindings::IOMMU_NOEXEC,
        /// `IOMMU_MMIO`: the mapping is of device memory (an MSI doorbell).
        Mmio = bindings::IOMMU_MMIO,
        /// `IOMMU_PRIV`: only privileged transactions may use the mapping.
        Priv = bindings::IOMMU_PRIV,
    }
);

impl Prot {
    /// The flags in `raw` (as the core passes them to drivers); bits that
    /// are no `IOMMU_*` protection flag are dropped.
    pub fn from_bits_truncate(raw: u32) -> Self {
        Self(raw & Self::all_bits())
    }
}

impl_flags!(
    /// How a domain is to be made (`IOMMU_HWPT_ALLOC_*`, the flags of
    /// iommufd's `IOMMU_HWPT_ALLOC` that the core hands to IOMMU drivers).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct AllocFlags(u32);

    /// One allocation flag.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum AllocFlag {
        /// `IOMMU_HWPT_ALLOC_NEST_PARENT`: the domain may be the parent of
        /// nested domains.
        NestParent = bindings::iommufd_hwpt_alloc_flags_IOMMU_HWPT_ALLOC_NEST_PARENT,
        /// `IOMMU_HWPT_ALLOC_DIRTY_TRACKING`: the domain tracks what DMA
        /// writes.
        DirtyTracking = bindings::iommufd_hwpt_alloc_flags_IOMMU_HWPT_ALLOC_DIRTY_TRACKING,
        /// `IOMMU_HWPT_ALLOC_PASID`: PASIDs may be attached to the domain.
        Pasid = bindings::iommufd_hwpt_alloc_flags_IOMMU_HWPT_ALLOC_PASID,
    }
);

impl AllocFlags {
    /// The flags user space asked for, unknown bits included: as the core
    /// does, the driver is the one to refuse flags it does not know.
    pub fn from_bits_retain(bits: u32) -> Self {
        Self(bits)
    }

    /// Whether every flag set, known or not, is one of `allowed`.
    pub fn is_within(self, allowed: AllocFlags) -> bool {
        self.0 & !allowed.0 == 0
    }
}

/// A capability of the IOMMU of a device (`enum iommu_cap`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cap {
    /// `IOMMU_CAP_CACHE_COHERENCY`: [`ProtFlag::Cache`] is supported.
    CacheCoherency = bindings::iommu_cap_IOMMU_CAP_CACHE_COHERENCY,
    /// `IOMMU_CAP_NOEXEC`: [`ProtFlag::NoExec`] is supported.
    NoExec = bindings::iommu_cap_IOMMU_CAP_NOEXEC,
    /// `IOMMU_CAP_PRE_BOOT_PROTECTION`: firmware used the IOMMU for DMA
    /// protection.
    PreBootProtection = bindings::iommu_cap_IOMMU_CAP_PRE_BOOT_PROTECTION,
    /// `IOMMU_CAP_ENFORCE_CACHE_COHERENCY`: enforcing cache coherency works
    /// for the device.
    EnforceCacheCoherency = bindings::iommu_cap_IOMMU_CAP_ENFORCE_CACHE_COHERENCY,
    /// `IOMMU_CAP_DEFERRED_FLUSH`: unmapping issues no TLB maintenance.
    DeferredFlush = bindings::iommu_cap_IOMMU_CAP_DEFERRED_FLUSH,
    /// `IOMMU_CAP_DIRTY_TRACKING`: domains can track what DMA writes.
    DirtyTracking = bindings::iommu_cap_IOMMU_CAP_DIRTY_TRACKING,
    /// `IOMMU_CAP_PCI_ATS_SUPPORTED`: ATS may be enabled for the device.
    PciAtsSupported = bindings::iommu_cap_IOMMU_CAP_PCI_ATS_SUPPORTED,
}

impl Cap {
    /// The capability `raw` (as the core asks drivers about it), if it is
    /// one of these.
    pub fn from_raw(raw: bindings::iommu_cap) -> Option<Self> {
        [
            Self::CacheCoherency,
            Self::NoExec,
            Self::PreBootProtection,
            Self::EnforceCacheCoherency,
            Self::DeferredFlush,
            Self::DirtyTracking,
            Self::PciAtsSupported,
        ]
        .into_iter()
        .find(|&c| c as u32 == raw)
    }
}

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

    /// Whether a DMA write by any device of the group cannot raise an
    /// interrupt it was not given (`iommu_group_has_isolated_msi()`): the
    /// platform isolates MSIs, by interrupt remapping or an MSI controller
    /// that tells devices apart.
    pub fn has_isolated_msi(&self) -> bool {
        // SAFETY: `self` is a valid group (type invariant).
        unsafe { bindings::iommu_group_has_isolated_msi(self.as_ptr()) }
    }
}

/// What a device's reserved IOVA region is for (`enum iommu_resv_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResvKind {
    /// Mapped 1:1 at all times (firmware's DMA targets).
    Direct,
    /// Advertised 1:1, but commonly given up when a device is assigned.
    DirectRelaxable,
    /// Never to be mapped or used for DMA.
    Reserved,
    /// The hardware MSI window: DMA there raises interrupts, untranslated.
    Msi,
    /// A window in which software maps the MSI doorbells (for example
    /// behind an Arm SMMU).
    SwMsi,
}

/// One reserved IOVA region of a device: `[start, start + length)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResvRegion {
    /// The first IOVA.
    pub start: u64,
    /// The length in bytes; not zero.
    pub length: u64,
    /// What it is for.
    pub kind: ResvKind,
}

impl ResvRegion {
    /// The region's last IOVA (inclusive), clamped to the top of the
    /// 64-bit space.
    pub fn last(&self) -> u64 {
        self.start.saturating_add(self.length - 1)
    }
}

/// The reserved IOVA regions of `dev` (`iommu_get_resv_regions()`): those of
/// its IOMMU driver and of the platform (MSI windows, firmware's direct
/// mappings).  Empty if `dev` has no IOMMU; regions of an unknown type or
/// no length are left out.
pub fn resv_regions(dev: &Device) -> Result<KVec<ResvRegion>> {
    let mut out = KVec::new();
    if !probed(dev) {
        return Ok(out);
    }
    let list = Opaque::<bindings::list_head>::uninit();
    let head = list.get();
    // SAFETY: `head` is valid for writes; an empty list points to itself.
    // It does not move until the end of this function.
    unsafe { bindings::INIT_LIST_HEAD(head) };
    // SAFETY: `dev` is valid and probed by its IOMMU; the regions are
    // allocated and put on the list `head`, ours until we put them back.
    unsafe { bindings::iommu_get_resv_regions(dev.as_raw(), head) };
    let mut res: Result = Ok(());
    // SAFETY: `head` is an initialised list.
    let mut pos = unsafe { (*head).next };
    while pos != head {
        // SAFETY: Every entry is the `list` field of a region the driver
        // allocated.
        let r = unsafe { &*crate::container_of!(pos, bindings::iommu_resv_region, list) };
        let kind = match r.type_ {
            bindings::iommu_resv_type_IOMMU_RESV_DIRECT => Some(ResvKind::Direct),
            bindings::iommu_resv_type_IOMMU_RESV_DIRECT_RELAXABLE => {
                Some(ResvKind::DirectRelaxable)
            }
            bindings::iommu_resv_type_IOMMU_RESV_RESERVED => Some(ResvKind::Reserved),
            bindings::iommu_resv_type_IOMMU_RESV_MSI => Some(ResvKind::Msi),
            bindings::iommu_resv_type_IOMMU_RESV_SW_MSI => Some(ResvKind::SwMsi),
            _ => None,
        };
        let length = r.length as u64;
        if let (Some(kind), true, true) = (kind, length != 0, res.is_ok()) {
            res = out
                .push(
                    ResvRegion {
                        start: r.start,
                        length,
                        kind,
                    },
                    GFP_KERNEL,
                )
                .map_err(|_| ENOMEM);
        }
        pos = r.list.next;
    }
    // SAFETY: The list `iommu_get_resv_regions()` filled, given back once.
    unsafe { bindings::iommu_put_resv_regions(dev.as_raw(), head) };
    res.map(|()| out)
}

/// Whether an IOMMU driver probed `dev` and put it in a group.  Not only
/// the group: VFIO's no-IOMMU mode gives devices without an IOMMU a group
/// of its own, whose devices have no driver ops to call.
pub(super) fn probed(dev: &Device) -> bool {
    // SAFETY: `dev` is a valid device.
    has_iommu(dev) && unsafe { bindings::device_iommu_mapped(dev.as_raw()) }
}

/// The ops of the IOMMU driver of `dev`; `ENODEV` if it has none.
fn ops_of(dev: &Device) -> Result<&bindings::iommu_ops> {
    if !probed(dev) {
        return Err(ENODEV);
    }
    // SAFETY: The core probed `dev` for its IOMMU (it is in a group), which
    // set the ops `dev_iommu_ops()` reads; they stay while the device stays
    // probed, which whoever holds it bound ensures (as the core requires of
    // the users of a device's IOMMU, `iommu_device_claim_dma_owner()`'s
    // callers); they are the driver's and outlive the devices it probed.
    Ok(unsafe { &*bindings::dev_iommu_ops(dev.as_raw()) })
}

/// What the IOMMU driver of `dev` reports about its hardware
/// (`iommu_ops::hw_info`) for the `IOMMU_HW_INFO_TYPE_*` `ty` asked for:
/// the data and its actual type, or `(empty, IOMMU_HW_INFO_TYPE_NONE)` if
/// the driver reports nothing.  `ENODEV` if `dev` has no IOMMU.
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

/// `log2` of the number of PASIDs `dev` has enabled, 0 for none (or no
/// IOMMU).
pub fn max_pasid_log2(dev: &Device) -> u8 {
    if !probed(dev) {
        return 0;
    }
    // SAFETY: As in `ops_of`: the core's per-device data (`dev->iommu`) is
    // set while the device is probed for its IOMMU.  No accessor exists for
    // this field; the C iommufd reads it too.
    let n = unsafe { (*(*dev.as_raw()).iommu).max_pasids };
    if n == 0 {
        0
    } else {
        (31 - n.leading_zeros()) as u8
    }
}

/// Whether an IOMMU driver manages `dev` (`dev->iommu` is set).  A device
/// without is a no-IOMMU device: nothing translates or isolates its DMA.
/// The group a no-IOMMU mode of VFIO may give such a device does not count.
pub fn has_iommu(dev: &Device) -> bool {
    // SAFETY: `dev` is valid.  The core sets and clears `iommu` under its
    // probe lock (also for a bound device, when an IOMMU driver registers
    // late), hence a single read that may race with it.
    !unsafe { core::ptr::read_volatile(&raw const (*dev.as_raw()).iommu) }.is_null()
}

/// Whether the IOMMU of `dev` has the capability `cap`.
pub fn capable(dev: &Device, cap: Cap) -> bool {
    // SAFETY: `dev` is valid; the core checks that it has an IOMMU.
    unsafe { bindings::device_iommu_capable(dev.as_raw(), cap as bindings::iommu_cap) }
}

/// DMA ownership of a device's group claimed for a user
/// (`iommu_device_claim_dma_owner()`), given back when the last reference
/// goes.  While it lives no kernel driver uses the DMA API on the group, so
/// the user may attach it to domains of its own ([`Attachment`], which
/// keeps a reference).
///
/// # Invariants
///
/// DMA ownership of `dev`, a device of `group`, was claimed and is given
/// back once, on drop.
pub struct DmaOwner {
    dev: ARef<Device>,
    group: ARef<Group>,
}

impl DmaOwner {
    /// Claims `dev` for `owner`, an opaque cookie shared by all devices of
    /// one user (only compared, never dereferenced): `EBUSY` if a kernel
    /// driver uses the DMA API on the group, `EPERM` if another owner has
    /// it, `ENODEV` if `dev` has no IOMMU group, `EINVAL` if `owner` is
    /// NULL.
    // The core compares `owner` with the cookies of other claims, never
    // dereferences it.
    #[allow(clippy::not_unsafe_ptr_arg_deref)]
    pub fn claim(dev: &Device, owner: *mut c_void) -> Result<Arc<Self>> {
        if owner.is_null() {
            // The core would warn.
            return Err(EINVAL);
        }
        let group = Group::of(dev).ok_or(ENODEV)?;
        // SAFETY: `dev` is valid; `owner` is only compared by the core.
        to_result(unsafe { bindings::iommu_device_claim_dma_owner(dev.as_raw(), owner) })?;
        // INVARIANT: Claimed just now; if the allocation fails, the value
        // is dropped and gives the claim back.
        Ok(Arc::new(
            Self {
                dev: dev.into(),
                group,
            },
            GFP_KERNEL,
        )?)
    }

    /// The device claimed.
    pub fn device(&self) -> &Device {
        &self.dev
    }

    /// The device's group.
    pub fn group(&self) -> &Group {
        &self.group
    }
}

impl Drop for DmaOwner {
    fn drop(&mut self) {
        // SAFETY: Claimed in `claim` (type invariant), given back once.  No
        // attachment is left: each holds a reference on `self`.
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
    /// The vIOMMU a nested domain was made on, which the driver's domain
    /// uses: freed after the domain.
    #[cfg(CONFIG_IOMMUFD_DRIVER_CORE)]
    _viommu: Option<Arc<super::iommufd::Viommu>>,
}

// SAFETY: Domain operations may be called from any thread; the driver
// serialises what needs it.
unsafe impl Send for Domain {}
// SAFETY: As above.
unsafe impl Sync for Domain {}

impl Domain {
    /// Takes ownership of the domain at `ptr`, which the caller owns.
    fn own(ptr: NonNull<bindings::iommu_domain>) -> Self {
        Self {
            ptr,
            #[cfg(CONFIG_IOMMUFD_DRIVER_CORE)]
            _viommu: None,
        }
    }

    /// The nested domain `d` that the vIOMMU `viommu` of the IOMMU whose
    /// ops are `owner` just made: `EOPNOTSUPP` (and freed) if it is not a
    /// nested domain.
    #[cfg(CONFIG_IOMMUFD_DRIVER_CORE)]
    pub(super) fn from_viommu(
        d: NonNull<bindings::iommu_domain>,
        owner: *const bindings::iommu_ops,
        viommu: Arc<super::iommufd::Viommu>,
    ) -> Result<Self> {
        // INVARIANT: A domain from the driver, ours; freed below if it is
        // not nested.
        let domain = Self {
            ptr: d,
            _viommu: Some(viommu),
        };
        // SAFETY: The driver returned a valid domain, ours now, which the
        // core expects to know its driver.
        unsafe { (*d.as_ptr()).owner = owner };
        // A driver bug.
        if crate::warn_on!(!domain.is_nested()) {
            return Err(EOPNOTSUPP);
        }
        Ok(domain)
    }

    /// A new paging domain suitable for `dev`, made with `flags`.
    pub fn alloc_paging(dev: &Device, flags: AllocFlags) -> Result<Self> {
        // SAFETY: `dev` is valid; the core checks that it has an IOMMU.
        let d = from_err_ptr(unsafe {
            bindings::iommu_paging_domain_alloc_flags(dev.as_raw(), flags.into())
        })?;
        // INVARIANT: A new paging domain, ours.
        NonNull::new(d).map(Self::own).ok_or(ENOMEM)
    }

    /// A new paging domain for `dev` made by its driver from user space's
    /// driver-specific `data` (if any) and `flags`, as iommufd's
    /// `IOMMU_HWPT_ALLOC` asks.  `EOPNOTSUPP` if the driver takes neither.
    pub fn alloc_paging_user(
        dev: &Device,
        flags: AllocFlags,
        data: Option<&UserData>,
    ) -> Result<Self> {
        let ops = ops_of(dev)?;
        let Some(alloc) = ops.domain_alloc_paging_flags else {
            if flags != AllocFlags::empty() || data.is_some() {
                return Err(EOPNOTSUPP);
            }
            return Self::alloc_paging(dev, flags);
        };
        let data = data.map_or(core::ptr::null(), |d| d.as_raw());
        // SAFETY: `dev` is valid and has this driver; `data` is NULL or
        // describes user memory the driver copies from.
        let d = from_err_ptr(unsafe { alloc(dev.as_raw(), flags.into(), data) })?;
        let d = NonNull::new(d).ok_or(ENOMEM)?;
        // SAFETY: The driver returned a valid domain, ours now, which the
        // core expects to know its driver (as `iommu_paging_domain_alloc()`
        // and the C iommufd set it).
        unsafe { (*d.as_ptr()).owner = ops };
        // INVARIANT: A paging domain from the driver, which we own.
        Ok(Self::own(d))
    }

    /// A new software paging domain: a page table the IOMMU core maps and
    /// unmaps as any other, which no IOMMU walks and no device can be
    /// attached to (the core refuses: no device's driver owns it).  It only records
    /// what is mapped where, for [`Domain::iova_to_phys`]: what iommufd
    /// keeps for devices without an IOMMU, whose DMA uses the physical
    /// addresses user space looks up.  The generic page table's AMDv1
    /// format: the full 64 bits of IOVA, every power of two from 4 KiB up
    /// as a page size.
    #[cfg(CONFIG_IOMMU_PT_AMDV1)]
    pub fn alloc_software() -> Result<Self> {
        // INVARIANT: A new paging domain, ours.
        super::generic_pt::alloc_soft().map(Self::own)
    }

    /// Whether this is a software domain ([`Domain::alloc_software`]).
    pub fn is_software(&self) -> bool {
        #[cfg(CONFIG_IOMMU_PT_AMDV1)]
        // SAFETY: By the type invariant the domain is valid.
        return unsafe { super::generic_pt::is_soft(self.as_ptr()) };
        #[cfg(not(CONFIG_IOMMU_PT_AMDV1))]
        false
    }

    /// The domain's dirty-tracking ops, if it tracks.
    fn dirty_ops(&self) -> Option<&bindings::iommu_dirty_ops> {
        // SAFETY: By the type invariant the domain is valid; its dirty ops,
        // if any, are the driver's and live as long as the domain.
        unsafe { (*self.as_ptr()).dirty_ops.as_ref() }
    }

    /// Whether the domain tracks what DMA writes (it was allocated with
    /// [`AllocFlag::DirtyTracking`]).
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
    /// it unless `flags` has [`super::dirty::DirtyFlag::NoClear`]; after
    /// the last range, [`Domain::flush_dirty`] flushes what was cleared.
    #[cfg(CONFIG_IOMMUFD_DRIVER)]
    pub fn read_and_clear_dirty(
        &self,
        iova: u64,
        len: usize,
        flags: super::dirty::DirtyFlags,
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
                u32::from(flags) as c_ulong,
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
    /// driver-specific `data`, made with `flags`.  `EOPNOTSUPP` if the
    /// driver cannot nest; `EINVAL` if `parent` is not a paging domain of
    /// the same driver.
    pub fn alloc_nested(
        dev: &Device,
        parent: &Domain,
        flags: AllocFlags,
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
        let d = from_err_ptr(unsafe {
            alloc(dev.as_raw(), parent.as_ptr(), flags.into(), data.as_raw())
        })?;
        let d = NonNull::new(d).ok_or(ENOMEM)?;
        // INVARIANT: Checked to be nested below, freed if not.
        let domain = Self::own(d);
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

    /// Maps `size` bytes at `iova` to the physical address `paddr`, as
    /// `prot` allows.  On failure nothing stays mapped.  A mapping that
    /// allows neither reading nor writing is `EINVAL`: the generic page
    /// tables most IOMMU drivers use refuse it with a warning.
    ///
    /// # Safety
    ///
    /// From now until `[iova, iova + size)` is unmapped again (by
    /// [`Domain::unmap`], or when the domain is freed), the devices attached
    /// to the domain may access `[paddr, paddr + size)` as `prot` allows,
    /// at any time.  The caller keeps that memory for them meanwhile: pages
    /// it holds pinned, or memory whose owner tells it when it goes (a
    /// dma-buf it imported, unmapped when revoked), never memory given
    /// back to the allocator or to another user.
    pub unsafe fn map(&self, iova: u64, paddr: u64, size: usize, prot: Prot) -> Result {
        if !prot.contains_any(ProtFlag::Read | ProtFlag::Write) {
            return Err(EINVAL);
        }
        // SAFETY: By the type invariant the domain is valid; the caller
        // keeps the memory for the devices while it is mapped.
        to_result(unsafe {
            bindings::iommu_map(
                self.as_ptr(),
                iova as c_ulong,
                paddr,
                size,
                u32::from(prot) as c_int,
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
///
/// # Safety
///
/// Called by the core's fault path (`iommu_report_device_fault()`) for a
/// domain made to take faults by [`Domain::take_faults`], with a group it
/// hands over whose attach handle stays live for the call.
unsafe extern "C" fn iopf_handler(group: *mut bindings::iopf_group) -> c_int {
    // SAFETY: The core passes a valid group whose attach handle is live
    // for the call.  Domains take faults only through `take_faults`, on a
    // `Domain`, which only an `Attachment` attaches: the handle is the
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

/// What an [`Attachment`] attaches: the group of its owner's device (the
/// requests without a PASID of its devices), or one PASID of that device.
enum Target {
    Group,
    Pasid(u32),
}

/// A group, or a PASID of a device, attached to a domain; detached when
/// dropped.  It holds the DMA ownership that allowed it.
pub struct Attachment {
    handle: Pin<KBox<Handle>>,
    target: Target,
    domain: Arc<Domain>,
    // Dropped after the detach (in `drop`).
    owner: Arc<DmaOwner>,
}

// SAFETY: The handle is only used by the core, under the group's lock, and
// by the fault path; the rest are reference-counted objects usable from any
// thread.
unsafe impl Send for Attachment {}
// SAFETY: As above; `&Attachment` only reads the domain.
unsafe impl Sync for Attachment {}

/// Serialises an attach change of `dev` with the fault reports of its
/// software IOMMU, if it has one of this crate's (see
/// [`Registration::report_fault`]).
///
/// [`Registration::report_fault`]: super::driver::Registration::report_fault
#[cfg(CONFIG_IOMMUFD_TEST)]
fn attach_guard(dev: &Device) -> Option<crate::sync::MutexGuard<'_, ()>> {
    super::driver::attach_lock_of(dev).map(|m| m.lock())
}

/// Without software IOMMUs (`kernel::iommu::driver`), nothing to serialise.
#[cfg(not(CONFIG_IOMMUFD_TEST))]
fn attach_guard(_dev: &Device) {}

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
    /// Attaches the group of `owner`'s device, whose DMA it owns, to
    /// `domain`: its devices translate through it.  Faults, if the domain
    /// takes them, go to `sink`.
    pub fn attach(
        domain: &Arc<Domain>,
        owner: &Arc<DmaOwner>,
        sink: Option<Arc<dyn FaultSink>>,
    ) -> Result<Self> {
        let handle = new_handle(sink)?;
        let _guard = attach_guard(owner.device());
        // SAFETY: The domain and group are valid, and the group's DMA is
        // owned (no kernel driver uses it); the handle is pinned and stays
        // so while attached.
        to_result(unsafe {
            bindings::iommu_attach_group_handle(
                domain.as_ptr(),
                owner.group().as_ptr(),
                handle.raw.get(),
            )
        })?;
        Ok(Self {
            handle,
            target: Target::Group,
            domain: domain.clone(),
            owner: owner.clone(),
        })
    }

    /// Attaches PASID `pasid` of `owner`'s device, whose DMA it owns, to
    /// `domain`: requests with that PASID translate through it.  `EBUSY` if
    /// the PASID is attached already.
    pub fn attach_pasid(
        domain: &Arc<Domain>,
        owner: &Arc<DmaOwner>,
        pasid: u32,
        sink: Option<Arc<dyn FaultSink>>,
    ) -> Result<Self> {
        let handle = new_handle(sink)?;
        let _guard = attach_guard(owner.device());
        // SAFETY: The domain and device are valid, and the device's DMA is
        // owned; the handle is pinned and stays so while attached.
        to_result(unsafe {
            bindings::iommu_attach_device_pasid(
                domain.as_ptr(),
                owner.device().as_raw(),
                pasid,
                handle.raw.get(),
            )
        })?;
        Ok(Self {
            handle,
            target: Target::Pasid(pasid),
            domain: domain.clone(),
            owner: owner.clone(),
        })
    }

    /// Moves what is attached to `domain`, its faults to `sink`, without a
    /// window in which it is blocked; on failure it stays where it was.
    pub fn replace(&mut self, domain: &Arc<Domain>, sink: Option<Arc<dyn FaultSink>>) -> Result {
        let handle = new_handle(sink)?;
        let _guard = attach_guard(self.owner.device());
        // SAFETY: The target is attached (through `self.handle`) and its DMA
        // owned; the new handle is pinned and stays so while attached.
        to_result(unsafe {
            match self.target {
                Target::Group => bindings::iommu_replace_group_handle(
                    self.owner.group().as_ptr(),
                    domain.as_ptr(),
                    handle.raw.get(),
                ),
                Target::Pasid(pasid) => bindings::iommu_replace_device_pasid(
                    domain.as_ptr(),
                    self.owner.device().as_raw(),
                    pasid,
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
        let _guard = attach_guard(self.owner.device());
        // SAFETY: Attached in `attach*` (or `replace`) to `self.domain`,
        // which this holds, with the DMA ownership this holds too; detached
        // once.
        unsafe {
            match self.target {
                Target::Group => bindings::iommu_detach_group_handle(
                    self.domain.as_ptr(),
                    self.owner.group().as_ptr(),
                ),
                Target::Pasid(pasid) => bindings::iommu_detach_device_pasid(
                    self.domain.as_ptr(),
                    self.owner.device().as_raw(),
                    pasid,
                ),
            }
        }
    }
}
