// SPDX-License-Identifier: GPL-2.0

//! iommufd's objects as C lays them out, for an iommufd written in Rust.
//!
//! The vIOMMU objects of iommufd (vIOMMU, vDEVICE, vEVENTQ, HW queue) are
//! shared with code the iommufd does not own: the iommufd helpers built into
//! the kernel (`drivers/iommu/iommufd/driver.c`) and the vIOMMU code of IOMMU
//! drivers.  Both reach into them through the C structures of
//! `include/linux/iommufd.h` and of the private
//! `drivers/iommu/iommufd/iommufd_private.h`, and an IOMMU driver makes each
//! object bigger than the core's structure, its own state following it.
//! This module gives iommufd exactly those structures, laid out by bindgen
//! from the same headers:
//!
//! - [`CtxFace`]: the `struct iommufd_ctx` of a context, for its maple tree
//!   of mmap regions (`_iommufd_alloc_mmap()` fills it, [`CtxFace::mmap`]
//!   maps from it);
//! - [`DeviceFace`]: the `struct iommufd_device` of a bound device, which a
//!   vDEVICE points to (`iommufd_vdevice_to_device()` reads its `dev`);
//! - [`Viommu`], [`VDevice`], [`HwQueue`]: allocated at the size the driver
//!   asks for, the core structure first and filled in before the driver's
//!   initialiser runs, as the C iommufd does;
//! - [`VEventQ`]: the `struct iommufd_veventq` that
//!   `iommufd_viommu_report_event()` queues events on, read and polled here.
//!
//! The C header of each object counts its users (`obj.users`): drivers
//! add to it with `iommufd_hw_queue_depend()`, and every mapping of an mmap
//! region counts its owner.  iommufd must not destroy an object while such
//! users remain: [`Viommu::retire`] and [`HwQueue::retire`] mark an object
//! as going, atomically, only if none does.  Until it is published
//! ([`Viommu::publish`]) a vIOMMU counts no user at all, so that nothing
//! can map it while its creation may still be undone.  A HW queue counts
//! one from its creation on, as in C, since drivers depend on queues with
//! a plain `refcount_inc()`: a queue whose creation is undone after
//! another queue came to depend on it (the caller could not be told its
//! ID) goes all the same, as in C.
//!
//! C headers: [`include/linux/iommufd.h`](srctree/include/linux/iommufd.h),
//! [`drivers/iommu/iommufd/iommufd_private.h`](srctree/drivers/iommu/iommufd/iommufd_private.h)

use super::domain::{AllocFlags, Domain};
use super::user_data::{UserData, UserDataArray};
use crate::{
    alloc::{allocator::Kmalloc, Allocator, Flags, NumaNode},
    bindings,
    device::Device,
    error::{from_err_ptr, to_result},
    fs::File,
    mm::virt::{flags as vm, VmaNew},
    page::{PAGE_SHIFT, PAGE_SIZE},
    prelude::*,
    static_lock_class,
    sync::{aref::ARef, poll::PollTable, Arc, Mutex},
    types::Opaque,
    uaccess::UserSliceWriter,
};
use core::{alloc::Layout, cell::Cell, mem::size_of, ptr::NonNull};

/// `enum iommufd_object_type`
type ObjType = bindings::iommufd_object_type;

/// Fills the header of a new object: its type, its ID and `users`.  A
/// vIOMMU starts with none, so that nothing can map its regions before it
/// is published ([`publish`]): one that never is can go whatever happened
/// meanwhile.  A HW queue starts with one, as C's: drivers depend on their
/// queues with `refcount_inc()` from `hw_queue_init_phys` on.
///
/// # Safety
///
/// `obj` is valid for writes and not shared yet.
unsafe fn init_obj(obj: *mut bindings::iommufd_object, ty: ObjType, id: u32, users: u32) {
    // SAFETY: Per the function's requirements.
    unsafe {
        bindings::refcount_set(&raw mut (*obj).wait_cnt, 0);
        bindings::refcount_set(&raw mut (*obj).users, users as c_int);
        (*obj).type_ = ty;
        (*obj).id = id;
    }
}

/// Gives a published object the one user of its table: from then on
/// drivers and mappings can count it.
///
/// # Safety
///
/// `obj` is a valid object header from [`init_obj`] with no user.
unsafe fn publish(obj: *mut bindings::iommufd_object) {
    // SAFETY: Per the function's requirements.
    unsafe { bindings::refcount_set(&raw mut (*obj).users, 1) };
}

/// Marks an object as being destroyed if the user of its table
/// ([`publish`]) is its only one: from then on no driver or mapping can
/// count it.  `false` (and nothing changed) if some still do.
///
/// # Safety
///
/// `obj` is a valid object header.
unsafe fn retire(obj: *mut bindings::iommufd_object) -> bool {
    // SAFETY: Per the function's requirements.
    unsafe { bindings::refcount_dec_if_one(&raw mut (*obj).users) }
}

/// A zeroed, accounted allocation of at least a `T`, `T` at its start: an
/// object at the size its driver asks for.
struct CBox<T> {
    ptr: NonNull<T>,
    layout: Layout,
}

impl<T> CBox<T> {
    fn new_zeroed(size: usize) -> Result<Self> {
        if size < size_of::<T>() {
            return Err(EINVAL);
        }
        let layout =
            Layout::from_size_align(size, core::mem::align_of::<T>()).map_err(|_| ENOMEM)?;
        let flags: Flags = GFP_KERNEL_ACCOUNT | __GFP_ZERO;
        let ptr = Kmalloc::alloc(layout, flags, NumaNode::NO_NODE)?;
        Ok(Self {
            ptr: ptr.cast(),
            layout,
        })
    }

    fn as_ptr(&self) -> *mut T {
        self.ptr.as_ptr()
    }
}

impl<T> Drop for CBox<T> {
    fn drop(&mut self) {
        // SAFETY: Allocated by `Kmalloc` with this layout, freed once.
        unsafe { Kmalloc::free(self.ptr.cast(), self.layout) };
    }
}

// SAFETY: A `CBox` is plain memory; its users say who may touch it when.
unsafe impl<T> Send for CBox<T> {}
// SAFETY: As above.
unsafe impl<T> Sync for CBox<T> {}

/// The `struct iommufd_ctx` of a context: what the built-in helpers and
/// the drivers read of it.  Of its fields only these are live: `mt_mmap`,
/// the maple tree of the context's mmap regions, and the (Arm) software
/// MSI list, lock and counter; the rest is the Rust iommufd's own business
/// and stays zero.
#[pin_data(PinnedDrop)]
pub struct CtxFace {
    #[pin]
    raw: Opaque<bindings::iommufd_ctx>,
}

