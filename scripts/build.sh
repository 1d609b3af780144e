#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Build everything that is missing or out of date: host tools, the patched
# kernel, our module, the test programs and the initramfs.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

"$TOP/scripts/deps.sh"
"$TOP/scripts/kernel-src.sh"
"$TOP/scripts/build-kernel.sh"
"$TOP/scripts/build-module.sh"
"$TOP/scripts/build-tests.sh"
"$TOP/scripts/build-initramfs.sh"
log "artifacts in $OUT: bzImage, initramfs.cpio.gz, iommufd-rs.ko, tests/"
