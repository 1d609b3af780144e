// SPDX-License-Identifier: GPL-2.0

//! The IOMMU groups of a context's bound devices.
//!
//! The IOMMU core attaches whole groups, not devices: every device of a
//! group translates through the same domain.  A context keeps one
//! [`IGroup`] per group that has devices bound to it; the first of them to
//! attach its RID attaches the group, the others join that attachment (to
//! the same domain only: `EINVAL` for another), and the last to leave
//! detaches it, as upstream.

use kernel::iommu::domain::{Attachment, Domain};
use kernel::new_mutex;
use kernel::prelude::*;
use kernel::sync::{Arc, Mutex};

/// The group's RID attachment, shared by the devices attached through it.
pub(crate) struct Shared {
    /// The group's attachment (made by the first device, with that
    /// device's DMA ownership and fault sink).
    pub(crate) attachment: Attachment,
    /// How many of the group's devices are attached through it.
    users: usize,
}

/// One IOMMU group with devices bound to a context.
#[pin_data]
pub(crate) struct IGroup {
    /// The group (`kernel::iommu::domain::Group::key`).
    key: usize,
    /// Its RID attachment, if a device attached it.
    #[pin]
    rid: Mutex<Option<Shared>>,
}

impl IGroup {
    /// Joins the group's RID attachment to `domain` for one more device,
    /// or makes it with `attach` if there is none.  `EINVAL` if the group
    /// is attached to another domain.
    pub(crate) fn attach_rid(
        &self,
        domain: &Arc<Domain>,
        attach: impl FnOnce() -> Result<Attachment>,
    ) -> Result {
        let mut rid = self.rid.lock();
        match &mut *rid {
            Some(s) if Arc::ptr_eq(s.attachment.domain(), domain) => {
                s.users += 1;
                Ok(())
            }
            Some(_) => Err(EINVAL),
            None => {
                *rid = Some(Shared {
                    attachment: attach()?,
                    users: 1,
                });
                Ok(())
            }
        }
    }

    /// Runs `f` on the group's RID attachment if this device is its only
    /// user (a replace moves the device's group, so only a device attached
    /// alone may move); `EBUSY` if other devices of the group are attached
    /// through it, `EINVAL` if it is not attached.
    pub(crate) fn with_sole_rid<R>(
        &self,
        f: impl FnOnce(&mut Attachment) -> Result<R>,
    ) -> Result<R> {
        let mut rid = self.rid.lock();
        match &mut *rid {
            Some(s) if s.users == 1 => f(&mut s.attachment),
            Some(_) => Err(EBUSY),
            None => Err(EINVAL),
        }
    }

    /// One device leaves the group's RID attachment: the last one
    /// detaches the group (the attachment is dropped here, under the lock).
    pub(crate) fn detach_rid(&self) {
        let mut rid = self.rid.lock();
        let last = match &mut *rid {
            Some(s) => {
                s.users -= 1;
                s.users == 0
            }
            None => {
                kernel::warn_on!(true);
                false
            }
        };
        if last {
            *rid = None;
        }
    }
}

/// The groups of a context's bound devices, each with how many of them.
pub(crate) struct Groups {
    list: KVec<(Arc<IGroup>, usize)>,
}

impl Groups {
    pub(crate) fn new() -> Self {
        Self { list: KVec::new() }
    }

    /// The group `key`, with one more bound device; made if new.
    pub(crate) fn get(&mut self, key: usize) -> Result<Arc<IGroup>> {
        if let Some((g, n)) = self.list.iter_mut().find(|(g, _)| g.key == key) {
            *n += 1;
            return Ok(g.clone());
        }
        let g = Arc::pin_init(
            pin_init!(IGroup {
                key,
                rid <- new_mutex!(None),
            }),
            GFP_KERNEL_ACCOUNT,
        )?;
        self.list.push((g.clone(), 1), GFP_KERNEL_ACCOUNT)?;
        Ok(g)
    }

    /// One bound device of `g` fewer; forgotten with the last.
    pub(crate) fn put(&mut self, g: &Arc<IGroup>) {
        let Some(i) = self.list.iter().position(|(h, _)| Arc::ptr_eq(h, g)) else {
            kernel::warn_on!(true);
            return;
        };
        self.list[i].1 -= 1;
        if self.list[i].1 == 0 {
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
        let a = groups.get(1)?;
        let b = groups.get(1)?;
        let c = groups.get(2)?;
        // One entry per group, shared by its devices.
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(groups.list.len(), 2);
        groups.put(&a);
        // Still bound through `b`: the same group comes back.
        let d = groups.get(1)?;
        assert!(Arc::ptr_eq(&b, &d));
        groups.put(&b);
        groups.put(&d);
        assert_eq!(groups.list.len(), 1);
        // Gone with its last device: a new one for the same key.
        let e = groups.get(1)?;
        assert!(!Arc::ptr_eq(&a, &e));
        groups.put(&e);
        groups.put(&c);
        assert!(groups.list.is_empty());
        Ok(())
    }

    #[test]
    fn an_unattached_group_refuses_replace() -> Result {
        let mut groups = Groups::new();
        let g = groups.get(7)?;
        assert_eq!(g.with_sole_rid(|_| Ok(())), Err(EINVAL));
        groups.put(&g);
        Ok(())
    }
}
