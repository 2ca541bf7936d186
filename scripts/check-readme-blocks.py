#!/usr/bin/env python3
"""Every fenced code block of the texts as they were still has a home in the tree.

Usage: scripts/check-readme-blocks.py [COMMIT[:PATH] ...]

Extracts each fenced code block (```...```) of each PATH at its COMMIT (PATH defaults to
README.md) and looks for its text, whitespace-normalised, in the working tree's *.md, src/**,
fake/** and examples/** (markdown and Rust files; in Rust files `//!` and `///` doc prefixes are
stripped first). Prints each block that has no home and exits 1 if any.

Without arguments (as .ci/run runs it) it checks the texts that were restructured: the README
(1,736 lines) as it was before it became a map (BEFORE_MAP), and the README and every guide of
src/guides/ as they were before the modules' own docs were merged into them (BEFORE_MERGE). A
Rust file's module docs (`//!`) can be checked too: `scripts/check-readme-blocks.py
COMMIT:src/links.rs`. When a
block is changed on purpose, the old text has no home any more: move these commits forward (to
one where the new text is), or name the changed line in CHANGED (a block that a fuller one replaced in SUPERSEDED), in the
same change, so the
check keeps guarding every other block.
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


# Lines of old blocks changed on purpose, each with its replacement and why: a block counts as
# having a home when it does with these lines replaced. Nothing else may differ.
CHANGED = [
    # The crates are not on crates.io: depend on them by path, as the README's "Add it" says.
    (
        'lead-intake = { version = "0.1", features = ["redis"] }',
        'lead-intake = { path = "../lead-intake", features = ["redis"] }',
    ),
    (
        'lead-intake = { version = "0.1", features = ["redis-tls"] }',
        'lead-intake = { path = "../lead-intake", features = ["redis-tls"] }',
    ),
    (
        'lead-intake = { git = "https://example.invalid/lead-intake" }',
        'lead-intake = { path = "../lead-intake" }',
    ),
    (
        'lead-intake-fake = { git = "https://example.invalid/lead-intake" } # not on crates.io yet',
        'lead-intake-fake = { path = "../lead-intake/fake" } # not on crates.io yet',
    ),
]


# Old blocks that a fuller block teaching the same now stands for: (a line of the old block, a
# line of the block that replaced it, why). The old block has a home when the new line does.
SUPERSEDED = [
    # fake/README.md repeated the fake's section of the old README below its own; its blocks
    # are the fake's README's own, fuller ones.
    (
        'lead-intake-fake = { git = "https://example.invalid/lead-intake" } # not on crates.io yet',
        'lead-intake-fake = { path = "../lead-intake/fake" } # not on crates.io yet',
        "the In Rust tests block names both crates and tokio",
    ),
    (
        'curl -s -X POST localhost:8080/oauth2/access_token',
        'curl -s -X POST $fake/oauth2/access_token',
        "the Kommo's OAuth block gets a code first and refreshes too",
    ),
    (
        'curl -s localhost:8080/__admin/health',
        'curl -s $fake/__admin/health',
        "the admin API block names every endpoint",
    ),
]


def superseded(block, hay):
    text = norm(block)
    return any(norm(old) in text and norm(new) in hay for old, new, _ in SUPERSEDED)


def changed(block):
    text = norm(block)
    for old, new in CHANGED:
        text = text.replace(norm(old), norm(new))
    return text


def git(*args):
    return subprocess.run(["git", *args], check=True, capture_output=True, text=True).stdout


BASELINE_DIR = "scripts/doc-baseline"


def show(text):
    """COMMIT:PATH from git, or from the copy under scripts/doc-baseline/COMMIT/PATH when the
    clone does not hold that commit (a shallow clone: CI may make one)."""
    commit, path = text.split(":", 1)
    have = subprocess.run(["git", "cat-file", "-e", f"{commit}^{{commit}}"], capture_output=True)
    if have.returncode == 0:
        return git("show", text)
    copy = os.path.join(BASELINE_DIR, commit, path)
    if not os.path.exists(copy):
        sys.exit(f"{text}: the commit is not in this clone and {copy} does not exist")
    with open(copy) as f:
        return f.read()


def guides_at(commit):
    have = subprocess.run(["git", "cat-file", "-e", f"{commit}^{{commit}}"], capture_output=True)
    if have.returncode == 0:
        return git("ls-tree", "--name-only", commit, "src/guides/").split()
    root = os.path.join(BASELINE_DIR, commit)
    return sorted(os.path.relpath(p, root) for p in glob.glob(os.path.join(root, "src/guides/*.md")))


def defaults():
    guides = guides_at(BEFORE_MERGE)
    return [f"{BEFORE_MAP}:README.md", f"{BEFORE_MERGE}:README.md"] + [f"{BEFORE_MERGE}:{g}" for g in guides]


def module_docs(text):
    """The `//!` lines of a Rust file, without their prefix: its module docs as markdown."""
    return "\n".join(re.sub(r"^\s*//! ?", "", line) for line in text.split("\n") if line.lstrip().startswith("//!"))


def main():
    os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    texts = [a if ":" in a else f"{a}:README.md" for a in sys.argv[1:]] or defaults()
    hay = haystack()
    failed = 0
    for text in texts:
        old = show(text)
        found = blocks(module_docs(old) if text.endswith(".rs") else old)
        lost = [b for b in found if changed(b) not in hay and not superseded(b, hay)]
        for b in lost:
            print(f"no home for this block of {text}:\n{b}\n---")
        print(f"{len(found) - len(lost)} of {len(found)} code blocks of {text} have a home")
        failed += len(lost)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
