// SPDX-License-Identifier: GPL-2.0
/*
 * Dirty tracking through the selftest's mock IOMMU: what enabling does to
 * bits set before, reading with and without clearing, and the errno of
 * each bad input.  Like our other suites, every test asserts upstream
 * behaviour, so it passes on the stock C iommufd as well as on ours.
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
#define LEN (16 * PAGE)
/* Bitmap granule: one bit per mock page. */
#define GRAN MOCK_PAGE_SIZE
#define NBITS (LEN / GRAN)

static int set_tracking(int fd, __u32 hwpt, __u32 flags)
{
	struct iommu_hwpt_set_dirty_tracking cmd = {
		.size = sizeof(cmd),
		.flags = flags,
		.hwpt_id = hwpt,
	};

	return ioctl(fd, IOMMU_HWPT_SET_DIRTY_TRACKING, &cmd);
}

static int get_bitmap(int fd, __u32 hwpt, __u64 iova, __u64 length,
		      __u64 page_size, __u64 *bitmap, __u32 flags)
{
	struct iommu_hwpt_get_dirty_bitmap cmd = {
		.size = sizeof(cmd),
		.hwpt_id = hwpt,
		.flags = flags,
		.iova = iova,
		.length = length,
		.page_size = page_size,
		.data = (uintptr_t)bitmap,
	};

	return ioctl(fd, IOMMU_HWPT_GET_DIRTY_BITMAP, &cmd);
}

/* Marks dirty the mock PTEs under the set bits of @bitmap; *nr: bits set. */
static int mock_dirty(int fd, __u32 hwpt, __u64 *bitmap, __u64 *nr)
{
	struct iommu_test_cmd cmd = {
		.size = sizeof(cmd),
		.op = IOMMU_TEST_OP_DIRTY,
		.id = hwpt,
		.dirty = { .iova = BASE, .length = LEN, .page_size = GRAN,
			   .uptr = (uintptr_t)bitmap },
	};
	int rc = ioctl(fd, IOMMU_TEST_CMD, &cmd);

	if (!rc && nr)
		*nr = cmd.dirty.out_nr_dirty;
	return rc;
}

FIXTURE(dirty)
{
	int fd;
	__u32 ioas_id, stdev, idev, hwpt;
	void *buf;
	__u64 bitmap[4];
};

