// SPDX-License-Identifier: GPL-2.0

//! An iommufd context: what one open of `/dev/iommu` owns.

use kernel::fs::File;
use kernel::miscdevice::{MiscDevice, MiscDeviceRegistration};
use kernel::prelude::*;

use crate::object::ObjectTable;
use crate::ucmd;

#[pin_data(PinnedDrop)]
pub(crate) struct Ctx {
    #[pin]
    pub(crate) objects: ObjectTable,
}

#[vtable]
impl MiscDevice for Ctx {
    type Ptr = Pin<KBox<Self>>;

    fn open(_file: &File, _misc: &MiscDeviceRegistration<Self>) -> Result<Pin<KBox<Self>>> {
        KBox::try_pin_init(
            try_pin_init!(Ctx {
                objects <- ObjectTable::new(),
            }),
            GFP_KERNEL_ACCOUNT,
        )
    }

    fn ioctl(me: Pin<&Ctx>, _file: &File, cmd: u32, arg: usize) -> Result<isize> {
        ucmd::dispatch(&me, cmd, arg)
    }
}

#[pinned_drop]
impl PinnedDrop for Ctx {
    fn drop(self: Pin<&mut Self>) {
        self.objects.destroy_all();
    }
}
