"""The external (enterprise) proxy through nonoproxy-run, against a real tinyproxy: SPEC §3, §8,
§9, §11 (issue #4 parts 2 and 3).

Addresses. SPEC §8 sends loopback destinations directly, so origins on 127.0.0.1 can never show
"went through the enterprise proxy". This module therefore runs only inside the private network
namespace run_e2e.py creates (`unshare --net`, as root), where it gives the loopback interface
three more addresses (ioctl, no extra package): 10.200.0.1, 10.200.0.2 and 10.200.0.3 — ordinary
private destinations as far as nonoproxy is concerned, local to this namespace only, gone with
it. Outside the namespace the module fails with a message saying so, rather than skip (adding
addresses to the machine's own loopback from a test is not acceptable).

  10.200.0.1   origin reached through tinyproxy
  10.200.0.2   origin named by --bypass: reached directly
  10.200.0.3   origin tinyproxy's Filter refuses
  10.200.0.4   assigned to nothing (never connected to)

tinyproxy (Debian package tinyproxy) runs in the foreground on 127.0.0.1 with BasicAuth, a
Filter (ERE, default allow) and an Info-level log file, which records the request line of every
request it receives ("Request (file descriptor N): CONNECT 10.200.0.1:PORT HTTP/1.1"). That
log is the witness of what went through the enterprise proxy; Tinyproxy.barrier() makes the
"never reached it" checks deterministic (a request of our own, answered after every earlier
request was logged).

A scripted fake enterprise proxy (FakeEnterprise) checks what tinyproxy cannot show: the exact
CONNECT bytes nonoproxy sends, answers other than 2xx, garbage, early tunnel bytes.
"""

import base64
import fcntl
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
import unittest

from npe2e import (AUDIT_BELOW, IN_NETNS, IO_TIMEOUT, START_TIMEOUT, Certs, E2ETestCase,
                   ProxyInfo, Response, absolute_request, closed_port, connect_head,
                   connect_proxy, deadline_after, exchange, find_leaks, holder_command,
                   matching, num, open_tunnel, read_exactly, read_http_response, read_to_eof,
                   require_tool, server_context_for, tunnel_roundtrip)
from upstream import DEFAULT_BODY, ScriptedUpstream

CURL = require_tool("curl")

THROUGH = "10.200.0.1"   # reached through tinyproxy
BYPASSED = "10.200.0.2"  # --bypass: reached directly
FILTERED = "10.200.0.3"  # tinyproxy's Filter refuses it
NOWHERE = "10.200.0.4"   # not assigned
EXTRA_ADDRESSES = (THROUGH, BYPASSED, FILTERED)

TINYPROXY_USER = "corp-user"
TINYPROXY = "/usr/bin/tinyproxy"


# --------------------------------------------------------------------------------------------
# Module set-up: the private network namespace and its extra loopback addresses
# --------------------------------------------------------------------------------------------

SIOCSIFADDR = 0x8916
SIOCSIFNETMASK = 0x891C


def _sockaddr_in(addr):
    return struct.pack("=H2s4s8s", socket.AF_INET, b"\0\0", socket.inet_aton(addr), b"\0" * 8)


def _ifreq(name, payload):
    return struct.pack("16s", name.encode()) + payload + b"\0" * (40 - 16 - len(payload))


