#!/usr/bin/env bash
# Fail on any call of a banned C function in lib/, cli/ and python/src/ (*.c, *.h, every
# subfolder).
# STYLE.md §4: no unbounded copies or formats, no unchecked conversions, no alloca, nothing
# that returns static storage (the thread-safe _r forms are fine: strerror_r, gmtime_r, ...).
# Comments and string/char literals are blanked first (tools/c_scan.py), so `/* strcpy( */`
# or "atoi(" in a message is not a finding. Prints FILE:LINE: calls NAME(): CODE per call.
#   usage: tools/check_banned.sh [ROOT]     (ROOT: the repository, default: this script's)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=${1:-$(dirname "$here")}
if [ "${root}" = -h ] || [ "${root}" = --help ]; then
    sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
fi
cd "$root"

BANNED=(strcpy strcat sprintf vsprintf gets atoi atol atoll strtok alloca strerror
        asctime ctime localtime gmtime tmpnam mktemp)
# A call: the name as a whole word (so snprintf, strerror_r, np_atoi do not match), then '('.
pattern="(^|[^A-Za-z0-9_])($(IFS='|'; echo "${BANNED[*]}"))[[:space:]]*\("

mapfile -t files < <(find lib cli python/src -type f \( -name '*.c' -o -name '*.h' \) | sort)
if [ ${#files[@]} -eq 0 ]; then
    echo "check_banned: no *.c or *.h file under lib/ and cli/ in $root" >&2
    exit 2
fi
hits=0
# c_scan.py prints FILE:LINE:CODE for every line of code, comments and literals blanked.
while IFS= read -r row; do
    loc=${row%%:*}
    rest=${row#*:}
    line=${rest%%:*}
    code=${rest#*:}
    # shellcheck disable=SC2013 # one word per banned name found on the line
    for name in $(grep -oE "$pattern" <<<"$code" | grep -oE '[A-Za-z0-9_]+' | sort -u); do
        src=$(sed -n "${line}{s/^[[:space:]]*//;p}" "$loc") # the original line, for the reader
        printf '%s:%s: calls %s(): %s\n' "$loc" "$line" "$name" "$src"
        hits=$((hits + 1))
    done
done < <(python3 "$here/c_scan.py" "${files[@]}" | grep -E "^[^:]+:[0-9]+:.*$pattern" || true)

if [ "$hits" -gt 0 ]; then
    echo "check_banned: $hits banned call(s) in ${#files[@]} files" >&2
    exit 1
fi
echo "check_banned: no banned call in ${#files[@]} files of lib/, cli/ and python/src/"
