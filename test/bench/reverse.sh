#!/usr/bin/env bash
# Reverse-proxy benchmark (issue #3, item 8): keep-alive GETs per second, 16 clients, through
# nonoproxy's route and through nginx configured as the same reverse proxy, next to the same
# client talking HTTPS straight to the upstream. Prints one table.
#
#   test/bench/reverse.sh [--quick] [--no-nginx] [--no-nonoproxy] [--asan] [-v]
#                         [bench_reverse options...]
#     --quick          1 s windows, 3 rounds (default 3 s, 5 rounds: about 70 s in all)
#     --no-nginx       do not start the nginx reverse proxy (the upstream is nginx all the same)
#     --no-nonoproxy   measure direct and nginx only (no nonoproxy-run needed)
#     --asan           ASan+UBSan build in build-bench-asan/ and --quick: a memory-error check of
#                      the reverse path under load, not a measurement
#     --wrk SECS       then wrk -t2 -c16 for SECS through nginx and nonoproxy, alternated, as
#                      many rounds as --rounds says (default 3); the phantom header comes from a
#                      Lua script that reads it from the environment
#     --sse N          then time to first byte of an event stream (origin: bench_connect
#                      --serve), direct, through a nonoproxy route and nginx (proxy_buffering
#                      off), N requests per setup and round
#     --results FILE   (to bench_reverse, and used by --wrk and --sse) machine-readable lines
#   Other options go to bench_reverse: --rounds N, --window-ms N, --warmup-ms N, --clients N, -v.
#
# Environment: BENCH_BUILD_DIR overrides the build directory; BENCH_NO_BUILD=1 uses it as is;
# BENCH_LOG_DIR=DIR keeps the nginx logs (upstream access log: port, connection, request number
# on it, TLS session reused, status, time, client port) in DIR.
# Exit status: bench_reverse's (1 when a measurement had failed requests or a setup did not
# answer 200), 1 when the fixtures do not start.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=common.sh
source "$here/common.sh"
use_nginx=1
use_nonoproxy=1
asan=0
wrk_s=0
sse_n=0
rounds=3
results=
args=()
while [ $# -gt 0 ]; do
    case "$1" in
    --no-nginx) use_nginx=0 ;;
    --no-nonoproxy) use_nonoproxy=0 ;;
    --asan) asan=1 ;;
    --wrk) wrk_s=$2; shift ;;
    --sse) sse_n=$2; shift ;;
    --results) results=$2; args+=("$1" "$2"); shift ;;
    --rounds) rounds=$2; args+=("$1" "$2"); shift ;;
    *) args+=("$1") ;;
    esac
    shift
done

if ! command -v nginx >/dev/null && [ -x /usr/sbin/nginx ]; then
    PATH=$PATH:/usr/sbin
fi
for tool in nginx openssl curl; do
    if ! command -v "$tool" >/dev/null; then
        echo "reverse.sh: $tool is needed (nginx is the upstream, openssl makes its" \
            "certificate, curl checks every setup)" >&2
        exit 1
    fi
done

# ---- build (the same configuration as run.sh, so that the two share build-bench/) ----------
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
    timeout 600 cmake --build "$build" --target bench_reverse bench_connect -j"$(nproc)" >&2
    if [ "$use_nonoproxy" = 1 ] &&
        ! timeout 600 cmake --build "$build" --target nonoproxy-run -j"$(nproc)" \
            >"$build/nonoproxy-run.log" 2>&1; then
        echo "reverse.sh: nonoproxy-run does not build; measuring without it:" >&2
        tail -n 20 "$build/nonoproxy-run.log" >&2
        use_nonoproxy=0
    fi
fi
bench="$build/test/bench/bench_reverse"
origin_bin="$build/test/bench/bench_connect"
runner="$build/cli/nonoproxy-run"

