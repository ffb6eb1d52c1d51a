#!/usr/bin/env python3
"""Server-sent events: time to the first event through nonoproxy's route, next to the same
client straight to the origin (issue #12, SSE row). Standalone; run from the repository:

    test/bench/wrk_sse_ttfb.py [--runner build-bench/cli/nonoproxy-run] [--n 300]

The origin (a thread of this process, plain HTTP on 127.0.0.1) answers every GET with a
chunked text/event-stream head, then, 2 ms later, one event, then the last chunk: the head
and the event are separate writes, as a streaming server sends them. The client (a child of
nonoproxy-run, which gives it $SVC_BASE_URL) keeps one connection per setup and alternates
direct and proxied requests, and measures from the request's send to the first byte of the event
(and to the first byte of the head). Prints the medians and the proxied - direct
differences in milliseconds.
"""
import os
import socket
import statistics
import subprocess
import sys
import threading
import time

EVENT = b"data: hello\n\n"
GAP_S = 0.002


def origin_conn(conn):
    """Keep-alive: one event stream per request, until the peer closes."""
    with conn:
        buf = b""
        while True:
            while b"\r\n\r\n" not in buf:
                got = conn.recv(4096)
                if not got:
                    return
                buf += got
            buf = buf.split(b"\r\n\r\n", 1)[1]
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                         b"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n")
            time.sleep(GAP_S)
            conn.sendall(b"%x\r\n%s\r\n" % (len(EVENT), EVENT))
            conn.sendall(b"0\r\n\r\n")


def origin(lsock):
    while True:
        conn, _ = lsock.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=origin_conn, args=(conn,), daemon=True).start()


def one(s, path):
    """Seconds to the first head byte and to the first event byte, on the kept-alive s."""
    # A route without a credential of its own takes the session token.
    auth = os.environ.get("NONO_PROXY_TOKEN", "").encode()
    req = (b"GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
           b"Accept: text/event-stream\r\n\r\n" % (path.encode(), auth))
    t0 = time.perf_counter()
    s.sendall(req)
    buf = b""
    t_head = None
    t_event = None
    while not buf.endswith(b"\r\n0\r\n\r\n"):
        got = s.recv(65536)
        if not got:
            raise RuntimeError("closed before the end: %r" % buf[:200])
        if t_head is None:
            t_head = time.perf_counter()
        buf += got
        if t_event is None and EVENT[:5] in buf:
            t_event = time.perf_counter()
    if not buf.startswith(b"HTTP/1.1 200"):
        raise RuntimeError("unexpected answer %r" % buf[:100])
    return t_head - t0, t_event - t0


def connect(host, port):
    s = socket.create_connection((host, port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def client(n, direct_port):
    base = os.environ["SVC_BASE_URL"]  # http://127.0.0.1:PORT/svc
    hostport = base.split("//", 1)[1].split("/", 1)[0]
    host, port = hostport.rsplit(":", 1)
    res = {"direct": ([], []), "nonoproxy": ([], [])}
    conns = {"direct": connect(host, direct_port), "nonoproxy": connect(host, int(port))}
    for i in range(n + 20):
        for name, path in (("direct", "/ev"), ("nonoproxy", "/svc/ev"))[:: 1 if i % 2 else -1]:
            h, e = one(conns[name], path)
            if i >= 20:  # warm-up: worker threads, the upstream pool
                res[name][0].append(h)
                res[name][1].append(e)
    med = {k: (statistics.median(v[0]) * 1e3, statistics.median(v[1]) * 1e3)
           for k, v in res.items()}
    print("SSE on one kept-alive connection per setup, %d requests each (medians, ms; the origin "
          "sends the event %.1f ms after the head)" % (n, GAP_S * 1e3))
    print("  %-10s %10s %10s" % ("setup", "head", "event"))
    for k in ("direct", "nonoproxy"):
        print("  %-10s %10.3f %10.3f" % (k, med[k][0], med[k][1]))
    print("  nonoproxy - direct: head +%.3f ms, event +%.3f ms" %
          (med["nonoproxy"][0] - med["direct"][0], med["nonoproxy"][1] - med["direct"][1]))


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        client(int(sys.argv[2]), int(sys.argv[3]))
        return 0
    runner = "build-bench/cli/nonoproxy-run"
    n = 300
    args = sys.argv[1:]
    while args:
        if args[0] == "--runner":
            runner = args[1]
        elif args[0] == "--n":
            n = int(args[1])
        else:
            print("usage: wrk_sse_ttfb.py [--runner PATH] [--n N]", file=sys.stderr)
            return 2
        args = args[2:]
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(128)
    port = lsock.getsockname()[1]
    threading.Thread(target=origin, args=(lsock,), daemon=True).start()
    cmd = [runner, "-q", "--route", "svc=http://127.0.0.1:%d" % port]
    if "--sandbox" in subprocess.run([runner, "--help"], capture_output=True,
                                     text=True).stdout + "":
        cmd += ["--sandbox", "off"]
    cmd += ["--", sys.executable, os.path.abspath(__file__), "--client", str(n), str(port)]
    return subprocess.run(cmd, timeout=300).returncode


if __name__ == "__main__":
    sys.exit(main())