// SAFETY: The maple tree and the list have locks of their own, which the
// built-in helpers take; nothing else changes after initialisation.
unsafe impl Send for CtxFace {}
// SAFETY: As above.
unsafe impl Sync for CtxFace {}

impl CtxFace {
    /// A new, empty face.
    pub fn new() -> Result<Arc<Self>> {
        let key = static_lock_class!();
        Arc::pin_init(
            pin_init!(Self {
                raw <- Opaque::ffi_init(move |p: *mut bindings::iommufd_ctx| {
                    // SAFETY: `p` is ours and pinned; all-zero is a valid
                    // start for every field, and those used are set up.
                    unsafe {
                        core::ptr::write_bytes(p, 0, 1);
                        bindings::mt_init_flags(
                            &raw mut (*p).mt_mmap,
                            bindings::MT_FLAGS_ALLOC_RANGE,
                        );
                        bindings::__mutex_init(
                            &raw mut (*p).sw_msi_lock,
                            c"iommufd_ctx::sw_msi_lock".as_char_ptr(),
                            key.as_ptr(),
                        );
                        bindings::INIT_LIST_HEAD(&raw mut (*p).sw_msi_list);
                    }
                }),
            }),
            GFP_KERNEL,
        )
    }

    fn as_ptr(&self) -> *mut bindings::iommufd_ctx {
        self.raw.get()
    }

    /// Maps into `vma` the mmap region its page offset names: the region an
    /// object of the context registered (`_iommufd_alloc_mmap()`), exactly
    /// (its offset and its length), shared and not executable.  Each
    /// mapping counts a user of the region's owner until it goes, so that
    /// the owner is not destroyed under it.
    pub fn mmap(&self, vma: &VmaNew) -> Result {
        let len = vma.end() - vma.start();
        if len % PAGE_SIZE != 0 || vma.flags() & vm::SHARED == 0 {
            return Err(EINVAL);
        }
        if vma.flags() & vm::EXEC != 0 {
            return Err(EPERM);
        }
        let raw = vma.as_ptr();
        // SAFETY: The VMA is being set up by our mmap and is ours.
        let pgoff = unsafe { (*raw).vm_pgoff };
        let mt = self.mt();
        // SAFETY: `mt` is our live tree; under its lock an entry found stays
        // (the helpers erase entries under it, and free them only once no
        // lookup can find them), and its owner is live while its count is
        // not zero.
        let immap = unsafe {
            bindings::spin_lock(&raw mut (*mt).__bindgen_anon_1.ma_lock);
            let e = bindings::mtree_load(mt, (pgoff << PAGE_SHIFT) as c_ulong)
                .cast::<bindings::iommufd_mmap>();
            let ok = !e.is_null() && bindings::refcount_inc_not_zero(&raw mut (*(*e).owner).users);
            bindings::spin_unlock(&raw mut (*mt).__bindgen_anon_1.ma_lock);
            if !ok {
                return Err(ENXIO);
            }
            e
        };
        // From here the VMA's count of the owner keeps the entry.
        // SAFETY: As above; a load finds the entry for any offset inside it,
        // so only its exact start and length are taken.
        unsafe {
            if (*immap).vm_pgoff != pgoff || (*immap).length != len {
                bindings::refcount_dec(&raw mut (*(*immap).owner).users);
                return Err(ENXIO);
            }
            (*raw).vm_pgoff = 0;
            (*raw).vm_private_data = immap.cast();
            (*raw).vm_ops = &VM_OPS.0;
            (*raw).vm_page_prot = bindings::pgprot_noncached((*raw).vm_page_prot);
            let rc = bindings::io_remap_pfn_range(
                raw,
                vma.start() as c_ulong,
                ((*immap).mmio_addr >> PAGE_SHIFT) as c_ulong,
                len as c_ulong,
                (*raw).vm_page_prot,
            );
            if rc != 0 {
                bindings::refcount_dec(&raw mut (*(*immap).owner).users);
                return Err(Error::from_errno(rc));
            }
        }
        Ok(())
    }

    fn mt(&self) -> *mut bindings::maple_tree {
        // SAFETY: The face is initialised; a field of it.
        unsafe { &raw mut (*self.as_ptr()).mt_mmap }
    }
}

#[pinned_drop]
impl PinnedDrop for CtxFace {
    fn drop(self: Pin<&mut Self>) {
        let mt = self.mt();
        // SAFETY: The tree is initialised.
        let left = unsafe { !(*mt).ma_root.is_null() };
        // Every owner of a region (an object of the context) is gone, and
        // with it its regions.
        crate::warn_on!(left);
        // SAFETY: The tree is initialised and nothing uses it any more.
        unsafe { bindings::mtree_destroy(mt) };
    }
}

/// C's vm_operations_struct, shareable.
struct VmOps(bindings::vm_operations_struct);

// SAFETY: Function pointers only, never written.
unsafe impl Sync for VmOps {}

/// The operations of a mapped region: each VMA counts a user of the
/// region's owner.
static VM_OPS: VmOps = VmOps(bindings::vm_operations_struct {
    open: Some(vma_open),
    close: Some(vma_close),
    // SAFETY: All-zero is a valid `vm_operations_struct` (no operation).
    ..unsafe { core::mem::zeroed() }
});

/// `vm_operations_struct::open`: a copy of a mapping (fork, split) counts
/// the owner again.
///
/// # Safety
///
/// Called by the mm with a VMA set up by [`CtxFace::mmap`].
unsafe extern "C" fn vma_open(vma: *mut bindings::vm_area_struct) {
    // SAFETY: The VMA's private data is its region, whose owner the VMA
    // it was copied from counts.
    unsafe {
        let immap = (*vma).vm_private_data.cast::<bindings::iommufd_mmap>();
        bindings::refcount_inc(&raw mut (*(*immap).owner).users);
    }
}

/// `vm_operations_struct::close`: gives back the VMA's count.
///
/// # Safety
///
/// As for [`vma_open`].
unsafe extern "C" fn vma_close(vma: *mut bindings::vm_area_struct) {
    // SAFETY: As in `vma_open`; the VMA's count keeps the owner until this.
    unsafe {
        let immap = (*vma).vm_private_data.cast::<bindings::iommufd_mmap>();
        bindings::refcount_dec(&raw mut (*(*immap).owner).users);
    }
}

