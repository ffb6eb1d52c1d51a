#!/usr/bin/env bash
# Fail on any NOLINT comment in lib/, cli/, python/src/ (*.c, *.h) that silences the size limits of
# STYLE.md §4: readability-function-size or readability-function-cognitive-complexity. A long
# function is split, a long parameter list becomes a struct; the limits are never waived.
# Caught: NOLINT, NOLINTNEXTLINE and NOLINTBEGIN that name either check, or a glob that covers
# them ('*', 'readability-*', 'readability-function-*'), or no check at all (that silences
# every check). Prints FILE:LINE: TEXT per comment.
#   usage: tools/check_nolint.sh [ROOT]     (ROOT: the repository, default: this script's)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=${1:-$(dirname "$here")}
if [ "${root}" = -h ] || [ "${root}" = --help ]; then
    sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
fi
cd "$root"

kind='NOLINT(NEXTLINE|BEGIN)?'
# One of the two checks, or a glob covering them, inside the (...) list.
named='\([^)]*(readability-function-(size|cognitive-complexity)|readability-(function-)?\*|(?<![\w-])\*)'
bare='(?![\w(])' # NOLINT with no list: every check
mapfile -t files < <(find lib cli python/src -type f \( -name '*.c' -o -name '*.h' \) | sort)
if [ ${#files[@]} -eq 0 ]; then
    echo "check_nolint: no *.c or *.h file under lib/ and cli/ in $root" >&2
    exit 2
fi
hits=$(grep -nHP "\b$kind($named|$bare)" "${files[@]}" || true)
if [ -n "$hits" ]; then
    sed -E 's/^([^:]+:[0-9]+:)[[:space:]]*/\1 /' <<<"$hits"
    echo "check_nolint: $(wc -l <<<"$hits") NOLINT comment(s) silence a function size limit" >&2
    exit 1
fi
echo "check_nolint: no NOLINT silences a function size limit in ${#files[@]} files"
