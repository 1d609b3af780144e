// SPDX-License-Identifier: GPL-2.0

//! Fault queues (`IOMMU_FAULT_QUEUE_ALLOC`): I/O page faults of devices
//! attached to HWPTs that take faults, handed to user space through a file.
//!
//! User space reads `struct iommu_hwpt_pgfault` records from the file, one
//! per page request, a whole group at a time, each carrying the group's
//! cookie; it answers a group by writing a `struct iommu_hwpt_page_response`
//! with that cookie.  A group nobody answers is answered "invalid" when its
//! device leaves the HWPT or the queue is destroyed, so no device waits
//! forever.

use core::mem::size_of;

use kernel::alloc::kvec::{InsertError, PushError};
use kernel::bindings;
use kernel::fs::file::{flags::O_CLOEXEC, File, FileDescriptorReservation};
use kernel::iommu::fault::{FaultGroup, FaultSink, PageRequest, PageResponse};
use kernel::new_poll_condvar;
use kernel::prelude::*;
use kernel::rbtree::{RBTree, RBTreeNodeReservation};
use kernel::str::CStr;
use kernel::sync::atomic::{Atomic, Relaxed};
use kernel::sync::poll::{PollCondVar, PollTable};
use kernel::sync::{Arc, Mutex, SetOnce, SpinLock};
use kernel::transmute::AsBytes;
use kernel::uaccess::{UserPtr, UserSlice};
use kernel::{new_mutex, new_spinlock};

use crate::ctx::{CtxHold, PendingObj};
use crate::ffi::{self, FileOps};
use crate::object::{Held, Kind, Object};
use crate::uapi::{self, Pod};
use crate::ucmd::Ucmd;

/// A group waiting in a queue, with what user space is told about it.
struct Pending {
    group: FaultGroup,
    requests: KVec<PageRequest>,
    /// The device's object ID.
    dev_id: u32,
    /// The attachment it arrived through (see [`Sink`]).
    tag: u64,
}

/// The groups read and not answered yet.
struct Responses {
    /// By cookie.
    map: RBTree<u32, Pending>,
    /// The next cookie to try; cookies are never 0.
    next_cookie: u32,
}

/// A fault queue object.
///
/// As upstream, the fault path only takes a spinlock to queue a group, so a
/// device's faults never wait for a reader copying to user memory; readers
/// and answers are serialised by a mutex, which also keeps the groups read.
#[pin_data]
pub(crate) struct Fault {
    /// Groups not read yet, oldest first.
    #[pin]
    deliver: SpinLock<KVec<Pending>>,
    #[pin]
    responses: Mutex<Responses>,
    /// Woken when a group arrives.
    #[pin]
    wait: PollCondVar,
}

/// Tags of attachments, unique for the module's lifetime.
static NEXT_TAG: Atomic<u64> = Atomic::new(1);

/// Where an attachment to a HWPT that takes faults sends them: the HWPT's
/// queue, marked with the device and the attachment, so that leaving the
/// HWPT answers exactly the groups that came through it.
pub(crate) struct Sink {
    fault: Arc<Object<Fault>>,
    dev_id: u32,
    tag: u64,
}

impl Sink {
    pub(crate) fn new(fault: &Arc<Object<Fault>>, dev_id: u32) -> Result<Arc<Sink>> {
        Ok(Arc::new(
            Sink {
                fault: fault.clone(),
                dev_id,
                tag: NEXT_TAG.fetch_add(1, Relaxed),
            },
            GFP_KERNEL_ACCOUNT,
        )?)
    }

    /// Answers "invalid" every group that came through this attachment and
    /// is still waiting: the device has left the HWPT.
    pub(crate) fn answer_left(&self) {
        self.fault.answer_tag(self.tag);
    }
}

impl FaultSink for Sink {
    fn deliver(&self, group: FaultGroup) {
        // A group that cannot be queued is dropped, which answers it.
        let Ok(requests) = group.requests() else {
            return;
        };
        let pending = Pending {
            group,
            requests,
            dev_id: self.dev_id,
            tag: self.tag,
        };
        let mut d = self.fault.deliver.lock();
        let res = match d.push_within_capacity(pending) {
            Ok(()) => Ok(()),
            Err(PushError(p)) => match d.reserve(1, GFP_ATOMIC) {
                Ok(()) => d.push_within_capacity(p).map_err(|PushError(p)| p),
                Err(_) => Err(p),
            },
        };
        drop(d);
        match res {
            Ok(()) => self.fault.wait.notify_all(),
            // Answered "invalid" as it drops, outside the spinlock (the
            // answer takes a mutex).
            Err(p) => drop(p),
        }
    }
}

/// `struct iommu_hwpt_pgfault`, as read from the file.
const RECORD_SIZE: usize = size_of::<uapi::iommu_hwpt_pgfault>();
/// `struct iommu_hwpt_page_response`, as written to the file.
const RESPONSE_SIZE: usize = size_of::<uapi::iommu_hwpt_page_response>();

