#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The host's QEMU (10, from bookworm-backports) as a second initramfs archive
# for the VFIO job: the binary, the libraries it links, the firmware a q35
# machine loads.  The guest runs it as a VMM would (QEMU's iommufd backend,
# -object iommufd, a vfio-pci device), under TCG (no KVM in a TCG guest).
# The kernel unpacks concatenated archives, so run.sh appends this one to
# the flavor's initramfs.  Rebuilt only when the QEMU binary changes.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

qemu=$(command -v qemu-system-x86_64) || die "qemu-system-x86_64 is not installed (scripts/deps.sh)"
out=$CACHE/out/qemu.cpio.gz
stamp=$CACHE/out/qemu.cpio.stamp
want="$(stat -c '%s %Y' "$qemu")"
if [ -f "$out" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
	exit 0
fi
root=$CACHE/initramfs-qemu
rm -rf "$root"
mkdir -p "$root/usr/bin"
cp -L "$qemu" "$root/usr/bin/qemu-system-x86_64"
# The libraries, at the paths the loader finds them (the guest has no
# ld.so.cache: keep the paths ldd resolved).
ldd "$qemu" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' |
	while read -r lib; do
		install -D -m 755 "$(readlink -f "$lib")" "$root$lib"
	done
for f in /usr/share/seabios/bios-256k.bin /usr/share/qemu/kvmvapic.bin \
	/usr/share/qemu/linuxboot_dma.bin; do
	install -D -m 644 "$(readlink -f "$f")" "$root$f"
done
mkdir -p "$CACHE/out"
(cd "$root" && find . -print0 | cpio --null -o -H newc --quiet) | gzip -1 >"$out"
echo "$want" >"$stamp"
log "QEMU archive for the guest: $out ($(du -h "$out" | cut -f1))"
