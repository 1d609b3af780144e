// SPDX-License-Identifier: GPL-2.0-only
/*
 * iommufd's no-IOMMU mode (CONFIG_IOMMUFD_NOIOMMU) through VFIO's device
 * cdev, on a device no IOMMU is in front of, with vfio's
 * enable_unsafe_noiommu_mode set:
 *  - the device's cdev is noiommu-vfioN; it binds to /dev/iommu without
 *    DMA ownership or an IOMMU group, and attaches to an IOAS through a
 *    software HWPT that translates nothing and reserves nothing;
 *  - IOMMU_IOAS_NOIOMMU_GET_PA tells where in physical memory an IOVA's
 *    memory is (what user space programs the device's DMA with), and how
 *    far it is contiguous: checked against /proc/self/pagemap, page by
 *    page; with its errnos (no domain, a real one, nothing mapped, bad
 *    arguments, no CAP_SYS_RAWIO);
 *  - what needs an IOMMU is refused: hardware info, HWPT flags, nesting;
 *  - the VFIO group (noiommu-N) with /dev/iommu as its container takes
 *    VFIO_NOIOMMU_IOMMU only;
 *  - pins come and go with the maps, as with an IOMMU.
 *
 *   iommufd_noiommu BDF
 *
 * Run as root.  Passes on the C iommufd and on ours alike.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/capability.h>
#include <linux/iommufd.h>
#include <linux/vfio.h>

#include "kselftest_harness.h"
#include "iommufd_vfio_utils.h"

#define PAGE 4096UL
#define NPAGES 64UL
#define IOVA 0x40000000UL

static char bdf[64];
static char cdev_path[PATH_MAX];
static char group_path[PATH_MAX];

/* This page's physical address from /proc/self/pagemap; 0 if unknown. */
static uint64_t pagemap_pa(const void *va)
{
	uint64_t e = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY);
	off_t off = (uintptr_t)va / PAGE * sizeof(e);

	if (fd < 0)
		return 0;
	if (pread(fd, &e, sizeof(e), off) != sizeof(e))
		e = 0;
	close(fd);
	if (!(e & (1ULL << 63)))
		return 0;
	return (e & ((1ULL << 55) - 1)) * PAGE;
}

static int get_pa(int iommufd, uint32_t ioas, uint64_t iova, uint64_t *len,
		  uint64_t *pa)
{
	struct iommu_ioas_noiommu_get_pa g = {
		.size = sizeof(g),
		.ioas_id = ioas,
		.iova = iova,
		.length = *len,
	};
	int rc = ioctl(iommufd, IOMMU_IOAS_NOIOMMU_GET_PA, &g);

	if (!rc) {
		*len = g.length;
		*pa = g.out_phys;
	}
	return rc;
}

FIXTURE(noiommu) {
	int iommufd;
	int cdev;
	uint32_t dev_id;
	uint32_t ioas;
	uint8_t *buf;
};

