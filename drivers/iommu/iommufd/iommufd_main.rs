// SPDX-License-Identifier: GPL-2.0

//! iommufd: the `/dev/iommu` user API for I/O page tables that point at user
//! memory, in Rust.  A drop-in replacement for `drivers/iommu/iommufd`.

// The rel (benchmark) kernel has the selftest but no KUnit, whose tests
// are the only callers of a few helpers.
#![cfg_attr(all(CONFIG_IOMMUFD_TEST, not(CONFIG_KUNIT)), allow(dead_code))]
// Unsafe code is confined to `ffi.rs`, the module's one boundary with C.
#![deny(unsafe_code)]

use kernel::fs::File;
use kernel::miscdevice::{MiscDevice, MiscDeviceOptions, MiscDeviceRegistration};
use kernel::mm::virt::VmaNew;
use kernel::prelude::*;
use kernel::sync::{Arc, ArcBorrow};

// The module's files, each importing only files listed before it (see
// `Documentation/userspace-api/iommufd-rs.rst` and `scripts/check-layers.py`).
// Foundations:
mod ctx;
mod ffi;
mod interval;
mod object;
mod pages;
mod uapi;
mod ucmd;
// The core chain, each object kind built on the ones before it:
mod access;
mod device;
mod fault;
mod group;
mod hw_pagetable;
mod io_pagetable;
mod ioas;
// Commands that only combine the core:
mod vfio_compat;
mod viommu;
// The selftest's plug-in, with its mock IOMMU:
#[cfg(CONFIG_IOMMUFD_TEST)]
mod selftest;
#[cfg(CONFIG_IOMMUFD_TEST)]
use selftest::mock;

module! {
    type: IommufdModule,
    name: "iommufd",
    authors: ["The iommufd-rs developers"],
    description: "I/O Address Space Management for passthrough devices (Rust)",
    license: "GPL",
}

/// Keeps the selftest's mock IOMMU registered, with `CONFIG_IOMMUFD_TEST`.
struct MockGuard;

impl MockGuard {
    fn new(module: &'static ThisModule) -> Result<Self> {
        #[cfg(CONFIG_IOMMUFD_TEST)]
        mock::register(module)?;
        #[cfg(not(CONFIG_IOMMUFD_TEST))]
        let _ = module;
        Ok(Self)
    }
}

impl Drop for MockGuard {
    fn drop(&mut self) {
        // No context, hence no mock device, outlives the module.
        #[cfg(CONFIG_IOMMUFD_TEST)]
        mock::unregister();
    }
}

#[pin_data]
struct IommufdModule {
    // Registered first: a failed /dev/iommu registration drops it again.
    _mock: MockGuard,
    #[pin]
    _iommu: MiscDeviceRegistration<ctx::Ctx>,
}

impl kernel::InPlaceModule for IommufdModule {
    fn init(module: &'static ThisModule) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            _mock: MockGuard::new(module)?,
            _iommu <- MiscDeviceRegistration::register(MiscDeviceOptions {
                name: c"iommu",
                mode: 0o660,
            }),
        })
    }
}

use ctx::Ctx;
use ucmd::{ioctl_table, Op, Ucmd};

#[vtable]
impl MiscDevice for Ctx {
    type Ptr = Arc<Self>;

    fn open(file: &File, misc: &MiscDeviceRegistration<Self>) -> Result<Arc<Self>> {
        ffi::note_ctx_file(file);
        Arc::pin_init(Ctx::new(misc.device().into()), GFP_KERNEL_ACCOUNT)
    }

    fn ioctl(me: ArcBorrow<'_, Ctx>, file: &File, cmd: u32, arg: usize) -> Result<isize> {
        let handle = ctx::CtxHandle::new(me, file);
        match ucmd::dispatch(handle, cmd, arg, all_ops()) {
            Some(res) => res,
            None => vfio_compat::vfio_ioctl(&me, cmd, arg),
        }
    }

    fn mmap(me: ArcBorrow<'_, Ctx>, _file: &File, vma: &VmaNew) -> Result {
        // The regions are the drivers' (a vIOMMU's), registered in the
        // context's C face.
        me.face.mmap(vma)
    }

