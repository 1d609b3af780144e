// SPDX-License-Identifier: GPL-2.0

//! vIOMMUs and what hangs off them (vdevices, vEVENTQs, HW queues).
//!
//! Not implemented yet: no IOMMU driver of this module offers vIOMMUs, so
//! `IOMMU_VIOMMU_ALLOC` fails as upstream fails for such a driver
//! (`EOPNOTSUPP`, after checking its arguments and the device), and the
//! commands that name a vIOMMU check their arguments in upstream's order and
//! then find none (`ENOENT`).

use kernel::prelude::*;

use crate::device::Device;
use crate::uapi;
use crate::ucmd::Ucmd;

/// `VEVENTQ_MAX_DEPTH`: upstream's bound on a vEVENTQ's depth.
const VEVENTQ_MAX_DEPTH: u32 = 1 << 19;

/// No vIOMMU exists: the lookup of `_id` as one.
fn no_viommu(_id: u32) -> Result {
    Err(ENOENT)
}

/// `IOMMU_VIOMMU_ALLOC`
pub(crate) fn alloc_ioctl(ucmd: &mut Ucmd<'_, uapi::iommu_viommu_alloc>) -> Result {
    let c = &ucmd.cmd;
    if c.flags != 0 || c.type_ == uapi::IOMMU_VIOMMU_TYPE_DEFAULT {
        return Err(EOPNOTSUPP);
    }
    drop(ucmd.ctx.objects.get::<Device>(c.dev_id)?);
    // The device's IOMMU driver has no vIOMMU ops.
    ucmd.not_implemented("vIOMMUs")?;
    Err(EOPNOTSUPP)
}

/// `IOMMU_VDEVICE_ALLOC`
pub(crate) fn vdevice_alloc_ioctl(ucmd: &mut Ucmd<'_, uapi::iommu_vdevice_alloc>) -> Result {
    // `virt_id` indexes an array of `unsigned long`: always fits here.
    no_viommu(ucmd.cmd.viommu_id)
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
    no_viommu(c.viommu_id)
}

/// `IOMMU_HW_QUEUE_ALLOC`
pub(crate) fn hw_queue_alloc_ioctl(ucmd: &mut Ucmd<'_, uapi::iommu_hw_queue_alloc>) -> Result {
    let c = &ucmd.cmd;
    if c.flags != 0 || c.type_ == uapi::IOMMU_HW_QUEUE_TYPE_DEFAULT {
        return Err(EOPNOTSUPP);
    }
    crate::interval::last_of(c.nesting_parent_iova, c.length)?;
    no_viommu(c.viommu_id)
}
