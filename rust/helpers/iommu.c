// SPDX-License-Identifier: GPL-2.0

#include <linux/device.h>
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
