#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Build everything that is missing or out of date: host tools, the patched
# kernel, our module, the test programs and the initramfs.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

"$TOP/scripts/deps.sh"
# NO_KERNEL=1: take the kernel as built (a faster loop for module and test
# work, or a second work tree sharing the kernel's cache directories).
if [ -z "${NO_KERNEL:-}" ]; then
	"$TOP/scripts/kernel-src.sh"
	"$TOP/scripts/build-kernel.sh"
fi
"$TOP/scripts/build-module.sh"
"$TOP/scripts/build-tests.sh"
"$TOP/scripts/build-initramfs.sh"
log "artifacts in $OUT: bzImage, initramfs.cpio.gz, iommufd-rs.ko; tests in $TESTS_OUT"
