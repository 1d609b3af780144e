// SPDX-License-Identifier: GPL-2.0

//! [`Pages`]: a range of user memory, and the pins its users hold on it.
//!
//! Areas map slices of a `Pages`; several areas (in one IOAS or, through
//! `IOMMU_IOAS_COPY`, in several) may share one.  Nothing is pinned when
//! memory is mapped: a page is pinned when its first user comes (a domain
//! that the area is mapped into, or an access that pins it) and unpinned
//! when its last user goes.  Each pinned page is stored once, with its user
//! count, whoever the users are; the pins live in [`PinnedPage`]s, so every
//! way out of this file gives each pin back exactly once.
//!
//! # Storage
//!
//! Pinned pages are kept in chunks of [`CHUNK`] consecutive page indexes, in
//! an rbtree keyed by chunk number: sparse pins of a huge mapping cost
//! nothing for the pages never pinned, and dense pins cost about 12 bytes a
//! page.
//!
//! # Accounting
//!
//! Each page pinned is charged once per `Pages` to the process that mapped
//! the memory: always to `mm->pinned_vm`, and against `RLIMIT_MEMLOCK` to the
//! user's `locked_vm` or, in the VFIO compatible mode, to the process's
//! `locked_vm` - unless the mapping process had `CAP_IPC_LOCK`.

use kernel::capability::{capable, Capability};
use kernel::fs::File;
use kernel::mm::pin::{memlock_limit_pages, pin_memfd_pages, PinFlags, PinnedPage, User};
use kernel::mm::{Mm, MmWithUser};
use kernel::page::PAGE_SIZE;
use kernel::prelude::*;
use kernel::rbtree::{RBTree, RBTreeNode};
use kernel::sync::aref::ARef;
use kernel::sync::{Arc, CondVar, Mutex, MutexGuard};
use kernel::task::Task;
use kernel::uaccess::{UserPtr, UserSlice};
use kernel::{new_condvar, new_mutex};

use crate::ffi;

#[cfg(CONFIG_DMA_SHARED_BUFFER)]
use kernel::dma_buf::{DmaBuf, Importer, PinnedAttachment};
use kernel::iommu::domain::{Domain, Prot};

pub(crate) const PAGE: u64 = PAGE_SIZE as u64;
/// Page indexes per storage chunk.
const CHUNK: u64 = 64;
/// The most pages pinned with one `pin_user_pages_remote()` call.
const PIN_BATCH: u64 = 512;

/// The most temporary memory, in bytes, one batch of pinning may use (a
/// page pointer per page): a knob for the selftest
/// (`IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT`), which shrinks it to exercise
/// many small batches, as upstream's.
#[cfg(CONFIG_IOMMUFD_TEST)]
pub(crate) static BATCH_MEMORY_LIMIT: kernel::sync::atomic::Atomic<u32> =
    kernel::sync::atomic::Atomic::new(65536);

/// The most pages pinned in one batch.
fn pin_batch() -> u64 {
    #[cfg(CONFIG_IOMMUFD_TEST)]
    {
        let limit = BATCH_MEMORY_LIMIT.load(kernel::sync::atomic::Relaxed);
        let pages = u64::from(limit) / core::mem::size_of::<usize>() as u64;
        pages.clamp(1, PIN_BATCH)
    }
    #[cfg(not(CONFIG_IOMMUFD_TEST))]
    PIN_BATCH
}

/// How the pages a context pins are charged against `RLIMIT_MEMLOCK`
/// (`IOMMU_OPTION_RLIMIT_MODE`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum AccountMode {
    /// To the user (`user_struct::locked_vm`), as `/dev/iommu` does by default.
    User,
    /// To the process (`mm_struct::pinned_vm` and `locked_vm`), as VFIO type1 does.
    Mm,
}

/// Where locked memory is charged (besides `pinned_vm`): the mode, or
/// nowhere for a process with `CAP_IPC_LOCK`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Charge {
    /// Not charged: the mapping process had `CAP_IPC_LOCK`.
    None,
    /// To the user's `locked_vm`.
    User,
    /// To the process's `locked_vm`.
    Mm,
}

/// The process the memory belongs to, and whom its pins are charged to.
struct Source {
    /// None for a kernel thread (KUnit): nothing can be pinned then.
    mm: Option<ARef<Mm>>,
    /// The thread group leader, whose `RLIMIT_MEMLOCK` applies.
    task: ARef<Task>,
    user: ARef<User>,
    charge: Charge,
}

impl Source {
    fn current(mode: AccountMode) -> Result<Self> {
        let charge = if capable(Capability::IPC_LOCK) {
            Charge::None
        } else if mode == AccountMode::Mm {
            Charge::Mm
        } else {
            Charge::User
        };
        Ok(Self::current_charged(charge))
    }

