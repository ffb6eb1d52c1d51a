"""--sandbox auto|on|off (SPEC §11, issue #5 item 2): the child of nonoproxy-run under Landlock.

A confined child that ignores the proxy variables and connects straight to a local server gets
EACCES; the same child reaches the server through the proxy; --sandbox off leaves it free;
auto (the default) confines on a kernel with Landlock ABI >= 4. The C unit test
test/unit/test_sandbox.c covers the confinement rules one by one; this module checks that
nonoproxy-run applies them to the real child and to what that child starts.
"""

import ctypes
import errno
import json
import platform
import subprocess
import sys
import unittest

from npe2e import BODY, Certs, E2ETestCase, require_tool

CURL = require_tool("curl")

# The child: `python3 -c CHILD ACTION PORT`. Prints one line per check; never uses the proxy
# variables unless the action says so.
CHILD = r"""
import base64, errno, json, os, socket, sys, urllib.parse

def name(exc):
    return errno.errorcode.get(exc.errno, str(exc.errno))

def direct(port):
    s = socket.socket()
    s.settimeout(30)
    try:
        s.connect(("127.0.0.1", port))
        return "CONNECTED"
    except OSError as exc:
        return name(exc)
    finally:
        s.close()

def tunnel(port):
    url = urllib.parse.urlsplit(os.environ["HTTPS_PROXY"])
    auth = base64.b64encode(("%s:%s" % (url.username, url.password)).encode()).decode()
    s = socket.create_connection((url.hostname, url.port), timeout=30)
    s.sendall(("CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
               "Proxy-Authorization: Basic %s\r\n\r\n" % (port, port, auth)).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            break
        head += chunk
    status = head.split(b" ", 2)[1].decode() if head.startswith(b"HTTP/") else "none"
    rest = head.partition(b"\r\n\r\n")[2]
    echo = "skipped"
    if status == "200":
        payload = b"through the proxy\n"
        s.sendall(payload)
        got = rest
        while len(got) < len(payload):
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
        echo = "ok" if got == payload else "bad %r" % got
    s.close()
    return "tunnel=%s echo=%s" % (status, echo)

def limits(port):
    out = {}
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", 0))
        out["bind"] = "ok"
    except OSError as exc:
        out["bind"] = name(exc)
    s.close()
    s = socket.socket()
    try:
        s.sendto(b"x", socket.MSG_FASTOPEN, ("127.0.0.1", port))
        out["fastopen"] = "ok"
    except OSError as exc:
        out["fastopen"] = name(exc)
    s.close()
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)  # IPPROTO_MPTCP
        s.settimeout(30)
        s.connect(("127.0.0.1", port))
        out["mptcp"] = "ok"
        s.close()
    except OSError as exc:
        out["mptcp"] = name(exc)
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.settimeout(30)
    u.bind(("127.0.0.1", 0))
    u.sendto(b"udp", u.getsockname())
    out["udp"] = "ok" if u.recv(16) == b"udp" else "bad"
    u.close()
    return json.dumps(out, sort_keys=True)

action, port = sys.argv[1], int(sys.argv[2])
if action == "direct":
    print("direct=" + direct(port))
elif action == "tunnel":
    print("direct=" + direct(port))
    print(tunnel(port))
elif action == "limits":
    print(limits(port))
sys.stdout.flush()
"""


def child(action, port):
    return [sys.executable, "-c", CHILD, action, str(port)]


