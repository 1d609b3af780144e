// SPDX-License-Identifier: GPL-2.0

//! The selftest's mock IOMMU (`CONFIG_IOMMUFD_TEST`): a software IOMMU on
//! the bus `iommufd_mock`, whose paging domains are plain lookup tables.
//! Its geometry is the one `iommufd_test.h` promises the selftests: 2 KiB
//! pages and the IOVA aperture `[MOCK_APERTURE_START, MOCK_APERTURE_LAST]`.

use kernel::iommu::dirty::{DirtyBitmap, DirtyFlag, DirtyFlags};
use kernel::iommu::domain::{AllocFlag, AllocFlags, Cap, Prot, ProtFlag};
use kernel::iommu::driver::{self, NestedDomain, NewDomain, PagingDomain, Registration};
use kernel::iommu::user_data::{UserData, UserDataArray};
use kernel::new_mutex;
use kernel::page::PAGE_SIZE;
use kernel::prelude::*;
use kernel::rbtree::{RBTree, RBTreeNode};
use kernel::sync::atomic::{Atomic, Relaxed};
use kernel::sync::{Arc, Mutex};

use crate::uapi;

/// `MOCK_PAGE_SIZE`: the smallest page of a mock domain.
pub(crate) const MOCK_PAGE_SIZE: u64 = 2048;
/// `MOCK_APERTURE_START`
pub(crate) const MOCK_APERTURE_START: u64 = 1 << 24;
/// `MOCK_APERTURE_LAST`
pub(crate) const MOCK_APERTURE_LAST: u64 = (1 << 31) - 1;
/// The page sizes of a mock domain: every power of two from 2 KiB to 1 GiB.
const MOCK_PGSIZES: usize = ((1 << 31) - 1) & !(MOCK_PAGE_SIZE as usize - 1);

/// `IOMMU_HW_INFO_TYPE_DEFAULT`
const HW_INFO_TYPE_DEFAULT: u32 = 0;
/// `IOMMU_HW_INFO_TYPE_SELFTEST`
const HW_INFO_TYPE_SELFTEST: u32 = 0xfeedbeef;
/// `IOMMU_HW_INFO_SELFTEST_REGVAL`
const HW_INFO_SELFTEST_REGVAL: u32 = 0xdeadbeef;

/// Registers the mock IOMMU, until [`unregister`]: at module init.
pub(crate) fn register(module: &'static ThisModule) -> Result {
    let reg = Registration::new(c"iommufd_mock", module, 1 << MOCK_PASID_WIDTH);
    let reg: Arc<Registration<MockIommu>> = Arc::pin_init(reg, GFP_KERNEL)?;
    // Nothing else sets the module's shared value: there was none.
    drop(crate::ffi::global_replace(Some(reg))?);
    Ok(())
}

/// Unregisters the mock IOMMU, at module exit, when no mock device is left
/// (the registration waits for the last one to be released).
pub(crate) fn unregister() {
    drop(crate::ffi::global_replace(None));
}

/// The registration of the mock IOMMU, while registered.
pub(crate) fn registration() -> Result<Arc<Registration<MockIommu>>> {
    crate::ffi::global::<Registration<MockIommu>>().ok_or(ENODEV)
}

/// The mock IOMMU driver.
pub(crate) struct MockIommu;

/// Mock pages per leaf table: a leaf covers 2 MiB of IOVA.
const LEAF_ENTRIES: usize = 1024;
const LEAF_SPAN: u64 = LEAF_ENTRIES as u64 * MOCK_PAGE_SIZE;

/// A leaf table: an entry per mock page, 0 if unmapped (physical page 0 is
/// never mapped by iommufd), and how many are mapped.  An entry is the
/// physical address of the page ([`PA_MASK`]) with, below it, the log2 of
/// the size of the mapping (the PTE) the page is part of ([`SIZE_SHIFT`]),
/// and, in the PTE's first page only, its dirty bit ([`DIRTY`]).
#[derive(Zeroable)]
struct Leaf {
    pte: [u64; LEAF_ENTRIES],
    used: u32,
}

