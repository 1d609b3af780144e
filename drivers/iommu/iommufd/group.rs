// SPDX-License-Identifier: GPL-2.0

//! The IOMMU groups of a context's bound devices.
//!
//! The IOMMU core attaches whole groups, not devices: every device of a
//! group translates through the same domain.  A context keeps one
//! [`IGroup`] per group that has devices bound to it.  The group's RID
//! attachment belongs to the group: the first of its devices to attach
//! makes it, the others join it (to the same domain only: `EINVAL` for
//! another), a replace by any of them moves them all, and the last to leave
//! detaches it, as upstream.
//!
//! What the attachment translates through (a HWPT, for `device`) is the
//! caller's `P`, kept beside the attachment: this layer knows nothing of
//! HWPTs.

use core::any::Any;

use kernel::iommu::domain::Attachment;
use kernel::new_mutex;
use kernel::prelude::*;
use kernel::sync::aref::ARef;
use kernel::sync::{Arc, Mutex, MutexGuard};

/// A device attached through its group's RID attachment: its key and its
/// handle (the device, but for the tests).
pub(crate) struct Member<D = ARef<kernel::device::Device>> {
    /// Identifies the device among the members (its address: it is pinned).
    pub(crate) key: usize,
    pub(crate) dev: D,
}

/// The devices attached through a group's RID attachment.
pub(crate) struct Members<D = ARef<kernel::device::Device>>(KVec<Member<D>>);

impl<D> Members<D> {
    /// The members, `first` alone.
    pub(crate) fn new(first: Member<D>) -> Result<Self> {
        let mut list = KVec::with_capacity(1, GFP_KERNEL_ACCOUNT)?;
        list.push(first, GFP_KERNEL_ACCOUNT)?;
        Ok(Self(list))
    }

    pub(crate) fn iter(&self) -> core::slice::Iter<'_, Member<D>> {
        self.0.iter()
    }

    /// Whether the device `key` is a member.
    pub(crate) fn has(&self, key: usize) -> bool {
        self.0.iter().any(|m| m.key == key)
    }

    /// One more member; `EBUSY` if it is one already.
    fn join(&mut self, m: Member<D>) -> Result {
        if self.has(m.key) {
            return Err(EBUSY);
        }
        self.0.push(m, GFP_KERNEL_ACCOUNT)?;
        Ok(())
    }

    /// The device `key` leaves; whether it was there.
    fn leave(&mut self, key: usize) -> bool {
        match self.0.iter().position(|m| m.key == key) {
            Some(i) => {
                drop(self.0.remove(i));
                true
            }
            None => false,
        }
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A group's RID attachment, what it translates through and its devices.
pub(crate) struct Shared<P> {
    /// Made by the first device, with that device's DMA ownership and
    /// fault sink; moved by a replace.  None for a device without an IOMMU
    /// (nothing to attach: the group is the device's alone).
    pub(crate) attachment: Option<Attachment>,
    /// The caller's: what `attachment` translates through.
    pub(crate) pt: P,
    members: Members,
}

impl<P> Shared<P> {
    /// A new attachment and its first members.
    pub(crate) fn new(attachment: Option<Attachment>, pt: P, members: Members) -> Self {
        Self {
            attachment,
            pt,
            members,
        }
    }

    pub(crate) fn members(&self) -> &Members {
        &self.members
    }

    /// The device of `m` joins the attachment; `EBUSY` if it is in.
    pub(crate) fn join(&mut self, m: Member) -> Result {
        self.members.join(m)
    }
}

/// What is left when a device leaves a group's RID attachment.
pub(crate) enum Left<P> {
    /// Other devices still use the attachment.
    Others,
    /// It was the last: the group is detached; here is what the
    /// attachment translated through.
    Last(P),
    /// It was not attached through it.
    NotAttached,
}

/// What the devices of a group have attached.
pub(crate) struct GroupState<P> {
    /// The RID attachment, if a device attached it.
    pub(crate) rid: Option<Shared<P>>,
    /// How many PASIDs of its devices are attached: the core keeps PASIDs
    /// per group, and so does what may go beside them.
    pub(crate) pasids: usize,
}

/// One IOMMU group with devices bound to a context.
#[pin_data]
pub(crate) struct IGroup<P> {
    /// The group (`kernel::iommu::domain::Group::key`).
    key: usize,
    /// Every attach, replace and detach of the group's devices runs under
    /// this lock.
    #[pin]
    state: Mutex<GroupState<P>>,
}

impl<P> IGroup<P> {
    /// A group with nothing attached.
    fn new(key: usize) -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(IGroup {
                key,
                state <- new_mutex!(GroupState {
                    rid: None,
                    pasids: 0,
                }),
            }),
            GFP_KERNEL_ACCOUNT,
        )
    }

    /// What the group's devices have attached, locked.
    pub(crate) fn lock(&self) -> MutexGuard<'_, GroupState<P>> {
        self.state.lock()
    }
}

