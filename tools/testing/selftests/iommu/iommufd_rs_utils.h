/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by our selftests: thin wrappers of the ioctls that return
 * the ioctl's result (-1 and errno on failure), and the process's pin and
 * lock counters.
 */
#ifndef IOMMUFD_RS_UTILS_H
#define IOMMUFD_RS_UTILS_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/iommufd.h>

#include "iommufd_test.h"

#define EXPECT_ERRNO(expected, cmd)                \
	({                                         \
		ASSERT_EQ(-1, cmd);                \
		EXPECT_EQ(expected, errno);        \
	})

#define RW (IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE)

/*
 * Whether the module has the selftest's IOMMU_TEST_CMD (CONFIG_IOMMUFD_TEST):
 * an op no kernel knows is EOPNOTSUPP there, and the command itself is
 * ENOTTY without it.
 */
static inline int have_test_cmd(int fd)
{
	struct iommu_test_cmd cmd = { .size = sizeof(cmd), .op = 0xffff };

	return ioctl(fd, IOMMU_TEST_CMD, &cmd) == 0 || errno != ENOTTY;
}

/* For a test that needs the mock IOMMU or another selftest op. */
#define SKIP_WITHOUT_TEST_CMD(fd)                                          \
	do {                                                               \
		if (!have_test_cmd(fd))                                    \
			SKIP(return, "needs IOMMU_TEST_CMD (CONFIG_IOMMUFD_TEST)"); \
	} while (0)

static inline int ioas_alloc(int fd, __u32 *id)
{
	struct iommu_ioas_alloc cmd = { .size = sizeof(cmd) };
	int rc = ioctl(fd, IOMMU_IOAS_ALLOC, &cmd);

	if (!rc)
		*id = cmd.out_ioas_id;
	return rc;
}

static inline int destroy(int fd, __u32 id)
{
	struct iommu_destroy cmd = { .size = sizeof(cmd), .id = id };

	return ioctl(fd, IOMMU_DESTROY, &cmd);
}

static inline int map_fixed(int fd, __u32 ioas_id, void *va, __u64 length,
			    __u64 iova, __u32 prot)
{
	struct iommu_ioas_map cmd = {
		.size = sizeof(cmd),
		.flags = IOMMU_IOAS_MAP_FIXED_IOVA | prot,
		.ioas_id = ioas_id,
		.user_va = (uintptr_t)va,
		.length = length,
		.iova = iova,
	};

	return ioctl(fd, IOMMU_IOAS_MAP, &cmd);
}

/* Unmaps [iova, iova + length); *unmapped (if given) gets what was. */
static inline int unmap(int fd, __u32 ioas_id, __u64 iova, __u64 length,
			__u64 *unmapped)
{
	struct iommu_ioas_unmap cmd = {
		.size = sizeof(cmd),
		.ioas_id = ioas_id,
		.iova = iova,
		.length = length,
	};
	int rc = ioctl(fd, IOMMU_IOAS_UNMAP, &cmd);

	if (unmapped)
		*unmapped = cmd.length;
	return rc;
}

/*
 * A mock device bound and attached to @pt_id; the outputs (each may be
 * NULL) get its selftest object, HWPT and device IDs.
 */
static inline int mock_domain(int fd, __u32 pt_id, __u32 *stdev, __u32 *hwpt,
			      __u32 *idev)
{
	struct iommu_test_cmd cmd = {
		.size = sizeof(cmd),
		.op = IOMMU_TEST_OP_MOCK_DOMAIN,
		.id = pt_id,
	};
	int rc = ioctl(fd, IOMMU_TEST_CMD, &cmd);

	if (rc)
		return rc;
	if (stdev)
		*stdev = cmd.mock_domain.out_stdev_id;
	if (hwpt)
		*hwpt = cmd.mock_domain.out_hwpt_id;
	if (idev)
		*idev = cmd.mock_domain.out_idev_id;
	return 0;
}

/*
 * A HWPT of @pt_id for device @idev, with selftest data @data of @len bytes
 * (none if NULL) and fault queue @fault_id (if @flags asks for one).
 */
static inline int hwpt_alloc_data(int fd, __u32 idev, __u32 pt_id,
				  __u32 flags, __u32 fault_id,
				  const void *data, __u32 len, __u32 *hwpt)
{
	struct iommu_hwpt_alloc cmd = {
		.size = sizeof(cmd),
		.flags = flags,
		.dev_id = idev,
		.pt_id = pt_id,
		.data_type = data ? IOMMU_HWPT_DATA_SELFTEST :
				    IOMMU_HWPT_DATA_NONE,
		.data_len = data ? len : 0,
		.data_uptr = (uintptr_t)data,
		.fault_id = fault_id,
	};
	int rc = ioctl(fd, IOMMU_HWPT_ALLOC, &cmd);

	if (!rc && hwpt)
		*hwpt = cmd.out_hwpt_id;
	return rc;
}

/* A HWPT of @pt_id for device @idev, without driver data. */
static inline int hwpt_alloc(int fd, __u32 idev, __u32 pt_id, __u32 flags,
			     __u32 *hwpt)
{
	return hwpt_alloc_data(fd, idev, pt_id, flags, 0, NULL, 0, hwpt);
}

/* 0 if every page of [buf, buf + len) is pinned @refs times. */
static inline int check_refs(int fd, void *buf, __u64 len, __u32 refs)
{
	struct iommu_test_cmd cmd = {
		.size = sizeof(cmd),
		.op = IOMMU_TEST_OP_MD_CHECK_REFS,
		.check_refs = { .length = len, .uptr = (uintptr_t)buf,
				.refs = refs },
	};

	return ioctl(fd, IOMMU_TEST_CMD, &cmd);
}

/* A line of /proc/self/status in kB ("VmPin", "VmLck"), or -1. */
static inline long status_kb(const char *key)
{
	char line[256];
	long val = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, key, strlen(key)) &&
		    line[strlen(key)] == ':') {
			val = strtol(line + strlen(key) + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return val;
}

/*
 * An access to @ioas_id (IOMMU_TEST_OP_CREATE_ACCESS): its file descriptor,
 * or -1 with errno.
 */
static inline int create_access(int fd, __u32 ioas_id, __u32 flags)
{
	struct iommu_test_cmd cmd = {
		.size = sizeof(cmd),
		.op = IOMMU_TEST_OP_CREATE_ACCESS,
		.id = ioas_id,
		.create_access = { .flags = flags },
	};

	if (ioctl(fd, IOMMU_TEST_CMD, &cmd))
		return -1;
	return cmd.create_access.out_access_fd;
}

/* Maps [start, start + length) of the memfd @mfd read-write at @iova. */
static inline int map_file_fixed(int fd, __u32 ioas_id, int mfd,
				 __u64 start, __u64 length, __u64 iova)
{
	struct iommu_ioas_map_file cmd = {
		.size = sizeof(cmd),
		.flags = IOMMU_IOAS_MAP_FIXED_IOVA | RW,
		.ioas_id = ioas_id,
		.fd = mfd,
		.start = start,
		.length = length,
		.iova = iova,
	};

	return ioctl(fd, IOMMU_IOAS_MAP_FILE, &cmd);
}

#endif