    fn release(me: Arc<Ctx>, _file: &File) {
        // Objects may hold references to the context (devices, HWPTs): they
        // go here, with the file, rather than with the last reference.
        me.objects.destroy_all();
    }
}

/// The in-kernel C API that VFIO calls (`include/linux/iommufd.h`), over
/// the module's objects; `ffi.rs` has the C side.
pub(crate) struct CApiImpl;

/// A device bound through the C API: unbinding gives back the caller's use
/// and destroys it.
pub(crate) struct CDevice {
    ctx: Arc<Ctx>,
    idev: Option<object::Held<device::Device>>,
}

impl Drop for CDevice {
    fn drop(&mut self) {
        if let Some(idev) = self.idev.take() {
            viommu::unbind_device(&self.ctx, idev);
        }
    }
}

/// An access created through the C API: destroyed when dropped.
pub(crate) struct CAccess(Option<object::Held<access::Access>>);

impl Drop for CAccess {
    fn drop(&mut self) {
        if let Some(a) = self.0.take() {
            access::Access::destroy(a);
        }
    }
}

impl CAccess {
    fn get(&self) -> Result<&Arc<object::Object<access::Access>>> {
        Ok(self.0.as_ref().ok_or(ENODEV)?.obj())
    }
}

/// The callbacks of a C caller's access.
struct COwner(ffi::CAccessOps);

impl access::AccessOps for COwner {
    fn needs_pin_pages(&self) -> bool {
        self.0.needs_pin_pages()
    }

    fn unmap(&self, iova: u64, length: u64) {
        self.0.unmap(iova, length)
    }
}

impl ffi::CApi for CApiImpl {
    type Ctx = Ctx;
    type Device = CDevice;
    type Access = CAccess;

    fn device_bind(
        ctx: ArcBorrow<'_, Ctx>,
        _file: &File,
        dev: &kernel::device::Device,
    ) -> Result<(CDevice, u32)> {
        let ctx: Arc<Ctx> = ctx.into();
        let idev = device::Device::bind(&ctx, dev, true)?;
        let id = idev.obj().id();
        Ok((
            CDevice {
                ctx,
                idev: Some(idev),
            },
            id,
        ))
    }

    fn device_attach(d: &CDevice, pasid: Option<u32>, pt_id: u32, replace: bool) -> Result<u32> {
        let idev = d.idev.as_ref().ok_or(ENODEV)?.obj();
        if replace {
            idev.replace_pasid(pasid, pt_id)
        } else {
            idev.attach_pasid(pasid, pt_id)
        }
    }

    fn device_detach(d: &CDevice, pasid: Option<u32>) {
        if let Some(idev) = d.idev.as_ref() {
            idev.obj().detach_pasid(pasid);
        }
    }

    fn ctx_has_group(ctx: &Ctx, group: usize) -> bool {
        let Ok(devices) = ctx.objects.all::<device::Device>() else {
            return false;
        };
        devices
            .iter()
            .any(|d| kernel::iommu::domain::Group::of(d.dev()).is_some_and(|g| g.key() == group))
    }

    fn access_create(
        ctx: ArcBorrow<'_, Ctx>,
        file: &File,
        ops: ffi::CAccessOps,
    ) -> Result<(CAccess, u32)> {
        let owner: Arc<dyn access::AccessOps> = Arc::new(COwner(ops), GFP_KERNEL)?;
        let a = access::Access::create(ctx::CtxHandle::new(ctx, file), owner)?;
        let id = a.obj().id();
        Ok((CAccess(Some(a)), id))
    }

    fn access_attach(a: &CAccess, ioas_id: u32, replace: bool) -> Result {
        let a = a.get()?;
        if replace {
            access::Access::replace(a, ioas_id)
        } else {
            access::Access::attach(a, ioas_id)
        }
    }

    fn access_detach(a: &CAccess) {
        if let Ok(a) = a.get() {
            access::Access::detach(a);
        }
    }

    fn access_pin(
        a: &CAccess,
        iova: u64,
        length: u64,
        write: bool,
        out: &mut KVec<*mut kernel::bindings::page>,
    ) -> Result {
        a.get()?.pin_pages(iova, length, write, out)
    }

    fn access_unpin(a: &CAccess, iova: u64, length: u64) {
        if let Ok(a) = a.get() {
            a.unpin_pages(iova, length);
        }
    }

