// SPDX-License-Identifier: GPL-2.0
/*
 * C side of the Rust iommufd module: what C macros do best.
 */
#include <linux/module.h>
