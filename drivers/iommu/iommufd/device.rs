// SPDX-License-Identifier: GPL-2.0

//! Devices bound to a context, attached to HW page tables (HWPTs): the Rust
//! side of upstream's `iommufd_device_*` API.
//!
//! Binding claims the device's DMA for the context.  Attaching it to an
//! IOAS finds an automatic HWPT of that IOAS the device can use, or makes
//! one (see `hw_pagetable`); attaching to a HWPT uses that one.
//!
//! A device without an IOMMU (no-IOMMU mode, `CONFIG_IOMMUFD_NOIOMMU`, for
//! VFIO's `enable_unsafe_noiommu_mode`) binds too, as upstream: nothing is
//! claimed or attached, and its HWPTs are software page tables that only
//! record where the IOAS's memory is, which user space looks up
//! (`IOMMU_IOAS_NOIOMMU_GET_PA`) to program the device's DMA with physical
//! addresses.

use kernel::iommu::domain::{self as iommu, Attachment, Cap, DmaOwner, Domain, Group, ResvKind};
use kernel::iommu::fault::FaultSink;
use kernel::iommu::iommufd::DeviceFace;
use kernel::iommu::user_data::UserData;
use kernel::new_mutex;
use kernel::prelude::*;
use kernel::sync::aref::ARef;
use kernel::sync::atomic::Atomic;
use kernel::sync::{Arc, Mutex};
use kernel::uaccess::{UserPtr, UserSlice};

use crate::ctx::{Ctx, PendingObj};
use crate::fault::Sink;
use crate::group::{self, GroupState, IGroup, Left, Member, Members, Shared};
use crate::hw_pagetable::{no_iommu, ForDev, Hwpt};
use crate::ioas::Ioas;
use crate::object::Held;
use crate::uapi;
use crate::ucmd::Ucmd;

/// A PASID's attachment.
struct Attached {
    hwpt: Held<Hwpt>,
    /// None for a device without an IOMMU.
    attachment: Option<Attachment>,
    /// Where the device's faults go, if the HWPT takes faults.
    sink: Option<Arc<Sink>>,
}

/// What a group's RID attachment translates through: a HWPT, with a use of
/// it for the group, and where the faults that come through it go.
pub(crate) struct RidPt {
    hwpt: Held<Hwpt>,
    sink: Option<Arc<Sink>>,
}

/// A group of bound devices, as this layer keeps it.
type DevGroup = IGroup<RidPt>;

/// Whether `hwpt` may be attached for `pasid` beside what the group has
/// attached (`g`): while PASIDs are attached, the RID only to HWPTs that
/// allow PASIDs; a PASID only to such a HWPT, and only if the RID's allows
/// them too.
fn compatible(g: &GroupState<RidPt>, hwpt: &Hwpt, pasid: Option<u32>) -> Result {
    let ok = match pasid {
        None => hwpt.pasid_compat || g.pasids == 0,
        Some(_) => hwpt.pasid_compat && g.rid.as_ref().is_none_or(|s| s.pt.hwpt.pasid_compat),
    };
    if ok {
        Ok(())
    } else {
        Err(EINVAL)
    }
}

/// A device bound to a context.
#[pin_data(PinnedDrop)]
pub(crate) struct Device {
    ctx: Arc<Ctx>,
    /// The device's object ID, which faults are reported with.
    id: u32,
    dev: ARef<kernel::device::Device>,
    /// The device's PASID attachments; its RID attaches through its group
    /// (see [`IGroup`]), whose lock is taken inside this one.
    #[pin]
    pasids: Mutex<KVec<(u32, Attached)>>,
    /// The device's DMA ownership: attaching takes it, and each
    /// attachment holds it, so the DMA goes back only after the last one.
    /// None for a device without an IOMMU, whose DMA nothing controls.
    owner: Option<Arc<DmaOwner>>,
    /// The device's group in the context, which its RID attaches through.
    group: GroupRef,
    /// What the kernel's built-in iommufd helpers see of the device (a
    /// vDEVICE's `idev`): C layout.
    face: Arc<DeviceFace>,
    /// Its vDEVICE, if any (made and taken by `viommu`).
    vdev: Arc<VdevSlot>,
}

