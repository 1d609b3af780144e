#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Build the test programs as static binaries into $TESTS_OUT:
#   - the upstream selftests tools/testing/selftests/{iommu,vfio} of the
#     kernel tree we build against;
#   - our own selftests (tools/testing/selftests/iommu) and the demo;
#   - our VFIO programs (tools/testing/selftests/vfio), the rust-vmm one
#     included.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

[ -d "$HDRS/include" ] || die "kernel headers are not installed yet (run scripts/build-kernel.sh)"
T=$TESTS_OUT
mkdir -p "$T" "$CACHE/selftests/iommu" "$CACHE/selftests/vfio"
khdr="-isystem $HDRS/include"

log "building the upstream iommu selftests"
make -s -C "$SRC/tools/testing/selftests/iommu" OUTPUT="$CACHE/selftests/iommu" \
	LDFLAGS=-static KHDR_INCLUDES="$khdr" >/dev/null
cp "$CACHE/selftests/iommu/iommufd" "$CACHE/selftests/iommu/iommufd_fail_nth" "$T/"

log "building the upstream vfio selftests"
make -s -C "$SRC/tools/testing/selftests/vfio" OUTPUT="$CACHE/selftests/vfio" \
	LDFLAGS="-static -pthread" KHDR_INCLUDES="$khdr" >/dev/null
for f in "$CACHE"/selftests/vfio/vfio_*; do
	[ -f "$f" ] && [ -x "$f" ] && cp "$f" "$T/"
done

log "building our VFIO programs (with the upstream libvfio)"
make -s -C "$TOP/tools/testing/selftests/vfio" OUTPUT="$T" \
	SELFTESTS="$SRC/tools/testing/selftests" LIBVFIO="$CACHE/selftests/vfio/libvfio" \
	KHDR_INCLUDES="$khdr"

# A VMM on the rust-vmm crates (vfio-ioctls, iommufd-ioctls, vm-memory), the
# versions Cargo.lock pins; static, as everything in the initramfs.
log "building the rust-vmm VMM program (tools/testing/selftests/vfio/rust_vmm)"
CARGO_TARGET_DIR="$CACHE/rust_vmm" RUSTFLAGS="-C target-feature=+crt-static" \
	cargo build --quiet --locked --release --target x86_64-unknown-linux-gnu \
	--manifest-path "$TOP/tools/testing/selftests/vfio/rust_vmm/Cargo.toml"
cp "$CACHE/rust_vmm/x86_64-unknown-linux-gnu/release/rust_vmm_iommufd" "$T/"

log "building our selftests and the demo"
make -s -C "$TOP/tools/testing/selftests/iommu" OUTPUT="$T" \
	SELFTESTS="$SRC/tools/testing/selftests" KHDR_INCLUDES="$khdr"
