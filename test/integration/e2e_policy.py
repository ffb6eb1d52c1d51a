"""Policy beyond the host through nonoproxy-run (issue 14): SPEC §13.

Endpoint rules and rate limits on a route, denied_hosts (names, wildcards, host:port, address
ranges judged on the resolved addresses), ranges in the allowlist, --strict, --ask answered on a
pseudo-terminal that is nonoproxy-run's controlling terminal (/dev/tty), per-route client
certificates against an upstream that requires one, and --serve (export lines, --env-file, the
token off every command line, a clean stop on SIGTERM).

curl is the child wherever the client's view is what matters (it gets 200, 403 or 429 through
the variables nonoproxy-run gave it); the holder child and raw sockets are used where the test
needs exact bytes (encoded paths, Retry-After, audit lines). Every wait is bounded and waits on
an event (a line, a prompt on the terminal, the process's exit), never on a sleep.
"""

import json
import os
import pty
import re
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest

from npe2e import (AUDIT_BELOW, EXIT_TIMEOUT, IO_TIMEOUT, START_TIMEOUT, Certs, E2ETestCase,
                   ProxyInfo, deadline_after, holder_command, http_exchange, matching, num,
                   open_tunnel, remaining, require_tool, server_context_for, tunnel_roundtrip)
from upstream import RecordingUpstream, ScriptedUpstream

ENDPOINT_JSON = {"error": "endpoint not allowed"}


def route(prefix, upstream, *items):
    """["--route", "PREFIX=UPSTREAM,item,item..."]."""
    return ["--route", ",".join(["%s=%s" % (prefix, upstream)] + list(items))]


def clean_env(**extra):
    """The test's environment without proxy variables of its own, plus extra."""
    drop = {"HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "NO_PROXY", "no_proxy",
            "ALL_PROXY", "all_proxy", "NONOPROXY_EXTERNAL_PROXY"}
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("NP_E2E_")}
    env.update(extra)
    return env


def curl_cmd(*args):
    """A curl child command through the proxy (NO_PROXY names 127.0.0.1 and localhost, where
    the test servers are: --noproxy "" overrides it): quiet, bounded, trusting the test CA,
    writing its -w output only."""
    return [require_tool("curl"), "--noproxy", "", "-s", "-S", "--max-time", str(int(IO_TIMEOUT)),
            "--cacert", Certs.get().ca_cert, "-o", "/dev/null"] + list(args)


def sh_curl(max_time=IO_TIMEOUT):
    """curl_cmd() as words of a /bin/sh script."""
    return shlex.join([require_tool("curl"), "--noproxy", "", "-s", "--max-time",
                       str(int(max_time)), "--cacert", Certs.get().ca_cert, "-o", "/dev/null"])


def sh_cmd(script):
    """A /bin/sh child command (for curl lines that read the variables nonoproxy-run set)."""
    return ["sh", "-c", script]


_CLIENT_LOCK = threading.Lock()
_CLIENT = {}


