// SPDX-License-Identifier: GPL-2.0
/*
 * Nested HWPTs, cache invalidation and fault queues through the selftest's
 * mock IOMMU: how the objects hold each other, what a fault queue file
 * reads and accepts, that faults nobody answered are answered when their
 * device leaves the HWPT, and the errno of each bad input.  Like our other
 * suites, every test asserts upstream behaviour, so it passes on the stock
 * C iommufd as well as on ours.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <linux/iommufd.h>

#include "kselftest_harness.h"
#include "iommufd_rs_utils.h"

static int replace(int fd, __u32 stdev, __u32 pt_id)
{
	struct iommu_test_cmd cmd = {
		.size = sizeof(cmd),
		.op = IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE,
		.id = stdev,
		.mock_domain_replace = { .pt_id = pt_id },
	};

	return ioctl(fd, IOMMU_TEST_CMD, &cmd);
}

static int fault_alloc(int fd, __u32 flags, __u32 *id, int *qfd)
{
	struct iommu_fault_alloc cmd = { .size = sizeof(cmd), .flags = flags };
	int rc = ioctl(fd, IOMMU_FAULT_QUEUE_ALLOC, &cmd);

	if (!rc) {
		*id = cmd.out_fault_id;
		*qfd = cmd.out_fault_fd;
	}
	return rc;
}

static int trigger(int fd, __u32 idev, __u32 pasid, __u64 addr)
{
	struct iommu_test_cmd cmd = {
		.size = sizeof(cmd),
		.op = IOMMU_TEST_OP_TRIGGER_IOPF,
		.trigger_iopf = {
			.dev_id = idev,
			.pasid = pasid,
			.grpid = 0x2,
			.perm = IOMMU_PGFAULT_PERM_READ,
			.addr = addr,
		},
	};

	return ioctl(fd, IOMMU_TEST_CMD, &cmd);
}

static int check_iotlb(int fd, __u32 hwpt, __u32 id, __u32 want)
{
	struct iommu_test_cmd cmd = {
		.size = sizeof(cmd),
		.op = IOMMU_TEST_OP_MD_CHECK_IOTLB,
		.id = hwpt,
		.check_iotlb = { .id = id, .iotlb = want },
	};

	return ioctl(fd, IOMMU_TEST_CMD, &cmd);
}

static int invalidate(int fd, __u32 hwpt, void *reqs, __u32 entry_len,
		      __u32 *num)
{
	struct iommu_hwpt_invalidate cmd = {
		.size = sizeof(cmd),
		.hwpt_id = hwpt,
		.data_uptr = (uintptr_t)reqs,
		.data_type = IOMMU_HWPT_INVALIDATE_DATA_SELFTEST,
		.entry_len = entry_len,
		.entry_num = *num,
	};
	int rc = ioctl(fd, IOMMU_HWPT_INVALIDATE, &cmd);

	*num = cmd.entry_num;
	return rc;
}

static short poll_events(int qfd)
{
	struct pollfd p = { .fd = qfd, .events = POLLIN | POLLOUT };

	if (poll(&p, 1, 0) < 0)
		return -1;
	return p.revents;
}

static ssize_t respond(int qfd, __u32 cookie, __u32 code)
{
	struct iommu_hwpt_page_response r = { .cookie = cookie, .code = code };

	return write(qfd, &r, sizeof(r));
}

FIXTURE(nested)
{
	int fd;
	__u32 ioas_id;
	__u32 stdev;
	__u32 idev;
	__u32 parent;
	struct iommu_hwpt_selftest data;
};

FIXTURE_SETUP(nested)
{
	self->fd = open("/dev/iommu", O_RDWR);
	ASSERT_LE(0, self->fd);
	ASSERT_EQ(0, ioas_alloc(self->fd, &self->ioas_id));
	ASSERT_EQ(0, mock_domain(self->fd, self->ioas_id, &self->stdev, NULL,
				 &self->idev));
	ASSERT_EQ(0, hwpt_alloc_data(self->fd, self->idev, self->ioas_id,
				IOMMU_HWPT_ALLOC_NEST_PARENT, 0, NULL, 0,
				&self->parent));
	self->data.iotlb = IOMMU_TEST_IOTLB_DEFAULT;
}

FIXTURE_TEARDOWN(nested)
{
	close(self->fd);
}

/*
 * A nested HWPT holds its parent; only a nest parent can be one, and a
 * nested HWPT cannot; the selftest data grows like any uAPI structure.
 */
