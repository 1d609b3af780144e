# SPDX-License-Identifier: GPL-2.0
#
# iommufd in Rust.  Everything generated lives outside the repository, in
# $(IOMMUFD_CACHE) (default ~/.cache/iommufd-rs); see README.md.
#
#   make run       build what is missing, boot the VM, show the Rust module working
#   make test      build what is missing, run all tests in the VM, print the verdict
#   make conformance  the upstream selftests on both modules, per fixture (no gate)
#   make test-vfio the upstream VFIO selftests on the igb device (a report)
#   make bench     micro-benchmarks, ours beside the stock C module
#   make fuzz      the /dev/iommu fuzzer on each module (OPS= SEED= THREADS=
#                  DURATION= MEMLOCK= FUZZ_ARGS=; see scripts/fuzz.sh)
#   make install   put our iommufd.ko where modprobe prefers it (updates/)
#   make uninstall take it out again: modprobe loads the C module
#   make all       build only
#   make check     rustfmt, clippy and checkpatch
#
# Variables: KERNEL_SRC=<7.3 tree>  IMPL=rs|c|both  IOMMU=intel|amd  JOBS=N
#            KFLAVOR=debug|prod|rel  NO_KERNEL=1 (use the kernel as built)
# (kbuild reads Kbuild, not this file, when it builds the module.)

SHELL := /bin/bash
S := scripts

all:
	@$(S)/build.sh
run:
	@$(S)/demo.sh
test:
	@$(S)/test.sh
deps:
	@$(S)/deps.sh
kernel:
	@$(S)/kernel-src.sh && $(S)/build-kernel.sh
module:
	@$(S)/build-module.sh
tests:
	@$(S)/build-tests.sh
initramfs:
	@$(S)/build-initramfs.sh
check:
	@$(S)/check.sh
conformance:
	@$(S)/test.sh --no-gate
test-vfio:
	@$(S)/test-vfio.sh
bench:
	@$(S)/bench.sh
fuzz:
	@$(S)/fuzz.sh
install:
	@$(S)/install.sh
uninstall:
	@$(S)/install.sh --remove
vm-test:
	@$(S)/vm/run.sh test
clean:
	@. $(S)/lib.sh && rm -rf "$$MOD_OUT" "$$OUT" "$$CACHE/initramfs-$$KFLAVOR" "$$VM_DIR"
distclean:
	@. $(S)/lib.sh && rm -rf "$$CACHE"

.PHONY: all run test conformance test-vfio bench fuzz deps kernel module tests initramfs check install uninstall vm-test clean distclean
