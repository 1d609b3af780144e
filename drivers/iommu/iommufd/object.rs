// SPDX-License-Identifier: GPL-2.0

//! The objects a user holds by ID, and the per-context table of them.
//!
//! The table is generic: it stores any `Send + Sync` type as an object and
//! names none of them.  A lookup asks for an ID *and* a type, and an object
//! of another type under that ID is not found (`ENOENT`), as upstream's
//! typed lookups fail.  Besides the objects the table keeps a value of
//! context state `S` that must change together with the set of objects
//! (see [`TableState`]).
//!
//! An object is created in two steps.  [`ObjectTable::reserve`] takes an ID
//! that nobody can look up yet; the command builds the object
//! ([`Reservation::new_object`]), reports the ID to the caller, and only then
//! [`Pending::finalize`] publishes it.  A command that fails on the way drops
//! the pending object, which gives the ID back: a half-built object is never
//! visible.
//!
//! Every entry counts its users: one for the table itself, one for every
//! [`ObjRef`] (a command working on the object, a short-term use) and every
//! [`Held`] (an in-kernel user keeping the object beyond a command, a
//! long-term use).  `IOMMU_DESTROY` succeeds only while the table is the
//! sole user and fails with `EBUSY` otherwise.  An [`ObjRef`] or a [`Held`]
//! drops its reference to the object before it gives back its use, so when
//! destroy finds one user the table holds the last reference and the object
//! is torn down before the ioctl returns.
//!
//! An in-kernel owner that is done with its object (a device binding, an
//! access) removes it with [`ObjectTable::remove_owned`]: lookups fail from
//! then on, and the removal waits for the commands still using the object,
//! so that the object is gone, not merely doomed, when its owner goes.

use core::any::Any;
use core::ops::Deref;
use kernel::id_pool::IdPool;
use kernel::prelude::*;
use kernel::rbtree::{RBTree, RBTreeNode, RBTreeNodeReservation};
use kernel::sync::atomic::{Acquire, Atomic, Full, Relaxed, Release};
use kernel::sync::{Arc, CondVar, CondVarTimeoutResult, Mutex};
use kernel::time::{delay::fsleep, msecs_to_jiffies, Delta};
use kernel::{new_condvar, new_mutex, warn_on};

/// What can be an object: any type that may be shared between threads.
pub(crate) trait Kind: Send + Sync + 'static {}

impl<T: Send + Sync + 'static> Kind for T {}

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

/// An object with a C face whose header counts users the table does not
/// see (drivers' dependencies, mappings of it): it goes only once
/// [`Retire::retire`] says none is left, and marks it going.
pub(crate) trait Retire: Kind {
    /// Lets the C face count users, as the object is published.
    fn publish(&self);

    /// Marks the object as going unless something outside the table
    /// counts it: `false` then, and nothing changed.
    fn retire(&self) -> bool;
}

/// [`Retire::retire`] of the object stored in an entry.
fn retire_stored<T: Retire>(obj: &Stored) -> bool {
    obj.downcast_ref::<Arc<Object<T>>>()
        .is_none_or(|o| o.data.retire())
}

/// Context state kept with the table, under its lock.
pub(crate) trait TableState: Send + Unpin {
    /// The object `id` has just been removed.
    fn forget(&mut self, id: u32);
}

/// A published object: the `Arc<Object<T>>` of some kind `T`, as `Any`.
type Stored = KBox<dyn Any + Send + Sync>;

struct Entry {
    obj: Stored,
    uses: Arc<Uses>,
    /// The object's type, for the log.
    kind: &'static str,
    /// For an object with a C face ([`Retire`]).
    retire: Option<fn(&Stored) -> bool>,
}

impl Entry {
    /// Whether the object can be destroyed now: the table is its only
    /// user, and if it has a C face, that face is marked going (from here
    /// on the object must be destroyed).
    fn claim(&self) -> bool {
        self.uses.all.load(Acquire) == 1 && self.retire.is_none_or(|r| r(&self.obj))
    }

