#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The upstream VFIO selftests (tools/testing/selftests/vfio) on the igb device
# behind the virtual IOMMU, for each implementation; a report, not a gate.
# vfio.ko needs the in-kernel API of the iommufd it loads against, which the
# Rust module does not export yet: on it vfio-pci does not load.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

"$TOP/scripts/build.sh"
VM_TIMEOUT=${VM_TIMEOUT:-1800} "$TOP/scripts/vm/run.sh" vfio
python3 "$TOP/scripts/vm/report.py" "$VM_DIR/vfio.results" "$VM_DIR/vfio.console" \
	"$TOP/tools/testing/selftests/iommu/must-pass.txt" --report-only
