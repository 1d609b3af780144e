// SPDX-License-Identifier: GPL-2.0
/*
 * Lifetimes and races: objects destroyed while other threads' ioctls use
 * them, creates that fail after the object was built, IOMMU_IOAS_CHANGE_PROCESS
 * racing pins and unpins, close() of /dev/iommu racing ioctls, fork, and
 * access unmap notifications racing the access's destruction, an access
 * copy stalled on a user page fault, and the vIOMMU objects (mappings of a
 * vIOMMU's region, vDEVICEs, HW queue dependencies, vEVENTs) racing their
 * destruction.  Each test runs its threads for a bounded time (RACE_MS)
 * and then asserts what upstream guarantees.  On the stock C iommufd:
 * access_copy_stall_spares_map fails (upstream copies under the IOAS's IOVA
 * rwsem, so a map waits for a copy that waits for a user page fault,
 * indefinitely); hw_queue_depend_vs_destroy fails (the C mock takes a
 * dependency on a queue being destroyed: "refcount_t: addition on 0;
 * use-after-free"); vdevice_vs_unbind times out (the unbind waits behind
 * the racing vDEVICE creates).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/capability.h>
#include <linux/iommufd.h>
#include <linux/userfaultfd.h>

#include "kselftest_harness.h"
#include "iommufd_rs_utils.h"

#define PAGE 4096UL
/* Inside the mock IOMMU's aperture. */
#define BASE_IOVA 0x1000000UL
/* How long each test lets its threads race. */
#define RACE_MS 1500

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000ULL + ts.tv_nsec / 1000000;
}

static int get_hw_info(int fd, __u32 dev_id)
{
	struct iommu_test_hw_info info;
	struct iommu_hw_info cmd = {
		.size = sizeof(cmd),
		.dev_id = dev_id,
		.data_len = sizeof(info),
		.data_uptr = (uintptr_t)&info,
	};

	return ioctl(fd, IOMMU_GET_HW_INFO, &cmd);
}

static int change_process(int fd)
{
	struct iommu_ioas_change_process cmd = { .size = sizeof(cmd) };

	return ioctl(fd, IOMMU_IOAS_CHANGE_PROCESS, &cmd);
}

static int set_rlimit_mode(int fd, int mm_mode)
{
	struct iommu_option cmd = {
		.size = sizeof(cmd),
		.option_id = IOMMU_OPTION_RLIMIT_MODE,
		.op = IOMMU_OPTION_OP_SET,
		.val64 = mm_mode,
	};

	return ioctl(fd, IOMMU_OPTION, &cmd);
}

static int access_pages(int fd, int access, __u64 iova, __u64 length)
{
	struct iommu_test_cmd cmd = {
		.size = sizeof(cmd),
		.op = IOMMU_TEST_OP_ACCESS_PAGES,
		.id = access,
		.access_pages = { .iova = iova, .length = length },
	};

	return ioctl(fd, IOMMU_TEST_CMD, &cmd);
}

/* Charges go against RLIMIT_MEMLOCK only without CAP_IPC_LOCK. */
static int drop_cap_ipc_lock(void)
{
	struct __user_cap_header_struct hdr = {
		.version = _LINUX_CAPABILITY_VERSION_3,
	};
	struct __user_cap_data_struct data[2] = {};

	if (syscall(SYS_capget, &hdr, data))
		return -1;
	data[0].effective &= ~(1U << CAP_IPC_LOCK);
	data[0].permitted &= ~(1U << CAP_IPC_LOCK);
	return syscall(SYS_capset, &hdr, data);
}

static int memfd_of(size_t size)
{
	int mfd = memfd_create("iommufd_race", 0);

	if (mfd < 0 || ftruncate(mfd, size))
		return -1;
	return mfd;
}