def client_certificate():
    """(cert, key) of a TLS client certificate signed by the test CA (extendedKeyUsage
    clientAuth), made once per process."""
    certs = Certs.get()
    with _CLIENT_LOCK:
        if certs.dir in _CLIENT:
            return _CLIENT[certs.dir]
        ext = os.path.join(certs.dir, "client.ext")
        with open(ext, "w", encoding="ascii") as f:
            f.write("basicConstraints=critical,CA:FALSE\n"
                    "keyUsage=critical,digitalSignature\n"
                    "extendedKeyUsage=clientAuth\n"
                    "subjectKeyIdentifier=hash\n"
                    "authorityKeyIdentifier=keyid,issuer\n")
        certs._openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "client.key")
        certs._openssl("req", "-new", "-key", "client.key", "-subj", "/CN=nonoproxy e2e client",
                       "-out", "client.csr")
        certs._openssl("x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                       "-days", "2", "-set_serial", "99", "-extfile", ext, "-out", "client.pem")
        _CLIENT[certs.dir] = (os.path.join(certs.dir, "client.pem"),
                              os.path.join(certs.dir, "client.key"))
        return _CLIENT[certs.dir]


class PolicyCase(E2ETestCase):
    """Fixtures shared by the policy tests."""

    def upstream(self, **kw):
        srv = RecordingUpstream(**kw)
        self.addCleanup(srv.close)
        return srv

    def tmpdir(self):
        d = tempfile.mkdtemp(prefix="nonoproxy-e2e-policy-")
        self.addCleanup(shutil.rmtree, d, True)
        return d

    def run_curl(self, options, command, env=None):
        """Run nonoproxy-run with a curl (or sh) child to the end; return (run, stdout text)."""
        run = self.start(["-q"] + list(options), command,
                         env=clean_env() if env is None else env, stdin=subprocess.DEVNULL)
        rc = run.wait(EXIT_TIMEOUT + IO_TIMEOUT)
        self.assertIn(rc, (0, 22, 56), "nonoproxy-run (curl's status)")
        return run, run.stdout.text()

    def assert_refused_at_start(self, options, *fragments):
        """nonoproxy-run exits 125 before the child runs, stderr naming every fragment."""
        marker = os.path.join(self.tmpdir(), "child-ran")
        run = self.start(list(options), ["sh", "-c", 'echo ran > "$1"', "sh", marker],
                         env=clean_env(), audit=False)
        self.assertEqual(run.wait(), 125, "exit status")
        err = run.stderr.text()
        for frag in fragments:
            self.assertIn(frag, err)
        self.assertFalse(os.path.exists(marker), "the child was started")
        return err

    def connect_status(self, info, target):
        """Status of a CONNECT to target ("host:port") through the holder's proxy."""
        sock, resp, _ = open_tunnel(info.port, target, info.basic())
        if sock is not None:
            sock.close()
        return resp.status

    def assert_tunnel_works(self, info, target):
        sock, resp, extra = open_tunnel(info.port, target, info.basic())
        self.assertIsNotNone(sock, "CONNECT %s refused: %r" % (target, resp.raw[:300]))
        with sock:
            self.assertEqual(tunnel_roundtrip(sock, b"policy ping\n", extra), b"policy ping\n")


# --------------------------------------------------------------------------------------------
# Endpoint rules (SPEC §13: after the phantom check, 403 JSON, audit endpoint_policy)
# --------------------------------------------------------------------------------------------

class EndpointRules(PolicyCase):

    RULES = ("rule=GET:/v1/models", "rule=*:/v1/chat/**")

    def test_curl_allowed_path_200_other_path_403(self):
        srv = self.upstream()
        script = ('for p in /v1/models /v1/files /v1/chat/completions; do for m in POST GET; do '
                  'curl -s -S --max-time %d -o /dev/null -w "%%{http_code}\\n" -X $m '
                  '-H "Authorization: Bearer $NONO_PROXY_TOKEN" "$O_BASE_URL$p"; done; done; '
                  'curl -s -S --max-time %d -H "Authorization: Bearer $NONO_PROXY_TOKEN" '
                  '"$O_BASE_URL/v1/files"' % (IO_TIMEOUT, IO_TIMEOUT))
        run, out = self.run_curl(["--ca-file", Certs.get().ca_cert]
                                 + route("o", srv.url(path="/api"), *self.RULES), sh_cmd(script))
        lines = out.splitlines()
        # POST, GET of /v1/models, /v1/files, /v1/chat/completions; then the 403's body.
        self.assertEqual(lines[:6], ["403", "200", "403", "403", "200", "200"], out)
        self.assertEqual(json.loads("\n".join(lines[6:])), ENDPOINT_JSON, out)
        got = [r.request_line for r in srv.requests()]
        self.assertEqual(got, ["GET /api/v1/models HTTP/1.1",
                               "POST /api/v1/chat/completions HTTP/1.1",
                               "GET /api/v1/chat/completions HTTP/1.1"],
                         "only the allowed requests reached the upstream")
        events = run.audit_events()
        denied = matching(events, mode="reverse", decision="deny",
                          denial_category="endpoint_policy")
        self.assertEqual(len(denied), 4, AUDIT_BELOW)
        for ev in denied:
            self.assertEqual(num(ev, "status"), 403, ev)
            self.assertEqual(ev.get("route_id"), "o", ev)
        self.assertTrue(matching(denied, method="GET", path="/o/v1/files")
                        or matching(denied, method="GET", path="/v1/files"),
                        "the denial names the method and the path " + AUDIT_BELOW)

    def test_encoded_and_dot_segment_dodges_never_reach_the_upstream(self):
        srv = self.upstream()
        run, info = self.start_holder(["-q", "--ca-file", Certs.get().ca_cert]
                                      + route("o", srv.url(), "rule=GET:/v1/models",
                                              "rule=GET:/v1/chat/*"))
        auth = [("Authorization", "Bearer " + info.token)]
        dodges = ["/o/v1/models/..%2Fadmin",
                  "/o/v1/models/%2e%2e/admin",
                  "/o/v1/models%2F..%2F..%2Fadmin",
                  "/o/v1/chat/%2e%2e/%2e%2e/admin",
                  "/o/v1/chat/x%2Fadmin",
                  "/o/v1/chat/..%2f..%2fadmin",
                  "/o/v1/./admin",
                  "/o/v1//admin",
                  "/o/v1/chat/../../admin",
                  "/o/V1/models",
                  "/o/v1/models/extra",
                  "/o/admin?x=/v1/models"]
        for target in dodges:
            with self.subTest(target=target):
                res = http_exchange(info.port, "GET", target, auth)
                self.assertIn(res.status, (400, 403), "%s: %r" % (target, res.raw[:300]))
        # A doubled slash is read as one by some servers and not by others: under a rule for
        # /v1/models it must match both readings, and "//models" is not "models" to all.
        res = http_exchange(info.port, "GET", "/o/v1//models", auth)
        self.assertEqual(res.status, 403, res.raw[:300])
        ok = http_exchange(info.port, "GET", "/o/v1/chat/abc", auth)
        self.assertEqual(ok.status, 200, ok.raw[:300])
        for req in srv.requests():
            self.assertNotIn("admin", req.target.lower(), "a dodge reached the upstream: %s"
                             % req.request_line)
            self.assertNotIn("%2f", req.target.lower(), req.request_line)
        self.finish(run)

    def test_unauthenticated_gets_401_not_403(self):
        srv = self.upstream()
        run, info = self.start_holder(["-q", "--ca-file", Certs.get().ca_cert]
                                      + route("o", srv.url(), "rule=GET:/v1/models"))
        for target in ("/o/v1/forbidden", "/o/v1/models"):
            with self.subTest(target=target):
                res = http_exchange(info.port, "GET", target,
                                    [("Authorization", "Bearer wrong-phantom")])
                self.assertEqual(res.status, 401, res.raw[:300])
                res = http_exchange(info.port, "GET", target)
                self.assertEqual(res.status, 401, res.raw[:300])
        self.assertEqual(srv.request_count(), 0)
        events = self.finish(run)
        self.assertEqual(matching(events, denial_category="endpoint_policy"), [],
                         "rules ran before the phantom check " + AUDIT_BELOW)

    def test_config_file_rules_and_bad_rule_refused(self):
        srv = self.upstream()
        d = self.tmpdir()
        path = os.path.join(d, "np.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"routes": [{"prefix": "o", "upstream": srv.url(),
                                   "endpoint_rules": [{"method": "GET", "path": "/ok"}]}],
                       "ca_file": Certs.get().ca_cert}, f)
        run, info = self.start_holder(["-q", "-c", path])
        auth = [("Authorization", "Bearer " + info.token)]
        self.assertEqual(http_exchange(info.port, "GET", "/o/ok", auth).status, 200)
        res = http_exchange(info.port, "GET", "/o/nope", auth)
        self.assertEqual(res.status, 403)
        self.assertEqual(res.json(), ENDPOINT_JSON)
        self.finish(run)
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"routes": [{"prefix": "o", "upstream": srv.url(),
                                   "endpoint_rules": [{"method": "GET", "path": "/ok"},
                                                      {"method": "GET", "verb": "x"}]}]}, f)
        err = self.assert_refused_at_start(["-c", path])
        self.assertEqual(err, "nonoproxy-run: %s: routes[0].endpoint_rules[1].verb: unknown key\n"
                         % path)
        err = self.assert_refused_at_start(route("o", srv.url(), "rule=GET:/a",
                                                 "rule=GET:no-slash"),
                                           "endpoint_rules[1]", "'o'")


