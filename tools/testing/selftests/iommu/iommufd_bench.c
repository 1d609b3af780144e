// SPDX-License-Identifier: GPL-2.0
/*
 * Micro-benchmarks of /dev/iommu, to compare implementations in one VM run:
 * each prints "bench <name> <ns per operation> <operations>".  Under TCG the
 * absolute numbers mean little; the ratio between modules in the same run is
 * what to look at.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <linux/iommufd.h>

#include "iommufd_test.h"

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static void check(int rc, const char *what)
{
	if (rc) {
		fprintf(stderr, "iommufd_bench: %s: %s\n", what, strerror(errno));
		exit(1);
	}
}

static __u32 ioas_alloc(int fd)
{
	struct iommu_ioas_alloc cmd = { .size = sizeof(cmd) };

	check(ioctl(fd, IOMMU_IOAS_ALLOC, &cmd), "IOMMU_IOAS_ALLOC");
	return cmd.out_ioas_id;
}

static void destroy(int fd, __u32 id)
{
	struct iommu_destroy cmd = { .size = sizeof(cmd), .id = id };

	check(ioctl(fd, IOMMU_DESTROY, &cmd), "IOMMU_DESTROY");
}

static __u32 hwpt_alloc(int fd, __u32 idev, __u32 pt_id, __u32 flags,
			__u32 fault_id, const void *data, __u32 len)
{
	struct iommu_hwpt_alloc cmd = {
		.size = sizeof(cmd),
		.flags = flags,
		.dev_id = idev,
		.pt_id = pt_id,
		.data_type = data ? IOMMU_HWPT_DATA_SELFTEST : IOMMU_HWPT_DATA_NONE,
		.data_len = data ? len : 0,
		.data_uptr = (uintptr_t)data,
		.fault_id = fault_id,
	};

	check(ioctl(fd, IOMMU_HWPT_ALLOC, &cmd), "IOMMU_HWPT_ALLOC");
	return cmd.out_hwpt_id;
}

#define BENCH(name, n, body)                                              \
	do {                                                              \
		uint64_t t0 = now_ns();                                   \
		for (unsigned long i = 0; i < (n); i++)                   \
			body;                                             \
		printf("bench %s %llu %lu\n", name,                       \
		       (unsigned long long)((now_ns() - t0) / (n)),       \
		       (unsigned long)(n));                               \
	} while (0)

/*
 * With 1 MiB mapped at MOCK_APERTURE_START in @ioas: reading the dirty
 * bitmap of a dirty-tracking HWPT (all dirty, not cleared), and a fault's
 * round trip (raised, read from the queue, answered).
 */
