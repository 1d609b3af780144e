// SPDX-License-Identifier: GPL-2.0

//! Devices bound to a context, and the paging HW page tables (HWPTs) they
//! attach to: the Rust side of upstream's `iommufd_device_*` API.
//!
//! Binding claims the device's DMA for the context.  Attaching it to an
//! IOAS finds an automatic HWPT of that IOAS the device can use, or makes
//! one: a paging domain filled with the IOAS's mappings for as long as it
//! exists.  An automatic HWPT goes away with its last device.

use kernel::iommu::domain::{self as iommu, AllocFlags, Attachment, Cap, DmaOwner, Domain, Group};
use kernel::iommu::fault::FaultSink;
use kernel::iommu::user_data::{UserData, UserDataArray};
use kernel::new_mutex;
use kernel::prelude::*;
use kernel::sync::aref::ARef;
use kernel::sync::{Arc, Mutex};
use kernel::uaccess::{UserPtr, UserSlice};

use crate::ctx::Ctx;
use crate::fault::{Fault, Sink};
use crate::ioas::Ioas;
use crate::object::{Held, Kind, Object, Reservation};
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
    /// Nested HWPTs may be built on it (`IOMMU_HWPT_ALLOC_NEST_PARENT`).
    nest_parent: bool,
    /// PASIDs may be attached to it (`IOMMU_HWPT_ALLOC_PASID`).
    pasid_compat: bool,
    /// The queue the faults of its devices go to.
    fault: Option<Held<Fault>>,
}

/// The fault queue `fault_id` for a new HWPT whose `domain` is not shared
/// yet, which from now on takes faults; none for `None`.
fn take_faults(
    ctx: &Arc<Ctx>,
    domain: &mut Domain,
    fault_id: Option<u32>,
) -> Result<Option<Held<Fault>>> {
    let Some(id) = fault_id else {
        return Ok(None);
    };
    let fault = Held::get(ctx, id)?;
    domain.take_faults();
    Ok(Some(fault))
}

impl HwptPaging {
    /// A new HWPT of `ioas` for `dev`, with `IOMMU_HWPT_ALLOC_*` `flags`
    /// (less `IOMMU_HWPT_FAULT_ID_VALID`) and the driver's `data` if any, its
    /// faults going to the queue `fault_id`.  Not published yet: the caller
    /// publishes it in `slot` once nothing can fail any more, or drops both.
    fn alloc<'a>(
        ctx: &'a Arc<Ctx>,
        ioas: Held<Ioas>,
        dev: &kernel::device::Device,
        auto: bool,
        flags: u32,
        data: Option<&UserData>,
        fault_id: Option<u32>,
    ) -> Result<(Reservation<'a>, Arc<Object<HwptPaging>>)> {
        if flags & uapi::IOMMU_HWPT_ALLOC_DIRTY_TRACKING != 0
            && !iommu::capable(dev, Cap::DirtyTracking)
        {
            return Err(EOPNOTSUPP);
        }
        let mut domain = if auto {
            Domain::alloc_paging(dev, AllocFlags::from_bits_retain(flags))?
        } else {
            Domain::alloc_paging_user(dev, AllocFlags::from_bits_retain(flags), data)?
        };
        let fault = take_faults(ctx, &mut domain, fault_id)?;
        let domain = Arc::new(domain, GFP_KERNEL_ACCOUNT)?;
        let slot = ctx.objects.reserve()?;
        ioas.iopt.add_domain(&domain)?;
        // From here the HWPT value holds the IOAS use and the domain's place
        // in the IOAS: dropping it, also when its allocation fails, gives
        // both back.
        let hwpt = slot.new_value(HwptPaging {
            ctx: ctx.clone(),
            id: slot.id(),
            ioas: Some(ioas.into_long()),
            domain,
            auto,
            nest_parent: flags & uapi::IOMMU_HWPT_ALLOC_NEST_PARENT != 0,
            pasid_compat: flags & uapi::IOMMU_HWPT_ALLOC_PASID != 0,
            fault,
        })?;
        if let (true, Some(ioas)) = (auto, &hwpt.ioas) {
            ioas.add_auto_hwpt(hwpt.id())?;
        }
        Ok((slot, hwpt))
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

/// A nested HWPT: a domain that translates through a page table user space
/// manages (a guest's), then through its paging parent.
pub(crate) struct HwptNested {
    pub(crate) domain: Arc<Domain>,
    /// PASIDs may be attached to it (`IOMMU_HWPT_ALLOC_PASID`).
    pasid_compat: bool,
    /// The faults' queue; dropped before the parent, as upstream.
    fault: Option<Held<Fault>>,
    /// The parent, which cannot be destroyed while this lives.
    _parent: Held<HwptPaging>,
}

impl HwptNested {
    /// A new nested HWPT on `parent` for `dev`, described by the driver's
    /// `data`, with its faults going to the queue `fault_id`; to be
    /// published in the returned slot, as [`HwptPaging::alloc`]'s.
    fn alloc<'a>(
        ctx: &'a Arc<Ctx>,
        parent: Held<HwptPaging>,
        dev: &kernel::device::Device,
        flags: u32,
        data: &UserData,
        fault_id: Option<u32>,
    ) -> Result<(Reservation<'a>, Arc<Object<HwptNested>>)> {
        if flags & !(uapi::IOMMU_HWPT_FAULT_ID_VALID | uapi::IOMMU_HWPT_ALLOC_PASID) != 0
            || data.is_empty()
        {
            return Err(EOPNOTSUPP);
        }
        if parent.auto || !parent.nest_parent {
            return Err(EINVAL);
        }
        let flags = flags & !uapi::IOMMU_HWPT_FAULT_ID_VALID;
        let alloc_flags = AllocFlags::from_bits_retain(flags);
        let mut domain = Domain::alloc_nested(dev, &parent.domain, alloc_flags, data)?;
        let fault = take_faults(ctx, &mut domain, fault_id)?;
        let domain = Arc::new(domain, GFP_KERNEL_ACCOUNT)?;
        let slot = ctx.objects.reserve()?;
        let hwpt = slot.new_value(HwptNested {
            domain,
            pasid_compat: flags & uapi::IOMMU_HWPT_ALLOC_PASID != 0,
            fault,
            _parent: parent,
        })?;
        Ok((slot, hwpt))
    }
}

