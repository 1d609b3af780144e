// SPDX-License-Identifier: GPL-2.0

//! The kernel's generic IOMMU page tables (`generic_pt`): radix page tables
//! in a hardware format, whose `struct iommu_domain` is part of the table
//! structure, and which the IOMMU core maps and unmaps directly
//! (`iommu_domain::is_iommupt`).
//!
//! A [`Format`] names one of the library's formats; a [`Table`] is a table
//! of that format.  The paging domains of a [`super::driver::Driver`] are
//! such tables.
//!
//! The library leaves locking to its caller: map, unmap, translation and
//! dirty reads must not overlap an unmap of the same IOVA (the IOMMU core's
//! own rule for `iommu_map()` and `iommu_unmap()`).  The walks a driver
//! makes itself ([`Walker`]) are safe at any time.
//!
//! C header: [`include/linux/generic_pt/iommu.h`](srctree/include/linux/generic_pt/iommu.h)

use crate::{
    bindings,
    error::to_result,
    new_spinlock,
    prelude::*,
    sync::{SpinLock, SpinLockGuard},
    types::Opaque,
};
use core::marker::PhantomData;

mod private {
    /// Only the formats of this module are formats.
    pub trait Sealed {}
}

/// A page-table format of the generic page table library.
///
/// # Safety
///
/// `Table` is the format's C table, `struct pt_iommu_<format>`, whose first
/// field is a `struct pt_iommu`, whose first field is the table's
/// `struct iommu_domain`.  [`Format::init`] and [`Format::domain_ops`] are
/// the format's own (`pt_iommu_<format>_init()`, `IOMMU_PT_DOMAIN_OPS` and
/// `IOMMU_PT_DIRTY_OPS`).
pub unsafe trait Format: private::Sealed + Send + Sync + 'static {
    /// The C table, `struct pt_iommu_<format>`.
    type Table;

    /// What a table is made with.
    type Config: Send;

    /// Initialises a table: its levels, its top table, the geometry and
    /// page sizes of its domain, `pt_iommu::ops` last.  A table whose
    /// initialisation failed needs no [`Table::deinit`] (which is harmless
    /// on it, though).
    ///
    /// # Safety
    ///
    /// `table` is valid for writes and not shared; everything in it is
    /// zero but the `struct pt_iommu` fields the caller sets (`nid`), and
    /// the domain, which the table keeps.
    unsafe fn init(table: *mut Self::Table, cfg: &Self::Config) -> Result;

    /// Fills `ops` and `dirty_ops` with what the format provides for a
    /// domain that is one of its tables (the translation, and the dirty
    /// read if the format has dirty bits); every other field is cleared.
    fn domain_ops(ops: &mut bindings::iommu_domain_ops, dirty_ops: &mut bindings::iommu_dirty_ops);
}

/// A table of format `F`, as laid out in C (its domain first), with the
/// lock its walks here take.
///
/// The library frees the levels an unmap (or a map replacing them with a
/// large entry) takes out of the table in the domain's `iotlb_sync`, which
/// for the tables of [`super::driver`] is [`Table::free_levels`]: it takes
/// the walk lock, so a [`Walker`] never reads a freed level.
///
/// # Invariants
///
/// Once in use (from [`Table::init`] to [`Table::deinit`]) the table was
/// initialised by `F::init`, and its domain's ops are `F`'s.
#[repr(C)]
#[pin_data]
pub struct Table<F: Format> {
    inner: Opaque<F::Table>,
    #[pin]
    walk: SpinLock<()>,
    _f: PhantomData<F>,
}

// SAFETY: The library's operations may run on any thread; concurrent ones
// follow the library's locking rule (see the module documentation), which
// the IOMMU core's callers uphold; the walks here take the walk lock.
unsafe impl<F: Format> Send for Table<F> {}
// SAFETY: As above.
unsafe impl<F: Format> Sync for Table<F> {}

/// The walk lock of a new [`Table`], whatever its format.  Not generic and
/// never inlined, so that every table's lock has the one name string the
/// kernel crate holds: lockdep wants one name per lock class, and a generic
/// `new_spinlock!` would put a copy of the name in each crate that makes
/// tables (this one, for software domains, and the mock IOMMU's module).
#[inline(never)]
fn walk_lock() -> impl PinInit<SpinLock<()>> {
    new_spinlock!((), "generic_pt_walk")
}

