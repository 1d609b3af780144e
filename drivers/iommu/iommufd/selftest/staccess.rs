// SPDX-License-Identifier: GPL-2.0

//! The selftest's accesses: in-kernel users of an IOAS owned by a file
//! descriptor, which pin and copy on request (`IOMMU_TEST_OP_CREATE_ACCESS`,
//! `ACCESS_PAGES`, `ACCESS_RW`, ...).

use super::*;
use kernel::pr_notice_once;

/// A range pinned with `IOMMU_TEST_OP_ACCESS_PAGES`.
struct Item {
    iova: u64,
    length: u64,
    id: u32,
}

struct Items {
    list: KVec<Item>,
    next_id: u32,
}

/// A selftest access: an access owned by a file descriptor, which pins
/// ranges on request and unpins them when told to unmap.
#[pin_data]
pub(crate) struct StAccess {
    /// `MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES`
    pins: bool,
    /// Set once the access is attached and its file installed.
    #[pin]
    access: Mutex<Option<Held<Access>>>,
    /// Held across pin and unpin, so that an unmap request waits for a pin
    /// in progress and then finds its item.
    #[pin]
    items: Mutex<Items>,
}

impl StAccess {
    pub(super) fn access(&self) -> Result<Arc<Object<Access>>> {
        Ok(self.access.lock().as_ref().ok_or(ENOENT)?.obj().clone())
    }
}

impl AccessOps for StAccess {
    fn needs_pin_pages(&self) -> bool {
        self.pins
    }

    /// Unpins every item that intersects `[iova, iova + length)`.
    fn unmap(&self, iova: u64, length: u64) {
        let Ok(access) = self.access() else {
            return;
        };
        let last = iova.saturating_add(length.saturating_sub(1));
        let mut items = self.items.lock();
        items.list.retain(|it| {
            let it_last = it.iova + (it.length - 1);
            if iova > it_last || last < it.iova {
                return true;
            }
            access.unpin_pages(it.iova, it.length);
            false
        });
    }
}

/// What a selftest access file owns; its release destroys the access.
struct StAccessFile {
    st: Arc<StAccess>,
}

impl FileOps for StAccessFile {}

impl Drop for StAccessFile {
    fn drop(&mut self) {
        self.st.unmap(0, u64::MAX);
        let access = self.st.access.lock().take();
        if let Some(access) = access {
            Access::destroy(access);
        }
    }
}

/// A selftest access looked up by file descriptor, with a reference on its
/// file for as long as the operation runs: the access is not released (and
/// destroyed) under it, as upstream's `iommufd_access_get()` holds it.
struct StAccessRef {
    st: Arc<StAccess>,
    _file: ARef<LocalFile>,
}

impl core::ops::Deref for StAccessRef {
    type Target = StAccess;

    fn deref(&self) -> &StAccess {
        &self.st
    }
}

/// The selftest access of the file descriptor `fd`: `EBADFD` if `fd` is
/// not one.
fn staccess_get(fd: u32) -> Result<StAccessRef> {
    let file = LocalFile::fget(fd).map_err(|_| EBADFD)?;
    let st = ffi::ops_of::<StAccessFile>(&file).ok_or(EBADFD)?.st.clone();
    Ok(StAccessRef { st, _file: file })
}

/// `IOMMU_TEST_OP_CREATE_ACCESS`: an access attached to `ioas_id`, owned by
/// a new file descriptor.
pub(super) fn create_access(
    ucmd: &mut Ucmd<'_, iommu_test_cmd>,
    ioas_id: u32,
    flags: u32,
) -> Result {
    if flags & !MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES != 0 {
        return Err(EOPNOTSUPP);
    }
    let st = Arc::pin_init(
        pin_init!(StAccess {
            pins: flags & MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES != 0,
            access <- new_mutex!(None),
            items <- new_mutex!(Items {
                list: KVec::new(),
                next_id: 0,
            }),
        }),
        GFP_KERNEL_ACCOUNT,
    )?;
    let ops = KBox::new(StAccessFile { st: st.clone() }, GFP_KERNEL_ACCOUNT)?;
    // From here on, dropping `file` releases the access file and its data.
    let file = ffi::anon_file(c"[iommufd_test_staccess]", ops)?;
    let fd = FileDescriptorReservation::get_unused_fd_flags(O_CLOEXEC)?;
    let access = Access::create(ucmd.handle, st.clone())?;
    let res = Access::attach(access.obj(), ioas_id).and_then(|()| {
        let mut a = CreateAccess::read(&ucmd.cmd.u);
        a.out_access_fd = fd.reserved_fd();
        a.write(&mut ucmd.cmd.u);
        ucmd.respond()
    });
    if let Err(e) = res {
        Access::destroy(access);
        return Err(e);
    }
    *st.access.lock() = Some(access);
    fd.fd_install(file);
    Ok(())
}