/// The `struct iommufd_device` of a bound device: its object header (type
/// device, the device's ID), its context and its device, which
/// `iommufd_vdevice_to_device()` reads.  The other fields stay zero.
#[pin_data]
pub struct DeviceFace {
    #[pin]
    raw: Opaque<bindings::iommufd_device>,
    _ctx: Arc<CtxFace>,
    dev: ARef<Device>,
}

// SAFETY: Written only by the initialiser; then read.
unsafe impl Send for DeviceFace {}
// SAFETY: As above.
unsafe impl Sync for DeviceFace {}

impl DeviceFace {
    /// The face of `dev`, bound in `ctx` as object `id`.
    pub fn new(ctx: &Arc<CtxFace>, dev: ARef<Device>, id: u32) -> Result<Arc<Self>> {
        let ictx = ctx.as_ptr();
        let rdev = dev.as_raw();
        Arc::pin_init(
            pin_init!(Self {
                raw <- Opaque::ffi_init(move |p: *mut bindings::iommufd_device| {
                    // SAFETY: `p` is ours and pinned; zero is a valid start.
                    unsafe {
                        core::ptr::write_bytes(p, 0, 1);
                        init_obj(&raw mut (*p).obj, bindings::iommufd_object_type_IOMMUFD_OBJ_DEVICE, id, 1);
                        (*p).ictx = ictx;
                        (*p).dev = rdev;
                        bindings::INIT_LIST_HEAD(&raw mut (*p).group_item);
                    }
                }),
                _ctx: ctx.clone(),
                dev,
            }),
            GFP_KERNEL,
        )
    }

    /// The device.
    pub fn device(&self) -> &Device {
        &self.dev
    }

    fn as_ptr(&self) -> *mut bindings::iommufd_device {
        self.raw.get()
    }
}

/// The IOMMU instance of `dev`, if it has one.
fn iommu_dev_of(dev: &Device) -> Option<NonNull<bindings::iommu_device>> {
    // SAFETY: `dev` is valid; its IOMMU data, set at probe, stays while the
    // device is bound to a driver (iommufd's callers keep it bound).
    unsafe {
        let iommu = (*dev.as_raw()).iommu;
        if iommu.is_null() {
            return None;
        }
        NonNull::new((*iommu).iommu_dev)
    }
}

/// What allocating a vIOMMU of a given type for a device takes: its
/// IOMMU, whose driver offers the type, and the size the driver wants.
pub struct ViommuType {
    iommu_dev: NonNull<bindings::iommu_device>,
    ty: u32,
    size: usize,
}

/// A vIOMMU: the `struct iommufd_viommu` at the start of the driver's
/// structure, at the size the driver asked for.  It keeps the context's
/// face (its `ictx`) and its nesting parent's domain, which the driver
/// uses, until it is destroyed: the driver's `destroy` op, then the core's
/// part.
///
/// Its `hwpt` stays NULL: the parent is a HWPT of the Rust iommufd, not a C
/// one (no driver reads it; they get the parent's domain at init).
pub struct Viommu {
    raw: CBox<bindings::iommufd_viommu>,
    _ctx: Arc<CtxFace>,
    _parent: Arc<Domain>,
}

impl Viommu {
    /// Whether the IOMMU of `dev` offers vIOMMUs of type `ty`
    /// (`IOMMU_VIOMMU_TYPE_*`): `EOPNOTSUPP` if not.
    pub fn find_type(dev: &Device, ty: u32) -> Result<ViommuType> {
        let iommu_dev = iommu_dev_of(dev).ok_or(EOPNOTSUPP)?;
        // SAFETY: The IOMMU of a bound device and its ops are live.
        let ops = unsafe { &*(*iommu_dev.as_ptr()).ops };
        let (Some(size_of_ty), Some(_)) = (ops.get_viommu_size, ops.viommu_init) else {
            return Err(EOPNOTSUPP);
        };
        // SAFETY: `dev` is a device of this driver.
        let size = unsafe { size_of_ty(dev.as_raw(), ty) };
        if size == 0 {
            return Err(EOPNOTSUPP);
        }
        // A driver bug: the core's structure comes first.
        if crate::warn_on!(size < size_of::<bindings::iommufd_viommu>()) {
            return Err(EOPNOTSUPP);
        }
        Ok(ViommuType {
            iommu_dev,
            ty,
            size,
        })
    }

    /// A new vIOMMU of type `t`, object `id` of the context `ctx`, nesting
    /// on `parent` (a nest-parent paging domain of the same IOMMU), made by
    /// the driver from user space's `data` if any.
    pub fn new(
        t: ViommuType,
        ctx: &Arc<CtxFace>,
        id: u32,
        parent: &Arc<Domain>,
        data: Option<&UserData>,
    ) -> Result<Arc<Self>> {
        let raw = CBox::<bindings::iommufd_viommu>::new_zeroed(t.size)?;
        let v = raw.as_ptr();
        // SAFETY: `v` is new and ours; the core's part is filled in before
        // the driver sees it.
        unsafe {
            init_obj(
                &raw mut (*v).obj,
                bindings::iommufd_object_type_IOMMUFD_OBJ_VIOMMU,
                id,
                0,
            );
            bindings::xa_init_flags(&raw mut (*v).vdevs, 0);
            (*v).type_ = t.ty;
            (*v).ictx = ctx.as_ptr();
            (*v).iommu_dev = t.iommu_dev.as_ptr();
            bindings::INIT_LIST_HEAD(&raw mut (*v).veventqs);
            bindings::__init_rwsem(
                &raw mut (*v).veventqs_rwsem,
                c"iommufd_viommu::veventqs_rwsem".as_char_ptr(),
                static_lock_class!().as_ptr(),
            );
        }
        // From here dropping it runs the driver's `destroy`, if its
        // initialiser set the ops.
        let viommu = Arc::new(
            Viommu {
                raw,
                _ctx: ctx.clone(),
                _parent: parent.clone(),
            },
            GFP_KERNEL_ACCOUNT,
        )?;
        // SAFETY: The IOMMU is live (`find_type`); it has the op.
        let init = unsafe { (*(*t.iommu_dev.as_ptr()).ops).viommu_init }.ok_or(EOPNOTSUPP)?;
        let data = data.map_or(core::ptr::null(), |d| d.as_raw());
        // SAFETY: `v` is initialised as the driver expects; the parent is a
        // live domain the vIOMMU keeps; `data` is NULL or describes user
        // memory, for the call.
        to_result(unsafe { init(v, parent.as_ptr(), data) })?;
        // A driver bug: the initialiser must set the ops.
        if crate::warn_on!(viommu.ops().is_none()) {
            return Err(EOPNOTSUPP);
        }
        Ok(viommu)
    }