# --------------------------------------------------------------------------------------------
# Rate limit (token bucket per route, 429 + Retry-After, audit rate_limited)
# --------------------------------------------------------------------------------------------

class RateLimit(PolicyCase):

    def test_burst_then_429_with_retry_after(self):
        srv = self.upstream()
        # One token a minute after a burst of 3: the fourth request within the test is refused.
        script = ('for i in 1 2 3 4 5; do curl -s -S --max-time %d -o /dev/null '
                  '-w "%%{http_code}\\n" -H "Authorization: Bearer $NONO_PROXY_TOKEN" '
                  '"$R_BASE_URL/x"; done' % IO_TIMEOUT)
        run, out = self.run_curl(["--ca-file", Certs.get().ca_cert]
                                 + route("r", srv.url(), "rpm=1", "burst=3"), sh_cmd(script))
        self.assertEqual(out.split(), ["200", "200", "200", "429", "429"], out)
        self.assertEqual(srv.request_count(), 3, "a limited request reached the upstream")
        events = run.audit_events()
        limited = matching(events, mode="reverse", decision="deny",
                           denial_category="rate_limited")
        self.assertEqual(len(limited), 2, AUDIT_BELOW)
        for ev in limited:
            self.assertEqual(num(ev, "status"), 429, ev)
            self.assertEqual(ev.get("route_id"), "r", ev)
        self.assertIn('"rate_limited"', run.audit_text())

    def test_retry_after_header_and_other_routes_unaffected(self):
        srv = self.upstream()
        run, info = self.start_holder(["-q", "--ca-file", Certs.get().ca_cert]
                                      + route("r", srv.url(), "rpm=2", "burst=1")
                                      + route("free", srv.url()))
        auth = [("Authorization", "Bearer " + info.token)]
        self.assertEqual(http_exchange(info.port, "GET", "/r/a", auth).status, 200)
        res = http_exchange(info.port, "GET", "/r/b", auth)
        self.assertEqual(res.status, 429, res.raw[:300])
        retry = res.header("retry-after")
        self.assertIsNotNone(retry, "429 without Retry-After: %r" % res.raw[:300])
        self.assertRegex(retry, r"^[0-9]+$")
        self.assertTrue(1 <= int(retry) <= 30, "Retry-After %s: a token every 30 s" % retry)
        self.assertEqual(res.framing, "length", res.raw[:300])
        for i in range(4):  # the route without a limit
            self.assertEqual(http_exchange(info.port, "GET", "/free/%d" % i, auth).status, 200)
        # the phantom check comes first: unauthenticated is 401, never 429
        self.assertEqual(http_exchange(info.port, "GET", "/r/c").status, 401)
        self.finish(run)

    def test_bad_rate_values_refused_naming_the_key(self):
        srv = self.upstream()
        self.assert_refused_at_start(route("r", srv.url(), "rpm=-1"), "--route 'r': invalid rpm")
        d = self.tmpdir()
        path = os.path.join(d, "np.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"routes": [{"prefix": "r", "upstream": srv.url(),
                                   "rate_limit": {"requests_per_minute": 10,
                                                  "burst": 2000000}}]}, f)
        err = self.assert_refused_at_start(["-c", path])
        self.assertEqual(err, "nonoproxy-run: %s: routes[0].rate_limit.burst: expected an integer "
                         "from 1 to 1000000\n" % path)


