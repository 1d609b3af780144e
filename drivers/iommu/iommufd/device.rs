// SPDX-License-Identifier: GPL-2.0

//! Devices bound to a context, and the paging HW page tables (HWPTs) they
//! attach to: the Rust side of upstream's `iommufd_device_*` API.
//!
//! Binding claims the device's DMA for the context.  Attaching it to an
//! IOAS finds an automatic HWPT of that IOAS the device can use, or makes
//! one: a paging domain filled with the IOAS's mappings for as long as it
//! exists.  An automatic HWPT goes away with its last device.

use kernel::iommu::domain::{Attachment, DmaOwner, Domain, Group};
use kernel::new_mutex;
use kernel::prelude::*;
use kernel::sync::aref::ARef;
use kernel::sync::{Arc, Mutex};

use crate::ctx::Ctx;
use crate::ioas::Ioas;
use crate::object::Object;

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
    ) -> Result<Arc<Object<HwptPaging>>> {
        // Until the HWPT exists, the IOAS use is ours to give back.
        let give_back = |ioas: Arc<Object<Ioas>>| {
            let id = ioas.id();
            drop(ioas);
            ctx.objects.put_long(id);
        };
        let domain =
            match Domain::alloc_paging(dev, 0).and_then(|d| Ok(Arc::new(d, GFP_KERNEL_ACCOUNT)?)) {
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
        let objects = &self.ctx.objects;
        let hwpt = if let Ok(ioas) = objects.get_long::<Ioas>(pt_id) {
            self.auto_hwpt(ioas)?
        } else {
            objects.get_long::<HwptPaging>(pt_id)?
        };
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
        let hwpt = HwptPaging::alloc(&self.ctx, ioas, &self.dev, true)?;
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
        let objects = &self.ctx.objects;
        let hwpt = if let Ok(ioas) = objects.get_long::<Ioas>(pt_id) {
            self.auto_hwpt(ioas)?
        } else {
            objects.get_long::<HwptPaging>(pt_id)?
        };
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
