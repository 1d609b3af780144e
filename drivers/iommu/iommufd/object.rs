// SPDX-License-Identifier: GPL-2.0

//! The objects a user holds by ID, and the per-context table of them.
//!
//! An object is created in two steps.  [`ObjectTable::reserve`] takes an ID
//! that nobody can look up yet; the command builds the object, reports the ID
//! to the caller, and only then [`Reservation::finalize`] publishes it.  A
//! command that fails on the way drops the reservation, which gives the ID
//! back: a half-built object is never visible.
//!
//! Every entry counts its users: one for the table itself, one for every
//! [`ObjRef`] (a command working on the object, a short-term use) and every
//! in-kernel user (a long-term use).  `IOMMU_DESTROY` succeeds only while
//! the table is the sole user and fails with `EBUSY` otherwise.  An
//! [`ObjRef`] drops its reference to the object before it gives back its
//! use, so when destroy finds one user the table holds the last reference
//! and the object is torn down before the ioctl returns.
//!
//! An in-kernel owner that is done with its object (a device binding, an
//! access) removes it with [`ObjectTable::remove_owned`]: lookups fail from
//! then on, and the removal waits for the commands still using the object,
//! so that the object is gone, not merely doomed, when its owner goes.

use core::ops::Deref;
use kernel::id_pool::IdPool;
use kernel::prelude::*;
use kernel::rbtree::{RBTree, RBTreeNode, RBTreeNodeReservation};
use kernel::sync::atomic::{Acquire, Atomic, Full, Relaxed, Release};
use kernel::sync::{Arc, CondVar, CondVarTimeoutResult, Mutex};
use kernel::time::{delay::fsleep, msecs_to_jiffies, Delta};
use kernel::{new_condvar, new_mutex};

use crate::access::Access;
use crate::ctx::Ctx;
use crate::device::{Device, HwptNested, HwptPaging};
use crate::fault::Fault;
use crate::ioas::Ioas;
use crate::uapi;
use crate::ucmd::Ucmd;

/// An object of kind `T` with its ID.
#[pin_data]
pub(crate) struct Object<T> {
    id: u32,
    #[pin]
    data: T,
}

impl<T> Object<T> {
    pub(crate) fn id(&self) -> u32 {
        self.id
    }
}

impl<T> Deref for Object<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.data
    }
}

/// A kind of object that can live in the table.
pub(crate) trait Kind: Sized + Send + Sync + 'static {
    /// Wraps a typed object for the table.
    fn wrap(obj: Arc<Object<Self>>) -> AnyObject;
    /// The typed object, if `any` is of this kind.
    fn peek(any: &AnyObject) -> Option<&Arc<Object<Self>>>;
}

