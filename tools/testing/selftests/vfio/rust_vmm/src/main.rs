// SPDX-License-Identifier: GPL-2.0
//! A VMM built on the rust-vmm crates, run against `/dev/iommu`.
//!
//! Cloud Hypervisor and other rust-vmm VMMs drive a passed-through device
//! with `vfio-ioctls`' iommufd backend (`VfioIommufd`, the device's VFIO
//! cdev) and keep guest RAM in `vm-memory`.  This program does what such a
//! VMM does before and while its guest runs, without the guest: open
//! `/dev/iommu` and allocate an IOAS, bind and attach the device, read its
//! config space, ask for the IOMMU's hardware info, map guest RAM (anonymous
//! memory at two guest addresses, and a memfd through `IOMMU_IOAS_MAP_FILE`),
//! move the device to a HWPT of its own and back, wire MSI-X to eventfds,
//! reset it, unmap, and close.  The crates are used unchanged; TAP output.
//!
//!   rust_vmm_iommufd BDF
//!
//! Every step checks what the kernel did: the pins (`VmPin`) the maps
//! charge and give back, the device's identity, the IOMMU type.  Run as
//! root with the device bound to vfio-pci.

use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;

use iommufd_bindings::iommufd::{
    iommu_hw_info, iommu_hw_info_type_IOMMU_HW_INFO_TYPE_AMD,
    iommu_hw_info_type_IOMMU_HW_INFO_TYPE_INTEL_VTD, iommu_hwpt_alloc,
};
use iommufd_ioctls::IommuFd;
use vfio_bindings::bindings::vfio::{VFIO_PCI_CONFIG_REGION_INDEX, VFIO_PCI_MSIX_IRQ_INDEX};
use vfio_ioctls::{VfioDevice, VfioIommufd, VfioOps};
use vm_memory::{
    GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion, MemoryRegionAddress,
};
use vmm_sys_util::eventfd::EventFd;

const MIB: u64 = 1 << 20;
/// Guest RAM: 64 MiB at 0 and 16 MiB above 4 GiB, as a VMM lays it out.
const RAM: [(u64, u64); 2] = [(0, 64 * MIB), (4 << 30, 16 * MIB)];
/// The memfd's IOVA and length.
const FILE_IOVA: u64 = 8 << 30;
const FILE_LEN: u64 = 8 * MIB;

struct Tap {
    n: u32,
    failed: u32,
}

impl Tap {
    fn check(&mut self, ok: bool, name: &str, what: &str) -> bool {
        self.n += 1;
        let not = if ok { "" } else { "not " };
        println!("{not}ok {} rust_vmm.{name} - {what}", self.n);
        if !ok {
            self.failed += 1;
        }
        ok
    }
}

/// This process's pinned memory in KiB (`VmPin`).
fn vm_pin_kib() -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmPin:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(u64::MAX)
}

/// The hardware info types the IOMMU in front of the device may report:
/// VT-d's remapping units are `dmar*` (whose driver always reports), AMD-Vi's
/// `ivhd*` (whose driver reports only when built with
/// `CONFIG_AMD_IOMMU_IOMMUFD`; else the type is `NONE`, 0).
fn expected_hw_info_types(sysfs: &Path) -> &'static [u32] {
    let iommu = fs::read_link(sysfs.join("iommu")).unwrap_or_default();
    let name = iommu
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    if name.starts_with("dmar") {
        &[iommu_hw_info_type_IOMMU_HW_INFO_TYPE_INTEL_VTD]
    } else if name.starts_with("ivhd") {
        &[iommu_hw_info_type_IOMMU_HW_INFO_TYPE_AMD, 0]
    } else {
        &[]
    }
}