/* Runs @child in a new process and returns its exit status (0: passed). */
static int in_child(void (*child)(struct __test_metadata *, void *),
		    struct __test_metadata *_metadata, void *arg)
{
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return -1;
	if (!pid) {
		child(_metadata, arg);
		_exit(_metadata->exit_code ? 1 : 0);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

/*
 * Holds a device with slow IOMMU_GET_HW_INFO calls (each clears a large
 * user buffer), back to back, for at most a second or until told to stop.
 */
#define HOLD_BYTES (16UL << 20)

struct holder {
	int fd;
	__u32 dev_id;
	void *buf;
	atomic_bool stop;
	atomic_ulong calls;
};

static void *hw_info_holder(void *arg)
{
	struct holder *h = arg;
	uint64_t end = now_ms() + 1000;

	while (!h->stop && now_ms() < end) {
		struct iommu_hw_info cmd = {
			.size = sizeof(cmd),
			.dev_id = h->dev_id,
			.data_len = HOLD_BYTES,
			.data_uptr = (uintptr_t)h->buf,
		};

		if (ioctl(h->fd, IOMMU_GET_HW_INFO, &cmd))
			break;
		h->calls++;
	}
	return NULL;
}

FIXTURE(race) {};
FIXTURE_SETUP(race) {}
FIXTURE_TEARDOWN(race) {}

/*
 * Destroying a mock device unbinds its device object although another
 * thread's ioctl holds that object: the unbind waits for the ioctl to end,
 * and the device's ID is gone once IOMMU_DESTROY returns.  (Upstream wakes
 * the waiter only on its 60 s timeout, hence the long timeout here.)
 */
TEST_F_TIMEOUT(race, device_destroy_waits_for_users, 150)
{
	struct holder h = { .fd = open("/dev/iommu", O_RDWR) };
	__u32 ioas_id, stdev_id;
	pthread_t thread;

	ASSERT_LE(0, h.fd);
	h.buf = mmap(NULL, HOLD_BYTES, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	ASSERT_NE(MAP_FAILED, h.buf);
	ASSERT_EQ(0, ioas_alloc(h.fd, &ioas_id));
	ASSERT_EQ(0, mock_domain(h.fd, ioas_id, &stdev_id, NULL, &h.dev_id));
	ASSERT_EQ(0, pthread_create(&thread, NULL, hw_info_holder, &h));
	/* Once one call went through, the next one is under way. */
	while (!h.calls)
		usleep(1000);
	ASSERT_EQ(0, destroy(h.fd, stdev_id));
	/* The device object went with its binding. */
	EXPECT_ERRNO(ENOENT, get_hw_info(h.fd, h.dev_id));
	EXPECT_ERRNO(ENOENT, destroy(h.fd, h.dev_id));
	h.stop = true;
	pthread_join(thread, NULL);
	TH_LOG("%lu slow GET_HW_INFO calls", h.calls);
	/* Nothing is left but the IOAS. */
	EXPECT_EQ(0, destroy(h.fd, ioas_id));
	munmap(h.buf, HOLD_BYTES);
	close(h.fd);
}

/* Destroys the IDs [first, first + 4) until told to stop. */
struct destroyer {
	int fd;
	__u32 first;
	atomic_bool stop;
	unsigned long destroyed;
};

static void *destroy_hammer(void *arg)
{
	struct destroyer *d = arg;

	while (!d->stop) {
		for (__u32 id = d->first; id < d->first + 4; id++)
			if (!destroy(d->fd, id))
				d->destroyed++;
	}
	return NULL;
}

/*
 * An IOMMU_HWPT_ALLOC that fails (here: its answer cannot be copied out) is
 * never seen by other threads: its HWPT is published only once the ioctl
 * cannot fail any more, so nobody can destroy, or hold, a HWPT whose
 * creation failed.
 */
TEST(failed_hwpt_alloc_is_never_visible)
{
	struct iommu_hwpt_selftest data = { .iotlb = IOMMU_TEST_IOTLB_DEFAULT };
	struct destroyer d = { .fd = open("/dev/iommu", O_RDWR) };
	struct iommu_hwpt_alloc *cmd;
	unsigned long rounds = 0, efault = 0;
	__u32 ioas_id, idev_id, parent_id;
	pthread_t thread;
	uint64_t end;

	ASSERT_LE(0, d.fd);
	ASSERT_EQ(0, ioas_alloc(d.fd, &ioas_id));
	ASSERT_EQ(0, mock_domain(d.fd, ioas_id, NULL, NULL, &idev_id));
	ASSERT_EQ(0, hwpt_alloc(d.fd, idev_id, ioas_id,
				IOMMU_HWPT_ALLOC_NEST_PARENT, &parent_id));
	/* IOAS, mock device, device, automatic HWPT, the parent: IDs 1-5. */
	d.first = 6;

	/* Readable, so the command is read; read-only, so the answer fails. */
	cmd = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, cmd);
	ASSERT_EQ(0, pthread_create(&thread, NULL, destroy_hammer, &d));
	end = now_ms() + RACE_MS;
	while (now_ms() < end && rounds < 4000) {
		ASSERT_EQ(0, mprotect(cmd, PAGE, PROT_READ | PROT_WRITE));
		memset(cmd, 0, sizeof(*cmd));
		cmd->size = sizeof(*cmd);
		cmd->dev_id = idev_id;
		if (rounds % 2) {
			/* A nested HWPT on the parent. */
			cmd->pt_id = parent_id;
			cmd->data_type = IOMMU_HWPT_DATA_SELFTEST;
			cmd->data_len = sizeof(data);
			cmd->data_uptr = (uintptr_t)&data;
		} else {
			cmd->pt_id = ioas_id;
		}
		ASSERT_EQ(0, mprotect(cmd, PAGE, PROT_READ));
		if (ioctl(d.fd, IOMMU_HWPT_ALLOC, cmd) == -1 && errno == EFAULT)
			efault++;
		rounds++;
	}
	d.stop = true;
	pthread_join(thread, NULL);
	EXPECT_EQ(rounds, efault);
	EXPECT_EQ(0, d.destroyed);
	/* No HWPT was left behind either. */
	for (__u32 id = d.first; id < d.first + 4; id++)
		EXPECT_ERRNO(ENOENT, destroy(d.fd, id));
	munmap(cmd, PAGE);
	close(d.fd);
}

/*
 * IOMMU_IOAS_CHANGE_PROCESS by the process that already owns the pins
 * changes nothing and charges nothing: it succeeds even when the pins use
 * all of RLIMIT_MEMLOCK, and the counters stay as they were.
 */
static void change_process_owner(struct __test_metadata *_metadata, void *arg)
{
	int mm_mode = *(int *)arg;
	const size_t npages = 8;
	/* Room for the pins, not for twice as many. */
	struct rlimit lim = { (npages + npages / 2) * PAGE, RLIM_INFINITY };
	__u32 ioas_id;
	int fd, mfd;

	fd = open("/dev/iommu", O_RDWR);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, set_rlimit_mode(fd, mm_mode));
	ASSERT_EQ(0, drop_cap_ipc_lock());
	ASSERT_EQ(0, setrlimit(RLIMIT_MEMLOCK, &lim));
	mfd = memfd_of(npages * PAGE);
	ASSERT_LE(0, mfd);
	ASSERT_EQ(0, ioas_alloc(fd, &ioas_id));
	ASSERT_EQ(0, mock_domain(fd, ioas_id, NULL, NULL, NULL));
	ASSERT_EQ(0, map_file_fixed(fd, ioas_id, mfd, 0, npages * PAGE, BASE_IOVA));
	ASSERT_EQ(npages * 4, status_kb("VmPin"));
	ASSERT_EQ(mm_mode ? npages * 4 : 0, status_kb("VmLck"));

	for (int i = 0; i < 3; i++) {
		ASSERT_EQ(0, change_process(fd));
		EXPECT_EQ(npages * 4, status_kb("VmPin"));
		EXPECT_EQ(mm_mode ? npages * 4 : 0, status_kb("VmLck"));
	}
	ASSERT_EQ(0, unmap(fd, ioas_id, BASE_IOVA, npages * PAGE, NULL));
	EXPECT_EQ(0, status_kb("VmPin"));
	EXPECT_EQ(0, status_kb("VmLck"));
	close(fd);
	close(mfd);
}

TEST(change_process_by_owner_user)
{
	int mm_mode = 0;

	EXPECT_EQ(0, in_child(change_process_owner, _metadata, &mm_mode));
}

TEST(change_process_by_owner_mm)
{
	int mm_mode = 1;

	EXPECT_EQ(0, in_child(change_process_owner, _metadata, &mm_mode));
}

/*
 * The pins of an IOAS come and go while two processes take them over from
 * each other with IOMMU_IOAS_CHANGE_PROCESS: each pin is charged once, to
 * one process, and given back once, so that when everything is unpinned
 * both processes' VmPin and VmLck are back to 0.
 */
#define CP_PAGES 16

struct pinner {
	int fd;
	__u32 ioas_id;
	int mfd;
	atomic_bool stop;
	unsigned long rounds;
	int err;
};

/* Pins and unpins a standing mapping: a device comes and goes. */
static void *attach_loop(void *arg)
{
	struct pinner *p = arg;
	__u32 stdev_id;

	while (!p->stop) {
		if (mock_domain(p->fd, p->ioas_id, &stdev_id, NULL, NULL) ||
		    destroy(p->fd, stdev_id)) {
			p->err = errno;
			return NULL;
		}
		p->rounds++;
	}
	return NULL;
}

/* Maps and unmaps, in an IOAS with a domain: pins and unpins. */
static void *map_loop(void *arg)
{
	struct pinner *p = arg;

	while (!p->stop) {
		if (map_file_fixed(p->fd, p->ioas_id, p->mfd, 0, CP_PAGES * PAGE,
			     BASE_IOVA) ||
		    unmap(p->fd, p->ioas_id, BASE_IOVA, CP_PAGES * PAGE,
			  NULL)) {
			p->err = errno;
			return NULL;
		}
		p->rounds++;
	}
	return NULL;
}

static void change_process_race(struct __test_metadata *_metadata, void *arg)
{
	struct pinner a = {}, b = {};
	pthread_t ta, tb;
	int to_child[2], to_parent[2];
	unsigned long changes = 0, busy = 0;
	char c;
	pid_t child;
	int fd, mfd, status;
	uint64_t end;

	fd = open("/dev/iommu", O_RDWR);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, set_rlimit_mode(fd, 1));
	ASSERT_EQ(0, drop_cap_ipc_lock());
	mfd = memfd_of(CP_PAGES * PAGE);
	ASSERT_LE(0, mfd);
	a = (struct pinner){ .fd = fd, .mfd = mfd };
	b = a;
	/* A: a standing mapping, pinned while a device is attached. */
	ASSERT_EQ(0, ioas_alloc(fd, &a.ioas_id));
	ASSERT_EQ(0, map_file_fixed(fd, a.ioas_id, mfd, 0, CP_PAGES * PAGE,
			      BASE_IOVA));
	/* B: a device always attached, mappings that come and go. */
	ASSERT_EQ(0, ioas_alloc(fd, &b.ioas_id));
	ASSERT_EQ(0, mock_domain(fd, b.ioas_id, NULL, NULL, NULL));