def add_loopback_addresses(addresses):
    """Give lo the addresses (as /32 aliases lo:1, lo:2, ...), like `ip addr add A/32 dev lo`."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for i, addr in enumerate(addresses, 1):
            label = "lo:%d" % i
            fcntl.ioctl(s.fileno(), SIOCSIFADDR, _ifreq(label, _sockaddr_in(addr)))
            fcntl.ioctl(s.fileno(), SIOCSIFNETMASK, _ifreq(label, _sockaddr_in("255.255.255.255")))


def setUpModule():  # noqa: N802 (unittest naming)
    if not IN_NETNS:
        raise RuntimeError(
            "e2e_external needs the private network namespace of run_e2e.py (`unshare --net`, "
            "i.e. run it as root, with NONOPROXY_E2E_NETNS unset or 'on'): it adds the "
            "non-loopback test addresses 10.200.0.1-3 to that namespace's loopback interface, "
            "which it will not do to this machine's own")
    if not os.access(TINYPROXY, os.X_OK):
        raise RuntimeError("e2e_external needs tinyproxy (apt-get install tinyproxy)")
    try:
        add_loopback_addresses(EXTRA_ADDRESSES)
    except OSError as exc:
        raise RuntimeError("cannot add the test addresses to lo in the network namespace: %s"
                           % exc) from None
    for addr in EXTRA_ADDRESSES:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((addr, 0))  # fails loudly if the address is not usable


# --------------------------------------------------------------------------------------------
# tinyproxy
# --------------------------------------------------------------------------------------------

def free_port():
    """A loopback port that was free a moment ago (tinyproxy cannot take port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def basic(user, password):
    return "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


REQUEST_LINE = re.compile(r"Request \(file descriptor \d+\): (.*)$")


class Tinyproxy:
    """tinyproxy -d on 127.0.0.1 with BasicAuth user/password, a Filter and a log file.

    Registered in the test's process list, so a failing test prints its configuration and
    log next to nonoproxy-run's diagnostics."""

    POLL = 0.02  # seconds between two looks at the log while tinyproxy starts

    def __init__(self, password, filters=()):
        self.user = TINYPROXY_USER
        self.password = password
        self.dir = tempfile.mkdtemp(prefix="nonoproxy-e2e-tinyproxy-")
        self.log_path = os.path.join(self.dir, "tinyproxy.log")
        self.filter_path = os.path.join(self.dir, "filter")
        self.conf_path = os.path.join(self.dir, "tinyproxy.conf")
        self.notes = []
        self.proc = None
        self.port = None
        self._barriers = 0
        self._log_text = None
        with open(self.filter_path, "w", encoding="ascii") as f:
            for line in list(filters) + [r"^barrier-"]:
                f.write(line + "\n")
        last = ""
        for _ in range(20):  # another process may take the port between probe and bind
            self.port = free_port()
            self._write_conf()
            with open(self.log_path, "w", encoding="ascii"):
                pass
            self.proc = subprocess.Popen([TINYPROXY, "-d", "-c", self.conf_path],
                                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, cwd=self.dir)
            if self._wait_started():
                return
            last = self._reap()
            if "Address already in use" not in last + self.log():
                break
        self.close()
        raise RuntimeError("tinyproxy did not start:\n%s\n-- log --\n%s" % (last, self.log()))

    def _write_conf(self):
        with open(self.conf_path, "w", encoding="ascii") as f:
            f.write(self._conf_text())

    def _conf_text(self):
        return ("Port %d\n"
                "Listen 127.0.0.1\n"
                "Timeout 600\n"
                "MaxClients 100\n"
                "LogFile \"%s\"\n"
                "LogLevel Info\n"
                "BasicAuth %s %s\n"
                "Filter \"%s\"\n"
                "FilterType ere\n"
                "FilterDefaultDeny No\n"
                "DisableViaHeader Yes\n"
                % (self.port, self.log_path, self.user, self.password, self.filter_path))

    def _wait_started(self):
        """Wait (bounded) until tinyproxy logs that it accepts connections, or exits."""
        end = deadline_after(START_TIMEOUT)
        while time.monotonic() < end:
            if "Accepting connections" in self.log():
                return True
            if self.proc.poll() is not None:
                return False
            time.sleep(self.POLL)
        self.notes.append("tinyproxy did not report 'Accepting connections' in %.0f s"
                          % START_TIMEOUT)
        return False

    def _reap(self):
        """Stop the process (if still running); return its output."""
        if self.proc is None:
            return ""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=IO_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=IO_TIMEOUT)
        out = self.proc.stdout.read().decode("utf-8", errors="replace")
        self.proc.stdout.close()
        return out

    def log(self):
        if self._log_text is not None:
            return self._log_text
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def request_lines(self):
        """The request line of every request tinyproxy received, in log order."""
        out = []
        for line in self.log().splitlines():
            m = REQUEST_LINE.search(line)
            if m:
                out.append(m.group(1).strip())
        return out

    def barrier(self):
        """Send tinyproxy a request of our own and wait for its answer: tinyproxy logs a
        request line when it reads it, so every request that reached it before now is in the
        log afterwards. Returns the barrier's request line."""
        self._barriers += 1
        target = "barrier-%d.invalid:1" % self._barriers
        with socket.create_connection(("127.0.0.1", self.port), timeout=IO_TIMEOUT) as s:
            s.sendall(connect_head(target, basic(self.user, self.password)))
            resp = Response(read_to_eof(s))
        if resp.status != 403:
            raise AssertionError("tinyproxy answered the barrier with %r, not 403 Filtered"
                                 % resp.status_line)
        line = "CONNECT %s HTTP/1.1" % target
        if line not in self.request_lines():
            raise AssertionError("the barrier is not in tinyproxy's log")
        return line

    def connect_status(self, target, auth):
        """tinyproxy's own status for a CONNECT to target with the given Proxy-Authorization
        (None for none), asked directly."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=IO_TIMEOUT) as s:
            s.sendall(connect_head(target, auth))
            head = b""
            while b"\r\n" not in head:
                data = s.recv(4096)
                if not data:
                    break
                head += data
        return Response(head).status

    # -- the E2ETestCase process-list interface ------------------------------------------------

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()

    def diagnostics(self):
        conf = self._conf_text().replace(self.password, "[password]") if self.port else ""
        return "\n".join(["---- tinyproxy on 127.0.0.1:%s ----" % self.port,
                          "-- configuration --", conf.rstrip("\n")]
                         + ["note: %s" % n for n in self.notes]
                         + ["-- log --", self.log().rstrip("\n"), "---- end of tinyproxy ----"])

    def close(self):
        self._reap()
        self._log_text = self.log()
        shutil.rmtree(self.dir, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# A scripted enterprise proxy
# --------------------------------------------------------------------------------------------

FAKE_BODY = b"answered inside the fake enterprise tunnel\n"


class FakeEnterprise:
    """An enterprise proxy on 127.0.0.1 that records every CONNECT head it receives and
    answers per script(head: bytes) -> (answer bytes, then), then in
      "echo"  echoes the tunnel's bytes back until EOF,
      "http"  answers each HTTP/1.1 request inside the tunnel with FAKE_BODY (recording its
              head in `inner`),
      "close" closes the connection."""

    def __init__(self, script):
        self.script = script
        self.heads = []
        self.inner = []
        self._cond = threading.Condition()
        self._conns = []
        self._lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._lst.bind(("127.0.0.1", 0))
        self._lst.listen(64)
        self.port = self._lst.getsockname()[1]
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def _accept_loop(self):
        while True:
            try:
                conn, _ = self._lst.accept()
            except OSError:
                return
            with self._cond:
                self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @staticmethod
    def _read_head(conn, buf):
        while b"\r\n\r\n" not in buf:
            data = conn.recv(65536)
            if not data:
                return None, buf
            buf += data
        head, _, rest = buf.partition(b"\r\n\r\n")
        return head + b"\r\n\r\n", rest

    def _serve(self, conn):
        try:
            conn.settimeout(120)
            head, rest = self._read_head(conn, b"")
            if head is None:
                return
            with self._cond:
                self.heads.append(head)
                self._cond.notify_all()
            answer, then = self.script(head)
            conn.sendall(answer)
            if then == "echo":
                if rest:
                    conn.sendall(rest)
                while True:
                    data = conn.recv(65536)
                    if not data:
                        return
                    conn.sendall(data)
            elif then == "http":
                while True:
                    inner, rest = self._read_head(conn, rest)
                    if inner is None:
                        return
                    with self._cond:
                        self.inner.append(inner)
                        self._cond.notify_all()
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s"
                                 % (len(FAKE_BODY), FAKE_BODY))
        except OSError:
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def head_for(self, target):
        """The CONNECT head whose request line names target, or None."""
        with self._cond:
            for head in self.heads:
                if head.split(b"\r\n", 1)[0] == b"CONNECT %s HTTP/1.1" % target.encode():
                    return head
        return None

    def close(self):
        try:
            self._lst.close()
        except OSError:
            pass
        with self._cond:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                c.close()
            except OSError:
                pass


def head_headers(head):
    """[(lower-case name, value)] of a request head."""
    out = []
    for line in head.decode("latin-1").split("\r\n")[1:]:
        if line:
            name, _, value = line.partition(":")
            out.append((name.strip().lower(), value.strip()))
    return out


# --------------------------------------------------------------------------------------------
# Test base
# --------------------------------------------------------------------------------------------

def base_env(**extra):
    """The test's environment without an external proxy of its own, plus extra."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("NONOPROXY_EXTERNAL_PROXY", "NO_PROXY", "no_proxy")
           and not k.startswith("NP_E2E_")}
    env.update(extra)
    return env


