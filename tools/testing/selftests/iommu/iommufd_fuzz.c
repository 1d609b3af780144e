// SPDX-License-Identifier: GPL-2.0
/*
 * iommufd_fuzz: bounded, reproducible random sequences of /dev/iommu
 * commands, meant to crash a broken implementation or leak a pin.
 *
 * Every IOMMU_* ioctl, the VFIO type1 compat ioctls, each IOMMU_TEST_CMD op
 * and a few file and memory operations (close, read, write, poll and mmap of
 * the returned fds, munmap/mprotect of mapped memory, fork, RLIMIT_MEMLOCK
 * changes, reopening the context) are picked from one table, each with a
 * generator that favours boundary values: IOVAs and lengths at 0, 1, a page
 * and 2^64, wrapping ranges, unknown flag bits, struct sizes below and above
 * the kernel's with and without a non-zero tail, IDs of the wrong type or
 * already destroyed, and user pointers that are NULL, unmapped, read-only or
 * in the kernel.
 *
 * Several threads share one context; each has its own PRNG stream derived
 * from --seed, so --threads 1 is exactly reproducible (--digest tells two
 * runs apart).  The run stops after --ops operations or --seconds.  Then,
 * with every fd closed, no pin may be left (nr_foll_pin_acquired ==
 * nr_foll_pin_released over the run), no locked memory may stay charged
 * (VmPin/VmLck 0, and pinning exactly up to RLIMIT_MEMLOCK still works) and
 * no mock device may remain.  Prints an errno histogram per command and ends
 * with a TAP line, "ok 1 fuzz" or "not ok 1 fuzz".
 *
 * usage: iommufd_fuzz [--seed S] [--ops N] [--seconds T] [--threads N]
 *        [--memlock BYTES] [--fail-nth PCT] [--keep-ipc-lock]
 *        [--skip CMD,..] [--only CMD,..] [--tame WHAT,..] [--trace-from N]
 *        [--kmsg] [--hang S] [--list]
 *
 * --skip, --only and --tame exist to get past a bug already known;
 * the default run avoids nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <linux/capability.h>
#include <linux/iommufd.h>
#include <linux/vfio.h>

#include "iommufd_test.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define RW (IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE)
#define MAX_THREADS 64
#define MAX_ERR 134		/* errno buckets; the last one is "other" */

/*
 * Fixed addresses, so that a single-threaded run passes the same pointers
 * every time: NSLOTS slots of user memory, each followed by an unmapped gap,
 * a read-only page, then each thread's argument and data buffers, each
 * followed by a PROT_NONE guard page.
 */
#define ARENA		0x5a0000000000UL
#define SLOT_SZ		(4UL << 20)
#define SLOT_STRIDE	(8UL << 20)
#define NSLOTS		16
#define NHUGE_SLOTS	4	/* slots that may be hugetlb-backed */
#define RO_ADDR		(ARENA + NSLOTS * SLOT_STRIDE)
#define THR_BASE	(RO_ADDR + (1UL << 20))
#define THR_STRIDE	(64UL << 10)
#define ARG_SZ		(2 * 4096UL)
#define DATA_SZ		(4 * 4096UL)
#define MEMFD_SZ	(2 * SLOT_SZ)
#define NMEMFD		3

static uint64_t pg;

/* ---- options ---------------------------------------------------------- */

static struct {
	uint64_t seed, ops, trace_from, memlock;
	double seconds;
	int threads, fail_pct, hang;
	bool keep_ipc_lock, kmsg, list, fail_pages;
	bool tame_wrap, tame_mapfile, tame_devdestroy; /* past known bugs */
	const char *skip, *only;
} opt = { .seed = 1, .ops = 10000, .threads = 4, .fail_pct = 2,
	  .hang = 120, .trace_from = UINT64_MAX };

/* ---- PRNG: xoshiro256**, seeded with splitmix64 ------------------------ */

struct rng {
	uint64_t s[4];
};