fn memfd(len: u64) -> std::io::Result<OwnedFd> {
    // SAFETY: the name is a NUL-terminated string; the result is checked.
    let fd = unsafe { libc::memfd_create(c"rust_vmm_ram".as_ptr(), 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just created and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let len = libc::off_t::try_from(len).map_err(|_| std::io::Error::other("length"))?;
    // SAFETY: a plain syscall on an fd this function owns.
    if unsafe { libc::ftruncate(fd.as_raw_fd(), len) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(fd)
}

/// Binds, attaches and runs the device through everything above; returns
/// with the device closed.
fn run(t: &mut Tap, sysfs: &Path) {
    let pin0 = vm_pin_kib();
    println!("# VmPin at start: {pin0} kB");

    let iommufd = match IommuFd::new() {
        Ok(fd) => Arc::new(fd),
        Err(e) => {
            t.check(false, "opens", &format!("/dev/iommu opens: {e}"));
            return;
        }
    };
    let ops = match VfioIommufd::new(Arc::clone(&iommufd), None, None) {
        Ok(ops) => Arc::new(ops),
        Err(e) => {
            t.check(false, "opens", &format!("an IOAS is allocated: {e}"));
            return;
        }
    };
    let ioas = Arc::clone(ops.ioas());
    t.check(
        ioas.id() != 0,
        "opens",
        &format!("/dev/iommu opens and IOAS {} is allocated", ioas.id()),
    );

    let dev = match VfioDevice::new(sysfs, Arc::clone(&ops) as Arc<dyn VfioOps>, true) {
        Ok(dev) => dev,
        Err(e) => {
            t.check(
                false,
                "binds",
                &format!("the device binds and attaches: {e}"),
            );
            return;
        }
    };
    let dev_id = dev.iommufd_dev_id().unwrap_or(0);
    t.check(
        dev_id != 0,
        "binds",
        &format!("the VFIO cdev binds to /dev/iommu (device ID {dev_id}) and attaches to the IOAS"),
    );

    let mut id = [0u8; 4];
    dev.region_read(VFIO_PCI_CONFIG_REGION_INDEX, &mut id, 0);
    let vendor = u16::from_le_bytes([id[0], id[1]]);
    let device = u16::from_le_bytes([id[2], id[3]]);
    let want = (
        fs::read_to_string(sysfs.join("vendor")).unwrap_or_default(),
        fs::read_to_string(sysfs.join("device")).unwrap_or_default(),
    );
    t.check(
        format!("{vendor:#06x}") == want.0.trim() && format!("{device:#06x}") == want.1.trim(),
        "config_space",
        &format!("config space reads {vendor:04x}:{device:04x}, as sysfs says"),
    );

    let mut info = iommu_hw_info {
        size: std::mem::size_of::<iommu_hw_info>() as u32,
        dev_id,
        ..Default::default()
    };
    let hw = iommufd.get_hw_info(&mut info);
    // SAFETY: the kernel fills in `out_data_type`, the union's output side.
    let got = unsafe { info.__bindgen_anon_1.out_data_type };
    let want = expected_hw_info_types(sysfs);
    t.check(
        hw.is_ok() && want.contains(&got),
        "hw_info",
        &format!("IOMMU_GET_HW_INFO reports type {got} (one of {want:?}): {hw:?}"),
    );

    // Guest RAM, as vm-memory lays it out, mapped at its guest addresses.
    let ranges: Vec<(GuestAddress, usize)> = RAM
        .iter()
        .map(|&(gpa, len)| (GuestAddress(gpa), len as usize))
        .collect();
    let mem = GuestMemoryMmap::<()>::from_ranges(&ranges).expect("guest memory");
    let mut mapped = true;
    for r in mem.iter() {
        let host = r
            .get_host_address(MemoryRegionAddress(0))
            .expect("host address");
        // SAFETY: `mem` outlives the mapping (it is unmapped below, before
        // `mem` drops) and nothing here makes a Rust reference into it.
        let res = unsafe { ops.vfio_dma_map(r.start_addr().0, r.len() as usize, host) };
        if let Err(e) = res {
            println!("# map of {:#x}: {e}", r.start_addr().0);
            mapped = false;
        }
    }
    let ram_kib = RAM.iter().map(|r| r.1).sum::<u64>() / 1024;
    let pin = vm_pin_kib();
    t.check(
        mapped && pin == pin0 + ram_kib,
        "guest_ram",
        &format!("guest RAM ({ram_kib} kB in two regions) maps and is pinned: VmPin {pin} kB"),
    );

    // Guest RAM backed by a file, as VMMs with shared memory keep it.
    let file = memfd(FILE_LEN);
    let res = file.as_ref().map_err(|e| e.to_string()).and_then(|f| {
        ioas.map_file(f.as_raw_fd(), 0, FILE_LEN, FILE_IOVA, true)
            .map_err(|e| e.to_string())
    });
    let pin = vm_pin_kib();
    t.check(
        res.is_ok() && pin == pin0 + ram_kib + FILE_LEN / 1024,
        "map_file",
        &format!("a memfd maps with IOMMU_IOAS_MAP_FILE and is pinned: VmPin {pin} kB ({res:?})"),
    );

    // A HWPT of the VMM's own (what it does before nesting), then back to
    // the IOAS: the pins stay as they are, shared by both domains.
    let mut alloc = iommu_hwpt_alloc {
        size: std::mem::size_of::<iommu_hwpt_alloc>() as u32,
        dev_id,
        pt_id: ioas.id(),
        ..Default::default()
    };
    let res = iommufd
        .alloc_iommu_hwpt(&mut alloc)
        .map_err(|e| e.to_string())
        .and_then(|()| {
            dev.attach_hwpt(alloc.out_hwpt_id)
                .map_err(|e| e.to_string())
        })
        .and_then(|()| dev.attach_hwpt(ioas.id()).map_err(|e| e.to_string()))
        .and_then(|()| {
            iommufd
                .destroy_iommu_object(alloc.out_hwpt_id)
                .map_err(|e| e.to_string())
        });
    let pin = vm_pin_kib();
    t.check(
        res.is_ok() && pin == pin0 + ram_kib + FILE_LEN / 1024,
        "hwpt_replace",
        &format!(
            "the device moves to HWPT {} and back to the IOAS, the HWPT is destroyed, pins unchanged ({res:?})",
            alloc.out_hwpt_id
        ),
    );

    // MSI-X vectors on eventfds, as the VMM routes them to its guest.
    let vectors = dev
        .get_irq_info(VFIO_PCI_MSIX_IRQ_INDEX)
        .map_or(0, |i| i.count.min(4));
    let fds: Vec<EventFd> = (0..vectors)
        .filter_map(|_| EventFd::new(libc::EFD_NONBLOCK).ok())
        .collect();
    let res = dev
        .enable_msix(fds.iter().collect())
        .map_err(|e| e.to_string())
        .and_then(|()| {
            dev.trigger_irq(VFIO_PCI_MSIX_IRQ_INDEX, 0)
                .map_err(|e| e.to_string())
        })
        .and_then(|()| fds[0].read().map_err(|e| e.to_string()))
        .and_then(|n| dev.disable_msix().map_err(|e| e.to_string()).map(|()| n));
    t.check(
        vectors > 0 && fds.len() == vectors as usize && res == Ok(1),
        "msix",
        &format!("{vectors} MSI-X vectors wire to eventfds and vector 0 fires: {res:?}"),
    );

    dev.reset();

    let mut unmapped = true;
    for &(gpa, len) in &RAM {
        if let Err(e) = ops.vfio_dma_unmap(gpa, len as usize) {
            println!("# unmap of {gpa:#x}: {e}");
            unmapped = false;
        }
    }
    if let Err(e) = ioas.unmap(FILE_IOVA, FILE_LEN) {
        println!("# unmap of the memfd: {e}");
        unmapped = false;
    }
    let pin = vm_pin_kib();
    t.check(
        unmapped && pin == pin0,
        "unmap",
        &format!(
            "after reset, guest RAM and the memfd unmap and every pin is back: VmPin {pin} kB"
        ),
    );
    drop(mem);
    // Closing: VfioDevice detaches and closes its cdev, the IOAS is
    // destroyed with the last reference, then /dev/iommu closes.
    drop(dev);
    drop(ops);
    drop(ioas);
    drop(iommufd);
}

fn main() {
    let Some(bdf) = std::env::args().nth(1) else {
        eprintln!("usage: rust_vmm_iommufd BDF");
        std::process::exit(2);
    };
    let sysfs = Path::new("/sys/bus/pci/devices").join(&bdf);
    println!("TAP version 13");
    println!("1..10");
    let mut t = Tap { n: 0, failed: 0 };
    run(&mut t, &sysfs);

    // The device closed everything: a second VMM binds it again.
    let again = IommuFd::new().map_err(|e| e.to_string()).and_then(|fd| {
        let ops = VfioIommufd::new(Arc::new(fd), None, None).map_err(|e| e.to_string())?;
        VfioDevice::new(&sysfs, Arc::new(ops), true)
            .map(drop)
            .map_err(|e| e.to_string())
    });
    let pin = vm_pin_kib();
    t.check(
        again.is_ok() && pin == 0,
        "rebind",
        &format!("after close the device binds and attaches again: {again:?}, VmPin {pin} kB"),
    );
    std::process::exit(i32::from(t.failed != 0 || t.n != 10));
}
