// SPDX-License-Identifier: GPL-2.0
/*
 * The C layouts of iommufd's objects, as the C compiler lays them out from
 * the kernel's private iommufd header: the kernel's built-in iommufd code
 * (drivers/iommu/iommufd/driver.c) and the IOMMU drivers read and write
 * the Rust module's objects through them.  The Rust side lays the objects
 * out from bindgen's reading of the same header; a KUnit test
 * (iommufd_rs_layout) compares the two, size and field by field.
 */
#include <linux/stddef.h>

#include <iommufd_rs/shim.h>

#include "iommufd_private.h"

#define SZ(s) sizeof(struct s)
#define OFF(s, f) offsetof(struct s, f)

static const unsigned long iommufd_layout[] = {
	SZ(iommufd_object), OFF(iommufd_object, wait_cnt),
	OFF(iommufd_object, users), OFF(iommufd_object, type),
	OFF(iommufd_object, id),

	SZ(iommufd_ctx), OFF(iommufd_ctx, mt_mmap),
	OFF(iommufd_ctx, sw_msi_lock), OFF(iommufd_ctx, sw_msi_list),
	OFF(iommufd_ctx, sw_msi_id),

	SZ(iommufd_mmap), OFF(iommufd_mmap, owner), OFF(iommufd_mmap, vm_pgoff),
	OFF(iommufd_mmap, mmio_addr), OFF(iommufd_mmap, length),

	SZ(iommufd_device), OFF(iommufd_device, obj), OFF(iommufd_device, ictx),
	OFF(iommufd_device, igroup), OFF(iommufd_device, group_item),
	OFF(iommufd_device, dev), OFF(iommufd_device, vdev),

	SZ(iommufd_viommu), OFF(iommufd_viommu, obj), OFF(iommufd_viommu, ictx),
	OFF(iommufd_viommu, iommu_dev), OFF(iommufd_viommu, hwpt),
	OFF(iommufd_viommu, ops), OFF(iommufd_viommu, vdevs),
	OFF(iommufd_viommu, veventqs), OFF(iommufd_viommu, veventqs_rwsem),
	OFF(iommufd_viommu, type),

	SZ(iommufd_viommu_ops), OFF(iommufd_viommu_ops, destroy),
	OFF(iommufd_viommu_ops, alloc_domain_nested),
	OFF(iommufd_viommu_ops, cache_invalidate),
	OFF(iommufd_viommu_ops, vdevice_size),
	OFF(iommufd_viommu_ops, vdevice_init),
	OFF(iommufd_viommu_ops, get_hw_queue_size),
	OFF(iommufd_viommu_ops, hw_queue_init_phys),

	SZ(iommufd_vdevice), OFF(iommufd_vdevice, obj),
	OFF(iommufd_vdevice, viommu), OFF(iommufd_vdevice, idev),
	OFF(iommufd_vdevice, virt_id), OFF(iommufd_vdevice, destroy),

	SZ(iommufd_hw_queue), OFF(iommufd_hw_queue, obj),
	OFF(iommufd_hw_queue, viommu), OFF(iommufd_hw_queue, access),
	OFF(iommufd_hw_queue, base_addr), OFF(iommufd_hw_queue, length),
	OFF(iommufd_hw_queue, type), OFF(iommufd_hw_queue, destroy),

	SZ(iommufd_eventq), OFF(iommufd_eventq, obj), OFF(iommufd_eventq, ictx),
	OFF(iommufd_eventq, filep), OFF(iommufd_eventq, lock),
	OFF(iommufd_eventq, deliver), OFF(iommufd_eventq, wait_queue),

	SZ(iommufd_vevent), OFF(iommufd_vevent, header),
	OFF(iommufd_vevent, node), OFF(iommufd_vevent, data_len),
	OFF(iommufd_vevent, event_data),

	SZ(iommufd_veventq), OFF(iommufd_veventq, common),
	OFF(iommufd_veventq, viommu), OFF(iommufd_veventq, node),
	OFF(iommufd_veventq, type), OFF(iommufd_veventq, depth),
	OFF(iommufd_veventq, num_events), OFF(iommufd_veventq, sequence),
	OFF(iommufd_veventq, lost_events_header),
};

/* Entry @i of the table above, ~0 past its end. */
unsigned long iommufd_shim_layout(unsigned int i)
{
	if (i >= ARRAY_SIZE(iommufd_layout))
		return ~0UL;
	return iommufd_layout[i];
}
