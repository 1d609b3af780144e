// SPDX-License-Identifier: GPL-2.0-only
/*
 * What iommufd does with a real device behind a real IOMMU driver, through
 * VFIO's device cdev, that the mock IOMMU cannot show:
 *  - the device's reserved regions (the MSI window at 0xfee00000 on x86,
 *    behind VT-d and AMD-Vi alike) leave an IOAS's usable IOVA while the
 *    device is attached to it and come back when it leaves or moves;
 *    attaching is refused with EADDRINUSE while one is mapped or allowed;
 *  - a bind is refused with EPERM where the platform cannot isolate MSIs
 *    (no interrupt remapping), unless the allow_unsafe_interrupts module
 *    parameter is set;
 *  - pinning for the device is charged against RLIMIT_MEMLOCK: exactly up
 *    to the limit works (test locked_memory, which the VFIO job also runs
 *    after each program where no mock IOMMU is there to check it).
 *
 *   iommufd_real_device BDF   (or VFIO_SELFTESTS_BDF=BDF)
 *
 * The device must be bound to vfio-pci.  Passes on the C iommufd and on
 * ours alike.
 */
#include <errno.h>
#include <fcntl.h>
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
#include <unistd.h>

#include <linux/capability.h>

#include <linux/iommufd.h>
#include <linux/vfio.h>

#include <libvfio.h>
#include "kselftest_harness.h"
#include "iommufd_vfio_utils.h"

#define MSI_START 0xfee00000ULL
#define MSI_LAST 0xfeefffffULL
#define PARAM "/sys/module/iommufd/parameters/allow_unsafe_interrupts"

static const char *cdev_path;

static int allow(int iommufd, uint32_t ioas, uint64_t start, uint64_t last)
{
	struct iommu_iova_range r = { .start = start, .last = last };
	struct iommu_ioas_allow_iovas a = {
		.size = sizeof(a),
		.ioas_id = ioas,
		.num_iovas = 1,
		.allowed_iovas = (uintptr_t)&r,
	};

	return ioctl(iommufd, IOMMU_IOAS_ALLOW_IOVAS, &a);
}

/* Whether the kernel remaps interrupts (its IRQ chips say "IR-"). */
static bool remaps_interrupts(void)
{
	char line[512];
	bool found = false;
	FILE *f = fopen("/proc/interrupts", "r");

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, "IR-") != NULL;
	fclose(f);
	return found;
}

/* The allow_unsafe_interrupts parameter ('Y'/'N'), or 0 if unreadable. */
static char param_get(void)
{
	char c = 0;
	int fd = open(PARAM, O_RDONLY);

	if (fd < 0)
		return 0;
	if (read(fd, &c, 1) != 1)
		c = 0;
	close(fd);
	return c;
}

static int param_set(char c)
{
	int fd = open(PARAM, O_WRONLY);
	int rc;

	if (fd < 0)
		return -1;
	rc = write(fd, &c, 1) == 1 ? 0 : -1;
	close(fd);
	return rc;
}

FIXTURE(real_device) {
	int iommufd;
	int cdev;
	uint32_t dev_id;
	uint32_t ioas;
	void *buf;
};

FIXTURE_SETUP(real_device)
{
	self->iommufd = open("/dev/iommu", O_RDWR);
	ASSERT_LE(0, self->iommufd);
	self->cdev = open(cdev_path, O_RDWR);
	ASSERT_LE(0, self->cdev);
	ASSERT_EQ(0, cdev_bind(self->cdev, self->iommufd, &self->dev_id));
	self->ioas = ioas_alloc(self->iommufd);
	ASSERT_NE(0, self->ioas);
	self->buf = mmap(NULL, 2 * 4096, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, self->buf);
}

FIXTURE_TEARDOWN(real_device)
{
	close(self->cdev);
	close(self->iommufd);
	munmap(self->buf, 2 * 4096);
}

