#!/usr/bin/env bash
# wrk against nonoproxy's route and nginx's (issue #12, item 5), or against nonoproxy's forward
# proxy and the origin directly; optionally profiles nonoproxy-run while it serves.
#
#   test/bench/wrk_route.sh [--forward] [--rounds N] [--seconds S] [--threads T] [--conns C]
#                           [--profile strace|perf|cs] [--post BYTES]
#     (route)     wrk -tT -cC to nonoproxy's route and to nginx as the same reverse proxy, both
#                 in front of one TLS 1.2 nginx upstream (64-byte answer; the key is injected);
#                 rounds alternate the order; prints req/s and the median of np/nginx per round.
#     --forward   absolute-form GETs through nonoproxy's forward proxy (Proxy-Authorization),
#                 next to wrk straight to the origin (plain nginx); median of np/direct.
#     --post      POST a body of BYTES bytes (Content-Length) instead of GET, to every setup.
#     --profile   one extra wrk run of nonoproxy only, under `strace -f -c` (system calls per
#                 request), `perf record -e cpu-clock -g` (report in $BENCH_LOG_DIR or /tmp) or
#                 `perf stat -e context-switches`.
# Defaults: 5 rounds of 3 s, -t2 -c16. Needs nginx, wrk, openssl, curl; BENCH_BUILD_DIR (default
# build-bench/, built by reverse.sh) must hold cli/nonoproxy-run. Every process it starts is
# stopped by pid on exit.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=common.sh
source "$here/common.sh"
mode=route
rounds=5
secs=3
threads=2
conns=16
profile=
post=0
while [ $# -gt 0 ]; do
    case "$1" in
    --forward) mode=forward ;;
    --rounds) rounds=$2; shift ;;
    --seconds) secs=$2; shift ;;
    --threads) threads=$2; shift ;;
    --conns) conns=$2; shift ;;
    --profile) profile=$2; shift ;;
    --post) post=$2; shift ;;
    *) echo "wrk_route.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
PATH=$PATH:/usr/sbin
for tool in nginx wrk openssl curl; do
    command -v "$tool" >/dev/null || { echo "wrk_route.sh: $tool is needed" >&2; exit 1; }
done
runner=${BENCH_BUILD_DIR:-$root/build-bench}/cli/nonoproxy-run
[ -x "$runner" ] || { echo "wrk_route.sh: no $runner (run reverse.sh once)" >&2; exit 1; }

