/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The functions that cross between the C shim (iommufd_shim.c) and the Rust
 * side of the module (ffi.rs, its one FFI file).
 */
#ifndef IOMMUFD_RS_SHIM_H
#define IOMMUFD_RS_SHIM_H

#include <linux/fs.h>
#include <linux/iommufd.h>
#include <linux/poll.h>

/* Rust: the operations of the module's anonymous-inode files. */
ssize_t iommufd_rs_file_read(void *data, char __user *buf, size_t count);
ssize_t iommufd_rs_file_write(void *data, const char __user *buf,
			      size_t count);
__poll_t iommufd_rs_file_poll(void *data, struct file *file,
			      struct poll_table_struct *wait);
void iommufd_rs_file_release(void *data);

/* C, called from Rust: a new such file owning @data, and what a file owns. */
struct file *iommufd_shim_file(const char *name, void *data);
void *iommufd_shim_file_data(struct file *file);

/* C, called from Rust: whether memfd_pin_folios() can pin @file's pages. */
bool iommufd_shim_file_pins_like_memfd(struct file *file);

/* C, called from Rust: the allow_unsafe_interrupts module parameter. */
bool iommufd_shim_allow_unsafe_interrupts(void);

#if IS_ENABLED(CONFIG_KUNIT)
/* C, called from Rust's KUnit tests. */
unsigned long iommufd_shim_c_offset(unsigned int which);
unsigned long iommufd_shim_layout(unsigned int i);
struct file *iommufd_shim_kunit_memfd(size_t size);
#endif

/* The in-kernel API (include/linux/iommufd.h), in Rust (ffi.rs). */
struct iommufd_ctx *iommufd_rs_ctx_from_file(struct file *file);
struct iommufd_ctx *iommufd_rs_ctx_from_fd(int fd);
void iommufd_rs_ctx_get(struct iommufd_ctx *ictx);
void iommufd_rs_ctx_put(struct iommufd_ctx *ictx);
bool iommufd_rs_ctx_has_group(struct iommufd_ctx *ictx,
			      struct iommu_group *group);
struct iommufd_device *iommufd_rs_device_bind(struct iommufd_ctx *ictx,
					      struct device *dev, u32 *id);
void iommufd_rs_device_unbind(struct iommufd_device *idev);
struct iommufd_ctx *iommufd_rs_device_to_ictx(struct iommufd_device *idev);
u32 iommufd_rs_device_to_id(struct iommufd_device *idev);
int iommufd_rs_device_attach(struct iommufd_device *idev, ioasid_t pasid,
			     u32 *pt_id);
int iommufd_rs_device_replace(struct iommufd_device *idev, ioasid_t pasid,
			      u32 *pt_id);
void iommufd_rs_device_detach(struct iommufd_device *idev, ioasid_t pasid);
struct iommufd_access *
iommufd_rs_access_create(struct iommufd_ctx *ictx,
			 const struct iommufd_access_ops *ops, void *data,
			 u32 *id);
void iommufd_rs_access_destroy(struct iommufd_access *access);
int iommufd_rs_access_attach(struct iommufd_access *access, u32 ioas_id);
int iommufd_rs_access_replace(struct iommufd_access *access, u32 ioas_id);
void iommufd_rs_access_detach(struct iommufd_access *access);
int iommufd_rs_access_pin_pages(struct iommufd_access *access,
				unsigned long iova, unsigned long length, struct page **out_pages,
				unsigned int flags);
void iommufd_rs_access_unpin_pages(struct iommufd_access *access,
				   unsigned long iova, unsigned long length);
int iommufd_rs_access_rw(struct iommufd_access *access, unsigned long iova,
			 void *data, size_t len, unsigned int flags);
int iommufd_rs_vfio_compat_ioas_get_id(struct iommufd_ctx *ictx,
				       u32 *out_ioas_id);
int iommufd_rs_vfio_compat_ioas_create(struct iommufd_ctx *ictx);
int iommufd_rs_vfio_compat_set_no_iommu(struct iommufd_ctx *ictx);

#endif