/// A HWPT a device can attach to.  Where one is kept with a long-term use
/// of it, that use is given back once (`Device::put_hwpt`), whatever the
/// number of clones.
#[derive(Clone)]
pub(crate) enum Hwpt {
    Paging(Arc<Object<HwptPaging>>),
    Nested(Arc<Object<HwptNested>>),
}

impl Hwpt {
    fn id(&self) -> u32 {
        match self {
            Hwpt::Paging(h) => h.id(),
            Hwpt::Nested(h) => h.id(),
        }
    }

    fn domain(&self) -> &Arc<Domain> {
        match self {
            Hwpt::Paging(h) => &h.domain,
            Hwpt::Nested(h) => &h.domain,
        }
    }

    fn fault(&self) -> Option<&Held<Fault>> {
        match self {
            Hwpt::Paging(h) => h.fault.as_ref(),
            Hwpt::Nested(h) => h.fault.as_ref(),
        }
    }

    fn pasid_compat(&self) -> bool {
        match self {
            Hwpt::Paging(h) => h.pasid_compat,
            Hwpt::Nested(h) => h.pasid_compat,
        }
    }
}

struct Attached {
    hwpt: Hwpt,
    attachment: Attachment,
    /// Where the device's faults go, if the HWPT takes faults.
    sink: Option<Arc<Sink>>,
}

/// What a device is attached to: for its requests without a PASID (the
/// RID), and for each PASID.
struct Attachments {
    rid: Option<Attached>,
    pasids: KVec<(u32, Attached)>,
}

impl Attachments {
    fn get_mut(&mut self, pasid: Option<u32>) -> Option<&mut Attached> {
        match pasid {
            None => self.rid.as_mut(),
            Some(p) => self
                .pasids
                .iter_mut()
                .find(|(q, _)| *q == p)
                .map(|(_, a)| a),
        }
    }

    fn take(&mut self, pasid: Option<u32>) -> Option<Attached> {
        match pasid {
            None => self.rid.take(),
            Some(p) => {
                let i = self.pasids.iter().position(|(q, _)| *q == p)?;
                self.pasids.remove(i).ok().map(|(_, a)| a)
            }
        }
    }

