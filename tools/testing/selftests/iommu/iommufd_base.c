// SPDX-License-Identifier: GPL-2.0
/*
 * The base of the /dev/iommu uAPI: the rules every command follows
 * (extensible structures, flags, unknown commands), the object IDs, and the
 * IOAS commands that need no memory.  Every test asserts upstream behaviour,
 * so the suite passes on the stock C iommufd as well as on ours.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/capability.h>
#include <linux/iommufd.h>
#include <linux/vfio.h>

#include "kselftest_harness.h"
#include "iommufd_rs_utils.h"

#define offsetofend(t, m) (offsetof(t, m) + sizeof(((t *)0)->m))

FIXTURE(base)
{
	int fd;
};

FIXTURE_SETUP(base)
{
	self->fd = open("/dev/iommu", O_RDWR);
	ASSERT_LE(0, self->fd);
}

FIXTURE_TEARDOWN(base)
{
	close(self->fd);
}

/* /dev/iommu is a misc device node for root and its group. */
TEST(device_node)
{
	struct stat st;

	ASSERT_EQ(0, stat("/dev/iommu", &st));
	EXPECT_TRUE(S_ISCHR(st.st_mode));
	EXPECT_EQ(10, major(st.st_rdev));
	EXPECT_EQ(0660, st.st_mode & 07777);
}

/* Command numbers outside the table, or a known number with other bits. */
TEST_F(base, unknown_commands)
{
	struct iommu_destroy cmd = { .size = sizeof(cmd) };

	EXPECT_ERRNO(ENOTTY, ioctl(self->fd, _IO(IOMMUFD_TYPE, 0x7f), &cmd));
	EXPECT_ERRNO(ENOTTY, ioctl(self->fd, _IO(IOMMUFD_TYPE, 0xff), &cmd));
	EXPECT_ERRNO(ENOTTY, ioctl(self->fd,
				   _IOW(IOMMUFD_TYPE, IOMMUFD_CMD_DESTROY, __u32),
				   &cmd));
}

TEST_F(base, bad_pointer)
{
	EXPECT_ERRNO(EFAULT, ioctl(self->fd, IOMMU_DESTROY, NULL));
	EXPECT_ERRNO(EFAULT, ioctl(self->fd, IOMMU_IOAS_ALLOC, (void *)8));
}

/*
 * The extensible-struct rules on a command with a flags word and an output:
 * shorter than the mandatory part fails, a longer structure with a zero tail
 * works, a non-zero tail is E2BIG, and unknown flags are EOPNOTSUPP.
 */
TEST_F(base, extensible_struct)
{
	struct {
		struct iommu_ioas_alloc cmd;
		__u8 tail[13];
	} buf;

	memset(&buf, 0, sizeof(buf));
	buf.cmd.size = offsetofend(struct iommu_ioas_alloc, out_ioas_id) - 1;
	EXPECT_ERRNO(EINVAL, ioctl(self->fd, IOMMU_IOAS_ALLOC, &buf));

	buf.cmd.size = sizeof(buf);
	ASSERT_EQ(0, ioctl(self->fd, IOMMU_IOAS_ALLOC, &buf));
	EXPECT_NE(0, buf.cmd.out_ioas_id);
	EXPECT_EQ(0, destroy(self->fd, buf.cmd.out_ioas_id));

	buf.tail[12] = 1;
	EXPECT_ERRNO(E2BIG, ioctl(self->fd, IOMMU_IOAS_ALLOC, &buf));
	buf.tail[12] = 0;

	buf.cmd.flags = 1;
	EXPECT_ERRNO(EOPNOTSUPP, ioctl(self->fd, IOMMU_IOAS_ALLOC, &buf));
	buf.cmd.flags = 1u << 31;
	EXPECT_ERRNO(EOPNOTSUPP, ioctl(self->fd, IOMMU_IOAS_ALLOC, &buf));
}

/* The answer is written back no further than the caller's size. */
TEST_F(base, respond_stays_within_size)
{
	struct {
		struct iommu_ioas_iova_ranges cmd;
		__u64 canary;
	} buf;
	__u32 id;

	ASSERT_EQ(0, ioas_alloc(self->fd, &id));
	memset(&buf, 0, sizeof(buf));
	buf.cmd.size = sizeof(buf.cmd);
	buf.cmd.ioas_id = id;
	buf.canary = 0;
	EXPECT_ERRNO(EMSGSIZE, ioctl(self->fd, IOMMU_IOAS_IOVA_RANGES, &buf));
	EXPECT_EQ(1, buf.cmd.num_iovas);
	EXPECT_EQ(0, buf.canary);
}

