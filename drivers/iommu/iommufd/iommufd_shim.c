// SPDX-License-Identifier: GPL-2.0
/*
 * C side of the Rust iommufd module: what C macros and C tables do best.
 */
#include <linux/anon_inodes.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/hugetlb.h>
#include <linux/iommufd.h>
#include <linux/module.h>
#include <linux/poll.h>
#include <linux/shmem_fs.h>

#include <iommufd_rs/shim.h>

/* iommu_attach_group_handle() and friends, for attaching devices. */
MODULE_IMPORT_NS("IOMMUFD_INTERNAL");
/* Importing dma-bufs (IOMMU_IOAS_MAP_FILE), and the selftest's exporter. */
MODULE_IMPORT_NS("DMA_BUF");
/* The IOVA bitmaps of IOMMU_HWPT_GET_DIRTY_BITMAP (iova_bitmap_*). */
MODULE_IMPORT_NS("IOMMUFD");

/*
 * The module's anonymous-inode files (fault queues, selftest accesses) share
 * these operations; what each file owns, and does, is on the Rust side
 * (ffi.rs).
 */
static ssize_t iommufd_shim_file_read(struct file *file, char __user *buf,
				      size_t count, loff_t *ppos)
{
	if (*ppos)
		return -ESPIPE;
	return iommufd_rs_file_read(file->private_data, buf, count);
}

static ssize_t iommufd_shim_file_write(struct file *file,
				       const char __user *buf, size_t count,
				       loff_t *ppos)
{
	if (*ppos)
		return -ESPIPE;
	return iommufd_rs_file_write(file->private_data, buf, count);
}

static __poll_t iommufd_shim_file_poll(struct file *file,
				       struct poll_table_struct *wait)
{
	return iommufd_rs_file_poll(file->private_data, file, wait);
}

static int iommufd_shim_file_release(struct inode *inode, struct file *file)
{
	iommufd_rs_file_release(file->private_data);
	return 0;
}

static const struct file_operations iommufd_shim_file_fops = {
	.owner = THIS_MODULE,
	.read = iommufd_shim_file_read,
	.write = iommufd_shim_file_write,
	.poll = iommufd_shim_file_poll,
	.release = iommufd_shim_file_release,
};

/*
 * A new file named @name owning @data, which is handed back to Rust at its
 * release.
 */
struct file *iommufd_shim_file(const char *name, void *data)
{
	return anon_inode_getfile(name, &iommufd_shim_file_fops, data, O_RDWR);
}

/* What @file owns, if it is one of the module's files; else NULL. */
void *iommufd_shim_file_data(struct file *file)
{
	if (file->f_op != &iommufd_shim_file_fops)
		return NULL;
	return file->private_data;
}

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

/*
 * The in-kernel API of include/linux/iommufd.h, defined on the Rust side
 * (ffi.rs), exported under the C module's names and namespaces so that
 * vfio.ko links against this module unchanged.
 */
EXPORT_SYMBOL_NS_GPL(iommufd_ctx_from_file, "IOMMUFD");
EXPORT_SYMBOL_NS_GPL(iommufd_ctx_from_fd, "IOMMUFD");
EXPORT_SYMBOL_NS_GPL(iommufd_ctx_get, "IOMMUFD");
EXPORT_SYMBOL_NS_GPL(iommufd_ctx_put, "IOMMUFD");
EXPORT_SYMBOL_NS_GPL(iommufd_ctx_has_group, "IOMMUFD");
EXPORT_SYMBOL_NS_GPL(iommufd_device_bind, "IOMMUFD");
EXPORT_SYMBOL_NS_GPL(iommufd_device_unbind, "IOMMUFD");
EXPORT_SYMBOL_NS_GPL(iommufd_device_to_ictx, "IOMMUFD");
EXPORT_SYMBOL_NS_GPL(iommufd_device_to_id, "IOMMUFD");
EXPORT_SYMBOL_NS_GPL(iommufd_device_attach, "IOMMUFD");
EXPORT_SYMBOL_NS_GPL(iommufd_device_replace, "IOMMUFD");
EXPORT_SYMBOL_NS_GPL(iommufd_device_detach, "IOMMUFD");
EXPORT_SYMBOL_NS_GPL(iommufd_access_create, "IOMMUFD");
EXPORT_SYMBOL_NS_GPL(iommufd_access_destroy, "IOMMUFD");
EXPORT_SYMBOL_NS_GPL(iommufd_access_attach, "IOMMUFD");
EXPORT_SYMBOL_NS_GPL(iommufd_access_replace, "IOMMUFD");
EXPORT_SYMBOL_NS_GPL(iommufd_access_detach, "IOMMUFD");
EXPORT_SYMBOL_NS_GPL(iommufd_access_pin_pages, "IOMMUFD");
EXPORT_SYMBOL_NS_GPL(iommufd_access_unpin_pages, "IOMMUFD");
EXPORT_SYMBOL_NS_GPL(iommufd_access_rw, "IOMMUFD");
EXPORT_SYMBOL_NS_GPL(iommufd_vfio_compat_ioas_get_id, "IOMMUFD_VFIO");
EXPORT_SYMBOL_NS_GPL(iommufd_vfio_compat_ioas_create, "IOMMUFD_VFIO");
EXPORT_SYMBOL_NS_GPL(iommufd_vfio_compat_set_no_iommu, "IOMMUFD_VFIO");
