// SPDX-License-Identifier: GPL-2.0

//! Driver-specific data that user space hands an IOMMU driver through
//! iommufd: one structure ([`UserData`], for allocating a domain) or an
//! array of them ([`UserDataArray`], for invalidating caches).
//!
//! Both carry a type, agreed between user space and the driver, and a
//! length chosen by user space: structures grow at their end, so a driver
//! accepts any length from the end of the first version of its structure
//! up to its own size, and reads what is missing as zero.
//!
//! C header: [`include/linux/iommu.h`](srctree/include/linux/iommu.h)

use crate::{
    bindings,
    prelude::*,
    transmute::{AsBytes, FromBytes},
    uaccess::{UserPtr, UserSlice},
};
use core::mem::{size_of, MaybeUninit};

/// Reads `len` bytes at `uptr` as the start of a `T`, the rest zero.
fn read_struct<T: FromBytes>(uptr: usize, len: usize, min_len: usize) -> Result<T> {
    if len < min_len || len > size_of::<T>() {
        return Err(EINVAL);
    }
    let mut out = MaybeUninit::<T>::zeroed();
    // SAFETY: `out` is `size_of::<T>()` bytes, of which we view the first
    // `len` (checked above) as possibly uninitialised bytes.
    let bytes =
        unsafe { core::slice::from_raw_parts_mut(out.as_mut_ptr().cast::<MaybeUninit<u8>>(), len) };
    UserSlice::new(UserPtr::from_addr(uptr), len)
        .reader()
        .read_raw(bytes)?;
    // SAFETY: Every byte of `out` is initialised (zeroed, then partly
    // overwritten), and any bytes are a valid `T` (`FromBytes`).
    Ok(unsafe { out.assume_init() })
}

/// Checks that the `len` bytes of user memory at `uptr` are zero: `E2BIG`
/// if not, `EFAULT` if they cannot be read.
fn check_zeroed(uptr: usize, len: usize) -> Result {
    let mut r = UserSlice::new(UserPtr::from_addr(uptr), len).reader();
    let mut buf = [0u8; 64];
    while !r.is_empty() {
        let n = r.len().min(buf.len());
        r.read_slice(&mut buf[..n])?;
        if buf[..n].iter().any(|&b| b != 0) {
            return Err(E2BIG);
        }
    }
    Ok(())
}

/// One structure of driver-specific data (`struct iommu_user_data`).
#[repr(transparent)]
pub struct UserData(bindings::iommu_user_data);

impl UserData {
    /// Data of type `ty`, `len` bytes at the user address `uptr`.
    pub fn new(ty: u32, uptr: u64, len: usize) -> Self {
        Self(bindings::iommu_user_data {
            type_: ty,
            uptr: uptr as usize as *mut c_void,
            len,
        })
    }

    /// Wraps the core's description of the data.
    ///
    /// # Safety
    ///
    /// `ptr` is valid for reads for `'a`.
    pub unsafe fn from_raw<'a>(ptr: *const bindings::iommu_user_data) -> &'a Self {
        // SAFETY: `Self` is a transparent wrapper; the caller guarantees
        // validity.
        unsafe { &*ptr.cast() }
    }

    pub(crate) fn as_raw(&self) -> *const bindings::iommu_user_data {
        &self.0
    }

    /// The type of the data.
    pub fn data_type(&self) -> u32 {
        self.0.type_
    }

    /// The length of the data in bytes.
    pub fn len(&self) -> usize {
        self.0.len
    }

    /// Whether there is no data.
    pub fn is_empty(&self) -> bool {
        self.0.len == 0
    }

    /// The data as a `T`, the driver's structure for type `ty`, whose first
    /// version ended at byte `min_len`.  `EINVAL` if the data is of another
    /// type, shorter than `min_len` or longer than a `T`; `EFAULT` if it
    /// cannot be read.
    pub fn read<T: FromBytes>(&self, ty: u32, min_len: usize) -> Result<T> {
        if self.0.type_ != ty {
            return Err(EINVAL);
        }
        read_struct(self.0.uptr as usize, self.0.len, min_len)
    }
}