/// The physical address bits of an entry.
const PA_MASK: u64 = !(MOCK_PAGE_SIZE - 1);
/// The dirty bit of a PTE, in its first entry.
const DIRTY: u64 = 1;
/// Where the log2 of the PTE's size is in an entry (six bits).
const SIZE_SHIFT: u32 = 1;

/// The size of the PTE an entry is part of.
fn pte_size(e: u64) -> u64 {
    1 << ((e >> SIZE_SHIFT) & 0x3f)
}

/// `MOCK_HUGE_PAGE_SIZE`: the large page of a `MOCK_IOMMUPT_HUGE` domain.
const MOCK_HUGE_PAGE_SIZE: u64 = 512 * MOCK_PAGE_SIZE;
/// `MOCK_IOMMUPT_DEFAULT`, `MOCK_IOMMUPT_HUGE`: the `pagetable_type`s.
const IOMMUPT_DEFAULT: u32 = 0;
const IOMMUPT_HUGE: u32 = 1;

/// A mock paging domain: a two-level table, leaf tables of
/// [`LEAF_ENTRIES`] mock pages ([`MOCK_PAGE_SIZE`]) by IOVA / 2 MiB.
pub(crate) struct MockDomain {
    ptes: Pin<KBox<Mutex<LeafTables>>>,
    /// Dirty tracking is on (`MOCK_DIRTY_TRACK`).
    tracking: Atomic<bool>,
}

impl MockDomain {
    /// Whether dirty tracking is on.
    pub(crate) fn tracking(&self) -> bool {
        self.tracking.load(Relaxed)
    }

    /// Marks the PTE that maps `iova` dirty, as a device writing there
    /// would; false if nothing is mapped there.
    pub(crate) fn set_dirty(&self, iova: u64) -> bool {
        let mut table = self.ptes.lock();
        let Some(e) = entry(&table, iova) else {
            return false;
        };
        let start = iova & !(pte_size(e) - 1);
        match entry_mut(&mut table, start) {
            Some(first) => {
                *first |= DIRTY;
                true
            }
            None => false,
        }
    }
}

/// The entry of `iova`, if mapped.
fn entry(table: &LeafTables, iova: u64) -> Option<u64> {
    let leaf = table.get(&(iova / LEAF_SPAN))?;
    match leaf.pte[((iova % LEAF_SPAN) / MOCK_PAGE_SIZE) as usize] {
        0 => None,
        e => Some(e),
    }
}

/// The entry of `iova`, if mapped, to change.
fn entry_mut(table: &mut LeafTables, iova: u64) -> Option<&mut u64> {
    let leaf = table.get_mut(&(iova / LEAF_SPAN))?;
    let e = &mut leaf.pte[((iova % LEAF_SPAN) / MOCK_PAGE_SIZE) as usize];
    (*e != 0).then_some(e)
}

/// Leaf tables by IOVA / [`LEAF_SPAN`].
type LeafTables = RBTree<u64, KBox<Leaf>>;