/// The device `key` leaves the RID attachment `rid` (of a locked
/// [`GroupState`]); the last one detaches the group (the attachment is dropped here,
/// under the lock).
pub(crate) fn leave<P>(rid: &mut Option<Shared<P>>, key: usize) -> Left<P> {
    let Some(s) = rid else {
        return Left::NotAttached;
    };
    if !s.members.leave(key) {
        return Left::NotAttached;
    }
    if !s.members.is_empty() {
        return Left::Others;
    }
    match rid.take() {
        Some(Shared { attachment, pt, .. }) => {
            drop(attachment);
            Left::Last(pt)
        }
        None => Left::NotAttached,
    }
}

/// An [`IGroup`] of some `P`, as the context's list keeps it.
type Stored = KBox<dyn Any + Send + Sync>;

/// The groups of a context's bound devices, each with how many of them.
pub(crate) struct Groups {
    list: KVec<(usize, Stored, usize)>,
}

impl Groups {
    pub(crate) fn new() -> Self {
        Self { list: KVec::new() }
    }

    /// A group of one device that has no IOMMU group (no IOMMU): not
    /// listed, as no other device can be in it.
    pub(crate) fn solo<P: Send + 'static>() -> Result<Arc<IGroup<P>>> {
        IGroup::new(0)
    }

    /// The group `key`, with one more bound device; made if new.
    pub(crate) fn get<P: Send + 'static>(&mut self, key: usize) -> Result<Arc<IGroup<P>>> {
        if let Some((_, g, n)) = self.list.iter_mut().find(|(k, _, _)| *k == key) {
            // Every group of a context has the same `P` (the device layer's).
            let g = g.downcast_ref::<Arc<IGroup<P>>>().ok_or(EINVAL)?.clone();
            *n += 1;
            return Ok(g);
        }
        let g = IGroup::new(key)?;
        let stored: Stored = KBox::new(g.clone(), GFP_KERNEL_ACCOUNT)?;
        self.list.push((key, stored, 1), GFP_KERNEL_ACCOUNT)?;
        Ok(g)
    }

    /// One bound device of `g` fewer; forgotten with the last.
    pub(crate) fn put<P: 'static>(&mut self, g: &IGroup<P>) {
        let Some(i) = self.list.iter().position(|(k, _, _)| *k == g.key) else {
            kernel::warn_on!(true);
            return;
        };
        self.list[i].2 -= 1;
        if self.list[i].2 == 0 {
            drop(self.list.remove(i));
        }
    }
}

#[kunit_tests(iommufd_rs_group)]
mod tests {
    use super::*;

    #[test]
    fn a_group_is_kept_while_devices_are_bound() -> Result {
        let mut groups = Groups::new();
        let a = groups.get::<u32>(1)?;
        let b = groups.get::<u32>(1)?;
        let c = groups.get::<u32>(2)?;
        // One entry per group, shared by its devices.
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(groups.list.len(), 2);
        groups.put(&a);
        // Still bound through `b`: the same group comes back.
        let d = groups.get::<u32>(1)?;
        assert!(Arc::ptr_eq(&b, &d));
        groups.put(&b);
        groups.put(&d);
        assert_eq!(groups.list.len(), 1);
        // Gone with its last device: a new one for the same key.
        let e = groups.get::<u32>(1)?;
        assert!(!Arc::ptr_eq(&a, &e));
        // A group is never seen as another kind's.
        assert!(groups.get::<u64>(1).is_err());
        groups.put(&e);
        groups.put(&c);
        assert!(groups.list.is_empty());
        Ok(())
    }

    #[test]
    fn members_join_once_and_leave() -> Result {
        let m = |key| Member { key, dev: () };
        let mut members = Members::new(m(1))?;
        members.join(m(2))?;
        // A device is a member once.
        assert_eq!(members.join(m(1)), Err(EBUSY));
        assert!(members.has(1) && members.has(2) && !members.has(3));
        assert!(!members.leave(3));
        assert!(members.leave(1));
        assert!(!members.has(1) && !members.is_empty());
        assert!(members.leave(2));
        assert!(members.is_empty());
        Ok(())
    }

    #[test]
    fn leaving_an_unattached_group() {
        let mut rid: Option<Shared<u32>> = None;
        assert!(matches!(leave(&mut rid, 1), Left::NotAttached));
    }
}
