// SPDX-License-Identifier: GPL-2.0

//! The driver side of the IOMMU core, for software IOMMUs: an IOMMU driver
//! ([`Driver`]) with its paging domains ([`PagingDomain`]), registered for
//! the devices of a bus of its own ([`Registration`]) on which it creates
//! devices ([`BusDevice`]).
//!
//! This is what the iommufd selftest's mock IOMMU needs: the core's
//! `iommu_device_register_bus()` and `iommu_mock_device_add()` exist for
//! it (`CONFIG_IOMMUFD_TEST`).
//!
//! C headers: [`include/linux/iommu.h`](srctree/include/linux/iommu.h),
//! [`drivers/iommu/iommu-priv.h`](srctree/drivers/iommu/iommu-priv.h)

#[cfg(CONFIG_IOMMUFD_DRIVER)]
use super::dirty::DirtyBitmap;
use super::domain::Domain;
use super::fault::PageRequest;
use super::user_data::{UserData, UserDataArray};
use crate::{
    bindings,
    device::Device,
    error::{to_result, Error},
    prelude::*,
    str::CStr,
    sync::atomic::{Atomic, Full, Relaxed, Release},
    types::Opaque,
};
use core::{marker::PhantomData, ptr::NonNull};

// From `drivers/iommu/iommu-priv.h`: the entry points the core keeps for
// software IOMMUs (`CONFIG_IOMMUFD_TEST`).
// Only pointers cross: the lint looks into the structures, which bindgen
// could not complete for Rust (the `bindings` crate allows it too).
#[allow(improper_ctypes)]
extern "C" {
    fn iommu_device_register_bus(
        iommu: *mut bindings::iommu_device,
        ops: *const bindings::iommu_ops,
        bus: *const bindings::bus_type,
        nb: *mut bindings::notifier_block,
    ) -> c_int;
    fn iommu_device_unregister_bus(
        iommu: *mut bindings::iommu_device,
        bus: *const bindings::bus_type,
        nb: *mut bindings::notifier_block,
    );
    fn iommu_mock_device_add(
        dev: *mut bindings::device,
        iommu: *mut bindings::iommu_device,
    ) -> c_int;
}

/// The page table of a paging domain, implemented by the driver.
///
/// The core serialises nothing: the methods may run concurrently.
pub trait PagingDomain: Send + Sync + Sized + 'static {
    /// Maps `pgcount` pages of `pgsize` bytes at `iova` to `paddr` with the
    /// `IOMMU_*` permissions `prot`.  Returns the bytes mapped, all of them
    /// on success; on failure the core unmaps what was mapped.
    fn map_pages(
        &self,
        iova: u64,
        paddr: u64,
        pgsize: usize,
        pgcount: usize,
        prot: u32,
    ) -> (usize, Result);

    /// Unmaps `pgcount` pages of `pgsize` bytes at `iova`; returns the bytes
    /// unmapped.
    fn unmap_pages(&self, iova: u64, pgsize: usize, pgcount: usize) -> usize;

    /// The physical address `iova` translates to, 0 if none.
    fn iova_to_phys(&self, iova: u64) -> u64;

    /// Starts or stops dirty tracking (only asked of domains made with
    /// [`NewDomain::dirty_tracking`]).
    fn set_dirty_tracking(&self, _enable: bool) -> Result {
        Err(EOPNOTSUPP)
    }

    /// Records in `dirty` the entries of `[iova, iova + size)` DMA wrote
    /// to, and marks them clean unless `flags` has
    /// [`super::dirty::NO_CLEAR`].
    #[cfg(CONFIG_IOMMUFD_DRIVER)]
    fn read_and_clear_dirty(
        &self,
        _iova: u64,
        _size: usize,
        _flags: u32,
        _dirty: &mut DirtyBitmap<'_>,
    ) -> Result {
        Err(EOPNOTSUPP)
    }
}

/// A nested domain: the driver's view of a page table user space manages
/// (a guest's), translated further by a paging parent of the same driver.
pub trait NestedDomain: Send + Sync + Sized + 'static {
    /// Invalidates the driver's caches of the user page table as the
    /// entries of `array` say, and reports how many it handled with
    /// [`UserDataArray::set_done`] (also on failure).
    fn cache_invalidate_user(&self, array: &mut UserDataArray) -> Result;
}

/// The nested domain of a driver that cannot nest: there is none.
pub enum NoNested {}

impl NestedDomain for NoNested {
    fn cache_invalidate_user(&self, _array: &mut UserDataArray) -> Result {
        match *self {}
    }
}