macro_rules! object_kinds {
    ($($(#[$m:meta])* $variant:ident($t:ty)),* $(,)?) => {
        /// An object of any kind, as the table stores it.
        pub(crate) enum AnyObject {
            $($(#[$m])* $variant(Arc<Object<$t>>),)*
        }

        $($(#[$m])* impl Kind for $t {
            fn wrap(obj: Arc<Object<Self>>) -> AnyObject {
                AnyObject::$variant(obj)
            }

            fn peek(any: &AnyObject) -> Option<&Arc<Object<Self>>> {
                #[allow(irrefutable_let_patterns)]
                if let AnyObject::$variant(obj) = any {
                    Some(obj)
                } else {
                    None
                }
            }
        })*
    };
}

object_kinds! {
    Ioas(Ioas),
    Access(Access),
    Device(Device),
    HwptPaging(HwptPaging),
    HwptNested(HwptNested),
    Fault(Fault),
    #[cfg(CONFIG_IOMMUFD_TEST)]
    MockDev(crate::selftest::MockDev),
}

struct Entry {
    obj: AnyObject,
    uses: Arc<Uses>,
}

/// The uses of one entry.  Atomics of their own, so that a use is given
/// back without the table lock; uses are only taken under the lock.
struct Uses {
    /// The table's own use plus every outstanding use, short or long.
    all: Atomic<u32>,
    /// The outstanding [`ObjRef`]s, which [`ObjectTable::remove_owned`]
    /// waits for.
    short: Atomic<u32>,
    /// Set, under the table lock, once the owner removes the object: lookups
    /// fail, and the last [`ObjRef`] to go wakes the owner.
    dying: Atomic<bool>,
}

impl Uses {
    fn new() -> Result<Arc<Self>> {
        Ok(Arc::new(
            Uses {
                all: Atomic::new(0),
                short: Atomic::new(0),
                dying: Atomic::new(false),
            },
            GFP_KERNEL_ACCOUNT,
        )?)
    }
}

/// How the pages an IOAS pins are charged against `RLIMIT_MEMLOCK`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum AccountMode {
    /// To the user (`user_struct::locked_vm`), as `/dev/iommu` does by default.
    User,
    /// To the process (`mm_struct::pinned_vm` and `locked_vm`), as VFIO type1 does.
    Mm,
}

/// Context state that must change together with the set of objects: it is
/// kept under the table's lock.
pub(crate) struct Shared {
    pub(crate) account_mode: AccountMode,
    /// The IOAS the VFIO compatibility ioctls operate on.
    pub(crate) compat_ioas: Option<u32>,
}

struct Inner {
    /// IDs in use, published or reserved.  ID 0 is never handed out.
    ids: IdPool,
    /// Published objects.
    map: RBTree<u32, Entry>,
    /// IDs reserved and not yet published or given back.
    reserved: u32,
    shared: Shared,
}

impl Inner {
    /// Unpublishes `id`: its ID is free again and nothing refers to it.
    fn remove(&mut self, id: u32) -> Option<RBTreeNode<u32, Entry>> {
        let node = self.map.remove_node(&id)?;
        self.ids.release_id(id as usize);
        if self.shared.compat_ioas == Some(id) {
            self.shared.compat_ioas = None;
        }
        Some(node)
    }

    /// Counts a new use of the published object `id` of kind `T`, a
    /// short-term one if `short`; returns the object and the entry's uses.
    /// An object its owner is removing is not found.
    fn get<T: Kind>(&mut self, id: u32, short: bool) -> Result<Counted<T>> {
        let entry = self.map.get_mut(&id).ok_or(ENOENT)?;
        if entry.uses.dying.load(Relaxed) {
            return Err(ENOENT);
        }
        let obj = T::peek(&entry.obj).ok_or(ENOENT)?.clone();
        entry.uses.all.fetch_add(1, Relaxed);
        if short {
            entry.uses.short.fetch_add(1, Relaxed);
        }
        Ok((obj, entry.uses.clone()))
    }
}

/// An object with the uses of its entry.
type Counted<T> = (Arc<Object<T>>, Arc<Uses>);

/// How long [`ObjectTable::remove_owned`] waits before saying that it
/// still waits.
const REMOVE_WARN_MS: u32 = 60_000;

/// The objects of one iommufd context.
#[pin_data]
pub(crate) struct ObjectTable {
    #[pin]
    inner: Mutex<Inner>,
    /// Woken, under the lock, when the last [`ObjRef`] of an object being
    /// removed by its owner goes.
    #[pin]
    unused: CondVar,
}

impl ObjectTable {
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            inner <- new_mutex!(Inner {
                ids: IdPool::new(),
                map: RBTree::new(),
                reserved: 0,
                shared: Shared {
                    account_mode: AccountMode::User,
                    compat_ioas: None,
                },
            }),
            unused <- new_condvar!("iommufd_object_unused"),
        })
    }

    /// Takes the lowest free ID for an object under construction.
    pub(crate) fn reserve(&self) -> Result<Reservation<'_>> {
        // Allocated up front so that publishing cannot fail.
        let node = RBTreeNodeReservation::new(GFP_KERNEL_ACCOUNT)?;
        let users = Uses::new()?;
        let mut inner = self.inner.lock();
        let id = loop {
            if let Some(unused) = inner.ids.find_unused_id(1) {
                break unused.acquire();
            }
            // All 2^31 - 1 IDs in use is what xa_limit_31b calls full.
            let grow = inner.ids.grow_request().ok_or(EBUSY)?;
            let resizer = grow.realloc(GFP_KERNEL_ACCOUNT)?;
            inner.ids.grow(resizer);
        };
        inner.reserved += 1;
        Ok(Reservation {
            table: self,
            // The pool hands out IDs below its maximum size, i32::MAX.
            id: id as u32,
            node: Some(node),
            users: Some(users),
        })
    }

    /// Looks up a published object of kind `T`: `ENOENT` if there is none.
    pub(crate) fn get<T: Kind>(&self, id: u32) -> Result<ObjRef<'_, T>> {
        self.get_by(|_| Ok(id))
    }

    /// Looks up a published object of kind `T` for an in-kernel user that
    /// keeps it beyond the current command: the use lasts until
    /// [`ObjectTable::put_long`].  The object cannot be destroyed meanwhile.
    pub(crate) fn get_long<T: Kind>(&self, id: u32) -> Result<Arc<Object<T>>> {
        Ok(self.inner.lock().get::<T>(id, false)?.0)
    }

    /// Gives back a use taken with [`ObjectTable::get_long`] (or kept from
    /// creation); the caller drops its reference to the object first.
    pub(crate) fn put_long(&self, id: u32) {
        self.put_use(id);
    }

    /// Gives back a long-term use of `obj` and destroys it if only the table
    /// uses it then (an automatic HWPT its last device leaves), in one step
    /// under the lock.
    pub(crate) fn put_and_try_destroy<T: Kind>(&self, obj: Arc<Object<T>>) {
        let id = obj.id();
        let mut inner = self.inner.lock();
        let Some(entry) = inner.map.get(&id) else {
            drop(inner);
            pr_err!("object {id}: use given back twice\n");
            return;
        };
        if !T::peek(&entry.obj).is_some_and(|o| Arc::ptr_eq(o, &obj)) {
            drop(inner);
            pr_err!("object {id}: use given back to another object\n");
            return;
        }
        put_counter(&entry.uses.all, id);
        let unused = entry.uses.all.load(Relaxed) == 1 && !entry.uses.dying.load(Relaxed);
        let node = if unused { inner.remove(id) } else { None };
        drop(inner);
        // Torn down outside the lock, as in `destroy`, with our reference.
        drop(node);
        drop(obj);
    }

    /// Whether an object (of any kind) is published as `id`, and not being
    /// removed.
    pub(crate) fn exists(&self, id: u32) -> bool {
        self.inner
            .lock()
            .map
            .get(&id)
            .is_some_and(|e| !e.uses.dying.load(Relaxed))
    }

    /// Every published object of kind `T`, each with a use for the caller
    /// (so that none can be destroyed meanwhile).
    pub(crate) fn all<T: Kind>(&self) -> Result<KVec<ObjRef<'_, T>>> {
        // Declared before the guard: on an error it goes after the guard,
        // so that no use is given back under the lock.
        let mut out = KVec::new();
        let mut inner = self.inner.lock();
        let ids = {
            let mut ids = KVec::new();
            for (id, entry) in inner.map.iter() {
                if T::peek(&entry.obj).is_some() {
                    ids.push(*id, GFP_KERNEL_ACCOUNT)?;
                }
            }
            ids
        };
        out.reserve(ids.len(), GFP_KERNEL_ACCOUNT)?;
        for id in ids {
            if let Ok((obj, uses)) = inner.get::<T>(id, true) {
                let r = ObjRef {
                    obj,
                    _use: Use {
                        uses,
                        id,
                        table: self,
                    },
                };
                // Room was reserved above.
                if let Err(e) = out.push_within_capacity(r) {
                    drop(inner);
                    drop(e);
                    return Err(ENOMEM);
                }
            }
        }
        drop(inner);
        Ok(out)
    }

    /// Looks up the object whose ID `f` picks from the shared state, or
    /// fails with `f`'s error.
    pub(crate) fn get_by<T: Kind>(
        &self,
        f: impl FnOnce(&Shared) -> Result<u32>,
    ) -> Result<ObjRef<'_, T>> {
        let mut inner = self.inner.lock();
        let id = f(&inner.shared)?;
        let (obj, uses) = inner.get::<T>(id, true)?;
        drop(inner);
        Ok(ObjRef {
            obj,
            _use: Use {
                uses,
                id,
                table: self,
            },
        })
    }

    /// Runs `f` on the shared state; `f` is also told whether the table has
    /// no object, published or reserved.
    pub(crate) fn with_shared<R>(&self, f: impl FnOnce(&mut Shared, bool) -> R) -> R {
        let mut inner = self.inner.lock();
        let empty = inner.map.is_empty() && inner.reserved == 0;
        f(&mut inner.shared, empty)
    }

    /// Removes and destroys the object `id` unless something uses it.
    pub(crate) fn destroy(&self, id: u32) -> Result {
        let mut inner = self.inner.lock();
        match inner.map.get(&id) {
            None => return Err(ENOENT),
            Some(entry) if entry.uses.all.load(Acquire) != 1 => return Err(EBUSY),
            Some(_) => {}
        }
        let node = inner.remove(id);
        drop(inner);
        // The object is torn down here, outside the lock: its destructor may
        // give back uses of other objects.
        drop(node);
        Ok(())
    }

    /// Gives back the caller's long-term use of `id` and removes the
    /// object, for its in-kernel owner that is done with it.  Lookups fail
    /// from now on; the commands still using the object are waited for, and
    /// the object is destroyed before this returns.  `EBUSY` if another
    /// long-term use remains (a refcounting bug): the object then stays,
    /// without the caller's use, until the context goes.
    pub(crate) fn remove_owned(&self, id: u32) -> Result {
        let mut inner = self.inner.lock();
        let uses = inner.map.get(&id).ok_or(ENOENT)?.uses.clone();
        // Fully ordered before `short` is read, as the last `ObjRef`'s
        // decrement of `short` is before its read of `dying` (see `Use`):
        // either it sees `dying` and wakes us, or we see it gone.
        if uses.dying.xchg(true, Full) {
            pr_err!("object {id}: removed twice by its owner\n");
            return Err(EBUSY);
        }
        let mut warned = false;
        while uses.short.load(Acquire) != 0 {
            let wait = msecs_to_jiffies(REMOVE_WARN_MS);
            match self.unused.wait_interruptible_timeout(&mut inner, wait) {
                CondVarTimeoutResult::Timeout if !warned => {
                    pr_warn!("object {id}: its owner still waits for commands using it\n");
                    warned = true;
                }
                CondVarTimeoutResult::Signal { .. } => {
                    // A pending signal ends each interruptible sleep at once:
                    // look again shortly, without the lock.
                    drop(inner);
                    fsleep(Delta::from_millis(1));
                    inner = self.inner.lock();
                }
                _ => {}
            }
        }
        // Nobody can destroy the entry meanwhile: the caller's use is in it.
        if uses.all.load(Acquire) != 2 {
            uses.dying.store(false, Relaxed);
            drop(inner);
            pr_err!("object {id}: still in use when its owner removes it\n");
            put_counter(&uses.all, id);
            return Err(EBUSY);
        }
        let node = inner.remove(id);
        drop(inner);
        // Torn down outside the lock, as in `destroy`.
        drop(node);
        Ok(())
    }

    /// Destroys every object, leaves first, for the release of the context.
    ///
    /// Objects that use others are destroyed before the objects they use, so
    /// repeated passes over the objects with no other user empty the table.
    pub(crate) fn destroy_all(&self) {
        loop {
            let mut destroyed = 0;
            let mut next = 0u32;
            while let Some(node) = self.remove_next_unused(&mut next) {
                // Torn down outside the lock, as in `destroy`.
                drop(node);
                destroyed += 1;
            }
            if self.inner.lock().map.is_empty() {
                return;
            }
            if destroyed == 0 {
                // A use that outlives every command is a refcounting bug.
                // The table's references go with the table; an object still
                // referenced elsewhere lives on until that reference goes.
                pr_err!("objects still in use at release: a refcounting bug\n");
                return;
            }
        }
    }

    /// Unpublishes the first object at or after `*from` that has no user but
    /// the table, and moves `*from` past it.
    fn remove_next_unused(&self, from: &mut u32) -> Option<RBTreeNode<u32, Entry>> {
        let mut inner = self.inner.lock();
        let mut cursor = inner.map.cursor_lower_bound_mut(from)?;
        while cursor.current().1.uses.all.load(Acquire) != 1 {
            cursor = cursor.move_next()?;
        }
        let id = *cursor.current().0;
        *from = id.saturating_add(1);
        inner.remove(id)
    }

    fn put_use(&self, id: u32) {
        let uses = self.inner.lock().map.get(&id).map(|e| e.uses.clone());
        match uses {
            Some(uses) => put_counter(&uses.all, id),
            None => pr_err!("object {id}: use given back twice\n"),
        }
    }

    #[cfg(CONFIG_KUNIT)]
    fn users(&self, id: u32) -> Option<u32> {
        self.inner
            .lock()
            .map
            .get(&id)
            .map(|e| e.uses.all.load(Relaxed))
    }
}

