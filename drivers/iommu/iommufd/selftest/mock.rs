// SPDX-License-Identifier: GPL-2.0

//! The selftest's mock IOMMU (`CONFIG_IOMMUFD_TEST`): a software IOMMU on
//! the bus `iommufd_mock`, whose paging domains are the kernel's generic
//! page tables in the AMDv1 format's selftest variant, as upstream's mock.
//! Its geometry is the one `iommufd_test.h` promises the selftests: 2 KiB
//! pages and the IOVA aperture `[MOCK_APERTURE_START, MOCK_APERTURE_LAST]`.

use kernel::iommu::domain::{AllocFlag, AllocFlags, Cap};
use kernel::iommu::driver::{
    self, HwQueues, NestedDomain, NewDomain, NewDomainOf, PagingDomain, Registration, VirtualIommu,
};
use kernel::iommu::generic_pt::{Amdv1Config, Amdv1Mock};
use kernel::iommu::iommufd::{HwQueueCore, RegionPages, ViommuCore};
use kernel::iommu::user_data::{UserData, UserDataArray};
use kernel::page::PAGE_SIZE;
use kernel::prelude::*;
use kernel::sync::atomic::{Atomic, Relaxed};
use kernel::sync::Arc;

use crate::uapi;

/// `MOCK_PAGE_SIZE`: the smallest page of a mock domain.
pub(crate) const MOCK_PAGE_SIZE: u64 = 2048;
/// `MOCK_APERTURE_START`
pub(crate) const MOCK_APERTURE_START: u64 = 1 << 24;
/// `MOCK_APERTURE_LAST`
pub(crate) const MOCK_APERTURE_LAST: u64 = (1 << 31) - 1;

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

/// `MOCK_HUGE_PAGE_SIZE`: the large page of a `MOCK_IOMMUPT_HUGE` domain.
const MOCK_HUGE_PAGE_SIZE: usize = 512 * MOCK_PAGE_SIZE as usize;
/// `MOCK_IOMMUPT_DEFAULT`, `MOCK_IOMMUPT_HUGE`: the `pagetable_type`s.
const IOMMUPT_DEFAULT: u32 = 0;
const IOMMUPT_HUGE: u32 = 1;

/// The table of every mock paging domain, as upstream's: an AMDv1 table
/// with 2 KiB pages whose top is level 2, so that it spans 38 bits of IOVA.
fn table_config() -> Amdv1Config {
    Amdv1Config {
        hw_max_vasz_lg2: 56,
        hw_max_oasz_lg2: 51,
        starting_level: 2,
    }
}

/// What the mock keeps with a paging domain beside its page table.
pub(crate) struct MockDomain {
    /// Dirty tracking is on (`MOCK_DIRTY_TRACK`).
    tracking: Atomic<bool>,
}

impl MockDomain {
    /// Whether dirty tracking is on.
    pub(crate) fn tracking(&self) -> bool {
        self.tracking.load(Relaxed)
    }
}

