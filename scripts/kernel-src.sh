#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Provide a pristine Linux 7.3 source tree at $CACHE/linux-pristine.
#
#   KERNEL_SRC=/path/to/linux-7.3   use that tree (copied, never modified)
#   otherwise                       Debian's linux-source-7.3, whichever 7.3.x a
#                                   reachable Debian suite offers
#
# The system's apt configuration is not touched: a private source list and
# state directory under $CACHE are used for the download.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

stamp=$CACHE/linux-pristine.origin
mkdir -p "$CACHE"

tree_version() {
	local mk=$1/Makefile v p
	[ -f "$mk" ] || return 1
	v=$(sed -n 's/^VERSION = //p' "$mk" | head -1)
	p=$(sed -n 's/^PATCHLEVEL = //p' "$mk" | head -1)
	echo "$v.$p"
}

if [ -n "${KERNEL_SRC:-}" ]; then
	[ "$(tree_version "$KERNEL_SRC" || true)" = "$KVER_WANT" ] ||
		die "KERNEL_SRC=$KERNEL_SRC is not a Linux $KVER_WANT source tree"
	origin="path:$(cd "$KERNEL_SRC" && pwd)"
	if [ "$(cat "$stamp" 2>/dev/null)" != "$origin" ]; then
		log "copying $KERNEL_SRC"
		rm -rf "$PRISTINE.tmp" && mkdir -p "$PRISTINE.tmp"
		rsync -a --exclude .git "$KERNEL_SRC"/ "$PRISTINE.tmp"/
		rm -rf "$PRISTINE" && mv "$PRISTINE.tmp" "$PRISTINE"
		echo "$origin" >"$stamp"
	fi
	exit 0
fi

if [ -f "$stamp" ] && [ -f "$PRISTINE/Makefile" ]; then
	exit 0
fi

apt_dir=$CACHE/apt
mkdir -p "$apt_dir/lists/partial" "$apt_dir/archives/partial" "$apt_dir/dl"
cat >"$apt_dir/sources.list" <<'SRC'
deb http://deb.debian.org/debian trixie-backports main
deb http://deb.debian.org/debian sid main
deb http://deb.debian.org/debian forky main
deb http://deb.debian.org/debian experimental main
SRC
apt_opts=(-o Dir::Etc::SourceList="$apt_dir/sources.list"
	  -o Dir::Etc::SourceParts=/dev/null
	  -o Dir::State::Lists="$apt_dir/lists"
	  -o Dir::Cache="$apt_dir/cache"
	  -o Dir::State::Status=/dev/null
	  -o APT::Default-Release=
	  -o APT::Sandbox::User=root)
mkdir -p "$apt_dir/cache/archives/partial"

deb=$(ls "$apt_dir"/dl/linux-source-"$KVER_WANT"_*.deb 2>/dev/null | tail -1 || true)
if [ -z "$deb" ]; then
	log "looking for linux-source-$KVER_WANT in Debian's suites"
	apt-get "${apt_opts[@]}" update -qq ||
		die "apt-get update of the private Debian source list failed"
	ver=$(apt-cache "${apt_opts[@]}" madison linux-source-$KVER_WANT 2>/dev/null |
		awk -F'|' '{gsub(/ /,"",$2); print $2}' | sort -V | tail -1)
	[ -n "$ver" ] || die "no Debian suite reachable from here offers linux-source-$KVER_WANT; set KERNEL_SRC=/path/to/a/linux-$KVER_WANT/tree"
	log "downloading linux-source-$KVER_WANT $ver"
	(cd "$apt_dir/dl" && apt-get "${apt_opts[@]}" download "linux-source-$KVER_WANT=$ver") ||
		die "download of linux-source-$KVER_WANT $ver failed"
	deb=$(ls "$apt_dir"/dl/linux-source-"$KVER_WANT"_*.deb | tail -1)
fi

log "unpacking $(basename "$deb")"
rm -rf "$apt_dir/x" "$PRISTINE.tmp"
dpkg-deb -x "$deb" "$apt_dir/x"
tarball=$(ls "$apt_dir"/x/usr/src/linux-source-"$KVER_WANT"*.tar.xz | head -1)
mkdir -p "$PRISTINE.tmp"
tar -xJf "$tarball" -C "$PRISTINE.tmp" --strip-components=1
rm -rf "$apt_dir/x"
[ "$(tree_version "$PRISTINE.tmp")" = "$KVER_WANT" ] || die "$tarball is not Linux $KVER_WANT"
rm -rf "$PRISTINE" && mv "$PRISTINE.tmp" "$PRISTINE"
echo "deb:$(basename "$deb")" >"$stamp"
log "kernel source ready at $PRISTINE"
