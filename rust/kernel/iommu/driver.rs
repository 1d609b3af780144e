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
use core::{any::TypeId, marker::PhantomData, ptr::NonNull};

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
pub trait Driver: Send + Sync + 'static {
    /// The format of the page tables of the driver's paging domains.
    type Format: Format;
    /// What the driver keeps with each paging domain.
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
    data: T::Nested,
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

    /// `set_dev_pasid` of every domain (the blocked domain detaches the
    /// PASID): as for the device itself.
    ///
    /// # Safety
    ///
    /// As for [`Self::attach_dev`].
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
