// SPDX-License-Identifier: GPL-2.0
/*
 * The edges of the arithmetic: mappings, copies, unmaps, accesses and dirty
 * reads at the top of the 64-bit IOVA space (ranges that end at
 * 2^64 - 1), counts that wrap, and VFIO type1 cuts computed before the
 * range is checked, and a domain over a mapping too large to prepare for
 * at once.  Every test asserts upstream behaviour, so the suite passes on
 * the stock C iommufd as well as on ours.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <linux/iommufd.h>
#include <linux/vfio.h>

#include "kselftest_harness.h"
#include "iommufd_rs_utils.h"

#define PAGE 4096ULL
/* The first IOVA of the last @n bytes of the space. */
#define TOP(n) (0ULL - (n))

FIXTURE(edges)
{
	int fd;
	__u32 ioas;
	void *buf;
};

FIXTURE_SETUP(edges)
{
	self->fd = open("/dev/iommu", O_RDWR);
	ASSERT_LE(0, self->fd);
	ASSERT_EQ(0, ioas_alloc(self->fd, &self->ioas));
	self->buf = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, self->buf);
	for (unsigned int i = 0; i < 4 * PAGE; i++)
		((unsigned char *)self->buf)[i] = i * 7 + 1;
}

FIXTURE_TEARDOWN(edges)
{
	munmap(self->buf, 4 * PAGE);
	close(self->fd);
}

static int copy(int fd, __u32 src, __u64 src_iova, __u32 dst, __u64 dst_iova,
		__u64 length, __u32 prot)
{
	struct iommu_ioas_copy cmd = {
		.size = sizeof(cmd),
		.flags = IOMMU_IOAS_MAP_FIXED_IOVA | prot,
		.dst_ioas_id = dst,
		.src_ioas_id = src,
		.length = length,
		.dst_iova = dst_iova,
		.src_iova = src_iova,
	};

	return ioctl(fd, IOMMU_IOAS_COPY, &cmd);
}

static int set_compat_ioas(int fd, __u32 ioas)
{
	struct iommu_vfio_ioas cmd = {
		.size = sizeof(cmd),
		.op = IOMMU_VFIO_IOAS_SET,
		.ioas_id = ioas,
	};

	return ioctl(fd, IOMMU_VFIO_IOAS, &cmd);
}

static int dma_map(int fd, void *va, __u64 iova, __u64 size)
{
	struct vfio_iommu_type1_dma_map cmd = {
		.argsz = sizeof(cmd),
		.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
		.vaddr = (uintptr_t)va,
		.iova = iova,
		.size = size,
	};

	return ioctl(fd, VFIO_IOMMU_MAP_DMA, &cmd);
}

/* *done: the size field as the kernel left it. */
static int dma_unmap(int fd, __u64 iova, __u64 size, __u64 *done)
{
	struct vfio_iommu_type1_dma_unmap cmd = {
		.argsz = sizeof(cmd),
		.iova = iova,
		.size = size,
	};
	int rc = ioctl(fd, VFIO_IOMMU_UNMAP_DMA, &cmd);

	*done = cmd.size;
	return rc;
}

static int set_huge_pages(int fd, __u32 ioas, __u64 val)
{
	struct iommu_option cmd = {
		.size = sizeof(cmd),
		.option_id = IOMMU_OPTION_HUGE_PAGES,
		.op = IOMMU_OPTION_OP_SET,
		.object_id = ioas,
		.val64 = val,
	};

	return ioctl(fd, IOMMU_OPTION, &cmd);
}

static int get_bitmap(int fd, __u32 hwpt, __u64 iova, __u64 length,
		      __u64 page_size, __u64 *bitmap)
{
	struct iommu_hwpt_get_dirty_bitmap cmd = {
		.size = sizeof(cmd),
		.hwpt_id = hwpt,
		.iova = iova,
		.length = length,
		.page_size = page_size,
		.data = (uintptr_t)bitmap,
	};

	return ioctl(fd, IOMMU_HWPT_GET_DIRTY_BITMAP, &cmd);
}

