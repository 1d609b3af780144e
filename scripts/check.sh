#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Static checks: rustfmt, the module's layer and unsafe rules, clippy
# (make CLIPPY=1; and on the rust-vmm VMM program) and checkpatch on the C
# shim and the shared header.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

rc=0
log "rustfmt"
mapfile -t rs < <(cd "$TOP" && git ls-files '*.rs')
rustfmt --edition 2021 --config-path "$SRC/.rustfmt.toml" --check "${rs[@]/#/$TOP/}" || rc=1

log "layers and unsafe (scripts/check-layers.py)"
python3 "$TOP/scripts/check-layers.py" || rc=1

# On both kernels: code only the selftest uses must not hide warnings
# in the production build, and the other way round.
for f in debug prod; do
	log "clippy ($f kernel)"
	KFLAVOR=$f CLIPPY=1 "$TOP/scripts/build-module.sh" 2>&1 | tee "$CACHE/clippy-$f.log"
	if grep -qE '^(warning|error)' "$CACHE/clippy-$f.log"; then rc=1; fi
done

log "clippy (the rust-vmm VMM program)"
CARGO_TARGET_DIR="$CACHE/rust_vmm" cargo clippy --quiet --locked --release \
	--manifest-path "$TOP/tools/testing/selftests/vfio/rust_vmm/Cargo.toml" \
	-- -D warnings || rc=1

log "checkpatch (C shim)"
mapfile -t cs < <(cd "$TOP" && git ls-files 'drivers/*.c' 'drivers/*.h' 'include/*.h')
"$SRC/scripts/checkpatch.pl" --no-tree --strict --terse -f "${cs[@]/#/$TOP/}" || rc=1
exit $rc
