// SPDX-License-Identifier: GPL-2.0

//! I/O address spaces (IOAS): `IOMMU_IOAS_*`.

use kernel::new_mutex;
use kernel::prelude::*;
use kernel::sync::{Arc, Mutex};

use crate::access::Access;
use crate::interval::{last_of, IntervalMap};
use crate::io_pagetable::{IoPagetable, PagesSlice, Prot};
use crate::object::Object;
use crate::uapi::{self, iommu_iova_range};
use crate::ucmd::Ucmd;

/// An I/O address space: the IOVA layout userspace builds and devices use.
#[pin_data]
pub(crate) struct Ioas {
    #[pin]
    pub(crate) iopt: IoPagetable,
    /// The accesses attached here, told about unmaps.  Each holds a use of
    /// the IOAS, so the IOAS outlives them.
    #[pin]
    accesses: Mutex<KVec<Arc<Object<Access>>>>,
    /// The IDs of the automatic HWPTs of this IOAS, for devices attaching.
    #[pin]
    auto_hwpts: Mutex<KVec<u32>>,
}

impl Ioas {
    pub(crate) fn new() -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            iopt <- IoPagetable::new(),
            accesses <- new_mutex!(KVec::new()),
            auto_hwpts <- new_mutex!(KVec::new()),
        }? Error)
    }

    /// The IDs of the automatic HWPTs, oldest first.
    pub(crate) fn auto_hwpts(&self) -> Result<KVec<u32>> {
        let list = self.auto_hwpts.lock();
        let mut out = KVec::with_capacity(list.len(), GFP_KERNEL_ACCOUNT)?;
        for id in list.iter() {
            out.push(*id, GFP_KERNEL_ACCOUNT)?;
        }
        Ok(out)
    }

    pub(crate) fn add_auto_hwpt(&self, id: u32) -> Result {
        self.auto_hwpts.lock().push(id, GFP_KERNEL_ACCOUNT)?;
        Ok(())
    }

    pub(crate) fn remove_auto_hwpt(&self, id: u32) {
        self.auto_hwpts.lock().retain(|x| *x != id);
    }

    /// Unmaps the areas inside `[start, last]` (see [`IoPagetable::unmap`]),
    /// asking the attached accesses to unpin what they hold there.
    pub(crate) fn unmap(&self, start: u64, last: u64) -> Result<u64> {
        let (unmapped, res) = self.unmap_counted(start, last);
        res.map(|()| unmapped)
    }

    /// [`Ioas::unmap`], also telling how many bytes went before a failure.
    pub(crate) fn unmap_counted(&self, start: u64, last: u64) -> (u64, Result) {
        self.iopt
            .unmap_counted(start, last, &|iova, length| self.notify_unmap(iova, length))
    }

    fn notify_unmap(&self, iova: u64, length: u64) {
        // One at a time, without the list lock: the owners unpin.
        let mut i = 0;
        loop {
            let Some(access) = self.accesses.lock().get(i).cloned() else {
                return;
            };
            access.notify_unmap(iova, length);
            i += 1;
        }
    }

    /// Registers an access attaching here.
    pub(crate) fn add_access(&self, access: &Arc<Object<Access>>) -> Result {
        let mut list = self.accesses.lock();
        list.reserve(1, GFP_KERNEL_ACCOUNT)?;
        self.iopt.add_access(access.pins())?;
        list.push(access.clone(), GFP_KERNEL_ACCOUNT)?;
        Ok(())
    }

    /// Undoes [`Ioas::add_access`].
    pub(crate) fn remove_access(&self, access: &Arc<Object<Access>>) {
        let mut list = self.accesses.lock();
        if let Some(i) = list.iter().position(|a| Arc::ptr_eq(a, access)) {
            let gone = list.remove(i);
            self.iopt.remove_access(access.pins());
            drop(list);
            drop(gone);
        }
    }
}

/// `IOMMU_IOAS_ALLOC`
pub(crate) fn alloc_ioctl(ucmd: &mut Ucmd<'_, uapi::iommu_ioas_alloc>) -> Result {
    let slot = ucmd.ctx.objects.reserve()?;
    let ioas = slot.new_object(Ioas::new())?;
    ucmd.cmd.out_ioas_id = slot.id();
    // Publish only once the caller has its ID: a failed copy-out leaves no
    // object behind for the caller to leak.
    ucmd.respond()?;
    slot.finalize(ioas);
    Ok(())
}

/// `IOMMU_IOAS_IOVA_RANGES`
///
/// Reports the IOVA ranges that can be mapped.  When the caller's array is too
/// small, it gets as many as fit, the full count in `num_iovas`, and
/// `EMSGSIZE`, so that it can retry with a larger array.
pub(crate) fn iova_ranges_ioctl(ucmd: &mut Ucmd<'_, uapi::iommu_ioas_iova_ranges>) -> Result {
    if ucmd.cmd.__reserved != 0 {
        return Err(EOPNOTSUPP);
    }
    let ioas = ucmd.ctx.objects.get::<Ioas>(ucmd.cmd.ioas_id)?;
    let room = ucmd.cmd.num_iovas as usize;
    let uptr = ucmd.cmd.allowed_iovas;
    let mut count = 0usize;
    ioas.iopt.for_each_usable_range(|start, last| {
        if count < room {
            uapi::copy_elem_to_user(uptr, count, &iommu_iova_range { start, last })?;
        }
        count += 1;
        Ok(())
    })?;
    ucmd.cmd.num_iovas = u32::try_from(count).map_err(|_| EOVERFLOW)?;
    ucmd.cmd.out_iova_alignment = ioas.iopt.iova_alignment();
    ucmd.respond()?;
    if count > room {
        return Err(EMSGSIZE);
    }
    Ok(())
}

