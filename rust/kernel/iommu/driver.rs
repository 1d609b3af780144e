// SPDX-License-Identifier: GPL-2.0

//! The driver side of the IOMMU core, for software IOMMUs: an IOMMU driver
//! ([`Driver`]) with its paging domains ([`PagingDomain`]), registered for
//! the devices of a bus of its own ([`Registration`]) on which it creates
//! devices ([`BusDevice`]).
//!
//! A paging domain is a page table of the kernel's generic page table
//! library in the driver's format ([`Driver::Format`]), as those of the
//! hardware drivers that use it: the core maps and unmaps it, the format
//! translates and reads its dirty bits; the driver keeps its own state
//! beside the table.
//!
//! This is what the iommufd selftest's mock IOMMU needs: the core's
//! `iommu_device_register_bus()` and `iommu_mock_device_add()` exist for
//! it (`CONFIG_IOMMUFD_TEST`).
//!
//! C headers: [`include/linux/iommu.h`](srctree/include/linux/iommu.h),
//! [`drivers/iommu/iommu-priv.h`](srctree/drivers/iommu/iommu-priv.h)

use super::domain::{AllocFlags, Cap, Domain};
use super::fault::PageRequest;
use super::generic_pt::{Format, Table};
use super::iommufd::{self, HwQueueCore, ViommuCore};
use super::user_data::{UserData, UserDataArray};
use crate::{
    bindings,
    device::Device,
    error::{to_result, Error},
    prelude::*,
    str::CStr,
    sync::atomic::{Atomic, Full, Relaxed},
    sync::{Completion, Mutex},
    types::Opaque,
};
use core::{any::TypeId, cell::Cell, marker::PhantomData, mem::MaybeUninit, ptr::NonNull};

/// What a driver keeps with each of its paging domains, beside the page
/// table (a table of the driver's [`Driver::Format`], which the core maps,
/// unmaps and translates through directly).
///
/// The core serialises nothing: the methods may run concurrently.
pub trait PagingDomain: Send + Sync + Sized + 'static {
    /// Starts or stops dirty tracking (only asked of domains made with
    /// [`NewDomain::dirty_tracking`]; the table's dirty bits are read
    /// whatever this says).
    fn set_dirty_tracking(&self, _enable: bool) -> Result {
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

/// The vIOMMUs of driver `T` (`struct iommufd_viommu_ops`): what the driver
/// keeps with each, beside the core's part, which [`ViommuCore`] reaches
/// through the kernel's built-in iommufd helpers.
///
/// The core serialises nothing but the HW queues of one vIOMMU.
pub trait VirtualIommu<T: Driver>: Send + Sync + Sized + 'static {
    /// The `IOMMU_VIOMMU_TYPE_*` of the vIOMMUs (0: the driver has none).
    const TYPE: u32;
    /// The `IOMMU_HW_QUEUE_TYPE_*` of their HW queues (0: none).
    const HW_QUEUE_TYPE: u32 = 0;
    /// What the driver keeps with each HW queue.
    type HwQueue: Send + Sync;

    /// A new vIOMMU on the nesting parent `parent`, from user space's
    /// `data` if it gave any (`viommu_init`).
    fn init(v: &ViommuCore<'_>, parent: &T::Domain, data: Option<&UserData>) -> Result<Self>;

    /// A new nested domain on the vIOMMU, made with `flags` from user
    /// space's `data` (`alloc_domain_nested`).
    fn alloc_nested(
        &self,
        v: &ViommuCore<'_>,
        flags: AllocFlags,
        data: &UserData,
    ) -> Result<T::Nested>;

    /// Invalidates the vIOMMU's caches as the entries of `array` say, and
    /// reports how many were handled with [`UserDataArray::set_done`]
    /// (`cache_invalidate`).
    fn cache_invalidate(&self, v: &ViommuCore<'_>, array: &mut UserDataArray) -> Result;

    /// Whether `dev`, one of the driver's devices with its `data`, may be
    /// attached (its requests without a PASID) to a nested domain of the
    /// vIOMMU.
    fn attach(&self, _v: &ViommuCore<'_>, _dev: &Device, _data: &T::DeviceData) -> Result {
        Ok(())
    }

    /// A new HW queue `q`, the `index`th of the vIOMMU, whose guest memory
    /// is at `base_pa` (`hw_queue_init_phys`); `queues` are the vIOMMU's
    /// other HW queues, none of which comes or goes meanwhile.
    fn hw_queue_init(
        &self,
        _v: &ViommuCore<'_>,
        _q: &HwQueueCore<'_>,
        _index: u32,
        _base_pa: u64,
        _queues: &HwQueues<'_, T>,
    ) -> Result<Self::HwQueue> {
        Err(EOPNOTSUPP)
    }
}

/// The vIOMMU of a driver that has none.
pub enum NoViommu {}

impl<T: Driver> VirtualIommu<T> for NoViommu {
    const TYPE: u32 = 0;
    type HwQueue = ();

    fn init(_v: &ViommuCore<'_>, _parent: &T::Domain, _data: Option<&UserData>) -> Result<Self> {
        Err(EOPNOTSUPP)
    }

    fn alloc_nested(&self, _: &ViommuCore<'_>, _: AllocFlags, _: &UserData) -> Result<T::Nested> {
        match *self {}
    }

    fn cache_invalidate(&self, _: &ViommuCore<'_>, _: &mut UserDataArray) -> Result {
        match *self {}
    }
}

/// The driver data of the vIOMMU `T::Viommu`'s HW queues.
pub type HwQueueData<T> = <<T as Driver>::Viommu as VirtualIommu<T>>::HwQueue;

/// The HW queues of a vIOMMU, for the driver's initialiser of another.
pub struct HwQueues<'a, T: Driver> {
    list: &'a KVec<NonNull<HwQueueBox<T>>>,
}

impl<'a, T: Driver> HwQueues<'a, T> {
    /// The first queue whose driver data `f` accepts, with its core part.
    pub fn find(
        &self,
        f: impl Fn(&HwQueueData<T>) -> bool,
    ) -> Option<(&'a HwQueueData<T>, HwQueueCore<'a>)> {
        self.list.iter().find_map(|q| {
            let q = q.as_ptr();
            // SAFETY: A listed queue is initialised and lives until its
            // destroy takes it off the list, under the lock the caller
            // holds for `'a`.
            unsafe {
                let data = (*q).data.assume_init_ref();
                f(data).then(|| (data, HwQueueCore::from_raw((*q).core.get(), None)))
            }
        })
    }
}

/// A paging domain the driver wants: its data, its page table's
/// configuration and how it differs from the table's geometry.
pub struct NewDomain<D, C> {
    /// What the driver keeps with the domain.
    pub data: D,
    /// The configuration of the page table.
    pub table: C,
    /// The page sizes the domain maps with, if fewer than the table has
    /// (a subset of them: `EINVAL` if not).
    pub pgsize_bitmap: Option<usize>,
    /// The first and last IOVA the domain translates, if fewer than the
    /// table can (within its range: `EINVAL` if not).
    pub aperture: Option<(u64, u64)>,
    /// Whether the domain tracks what DMA writes.
    pub dirty_tracking: bool,
}

/// The [`NewDomain`] of driver `T`.
pub type NewDomainOf<T> =
    NewDomain<<T as Driver>::Domain, <<T as Driver>::Format as Format>::Config>;

/// An IOMMU driver.
pub trait Driver: Send + Sync + Sized + 'static {
    /// The format of the page tables of the driver's paging domains.
    type Format: Format;
    /// What the driver keeps with each paging domain.
    type Domain: PagingDomain;
    /// The driver's nested domains ([`NoNested`] if it cannot nest).
    type Nested: NestedDomain;
    /// What the driver keeps with each device it creates.
    type DeviceData: Send + Sync + 'static;
    /// The driver's vIOMMUs ([`NoViommu`] if it has none).
    type Viommu: VirtualIommu<Self>;

    /// Whether devices report I/O page faults: the registration then keeps
    /// a fault queue, and a device joins it while attached to a domain that
    /// takes faults.  Faults are raised with [`Registration::report_fault`].
    const FAULTS: bool = false;

    /// Whether user space manages the PASID tables (the IOMMU's
    /// `user_pasid_table`): faults with a PASID no domain is attached to go
    /// to the nested domain the device is attached to.
    const USER_PASID_TABLE: bool = false;

    /// A new paging domain for `dev` (`domain_alloc_paging_flags`), made
    /// with `flags` (which may have bits the driver does not know: it
    /// refuses them with `EOPNOTSUPP`); `data` is user space's description,
    /// if it gave one.
    fn alloc_paging(
        dev: &Device,
        flags: AllocFlags,
        data: Option<&UserData>,
    ) -> Result<NewDomainOf<Self>>;

    /// Whether `dev`, with the driver's `data`, may be attached to a domain
    /// of the driver (one that tracks dirty pages if `dirty_tracking`);
    /// `EINVAL` refuses.
    fn check_attach(_dev: &Device, _data: &Self::DeviceData, _dirty_tracking: bool) -> Result {
        Ok(())
    }

    /// Whether `dev`, with the driver's `data`, may have its PASID `pasid`
    /// attached to a domain (`set_dev_pasid`); `blocking` if it is the
    /// blocking domain (the PASID is being detached).  An error refuses.
    fn check_attach_pasid(
        _dev: &Device,
        _data: &Self::DeviceData,
        _pasid: u32,
        _blocking: bool,
    ) -> Result {
        Ok(())
    }

    /// A new nested domain for `dev` on top of `parent`, one of the driver's
    /// paging domains (`domain_alloc_nested`), described by user space's
    /// `data`, made with `flags` (as for [`Driver::alloc_paging`]).
    fn alloc_nested(
        _dev: &Device,
        _parent: &Self::Domain,
        _flags: AllocFlags,
        _data: &UserData,
    ) -> Result<Self::Nested> {
        Err(EOPNOTSUPP)
    }

    /// Whether `dev` has the capability `cap`.
    fn capable(_dev: &Device, _cap: Cap) -> bool {
        false
    }

    /// What the IOMMU reports about itself for `dev`, for the
    /// `IOMMU_HW_INFO_TYPE_*` asked for (`ty`): the data and its type.
    fn hw_info(_dev: &Device, _ty: u32) -> Result<(KVec<u8>, u32)> {
        Err(EOPNOTSUPP)
    }
}

