// SPDX-License-Identifier: GPL-2.0

//! I/O address spaces (IOAS): `IOMMU_IOAS_*`.

use kernel::new_mutex;
use kernel::prelude::*;
use kernel::sync::{Arc, Mutex};

use crate::interval::{last_of, IntervalMap};
use crate::io_pagetable::{IoPagetable, PagesSlice, Prot, UnmapListener};
use crate::uapi::{self, iommu_iova_range};
use crate::ucmd::Ucmd;

/// An I/O address space: the IOVA layout userspace builds and devices use.
#[pin_data]
pub(crate) struct Ioas {
    #[pin]
    pub(crate) iopt: IoPagetable,
    /// The accesses attached here, told about unmaps, by key.  Each holds
    /// a use of the IOAS, so the IOAS outlives them.
    #[pin]
    accesses: Mutex<KVec<(u32, Arc<dyn UnmapListener>)>>,
    /// Held while a device looks for an automatic HWPT of this IOAS, or
    /// makes one, so that two devices attaching at once share a new one.
    #[pin]
    pub(crate) auto_attach: Mutex<()>,
    /// The automatic HWPTs of this IOAS, oldest first, for devices
    /// attaching: kept by `hw_pagetable`, which the IOAS does not know.
    #[pin]
    pub(crate) auto_hwpts: Mutex<KVec<AutoHwpt>>,
}

/// An automatic HWPT as its IOAS lists it: its ID, and its address, which
/// tells it from a later object under the same ID.  Not a reference: the
/// HWPT holds the IOAS, so a reference back would be a cycle that keeps
/// both forever.  The HWPT takes itself off the list when it goes, before
/// its memory can be another object's.
#[derive(Clone, Copy)]
pub(crate) struct AutoHwpt {
    pub(crate) id: u32,
    pub(crate) addr: usize,
}

impl Ioas {
    pub(crate) fn new() -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            iopt <- IoPagetable::new(),
            accesses <- new_mutex!(KVec::new()),
            auto_attach <- new_mutex!(()),
            auto_hwpts <- new_mutex!(KVec::new()),
        }? Error)
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
            let Some((_, access)) = self.accesses.lock().get(i).cloned() else {
                return;
            };
            access.unmapped(iova, length);
            i += 1;
        }
    }

    /// Registers an access attaching here, under `key` (unique among the
    /// accesses of the IOAS).
    pub(crate) fn add_access(&self, key: u32, access: Arc<dyn UnmapListener>) -> Result {
        let mut list = self.accesses.lock();
        list.reserve(1, GFP_KERNEL_ACCOUNT)?;
        self.iopt.add_access(access.pins())?;
        list.push((key, access), GFP_KERNEL_ACCOUNT)?;
        Ok(())
    }

    /// Undoes [`Ioas::add_access`].
    pub(crate) fn remove_access(&self, key: u32) {
        let mut list = self.accesses.lock();
        if let Some(i) = list.iter().position(|(k, _)| *k == key) {
            if let Ok((_, gone)) = list.remove(i) {
                self.iopt.remove_access(gone.pins());
                drop(list);
                drop(gone);
            }
        }
    }
}

/// `IOMMU_IOAS_ALLOC`
pub(crate) fn alloc_ioctl(ucmd: &mut Ucmd<'_, uapi::iommu_ioas_alloc>) -> Result {
    let ioas = ucmd.ctx.objects.reserve()?.new_object(Ioas::new())?;
    ucmd.cmd.out_ioas_id = ioas.id();
    // Publish only once the caller has its ID: a failed copy-out leaves no
    // object behind for the caller to leak.
    ucmd.respond()?;
    ioas.finalize();
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
    let ranges = ioas.iopt.usable_ranges()?;
    let count = ranges.len();
    for (i, &(start, last)) in ranges.iter().take(room).enumerate() {
        uapi::copy_elem_to_user(uptr, i, &iommu_iova_range { start, last })?;
    }
    ucmd.cmd.num_iovas = u32::try_from(count).map_err(|_| EOVERFLOW)?;
    ucmd.cmd.out_iova_alignment = ioas.iopt.iova_alignment();
    ucmd.respond()?;
    if count > room {
        return Err(EMSGSIZE);
    }
    Ok(())
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
    let mode = ucmd.ctx.account_mode();
    let slice = PagesSlice::user(ucmd.cmd.user_va, ucmd.cmd.length, prot.write, mode)?;
    ucmd.cmd.iova = ioas.iopt.map(&[slice], iova, prot)?;
    ucmd.respond()
}