TEST_F(base, ids)
{
	__u32 a, b, c, d;

	ASSERT_EQ(0, ioas_alloc(self->fd, &a));
	ASSERT_EQ(0, ioas_alloc(self->fd, &b));
	ASSERT_EQ(0, ioas_alloc(self->fd, &c));
	EXPECT_NE(0, a);
	EXPECT_NE(a, b);
	EXPECT_NE(b, c);
	EXPECT_NE(a, c);

	EXPECT_ERRNO(ENOENT, destroy(self->fd, 0));
	EXPECT_EQ(0, destroy(self->fd, b));
	EXPECT_ERRNO(ENOENT, destroy(self->fd, b));

	/* The freed ID is the lowest free one and is handed out again. */
	ASSERT_EQ(0, ioas_alloc(self->fd, &d));
	EXPECT_EQ(b, d);

	EXPECT_ERRNO(ENOENT, destroy(self->fd, UINT32_MAX));
	EXPECT_ERRNO(ENOENT, destroy(self->fd, c + 1000));
}

/* Objects belong to the context that made them. */
TEST_F(base, ids_are_per_context)
{
	int other = open("/dev/iommu", O_RDWR);
	__u32 id;

	ASSERT_LE(0, other);
	ASSERT_EQ(0, ioas_alloc(self->fd, &id));
	EXPECT_ERRNO(ENOENT, destroy(other, id));
	EXPECT_EQ(0, destroy(self->fd, id));
	close(other);
}

/* Closing a context with live objects destroys them. */
TEST_F(base, close_with_objects)
{
	int i, fd = open("/dev/iommu", O_RDWR);
	__u32 id;

	ASSERT_LE(0, fd);
	for (i = 0; i < 1000; i++)
		ASSERT_EQ(0, ioas_alloc(fd, &id));
	EXPECT_EQ(0, close(fd));
}

/*
 * A command whose answer cannot be written back creates nothing: the ID it
 * would have returned is still free afterwards.
 */
TEST_F(base, alloc_copy_out_fails)
{
	struct iommu_ioas_alloc *ro;
	__u32 id, next;

	ASSERT_EQ(0, ioas_alloc(self->fd, &id));
	ro = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
		  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, ro);
	ro->size = sizeof(*ro);
	ASSERT_EQ(0, mprotect(ro, 4096, PROT_READ));
	EXPECT_ERRNO(EFAULT, ioctl(self->fd, IOMMU_IOAS_ALLOC, ro));
	munmap(ro, 4096);

	EXPECT_ERRNO(ENOENT, destroy(self->fd, id + 1));
	ASSERT_EQ(0, ioas_alloc(self->fd, &next));
	EXPECT_EQ(id + 1, next);
}

TEST_F(base, iova_ranges)
{
	struct iommu_iova_range ranges[2];
	struct iommu_ioas_iova_ranges cmd = {
		.size = sizeof(cmd),
		.num_iovas = 2,
		.allowed_iovas = (uintptr_t)ranges,
	};
	__u32 id;

	ASSERT_EQ(0, ioas_alloc(self->fd, &id));

	/* No domain, no reservation: the whole IOVA space, any alignment. */
	memset(ranges, 0xa5, sizeof(ranges));
	cmd.ioas_id = id;
	ASSERT_EQ(0, ioctl(self->fd, IOMMU_IOAS_IOVA_RANGES, &cmd));
	EXPECT_EQ(1, cmd.num_iovas);
	EXPECT_EQ(1, cmd.out_iova_alignment);
	EXPECT_EQ(0, ranges[0].start);
	EXPECT_EQ(UINT64_MAX, ranges[0].last);
	/* Only the ranges reported are written. */
	EXPECT_EQ(0xa5a5a5a5a5a5a5a5ULL, ranges[1].start);

	/* Too small an array: the count comes back with EMSGSIZE. */
	cmd.num_iovas = 0;
	cmd.out_iova_alignment = 0;
	EXPECT_ERRNO(EMSGSIZE, ioctl(self->fd, IOMMU_IOAS_IOVA_RANGES, &cmd));
	EXPECT_EQ(1, cmd.num_iovas);
	EXPECT_EQ(1, cmd.out_iova_alignment);

	/* A bad array pointer with room in it. */
	cmd.num_iovas = 1;
	cmd.allowed_iovas = 8;
	EXPECT_ERRNO(EFAULT, ioctl(self->fd, IOMMU_IOAS_IOVA_RANGES, &cmd));
	cmd.allowed_iovas = (uintptr_t)ranges;

	cmd.__reserved = 1;
	EXPECT_ERRNO(EOPNOTSUPP, ioctl(self->fd, IOMMU_IOAS_IOVA_RANGES, &cmd));
	cmd.__reserved = 0;

	cmd.ioas_id = id + 1;
	EXPECT_ERRNO(ENOENT, ioctl(self->fd, IOMMU_IOAS_IOVA_RANGES, &cmd));
	cmd.ioas_id = 0;
	EXPECT_ERRNO(ENOENT, ioctl(self->fd, IOMMU_IOAS_IOVA_RANGES, &cmd));
}

