#!/usr/bin/env bash
# CI for installing and embedding nonoproxy (issue #5, items 5 and 6). For each compiler
# (default: gcc clang): configure and build a Release tree, `cmake --install` it into a temporary
# prefix, then check
#   1. the layout under the prefix;
#   2. the installed archive's symbols: the global ones are exactly the NONOPROXY_API functions
#      of include/nonoproxy/*.h, and nothing of np_*, http-parser or mbedTLS is left undefined;
#   3. docs/examples/embed.c built with `pkg-config --static`, and run; then built once more next
#      to a host's own definitions of np_malloc, http_parser_* and mbedtls_* that abort when
#      called, and run: it links (no clash) and the library still calls its own copies;
#   4. docs/examples as an out-of-tree CMake project (find_package(nonoproxy)) against the prefix
#      moved elsewhere (both package files are relocatable); embed run, and seed_example run
#      against a local plain-HTTP upstream (python3 http.server on 127.0.0.1) with a curl child.
# Nothing leaves 127.0.0.1. Everything is made under one mktemp directory, removed at exit.
# Usage: test/install/run.sh [COMPILER...]
set -euo pipefail
cd "$(dirname "$0")/../.."
SRC=$PWD

TMP=$(mktemp -d "${TMPDIR:-/tmp}/nonoproxy-install.XXXXXX")
UPSTREAM_PID=""
cleanup() {
    if [ -n "$UPSTREAM_PID" ]; then
        kill "$UPSTREAM_PID" 2>/dev/null || true
        wait "$UPSTREAM_PID" 2>/dev/null || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT

fail() {
    echo "test/install: FAIL: $*" >&2
    exit 1
}

step() {
    echo "test/install: [$CC_NAME] $*"
}

# The upstream for seed_example: answers every GET with a small JSON model list and appends
# "<path> <Authorization>" to the file named by argv[1]; prints its port first.
cat >"$TMP/upstream.py" <<'EOF'
import http.server
import json
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        with open(sys.argv[1], "a", encoding="utf-8") as log:
            log.write("%s %s\n" % (self.path, self.headers.get("Authorization", "")))
        body = json.dumps({"object": "list", "data": [{"id": "gpt-test"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
EOF

# A host program's own definitions of names the library uses inside. Were any of them global in
# libnonoproxy.a, the link would fail (multiple definition) or the library would call these.
cat >"$TMP/host.c" <<'EOF'
#include <stddef.h>
#include <stdlib.h>
void *np_malloc(size_t n);
void http_parser_init(void);
size_t http_parser_execute(void);
void mbedtls_ssl_init(void);
int mbedtls_ctr_drbg_seed(void);
void *np_malloc(size_t n) { (void)n; abort(); }
void http_parser_init(void) { abort(); }
size_t http_parser_execute(void) { abort(); }
void mbedtls_ssl_init(void) { abort(); }
int mbedtls_ctr_drbg_seed(void) { abort(); }
EOF

# The child seed_example runs: the real key is absent, the phantom is the session token, the
# route answers through the proxy, and a host outside the allowlist is refused (403).
# shellcheck disable=SC2016 # expanded by the child's shell
CHILD_SCRIPT='set -e
test -z "${OPENAI_API_KEY:-}" || { echo "child: the real key is in the environment"; exit 3; }
test "$OPENAI_KEY" = "$NONO_PROXY_TOKEN" || { echo "child: phantom != token"; exit 4; }
curl -sS --fail "$OPENAI_BASE_URL/v1/models" -H "Authorization: Bearer $OPENAI_KEY"
echo
curl -s -o /dev/null -w "blocked.invalid: CONNECT %{http_connect}\n" https://blocked.invalid/ || true'

# The NONOPROXY_API function names, one per line, sorted. A declaration may break after its
# return type (clang-format does when the line is long): the name is the last word before '('.
api_functions() {
    perl -0ne 'print "$1\n" while /^NONOPROXY_API\b[^(;]*?\b(nonoproxy_\w+)\s*\(/mg' \
        "$SRC"/include/nonoproxy/*.h | sort
}

# check_layout PREFIX LIBDIR
check_layout() {
    local prefix=$1 libdir=$2 f
    local files=(bin/nonoproxy-run "$libdir/libnonoproxy.a" "$libdir/pkgconfig/nonoproxy.pc"
                 "$libdir/cmake/nonoproxy/nonoproxyConfig.cmake"
                 "$libdir/cmake/nonoproxy/nonoproxyConfigVersion.cmake")
    for f in "$SRC"/include/nonoproxy/*.h; do
        files+=("include/nonoproxy/$(basename "$f")")
    done
    files+=(share/man/man1/nonoproxy-run.1)
    for f in "${files[@]}"; do
        [ -f "$prefix/$f" ] || fail "missing under the prefix: $f"
    done
    [ -x "$prefix/bin/nonoproxy-run" ] || fail "bin/nonoproxy-run is not executable"
    "$prefix/bin/nonoproxy-run" --version >/dev/null || fail "bin/nonoproxy-run --version failed"
}

# check_symbols ARCHIVE
check_symbols() {
    local lib=$1 members exported expected bad
    members=$(ar t "$lib")
    [ "$members" = "nonoproxy.o" ] || fail "$lib: expected the one prelinked member, got: $members"
    exported=$(nm -g --defined-only "$lib" | awk 'NF == 3 { print $3 }' | sort)
    expected=$(api_functions)
    [ -n "$expected" ] || fail "no NONOPROXY_API declaration found in include/nonoproxy"
    if [ "$exported" != "$expected" ]; then
        diff <(echo "$expected") <(echo "$exported") >&2 || true
        fail "$lib: global symbols differ from the NONOPROXY_API functions (< api, > archive)"
    fi
    bad=$(nm -u "$lib" | awk '{ print $NF }' | grep -E '^(np_|nonoproxy_|mbedtls_|http_)' || true)
    [ -z "$bad" ] || fail "$lib: undefined symbols that the archive should carry: $bad"
    step "symbols: $(echo "$exported" | wc -l) global, all nonoproxy_*; $(nm -u "$lib" |
        awk '{ print $NF }' | sort -u | wc -l) undefined, none of np_/mbedtls_/http_"
}

# check_embed_output FILE: the request went through and both audit events were printed.
check_embed_output() {
    grep -q '^embed: through the tunnel: hello from the origin$' "$1" || fail "embed: no answer"
    grep -q '"event":"decision","mode":"connect","decision":"allow","target":"127.0.0.1"' "$1" ||
        fail "embed: no allow event"
    grep -q '"event":"close","mode":"connect"' "$1" || fail "embed: no close event"
    grep -q '^embed: ok$' "$1" || fail "embed: did not finish"
}

# run_seed_example BINARY: against a fresh local upstream, with a random real key.
run_seed_example() {
    local bin=$1 seen="$TMP/upstream.$CC_NAME.log" out="$TMP/seed.$CC_NAME.out" key port fd
    key="sk-ci-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
    exec {fd}< <(exec python3 "$TMP/upstream.py" "$seen")
    UPSTREAM_PID=$!
    read -r -t 30 -u "$fd" port || fail "the local upstream did not start"
    if ! OPENAI_API_KEY=$key timeout 60 "$bin" "http://127.0.0.1:$port" sh -c "$CHILD_SCRIPT" \
        >"$out"; then
        cat "$out" >&2
        fail "seed_example failed"
    fi
    kill "$UPSTREAM_PID"
    wait "$UPSTREAM_PID" 2>/dev/null || true
    UPSTREAM_PID=""
    exec {fd}<&-
    cat "$out"
    grep -q '^{"object": "list", "data": \[{"id": "gpt-test"}\]}$' "$out" ||
        fail "seed_example: the child did not get the upstream's answer"
    grep -q '^blocked.invalid: CONNECT 403$' "$out" || fail "seed_example: no 403 for the child"
    grep -qx '\[allow\] reverse -> 127.0.0.1' "$out" || fail "seed_example: no allow event"
    grep -qx '\[deny\] connect -> blocked.invalid' "$out" || fail "seed_example: no deny event"
    # The upstream saw exactly one request, with the real key and without the phantom.
    [ "$(cat "$seen")" = "/v1/models Bearer $key" ] ||
        fail "seed_example: the upstream saw: $(cat "$seen")"
}

# run_for CC
run_for() {
    local cc=$1 build="$TMP/build.$CC_NAME" prefix="$TMP/prefix.$CC_NAME" libdir pcdir cflags
    local moved="$TMP/moved.$CC_NAME" ex="$TMP/examples.$CC_NAME" strict
    strict="-std=c11 -Wall -Wextra -Wpedantic -Wconversion -Wshadow -Wwrite-strings -Werror"

    step "configure, build (Release), install into $prefix"
    cmake -S "$SRC" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_COMPILER="$cc" \
        -DNONOPROXY_BUILD_TESTS=OFF -DNONOPROXY_BUILD_BENCH=OFF >"$TMP/configure.log" ||
        { cat "$TMP/configure.log" >&2; fail "configure failed"; }
    cmake --build "$build" -j"$(nproc)" >"$TMP/build.log" ||
        { cat "$TMP/build.log" >&2; fail "build failed"; }
    cmake --install "$build" --prefix "$prefix" >/dev/null
    libdir=$(sed -n 's/^CMAKE_INSTALL_LIBDIR:PATH=//p' "$build/CMakeCache.txt")
    check_layout "$prefix" "$libdir"
    step "layout ok"
    check_symbols "$prefix/$libdir/libnonoproxy.a"

    step "embed.c with pkg-config --static"
    pcdir="$prefix/$libdir/pkgconfig"
    [ "$(PKG_CONFIG_PATH=$pcdir pkg-config --modversion nonoproxy)" = \
      "$(sed -n 's/^#define NONOPROXY_VERSION_STRING "\(.*\)"$/\1/p' "$SRC/include/nonoproxy/version.h")" ] ||
        fail "pkg-config --modversion differs from NONOPROXY_VERSION_STRING"
    # Word splitting of the pkg-config output is intended.
    cflags=$(PKG_CONFIG_PATH=$pcdir pkg-config --cflags --libs --static nonoproxy)
    # libsecret (and GLib) are dlopen()ed when a keyring credential is first used: an embedder
    # links none of them.
    case $cflags in
    *glib* | *secret* | *gio* | *gobject*)
        fail "pkg-config --static --libs nonoproxy names libsecret/GLib: $cflags" ;;
    esac
    # shellcheck disable=SC2086
    "$cc" $strict "$SRC/docs/examples/embed.c" $cflags -o "$TMP/embed.pc"
    timeout 60 "$TMP/embed.pc" >"$TMP/embed.pc.out" ||
        { cat "$TMP/embed.pc.out" >&2; fail "embed (pkg-config) failed"; }
    check_embed_output "$TMP/embed.pc.out"
    cat "$TMP/embed.pc.out"
    if ldd "$TMP/embed.pc" | grep -E 'libsecret|libglib|libgio|libgobject'; then
        fail "embed (pkg-config) maps libsecret/GLib at start"
    fi

    step "embed.c next to a host's own np_malloc, http_parser_*, mbedtls_*"
    # shellcheck disable=SC2086
    "$cc" -std=c11 "$TMP/host.c" "$SRC/docs/examples/embed.c" $cflags -o "$TMP/embed.host" ||
        fail "embed does not link next to the host's own definitions"
    timeout 60 "$TMP/embed.host" >"$TMP/embed.host.out" ||
        { cat "$TMP/embed.host.out" >&2; fail "embed next to the host's definitions failed"; }
    check_embed_output "$TMP/embed.host.out"

    step "docs/examples with find_package(nonoproxy), prefix moved to $moved"
    mv "$prefix" "$moved"
    cmake -S "$SRC/docs/examples" -B "$ex" -DCMAKE_C_COMPILER="$cc" \
        -DCMAKE_PREFIX_PATH="$moved" -DCMAKE_C_FLAGS="-Werror" >"$TMP/ex-configure.log" ||
        { cat "$TMP/ex-configure.log" >&2; fail "configure of docs/examples failed"; }
    cmake --build "$ex" >"$TMP/ex-build.log" ||
        { cat "$TMP/ex-build.log" >&2; fail "build of docs/examples failed"; }
    grep -q "$moved/$libdir/libnonoproxy.a" "$ex/CMakeFiles/embed.dir/link.txt" ||
        fail "docs/examples did not link the moved prefix's archive"
    timeout 60 "$ex/embed" >"$TMP/embed.cmake.out" ||
        { cat "$TMP/embed.cmake.out" >&2; fail "embed (find_package) failed"; }
    check_embed_output "$TMP/embed.cmake.out"
    step "embed ok"

    step "seed_example against a local upstream"
    run_seed_example "$ex/seed_example"
    step "seed_example ok"
}

if [ $# -eq 0 ]; then
    set -- gcc clang
fi
for cc in "$@"; do
    command -v "$cc" >/dev/null || fail "compiler not found: $cc"
    CC_NAME=$(basename "$cc")
    run_for "$cc"
done
echo "test/install: all passed ($*)"