/* The MSI window leaves the IOAS with the attach, and comes back. */
TEST_F(real_device, msi_window_reserved_while_attached)
{
	ASSERT_EQ(1, ioas_usable(self->iommufd, self->ioas, MSI_START, MSI_LAST));
	ASSERT_EQ(0, cdev_attach(self->cdev, self->ioas, NULL));
	ASSERT_EQ(0, ioas_usable(self->iommufd, self->ioas, MSI_START, MSI_LAST));
	/* Just below it is usable, and maps. */
	ASSERT_EQ(1, ioas_usable(self->iommufd, self->ioas, MSI_START - 4096,
			    MSI_START - 1));
	ASSERT_EQ(0, ioas_map_fixed(self->iommufd, self->ioas, self->buf,
			       MSI_START - 4096, 4096));
	/*
	 * In it, or across its start or its end, it does not (EINVAL, as for
	 * any reserved IOVA).
	 */
	EXPECT_EQ(-1, ioas_map_fixed(self->iommufd, self->ioas, self->buf,
				MSI_START, 4096));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, ioas_map_fixed(self->iommufd, self->ioas, self->buf,
				MSI_START - 4096, 2 * 4096));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, ioas_map_fixed(self->iommufd, self->ioas, self->buf,
				MSI_LAST + 1 - 4096, 2 * 4096));
	EXPECT_EQ(EINVAL, errno);
	/* Nor may it be allowed. */
	EXPECT_EQ(-1, allow(self->iommufd, self->ioas, MSI_START, MSI_LAST));
	EXPECT_EQ(EADDRINUSE, errno);
	ASSERT_EQ(0, ioas_unmap(self->iommufd, self->ioas, MSI_START - 4096, 4096));
	ASSERT_EQ(0, cdev_detach(self->cdev));
	ASSERT_EQ(1, ioas_usable(self->iommufd, self->ioas, MSI_START, MSI_LAST));
	ASSERT_EQ(0, ioas_map_fixed(self->iommufd, self->ioas, self->buf,
			       MSI_START, 4096));
	ASSERT_EQ(0, ioas_unmap(self->iommufd, self->ioas, MSI_START, 4096));
}

/* A mapping in the MSI window keeps the device from attaching. */
TEST_F(real_device, mapped_msi_window_refuses_attach)
{
	ASSERT_EQ(0, ioas_map_fixed(self->iommufd, self->ioas, self->buf,
			       MSI_START + 0x10000, 4096));
	EXPECT_EQ(-1, cdev_attach(self->cdev, self->ioas, NULL));
	EXPECT_EQ(EADDRINUSE, errno);
	/* Nothing of the failed attach is left: the window is usable. */
	ASSERT_EQ(1, ioas_usable(self->iommufd, self->ioas, MSI_START, MSI_LAST));
	ASSERT_EQ(0, ioas_unmap(self->iommufd, self->ioas, MSI_START + 0x10000,
			   4096));
	ASSERT_EQ(0, cdev_attach(self->cdev, self->ioas, NULL));
	ASSERT_EQ(0, ioas_usable(self->iommufd, self->ioas, MSI_START, MSI_LAST));
}

/* So does an allowed range over it. */
TEST_F(real_device, allowed_msi_window_refuses_attach)
{
	ASSERT_EQ(0, allow(self->iommufd, self->ioas, 0, MSI_START));
	EXPECT_EQ(-1, cdev_attach(self->cdev, self->ioas, NULL));
	EXPECT_EQ(EADDRINUSE, errno);
	ASSERT_EQ(0, allow(self->iommufd, self->ioas, 0, MSI_START - 1));
	ASSERT_EQ(0, cdev_attach(self->cdev, self->ioas, NULL));
}

/* Moving the device to another IOAS moves the reservation with it. */
TEST_F(real_device, replace_moves_reserved_regions)
{
	uint32_t other = ioas_alloc(self->iommufd);

	ASSERT_NE(0, other);
	ASSERT_EQ(0, cdev_attach(self->cdev, self->ioas, NULL));
	ASSERT_EQ(0, ioas_usable(self->iommufd, self->ioas, MSI_START, MSI_LAST));
	ASSERT_EQ(1, ioas_usable(self->iommufd, other, MSI_START, MSI_LAST));
	/* Attaching again replaces. */
	ASSERT_EQ(0, cdev_attach(self->cdev, other, NULL));
	ASSERT_EQ(1, ioas_usable(self->iommufd, self->ioas, MSI_START, MSI_LAST));
	ASSERT_EQ(0, ioas_usable(self->iommufd, other, MSI_START, MSI_LAST));
	/* A replace the new IOAS refuses leaves everything where it was. */
	ASSERT_EQ(0, ioas_map_fixed(self->iommufd, self->ioas, self->buf,
			       MSI_START, 4096));
	EXPECT_EQ(-1, cdev_attach(self->cdev, self->ioas, NULL));
	EXPECT_EQ(EADDRINUSE, errno);
	ASSERT_EQ(0, ioas_usable(self->iommufd, other, MSI_START, MSI_LAST));
	ASSERT_EQ(0, ioas_unmap(self->iommufd, self->ioas, MSI_START, 4096));
	/* Back, and the same again (nothing changes). */
	ASSERT_EQ(0, cdev_attach(self->cdev, self->ioas, NULL));
	ASSERT_EQ(0, cdev_attach(self->cdev, self->ioas, NULL));
	ASSERT_EQ(0, ioas_usable(self->iommufd, self->ioas, MSI_START, MSI_LAST));
	ASSERT_EQ(1, ioas_usable(self->iommufd, other, MSI_START, MSI_LAST));
	ASSERT_EQ(0, cdev_detach(self->cdev));
	ASSERT_EQ(1, ioas_usable(self->iommufd, self->ioas, MSI_START, MSI_LAST));
}