/* Every command of the table applies the size rules before anything else. */
TEST_F(base, every_command_checks_its_size)
{
#define SHORT(_struct, _ioctl, _last)                                        \
	do {                                                                 \
		struct {                                                     \
			struct _struct cmd;                                  \
			__u8 extra;                                          \
		} buf;                                                       \
		memset(&buf, 0, sizeof(buf));                                \
		buf.cmd.size = offsetofend(struct _struct, _last) - 1;       \
		EXPECT_ERRNO(EINVAL, ioctl(self->fd, _ioctl, &buf));         \
		buf.cmd.size = sizeof(buf.cmd) + 1;                          \
		buf.extra = 1;                                               \
		EXPECT_ERRNO(E2BIG, ioctl(self->fd, _ioctl, &buf));          \
	} while (0)

	SHORT(iommu_destroy, IOMMU_DESTROY, id);
	SHORT(iommu_ioas_alloc, IOMMU_IOAS_ALLOC, out_ioas_id);
	SHORT(iommu_ioas_allow_iovas, IOMMU_IOAS_ALLOW_IOVAS, allowed_iovas);
	SHORT(iommu_ioas_copy, IOMMU_IOAS_COPY, src_iova);
	SHORT(iommu_ioas_iova_ranges, IOMMU_IOAS_IOVA_RANGES, out_iova_alignment);
	SHORT(iommu_ioas_map, IOMMU_IOAS_MAP, iova);
	SHORT(iommu_ioas_unmap, IOMMU_IOAS_UNMAP, length);
	SHORT(iommu_option, IOMMU_OPTION, val64);
	SHORT(iommu_vfio_ioas, IOMMU_VFIO_IOAS, __reserved);
	SHORT(iommu_hwpt_alloc, IOMMU_HWPT_ALLOC, __reserved);
	SHORT(iommu_hw_info, IOMMU_GET_HW_INFO, __reserved);
	SHORT(iommu_hwpt_set_dirty_tracking, IOMMU_HWPT_SET_DIRTY_TRACKING,
	      __reserved);
	SHORT(iommu_hwpt_get_dirty_bitmap, IOMMU_HWPT_GET_DIRTY_BITMAP, data);
	SHORT(iommu_hwpt_invalidate, IOMMU_HWPT_INVALIDATE, __reserved);
	SHORT(iommu_fault_alloc, IOMMU_FAULT_QUEUE_ALLOC, out_fault_fd);
	SHORT(iommu_ioas_map_file, IOMMU_IOAS_MAP_FILE, iova);
	SHORT(iommu_viommu_alloc, IOMMU_VIOMMU_ALLOC, out_viommu_id);
	SHORT(iommu_vdevice_alloc, IOMMU_VDEVICE_ALLOC, virt_id);
	SHORT(iommu_ioas_change_process, IOMMU_IOAS_CHANGE_PROCESS, __reserved);
	SHORT(iommu_veventq_alloc, IOMMU_VEVENTQ_ALLOC, out_veventq_fd);
	SHORT(iommu_hw_queue_alloc, IOMMU_HW_QUEUE_ALLOC, length);
	SHORT(iommu_ioas_noiommu_get_pa, IOMMU_IOAS_NOIOMMU_GET_PA, out_phys);
#undef SHORT
}

static int option(int fd, __u32 option_id, __u16 op, __u32 object_id,
		  __u64 *val64)
{
	struct iommu_option cmd = {
		.size = sizeof(cmd),
		.option_id = option_id,
		.op = op,
		.object_id = object_id,
		.val64 = *val64,
	};
	int rc = ioctl(fd, IOMMU_OPTION, &cmd);

	*val64 = cmd.val64;
	return rc;
}

/* The IOAS's IOMMU_OPTION_HUGE_PAGES, or -1 if it cannot be read. */
static long huge_pages(int fd, __u32 ioas_id)
{
	__u64 val = 7;

	if (option(fd, IOMMU_OPTION_HUGE_PAGES, IOMMU_OPTION_OP_GET, ioas_id,
		   &val))
		return -1;
	return val;
}