/* Returns the access file descriptor, or -1 with errno. */
static int access_pages(int fd, int access, __u64 iova, __u64 length,
			void *uptr)
{
	struct iommu_test_cmd cmd = {
		.size = sizeof(cmd),
		.op = IOMMU_TEST_OP_ACCESS_PAGES,
		.id = access,
		.access_pages = { .iova = iova, .length = length,
				  .uptr = (uintptr_t)uptr },
	};

	return ioctl(fd, IOMMU_TEST_CMD, &cmd);
}

static int access_rw(int fd, int access, __u64 iova, void *buf, __u64 len,
		     __u32 flags)
{
	struct iommu_test_cmd cmd = {
		.size = sizeof(cmd),
		.op = IOMMU_TEST_OP_ACCESS_RW,
		.id = access,
		.access_rw = { .iova = iova, .length = len,
			       .uptr = (uintptr_t)buf, .flags = flags },
	};

	return ioctl(fd, IOMMU_TEST_CMD, &cmd);
}

/* A mapping may end at 2^64 - 1; one byte more overflows. */
TEST_F(edges, map_at_the_top)
{
	__u64 n;

	ASSERT_EQ(0, map_fixed(self->fd, self->ioas, self->buf, PAGE,
			       TOP(PAGE), RW));
	EXPECT_ERRNO(EEXIST, map_fixed(self->fd, self->ioas, self->buf, PAGE,
				       TOP(PAGE), RW));
	EXPECT_ERRNO(EOVERFLOW, map_fixed(self->fd, self->ioas, self->buf,
					  2 * PAGE, TOP(PAGE), RW));
	/* From the top and back to it. */
	ASSERT_EQ(0, copy(self->fd, self->ioas, TOP(PAGE), self->ioas,
			  0x100000, PAGE, RW));
	EXPECT_ERRNO(EOVERFLOW, copy(self->fd, self->ioas, TOP(PAGE),
				     self->ioas, 0x200000, 2 * PAGE, RW));
	ASSERT_EQ(0, unmap(self->fd, self->ioas, TOP(PAGE), PAGE, &n));
	EXPECT_EQ(PAGE, n);
	ASSERT_EQ(0, copy(self->fd, self->ioas, 0x100000, self->ioas,
			  TOP(PAGE), PAGE, RW));
	ASSERT_EQ(0, map_fixed(self->fd, self->ioas, self->buf, 2 * PAGE,
			       TOP(3 * PAGE), RW));
	/* The whole top range, in two areas. */
	ASSERT_EQ(0, unmap(self->fd, self->ioas, TOP(3 * PAGE), 3 * PAGE, &n));
	EXPECT_EQ(3 * PAGE, n);
	EXPECT_ERRNO(ENOENT, unmap(self->fd, self->ioas, TOP(PAGE), PAGE,
				   NULL));
	ASSERT_EQ(0, unmap(self->fd, self->ioas, 0, UINT64_MAX, &n));
	EXPECT_EQ(PAGE, n);
}

/* A copy of two areas lands at the top; a failed one leaves nothing. */
TEST_F(edges, copy_to_the_top)
{
	char *b = self->buf;
	__u64 n;

	ASSERT_EQ(0, map_fixed(self->fd, self->ioas, b, PAGE, 0x100000, RW));
	ASSERT_EQ(0, map_fixed(self->fd, self->ioas, b + 2 * PAGE, PAGE,
			       0x101000, IOMMU_IOAS_MAP_READABLE));
	/* The read-only second area refuses a writable copy. */
	EXPECT_ERRNO(EPERM, copy(self->fd, self->ioas, 0x100000, self->ioas,
				 TOP(2 * PAGE), 2 * PAGE, RW));
	ASSERT_EQ(0, copy(self->fd, self->ioas, 0x100800, self->ioas,
			  TOP(PAGE), PAGE, IOMMU_IOAS_MAP_READABLE));
	/* The failed copy left nothing below it. */
	ASSERT_EQ(0, map_fixed(self->fd, self->ioas, b, PAGE, TOP(2 * PAGE),
			       RW));
	ASSERT_EQ(0, unmap(self->fd, self->ioas, TOP(2 * PAGE), 2 * PAGE, &n));
	EXPECT_EQ(2 * PAGE, n);
	ASSERT_EQ(0, unmap(self->fd, self->ioas, 0, UINT64_MAX, &n));
	EXPECT_EQ(2 * PAGE, n);
}