    fn access_rw(a: &CAccess, iova: u64, buf: &mut [u8], flags: u32) -> Result {
        a.get()?.rw(iova, buf, flags)
    }

    fn compat_ioas_get_id(ctx: &Ctx) -> Result<u32> {
        vfio_compat::compat_ioas_get_id(ctx)
    }

    fn compat_ioas_create(ctx: &Ctx) -> Result {
        vfio_compat::compat_ioas_create(ctx)
    }

    fn compat_set_no_iommu(ctx: &Ctx) -> Result {
        vfio_compat::compat_set_no_iommu(ctx)
    }
}

/// `IOMMU_DESTROY`
fn destroy_ioctl(ucmd: &mut Ucmd<'_, uapi::iommu_destroy>) -> Result {
    ucmd.ctx.objects.destroy(ucmd.cmd.id)
}

/// `IOMMU_OPTION`
fn option_ioctl(ucmd: &mut Ucmd<'_, uapi::iommu_option>) -> Result {
    let c = &ucmd.cmd;
    if c.__reserved != 0 {
        return Err(EOPNOTSUPP);
    }
    let op = u32::from(c.op);
    let get = op == uapi::IOMMU_OPTION_OP_GET;
    let known = get || op == uapi::IOMMU_OPTION_OP_SET;
    // Each option checks its object, then the operation, as upstream.
    match c.option_id {
        // 0 charges pinned pages to the user, 1 to the process (as VFIO
        // does); for the whole context.
        uapi::IOMMU_OPTION_RLIMIT_MODE => {
            if c.object_id != 0 || !known {
                return Err(EOPNOTSUPP);
            }
            if get {
                ucmd.cmd.val64 = u64::from(ucmd.ctx.account_mode() == pages::AccountMode::Mm);
            } else {
                ucmd.ctx.set_account_mode(c.val64)?;
            }
        }
        uapi::IOMMU_OPTION_HUGE_PAGES => {
            let ioas = ucmd.ctx.objects.get::<ioas::Ioas>(c.object_id)?;
            if !known {
                return Err(EOPNOTSUPP);
            }
            if get {
                ucmd.cmd.val64 = u64::from(ioas.iopt.large_pages());
            } else {
                match c.val64 {
                    0 => ioas.iopt.set_large_pages(false)?,
                    1 => ioas.iopt.set_large_pages(true)?,
                    _ => return Err(EINVAL),
                }
            }
        }
        _ => return Err(EOPNOTSUPP),
    }
    ucmd.respond()
}

/// `IOMMU_IOAS_MAP_FILE`, with the dma-buf exporters the module knows.
fn map_file_ioctl(ucmd: &mut Ucmd<'_, uapi::iommu_ioas_map_file>) -> Result {
    #[cfg(CONFIG_DMA_SHARED_BUFFER)]
    let locate: ioas::DmabufLocator = locate_dmabuf;
    #[cfg(not(CONFIG_DMA_SHARED_BUFFER))]
    let locate = ();
    ioas::map_file_ioctl(ucmd, locate)
}

/// Where a dma-buf's memory is, as `(physical address, length)`: only the
/// selftest's exporter tells so far (VFIO's is not supported yet:
/// `EOPNOTSUPP`).
#[cfg(CONFIG_DMA_SHARED_BUFFER)]
fn locate_dmabuf(buf: &kernel::dma_buf::DmaBuf) -> Result<(u64, u64)> {
    #[cfg(CONFIG_IOMMUFD_TEST)]
    if let Some(res) = selftest::dmabuf_phys(buf) {
        return res;
    }
    let _ = buf;
    Err(EOPNOTSUPP)
}

use uapi::*;