/// A paging domain the driver has built, with its geometry.
pub struct NewDomain<D> {
    /// The page table.
    pub data: D,
    /// The page sizes the domain maps with.
    pub pgsize_bitmap: usize,
    /// The first and last IOVA the domain translates.
    pub aperture: (u64, u64),
    /// Whether the domain tracks what DMA writes.
    pub dirty_tracking: bool,
}

/// An IOMMU driver.
pub trait Driver: Send + Sync + 'static {
    /// The driver's paging domains.
    type Domain: PagingDomain;
    /// The driver's nested domains ([`NoNested`] if it cannot nest).
    type Nested: NestedDomain;
    /// What the driver keeps with each device it creates.
    type DeviceData: Send + Sync + 'static;

    /// Whether devices report I/O page faults: the registration then keeps
    /// a fault queue, and a device joins it while attached to a domain that
    /// takes faults.  Faults are raised with [`Registration::report_fault`].
    const FAULTS: bool = false;

    /// Whether user space manages the PASID tables (the IOMMU's
    /// `user_pasid_table`): faults with a PASID no domain is attached to go
    /// to the nested domain the device is attached to.
    const USER_PASID_TABLE: bool = false;

    /// A new paging domain for `dev` (`domain_alloc_paging_flags`).  `flags`
    /// are `IOMMU_HWPT_ALLOC_*` flags; `data` is user space's description,
    /// if it gave one.
    fn alloc_paging(
        dev: &Device,
        flags: u32,
        data: Option<&UserData>,
    ) -> Result<NewDomain<Self::Domain>>;

    /// Whether `dev` may be attached to a domain of the driver (one that
    /// tracks dirty pages if `dirty_tracking`); `EINVAL` refuses.
    fn check_attach(_dev: &Device, _dirty_tracking: bool) -> Result {
        Ok(())
    }

    /// A new nested domain for `dev` on top of `parent`, one of the driver's
    /// paging domains (`domain_alloc_nested`), described by user space's
    /// `data`.  `flags` are `IOMMU_HWPT_ALLOC_*` flags.
    fn alloc_nested(
        _dev: &Device,
        _parent: &Self::Domain,
        _flags: u32,
        _data: &UserData,
    ) -> Result<Self::Nested> {
        Err(EOPNOTSUPP)
    }

    /// Whether `dev` has the capability `cap` (`enum iommu_cap`).
    fn capable(_dev: &Device, _cap: u32) -> bool {
        false
    }

    /// What the IOMMU reports about itself for `dev`, for the
    /// `IOMMU_HW_INFO_TYPE_*` asked for (`ty`): the data and its type.
    fn hw_info(_dev: &Device, _ty: u32) -> Result<(KVec<u8>, u32)> {
        Err(EOPNOTSUPP)
    }
}

/// A paging domain of driver `T`: the core's `struct iommu_domain` first,
/// so that the core's pointer is also a pointer to the whole.
#[repr(C)]
struct DomainBox<T: Driver> {
    domain: Opaque<bindings::iommu_domain>,
    data: T::Domain,
}

/// A nested domain of driver `T`, laid out as [`DomainBox`].
#[repr(C)]
struct NestedBox<T: Driver> {
    domain: Opaque<bindings::iommu_domain>,
    data: T::Nested,
}

impl<T: Driver> DomainBox<T> {
    /// # Safety
    ///
    /// `domain` is the `domain` field of a live `DomainBox<T>`.
    unsafe fn data<'a>(domain: *mut bindings::iommu_domain) -> &'a T::Domain {
        // SAFETY: `domain` is the first field of a `repr(C)` `DomainBox<T>`
        // that lives as long as the core uses the domain.
        unsafe { &(*domain.cast::<DomainBox<T>>()).data }
    }
}

/// The registration of driver `T` for the devices of a bus of its own.
///
/// Everything the core points to lives here: the bus, the IOMMU device, the
/// ops tables and the blocking domain devices start in.  A registration is
/// a `static` of the driver's module, registered at module init and
/// unregistered at exit.
pub struct Registration<T: Driver> {
    bus: Opaque<bindings::bus_type>,
    /// The type of the devices made by [`Registration::add_device`], by
    /// which callbacks recognise them and find the registration.
    dev_type: Opaque<bindings::device_type>,
    nb: Opaque<bindings::notifier_block>,
    iommu: Opaque<bindings::iommu_device>,
    ops: Opaque<bindings::iommu_ops>,
    paging_ops: Opaque<bindings::iommu_domain_ops>,
    nested_ops: Opaque<bindings::iommu_domain_ops>,
    dirty_ops: Opaque<bindings::iommu_dirty_ops>,
    /// The fault queue of the devices, if the driver has faults.
    iopf_queue: Opaque<*mut bindings::iopf_queue>,
    blocked_ops: Opaque<bindings::iommu_domain_ops>,
    blocked: Opaque<bindings::iommu_domain>,
    registered: Atomic<bool>,
    _t: PhantomData<T>,
}

