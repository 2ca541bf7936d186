#!/usr/bin/env python3
"""Every path that CONTRIBUTING.md's layout table names exists.

Usage: scripts/check-layout.py [FILE.md]   (default: CONTRIBUTING.md)

Reads the table under the `## Layout` heading. In the first column every code span is a path
of the repository (a glob such as `scripts/bench-*.sh` must match something); in the second, a
code span is a path when it contains a `/` and is neither a command, a Rust path, an absolute
path nor a variable (`$OUT_DIR/...`), so `tests/common/script.rs` is checked and `cargo run
--example tour` is not. A path git ignores (`.tools/`) may be absent. Prints each path that does not exist and exits 1 if any, or if the
table is missing.
"""
import glob
import os
import re
import subprocess
import sys

SPAN = re.compile(r"`([^`]+)`")
PATHLIKE = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.*-]*(/[A-Za-z0-9_.*-]+)*/?$")


def table(text):
    rows, inside = [], False
    for number, line in enumerate(text.split("\n"), 1):
        if line.startswith("## "):
            inside = line.strip() == "## Layout"
            continue
        if inside and line.startswith("|") and not re.match(r"^\|[\s|:-]+\|$", line):
            cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
            if cells[0] != "path":
                rows.append((number, cells))
    return rows


def paths(cells):
    first = SPAN.findall(cells[0])
    rest = [
        s
        for cell in cells[1:]
        for s in SPAN.findall(cell)
        if "/" in s and PATHLIKE.match(s) and not s.startswith("/")
    ]
    return first + rest


def ignored(p):
    """A path git ignores (`.tools/`, made by the install scripts) need not exist in a clone."""
    return subprocess.run(["git", "check-ignore", "-q", p]).returncode == 0


def main():
    os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    path = sys.argv[1] if len(sys.argv) > 1 else "CONTRIBUTING.md"
    rows = table(open(path, encoding="utf-8").read())
    if not rows:
        print(f"{path}: no table under `## Layout`")
        return 1
    checked, missing = 0, []
    for number, cells in rows:
        for p in paths(cells):
            checked += 1
            if not glob.glob(p) and not ignored(p):
                missing.append(f"{path}:{number}: `{p}` does not exist")
    for m in missing:
        print(m)
    print(f"{path}: the layout table names {checked} paths in {len(rows)} rows: {len(missing)} missing")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