impl<F: Format> Table<F> {
    /// A zeroed table, to initialise in place with [`Table::init`].
    pub fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            inner: Opaque::zeroed(),
            walk <- walk_lock(),
            _f: PhantomData,
        })
    }

    /// The table's `struct pt_iommu`.
    fn pt(&self) -> *mut bindings::pt_iommu {
        // By `Format`'s requirements it is the table's first field.
        self.inner.get().cast()
    }

    /// The table's domain.
    pub fn domain(&self) -> *mut bindings::iommu_domain {
        // SAFETY: `pt()` points into `self`; the domain is its first field.
        unsafe { &raw mut (*self.pt()).domain }
    }

    /// Initialises the table, which allocates its top level on no NUMA
    /// node in particular.
    ///
    /// # Safety
    ///
    /// The table is zeroed (but for its domain) and not shared; it is
    /// pinned.  The caller sets the domain's ops to ones that `F` filled
    /// ([`Format::domain_ops`]) before the table is used.
    pub unsafe fn init(&self, cfg: &F::Config) -> Result {
        // SAFETY: Per the function's requirements; `nid` is a field the
        // library lets its caller set before the initialisation.
        unsafe {
            (*self.pt()).nid = bindings::NUMA_NO_NODE;
            F::init(self.inner.get(), cfg)
        }
    }

    /// Frees the table's levels (`pt_iommu_deinit()`).
    ///
    /// # Safety
    ///
    /// The table was given to [`Table::init`] and nothing uses it any more:
    /// no device walks it, no operation runs on it.
    pub unsafe fn deinit(&self) {
        // SAFETY: Per the function's requirements; a table whose
        // initialisation failed has no ops, which the helper checks.
        unsafe { bindings::pt_iommu_deinit(self.pt()) };
    }

    /// Frees the levels the library took out of the table and put on
    /// `gather`'s free list, once no [`Walker`] can be in them; the list is
    /// empty (and valid) afterwards.
    ///
    /// # Safety
    ///
    /// `gather` is valid, and the pages on its list are levels taken out of
    /// this table (or of no table), which no entry points to any more.
    pub unsafe fn free_levels(&self, gather: *mut bindings::iommu_iotlb_gather) {
        let _walks = self.walk.lock();
        // SAFETY: Per the function's requirements; walks started before the
        // entries were cleared are over (the lock), later ones cannot reach
        // the levels.
        unsafe {
            let list = &raw mut (*gather).freelist;
            bindings::iommu_put_pages_list(list);
            let head = &raw mut (*list).pages;
            (*head).next = head;
            (*head).prev = head;
        }
    }

    /// Starts walks of the table, which no free of its levels overlaps
    /// until the walker is dropped.  A spinlock: keep it short.
    pub fn walker(&self) -> Walker<'_, F> {
        Walker {
            table: self,
            _walks: self.walk.lock(),
        }
    }
}

/// Walks of a [`Table`], while none of its levels is freed.
pub struct Walker<'a, F: Format> {
    table: &'a Table<F>,
    _walks: SpinLockGuard<'a, ()>,
}

impl<F: Format> Walker<'_, F> {
    /// The physical address `iova` translates to, 0 if none.
    pub fn iova_to_phys(&self, iova: u64) -> u64 {
        let d = self.table.domain();
        // SAFETY: In use, the table is initialised and its domain's ops are
        // `F`'s (type invariant), whose translation walks the table; the
        // walk lock keeps its levels.
        unsafe {
            match (*(*d).ops).iova_to_phys {
                Some(op) => op(d, iova),
                None => 0,
            }
        }
    }

    /// Whether the format can mark entries dirty ([`Walker::set_dirty`]):
    /// it has dirty bits, and the kernel has the iommufd selftest.
    pub fn can_set_dirty(&self) -> bool {
        self.set_dirty_op().is_some()
    }

    fn set_dirty_op(
        &self,
    ) -> Option<unsafe extern "C" fn(*mut bindings::pt_iommu, bindings::dma_addr_t) -> c_int> {
        // SAFETY: In use, the table was initialised (type invariant): its
        // ops are the library's, valid for the table's life.
        unsafe { (*self.table.pt()).ops.as_ref() }.and_then(|ops| ops.set_dirty)
    }

    /// Marks the entry that translates `iova` written to, as a device
    /// writing through it would set its dirty bit: for test drivers.
    /// `ENOENT` if nothing is mapped there, `EAGAIN` on a race with a
    /// change of the entry, `EOPNOTSUPP` if the format cannot.
    pub fn set_dirty(&self, iova: u64) -> Result {
        let op = self.set_dirty_op().ok_or(EOPNOTSUPP)?;
        // SAFETY: The table is initialised; the walk lock keeps its levels,
        // and the op changes an entry atomically (a concurrent change makes
        // it fail).
        to_result(unsafe { op(self.table.pt(), iova) })
    }
}

