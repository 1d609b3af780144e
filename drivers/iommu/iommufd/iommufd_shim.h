/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The functions that cross between the C shim and the Rust side of the
 * module.
 */
#ifndef IOMMUFD_SHIM_H
#define IOMMUFD_SHIM_H

#include <linux/fs.h>
#include <linux/poll.h>

/* Rust (fault.rs): the operations of a fault queue file. */
ssize_t iommufd_rs_fault_read(void *data, char __user *buf, size_t count);
ssize_t iommufd_rs_fault_write(void *data, const char __user *buf,
			       size_t count);
__poll_t iommufd_rs_fault_poll(void *data, struct file *file,
			       struct poll_table_struct *wait);
void iommufd_rs_fault_release(void *data);

/* C, called from fault.rs: the file of a fault queue, owning @data. */
struct file *iommufd_shim_fault_file(void *data);

#endif