	ASSERT_EQ(0, pipe(to_child));
	ASSERT_EQ(0, pipe(to_parent));
	child = fork();
	ASSERT_LE(0, child);
	if (!child) {
		unsigned long n = 0;
		int rc = 0;

		/*
		 * Takes the pins over until told to stop; EBUSY is a mapping
		 * being made or unmade at that instant.
		 */
		fcntl(to_child[0], F_SETFL, O_NONBLOCK);
		while (read(to_child[0], &c, 1) != 1) {
			if (!change_process(fd))
				n++;
			else if (errno != EBUSY)
				rc = 2;
		}
		(void)!write(to_parent[1], "s", 1);
		/* Then waits for everything to be unpinned, and checks. */
		fcntl(to_child[0], F_SETFL, 0);
		(void)!read(to_child[0], &c, 1);
		if (status_kb("VmPin") != 0 || status_kb("VmLck") != 0)
			rc = 3;
		_exit(rc ? rc : n ? 0 : 4);
	}

	ASSERT_EQ(0, pthread_create(&ta, NULL, attach_loop, &a));
	ASSERT_EQ(0, pthread_create(&tb, NULL, map_loop, &b));
	end = now_ms() + 2 * RACE_MS;
	while (now_ms() < end) {
		if (!change_process(fd))
			changes++;
		else if (errno == EBUSY)
			busy++;
		else
			EXPECT_EQ(0, errno);
	}
	a.stop = true;
	b.stop = true;
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	ASSERT_EQ(1, write(to_child[1], "s", 1));
	ASSERT_EQ(1, read(to_parent[0], &c, 1));
	EXPECT_EQ(0, a.err);
	EXPECT_EQ(0, b.err);
	TH_LOG("%lu changes (%lu EBUSY), %lu attach and %lu map rounds",
	       changes, busy, a.rounds, b.rounds);
	EXPECT_LT(0, changes);

	/* Unpin everything: the device of B goes with the context. */
	ASSERT_EQ(0, unmap(fd, a.ioas_id, BASE_IOVA, CP_PAGES * PAGE, NULL));
	close(fd);
	EXPECT_EQ(0, status_kb("VmPin"));
	EXPECT_EQ(0, status_kb("VmLck"));
	ASSERT_EQ(1, write(to_child[1], "c", 1));
	ASSERT_EQ(child, waitpid(child, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status));
	close(mfd);
}

TEST(change_process_vs_pins)
{
	EXPECT_EQ(0, in_child(change_process_race, _metadata, NULL));
}

/*
 * close() of /dev/iommu while other threads run ioctls on it: the context
 * goes once the last ioctl is over, and with it every pin.
 */
struct closer {
	int fd;
	void *buf;
	unsigned long ok;
	int err;
};

static void *ioctl_loop(void *arg)
{
	struct closer *c = arg;
	__u32 ioas_id;

	for (;;) {
		if (ioas_alloc(c->fd, &ioas_id))
			break;
		if (mock_domain(c->fd, ioas_id, NULL, NULL, NULL))
			break;
		if (map_fixed(c->fd, ioas_id, c->buf, 4 * PAGE, BASE_IOVA, RW))
			break;
		c->ok++;
	}
	c->err = errno;
	return NULL;
}

TEST(close_while_ioctls_run)
{
	int checker = open("/dev/iommu", O_RDWR);
	struct closer c[2];
	pthread_t t[2];
	void *buf;

	ASSERT_LE(0, checker);
	buf = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	ASSERT_NE(MAP_FAILED, buf);
	for (int round = 0; round < 20; round++) {
		int fd = open("/dev/iommu", O_RDWR);

		ASSERT_LE(0, fd);
		for (int i = 0; i < 2; i++) {
			c[i] = (struct closer){ .fd = fd, .buf = buf };
			ASSERT_EQ(0, pthread_create(&t[i], NULL, ioctl_loop,
						    &c[i]));
		}
		usleep(20000 + round * 2000);
		ASSERT_EQ(0, close(fd));
		for (int i = 0; i < 2; i++) {
			pthread_join(t[i], NULL);
			/* They stop when the descriptor is gone. */
			EXPECT_EQ(EBADF, c[i].err);
		}
		/* The context is gone, and its pins with it. */
		EXPECT_EQ(0, status_kb("VmPin"));
		EXPECT_EQ(0, check_refs(checker, buf, 4 * PAGE, 0));
	}
	munmap(buf, 4 * PAGE);
	close(checker);
}