    fn ptr(&self) -> *mut bindings::iommufd_viommu {
        self.raw.as_ptr()
    }

    /// The driver's vIOMMU ops, once its initialiser set them.
    fn ops(&self) -> Option<&bindings::iommufd_viommu_ops> {
        // SAFETY: The ops, if set, are the driver's, which live at least as
        // long as its vIOMMUs (a C driver's are static; a Rust driver's
        // registration waits for its vIOMMUs to go).
        unsafe { (*self.ptr()).ops.as_ref() }
    }

    /// Makes the vIOMMU countable (mappable), once it is published.
    pub fn publish(&self) {
        // SAFETY: Our live header, published once.
        unsafe { publish(&raw mut (*self.ptr()).obj) }
    }

    /// Marks the vIOMMU as being destroyed, unless a mapping of one of its
    /// mmap regions counts it: `false` then (`EBUSY` for its destroy).
    /// Once marked, no new mapping can count it.
    pub fn retire(&self) -> bool {
        // SAFETY: Our live header.
        unsafe { retire(&raw mut (*self.ptr()).obj) }
    }

    /// Whether the vIOMMU is of the IOMMU of `dev`.
    pub fn serves(&self, dev: &Device) -> bool {
        // SAFETY: Set at creation, never changed.
        let mine = unsafe { (*self.ptr()).iommu_dev };
        iommu_dev_of(dev).is_some_and(|d| d.as_ptr() == mine)
    }

    /// A new nested domain on the vIOMMU, which it keeps alive: described
    /// by user space's `data`, made with `flags`.  `EOPNOTSUPP` if the
    /// driver makes none.
    pub fn alloc_nested(self: &Arc<Self>, flags: AllocFlags, data: &UserData) -> Result<Domain> {
        let alloc = self
            .ops()
            .and_then(|o| o.alloc_domain_nested)
            .ok_or(EOPNOTSUPP)?;
        // SAFETY: Our initialised vIOMMU; `data` describes user memory the
        // driver copies from during the call.
        let d = from_err_ptr(unsafe { alloc(self.ptr(), flags.into(), data.as_raw()) })?;
        let d = NonNull::new(d).ok_or(ENOMEM)?;
        // SAFETY: Set at creation: the IOMMU and its ops are live.
        let owner = unsafe { (*(*self.ptr()).iommu_dev).ops };
        Domain::from_viommu(d, owner, self.clone())
    }

    /// Has the driver invalidate the caches of the vIOMMU as the entries of
    /// `array` say; `array` then tells how many were handled, also on
    /// failure.  `EOPNOTSUPP` if the driver has no such caches.
    pub fn cache_invalidate(&self, array: &mut UserDataArray) -> Result {
        let Some(op) = self.ops().and_then(|o| o.cache_invalidate) else {
            array.set_done(0);
            return Err(EOPNOTSUPP);
        };
        // SAFETY: Our vIOMMU; `array` describes user memory and is ours for
        // the call.
        to_result(unsafe { op(self.ptr(), array.as_raw()) })
    }

    /// A new vDEVICE of the vIOMMU: the bound device `idev` as the guest
    /// sees it, with the virtual ID `virt_id`, object `id` of the context.
    /// `EEXIST` if the ID is taken on this vIOMMU, `EINVAL` if it cannot
    /// index the vIOMMU's table.
    pub fn new_vdevice(
        self: &Arc<Self>,
        idev: &Arc<DeviceFace>,
        virt_id: u64,
        id: u32,
    ) -> Result<VDevice> {
        let index = usize::try_from(virt_id).map_err(|_| EINVAL)?;
        let mut size = size_of::<bindings::iommufd_vdevice>();
        let init = self.ops().and_then(|o| o.vdevice_init);
        if let Some(ops) = self.ops().filter(|o| o.vdevice_size != 0) {
            // A driver bug: the core's structure comes first, and a size
            // needs an initialiser.
            if crate::warn_on!(ops.vdevice_size < size || init.is_none()) {
                return Err(EOPNOTSUPP);
            }
            size = ops.vdevice_size;
        }
        let raw = CBox::<bindings::iommufd_vdevice>::new_zeroed(size)?;
        let p = raw.as_ptr();
        // SAFETY: `p` is new and ours.
        unsafe {
            init_obj(
                &raw mut (*p).obj,
                bindings::iommufd_object_type_IOMMUFD_OBJ_VDEVICE,
                id,
                1,
            );
            (*p).virt_id = virt_id;
            (*p).viommu = self.ptr();
            (*p).idev = idev.as_ptr();
        }
        let vdevs = self.vdevs();
        // Reserved until the driver accepts the vDEVICE: lookups see
        // nothing there meanwhile.
        // SAFETY: Our live table.
        let rc = unsafe {
            bindings::xa_insert(vdevs, index, core::ptr::null_mut(), GFP_KERNEL.as_raw())
        };
        if rc != 0 {
            return Err(if rc == EBUSY.to_errno() {
                EEXIST
            } else {
                Error::from_errno(rc)
            });
        }
        let mut vdev = VDevice {
            raw,
            index: Some(index),
            viommu: self.clone(),
            _idev: idev.clone(),
        };
        if let Some(init) = init {
            // SAFETY: The core's part of `p` is filled in.
            if let Err(e) = to_result(unsafe { init(p) }) {
                // SAFETY: The slot reserved above.
                unsafe { bindings::xa_release(vdevs, index) };
                return Err(e);
            }
        }
        // SAFETY: Stored in the slot reserved above: no allocation.
        let old = unsafe { bindings::xa_store(vdevs, index, p.cast(), GFP_KERNEL.as_raw()) };
        // SAFETY: `old` is what `xa_store` returned.
        if unsafe { bindings::xa_err(old) } != 0 {
            // Not reached for a reserved slot.
            vdev.index = None;
            // SAFETY: As above.
            unsafe { bindings::xa_release(vdevs, index) };
            return Err(ENOMEM);
        }
        Ok(vdev)
    }

    fn vdevs(&self) -> *mut bindings::xarray {
        // SAFETY: A field of our vIOMMU.
        unsafe { &raw mut (*self.ptr()).vdevs }
    }

