// SPDX-License-Identifier: GPL-2.0
/*
 * Pinned pages and accesses: what pinning does to the pages and to the
 * process's counters, how accesses pin, copy and let go, and the errno of
 * each bad input.  Like iommufd_base, every test asserts upstream
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
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/capability.h>
#include <linux/iommufd.h>

#include "kselftest_harness.h"
#include "iommufd_rs_utils.h"

#define PAGE 4096UL
#define BASE_IOVA 0x100000UL

static int access_pages(int fd, int access, __u64 iova, __u64 length,
			void *uptr, __u32 flags, __u32 *item)
{
	struct iommu_test_cmd cmd = {
		.size = sizeof(cmd),
		.op = IOMMU_TEST_OP_ACCESS_PAGES,
		.id = access,
		.access_pages = { .flags = flags, .iova = iova,
				  .length = length, .uptr = (uintptr_t)uptr },
	};
	int rc = ioctl(fd, IOMMU_TEST_CMD, &cmd);

	if (!rc && item)
		*item = cmd.access_pages.out_access_pages_id;
	return rc;
}

static int destroy_item(int fd, int access, __u32 item)
{
	struct iommu_test_cmd cmd = {
		.size = sizeof(cmd),
		.op = IOMMU_TEST_OP_DESTROY_ACCESS_PAGES,
		.id = access,
		.destroy_access_pages = { .access_pages_id = item },
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

static int replace_ioas(int fd, int access, __u32 ioas_id)
{
	struct iommu_test_cmd cmd = {
		.size = sizeof(cmd),
		.op = IOMMU_TEST_OP_ACCESS_REPLACE_IOAS,
		.id = access,
		.access_replace_ioas = { .ioas_id = ioas_id },
	};

	return ioctl(fd, IOMMU_TEST_CMD, &cmd);
}

FIXTURE(pages)
{
	int fd;
	__u32 ioas_id;
	uint8_t *buf;
	size_t len;
};

FIXTURE_SETUP(pages)
{
	self->fd = open("/dev/iommu", O_RDWR);
	ASSERT_LE(0, self->fd);
	ASSERT_EQ(0, ioas_alloc(self->fd, &self->ioas_id));
	self->len = 16 * PAGE;
	self->buf = mmap(NULL, self->len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	ASSERT_NE(MAP_FAILED, self->buf);
	memset(self->buf, 0x5a, self->len);
}

FIXTURE_TEARDOWN(pages)
{
	int fd;

	close(self->fd);
	/* Whatever a test did, closing gives every pin back. */
	EXPECT_EQ(0, status_kb("VmPin"));
	fd = open("/dev/iommu", O_RDWR);
	EXPECT_EQ(0, check_refs(fd, self->buf, self->len, 0));
	close(fd);
	munmap(self->buf, self->len);
}

/* Mapping alone pins nothing; an access pin pins exactly its pages once. */
TEST_F(pages, pin_counts)
{
	__u32 a, b;
	int access;

	ASSERT_EQ(0, map_fixed(self->fd, self->ioas_id, self->buf, self->len,
			       BASE_IOVA, RW));
	EXPECT_EQ(0, check_refs(self->fd, self->buf, self->len, 0));
	EXPECT_EQ(0, status_kb("VmPin"));

	access = create_access(self->fd, self->ioas_id,
			       MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES);
	ASSERT_LE(0, access);
	ASSERT_EQ(0, access_pages(self->fd, access, BASE_IOVA + PAGE, 2 * PAGE,
				  self->buf + PAGE, 0, &a));
	EXPECT_EQ(0, check_refs(self->fd, self->buf, PAGE, 0));
	EXPECT_EQ(0, check_refs(self->fd, self->buf + PAGE, 2 * PAGE, 1));
	EXPECT_EQ(0, check_refs(self->fd, self->buf + 3 * PAGE, PAGE, 0));
	EXPECT_EQ(8, status_kb("VmPin"));

	/* A second user of the same pages shares the pins. */
	ASSERT_EQ(0, access_pages(self->fd, access, BASE_IOVA + 2 * PAGE,
				  2 * PAGE, self->buf + 2 * PAGE, 0, &b));
	EXPECT_NE(a, b);
	EXPECT_EQ(0, check_refs(self->fd, self->buf + PAGE, 3 * PAGE, 1));
	EXPECT_EQ(12, status_kb("VmPin"));

	ASSERT_EQ(0, destroy_item(self->fd, access, a));
	EXPECT_EQ(0, check_refs(self->fd, self->buf + PAGE, PAGE, 0));
	EXPECT_EQ(0, check_refs(self->fd, self->buf + 2 * PAGE, 2 * PAGE, 1));
	EXPECT_EQ(8, status_kb("VmPin"));
	EXPECT_ERRNO(ENOENT, destroy_item(self->fd, access, a));
	ASSERT_EQ(0, destroy_item(self->fd, access, b));
	EXPECT_EQ(0, check_refs(self->fd, self->buf, self->len, 0));
	EXPECT_EQ(0, status_kb("VmPin"));
	close(access);
}

