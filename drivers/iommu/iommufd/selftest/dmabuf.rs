// SPDX-License-Identifier: GPL-2.0

//! The selftest's dma-buf exporter (`IOMMU_TEST_OP_DMABUF_GET`, `_REVOKE`).

use super::*;

/// The name the selftest's dma-bufs are exported under, by which they are
/// recognised (its address).
static DMABUF_NAME: &CStr = c"iommufd_selftest_dmabuf";
/// The largest selftest dma-buf, as upstream.
const DMABUF_MAX: usize = 512 * PAGE_SIZE;

/// A selftest dma-buf: zeroed kernel memory, which the test may revoke.
pub(crate) struct MockDmaBuf {
    mem: KVec<u8>,
    revoked: Atomic<bool>,
}

impl dma_buf::Exporter for MockDmaBuf {}

/// `IOMMU_TEST_OP_DMABUF_GET`: exports a dma-buf of `len` bytes (rounded up
/// to pages) and returns its new file descriptor.
pub(super) fn dmabuf_get(len: u32, open_flags: u32) -> Result<i32> {
    let len = (len as usize).div_ceil(PAGE_SIZE) * PAGE_SIZE;
    if len == 0 || len > DMABUF_MAX {
        return Err(EINVAL);
    }
    let data = MockDmaBuf {
        mem: KVec::from_elem(0u8, len, GFP_KERNEL)?,
        revoked: Atomic::new(false),
    };
    let module: &'static ThisModule =
        &<crate::IommufdModule as kernel::ModuleMetadata>::THIS_MODULE;
    dma_buf::export(DMABUF_NAME, module, len, open_flags, data)
}

/// Where a selftest dma-buf is, if `buf` is one: `ENODEV` once revoked.
pub(crate) fn dmabuf_phys(buf: &DmaBuf) -> Option<Result<(u64, u64)>> {
    let data = dma_buf::exporter_data::<MockDmaBuf>(buf, DMABUF_NAME)?;
    if data.revoked.load(Relaxed) {
        return Some(Err(ENODEV));
    }
    Some(Ok((
        dma_buf::kmalloc_phys_addr(&data.mem),
        data.mem.len() as u64,
    )))
}

/// `IOMMU_TEST_OP_DMABUF_REVOKE`: revokes (or restores) a selftest dma-buf;
/// its importers are told.
pub(super) fn dmabuf_revoke(fd: i32, revoked: bool) -> Result {
    let buf = DmaBuf::get(fd)?;
    let data = dma_buf::exporter_data::<MockDmaBuf>(&buf, DMABUF_NAME).ok_or(EOPNOTSUPP)?;
    dma_buf::invalidate(&buf, || data.revoked.store(revoked, Relaxed));
    Ok(())
}
