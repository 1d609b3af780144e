// SPDX-License-Identifier: GPL-2.0

//! vIOMMUs and what hangs off them: vDEVICEs, vEVENTQs and HW queues.
//!
//! A vIOMMU is a slice of a physical IOMMU given to a guest: it nests on a
//! paging HWPT (the guest's stage 2), holds the guest's view of its devices
//! (vDEVICEs, by virtual ID), reports the guest's events (vEVENTQs) and may
//! run queues the hardware reads in guest memory (HW queues).  All four
//! are the IOMMU driver's as much as ours: the driver allocates its part
//! behind the core's, and both it and the kernel's built-in iommufd helpers
//! reach into them through their C layouts.  So each object here wraps its
//! C face from `kernel::iommu::iommufd`, which has those layouts, and adds
//! what the Rust iommufd keeps: the uses of the objects it depends on.
//!
//! A vIOMMU or a HW queue also counts users in its C face that the object
//! table does not see (an mmap of the vIOMMU's regions, a driver's
//! dependency between queues): both are published with
//! [`crate::object::Pending::finalize_retiring`], so that `IOMMU_DESTROY`
//! fails with `EBUSY` while such users remain.

use kernel::fs::file::File;
use kernel::iommu::domain::AllocFlags;
use kernel::iommu::iommufd;
use kernel::iommu::user_data::{UserData, UserDataArray};
use kernel::page::PAGE_SIZE;
use kernel::prelude::*;
use kernel::sync::atomic::{Acquire, Relaxed, Release};
use kernel::sync::poll::PollTable;
use kernel::sync::Arc;
use kernel::time::{delay::fsleep, Delta};
use kernel::uaccess::{UserPtr, UserSlice};

use crate::ctx::{Ctx, Objects, PendingObj};
use crate::device::{self, Device, VdevSlot};
use crate::fault::{self, QueueObj};
use crate::hw_pagetable::{self as hwpt, ForDev, Hwpt};
use crate::interval::last_of;
use crate::ioas::Ioas;
use crate::object::{Held, Retire};
use crate::uapi;
use crate::ucmd::Ucmd;

/// `VEVENTQ_MAX_DEPTH`: upstream's bound on a vEVENTQ's depth.
const VEVENTQ_MAX_DEPTH: u32 = 1 << 19;

/// A vIOMMU object.
pub(crate) struct Viommu {
    // First: the driver's part goes before the parent it nests on.
    pub(crate) raw: Arc<iommufd::Viommu>,
    /// The nesting parent, a paging HWPT of the same IOMMU.
    pub(crate) hwpt: Held<Hwpt>,
}

impl Retire for Viommu {
    fn publish(&self) {
        self.raw.publish();
    }

    fn retire(&self) -> bool {
        self.raw.retire()
    }
}

/// `IOMMU_VIOMMU_ALLOC`
pub(crate) fn alloc_ioctl(ucmd: &mut Ucmd<'_, uapi::iommu_viommu_alloc>) -> Result {
    let c = &ucmd.cmd;
    if c.flags != 0 || c.type_ == uapi::IOMMU_VIOMMU_TYPE_DEFAULT {
        return Err(EOPNOTSUPP);
    }
    let ctx = ucmd.ctx;
    let objects = &ctx.objects;
    let idev = objects.get::<Device>(c.dev_id)?;
    if idev.no_iommu() {
        return Err(EOPNOTSUPP);
    }
    let ty = iommufd::Viommu::find_type(idev.dev(), c.type_)?;
    // A paging HWPT: anything else is not found, as upstream's typed lookup.
    let hwpt = objects.get_long::<Hwpt>(c.hwpt_id)?;
    if !hwpt.paging().ok_or(ENOENT)?.nest_parent() {
        return Err(EINVAL);
    }
    let slot = objects.reserve()?;
    let data = UserData::new(c.type_, c.data_uptr, c.data_len as usize);
    let data = (!data.is_empty()).then_some(&data);
    let raw = iommufd::Viommu::new(ty, &ctx.face, slot.id(), &hwpt.domain, data)?;
    let viommu = slot.new_value(Viommu { raw, hwpt })?;
    ucmd.cmd.out_viommu_id = viommu.id();
    ucmd.respond()?;
    viommu.finalize_retiring();
    Ok(())
}

/// `IOMMU_HWPT_ALLOC`: as `device` makes it, and on a vIOMMU, a nested
/// HWPT the vIOMMU's driver makes (`EINVAL` if the vIOMMU is not of the
/// device's IOMMU).
pub(crate) fn hwpt_alloc_ioctl(ucmd: &mut Ucmd<'_, uapi::iommu_hwpt_alloc>) -> Result {
    device::hwpt_alloc(ucmd, alloc_on_viommu)
}