TEST_F(nested, parents_and_data)
{
	__u32 plain, auto_hwpt, stdev2, idev2, nested, other;
	__u8 big[sizeof(self->data) + 8] = {};
	__u32 i;

	ASSERT_EQ(0, hwpt_alloc_data(self->fd, self->idev, self->ioas_id, 0, 0,
				NULL, 0, &plain));
	EXPECT_ERRNO(EINVAL, hwpt_alloc_data(self->fd, self->idev, plain, 0, 0,
					&self->data, sizeof(self->data),
					&other));
	/* An automatic HWPT is no parent either. */
	ASSERT_EQ(0, mock_domain(self->fd, self->ioas_id, &stdev2, &auto_hwpt,
				 &idev2));
	EXPECT_ERRNO(EINVAL, hwpt_alloc_data(self->fd, self->idev, auto_hwpt, 0, 0,
					&self->data, sizeof(self->data),
					&other));

	/* Only the first field is required; more than we know is refused. */
	EXPECT_ERRNO(EINVAL, hwpt_alloc_data(self->fd, self->idev, self->parent, 0,
					0, &self->data, 3, &other));
	memcpy(big, &self->data, sizeof(self->data));
	EXPECT_ERRNO(EINVAL, hwpt_alloc_data(self->fd, self->idev, self->parent, 0,
					0, big, sizeof(big), &other));
	ASSERT_EQ(0, hwpt_alloc_data(self->fd, self->idev, self->parent, 0, 0,
				&self->data, sizeof(__u32), &nested));
	for (i = 0; i < MOCK_NESTED_DOMAIN_IOTLB_NUM; i++)
		EXPECT_EQ(0, check_iotlb(self->fd, nested, i,
					 IOMMU_TEST_IOTLB_DEFAULT));
	EXPECT_ERRNO(EINVAL, check_iotlb(self->fd, nested,
					 MOCK_NESTED_DOMAIN_IOTLB_NUM,
					 IOMMU_TEST_IOTLB_DEFAULT));
	/* The IOTLB check is for nested HWPTs only. */
	EXPECT_ERRNO(ENOENT, check_iotlb(self->fd, self->parent, 0,
					 IOMMU_TEST_IOTLB_DEFAULT));

	EXPECT_ERRNO(EINVAL, hwpt_alloc_data(self->fd, self->idev, nested, 0, 0,
					&self->data, sizeof(self->data),
					&other));
	EXPECT_ERRNO(EBUSY, destroy(self->fd, self->parent));
	ASSERT_EQ(0, destroy(self->fd, nested));
	ASSERT_EQ(0, destroy(self->fd, self->parent));
	ASSERT_EQ(0, destroy(self->fd, plain));
}