# --------------------------------------------------------------------------------------------
# denied_hosts, address ranges, --strict
# --------------------------------------------------------------------------------------------

class DeniedHosts(PolicyCase):

    def test_curl_denied_exact_name(self):
        srv = self.upstream()
        run, out = self.run_curl(["--deny", "localhost"],
                                 sh_cmd('for h in localhost 127.0.0.1; do %s -w "%%{http_connect} '
                                        '%%{http_code}\\n" https://$h:%d/; done'
                                        % (sh_curl(), srv.port)))
        self.assertEqual(out.split("\n")[:2], ["403 000", "200 200"], out)
        events = run.audit_events()
        self.assertEqual(len(matching(events, mode="connect", decision="deny",
                                      denial_category="host_denied", target="localhost")), 1,
                         AUDIT_BELOW)

    def test_wildcard_host_port_and_deny_wins_over_allow(self):
        echo = self.echo_server()
        other = self.echo_server()
        run, info = self.start_holder(["-q", "--allow", "localhost", "--allow", "127.0.0.1",
                                       "--deny", "localhost:%d" % echo.port,
                                       "--deny", "*.blocked.test"])
        self.assertEqual(self.connect_status(info, "localhost:%d" % echo.port), 403)
        self.assert_tunnel_works(info, "localhost:%d" % other.port)
        self.assert_tunnel_works(info, "127.0.0.1:%d" % echo.port)
        # A denied name never reaches the resolver: 403, not the 502 of a failed lookup.
        self.assertEqual(self.connect_status(info, "api.blocked.test:443"), 403)
        self.assertEqual(self.connect_status(info, "A.B.Blocked.Test.:443"), 403)
        events = self.finish(run)
        self.assertEqual(len(matching(events, decision="deny", denial_category="host_denied")),
                         3, AUDIT_BELOW)

    def test_range_denies_a_name_resolving_into_it(self):
        echo = self.echo_server()
        run, info = self.start_holder(["-q", "--deny", "127.0.0.0/8"])
        self.assertEqual(self.connect_status(info, "localhost:%d" % echo.port), 403)
        self.assertEqual(self.connect_status(info, "127.0.0.1:%d" % echo.port), 403)
        self.assertEqual(self.connect_status(info, "127.1:%d" % echo.port), 403)
        if socket.has_ipv6 and echo.connection_count() == 0:
            try:
                socket.create_connection(("::1", echo.port), timeout=5).close()
                have_v6 = True
            except OSError:
                have_v6 = False
            if have_v6:
                self.assert_tunnel_works(info, "[::1]:%d" % echo.port)
        events = self.finish(run)
        self.assertEqual(len(matching(events, decision="deny", denial_category="host_denied")),
                         3, AUDIT_BELOW)

    def test_deny_list_from_config_file_and_bad_entry(self):
        echo = self.echo_server()
        d = self.tmpdir()
        path = os.path.join(d, "np.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"denied_hosts": ["localhost"]}, f)
        run, info = self.start_holder(["-q", "-c", path, "--deny", "127.0.0.1"])
        self.assertEqual(self.connect_status(info, "localhost:%d" % echo.port), 403)
        self.assertEqual(self.connect_status(info, "127.0.0.1:%d" % echo.port), 403)
        self.finish(run)
        err = self.assert_refused_at_start(["--deny", "bad host"], "--deny 'bad host'")
        self.assertNotIn("Traceback", err)
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"denied_hosts": ["ok.example", "10.0.0.0/99"]}, f)
        self.assert_refused_at_start(["-c", path], "%s: denied_hosts[1] '10.0.0.0/99'" % path)


