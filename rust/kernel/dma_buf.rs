// SPDX-License-Identifier: GPL-2.0

//! DMA buffers (`struct dma_buf`): importing one with a pinned dynamic
//! attachment ([`PinnedAttachment`]), and exporting a buffer of memory the
//! exporter describes itself ([`export`]).
//!
//! The users of the symbols (module) import the `DMA_BUF` namespace.
//!
//! C header: [`include/linux/dma-buf.h`](srctree/include/linux/dma-buf.h)

use crate::{
    bindings,
    device::Device,
    error::{from_err_ptr, to_result},
    prelude::*,
    str::CStr,
    types::Opaque,
};
use core::{any::TypeId, ptr::NonNull};

/// A reference to a DMA buffer (`dma_buf_get()`/`dma_buf_put()`).
///
/// # Invariants
///
/// `ptr` is a valid buffer on which this object owns one file reference.
pub struct DmaBuf {
    ptr: NonNull<bindings::dma_buf>,
}

// SAFETY: A dma-buf reference may be used and dropped from any thread.
unsafe impl Send for DmaBuf {}
// SAFETY: The methods taking `&self` only read immutable fields or take the
// buffer's reservation lock.
unsafe impl Sync for DmaBuf {}

impl DmaBuf {
    /// The DMA buffer of the file descriptor `fd`: `EBADF` if it is not one.
    pub fn get(fd: i32) -> Result<Self> {
        // SAFETY: Any fd may be passed; a non-error result carries a
        // reference.
        let ptr = from_err_ptr(unsafe { bindings::dma_buf_get(fd) })?;
        NonNull::new(ptr).map(|ptr| Self { ptr }).ok_or(EBADF)
    }

    fn as_ptr(&self) -> *mut bindings::dma_buf {
        self.ptr.as_ptr()
    }

    /// The buffer's size in bytes.
    pub fn size(&self) -> usize {
        // SAFETY: By the type invariant the buffer is valid; `size` is
        // immutable.
        unsafe { (*self.as_ptr()).size }
    }

    /// Runs `f` with the buffer's reservation lock held.
    pub fn with_resv_lock<R>(&self, f: impl FnOnce() -> R) -> R {
        // SAFETY: By the type invariant the buffer is valid; without an
        // acquire context the lock cannot fail.
        unsafe { bindings::dma_resv_lock((*self.as_ptr()).resv, core::ptr::null_mut()) };
        let r = f();
        // SAFETY: Locked above.
        unsafe { bindings::dma_resv_unlock((*self.as_ptr()).resv) };
        r
    }
}

impl Drop for DmaBuf {
    fn drop(&mut self) {
        // SAFETY: By the type invariant we own one reference.
        unsafe { bindings::dma_buf_put(self.as_ptr()) };
    }
}

/// An importer told when the exporter moves or revokes the buffer.
pub trait Importer: Send + Sync + 'static {
    /// The buffer's memory is going away: stop using its addresses.  Called
    /// with the buffer's reservation lock held.
    fn invalidate(&self);
}

/// The importer's ops table and data, which the attachment points to.
#[repr(C)]
struct ImportBox<T: Importer> {
    ops: Opaque<bindings::dma_buf_attach_ops>,
    importer: T,
}

/// A dynamic attachment of a device to a buffer, with the buffer pinned
/// (it does not move; it may still be revoked).  Unpinned and detached when
/// dropped.
pub struct PinnedAttachment<T: Importer> {
    attach: NonNull<bindings::dma_buf_attachment>,
    imp: Pin<KBox<ImportBox<T>>>,
    // Dropped last: the attachment goes before the buffer reference.
    buf: DmaBuf,
}

// SAFETY: The attachment is only used under the buffer's reservation lock
// or to detach; the importer is `Send + Sync`.
unsafe impl<T: Importer> Send for PinnedAttachment<T> {}
// SAFETY: As above.
unsafe impl<T: Importer> Sync for PinnedAttachment<T> {}