/// An ID taken for an object that is not published yet.
///
/// Dropping it without [`Reservation::finalize`] gives the ID back.
pub(crate) struct Reservation<'a> {
    table: &'a ObjectTable,
    id: u32,
    node: Option<RBTreeNodeReservation<u32, Entry>>,
    users: Option<Arc<Uses>>,
}

impl Reservation<'_> {
    pub(crate) fn id(&self) -> u32 {
        self.id
    }

    /// Allocates the object that will be published under this ID.
    pub(crate) fn new_object<T: Kind>(
        &self,
        data: impl PinInit<T, Error>,
    ) -> Result<Arc<Object<T>>> {
        Arc::pin_init(
            try_pin_init!(Object {
                id: self.id,
                data <- data,
            }? Error),
            GFP_KERNEL_ACCOUNT,
        )
    }

    /// Allocates the object that will be published under this ID, from a
    /// value that needs no pinned initialisation.
    pub(crate) fn new_value<T: Kind>(&self, data: T) -> Result<Arc<Object<T>>> {
        Ok(Arc::new(Object { id: self.id, data }, GFP_KERNEL_ACCOUNT)?)
    }

    /// Publishes `obj`: from now on other threads can find it by ID.
    pub(crate) fn finalize<T: Kind>(self, obj: Arc<Object<T>>) {
        self.publish(obj, 1);
    }

    /// Publishes `obj` with a use for its creator, which keeps it from
    /// `IOMMU_DESTROY` until given back with [`ObjectTable::put_long`].
    pub(crate) fn finalize_held<T: Kind>(self, obj: Arc<Object<T>>) {
        self.publish(obj, 2);
    }

    fn publish<T: Kind>(mut self, obj: Arc<Object<T>>, users: u32) {
        if obj.id != self.id {
            pr_err!("object {} published under ID {}\n", obj.id, self.id);
            return;
        }
        let (Some(node), Some(counter)) = (self.node.take(), self.users.take()) else {
            return;
        };
        counter.all.store(users, Relaxed);
        let node = node.into_node(
            self.id,
            Entry {
                obj: T::wrap(obj),
                uses: counter,
            },
        );
        let mut inner = self.table.inner.lock();
        inner.reserved -= 1;
        // The ID was free in `ids`, so the map has no entry for it.
        let _ = inner.map.insert(node);
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.node.is_some() {
            let mut inner = self.table.inner.lock();
            inner.reserved -= 1;
            inner.ids.release_id(self.id as usize);
        }
    }
}