    /// The object, if it is of kind `T`.
    fn peek<T: Kind>(&self) -> Option<&Arc<Object<T>>> {
        self.obj.downcast_ref::<Arc<Object<T>>>()
    }

    /// Whether the entry stores exactly `obj`.
    fn is<T: Kind>(&self, obj: &Object<T>) -> bool {
        self.peek::<T>()
            .is_some_and(|o| core::ptr::eq(Arc::as_ptr(o), obj))
    }
}

/// The uses of one entry.  Atomics of their own, so that a use is given
/// back without the table lock; uses are only taken under the lock, or from
/// another use of the same kind.
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

    /// Gives back one use (of object `id`, for the log).
    fn put(&self, id: u32) {
        // The table's own use is never given back this way.
        let mut cur = self.all.load(Relaxed);
        loop {
            if cur <= 1 {
                warn_on!(true);
                pr_err!("object {id}: use given back twice\n");
                return;
            }
            match self.all.cmpxchg(cur, cur - 1, Release) {
                Ok(_) => return,
                Err(now) => cur = now,
            }
        }
    }
}

struct Inner<S> {
    /// IDs in use, published or reserved.  ID 0 is never handed out.
    ids: IdPool,
    /// Published objects.
    map: RBTree<u32, Entry>,
    /// IDs reserved and not yet published or given back.
    reserved: u32,
    state: S,
}

impl<S: TableState> Inner<S> {
    /// Unpublishes `id`: its ID is free again and nothing refers to it.
    fn remove(&mut self, id: u32) -> Option<RBTreeNode<u32, Entry>> {
        let node = self.map.remove_node(&id)?;
        self.ids.release_id(id as usize);
        self.state.forget(id);
        Some(node)
    }

    /// Counts a new use of the published object `id` of kind `T`, a
    /// short-term one if `short`.  An object its owner is removing is not
    /// found.
    fn get<T: Kind>(&self, id: u32, short: bool) -> Result<(Arc<Object<T>>, Arc<Uses>)> {
        let entry = self.map.get(&id).ok_or(ENOENT)?;
        if entry.uses.dying.load(Relaxed) {
            return Err(ENOENT);
        }
        let obj = entry.peek::<T>().ok_or(ENOENT)?.clone();
        entry.uses.all.fetch_add(1, Relaxed);
        if short {
            entry.uses.short.fetch_add(1, Relaxed);
        }
        Ok((obj, entry.uses.clone()))
    }
}

/// How long [`ObjectTable::remove_owned`] waits before saying that it
/// still waits.
const REMOVE_WARN_MS: u32 = 60_000;

/// Where an owner removing its object waits for the commands using it.
#[pin_data]
struct Waiter {
    #[pin]
    lock: Mutex<()>,
    /// Woken, under `lock`, when the last [`ObjRef`] of an object being
    /// removed by its owner goes.
    #[pin]
    unused: CondVar,
}

/// The objects of one iommufd context, and the state `S` kept with them.
#[pin_data]
pub(crate) struct ObjectTable<S> {
    #[pin]
    inner: Mutex<Inner<S>>,
    #[pin]
    waiter: Waiter,
}

impl<S: TableState> ObjectTable<S> {
    pub(crate) fn new(state: S) -> impl PinInit<Self> {
        pin_init!(Self {
            inner <- new_mutex!(Inner {
                ids: IdPool::new(),
                map: RBTree::new(),
                reserved: 0,
                state,
            }),
            waiter <- pin_init!(Waiter {
                lock <- new_mutex!(()),
                unused <- new_condvar!("iommufd_object_unused"),
            }),
        })
    }