/// The ioctl table of `/dev/iommu`.
#[rustfmt::skip]
static OPS: [Op; 22] = ioctl_table! {
    IOMMUFD_CMD_DESTROY => iommu_destroy, id, destroy_ioctl;
    IOMMUFD_CMD_IOAS_ALLOC => iommu_ioas_alloc, out_ioas_id, ioas::alloc_ioctl, flags: 0;
    IOMMUFD_CMD_IOAS_ALLOW_IOVAS => iommu_ioas_allow_iovas, allowed_iovas,
        ioas::allow_iovas_ioctl;
    IOMMUFD_CMD_IOAS_COPY => iommu_ioas_copy, src_iova, ioas::copy_ioctl,
        flags: ioas::MAP_FLAGS;
    IOMMUFD_CMD_IOAS_IOVA_RANGES => iommu_ioas_iova_ranges, out_iova_alignment,
        ioas::iova_ranges_ioctl;
    IOMMUFD_CMD_IOAS_MAP => iommu_ioas_map, iova, ioas::map_ioctl, flags: ioas::MAP_FLAGS;
    IOMMUFD_CMD_IOAS_UNMAP => iommu_ioas_unmap, length, ioas::unmap_ioctl;
    IOMMUFD_CMD_OPTION => iommu_option, val64, option_ioctl;
    IOMMUFD_CMD_VFIO_IOAS => iommu_vfio_ioas, __reserved, vfio_compat::vfio_ioas_ioctl;
    IOMMUFD_CMD_HWPT_ALLOC => iommu_hwpt_alloc, __reserved, viommu::hwpt_alloc_ioctl;
    IOMMUFD_CMD_GET_HW_INFO => iommu_hw_info, __reserved, device::get_hw_info_ioctl;
    IOMMUFD_CMD_HWPT_SET_DIRTY_TRACKING => iommu_hwpt_set_dirty_tracking, __reserved,
        hw_pagetable::set_dirty_tracking_ioctl;
    IOMMUFD_CMD_HWPT_GET_DIRTY_BITMAP => iommu_hwpt_get_dirty_bitmap, data,
        hw_pagetable::get_dirty_bitmap_ioctl;
    IOMMUFD_CMD_HWPT_INVALIDATE => iommu_hwpt_invalidate, __reserved,
        viommu::hwpt_invalidate_ioctl;
    IOMMUFD_CMD_FAULT_QUEUE_ALLOC => iommu_fault_alloc, out_fault_fd, fault::alloc_ioctl;
    IOMMUFD_CMD_IOAS_MAP_FILE => iommu_ioas_map_file, iova, map_file_ioctl,
        flags: ioas::MAP_FLAGS;
    IOMMUFD_CMD_VIOMMU_ALLOC => iommu_viommu_alloc, out_viommu_id, viommu::alloc_ioctl;
    IOMMUFD_CMD_VDEVICE_ALLOC => iommu_vdevice_alloc, virt_id, viommu::vdevice_alloc_ioctl;
    IOMMUFD_CMD_IOAS_CHANGE_PROCESS => iommu_ioas_change_process, __reserved,
        ioas::change_process_ioctl;
    IOMMUFD_CMD_VEVENTQ_ALLOC => iommu_veventq_alloc, out_veventq_fd,
        viommu::veventq_alloc_ioctl;
    IOMMUFD_CMD_HW_QUEUE_ALLOC => iommu_hw_queue_alloc, length, viommu::hw_queue_alloc_ioctl;
    IOMMUFD_CMD_IOAS_NOIOMMU_GET_PA => iommu_ioas_noiommu_get_pa, out_phys,
        ioas::noiommu_get_pa_ioctl;
};

/// The selftests' private command, built with `CONFIG_IOMMUFD_TEST` as upstream.
#[cfg(CONFIG_IOMMUFD_TEST)]
#[rustfmt::skip]
static TEST_OPS: [Op; 1] = ioctl_table! {
    IOMMUFD_CMD_TEST => iommu_test_cmd, last, selftest::test_ioctl;
};
#[cfg(not(CONFIG_IOMMUFD_TEST))]
static TEST_OPS: [Op; 0] = [];

fn all_ops() -> impl Iterator<Item = &'static Op> {
    Iterator::chain(OPS.iter(), TEST_OPS.iter())
}

#[kunit_tests(iommufd_rs_layout)]
mod layout_tests {
    use core::mem::offset_of;
    use kernel::bindings::{file, mm_struct, task_struct, user_struct};