static void bench_dirty_and_faults(int fd, __u32 ioas)
{
	struct iommu_test_cmd md = {
		.size = sizeof(md),
		.op = IOMMU_TEST_OP_MOCK_DOMAIN,
		.id = ioas,
	};
	struct iommu_test_cmd rep = {
		.size = sizeof(rep),
		.op = IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE,
	};
	struct iommu_hwpt_set_dirty_tracking st = {
		.size = sizeof(st),
		.flags = IOMMU_HWPT_DIRTY_TRACKING_ENABLE,
	};
	struct iommu_test_cmd dirty = {
		.size = sizeof(dirty),
		.op = IOMMU_TEST_OP_DIRTY,
	};
	struct iommu_hwpt_get_dirty_bitmap get = {
		.size = sizeof(get),
		.flags = IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR,
		.iova = MOCK_APERTURE_START,
		.length = 1024 * 1024,
		.page_size = MOCK_PAGE_SIZE,
	};
	struct iommu_test_cmd trig = {
		.size = sizeof(trig),
		.op = IOMMU_TEST_OP_TRIGGER_IOPF,
		.trigger_iopf = { .pasid = 1, .grpid = 2, .addr = 0x1000 },
	};
	struct iommu_fault_alloc fa = { .size = sizeof(fa) };
	struct iommu_hwpt_selftest data = { .iotlb = IOMMU_TEST_IOTLB_DEFAULT };
	struct iommu_hwpt_pgfault rec;
	struct iommu_hwpt_page_response resp = {};
	__u64 bitmap[8];
	__u32 idev, stdev, hwpt, parent, iopf;

	check(ioctl(fd, IOMMU_TEST_CMD, &md), "MOCK_DOMAIN");
	stdev = md.mock_domain.out_stdev_id;
	idev = md.mock_domain.out_idev_id;

	hwpt = hwpt_alloc(fd, idev, ioas, IOMMU_HWPT_ALLOC_DIRTY_TRACKING, 0,
			  NULL, 0);
	st.hwpt_id = hwpt;
	check(ioctl(fd, IOMMU_HWPT_SET_DIRTY_TRACKING, &st), "SET_DIRTY");
	memset(bitmap, 0xff, sizeof(bitmap));
	dirty.id = hwpt;
	dirty.dirty.iova = MOCK_APERTURE_START;
	dirty.dirty.length = 1024 * 1024;
	dirty.dirty.page_size = MOCK_PAGE_SIZE;
	dirty.dirty.uptr = (uintptr_t)bitmap;
	check(ioctl(fd, IOMMU_TEST_CMD, &dirty), "TEST_OP_DIRTY");
	get.hwpt_id = hwpt;
	get.data = (uintptr_t)bitmap;
	BENCH("dirty_bitmap_1m", 2000,
	      check(ioctl(fd, IOMMU_HWPT_GET_DIRTY_BITMAP, &get),
		    "GET_DIRTY_BITMAP"));
	destroy(fd, hwpt);

	parent = hwpt_alloc(fd, idev, ioas, IOMMU_HWPT_ALLOC_NEST_PARENT, 0,
			    NULL, 0);
	check(ioctl(fd, IOMMU_FAULT_QUEUE_ALLOC, &fa), "FAULT_QUEUE_ALLOC");
	iopf = hwpt_alloc(fd, idev, parent, IOMMU_HWPT_FAULT_ID_VALID,
			  fa.out_fault_id, &data, sizeof(data));
	rep.id = stdev;
	rep.mock_domain_replace.pt_id = iopf;
	check(ioctl(fd, IOMMU_TEST_CMD, &rep), "MOCK_DOMAIN_REPLACE");
	trig.trigger_iopf.dev_id = idev;
	BENCH("fault_round_trip", 2000, ({
		check(ioctl(fd, IOMMU_TEST_CMD, &trig), "TRIGGER_IOPF");
		check(read(fa.out_fault_fd, &rec, sizeof(rec)) != sizeof(rec),
		      "read fault");
		resp.cookie = rec.cookie;
		check(write(fa.out_fault_fd, &resp, sizeof(resp)) !=
			      sizeof(resp),
		      "answer fault");
	}));
	destroy(fd, stdev);
	destroy(fd, iopf);
	destroy(fd, parent);
	close(fa.out_fault_fd);
	destroy(fd, fa.out_fault_id);
}