    /// The current process, charged the way `charge` says.
    fn current_charged(charge: Charge) -> Self {
        let current = kernel::current!();
        Self {
            mm: current.mm().map(|mm| ARef::from(&**mm)),
            task: ARef::from(current.group_leader()),
            user: User::current(),
            charge,
        }
    }

    /// The address space with a user reference: `EFAULT` once the process
    /// has exited (its memory is gone).
    fn live_mm(&self) -> Result<ARef<MmWithUser>> {
        self.mm
            .as_ref()
            .and_then(|mm| mm.mmget_not_zero())
            .ok_or(EFAULT)
    }

    /// Charges `n` newly pinned pages: `ENOMEM` over the limit.
    fn charge(&self, n: usize) -> Result {
        match self.charge {
            Charge::None => {}
            Charge::User => self
                .user
                .charge_locked_vm(n, memlock_limit_pages(&self.task))?,
            Charge::Mm => {
                let mm = self.live_mm()?;
                mm.account_locked_vm(n, true, &self.task)?;
            }
        }
        if let Some(mm) = &self.mm {
            mm.add_pinned_vm(n as i64);
        }
        Ok(())
    }

    /// Gives back the charge of `n` pages that are no longer pinned.
    fn uncharge(&self, n: usize) {
        match self.charge {
            Charge::None => {}
            Charge::User => self.user.uncharge_locked_vm(n),
            Charge::Mm => {
                // A process that is gone has no locked_vm left to correct.
                if let Ok(mm) = self.live_mm() {
                    let _ = mm.account_locked_vm(n, false, &self.task);
                }
            }
        }
        if let Some(mm) = &self.mm {
            mm.add_pinned_vm(-(n as i64));
        }
    }
}

/// The pins on [`CHUNK`] consecutive pages.
struct Chunk {
    page: [Option<PinnedPage>; CHUNK as usize],
    users: [u32; CHUNK as usize],
    /// Pages of the chunk that are pinned.
    live: u32,
}

struct State {
    source: Source,
    /// Chunk number -> chunk; a chunk exists while it holds a pin (or is
    /// prepared for pins about to be stored).
    chunks: RBTree<u64, Chunk>,
    /// Pages pinned, hence charged.
    npinned: u64,
    /// Set while `IOMMU_IOAS_CHANGE_PROCESS` moves the charge: nothing is
    /// pinned or unpinned meanwhile (see [`Pages::lock_settled`]).
    moving: bool,
}

impl State {
    fn users(&self, idx: u64) -> u32 {
        self.chunks
            .get(&(idx / CHUNK))
            .map_or(0, |c| c.users[(idx % CHUNK) as usize])
    }

    fn page(&self, idx: u64) -> Option<&PinnedPage> {
        self.chunks
            .get(&(idx / CHUNK))
            .and_then(|c| c.page[(idx % CHUNK) as usize].as_ref())
    }

    /// Makes sure chunks exist for the pages `[first, last]`, so that
    /// storing pins there cannot fail.
    fn prepare(&mut self, first: u64, last: u64) -> Result {
        for n in first / CHUNK..=last / CHUNK {
            if self.chunks.get(&n).is_none() {
                let chunk = Chunk {
                    page: [const { None }; CHUNK as usize],
                    users: [0; CHUNK as usize],
                    live: 0,
                };
                self.chunks
                    .insert(RBTreeNode::new(n, chunk, GFP_KERNEL_ACCOUNT)?);
            }
        }
        Ok(())
    }

    /// Frees the chunks of `[first, last]` that hold no pin.
    fn trim(&mut self, first: u64, last: u64) {
        for n in first / CHUNK..=last / CHUNK {
            if self.chunks.get(&n).is_some_and(|c| c.live == 0) {
                drop(self.chunks.remove(&n));
            }
        }
    }

    /// Stores the pin of page `idx`, with one user; its chunk is prepared.
    fn store(&mut self, idx: u64, page: PinnedPage) {
        let Some(c) = self.chunks.get_mut(&(idx / CHUNK)) else {
            // `prepare` ran first; dropping unpins, which is all we can do.
            kernel::warn_on!(true);
            pr_err!("pin stored in a chunk that was not prepared\n");
            return;
        };
        let i = (idx % CHUNK) as usize;
        c.page[i] = Some(page);
        c.users[i] = 1;
        c.live += 1;
    }

    /// Adds a user to the pinned page `idx`.
    fn get(&mut self, idx: u64) {
        if let Some(c) = self.chunks.get_mut(&(idx / CHUNK)) {
            c.users[(idx % CHUNK) as usize] += 1;
        }
    }

