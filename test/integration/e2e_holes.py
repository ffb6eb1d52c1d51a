"""Regression tests for holes 2 and 4-10 of the security review: SPEC §1.2, §2, §5, §6, §9.

One test class per hole. Every class drives the plain-HTTP forward proxy (absolute-form with a
valid Proxy-Authorization, SPEC §5) and a HEADER-mode credential route to an http:// loopback
upstream (the phantom as `Authorization: Bearer <token>`, SPEC §6), and CONNECT where the hole
has a CONNECT shape. Each path has its own upstream.ScriptedUpstream, which records every byte
it receives: "nothing reached the origin" is judged, as in e2e_smuggling.py, by searching those
bytes for a per-case marker after nonoproxy-run exited and the origin read every connection to
EOF (HoleCase.settle).

The session token is never printed by these tests: a leak is reported by where it was found
(an offset, a line number, a case label), never by the text that holds it; the harness's own
failure diagnostics (the audit log, nonoproxy-run's output) are the only place it can appear.
"""

import base64
import binascii
import json
import os
import re
import subprocess
import unittest

from npe2e import (AUDIT_BELOW, IN_NETNS, SCALE, E2ETestCase, absolute_request, connect_head,
                   connect_proxy, exchange, matching, origin_request, read_http_response,
                   require_tool)
from upstream import DEFAULT_BODY, Answer, ScriptedUpstream, raw_answer

CURL = require_tool("curl")
SH = require_tool("sh")
ENV = require_tool("env")

KEY_VAR = "NP_E2E_HOLES_KEY"
KEEPALIVE_TIMEOUT = 15 * SCALE  # bound on one keep-alive response (a hang fails the test)
FRAGMENT = 12                   # no run of this many token characters may leak
HEX_RUN = re.compile(r"[0-9A-Fa-f]{8,}")

CL_ANSWER = b"HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nContent-Length: 5\r\n\r\nhello"
CLOSE_CL_ANSWER = (b"HTTP/1.1 200 OK\r\nConnection: close, content-length\r\n"
                   b"Content-Length: 5\r\n\r\nhello")
TE_ANSWER = (b"HTTP/1.1 200 OK\r\nConnection: Transfer-Encoding\r\nTransfer-Encoding: chunked\r\n"
             b"\r\n5\r\nhello\r\n0\r\n\r\n")
GZIP_CHUNKED_ANSWER = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
                       b"5\r\nhello\r\n0\r\n\r\n")


def scripted_answer(req):
    """The origin's answer, chosen by a marker in the request target (holes 8 and 10)."""
    if "h8-cl-" in req.target:
        return raw_answer(CL_ANSWER)
    if "h8-closecl-" in req.target:
        return raw_answer(CLOSE_CL_ANSWER, close=True)
    if "h8-te-" in req.target:
        return raw_answer(TE_ANSWER)
    if "h10-resp-" in req.target:
        return raw_answer(GZIP_CHUNKED_ANSWER)
    return Answer.fixed()


def pct(text):
    """Every character of text percent-encoded (%XX)."""
    return "".join("%%%02X" % ord(c) for c in text)


def b64(text):
    return base64.b64encode(text.encode("latin-1")).decode("ascii")


def decoded(value):
    """The bytes of a `Basic <base64>` value (the value itself when it does not decode)."""
    word = value.split()[-1] if value.split() else ""
    try:
        return base64.b64decode(word + "=" * (-len(word) % 4))
    except (binascii.Error, ValueError):
        return value.encode("latin-1", errors="replace")


