#!/usr/bin/env python3
"""Checks an `strace -f -o TRACE` of pagesync against the unit's SystemCallFilter=.

usage: check-syscalls.py UNIT TRACE

The project's machines do not run systemd, so the unit's seccomp filter is never
applied there; this reads what the filter allows (the groups expanded by
`systemd-analyze syscall-filter`) and fails, naming them, if the traced daemon made
a system call outside it. Used by .ci/package.
"""
import functools
import re
import subprocess
import sys


@functools.lru_cache(maxsize=None)
def expand(item):
    """The system calls of `@group` (nested groups included), or {item} for a name."""
    if not item.startswith("@"):
        return frozenset([item])
    out = subprocess.run(
        ["systemd-analyze", "syscall-filter", "--no-pager", item],
        capture_output=True, text=True, check=True,
    ).stdout
    calls = set()
    for line in out.splitlines()[1:]:
        word = line.strip()
        if word and not word.startswith("#"):
            calls |= expand(word)
    return frozenset(calls)


def main(unit_path, trace_path):
    allowed, denied = set(), set()
    with open(unit_path, encoding="utf-8") as unit:
        for line in unit:
            if not line.startswith("SystemCallFilter="):
                continue
            value = line.split("=", 1)[1].strip()
            target = allowed
            if value.startswith("~"):
                target, value = denied, value[1:]
            for item in value.split():
                target |= expand(item.split(":")[0])
    if not allowed:
        sys.exit(f"{unit_path}: no SystemCallFilter= allow list")
    permitted = allowed - denied

    made = {}
    call = re.compile(r"^(?:\[pid\s+)?\d+\]?\s+([a-z_0-9]+)\(")
    with open(trace_path, encoding="utf-8", errors="replace") as trace:
        for line in trace:
            match = call.match(line)
            if match:
                made[match.group(1)] = made.get(match.group(1), 0) + 1
    if not made:
        sys.exit(f"{trace_path}: no system calls found")
    outside = sorted(set(made) - permitted)
    print(f"  {len(made)} distinct system calls, {sum(made.values())} calls in all")
    if outside:
        sys.exit("outside the unit's SystemCallFilter=: " + ", ".join(f"{c} ({made[c]}x)" for c in outside))
    print("  every one is allowed by the unit's SystemCallFilter=")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
