#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Boot the test VM and run one job in it.
#   run.sh JOB            JOB: demo | test | vfio | bench | fuzz
#   IMPL=rs|c|both        which iommufd the job loads (test default: both)
#   IOMMU=intel|amd|none  the virtual IOMMU (default intel): VT-d, or AMD-Vi
#                         (which QEMU gives no interrupt remapping; the guest
#                         is told, iommufd.viommu=, for allow_unsafe_interrupts),
#                         or none (the vfio job then tests no-IOMMU mode)
#   VM_TIMEOUT=seconds    the whole run, boot to power-off (default 2400)
#   SUITES=a,b            run only these suites of the job (a faster loop)
#   VM_APPEND='a=b ...'   more kernel command line (the fuzz job's iommufd.fuzz=)
#   VM_MEM=size           the guest's memory (default 2G)
#   VM_SMP=n              its CPUs (default 2)
# The console (kernel log, with the results in it) goes to $VM_DIR/JOB.console;
# the results alone, extracted from it, to $VM_DIR/JOB.results.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"

job=${1:?usage: run.sh demo|test|vfio|bench|fuzz}
case "$job" in
demo) impl=${IMPL:-rs} ;;
test | vfio | bench | fuzz) impl=${IMPL:-both} ;;
*) die "unknown job '$job' (demo, test, vfio, bench or fuzz)" ;;
esac
case "$impl" in rs | c | both) ;; *) die "IMPL must be rs, c or both" ;; esac
iommu=${IOMMU:-intel}
# The debug kernel (KASAN, lockdep, kmemleak) under TCG needs the time.
timeout_s=${VM_TIMEOUT:-2400}

for f in bzImage initramfs.cpio.gz; do
	[ -f "$OUT/$f" ] || die "$OUT/$f is missing: build first (make all)"
done

case "$iommu" in
intel)
	iommu_dev=(-device intel-iommu,intremap=on,caching-mode=on)
	iommu_arg="intel_iommu=on"
	;;
amd)
	# pt=off: with passthrough offered (QEMU 10.0's default) the emulated
	# devices' DMA bypasses AMD-Vi's translation whatever the guest puts
	# in the device table, so the igb's DMA to an IOVA lands at that
	# physical address (vfio_pci_driver_test's memcpys never complete).
	iommu_dev=(-device amd-iommu,intremap=on,pt=off)
	iommu_arg=""
	;;
none)
	iommu_dev=()
	iommu_arg=""
	;;
*) die "IOMMU must be intel, amd or none" ;;
esac

dir=$VM_DIR
mkdir -p "$dir"
# RUN_NAME: another name for this run's files (a second run of a job).
con=$dir/${RUN_NAME:-$job}.console
res=$dir/${RUN_NAME:-$job}.results
: >"$con"
: >"$res"

# lpj: skip the delay-loop calibration, which under TCG can fail and then
# spin for minutes (udelay() uses the TSC here anyway).
# no5lvl: 4-level paging.  With 5-level paging (TCG's -cpu max has LA57),
# identify_cpu() briefly clears boot_cpu_data's capabilities, so
# pgtable_l5_enabled() reads false; a timer interrupt in that window makes
# KASAN see the direct map as outside its shadow and report a
# wild-memory-access at boot (seen once, kernel-side, before any module).
cmdline="console=ttyS0 $iommu_arg iommu.strict=1 hugepages=128 panic=-1 oops=panic lpj=1000000 no5lvl"
cmdline+=" printk.devkmsg=on loglevel=6 kunit.filter_glob=iommufd_rs_* iommufd.job=$job iommufd.impl=$impl iommufd.flavor=$KFLAVOR iommufd.viommu=$iommu"
[ -z "${SUITES:-}" ] || cmdline+=" iommufd.suites=$SUITES"
[ -z "${VM_APPEND:-}" ] || cmdline+=" $VM_APPEND"

# The VFIO job also runs the host's QEMU in the guest, as a VMM on the
# device (scripts/build-qemu-cpio.sh): its archive goes after the
# initramfs (the kernel unpacks both).
# It also gets two e1000s behind a PCIe-to-PCI bridge: one IOMMU group of
# two devices (iommufd_real_group).
initrd=$OUT/initramfs.cpio.gz
extra_dev=()
case "$job" in
vfio)
	extra_dev=(-device pcie-pci-bridge,id=pbr
		-netdev user,id=n1,restrict=on -device e1000,bus=pbr,addr=1,netdev=n1
		-netdev user,id=n2,restrict=on -device e1000,bus=pbr,addr=2,netdev=n2)
	"$TOP/scripts/build-qemu-cpio.sh"
	initrd=$dir/${RUN_NAME:-$job}.initrd
	cat "$OUT/initramfs.cpio.gz" "$CACHE/out/qemu.cpio.gz" >"$initrd"
	;;
esac

log "booting the $KFLAVOR VM ($job, impl=$impl, $iommu IOMMU, timeout ${timeout_s}s)"
set +e
# A VFIO guest whose timers stop makes no progress until the timeout: seen
# under TCG on a loaded host, right after a vfio-pci reset of the emulated
# NIC, behind AMD-Vi (an RCU stall report: "timer wakeup didn't happen")
# and behind VT-d (silence: no CPU left to report), with the C module and
# with ours alike.  Stop such a guest as soon as the kernel reports the
# stall or its console says nothing for 5 minutes (every VFIO program
# prints at least once a minute), and leave RUN.frozen for the caller,
# which may boot it again (scripts/test.sh).
watch_pid=
frozen=$dir/${RUN_NAME:-$job}.frozen
rm -f "$frozen"
if [ "$job" = vfio ]; then
	(
		last=0 quiet=0
		while sleep 10; do
			why=
			if grep -q 'rcu: INFO: rcu_sched detected stalls' "$con" 2>/dev/null; then
				sleep 20 # the report's stack dumps
				why="the guest's timers stopped (RCU stall)"
			fi
			size=$(stat -c %s "$con" 2>/dev/null || echo 0)
			if [ "$size" = "$last" ]; then
				quiet=$((quiet + 10))
			else
				last=$size quiet=0
			fi
			[ $quiet -lt 300 ] || why="the guest went silent for 5 minutes"
			if [ -n "$why" ]; then
				echo "$why" >"$frozen"
				pkill -f "serial file:$con"
				break
			fi
		done
	) &
	watch_pid=$!
fi
timeout --foreground -k 10 "$timeout_s" \
	qemu-system-x86_64 -nodefaults -no-user-config -nographic -no-reboot \
	-accel tcg -cpu max -smp "${VM_SMP:-2}" -m "${VM_MEM:-2G}" \
	-machine q35,kernel-irqchip=split "${iommu_dev[@]}" \
	-netdev user,id=n0,restrict=on -device igb,netdev=n0 "${extra_dev[@]}" \
	-kernel "$OUT/bzImage" -initrd "$initrd" \
	-append "$cmdline" \
	-serial "file:$con" -monitor none </dev/null
qrc=$?
[ -z "$watch_pid" ] || kill "$watch_pid" 2>/dev/null
set -e

if [ $qrc -eq 124 ] || [ $qrc -eq 137 ]; then
	echo "error: the VM did not finish within ${timeout_s}s; its last console lines:" >&2
	tail -n 40 "$con" >&2
fi
sed -n 's/^\[[ 0-9.]*\] iommufd-res: //p' "$con" | tr -d '\r' >"$res"
if ! grep -q '^### DONE' "$res"; then
	echo "error: the VM stopped before the job finished (qemu exit $qrc); last console lines:" >&2
	tail -n 40 "$con" >&2
fi
exit 0
