#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Make $SRC = pristine 7.3 + the project's kernel changes:
#   rust/patches/*.patch   edits to existing kernel files (applied in name order)
#   rust/**                other files: new kernel-crate files, copied in place
#
# $SRC is a hard-linked copy of the pristine tree.  Only files whose content
# changes are rewritten, so editing one patch rebuilds only what depends on the
# files it touches; files a previous patch set touched and the current one does
# not are restored to pristine.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

[ -f "$PRISTINE/Makefile" ] || "$TOP/scripts/kernel-src.sh"
if [ ! -f "$SRC/Makefile" ]; then
	log "creating the working tree $SRC"
	rm -rf "$SRC"
	# "/.": when $PRISTINE is a symlink (a cache sharing another's
	# pristine tree), `cp -al` of the link itself would make $SRC a link to
	# the pristine tree, and the patches would be written into it.
	cp -al "$PRISTINE/." "$SRC"
	rm -f "$CACHE/patches.applied"
fi

[ ! -L "$SRC" ] || die "$SRC is a symlink: patching it would change what it points to"

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
manifest=$CACHE/patches.files

# Files in the new patch set.
shopt -s nullglob
patches=("$TOP"/rust/patches/*.patch)
files=()
for p in "${patches[@]}"; do
	while IFS= read -r f; do files+=("$f"); done < <(
		sed -n 's|^+++ b/\([^[:space:]]*\).*|\1|p' "$p")
done
while IFS= read -r f; do files+=("rust/$f"); done < <(
	cd "$TOP/rust" && find . -type f ! -path './patches/*' | sed 's|^\./||')

# Start every touched file (old set and new) from its pristine content.
{ printf '%s\n' "${files[@]}"; cat "$manifest" 2>/dev/null || true; } |
	sort -u >"$stage/all"
mkdir -p "$stage/tree"
while IFS= read -r f; do
	[ -n "$f" ] || continue
	if [ -f "$PRISTINE/$f" ]; then
		mkdir -p "$stage/tree/$(dirname "$f")"
		cp "$PRISTINE/$f" "$stage/tree/$f"
	fi
done <"$stage/all"

for p in "${patches[@]}"; do
	patch -s -p1 -d "$stage/tree" --no-backup-if-mismatch <"$p" ||
		die "kernel patch $(basename "$p") does not apply to $PRISTINE"
done
(cd "$TOP/rust" && find . -type f ! -path './patches/*' -print0 |
	cpio -0 -pdm --quiet "$stage/tree/rust")

# Write back only what differs; a file no longer produced and absent from
# the pristine tree is removed.
changed=0
while IFS= read -r f; do
	[ -n "$f" ] || continue
	if [ -f "$stage/tree/$f" ]; then
		if ! cmp -s "$stage/tree/$f" "$SRC/$f"; then
			mkdir -p "$SRC/$(dirname "$f")"
			rm -f "$SRC/$f" # break the hard link to the pristine file
			cp "$stage/tree/$f" "$SRC/$f"
			changed=$((changed + 1))
		fi
	elif [ -e "$SRC/$f" ]; then
		rm -f "$SRC/$f"
		changed=$((changed + 1))
	fi
done <"$stage/all"
printf '%s\n' "${files[@]}" | sort -u >"$manifest"
cat "${patches[@]}" /dev/null | sha256sum >"$CACHE/patches.applied"
[ $changed -eq 0 ] || log "kernel tree: $changed file(s) updated from rust/"