    /// Drops a user of page `idx`; returns its pin when that was the last.
    fn put(&mut self, idx: u64) -> Option<PinnedPage> {
        let c = self.chunks.get_mut(&(idx / CHUNK))?;
        let i = (idx % CHUNK) as usize;
        match c.users[i] {
            0 => {
                kernel::warn_on!(true);
                pr_err!("page {idx} unpinned more often than pinned\n");
                None
            }
            1 => {
                c.users[i] = 0;
                c.live -= 1;
                c.page[i].take()
            }
            _ => {
                c.users[i] -= 1;
                None
            }
        }
    }
}

/// Where the memory of a [`Pages`] comes from.
enum Backing {
    /// The address space of the process that mapped it, at `Pages::uptr`.
    User,
    /// A memfd, from byte `start` (page aligned) on.
    File { file: ARef<File>, start: u64 },
    /// A dma-buf, from byte `start` (page aligned) on: memory without
    /// `struct page`s, neither pinned nor charged, which its exporter may
    /// revoke.
    #[cfg(CONFIG_DMA_SHARED_BUFFER)]
    DmaBuf {
        attach: PinnedAttachment<DmaBufImporter>,
        start: u64,
    },
}

/// Where a dma-buf is and where it is mapped, kept by its importer.
#[cfg_attr(not(CONFIG_IOMMUFD_TEST), allow(dead_code))] // Until MAP_FILE knows VFIO's exporter.
struct DmaBufState {
    /// Physical address and length of the buffer; the length is 0 once the
    /// exporter revoked it (for good: a new mapping imports it again).
    phys: u64,
    len: u64,
    /// The domain mappings of it: `(domain, iova, length)`.
    mapped: KVec<(Arc<Domain>, u64, u64)>,
}

/// The importer of a dma-buf mapped in an IOAS.
#[cfg_attr(not(CONFIG_IOMMUFD_TEST), allow(dead_code))] // As `DmaBufState`.
pub(crate) struct DmaBufImporter {
    state: Pin<KBox<Mutex<DmaBufState>>>,
}

#[cfg(CONFIG_DMA_SHARED_BUFFER)]
impl Importer for DmaBufImporter {
    fn invalidate(&self) {
        // Revoked: no device may reach the memory from now on.
        let mut st = self.state.lock();
        st.len = 0;
        for (domain, iova, len) in st.mapped.drain_all() {
            domain.unmap(iova, len as usize);
        }
    }
}

/// A range of user memory that areas map.
#[pin_data]
pub(crate) struct Pages {
    /// The first byte of the first page: a user address, or for a file the
    /// offset (where automatic IOVA allocation takes its alignment from).
    pub(crate) uptr: u64,
    backing: Backing,
    /// How many pages the range spans.
    pub(crate) npages: u64,
    /// Whether the memory may be mapped for device writes (and is pinned
    /// for writing).
    pub(crate) writable: bool,
    #[pin]
    state: Mutex<State>,
    /// Woken when `State::moving` is cleared.
    #[pin]
    settled: CondVar,
}

impl Pages {
    /// The user memory `[uptr, uptr + length)` of the current process.
    pub(crate) fn new_user(
        uptr: u64,
        length: u64,
        writable: bool,
        mode: AccountMode,
    ) -> Result<Arc<Self>> {
        // Only user memory must end inside the address space: a file's
        // offsets are checked when it is mapped (`start + length - 1`).
        uptr.checked_add(length).ok_or(EOVERFLOW)?;
        Self::new(uptr, length, writable, mode, Backing::User)
    }

    /// `length` bytes of the memfd `file` from byte `start`.
    pub(crate) fn new_file(
        file: ARef<File>,
        start: u64,
        length: u64,
        writable: bool,
        mode: AccountMode,
    ) -> Result<Arc<Self>> {
        let base = start - start % PAGE;
        Self::new(
            start,
            length,
            writable,
            mode,
            Backing::File { file, start: base },
        )
    }

    fn new(
        uptr: u64,
        length: u64,
        writable: bool,
        mode: AccountMode,
        backing: Backing,
    ) -> Result<Arc<Self>> {
        // The IOMMU API takes a size_t length; keeps the page count below
        // from overflowing.
        if length == 0 || length > u64::MAX - PAGE {
            return Err(EINVAL);
        }
        Self::alloc(uptr, length, writable, Source::current(mode)?, backing)
    }

