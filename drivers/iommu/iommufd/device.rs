// SPDX-License-Identifier: GPL-2.0

//! Devices bound to a context, and the paging HW page tables (HWPTs) they
//! attach to: the Rust side of upstream's `iommufd_device_*` API.
//!
//! Binding claims the device's DMA for the context.  Attaching it to an
//! IOAS finds an automatic HWPT of that IOAS the device can use, or makes
//! one: a paging domain filled with the IOAS's mappings for as long as it
//! exists.  An automatic HWPT goes away with its last device.

use kernel::bindings;
use kernel::iommu::domain::{self as iommu, Attachment, DmaOwner, Domain, Group};
use kernel::new_mutex;
use kernel::prelude::*;
use kernel::sync::aref::ARef;
use kernel::sync::{Arc, Mutex};
use kernel::uaccess::{UserPtr, UserSlice};

use crate::ctx::Ctx;
use crate::ioas::Ioas;
use crate::object::Object;
use crate::uapi;
use crate::ucmd::Ucmd;

/// A paging HWPT: an IOMMU domain that mirrors one IOAS.
pub(crate) struct HwptPaging {
    ctx: Arc<Ctx>,
    id: u32,
    /// The IOAS mirrored, with a use of it; None only during teardown.
    ioas: Option<Arc<Object<Ioas>>>,
    pub(crate) domain: Arc<Domain>,
    /// Made by an attach to an IOAS, and destroyed with its last device.
    auto: bool,
}

impl HwptPaging {
    /// A new HWPT of `ioas`, whose use the caller gives, for `dev`.
    fn alloc(
        ctx: &Arc<Ctx>,
        ioas: Arc<Object<Ioas>>,
        dev: &kernel::device::Device,
        auto: bool,
        flags: u32,
    ) -> Result<Arc<Object<HwptPaging>>> {
        // Until the HWPT exists, the IOAS use is ours to give back.
        let give_back = |ioas: Arc<Object<Ioas>>| {
            let id = ioas.id();
            drop(ioas);
            ctx.objects.put_long(id);
        };
        let domain = match Domain::alloc_paging(dev, flags)
            .and_then(|d| Ok(Arc::new(d, GFP_KERNEL_ACCOUNT)?))
        {
            Ok(d) => d,
            Err(e) => {
                give_back(ioas);
                return Err(e);
            }
        };
        let slot = match ctx.objects.reserve() {
            Ok(slot) => slot,
            Err(e) => {
                give_back(ioas);
                return Err(e);
            }
        };
        if let Err(e) = ioas.iopt.add_domain(&domain) {
            give_back(ioas);
            return Err(e);
        }
        let hwpt = slot.new_value(HwptPaging {
            ctx: ctx.clone(),
            id: slot.id(),
            ioas: Some(ioas.clone()),
            domain: domain.clone(),
            auto,
        });
        let hwpt = match hwpt {
            Ok(h) => h,
            Err(e) => {
                ioas.iopt.remove_domain(&domain);
                give_back(ioas);
                return Err(e);
            }
        };
        // From here the HWPT holds the IOAS use; dropping it gives it back.
        if auto {
            ioas.add_auto_hwpt(hwpt.id())?;
        }
        drop(ioas);
        slot.finalize(hwpt.clone());
        Ok(hwpt)
    }
}

impl Drop for HwptPaging {
    fn drop(&mut self) {
        if let Some(ioas) = self.ioas.take() {
            ioas.iopt.remove_domain(&self.domain);
            if self.auto {
                ioas.remove_auto_hwpt(self.id);
            }
            let id = ioas.id();
            drop(ioas);
            self.ctx.objects.put_long(id);
        }
    }
}

struct Attached {
    hwpt: Arc<Object<HwptPaging>>,
    attachment: Attachment,
}

/// A device bound to a context.
#[pin_data(PinnedDrop)]
pub(crate) struct Device {
    ctx: Arc<Ctx>,
    dev: ARef<kernel::device::Device>,
    group: ARef<Group>,
    #[pin]
    attached: Mutex<Option<Attached>>,
    // Dropped last: the device is detached before its DMA is given back.
    _owner: DmaOwner,
}

impl Device {
    /// Binds `dev` to the context: claims its DMA for the context.
    /// `EINVAL` if it has no IOMMU group.
    pub(crate) fn bind(
        ctx: &Arc<Ctx>,
        dev: &kernel::device::Device,
    ) -> Result<Arc<Object<Device>>> {
        let group = Group::of(dev).ok_or(EINVAL)?;
        let owner = DmaOwner::claim(dev, ctx.owner_cookie())?;
        let slot = ctx.objects.reserve()?;
        let idev = slot.new_object(try_pin_init!(Device {
            ctx: ctx.clone(),
            dev: dev.into(),
            group,
            attached <- new_mutex!(None),
            _owner: owner,
        }? Error))?;
        slot.finalize_held(idev.clone());
        Ok(idev)
    }

