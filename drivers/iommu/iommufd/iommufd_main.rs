// SPDX-License-Identifier: GPL-2.0

//! iommufd: the `/dev/iommu` user API for I/O page tables that point at user
//! memory, in Rust.  A drop-in replacement for `drivers/iommu/iommufd`.

use kernel::miscdevice::{MiscDeviceOptions, MiscDeviceRegistration};
use kernel::prelude::*;

mod ctx;
mod interval;
mod io_pagetable;
mod ioas;
mod object;
#[cfg(CONFIG_IOMMUFD_TEST)]
mod selftest;
mod uapi;
mod ucmd;
mod vfio_compat;

module! {
    type: IommufdModule,
    name: "iommufd",
    authors: ["The iommufd-rs developers"],
    description: "I/O Address Space Management for passthrough devices (Rust)",
    license: "GPL",
}

#[pin_data]
struct IommufdModule {
    #[pin]
    _iommu: MiscDeviceRegistration<ctx::Ctx>,
}

impl kernel::InPlaceModule for IommufdModule {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            _iommu <- MiscDeviceRegistration::register(MiscDeviceOptions {
                name: c"iommu",
                mode: 0o660,
            }),
        })
    }
}