impl Fault {
    /// Answers "invalid" every group of `tag`, read or not.  Allocates
    /// nothing, so that no group is left waiting for lack of memory.
    fn answer_tag(&self, tag: u64) {
        // Readers are excluded: no group of the tag is in flight.  Groups
        // are answered under this mutex, as `write` does, but never under
        // the spinlock.
        let mut r = self.responses.lock();
        loop {
            let p = {
                let mut d = self.deliver.lock();
                match d.iter().position(|p| p.tag == tag) {
                    Some(i) => d.remove(i).ok(),
                    None => None,
                }
            };
            match p {
                Some(p) => drop(p),
                None => break,
            }
        }
        loop {
            let cookie = r.map.iter().find(|(_, p)| p.tag == tag).map(|(&c, _)| c);
            match cookie.and_then(|c| r.map.remove(&c)) {
                Some(p) => drop(p),
                None => break,
            }
        }
    }

    /// Takes the oldest group if its records fit in `room` bytes: `None` if
    /// there is none, `EINVAL` if it does not fit.
    fn take_first(&self, room: usize) -> Result<Option<Pending>> {
        let mut d = self.deliver.lock();
        match d.first() {
            None => Ok(None),
            Some(p) if p.requests.len() * RECORD_SIZE > room => Err(EINVAL),
            Some(_) => Ok(d.remove(0).ok()),
        }
    }

    /// Puts back a group taken by [`Fault::take_first`], first in line.
    fn put_back(&self, p: Pending) {
        let mut d = self.deliver.lock();
        let p = match d.insert_within_capacity(0, p) {
            Ok(()) => return,
            Err(InsertError::OutOfCapacity(p) | InsertError::IndexOutOfBounds(p)) => p,
        };
        let p = match d.reserve(1, GFP_ATOMIC) {
            Ok(()) => match d.insert_within_capacity(0, p) {
                Ok(()) => return,
                Err(InsertError::OutOfCapacity(p) | InsertError::IndexOutOfBounds(p)) => p,
            },
            Err(_) => p,
        };
        drop(d);
        // No memory to keep it: answered "invalid" as it drops.
        drop(p);
    }

    /// Reads whole groups into `count` bytes at `buf`; `EINVAL` if the first
    /// group does not fit.  Returns the bytes read.
    fn read(&self, buf: usize, count: usize) -> Result<usize> {
        if count % RECORD_SIZE != 0 {
            return Err(ESPIPE);
        }
        let mut w = UserSlice::new(UserPtr::from_addr(buf), count).writer();
        let mut done = 0;
        let mut r = self.responses.lock();
        let res = loop {
            let p = match self.take_first(count - done) {
                Ok(Some(p)) => p,
                Ok(None) => break Ok(()),
                Err(e) => break if done == 0 { Err(e) } else { Ok(()) },
            };
            let node = match RBTreeNodeReservation::new(GFP_KERNEL) {
                Ok(n) => n,
                Err(e) => {
                    self.put_back(p);
                    break Err(e);
                }
            };
            let cookie = r.free_cookie();
            let mut rec = <uapi::iommu_hwpt_pgfault as Pod>::zeroed();
            rec.dev_id = p.dev_id;
            rec.cookie = cookie;
            let wrote = p.requests.iter().try_for_each(|q| {
                rec.flags = q.flags.into();
                rec.pasid = q.pasid;
                rec.grpid = q.grpid;
                rec.perm = q.perm.into();
                rec.addr = q.addr;
                w.write_slice(rec.as_bytes())
            });
            if let Err(e) = wrote {
                // The group stays first in line.
                self.put_back(p);
                break Err(e);
            }
            done += p.requests.len() * RECORD_SIZE;
            r.map.insert(node.into_node(cookie, p));
        };
        drop(r);
        match res {
            Err(e) if done == 0 => Err(e),
            _ => Ok(done),
        }
    }

    /// Takes the answers in `count` bytes at `buf`; returns the bytes used.
    fn write(&self, buf: usize, count: usize) -> Result<usize> {
        if count % RESPONSE_SIZE != 0 {
            return Err(ESPIPE);
        }
        let mut rd = UserSlice::new(UserPtr::from_addr(buf), count).reader();
        let mut done = 0;
        let mut r = self.responses.lock();
        let res = loop {
            if done == count {
                break Ok(());
            }
            let mut resp = <uapi::iommu_hwpt_page_response as Pod>::zeroed();
            if let Err(e) = rd.read_slice(resp.as_bytes_mut()) {
                break Err(e);
            }
            let code = match resp.code {
                uapi::IOMMUFD_PAGE_RESP_SUCCESS => PageResponse::Success,
                uapi::IOMMUFD_PAGE_RESP_INVALID => PageResponse::Invalid,
                _ => break Err(EINVAL),
            };
            let Some(p) = r.map.remove(&resp.cookie) else {
                break Err(EINVAL);
            };
            p.group.respond(code);
            done += RESPONSE_SIZE;
        };
        drop(r);
        match res {
            Err(e) if done == 0 => Err(e),
            _ => Ok(done),
        }
    }