/*
 * Two areas of 2^63 bytes cover the whole space.  Unmapping them all counts
 * 2^64 bytes in an unsigned long: 0.
 */
TEST_F(edges, unmap_all_of_the_space)
{
	__u64 half = 1ULL << 63;
	__u64 n = 1;

	ASSERT_EQ(0, map_fixed(self->fd, self->ioas, self->buf, half, 0, RW));
	ASSERT_EQ(0, map_fixed(self->fd, self->ioas, self->buf, half, half,
			       RW));
	EXPECT_ERRNO(EEXIST, map_fixed(self->fd, self->ioas, self->buf, PAGE,
				       TOP(PAGE), RW));
	ASSERT_EQ(0, unmap(self->fd, self->ioas, 0, UINT64_MAX, &n));
	EXPECT_EQ(0, n);
	ASSERT_EQ(0, map_fixed(self->fd, self->ioas, self->buf, PAGE, 0, RW));
	ASSERT_EQ(0, map_fixed(self->fd, self->ioas, self->buf, PAGE,
			       TOP(PAGE), RW));
	ASSERT_EQ(0, unmap(self->fd, self->ioas, 0, UINT64_MAX, &n));
	EXPECT_EQ(2 * PAGE, n);
}

/*
 * A file range is checked as start + length - 1 (it may end at the last
 * offset), after the IOAS is looked up.
 */
TEST_F(edges, map_file_offsets_at_the_top)
{
	int mfd = memfd_create("iommufd_edges", 0);
	__u64 n;

	ASSERT_LE(0, mfd);
	ASSERT_EQ(0, ftruncate(mfd, PAGE));
	EXPECT_ERRNO(ENOENT, map_file_fixed(self->fd, self->ioas + 100, mfd, 0, 0,
				      0x100000));
	EXPECT_ERRNO(EINVAL, map_file_fixed(self->fd, self->ioas, mfd, 0, 0,
				      0x100000));
	EXPECT_ERRNO(EOVERFLOW, map_file_fixed(self->fd, self->ioas, mfd, TOP(PAGE),
					 PAGE + 1, 0x100000));
	/* Nothing pins the pages without a domain: the map succeeds. */
	ASSERT_EQ(0, map_file_fixed(self->fd, self->ioas, mfd, TOP(PAGE), PAGE,
			      0x100000));
	ASSERT_EQ(0, map_file_fixed(self->fd, self->ioas, mfd, UINT64_MAX, 1,
			      TOP(PAGE)));
	ASSERT_EQ(0, unmap(self->fd, self->ioas, 0, UINT64_MAX, &n));
	EXPECT_EQ(PAGE + 1, n);
	close(mfd);
}