/// `IOMMU_OPTION` `IOMMU_OPTION_HUGE_PAGES`, on the IOAS `object_id`.
pub(crate) fn option(ucmd: &mut Ucmd<'_, uapi::iommu_option>) -> Result {
    let ioas = ucmd.ctx.objects.get::<Ioas>(ucmd.cmd.object_id)?;
    match u32::from(ucmd.cmd.op) {
        uapi::IOMMU_OPTION_OP_GET => {
            ucmd.cmd.val64 = u64::from(ioas.iopt.large_pages());
            Ok(())
        }
        uapi::IOMMU_OPTION_OP_SET => match ucmd.cmd.val64 {
            0 => ioas.iopt.set_large_pages(false),
            1 => ioas.iopt.set_large_pages(true),
            _ => Err(EINVAL),
        },
        _ => Err(EOPNOTSUPP),
    }
}

/// `IOMMU_IOAS_ALLOW_IOVAS`
///
/// Replaces the ranges automatic IOVA allocation may use (none: anywhere).
/// A range must have `start < last` and not overlap another (`EINVAL`), and
/// none may intersect a reserved range (`EADDRINUSE`); on failure the old
/// ranges stay.
pub(crate) fn allow_iovas_ioctl(ucmd: &mut Ucmd<'_, uapi::iommu_ioas_allow_iovas>) -> Result {
    if ucmd.cmd.__reserved != 0 {
        return Err(EOPNOTSUPP);
    }
    let ioas = ucmd.ctx.objects.get::<Ioas>(ucmd.cmd.ioas_id)?;
    let mut allowed = IntervalMap::new();
    for i in 0..ucmd.cmd.num_iovas as usize {
        let r: iommu_iova_range = uapi::copy_elem_from_user(ucmd.cmd.allowed_iovas, i)?;
        if r.start >= r.last {
            return Err(EINVAL);
        }
        allowed.insert(r.start, r.last, ())?;
    }
    ioas.iopt.set_allowed(allowed)
}

/// The flags `IOMMU_IOAS_MAP` and `IOMMU_IOAS_COPY` know.
pub(crate) const MAP_FLAGS: u32 = uapi::IOMMU_IOAS_MAP_FIXED_IOVA
    | uapi::IOMMU_IOAS_MAP_WRITEABLE
    | uapi::IOMMU_IOAS_MAP_READABLE;

/// Checks the length and IOVA of a map or copy (`EOVERFLOW` at
/// `ULONG_MAX`, which on 64 bits is `u64::MAX`) and its access flags
/// (`EINVAL` with neither read nor write).  Returns whether devices may
/// write, and the fixed IOVA if there is one.
fn map_args(flags: u32, iova: u64, length: u64) -> Result<(Prot, Option<u64>)> {
    if iova == u64::MAX || length == u64::MAX {
        return Err(EOVERFLOW);
    }
    if flags & (uapi::IOMMU_IOAS_MAP_WRITEABLE | uapi::IOMMU_IOAS_MAP_READABLE) == 0 {
        return Err(EINVAL);
    }
    let fixed = flags & uapi::IOMMU_IOAS_MAP_FIXED_IOVA != 0;
    let prot = Prot {
        read: flags & uapi::IOMMU_IOAS_MAP_READABLE != 0,
        write: flags & uapi::IOMMU_IOAS_MAP_WRITEABLE != 0,
    };
    Ok((prot, fixed.then_some(iova)))
}

/// `IOMMU_IOAS_MAP`
pub(crate) fn map_ioctl(ucmd: &mut Ucmd<'_, uapi::iommu_ioas_map>) -> Result {
    if ucmd.cmd.__reserved != 0 {
        return Err(EOPNOTSUPP);
    }
    let (prot, iova) = map_args(ucmd.cmd.flags, ucmd.cmd.iova, ucmd.cmd.length)?;
    let ioas = ucmd.ctx.objects.get::<Ioas>(ucmd.cmd.ioas_id)?;
    let mode = ucmd.ctx.objects.with_shared(|s, _| s.account_mode);
    let slice = PagesSlice::user(ucmd.cmd.user_va, ucmd.cmd.length, prot.write, mode)?;
    ucmd.cmd.iova = ioas.iopt.map(&[slice], iova, prot)?;
    ucmd.respond()
}