impl PagingDomain for MockDomain {
    fn map_pages(
        &self,
        iova: u64,
        paddr: u64,
        pgsize: usize,
        pgcount: usize,
        prot: Prot,
    ) -> (usize, Result) {
        let total = (pgsize * pgcount) as u64;
        // As upstream's mock (a generic page table): an IOPTE that allows
        // neither reading nor writing is refused.
        if !prot.contains_any(ProtFlag::Read | ProtFlag::Write)
            || iova % MOCK_PAGE_SIZE != 0
            || paddr % MOCK_PAGE_SIZE != 0
            || paddr == 0
            || !pgsize.is_power_of_two()
        {
            return (0, Err(EINVAL));
        }
        let size_bits = u64::from(pgsize.trailing_zeros()) << SIZE_SHIFT;
        let mut table = self.ptes.lock();
        let mut off = 0;
        while off < total {
            let at = iova + off;
            let key = at / LEAF_SPAN;
            if table.get(&key).is_none() {
                // Zeroed in place: a leaf is 8 KiB, too much for the stack.
                let leaf = KBox::init(pin_init::init_zeroed::<Leaf>(), GFP_KERNEL);
                let node = leaf
                    .map_err(|_| ENOMEM)
                    .and_then(|l| RBTreeNode::new(key, l, GFP_KERNEL).map_err(|_| ENOMEM));
                match node {
                    Ok(node) => {
                        table.insert(node);
                    }
                    Err(e) => return (off as usize, Err(e)),
                }
            }
            let Some(leaf) = table.get_mut(&key) else {
                return (off as usize, Err(ENOMEM));
            };
            // Fill this leaf as far as the mapping goes.
            while off < total && (iova + off) / LEAF_SPAN == key {
                let i = (((iova + off) % LEAF_SPAN) / MOCK_PAGE_SIZE) as usize;
                if leaf.pte[i] != 0 {
                    // The core reports the error; iommufd never maps twice.
                    return (off as usize, Err(EEXIST));
                }
                leaf.pte[i] = (paddr + off) | size_bits;
                leaf.used += 1;
                off += MOCK_PAGE_SIZE;
            }
        }
        (total as usize, Ok(()))
    }

    fn unmap_pages(&self, iova: u64, pgsize: usize, pgcount: usize) -> usize {
        let total = (pgsize * pgcount) as u64;
        let mut table = self.ptes.lock();
        let mut off = 0;
        while off < total {
            let key = (iova + off) / LEAF_SPAN;
            let Some(leaf) = table.get_mut(&key) else {
                break;
            };
            let i = (((iova + off) % LEAF_SPAN) / MOCK_PAGE_SIZE) as usize;
            if leaf.pte[i] == 0 {
                break;
            }
            leaf.pte[i] = 0;
            leaf.used -= 1;
            if leaf.used == 0 {
                drop(table.remove(&key));
            }
            off += MOCK_PAGE_SIZE;
        }
        off as usize
    }

    fn iova_to_phys(&self, iova: u64) -> u64 {
        match entry(&self.ptes.lock(), iova) {
            None => 0,
            Some(e) => (e & PA_MASK) + iova % MOCK_PAGE_SIZE,
        }
    }

    fn set_dirty_tracking(&self, enable: bool) -> Result {
        self.tracking.store(enable, Relaxed);
        Ok(())
    }

    fn read_and_clear_dirty(
        &self,
        iova: u64,
        size: usize,
        flags: DirtyFlags,
        dirty: &mut DirtyBitmap<'_>,
    ) -> Result {
        let end = iova.checked_add(size as u64).ok_or(EINVAL)?;
        // Recording may pin the user's bitmap (taking the mmap lock), which
        // must not happen under the table lock: collect a batch of dirty
        // ranges, drop the lock, record them, go on.
        let mut batch = [(0u64, 0u64); 32];
        let mut n = 0;
        let mut at = iova;
        while at < end {
            let mut table = self.ptes.lock();
            while at < end && n < batch.len() {
                // Saturating: a range may end at the top of the space.
                let Some(e) = entry(&table, at) else {
                    at = at.saturating_add(MOCK_PAGE_SIZE);
                    continue;
                };
                let psize = pte_size(e);
                let start = at & !(psize - 1);
                if let Some(first) = entry_mut(&mut table, start) {
                    if *first & DIRTY != 0 {
                        let (lo, hi) = (start.max(iova), start.saturating_add(psize).min(end));
                        if n > 0 && batch[n - 1].1 == lo {
                            batch[n - 1].1 = hi;
                        } else {
                            batch[n] = (lo, hi);
                            n += 1;
                        }
                        if !flags.contains(DirtyFlag::NoClear) {
                            *first &= !DIRTY;
                        }
                    }
                }
                at = start.saturating_add(psize);
            }
            drop(table);
            for &(lo, hi) in &batch[..n] {
                dirty.record(lo, (hi - lo) as usize);
            }
            n = 0;
        }
        Ok(())
    }
}

