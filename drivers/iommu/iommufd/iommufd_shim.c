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
 * As the C iommufd: without interrupt remapping (or another way to isolate
 * MSIs), a device's DMA can raise interrupts it was not given, so binding
 * such a device is refused unless this is set.  Writable at run time.
 */
static bool allow_unsafe_interrupts;
module_param(allow_unsafe_interrupts, bool, 0644);
MODULE_PARM_DESC(allow_unsafe_interrupts,
		 "Bind devices even where the platform cannot isolate their MSIs (a security weakness)");

bool iommufd_shim_allow_unsafe_interrupts(void)
{
	return READ_ONCE(allow_unsafe_interrupts);
}

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
 * The in-kernel API of include/linux/iommufd.h, implemented on the Rust side
 * (ffi.rs) and exported here under the C module's names, namespaces and
 * prototypes, so that vfio.ko links against this module unchanged.
 */

struct iommufd_ctx *iommufd_ctx_from_file(struct file *file)
{
	return iommufd_rs_ctx_from_file(file);
}
EXPORT_SYMBOL_NS_GPL(iommufd_ctx_from_file, "IOMMUFD");

struct iommufd_ctx *iommufd_ctx_from_fd(int fd)
{
	return iommufd_rs_ctx_from_fd(fd);
}
EXPORT_SYMBOL_NS_GPL(iommufd_ctx_from_fd, "IOMMUFD");

void iommufd_ctx_get(struct iommufd_ctx *ictx)
{
	iommufd_rs_ctx_get(ictx);
}
EXPORT_SYMBOL_NS_GPL(iommufd_ctx_get, "IOMMUFD");

void iommufd_ctx_put(struct iommufd_ctx *ictx)
{
	iommufd_rs_ctx_put(ictx);
}
EXPORT_SYMBOL_NS_GPL(iommufd_ctx_put, "IOMMUFD");

bool iommufd_ctx_has_group(struct iommufd_ctx *ictx, struct iommu_group *group)
{
	return iommufd_rs_ctx_has_group(ictx, group);
}
EXPORT_SYMBOL_NS_GPL(iommufd_ctx_has_group, "IOMMUFD");

struct iommufd_device *iommufd_device_bind(struct iommufd_ctx *ictx,
					   struct device *dev, u32 *id)
{
	return iommufd_rs_device_bind(ictx, dev, id);
}
EXPORT_SYMBOL_NS_GPL(iommufd_device_bind, "IOMMUFD");

void iommufd_device_unbind(struct iommufd_device *idev)
{
	iommufd_rs_device_unbind(idev);
}
EXPORT_SYMBOL_NS_GPL(iommufd_device_unbind, "IOMMUFD");

struct iommufd_ctx *iommufd_device_to_ictx(struct iommufd_device *idev)
{
	return iommufd_rs_device_to_ictx(idev);
}
EXPORT_SYMBOL_NS_GPL(iommufd_device_to_ictx, "IOMMUFD");

u32 iommufd_device_to_id(struct iommufd_device *idev)
{
	return iommufd_rs_device_to_id(idev);
}
EXPORT_SYMBOL_NS_GPL(iommufd_device_to_id, "IOMMUFD");

int iommufd_device_attach(struct iommufd_device *idev, ioasid_t pasid,
			  u32 *pt_id)
{
	return iommufd_rs_device_attach(idev, pasid, pt_id);
}
EXPORT_SYMBOL_NS_GPL(iommufd_device_attach, "IOMMUFD");

int iommufd_device_replace(struct iommufd_device *idev, ioasid_t pasid,
			   u32 *pt_id)
{
	return iommufd_rs_device_replace(idev, pasid, pt_id);
}
EXPORT_SYMBOL_NS_GPL(iommufd_device_replace, "IOMMUFD");

void iommufd_device_detach(struct iommufd_device *idev, ioasid_t pasid)
{
	iommufd_rs_device_detach(idev, pasid);
}
EXPORT_SYMBOL_NS_GPL(iommufd_device_detach, "IOMMUFD");

struct iommufd_access *
iommufd_access_create(struct iommufd_ctx *ictx,
		      const struct iommufd_access_ops *ops, void *data, u32 *id)
{
	return iommufd_rs_access_create(ictx, ops, data, id);
}
EXPORT_SYMBOL_NS_GPL(iommufd_access_create, "IOMMUFD");

void iommufd_access_destroy(struct iommufd_access *access)
{
	iommufd_rs_access_destroy(access);
}
EXPORT_SYMBOL_NS_GPL(iommufd_access_destroy, "IOMMUFD");

int iommufd_access_attach(struct iommufd_access *access, u32 ioas_id)
{
	return iommufd_rs_access_attach(access, ioas_id);
}
EXPORT_SYMBOL_NS_GPL(iommufd_access_attach, "IOMMUFD");

int iommufd_access_replace(struct iommufd_access *access, u32 ioas_id)
{
	return iommufd_rs_access_replace(access, ioas_id);
}
EXPORT_SYMBOL_NS_GPL(iommufd_access_replace, "IOMMUFD");

void iommufd_access_detach(struct iommufd_access *access)
{
	iommufd_rs_access_detach(access);
}
EXPORT_SYMBOL_NS_GPL(iommufd_access_detach, "IOMMUFD");

int iommufd_access_pin_pages(struct iommufd_access *access, unsigned long iova,
			     unsigned long length, struct page **out_pages, unsigned int flags)
{
	return iommufd_rs_access_pin_pages(access, iova, length, out_pages, flags);
}
EXPORT_SYMBOL_NS_GPL(iommufd_access_pin_pages, "IOMMUFD");

void iommufd_access_unpin_pages(struct iommufd_access *access,
				unsigned long iova, unsigned long length)
{
	iommufd_rs_access_unpin_pages(access, iova, length);
}
EXPORT_SYMBOL_NS_GPL(iommufd_access_unpin_pages, "IOMMUFD");

int iommufd_access_rw(struct iommufd_access *access, unsigned long iova,
		      void *data, size_t len, unsigned int flags)
{
	return iommufd_rs_access_rw(access, iova, data, len, flags);
}
EXPORT_SYMBOL_NS_GPL(iommufd_access_rw, "IOMMUFD");

int iommufd_vfio_compat_ioas_get_id(struct iommufd_ctx *ictx, u32 *out_ioas_id)
{
	return iommufd_rs_vfio_compat_ioas_get_id(ictx, out_ioas_id);
}
EXPORT_SYMBOL_NS_GPL(iommufd_vfio_compat_ioas_get_id, "IOMMUFD_VFIO");

int iommufd_vfio_compat_ioas_create(struct iommufd_ctx *ictx)
{
	return iommufd_rs_vfio_compat_ioas_create(ictx);
}
EXPORT_SYMBOL_NS_GPL(iommufd_vfio_compat_ioas_create, "IOMMUFD_VFIO");

int iommufd_vfio_compat_set_no_iommu(struct iommufd_ctx *ictx)
{
	return iommufd_rs_vfio_compat_set_no_iommu(ictx);
}
EXPORT_SYMBOL_NS_GPL(iommufd_vfio_compat_set_no_iommu, "IOMMUFD_VFIO");
