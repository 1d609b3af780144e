#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Pack the VM's initramfs: busybox, /init, the kernel's modules (with the stock
# C iommufd.ko), our iommufd.ko under updates/, and the test programs.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

root=$CACHE/initramfs-$KFLAVOR
rm -rf "$root"
mkdir -p "$root"/{bin,sbin,dev,proc,sys,tmp,etc,tests}

cp /bin/busybox "$root/bin/busybox"
file "$root/bin/busybox" 2>/dev/null | grep -q 'statically linked' ||
	ldd /bin/busybox 2>&1 | grep -q 'not a dynamic' ||
	die "/bin/busybox is not static (install busybox-static)"
install -m 755 "$TOP/scripts/vm/init" "$root/init"

kmake -s INSTALL_MOD_PATH="$root" INSTALL_MOD_STRIP=1 DEPMOD=true modules_install
# Ours under updates/, as `make install` puts it (modprobe prefers it).
DESTDIR=$root "$TOP/scripts/install.sh" >/dev/null

cp -a "$TESTS_OUT/." "$root/tests/"

(cd "$root" && find . -print0 | cpio --null -o -H newc --quiet) | gzip -1 >"$OUT/initramfs.cpio.gz"
log "initramfs: $OUT/initramfs.cpio.gz ($(du -h "$OUT/initramfs.cpio.gz" | cut -f1))"