/// `IOMMU_HWPT_DATA_SELFTEST`: the data of a mock nested domain,
/// `struct iommu_hwpt_selftest { __u32 iotlb; __u32 pagetable_type; }`.
pub(crate) const HWPT_DATA_SELFTEST: u32 = 0xdead;
/// `MOCK_NESTED_DOMAIN_IOTLB_NUM`
pub(crate) const IOTLB_NUM: usize = 4;
/// `IOMMU_HWPT_INVALIDATE_DATA_SELFTEST`: entries
/// `struct iommu_hwpt_invalidate_selftest { __u32 flags; __u32 iotlb_id; }`.
const INVALIDATE_DATA_SELFTEST: u32 = 0xdeadbeef;
/// `IOMMU_TEST_INVALIDATE_FLAG_ALL`: every IOTLB entry, whatever `iotlb_id`.
const INVALIDATE_FLAG_ALL: u32 = 1 << 0;

/// A mock nested domain: no translation of its own, only an emulated IOTLB
/// whose entries user space sets at allocation and clears by invalidation.
pub(crate) struct MockNested {
    pub(crate) iotlb: [Atomic<u32>; IOTLB_NUM],
}

impl NestedDomain for MockNested {
    fn cache_invalidate_user(&self, array: &mut UserDataArray) -> Result {
        let mut done = 0;
        let res = (|| {
            if array.data_type() != INVALIDATE_DATA_SELFTEST {
                return Err(EINVAL);
            }
            for i in 0..array.entry_num() {
                let [flags, id] = array.read::<[u32; 2]>(INVALIDATE_DATA_SELFTEST, i, 8)?;
                if flags & !INVALIDATE_FLAG_ALL != 0 {
                    return Err(EOPNOTSUPP);
                }
                if id as usize >= IOTLB_NUM {
                    return Err(EINVAL);
                }
                if flags & INVALIDATE_FLAG_ALL != 0 {
                    for e in &self.iotlb {
                        e.store(0, Relaxed);
                    }
                } else {
                    self.iotlb[id as usize].store(0, Relaxed);
                }
                done += 1;
            }
            Ok(())
        })();
        array.set_done(done);
        res
    }
}

/// `MOCK_PASID_WIDTH`: PASID bits of the mock IOMMU and its PASID devices.
pub(crate) const MOCK_PASID_WIDTH: u32 = 20;

/// `IOMMU_TEST_DEV_CACHE_DEFAULT`
pub(crate) const DEV_CACHE_DEFAULT: u32 = 0xbaddad;
/// `MOCK_DEV_CACHE_NUM`
pub(crate) const DEV_CACHE_NUM: usize = 4;

/// What the mock keeps with each device (upstream's `struct mock_dev`).
pub(crate) struct MockDevData {
    /// The device's emulated cache entries, invalidated through a vIOMMU.
    pub(crate) cache: [Atomic<u32>; DEV_CACHE_NUM],
    /// The device cannot be behind a dirty-tracking domain
    /// (`MOCK_FLAGS_DEVICE_NO_DIRTY`).
    no_dirty: bool,
}

impl MockDevData {
    pub(crate) fn new(no_dirty: bool) -> Self {
        Self {
            cache: [const { Atomic::new(DEV_CACHE_DEFAULT) }; DEV_CACHE_NUM],
            no_dirty,
        }
    }
}

/// Whether `dev` is a mock device that cannot track dirty pages.
fn no_dirty(dev: &kernel::device::Device) -> bool {
    Registration::<MockIommu>::data_of(dev).is_some_and(|d| d.no_dirty)
}