impl<T: Importer> PinnedAttachment<T> {
    /// Attaches `dev` to `buf` for `importer` and pins the buffer, then runs
    /// `f` under the reservation lock (to learn where the buffer is).
    pub fn new<R>(
        buf: DmaBuf,
        dev: &Device,
        importer: T,
        f: impl FnOnce(&DmaBuf) -> Result<R>,
    ) -> Result<(Self, R)> {
        let imp = KBox::pin(
            ImportBox {
                ops: Opaque::zeroed(),
                importer,
            },
            GFP_KERNEL,
        )?;
        // SAFETY: The ops are ours, zeroed, not shared yet.
        unsafe {
            (*imp.ops.get()).allow_peer2peer = true;
            (*imp.ops.get()).invalidate_mappings = Some(Self::invalidate);
        }
        let priv_ = core::ptr::from_ref::<ImportBox<T>>(&imp).cast_mut().cast();
        // SAFETY: `buf` and `dev` are valid; the ops and `priv_` are pinned
        // and outlive the attachment (they are dropped after it).
        let attach = from_err_ptr(unsafe {
            bindings::dma_buf_dynamic_attach(buf.as_ptr(), dev.as_raw(), imp.ops.get(), priv_)
        })?;
        // SAFETY: Not NULL (not an error pointer).
        let attach = unsafe { NonNull::new_unchecked(attach) };
        let res = buf.with_resv_lock(|| {
            // SAFETY: The reservation lock is held, as pinning requires.
            to_result(unsafe { bindings::dma_buf_pin(attach.as_ptr()) })?;
            f(&buf).inspect_err(|_| {
                // SAFETY: Pinned just above, under the same lock.
                unsafe { bindings::dma_buf_unpin(attach.as_ptr()) };
            })
        });
        match res {
            Ok(r) => Ok((Self { attach, imp, buf }, r)),
            Err(e) => {
                // SAFETY: Attached above and not pinned any more.
                unsafe { bindings::dma_buf_detach(buf.as_ptr(), attach.as_ptr()) };
                Err(e)
            }
        }
    }

    /// The importer.
    pub fn importer(&self) -> &T {
        &self.imp.importer
    }

    /// The buffer.
    pub fn buf(&self) -> &DmaBuf {
        &self.buf
    }

    /// `dma_buf_attach_ops::invalidate_mappings`.
    ///
    /// # Safety
    ///
    /// Called by the core, with the reservation lock held, for an
    /// attachment made by [`Self::new`] that is not detached yet.
    unsafe extern "C" fn invalidate(attach: *mut bindings::dma_buf_attachment) {
        // SAFETY: The core passes our attachment, whose `importer_priv` is
        // the pinned `ImportBox<T>` that outlives it.
        let imp = unsafe { &*(*attach).importer_priv.cast::<ImportBox<T>>() };
        imp.importer.invalidate();
    }
}

impl<T: Importer> Drop for PinnedAttachment<T> {
    fn drop(&mut self) {
        let attach = self.attach.as_ptr();
        // SAFETY: Pinned in `new`; unpinned once, under the lock it needs.
        self.buf
            .with_resv_lock(|| unsafe { bindings::dma_buf_unpin(attach) });
        // SAFETY: Attached in `new`, detached once.
        unsafe { bindings::dma_buf_detach(self.buf.as_ptr(), attach) };
    }
}

/// What an exporter made with [`export`] keeps with its buffer.
pub trait Exporter: Send + Sync + 'static {}

/// What every buffer of [`export`] points to first, whatever its exporter.
#[repr(C)]
struct ExportHeader {
    ops: Opaque<bindings::dma_buf_ops>,
    /// The exporter type, checked by [`exporter_data`].
    exporter: TypeId,
}

/// The exporter's ops table and data, which the buffer points to.
#[repr(C)]
struct ExportBox<T: Exporter> {
    header: ExportHeader,
    data: T,
}

/// Exports a buffer of `size` bytes described by `data`, named `name`, and
/// returns a new file descriptor for it, opened with `flags` (the
/// [`O_*` flags](crate::fs::file::flags) of a file, such as `O_CLOEXEC`).
///
/// Importers cannot map it (`map_dma_buf` fails with `EOPNOTSUPP`): they
/// learn its memory from the exporter through [`exporter_data`].
pub fn export<T: Exporter>(
    name: &'static CStr,
    module: &'static ThisModule,
    size: usize,
    flags: u32,
    data: T,
) -> Result<i32> {
    let b = KBox::new(
        ExportBox {
            header: ExportHeader {
                ops: Opaque::zeroed(),
                exporter: TypeId::of::<T>(),
            },
            data,
        },
        GFP_KERNEL,
    )?;
    // SAFETY: The ops are ours and zeroed.
    unsafe {
        let ops = b.header.ops.get();
        (*ops).attach = Some(export_attach);
        (*ops).detach = Some(export_detach);
        (*ops).map_dma_buf = Some(export_map);
        (*ops).unmap_dma_buf = Some(export_unmap);
        (*ops).release = Some(export_release::<T>);
    }
    let b = KBox::into_raw(b);
    // SAFETY: All-zero is a valid export info.
    let mut info: bindings::dma_buf_export_info = unsafe { core::mem::zeroed() };
    info.exp_name = name.as_char_ptr();
    info.owner = module.as_ptr();
    // SAFETY: `b` is valid; the box lives until `release`.
    info.ops = unsafe { (*b).header.ops.get() };
    info.size = size;
    info.flags = flags as c_int;
    info.priv_ = b.cast();
    // SAFETY: `info` is complete; on success the buffer owns `b`.
    let dmabuf = match from_err_ptr(unsafe { bindings::dma_buf_export(&info) }) {
        Ok(d) => d,
        Err(e) => {
            // SAFETY: Not exported: still ours.
            drop(unsafe { KBox::from_raw(b) });
            return Err(e);
        }
    };
    // SAFETY: `dmabuf` is a new buffer whose reference we own.
    let fd = unsafe { bindings::dma_buf_fd(dmabuf, flags as c_int) };
    if fd < 0 {
        // SAFETY: Drops our reference, which releases the buffer and `b`.
        unsafe { bindings::dma_buf_put(dmabuf) };
        return Err(Error::from_errno(fd));
    }
    Ok(fd)
}