    /// Takes the lowest free ID for an object under construction.
    pub(crate) fn reserve(&self) -> Result<Reservation<'_, S>> {
        // Allocated up front so that publishing cannot fail.
        let node = RBTreeNodeReservation::new(GFP_KERNEL_ACCOUNT)?;
        let uses = Uses::new()?;
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
            uses: Some(uses),
        })
    }

    /// Looks up a published object of kind `T`: `ENOENT` if there is none.
    pub(crate) fn get<T: Kind>(&self, id: u32) -> Result<ObjRef<'_, T>> {
        self.get_by(|_| Ok(id))
    }

    /// Looks up the object whose ID `f` picks from the state, or fails with
    /// `f`'s error.
    pub(crate) fn get_by<T: Kind>(
        &self,
        f: impl FnOnce(&S) -> Result<u32>,
    ) -> Result<ObjRef<'_, T>> {
        let inner = self.inner.lock();
        let id = f(&inner.state)?;
        let (obj, uses) = inner.get::<T>(id, true)?;
        drop(inner);
        Ok(ObjRef {
            obj,
            _use: Use {
                uses,
                id,
                waiter: &self.waiter,
            },
        })
    }

    /// Looks up a published object of kind `T` for an in-kernel user that
    /// keeps it beyond the current command.  The object cannot be destroyed
    /// while the [`Held`] lives.
    pub(crate) fn get_long<T: Kind>(&self, id: u32) -> Result<Held<T>> {
        let (obj, uses) = self.inner.lock().get::<T>(id, false)?;
        Ok(Held {
            obj: Some(obj),
            uses,
        })
    }

    /// A long-term use of `obj`, found by reference: `ENOENT` unless `obj`
    /// itself is published (not merely an object under its ID).  Only the
    /// tests look objects up this way now.
    #[cfg(CONFIG_KUNIT)]
    pub(crate) fn hold<T: Kind>(&self, obj: &Object<T>) -> Result<Held<T>> {
        let inner = self.inner.lock();
        let id = obj.id();
        if !inner.map.get(&id).is_some_and(|e| e.is(obj)) {
            return Err(ENOENT);
        }
        let (obj, uses) = inner.get::<T>(id, false)?;
        Ok(Held {
            obj: Some(obj),
            uses,
        })
    }

    /// Gives back the long-term use `held` and destroys its object if only
    /// the table uses it then (an automatic HWPT its last device leaves), in
    /// one step under the lock.  Returns whether it was destroyed.
    pub(crate) fn put_and_try_destroy<T: Kind>(&self, mut held: Held<T>) -> bool {
        let (obj, uses) = held.take();
        let id = obj.id();
        let mut inner = self.inner.lock();
        if !inner.map.get(&id).is_some_and(|e| e.is(&*obj)) {
            drop(inner);
            warn_on!(true);
            pr_err!("object {id}: a use given back to an object not published\n");
            return false;
        }
        // Given back under the lock, before the count is read.
        uses.put(id);
        let unused = uses.all.load(Relaxed) == 1 && !uses.dying.load(Relaxed);
        let node = if unused { inner.remove(id) } else { None };
        drop(inner);
        // Torn down outside the lock, as in `destroy`, after our reference.
        drop(obj);
        drop(node);
        unused
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
        let inner = self.inner.lock();
        let ids = {
            let mut ids = KVec::new();
            for (id, entry) in inner.map.iter() {
                if entry.peek::<T>().is_some() {
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
                        waiter: &self.waiter,
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

    /// Runs `f` on the state; `f` is also told whether the table has no
    /// object, published or reserved.
    pub(crate) fn with_state<R>(&self, f: impl FnOnce(&mut S, bool) -> R) -> R {
        let mut inner = self.inner.lock();
        let empty = inner.map.is_empty() && inner.reserved == 0;
        f(&mut inner.state, empty)
    }

    /// Removes and destroys the object `id` unless something uses it.
    pub(crate) fn destroy(&self, id: u32) -> Result {
        let mut inner = self.inner.lock();
        match inner.map.get(&id) {
            None => return Err(ENOENT),
            Some(entry) if !entry.claim() => return Err(EBUSY),
            Some(_) => {}
        }
        let node = inner.remove(id);
        drop(inner);
        // The object is torn down here, outside the lock: its destructor may
        // give back uses of other objects.
        drop(node);
        Ok(())
    }

    /// Destroys the object `id` of kind `T`, if there is one and `is_it`
    /// says it is the one meant, and keeps its ID taken: from then on the ID names nothing (`ENOENT`) and is
    /// not handed out again, as upstream's tombstones.  For an object whose
    /// device is going (a vDEVICE at its device's unbind); it waits for the
    /// commands using the object.  Returns whether there was one.
    pub(crate) fn tombstone<T: Kind>(&self, id: u32, is_it: impl Fn(&T) -> bool) -> bool {
        loop {
            let mut inner = self.inner.lock();
            let Some(e) = inner.map.get(&id) else {
                return false;
            };
            if !e.peek::<T>().is_some_and(|o| is_it(o)) {
                return false;
            }
            if e.claim() {
                // Out of the map, its ID still taken in `ids`.
                let node = inner.map.remove_node(&id);
                inner.state.forget(id);
                drop(inner);
                // Torn down outside the lock, as in `destroy`.
                drop(node);
                return true;
            }
            drop(inner);
            // Only commands use such an object, for as long as they run.
            fsleep(Delta::from_millis(1));
        }
    }

    /// Gives back the owner's long-term use `held` and removes its object,
    /// for the in-kernel owner that is done with it.  Lookups fail from now
    /// on; the commands still using the object are waited for, and the
    /// object is destroyed before this returns.  `EBUSY` if another
    /// long-term use remains (a refcounting bug): the object then stays,
    /// without the owner's use, until the context goes.
    pub(crate) fn remove_owned<T: Kind>(&self, mut held: Held<T>) -> Result {
        let (obj, uses) = held.take();
        let id = obj.id();
        {
            let inner = self.inner.lock();
            if !inner.map.get(&id).is_some_and(|e| e.is(&*obj)) {
                drop(inner);
                warn_on!(true);
                pr_err!("object {id}: removed by its owner but not published\n");
                return Err(ENOENT);
            }
            // Fully ordered before `short` is read, as the last `ObjRef`'s
            // decrement of `short` is before its read of `dying` (see
            // `Use`): either it sees `dying` and wakes us, or we see it gone.
            if uses.dying.xchg(true, Full) {
                drop(inner);
                warn_on!(true);
                pr_err!("object {id}: removed twice by its owner\n");
                return Err(EBUSY);
            }
        }
        drop(obj);
        self.wait_unused(id, &uses);
        let mut inner = self.inner.lock();
        // Nobody can destroy the entry meanwhile: the owner's use is in it.
        if uses.all.load(Acquire) != 2 {
            uses.dying.store(false, Relaxed);
            drop(inner);
            warn_on!(true);
            pr_err!("object {id}: still in use when its owner removes it\n");
            uses.put(id);
            return Err(EBUSY);
        }
        let node = inner.remove(id);
        drop(inner);
        // Torn down outside the lock, as in `destroy`.
        drop(node);
        Ok(())
    }

    /// Waits until no [`ObjRef`] of the dying object `id` is left.
    fn wait_unused(&self, id: u32, uses: &Uses) {
        let w = &self.waiter;
        let mut guard = w.lock.lock();
        let mut warned = false;
        while uses.short.load(Acquire) != 0 {
            let wait = msecs_to_jiffies(REMOVE_WARN_MS);
            match w.unused.wait_interruptible_timeout(&mut guard, wait) {
                CondVarTimeoutResult::Timeout if !warned => {
                    pr_warn!("object {id}: its owner still waits for commands using it\n");
                    warned = true;
                }
                CondVarTimeoutResult::Signal { .. } => {
                    // A pending signal ends each interruptible sleep at once:
                    // look again shortly, without the lock.
                    drop(guard);
                    fsleep(Delta::from_millis(1));
                    guard = w.lock.lock();
                }
                _ => {}
            }
        }
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
                warn_on!(true);
                pr_err!("objects still in use at release: a refcounting bug\n");
                self.log_leftovers();
                return;
            }
        }
    }

    /// Logs every object left in the table, with its uses.
    fn log_leftovers(&self) {
        let inner = self.inner.lock();
        for (id, e) in inner.map.iter() {
            let u = &e.uses;
            pr_err!(
                "  object {id}: {} with {} uses ({} short){}\n",
                e.kind,
                u.all.load(Relaxed),
                u.short.load(Relaxed),
                if u.dying.load(Relaxed) { ", dying" } else { "" }
            );
        }
    }

    /// Unpublishes the first object at or after `*from` that has no user but
    /// the table, and moves `*from` past it.
    fn remove_next_unused(&self, from: &mut u32) -> Option<RBTreeNode<u32, Entry>> {
        let mut inner = self.inner.lock();
        let mut cursor = inner.map.cursor_lower_bound_mut(from)?;
        while !cursor.current().1.claim() {
            cursor = cursor.move_next()?;
        }
        let id = *cursor.current().0;
        *from = id.saturating_add(1);
        inner.remove(id)
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

/// An ID taken for an object that is not built yet.
///
/// Dropping it gives the ID back.
pub(crate) struct Reservation<'a, S: TableState> {
    table: &'a ObjectTable<S>,
    id: u32,
    node: Option<RBTreeNodeReservation<u32, Entry>>,
    uses: Option<Arc<Uses>>,
}

impl<'a, S: TableState> Reservation<'a, S> {
    pub(crate) fn id(&self) -> u32 {
        self.id
    }

    /// Allocates the object that will be published under this ID.
    pub(crate) fn new_object<T: Kind>(
        self,
        data: impl PinInit<T, Error>,
    ) -> Result<Pending<'a, S, T>> {
        let obj = Arc::pin_init(
            try_pin_init!(Object {
                id: self.id,
                data <- data,
            }? Error),
            GFP_KERNEL_ACCOUNT,
        )?;
        self.pending(obj)
    }

    /// Allocates the object that will be published under this ID, from a
    /// value that needs no pinned initialisation.
    pub(crate) fn new_value<T: Kind>(self, data: T) -> Result<Pending<'a, S, T>> {
        let obj = Arc::new(Object { id: self.id, data }, GFP_KERNEL_ACCOUNT)?;
        self.pending(obj)
    }

    fn pending<T: Kind>(self, obj: Arc<Object<T>>) -> Result<Pending<'a, S, T>> {
        // Boxed now, so that publishing cannot fail.
        let stored: Stored = KBox::new(obj.clone(), GFP_KERNEL_ACCOUNT)?;
        Ok(Pending {
            slot: self,
            obj,
            stored: Some(stored),
        })
    }
}