/// What a bound device keeps of its vDEVICE: at most one, which goes when
/// the device does (`viommu` makes and takes it).
#[pin_data]
pub(crate) struct VdevSlot {
    /// Held while a vDEVICE is made for the device and while the device
    /// goes; true once it goes (no new vDEVICE: `ENOENT`).
    #[pin]
    pub(crate) going: Mutex<bool>,
    /// The ID of the device's vDEVICE, 0 if none.
    pub(crate) id: Atomic<u32>,
}

impl VdevSlot {
    fn new() -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Self {
                going <- new_mutex!(false),
                id: Atomic::new(0),
            }),
            GFP_KERNEL_ACCOUNT,
        )
    }
}

/// A bound device's place in its context's groups, given back on drop.
struct GroupRef {
    ctx: Arc<Ctx>,
    group: Arc<DevGroup>,
    /// In the context's list (not a no-IOMMU device's group of its own).
    listed: bool,
}

impl Drop for GroupRef {
    fn drop(&mut self) {
        if self.listed {
            self.ctx.groups.lock().put(&*self.group);
        }
    }
}

impl core::ops::Deref for GroupRef {
    type Target = DevGroup;

    fn deref(&self) -> &DevGroup {
        &self.group
    }
}

impl Device {
    /// Binds `dev` to the context: claims its DMA for the context.
    /// `EINVAL` if its IOMMU cannot keep DMA cache coherent (every mapping
    /// asks for it, and user space has no way to flush), which includes
    /// having no IOMMU.  A device of the platform (`platform`; not the
    /// selftest's mock) must also be in a group whose MSIs the platform
    /// isolates (by interrupt remapping): `EPERM` if not, unless the
    /// `allow_unsafe_interrupts` module parameter is set, as upstream.
    /// A device without an IOMMU binds in no-IOMMU mode (see the module
    /// documentation) when the kernel has it: no check, nothing claimed,
    /// a group of its own.
    pub(crate) fn bind(
        ctx: &Arc<Ctx>,
        dev: &kernel::device::Device,
        platform: bool,
    ) -> Result<Held<Device>> {
        if no_iommu(dev) {
            let igroup = GroupRef {
                ctx: ctx.clone(),
                group: group::Groups::solo()?,
                listed: false,
            };
            return Self::new(ctx, dev, None, igroup);
        }
        if !iommu::capable(dev, Cap::CacheCoherency) {
            return Err(EINVAL);
        }
        let group = Group::of(dev).ok_or(ENODEV)?;
        if platform && !group.has_isolated_msi() {
            if !crate::ffi::allow_unsafe_interrupts() {
                dev_info!(
                    dev,
                    "iommufd: not bound: the platform cannot isolate its MSIs (no interrupt remapping?); the allow_unsafe_interrupts module parameter overrides this\n"
                );
                return Err(EPERM);
            }
            dev_warn!(
                dev,
                "iommufd: bound although the platform cannot isolate its MSIs: its DMA can raise interrupts outside this context (allow_unsafe_interrupts)\n"
            );
        }
        let owner = DmaOwner::claim(dev, ctx.owner_cookie())?;
        let igroup = GroupRef {
            ctx: ctx.clone(),
            group: ctx.groups.lock().get(group.key())?,
            listed: true,
        };
        drop(group);
        Self::new(ctx, dev, Some(owner), igroup)
    }

    /// The bound device's object, published.
    fn new(
        ctx: &Arc<Ctx>,
        dev: &kernel::device::Device,
        owner: Option<Arc<DmaOwner>>,
        igroup: GroupRef,
    ) -> Result<Held<Device>> {
        let slot = ctx.objects.reserve()?;
        let id = slot.id();
        let face = DeviceFace::new(&ctx.face, dev.into(), id)?;
        let vdev = VdevSlot::new()?;
        let idev = slot.new_object(try_pin_init!(Device {
            ctx: ctx.clone(),
            id,
            dev: dev.into(),
            pasids <- new_mutex!(KVec::new()),
            owner,
            group: igroup,
            face,
            vdev,
        }? Error))?;
        Ok(idev.finalize_held())
    }

    /// Bound in no-IOMMU mode: no IOMMU translates the device's DMA.
    pub(crate) fn no_iommu(&self) -> bool {
        self.owner.is_none()
    }