/* What IOMMU_HWPT_INVALIDATE checks, and the count it reports back. */
TEST_F(nested, invalidate)
{
	struct iommu_hwpt_invalidate_selftest reqs[3] = {};
	struct iommu_hwpt_invalidate cmd = {
		.size = sizeof(cmd),
		.data_type = IOMMU_HWPT_INVALIDATE_DATA_SELFTEST,
		.entry_len = sizeof(reqs[0]),
		.entry_num = 1,
		.__reserved = 1,
	};
	__u32 nested, num;

	ASSERT_EQ(0, hwpt_alloc_data(self->fd, self->idev, self->parent, 0, 0,
				&self->data, sizeof(self->data), &nested));

	/* Reserved bits: refused, and nothing reported done. */
	cmd.hwpt_id = nested;
	cmd.data_uptr = (uintptr_t)reqs;
	EXPECT_ERRNO(EOPNOTSUPP, ioctl(self->fd, IOMMU_HWPT_INVALIDATE, &cmd));
	EXPECT_EQ(0, cmd.entry_num);

	/* Not a nested HWPT: an IOAS, a device, nothing at all. */
	num = 1;
	EXPECT_ERRNO(EINVAL, invalidate(self->fd, self->ioas_id, reqs,
					sizeof(reqs[0]), &num));
	EXPECT_EQ(0, num);
	num = 1;
	EXPECT_ERRNO(EINVAL, invalidate(self->fd, self->idev, reqs,
					sizeof(reqs[0]), &num));
	num = 1;
	EXPECT_ERRNO(ENOENT, invalidate(self->fd, 0xfffff, reqs,
					sizeof(reqs[0]), &num));

	/* An unreadable array: nothing done. */
	num = 1;
	EXPECT_ERRNO(EFAULT, invalidate(self->fd, nested, (void *)0x1000,
					sizeof(reqs[0]), &num));
	EXPECT_EQ(0, num);

	/* The mock takes exactly its own entry, neither shorter nor longer. */
	num = 1;
	EXPECT_ERRNO(EINVAL, invalidate(self->fd, nested, reqs, sizeof(__u32),
					&num));
	EXPECT_EQ(0, num);
	num = 1;
	EXPECT_ERRNO(EINVAL, invalidate(self->fd, nested, reqs,
					sizeof(reqs[0]) + 4, &num));
	EXPECT_EQ(0, num);

	/* A bad entry stops the batch; the ones before it are done. */
	reqs[0].iotlb_id = 2;
	reqs[1].iotlb_id = MOCK_NESTED_DOMAIN_IOTLB_NUM;
	num = 3;
	EXPECT_ERRNO(EINVAL, invalidate(self->fd, nested, reqs,
					sizeof(reqs[0]), &num));
	EXPECT_EQ(1, num);
	EXPECT_EQ(0, check_iotlb(self->fd, nested, 2, 0));
	EXPECT_EQ(0, check_iotlb(self->fd, nested, 3,
				 IOMMU_TEST_IOTLB_DEFAULT));

	reqs[0].flags = IOMMU_TEST_INVALIDATE_FLAG_ALL;
	num = 1;
	ASSERT_EQ(0, invalidate(self->fd, nested, reqs, sizeof(reqs[0]), &num));
	EXPECT_EQ(1, num);
	EXPECT_EQ(0, check_iotlb(self->fd, nested, 3, 0));
	ASSERT_EQ(0, destroy(self->fd, nested));
}

/*
 * A fault queue: records as the selftest IOMMU reports them, poll, and the
 * rules of reading and answering.
 */