/// A paging domain of driver `T`: its page table first, where the C
/// layout of a generic page table wants it, and the table's first field
/// is the core's `struct iommu_domain`, so that the core's pointer is also
/// a pointer to the whole.
#[repr(C)]
#[pin_data]
struct DomainBox<T: Driver> {
    #[pin]
    table: Table<T::Format>,
    /// The registration, which waits for the domain to be freed.
    reg: *const Registration<T>,
    data: T::Domain,
}

/// A nested domain of driver `T`, laid out as [`DomainBox`].
#[repr(C)]
struct NestedBox<T: Driver> {
    domain: Opaque<bindings::iommu_domain>,
    reg: *const Registration<T>,
    /// The vIOMMU it was made on, if any: iommufd keeps it while the
    /// domain lives.
    viommu: *mut ViommuBox<T>,
    data: T::Nested,
}

/// A vIOMMU of driver `T`: the core's structure first, as iommufd
/// allocates it (zeroed, at the size `get_viommu_size` reports) and fills
/// it in before `viommu_init`.
#[repr(C)]
struct ViommuBox<T: Driver> {
    core: Opaque<bindings::iommufd_viommu>,
    reg: *const Registration<T>,
    /// The nesting parent, which iommufd keeps while the vIOMMU lives.
    parent: *mut bindings::iommu_domain,
    /// The mmap regions registered through [`ViommuCore::alloc_mmap`].
    mmaps: Mutex<KVec<c_ulong>>,
    /// The vIOMMU's HW queues; their changes are serialised under it.
    queues: Mutex<KVec<NonNull<HwQueueBox<T>>>>,
    data: MaybeUninit<T::Viommu>,
}

impl<T: Driver> ViommuBox<T> {
    /// The view of the vIOMMU its driver gets.
    ///
    /// # Safety
    ///
    /// `v` is an initialised vIOMMU of ours, valid for `'a`.
    unsafe fn core<'a>(v: *mut Self) -> ViommuCore<'a> {
        // SAFETY: Per the function's requirements.
        unsafe { ViommuCore::from_raw((*v).core.get(), (*v).parent, &(*v).mmaps) }
    }
}

/// A HW queue of driver `T`, laid out as [`ViommuBox`].
#[repr(C)]
struct HwQueueBox<T: Driver> {
    core: Opaque<bindings::iommufd_hw_queue>,
    viommu: *mut ViommuBox<T>,
    /// The queue it depends on ([`HwQueueCore::depend_on`]), if any.
    dep: Cell<*mut bindings::iommufd_object>,
    data: MaybeUninit<HwQueueData<T>>,
}

impl<T: Driver> DomainBox<T> {
    /// The driver's data of a paging domain.
    ///
    /// # Safety
    ///
    /// `domain` is the `domain` field of a `DomainBox<T>` that lives for
    /// `'a`.
    unsafe fn data<'a>(domain: *mut bindings::iommu_domain) -> &'a T::Domain {
        // SAFETY: `domain` is the first field of the first field of a
        // `repr(C)` `DomainBox<T>` that lives for `'a`.
        unsafe { &(*domain.cast::<DomainBox<T>>()).data }
    }

    /// The page table of a paging domain.
    ///
    /// # Safety
    ///
    /// As for [`DomainBox::data`].
    unsafe fn table<'a>(domain: *mut bindings::iommu_domain) -> &'a Table<T::Format> {
        // SAFETY: As for `data`.
        unsafe { &(*domain.cast::<DomainBox<T>>()).table }
    }
}

/// The name of the device type of [`Registration::add_device`]'s devices,
/// by which callbacks recognise them (by address).
static DEV_TYPE_NAME: &CStr = c"iommu-software-device";

/// What identifies a registration and its devices whatever the driver:
/// the first field of every [`Registration`].
#[repr(C)]
#[pin_data]
struct Header {
    /// The driver, which callbacks check before using a registration they
    /// found from a device.
    driver: TypeId,
    /// The type of the devices made by [`Registration::add_device`].
    dev_type: Opaque<bindings::device_type>,
    /// Held by [`Registration::report_fault`] and by every attach, replace
    /// and detach of the registration's devices (see [`attach_lock_of`]):
    /// the fault path uses the attach handle it finds without a lock of
    /// its own.
    #[pin]
    attach_lock: Mutex<()>,
}