    /// The device's C face.
    pub(crate) fn face(&self) -> &Arc<DeviceFace> {
        &self.face
    }

    /// Where the device's vDEVICE is kept.
    pub(crate) fn vdev_slot(&self) -> &Arc<VdevSlot> {
        &self.vdev
    }

    /// The device.
    pub(crate) fn dev(&self) -> &kernel::device::Device {
        &self.dev
    }

    /// The device, as HWPTs are made for it.
    fn for_dev(&self) -> ForDev<'_> {
        ForDev {
            dev: &self.dev,
            no_iommu: self.owner.is_none(),
        }
    }

    /// Attaches `domain` for the RID (`pasid` None) or a PASID, with
    /// `sink` taking the faults that come through it: nothing to attach
    /// for a device without an IOMMU.
    fn attach_domain(
        &self,
        domain: &Arc<Domain>,
        pasid: Option<u32>,
        sink: &Option<Arc<Sink>>,
    ) -> Result<Option<Attachment>> {
        let Some(owner) = &self.owner else {
            return Ok(None);
        };
        match pasid {
            None => Attachment::attach(domain, owner, dyn_sink(sink)),
            Some(p) => Attachment::attach_pasid(domain, owner, p, dyn_sink(sink)),
        }
        .map(Some)
    }

    /// The IOAS whose usable IOVA the device's reserved regions leave while
    /// its RID is attached to `hwpt` (see [`reserve_members`]): none for a
    /// device without an IOMMU, which has no such regions, as upstream.
    fn resv_ioas<'a>(&self, hwpt: &'a Hwpt) -> Option<&'a Ioas> {
        self.owner.as_ref().and_then(|_| rid_ioas(hwpt))
    }

    /// The sink for the device's faults on `hwpt`, if it takes faults.
    fn sink_for(&self, hwpt: &Hwpt) -> Result<Option<Arc<Sink>>> {
        hwpt.fault
            .as_ref()
            .map(|f| Sink::new(f.obj(), self.id))
            .transpose()
    }

    /// Finishes leaving `hwpt`, whose attachment is gone: answers the faults
    /// still waiting from it and gives the HWPT's use back.
    fn leave(&self, hwpt: Held<Hwpt>, sink: Option<Arc<Sink>>) {
        if let Some(sink) = sink {
            sink.answer_left();
        }
        Hwpt::put(&self.ctx.objects, hwpt);
    }

    /// Identifies the device among its group's members and the holders of
    /// an IOAS's reserved ranges (its address: it is pinned).
    fn key(&self) -> usize {
        core::ptr::from_ref(self) as usize
    }

    /// The device as a member of its group's RID attachment.
    fn member(&self) -> Member {
        Member {
            key: self.key(),
            dev: self.dev.clone(),
        }
    }

    /// Attaches the device to `pt_id`, an IOAS (through an automatic HWPT)
    /// or a HWPT.  Returns the HWPT's ID.  `EBUSY` if attached.
    #[cfg_attr(not(CONFIG_IOMMUFD_TEST), allow(dead_code))] // The selftest's.
    pub(crate) fn attach(&self, pt_id: u32) -> Result<u32> {
        self.attach_pasid(None, pt_id)
    }

    /// Attaches the device's requests with PASID `pasid` (or without, for
    /// `None`) to `pt_id`; only a HWPT for a PASID.  Returns the HWPT's
    /// ID.  `EBUSY` if already attached, as upstream.
    pub(crate) fn attach_pasid(&self, pasid: Option<u32>, pt_id: u32) -> Result<u32> {
        match pasid {
            None => self.attach_rid(pt_id),
            Some(p) => self.attach_one_pasid(p, pt_id),
        }
    }

    /// The RID joins its group's attachment (to `pt_id`'s domain only:
    /// `EINVAL` for another), or attaches the group.
    fn attach_rid(&self, pt_id: u32) -> Result<u32> {
        /// What the search for a HWPT did.
        enum Done {
            /// The device joined the group's attachment.
            Joined,
            /// It attached the group (with these members).
            Made(Option<Attachment>, Option<Arc<Sink>>, Members),
        }
        let _pasids = self.pasids.lock();
        let mut g = self.group.lock();
        if g.rid.as_ref().is_some_and(|s| s.members().has(self.key())) {
            return Err(EBUSY);
        }
        let (hwpt, done) = self.with_target(pt_id, None, |hwpt| {
            compatible(&g, hwpt, None)?;
            let ioas = self.resv_ioas(hwpt);
            if let Some(s) = &mut g.rid {
                if !Arc::ptr_eq(&s.pt.hwpt.domain, &hwpt.domain) {
                    return Err(EINVAL);
                }
                reserve_members(core::iter::once(&self.member()), ioas)?;
                s.join(self.member())
                    .inspect_err(|_| unreserve_members(core::iter::once(&self.member()), ioas))?;
                return Ok(Done::Joined);
            }
            let members = Members::new(self.member())?;
            let sink = self.sink_for(hwpt)?;
            reserve_members(members.iter(), ioas)?;
            match self.attach_domain(&hwpt.domain, None, &sink) {
                Ok(a) => Ok(Done::Made(a, sink, members)),
                Err(e) => {
                    unreserve_members(members.iter(), ioas);
                    Err(e)
                }
            }
        })?;
        let id = hwpt.id();
        match done {
            Done::Made(attachment, sink, members) => {
                g.rid = Some(Shared::new(attachment, RidPt { hwpt, sink }, members));
            }
            Done::Joined => {
                // The group holds its HWPT already.
                drop(g);
                Hwpt::put(&self.ctx.objects, hwpt);
            }
        }
        Ok(id)
    }

    /// Attaches PASID `pasid` to the HWPT `pt_id`.
    fn attach_one_pasid(&self, pasid: u32, pt_id: u32) -> Result<u32> {
        let mut pasids = self.pasids.lock();
        if pasids.iter().any(|(p, _)| *p == pasid) {
            return Err(EBUSY);
        }
        // So that recording the attachment below cannot fail.
        pasids.reserve(1, GFP_KERNEL_ACCOUNT)?;
        let mut g = self.group.lock();
        let (hwpt, (attachment, sink)) = self.with_target(pt_id, Some(pasid), |hwpt| {
            compatible(&g, hwpt, Some(pasid))?;
            let sink = self.sink_for(hwpt)?;
            let a = self.attach_domain(&hwpt.domain, Some(pasid), &sink)?;
            Ok((a, sink))
        })?;
        g.pasids += 1;
        drop(g);
        let id = hwpt.id();
        let a = Attached {
            hwpt,
            attachment,
            sink,
        };
        // Room was reserved above.
        pasids
            .push_within_capacity((pasid, a))
            .map_err(|_| ENOMEM)?;
        Ok(id)
    }

    /// Runs `f` on the HWPT to attach to for `pt_id`: for an IOAS (not for
    /// a PASID: `EINVAL`) each automatic HWPT of it in turn, then a new one
    /// (see [`Hwpt::attach_auto`]); else the HWPT `pt_id`.  Returns the
    /// HWPT `f` accepted, with a use for the caller, and what `f` returned.
    fn with_target<R>(
        &self,
        pt_id: u32,
        pasid: Option<u32>,
        mut f: impl FnMut(&Hwpt) -> Result<R>,
    ) -> Result<(Held<Hwpt>, R)> {
        let objects = &self.ctx.objects;
        if let Ok(ioas) = objects.get_long::<Ioas>(pt_id) {
            if pasid.is_some() {
                return Err(EINVAL);
            }
            return Hwpt::attach_auto(&self.ctx, ioas, self.for_dev(), |h| f(h));
        }
        let hwpt = match objects.get_long::<Hwpt>(pt_id) {
            Ok(h) => h,
            Err(_) if objects.exists(pt_id) => return Err(EINVAL),
            Err(e) => return Err(e),
        };
        match f(&hwpt) {
            Ok(r) => Ok((hwpt, r)),
            Err(e) => {
                Hwpt::put(objects, hwpt);
                Err(e)
            }
        }
    }

    /// Detaches the device (its RID), if attached.
    pub(crate) fn detach(&self) {
        self.detach_pasid(None);
    }

    /// Detaches PASID `pasid` (the RID for `None`), if attached.
    pub(crate) fn detach_pasid(&self, pasid: Option<u32>) {
        let mut pasids = self.pasids.lock();
        let mut g = self.group.lock();
        let Some(p) = pasid else {
            // The RID leaves its group's attachment; the last one detaches
            // the group.  Its reserved regions go once it has left.
            match group::leave(&mut g.rid, self.key()) {
                Left::NotAttached => {}
                Left::Others => {
                    if let Some(s) = &g.rid {
                        let ioas = self.resv_ioas(&s.pt.hwpt);
                        unreserve_members(core::iter::once(&self.member()), ioas);
                    }
                }
                Left::Last(pt) => {
                    unreserve_members(core::iter::once(&self.member()), self.resv_ioas(&pt.hwpt));
                    drop(g);
                    drop(pasids);
                    self.leave(pt.hwpt, pt.sink);
                }
            }
            return;
        };
        let Some(i) = pasids.iter().position(|(q, _)| *q == p) else {
            return;
        };
        let Ok((_, a)) = pasids.remove(i) else {
            return;
        };
        // Detached under the locks.
        drop(a.attachment);
        g.pasids -= 1;
        drop(g);
        drop(pasids);
        self.leave(a.hwpt, a.sink);
    }

    /// The domain PASID `pasid` (the RID for `None`) is attached to, if
    /// any.
    #[cfg_attr(not(CONFIG_IOMMUFD_TEST), allow(dead_code))] // The selftest's.
    pub(crate) fn attached_domain(&self, pasid: Option<u32>) -> Option<Arc<Domain>> {
        let pasids = self.pasids.lock();
        match pasid {
            None => self
                .group
                .lock()
                .rid
                .as_ref()
                .filter(|s| s.members().has(self.key()))
                .map(|s| s.pt.hwpt.domain.clone()),
            Some(p) => pasids
                .iter()
                .find(|(q, _)| *q == p)
                .map(|(_, a)| a.hwpt.domain.clone()),
        }
    }

    /// Moves the attached device to `pt_id` (see [`Device::attach`]).
    #[cfg_attr(not(CONFIG_IOMMUFD_TEST), allow(dead_code))] // The selftest's.
    pub(crate) fn replace(&self, pt_id: u32) -> Result<u32> {
        self.replace_pasid(None, pt_id)
    }

    /// Moves PASID `pasid` (the RID for `None`), attached, to `pt_id`;
    /// `EINVAL` if not attached.  The RID moves its whole group: every
    /// device attached through the group's attachment, with their
    /// reserved regions, as upstream.
    pub(crate) fn replace_pasid(&self, pasid: Option<u32>, pt_id: u32) -> Result<u32> {
        match pasid {
            None => self.replace_rid(pt_id),
            Some(p) => self.replace_one_pasid(p, pt_id),
        }
    }

    /// [`Device::replace_pasid`] of the RID.
    fn replace_rid(&self, pt_id: u32) -> Result<u32> {
        let pasids = self.pasids.lock();
        let mut g = self.group.lock();
        if !g.rid.as_ref().is_some_and(|s| s.members().has(self.key())) {
            return Err(EINVAL);
        }
        let (hwpt, moved) = self.with_target(pt_id, None, |hwpt| {
            compatible(&g, hwpt, None)?;
            let s = g.rid.as_mut().ok_or(EINVAL)?;
            if core::ptr::eq(hwpt, &**s.pt.hwpt) {
                // Already there: nothing changes.
                return Ok(None);
            }
            let sink = self.sink_for(hwpt)?;
            // The members' reserved regions move when the IOAS changes;
            // they stay where it does not.
            let (new_ioas, old_ioas) = (self.resv_ioas(hwpt), self.resv_ioas(&s.pt.hwpt));
            let moves = match (new_ioas, old_ioas) {
                (Some(n), Some(o)) => !core::ptr::eq(n, o),
                (n, o) => n.is_some() || o.is_some(),
            };
            if moves {
                reserve_members(s.members().iter(), new_ioas)?;
            }
            let replaced = match &mut s.attachment {
                Some(a) => a.replace(&hwpt.domain, dyn_sink(&sink)),
                None => Ok(()),
            };
            if let Err(e) = replaced {
                if moves {
                    unreserve_members(s.members().iter(), new_ioas);
                }
                return Err(e);
            }
            if moves {
                unreserve_members(s.members().iter(), old_ioas);
            }
            Ok(Some(sink))
        })?;
        let id = hwpt.id();
        let old = match (moved, g.rid.as_mut()) {
            // The use taken on `hwpt` moves to the group.
            (Some(sink), Some(s)) => Some(core::mem::replace(&mut s.pt, RidPt { hwpt, sink })),
            (moved, _) => {
                // Attached there already (the new use goes back); or the
                // attachment is gone under our lock, which cannot be.
                kernel::warn_on!(moved.is_some());
                drop(g);
                drop(pasids);
                Hwpt::put(&self.ctx.objects, hwpt);
                return Ok(id);
            }
        };
        drop(g);
        drop(pasids);
        if let Some(old) = old {
            self.leave(old.hwpt, old.sink);
        }
        Ok(id)
    }

    /// [`Device::replace_pasid`] of a PASID.
    fn replace_one_pasid(&self, pasid: u32, pt_id: u32) -> Result<u32> {
        let mut pasids = self.pasids.lock();
        let g = self.group.lock();
        let Some(i) = pasids.iter().position(|(p, _)| *p == pasid) else {
            return Err(EINVAL);
        };
        let cur = pasids[i].1.hwpt.obj().clone();
        let (hwpt, moved) = self.with_target(pt_id, Some(pasid), |hwpt| {
            if core::ptr::eq(hwpt, &**cur) {
                return Ok(None);
            }
            compatible(&g, hwpt, Some(pasid))?;
            let sink = self.sink_for(hwpt)?;
            if let Some(a) = &mut pasids[i].1.attachment {
                a.replace(&hwpt.domain, dyn_sink(&sink))?;
            }
            Ok(Some(sink))
        })?;
        drop(g);
        let id = hwpt.id();
        let Some(sink) = moved else {
            drop(pasids);
            Hwpt::put(&self.ctx.objects, hwpt);
            return Ok(id);
        };
        let a = &mut pasids[i].1;
        let old_hwpt = core::mem::replace(&mut a.hwpt, hwpt);
        let old_sink = core::mem::replace(&mut a.sink, sink);
        drop(pasids);
        self.leave(old_hwpt, old_sink);
        Ok(id)
    }
}