def new_password():
    return "corp-pw-" + os.urandom(8).hex()


class ExternalCase(E2ETestCase):

    def tinyproxy(self, password=None, filters=(r"^10\.200\.0\.3$",)):
        tp = Tinyproxy(password or new_password(), filters)
        self._runs.append(tp)
        self.addCleanup(tp.close)
        return tp

    def fake_enterprise(self, script):
        fe = FakeEnterprise(script)
        self.addCleanup(fe.close)
        return fe

    def origin(self, addr, tls=True, handler=None):
        """A recording origin listening on addr only (HTTPS with a certificate for addr)."""
        ctx = server_context_for("IP:" + addr) if tls else None
        srv = ScriptedUpstream(tls=tls, handler=handler, host=addr, ssl_context=ctx)
        self.addCleanup(srv.close)
        return srv

    @staticmethod
    def address(proxy, user=None, password=None, host="127.0.0.1"):
        """user:password@127.0.0.1:port of a Tinyproxy (or the port of a fake)."""
        port = proxy if isinstance(proxy, int) else proxy.port
        if isinstance(proxy, Tinyproxy):
            user = proxy.user if user is None else user
            password = proxy.password if password is None else password
        if user is None:
            return "%s:%d" % (host, port)
        return "%s:%s@%s:%d" % (user, password, host, port)

    def start_external(self, address, options=(), command=None, via="option", env=None):
        """nonoproxy-run with the external proxy given by --external-proxy (via="option") or
        by NONOPROXY_EXTERNAL_PROXY (via="env"); holder.py as the child unless command."""
        env = base_env() if env is None else env
        opts = list(options)
        if via == "env":
            env["NONOPROXY_EXTERNAL_PROXY"] = address
        else:
            opts = ["--external-proxy", address] + opts
        if command is None:
            run = self.start(opts, holder_command, env=env)
            return run, ProxyInfo(run.holder_ready())
        return self.start(opts, command, env=env, stdin=subprocess.DEVNULL), None

    def https_get(self, info, target_host, port, path):
        """CONNECT host:port through nonoproxy, TLS to the origin (test CA), GET path; return
        (Response of the CONNECT, HTTPResult or None)."""
        sock, resp, extra = open_tunnel(info.port, "%s:%d" % (target_host, port), info.basic())
        if sock is None:
            return resp, None
        try:
            self.assertEqual(extra, b"", "bytes before the TLS handshake")
            tls = Certs.get().client_context().wrap_socket(sock, server_hostname=target_host)
            tls.sendall(b"GET %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n\r\n"
                        % (path.encode(), target_host.encode(), port))
            res, _ = read_http_response(tls)
            tls.close()
            return resp, res
        finally:
            sock.close()

    def assert_only_through_tinyproxy(self, tp, lines):
        """tinyproxy received exactly these request lines (then the barrier), in order."""
        barrier = tp.barrier()
        self.assertEqual(tp.request_lines(), list(lines) + [barrier],
                         "the requests tinyproxy received")

    def assert_rejected(self, resp, status_text):
        """A complete 502 whose body names the enterprise proxy's status."""
        self.assertErrorResponse(resp, 502)
        self.assertIn(status_text.encode(), resp.body,
                      "the 502 body names the enterprise proxy's status %s" % status_text)

    def curl(self, *args):
        return [CURL, "-sS", "--max-time", "60", "--cacert", Certs.get().ca_cert] + list(args)


