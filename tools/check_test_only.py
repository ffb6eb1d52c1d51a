#!/usr/bin/env python3
"""List the library functions that only the tests call, and require a marker on each.

Finds every non-static function named np_* or nonoproxy_* DEFINED in lib/*.c that nothing in
lib/ or cli/ uses: no call `name(` and no reference (a function pointer in an ops table or
passed as a callback counts as a use) outside its own definition and its declarations. The
files named test_*.c (cli/test_cli_args.c, ...) are tests, wherever they live.

Each such function must be declared in a lib/*.h header with the marker comment
    /* test hook */
on the declaration's line or on the line before, so that a reader knows why it is there.
Exempt: the public API, i.e. names declared in include/nonoproxy/*.h.

Fails (exit 1, one line per function) when a test-only function has no marker, has no
declaration in lib/*.h, or is used nowhere at all, not even in test/. A marker on a function
that lib/ or cli/ does use is reported as a note (stale marker), without failing.

Heuristic and compile-free: comments and literals are blanked (tools/c_scan.py), then a
definition is a name at file scope followed by (...) and then '{' (the house style puts it at
column 0, after its return-type line); a declaration is a name at file scope followed by '('
and not by a body. Preprocessor lines count as uses (a macro that calls the function).
"""
import argparse
import glob
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from c_scan import read_stripped  # noqa: E402

NAME = re.compile(r"^(np|nonoproxy)_\w+$")
TOKEN = re.compile(r"[A-Za-z_]\w*|[{}();]|\n")
MARKER = "/* test hook */"


class Tok:
    __slots__ = ("text", "line", "depth", "pp")

    def __init__(self, text, line, depth, pp):
        self.text, self.line, self.depth, self.pp = text, line, depth, pp


def tokens(path):
    """Identifiers and { } ( ) ; of path with line, brace depth and 'on a preprocessor line'."""
    out, line, depth, pp, bol, cont = [], 1, 0, False, True, False
    text = read_stripped(path)
    for m in TOKEN.finditer(text):
        t = m.group()
        if t == "\n":
            # A preprocessor line ends at a newline not preceded by a backslash.
            k = m.start() - 1
            while k >= 0 and text[k] in " \t\r":
                k -= 1
            cont = pp and k >= 0 and text[k] == "\\"
            pp = cont
            line, bol = line + 1, True
            continue
        if bol and not cont:
            start = text.rfind("\n", 0, m.start()) + 1
            pp = text[start : m.start()].strip().startswith("#")
        bol = False
        if t == "}" and not pp:
            depth -= 1
        out.append(Tok(t, line, depth, pp))
        if t == "{" and not pp:
            depth += 1
    return out


def match_close(toks, i, open_, close):
    """Index of the token closing toks[i] (an open_), skipping preprocessor tokens."""
    level = 0
    for j in range(i, len(toks)):
        if toks[j].pp:
            continue
        level += (toks[j].text == open_) - (toks[j].text == close)
        if level == 0:
            return j
    return len(toks) - 1


def next_code(toks, i):
    """Index of the first non-preprocessor token after i (len(toks) if none)."""
    i += 1
    while i < len(toks) and toks[i].pp:
        i += 1
    return i


def declarator(toks, i):
    """'def', 'decl' or None for the identifier toks[i] (a name at file scope with '(')."""
    t = toks[i]
    j = next_code(toks, i)
    if t.pp or t.depth != 0 or j >= len(toks) or toks[j].text != "(":
        return None
    k = next_code(toks, match_close(toks, j, "(", ")"))
    return "def" if k < len(toks) and toks[k].text == "{" else "decl"


def is_static(toks, i):
    """True if the declaration-specifiers before toks[i] contain 'static'."""
    j = i - 1
    while j >= 0 and not toks[j].pp and toks[j].text not in (";", "{", "}"):
        if toks[j].text == "static":
            return True
        j -= 1
    return False


def is_test_file(path):
    return os.path.basename(path).startswith("test_")