    /// The size of the driver's HW queues of type `ty`
    /// (`IOMMU_HW_QUEUE_TYPE_*`); `EOPNOTSUPP` if it has none.
    pub fn hw_queue_size(&self, ty: u32) -> Result<usize> {
        let ops = self.ops().ok_or(EOPNOTSUPP)?;
        let (Some(size_of_ty), Some(_)) = (ops.get_hw_queue_size, ops.hw_queue_init_phys) else {
            return Err(EOPNOTSUPP);
        };
        // SAFETY: Our vIOMMU.
        let size = unsafe { size_of_ty(self.ptr(), ty) };
        if size == 0 {
            return Err(EOPNOTSUPP);
        }
        // A driver bug: the core's structure comes first.
        if crate::warn_on!(size < size_of::<bindings::iommufd_hw_queue>()) {
            return Err(EOPNOTSUPP);
        }
        Ok(size)
    }

    /// A new HW queue of type `ty` and `size` ([`Viommu::hw_queue_size`]),
    /// object `id` of the context: the guest's queue of `length` bytes at
    /// `base_iova` of the nesting parent, at the physical address `base_pa`
    /// (which the caller keeps pinned for the queue's life), the `index`th
    /// queue of the vIOMMU.
    #[allow(clippy::too_many_arguments)]
    pub fn new_hw_queue(
        self: &Arc<Self>,
        ty: u32,
        size: usize,
        id: u32,
        index: u32,
        base_iova: u64,
        length: usize,
        base_pa: u64,
    ) -> Result<HwQueue> {
        let init = self
            .ops()
            .and_then(|o| o.hw_queue_init_phys)
            .ok_or(EOPNOTSUPP)?;
        let raw = CBox::<bindings::iommufd_hw_queue>::new_zeroed(size)?;
        let p = raw.as_ptr();
        // SAFETY: `p` is new and ours.  `access` stays NULL: the pinning
        // access is the Rust iommufd's (no driver reads it).
        unsafe {
            init_obj(
                &raw mut (*p).obj,
                bindings::iommufd_object_type_IOMMUFD_OBJ_HW_QUEUE,
                id,
                1,
            );
            (*p).viommu = self.ptr();
            (*p).type_ = ty;
            (*p).length = length;
            (*p).base_addr = base_iova;
        }
        // From here dropping it runs the driver's `destroy`, if set.
        let q = HwQueue {
            raw,
            _viommu: self.clone(),
        };
        // SAFETY: The core's part of `p` is filled in.
        to_result(unsafe { init(p, index, base_pa) })?;
        Ok(q)
    }

    /// A new vEVENTQ of the vIOMMU for events of type `ty`
    /// (`IOMMU_VEVENTQ_TYPE_*`), holding at most `depth` events, object
    /// `id` of the context.  `EEXIST` if the vIOMMU has one of that type.
    pub fn new_veventq(
        self: &Arc<Self>,
        ty: u32,
        depth: u32,
        id: u32,
    ) -> Result<Pin<KBox<VEventQ>>> {
        let v = self.ptr();
        // SAFETY: `ctx` lives as long as the vIOMMU.
        let ictx = unsafe { (*v).ictx };
        let lock_key = static_lock_class!();
        let wq_key = static_lock_class!();
        let q = KBox::pin_init(
            pin_init!(VEventQ {
                raw <- Opaque::ffi_init(move |p: *mut bindings::iommufd_veventq| {
                    // SAFETY: `p` is ours and pinned; zero is a valid start.
                    unsafe {
                        core::ptr::write_bytes(p, 0, 1);
                        let c = &raw mut (*p).common;
                        init_obj(&raw mut (*c).obj, bindings::iommufd_object_type_IOMMUFD_OBJ_VEVENTQ, id, 1);
                        (*c).ictx = ictx;
                        bindings::__spin_lock_init(
                            &raw mut (*c).lock,
                            c"iommufd_eventq::lock".as_char_ptr(),
                            lock_key.as_ptr(),
                        );
                        bindings::INIT_LIST_HEAD(&raw mut (*c).deliver);
                        bindings::__init_waitqueue_head(
                            &raw mut (*c).wait_queue,
                            c"iommufd_eventq::wait_queue".as_char_ptr(),
                            wq_key.as_ptr(),
                        );
                        (*p).viommu = v;
                        bindings::INIT_LIST_HEAD(&raw mut (*p).node);
                        (*p).type_ = ty;
                        (*p).depth = depth;
                        (*p).lost_events_header.header.flags =
                            bindings::iommu_veventq_flag_IOMMU_VEVENTQ_FLAG_LOST_EVENTS;
                        bindings::INIT_LIST_HEAD(&raw mut (*p).lost_events_header.node);
                    }
                }),
                viommu: self.clone(),
            }),
            GFP_KERNEL_ACCOUNT,
        )?;
        // SAFETY: The vIOMMU's list, under its lock; the queue is pinned and
        // unlinks itself when dropped.
        unsafe {
            let sem = &raw mut (*v).veventqs_rwsem;
            bindings::down_write(sem);
            let head = &raw mut (*v).veventqs;
            let mut cur = (*head).next;
            while cur != head {
                let other = crate::container_of!(cur, bindings::iommufd_veventq, node);
                if (*other).type_ == ty {
                    bindings::up_write(sem);
                    return Err(EEXIST);
                }
                cur = (*cur).next;
            }
            bindings::list_add_tail(&raw mut (*q.ptr()).node, head);
            bindings::up_write(sem);
        }
        Ok(q)
    }
}

impl Drop for Viommu {
    fn drop(&mut self) {
        if let Some(destroy) = self.ops().and_then(|o| o.destroy) {
            // SAFETY: Our vIOMMU, which nothing uses any more (its vDEVICEs,
            // vEVENTQs, HW queues and nested domains keep it alive).
            unsafe { destroy(self.ptr()) };
        }
        // SAFETY: Empty: every vDEVICE took itself out.
        unsafe { bindings::xa_destroy(self.vdevs()) };
    }
}

/// A vDEVICE: the `struct iommufd_vdevice` at the start of the driver's
/// structure (if it has one), listed in its vIOMMU's table under its
/// virtual ID, where the driver finds it.  It keeps its vIOMMU and its
/// device's face.
pub struct VDevice {
    raw: CBox<bindings::iommufd_vdevice>,
    /// Its slot in the vIOMMU's table, while it has one.
    index: Option<usize>,
    viommu: Arc<Viommu>,
    _idev: Arc<DeviceFace>,
}

impl VDevice {
    /// The virtual ID.
    pub fn virt_id(&self) -> u64 {
        // SAFETY: Set at creation, never changed.
        unsafe { (*self.raw.as_ptr()).virt_id }
    }
}

