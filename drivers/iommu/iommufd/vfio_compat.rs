// SPDX-License-Identifier: GPL-2.0

//! The VFIO container compatibility of iommufd: the VFIO type1 container
//! ioctls, on an iommufd, operate on the compat IOAS that `IOMMU_VFIO_IOAS`
//! picks.

use core::mem::{offset_of, size_of, size_of_val};
use kernel::capability::{capable, Capability};
use kernel::ioctl::_IO;
use kernel::page::PAGE_SIZE;
use kernel::prelude::*;

use crate::ctx::Ctx;
use crate::interval::last_of;
use crate::io_pagetable::{PagesSlice, Prot};
use crate::ioas::Ioas;
use crate::object::ObjRef;
use crate::uapi::{
    self, vfio_info_cap_header, vfio_iommu_type1_dma_map, vfio_iommu_type1_dma_unmap,
    vfio_iommu_type1_info, vfio_iommu_type1_info_cap_iova_range, vfio_iommu_type1_info_dma_avail,
    vfio_iova_range, Pod,
};
use crate::ucmd::Ucmd;

/// `IOMMU_VFIO_IOAS`
pub(crate) fn vfio_ioas_ioctl(ucmd: &mut Ucmd<'_, uapi::iommu_vfio_ioas>) -> Result {
    if ucmd.cmd.__reserved != 0 {
        return Err(EOPNOTSUPP);
    }
    let objects = &ucmd.ctx.objects;
    match u32::from(ucmd.cmd.op) {
        uapi::IOMMU_VFIO_IOAS_GET => {
            let ioas = objects.get_by::<Ioas>(|s| s.compat_ioas.ok_or(ENODEV))?;
            ucmd.cmd.ioas_id = ioas.id();
            drop(ioas);
            ucmd.respond()
        }
        uapi::IOMMU_VFIO_IOAS_SET => {
            let ioas = objects.get::<Ioas>(ucmd.cmd.ioas_id)?;
            objects.with_state(|s, _| s.compat_ioas = Some(ioas.id()));
            Ok(())
        }
        uapi::IOMMU_VFIO_IOAS_CLEAR => {
            objects.with_state(|s, _| s.compat_ioas = None);
            Ok(())
        }
        _ => Err(EOPNOTSUPP),
    }
}

/// `_IO(VFIO_TYPE, VFIO_BASE + nr)`
const fn vfio_cmd(nr: u32) -> u32 {
    _IO(uapi::VFIO_TYPE as u32, uapi::VFIO_BASE + nr) // u32::from is not const
}
const VFIO_GET_API_VERSION: u32 = vfio_cmd(0);
const VFIO_CHECK_EXTENSION: u32 = vfio_cmd(1);
const VFIO_SET_IOMMU: u32 = vfio_cmd(2);
const VFIO_IOMMU_GET_INFO: u32 = vfio_cmd(12);
const VFIO_IOMMU_MAP_DMA: u32 = vfio_cmd(13);
const VFIO_IOMMU_UNMAP_DMA: u32 = vfio_cmd(14);

/// Whether VFIO made the context a no-IOMMU container: the type1 ioctls are
/// then not for it.
fn no_iommu(ctx: &Ctx) -> bool {
    ctx.objects.with_state(|s, _| s.no_iommu)
}

/// `iommufd_vfio_compat_ioas_get_id()`: the compat IOAS's ID, `ENODEV`
/// without one.
pub(crate) fn compat_ioas_get_id(ctx: &Ctx) -> Result<u32> {
    Ok(compat_ioas(ctx)?.id())
}

/// `iommufd_vfio_compat_ioas_create()`: gives the context a compat IOAS
/// unless it has one; `EINVAL` in no-IOMMU mode.
pub(crate) fn compat_ioas_create(ctx: &Ctx) -> Result {
    let ioas = ctx.objects.reserve()?.new_object(Ioas::new())?;
    let id = ioas.id();
    // A compat IOAS being set (or no-IOMMU mode) decides under the table's
    // lock; a new IOAS not taken is destroyed unseen.
    let take = ctx.objects.with_state(|s, _| {
        if s.no_iommu {
            return Err(EINVAL);
        }
        if s.compat_ioas.is_some() {
            return Ok(false);
        }
        s.compat_ioas = Some(id);
        Ok(true)
    })?;
    if take {
        ioas.finalize();
    }
    Ok(())
}

/// `iommufd_vfio_compat_set_no_iommu()`: `EINVAL` once there is a compat
/// IOAS.
pub(crate) fn compat_set_no_iommu(ctx: &Ctx) -> Result {
    ctx.objects.with_state(|s, _| {
        if s.compat_ioas.is_some() {
            return Err(EINVAL);
        }
        s.no_iommu = true;
        Ok(())
    })
}