TEST_F(base, option_rlimit_mode)
{
	struct iommu_option cmd = {
		.size = sizeof(cmd),
		.option_id = IOMMU_OPTION_RLIMIT_MODE,
		.op = IOMMU_OPTION_OP_GET,
	};
	__u64 val = 7;
	__u32 id;

	/* /dev/iommu charges the user by default. */
	ASSERT_EQ(0, option(self->fd, IOMMU_OPTION_RLIMIT_MODE,
			    IOMMU_OPTION_OP_GET, 0, &val));
	EXPECT_EQ(0, val);

	val = 1;
	ASSERT_EQ(0, option(self->fd, IOMMU_OPTION_RLIMIT_MODE,
			    IOMMU_OPTION_OP_SET, 0, &val));
	val = 2;
	EXPECT_ERRNO(EINVAL, option(self->fd, IOMMU_OPTION_RLIMIT_MODE,
				    IOMMU_OPTION_OP_SET, 0, &val));
	ASSERT_EQ(0, option(self->fd, IOMMU_OPTION_RLIMIT_MODE,
			    IOMMU_OPTION_OP_GET, 0, &val));
	EXPECT_EQ(1, val);

	/* The mode is global: no object ID, and no object may exist. */
	EXPECT_ERRNO(EOPNOTSUPP, option(self->fd, IOMMU_OPTION_RLIMIT_MODE,
					IOMMU_OPTION_OP_GET, 1, &val));
	ASSERT_EQ(0, ioas_alloc(self->fd, &id));
	val = 0;
	EXPECT_ERRNO(EBUSY, option(self->fd, IOMMU_OPTION_RLIMIT_MODE,
				   IOMMU_OPTION_OP_SET, 0, &val));
	ASSERT_EQ(0, destroy(self->fd, id));
	ASSERT_EQ(0, option(self->fd, IOMMU_OPTION_RLIMIT_MODE,
			    IOMMU_OPTION_OP_SET, 0, &val));

	/* Unknown option, operation and reserved bits. */
	EXPECT_ERRNO(EOPNOTSUPP, option(self->fd, 1000, IOMMU_OPTION_OP_GET,
					0, &val));
	EXPECT_ERRNO(EOPNOTSUPP, option(self->fd, IOMMU_OPTION_RLIMIT_MODE,
					7, 0, &val));
	cmd.__reserved = 1;
	EXPECT_ERRNO(EOPNOTSUPP, ioctl(self->fd, IOMMU_OPTION, &cmd));
}

/* Changing the accounting needs CAP_SYS_RESOURCE; reading it does not. */
TEST_F(base, option_rlimit_mode_needs_cap)
{
	pid_t child = fork();
	int status;

	ASSERT_NE(-1, child);
	if (!child) {
		struct __user_cap_header_struct hdr = {
			.version = _LINUX_CAPABILITY_VERSION_3,
		};
		struct __user_cap_data_struct data[2] = {};
		__u64 val = 1;

		if (syscall(SYS_capset, &hdr, data))
			_exit(10);
		if (!option(self->fd, IOMMU_OPTION_RLIMIT_MODE,
			    IOMMU_OPTION_OP_SET, 0, &val) || errno != EPERM)
			_exit(11);
		if (option(self->fd, IOMMU_OPTION_RLIMIT_MODE,
			   IOMMU_OPTION_OP_GET, 0, &val) || val != 0)
			_exit(12);
		_exit(0);
	}
	ASSERT_EQ(child, waitpid(child, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status));
}

TEST_F(base, option_huge_pages)
{
	__u64 val = 7;
	__u32 id;

	EXPECT_ERRNO(ENOENT, option(self->fd, IOMMU_OPTION_HUGE_PAGES,
				    IOMMU_OPTION_OP_GET, 0, &val));
	ASSERT_EQ(0, ioas_alloc(self->fd, &id));
	EXPECT_ERRNO(ENOENT, option(self->fd, IOMMU_OPTION_HUGE_PAGES,
				    IOMMU_OPTION_OP_GET, id + 1, &val));

	/* An IOAS starts with huge pages allowed. */
	EXPECT_EQ(1, huge_pages(self->fd, id));
	val = 0;
	ASSERT_EQ(0, option(self->fd, IOMMU_OPTION_HUGE_PAGES,
			    IOMMU_OPTION_OP_SET, id, &val));
	EXPECT_EQ(0, huge_pages(self->fd, id));
	val = 2;
	EXPECT_ERRNO(EINVAL, option(self->fd, IOMMU_OPTION_HUGE_PAGES,
				    IOMMU_OPTION_OP_SET, id, &val));
	EXPECT_ERRNO(EOPNOTSUPP, option(self->fd, IOMMU_OPTION_HUGE_PAGES,
					7, id, &val));
	val = 1;
	ASSERT_EQ(0, option(self->fd, IOMMU_OPTION_HUGE_PAGES,
			    IOMMU_OPTION_OP_SET, id, &val));
	EXPECT_EQ(1, huge_pages(self->fd, id));
}

/* The compat IOAS is forgotten when that IOAS is destroyed. */
TEST_F(base, vfio_ioas_follows_destroy)
{
	struct iommu_vfio_ioas cmd = {
		.size = sizeof(cmd),
		.op = IOMMU_VFIO_IOAS_SET,
	};
	__u32 a, b;

	ASSERT_EQ(0, ioas_alloc(self->fd, &a));
	ASSERT_EQ(0, ioas_alloc(self->fd, &b));
	cmd.ioas_id = a;
	ASSERT_EQ(0, ioctl(self->fd, IOMMU_VFIO_IOAS, &cmd));
	cmd.ioas_id = b;
	ASSERT_EQ(0, ioctl(self->fd, IOMMU_VFIO_IOAS, &cmd));

	cmd.op = IOMMU_VFIO_IOAS_GET;
	cmd.ioas_id = 0;
	ASSERT_EQ(0, ioctl(self->fd, IOMMU_VFIO_IOAS, &cmd));
	EXPECT_EQ(b, cmd.ioas_id);

	/* Destroying another IOAS leaves it alone. */
	ASSERT_EQ(0, destroy(self->fd, a));
	ASSERT_EQ(0, ioctl(self->fd, IOMMU_VFIO_IOAS, &cmd));
	EXPECT_EQ(b, cmd.ioas_id);

	ASSERT_EQ(0, destroy(self->fd, b));
	EXPECT_ERRNO(ENODEV, ioctl(self->fd, IOMMU_VFIO_IOAS, &cmd));

	cmd.op = 7;
	EXPECT_ERRNO(EOPNOTSUPP, ioctl(self->fd, IOMMU_VFIO_IOAS, &cmd));
	cmd.op = IOMMU_VFIO_IOAS_GET;
	cmd.__reserved = 1;
	EXPECT_ERRNO(EOPNOTSUPP, ioctl(self->fd, IOMMU_VFIO_IOAS, &cmd));
}

