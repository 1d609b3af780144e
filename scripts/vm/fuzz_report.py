#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""What the fuzz job found, per module.

usage: fuzz_report.py RESULTS CONSOLE

For each module the fuzzer ran on: the operations done, the errno histogram
(the commands that succeeded least, and the whole table), the kernel splats
in the console while it ran (report.py's patterns) with the fuzzer's last
traced operations before the first one, the pins leaked, and the fuzzer's
own verdict.  Exit status 1 if any module failed.
"""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import SPLAT, parse_results  # noqa: E402


def console_sections(lines):
    """{impl: console lines from its fuzz BEGIN to END (or to the end)}"""
    out, cur = {}, None
    for line in lines:
        m = re.search(r"iommufd-res: ### (BEGIN|END) (\S+) fuzz", line)
        if m:
            cur = m.group(2) if m.group(1) == "BEGIN" else None
            if cur:
                out[cur] = []
            continue
        if cur:
            out[cur].append(line)
    return out


def main():
    results, console = sys.argv[1:3]
    sections, events = parse_results(results)
    with open(console, errors="replace") as f:
        con = console_sections(f.read().splitlines())
    failed = False
    if not any(s == "fuzz" for _, s in sections):
        print("no fuzz run in the results")
        return 1
    for (impl, suite), sec in sections.items():
        if suite != "fuzz":
            continue
        lines = sec["lines"]
        print(f"\n== fuzz on {impl}")
        for l in lines:
            if l.startswith(("# iommufd_fuzz:", "# done:", "# after closing",
                             "# mock devices", "# pinning up", "# pins over",
                             "# FAIL", "# no progress", "#   thread")):
                print(l)
        if not any(l.startswith("# done:") for l in lines):
            prog = [l for l in lines if l.startswith("# progress:")]
            print("the run did not finish" +
                  (f"; last {prog[-1][2:]}" if prog else ""))
        hist = []
        for l in lines:
            m = re.match(r"#   (\S+)\s+(\d+) ok=(\d+)(.*)", l)
            if m:
                hist.append((m.group(1), int(m.group(2)), int(m.group(3)),
                             m.group(4).strip()))
        if hist:
            calls = sum(h[1] for h in hist)
            oks = sum(h[2] for h in hist)
            print(f"errno histogram: {len(hist)} commands, {calls} calls, "
                  f"{oks} succeeded ({100.0 * oks / calls:.1f}%)")
            never = [h[0] for h in hist if h[2] == 0]
            if never:
                print(f"  never succeeded: {' '.join(never)}")
            for name, n, ok, errs in hist:
                print(f"  {name:<26}{n:>9} ok={ok:<8} {errs}")
        pins = sec["pins"]
        if len(pins) == 2:
            acq, rel = pins[1][0] - pins[0][0], pins[1][1] - pins[0][1]
            print(f"pins: {acq} acquired, {rel} released, {acq - rel} leaked")
            failed |= acq != rel
        else:
            print("pins: not measured (the run did not end)")
        splats = [i for i, l in enumerate(con.get(impl, [])) if SPLAT.search(l)]
        print(f"splats in the console: {len(splats)} line(s)")
        if splats:
            c = con[impl]
            first = splats[0]
            trace = [l for l in c[:first] if "iommufd-fuzz:" in l]
            if trace:
                print("  last traced operations before the first:")
                for l in trace[-8:]:
                    print(f"    {l}")
            for l in c[first:first + 40]:
                print(f"  {l}")
        tap = [l for l in lines if re.match(r"^(not )?ok 1 fuzz", l)]
        verdict = tap[-1] if tap else "no verdict (crashed or killed)"
        print(f"verdict: {verdict}; exit status "
              f"{'missing' if sec['rc'] is None else sec['rc']}")
        failed |= bool(splats) or not tap or tap[-1].startswith("not ok") \
            or sec["rc"] != 0
    for ev in events:
        if ev.startswith(("LOADFAIL", "UNLOADFAIL")):
            print(f"vm: {ev}")
            failed = True
    if "DONE" not in events:
        print("vm: the job did not run to the end")
        failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