/// The AMD IOMMU v1 format in the variant the iommufd selftest builds on
/// (`amdv1_mock`): 2 KiB pages (a page size the CPU does not have), at most
/// 56 bits of IOVA and 51 of physical address, every power of two from the
/// page to the top as a page size, dirty bits.
#[cfg(CONFIG_IOMMUFD_TEST)]
pub struct Amdv1Mock;

/// The configuration of an [`Amdv1Mock`] table (no optional features: the
/// variant has none).
#[cfg(CONFIG_IOMMUFD_TEST)]
pub struct Amdv1Config {
    /// The most IOVA bits the IOMMU translates (1 to 56).
    pub hw_max_vasz_lg2: u8,
    /// The most physical address bits it outputs (1 to 51).
    pub hw_max_oasz_lg2: u8,
    /// The level of the top table (1 to 4): each level has 512 entries, so
    /// that level 2, for example, spans 38 bits of IOVA.
    pub starting_level: u32,
}

#[cfg(CONFIG_IOMMUFD_TEST)]
impl private::Sealed for Amdv1Mock {}

// The table and its `struct pt_iommu` start with the domain.
#[cfg(CONFIG_IOMMU_PT_AMDV1)]
const _: () = {
    assert!(core::mem::offset_of!(bindings::pt_iommu_amdv1, iommu) == 0);
    assert!(core::mem::offset_of!(bindings::pt_iommu, domain) == 0);
};

// SAFETY: `pt_iommu_amdv1` starts with its `pt_iommu`, which starts with the
// domain (checked above); `init` and `domain_ops` are the format's.
#[cfg(CONFIG_IOMMUFD_TEST)]
unsafe impl Format for Amdv1Mock {
    type Table = bindings::pt_iommu_amdv1;
    type Config = Amdv1Config;

    unsafe fn init(table: *mut Self::Table, cfg: &Amdv1Config) -> Result {
        let mut c = bindings::pt_iommu_amdv1_cfg::default();
        c.common.hw_max_vasz_lg2 = cfg.hw_max_vasz_lg2;
        c.common.hw_max_oasz_lg2 = cfg.hw_max_oasz_lg2;
        c.starting_level = cfg.starting_level;
        // SAFETY: Per the function's requirements; `c` lives for the call.
        to_result(unsafe { bindings::pt_iommu_amdv1_mock_init(table, &c, bindings::GFP_KERNEL) })
    }

    fn domain_ops(ops: &mut bindings::iommu_domain_ops, dirty_ops: &mut bindings::iommu_dirty_ops) {
        // SAFETY: Both are valid for writes; the helper only writes them.
        unsafe { bindings::pt_iommu_amdv1_mock_domain_ops(ops, dirty_ops) };
    }
}

/// The AMD IOMMU v1 format as no-IOMMU mode uses it: 4 KiB pages and every
/// power of two above as a page size, the full 64 bits of IOVA with a top
/// that grows as needed, 52 bits of physical address.  The library forces
/// the growing top on the format (and the encryption and coherence bits of
/// its entries, which nothing reads here), so a table has driver ops: they
/// are a [`SoftBox`]'s, whose first field the table must be.
#[cfg(CONFIG_IOMMU_PT_AMDV1)]
struct Amdv1;

#[cfg(CONFIG_IOMMU_PT_AMDV1)]
impl private::Sealed for Amdv1 {}