impl<S: TableState> Drop for Reservation<'_, S> {
    fn drop(&mut self) {
        if self.node.is_some() {
            let mut inner = self.table.inner.lock();
            inner.reserved -= 1;
            inner.ids.release_id(self.id as usize);
        }
    }
}

/// A built object not published yet: dropping it destroys the object and
/// gives its ID back.
pub(crate) struct Pending<'a, S: TableState, T: Kind> {
    // Dropped after `obj`, `stored`: the object goes before its ID.
    obj: Arc<Object<T>>,
    stored: Option<Stored>,
    slot: Reservation<'a, S>,
}

impl<S: TableState, T: Kind> Pending<'_, S, T> {
    /// The object, for what the caller still does before publishing it.
    pub(crate) fn obj(&self) -> &Arc<Object<T>> {
        &self.obj
    }

    /// Publishes the object: from now on other threads can find it by ID.
    pub(crate) fn finalize(self) -> Arc<Object<T>> {
        self.publish(1, None).0
    }

    /// Publishes the object with a long-term use for its creator, which
    /// keeps it from `IOMMU_DESTROY` until the [`Held`] goes.
    pub(crate) fn finalize_held(self) -> Held<T> {
        let (obj, uses) = self.publish(2, None);
        Held {
            obj: Some(obj),
            uses,
        }
    }

    fn publish(
        mut self,
        users: u32,
        retire: Option<fn(&Stored) -> bool>,
    ) -> (Arc<Object<T>>, Arc<Uses>) {
        let obj = self.obj.clone();
        let slot = &mut self.slot;
        let (Some(node), Some(uses), Some(stored)) =
            (slot.node.take(), slot.uses.take(), self.stored.take())
        else {
            // Each is taken once, here: `self` is consumed.
            unreachable!()
        };
        uses.all.store(users, Relaxed);
        let node = node.into_node(
            slot.id,
            Entry {
                obj: stored,
                uses: uses.clone(),
                kind: core::any::type_name::<T>(),
                retire,
            },
        );
        let mut inner = slot.table.inner.lock();
        inner.reserved -= 1;
        // The ID was free in `ids`, so the map has no entry for it.
        let _ = inner.map.insert(node);
        drop(inner);
        (obj, uses)
    }
}

