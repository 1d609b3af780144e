// SPDX-License-Identifier: GPL-2.0

//! Accesses: in-kernel users of an IOAS that reach its memory with the CPU
//! (emulated devices, mediated drivers, the selftest), the Rust side of
//! upstream's `iommufd_access_*` API.
//!
//! An access is created by its owner, attached to one IOAS at a time, pins
//! pages by IOVA or copies to and from them, and is destroyed by its owner.
//! When userspace unmaps IOVA an access holds pins in, the owner is told
//! (`unmap`) and must give those pins back before the unmap can finish.
//!
//! Locking: the access's state lock is taken before the IOAS's locks; the
//! owner's `unmap` callback is always called without the state lock held,
//! so that it can unpin.

use kernel::bindings;
use kernel::new_mutex;
use kernel::prelude::*;
use kernel::sync::{Arc, Mutex};

use crate::ctx::{CtxHandle, CtxHold};
use crate::interval::last_of;
use crate::io_pagetable::UnmapListener;
use crate::ioas::Ioas;
use crate::object::{Held, Object};

/// `IOMMUFD_ACCESS_RW_WRITE`: copy into the IOAS.
pub(crate) const RW_WRITE: u32 = 1 << 0;
/// `__IOMMUFD_ACCESS_RW_SLOW_PATH`: never use a direct user copy.
pub(crate) const RW_SLOW_PATH: u32 = 1 << 2;

/// What the owner of an access provides: the Rust face of upstream's
/// `struct iommufd_access_ops`.  VFIO's emulated devices and the selftest
/// implement it.
pub(crate) trait AccessOps: Send + Sync {
    /// Whether the owner pins pages (and so needs page-aligned IOVAs and
    /// must answer [`AccessOps::unmap`]) or only copies.
    fn needs_pin_pages(&self) -> bool;

    /// `[iova, iova + length)` is going away: the owner must unpin what it
    /// pinned there before returning.  Called without the access's locks.
    fn unmap(&self, iova: u64, length: u64);
}

struct State {
    /// The IOAS new pins and copies go to; None while detached, or while
    /// the access is moving to another IOAS.
    ioas: Option<Held<Ioas>>,
    /// The IOAS unpins go to: the attached one, also while it is moving.
    ioas_unpin: Option<Held<Ioas>>,
}

/// An access object.
#[pin_data]
pub(crate) struct Access {
    /// `owner.needs_pin_pages()`, read once.
    pins: bool,
    ctx: CtxHold,
    owner: Arc<dyn AccessOps>,
    #[pin]
    state: Mutex<State>,
}

fn same(a: &Option<Held<Ioas>>, b: &Option<Held<Ioas>>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => a.same(b.obj()),
        _ => false,
    }
}

impl Access {
    /// Creates an access in the context of `handle`, owned by `owner`.
    /// The owner holds a use of it until [`Access::destroy`].
    pub(crate) fn create(handle: CtxHandle<'_>, owner: Arc<dyn AccessOps>) -> Result<Held<Access>> {
        let access = handle
            .ctx()
            .objects
            .reserve()?
            .new_object(try_pin_init!(Access {
            pins: owner.needs_pin_pages(),
            ctx: handle.hold(),
            owner,
            state <- new_mutex!(State {
                ioas: None,
                ioas_unpin: None,
            }),
        }? Error))?;
        Ok(access.finalize_held())
    }

    /// Attaches a detached access to the IOAS `ioas_id`.
    pub(crate) fn attach(this: &Arc<Object<Access>>, ioas_id: u32) -> Result {
        if this.state.lock().ioas_unpin.is_some() {
            return Err(EINVAL);
        }
        Self::change_ioas(this, Some(ioas_id))
    }

    /// Moves an attached access to the IOAS `ioas_id`; `ENOENT` if it is not
    /// attached.
    pub(crate) fn replace(this: &Arc<Object<Access>>, ioas_id: u32) -> Result {
        if this.state.lock().ioas.is_none() {
            return Err(ENOENT);
        }
        Self::change_ioas(this, Some(ioas_id))
    }

    /// Detaches the access from its IOAS, if any.
    pub(crate) fn detach(this: &Arc<Object<Access>>) {
        if let Err(e) = Self::change_ioas(this, None) {
            pr_warn!("access {}: detach failed: {e:?}\n", this.id());
        }
    }