TEST_F(nested, fault_queue_file)
{
	struct iommu_hwpt_pgfault rec[2];
	__u32 fault_id, iopf, bad;
	int qfd;

	EXPECT_ERRNO(EOPNOTSUPP, fault_alloc(self->fd, 1, &fault_id, &qfd));
	ASSERT_EQ(0, fault_alloc(self->fd, 0, &fault_id, &qfd));
	EXPECT_ERRNO(ENOENT, hwpt_alloc_data(self->fd, self->idev, self->parent,
					IOMMU_HWPT_FAULT_ID_VALID, self->ioas_id,
					&self->data, sizeof(self->data), &bad));
	ASSERT_EQ(0, hwpt_alloc_data(self->fd, self->idev, self->parent,
				IOMMU_HWPT_FAULT_ID_VALID, fault_id,
				&self->data, sizeof(self->data), &iopf));
	ASSERT_EQ(0, replace(self->fd, self->stdev, iopf));

	/* Nothing yet: writable (for answers) only, and reads are empty. */
	EXPECT_EQ(POLLOUT, poll_events(qfd));
	EXPECT_EQ(0, read(qfd, rec, sizeof(rec[0])));

	ASSERT_EQ(0, trigger(self->fd, self->idev, 0x1, 0x12345000));
	EXPECT_EQ(POLLIN | POLLOUT, poll_events(qfd));
	/* Whole records only; a buffer too small for the group is invalid. */
	EXPECT_ERRNO(ESPIPE, read(qfd, rec, sizeof(rec[0]) - 1));
	EXPECT_ERRNO(EINVAL, read(qfd, rec, 0));
	ASSERT_EQ(sizeof(rec[0]), read(qfd, rec, sizeof(rec)));
	EXPECT_EQ(self->idev, rec[0].dev_id);
	EXPECT_EQ(0x1, rec[0].pasid);
	EXPECT_EQ(0x2, rec[0].grpid);
	EXPECT_EQ(IOMMU_PGFAULT_PERM_READ, rec[0].perm);
	EXPECT_EQ(0x12345000, rec[0].addr);
	EXPECT_EQ(IOMMU_PGFAULT_FLAGS_PASID_VALID |
		  IOMMU_PGFAULT_FLAGS_LAST_PAGE, rec[0].flags);
	EXPECT_NE(0, rec[0].cookie);
	EXPECT_EQ(POLLOUT, poll_events(qfd));

	/* Answers: whole, with a known code, for a group waiting for one. */
	EXPECT_ERRNO(ESPIPE, write(qfd, rec, 3));
	EXPECT_ERRNO(EINVAL, respond(qfd, rec[0].cookie, 2));
	EXPECT_ERRNO(EINVAL, respond(qfd, rec[0].cookie + 1,
				     IOMMUFD_PAGE_RESP_SUCCESS));
	EXPECT_EQ(8, respond(qfd, rec[0].cookie, IOMMUFD_PAGE_RESP_SUCCESS));
	EXPECT_ERRNO(EINVAL, respond(qfd, rec[0].cookie,
				     IOMMUFD_PAGE_RESP_SUCCESS));

	/* The queue is held by its HWPT and by its file. */
	EXPECT_ERRNO(EBUSY, destroy(self->fd, fault_id));
	ASSERT_EQ(0, replace(self->fd, self->stdev, self->parent));
	ASSERT_EQ(0, destroy(self->fd, iopf));
	EXPECT_ERRNO(EBUSY, destroy(self->fd, fault_id));
	close(qfd);
	ASSERT_EQ(0, destroy(self->fd, fault_id));
}

/*
 * Faults still waiting when their device leaves the HWPT are answered for
 * it: unread ones vanish from the queue, read ones can no longer be
 * answered.  A fault on a HWPT that takes none reaches no queue.
 */
