// SPDX-License-Identifier: GPL-2.0

//! The VFIO container compatibility of iommufd: `IOMMU_VFIO_IOAS` picks the
//! IOAS that the type1 ioctls on this context operate on.

use kernel::prelude::*;

use crate::uapi;
use crate::ucmd::Ucmd;

/// `IOMMU_VFIO_IOAS`
pub(crate) fn vfio_ioas_ioctl(ucmd: &mut Ucmd<'_, uapi::iommu_vfio_ioas>) -> Result {
    if ucmd.cmd.__reserved != 0 {
        return Err(EOPNOTSUPP);
    }
    let objects = &ucmd.ctx.objects;
    match u32::from(ucmd.cmd.op) {
        uapi::IOMMU_VFIO_IOAS_GET => {
            let ioas = objects.get_by::<crate::ioas::Ioas>(|s| s.compat_ioas.ok_or(ENODEV))?;
            ucmd.cmd.ioas_id = ioas.id();
            drop(ioas);
            ucmd.respond()
        }
        uapi::IOMMU_VFIO_IOAS_SET => {
            let ioas = objects.get::<crate::ioas::Ioas>(ucmd.cmd.ioas_id)?;
            objects.with_shared(|s, _| s.compat_ioas = Some(ioas.id()));
            Ok(())
        }
        uapi::IOMMU_VFIO_IOAS_CLEAR => {
            objects.with_shared(|s, _| s.compat_ioas = None);
            Ok(())
        }
        _ => Err(EOPNOTSUPP),
    }
}