static int set_compat_ioas(int fd, __u32 *id)
{
	struct iommu_vfio_ioas cmd = {
		.size = sizeof(cmd),
		.op = IOMMU_VFIO_IOAS_SET,
	};
	int rc = ioas_alloc(fd, id);

	if (rc)
		return rc;
	cmd.ioas_id = *id;
	return ioctl(fd, IOMMU_VFIO_IOAS, &cmd);
}

/* The VFIO type1 container ioctls, without and with a compat IOAS. */
TEST_F(base, vfio_type1_basics)
{
	__u32 id;

	EXPECT_EQ(VFIO_API_VERSION, ioctl(self->fd, VFIO_GET_API_VERSION));
	EXPECT_EQ(1, ioctl(self->fd, VFIO_CHECK_EXTENSION, VFIO_TYPE1_IOMMU));
	EXPECT_EQ(1, ioctl(self->fd, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU));
	EXPECT_EQ(1, ioctl(self->fd, VFIO_CHECK_EXTENSION, VFIO_UNMAP_ALL));
	EXPECT_EQ(0, ioctl(self->fd, VFIO_CHECK_EXTENSION, VFIO_UPDATE_VADDR));
	EXPECT_EQ(0, ioctl(self->fd, VFIO_CHECK_EXTENSION, 1000));
	/* Cache coherency is a property of the compat IOAS's domains. */
	EXPECT_ERRNO(ENODEV, ioctl(self->fd, VFIO_CHECK_EXTENSION,
				   VFIO_DMA_CC_IOMMU));
	EXPECT_ERRNO(EINVAL, ioctl(self->fd, VFIO_SET_IOMMU, 1000));
	EXPECT_ERRNO(ENODEV, ioctl(self->fd, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU));
	/* Not a VFIO container ioctl. */
	EXPECT_ERRNO(ENOTTY, ioctl(self->fd, _IO(VFIO_TYPE, VFIO_BASE + 3)));

	ASSERT_EQ(0, set_compat_ioas(self->fd, &id));
	EXPECT_EQ(1, ioctl(self->fd, VFIO_CHECK_EXTENSION, VFIO_DMA_CC_IOMMU));
	ASSERT_EQ(0, ioctl(self->fd, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU));
	EXPECT_EQ(1, huge_pages(self->fd, id));
	/* Type1 may unmap inside a mapping: no huge IOPTEs for it. */
	ASSERT_EQ(0, ioctl(self->fd, VFIO_SET_IOMMU, VFIO_TYPE1_IOMMU));
	EXPECT_EQ(0, huge_pages(self->fd, id));
}

TEST_F(base, vfio_type1_map_unmap_args)
{
	struct vfio_iommu_type1_dma_map map = {
		.argsz = sizeof(map),
		.flags = VFIO_DMA_MAP_FLAG_READ,
		.size = 4096,
	};
	struct vfio_iommu_type1_dma_unmap unmap = {
		.argsz = sizeof(unmap),
		.size = 4096,
	};

	EXPECT_ERRNO(EFAULT, ioctl(self->fd, VFIO_IOMMU_MAP_DMA, NULL));
	EXPECT_ERRNO(EFAULT, ioctl(self->fd, VFIO_IOMMU_UNMAP_DMA, NULL));
	map.argsz = offsetofend(struct vfio_iommu_type1_dma_map, size) - 1;
	EXPECT_ERRNO(EINVAL, ioctl(self->fd, VFIO_IOMMU_MAP_DMA, &map));
	map.argsz = sizeof(map);
	map.flags = 1 << 2;
	EXPECT_ERRNO(EINVAL, ioctl(self->fd, VFIO_IOMMU_MAP_DMA, &map));
	map.flags = VFIO_DMA_MAP_FLAG_READ;
	EXPECT_ERRNO(ENODEV, ioctl(self->fd, VFIO_IOMMU_MAP_DMA, &map));

	unmap.argsz = 8;
	EXPECT_ERRNO(EINVAL, ioctl(self->fd, VFIO_IOMMU_UNMAP_DMA, &unmap));
	unmap.argsz = sizeof(unmap);
	unmap.flags = 1;
	EXPECT_ERRNO(EINVAL, ioctl(self->fd, VFIO_IOMMU_UNMAP_DMA, &unmap));
	unmap.flags = VFIO_DMA_UNMAP_FLAG_ALL;
	EXPECT_ERRNO(ENODEV, ioctl(self->fd, VFIO_IOMMU_UNMAP_DMA, &unmap));
}