// SAFETY: The C structures are written once, before registration, by
// `register` (which only one caller can win); then they are only read by the
// core, or changed by it under its own locks.
unsafe impl<T: Driver> Send for Registration<T> {}
// SAFETY: As above.
unsafe impl<T: Driver> Sync for Registration<T> {}

impl<T: Driver> Default for Registration<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Driver> Registration<T> {
    /// An unregistered registration, for a `static`.
    pub const fn new() -> Self {
        Self {
            bus: Opaque::zeroed(),
            dev_type: Opaque::zeroed(),
            nb: Opaque::zeroed(),
            iommu: Opaque::zeroed(),
            ops: Opaque::zeroed(),
            paging_ops: Opaque::zeroed(),
            nested_ops: Opaque::zeroed(),
            dirty_ops: Opaque::zeroed(),
            iopf_queue: Opaque::zeroed(),
            blocked_ops: Opaque::zeroed(),
            blocked: Opaque::zeroed(),
            registered: Atomic::new(false),
            _t: PhantomData,
        }
    }

    /// Registers a bus named `name` and driver `T` as the IOMMU of its
    /// devices, shown in sysfs as `name` too.  `EBUSY` if already
    /// registered.
    /// `max_pasids` is the number of PASIDs the IOMMU supports (0: none).
    pub fn register(
        &'static self,
        name: &'static CStr,
        module: &'static ThisModule,
        max_pasids: u32,
    ) -> Result {
        if self.registered.xchg(true, Full) {
            return Err(EBUSY);
        }
        let reg = self;
        // SAFETY: We won `registered`: nothing else writes the structures,
        // and the core does not know them before they are registered below.
        unsafe {
            (*reg.bus.get()).name = name.as_char_ptr();
            (*reg.dev_type.get()).name = DEV_TYPE_NAME.as_char_ptr();

            let blocked_ops = reg.blocked_ops.get();
            (*blocked_ops).attach_dev = Some(Self::attach_dev);
            (*blocked_ops).set_dev_pasid = Some(Self::set_dev_pasid);
            let blocked = reg.blocked.get();
            (*blocked).type_ = bindings::IOMMU_DOMAIN_BLOCKED;
            (*blocked).ops = blocked_ops;

            let paging_ops = reg.paging_ops.get();
            (*paging_ops).attach_dev = Some(Self::attach_dev);
            (*paging_ops).set_dev_pasid = Some(Self::set_dev_pasid);
            (*paging_ops).map_pages = Some(Self::map_pages);
            (*paging_ops).unmap_pages = Some(Self::unmap_pages);
            (*paging_ops).iova_to_phys = Some(Self::iova_to_phys);
            (*paging_ops).free = Some(Self::free);

            let dirty_ops = reg.dirty_ops.get();
            (*dirty_ops).set_dirty_tracking = Some(Self::set_dirty_tracking);
            #[cfg(CONFIG_IOMMUFD_DRIVER)]
            {
                (*dirty_ops).read_and_clear_dirty = Some(Self::read_and_clear_dirty);
            }

            let nested_ops = reg.nested_ops.get();
            (*nested_ops).attach_dev = Some(Self::attach_dev);
            (*nested_ops).set_dev_pasid = Some(Self::set_dev_pasid);
            (*nested_ops).cache_invalidate_user = Some(Self::cache_invalidate_user);
            (*nested_ops).free = Some(Self::free_nested);

            let ops = reg.ops.get();
            (*ops).default_domain = blocked;
            (*ops).blocked_domain = blocked;
            (*ops).owner = module.as_ptr();
            (*ops).probe_device = Some(Self::probe_device);
            (*ops).device_group = Some(bindings::generic_device_group);
            (*ops).domain_alloc_paging_flags = Some(Self::alloc_paging);
            (*ops).domain_alloc_nested = Some(Self::alloc_nested);
            (*ops).set_user_pasid_table(T::USER_PASID_TABLE.into());
            // Software IOMMUs have no hardware to pass an answer to.
            (*ops).page_response = Some(Self::page_response);
            (*ops).capable = Some(Self::capable);
            (*ops).hw_info = Some(Self::hw_info);
            (*reg.iommu.get()).max_pasids = max_pasids;
        }
        let res = (|| {
            if T::FAULTS {
                // SAFETY: The name is a static C string.
                let q = unsafe { bindings::iopf_queue_alloc(name.as_char_ptr()) };
                if q.is_null() {
                    return Err(ENOMEM);
                }
                // SAFETY: We won `registered`: nothing else uses the field.
                unsafe { *reg.iopf_queue.get() = q };
            }
            reg.register_bus(name)
        })();
        if res.is_err() {
            self.free_iopf_queue();
            self.registered.store(false, Release);
        }
        res
    }