impl Drop for VDevice {
    fn drop(&mut self) {
        let p = self.raw.as_ptr();
        // SAFETY: Our vDEVICE.  The driver's `destroy`, if it set one, then
        // out of the table (under its lock, so that no lookup still uses
        // it), if it got in.
        unsafe {
            if let Some(destroy) = (*p).destroy {
                destroy(p);
            }
            if let Some(index) = self.index {
                bindings::xa_cmpxchg(
                    self.viommu.vdevs(),
                    index,
                    p.cast(),
                    core::ptr::null_mut(),
                    GFP_KERNEL.as_raw(),
                );
            }
        }
    }
}

/// A HW queue: the `struct iommufd_hw_queue` at the start of the driver's
/// structure.  It keeps its vIOMMU.
pub struct HwQueue {
    raw: CBox<bindings::iommufd_hw_queue>,
    _viommu: Arc<Viommu>,
}

impl HwQueue {
    /// Marks the queue as being destroyed, unless another queue depends on
    /// it (`iommufd_hw_queue_depend()`): `false` then (`EBUSY` for its
    /// destroy).  Once marked, no new dependency on it can be taken.
    pub fn retire(&self) -> bool {
        // SAFETY: Our live header.
        unsafe { retire(&raw mut (*self.raw.as_ptr()).obj) }
    }
}

impl Drop for HwQueue {
    fn drop(&mut self) {
        let p = self.raw.as_ptr();
        // SAFETY: Our HW queue.  Once published, nothing depends on it any
        // more (it was retired); a queue whose creation is undone may have
        // a dependent, as in C (see the module documentation).
        unsafe {
            if let Some(destroy) = (*p).destroy {
                destroy(p);
            }
        }
    }
}

/// `sizeof(struct iommufd_vevent_header)`
const VEVENT_HDR: usize = size_of::<bindings::iommufd_vevent_header>();

/// A vEVENTQ: the `struct iommufd_veventq` on its vIOMMU's list, which
/// `iommufd_viommu_report_event()` queues `struct iommufd_vevent`s on and
/// wakes.  Reading takes them off; when the queue is full the helper
/// queues the embedded lost-events header instead, which reading reports.
#[pin_data(PinnedDrop)]
pub struct VEventQ {
    #[pin]
    raw: Opaque<bindings::iommufd_veventq>,
    viommu: Arc<Viommu>,
}

// SAFETY: The queue is changed under its lock, the list under the vIOMMU's
// semaphore.
unsafe impl Send for VEventQ {}
// SAFETY: As above.
unsafe impl Sync for VEventQ {}

impl VEventQ {
    fn ptr(&self) -> *mut bindings::iommufd_veventq {
        self.raw.get()
    }

    fn lock(&self) -> *mut bindings::spinlock_t {
        // SAFETY: A field of our queue.
        unsafe { &raw mut (*self.ptr()).common.lock }
    }

    fn deliver(&self) -> *mut bindings::list_head {
        // SAFETY: A field of our queue.
        unsafe { &raw mut (*self.ptr()).common.deliver }
    }

    fn lost(&self) -> *mut bindings::iommufd_vevent {
        // SAFETY: A field of our queue.
        unsafe { &raw mut (*self.ptr()).lost_events_header }
    }

    /// Takes the first event off the queue: the event, and its header and
    /// its data length as they were then (the lost-events header is
    /// embedded, and may change once the lock is dropped).
    fn fetch(
        &self,
    ) -> Option<(
        *mut bindings::iommufd_vevent,
        bindings::iommufd_vevent_header,
        usize,
    )> {
        // SAFETY: Our queue, under its lock: the events on it are the
        // helper's allocations or the embedded header.
        unsafe {
            bindings::spin_lock(self.lock());
            let head = self.deliver();
            let out = if bindings::list_empty(head) != 0 {
                None
            } else {
                let e = crate::container_of!((*head).next, bindings::iommufd_vevent, node);
                bindings::list_del_init(&raw mut (*e).node);
                let len = if e == self.lost() {
                    0
                } else {
                    usize::try_from((*e).data_len).unwrap_or(0)
                };
                Some((e, (*e).header, len))
            };
            bindings::spin_unlock(self.lock());
            out
        }
    }

    /// Puts back an event [`VEventQ::fetch`] took, first.  The lost-events
    /// header goes back only to an empty queue: an event queued since tells
    /// the loss by its sequence number.
    fn restore(&self, e: *mut bindings::iommufd_vevent) {
        // SAFETY: As in `fetch`; `e` is off the queue and ours.
        unsafe {
            bindings::spin_lock(self.lock());
            let head = self.deliver();
            if e != self.lost() || bindings::list_empty(head) != 0 {
                bindings::list_add(&raw mut (*e).node, head);
            }
            bindings::spin_unlock(self.lock());
        }
    }

    /// Reads queued events into `out`, each its header and its data, as
    /// many whole ones as fit: the bytes written.  `EINVAL` if `out` cannot
    /// take a header, or the first event does not fit; `EFAULT` if nothing
    /// could be written.
    pub fn read(&self, mut out: UserSliceWriter) -> Result<usize> {
        let count = out.len();
        if count < VEVENT_HDR {
            return Err(EINVAL);
        }
        let mut done = 0usize;
        let mut res = Ok(());
        while let Some((e, hdr, len)) = self.fetch() {
            let room = count - done;
            if VEVENT_HDR > room {
                self.restore(e);
                break;
            }
            if VEVENT_HDR + len > room {
                self.restore(e);
                if done == 0 {
                    res = Err(EINVAL);
                }
                break;
            }
            // SAFETY: A normal event is ours once off the queue, `len` bytes
            // of data after its header.
            let data = unsafe {
                core::slice::from_raw_parts((&raw const (*e).event_data).cast::<u8>(), len)
            };
            let hbytes = [hdr.flags.to_ne_bytes(), hdr.sequence.to_ne_bytes()];
            if out.write_slice(hbytes.as_flattened()).is_err() || out.write_slice(data).is_err() {
                self.restore(e);
                res = Err(EFAULT);
                break;
            }
            done += VEVENT_HDR + len;
            if e != self.lost() {
                // SAFETY: Our queue's count, under its lock; `e` is the
                // helper's allocation, ours now.
                unsafe {
                    bindings::spin_lock(self.lock());
                    (*self.ptr()).num_events -= 1;
                    bindings::spin_unlock(self.lock());
                    bindings::kfree(e.cast());
                }
            }
        }
        if done == 0 {
            res.map(|()| 0)
        } else {
            Ok(done)
        }
    }

