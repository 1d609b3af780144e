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
