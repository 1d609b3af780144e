// SPDX-License-Identifier: GPL-2.0
/*
 * C side of the Rust iommufd module: what C macros and C tables do best.
 */
#include <linux/anon_inodes.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/hugetlb.h>
#include <linux/module.h>
#include <linux/poll.h>
#include <linux/shmem_fs.h>

#include "iommufd_shim.h"

/* iommu_attach_group_handle() and friends, for attaching devices. */
MODULE_IMPORT_NS("IOMMUFD_INTERNAL");
/* Importing dma-bufs (IOMMU_IOAS_MAP_FILE), and the selftest's exporter. */
MODULE_IMPORT_NS("DMA_BUF");
/* The IOVA bitmaps of IOMMU_HWPT_GET_DIRTY_BITMAP (iova_bitmap_*). */
MODULE_IMPORT_NS("IOMMUFD");

static ssize_t iommufd_shim_fault_read(struct file *file, char __user *buf,
				       size_t count, loff_t *ppos)
{
	if (*ppos)
		return -ESPIPE;
	return iommufd_rs_fault_read(file->private_data, buf, count);
}

static ssize_t iommufd_shim_fault_write(struct file *file,
					const char __user *buf, size_t count,
					loff_t *ppos)
{
	if (*ppos)
		return -ESPIPE;
	return iommufd_rs_fault_write(file->private_data, buf, count);
}

static __poll_t iommufd_shim_fault_poll(struct file *file,
					struct poll_table_struct *wait)
{
	return iommufd_rs_fault_poll(file->private_data, file, wait);
}

static int iommufd_shim_fault_release(struct inode *inode, struct file *file)
{
	iommufd_rs_fault_release(file->private_data);
	return 0;
}

static const struct file_operations iommufd_shim_fault_fops = {
	.owner = THIS_MODULE,
	.read = iommufd_shim_fault_read,
	.write = iommufd_shim_fault_write,
	.poll = iommufd_shim_fault_poll,
	.release = iommufd_shim_fault_release,
};

/*
 * The file of a fault queue: @data is owned by the file and handed back to
 * Rust at release.
 */
struct file *iommufd_shim_fault_file(void *data)
{
	return anon_inode_getfile("[iommufd-pgfault]", &iommufd_shim_fault_fops,
				  data, O_RDWR);
}

#if IS_ENABLED(CONFIG_IOMMUFD_TEST)
/* Rust: drops the selftest access the file owns (selftest.rs). */
void iommufd_rs_staccess_release(void *data);
/* Called from Rust (selftest.rs). */
struct file *iommufd_shim_staccess_file(void *data);
struct file *iommufd_shim_staccess_fget(int fd, void **data);

static int iommufd_shim_staccess_release(struct inode *inode,
					 struct file *file)
{
	iommufd_rs_staccess_release(file->private_data);
	return 0;
}

static const struct file_operations iommufd_shim_staccess_fops = {
	.owner = THIS_MODULE,
	.release = iommufd_shim_staccess_release,
};

/*
 * The file of a selftest access: @data is owned by the file and handed
 * back to Rust at release.
 */
struct file *iommufd_shim_staccess_file(void *data)
{
	return anon_inode_getfile("[iommufd_test_staccess]",
				  &iommufd_shim_staccess_fops, data, O_RDWR);
}

/*
 * Looks up a selftest access by file descriptor: a reference on its file
 * (for fput()) and, in *data, what the file owns; NULL if @fd is not one.
 */
struct file *iommufd_shim_staccess_fget(int fd, void **data)
{
	struct file *file = fget(fd);

	if (!file)
		return NULL;
	if (file->f_op != &iommufd_shim_staccess_fops) {
		fput(file);
		return NULL;
	}
	*data = file->private_data;
	return file;
}
#endif

/* Called from Rust (ioas.rs). */
bool iommufd_shim_file_pins_like_memfd(struct file *file);

/*
 * Whether memfd_pin_folios() can pin the pages of @file: those of shmem
 * (memfd, tmpfs) and hugetlbfs files.
 */
bool iommufd_shim_file_pins_like_memfd(struct file *file)
{
	return shmem_file(file) || is_file_hugepages(file);
}

#if IS_ENABLED(CONFIG_KUNIT)
#include <linux/mm_types.h>
#include <linux/sched.h>
#include <linux/sched/user.h>

/* Called from Rust (iommufd_main.rs, pages.rs). */
unsigned long iommufd_shim_c_offset(unsigned int which);
struct file *iommufd_shim_kunit_memfd(size_t size);

/* A shmem file, which pins like a memfd: the KUnit tests' memory. */
struct file *iommufd_shim_kunit_memfd(size_t size)
{
	return shmem_file_setup("iommufd_kunit", size, EMPTY_VMA_FLAGS);
}

/*
 * Offsets, as the C compiler lays the structures out, of the fields the
 * Rust side reaches through bindgen's layouts; a KUnit test compares them
 * (a bindgen layout bug once misplaced task_struct's mm).
 */
unsigned long iommufd_shim_c_offset(unsigned int which)
{
	switch (which) {
	case 0:
		return offsetof(struct task_struct, mm);
	case 1:
		return offsetof(struct task_struct, group_leader);
	case 2:
		return offsetof(struct task_struct, pid);
	case 3:
		return offsetof(struct mm_struct, mm_users);
	case 4:
		return offsetof(struct mm_struct, pinned_vm);
	case 5:
		return offsetof(struct user_struct, locked_vm);
	case 6:
		return offsetof(struct file, private_data);
	}
	return ~0UL;
}
#endif