/// Takes the reserved regions of `members` out of `ioas`'s usable IOVA
/// (nothing for `None`), as they attach to a paging HWPT of it: every
/// region but the direct mappings firmware allows to be given up, so that
/// no mapping lands on the MSI window or a range the platform reserves.
/// All or nothing.  `EADDRINUSE` if one is mapped or allowed already;
/// `EINVAL` (and a warning) if the driver offers hardware and software MSI
/// windows together, or two software ones, as upstream refuses.
fn reserve_members<'a>(
    members: impl Iterator<Item = &'a Member> + Clone,
    ioas: Option<&Ioas>,
) -> Result {
    let Some(ioas) = ioas else {
        return Ok(());
    };
    for (n, m) in members.clone().enumerate() {
        if let Err(e) = reserve_device(m, ioas) {
            unreserve_members(members.take(n), Some(ioas));
            return Err(e);
        }
    }
    Ok(())
}

/// [`reserve_members`] of one device.
fn reserve_device(m: &Member, ioas: &Ioas) -> Result {
    let regions = iommu::resv_regions(&m.dev)?;
    let mut ranges = KVec::with_capacity(regions.len(), GFP_KERNEL)?;
    let (mut hw_msi, mut sw_msi) = (0, 0);
    for r in regions.iter() {
        match r.kind {
            ResvKind::DirectRelaxable => continue,
            ResvKind::Msi => hw_msi += 1,
            ResvKind::SwMsi => sw_msi += 1,
            ResvKind::Direct | ResvKind::Reserved => {}
        }
        ranges.push((r.start, r.last()), GFP_KERNEL)?;
    }
    if (sw_msi > 0 && hw_msi > 0) || sw_msi > 1 {
        dev_warn!(
            m.dev,
            "iommufd: its IOMMU driver reports {hw_msi} hardware and {sw_msi} software MSI windows\n"
        );
        return Err(EINVAL);
    }
    ioas.iopt.reserve_device(m.key, &ranges)
}