TEST_F(nested, unanswered_faults_on_leave)
{
	struct iommu_hwpt_pgfault rec;
	__u32 fault_id, iopf;
	int qfd;

	ASSERT_EQ(0, fault_alloc(self->fd, 0, &fault_id, &qfd));
	ASSERT_EQ(0, hwpt_alloc_data(self->fd, self->idev, self->parent,
				IOMMU_HWPT_FAULT_ID_VALID, fault_id,
				&self->data, sizeof(self->data), &iopf));

	/* Attached elsewhere: the trigger works, nothing is queued. */
	ASSERT_EQ(0, trigger(self->fd, self->idev, 0x1, 0x1000));
	EXPECT_EQ(POLLOUT, poll_events(qfd));

	ASSERT_EQ(0, replace(self->fd, self->stdev, iopf));
	ASSERT_EQ(0, trigger(self->fd, self->idev, 0x1, 0x2000));
	ASSERT_EQ(sizeof(rec), read(qfd, &rec, sizeof(rec)));
	ASSERT_EQ(0, trigger(self->fd, self->idev, 0x1, 0x3000));
	EXPECT_EQ(POLLIN | POLLOUT, poll_events(qfd));

	ASSERT_EQ(0, replace(self->fd, self->stdev, self->ioas_id));
	EXPECT_EQ(POLLOUT, poll_events(qfd));
	EXPECT_EQ(0, read(qfd, &rec, sizeof(rec)));
	EXPECT_ERRNO(EINVAL, respond(qfd, rec.cookie,
				     IOMMUFD_PAGE_RESP_SUCCESS));

	/* Destroying the device with faults waiting answers them too. */
	ASSERT_EQ(0, replace(self->fd, self->stdev, iopf));
	ASSERT_EQ(0, trigger(self->fd, self->idev, 0x1, 0x4000));
	ASSERT_EQ(0, destroy(self->fd, self->stdev));
	EXPECT_EQ(POLLOUT, poll_events(qfd));
	ASSERT_EQ(0, destroy(self->fd, iopf));
	close(qfd);
	ASSERT_EQ(0, destroy(self->fd, fault_id));
}

/* A paging HWPT can take faults too, but a nest parent cannot. */
TEST_F(nested, paging_fault_queue)
{
	struct iommu_hwpt_pgfault rec;
	__u32 fault_id, hwpt;
	int qfd;

	ASSERT_EQ(0, fault_alloc(self->fd, 0, &fault_id, &qfd));
	EXPECT_ERRNO(EOPNOTSUPP,
		     hwpt_alloc_data(self->fd, self->idev, self->ioas_id,
				IOMMU_HWPT_FAULT_ID_VALID |
					IOMMU_HWPT_ALLOC_NEST_PARENT,
				fault_id, NULL, 0, &hwpt));
	ASSERT_EQ(0, hwpt_alloc_data(self->fd, self->idev, self->ioas_id,
				IOMMU_HWPT_FAULT_ID_VALID, fault_id, NULL, 0,
				&hwpt));
	ASSERT_EQ(0, replace(self->fd, self->stdev, hwpt));
	/* Without a PASID the fault goes to the device's own domain. */
	ASSERT_EQ(0, trigger(self->fd, self->idev, 0, 0x5000));
	ASSERT_EQ(sizeof(rec), read(qfd, &rec, sizeof(rec)));
	EXPECT_EQ(IOMMU_PGFAULT_FLAGS_LAST_PAGE, rec.flags);
	EXPECT_EQ(0x5000, rec.addr);
	EXPECT_EQ(8, respond(qfd, rec.cookie, IOMMUFD_PAGE_RESP_INVALID));
	ASSERT_EQ(0, replace(self->fd, self->stdev, self->ioas_id));
	ASSERT_EQ(0, destroy(self->fd, hwpt));
	close(qfd);
	ASSERT_EQ(0, destroy(self->fd, fault_id));
}

static int pasid_op(int fd, __u32 op, __u32 stdev, __u32 pasid, __u32 pt_id)
{
	struct iommu_test_cmd cmd = {
		.size = sizeof(cmd),
		.op = op,
		.id = stdev,
		.pasid_attach = { .pasid = pasid, .pt_id = pt_id },
	};

	return ioctl(fd, IOMMU_TEST_CMD, &cmd);
}

/*
 * PASIDs attach to HWPTs made for them (IOMMU_HWPT_ALLOC_PASID), and only
 * while the device's own HWPT is one too; the RID cannot leave for another
 * kind while PASIDs are attached.
 */