impl<S: TableState, T: Retire> Pending<'_, S, T> {
    /// Publishes an object with a C face: [`Pending::finalize`], except
    /// that destroying it waits for [`Retire::retire`] too.
    pub(crate) fn finalize_retiring(self) -> Arc<Object<T>> {
        self.obj.data.publish();
        self.publish(1, Some(retire_stored::<T>)).0
    }
}

impl<S: TableState, T: Kind> Deref for Pending<'_, S, T> {
    type Target = Object<T>;

    fn deref(&self) -> &Object<T> {
        &self.obj
    }
}

/// A command's use of an object, given back when dropped (without the table
/// lock).
struct Use<'a> {
    uses: Arc<Uses>,
    id: u32,
    waiter: &'a Waiter,
}

impl Drop for Use<'_> {
    fn drop(&mut self) {
        // `all` first: once `short` is 0, `remove_owned` reads `all`.
        self.uses.put(self.id);
        // Fully ordered before `dying` is read (see `remove_owned`).
        if self.uses.short.fetch_sub(1, Full) == 1 && self.uses.dying.load(Relaxed) {
            // The owner looks at `short` and sleeps under the waiter's lock:
            // holding it, the wake-up cannot come between the two.
            let _guard = self.waiter.lock.lock();
            self.waiter.unused.notify_all();
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

impl<T: Kind> ObjRef<'_, T> {
    /// A long-term use of the object, beside this short one.
    pub(crate) fn hold(&self) -> Held<T> {
        // The short use keeps the object published: no lock needed.
        self._use.uses.all.fetch_add(1, Relaxed);
        Held {
            obj: Some(self.obj.clone()),
            uses: self._use.uses.clone(),
        }
    }
}

impl<T: Kind> Deref for ObjRef<'_, T> {
    type Target = Object<T>;

    fn deref(&self) -> &Object<T> {
        &self.obj
    }
}

