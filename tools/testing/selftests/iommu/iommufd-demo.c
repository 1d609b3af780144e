// SPDX-License-Identifier: GPL-2.0
/*
 * A short tour of /dev/iommu: allocate an I/O address space, map memory in
 * it, attach a device of the selftest's mock IOMMU (which fills its IOMMU
 * domain from the address space, pinning the memory), check what the domain
 * translates, take an I/O page fault through a fault queue, unmap, and tear
 * everything down.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <linux/iommufd.h>

#include "iommufd_rs_utils.h"

static void show_ranges(int fd, __u32 ioas_id)
{
	struct iommu_iova_range ranges[8];
	struct iommu_ioas_iova_ranges query = {
		.size = sizeof(query),
		.ioas_id = ioas_id,
		.num_iovas = 8,
		.allowed_iovas = (uintptr_t)ranges,
	};
	unsigned int i;

	if (ioctl(fd, IOMMU_IOAS_IOVA_RANGES, &query)) {
		perror("IOMMU_IOAS_IOVA_RANGES");
		exit(1);
	}
	printf("IOMMU_IOAS_IOVA_RANGES: %u range(s), alignment %" PRIu64 "\n",
	       query.num_iovas, (uint64_t)query.out_iova_alignment);
	for (i = 0; i < query.num_iovas && i < 8; i++)
		printf("  [0x%016" PRIx64 " - 0x%016" PRIx64 "]\n",
		       (uint64_t)ranges[i].start, (uint64_t)ranges[i].last);
}

static void die(const char *what)
{
	fprintf(stderr, "iommufd-demo: %s: %s\n", what, strerror(errno));
	exit(1);
}

/*
 * The device moves to a nested HWPT that sends its I/O page faults to a
 * fault queue; the mock raises one, we read it and answer it, and the device
 * goes back to @ioas.
 */
static void demo_fault(int fd, __u32 ioas, __u32 stdev, __u32 idev)
{
	struct iommu_hwpt_selftest data = { .iotlb = IOMMU_TEST_IOTLB_DEFAULT };
	struct iommu_fault_alloc fa = { .size = sizeof(fa) };
	struct iommu_test_cmd rep = {
		.size = sizeof(rep),
		.op = IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE,
		.id = stdev,
	};
	struct iommu_test_cmd trig = {
		.size = sizeof(trig),
		.op = IOMMU_TEST_OP_TRIGGER_IOPF,
		.trigger_iopf = { .dev_id = idev, .grpid = 1,
				  .perm = IOMMU_PGFAULT_PERM_READ,
				  .addr = 0xdead000 },
	};
	struct iommu_hwpt_page_response resp = {
		.code = IOMMUFD_PAGE_RESP_SUCCESS,
	};
	struct iommu_hwpt_pgfault rec;
	__u32 parent, nested;

	if (hwpt_alloc(fd, idev, ioas, IOMMU_HWPT_ALLOC_NEST_PARENT, &parent))
		die("IOMMU_HWPT_ALLOC (nest parent)");
	if (ioctl(fd, IOMMU_FAULT_QUEUE_ALLOC, &fa))
		die("IOMMU_FAULT_QUEUE_ALLOC");
	if (hwpt_alloc_data(fd, idev, parent, IOMMU_HWPT_FAULT_ID_VALID,
			    fa.out_fault_id, &data, sizeof(data), &nested))
		die("IOMMU_HWPT_ALLOC (nested, with the fault queue)");
	rep.mock_domain_replace.pt_id = nested;
	if (ioctl(fd, IOMMU_TEST_CMD, &rep))
		die("IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE");
	printf("fault queue %u (fd %u); the device moved to nested HWPT %u\n",
	       fa.out_fault_id, fa.out_fault_fd, nested);
	if (ioctl(fd, IOMMU_TEST_CMD, &trig))
		die("IOMMU_TEST_OP_TRIGGER_IOPF");
	if (read(fa.out_fault_fd, &rec, sizeof(rec)) != sizeof(rec))
		die("read the fault queue");
	printf("read a fault: device %u, address 0x%" PRIx64 ", cookie %u\n",
	       rec.dev_id, (uint64_t)rec.addr, rec.cookie);
	resp.cookie = rec.cookie;
	if (write(fa.out_fault_fd, &resp, sizeof(resp)) != sizeof(resp))
		die("answer the fault");
	printf("answered it: success\n");

	rep.mock_domain_replace.pt_id = ioas;
	if (ioctl(fd, IOMMU_TEST_CMD, &rep))
		die("IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE (back)");
	if (destroy(fd, nested) || destroy(fd, parent))
		die("IOMMU_DESTROY (HWPTs)");
	close(fa.out_fault_fd);
	if (destroy(fd, fa.out_fault_id))
		die("IOMMU_DESTROY (fault queue)");
}

