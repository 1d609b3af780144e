#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Apply our kernel patches, configure from the fragment and build the kernel,
# its modules and the uAPI headers.  Incremental: make decides what to redo.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

"$TOP/scripts/patch-kernel.sh"

frags=("$TOP/scripts/kconfig/iommufd-vm.config" "$TOP/scripts/kconfig/$KFLAVOR.config")
mkdir -p "$KOBJ"
# Regenerate .config only when a fragment changed: rewriting it for
# nothing would cost a full rebuild.
want=$(cat "${frags[@]}" | sha256sum | cut -d" " -f1)
if [ ! -f "$KOBJ/.config" ] || [ "$(cat "$KOBJ/.config.frag" 2>/dev/null)" != "$want" ]; then
	log "configuring the $KFLAVOR kernel (tinyconfig + iommufd-vm.config + $KFLAVOR.config)"
	rm -f "$KOBJ/.config.frag"
	kmake -s tinyconfig >/dev/null
	KCONFIG_CONFIG=$KOBJ/.config "$SRC/scripts/kconfig/merge_config.sh" \
		-m -O "$KOBJ" "$KOBJ/.config" "${frags[@]}" >/dev/null
	kmake -s olddefconfig
	# A fragment line that did not survive olddefconfig is a broken build
	# environment, not something to notice later in the VM.
	bad=0
	while IFS= read -r line; do
		case "$line" in
		CONFIG_*=*) grep -qxF "$line" "$KOBJ/.config" ;;
		"# CONFIG_"*" is not set")
			opt=${line#\# }
			! grep -q "^${opt%% *}=" "$KOBJ/.config" ;;
		*) continue ;;
		esac || { echo "config: $line did not take effect" >&2; bad=1; }
	done < <(cat "${frags[@]}")
	[ $bad -eq 0 ] || die "kernel configuration is incomplete (see above)"
	echo "$want" >"$KOBJ/.config.frag"
fi

log "building the $KFLAVOR kernel and modules (-j$JOBS)"
kmake bzImage modules
# The uAPI headers are the same for every flavor; the debug build installs
# them (rewriting them would rebuild every test program).
if [ "$KFLAVOR" = debug ] || [ ! -d "$HDRS/include" ]; then
	kmake -s headers_install INSTALL_HDR_PATH="$HDRS" >/dev/null
fi
mkdir -p "$OUT"
cp "$KOBJ/arch/x86/boot/bzImage" "$OUT/bzImage"