/* A dirty read's range ends at the top; upstream masks page_size - 1. */
TEST_F(edges, dirty_at_the_top)
{
	__u64 bitmap[2] = { 3, 0 };
	__u32 idev, hwpt, dirty;
	struct iommu_test_cmd cmd = {
		.size = sizeof(cmd),
		.op = IOMMU_TEST_OP_DIRTY,
		.dirty = { .iova = TOP(2 * PAGE), .length = 2 * PAGE,
			   .page_size = PAGE, .uptr = (uintptr_t)bitmap },
	};
	struct iommu_hwpt_set_dirty_tracking track = {
		.size = sizeof(track),
		.flags = IOMMU_HWPT_DIRTY_TRACKING_ENABLE,
	};

	ASSERT_EQ(0, mock_domain(self->fd, self->ioas, NULL, &hwpt, &idev));
	/* The range passes; the domain does not track. */
	EXPECT_ERRNO(EOPNOTSUPP, get_bitmap(self->fd, hwpt, TOP(PAGE), PAGE,
					    PAGE, bitmap));
	EXPECT_ERRNO(EOVERFLOW, get_bitmap(self->fd, hwpt, TOP(PAGE),
					   PAGE + 1, PAGE, bitmap));
	EXPECT_ERRNO(EINVAL, get_bitmap(self->fd, hwpt, TOP(PAGE), PAGE - 1,
					PAGE, bitmap));
	EXPECT_ERRNO(EOPNOTSUPP, get_bitmap(self->fd, hwpt, 0, 0x4000, 0x3000,
					    bitmap));
	EXPECT_ERRNO(EINVAL, get_bitmap(self->fd, hwpt, 0, 0x3000, 0x3000,
					bitmap));

	/* Marking PTEs dirty wraps past the top, as upstream's IOVA does. */
	ASSERT_EQ(0, hwpt_alloc(self->fd, idev, self->ioas,
				IOMMU_HWPT_ALLOC_DIRTY_TRACKING, &dirty));
	track.hwpt_id = dirty;
	ASSERT_EQ(0, ioctl(self->fd, IOMMU_HWPT_SET_DIRTY_TRACKING, &track));
	cmd.id = dirty;
	ASSERT_EQ(0, ioctl(self->fd, IOMMU_TEST_CMD, &cmd));
	EXPECT_EQ(2, cmd.dirty.out_nr_dirty);
	cmd.dirty.iova = TOP(PAGE);
	ASSERT_EQ(0, ioctl(self->fd, IOMMU_TEST_CMD, &cmd));
	EXPECT_EQ(2, cmd.dirty.out_nr_dirty);
}

/* What a domain maps may be in huge IOPTEs: large pages stay on. */
TEST_F(edges, huge_pages_stay_on_under_a_domain)
{
	ASSERT_EQ(0, mock_domain(self->fd, self->ioas, NULL, NULL, NULL));
	ASSERT_EQ(0, map_fixed(self->fd, self->ioas, self->buf, 2 * PAGE,
			       MOCK_APERTURE_START, RW));
	EXPECT_ERRNO(EINVAL, set_huge_pages(self->fd, self->ioas, 0));
	ASSERT_EQ(0, unmap(self->fd, self->ioas, 0, UINT64_MAX, NULL));
	ASSERT_EQ(0, set_huge_pages(self->fd, self->ioas, 0));
}

/* An access pins and copies the last page of the space. */
TEST_F(edges, access_at_the_top)
{
	unsigned char *b = self->buf;
	unsigned char tmp[16];
	int access = create_access(self->fd, self->ioas,
				   MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES);

	ASSERT_LE(0, access);
	/* Nothing mapped there: ENOENT, before the page alignment. */
	EXPECT_ERRNO(ENOENT, access_pages(self->fd, access, 0x100800, PAGE,
					  NULL));
	ASSERT_EQ(0, map_fixed(self->fd, self->ioas, b, 2 * PAGE,
			       TOP(2 * PAGE), RW));
	EXPECT_ERRNO(EOVERFLOW, access_pages(self->fd, access, TOP(PAGE),
					     PAGE + 1, NULL));
	ASSERT_EQ(0, access_pages(self->fd, access, TOP(PAGE), PAGE,
				  b + PAGE));
	ASSERT_EQ(0, access_pages(self->fd, access, TOP(2 * PAGE), 2 * PAGE,
				  b));
	ASSERT_EQ(0, access_rw(self->fd, access, UINT64_MAX - 15, tmp, 16, 0));
	EXPECT_EQ(0, memcmp(tmp, b + 2 * PAGE - 16, 16));
	memset(tmp, 0x5a, sizeof(tmp));
	ASSERT_EQ(0, access_rw(self->fd, access, UINT64_MAX - 15, tmp, 16,
			       MOCK_ACCESS_RW_WRITE | MOCK_ACCESS_RW_SLOW_PATH));
	EXPECT_EQ(0x5a, b[2 * PAGE - 1]);
	EXPECT_ERRNO(EOVERFLOW, access_rw(self->fd, access, UINT64_MAX - 15,
					  tmp, 17, 0));
	/* The unmap has the access give its pins back. */
	ASSERT_EQ(0, unmap(self->fd, self->ioas, TOP(2 * PAGE), 2 * PAGE,
			   NULL));
	close(access);
}