    /// Detaches the access and destroys it; for its owner, once.
    pub(crate) fn destroy(this: Held<Access>) {
        Self::detach(this.obj());
        // Keeps the access, hence its context, until it is removed.
        let access = this.obj().clone();
        // Gives back the owner's use and waits for commands using it; a
        // failure is another use that outlived its holder (and warned).
        let _ = access.ctx.objects.remove_owned(this);
    }

    /// Switches the access to the IOAS `new` (None: detached).  The owner
    /// is told to unpin everything in the old IOAS first.
    fn change_ioas(this: &Arc<Object<Access>>, new: Option<u32>) -> Result {
        let objects = &this.ctx.objects;
        let mut st = this.state.lock();
        // A concurrent change is under way.
        if !same(&st.ioas, &st.ioas_unpin) {
            return Err(EBUSY);
        }
        let new_ioas = match new {
            Some(id) => Some(objects.get_long::<Ioas>(id)?),
            None => None,
        };
        if same(&new_ioas, &st.ioas) {
            return Ok(());
        }
        if let Some(ioas) = &new_ioas {
            ioas.add_access(this.id(), this.clone())?;
        }
        if let Some(cur) = st.ioas.take() {
            // No new pins from here on; the owner unpins without the lock.
            drop(st);
            this.owner.unmap(0, u64::MAX);
            st = this.state.lock();
            cur.remove_access(this.id());
            st.ioas_unpin = None;
            drop(cur);
        }
        st.ioas_unpin = new_ioas.clone();
        st.ioas = new_ioas;
        Ok(())
    }

    /// Whether the owner pins pages.
    #[cfg(CONFIG_IOMMUFD_TEST)]
    pub(crate) fn pins(&self) -> bool {
        self.pins
    }

    /// The IOAS pins and copies go to: `ENOENT` when detached.
    fn ioas(&self) -> Result<Arc<Object<Ioas>>> {
        let st = self.state.lock();
        Ok(st.ioas.as_ref().ok_or(ENOENT)?.obj().clone())
    }

    /// Pins the memory mapped at `[iova, iova + length)` and appends the
    /// pages to `out`.  `iova` must be page aligned.
    pub(crate) fn pin_pages(
        &self,
        iova: u64,
        length: u64,
        write: bool,
        out: &mut KVec<*mut bindings::page>,
    ) -> Result {
        if !self.pins {
            pr_warn!("access pin_pages without an unmap callback\n");
            return Err(EINVAL);
        }
        let last = last_of(iova, length)?;
        // The state lock is held across the pin so that a concurrent
        // detach waits for it, and then unpins it.  An IOVA off a page
        // boundary fails where it is mapped (EINVAL: the areas are page
        // aligned while a pinning access is attached), after ENOENT for a
        // detached access or an unmapped IOVA, as upstream.
        let st = self.state.lock();
        let ioas = st.ioas.as_ref().ok_or(ENOENT)?;
        ioas.iopt.access_pin(iova, last, write, out)
    }

    /// Gives back the pins of [`Access::pin_pages`] on exactly the same
    /// range.
    pub(crate) fn unpin_pages(&self, iova: u64, length: u64) {
        let Ok(last) = last_of(iova, length) else {
            pr_warn!("access unpin of an empty or wrapping range\n");
            return;
        };
        let st = self.state.lock();
        match &st.ioas_unpin {
            Some(ioas) => ioas.iopt.access_unpin(iova, last),
            None => pr_warn!("access unpin while detached\n"),
        }
    }

    /// Copies between `buf` and the memory mapped at `iova` (into the IOAS
    /// with [`RW_WRITE`]).
    pub(crate) fn rw(&self, iova: u64, buf: &mut [u8], flags: u32) -> Result {
        // The range is checked before the attachment, as upstream.
        last_of(iova, buf.len() as u64)?;
        let ioas = self.ioas()?;
        // The selftest forces the copy through pinned pages with
        // RW_SLOW_PATH; otherwise the calling process's own memory is copied
        // directly.
        let direct = flags & RW_SLOW_PATH == 0;
        ioas.iopt
            .access_rw(iova, buf, flags & RW_WRITE != 0, direct)
    }
}

impl UnmapListener for Object<Access> {
    fn pins(&self) -> bool {
        self.pins
    }

    fn unmapped(&self, iova: u64, length: u64) {
        self.owner.unmap(iova, length);
    }
}