/// A nested HWPT on the vIOMMU `pt_id`, if it is one: `None` if not.
fn alloc_on_viommu<'a>(
    ctx: &'a Ctx,
    pt_id: u32,
    dev: ForDev<'_>,
    flags: u32,
    data: &UserData,
    fault_id: Option<u32>,
) -> Option<Result<PendingObj<'a, Hwpt>>> {
    let viommu = ctx.objects.get_long::<Viommu>(pt_id).ok()?;
    Some((|| {
        if dev.no_iommu || !viommu.raw.serves(dev.dev) {
            return Err(EINVAL);
        }
        if flags & !(uapi::IOMMU_HWPT_FAULT_ID_VALID | uapi::IOMMU_HWPT_ALLOC_PASID) != 0
            || data.is_empty()
        {
            return Err(EOPNOTSUPP);
        }
        let raw = viommu.raw.clone();
        Hwpt::alloc_nested_by(ctx, flags, fault_id, move |flags| {
            let domain = raw.alloc_nested(AllocFlags::from_bits_retain(flags), data)?;
            // The nested HWPT holds the vIOMMU.
            Ok((domain, KBox::new(viommu, GFP_KERNEL_ACCOUNT)?))
        })
    })())
}

/// `IOMMU_HWPT_INVALIDATE`: as `hw_pagetable` runs it, and on a vIOMMU's
/// ID, through the vIOMMU's driver.
pub(crate) fn hwpt_invalidate_ioctl(ucmd: &mut Ucmd<'_, uapi::iommu_hwpt_invalidate>) -> Result {
    hwpt::invalidate_ioctl(
        ucmd,
        |objects: &Objects, id: u32, array: &mut UserDataArray| {
            let v = objects.get::<Viommu>(id).ok()?;
            Some(v.raw.cache_invalidate(array))
        },
    )
}

/// Unbinds `idev`, for its binder: its vDEVICE goes first, its ID left a
/// tombstone (`IOMMU_DESTROY` of it: `ENOENT`), as upstream; then the
/// device, once no command uses it.
pub(crate) fn unbind_device(ctx: &Ctx, idev: Held<Device>) {
    remove_vdevice(&ctx.objects, idev.vdev_slot());
    // A failure is a use that outlived its holder (and warned).
    let _ = ctx.objects.remove_owned(idev);
}

/// Destroys the vDEVICE of a device that goes (its `slot`), if any; waits
/// for one `IOMMU_DESTROY` is tearing down meanwhile (whose ID may already
/// name another device's vDEVICE: only this one's is taken).
fn remove_vdevice(objects: &Objects, slot: &Arc<VdevSlot>) {
    let id = {
        let mut going = slot.going.lock();
        *going = true;
        slot.id.load(Acquire)
    };
    if id != 0 {
        objects.tombstone::<Vdevice>(id, |v| Arc::ptr_eq(&v.slot, slot));
    }
    // Acquire: what the vDEVICE's teardown did is seen by the unbind.
    while slot.id.load(Acquire) != 0 {
        fsleep(Delta::from_millis(1));
    }
}

/// A vDEVICE object.
pub(crate) struct Vdevice {
    /// Some but while dropped.
    raw: Option<iommufd::VDevice>,
    slot: Arc<VdevSlot>,
    id: u32,
    _viommu: Held<Viommu>,
}

impl Drop for Vdevice {
    fn drop(&mut self) {
        // The driver's part and the vIOMMU's table entry first: the device
        // waits for this to be over before it goes.
        drop(self.raw.take());
        let _ = self.slot.id.cmpxchg(self.id, 0, Release);
    }
}

/// `IOMMU_VDEVICE_ALLOC`
pub(crate) fn vdevice_alloc_ioctl(ucmd: &mut Ucmd<'_, uapi::iommu_vdevice_alloc>) -> Result {
    let c = &ucmd.cmd;
    // The virtual ID indexes the vIOMMU's table of `unsigned long`s.
    if usize::try_from(c.virt_id).is_err() {
        return Err(EINVAL);
    }
    let objects = &ucmd.ctx.objects;
    let viommu = objects.get::<Viommu>(c.viommu_id)?;
    let idev = objects.get::<Device>(c.dev_id)?;
    if idev.no_iommu() || !viommu.raw.serves(idev.dev()) {
        return Err(EINVAL);
    }
    let vslot = idev.vdev_slot();
    let going = vslot.going.lock();
    if *going {
        return Err(ENOENT);
    }
    if vslot.id.load(Acquire) != 0 {
        return Err(EEXIST);
    }
    let slot = objects.reserve()?;
    let id = slot.id();
    let raw = viommu.raw.new_vdevice(idev.face(), c.virt_id, id)?;
    let vdev = slot.new_value(Vdevice {
        raw: Some(raw),
        slot: vslot.clone(),
        id,
        _viommu: viommu.hold(),
    })?;
    // Before it is published: a destroy right after clears it.
    vslot.id.store(id, Relaxed);
    ucmd.cmd.out_vdevice_id = id;
    ucmd.respond()?;
    vdev.finalize();
    drop(going);
    Ok(())
}