    /// The bindgen layouts of the fields this module and its kernel-crate
    /// abstractions reach into agree with C's.
    #[test]
    fn bindings_match_c_layout() {
        let rust = [
            offset_of!(task_struct, mm),
            offset_of!(task_struct, group_leader),
            offset_of!(task_struct, pid),
            offset_of!(mm_struct, __bindgen_anon_1.mm_users),
            offset_of!(mm_struct, __bindgen_anon_1.pinned_vm),
            offset_of!(user_struct, locked_vm),
            offset_of!(file, private_data),
        ];
        for (i, off) in rust.into_iter().enumerate() {
            assert_eq!(off, crate::ffi::c_offset(i as u32));
        }
    }

    /// iommufd's C-layout objects (`kernel::iommu::iommufd`), which the
    /// kernel's built-in iommufd code and the IOMMU drivers use: bindgen's
    /// sizes and offsets agree with the C compiler's, field by field, in
    /// the order of `iommufd_layout.c`.
    #[test]
    fn iommufd_objects_match_c_layout() {
        use core::mem::size_of;
        use kernel::bindings::*;
        macro_rules! layout {
            ($($s:ident { $($f:ident),* })*) => {
                [$(size_of::<$s>(), $(offset_of!($s, $f)),*),*]
            };
        }
        let rust = layout! {
            iommufd_object { wait_cnt, users, type_, id }
            iommufd_ctx { mt_mmap, sw_msi_lock, sw_msi_list, sw_msi_id }
            iommufd_mmap { owner, vm_pgoff, mmio_addr, length }
            iommufd_device { obj, ictx, igroup, group_item, dev, vdev }
            iommufd_viommu {
                obj, ictx, iommu_dev, hwpt, ops, vdevs, veventqs, veventqs_rwsem, type_
            }
            iommufd_viommu_ops {
                destroy, alloc_domain_nested, cache_invalidate, vdevice_size, vdevice_init,
                get_hw_queue_size, hw_queue_init_phys
            }
            iommufd_vdevice { obj, viommu, idev, virt_id, destroy }
            iommufd_hw_queue { obj, viommu, access, base_addr, length, type_, destroy }
            iommufd_eventq { obj, ictx, filep, lock, deliver, wait_queue }
            iommufd_vevent { header, node, data_len, event_data }
            iommufd_veventq {
                common, viommu, node, type_, depth, num_events, sequence, lost_events_header
            }
        };
        for (i, v) in rust.into_iter().enumerate() {
            assert_eq!((i, v), (i, crate::ffi::c_layout(i as u32)));
        }
        // As many entries on both sides.
        assert_eq!(crate::ffi::c_layout(rust.len() as u32), usize::MAX);
    }
}

#[kunit_tests(iommufd_rs_ucmd)]
mod tests {
    use super::*;
    use core::mem::size_of;
    use kernel::ioctl::_IOC_NR;

    #[test]
    fn table_is_consistent() {
        for (i, a) in all_ops().enumerate() {
            // Every entry is a distinct command of the iommufd ioctl type.
            assert_eq!(
                kernel::ioctl::_IOC_TYPE(a.cmd),
                u32::from(uapi::IOMMUFD_TYPE)
            );
            for b in all_ops().skip(i + 1) {
                assert_ne!(_IOC_NR(a.cmd), _IOC_NR(b.cmd));
            }
            // The mandatory part fits in the structure and covers `size`.
            assert!(a.min_size >= size_of::<u32>());
            assert!(a.min_size <= a.size);
        }
    }

    #[test]
    fn minimum_sizes_match_the_uapi() {
        // offsetofend() of the last mandatory field, as the uAPI defines it.
        use uapi::*;
        let min = |nr| {
            OPS.iter()
                .find(|op| _IOC_NR(op.cmd) == nr)
                .unwrap()
                .min_size
        };
        assert_eq!(min(IOMMUFD_CMD_DESTROY), 8);
        assert_eq!(min(IOMMUFD_CMD_IOAS_ALLOC), 12);
        assert_eq!(min(IOMMUFD_CMD_IOAS_IOVA_RANGES), 32);
        assert_eq!(min(IOMMUFD_CMD_IOAS_MAP), 40);
        assert_eq!(min(IOMMUFD_CMD_IOAS_UNMAP), 24);
        assert_eq!(min(IOMMUFD_CMD_OPTION), 24);
        assert_eq!(min(IOMMUFD_CMD_VFIO_IOAS), 12);
    }
}