    /// A `Pages` for `length` bytes from `uptr` (an address or offset).
    fn alloc(
        uptr: u64,
        length: u64,
        writable: bool,
        source: Source,
        backing: Backing,
    ) -> Result<Arc<Self>> {
        let start_byte = uptr % PAGE;
        Arc::pin_init(
            pin_init!(Pages {
                uptr: uptr - start_byte,
                backing,
                npages: (start_byte + length).div_ceil(PAGE),
                writable,
                state <- new_mutex!(State {
                    source,
                    chunks: RBTree::new(),
                    npinned: 0,
                    moving: false,
                }),
                settled <- new_condvar!("iommufd_pages_settled"),
            }),
            GFP_KERNEL_ACCOUNT,
        )
    }

    fn flags(&self, write: bool) -> PinFlags {
        if write {
            PinFlags::WRITE
        } else {
            PinFlags::READ
        }
    }

    /// `length` bytes of the dma-buf `buf` from byte `start`, attached to
    /// `dev`.  `EINVAL` if the range is not inside the buffer; the error of
    /// `locate` (which says where the buffer is) otherwise.
    #[cfg(CONFIG_DMA_SHARED_BUFFER)]
    pub(crate) fn new_dmabuf(
        buf: DmaBuf,
        dev: &kernel::device::Device,
        start: u64,
        length: u64,
        writable: bool,
        locate: impl FnOnce(&DmaBuf) -> Result<(u64, u64)>,
    ) -> Result<Arc<Self>> {
        let last = crate::interval::last_of(start, length)?;
        // Upstream counts a batch's pages in a u32.
        if last >= buf.size() as u64 || length / PAGE >= u64::from(u32::MAX) {
            return Err(EINVAL);
        }
        let importer = DmaBufImporter {
            state: KBox::pin_init(
                new_mutex!(DmaBufState {
                    phys: 0,
                    len: 0,
                    mapped: KVec::new(),
                }),
                GFP_KERNEL_ACCOUNT,
            )?,
        };
        let (attach, (phys, len)) = PinnedAttachment::new(buf, dev, importer, locate)?;
        {
            let mut st = attach.importer().state.lock();
            st.phys = phys;
            st.len = len;
        }
        let base = start - start % PAGE;
        // Not pinned page by page, hence not charged.
        let source = Source::current_charged(Charge::None);
        let backing = Backing::DmaBuf {
            attach,
            start: base,
        };
        Self::alloc(start, length, writable, source, backing)
    }

    /// Whether the memory is a dma-buf's (which accesses cannot reach).
    pub(crate) fn is_dmabuf(&self) -> bool {
        #[cfg(CONFIG_DMA_SHARED_BUFFER)]
        if let Backing::DmaBuf { .. } = self.backing {
            return true;
        }
        false
    }

    /// Runs `f` while the memory cannot be revoked: under a dma-buf's
    /// state lock, which its revocation takes to unmap it from the domains;
    /// `EINVAL` if it was revoked already.
    #[cfg_attr(not(CONFIG_IOMMUFD_NOIOMMU), allow(dead_code))]
    pub(crate) fn with_unrevoked<R>(&self, f: impl FnOnce() -> R) -> Result<R> {
        #[cfg(CONFIG_DMA_SHARED_BUFFER)]
        if let Backing::DmaBuf { attach, .. } = &self.backing {
            let st = attach.importer().state.lock();
            if st.len == 0 {
                return Err(EINVAL);
            }
            return Ok(f());
        }
        Ok(f())
    }

    /// Maps bytes `[first_byte, last_byte]` of the memory at `iova` in
    /// `domain`; the caller holds a user on the pages (if they have
    /// `struct page`s).  Physically contiguous runs go in one call, unless
    /// `small` asks for one call per page.  On failure nothing of it stays
    /// mapped.
    pub(crate) fn map_range(
        &self,
        domain: &Arc<Domain>,
        iova: u64,
        first_byte: u64,
        last_byte: u64,
        prot: Prot,
        small: bool,
    ) -> Result {
        #[cfg(CONFIG_DMA_SHARED_BUFFER)]
        if let Backing::DmaBuf { attach, start } = &self.backing {
            let mut st = attach.importer().state.lock();
            if st.len == 0 {
                // Revoked: the range stays unmapped.
                return Ok(());
            }
            let len = last_byte - first_byte + 1;
            if start + last_byte >= st.len {
                return Err(EINVAL);
            }
            st.mapped.reserve(1, GFP_KERNEL_ACCOUNT)?;
            ffi::map_pinned(
                domain,
                iova,
                st.phys + start + first_byte,
                len as usize,
                prot,
            )?;
            st.mapped
                .push((domain.clone(), iova, len), GFP_KERNEL_ACCOUNT)?;
            return Ok(());
        }
        // (iova, paddr, length) of the run being built.
        let mut run: Option<(u64, u64, u64)> = None;
        // Bytes mapped from `iova` on, in order: what a failure unmaps.
        let mut mapped = 0u64;
        let res = self.for_each_phys(first_byte / PAGE, last_byte / PAGE, |idx, phys| {
            // The part of page `idx` that is mapped.
            let lo = (idx * PAGE).max(first_byte);
            let hi = (idx * PAGE + (PAGE - 1)).min(last_byte);
            let at = iova + (lo - first_byte);
            let paddr = phys + lo % PAGE;
            let len = hi - lo + 1;
            match &mut run {
                Some((ri, rp, rl)) if !small && *ri + *rl == at && *rp + *rl == paddr => *rl += len,
                _ => {
                    if let Some((ri, rp, rl)) = run.replace((at, paddr, len)) {
                        ffi::map_pinned(domain, ri, rp, rl as usize, prot)?;
                        mapped += rl;
                    }
                }
            }
            Ok(())
        });
        let res = res.and_then(|()| match run {
            Some((ri, rp, rl)) => ffi::map_pinned(domain, ri, rp, rl as usize, prot),
            None => Ok(()),
        });
        if res.is_err() && mapped != 0 {
            self.unmap_range(domain, iova, mapped);
        }
        res
    }