tmp=$(mktemp -d /tmp/nonoproxy-wrk.XXXXXX)
pids=()
bench_pid=
# shellcheck disable=SC2317  # called through the EXIT trap
cleanup() {
    bench_stop_processes
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

body="nonoproxy reverse-proxy benchmark: a 64-byte answer, keep-alive."
umask 077
BENCH_KEY="bench-key-$(openssl rand -hex 16)"
export BENCH_KEY

nginx_common="worker_processes 2; events { worker_connections 1024; }"
nginx_http="client_body_temp_path $tmp/t1; proxy_temp_path $tmp/t2; fastcgi_temp_path $tmp/t3;
    uwsgi_temp_path $tmp/t4; scgi_temp_path $tmp/t5; keepalive_requests 10000000;
    keepalive_timeout 600s;"
# start_nginx DIR PORT: the configuration is DIR/nginx.conf
start_nginx() {
    nginx -e "$1/error.log" -p "$1" -c "$1/nginx.conf" -g "daemon off;" >"$1/out" 2>&1 &
    pids+=($!)
    wait_listening "$2" "$!" || { cat "$1/out" "$1/error.log" >&2; exit 1; }
}

up_np=$(free_port)
up_ng=$(free_port)
px_port=$(free_port)
mkdir -p "$tmp/up" "$tmp/px"
if [ "$mode" = route ]; then
    (
        cd "$tmp"
        openssl ecparam -name prime256v1 -genkey -noout -out ca.key 2>/dev/null
        openssl req -x509 -new -key ca.key -sha256 -days 2 -subj "/CN=wrk CA" \
            -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" \
            -out ca.crt 2>/dev/null
        openssl ecparam -name prime256v1 -genkey -noout -out server.key 2>/dev/null
        openssl req -new -key server.key -subj "/CN=localhost" -out server.csr 2>/dev/null
        printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1" >server.ext
        openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
            -sha256 -extfile server.ext -out server.crt 2>/dev/null
    )
    cat >"$tmp/up/nginx.conf" <<EOF
$nginx_common pid $tmp/up/nginx.pid;
http { $nginx_http access_log off;
    server { listen 127.0.0.1:$up_np ssl; listen 127.0.0.1:$up_ng ssl; server_name localhost;
        ssl_certificate $tmp/server.crt; ssl_certificate_key $tmp/server.key;
        ssl_protocols TLSv1.2; ssl_session_cache shared:bench:1m;
        location / {
            if (\$http_authorization != "Bearer $BENCH_KEY") { return 401 "no\n"; }
            default_type text/plain; return 200 "$body"; } } }
EOF
    start_nginx "$tmp/up" "$up_ng"
    cat >"$tmp/px/nginx.conf" <<EOF
$nginx_common pid $tmp/px/nginx.pid;
http { $nginx_http access_log $tmp/px/access.log combined buffer=64k flush=1s;
    upstream upstream_pool { server 127.0.0.1:$up_ng; keepalive 32;
        keepalive_requests 10000000; keepalive_timeout 600s; }
    server { listen 127.0.0.1:$px_port;
        location /svc/ { proxy_pass https://upstream_pool/; proxy_http_version 1.1;
            proxy_set_header Connection ""; proxy_set_header Authorization "Bearer $BENCH_KEY";
            proxy_ssl_verify on; proxy_ssl_trusted_certificate $tmp/ca.crt;
            proxy_ssl_name localhost; proxy_ssl_server_name on; proxy_ssl_session_reuse on; } } }
EOF
    start_nginx "$tmp/px" "$px_port"
    runner_args=("$runner" -q --ca-file "$tmp/ca.crt" --route
        "svc=https://localhost:$up_np,credential=env://BENCH_KEY,env-var=BENCH_PHANTOM")
    other="http://127.0.0.1:$px_port/svc/bench"
    other_name=nginx
else
    cat >"$tmp/up/nginx.conf" <<EOF
$nginx_common pid $tmp/up/nginx.pid;
http { $nginx_http access_log off;
    server { listen 127.0.0.1:$up_np; listen 127.0.0.1:$up_ng;
        location / { default_type text/plain; return 200 "$body"; } } }
EOF
    start_nginx "$tmp/up" "$up_ng"
    runner_args=("$runner" -q --allow 127.0.0.1)
    other="http://127.0.0.1:$up_ng/bench"
    other_name=direct
fi
# Not `--help | grep -q`: under pipefail, grep's early exit can fail the pipeline (SIGPIPE).
if [[ "$("$runner" --help 2>&1)" == *--sandbox* ]]; then
    runner_args+=(--sandbox off)
fi

# The wrk script for nonoproxy: the phantom (route) or the proxy credentials (forward), read
# from the environment nonoproxy-run gives its child, never from a command line.
cat >"$tmp/np.lua" <<EOF
local mode = "$mode"
if mode == "route" then
    wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_PHANTOM")
else
    local tok = os.getenv("NONO_PROXY_TOKEN")
    local b64 = io.popen("printf 'nono:%s' '" .. tok .. "' | base64 -w0"):read("*a")
    wrk.headers["Proxy-Authorization"] = "Basic " .. b64
    wrk.path = "http://127.0.0.1:$up_np/bench"
end
EOF
echo 'wrk.headers["Authorization"] = "Bearer not-the-key"' >"$tmp/other.lua"
if [ "$post" -gt 0 ]; then
    for f in np.lua other.lua; do
        printf 'wrk.method = "POST"\nwrk.body = string.rep("x", %d)\n' "$post" >>"$tmp/$f"
    done
fi

# The inner script runs inside nonoproxy-run ($PPID is nonoproxy-run).
cat >"$tmp/inner.sh" <<'EOF'
set -eu
mode=$1 rounds=$2 secs=$3 threads=$4 conns=$5 profile=$6 other=$7 other_name=$8 tmp=$9
if [ "$mode" = route ]; then np_url="$SVC_BASE_URL/bench"; else
    np_url=$(printf '%s' "$http_proxy" | sed 's#//[^@]*@#//#'); np_url="${np_url%/}/"; fi
np_pid=$PPID
run() { # run URL SCRIPT -> req/s
    wrk "-t$threads" "-c$conns" "-d${secs}s" -s "$2" "$1" >"$tmp/wrk.out" 2>&1
    if grep -q -e "Non-2xx" -e "Socket errors" "$tmp/wrk.out"; then
        echo "wrk_route.sh: errors: $(grep -e Non-2xx -e Socket "$tmp/wrk.out")" >&2; fi
    awk '/^Requests\/sec/ { print $2 }' "$tmp/wrk.out"
}
cpu() { awk '{ print $14 + $15 }' "/proc/$np_pid/stat"; }
run "$np_url" "$tmp/np.lua" >/dev/null   # warm-up: workers, upstream pool
ratios=
printf '%-6s %12s %12s %8s %10s\n' round nonoproxy "$other_name" ratio "np us/req"
for i in $(seq "$rounds"); do
    c0=$(cpu)
    if [ $((i % 2)) = 1 ]; then a=$(run "$np_url" "$tmp/np.lua"); c1=$(cpu)
        b=$(run "$other" "$tmp/other.lua")
    else b=$(run "$other" "$tmp/other.lua"); c0=$(cpu); a=$(run "$np_url" "$tmp/np.lua"); c1=$(cpu); fi
    r=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", a / b }')
    us=$(awk -v c="$((c1 - c0))" -v a="$a" -v s="$secs" -v hz="$(getconf CLK_TCK)" \
        'BEGIN { printf "%.1f", c / hz * 1e6 / (a * s) }')
    printf '%-6s %12s %12s %8s %10s\n' "$i" "$a" "$b" "$r" "$us"
    ratios="$ratios $r"
done
echo "$ratios" | tr ' ' '\n' | grep . | sort -n |
    awk -v n="$other_name" '{ v[NR] = $1 } END { printf "median np/%s %.3f (%d rounds)\n", n, v[int((NR + 1) / 2)], NR }'
case "$profile" in
strace)
    strace -f -c -o "$tmp/strace.out" -p "$np_pid" & sp=$!; sleep 1
    wrk "-t$threads" "-c$conns" "-d${secs}s" -s "$tmp/np.lua" "$np_url" >"$tmp/wrk.out" 2>&1
    kill -INT "$sp"; wait "$sp" || true
    n=$(awk '/requests in/ { print $1 }' "$tmp/wrk.out")
    echo "strace -f -c of nonoproxy-run over $n requests (calls per request):"
    awk -v n="$n" '$1 ~ /^[0-9.]+$/ && NF >= 5 { c = $4; name = $NF; if (name != "total")
        printf "  %-16s %8.2f\n", name, c / n; else printf "  %-16s %8.2f\n", "TOTAL", c / n }' \
        "$tmp/strace.out" | sort -k2 -n -r ;;
perf)
    out=${BENCH_LOG_DIR:-/tmp}/wrk-$mode.perf.data
    perf record -e cpu-clock -F 4000 -g -o "$out" -p "$np_pid" 2>/dev/null & pp=$!; sleep 0.5
    run "$np_url" "$tmp/np.lua"; kill -INT "$pp"; wait "$pp" || true
    echo "perf data: $out (perf report -i $out --no-children --sort sym)" ;;
cs)
    perf stat -e context-switches,cpu-clock -p "$np_pid" -o "$tmp/ps.out" & pp=$!; sleep 0.5
    a=$(run "$np_url" "$tmp/np.lua"); kill -INT "$pp"; wait "$pp" || true
    echo "req/s $a"; cat "$tmp/ps.out" ;;
esac
EOF
timeout 600 "${runner_args[@]}" -- sh "$tmp/inner.sh" "$mode" "$rounds" "$secs" "$threads" \
    "$conns" "$profile" "$other" "$other_name" "$tmp" &
bench_pid=$!
rc=0
wait "$bench_pid" || rc=$?
bench_pid=
exit "$rc"