# --------------------------------------------------------------------------------------------
# Through a real tinyproxy (issue #4 part 3)
# --------------------------------------------------------------------------------------------

class ThroughTinyproxy(ExternalCase):

    def test_curl_connect_reaches_the_origin_through_tinyproxy(self):
        tp = self.tinyproxy()
        srv = self.origin(THROUGH)
        run, _ = self.start_external(self.address(tp), ["-q"], via="env",
                                     command=self.curl(srv.url(path="/via-tinyproxy")))
        self.assertEqual(run.wait(), 0, "curl's exit status")
        self.assertEqual(run.stdout.raw(), DEFAULT_BODY)
        self.assertEqual([r.target for r in srv.requests()], ["/via-tinyproxy"])
        self.assert_only_through_tinyproxy(tp, ["CONNECT %s HTTP/1.1" % srv.authority()])
        ev = self.assertOneEvent(run.audit_events(), event="decision", mode="external",
                                 decision="allow", target=THROUGH, port=srv.port)
        self.assertEqual(ev.get("method"), "CONNECT", ev)

    def test_bypassed_and_loopback_destinations_connect_directly(self):
        tp = self.tinyproxy()
        through = self.origin(THROUGH)
        bypassed = self.origin(BYPASSED)
        local = ScriptedUpstream(tls=True)  # 127.0.0.1 and ::1: loopback goes direct
        self.addCleanup(local.close)
        urls = [through.url(path="/t"), bypassed.url(path="/b"), local.url(path="/l"),
                "https://localhost:%d/l2" % local.port]
        run, _ = self.start_external(self.address(tp), ["-q", "--bypass", "*.unused.test",
                                                        "--bypass", BYPASSED],
                                     command=self.curl("--noproxy", "", *urls))
        self.assertEqual(run.wait(), 0, "curl's exit status")
        self.assertEqual(run.stdout.raw(), DEFAULT_BODY * 4)
        self.assertEqual([r.target for r in through.requests()], ["/t"])
        self.assertEqual([r.target for r in bypassed.requests()], ["/b"])
        self.assertEqual([r.target for r in local.requests()], ["/l", "/l2"])
        self.assert_only_through_tinyproxy(tp, ["CONNECT %s HTTP/1.1" % through.authority()])
        events = run.audit_events()
        self.assertOneEvent(events, event="decision", mode="external", decision="allow",
                            target=THROUGH, port=through.port)
        for target, port in ((BYPASSED, bypassed.port), ("127.0.0.1", local.port),
                             ("localhost", local.port)):
            self.assertOneEvent(events, event="decision", mode="connect", decision="allow",
                                target=target, port=port)

    def test_wildcard_bypass_respects_label_boundaries(self):
        # Names: the local lookup fails in the namespace (no DNS), which does not block a
        # request that goes through the enterprise proxy (SPEC §8); tinyproxy cannot resolve
        # them either and answers an error, so each ends in a 502 — what matters is which
        # went to tinyproxy.
        tp = self.tinyproxy()
        run, info = self.start_external(self.address(tp), ["-q", "--bypass", "*.corp.test",
                                                           "--connect-timeout", "5"])
        direct = ["a.corp.test:443", "deep.a.corp.test:443"]
        through = ["corp.test:443", "xcorp.test:443", "a.corp.test.evil.test:443"]
        for target in direct + through:
            with self.subTest(target):
                resp = exchange(info.port, connect_head(target, info.basic()))
                self.assertErrorResponse(resp, 502)
        self.assert_only_through_tinyproxy(tp, ["CONNECT %s HTTP/1.1" % t for t in through])
        events = self.finish(run)
        for target in direct:
            host = target.rsplit(":", 1)[0]
            self.assertOneEvent(events, event="decision", mode="connect", decision="deny",
                                target=host, denial_category="upstream_connect_failed")
        for target in through:
            host = target.rsplit(":", 1)[0]
            self.assertOneEvent(events, event="decision", mode="external", decision="deny",
                                target=host, denial_category="external_proxy_rejected")

    def test_host_tinyproxy_filters_gives_502_external_proxy_rejected(self):
        tp = self.tinyproxy()
        srv = self.origin(FILTERED)
        plain = self.origin(FILTERED, tls=False)
        self.assertEqual(tp.connect_status(srv.authority(), basic(tp.user, tp.password)), 403,
                         "tinyproxy itself answers 403 Filtered")  # the first line of its log
        run, info = self.start_external(self.address(tp), ["-q"])
        resp, _ = self.https_get(info, FILTERED, srv.port, "/filtered")
        self.assert_rejected(resp, "403")
        fresp = exchange(info.port, absolute_request("GET", plain.url(path="/filtered-fwd"),
                                                     info.basic()))
        self.assert_rejected(fresp, "403")
        self.assertEqual(srv.connection_count() + plain.connection_count(), 0,
                         "the filtered origin was reached")
        self.assert_only_through_tinyproxy(tp, ["CONNECT %s HTTP/1.1" % srv.authority()] * 2
                                           + ["CONNECT %s HTTP/1.1" % plain.authority()])
        events = self.finish(run)
        for port in (srv.port, plain.port):
            ev = self.assertOneEvent(events, event="decision", mode="external",
                                     decision="deny", target=FILTERED, port=port,
                                     denial_category="external_proxy_rejected")
            self.assertEqual(num(ev, "status"), 502, ev)
            self.assertIn("403", ev.get("reason") or "", ev)

    def test_wrong_or_missing_enterprise_credentials_give_502(self):
        tp = self.tinyproxy()
        srv = self.origin(THROUGH)
        rows = [("wrong password", self.address(tp, password="not-" + tp.password),
                 basic(tp.user, "not-" + tp.password)),
                ("no credentials", self.address(tp.port), None)]
        for label, address, auth in rows:
            with self.subTest(label):
                status = tp.connect_status(srv.authority(), auth)
                self.assertIn(status, (401, 407), "tinyproxy refuses the credentials itself")
                run, info = self.start_external(address, ["-q"])
                resp, _ = self.https_get(info, THROUGH, srv.port, "/x")
                self.assert_rejected(resp, str(status))
                self.assertEqual(resp.header_all("proxy-authenticate"), [],
                                 "the enterprise proxy's challenge reached the client")
                events = self.finish(run)
                ev = self.assertOneEvent(events, event="decision", mode="external",
                                         decision="deny", target=THROUGH, port=srv.port,
                                         denial_category="external_proxy_rejected")
                self.assertIn(str(status), ev.get("reason") or "", ev)
        self.assertEqual(srv.connection_count(), 0, "the origin was reached")

    def test_deny_list_and_allowlist_are_a_floor(self):
        tp = self.tinyproxy()
        allowed = self.origin(THROUGH)
        bypassed = self.origin(BYPASSED)
        run, info = self.start_external(self.address(tp), ["-q", "--allow", THROUGH,
                                                           "--bypass", BYPASSED])
        refused = [
            ("metadata address", connect_head("169.254.169.254:443", info.basic())),
            ("metadata name", connect_head("metadata.google.internal:443", info.basic())),
            ("metadata address, forward", absolute_request(
                "GET", "http://169.254.169.254/latest/meta-data/", info.basic())),
            ("bypassed but not on the allowlist",
             connect_head(bypassed.authority(), info.basic())),
            ("not on the allowlist", connect_head("%s:443" % NOWHERE, info.basic())),
            ("not on the allowlist, forward", absolute_request(
                "GET", "http://%s:8080/x" % NOWHERE, info.basic())),
        ]
        for label, req in refused:
            with self.subTest(label):
                self.assertErrorResponse(exchange(info.port, req), 403)
        resp, res = self.https_get(info, THROUGH, allowed.port, "/allowed")
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual((res.status, res.body), (200, DEFAULT_BODY))
        self.assertEqual(bypassed.connection_count(), 0)
        self.assert_only_through_tinyproxy(tp, ["CONNECT %s HTTP/1.1" % allowed.authority()])
        events = self.finish(run)
        denied = matching(events, event="decision", decision="deny",
                          denial_category="host_denied")
        self.assertEqual(len(denied), len(refused), AUDIT_BELOW)
        self.assertNotIn("169.254.169.254", tp.log())
        self.assertNotIn("metadata", tp.log())

    def test_forward_http_tunnels_through_tinyproxy(self):
        tp = self.tinyproxy()
        through = self.origin(THROUGH, tls=False)
        bypassed = self.origin(BYPASSED, tls=False)
        urls = [through.url(path="/a?x=1"), through.url(path="/b"), bypassed.url(path="/c")]
        run, _ = self.start_external(self.address(tp), ["-q", "--bypass", BYPASSED],
                                     command=[CURL, "-sS", "--max-time", "60"] + urls)
        self.assertEqual(run.wait(), 0, "curl's exit status")
        self.assertEqual(run.stdout.raw(), DEFAULT_BODY * 3)
        self.assertEqual([r.request_line for r in through.requests()],
                         ["GET /a?x=1 HTTP/1.1", "GET /b HTTP/1.1"], "origin-form in the tunnel")
        self.assertEqual([r.request_line for r in bypassed.requests()], ["GET /c HTTP/1.1"])
        for r in through.requests() + bypassed.requests():
            self.assertEqual(r.header_all("proxy-authorization"), [], r)
        self.assertEqual(find_leaks(tp.password, {"origin": through.all_raw()}), [],
                         "the enterprise password reached the origin")
        barrier = tp.barrier()
        lines = tp.request_lines()
        self.assertEqual(lines[-1], barrier)
        self.assertTrue(lines[:-1], "nothing went through tinyproxy")
        self.assertEqual(set(lines[:-1]), {"CONNECT %s HTTP/1.1" % through.authority()},
                         "forward HTTP goes through the enterprise proxy as a CONNECT tunnel, "
                         "and the bypassed host does not")
        events = run.audit_events()
        ext = matching(events, event="decision", mode="external", decision="allow",
                       target=THROUGH, port=through.port)
        self.assertEqual([(e.get("method"), e.get("path")) for e in ext],
                         [("GET", "/a?x=1"), ("GET", "/b")], AUDIT_BELOW)
        self.assertOneEvent(events, event="decision", mode="forward", decision="allow",
                            target=BYPASSED, port=bypassed.port, path="/c")

    def test_reverse_routes_go_direct(self):
        tp = self.tinyproxy()
        srv = self.origin(THROUGH)
        secret = "np-e2e-ext-route-" + os.urandom(6).hex()
        env = base_env(NP_E2E_EXT_ROUTE=secret)
        run, info = self.start_external(
            self.address(tp), ["-q", "--ca-file", Certs.get().ca_cert, "--route",
                               "svc=%s,credential=env://NP_E2E_EXT_ROUTE" % srv.url()], env=env)
        with connect_proxy(info.port) as s:
            s.sendall(b"GET /svc/route-path HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                      b"Authorization: Bearer %s\r\nConnection: close\r\n\r\n"
                      % (info.port, info.token.encode()))
            res, _ = read_http_response(s)
        self.assertEqual((res.status, res.body), (200, DEFAULT_BODY))
        reqs = srv.requests()
        self.assertEqual([r.target for r in reqs], ["/route-path"])
        self.assertEqual(reqs[0].header_all("authorization"), ["Bearer " + secret])
        self.assert_only_through_tinyproxy(tp, [])
        self.finish(run)

    def test_enterprise_password_stays_secret(self):
        tp = self.tinyproxy()
        through = self.origin(THROUGH)
        plain = self.origin(THROUGH, tls=False)
        filtered = self.origin(FILTERED)
        for via in ("option", "env"):
            with self.subTest(via=via):
                run, info = self.start_external(self.address(tp), ["-v"], via=via)
                with open("/proc/%d/cmdline" % run.pid, "rb") as f:
                    cmdline = f.read()
                with open("/proc/%d/cmdline" % info.child_pid, "rb") as f:
                    child_cmdline = f.read()
                client = []
                resp, res = self.https_get(info, THROUGH, through.port, "/secret-check")
                self.assertEqual(resp.status, 200, resp)
                client += [resp.raw, res.raw]
                resp, _ = self.https_get(info, FILTERED, filtered.port, "/filtered")
                self.assertEqual(resp.status, 502, resp)
                client.append(resp.raw)
                fwd = exchange(info.port, absolute_request(
                    "GET", plain.url(path="/fwd"), info.basic(), [("Connection", "close")]))
                self.assertEqual(fwd.status, 200, fwd)
                client.append(fwd.raw)
                self.assertEqual(run.release_holder(0), 0)
                blobs = {"nonoproxy-run's command line while it ran": cmdline,
                         "the child's command line": child_cmdline,
                         "the child's environment": json.dumps(info.env),
                         "nonoproxy-run's stdout": run.stdout.raw(),
                         "nonoproxy-run's stderr": run.stderr.raw(),
                         "the audit log": run.audit_text(),
                         "responses to the client": b"".join(client),
                         "the origins": through.all_raw() + plain.all_raw()}
                self.assertEqual(find_leaks(tp.password, blobs), [],
                                 "the enterprise password leaked (form, where)")
                self.assertEqual(find_leaks("%s:%s" % (tp.user, tp.password), blobs), [],
                                 "the enterprise credentials leaked (form, where)")
                self.assertNotIn("NONOPROXY_EXTERNAL_PROXY", info.env,
                                 "the enterprise proxy's address reached the child")