    /// Frees the fault queue, if any; its devices have left it.
    fn free_iopf_queue(&self) {
        // SAFETY: Only `register` and `unregister`, which the `registered`
        // flag serialises, write the field.
        let q = unsafe { core::ptr::replace(self.iopf_queue.get(), core::ptr::null_mut()) };
        if !q.is_null() {
            // SAFETY: Allocated in `register`, freed once (the field is
            // cleared).
            unsafe { bindings::iopf_queue_free(q) };
        }
    }

    /// Registers the bus, the IOMMU device in sysfs and the IOMMU for the bus.
    fn register_bus(&'static self, name: &'static CStr) -> Result {
        let reg = self;
        // SAFETY: The bus structure is initialised and static.
        to_result(unsafe { bindings::bus_register(reg.bus.get()) })?;
        // SAFETY: The IOMMU device is zeroed and static; the format takes
        // one C string.
        let rc = unsafe {
            bindings::iommu_device_sysfs_add(
                reg.iommu.get(),
                core::ptr::null_mut(),
                core::ptr::null_mut(),
                c"%s".as_ptr().cast(),
                name.as_char_ptr(),
            )
        };
        if rc != 0 {
            // SAFETY: Registered above.
            unsafe { bindings::bus_unregister(reg.bus.get()) };
            return Err(Error::from_errno(rc));
        }
        // SAFETY: All structures are initialised and static.
        let rc = unsafe {
            iommu_device_register_bus(reg.iommu.get(), reg.ops.get(), reg.bus.get(), reg.nb.get())
        };
        if rc != 0 {
            // SAFETY: Added and registered above.
            unsafe {
                bindings::iommu_device_sysfs_remove(reg.iommu.get());
                bindings::bus_unregister(reg.bus.get());
            }
            return Err(Error::from_errno(rc));
        }
        Ok(())
    }

    /// Undoes [`Registration::register`]; the devices made with
    /// [`Registration::add_device`] must be gone.
    pub fn unregister(&'static self) {
        if !self.registered.load(Relaxed) {
            return;
        }
        // SAFETY: Registered in `register`, unregistered once here.
        unsafe {
            bindings::iommu_device_sysfs_remove(self.iommu.get());
            iommu_device_unregister_bus(self.iommu.get(), self.bus.get(), self.nb.get());
            bindings::bus_unregister(self.bus.get());
        }
        self.free_iopf_queue();
        self.registered.store(false, Release);
    }

