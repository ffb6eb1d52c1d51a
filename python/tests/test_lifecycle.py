"""Interpreter exit with a running proxy, and os.fork(). Each case runs in a child interpreter
(the same one as the tests, with the same environment) so that its exit can be observed."""

import os
import subprocess
import sys
import textwrap

import nptest

PRELUDE = textwrap.dedent('''\
    import base64, os, socket, sys, threading
    from nonoproxy import ProxyConfig, start_proxy
    ''')


def run_child(code):
    """Run code in a fresh interpreter; return (exit status, output)."""
    res = subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(code)],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         timeout=nptest.TIMEOUT * 4, check=False)
    return res.returncode, res.stdout.decode(errors="replace")


def test_exit_with_running_proxy_and_busy_callbacks():
    """A proxy left running at exit, with requests and a Python audit callback still busy in
    daemon threads, is shut down by the atexit hook: exit status 0, no crash, no hang."""
    status, out = run_child('''
        seen = threading.Event()
        def on_event(ev):
            seen.set()
        proxy = start_proxy(ProxyConfig(allowed_hosts=["127.0.0.1"], audit_callback=on_event))
        token = proxy.env_vars()["NONO_PROXY_TOKEN"]
        auth = base64.b64encode(("nono:" + token).encode()).decode()
        def hammer():
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as s:
                        s.sendall(("CONNECT denied.example:443 HTTP/1.1\\r\\nHost: x\\r\\n"
                                   "Proxy-Authorization: Basic %s\\r\\n\\r\\n" % auth).encode())
                        s.recv(100)
                except OSError:
                    pass
        for _ in range(4):
            threading.Thread(target=hammer, daemon=True).start()
        assert seen.wait(60)
        print("exiting", flush=True)
        ''')
    assert status == 0, out
    assert "exiting" in out
    assert "Fatal" not in out and "Traceback" not in out, out


def test_exit_without_shutdown_or_traffic():
    status, out = run_child('''
        proxy = start_proxy(ProxyConfig())
        other = start_proxy(ProxyConfig())
        other.shutdown()
        ''')
    assert status == 0 and out == "", out


def test_fork_child_does_not_use_the_parents_proxy():
    """After os.fork() the child's handle refuses every call (the proxy's threads exist only in
    the parent) and the child exits normally (its atexit hook leaves the proxy alone); the
    parent's proxy keeps working."""
    status, out = run_child('''
        proxy = start_proxy(ProxyConfig(allowed_hosts=["127.0.0.1"]))
        token = proxy.env_vars()["NONO_PROXY_TOKEN"]
        pid = os.fork()
        if pid == 0:
            errors = 0
            for call in (proxy.env_vars, proxy.credential_env_vars, proxy.drain_audit_events,
                         proxy.diagnostics, proxy.shutdown, proxy.__enter__):
                try:
                    call()
                except RuntimeError as exc:
                    assert "parent process" in str(exc)
                    errors += 1
            mine = start_proxy(ProxyConfig())   # a new proxy in the child works
            mine.shutdown()
            sys.exit(0 if errors == 6 else 3)    # a normal exit: atexit runs here too
        _, st = os.waitpid(pid, 0)
        print("child", os.waitstatus_to_exitcode(st), flush=True)
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=30) as s:
            s.sendall(b"CONNECT denied.example:443 HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
            print(s.recv(100).split(b"\\r\\n")[0].decode(), flush=True)
        print(len(proxy.drain_audit_events()), flush=True)
        proxy.shutdown()
        ''')
    assert status == 0, out
    lines = out.split("\n")
    assert lines[0] == "child 0", out
    assert lines[1].startswith("HTTP/1.1 407"), out
    assert lines[2] == "1", out


def test_exit_while_decide_runs():
    """The interpreter exits while a decide call is in progress on a proxy thread (in pure
    Python, needing the GIL): the atexit hook's shutdown releases the GIL, the call returns,
    its client is denied, and the process exits normally."""
    status, out = run_child('''
        import time
        entered = threading.Event()
        def decide(host, port, mode, method):
            entered.set()
            end = time.monotonic() + 0.5
            while time.monotonic() < end:
                pass
            return "once"
        proxy = start_proxy(ProxyConfig(decide=decide))
        token = proxy.env_vars()["NONO_PROXY_TOKEN"]
        auth = base64.b64encode(("nono:" + token).encode()).decode()
        def client():
            with socket.create_connection(("127.0.0.1", proxy.port), timeout=30) as s:
                s.sendall(("CONNECT 127.0.0.1:9 HTTP/1.1\\r\\nHost: x\\r\\n"
                           "Proxy-Authorization: Basic %s\\r\\n\\r\\n" % auth).encode())
                s.recv(100)
        threading.Thread(target=client, daemon=True).start()
        assert entered.wait(60)
        print("exiting", flush=True)
        ''')
    assert status == 0, out
    assert out == "exiting\n", out
