// SPDX-License-Identifier: GPL-2.0
/*
 * Devices and domains through the selftest's mock IOMMU: what attaching a
 * domain does to the IOAS (pins, aperture, alignment), how HWPTs and
 * devices hold each other, file-backed mappings and CHANGE_PROCESS, and the
 * errno of each bad input.  Like iommufd_base, every test asserts upstream
 * behaviour, so the suite passes on the stock C iommufd as well as on ours.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <linux/iommufd.h>

#include "kselftest_harness.h"
#include "iommufd_rs_utils.h"

#define PAGE 4096UL
#define BASE MOCK_APERTURE_START

static int unmap_all(int fd, __u32 ioas_id)
{
	struct iommu_ioas_unmap cmd = {
		.size = sizeof(cmd),
		.ioas_id = ioas_id,
		.length = UINT64_MAX,
	};

	return ioctl(fd, IOMMU_IOAS_UNMAP, &cmd);
}

static int check_map(int fd, __u32 hwpt, __u64 iova, void *buf, __u64 len)
{
	struct iommu_test_cmd cmd = {
		.size = sizeof(cmd),
		.op = IOMMU_TEST_OP_MD_CHECK_MAP,
		.id = hwpt,
		.check_map = { .iova = iova, .length = len,
			       .uptr = (uintptr_t)buf },
	};

	return ioctl(fd, IOMMU_TEST_CMD, &cmd);
}

FIXTURE(domain)
{
	int fd;
	__u32 ioas_id;
	uint8_t *buf;
	size_t len;
};

FIXTURE_SETUP(domain)
{
	self->fd = open("/dev/iommu", O_RDWR);
	ASSERT_LE(0, self->fd);
	ASSERT_EQ(0, ioas_alloc(self->fd, &self->ioas_id));
	self->len = 8 * PAGE;
	self->buf = mmap(NULL, self->len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	ASSERT_NE(MAP_FAILED, self->buf);
}

FIXTURE_TEARDOWN(domain)
{
	close(self->fd);
	EXPECT_EQ(0, status_kb("VmPin"));
	munmap(self->buf, self->len);
}

/*
 * With a domain attached every mapped page is pinned once, whatever the
 * number of domains; the last domain to go unpins.
 */
TEST_F(domain, pins_follow_domains)
{
	__u32 stdev[2], hwpt[2];

	ASSERT_EQ(0, map_fixed(self->fd, self->ioas_id, self->buf, self->len,
			       BASE, RW));
	EXPECT_EQ(0, check_refs(self->fd, self->buf, self->len, 0));
	EXPECT_EQ(0, status_kb("VmPin"));

	ASSERT_EQ(0, mock_domain(self->fd, self->ioas_id, &stdev[0], &hwpt[0],
				 NULL));
	EXPECT_EQ(0, check_refs(self->fd, self->buf, self->len, 1));
	EXPECT_EQ(32, status_kb("VmPin"));
	EXPECT_EQ(0, check_map(self->fd, hwpt[0], BASE, self->buf, self->len));

	ASSERT_EQ(0, mock_domain(self->fd, self->ioas_id, &stdev[1], &hwpt[1],
				 NULL));
	EXPECT_EQ(0, check_refs(self->fd, self->buf, self->len, 1));
	EXPECT_EQ(0, check_map(self->fd, hwpt[1], BASE, self->buf, self->len));

	/* The IOAS is in use by the HWPTs; the HWPTs by the devices. */
	EXPECT_ERRNO(EBUSY, destroy(self->fd, self->ioas_id));
	EXPECT_ERRNO(EBUSY, destroy(self->fd, hwpt[0]));

	ASSERT_EQ(0, destroy(self->fd, stdev[0]));
	EXPECT_EQ(0, check_refs(self->fd, self->buf, self->len, 1));
	ASSERT_EQ(0, destroy(self->fd, stdev[1]));
	EXPECT_EQ(0, check_refs(self->fd, self->buf, self->len, 0));
	EXPECT_EQ(0, status_kb("VmPin"));
	/* The automatic HWPTs went with their devices. */
	ASSERT_EQ(0, destroy(self->fd, self->ioas_id));
}