def kernel_landlock_abi():
    """The kernel's Landlock ABI version (landlock_create_ruleset(NULL, 0, VERSION)), or -1."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.syscall(444, None, 0, 1)  # SYS_landlock_create_ruleset on x86_64/aarch64
    except (OSError, AttributeError):
        return -1


HAVE_LANDLOCK_NET = kernel_landlock_abi() >= 4


class Sandbox(E2ETestCase):

    def run_child(self, options, command):
        """Run nonoproxy-run with the options and the command; return (exit status, stdout)."""
        run = self.start(["-q"] + options, command, stdin=subprocess.DEVNULL)
        rc = run.wait()
        return rc, run.stdout.text()

    @unittest.skipUnless(HAVE_LANDLOCK_NET, "kernel without Landlock ABI 4")
    def test_on_direct_connect_is_eacces(self):
        srv = self.echo_server()
        rc, out = self.run_child(["--sandbox", "on", "--allow", "127.0.0.1"],
                                 child("direct", srv.port))
        self.assertEqual(rc, 0)
        self.assertEqual(out, "direct=EACCES\n")
        self.assertEqual(srv.connection_count(), 0, "the server saw a direct connection")

    @unittest.skipUnless(HAVE_LANDLOCK_NET, "kernel without Landlock ABI 4")
    def test_on_same_child_reaches_server_through_proxy(self):
        srv = self.echo_server()
        run = self.start(["-q", "--sandbox", "on", "--allow", "127.0.0.1"],
                         child("tunnel", srv.port), stdin=subprocess.DEVNULL)
        self.assertEqual(run.wait(), 0)
        self.assertEqual(run.stdout.text(), "direct=EACCES\ntunnel=200 echo=ok\n")
        self.assertEqual(srv.connection_count(), 1, "one connection: the proxy's")
        self.assertOneEvent(run.audit_events(), event="decision", mode="connect",
                            decision="allow", target="127.0.0.1", port=srv.port)

    @unittest.skipUnless(HAVE_LANDLOCK_NET, "kernel without Landlock ABI 4")
    def test_on_curl_through_https_proxy(self):
        srv = self.https_server()
        url = "https://127.0.0.1:%d/sandboxed" % srv.port
        run = self.start(["-q", "--sandbox", "on", "--allow", "127.0.0.1"],
                         [CURL, "--noproxy", "", "-sS", "--max-time", "60",
                          "--cacert", Certs.get().ca_cert, url], stdin=subprocess.DEVNULL)
        self.assertEqual(run.wait(), 0, run.stderr.text())
        self.assertEqual(run.stdout.raw(), BODY)
        self.assertEqual([r["path"] for r in srv.wait_requests(1)], ["/sandboxed"])

    @unittest.skipUnless(HAVE_LANDLOCK_NET, "kernel without Landlock ABI 4")
    def test_on_curl_ignoring_proxy_is_refused(self):
        srv = self.https_server()
        url = "https://127.0.0.1:%d/direct" % srv.port
        run = self.start(["-q", "--sandbox", "on", "--allow", "127.0.0.1"],
                         [CURL, "--noproxy", "*", "-sS", "--max-time", "60",
                          "--cacert", Certs.get().ca_cert, url], stdin=subprocess.DEVNULL)
        self.assertEqual(run.wait(), 7, "curl: couldn't connect to server")
        self.assertEqual(srv.requests, [])

    @unittest.skipUnless(HAVE_LANDLOCK_NET, "kernel without Landlock ABI 4")
    def test_on_grandchild_is_confined(self):
        srv = self.echo_server()
        # sh forks python (a grandchild of nonoproxy-run) and then reports it finished.
        script = '"$0" -c "$1" direct "$2"; echo sh-done'
        rc, out = self.run_child(["--sandbox", "on", "--allow", "127.0.0.1"],
                                 ["sh", "-c", script, sys.executable, CHILD, str(srv.port)])
        self.assertEqual(rc, 0)
        self.assertEqual(out, "direct=EACCES\nsh-done\n")
        self.assertEqual(srv.connection_count(), 0)

    @unittest.skipUnless(HAVE_LANDLOCK_NET, "kernel without Landlock ABI 4")
    def test_on_bind_fastopen_mptcp_refused_udp_not_covered(self):
        srv = self.echo_server()
        rc, out = self.run_child(["--sandbox", "on"], child("limits", srv.port))
        self.assertEqual(rc, 0)
        got = json.loads(out)
        if platform.machine() not in ("x86_64", "aarch64"):  # no seccomp filter there
            got.pop("fastopen")
            got.pop("mptcp")
            self.assertEqual(got, {"bind": "EACCES", "udp": "ok"})
            return
        # EOPNOTSUPP and ENOTSUP are one value on Linux; errorcode names it ENOTSUP.
        self.assertEqual(got, {"bind": "EACCES", "fastopen": errno.errorcode[errno.EOPNOTSUPP],
                               "mptcp": "EPROTONOSUPPORT", "udp": "ok"})
        self.assertEqual(srv.connection_count(), 0)

    def test_off_reaches_server_directly(self):
        srv = self.echo_server()
        rc, out = self.run_child(["--sandbox", "off", "--allow", "127.0.0.1"],
                                 child("direct", srv.port))
        self.assertEqual(rc, 0)
        self.assertEqual(out, "direct=CONNECTED\n")
        self.assertEqual(len(srv.wait_received(lambda rs: len(rs) >= 1)), 1,
                         "the server saw the direct connection")

    @unittest.skipUnless(HAVE_LANDLOCK_NET, "kernel without Landlock ABI 4")
    def test_auto_confines_on_this_kernel(self):
        srv = self.echo_server()
        rc, out = self.run_child(["--sandbox", "auto", "--allow", "127.0.0.1"],
                                 child("direct", srv.port))
        self.assertEqual(rc, 0)
        self.assertEqual(out, "direct=EACCES\n")
        self.assertEqual(srv.connection_count(), 0)

    @unittest.skipUnless(HAVE_LANDLOCK_NET, "kernel without Landlock ABI 4")
    def test_default_is_auto(self):
        srv = self.echo_server()
        rc, out = self.run_child(["--allow", "127.0.0.1"], child("direct", srv.port))
        self.assertEqual(rc, 0)
        self.assertEqual(out, "direct=EACCES\n")


if __name__ == "__main__":
    unittest.main()