class HoleCase(E2ETestCase):
    """One nonoproxy-run serving both paths, each to its own recording origin."""

    def setup_paths(self, allow=True):
        """Start both origins and nonoproxy-run (holder.py as the child): the forward path
        with --allow 127.0.0.1 unless allow is false, and the route svc to self.rev."""
        self.fwd = ScriptedUpstream(tls=False, handler=scripted_answer)
        self.addCleanup(self.fwd.close)
        self.rev = ScriptedUpstream(tls=False, handler=scripted_answer)
        self.addCleanup(self.rev.close)
        self.secret = "np-e2e-holes-" + os.urandom(8).hex()
        env = {k: v for k, v in os.environ.items() if not k.startswith("NP_E2E_")}
        env[KEY_VAR] = self.secret
        opts = ["-q"] + (["--allow", "127.0.0.1"] if allow else [])
        opts += ["--route", "svc=%s,credential=env://%s" % (self.rev.url(), KEY_VAR)]
        self.proxy, self.info = self.start_holder(opts, env=env)
        self.token = self.info.token

    # -- requests -------------------------------------------------------------------------------

    def forward(self, method, rest, headers=(), body=None, close=True):
        """Absolute-form request bytes for the forward origin's /rest."""
        hdrs = list(headers) + ([("Connection", "close")] if close else [])
        url = "http://127.0.0.1:%d/%s" % (self.fwd.port, rest)
        return absolute_request(method, url, self.info.basic(), hdrs, body)

    def route(self, method, rest, headers=(), body=None, close=True, host=None):
        """Origin-form request bytes for /svc/rest, with the phantom."""
        hdrs = [("Authorization", "Bearer " + self.token)] + list(headers)
        hdrs += [("Connection", "close")] if close else []
        return origin_request(method, "/svc/" + rest, host or "127.0.0.1:%d" % self.info.port,
                              hdrs, body)

    def paths(self):
        """(label, builder) for the forward path and the route path."""
        return [("forward", self.forward), ("route", self.route)]

    def ask(self, request):
        """Send request bytes on a fresh connection, read to EOF; return Response."""
        return exchange(self.info.port, request)

    # -- after the requests ---------------------------------------------------------------------

    def settle(self):
        """Let nonoproxy-run exit (closing every upstream connection), wait until each origin
        read its connections to EOF; return the audit events."""
        events = self.finish(self.proxy)
        for srv in (self.fwd, self.rev):
            self.assertTrue(srv.quiesce(), "an upstream connection stayed open after "
                            "nonoproxy-run exited")
        return events

    def upstream_raw(self):
        return self.fwd.all_raw() + self.rev.all_raw()

    def assert_no_marker_upstream(self, markers):
        """None of the (label, marker) byte strings reached either origin."""
        raw = self.upstream_raw()
        leaked = [label for label, marker in markers if marker.encode("latin-1") in raw]
        self.assertEqual(leaked, [], "bytes of these cases reached the origin")

    def token_fragment(self, haystack):
        """Where FRAGMENT consecutive characters of the token (lower- or upper-case, literal or
        percent-encoded) first occur in haystack (str or bytes): a description that never
        quotes the token, or None."""
        if isinstance(haystack, str):
            haystack = haystack.encode("utf-8", errors="replace")
        for spelling, t in (("lower-case", self.token), ("upper-case", self.token.upper())):
            for i in range(len(t) - FRAGMENT + 1):
                for form, needle in (("literal", t[i:i + FRAGMENT]),
                                     ("percent-encoded", pct(t[i:i + FRAGMENT]))):
                    at = haystack.find(needle.encode("ascii"))
                    if at >= 0:
                        return ("%d characters of the token (%s, %s, from its offset %d) at "
                                "byte %d" % (FRAGMENT, spelling, form, i, at))
        return None

    def assert_no_token(self, haystack, what):
        """No part of the token in haystack; report only where, never the text."""
        where = self.token_fragment(haystack)
        if where is not None:
            self.fail("%s: %s" % (what, where))

    def assert_no_token_in_audit(self):
        """No part of the token in any line of the audit log; name each line and field."""
        leaks = []
        for n, line in enumerate(self.proxy.audit_text().splitlines(), 1):
            if self.token_fragment(line) is None:
                continue
            try:
                ev = json.loads(line)
            except ValueError:
                ev = {}
            fields = sorted(k for k, v in ev.items() if self.token_fragment(str(v)))
            leaks.append("line %d (mode %s, status %s, fields %s)"
                         % (n, ev.get("mode"), ev.get("status"), ",".join(fields) or "?"))
        self.assertEqual(leaks, [], "audit lines holding %d or more characters of the token"
                         % FRAGMENT)

    def _formatMessage(self, msg, standardMsg):  # noqa: N802 (unittest's name)
        """Assertion messages with the route's secret and every hex run that shares 8
        characters with the token replaced, so that a failing comparison never prints them."""
        text = super()._formatMessage(msg, standardMsg)
        if getattr(self, "secret", None):
            text = text.replace(self.secret, "<secret>")
        tok = getattr(self, "token", None)
        if not tok:
            return text

        def scrub(m):
            run = m.group(0).lower()
            hit = any(run[i:i + 8] in tok for i in range(len(run) - 7))
            return "<token?>" if hit else m.group(0)
        return HEX_RUN.sub(scrub, text)

    def assert_audited_denials(self, events, status, count):
        """Exactly `count` audit deny events carry `status`."""
        found = matching(events, decision="deny", status=status)
        self.assertEqual(len(found), count, "audit deny events with status %d " % status
                         + AUDIT_BELOW)