/* Every bad request gets its errno and leaves nothing pinned. */
TEST_F(pages, pin_errors)
{
	int access, copier;
	__u32 ro_ioas;

	ASSERT_EQ(0, map_fixed(self->fd, self->ioas_id, self->buf, 4 * PAGE,
			       BASE_IOVA, RW));
	EXPECT_ERRNO(ENOENT, create_access(self->fd, self->ioas_id + 100, 0));
	EXPECT_ERRNO(EOPNOTSUPP, create_access(self->fd, self->ioas_id, 2));
	access = create_access(self->fd, self->ioas_id,
			       MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES);
	ASSERT_LE(0, access);

	/* Not an access file. */
	EXPECT_ERRNO(EBADFD, access_pages(self->fd, self->fd, BASE_IOVA, PAGE,
					  NULL, 0, NULL));
	/* Nothing mapped there, or only part of the range. */
	EXPECT_ERRNO(ENOENT, access_pages(self->fd, access, BASE_IOVA - PAGE,
					  PAGE, NULL, 0, NULL));
	EXPECT_ERRNO(ENOENT, access_pages(self->fd, access, BASE_IOVA + 3 * PAGE,
					  2 * PAGE, NULL, 0, NULL));
	/* Not page aligned; empty; wrapping. */
	EXPECT_ERRNO(EINVAL, access_pages(self->fd, access, BASE_IOVA + 1,
					  PAGE, NULL, 0, NULL));
	EXPECT_ERRNO(EINVAL, access_pages(self->fd, access, BASE_IOVA, 0,
					  NULL, 0, NULL));
	EXPECT_ERRNO(EOVERFLOW, access_pages(self->fd, access, UINT64_MAX - 1,
					     PAGE, NULL, 0, NULL));
	/* Unknown flags; more than the test op takes. */
	EXPECT_ERRNO(EOPNOTSUPP, access_pages(self->fd, access, BASE_IOVA,
					      PAGE, NULL, 2, NULL));
	EXPECT_ERRNO(ENOMEM, access_pages(self->fd, access, BASE_IOVA,
					  32 * 1024 * 1024, NULL, 0, NULL));
	/* The pages are checked against the user buffer given. */
	EXPECT_ERRNO(EBADE, access_pages(self->fd, access, BASE_IOVA, PAGE,
					 self->buf + PAGE, 0, NULL));

	/* Writing through a read-only mapping. */
	ASSERT_EQ(0, ioas_alloc(self->fd, &ro_ioas));
	ASSERT_EQ(0, map_fixed(self->fd, ro_ioas, self->buf, PAGE, BASE_IOVA,
			       IOMMU_IOAS_MAP_READABLE));
	ASSERT_EQ(0, replace_ioas(self->fd, access, ro_ioas));
	EXPECT_ERRNO(EPERM, access_pages(self->fd, access, BASE_IOVA, PAGE,
					 NULL, MOCK_FLAGS_ACCESS_WRITE, NULL));
	ASSERT_EQ(0, access_pages(self->fd, access, BASE_IOVA, PAGE, self->buf,
				  0, NULL));

	/* An access that only copies cannot pin. */
	copier = create_access(self->fd, self->ioas_id, 0);
	ASSERT_LE(0, copier);
	EXPECT_ERRNO(EOPNOTSUPP, access_pages(self->fd, copier, BASE_IOVA,
					      PAGE, NULL, 0, NULL));
	close(copier);
	EXPECT_EQ(0, check_refs(self->fd, self->buf + PAGE, 3 * PAGE, 0));
	EXPECT_EQ(0, check_refs(self->fd, self->buf, PAGE, 1));
	close(access);
	EXPECT_EQ(0, check_refs(self->fd, self->buf, PAGE, 0));
}

