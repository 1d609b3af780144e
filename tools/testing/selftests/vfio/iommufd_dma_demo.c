// SPDX-License-Identifier: GPL-2.0-only
/*
 * make run's demo on a real device: QEMU's igb, bound to vfio-pci, opened
 * through its VFIO cdev and bound to /dev/iommu; an IOAS mapped; the device
 * itself copying memory by DMA through the IOMMU (the upstream VFIO
 * selftests' igb driver drives it); a DMA to an unmapped IOVA, which the
 * IOMMU blocks; then unmap and teardown, every pin given back.
 *
 *   iommufd_dma_demo BDF
 *
 * Exits non-zero if a step does not do what it says.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <linux/iommufd.h>
#include <linux/sizes.h>

#include <libvfio.h>

static long vm_pin_kb(void)
{
	char line[256];
	long v = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "VmPin:", 6))
			v = strtol(line + 6, NULL, 10);
	fclose(f);
	return v;
}

static void *map_region(struct iommu *iommu, struct iova_allocator *alloc,
			struct dma_region *r, u64 size)
{
	r->vaddr = mmap(NULL, size, PROT_READ | PROT_WRITE,
			MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	VFIO_ASSERT_NE(r->vaddr, MAP_FAILED);
	r->iova = iova_allocator_alloc(alloc, size);
	r->size = size;
	iommu_map(iommu, r);
	return r->vaddr;
}

int main(int argc, char *argv[])
{
	const char *bdf = vfio_selftests_get_bdf(&argc, argv);
	struct vfio_pci_device *device;
	struct iova_allocator *alloc;
	struct iommu_iova_range *ranges;
	struct dma_region buf, *drv;
	u64 size = SZ_4K, unmapped;
	struct iommu *iommu;
	u8 *src, *dst;
	u32 i, n;
	int rc, bad = 0;

	iommu = iommu_init("iommufd");
	printf("opened /dev/iommu, IOMMU_IOAS_ALLOC: IOAS %u\n",
	       iommu->ioas_id);
	device = vfio_pci_device_init(bdf, iommu);
	printf("opened %s (igb %s), VFIO_DEVICE_BIND_IOMMUFD, VFIO_DEVICE_ATTACH_IOMMUFD_PT to IOAS %u\n",
	       vfio_pci_get_cdev_path(bdf), bdf, iommu->ioas_id);
	ranges = iommu_iova_ranges(iommu, &n);
	printf("usable IOVA now (the IOMMU's aperture less the device's reserved regions):\n");
	for (i = 0; i < n; i++)
		printf("  [0x%llx, 0x%llx]\n", (unsigned long long)ranges[i].start,
		       (unsigned long long)ranges[i].last);
	free(ranges);

	alloc = iova_allocator_init(iommu);
	map_region(iommu, alloc, &buf, SZ_2M);
	drv = &device->driver.region;
	map_region(iommu, alloc, drv, SZ_2M);
	printf("IOMMU_IOAS_MAP: 2 MiB buffer at IOVA 0x%llx, 2 MiB for the driver's descriptors at 0x%llx (VmPin %ld kB)\n",
	       (unsigned long long)buf.iova, (unsigned long long)drv->iova,
	       vm_pin_kb());
	unmapped = iova_allocator_alloc(alloc, SZ_2M);

	vfio_pci_driver_init(device);
	printf("the igb's selftest driver is up (%s)\n",
	       device->driver.ops->name);

	src = buf.vaddr;
	dst = src + SZ_1M;
	for (i = 0; i < size; i++)
		src[i] = (u8)(i * 7 + 3);
	memset(dst, 0, size);
	rc = vfio_pci_driver_memcpy(device, buf.iova, buf.iova + SZ_1M, size);
	if (!rc && !memcmp(src, dst, size)) {
		printf("the igb copied %llu bytes by DMA from IOVA 0x%llx to 0x%llx, through the IOMMU: the buffer holds them\n",
		       (unsigned long long)size, (unsigned long long)buf.iova,
		       (unsigned long long)(buf.iova + SZ_1M));
	} else {
		printf("FAIL: the DMA copy did not land (rc %d)\n", rc);
		bad = 1;
	}

	memset(dst, 0, size);
	rc = vfio_pci_driver_memcpy(device, buf.iova, unmapped, size);
	printf("a DMA to the unmapped IOVA 0x%llx: the IOMMU blocks it (the device reports %s; the kernel logs the fault)\n",
	       (unsigned long long)unmapped, rc ? "an error" : "no error");
	for (i = 0; i < size && !dst[i]; i++)
		;
	if (i != size) {
		printf("FAIL: the blocked DMA changed the buffer\n");
		bad = 1;
	}

	vfio_pci_driver_remove(device);
	iommu_unmap(iommu, drv);
	iommu_unmap(iommu, &buf);
	printf("IOMMU_IOAS_UNMAP of both: VmPin %ld kB\n", vm_pin_kb());
	if (vm_pin_kb() != 0)
		bad = 1;
	iova_allocator_cleanup(alloc);
	vfio_pci_device_cleanup(device);
	iommu_cleanup(iommu);
	printf("closed the device and /dev/iommu\n");
	return bad;
}