    /// `poll()`: waits on the queue's wait queue, which the helper wakes;
    /// readable when an event is queued.
    pub fn poll(&self, file: &File, table: &PollTable<'_>) -> u32 {
        // SAFETY: The file is being polled; the wait queue lives as long as
        // the file (which keeps the queue's object); the table is NULL or
        // valid for the call.
        unsafe {
            bindings::poll_wait(
                file.as_ptr(),
                &raw mut (*self.ptr()).common.wait_queue,
                table.as_raw(),
            );
            bindings::spin_lock(self.lock());
            let ready = bindings::list_empty(self.deliver()) == 0;
            bindings::spin_unlock(self.lock());
            if ready {
                bindings::POLLIN | bindings::POLLRDNORM
            } else {
                0
            }
        }
    }
}

#[pinned_drop]
impl PinnedDrop for VEventQ {
    fn drop(self: Pin<&mut Self>) {
        let v = self.viommu.ptr();
        // SAFETY: Off the vIOMMU's list under its semaphore, so that no
        // report finds it; then the events left are ours.
        unsafe {
            bindings::down_write(&raw mut (*v).veventqs_rwsem);
            bindings::list_del_init(&raw mut (*self.ptr()).node);
            bindings::up_write(&raw mut (*v).veventqs_rwsem);
            while let Some((e, _, _)) = self.fetch() {
                if e != self.lost() {
                    bindings::kfree(e.cast());
                }
            }
        }
    }
}

/// What an IOMMU driver's vIOMMU code sees of one of its vIOMMUs: the
/// built-in helpers that work on it.
pub struct ViommuCore<'a> {
    raw: *mut bindings::iommufd_viommu,
    parent: *mut bindings::iommu_domain,
    mmaps: &'a Mutex<KVec<c_ulong>>,
}

impl<'a> ViommuCore<'a> {
    /// Wraps a vIOMMU, its nesting parent and the list of its mmap regions
    /// (which its driver's abstraction destroys with it).
    ///
    /// # Safety
    ///
    /// `raw` is a vIOMMU whose core part is initialised (by iommufd) and
    /// `parent` its parent's domain, both valid for `'a`.
    // For the Rust IOMMU drivers (`driver`: `CONFIG_IOMMUFD_TEST` so far).
    #[cfg_attr(not(CONFIG_IOMMUFD_TEST), allow(dead_code))]
    pub(super) unsafe fn from_raw(
        raw: *mut bindings::iommufd_viommu,
        parent: *mut bindings::iommu_domain,
        mmaps: &'a Mutex<KVec<c_ulong>>,
    ) -> Self {
        Self { raw, parent, mmaps }
    }

    /// The device of the vDEVICE with the virtual ID `vdev_id`, if the
    /// vIOMMU has one (`iommufd_viommu_find_dev()`, under the lock of the
    /// vIOMMU's table, which it wants), with a reference of its own.
    pub fn find_dev(&self, vdev_id: u64) -> Option<ARef<Device>> {
        let index = c_ulong::try_from(vdev_id).ok()?;
        // SAFETY: The vIOMMU is valid; under its table's lock the device
        // found stays, and we take a reference before dropping it.
        unsafe {
            let vdevs = &raw mut (*self.raw).vdevs;
            bindings::xa_lock(vdevs);
            let dev = bindings::iommufd_viommu_find_dev(self.raw, index);
            let out = (!dev.is_null()).then(|| {
                let dev: &Device = Device::from_raw(dev);
                ARef::from(dev)
            });
            bindings::xa_unlock(vdevs);
            out
        }
    }

    /// The virtual ID of the vDEVICE of `dev` on this vIOMMU
    /// (`iommufd_viommu_get_vdev_id()`): `ENOENT` if there is none.
    pub fn vdev_id_of(&self, dev: &Device) -> Result<u64> {
        let mut id: c_ulong = 0;
        // SAFETY: The vIOMMU and the device are valid.
        to_result(unsafe {
            bindings::iommufd_viommu_get_vdev_id(self.raw, dev.as_raw(), &mut id)
        })?;
        Ok(id as u64)
    }

    /// Reports a vIOMMU event of type `ty` (`IOMMU_VEVENTQ_TYPE_*`) with
    /// `data` to the vEVENTQ of that type (`iommufd_viommu_report_event()`):
    /// `EOPNOTSUPP` if there is none; `ENOMEM` if the event was lost.
    pub fn report_event(&self, ty: u32, data: &[u8]) -> Result {
        if data.is_empty() {
            return Err(EINVAL);
        }
        // SAFETY: The vIOMMU is valid; the helper copies the data.
        to_result(unsafe {
            bindings::iommufd_viommu_report_event(
                self.raw,
                ty,
                data.as_ptr().cast_mut().cast(),
                data.len(),
            )
        })
    }

    /// Registers `length` bytes of physical memory at `phys` (both page
    /// aligned, `EINVAL` if not) as an mmap region of the vIOMMU's
    /// context, owned by the vIOMMU (`_iommufd_alloc_mmap()`): the offset
    /// user space maps it at.  The region goes with the vIOMMU, after the
    /// driver's data; the memory must stay until then.
    pub fn alloc_mmap(&self, phys: u64, length: usize) -> Result<u64> {
        let mut list = self.mmaps.lock();
        list.reserve(1, GFP_KERNEL)?;
        let mut offset: c_ulong = 0;
        // SAFETY: The vIOMMU is valid, its context set by the core.
        to_result(unsafe {
            bindings::_iommufd_alloc_mmap(
                (*self.raw).ictx,
                &raw mut (*self.raw).obj,
                phys,
                length,
                &mut offset,
            )
        })?;
        // Room was reserved above.
        let _ = list.push_within_capacity(offset);
        Ok(offset as u64)
    }

    /// What the nesting parent translates `iova` to (0: nothing).
    pub fn parent_iova_to_phys(&self, iova: u64) -> u64 {
        // SAFETY: The parent is a live paging domain.
        unsafe { bindings::iommu_iova_to_phys(self.parent, iova) }
    }
}