/// The header of the registration whose [`Registration::add_device`] made
/// `dev`, if one did.
fn header_of(dev: &Device) -> Option<&Header> {
    // SAFETY: `dev` is valid.
    let ty = unsafe { (*dev.as_raw()).type_ };
    // Devices made by `add_device` are recognised by the name of their
    // type, a pointer to our static string.
    // SAFETY: A device type, if any, is valid while its devices are.
    if ty.is_null() || unsafe { (*ty).name } != DEV_TYPE_NAME.as_char_ptr() {
        return None;
    }
    let off = core::mem::offset_of!(Header, dev_type);
    // SAFETY: The device was made by `add_device` of a registration, whose
    // header (its first field, `repr(C)`) holds `ty`; the registration
    // outlives its devices, hence the borrow of `dev`.
    Some(unsafe { &*ty.cast::<u8>().sub(off).cast::<Header>() })
}

/// The lock that attach changes of `dev` take, if it is a device of a
/// software IOMMU of this module ([`Registration::add_device`]): it makes
/// [`Registration::report_fault`] safe.  Its groups have one device each.
pub(super) fn attach_lock_of(dev: &Device) -> Option<&Mutex<()>> {
    header_of(dev).map(|h| &h.attach_lock)
}

/// Everything of a registration the core points to.
struct Tables {
    bus: bindings::bus_type,
    nb: bindings::notifier_block,
    iommu: bindings::iommu_device,
    ops: bindings::iommu_ops,
    paging_ops: bindings::iommu_domain_ops,
    nested_ops: bindings::iommu_domain_ops,
    dirty_ops: bindings::iommu_dirty_ops,
    blocked_ops: bindings::iommu_domain_ops,
    viommu_ops: bindings::iommufd_viommu_ops,
    /// The blocking domain, also every device's default domain.
    blocked: bindings::iommu_domain,
    /// The fault queue of the devices, if the driver has faults.
    iopf_queue: *mut bindings::iopf_queue,
}

/// The registration of driver `T` for the devices of a bus of its own, from
/// its initialiser to its drop.
///
/// Everything the core points to lives here: the bus, the IOMMU device, the
/// ops tables and the blocking domain devices start in.  Dropping the
/// registration waits until the devices it made and the domains of the
/// driver are gone (whoever holds them drops them), then unregisters.
///
/// # Invariants
///
/// `tables` is initialised and registered with the core from the end of the
/// initialiser to the start of `drop`.  `users` counts the registration
/// itself (until `drop`), the devices made by `add_device` that are not
/// released yet and the driver's domains not freed yet; `users_gone` is
/// completed when it drops to zero.
#[repr(C)]
#[pin_data(PinnedDrop)]
pub struct Registration<T: Driver> {
    // First: devices find it (`of_device`).
    #[pin]
    header: Header,
    #[pin]
    users_gone: Completion,
    users: Atomic<usize>,
    #[pin]
    tables: Opaque<Tables>,
    _t: PhantomData<T>,
}

// SAFETY: The C structures are written by the initialiser, before the core
// knows them; then they are only read by the core, or changed by it under its
// own locks.  The rest is atomic.
unsafe impl<T: Driver> Send for Registration<T> {}
// SAFETY: As above.
unsafe impl<T: Driver> Sync for Registration<T> {}

impl<T: Driver> Registration<T> {
    /// Registers a bus named `name` and driver `T` as the IOMMU of its
    /// devices, shown in sysfs as `name` too, on behalf of `module` (the
    /// owner of the ops).  `max_pasids` is the number of PASIDs the IOMMU
    /// supports (0: none).
    pub fn new(
        name: &'static CStr,
        module: &'static ThisModule,
        max_pasids: u32,
    ) -> impl PinInit<Self, Error> {
        let mut dev_type: bindings::device_type = pin_init::zeroed();
        dev_type.name = DEV_TYPE_NAME.as_char_ptr();
        try_pin_init!(Self {
            header <- pin_init!(Header {
                driver: TypeId::of::<T>(),
                dev_type: Opaque::new(dev_type),
                attach_lock <- crate::new_mutex!(()),
            }),
            users_gone <- Completion::new(),
            users: Atomic::new(1),
            // INVARIANT: Registered last; on failure nothing stays
            // registered.
            tables <- Opaque::try_ffi_init(move |slot: *mut Tables| {
                // SAFETY: `slot` is ours and pinned; nothing knows it yet.
                unsafe { Self::init_tables(slot, name, module, max_pasids) };
                // SAFETY: Just initialised; pinned for as long as registered.
                unsafe { Self::register(slot, name) }
            }),
            _t: PhantomData,
        }? Error)
    }

    /// Fills the tables.
    ///
    /// # Safety
    ///
    /// `slot` is valid for writes and not shared yet.
    unsafe fn init_tables(
        slot: *mut Tables,
        name: &'static CStr,
        module: &'static ThisModule,
        max_pasids: u32,
    ) {
        // SAFETY: Per the function's requirements.  All-zero is a valid
        // value of every field (C structures and a NULL pointer); the fields
        // set are those the core reads.
        unsafe {
            core::ptr::write_bytes(slot, 0, 1);
            let t = &mut *slot;
            t.bus.name = name.as_char_ptr();

            t.blocked_ops.attach_dev = Some(Self::attach_dev);
            t.blocked_ops.set_dev_pasid = Some(Self::set_dev_pasid);
            t.blocked.type_ = bindings::IOMMU_DOMAIN_BLOCKED;
            t.blocked.ops = &raw const t.blocked_ops;

            // The table's format provides the translation and the dirty
            // read; the core maps and unmaps through the table itself.
            T::Format::domain_ops(&mut t.paging_ops, &mut t.dirty_ops);
            t.paging_ops.attach_dev = Some(Self::attach_dev);
            t.paging_ops.set_dev_pasid = Some(Self::set_dev_pasid);
            t.paging_ops.iotlb_sync = Some(Self::iotlb_sync);
            t.paging_ops.free = Some(Self::free);
            t.dirty_ops.set_dirty_tracking = Some(Self::set_dirty_tracking);

            t.nested_ops.attach_dev = Some(Self::attach_dev);
            t.nested_ops.set_dev_pasid = Some(Self::set_dev_pasid);
            t.nested_ops.cache_invalidate_user = Some(Self::cache_invalidate_user);
            t.nested_ops.free = Some(Self::free_nested);

            let blocked = &raw mut t.blocked;
            t.ops.default_domain = blocked;
            t.ops.blocked_domain = blocked;
            t.ops.owner = module.as_ptr();
            t.ops.probe_device = Some(Self::probe_device);
            t.ops.device_group = Some(bindings::generic_device_group);
            t.ops.domain_alloc_paging_flags = Some(Self::alloc_paging);
            t.ops.domain_alloc_nested = Some(Self::alloc_nested);
            t.ops.set_user_pasid_table(T::USER_PASID_TABLE.into());
            // Software IOMMUs have no hardware to pass an answer to.
            t.ops.page_response = Some(Self::page_response);
            t.ops.capable = Some(Self::capable);
            t.ops.hw_info = Some(Self::hw_info);
            if T::Viommu::TYPE != 0 {
                t.ops.get_viommu_size = Some(Self::get_viommu_size);
                t.ops.viommu_init = Some(Self::viommu_init);
                let v = &mut t.viommu_ops;
                v.destroy = Some(Self::viommu_destroy);
                v.alloc_domain_nested = Some(Self::viommu_alloc_nested);
                v.cache_invalidate = Some(Self::viommu_cache_invalidate);
                if T::Viommu::HW_QUEUE_TYPE != 0 {
                    v.get_hw_queue_size = Some(Self::get_hw_queue_size);
                    v.hw_queue_init_phys = Some(Self::hw_queue_init_phys);
                }
            }
            t.iommu.max_pasids = max_pasids;
        }
    }