/* Unmapping pinned IOVA makes the access unpin; the IOAS waits for it. */
TEST_F(pages, unmap_takes_the_pins_back)
{
	__u32 item;
	int access;

	ASSERT_EQ(0, map_fixed(self->fd, self->ioas_id, self->buf, self->len,
			       BASE_IOVA, RW));
	access = create_access(self->fd, self->ioas_id,
			       MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES);
	ASSERT_LE(0, access);
	ASSERT_EQ(0, access_pages(self->fd, access, BASE_IOVA, self->len,
				  self->buf, MOCK_FLAGS_ACCESS_WRITE, &item));
	EXPECT_EQ(0, check_refs(self->fd, self->buf, self->len, 1));

	/* The access holds a use of its IOAS. */
	EXPECT_ERRNO(EBUSY, destroy(self->fd, self->ioas_id));

	ASSERT_EQ(0, unmap(self->fd, self->ioas_id, 0, UINT64_MAX, NULL));
	EXPECT_ERRNO(ENOENT, destroy_item(self->fd, access, item));
	EXPECT_EQ(0, check_refs(self->fd, self->buf, self->len, 0));
	EXPECT_EQ(0, status_kb("VmPin"));

	close(access);
	ASSERT_EQ(0, destroy(self->fd, self->ioas_id));
}

/* Moving an access to another IOAS first unpins what it held. */
TEST_F(pages, replace_ioas_unpins)
{
	__u32 other, item;
	int access;

	ASSERT_EQ(0, ioas_alloc(self->fd, &other));
	ASSERT_EQ(0, map_fixed(self->fd, self->ioas_id, self->buf, self->len,
			       BASE_IOVA, RW));
	access = create_access(self->fd, self->ioas_id,
			       MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES);
	ASSERT_LE(0, access);
	ASSERT_EQ(0, access_pages(self->fd, access, BASE_IOVA, PAGE, self->buf,
				  0, &item));
	EXPECT_ERRNO(ENOENT, replace_ioas(self->fd, access, other + 1));
	EXPECT_EQ(0, check_refs(self->fd, self->buf, PAGE, 1));

	ASSERT_EQ(0, replace_ioas(self->fd, access, other));
	EXPECT_EQ(0, check_refs(self->fd, self->buf, PAGE, 0));
	EXPECT_ERRNO(ENOENT, destroy_item(self->fd, access, item));
	/* Nothing is mapped in the new IOAS; the old one is free again. */
	EXPECT_ERRNO(ENOENT, access_pages(self->fd, access, BASE_IOVA, PAGE,
					  NULL, 0, NULL));
	ASSERT_EQ(0, unmap(self->fd, self->ioas_id, 0, UINT64_MAX, NULL));
	ASSERT_EQ(0, destroy(self->fd, self->ioas_id));
	EXPECT_ERRNO(EBUSY, destroy(self->fd, other));
	close(access);
}

/* Copies through an access, across pages and areas, at any alignment. */
TEST_F(pages, rw_across_areas)
{
	uint8_t tmp[3 * PAGE];
	int access;
	size_t i;

	for (i = 0; i != self->len; i++)
		self->buf[i] = i * 7;
	/* Two areas back to back, the second from further into the buffer. */
	ASSERT_EQ(0, map_fixed(self->fd, self->ioas_id, self->buf, 2 * PAGE,
			       BASE_IOVA, RW));
	ASSERT_EQ(0, map_fixed(self->fd, self->ioas_id, self->buf + 8 * PAGE,
			       2 * PAGE, BASE_IOVA + 2 * PAGE, RW));
	access = create_access(self->fd, self->ioas_id, 0);
	ASSERT_LE(0, access);

	ASSERT_EQ(0, access_rw(self->fd, access, BASE_IOVA + 100, tmp,
			       3 * PAGE, 0));
	EXPECT_EQ(0, memcmp(tmp, self->buf + 100, 2 * PAGE - 100));
	EXPECT_EQ(0, memcmp(tmp + 2 * PAGE - 100, self->buf + 8 * PAGE,
			    PAGE + 100));

	memset(tmp, 0xa5, sizeof(tmp));
	ASSERT_EQ(0, access_rw(self->fd, access, BASE_IOVA + 2 * PAGE - 10,
			       tmp, 20, MOCK_ACCESS_RW_WRITE));
	EXPECT_EQ(0, memcmp(self->buf + 2 * PAGE - 10, tmp, 10));
	EXPECT_EQ(0, memcmp(self->buf + 8 * PAGE, tmp, 10));

	/* The copy pins nothing for longer than it runs. */
	EXPECT_EQ(0, check_refs(self->fd, self->buf, self->len, 0));
	EXPECT_EQ(0, status_kb("VmPin"));

	/* Past the end, empty, unknown flags. */
	EXPECT_ERRNO(ENOENT, access_rw(self->fd, access, BASE_IOVA + 3 * PAGE,
				       tmp, 2 * PAGE, 0));
	EXPECT_ERRNO(EINVAL, access_rw(self->fd, access, BASE_IOVA, tmp, 0, 0));
	EXPECT_ERRNO(EOPNOTSUPP, access_rw(self->fd, access, BASE_IOVA, tmp,
					   1, 2));
	close(access);
}