# --------------------------------------------------------------------------------------------
# Hole 2: forbidden bytes in the request-target
# --------------------------------------------------------------------------------------------

# (label, raw bytes put inside the path, latin-1): SPEC §1.2 control bytes, HTAB, '#', '\',
# bytes >= 0x80.
BAD_TARGET_BYTES = [
    ("fragment '#'", "a#b"), ("HTAB", "a\tb"), ("form feed", "a\x0cb"), ("SOH", "a\x01b"),
    ("DEL", "a\x7fb"), ("backslash", "a\\b"), ("UTF-8 e-acute", "caf\xc3\xa9"),
    ("byte 0x80", "\x80"), ("byte 0xff", "a\xffb"),
]
PASSING_TARGET = "a{b}|c^d`e\"f<g>"


class Hole2TargetBytes(HoleCase):
    """Hole 2 (issue #9): the request-target may not hold control bytes, HTAB, '#', '\\' or bytes >=
    0x80 (SPEC §1.2): 400 before routing or filtering, with Content-Length and Connection: close, an
    audit deny with status 400, nothing sent upstream, on every path."""

    def test_forbidden_target_bytes_are_refused_with_400_on_every_path(self):
        """Hole 2 (issue #9): forward, route and CONNECT targets with forbidden bytes get 400; the
        characters "<>^`{|} still pass unchanged."""
        echo = self.echo_server()
        self.setup_paths()
        refused = 0
        markers = []
        for path, build in self.paths():
            for i, (label, raw) in enumerate(BAD_TARGET_BYTES):
                marker = "h2-%s-%d-" % (path, i)
                markers.append(("%s: %s" % (path, label), marker))
                resp = self.ask(build("GET", marker + raw))
                refused += 1
                with self.subTest(path=path, case=label):
                    self.assertErrorResponse(resp, 400)
        connects = [("HTAB before the port", "127.0.0.1\t:%d"),
                    ("HTAB after the port", "127.0.0.1:%d\t"),
                    ("'#' after the port", "127.0.0.1:%d#x"),
                    ("backslash in the host", "127.0.0.1\\:%d"),
                    ("form feed in the host", "127.0.0.1\x0c:%d"),
                    ("byte 0x80 in the host", "127.0.0.1\x80:%d")]
        for label, shape in connects:
            resp = self.ask(connect_head(shape % echo.port, self.info.basic(),
                                         host_header=False))
            refused += 1
            with self.subTest(path="CONNECT", case=label):
                self.assertErrorResponse(resp, 400)
        passing = {}
        for path, build in self.paths():
            resp = self.ask(build("GET", "h2ok-%s-%s" % (path, PASSING_TARGET)))
            passing[path] = "/h2ok-%s-%s" % (path, PASSING_TARGET)
            with self.subTest(path=path, case="\"<>^`{|} pass"):
                self.assertEqual(resp.status, 200, resp)
                self.assertEqual(resp.body, DEFAULT_BODY)
        events = self.settle()
        with self.subTest("nothing of the refused requests reached an origin"):
            self.assert_no_marker_upstream(markers)
        with self.subTest("the CONNECT tunnels were never opened"):
            self.assertEqual(echo.connection_count(), 0, "connections to the CONNECT target")
        with self.subTest("the passing targets arrive unchanged"):
            self.assertIn(passing["forward"], [r.target for r in self.fwd.requests()])
            self.assertIn(passing["route"], [r.target for r in self.rev.requests()])
        with self.subTest("one audit deny with status 400 per refused request"):
            self.assert_audited_denials(events, 400, refused)