/*
 * Type1 cuts the areas where the range ends and before it starts, with
 * wrapping arithmetic and before the range is checked: a refused unmap
 * still leaves its cuts.
 */
TEST_F(edges, vfio_type1_cuts_come_first)
{
	__u64 done;

	ASSERT_EQ(0, set_compat_ioas(self->fd, self->ioas));
	ASSERT_EQ(0, ioctl(self->fd, VFIO_SET_IOMMU, VFIO_TYPE1_IOMMU));
	ASSERT_EQ(0, dma_map(self->fd, self->buf, 0x100000, 4 * PAGE));
	/* Empty: cut at 0x101fff, then EINVAL. */
	EXPECT_ERRNO(EINVAL, dma_unmap(self->fd, 0x102000, 0, &done));
	EXPECT_EQ(0, done);
	ASSERT_EQ(0, unmap(self->fd, self->ioas, 0x100000, 2 * PAGE, &done));
	EXPECT_EQ(2 * PAGE, done);

	/* Past the top: cut at 0x200fff (wrapped) and 0x202fff. */
	ASSERT_EQ(0, dma_map(self->fd, self->buf, 0x200000, 4 * PAGE));
	EXPECT_ERRNO(EOVERFLOW, dma_unmap(self->fd, 0x203000, TOP(2 * PAGE),
					  &done));
	EXPECT_EQ(0, done);
	ASSERT_EQ(0, unmap(self->fd, self->ioas, 0x201000, 2 * PAGE, &done));
	EXPECT_EQ(2 * PAGE, done);

	/* At the top: the last page is an end of its area already. */
	ASSERT_EQ(0, dma_map(self->fd, self->buf, TOP(PAGE), PAGE));
	EXPECT_ERRNO(EOVERFLOW, dma_map(self->fd, self->buf, TOP(PAGE),
					2 * PAGE));
	ASSERT_EQ(0, dma_unmap(self->fd, TOP(2 * PAGE), 2 * PAGE, &done));
	EXPECT_EQ(PAGE, done);
}

/* VFIO reports what went also when the unmap failed part-way. */
TEST_F(edges, vfio_unmap_reports_what_went)
{
	__u64 done;

	ASSERT_EQ(0, set_compat_ioas(self->fd, self->ioas));
	ASSERT_EQ(0, ioctl(self->fd, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU));
	ASSERT_EQ(0, dma_map(self->fd, self->buf, 0x100000, 2 * PAGE));
	ASSERT_EQ(0, dma_map(self->fd, self->buf, 0x102000, 2 * PAGE));
	EXPECT_ERRNO(ENOENT, dma_unmap(self->fd, 0x100000, 3 * PAGE, &done));
	EXPECT_EQ(2 * PAGE, done);
	EXPECT_ERRNO(ENOENT, unmap(self->fd, self->ioas, 0x100000, 2 * PAGE,
				   NULL));
	ASSERT_EQ(0, dma_map(self->fd, self->buf, TOP(PAGE), PAGE));
	ASSERT_EQ(0, dma_unmap(self->fd, TOP(PAGE), PAGE, &done));
	EXPECT_EQ(PAGE, done);
}

