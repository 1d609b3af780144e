# SPDX-License-Identifier: GPL-2.0
# Common settings for the build and VM scripts.  Sourced, not executed.
#
# Every generated file lives under $CACHE (outside the repository) so that a
# fresh clone stays clean and incremental builds survive `git clean`.

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${IOMMUFD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/iommufd-rs}
KVER_WANT=7.3
# The kernel configuration: debug (the default: IOMMUFD_TEST, KASAN, lockdep,
# kmemleak, UBSAN, fault injection; the correctness suites run here), prod
# (as distributions ship it: IOMMUFD=m, no IOMMUFD_TEST, no debug options) or
# rel (IOMMUFD_TEST without any debug option: the VFIO selftests, benchmarks).
# Each has its own build directory, module and VM artifacts; the source tree,
# the uAPI headers and the test programs are shared.
KFLAVOR=${KFLAVOR:-debug}
case "$KFLAVOR" in
debug | prod | rel) ;;
*) printf 'error: KFLAVOR must be debug, prod or rel, not %s\n' "$KFLAVOR" >&2; exit 1 ;;
esac
PRISTINE=$CACHE/linux-pristine # unpacked 7.3 tree, never modified
SRC=$CACHE/linux-src         # hard-linked copy of it with our patches applied
KOBJ=$CACHE/linux-build-$KFLAVOR # O= build directory of the patched kernel
HDRS=$CACHE/headers          # headers_install output for the selftests
MOD_OUT=$CACHE/module-$KFLAVOR # out-of-tree build dir of our iommufd.ko
OUT=$CACHE/out/$KFLAVOR      # bzImage, iommufd-rs.ko, initramfs.cpio.gz
TESTS_OUT=$CACHE/out/tests   # static test programs, for every flavor
VM_DIR=$CACHE/vm/$KFLAVOR      # console logs and results of the VM runs
LLVM_SUFFIX=-19
JOBS=${JOBS:-$(( $(nproc) + 1 ))}

export PATH="$HOME/.cargo/bin:$PATH"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

kmake() {
	make -C "$SRC" O="$KOBJ" LLVM=$LLVM_SUFFIX -j"$JOBS" "$@"
}