# --------------------------------------------------------------------------------------------
# Hole 4: the token in the audit log after truncation
# --------------------------------------------------------------------------------------------

AUDIT_PADS = list(range(440, 545, 6))  # around the 512/528-byte path buffers


class Hole4AuditTruncation(HoleCase):
    """Hole 4 (issue #9): redaction runs on the whole input before any truncation (SPEC §1.2, §9):
    no run of 12 token characters, in either case, reaches the audit log whichever field held it and
    however long the field was."""

    def test_token_never_reaches_the_audit_log_even_partially(self):
        """Hole 4 (issue #9): CONNECT and forward hosts, route and forward paths, with the token
        placed where the audit fields are cut; every refusal is audited, without the token."""
        self.setup_paths()
        tok, up = self.token, self.token.upper()
        got = []  # (label, Response, must be 400)
        for label, t in (("token", tok), ("upper-case token", up)):
            host = "a" * 193 + t + "a" * 10
            got.append(("CONNECT host with the %s" % label,
                        self.ask(connect_head(host + ":443", self.info.basic())), True))
            got.append(("forward host with the %s" % label,
                        self.ask(absolute_request("GET", "http://%s:80/h4" % host,
                                                  self.info.basic(),
                                                  [("Connection", "close")])), True))
        for i, n in enumerate(AUDIT_PADS):
            t = up if i % 2 else tok
            got.append(("route path, %d bytes before the token" % n,
                        self.ask(self.route("GET", "h4-" + "a" * n + t)), True))
            got.append(("forward path, %d bytes before the token" % n,
                        self.ask(self.forward("GET", "h4-" + "a" * n + t)), False))
        for label, resp, want_400 in got:
            with self.subTest(label):
                if want_400:
                    self.assertErrorResponse(resp, 400)
                else:
                    self.assertIn(resp.status, (200, 400), resp)
        events = self.settle()
        with self.subTest("the audit log holds no part of the token"):
            self.assert_no_token_in_audit()
        with self.subTest("every 400 is audited"):
            self.assert_audited_denials(events, 400, sum(r.status == 400 for _, r, _ in got))
        with self.subTest("no origin received the token"):
            self.assert_no_token(self.upstream_raw(), "bytes the origins received")


# --------------------------------------------------------------------------------------------
# Hole 5: the token in a header name
# --------------------------------------------------------------------------------------------

