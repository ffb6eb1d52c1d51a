#!/usr/bin/env python3
"""Check the include levels of lib/ and that cli/ uses only the public headers.

The levels come from one table in docs/ARCHITECTURE.md, between the lines
`<!-- levels:begin -->` and `<!-- levels:end -->`, one row per level:

    | L0 | common, alloc, error, version |

A module is the basename of lib/<module>.c and/or lib/<module>.h. The check fails (exit 1,
one line per problem) when:
  - a lib/*.c or lib/*.h file includes ("...") the header of a higher-level module;
  - a quoted include in lib/ names no lib/*.h header (use <...> for outside headers);
  - a module of lib/ is missing from the table, or a table entry has no file in lib/;
  - the modules include each other in a cycle (the cycle is printed);
  - a cli/*.c or cli/*.h file includes anything but cli's own headers with "..." (the
    library is reached through <nonoproxy/...> only).
Exit 0 prints a one-line summary; exit 2 means the table itself could not be read.
"""
import argparse
import glob
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from c_scan import read_stripped  # noqa: E402

BEGIN, END = "<!-- levels:begin -->", "<!-- levels:end -->"
ROW = re.compile(r"^\|\s*L(\d+)\s*\|([^|]*)\|\s*$")
INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]', re.M)


def die(msg):
    """The table itself is unusable: exit 2, unlike a violation (exit 1)."""
    print(f"check_includes: {msg}", file=sys.stderr)
    sys.exit(2)


def read_levels(doc):
    """Return ({module: level}, {module: doc line}) from the levels block of doc."""
    with open(doc, encoding="utf-8") as f:
        lines = f.read().split("\n")
    try:
        start, stop = lines.index(BEGIN), lines.index(END)
    except ValueError:
        die(f"{doc}: no {BEGIN} ... {END} block")
    levels, where = {}, {}
    for no in range(start + 1, stop):
        m = ROW.match(lines[no].strip())
        if not m:
            continue  # the header and separator rows
        for mod in filter(None, (s.strip() for s in m.group(2).split(","))):
            if mod in levels:
                die(f"{doc}:{no + 1}: module {mod} is listed twice")
            levels[mod], where[mod] = int(m.group(1)), no + 1
    if not levels:
        die(f"{doc}: the levels block has no '| L<n> | modules |' row")
    return levels, where


def includes(path):
    """Yield (line, kind, name) for each #include of path, comments ignored."""
    text = read_stripped(path, strings=False)
    for m in INCLUDE.finditer(text):
        yield text.count("\n", 0, m.start()) + 1, m.group(1), m.group(2)


def find_cycles(edges):
    """Return one cycle (a list of modules, first == last) per strongly connected component."""
    index, low, stack, on_stack, sccs = {}, {}, [], set(), []

    def visit(v):  # Tarjan; the graph is a few dozen modules, so recursion depth is small
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    cycles = []
    for comp in sccs:  # shortest path from comp[0] back to itself, inside the component
        start, paths = comp[0], {comp[0]: [comp[0]]}
        queue = [start]
        while queue:
            v = queue.pop(0)
            for w in sorted(edges.get(v, ())):
                if w == start:
                    cycles.append((paths[v] + [start], comp))
                    queue = []
                    break
                if w in comp and w not in paths:
                    paths[w] = paths[v] + [w]
                    queue.append(w)
    return cycles


def check_lib(root, doc, problems):
    levels, where = read_levels(doc)
    files = sorted(glob.glob(os.path.join(root, "lib", "*.[ch]")))
    modules = {os.path.splitext(os.path.basename(f))[0] for f in files}
    headers = {os.path.basename(f) for f in files if f.endswith(".h")}
    rel_doc = os.path.relpath(doc, root)
    for mod in sorted(modules - levels.keys()):
        first = next(f for f in files if os.path.basename(f)[:-2] == mod)
        problems.append(f"{os.path.relpath(first, root)}: module {mod} is not in the levels "
                        f"table of {rel_doc}")
    for mod in sorted(levels.keys() - modules):
        problems.append(f"{rel_doc}:{where[mod]}: module {mod} (L{levels[mod]}) "
                        f"has no lib/{mod}.c or lib/{mod}.h")
    edges, first_line, count = {}, {}, 0
    for path in files:
        rel = os.path.relpath(path, root)
        src = os.path.splitext(os.path.basename(path))[0]
        for line, kind, name in includes(path):
            if kind == "<":
                continue  # libc, public <nonoproxy/...>, third-party headers
            count += 1
            if name not in headers:
                problems.append(f"{rel}:{line}: includes \"{name}\", which is not a lib/*.h header")
                continue
            dst = name[:-2]
            if src != dst:
                edges.setdefault(src, set()).add(dst)
                first_line.setdefault((src, dst), f"{rel}:{line}")
            if src in levels and dst in levels and levels[dst] > levels[src]:
                problems.append(f"{rel}:{line}: includes {name} (L{levels[dst]}) "
                                f"from L{levels[src]}")
    for cycle, comp in find_cycles(edges):
        via = ", ".join(first_line[(a, b)] for a, b in zip(cycle, cycle[1:]))
        extra = f"; component: {', '.join(comp)}" if len(comp) + 1 > len(cycle) else ""
        problems.append(f"include cycle: {' -> '.join(cycle)} ({via}{extra})")
    return len(modules), len(set(levels.values())), count


def check_cli(root, problems):
    count = 0
    for path in sorted(glob.glob(os.path.join(root, "cli", "*.[ch]"))):
        rel = os.path.relpath(path, root)
        for line, kind, name in includes(path):
            count += 1
            own = os.path.join(root, "cli", name)
            if kind == '"' and os.path.isfile(own) and "/" not in name:
                continue  # cli's own header
            lib = os.path.isfile(os.path.join(root, "lib", os.path.basename(name)))
            if kind == '"':
                what = "a lib/ header" if lib else "not a cli/ header"
                problems.append(f"{rel}:{line}: includes \"{name}\" ({what}); "
                                "use <nonoproxy/...> or cli's own headers")
            elif name.startswith("lib/") or "/lib/" in name:
                problems.append(f"{rel}:{line}: includes <{name}>, a lib/ header")
    return count


def main():
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=here, help="the repository (default: %(default)s)")
    ap.add_argument("--doc", help="the file with the levels table "
                                  "(default: ROOT/docs/ARCHITECTURE.md)")
    args = ap.parse_args()
    doc = args.doc or os.path.join(args.root, "docs", "ARCHITECTURE.md")
    problems = []
    nmod, nlev, nlib = check_lib(args.root, doc, problems)
    ncli = check_cli(args.root, problems)
    for p in problems:
        print(p)
    verdict = f"{len(problems)} problem(s)" if problems else "clean"
    print(f"check_includes: {nmod} modules in {nlev} levels, {nlib} lib includes, "
          f"{ncli} cli includes: {verdict}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