# --------------------------------------------------------------------------------------------
# Against a scripted enterprise proxy: the chained CONNECT byte by byte, odd answers
# --------------------------------------------------------------------------------------------

ESTABLISHED = b"HTTP/1.1 200 Connection established\r\nProxy-Agent: fake\r\n\r\n"


class ChainedConnect(ExternalCase):

    def test_connect_head_sent_to_the_enterprise_proxy(self):
        fe = self.fake_enterprise(lambda head: (ESTABLISHED + b"EARLY", "echo"))
        run, info = self.start_external(self.address(fe.port, "corp-user", "pa:ss-w0rd"),
                                        ["-q"])
        targets = ["%s:443" % NOWHERE, "[2001:db8::1]:8443", "api.example.test:443"]
        for target in targets:
            with self.subTest(target):
                sock, resp, extra = open_tunnel(info.port, target, info.basic())
                self.assertIsNotNone(sock, "CONNECT %s: %r" % (target, resp))
                try:
                    self.assertEqual(resp.status, 200, resp)
                    early = read_exactly(sock, 5, initial=extra)
                    self.assertEqual(early, b"EARLY", "bytes the enterprise proxy sent right "
                                     "after its 200 belong to the tunnel")
                    self.assertEqual(tunnel_roundtrip(sock, b"ping through two proxies"),
                                     b"ping through two proxies")
                finally:
                    sock.close()
                head = fe.head_for(target)
                self.assertIsNotNone(head, "no CONNECT %s HTTP/1.1 reached the enterprise "
                                     "proxy; it got %r" % (target, fe.heads))
                hdrs = head_headers(head)
                self.assertEqual([v for k, v in hdrs if k == "host"], [target])
                self.assertEqual([v for k, v in hdrs if k == "proxy-authorization"],
                                 [basic("corp-user", "pa:ss-w0rd")])
                self.assertNotIn(info.token.encode(), head, "the session token was sent on")
                self.assertNotIn(info.basic().split()[1].encode(), head)
        events = self.finish(run)
        for target in targets:
            host, _, port = target.rpartition(":")
            self.assertOneEvent(events, event="decision", mode="external", decision="allow",
                                target=host.strip("[]"), port=int(port))

    def test_no_userinfo_means_no_proxy_authorization(self):
        fe = self.fake_enterprise(lambda head: (ESTABLISHED, "echo"))
        run, info = self.start_external(self.address(fe.port), ["-q"])
        sock, resp, extra = open_tunnel(info.port, "%s:443" % NOWHERE, info.basic())
        self.assertIsNotNone(sock, resp)
        sock.close()
        head = fe.head_for("%s:443" % NOWHERE)
        self.assertIsNotNone(head, fe.heads)
        self.assertEqual([k for k, _ in head_headers(head) if k == "proxy-authorization"], [])
        self.finish(run)

    def test_only_2xx_is_success(self):
        answers = {
            "10.200.0.11": (b"HTTP/1.1 302 Found\r\nLocation: http://portal.corp/\r\n"
                            b"Content-Length: 0\r\n\r\n", "302"),
            "10.200.0.12": (b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                            b"Proxy-Authenticate: Basic realm=\"corp\"\r\n"
                            b"Content-Length: 0\r\n\r\n", "407"),
            "10.200.0.13": (b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n",
                            "503"),
            "10.200.0.14": (b"HTTP/1.1 101 Switching Protocols\r\n\r\n", "101"),
            "10.200.0.15": (b"SSH-2.0-OpenSSH_9.2\r\n\r\n", None),
        }

        def script(head):
            host = head.split(b" ")[1].decode().rsplit(":", 1)[0]
            if host == "10.200.0.16":
                return b"HTTP/1.0 200 OK\r\n\r\n", "echo"
            if host == "10.200.0.17":
                return b"", "close"
            return answers[host][0], "close"
        fe = self.fake_enterprise(script)
        run, info = self.start_external(self.address(fe.port, "u", "p"), ["-q"])
        for host, (_, status) in sorted(answers.items()):
            with self.subTest(host=host, status=status):
                resp = exchange(info.port, connect_head("%s:443" % host, info.basic()))
                self.assertErrorResponse(resp, 502)
                if status is not None:
                    self.assertIn(status.encode(), resp.body, resp)
                self.assertEqual(resp.header_all("proxy-authenticate"), [], resp)
                self.assertNotIn(b"portal.corp", resp.raw)
        resp = exchange(info.port, connect_head("10.200.0.17:443", info.basic()))
        self.assertErrorResponse(resp, 502)
        sock, resp, _ = open_tunnel(info.port, "10.200.0.16:443", info.basic())
        self.assertIsNotNone(sock, "HTTP/1.0 200 from the enterprise proxy is success: %r"
                             % resp)
        self.assertEqual(tunnel_roundtrip(sock, b"ok"), b"ok")
        sock.close()
        events = self.finish(run)
        for host, (_, status) in answers.items():
            ev = self.assertOneEvent(events, event="decision", mode="external", decision="deny",
                                     target=host, denial_category="external_proxy_rejected")
            self.assertEqual(num(ev, "status"), 502, ev)
            if status is not None:
                self.assertIn(status, ev.get("reason") or "", ev)
        self.assertOneEvent(events, event="decision", mode="external", decision="deny",
                            target="10.200.0.17")

    def test_forward_http_inside_the_chained_tunnel(self):
        fe = self.fake_enterprise(lambda head: (ESTABLISHED, "http"))
        run, info = self.start_external(self.address(fe.port, "u", "secret-pw"), ["-q"])
        url = "http://%s:8080" % NOWHERE
        with connect_proxy(info.port) as s:
            extra = b""
            for path in ("/inner?x=1", "/again"):
                s.sendall(absolute_request("GET", url + path, info.basic(),
                                           [("Proxy-Connection", "keep-alive")]))
                res, extra = read_http_response(s, initial=extra)
                self.assertEqual((res.status, res.body), (200, FAKE_BODY))
        self.assertEqual([h.split(b"\r\n", 1)[0] for h in fe.heads][:1],
                         [b"CONNECT %s:8080 HTTP/1.1" % NOWHERE.encode()])
        self.assertEqual([h.split(b"\r\n", 1)[0] for h in fe.inner],
                         [b"GET /inner?x=1 HTTP/1.1", b"GET /again HTTP/1.1"],
                         "origin-form requests inside the tunnel")
        for inner in fe.inner:
            names = [k for k, _ in head_headers(inner)]
            self.assertEqual([v for k, v in head_headers(inner) if k == "host"],
                             ["%s:8080" % NOWHERE])
            self.assertNotIn("proxy-authorization", names, inner)
            self.assertNotIn("proxy-connection", names, inner)
        self.finish(run)


