// SPDX-License-Identifier: GPL-2.0-only
/*
 * The cost of each step of the upstream vfio_pci_driver_test, measured: its
 * fixture (map 1 GiB and 2 MiB, bring the device's selftest driver up), its
 * tests (memcpy by DMA, from an unmapped IOVA, ten remove/init rounds, a
 * full descriptor ring) and its teardown, through the same library calls
 * and with the same sizes, in each IOMMU mode asked for.  The harness gives
 * each of those tests 30 s, setup and teardown included.
 *
 *   vfio_timing BDF [MODE...]   (default: iommufd vfio_type1_iommu)
 *
 * Prints "timing MODE STEP SECONDS" lines; exits non-zero if a DMA copy
 * that should work does not (a device whose DMA bypasses the IOMMU).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>

#include <linux/sizes.h>

#include <libvfio.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static const char *mode;
static double t_step;

static void step(const char *what)
{
	double t = now();

	printf("timing %s %s %.3f\n", mode, what, t - t_step);
	fflush(stdout);
	t_step = now();
}

static void region_map(struct iommu *iommu, struct iova_allocator *alloc,
		       struct dma_region *region, u64 size)
{
	region->vaddr = mmap(NULL, size, PROT_READ | PROT_WRITE,
			     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	VFIO_ASSERT_NE(region->vaddr, MAP_FAILED);
	region->iova = iova_allocator_alloc(alloc, size);
	region->size = size;
	iommu_map(iommu, region);
}

static int run(const char *bdf)
{
	struct vfio_pci_device *device;
	struct iova_allocator *alloc;
	struct dma_region big, *drv;
	struct iommu *iommu;
	iova_t unmapped;
	int i, bad = 0;
	double t0;
	u64 size;

	t0 = now();
	t_step = t0;
	iommu = iommu_init(mode);
	device = vfio_pci_device_init(bdf, iommu);
	alloc = iova_allocator_init(iommu);
	step("device_init");
	region_map(iommu, alloc, &big, SZ_1G);
	step("map_1G");
	drv = &device->driver.region;
	region_map(iommu, alloc, drv, SZ_2M);
	step("map_2M");
	unmapped = iova_allocator_alloc(alloc, SZ_1G);
	vfio_pci_driver_init(device);
	step("driver_init");
	printf("timing %s fixture_setup %.3f\n", mode, now() - t0);

	size = device->driver.max_memcpy_size * 4;
	for (i = 0; i < 20; i++) {
		memset(big.vaddr, 'x', size);
		memset(big.vaddr + size, 'y', size);
		if (vfio_pci_driver_memcpy(device, big.iova, big.iova + size, size) ||
		    memcmp(big.vaddr, big.vaddr + size, size))
			bad++;
	}
	step("20_memcpy");
	if (bad)
		printf("timing %s memcpy_failed %d of 20\n", mode, bad);
	vfio_pci_driver_memcpy(device, unmapped, big.iova + size, size);
	step("memcpy_from_unmapped");
	for (i = 0; i < 10; i++) {
		vfio_pci_driver_remove(device);
		vfio_pci_driver_init(device);
	}
	step("init_remove_x10");
	vfio_pci_driver_memcpy_start(device, big.iova, big.iova + SZ_512M,
				     device->driver.max_memcpy_size,
				     device->driver.max_memcpy_count);
	if (vfio_pci_driver_memcpy_wait(device))
		bad++;
	step("memcpy_storm");

	t0 = now();
	vfio_pci_driver_remove(device);
	iommu_unmap(iommu, &big);
	step("unmap_1G");
	VFIO_ASSERT_EQ(munmap(big.vaddr, SZ_1G), 0);
	step("munmap_1G");
	iommu_unmap(iommu, drv);
	VFIO_ASSERT_EQ(munmap(drv->vaddr, SZ_2M), 0);
	iova_allocator_cleanup(alloc);
	vfio_pci_device_cleanup(device);
	iommu_cleanup(iommu);
	step("cleanup");
	printf("timing %s fixture_teardown %.3f\n", mode, now() - t0);
	return bad;
}

int main(int argc, char *argv[])
{
	static const char * const modes[] = { "iommufd", "vfio_type1_iommu" };
	int i, bad = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: %s BDF [MODE...]\n", argv[0]);
		return 2;
	}
	if (argc == 2) {
		for (i = 0; i < 2; i++) {
			mode = modes[i];
			bad += run(argv[1]);
		}
	} else {
		for (i = 2; i < argc; i++) {
			mode = argv[i];
			bad += run(argv[1]);
		}
	}
	return bad ? 1 : 0;
}