class Hole5HeaderName(HoleCase):
    """Hole 5 (issue #9): the token never leaves the proxy in a header name (SPEC §1.2): such a
    header is dropped, the request is still served and its other headers arrive."""

    def test_header_named_after_the_token_never_reaches_the_origin(self):
        """Hole 5 (issue #9): X-<token>, X-<TOKEN>, X-<percent-encoded token>, half literal and half
        percent-encoded, and a bare <token> header name, on both paths."""
        self.setup_paths()
        tok = self.token
        names = [("literal", "X-" + tok), ("upper-case", "X-" + tok.upper()),
                 ("percent-encoded", "X-" + pct(tok)),
                 ("half percent-encoded", "X-" + tok[:32] + pct(tok[32:])),
                 ("bare", tok)]
        for path, build in self.paths():
            for label, name in names:
                marker = "h5-%s-%s" % (path, label.replace(" ", "-"))
                resp = self.ask(build("GET", marker, [(name, "1"), ("X-Other", marker)]))
                with self.subTest(path=path, case=label):
                    self.assertEqual(resp.status, 200, "the request is still served: %r"
                                     % resp.status_line)
                    self.assertEqual(resp.body, DEFAULT_BODY)
        self.settle()
        for path, srv in (("forward", self.fwd), ("route", self.rev)):
            reqs = srv.requests()
            with self.subTest(path=path, case="the other headers arrive"):
                self.assertEqual(sorted(r.target for r in reqs),
                                 sorted("/h5-%s-%s" % (path, label.replace(" ", "-"))
                                        for label, _ in names), "requests the origin received")
                self.assertEqual([r.header("x-other") for r in reqs],
                                 [r.target[1:] for r in reqs], "X-Other of each request")
            with self.subTest(path=path, case="no header name holds the token"):
                leaked = [r.target for r in reqs if self.token_fragment(r.head) is not None]
                self.assertEqual(leaked, [], "requests that reached the origin with the token")
                self.assert_no_token(srv.all_raw(), "bytes the %s origin received" % path)


# --------------------------------------------------------------------------------------------
# Hole 6: the token in a host name
# --------------------------------------------------------------------------------------------

class Hole6TokenHost(HoleCase):
    """Hole 6 (issue #9): a host containing the token is refused with 400 and never resolved (SPEC
    §1.2, §3); the audit target does not hold it."""

    def test_host_containing_the_token_is_refused_with_400(self):
        """Hole 6 (issue #9): GET http://<token>.example/ and CONNECT <token>.example:443 (either
        case) get 400; on a route, a Host header naming <token>.example never reaches the origin.

        In the private network namespace the allowlist is empty, so a proxy that resolves the
        name shows it (502 instead of 400); elsewhere --allow 127.0.0.1 keeps the name away
        from the real resolver."""
        self.setup_paths(allow=not IN_NETNS)
        tok = self.token
        rows = []
        for label, t in (("token", tok), ("upper-case token", tok.upper())):
            rows.append(("forward to <%s>.example" % label,
                         absolute_request("GET", "http://%s.example:80/h6" % t,
                                          self.info.basic(), [("Connection", "close")])))
            rows.append(("CONNECT to <%s>.example" % label,
                         connect_head("%s.example:443" % t, self.info.basic())))
        for label, request in rows:
            resp = self.ask(request)
            with self.subTest(label):
                self.assertErrorResponse(resp, 400)
        route = self.ask(self.route("GET", "h6-route-host", host="%s.example:80" % tok))
        with self.subTest("route with Host: <token>.example"):
            self.assertIn(route.status, (200, 400), route)
        events = self.settle()
        with self.subTest("every refusal is audited with status 400"):
            self.assert_audited_denials(events, 400, len(rows) + (route.status == 400))
        with self.subTest("no audit target holds the token"):
            self.assert_no_token("\n".join(str(ev.get("target")) for ev in events),
                                 "the audit targets")
            self.assert_no_token_in_audit()
        with self.subTest("no origin received the token"):
            self.assert_no_token(self.upstream_raw(), "bytes the origins received")


# --------------------------------------------------------------------------------------------
# Hole 7: the token inside a long Basic credential
# --------------------------------------------------------------------------------------------

BASIC_PADS = [100, 900, 1100, 1600, 2100, 3000]