class EnterpriseProxyDown(ExternalCase):

    def test_refused_gives_502_upstream_connect_failed(self):
        holder, port = closed_port()
        self.addCleanup(holder.close)
        run, info = self.start_external(self.address(port, "u", "p"),
                                        ["-q", "--connect-timeout", "5"])
        for label, req in (("CONNECT", connect_head("%s:443" % NOWHERE, info.basic())),
                           ("forward", absolute_request("GET", "http://%s:80/" % NOWHERE,
                                                        info.basic()))):
            with self.subTest(label):
                self.assertErrorResponse(exchange(info.port, req), 502)
        events = self.finish(run)
        denied = matching(events, event="decision", decision="deny", target=NOWHERE,
                          denial_category="upstream_connect_failed")
        self.assertEqual(len(denied), 2, AUDIT_BELOW)

    def test_silent_enterprise_proxy_gives_504_at_the_connect_timeout(self):
        # A listener with a full accept queue: the kernel drops further SYNs, so connect()
        # neither succeeds nor fails until --connect-timeout. SPEC §3: a connect timeout is a
        # 504 upstream_timeout on every path, the enterprise proxy's included (issue #10).
        lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(lst.close)
        lst.bind(("127.0.0.1", 0))
        lst.listen(0)
        port = lst.getsockname()[1]
        for _ in range(8):  # fill the accept queue (its length is backlog + 1 on Linux)
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            self.addCleanup(s.close)
        run, info = self.start_external(self.address(port, "u", "p"),
                                        ["-q", "--connect-timeout", "2"])
        t0 = time.monotonic()
        resp = exchange(info.port, connect_head("%s:443" % NOWHERE, info.basic()))
        elapsed = time.monotonic() - t0
        self.assertErrorResponse(resp, 504)
        self.assertGreaterEqual(elapsed, 1.5, "answered before the connect timeout")
        self.assertLess(elapsed, 9, "not within --connect-timeout 2 (the default is 10 s)")
        events = self.finish(run)
        self.assertOneEvent(events, event="decision", decision="deny", target=NOWHERE,
                            denial_category="upstream_timeout")


