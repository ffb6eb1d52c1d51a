#!/usr/bin/env bash
# Build the CONNECT benchmark in Release (build-bench/ at the repository root) and run it,
# next to tinyproxy and squid when they are installed. Prints one table. Then runs the
# reverse-proxy benchmark (reverse.sh: nonoproxy's routes next to nginx), another table, and the
# plain-HTTP forward-proxy benchmark (forward.sh: nonoproxy next to tinyproxy and squid), a third.
#
#   test/bench/run.sh [--no-others] [--asan] [--no-reverse] [--no-forward]
#                     [bench_connect options...]
#     --no-others   measure nonoproxy only (do not start tinyproxy / squid; no nginx proxy)
#     --asan        build with ASan+UBSan in build-bench-asan/ and run a --quick pass, nonoproxy
#                   only (a leak and memory-error check of the benchmark and the library)
#     --no-reverse  do not run reverse.sh
#     --no-forward  do not run forward.sh
#   Other options go to bench_connect: --quick, --rounds N, --window-ms N, --case NAME, -v;
#   --quick and -v also go to reverse.sh and forward.sh.
#
# Environment: BENCH_BUILD_DIR overrides the build directory.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=common.sh
source "$here/common.sh"
others=1
asan=0
reverse=1
forward=1
args=()
rargs=()
fargs=()
for a in "$@"; do
    case "$a" in
    --no-others) others=0; rargs+=(--no-nginx); fargs+=(--no-others) ;;
    --asan) asan=1; others=0; rargs+=(--asan); fargs+=(--asan --no-others) ;;
    --no-reverse) reverse=0 ;;
    --no-forward) forward=0 ;;
    --quick | -v | --verbose) args+=("$a"); rargs+=("$a"); fargs+=("$a") ;;
    *) args+=("$a") ;;
    esac
done

if [ "$asan" = 1 ]; then
    build=${BENCH_BUILD_DIR:-$root/build-bench-asan}
    cfg=(-DCMAKE_BUILD_TYPE=Debug "-DNONOPROXY_SANITIZE=address,undefined")
    args=(--quick "${args[@]}")
else
    build=${BENCH_BUILD_DIR:-$root/build-bench}
    cfg=(-DCMAKE_BUILD_TYPE=Release)
fi

echo "== building $build" >&2
mkdir -p "$build"
timeout 600 cmake -S "$root" -B "$build" "${cfg[@]}" -DNONOPROXY_BUILD_TESTS=ON \
    -DNONOPROXY_BUILD_BENCH=ON -DNONOPROXY_BUILD_CLI=ON -DNONOPROXY_WERROR=ON \
    >"$build/configure.log" 2>&1 || {
    cat "$build/configure.log" >&2
    exit 1
}
timeout 600 cmake --build "$build" --target bench_connect -j"$(nproc)" >&2
bench="$build/test/bench/bench_connect"

tmp=$(mktemp -d /tmp/nonoproxy-bench.XXXXXX)
pids=()
bench_pid=
# shellcheck disable=SC2317  # called through the EXIT trap
cleanup() {
    bench_stop_processes
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_tinyproxy() {
    if start_tinyproxy_in "$tmp"; then
        args+=(--upstream-proxy "tinyproxy=127.0.0.1:$tp_port")
    fi
}

start_squid() {
    if start_squid_in "$tmp"; then
        args+=(--upstream-proxy "squid=127.0.0.1:$sq_port")
    fi
}

if [ "$others" = 1 ]; then
    if command -v tinyproxy >/dev/null; then
        start_tinyproxy
        echo "# $(tinyproxy -v 2>&1 | head -1) on loopback (thread per connection)"
    fi
    if command -v squid >/dev/null || [ -x /usr/sbin/squid ]; then
        PATH=$PATH:/usr/sbin start_squid
        echo "# $(PATH=$PATH:/usr/sbin squid -v | head -1) on loopback (1 worker, access log on)"
    fi
fi

# In the background so that a signal to this script runs the traps at once (cleanup stops it).
rc=0
timeout 600 "$bench" "${args[@]}" &
bench_pid=$!
wait "$bench_pid" || rc=$?
bench_pid=

if [ "$reverse" = 1 ]; then
    cleanup # stop tinyproxy and squid first: the reverse benchmark wants the CPUs to itself
    pids=()
    tmp=$(mktemp -d /tmp/nonoproxy-bench.XXXXXX)
    echo
    rrc=0
    BENCH_BUILD_DIR=$build "$here/reverse.sh" "${rargs[@]}" &
    bench_pid=$!
    wait "$bench_pid" || rrc=$?
    bench_pid=
    if [ "$rc" = 0 ]; then
        rc=$rrc
    fi
fi

if [ "$forward" = 1 ]; then
    cleanup # nothing of the earlier benchmarks may still run: this one wants the CPUs too
    # shellcheck disable=SC2034  # read by bench_stop_processes (common.sh)
    pids=()
    tmp=$(mktemp -d /tmp/nonoproxy-bench.XXXXXX)
    echo
    frc=0
    BENCH_BUILD_DIR=$build "$here/forward.sh" "${fargs[@]}" &
    bench_pid=$!
    wait "$bench_pid" || frc=$?
    bench_pid=
    if [ "$rc" = 0 ]; then
        rc=$frc
    fi
fi
exit "$rc"
