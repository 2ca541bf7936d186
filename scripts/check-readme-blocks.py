#!/usr/bin/env python3
"""Every fenced code block of the README at a given commit still has a home in the tree.

Usage: scripts/check-readme-blocks.py [COMMIT]   (default: HEAD)

Extracts each fenced code block (```...```) of README.md at COMMIT and looks for its text,
whitespace-normalised, in the working tree's README.md, CONTRIBUTING.md, *.md, src/** and fake/**
(markdown and Rust files; in Rust files `//!` and `///` doc prefixes are stripped first). Prints
each block that has no home and exits 1 if any; run it with the commit a README restructuring
started from to show that nothing the README taught was lost.
"""
import glob
import re
import subprocess
import sys


def blocks(text):
    out, cur, fence = [], None, None
    for line in text.split("\n"):
        if cur is None:
            m = re.match(r"^(\s*)(```+)", line)
            if m:
                cur, fence = [], m.group(2)
        elif line.strip().startswith(fence) and line.strip().strip("`") == "":
            out.append("\n".join(cur))
            cur = None
        else:
            cur.append(line)
    return out


def norm(text):
    return " ".join(text.split())


def haystack():
    parts = []
    files = glob.glob("*.md") + glob.glob("src/**/*", recursive=True) + glob.glob("fake/**/*", recursive=True)
    for path in files:
        if not (path.endswith(".md") or path.endswith(".rs")):
            continue
        text = open(path, encoding="utf-8").read()
        if path.endswith(".rs"):
            text = "\n".join(re.sub(r"^\s*//[/!] ?", "", line) for line in text.split("\n"))
        parts.append(norm(text))
    return "\n".join(parts)


def main():
    commit = sys.argv[1] if len(sys.argv) > 1 else "HEAD"
    old = subprocess.run(["git", "show", f"{commit}:README.md"], check=True, capture_output=True, text=True).stdout
    found = blocks(old)
    hay = haystack()
    lost = [b for b in found if norm(b) not in hay]
    for b in lost:
        print("no home for this block of README.md at", commit + ":\n" + b + "\n---")
    print(f"{len(found) - len(lost)} of {len(found)} code blocks of README.md at {commit} have a home")
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