impl driver::Driver for MockIommu {
    type Domain = MockDomain;
    type Nested = MockNested;
    type DeviceData = MockDevData;

    const FAULTS: bool = true;
    const USER_PASID_TABLE: bool = true;

    fn alloc_nested(
        _dev: &kernel::device::Device,
        _parent: &MockDomain,
        flags: AllocFlags,
        data: &UserData,
    ) -> Result<MockNested> {
        if !flags.is_within(AllocFlag::Pasid.into()) {
            return Err(EOPNOTSUPP);
        }
        if data.data_type() != HWPT_DATA_SELFTEST {
            return Err(EOPNOTSUPP);
        }
        // The first version of the structure ended after `iotlb`.
        let [iotlb, _pagetable_type] = data.read::<[u32; 2]>(HWPT_DATA_SELFTEST, 4)?;
        let nested = MockNested {
            iotlb: [const { Atomic::new(0) }; IOTLB_NUM],
        };
        for e in &nested.iotlb {
            e.store(iotlb, Relaxed);
        }
        Ok(nested)
    }

    fn alloc_paging(
        dev: &kernel::device::Device,
        flags: AllocFlags,
        data: Option<&UserData>,
    ) -> Result<NewDomain<MockDomain>> {
        let dirty_tracking = flags.contains(AllocFlag::DirtyTracking);
        if !flags.is_within(AllocFlag::NestParent | AllocFlag::Pasid | AllocFlag::DirtyTracking)
            || (dirty_tracking && no_dirty(dev))
        {
            return Err(EOPNOTSUPP);
        }
        let mut pagetable_type = IOMMUPT_DEFAULT;
        if let Some(data) = data {
            if data.data_type() != HWPT_DATA_SELFTEST
                && data.data_type() != uapi::IOMMU_HWPT_DATA_NONE
            {
                return Err(EOPNOTSUPP);
            }
            // The first version of the structure ended after `iotlb`.
            pagetable_type = data.read::<[u32; 2]>(HWPT_DATA_SELFTEST, 4)?[1];
        }
        let pgsize_bitmap = match pagetable_type {
            IOMMUPT_DEFAULT => MOCK_PGSIZES,
            // Huge mappings only, but iommufd needs PAGE_SIZE to accept it.
            IOMMUPT_HUGE => (MOCK_HUGE_PAGE_SIZE as usize) | PAGE_SIZE,
            _ => return Err(EOPNOTSUPP),
        };
        Ok(NewDomain {
            data: MockDomain {
                ptes: KBox::pin_init(new_mutex!(RBTree::new()), GFP_KERNEL)?,
                tracking: Atomic::new(false),
            },
            pgsize_bitmap,
            aperture: (MOCK_APERTURE_START, MOCK_APERTURE_LAST),
            dirty_tracking,
        })
    }

    fn check_attach(
        _dev: &kernel::device::Device,
        data: &MockDevData,
        dirty_tracking: bool,
    ) -> Result {
        if dirty_tracking && data.no_dirty {
            return Err(EINVAL);
        }
        Ok(())
    }

    fn capable(dev: &kernel::device::Device, cap: Cap) -> bool {
        cap == Cap::CacheCoherency || (cap == Cap::DirtyTracking && !no_dirty(dev))
    }

    fn hw_info(_dev: &kernel::device::Device, ty: u32) -> Result<(KVec<u8>, u32)> {
        if ty != HW_INFO_TYPE_DEFAULT && ty != HW_INFO_TYPE_SELFTEST {
            return Err(EOPNOTSUPP);
        }
        // struct iommu_test_hw_info { __u32 flags; __u32 test_reg; }
        let mut data = KVec::with_capacity(8, GFP_KERNEL)?;
        data.extend_from_slice(&0u32.to_ne_bytes(), GFP_KERNEL)?;
        data.extend_from_slice(&HW_INFO_SELFTEST_REGVAL.to_ne_bytes(), GFP_KERNEL)?;
        Ok((data, HW_INFO_TYPE_SELFTEST))
    }
}