TEST_F(nested, pasid_rules)
{
	struct iommu_test_cmd md = {
		.size = sizeof(md),
		.op = IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS,
		.mock_domain_flags = { .dev_flags = MOCK_FLAGS_DEVICE_PASID },
	};
	__u32 stdev, idev, s2, nested, plain;

	md.id = self->ioas_id;
	ASSERT_EQ(0, ioctl(self->fd, IOMMU_TEST_CMD, &md));
	stdev = md.mock_domain_flags.out_stdev_id;
	idev = md.mock_domain_flags.out_idev_id;
	ASSERT_EQ(0, hwpt_alloc_data(self->fd, idev, self->ioas_id,
				IOMMU_HWPT_ALLOC_PASID, 0, NULL, 0, &s2));
	ASSERT_EQ(0, hwpt_alloc_data(self->fd, idev, self->parent,
				IOMMU_HWPT_ALLOC_PASID, 0, &self->data,
				sizeof(self->data), &nested));
	ASSERT_EQ(0, hwpt_alloc_data(self->fd, idev, self->ioas_id, 0, 0, NULL, 0,
				&plain));

	/* Detaching what is not attached is no error. */
	EXPECT_EQ(0, pasid_op(self->fd, IOMMU_TEST_OP_PASID_DETACH, stdev, 7,
			      0));
	/* The RID is on an automatic HWPT, which does not allow PASIDs. */
	EXPECT_ERRNO(EINVAL, pasid_op(self->fd, IOMMU_TEST_OP_PASID_ATTACH,
				      stdev, 7, s2));
	ASSERT_EQ(0, replace(self->fd, stdev, s2));
	/* Not an IOAS, not a HWPT without the flag, not twice. */
	EXPECT_ERRNO(EINVAL, pasid_op(self->fd, IOMMU_TEST_OP_PASID_ATTACH,
				      stdev, 7, self->ioas_id));
	EXPECT_ERRNO(EINVAL, pasid_op(self->fd, IOMMU_TEST_OP_PASID_ATTACH,
				      stdev, 7, plain));
	EXPECT_ERRNO(EINVAL, pasid_op(self->fd, IOMMU_TEST_OP_PASID_REPLACE,
				      stdev, 7, s2));
	ASSERT_EQ(0, pasid_op(self->fd, IOMMU_TEST_OP_PASID_ATTACH, stdev, 7,
			      s2));
	EXPECT_EQ(0, pasid_op(self->fd, IOMMU_TEST_OP_PASID_CHECK_HWPT, stdev,
			      7, s2));
	EXPECT_ERRNO(EINVAL, pasid_op(self->fd, IOMMU_TEST_OP_PASID_CHECK_HWPT,
				      stdev, 8, s2));
	EXPECT_ERRNO(EBUSY, pasid_op(self->fd, IOMMU_TEST_OP_PASID_ATTACH,
				     stdev, 7, nested));
	ASSERT_EQ(0, pasid_op(self->fd, IOMMU_TEST_OP_PASID_REPLACE, stdev, 7,
			      nested));
	EXPECT_EQ(0, pasid_op(self->fd, IOMMU_TEST_OP_PASID_CHECK_HWPT, stdev,
			      7, nested));
	/* In use by the PASID. */
	EXPECT_ERRNO(EBUSY, destroy(self->fd, nested));

	/* With a PASID attached, the RID stays on PASID-compatible HWPTs. */
	EXPECT_ERRNO(EINVAL, replace(self->fd, stdev, plain));
	EXPECT_ERRNO(EINVAL, replace(self->fd, stdev, self->ioas_id));

	ASSERT_EQ(0, pasid_op(self->fd, IOMMU_TEST_OP_PASID_DETACH, stdev, 7,
			      0));
	EXPECT_EQ(0, pasid_op(self->fd, IOMMU_TEST_OP_PASID_CHECK_HWPT, stdev,
			      7, 0));
	ASSERT_EQ(0, replace(self->fd, stdev, plain));
	ASSERT_EQ(0, destroy(self->fd, nested));

	ASSERT_EQ(0, destroy(self->fd, stdev));
	ASSERT_EQ(0, destroy(self->fd, s2));
	ASSERT_EQ(0, destroy(self->fd, plain));
}

TEST_HARNESS_MAIN
