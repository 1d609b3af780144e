#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# QEMU 10 as a VMM runs it on iommufd: `-object iommufd` and a vfio-pci
# device on it (QEMU opens /dev/iommu, binds the device's VFIO cdev, asks
# for the IOMMU's hardware info, allocates a HWPT, attaches, and maps all
# of guest RAM into the IOAS), run in this guest under TCG with the CPUs
# stopped (-S): everything a VMM sets up before its guest runs, then quit.
# TAP output; run as root with the device bound to vfio-pci.
#
#   qemu_iommufd.sh BDF
#
# Checks: QEMU comes up with the device; the device shows in its PCI tree;
# QEMU's guest RAM (256 MiB) is pinned for the device (VmPin); quit
# ends QEMU cleanly and gives every pin back.

bdf=${1:?usage: qemu_iommufd.sh BDF}
ram_mb=256
n=0
fails=0
# tap RC NAME WHAT: one TAP line, named qemu.NAME.
tap() {
	n=$((n + 1))
	if [ "$1" = 0 ]; then
		echo "ok $n qemu.$2 - $3"
	else
		echo "not ok $n qemu.$2 - $3"
		fails=$((fails + 1))
	fi
}

# Waits up to $2 seconds for the monitor's output to hold the text $1.
wait_for() {
	i=0
	while [ $i -lt "$2" ]; do
		grep -q "$1" /tmp/qemu.out 2>/dev/null && return 0
		kill -0 "$qpid" 2>/dev/null || return 1
		sleep 1
		i=$((i + 1))
	done
	return 1
}

echo "TAP version 13"
echo "1..4"
rm -f /tmp/qemu.in /tmp/qemu.out
mkfifo /tmp/qemu.in
qemu-system-x86_64 -accel tcg -machine q35 -m ${ram_mb}M -nodefaults \
	-display none -S -monitor stdio \
	-object iommufd,id=iommufd0 \
	-device "vfio-pci,host=$bdf,iommufd=iommufd0,rombar=0" \
	</tmp/qemu.in >/tmp/qemu.out 2>&1 &
qpid=$!
# Holding the monitor's input open keeps QEMU reading it.
exec 3>/tmp/qemu.in
wait_for '(qemu)' 300
tap $? starts "QEMU starts with -object iommufd and the vfio-pci device $bdf"

pin=$(awk '/^VmPin:/ { print $2 }' "/proc/$qpid/status" 2>/dev/null)
echo "# QEMU's VmPin: ${pin:-?} kB (guest RAM: $((ram_mb * 1024)) kB)"
[ "${pin:-0}" -ge $((ram_mb * 1024)) ]
tap $? guest_ram_pinned "QEMU's guest RAM is pinned for the device"

echo "info pci" >&3
wait_for 'Ethernet controller' 60
tap $? device_in_pci_tree "the device is in QEMU's PCI tree"

echo "quit" >&3
exec 3>&-
i=0
while kill -0 "$qpid" 2>/dev/null && [ $i -lt 120 ]; do
	sleep 1
	i=$((i + 1))
done
wait "$qpid"
tap $? quits "QEMU quits cleanly"
# What QEMU said of the device and of iommufd (the monitor's echo aside).
grep -iE 'error|warn|vfio|iommufd|ethernet' /tmp/qemu.out | sed 's/^/# qemu: /'

[ $fails -eq 0 ]
