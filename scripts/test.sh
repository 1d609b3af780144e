#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The tests: build what is missing, boot the VMs, run our tests and the
# upstream selftests against our module and the stock C one, gate on ours
# and on the committed must-pass list.  Ends with "N passed, N failed".
#   --no-gate   report only (the conformance figures), exit 0
#
# Two kernels, their VMs side by side: debug (every suite, under KASAN,
# lockdep and UBSAN) and prod (as distributions ship it, no IOMMUFD_TEST:
# the module builds, loads, and passes what needs no mock).  The debug kernel
# boots twice: the main run without kmemleak, and the "leaks" run with it
# (kmemleak=on), every suite but fail_nth (which kmemleak slows past its
# time limit) on our module, with a kmemleak scan after its suites.
# The prod kernel also boots twice more, behind VT-d and behind AMD-Vi (the
# "vfio-intel" and "vfio-amd" runs): the upstream VFIO selftests and ours
# on QEMU's igb through vfio-pci, on both modules, gated on ours passing
# everything C passes (scripts/vm/vfio_report.py --gate).  On prod, not
# debug: under lockdep and KASAN vfio_pci_driver_test's 1 GiB pin and map
# per test does not fit its harness's 30 s under TCG (see README.md).
#   TEST_FLAVORS="debug prod"   which of them (default both; with SUITES=,
#                               only debug, and no leaks or VFIO runs)
#   LEAKS=0                     no leaks run
#   VFIO=0                      no VFIO runs
#   VIOMMUS="intel amd none"    the VFIO runs' IOMMUs (none: no-IOMMU mode)
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
# The runs: flavor:name; each has its own console and results.
runs=()
for f in $flavors; do
	runs+=("$f:test")
done
leak_suites=kunit,iommufd_base,iommufd_pages,iommufd_domain,iommufd_nested
leak_suites+=,iommufd_dirty,iommufd_edges,iommufd_race,iommufd,iommufd_fuzz
leak_suites+=,iommufd_adversarial,accounting_after,kmemleak
case " $flavors " in
*" debug "*) [ -n "${SUITES:-}" ] || [ "${LEAKS:-1}" = 0 ] || runs+=("debug:leaks") ;;
esac
case " $flavors " in
*" prod "*)
	if [ -z "${SUITES:-}" ] && [ "${VFIO:-1}" != 0 ]; then
		for v in ${VIOMMUS:-intel amd none}; do
			runs+=("prod:vfio-$v")
		done
	fi
	;;
esac
# vfio_run FLAVOR NAME: a VFIO run, as scripts/test-vfio.sh boots it (4 GiB
# with one 1 GiB huge page for vfio_dma_mapping_test).  A guest that froze
# (run.sh: its timers stopped after a device reset, a QEMU problem under
# TCG that the C module meets as well) boots once more; the report says so.
vfio_run() {
	# One CPU each: the programs are sequential, and a lighter load on
	# the host makes the freezes above rarer (they came with five guests
	# at once on two cores).
	for try in 1 2; do
		KFLAVOR=$1 IOMMU=${2#vfio-} RUN_NAME=$2 VM_MEM=4G VM_SMP=1 \
			VM_APPEND="hugepagesz=1G hugepages=1" VM_TIMEOUT=2400 \
			"$TOP/scripts/vm/run.sh" vfio
		frozen=$CACHE/vm/$1/$2.frozen
		[ -f "$frozen" ] && [ "$try" = 1 ] || return 0
		mv "$CACHE/vm/$1/$2.console" "$CACHE/vm/$1/$2.console.frozen"
		log "$2: $(cat "$frozen"); booting it again"
		echo "$2 froze on its first boot ($(cat "$frozen")); its console: $CACHE/vm/$1/$2.console.frozen" \
			>"$CACHE/vm/$1/$2.note"
	done
}
rm -f "$CACHE"/vm/*/vfio-*.note
# The VFIO runs start once the test runs are done (beside the leaks run,
# the long one): vfio_pci_driver_test has 30 s a test for a 1 GiB pin and
# map, which five guests at once on two cores do not leave it.
pids=() later=()
for r in "${runs[@]}"; do
	f=${r%%:*} name=${r#*:}
	if [ "$name" = leaks ]; then
		# Our module only: it is the one kmemleak must find clean (the C
		# module's scans are the same with and without ours), and the run
		# is the slowest of the three.
		KFLAVOR=$f IMPL=rs RUN_NAME=leaks SUITES=$leak_suites \
			VM_APPEND=kmemleak=on "$TOP/scripts/vm/run.sh" test &
		later+=($!)
	elif [ "${name#vfio-}" != "$name" ]; then
		continue
	else
		KFLAVOR=$f "$TOP/scripts/vm/run.sh" test &
		pids+=($!)
	fi
done
for p in "${pids[@]}"; do wait "$p"; done
for r in "${runs[@]}"; do
	f=${r%%:*} name=${r#*:}
	if [ "${name#vfio-}" != "$name" ]; then
		vfio_run "$f" "$name" &
		later+=($!)
	fi
done
for p in "${later[@]}"; do wait "$p"; done

total_pass=0 total_fail=0 rc=0
# verdict REPORT...: runs a report, shows it, and adds its closing
# "N passed, N failed" line to the totals (a report without one, or that
# fails, fails the run).
verdict() {
	out=$(mktemp)
	set +e
	"$@" | tee "$out"
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
}
vfio_args=()
for r in "${runs[@]}"; do
	f=${r%%:*} name=${r#*:}
	vm=$CACHE/vm/$f
	if [ "${name#vfio-}" != "$name" ]; then
		vfio_args+=("${name#vfio-}=$vm/$name.results:$vm/$name.console")
		continue
	fi
	echo
	if [ "$name" = leaks ]; then
		echo "######## the $f kernel, with kmemleak"
	else
		echo "######## the $f kernel"
	fi
	extra=
	# The leaks run repeats gated suites: its gate is the harness's checks.
	[ "$name" = leaks ] && extra=--checks-only
	# shellcheck disable=SC2086 # extra: empty or one word
	verdict python3 "$TOP/scripts/vm/report.py" "$vm/$name.results" "$vm/$name.console" \
		"$TOP/tools/testing/selftests/iommu/must-pass.txt" --flavor=$f $extra
done
if [ ${#vfio_args[@]} -gt 0 ]; then
	echo
	echo "######## the prod kernel: VFIO on igb (${vfio_args[*]%%=*})"
	cat "$CACHE"/vm/prod/vfio-*.note 2>/dev/null || true
	verdict python3 "$TOP/scripts/vm/vfio_report.py" --gate "${vfio_args[@]}"
fi
echo
echo "######## all runs (${runs[*]})"
echo "$total_pass passed, $total_fail failed"
if [ "${1:-}" = --no-gate ]; then
	exit 0
fi
exit $rc
