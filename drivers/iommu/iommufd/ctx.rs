// SPDX-License-Identifier: GPL-2.0

//! An iommufd context: what one open of `/dev/iommu` owns.

use kernel::capability::{capable, Capability};
use kernel::fs::File;
use kernel::iommu::iommufd::CtxFace;
use kernel::new_mutex;
use kernel::prelude::*;
use kernel::sync::aref::ARef;
use kernel::sync::{Arc, ArcBorrow, Mutex};

use crate::group::Groups;
use crate::object::{ObjectTable, Pending, TableState};
use crate::pages::AccountMode;

/// Context state that must change together with the set of objects: it is
/// kept under the object table's lock.
pub(crate) struct CtxState {
    pub(crate) account_mode: AccountMode,
    /// The IOAS the VFIO compatibility ioctls operate on.
    pub(crate) compat_ioas: Option<u32>,
    /// VFIO made this a no-IOMMU container
    /// (`iommufd_vfio_compat_set_no_iommu()`).
    pub(crate) no_iommu: bool,
}

impl TableState for CtxState {
    fn forget(&mut self, id: u32) {
        if self.compat_ioas == Some(id) {
            self.compat_ioas = None;
        }
    }
}

/// The object table of a context.
pub(crate) type Objects = ObjectTable<CtxState>;

/// An object of a context built and not published yet.
pub(crate) type PendingObj<'a, T> = Pending<'a, CtxState, T>;

#[pin_data]
pub(crate) struct Ctx {
    #[pin]
    pub(crate) objects: Objects,
    /// `/dev/iommu` itself: the device dma-bufs are attached to.
    pub(crate) dev: ARef<kernel::device::Device>,
    /// The IOMMU groups of the bound devices.
    #[pin]
    pub(crate) groups: Mutex<Groups>,
    /// What the kernel's built-in iommufd helpers and the IOMMU drivers
    /// see of the context (its mmap regions): C layout.
    pub(crate) face: Arc<CtxFace>,
}

impl Ctx {
    pub(crate) fn new(dev: ARef<kernel::device::Device>) -> impl PinInit<Self, Error> {
        try_pin_init!(Ctx {
            objects <- ObjectTable::new(CtxState {
                account_mode: AccountMode::User,
                compat_ioas: None,
                no_iommu: false,
            }),
            dev,
            groups <- new_mutex!(Groups::new()),
            face: CtxFace::new()?,
        }? Error)
    }

    /// The cookie DMA ownership of this context's devices is claimed with.
    pub(crate) fn owner_cookie(&self) -> *mut core::ffi::c_void {
        core::ptr::from_ref(self).cast_mut().cast()
    }

    /// How the pages this context pins are charged.
    pub(crate) fn account_mode(&self) -> AccountMode {
        self.objects.with_state(|s, _| s.account_mode)
    }

    /// Sets how pinned pages are charged from `IOMMU_OPTION_RLIMIT_MODE`'s
    /// value (0: to the user, 1: to the process): needs `CAP_SYS_RESOURCE`
    /// (`EPERM`) and a context with no object (`EBUSY`), checked in that
    /// order and before the value (`EINVAL`), as upstream.
    pub(crate) fn set_account_mode(&self, val: u64) -> Result {
        if !capable(Capability::SYS_RESOURCE) {
            return Err(EPERM);
        }
        self.objects.with_state(|s, empty| {
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
}

/// The context an ioctl runs in, from which in-kernel users (accesses) can
/// take a [`CtxHold`].
#[derive(Clone, Copy)]
pub(crate) struct CtxHandle<'a> {
    ctx: ArcBorrow<'a, Ctx>,
    file: &'a File,
}

impl<'a> CtxHandle<'a> {
    pub(crate) fn new(ctx: ArcBorrow<'a, Ctx>, file: &'a File) -> Self {
        Self { ctx, file }
    }

    pub(crate) fn ctx(&self) -> &Ctx {
        &self.ctx
    }

    /// A reference to the context (which does not keep its file open).
    #[cfg(CONFIG_IOMMUFD_TEST)]
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
