#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Install the host tools the build and the VM need.  Idempotent: every step
# checks first and does nothing when its tool is already there.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

APT_PKGS=(clang-19 lld-19 llvm-19 libclang-19-dev flex bison bc libelf-dev
	  libssl-dev cpio kmod dwarves busybox-static libcap-dev uuid-dev
	  xz-utils rsync make gcc python3 ca-certificates)
BPO_PKGS=(qemu-system-x86)

SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo

missing() {
	local p out=()
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
			grep -q 'install ok installed' || out+=("$p")
	done
	echo "${out[@]}"
}

qemu_ok() {
	command -v qemu-system-x86_64 >/dev/null &&
		qemu-system-x86_64 -device help 2>/dev/null | grep -q '"igb"'
}

need=$(missing "${APT_PKGS[@]}")
if [ -n "$need" ] || ! qemu_ok; then
	bpo=/etc/apt/sources.list.d/iommufd-rs-bookworm-backports.sources
	if [ ! -e "$bpo" ]; then
		log "adding bookworm-backports (for QEMU 10)"
		$SUDO tee "$bpo" >/dev/null <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
	fi
	log "apt-get update"
	$SUDO apt-get update -qq
	if [ -n "$need" ]; then
		log "installing: $need"
		# shellcheck disable=SC2086
		$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends $need
	fi
	if ! qemu_ok; then
		log "installing QEMU from bookworm-backports"
		$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends -t bookworm-backports "${BPO_PKGS[@]}"
	fi
fi
qemu_ok || die "QEMU with the igb device is not available"

command -v rustup >/dev/null || die "rustup not found (a rustup Rust toolchain is required)"
if ! rustup component list --installed 2>/dev/null | grep -q '^rust-src'; then
	log "rustup component add rust-src"
	rustup component add rust-src
fi

bindgen_ok() {
	local v
	v=$(bindgen --version 2>/dev/null | awk '{print $2}') || return 1
	[ -n "$v" ] && printf '0.71.1\n%s\n' "$v" | sort -CV
}
if ! bindgen_ok; then
	log "cargo install bindgen-cli"
	cargo install --locked bindgen-cli
fi
log "host dependencies are in place"
