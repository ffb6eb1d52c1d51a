# shellcheck shell=bash disable=SC2154  # sourced; pids and bench_pid belong to the caller
# Shared by run.sh, reverse.sh and forward.sh (sourced, not run): stopping the processes a
# benchmark started, picking free loopback ports, waiting for a listener. The caller keeps
# its processes' pids in the array `pids` and the client's in `bench_pid`.

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
