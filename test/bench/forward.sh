#!/usr/bin/env bash
# Plain-HTTP forward-proxy benchmark (issue #4, item 4): keep-alive GETs per second, 16 clients,
# absolute form ("GET http://127.0.0.1:PORT/bench HTTP/1.1") through nonoproxy, tinyproxy and
# squid, next to the same client sending origin-form requests straight to the origin. Prints one
# table, then what the origin saw per setup (requests, connections opened).
#
#   test/bench/forward.sh [--quick] [--no-others] [--no-nonoproxy] [--asan] [-v]
#                         [bench_reverse options...]
#     --quick          1 s windows, 3 rounds (default 3 s, 5 rounds: about 80 s in all)
#     --no-others      do not start tinyproxy and squid (direct and nonoproxy only)
#     --no-nonoproxy   measure direct, tinyproxy and squid only (no nonoproxy-run needed)
#     --asan           ASan+UBSan build in build-bench-asan/ and --quick: a memory-error check of
#                      the forward path under load, not a measurement
#   Other options go to bench_reverse (run with --forward): --rounds N, --window-ms N,
#   --warmup-ms N, --clients N, -v.
#
# Environment: BENCH_BUILD_DIR overrides the build directory; BENCH_NO_BUILD=1 uses it as is;
# BENCH_LOG_DIR=DIR keeps the logs (origin access log: port, connection, request number on it,
# status, client port; tinyproxy's and squid's logs) in DIR.
# Exit status: bench_reverse's (1 when a measurement had failed requests or a setup did not
# answer 200), 1 when the fixtures do not start.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=common.sh
source "$here/common.sh"
use_others=1
use_nonoproxy=1
asan=0
args=()
for a in "$@"; do
    case "$a" in
    --no-others) use_others=0 ;;
    --no-nonoproxy) use_nonoproxy=0 ;;
    --asan) asan=1 ;;
    *) args+=("$a") ;;
    esac
done

for d in /usr/sbin /sbin; do
    case ":$PATH:" in *":$d:"*) ;; *) PATH=$PATH:$d ;; esac
done
for tool in nginx curl; do
    if ! command -v "$tool" >/dev/null; then
        echo "forward.sh: $tool is needed (nginx is the origin, curl checks every setup)" >&2
        exit 1
    fi
done
use_tinyproxy=$use_others
use_squid=$use_others
if [ "$use_others" = 1 ] && ! command -v tinyproxy >/dev/null; then
    echo "forward.sh: tinyproxy is not installed: not measured" >&2
    use_tinyproxy=0
fi
if [ "$use_others" = 1 ] && ! command -v squid >/dev/null; then
    echo "forward.sh: squid is not installed: not measured" >&2
    use_squid=0
fi

# ---- build (the same configuration as run.sh, so that they share build-bench/) --------------
if [ "$asan" = 1 ]; then
    build=${BENCH_BUILD_DIR:-$root/build-bench-asan}
    cfg=(-DCMAKE_BUILD_TYPE=Debug "-DNONOPROXY_SANITIZE=address,undefined")
    args=(--quick "${args[@]}")
else
    build=${BENCH_BUILD_DIR:-$root/build-bench}
    cfg=(-DCMAKE_BUILD_TYPE=Release)
fi
if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
    echo "== building $build (bench_reverse, nonoproxy-run)" >&2
    mkdir -p "$build"
    timeout 600 cmake -S "$root" -B "$build" "${cfg[@]}" -DNONOPROXY_BUILD_TESTS=ON \
        -DNONOPROXY_BUILD_BENCH=ON -DNONOPROXY_BUILD_CLI=ON -DNONOPROXY_WERROR=ON \
        >"$build/configure.log" 2>&1 || {
        cat "$build/configure.log" >&2
        exit 1
    }
    timeout 600 cmake --build "$build" --target bench_reverse -j"$(nproc)" >&2
    if [ "$use_nonoproxy" = 1 ] &&
        ! timeout 600 cmake --build "$build" --target nonoproxy-run -j"$(nproc)" \
            >"$build/nonoproxy-run.log" 2>&1; then
        echo "forward.sh: nonoproxy-run does not build; measuring without it:" >&2
        tail -n 20 "$build/nonoproxy-run.log" >&2
        use_nonoproxy=0
    fi
fi
bench="$build/test/bench/bench_reverse"
runner="$build/cli/nonoproxy-run"