static uint64_t splitmix(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void rng_seed(struct rng *r, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t rnd_raw(struct rng *r)
{
	uint64_t *s = r->s, res = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return res;
}

/* ---- shared state ------------------------------------------------------- */

/* O_PARENT: HWPTs allocated as nesting parents (also in O_HWPT) */
enum obj { O_IOAS, O_HWPT, O_STDEV, O_IDEV, O_FAULT, O_VIOMMU, O_VDEV,
	   O_VEVENTQ, O_HWQ, O_PARENT, O_NR };
enum fdkind { F_ACCESS, F_FAULT, F_VEVENTQ, F_DMABUF, F_MEMFD, F_NR };
#define POOL 16
#define NAREAS 32

struct area {
	_Atomic uint32_t ioas;
	_Atomic uint64_t iova, len, uptr;
};

/* What the threads know of the context; racy on purpose. */
static struct {
	_Atomic uint32_t ids[O_NR][POOL];
	_Atomic uint32_t stale[POOL];
	_Atomic int fds[F_NR][POOL];
	_Atomic uint64_t apages[POOL];	/* access fd << 32 | access pages id */
	_Atomic uint64_t accesses[POOL];	/* access fd << 32 | its IOAS */
	_Atomic uint64_t domains[POOL];	/* mock domain HWPT << 32 | IOAS */
	struct area areas[NAREAS];
	_Atomic uint32_t cookies[8];
	_Atomic uint64_t mmap_off, mmap_len;
	int ctx;			/* dup2 keeps the number across reopens */
	uint64_t rlim_orig;
} S;

/* Counters live in shared memory, so that forked children count too. */
struct stats {
	_Atomic uint64_t started, done, child_ops, forks, injected;
	_Atomic uint64_t hist[128][MAX_ERR + 1];
	_Atomic bool stop;
};
static struct stats *G;
static int memfds[NMEMFD];

struct thr {
	int idx;
	struct rng rng;
	uint8_t *arg, *data, scratch[ARG_SZ];
	void *buf;		/* where the current command's struct is */
	uint32_t usize;		/* the size field it carries */
	int guess_fd;		/* where a new fd would land */
	int failfd, pipe[2];
	bool child;
	uint64_t digest, nops;
	_Atomic int cur;	/* command in progress, for the hang report */
	_Atomic uint64_t curop;
	pthread_t tid;
};
static struct thr thr[MAX_THREADS];
static int kmsg_fd = -1;

static uint64_t rnd(struct thr *t)
{
	return rnd_raw(&t->rng);
}

static uint64_t below(struct thr *t, uint64_t n)
{
	return n ? rnd(t) % n : 0;
}

static bool chance(struct thr *t, unsigned int pct)
{
	return below(t, 100) < pct;
}

#define PICK(t, ...)                                                     \
	({                                                               \
		const uint64_t _v[] = { __VA_ARGS__ };                   \
		_v[below(t, ARRAY_SIZE(_v))];                            \
	})

/* ---- value generators --------------------------------------------------- */

static uint64_t edge64(struct thr *t)
{
	const uint64_t e[] = {
		0, 1, 2, pg - 1, pg, pg + 1, 2 * pg, MOCK_PAGE_SIZE,
		MOCK_HUGE_PAGE_SIZE, 2UL << 20, 1ULL << 31, 1ULL << 32,
		(1ULL << 32) - pg, 1ULL << 47, 1ULL << 48, 1ULL << 52,
		1ULL << 63, (1ULL << 63) - pg, -pg, -2 * pg, -(2ULL << 20),
		~0ULL, ~0ULL - 1, MOCK_APERTURE_START, MOCK_APERTURE_LAST,
		MOCK_APERTURE_LAST + 1ULL, MOCK_APERTURE_LAST + 1ULL - pg,
	};

	return e[below(t, ARRAY_SIZE(e))];
}

static uint32_t count32(struct thr *t)
{
	switch (below(t, 10)) {
	case 0:
		return PICK(t, 0, ~0U, ~0U - 1, 1U << 31, (1U << 31) - 1,
			    0x10000, 0x10001, 4096, 256, 255);
	case 1:
		return rnd(t);
	default:
		return below(t, 5);
	}
}

static uint32_t flags32(struct thr *t, uint32_t valid)
{
	switch (below(t, 20)) {
	case 0:
		return 0;
	case 1:
		return (rnd(t) & valid) | (1U << below(t, 32));
	case 2:
		return rnd(t);
	case 3:
		return ~0U;
	default:
		return rnd(t) & valid;
	}
}

static uint32_t reserved32(struct thr *t)
{
	return chance(t, 97) ? 0 : PICK(t, 1, 0x80000000, rnd(t));
}

static uint64_t kaddr(struct thr *t)
{
	return PICK(t, 0xffff888000000000ULL, 0xffffffff81000000ULL,
		    0xffffc90000000000ULL, -pg, 0x8000000000000000ULL,
		    0x0000800000000000ULL, 0x00007ffffffff000ULL);
}

static uint64_t slot_addr(unsigned int s)
{
	return ARENA + s * SLOT_STRIDE;
}

/* --tame wrap: past a known crash, no range reaches 2^64. */
static bool wraps(uint64_t iova, uint64_t len)
{
	return iova + len < iova;
}

static bool area_pick(struct thr *t, struct area *out)
{
	unsigned int i = below(t, NAREAS);

	for (unsigned int n = 0; n < NAREAS; n++, i = (i + 1) % NAREAS) {
		struct area *a = &S.areas[i];

		if (atomic_load(&a->len)) {
			out->ioas = atomic_load(&a->ioas);
			out->iova = atomic_load(&a->iova);
			out->len = atomic_load(&a->len);
			out->uptr = atomic_load(&a->uptr);
			return true;
		}
	}
	return false;
}

/* A mapping of @ioas if one is known, else any. */
static bool area_pick_in(struct thr *t, uint32_t ioas, struct area *out)
{
	unsigned int i = below(t, NAREAS);

	for (unsigned int n = 0; n < NAREAS; n++, i = (i + 1) % NAREAS) {
		struct area *a = &S.areas[i];

		if (atomic_load(&a->len) && atomic_load(&a->ioas) == ioas) {
			out->ioas = ioas;
			out->iova = atomic_load(&a->iova);
			out->len = atomic_load(&a->len);
			out->uptr = atomic_load(&a->uptr);
			return true;
		}
	}
	return area_pick(t, out);
}

static void area_add(struct thr *t, uint32_t ioas, uint64_t iova, uint64_t len,
		     uint64_t uptr)
{
	struct area *a = &S.areas[below(t, NAREAS)];

	if (!len || (opt.tame_wrap && wraps(iova, len)))
		return;
	atomic_store(&a->ioas, ioas);
	atomic_store(&a->iova, iova);
	atomic_store(&a->uptr, uptr);
	atomic_store(&a->len, len);
}

static uint64_t gen_iova(struct thr *t)
{
	struct area a;

	switch (below(t, 10)) {
	case 0 ... 2:
		return edge64(t);
	case 3 ... 5:
		return MOCK_APERTURE_START +
		       below(t, 256) * pg * (chance(t, 50) ? 1 : 16);
	case 6 ... 7:
		if (area_pick(t, &a))
			return a.iova + below(t, a.len / pg + 1) * pg;
		/* fallthrough */
	case 8:
		return rnd(t) & ~(pg - 1);
	default:
		return rnd(t);
	}
}

static uint64_t gen_len(struct thr *t)
{
	switch (below(t, 10)) {
	case 0 ... 1:
		return edge64(t);
	case 2:
		return below(t, 4 * pg);
	default:
		return (1 + below(t, chance(t, 80) ? 16 : SLOT_SZ / pg)) * pg;
	}
}

static void tame_range(__u64 *iova, __u64 *len)
{
	if (opt.tame_wrap && wraps(*iova, *len)) {
		*iova &= (1ULL << 62) - 1;
		*len &= (1ULL << 62) - 1;
	}
}

static void gen_range_any(struct thr *t, __u64 *iova, __u64 *len);

/* An IOVA range: often a known mapping, whole or in part, else anything. */
static void gen_range(struct thr *t, __u64 *iova, __u64 *len)
{
	gen_range_any(t, iova, len);
	tame_range(iova, len);
}

static void gen_range_any(struct thr *t, __u64 *iova, __u64 *len)
{
	unsigned int r = below(t, 10);
	struct area a;

	if (r < 4 && area_pick(t, &a)) {
		uint64_t np = a.len / pg ? a.len / pg : 1, k = below(t, np);

		switch (below(t, 5)) {
		case 0:
			*iova = a.iova, *len = a.len;
			break;
		case 1:
			*iova = a.iova, *len = (k + 1) * pg;
			break;
		case 2:
			*iova = a.iova + k * pg, *len = a.len - k * pg;
			break;
		case 3:
			*iova = a.iova + k * pg, *len = (1 + below(t, np)) * pg;
			break;
		default:
			*iova = a.iova - pg, *len = a.len + 2 * pg;
			break;
		}
		return;
	}
	*len = gen_len(t);
	if (r == 4)
		*iova = -*len;		/* ends exactly at 2^64 - 1 */
	else if (r == 5)
		*iova = ~0ULL - below(t, *len | 1); /* wraps */
	else
		*iova = gen_iova(t);
}

/* A user pointer to @len bytes: mostly mapped, sometimes anything but. */
static uint64_t gen_uptr(struct thr *t, uint64_t len)
{
	uint64_t base = slot_addr(below(t, NSLOTS));
	struct area a;

	switch (below(t, 24)) {
	case 0:
		return 0;
	case 1:
		return kaddr(t);
	case 2:
		return base + SLOT_SZ + below(t, SLOT_SZ / pg) * pg; /* gap */
	case 3:
		return RO_ADDR;
	case 4:
		return -(len ? len : pg);
	case 5:
		return base + 1 + below(t, pg - 1);
	case 6:
		return base + SLOT_SZ - (len < SLOT_SZ ? len & ~(pg - 1) : 0) +
		       pg;	/* runs into the gap */
	case 7:
		if (area_pick(t, &a))
			return a.uptr;
		/* fallthrough */
	default:
		if (len >= SLOT_SZ)
			return base;
		return base + below(t, (SLOT_SZ - len) / pg + 1) * pg;
	}
}

/* A pointer into the thread's data buffer for @len bytes, or a bad one. */
static uint64_t gen_dptr(struct thr *t, uint64_t len)
{
	switch (below(t, 20)) {
	case 0:
		return 0;
	case 1:
		return kaddr(t);
	case 2:
		return RO_ADDR;
	case 3:
		return (uint64_t)t->data + DATA_SZ -
		       (len < DATA_SZ ? len / 2 : 0); /* into the guard */
	default:
		return (uint64_t)t->data;
	}
}

static uint32_t id_pick(struct thr *t, int type)
{
	unsigned int i = below(t, POOL);

	for (unsigned int n = 0; n < POOL; n++, i = (i + 1) % POOL) {
		uint32_t id = atomic_load(&S.ids[type][i]);

		if (id)
			return id;
	}
	return 0;
}

/* An ID for an object of @type: its own, another type's, stale or junk. */
static uint32_t gen_id(struct thr *t, int type)
{
	unsigned int r = below(t, 100);
	uint32_t id = 0;

	if (r < 72)
		id = id_pick(t, type);
	else if (r < 82)
		id = id_pick(t, below(t, O_NR));
	else if (r < 88)
		id = atomic_load(&S.stale[below(t, POOL)]);
	else if (r < 92)
		return 0;
	else if (r < 96)
		return 1 + below(t, 32);
	else
		return PICK(t, ~0U, 0x7fffffff, 0x80000000, rnd(t));
	return id ? id : 1 + below(t, 16);
}

static void id_add(struct thr *t, int type, uint32_t id)
{
	if (id)
		atomic_store(&S.ids[type][below(t, POOL)], id);
}

static void id_forget(struct thr *t, uint32_t id)
{
	for (int o = 0; o < O_NR; o++)
		for (int i = 0; i < POOL; i++) {
			uint32_t old = id;

			atomic_compare_exchange_strong(&S.ids[o][i], &old, 0);
		}
	atomic_store(&S.stale[below(t, POOL)], id);
}

static int fd_pick(struct thr *t, int kind)
{
	unsigned int i = below(t, POOL);

	for (unsigned int n = 0; n < POOL; n++, i = (i + 1) % POOL) {
		int fd = atomic_load(&S.fds[kind][i]);

		if (fd >= 0)
			return fd;
	}
	return -1;
}

static int gen_fd(struct thr *t, int kind)
{
	unsigned int r = below(t, 100);
	int fd = -1;

	if (r < 80)
		fd = fd_pick(t, kind);
	else if (r < 90)
		fd = fd_pick(t, below(t, F_NR));
	else if (r < 94)
		return S.ctx;
	else
		return PICK(t, -1, 0, 1023, 0x7fffffff, -2);
	return fd >= 0 ? fd : 3 + (int)below(t, 61);
}

/* Evicting an fd closes it: nothing leaks, and fd numbers get reused. */
static void fd_add(struct thr *t, int kind, int fd)
{
	int old;

	if (fd <= 2)
		return;
	fcntl(fd, F_SETFL, O_NONBLOCK);
	old = atomic_exchange(&S.fds[kind][below(t, POOL)], fd);
	if (old >= 0 && old != fd)
		close(old);
}

/* ---- the commands ------------------------------------------------------- */

typedef void gen_fn(struct thr *t, void *p, unsigned long *arg);
typedef void post_fn(struct thr *t, void *p, long rc);
typedef long run_fn(struct thr *t);

struct cmd {
	const char *name;
	unsigned long req;	/* an ioctl on the context; 0: run() */
	uint32_t size;		/* the kernel's struct size (size/argsz first) */
	uint32_t test_op;	/* IOMMU_TEST_CMD op */
	unsigned int weight;
	unsigned int flags;
	gen_fn *gen;
	post_fn *post;
	run_fn *run;
	size_t fd_off;		/* where a returned fd is, if any */
	int fd_kind;
};
#define C_VALUE		1	/* the argument is a value, not a struct */
#define C_NOCHILD	2	/* not in a forked child */

/* ---- generators and result handlers, one pair per command ---- */

#define GEN(n) static void gen_##n(struct thr *t, void *p, unsigned long *arg)
#define POST(n) static void post_##n(struct thr *t, void *p, long rc)

static uint32_t gen_pt(struct thr *t)
{
	return gen_id(t, PICK(t, O_IOAS, O_IOAS, O_HWPT, O_VIOMMU));
}

GEN(destroy)
{
	struct iommu_destroy *c = p;

	c->id = gen_id(t, below(t, O_NR));
	for (int i = 0; opt.tame_devdestroy && i < POOL; i++)
		if (atomic_load(&S.ids[O_STDEV][i]) == c->id)
			c->id = 0;
}
POST(destroy)
{
	id_forget(t, ((struct iommu_destroy *)p)->id);
}

GEN(ioas_alloc)
{
	((struct iommu_ioas_alloc *)p)->flags = flags32(t, 0);
}
POST(ioas_alloc)
{
	id_add(t, O_IOAS, ((struct iommu_ioas_alloc *)p)->out_ioas_id);
}

static void fill_ranges(struct thr *t, unsigned int n)
{
	struct iommu_iova_range *r = (void *)t->data;

	for (unsigned int i = 0; i < n && i < DATA_SZ / sizeof(*r); i++) {
		__u64 iova, len;

		gen_range(t, &iova, &len);
		r[i].start = iova;
		r[i].last = chance(t, 90) ? iova + len - 1 : rnd(t);
	}
}

GEN(allow_iovas)
{
	struct iommu_ioas_allow_iovas *c = p;

	c->ioas_id = gen_id(t, O_IOAS);
	c->num_iovas = count32(t);
	c->__reserved = reserved32(t);
	fill_ranges(t, c->num_iovas);
	c->allowed_iovas = gen_dptr(t, c->num_iovas * 16ULL);
}

GEN(iova_ranges)
{
	struct iommu_ioas_iova_ranges *c = p;

	c->ioas_id = gen_id(t, O_IOAS);
	c->num_iovas = count32(t);
	c->__reserved = reserved32(t);
	c->allowed_iovas = gen_dptr(t, c->num_iovas * 16ULL);
}

GEN(ioas_map)
{
	struct iommu_ioas_map *c = p;

	c->flags = flags32(t, IOMMU_IOAS_MAP_FIXED_IOVA | RW) |
		   (chance(t, 70) ? RW : 0);
	c->ioas_id = gen_id(t, O_IOAS);
	c->__reserved = reserved32(t);
	gen_range(t, &c->iova, &c->length);
	c->user_va = gen_uptr(t, c->length);
}
POST(ioas_map)
{
	struct iommu_ioas_map *c = p;

	area_add(t, c->ioas_id, c->iova, c->length, c->user_va);
}

GEN(map_file)
{
	struct iommu_ioas_map_file *c = p;

	c->flags = flags32(t, IOMMU_IOAS_MAP_FIXED_IOVA | RW) |
		   (chance(t, 70) ? RW : 0);
	c->ioas_id = gen_id(t, O_IOAS);
	c->fd = chance(t, 75) ? gen_fd(t, F_MEMFD) : gen_fd(t, F_DMABUF);
	/* --tame mapfile: no file that may hold the context (a cycle) */
	if (opt.tame_mapfile) {
		char path[32], link[64] = "";

		snprintf(path, sizeof(path), "/proc/self/fd/%d", c->fd);
		if (readlink(path, link, sizeof(link) - 1) < 0 ||
		    (strncmp(link, "/memfd:", 7) &&
		     strncmp(link, "anon_inode:dmabuf", 17)))
			c->fd = memfds[below(t, NMEMFD)];
	}
	gen_range(t, &c->iova, &c->length);
	c->start = chance(t, 70) ? below(t, MEMFD_SZ / pg) * pg :
				   PICK(t, MEMFD_SZ, MEMFD_SZ - pg, 1, -pg,
					~0ULL, edge64(t));
}
POST(map_file)
{
	struct iommu_ioas_map_file *c = p;

	area_add(t, c->ioas_id, c->iova, c->length, 0);
}

GEN(ioas_copy)
{
	struct iommu_ioas_copy *c = p;
	struct area a;

	c->flags = flags32(t, IOMMU_IOAS_MAP_FIXED_IOVA | RW) |
		   (chance(t, 70) ? RW : 0);
	c->dst_ioas_id = gen_id(t, O_IOAS);
	gen_range(t, &c->src_iova, &c->length);
	c->src_ioas_id = gen_id(t, O_IOAS);
	if (chance(t, 50) && area_pick(t, &a)) {
		c->src_ioas_id = a.ioas;
		c->src_iova = a.iova;
	}
	c->dst_iova = gen_iova(t);
}
POST(ioas_copy)
{
	struct iommu_ioas_copy *c = p;

	area_add(t, c->dst_ioas_id, c->dst_iova, c->length, 0);
}

GEN(ioas_unmap)
{
	struct iommu_ioas_unmap *c = p;

	c->ioas_id = gen_id(t, O_IOAS);
	if (chance(t, 8)) {
		c->iova = 0, c->length = ~0ULL;	/* everything */
		return;
	}
	gen_range(t, &c->iova, &c->length);
}

GEN(option)
{
	struct iommu_option *c = p;

	c->option_id = PICK(t, IOMMU_OPTION_RLIMIT_MODE,
			    IOMMU_OPTION_HUGE_PAGES, 2, rnd(t));
	c->op = PICK(t, IOMMU_OPTION_OP_SET, IOMMU_OPTION_OP_GET, 2, rnd(t));
	c->__reserved = reserved32(t);
	c->object_id = chance(t, 50) ? 0 : gen_id(t, O_IOAS);
	c->val64 = PICK(t, 0, 1, 2, ~0ULL);
}

GEN(vfio_ioas)
{
	struct iommu_vfio_ioas *c = p;

	c->ioas_id = gen_id(t, O_IOAS);
	c->op = PICK(t, IOMMU_VFIO_IOAS_GET, IOMMU_VFIO_IOAS_SET,
		     IOMMU_VFIO_IOAS_SET, IOMMU_VFIO_IOAS_CLEAR, 3, rnd(t));
	c->__reserved = reserved32(t);
}
POST(vfio_ioas)
{
	struct iommu_vfio_ioas *c = p;

	if (c->op == IOMMU_VFIO_IOAS_GET)
		id_add(t, O_IOAS, c->ioas_id);
}

/*
 * Mostly one of the shapes that can work (a paging HWPT on an IOAS, a
 * nested one on a parent or a vIOMMU, with selftest data), else anything.
 */
GEN(hwpt_alloc)
{
	struct iommu_hwpt_alloc *c = p;
	struct iommu_hwpt_selftest *d = (void *)t->data;
	unsigned int shape = below(t, 4);

	c->dev_id = gen_id(t, O_IDEV);
	c->__reserved = reserved32(t);
	c->__reserved2 = reserved32(t);
	d->iotlb = chance(t, 80) ? IOMMU_TEST_IOTLB_DEFAULT : rnd(t);
	d->pagetable_type = PICK(t, MOCK_IOMMUPT_DEFAULT, MOCK_IOMMUPT_HUGE, 2,
				 rnd(t));
	if (shape == 0) {
		c->pt_id = gen_id(t, O_IOAS);
		c->flags = PICK(t, 0, IOMMU_HWPT_ALLOC_NEST_PARENT,
				IOMMU_HWPT_ALLOC_DIRTY_TRACKING,
				IOMMU_HWPT_ALLOC_NEST_PARENT |
					IOMMU_HWPT_ALLOC_DIRTY_TRACKING,
				IOMMU_HWPT_ALLOC_PASID);
	} else if (shape == 1) {
		c->pt_id = gen_id(t, PICK(t, O_PARENT, O_PARENT, O_VIOMMU));
		c->data_type = IOMMU_HWPT_DATA_SELFTEST;
		c->data_len = sizeof(*d);
		c->data_uptr = (uint64_t)t->data;
	} else {
		c->flags = flags32(t, IOMMU_HWPT_ALLOC_NEST_PARENT |
					      IOMMU_HWPT_ALLOC_DIRTY_TRACKING |
					      IOMMU_HWPT_FAULT_ID_VALID |
					      IOMMU_HWPT_ALLOC_PASID);
		c->pt_id = gen_pt(t);
		if (chance(t, 50)) {
			c->data_type = PICK(t, IOMMU_HWPT_DATA_SELFTEST,
					    IOMMU_HWPT_DATA_NONE,
					    IOMMU_HWPT_DATA_VTD_S1,
					    IOMMU_HWPT_DATA_ARM_SMMUV3,
					    IOMMU_HWPT_DATA_AMD_GUEST, rnd(t));
			c->data_len = chance(t, 80) ? sizeof(*d) : count32(t);
			c->data_uptr = gen_dptr(t, c->data_len);
		}
	}
	if (chance(t, 20))
		c->flags |= IOMMU_HWPT_FAULT_ID_VALID;
	c->fault_id = gen_id(t, O_FAULT);
}
POST(hwpt_alloc)
{
	struct iommu_hwpt_alloc *c = p;

	id_add(t, O_HWPT, c->out_hwpt_id);
	if (c->flags & IOMMU_HWPT_ALLOC_NEST_PARENT)
		id_add(t, O_PARENT, c->out_hwpt_id);
}

GEN(get_hw_info)
{
	struct iommu_hw_info *c = p;

	c->flags = flags32(t, IOMMU_HW_INFO_FLAG_INPUT_TYPE);
	c->dev_id = gen_id(t, O_IDEV);
	c->data_len = PICK(t, 0, 4, 8, 16, pg, count32(t));
	c->data_uptr = gen_dptr(t, c->data_len);
	c->in_data_type = PICK(t, IOMMU_HW_INFO_TYPE_DEFAULT,
			       IOMMU_HW_INFO_TYPE_SELFTEST,
			       IOMMU_HW_INFO_TYPE_INTEL_VTD, rnd(t));
	c->__reserved[0] = reserved32(t);
}

GEN(set_dirty)
{
	struct iommu_hwpt_set_dirty_tracking *c = p;

	c->flags = chance(t, 80) ? below(t, 2) :
				   flags32(t, IOMMU_HWPT_DIRTY_TRACKING_ENABLE);
	c->hwpt_id = gen_id(t, O_HWPT);
	c->__reserved = reserved32(t);
}

static uint64_t gen_pgsize(struct thr *t)
{
	return PICK(t, pg, pg, MOCK_PAGE_SIZE, 0, 1, 3, 2UL << 20, 1ULL << 63,
		    1ULL << below(t, 64), rnd(t));
}

static uint32_t gen_domain(struct thr *t, struct area *a);

GEN(get_dirty)
{
	struct iommu_hwpt_get_dirty_bitmap *c = p;
	struct area a;

	c->hwpt_id = gen_domain(t, &a);
	c->flags = flags32(t, IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR);
	c->__reserved = reserved32(t);
	gen_range(t, &c->iova, &c->length);
	if (chance(t, 70) && a.len)
		c->iova = a.iova, c->length = a.len;
	c->page_size = chance(t, 50) ? pg : gen_pgsize(t);
	c->data = gen_dptr(t, DATA_SZ);
}

GEN(invalidate)
{
	struct iommu_hwpt_invalidate *c = p;
	uint32_t *w = (void *)t->data;

	c->hwpt_id = gen_id(t, PICK(t, O_HWPT, O_HWPT, O_VIOMMU));
	c->data_type = PICK(t, IOMMU_HWPT_INVALIDATE_DATA_SELFTEST,
			    IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST,
			    IOMMU_HWPT_INVALIDATE_DATA_SELFTEST_INVALID,
			    IOMMU_HWPT_INVALIDATE_DATA_VTD_S1,
			    IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3, rnd(t));
	c->entry_len = PICK(t, sizeof(struct iommu_hwpt_invalidate_selftest),
			    sizeof(struct iommu_viommu_invalidate_selftest), 0,
			    4, 16, pg, count32(t));
	c->entry_num = chance(t, 70) ? 1 + below(t, 4) : count32(t);
	c->__reserved = reserved32(t);
	for (unsigned int i = 0; i < 64; i++)	/* flags, ids, cache ids */
		w[i] = chance(t, 85) ? below(t, 4) : rnd(t);
	c->data_uptr = gen_dptr(t, (uint64_t)c->entry_len * c->entry_num);
}

GEN(fault_alloc)
{
	((struct iommu_fault_alloc *)p)->flags = flags32(t, 0);
}
POST(fault_alloc)
{
	id_add(t, O_FAULT, ((struct iommu_fault_alloc *)p)->out_fault_id);
}

GEN(viommu_alloc)
{
	struct iommu_viommu_alloc *c = p;
	struct iommu_viommu_selftest *d = (void *)t->data;

	c->flags = flags32(t, 0);
	c->type = PICK(t, IOMMU_VIOMMU_TYPE_SELFTEST, IOMMU_VIOMMU_TYPE_SELFTEST,
		       IOMMU_VIOMMU_TYPE_DEFAULT, IOMMU_VIOMMU_TYPE_ARM_SMMUV3,
		       rnd(t));
	c->dev_id = gen_id(t, O_IDEV);
	c->hwpt_id = gen_id(t, PICK(t, O_PARENT, O_PARENT, O_HWPT));
	c->__reserved = reserved32(t);
	memset(d, 0, sizeof(*d));
	d->in_data = rnd(t);
	c->data_len = chance(t, 60) ? sizeof(*d) : PICK(t, 0, 4, 8, count32(t));
	c->data_uptr = gen_dptr(t, c->data_len);
}
POST(viommu_alloc)
{
	struct iommu_viommu_alloc *c = p;
	struct iommu_viommu_selftest *d = (void *)t->data;

	id_add(t, O_VIOMMU, c->out_viommu_id);
	if (c->data_uptr == (uint64_t)t->data && c->data_len >= sizeof(*d) &&
	    d->out_mmap_length) {
		atomic_store(&S.mmap_off, d->out_mmap_offset);
		atomic_store(&S.mmap_len, d->out_mmap_length);
	}
}

GEN(vdevice_alloc)
{
	struct iommu_vdevice_alloc *c = p;

	c->viommu_id = gen_id(t, O_VIOMMU);
	c->dev_id = gen_id(t, O_IDEV);
	c->virt_id = PICK(t, 0, 1, 2, 3, below(t, 8), ~0ULL, 1ULL << 32, rnd(t));
}
POST(vdevice_alloc)
{
	id_add(t, O_VDEV, ((struct iommu_vdevice_alloc *)p)->out_vdevice_id);
}

GEN(change_process)
{
	((struct iommu_ioas_change_process *)p)->__reserved = reserved32(t);
}

GEN(veventq_alloc)
{
	struct iommu_veventq_alloc *c = p;

	c->flags = flags32(t, 0);
	c->viommu_id = gen_id(t, O_VIOMMU);
	c->type = PICK(t, IOMMU_VEVENTQ_TYPE_SELFTEST, IOMMU_VEVENTQ_TYPE_SELFTEST,
		       IOMMU_VEVENTQ_TYPE_DEFAULT, IOMMU_VEVENTQ_TYPE_ARM_SMMUV3,
		       rnd(t));
	c->veventq_depth = PICK(t, 1, 2, 16, 0, ~0U, count32(t));
	c->__reserved = reserved32(t);
}
POST(veventq_alloc)
{
	id_add(t, O_VEVENTQ, ((struct iommu_veventq_alloc *)p)->out_veventq_id);
}

GEN(hw_queue_alloc)
{
	struct iommu_hw_queue_alloc *c = p;

	c->flags = flags32(t, 0);
	c->viommu_id = gen_id(t, O_VIOMMU);
	c->type = PICK(t, IOMMU_HW_QUEUE_TYPE_SELFTEST,
		       IOMMU_HW_QUEUE_TYPE_SELFTEST, IOMMU_HW_QUEUE_TYPE_DEFAULT,
		       IOMMU_HW_QUEUE_TYPE_TEGRA241_CMDQV, rnd(t));
	c->index = PICK(t, 0, 0, 1, 2, count32(t));
	gen_range(t, &c->nesting_parent_iova, &c->length);
	if (chance(t, 50))
		c->length = PICK(t, pg, 2 * pg, MOCK_PAGE_SIZE);
}
POST(hw_queue_alloc)
{
	id_add(t, O_HWQ, ((struct iommu_hw_queue_alloc *)p)->out_hw_queue_id);
}

GEN(noiommu_get_pa)
{
	struct iommu_ioas_noiommu_get_pa *c = p;

	c->flags = flags32(t, 0);
	c->ioas_id = gen_id(t, O_IOAS);
	c->__reserved = reserved32(t);
	gen_range(t, &c->iova, &c->length);
}

/* ---- VFIO type1 compat ---- */

GEN(vfio_value)
{
	*arg = PICK(t, 0, 1, ~0UL, rnd(t));
}

GEN(vfio_check_ext)
{
	*arg = PICK(t, VFIO_TYPE1_IOMMU, VFIO_TYPE1v2_IOMMU, VFIO_DMA_CC_IOMMU,
		    VFIO_UNMAP_ALL, VFIO_UPDATE_VADDR, VFIO_NOIOMMU_IOMMU,
		    6, VFIO_SPAPR_TCE_IOMMU, 0, ~0UL,
		    rnd(t));
}

GEN(vfio_set_iommu)
{
	*arg = chance(t, 75) ? PICK(t, VFIO_TYPE1_IOMMU, VFIO_TYPE1v2_IOMMU) :
			       PICK(t, VFIO_NOIOMMU_IOMMU, 0, ~0UL, rnd(t));
}

GEN(vfio_get_info)
{
	struct vfio_iommu_type1_info *c = p;

	/* Room for the capability chain, or not. */
	c->argsz = PICK(t, sizeof(*c), 64, 256, pg, ARG_SZ);
	c->flags = flags32(t, VFIO_IOMMU_INFO_PGSIZES | VFIO_IOMMU_INFO_CAPS);
}

GEN(vfio_map)
{
	struct vfio_iommu_type1_dma_map *c = p;
	__u64 iova, len;

	c->flags = flags32(t, VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE |
				      VFIO_DMA_MAP_FLAG_VADDR) |
		   (chance(t, 70) ? 3 : 0);
	gen_range(t, &iova, &len);
	c->iova = iova;
	c->size = len;
	c->vaddr = gen_uptr(t, len);
}
POST(vfio_map)
{
	struct vfio_iommu_type1_dma_map *c = p;

	area_add(t, 0, c->iova, c->size, c->vaddr);
}

GEN(vfio_unmap)
{
	struct vfio_iommu_type1_dma_unmap *c = p;
	__u64 iova, len;

	struct area a;

	c->flags = chance(t, 70) ? 0 :
		   flags32(t, VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP |
				      VFIO_DMA_UNMAP_FLAG_ALL |
				      VFIO_DMA_UNMAP_FLAG_VADDR);
	gen_range(t, &iova, &len);
	if (chance(t, 50) && area_pick_in(t, 0, &a) && !a.ioas && a.len > pg) {
		/* a part of a type1 mapping: its head, tail or middle */
		uint64_t np = a.len / pg, k = below(t, np);

		iova = a.iova + k * pg;
		len = (1 + below(t, np - k)) * pg;
	}
	c->iova = iova;
	c->size = len;
}

/* ---- IOMMU_TEST_CMD ops ---- */

#define TC struct iommu_test_cmd *c = p

GEN(t_add_reserved)
{
	TC;
	c->id = gen_id(t, O_IOAS);
	gen_range(t, &c->add_reserved.start, &c->add_reserved.length);
}

GEN(t_mock_domain)
{
	TC;
	c->id = gen_pt(t);
}
GEN(t_mock_domain_flags)
{
	TC;
	c->id = gen_pt(t);
	c->mock_domain_flags.dev_flags =
		flags32(t, MOCK_FLAGS_DEVICE_NO_DIRTY | MOCK_FLAGS_DEVICE_PASID);
}
POST(t_mock_domain)
{
	TC;
	id_add(t, O_STDEV, c->mock_domain.out_stdev_id);
	id_add(t, O_HWPT, c->mock_domain.out_hwpt_id);
	id_add(t, O_IDEV, c->mock_domain.out_idev_id);
	atomic_store(&S.domains[below(t, POOL)],
		     (uint64_t)c->mock_domain.out_hwpt_id << 32 | c->id);
}

/* A mock domain's HWPT and a mapping of its IOAS, if any is known. */
static uint32_t gen_domain(struct thr *t, struct area *a)
{
	uint64_t v = atomic_load(&S.domains[below(t, POOL)]);

	if (v && chance(t, 70) && area_pick_in(t, (uint32_t)v, a) &&
	    a->ioas == (uint32_t)v)
		return v >> 32;
	memset(a, 0, sizeof(*a));
	return gen_id(t, O_HWPT);
}

GEN(t_check_map)
{
	TC;
	struct area a;

	c->id = gen_domain(t, &a);
	gen_range(t, &c->check_map.iova, &c->check_map.length);
	c->check_map.uptr = gen_uptr(t, c->check_map.length);
	if (chance(t, 80) && a.len) {
		c->check_map.iova = a.iova;
		c->check_map.length = a.len;
		c->check_map.uptr = a.uptr;
	}
}

GEN(t_check_refs)
{
	TC;
	c->check_refs.length = gen_len(t);
	c->check_refs.uptr = gen_uptr(t, c->check_refs.length);
	c->check_refs.refs = PICK(t, 0, 1, 2, count32(t));
}

GEN(t_create_access)
{
	TC;
	c->id = gen_id(t, O_IOAS);
	c->create_access.flags =
		chance(t, 70) ? MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES :
				flags32(t, MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES);
}
POST(t_create_access)
{
	TC;
	uint64_t v = (uint64_t)c->create_access.out_access_fd << 32 | c->id;

	fd_add(t, F_ACCESS, c->create_access.out_access_fd);
	atomic_store(&S.accesses[below(t, POOL)], v);
}

/* An access fd, and a mapping of its IOAS to reach through it. */
static int gen_access(struct thr *t, struct area *a)
{
	uint64_t v = atomic_load(&S.accesses[below(t, POOL)]);

	if (v && chance(t, 80) && area_pick_in(t, (uint32_t)v, a))
		return v >> 32;
	if (!area_pick(t, a))
		memset(a, 0, sizeof(*a));
	return gen_fd(t, F_ACCESS);
}

GEN(t_destroy_access_pages)
{
	TC;
	uint64_t ap = atomic_load(&S.apages[below(t, POOL)]);

	c->id = ap && chance(t, 80) ? (uint32_t)(ap >> 32) : gen_fd(t, F_ACCESS);
	c->destroy_access_pages.access_pages_id =
		ap && chance(t, 80) ? (uint32_t)ap : count32(t);
}

GEN(t_access_pages)
{
	TC;
	struct area a;

	c->id = gen_access(t, &a);
	c->access_pages.flags =
		flags32(t, MOCK_FLAGS_ACCESS_WRITE | MOCK_FLAGS_ACCESS_SYZ);
	gen_range(t, &c->access_pages.iova, &c->access_pages.length);
	c->access_pages.uptr = gen_uptr(t, c->access_pages.length);
	if (chance(t, 70) && a.len) {
		uint64_t k = below(t, a.len / pg + 1) * pg;

		c->access_pages.iova = a.iova + k;
		c->access_pages.uptr = a.uptr + k;
		c->access_pages.length = (1 + below(t, 8)) * pg;
	}
}
POST(t_access_pages)
{
	TC;
	uint64_t v = (uint64_t)c->id << 32 | c->access_pages.out_access_pages_id;

	atomic_store(&S.apages[below(t, POOL)], v);
}

GEN(t_access_rw)
{
	TC;
	struct area a;

	c->id = gen_access(t, &a);
	gen_range(t, &c->access_rw.iova, &c->access_rw.length);
	if (chance(t, 60) && a.len)
		c->access_rw.iova = a.iova + below(t, a.len);
	if (chance(t, 70))
		c->access_rw.length = below(t, 2 * pg + 2);
	c->access_rw.uptr = gen_dptr(t, c->access_rw.length);
	c->access_rw.flags =
		flags32(t, MOCK_ACCESS_RW_WRITE | MOCK_ACCESS_RW_SLOW_PATH);
}

GEN(t_memory_limit)
{
	TC;
	c->memory_limit.limit = PICK(t, 0, 1, 8, 16, 64, 4096, 65536, rnd(t));
}

GEN(t_domain_replace)
{
	TC;
	c->id = gen_id(t, O_STDEV);
	c->mock_domain_replace.pt_id = gen_pt(t);
}

GEN(t_access_replace)
{
	TC;
	c->id = gen_fd(t, F_ACCESS);
	c->access_replace_ioas.ioas_id = gen_id(t, O_IOAS);
}

GEN(t_dirty)
{
	TC;
	struct area a;

	c->id = gen_domain(t, &a);
	c->dirty.flags = flags32(t, 1);
	gen_range(t, &c->dirty.iova, &c->dirty.length);
	if (chance(t, 70) && a.len)
		c->dirty.iova = a.iova, c->dirty.length = a.len;
	c->dirty.page_size = chance(t, 50) ? pg : gen_pgsize(t);
	memset(t->data, 0xff, 256);
	c->dirty.uptr = gen_dptr(t, DATA_SZ);
}

GEN(t_check_iotlb)
{
	TC;
	c->id = gen_id(t, O_HWPT);
	c->check_iotlb.id = PICK(t, 0, 1, 3, 4, count32(t));
	c->check_iotlb.iotlb = PICK(t, IOMMU_TEST_IOTLB_DEFAULT, 0, rnd(t));
}

static uint32_t gen_pasid(struct thr *t)
{
	return PICK(t, 0, 1, 2, IOMMU_TEST_PASID_RESERVED,
		    (1U << MOCK_PASID_WIDTH) - 1, 1U << MOCK_PASID_WIDTH, ~0U,
		    below(t, 8));
}

GEN(t_trigger_iopf)
{
	TC;
	c->trigger_iopf.dev_id = gen_id(t, O_IDEV);
	c->trigger_iopf.pasid = gen_pasid(t);
	c->trigger_iopf.grpid = count32(t);
	c->trigger_iopf.perm = flags32(t, IOMMU_PGFAULT_PERM_READ |
						  IOMMU_PGFAULT_PERM_WRITE |
						  IOMMU_PGFAULT_PERM_EXEC |
						  IOMMU_PGFAULT_PERM_PRIV);
	c->trigger_iopf.addr = gen_iova(t);
}

GEN(t_check_dev_cache)
{
	TC;
	c->id = gen_id(t, O_IDEV);
	c->check_dev_cache.id = PICK(t, 0, 3, 4, count32(t));
	c->check_dev_cache.cache =
		PICK(t, IOMMU_TEST_DEV_CACHE_DEFAULT, 0, rnd(t));
}

GEN(t_trigger_vevent)
{
	TC;
	c->trigger_vevent.dev_id = gen_id(t, O_IDEV);
}

GEN(t_pasid_attach)
{
	TC;
	c->id = gen_id(t, O_STDEV);
	c->pasid_attach.pasid = gen_pasid(t);
	c->pasid_attach.pt_id = gen_pt(t);
}

GEN(t_pasid_detach)
{
	TC;
	c->id = gen_id(t, O_STDEV);
	c->pasid_detach.pasid = gen_pasid(t);
}

GEN(t_pasid_check)
{
	TC;
	c->id = gen_id(t, O_STDEV);
	c->pasid_check.pasid = gen_pasid(t);
	c->pasid_check.hwpt_id = chance(t, 30) ? 0 : gen_id(t, O_HWPT);
}

GEN(t_dmabuf_get)
{
	TC;
	c->dmabuf_get.length = PICK(t, pg, 2 * pg, 16 * pg, 0, 1, pg + 1, ~0U,
				    count32(t));
	c->dmabuf_get.open_flags = PICK(t, O_RDWR | O_CLOEXEC, O_RDWR, 0,
					rnd(t));
}
POST(t_dmabuf_get)
{
	fd_add(t, F_DMABUF, rc);
}

GEN(t_dmabuf_revoke)
{
	TC;
	c->dmabuf_revoke.dmabuf_fd = gen_fd(t, F_DMABUF);
	c->dmabuf_revoke.revoked = PICK(t, 0, 1, 1, rnd(t));
}

GEN(t_bad_op)
{
	TC;
	c->op = PICK(t, 0, IOMMU_TEST_OP_DMABUF_REVOKE + 1, 0x100, ~0U, rnd(t));
	c->id = gen_id(t, below(t, O_NR));
}


/* ---- operations other than ioctls on the context ---- */

static int gen_event_fd(struct thr *t)
{
	return gen_fd(t, PICK(t, F_FAULT, F_FAULT, F_VEVENTQ, F_VEVENTQ,
			      F_ACCESS, F_DMABUF));
}

static long run_close(struct thr *t)
{
	int kind = below(t, F_MEMFD);	/* memfds stay */
	int fd = atomic_exchange(&S.fds[kind][below(t, POOL)], -1);

	return close(fd);
}

static long run_read(struct thr *t)
{
	int fd = gen_event_fd(t);
	uint64_t len = PICK(t, 0, 1, 8, sizeof(struct iommu_hwpt_pgfault),
			    2 * sizeof(struct iommu_hwpt_pgfault), 4096,
			    DATA_SZ, ~0UL >> 1);
	uint64_t ptr = gen_dptr(t, len);
	long rc = read(fd, (void *)ptr, len);
	struct iommu_hwpt_pgfault *f = (void *)t->data;

	if (ptr == (uint64_t)t->data && rc >= (long)sizeof(*f))
		for (long i = 0; i < rc / (long)sizeof(*f) && i < 8; i++)
			atomic_store(&S.cookies[below(t, 8)], f[i].cookie);
	return rc;
}

static long run_write(struct thr *t)
{
	struct iommu_hwpt_page_response *r = (void *)t->data;
	unsigned int n = 1 + below(t, 4);
	uint64_t len;

	for (unsigned int i = 0; i < n; i++) {
		r[i].cookie = chance(t, 80) ? atomic_load(&S.cookies[below(t, 8)])
					    : rnd(t);
		r[i].code = PICK(t, IOMMUFD_PAGE_RESP_SUCCESS,
				 IOMMUFD_PAGE_RESP_INVALID, 2, rnd(t));
	}
	len = chance(t, 80) ? n * sizeof(*r) : PICK(t, 0, 1, 7, 12, ~0UL >> 1);
	return write(gen_event_fd(t), (void *)gen_dptr(t, len), len);
}

static long run_poll(struct thr *t)
{
	struct pollfd p = { .fd = gen_event_fd(t), .events = POLLIN | POLLOUT };

	return poll(&p, 1, 0);
}

/* mmap of the context (a vIOMMU's MMIO page, at the offset it gave) */
static long run_mmap(struct thr *t)
{
	uint64_t off = chance(t, 60) ? atomic_load(&S.mmap_off) :
				       PICK(t, 0, pg, rnd(t) & ~(pg - 1));
	uint64_t len = chance(t, 60) ? atomic_load(&S.mmap_len) :
				       PICK(t, pg, 2 * pg, 0, 1, 1UL << 30);
	int prot = PICK(t, PROT_READ, PROT_READ | PROT_WRITE, PROT_EXEC);
	int flags = chance(t, 85) ? MAP_SHARED : MAP_PRIVATE;
	void *m = mmap(NULL, len, prot, flags, S.ctx, off);
	char c;

	if (m == MAP_FAILED)
		return -1;
	/* Touch it through a pipe: a bad page is EFAULT, not SIGBUS. */
	if (write(t->pipe[1], m, 1) == 1 && read(t->pipe[0], &c, 1) != 1)
		abort();
	munmap(m, len);
	return 0;
}

enum { SK_ANON, SK_SHARED, SK_MEMFD, SK_HUGE, SK_NR };

static long map_slot(unsigned int s, int kind)
{
	void *a = (void *)slot_addr(s), *m;
	int fl = MAP_FIXED, fd = -1;
	off_t off = 0;

	switch (kind) {
	case SK_HUGE:
		if (s < NHUGE_SLOTS) {
			m = mmap(a, SLOT_SZ, PROT_READ | PROT_WRITE,
				 fl | MAP_SHARED | MAP_ANONYMOUS | MAP_HUGETLB,
				 -1, 0);
			if (m != MAP_FAILED)
				return 0;
		}
		/* fallthrough */
	case SK_ANON:
		fl |= MAP_PRIVATE | MAP_ANONYMOUS;
		break;
	case SK_SHARED:
		fl |= MAP_SHARED | MAP_ANONYMOUS;
		break;
	default:
		fl |= MAP_SHARED;
		fd = memfds[s % NMEMFD];
		off = (s / NMEMFD) % 2 * SLOT_SZ;
		break;
	}
	m = mmap(a, SLOT_SZ, PROT_READ | PROT_WRITE, fl, fd, off);
	return m == MAP_FAILED ? -1 : 0;
}

/* Memory under live mappings: gone, read-only, inaccessible or replaced. */
static long run_mem(struct thr *t)
{
	unsigned int s = below(t, NSLOTS);
	char *a = (char *)slot_addr(s);

	switch (below(t, 12)) {
	case 0:
		return munmap(a, SLOT_SZ);
	case 1:
		return munmap(a + below(t, SLOT_SZ / pg) * pg, pg);
	case 2:
		return mprotect(a, SLOT_SZ, PROT_NONE);
	case 3:
		return mprotect(a, SLOT_SZ, PROT_READ);
	case 4:
		return mprotect(a, SLOT_SZ, PROT_READ | PROT_WRITE);
	case 5:
		return madvise(a, SLOT_SZ, MADV_DONTNEED);
	default:
		return map_slot(s, below(t, SK_NR));
	}
}

static long run_rlimit(struct thr *t)
{
	struct rlimit r = { .rlim_max = RLIM_INFINITY };

	if (opt.memlock)
		r.rlim_cur = PICK(t, 0, pg, opt.memlock / 2, opt.memlock,
				  opt.memlock);
	else
		r.rlim_cur = PICK(t, 0, pg, 16 * pg, 1UL << 20, 8UL << 20,
				  S.rlim_orig, S.rlim_orig, RLIM_INFINITY);
	return setrlimit(RLIMIT_MEMLOCK, &r);
}

static long run_reopen(struct thr *t)
{
	int fd = open("/dev/iommu", O_RDWR | O_CLOEXEC), rc;

	if (fd < 0)
		return -1;
	rc = dup2(fd, S.ctx);
	close(fd);
	return rc < 0 ? -1 : 0;
}

/* Requests the context does not have, or has with other direction bits. */
static long run_bad_ioctl(struct thr *t)
{
	unsigned long req = PICK(t, _IO(IOMMUFD_TYPE, 0x96 + below(t, 10)),
				 _IO(IOMMUFD_TYPE, 0x7f),
				 _IO(IOMMUFD_TYPE, IOMMUFD_CMD_BASE + 33),
				 _IOWR(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_MAP, 40),
				 _IO(VFIO_TYPE, VFIO_BASE + below(t, 32)),
				 rnd(t) & 0xffffffff);

	memset(t->arg, 0, 64);
	*(uint32_t *)t->arg = PICK(t, 8, 64, 4096, rnd(t));
	return ioctl(S.ctx, req, t->arg);
}

static long run_fork(struct thr *t);

#define IOC(n, r, type, w, g, p, ...)                                    \
	{ .name = n, .req = r, .size = sizeof(type), .weight = w,        \
	  .gen = gen_##g, .post = p, __VA_ARGS__ }
#define TEST(n, o, w, g, p, ...)                                         \
	{ .name = "TEST_" n, .req = IOMMU_TEST_CMD,                      \
	  .size = sizeof(struct iommu_test_cmd), .test_op = o,           \
	  .weight = w, .gen = gen_##g, .post = p, __VA_ARGS__ }
#define VALUE(n, r, w, g)                                                \
	{ .name = n, .req = r, .weight = w, .flags = C_VALUE,            \
	  .gen = gen_##g }
#define RUN(n, w, fl, f) { .name = n, .weight = w, .flags = fl, .run = f }
#define FD_OUT(type, field, kind)                                        \
	.fd_off = offsetof(type, field) + 1, .fd_kind = kind

/* name, request, struct, weight, generator, result handler */
static struct cmd cmds[] = {
	IOC("DESTROY", IOMMU_DESTROY, struct iommu_destroy, 40, destroy,
	    post_destroy),
	IOC("IOAS_ALLOC", IOMMU_IOAS_ALLOC, struct iommu_ioas_alloc, 30,
	    ioas_alloc, post_ioas_alloc),
	IOC("IOAS_ALLOW_IOVAS", IOMMU_IOAS_ALLOW_IOVAS,
	    struct iommu_ioas_allow_iovas, 10, allow_iovas, NULL),
	IOC("IOAS_COPY", IOMMU_IOAS_COPY, struct iommu_ioas_copy, 30,
	    ioas_copy, post_ioas_copy),
	IOC("IOAS_IOVA_RANGES", IOMMU_IOAS_IOVA_RANGES,
	    struct iommu_ioas_iova_ranges, 10, iova_ranges, NULL),
	IOC("IOAS_MAP", IOMMU_IOAS_MAP, struct iommu_ioas_map, 100, ioas_map,
	    post_ioas_map),
	IOC("IOAS_UNMAP", IOMMU_IOAS_UNMAP, struct iommu_ioas_unmap, 70,
	    ioas_unmap, NULL),
	IOC("OPTION", IOMMU_OPTION, struct iommu_option, 10, option, NULL),
	IOC("VFIO_IOAS", IOMMU_VFIO_IOAS, struct iommu_vfio_ioas, 10,
	    vfio_ioas, post_vfio_ioas),
	IOC("HWPT_ALLOC", IOMMU_HWPT_ALLOC, struct iommu_hwpt_alloc, 30,
	    hwpt_alloc, post_hwpt_alloc),
	IOC("GET_HW_INFO", IOMMU_GET_HW_INFO, struct iommu_hw_info, 8,
	    get_hw_info, NULL),
	IOC("HWPT_SET_DIRTY_TRACKING", IOMMU_HWPT_SET_DIRTY_TRACKING,
	    struct iommu_hwpt_set_dirty_tracking, 10, set_dirty, NULL),
	IOC("HWPT_GET_DIRTY_BITMAP", IOMMU_HWPT_GET_DIRTY_BITMAP,
	    struct iommu_hwpt_get_dirty_bitmap, 10, get_dirty, NULL),
	IOC("HWPT_INVALIDATE", IOMMU_HWPT_INVALIDATE,
	    struct iommu_hwpt_invalidate, 10, invalidate, NULL),
	IOC("FAULT_QUEUE_ALLOC", IOMMU_FAULT_QUEUE_ALLOC,
	    struct iommu_fault_alloc, 8, fault_alloc, post_fault_alloc,
	    FD_OUT(struct iommu_fault_alloc, out_fault_fd, F_FAULT)),
	IOC("IOAS_MAP_FILE", IOMMU_IOAS_MAP_FILE, struct iommu_ioas_map_file,
	    30, map_file, post_map_file),
	IOC("VIOMMU_ALLOC", IOMMU_VIOMMU_ALLOC, struct iommu_viommu_alloc, 12,
	    viommu_alloc, post_viommu_alloc),
	IOC("VDEVICE_ALLOC", IOMMU_VDEVICE_ALLOC, struct iommu_vdevice_alloc,
	    10, vdevice_alloc, post_vdevice_alloc),
	IOC("IOAS_CHANGE_PROCESS", IOMMU_IOAS_CHANGE_PROCESS,
	    struct iommu_ioas_change_process, 6, change_process, NULL),
	IOC("VEVENTQ_ALLOC", IOMMU_VEVENTQ_ALLOC, struct iommu_veventq_alloc,
	    8, veventq_alloc, post_veventq_alloc,
	    FD_OUT(struct iommu_veventq_alloc, out_veventq_fd, F_VEVENTQ)),
	IOC("HW_QUEUE_ALLOC", IOMMU_HW_QUEUE_ALLOC,
	    struct iommu_hw_queue_alloc, 8, hw_queue_alloc, post_hw_queue_alloc),
	IOC("IOAS_NOIOMMU_GET_PA", IOMMU_IOAS_NOIOMMU_GET_PA,
	    struct iommu_ioas_noiommu_get_pa, 3, noiommu_get_pa, NULL),

	VALUE("VFIO_GET_API_VERSION", VFIO_GET_API_VERSION, 2, vfio_value),
	VALUE("VFIO_CHECK_EXTENSION", VFIO_CHECK_EXTENSION, 4, vfio_check_ext),
	VALUE("VFIO_SET_IOMMU", VFIO_SET_IOMMU, 6, vfio_set_iommu),
	IOC("VFIO_IOMMU_GET_INFO", VFIO_IOMMU_GET_INFO,
	    struct vfio_iommu_type1_info, 5, vfio_get_info, NULL),
	IOC("VFIO_IOMMU_MAP_DMA", VFIO_IOMMU_MAP_DMA,
	    struct vfio_iommu_type1_dma_map, 30, vfio_map, post_vfio_map),
	IOC("VFIO_IOMMU_UNMAP_DMA", VFIO_IOMMU_UNMAP_DMA,
	    struct vfio_iommu_type1_dma_unmap, 25, vfio_unmap, NULL),

	TEST("ADD_RESERVED", IOMMU_TEST_OP_ADD_RESERVED, 8, t_add_reserved,
	     NULL),
	TEST("MOCK_DOMAIN", IOMMU_TEST_OP_MOCK_DOMAIN, 25, t_mock_domain,
	     post_t_mock_domain),
	TEST("MOCK_DOMAIN_FLAGS", IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS, 15,
	     t_mock_domain_flags, post_t_mock_domain),
	TEST("MD_CHECK_MAP", IOMMU_TEST_OP_MD_CHECK_MAP, 10, t_check_map, NULL),
	TEST("MD_CHECK_REFS", IOMMU_TEST_OP_MD_CHECK_REFS, 6, t_check_refs,
	     NULL),
	TEST("CREATE_ACCESS", IOMMU_TEST_OP_CREATE_ACCESS, 15, t_create_access,
	     post_t_create_access,
	     FD_OUT(struct iommu_test_cmd, create_access.out_access_fd,
		    F_ACCESS)),
	TEST("DESTROY_ACCESS_PAGES", IOMMU_TEST_OP_DESTROY_ACCESS_PAGES, 15,
	     t_destroy_access_pages, NULL),
	TEST("ACCESS_PAGES", IOMMU_TEST_OP_ACCESS_PAGES, 30, t_access_pages,
	     post_t_access_pages),
	TEST("ACCESS_RW", IOMMU_TEST_OP_ACCESS_RW, 25, t_access_rw, NULL),
	TEST("SET_TEMP_MEMORY_LIMIT", IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT, 3,
	     t_memory_limit, NULL),
	TEST("MOCK_DOMAIN_REPLACE", IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE, 20,
	     t_domain_replace, NULL),
	TEST("ACCESS_REPLACE_IOAS", IOMMU_TEST_OP_ACCESS_REPLACE_IOAS, 15,
	     t_access_replace, NULL),
	TEST("DIRTY", IOMMU_TEST_OP_DIRTY, 8, t_dirty, NULL),
	TEST("MD_CHECK_IOTLB", IOMMU_TEST_OP_MD_CHECK_IOTLB, 4, t_check_iotlb,
	     NULL),
	TEST("TRIGGER_IOPF", IOMMU_TEST_OP_TRIGGER_IOPF, 12, t_trigger_iopf,
	     NULL),
	TEST("DEV_CHECK_CACHE", IOMMU_TEST_OP_DEV_CHECK_CACHE, 4,
	     t_check_dev_cache, NULL),
	TEST("TRIGGER_VEVENT", IOMMU_TEST_OP_TRIGGER_VEVENT, 8,
	     t_trigger_vevent, NULL),
	TEST("PASID_ATTACH", IOMMU_TEST_OP_PASID_ATTACH, 12, t_pasid_attach,
	     NULL),
	TEST("PASID_REPLACE", IOMMU_TEST_OP_PASID_REPLACE, 10, t_pasid_attach,
	     NULL),
	TEST("PASID_DETACH", IOMMU_TEST_OP_PASID_DETACH, 8, t_pasid_detach,
	     NULL),
	TEST("PASID_CHECK_HWPT", IOMMU_TEST_OP_PASID_CHECK_HWPT, 4,
	     t_pasid_check, NULL),
	TEST("DMABUF_GET", IOMMU_TEST_OP_DMABUF_GET, 8, t_dmabuf_get,
	     post_t_dmabuf_get),
	TEST("DMABUF_REVOKE", IOMMU_TEST_OP_DMABUF_REVOKE, 8, t_dmabuf_revoke,
	     NULL),
	TEST("BAD_OP", 0, 2, t_bad_op, NULL),

	RUN("CLOSE_FD", 12, 0, run_close),
	RUN("READ_FD", 12, 0, run_read),
	RUN("WRITE_FD", 10, 0, run_write),
	RUN("POLL_FD", 4, 0, run_poll),
	RUN("MMAP", 6, 0, run_mmap),
	RUN("MEM", 15, 0, run_mem),
	RUN("FORK", 3, C_NOCHILD, run_fork),
	RUN("SETRLIMIT", 3, 0, run_rlimit),
	RUN("REOPEN", 1, 0, run_reopen),
	RUN("BAD_IOCTL", 2, 0, run_bad_ioctl),
};
#define NCMDS ((int)ARRAY_SIZE(cmds))
_Static_assert(ARRAY_SIZE(cmds) <= ARRAY_SIZE(((struct stats *)0)->hist),
	       "the histogram needs a row per command");

static bool enabled[ARRAY_SIZE(cmds)];
static unsigned int total_weight, total_weight_child;

static int pick_cmd(struct thr *t)
{
	unsigned int w = below(t, t->child ? total_weight_child : total_weight);

	for (int i = 0; i < NCMDS; i++) {
		if (!enabled[i] || (t->child && cmds[i].flags & C_NOCHILD))
			continue;
		if (w < cmds[i].weight)
			return i;
		w -= cmds[i].weight;
	}
	return 0;
}

/* ---- tracing ---------------------------------------------------------- */

static void tracef(const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (n >= (int)sizeof(line))
		n = sizeof(line) - 1;
	/* One write each, so that threads' lines do not mix. */
	if (kmsg_fd >= 0)
		(void)!write(kmsg_fd, line, n);
	else
		(void)!write(2, line, n);
}

static void trace_op(struct thr *t, uint64_t n, const struct cmd *d, int fd,
		     unsigned long arg)
{
	char words[200] = "";
	size_t len = 0;

	if (d->req && !(d->flags & C_VALUE) && arg == (unsigned long)t->buf) {
		const uint64_t *w = t->buf;
		uint32_t sz = d->size < 80 ? d->size : 80;

		for (uint32_t i = 0; i < (sz + 7) / 8; i++)
			len += snprintf(words + len, sizeof(words) - len,
					" %" PRIx64, w[i]);
	}
	tracef("<5>iommufd-fuzz: #%" PRIu64 "%s t%d %s fd=%d arg=%#lx%s\n", n,
	       t->child ? "c" : "", t->idx, d->name, fd, arg, words);
}

/* ---- running one command ---------------------------------------------- */

/*
 * The size field: mostly the kernel's, else smaller, larger with a zero or
 * non-zero tail, or absurd.  The struct lands at the start of the argument
 * buffer or flush against its guard page.
 */
static void place_struct(struct thr *t, const struct cmd *d, unsigned long *arg)
{
	uint32_t ksize = d->size, n = *(uint32_t *)t->scratch;
	unsigned int r = below(t, 100);
	uint64_t span;

	if (r >= 82 && r < 88) {
		n = below(t, ksize);
	} else if (r < 98) {
		n = ksize + PICK(t, 4, 8, 16, 64, 256, pg);
		if (r >= 94)
			t->scratch[ksize + below(t, n - ksize)] = 1 + below(t, 255);
	} else {
		n = PICK(t, ~0U, 1U << 31, 1U << 20, ARG_SZ + 1);
	}
	*(uint32_t *)t->scratch = n;
	span = n > ksize ? n : ksize;
	if (span > ARG_SZ)
		span = ARG_SZ;
	t->buf = t->arg;
	if (chance(t, 25))
		t->buf = t->arg + ((ARG_SZ - span) & ~7UL);
	memcpy(t->buf, t->scratch, span);
	t->usize = n;
	*arg = (unsigned long)t->buf;
}

static void inject_arm(struct thr *t, bool on)
{
	char b[16];
	int n;

	if (t->failfd < 0)
		return;
	n = snprintf(b, sizeof(b), "%u", on ? 1 + (unsigned int)below(t, 64) : 0);
	if (pwrite(t->failfd, b, n, 0) < 0)
		t->failfd = -1;
}

static void run_one(struct thr *t, uint64_t n)
{
	int c = pick_cmd(t), fd = S.ctx, err;
	const struct cmd *d = &cmds[c];
	bool trace = n >= opt.trace_from;
	unsigned long arg = 0;
	bool inject = false;
	long rc;

	atomic_store(&t->cur, c);
	atomic_store(&t->curop, n);
	if (d->run) {
		if (trace)
			trace_op(t, n, d, -1, 0);
		errno = 0;
		rc = d->run(t);
	} else {
		memset(t->scratch, 0, sizeof(t->scratch));
		memset(t->arg, 0, ARG_SZ);
		t->buf = t->arg;
		arg = (unsigned long)t->arg;
		if (d->size) {
			*(uint32_t *)t->scratch = d->size;
			if (d->test_op)
				((struct iommu_test_cmd *)t->scratch)->op = d->test_op;
		}
		d->gen(t, d->flags & C_VALUE ? (void *)t->arg : t->scratch, &arg);
		if (d->size)
			place_struct(t, d, &arg);
		if (!(d->flags & C_VALUE) && chance(t, 3))
			arg = PICK(t, 0, kaddr(t), RO_ADDR,
				   (uint64_t)t->arg + ARG_SZ - 4,
				   (uint64_t)t->arg + ARG_SZ);
		if (chance(t, 1))
			fd = gen_event_fd(t);	/* the wrong file */
		t->guess_fd = -1;
		if (d->fd_off && d->fd_off - 1 + 4 > t->usize) {
			/* The fd's number will not be copied out. */
			t->guess_fd = open("/dev/null", O_RDONLY);
			close(t->guess_fd);
		}
		inject = !t->child && chance(t, opt.fail_pct);
		if (trace)
			trace_op(t, n, d, fd, arg);
		if (inject)
			inject_arm(t, true);
		rc = ioctl(fd, d->req, arg);
		err = errno;
		if (inject) {
			inject_arm(t, false);
			atomic_fetch_add(&G->injected, 1);
		}
		errno = err;
	}
	err = rc < 0 ? errno : 0;
	if (trace)
		tracef("<5>iommufd-fuzz: #%" PRIu64 " = %ld %s\n", n, rc,
		       err ? strerrorname_np(err) ?: "?" : "");
	atomic_fetch_add(&G->hist[c][err > MAX_ERR ? MAX_ERR : err], 1);
	t->digest = (t->digest ^ ((uint64_t)c << 40 ^ (uint64_t)err << 32 ^
				  (uint32_t)(rc > 0 ? 1 : rc))) *
		    0x100000001b3ULL;
	t->nops++;
	if (rc < 0 || !d->req || fd != S.ctx)
		return;
	if (arg == (unsigned long)t->buf && d->post)
		d->post(t, t->buf, rc);
	if (d->fd_off && t->guess_fd > 2 && fcntl(t->guess_fd, F_GETFD) >= 0)
		fd_add(t, d->fd_kind, t->guess_fd);
	else if (d->fd_off && arg == (unsigned long)t->buf &&
		 d->fd_off - 1 + 4 <= t->usize)
		fd_add(t, d->fd_kind,
		       *(int *)((char *)t->buf + d->fd_off - 1));
}

/* The child does a few commands of its own on the inherited fds, then exits. */
static long run_fork(struct thr *t)
{
	unsigned int n;
	int status;
	pid_t pid;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0)
		return -1;
	if (!pid) {
		alarm(30);
		t->child = true;
		t->failfd = -1;	/* the parent thread's file */
		rng_seed(&t->rng, rnd(t) ^ 0xc41d);
		n = 1 + below(t, 8);
		for (unsigned int i = 0; i < n; i++)
			run_one(t, atomic_load(&t->curop));
		atomic_fetch_add(&G->child_ops, n);
		_exit(0);
	}
	atomic_fetch_add(&G->forks, 1);
	if (waitpid(pid, &status, 0) != pid)
		return -1;
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		tracef("iommufd_fuzz: child %d ended with status %#x\n", pid,
		       status);
		errno = ECHILD;
		return -1;
	}
	return 0;
}

/* ---- threads ------------------------------------------------------------ */

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double t_start;

static void *thread_main(void *p)
{
	struct thr *t = p;
	char path[64];

	snprintf(path, sizeof(path), "/proc/thread-self/fail-nth");
	t->failfd = opt.fail_pct ? open(path, O_RDWR | O_CLOEXEC) : -1;
	/* Non-blocking, as a random fd number may name it. */
	if (pipe2(t->pipe, O_NONBLOCK | O_CLOEXEC))
		abort();
	while (!atomic_load(&G->stop)) {
		uint64_t n = atomic_fetch_add(&G->started, 1);

		if (n >= opt.ops) {
			atomic_store(&G->stop, true);
			break;
		}
		if (opt.seconds > 0 && !(n & 15) &&
		    now() - t_start > opt.seconds) {
			atomic_store(&G->stop, true);
			break;
		}
		run_one(t, n);
		atomic_fetch_add(&G->done, 1);
	}
	atomic_store(&t->cur, -1);
	if (t->failfd >= 0)
		close(t->failfd);
	close(t->pipe[0]);
	close(t->pipe[1]);
	return NULL;
}

/* ---- setup ------------------------------------------------------------- */

static void die(const char *what)
{
	printf("# %s: %s\nnot ok 1 fuzz\n", what, strerror(errno));
	exit(1);
}

static void setup_memory(void)
{
	void *m;

	for (int i = 0; i < NMEMFD; i++) {
		memfds[i] = memfd_create("iommufd_fuzz", MFD_CLOEXEC);
		if (memfds[i] < 0 || ftruncate(memfds[i], MEMFD_SZ))
			die("memfd");
		S.fds[F_MEMFD][i] = memfds[i];
	}
	for (unsigned int s = 0; s < NSLOTS; s++)
		if (map_slot(s, s % SK_NR))
			die("mmap slot");
	m = mmap((void *)RO_ADDR, pg, PROT_READ,
		 MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		die("mmap");
	for (int i = 0; i < opt.threads; i++) {
		uint8_t *b = (uint8_t *)(THR_BASE + i * THR_STRIDE);

		m = mmap(b, THR_STRIDE, PROT_NONE,
			 MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (m == MAP_FAILED ||
		    mprotect(b, ARG_SZ, PROT_READ | PROT_WRITE) ||
		    mprotect(b + ARG_SZ + pg, DATA_SZ, PROT_READ | PROT_WRITE))
			die("mmap");
		thr[i].arg = b;
		thr[i].data = b + ARG_SZ + pg;
	}
}

static int writefile(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY), rc;

	if (fd < 0)
		return -1;
	rc = write(fd, val, strlen(val)) < 0 ? -1 : 0;
	close(fd);
	return rc;
}

/* As the upstream fail_nth test: every allocation may fail, quietly. */
static void setup_fault_injection(void)
{
	DIR *d;
	struct dirent *e;
	char path[300];

	if (writefile("/sys/kernel/debug/failslab/ignore-gfp-wait", "N")) {
		printf("# no failslab in debugfs: fault injection off\n");
		opt.fail_pct = 0;
		return;
	}
	/*
	 * Page allocations fail too only with --fail-pages: whether a kmalloc
	 * needs a new slab page depends on what ran before, so counting them
	 * makes the nth failure point, and the run, unrepeatable.
	 */
	if (opt.fail_pages) {
		writefile("/sys/kernel/debug/fail_page_alloc/ignore-gfp-wait", "N");
		writefile("/sys/kernel/debug/fail_page_alloc/ignore-gfp-highmem", "N");
		writefile("/sys/kernel/debug/fail_page_alloc/min-order", "0");
	} else {
		writefile("/sys/kernel/debug/fail_page_alloc/min-order", "11");
	}
	/* Every fail* attribute, the module's own fail_iommufd too. */
	d = opendir("/sys/kernel/debug");
	while (d && (e = readdir(d))) {
		if (strncmp(e->d_name, "fail", 4))
			continue;
		snprintf(path, sizeof(path), "/sys/kernel/debug/%s/verbose",
			 e->d_name);
		writefile(path, "0");
	}
	if (d)
		closedir(d);
}

/* Pinning must be accounted: a process with CAP_IPC_LOCK is not. */
static void drop_ipc_lock(void)
{
	struct __user_cap_header_struct hdr = {
		.version = _LINUX_CAPABILITY_VERSION_3,
	};
	struct __user_cap_data_struct data[2] = {};

	if (syscall(SYS_capget, &hdr, data))
		return;
	data[0].effective &= ~(1U << CAP_IPC_LOCK);
	data[0].permitted &= ~(1U << CAP_IPC_LOCK);
	if (syscall(SYS_capset, &hdr, data))
		printf("# cannot drop CAP_IPC_LOCK: %s\n", strerror(errno));
}

static bool name_in(const char *name, const char *list)
{
	const char *p = list;

	while (p && *p) {
		const char *e = strpbrk(p, ",+");
		size_t n = e ? (size_t)(e - p) : strlen(p);

		if (n && p[n - 1] == '*' ? !strncmp(name, p, n - 1) :
		    (strlen(name) == n && !strncmp(name, p, n)))
			return true;
		p = e ? e + 1 : NULL;
	}
	return false;
}

static void setup_commands(void)
{
	total_weight = total_weight_child = 0;
	for (int i = 0; i < NCMDS; i++) {
		enabled[i] = (!opt.only || name_in(cmds[i].name, opt.only)) &&
			     !(opt.skip && name_in(cmds[i].name, opt.skip));
		if (!enabled[i])
			continue;
		total_weight += cmds[i].weight;
		if (!(cmds[i].flags & C_NOCHILD))
			total_weight_child += cmds[i].weight;
	}
	if (!total_weight_child) {
		printf("# no command left to run\nnot ok 1 fuzz\n");
		exit(1);
	}
}

/* ---- checks after the run --------------------------------------------- */

static bool vmstat_pins(uint64_t *acq, uint64_t *rel)
{
	char line[128];
	FILE *f;
	int got = 0;

	if (writefile("/proc/sys/vm/stat_refresh", "1"))
		return false;
	f = fopen("/proc/vmstat", "r");
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		got += sscanf(line, "nr_foll_pin_acquired %" SCNu64, acq);
		got += sscanf(line, "nr_foll_pin_released %" SCNu64, rel);
	}
	fclose(f);
	return got == 2;
}

static long status_kb(const char *key)
{
	char line[256];
	long val = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, strlen(key)) &&
		    line[strlen(key)] == ':')
			val = strtol(line + strlen(key) + 1, NULL, 10);
	fclose(f);
	return val;
}

static int count_dir(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

static int test_cmd(int fd, struct iommu_test_cmd *c)
{
	c->size = sizeof(*c);
	return ioctl(fd, IOMMU_TEST_CMD, c);
}

/*
 * How many pages a fresh context can pin under an RLIMIT_MEMLOCK of @limit
 * pages (through a mock domain, in the user's or the mm's account): @limit
 * unless something left locked memory charged.  -1: cannot tell.
 */
static long lockable_pages(unsigned long limit, bool mm_mode)
{
	struct rlimit rl = { limit * pg, RLIM_INFINITY };
	struct iommu_option o = {
		.size = sizeof(o), .option_id = IOMMU_OPTION_RLIMIT_MODE,
		.op = IOMMU_OPTION_OP_SET, .val64 = mm_mode,
	};
	struct iommu_ioas_alloc a = { .size = sizeof(a) };
	struct iommu_test_cmd md = { .op = IOMMU_TEST_OP_MOCK_DOMAIN };
	unsigned long lo = 0, hi = limit + 1;
	long res = -1;
	char *buf;
	int fd;

	buf = mmap(NULL, (limit + 1) * pg, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	fd = open("/dev/iommu", O_RDWR);
	if (buf == MAP_FAILED || fd < 0 || ioctl(fd, IOMMU_OPTION, &o) ||
	    ioctl(fd, IOMMU_IOAS_ALLOC, &a))
		goto out;
	md.id = a.out_ioas_id;
	if (test_cmd(fd, &md)) {
		res = errno == ENOTTY ? -2 : -1;	/* -2: no mock domains */
		goto out;
	}
	if (setrlimit(RLIMIT_MEMLOCK, &rl))
		goto out;
	/* The largest n in [lo, hi) that maps. */
	while (hi - lo > 1) {
		unsigned long mid = (lo + hi) / 2;
		struct iommu_ioas_map m = {
			.size = sizeof(m), .ioas_id = a.out_ioas_id,
			.flags = IOMMU_IOAS_MAP_FIXED_IOVA | RW,
			.user_va = (uintptr_t)buf, .length = mid * pg,
			.iova = MOCK_APERTURE_START,
		};
		struct iommu_ioas_unmap u = {
			.size = sizeof(u), .ioas_id = a.out_ioas_id,
			.iova = MOCK_APERTURE_START, .length = mid * pg,
		};

		if (ioctl(fd, IOMMU_IOAS_MAP, &m)) {
			if (errno != ENOMEM)
				goto out;
			hi = mid;
			continue;
		}
		lo = mid;
		if (ioctl(fd, IOMMU_IOAS_UNMAP, &u))
			goto out;
	}
	res = lo;
out:
	if (fd >= 0)
		close(fd);
	if (buf != MAP_FAILED)
		munmap(buf, (limit + 1) * pg);
	return res;
}

static void restore_globals(void)
{
	struct iommu_test_cmd c = {
		.op = IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT,
		.memory_limit = { .limit = 65536 },	/* upstream's default */
	};
	int fd = open("/dev/iommu", O_RDWR);

	if (fd >= 0) {
		test_cmd(fd, &c);
		close(fd);
	}
}

static void print_histogram(void)
{
	printf("# errno histogram (command: calls, ok, errno=count ...)\n");
	for (int i = 0; i < NCMDS; i++) {
		char line[1024];
		uint64_t total = 0;
		int len;

		for (int e = 0; e <= MAX_ERR; e++)
			total += G->hist[i][e];
		if (!total)
			continue;
		len = snprintf(line, sizeof(line), "#   %-26s %9" PRIu64
			       " ok=%" PRIu64, cmds[i].name, total,
			       (uint64_t)G->hist[i][0]);
		for (int e = 1; e <= MAX_ERR && len < (int)sizeof(line) - 40; e++) {
			const char *name = e == MAX_ERR ? "other" :
					   strerrorname_np(e);

			if (G->hist[i][e])
				len += snprintf(line + len, sizeof(line) - len,
						" %s=%" PRIu64, name ?: "?",
						(uint64_t)G->hist[i][e]);
		}
		printf("%s\n", line);
	}
}

/* ---- main --------------------------------------------------------------- */

static void usage(void)
{
	printf("usage: iommufd_fuzz [options]\n"
	       "  --seed S         PRNG seed (default 1); each thread derives its stream\n"
	       "  --ops N          stop after N operations (default 10000)\n"
	       "  --seconds T      stop after T seconds (default: no limit)\n"
	       "  --threads N      threads on one context (default 4; 1 is reproducible)\n"
	       "  --memlock BYTES  RLIMIT_MEMLOCK for the run (default: as inherited)\n"
	       "  --fail-nth PCT   inject an allocation failure into PCT%% of the ioctls (default 2)\n"
	       "  --fail-pages     page allocations too (then --threads 1 is not exactly repeatable)\n"
	       "  --keep-ipc-lock  keep CAP_IPC_LOCK (pinning then goes unaccounted)\n"
	       "  --skip CMD,...   never run these commands (NAME or PREFIX*; ',' or '+' between)\n"
	       "  --only CMD,...   run only these commands\n"
	       "  --tame WHAT,...  get past known bugs: 'wrap', no IOVA range reaches 2^64;\n"
	       "                   'mapfile', IOAS_MAP_FILE only of memfds and dma-bufs;\n"
	       "                   'devdestroy', DESTROY never names a known mock device\n"
	       "  --trace-from N   log every operation from the Nth on\n"
	       "  --kmsg           log to /dev/kmsg (survives a panic) instead of stderr\n"
	       "  --hang S         fail if no operation completes for S seconds (default 120)\n"
	       "  --list           list the commands and their weights\n");
}

static void parse_args(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--keep-ipc-lock")) {
			opt.keep_ipc_lock = true;
			continue;
		}
		if (!strcmp(a, "--kmsg")) {
			opt.kmsg = true;
			continue;
		}
		if (!strcmp(a, "--fail-pages")) {
			opt.fail_pages = true;
			continue;
		}
		if (!strcmp(a, "--list")) {
			opt.list = true;
			continue;
		}
		if (!v || a[0] != '-') {
			usage();
			exit(2);
		}
		i++;
		if (!strcmp(a, "--seed"))
			opt.seed = strtoull(v, NULL, 0);
		else if (!strcmp(a, "--ops"))
			opt.ops = strtoull(v, NULL, 0);
		else if (!strcmp(a, "--seconds"))
			opt.seconds = strtod(v, NULL);
		else if (!strcmp(a, "--threads"))
			opt.threads = atoi(v);
		else if (!strcmp(a, "--memlock"))
			opt.memlock = strtoull(v, NULL, 0);
		else if (!strcmp(a, "--fail-nth"))
			opt.fail_pct = atoi(v);
		else if (!strcmp(a, "--skip"))
			opt.skip = v;
		else if (!strcmp(a, "--only"))
			opt.only = v;
		else if (!strcmp(a, "--trace-from"))
			opt.trace_from = strtoull(v, NULL, 0);
		else if (!strcmp(a, "--tame")) {
			opt.tame_wrap = name_in("wrap", v);
			opt.tame_mapfile = name_in("mapfile", v);
			opt.tame_devdestroy = name_in("devdestroy", v);
		} else if (!strcmp(a, "--hang"))
			opt.hang = atoi(v);
		else {
			usage();
			exit(2);
		}
	}
	if (opt.threads < 1 || opt.threads > MAX_THREADS) {
		printf("--threads: 1 to %d\n", MAX_THREADS);
		exit(2);
	}
}

/* Waits for the threads; a run that stops making progress is a failure. */
static bool watch(void)
{
	uint64_t last = 0, next_report = 10;
	double last_t = now();

	for (;;) {
		bool running = false;
		uint64_t done = atomic_load(&G->done);

		for (int i = 0; i < opt.threads; i++)
			running |= atomic_load(&thr[i].cur) != -1;
		if (!running && atomic_load(&G->stop))
			return true;
		usleep(100 * 1000);
		if (done != last) {
			last = done;
			last_t = now();
		} else if (now() - last_t > opt.hang) {
			printf("# no progress for %d s:\n", opt.hang);
			for (int i = 0; i < opt.threads; i++) {
				int c = atomic_load(&thr[i].cur);

				if (c >= 0)
					printf("#   thread %d in %s (op #%" PRIu64 ")\n",
					       i, cmds[c].name,
					       (uint64_t)atomic_load(&thr[i].curop));
			}
			return false;
		}
		if (now() - t_start >= next_report) {
			printf("# progress: %" PRIu64 " ops in %.0f s\n", done,
			       now() - t_start);
			next_report += 10;
		}
	}
}

int main(int argc, char **argv)
{
	uint64_t acq0 = 0, rel0 = 0, acq1 = 0, rel1 = 0, digest = 0;
	bool have_vmstat, ok = true;
	struct rlimit rl;
	long vmpin, vmlck, user_pages, mm_pages;
	const unsigned long probe = 256;
	int mocks;
	double dt;

	parse_args(argc, argv);
	pg = sysconf(_SC_PAGESIZE);
	setvbuf(stdout, NULL, _IOLBF, 0);
	setup_commands();
	if (opt.list) {
		for (int i = 0; i < NCMDS; i++)
			printf("%-26s %4u%s\n", cmds[i].name, cmds[i].weight,
			       enabled[i] ? "" : "  (off)");
		return 0;
	}
	printf("TAP version 13\n1..1\n");
	printf("# iommufd_fuzz: seed %#" PRIx64 ", %d thread(s), ops %" PRIu64
	       ", seconds %g, fault injection %d%%, memlock %" PRIu64 "%s%s%s%s%s%s%s%s\n",
	       opt.seed, opt.threads, opt.ops, opt.seconds, opt.fail_pct,
	       opt.memlock, opt.only ? ", only " : "", opt.only ?: "",
	       opt.skip ? ", skip " : "", opt.skip ?: "",
	       opt.tame_wrap ? ", tame wrap" : "",
	       opt.tame_mapfile ? ", tame mapfile" : "",
	       opt.tame_devdestroy ? ", tame devdestroy" : "",
	       opt.keep_ipc_lock ? ", CAP_IPC_LOCK kept" : "");
	if (opt.kmsg)
		kmsg_fd = open("/dev/kmsg", O_WRONLY | O_CLOEXEC);
	signal(SIGPIPE, SIG_IGN);
	/* Nothing may block on a read of standard input. */
	dup2(open("/dev/null", O_RDONLY), 0);
	rl.rlim_cur = rl.rlim_max = 65536;
	setrlimit(RLIMIT_NOFILE, &rl);
	getrlimit(RLIMIT_MEMLOCK, &rl);
	S.rlim_orig = rl.rlim_cur;
	if (opt.memlock) {
		rl.rlim_cur = opt.memlock;
		rl.rlim_max = RLIM_INFINITY;
		if (setrlimit(RLIMIT_MEMLOCK, &rl))
			die("setrlimit");
	}
	if (opt.fail_pct)
		setup_fault_injection();
	if (!opt.keep_ipc_lock)
		drop_ipc_lock();

	G = mmap(NULL, sizeof(*G), PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (G == MAP_FAILED)
		die("mmap");
	for (int k = 0; k < F_NR; k++)
		for (int i = 0; i < POOL; i++)
			S.fds[k][i] = -1;
	setup_memory();
	have_vmstat = vmstat_pins(&acq0, &rel0);
	S.ctx = open("/dev/iommu", O_RDWR | O_CLOEXEC);
	if (S.ctx < 0)
		die("/dev/iommu");

	t_start = now();
	for (int i = 0; i < opt.threads; i++) {
		uint64_t x = opt.seed ^ (0x5851f42d4c957f2dULL * (i + 1));

		thr[i].idx = i;
		rng_seed(&thr[i].rng, splitmix(&x));
		thr[i].digest = 0xcbf29ce484222325ULL;
		thr[i].cur = 0;
		if (pthread_create(&thr[i].tid, NULL, thread_main, &thr[i]))
			die("pthread_create");
	}
	if (!watch()) {
		printf("not ok 1 fuzz # hang\n");
		fflush(stdout);
		_exit(1);
	}
	for (int i = 0; i < opt.threads; i++) {
		pthread_join(thr[i].tid, NULL);
		digest ^= thr[i].digest * (i + 1);
	}
	dt = now() - t_start;

	/* Everything closed: the contexts go away with their last fd. */
	close_range(3, ~0U, 0);
	kmsg_fd = -1;
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	restore_globals();
	rl.rlim_cur = S.rlim_orig;
	rl.rlim_max = RLIM_INFINITY;
	setrlimit(RLIMIT_MEMLOCK, &rl);

	printf("# done: %" PRIu64 " ops in %.1f s (%.0f/s), %" PRIu64
	       " forks with %" PRIu64 " ops, %" PRIu64
	       " with an injected failure, digest %016" PRIx64 "\n",
	       (uint64_t)G->done, dt, G->done / (dt > 0 ? dt : 1),
	       (uint64_t)G->forks, (uint64_t)G->child_ops,
	       (uint64_t)G->injected, digest);
	print_histogram();

	vmpin = status_kb("VmPin");
	vmlck = status_kb("VmLck");
	printf("# after closing: VmPin %ld kB, VmLck %ld kB\n", vmpin, vmlck);
	if (vmpin > 0 || vmlck > 0) {
		printf("# FAIL: locked memory still charged to the process\n");
		ok = false;
	}
	mocks = count_dir("/sys/bus/iommufd_mock/devices");
	printf("# mock devices left: %d\n", mocks);
	if (mocks > 0) {
		printf("# FAIL: objects outlive their context\n");
		ok = false;
	}
	if (opt.keep_ipc_lock) {
		printf("# locked_vm probe skipped: CAP_IPC_LOCK kept\n");
	} else {
		user_pages = lockable_pages(probe, false);
		mm_pages = lockable_pages(probe, true);
		printf("# pinning up to RLIMIT_MEMLOCK (%lu pages): user account %ld,"
		       " mm account %ld\n", probe, user_pages, mm_pages);
		if (user_pages == -2 || mm_pages == -2) {
			printf("# (no mock domains: IOMMUFD_TEST is off)\n");
		} else if (user_pages != (long)probe || mm_pages != (long)probe) {
			printf("# FAIL: %ld page(s) stay charged to the user, %ld to the mm\n",
			       (long)probe - user_pages, (long)probe - mm_pages);
			ok = false;
		}
	}
	if (have_vmstat && vmstat_pins(&acq1, &rel1)) {
		printf("# pins over the run: acquired %" PRIu64 ", released %"
		       PRIu64 "\n", acq1 - acq0, rel1 - rel0);
		if (acq1 - acq0 != rel1 - rel0) {
			printf("# FAIL: %" PRId64 " page pin(s) leaked\n",
			       (int64_t)((acq1 - acq0) - (rel1 - rel0)));
			ok = false;
		}
	} else {
		printf("# pins over the run: no /proc/vmstat pin counters here\n");
	}
	printf("%sok 1 fuzz\n", ok ? "" : "not ");
	return ok ? 0 : 1;
}
