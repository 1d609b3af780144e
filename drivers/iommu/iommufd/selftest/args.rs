// SPDX-License-Identifier: GPL-2.0

//! The per-operation argument structures of `IOMMU_TEST_CMD`: the members
//! of the union in `struct iommu_test_cmd` (`iommufd_test.h`), laid out as
//! C lays them out (`#[repr(C)]`), and read from and written back to the
//! union's bytes field by field.

/// Declares argument structures and their conversions from and to the
/// command's union.
macro_rules! test_args {
    ($($(#[$m:meta])* struct $name:ident { $($f:ident: $t:ty),* $(,)? })*) => {$(
        $(#[$m])*
        #[repr(C)]
        #[derive(Default)]
        pub(super) struct $name {
            $(pub(super) $f: $t,)*
        }

        impl $name {
            /// The structure as the caller passed it.
            pub(super) fn read(u: &[u8; UNION_SIZE]) -> Self {
                const { assert!(core::mem::size_of::<$name>() <= UNION_SIZE) };
                Self {
                    $($f: <$t>::from_ne_bytes(field(u, core::mem::offset_of!($name, $f))),)*
                }
            }

            /// Writes the structure back into the union.
            #[allow(dead_code)]
            pub(super) fn write(&self, u: &mut [u8; UNION_SIZE]) {
                $(
                    let at = core::mem::offset_of!($name, $f);
                    let bytes = self.$f.to_ne_bytes();
                    u[at..at + bytes.len()].copy_from_slice(&bytes);
                )*
            }
        }
    )*};
}

/// The size of the union in `struct iommu_test_cmd`.
pub(super) const UNION_SIZE: usize = 48;

/// The `N` bytes of the union at `at` (within it: the structures fit).
fn field<const N: usize>(u: &[u8; UNION_SIZE], at: usize) -> [u8; N] {
    let mut b = [0u8; N];
    b.copy_from_slice(&u[at..at + N]);
    b
}

test_args! {
    /// `IOMMU_TEST_OP_ADD_RESERVED`
    struct AddReserved { start: u64, length: u64 }
    /// `IOMMU_TEST_OP_MOCK_DOMAIN` and `_FLAGS` (which adds `dev_flags`).
    struct MockDomain { out_stdev_id: u32, out_hwpt_id: u32, out_idev_id: u32, dev_flags: u32 }
    /// `IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE`
    struct MockDomainReplace { pt_id: u32 }
    /// `IOMMU_TEST_OP_PASID_ATTACH`, `_REPLACE` (`pt_id` comes back as the
    /// HWPT's ID), `_DETACH` (only `pasid`) and `_CHECK_HWPT` (`pt_id` is
    /// the HWPT to check, 0 for none).
    struct Pasid { pasid: u32, pt_id: u32 }
    /// `IOMMU_TEST_OP_DMABUF_GET`
    struct DmabufGet { length: u32, open_flags: u32 }
    /// `IOMMU_TEST_OP_DMABUF_REVOKE`
    struct DmabufRevoke { dmabuf_fd: i32, revoked: u32 }
    /// `IOMMU_TEST_OP_DIRTY`
    struct Dirty {
        flags: u32,
        iova: u64,
        length: u64,
        page_size: u64,
        uptr: u64,
        out_nr_dirty: u64,
    }
    /// `IOMMU_TEST_OP_MD_CHECK_IOTLB` (`index` into the IOTLB) and
    /// `IOMMU_TEST_OP_DEV_CHECK_CACHE` (into the device cache).
    struct CheckEntry { index: u32, value: u32 }
    /// `IOMMU_TEST_OP_TRIGGER_IOPF`
    struct TriggerIopf { dev_id: u32, pasid: u32, grpid: u32, perm: u32, addr: u64 }
    /// `IOMMU_TEST_OP_TRIGGER_VEVENT`
    struct TriggerVevent { dev_id: u32 }
    /// `IOMMU_TEST_OP_MD_CHECK_MAP`
    struct CheckMap { iova: u64, length: u64, uptr: u64 }
    /// `IOMMU_TEST_OP_MD_CHECK_REFS`
    struct CheckRefs { length: u64, uptr: u64, refs: u32 }
    /// `IOMMU_TEST_OP_CREATE_ACCESS`
    struct CreateAccess { out_access_fd: u32, flags: u32 }
    /// `IOMMU_TEST_OP_DESTROY_ACCESS_PAGES`
    struct DestroyAccessPages { access_pages_id: u32 }
    /// `IOMMU_TEST_OP_ACCESS_PAGES`
    struct AccessPages { flags: u32, out_access_pages_id: u32, iova: u64, length: u64, uptr: u64 }
    /// `IOMMU_TEST_OP_ACCESS_RW`
    struct AccessRw { iova: u64, length: u64, uptr: u64, flags: u32 }
    /// `IOMMU_TEST_OP_ACCESS_REPLACE_IOAS`
    struct AccessReplaceIoas { ioas_id: u32 }
    /// `IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT`
    struct MemoryLimit { limit: u32 }
}

// The offsets `iommufd_test.h` gives its members.
const _: () = {
    use core::mem::offset_of;
    assert!(offset_of!(Dirty, iova) == 8 && offset_of!(Dirty, out_nr_dirty) == 40);
    assert!(offset_of!(TriggerIopf, addr) == 16);
    assert!(offset_of!(CheckRefs, refs) == 16);
    assert!(offset_of!(AccessPages, iova) == 8 && offset_of!(AccessPages, uptr) == 24);
    assert!(offset_of!(AccessRw, flags) == 24);
};