/// Gives back one use counted by `users` (of object `id`, for the log).
fn put_counter(users: &Atomic<u32>, id: u32) {
    // The table's own use is never given back this way.
    let mut cur = users.load(Relaxed);
    loop {
        if cur <= 1 {
            pr_err!("object {id}: use given back twice\n");
            return;
        }
        match users.cmpxchg(cur, cur - 1, Release) {
            Ok(_) => return,
            Err(now) => cur = now,
        }
    }
}

/// A command's use of an object, given back when dropped (without the table
/// lock, unless the object's owner waits for it).
struct Use<'a> {
    uses: Arc<Uses>,
    id: u32,
    table: &'a ObjectTable,
}

impl Drop for Use<'_> {
    fn drop(&mut self) {
        // `all` first: once `short` is 0, `remove_owned` reads `all`.
        put_counter(&self.uses.all, self.id);
        // Fully ordered before `dying` is read (see `remove_owned`).
        if self.uses.short.fetch_sub(1, Full) == 1 && self.uses.dying.load(Relaxed) {
            // The owner looks at `short` and sleeps under the lock: holding
            // it, the wake-up cannot come between the two.
            let _guard = self.table.inner.lock();
            self.table.unused.notify_all();
        }
    }
}

/// A command's reference to an object it looked up.
pub(crate) struct ObjRef<'a, T: Kind> {
    // Field order matters: the object reference is dropped before the use is
    // given back (see the module documentation).
    obj: Arc<Object<T>>,
    _use: Use<'a>,
}