class Hole7LongBasic(HoleCase):
    """Hole 7 (issue #9): the token inside `Basic` base64 is detected up to the header cap (SPEC
    §1.2): a header carrying it is dropped whatever the user part's length, the request is
    served."""

    def test_token_in_a_long_basic_credential_never_reaches_the_origin(self):
        """Hole 7 (issue #9): X-Cred: Basic base64(<N x 'a'>:<token>) for N from 100 to 3000."""
        self.setup_paths()
        values = {}
        for path, build in self.paths():
            for n in BASIC_PADS:
                marker = "h7-%s-%d" % (path, n)
                value = "Basic " + b64("a" * n + ":" + self.token)
                values[marker] = value
                resp = self.ask(build("GET", marker, [("X-Cred", value), ("X-Other", marker)]))
                with self.subTest(path=path, n=n):
                    self.assertEqual(resp.status, 200, "the request is still served: %r"
                                     % resp.status_line)
                    self.assertEqual(resp.body, DEFAULT_BODY)
        self.settle()
        for path, srv in (("forward", self.fwd), ("route", self.rev)):
            reqs = srv.requests()
            with self.subTest(path=path, case="every request arrives"):
                self.assertEqual(sorted(r.header("x-other") or "" for r in reqs),
                                 sorted("h7-%s-%d" % (path, n) for n in BASIC_PADS))
            for req in reqs:
                marker = req.header("x-other") or req.target
                with self.subTest(path=path, case=marker):
                    carried = [decoded(v) for v in req.header_all("x-cred")]
                    self.assertFalse(any(self.token.encode() in c for c in carried),
                                     "X-Cred reached the origin with the token inside")
                    if marker in values:
                        self.assertFalse(values[marker].encode() in req.head,
                                         "the X-Cred value reached the origin")


# --------------------------------------------------------------------------------------------
# Hole 8: Connection naming Content-Length
# --------------------------------------------------------------------------------------------