/* The page sizes type1 reports are the attached domains'. */
TEST_F(edges, vfio_page_sizes_follow_domains)
{
	struct vfio_iommu_type1_info info = { .argsz = sizeof(info) };
	__u64 page = getpagesize();

	ASSERT_EQ(0, set_compat_ioas(self->fd, self->ioas));
	ASSERT_EQ(0, ioctl(self->fd, VFIO_IOMMU_GET_INFO, &info));
	EXPECT_EQ(~(page - 1), info.iova_pgsizes);
	ASSERT_EQ(0, mock_domain(self->fd, self->ioas, NULL, NULL, NULL));
	ASSERT_EQ(0, ioctl(self->fd, VFIO_IOMMU_GET_INFO, &info));
	/* At least PAGE_SIZE, and no domain maps 2^63 bytes at once. */
	EXPECT_EQ(page, info.iova_pgsizes & -info.iova_pgsizes);
	EXPECT_EQ(0, info.iova_pgsizes >> 63);
}

/* The last range IOVAs may be allocated from in @ioas: 0 if it has one. */
static int last_iova_range(int fd, __u32 ioas, __u64 *start, __u64 *last)
{
	struct iommu_iova_range ranges[8];
	struct iommu_ioas_iova_ranges cmd = {
		.size = sizeof(cmd),
		.ioas_id = ioas,
		.num_iovas = 8,
		.allowed_iovas = (uintptr_t)ranges,
	};

	if (ioctl(fd, IOMMU_IOAS_IOVA_RANGES, &cmd) || !cmd.num_iovas ||
	    cmd.num_iovas > 8)
		return -1;
	*start = ranges[cmd.num_iovas - 1].start;
	*last = ranges[cmd.num_iovas - 1].last;
	return 0;
}

/*
 * A domain added to an IOAS pins what the IOAS maps.  With the upper half
 * of a huge-page mock domain's aperture (hundreds of GiB) mapped over
 * memory that cannot be pinned (PROT_NONE), the pin fails at once (EFAULT)
 * and the kernel memory it takes is bounded by what it pinned, not by the
 * length of the mapping.  (The fuzzer found ours preparing storage for
 * every page of such a range first: about 1 KiB per 256 KiB mapped, an
 * out-of-memory panic in the test VM.)
 */
TEST_F(edges, domain_over_memory_it_cannot_pin)
{
	struct iommu_hwpt_selftest data = {
		.iotlb = IOMMU_TEST_IOTLB_DEFAULT,
		.pagetable_type = MOCK_IOMMUPT_HUGE,
	};
	__u32 ioas2, probe, idev, hwpt;
	__u64 start, last, len, iova;
	void *va;

	SKIP_WITHOUT_TEST_CMD(self->fd);
	/* A device elsewhere, to make domains with. */
	ASSERT_EQ(0, ioas_alloc(self->fd, &ioas2));
	ASSERT_EQ(0, mock_domain(self->fd, ioas2, NULL, NULL, &idev));
	/* The huge domain's aperture, seen from an IOAS with only it. */
	ASSERT_EQ(0, ioas_alloc(self->fd, &probe));
	ASSERT_EQ(0, hwpt_alloc_data(self->fd, idev, probe, 0, 0, &data,
				     sizeof(data), &hwpt));
	ASSERT_EQ(0, last_iova_range(self->fd, probe, &start, &last));
	EXPECT_EQ(0, destroy(self->fd, hwpt));
	/* The upper half of it, page aligned. */
	len = ((last - start) / 2 + 1) & ~(PAGE - 1);
	iova = (last + 1 - len) & ~(PAGE - 1);
	ASSERT_LE(1ULL << 36, len);
	va = mmap(NULL, len, PROT_NONE,
		  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	ASSERT_NE(MAP_FAILED, va);
	/* Nothing pins yet: no domain, no access. */
	ASSERT_EQ(0, map_fixed(self->fd, self->ioas, va, len, iova, RW));
	EXPECT_ERRNO(EFAULT, hwpt_alloc_data(self->fd, idev, self->ioas, 0, 0,
					     &data, sizeof(data), &hwpt));
	EXPECT_EQ(0, status_kb("VmPin"));
	EXPECT_EQ(0, unmap(self->fd, self->ioas, iova, len, NULL));
	munmap(va, len);
}

TEST_HARNESS_MAIN