/// Gives back what [`reserve_members`] took out of `ioas`.
fn unreserve_members<'a>(members: impl Iterator<Item = &'a Member>, ioas: Option<&Ioas>) {
    if let Some(ioas) = ioas {
        for m in members {
            ioas.iopt.unreserve_device(m.key);
        }
    }
}

// The macro's `unsafe impl` is sound: it only forwards `drop`.
#[allow(unsafe_code)]
#[pinned_drop]
impl PinnedDrop for Device {
    fn drop(self: Pin<&mut Self>) {
        // PASIDs first: the RID's HWPT may be what allows them.
        loop {
            let next = self.pasids.lock().first().map(|(p, _)| *p);
            match next {
                Some(p) => self.detach_pasid(Some(p)),
                None => break,
            }
        }
        self.detach();
    }
}

/// The IOAS `hwpt` mirrors, if it is a paging HWPT: the one a RID
/// attached to it keeps its reserved regions out of.
fn rid_ioas(hwpt: &Hwpt) -> Option<&Ioas> {
    hwpt.paging().map(|p| &**p.ioas)
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

/// What `IOMMU_HWPT_ALLOC` makes on an object of an upper layer (a
/// vIOMMU): given the context, `pt_id`, the device, the flags, the data and
/// the fault queue, `None` if `pt_id` is no such object.
pub(crate) type AllocOnOther = for<'a, 'b, 'c> fn(
    &'a Ctx,
    u32,
    ForDev<'b>,
    u32,
    &'c UserData,
    Option<u32>,
) -> Option<Result<PendingObj<'a, Hwpt>>>;