/// A vEVENTQ object.
pub(crate) struct Veventq {
    q: Pin<KBox<iommufd::VEventQ>>,
    _viommu: Held<Viommu>,
}

impl QueueObj for Veventq {
    fn read(&self, buf: usize, count: usize) -> Result<usize> {
        self.q
            .read(UserSlice::new(UserPtr::from_addr(buf), count).writer())
    }

    fn poll(&self, file: &File, table: &PollTable<'_>) -> u32 {
        self.q.poll(file, table)
    }
}

/// `IOMMU_VEVENTQ_ALLOC`
pub(crate) fn veventq_alloc_ioctl(ucmd: &mut Ucmd<'_, uapi::iommu_veventq_alloc>) -> Result {
    let c = &ucmd.cmd;
    if c.flags != 0 || c.__reserved != 0 || c.type_ == uapi::IOMMU_VEVENTQ_TYPE_DEFAULT {
        return Err(EOPNOTSUPP);
    }
    if c.veventq_depth == 0 || c.veventq_depth > VEVENTQ_MAX_DEPTH {
        return Err(EINVAL);
    }
    let objects = &ucmd.ctx.objects;
    let viommu = objects.get::<Viommu>(c.viommu_id)?;
    let slot = objects.reserve()?;
    let q = viommu
        .raw
        .new_veventq(c.type_, c.veventq_depth, slot.id())?;
    let veventq = slot.new_value(Veventq {
        q,
        _viommu: viommu.hold(),
    })?;
    // Published with the file's use: destroying it waits for the close.
    fault::publish_with_file(ucmd, veventq, c"[iommufd-viommu-event]", |c, id, fd| {
        c.out_veventq_id = id;
        c.out_veventq_fd = fd;
    })
}

/// The guest memory of a HW queue, pinned and kept mapped: its pages stay
/// where the hardware reads them until the queue goes.
struct QueuePin {
    ioas: Held<Ioas>,
    iova: u64,
    last: u64,
}

impl Drop for QueuePin {
    fn drop(&mut self) {
        self.ioas.iopt.unlock_pin(self.iova, self.last);
    }
}

/// A HW queue object.
pub(crate) struct HwQueue {
    // First: the driver stops using the memory before it is unpinned.
    raw: iommufd::HwQueue,
    _pin: QueuePin,
    _viommu: Held<Viommu>,
}

impl Retire for HwQueue {
    // Counted from its creation on (see `kernel::iommu::iommufd`).
    fn publish(&self) {}

    fn retire(&self) -> bool {
        self.raw.retire()
    }
}

/// `IOMMU_HW_QUEUE_ALLOC`
pub(crate) fn hw_queue_alloc_ioctl(ucmd: &mut Ucmd<'_, uapi::iommu_hw_queue_alloc>) -> Result {
    let c = &ucmd.cmd;
    if c.flags != 0 || c.type_ == uapi::IOMMU_HW_QUEUE_TYPE_DEFAULT {
        return Err(EOPNOTSUPP);
    }
    let last = last_of(c.nesting_parent_iova, c.length)?;
    let objects = &ucmd.ctx.objects;
    let viommu = objects.get::<Viommu>(c.viommu_id)?;
    let size = viommu.raw.hw_queue_size(c.type_)?;
    // The whole pages the queue is in.
    let page = PAGE_SIZE as u64;
    let first = c.nesting_parent_iova & !(page - 1);
    let last_page = last | (page - 1);
    // Upstream counts them from the offset in the first page plus the
    // length, rounded up (`ERANGE` past 2^64), into an array of page
    // pointers (`ENOMEM` past `INT_MAX` bytes); we need no array, but
    // refuse what it refuses.
    let pages = (c.nesting_parent_iova - first)
        .checked_add(c.length)
        .and_then(|n| n.checked_add(page - 1))
        .ok_or(ERANGE)?
        / page;
    if pages > i32::MAX as u64 / core::mem::size_of::<usize>() as u64 {
        return Err(ENOMEM);
    }
    let length = usize::try_from(c.length).map_err(|_| ERANGE)?;
    let slot = objects.reserve()?;
    let ioas = viommu.hwpt.paging().ok_or(EINVAL)?.ioas.clone();
    let base = ioas.iopt.lock_pin(first, last_page)?;
    let pin = QueuePin {
        ioas,
        iova: first,
        last: last_page,
    };
    let base_pa = base + (c.nesting_parent_iova - first);
    let raw = viommu.raw.new_hw_queue(
        c.type_,
        size,
        slot.id(),
        c.index,
        c.nesting_parent_iova,
        length,
        base_pa,
    )?;
    let q = slot.new_value(HwQueue {
        raw,
        _pin: pin,
        _viommu: viommu.hold(),
    })?;
    ucmd.cmd.out_hw_queue_id = q.id();
    ucmd.respond()?;
    q.finalize_retiring();
    Ok(())
}