impl PagingDomain for MockDomain {
    fn set_dirty_tracking(&self, enable: bool) -> Result {
        self.tracking.store(enable, Relaxed);
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

/// Clears the emulated cache entry `id` of `entries`, or every entry with
/// [`INVALIDATE_FLAG_ALL`]; `id` is in range.
fn invalidate_entries(entries: &[Atomic<u32>], flags: u32, id: u32) {
    if flags & INVALIDATE_FLAG_ALL != 0 {
        for e in entries {
            e.store(0, Relaxed);
        }
    } else {
        entries[id as usize].store(0, Relaxed);
    }
}

/// A mock nested domain: no translation of its own, only an emulated IOTLB
/// whose entries user space sets at allocation and clears by invalidation.
pub(crate) struct MockNested {
    pub(crate) iotlb: [Atomic<u32>; IOTLB_NUM],
}

impl MockNested {
    /// A nested domain made with `flags` from user space's `data`.
    fn new(flags: AllocFlags, data: &UserData) -> Result<Self> {
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
                invalidate_entries(&self.iotlb, flags, id);
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
    /// The virtual ID of the device on the vIOMMU of the nested domain it
    /// is attached to, as the attach found it.
    vdev_id: Atomic<u64>,
    /// The next attach of PASID 1024 to a domain fails (`ENOMEM`): set by
    /// one, cleared by the next or by a detach, so that the core's undoing
    /// of a failed replace is tested, as upstream's mock does.
    pasid_1024_fails: Atomic<bool>,
    /// The device cannot be behind a dirty-tracking domain
    /// (`MOCK_FLAGS_DEVICE_NO_DIRTY`).
    no_dirty: bool,
}

impl MockDevData {
    pub(crate) fn new(no_dirty: bool) -> Self {
        Self {
            cache: [const { Atomic::new(DEV_CACHE_DEFAULT) }; DEV_CACHE_NUM],
            vdev_id: Atomic::new(0),
            pasid_1024_fails: Atomic::new(false),
            no_dirty,
        }
    }
}

/// Whether `dev` is a mock device that cannot track dirty pages.
fn no_dirty(dev: &kernel::device::Device) -> bool {
    Registration::<MockIommu>::data_of(dev).is_some_and(|d| d.no_dirty)
}

impl driver::Driver for MockIommu {
    type Format = Amdv1Mock;
    type Domain = MockDomain;
    type Nested = MockNested;
    type DeviceData = MockDevData;
    type Viommu = MockViommu;

    const FAULTS: bool = true;
    const USER_PASID_TABLE: bool = true;

    fn alloc_nested(
        _dev: &kernel::device::Device,
        _parent: &MockDomain,
        flags: AllocFlags,
        data: &UserData,
    ) -> Result<MockNested> {
        MockNested::new(flags, data)
    }

    fn alloc_paging(
        dev: &kernel::device::Device,
        flags: AllocFlags,
        data: Option<&UserData>,
    ) -> Result<NewDomainOf<MockIommu>> {
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
        // As upstream: the default domain has the mock aperture, the huge
        // one all of its table; the huge one maps in huge pages only, but
        // iommufd needs `PAGE_SIZE` to take it.
        let (pgsize_bitmap, aperture) = match pagetable_type {
            IOMMUPT_DEFAULT => (None, Some((MOCK_APERTURE_START, MOCK_APERTURE_LAST))),
            IOMMUPT_HUGE => (Some(MOCK_HUGE_PAGE_SIZE | PAGE_SIZE), None),
            _ => return Err(EOPNOTSUPP),
        };
        Ok(NewDomain {
            data: MockDomain {
                tracking: Atomic::new(false),
            },
            table: table_config(),
            pgsize_bitmap,
            aperture,
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

    fn check_attach_pasid(
        _dev: &kernel::device::Device,
        data: &MockDevData,
        pasid: u32,
        blocking: bool,
    ) -> Result {
        if pasid != 1024 {
            return Ok(());
        }
        if blocking {
            data.pasid_1024_fails.store(false, Relaxed);
        } else if data.pasid_1024_fails.xchg(false, Relaxed) {
            return Err(ENOMEM);
        } else {
            data.pasid_1024_fails.store(true, Relaxed);
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

/// `IOMMU_VIOMMU_TYPE_SELFTEST`
const VIOMMU_TYPE_SELFTEST: u32 = 0xdeadbeef;
/// `IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST`: entries
/// `struct iommu_viommu_invalidate_selftest { __u32 flags, vdev_id, cache_id; }`.
const VIOMMU_INVALIDATE_DATA_SELFTEST: u32 = 0xdeadbeef;
/// `MOCK_DEV_CACHE_ID_MAX`
const DEV_CACHE_ID_MAX: u32 = DEV_CACHE_NUM as u32 - 1;
/// `IOMMU_VEVENTQ_TYPE_SELFTEST`
const VEVENTQ_TYPE_SELFTEST: u32 = 0xbeefbeef;
/// `IOMMU_HW_QUEUE_TYPE_SELFTEST`
const HW_QUEUE_TYPE_SELFTEST: u32 = 0xdeadbeef;
/// `IOMMU_TEST_HW_QUEUE_MAX`
const HW_QUEUE_MAX: u32 = 2;

/// `struct iommu_viommu_selftest { __u32 in_data, out_data;
/// __aligned_u64 out_mmap_offset, out_mmap_length; }`, as the words it is
/// made of in memory.
type ViommuSelftest = [u32; 6];

/// The words of `v` as it lies in memory.
fn u64_words(v: u64) -> [u32; 2] {
    let b = v.to_ne_bytes();
    [
        u32::from_ne_bytes([b[0], b[1], b[2], b[3]]),
        u32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
    ]
}

/// A mock vIOMMU (upstream's `struct mock_viommu`): two pages user space
/// can map, if it gave data at allocation, whose first word is what it gave.
pub(crate) struct MockViommu {
    _pages: Option<RegionPages>,
}

/// A mock HW queue: its index on the vIOMMU.
pub(crate) struct MockHwQueue {
    index: u32,
}

impl VirtualIommu<MockIommu> for MockViommu {
    const TYPE: u32 = VIOMMU_TYPE_SELFTEST;
    const HW_QUEUE_TYPE: u32 = HW_QUEUE_TYPE_SELFTEST;
    type HwQueue = MockHwQueue;

    fn init(v: &ViommuCore<'_>, _parent: &MockDomain, data: Option<&UserData>) -> Result<Self> {
        let Some(data) = data else {
            return Ok(Self { _pages: None });
        };
        // The first version of the structure ended after `out_data`.
        let mut d = data.read::<ViommuSelftest>(VIOMMU_TYPE_SELFTEST, 8)?;
        let in_data = d[0];
        // Mapped by user space through the region, and checked there.
        let pages = RegionPages::new(1)?;
        pages.write_u32(0, in_data)?;
        let offset = v.alloc_mmap(pages.phys(), pages.len())?;
        // out_data, out_mmap_offset, out_mmap_length.
        d[1] = in_data;
        [d[2], d[3]] = u64_words(offset);
        [d[4], d[5]] = u64_words(pages.len() as u64);
        data.write(VIOMMU_TYPE_SELFTEST, &d, 8)?;
        Ok(Self {
            _pages: Some(pages),
        })
    }

    fn alloc_nested(
        &self,
        _v: &ViommuCore<'_>,
        flags: AllocFlags,
        data: &UserData,
    ) -> Result<MockNested> {
        MockNested::new(flags, data)
    }

    fn cache_invalidate(&self, v: &ViommuCore<'_>, array: &mut UserDataArray) -> Result {
        // An empty array of the right type checks the type.
        if array.entry_num() == 0 {
            return if array.data_type() == VIOMMU_INVALIDATE_DATA_SELFTEST {
                Ok(())
            } else {
                Err(EINVAL)
            };
        }
        // All entries are read before any is handled, as upstream.
        let mut cmds = KVec::with_capacity(array.entry_num() as usize, GFP_KERNEL)?;
        for i in 0..array.entry_num() {
            let e = array
                .read_any::<[u32; 3]>(VIOMMU_INVALIDATE_DATA_SELFTEST, i)
                .inspect_err(|_| array.set_done(0))?;
            cmds.push(e, GFP_KERNEL)?;
        }
        let mut done = 0;
        let res = (|| {
            for &[flags, vdev_id, cache_id] in cmds.iter() {
                if flags & !INVALIDATE_FLAG_ALL != 0 {
                    return Err(EOPNOTSUPP);
                }
                if cache_id > DEV_CACHE_ID_MAX {
                    return Err(EINVAL);
                }
                // The device through the built-in helpers.
                let dev = v.find_dev(vdev_id.into()).ok_or(EINVAL)?;
                let data = Registration::<MockIommu>::data_of(&dev).ok_or(EINVAL)?;
                invalidate_entries(&data.cache, flags, cache_id);
                done += 1;
            }
            Ok(())
        })();
        array.set_done(done);
        res
    }

    fn attach(
        &self,
        v: &ViommuCore<'_>,
        dev: &kernel::device::Device,
        data: &MockDevData,
    ) -> Result {
        // A device reaches a guest's nested domain only through its vDEVICE.
        let id = v.vdev_id_of(dev)?;
        data.vdev_id.store(id, Relaxed);
        Ok(())
    }

    fn hw_queue_init(
        &self,
        v: &ViommuCore<'_>,
        q: &HwQueueCore<'_>,
        index: u32,
        base_pa: u64,
        queues: &HwQueues<'_, MockIommu>,
    ) -> Result<MockHwQueue> {
        if index >= HW_QUEUE_MAX {
            return Err(EINVAL);
        }
        if queues.find(|o| o.index == index).is_some() {
            return Err(EEXIST);
        }
        // Queues come in order, each depending on the one before.
        let prev = if index > 0 {
            Some(queues.find(|o| o.index == index - 1).ok_or(EIO)?)
        } else {
            None
        };
        // Where the core says the guest's queue is must be where the
        // parent maps it.
        if base_pa != v.parent_iova_to_phys(q.base_addr()) {
            return Err(EFAULT);
        }
        if let Some((_, prev)) = prev {
            q.depend_on(&prev)?;
        }
        Ok(MockHwQueue { index })
    }
}

/// `IOMMU_TEST_OP_TRIGGER_VEVENT`: the mock device `dev` reports an event
/// with its virtual ID to the vIOMMU of the nested domain it is attached
/// to.  `ENOENT` if it is attached to none.
pub(crate) fn trigger_vevent(dev: &kernel::device::Device) -> Result {
    let reg = registration()?;
    reg.with_viommu_of(dev, |_, v| {
        let data = Registration::<MockIommu>::data_of(dev).ok_or(EINVAL)?;
        let id = data.vdev_id.load(Relaxed);
        if id == 0 {
            return Err(ENOENT);
        }
        // struct iommu_viommu_event_selftest { __u32 virt_id; }
        v.report_event(VEVENTQ_TYPE_SELFTEST, &(id as u32).to_ne_bytes())
    })
}

#[kunit_tests(iommufd_rs_mock)]
mod tests {
    use super::*;
    use crate::io_pagetable::{IoPagetable, PagesSlice, Prot};
    use crate::pages::{kunit_memfd_pages, PAGE};
    use kernel::iommu::dirty::{DirtyFlag, DirtyFlags, DirtyRecord};
    use kernel::iommu::domain::{Domain, ProtFlag};
    use kernel::iommu::driver::BusDevice;
    use kernel::str::CStr;

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

    /// A mock domain, with the mock device it was made for, that no device
    /// is ever attached to: the tests map any physical address into it.
    fn unattached(name: &'static CStr, flags: AllocFlags) -> Result<(Domain, BusDevice)> {
        let dev = registration()?.add_device(name, MockDevData::new(false), &[])?;
        Ok((Domain::alloc_paging(dev.device(), flags)?, dev))
    }

    /// Maps into an unattached domain.
    fn map(d: &Domain, iova: u64, paddr: u64, size: usize) -> Result {
        crate::ffi::kunit_map_unattached(d, iova, paddr, size, iopte_rw())
    }

    /// Every power of two from 2 KiB to 2^36 bytes: the page sizes of the
    /// AMDv1 mock table that starts at level 2 (38 bits of IOVA, less the
    /// whole table).
    const TABLE_PGSIZES: u64 = ((1 << 37) - 1) & !(MOCK_PAGE_SIZE - 1);

    /// A mock domain has the geometry of upstream's: the table's page
    /// sizes, the mock aperture.
    #[test]
    fn geometry_is_the_tables() -> Result {
        let (d, _dev) = unattached(c"iommufd_kunit_mock_geo", AllocFlags::empty())?;
        assert_eq!(d.pgsize_bitmap(), TABLE_PGSIZES);
        assert_eq!(d.aperture(), (MOCK_APERTURE_START, MOCK_APERTURE_LAST));
        assert!(!d.tracks_dirty());
        Ok(())
    }

    /// The table translates what it maps, to the byte; it refuses a map
    /// over a mapping, off its page size or past its 51 address bits, and
    /// the domain one that allows no access.
    #[test]
    fn translates_what_it_maps() -> Result {
        let (d, _dev) = unattached(c"iommufd_kunit_mock_map", AllocFlags::empty())?;
        let base = MOCK_APERTURE_START;
        map(&d, base, 0x8000_0000, 0x2000)?;
        assert_eq!(d.iova_to_phys(base), 0x8000_0000);
        assert_eq!(d.iova_to_phys(base + 0x1234), 0x8000_1234);
        assert_eq!(d.iova_to_phys(base + 0x1fff), 0x8000_1fff);
        assert_eq!(d.iova_to_phys(base + 0x2000), 0);
        assert_eq!(d.iova_to_phys(base - 1), 0);
        assert_eq!(map(&d, base + 0x1000, 0x9000_0000, 0x1000), Err(EADDRINUSE));
        assert_eq!(d.iova_to_phys(base + 0x1000), 0x8000_1000);
        assert_eq!(map(&d, base + 0x10_0400, 0x9000_0000, 0x800), Err(ENXIO));
        assert_eq!(map(&d, base + 0x10_0000, 1 << 51, 0x800), Err(ERANGE));
        // Neither readable nor writable: refused before the table, which
        // would warn.
        assert_eq!(
            crate::ffi::kunit_map_unattached(
                &d,
                base + 0x10_0000,
                0x9000_0000,
                0x800,
                kernel::iommu::domain::Prot::empty()
            ),
            Err(EINVAL)
        );
        assert_eq!(d.iova_to_phys(base + 0x10_0000), 0);
        // Far from the rest: new table levels, which the unmap gives back
        // (kmemleak would see them otherwise).
        map(&d, 0x30_0000_0000, 0x8000_0000, 0x800)?;
        assert_eq!(d.iova_to_phys(0x30_0000_0400), 0x8000_0400);
        assert_eq!(d.unmap(0x30_0000_0000, 0x800), 0x800);
        assert_eq!(d.unmap(base, 0x2000), 0x2000);
        assert_eq!(d.iova_to_phys(base), 0);
        Ok(())
    }

    /// As a real table: a large IOPTE goes whole when an unmap starts at
    /// its start, however little it asks for, and not at all when it starts
    /// inside; an unmap stops at a hole.
    #[test]
    fn unmaps_ioptes_whole() -> Result {
        let (d, _dev) = unattached(c"iommufd_kunit_mock_unmap", AllocFlags::empty())?;
        let base = MOCK_APERTURE_START;
        // 1 MiB, aligned: one IOPTE of the level above the 2 KiB pages.
        map(&d, base, 0x8000_0000, 1 << 20)?;
        assert_eq!(d.unmap(base + 0x800, 0x800), 0);
        assert_eq!(d.iova_to_phys(base + 0x800), 0x8000_0800);
        assert_eq!(d.unmap(base, 0x800), 1 << 20);
        assert_eq!(d.iova_to_phys(base + 0xf_ffff), 0);
        // Two 2 KiB pages, a hole, one more.
        map(&d, base, 0x8000_0800, 0x1000)?;
        map(&d, base + 0x1800, 0x9000_0000, 0x800)?;
        assert_eq!(d.unmap(base, 0x2000), 0x1000);
        assert_eq!(d.iova_to_phys(base + 0x1800), 0x9000_0000);
        assert_eq!(d.unmap(base + 0x1800, 0x800), 0x800);
        Ok(())
    }

    /// Dirty bits are the table's, per IOPTE: a device writing anywhere in
    /// an IOPTE dirties all of it, a read clears them (unless asked not
    /// to), and the translation does not change.
    #[test]
    fn dirty_bits_are_per_iopte() -> Result {
        let (d, _dev) = unattached(c"iommufd_kunit_mock_dirty", AllocFlag::DirtyTracking.into())?;
        let reg = registration()?;
        let table = reg.paging_table_of(&d).ok_or(EINVAL)?;
        let base = MOCK_APERTURE_START;
        // A 4 KiB IOPTE, and a 1 MiB one 1 MiB further.
        map(&d, base, 0x8000_0000, 0x1000)?;
        map(&d, base + (1 << 20), 0x9000_0000, 1 << 20)?;
        let cleared = |flags: DirtyFlags| -> Result<Option<(u64, u64)>> {
            let mut rec = DirtyRecord::new(None)?;
            d.read_and_clear_dirty(base, 2 << 20, flags, &mut rec)?;
            Ok(rec.cleared())
        };
        assert_eq!(cleared(DirtyFlags::empty())?, None);
        {
            let w = table.walker();
            assert!(w.can_set_dirty());
            assert_eq!(w.set_dirty(base + 0x80_0000), Err(ENOENT));
            w.set_dirty(base + 0x800)?;
        }
        let iopte_4k = Some((base, base + 0xfff));
        // Read without clearing: still dirty.
        assert_eq!(cleared(DirtyFlag::NoClear.into())?, None);
        assert_eq!(cleared(DirtyFlags::empty())?, iopte_4k);
        assert_eq!(cleared(DirtyFlags::empty())?, None);
        table.walker().set_dirty(base + (2 << 20) - 1)?;
        assert_eq!(
            cleared(DirtyFlags::empty())?,
            Some((base + (1 << 20), base + (2 << 20) - 1))
        );
        assert_eq!(d.iova_to_phys(base + 0x800), 0x8000_0800);
        assert_eq!(d.iova_to_phys(base + (2 << 20) - 1), 0x900f_ffff);
        assert_eq!(d.unmap(base, 0x1000), 0x1000);
        assert_eq!(d.unmap(base + (1 << 20), 1 << 20), 1 << 20);
        Ok(())
    }
}
