#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Micro-benchmarks of our module and the stock C one in the same VM run
# (tools/testing/selftests/iommu/iommufd_bench.c): ns per operation, side by
# side.  A report; under TCG only the ratio in one run means something.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

"$TOP/scripts/build.sh"
"$TOP/scripts/vm/run.sh" bench
python3 - "$VM_DIR/bench.results" <<'PY'
import re, sys
res, impl = {}, None
for line in open(sys.argv[1]):
    m = re.match(r"### BEGIN (\S+) bench", line)
    if m:
        impl = m.group(1)
    m = re.match(r"bench (\S+) (\d+) (\d+)", line)
    if m and impl:
        res.setdefault(m.group(1), {})[impl] = int(m.group(2))
if not res:
    sys.exit("no benchmark result (see the VM console log)")
print(f"\n{'benchmark':<26}{'rs ns/op':>12}{'c ns/op':>12}{'rs/c':>8}")
for name, v in res.items():
    rs, c = v.get("rs"), v.get("c")
    ratio = f"{rs / c:.2f}" if rs and c else "-"
    print(f"{name:<26}{rs if rs is not None else '-':>12}{c if c is not None else '-':>12}{ratio:>8}")
PY