/*
 * A child inherits the descriptor, maps its own memory and exits without
 * unmapping; the parent unmaps it.  The pins are given back once, to whom
 * they were charged: the parent's own counters never move.
 */
TEST(fork_child_maps_and_exits)
{
	__u32 ioas_id;
	pid_t child;
	int fd, status;

	fd = open("/dev/iommu", O_RDWR);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, ioas_alloc(fd, &ioas_id));
	ASSERT_EQ(0, mock_domain(fd, ioas_id, NULL, NULL, NULL));
	for (int round = 0; round < 10; round++) {
		child = fork();
		ASSERT_LE(0, child);
		if (!child) {
			void *buf = mmap(NULL, 8 * PAGE, PROT_READ | PROT_WRITE,
					 MAP_PRIVATE | MAP_ANONYMOUS |
						 MAP_POPULATE,
					 -1, 0);

			if (buf == MAP_FAILED ||
			    map_fixed(fd, ioas_id, buf, 8 * PAGE, BASE_IOVA,
				      RW) ||
			    status_kb("VmPin") != 32)
				_exit(1);
			_exit(0);
		}
		ASSERT_EQ(child, waitpid(child, &status, 0));
		ASSERT_TRUE(WIFEXITED(status));
		ASSERT_EQ(0, WEXITSTATUS(status));
		EXPECT_EQ(0, status_kb("VmPin"));
		ASSERT_EQ(0, unmap(fd, ioas_id, BASE_IOVA, 8 * PAGE, NULL));
		EXPECT_EQ(0, status_kb("VmPin"));
	}
	close(fd);
}

/*
 * Accesses pin pages and are closed while another thread unmaps what they
 * pinned: every unmap succeeds (the access is told, or is gone), and no pin
 * outlives it.  (Upstream's close waits out its 60 s timeout when it finds
 * a notification in flight, hence the long timeout.)
 */
struct unmapper {
	int fd;
	__u32 ioas_id;
	void *buf;
	atomic_bool stop;
	unsigned long rounds;
	int err;
};

static void *unmap_loop(void *arg)
{
	struct unmapper *u = arg;

	while (!u->stop) {
		if (unmap(u->fd, u->ioas_id, BASE_IOVA, 4 * PAGE, NULL) ||
		    map_fixed(u->fd, u->ioas_id, u->buf, 4 * PAGE, BASE_IOVA,
			      RW)) {
			u->err = errno;
			return NULL;
		}
		u->rounds++;
	}
	return NULL;
}

TEST_F_TIMEOUT(race, access_unmap_vs_close, 150)
{
	struct unmapper u = { .fd = open("/dev/iommu", O_RDWR) };
	unsigned long pinned = 0, rounds = 0;
	pthread_t thread;
	uint64_t end;

	ASSERT_LE(0, u.fd);
	u.buf = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	ASSERT_NE(MAP_FAILED, u.buf);
	ASSERT_EQ(0, ioas_alloc(u.fd, &u.ioas_id));
	ASSERT_EQ(0, map_fixed(u.fd, u.ioas_id, u.buf, 4 * PAGE, BASE_IOVA,
			       RW));
	ASSERT_EQ(0, pthread_create(&thread, NULL, unmap_loop, &u));
	end = now_ms() + RACE_MS;
	while (now_ms() < end) {
		int access = create_access(u.fd, u.ioas_id,
					   MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES);

		ASSERT_LE(0, access);
		/* Nothing mapped at that instant is fine. */
		if (!access_pages(u.fd, access, BASE_IOVA, 4 * PAGE))
			pinned++;
		close(access);
		rounds++;
	}
	u.stop = true;
	pthread_join(thread, NULL);
	TH_LOG("%lu accesses (%lu pinned), %lu unmaps", rounds, pinned,
	       u.rounds);
	EXPECT_EQ(0, u.err);
	/* Every access is gone, and all its pins: only the mapping is left. */
	EXPECT_EQ(0, status_kb("VmPin"));
	EXPECT_EQ(0, check_refs(u.fd, u.buf, 4 * PAGE, 0));
	close(u.fd);
}

/*
 * An access's descriptor is closed while another thread pins through it:
 * a pin is either refused (the descriptor is gone) or unpinned when the
 * access goes, so that the IOAS can be unmapped afterwards and no page
 * stays pinned.
 */
struct pinning {
	int fd;
	int access;
	atomic_bool stop;
	unsigned long pinned;
};

static void *pin_loop(void *arg)
{
	struct pinning *p = arg;

	while (!p->stop)
		if (!access_pages(p->fd, p->access, BASE_IOVA, 4 * PAGE))
			p->pinned++;
	return NULL;
}

TEST(access_close_while_pinning)
{
	int fd = open("/dev/iommu", O_RDWR);
	unsigned long rounds = 0, pinned = 0;
	__u32 ioas_id;
	uint64_t end;
	void *buf;

	ASSERT_LE(0, fd);
	buf = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	ASSERT_NE(MAP_FAILED, buf);
	ASSERT_EQ(0, ioas_alloc(fd, &ioas_id));
	ASSERT_EQ(0, map_fixed(fd, ioas_id, buf, 4 * PAGE, BASE_IOVA, RW));
	end = now_ms() + RACE_MS;
	while (now_ms() < end && rounds < 200) {
		struct pinning p = { .fd = fd };
		pthread_t thread;

		p.access = create_access(fd, ioas_id,
					 MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES);
		ASSERT_LE(0, p.access);
		ASSERT_EQ(0, pthread_create(&thread, NULL, pin_loop, &p));
		usleep(1000 + rounds % 7 * 300);
		close(p.access);
		p.stop = true;
		pthread_join(thread, NULL);
		pinned += p.pinned;
		rounds++;
	}
	TH_LOG("%lu accesses, %lu pins", rounds, pinned);
	/* No access holds a pin: the unmap goes through at once. */
	EXPECT_EQ(0, check_refs(fd, buf, 4 * PAGE, 0));
	EXPECT_EQ(0, unmap(fd, ioas_id, BASE_IOVA, 4 * PAGE, NULL));
	EXPECT_EQ(0, status_kb("VmPin"));
	close(fd);
}