#[kunit_tests(iommufd_rs_mock)]
mod tests {
    use super::*;
    use crate::io_pagetable::{IoPagetable, PagesSlice, Prot};
    use crate::pages::{kunit_memfd_pages, PAGE};
    use kernel::iommu::domain::Domain;

    const RW: Prot = Prot {
        read: true,
        write: true,
    };
    /// The IOMMU_READ | IOMMU_WRITE of an IOPTE.
    /// An IOPTE that allows reading and writing.
    fn iopte_rw() -> kernel::iommu::domain::Prot {
        ProtFlag::Read | ProtFlag::Write
    }

    /// An IOAS and a mock domain: the domain takes in what is mapped, keeps
    /// following it, bounds the IOVA and sets its alignment, and gives it
    /// all back when it leaves.
    #[test]
    fn domain_follows_the_ioas() -> Result {
        let dev =
            registration()?.add_device(c"iommufd_kunit_mock", MockDevData::new(false), &[])?;
        let domain = Arc::new(
            Domain::alloc_paging(dev.device(), AllocFlags::empty())?,
            GFP_KERNEL,
        )?;
        let iopt = KBox::pin_init(IoPagetable::new(), GFP_KERNEL)?;
        let pages = kunit_memfd_pages(8)?;
        let slice = |start_byte: u64, length: u64| PagesSlice {
            pages: pages.clone(),
            start_byte,
            length,
        };
        let none = |_: u64, _: u64| {};
        // A mapping outside the aperture keeps the domain out.
        iopt.map(&[slice(0, PAGE)], Some(0x1000), RW)?;
        assert_eq!(iopt.add_domain(&domain), Err(EADDRINUSE));
        iopt.unmap(0, u64::MAX, &none)?;
        assert_eq!(pages.npinned(), 0);

        let base = MOCK_APERTURE_START;
        iopt.map(&[slice(0, 4 * PAGE)], Some(base), RW)?;
        iopt.add_domain(&domain)?;
        assert_eq!(iopt.iova_alignment(), MOCK_PAGE_SIZE);
        assert_eq!(pages.npinned(), 4);
        pages.for_each_phys(0, 3, |idx, phys| {
            assert_eq!(domain.iova_to_phys(base + idx * PAGE + 100), phys + 100);
            Ok(())
        })?;
        // Mapped later: into the domain too.
        let at = base + 0x10_0000;
        iopt.map(&[slice(4 * PAGE, 2 * PAGE)], Some(at), RW)?;
        assert_eq!(pages.npinned(), 6);
        pages.for_each_phys(4, 5, |idx, phys| {
            assert_eq!(domain.iova_to_phys(at + (idx - 4) * PAGE), phys);
            Ok(())
        })?;
        // Outside the aperture, or off its page size: refused.
        assert_eq!(
            iopt.map(&[slice(6 * PAGE, PAGE)], Some(0x1000), RW),
            Err(EINVAL)
        );
        assert_eq!(
            iopt.map(&[slice(6 * PAGE, PAGE)], Some(base + 0x20_0400), RW),
            Err(EINVAL)
        );
        // Unmapped: out of the domain and unpinned.
        iopt.unmap(at, at + 2 * PAGE - 1, &none)?;
        assert_eq!(domain.iova_to_phys(at), 0);
        assert_eq!(pages.npinned(), 4);

        iopt.remove_domain(&domain);
        assert_eq!(domain.iova_to_phys(base), 0);
        assert_eq!(iopt.iova_alignment(), 1);
        assert_eq!(pages.npinned(), 0);
        iopt.unmap(0, u64::MAX, &none)?;
        Ok(())
    }