    /// Whether `hwpt` may be attached for `pasid` beside what is attached:
    /// while PASIDs are attached, the RID only to HWPTs that allow PASIDs;
    /// a PASID only to such a HWPT, and only if the RID's allows them too.
    fn compatible(&self, hwpt: &Hwpt, pasid: Option<u32>) -> Result {
        let ok = match pasid {
            None => hwpt.pasid_compat() || self.pasids.is_empty(),
            Some(_) => {
                hwpt.pasid_compat() && self.rid.as_ref().is_none_or(|a| a.hwpt.pasid_compat())
            }
        };
        if ok {
            Ok(())
        } else {
            Err(EINVAL)
        }
    }
}

/// A device bound to a context.
#[pin_data(PinnedDrop)]
pub(crate) struct Device {
    ctx: Arc<Ctx>,
    /// The device's object ID, which faults are reported with.
    id: u32,
    dev: ARef<kernel::device::Device>,
    /// Held across attach, replace and detach, and by whoever raises faults
    /// on the device (see `kernel::iommu::driver::Registration::report_fault`).
    #[pin]
    attached: Mutex<Attachments>,
    /// The device's DMA ownership, which attaching takes (and each
    /// attachment holds).
    owner: Arc<DmaOwner>,
}

impl Device {
    /// Binds `dev` to the context: claims its DMA for the context.
    /// `EINVAL` if it has no IOMMU group.
    pub(crate) fn bind(
        ctx: &Arc<Ctx>,
        dev: &kernel::device::Device,
    ) -> Result<Arc<Object<Device>>> {
        Group::of(dev).ok_or(EINVAL)?;
        let owner = DmaOwner::claim(dev, ctx.owner_cookie())?;
        let slot = ctx.objects.reserve()?;
        let id = slot.id();
        let idev = slot.new_object(try_pin_init!(Device {
            ctx: ctx.clone(),
            id,
            dev: dev.into(),
            attached <- new_mutex!(Attachments {
                rid: None,
                pasids: KVec::new(),
            }),
            owner,
        }? Error))?;
        slot.finalize_held(idev.clone());
        Ok(idev)
    }

    /// The device.
    pub(crate) fn dev(&self) -> &kernel::device::Device {
        &self.dev
    }

    /// Runs `f` with attach changes of the device excluded.
    pub(crate) fn with_attach_locked<R>(&self, f: impl FnOnce() -> R) -> R {
        let _guard = self.attached.lock();
        f()
    }

    /// The sink for the device's faults on `hwpt`, if it takes faults.
    fn sink_for(&self, hwpt: &Hwpt) -> Result<Option<Arc<Sink>>> {
        hwpt.fault()
            .map(|f| Sink::new(f.obj(), self.id))
            .transpose()
    }

    /// Finishes leaving `hwpt`, whose attachment is gone: answers the faults
    /// still waiting from it and gives the HWPT's use back.
    fn leave(&self, hwpt: Hwpt, sink: Option<Arc<Sink>>) {
        if let Some(sink) = sink {
            sink.answer_left();
        }
        self.put_hwpt(hwpt);
    }

    /// Attaches the device to `pt_id`, an IOAS (through an automatic HWPT)
    /// or a HWPT.  Returns the HWPT's ID.  `EBUSY` if attached.
    pub(crate) fn attach(&self, pt_id: u32) -> Result<u32> {
        self.attach_pasid(None, pt_id)
    }

    /// Attaches the device's requests with PASID `pasid` (or without, for
    /// `None`) to `pt_id`; only a HWPT for a PASID.  Returns the HWPT's
    /// ID.  `EBUSY` if already attached, as upstream.
    pub(crate) fn attach_pasid(&self, pasid: Option<u32>, pt_id: u32) -> Result<u32> {
        let mut st = self.attached.lock();
        if st.get_mut(pasid).is_some() {
            return Err(EBUSY);
        }
        if pasid.is_some() {
            // So that recording the attachment below cannot fail.
            st.pasids.reserve(1, GFP_KERNEL_ACCOUNT)?;
        }
        let hwpt = self.hwpt_for(pt_id, pasid)?;
        let res = st.compatible(&hwpt, pasid).and_then(|()| {
            let sink = self.sink_for(&hwpt)?;
            let s = dyn_sink(&sink);
            let attachment = match pasid {
                None => Attachment::attach(hwpt.domain(), &self.owner, s)?,
                Some(p) => Attachment::attach_pasid(hwpt.domain(), &self.owner, p, s)?,
            };
            Ok((attachment, sink))
        });
        let (attachment, sink) = match res {
            Ok(r) => r,
            Err(e) => {
                drop(st);
                self.put_hwpt(hwpt);
                return Err(e);
            }
        };
        let id = hwpt.id();
        let a = Attached {
            hwpt,
            attachment,
            sink,
        };
        match pasid {
            None => st.rid = Some(a),
            // Room was reserved above.
            Some(p) => st.pasids.push_within_capacity((p, a)).map_err(|_| ENOMEM)?,
        }
        Ok(id)
    }

