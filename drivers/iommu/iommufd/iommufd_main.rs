// SPDX-License-Identifier: GPL-2.0

//! iommufd: the `/dev/iommu` user API for I/O page tables that point at user
//! memory, in Rust.  A drop-in replacement for `drivers/iommu/iommufd`.

// Without CONFIG_IOMMUFD_TEST nothing in the module creates devices,
// hardware page tables, accesses or fault queues yet: their callers are the
// selftest and the in-kernel API VFIO uses, which is not exported yet.  The
// prod kernel build proves the rest compiles and works there.
#![cfg_attr(not(CONFIG_IOMMUFD_TEST), allow(dead_code))]

use kernel::miscdevice::{MiscDeviceOptions, MiscDeviceRegistration};
use kernel::prelude::*;

mod access;
mod ctx;
mod device;
mod fault;
mod interval;
mod io_pagetable;
mod ioas;
#[cfg(CONFIG_IOMMUFD_TEST)]
mod mock;
mod object;
mod pages;
#[cfg(CONFIG_IOMMUFD_TEST)]
mod selftest;
mod uapi;
mod ucmd;
mod vfio_compat;
mod viommu;

module! {
    type: IommufdModule,
    name: "iommufd",
    authors: ["The iommufd-rs developers"],
    description: "I/O Address Space Management for passthrough devices (Rust)",
    license: "GPL",
}

/// Keeps the selftest's mock IOMMU registered, with `CONFIG_IOMMUFD_TEST`.
struct MockGuard;

impl MockGuard {
    fn new(module: &'static ThisModule) -> Result<Self> {
        #[cfg(CONFIG_IOMMUFD_TEST)]
        mock::register(module)?;
        #[cfg(not(CONFIG_IOMMUFD_TEST))]
        let _ = module;
        Ok(Self)
    }
}

impl Drop for MockGuard {
    fn drop(&mut self) {
        // No context, hence no mock device, outlives the module.
        #[cfg(CONFIG_IOMMUFD_TEST)]
        mock::unregister();
    }
}

#[pin_data]
struct IommufdModule {
    // Registered first: a failed /dev/iommu registration drops it again.
    _mock: MockGuard,
    #[pin]
    _iommu: MiscDeviceRegistration<ctx::Ctx>,
}

impl kernel::InPlaceModule for IommufdModule {
    fn init(module: &'static ThisModule) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            _mock: MockGuard::new(module)?,
            _iommu <- MiscDeviceRegistration::register(MiscDeviceOptions {
                name: c"iommu",
                mode: 0o660,
            }),
        })
    }
}

#[kunit_tests(iommufd_rs_layout)]
mod tests {
    use core::mem::offset_of;
    use kernel::bindings::{file, mm_struct, task_struct, user_struct};

    extern "C" {
        /// `iommufd_shim.c`: offsets of the same fields as C lays them out.
        fn iommufd_shim_c_offset(which: u32) -> usize;
    }

    /// The bindgen layouts of the fields this module and its kernel-crate
    /// abstractions reach into agree with C's.
    #[test]
    fn bindings_match_c_layout() {
        let rust = [
            offset_of!(task_struct, mm),
            offset_of!(task_struct, group_leader),
            offset_of!(task_struct, pid),
            offset_of!(mm_struct, __bindgen_anon_1.mm_users),
            offset_of!(mm_struct, __bindgen_anon_1.pinned_vm),
            offset_of!(user_struct, locked_vm),
            offset_of!(file, private_data),
        ];
        for (i, off) in rust.into_iter().enumerate() {
            // SAFETY: The shim function only computes a constant.
            assert_eq!(off, unsafe { iommufd_shim_c_offset(i as u32) });
        }
    }
}
