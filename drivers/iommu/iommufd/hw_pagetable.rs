// SPDX-License-Identifier: GPL-2.0

//! HW page tables (HWPTs): the IOMMU domains devices attach to.
//!
//! A paging HWPT is a domain that mirrors one IOAS: the IOAS maps into it
//! for as long as it exists.  A nested HWPT translates through a page table
//! user space manages (a guest's), then through its paging parent.  Both are
//! one object kind, [`Hwpt`], whose [`HwptKind`] says which.
//!
//! An automatic HWPT is made by attaching a device to an IOAS, and is
//! destroyed when its last device leaves.  The IOAS lists its automatic
//! HWPTs by reference, and a device attaching to the IOAS tries each in
//! turn before it makes a new one, as upstream does: a domain that does
//! not suit the device (`EINVAL` from the attach) is passed over.

use core::any::Any;
use kernel::iommu::domain::{self as iommu, AllocFlags, Cap, Domain};
use kernel::iommu::user_data::{UserData, UserDataArray};
use kernel::prelude::*;
use kernel::sync::Arc;

use crate::ctx::{Ctx, Objects, PendingObj};
use crate::fault::Fault;
use crate::ioas::{AutoHwpt, Ioas};
use crate::object::{Held, Object};
use crate::uapi;
use crate::ucmd::Ucmd;

/// What is particular to a paging HWPT.
pub(crate) struct Paging {
    /// The IOAS mirrored, with a use of it.
    pub(crate) ioas: Held<Ioas>,
    /// Made by an attach to an IOAS, and destroyed with its last device.
    pub(crate) auto: bool,
    /// Nested HWPTs may be built on it (`IOMMU_HWPT_ALLOC_NEST_PARENT`).
    nest_parent: bool,
}

impl Paging {
    /// Whether nested HWPTs and vIOMMUs may be built on it.
    pub(crate) fn nest_parent(&self) -> bool {
        self.nest_parent
    }
}

/// What is particular to a nested HWPT: a use of what it was made on (its
/// paging parent, or a vIOMMU of `viommu`, which holds the parent), which
/// cannot be destroyed while it lives.
pub(crate) struct Nested {
    _on: KBox<dyn Any + Send + Sync>,
}

/// Which kind of HWPT.
pub(crate) enum HwptKind {
    Paging(Paging),
    /// Kept for what it holds, given back when the HWPT goes.
    #[allow(dead_code)]
    Nested(Nested),
}

/// A HWPT object.
pub(crate) struct Hwpt {
    pub(crate) domain: Arc<Domain>,
    /// PASIDs may be attached to it (`IOMMU_HWPT_ALLOC_PASID`).
    pub(crate) pasid_compat: bool,
    /// The queue the faults of its devices go to; dropped before a nested
    /// HWPT's parent, as upstream.
    pub(crate) fault: Option<Held<Fault>>,
    pub(crate) kind: HwptKind,
}

/// The fault queue `fault_id` for a new HWPT whose `domain` is not shared
/// yet, which from now on takes faults; none for `None`.
fn take_faults(
    objects: &Objects,
    domain: &mut Domain,
    fault_id: Option<u32>,
) -> Result<Option<Held<Fault>>> {
    let Some(id) = fault_id else {
        return Ok(None);
    };
    let fault = objects.get_long::<Fault>(id)?;
    domain.take_faults();
    Ok(Some(fault))
}

/// Whether `dev` binds in no-IOMMU mode: no IOMMU driver manages it and
/// the kernel has no-IOMMU support (else such a device cannot bind).
/// Decided once, at bind, as upstream: an IOMMU driver that registers later
/// does not change what a bound device is.
pub(crate) fn no_iommu(dev: &kernel::device::Device) -> bool {
    cfg!(CONFIG_IOMMUFD_NOIOMMU) && !iommu::has_iommu(dev)
}