TEST_F(base, vfio_type1_get_info)
{
	struct {
		struct vfio_iommu_type1_info info;
		struct vfio_iommu_type1_info_dma_avail dma;
		__u32 pad;
		struct vfio_iommu_type1_info_cap_iova_range iova;
		struct vfio_iova_range ranges[2];
	} buf;
	size_t total = offsetof(typeof(buf), ranges[1]);
	__u32 id;

	SKIP_WITHOUT_TEST_CMD(self->fd);
	memset(&buf, 0, sizeof(buf));
	buf.info.argsz = 8;
	EXPECT_ERRNO(EINVAL, ioctl(self->fd, VFIO_IOMMU_GET_INFO, &buf));
	buf.info.argsz = sizeof(buf.info);
	EXPECT_ERRNO(ENODEV, ioctl(self->fd, VFIO_IOMMU_GET_INFO, &buf));

	ASSERT_EQ(0, set_compat_ioas(self->fd, &id));

	/* Room for the structure only: argsz says how much is needed. */
	ASSERT_EQ(0, ioctl(self->fd, VFIO_IOMMU_GET_INFO, &buf));
	EXPECT_EQ(total, buf.info.argsz);
	EXPECT_EQ(VFIO_IOMMU_INFO_PGSIZES | VFIO_IOMMU_INFO_CAPS,
		  buf.info.flags);
	EXPECT_EQ(0, buf.info.cap_offset);
	/* Nothing attached: every page size from PAGE_SIZE up. */
	EXPECT_EQ(~(__u64)(getpagesize() - 1), buf.info.iova_pgsizes);
	EXPECT_EQ(0, buf.dma.header.id);

	/* Room for everything: the capability chain. */
	memset(&buf, 0xa5, sizeof(buf));
	buf.info.argsz = sizeof(buf);
	ASSERT_EQ(0, ioctl(self->fd, VFIO_IOMMU_GET_INFO, &buf));
	EXPECT_EQ(total, buf.info.argsz);
	EXPECT_EQ(sizeof(buf.info), buf.info.cap_offset);
	EXPECT_EQ(VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, buf.dma.header.id);
	EXPECT_EQ(1, buf.dma.header.version);
	EXPECT_EQ(offsetof(typeof(buf), iova), buf.dma.header.next);
	EXPECT_EQ(UINT32_MAX, buf.dma.avail);
	EXPECT_EQ(VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, buf.iova.header.id);
	EXPECT_EQ(1, buf.iova.header.version);
	EXPECT_EQ(0, buf.iova.header.next);
	EXPECT_EQ(1, buf.iova.nr_iovas);
	EXPECT_EQ(0, buf.ranges[0].start);
	EXPECT_EQ(UINT64_MAX, buf.ranges[0].end);
	/* Past the chain nothing is written. */
	EXPECT_EQ(0xa5a5a5a5a5a5a5a5ULL, buf.ranges[1].start);
}

static int add_reserved(int fd, __u32 ioas_id, __u64 start, __u64 length)
{
	struct iommu_test_cmd cmd = {
		.size = sizeof(cmd),
		.op = IOMMU_TEST_OP_ADD_RESERVED,
		.id = ioas_id,
		.add_reserved = { .start = start, .length = length },
	};

	return ioctl(fd, IOMMU_TEST_CMD, &cmd);
}

static int allow_iovas(int fd, __u32 ioas_id, struct iommu_iova_range *r,
		       __u32 n)
{
	struct iommu_ioas_allow_iovas cmd = {
		.size = sizeof(cmd),
		.ioas_id = ioas_id,
		.num_iovas = n,
		.allowed_iovas = (uintptr_t)r,
	};

	return ioctl(fd, IOMMU_IOAS_ALLOW_IOVAS, &cmd);
}

static int iova_ranges(int fd, __u32 ioas_id, struct iommu_iova_range *r,
		       __u32 *n)
{
	struct iommu_ioas_iova_ranges cmd = {
		.size = sizeof(cmd),
		.ioas_id = ioas_id,
		.num_iovas = *n,
		.allowed_iovas = (uintptr_t)r,
	};
	int rc = ioctl(fd, IOMMU_IOAS_IOVA_RANGES, &cmd);

	*n = cmd.num_iovas;
	return rc;
}