/// `IOMMU_TEST_OP_ACCESS_PAGES`: pins a range through the access `cmd.id`,
/// checks that the pages are those of the user buffer, and keeps the pin as
/// an item.
pub(super) fn access_pages(ucmd: &mut Ucmd<'_, iommu_test_cmd>) -> Result {
    let cmd = &ucmd.cmd;
    let mut a = AccessPages::read(&cmd.u);
    let (flags, iova, length, uptr) = (a.flags, a.iova, a.length, a.uptr);
    if length > MAX_ACCESS_LENGTH {
        return Err(ENOMEM);
    }
    if flags & !(MOCK_FLAGS_ACCESS_WRITE | MOCK_FLAGS_ACCESS_SYZ) != 0 {
        return Err(EOPNOTSUPP);
    }
    if flags & MOCK_FLAGS_ACCESS_SYZ != 0 {
        pr_notice_once!("IOMMU_TEST_OP_ACCESS_PAGES: syzkaller IOVAs are not supported\n");
        return Err(EOPNOTSUPP);
    }
    let st = staccess_get(cmd.id)?;
    let access = st.access()?;
    if !access.pins() {
        return Err(EOPNOTSUPP);
    }
    let mut items = st.items.lock();
    let mut pages = KVec::new();
    access.pin_pages(
        iova,
        length,
        flags & MOCK_FLAGS_ACCESS_WRITE != 0,
        &mut pages,
    )?;
    let res = (|| -> Result<u32> {
        if uptr != 0 {
            // Upstream's pointer arithmetic, which wraps.
            check_pages(uptr.wrapping_sub(iova % PAGE_SIZE as u64), &pages)?;
        }
        let id = items.next_id;
        items
            .list
            .push(Item { iova, length, id }, GFP_KERNEL_ACCOUNT)?;
        items.next_id = id.wrapping_add(1);
        a.out_access_pages_id = id;
        a.write(&mut ucmd.cmd.u);
        if let Err(e) = ucmd.respond() {
            items.list.pop();
            return Err(e);
        }
        Ok(id)
    })();
    if res.is_err() {
        access.unpin_pages(iova, length);
    }
    res.map(|_| ())
}

/// Checks that `pages` are the pages of the current process at `uptr`:
/// `EBADE` if one is not.
fn check_pages(uptr: u64, pages: &[*mut bindings::page]) -> Result {
    for (i, &page) in pages.iter().enumerate() {
        // Past the top of the address space nothing can be pinned.
        let addr = uptr
            .checked_add(i as u64 * PAGE_SIZE as u64)
            .ok_or(EFAULT)?;
        let p = UserPageRef::get_fast(usize::try_from(addr).map_err(|_| EFAULT)?, false)?;
        if p.as_ptr() != page {
            return Err(EBADE);
        }
    }
    Ok(())
}

/// `IOMMU_TEST_OP_DESTROY_ACCESS_PAGES`: unpins an item.
pub(super) fn destroy_access_pages(fd: u32, item_id: u32) -> Result {
    let st = staccess_get(fd)?;
    let access = st.access()?;
    let mut items = st.items.lock();
    let i = items
        .list
        .iter()
        .position(|it| it.id == item_id)
        .ok_or(ENOENT)?;
    let item = items.list.remove(i).map_err(|_| ENOENT)?;
    access.unpin_pages(item.iova, item.length);
    Ok(())
}

/// `IOMMU_TEST_OP_ACCESS_RW`: copies between a user buffer and the IOAS
/// through the access `cmd.id`.
pub(super) fn access_rw(cmd: &iommu_test_cmd) -> Result {
    let a = AccessRw::read(&cmd.u);
    let (iova, length, uptr, flags) = (a.iova, a.length, a.uptr, a.flags);
    if length > MAX_ACCESS_LENGTH {
        return Err(ENOMEM);
    }
    if flags & !(MOCK_ACCESS_RW_WRITE | MOCK_ACCESS_RW_SLOW_PATH | MOCK_FLAGS_ACCESS_SYZ) != 0 {
        return Err(EOPNOTSUPP);
    }
    if flags & MOCK_FLAGS_ACCESS_SYZ != 0 {
        pr_notice_once!("IOMMU_TEST_OP_ACCESS_RW: syzkaller IOVAs are not supported\n");
        return Err(EOPNOTSUPP);
    }
    let st = staccess_get(cmd.id)?;
    let access = st.access()?;
    let len = length as usize;
    let mut buf = KVVec::from_elem(0u8, len, GFP_KERNEL_ACCOUNT)?;
    let user = UserSlice::new(UserPtr::from_addr(uptr as usize), len);
    let write = flags & MOCK_ACCESS_RW_WRITE != 0;
    if write {
        user.reader().read_slice(&mut buf)?;
        access.rw(iova, &mut buf, flags)
    } else {
        access.rw(iova, &mut buf, flags)?;
        user.writer().write_slice(&buf)
    }
}

/// `IOMMU_TEST_OP_ACCESS_REPLACE_IOAS`: moves the access of the file
/// descriptor `fd` to the IOAS `ioas_id`.
pub(super) fn access_replace_ioas(fd: u32, ioas_id: u32) -> Result {
    let st = staccess_get(fd)?;
    Access::replace(&st.access()?, ioas_id)
}