    /// The HWPT to attach to for `pt_id`, with a use for the caller: an
    /// automatic one for an IOAS (not for a PASID: `EINVAL`), else the HWPT
    /// `pt_id`.
    fn hwpt_for(&self, pt_id: u32, pasid: Option<u32>) -> Result<Hwpt> {
        let objects = &self.ctx.objects;
        if let Ok(ioas) = Held::<Ioas>::get(&self.ctx, pt_id) {
            if pasid.is_some() {
                return Err(EINVAL);
            }
            return self.auto_hwpt(ioas).map(Hwpt::Paging);
        }
        if let Ok(h) = objects.get_long::<HwptPaging>(pt_id) {
            return Ok(Hwpt::Paging(h));
        }
        match objects.get_long::<HwptNested>(pt_id) {
            Ok(h) => Ok(Hwpt::Nested(h)),
            Err(_) if objects.exists(pt_id) => Err(EINVAL),
            Err(e) => Err(e),
        }
    }

    /// An automatic HWPT of `ioas` with a use for the caller.
    fn auto_hwpt(&self, ioas: Held<Ioas>) -> Result<Arc<Object<HwptPaging>>> {
        let objects = &self.ctx.objects;
        // Every domain of the mock suits every device: reuse the first.
        for id in ioas.auto_hwpts()? {
            if let Ok(hwpt) = objects.get_long::<HwptPaging>(id) {
                return Ok(hwpt);
            }
        }
        let (slot, hwpt) = HwptPaging::alloc(&self.ctx, ioas, &self.dev, true, 0, None, None)?;
        // Published with a use for the caller, which nobody can destroy
        // before the caller's attach is through or undone.
        slot.finalize_held(hwpt.clone());
        Ok(hwpt)
    }

    /// Gives back a use of `hwpt`, destroying it if it was automatic and
    /// this was its last device.
    fn put_hwpt(&self, hwpt: Hwpt) {
        match hwpt {
            // In one step: between a put and a destroy by ID, the HWPT could
            // be destroyed by the user and its ID given to a new object.
            Hwpt::Paging(h) if h.auto => self.ctx.objects.put_and_try_destroy(h),
            hwpt => {
                let id = hwpt.id();
                drop(hwpt);
                self.ctx.objects.put_long(id);
            }
        }
    }

    /// Detaches the device (its RID), if attached.
    pub(crate) fn detach(&self) {
        self.detach_pasid(None);
    }

    /// Detaches PASID `pasid` (the RID for `None`), if attached.
    pub(crate) fn detach_pasid(&self, pasid: Option<u32>) {
        let mut st = self.attached.lock();
        let Some(Attached {
            hwpt,
            attachment,
            sink,
        }) = st.take(pasid)
        else {
            return;
        };
        // Detached under the lock, which whoever raises faults holds.
        drop(attachment);
        drop(st);
        self.leave(hwpt, sink);
    }

    /// The domain PASID `pasid` (the RID for `None`) is attached to, if
    /// any.
    pub(crate) fn attached_domain(&self, pasid: Option<u32>) -> Option<Arc<Domain>> {
        self.attached
            .lock()
            .get_mut(pasid)
            .map(|a| a.hwpt.domain().clone())
    }

    /// Moves the attached device to `pt_id` (see [`Device::attach`]).
    pub(crate) fn replace(&self, pt_id: u32) -> Result<u32> {
        self.replace_pasid(None, pt_id)
    }

