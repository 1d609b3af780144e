#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Build our iommufd.ko out of tree against the patched kernel.  Objects go to
# $MOD_OUT (kbuild's MO=), never into the repository.
#   CLIPPY=1   also run clippy on the Rust crate
set -euo pipefail
. "$(dirname "$0")/lib.sh"

[ -f "$KOBJ/Module.symvers" ] || die "the kernel is not built yet (run scripts/build-kernel.sh)"
mkdir -p "$MOD_OUT"
log "building iommufd.ko (Rust)"
kmake M="$TOP" MO="$MOD_OUT" ${CLIPPY:+CLIPPY=1} modules
mkdir -p "$OUT"
cp "$MOD_OUT/drivers/iommu/iommufd/iommufd.ko" "$OUT/iommufd-rs.ko"
