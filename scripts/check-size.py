#!/usr/bin/env python3
"""Readability limits for the Rust sources: no file over 1,200 lines and no
function over 120 lines (from its `fn` line to its closing brace).

    scripts/check-size.py [--top N] [PATH...]

With no paths it checks crates/, fuzz/ and examples/. Prints every breach
and exits 1 if there is one; `--top N` also lists the N longest functions.
"""
import re
import sys
from pathlib import Path

MAX_FILE_LINES = 1200
MAX_FN_LINES = 120
FN_START = re.compile(
    r"^\s*(pub(\([^)]*\))?\s+)?(default\s+)?(const\s+)?(async\s+)?(unsafe\s+)?"
    r"(extern\s+\"[^\"]*\"\s+)?fn\s+(\w+)")


def strip_code(line, in_block):
    """Returns the line without strings, chars and comments, and whether a
    block comment is still open at its end."""
    out = []
    i = 0
    n = len(line)
    while i < n:
        if in_block:
            end = line.find("*/", i)
            if end < 0:
                return "".join(out), True
            i = end + 2
            in_block = False
            continue
        c = line[i]
        if line.startswith("//", i):
            break
        if line.startswith("/*", i):
            in_block = True
            i += 2
            continue
        if c == '"':
            i += 1
            while i < n and line[i] != '"':
                i += 2 if line[i] == "\\" else 1
            i += 1
            continue
        if c == "'" and i + 2 < n and (line[i + 2] == "'" or line[i + 1] == "\\"):
            end = line.find("'", i + 2)
            i = end + 1 if end > 0 else n
            continue
        out.append(c)
        i += 1
    return "".join(out), in_block


def functions(path):
    """Yields (name, first line, length) for every fn with a body."""
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    in_block = False
    stack = []  # (name, start, depth at which the body opened)
    pending = None
    depth = 0
    for no, raw in enumerate(lines, 1):
        code, in_block = strip_code(raw, in_block)
        m = FN_START.match(code)
        if m:
            pending = (m.group(8), no)
        for c in code:
            if c == "{":
                depth += 1
                if pending:
                    stack.append((pending[0], pending[1], depth))
                    pending = None
            elif c == "}":
                if stack and stack[-1][2] == depth:
                    name, start, _ = stack.pop()
                    yield name, start, no - start + 1
                depth -= 1
            elif c == ";" and pending and not stack_open(code):
                pending = None


def stack_open(code):
    return code.count("{") > code.count("}")


def main(argv):
    top = 0
    if argv[:1] == ["--top"]:
        top = int(argv[1])
        argv = argv[2:]
    roots = [Path(p) for p in argv] or [Path(p) for p in ("crates", "fuzz", "examples")]
    files = []
    for root in roots:
        if root.is_file():
            files.append(root)
        elif root.is_dir():
            files.extend(p for p in sorted(root.rglob("*.rs")) if "target" not in p.parts)
    breaches = []
    all_fns = []
    for f in files:
        count = len(f.read_text(encoding="utf-8", errors="replace").splitlines())
        if count > MAX_FILE_LINES:
            breaches.append(f"{f}: {count} lines (limit {MAX_FILE_LINES})")
        for name, start, length in functions(f):
            all_fns.append((length, f"{f}:{start} fn {name}"))
            if length > MAX_FN_LINES:
                breaches.append(f"{f}:{start}: fn {name} is {length} lines (limit {MAX_FN_LINES})")
    for b in breaches:
        print(b)
    if top:
        for length, where in sorted(all_fns, reverse=True)[:top]:
            print(f"{length:5d}  {where}")
    if breaches:
        print(f"{len(breaches)} size limit breaches", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
