// SPDX-License-Identifier: GPL-2.0
/*
 * The smallest complete use of /dev/iommu: allocate an I/O address space,
 * print the IOVA ranges it can map, destroy it.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <linux/iommufd.h>

static void die(const char *what)
{
	fprintf(stderr, "iommufd-demo: %s: %s\n", what, strerror(errno));
	exit(1);
}

int main(void)
{
	struct iommu_ioas_alloc alloc = { .size = sizeof(alloc) };
	struct iommu_iova_range ranges[8];
	struct iommu_ioas_iova_ranges query = {
		.size = sizeof(query),
		.num_iovas = 8,
		.allowed_iovas = (uintptr_t)ranges,
	};
	struct iommu_destroy destroy = { .size = sizeof(destroy) };
	unsigned int i;
	int fd;

	fd = open("/dev/iommu", O_RDWR);
	if (fd < 0)
		die("open /dev/iommu");
	printf("opened /dev/iommu\n");

	if (ioctl(fd, IOMMU_IOAS_ALLOC, &alloc))
		die("IOMMU_IOAS_ALLOC");
	printf("IOMMU_IOAS_ALLOC: ioas id %u\n", alloc.out_ioas_id);

	query.ioas_id = alloc.out_ioas_id;
	if (ioctl(fd, IOMMU_IOAS_IOVA_RANGES, &query))
		die("IOMMU_IOAS_IOVA_RANGES");
	printf("IOMMU_IOAS_IOVA_RANGES: %u range(s), alignment %" PRIu64 "\n",
	       query.num_iovas, (uint64_t)query.out_iova_alignment);
	for (i = 0; i < query.num_iovas && i < 8; i++)
		printf("  [0x%016" PRIx64 " - 0x%016" PRIx64 "]\n",
		       (uint64_t)ranges[i].start, (uint64_t)ranges[i].last);

	destroy.id = alloc.out_ioas_id;
	if (ioctl(fd, IOMMU_DESTROY, &destroy))
		die("IOMMU_DESTROY");
	printf("IOMMU_DESTROY: ioas %u destroyed\n", destroy.id);
	close(fd);
	return 0;
}