impl<T: Kind> Deref for ObjRef<'_, T> {
    type Target = Object<T>;

    fn deref(&self) -> &Object<T> {
        &self.obj
    }
}

/// A long-term use of an object (see [`ObjectTable::get_long`]), given
/// back when dropped: the object cannot be destroyed meanwhile.
pub(crate) struct Held<T: Kind> {
    ctx: Arc<Ctx>,
    /// Always `Some` but in `drop`.
    obj: Option<Arc<Object<T>>>,
}

impl<T: Kind> Held<T> {
    /// Takes a long-term use of object `id` of kind `T`.
    pub(crate) fn get(ctx: &Arc<Ctx>, id: u32) -> Result<Self> {
        let obj = ctx.objects.get_long::<T>(id)?;
        Ok(Self::adopt(ctx, obj))
    }

    /// Takes over a use the caller took with [`ObjectTable::get_long`].
    pub(crate) fn adopt(ctx: &Arc<Ctx>, obj: Arc<Object<T>>) -> Self {
        Self {
            ctx: ctx.clone(),
            obj: Some(obj),
        }
    }

    /// Gives up the guard, keeping the use: the caller gives it back.
    pub(crate) fn into_long(mut self) -> Arc<Object<T>> {
        let obj = self.obj.take();
        // `drop` finds no object and gives nothing back.
        obj.unwrap_or_else(|| unreachable!())
    }