    /// Undoes [`Pages::map_range`] for the `len` bytes at `iova`.
    pub(crate) fn unmap_range(&self, domain: &Arc<Domain>, iova: u64, len: u64) {
        #[cfg(CONFIG_DMA_SHARED_BUFFER)]
        if let Backing::DmaBuf { attach, .. } = &self.backing {
            let mut st = attach.importer().state.lock();
            let mine = |m: &(Arc<Domain>, u64, u64)| Arc::ptr_eq(&m.0, domain) && m.1 == iova;
            if let Some(i) = st.mapped.iter().position(mine) {
                if let Ok((d, iova, len)) = st.mapped.remove(i) {
                    d.unmap(iova, len as usize);
                }
            }
            // Not found: never mapped, or revoked (and unmapped then).
            return;
        }
        let done = domain.unmap(iova, len as usize);
        if done as u64 != len {
            kernel::warn_on!(true);
            pr_warn!("IOVA {iova:#x}: domain unmapped {done:#x} of {len:#x} bytes\n");
        }
    }

    /// Pins `n` pages from page `idx` of the source process and appends
    /// them to `out`: all of them, or fails (and `out` unpins what it got
    /// when the caller drops it).
    fn pin_run(
        &self,
        source: &Source,
        idx: u64,
        n: u64,
        flags: PinFlags,
        out: &mut KVec<PinnedPage>,
    ) -> Result {
        if self.is_dmabuf() {
            return Err(EINVAL);
        }
        if let Backing::File { file, start } = &self.backing {
            return pin_memfd_pages(file, start + idx * PAGE, n as usize, out);
        }
        // A process that has exited has no memory left to pin.
        let mm = source.live_mm()?;
        let lock = mm.mmap_read_lock();
        let mut done = 0;
        while done < n {
            let addr = self.uptr + (idx + done) * PAGE;
            done += lock.pin_pages(addr as usize, (n - done) as usize, flags, out)? as u64;
        }
        Ok(())
    }

    /// Adds a user to the pages `[first, last]` (page indexes), pinning
    /// those that have none.  On failure nothing changes.
    pub(crate) fn pin(&self, first: u64, last: u64) -> Result {
        if first > last || last >= self.npages {
            return Err(EINVAL);
        }
        if self.is_dmabuf() {
            // Nothing to pin: the attachment pins the whole buffer.
            return Ok(());
        }
        let flags = PinFlags::LONGTERM | self.flags(self.writable);
        let mut st = self.lock_settled();
        let batch = pin_batch();
        let mut idx = first;
        // The last page whose chunk was prepared: storage is prepared batch
        // by batch, as the pins come, so that what it takes is bounded by
        // what is pinned (a pin that fails at once takes nothing, however
        // long the range).
        let mut prepared = None;
        let res = (|| -> Result {
            while idx <= last {
                if st.users(idx) > 0 {
                    st.get(idx);
                    idx += 1;
                    continue;
                }
                let mut end = idx;
                while end < last && end - idx + 1 < batch && st.users(end + 1) == 0 {
                    end += 1;
                }
                prepared = Some(end);
                st.prepare(idx, end)?;
                let mut batch = KVec::new();
                self.pin_run(&st.source, idx, end - idx + 1, flags, &mut batch)?;
                st.source.charge(batch.len())?;
                st.npinned += batch.len() as u64;
                for page in batch.drain_all() {
                    st.store(idx, page);
                    idx += 1;
                }
            }
            Ok(())
        })();
        if let Err(e) = res {
            if idx > first {
                self.release(&mut st, first, idx - 1);
            }
            if let Some(end) = prepared {
                st.trim(first, end);
            }
            return Err(e);
        }
        Ok(())
    }

