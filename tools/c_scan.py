#!/usr/bin/env python3
"""Blank the comments (and optionally the string/char literals) of C files, keeping every offset.

Used by check_includes.py, check_banned.sh and check_test_only.py (python3 stdlib only).
The result has the same length and the same newlines as the input, so line and column numbers
found in it are those of the original file. A literal keeps its quotes: "abc" -> "   ".

As a command: c_scan.py FILE... prints `FILE:LINE:TEXT` for every line of code left after
blanking comments and literals (blank lines are skipped), ready for grep.
"""
import sys


def strip_c(text, strings=True):
    """Return text with comments (and, if strings, literal contents) replaced by spaces."""
    out = list(text)
    i, n = 0, len(text)

    def blank(a, b):
        for k in range(a, b):
            if out[k] != "\n":
                out[k] = " "

    while i < n:
        c = text[i]
        two = text[i : i + 2]
        if two == "/*":
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            blank(i, end)
            i = end
        elif two == "//":
            end = i
            while end < n and text[end] != "\n":
                # A backslash-newline continues a // comment onto the next line.
                end += 2 if text[end] == "\\" and text[end + 1 : end + 2] == "\n" else 1
            blank(i, end)
            i = end
        elif c in "\"'":
            end = i + 1
            while end < n and text[end] != c and text[end] != "\n":
                end += 2 if text[end] == "\\" else 1
            end = min(end, n - 1)
            if strings:
                blank(i + 1, end)
            i = end + 1
        else:
            i += 1
    return "".join(out)


def read_stripped(path, strings=True):
    with open(path, encoding="utf-8", errors="replace") as f:
        return strip_c(f.read(), strings)


def main(argv):
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 2
    for path in argv:
        for no, line in enumerate(read_stripped(path).split("\n"), 1):
            if line.strip():
                print(f"{path}:{no}:{line}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
