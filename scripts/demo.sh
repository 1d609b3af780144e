#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The main job: build what is missing, boot the VM, load the Rust iommufd and
# show it working.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

"$TOP/scripts/build.sh"
IMPL=${IMPL:-rs} "$TOP/scripts/vm/run.sh" demo
res=$VM_DIR/demo.results
echo
echo "--- the demo, in the VM, on the Rust iommufd (the mock IOMMU, then a real device):"
sed -n '/^### BEGIN/,$p' "$res" | grep -v '^###'
echo "--- what the module logged:"
grep -E '\] iommufd: ' "$VM_DIR/demo.console" || true
grep -q '^### END rs demo rc=0' "$res" || die "the demo failed (kernel log: $VM_DIR/demo.console)"