    /// With a domain mapping the areas, huge IOPTEs may exist: large pages
    /// stay on and nothing is cut; without, the same area cuts.
    #[test]
    fn no_cut_under_huge_ioptes() -> Result {
        let dev =
            registration()?.add_device(c"iommufd_kunit_mock_cut", MockDevData::new(false), &[])?;
        let domain = Arc::new(
            Domain::alloc_paging(dev.device(), AllocFlags::empty())?,
            GFP_KERNEL,
        )?;
        let iopt = KBox::pin_init(IoPagetable::new(), GFP_KERNEL)?;
        let pages = kunit_memfd_pages(4)?;
        let s = [PagesSlice {
            pages: pages.clone(),
            start_byte: 0,
            length: 4 * PAGE,
        }];
        let none = |_: u64, _: u64| {};
        let base = MOCK_APERTURE_START;
        iopt.add_domain(&domain)?;
        iopt.map(&s, Some(base), RW)?;
        assert_eq!(iopt.cut(base + PAGE - 1), Err(EINVAL));
        assert_eq!(iopt.set_large_pages(false), Err(EINVAL));
        assert!(iopt.large_pages());
        iopt.unmap(0, u64::MAX, &none)?;
        // Nothing mapped: large pages go off, and what is mapped then cuts.
        iopt.set_large_pages(false)?;
        iopt.map(&s, Some(base), RW)?;
        iopt.cut(base + PAGE - 1)?;
        assert_eq!(iopt.unmap(base, base + PAGE - 1, &none)?, PAGE);
        assert_eq!(domain.iova_to_phys(base), 0);
        assert_ne!(domain.iova_to_phys(base + PAGE), 0);
        iopt.unmap(0, u64::MAX, &none)?;
        iopt.remove_domain(&domain);
        assert_eq!(pages.npinned(), 0);
        Ok(())
    }

    /// A dirty read's range checks at the top of the space, which
    /// upstream's unsigned arithmetic passes (its end wraps to 0), and with
    /// a page size that is no power of two (masked as upstream masks).
    #[test]
    fn dirty_range_checks_at_the_top() -> Result {
        let dev = registration()?.add_device(
            c"iommufd_kunit_mock_dirty",
            MockDevData::new(false),
            &[],
        )?;
        let domain = Domain::alloc_paging(dev.device(), AllocFlags::empty())?;
        let iopt = KBox::pin_init(IoPagetable::new(), GFP_KERNEL)?;
        let r = |iova: u64, len: u64, psize: u64| {
            iopt.read_and_clear_dirty(&domain, 0, iova, len, psize, 0)
        };
        let top = 0u64.wrapping_sub(PAGE);
        // The range passes; the domain does not track.
        assert_eq!(r(top, PAGE, PAGE), Err(EOPNOTSUPP));
        assert_eq!(r(0, top, PAGE), Err(EOPNOTSUPP));
        assert_eq!(r(top, 0, PAGE), Err(EINVAL));
        assert_eq!(r(top, PAGE + 1, PAGE), Err(EOVERFLOW));
        assert_eq!(r(top, PAGE, 0), Err(EINVAL));
        assert_eq!(r(top + 1, PAGE - 1, PAGE), Err(EINVAL));
        assert_eq!(r(top, PAGE - 1, PAGE), Err(EINVAL));
        assert_eq!(r(0, 0x4000, 0x3000), Err(EOPNOTSUPP));
        assert_eq!(r(0, 0x3000, 0x3000), Err(EINVAL));
        Ok(())
    }

    fn domain() -> Result<MockDomain> {
        Ok(MockDomain {
            ptes: KBox::pin_init(new_mutex!(RBTree::new()), GFP_KERNEL)?,
            tracking: Atomic::new(false),
        })
    }