// SAFETY: `pt_iommu_amdv1` starts with its `pt_iommu`, which starts with the
// domain (checked above for the same C type); `init` and `domain_ops` are
// the format's.
#[cfg(CONFIG_IOMMU_PT_AMDV1)]
unsafe impl Format for Amdv1 {
    type Table = bindings::pt_iommu_amdv1;
    type Config = ();

    unsafe fn init(table: *mut Self::Table, _cfg: &()) -> Result {
        let mut c = bindings::pt_iommu_amdv1_cfg::default();
        c.common.features = (1 << bindings::pt_features_PT_FEAT_DYNAMIC_TOP)
            | (1 << bindings::PT_FEAT_AMDV1_ENCRYPT_TABLES)
            | (1 << bindings::PT_FEAT_AMDV1_FORCE_COHERENCE);
        c.common.hw_max_vasz_lg2 = 64;
        c.common.hw_max_oasz_lg2 = 52;
        // Three levels to start with (39 bits); the top grows from there.
        c.starting_level = 2;
        // SAFETY: Per the function's requirements; `c` lives for the call.
        // The table is a `SoftBox`'s first field (only `alloc_soft` makes
        // one), which the driver ops find from it.
        unsafe {
            (*table).iommu.driver_ops = &SOFT_DRIVER_OPS;
            to_result(bindings::pt_iommu_amdv1_init(
                table,
                &c,
                bindings::GFP_KERNEL,
            ))
        }
    }

    fn domain_ops(ops: &mut bindings::iommu_domain_ops, dirty_ops: &mut bindings::iommu_dirty_ops) {
        // SAFETY: `ops` is valid for writes; the helper only writes it.
        unsafe { bindings::pt_iommu_amdv1_domain_ops(ops) };
        *dirty_ops = bindings::iommu_dirty_ops::default();
    }
}

/// A software domain: an [`Amdv1`] table no IOMMU walks, the lock the
/// library takes to grow its top, and the domain ops that point to it (its
/// first field holds the domain).
#[cfg(CONFIG_IOMMU_PT_AMDV1)]
#[repr(C)]
#[pin_data]
struct SoftBox {
    #[pin]
    table: Table<Amdv1>,
    #[pin]
    top_lock: Opaque<bindings::spinlock_t>,
    ops: bindings::iommu_domain_ops,
}

// The box starts with its table, which starts with the domain.
#[cfg(CONFIG_IOMMU_PT_AMDV1)]
const _: () = assert!(core::mem::offset_of!(SoftBox, table) == 0);

/// The driver ops of software domains' tables.
#[cfg(CONFIG_IOMMU_PT_AMDV1)]
static SOFT_DRIVER_OPS: bindings::pt_iommu_driver_ops = bindings::pt_iommu_driver_ops {
    change_top: Some(soft_change_top),
    get_top_lock: Some(soft_top_lock),
};

/// `pt_iommu_driver_ops::get_top_lock`: the lock a change of the top takes.
///
/// # Safety
///
/// Called by the library with the table of a live [`SoftBox`].
#[cfg(CONFIG_IOMMU_PT_AMDV1)]
unsafe extern "C" fn soft_top_lock(pt: *mut bindings::pt_iommu) -> *mut bindings::spinlock_t {
    // SAFETY: The table is the first field of a live `repr(C)` `SoftBox`,
    // and its `pt_iommu` the table's first.
    unsafe { (*pt.cast::<SoftBox>()).top_lock.get() }
}

/// `pt_iommu_driver_ops::change_top`: no IOMMU walks the table, so there is
/// no one to tell of its new top.
///
/// # Safety
///
/// Called by the library; nothing is dereferenced.
#[cfg(CONFIG_IOMMU_PT_AMDV1)]
unsafe extern "C" fn soft_change_top(
    _pt: *mut bindings::pt_iommu,
    _top_paddr: bindings::phys_addr_t,
    _top_level: core::ffi::c_uint,
) {
}

/// The owner of software domains: driver ops no device has, so that the
/// IOMMU core attaches no device to them (it wants the device's driver to
/// own the domain), and by whose address they are recognised.
#[cfg(CONFIG_IOMMU_PT_AMDV1)]
struct SoftOwner(Opaque<bindings::iommu_ops>);

// SAFETY: Nothing writes the ops; the core only compares their address.
#[cfg(CONFIG_IOMMU_PT_AMDV1)]
unsafe impl Sync for SoftOwner {}