/// A long-term use of an object, given back when dropped: the object
/// cannot be destroyed meanwhile.  Cloning takes another use.
pub(crate) struct Held<T: Kind> {
    /// Always `Some` but after `take`.
    obj: Option<Arc<Object<T>>>,
    uses: Arc<Uses>,
}

impl<T: Kind> Held<T> {
    pub(crate) fn obj(&self) -> &Arc<Object<T>> {
        // `obj` is `None` only after `take`, which consumes the value.
        self.obj.as_ref().unwrap_or_else(|| unreachable!())
    }

    /// Whether `self` and `other` hold the same object.
    pub(crate) fn same(&self, other: &Arc<Object<T>>) -> bool {
        Arc::ptr_eq(self.obj(), other)
    }

    /// The object and the use, which the caller now gives back itself.
    fn take(&mut self) -> (Arc<Object<T>>, Arc<Uses>) {
        let obj = self.obj.take().unwrap_or_else(|| unreachable!());
        (obj, self.uses.clone())
    }
}

impl<T: Kind> Clone for Held<T> {
    fn clone(&self) -> Self {
        // Our use keeps the object published: no lock needed.
        self.uses.all.fetch_add(1, Relaxed);
        Held {
            obj: self.obj.clone(),
            uses: self.uses.clone(),
        }
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
            self.uses.put(id);
        }
    }
}

