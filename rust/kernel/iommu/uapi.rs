// SPDX-License-Identifier: GPL-2.0

//! The iommufd uAPI and the VFIO type1 IOMMU uAPI that iommufd also serves,
//! as plain data: [`FromBytes`] and [`AsBytes`] for their structures, so
//! that a driver copies them from and to user memory with
//! [`UserSliceReader::read`] and [`UserSliceWriter::write`].
//!
//! Every structure is checked at build time to have no padding: its
//! fields, taken in order, cover it from its first byte to its last, and
//! are plain data themselves.
//!
//! C headers: [`include/uapi/linux/iommufd.h`](srctree/include/uapi/linux/iommufd.h),
//! [`include/uapi/linux/vfio.h`](srctree/include/uapi/linux/vfio.h)
//!
//! [`UserSliceReader::read`]: crate::uaccess::UserSliceReader::read
//! [`UserSliceWriter::write`]: crate::uaccess::UserSliceWriter::write

use crate::{
    transmute::{AsBytes, FromBytes},
    uapi,
};
use core::mem::{offset_of, size_of};

/// The size of the field `f` picks, which must be plain data itself.
const fn field_size<S, F: FromBytes + AsBytes>(_f: fn(&S) -> &F) -> usize {
    size_of::<F>()
}

/// Implements [`FromBytes`] and [`AsBytes`] for uAPI structures, each given
/// with all of its fields in order, after checking that the fields cover
/// the structure without a gap.
macro_rules! plain_data {
    ($($t:ident { $($f:ident),+ $(,)? })*) => {$(
        const _: () = {
            let mut end = 0;
            $(
                assert!(
                    offset_of!(uapi::$t, $f) == end,
                    concat!("padding before ", stringify!($t), "::", stringify!($f)),
                );
                end += field_size(|s: &uapi::$t| &s.$f);
            )+
            assert!(
                end == size_of::<uapi::$t>(),
                concat!("padding at the end of ", stringify!($t)),
            );
        };

        // SAFETY: A `repr(C)` structure (bindgen's) whose fields are plain
        // data (`FromBytes + AsBytes`, checked above) and cover it without
        // padding (checked above): any bytes are a valid value, all of its
        // bytes are initialised, and nothing in it is interior mutable.
        unsafe impl FromBytes for uapi::$t {}
        // SAFETY: As above.
        unsafe impl AsBytes for uapi::$t {}
    )*};
}

// SAFETY: A zero-sized marker of a flexible array member (the elements
// follow the structure in user memory, not in the value): it has no bytes.
unsafe impl<T> FromBytes for uapi::__IncompleteArrayField<T> {}
// SAFETY: As above.
unsafe impl<T> AsBytes for uapi::__IncompleteArrayField<T> {}

// `iommu_hw_info`'s union of `in_data_type` and `out_data_type`, both
// `__u32`: as big as either, so whichever was written, all of its bytes are
// initialised integer bytes.
const _: () = assert!(size_of::<uapi::iommu_hw_info__bindgen_ty_1>() == size_of::<u32>());
// SAFETY: A `repr(C)` union of two `u32` with no other bytes (checked
// above): any bytes are a valid value and all are initialised.
unsafe impl FromBytes for uapi::iommu_hw_info__bindgen_ty_1 {}
// SAFETY: As above.
unsafe impl AsBytes for uapi::iommu_hw_info__bindgen_ty_1 {}

plain_data! {
    iommu_destroy { size, id }
    iommu_fault_alloc { size, flags, out_fault_id, out_fault_fd }
    iommu_hw_info {
        size, flags, dev_id, data_len, data_uptr, __bindgen_anon_1,
        out_max_pasid_log2, __reserved, out_capabilities,
    }
    iommu_hw_queue_alloc {
        size, flags, viommu_id, type_, index, out_hw_queue_id,
        nesting_parent_iova, length,
    }
    iommu_hwpt_alloc {
        size, flags, dev_id, pt_id, out_hwpt_id, __reserved, data_type,
        data_len, data_uptr, fault_id, __reserved2,
    }
    iommu_hwpt_get_dirty_bitmap {
        size, hwpt_id, flags, __reserved, iova, length, page_size, data,
    }
    iommu_hwpt_invalidate {
        size, hwpt_id, data_uptr, data_type, entry_len, entry_num, __reserved,
    }
    iommu_hwpt_page_response { cookie, code }
    iommu_hwpt_pgfault {
        flags, dev_id, pasid, grpid, perm, __reserved, addr, length, cookie,
    }
    iommu_hwpt_set_dirty_tracking { size, flags, hwpt_id, __reserved }
    iommu_ioas_alloc { size, flags, out_ioas_id }
    iommu_ioas_allow_iovas { size, ioas_id, num_iovas, __reserved, allowed_iovas }
    iommu_ioas_change_process { size, __reserved }
    iommu_ioas_copy {
        size, flags, dst_ioas_id, src_ioas_id, length, dst_iova, src_iova,
    }
    iommu_ioas_iova_ranges {
        size, ioas_id, num_iovas, __reserved, allowed_iovas, out_iova_alignment,
    }
    iommu_ioas_map { size, flags, ioas_id, __reserved, user_va, length, iova }
    iommu_ioas_map_file { size, flags, ioas_id, fd, start, length, iova }
    iommu_ioas_noiommu_get_pa {
        size, flags, ioas_id, __reserved, iova, length, out_phys,
    }
    iommu_ioas_unmap { size, ioas_id, iova, length }
    iommu_iova_range { start, last }
    iommu_option { size, option_id, op, __reserved, object_id, val64 }
    iommu_vdevice_alloc { size, viommu_id, dev_id, out_vdevice_id, virt_id }
    iommu_veventq_alloc {
        size, flags, viommu_id, type_, veventq_depth, out_veventq_id,
        out_veventq_fd, __reserved,
    }
    iommu_vfio_ioas { size, ioas_id, op, __reserved }
    iommu_viommu_alloc {
        size, flags, type_, dev_id, hwpt_id, out_viommu_id, data_len,
        __reserved, data_uptr,
    }
    vfio_info_cap_header { id, version, next }
    vfio_iommu_type1_dma_map { argsz, flags, vaddr, iova, size }
    vfio_iommu_type1_dma_unmap { argsz, flags, iova, size, data }
    vfio_iommu_type1_info { argsz, flags, iova_pgsizes, cap_offset, pad }
    vfio_iommu_type1_info_cap_iova_range { header, nr_iovas, reserved, iova_ranges }
    vfio_iommu_type1_info_dma_avail { header, avail }
    vfio_iova_range { start, end }
}
