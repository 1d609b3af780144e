#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The tests: build what is missing, boot the VM, run our tests and the
# upstream selftests against our module and the stock C one, gate on ours
# and on the committed must-pass list.  Ends with "N passed, N failed".
#   --no-gate   report only (the conformance figures), exit 0
set -euo pipefail
. "$(dirname "$0")/lib.sh"

"$TOP/scripts/build.sh"
"$TOP/scripts/vm/run.sh" test
report=(python3 "$TOP/scripts/vm/report.py" "$VM_DIR/test.results"
	"$VM_DIR/test.console" "$TOP/tools/testing/selftests/iommu/must-pass.txt")
if [ "${1:-}" = --no-gate ]; then
	"${report[@]}" || true
else
	exec "${report[@]}"
fi