#[kunit_tests(iommufd_rs_object)]
mod tests {
    use super::*;

    /// A state that remembers one ID, as the context's compat IOAS.
    struct St(Option<u32>);

    impl TableState for St {
        fn forget(&mut self, id: u32) {
            if self.0 == Some(id) {
                self.0 = None;
            }
        }
    }

    /// A kind for the tests, and another.
    struct Thing;
    struct Other;

    fn table() -> Result<Pin<KBox<ObjectTable<St>>>> {
        KBox::pin_init(ObjectTable::new(St(None)), GFP_KERNEL)
    }

    fn publish(t: &ObjectTable<St>) -> Result<u32> {
        let obj = t.reserve()?.new_value(Thing)?;
        Ok(obj.finalize().id())
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
        assert!(t.get::<Thing>(1).is_err());
        Ok(())
    }

    #[test]
    fn lookups_are_typed() -> Result {
        let t = table()?;
        let id = publish(&t)?;
        assert!(t.get::<Thing>(id).is_ok());
        assert_eq!(t.get::<Other>(id).err(), Some(ENOENT));
        assert_eq!(t.get_long::<Other>(id).err(), Some(ENOENT));
        assert!(t.exists(id));
        assert_eq!(t.all::<Other>()?.len(), 0);
        t.destroy(id)?;
        Ok(())
    }

    #[test]
    fn reserved_id_is_invisible_until_finalized() -> Result {
        let t = table()?;
        let r = t.reserve()?;
        let id = r.id();
        assert_eq!(t.get::<Thing>(id).err(), Some(ENOENT));
        assert_eq!(t.destroy(id), Err(ENOENT));
        let obj = r.new_value(Thing)?;
        assert_eq!(t.get::<Thing>(id).err(), Some(ENOENT));
        obj.finalize();
        assert!(t.get::<Thing>(id).is_ok());
        t.destroy(id)?;
        Ok(())
    }

    #[test]
    fn abort_gives_the_id_back() -> Result {
        let t = table()?;
        let r = t.reserve()?;
        let first = r.id();
        drop(r);
        assert_eq!(t.get::<Thing>(first).err(), Some(ENOENT));
        let pending = t.reserve()?.new_value(Thing)?;
        assert_eq!(pending.id(), first);
        drop(pending);
        assert_eq!(publish(&t)?, first);
        t.destroy_all();
        Ok(())
    }