/*
 * An access copy (IOMMU_TEST_OP_ACCESS_RW, the direct path: the mapping is
 * the caller's own memory) stalled on a page fault that userfaultfd holds,
 * and what the IOAS still does meanwhile.
 */
struct stall {
	int fd, access, uffd;
	__u32 ioas_id;
	char *area;		/* mapped at BASE_IOVA, registered with uffd */
	char buf[64];
	int rc, err;
	atomic_bool done;
};

static void *stalled_copy(void *arg)
{
	struct stall *st = arg;
	struct iommu_test_cmd cmd = {
		.size = sizeof(cmd),
		.op = IOMMU_TEST_OP_ACCESS_RW,
		.id = st->access,
		.access_rw = { .iova = BASE_IOVA, .length = sizeof(st->buf),
			       .uptr = (uintptr_t)st->buf },
	};

	st->rc = ioctl(st->fd, IOMMU_TEST_CMD, &cmd);
	st->err = errno;
	atomic_store(&st->done, true);
	return NULL;
}

/*
 * A new anonymous page, registered with a new userfaultfd for missing
 * pages: its uffd, or -1 with errno (ENOSYS: no userfaultfd).
 */
static int uffd_page(char **area)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_MISSING };
	int uffd;

	*area = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (*area == MAP_FAILED)
		return -1;
	uffd = syscall(__NR_userfaultfd, O_CLOEXEC);
	if (uffd < 0 || ioctl(uffd, UFFDIO_API, &api))
		return -1;
	reg.range.start = (uintptr_t)*area;
	reg.range.len = PAGE;
	if (ioctl(uffd, UFFDIO_REGISTER, &reg))
		return -1;
	return uffd;
}

/* Sets up the stalled copy; 0, or -1 with errno (ENOSYS: no userfaultfd). */
static int stall_start(struct stall *st, pthread_t *t)
{
	memset(st, 0, sizeof(*st));
	st->fd = open("/dev/iommu", O_RDWR);
	if (st->fd < 0 || ioas_alloc(st->fd, &st->ioas_id))
		return -1;
	st->uffd = uffd_page(&st->area);
	if (st->uffd < 0)
		return -1;
	/* No domain: nothing is pinned, so the page stays missing. */
	if (map_fixed(st->fd, st->ioas_id, st->area, PAGE, BASE_IOVA, RW))
		return -1;
	st->access = create_access(st->fd, st->ioas_id, 0);
	if (st->access < 0)
		return -1;
	return pthread_create(t, NULL, stalled_copy, st) ? -1 : 0;
}

/* Resolves the fault with a zero page. */
static void stall_resolve(struct stall *st)
{
	struct uffdio_zeropage zp = {
		.range = { .start = (uintptr_t)st->area, .len = PAGE },
	};

	ioctl(st->uffd, UFFDIO_ZEROPAGE, &zp);
}

/* Resolves the fault after a while, should the op wait for the copy. */
static void *late_resolver(void *arg)
{
	usleep(3000 * 1000);
	stall_resolve(arg);
	return NULL;
}

static void stall_end(struct stall *st, pthread_t t)
{
	stall_resolve(st);
	pthread_join(t, NULL);
	close(st->access);
	close(st->uffd);
	munmap(st->area, PAGE);
	close(st->fd);
}

/*
 * Runs @op on the IOAS of the stalled copy: whether it returned while the
 * copy still waited for its page (a resolver frees the copy after 3 s, so
 * an op that waits for it still ends).
 */
static bool returns_while_stalled(struct stall *st, int (*op)(struct stall *),
				  int *rc)
{
	pthread_t resolver;
	bool stalled;

	/* Let the copy reach the fault. */
	usleep(200 * 1000);
	if (atomic_load(&st->done))
		return false;
	if (pthread_create(&resolver, NULL, late_resolver, st))
		return false;
	*rc = op(st);
	stalled = !atomic_load(&st->done);
	pthread_join(resolver, NULL);
	return stalled;
}

static int op_iova_ranges(struct stall *st)
{
	struct iommu_iova_range ranges[4];
	struct iommu_ioas_iova_ranges cmd = {
		.size = sizeof(cmd),
		.ioas_id = st->ioas_id,
		.num_iovas = 4,
		.allowed_iovas = (uintptr_t)ranges,
	};

	return ioctl(st->fd, IOMMU_IOAS_IOVA_RANGES, &cmd);
}

static int op_map(struct stall *st)
{
	static char other[PAGE] __attribute__((aligned(PAGE)));

	return map_fixed(st->fd, st->ioas_id, other, PAGE, BASE_IOVA + 16 * PAGE,
			 RW);
}

static void stall_test(struct __test_metadata *_metadata,
		       int (*op)(struct stall *))
{
	struct stall st;
	pthread_t t;
	bool in_time;
	int rc = -2;

	if (stall_start(&st, &t)) {
		if (errno == ENOSYS || errno == EPERM)
			SKIP(return, "no userfaultfd here");
		ASSERT_EQ(0, -errno);
	}
	in_time = returns_while_stalled(&st, op, &rc);
	stall_end(&st, t);
	/* The copy went on once the fault was resolved. */
	EXPECT_EQ(0, st.rc);
	EXPECT_EQ(0, st.buf[0]);
	EXPECT_EQ(0, rc);
	EXPECT_TRUE(in_time);
}

/* IOMMU_IOAS_IOVA_RANGES of the IOAS does not wait for the stalled copy. */
TEST(access_copy_stall_spares_ranges)
{
	stall_test(_metadata, op_iova_ranges);
}

/* Nor does a map into another part of it (upstream's does: see above). */
TEST(access_copy_stall_spares_map)
{
	stall_test(_metadata, op_map);
}

/*
 * The automatic HWPT of a device that goes while another thread's command
 * holds the HWPT: IOMMU_TEST_OP_MD_CHECK_MAP on it, stalled in its lookup
 * of a user page that userfaultfd holds.  The HWPT outlives its last device
 * then (upstream's does too: its put only destroys it when unused) and can
 * be destroyed by ID afterwards, or goes with the context; either way
 * nothing of it may stay.  Found by the fuzzer: the IOAS's list of its
 * automatic HWPTs kept the HWPT, which keeps the IOAS, so the IOAS could
 * never be destroyed and the context's release leaked both and the pins.
 */