/// The device a HWPT is made for, as it was bound.
#[derive(Clone, Copy)]
pub(crate) struct ForDev<'a> {
    pub(crate) dev: &'a kernel::device::Device,
    /// Bound in no-IOMMU mode (see [`no_iommu`]).
    pub(crate) no_iommu: bool,
}

/// The domain of a paging HWPT for a device without an IOMMU: a software
/// page table, which only records where the IOAS's memory is.  No flag and
/// no driver data (`EOPNOTSUPP`): there is no driver to take them.
fn software_domain(flags: u32, data: Option<&UserData>) -> Result<Domain> {
    if flags != 0 || data.is_some() {
        return Err(EOPNOTSUPP);
    }
    #[cfg(CONFIG_IOMMUFD_NOIOMMU)]
    return Domain::alloc_software();
    #[cfg(not(CONFIG_IOMMUFD_NOIOMMU))]
    Err(ENODEV)
}

impl Hwpt {
    /// A new paging HWPT of `ioas` for `dev`, with `IOMMU_HWPT_ALLOC_*`
    /// `flags` (less `IOMMU_HWPT_FAULT_ID_VALID`) and the driver's `data` if
    /// any, its faults going to the queue `fault_id`.  Not published yet:
    /// the caller publishes it once nothing can fail any more, or drops it.
    pub(crate) fn alloc_paging<'a>(
        ctx: &'a Ctx,
        ioas: Held<Ioas>,
        ForDev { dev, no_iommu }: ForDev<'_>,
        auto: bool,
        flags: u32,
        data: Option<&UserData>,
        fault_id: Option<u32>,
    ) -> Result<PendingObj<'a, Hwpt>> {
        if flags & uapi::IOMMU_HWPT_ALLOC_DIRTY_TRACKING != 0
            && !iommu::capable(dev, Cap::DirtyTracking)
        {
            return Err(EOPNOTSUPP);
        }
        let slot = ctx.objects.reserve()?;
        let mut domain = if no_iommu {
            software_domain(flags, data)?
        } else if auto {
            Domain::alloc_paging(dev, AllocFlags::from_bits_retain(flags))?
        } else {
            Domain::alloc_paging_user(dev, AllocFlags::from_bits_retain(flags), data)?
        };
        let fault = take_faults(&ctx.objects, &mut domain, fault_id)?;
        let domain = Arc::new(domain, GFP_KERNEL_ACCOUNT)?;
        ioas.iopt.add_domain(&domain)?;
        // From here the HWPT holds the domain's place in the IOAS: dropping
        // it, also when its allocation fails, takes the domain out again.
        let hwpt = Hwpt {
            domain,
            pasid_compat: flags & uapi::IOMMU_HWPT_ALLOC_PASID != 0,
            fault,
            kind: HwptKind::Paging(Paging {
                ioas,
                auto,
                nest_parent: flags & uapi::IOMMU_HWPT_ALLOC_NEST_PARENT != 0,
            }),
        };
        slot.new_value(hwpt)
    }

    /// A new nested HWPT on `parent` for `dev`, described by the driver's
    /// `data`, with its faults going to the queue `fault_id`; to be
    /// published as [`Hwpt::alloc_paging`]'s.
    pub(crate) fn alloc_nested<'a>(
        ctx: &'a Ctx,
        parent: Held<Hwpt>,
        ForDev { dev, no_iommu }: ForDev<'_>,
        flags: u32,
        data: &UserData,
        fault_id: Option<u32>,
    ) -> Result<PendingObj<'a, Hwpt>> {
        if flags & !(uapi::IOMMU_HWPT_FAULT_ID_VALID | uapi::IOMMU_HWPT_ALLOC_PASID) != 0
            || data.is_empty()
            || no_iommu
        {
            return Err(EOPNOTSUPP);
        }
        match parent.paging() {
            Some(p) if !p.auto && p.nest_parent => {}
            _ => return Err(EINVAL),
        }
        Self::alloc_nested_by(ctx, flags, fault_id, |flags| {
            let flags = AllocFlags::from_bits_retain(flags);
            let domain = Domain::alloc_nested(dev, &parent.domain, flags, data)?;
            Ok((domain, KBox::new(parent, GFP_KERNEL_ACCOUNT)?))
        })
    }

    /// A new nested HWPT whose domain `make` makes with the
    /// `IOMMU_HWPT_ALLOC_*` flags (less `IOMMU_HWPT_FAULT_ID_VALID`), with
    /// what the HWPT keeps (a use of what it was made on), its faults going
    /// to the queue `fault_id`; to be published as [`Hwpt::alloc_paging`]'s.
    pub(crate) fn alloc_nested_by<'a>(
        ctx: &'a Ctx,
        flags: u32,
        fault_id: Option<u32>,
        make: impl FnOnce(u32) -> Result<(Domain, KBox<dyn Any + Send + Sync>)>,
    ) -> Result<PendingObj<'a, Hwpt>> {
        let slot = ctx.objects.reserve()?;
        let flags = flags & !uapi::IOMMU_HWPT_FAULT_ID_VALID;
        let (mut domain, keep) = make(flags)?;
        let fault = take_faults(&ctx.objects, &mut domain, fault_id)?;
        let domain = Arc::new(domain, GFP_KERNEL_ACCOUNT)?;
        slot.new_value(Hwpt {
            domain,
            pasid_compat: flags & uapi::IOMMU_HWPT_ALLOC_PASID != 0,
            fault,
            kind: HwptKind::Nested(Nested { _on: keep }),
        })
    }

    /// The paging part, for a paging HWPT.
    pub(crate) fn paging(&self) -> Option<&Paging> {
        match &self.kind {
            HwptKind::Paging(p) => Some(p),
            HwptKind::Nested(_) => None,
        }
    }

    /// Whether this is an automatic HWPT.
    pub(crate) fn is_auto(&self) -> bool {
        self.paging().is_some_and(|p| p.auto)
    }

    /// The address an automatic HWPT is listed under by its IOAS.
    fn addr(&self) -> usize {
        core::ptr::from_ref(self) as usize
    }

    /// Finds an automatic HWPT of `ioas` that `try_attach` accepts, or makes
    /// one for `dev` and has `try_attach` accept it.  `try_attach` refusing
    /// a HWPT with `EINVAL` means that its domain does not suit the device:
    /// the next one is tried; any other error ends the search.  Returns the
    /// HWPT, with a use for the caller, and what `try_attach` returned.
    ///
    /// Runs under the IOAS's lock for attaching devices, so that two
    /// devices attaching at once share a new HWPT rather than make two.
    pub(crate) fn attach_auto<R>(
        ctx: &Ctx,
        ioas: Held<Ioas>,
        dev: ForDev<'_>,
        mut try_attach: impl FnMut(&Object<Hwpt>) -> Result<R>,
    ) -> Result<(Held<Hwpt>, R)> {
        let _serial = ioas.auto_attach.lock();
        // A copy: the HWPTs leave the list by themselves, also while we try
        // them.  Room for one more, so that listing a new one cannot fail
        // once it is attached (only this lock's holder adds to the list).
        let listed = {
            let mut list = ioas.auto_hwpts.lock();
            list.reserve(1, GFP_KERNEL_ACCOUNT)?;
            let mut copy = KVec::new();
            copy.extend_from_slice(&list, GFP_KERNEL_ACCOUNT)?;
            copy
        };
        for entry in listed {
            // Not found once it is being destroyed, nor if its ID is
            // another object's by now.
            let Ok(held) = ctx.objects.get_long::<Hwpt>(entry.id) else {
                continue;
            };
            if held.addr() != entry.addr {
                Self::put(&ctx.objects, held);
                continue;
            }
            match try_attach(&held) {
                Ok(r) => return Ok((held, r)),
                Err(e) => {
                    Self::put(&ctx.objects, held);
                    if e != EINVAL {
                        return Err(e);
                    }
                }
            }
        }
        let pending = Hwpt::alloc_paging(ctx, ioas.clone(), dev, true, 0, None, None)?;
        // Attached before it is published, as upstream; a failure drops it
        // unseen.
        let r = try_attach(&pending)?;
        let held = pending.finalize_held();
        let entry = AutoHwpt {
            id: held.id(),
            addr: held.addr(),
        };
        // Room was reserved above.
        if ioas.auto_hwpts.lock().push_within_capacity(entry).is_err() {
            kernel::warn_on!(true);
            pr_err!("automatic HWPT not listed\n");
        }
        Ok((held, r))
    }

    /// Gives back a use of `hwpt`, destroying it if it was automatic and
    /// this was its last use (its last device left): an automatic HWPT
    /// lives as long as devices use it, unless a command using it
    /// meanwhile makes it outlive them (then `IOMMU_DESTROY` or the
    /// context's release destroys it), as upstream.
    pub(crate) fn put(objects: &Objects, hwpt: Held<Hwpt>) {
        if !hwpt.is_auto() {
            drop(hwpt);
            return;
        }
        // In one step: between a put and a destroy by ID, the HWPT could be
        // destroyed by the user and its ID given to a new object.
        objects.put_and_try_destroy(hwpt);
    }
}