    /// Moves PASID `pasid` (the RID for `None`), attached, to `pt_id`;
    /// `EINVAL` if not attached.
    pub(crate) fn replace_pasid(&self, pasid: Option<u32>, pt_id: u32) -> Result<u32> {
        let mut guard = self.attached.lock();
        let st = &mut *guard;
        let Some(cur_id) = st.get_mut(pasid).map(|cur| cur.hwpt.id()) else {
            return Err(EINVAL);
        };
        let hwpt = self.hwpt_for(pt_id, pasid)?;
        let id = hwpt.id();
        if id == cur_id {
            drop(guard);
            self.put_hwpt(hwpt);
            return Ok(id);
        }
        let res = st.compatible(&hwpt, pasid).and_then(|()| {
            let sink = self.sink_for(&hwpt)?;
            let cur = st.get_mut(pasid).ok_or(EINVAL)?;
            cur.attachment.replace(hwpt.domain(), dyn_sink(&sink))?;
            // The use taken on `hwpt` moves to the attachment.
            let old = core::mem::replace(&mut cur.hwpt, hwpt.clone());
            Ok((old, core::mem::replace(&mut cur.sink, sink)))
        });
        drop(guard);
        match res {
            Ok((old, old_sink)) => {
                self.leave(old, old_sink);
                Ok(id)
            }
            Err(e) => {
                self.put_hwpt(hwpt);
                Err(e)
            }
        }
    }
}

#[pinned_drop]
impl PinnedDrop for Device {
    fn drop(self: Pin<&mut Self>) {
        // PASIDs first: the RID's HWPT may be what allows them.
        loop {
            let next = self.attached.lock().pasids.first().map(|(p, _)| *p);
            match next {
                Some(p) => self.detach_pasid(Some(p)),
                None => break,
            }
        }
        self.detach();
    }
}

/// `sink` as the core's attachments take it.
fn dyn_sink(sink: &Option<Arc<Sink>>) -> Option<Arc<dyn FaultSink>> {
    sink.clone().map(|s| s as Arc<dyn FaultSink>)
}

/// The `IOMMU_HWPT_ALLOC_*` flags a paging HWPT may have.
const HWPT_ALLOC_FLAGS: u32 = uapi::IOMMU_HWPT_ALLOC_NEST_PARENT
    | uapi::IOMMU_HWPT_ALLOC_DIRTY_TRACKING
    | uapi::IOMMU_HWPT_FAULT_ID_VALID
    | uapi::IOMMU_HWPT_ALLOC_PASID;

/// `IOMMU_HWPT_ALLOC`: a paging HWPT of an IOAS, or a nested HWPT on a
/// paging one, for a device.
pub(crate) fn hwpt_alloc_ioctl(ucmd: &mut Ucmd<'_, uapi::iommu_hwpt_alloc>) -> Result {
    let c = &ucmd.cmd;
    if c.__reserved != 0 || c.__reserved2 != 0 {
        return Err(EOPNOTSUPP);
    }
    if (c.data_type == uapi::IOMMU_HWPT_DATA_NONE) != (c.data_len == 0) {
        return Err(EINVAL);
    }
    let ctx = ucmd.handle.arc();
    let objects = &ctx.objects;
    let idev = objects.get::<Device>(c.dev_id)?;
    let flags = c.flags;
    let fault_id = (flags & uapi::IOMMU_HWPT_FAULT_ID_VALID != 0).then_some(c.fault_id);
    let data = UserData::new(c.data_type, c.data_uptr, c.data_len as usize);
    if let Ok(ioas) = Held::<Ioas>::get(&ctx, c.pt_id) {
        if flags & !HWPT_ALLOC_FLAGS != 0
            || (fault_id.is_some() && flags & uapi::IOMMU_HWPT_ALLOC_NEST_PARENT != 0)
        {
            return Err(EOPNOTSUPP);
        }
        let flags = flags & !uapi::IOMMU_HWPT_FAULT_ID_VALID;
        let data = (!data.is_empty()).then_some(&data);
        let (slot, hwpt) = HwptPaging::alloc(&ctx, ioas, &idev.dev, false, flags, data, fault_id)?;
        respond_then_publish(ucmd, slot, hwpt)
    } else if let Ok(parent) = Held::<HwptPaging>::get(&ctx, c.pt_id) {
        let (slot, hwpt) = HwptNested::alloc(&ctx, parent, &idev.dev, flags, &data, fault_id)?;
        respond_then_publish(ucmd, slot, hwpt)
    } else {
        // A vIOMMU (not implemented yet), another kind of object or none.
        Err(EINVAL)
    }
}