/// The data of a buffer exported by [`export::<T>`](export) under `name`
/// (compared by address, so the same `'static` name), if `buf` is one.
pub fn exporter_data<'a, T: Exporter>(buf: &'a DmaBuf, name: &'static CStr) -> Option<&'a T> {
    // SAFETY: The buffer is valid; `exp_name` and `priv_` are immutable.
    let (exp_name, priv_) = unsafe { ((*buf.as_ptr()).exp_name, (*buf.as_ptr()).priv_) };
    // Our name, which only `export` gives buffers.
    if exp_name != name.as_char_ptr() {
        return None;
    }
    // SAFETY: Buffers exported under `name` by `export::<U>` (for some `U`)
    // carry an `ExportBox<U>` as private data until released, which our
    // reference prevents; its header comes first (`repr(C)`).
    let exporter = unsafe { (*priv_.cast::<ExportHeader>()).exporter };
    if exporter != TypeId::of::<T>() {
        return None;
    }
    // SAFETY: As above, with `U` = `T`.
    Some(unsafe { &(*priv_.cast::<ExportBox<T>>()).data })
}

/// Tells the importers of `buf` that its memory moves or goes
/// (`dma_buf_invalidate_mappings()`), under the reservation lock, after
/// `update` ran under the same lock.
pub fn invalidate(buf: &DmaBuf, update: impl FnOnce()) {
    buf.with_resv_lock(|| {
        update();
        // SAFETY: The reservation lock is held, as this requires.
        unsafe { bindings::dma_buf_invalidate_mappings(buf.as_ptr()) };
    });
}

/// `dma_buf_ops::attach` of [`export`]'s buffers: anyone may attach.
///
/// # Safety
///
/// Called by the core; touches nothing.
unsafe extern "C" fn export_attach(
    _buf: *mut bindings::dma_buf,
    _attach: *mut bindings::dma_buf_attachment,
) -> c_int {
    0
}

/// `dma_buf_ops::detach` of [`export`]'s buffers.
///
/// # Safety
///
/// Called by the core; touches nothing.
unsafe extern "C" fn export_detach(
    _buf: *mut bindings::dma_buf,
    _attach: *mut bindings::dma_buf_attachment,
) {
}

/// `dma_buf_ops::map_dma_buf` of [`export`]'s buffers: they have no
/// scatterlist.
///
/// # Safety
///
/// Called by the core; touches nothing.
unsafe extern "C" fn export_map(
    _attach: *mut bindings::dma_buf_attachment,
    _dir: bindings::dma_data_direction,
) -> *mut bindings::sg_table {
    EOPNOTSUPP.to_ptr()
}

/// `dma_buf_ops::unmap_dma_buf` of [`export`]'s buffers (never mapped).
///
/// # Safety
///
/// Called by the core; touches nothing.
unsafe extern "C" fn export_unmap(
    _attach: *mut bindings::dma_buf_attachment,
    _sgt: *mut bindings::sg_table,
    _dir: bindings::dma_data_direction,
) {
}

/// `dma_buf_ops::release` of [`export`]'s buffers: frees the exporter's
/// data.
///
/// # Safety
///
/// Called by the core, once, for a buffer exported by `export::<T>`.
unsafe extern "C" fn export_release<T: Exporter>(buf: *mut bindings::dma_buf) {
    // SAFETY: The buffer's private data is the box `export` leaked; the core
    // releases a buffer once.
    drop(unsafe { KBox::from_raw((*buf).priv_.cast::<ExportBox<T>>()) });
}

/// The physical address of the `kmalloc()`ed buffer of `mem` (physically
/// contiguous), for exporters that describe their buffer by address; 0 if
/// it has none (no capacity).
pub fn kmalloc_phys_addr(mem: &KVec<u8>) -> bindings::phys_addr_t {
    if mem.capacity() == 0 {
        // No allocation: the pointer is dangling, not in the direct map.
        return 0;
    }
    // SAFETY: `KVec` allocates with `kmalloc()`, whose memory is in the
    // direct map, where `virt_to_phys()` is valid.
    unsafe { bindings::virt_to_phys(mem.as_ptr().cast_mut().cast()) }
}
