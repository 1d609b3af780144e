#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Install our iommufd.ko as a drop-in for the stock C one, or switch back:
#   install.sh            build it if needed, put it in
#                         $DESTDIR/lib/modules/KVER/updates/iommufd.ko, depmod
#   install.sh --remove   take it out again, depmod: the C module is back
# KVER is the release the module is built for (the patched kernel of
# KFLAVOR, default debug), whichever kernel runs; the module's vermagic must
# match it.  The VM's initramfs is made with this script too (DESTDIR).
# modprobe prefers updates/ over the
# kernel's own tree, so `modprobe iommufd` and everything that needs it
# (vfio, vfio-pci) get ours; an already loaded iommufd stays until it is
# unloaded (rmmod vfio-pci vfio_pci_core vfio iommufd, then modprobe again).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

[ -f "$KOBJ/include/config/kernel.release" ] ||
	die "the $KFLAVOR kernel is not built yet (make kernel)"
kver=$(cat "$KOBJ/include/config/kernel.release")
dest=${DESTDIR:-}/lib/modules/$kver/updates/iommufd.ko

case "${1:-}" in
--remove)
	if [ -e "$dest" ]; then
		rm -f "$dest"
		log "removed $dest: modprobe iommufd loads the C module again"
	else
		log "nothing to remove: $dest is not there"
	fi
	;;
"")
	[ -f "$OUT/iommufd-rs.ko" ] || "$TOP/scripts/build-module.sh"
	magic=$(modinfo -F vermagic "$OUT/iommufd-rs.ko" | cut -d' ' -f1)
	[ "$magic" = "$kver" ] || die "module built for $magic, not $kver"
	if [ -z "${DESTDIR:-}" ] && [ "$(uname -r)" != "$kver" ]; then
		log "note: the running kernel is $(uname -r); installing for $kver"
	fi
	install -D -m 644 "$OUT/iommufd-rs.ko" "$dest"
	log "installed $dest (switch back: make uninstall)"
	;;
*) die "usage: install.sh [--remove]" ;;
esac
if [ -d "${DESTDIR:-}/lib/modules/$kver/kernel" ]; then
	depmod ${DESTDIR:+-b "$DESTDIR"} "$kver"
else
	log "no modules of $kver under ${DESTDIR:-/}lib/modules: depmod skipped"
fi