/// `IOMMU_HWPT_ALLOC`: a paging HWPT of an IOAS, a nested HWPT on a paging
/// one, or what `other` makes on another object, for a device.
pub(crate) fn hwpt_alloc(
    ucmd: &mut Ucmd<'_, uapi::iommu_hwpt_alloc>,
    other: AllocOnOther,
) -> Result {
    let c = &ucmd.cmd;
    if c.__reserved != 0 || c.__reserved2 != 0 {
        return Err(EOPNOTSUPP);
    }
    if (c.data_type == uapi::IOMMU_HWPT_DATA_NONE) != (c.data_len == 0) {
        return Err(EINVAL);
    }
    let ctx = ucmd.ctx;
    let objects = &ctx.objects;
    let idev = objects.get::<Device>(c.dev_id)?;
    let flags = c.flags;
    let fault_id = (flags & uapi::IOMMU_HWPT_FAULT_ID_VALID != 0).then_some(c.fault_id);
    let data = UserData::new(c.data_type, c.data_uptr, c.data_len as usize);
    let hwpt = if let Ok(ioas) = objects.get_long::<Ioas>(c.pt_id) {
        if flags & !HWPT_ALLOC_FLAGS != 0
            || (fault_id.is_some() && flags & uapi::IOMMU_HWPT_ALLOC_NEST_PARENT != 0)
        {
            return Err(EOPNOTSUPP);
        }
        let flags = flags & !uapi::IOMMU_HWPT_FAULT_ID_VALID;
        let data = (!data.is_empty()).then_some(&data);
        Hwpt::alloc_paging(ctx, ioas, idev.for_dev(), false, flags, data, fault_id)?
    } else if let Ok(parent) = objects.get_long::<Hwpt>(c.pt_id) {
        if parent.paging().is_none() {
            return Err(EINVAL);
        }
        Hwpt::alloc_nested(ctx, parent, idev.for_dev(), flags, &data, fault_id)?
    } else if let Some(hwpt) = other(ctx, c.pt_id, idev.for_dev(), flags, &data, fault_id) {
        hwpt?
    } else {
        // Another kind of object, or none.
        return Err(EINVAL);
    };
    respond_then_publish(ucmd, hwpt)
}

/// Tells the caller of `IOMMU_HWPT_ALLOC` the new HWPT's ID and only then
/// publishes it: a failed copy-out drops it unseen.
fn respond_then_publish(
    ucmd: &mut Ucmd<'_, uapi::iommu_hwpt_alloc>,
    hwpt: PendingObj<'_, Hwpt>,
) -> Result {
    ucmd.cmd.out_hwpt_id = hwpt.id();
    ucmd.respond()?;
    hwpt.finalize();
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
    if idev.owner.is_none() {
        // No IOMMU to report on.
        return Err(EOPNOTSUPP);
    }
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