impl UserData {
    /// Writes `val`, the driver's structure for type `ty` whose first
    /// version ended at byte `min_len`, back into the data: as many bytes
    /// as user space gave.  `EINVAL` if the data is of another type,
    /// shorter than `min_len` or longer than a `T`; `EFAULT` if it cannot
    /// be written.
    pub fn write<T: AsBytes>(&self, ty: u32, val: &T, min_len: usize) -> Result {
        let len = self.0.len;
        if self.0.type_ != ty || len < min_len || len > size_of::<T>() {
            return Err(EINVAL);
        }
        UserSlice::new(UserPtr::from_addr(self.0.uptr as usize), len)
            .writer()
            .write_slice(&val.as_bytes()[..len])
    }
}

/// An array of driver-specific structures
/// (`struct iommu_user_data_array`), of which the driver reports how many
/// it handled.
#[repr(transparent)]
pub struct UserDataArray(bindings::iommu_user_data_array);

impl UserDataArray {
    /// `entry_num` entries of type `ty`, `entry_len` bytes each, from the
    /// user address `uptr`.
    pub fn new(ty: u32, uptr: u64, entry_len: u32, entry_num: u32) -> Self {
        Self(bindings::iommu_user_data_array {
            type_: ty,
            uptr: uptr as usize as *mut c_void,
            entry_len: entry_len as usize,
            entry_num,
        })
    }

    /// Wraps the core's description of the array.
    ///
    /// # Safety
    ///
    /// `ptr` is valid for reads and writes, and not otherwise used, for
    /// `'a`.
    pub unsafe fn from_raw<'a>(ptr: *mut bindings::iommu_user_data_array) -> &'a mut Self {
        // SAFETY: `Self` is a transparent wrapper; the caller guarantees
        // validity and exclusivity.
        unsafe { &mut *ptr.cast() }
    }

    pub(crate) fn as_raw(&mut self) -> *mut bindings::iommu_user_data_array {
        &mut self.0
    }

    /// The type of the entries.
    pub fn data_type(&self) -> u32 {
        self.0.type_
    }

    /// The number of entries; after the driver has run, the number it
    /// handled.
    pub fn entry_num(&self) -> u32 {
        self.0.entry_num
    }

    /// Reports that the driver handled the first `n` entries.
    pub fn set_done(&mut self, n: u32) {
        self.0.entry_num = n;
    }

    /// Entry `index` as a `T` of any length (`copy_struct_from_user()`, as
    /// `iommu_copy_struct_from_full_user_array()` reads): what is missing
    /// of a `T` reads as zero, and bytes past a `T` must be zero (`E2BIG`),
    /// from a newer user space whose structure grew with fields it does not
    /// use.  `EINVAL` if the entries are of another type, or `index` is out
    /// of the array.
    pub fn read_any<T: FromBytes>(&self, ty: u32, index: u32) -> Result<T> {
        if self.0.type_ != ty || index >= self.entry_num() {
            return Err(EINVAL);
        }
        let len = self.0.entry_len;
        let off = len.checked_mul(index as usize).ok_or(EINVAL)?;
        let uptr = (self.0.uptr as usize).checked_add(off).ok_or(EFAULT)?;
        if len > size_of::<T>() {
            let tail = uptr.checked_add(size_of::<T>()).ok_or(EFAULT)?;
            check_zeroed(tail, len - size_of::<T>())?;
        }
        read_struct(uptr, len.min(size_of::<T>()), 0)
    }

    /// Entry `index` as a `T` (see [`UserData::read`]); `EINVAL` also if
    /// `index` is out of the array.
    pub fn read<T: FromBytes>(&self, ty: u32, index: u32, min_len: usize) -> Result<T> {
        if self.0.type_ != ty || index >= self.entry_num() {
            return Err(EINVAL);
        }
        let len = self.0.entry_len;
        let off = len.checked_mul(index as usize).ok_or(EINVAL)?;
        let uptr = (self.0.uptr as usize).checked_add(off).ok_or(EFAULT)?;
        read_struct(uptr, len, min_len)
    }
}