/// Tells the caller of `IOMMU_HWPT_ALLOC` the new HWPT's ID and only then
/// publishes it: a failed copy-out drops it unseen.
fn respond_then_publish<T: Kind>(
    ucmd: &mut Ucmd<'_, uapi::iommu_hwpt_alloc>,
    slot: Reservation<'_>,
    hwpt: Arc<Object<T>>,
) -> Result {
    ucmd.cmd.out_hwpt_id = slot.id();
    ucmd.respond()?;
    slot.finalize(hwpt);
    Ok(())
}

/// `IOMMU_HWPT_SET_DIRTY_TRACKING`: starts or stops dirty tracking of a
/// paging HWPT.
pub(crate) fn set_dirty_tracking_ioctl(
    ucmd: &mut Ucmd<'_, uapi::iommu_hwpt_set_dirty_tracking>,
) -> Result {
    let c = &ucmd.cmd;
    if c.flags & !uapi::IOMMU_HWPT_DIRTY_TRACKING_ENABLE != 0 {
        return Err(EOPNOTSUPP);
    }
    let hwpt = ucmd.ctx.objects.get::<HwptPaging>(c.hwpt_id)?;
    let ioas = hwpt.ioas.as_ref().ok_or(ENOENT)?;
    let enable = c.flags & uapi::IOMMU_HWPT_DIRTY_TRACKING_ENABLE != 0;
    ioas.iopt.set_dirty_tracking(&hwpt.domain, enable)
}

/// `IOMMU_HWPT_GET_DIRTY_BITMAP`: reads (and clears) what DMA wrote in a
/// range of a paging HWPT into a bitmap in user memory.
pub(crate) fn get_dirty_bitmap_ioctl(
    ucmd: &mut Ucmd<'_, uapi::iommu_hwpt_get_dirty_bitmap>,
) -> Result {
    let c = &ucmd.cmd;
    if c.flags & !uapi::IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR != 0 || c.__reserved != 0 {
        return Err(EOPNOTSUPP);
    }
    let hwpt = ucmd.ctx.objects.get::<HwptPaging>(c.hwpt_id)?;
    let ioas = hwpt.ioas.as_ref().ok_or(ENOENT)?;
    ioas.iopt
        .read_and_clear_dirty(&hwpt.domain, c.flags, c.iova, c.length, c.page_size, c.data)
}

/// `IOMMU_HWPT_INVALIDATE`'s bound on entries per call, as upstream.
const INVALIDATE_ENTRY_NUM_MAX: u32 = 1 << 19;

/// `IOMMU_HWPT_INVALIDATE`: has the driver invalidate its caches of the
/// page table of a nested HWPT.  Tells user space how many entries were
/// handled, also on failure.
pub(crate) fn hwpt_invalidate_ioctl(ucmd: &mut Ucmd<'_, uapi::iommu_hwpt_invalidate>) -> Result {
    let (done, res) = invalidate(ucmd);
    ucmd.cmd.entry_num = done;
    ucmd.respond()?;
    res
}

/// Runs an invalidation: the entries handled, and how it ended.
fn invalidate(ucmd: &Ucmd<'_, uapi::iommu_hwpt_invalidate>) -> (u32, Result) {
    let c = &ucmd.cmd;
    if c.__reserved != 0 {
        return (0, Err(EOPNOTSUPP));
    }
    if c.entry_num != 0
        && (c.data_uptr == 0
            || c.entry_len == 0
            || c.entry_len as usize > kernel::page::PAGE_SIZE
            || c.entry_num > INVALIDATE_ENTRY_NUM_MAX)
    {
        return (0, Err(EINVAL));
    }
    let objects = &ucmd.ctx.objects;
    let hwpt = match objects.get::<HwptNested>(c.hwpt_id) {
        Ok(h) => h,
        // A vIOMMU (not implemented yet) or another kind of object.
        Err(_) if objects.exists(c.hwpt_id) => return (0, Err(EINVAL)),
        Err(e) => return (0, Err(e)),
    };
    let mut array = UserDataArray::new(c.data_type, c.data_uptr, c.entry_len, c.entry_num);
    let res = hwpt.domain.cache_invalidate_user(&mut array);
    (array.entry_num(), res)
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
    if iommu::capable(&idev.dev, Cap::DirtyTracking) {
        caps |= u64::from(uapi::IOMMU_HW_CAP_DIRTY_TRACKING);
    }
    if !iommu::capable(&idev.dev, Cap::PciAtsSupported) {
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