    /// Creates a device named `name` on the bus; the IOMMU core probes it
    /// for this driver and puts it in a group of its own.
    ///
    /// `u32_props` are firmware properties the device gets (such as
    /// `pasid-num-bits`, which the core reads at probe).
    pub fn add_device(
        &'static self,
        name: &CStr,
        data: T::DeviceData,
        u32_props: &[(&'static CStr, u32)],
    ) -> Result<BusDevice> {
        // A zeroed entry ends the list.
        let mut props = KVec::<bindings::property_entry>::new();
        for &(pname, val) in u32_props {
            // SAFETY: All-zero is a valid `property_entry` (C does the same).
            let mut e: bindings::property_entry = unsafe { core::mem::zeroed() };
            e.name = pname.as_char_ptr();
            e.length = core::mem::size_of::<u32>();
            e.is_inline = true;
            e.type_ = bindings::dev_prop_type_DEV_PROP_U32;
            e.__bindgen_anon_1 = bindings::property_entry__bindgen_ty_1 {
                value: bindings::property_entry__bindgen_ty_1__bindgen_ty_1 { u32_data: [val, 0] },
            };
            props.push(e, GFP_KERNEL)?;
        }
        // SAFETY: As above.
        props.push(unsafe { core::mem::zeroed() }, GFP_KERNEL)?;
        if !self.registered.load(Relaxed) {
            return Err(ENODEV);
        }
        let raw = KBox::new(
            DeviceBox::<T> {
                dev: Opaque::zeroed(),
                iopf_users: Atomic::new(0),
                data,
            },
            GFP_KERNEL,
        )?;
        let dev = KBox::into_raw(raw).cast::<bindings::device>();
        // SAFETY: `dev` is a zeroed device we own; from `device_initialize()`
        // on, it is freed by `release` when its last reference goes.
        unsafe {
            bindings::device_initialize(dev);
            (*dev).bus = self.bus.get();
            (*dev).type_ = self.dev_type.get();
            (*dev).release = Some(release_device::<T>);
        }
        // SAFETY: `dev` is initialised; the format takes one C string.
        let rc = unsafe { bindings::dev_set_name(dev, c"%s".as_ptr().cast(), name.as_char_ptr()) };
        let rc = if rc == 0 && !u32_props.is_empty() {
            // SAFETY: `dev` is initialised; `props` is a terminated list,
            // which the core copies.
            unsafe {
                bindings::device_create_managed_software_node(
                    dev,
                    props.as_ptr(),
                    core::ptr::null(),
                )
            }
        } else {
            rc
        };
        let rc = if rc == 0 {
            // SAFETY: `dev` is initialised and named, on our bus, whose IOMMU
            // device is registered.
            unsafe { iommu_mock_device_add(dev, self.iommu.get()) }
        } else {
            rc
        };
        if rc != 0 {
            // SAFETY: Drops the reference of `device_initialize()`, which
            // frees the device through `release`.
            unsafe { bindings::put_device(dev) };
            return Err(Error::from_errno(rc));
        }
        // INVARIANT: The device was added; we own the reference of
        // `device_initialize()`.
        Ok(BusDevice {
            // SAFETY: `dev` is not NULL (it came from a box).
            dev: unsafe { NonNull::new_unchecked(dev) },
        })
    }

    /// The data of `dev`, if it is a device of this registration.
    pub fn data_of<'a>(&'static self, dev: &'a Device) -> Option<&'a T::DeviceData> {
        // SAFETY: `dev` is a valid device.
        if unsafe { (*dev.as_raw()).type_ } != self.dev_type.get().cast_const() {
            return None;
        }
        // SAFETY: The device was made by our `add_device`: it is the first
        // field of a `DeviceBox<T>`, which lives as long as the device.
        Some(unsafe { &(*dev.as_raw().cast::<DeviceBox<T>>()).data })
    }

    /// The registration whose bus `dev` is on, if it is ours.
    ///
    /// # Safety
    ///
    /// `dev` is a valid device.
    unsafe fn of_device<'a>(dev: *mut bindings::device) -> Option<&'a Self> {
        // SAFETY: `dev` is valid.
        let ty = unsafe { (*dev).type_ };
        // Devices made by `add_device` are recognised by the name of their
        // type, a pointer to our static string.
        // SAFETY: A device type, if any, is valid while its devices are.
        if ty.is_null() || unsafe { (*ty).name } != DEV_TYPE_NAME.as_char_ptr() {
            return None;
        }
        let off = core::mem::offset_of!(Self, dev_type);
        // SAFETY: The device was made by `add_device` of the registration
        // whose `dev_type` field `ty` is; the registration outlives its
        // devices (its bus goes only after them).
        Some(unsafe { &*ty.cast::<u8>().sub(off).cast::<Self>() })
    }

    unsafe extern "C" fn probe_device(dev: *mut bindings::device) -> *mut bindings::iommu_device {
        // SAFETY: The core passes a valid device.
        match unsafe { Self::of_device(dev) } {
            Some(reg) => reg.iommu.get(),
            None => ENODEV.to_ptr(),
        }
    }

    unsafe extern "C" fn capable(dev: *mut bindings::device, cap: bindings::iommu_cap) -> bool {
        // SAFETY: The core passes a valid device.
        T::capable(unsafe { Device::from_raw(dev) }, cap)
    }

    unsafe extern "C" fn hw_info(
        dev: *mut bindings::device,
        length: *mut u32,
        ty: *mut bindings::iommu_hw_info_type,
    ) -> *mut c_void {
        // SAFETY: The core passes a valid device and out parameters.
        let (dev, want) = unsafe { (Device::from_raw(dev), *ty) };
        match T::hw_info(dev, want) {
            Ok((data, out_ty)) => {
                let (ptr, len, _cap) = data.into_raw_parts();
                // SAFETY: As above.
                unsafe {
                    *length = len as u32;
                    *ty = out_ty;
                }
                // The core frees the data with `kfree()`, which is what
                // `KVec` (`Kmalloc`) allocated it with.
                ptr.cast()
            }
            Err(e) => e.to_ptr(),
        }
    }

    unsafe extern "C" fn alloc_paging(
        dev: *mut bindings::device,
        flags: u32,
        user_data: *const bindings::iommu_user_data,
    ) -> *mut bindings::iommu_domain {
        // SAFETY: The core passes a valid device, one of ours (it probed
        // it).
        let Some(reg) = (unsafe { Self::of_device(dev) }) else {
            return ENODEV.to_ptr();
        };
        // SAFETY: A non-NULL `user_data` lives for the call.
        let data = (!user_data.is_null()).then(|| unsafe { UserData::from_raw(user_data) });
        // SAFETY: As above.
        let new = match T::alloc_paging(unsafe { Device::from_raw(dev) }, flags, data) {
            Ok(new) => new,
            Err(e) => return e.to_ptr(),
        };
        let boxed = KBox::new(
            DomainBox::<T> {
                domain: Opaque::zeroed(),
                data: new.data,
            },
            GFP_KERNEL,
        );
        let boxed = match boxed {
            Ok(b) => KBox::into_raw(b),
            Err(_) => return ENOMEM.to_ptr(),
        };
        // SAFETY: `boxed` is a new, zeroed domain we own until `free`.
        unsafe {
            let d = (*boxed).domain.get();
            (*d).type_ = bindings::IOMMU_DOMAIN_UNMANAGED;
            (*d).ops = reg.paging_ops.get();
            (*d).pgsize_bitmap = new.pgsize_bitmap as c_ulong;
            (*d).geometry.aperture_start = new.aperture.0;
            (*d).geometry.aperture_end = new.aperture.1;
            (*d).geometry.force_aperture = true;
            if new.dirty_tracking {
                (*d).dirty_ops = reg.dirty_ops.get();
            }
            d
        }
    }

    unsafe extern "C" fn free(domain: *mut bindings::iommu_domain) {
        // SAFETY: `domain` is the first field of a `DomainBox<T>` made by
        // `alloc_paging`; the core frees it once.
        drop(unsafe { KBox::from_raw(domain.cast::<DomainBox<T>>()) });
    }

    /// Attaching any domain: a device attached to a domain that takes
    /// faults is in the fault queue.
    unsafe extern "C" fn attach_dev(
        domain: *mut bindings::iommu_domain,
        dev: *mut bindings::device,
        old: *mut bindings::iommu_domain,
    ) -> c_int {
        // SAFETY: The core passes valid domains (`old` may be NULL) and a
        // device of ours, under the group's lock.
        unsafe {
            let dirty = !(*domain).dirty_ops.is_null();
            if let Err(e) = T::check_attach(Device::from_raw(dev), dirty) {
                return e.to_errno();
            }
            let takes_faults =
                |d: *mut bindings::iommu_domain| !d.is_null() && (*d).iopf_handler.is_some();
            if takes_faults(domain) {
                if let Err(e) = Self::iopf_get(dev) {
                    return e.to_errno();
                }
            }
            if takes_faults(old) {
                Self::iopf_put(dev);
            }
        }
        0
    }

    /// Attaching any domain to a PASID of a device (the blocked domain
    /// detaches it): as for the device itself.
    unsafe extern "C" fn set_dev_pasid(
        domain: *mut bindings::iommu_domain,
        dev: *mut bindings::device,
        _pasid: bindings::ioasid_t,
        old: *mut bindings::iommu_domain,
    ) -> c_int {
        // SAFETY: As for `attach_dev`, whose requirements the core meets for
        // this op too.
        unsafe { Self::attach_dev(domain, dev, old) }
    }

    /// Counts a domain taking faults `dev` is attached to; the first puts
    /// it in the fault queue.
    ///
    /// # Safety
    ///
    /// `dev` is a device of ours; the caller holds its group's lock.
    unsafe fn iopf_get(dev: *mut bindings::device) -> Result {
        // SAFETY: Per the function's requirements.
        let (reg, users) = unsafe {
            (
                Self::of_device(dev).ok_or(ENODEV)?,
                &(*dev.cast::<DeviceBox<T>>()).iopf_users,
            )
        };
        // SAFETY: Only `register`/`unregister` write the field.
        let q = unsafe { *reg.iopf_queue.get() };
        if q.is_null() {
            return Err(ENODEV);
        }
        if users.load(Relaxed) == 0 {
            // SAFETY: `q` is our live queue; `dev` is valid.
            to_result(unsafe { bindings::iopf_queue_add_device(q, dev) })?;
        }
        users.store(users.load(Relaxed) + 1, Relaxed);
        Ok(())
    }

    /// Undoes one [`Self::iopf_get`].
    ///
    /// # Safety
    ///
    /// As for [`Self::iopf_get`], which succeeded for the domain left.
    unsafe fn iopf_put(dev: *mut bindings::device) {
        // SAFETY: Per the function's requirements.
        let (reg, users) = unsafe {
            let Some(reg) = Self::of_device(dev) else {
                return;
            };
            (reg, &(*dev.cast::<DeviceBox<T>>()).iopf_users)
        };
        let n = users.load(Relaxed);
        users.store(n - 1, Relaxed);
        if n == 1 {
            // SAFETY: The device was added to our queue by `iopf_get`.
            unsafe { bindings::iopf_queue_remove_device(*reg.iopf_queue.get(), dev) };
        }
    }

    unsafe extern "C" fn set_dirty_tracking(
        domain: *mut bindings::iommu_domain,
        enabled: bool,
    ) -> c_int {
        // SAFETY: Our dirty ops are only on our paging domains.
        match unsafe { DomainBox::<T>::data(domain) }.set_dirty_tracking(enabled) {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        }
    }

    #[cfg(CONFIG_IOMMUFD_DRIVER)]
    unsafe extern "C" fn read_and_clear_dirty(
        domain: *mut bindings::iommu_domain,
        iova: c_ulong,
        size: usize,
        flags: c_ulong,
        dirty: *mut bindings::iommu_dirty_bitmap,
    ) -> c_int {
        // SAFETY: Our dirty ops are only on our paging domains; the core's
        // record is ours for the call.
        let (data, mut dirty) =
            unsafe { (DomainBox::<T>::data(domain), DirtyBitmap::from_raw(dirty)) };
        match data.read_and_clear_dirty(iova as u64, size, flags as u32, &mut dirty) {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        }
    }

    unsafe extern "C" fn page_response(
        _dev: *mut bindings::device,
        _evt: *mut bindings::iopf_fault,
        _msg: *mut bindings::iommu_page_response,
    ) {
    }

    unsafe extern "C" fn alloc_nested(
        dev: *mut bindings::device,
        parent: *mut bindings::iommu_domain,
        flags: u32,
        user_data: *const bindings::iommu_user_data,
    ) -> *mut bindings::iommu_domain {
        // SAFETY: The core passes a valid device of ours.
        let Some(reg) = (unsafe { Self::of_device(dev) }) else {
            return ENODEV.to_ptr();
        };
        // SAFETY: A non-NULL parent is a valid domain; if its ops are our
        // paging ops, it is one of our paging domains.
        let parent = unsafe {
            if parent.is_null() || (*parent).ops != reg.paging_ops.get().cast_const() {
                return EINVAL.to_ptr();
            }
            DomainBox::<T>::data(parent)
        };
        if user_data.is_null() {
            return EINVAL.to_ptr();
        }
        // SAFETY: The device is valid; the core's user data lives for the
        // call.
        let (dev, data) = unsafe { (Device::from_raw(dev), UserData::from_raw(user_data)) };
        let nested = match T::alloc_nested(dev, parent, flags, data) {
            Ok(n) => n,
            Err(e) => return e.to_ptr(),
        };
        let boxed = match KBox::new(
            NestedBox::<T> {
                domain: Opaque::zeroed(),
                data: nested,
            },
            GFP_KERNEL,
        ) {
            Ok(b) => KBox::into_raw(b),
            Err(_) => return ENOMEM.to_ptr(),
        };
        // SAFETY: `boxed` is a new, zeroed domain we own until `free_nested`.
        unsafe {
            let d = (*boxed).domain.get();
            (*d).type_ = bindings::IOMMU_DOMAIN_NESTED;
            (*d).ops = reg.nested_ops.get();
            d
        }
    }

    unsafe extern "C" fn free_nested(domain: *mut bindings::iommu_domain) {
        // SAFETY: `domain` is the first field of a `NestedBox<T>` made by
        // `alloc_nested`; the core frees it once.
        drop(unsafe { KBox::from_raw(domain.cast::<NestedBox<T>>()) });
    }

    unsafe extern "C" fn cache_invalidate_user(
        domain: *mut bindings::iommu_domain,
        array: *mut bindings::iommu_user_data_array,
    ) -> c_int {
        // SAFETY: `domain` is one of our nested domains (its ops are), the
        // first field of a `NestedBox<T>`; the caller's array is ours for
        // the call.
        let (data, array) = unsafe {
            (
                &(*domain.cast::<NestedBox<T>>()).data,
                UserDataArray::from_raw(array),
            )
        };
        match data.cache_invalidate_user(array) {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        }
    }

    /// The driver's data of `domain`, if it is one of this registration's
    /// paging domains.
    pub fn paging_data_of<'a>(&'static self, domain: &'a Domain) -> Option<&'a T::Domain> {
        let d = domain.as_ptr();
        // SAFETY: `domain` is valid; if its ops are our paging ops, it is the
        // first field of a `DomainBox<T>` that lives as long as it.
        unsafe {
            if (*d).ops != self.paging_ops.get().cast_const() {
                return None;
            }
            Some(DomainBox::<T>::data(d))
        }
    }

    /// The driver's data of `domain`, if it is one of this registration's
    /// nested domains.
    pub fn nested_data_of<'a>(&'static self, domain: &'a Domain) -> Option<&'a T::Nested> {
        let d = domain.as_ptr();
        // SAFETY: `domain` is valid; if its ops are our nested ops, it is the
        // first field of a `NestedBox<T>` that lives as long as it.
        unsafe {
            if (*d).ops != self.nested_ops.get().cast_const() {
                return None;
            }
            Some(&(*d.cast::<NestedBox<T>>()).data)
        }
    }

    /// Has `dev`, one of this registration's devices, raise the page
    /// request `req` (the last of its group), as hardware would.  The
    /// request goes to the fault handler of the domain it falls in, or is
    /// answered as failed if there is none.
    ///
    /// # Safety
    ///
    /// The group of `dev` is not attached, replaced or detached meanwhile:
    /// the fault path uses the attach handle it finds without a lock.
    pub unsafe fn report_fault(&'static self, dev: &Device, req: &PageRequest) -> Result {
        if self.data_of(dev).is_none() {
            return Err(EINVAL);
        }
        let mut evt = bindings::iopf_fault::default();
        evt.fault.type_ = bindings::iommu_fault_type_IOMMU_FAULT_PAGE_REQ;
        evt.fault.prm.flags = req.flags;
        evt.fault.prm.pasid = req.pasid;
        evt.fault.prm.grpid = req.grpid;
        evt.fault.prm.perm = req.perm;
        evt.fault.prm.addr = req.addr;
        // SAFETY: `dev` is a probed device of ours; `evt` lives for the call;
        // the caller serialises with attach changes.
        to_result(unsafe { bindings::iommu_report_device_fault(dev.as_raw(), &mut evt) })
    }

    #[allow(clippy::too_many_arguments)]
    unsafe extern "C" fn map_pages(
        domain: *mut bindings::iommu_domain,
        iova: c_ulong,
        paddr: bindings::phys_addr_t,
        pgsize: usize,
        pgcount: usize,
        prot: c_int,
        _gfp: bindings::gfp_t,
        mapped: *mut usize,
    ) -> c_int {
        // SAFETY: `domain` is one of ours (its ops are).
        let data = unsafe { DomainBox::<T>::data(domain) };
        let (done, res) = data.map_pages(iova as u64, paddr, pgsize, pgcount, prot as u32);
        // SAFETY: The core passes a valid `mapped`.
        unsafe { *mapped += done };
        match res {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        }
    }

    unsafe extern "C" fn unmap_pages(
        domain: *mut bindings::iommu_domain,
        iova: c_ulong,
        pgsize: usize,
        pgcount: usize,
        _gather: *mut bindings::iommu_iotlb_gather,
    ) -> usize {
        // SAFETY: `domain` is one of ours (its ops are).
        unsafe { DomainBox::<T>::data(domain) }.unmap_pages(iova as u64, pgsize, pgcount)
    }

    unsafe extern "C" fn iova_to_phys(
        domain: *mut bindings::iommu_domain,
        iova: bindings::dma_addr_t,
    ) -> bindings::phys_addr_t {
        // SAFETY: `domain` is one of ours (its ops are).
        unsafe { DomainBox::<T>::data(domain) }.iova_to_phys(iova)
    }
}

/// The name of the device type of [`Registration::add_device`]'s devices.
static DEV_TYPE_NAME: &CStr = c"iommu-software-device";

/// A device made by [`Registration::add_device`] with its driver data: the
/// core's `struct device` first.
#[repr(C)]
struct DeviceBox<T: Driver> {
    dev: Opaque<bindings::device>,
    /// The domains taking faults the device is attached to (for its RID
    /// and PASIDs): it is in the fault queue while there is one.  Changed
    /// only under the group's lock (in `attach_dev`).
    iopf_users: Atomic<u32>,
    data: T::DeviceData,
}

unsafe extern "C" fn release_device<T: Driver>(dev: *mut bindings::device) {
    // SAFETY: `dev` came from the box in `add_device`; the core calls
    // `release` once, when the last reference goes.
    drop(unsafe { KBox::from_raw(dev.cast::<DeviceBox<T>>()) });
}

/// A device created on a [`Registration`]'s bus, unregistered when dropped.
///
/// # Invariants
///
/// `dev` is a device that was added, on which this object owns the
/// reference of its creation.
pub struct BusDevice {
    dev: NonNull<bindings::device>,
}

// SAFETY: A device may be used and unregistered from any thread.
unsafe impl Send for BusDevice {}
// SAFETY: As above.
unsafe impl Sync for BusDevice {}

impl BusDevice {
    /// The device.
    pub fn device(&self) -> &Device {
        // SAFETY: By the type invariant the device is valid while `self`
        // lives.
        unsafe { Device::from_raw(self.dev.as_ptr()) }
    }
}

impl Drop for BusDevice {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the device was added and we own one
        // reference, which this gives back.
        unsafe { bindings::device_unregister(self.dev.as_ptr()) };
    }
}