    /// The device.
    pub(crate) fn dev(&self) -> &kernel::device::Device {
        &self.dev
    }

    /// Attaches the device to `pt_id`, an IOAS (through an automatic HWPT)
    /// or a paging HWPT.  Returns the HWPT's ID.  `EINVAL` if attached.
    pub(crate) fn attach(&self, pt_id: u32) -> Result<u32> {
        let mut st = self.attached.lock();
        if st.is_some() {
            return Err(EINVAL);
        }
        let hwpt = self.hwpt_for(pt_id)?;
        match Attachment::attach(&hwpt.domain, &self.group) {
            Ok(attachment) => {
                let id = hwpt.id();
                *st = Some(Attached { hwpt, attachment });
                Ok(id)
            }
            Err(e) => {
                drop(st);
                self.put_hwpt(hwpt);
                Err(e)
            }
        }
    }

    /// The HWPT to attach to for `pt_id`, with a use for the caller: an
    /// automatic one for an IOAS, else the paging HWPT `pt_id`.
    fn hwpt_for(&self, pt_id: u32) -> Result<Arc<Object<HwptPaging>>> {
        let objects = &self.ctx.objects;
        match objects.get_long::<Ioas>(pt_id) {
            Ok(ioas) => self.auto_hwpt(ioas),
            Err(_) => objects.get_long::<HwptPaging>(pt_id),
        }
    }

    /// An automatic HWPT of `ioas` (whose use the caller gives) with a
    /// use for the caller.
    fn auto_hwpt(&self, ioas: Arc<Object<Ioas>>) -> Result<Arc<Object<HwptPaging>>> {
        let objects = &self.ctx.objects;
        // Every domain of the mock suits every device: reuse the first.
        for id in ioas.auto_hwpts()? {
            if let Ok(hwpt) = objects.get_long::<HwptPaging>(id) {
                let ioas_id = ioas.id();
                drop(ioas);
                objects.put_long(ioas_id);
                return Ok(hwpt);
            }
        }
        let hwpt = HwptPaging::alloc(&self.ctx, ioas, &self.dev, true, 0)?;
        // The new HWPT's first use, for the caller.
        objects.get_long::<HwptPaging>(hwpt.id())
    }

    /// Gives back a use of `hwpt`, destroying it if it was automatic and
    /// this was its last device.
    fn put_hwpt(&self, hwpt: Arc<Object<HwptPaging>>) {
        let (id, auto) = (hwpt.id(), hwpt.auto);
        drop(hwpt);
        self.ctx.objects.put_long(id);
        if auto {
            // EBUSY: another device still uses it.
            let _ = self.ctx.objects.destroy(id);
        }
    }

    /// Detaches the device, if attached.
    pub(crate) fn detach(&self) {
        let Some(a) = self.attached.lock().take() else {
            return;
        };
        drop(a.attachment);
        self.put_hwpt(a.hwpt);
    }

    /// Moves the attached device to `pt_id` (see [`Device::attach`]).
    pub(crate) fn replace(&self, pt_id: u32) -> Result<u32> {
        let mut st = self.attached.lock();
        let Some(cur) = &mut *st else {
            return Err(EINVAL);
        };
        let hwpt = self.hwpt_for(pt_id)?;
        if Arc::ptr_eq(&hwpt, &cur.hwpt) {
            let id = hwpt.id();
            drop(st);
            self.put_hwpt(hwpt);
            return Ok(id);
        }
        if let Err(e) = cur.attachment.replace(&hwpt.domain) {
            drop(st);
            self.put_hwpt(hwpt);
            return Err(e);
        }
        let id = hwpt.id();
        let old = core::mem::replace(&mut cur.hwpt, hwpt);
        drop(st);
        self.put_hwpt(old);
        Ok(id)
    }
}

#[pinned_drop]
impl PinnedDrop for Device {
    fn drop(self: Pin<&mut Self>) {
        self.detach();
    }
}

/// The `IOMMU_HWPT_ALLOC_*` flags `IOMMU_HWPT_ALLOC` knows.
const HWPT_ALLOC_FLAGS: u32 = uapi::IOMMU_HWPT_ALLOC_NEST_PARENT
    | uapi::IOMMU_HWPT_ALLOC_DIRTY_TRACKING
    | uapi::IOMMU_HWPT_FAULT_ID_VALID
    | uapi::IOMMU_HWPT_ALLOC_PASID;