# ---- processes and cleanup ---------------------------------------------------------------
tmp=$(mktemp -d /tmp/nonoproxy-fbench.XXXXXX)
pids=()
bench_pid=
# shellcheck disable=SC2317  # called through the EXIT trap
cleanup() {
    bench_stop_processes
    if [ -n "${BENCH_LOG_DIR:-}" ]; then
        mkdir -p "$BENCH_LOG_DIR"
        cp "$tmp/origin/access.log" "$BENCH_LOG_DIR/origin-access.log" 2>/dev/null || true
        cp "$tmp/origin/error.log" "$BENCH_LOG_DIR/origin-error.log" 2>/dev/null || true
        cp "$tmp/tinyproxy.log" "$BENCH_LOG_DIR/tinyproxy.log" 2>/dev/null || true
        cp "$tmp/squid/cache.log" "$BENCH_LOG_DIR/squid-cache.log" 2>/dev/null || true
        cp "$tmp/squid/access.log" "$BENCH_LOG_DIR/squid-access.log" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The body the origin answers (64 bytes).
body="nonoproxy forward-proxy benchmark: a 64-byte answer, keep-alive."
[ "${#body}" = 64 ] || { echo "forward.sh: body is ${#body} bytes" >&2; exit 1; }

# ---- the origin: nginx, plain HTTP, one listening port per setup ---------------------------
# One nginx (same code, same CPU share) for all four setups; a port each, so that its access
# log tells the setups apart (connections opened by each proxy, requests per connection).
o_direct=$(free_port)
o_nonoproxy=$(free_port)
o_tinyproxy=$(free_port)
o_squid=$(free_port)
mkdir -p "$tmp/origin"
cat >"$tmp/origin/nginx.conf" <<EOF
worker_processes 2;
pid $tmp/origin/nginx.pid;
error_log $tmp/origin/error.log warn;
events { worker_connections 4096; }
http {
    # 1 when a request reaches the origin with a Proxy-Authorization header (a proxy that passed
    # the client's credentials on); the value itself is never logged.
    map \$http_proxy_authorization \$proxy_auth_seen { "" 0; default 1; }
    log_format conn '\$server_port \$connection \$connection_requests \$status \$remote_port '
                    '\$proxy_auth_seen';
    access_log $tmp/origin/access.log conn buffer=256k flush=1s;
    client_body_temp_path $tmp/origin/body;
    proxy_temp_path $tmp/origin/proxy;
    fastcgi_temp_path $tmp/origin/fastcgi;
    uwsgi_temp_path $tmp/origin/uwsgi;
    scgi_temp_path $tmp/origin/scgi;
    keepalive_requests 10000000;
    keepalive_timeout 600s;
    server {
        listen 127.0.0.1:$o_direct;
        listen 127.0.0.1:$o_nonoproxy;
        listen 127.0.0.1:$o_tinyproxy;
        listen 127.0.0.1:$o_squid;
        server_name localhost;
        location / {
            default_type text/plain;
            return 200 "$body";
        }
    }
}
EOF
nginx -e "$tmp/origin/error.log" -p "$tmp/origin" -c "$tmp/origin/nginx.conf" -g "daemon off;" \
    >"$tmp/origin/out" 2>&1 &
pids+=($!)
origin_pid=$!
if ! wait_listening "$o_squid" "$origin_pid"; then
    echo "forward.sh: the origin nginx did not start:" >&2
    cat "$tmp/origin/out" "$tmp/origin/error.log" >&2 2>/dev/null || true
    exit 1
fi

# ---- tinyproxy -----------------------------------------------------------------------------
tp_args=()
if [ "$use_tinyproxy" = 1 ]; then
    tp_port=$(free_port)
    cat >"$tmp/tinyproxy.conf" <<EOF
Port $tp_port
Listen 127.0.0.1
Timeout 600
MaxClients 256
LogFile "$tmp/tinyproxy.log"
LogLevel Warning
PidFile "$tmp/tinyproxy.pid"
Allow 127.0.0.1
DisableViaHeader Yes
EOF
    tinyproxy -d -c "$tmp/tinyproxy.conf" >"$tmp/tinyproxy.out" 2>&1 &
    pids+=($!)
    tp_pid=$!
    if wait_listening "$tp_port" "$tp_pid"; then
        tp_args=(--tinyproxy "http://127.0.0.1:$tp_port" --tinyproxy-pid "$tp_pid"
            --tinyproxy-target "http://127.0.0.1:$o_tinyproxy")
    else
        echo "forward.sh: tinyproxy did not start (not measured):" >&2
        cat "$tmp/tinyproxy.out" >&2
        use_tinyproxy=0
    fi
fi

# ---- squid ---------------------------------------------------------------------------------
sq_args=()
if [ "$use_squid" = 1 ]; then
    sq_port=$(free_port)
    sq="$tmp/squid"
    user_line=""
    mkdir -p "$sq"
    if [ "$(id -u)" = 0 ]; then
        # squid will not run as root: it switches to the packaged user, which must reach $sq.
        chmod 711 "$tmp"
        chown proxy: "$sq" 2>/dev/null || chown nobody: "$sq"
        user_line="cache_effective_user $(stat -c %U "$sq")"
    fi
    cat >"$sq/squid.conf" <<EOF
http_port 127.0.0.1:$sq_port
http_access allow localhost
http_access deny all
cache deny all
cache_mem 8 MB
workers 1
client_persistent_connections on
server_persistent_connections on
access_log stdio:$sq/access.log
cache_log $sq/cache.log
cache_store_log none
pid_filename $sq/squid.pid
coredump_dir $sq
pinger_enable off
shutdown_lifetime 0 seconds
max_filedescriptors 4096
dns_nameservers 127.0.0.1
visible_hostname nonoproxy-bench
$user_line
EOF
    squid -N -f "$sq/squid.conf" >"$sq/out" 2>&1 &
    pids+=($!)
    sq_pid=$!
    if wait_listening "$sq_port" "$sq_pid"; then
        sq_args=(--squid "http://127.0.0.1:$sq_port" --squid-pid "$sq_pid"
            --squid-target "http://127.0.0.1:$o_squid")
    else
        echo "forward.sh: squid did not start (not measured):" >&2
        cat "$sq/out" "$sq/cache.log" >&2 2>/dev/null || true
        use_squid=0
    fi
fi

# ---- check every setup before measuring ----------------------------------------------------
# check NAME URL [PROXY]: a 200 with the origin's body, with curl.
check() {
    local name=$1 url=$2 proxy=${3:-} got
    local px=(--noproxy '*')
    if [ -n "$proxy" ]; then
        px=(--noproxy '' --proxy "$proxy")
    fi
    got=$(curl -sS "${px[@]}" -o "$tmp/check.body" -w '%{http_code}' --max-time 10 "$url" \
        2>"$tmp/check.err") || true
    if [ "$got" != 200 ] || [ "$(cat "$tmp/check.body")" != "$body" ]; then
        echo "forward.sh: check failed: $name: HTTP $got, expected 200 and the origin's body" >&2
        cat "$tmp/check.err" "$tmp/check.body" >&2 2>/dev/null || true
        echo >&2
        return 1
    fi
    echo "# check: $name -> HTTP $got" >&2
}
check "origin" "http://127.0.0.1:$o_direct/bench"
if [ "$use_tinyproxy" = 1 ] &&
    ! check "tinyproxy" "http://127.0.0.1:$o_tinyproxy/bench" "http://127.0.0.1:$tp_port"; then
    tp_args=()
    use_tinyproxy=0
fi
if [ "$use_squid" = 1 ] &&
    ! check "squid" "http://127.0.0.1:$o_squid/bench" "http://127.0.0.1:$sq_port"; then
    sq_args=()
    use_squid=0
fi

runner_args=()
if [ "$use_nonoproxy" = 1 ]; then
    runner_args=("$runner" -q --allow 127.0.0.1)
    # Landlock would let the command connect to nonoproxy's port only: the direct, tinyproxy and
    # squid setups connect elsewhere.
    if [[ "$("$runner" --help 2>&1)" == *--sandbox* ]]; then # no grep -q: SIGPIPE + pipefail
        runner_args+=(--sandbox off)
    fi
    runner_args+=(--)
    # The same check from inside nonoproxy-run, the only place the proxy URL and the token
    # exist: curl reads http_proxy (with the token as userinfo) from its environment, so the
    # token never reaches a command line; --noproxy '' overrides NO_PROXY (127.0.0.1 is in it).
    # A request without credentials must get 407.
    # shellcheck disable=SC2016  # expanded by the inner shell
    inner='code=$(curl -sS --noproxy "" -o "$1" -w "%{http_code}" --max-time 10 "$2") || true
        anon=$(env -u http_proxy -u HTTP_PROXY curl -sS --noproxy "" -o /dev/null \
            -w "%{http_code}" --max-time 10 --proxy "http://${http_proxy##*@}" "$2") ||
            true
        echo "$code $anon"'
    got=$(timeout 30 "${runner_args[@]}" sh -c "$inner" sh "$tmp/check.body" \
        "http://127.0.0.1:$o_nonoproxy/bench" 2>"$tmp/check.err") || true
    if [ "${got%% *}" = 200 ] && [ "$(cat "$tmp/check.body")" = "$body" ]; then
        echo "# check: nonoproxy (Proxy-Authorization from http_proxy) -> HTTP 200" >&2
        if [ "${got#* }" = 407 ]; then
            echo "# check: nonoproxy without credentials -> HTTP 407" >&2
        else
            echo "forward.sh: warning: nonoproxy without credentials -> HTTP '${got#* }'," \
                "expected 407" >&2
        fi
    else
        echo "forward.sh: check failed: nonoproxy: HTTP '${got%% *}', expected 200:" >&2
        cat "$tmp/check.err" "$tmp/check.body" >&2 2>/dev/null || true
        echo >&2
        echo "forward.sh: measuring without nonoproxy (the table says 'not measured')" >&2
        runner_args=()
        use_nonoproxy=0
    fi
fi

# ---- measure -------------------------------------------------------------------------------
echo "# origin: $(nginx -v 2>&1 | sed 's/^nginx version: //'), 2 workers, 64-byte body," \
    "127.0.0.1:$o_direct/$o_nonoproxy/$o_tinyproxy/$o_squid (direct/nonoproxy/tinyproxy/squid)"
if [ "$use_tinyproxy" = 1 ]; then
    echo "# $(tinyproxy -v 2>&1 | head -1): thread per connection, closes the client connection" \
        "after every answer (the client reopens it)"
fi
if [ "$use_squid" = 1 ]; then
    echo "# $(squid -v | head -1 | sed 's/ Cache: Version / /'): 1 worker, no cache, client and" \
        "server persistent connections, access log on"
fi
bench_args=(--forward --direct "http://127.0.0.1:$o_direct" --upstream-pid "$origin_pid"
    "${tp_args[@]}" "${sq_args[@]}")
if [ "$use_nonoproxy" = 1 ]; then
    bench_args+=(--proxy-env HTTP_PROXY --token-env NONO_PROXY_TOKEN
        --nonoproxy-target "http://127.0.0.1:$o_nonoproxy")
fi
# In the background so that a signal to this script runs the traps at once (cleanup stops it).
rc=0
timeout 300 "${runner_args[@]}" "$bench" "${bench_args[@]}" "${args[@]}" &
bench_pid=$!
wait "$bench_pid" || rc=$?
bench_pid=

# ---- what the origin saw -------------------------------------------------------------------
# Flush the origin's buffered access log: stop it now (SIGQUIT: finish, flush, exit).
kill -QUIT "$origin_pid" 2>/dev/null || true
for _ in $(seq 50); do
    kill -0 "$origin_pid" 2>/dev/null || break
    sleep 0.1
done
if [ -s "$tmp/origin/access.log" ]; then
    echo
    echo "origin view (whole run, checks and warm-ups included):"
    awk -v d="$o_direct" -v n="$o_nonoproxy" -v t="$o_tinyproxy" -v s="$o_squid" '
        BEGIN {
            name[d] = "direct"; name[n] = "nonoproxy"; name[t] = "tinyproxy"; name[s] = "squid"
        }
        {
            p = $1; req[p]++
            if ($4 != 200) { bad[p]++ }
            if (!(($1, $2) in seen)) { seen[$1, $2] = 1; conns[p]++ }
            if ($3 > maxr[p]) { maxr[p] = $3 }
            if ($6 == 1) { auth[p]++ }
        }
        END {
            printf "  %-10s %9s %7s %11s %12s %12s %10s\n", "setup", "requests", "non-200",
                   "connections", "req/conn", "max req/conn", "proxy-auth"
            split(d " " n " " t " " s, order, " ")
            for (i = 1; i <= 4; i++) {
                p = order[i]
                if (!(p in req)) { continue }
                printf "  %-10s %9d %7d %11d %12.1f %12d %10d\n", name[p], req[p], bad[p],
                       conns[p], req[p] / conns[p], maxr[p], auth[p]
                if (auth[p] > 0) {
                    printf "  WARNING  %s passed Proxy-Authorization on to the origin\n", name[p]
                }
            }
        }' "$tmp/origin/access.log"
fi
if grep -q -v -e '\[notice\]' -e '\[info\]' "$tmp/origin/error.log" 2>/dev/null; then
    echo "origin error log:"
    grep -v -e '\[notice\]' -e '\[info\]' "$tmp/origin/error.log" | tail -n 10
fi
# tinyproxy logs two known lines at start: the missing UserName (as root), and the start-up
# probe's connection that closed without a request. Anything else is shown.
tp_known=(-e 'You SHOULD set a UserName' -e 'closed socket before read')
if [ "$use_tinyproxy" = 1 ] && grep -q -v "${tp_known[@]}" "$tmp/tinyproxy.log" 2>/dev/null; then
    echo "tinyproxy log:"
    grep -v "${tp_known[@]}" "$tmp/tinyproxy.log" | tail -n 5
fi
if [ "$use_squid" = 1 ] && grep -q -i -e 'WARNING' -e 'ERROR' "$tmp/squid/cache.log"; then
    echo "squid cache.log warnings:"
    grep -i -e 'WARNING' -e 'ERROR' "$tmp/squid/cache.log" | tail -n 5
fi
exit "$rc"