    /// Allocates the fault queue (if the driver has faults), registers the
    /// bus, the IOMMU device in sysfs and the IOMMU for the bus; on failure
    /// undoes what it did.
    ///
    /// # Safety
    ///
    /// `t` was filled by `init_tables` and stays valid and pinned until
    /// [`Self::unregister`] if this succeeds.
    unsafe fn register(t: *mut Tables, name: &'static CStr) -> Result {
        // SAFETY: Per the function's requirements; the core knows nothing
        // of the tables until the last call, which makes them its own.
        unsafe {
            if T::FAULTS {
                // The name is a static C string.
                let q = bindings::iopf_queue_alloc(name.as_char_ptr());
                if q.is_null() {
                    return Err(ENOMEM);
                }
                (*t).iopf_queue = q;
            }
            let bus = &raw mut (*t).bus;
            let iommu = &raw mut (*t).iommu;
            if let Err(e) = to_result(bindings::bus_register(bus)) {
                Self::free_iopf_queue(t);
                return Err(e);
            }
            // The format takes one C string.
            let rc = bindings::iommu_device_sysfs_add(
                iommu,
                core::ptr::null_mut(),
                core::ptr::null_mut(),
                c"%s".as_char_ptr(),
                name.as_char_ptr(),
            );
            if rc != 0 {
                bindings::bus_unregister(bus);
                Self::free_iopf_queue(t);
                return Err(Error::from_errno(rc));
            }
            let rc = bindings::iommu_device_register_bus(
                iommu,
                &raw const (*t).ops,
                bus,
                &raw mut (*t).nb,
            );
            if rc != 0 {
                bindings::iommu_device_sysfs_remove(iommu);
                bindings::bus_unregister(bus);
                Self::free_iopf_queue(t);
                return Err(Error::from_errno(rc));
            }
        }
        Ok(())
    }

    /// Undoes a successful [`Self::register`].
    ///
    /// # Safety
    ///
    /// `t` was registered, and none of the devices on the bus and domains of
    /// the driver is left.
    unsafe fn unregister(t: *mut Tables) {
        // SAFETY: Per the function's requirements.
        unsafe {
            let iommu = &raw mut (*t).iommu;
            let bus = &raw mut (*t).bus;
            bindings::iommu_device_sysfs_remove(iommu);
            bindings::iommu_device_unregister_bus(iommu, bus, &raw mut (*t).nb);
            bindings::bus_unregister(bus);
            Self::free_iopf_queue(t);
        }
    }

    /// Frees the fault queue, if any; no device is in it.
    ///
    /// # Safety
    ///
    /// `t` is valid and its queue, if any, unused.
    unsafe fn free_iopf_queue(t: *mut Tables) {
        // SAFETY: Per the function's requirements; the field is cleared, so
        // the queue is freed once.
        unsafe {
            let q = core::ptr::replace(&raw mut (*t).iopf_queue, core::ptr::null_mut());
            if !q.is_null() {
                bindings::iopf_queue_free(q);
            }
        }
    }

    fn tables(&self) -> *mut Tables {
        self.tables.get()
    }

    /// Counts a device or domain the registration must outlive.
    fn get_user(&self) {
        self.users.fetch_add(1, Relaxed);
    }

    /// Gives back what [`Self::get_user`] counted.
    ///
    /// # Safety
    ///
    /// `reg` is a registration whose count the caller holds one of; the
    /// registration may be gone once this returns.
    unsafe fn put_user(reg: *const Self) {
        // SAFETY: The count held keeps the registration alive until the
        // decrement; after `complete_all()`, nothing here touches it.
        unsafe {
            if (*reg).users.fetch_sub(1, Full) == 1 {
                (*reg).users_gone.complete_all();
            }
        }
    }

    /// Whether `dev` is one of this registration's devices.
    fn owns(&self, dev: &Device) -> bool {
        // SAFETY: `dev` is a valid device.
        unsafe { (*dev.as_raw()).type_ == self.header.dev_type.get().cast_const() }
    }