class Hole8ConnectionContentLength(HoleCase):
    """Hole 8 (issue #9): Content-Length and Transfer-Encoding are never hop-by-hop (SPEC §1.2): a
    Connection header naming them removes nothing, in requests and in responses; the connection
    keeps working after such a message."""

    def keepalive_pair(self, build, first, second, want_length):
        """Two requests on one client connection: `first` gets the odd answer, which must
        arrive framed (with Content-Length: 5 when want_length) and hold hello."""
        with connect_proxy(self.info.port) as s:
            s.sendall(build("GET", first, close=False))
            res, extra = read_http_response(s, KEEPALIVE_TIMEOUT)
            self.assertEqual(res.status, 200, res)
            if want_length:
                self.assertEqual(res.header("content-length"), "5",
                                 "the answer lost its Content-Length: %r" % res.raw[:300])
            self.assertIn(res.framing, ("length", "chunked"), "the answer is not framed: %r"
                          % res.raw[:300])
            self.assertEqual(res.body, b"hello")
            try:
                s.sendall(build("GET", second, close=True))
                res2, _ = read_http_response(s, KEEPALIVE_TIMEOUT, initial=extra)
            except OSError as exc:
                self.fail("the second request on the connection failed: %r" % exc)
            self.assertEqual(res2.status, 200, res2)
            self.assertEqual(res2.body, DEFAULT_BODY, "the second answer")

    def test_response_keeps_content_length_on_a_keepalive_connection(self):
        """Hole 8 (issue #9): `Connection: Content-Length` and `Connection: close, content-length`
        answers reach a keep-alive client with Content-Length: 5 and body hello, and a second
        request on the same client connection is answered correctly."""
        self.setup_paths()
        for path, build in self.paths():
            for variant in ("cl", "closecl"):
                with self.subTest(path=path, origin_says=variant):
                    self.keepalive_pair(build, "h8-%s-%s" % (variant, path),
                                        "h8-next-%s-%s" % (variant, path), True)
        self.settle()

    def test_response_keeps_transfer_encoding_on_a_keepalive_connection(self):
        """Hole 8 (issue #9): a chunked answer saying `Connection: Transfer-Encoding` reaches a
        keep-alive client framed, with body hello; a second request is answered correctly."""
        self.setup_paths()
        for path, build in self.paths():
            with self.subTest(path=path):
                self.keepalive_pair(build, "h8-te-" + path, "h8-next-te-" + path, False)
        self.settle()

    def test_curl_fetches_two_such_answers_in_one_invocation(self):
        """Hole 8 (issue #9): curl with two URLs answered `Connection: Content-Length`, through the
        forward proxy (http_proxy) and through the route (SVC_BASE_URL), --max-time 20."""
        fwd = ScriptedUpstream(tls=False, handler=scripted_answer)
        self.addCleanup(fwd.close)
        urls = [fwd.url(path="/h8-cl-curl-%d" % i) for i in (1, 2)]
        run = self.start(["-q", "--allow", "127.0.0.1"],
                         [ENV, "-u", "NO_PROXY", "-u", "no_proxy", CURL, "-sS",
                          "--max-time", "20"] + urls, stdin=subprocess.DEVNULL)
        with self.subTest("forward"):
            self.assertEqual(run.wait(60 * SCALE), 0, "curl's exit status")
            self.assertEqual(run.stdout.raw(), b"hellohello")
        rev = ScriptedUpstream(tls=False, handler=scripted_answer)
        self.addCleanup(rev.close)
        env = {k: v for k, v in os.environ.items() if not k.startswith("NP_E2E_")}
        env[KEY_VAR] = "np-e2e-holes-" + os.urandom(8).hex()
        # The phantom goes to curl through a config on stdin, never on a command line.
        script = ('printf \'header = "Authorization: Bearer %s"\\n\' "$NONO_PROXY_TOKEN" | '
                  'exec "$0" -K - -sS --max-time 20 "$SVC_BASE_URL/h8-cl-curl-1" '
                  '"$SVC_BASE_URL/h8-cl-curl-2"')
        run = self.start(["-q", "--route", "svc=%s,credential=env://%s" % (rev.url(), KEY_VAR)],
                         [SH, "-c", script, CURL], env=env, stdin=subprocess.DEVNULL)
        with self.subTest("route"):
            self.assertEqual(run.wait(60 * SCALE), 0, "curl's exit status")
            self.assertEqual(run.stdout.raw(), b"hellohello")

    def test_request_body_keeps_its_framing(self):
        """Hole 8 (issue #9): a request whose Connection header names Content-Length (or
        Transfer-Encoding) reaches the origin with its body framed as sent; the next request on the
        connection is a request of its own."""
        self.setup_paths()
        chunked = b"5\r\nhello\r\n0\r\n\r\n"
        rows = [("cl", [("Connection", "Content-Length"), ("Content-Length", "5")], b"hello",
                 "length"),
                ("keepcl", [("Connection", "keep-alive, content-length"),
                            ("Content-Length", "5")], b"hello", "length"),
                ("te", [("Connection", "Transfer-Encoding"), ("Transfer-Encoding", "chunked")],
                 chunked, "chunked")]
        for path, build in self.paths():
            for label, headers, body, _ in rows:
                with connect_proxy(self.info.port) as s:
                    s.sendall(build("POST", "h8-req-%s-%s" % (label, path), headers, body,
                                    close=False))
                    try:
                        res, extra = read_http_response(s, KEEPALIVE_TIMEOUT, method="POST")
                        s.sendall(build("GET", "h8-next-%s-%s" % (label, path)))
                        res2, _ = read_http_response(s, KEEPALIVE_TIMEOUT, initial=extra)
                        statuses = [res.status, res2.status]
                    except (OSError, AssertionError) as exc:
                        statuses = repr(exc)
                with self.subTest(path=path, case=label):
                    self.assertEqual(statuses, [200, 200], "both answers")
        self.settle()
        for path, srv in (("forward", self.fwd), ("route", self.rev)):
            want = []
            for label, _, _, framing in rows:
                want += [("POST", "/h8-req-%s-%s" % (label, path), framing, b"hello"),
                         ("GET", "/h8-next-%s-%s" % (label, path), "none", b"")]
            reqs = srv.requests()
            with self.subTest(path=path, case="what the origin received"):
                # requests() lists them connection by connection, and the route's pool may put a
                # later pair on an earlier connection: compare in one order.
                self.assertEqual(sorted((r.method, r.target, r.framing, r.body) for r in reqs),
                                 sorted(want))
                self.assertEqual([r.header_all("content-length") for r in reqs
                                  if r.framing == "length"], [["5"], ["5"]])
                self.assertEqual(srv.errors, [], "origin errors")


