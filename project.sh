#!/usr/bin/env bash
# The README's two commands, and CI's sanitizer runs:
#   ./project.sh demo   install what is missing, build, run the loopback demonstration
#   ./project.sh test   install what is missing, build, run every test
#   ./project.sh asan | tsan   the unit + integration tests under ASan+UBSan / TSan
#   ./project.sh bench  the benchmarks (Release build)
set -euo pipefail
cd "$(dirname "$0")"

# Debian packages the build, the tests and the demo need.
PACKAGES=(build-essential cmake pkg-config clang python3 curl wget openssl ca-certificates git
          libmbedtls-dev libhttp-parser-dev libcmocka-dev libcjson-dev libsecret-1-dev
          gnome-keyring libsecret-tools dbus-daemon libglib2.0-bin tinyproxy iproute2)
# Only the benchmarks compare against these.
BENCH_PACKAGES=(nginx squid)

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
bench)
    PACKAGES+=("${BENCH_PACKAGES[@]}")
    install_deps
    bash test/bench/run.sh
    ;;
*)
    echo "usage: ./project.sh demo|test|asan|tsan|bench" >&2
    exit 2
    ;;
esac