FIXTURE_SETUP(dirty)
{
	struct iommu_test_cmd replace = {
		.size = sizeof(replace),
		.op = IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE,
	};
	struct iommu_option huge = {
		.size = sizeof(huge),
		.option_id = IOMMU_OPTION_HUGE_PAGES,
		.op = IOMMU_OPTION_OP_SET,
		.val64 = 0,
	};

	self->fd = open("/dev/iommu", O_RDWR);
	ASSERT_LE(0, self->fd);
	ASSERT_EQ(0, ioas_alloc(self->fd, &self->ioas_id));
	/* Page by page: every PTE is PAGE (two mock pages, two bits). */
	huge.object_id = self->ioas_id;
	ASSERT_EQ(0, ioctl(self->fd, IOMMU_OPTION, &huge));
	ASSERT_EQ(0, mock_domain(self->fd, self->ioas_id, &self->stdev, NULL,
				 &self->idev));
	self->buf = mmap(NULL, LEN, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	ASSERT_NE(MAP_FAILED, self->buf);
	ASSERT_EQ(0, map_fixed(self->fd, self->ioas_id, self->buf, LEN, BASE,
			       RW));
	ASSERT_EQ(0, hwpt_alloc(self->fd, self->idev, self->ioas_id,
				IOMMU_HWPT_ALLOC_DIRTY_TRACKING, &self->hwpt));
	replace.id = self->stdev;
	replace.mock_domain_replace.pt_id = self->hwpt;
	ASSERT_EQ(0, ioctl(self->fd, IOMMU_TEST_CMD, &replace));
}

FIXTURE_TEARDOWN(dirty)
{
	close(self->fd);
	munmap(self->buf, LEN);
}

/* Bit @i of the bitmap. */
static int bit(const __u64 *bitmap, unsigned int i)
{
	return (bitmap[i / 64] >> (i % 64)) & 1;
}

/*
 * Reading reports whole PTEs and clears them, unless told not to; turning
 * tracking on starts from a clean slate.
 */
TEST_F(dirty, read_clear_and_restart)
{
	__u64 nr = 0;
	unsigned int i;

	/* Nothing can be marked while tracking is off. */
	memset(self->bitmap, 0, sizeof(self->bitmap));
	self->bitmap[0] = 1;
	EXPECT_ERRNO(EINVAL, mock_dirty(self->fd, self->hwpt, self->bitmap,
					NULL));

	ASSERT_EQ(0, set_tracking(self->fd, self->hwpt,
				  IOMMU_HWPT_DIRTY_TRACKING_ENABLE));
	/* Bits 0 and 5: the PTEs of pages 0 and 2. */
	self->bitmap[0] = 1 | 1 << 5;
	ASSERT_EQ(0, mock_dirty(self->fd, self->hwpt, self->bitmap, &nr));
	EXPECT_EQ(2, nr);

	memset(self->bitmap, 0, sizeof(self->bitmap));
	ASSERT_EQ(0, get_bitmap(self->fd, self->hwpt, BASE, LEN, GRAN,
				self->bitmap,
				IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR));
	for (i = 0; i < NBITS; i++)
		EXPECT_EQ(i < 2 || i == 4 || i == 5, bit(self->bitmap, i));

	/* Still there after NO_CLEAR; gone after a clearing read. */
	memset(self->bitmap, 0, sizeof(self->bitmap));
	ASSERT_EQ(0, get_bitmap(self->fd, self->hwpt, BASE, LEN, GRAN,
				self->bitmap, 0));
	EXPECT_EQ(0x33, self->bitmap[0]);
	memset(self->bitmap, 0, sizeof(self->bitmap));
	ASSERT_EQ(0, get_bitmap(self->fd, self->hwpt, BASE, LEN, GRAN,
				self->bitmap, 0));
	EXPECT_EQ(0, self->bitmap[0]);

	/* Marked, tracking stopped and restarted: the slate is clean. */
	self->bitmap[0] = 1 << 8;
	ASSERT_EQ(0, mock_dirty(self->fd, self->hwpt, self->bitmap, &nr));
	ASSERT_EQ(0, set_tracking(self->fd, self->hwpt, 0));
	ASSERT_EQ(0, set_tracking(self->fd, self->hwpt,
				  IOMMU_HWPT_DIRTY_TRACKING_ENABLE));
	memset(self->bitmap, 0, sizeof(self->bitmap));
	ASSERT_EQ(0, get_bitmap(self->fd, self->hwpt, BASE, LEN, GRAN,
				self->bitmap, 0));
	EXPECT_EQ(0, self->bitmap[0]);

	/* A coarser bitmap: one bit per 4 pages. */
	self->bitmap[0] = 1 << 17;
	ASSERT_EQ(0, mock_dirty(self->fd, self->hwpt, self->bitmap, &nr));
	memset(self->bitmap, 0, sizeof(self->bitmap));
	ASSERT_EQ(0, get_bitmap(self->fd, self->hwpt, BASE, LEN, 4 * PAGE,
				self->bitmap, 0));
	EXPECT_EQ(1 << 2, self->bitmap[0]);
}

/* The errno of each bad request. */
TEST_F(dirty, bad_requests)
{
	__u32 plain;

	EXPECT_ERRNO(EOPNOTSUPP, set_tracking(self->fd, self->hwpt, 2));
	EXPECT_ERRNO(ENOENT, set_tracking(self->fd, self->ioas_id,
					  IOMMU_HWPT_DIRTY_TRACKING_ENABLE));
	EXPECT_ERRNO(EOPNOTSUPP, get_bitmap(self->fd, self->hwpt, BASE, LEN,
					    GRAN, self->bitmap, 2));
	EXPECT_ERRNO(ENOENT, get_bitmap(self->fd, self->idev, BASE, LEN,
					GRAN, self->bitmap, 0));
	/* Alignment: to the IOAS (a page here), and to the bitmap's page. */
	EXPECT_ERRNO(EINVAL, get_bitmap(self->fd, self->hwpt, BASE + GRAN,
					LEN - PAGE, GRAN, self->bitmap, 0));
	EXPECT_ERRNO(EINVAL, get_bitmap(self->fd, self->hwpt, BASE, LEN, 0,
					self->bitmap, 0));
	EXPECT_ERRNO(EINVAL, get_bitmap(self->fd, self->hwpt, BASE + PAGE,
					LEN - PAGE, 2 * PAGE, self->bitmap, 0));
	EXPECT_ERRNO(EOVERFLOW, get_bitmap(self->fd, self->hwpt, BASE,
					   UINT64_MAX - PAGE + 1, GRAN,
					   self->bitmap, 0));
	/* A HWPT made without dirty tracking cannot do any of it. */
	ASSERT_EQ(0, hwpt_alloc(self->fd, self->idev, self->ioas_id, 0,
				&plain));
	EXPECT_ERRNO(EOPNOTSUPP, set_tracking(self->fd, plain,
					      IOMMU_HWPT_DIRTY_TRACKING_ENABLE));
	EXPECT_ERRNO(EOPNOTSUPP, get_bitmap(self->fd, plain, BASE, LEN, GRAN,
					    self->bitmap, 0));
	ASSERT_EQ(0, destroy(self->fd, plain));
}

/*
 * The whole range read must be mapped.  Upstream's walk computes EINVAL
 * for a hole, but iommu_read_and_clear_dirty() drops the walk's result and
 * returns 0, so the stock C module fails this test; ours reports the error.
 */
TEST_F(dirty, unmapped_range)
{
	EXPECT_ERRNO(EINVAL, get_bitmap(self->fd, self->hwpt, BASE, 2 * LEN,
					GRAN, self->bitmap, 0));
	EXPECT_ERRNO(EINVAL, get_bitmap(self->fd, self->hwpt, BASE - LEN, LEN,
					GRAN, self->bitmap, 0));
}

TEST_HARNESS_MAIN
