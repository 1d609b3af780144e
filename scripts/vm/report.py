#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Turn what the test VM wrote into tables, a verdict and the closing line.

usage: report.py RESULTS CONSOLE MUST_PASS

RESULTS holds the suites' TAP/KTAP output between '### BEGIN impl suite' and
'### END impl suite rc=N' markers; CONSOLE is the kernel log.

The verdict counts:
  - every test of our own suites (KUnit, our selftests) run on our module;
  - every upstream test named in MUST_PASS, run on our module;
  - the harness checks: the VM finished, both modules loaded and unloaded,
    no pinned page leaked across a suite, no kernel splat;
  - accounting_after: run last, pinning exactly up to RLIMIT_MEMLOCK still
    works, so no suite left locked memory charged to the user.
The upstream suites' full figures, ours beside the stock C module's, are
printed whatever the verdict.
"""
import re
import sys
from collections import OrderedDict, defaultdict

OURS_PROD = ("iommufd_base",)
OURS = (
    "kunit",
    "iommufd_base",
    "iommufd_pages",
    "iommufd_domain",
    "iommufd_nested",
    "iommufd_dirty",
    "iommufd_edges",
    "iommufd_race",
    "iommufd_fuzz",
    "accounting_after",
)
# Our adversarial suite asserts C's errno for hostile input; it is gated
# like the upstream suites, test by test through must-pass.txt, until ours
# passes all of it (the rest are open bugs, see the closing notes).

# Harness steps that report through their exit status, not TAP.
HARNESS = ("kmemleak",)

SPLAT = re.compile(
    r"(WARNING:|BUG:|Oops|general protection fault|Kernel panic|KASAN:|UBSAN:"
    r"|possible circular locking|possible recursive locking|inconsistent lock state"
    r"|sleeping function called from invalid context|INFO: task .* blocked"
    r"|refcount_t:|list_add corruption|list_del corruption|stack-protector"
    r"|kernel BUG at|unreferenced object)")
TAP = re.compile(r"^(\s*)(not ok|ok) \d+ (\S+)(?:\s+#\s*(\w+))?")
SUBTEST = re.compile(r"^\s*# Subtest: (\S+)")


def parse_results(path):
    sections = OrderedDict()
    events = []
    cur = None
    with open(path, errors="replace") as f:
        for raw in f:
            line = raw.rstrip("\r\n")
            m = re.match(r"^### BEGIN (\S+) (\S+)", line)
            if m:
                cur = {"impl": m.group(1), "suite": m.group(2), "lines": [],
                       "rc": None, "pins": []}
                sections[(cur["impl"], cur["suite"])] = cur
                continue
            m = re.match(r"^### END (\S+) (\S+) rc=(\d+)", line)
            if m and cur:
                cur["rc"] = int(m.group(3))
                cur = None
                continue
            if line.startswith("### "):
                events.append(line[4:])
                continue
            if cur is None:
                continue
            m = re.match(r"^pin_stats nr_foll_pin_acquired (\d+) nr_foll_pin_released (\d+)", line)
            if m:
                cur["pins"].append((int(m.group(1)), int(m.group(2))))
                continue
            cur["lines"].append(line)
    return sections, events


def parse_tap(lines, ktap=False):
    """{test name: 'pass'|'fail'|'skip'} in order."""
    out = OrderedDict()
    suite = None
    for line in lines:
        m = SUBTEST.match(line)
        if m:
            suite = m.group(1)
            continue
        m = TAP.match(line)
        if not m:
            continue
        name = m.group(3)
        if ktap:
            if name == suite or suite is None:
                continue
            name = f"{suite}.{name}"
        directive = (m.group(4) or "").upper()
        if directive == "SKIP":
            res = "skip"
        else:
            res = "pass" if m.group(2) == "ok" else "fail"
        out[name] = res
    return out


def fixture_of(test):
    return test.split(".")[0]


def main():
    results, console, must_pass_file = sys.argv[1:4]
    # --report-only: the figures, no verdict on our suites (the vfio job).
    report_only = "--report-only" in sys.argv[4:]
    # --flavor prod: the production-like kernel, without IOMMUFD_TEST: only
    # the suites that need no mock run, and a test of ours may skip there
    # (it says it needs the test ops); the must-pass list is for debug.
    prod = "--flavor=prod" in sys.argv[4:]
    # --checks-only: a second run of suites already gated (the kmemleak
    # boot): gate on the harness checks alone (leaks, pins, splats, the job
    # ending), not again on every test.
    checks_only = "--checks-only" in sys.argv[4:]
    ours = OURS_PROD if prod else OURS
    sections, events = parse_results(results)
    with open(console, errors="replace") as f:
        console_lines = f.read().splitlines()
    must_pass = []
    with open(must_pass_file) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                must_pass.append(tuple(line.split()))
    # A run of some suites only (SUITES=a,b, the kernel's iommufd.suites=):
    # the gate covers those, and says that it is partial.
    chosen = None
    for line in console_lines:
        m = re.search(r"Kernel command line:.*\biommufd\.suites=(\S+)", line)
        if m:
            chosen = set(m.group(1).split(","))
            break
    if chosen is not None:
        ours = [s for s in ours if s in chosen]
        must_pass = [(s, t) for s, t in must_pass if s in chosen]
        print(f"note: a partial run, of {','.join(sorted(chosen))}: the gate covers those")

    checks = OrderedDict()  # name -> (ok, detail)
    tests = {}
    for (impl, suite), sec in sections.items():
        tests[(impl, suite)] = parse_tap(sec["lines"], ktap=(suite == "kunit"))

    # -- per-suite summary ------------------------------------------------
    print("\n== suites")
    print(f"{'suite':<22}{'impl':<6}{'pass':>6}{'fail':>6}{'skip':>6}   exit")
    for (impl, suite), res in tests.items():
        c = defaultdict(int)
        for v in res.values():
            c[v] += 1
        rc = sections[(impl, suite)]["rc"]
        print(f"{suite:<22}{impl:<6}{c['pass']:>6}{c['fail']:>6}{c['skip']:>6}   "
              f"{'missing' if rc is None else rc}")

    # -- conformance: upstream suites, ours beside the C module ------------
    impls = sorted({impl for impl, _ in sections})
    upstream = list(OrderedDict.fromkeys(
        s for _, s in sections if s not in OURS and s not in HARNESS))
    if upstream:
        print("\n== conformance: upstream selftests, per fixture (pass/fail/skip)")
        print(f"{'suite':<28}{'fixture':<26}" + "".join(f"{i:>16}" for i in impls))
        totals = {i: defaultdict(int) for i in impls}
        for suite in upstream:
            fixtures = OrderedDict()
            for impl in impls:
                for t in tests.get((impl, suite), {}):
                    fixtures.setdefault(fixture_of(t), None)
            for fx in fixtures:
                row = f"{suite:<28}{fx:<26}"
                for impl in impls:
                    c = defaultdict(int)
                    for t, v in tests.get((impl, suite), {}).items():
                        if fixture_of(t) == fx:
                            c[v] += 1
                            totals[impl][v] += 1
                    row += f"{c['pass']}/{c['fail']}/{c['skip']}".rjust(16)
                print(row)
        row = f"{'total':<54}"
        for impl in impls:
            t = totals[impl]
            row += f"{t['pass']}/{t['fail']}/{t['skip']}".rjust(16)
        print(row)
        for impl in impls:
            t = totals[impl]
            n = t["pass"] + t["fail"] + t["skip"]
            print(f"  {impl}: {t['pass']} of {n} upstream tests pass "
                  f"({t['fail']} fail, {t['skip']} skip)")

    # -- the gate ----------------------------------------------------------
    verdict = OrderedDict()
    for suite in () if report_only else ours:
        res = tests.get(("rs", suite))
        if res is None:
            verdict[f"{suite} (suite ran)"] = False
            continue
        if not res:
            verdict[f"{suite} (no test reported)"] = False
        for t, v in res.items():
            if prod and v == "skip":
                print(f"note: {suite}: {t} skips on the prod kernel")
                continue
            verdict[f"{suite}: {t}"] = (v == "pass")
        rc = sections[("rs", suite)]["rc"]
        if suite != "kunit" and rc != 0:
            verdict[f"{suite}: exit status {rc}"] = False
    for suite in ours:
        for t, v in tests.get(("c", suite), {}).items():
            if v != "pass" and not (prod and v == "skip"):
                print(f"note: our {suite}: {t} does not pass on the C module: "
                      "it may assert something upstream does not do")
    for suite, test in () if report_only or prod else must_pass:
        v = tests.get(("rs", suite), {}).get(test, "missing")
        verdict[f"{suite}: {test} (must pass)"] = (v == "pass")

    checks["vm: the job ran to the end"] = "DONE" in events
    for (impl, suite), sec in sections.items():
        if suite not in HARNESS:
            continue
        if impl == "rs":
            checks[f"{suite}: nothing found after the suites on rs"] = sec["rc"] == 0
        elif sec["rc"] != 0:
            print(f"note: {suite} on {impl}: exit status {sec['rc']}")
    for ev in events:
        if ev.startswith(("LOADFAIL", "UNLOADFAIL")) and not report_only:
            checks[f"vm: {ev.lower()}"] = False
    for ev in events:
        if ev.startswith("LOADFAIL") and report_only:
            print(f"note: {ev}")
    for (impl, suite), sec in sections.items():
        pins = sec["pins"]
        if len(pins) == 2:
            acq = pins[1][0] - pins[0][0]
            rel = pins[1][1] - pins[0][1]
            name = f"pins: {suite} on {impl} gives back every page it pins"
            checks[name] = (acq == rel)
            if acq != rel and impl != "rs":
                # The reference implementation's numbers are informational.
                checks.pop(name)
                print(f"note: {suite} on {impl}: {acq - rel} page pin(s) not released")
    # A splat counts against us unless it happened while the stock C module
    # ran a suite; those are reported, not gated on.
    splats, c_splats, in_impl = [], [], None
    for l in console_lines:
        m = re.search(r"iommufd-res: ### (BEGIN|END) (\S+) (\S+)", l)
        if m:
            in_impl = m.group(2) if m.group(1) == "BEGIN" else None
            continue
        if SPLAT.search(l):
            (c_splats if in_impl == "c" else splats).append(l)
    checks["kernel: no splat (WARN, BUG, Oops, lockdep, ...)"] = not splats
    if c_splats:
        print(f"note: {len(c_splats)} kernel splat line(s) while the C module ran, e.g.:")
        for l in c_splats[:5]:
            print(f"  {l}")
    if checks_only:
        verdict = OrderedDict()
    verdict.update(checks)

    failed = [k for k, ok in verdict.items() if not ok]
    print("\n== gate")
    for k in failed:
        print(f"FAIL  {k}")
    if splats:
        print("kernel log lines that count as a splat:")
        for l in splats[:20]:
            print(f"  {l}")
    npass = len(verdict) - len(failed)
    print(f"\n{npass} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
