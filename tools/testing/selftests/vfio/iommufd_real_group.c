// SPDX-License-Identifier: GPL-2.0-only
/*
 * Two devices in one IOMMU group (QEMU's e1000s behind a PCIe-to-PCI
 * bridge, which the IOMMU cannot tell apart), through iommufd: the core
 * attaches groups, not devices, so the devices of a group share one
 * attachment.
 *  - through their cdevs: the second joins the first's HWPT (attaching it
 *    elsewhere is EINVAL); a replace by either moves both, with their
 *    reserved regions; the group stays attached, and the reserved regions
 *    reserved, until the last leaves;
 *  - through their VFIO group, with /dev/iommu as the container: both
 *    devices open on the compat IOAS and type1 maps work.
 *
 *   iommufd_real_group BDF_A BDF_B   (both bound to vfio-pci, one group)
 *
 * Passes on the C iommufd and on ours alike.
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
#include <linux/vfio.h>

#include <libvfio.h>
#include "kselftest_harness.h"
#include "iommufd_vfio_utils.h"

#define MSI_START 0xfee00000ULL
#define MSI_LAST 0xfeefffffULL

static char **bdfs;

/* Whether a usable IOVA range of @ioas intersects the MSI window. */
static int msi_usable(int iommufd, uint32_t ioas)
{
	return ioas_usable(iommufd, ioas, MSI_START, MSI_LAST);
}

FIXTURE(cdevs) {
	int iommufd;
	int a, b;
	uint32_t ioas;
};

FIXTURE_SETUP(cdevs)
{
	self->iommufd = open("/dev/iommu", O_RDWR);
	ASSERT_LE(0, self->iommufd);
	self->a = open(vfio_pci_get_cdev_path(bdfs[0]), O_RDWR);
	ASSERT_LE(0, self->a);
	self->b = open(vfio_pci_get_cdev_path(bdfs[1]), O_RDWR);
	ASSERT_LE(0, self->b);
	ASSERT_EQ(0, cdev_bind(self->a, self->iommufd, NULL));
	ASSERT_EQ(0, cdev_bind(self->b, self->iommufd, NULL));
	self->ioas = ioas_alloc(self->iommufd);
	ASSERT_NE(0, self->ioas);
}

FIXTURE_TEARDOWN(cdevs)
{
	close(self->a);
	close(self->b);
	close(self->iommufd);
}

/* The second device of the group joins the first's HWPT. */
TEST_F(cdevs, second_device_joins)
{
	uint32_t ha, hb, other;

	ASSERT_EQ(0, cdev_attach(self->a, self->ioas, &ha));
	ASSERT_EQ(0, cdev_attach(self->b, self->ioas, &hb));
	ASSERT_EQ(ha, hb);
	/* To the HWPT by its ID too. */
	ASSERT_EQ(0, cdev_detach(self->b));
	ASSERT_EQ(0, cdev_attach(self->b, ha, &hb));
	ASSERT_EQ(ha, hb);
	/* Not to another IOAS while the group is attached to this one. */
	ASSERT_EQ(0, cdev_detach(self->b));
	other = ioas_alloc(self->iommufd);
	ASSERT_NE(0, other);
	EXPECT_EQ(-1, cdev_attach(self->b, other, NULL));
	EXPECT_EQ(EINVAL, errno);
}

/*
 * Attaching an attached device again replaces: the whole group moves, each
 * device's reserved regions with it, and the automatic HWPT left behind goes.
 */
TEST_F(cdevs, replace_moves_the_group)
{
	uint32_t ha, hb, h2, other;

	other = ioas_alloc(self->iommufd);
	ASSERT_NE(0, other);
	ASSERT_EQ(0, cdev_attach(self->a, self->ioas, &ha));
	ASSERT_EQ(0, cdev_attach(self->b, self->ioas, &hb));
	ASSERT_EQ(ha, hb);
	ASSERT_EQ(1, msi_usable(self->iommufd, other));
	ASSERT_EQ(0, cdev_attach(self->a, other, &h2));
	ASSERT_NE(ha, h2);
	/* Neither device's regions are left in the old IOAS. */
	EXPECT_EQ(1, msi_usable(self->iommufd, self->ioas));
	EXPECT_EQ(0, msi_usable(self->iommufd, other));
	/* No device uses the old HWPT: it is gone. */
	EXPECT_EQ(-1, iommufd_destroy(self->iommufd, ha));
	EXPECT_EQ(ENOENT, errno);
	/* B is there too: attaching it to the new IOAS finds it in place. */
	ASSERT_EQ(0, cdev_attach(self->b, other, &hb));
	EXPECT_EQ(h2, hb);
	/* A leaves: B's regions stay reserved in the new IOAS. */
	ASSERT_EQ(0, cdev_detach(self->a));
	EXPECT_EQ(0, msi_usable(self->iommufd, other));
	/* B, alone now, moves back by itself. */
	ASSERT_EQ(0, cdev_attach(self->b, self->ioas, &hb));
	EXPECT_EQ(1, msi_usable(self->iommufd, other));
	EXPECT_EQ(0, msi_usable(self->iommufd, self->ioas));
	ASSERT_EQ(0, cdev_detach(self->b));
	EXPECT_EQ(1, msi_usable(self->iommufd, self->ioas));
}