impl Drop for Hwpt {
    fn drop(&mut self) {
        if let HwptKind::Paging(p) = &self.kind {
            if p.auto {
                let addr = self.addr();
                p.ioas.auto_hwpts.lock().retain(|e| e.addr != addr);
            }
            p.ioas.iopt.remove_domain(&self.domain);
        }
    }
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
    let hwpt = ucmd.ctx.objects.get::<Hwpt>(c.hwpt_id)?;
    let paging = hwpt.paging().ok_or(ENOENT)?;
    let enable = c.flags & uapi::IOMMU_HWPT_DIRTY_TRACKING_ENABLE != 0;
    paging.ioas.iopt.set_dirty_tracking(&hwpt.domain, enable)
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
    let hwpt = ucmd.ctx.objects.get::<Hwpt>(c.hwpt_id)?;
    let paging = hwpt.paging().ok_or(ENOENT)?;
    paging.ioas.iopt.read_and_clear_dirty(
        &hwpt.domain,
        c.flags,
        c.iova,
        c.length,
        c.page_size,
        c.data,
    )
}

/// `IOMMU_HWPT_INVALIDATE`'s bound on entries per call, as upstream.
const INVALIDATE_ENTRY_NUM_MAX: u32 = 1 << 19;

/// `IOMMU_HWPT_INVALIDATE`: has the driver invalidate its caches of the
/// page table of a nested HWPT, or those of another object `other` knows
/// (`None`: the ID names none of its objects).  Tells user space how many
/// entries were handled, also on failure.
pub(crate) fn invalidate_ioctl(
    ucmd: &mut Ucmd<'_, uapi::iommu_hwpt_invalidate>,
    other: impl FnOnce(&Objects, u32, &mut UserDataArray) -> Option<Result>,
) -> Result {
    let (done, res) = invalidate(ucmd, other);
    ucmd.cmd.entry_num = done;
    ucmd.respond()?;
    res
}

/// Runs an invalidation: the entries handled, and how it ended.
fn invalidate(
    ucmd: &Ucmd<'_, uapi::iommu_hwpt_invalidate>,
    other: impl FnOnce(&Objects, u32, &mut UserDataArray) -> Option<Result>,
) -> (u32, Result) {
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
    let mut array = UserDataArray::new(c.data_type, c.data_uptr, c.entry_len, c.entry_num);
    let res = match objects.get::<Hwpt>(c.hwpt_id) {
        Ok(h) if h.paging().is_none() => h.domain.cache_invalidate_user(&mut array),
        Ok(_) => return (0, Err(EINVAL)),
        Err(e) => match other(objects, c.hwpt_id, &mut array) {
            Some(res) => res,
            // Another kind of object.
            None if objects.exists(c.hwpt_id) => return (0, Err(EINVAL)),
            None => return (0, Err(e)),
        },
    };
    (array.entry_num(), res)
}