    pub(crate) fn obj(&self) -> &Arc<Object<T>> {
        // `obj` is `None` only inside `drop`.
        self.obj.as_ref().unwrap_or_else(|| unreachable!())
    }
}

impl<T: Kind> Deref for Held<T> {
    type Target = Object<T>;

    fn deref(&self) -> &Object<T> {
        self.obj()
    }
}

impl<T: Kind> Drop for Held<T> {
    fn drop(&mut self) {
        if let Some(obj) = self.obj.take() {
            let id = obj.id();
            drop(obj);
            self.ctx.objects.put_long(id);
        }
    }
}

/// `IOMMU_DESTROY`
pub(crate) fn destroy_ioctl(ucmd: &mut Ucmd<'_, uapi::iommu_destroy>) -> Result {
    ucmd.ctx.objects.destroy(ucmd.cmd.id)
}

#[kunit_tests(iommufd_rs_object)]
mod tests {
    use super::*;

    fn table() -> Result<Pin<KBox<ObjectTable>>> {
        KBox::pin_init(ObjectTable::new(), GFP_KERNEL)
    }

    fn publish(t: &ObjectTable) -> Result<u32> {
        let r = t.reserve()?;
        let obj = r.new_object(Ioas::new())?;
        let id = r.id();
        r.finalize(obj);
        Ok(id)
    }

    #[test]
    fn ids_start_at_one_and_are_reused() -> Result {
        let t = table()?;
        assert_eq!(publish(&t)?, 1);
        assert_eq!(publish(&t)?, 2);
        assert_eq!(publish(&t)?, 3);
        t.destroy(2)?;
        assert_eq!(publish(&t)?, 2);
        t.destroy_all();
        assert!(t.get::<Ioas>(1).is_err());
        Ok(())
    }

    #[test]
    fn reserved_id_is_invisible_until_finalized() -> Result {
        let t = table()?;
        let r = t.reserve()?;
        let id = r.id();
        assert_eq!(t.get::<Ioas>(id).err(), Some(ENOENT));
        assert_eq!(t.destroy(id), Err(ENOENT));
        let obj = r.new_object(Ioas::new())?;
        r.finalize(obj);
        assert!(t.get::<Ioas>(id).is_ok());
        t.destroy(id)?;
        Ok(())
    }

    #[test]
    fn abort_gives_the_id_back() -> Result {
        let t = table()?;
        let r = t.reserve()?;
        let first = r.id();
        drop(r);
        assert_eq!(t.get::<Ioas>(first).err(), Some(ENOENT));
        assert_eq!(publish(&t)?, first);
        t.destroy_all();
        Ok(())
    }