int main(void)
{
	const size_t len = 16 * 4096;
	struct iommu_ioas_alloc alloc = { .size = sizeof(alloc) };
	struct iommu_ioas_map map = {
		.size = sizeof(map),
		.flags = IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE,
		.length = len,
	};
	struct iommu_ioas_unmap unmap = { .size = sizeof(unmap) };
	struct iommu_test_cmd mock = {
		.size = sizeof(mock),
		.op = IOMMU_TEST_OP_MOCK_DOMAIN,
	};
	struct iommu_test_cmd check = {
		.size = sizeof(check),
		.op = IOMMU_TEST_OP_MD_CHECK_MAP,
	};
	struct iommu_destroy destroy = { .size = sizeof(destroy) };
	void *buf;
	int fd;

	fd = open("/dev/iommu", O_RDWR);
	if (fd < 0)
		die("open /dev/iommu");
	printf("opened /dev/iommu\n");

	if (ioctl(fd, IOMMU_IOAS_ALLOC, &alloc))
		die("IOMMU_IOAS_ALLOC");
	printf("IOMMU_IOAS_ALLOC: ioas id %u\n", alloc.out_ioas_id);
	show_ranges(fd, alloc.out_ioas_id);

	/* A mock device: its IOMMU domain's aperture and pages now apply. */
	mock.id = alloc.out_ioas_id;
	if (ioctl(fd, IOMMU_TEST_CMD, &mock))
		die("IOMMU_TEST_OP_MOCK_DOMAIN");
	printf("mock device attached: device object %u, HWPT %u\n",
	       mock.mock_domain.out_idev_id, mock.mock_domain.out_hwpt_id);
	show_ranges(fd, alloc.out_ioas_id);

	buf = mmap(NULL, len, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (buf == MAP_FAILED)
		die("mmap");
	map.ioas_id = alloc.out_ioas_id;
	map.user_va = (uintptr_t)buf;
	if (ioctl(fd, IOMMU_IOAS_MAP, &map))
		die("IOMMU_IOAS_MAP");
	printf("IOMMU_IOAS_MAP: %zu KiB at IOVA 0x%" PRIx64
	       ", pinned by this process: %ld KiB\n",
	       len / 1024, (uint64_t)map.iova, status_kb("VmPin"));

	check.id = mock.mock_domain.out_hwpt_id;
	check.check_map.iova = map.iova;
	check.check_map.length = len;
	check.check_map.uptr = (uintptr_t)buf;
	if (ioctl(fd, IOMMU_TEST_CMD, &check))
		die("IOMMU_TEST_OP_MD_CHECK_MAP");
	printf("the domain translates every IOVA to the buffer's pages\n");

	demo_fault(fd, alloc.out_ioas_id, mock.mock_domain.out_stdev_id,
		   mock.mock_domain.out_idev_id);

	unmap.ioas_id = alloc.out_ioas_id;
	unmap.iova = map.iova;
	unmap.length = len;
	if (ioctl(fd, IOMMU_IOAS_UNMAP, &unmap))
		die("IOMMU_IOAS_UNMAP");
	printf("IOMMU_IOAS_UNMAP: %" PRIu64 " KiB, pinned now: %ld KiB\n",
	       (uint64_t)unmap.length / 1024, status_kb("VmPin"));

	destroy.id = mock.mock_domain.out_stdev_id;
	if (ioctl(fd, IOMMU_DESTROY, &destroy))
		die("IOMMU_DESTROY (mock device)");
	destroy.id = alloc.out_ioas_id;
	if (ioctl(fd, IOMMU_DESTROY, &destroy))
		die("IOMMU_DESTROY");
	printf("IOMMU_DESTROY: mock device and ioas %u destroyed\n",
	       destroy.id);
	close(fd);
	return 0;
}
