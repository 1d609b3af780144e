#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Checks the module's layer rule and its unsafe boundary.

Layers: every file of drivers/iommu/iommufd/ may name (through `crate::`)
only the files listed before it in LAYERS; the crate root may name any.  The
selftest's files (selftest/) form one layer above the core; inside it they
reach each other through `super`.

Unsafe: the keyword `unsafe` appears in code only in ffi.rs.  Elsewhere the
one exception is `#[allow(unsafe_code)]` right before `#[pinned_drop]`,
whose macro writes an `unsafe impl` of its own.  The few ffi.rs functions
whose safety rests on where they are called from (RESTRICTED) are called
only from the files listed for them.

Prints each violation and exits 1 if there is one.
"""
import re
import sys
from pathlib import Path

LAYERS = [
    "ffi",          # the one boundary with C, the uAPI's byte view
    "uapi",         # uAPI structures and user copies
    "interval",     # inclusive IOVA ranges and interval maps
    "pages",        # pinned user memory, files and dma-bufs; accounting
    "object",       # the generic object table
    "group",        # IOMMU groups of bound devices, their shared attachment
    "ctx",          # a /dev/iommu context: its objects and state
    "ucmd",         # ioctl plumbing: extensible structures, tables
    "io_pagetable", # IOVA layout, areas, domains filled from pages
    "ioas",         # IOAS objects and IOMMU_IOAS_*
    "fault",        # fault queues
    "hw_pagetable", # HWPT objects, automatic HWPTs
    "device",       # bound devices and attachments
    "access",       # in-kernel accesses
    "viommu",       # vIOMMU commands
    "vfio_compat",  # the VFIO type1 container
    "selftest",     # IOMMU_TEST_CMD and the mock IOMMU (CONFIG_IOMMUFD_TEST)
]
ROOT = "iommufd_main"

# Known exceptions to the unsafe rule, each with its reason; the list only
# shrinks (it is empty).  (file, a string on the unsafe line)
UNSAFE_EXCEPTIONS = []

# Functions of ffi.rs that are safe to call only where their contract holds,
# and the files that may call them (the contract is written at each).
RESTRICTED = {
    # The mapped memory stays pinned until pages.rs unmaps it.
    "map_pinned": {"pages.rs"},
    # Called from ioctl handlers only, which hold no fdget_pos().
    "fget_for_pinning": {"ioas.rs"},
    # The mock's KUnit tests map into domains no device is ever attached to.
    "kunit_map_unattached": {"selftest/mock.rs"},
}

USE_RE = re.compile(r"\bcrate::([a-z_]+)")
UNSAFE_RE = re.compile(r"\bunsafe\b")


def code_lines(text):
    """(line number, line) with comments and string literals blanked."""
    for n, line in enumerate(text.splitlines(), 1):
        line = re.sub(r'"(\\.|[^"\\])*"', '""', line)
        line = line.split("//", 1)[0]
        yield n, line


def layer_of(rel):
    parts = rel.parts
    if parts[0] == "selftest":
        return "selftest"
    return rel.stem


def main():
    top = Path(__file__).resolve().parent.parent
    src = top / "drivers/iommu/iommufd"
    errors = []
    files = sorted(src.rglob("*.rs"))
    known = set(LAYERS) | {ROOT}
    for path in files:
        rel = path.relative_to(src)
        me = layer_of(rel)
        if me not in known:
            errors.append(f"{rel}: not in the layer list of {Path(__file__).name}")
            continue
        rank = len(LAYERS) if me == ROOT else LAYERS.index(me)
        text = path.read_text()
        lines = list(code_lines(text))
        for n, line in lines:
            for m in USE_RE.finditer(line):
                dep = m.group(1)
                if dep == me or me == ROOT:
                    continue
                if dep not in LAYERS:
                    if dep not in known:
                        errors.append(f"{rel}:{n}: crate::{dep} is not a known file")
                    elif dep == ROOT:
                        errors.append(f"{rel}:{n}: names the crate root")
                    continue
                if LAYERS.index(dep) >= rank:
                    errors.append(f"{rel}:{n}: {me} names {dep}, a layer above it")
        for n, line in lines:
            for fn, allowed in RESTRICTED.items():
                if re.search(rf"\b{fn}\b", line) and str(rel) not in allowed | {"ffi.rs"}:
                    errors.append(f"{rel}:{n}: calls ffi::{fn}, reserved to {sorted(allowed)}")
        if me == "ffi":
            continue
        excepted = [w for f, w in UNSAFE_EXCEPTIONS if f == str(rel)]
        for i, (n, line) in enumerate(lines):
            if "allow(unsafe_code)" in line:
                nxt = " ".join(l for _, l in lines[i + 1:i + 6])
                if "#[pinned_drop]" in nxt.split("{")[0]:
                    continue
                if any(w in nxt for w in excepted):
                    continue
                errors.append(f"{rel}:{n}: allow(unsafe_code) outside ffi.rs")
                continue
            if UNSAFE_RE.search(line) and not any(w in line for w in excepted):
                errors.append(f"{rel}:{n}: unsafe code outside ffi.rs")
    for e in errors:
        print(e)
    if errors:
        print(f"{len(errors)} layer or unsafe violation(s)")
        return 1
    print(f"layers: {len(files)} files, rule kept; unsafe only in ffi.rs "
          f"({len(UNSAFE_EXCEPTIONS)} exceptions); {len(RESTRICTED)} restricted "
          f"ffi functions called only where allowed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