    #[test]
    fn destroy_is_busy_while_in_use() -> Result {
        let t = table()?;
        let id = publish(&t)?;
        let a = t.get::<Ioas>(id)?;
        let b = t.get::<Ioas>(id)?;
        assert_eq!(t.users(id), Some(3));
        assert_eq!(t.destroy(id), Err(EBUSY));
        drop(a);
        assert_eq!(t.destroy(id), Err(EBUSY));
        drop(b);
        assert_eq!(t.users(id), Some(1));
        t.destroy(id)?;
        assert_eq!(t.destroy(id), Err(ENOENT));
        Ok(())
    }

    #[test]
    fn shared_state_sees_reservations() -> Result {
        let t = table()?;
        assert!(t.with_shared(|_, empty| empty));
        let r = t.reserve()?;
        assert!(!t.with_shared(|_, empty| empty));
        drop(r);
        assert!(t.with_shared(|_, empty| empty));
        let id = publish(&t)?;
        t.with_shared(|s, _| s.compat_ioas = Some(id));
        assert_eq!(t.get_by::<Ioas>(|s| s.compat_ioas.ok_or(ENODEV))?.id(), id);
        // Destroying the compat IOAS forgets it.
        t.destroy(id)?;
        assert_eq!(
            t.with_shared(|s, empty| (s.compat_ioas, empty)),
            (None, true)
        );
        Ok(())
    }

    #[test]
    fn owner_removal_gives_back_its_use() -> Result {
        let t = table()?;
        let r = t.reserve()?;
        let obj = r.new_object(Ioas::new())?;
        let id = r.id();
        r.finalize_held(obj);
        // The owner's use keeps IOMMU_DESTROY away.
        assert_eq!(t.destroy(id), Err(EBUSY));
        // Another long-term use left is a bug: the object stays, without
        // the owner's use.
        let other = t.get_long::<Ioas>(id)?;
        assert_eq!(t.remove_owned(id), Err(EBUSY));
        assert_eq!(t.users(id), Some(2));
        drop(other);
        t.put_long(id);
        t.destroy(id)?;
        // With no command using it, the owner removes it at once.
        let r = t.reserve()?;
        let obj = r.new_object(Ioas::new())?;
        let id = r.id();
        r.finalize_held(obj);
        t.remove_owned(id)?;
        assert_eq!(t.get::<Ioas>(id).err(), Some(ENOENT));
        assert_eq!(t.remove_owned(id), Err(ENOENT));
        Ok(())
    }

    #[test]
    fn put_and_try_destroy_checks_the_object() -> Result {
        let t = table()?;
        let r = t.reserve()?;
        let a = r.new_object(Ioas::new())?;
        let id = r.id();
        r.finalize_held(a.clone());
        // A second long-term use: the put keeps the object.
        let b = t.get_long::<Ioas>(id)?;
        t.put_and_try_destroy(b);
        assert_eq!(t.users(id), Some(2));
        // The last one destroys it.
        t.put_and_try_destroy(a.clone());
        assert_eq!(t.users(id), None);
        // Its ID now names another object, which a stale put leaves alone.
        assert_eq!(publish(&t)?, id);
        t.put_and_try_destroy(a);
        assert_eq!(t.users(id), Some(1));
        t.destroy(id)?;
        Ok(())
    }

    #[test]
    fn all_holds_each_object() -> Result {
        let t = table()?;
        let a = publish(&t)?;
        let b = publish(&t)?;
        let all = t.all::<Ioas>()?;
        assert_eq!(all.len(), 2);
        assert_eq!((t.users(a), t.users(b)), (Some(2), Some(2)));
        assert_eq!(t.destroy(a), Err(EBUSY));
        drop(all);
        t.destroy(a)?;
        t.destroy(b)?;
        Ok(())
    }

    #[test]
    fn destroy_all_empties_the_table() -> Result {
        let t = table()?;
        for _ in 0..100 {
            publish(&t)?;
        }
        t.destroy_all();
        assert_eq!(publish(&t)?, 1);
        t.destroy_all();
        Ok(())
    }
}