/// The VFIO type1 container ioctls on an iommufd, operating on the compat
/// IOAS (`ENODEV` without one).  Anything else is `ENOTTY`.
pub(crate) fn vfio_ioctl(ctx: &Ctx, cmd: u32, arg: usize) -> Result<isize> {
    match cmd {
        VFIO_GET_API_VERSION => Ok(uapi::VFIO_API_VERSION as isize),
        VFIO_CHECK_EXTENSION => check_extension(ctx, arg),
        VFIO_SET_IOMMU => set_iommu(ctx, arg).map(|()| 0),
        VFIO_IOMMU_GET_INFO => get_info(ctx, arg).map(|()| 0),
        VFIO_IOMMU_MAP_DMA => map_dma(ctx, arg).map(|()| 0),
        VFIO_IOMMU_UNMAP_DMA => unmap_dma(ctx, arg).map(|()| 0),
        _ => Err(ENOTTY),
    }
}

fn compat_ioas(ctx: &Ctx) -> Result<ObjRef<'_, Ioas>> {
    ctx.objects.get_by::<Ioas>(|s| s.compat_ioas.ok_or(ENODEV))
}

fn check_extension(ctx: &Ctx, ext: usize) -> Result<isize> {
    let Ok(ext) = u32::try_from(ext) else {
        return Ok(0);
    };
    Ok(match ext {
        uapi::VFIO_TYPE1_IOMMU | uapi::VFIO_TYPE1v2_IOMMU | uapi::VFIO_UNMAP_ALL => {
            isize::from(!no_iommu(ctx))
        }
        uapi::VFIO_NOIOMMU_IOMMU => isize::from(cfg!(CONFIG_VFIO_NOIOMMU)),
        // As upstream: 1 unless a paging HWPT of the IOAS does not enforce
        // cache coherency.  This module never has a domain enforce it, so
        // 1 only while the IOAS has no domain (then its page sizes are all
        // of them).
        uapi::VFIO_DMA_CC_IOMMU => {
            let ioas = compat_ioas(ctx)?;
            isize::from(ioas.iopt.pgsizes_and_alignment().0 == u64::MAX)
        }
        _ => 0,
    })
}

fn set_iommu(ctx: &Ctx, ty: usize) -> Result {
    let ty = u32::try_from(ty).map_err(|_| EINVAL)?;
    // A no-IOMMU group's container takes the no-IOMMU type only; VFIO then
    // blocks the rest (which mostly fail here anyway: there is no IOAS).
    if cfg!(CONFIG_VFIO_NOIOMMU) && ty == uapi::VFIO_NOIOMMU_IOMMU && no_iommu(ctx) {
        return if capable(Capability::SYS_RAWIO) {
            Ok(())
        } else {
            Err(EPERM)
        };
    }
    if (ty != uapi::VFIO_TYPE1_IOMMU && ty != uapi::VFIO_TYPE1v2_IOMMU) || no_iommu(ctx) {
        return Err(EINVAL);
    }
    // VFIO fails this without a group, which is what the compat IOAS stands for.
    let ioas = compat_ioas(ctx)?;
    // Type1 (not v2) may unmap inside a mapping: only possible without huge
    // IOPTEs, which cannot be split.
    if ty == uapi::VFIO_TYPE1_IOMMU {
        ioas.iopt.set_large_pages(false)?;
    }
    Ok(())
}

/// The page sizes a type1 user may map with: those of every attached
/// domain, at least `PAGE_SIZE`.
fn page_sizes(ioas: &Ioas) -> u64 {
    let page = PAGE_SIZE as u64;
    let (mut sizes, align) = ioas.iopt.pgsizes_and_alignment();
    // As VFIO: sizes below PAGE_SIZE stand for PAGE_SIZE.
    if sizes & (page - 1) != 0 {
        sizes = (sizes & !(page - 1)) | page;
    }
    sizes.max(align)
}