/* Closing the device with it attached gives the window back too. */
TEST_F(real_device, close_gives_reserved_regions_back)
{
	ASSERT_EQ(0, cdev_attach(self->cdev, self->ioas, NULL));
	ASSERT_EQ(0, ioas_usable(self->iommufd, self->ioas, MSI_START, MSI_LAST));
	ASSERT_EQ(0, close(self->cdev));
	ASSERT_EQ(1, ioas_usable(self->iommufd, self->ioas, MSI_START, MSI_LAST));
	self->cdev = open(cdev_path, O_RDWR);
	ASSERT_LE(0, self->cdev);
}

/*
 * Without interrupt remapping the bind needs allow_unsafe_interrupts; with
 * it, it does not.
 */
TEST(unsafe_interrupts)
{
	bool isolated = remaps_interrupts();
	char was = param_get();
	int iommufd, cdev, rc, err;

	ASSERT_TRUE(was == 'Y' || was == 'N');
	iommufd = open("/dev/iommu", O_RDWR);
	ASSERT_LE(0, iommufd);
	cdev = open(cdev_path, O_RDWR);
	ASSERT_LE(0, cdev);
	ASSERT_EQ(0, param_set('N'));
	rc = cdev_bind(cdev, iommufd, NULL);
	err = errno;
	ASSERT_EQ(0, param_set(was));
	if (isolated) {
		ASSERT_EQ(0, rc);
	} else {
		ASSERT_EQ(-1, rc);
		ASSERT_EQ(EPERM, err);
		/* Allowed, it binds. */
		ASSERT_EQ(0, param_set('Y'));
		rc = cdev_bind(cdev, iommufd, NULL);
		ASSERT_EQ(0, param_set(was));
		ASSERT_EQ(0, rc);
	}
	close(cdev);
	close(iommufd);
}

/*
 * In a child without CAP_IPC_LOCK and a 4-page RLIMIT_MEMLOCK: with the
 * device attached, mapping exactly 4 pages pins and charges them, a 5th is
 * refused (ENOMEM) and charges nothing, and the unmap gives everything back.
 * The charges are per user (the default mode): one left behind by anything
 * before makes the 4-page map fail, which is why the VFIO job runs this
 * after each program.
 */
static int locked_child(void)
{
	struct __user_cap_header_struct hdr = {
		.version = _LINUX_CAPABILITY_VERSION_3,
	};
	struct __user_cap_data_struct data[2] = {};
	struct rlimit lim = { 4 * 4096, 4 * 4096 };
	int iommufd, cdev, bad = 0;
	uint32_t ioas;
	uint8_t *buf;

	buf = mmap(NULL, 8 * 4096, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	iommufd = open("/dev/iommu", O_RDWR);
	cdev = open(cdev_path, O_RDWR);
	if (buf == MAP_FAILED || iommufd < 0 || cdev < 0 ||
	    cdev_bind(cdev, iommufd, NULL))
		return 10;
	ioas = ioas_alloc(iommufd);
	if (!ioas || cdev_attach(cdev, ioas, NULL))
		return 11;
	if (setrlimit(RLIMIT_MEMLOCK, &lim) ||
	    syscall(SYS_capget, &hdr, data))
		return 12;
	data[0].effective &= ~(1U << CAP_IPC_LOCK);
	data[0].permitted &= ~(1U << CAP_IPC_LOCK);
	if (syscall(SYS_capset, &hdr, data))
		return 13;
	if (ioas_map_fixed(iommufd, ioas, buf, 0x100000, 4 * 4096)) {
		printf("# locked: 4 pages within the limit: %s\n",
		       strerror(errno));
		return 1;
	}
	if (status_kb("VmPin") != 16)
		bad = 2;
	if (!ioas_map_fixed(iommufd, ioas, buf + 4 * 4096, 0x200000, 4096) ||
	    errno != ENOMEM)
		bad = 3;
	if (status_kb("VmPin") != 16)
		bad = 4;
	if (ioas_unmap(iommufd, ioas, 0x100000, 4 * 4096) || status_kb("VmPin"))
		bad = 5;
	close(cdev);
	close(iommufd);
	return bad;
}

TEST(locked_memory)
{
	int status;
	pid_t child = fork();

	ASSERT_NE(-1, child);
	if (!child)
		_exit(locked_child());
	ASSERT_EQ(child, waitpid(child, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status));
}

int main(int argc, char *argv[])
{
	const char *bdf = vfio_selftests_get_bdf(&argc, argv);

	cdev_path = vfio_pci_get_cdev_path(bdf);
	printf("# %s: %s, interrupts %sremapped\n", bdf, cdev_path,
	       remaps_interrupts() ? "" : "not ");
	return test_harness_run(argc, argv);
}