def scan(root):
    lib_c = sorted(glob.glob(os.path.join(root, "lib", "*.c")))
    lib_h = sorted(glob.glob(os.path.join(root, "lib", "*.h")))
    cli = sorted(glob.glob(os.path.join(root, "cli", "*.[ch]")))
    tests = sorted(glob.glob(os.path.join(root, "test", "**", "*.[ch]"), recursive=True))
    tests += [p for p in cli if is_test_file(p)]
    code = lib_c + lib_h + [p for p in cli if not is_test_file(p)]
    public = sorted(glob.glob(os.path.join(root, "include", "nonoproxy", "*.h")))
    toks = {p: tokens(p) for p in set(code + tests + public)}
    rel = lambda p: os.path.relpath(p, root)  # noqa: E731

    # Definitions: name -> (file, line, first and last token of the body).
    defs = {}
    for p in lib_c:
        ts = toks[p]
        for i, t in enumerate(ts):
            if NAME.match(t.text) and declarator(ts, i) == "def" and not is_static(ts, i):
                body = next_code(ts, match_close(ts, next_code(ts, i), "(", ")"))
                defs[t.text] = (p, t.line, body, match_close(ts, body, "{", "}"))

    api = {t.text for p in public for t in toks[p] if t.text in defs}
    decls = {}  # name -> (header, line) of its declaration in lib/*.h
    for p in lib_h:
        ts = toks[p]
        for i, t in enumerate(ts):
            if t.text in defs and declarator(ts, i) == "decl":
                decls.setdefault(t.text, (p, t.line))

    def uses(paths):
        """name -> list of 'file:line' where it is used (not defined or declared)."""
        found = {}
        for p in paths:
            ts = toks[p]
            for i, t in enumerate(ts):
                if t.text not in defs or declarator(ts, i) is not None:
                    continue
                if i > 0 and ts[i - 1].text in ("enum", "struct", "union"):
                    continue  # a tag that shares the function's name
                dp, _, a, b = defs[t.text]
                if dp == p and a <= i <= b:
                    continue  # recursion inside its own definition
                found.setdefault(t.text, []).append(f"{rel(p)}:{t.line}")
        return found

    return defs, api, decls, uses(code), uses(tests), rel


def marked(header, line):
    """True if the marker is on the declaration's line, or alone on the line before it."""
    with open(header, encoding="utf-8", errors="replace") as f:
        lines = f.read().split("\n")
    code = read_stripped(header).split("\n")
    if MARKER in lines[line - 1]:
        return True
    # The line before counts only if it holds no code: not the marker of another declaration.
    return line >= 2 and MARKER in lines[line - 2] and not code[line - 2].strip()


def main():
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=here, help="the repository (default: %(default)s)")
    args = ap.parse_args()
    defs, api, decls, code_uses, test_uses, rel = scan(args.root)

    bad, hooks, notes = [], [], []
    for name in sorted(defs, key=lambda n: defs[n][:2]):
        path, line, _, _ = defs[name]
        where = f"{rel(path)}:{line}: {name}"
        decl = decls.get(name)
        has_marker = decl is not None and marked(*decl)
        if name in api:
            continue
        if name in code_uses:
            if has_marker:
                notes.append(f"note: {where} carries {MARKER} but is used at "
                             f"{code_uses[name][0]}: drop the marker")
            continue
        if name not in test_uses:
            bad.append(f"{where} is used nowhere, not even in test/: delete it")
        elif decl is None:
            bad.append(f"{where} is used only from test/ ({test_uses[name][0]}) and has no "
                       f"declaration in lib/*.h")
        elif not has_marker:
            bad.append(f"{where} is used only from test/ ({test_uses[name][0]}): mark its "
                       f"declaration {rel(decl[0])}:{decl[1]} with {MARKER}")
        else:
            hooks.append(f"note: {where} is a test hook ({rel(decl[0])}:{decl[1]})")

    for row in bad + hooks + notes:
        print(row)
    print(f"check_test_only: {len(defs)} non-static np_*/nonoproxy_* functions "
          f"({len(api)} public API), {len(bad) + len(hooks)} used only from tests or nowhere, "
          f"{len(hooks)} marked, {len(bad)} problem(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