/// `IOMMU_IOAS_MAP_FILE`: maps a range of a memfd.
pub(crate) fn map_file_ioctl(ucmd: &mut Ucmd<'_, uapi::iommu_ioas_map_file>) -> Result {
    let c = &ucmd.cmd;
    let (prot, iova) = map_args(c.flags, c.iova, c.length)?;
    // As upstream: the IOAS first, then the file range, then the file.
    let ioas = ucmd.ctx.objects.get::<Ioas>(c.ioas_id)?;
    last_of(c.start, c.length)?;
    let slice = match dmabuf_of(c.fd) {
        #[cfg(CONFIG_DMA_SHARED_BUFFER)]
        Some(buf) => PagesSlice::dmabuf(
            buf,
            &ucmd.ctx.dev,
            c.start,
            c.length,
            prot.write,
            locate_dmabuf,
        )?,
        _ => {
            let fd = u32::try_from(c.fd).map_err(|_| EBADF)?;
            let file = kernel::fs::LocalFile::fget(fd).map_err(|_| EBADF)?;
            // SAFETY: An ioctl holds no `fdget_pos()` on any file.
            let file = unsafe { kernel::fs::LocalFile::assume_no_fdget_pos(file) };
            let mode = ucmd.ctx.objects.with_shared(|s, _| s.account_mode);
            PagesSlice::file(file, c.start, c.length, prot.write, mode)?
        }
    };
    ucmd.cmd.iova = ioas.iopt.map(&[slice], iova, prot)?;
    ucmd.respond()
}

/// `IOMMU_IOAS_CHANGE_PROCESS`: charges the pins of every mapping of the
/// context to the calling process (all mappings must be of files).
pub(crate) fn change_process_ioctl(ucmd: &mut Ucmd<'_, uapi::iommu_ioas_change_process>) -> Result {
    if ucmd.cmd.__reserved != 0 {
        return Err(EOPNOTSUPP);
    }
    // Each IOAS with a use: none can be destroyed meanwhile, as upstream.
    let all = ucmd.ctx.objects.all::<Ioas>()?;
    let mut pages = KVec::new();
    for ioas in all.iter() {
        ioas.iopt.collect_pages(&mut pages)?;
    }
    crate::pages::change_process(pages)
}

/// The dma-buf of the file descriptor `fd`, if it is one.
#[cfg(CONFIG_DMA_SHARED_BUFFER)]
fn dmabuf_of(fd: i32) -> Option<kernel::dma_buf::DmaBuf> {
    kernel::dma_buf::DmaBuf::get(fd).ok()
}

#[cfg(not(CONFIG_DMA_SHARED_BUFFER))]
fn dmabuf_of(_fd: i32) -> Option<()> {
    None
}

/// Where a dma-buf's memory is, from its exporter, as `(physical address,
/// length)`: only the selftest's exporter tells so far (VFIO's is not
/// supported yet: `EOPNOTSUPP`).
#[cfg(CONFIG_DMA_SHARED_BUFFER)]
fn locate_dmabuf(buf: &kernel::dma_buf::DmaBuf) -> Result<(u64, u64)> {
    #[cfg(CONFIG_IOMMUFD_TEST)]
    if let Some(res) = crate::selftest::dmabuf_phys(buf) {
        return res;
    }
    let _ = buf;
    Err(EOPNOTSUPP)
}

/// `IOMMU_IOAS_UNMAP`: unmaps the areas inside a range (all of them for
/// IOVA 0 and length `u64::MAX`).  An area partly inside is `ENOENT`, and so
/// is a range with nothing mapped, except for unmap-all.
pub(crate) fn unmap_ioctl(ucmd: &mut Ucmd<'_, uapi::iommu_ioas_unmap>) -> Result {
    let ioas = ucmd.ctx.objects.get::<Ioas>(ucmd.cmd.ioas_id)?;
    let (iova, length) = (ucmd.cmd.iova, ucmd.cmd.length);
    let unmapped = if iova == 0 && length == u64::MAX {
        ioas.unmap(0, u64::MAX)?
    } else {
        if iova == u64::MAX || length == u64::MAX {
            return Err(EOVERFLOW);
        }
        match ioas.unmap(iova, last_of(iova, length)?)? {
            0 => return Err(ENOENT),
            n => n,
        }
    };
    ucmd.cmd.length = unmapped;
    ucmd.respond()
}

/// `IOMMU_IOAS_COPY`: maps in one IOAS the memory mapped at a range of
/// another (or the same), which areas must cover without a gap.
pub(crate) fn copy_ioctl(ucmd: &mut Ucmd<'_, uapi::iommu_ioas_copy>) -> Result {
    let c = &ucmd.cmd;
    if c.src_iova == u64::MAX {
        return Err(EOVERFLOW);
    }
    let (prot, iova) = map_args(c.flags, c.dst_iova, c.length)?;
    let slices = {
        let src = ucmd.ctx.objects.get::<Ioas>(c.src_ioas_id)?;
        src.iopt.get_pages(c.src_iova, c.length)?
    };
    let dst = ucmd.ctx.objects.get::<Ioas>(c.dst_ioas_id)?;
    ucmd.cmd.dst_iova = dst.iopt.map(&slices, iova, prot)?;
    drop(dst);
    ucmd.respond()
}