class ExternalOptions(ExternalCase):
    """SPEC §1.1, §11: a bad address or bypass entry is a start error (125), and the message
    never quotes the password."""

    def test_bad_addresses_and_bypass_entries_are_start_errors(self):
        true = require_tool("true")
        rows = [
            ("no port", ["--external-proxy", "127.0.0.1"]),
            ("no port, with a password", ["--external-proxy", "u:Sup3rS3cret@127.0.0.1"]),
            ("a scheme", ["--external-proxy", "http://u:Sup3rS3cret@127.0.0.1:3128"]),
            ("port 0", ["--external-proxy", "127.0.0.1:0"]),
            ("port out of range", ["--external-proxy", "u:Sup3rS3cret@127.0.0.1:65536"]),
            ("empty", ["--external-proxy", ""]),
            ("bare * bypass", ["--external-proxy", "127.0.0.1:3128", "--bypass", "*"]),
            ("*foo bypass", ["--external-proxy", "127.0.0.1:3128", "--bypass", "*foo"]),
            ("empty bypass", ["--external-proxy", "127.0.0.1:3128", "--bypass", ""]),
        ]
        for label, opts in rows:
            with self.subTest(label):
                run = self.start(["-q"] + opts, [true], env=base_env(), stdin=subprocess.DEVNULL)
                self.assertEqual(run.wait(), 125, "exit status")
                err = run.stderr.text()
                self.assertTrue(err.strip(), "no message")
                self.assertNotIn("Sup3rS3cret", err, "the password in the message")
        run = self.start(["-q"], [true], env=base_env(
            NONOPROXY_EXTERNAL_PROXY="u:Sup3rS3cret@127.0.0.1"), stdin=subprocess.DEVNULL)
        self.assertEqual(run.wait(), 125, "a bad NONOPROXY_EXTERNAL_PROXY is a start error")
        self.assertNotIn("Sup3rS3cret", run.stderr.text())


if __name__ == "__main__":
    unittest.main()
