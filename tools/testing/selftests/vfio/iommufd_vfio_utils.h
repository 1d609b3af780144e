/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The VFIO cdev and /dev/iommu calls our VFIO programs share, each
 * returning the ioctl's result (-1 and errno on failure).
 */
#ifndef IOMMUFD_VFIO_UTILS_H
#define IOMMUFD_VFIO_UTILS_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include <linux/iommufd.h>
#include <linux/vfio.h>

/* Binds the device @cdev to @iommufd; its ID in *dev_id if not NULL. */
static inline int cdev_bind(int cdev, int iommufd, uint32_t *dev_id)
{
	struct vfio_device_bind_iommufd b = {
		.argsz = sizeof(b),
		.iommufd = iommufd,
	};
	int rc = ioctl(cdev, VFIO_DEVICE_BIND_IOMMUFD, &b);

	if (!rc && dev_id)
		*dev_id = b.out_devid;
	return rc;
}

/* Attaches @cdev to @pt_id; the HWPT used in *hwpt if not NULL. */
static inline int cdev_attach(int cdev, uint32_t pt_id, uint32_t *hwpt)
{
	struct vfio_device_attach_iommufd_pt a = {
		.argsz = sizeof(a),
		.pt_id = pt_id,
	};
	int rc = ioctl(cdev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &a);

	if (!rc && hwpt)
		*hwpt = a.pt_id;
	return rc;
}

static inline int cdev_detach(int cdev)
{
	struct vfio_device_detach_iommufd_pt d = { .argsz = sizeof(d) };

	return ioctl(cdev, VFIO_DEVICE_DETACH_IOMMUFD_PT, &d);
}

static inline int iommufd_destroy(int iommufd, uint32_t id)
{
	struct iommu_destroy d = { .size = sizeof(d), .id = id };

	return ioctl(iommufd, IOMMU_DESTROY, &d);
}

/* A new IOAS; 0 on failure. */
static inline uint32_t ioas_alloc(int iommufd)
{
	struct iommu_ioas_alloc a = { .size = sizeof(a) };

	if (ioctl(iommufd, IOMMU_IOAS_ALLOC, &a))
		return 0;
	return a.out_ioas_id;
}

static inline int ioas_map_fixed(int iommufd, uint32_t ioas, void *buf,
				 uint64_t iova, uint64_t len)
{
	struct iommu_ioas_map m = {
		.size = sizeof(m),
		.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE |
			 IOMMU_IOAS_MAP_WRITEABLE,
		.ioas_id = ioas,
		.user_va = (uintptr_t)buf,
		.length = len,
		.iova = iova,
	};

	return ioctl(iommufd, IOMMU_IOAS_MAP, &m);
}

static inline int ioas_unmap(int iommufd, uint32_t ioas, uint64_t iova,
			     uint64_t len)
{
	struct iommu_ioas_unmap u = {
		.size = sizeof(u),
		.ioas_id = ioas,
		.iova = iova,
		.length = len,
	};

	return ioctl(iommufd, IOMMU_IOAS_UNMAP, &u);
}

/*
 * Whether a usable IOVA range of @ioas intersects [start, last]; -1 if
 * the ranges cannot be read.
 */
static inline int ioas_usable(int iommufd, uint32_t ioas, uint64_t start,
			      uint64_t last)
{
	struct iommu_iova_range r[64];
	struct iommu_ioas_iova_ranges q = {
		.size = sizeof(q),
		.ioas_id = ioas,
		.num_iovas = 64,
		.allowed_iovas = (uintptr_t)r,
	};
	unsigned int i;

	if (ioctl(iommufd, IOMMU_IOAS_IOVA_RANGES, &q))
		return -1;
	for (i = 0; i < q.num_iovas; i++)
		if (r[i].start <= last && r[i].last >= start)
			return 1;
	return 0;
}

/* A field of /proc/self/status, in kB; -1 if missing. */
static inline long status_kb(const char *field)
{
	char line[256];
	size_t n = strlen(field);
	long v = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, field, n) && line[n] == ':')
			v = strtol(line + n + 1, NULL, 10);
	fclose(f);
	return v;
}

#endif
