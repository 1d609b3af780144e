#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The upstream VFIO selftests (tools/testing/selftests/vfio) and ours
# (iommufd_real_device, iommufd_real_group, rust_vmm_iommufd, qemu_iommufd.sh)
# on QEMU's igb through vfio-pci, for
# each implementation, behind each virtual IOMMU: one VM boot per IOMMU, one
# after the other; then the programs side by side
# (scripts/vm/vfio_report.py).  `make test` runs the same (its vfio-* runs).
#   VIOMMUS="intel amd none"  which virtual IOMMUs (default all three; none:
#                         no-IOMMU mode; IOMMU=x: only x)
#   KFLAVOR=prod|rel|debug the kernel (default prod, as make test: on the
#                         debug kernel each vfio_pci_driver_test test, which
#                         pins and maps 1 GiB, takes 27-30 s of the 30 s its
#                         harness allows under TCG, and one that is killed
#                         leaves the group busy for the next; see README.md)
#   VFIO_TIMING=1         also time each step of vfio_pci_driver_test's
#                         fixture and tests (tools/testing/selftests/vfio)
#   IMPL=rs|c|both        (default both)   VFIO_GATE=1: exit non-zero unless
#                         ours passes all that C passes, with nothing left behind
set -euo pipefail
export KFLAVOR=${KFLAVOR:-prod}
. "$(dirname "$0")/lib.sh"

viommus=${VIOMMUS:-${IOMMU:-intel amd none}}
"$TOP/scripts/build.sh"
args=()
for v in $viommus; do
	# One 1 GiB huge page, reserved at boot (this kernel cannot allocate
	# one later), for vfio_dma_mapping_test's anonymous_hugetlb_1gb
	# variants: with 4 GiB the guest has a free GiB above 4 GiB for it (with
	# 3 GiB the boot-time reservation fails).
	IOMMU=$v RUN_NAME=vfio-$v VM_MEM=4G \
		VM_APPEND="hugepagesz=1G hugepages=1${VM_APPEND:+ $VM_APPEND}${VFIO_TIMING:+ iommufd.vfio_timing=1}" \
		VM_TIMEOUT=${VM_TIMEOUT:-900} "$TOP/scripts/vm/run.sh" vfio
	args+=("$v=$VM_DIR/vfio-$v.results:$VM_DIR/vfio-$v.console")
done
python3 "$TOP/scripts/vm/vfio_report.py" ${VFIO_GATE:+--gate} "${args[@]}"