/// `IOMMU_HWPT_ALLOC`: a paging HWPT of an IOAS for a device.
pub(crate) fn hwpt_alloc_ioctl(ucmd: &mut Ucmd<'_, uapi::iommu_hwpt_alloc>) -> Result {
    let c = &ucmd.cmd;
    if c.__reserved != 0 || c.__reserved2 != 0 {
        return Err(EOPNOTSUPP);
    }
    if (c.data_type == uapi::IOMMU_HWPT_DATA_NONE) != (c.data_len == 0) {
        return Err(EINVAL);
    }
    if c.flags & !HWPT_ALLOC_FLAGS != 0 {
        return Err(EOPNOTSUPP);
    }
    let objects = &ucmd.ctx.objects;
    let idev = objects.get::<Device>(c.dev_id)?;
    let Ok(ioas) = objects.get_long::<Ioas>(c.pt_id) else {
        // A HWPT parent (nesting) or a vIOMMU: not implemented yet; anything
        // else is not a page table.
        if objects.get::<HwptPaging>(c.pt_id).is_ok() {
            ucmd.not_implemented("nested HWPTs")?;
        }
        return Err(EINVAL);
    };
    let unsupported = if c.data_type != uapi::IOMMU_HWPT_DATA_NONE {
        Some("driver data for paging HWPTs")
    } else if c.flags & uapi::IOMMU_HWPT_ALLOC_DIRTY_TRACKING != 0 {
        Some("dirty tracking")
    } else if c.flags & uapi::IOMMU_HWPT_FAULT_ID_VALID != 0 {
        Some("fault queues")
    } else {
        None
    };
    if let Some(what) = unsupported {
        let id = ioas.id();
        drop(ioas);
        objects.put_long(id);
        ucmd.not_implemented(what)?;
        return Err(EOPNOTSUPP);
    }
    let hwpt = HwptPaging::alloc(&idev.ctx, ioas, &idev.dev, false, c.flags)?;
    let id = hwpt.id();
    drop(hwpt);
    drop(idev);
    ucmd.cmd.out_hwpt_id = id;
    if let Err(e) = ucmd.respond() {
        let _ = ucmd.ctx.objects.destroy(id);
        return Err(e);
    }
    Ok(())
}

/// `IOMMU_GET_HW_INFO`: what the IOMMU of a device reports about itself.
pub(crate) fn get_hw_info_ioctl(ucmd: &mut Ucmd<'_, uapi::iommu_hw_info>) -> Result {
    let c = &ucmd.cmd;
    if c.flags & !uapi::IOMMU_HW_INFO_FLAG_INPUT_TYPE != 0 || c.__reserved != [0; 3] {
        return Err(EOPNOTSUPP);
    }
    let mut want = uapi::hw_info_data_type(c);
    if c.flags & uapi::IOMMU_HW_INFO_FLAG_INPUT_TYPE == 0 {
        want = uapi::IOMMU_HW_INFO_TYPE_DEFAULT;
    }
    let (data_len, uptr) = (c.data_len as usize, c.data_uptr);
    let idev = ucmd.ctx.objects.get::<Device>(c.dev_id)?;
    let (data, ty) = iommu::hw_info(&idev.dev, want)?;
    let copy = data_len.min(data.len());
    let user = UserSlice::new(UserPtr::from_addr(uptr as usize), data_len);
    let mut w = user.writer();
    w.write_slice(&data[..copy])?;
    // Zero the rest of a larger buffer.
    let zeros = [0u8; 64];
    let mut left = data_len - copy;
    while left != 0 {
        let n = left.min(zeros.len());
        w.write_slice(&zeros[..n])?;
        left -= n;
    }
    let mut caps = 0u64;
    if iommu::capable(&idev.dev, bindings::iommu_cap_IOMMU_CAP_DIRTY_TRACKING) {
        caps |= u64::from(uapi::IOMMU_HW_CAP_DIRTY_TRACKING);
    }
    if !iommu::capable(&idev.dev, bindings::iommu_cap_IOMMU_CAP_PCI_ATS_SUPPORTED) {
        caps |= u64::from(uapi::IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED);
    }
    let pasid_log2 = iommu::max_pasid_log2(&idev.dev);
    drop(idev);
    let out = &mut ucmd.cmd;
    uapi::set_hw_info_data_type(out, ty);
    out.data_len = u32::try_from(data.len()).map_err(|_| EOVERFLOW)?;
    out.out_capabilities = caps;
    out.out_max_pasid_log2 = pasid_log2;
    ucmd.respond()
}