# --------------------------------------------------------------------------------------------
# Hole 9: TRACE and TRACK
# --------------------------------------------------------------------------------------------

class Hole9Trace(HoleCase):
    """Hole 9 (issue #9): TRACE and TRACK are answered 405 on every path, nothing sent upstream
    (SPEC §1.2)."""

    def test_trace_and_track_get_405_on_both_paths(self):
        """Hole 9 (issue #9): TRACE/TRACK through the forward proxy and on a route."""
        self.setup_paths()
        markers = []
        for path, build in self.paths():
            for method in ("TRACE", "TRACK"):
                marker = "h9-%s-%s" % (path, method.lower())
                markers.append(("%s %s" % (path, method), marker))
                resp = self.ask(build(method, marker))
                with self.subTest(path=path, method=method):
                    self.assertErrorResponse(resp, 405)
        events = self.settle()
        with self.subTest("nothing reached an origin"):
            self.assert_no_marker_upstream(markers)
            self.assertEqual([(r.method, r.target)
                              for r in self.fwd.requests() + self.rev.requests()], [])
        with self.subTest("each refusal is audited"):
            self.assert_audited_denials(events, 405, len(markers))


# --------------------------------------------------------------------------------------------
# Hole 10: transfer codings other than chunked
# --------------------------------------------------------------------------------------------

class Hole10TransferCodings(HoleCase):
    """Hole 10 (issue #9): transfer codings are passed on intact or refused, never silently dropped
    (SPEC §1.2): a request with `Transfer-Encoding: gzip, chunked` gets 501, an answer with it gets
    502."""

    def test_request_with_gzip_chunked_gets_501(self):
        """Hole 10 (issue #9): `Transfer-Encoding: gzip, chunked` requests on both paths."""
        self.setup_paths()
        markers = []
        for path, build in self.paths():
            marker = "h10-req-" + path
            markers.append((path, marker))
            resp = self.ask(build("POST", marker, [("Transfer-Encoding", "gzip, chunked")])
                            + b"5\r\nhello\r\n0\r\n\r\n")
            with self.subTest(path=path):
                self.assertErrorResponse(resp, 501)
        events = self.settle()
        with self.subTest("nothing reached an origin"):
            self.assert_no_marker_upstream(markers)
        with self.subTest("each refusal is audited"):
            self.assert_audited_denials(events, 501, len(markers))

    def test_answer_with_gzip_chunked_gets_502(self):
        """Hole 10 (issue #9): an origin answering `Transfer-Encoding: gzip, chunked` (a valid
        chunked body) makes the proxy answer 502, on both paths."""
        self.setup_paths()
        for path, build in self.paths():
            resp = self.ask(build("GET", "h10-resp-" + path))
            with self.subTest(path=path):
                self.assertErrorResponse(resp, 502)
        events = self.settle()
        with self.subTest("each failure is audited"):
            self.assertEqual(len(matching(events, status=502)), 2, AUDIT_BELOW)


if __name__ == "__main__":
    unittest.main()