/* Mapping with a domain attached maps into it; unmapping takes it out. */
TEST_F(domain, map_unmap_follow)
{
	__u32 stdev, hwpt;

	ASSERT_EQ(0, mock_domain(self->fd, self->ioas_id, &stdev, &hwpt,
				 NULL));
	ASSERT_EQ(0, map_fixed(self->fd, self->ioas_id, self->buf + PAGE,
			       2 * PAGE, BASE + PAGE, RW));
	EXPECT_EQ(0, check_map(self->fd, hwpt, BASE + PAGE, self->buf + PAGE,
			       2 * PAGE));
	EXPECT_EQ(0, check_refs(self->fd, self->buf + PAGE, 2 * PAGE, 1));
	/* Nothing is mapped at BASE: the mock translates it to nothing. */
	EXPECT_ERRNO(EINVAL, check_map(self->fd, hwpt, BASE, self->buf, PAGE));

	ASSERT_EQ(0, unmap_all(self->fd, self->ioas_id));
	EXPECT_ERRNO(EINVAL, check_map(self->fd, hwpt, BASE + PAGE,
				       self->buf + PAGE, PAGE));
	EXPECT_EQ(0, check_refs(self->fd, self->buf, self->len, 0));
	ASSERT_EQ(0, destroy(self->fd, stdev));
}

/*
 * A domain's aperture bounds the IOAS: IOVA outside it is reserved, and a
 * domain cannot join an IOAS with mappings outside its aperture.  Its
 * smallest page becomes the IOVA alignment.
 */
TEST_F(domain, aperture_and_alignment)
{
	struct iommu_iova_range ranges[4];
	struct iommu_ioas_iova_ranges cmd = {
		.size = sizeof(cmd),
		.ioas_id = self->ioas_id,
		.num_iovas = 4,
		.allowed_iovas = (uintptr_t)ranges,
	};
	__u32 stdev;

	ASSERT_EQ(0, ioctl(self->fd, IOMMU_IOAS_IOVA_RANGES, &cmd));
	EXPECT_EQ(1, cmd.num_iovas);
	EXPECT_EQ(1, cmd.out_iova_alignment);

	/* A mapping below the aperture keeps the domain out. */
	ASSERT_EQ(0, map_fixed(self->fd, self->ioas_id, self->buf, PAGE,
			       BASE - PAGE, RW));
	EXPECT_ERRNO(EADDRINUSE, mock_domain(self->fd, self->ioas_id, NULL,
					     NULL, NULL));
	ASSERT_EQ(0, unmap_all(self->fd, self->ioas_id));

	ASSERT_EQ(0, mock_domain(self->fd, self->ioas_id, &stdev, NULL, NULL));
	cmd.num_iovas = 4;
	ASSERT_EQ(0, ioctl(self->fd, IOMMU_IOAS_IOVA_RANGES, &cmd));
	ASSERT_EQ(1, cmd.num_iovas);
	EXPECT_EQ(MOCK_APERTURE_START, ranges[0].start);
	EXPECT_EQ(MOCK_APERTURE_LAST, ranges[0].last);
	EXPECT_EQ(MOCK_PAGE_SIZE, cmd.out_iova_alignment);
	EXPECT_ERRNO(EINVAL, map_fixed(self->fd, self->ioas_id, self->buf,
				       PAGE, BASE - PAGE, RW));
	EXPECT_ERRNO(EINVAL, map_fixed(self->fd, self->ioas_id, self->buf,
				       PAGE, BASE + MOCK_PAGE_SIZE / 2, RW));

	/* The aperture goes with the domain. */
	ASSERT_EQ(0, destroy(self->fd, stdev));
	cmd.num_iovas = 4;
	ASSERT_EQ(0, ioctl(self->fd, IOMMU_IOAS_IOVA_RANGES, &cmd));
	EXPECT_EQ(0, ranges[0].start);
	EXPECT_EQ(1, cmd.out_iova_alignment);
}

/* HWPT_ALLOC's bad inputs, and HWPTs held by their devices. */
TEST_F(domain, hwpt_alloc_errors)
{
	__u32 stdev, idev, hwpt, other;

	ASSERT_EQ(0, mock_domain(self->fd, self->ioas_id, &stdev, NULL,
				 &idev));
	EXPECT_ERRNO(ENOENT, hwpt_alloc(self->fd, self->ioas_id,
					self->ioas_id, 0, &hwpt));
	EXPECT_ERRNO(ENOENT, hwpt_alloc(self->fd, idev + 100, self->ioas_id,
					0, &hwpt));
	EXPECT_ERRNO(EINVAL, hwpt_alloc(self->fd, idev, idev, 0, &hwpt));
	EXPECT_ERRNO(EINVAL, hwpt_alloc(self->fd, idev, idev + 100, 0,
					&hwpt));
	EXPECT_ERRNO(EOPNOTSUPP, hwpt_alloc(self->fd, idev, self->ioas_id,
					    1U << 31, &hwpt));

	ASSERT_EQ(0, hwpt_alloc(self->fd, idev, self->ioas_id, 0, &hwpt));
	ASSERT_EQ(0, hwpt_alloc(self->fd, idev, self->ioas_id,
				IOMMU_HWPT_ALLOC_NEST_PARENT, &other));
	EXPECT_NE(hwpt, other);
	/* An unused HWPT can go; the IOAS waits for its HWPTs. */
	ASSERT_EQ(0, destroy(self->fd, other));
	EXPECT_ERRNO(EBUSY, destroy(self->fd, self->ioas_id));

	/* A device attached to the HWPT holds it. */
	ASSERT_EQ(0, map_fixed(self->fd, self->ioas_id, self->buf, PAGE,
			       BASE, RW));
	ASSERT_EQ(0, mock_domain(self->fd, hwpt, &other, NULL, NULL));
	EXPECT_EQ(0, check_map(self->fd, hwpt, BASE, self->buf, PAGE));
	EXPECT_ERRNO(EBUSY, destroy(self->fd, hwpt));
	ASSERT_EQ(0, destroy(self->fd, other));
	ASSERT_EQ(0, destroy(self->fd, hwpt));
	ASSERT_EQ(0, destroy(self->fd, stdev));
}

