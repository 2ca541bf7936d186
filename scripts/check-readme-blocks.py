#!/usr/bin/env python3
"""Every fenced code block of the texts as they were still has a home in the tree.

Usage: scripts/check-readme-blocks.py [COMMIT[:PATH] ...]

Extracts each fenced code block (```...```) of each PATH at its COMMIT (PATH defaults to
README.md) and looks for its text, whitespace-normalised, in the working tree's *.md, src/**,
fake/** and examples/** (markdown and Rust files; in Rust files `//!` and `///` doc prefixes are
stripped first). Prints each block that has no home and exits 1 if any.

Without arguments (as .ci/run runs it) it checks the texts that were restructured: the README
(1,736 lines) as it was before it became a map (BEFORE_MAP), and the README, every guide of
src/guides/ and the module docs (`//!`) of every module that includes one, as they were before
those module docs were merged into the guides (BEFORE_MERGE). When a
block is changed on purpose, the old text has no home any more: move these commits forward (to
one where the new text is) in the same change, so the check keeps guarding every other block.
"""
import glob
import os
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
    files += glob.glob("examples/**/*", recursive=True)
    for path in files:
        if not (path.endswith(".md") or path.endswith(".rs")):
            continue
        text = open(path, encoding="utf-8").read()
        if path.endswith(".rs"):
            text = "\n".join(re.sub(r"^\s*//[/!] ?", "", line) for line in text.split("\n"))
        parts.append(norm(text))
    return "\n".join(parts)


# The README just before it became a map (the merge of branch 'readme' has it as first parent).
BEFORE_MAP = "3e1d5af45da3dc5bdf931c825421bb2b904054de"
# The README and the guides before the modules' own docs were merged into the guides.
BEFORE_MERGE = "bea5c4a38164a236852333cf92243bfdc4716526"


def git(*args):
    return subprocess.run(["git", *args], check=True, capture_output=True, text=True).stdout


def defaults():
    guides = git("ls-tree", "--name-only", BEFORE_MERGE, "src/guides/").split()
    sources = git("ls-tree", "-r", "--name-only", BEFORE_MERGE, "src/").split()
    modules = [m for m in sources if m.endswith(".rs") and "guides/" in git("show", f"{BEFORE_MERGE}:{m}")]
    return [f"{BEFORE_MAP}:README.md", f"{BEFORE_MERGE}:README.md"] + [f"{BEFORE_MERGE}:{p}" for p in guides + modules]


def module_docs(text):
    """The `//!` lines of a Rust file, without their prefix: its module docs as markdown."""
    return "\n".join(re.sub(r"^\s*//! ?", "", line) for line in text.split("\n") if line.lstrip().startswith("//!"))


def main():
    os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    texts = [a if ":" in a else f"{a}:README.md" for a in sys.argv[1:]] or defaults()
    hay = haystack()
    failed = 0
    for text in texts:
        old = git("show", text)
        found = blocks(module_docs(old) if text.endswith(".rs") else old)
        lost = [b for b in found if norm(b) not in hay]
        for b in lost:
            print(f"no home for this block of {text}:\n{b}\n---")
        print(f"{len(found) - len(lost)} of {len(found)} code blocks of {text} have a home")
        failed += len(lost)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