    /// Whether a group waits to be read.
    fn readable(&self) -> bool {
        !self.deliver.lock().is_empty()
    }
}

impl Responses {
    /// A cookie no unanswered group has.
    fn free_cookie(&mut self) -> u32 {
        loop {
            let c = self.next_cookie;
            self.next_cookie = c.wrapping_add(1).max(1);
            if self.map.get(&c).is_none() {
                return c;
            }
        }
    }
}

// The uAPI's answer codes are the core's.
const _: () = assert!(uapi::IOMMUFD_PAGE_RESP_SUCCESS == PageResponse::Success as u32);
const _: () = assert!(uapi::IOMMUFD_PAGE_RESP_INVALID == PageResponse::Invalid as u32);

/// An event queue read through a file of its own: a fault queue, or a
/// vEVENTQ (`viommu`).
pub(crate) trait QueueObj: Kind {
    /// `read()` into the user buffer `buf` of `count` bytes.
    fn read(&self, buf: usize, count: usize) -> Result<usize>;

    /// `write()` from the user buffer `buf` of `count` bytes.
    fn write(&self, _buf: usize, _count: usize) -> Result<usize> {
        Err(EINVAL)
    }

    /// `poll()`: registers what wakes the poller, returns what is ready.
    fn poll(&self, file: &File, table: &PollTable<'_>) -> u32;
}

/// What a queue's file owns: the queue, and once it is published a use of
/// it.
struct QueueFile<T: QueueObj> {
    queue: Arc<Object<T>>,
    /// The file's use of the queue, from its publication on.
    held: SetOnce<Held<T>>,
    // Dropped last: the context stays while its object is used.
    _ctx: CtxHold,
}

impl<T: QueueObj> FileOps for QueueFile<T> {
    fn read(&self, buf: usize, count: usize) -> Result<usize> {
        self.queue.read(buf, count)
    }

    fn write(&self, buf: usize, count: usize) -> Result<usize> {
        self.queue.write(buf, count)
    }

    fn poll(&self, file: &File, table: &PollTable<'_>) -> u32 {
        self.queue.poll(file, table)
    }
}

/// Publishes the queue `pending` of the command `ucmd` with a new file
/// named `name` to read it from, as a new descriptor: `set` puts the
/// queue's ID and the descriptor in the command, which goes back to the
/// caller first (if that fails the file goes, with the queue, which nobody
/// saw).  The file holds a use of the queue, which cannot be destroyed
/// until the file is closed.
pub(crate) fn publish_with_file<U: Pod, T: QueueObj>(
    ucmd: &mut Ucmd<'_, U>,
    pending: PendingObj<'_, T>,
    name: &'static CStr,
    set: impl FnOnce(&mut U, u32, u32),
) -> Result {
    let fd = FileDescriptorReservation::get_unused_fd_flags(O_CLOEXEC)?;
    let ops = KBox::new(
        QueueFile {
            queue: pending.obj().clone(),
            held: SetOnce::new(),
            _ctx: ucmd.handle.hold(),
        },
        GFP_KERNEL_ACCOUNT,
    )?;
    let file = ffi::anon_file(name, ops)?;
    set(&mut ucmd.cmd, pending.id(), fd.reserved_fd());
    ucmd.respond()?;
    let held = pending.finalize_held();
    match ffi::ops_of::<QueueFile<T>>(&file) {
        Some(f) => {
            f.held.populate(held);
        }
        None => {
            kernel::warn_on!(true);
            pr_err!("{name}: a queue's file without its queue\n");
        }
    }
    fd.fd_install(file);
    Ok(())
}

impl QueueObj for Fault {
    fn read(&self, buf: usize, count: usize) -> Result<usize> {
        Fault::read(self, buf, count)
    }

    fn write(&self, buf: usize, count: usize) -> Result<usize> {
        Fault::write(self, buf, count)
    }

    /// Always writable, readable when a group waits.
    fn poll(&self, file: &File, table: &PollTable<'_>) -> u32 {
        table.register_wait(file, &self.wait);
        let mut mask = bindings::POLLOUT;
        if self.readable() {
            mask |= bindings::POLLIN | bindings::POLLRDNORM;
        }
        mask
    }
}

/// `IOMMU_FAULT_QUEUE_ALLOC`: a fault queue and the file to read it from.
pub(crate) fn alloc_ioctl(ucmd: &mut Ucmd<'_, uapi::iommu_fault_alloc>) -> Result {
    if ucmd.cmd.flags != 0 {
        return Err(EOPNOTSUPP);
    }
    let fault = ucmd
        .ctx
        .objects
        .reserve()?
        .new_object(try_pin_init!(Fault {
        deliver <- new_spinlock!(KVec::new()),
        responses <- new_mutex!(Responses {
            map: RBTree::new(),
            next_cookie: 1,
        }),
        wait <- new_poll_condvar!("iommufd_fault"),
    }? Error))?;
    publish_with_file(ucmd, fault, c"[iommufd-pgfault]", |c, id, fd| {
        c.out_fault_id = id;
        c.out_fault_fd = fd;
    })
}