/*
 * A memfd mapping is pinned through the file; CHANGE_PROCESS only takes
 * contexts whose mappings are all of files.
 */
TEST_F(domain, map_file_and_change_process)
{
	struct iommu_ioas_change_process cp = { .size = sizeof(cp) };
	__u32 stdev, hwpt;
	int mfd;

	mfd = memfd_create("iommufd_domain", 0);
	ASSERT_LE(0, mfd);
	ASSERT_EQ(0, ftruncate(mfd, 4 * PAGE));
	ASSERT_EQ(0, mock_domain(self->fd, self->ioas_id, &stdev, &hwpt,
				 NULL));

	EXPECT_ERRNO(EBADF, map_file_fixed(self->fd, self->ioas_id, 1000, 0, PAGE,
				     BASE));
	EXPECT_ERRNO(EINVAL, map_file_fixed(self->fd, self->ioas_id, mfd, 0, 0,
				      BASE));
	ASSERT_EQ(0, map_file_fixed(self->fd, self->ioas_id, mfd, 0, 4 * PAGE,
			      BASE));
	EXPECT_EQ(16, status_kb("VmPin"));
	ASSERT_EQ(0, ioctl(self->fd, IOMMU_IOAS_CHANGE_PROCESS, &cp));
	EXPECT_EQ(16, status_kb("VmPin"));

	/* A mapping of process memory makes CHANGE_PROCESS fail. */
	ASSERT_EQ(0, map_fixed(self->fd, self->ioas_id, self->buf, PAGE,
			       BASE + 4 * PAGE, RW));
	EXPECT_ERRNO(EINVAL, ioctl(self->fd, IOMMU_IOAS_CHANGE_PROCESS, &cp));
	cp.__reserved = 1;
	EXPECT_ERRNO(EOPNOTSUPP,
		     ioctl(self->fd, IOMMU_IOAS_CHANGE_PROCESS, &cp));

	ASSERT_EQ(0, unmap_all(self->fd, self->ioas_id));
	EXPECT_EQ(0, status_kb("VmPin"));
	ASSERT_EQ(0, destroy(self->fd, stdev));
	close(mfd);
}

/* GET_HW_INFO: the mock's registers, and the errno of bad requests. */
TEST_F(domain, hw_info)
{
	struct iommu_test_hw_info info = {};
	struct iommu_hw_info cmd = {
		.size = sizeof(cmd),
		.data_len = sizeof(info),
		.data_uptr = (uintptr_t)&info,
	};
	__u32 stdev, idev;

	ASSERT_EQ(0, mock_domain(self->fd, self->ioas_id, &stdev, NULL,
				 &idev));
	cmd.dev_id = idev + 100;
	EXPECT_ERRNO(ENOENT, ioctl(self->fd, IOMMU_GET_HW_INFO, &cmd));
	cmd.dev_id = self->ioas_id;
	EXPECT_ERRNO(ENOENT, ioctl(self->fd, IOMMU_GET_HW_INFO, &cmd));
	cmd.dev_id = idev;
	cmd.flags = 2;
	EXPECT_ERRNO(EOPNOTSUPP, ioctl(self->fd, IOMMU_GET_HW_INFO, &cmd));
	cmd.flags = 0;
	ASSERT_EQ(0, ioctl(self->fd, IOMMU_GET_HW_INFO, &cmd));
	EXPECT_EQ(IOMMU_HW_INFO_TYPE_SELFTEST, cmd.out_data_type);
	EXPECT_EQ(sizeof(info), cmd.data_len);
	EXPECT_EQ(IOMMU_HW_INFO_SELFTEST_REGVAL, info.test_reg);
	EXPECT_EQ(0, cmd.out_max_pasid_log2);
	ASSERT_EQ(0, destroy(self->fd, stdev));
}

TEST_HARNESS_MAIN
