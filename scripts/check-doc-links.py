#!/usr/bin/env python3
"""Every relative link of the repository's texts leads somewhere.

Usage: scripts/check-doc-links.py [FILE.md ...]
(default: README.md, CONTRIBUTING.md, BENCHMARKS.md, FUZZING.md, fake/README.md, src/guides/*.md)

Reads the inline links (`[text](target)`, images too) and the reference definitions
(`[name]: target`) of each file, outside fenced code blocks and code spans. A target with a
scheme (`https:`, `mailto:`) or a Rust path (`crate::x`, which rustdoc resolves) is skipped. Any
other target must name a file or directory that exists, relative to the file that links it; a
`#anchor` (alone, or after a markdown file) must be the GitHub anchor of one of that file's
headings. A reference link (`[text][name]`) must have its definition in the same file. Prints each broken link with its file and line, and exits 1 if there is any.
"""
import glob
import os
import re
import sys
import unicodedata

DEFAULT = ["README.md", "CONTRIBUTING.md", "BENCHMARKS.md", "FUZZING.md", "fake/README.md"]

FENCE = re.compile(r"^\s*(```+|~~~+)")
INLINE = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^()\s>]*(?:\([^()\s]*\))?[^()\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REFDEF = re.compile(r"^\s{0,3}\[([^\]]+)\]:\s*<?(\S+?)>?(?:\s+.*)?$")
FULL_REF = re.compile(r"\]\[([^\]]+)\]")
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")


def lines_outside_code(text):
    """(line number, line) for each line outside fenced code blocks, code spans blanked."""
    fence = None
    for number, line in enumerate(text.split("\n"), 1):
        m = FENCE.match(line)
        if fence is None:
            if m:
                fence = m.group(1)[0] * 3
                continue
            yield number, CODE_SPAN.sub(lambda s: " " * len(s.group(0)), line)
        elif m and line.strip().startswith(fence) and line.strip().strip(fence[0]) == "":
            fence = None


def slug(heading):
    """GitHub's anchor for a heading: its text, lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    text = re.sub(r"<[^>]+>", "", text).lower()
    out = []
    for ch in text:
        if ch in "-_" or ch.isalnum() or unicodedata.category(ch).startswith("M"):
            out.append(ch)
        elif ch == " ":
            out.append("-")
    return "".join(out)


def anchors(path, cache={}):
    if path not in cache:
        seen, found = {}, set()
        text = open(path, encoding="utf-8").read()
        fence = None
        for line in text.split("\n"):
            m = FENCE.match(line)
            if fence is None and m:
                fence = m.group(1)[0] * 3
                continue
            if fence is not None:
                if m and line.strip().startswith(fence) and line.strip().strip(fence[0]) == "":
                    fence = None
                continue
            h = HEADING.match(line)
            if h:
                base = slug(h.group(2))
                n = seen.get(base, 0)
                seen[base] = n + 1
                found.add(base if n == 0 else f"{base}-{n}")
        cache[path] = found
    return cache[path]


def check(path):
    """The broken links of one file, and how many relative links it has."""
    broken, checked = [], 0
    text = open(path, encoding="utf-8").read()
    lines = list(lines_outside_code(text))
    defined = {m.group(1).lower() for _, line in lines for m in [REFDEF.match(line)] if m}
    for number, line in lines:
        targets = [m.group(1) for m in INLINE.finditer(line)]
        d = REFDEF.match(line)
        if d:
            targets.append(d.group(2))
        for m in FULL_REF.finditer(line):
            if m.group(1).lower() not in defined:
                broken.append(f"{path}:{number}: `[{m.group(1)}]`: no such link definition in {path}")
        for target in targets:
            if not target or re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:(?!:)", target) or "::" in target:
                continue
            checked += 1
            file_part, _, anchor = target.partition("#")
            dest = os.path.normpath(os.path.join(os.path.dirname(path), file_part)) if file_part else path
            if not os.path.exists(dest):
                broken.append(f"{path}:{number}: `{target}`: no file {dest}")
            elif anchor and dest.endswith(".md") and anchor not in anchors(dest):
                broken.append(f"{path}:{number}: `{target}`: no heading of {dest} has the anchor #{anchor}")
    return broken, checked


def main():
    os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    files = sys.argv[1:] or DEFAULT + sorted(glob.glob("src/guides/*.md"))
    results = [check(f) for f in files]
    broken = [b for found, _ in results for b in found]
    for b in broken:
        print(b)
    checked = sum(n for _, n in results)
    print(f"{len(files)} files, {checked} relative links: {len(broken)} broken")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