/* The group stays attached until its last device leaves. */
TEST_F(cdevs, last_device_detaches)
{
	void *buf = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ASSERT_NE(MAP_FAILED, buf);
	ASSERT_EQ(0, cdev_attach(self->a, self->ioas, NULL));
	ASSERT_EQ(0, cdev_attach(self->b, self->ioas, NULL));
	ASSERT_EQ(0, msi_usable(self->iommufd, self->ioas));
	ASSERT_EQ(0, cdev_detach(self->a));
	/* B's reserved regions are still out of the IOAS, and it maps. */
	ASSERT_EQ(0, msi_usable(self->iommufd, self->ioas));
	ASSERT_EQ(0, ioas_map_fixed(self->iommufd, self->ioas, buf, 0x100000,
				    4096));
	/* A may come back to it. */
	ASSERT_EQ(0, cdev_attach(self->a, self->ioas, NULL));
	ASSERT_EQ(0, cdev_detach(self->b));
	ASSERT_EQ(0, cdev_detach(self->a));
	ASSERT_EQ(1, msi_usable(self->iommufd, self->ioas));
	/* Alone, a device may go anywhere. */
	ASSERT_EQ(0, cdev_attach(self->b, self->ioas, NULL));
	munmap(buf, 4096);
}

/* Closing one device leaves the other attached. */
TEST_F(cdevs, close_one)
{
	ASSERT_EQ(0, cdev_attach(self->a, self->ioas, NULL));
	ASSERT_EQ(0, cdev_attach(self->b, self->ioas, NULL));
	ASSERT_EQ(0, close(self->a));
	ASSERT_EQ(0, msi_usable(self->iommufd, self->ioas));
	ASSERT_EQ(0, cdev_detach(self->b));
	ASSERT_EQ(1, msi_usable(self->iommufd, self->ioas));
	self->a = open(vfio_pci_get_cdev_path(bdfs[0]), O_RDWR);
	ASSERT_LE(0, self->a);
}

/* The group's number, from sysfs; -1 if none. */
static int group_of(const char *bdf)
{
	char path[256], link[256];
	ssize_t n;
	char *slash;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group",
		 bdf);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return -1;
	link[n] = 0;
	slash = strrchr(link, '/');
	return slash ? atoi(slash + 1) : -1;
}

/* The VFIO group with /dev/iommu as its container: both devices open. */
TEST(group_container)
{
	struct vfio_iommu_type1_dma_map map = {
		.argsz = sizeof(map),
		.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
		.iova = 0x100000,
		.size = 4096,
	};
	struct vfio_iommu_type1_dma_unmap unmap = {
		.argsz = sizeof(unmap),
		.iova = 0x100000,
		.size = 4096,
	};
	char path[64];
	int gnum = group_of(bdfs[0]);
	int iommufd, group, a, b;
	void *buf;

	ASSERT_LE(0, gnum);
	ASSERT_EQ(gnum, group_of(bdfs[1]));
	snprintf(path, sizeof(path), "/dev/vfio/%d", gnum);
	group = open(path, O_RDWR);
	ASSERT_LE(0, group);
	iommufd = open("/dev/iommu", O_RDWR);
	ASSERT_LE(0, iommufd);
	ASSERT_EQ(0, ioctl(group, VFIO_GROUP_SET_CONTAINER, &iommufd));
	ASSERT_EQ(0, ioctl(iommufd, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU));
	a = ioctl(group, VFIO_GROUP_GET_DEVICE_FD, bdfs[0]);
	ASSERT_LE(0, a);
	b = ioctl(group, VFIO_GROUP_GET_DEVICE_FD, bdfs[1]);
	ASSERT_LE(0, b);
	buf = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, buf);
	map.vaddr = (uintptr_t)buf;
	ASSERT_EQ(0, ioctl(iommufd, VFIO_IOMMU_MAP_DMA, &map));
	ASSERT_EQ(0, ioctl(iommufd, VFIO_IOMMU_UNMAP_DMA, &unmap));
	ASSERT_EQ(4096, unmap.size);
	close(a);
	close(b);
	close(group);
	close(iommufd);
	munmap(buf, 4096);
}

int main(int argc, char *argv[])
{
	int n;

	bdfs = vfio_selftests_get_bdfs(&argc, argv, &n);
	if (n != 2) {
		fprintf(stderr, "usage: %s BDF_A BDF_B (one IOMMU group)\n",
			argv[0]);
		return 1;
	}
	printf("# %s and %s, IOMMU group %d and %d\n", bdfs[0], bdfs[1],
	       group_of(bdfs[0]), group_of(bdfs[1]));
	return test_harness_run(argc, argv);
}