class AllowRanges(PolicyCase):

    def test_cidr_allowlist(self):
        echo = self.echo_server()
        run, info = self.start_holder(["-q", "--allow", "127.0.0.1/32"])
        self.assert_tunnel_works(info, "127.0.0.1:%d" % echo.port)
        self.assertEqual(self.connect_status(info, "[::1]:%d" % echo.port), 403)
        self.assertEqual(self.connect_status(info, "127.0.0.2:%d" % echo.port), 403)
        # localhost is allowed by the range only when every address it resolves to is in it.
        addrs = {ai[4][0] for ai in socket.getaddrinfo("localhost", echo.port,
                                                       type=socket.SOCK_STREAM)}
        want = 200 if addrs == {"127.0.0.1"} else 403
        self.assertEqual(self.connect_status(info, "localhost:%d" % echo.port), want, addrs)
        self.finish(run)
        run, info = self.start_holder(["-q", "--allow", "10.0.0.0/8"])
        self.assertEqual(self.connect_status(info, "localhost:%d" % echo.port), 403,
                         "a name resolving outside the range")
        self.assertEqual(self.connect_status(info, "127.0.0.1:%d" % echo.port), 403)
        self.finish(run)

    def test_curl_through_a_range(self):
        srv = self.upstream()
        run, out = self.run_curl(["--allow", "127.0.0.0/8"],
                                 curl_cmd("-w", "%{http_code}", "https://127.0.0.1:%d/" % srv.port))
        self.assertEqual(out, "200")

    def test_range_over_the_hard_deny_list_refused_at_start(self):
        # Checked when the proxy starts (the entry itself is well-formed), naming the list,
        # the value and why.
        self.assert_refused_at_start(["--allow", "169.254.0.0/16"],
                                     "allowed_hosts[0]: '169.254.0.0/16'", "hard deny list")
        self.assert_refused_at_start(["--allow", "10.0.0.0/8", "--allow", "0.0.0.0/0"],
                                     "allowed_hosts[1]: '0.0.0.0/0'", "hard deny list")