    #[test]
    fn translates_what_it_maps() -> Result {
        let d = domain()?;
        // Two 4 KiB pages at IOVA 1 MiB: four mock pages.
        assert_eq!(
            d.map_pages(0x10_0000, 0x8000_0000, 4096, 2, iopte_rw()),
            (8192, Ok(()))
        );
        assert_eq!(d.iova_to_phys(0x10_0000), 0x8000_0000);
        assert_eq!(d.iova_to_phys(0x10_1234), 0x8000_1234);
        assert_eq!(d.iova_to_phys(0x10_2000), 0);
        assert_eq!(d.iova_to_phys(0xf_ffff), 0);
        // Mapping over a mapping fails where it starts to overlap.
        assert_eq!(
            d.map_pages(0x10_1000, 0x9000_0000, 4096, 1, iopte_rw()),
            (0, Err(EEXIST))
        );
        // Neither readable nor writable: refused, as upstream's mock does.
        assert_eq!(
            d.map_pages(
                0x20_0000,
                0x9000_0000,
                4096,
                1,
                kernel::iommu::domain::Prot::empty()
            ),
            (0, Err(EINVAL))
        );
        assert_eq!(d.iova_to_phys(0x20_0000), 0);
        // Unaligned to the mock page: refused.
        assert_eq!(
            d.map_pages(0x10_0400, 0x9000_0000, 2048, 1, iopte_rw()),
            (0, Err(EINVAL))
        );
        // Unmap stops at the first hole.
        assert_eq!(d.unmap_pages(0x10_1000, 4096, 2), 4096);
        assert_eq!(d.iova_to_phys(0x10_1000), 0);
        assert_eq!(d.iova_to_phys(0x10_0800), 0x8000_0800);
        assert_eq!(d.unmap_pages(0x10_0000, 4096, 1), 4096);
        assert!(d.ptes.lock().is_empty());
        Ok(())
    }

    /// Whether the PTE mapping `iova` is dirty.
    fn is_dirty(d: &MockDomain, iova: u64) -> bool {
        let t = d.ptes.lock();
        let e = entry(&t, iova).unwrap_or(0);
        let start = iova & !(pte_size(e) - 1);
        entry(&t, start).is_some_and(|f| f & DIRTY != 0)
    }

    /// Entries know the size of their PTE: a device writing anywhere in it
    /// dirties the whole PTE, and the dirty bit does not disturb the
    /// translation.
    #[test]
    fn dirty_bits_are_per_pte() -> Result {
        let d = domain()?;
        // A 4 KiB PTE at 1 MiB and a 1 MiB PTE at 2 MiB (it spans half a
        // leaf table).
        assert_eq!(
            d.map_pages(0x10_0000, 0x8000_0000, 4096, 1, iopte_rw()),
            (4096, Ok(()))
        );
        assert_eq!(
            d.map_pages(0x20_0000, 0x9000_0000, 1 << 20, 1, iopte_rw()),
            (1 << 20, Ok(()))
        );
        assert!(!d.set_dirty(0x30_0000));
        assert!(d.set_dirty(0x10_0800));
        assert!(is_dirty(&d, 0x10_0000));
        assert!(d.set_dirty(0x2f_f800));
        assert!(is_dirty(&d, 0x20_0000));
        assert!(is_dirty(&d, 0x2f_f800));
        assert_eq!(d.iova_to_phys(0x10_0800), 0x8000_0800);
        assert_eq!(d.iova_to_phys(0x20_0000), 0x9000_0000);
        assert_eq!(d.iova_to_phys(0x2f_ffff), 0x900f_ffff);
        // Unmapping takes the dirty bit with the PTE.
        assert_eq!(d.unmap_pages(0x10_0000, 4096, 1), 4096);
        assert_eq!(
            d.map_pages(0x10_0000, 0x8000_0000, 2048, 2, iopte_rw()),
            (4096, Ok(()))
        );
        assert!(!is_dirty(&d, 0x10_0000));
        assert!(!is_dirty(&d, 0x10_0800));
        assert_eq!(d.unmap_pages(0x10_0000, 2048, 2), 4096);
        assert_eq!(d.unmap_pages(0x20_0000, 1 << 20, 1), 1 << 20);
        assert!(d.ptes.lock().is_empty());
        Ok(())
    }
}