int main(void)
{
	const unsigned long n = 20000, nmaps = 2000;
	struct iommu_iova_range ranges[4];
	struct iommu_ioas_iova_ranges q = {
		.size = sizeof(q),
		.num_iovas = 4,
		.allowed_iovas = (uintptr_t)ranges,
	};
	struct iommu_destroy bad = { .size = sizeof(bad) };
	size_t len = nmaps * 4096;
	__u64 *iovas = calloc(nmaps, sizeof(*iovas));
	void *buf;
	int fd;
	__u32 id;

	fd = open("/dev/iommu", O_RDWR);
	check(fd < 0, "open /dev/iommu");
	buf = mmap(NULL, len, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	check(buf == MAP_FAILED || !iovas, "buffers");

	/* The cheapest command: dispatch, copy-in, lookup failure. */
	BENCH("destroy_enoent", n, ioctl(fd, IOMMU_DESTROY, &bad));
	BENCH("ioas_alloc_destroy", n, destroy(fd, ioas_alloc(fd)));

	id = ioas_alloc(fd);
	q.ioas_id = id;
	BENCH("iova_ranges", n, check(ioctl(fd, IOMMU_IOAS_IOVA_RANGES, &q),
				      "IOMMU_IOAS_IOVA_RANGES"));

	/* IOVA allocation with a growing number of areas, then unmap. */
	BENCH("map_auto_iova_4k", nmaps, ({
		struct iommu_ioas_map m = {
			.size = sizeof(m),
			.flags = IOMMU_IOAS_MAP_READABLE |
				 IOMMU_IOAS_MAP_WRITEABLE,
			.ioas_id = id,
			.user_va = (uintptr_t)buf + i * 4096,
			.length = 4096,
		};
		check(ioctl(fd, IOMMU_IOAS_MAP, &m), "IOMMU_IOAS_MAP");
		iovas[i] = m.iova;
	}));
	BENCH("unmap_4k", nmaps, ({
		struct iommu_ioas_unmap u = {
			.size = sizeof(u),
			.ioas_id = id,
			.iova = iovas[i],
			.length = 4096,
		};
		check(ioctl(fd, IOMMU_IOAS_UNMAP, &u), "IOMMU_IOAS_UNMAP");
	}));

	/*
	 * With a mock domain attached: pinning, mapping into the domain and
	 * back; filling and emptying a domain; copying through an access.
	 */
	{
		struct iommu_test_cmd md = {
			.size = sizeof(md),
			.op = IOMMU_TEST_OP_MOCK_DOMAIN,
		};
		struct iommu_test_cmd acc = {
			.size = sizeof(acc),
			.op = IOMMU_TEST_OP_CREATE_ACCESS,
		};
		struct iommu_test_cmd rw = {
			.size = sizeof(rw),
			.op = IOMMU_TEST_OP_ACCESS_RW,
		};
		struct iommu_ioas_map m = {
			.size = sizeof(m),
			.flags = IOMMU_IOAS_MAP_FIXED_IOVA |
				 IOMMU_IOAS_MAP_READABLE |
				 IOMMU_IOAS_MAP_WRITEABLE,
			.user_va = (uintptr_t)buf,
			.iova = MOCK_APERTURE_START,
		};
		struct iommu_ioas_unmap u = {
			.size = sizeof(u),
			.iova = MOCK_APERTURE_START,
		};
		char tmp[4096];
		__u32 dom_ioas = ioas_alloc(fd), stdev;

		md.id = dom_ioas;
		check(ioctl(fd, IOMMU_TEST_CMD, &md), "MOCK_DOMAIN");
		stdev = md.mock_domain.out_stdev_id;
		m.ioas_id = u.ioas_id = dom_ioas;
		m.length = u.length = 64 * 1024;
		BENCH("domain_map_unmap_64k", nmaps / 2, ({
			check(ioctl(fd, IOMMU_IOAS_MAP, &m), "IOMMU_IOAS_MAP");
			check(ioctl(fd, IOMMU_IOAS_UNMAP, &u),
			      "IOMMU_IOAS_UNMAP");
		}));
		destroy(fd, stdev);

		m.length = u.length = 1024 * 1024;
		check(ioctl(fd, IOMMU_IOAS_MAP, &m), "IOMMU_IOAS_MAP");
		BENCH("domain_fill_1m", 200, ({
			check(ioctl(fd, IOMMU_TEST_CMD, &md), "MOCK_DOMAIN");
			destroy(fd, md.mock_domain.out_stdev_id);
		}));

		bench_dirty_and_faults(fd, dom_ioas);

		acc.id = dom_ioas;
		check(ioctl(fd, IOMMU_TEST_CMD, &acc), "CREATE_ACCESS");
		rw.id = acc.create_access.out_access_fd;
		rw.access_rw.iova = MOCK_APERTURE_START;
		rw.access_rw.length = sizeof(tmp);
		rw.access_rw.uptr = (uintptr_t)tmp;
		BENCH("access_rw_4k", nmaps, check(ioctl(fd, IOMMU_TEST_CMD, &rw),
						   "ACCESS_RW"));
		close(rw.id);
		check(ioctl(fd, IOMMU_IOAS_UNMAP, &u), "IOMMU_IOAS_UNMAP");
		destroy(fd, dom_ioas);
	}

	/* Many objects alive: lookups and teardown at close. */
	for (unsigned long i = 0; i < n; i++)
		ioas_alloc(fd);
	BENCH("iova_ranges_20k_objects", n,
	      check(ioctl(fd, IOMMU_IOAS_IOVA_RANGES, &q),
		    "IOMMU_IOAS_IOVA_RANGES"));
	BENCH("close_20k_objects", 1, close(fd));
	return 0;
}
