"""Threads: drains from 8 threads while requests flow; callbacks during shutdown; no leaks."""

import gc
import sys
import threading
import tracemalloc

from nonoproxy import ProxyConfig, RouteConfig, start_proxy
import nptest

REQUESTS = 40


def test_eight_threads_drain_while_requests_flow(upstream, ca_file):
    route = RouteConfig("/svc", upstream.url())
    events = nptest.Events()
    with start_proxy(ProxyConfig(routes=[route], ca_file=ca_file, audit_callback=events)) as proxy:
        token = proxy.env_vars()["NONO_PROXY_TOKEN"]
        stop = threading.Event()
        drained = [[] for _ in range(8)]
        errors = []

        def drainer(out):
            try:
                while not stop.is_set():
                    out.extend(proxy.drain_audit_events())
            except Exception as exc:  # reported below
                errors.append(exc)

        def client(n):
            try:
                for _ in range(n):
                    status, _ = nptest.http_request(proxy.port, "/svc/x",
                                                    [("Authorization", "Bearer " + token)])
                    assert status == 200
            except Exception as exc:
                errors.append(exc)

        drainers = [threading.Thread(target=drainer, args=(d,)) for d in drained]
        clients = [threading.Thread(target=client, args=(REQUESTS // 4,)) for _ in range(4)]
        for t in drainers + clients:
            t.start()
        for t in clients:
            t.join(nptest.TIMEOUT * 4)
        events.wait_count(REQUESTS, mode="reverse", decision="allow")
        stop.set()
        for t in drainers:
            t.join(nptest.TIMEOUT)
        assert not errors, errors
        rest = proxy.drain_audit_events()
    got = [e for d in drained for e in d] + rest
    reverse = [e for e in got if e["mode"] == "reverse"]
    # Every event exactly once, none lost to a race between drainers.
    assert len(reverse) == REQUESTS
    stamps = sorted((e["timestamp_unix_ms"], id(e)) for e in reverse)
    assert len(stamps) == REQUESTS
    assert sorted(json_key(e) for e in got) == sorted(json_key(e) for e in events.events)


def json_key(e):
    return tuple(sorted((k, str(v)) for k, v in e.items()))


def test_callbacks_run_while_shutdown_waits(upstream, ca_file):
    """shutdown() releases the GIL: the close events of open tunnels reach the Python callback
    while shutdown joins the threads that deliver them."""
    events = nptest.Events()
    host = "127.0.0.1:%d" % upstream.port
    proxy = start_proxy(ProxyConfig(allowed_hosts=["127.0.0.1"], ca_file=ca_file,
                                    audit_callback=events))
    token = proxy.env_vars()["NONO_PROXY_TOKEN"]
    socks = []
    for _ in range(3):
        import base64
        import socket
        s = socket.create_connection(("127.0.0.1", proxy.port), timeout=nptest.TIMEOUT)
        auth = base64.b64encode(("nono:" + token).encode()).decode()
        s.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: Basic %s\r\n\r\n"
                   % (host, host, auth)).encode())
        assert b" 200 " in nptest.recv_head(s)
        socks.append(s)
    events.wait_count(3, mode="connect", decision="allow")
    proxy.shutdown()
    closes = [e for e in events.events if e["event"] == "close"]
    assert len(closes) == 3
    assert all(e["reason"] == "proxy shutdown" for e in closes)
    for s in socks:
        s.close()


def refcounts():
    return (sys.getrefcount(None), sys.getrefcount(True), sys.getrefcount(False))


def test_no_reference_or_memory_growth_over_10000_drains(upstream, ca_file):
    route = RouteConfig("/svc", upstream.url(), credential_key="vault://k")
    with start_proxy(ProxyConfig(routes=[route], ca_file=ca_file,
                                 credential_resolver=lambda k: "sk-x")) as proxy:
        token = proxy.env_vars()["NONO_PROXY_TOKEN"]
        for _ in range(20):  # events with None, True and str values in the ring
            nptest.http_request(proxy.port, "/svc/x", [("Authorization", "Bearer " + token)])
        upstream.wait_requests(20)

        def cycle():
            proxy.drain_audit_events()
            proxy.env_vars()
            proxy.credential_env_vars()
            proxy.diagnostics()

        tracemalloc.start()
        for _ in range(10000):  # warm the interpreter's caches and free lists, once
            cycle()
        gc.collect()
        before = refcounts()
        start, _ = tracemalloc.get_traced_memory()
        for _ in range(10000):
            cycle()
        gc.collect()
        end, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        after = refcounts()
    assert after == before
    assert end - start < 64 * 1024, "memory grew by %d bytes over 10000 drains" % (end - start)
    # The events drained with values: their dicts are freed with them.
    handle_refs = sys.getrefcount(proxy)
    for _ in range(1000):
        proxy.drain_audit_events()
    assert sys.getrefcount(proxy) == handle_refs