/// Where a dma-buf's memory is, as `(physical address, length)`, from what
/// its exporter tells: the exporters the module knows are the crate root's
/// to say (only the selftest's so far).
#[cfg(CONFIG_DMA_SHARED_BUFFER)]
pub(crate) type DmabufLocator = fn(&kernel::dma_buf::DmaBuf) -> Result<(u64, u64)>;
/// Without dma-bufs, nothing to locate.
#[cfg(not(CONFIG_DMA_SHARED_BUFFER))]
pub(crate) type DmabufLocator = ();

/// `IOMMU_IOAS_MAP_FILE`: maps a range of a memfd, or of a dma-buf whose
/// memory `locate` finds.
pub(crate) fn map_file_ioctl(
    ucmd: &mut Ucmd<'_, uapi::iommu_ioas_map_file>,
    locate: DmabufLocator,
) -> Result {
    #[cfg(not(CONFIG_DMA_SHARED_BUFFER))]
    let () = locate;
    let c = &ucmd.cmd;
    let (prot, iova) = map_args(c.flags, c.iova, c.length)?;
    // As upstream: the IOAS first, then the file range, then the file.
    let ioas = ucmd.ctx.objects.get::<Ioas>(c.ioas_id)?;
    last_of(c.start, c.length)?;
    let slice = match dmabuf_of(c.fd) {
        #[cfg(CONFIG_DMA_SHARED_BUFFER)]
        Some(buf) => PagesSlice::dmabuf(buf, &ucmd.ctx.dev, c.start, c.length, prot.write, locate)?,
        _ => {
            let fd = u32::try_from(c.fd).map_err(|_| EBADF)?;
            let file = crate::ffi::fget_for_pinning(fd)?;
            // Upstream takes any file and fails (EINVAL) only once it pins
            // one that is no memfd: one that holds this context, such as
            // /dev/iommu itself, would keep it alive forever.  Refused here.
            if !crate::ffi::pins_like_memfd(&file) {
                return Err(EINVAL);
            }
            let mode = ucmd.ctx.account_mode();
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

/// `IOMMU_IOAS_NOIOMMU_GET_PA`: the physical address an IOVA is mapped to,
/// and how many bytes from there are physically contiguous (at most the
/// `length` asked), for the DMA of devices without an IOMMU.  Needs
/// `CAP_SYS_RAWIO` (`EPERM`), as such DMA reaches all memory.  See
/// [`IoPagetable::phys`].
#[cfg(CONFIG_IOMMUFD_NOIOMMU)]
pub(crate) fn noiommu_get_pa_ioctl(ucmd: &mut Ucmd<'_, uapi::iommu_ioas_noiommu_get_pa>) -> Result {
    use kernel::capability::{capable, Capability};

    if !capable(Capability::SYS_RAWIO) {
        return Err(EPERM);
    }
    let cmd = &ucmd.cmd;
    if cmd.flags != 0 || cmd.__reserved != 0 {
        return Err(EOPNOTSUPP);
    }
    if cmd.length == 0 {
        return Err(EINVAL);
    }
    if cmd.iova == u64::MAX {
        return Err(EOVERFLOW);
    }
    let ioas = ucmd.ctx.objects.get::<Ioas>(cmd.ioas_id)?;
    let (phys, length) = ioas.iopt.phys(cmd.iova, cmd.length)?;
    ucmd.cmd.out_phys = phys;
    ucmd.cmd.length = length;
    ucmd.respond()
}

/// `IOMMU_IOAS_NOIOMMU_GET_PA` in a kernel without no-IOMMU support
/// (`CONFIG_IOMMUFD_NOIOMMU`): `EOPNOTSUPP`, as upstream built so.
#[cfg(not(CONFIG_IOMMUFD_NOIOMMU))]
pub(crate) fn noiommu_get_pa_ioctl(
    _ucmd: &mut Ucmd<'_, uapi::iommu_ioas_noiommu_get_pa>,
) -> Result {
    Err(EOPNOTSUPP)
}