    /// Drops a user of each page `[first, last]`, unpinning those left with
    /// none.
    pub(crate) fn unpin(&self, first: u64, last: u64) {
        if self.is_dmabuf() {
            return;
        }
        let mut st = self.lock_settled();
        self.release(&mut st, first, last);
    }

    /// Locks the state once no `IOMMU_IOAS_CHANGE_PROCESS` is moving its
    /// charge: the pins, hence the charge, only change under this.
    fn lock_settled(&self) -> MutexGuard<'_, State> {
        let mut st = self.state.lock();
        while st.moving {
            self.settled.wait(&mut st);
        }
        st
    }

    /// Makes the pins (and charge) of these pages stay as they are until
    /// [`Pages::thaw`]; waits for another change under way.
    fn freeze(&self) {
        let mut st = self.lock_settled();
        st.moving = true;
    }

    fn thaw(&self) {
        self.state.lock().moving = false;
        self.settled.notify_all();
    }

    fn release(&self, st: &mut State, first: u64, last: u64) {
        let mut freed = 0u64;
        for idx in first..=last {
            if let Some(page) = st.put(idx) {
                if self.writable {
                    page.unpin_dirty();
                } else {
                    drop(page);
                }
                freed += 1;
            }
        }
        if freed != 0 {
            st.npinned -= freed;
            st.source.uncharge(freed as usize);
        }
        st.trim(first, last);
    }

    /// Appends the `struct page` of each page `[first, last]` to `out`;
    /// the caller holds a user on them.
    pub(crate) fn page_ptrs(
        &self,
        first: u64,
        last: u64,
        out: &mut KVec<*mut kernel::bindings::page>,
    ) -> Result {
        let st = self.state.lock();
        for idx in first..=last {
            let page = st.page(idx).ok_or(EFAULT)?;
            out.push(page.as_ptr(), GFP_KERNEL_ACCOUNT)?;
        }
        Ok(())
    }

    /// Calls `f(index, physical address)` for each page `[first, last]`;
    /// the caller holds a user on them.
    pub(crate) fn for_each_phys(
        &self,
        first: u64,
        last: u64,
        mut f: impl FnMut(u64, u64) -> Result,
    ) -> Result {
        let st = self.state.lock();
        for idx in first..=last {
            let page = st.page(idx).ok_or(EFAULT)?;
            f(idx, page.phys_addr())?;
        }
        Ok(())
    }

    /// Copies between `buf` and the memory starting `start_byte` bytes into
    /// the range: into the memory if `write`.  Pages nobody has pinned are
    /// pinned just for the copy.
    ///
    /// With `direct`, process memory of the calling process is copied
    /// straight from or to user space (upstream's fast path), which ignores
    /// whether pages are pinned, as a CPU access may.
    pub(crate) fn rw(&self, start_byte: u64, buf: &mut [u8], write: bool, direct: bool) -> Result {
        let st = self.state.lock();
        if direct && matches!(self.backing, Backing::User) {
            let current = kernel::current!();
            let cur = current.mm().map(|m| m.as_raw());
            if cur.is_some() && st.source.mm.as_ref().map(|m| m.as_raw()) == cur {
                drop(st);
                let addr = self.uptr.checked_add(start_byte).ok_or(EFAULT)?;
                let user = UserSlice::new(UserPtr::from_addr(addr as usize), buf.len());
                return if write {
                    user.writer().write_slice(buf)
                } else {
                    user.reader().read_slice(buf)
                };
            }
        }
        let mut off = start_byte;
        let mut done = 0usize;
        while done < buf.len() {
            let idx = off / PAGE;
            if idx >= self.npages {
                return Err(EINVAL);
            }
            let in_page = (off % PAGE) as usize;
            if let Some(page) = st.page(idx) {
                let n = (PAGE_SIZE - in_page).min(buf.len() - done);
                copy(page, in_page, &mut buf[done..done + n], write)?;
                done += n;
                off += n as u64;
                continue;
            }
            // Pin the run of pages up to the next stored one.
            let remaining = (in_page + buf.len() - done).div_ceil(PAGE_SIZE) as u64;
            let mut n = 1;
            while n < remaining.min(pin_batch()) && st.page(idx + n).is_none() {
                n += 1;
            }
            let mut tmp = KVec::new();
            self.pin_run(&st.source, idx, n, self.flags(write), &mut tmp)?;
            let mut res = Ok(());
            for page in tmp.drain_all() {
                if res.is_ok() && done < buf.len() {
                    let in_page = (off % PAGE) as usize;
                    let len = (PAGE_SIZE - in_page).min(buf.len() - done);
                    res = copy(&page, in_page, &mut buf[done..done + len], write);
                    done += len;
                    off += len as u64;
                }
                if write {
                    page.unpin_dirty();
                }
            }
            res?;
        }
        Ok(())
    }
}

