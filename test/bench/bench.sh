#!/usr/bin/env bash
# ./project.sh bench (issue #12, item 6): every row of the issue's table for nonoproxy,
# tinyproxy, squid and nginx side by side, then docs/PERFORMANCE.md (the region between its
# bench markers) and docs/perf/tunnels.png. Three parts, each on fresh processes:
#   1. CONNECT: bench_connect as the child of nonoproxy-run (CONNECT only), next to tinyproxy
#      and squid: the RSS probe first (fresh proxies), then setup1, setup16, bulk1, bulk8 and
#      the 1..256-client sweep of the plot;
#   2. forward.sh: plain-HTTP keep-alive through nonoproxy, tinyproxy and squid;
#   3. reverse.sh: the credential route next to nginx (bench_reverse, then wrk -t2 -c16), and
#      the SSE time to first byte.
# Every part writes machine-readable lines to one results file; report.py makes the table.
#
#   test/bench/bench.sh [--quick] [--docs | --no-docs]
#     --quick     one round, short windows, 128 MiB bulk, 2 s linger (about 1 minute): a smoke
#                 test; the docs are left alone unless --docs is given
#     --no-docs   print the table only (default without --quick: write the docs)
#
# Environment: BENCH_BUILD_DIR overrides the build directory (default build-bench/).
# Exit status: 0 when every row ran without a failed request, 1 otherwise (the table says
# which), 2 for a bad command line.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=common.sh
source "$here/common.sh"
quick=0
docs=
for a in "$@"; do
    case "$a" in
    --quick) quick=1 ;;
    --docs) docs=1 ;;
    --no-docs) docs=0 ;;
    *)
        echo "usage: test/bench/bench.sh [--quick] [--docs | --no-docs]" >&2
        exit 2
        ;;
    esac
done
if [ -z "$docs" ]; then
    docs=$((1 - quick))
fi
for d in /usr/sbin /sbin; do
    case ":$PATH:" in *":$d:"*) ;; *) PATH=$PATH:$d ;; esac
done

if [ "$quick" = 1 ]; then
    rounds=1 window=200 bulk_mib=128 linger=2 wrk_s=1 sse_n=20 quick_arg=(--quick)
else
    rounds=3 window=1000 bulk_mib=1024 linger=10 wrk_s=3 sse_n=100 quick_arg=()
fi
started=$SECONDS

# ---- build: Release, at most two jobs -------------------------------------------------------
build=${BENCH_BUILD_DIR:-$root/build-bench}
echo "== building $build (Release: bench_connect, bench_reverse, nonoproxy-run)" >&2
mkdir -p "$build"
timeout 600 cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DNONOPROXY_BUILD_TESTS=ON \
    -DNONOPROXY_BUILD_BENCH=ON -DNONOPROXY_BUILD_CLI=ON -DNONOPROXY_WERROR=ON \
    >"$build/configure.log" 2>&1 || {
    cat "$build/configure.log" >&2
    exit 1
}
timeout 900 cmake --build "$build" --target bench_connect bench_reverse nonoproxy-run -j2 >&2
runner="$build/cli/nonoproxy-run"

# ---- processes and cleanup ----------------------------------------------------------------
tmp=$(mktemp -d /tmp/nonoproxy-bench.XXXXXX)
results="$tmp/results.txt"
: >"$results"
pids=()
bench_pid=
# shellcheck disable=SC2317  # called through the EXIT trap
cleanup() {
    bench_stop_processes
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# run_part NAME CMD...: run one part in the background (a signal reaches the traps at once),
# bounded by timeout; a failure is reported and the next part runs all the same.
run_part() {
    local name=$1 prc=0
    shift
    echo
    echo "== bench: $name ($((SECONDS - started)) s so far)"
    timeout 900 "$@" &
    bench_pid=$!
    wait "$bench_pid" || prc=$?
    bench_pid=
    if [ "$prc" != 0 ]; then
        echo "bench: $name exited with status $prc" >&2
        echo "part $name status=$prc" >>"$results"
    fi
}

# The machine's load when the run starts and ends (others' work shares the CPUs).
echo "load start $(cut -d' ' -f1-3 /proc/loadavg)" >>"$results"

# ---- 1. CONNECT: nonoproxy-run (CONNECT only), tinyproxy, squid ---------------------------
cargs=(--nonoproxy-env --rounds "$rounds" --window-ms "$window" --bulk-mib "$bulk_mib"
    --sweep 256 --hold 256 --linger-s "$linger" --results "$results"
    --case setup1 --case setup16 --case bulk1 --case bulk8)
if command -v tinyproxy >/dev/null && start_tinyproxy_in "$tmp"; then
    cargs+=(--upstream-proxy "tinyproxy=127.0.0.1:$tp_port" --proxy-pid "tinyproxy=$tp_pid")
    echo "version tinyproxy $(tinyproxy -v 2>&1 | head -1)" >>"$results"
fi
if command -v squid >/dev/null && start_squid_in "$tmp"; then
    cargs+=(--upstream-proxy "squid=127.0.0.1:$sq_port" --proxy-pid "squid=$sq_pid")
    echo "version squid $(squid -v | head -1)" >>"$results"
fi
if command -v nginx >/dev/null; then
    echo "version nginx $(nginx -v 2>&1 | sed 's/^nginx version: //')" >>"$results"
fi
# --max-connections 0: the sweep and the RSS probe hold 256 connections at once; --sandbox off:
# bench_connect also connects to the origin, tinyproxy and squid.
run_part CONNECT "$runner" -q --allow 127.0.0.1 --max-connections 0 --sandbox off -- \
    "$build/test/bench/bench_connect" "${cargs[@]}"
bench_stop_processes # the next parts want the CPUs to themselves
# shellcheck disable=SC2034  # read by bench_stop_processes (common.sh)
pids=()

# ---- 2. forward keep-alive ------------------------------------------------------------------
run_part forward env BENCH_BUILD_DIR="$build" BENCH_NO_BUILD=1 bash "$here/forward.sh" \
    "${quick_arg[@]}" --rounds "$rounds" --results "$results"

# ---- 3. route + injection (bench_reverse, wrk), SSE -----------------------------------------
run_part route env BENCH_BUILD_DIR="$build" BENCH_NO_BUILD=1 bash "$here/reverse.sh" \
    "${quick_arg[@]}" --rounds "$rounds" --results "$results" --wrk "$wrk_s" --sse "$sse_n"

# ---- the table, the docs --------------------------------------------------------------------
echo "load end $(cut -d' ' -f1-3 /proc/loadavg)" >>"$results"
echo
echo "== bench: report ($((SECONDS - started)) s in all)"
report=(python3 "$here/report.py" --results "$results" --seconds "$((SECONDS - started))"
    --build "$build")
if [ "$quick" = 1 ]; then
    report+=(--quick)
fi
if [ "$docs" = 1 ]; then
    mkdir -p "$root/docs/perf"
    report+=(--doc "$root/docs/PERFORMANCE.md" --plot "$root/docs/perf/tunnels.png")
fi
"${report[@]}"
