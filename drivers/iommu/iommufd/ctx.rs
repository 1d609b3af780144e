// SPDX-License-Identifier: GPL-2.0

//! An iommufd context: what one open of `/dev/iommu` owns.

use kernel::capability::{capable, Capability};
use kernel::fs::File;
use kernel::miscdevice::{MiscDevice, MiscDeviceRegistration};
use kernel::prelude::*;
use kernel::sync::aref::ARef;
use kernel::sync::{Arc, ArcBorrow};

use crate::ioas;
use crate::object::{AccountMode, ObjectTable};
use crate::uapi;
use crate::ucmd::{self, Ucmd};

#[pin_data]
pub(crate) struct Ctx {
    #[pin]
    pub(crate) objects: ObjectTable,
    /// `/dev/iommu` itself: the device dma-bufs are attached to.
    pub(crate) dev: ARef<kernel::device::Device>,
}

/// The context an ioctl runs in, from which in-kernel users (accesses) can
/// take a [`CtxHold`].
#[derive(Clone, Copy)]
pub(crate) struct CtxHandle<'a> {
    ctx: ArcBorrow<'a, Ctx>,
    file: &'a File,
}

impl CtxHandle<'_> {
    pub(crate) fn ctx(&self) -> &Ctx {
        &self.ctx
    }

    /// A reference to the context (which does not keep its file open).
    pub(crate) fn arc(&self) -> Arc<Ctx> {
        self.ctx.into()
    }

    pub(crate) fn hold(&self) -> CtxHold {
        CtxHold {
            ctx: self.ctx.into(),
            _file: ARef::from(self.file),
        }
    }
}

/// A long-term reference to a context, for an in-kernel user of its
/// objects: it keeps the `/dev/iommu` file open, as upstream's
/// `iommufd_ctx_get()` does, so the context is not released under it.
pub(crate) struct CtxHold {
    // Dropped first: the file's release then drops the last reference.
    ctx: Arc<Ctx>,
    _file: ARef<File>,
}

impl core::ops::Deref for CtxHold {
    type Target = Ctx;

    fn deref(&self) -> &Ctx {
        &self.ctx
    }
}

#[vtable]
impl MiscDevice for Ctx {
    type Ptr = Arc<Self>;

    fn open(_file: &File, misc: &MiscDeviceRegistration<Self>) -> Result<Arc<Self>> {
        Arc::pin_init(
            try_pin_init!(Ctx {
                objects <- ObjectTable::new(),
                dev: misc.device().into(),
            }),
            GFP_KERNEL_ACCOUNT,
        )
    }

    fn ioctl(me: ArcBorrow<'_, Ctx>, file: &File, cmd: u32, arg: usize) -> Result<isize> {
        ucmd::dispatch(CtxHandle { ctx: me, file }, cmd, arg)
    }

    fn release(me: Arc<Ctx>, _file: &File) {
        // Objects may hold references to the context (devices, HWPTs): they
        // go here, with the file, rather than with the last reference.
        me.objects.destroy_all();
    }
}

impl Ctx {
    /// The cookie DMA ownership of this context's devices is claimed with.
    pub(crate) fn owner_cookie(&self) -> *mut core::ffi::c_void {
        core::ptr::from_ref(self).cast_mut().cast()
    }
}

/// `IOMMU_OPTION`
pub(crate) fn option_ioctl(ucmd: &mut Ucmd<'_, uapi::iommu_option>) -> Result {
    if ucmd.cmd.__reserved != 0 {
        return Err(EOPNOTSUPP);
    }
    match ucmd.cmd.option_id {
        uapi::IOMMU_OPTION_RLIMIT_MODE => rlimit_mode(ucmd)?,
        uapi::IOMMU_OPTION_HUGE_PAGES => ioas::option(ucmd)?,
        _ => return Err(EOPNOTSUPP),
    }
    ucmd.respond()
}

/// `IOMMU_OPTION_RLIMIT_MODE`: 0 charges pinned pages to the user, 1 to the
/// process (as VFIO does).  Only a context with no object may change it, and
/// only with `CAP_SYS_RESOURCE`.
fn rlimit_mode(ucmd: &mut Ucmd<'_, uapi::iommu_option>) -> Result {
    if ucmd.cmd.object_id != 0 {
        return Err(EOPNOTSUPP);
    }
    match u32::from(ucmd.cmd.op) {
        uapi::IOMMU_OPTION_OP_GET => {
            let mode = ucmd.ctx.objects.with_shared(|s, _| s.account_mode);
            ucmd.cmd.val64 = u64::from(mode == AccountMode::Mm);
            Ok(())
        }
        uapi::IOMMU_OPTION_OP_SET => {
            if !capable(Capability::SYS_RESOURCE) {
                return Err(EPERM);
            }
            let val = ucmd.cmd.val64;
            // As upstream: EBUSY while there are objects, whatever the value.
            ucmd.ctx.objects.with_shared(|s, empty| {
                if !empty {
                    return Err(EBUSY);
                }
                s.account_mode = match val {
                    0 => AccountMode::User,
                    1 => AccountMode::Mm,
                    _ => return Err(EINVAL),
                };
                Ok(())
            })
        }
        _ => Err(EOPNOTSUPP),
    }
}