/// `IOMMU_IOAS_CHANGE_PROCESS` for a set of distinct `Pages`: charges
/// their pins to the current process and gives back the old charges.
/// `EINVAL` if one is not backed by a file; on a charging error nothing
/// changes.  Pages the current process is charged for already stay as
/// they are.
pub(crate) fn change_process(mut all: KVec<Arc<Pages>>) -> Result {
    if all
        .iter()
        .any(|p| !matches!(p.backing, Backing::File { .. }))
    {
        return Err(EINVAL);
    }
    // No pin or unpin may come between the new charge and the end of the
    // old one.  Frozen in address order, so that two changes never wait
    // for each other.
    all.sort_unstable_by_key(|p| Arc::as_ptr(p) as usize);
    // Each once: freezing twice would wait for ourselves.
    let mut prev = core::ptr::null();
    all.retain(|p| {
        let keep = Arc::as_ptr(p) != prev;
        prev = Arc::as_ptr(p);
        keep
    });
    for p in all.iter() {
        p.freeze();
    }
    let res = move_charges(&all);
    for p in all.iter() {
        p.thaw();
    }
    res
}

/// Moves the charges of frozen `Pages` to the current process.
fn move_charges(all: &[Arc<Pages>]) -> Result {
    let current = kernel::current!();
    let mm = current.mm().map(|m| m.as_raw());
    let user = User::current();
    // Whether `src` is charged to someone else: another address space (for
    // `pinned_vm`, and `locked_vm` in the VFIO mode) or another user.
    let foreign = |src: &Source| {
        src.mm.as_ref().map(|m| m.as_raw()) != mm
            || (src.charge == Charge::User && !core::ptr::eq(&*src.user, &*user))
    };
    // Charge the totals first, per kind of charge, as upstream does.
    let kinds = [Charge::None, Charge::User, Charge::Mm];
    let mut totals = [0usize; 3];
    for p in all {
        let st = p.state.lock();
        if foreign(&st.source) {
            let k = kinds
                .iter()
                .position(|k| *k == st.source.charge)
                .unwrap_or(0);
            totals[k] += st.npinned as usize;
        }
    }
    for (charged, (k, &n)) in kinds.iter().zip(totals.iter()).enumerate() {
        let res = if n == 0 {
            Ok(())
        } else {
            Source::current_charged(*k).charge(n)
        };
        if let Err(e) = res {
            for (k, &n) in kinds.iter().zip(totals.iter()).take(charged) {
                if n != 0 {
                    Source::current_charged(*k).uncharge(n);
                }
            }
            return Err(e);
        }
    }
    // Then move each: the new process takes over its share of the charge,
    // which is what was counted above, nothing having been pinned or
    // unpinned since.
    for p in all {
        let mut st = p.state.lock();
        if !foreign(&st.source) {
            continue;
        }
        let new = Source::current_charged(st.source.charge);
        let n = st.npinned as usize;
        let old = core::mem::replace(&mut st.source, new);
        drop(st);
        // The old process's mm lock may be taken: not under ours.
        old.uncharge(n);
    }
    Ok(())
}

fn copy(page: &PinnedPage, offset: usize, buf: &mut [u8], write: bool) -> Result {
    if write {
        page.write(offset, buf)
    } else {
        page.read(offset, buf)
    }
}

impl Drop for State {
    fn drop(&mut self) {
        if self.npinned != 0 {
            // Every user gives its pins back before the last reference to
            // the pages goes; this is a refcounting bug.  The pins are still
            // given back as the chunks go.
            kernel::warn_on!(true);
            pr_err!("{} pages still pinned at teardown\n", self.npinned);
            self.source.uncharge(self.npinned as usize);
        }
    }
}

/// `npages` pages of a new shmem file (which pins like a memfd), as a
/// `Pages`, for KUnit tests: kernel threads have no user memory.
#[cfg(CONFIG_KUNIT)]
pub(crate) fn kunit_memfd_pages(npages: u64) -> Result<Arc<Pages>> {
    let len = npages * PAGE;
    Pages::new_file(kunit_memfd(len)?, 0, len, true, AccountMode::User)
}

/// A new shmem file of `len` bytes, for KUnit tests.
#[cfg(CONFIG_KUNIT)]
fn kunit_memfd(len: u64) -> Result<ARef<File>> {
    crate::ffi::kunit_memfd(usize::try_from(len).map_err(|_| EINVAL)?)
}

