#!/usr/bin/env bash
# The README's two commands, and CI's sanitizer runs:
#   ./project.sh demo   install what is missing, build, run the loopback demonstration
#   ./project.sh test   install what is missing, build, run every test
#   ./project.sh asan | tsan   the unit + integration tests under ASan+UBSan / TSan
#   ./project.sh soak   the soak test (test/soak/README.md; RelWithDebInfo build, ctest -L soak)
#   ./project.sh valgrind   the in-process integration tests (test_inproc_*) under valgrind
#                       memcheck: no leak, no memory error, no fd left open at exit
#   ./project.sh bench [--quick]   every row of issue #12's table for nonoproxy, tinyproxy,
#                       squid and nginx (Release build); writes docs/PERFORMANCE.md's table and
#                       docs/perf/tunnels.png (--quick: a smoke test, about 1 minute, no docs)
#   ./project.sh fuzz   build the libFuzzer targets (clang, ASan+UBSan) and run each for
#                       ${NONOPROXY_FUZZ_SECONDS:-30} s over a copy of its seed corpus; one line
#                       per target
#   ./project.sh lint   the style checks of STYLE.md §4 (clang-tidy, clang-format, include
#                       levels, banned calls, test-only functions, NOLINT); one line per step
set -euo pipefail
cd "$(dirname "$0")"

# Debian packages the build, the tests and the demo need.
PACKAGES=(build-essential cmake pkg-config clang python3 curl wget openssl ca-certificates git
          libmbedtls-dev libhttp-parser-dev libcmocka-dev libcjson-dev libsecret-1-dev
          gnome-keyring libsecret-tools dbus-daemon libglib2.0-bin tinyproxy iproute2
          python3-dev python3-pytest python3-mypy python3-setuptools python3-wheel python3-venv
          python3-pip python3-build)
# Only the benchmarks compare against these.
BENCH_PACKAGES=(nginx squid wrk gnuplot-nox)
# Only the style checks use these (Debian 12: version 14 of both).
LINT_PACKAGES=(clang-tidy clang-format python3)
# Only ./project.sh valgrind uses this.
VALGRIND_PACKAGES=(valgrind)

install_deps() {
    local missing=()
    local p
    for p in "${PACKAGES[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
            missing+=("$p")
        fi
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "project.sh: installing ${missing[*]}"
        if [ "$(id -u)" -ne 0 ]; then
            echo "project.sh: missing packages and not root; run as root or install them" >&2
            exit 1
        fi
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi
}

# build DIR [cmake args...]
build() {
    local dir=$1
    shift
    cmake -S . -B "$dir" "$@" >/dev/null
    cmake --build "$dir" -j"$(nproc)"
}

run_tests() {
    local dir=$1
    shift
    ctest --test-dir "$dir" --output-on-failure -j"$(nproc)" "$@"
}

# lint_step NAME UNIT CMD...: run one lint step, print its output, record a summary line.
# COUNT is what the step found: its output lines that are neither its own summary
# ("check_...: ...") nor a note; a step may instead write the count to $lint_tmp/count.
lint_step() {
    local name=$1 unit=$2 rc=0 n
    shift 2
    echo "== lint: $name"
    rm -f "$lint_tmp/count"
    "$@" >"$lint_tmp/out" 2>&1 || rc=$?
    cat "$lint_tmp/out"
    if [ -f "$lint_tmp/count" ]; then
        n=$(cat "$lint_tmp/count")
    else
        n=$(grep -cvE '^(check_[a-z_]+: |note: )' "$lint_tmp/out" || true)
    fi
    if [ "$rc" -ne 0 ]; then
        lint_failed=1
        lint_summary+=("lint: $name: $n $unit (FAILED, exit $rc)")
    else
        lint_summary+=("lint: $name: $n $unit")
    fi
}

