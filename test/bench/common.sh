# shellcheck shell=bash disable=SC2154,SC2034  # sourced: pids, bench_pid, tp_*, sq_* are the caller's
# Shared by run.sh, bench.sh, reverse.sh and forward.sh (sourced, not run): stopping the
# processes a benchmark started, picking free loopback ports, waiting for a listener, starting
# tinyproxy and squid. The caller keeps its processes' pids in the array `pids` and the
# client's in `bench_pid`.

# Stop bench_pid, then every pid in pids: SIGTERM, then SIGKILL after 5 s (bounded).
bench_stop_processes() {
    local p
    if [ -n "${bench_pid:-}" ]; then
        kill "$bench_pid" 2>/dev/null || true
        wait "$bench_pid" 2>/dev/null || true
    fi
    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    for p in "${pids[@]}"; do
        for _ in $(seq 50); do
            kill -0 "$p" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
}

# Print a loopback TCP port below the ephemeral range that nothing listens on (and, when
# called in this shell rather than in $(...), that it has not handed out before).
given=" "
free_port() {
    local p
    for _ in $(seq 100); do
        p=$((20000 + RANDOM % 12000))
        case "$given" in *" $p "*) continue ;; esac
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            given="$given$p "
            echo "$p"
            return 0
        fi
    done
    return 1
}

# Wait up to 10 s for 127.0.0.1:$1 to accept connections while process $2 lives.
wait_listening() {
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
            return 0
        fi
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# start_tinyproxy_in DIR: tinyproxy on a free loopback port, its files in DIR; sets tp_port and
# tp_pid (added to pids). 0, or 1 with its output on stderr when it does not listen.
start_tinyproxy_in() {
    local tmp=$1 port conf="$1/tinyproxy.conf"
    port=$(free_port) || return 1
    # No ConnectPort line: tinyproxy then allows CONNECT to every port, the origin's included.
    cat >"$conf" <<EOF
Port $port
Listen 127.0.0.1
Timeout 600
MaxClients 1024
LogFile "$tmp/tinyproxy.log"
LogLevel Warning
PidFile "$tmp/tinyproxy.pid"
Allow 127.0.0.1
DisableViaHeader Yes
EOF
    tinyproxy -d -c "$conf" >"$tmp/tinyproxy.out" 2>&1 &
    pids+=($!)
    tp_pid=$!
    tp_port=$port
    if ! wait_listening "$port" "$!"; then
        echo "tinyproxy did not start:" >&2
        cat "$tmp/tinyproxy.out" >&2
        return 1
    fi
}

# start_squid_in DIR: squid (one worker, foreground) on a free loopback port, its files in
# DIR/squid; sets sq_port and sq_pid (added to pids). 0, or 1 with its logs on stderr.
start_squid_in() {
    local tmp=$1 port dir="$1/squid" user_line=""
    port=$(free_port) || return 1
    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then
        # squid will not run as root: it switches to the packaged user, which must reach $dir.
        chmod 711 "$tmp"
        chown proxy: "$dir" 2>/dev/null || chown nobody: "$dir"
        user_line="cache_effective_user $(stat -c %U "$dir")"
    fi
    cat >"$dir/squid.conf" <<EOF
http_port 127.0.0.1:$port
http_access allow localhost
http_access deny all
cache deny all
cache_mem 8 MB
access_log stdio:$dir/access.log
cache_log $dir/cache.log
cache_store_log none
pid_filename $dir/squid.pid
coredump_dir $dir
pinger_enable off
shutdown_lifetime 0 seconds
max_filedescriptors 4096
dns_nameservers 127.0.0.1
$user_line
EOF
    squid -N -f "$dir/squid.conf" >"$dir/out" 2>&1 &
    pids+=($!)
    sq_pid=$!
    sq_port=$port
    if ! wait_listening "$port" "$!"; then
        echo "squid did not start:" >&2
        cat "$dir/out" "$dir/cache.log" >&2 2>/dev/null || true
        return 1
    fi
}