impl Pages {
    /// Pages pinned (and charged) now.
    #[cfg(CONFIG_KUNIT)]
    pub(crate) fn npinned(&self) -> u64 {
        self.state.lock().npinned
    }
}

#[kunit_tests(iommufd_rs_pages)]
mod tests {
    use super::*;

    fn pages(npages: u64) -> Result<Arc<Pages>> {
        kunit_memfd_pages(npages)
    }

    fn pinned(p: &Pages) -> u64 {
        p.state.lock().npinned
    }

    fn chunks(p: &Pages) -> usize {
        p.state.lock().chunks.iter().count()
    }

    #[test]
    fn pins_are_shared_and_given_back() -> Result {
        let p = pages(700)?;
        p.pin(0, 3)?;
        assert_eq!(pinned(&p), 4);
        // Pages 2 and 3 get a second user, not a second pin.
        p.pin(2, 5)?;
        assert_eq!(pinned(&p), 6);
        p.unpin(0, 3);
        assert_eq!(pinned(&p), 4);
        p.unpin(2, 5);
        assert_eq!(pinned(&p), 0);
        assert_eq!(chunks(&p), 0);
        // More than one batch, across many chunks.
        p.pin(10, 650)?;
        assert_eq!(pinned(&p), 641);
        assert_eq!(chunks(&p), 11);
        let mut n = 0;
        p.for_each_phys(10, 650, |_, phys| {
            assert_ne!(phys, 0);
            n += 1;
            Ok(())
        })?;
        assert_eq!(n, 641);
        p.unpin(10, 650);
        assert_eq!((pinned(&p), chunks(&p)), (0, 0));
        Ok(())
    }

    #[test]
    fn bad_ranges_change_nothing() -> Result {
        let p = pages(4)?;
        assert_eq!(p.pin(3, 2), Err(EINVAL));
        assert_eq!(p.pin(0, 4), Err(EINVAL));
        let mut buf = [0u8; 8];
        assert_eq!(p.rw(4 * PAGE - 4, &mut buf, false, false), Err(EINVAL));
        assert_eq!(p.for_each_phys(0, 0, |_, _| Ok(())), Err(EFAULT));
        assert_eq!((pinned(&p), chunks(&p)), (0, 0));
        Ok(())
    }

    /// Lengths at the size limit, and user memory or file offsets that end
    /// at the top of the space: a file may be mapped up to its last offset
    /// (its pages then fail to pin), user memory must end below the top.
    #[test]
    fn ranges_up_to_the_top() -> Result {
        let top = 0u64.wrapping_sub(PAGE);
        let f = kunit_memfd(PAGE)?;
        let p = Pages::new_file(f.clone(), top, PAGE, true, AccountMode::User)?;
        assert_eq!((p.uptr, p.npages), (top, 1));
        assert!(p.pin(0, 0).is_err());
        assert_eq!((pinned(&p), chunks(&p)), (0, 0));
        let p = Pages::new_file(f.clone(), top + 1, PAGE - 1, true, AccountMode::User)?;
        assert_eq!((p.uptr, p.npages), (top, 1));
        let user = |uptr, len| Pages::new_user(uptr, len, true, AccountMode::User).err();
        assert_eq!(user(top, PAGE), Some(EOVERFLOW));
        assert_eq!(user(top - 1, PAGE), None);
        assert_eq!(user(0x1000, 0), Some(EINVAL));
        // At most u64::MAX - PAGE bytes, so that the page count holds.
        assert_eq!(user(0, u64::MAX - PAGE + 1), Some(EINVAL));
        let p = Pages::new_user(1, u64::MAX - PAGE, true, AccountMode::User)?;
        assert_eq!(p.npages, u64::MAX / PAGE);
        Ok(())
    }

    #[test]
    fn rw_through_temporary_and_stored_pins() -> Result {
        let p = pages(4)?;
        let mut data = [0u8; 100];
        for (i, b) in data.iter_mut().enumerate() {
            *b = i as u8 ^ 0x5a;
        }
        // Across a page boundary, nothing pinned: pinned for the copy only.
        p.rw(PAGE - 50, &mut data, true, false)?;
        assert_eq!(pinned(&p), 0);
        let mut back = [0u8; 100];
        p.rw(PAGE - 50, &mut back, false, false)?;
        assert_eq!(data, back);
        // The same through stored pins.
        p.pin(0, 1)?;
        let mut again = [0u8; 100];
        p.rw(PAGE - 50, &mut again, false, false)?;
        assert_eq!(data, again);
        p.unpin(0, 1);
        assert_eq!(pinned(&p), 0);
        Ok(())
    }
}
