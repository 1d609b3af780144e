#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The fuzzer (tools/testing/selftests/iommu/iommufd_fuzz) on each module:
# build, boot the VM, run it, and print per module the operations, the errno
# histogram, the kernel splats in the console and the pins leaked.
#   OPS=N SEED=S THREADS=N    operations, seed (default: the time), threads
#   DURATION=SECONDS          stop earlier, after this long
#   MEMLOCK=BYTES             RLIMIT_MEMLOCK of the run
#   FUZZ_ARGS='--skip A,B ...'  more options of the fuzzer
#   IMPL=rs|c|both            the modules (default both: C, then ours)
#   NO_BUILD=1                boot the artifacts as built, build nothing
# Exit status 1 if a module failed a run (a splat, a leak, a crash).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

ops=${OPS:-100000}
seed=${SEED:-$(date +%s)}
threads=${THREADS:-4}
dur=${DURATION:-}
impl=${IMPL:-both}
append="iommufd.fuzz=$ops:$seed:$threads:$dur:${MEMLOCK:-}"
# One kernel argument: ',' between the fuzzer's arguments, '+' inside one.
[ -z "${FUZZ_ARGS:-}" ] ||
	append+=" iommufd.fuzzargs=$(echo "$FUZZ_ARGS" | sed 's/,/+/g; s/  */,/g')"
if [ -z "${VM_TIMEOUT:-}" ]; then
	n=1
	[ "$impl" = both ] && n=2
	VM_TIMEOUT=$((n * ${dur:-3000} + 600))
fi
export VM_TIMEOUT IMPL=$impl

# NO_BUILD=1: boot what is built (while another run builds in the cache).
[ -n "${NO_BUILD:-}" ] || "$TOP/scripts/build.sh"
log "fuzzing: $ops ops, seed $seed, $threads thread(s)${dur:+, at most ${dur}s}, impl=$impl"
# Under a loaded TCG host the IO-APIC timer check at boot sometimes fails
# (a panic before any of ours runs): boot again, up to three times.
for try in 1 2 3; do
	VM_APPEND="$append" "$TOP/scripts/vm/run.sh" fuzz
	grep -q "timer doesn't work through Interrupt-remapped IO-APIC" \
		"$VM_DIR/fuzz.console" || break
	log "the VM's timer check failed at boot (try $try): booting again"
done
exec python3 "$TOP/scripts/vm/fuzz_report.py" "$VM_DIR/fuzz.results" "$VM_DIR/fuzz.console"