    #[test]
    fn destroy_is_busy_while_in_use() -> Result {
        let t = table()?;
        let id = publish(&t)?;
        let a = t.get::<Thing>(id)?;
        let b = t.get::<Thing>(id)?;
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
    fn state_sees_reservations_and_removals() -> Result {
        let t = table()?;
        assert!(t.with_state(|_, empty| empty));
        let r = t.reserve()?;
        assert!(!t.with_state(|_, empty| empty));
        drop(r);
        assert!(t.with_state(|_, empty| empty));
        let id = publish(&t)?;
        t.with_state(|s, _| s.0 = Some(id));
        assert_eq!(t.get_by::<Thing>(|s| s.0.ok_or(ENODEV))?.id(), id);
        // Destroying the remembered object forgets it.
        t.destroy(id)?;
        assert_eq!(t.with_state(|s, empty| (s.0, empty)), (None, true));
        Ok(())
    }

    #[test]
    fn long_uses_block_destroy() -> Result {
        let t = table()?;
        let id = publish(&t)?;
        let held = t.get_long::<Thing>(id)?;
        let other = held.clone();
        let short = t.get::<Thing>(id)?;
        let third = short.hold();
        drop(short);
        assert_eq!(t.users(id), Some(4));
        assert_eq!(t.destroy(id), Err(EBUSY));
        drop((held, other, third));
        t.destroy(id)?;
        Ok(())
    }

    #[test]
    fn owner_removal_gives_back_its_use() -> Result {
        let t = table()?;
        let owner = t.reserve()?.new_value(Thing)?.finalize_held();
        let id = owner.id();
        // The owner's use keeps IOMMU_DESTROY away.
        assert_eq!(t.destroy(id), Err(EBUSY));
        assert_eq!(t.users(id), Some(2));
        // With no command using it, the owner removes it at once.
        t.remove_owned(owner)?;
        assert_eq!(t.get::<Thing>(id).err(), Some(ENOENT));
        assert_eq!(t.users(id), None);
        Ok(())
    }

    #[test]
    fn put_and_try_destroy_checks_the_object() -> Result {
        let t = table()?;
        let a = t.reserve()?.new_value(Thing)?.finalize_held();
        let id = a.id();
        let obj = a.obj().clone();
        // A second long-term use: the put keeps the object.
        let b = t.get_long::<Thing>(id)?;
        assert!(!t.put_and_try_destroy(b));
        assert_eq!(t.users(id), Some(2));
        // The last one destroys it.
        assert!(t.put_and_try_destroy(a));
        assert_eq!(t.users(id), None);
        // Its ID now names another object, which a lookup by the old
        // reference does not find.
        assert_eq!(publish(&t)?, id);
        assert_eq!(t.hold(&*obj).err(), Some(ENOENT));
        assert_eq!(t.users(id), Some(1));
        t.destroy(id)?;
        Ok(())
    }

    #[test]
    fn all_holds_each_object() -> Result {
        let t = table()?;
        let a = publish(&t)?;
        let b = publish(&t)?;
        let all = t.all::<Thing>()?;
        assert_eq!(all.len(), 2);
        assert_eq!((t.users(a), t.users(b)), (Some(2), Some(2)));
        assert_eq!(t.destroy(a), Err(EBUSY));
        drop(all);
        t.destroy(a)?;
        t.destroy(b)?;
        Ok(())
    }

    /// A kind with a C face: its own count of outside users, which
    /// [`Retire`] reads, and whether it was published.
    struct Faced {
        outside: Atomic<u32>,
        published: Atomic<bool>,
    }

    impl Retire for Faced {
        fn publish(&self) {
            self.published.store(true, Relaxed);
        }

        fn retire(&self) -> bool {
            self.outside.load(Relaxed) == 0
        }
    }

    #[test]
    fn outside_users_keep_a_faced_object() -> Result {
        let t = table()?;
        let faced = Faced {
            outside: Atomic::new(1),
            published: Atomic::new(false),
        };
        let obj = t.reserve()?.new_value(faced)?.finalize_retiring();
        let id = obj.id();
        assert!(obj.published.load(Relaxed));
        // Only the table uses it, but a user outside counts it.
        assert_eq!(t.destroy(id), Err(EBUSY));
        obj.outside.store(0, Relaxed);
        drop(obj);
        t.destroy(id)?;
        // The release takes it too, once no outside user counts it.
        let obj = t
            .reserve()?
            .new_value(Faced {
                outside: Atomic::new(1),
                published: Atomic::new(false),
            })?
            .finalize_retiring();
        let plain = publish(&t)?;
        obj.outside.store(0, Relaxed);
        drop(obj);
        t.destroy_all();
        assert_eq!(t.users(plain), None);
        Ok(())
    }

    #[test]
    fn tombstones_keep_their_id() -> Result {
        let t = table()?;
        let a = publish(&t)?;
        let b = publish(&t)?;
        // Not the object meant: nothing happens.
        assert!(!t.tombstone::<Thing>(a, |_| false));
        assert!(!t.tombstone::<Other>(a, |_| true));
        assert!(t.get::<Thing>(a).is_ok());
        assert!(t.tombstone::<Thing>(a, |_| true));
        // Gone, and its ID names nothing from then on, never reused.
        assert_eq!(t.get::<Thing>(a).err(), Some(ENOENT));
        assert_eq!(t.destroy(a), Err(ENOENT));
        assert!(!t.tombstone::<Thing>(a, |_| true));
        let c = publish(&t)?;
        assert!(c != a && c != b);
        t.destroy_all();
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