/* Reserved ranges are holes in the IOVA ranges; owners may overlap. */
TEST_F(base, reserved_ranges)
{
	struct iommu_iova_range r[4];
	__u32 id, n = 4;

	SKIP_WITHOUT_TEST_CMD(self->fd);
	ASSERT_EQ(0, ioas_alloc(self->fd, &id));
	EXPECT_ERRNO(EINVAL, add_reserved(self->fd, id, 0x1000, 0));
	EXPECT_ERRNO(EOVERFLOW, add_reserved(self->fd, id, 2, UINT64_MAX));
	EXPECT_ERRNO(ENOENT, add_reserved(self->fd, id + 1, 0x1000, 0x1000));

	ASSERT_EQ(0, add_reserved(self->fd, id, 0x1000, 0x1000));
	ASSERT_EQ(0, add_reserved(self->fd, id, 0x1800, 0x1000));
	ASSERT_EQ(0, add_reserved(self->fd, id, 0x1000, 0x800));
	ASSERT_EQ(0, add_reserved(self->fd, id, UINT64_MAX, 1));
	ASSERT_EQ(0, iova_ranges(self->fd, id, r, &n));
	ASSERT_EQ(2, n);
	EXPECT_EQ(0, r[0].start);
	EXPECT_EQ(0xfff, r[0].last);
	EXPECT_EQ(0x2800, r[1].start);
	EXPECT_EQ(UINT64_MAX - 1, r[1].last);

	/* Reserving everything leaves nothing usable. */
	ASSERT_EQ(0, add_reserved(self->fd, id, 0, UINT64_MAX));
	n = 4;
	ASSERT_EQ(0, iova_ranges(self->fd, id, r, &n));
	EXPECT_EQ(0, n);
}

TEST_F(base, allow_iovas)
{
	struct iommu_iova_range r[2] = {
		{ .start = 0x10000, .last = 0x1ffff },
		{ .start = 0x40000, .last = 0x4ffff },
	};
	struct iommu_ioas_allow_iovas cmd = { .size = sizeof(cmd) };
	__u32 id;

	SKIP_WITHOUT_TEST_CMD(self->fd);
	ASSERT_EQ(0, ioas_alloc(self->fd, &id));
	EXPECT_ERRNO(ENOENT, allow_iovas(self->fd, id + 1, r, 2));
	EXPECT_ERRNO(EFAULT, allow_iovas(self->fd, id, (void *)8, 1));
	cmd.ioas_id = id;
	cmd.__reserved = 1;
	EXPECT_ERRNO(EOPNOTSUPP, ioctl(self->fd, IOMMU_IOAS_ALLOW_IOVAS, &cmd));

	ASSERT_EQ(0, allow_iovas(self->fd, id, r, 2));

	/* An allowed range takes start < last and no overlap. */
	r[1].start = r[1].last;
	EXPECT_ERRNO(EINVAL, allow_iovas(self->fd, id, r, 2));
	r[1].start = 0x1f000;
	EXPECT_ERRNO(EINVAL, allow_iovas(self->fd, id, r, 2));
	r[1].start = 0x40000;

	/* Reserved and allowed ranges exclude each other. */
	EXPECT_ERRNO(EADDRINUSE, add_reserved(self->fd, id, 0x4f000, 0x2000));
	ASSERT_EQ(0, add_reserved(self->fd, id, 0x30000, 0x1000));
	r[1].start = 0x30000;
	EXPECT_ERRNO(EADDRINUSE, allow_iovas(self->fd, id, r, 2));
	/* ... and a failed update keeps the old ranges. */
	EXPECT_ERRNO(EADDRINUSE, add_reserved(self->fd, id, 0x10000, 0x1000));

	/* No range: allocation may use anything not reserved. */
	ASSERT_EQ(0, allow_iovas(self->fd, id, NULL, 0));
	ASSERT_EQ(0, add_reserved(self->fd, id, 0x10000, 0x1000));
}

TEST_F(base, temp_memory_limit)
{
	struct iommu_test_cmd cmd = {
		.size = sizeof(cmd),
		.op = IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT,
		.memory_limit = { .limit = 11 },
	};

	SKIP_WITHOUT_TEST_CMD(self->fd);
	EXPECT_ERRNO(EINVAL, ioctl(self->fd, IOMMU_TEST_CMD, &cmd));
	cmd.memory_limit.limit = 12;
	ASSERT_EQ(0, ioctl(self->fd, IOMMU_TEST_CMD, &cmd));
	cmd.memory_limit.limit = 65536;
	ASSERT_EQ(0, ioctl(self->fd, IOMMU_TEST_CMD, &cmd));
}

/*
 * An unmap that ends inside an area fails, but the areas it covered whole
 * before that one are gone.
 */