    /// Creates a device named `name` on the bus; the IOMMU core probes it
    /// for this driver and puts it in a group of its own.
    ///
    /// `u32_props` are firmware properties the device gets (such as
    /// `pasid-num-bits`, which the core reads at probe).
    pub fn add_device(
        &self,
        name: &CStr,
        data: T::DeviceData,
        u32_props: &[(&'static CStr, u32)],
    ) -> Result<BusDevice> {
        // A zeroed entry ends the list.
        let mut props = KVec::<bindings::property_entry>::new();
        for &(pname, val) in u32_props {
            let mut e: bindings::property_entry = pin_init::zeroed();
            e.name = pname.as_char_ptr();
            e.length = core::mem::size_of::<u32>();
            e.is_inline = true;
            e.type_ = bindings::dev_prop_type_DEV_PROP_U32;
            e.__bindgen_anon_1 = bindings::property_entry__bindgen_ty_1 {
                value: bindings::property_entry__bindgen_ty_1__bindgen_ty_1 { u32_data: [val, 0] },
            };
            props.push(e, GFP_KERNEL)?;
        }
        props.push(pin_init::zeroed(), GFP_KERNEL)?;
        let raw = KBox::new(
            DeviceBox::<T> {
                dev: Opaque::zeroed(),
                reg: self,
                iopf_users: Atomic::new(0),
                viommu: Atomic::new(0),
                data,
            },
            GFP_KERNEL,
        )?;
        // Given back by `release_device`, which every device initialised
        // below reaches.
        self.get_user();
        let dev = KBox::into_raw(raw).cast::<bindings::device>();
        // SAFETY: `dev` is a zeroed device we own; from `device_initialize()`
        // on, it is freed by `release` when its last reference goes.
        unsafe {
            bindings::device_initialize(dev);
            (*dev).bus = &raw const (*self.tables()).bus;
            (*dev).type_ = self.header.dev_type.get();
            (*dev).release = Some(release_device::<T>);
        }
        // SAFETY: `dev` is initialised; the format takes one C string.
        let rc = unsafe { bindings::dev_set_name(dev, c"%s".as_char_ptr(), name.as_char_ptr()) };
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
            // device is registered (type invariant).
            unsafe { bindings::iommu_mock_device_add(dev, &raw mut (*self.tables()).iommu) }
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

    /// The driver's data of `dev`, if it is a device made by a registration
    /// of `T`.
    pub fn data_of(dev: &Device) -> Option<&T::DeviceData> {
        // SAFETY: `dev` is a valid device.
        unsafe { Self::of_device(dev.as_raw()) }?;
        // SAFETY: The device was made by `add_device` of a registration of
        // `T`: it is the first field of a `DeviceBox<T>`, which lives as long
        // as the device.
        Some(unsafe { &(*dev.as_raw().cast::<DeviceBox<T>>()).data })
    }

    /// The registration of `T` that made `dev`, if one did.
    ///
    /// # Safety
    ///
    /// `dev` is a valid device.
    unsafe fn of_device<'a>(dev: *mut bindings::device) -> Option<&'a Self> {
        // SAFETY: `dev` is valid for `'a`.
        let header: &'a Header = header_of(unsafe { Device::from_raw(dev) })?;
        if header.driver != TypeId::of::<T>() {
            return None;
        }
        // SAFETY: The header is the first field of a `Registration<T>`.
        Some(unsafe { &*core::ptr::from_ref(header).cast::<Self>() })
    }

    /// The driver's data of `domain`, if it is one of this registration's
    /// paging domains.
    pub fn paging_data_of<'a>(&self, domain: &'a Domain) -> Option<&'a T::Domain> {
        let d = domain.as_ptr();
        // SAFETY: `domain` is valid; if its ops are our paging ops, it is the
        // first field of a `DomainBox<T>` that lives as long as it.
        unsafe {
            if (*d).ops != &raw const (*self.tables()).paging_ops {
                return None;
            }
            Some(DomainBox::<T>::data(d))
        }
    }

    /// The page table of `domain`, if it is one of this registration's
    /// paging domains.
    pub fn paging_table_of<'a>(&self, domain: &'a Domain) -> Option<&'a Table<T::Format>> {
        let d = domain.as_ptr();
        // SAFETY: As in `paging_data_of`.
        unsafe {
            if (*d).ops != &raw const (*self.tables()).paging_ops {
                return None;
            }
            Some(DomainBox::<T>::table(d))
        }
    }

    /// The driver's data of `domain`, if it is one of this registration's
    /// nested domains.
    pub fn nested_data_of<'a>(&self, domain: &'a Domain) -> Option<&'a T::Nested> {
        let d = domain.as_ptr();
        // SAFETY: `domain` is valid; if its ops are our nested ops, it is the
        // first field of a `NestedBox<T>` that lives as long as it.
        unsafe {
            if (*d).ops != &raw const (*self.tables()).nested_ops {
                return None;
            }
            Some(&(*d.cast::<NestedBox<T>>()).data)
        }
    }

    /// Has `dev`, one of this registration's devices (`EINVAL` if not),
    /// raise the page request `req`, as hardware would.  The request goes
    /// to the fault handler of the domain it falls in, or is answered as
    /// failed if there is none.
    pub fn report_fault(&self, dev: &Device, req: &PageRequest) -> Result {
        if !self.owns(dev) {
            return Err(EINVAL);
        }
        // A device of ours whose probe failed (the core could not put it in
        // a group) has no IOMMU state for the core's fault path to use.
        if !super::domain::probed(dev) {
            return Err(ENODEV);
        }
        let mut evt = bindings::iopf_fault::default();
        evt.fault.type_ = bindings::iommu_fault_type_IOMMU_FAULT_PAGE_REQ;
        evt.fault.prm.flags = req.flags.into();
        evt.fault.prm.pasid = req.pasid;
        evt.fault.prm.grpid = req.grpid;
        evt.fault.prm.perm = req.perm.into();
        evt.fault.prm.addr = req.addr;
        // Attach changes of `dev`, all under this lock (`Attachment`), wait
        // for the report: the attach handle the core finds stays for it.
        let _guard = self.header.attach_lock.lock();
        // SAFETY: `dev` is a probed device of ours; `evt` lives for the call;
        // the lock above keeps its attachments as they are.
        to_result(unsafe { bindings::iommu_report_device_fault(dev.as_raw(), &mut evt) })
    }

    /// `iommu_ops::probe_device`: our devices have our IOMMU.
    ///
    /// # Safety
    ///
    /// Called by the core with a valid device (any device being probed).
    unsafe extern "C" fn probe_device(dev: *mut bindings::device) -> *mut bindings::iommu_device {
        // SAFETY: The core passes a valid device.
        match unsafe { Self::of_device(dev) } {
            // SAFETY: The tables are registered while devices exist.
            Some(reg) => unsafe { &raw mut (*reg.tables()).iommu },
            None => ENODEV.to_ptr(),
        }
    }

    /// `iommu_ops::capable`.
    ///
    /// # Safety
    ///
    /// Called by the core with a valid device of ours.
    unsafe extern "C" fn capable(dev: *mut bindings::device, cap: bindings::iommu_cap) -> bool {
        // SAFETY: The core passes a valid device.
        let dev = unsafe { Device::from_raw(dev) };
        Cap::from_raw(cap).is_some_and(|cap| T::capable(dev, cap))
    }

    /// `iommu_ops::hw_info`.
    ///
    /// # Safety
    ///
    /// Called by the core with a valid device of ours and valid out
    /// parameters (`ty` also in: the type asked for).
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

    /// `iommu_ops::domain_alloc_paging_flags`.
    ///
    /// # Safety
    ///
    /// Called by the core with a valid device of ours; `user_data` is NULL
    /// or valid for the call.
    unsafe extern "C" fn alloc_paging(
        dev: *mut bindings::device,
        flags: u32,
        user_data: *const bindings::iommu_user_data,
    ) -> *mut bindings::iommu_domain {
        // SAFETY: The core passes a valid device.
        let Some(reg) = (unsafe { Self::of_device(dev) }) else {
            return ENODEV.to_ptr();
        };
        // SAFETY: A non-NULL `user_data` lives for the call.
        let data = (!user_data.is_null()).then(|| unsafe { UserData::from_raw(user_data) });
        let flags = AllocFlags::from_bits_retain(flags);
        // SAFETY: As above.
        let new = match T::alloc_paging(unsafe { Device::from_raw(dev) }, flags, data) {
            Ok(new) => new,
            Err(e) => return e.to_ptr(),
        };
        let boxed = KBox::pin_init(
            pin_init!(DomainBox::<T> {
                table <- Table::new(),
                reg,
                data: new.data,
            }),
            GFP_KERNEL,
        );
        let boxed = match boxed {
            Ok(b) => b,
            Err(_) => return ENOMEM.to_ptr(),
        };
        // SAFETY: The table is zeroed, ours, and pinned; its domain gets our
        // paging ops, which the format filled, below.
        if let Err(e) = unsafe { boxed.table.init(&new.table) } {
            return e.to_ptr();
        }
        let d = boxed.table.domain();
        // SAFETY: The table is initialised and still ours alone.
        let (table_sizes, start, last) = unsafe {
            (
                (*d).pgsize_bitmap as usize,
                (*d).geometry.aperture_start,
                (*d).geometry.aperture_end,
            )
        };
        // The driver asks for less than its table has: anything else is a
        // bug of the driver's.
        let sizes = new.pgsize_bitmap.unwrap_or(table_sizes);
        let aperture = new.aperture.unwrap_or((start, last));
        if crate::warn_on!(
            sizes == 0
                || sizes & !table_sizes != 0
                || aperture.0 > aperture.1
                || aperture.0 < start
                || aperture.1 > last
        ) {
            // SAFETY: Initialised, and nothing else knows the table.
            unsafe { boxed.table.deinit() };
            return EINVAL.to_ptr();
        }
        // SAFETY: The box stays where it is until `free`, which drops it in
        // place.
        let boxed = KBox::into_raw(unsafe { Pin::into_inner_unchecked(boxed) });
        // Given back by `free`.
        reg.get_user();
        let t = reg.tables();
        // SAFETY: `boxed` is a new domain we own until `free`, its table
        // initialised; the tables are registered.  Its type and geometry
        // are the driver's to set; the table maps within the aperture and
        // with page sizes it has.
        unsafe {
            let d = (*boxed).table.domain();
            (*d).type_ = bindings::IOMMU_DOMAIN_UNMANAGED;
            (*d).ops = &raw const (*t).paging_ops;
            (*d).pgsize_bitmap = sizes as c_ulong;
            (*d).geometry.aperture_start = aperture.0;
            (*d).geometry.aperture_end = aperture.1;
            (*d).geometry.force_aperture = true;
            if new.dirty_tracking {
                (*d).dirty_ops = &raw const (*t).dirty_ops;
            }
            d
        }
    }

    /// `iommu_domain_ops::iotlb_sync` of paging domains: a software IOMMU
    /// has no IOTLB, so this only frees the table levels an unmap or a map
    /// took out of the table.
    ///
    /// # Safety
    ///
    /// Called by the core or by the table's library with one of our paging
    /// domains and a valid gather, whose free list holds levels taken out
    /// of the domain's table.
    unsafe extern "C" fn iotlb_sync(
        domain: *mut bindings::iommu_domain,
        gather: *mut bindings::iommu_iotlb_gather,
    ) {
        // SAFETY: Per the function's requirements; `domain` is one of ours
        // (its ops are), live for the call.
        unsafe { DomainBox::<T>::table(domain).free_levels(gather) };
    }

    /// `iommu_domain_ops::free` of paging domains.
    ///
    /// # Safety
    ///
    /// Called by the core, once, with a domain made by `alloc_paging`, to
    /// which no device is attached any more.
    unsafe extern "C" fn free(domain: *mut bindings::iommu_domain) {
        // SAFETY: `domain` is the first field of a `DomainBox<T>` made by
        // `alloc_paging`; the core frees it once.
        let boxed = unsafe { KBox::from_raw(domain.cast::<DomainBox<T>>()) };
        // SAFETY: The table was initialised by `alloc_paging`; with no
        // device attached and the domain being freed, nothing uses it.
        unsafe { boxed.table.deinit() };
        let reg = boxed.reg;
        drop(boxed);
        // SAFETY: The domain held one count of `reg`, given back now.
        unsafe { Self::put_user(reg) };
    }

    /// `attach_dev` of every domain: a device attached to a domain that
    /// takes faults is in the fault queue.
    ///
    /// # Safety
    ///
    /// Called by the core under the group's lock with valid domains (`old`
    /// may be NULL) and a device whose IOMMU is ours.
    unsafe extern "C" fn attach_dev(
        domain: *mut bindings::iommu_domain,
        dev: *mut bindings::device,
        old: *mut bindings::iommu_domain,
    ) -> c_int {
        // SAFETY: As for `attach`, whose requirements the core meets.
        unsafe { Self::attach(domain, dev, old, None) }
    }

    /// Attaches `dev` (its requests without a PASID, or its PASID `pasid`)
    /// to `domain`.
    ///
    /// # Safety
    ///
    /// As for [`Self::attach_dev`].
    unsafe fn attach(
        domain: *mut bindings::iommu_domain,
        dev: *mut bindings::device,
        old: *mut bindings::iommu_domain,
        pasid: Option<u32>,
    ) -> c_int {
        let rid = pasid.is_none();
        // SAFETY: The core passes valid domains (`old` may be NULL) and a
        // device of ours, under the group's lock.
        unsafe {
            let Some(data) = Self::data_of(Device::from_raw(dev)) else {
                return ENODEV.to_errno();
            };
            let dirty = !(*domain).dirty_ops.is_null();
            if let Err(e) = T::check_attach(Device::from_raw(dev), data, dirty) {
                return e.to_errno();
            }
            if let Some(p) = pasid {
                let blocking = (*domain).type_ == bindings::IOMMU_DOMAIN_BLOCKED;
                if let Err(e) = T::check_attach_pasid(Device::from_raw(dev), data, p, blocking) {
                    return e.to_errno();
                }
            }
            // The vIOMMU of a nested domain of ours made on one, for the
            // requests without a PASID.
            let mut viommu = core::ptr::null_mut::<ViommuBox<T>>();
            if rid {
                if let Some(reg) = Self::of_device(dev) {
                    if (*domain).ops == &raw const (*reg.tables()).nested_ops {
                        viommu = (*domain.cast::<NestedBox<T>>()).viommu;
                    }
                }
            }
            if !viommu.is_null() {
                let vdata = (*viommu).data.assume_init_ref();
                if let Err(e) = vdata.attach(&ViommuBox::core(viommu), Device::from_raw(dev), data)
                {
                    return e.to_errno();
                }
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
            if rid {
                (*dev.cast::<DeviceBox<T>>())
                    .viommu
                    .store(viommu as usize, Relaxed);
            }
        }
        0
    }

    /// `set_dev_pasid` of every domain (the blocked domain detaches the
    /// PASID): as for the device itself.
    ///
    /// # Safety
    ///
    /// As for [`Self::attach_dev`].
    unsafe extern "C" fn set_dev_pasid(
        domain: *mut bindings::iommu_domain,
        dev: *mut bindings::device,
        pasid: bindings::ioasid_t,
        old: *mut bindings::iommu_domain,
    ) -> c_int {
        // SAFETY: As for `attach_dev`, whose requirements the core meets for
        // this op too.
        unsafe { Self::attach(domain, dev, old, Some(pasid)) }
    }

    /// Counts a domain taking faults `dev` is attached to; the first puts
    /// it in the fault queue.
    ///
    /// # Safety
    ///
    /// `dev` is a valid device; the caller holds its group's lock.
    unsafe fn iopf_get(dev: *mut bindings::device) -> Result {
        // SAFETY: Per the function's requirements; a device of ours is the
        // first field of a `DeviceBox<T>`.
        let (reg, users) = unsafe {
            (
                Self::of_device(dev).ok_or(ENODEV)?,
                &(*dev.cast::<DeviceBox<T>>()).iopf_users,
            )
        };
        // SAFETY: The tables are registered; only the initialiser and the
        // drop write the field.
        let q = unsafe { (*reg.tables()).iopf_queue };
        if q.is_null() {
            return Err(ENODEV);
        }
        if users.load(Relaxed) == 0 {
            // SAFETY: `q` is our live queue; `dev` is valid.
            to_result(unsafe { bindings::iopf_queue_add_device(q, dev) })?;
        }
        // The group's lock serialises the changes.
        users.fetch_add(1, Relaxed);
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
        if users.fetch_sub(1, Relaxed) == 1 {
            // SAFETY: The device was added to our queue by `iopf_get`.
            unsafe { bindings::iopf_queue_remove_device((*reg.tables()).iopf_queue, dev) };
        }
    }

    /// `iommu_dirty_ops::set_dirty_tracking`.
    ///
    /// # Safety
    ///
    /// Called by the core with one of our paging domains (only they have our
    /// dirty ops).
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

    /// `iommu_ops::page_response`: software IOMMUs have no hardware to tell.
    ///
    /// # Safety
    ///
    /// Called by the core; touches nothing.
    unsafe extern "C" fn page_response(
        _dev: *mut bindings::device,
        _evt: *mut bindings::iopf_fault,
        _msg: *mut bindings::iommu_page_response,
    ) {
    }

    /// `iommu_ops::domain_alloc_nested`.
    ///
    /// # Safety
    ///
    /// Called by the core with a valid device of ours, a valid (or NULL)
    /// parent and `user_data` valid (or NULL) for the call.
    unsafe extern "C" fn alloc_nested(
        dev: *mut bindings::device,
        parent: *mut bindings::iommu_domain,
        flags: u32,
        user_data: *const bindings::iommu_user_data,
    ) -> *mut bindings::iommu_domain {
        // SAFETY: The core passes a valid device.
        let Some(reg) = (unsafe { Self::of_device(dev) }) else {
            return ENODEV.to_ptr();
        };
        let t = reg.tables();
        // SAFETY: A non-NULL parent is a valid domain; if its ops are our
        // paging ops, it is one of our paging domains, live for the call.
        let parent = unsafe {
            if parent.is_null() || (*parent).ops != &raw const (*t).paging_ops {
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
        let flags = AllocFlags::from_bits_retain(flags);
        let nested = match T::alloc_nested(dev, parent, flags, data) {
            Ok(n) => n,
            Err(e) => return e.to_ptr(),
        };
        let boxed = match KBox::new(
            NestedBox::<T> {
                domain: Opaque::zeroed(),
                reg,
                viommu: core::ptr::null_mut(),
                data: nested,
            },
            GFP_KERNEL,
        ) {
            Ok(b) => KBox::into_raw(b),
            Err(_) => return ENOMEM.to_ptr(),
        };
        // Given back by `free_nested`.
        reg.get_user();
        // SAFETY: `boxed` is a new, zeroed domain we own until `free_nested`.
        unsafe {
            let d = (*boxed).domain.get();
            (*d).type_ = bindings::IOMMU_DOMAIN_NESTED;
            (*d).ops = &raw const (*t).nested_ops;
            d
        }
    }

    /// `iommu_domain_ops::free` of nested domains.
    ///
    /// # Safety
    ///
    /// Called by the core, once, with a domain made by `alloc_nested`.
    unsafe extern "C" fn free_nested(domain: *mut bindings::iommu_domain) {
        // SAFETY: `domain` is the first field of a `NestedBox<T>` made by
        // `alloc_nested`; the core frees it once.
        let boxed = unsafe { KBox::from_raw(domain.cast::<NestedBox<T>>()) };
        let reg = boxed.reg;
        drop(boxed);
        // SAFETY: The domain held one count of `reg`, given back now.
        unsafe { Self::put_user(reg) };
    }

    /// `iommu_domain_ops::cache_invalidate_user` of nested domains.
    ///
    /// # Safety
    ///
    /// Called by the core with one of our nested domains and an array that
    /// is ours for the call.
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
}

/// The vIOMMU side of a registration: the ops of `struct iommu_ops` and
/// `struct iommufd_viommu_ops` for `T::Viommu`.
impl<T: Driver> Registration<T> {
    /// Runs `f` on the vIOMMU of the nested domain `dev`, one of the
    /// registration's devices (`EINVAL` if not), is attached to: `ENOENT` if
    /// it is attached to no domain made on a vIOMMU.  Attach changes of
    /// `dev` wait meanwhile.
    pub fn with_viommu_of<R>(
        &self,
        dev: &Device,
        f: impl FnOnce(&T::Viommu, &ViommuCore<'_>) -> Result<R>,
    ) -> Result<R> {
        if !self.owns(dev) {
            return Err(EINVAL);
        }
        let _guard = self.header.attach_lock.lock();
        // SAFETY: A device of ours is the first field of a `DeviceBox<T>`.
        let v = unsafe { (*dev.as_raw().cast::<DeviceBox<T>>()).viommu.load(Relaxed) };
        let v = v as *mut ViommuBox<T>;
        if v.is_null() {
            return Err(ENOENT);
        }
        // SAFETY: Under the attach lock the device stays attached to the
        // nested domain, which keeps its vIOMMU (initialised: it made the
        // domain).
        unsafe { f((*v).data.assume_init_ref(), &ViommuBox::core(v)) }
    }

    /// The registration whose IOMMU is `iommu`.
    ///
    /// # Safety
    ///
    /// `iommu` is the IOMMU device of a live registration of `T` (the ops
    /// of `T` are only in those).
    unsafe fn of_iommu<'a>(iommu: *mut bindings::iommu_device) -> &'a Self {
        let off = core::mem::offset_of!(Self, tables) + core::mem::offset_of!(Tables, iommu);
        // SAFETY: The tables are a field of the registration (an `Opaque`,
        // its value at its start), the IOMMU device one of theirs.
        unsafe { &*iommu.byte_sub(off).cast::<Self>() }
    }

    /// `iommu_ops::get_viommu_size`.
    ///
    /// # Safety
    ///
    /// Called by iommufd with a device of ours.
    unsafe extern "C" fn get_viommu_size(_dev: *mut bindings::device, ty: u32) -> usize {
        const {
            assert!(
                core::mem::align_of::<ViommuBox<T>>()
                    <= core::mem::align_of::<bindings::iommufd_viommu>()
            )
        };
        if ty == T::Viommu::TYPE {
            core::mem::size_of::<ViommuBox<T>>()
        } else {
            0
        }
    }

    /// `iommu_ops::viommu_init`.
    ///
    /// # Safety
    ///
    /// Called by iommufd, once, with a zeroed vIOMMU of `get_viommu_size`'s
    /// size whose core part it filled in, a domain and user data valid (or
    /// NULL) for the call.
    unsafe extern "C" fn viommu_init(
        viommu: *mut bindings::iommufd_viommu,
        parent: *mut bindings::iommu_domain,
        user_data: *const bindings::iommu_user_data,
    ) -> c_int {
        let b = viommu.cast::<ViommuBox<T>>();
        // SAFETY: Per the function's requirements: `b` is ours until it
        // returns, its core part initialised, its IOMMU one of ours.
        unsafe {
            let reg = Self::of_iommu((*viommu).iommu_dev);
            let t = reg.tables();
            if parent.is_null() || (*parent).ops != &raw const (*t).paging_ops {
                return EINVAL.to_errno();
            }
            (&raw mut (*b).reg).write(reg);
            (&raw mut (*b).parent).write(parent);
            // Mutexes cannot fail to initialise.
            let _ = pin_init::raw_try_init(
                &raw mut (*b).mmaps,
                crate::new_mutex!(KVec::new(), "ViommuBox::mmaps"),
            );
            let _ = pin_init::raw_try_init(
                &raw mut (*b).queues,
                crate::new_mutex!(KVec::new(), "ViommuBox::queues"),
            );
            let data = (!user_data.is_null()).then(|| UserData::from_raw(user_data));
            match T::Viommu::init(&ViommuBox::core(b), DomainBox::<T>::data(parent), data) {
                Ok(d) => {
                    (*b).data.write(d);
                    // Given back by `viommu_destroy`.
                    reg.get_user();
                    (*viommu).ops = &raw const (*t).viommu_ops;
                    0
                }
                Err(e) => {
                    // The core frees the memory; what we put in it goes.
                    iommufd::destroy_mmaps(viommu, &(*b).mmaps);
                    core::ptr::drop_in_place(&raw mut (*b).mmaps);
                    core::ptr::drop_in_place(&raw mut (*b).queues);
                    e.to_errno()
                }
            }
        }
    }

    /// `iommufd_viommu_ops::destroy`.
    ///
    /// # Safety
    ///
    /// Called by iommufd, once, with a vIOMMU `viommu_init` initialised,
    /// which nothing uses any more.
    unsafe extern "C" fn viommu_destroy(viommu: *mut bindings::iommufd_viommu) {
        let b = viommu.cast::<ViommuBox<T>>();
        // SAFETY: Per the function's requirements; iommufd frees the memory.
        unsafe {
            let reg = (*b).reg;
            (*b).data.assume_init_drop();
            iommufd::destroy_mmaps(viommu, &(*b).mmaps);
            core::ptr::drop_in_place(&raw mut (*b).mmaps);
            core::ptr::drop_in_place(&raw mut (*b).queues);
            Self::put_user(reg);
        }
    }

    /// `iommufd_viommu_ops::alloc_domain_nested`.
    ///
    /// # Safety
    ///
    /// Called by iommufd with an initialised vIOMMU of ours and user data
    /// valid for the call.
    unsafe extern "C" fn viommu_alloc_nested(
        viommu: *mut bindings::iommufd_viommu,
        flags: u32,
        user_data: *const bindings::iommu_user_data,
    ) -> *mut bindings::iommu_domain {
        let b = viommu.cast::<ViommuBox<T>>();
        if user_data.is_null() {
            return EINVAL.to_ptr();
        }
        // SAFETY: Per the function's requirements.
        let (reg, nested) = unsafe {
            let reg = &*(*b).reg;
            let flags = AllocFlags::from_bits_retain(flags);
            let data = UserData::from_raw(user_data);
            match (*b)
                .data
                .assume_init_ref()
                .alloc_nested(&ViommuBox::core(b), flags, data)
            {
                Ok(n) => (reg, n),
                Err(e) => return e.to_ptr(),
            }
        };
        let boxed = match KBox::new(
            NestedBox::<T> {
                domain: Opaque::zeroed(),
                reg,
                viommu: b,
                data: nested,
            },
            GFP_KERNEL,
        ) {
            Ok(n) => KBox::into_raw(n),
            Err(_) => return ENOMEM.to_ptr(),
        };
        // Given back by `free_nested`.
        reg.get_user();
        // SAFETY: `boxed` is a new, zeroed domain we own until `free_nested`.
        unsafe {
            let d = (*boxed).domain.get();
            (*d).type_ = bindings::IOMMU_DOMAIN_NESTED;
            (*d).ops = &raw const (*reg.tables()).nested_ops;
            d
        }
    }

    /// `iommufd_viommu_ops::cache_invalidate`.
    ///
    /// # Safety
    ///
    /// Called by iommufd with an initialised vIOMMU of ours and an array
    /// that is ours for the call.
    unsafe extern "C" fn viommu_cache_invalidate(
        viommu: *mut bindings::iommufd_viommu,
        array: *mut bindings::iommu_user_data_array,
    ) -> c_int {
        let b = viommu.cast::<ViommuBox<T>>();
        // SAFETY: Per the function's requirements.
        let res = unsafe {
            (*b).data
                .assume_init_ref()
                .cache_invalidate(&ViommuBox::core(b), UserDataArray::from_raw(array))
        };
        match res {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        }
    }

    /// `iommufd_viommu_ops::get_hw_queue_size`.
    ///
    /// # Safety
    ///
    /// Called by iommufd with a vIOMMU of ours.
    unsafe extern "C" fn get_hw_queue_size(
        _viommu: *mut bindings::iommufd_viommu,
        ty: u32,
    ) -> usize {
        const {
            assert!(
                core::mem::align_of::<HwQueueBox<T>>()
                    <= core::mem::align_of::<bindings::iommufd_hw_queue>()
            )
        };
        if ty == T::Viommu::HW_QUEUE_TYPE {
            core::mem::size_of::<HwQueueBox<T>>()
        } else {
            0
        }
    }

    /// `iommufd_viommu_ops::hw_queue_init_phys`.
    ///
    /// # Safety
    ///
    /// Called by iommufd, once, with a zeroed HW queue of
    /// `get_hw_queue_size`'s size whose core part it filled in, on an
    /// initialised vIOMMU of ours.
    unsafe extern "C" fn hw_queue_init_phys(
        hw_queue: *mut bindings::iommufd_hw_queue,
        index: u32,
        base_pa: bindings::phys_addr_t,
    ) -> c_int {
        let q = hw_queue.cast::<HwQueueBox<T>>();
        // SAFETY: Per the function's requirements: `q` is ours until it
        // returns; its vIOMMU is live.
        unsafe {
            let b = (*hw_queue).viommu.cast::<ViommuBox<T>>();
            (&raw mut (*q).viommu).write(b);
            (&raw mut (*q).dep).write(Cell::new(core::ptr::null_mut()));
            let mut list = (*b).queues.lock();
            if list.reserve(1, GFP_KERNEL).is_err() {
                return ENOMEM.to_errno();
            }
            let qcore = HwQueueCore::from_raw(hw_queue, Some(&(*q).dep));
            let queues = HwQueues { list: &list };
            let v = (*b).data.assume_init_ref();
            match v.hw_queue_init(&ViommuBox::core(b), &qcore, index, base_pa, &queues) {
                Ok(d) => {
                    (*q).data.write(d);
                    // Room was reserved above.
                    let _ = list.push_within_capacity(NonNull::new_unchecked(q));
                    (*hw_queue).destroy = Some(Self::hw_queue_destroy);
                    0
                }
                Err(e) => {
                    iommufd::undepend(hw_queue, &(*q).dep);
                    e.to_errno()
                }
            }
        }
    }

    /// `iommufd_hw_queue::destroy`.
    ///
    /// # Safety
    ///
    /// Called by iommufd, once, with a HW queue `hw_queue_init_phys`
    /// initialised, which nothing uses or depends on any more.
    unsafe extern "C" fn hw_queue_destroy(hw_queue: *mut bindings::iommufd_hw_queue) {
        let q = hw_queue.cast::<HwQueueBox<T>>();
        // SAFETY: Per the function's requirements; iommufd frees the memory.
        unsafe {
            let b = (*q).viommu;
            let mut list = (*b).queues.lock();
            list.retain(|e| e.as_ptr() != q);
            (*q).data.assume_init_drop();
            iommufd::undepend(hw_queue, &(*q).dep);
            drop(list);
        }
    }
}

#[pinned_drop]
impl<T: Driver> PinnedDrop for Registration<T> {
    fn drop(self: Pin<&mut Self>) {
        // Whoever holds the devices and domains drops them; until then the
        // core may still call into the tables.
        if self.users.fetch_sub(1, Full) != 1 {
            self.users_gone.wait_for_completion();
        }
        // SAFETY: Registered by the initialiser (type invariant); no device
        // or domain is left.
        unsafe { Self::unregister(self.tables()) };
    }
}

/// A device made by [`Registration::add_device`] with its driver data: the
/// core's `struct device` first.
#[repr(C)]
struct DeviceBox<T: Driver> {
    dev: Opaque<bindings::device>,
    /// The registration, which waits for the device to be released.
    reg: *const Registration<T>,
    /// The domains taking faults the device is attached to (for its RID
    /// and PASIDs): it is in the fault queue while there is one.  Changed
    /// only under the group's lock (in `attach_dev`).
    iopf_users: Atomic<u32>,
    /// The address of the vIOMMU of the nested domain the device (its
    /// requests without a PASID) is attached to, 0 if none.  Changed under
    /// the group's lock, by attaches that (but for the core's own, to the
    /// default or blocking domain, which clear it) also hold the
    /// registration's attach lock.
    viommu: Atomic<usize>,
    data: T::DeviceData,
}

/// The `release` of [`Registration::add_device`]'s devices.
///
/// # Safety
///
/// Called by the core once, when the last reference to a device made by
/// `add_device` of a registration of `T` goes.
unsafe extern "C" fn release_device<T: Driver>(dev: *mut bindings::device) {
    // SAFETY: `dev` came from the box in `add_device`; the core calls
    // `release` once.
    let boxed = unsafe { KBox::from_raw(dev.cast::<DeviceBox<T>>()) };
    let reg = boxed.reg;
    drop(boxed);
    // SAFETY: The device held one count of `reg`, given back now.
    unsafe { Registration::<T>::put_user(reg) };
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
