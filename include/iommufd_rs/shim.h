/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The functions that cross between the C shim (iommufd_shim.c) and the Rust
 * side of the module (ffi.rs, its one FFI file).
 */
#ifndef IOMMUFD_RS_SHIM_H
#define IOMMUFD_RS_SHIM_H

#include <linux/fs.h>
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

#if IS_ENABLED(CONFIG_KUNIT)
/* C, called from Rust's KUnit tests. */
unsigned long iommufd_shim_c_offset(unsigned int which);
struct file *iommufd_shim_kunit_memfd(size_t size);
#endif

#endif