/// Unregisters the mmap regions of `raw` that [`ViommuCore::alloc_mmap`]
/// listed in `mmaps`.
///
/// # Safety
///
/// `raw` is a live vIOMMU, which no mapping uses any more.
// For the Rust IOMMU drivers (`driver`: `CONFIG_IOMMUFD_TEST` so far).
#[cfg_attr(not(CONFIG_IOMMUFD_TEST), allow(dead_code))]
pub(super) unsafe fn destroy_mmaps(
    raw: *mut bindings::iommufd_viommu,
    mmaps: &Mutex<KVec<c_ulong>>,
) {
    for offset in mmaps.lock().drain_all() {
        // SAFETY: Per the function's requirements; each region once.
        unsafe { bindings::_iommufd_destroy_mmap((*raw).ictx, &raw mut (*raw).obj, offset) };
    }
}

/// What an IOMMU driver sees of one of its HW queues.
pub struct HwQueueCore<'a> {
    raw: *mut bindings::iommufd_hw_queue,
    /// The queue this one depends on, for the queue being initialised.
    dep: Option<&'a Cell<*mut bindings::iommufd_object>>,
}

impl<'a> HwQueueCore<'a> {
    /// Wraps a HW queue; `dep` is where the queue being initialised keeps
    /// the queue it depends on.
    ///
    /// # Safety
    ///
    /// `raw` is a HW queue whose core part is initialised, valid for `'a`.
    /// The owner of `dep` undoes the dependency it records
    /// ([`undepend`]) before the queue goes.
    // For the Rust IOMMU drivers (`driver`: `CONFIG_IOMMUFD_TEST` so far).
    #[cfg_attr(not(CONFIG_IOMMUFD_TEST), allow(dead_code))]
    pub(super) unsafe fn from_raw(
        raw: *mut bindings::iommufd_hw_queue,
        dep: Option<&'a Cell<*mut bindings::iommufd_object>>,
    ) -> Self {
        Self { raw, dep }
    }

    /// Where the guest's queue is, in the nesting parent's IOVA space.
    pub fn base_addr(&self) -> u64 {
        // SAFETY: Set by the core before the driver sees the queue.
        unsafe { (*self.raw).base_addr }
    }

    /// The length of the guest's queue.
    pub fn length(&self) -> usize {
        // SAFETY: As above.
        unsafe { (*self.raw).length }
    }

    /// Makes this queue, the one being initialised, depend on `other`, a
    /// live queue of the same vIOMMU: `other` cannot be destroyed until
    /// this queue is.  `EINVAL` for another queue, or a second dependency;
    /// `EBUSY` if `other` is being destroyed.
    ///
    /// This is `iommufd_hw_queue_depend()`, except that the count is taken
    /// only while `other` still counts users: the core marks a queue it
    /// destroys by dropping its last user, and a dependency taken after
    /// that would keep nothing alive.
    pub fn depend_on(&self, other: &HwQueueCore<'_>) -> Result {
        let dep = self.dep.ok_or(EINVAL)?;
        if !dep.get().is_null() {
            return Err(EINVAL);
        }
        // SAFETY: Both queues are valid.
        let same = unsafe { (*self.raw).viommu == (*other.raw).viommu };
        if crate::warn_on!(!same) {
            return Err(EINVAL);
        }
        // SAFETY: Both queues are valid.
        unsafe {
            let b = &raw mut (*other.raw).obj;
            if core::ptr::eq(b, &raw const (*self.raw).obj) {
                return Err(EINVAL);
            }
            if !bindings::refcount_inc_not_zero(&raw mut (*b).users) {
                return Err(EBUSY);
            }
            dep.set(b);
        }
        Ok(())
    }
}

/// Undoes the dependency of the HW queue `raw` recorded in `dep`, if any
/// (`iommufd_hw_queue_undepend()`).
///
/// # Safety
///
/// `raw` is a live HW queue and `dep` its record, from [`HwQueueCore`].
// For the Rust IOMMU drivers (`driver`: `CONFIG_IOMMUFD_TEST` so far).
#[cfg_attr(not(CONFIG_IOMMUFD_TEST), allow(dead_code))]
pub(super) unsafe fn undepend(
    raw: *mut bindings::iommufd_hw_queue,
    dep: &Cell<*mut bindings::iommufd_object>,
) {
    let b = dep.replace(core::ptr::null_mut());
    if !b.is_null() {
        // SAFETY: `b` is live: our count keeps it; `raw` per the function's
        // requirements.
        unsafe { bindings::_iommufd_object_undepend(&raw mut (*raw).obj, b) };
    }
}

/// Zeroed, physically contiguous pages an IOMMU driver shows user space
/// through an mmap region ([`ViommuCore::alloc_mmap`]); freed when dropped.
///
/// # Invariants
///
/// `page` is the first of `1 << order` pages we allocated.
pub struct RegionPages {
    page: NonNull<bindings::page>,
    order: u32,
}

// SAFETY: Pages may be used and freed from any thread.
unsafe impl Send for RegionPages {}
// SAFETY: As above; writes go through `&self` to memory user space shares
// anyway.
unsafe impl Sync for RegionPages {}

impl RegionPages {
    /// `1 << order` new, zeroed pages.
    pub fn new(order: u32) -> Result<Self> {
        let flags: Flags = GFP_KERNEL | __GFP_ZERO;
        // SAFETY: Any flags and order are valid; NULL is failure.
        let page = unsafe { bindings::alloc_pages(flags.as_raw(), order) };
        Ok(Self {
            page: NonNull::new(page).ok_or(ENOMEM)?,
            order,
        })
    }

    /// The physical address of the first page.
    pub fn phys(&self) -> u64 {
        // SAFETY: By the type invariant the page is ours.
        (unsafe { bindings::page_to_pfn(self.page.as_ptr()) } as u64) << PAGE_SHIFT
    }

    /// The length in bytes.
    pub fn len(&self) -> usize {
        PAGE_SIZE << self.order
    }

    /// Whether there is no byte (never).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Writes `val` at `offset` of the first page (`EINVAL` outside it).
    pub fn write_u32(&self, offset: usize, val: u32) -> Result {
        if offset % 4 != 0 || offset + 4 > PAGE_SIZE {
            return Err(EINVAL);
        }
        // SAFETY: The page is ours (type invariant); mapped for the write,
        // which is aligned and within it.
        unsafe {
            let va = bindings::kmap_local_page(self.page.as_ptr()).cast::<u8>();
            va.add(offset).cast::<u32>().write_volatile(val);
            bindings::kunmap_local(va.cast());
        }
        Ok(())
    }
}

impl Drop for RegionPages {
    fn drop(&mut self) {
        // SAFETY: By the type invariant; freed once.
        unsafe { bindings::__free_pages(self.page.as_ptr(), self.order) };
    }
}