FIXTURE_SETUP(noiommu)
{
	self->iommufd = open("/dev/iommu", O_RDWR);
	ASSERT_LE(0, self->iommufd);
	self->cdev = open(cdev_path, O_RDWR);
	ASSERT_LE(0, self->cdev);
	ASSERT_EQ(0, cdev_bind(self->cdev, self->iommufd, &self->dev_id));
	self->ioas = ioas_alloc(self->iommufd);
	ASSERT_NE(0, self->ioas);
	self->buf = mmap(NULL, NPAGES * PAGE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	ASSERT_NE(MAP_FAILED, self->buf);
}

FIXTURE_TEARDOWN(noiommu)
{
	close(self->cdev);
	close(self->iommufd);
	munmap(self->buf, NPAGES * PAGE);
}

/*
 * The attach goes through a HWPT of its own, which reserves nothing: the
 * whole 64-bit IOVA space stays usable.
 */
TEST_F(noiommu, attach_reserves_nothing)
{
	struct iommu_iova_range r[4];
	struct iommu_ioas_iova_ranges q = {
		.size = sizeof(q),
		.ioas_id = self->ioas,
		.num_iovas = 4,
		.allowed_iovas = (uintptr_t)r,
	};
	uint32_t hwpt = 0;

	ASSERT_EQ(0, cdev_attach(self->cdev, self->ioas, &hwpt));
	EXPECT_NE(self->ioas, hwpt);
	ASSERT_EQ(0, ioctl(self->iommufd, IOMMU_IOAS_IOVA_RANGES, &q));
	ASSERT_EQ(1, q.num_iovas);
	EXPECT_EQ(0, r[0].start);
	EXPECT_EQ(UINT64_MAX, r[0].last);
	/* 4 KiB pages in the software table. */
	EXPECT_EQ(PAGE, q.out_iova_alignment);
	/* The MSI window is no different from any other IOVA. */
	ASSERT_EQ(0, ioas_map_fixed(self->iommufd, self->ioas, self->buf,
				    0xfee00000UL, PAGE));
	/* The automatic HWPT is in use while the device is attached. */
	EXPECT_EQ(-1, iommufd_destroy(self->iommufd, hwpt));
	EXPECT_EQ(EBUSY, errno);
	ASSERT_EQ(0, cdev_detach(self->cdev));
	/* And gone with the device. */
	EXPECT_EQ(-1, iommufd_destroy(self->iommufd, hwpt));
	EXPECT_EQ(ENOENT, errno);
}

/* Every page's physical address, as the CPU's page tables have it. */
TEST_F(noiommu, get_pa_matches_pagemap)
{
	unsigned long i;

	ASSERT_EQ(0, cdev_attach(self->cdev, self->ioas, NULL));
	ASSERT_EQ(0, ioas_map_fixed(self->iommufd, self->ioas, self->buf, IOVA,
				    NPAGES * PAGE));
	for (i = 0; i < NPAGES; i++) {
		uint64_t want = pagemap_pa(self->buf + i * PAGE);
		uint64_t len = PAGE, pa = 0;

		ASSERT_NE(0, want);
		ASSERT_EQ(0, get_pa(self->iommufd, self->ioas, IOVA + i * PAGE,
				    &len, &pa));
		EXPECT_EQ(want, pa);
		EXPECT_EQ(PAGE, len);
		/*
		 * Within the page the offset carries; the length goes on into
		 * the next page if that follows in physical memory.
		 */
		len = PAGE;
		ASSERT_EQ(0, get_pa(self->iommufd, self->ioas,
				    IOVA + i * PAGE + 0x123, &len, &pa));
		EXPECT_EQ(want + 0x123, pa);
		if (i + 1 < NPAGES &&
		    pagemap_pa(self->buf + (i + 1) * PAGE) == want + PAGE) {
			EXPECT_EQ(PAGE, len);
		} else {
			EXPECT_EQ(PAGE - 0x123, len);
		}
	}
}

/*
 * The length returned is how far the memory is physically contiguous from
 * the IOVA, at most what was asked and at most to the end of the mapping.
 */
TEST_F(noiommu, get_pa_contiguous_length)
{
	unsigned long i, run;

	ASSERT_EQ(0, cdev_attach(self->cdev, self->ioas, NULL));
	ASSERT_EQ(0, ioas_map_fixed(self->iommufd, self->ioas, self->buf, IOVA,
				    NPAGES * PAGE));
	for (i = 0; i < NPAGES; i++) {
		uint64_t len = UINT64_MAX, pa = 0, first;

		first = pagemap_pa(self->buf + i * PAGE);
		for (run = 1; i + run < NPAGES; run++)
			if (pagemap_pa(self->buf + (i + run) * PAGE) !=
			    first + run * PAGE)
				break;
		ASSERT_EQ(0, get_pa(self->iommufd, self->ioas, IOVA + i * PAGE,
				    &len, &pa));
		EXPECT_EQ(first, pa);
		EXPECT_EQ(run * PAGE, len);
		/* Capped by the length asked. */
		len = 100;
		ASSERT_EQ(0, get_pa(self->iommufd, self->ioas, IOVA + i * PAGE,
				    &len, &pa));
		EXPECT_EQ(100, len);
	}
}

TEST_F(noiommu, get_pa_errors)
{
	struct iommu_ioas_noiommu_get_pa g = {
		.size = sizeof(g),
		.ioas_id = self->ioas,
		.iova = IOVA,
		.length = PAGE,
	};
	uint32_t other = ioas_alloc(self->iommufd);
	uint64_t len = PAGE, pa;

	ASSERT_NE(0, other);
	/* An IOAS without a domain has no physical addresses to tell. */
	ASSERT_EQ(0, ioas_map_fixed(self->iommufd, other, self->buf, IOVA, PAGE));
	EXPECT_EQ(-1, get_pa(self->iommufd, other, IOVA, &len, &pa));
	EXPECT_EQ(EOPNOTSUPP, errno);

	ASSERT_EQ(0, cdev_attach(self->cdev, self->ioas, NULL));
	ASSERT_EQ(0, ioas_map_fixed(self->iommufd, self->ioas, self->buf, IOVA,
				    PAGE));
	/* Nothing mapped there. */
	EXPECT_EQ(-1, get_pa(self->iommufd, self->ioas, IOVA + PAGE, &len, &pa));
	EXPECT_EQ(ENOENT, errno);
	EXPECT_EQ(-1, get_pa(self->iommufd, self->ioas, UINT64_MAX - PAGE + 1,
			     &len, &pa));
	EXPECT_EQ(ENOENT, errno);
	/* The last IOVA of all cannot be asked for. */
	EXPECT_EQ(-1, get_pa(self->iommufd, self->ioas, UINT64_MAX, &len, &pa));
	EXPECT_EQ(EOVERFLOW, errno);
	/* A zero length. */
	len = 0;
	EXPECT_EQ(-1, get_pa(self->iommufd, self->ioas, IOVA, &len, &pa));
	EXPECT_EQ(EINVAL, errno);
	/* Flags and the reserved field must be 0. */
	g.flags = 1;
	EXPECT_EQ(-1, ioctl(self->iommufd, IOMMU_IOAS_NOIOMMU_GET_PA, &g));
	EXPECT_EQ(EOPNOTSUPP, errno);
	g.flags = 0;
	g.__reserved = 1;
	EXPECT_EQ(-1, ioctl(self->iommufd, IOMMU_IOAS_NOIOMMU_GET_PA, &g));
	EXPECT_EQ(EOPNOTSUPP, errno);
	g.__reserved = 0;
	/* Not an IOAS, or none. */
	g.ioas_id = self->dev_id;
	EXPECT_EQ(-1, ioctl(self->iommufd, IOMMU_IOAS_NOIOMMU_GET_PA, &g));
	EXPECT_EQ(ENOENT, errno);
	g.ioas_id = 9999;
	EXPECT_EQ(-1, ioctl(self->iommufd, IOMMU_IOAS_NOIOMMU_GET_PA, &g));
	EXPECT_EQ(ENOENT, errno);
	/* Unmapped, it is gone. */
	ASSERT_EQ(0, ioas_unmap(self->iommufd, self->ioas, IOVA, PAGE));
	len = PAGE;
	EXPECT_EQ(-1, get_pa(self->iommufd, self->ioas, IOVA, &len, &pa));
	EXPECT_EQ(ENOENT, errno);
}

/* In a child without CAP_SYS_RAWIO: EPERM, as physical addresses need it. */
TEST_F(noiommu, get_pa_needs_rawio)
{
	int status;
	pid_t child;

	ASSERT_EQ(0, cdev_attach(self->cdev, self->ioas, NULL));
	ASSERT_EQ(0, ioas_map_fixed(self->iommufd, self->ioas, self->buf, IOVA,
				    PAGE));
	child = fork();
	ASSERT_NE(-1, child);
	if (!child) {
		struct __user_cap_header_struct hdr = {
			.version = _LINUX_CAPABILITY_VERSION_3,
		};
		struct __user_cap_data_struct data[2] = {};
		uint64_t len = PAGE, pa;

		if (syscall(SYS_capget, &hdr, data))
			_exit(10);
		data[0].effective &= ~(1U << CAP_SYS_RAWIO);
		if (syscall(SYS_capset, &hdr, data))
			_exit(11);
		if (!get_pa(self->iommufd, self->ioas, IOVA, &len, &pa))
			_exit(1);
		_exit(errno == EPERM ? 0 : 2);
	}
	ASSERT_EQ(child, waitpid(child, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status));
}

/* What needs an IOMMU is refused. */
TEST_F(noiommu, iommu_features_refused)
{
	struct iommu_hw_info info = {
		.size = sizeof(info),
		.dev_id = self->dev_id,
	};
	struct iommu_hwpt_alloc a = {
		.size = sizeof(a),
		.dev_id = self->dev_id,
		.pt_id = self->ioas,
	};
	struct iommu_hwpt_vtd_s1 s1 = {};
	uint32_t hwpt, parent;

	EXPECT_EQ(-1, ioctl(self->iommufd, IOMMU_GET_HW_INFO, &info));
	EXPECT_EQ(EOPNOTSUPP, errno);
	a.flags = IOMMU_HWPT_ALLOC_NEST_PARENT;
	EXPECT_EQ(-1, ioctl(self->iommufd, IOMMU_HWPT_ALLOC, &a));
	EXPECT_EQ(EOPNOTSUPP, errno);
	a.flags = IOMMU_HWPT_ALLOC_DIRTY_TRACKING;
	EXPECT_EQ(-1, ioctl(self->iommufd, IOMMU_HWPT_ALLOC, &a));
	EXPECT_EQ(EOPNOTSUPP, errno);
	a.flags = IOMMU_HWPT_ALLOC_PASID;
	EXPECT_EQ(-1, ioctl(self->iommufd, IOMMU_HWPT_ALLOC, &a));
	EXPECT_EQ(EOPNOTSUPP, errno);
	/* A plain one is made, and the device moves to it and back. */
	a.flags = 0;
	ASSERT_EQ(0, ioctl(self->iommufd, IOMMU_HWPT_ALLOC, &a));
	hwpt = a.out_hwpt_id;
	ASSERT_EQ(0, cdev_attach(self->cdev, self->ioas, NULL));
	ASSERT_EQ(0, cdev_attach(self->cdev, hwpt, NULL));
	ASSERT_EQ(0, ioas_map_fixed(self->iommufd, self->ioas, self->buf, IOVA,
				    PAGE));
	{
		uint64_t len = PAGE, pa = 0;

		ASSERT_EQ(0, get_pa(self->iommufd, self->ioas, IOVA, &len, &pa));
		EXPECT_EQ(pagemap_pa(self->buf), pa);
	}
	/* Nesting on it: no driver to nest with. */
	parent = hwpt;
	a.pt_id = parent;
	a.data_type = IOMMU_HWPT_DATA_VTD_S1;
	a.data_len = sizeof(s1);
	a.data_uptr = (uintptr_t)&s1;
	EXPECT_EQ(-1, ioctl(self->iommufd, IOMMU_HWPT_ALLOC, &a));
	EXPECT_EQ(EOPNOTSUPP, errno);
	ASSERT_EQ(0, cdev_attach(self->cdev, self->ioas, NULL));
	ASSERT_EQ(0, iommufd_destroy(self->iommufd, parent));
}

/* The maps pin as with an IOMMU (the software table holds the pages). */
TEST_F(noiommu, pins_follow_the_maps)
{
	long pin0 = status_kb("VmPin");

	ASSERT_EQ(0, ioas_map_fixed(self->iommufd, self->ioas, self->buf, IOVA,
				    NPAGES * PAGE));
	/* Nothing to pin for until a domain is there. */
	EXPECT_EQ(pin0, status_kb("VmPin"));
	ASSERT_EQ(0, cdev_attach(self->cdev, self->ioas, NULL));
	EXPECT_EQ(pin0 + (long)(NPAGES * PAGE / 1024), status_kb("VmPin"));
	ASSERT_EQ(0, cdev_detach(self->cdev));
	EXPECT_EQ(pin0, status_kb("VmPin"));
	ASSERT_EQ(0, cdev_attach(self->cdev, self->ioas, NULL));
	ASSERT_EQ(0, ioas_unmap(self->iommufd, self->ioas, IOVA, NPAGES * PAGE));
	EXPECT_EQ(pin0, status_kb("VmPin"));
}

/*
 * The device's VFIO group, noiommu-N, with /dev/iommu as its container:
 * only VFIO_NOIOMMU_IOMMU is offered and taken.
 */
TEST(group_container)
{
	struct vfio_group_status st = { .argsz = sizeof(st) };
	int iommufd, group, dev;

	iommufd = open("/dev/iommu", O_RDWR);
	ASSERT_LE(0, iommufd);
	group = open(group_path, O_RDWR);
	ASSERT_LE(0, group);
	ASSERT_EQ(0, ioctl(group, VFIO_GROUP_GET_STATUS, &st));
	EXPECT_TRUE(st.flags & VFIO_GROUP_FLAGS_VIABLE);
	ASSERT_EQ(0, ioctl(group, VFIO_GROUP_SET_CONTAINER, &iommufd));
	EXPECT_EQ(1, ioctl(iommufd, VFIO_CHECK_EXTENSION, VFIO_NOIOMMU_IOMMU));
	EXPECT_EQ(0, ioctl(iommufd, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU));
	EXPECT_EQ(-1, ioctl(iommufd, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU));
	EXPECT_EQ(EINVAL, errno);
	ASSERT_EQ(0, ioctl(iommufd, VFIO_SET_IOMMU, VFIO_NOIOMMU_IOMMU));
	dev = ioctl(group, VFIO_GROUP_GET_DEVICE_FD, bdf);
	ASSERT_LE(0, dev);
	close(dev);
	close(group);
	close(iommufd);
}

/* The device's noiommu-vfioN cdev and noiommu-N group, from sysfs. */
static int find_paths(void)
{
	char path[PATH_MAX], link[PATH_MAX];
	struct dirent *e;
	ssize_t n;
	DIR *d;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/vfio-dev", bdf);
	d = opendir(path);
	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (!strncmp(e->d_name, "noiommu-vfio", 12))
			snprintf(cdev_path, sizeof(cdev_path),
				 "/dev/vfio/devices/%s", e->d_name);
	closedir(d);
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group", bdf);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0 || !cdev_path[0])
		return -1;
	link[n] = 0;
	snprintf(group_path, sizeof(group_path), "/dev/vfio/noiommu-%s",
		 strrchr(link, '/') + 1);
	return 0;
}

int main(int argc, char *argv[])
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s BDF\n", argv[0]);
		return 2;
	}
	snprintf(bdf, sizeof(bdf), "%s", argv[1]);
	if (find_paths()) {
		printf("# %s: no noiommu-vfio cdev (enable_unsafe_noiommu_mode?)\n",
		       bdf);
		return 1;
	}
	printf("# %s: %s, %s\n", bdf, cdev_path, group_path);
	argv[1] = argv[0];
	return test_harness_run(argc - 1, argv + 1);
}