TEST_F(base, unmap_partial)
{
	void *buf = mmap(NULL, 0x4000, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	__u64 n;
	__u32 id;

	ASSERT_NE(MAP_FAILED, buf);
	ASSERT_EQ(0, ioas_alloc(self->fd, &id));
	ASSERT_EQ(0, map_fixed(self->fd, id, buf, 0x2000, 0x100000, RW));
	ASSERT_EQ(0, map_fixed(self->fd, id, buf, 0x2000, 0x102000, RW));
	EXPECT_ERRNO(ENOENT, unmap(self->fd, id, 0x100000, 0x3000, NULL));
	EXPECT_ERRNO(ENOENT, unmap(self->fd, id, 0x100000, 0x2000, NULL));
	ASSERT_EQ(0, unmap(self->fd, id, 0x100000, 0x4000, &n));
	EXPECT_EQ(0x2000, n);
	/* Nothing mapped: ENOENT, but unmap-all succeeds. */
	EXPECT_ERRNO(ENOENT, unmap(self->fd, id, 0x100000, 0x4000, NULL));
	ASSERT_EQ(0, unmap(self->fd, id, 0, UINT64_MAX, &n));
	EXPECT_EQ(0, n);
	EXPECT_ERRNO(EINVAL, unmap(self->fd, id, 0x100000, 0, NULL));
	EXPECT_ERRNO(EOVERFLOW, unmap(self->fd, id, UINT64_MAX, 1, NULL));
	munmap(buf, 0x4000);
}

/* Memory mapped read-only cannot be copied for device writes. */
TEST_F(base, copy_keeps_read_only)
{
	void *buf = mmap(NULL, 0x2000, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct iommu_ioas_copy copy = {
		.size = sizeof(copy),
		.flags = IOMMU_IOAS_MAP_FIXED_IOVA | RW,
		.length = 0x2000,
		.dst_iova = 0x200000,
		.src_iova = 0x100000,
	};
	__u32 src, dst;

	ASSERT_NE(MAP_FAILED, buf);
	ASSERT_EQ(0, ioas_alloc(self->fd, &src));
	ASSERT_EQ(0, ioas_alloc(self->fd, &dst));
	ASSERT_EQ(0, map_fixed(self->fd, src, buf, 0x2000, 0x100000,
			       IOMMU_IOAS_MAP_READABLE));
	copy.src_ioas_id = src;
	copy.dst_ioas_id = dst;
	EXPECT_ERRNO(EPERM, ioctl(self->fd, IOMMU_IOAS_COPY, &copy));
	copy.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE;
	ASSERT_EQ(0, ioctl(self->fd, IOMMU_IOAS_COPY, &copy));
	/* A hole in the source range. */
	copy.src_iova = 0x101000;
	copy.dst_iova = 0x300000;
	EXPECT_ERRNO(ENOENT, ioctl(self->fd, IOMMU_IOAS_COPY, &copy));
	munmap(buf, 0x2000);
}

static int dma_unmap(int fd, __u64 iova, __u64 size, __u32 flags, __u64 *done)
{
	struct vfio_iommu_type1_dma_unmap cmd = {
		.argsz = sizeof(cmd),
		.flags = flags,
		.iova = iova,
		.size = size,
	};
	int rc = ioctl(fd, VFIO_IOMMU_UNMAP_DMA, &cmd);

	*done = cmd.size;
	return rc;
}

/* Type1 maps at fixed IOVAs; v2 unmaps whole mappings, type1 may cut them. */
TEST_F(base, vfio_type1_map_unmap)
{
	void *buf = mmap(NULL, 0x4000, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct vfio_iommu_type1_dma_map map = {
		.argsz = sizeof(map),
		.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
		.vaddr = (uintptr_t)buf,
		.iova = 0x100000,
		.size = 0x4000,
	};
	__u64 done;
	__u32 id;

	ASSERT_NE(MAP_FAILED, buf);
	ASSERT_EQ(0, set_compat_ioas(self->fd, &id));
	ASSERT_EQ(0, ioctl(self->fd, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU));
	ASSERT_EQ(0, ioctl(self->fd, VFIO_IOMMU_MAP_DMA, &map));
	EXPECT_ERRNO(EEXIST, ioctl(self->fd, VFIO_IOMMU_MAP_DMA, &map));
	EXPECT_ERRNO(ENOENT, dma_unmap(self->fd, 0x101000, 0x1000, 0, &done));
	/* Nothing mapped there: success, nothing unmapped. */
	ASSERT_EQ(0, dma_unmap(self->fd, 0x200000, 0x1000, 0, &done));
	EXPECT_EQ(0, done);
	ASSERT_EQ(0, dma_unmap(self->fd, 0x100000, 0x4000, 0, &done));
	EXPECT_EQ(0x4000, done);

	ASSERT_EQ(0, ioctl(self->fd, VFIO_SET_IOMMU, VFIO_TYPE1_IOMMU));
	ASSERT_EQ(0, ioctl(self->fd, VFIO_IOMMU_MAP_DMA, &map));
	ASSERT_EQ(0, dma_unmap(self->fd, 0x101000, 0x2000, 0, &done));
	EXPECT_EQ(0x2000, done);
	EXPECT_ERRNO(EINVAL, dma_unmap(self->fd, 0x100000, 0x1000,
				       VFIO_DMA_UNMAP_FLAG_ALL, &done));
	ASSERT_EQ(0, dma_unmap(self->fd, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL, &done));
	EXPECT_EQ(0x2000, done);
	munmap(buf, 0x4000);
}

TEST_HARNESS_MAIN
