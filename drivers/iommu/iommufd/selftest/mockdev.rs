// SPDX-License-Identifier: GPL-2.0

//! The selftest's mock devices (`IOMMU_TEST_OP_MOCK_DOMAIN`): devices of
//! the mock IOMMU bound to a context.

use super::*;

/// Numbers the mock devices (`iommufd_mock<N>`).
static MOCK_DEV_SEQ: Atomic<u32> = Atomic::new(0);

/// A mock device bound to a context (the selftest's "stdev" object):
/// destroying it detaches and unbinds the device and removes it.
pub(crate) struct MockDev {
    ctx: Arc<Ctx>,
    /// The binding's use of the device object; None only during teardown.
    idev: Option<Held<Device>>,
    dev: Option<BusDevice>,
}

impl MockDev {
    pub(super) fn idev(&self) -> Result<&Arc<Object<Device>>> {
        Ok(self.idev.as_ref().ok_or(ENOENT)?.obj())
    }
}

impl Drop for MockDev {
    fn drop(&mut self) {
        if let Some(idev) = self.idev.take() {
            idev.detach();
            // The device object goes with its binding, before the device
            // (it gives back the device's DMA ownership): its vDEVICE
            // first, then the device once the commands using it are over.
            crate::viommu::unbind_device(&self.ctx, idev);
        }
        drop(self.dev.take());
    }
}

/// `IOMMU_TEST_OP_MOCK_DOMAIN(_FLAGS)`: a mock device bound to the context
/// and attached to `cmd.id` (an IOAS or a HWPT).
pub(super) fn mock_domain(ucmd: &mut Ucmd<'_, iommu_test_cmd>, dev_flags: u32) -> Result {
    if dev_flags & !(MOCK_FLAGS_DEVICE_NO_DIRTY | MOCK_FLAGS_DEVICE_PASID) != 0 {
        return Err(EINVAL);
    }
    // PASID attachment itself (IOMMU_TEST_OP_PASID_*) is not implemented
    // yet.
    let ctx = ucmd.handle.arc();
    // As upstream, the selftest object takes its ID before the device is
    // bound (which takes the next one) and attached.
    let slot = ctx.objects.reserve()?;
    let stdev_id = slot.id();
    let seq = MOCK_DEV_SEQ.fetch_add(1, Relaxed);
    let name = CString::try_from_fmt(fmt!("iommufd_mock{seq}"))?;
    // A PASID-capable device says so in firmware, as upstream's mock does.
    let props: &[(&'static CStr, u32)] = if dev_flags & MOCK_FLAGS_DEVICE_PASID != 0 {
        &[(c"pasid-num-bits", mock::MOCK_PASID_WIDTH)]
    } else {
        &[(c"pasid-num-bits", 0)]
    };
    let bus_dev = mock::registration()?.add_device(
        &name,
        mock::MockDevData::new(dev_flags & MOCK_FLAGS_DEVICE_NO_DIRTY != 0),
        props,
    )?;
    let idev = Device::bind(&ctx, bus_dev.device(), false)?;
    let idev_id = idev.id();
    let hwpt_id = idev.attach(ucmd.cmd.id);
    let mdev = slot.new_value(MockDev {
        ctx: ctx.clone(),
        idev: Some(idev),
        dev: Some(bus_dev),
    })?;
    let res = hwpt_id.and_then(|hwpt_id| {
        let mut a = MockDomain::read(&ucmd.cmd.u);
        a.out_stdev_id = stdev_id;
        a.out_hwpt_id = hwpt_id;
        a.out_idev_id = idev_id;
        a.write(&mut ucmd.cmd.u);
        ucmd.respond()
    });
    // Unpublished on failure: dropping tears the device down.
    res?;
    mdev.finalize();
    Ok(())
}