# ---- processes and cleanup ---------------------------------------------------------------
tmp=$(mktemp -d /tmp/nonoproxy-rbench.XXXXXX)
pids=()
bench_pid=
# shellcheck disable=SC2317  # called through the EXIT trap
cleanup() {
    bench_stop_processes
    if [ -n "${BENCH_LOG_DIR:-}" ]; then
        mkdir -p "$BENCH_LOG_DIR"
        cp "$tmp/up/access.log" "$BENCH_LOG_DIR/upstream-access.log" 2>/dev/null || true
        cp "$tmp/up/error.log" "$BENCH_LOG_DIR/upstream-error.log" 2>/dev/null || true
        cp "$tmp/px/error.log" "$BENCH_LOG_DIR/nginx-error.log" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- test PKI: a CA and a certificate for localhost / 127.0.0.1 ----------------------------
pki="$tmp/pki"
mkdir -p "$pki"
(
    cd "$pki"
    openssl ecparam -name prime256v1 -genkey -noout -out ca.key 2>/dev/null
    openssl req -x509 -new -key ca.key -sha256 -days 2 -subj "/CN=nonoproxy bench CA" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" \
        -out ca.crt 2>/dev/null
    openssl ecparam -name prime256v1 -genkey -noout -out server.key 2>/dev/null
    openssl req -new -key server.key -subj "/CN=localhost" -out server.csr 2>/dev/null
    printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1" "basicConstraints=CA:FALSE" \
        "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" >server.ext
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -sha256 \
        -extfile server.ext -out server.crt 2>/dev/null
)
ca="$pki/ca.crt"

# The real key (what nonoproxy and nginx inject) and the body the upstream answers (64 bytes).
umask 077
BENCH_KEY="bench-key-$(openssl rand -hex 16)"
export BENCH_KEY
# The direct client sends the key itself; nonoproxy-run removes $BENCH_KEY from its child.
BENCH_DIRECT_KEY=$BENCH_KEY
export BENCH_DIRECT_KEY
body="nonoproxy reverse-proxy benchmark: a 64-byte answer, keep-alive."
[ "${#body}" = 64 ] || { echo "reverse.sh: body is ${#body} bytes" >&2; exit 1; }

# ---- the upstream: nginx, TLS 1.2, one listening port per setup ---------------------------
# One nginx process (same code, same CPU share) for all three setups; a port each, so that its
# access log tells the setups apart (upstream connections opened, TLS sessions resumed).
up_direct=$(free_port)
up_nonoproxy=$(free_port)
up_nginx=$(free_port)
mkdir -p "$tmp/up"
cat >"$tmp/up/nginx.conf" <<EOF
worker_processes 2;
pid $tmp/up/nginx.pid;
error_log $tmp/up/error.log warn;
events { worker_connections 1024; }
http {
    log_format conn '\$server_port \$connection \$connection_requests \$ssl_session_reused '
                    '\$status \$msec \$remote_port \$ssl_protocol/\$ssl_cipher';
    access_log $tmp/up/access.log conn buffer=256k flush=1s;
    client_body_temp_path $tmp/up/body;
    proxy_temp_path $tmp/up/proxy;
    fastcgi_temp_path $tmp/up/fastcgi;
    uwsgi_temp_path $tmp/up/uwsgi;
    scgi_temp_path $tmp/up/scgi;
    keepalive_requests 10000000;
    keepalive_timeout 600s;
    server {
        listen 127.0.0.1:$up_direct ssl;
        listen 127.0.0.1:$up_nonoproxy ssl;
        listen 127.0.0.1:$up_nginx ssl;
        server_name localhost;
        ssl_certificate $pki/server.crt;
        ssl_certificate_key $pki/server.key;
        ssl_protocols TLSv1.2;
        ssl_session_cache shared:bench:1m;
        location / {
            if (\$http_authorization != "Bearer $BENCH_KEY") {
                return 401 "upstream: no or wrong Authorization\n";
            }
            default_type text/plain;
            return 200 "$body";
        }
    }
}
EOF
nginx -e "$tmp/up/error.log" -p "$tmp/up" -c "$tmp/up/nginx.conf" -g "daemon off;" \
    >"$tmp/up/out" 2>&1 &
pids+=($!)
up_pid=$!
if ! wait_listening "$up_nginx" "$up_pid"; then
    echo "reverse.sh: the upstream nginx did not start:" >&2
    cat "$tmp/up/out" "$tmp/up/error.log" >&2 2>/dev/null || true
    exit 1
fi

# ---- the event-stream origin (--sse): bench_connect's origin on its own -------------------
sse_port=
if [ "$sse_n" -gt 0 ]; then
    "$origin_bin" --serve 900 >"$tmp/sse-origin.out" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do
        sse_port=$(sed -n 's/^port //p' "$tmp/sse-origin.out")
        [ -z "$sse_port" ] || break
        sleep 0.1
    done
    if [ -z "$sse_port" ]; then
        echo "reverse.sh: the event-stream origin did not start; no SSE row" >&2
        sse_n=0
    fi
fi
# Only with --sse: nginx passes /sse/ to that origin unbuffered.
sse_location=
if [ -n "$sse_port" ]; then
    sse_location="location /sse/ { proxy_pass http://127.0.0.1:$sse_port; proxy_buffering off;
            proxy_http_version 1.1; proxy_set_header Connection \"\"; }"
fi

# ---- nginx as the reverse proxy ------------------------------------------------------------
nginx_args=()
if [ "$use_nginx" = 1 ]; then
    px_port=$(free_port)
    mkdir -p "$tmp/px"
    cat >"$tmp/px/nginx.conf" <<EOF
worker_processes 2;
pid $tmp/px/nginx.pid;
error_log $tmp/px/error.log warn;
events { worker_connections 1024; }
http {
    access_log $tmp/px/access.log combined buffer=64k flush=1s;
    client_body_temp_path $tmp/px/body;
    proxy_temp_path $tmp/px/proxy;
    fastcgi_temp_path $tmp/px/fastcgi;
    uwsgi_temp_path $tmp/px/uwsgi;
    scgi_temp_path $tmp/px/scgi;
    keepalive_requests 10000000;
    keepalive_timeout 600s;
    upstream upstream_pool {
        server 127.0.0.1:$up_nginx;
        keepalive 32;
        keepalive_requests 10000000;
        keepalive_timeout 600s;
    }
    server {
        listen 127.0.0.1:$px_port;
        location /svc/ {
            proxy_pass https://upstream_pool/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Authorization "Bearer $BENCH_KEY";
            proxy_ssl_verify on;
            proxy_ssl_trusted_certificate $ca;
            proxy_ssl_name localhost;
            proxy_ssl_server_name on;
            proxy_ssl_session_reuse on;
        }
        $sse_location
    }
}
EOF
    nginx -e "$tmp/px/error.log" -p "$tmp/px" -c "$tmp/px/nginx.conf" -g "daemon off;" \
        >"$tmp/px/out" 2>&1 &
    pids+=($!)
    px_pid=$!
    if ! wait_listening "$px_port" "$px_pid"; then
        echo "reverse.sh: the nginx reverse proxy did not start:" >&2
        cat "$tmp/px/out" "$tmp/px/error.log" >&2 2>/dev/null || true
        exit 1
    fi
    nginx_args=(--nginx "http://127.0.0.1:$px_port/svc" --nginx-pid "$px_pid")
fi

# ---- check every setup before measuring ----------------------------------------------------
# The upstream answers 200 only to "Authorization: Bearer <real key>", else 401: a 200 through
# a proxy shows that the proxy injected the key. Header values go through curl's config on
# stdin, never on a command line.
# check NAME EXPECTED_STATUS URL [AUTH_VALUE]
check() {
    local name=$1 want=$2 url=$3 auth=${4:-} got
    got=$(if [ -n "$auth" ]; then printf 'header = "Authorization: Bearer %s"\n' "$auth"; fi |
        curl -sS --noproxy '*' --cacert "$ca" -K - -o "$tmp/check.body" -w '%{http_code}' \
            --max-time 10 "$url" 2>"$tmp/check.err") || true
    if [ "$got" != "$want" ]; then
        echo "reverse.sh: check failed: $name: HTTP $got, expected $want ($url)" >&2
        cat "$tmp/check.err" "$tmp/check.body" >&2 2>/dev/null || true
        echo >&2
        return 1
    fi
    if [ "$want" = 200 ] && [ "$(cat "$tmp/check.body")" != "$body" ]; then
        echo "reverse.sh: check failed: $name: unexpected body" >&2
        return 1
    fi
    echo "# check: $name -> HTTP $got" >&2
}
check "upstream, real key" 200 "https://localhost:$up_direct/bench" "$BENCH_KEY"
check "upstream, no key" 401 "https://localhost:$up_direct/bench"
check "upstream, phantom instead of key" 401 "https://localhost:$up_direct/bench" "not-the-key"
if [ "$use_nginx" = 1 ]; then
    check "nginx, phantom (nginx injects the key)" 200 "http://127.0.0.1:$px_port/svc/bench" \
        "not-the-key"
fi

runner_args=()
if [ "$use_nonoproxy" = 1 ]; then
    route="svc=https://localhost:$up_nonoproxy,credential=env://BENCH_KEY,env-var=BENCH_PHANTOM"
    runner_args=("$runner" -q --ca-file "$ca" --route "$route")
    # Landlock would let the command connect to nonoproxy's port only: the direct and nginx
    # setups connect elsewhere.
    if [[ "$("$runner" --help 2>&1)" == *--sandbox* ]]; then # no grep -q: SIGPIPE + pipefail
        runner_args+=(--sandbox off)
    fi
    runner_args+=(--)
    # The same check, from inside nonoproxy-run (the only place the phantom and the base URL
    # exist); also tells whether this nonoproxy-run routes at all.
    # shellcheck disable=SC2016  # expanded by the inner shell
    inner='printf "header = \"Authorization: Bearer %s\"\n" "$BENCH_PHANTOM" |
        curl -sS --noproxy "*" -K - -o "$1" -w "%{http_code}" --max-time 10 "$SVC_BASE_URL/bench"'
    got=$(timeout 30 "${runner_args[@]}" sh -c "$inner" sh "$tmp/check.body" \
        2>"$tmp/check.err") || true
    if [ "$got" = 200 ] && [ "$(cat "$tmp/check.body")" = "$body" ]; then
        echo "# check: nonoproxy, phantom (nonoproxy injects the key) -> HTTP 200" >&2
    else
        echo "reverse.sh: check failed: nonoproxy route: HTTP '${got}', expected 200:" >&2
        cat "$tmp/check.err" "$tmp/check.body" >&2 2>/dev/null || true
        echo >&2
        echo "reverse.sh: measuring without nonoproxy (the table says 'not measured')" >&2
        runner_args=()
        use_nonoproxy=0
    fi
fi

# ---- measure -------------------------------------------------------------------------------
echo "# upstream: $(nginx -v 2>&1 | sed 's/^nginx version: //'), TLS 1.2 only," \
    "2 workers, 127.0.0.1:$up_direct/$up_nonoproxy/$up_nginx (direct/nonoproxy/nginx)"
if [ "$use_nginx" = 1 ]; then
    echo "# nginx reverse proxy: 2 workers, keepalive 32 per worker to the upstream," \
        "access log buffered"
fi
bench_args=(--ca "$ca" --direct "https://localhost:$up_direct" --direct-key-env BENCH_DIRECT_KEY
    --phantom-env BENCH_PHANTOM --upstream-pid "$up_pid" "${nginx_args[@]}")
if [ "$use_nonoproxy" = 1 ]; then
    bench_args+=(--nonoproxy-url-env SVC_BASE_URL)
fi
# In the background so that a signal to this script runs the traps at once (cleanup stops it).
rc=0
timeout 300 "${runner_args[@]}" "$bench" "${bench_args[@]}" "${args[@]}" &
bench_pid=$!
wait "$bench_pid" || rc=$?
bench_pid=

# ---- wrk -t2 -c16 through nginx and nonoproxy (--wrk) -------------------------------------
# proc_ticks PID...: utime+stime of these processes and their children, in clock ticks.
proc_ticks() {
    local p c sum=0 f
    for p in "$@"; do
        for c in "$p" $(cat "/proc/$p/task/$p/children" 2>/dev/null); do
            # Fields after "pid (comm) ": state is [0], utime [11], stime [12].
            read -ra f < <(sed 's/^.*) //' "/proc/$c/stat" 2>/dev/null) || continue
            sum=$((sum + ${f[11]:-0} + ${f[12]:-0}))
        done
    done
    echo "$sum"
}

# wrk_line NAME ROUND OUT TICKS: one results line from wrk's output and the proxy's CPU ticks.
wrk_line() {
    local name=$1 round=$2 out=$3 ticks=$4 rps reqs errs
    rps=$(sed -n 's/^Requests\/sec: *//p' "$out")
    reqs=$(sed -n 's/^ *\([0-9]*\) requests in .*/\1/p' "$out")
    errs=$(awk '/Socket errors:/ { gsub(/,/, ""); s = $4 + $6 + $8 + $10 }
                /Non-2xx or 3xx responses:/ { n = $NF } END { print s + n + 0 }' "$out")
    if [ -z "$rps" ] || [ -z "$reqs" ] || [ "$reqs" = 0 ]; then
        echo "reverse.sh: wrk through $name gave no result:" >&2
        cat "$out" >&2
        rps=0 reqs=1 errs=$((errs + 1))
    fi
    echo "  wrk round $round $name: $rps req/s, $errs errors" >&2
    echo "wrk16r $name round=$round value=$rps cpu=$(awk -v t="$ticks" -v r="$reqs" \
        -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.4f", t / hz * 1e6 / r }') errors=$errs" \
        >>"${results:-/dev/null}"
}

if [ "$wrk_s" -gt 0 ] && command -v wrk >/dev/null && [ "$use_nginx" = 1 ]; then
    echo
    echo "wrk -t2 -c16 -d${wrk_s}s, $rounds rounds (nginx, nonoproxy alternated):"
    cat >"$tmp/phantom.lua" <<'LUA'
-- The phantom token comes from the environment nonoproxy-run gives wrk (or a dummy one for
-- nginx, which overwrites Authorization anyway): never from a command line.
local phantom = os.getenv("BENCH_PHANTOM") or "phantom-unset"
wrk.headers["Authorization"] = "Bearer " .. phantom
LUA
    # shellcheck disable=SC2016  # expanded by the inner shell, under nonoproxy-run
    wrk_inner='cat "/proc/$PPID/stat" >"$3.t0"; wrk -t2 -c16 -d"$1"s -s "$2" "$SVC_BASE_URL/bench" \
        >"$3"; cat "/proc/$PPID/stat" >"$3.t1"'
    for round in $(seq "$rounds"); do
        for name in nginx nonoproxy; do
            [ $((round % 2)) = 0 ] && name=$([ "$name" = nginx ] && echo nonoproxy || echo nginx)
            out="$tmp/wrk-$name-$round.out"
            if [ "$name" = nginx ]; then
                t0=$(proc_ticks "$px_pid")
                timeout $((wrk_s + 30)) wrk -t2 -c16 -d"${wrk_s}s" -s "$tmp/phantom.lua" \
                    "http://127.0.0.1:$px_port/svc/bench" >"$out" 2>&1 || true
                t1=$(proc_ticks "$px_pid")
            elif [ "$use_nonoproxy" = 1 ]; then
                timeout $((wrk_s + 30)) "${runner_args[@]}" sh -c "$wrk_inner" sh "$wrk_s" \
                    "$tmp/phantom.lua" "$out" >/dev/null 2>&1 || true
                t0=$(sed 's/^.*) //' "$out.t0" 2>/dev/null | awk '{ print $12 + $13 }')
                t1=$(sed 's/^.*) //' "$out.t1" 2>/dev/null | awk '{ print $12 + $13 }')
            else
                continue
            fi
            wrk_line "$name" "$round" "$out" $((${t1:-0} - ${t0:-0}))
        done
    done
fi

# ---- SSE time to first byte (--sse) --------------------------------------------------------
if [ "$sse_n" -gt 0 ]; then
    sse_runner=()
    if [ "$use_nonoproxy" = 1 ]; then
        sse_runner=("$runner" -q --route \
            "sse=http://127.0.0.1:$sse_port/sse,credential=env://BENCH_KEY,env-var=BENCH_PHANTOM")
        # grep -c reads the whole help: grep -q may exit first, and the SIGPIPE would fail
        # the pipeline (pipefail).
        if "$runner" --help 2>&1 | grep -c -- '--sandbox' >/dev/null; then
            sse_runner+=(--sandbox off)
        fi
        sse_runner+=(--)
    fi
    sse_args=(--sse "$sse_n" --ca "$ca" --direct "http://127.0.0.1:$sse_port/sse"
        --direct-key-env BENCH_DIRECT_KEY --phantom-env BENCH_PHANTOM --path /events
        --rounds "$rounds")
    if [ "$use_nonoproxy" = 1 ]; then
        sse_args+=(--nonoproxy-url-env SSE_BASE_URL)
    fi
    if [ "$use_nginx" = 1 ]; then
        sse_args+=(--nginx "http://127.0.0.1:$px_port/sse" --nginx-pid "$px_pid")
    fi
    if [ -n "$results" ]; then
        sse_args+=(--results "$results")
    fi
    srrc=0
    timeout 300 "${sse_runner[@]}" "$bench" "${sse_args[@]}" &
    bench_pid=$!
    wait "$bench_pid" || srrc=$?
    bench_pid=
    if [ "$rc" = 0 ]; then
        rc=$srrc
    fi
fi

# ---- what the upstream saw ---------------------------------------------------------------
# Flush the upstream's buffered access log: stop it now (SIGQUIT: finish, flush, exit).
kill -QUIT "$up_pid" 2>/dev/null || true
for _ in $(seq 50); do
    kill -0 "$up_pid" 2>/dev/null || break
    sleep 0.1
done
if [ -s "$tmp/up/access.log" ]; then
    echo
    echo "upstream view (whole run, checks and warm-up included):"
    awk -v d="$up_direct" -v n="$up_nonoproxy" -v g="$up_nginx" '
        BEGIN { name[d] = "direct"; name[n] = "nonoproxy"; name[g] = "nginx" }
        {
            p = $1; req[p]++
            if ($5 != 200) { bad[p]++ }
            if (!(($1, $2) in seen)) {
                seen[$1, $2] = 1; conns[p]++
                if ($4 == "r") { resumed[p]++ }
            }
            if ($3 > maxr[p]) { maxr[p] = $3 }
            if (!((p, $8) in suite)) { suite[p, $8] = 1; suites[p] = suites[p] " " $8 }
        }
        END {
            printf "  %-10s %9s %7s %8s %7s %12s  %s\n", "setup", "requests", "non-200",
                   "TLS conn", "resumed", "max req/conn", "TLS"
            split(d " " n " " g, order, " ")
            for (i = 1; i <= 3; i++) {
                p = order[i]
                if (!(p in req)) { continue }
                printf "  %-10s %9d %7d %8d %7d %12d %s\n", name[p], req[p], bad[p],
                       conns[p], resumed[p], maxr[p], suites[p]
            }
        }' "$tmp/up/access.log"
fi
if grep -q -v -e '\[notice\]' -e '\[info\]' "$tmp/up/error.log" 2>/dev/null; then
    echo "upstream error log:"
    grep -v -e '\[notice\]' -e '\[info\]' "$tmp/up/error.log" | tail -n 10
fi
if [ "$use_nginx" = 1 ] && grep -q -v -e '\[notice\]' -e '\[info\]' "$tmp/px/error.log"; then
    echo "nginx reverse proxy error log:"
    grep -v -e '\[notice\]' -e '\[info\]' "$tmp/px/error.log" | tail -n 10
fi
exit "$rc"