# clang-tidy with the repo's .clang-tidy over every lib/*.c, cli/*.c and python/src/*.c in the
# compilation database, two at a time, each file's output kept whole; then the findings by check
# name.
lint_clang_tidy() {
    local dir=$1
    python3 - "$dir/compile_commands.json" "$PWD" >"$lint_tmp/tidy-files" <<'PY'
import json, os, re, sys
root, seen = sys.argv[2], set()
for e in json.load(open(sys.argv[1])):
    path = os.path.normpath(os.path.join(e["directory"], e["file"]))
    rel = os.path.relpath(path, root)
    if re.fullmatch(r"(lib|cli|python/src)/[^/]+\.c", rel) and rel not in seen:
        seen.add(rel)
        print(rel)
PY
    if [ ! -s "$lint_tmp/tidy-files" ]; then
        echo "clang-tidy: no lib/*.c or cli/*.c in $dir/compile_commands.json"
        return 1
    fi
    mkdir -p "$lint_tmp/tidy"
    # shellcheck disable=SC2016 # $0..$2 belong to the inner sh
    xargs -P2 -I{} sh -c 'clang-tidy -p "$0" --quiet "$1" >"$2/$(echo "$1" | tr / _).log" 2>&1' \
        "$dir" {} "$lint_tmp/tidy" <"$lint_tmp/tidy-files" || true
    cat "$lint_tmp/tidy"/*.log | sed "s|$PWD/||" >"$lint_tmp/tidy.log"
    grep -vE '^[0-9]+ (warning|error)s? generated\.$' "$lint_tmp/tidy.log" || true
    # A finding: FILE:LINE:COL: warning|error: TEXT [check,-warnings-as-errors]; a header's
    # finding is reported once per file that includes it, so keep each place once.
    grep -E '^[^ :]+:[0-9]+:[0-9]+: (warning|error): .*\[[^]]+\]$' "$lint_tmp/tidy.log" |
        sed -E 's/^([^ ]+:[0-9]+:[0-9]+): .*\[([^],]+)[^]]*\]$/\1 \2/' | sort -u \
        >"$lint_tmp/tidy-findings" || true
    echo "clang-tidy: $(wc -l <"$lint_tmp/tidy-files") files; findings by check:"
    awk '{print $2}' "$lint_tmp/tidy-findings" | sort | uniq -c | sort -rn
    wc -l <"$lint_tmp/tidy-findings" >"$lint_tmp/count"
    [ ! -s "$lint_tmp/tidy-findings" ]
}

# clang-format --dry-run -Werror over every *.c and *.h under lib/ cli/ include/ test/ python/
# (not python/build/, pip's); prints each misplaced line (FILE:LINE:COL) and then the files with
# their number of places.
lint_clang_format() {
    local files
    mapfile -t files < <(find lib cli include test python -type f \( -name '*.c' -o -name '*.h' \) \
        -not -path 'python/build/*' | sort)
    clang-format --dry-run -Werror "${files[@]}" >"$lint_tmp/fmt.log" 2>&1 || true
    grep -E '^[^ :]+:[0-9]+:[0-9]+: (error|warning): ' "$lint_tmp/fmt.log" | cut -d' ' -f1 |
        sed 's/:$//' >"$lint_tmp/fmt-places" || true
    cat "$lint_tmp/fmt-places"
    echo "clang-format: ${#files[@]} files checked; places per file:"
    cut -d: -f1 "$lint_tmp/fmt-places" | uniq -c
    cut -d: -f1 "$lint_tmp/fmt-places" | sort -u | wc -l >"$lint_tmp/count"
    [ ! -s "$lint_tmp/fmt-places" ]
}

# Every style check, in order; each runs and reports even when an earlier one failed.
run_lint() {
    local dir=build-lint line
    lint_tmp=$(mktemp -d)
    trap 'rm -rf "$lint_tmp"' EXIT
    lint_failed=0
    lint_summary=()
    # clang as the compiler, so that clang-tidy reads flags it knows; only the configure step
    # runs: compile_commands.json is written then (CMAKE_EXPORT_COMPILE_COMMANDS).
    cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
        -DCMAKE_EXPORT_COMPILE_COMMANDS=ON >/dev/null
    lint_step clang-tidy findings lint_clang_tidy "$dir"
    lint_step clang-format files lint_clang_format
    lint_step includes problems python3 tools/check_includes.py
    lint_step banned calls bash tools/check_banned.sh
    lint_step test-only functions python3 tools/check_test_only.py
    lint_step nolint comments bash tools/check_nolint.sh
    echo "== lint: summary"
    for line in "${lint_summary[@]}"; do
        echo "$line"
    done
    return "$lint_failed"
}

# Every test_inproc_* binary of the plain build DIR under valgrind memcheck, one at a time:
# a memory error or a definite, indirect, possible or (outside test/valgrind.supp's glib and
# gobject constructors) still-reachable block fails it, and so does a descriptor open at exit
# that the process did not inherit. test_inproc_alloc tries every allocation there too (about
# 7 s under valgrind; NP_ALLOC_STEP=n would try every n-th only). One line per binary with its
# time.
run_valgrind() {
    local dir=$1 t name log failed=0 start fds
    for t in "$dir"/test/integration/test_inproc_*; do
        [ -f "$t" ] && [ -x "$t" ] || continue
        name=$(basename "$t")
        log=$dir/valgrind-$name.log
        start=$SECONDS
        if ! NP_ALLOC_STEP=1 valgrind --quiet --error-exitcode=1 --leak-check=full \
            --show-leak-kinds=all --errors-for-leak-kinds=all --track-fds=yes \
            --suppressions="$PWD/test/valgrind.supp" --log-file="$log" "$t" >"$log.out" 2>&1; then
            echo "valgrind: $name: FAILED ($((SECONDS - start)) s); $log, $log.out:"
            cat "$log" "$log.out"
            failed=1
            continue
        fi
        # A descriptor block names its fd, then where it was opened or "<inherited ...>".
        fds=$(awk '/Open (file descriptor|AF_[A-Z0-9]+ socket) [0-9]+/ { fd = $0; next }
                   fd != "" && /inherited from parent/ { fd = ""; next }
                   fd != "" && /^==[0-9]+== *$/ { print fd; fd = "" }' "$log")
        if [ -n "$fds" ]; then
            echo "valgrind: $name: FAILED, descriptors open at exit:"
            echo "$fds"
            cat "$log"
            failed=1
            continue
        fi
        echo "valgrind: $name: ok ($((SECONDS - start)) s)"
    done
    return "$failed"
}

# Build the libFuzzer targets (test/fuzz/) in build-fuzz and run each one in turn for
# NONOPROXY_FUZZ_SECONDS (default 30) over a temporary copy of its seed corpus, so nothing is
# written into the tree; a crash's input is kept in build-fuzz/artifacts/. One summary line per
# target (name, executions, final coverage edges, result); fails if any target failed.
run_fuzz() {
    local dir=build-fuzz secs=${NONOPROXY_FUZZ_SECONDS:-30} t rc log execs cov failed=0 line
    local summary=() tmp
    build "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang -DNONOPROXY_FUZZ=ON \
        -DNONOPROXY_BUILD_TESTS=OFF -DNONOPROXY_BUILD_BENCH=OFF -DNONOPROXY_BUILD_CLI=OFF \
        -DNONOPROXY_INSTALL=OFF
    tmp=$(mktemp -d)
    # shellcheck disable=SC2064 # expand tmp now
    trap "rm -rf '$tmp'" EXIT
    mkdir -p "$dir/artifacts"
    while read -r t; do
        [ -n "$t" ] || continue
        echo "== fuzz: $t (${secs} s)"
        mkdir -p "$tmp/$t"
        cp test/fuzz/corpus/"$t"/* "$tmp/$t/"
        log="$dir/artifacts/$t.log"
        rc=0
        ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
            "$dir/test/fuzz/$t" -max_total_time="$secs" -timeout=10 -print_final_stats=1 \
            -dict=test/fuzz/http.dict -artifact_prefix="$dir/artifacts/$t-" "$tmp/$t" \
            >"$log" 2>&1 || rc=$?
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
        cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -n1 | cut -d' ' -f2)
        if [ "$rc" -eq 0 ]; then
            line="fuzz: $t: ${execs:-?} execs, cov ${cov:-?} edges, ok"
        else
            failed=1
            line="fuzz: $t: ${execs:-?} execs, cov ${cov:-?} edges, FAILED (exit $rc, see $log)"
            grep -E '^(==[0-9]+==ERROR|SUMMARY|artifact_prefix|Test unit written)' "$log" || true
        fi
        echo "$line"
        summary+=("$line")
    done <"$dir/test/fuzz/targets.txt"
    echo "== fuzz: summary"
    for line in "${summary[@]}"; do
        echo "$line"
    done
    return "$failed"
}

cmd=${1:-}
case "$cmd" in
demo)
    install_deps
    build build -DCMAKE_BUILD_TYPE=RelWithDebInfo
    python3 test/demo/demo.py --bin build/cli/nonoproxy-run
    ;;
test)
    install_deps
    build build -DCMAKE_BUILD_TYPE=RelWithDebInfo
    run_tests build
    ;;
asan)
    install_deps
    build build-asan -DCMAKE_BUILD_TYPE=Debug -DNONOPROXY_SANITIZE=address,undefined \
        -DCMAKE_C_COMPILER=clang
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
        run_tests build-asan -L 'unit|integration'
    ;;
tsan)
    install_deps
    build build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNONOPROXY_SANITIZE=thread
    # glib/libsecret (the keyring lookup) are not built with TSan: their internal threads
    # would be reported as races. test/tsan.supp names those libraries and nothing else.
    TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/test/tsan.supp" \
        run_tests build-tsan -L 'unit|integration'
    ;;
soak)
    install_deps
    build build -DCMAKE_BUILD_TYPE=RelWithDebInfo
    ctest --test-dir build --output-on-failure -V -L soak
    ;;
valgrind)
    PACKAGES+=("${VALGRIND_PACKAGES[@]}")
    install_deps
    # The README's build (no sanitizer: valgrind cannot run under one).
    build build -DCMAKE_BUILD_TYPE=RelWithDebInfo
    run_valgrind build
    ;;
bench)
    PACKAGES+=("${BENCH_PACKAGES[@]}")
    install_deps
    shift
    bash test/bench/bench.sh "$@"
    ;;
fuzz)
    install_deps
    run_fuzz
    ;;
lint)
    PACKAGES+=("${LINT_PACKAGES[@]}")
    install_deps
    run_lint
    ;;
*)
    echo "usage: ./project.sh demo|test|soak|asan|tsan|valgrind|fuzz|bench|lint" >&2
    exit 2
    ;;
esac
