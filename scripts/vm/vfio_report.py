#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""The VFIO job's report: the upstream VFIO selftests per program, per
virtual IOMMU and per implementation, side by side.

usage: vfio_report.py [--gate] LABEL=RESULTS:CONSOLE ...

Each LABEL (the virtual IOMMU: intel, amd) names one VM run of the vfio job
(scripts/vm/init): its results file and its console.  A cell is
pass/fail/skip of the program's tests; LOADFAIL when that implementation
could not bring up vfio-pci (the reason follows the table); SKIP when the
program skipped as a whole (say, no SR-IOV); "-" when it did not run.

After each program the harness records the pinned-page counters (every
page pinned during the program must be released by its end) and whether
pinning exactly up to RLIMIT_MEMLOCK still works (no locked memory left
charged); the report lists every program where either did not return to
its start, and every kernel splat.

--gate: exit non-zero unless, on every run, ours (rs) passes every test the
C module passes, fails none, and leaves no pin, charge or splat behind.
Without it the report always exits 0.
"""
import os
import re
import sys
from collections import OrderedDict, defaultdict

sys.dont_write_bytecode = True  # no __pycache__ in the repository
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import SPLAT, parse_results, parse_tap  # noqa: E402

# The programs, in the order the job runs them, by the name the job gives
# their sections (vfio_NAME, from /tests/vfio_NAME_test; real_device,
# real_group, rust_vmm, qemu and noiommu are ours: /tests/iommufd_real_{device,group},
# /tests/rust_vmm_iommufd, /tests/qemu_iommufd.sh, and the no-IOMMU run's
# /tests/iommufd_noiommu).
PROGRAMS = ("real_device", "real_group", "iommufd_setup", "pci_device", "dma_mapping", "dma_mapping_mmio",
            "pci_driver", "pci_device_init_perf", "pci_sriov_uapi", "rust_vmm", "qemu",
            "noiommu")
IMPLS = ("rs", "c")
STAMP = re.compile(r"^\[\s*(\d+\.\d+)\] iommufd-res: ### (BEGIN|END) (\S+) (\S+)")


def load_run(label, results, console):
    sections, events = parse_results(results)
    # What the modules that did not load missed (the job prints modprobe's
    # complaints and the kernel's "Unknown symbol" lines before LOADFAIL).
    missing = []
    with open(results, errors="replace") as f:
        for line in f:
            m = re.search(r"(\S+): Unknown symbol (\S+)", line)
            if m and m.group(2) not in missing:
                missing.append(m.group(2))
    with open(console, errors="replace") as f:
        con = f.read().splitlines()
    # Seconds each section took, from the console's timestamps.
    begin, secs = {}, {}
    for line in con:
        m = STAMP.match(line)
        if not m:
            continue
        key = (m.group(3), m.group(4))
        if m.group(2) == "BEGIN":
            begin[key] = float(m.group(1))
        elif key in begin:
            secs[key] = float(m.group(1)) - begin[key]
    # Splats, with the implementation whose section they fell in.
    splats, cur = [], None
    for line in con:
        m = re.search(r"iommufd-res: ### (BEGIN|END) (\S+) (\S+)", line)
        if m:
            cur = (m.group(2), m.group(3)) if m.group(1) == "BEGIN" else None
            continue
        if SPLAT.search(line):
            splats.append((cur, line))
    boot = None
    for line in con:
        m = re.match(r"^\[\s*(\d+\.\d+)\] ", line)
        if m:
            boot = float(m.group(1))
    return {"label": label, "sections": sections, "events": events,
            "secs": secs, "splats": splats, "missing": missing, "last_stamp": boot,
            "done": "DONE" in events}


def loadfail(run, impl):
    for ev in run["events"]:
        if ev.startswith("LOADFAIL"):
            parts = ev.split()
            if len(parts) > 1 and parts[1] == impl:
                return " ".join(parts[2:]) or "load"
    return None


def cell(run, impl, prog):
    """(text, counts or None)"""
    sec = run["sections"].get((impl, f"vfio_{prog}"))
    if sec is None:
        return ("LOADFAIL" if loadfail(run, impl) else "-"), None
    res = parse_tap(sec["lines"])
    c = defaultdict(int)
    for v in res.values():
        c[v] += 1
    if not res:
        # A program that skips as a whole (ksft_exit_skip: "1..0 # SKIP").
        if sec["rc"] == 4:
            return "SKIP", c
        return f"rc={sec['rc']}", c
    text = f"{c['pass']}/{c['fail']}/{c['skip']}"
    if sec["rc"] is None:
        text += " (cut)"
    return text, c


def main():
    args = sys.argv[1:]
    gate = "--gate" in args
    runs = []
    for a in args:
        if a.startswith("--"):
            continue
        label, _, files = a.partition("=")
        results, _, console = files.partition(":")
        runs.append(load_run(label, results, console))

    cols = [(r, i) for r in runs for i in IMPLS]
    w = 16
    print("\n== VFIO selftests on igb through vfio-pci: pass/fail/skip per program")
    print(f"{'program':<22}" + "".join(f"{r['label'] + '/' + i:>{w}}" for r, i in cols))
    totals = {(r["label"], i): defaultdict(int) for r, i in cols}
    for prog in PROGRAMS:
        row = f"{prog:<22}"
        for r, i in cols:
            text, c = cell(r, i, prog)
            for k, v in (c or {}).items():
                totals[(r["label"], i)][k] += v
            row += f"{text:>{w}}"
        print(row)
    row = f"{'total':<22}"
    for r, i in cols:
        t = totals[(r["label"], i)]
        row += f"{t['pass']}/{t['fail']}/{t['skip']}".rjust(w)
    print(row)

    print("\n== seconds per program")
    print(f"{'program':<22}" + "".join(f"{r['label'] + '/' + i:>{w}}" for r, i in cols))
    for prog in PROGRAMS:
        row = f"{prog:<22}"
        for r, i in cols:
            s = r["secs"].get((i, f"vfio_{prog}"))
            row += (f"{s:.1f}" if s is not None else "-").rjust(w)
        print(row)
    # vfio_timing (VFIO_TIMING=1): the steps of vfio_pci_driver_test.
    steps = OrderedDict()
    for r in runs:
        for i in IMPLS:
            sec = r["sections"].get((i, "vfio_timing"))
            for line in sec["lines"] if sec else ():
                m = re.match(r"^timing (\S+) (\S+) ([0-9.]+)$", line)
                if m:
                    col = f"{r['label']}/{i}/{m.group(1)}"
                    steps.setdefault(m.group(2), {})[col] = float(m.group(3))
    if steps:
        tcols = list(OrderedDict.fromkeys(c for v in steps.values() for c in v))
        print("\n== seconds per step of vfio_pci_driver_test (vfio_timing)")
        print(f"{'step':<22}" + "".join(f"{c:>28}" for c in tcols))
        for st, v in steps.items():
            print(f"{st:<22}" + "".join(
                (f"{v[c]:.2f}" if c in v else "-").rjust(28) for c in tcols))
    for r in runs:
        if r["last_stamp"] is not None:
            print(f"  {r['label']}: the VM ran {r['last_stamp']:.0f} s (guest clock)")

    problems = []
    print("\n== harness checks")
    for r in runs:
        lab = r["label"]
        if not r["done"]:
            problems.append(f"{lab}: the VM stopped before the job finished")
        for i in IMPLS:
            why = loadfail(r, i)
            if why and r["missing"]:
                why += (f": vfio.ko misses {len(r['missing'])} symbols of iommufd "
                        f"({', '.join(r['missing'][:3])}, ...)")
            if why:
                problems.append(f"{lab}/{i}: LOADFAIL ({why})")
        for ev in r["events"]:
            if ev.startswith("UNLOADFAIL"):
                problems.append(f"{lab}: {ev.lower()}")
        for (impl, suite), sec in r["sections"].items():
            if not suite.startswith("vfio_"):
                continue
            pins = sec["pins"]
            if len(pins) == 2:
                left = (pins[1][0] - pins[0][0]) - (pins[1][1] - pins[0][1])
                if left:
                    problems.append(f"{lab}/{impl}: {suite} left {left} page pin(s) "
                                    "not released")
            else:
                problems.append(f"{lab}/{impl}: {suite}: pin counters missing")
            lk = [l for l in sec["lines"] if l.startswith("locked_check")]
            if not lk:
                problems.append(f"{lab}/{impl}: {suite}: no locked-memory check")
            elif lk[-1] not in ("locked_check rc=0", "locked_check skip"):
                problems.append(f"{lab}/{impl}: after {suite}, pinning up to "
                                "RLIMIT_MEMLOCK fails (locked memory left charged): "
                                + lk[-1])
                for l in sec["lines"]:
                    if l.startswith("# locked_check:"):
                        print(f"  {l}")
        for where, line in r["splats"]:
            who = f"{where[0]} {where[1]}" if where else "outside the programs"
            problems.append(f"{lab}: splat ({who}): {line.strip()}")
    for p in problems:
        print(f"  {p}")
    if not [p for p in problems if "LOADFAIL" not in p]:
        print("  every program that ran gave back its pins and charges; no splat")

    if not gate:
        return 0
    bad = []
    for r in runs:
        for prog in PROGRAMS:
            sec_c = r["sections"].get(("c", f"vfio_{prog}"))
            sec_rs = r["sections"].get(("rs", f"vfio_{prog}"))
            c_res = parse_tap(sec_c["lines"]) if sec_c else {}
            rs_res = parse_tap(sec_rs["lines"]) if sec_rs else {}
            for t, v in rs_res.items():
                if v == "fail":
                    bad.append(f"{r['label']}: {t} fails on rs")
            for t, v in c_res.items():
                if v == "pass" and rs_res.get(t) != "pass":
                    bad.append(f"{r['label']}: {t} passes on c, "
                               f"{rs_res.get(t, 'missing')} on rs")
    bad += [p for p in problems if "/c:" not in p and "(c " not in p]
    passed = 0
    for r in runs:
        for prog in PROGRAMS:
            sec_rs = r["sections"].get(("rs", f"vfio_{prog}"))
            rs_res = parse_tap(sec_rs["lines"]) if sec_rs else {}
            passed += sum(1 for v in rs_res.values() if v == "pass")
    print("\n== gate (ours: every test passed, and each of these counts as one failure)")
    for b in bad:
        print(f"FAIL  {b}")
    # The verdict line scripts/test.sh adds up.
    print(f"{passed} passed, {len(bad)} failed")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
