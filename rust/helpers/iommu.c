// SPDX-License-Identifier: GPL-2.0

#include <linux/device.h>
#include <linux/generic_pt/iommu.h>
#include <linux/iommu.h>
#include "../../drivers/iommu/iommu-priv.h"

__rust_helper bool rust_helper_device_iommu_mapped(struct device *dev)
{
	return device_iommu_mapped(dev);
}

__rust_helper const struct iommu_ops *rust_helper_dev_iommu_ops(struct device *dev)
{
	return dev_iommu_ops(dev);
}

#if IS_ENABLED(CONFIG_IOMMU_PT)
__rust_helper void rust_helper_pt_iommu_deinit(struct pt_iommu *iommu_table)
{
	pt_iommu_deinit(iommu_table);
}
#endif

#if IS_ENABLED(CONFIG_IOMMUFD_TEST)
/*
 * What the generic page table's AMDv1 selftest format provides for the
 * domains that are its tables; the Rust driver adds its own ops.
 */
__rust_helper void
rust_helper_pt_iommu_amdv1_mock_domain_ops(struct iommu_domain_ops *ops,
					   struct iommu_dirty_ops *dirty_ops)
{
	*ops = (struct iommu_domain_ops){ IOMMU_PT_DOMAIN_OPS(amdv1_mock) };
	*dirty_ops = (struct iommu_dirty_ops){ IOMMU_PT_DIRTY_OPS(amdv1_mock) };
}
#endif

#if IS_BUILTIN(CONFIG_IOMMU_PT_AMDV1)
/*
 * What the generic page table's AMDv1 format provides for the domains
 * that are its tables: the software-only domains of no-IOMMU devices.
 */
__rust_helper void
rust_helper_pt_iommu_amdv1_domain_ops(struct iommu_domain_ops *ops)
{
	*ops = (struct iommu_domain_ops){ IOMMU_PT_DOMAIN_OPS(amdv1) };
}
#endif

#if IS_ENABLED(CONFIG_IOMMUFD_DRIVER_CORE)
/*
 * `kernel::iommu::iommufd`: the inline parts of refcount, xarray, list and
 * mm that iommufd's C-layout objects need.
 */
#include <linux/list.h>
#include <linux/mm.h>
#include <linux/refcount.h>
#include <linux/xarray.h>

__rust_helper unsigned int rust_helper_refcount_read(const refcount_t *r)
{
	return refcount_read(r);
}

__rust_helper bool rust_helper_refcount_inc_not_zero(refcount_t *r)
{
	return refcount_inc_not_zero(r);
}

__rust_helper int rust_helper_xa_insert(struct xarray *xa, unsigned long index,
					void *entry, gfp_t gfp)
{
	return xa_insert(xa, index, entry, gfp);
}

__rust_helper void *rust_helper_xa_cmpxchg(struct xarray *xa, unsigned long index,
					   void *old, void *entry, gfp_t gfp)
{
	return xa_cmpxchg(xa, index, old, entry, gfp);
}

__rust_helper void rust_helper_xa_release(struct xarray *xa, unsigned long index)
{
	xa_release(xa, index);
}

__rust_helper void rust_helper_list_add(struct list_head *new, struct list_head *head)
{
	list_add(new, head);
}

__rust_helper void rust_helper_list_del_init(struct list_head *entry)
{
	list_del_init(entry);
}

__rust_helper int rust_helper_list_empty(const struct list_head *head)
{
	return list_empty(head);
}

__rust_helper pgprot_t rust_helper_pgprot_noncached(pgprot_t prot)
{
	return pgprot_noncached(prot);
}

__rust_helper int rust_helper_io_remap_pfn_range(struct vm_area_struct *vma,
						 unsigned long addr, unsigned long pfn,
						 unsigned long size, pgprot_t prot)
{
	return io_remap_pfn_range(vma, addr, pfn, size, prot);
}
#endif