#[cfg(CONFIG_IOMMU_PT_AMDV1)]
static SOFT_OWNER: SoftOwner = SoftOwner(Opaque::zeroed());

/// A new software paging domain (see [`super::domain::Domain::alloc_software`]),
/// owned by the caller, who frees it with `iommu_domain_free()`.
#[cfg(CONFIG_IOMMU_PT_AMDV1)]
pub(super) fn alloc_soft() -> Result<core::ptr::NonNull<bindings::iommu_domain>> {
    let boxed = KBox::pin_init(
        pin_init!(SoftBox {
            table <- Table::new(),
            // SAFETY: `slot` is valid for the call; the name and the class
            // are static.
            top_lock <- Opaque::ffi_init(|slot| unsafe {
                bindings::__spin_lock_init(
                    slot,
                    c"soft_domain_top".as_char_ptr(),
                    crate::static_lock_class!().as_ptr(),
                )
            }),
            ops: bindings::iommu_domain_ops::default(),
        }),
        GFP_KERNEL_ACCOUNT,
    )?;
    // SAFETY: The table is zeroed, ours, and pinned; its domain gets the
    // format's ops, below.
    unsafe { boxed.table.init(&())? };
    // SAFETY: The box stays where it is until `soft_free`, which drops it
    // in place.
    let boxed = KBox::into_raw(unsafe { Pin::into_inner_unchecked(boxed) });
    // The domain is the box's first byte (its table's first field's first
    // field, `repr(C)` all the way): the pointer the core gets, and gives
    // back to the callbacks, is the box's own.
    let d = boxed.cast::<bindings::iommu_domain>();
    // SAFETY: `boxed` is ours until `soft_free`, its table initialised (its
    // geometry and page sizes set by the format); the ops live in the box.
    unsafe {
        let mut dirty = bindings::iommu_dirty_ops::default();
        Amdv1::domain_ops(&mut (*boxed).ops, &mut dirty);
        (*boxed).ops.iotlb_sync = Some(soft_iotlb_sync);
        (*boxed).ops.free = Some(soft_free);
        (*d).type_ = bindings::IOMMU_DOMAIN_UNMANAGED;
        (*d).ops = &raw const (*boxed).ops;
        (*d).owner = SOFT_OWNER.0.get();
        Ok(core::ptr::NonNull::new_unchecked(d))
    }
}

/// Whether `domain` was made by [`alloc_soft`].
///
/// # Safety
///
/// `domain` is a valid domain.
#[cfg(CONFIG_IOMMU_PT_AMDV1)]
pub(super) unsafe fn is_soft(domain: *const bindings::iommu_domain) -> bool {
    // SAFETY: `domain` is valid.
    core::ptr::eq(unsafe { (*domain).owner }, SOFT_OWNER.0.get())
}

/// `iommu_domain_ops::iotlb_sync` of software domains: there is no IOTLB;
/// this frees the table levels an unmap or a map took out of the table.
///
/// # Safety
///
/// Called by the core or by the table's library with a software domain and
/// a valid gather, whose free list holds levels taken out of its table.
#[cfg(CONFIG_IOMMU_PT_AMDV1)]
unsafe extern "C" fn soft_iotlb_sync(
    domain: *mut bindings::iommu_domain,
    gather: *mut bindings::iommu_iotlb_gather,
) {
    // SAFETY: `domain` is the first field of the first field of a live
    // `repr(C)` `SoftBox`; per the function's requirements for the rest.
    unsafe { (*domain.cast::<SoftBox>()).table.free_levels(gather) };
}

/// `iommu_domain_ops::free` of software domains.
///
/// # Safety
///
/// Called by the core, once, with a domain made by [`alloc_soft`], which
/// nothing uses any more.
#[cfg(CONFIG_IOMMU_PT_AMDV1)]
unsafe extern "C" fn soft_free(domain: *mut bindings::iommu_domain) {
    // SAFETY: `domain` is the first field of a `SoftBox` made by
    // `alloc_soft`, freed once.
    let boxed = unsafe { KBox::from_raw(domain.cast::<SoftBox>()) };
    // SAFETY: Initialised by `alloc_soft`; nothing uses the table any more.
    unsafe { boxed.table.deinit() };
}