class Strict(PolicyCase):

    def test_strict_with_empty_allowlist_denies_everything(self):
        echo = self.echo_server()
        run, info = self.start_holder(["-q", "--strict"])
        self.assertEqual(self.connect_status(info, "127.0.0.1:%d" % echo.port), 403)
        self.assertEqual(self.connect_status(info, "localhost:%d" % echo.port), 403)
        events = self.finish(run)
        self.assertEqual(len(matching(events, decision="deny", denial_category="host_denied")),
                         2, AUDIT_BELOW)

    def test_strict_with_allowlist_and_curl(self):
        srv = self.upstream()
        script = ('for h in 127.0.0.1 localhost; do %s -w "%%{http_connect} %%{http_code}\\n" '
                  'https://$h:%d/; done' % (sh_curl(), srv.port))
        run, out = self.run_curl(["--strict", "--allow", "127.0.0.1"], sh_cmd(script))
        self.assertEqual(out.split("\n")[:2], ["200 200", "403 000"], out)
        d = self.tmpdir()
        path = os.path.join(d, "np.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"strict_allowlist": True}, f)
        run, out = self.run_curl(["-c", path], sh_cmd(script))
        self.assertEqual(out.split("\n")[:2], ["403 000", "403 000"], out)


# --------------------------------------------------------------------------------------------
# --ask on a pseudo-terminal
# --------------------------------------------------------------------------------------------

# Runs argv[2:] with the pty slave argv[1] as controlling terminal: started as a session leader
# (start_new_session), opening a terminal without O_NOCTTY makes it the controlling one.
CTTY = ("import os, sys\n"
        "fd = os.open(sys.argv[1], os.O_RDWR)\n"
        "os.close(fd)\n"
        "os.execv(sys.argv[2], sys.argv[2:])\n")

PROMPT_RE = re.compile(r"allow (\S+) \((\S+)\)\? \[y\]es once / \[a\]lways / \[N\]o ")


class Terminal:
    """A pseudo-terminal: the master side read by a thread into a buffer."""

    def __init__(self):
        self.master, self.slave = pty.openpty()
        self.slave_name = os.ttyname(self.slave)
        self.buf = bytearray()
        self.cond = threading.Condition()
        self.closed = False
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        while True:
            try:
                data = os.read(self.master, 4096)
            except OSError:
                data = b""
            with self.cond:
                if not data:
                    self.closed = True
                    self.cond.notify_all()
                    return
                self.buf.extend(data)
                self.cond.notify_all()

    def text(self):
        with self.cond:
            return self.buf.decode("utf-8", errors="replace")

    def wait_for(self, pattern, count=1, timeout=START_TIMEOUT):
        """Wait until the regex pattern matches count times in the output; return the matches."""
        end = deadline_after(timeout)
        rx = re.compile(pattern)
        with self.cond:
            while True:
                found = rx.findall(self.buf.decode("utf-8", errors="replace"))
                if len(found) >= count:
                    return found
                if self.closed or time.monotonic() >= end:
                    raise AssertionError("no %r (x%d) on the terminal within %.0f s; got %r"
                                         % (pattern, count, timeout, bytes(self.buf[-600:])))
                self.cond.wait(remaining(end))

    def type(self, text):
        os.write(self.master, text.encode())

    def close(self):
        for fd in (self.slave, self.master):
            try:
                os.close(fd)
            except OSError:
                pass


class Ask(PolicyCase):

    def terminal(self):
        t = Terminal()
        self.addCleanup(t.close)
        return t

    def start_ask(self, options, command, term):
        return self.start(["--ask"] + list(options), command, env=clean_env(),
                          argv_prefix=[sys.executable, "-c", CTTY, term.slave_name])

    def connect_in_thread(self, info, target):
        """CONNECT in a thread (it waits for the answer); returns a function giving the status."""
        out = {}

        def go():
            try:
                out["status"] = self.connect_status(info, target)
            except Exception as exc:  # reported by the getter
                out["error"] = exc

        t = threading.Thread(target=go, daemon=True)
        t.start()

        def result():
            t.join(IO_TIMEOUT + START_TIMEOUT)
            if "error" in out:
                raise out["error"]
            return out.get("status")
        return result

    def test_yes_lets_curl_through_once(self):
        srv = self.upstream()
        term = self.terminal()
        target = "127.0.0.1:%d" % srv.port
        script = ('%s -w "%%{http_code}\\n" https://%s/; %s -w "%%{http_connect}\\n" https://%s/'
                  % (sh_curl(START_TIMEOUT), target, sh_curl(START_TIMEOUT), target))
        run = self.start_ask(["-q"], sh_cmd(script), term)
        found = term.wait_for(PROMPT_RE.pattern)
        self.assertEqual(found[0], (target, "CONNECT"))
        term.type("y\n")
        term.wait_for(r"allowed once")
        term.wait_for(PROMPT_RE.pattern, count=2)  # asked again: "once" is not remembered
        term.type("N\n")
        self.assertEqual(run.wait(EXIT_TIMEOUT + IO_TIMEOUT), 56, "curl's status (403 CONNECT)")
        self.assertEqual(run.stdout.text().split(), ["200", "403"])
        self.assertNotRegex(term.text(), r"[0-9a-f]{64}", "the token on the terminal")
        events = run.audit_events()
        self.assertEqual(len(matching(events, mode="connect", decision="deny",
                                      denial_category="host_denied")), 1, AUDIT_BELOW)

    def test_always_is_not_asked_again_and_audited_as_granted(self):
        echo = self.echo_server()
        term = self.terminal()
        run = self.start_ask(["-q"], holder_command, term)
        info = ProxyInfo(run.holder_ready())
        target = "127.0.0.1:%d" % echo.port
        status = self.connect_in_thread(info, target)
        term.wait_for(PROMPT_RE.pattern)
        term.type("a\n")
        self.assertEqual(status(), 200)
        term.wait_for(r"allowed until nonoproxy-run exits")
        self.assert_tunnel_works(info, target)  # not asked again
        self.assert_tunnel_works(info, target)
        self.assertEqual(len(PROMPT_RE.findall(term.text())), 1, term.text())
        # Another port of the same host is another destination: asked, and denied.
        other = self.echo_server()
        status = self.connect_in_thread(info, "127.0.0.1:%d" % other.port)
        term.wait_for(PROMPT_RE.pattern, count=2)
        term.type("no\n")
        self.assertEqual(status(), 403)
        events = self.finish(run)
        allowed = matching(events, mode="connect", decision="allow", target="127.0.0.1",
                           port=echo.port)
        self.assertGreaterEqual(len(allowed), 3, AUDIT_BELOW)
        self.assertTrue(any("grant" in (ev.get("reason") or "") for ev in allowed),
                        "no allow event whose reason names the grant " + AUDIT_BELOW)

    def test_no_answer_within_timeout_denies(self):
        echo = self.echo_server()
        term = self.terminal()
        run = self.start_ask(["-q", "--ask-timeout", "2"],
                             holder_command, term)
        info = ProxyInfo(run.holder_ready())
        t0 = time.monotonic()
        status = self.connect_in_thread(info, "localhost:%d" % echo.port)
        term.wait_for(PROMPT_RE.pattern)
        self.assertEqual(status(), 403)
        self.assertGreaterEqual(time.monotonic() - t0, 1.5, "denied before the deadline")
        term.wait_for(r"no answer within 2 s: denied")
        self.assertEqual(echo.connection_count(), 0)
        self.finish(run)

    def test_question_that_timed_out_in_the_queue_is_not_shown(self):
        # Two hosts at once, nobody answers: the first question runs its 3 s; the second waited
        # for it and has no time left, so it is not shown (a prompt that cannot be answered
        # only scrolls the terminal) but said in one line, and denied.
        echo = self.echo_server()
        term = self.terminal()
        run = self.start_ask(["-q", "--ask-timeout", "3"], holder_command, term)
        info = ProxyInfo(run.holder_ready())
        first = self.connect_in_thread(info, "localhost:%d" % echo.port)
        term.wait_for(PROMPT_RE.pattern)
        second = self.connect_in_thread(info, "127.0.0.1:%d" % echo.port)
        self.assertEqual(first(), 403)
        self.assertEqual(second(), 403)
        term.wait_for(r"not asked \(timed out behind another question\): denied")
        self.assertEqual(len(PROMPT_RE.findall(term.text())), 1, term.text())
        self.assertEqual(echo.connection_count(), 0)
        self.finish(run)

    def test_deny_list_is_never_asked(self):
        echo = self.echo_server()
        term = self.terminal()
        run = self.start_ask(["-q", "--deny", "localhost", "--allow", "127.0.0.1"],
                             holder_command, term)
        info = ProxyInfo(run.holder_ready())
        self.assertEqual(self.connect_status(info, "localhost:%d" % echo.port), 403)
        self.assert_tunnel_works(info, "127.0.0.1:%d" % echo.port)
        self.finish(run)
        self.assertEqual(PROMPT_RE.findall(term.text()), [], term.text())

    def test_name_resolving_into_a_denied_range_is_never_asked(self):
        # localhost resolves into 127.0.0.0/8: refused by the deny range before any question
        # (before the fix it was asked about, then refused whatever the answer).
        echo = self.echo_server()
        term = self.terminal()
        run = self.start_ask(["-q", "--deny", "127.0.0.0/8", "--ask-timeout", "2"],
                             holder_command, term)
        info = ProxyInfo(run.holder_ready())
        self.assertEqual(self.connect_status(info, "localhost:%d" % echo.port), 403)
        self.assertEqual(self.connect_status(info, "127.0.0.1:%d" % echo.port), 403)
        self.assertEqual(PROMPT_RE.findall(term.text()), [], term.text())
        self.finish(run)
        self.assertEqual(PROMPT_RE.findall(term.text()), [], term.text())

    def test_without_a_terminal_is_a_start_error(self):
        marker = os.path.join(self.tmpdir(), "child-ran")
        run = self.start(["--ask"], ["sh", "-c", 'echo ran > "$1"', "sh", marker],
                         env=clean_env(), audit=False)
        self.assertEqual(run.wait(), 125)
        self.assertTrue(run.stderr.text().startswith(
            "nonoproxy-run: --ask: no terminal (/dev/tty): "), run.stderr.text())
        self.assertEqual(len(run.stderr.text().splitlines()), 1, run.stderr.text())
        self.assertFalse(os.path.exists(marker))


# --------------------------------------------------------------------------------------------
# Client certificates (mutual TLS to a route's upstream)
# --------------------------------------------------------------------------------------------

class ClientCertificates(PolicyCase):

    def mtls_upstream(self):
        ctx = server_context_for("DNS:localhost", "IP:127.0.0.1", "IP:::1")
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(Certs.get().ca_cert)
        srv = ScriptedUpstream(tls=True, ssl_context=ctx)
        self.addCleanup(srv.close)
        return srv

    def test_with_and_without_client_certificate(self):
        srv = self.mtls_upstream()
        cert, key = client_certificate()
        script = ('for p in "$WITH_BASE_URL" "$WITHOUT_BASE_URL"; do curl -s --max-time %d '
                  '-o /dev/null -w "%%{http_code}\\n" -H "Authorization: Bearer '
                  '$NONO_PROXY_TOKEN" "$p/x"; done' % IO_TIMEOUT)
        run, out = self.run_curl(["--ca-file", Certs.get().ca_cert]
                                 + route("with", srv.url(), "client-cert=" + cert,
                                         "client-key=" + key)
                                 + route("without", srv.url()), sh_cmd(script))
        self.assertEqual(out.split(), ["200", "502"], out)
        self.assertEqual([r.request_line for r in srv.requests()], ["GET /x HTTP/1.1"])
        with open(key, encoding="ascii") as f:
            pem = f.read()
        body = "".join(pem.strip().splitlines()[1:-1])
        for blob in (run.stderr.text(), run.stdout.text(), run.audit_text()):
            self.assertNotIn(body[:40], blob, "the client key leaked")

    def test_missing_key_file_is_a_start_error_naming_the_field(self):
        srv = self.mtls_upstream()
        cert, _ = client_certificate()
        missing = os.path.join(self.tmpdir(), "missing.key")
        err = self.assert_refused_at_start(route("m", srv.url(), "client-cert=" + cert,
                                                 "client-key=" + missing), "'m'")
        self.assertRegex(err, r"tls_client_key|client-key", err)
        err = self.assert_refused_at_start(route("m", srv.url(), "client-cert=" + cert), "'m'")
        self.assertRegex(err, r"tls_client_key|client-key", err)


# --------------------------------------------------------------------------------------------
# --serve
# --------------------------------------------------------------------------------------------

def parse_exports(text):
    """{NAME: value} from export lines, read back the way a shell reads them."""
    env = {}
    for line in text.splitlines():
        words = shlex.split(line)
        if len(words) != 2 or words[0] != "export" or "=" not in words[1]:
            raise AssertionError("not an export line: %r" % line)
        name, _, value = words[1].partition("=")
        env[name] = value
    return env


def cmdlines_holding(token):
    """The pids whose /proc/PID/cmdline holds token."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                if token.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Serve(PolicyCase):

    def start_serve(self, options, **kw):
        return self.start(["--serve"] + list(options), None, env=clean_env(),
                          stdin=subprocess.DEVNULL, **kw)

    def stop(self, run):
        os.kill(run.pid, signal.SIGTERM)
        return run.wait()

    def test_exports_on_stdout_curl_sigterm(self):
        srv = self.upstream()
        run = self.start_serve(["--route", "svc=%s" % srv.url(), "--ca-file",
                                Certs.get().ca_cert])
        self.assertTrue(run.stdout.closed.wait(START_TIMEOUT),
                        "stdout not closed after the export lines")
        env = parse_exports(run.stdout.text())
        tok = env.get("NONO_PROXY_TOKEN", "")
        self.assertTrue(re.fullmatch(r"[0-9a-f]{64}", tok), "NONO_PROXY_TOKEN is not 64 hex")
        port = int(re.search(r":(\d+)$", env["HTTPS_PROXY"]).group(1))
        self.assertTrue(env["HTTPS_PROXY"] == "http://nono:%s@127.0.0.1:%d" % (tok, port),
                        "HTTPS_PROXY is not http://nono:<token>@127.0.0.1:<port>")
        self.assertEqual(env["SVC_BASE_URL"], "http://127.0.0.1:%d/svc" % port)
        self.assertEqual(cmdlines_holding(tok), [], "the token on a command line")
        # Another server than the route's: a CONNECT to the route's upstream, under any
        # spelling, is refused (connect_bypasses_l7).
        other = self.upstream()
        proc = subprocess.run(curl_cmd("-w", "%{http_code}", "https://localhost:%d/" % other.port),
                              env=dict(clean_env(), **env), stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=IO_TIMEOUT * 2, check=False)
        self.assertEqual(proc.stdout, b"200", proc.stderr)
        res = http_exchange(port, "GET", "/svc/y", [("Authorization", "Bearer " + tok)])
        self.assertEqual(res.status, 200, res.raw[:300])
        self.assertEqual(self.stop(run), 0)
        self.assertIn("allowed", run.stderr.text())  # the summary
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        # Booleans with fixed messages: a failure must not print the token itself.
        self.assertFalse(tok in run.stderr.text(), "the token on stderr")
        self.assertFalse(tok in run.audit_text(), "the token in the audit log")
        self.assertTrue(matching(run.audit_events(), mode="connect", decision="allow"),
                        AUDIT_BELOW)

    def test_fixed_port_and_sigint(self):
        port = free_port()
        run = self.start_serve(["-q", "--port", str(port)])
        self.assertTrue(run.stdout.closed.wait(START_TIMEOUT))
        env = parse_exports(run.stdout.text())
        self.assertTrue(env["HTTP_PROXY"].endswith("@127.0.0.1:%d" % port),
                        "HTTP_PROXY does not end in @127.0.0.1:%d" % port)
        os.kill(run.pid, signal.SIGINT)
        self.assertEqual(run.wait(), 0)
        self.assertEqual(run.stderr.text(), "", "-q prints nothing")

    def test_env_file_mode_0600_removed_at_exit(self):
        d = self.tmpdir()
        path = os.path.join(d, "np.env")
        run = self.start_serve(["--env-file", path])
        end = deadline_after(START_TIMEOUT)
        self.wait_stderr(run, "serving on port", end)
        st = os.lstat(path)
        self.assertEqual(st.st_mode & 0o7777, 0o600, oct(st.st_mode))
        self.assertEqual(st.st_uid, os.getuid())
        with open(path, encoding="utf-8") as f:
            env = parse_exports(f.read())
        tok = env["NONO_PROXY_TOKEN"]
        self.assertEqual(run.stdout.text(), "", "stdout stays empty with --env-file")
        self.assertEqual(cmdlines_holding(tok), [])
        self.assertEqual(self.stop(run), 0)
        self.assertFalse(os.path.exists(path), "the env file outlived nonoproxy-run")

    def wait_stderr(self, run, text, end):
        while text not in run.stderr.text():
            if run.proc.poll() is not None or time.monotonic() >= end:
                self.fail("no %r on stderr: %r" % (text, run.stderr.text()))
            run.stderr.closed.wait(0.05)

    def test_env_file_refuses_symlink_and_existing_file(self):
        d = self.tmpdir()
        target = os.path.join(d, "target")
        with open(target, "w", encoding="utf-8") as f:
            f.write("precious\n")
        link = os.path.join(d, "link.env")
        os.symlink(target, link)
        run = self.start_serve(["--env-file", link], audit=False)
        self.assertEqual(run.wait(), 125)
        self.assertIn("symbolic link", run.stderr.text())
        with open(target, encoding="utf-8") as f:
            self.assertEqual(f.read(), "precious\n")
        dangling = os.path.join(d, "dangling.env")
        os.symlink(os.path.join(d, "nowhere"), dangling)
        run = self.start_serve(["--env-file", dangling], audit=False)
        self.assertEqual(run.wait(), 125)
        self.assertFalse(os.path.exists(os.path.join(d, "nowhere")), "created through a symlink")
        run = self.start_serve(["--env-file", target], audit=False)
        self.assertEqual(run.wait(), 125)
        self.assertIn("already exists", run.stderr.text())
        with open(target, encoding="utf-8") as f:
            self.assertEqual(f.read(), "precious\n")

    def test_usage_errors(self):
        for opts, cmd, want in [(["--serve"], ["true"], "--serve: takes no COMMAND"),
                                (["--serve", "--sandbox", "on"], None,
                                 "--sandbox on: not with --serve"),
                                (["--env-file", "/tmp/x"], ["true"],
                                 "--env-file: only with --serve")]:
            with self.subTest(want=want):
                run = self.start(opts, cmd, env=clean_env(), audit=False,
                                 stdin=subprocess.DEVNULL)
                self.assertEqual(run.wait(), 125)
                self.assertIn(want, run.stderr.text())


if __name__ == "__main__":
    unittest.main()