struct hwpt_stall {
	int fd, uffd;
	__u32 ioas_id, stdev_id, hwpt_id;
	char *area;		/* registered with uffd, the check's user page */
	char *mem;		/* mapped in the IOAS: pinned by the domain */
	int rc, err;
	atomic_bool done;
};

static void *stalled_check_map(void *arg)
{
	struct hwpt_stall *st = arg;
	struct iommu_test_cmd cmd = {
		.size = sizeof(cmd),
		.op = IOMMU_TEST_OP_MD_CHECK_MAP,
		.id = st->hwpt_id,
		.check_map = { .iova = BASE_IOVA, .length = PAGE,
			       .uptr = (uintptr_t)st->area },
	};

	/* Fails once resolved (the zero page is not what is mapped). */
	st->rc = ioctl(st->fd, IOMMU_TEST_CMD, &cmd);
	st->err = errno;
	atomic_store(&st->done, true);
	return NULL;
}

/*
 * Binds a mock device to a new IOAS with HOLD_BYTES mapped, starts the stalled
 * check on its automatic HWPT and destroys the device meanwhile: 0, or -1
 * with errno.
 */
static int hwpt_stall_start(struct hwpt_stall *st, pthread_t *t)
{
	memset(st, 0, sizeof(*st));
	st->fd = open("/dev/iommu", O_RDWR);
	if (st->fd < 0 || ioas_alloc(st->fd, &st->ioas_id))
		return -1;
	st->mem = mmap(NULL, HOLD_BYTES, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (st->mem == MAP_FAILED)
		return -1;
	st->uffd = uffd_page(&st->area);
	if (st->uffd < 0)
		return -1;
	if (map_fixed(st->fd, st->ioas_id, st->mem, HOLD_BYTES, BASE_IOVA, RW) ||
	    mock_domain(st->fd, st->ioas_id, &st->stdev_id, &st->hwpt_id, NULL))
		return -1;
	if (pthread_create(t, NULL, stalled_check_map, st))
		return -1;
	/* Let the check reach the fault. */
	usleep(200 * 1000);
	return destroy(st->fd, st->stdev_id);
}

static void hwpt_stall_resolve(struct hwpt_stall *st, pthread_t t)
{
	struct uffdio_zeropage zp = {
		.range = { .start = (uintptr_t)st->area, .len = PAGE },
	};

	ioctl(st->uffd, UFFDIO_ZEROPAGE, &zp);
	pthread_join(t, NULL);
	close(st->uffd);
	munmap(st->area, PAGE);
}

static void hwpt_stall_test(struct __test_metadata *_metadata, bool by_id)
{
	struct hwpt_stall st;
	bool stalled;
	long pinned;
	pthread_t t;

	if (hwpt_stall_start(&st, &t)) {
		if (errno == ENOSYS || errno == EPERM)
			SKIP(return, "no userfaultfd here");
		ASSERT_EQ(0, -errno);
	}
	stalled = !atomic_load(&st.done);
	pinned = status_kb("VmPin");
	hwpt_stall_resolve(&st, t);
	ASSERT_TRUE(stalled);
	ASSERT_EQ(HOLD_BYTES >> 10, pinned);
	EXPECT_EQ(-1, st.rc);
	EXPECT_EQ(EINVAL, st.err);
	if (by_id) {
		/* Its last device gone, the HWPT is unused now. */
		EXPECT_EQ(0, destroy(st.fd, st.hwpt_id));
		/* Nothing holds the IOAS any more. */
		EXPECT_EQ(0, destroy(st.fd, st.ioas_id));
		EXPECT_EQ(0, status_kb("VmPin"));
	}
	close(st.fd);
	/* Closing the context gives back every pin. */
	EXPECT_EQ(0, status_kb("VmPin"));
	munmap(st.mem, HOLD_BYTES);
}

/* The HWPT, then the IOAS, are destroyed by ID. */
TEST(auto_hwpt_outliving_its_device_destroyed)
{
	hwpt_stall_test(_metadata, true);
}

/* Both go with the context. */
TEST(auto_hwpt_outliving_its_device_closed)
{
	hwpt_stall_test(_metadata, false);
}

/* ---------------------------------------------------------------------- */
/* vIOMMU objects: what drivers and mappings count, racing their destroy   */
/* ---------------------------------------------------------------------- */

/* A mock device in its own IOAS, and a nesting parent HWPT there. */
struct vobjs {
	int fd;
	__u32 ioas, stdev, idev, parent, viommu;
};

static int vobjs_make(struct vobjs *o)
{
	memset(o, 0, sizeof(*o));
	o->fd = open("/dev/iommu", O_RDWR);
	if (o->fd < 0 || ioas_alloc(o->fd, &o->ioas) ||
	    mock_domain(o->fd, o->ioas, &o->stdev, NULL, &o->idev) ||
	    hwpt_alloc(o->fd, o->idev, o->ioas, IOMMU_HWPT_ALLOC_NEST_PARENT,
		       &o->parent))
		return -1;
	return 0;
}

/* A selftest vIOMMU on the parent; with @data, it has an mmap region. */
static int viommu_make(struct vobjs *o, struct iommu_viommu_selftest *data)
{
	struct iommu_viommu_alloc cmd = {
		.size = sizeof(cmd),
		.type = IOMMU_VIOMMU_TYPE_SELFTEST,
		.dev_id = o->idev,
		.hwpt_id = o->parent,
		.data_len = data ? sizeof(*data) : 0,
		.data_uptr = (uintptr_t)data,
	};
	int rc = ioctl(o->fd, IOMMU_VIOMMU_ALLOC, &cmd);

	o->viommu = rc ? 0 : cmd.out_viommu_id;
	return rc;
}

struct mapper {
	int fd;
	__u64 offset, length;
	__u32 magic;
	atomic_bool stop;
	/* Mappings made, mmap errors other than ENXIO, wrong contents. */
	atomic_ulong maps, bad_errno, bad_data;
};

static void *mmap_loop(void *arg)
{
	struct mapper *m = arg;

	while (!m->stop) {
		volatile __u32 *p = mmap(NULL, m->length, PROT_READ | PROT_WRITE,
					 MAP_SHARED, m->fd, m->offset);

		if (p == MAP_FAILED) {
			if (errno != ENXIO)
				m->bad_errno++;
			continue;
		}
		if (*p != m->magic)
			m->bad_data++;
		m->maps++;
		munmap((void *)p, m->length);
	}
	return NULL;
}

/*
 * One thread maps and unmaps a vIOMMU's region over and over while another
 * destroys the vIOMMU: the destroy fails (EBUSY) while a mapping is there,
 * no mapping ever shows other memory, and once the destroy succeeded the
 * region is gone (ENXIO), never mapped again.
 */
TEST(viommu_mmap_vs_destroy)
{
	for (int round = 0; round < 20; round++) {
		struct iommu_viommu_selftest data = { .in_data = 0x5a5a0000 + round };
		struct mapper m = {};
		unsigned long busy = 0;
		pthread_t t;
		int rc;
		struct vobjs o;

		ASSERT_EQ(0, vobjs_make(&o));
		ASSERT_EQ(0, viommu_make(&o, &data));
		ASSERT_EQ(data.in_data, data.out_data);
		m.fd = o.fd;
		m.offset = data.out_mmap_offset;
		m.length = data.out_mmap_length;
		m.magic = data.in_data;
		ASSERT_EQ(0, pthread_create(&t, NULL, mmap_loop, &m));
		usleep(1000 * (round % 5));
		while ((rc = destroy(o.fd, o.viommu)) && errno == EBUSY)
			busy++;
		EXPECT_EQ(0, rc);
		m.stop = true;
		pthread_join(t, NULL);
		EXPECT_EQ(0, m.bad_errno);
		EXPECT_EQ(0, m.bad_data);
		EXPECT_EQ(MAP_FAILED, mmap(NULL, m.length, PROT_READ, MAP_SHARED,
					   o.fd, m.offset));
		EXPECT_EQ(ENXIO, errno);
		/* The parent is free again. */
		EXPECT_EQ(0, destroy(o.fd, o.parent));
		close(o.fd);
		if (round == 19)
			ksft_print_msg("last round: %lu maps, %lu EBUSY\n",
				       (unsigned long)m.maps, busy);
	}
}

struct vdev_churn {
	struct vobjs *o;
	atomic_bool stop;
	atomic_ulong made, bad;
};

static void *vdev_loop(void *arg)
{
	struct vdev_churn *c = arg;

	while (!c->stop) {
		struct iommu_vdevice_alloc cmd = {
			.size = sizeof(cmd),
			.viommu_id = c->o->viommu,
			.dev_id = c->o->idev,
			.virt_id = 0x99,
		};

		if (ioctl(c->o->fd, IOMMU_VDEVICE_ALLOC, &cmd)) {
			/* The device is gone, or another vDEVICE is there. */
			if (errno != ENOENT && errno != EEXIST)
				c->bad++;
			continue;
		}
		c->made++;
		/* A tombstone if the device went meanwhile. */
		if (destroy(c->o->fd, cmd.out_vdevice_id) && errno != ENOENT)
			c->bad++;
	}
	return NULL;
}

/*
 * vDEVICEs made and destroyed in a loop while the device goes: each create
 * either fails (ENOENT once the device is going) or makes a vDEVICE that
 * its destroy or the device's unbind takes away; the vIOMMU is free
 * (destroyable) at the end, nothing is left.
 */
TEST(vdevice_vs_unbind)
{
	for (int round = 0; round < 20; round++) {
		struct vdev_churn c = {};
		struct vobjs o;
		pthread_t t;

		ASSERT_EQ(0, vobjs_make(&o));
		ASSERT_EQ(0, viommu_make(&o, NULL));
		c.o = &o;
		ASSERT_EQ(0, pthread_create(&t, NULL, vdev_loop, &c));
		usleep(500 * (round % 7));
		ASSERT_EQ(0, destroy(o.fd, o.stdev));
		usleep(1000);
		c.stop = true;
		pthread_join(t, NULL);
		EXPECT_EQ(0, c.bad);
		/* No vDEVICE holds the vIOMMU any more. */
		EXPECT_EQ(0, destroy(o.fd, o.viommu));
		EXPECT_EQ(0, destroy(o.fd, o.parent));
		close(o.fd);
	}
}

static int hw_queue(struct vobjs *o, __u32 index, __u64 iova, __u32 *id)
{
	struct iommu_hw_queue_alloc cmd = {
		.size = sizeof(cmd),
		.viommu_id = o->viommu,
		.type = IOMMU_HW_QUEUE_TYPE_SELFTEST,
		.index = index,
		.nesting_parent_iova = iova,
		.length = PAGE,
	};
	int rc = ioctl(o->fd, IOMMU_HW_QUEUE_ALLOC, &cmd);

	if (!rc)
		*id = cmd.out_hw_queue_id;
	return rc;
}

struct queue_churn {
	struct vobjs *o;
	__u64 iova;
	atomic_bool stop;
	atomic_ulong made, bad;
};

static void *queue1_loop(void *arg)
{
	struct queue_churn *c = arg;

	while (!c->stop) {
		__u32 id;

		/* Queue 0 missing (EIO), or going (EBUSY). */
		if (hw_queue(c->o, 1, c->iova, &id)) {
			if (errno != EIO && errno != EBUSY)
				c->bad++;
			continue;
		}
		c->made++;
		if (destroy(c->o->fd, id))
			c->bad++;
	}
	return NULL;
}

/*
 * Queue 1 depends on queue 0 (the mock's rule): one thread makes and
 * destroys queue 1 in a loop while another destroys and remakes queue 0.
 * Queue 0 goes only while no queue 1 holds it (EBUSY otherwise), a new
 * queue 1 never depends on a queue 0 that is going, and at the end the
 * queues' pins are all given back (the memory unmaps).
 */
TEST(hw_queue_depend_vs_destroy)
{
	struct queue_churn c = {};
	unsigned long gone = 0, busy = 0;
	struct vobjs o;
	uint64_t end;
	pthread_t t;
	__u32 q0;
	void *buf;

	buf = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	ASSERT_NE(MAP_FAILED, buf);
	ASSERT_EQ(0, vobjs_make(&o));
	ASSERT_EQ(0, viommu_make(&o, NULL));
	ASSERT_EQ(0, map_fixed(o.fd, o.ioas, buf, PAGE, BASE_IOVA, RW));
	ASSERT_EQ(0, hw_queue(&o, 0, BASE_IOVA, &q0));
	c.o = &o;
	c.iova = BASE_IOVA;
	ASSERT_EQ(0, pthread_create(&t, NULL, queue1_loop, &c));
	end = now_ms() + RACE_MS;
	while (now_ms() < end) {
		if (destroy(o.fd, q0)) {
			EXPECT_EQ(EBUSY, errno);
			busy++;
			continue;
		}
		gone++;
		ASSERT_EQ(0, hw_queue(&o, 0, BASE_IOVA, &q0));
	}
	c.stop = true;
	pthread_join(t, NULL);
	EXPECT_EQ(0, c.bad);
	/* Pinned while a queue is there: the unmap is refused. */
	EXPECT_ERRNO(EBUSY, unmap(o.fd, o.ioas, BASE_IOVA, PAGE, NULL));
	EXPECT_EQ(0, destroy(o.fd, q0));
	EXPECT_EQ(0, unmap(o.fd, o.ioas, BASE_IOVA, PAGE, NULL));
	ksft_print_msg("queue 0 destroyed %lu times, %lu EBUSY; queue 1 made %lu times\n",
		       gone, busy, (unsigned long)c.made);
	EXPECT_EQ(0, destroy(o.fd, o.viommu));
	close(o.fd);
	EXPECT_EQ(0, status_kb("VmPin"));
	munmap(buf, PAGE);
}

static int trigger_vevent(int fd, __u32 idev)
{
	struct iommu_test_cmd cmd = {
		.size = sizeof(cmd),
		.op = IOMMU_TEST_OP_TRIGGER_VEVENT,
		.trigger_vevent = { .dev_id = idev },
	};

	return ioctl(fd, IOMMU_TEST_CMD, &cmd);
}

struct triggerer {
	int fd;
	__u32 idev;
	atomic_bool stop;
	atomic_ulong sent, lost, bad;
};

static void *trigger_loop(void *arg)
{
	struct triggerer *tr = arg;

	while (!tr->stop) {
		/* Queued, or lost to a full queue: numbered either way. */
		if (!trigger_vevent(tr->fd, tr->idev))
			tr->sent++;
		else if (errno == ENOMEM)
			/* Lost: no memory for the event. */
			tr->lost++;
		else
			tr->bad++;
	}
	return NULL;
}

/*
 * Events queued by the built-in helper from one thread, read from another:
 * every event read carries the device's virtual ID, sequence numbers only
 * grow (modulo INT_MAX + 1), and every event the helper numbered is either
 * read, once, or lost in a gap of the numbers (or at the tail, in the
 * lost-events header's number).
 */
TEST(vevent_reports_vs_reads)
{
	struct iommu_hwpt_selftest hdata = { .iotlb = IOMMU_TEST_IOTLB_DEFAULT };
	struct iommu_veventq_alloc qcmd = { .size = sizeof(qcmd) };
	unsigned long got = 0, lost_hdrs = 0, gaps = 0, skipped = 0;
	struct triggerer tr = {};
	__u32 nested, expect = 0;
	struct vobjs o;
	uint64_t end;
	pthread_t t;

	ASSERT_EQ(0, vobjs_make(&o));
	ASSERT_EQ(0, viommu_make(&o, NULL));
	ASSERT_EQ(0, hwpt_alloc_data(o.fd, o.idev, o.viommu, 0, 0, &hdata,
				     sizeof(hdata), &nested));
	{
		struct iommu_vdevice_alloc cmd = {
			.size = sizeof(cmd),
			.viommu_id = o.viommu,
			.dev_id = o.idev,
			.virt_id = 0x77,
		};

		ASSERT_EQ(0, ioctl(o.fd, IOMMU_VDEVICE_ALLOC, &cmd));
	}
	{
		struct iommu_test_cmd cmd = {
			.size = sizeof(cmd),
			.op = IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE,
			.id = o.stdev,
			.mock_domain_replace = { .pt_id = nested },
		};

		ASSERT_EQ(0, ioctl(o.fd, IOMMU_TEST_CMD, &cmd));
	}
	qcmd.viommu_id = o.viommu;
	qcmd.type = IOMMU_VEVENTQ_TYPE_SELFTEST;
	qcmd.veventq_depth = 8;
	ASSERT_EQ(0, ioctl(o.fd, IOMMU_VEVENTQ_ALLOC, &qcmd));
	tr.fd = o.fd;
	tr.idev = o.idev;
	ASSERT_EQ(0, pthread_create(&t, NULL, trigger_loop, &tr));
	end = now_ms() + RACE_MS;
	for (bool last = false;; ) {
		struct {
			struct iommufd_vevent_header hdr;
			__u32 virt_id;
		} ev[16];
		ssize_t n;

		if (!last && now_ms() >= end) {
			tr.stop = true;
			pthread_join(t, NULL);
			last = true;
		}
		/* Reads do not wait: 0 when nothing is queued. */
		n = read(qcmd.out_veventq_fd, ev, sizeof(ev));
		ASSERT_LE(0, n);
		if (n == 0) {
			if (last)
				break;
			continue;
		}
		for (char *p = (char *)ev; p < (char *)ev + n; ) {
			struct iommufd_vevent_header *h = (void *)p;
			__u32 next = (h->sequence + 1) & INT32_MAX;

			if (h->flags & IOMMU_VEVENTQ_FLAG_LOST_EVENTS) {
				/* Its number is the last event lost. */
				skipped += (next - expect) & INT32_MAX;
				lost_hdrs++;
				expect = next;
				p += sizeof(*h);
				continue;
			}
			ASSERT_EQ(0, h->flags);
			ASSERT_EQ(0x77, *(__u32 *)(h + 1));
			/*
			 * A gap: events lost while the queue was full.  (The
			 * lost-events header queued then goes when the next
			 * event comes: only a loss at the tail is announced.)
			 */
			if (h->sequence != expect) {
				skipped += (h->sequence - expect) & INT32_MAX;
				gaps++;
			}
			expect = next;
			got++;
			p += sizeof(*h) + sizeof(__u32);
		}
	}
	EXPECT_EQ(0, tr.bad);
	EXPECT_LT(0, got);
	/*
	 * Every event the helper numbered (queued, or lost to a full queue or
	 * a failed allocation) is read or counted in a gap.
	 */
	EXPECT_EQ(tr.sent + tr.lost, got + skipped);
	ksft_print_msg("%lu events read, %lu lost (%lu gaps, %lu headers)\n",
		       got, skipped, gaps, lost_hdrs);
	close(qcmd.out_veventq_fd);
	close(o.fd);
}

TEST_HARNESS_MAIN