fn get_info(ctx: &Ctx, arg: usize) -> Result {
    let minsz = offset_of!(vfio_iommu_type1_info, iova_pgsizes) + size_of::<u64>();
    let mut info: vfio_iommu_type1_info = uapi::read_prefix(arg, minsz)?;
    let argsz = info.argsz as usize;
    if argsz < minsz {
        return Err(EINVAL);
    }
    let ioas = compat_ioas(ctx)?;
    info.flags = uapi::VFIO_IOMMU_INFO_PGSIZES;
    info.iova_pgsizes = page_sizes(&ioas);
    info.cap_offset = 0;

    // The capability chain follows the structure: DMA_AVAIL, then the IOVA
    // ranges.  What does not fit in argsz is not written, but argsz comes
    // back with the size needed for all of it.
    let info_size = size_of::<vfio_iommu_type1_info>();
    let dma_off = info_size;
    let dma_size = size_of::<vfio_iommu_type1_info_dma_avail>().next_multiple_of(8);
    let iova_off = dma_off + dma_size;
    let fits = |off: usize, len: usize| argsz >= off + len;

    let dma = vfio_iommu_type1_info_dma_avail {
        header: vfio_info_cap_header {
            id: uapi::VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL as u16,
            version: 1,
            // Linked only when the next capability's offset is inside argsz.
            next: if argsz >= iova_off {
                iova_off as u32
            } else {
                0
            },
        },
        // iommufd's limit is the memory cgroup's, not a count of mappings.
        avail: u32::MAX,
    };
    if fits(dma_off, size_of_val(&dma)) {
        uapi::write_prefix(arg + dma_off, &dma, size_of_val(&dma))?;
    }

    let head = size_of::<vfio_iommu_type1_info_cap_iova_range>();
    let elem = size_of::<vfio_iova_range>();
    let ranges = ioas.iopt.usable_ranges()?;
    let nr = ranges.len();
    for (i, &(start, last)) in ranges.iter().enumerate() {
        let at = iova_off + head + i * elem;
        if fits(at, elem) {
            let range = vfio_iova_range { start, end: last };
            uapi::write_prefix(arg + at, &range, elem)?;
        }
    }
    let iova_size = head + nr * elem;
    let mut cap = vfio_iommu_type1_info_cap_iova_range::zeroed();
    cap.header.id = uapi::VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE as u16;
    cap.header.version = 1;
    cap.nr_iovas = u32::try_from(nr).map_err(|_| EOVERFLOW)?;
    if fits(iova_off, iova_size) {
        uapi::write_prefix(arg + iova_off, &cap, head)?;
    }

    let total = iova_off + iova_size.next_multiple_of(8);
    if argsz >= total {
        info.cap_offset = info_size as u32;
    }
    info.argsz = u32::try_from(total).map_err(|_| EOVERFLOW)?;
    info.flags |= uapi::VFIO_IOMMU_INFO_CAPS;
    uapi::write_prefix(arg, &info, argsz.min(info_size))
}

fn map_dma(ctx: &Ctx, arg: usize) -> Result {
    let minsz = offset_of!(vfio_iommu_type1_dma_map, size) + size_of::<u64>();
    let map: vfio_iommu_type1_dma_map = uapi::read_prefix(arg, minsz)?;
    let supported = uapi::VFIO_DMA_MAP_FLAG_READ | uapi::VFIO_DMA_MAP_FLAG_WRITE;
    if (map.argsz as usize) < minsz || map.flags & !supported != 0 {
        return Err(EINVAL);
    }
    let ioas = compat_ioas(ctx)?;
    let prot = Prot {
        read: map.flags & uapi::VFIO_DMA_MAP_FLAG_READ != 0,
        write: map.flags & uapi::VFIO_DMA_MAP_FLAG_WRITE != 0,
    };
    let mode = ctx.objects.with_state(|s, _| s.account_mode);
    let slice = PagesSlice::user(map.vaddr, map.size, prot.write, mode)?;
    // Type1 always maps at the IOVA it is given.
    ioas.iopt.map(&[slice], Some(map.iova), prot).map(|_| ())
}

fn unmap_dma(ctx: &Ctx, arg: usize) -> Result {
    let minsz = offset_of!(vfio_iommu_type1_dma_unmap, size) + size_of::<u64>();
    let unmap: vfio_iommu_type1_dma_unmap = uapi::read_prefix(arg, minsz)?;
    if (unmap.argsz as usize) < minsz || unmap.flags & !uapi::VFIO_DMA_UNMAP_FLAG_ALL != 0 {
        return Err(EINVAL);
    }
    let ioas = compat_ioas(ctx)?;
    let (size, res) = if unmap.flags & uapi::VFIO_DMA_UNMAP_FLAG_ALL != 0 {
        if unmap.iova != 0 || unmap.size != 0 {
            return Err(EINVAL);
        }
        ioas.unmap_counted(0, u64::MAX)
    } else {
        // Type1 (not v2) may unmap part of a mapping; with its huge IOPTEs
        // off (see set_iommu) the areas are cut where the range ends and
        // before it starts.  As upstream, the cuts come before the range is
        // checked, at the addresses its wrapping arithmetic gives.
        if !ioas.iopt.large_pages() {
            ioas.iopt
                .cut(unmap.iova.wrapping_add(unmap.size).wrapping_sub(1))?;
            if let Some(before) = unmap.iova.checked_sub(1) {
                ioas.iopt.cut(before)?;
            }
        }
        // Unlike IOMMU_IOAS_UNMAP, nothing mapped is not an error.
        match last_of(unmap.iova, unmap.size) {
            Ok(last) => ioas.unmap_counted(unmap.iova, last),
            Err(e) => (0, Err(e)),
        }
    };
    // What went is reported also when the unmap failed part-way.
    let mut unmapped = vfio_iommu_type1_dma_unmap::zeroed();
    unmapped.argsz = unmap.argsz;
    unmapped.flags = unmap.flags;
    unmapped.iova = unmap.iova;
    unmapped.size = size;
    uapi::write_prefix(arg, &unmapped, minsz)?;
    res
}
