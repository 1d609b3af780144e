#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The tests: build what is missing, boot the VMs, run our tests and the
# upstream selftests against our module and the stock C one, gate on ours
# and on the committed must-pass list.  Ends with "N passed, N failed".
#   --no-gate   report only (the conformance figures), exit 0
#
# Two kernels, their VMs side by side: debug (every suite, under KASAN,
# lockdep, kmemleak and UBSAN) and prod (as distributions ship it, no
# IOMMUFD_TEST: the module builds, loads, and passes what needs no mock).
#   TEST_FLAVORS="debug prod"   which of them (default both; with SUITES=,
#                               only debug)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

if [ -n "${SUITES:-}" ]; then
	flavors=${TEST_FLAVORS:-debug}
else
	flavors=${TEST_FLAVORS:-debug prod}
fi
for f in $flavors; do
	KFLAVOR=$f "$TOP/scripts/build.sh"
done
pids=()
for f in $flavors; do
	KFLAVOR=$f "$TOP/scripts/vm/run.sh" test &
	pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done

total_pass=0 total_fail=0 rc=0
for f in $flavors; do
	vm=$CACHE/vm/$f
	echo
	echo "######## the $f kernel"
	out=$(mktemp)
	set +e
	python3 "$TOP/scripts/vm/report.py" "$vm/test.results" "$vm/test.console" \
		"$TOP/tools/testing/selftests/iommu/must-pass.txt" --flavor=$f | tee "$out"
	frc=${PIPESTATUS[0]}
	set -e
	[ "$frc" -eq 0 ] || rc=1
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$out" | tail -n 1)
	rm -f "$out"
	if [ -z "$line" ]; then
		line="0 passed, 1 failed"
		rc=1
	fi
	read -r p _ fl _ <<<"$line"
	total_pass=$((total_pass + p))
	total_fail=$((total_fail + fl))
done
echo
echo "######## all kernels ($flavors)"
echo "$total_pass passed, $total_fail failed"
if [ "${1:-}" = --no-gate ]; then
	exit 0
fi
exit $rc