/*
 * Without CAP_IPC_LOCK pins are charged against RLIMIT_MEMLOCK: beyond it
 * the pin fails with ENOMEM and leaves nothing charged.  In the VFIO
 * compatible mode the charge shows in the process's VmLck.
 */
static void rlimit_child(struct __test_metadata *_metadata, int mm_mode)
{
	struct __user_cap_header_struct hdr = {
		.version = _LINUX_CAPABILITY_VERSION_3,
	};
	struct __user_cap_data_struct data[2] = {};
	struct rlimit lim = { 4 * PAGE, 4 * PAGE };
	struct iommu_option opt = {
		.size = sizeof(opt),
		.option_id = IOMMU_OPTION_RLIMIT_MODE,
		.op = IOMMU_OPTION_OP_SET,
		.val64 = mm_mode,
	};
	uint8_t *buf;
	__u32 ioas_id, item;
	int fd, access;

	buf = mmap(NULL, 8 * PAGE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	ASSERT_NE(MAP_FAILED, buf);
	fd = open("/dev/iommu", O_RDWR);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, ioctl(fd, IOMMU_OPTION, &opt));
	ASSERT_EQ(0, setrlimit(RLIMIT_MEMLOCK, &lim));
	/* Keep everything but CAP_IPC_LOCK. */
	ASSERT_EQ(0, syscall(SYS_capget, &hdr, data));
	data[0].effective &= ~(1U << CAP_IPC_LOCK);
	data[0].permitted &= ~(1U << CAP_IPC_LOCK);
	ASSERT_EQ(0, syscall(SYS_capset, &hdr, data));

	ASSERT_EQ(0, ioas_alloc(fd, &ioas_id));
	ASSERT_EQ(0, map_fixed(fd, ioas_id, buf, 8 * PAGE, BASE_IOVA, RW));
	access = create_access(fd, ioas_id,
			       MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES);
	ASSERT_LE(0, access);

	EXPECT_ERRNO(ENOMEM, access_pages(fd, access, BASE_IOVA, 5 * PAGE, buf,
					  0, NULL));
	EXPECT_EQ(0, status_kb("VmPin"));
	EXPECT_EQ(0, status_kb("VmLck"));
	EXPECT_EQ(0, check_refs(fd, buf, 8 * PAGE, 0));

	ASSERT_EQ(0, access_pages(fd, access, BASE_IOVA, 4 * PAGE, buf, 0,
				  &item));
	EXPECT_EQ(16, status_kb("VmPin"));
	EXPECT_EQ(mm_mode ? 16 : 0, status_kb("VmLck"));
	/* The same pages again cost nothing more. */
	ASSERT_EQ(0, access_pages(fd, access, BASE_IOVA, 4 * PAGE, buf, 0,
				  NULL));
	EXPECT_ERRNO(ENOMEM, access_pages(fd, access, BASE_IOVA + 4 * PAGE,
					  PAGE, buf + 4 * PAGE, 0, NULL));
	close(access);
	EXPECT_EQ(0, status_kb("VmPin"));
	EXPECT_EQ(0, status_kb("VmLck"));
	close(fd);
}

static void run_rlimit(struct __test_metadata *_metadata, int mm_mode)
{
	int status;
	pid_t child = fork();

	ASSERT_NE(-1, child);
	if (!child) {
		rlimit_child(_metadata, mm_mode);
		_exit(_metadata->exit_code ? 1 : 0);
	}
	ASSERT_EQ(child, waitpid(child, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status));
}

TEST(rlimit_user)
{
	run_rlimit(_metadata, 0);
}

TEST(rlimit_mm)
{
	run_rlimit(_metadata, 1);
}

TEST_HARNESS_MAIN
